//! A deterministic fuzz loop: thousands of copies of small valid images with a few
//! random bytes changed — mostly in the first clusters (header, L1, refcount and L2
//! tables), sometimes anywhere (compressed streams, data) — each opened, mapped and
//! read. Any outcome but a panic is fine; work per case is bounded by reading at
//! most ~1.2 MiB whatever the header claims, not by a timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use common::{Rng, fixture_cached};
use vmscrub_blockdev::{FileDisk, MemDisk, ReadAt};
use vmscrub_qcow2::{OpenOptions, Qcow2};

const SEEDS: &[&str] = &[
    "q-small",
    "q-small-zlib",
    "q-small-zstd",
    "q-small-v2-512",
    "q-small-backed",
];
const CASES_PER_SEED: usize = 700;

#[derive(Default, Debug)]
struct Outcomes {
    refused_at_open: usize,
    map_failed: usize,
    read_failed: usize,
    read_ok: usize,
}

fn exercise(bytes: Vec<u8>, backing: Option<Arc<dyn ReadAt>>, rng: &mut Rng, out: &mut Outcomes) {
    let mut options = OpenOptions::default();
    // Small caches so eviction paths run too.
    options.l2_cache_tables = Some(2);
    options.compressed_cache_clusters = 2;
    let Ok(disk) = Qcow2::open(MemDisk::new(bytes), backing, &options) else {
        out.refused_at_open += 1;
        return;
    };
    let _ = disk.info();
    if disk.allocated_ranges().is_err() {
        out.map_failed += 1;
    }
    let size = disk.size();
    let mut buf = vec![0u8; 64 * 1024 + 7];
    let mut failed = false;
    let end = size.min(1 << 20);
    let mut pos = 0;
    while pos < end {
        let n = (end - pos).min(buf.len() as u64) as usize;
        if disk.read_exact_at(&mut buf[..n], pos).is_err() {
            failed = true;
        }
        pos += n as u64;
    }
    for _ in 0..16 {
        let off = rng.below(size);
        let n = (1 + rng.below(8192)).min(size - off) as usize;
        if disk.read_exact_at(&mut buf[..n], off).is_err() {
            failed = true;
        }
    }
    if failed {
        out.read_failed += 1
    } else {
        out.read_ok += 1
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = Rng::new(0x00c0_ffee_1234_5678);
    let base: Arc<dyn ReadAt> = {
        let f = FileDisk::open(&fixture_cached("q-small")).unwrap();
        Arc::new(Qcow2::open(f, None, &OpenOptions::default()).unwrap())
    };
    for name in SEEDS {
        let original = std::fs::read(fixture_cached(name)).unwrap();
        let cluster_size = 1usize << u32::from_be_bytes(original[20..24].try_into().unwrap());
        let front = original.len().min((8 * cluster_size).max(32 * 1024));
        let mut out = Outcomes::default();
        for case in 0..CASES_PER_SEED {
            let mut bytes = original.clone();
            let flips = 1 + rng.below(8);
            let mut changed = Vec::new();
            for _ in 0..flips {
                // The header, the first clusters (tables), or anywhere (data).
                let region = match rng.below(10) {
                    0..=2 => 128,
                    3..=7 => front,
                    _ => bytes.len(),
                };
                let at = rng.below(region as u64) as usize;
                bytes[at] = match rng.below(3) {
                    0 => bytes[at] ^ (1 + rng.below(255)) as u8,
                    1 => 0xff,
                    _ => 0,
                };
                changed.push(at);
            }
            let backing = (*name == "q-small-backed").then(|| Arc::clone(&base));
            let result = catch_unwind(AssertUnwindSafe(|| {
                exercise(bytes, backing, &mut rng, &mut out)
            }));
            assert!(
                result.is_ok(),
                "{name}: case {case} panicked (bytes changed at {changed:?})"
            );
        }
        eprintln!("{name}: {out:?}");
        // The corpus must reach past the header checks and also trip them.
        assert!(
            out.refused_at_open > 0,
            "{name}: no case was refused: {out:?}"
        );
        assert!(out.read_ok > 0, "{name}: no case read cleanly: {out:?}");
    }
}
