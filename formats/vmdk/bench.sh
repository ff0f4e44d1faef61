#!/usr/bin/env bash
# Whole-disk sequential read of the benchmark VMDKs through vmscrub-vmdk, beside
# qemu-img reading the same files. Medians of 7 warm-cache runs (hyperfine).
#   formats/vmdk/bench.sh            # from anywhere in the repo
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 scripts/fixtures.py build bench-vmdk-stream bench-vmdk-sparse
cargo build --release -q -p vmscrub-vmdk --example vmdk_read
B=$(dirname "$(python3 scripts/fixtures.py path bench-vmdk-stream)")
R=target/release/examples/vmdk_read
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for img in bench-vmdk-stream bench-vmdk-sparse; do
  hyperfine -N -w 1 -r 7 --export-json "$OUT/$img.json" \
    "$R $B/$img.vmdk" \
    "qemu-img convert -n --target-image-opts $B/$img.vmdk driver=null-co,size=2147483648" \
    "qemu-img convert -O raw $B/$img.vmdk $OUT/q.raw" >/dev/null
  python3 - "$OUT/$img.json" <<'P'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
base = rs[0]["median"]
for r in rs:
    print(f"{r['median']*1000:8.1f} ms  x{r['median']/base:5.2f}  {r['command']}")
P
done
