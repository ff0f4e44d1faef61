//! VHDs written by qemu-img (dynamic and fixed) read back byte for byte as qemu
//! reads them (`qemu-img convert -O raw` is the oracle), and hostile copies —
//! truncated at every sector, bytes flipped — give errors, never panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use vmscrub_blockdev::{FileDisk, MemDisk, ReadAt};
use vmscrub_vhd::Vhd;

fn qemu_img(args: &[&str]) {
    let o = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A raw disk with data in some blocks, zeros (holes) elsewhere.
fn raw_disk(path: &Path, size: usize) {
    let mut d = vec![0u8; size];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    // Data in every third 2 MiB block (qemu's VHD block size); the others are
    // holes qemu leaves unallocated.
    for (i, chunk) in d.chunks_mut(2 << 20).enumerate() {
        if i % 3 != 0 {
            continue;
        }
        for b in chunk.iter_mut().step_by(7) {
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
    // Odd-sized reads cross sectors and blocks.
    let mut at = 0usize;
    for step in [4096usize, 777, 1 << 20, 513].iter().cycle() {
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
fn dynamic_and_fixed_read_as_qemu_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    raw_disk(&raw, 9 << 20);
    for (sub, opts) in [
        ("dynamic", "subformat=dynamic"),
        ("fixed", "subformat=fixed"),
    ] {
        for force in ["off", "on"] {
            let vhd = dir.path().join(format!("{sub}-{force}.vhd"));
            let o = format!("{opts},force_size={force}");
            qemu_img(&[
                "convert",
                "-f",
                "raw",
                "-O",
                "vpc",
                "-o",
                &o,
                raw.to_str().unwrap(),
                vhd.to_str().unwrap(),
            ]);
            let back = dir.path().join("back.raw");
            qemu_img(&[
                "convert",
                "-f",
                "vpc",
                "-O",
                "raw",
                vhd.to_str().unwrap(),
                back.to_str().unwrap(),
            ]);
            let oracle = std::fs::read(&back).unwrap();
            let v = Vhd::open(FileDisk::open(&vhd).unwrap()).unwrap();
            assert_eq!(v.subformat(), sub);
            assert_eq!(
                v.size(),
                oracle.len() as u64,
                "{sub} force_size={force}: size"
            );
            assert!(read_all(&v) == oracle, "{sub} force_size={force}: content");
            if sub == "dynamic" {
                // The holes are unallocated blocks, reported as such, and
                // nothing qemu reads as data lies outside what is reported.
                let set = v.allocated_ranges().unwrap();
                assert!(set.total() < v.size(), "{} of {}", set.total(), v.size());
                let mut at = 0usize;
                for r in set.iter().chain(std::iter::once(v.size()..v.size())) {
                    let gap = &oracle[at..r.start as usize];
                    assert!(gap.iter().all(|&b| b == 0), "data in the hole before {r:?}");
                    at = r.end as usize;
                }
            }
        }
    }
}

#[test]
fn hostile_copies_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    raw_disk(&raw, 3 << 20);
    let vhd = dir.path().join("d.vhd");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        raw.to_str().unwrap(),
        vhd.to_str().unwrap(),
    ]);
    let good = std::fs::read(&vhd).unwrap();
    // Truncated at every sector: an error or a (start-footer) disk that reads.
    for n in (0..good.len()).step_by(512) {
        if let Ok(v) = Vhd::open(MemDisk::new(good[..n].to_vec())) {
            let mut b = vec![0u8; 65536];
            let mut at = 0;
            while at < v.size() {
                let len = (v.size() - at).min(65536) as usize;
                let _ = v.read_exact_at(&mut b[..len], at);
                at += len as u64;
            }
        }
    }
    // Bytes flipped in the structures (footer copies, header, BAT).
    let mut x = 7u64;
    for _ in 0..3000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut bad = good.clone();
        let region = [0usize, 512, 1536, good.len() - 512][(x >> 60) as usize % 4];
        let at = region + (x >> 20) as usize % 1024;
        if at < bad.len() {
            bad[at] ^= (x >> 8) as u8 | 1;
        }
        if let Ok(v) = Vhd::open(MemDisk::new(bad)) {
            let mut b = vec![0u8; 4096];
            let _ = v.read_exact_at(&mut b, 0);
            let _ = v.allocated_ranges();
        }
    }
    let e = Vhd::open(MemDisk::new(vec![0u8; 4096])).unwrap_err();
    assert!(e.to_string().contains("no VHD footer"), "{e}");
}
