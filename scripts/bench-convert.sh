#!/usr/bin/env bash
# `vmscrub convert` of the 2 GiB benchmark disk (raw, ~650 MB of data), beside the
# floors: qemu-img convert to the same format, and cp --sparse=always for raw.
# Medians of hyperfine runs (default 3; RUNS=N to change), plus output sizes.
# Sections: stream (VMDK streamOptimized), raw, qcow2 (plain, zlib, zstd); pass
# some to run only those: scripts/bench-convert.sh qcow2
#   scripts/bench-convert.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
python3 scripts/fixtures.py build bench-disk
cargo build --release -q -p vmscrub
IN=$(python3 scripts/fixtures.py path bench-disk)
V=${CARGO_TARGET_DIR:-target}/release/vmscrub
SECTIONS=${*:-stream raw qcow2}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
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

if want stream; then
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
fi

# vmscrub fsyncs its output before renaming it into place; cp and qemu-img do not,
# so they are timed both bare and followed by `sync FILE` (same durability).
if want raw; then
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
fi

# qcow2: plain against qemu-img's default convert (bare and + sync); compressed
# against qemu-img's best multi-threaded mode (-m 16 -W: 16 coroutines,
# out-of-order writes), zlib and zstd. With eatmydata installed, vmscrub is also
# timed with its fsync made a no-op: the same durability as bare qemu-img.
if want qcow2; then
echo "raw -> qcow2"
NOSYNC=()
if command -v eatmydata >/dev/null; then
  NOSYNC=("eatmydata $V convert -q -O qcow2 $IN $OUT/v.qcow2")
fi
hyperfine -w 1 -r "$RUNS" --export-json "$OUT/qcow2.json" \
  --prepare "rm -f $OUT/v.qcow2 $OUT/q.qcow2" \
  "$V convert -q -O qcow2 $IN $OUT/v.qcow2" \
  "${NOSYNC[@]}" \
  "qemu-img convert -O qcow2 $IN $OUT/q.qcow2" \
  "qemu-img convert -O qcow2 $IN $OUT/q.qcow2 && sync $OUT/q.qcow2" \
  "qemu-img convert -m 16 -W -O qcow2 $IN $OUT/q.qcow2 && sync $OUT/q.qcow2" >/dev/null
report "$OUT/qcow2.json"
$V convert -q --force -O qcow2 "$IN" "$OUT/v.qcow2"
qemu-img convert -O qcow2 "$IN" "$OUT/q.qcow2"
echo "  sizes: vmscrub $(size "$OUT/v.qcow2") KiB, qemu-img $(size "$OUT/q.qcow2") KiB"
for c in zlib zstd; do
  echo "raw -> qcow2, $c-compressed"
  hyperfine -w 1 -r "$RUNS" --export-json "$OUT/qcow2-$c.json" \
    --prepare "rm -f $OUT/v.qcow2 $OUT/q.qcow2" \
    "$V convert -q -O qcow2 --compress=$c $IN $OUT/v.qcow2" \
    "qemu-img convert -c -m 16 -W -O qcow2 -o compression_type=$c $IN $OUT/q.qcow2" \
    "qemu-img convert -c -m 16 -W -O qcow2 -o compression_type=$c $IN $OUT/q.qcow2 && sync $OUT/q.qcow2" >/dev/null
  report "$OUT/qcow2-$c.json"
  $V convert -q --force -O qcow2 --compress=$c "$IN" "$OUT/v.qcow2"
  qemu-img convert -c -m 16 -W -O qcow2 -o compression_type=$c "$IN" "$OUT/q.qcow2"
  echo "  sizes: vmscrub $(size "$OUT/v.qcow2") KiB, qemu-img $(size "$OUT/q.qcow2") KiB"
done
for t in 1 2; do
  hyperfine -w 0 -r "$RUNS" --export-json "$OUT/qt$t.json" \
    --prepare "rm -f $OUT/v.qcow2" \
    "$V convert -q --threads $t -O qcow2 --compress $IN $OUT/v.qcow2" >/dev/null
  report "$OUT/qt$t.json"
done
fi
