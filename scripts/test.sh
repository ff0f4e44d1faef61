#!/usr/bin/env bash
# The whole test suite: builds the fixture images from fixtures/*.toml with real
# tools, then runs every crate's tests. Needs the packages of scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/fixtures.py build
cargo test --workspace --locked "$@"
