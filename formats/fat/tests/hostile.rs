//! Hostile input: absurd BPB fields, truncated images, FAT entries past the end or
//! looping, directories that loop or contain themselves, long names that lie,
//! cross-linked files, disagreeing FAT copies — and a deterministic fuzz loop. Every
//! case must give a typed error (or a sane answer), never a panic or a hang, and a
//! refused edit must not write a byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use vmscrub_blockdev::{MemDisk, ReadAt};
use vmscrub_fat::{FatError, FatFs, FatType, Geometry};

fn base(name: &str) -> Arc<Vec<u8>> {
    Arc::new(std::fs::read(vmscrub_fixtures::fixture(name)).unwrap())
}

fn geometry(base: &Arc<Vec<u8>>) -> Geometry {
    FatFs::open(CowDisk::new(base.clone()))
        .unwrap()
        .geometry()
        .clone()
}

/// Writes FAT entry `cluster` of FAT copy `copy` (test-side encoder).
fn set_fat(d: &CowDisk, g: &Geometry, copy: u32, cluster: u32, value: u32) {
    let fat = g.fat_offset(copy);
    match g.fat_type {
        FatType::Fat12 => {
            let pos = fat + cluster as u64 + cluster as u64 / 2;
            let mut b = [0u8; 2];
            d.read_exact_at(&mut b, pos).unwrap();
            let old = u16::from_le_bytes(b);
            let new = if cluster.is_multiple_of(2) {
                (old & 0xF000) | (value as u16 & 0xFFF)
            } else {
                (old & 0x000F) | ((value as u16) << 4)
            };
            d.patch(pos, &new.to_le_bytes());
        }
        FatType::Fat16 => d.patch(fat + cluster as u64 * 2, &(value as u16).to_le_bytes()),
        FatType::Fat32 => d.patch(fat + cluster as u64 * 4, &value.to_le_bytes()),
    }
}

fn set_fat_all(d: &CowDisk, g: &Geometry, cluster: u32, value: u32) {
    for copy in 0..g.num_fats {
        set_fat(d, g, copy, cluster, value);
    }
}

/// Asserts an edit was refused without writing.
fn refused<T: std::fmt::Debug>(r: vmscrub_fat::Result<T>, d: &CowDisk) -> FatError {
    let e = r.expect_err("edit should be refused");
    assert!(!matches!(e, FatError::Write { .. }), "{e}");
    assert_eq!(d.writes(), 0, "a refused edit wrote ({e})");
    e
}

#[test]
fn absurd_boot_sector_fields_are_named() {
    for name in FAT_TREES {
        let b = base(name);
        let fat32 = geometry(&b).fat_type == FatType::Fat32;
        let mut cases: Vec<(&str, u64, Vec<u8>, &str)> = vec![
            ("signature", 510, vec![0, 0], "0x55AA"),
            ("bps 0", 11, vec![0, 0], "BPB_BytsPerSec"),
            (
                "bps 513",
                11,
                513u16.to_le_bytes().to_vec(),
                "BPB_BytsPerSec",
            ),
            (
                "bps 8192",
                11,
                8192u16.to_le_bytes().to_vec(),
                "BPB_BytsPerSec",
            ),
            ("spc 0", 13, vec![0], "BPB_SecPerClus"),
            ("spc 3", 13, vec![3], "BPB_SecPerClus"),
            ("reserved 0", 14, vec![0, 0], "BPB_RsvdSecCnt"),
            ("fats 0", 16, vec![0], "BPB_NumFATs"),
            ("total 0", 19, vec![0, 0], ""),
        ];
        if fat32 {
            cases.push(("fat size 0", 36, vec![0; 4], "BPB_FATSz"));
            cases.push(("root cluster 0", 44, vec![0; 4], "BPB_RootClus"));
            cases.push((
                "root cluster huge",
                44,
                vec![0xF0, 0xFF, 0xFF, 0x0F],
                "BPB_RootClus",
            ));
            cases.push(("fsinfo outside", 48, vec![0xF0, 0x0F], "BPB_FSInfo"));
            cases.push(("version", 42, vec![1, 0], "BPB_FSVer"));
            cases.push(("root entries on FAT32", 17, vec![0, 2], "BPB_RootEntCnt"));
            cases.push(("total 32 huge", 32, vec![0xFF; 4], ""));
        } else {
            cases.push(("fat size 0", 22, vec![0, 0], "BPB_FATSz"));
            cases.push(("root entries 0", 17, vec![0, 0], "BPB_RootEntCnt"));
            cases.push(("total huge", 19, vec![0xFF, 0xFF], ""));
        }
        for (what, offset, bytes, field) in cases {
            let d = CowDisk::new(b.clone());
            d.patch(offset, &bytes);
            if what == "total 0" {
                d.patch(32, &[0; 4]);
            }
            let e = FatFs::open(d).expect_err(what);
            let msg = e.to_string();
            assert!(
                matches!(
                    e,
                    FatError::Bpb { .. } | FatError::NoSignature | FatError::Truncated { .. }
                ),
                "{name} {what}: {msg}"
            );
            assert!(
                msg.contains(field),
                "{name} {what}: {msg} does not name {field}"
            );
        }
    }
}

