//! The reader against qemu-img: every VMDK fixture read whole and at odd offsets
//! must equal `qemu-img convert -O raw`, and the allocation map must cover every
//! non-zero block of that oracle without claiming the whole of a sparse disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use common::*;
use vmscrub_blockdev::ReadAt;
use vmscrub_vmdk::{Compression, DirExtentOpener, ExtentKind, NoExtentFiles, Subformat, Vmdk};

fn check_fixture(name: &str, sparse: bool) {
    let image = vmscrub_fixtures::fixture(name);
    let tmp = tempfile::tempdir().unwrap();
    let oracle = vmscrub_fixtures::qemu_raw(&image, tmp.path());
    let disk = Vmdk::open_path(&image).unwrap_or_else(|e| panic!("{name}: {e}"));

    // Whole disk, in large and in awkward chunk sizes.
    let nonzero = compare_whole(&disk, &oracle, 4 << 20);
    if disk.size() < (1 << 30) {
        compare_whole(&disk, &oracle, 3 * 65536 + 511);
    }

    // Allocation map: a superset of the oracle's data, never past the end.
    let alloc = disk.allocated_ranges().unwrap();
    for r in &nonzero {
        assert!(
            alloc.covers(r.clone()),
            "{name}: non-zero block {r:?} is not in the allocation map"
        );
    }
    assert!(
        alloc.iter().all(|r| r.end <= disk.size()),
        "{name}: {alloc:?}"
    );
    if sparse {
        assert!(
            alloc.total() < disk.size() / 2,
            "{name}: allocation map claims {} of {} bytes",
            alloc.total(),
            disk.size()
        );
    }

    // Odd reads around grain, grain-table and extent boundaries and the end.
    let info = disk.info();
    let mut marks: Vec<u64> = vec![0, disk.size()];
    marks.extend(info.extents.iter().map(|e| e.virtual_offset));
    let step = 65536u64;
    for k in 1..64 {
        marks.push((k * step * 7).min(disk.size()));
        marks.push((k * (32 << 20)).min(disk.size()));
    }
    marks.extend(nonzero.iter().step_by(97).map(|r| r.start));
    let o = std::fs::File::open(&oracle).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for i in 0..400 {
        let m = marks[rng.below(marks.len() as u64) as usize];
        let delta = rng.below(140_000) as i64 - 70_000;
        let off = (m as i64 + delta).clamp(0, disk.size() as i64 - 1) as u64;
        let max = (disk.size() - off).min(if i % 4 == 0 { 3 } else { 300_000 });
        let len = 1 + rng.below(max) as usize;
        let mut a = vec![0u8; len];
        let mut b = vec![0u8; len];
        disk.read_exact_at(&mut a, off)
            .unwrap_or_else(|e| panic!("{name}: read {len} at {off}: {e}"));
        o.read_exact_at(&mut b, off).unwrap();
        assert!(
            a == b,
            "{name}: read of {len} bytes at {off} differs from qemu's"
        );
    }

    // Reads past the end are errors, not short reads.
    let mut one = [0u8; 2];
    assert!(disk.read_exact_at(&mut one, disk.size() - 1).is_err());
}

#[test]
fn sparse_fixtures_match_qemu() {
    build_all();
    for name in SPARSE_FIXTURES {
        check_fixture(name, true);
    }
}

#[test]
fn flat_fixtures_match_qemu() {
    build_all();
    for name in FLAT_FIXTURES {
        check_fixture(name, false);
    }
}

