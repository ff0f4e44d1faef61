#!/usr/bin/env bash
# vmscrub benchmarks, each beside its floor (the cheapest tool doing the same I/O).
#
# usage: scripts/bench.sh [SECTION...]      sections: scan scrub archive debian lvm realistic xfs (default: all)
#        RUNS=5 WARMUP=1 THREADS=2 scripts/bench.sh scan
#
# Builds the release binary and the bench images (python3 scripts/fixtures.py build
# bench-qcow2 bench-disk: a 2 GiB GPT disk, ~650 MB in ~30 000 files), runs
# hyperfine (median of $RUNS runs after $WARMUP warm-up runs, page cache warm) and
# prints each median with its ratio to the floor. Other engineers add sections:
# a function `section_NAME` and its name in SECTIONS.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-5}"
WARMUP="${WARMUP:-1}"
THREADS="${THREADS:-2}"
SECTIONS=(scan scrub archive debian lvm realistic xfs)
OUT="${VMSCRUB_FIXTURE_DIR:-$ROOT/fixtures/build}"
VMSCRUB="${CARGO_TARGET_DIR:-$ROOT/target}/release/vmscrub"
CLEANUP=()
trap 'rm -rf "${CLEANUP[@]}"' EXIT

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

need() {
    command -v "$1" >/dev/null || { echo "bench.sh: $1 is not installed (scripts/install-deps.sh)" >&2; exit 1; }
}

# median_ratio JSON: one line per command of a hyperfine --export-json file: its
# median and its ratio to the first command (the floor).
median_ratio() {
    python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
floor = r[0]["median"]
for x in r:
    print(f"  {x['command']:<40} median {x['median']*1000:9.1f} ms   "
          f"(min {x['min']*1000:.1f}, max {x['max']*1000:.1f})   {x['median']/floor:5.2f}x the floor")
EOF
}

# `vmscrub scan` of the bench image with every content detector on (the default
# selection holds all four detector operations), $THREADS threads, beside
# `qemu-img convert -O raw` of the same image to a file: reading every allocated
# byte once is the least any audit of the image can do.
section_scan() {
    need hyperfine
    need qemu-img
    python3 scripts/fixtures.py build bench-qcow2 bench-disk >&2
    local tmp
    tmp="$(mktemp -d "$OUT/bench-scan.XXXXXX")"
    CLEANUP+=("$tmp")
    for fmt in raw qcow2; do
        local img
        if [ "$fmt" = raw ]; then img="$OUT/bench-disk.img"; else img="$OUT/bench-qcow2.qcow2"; fi
        local vsize
        vsize="$(qemu-img info --output json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"] >> 20)')"
        echo "scan, $fmt input: $img (${vsize} MiB virtual, $(du -m "$img" | cut -f1) MiB allocated)"
        hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/$fmt.json" \
            -n "qemu-img convert -O raw ($fmt)" \
            --prepare "rm -f $tmp/out.raw" \
            "qemu-img convert -f $fmt -O raw $img $tmp/out.raw" \
            -n "vmscrub scan --threads $THREADS ($fmt)" \
            "$VMSCRUB scan --threads $THREADS --format json $img" >&2
        median_ratio "$tmp/$fmt.json"
    done
    # What was scanned, so the numbers can be read against it.
    "$VMSCRUB" scan --threads "$THREADS" --format json "$OUT/bench-qcow2.qcow2" | python3 -c '
import json, sys
s = json.load(sys.stdin)["stats"]
print("  scanned: %d entries, %d files, %.0f MB of content" % (
    s["entries_walked"], s["files_content_scanned"], s["bytes_content_scanned"] / 1e6))'
}

# The bench root on an LVM2 logical volume (bench-lvm-disk, RHEL's layout) beside
# the same root on a plain partition (bench-disk): scan and scrub, interleaved in
# one hyperfine run each so both see the same machine; the LV must cost within 5 %.
section_lvm() {
    need hyperfine
    python3 scripts/fixtures.py build bench-disk bench-lvm-disk >&2
    local tmp
    tmp="$(mktemp -d "$OUT/bench-lvm.XXXXXX")"
    CLEANUP+=("$tmp")
    echo "lvm: the bench root on a partition and on an LV, $THREADS threads"
    hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/scan.json" \
        -n "scan (partition)" "$VMSCRUB scan --threads $THREADS --format json $OUT/bench-disk.img" \
        -n "scan (LV)" "$VMSCRUB scan --threads $THREADS --format json $OUT/bench-lvm-disk.img" >&2
    median_ratio "$tmp/scan.json"
    hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/scrub.json" \
        --prepare "rm -f $tmp/out.img" \
        -n "scrub (partition)" "$VMSCRUB scrub -q --threads $THREADS $OUT/bench-disk.img -o $tmp/out.img" \
        -n "scrub (LV)" "$VMSCRUB scrub -q --threads $THREADS $OUT/bench-lvm-disk.img -o $tmp/out.img" >&2
    median_ratio "$tmp/scrub.json"
}

