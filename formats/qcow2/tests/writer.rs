//! The writer judged by qemu: synthetic disks (zero, random, compressible and
//! constant clusters, a short last cluster, many L2 spans) written with each
//! version, cluster size and compression, then `qemu-img check` (no errors, no
//! leaks, nothing past the image end), `qemu-img compare` against the raw disk,
//! `qemu-img info` and `qemu-img map` (which clusters are compressed), and our
//! own reader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use common::Rng;
use vmscrub_blockdev::{FileDisk, ReadAt};
use vmscrub_qcow2::{
    ClusterCompressor, CompressionType, OpenOptions, Qcow2, Summary, Version, Writer, WriterOptions,
};

/// One guest cluster's content, by kind.
fn cluster(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &["qcow2 ", "cluster ", "refcount ", "L2 ", "table ", "zero\n"];
    match rng.below(10) {
        0..=2 => vec![0; len],
        3 | 4 => (0..len).map(|_| rng.next() as u8).collect(),
        5 => vec![rng.next() as u8 | 1; len],
        _ => {
            let mut v = Vec::with_capacity(len + 16);
            while v.len() < len {
                v.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
                if rng.below(5) == 0 {
                    v.push(rng.next() as u8);
                }
            }
            v.truncate(len);
            v
        }
    }
}

/// A disk of `size` bytes with data in the given cluster ranges (the rest
/// unallocated), as (index, bytes) in order.
fn make_disk(
    size: u64,
    cs: u64,
    islands: &[std::ops::Range<u64>],
    seed: u64,
) -> Vec<(u64, Vec<u8>)> {
    let mut rng = Rng::new(seed);
    let last = size.div_ceil(cs);
    let mut out = Vec::new();
    let mut next = 0;
    for r in islands {
        for i in r.start.max(next)..r.end.min(last) {
            next = i + 1;
            let len = (size - i * cs).min(cs) as usize;
            out.push((i, cluster(&mut rng, len)));
        }
    }
    out
}

/// Feeds the writer the way the output pipeline does: zero clusters skipped,
/// compressed where it pays when compressing.
fn write(
    path: &Path,
    size: u64,
    opts: &WriterOptions,
    disk: &[(u64, Vec<u8>)],
    compress: bool,
) -> Summary {
    let f = std::fs::File::create(path).unwrap();
    let mut w = Writer::new(std::io::BufWriter::new(f), size, opts).unwrap();
    let mut c =
        ClusterCompressor::new(opts.compression, opts.cluster_size() as usize, None).unwrap();
    for (i, data) in disk {
        if data.iter().all(|&b| b == 0) {
            continue;
        }
        match compress.then(|| c.compress(data).unwrap()).flatten() {
            Some(z) => w.write_compressed(*i, z).unwrap(),
            None => w.write_data(*i, data).unwrap(),
        }
    }
    let (buf, summary) = w.finish().unwrap();
    buf.into_inner().unwrap().sync_all().unwrap();
    summary
}

