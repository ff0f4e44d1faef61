#!/usr/bin/env bash
# A long fuzz run over every parser (crates/fuzz): DURATION seconds in all
# (default 3600), split between the targets; findings are written as regression
# cases into fuzz-findings/ (or $FUZZ_OUT). Commit each one under tests/data/fuzz/
# once the parser is fixed. SEED varies the cases (CI always runs seed 0).
#   scripts/fuzz.sh [DURATION] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-3600}"
shift || true
out="${FUZZ_OUT:-fuzz-findings}"
seed="${SEED:-$(date +%s)}"
echo "fuzzing ${duration}s with run seed ${seed}; findings in ${out}/" >&2
cargo run --release --quiet -p vmscrub-fuzz -- run --seconds "$duration" --seed "$seed" --out "$out" "$@"