#[test]
fn truncated_images_are_errors() {
    for name in FAT_TREES {
        let b = base(name);
        for len in [
            0usize,
            100,
            511,
            512,
            4096,
            64 << 10,
            b.len() / 2,
            b.len() - 512,
        ] {
            let d = MemDisk::new(b[..len].to_vec());
            let e = FatFs::open(d).expect_err("truncated");
            assert!(
                matches!(e, FatError::Read { .. } | FatError::Truncated { .. }),
                "{name} at {len}: {e}"
            );
        }
    }
}

#[test]
fn bad_chains_are_errors_and_edits_are_refused() {
    for name in FAT_TREES {
        let b = base(name);
        let g = geometry(&b);
        let pristine = FatFs::open(CowDisk::new(b.clone())).unwrap();
        let big = pristine.lookup(b"/keep/untouched.bin").unwrap();
        let chain = pristine.chain(&big).unwrap();
        let first = big.first_cluster;
        let second = chain.clusters().nth(1).unwrap();
        let past_end = g.max_cluster() + 1;
        let bad = match g.fat_type {
            FatType::Fat12 => 0xFF7,
            FatType::Fat16 => 0xFFF7,
            FatType::Fat32 => 0x0FFF_FFF7,
        };

        for (what, cluster, value) in [
            ("points past the end", second, past_end),
            ("loops to the start", second, first),
            ("loops to itself", second, second),
            ("runs into a free cluster", second, 0),
            ("runs into a bad cluster", second, bad),
            ("points at reserved cluster 1", first, 1),
        ] {
            let d = CowDisk::new(b.clone());
            set_fat_all(&d, &g, cluster, value);
            let mut fs = FatFs::open(d).unwrap();
            // The walk lists names without following file chains; reading fails.
            assert!(fs.walk().is_ok());
            let e = fs
                .open_file(big.id)
                .err()
                .unwrap_or_else(|| panic!("{name}: {what}: read succeeded"));
            assert!(
                matches!(e, FatError::FatEntry { .. } | FatError::ChainLoop { .. }),
                "{name} {what}: {e}"
            );
            let e2 = refused(fs.remove_file(b"/keep/untouched.bin"), fs.device());
            assert_eq!(e.to_string(), e2.to_string());
            refused(fs.truncate(b"/keep/untouched.bin"), fs.device());
            refused(fs.rewrite(b"/keep/untouched.bin", b"x"), fs.device());
            // An edit elsewhere is refused too: the volume cannot be proven free of
            // cross-links while a chain is broken.
            refused(fs.remove_file(b"/keep/README"), fs.device());
        }

        // A file's first cluster past the end.
        let d = CowDisk::new(b.clone());
        d.patch(big.id + 26, &0xFFF0u16.to_le_bytes());
        d.patch(big.id + 20, &0x0FFFu16.to_le_bytes());
        let fs = FatFs::open(d).unwrap();
        assert!(matches!(
            fs.open_file(big.id),
            Err(FatError::FirstClusterOutOfRange { .. })
        ));

        // A size larger than the chain.
        let d = CowDisk::new(b.clone());
        d.patch(big.id + 28, &(big.size + g.cluster_size).to_le_bytes());
        let fs = FatFs::open(d).unwrap();
        assert!(matches!(
            fs.open_file(big.id),
            Err(FatError::ChainTooShort { .. })
        ));
    }
}