# The bench root on XFS (bench-xfs-disk) beside the same root on ext4 (bench-disk):
# `scan` walks every entry and reads every file's content, interleaved in one
# hyperfine run so both see the same machine (issue 15: XFS within 10 % of ext4),
# with `qemu-img convert -O raw` of the XFS disk as the floor of each; then
# `scrub` of each beside its own cp + sync.
section_xfs() {
    need hyperfine
    need qemu-img
    python3 scripts/fixtures.py build bench-disk bench-xfs-disk >&2
    local tmp
    tmp="$(mktemp -d "$OUT/bench-xfs.XXXXXX")"
    CLEANUP+=("$tmp")
    echo "xfs: the bench root on ext4 and on XFS, $THREADS threads"
    hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/scan.json" \
        -n "scan (ext4)" "$VMSCRUB scan --threads $THREADS --format json $OUT/bench-disk.img" \
        -n "scan (xfs)" "$VMSCRUB scan --threads $THREADS --format json $OUT/bench-xfs-disk.img" >&2
    median_ratio "$tmp/scan.json"
    hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/floor.json" \
        --prepare "rm -f $tmp/out.raw" \
        -n "qemu-img convert -O raw (xfs)" "qemu-img convert -f raw -O raw $OUT/bench-xfs-disk.img $tmp/out.raw" \
        -n "vmscrub scan (xfs)" "$VMSCRUB scan --threads $THREADS --format json $OUT/bench-xfs-disk.img" >&2
    median_ratio "$tmp/floor.json"
    # scrub (issue 16: XFS within the same ratio to the copy floor as ext4): each
    # image's floor is cp + sync of the same image, interleaved with its scrubs.
    for fs in ext4 xfs; do
        local img="$OUT/bench-disk.img"
        [ "$fs" = xfs ] && img="$OUT/bench-xfs-disk.img"
        hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/scrub-$fs.json" \
            --prepare "rm -f $tmp/out.img" \
            -n "cp --sparse=always && sync ($fs)" "cp --sparse=always $img $tmp/out.img && sync $tmp/out.img" \
            -n "scrub --no-verify ($fs)" "$VMSCRUB scrub -q --threads $THREADS --no-verify $img -o $tmp/out.img" \
            -n "scrub ($fs)" "$VMSCRUB scrub -q --threads $THREADS $img -o $tmp/out.img" >&2
        median_ratio "$tmp/scrub-$fs.json"
    done
}

# `vmscrub scan` of a real Debian 12 cloud root (fixtures/debian.toml: debootstrapped
# from Debian's packages, ~340 MB in ~13 000 files; building it needs root and a
# mirror the first time) with package trust (the default: hits on package files
# are checked against dpkg's md5sums) and without, beside `qemu-img convert -O raw`.
section_debian() {
    need hyperfine
    need qemu-img
    python3 scripts/fixtures.py build debian-cloud-disk >&2
    local tmp img="$OUT/debian-cloud-disk.img"
    tmp="$(mktemp -d "$OUT/bench-debian.XXXXXX")"
    CLEANUP+=("$tmp")
    echo "scan, real Debian root: $img ($(du -m "$img" | cut -f1) MiB allocated)"
    hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/debian.json" \
        -n "qemu-img convert -O raw" \
        --prepare "rm -f $tmp/out.raw" \
        "qemu-img convert -f raw -O raw $img $tmp/out.raw" \
        -n "vmscrub scan --no-package-trust" \
        "$VMSCRUB scan --threads $THREADS --format json --no-package-trust $img" \
        -n "vmscrub scan (package trust)" \
        "$VMSCRUB scan --threads $THREADS --format json $img" >&2
    median_ratio "$tmp/debian.json"
}

