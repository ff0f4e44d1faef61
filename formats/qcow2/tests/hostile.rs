//! The bad-input corpus: copies of valid fixtures, truncated or with one field or
//! table entry set to something absurd. Each must give an `Err` whose message names
//! the problem — never a panic, and never data.
//!
//! Structure offsets are found here with a few lines of independent parsing (not
//! with the reader under test), so a bug in the reader cannot hide the target.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use vmscrub_blockdev::{FileDisk, MemDisk, ReadAt};
use vmscrub_qcow2::{Error, OpenOptions, Qcow2};

fn bytes_of(name: &str) -> Vec<u8> {
    std::fs::read(common::fixture_cached(name)).unwrap()
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;

/// Where things are in an image, read straight from the bytes.
struct Layout {
    cluster_bits: u32,
    l1_offset: usize,
    l1_size: usize,
    /// (L1 index, L2 table offset)
    l2_tables: Vec<(usize, usize)>,
    /// File offsets of L2 entries for standard data clusters, and their host offsets.
    data: Vec<(usize, u64)>,
    /// File offsets of L2 entries for compressed clusters, and the data's host offset.
    compressed: Vec<(usize, u64)>,
}

fn layout(b: &[u8]) -> Layout {
    let cluster_bits = be32(b, 20);
    let cs = 1usize << cluster_bits;
    let l1_size = be32(b, 36) as usize;
    let l1_offset = be64(b, 40) as usize;
    let mut l = Layout {
        cluster_bits,
        l1_offset,
        l1_size,
        l2_tables: vec![],
        data: vec![],
        compressed: vec![],
    };
    for i in 0..l1_size {
        let l2 = (be64(b, l1_offset + 8 * i) & OFFSET_MASK) as usize;
        if l2 == 0 {
            continue;
        }
        l.l2_tables.push((i, l2));
        for j in 0..cs / 8 {
            let at = l2 + 8 * j;
            let e = be64(b, at);
            if e & (1 << 62) != 0 {
                let x = 62 - (cluster_bits - 8);
                l.compressed.push((at, e & ((1 << x) - 1)));
            } else if e & 1 == 0 && e & OFFSET_MASK != 0 {
                l.data.push((at, e & OFFSET_MASK));
            }
        }
    }
    l
}

fn backing_for(name: &str) -> Option<Arc<dyn ReadAt>> {
    (name == "q-small-backed").then(|| {
        let base = common::fixture_cached("q-small");
        Arc::new(
            Qcow2::open(
                FileDisk::open(&base).unwrap(),
                None,
                &OpenOptions::default(),
            )
            .unwrap(),
        ) as Arc<dyn ReadAt>
    })
}

/// Opens the image, maps it and reads the whole disk (bounded to 64 MiB).
fn open_and_read(
    bytes: Vec<u8>,
    backing: Option<Arc<dyn ReadAt>>,
) -> Result<Qcow2<MemDisk>, String> {
    let disk = Qcow2::open(MemDisk::new(bytes), backing, &OpenOptions::default())
        .map_err(|e| e.to_string())?;
    disk.allocated_ranges().map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 * 1024];
    let end = disk.size().min(64 << 20);
    let mut pos = 0;
    while pos < end {
        let n = (end - pos).min(buf.len() as u64) as usize;
        disk.read_exact_at(&mut buf[..n], pos)
            .map_err(|e| e.to_string())?;
        pos += n as u64;
    }
    Ok(disk)
}

#[track_caller]
fn expect_err(what: &str, bytes: Vec<u8>, backing: Option<Arc<dyn ReadAt>>, needles: &[&str]) {
    match open_and_read(bytes, backing) {
        Ok(_) => panic!("{what}: opened and read without error"),
        Err(msg) => {
            let lower = msg.to_lowercase();
            assert!(
                needles.iter().any(|n| lower.contains(&n.to_lowercase())),
                "{what}: error {msg:?} does not mention any of {needles:?}"
            );
        }
    }
}