#[test]
fn looping_directories_end_in_errors() {
    for name in FAT_TREES {
        let b = base(name);
        let g = geometry(&b);
        let pristine = FatFs::open(CowDisk::new(b.clone())).unwrap();
        let many = pristine.lookup(b"/many").unwrap();
        let many_chain = pristine.dir_chain(many.id).unwrap();
        let last = many_chain.clusters().last().unwrap();
        let deep_a = pristine.lookup(b"/deep/a").unwrap();
        let deep_b = pristine.lookup_entry(b"/deep/a/b").unwrap().unwrap();

        // A directory chain that loops back to its start.
        let d = CowDisk::new(b.clone());
        set_fat_all(&d, &g, last, many.first_cluster);
        let fs = FatFs::open(d).unwrap();
        assert!(
            matches!(fs.walk(), Err(FatError::ChainLoop { .. })),
            "{name}"
        );
        assert!(matches!(
            fs.read_dir(many.id),
            Err(FatError::ChainLoop { .. })
        ));
        assert!(fs.lookup(b"/many/many-files-long-name-000001").is_err());
        assert!(fs.lookup(b"/keep/README").is_ok());
        let mut fs = fs;
        refused(fs.remove_tree(b"/many"), fs.device());
        refused(fs.remove_file(b"/keep/README"), fs.device());

        // A directory that contains itself: /deep/a/b points at /deep/a's cluster.
        let d = CowDisk::new(b.clone());
        let c = deep_a.first_cluster;
        d.patch(deep_b.id() + 26, &(c as u16).to_le_bytes());
        d.patch(deep_b.id() + 20, &((c >> 16) as u16).to_le_bytes());
        let mut fs = FatFs::open(d).unwrap();
        assert!(
            matches!(fs.walk(), Err(FatError::DirectoryLoop { .. })),
            "{name}"
        );
        // Path resolution through the loop is bounded by the path's length.
        assert!(fs.lookup(b"/deep/a/b/b/b/b/b/b").is_ok());
        refused(fs.remove_tree(b"/deep"), fs.device());

        // A directory whose entries never end: every slot a live entry, chain looping.
        let d = CowDisk::new(b.clone());
        let off = g.cluster_offset(many.first_cluster);
        let mut slot = [0u8; 32];
        d.read_exact_at(&mut slot, pristine.read_dir(many.id).unwrap()[0].id())
            .unwrap();
        for i in 0..(g.cluster_size as u64 / 32) {
            slot[0] = b'A' + (i % 26) as u8;
            d.patch(off + i * 32, &slot);
        }
        set_fat_all(&d, &g, many.first_cluster, many.first_cluster);
        let fs = FatFs::open(d).unwrap();
        assert!(matches!(
            fs.read_dir(many.id),
            Err(FatError::ChainLoop { .. })
        ));
    }
}

