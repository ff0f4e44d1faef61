#!/usr/bin/env bash
# `vmscrub convert` of the 2 GiB benchmark disk (raw, ~650 MB of data), beside the
# floors: qemu-img convert to the same format, and cp --sparse=always for raw.
# Medians of hyperfine runs (default 3; RUNS=N to change), plus output sizes.
#   scripts/bench-convert.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
python3 scripts/fixtures.py build bench-disk
cargo build --release -q -p vmscrub
IN=$(python3 scripts/fixtures.py path bench-disk)
V=target/release/vmscrub
OUT=$(mktemp -d "${TMPDIR:-/tmp}/bench-convert.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

report() {
  python3 - "$1" <<'P'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
base = rs[0]["median"]
for r in rs:
    print(f"  {r['median']:7.2f} s  x{r['median']/base:5.2f}  (min {r['min']:.2f}, max {r['max']:.2f})  {r['command']}")
P
}
size() { du -k --apparent-size "$1" | cut -f1; }
alloc() { du -k "$1" | cut -f1; }

echo "input: $IN ($(size "$IN") KiB apparent, $(alloc "$IN") KiB allocated), $(nproc) cores"

echo "raw -> VMDK streamOptimized"
hyperfine -N -w 1 -r "$RUNS" --export-json "$OUT/stream.json" \
  --prepare "rm -f $OUT/v.vmdk $OUT/q.vmdk" \
  "$V convert -q --subformat streamOptimized $IN $OUT/v.vmdk" \
  "qemu-img convert -O vmdk -o subformat=streamOptimized $IN $OUT/q.vmdk" >/dev/null
report "$OUT/stream.json"
$V convert -q --force --subformat streamOptimized "$IN" "$OUT/v.vmdk"
qemu-img convert -O vmdk -o subformat=streamOptimized "$IN" "$OUT/q.vmdk"
echo "  sizes: vmscrub $(size "$OUT/v.vmdk") KiB, qemu-img $(size "$OUT/q.vmdk") KiB"
for t in 1 2; do
  hyperfine -N -w 0 -r "$RUNS" --export-json "$OUT/t$t.json" \
    --prepare "rm -f $OUT/v.vmdk" \
    "$V convert -q --threads $t --subformat streamOptimized $IN $OUT/v.vmdk" >/dev/null
  report "$OUT/t$t.json"
done

# vmscrub fsyncs its output before renaming it into place; cp and qemu-img do not,
# so they are timed both bare and followed by `sync FILE` (same durability).
echo "raw -> raw"
hyperfine -w 1 -r "$RUNS" --export-json "$OUT/raw.json" \
  --prepare "rm -f $OUT/v.raw $OUT/c.raw $OUT/q.raw" \
  "$V convert -q -O raw $IN $OUT/v.raw" \
  "cp --sparse=always $IN $OUT/c.raw" \
  "cp --sparse=always $IN $OUT/c.raw && sync $OUT/c.raw" \
  "qemu-img convert -O raw $IN $OUT/q.raw" \
  "qemu-img convert -O raw $IN $OUT/q.raw && sync $OUT/q.raw" >/dev/null
report "$OUT/raw.json"
$V convert -q --force -O raw "$IN" "$OUT/v.raw"
cp --sparse=always "$IN" "$OUT/c.raw"
qemu-img convert -O raw "$IN" "$OUT/q.raw"
echo "  allocated: vmscrub $(alloc "$OUT/v.raw") KiB, cp $(alloc "$OUT/c.raw") KiB, qemu-img $(alloc "$OUT/q.raw") KiB"
