#!/usr/bin/env bash
# The whole test suite: builds the fixture images from fixtures/*.toml with real
# tools, then runs every crate's tests. Needs the packages of scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI builds once from a clean clone: incremental state would only double the
# target directory on a disk that has run out before.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
python3 scripts/fixtures.py build
cargo test --workspace --locked "$@"