#[test]
fn long_names_that_lie_fall_back_and_are_still_wiped() {
    for name in FAT_TREES {
        let b = base(name);
        let pristine = FatFs::open(CowDisk::new(b.clone())).unwrap();
        let e = pristine
            .lookup_entry(b"/Long secret LONGNAMEMARKER2 file.conf")
            .unwrap()
            .unwrap();
        assert_eq!(e.slots.len(), 4);
        let lfn = &e.slots[..3];

        // Wrong checksum on every slot: the name is the short one, the slots orphans.
        let d = CowDisk::new(b.clone());
        for &s in lfn {
            d.patch(s + 13, &[0x5A]);
        }
        let mut fs = FatFs::open(d).unwrap();
        let root = fs.read_dir(vmscrub_fat::ROOT).unwrap();
        let x = root.iter().find(|x| x.id() == e.id()).unwrap();
        assert_eq!(x.long_name, None);
        assert_eq!(x.name, x.short_name.as_bytes());
        assert_eq!(x.orphan_slots, lfn);
        let r = fs.remove_file(x.short_name.as_bytes()).unwrap();
        assert_eq!(
            r.wiped_slots.len(),
            4,
            "orphaned long-name slots are wiped too"
        );

        // Slots out of order (the middle one claims to be first): no long name.
        let d = CowDisk::new(b.clone());
        d.patch(lfn[1], &[0x03]);
        let fs = FatFs::open(d).unwrap();
        let x = fs.node(e.id()).unwrap();
        let listed = fs.read_dir(vmscrub_fat::ROOT).unwrap();
        let y = listed.iter().find(|y| y.id() == x.id).unwrap();
        assert_eq!(y.long_name, None);

        // A sequence number past 20 and a broken UTF-16 surrogate: no long name,
        // no panic.
        let d = CowDisk::new(b.clone());
        d.patch(lfn[0], &[0x40 | 0x1F]);
        let fs = FatFs::open(d).unwrap();
        assert!(
            fs.read_dir(vmscrub_fat::ROOT)
                .unwrap()
                .iter()
                .all(|y| y.id() != e.id() || y.long_name.is_none())
        );
        let d = CowDisk::new(b.clone());
        d.patch(lfn[2] + 1, &0xD800u16.to_le_bytes());
        let fs = FatFs::open(d).unwrap();
        let listed = fs.read_dir(vmscrub_fat::ROOT).unwrap();
        let y = listed.iter().find(|y| y.id() == e.id()).unwrap();
        assert_eq!(y.long_name, None);
        assert_eq!(
            y.slots.len(),
            4,
            "checksum-bound slots are the entry's, though undecodable"
        );
    }
}

#[test]
fn cross_links_and_disagreeing_fats_are_refused() {
    for name in FAT_TREES {
        let b = base(name);
        let g = geometry(&b);
        let pristine = FatFs::open(CowDisk::new(b.clone())).unwrap();
        let a = pristine
            .lookup_entry(b"/keep/untouched.bin")
            .unwrap()
            .unwrap();
        let other = pristine.lookup_entry(b"/keep/README").unwrap().unwrap();

        // README now starts inside untouched.bin's chain.
        let d = CowDisk::new(b.clone());
        let c = pristine.chain(&a.node).unwrap().clusters().last().unwrap();
        d.patch(other.id() + 26, &(c as u16).to_le_bytes());
        d.patch(other.id() + 20, &((c >> 16) as u16).to_le_bytes());
        let mut fs = FatFs::open(d).unwrap();
        for r in [
            fs.remove_file(b"/keep/untouched.bin"),
            fs.remove_file(b"/keep/README"),
            fs.truncate(b"/keep/untouched.bin"),
            fs.remove_tree(b"/keep"),
        ] {
            let e = refused(r, fs.device());
            assert!(
                matches!(e, FatError::CrossLinked { cluster } if cluster == c),
                "{name}: {e}"
            );
        }
        // Other files stay removable.
        assert!(fs.remove_file(b"/lower.txt").is_ok());

        // FAT copies that disagree on a touched chain.
        let d = CowDisk::new(b.clone());
        let second = pristine.chain(&a.node).unwrap().clusters().nth(1).unwrap();
        set_fat(&d, &g, 1, second, 0);
        let mut fs = FatFs::open(d).unwrap();
        let mut content = Vec::new();
        fs.open_file(a.id())
            .unwrap()
            .read_to_end(&mut content)
            .unwrap();
        let e = refused(fs.remove_file(b"/keep/untouched.bin"), fs.device());
        assert!(
            matches!(e, FatError::FatMismatch { cluster, copy: 1, .. } if cluster == second),
            "{name}: {e}"
        );
        assert!(
            fs.remove_file(b"/lower.txt").is_ok(),
            "an untouched chain's copies may differ"
        );
    }
}

