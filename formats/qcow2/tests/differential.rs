//! The reader against qemu: every qcow2 fixture read through `Qcow2` must give the
//! bytes `qemu-img convert -O raw` gives, its allocation map must be what
//! `qemu-img map` reports as data, and `info()` must agree with `qemu-img info`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use common::{
    FIXTURES, Rng, assert_same_as_oracle, build_all, fixture_path, open, open_with, oracle,
    qemu_map,
};
use vmscrub_blockdev::{FileDisk, ReadAt};
use vmscrub_qcow2::{
    CompressionType, DEFAULT_MAX_DEPTH, Error, LinkFormat, MissingBacking, OpenOptions, Qcow2,
    open_chain, read_header,
};

fn tiny_caches() -> OpenOptions {
    let mut o = OpenOptions::default();
    o.l2_cache_tables = Some(1);
    o.compressed_cache_clusters = 1;
    o
}

#[test]
fn every_fixture_reads_like_qemu_img_convert() {
    build_all();
    let tmp = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let path = fixture_path(name);
        let disk = open(&path);
        let raw = oracle(&path, tmp.path());
        // 1 MiB reads (cluster-aligned for every cluster size up to 1 MiB) and an odd
        // size that straddles cluster boundaries on every read.
        assert_same_as_oracle(name, &disk, &raw, 1 << 20);
        assert_same_as_oracle(
            name,
            &open_with(&path, &tiny_caches()),
            &raw,
            3 * 65536 + 4097,
        );
    }
}

#[test]
fn odd_offsets_and_lengths_match_the_oracle() {
    build_all();
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for name in FIXTURES {
        let path = fixture_path(name);
        let raw = oracle(&path, tmp.path());
        for options in [OpenOptions::default(), tiny_caches()] {
            let disk = open_with(&path, &options);
            let size = disk.size();
            let cs = disk.header().cluster_size();
            let allocated: Vec<_> = disk.allocated_ranges().unwrap().iter().collect();
            let check = |off: u64, len: u64| {
                let len = len.min(size - off);
                let mut ours = vec![0u8; len as usize];
                let mut theirs = vec![0u8; len as usize];
                disk.read_exact_at(&mut ours, off)
                    .unwrap_or_else(|e| panic!("{name}: read {len} at {off:#x}: {e}"));
                raw.read_exact_at(&mut theirs, off).unwrap();
                assert!(
                    ours == theirs,
                    "{name}: {len} bytes at {off:#x} differ from qemu-img"
                );
            };
            for _ in 0..150 {
                // Half the reads land in data, where mistakes show.
                let off = if rng.below(2) == 0 && !allocated.is_empty() {
                    let r = &allocated[rng.below(allocated.len() as u64) as usize];
                    r.start + rng.below(r.end - r.start)
                } else {
                    rng.below(size)
                };
                check(off, 1 + rng.below(3 * cs + 1000));
            }
            // Reads that start just before a cluster boundary and end just after the next.
            for _ in 0..60 {
                let k = 1 + rng.below(size / cs - 1);
                let back = 1 + rng.below(cs.min(4096));
                check(k * cs - back, cs + back + 1 + rng.below(700));
            }
            // Small sequential reads across compressed clusters exercise the cache.
            let start = allocated.first().map(|r| r.start).unwrap_or(0);
            let mut off = start;
            while off < (start + 4 * cs).min(size) {
                check(off, 1000);
                off += 1000;
            }
        }
    }
}