# `vmscrub scrub` of the bench disk (raw in, raw out; default operations, which
# remove ~200 MB of logs; free space zeroed; verification on, and off) beside the
# copy floor: `cp --sparse=always` and `qemu-img convert -O raw` of the same image.
# vmscrub fsyncs its output before renaming it, so the floors are also timed
# followed by `sync` of their output (same durability). Then the same scrub with a
# recovery archive, and from the qcow2 image.
section_scrub() {
    need hyperfine
    need qemu-img
    need ssh-keygen
    python3 scripts/fixtures.py build bench-qcow2 bench-disk >&2
    local tmp img q
    tmp="$(mktemp -d "$OUT/bench-scrub.XXXXXX")"
    CLEANUP+=("$tmp")
    img="$OUT/bench-disk.img"
    q="$OUT/bench-qcow2.qcow2"
    ssh-keygen -q -t rsa -b 3072 -N '' -f "$tmp/key" >/dev/null
    echo "scrub, raw input: $img ($(du -m --apparent-size "$img" | cut -f1) MiB, $(du -m "$img" | cut -f1) MiB allocated), $THREADS threads"
    hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/scrub.json" \
        --prepare "rm -f $tmp/out.img $tmp/r.vsr" \
        -n "cp --sparse=always" "cp --sparse=always $img $tmp/out.img" \
        -n "cp --sparse=always && sync" "cp --sparse=always $img $tmp/out.img && sync $tmp/out.img" \
        -n "qemu-img convert -O raw" "qemu-img convert -f raw -O raw $img $tmp/out.img" \
        -n "qemu-img convert -O raw && sync" "qemu-img convert -f raw -O raw $img $tmp/out.img && sync $tmp/out.img" \
        -n "vmscrub scrub --no-verify" "$VMSCRUB scrub -q --threads $THREADS --no-verify $img -o $tmp/out.img" \
        -n "vmscrub scrub" "$VMSCRUB scrub -q --threads $THREADS $img -o $tmp/out.img" \
        -n "vmscrub scrub --recovery" "$VMSCRUB scrub -q --threads $THREADS $img -o $tmp/out.img --recovery $tmp/r.vsr --recipient $tmp/key.pub" \
        -n "vmscrub scrub (qcow2 in, raw out)" "$VMSCRUB scrub -q --threads $THREADS $q -O raw -o $tmp/out.img" >&2
    median_ratio "$tmp/scrub.json"
    rm -f "$tmp/out.img"
    "$VMSCRUB" scrub --threads "$THREADS" "$img" -o "$tmp/out.img" --recovery "$tmp/r.vsr" \
        --recipient "$tmp/key.pub" --report "$tmp/report.json" 2>&1 | grep -E 'removed|time|verified|archive' | sed 's/^/  /'
    echo "  output: $(du -m "$tmp/out.img" | cut -f1) MiB allocated (input $(du -m "$img" | cut -f1) MiB); archive $(du -m "$tmp/r.vsr" | cut -f1) MiB"
}

# The recovery archive inside a scrub: the bench-logs disk, where `logfiles`
# removes 1 GiB of log-like text (1024 files) and ~300 MB stays. The same scrub
# without --recovery and with it in each archive format (age, the default, and
# v1), for the same RSA key; the difference is what the archive costs, and 1 GiB
# over that difference its throughput.
section_archive() {
    need hyperfine
    need ssh-keygen
    python3 scripts/fixtures.py build bench-logs-disk >&2
    local tmp img
    tmp="$(mktemp -d "$OUT/bench-archive.XXXXXX")"
    CLEANUP+=("$tmp")
    img="$OUT/bench-logs-disk.img"
    ssh-keygen -q -t rsa -b 3072 -N '' -f "$tmp/key" >/dev/null
    echo "archive: $img (1 GiB of logs removed), $THREADS threads"
    local s="$VMSCRUB scrub -q --threads $THREADS"
    local r="--recovery $tmp/r.vsr --recipient $tmp/key.pub --archive-format"
    hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/archive.json" \
        --prepare "rm -f $tmp/out.img $tmp/r.vsr" \
        -n "vmscrub scrub --no-verify" "$s --no-verify $img -o $tmp/out.img" \
        -n "vmscrub scrub --no-verify --recovery (age)" "$s --no-verify $img -o $tmp/out.img $r age" \
        -n "vmscrub scrub --no-verify --recovery (v1)" "$s --no-verify $img -o $tmp/out.img $r v1" \
        -n "vmscrub scrub" "$s $img -o $tmp/out.img" \
        -n "vmscrub scrub --recovery (age)" "$s $img -o $tmp/out.img $r age" \
        -n "vmscrub scrub --recovery (v1)" "$s $img -o $tmp/out.img $r v1" >&2
    median_ratio "$tmp/archive.json"
    python3 - "$tmp/archive.json" <<'EOF2'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
for f in ("age", "v1"):
    d = r[f"vmscrub scrub --no-verify --recovery ({f})"] - r["vmscrub scrub --no-verify"]
    print(f"  archive cost ({f}): {d*1000:.0f} ms for 1 GiB removed = {1024/d if d > 0 else float('inf'):.0f} MiB/s of removed data")
EOF2
    for f in age v1; do
        rm -f "$tmp/r.vsr"
        $s --no-verify "$img" -o "$tmp/out.img" --force $r $f
        echo "  archive size ($f): $(du -m "$tmp/r.vsr" | cut -f1) MiB for 1024 MiB of logs"
    done
}