fn patched(name: &str, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = bytes_of(name);
    f(&mut b);
    b
}

#[test]
fn the_seeds_are_valid() {
    for name in [
        "q-small",
        "q-small-zlib",
        "q-small-zstd",
        "q-small-v2-512",
        "q-small-backed",
    ] {
        open_and_read(bytes_of(name), backing_for(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let l = layout(&bytes_of(name));
        assert!(!l.l2_tables.is_empty(), "{name}");
        assert!(!l.data.is_empty() || !l.compressed.is_empty(), "{name}");
    }
    assert!(!layout(&bytes_of("q-small-zlib")).compressed.is_empty());
    assert!(!layout(&bytes_of("q-small-zstd")).compressed.is_empty());
}

#[test]
fn header_fields_set_to_absurd_values() {
    let s = "q-small";
    type Patch = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Patch, &[&str])> = vec![
        ("magic", Box::new(|b| b[3] = 0), &["not a qcow2 image"]),
        (
            "version 1",
            Box::new(|b| put32(b, 4, 1)),
            &["unsupported qcow2 version 1"],
        ),
        (
            "version 4",
            Box::new(|b| put32(b, 4, 4)),
            &["unsupported qcow2 version 4"],
        ),
        (
            "version max",
            Box::new(|b| put32(b, 4, u32::MAX)),
            &["unsupported qcow2 version"],
        ),
        (
            "cluster_bits 8",
            Box::new(|b| put32(b, 20, 8)),
            &["cluster_bits"],
        ),
        (
            "cluster_bits 22",
            Box::new(|b| put32(b, 20, 22)),
            &["cluster_bits"],
        ),
        (
            "cluster_bits max",
            Box::new(|b| put32(b, 20, u32::MAX)),
            &["cluster_bits"],
        ),
        (
            "size max",
            Box::new(|b| put64(b, 24, u64::MAX)),
            &["virtual size does not fit"],
        ),
        (
            "size 2^62",
            Box::new(|b| put64(b, 24, 1 << 62)),
            &["l1_size", "L1 entries"],
        ),
        (
            "crypt_method 1",
            Box::new(|b| put32(b, 32, 1)),
            &["encrypted (crypt_method 1: AES"],
        ),
        (
            "crypt_method 2",
            Box::new(|b| put32(b, 32, 2)),
            &["encrypted (crypt_method 2: LUKS"],
        ),
        (
            "crypt_method 9",
            Box::new(|b| put32(b, 32, 9)),
            &["encrypted (crypt_method 9"],
        ),
        (
            "l1_size max",
            Box::new(|b| put32(b, 36, u32::MAX)),
            &["l1_size", "32 MiB"],
        ),
        ("l1_size 0", Box::new(|b| put32(b, 36, 0)), &["l1_size"]),
        (
            "l1_size past eof",
            Box::new(|b| put32(b, 36, 4_000_000)),
            &["active L1 table", "past the end"],
        ),
        (
            "l1 offset unaligned",
            Box::new(|b| put64(b, 40, 0x3008)),
            &["l1_table_offset", "aligned"],
        ),
        (
            "l1 offset past eof",
            Box::new(|b| put64(b, 40, 1 << 40)),
            &["active L1 table at file offset 0x10000000000"],
        ),
        (
            "l1 offset overflow",
            Box::new(|b| put64(b, 40, !0xfff)),
            &["l1_table_offset", "overflow"],
        ),
        (
            "l1 offset 0",
            Box::new(|b| put64(b, 40, 0)),
            &["l1_table_offset", "header"],
        ),
        (
            "refcount table unaligned",
            Box::new(|b| put64(b, 48, 0x1001)),
            &["refcount_table_offset"],
        ),
        (
            "refcount clusters max",
            Box::new(|b| put32(b, 56, u32::MAX)),
            &["refcount_table_clusters"],
        ),
        (
            "nb_snapshots max",
            Box::new(|b| put32(b, 60, u32::MAX)),
            &["nb_snapshots"],
        ),
        (
            "snapshots unaligned",
            Box::new(|b| put64(b, 64, 0x123)),
            &["snapshots_offset"],
        ),
        (
            "unknown incompatible bit 5",
            Box::new(|b| b[79] |= 0x20),
            &["unknown incompatible features 0x20"],
        ),
        (
            "unknown incompatible bit 63",
            Box::new(|b| b[72] |= 0x80),
            &["unknown incompatible features 0x8000000000000000"],
        ),
        (
            "external data file bit",
            Box::new(|b| b[79] |= 0x04),
            &["external data file"],
        ),
        (
            "extended L2 bit",
            Box::new(|b| b[79] |= 0x10),
            &["extended L2"],
        ),
        (
            "compression bit with zlib",
            Box::new(|b| b[79] |= 0x08),
            &["compression type bit is set"],
        ),
        (
            "refcount_order 7",
            Box::new(|b| put32(b, 96, 7)),
            &["refcount_order"],
        ),
        (
            "header_length 8",
            Box::new(|b| put32(b, 100, 8)),
            &["header_length"],
        ),
        (
            "header_length 103",
            Box::new(|b| put32(b, 100, 103)),
            &["header_length"],
        ),
        (
            "header_length max",
            Box::new(|b| put32(b, 100, u32::MAX)),
            &["header_length"],
        ),
        (
            "compression type 2",
            Box::new(|b| {
                b[79] |= 0x08;
                b[104] = 2;
            }),
            &["unknown compression type 2"],
        ),
        (
            "zstd without the bit",
            Box::new(|b| b[104] = 1),
            &["zstd compression without"],
        ),
        (
            "backing offset max",
            Box::new(|b| put64(b, 8, u64::MAX)),
            &["backing_file_offset"],
        ),
        (
            "backing offset inside the header",
            Box::new(|b| {
                put64(b, 8, 16);
                put32(b, 16, 4);
            }),
            &["backing_file_offset", "overlaps"],
        ),
        (
            "header extension length past the cluster",
            Box::new(|b| {
                let at = be32(b, 100) as usize;
                put32(b, at, 0x1234_5678);
                put32(b, at + 4, 0xffff_fff0);
            }),
            &[
                "header extension 0x12345678",
                "runs past the end of the extension area",
            ],
        ),
        (
            "extension header cut by the area end",
            Box::new(|b| {
                // A backing name at 0x74 leaves 4 bytes of extension area at 0x70.
                put64(b, 8, 0x74);
                put32(b, 16, 4);
                b[0x70..0x74].copy_from_slice(&[1, 2, 3, 4]);
            }),
            &["needs 8 bytes"],
        ),
    ];
    for (what, f, needles) in cases {
        expect_err(what, patched(s, f), None, needles);
    }
}

#[test]
fn version_2_headers_refuse_what_v2_cannot_have() {
    let s = "q-small-v2-512";
    expect_err(
        "v2 zero flag",
        patched(s, |b| {
            let l = layout(b);
            let (at, _) = l.data[0];
            b[at + 7] |= 1;
        }),
        None,
        &["zero-cluster flag in a version 2 image"],
    );
    expect_err(
        "v2 cluster_bits 30",
        patched(s, |b| put32(b, 20, 30)),
        None,
        &["cluster_bits"],
    );
}

#[test]
fn backing_names_and_formats_out_of_bounds() {
    let s = "q-small-backed";
    expect_err(
        "backing name length max",
        patched(s, |b| put32(b, 16, u32::MAX)),
        backing_for(s),
        &["backing_file_size"],
    );
    expect_err(
        "backing name 2000 bytes",
        patched(s, |b| put32(b, 16, 2000)),
        backing_for(s),
        &["backing_file_size"],
    );
    expect_err(
        "backing format 40 bytes",
        patched(s, |b| {
            put64(b, 8, 0x200);
            put32(b, 0x74, 40);
        }),
        backing_for(s),
        &["backing file format name is 40 bytes"],
    );
    expect_err(
        "backing format extension past its area",
        patched(s, |b| put32(b, 0x74, 40)),
        backing_for(s),
        &["runs past the end of the extension area"],
    );
    expect_err(
        "backing format twice",
        patched(s, |b| {
            put64(b, 8, 0x200);
            let first: Vec<u8> = b[0x70..0x80].to_vec();
            b[0x80..0x90].copy_from_slice(&first);
        }),
        backing_for(s),
        &["appears twice"],
    );
    // Without a backing device, an overlay is refused by default.
    expect_err(
        "no backing device",
        bytes_of(s),
        None,
        &["has a backing file (\"q-small.qcow2\")"],
    );
}

#[test]
fn unknown_features_are_named_from_the_feature_table() {
    let b = patched("q-small", |b| {
        b[79] |= 0x20;
        // A feature name table extension at 0x70 naming incompatible bit 5.
        put32(b, 0x70, 0x6803_f857);
        put32(b, 0x74, 48);
        b[0x78] = 0;
        b[0x79] = 5;
        b[0x7a..0x7a + 14].copy_from_slice(b"future-feature");
    });
    expect_err("named unknown bit", b, None, &["bit 5: future-feature"]);
}

#[test]
fn dirty_and_corrupt_bits_open_and_are_reported() {
    let d = open_and_read(patched("q-small", |b| b[79] |= 0x01), None).unwrap();
    assert!(d.info().dirty && !d.info().corrupt);
    let c = open_and_read(patched("q-small", |b| b[79] |= 0x02), None).unwrap();
    assert!(c.info().corrupt && !c.info().dirty);
}

#[test]
fn truncated_at_many_points() {
    for name in [
        "q-small",
        "q-small-zlib",
        "q-small-zstd",
        "q-small-v2-512",
        "q-small-backed",
    ] {
        let full = bytes_of(name);
        let l = layout(&full);
        let cs = 1usize << l.cluster_bits;
        let mut points = vec![
            0,
            3,
            50,
            71,
            80,
            100,
            103,
            l.l1_offset + 4,
            l.l1_offset + 8 * l.l1_size - 1,
        ];
        for &(_, l2) in l.l2_tables.iter().take(3) {
            points.push(l2 + 100.min(cs / 2));
        }
        for &(_, host) in l.data.iter().step_by((l.data.len() / 5).max(1)).take(6) {
            points.push(host as usize + cs / 2);
        }
        for &(_, host) in l
            .compressed
            .iter()
            .step_by((l.compressed.len() / 5).max(1))
            .take(6)
        {
            points.push(host as usize + 4);
        }
        for p in points {
            let cut = full[..p.min(full.len() - 1)].to_vec();
            expect_err(
                &format!("{name} truncated to {p} bytes"),
                cut,
                backing_for(name),
                &[
                    "too short",
                    "past the end",
                    "inflates to",
                    "zstd frame",
                    "ends after",
                ],
            );
        }
    }
}

#[test]
fn table_entries_pointing_past_eof_or_unaligned() {
    let s = "q-small";
    let b = bytes_of(s);
    let l = layout(&b);
    let (l2_index_at, _) = (l.l1_offset, ());
    expect_err(
        "L1 entry past eof",
        patched(s, |b| put64(b, l2_index_at, (1 << 63) | (1 << 40))),
        None,
        &["L2 table of L1 entry 0", "past the end"],
    );
    expect_err(
        "L1 entry unaligned",
        patched(s, |b| {
            let e = be64(b, l2_index_at);
            put64(b, l2_index_at, e | 0x200);
        }),
        None,
        &["L1 table: entry 0", "not aligned"],
    );
    let (entry_at, _) = l.data[0];
    expect_err(
        "L2 data entry past eof",
        patched(s, |b| put64(b, entry_at, (1 << 63) | (1 << 40))),
        None,
        &["data for guest offset", "past the end"],
    );
    expect_err(
        "L2 data entry unaligned",
        patched(s, |b| {
            let e = be64(b, entry_at);
            put64(b, entry_at, e | 0x400);
        }),
        None,
        &["corrupt L2 entry", "not aligned"],
    );
    expect_err(
        "L2 data entry pointing at the 56-bit limit",
        patched(s, |b| put64(b, entry_at, OFFSET_MASK & !0xfff)),
        None,
        &["past the end"],
    );
}

#[test]
fn an_l2_table_used_twice_is_refused_by_the_allocation_map() {
    let s = "c-qcow2-4k-clusters";
    let b = patched(s, |b| {
        let l = layout(b);
        let (i, _) = l.l2_tables[0];
        let (j, _) = l.l2_tables[1];
        let e = be64(b, l.l1_offset + 8 * i);
        put64(b, l.l1_offset + 8 * j, e);
    });
    let disk = Qcow2::open(MemDisk::new(b), None, &OpenOptions::default()).unwrap();
    let err = disk.allocated_ranges().unwrap_err();
    assert!(
        err.to_string().contains("is also used by L1 entry"),
        "{err}"
    );
    // The error comes back typed through the io::Error.
    assert!(
        matches!(Error::from_io(&err), Some(Error::L1Entry { .. })),
        "{err:?}"
    );
}

#[test]
fn compressed_descriptors_and_data_that_do_not_inflate() {
    for s in ["q-small-zlib", "q-small-zstd"] {
        let b = bytes_of(s);
        let l = layout(&b);
        let cs = 1usize << l.cluster_bits;
        let x = 62 - (l.cluster_bits - 8);
        let (entry_at, host) = l.compressed[0];
        expect_err(
            &format!("{s}: compressed offset past eof"),
            patched(s, |b| put64(b, entry_at, (1 << 62) | (1 << 40))),
            None,
            &["compressed cluster", "past the end"],
        );
        expect_err(
            &format!("{s}: compressed offset 0"),
            patched(s, |b| put64(b, entry_at, 1 << 62)),
            None,
            &["file offset 0"],
        );
        expect_err(
            &format!("{s}: compressed run of sectors past eof"),
            patched(s, |b| {
                let len = b.len() as u64;
                put64(
                    b,
                    entry_at,
                    (1 << 62) | (len - 10) | (((1u64 << (l.cluster_bits - 8)) - 1) << x),
                );
            }),
            None,
            &[
                "compressed cluster",
                "inflates to",
                "zstd frame",
                "does not",
            ],
        );
        expect_err(
            &format!("{s}: garbled compressed data"),
            patched(s, |b| b[host as usize..host as usize + 64].fill(0xff)),
            None,
            &["does not inflate", "zstd frame", "inflates to"],
        );
        // A valid stream of the wrong size: 100 bytes, and two clusters.
        // zstd reads on after a short frame and finds no next frame in the old bytes.
        for (size, needles) in [
            (
                100usize,
                ["inflates to 100 bytes", "no complete zstd frame at byte"],
            ),
            (2 * cs, ["inflates to", "does not decompress"]),
        ] {
            let payload = vec![0x41u8; size];
            let stream = if s.ends_with("zstd") {
                zstd::bulk::compress(&payload, 3).unwrap()
            } else {
                let mut c = flate2::Compress::new(flate2::Compression::default(), false);
                let mut out = vec![0u8; 4096];
                c.compress(&payload, &mut out, flate2::FlushCompress::Finish)
                    .unwrap();
                out.truncate(c.total_out() as usize);
                out
            };
            let b = patched(s, |b| {
                b[host as usize..host as usize + stream.len()].copy_from_slice(&stream);
            });
            if size == 100 || s.ends_with("zstd") {
                expect_err(&format!("{s}: {size}-byte stream"), b, None, &needles);
            } else {
                // Like qemu, a deflate stream longer than a cluster is cut at one cluster.
                open_and_read(b, None).unwrap();
            }
        }
    }
}