#[test]
fn allocated_ranges_are_what_qemu_img_map_calls_data() {
    build_all();
    let tmp = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let path = fixture_path(name);
        let disk = open(&path);
        let ours = disk.allocated_ranges().unwrap();
        let (data, zero_here) = qemu_map(&path);
        assert_eq!(
            ours, data,
            "{name}: allocation map differs from qemu-img map's data ranges"
        );
        for z in zero_here.iter() {
            assert!(
                !ours.intersects(z.clone()),
                "{name}: zero clusters {z:?} reported allocated"
            );
        }
        // Every non-zero 4 KiB block of the oracle is covered.
        let raw = oracle(&path, tmp.path());
        let mut block = vec![0u8; 4096];
        let mut pos = 0;
        while pos < disk.size() {
            let n = (disk.size() - pos).min(4096) as usize;
            raw.read_exact_at(&mut block[..n], pos).unwrap();
            if block[..n].iter().any(|&b| b != 0) {
                assert!(
                    ours.covers(pos..pos + n as u64),
                    "{name}: non-zero block at {pos:#x} not in allocated_ranges"
                );
            }
            pos += n as u64;
        }
        assert!(
            ours.total() < disk.size(),
            "{name}: everything reported allocated"
        );
    }
}

#[test]
fn zero_clusters_hide_data_and_are_not_allocated() {
    build_all();
    for name in [
        "c-qcow2-zero-clusters",
        "q-zero-over-data",
        "q-backed-grown",
        "c-qcow2-backed",
        "q-small-backed",
    ] {
        let path = fixture_path(name);
        let (_, zero_here) = qemu_map(&path);
        assert!(
            !zero_here.is_empty(),
            "{name}: the fixture has no zero clusters"
        );
        let disk = open(&path);
        let ours = disk.allocated_ranges().unwrap();
        for z in zero_here.iter() {
            assert!(
                !ours.intersects(z.clone()),
                "{name}: zero clusters {z:?} reported allocated"
            );
            let mut buf = vec![0xffu8; (z.end - z.start).min(1 << 20) as usize];
            disk.read_exact_at(&mut buf, z.start).unwrap();
            assert!(
                buf.iter().all(|&b| b == 0),
                "{name}: zero cluster at {:#x} reads non-zero",
                z.start
            );
        }
    }
    // q-zero-over-data zeroed 1 MiB at 47 MiB where the source disk has data.
    let src = FileDisk::open(&vmscrub_fixtures::fixture("gpt-esp-root")).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    src.read_exact_at(&mut buf, 49283072).unwrap();
    assert!(
        buf.iter().any(|&b| b != 0),
        "the zeroed region held data before"
    );
}

