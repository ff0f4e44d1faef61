//! Hostile container headers through the binary, under a hard memory limit
//! (`prlimit --as`) and a time limit: every one must end in a clear error and
//! exit code 3 — not an abort on a huge allocation, not a hang. The format
//! crates' own corpora (formats/*/tests/hostile.rs) check the errors in process;
//! this checks what a user sees, with memory bounded for real.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// 512 MiB of address space: far below what any of these headers would make a
/// careless reader allocate, far above what vmscrub needs.
const AS_LIMIT: u64 = 512 << 20;

fn be32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn be64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_be_bytes());
}

/// A qcow2 v3 header (qcow2.txt) with the given fields, padded to `len` bytes.
fn qcow2(
    size: u64,
    cluster_bits: u32,
    l1_size: u32,
    l1_off: u64,
    rt_off: u64,
    rt_clusters: u32,
    len: usize,
) -> Vec<u8> {
    let mut h = b"QFI\xfb".to_vec();
    be32(&mut h, 3); // version
    be64(&mut h, 0); // backing file offset
    be32(&mut h, 0); // backing file size
    be32(&mut h, cluster_bits);
    be64(&mut h, size);
    be32(&mut h, 0); // crypt method
    be32(&mut h, l1_size);
    be64(&mut h, l1_off);
    be64(&mut h, rt_off);
    be32(&mut h, rt_clusters);
    be32(&mut h, 0); // snapshots
    be64(&mut h, 0); // snapshots offset
    be64(&mut h, 0); // incompatible features
    be64(&mut h, 0); // compatible features
    be64(&mut h, 0); // autoclear features
    be32(&mut h, 4); // refcount order
    be32(&mut h, 104); // header length
    h.resize(len, 0);
    h
}

/// A monolithicSparse VMDK (VMware's spec) claiming `capacity` sectors, with its
/// embedded descriptor at sector 1 naming itself `name`.
fn vmdk(name: &str, capacity: u64, grain: u64, gtes: u32, gd_sector: u64, len: usize) -> Vec<u8> {
    let mut h = b"KDMV".to_vec();
    h.extend_from_slice(&1u32.to_le_bytes()); // version
    h.extend_from_slice(&3u32.to_le_bytes()); // flags
    h.extend_from_slice(&capacity.to_le_bytes());
    h.extend_from_slice(&grain.to_le_bytes());
    h.extend_from_slice(&1u64.to_le_bytes()); // descriptor offset (sectors)
    h.extend_from_slice(&20u64.to_le_bytes()); // descriptor size (sectors)
    h.extend_from_slice(&gtes.to_le_bytes());
    h.extend_from_slice(&gd_sector.to_le_bytes()); // redundant GD
    h.extend_from_slice(&gd_sector.to_le_bytes()); // GD
    h.extend_from_slice(&128u64.to_le_bytes()); // overhead
    h.push(0); // unclean shutdown
    h.extend_from_slice(b"\n \r\n");
    h.resize(512, 0);
    let desc = format!(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
         createType=\"monolithicSparse\"\n\n# Extent description\nRW {capacity} SPARSE \"{name}\"\n"
    );
    h.extend_from_slice(desc.as_bytes());
    h.resize(len, 0);
    h
}

fn limited(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (Option<i32>, String, Duration) {
    let t0 = Instant::now();
    let o = Command::new("timeout")
        .arg("60")
        .arg("prlimit")
        .arg(format!("--as={AS_LIMIT}"))
        .arg(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        t0.elapsed(),
    )
}

fn refused(name: &str, bytes: &[u8], dir: &Path) {
    let img = dir.join(name);
    std::fs::write(&img, bytes).unwrap();
    let out = dir.join(format!("{name}.out"));
    for verb in [
        vec![&"inspect" as &dyn AsRef<std::ffi::OsStr>, &img],
        vec![&"scan", &img],
        vec![&"scrub", &"-q", &img, &"-o", &out],
    ] {
        let (code, err, took) = limited(&verb);
        let what = format!("{name}, {:?}", verb[0].as_ref());
        assert_eq!(
            code,
            Some(3),
            "{what}: exit {code:?} after {took:?}:\n{err}"
        );
        assert!(
            err.contains("vmscrub: error:") && !err.contains("panicked"),
            "{what}: {err}"
        );
        assert!(!out.exists(), "{what}: left an output");
        if std::env::var_os("SHOW").is_some() {
            eprintln!("{what}: {err}");
        }
    }
}

#[test]
fn absurd_headers_fail_cleanly_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An exabyte disk whose 32 MiB L1 table (qemu's limit) lies past the end.
    refused(
        "l1-past-eof.qcow2",
        &qcow2(1 << 60, 21, 1 << 22, 1 << 40, 1 << 21, 1, 4 << 20),
        d,
    );
    // An L1 table that claims more entries than qemu allows.
    refused(
        "l1-too-big.qcow2",
        &qcow2(1 << 62, 16, u32::MAX, 65536, 131072, 1, 256 << 10),
        d,
    );
    // A refcount table of 2^31 clusters.
    refused(
        "refcount-huge.qcow2",
        &qcow2(1 << 30, 16, 2048, 65536, 131072, 1 << 31, 256 << 10),
        d,
    );
    // Cluster size beyond 2 MiB.
    refused(
        "cluster-bits.qcow2",
        &qcow2(1 << 30, 40, 16, 65536, 131072, 1, 256 << 10),
        d,
    );
    // A 2^40-sector (512 TiB) sparse VMDK: 16 M grain tables, whose directory lies past the end.
    refused(
        "gd-past-eof.vmdk",
        &vmdk("gd-past-eof.vmdk", 1 << 40, 128, 512, 1 << 40, 64 << 10),
        d,
    );
    // A capacity needing more grain tables than any real disk.
    refused(
        "gd-too-big.vmdk",
        &vmdk("gd-too-big.vmdk", 1 << 50, 128, 512, 21, 64 << 10),
        d,
    );
    // Grain tables of 2^32 - 1 entries each.
    refused(
        "gt-huge.vmdk",
        &vmdk("gt-huge.vmdk", 1 << 40, 128, u32::MAX, 21, 64 << 10),
        d,
    );
}
