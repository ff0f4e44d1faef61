#!/usr/bin/env bash
# Whole-disk read of the benchmark images through the qcow2 reader (examples/qcow2-read,
# allocated ranges only, 4 MiB reads, into a sink) beside `qemu-img convert -O raw`
# to a file on the same disk (the reference), and to qemu's null-co driver (qemu's
# read and decompress cost alone). Medians of hyperfine runs; JSON in $OUT.
#
#   formats/qcow2/benches/hyperfine.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${1:-7}
OUT=${OUT:-/tmp/qcow2-bench}
mkdir -p "$OUT"
python3 scripts/fixtures.py build bench-qcow2 bench-qcow2-zlib bench-qcow2-zstd
cargo build --release -p vmscrub-qcow2 --example qcow2-read
BIN=target/release/examples/qcow2-read
RAW="$OUT/out.raw"
for img in bench-qcow2 bench-qcow2-zlib bench-qcow2-zstd; do
  path=$(python3 scripts/fixtures.py path "$img")
  hyperfine --warmup 1 --runs "$RUNS" --export-json "$OUT/$img.json" \
    --prepare "rm -f $RAW" \
    -n "vmscrub-qcow2 $img" "$BIN $path" \
    -n "vmscrub-qcow2 2 threads $img" "$BIN $path --threads 2" \
    -n "qemu-img convert $img" "qemu-img convert -O raw $path $RAW" \
    -n "qemu-img convert to null-co $img" \
       "qemu-img convert -n -f qcow2 $path --target-image-opts driver=null-co,size=$(qemu-img info --output=json "$path" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')"
  rm -f "$RAW"
done
python3 - "$OUT" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("bench-*.json")):
    rs = json.loads(f.read_text())["results"]
    q = next(r for r in rs if r["command"].startswith("qemu-img convert") and "null-co" not in r["command"])
    for r in rs:
        print(f"{r['command']:45s} median {r['median']:.3f} s  user {r['user']:.2f} s  sys {r['system']:.2f} s  ratio {r['median'] / q['median']:.2f}")
PY