#[test]
fn info_agrees_with_qemu_img_info() {
    build_all();
    for name in FIXTURES {
        let path = fixture_path(name);
        let out = vmscrub_fixtures::run("qemu-img", &[&"info", &"--output=json", &path]);
        let q: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let info = open(&path).info();
        let data = &q["format-specific"]["data"];
        assert_eq!(
            info.virtual_size,
            q["virtual-size"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            info.cluster_size,
            q["cluster-size"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            info.version,
            if data["compat"] == "0.10" { 2 } else { 3 },
            "{name}"
        );
        assert_eq!(
            1u64 << info.refcount_order,
            data["refcount-bits"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            info.dirty,
            q["dirty-flag"].as_bool().unwrap_or(false),
            "{name}"
        );
        assert_eq!(
            info.corrupt,
            data["corrupt"].as_bool().unwrap_or(false),
            "{name}"
        );
        assert_eq!(
            info.lazy_refcounts,
            data["lazy-refcounts"].as_bool().unwrap_or(false),
            "{name}"
        );
        let comp = data["compression-type"].as_str().unwrap_or("zlib");
        assert_eq!(info.compression.name(), comp, "{name}");
        assert_eq!(
            info.backing_file.as_deref(),
            q["backing-filename"].as_str(),
            "{name}"
        );
        assert_eq!(
            info.backing_format.as_deref(),
            q["backing-filename-format"].as_str(),
            "{name}"
        );
        assert_eq!(info.snapshots, 0, "{name}");
        assert_eq!(
            info.file_size,
            std::fs::metadata(&path).unwrap().len(),
            "{name}"
        );
    }
    let dirty = open(&fixture_path("c-qcow2-dirty")).info();
    assert!(dirty.dirty && dirty.lazy_refcounts);
    assert_eq!(
        open(&fixture_path("c-qcow2-zstd")).info().compression,
        CompressionType::Zstd
    );
}

#[test]
fn open_chain_walks_three_levels() {
    build_all();
    let tmp = tempfile::tempdir().unwrap();
    let top = fixture_path("q-chain-top");
    let mut opened = Vec::new();
    let (disk, links) = open_chain(
        &top,
        |p| {
            opened.push(p.to_path_buf());
            Ok(Box::new(FileDisk::open(p)?) as Box<dyn ReadAt>)
        },
        &OpenOptions::default(),
        DEFAULT_MAX_DEPTH,
    )
    .unwrap();
    assert_eq!(links.len(), 3);
    assert_eq!(opened.len(), 3);
    assert_eq!(links[1].path.file_name().unwrap(), "c-qcow2-backed.qcow2");
    assert_eq!(
        links[2].path.file_name().unwrap(),
        "c-qcow2-backing-base.qcow2"
    );
    assert!(
        links
            .iter()
            .all(|l| matches!(l.format, LinkFormat::Qcow2(_)))
    );
    assert_same_as_oracle(
        "q-chain-top via open_chain",
        &disk,
        &oracle(&top, tmp.path()),
        1 << 20,
    );

    // The opener is the policy: refusing the backing path refuses the chain.
    let err = open_chain(
        &top,
        |p| {
            if p == top {
                Ok(Box::new(FileDisk::open(p)?) as Box<dyn ReadAt>)
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "backing files not allowed",
                ))
            }
        },
        &OpenOptions::default(),
        DEFAULT_MAX_DEPTH,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("backing files not allowed"),
        "{err}"
    );
    // Depth bound.
    let err = open_chain(
        &top,
        |p| Ok(Box::new(FileDisk::open(p)?) as Box<dyn ReadAt>),
        &OpenOptions::default(),
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("deeper than 1"), "{err}");
}

#[test]
fn open_chain_refuses_a_loop() {
    build_all();
    // An overlay whose backing name points at itself.
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture_path("q-small-backed");
    let copy = tmp.path().join("self.qcow2");
    std::fs::copy(&src, &copy).unwrap();
    let h = read_header(&FileDisk::open(&copy).unwrap()).unwrap();
    let name_off = {
        let f = std::fs::File::open(&copy).unwrap();
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, 8).unwrap();
        u64::from_be_bytes(b)
    };
    let f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
    let old_len = h.backing_file.unwrap().name.len();
    let new = b"self.qcow2";
    let mut name = new.to_vec();
    name.resize(old_len.max(new.len()), 0);
    f.write_all_at(&name, name_off).unwrap();
    f.write_all_at(&(new.len() as u32).to_be_bytes(), 16)
        .unwrap();
    let err = open_chain(
        &copy,
        |p| Ok(Box::new(FileDisk::open(p)?) as Box<dyn ReadAt>),
        &OpenOptions::default(),
        8,
    )
    .unwrap_err();
    assert!(err.to_string().contains("loops back"), "{err}");
}

#[test]
fn missing_backing_is_refused_or_reads_this_layer_only() {
    build_all();
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture_path("c-qcow2-backed");
    let err = Qcow2::open(
        FileDisk::open(&path).unwrap(),
        None,
        &OpenOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::MissingBacking { .. }), "{err}");
    assert!(
        err.to_string().contains("c-qcow2-backing-base.qcow2"),
        "{err}"
    );

    let mut o = OpenOptions::default();
    o.missing_backing = MissingBacking::ReadZeros;
    let disk = Qcow2::open(FileDisk::open(&path).unwrap(), None, &o).unwrap();
    // qemu's view of the overlay alone: its backing replaced by nothing.
    let json = format!(
        "json:{{\"driver\":\"qcow2\",\"file\":{{\"driver\":\"file\",\"filename\":\"{}\"}},\"backing\":null}}",
        path.display()
    );
    let out = tmp.path().join("layer.raw");
    vmscrub_fixtures::run("qemu-img", &[&"convert", &"-O", &"raw", &json, &out]);
    assert_same_as_oracle(
        "overlay alone",
        &disk,
        &std::fs::File::open(&out).unwrap(),
        1 << 20,
    );

    // A backing device for an image that names none.
    let plain = FileDisk::open(&fixture_path("c-qcow2")).unwrap();
    let base: Arc<dyn ReadAt> =
        Arc::new(FileDisk::open(&vmscrub_fixtures::fixture("c-raw")).unwrap());
    let err = Qcow2::open(plain, Some(base), &OpenOptions::default()).unwrap_err();
    assert!(matches!(err, Error::UnexpectedBacking), "{err}");
}