/// xorshift64*: a fixed seed makes every run the same.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Flips 1–8 random bytes — in the BPB, the metadata before the data region, the
/// directories, or anywhere in the first 256 KiB — then walks, reads every file, and tries a removal. Nothing may
/// panic; a refused removal must not write; no case may take long.
fn fuzz(name: &str, iterations: u32, seed: u64) {
    let b = base(name);
    let g = geometry(&b);
    let meta = g.data_offset().min(256 << 10);
    let window = (b.len() as u64).min(256 << 10);
    // Directory bytes (where names, sizes and first clusters live), from the pristine
    // volume: the fixed root region or the root chain, and every directory's chain.
    let pristine = FatFs::open(CowDisk::new(b.clone())).unwrap();
    let mut dirs: Vec<std::ops::Range<u64>> = Vec::new();
    if g.root_cluster == 0 {
        dirs.push(g.root_dir_offset()..g.root_dir_offset() + g.root_dir_bytes());
    }
    for id in std::iter::once(vmscrub_fat::ROOT).chain(
        pristine
            .walk()
            .unwrap()
            .iter()
            .filter(|w| w.entry.node.is_dir)
            .map(|w| w.entry.id()),
    ) {
        dirs.extend(pristine.dir_chain(id).unwrap().byte_ranges(&g));
    }
    let dir_bytes: u64 = dirs.iter().map(|r| r.end - r.start).sum();
    let mut rng = Rng(seed);
    let mut slowest = Duration::ZERO;
    let (mut opened, mut walked, mut removed, mut refusals) = (0, 0, 0, 0);
    for _ in 0..iterations {
        let d = CowDisk::new(b.clone());
        for _ in 0..1 + rng.below(8) {
            let pos = match rng.below(10) {
                0 => rng.below(90),
                1..=3 => rng.below(meta),
                4..=7 => {
                    let mut k = rng.below(dir_bytes);
                    let r = dirs.iter().find(|r| {
                        let n = r.end - r.start;
                        if k < n {
                            true
                        } else {
                            k -= n;
                            false
                        }
                    });
                    r.unwrap().start + k
                }
                _ => rng.below(window),
            };
            let mut byte = [0u8; 1];
            d.read_exact_at(&mut byte, pos).unwrap();
            byte[0] ^= 1 << rng.below(8);
            if rng.below(4) == 0 {
                byte[0] = rng.next() as u8;
            }
            d.patch(pos, &byte);
        }
        let start = Instant::now();
        let Ok(mut fs) = FatFs::open(d) else {
            continue;
        };
        opened += 1;
        let mut target: Option<Vec<u8>> = None;
        if let Ok(entries) = fs.walk() {
            walked += 1;
            for (i, w) in entries.iter().enumerate() {
                if !w.entry.node.is_dir
                    && let Ok(mut r) = fs.open_file(w.entry.id())
                {
                    let _ = std::io::copy(&mut r, &mut std::io::sink());
                }
                if i as u64 == rng.below(entries.len() as u64 + 1) {
                    target = Some(w.path.clone());
                }
            }
        }
        let target = target.unwrap_or_else(|| b"/keep/untouched.bin".to_vec());
        let result = if rng.below(2) == 0 {
            fs.remove_tree(&target)
        } else {
            fs.rewrite(&target, b"x")
                .or_else(|_| fs.remove_file(&target))
        };
        match result {
            Ok(_) => removed += 1,
            Err(FatError::Write { .. }) => panic!("write error on a memory device"),
            Err(_) if fs.device().writes() == 0 => refusals += 1,
            Err(e) => {
                // rewrite's refusal followed by remove_file's: both must be write-free.
                panic!("{name}: refused edit wrote: {e}")
            }
        }
        slowest = slowest.max(start.elapsed());
    }
    eprintln!(
        "{name}: {iterations} cases, {opened} opened, {walked} walked, {removed} edited, {refusals} refused; slowest {slowest:?}"
    );
    assert!(
        opened > iterations / 4,
        "the fuzz mostly breaks the boot sector: {opened}"
    );
    assert!(
        removed > 0 && refusals > 0,
        "{removed} edits, {refusals} refusals"
    );
    assert!(
        slowest < Duration::from_secs(20),
        "{name}: a case took {slowest:?}"
    );
}

#[test]
fn fuzz_fat12() {
    fuzz("fat12-tree", 1500, 0x1234_5678_9ABC_DEF1);
}

#[test]
fn fuzz_fat16() {
    fuzz("fat16-tree", 800, 0x0F0F_1E1E_2D2D_3C3C);
}

#[test]
fn fuzz_fat32() {
    fuzz("fat32-tree", 700, 0x7777_5555_3333_1111);
}