# Issue 19's figures, on the real Debian root (fixtures/debian.toml: GPT with an
# ESP and an ext4 root debootstrapped from Debian's packages with a cloud image's
# package set) in each input format users have: raw, qcow2, zlib-compressed
# qcow2 and a streamOptimized VMDK (made from the raw disk by qemu-img here).
# Per format, beside the floor `qemu-img convert -O raw` of the same input (with
# `sync` of its output, since vmscrub fsyncs its output before renaming it):
# `scrub` verified and --no-verify (raw out), and `scan` beside the floor without
# sync. Then each vmscrub command once more under /usr/bin/time for its peak
# memory (maximum resident set).
section_realistic() {
    need hyperfine
    need qemu-img
    need /usr/bin/time
    python3 scripts/fixtures.py build debian-cloud-disk >&2
    local tmp raw
    tmp="$(mktemp -d "$OUT/bench-realistic.XXXXXX")"
    CLEANUP+=("$tmp")
    raw="$OUT/debian-cloud-disk.img"
    qemu-img convert -f raw -O qcow2 "$raw" "$tmp/in.qcow2"
    qemu-img convert -f raw -O qcow2 -c "$raw" "$tmp/in-z.qcow2"
    qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$raw" "$tmp/in.vmdk"
    echo "realistic: $raw ($(du -m --apparent-size "$raw" | cut -f1) MiB, $(du -m "$raw" | cut -f1) MiB allocated), $THREADS threads"
    local fmt img
    for fmt in raw qcow2 qcow2-zlib vmdk-stream; do
        case $fmt in
            raw) img="$raw" ;;
            qcow2) img="$tmp/in.qcow2" ;;
            qcow2-zlib) img="$tmp/in-z.qcow2" ;;
            vmdk-stream) img="$tmp/in.vmdk" ;;
        esac
        echo "  $fmt input ($(du -m "$img" | cut -f1) MiB):"
        hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/scrub-$fmt.json" \
            --prepare "rm -f $tmp/out.img" \
            -n "qemu-img convert -O raw && sync" "qemu-img convert -O raw $img $tmp/out.img && sync $tmp/out.img" \
            -n "vmscrub scrub --no-verify" "$VMSCRUB scrub -q --threads $THREADS --no-verify $img -O raw -o $tmp/out.img" \
            -n "vmscrub scrub" "$VMSCRUB scrub -q --threads $THREADS $img -O raw -o $tmp/out.img" >&2
        median_ratio "$tmp/scrub-$fmt.json"
        hyperfine --style basic -w "$WARMUP" -r "$RUNS" --export-json "$tmp/scan-$fmt.json" \
            --prepare "rm -f $tmp/out.img" \
            -n "qemu-img convert -O raw" "qemu-img convert -O raw $img $tmp/out.img" \
            -n "vmscrub scan" "$VMSCRUB scan --threads $THREADS --format json $img" >&2
        median_ratio "$tmp/scan-$fmt.json" | tail -n 1
        rm -f "$tmp/out.img"
        local peak
        peak=$( { /usr/bin/time -f %M "$VMSCRUB" scrub -q --threads "$THREADS" "$img" -O raw -o "$tmp/out.img" >/dev/null; } 2>&1 | tail -n 1)
        echo "    peak memory: scrub $((peak / 1024)) MiB"
        rm -f "$tmp/out.img"
        peak=$( { /usr/bin/time -f %M "$VMSCRUB" scan --threads "$THREADS" --format json "$img" >/dev/null; } 2>&1 | tail -n 1)
        echo "    peak memory: scan $((peak / 1024)) MiB"
    done
    "$VMSCRUB" scrub --threads "$THREADS" "$raw" -o "$tmp/out.img" 2>&1 | grep -E 'time:' | sed 's/^/  phases (raw, verified): /'
}

main() {
    local want=("$@")
    [ ${#want[@]} -eq 0 ] && want=("${SECTIONS[@]}")
    for s in "${want[@]}"; do
        case " ${SECTIONS[*]} " in
            *" $s "*) ;;
            *) echo "bench.sh: unknown section '$s'" >&2; usage ;;
        esac
    done
    need cargo
    cargo build --release --bin vmscrub >&2
    for s in "${want[@]}"; do
        "section_$s"
    done
}

case "${1:-}" in
    -h|--help) usage ;;
esac
main "$@"