#[test]
fn two_threads_read_disjoint_ranges_of_a_compressed_image() {
    build_all();
    let tmp = tempfile::tempdir().unwrap();
    for name in ["c-qcow2-zlib", "c-qcow2-zstd"] {
        let path = fixture_path(name);
        let raw = oracle(&path, tmp.path());
        let disk = open(&path);
        let ranges: Vec<_> = disk.allocated_ranges().unwrap().iter().collect();
        let chunk = 256 * 1024u64;
        let pieces: Vec<(u64, u64)> = ranges
            .iter()
            .flat_map(|r| {
                (r.start..r.end)
                    .step_by(chunk as usize)
                    .map(move |s| (s, (r.end - s).min(chunk)))
            })
            .collect();
        std::thread::scope(|s| {
            for t in 0..2 {
                let (disk, raw, pieces) = (&disk, &raw, &pieces);
                s.spawn(move || {
                    let mut a = vec![0u8; chunk as usize];
                    let mut b = vec![0u8; chunk as usize];
                    for &(off, len) in pieces.iter().skip(t).step_by(2) {
                        let (a, b) = (&mut a[..len as usize], &mut b[..len as usize]);
                        disk.read_exact_at(a, off).unwrap();
                        raw.read_exact_at(b, off).unwrap();
                        assert!(a == b, "{name}: thread {t} read at {off:#x} differs");
                    }
                });
            }
        });
    }
}

/// `qemu-img convert -B` to a version 2 image writes every cluster, so the sparse
/// v2 overlay is made the way users make one: `qemu-img create -b`, then writes.
#[test]
fn sparse_v2_overlay_made_with_qemu_img_create() {
    build_all();
    let tmp = tempfile::tempdir().unwrap();
    let base = fixture_path("c-qcow2-backing-base");
    let top = tmp.path().join("v2-overlay.qcow2");
    let run = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        vmscrub_fixtures::run(args[0].as_ref().to_str().unwrap(), &args[1..])
    };
    run(&[
        &"qemu-img",
        &"create",
        &"-q",
        &"-f",
        &"qcow2",
        &"-o",
        &"compat=0.10",
        &"-b",
        &base,
        &"-F",
        &"qcow2",
        &top,
    ]);
    // A pattern, zeros over backing data (written as data in v2), and a
    // sub-cluster write whose cluster is copied up from the backing file.
    for cmd in [
        "write -P 0x11 1048576 100000",
        "write -z 22413312 65536",
        "write -P 0x22 27265024 1000",
    ] {
        run(&[&"qemu-io", &"-f", &"qcow2", &"-c", &cmd, &top]);
    }
    let disk = open(&top);
    assert_eq!(disk.info().version, 2);
    assert_same_as_oracle("v2 overlay", &disk, &oracle(&top, tmp.path()), 1 << 20);
    let (data, _) = qemu_map(&top);
    assert_eq!(disk.allocated_ranges().unwrap(), data);
    assert!(
        std::fs::metadata(&top).unwrap().len() < 2 << 20,
        "the overlay is sparse"
    );
    let mut buf = vec![0xffu8; 65536];
    disk.read_exact_at(&mut buf, 22413312).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn reads_past_the_virtual_size_are_refused() {
    build_all();
    let disk = open(&fixture_path("c-qcow2"));
    let mut buf = [0u8; 16];
    let err = disk.read_exact_at(&mut buf, disk.size() - 8).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(disk.read_exact_at(&mut buf, u64::MAX - 4).is_err());
    disk.read_exact_at(&mut buf, disk.size() - 16).unwrap();
}
