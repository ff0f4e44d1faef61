//! Deterministic fuzzing: random byte flips over the metadata blocks of small
//! images, then a full walk that reads everything. Any result is fine except a
//! panic or a walk that does not finish in bounded time.
//!
//! `EXT4_FUZZ_ITERS` sets the iterations per image (default 150), `EXT4_FUZZ_SEED`
//! varies the byte flips (default 0: the fixed sequence CI runs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use vmscrub_blockdev::MemDisk;
use vmscrub_ext4::{Ext4, FileType, OpenOptions, ROOT_INO};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Every metadata block of a clean image: superblock, descriptors, bitmaps, the
/// used part of inode tables, directory blocks, mapping and xattr blocks.
fn metadata_blocks(data: &[u8]) -> Vec<u64> {
    let fs = Ext4::open(MemDisk::new(data.to_vec())).unwrap();
    let sb = fs.superblock();
    let mut blocks = HashSet::new();
    let per_block = u64::from(fs.block_size() / u32::from(sb.inode_size));
    for d in fs.groups() {
        let l = fs.group_layout(d.group).unwrap();
        blocks.extend(l.superblock);
        blocks.extend(l.descriptor_blocks.iter().copied());
        blocks.insert(l.block_bitmap);
        blocks.insert(l.inode_bitmap);
        let used = u64::from(sb.inodes_per_group - d.itable_unused.min(sb.inodes_per_group));
        blocks.extend(l.inode_table.start..l.inode_table.start + used.div_ceil(per_block));
    }
    for inode in fs.inodes_in_use() {
        let inode = inode.unwrap();
        let owned = fs.owned_blocks(inode.ino).unwrap();
        blocks.extend(owned.meta.iter().map(|m| m.block));
        if inode.is_dir() {
            for e in &owned.data {
                blocks.extend(e.physical());
            }
        }
        if inode.ino == sb.journal_inum {
            blocks.extend(owned.data.first().map(|e| e.start));
        }
    }
    let mut v: Vec<u64> = blocks.into_iter().collect();
    v.sort();
    v
}

/// Walks and reads everything, bounded: directories once each, at most 256 KiB
/// per file, a cap on entries.
fn walk_everything(fs: &Ext4<MemDisk>) {
    let _ = fs.superblock().group_count();
    for g in 0..fs.groups().len() as u32 {
        let _ = fs.block_bitmap(g);
        let _ = fs.inode_bitmap(g);
    }
    let mut seen_dirs = HashSet::new();
    let mut stack = vec![ROOT_INO];
    let mut entries = 0usize;
    let mut buf = vec![0u8; 256 << 10];
    while let Some(dir) = stack.pop() {
        if !seen_dirs.insert(dir) {
            continue;
        }
        if let Ok(inode) = fs.inode(dir) {
            let _ = fs.htree(&inode);
        }
        let Ok(rd) = fs.read_dir(dir) else { continue };
        for e in rd {
            let Ok(e) = e else { break };
            entries += 1;
            if entries > 20_000 {
                return;
            }
            if e.is_dot_or_dotdot() {
                continue;
            }
            let Ok(inode) = fs.inode(e.inode) else {
                continue;
            };
            let _ = fs.xattrs_of(&inode);
            let _ = fs.owned_blocks(e.inode);
            match inode.file_type() {
                FileType::Directory => stack.push(e.inode),
                FileType::Symlink => {
                    let _ = fs.readlink_of(&inode);
                }
                FileType::Regular => {
                    if let Ok(r) = fs.open_inode(inode) {
                        let _ = r.read_at(0, &mut buf);
                        let _ = r.read_at(r.size().saturating_sub(4096), &mut buf[..4096]);
                    }
                }
                _ => {}
            }
        }
    }
    for p in [
        &b"/l/slow"[..],
        b"/l/loop",
        b"/d/e/file",
        b"/many/name-of-an-entry-000299",
    ] {
        let _ = fs.lookup(p, true);
    }
    for inode in fs.inodes_in_use().take(5000) {
        let Ok(inode) = inode else { break };
        let _ = fs.file_map(&inode);
    }
    if let Ok(Some(j)) = fs.journal() {
        let _ = fs.journal_transactions(&j);
    }
}

fn fuzz(name: &str, seed: u64) {
    let iters: u64 = std::env::var("EXT4_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let clean = std::fs::read(fixture(name)).unwrap();
    let meta = metadata_blocks(&clean);
    let bs = {
        let fs = Ext4::open(MemDisk::new(clean.clone())).unwrap();
        u64::from(fs.block_size())
    };
    assert!(meta.len() > 20, "{name}: {} metadata blocks", meta.len());
    let extra: u64 = std::env::var("EXT4_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut rng = Rng(seed ^ extra.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut opened = 0;
    let mut slowest = Duration::ZERO;
    for it in 0..iters {
        let mut data = clean.clone();
        let flips = 1 + rng.below(8);
        for _ in 0..flips {
            let block = meta[rng.below(meta.len() as u64) as usize];
            // The superblock lives at byte 1024 whatever the block size.
            let base = if block == 0 { 1024 } else { block * bs };
            let span = if block == 0 { 1024 } else { bs };
            let at = (base + rng.below(span)) as usize;
            if rng.below(2) == 0 {
                data[at] ^= 1 << rng.below(8);
            } else {
                data[at] = rng.next() as u8;
            }
        }
        let verify = it % 2 == 0;
        let start = Instant::now();
        if let Ok(fs) = Ext4::open_with(
            MemDisk::new(data),
            OpenOptions {
                verify_checksums: verify,
                ..Default::default()
            },
        ) {
            opened += 1;
            walk_everything(&fs);
        }
        let took = start.elapsed();
        slowest = slowest.max(took);
        assert!(
            took < Duration::from_secs(20),
            "{name}: iteration {it} took {took:?}"
        );
    }
    eprintln!("{name}: {iters} iterations, {opened} opened, slowest {slowest:?}");
    assert!(
        opened > 0,
        "{name}: no mutated image opened, the walk was never exercised"
    );
}

#[test]
fn fuzz_ext4() {
    fuzz("ext4-fuzz", 0x5EED_0001);
}

#[test]
fn fuzz_ext4_inline() {
    fuzz("ext4-fuzz-inline", 0x5EED_0002);
}

#[test]
fn fuzz_ext2() {
    fuzz("ext2-fuzz", 0x5EED_0003);
}