#[test]
fn info_describes_each_variant() {
    build_all();
    let cases = [
        (
            "c-vmdk-sparse",
            Subformat::MonolithicSparse,
            1,
            Compression::None,
        ),
        (
            "c-vmdk-stream",
            Subformat::StreamOptimized,
            1,
            Compression::Deflate,
        ),
        (
            "c-vmdk-flat",
            Subformat::MonolithicFlat,
            1,
            Compression::None,
        ),
        (
            "c-vmdk-2gb-sparse",
            Subformat::TwoGbMaxExtentSparse,
            1,
            Compression::None,
        ),
        (
            "c-vmdk-2gb-flat",
            Subformat::TwoGbMaxExtentFlat,
            1,
            Compression::None,
        ),
        (
            "c-vmdk-big-2gb-sparse",
            Subformat::TwoGbMaxExtentSparse,
            2,
            Compression::None,
        ),
        (
            "c-vmdk-big-2gb-flat",
            Subformat::TwoGbMaxExtentFlat,
            2,
            Compression::None,
        ),
    ];
    for (name, sub, extents, comp) in cases {
        let image = vmscrub_fixtures::fixture(name);
        let disk = Vmdk::open_path(&image).unwrap();
        let info = disk.info();
        assert_eq!(info.subformat, sub, "{name}");
        assert_eq!(info.create_type, sub.as_str(), "{name}");
        assert_eq!(info.extents.len(), extents, "{name}");
        assert_eq!(info.compression, comp, "{name}");
        assert_eq!(info.virtual_size, disk.size());
        assert_eq!(
            info.extents.iter().map(|e| e.size).sum::<u64>(),
            disk.size()
        );
        assert_eq!(info.parent_cid, Some(0xffff_ffff));
        assert!(info.cid.is_some());
        assert_eq!(info.adapter_type.as_deref(), Some("ide"));
        assert_eq!(info.hw_version.as_deref(), Some("4"));
        let g = info.geometry.unwrap();
        assert_eq!((g.heads, g.sectors), (16, 63));
        assert_eq!(info.file_size, std::fs::metadata(&image).unwrap().len());
        let sparse = matches!(
            sub,
            Subformat::MonolithicSparse
                | Subformat::StreamOptimized
                | Subformat::TwoGbMaxExtentSparse
        );
        assert_eq!(info.grain_size, sparse.then_some(65536), "{name}");
        for e in &info.extents {
            assert_eq!(
                e.kind,
                if sparse {
                    ExtentKind::Sparse
                } else {
                    ExtentKind::Flat
                }
            );
            assert!(e.file_size.is_some() && e.file_name.is_some());
            if let Some(s) = &e.sparse {
                assert_eq!(s.gtes_per_gt, 512);
                assert!(s.grain_tables > 0);
                assert!(!s.footer);
            }
        }
        assert_eq!(
            info.descriptor_embedded,
            matches!(
                sub,
                Subformat::MonolithicSparse | Subformat::StreamOptimized
            )
        );
    }
    let z = Vmdk::open_path(&vmscrub_fixtures::fixture("c-vmdk-zeroed")).unwrap();
    assert!(z.info().extents[0].sparse.as_ref().unwrap().zero_grain_gte);
    assert_eq!(z.info().virtual_size, 104_861_184);
}

#[test]
fn zeroed_grains_read_as_zero_and_are_not_allocated() {
    build_all();
    let disk = Vmdk::open_path(&vmscrub_fixtures::fixture("c-vmdk-zeroed")).unwrap();
    let alloc = disk.allocated_ranges().unwrap();
    // qemu-io wrote zeroed grains over data there: GTE 1, nothing stored.
    assert!(!alloc.intersects(0..512 * 1024), "{alloc:?}");
    assert!(
        !alloc.intersects(33_554_432..33_554_432 + 65536),
        "{alloc:?}"
    );
    assert!(alloc.covers(512 * 1024..1024 * 1024), "{alloc:?}");
    let mut buf = vec![1u8; 600 * 1024];
    disk.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf[..512 * 1024].iter().all(|&b| b == 0));
    assert!(buf[512 * 1024..].iter().any(|&b| b != 0));
}

