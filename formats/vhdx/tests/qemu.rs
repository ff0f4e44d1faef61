//! VHDXs written by qemu-img (dynamic and fixed, several block and sector
//! sizes) read back byte for byte as qemu reads them (`qemu-img convert -O raw`
//! is the oracle); hostile copies — truncated, bytes flipped, a log left to
//! replay — give errors, never panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use vmscrub_blockdev::{FileDisk, MemDisk, ReadAt};
use vmscrub_vhdx::{Error, Vhdx};

fn qemu_img(args: &[&str]) {
    let o = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A raw disk with data in every third MiB, zeros elsewhere.
fn raw_disk(path: &Path, size: usize) {
    let mut d = vec![0u8; size];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for (i, chunk) in d.chunks_mut(1 << 20).enumerate() {
        if i % 3 != 0 {
            continue;
        }
        for b in chunk.iter_mut().step_by(5) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    std::fs::write(path, d).unwrap();
}

fn read_all(v: &impl ReadAt) -> Vec<u8> {
    let mut out = vec![0u8; v.size() as usize];
    let mut at = 0usize;
    for step in [4096usize, 777, 3 << 20, 513].iter().cycle() {
        if at >= out.len() {
            break;
        }
        let n = (*step).min(out.len() - at);
        v.read_exact_at(&mut out[at..at + n], at as u64).unwrap();
        at += n;
    }
    out
}

#[test]
fn qemu_made_vhdx_read_as_qemu_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    raw_disk(&raw, 45 << 20);
    let cases: &[(&str, &str)] = &[
        ("dynamic", ""),
        ("dynamic", "block_size=1M"),
        ("dynamic", "block_size=8M,log_size=2M"),
        ("fixed", ""),
        ("fixed", "block_size=256M"),
    ];
    for (sub, extra) in cases {
        let what = format!("{sub} {extra}");
        let img = dir.path().join("d.vhdx");
        let mut o = format!("subformat={sub}");
        if !extra.is_empty() {
            o = format!("{o},{extra}");
        }
        qemu_img(&[
            "convert",
            "-f",
            "raw",
            "-O",
            "vhdx",
            "-o",
            &o,
            raw.to_str().unwrap(),
            img.to_str().unwrap(),
        ]);
        let oracle = dir.path().join("oracle.raw");
        qemu_img(&[
            "convert",
            "-f",
            "vhdx",
            "-O",
            "raw",
            img.to_str().unwrap(),
            oracle.to_str().unwrap(),
        ]);
        let want = std::fs::read(&oracle).unwrap();
        let v = Vhdx::open(FileDisk::open(&img).unwrap()).unwrap();
        assert_eq!(v.subformat(), *sub, "{what}");
        assert_eq!(v.size(), want.len() as u64, "{what}");
        assert!(read_all(&v) == want, "{what}: bytes differ from qemu's");
        // Dynamic disks store only blocks with data: every third MiB here.
        let alloc = v.allocated_bytes();
        if *sub == "dynamic" && extra.contains("block_size=1M") {
            assert_eq!(alloc, 15 << 20, "{what}");
        }
        // What the BAT leaves unallocated must be zeros in qemu's reading.
        let ranges = v.allocated_ranges().unwrap();
        for (i, chunk) in want.chunks(1 << 20).enumerate() {
            let at = (i as u64) << 20;
            if !ranges.intersects(at..at + chunk.len() as u64) {
                assert!(
                    chunk.iter().all(|&b| b == 0),
                    "{what}: data at {at} unmapped"
                );
            }
        }
    }
}

/// The file with both headers' log GUIDs set (and their checksums made right):
/// what a crash leaves.
fn with_dirty_log(b: &mut [u8]) {
    for at in [64usize << 10, 128 << 10] {
        b[at + 48..at + 64].copy_from_slice(&[0x5A; 16]);
        b[at + 4..at + 8].fill(0);
        let c = crc32c::crc32c(&b[at..at + 4096]);
        b[at + 4..at + 8].copy_from_slice(&c.to_le_bytes());
    }
}

#[test]
fn hostile_copies_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    raw_disk(&raw, 9 << 20);
    let img = dir.path().join("d.vhdx");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "vhdx",
        "-o",
        "block_size=1M",
        raw.to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    let good = std::fs::read(&img).unwrap();

    let mut dirty = good.clone();
    with_dirty_log(&mut dirty);
    let e = Vhdx::open(MemDisk::new(dirty)).unwrap_err();
    assert!(matches!(e, Error::DirtyLog), "{e}");
    assert!(e.to_string().contains("qemu-img check -r all"), "{e}");

    // One damaged header: the other carries the disk.
    let mut one = good.clone();
    one[(64 << 10) + 20] ^= 0xFF;
    let v = Vhdx::open(MemDisk::new(one)).unwrap();
    assert_eq!(read_all(&v), std::fs::read(&raw).unwrap());
    // Both damaged: refused, naming both.
    let mut both = good.clone();
    both[(64 << 10) + 20] ^= 0xFF;
    both[(128 << 10) + 20] ^= 0xFF;
    let e = Vhdx::open(MemDisk::new(both)).unwrap_err().to_string();
    assert!(e.contains("header 1") && e.contains("header 2"), "{e}");

    // Truncated anywhere: an error (or, past the metadata, a disk whose reads
    // fail cleanly), never a panic.
    for cut in (0..good.len())
        .step_by(61_441)
        .chain([1, 8, 65_536, good.len() - 1])
    {
        if let Ok(v) = Vhdx::open(MemDisk::new(good[..cut].to_vec())) {
            let mut b = vec![0u8; 1 << 20];
            for at in (0..v.size()).step_by(1 << 20) {
                let n = (v.size() - at).min(1 << 20) as usize;
                let _ = v.read_exact_at(&mut b[..n], at);
            }
        }
    }
    // Bytes flipped through the first MiBs (headers, regions, metadata, BAT).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut bad = good.clone();
        let at = (x as usize) % (3 << 20).min(bad.len());
        bad[at] ^= (x >> 32) as u8 | 1;
        if let Ok(v) = Vhdx::open(MemDisk::new(bad)) {
            let _ = read_all_lossy(&v);
        }
    }
}

fn read_all_lossy(v: &impl ReadAt) -> usize {
    let mut b = vec![0u8; 1 << 20];
    let mut ok = 0;
    for at in (0..v.size()).step_by(1 << 20) {
        let n = (v.size() - at).min(1 << 20) as usize;
        ok += usize::from(v.read_exact_at(&mut b[..n], at).is_ok());
    }
    ok
}