fn raw(path: &Path, size: u64, cs: u64, disk: &[(u64, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (i, data) in disk {
        f.write_all_at(data, i * cs).unwrap();
    }
}

fn json(args: &[&dyn AsRef<std::ffi::OsStr>]) -> serde_json::Value {
    serde_json::from_slice(&vmscrub_fixtures::run("qemu-img", args)).unwrap()
}

/// `qemu-img check`: exit 0, and no errors, leaks or corruptions in its JSON.
fn qemu_check(path: &Path, what: &str) -> serde_json::Value {
    let o = Command::new("qemu-img")
        .args(["check", "--output=json", "-f", "qcow2"])
        .arg(path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{what}: {}", String::from_utf8_lossy(&o.stderr)));
    for k in [
        "check-errors",
        "leaks",
        "corruptions",
        "leaks-fixed",
        "corruptions-fixed",
    ] {
        assert_eq!(v[k].as_u64().unwrap_or(0), 0, "{what}: {k} in {v}");
    }
    assert!(
        o.status.success(),
        "{what}: {v} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    v
}

fn qemu_compare(out: &Path, raw: &Path, what: &str) {
    let o = Command::new("qemu-img")
        .args(["compare", "-f", "qcow2", "-F", "raw"])
        .arg(out)
        .arg(raw)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Bytes of guest disk `qemu-img map` calls compressed.
fn compressed_bytes(path: &Path) -> u64 {
    json(&[&"map", &"--output=json", &"-f", &"qcow2", &path])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["compressed"].as_bool() == Some(true))
        .map(|e| e["length"].as_u64().unwrap())
        .sum()
}

fn same_bytes(path: &Path, size: u64, cs: u64, disk: &[(u64, Vec<u8>)], what: &str) {
    let img = Qcow2::open(FileDisk::open(path).unwrap(), None, &OpenOptions::default()).unwrap();
    let size = size.next_multiple_of(512);
    assert_eq!(img.size(), size, "{what}: whole sectors");
    let mut want = vec![0u8; size as usize];
    for (i, d) in disk {
        want[(i * cs) as usize..(i * cs) as usize + d.len()].copy_from_slice(d);
    }
    let mut got = vec![0u8; size as usize];
    img.read_exact_at(&mut got, 0).unwrap();
    assert!(got == want, "{what}: our reader disagrees");
}

struct Case {
    version: Version,
    bits: u32,
    compression: Option<CompressionType>,
    l2_memory: usize,
}

fn judge_case(c: &Case, size: u64, islands: &[std::ops::Range<u64>], seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let cs = 1u64 << c.bits;
    let mut opts = WriterOptions::default();
    opts.version = c.version;
    opts.cluster_bits = c.bits;
    opts.compression = c.compression.unwrap_or(CompressionType::Zlib);
    opts.l2_memory = c.l2_memory;
    let what = format!(
        "v{} {}-byte clusters {:?} l2_memory {}",
        c.version.number(),
        cs,
        c.compression,
        c.l2_memory
    );
    let disk = make_disk(size, cs, islands, seed);
    let out = dir.path().join("o.qcow2");
    let summary = write(&out, size, &opts, &disk, c.compression.is_some());
    let r = dir.path().join("o.raw");
    raw(&r, size, cs, &disk);

    let check = qemu_check(&out, &what);
    let file_size = std::fs::metadata(&out).unwrap().len();
    assert_eq!(file_size, summary.file_size, "{what}");
    assert_eq!(
        check["image-end-offset"].as_u64(),
        Some(file_size),
        "{what}: {check}"
    );
    qemu_compare(&out, &r, &what);
    let info = json(&[&"info", &"--output=json", &out]);
    assert_eq!(info["format"], "qcow2", "{what}");
    assert_eq!(info["cluster-size"].as_u64(), Some(cs), "{what}");
    assert_eq!(
        info["virtual-size"].as_u64(),
        Some(size.next_multiple_of(512)),
        "{what}"
    );
    let data = &info["format-specific"]["data"];
    assert_eq!(data["compat"], c.version.compat(), "{what}");
    if c.version == Version::V3 {
        assert_eq!(data["compression-type"], opts.compression.name(), "{what}");
        assert_eq!(data["refcount-bits"].as_u64(), Some(16), "{what}");
        assert_eq!(data["corrupt"], false, "{what}");
    }
    assert!(info.get("backing-filename").is_none(), "{what}");
    // Compressed exactly where the summary says; no cluster wasted.
    let compressed = compressed_bytes(&out);
    let guest_compressed: u64 = disk
        .iter()
        .filter(|(_, d)| d.iter().any(|&b| b != 0))
        .count() as u64
        - summary.data_clusters;
    assert_eq!(guest_compressed, summary.compressed_clusters, "{what}");
    assert!(
        compressed.div_ceil(cs) == summary.compressed_clusters
            || compressed / cs == summary.compressed_clusters,
        "{what}: map says {compressed} bytes compressed, summary {summary:?}"
    );
    if c.compression.is_some() {
        assert!(summary.compressed_clusters > 0, "{what}");
        assert!(
            summary.data_clusters > 0,
            "{what}: random clusters stay plain"
        );
    } else {
        assert_eq!(summary.compressed_clusters, 0, "{what}");
    }
    let total = check["total-clusters"].as_u64().unwrap();
    assert_eq!(
        check["allocated-clusters"].as_u64().unwrap(),
        summary.data_clusters + summary.compressed_clusters,
        "{what}: {check}"
    );
    assert!(total >= size / cs, "{what}");
    same_bytes(&out, size, cs, &disk, &what);
}

#[test]
fn every_version_cluster_size_and_compression() {
    let cases = [
        (Version::V3, 16, None),
        (Version::V3, 16, Some(CompressionType::Zlib)),
        (Version::V3, 16, Some(CompressionType::Zstd)),
        (Version::V2, 16, None),
        (Version::V2, 16, Some(CompressionType::Zlib)),
        (Version::V3, 9, Some(CompressionType::Zlib)),
        (Version::V3, 12, Some(CompressionType::Zstd)),
        (Version::V3, 12, None),
        (Version::V3, 21, Some(CompressionType::Zlib)),
        (Version::V3, 21, None),
    ];
    for (n, (version, bits, compression)) in cases.into_iter().enumerate() {
        let cs = 1u64 << bits;
        let l2_span = cs * cs / 8;
        // Data at the start, across the first L2 boundary, and in the short last
        // cluster; the disk is never a whole number of clusters.
        let size = (l2_span + 40 * cs).min(64 << 20).max(3 * cs) + 777;
        let last = size / cs;
        let boundary = (l2_span / cs).min(last);
        let islands = [
            0..24,
            boundary.saturating_sub(5)..boundary + 6,
            last.saturating_sub(3)..last + 1,
        ];
        judge_case(
            &Case {
                version,
                bits,
                compression,
                l2_memory: vmscrub_qcow2::DEFAULT_L2_MEMORY,
            },
            size,
            &islands,
            n as u64 + 1,
        );
    }
}

/// With no memory for finished L2 tables, each is written between the data as
/// soon as the next one starts: still valid, still leak-free.
#[test]
fn l2_tables_spilled_between_data() {
    for (bits, compression) in [(9, Some(CompressionType::Zlib)), (12, None)] {
        let cs = 1u64 << bits;
        let span = cs / 8;
        let size = 7 * span * cs + 5;
        let islands = [0..span * 3 + 2, span * 5 - 1..span * 7 + 1];
        judge_case(
            &Case {
                version: Version::V3,
                bits,
                compression,
                l2_memory: 0,
            },
            size,
            &islands,
            99,
        );
    }
}

/// An 8 TiB disk with a few islands of data: a small file, a handful of tables.
#[test]
fn huge_sparse_disk_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.qcow2");
    let size = 8u64 << 40;
    let opts = WriterOptions::default();
    let cs = opts.cluster_size();
    let islands = [
        0..3,
        (4 << 40) / cs..(4 << 40) / cs + 2,
        size / cs - 1..size / cs,
    ];
    let mut disk = make_disk(size, cs, &islands, 5);
    for (_, d) in &mut disk {
        d[0] = 0x55; // no zero clusters: every one is stored
    }
    let s = write(&out, size, &opts, &disk, true);
    assert_eq!(s.l2_tables, 3);
    let check = qemu_check(&out, "8 TiB");
    assert_eq!(check["allocated-clusters"].as_u64(), Some(6));
    // Header, data, 3 L2 tables, a 128 KiB L1, one refcount block and table.
    assert!(s.file_size < 20 * cs, "{s:?}");
    let info = json(&[&"info", &"--output=json", &out]);
    assert_eq!(info["virtual-size"].as_u64(), Some(size));
    let img = Qcow2::open(FileDisk::open(&out).unwrap(), None, &OpenOptions::default()).unwrap();
    let mut buf = vec![0u8; cs as usize];
    for (i, d) in &disk {
        img.read_exact_at(&mut buf, i * cs).unwrap();
        assert!(buf == *d, "cluster {i}");
    }
    let allocated: u64 = img
        .allocated_ranges()
        .unwrap()
        .iter()
        .map(|r| r.end - r.start)
        .sum();
    assert_eq!(allocated, 6 * cs);
}

/// Random 6 KiB, text, the same 6 KiB again 26 KiB later, more text: a 32 KiB
/// window would copy the block from 26 KiB back.
fn far_repeat(cs: usize) -> Vec<u8> {
    let mut rng = Rng::new(3);
    let block: Vec<u8> = (0..6144).map(|_| rng.next() as u8).collect();
    let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog "
        .iter()
        .cycle()
        .take(20 << 10)
        .copied()
        .collect();
    let mut d = [&block[..], &text, &block, &text].concat();
    d.resize(cs, b'.');
    d
}

/// Inflates `z` with system zlib (Python's) declaring qemu's 4 KiB window and
/// taking 1 KiB of output at a time, so the window is all the history it has.
fn inflates_with_a_4k_window(z: &[u8], want: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("z"), z).unwrap();
    std::fs::write(dir.path().join("want"), want).unwrap();
    let script = r#"
import sys, zlib
z = open(sys.argv[1] + '/z', 'rb').read()
want = open(sys.argv[1] + '/want', 'rb').read()
d = zlib.decompressobj(-12)
out = b''
while len(out) < len(want):
    got = d.decompress(z, 1024)
    z = d.unconsumed_tail
    if not got:
        sys.exit('stuck')
    out += got
sys.exit(0 if out[:len(want)] == want else 'differs')
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .unwrap();
    o.status.success()
}

/// Our deflate streams stay within the 4 KiB window qemu declares, so any
/// reader built to match accepts them (qemu itself inflates a whole cluster at
/// once and would not notice).
#[test]
fn zlib_streams_need_only_a_4k_window() {
    let cs = 65536;
    let data = far_repeat(cs);
    let mut c = ClusterCompressor::new(CompressionType::Zlib, cs, None).unwrap();
    let z = c.compress(&data).unwrap().unwrap().to_vec();
    assert!(inflates_with_a_4k_window(&z, &data));
    // The check has teeth: the same data deflated with a 32 KiB window fails it.
    let mut wide = flate2::Compress::new(flate2::Compression::new(6), false);
    let mut out = vec![0u8; cs];
    wide.compress(&data, &mut out, flate2::FlushCompress::Finish)
        .unwrap();
    let n = wide.total_out() as usize;
    assert!(n < z.len(), "the wide window found the far copy");
    assert!(!inflates_with_a_4k_window(&out[..n], &data));
}