/// Streams whose grain directory is only in the footer (as VMware writes them):
/// the generated file is first checked against qemu, then the reader against both.
#[test]
fn gd_at_end_streams_match_qemu() {
    build_all();
    let tmp = tempfile::tempdir().unwrap();
    let src = vmscrub_fixtures::fixture("c-vmdk-odd-stream");
    let data = oracle_bytes(&src, tmp.path());
    for zero_grains in [false, true] {
        let name = format!("vmware-stream-{zero_grains}.vmdk");
        let path = tmp.path().join(&name);
        std::fs::write(
            &path,
            write_vmware_stream(&data, &name, &StreamOptions { zero_grains }),
        )
        .unwrap();
        let qemu = oracle_bytes(&path, tmp.path());
        assert!(
            qemu == data,
            "the generated stream does not read back through qemu-img"
        );
        let disk = Vmdk::open_path(&path).unwrap();
        let info = disk.info();
        assert_eq!(info.subformat, Subformat::StreamOptimized);
        let s = info.extents[0].sparse.as_ref().unwrap();
        assert!(s.footer && s.markers && s.compressed);
        assert_eq!(s.zero_grain_gte, zero_grains);
        let oracle = tmp.path().join("data.raw");
        std::fs::write(&oracle, &data).unwrap();
        let nonzero = compare_whole(&disk, &oracle, 1 << 20);
        compare_whole(&disk, &oracle, 4096 * 3 + 7);
        let alloc = disk.allocated_ranges().unwrap();
        assert!(nonzero.iter().all(|r| alloc.covers(r.clone())));
        assert!(alloc.total() < disk.size() / 4);
    }
}

/// Many threads reading one opened stream at once (the scanner does this).
#[test]
fn concurrent_reads_agree() {
    build_all();
    let image = vmscrub_fixtures::fixture("c-vmdk-odd-stream");
    let tmp = tempfile::tempdir().unwrap();
    let data = Arc::new(oracle_bytes(&image, tmp.path()));
    let disk = Arc::new(Vmdk::open_path(&image).unwrap());
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (disk, data) = (disk.clone(), data.clone());
            s.spawn(move || {
                let mut rng = Rng(t + 1);
                for _ in 0..200 {
                    let off = rng.below(disk.size() - 1);
                    let len = 1 + rng.below((disk.size() - off).min(200_000)) as usize;
                    let mut buf = vec![0u8; len];
                    disk.read_exact_at(&mut buf, off).unwrap();
                    assert!(buf[..] == data[off as usize..off as usize + len]);
                }
            });
        }
    });
}

/// The reader works from any ReadAt: a monolithic image held in memory.
#[test]
fn opens_from_memory_without_extent_files() {
    build_all();
    let image = vmscrub_fixtures::fixture("c-vmdk-odd-sparse");
    let bytes = std::fs::read(&image).unwrap();
    let disk = Vmdk::open(
        Arc::new(vmscrub_blockdev::MemDisk::new(bytes)),
        "mem.vmdk",
        &NoExtentFiles,
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    compare_whole(
        &disk,
        &vmscrub_fixtures::qemu_raw(&image, tmp.path()),
        1 << 20,
    );
    // A descriptor needs its extent files, and NoExtentFiles has none.
    let flat = vmscrub_fixtures::fixture("c-vmdk-flat");
    let text = std::fs::read(&flat).unwrap();
    let e = Vmdk::open(
        Arc::new(vmscrub_blockdev::MemDisk::new(text)),
        "d.vmdk",
        &NoExtentFiles,
    )
    .unwrap_err();
    assert!(e.to_string().contains("without extent files"), "{e}");
    // ... and a DirExtentOpener pointed at the fixture directory finds them.
    let text = std::fs::read(&flat).unwrap();
    let d = Vmdk::open(
        Arc::new(vmscrub_blockdev::MemDisk::new(text)),
        "d.vmdk",
        &DirExtentOpener::for_descriptor(&flat),
    )
    .unwrap();
    assert_eq!(d.size(), 100 << 20);
}
