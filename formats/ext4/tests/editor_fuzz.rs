//! Hostile images under the editor: random byte flips in the metadata blocks of
//! small images, then a fixed sequence of removals, truncates and rewrites and a
//! commit, all into memory. Any result is fine except a panic or an iteration
//! that does not finish in bounded time. Images without metadata checksums
//! (ext2) let most flips reach the editor's own checks instead of a checksum.
//!
//! `EXT4_FUZZ_ITERS` sets the iterations per image (default 120), `EXT4_FUZZ_SEED`
//! varies the flips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use vmscrub_blockdev::MemDisk;
use vmscrub_ext4::{Editor, EditorOptions, Ext4};

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

/// Superblock, descriptors, bitmaps, used inode-table blocks, directory blocks,
/// mapping and xattr blocks, and the journal superblock of a clean image.
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

fn edit_everything(dev: &MemDisk) -> (bool, usize) {
    let Ok(mut ed) = Editor::open(dev, EditorOptions::default()) else {
        return (false, 0);
    };
    let mut ok = 0;
    ok += usize::from(ed.unlink(b"/sizes/100").is_ok());
    ok += usize::from(ed.unlink(b"/d/hard").is_ok());
    ok += usize::from(ed.truncate(b"/sizes/300K").is_ok());
    // The fragmented file where the recipe wrote one, else the (unpunched) victim.
    ok += usize::from(
        ed.rewrite(b"/frag/fragmented", b"short")
            .or_else(|_| ed.rewrite(b"/frag/victim", b"short"))
            .is_ok(),
    );
    ok += usize::from(ed.rewrite(b"/sizes/5000", &[7u8; 4100]).is_ok());
    ok += usize::from(ed.unlink(b"/l/slow").is_ok());
    ok += usize::from(ed.unlink(b"/x/big").is_ok());
    ok += usize::from(ed.remove_tree(b"/d").is_ok());
    ok += usize::from(ed.remove_tree(b"/many").is_ok());
    ok += usize::from(ed.remove_tree(b"/sparse").is_ok());
    let _ = ed.commit();
    (true, ok)
}

fn fuzz(name: &str, seed: u64) {
    let iters: u64 = std::env::var("EXT4_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let clean = std::fs::read(fixture(name)).unwrap();
    // The clean image edits fully: the sequence is meaningful.
    let (opened, ok) = edit_everything(&MemDisk::new(clean.clone()));
    assert!(
        opened && ok == 10,
        "{name}: {ok} of 10 operations on the clean image"
    );
    let meta = metadata_blocks(&clean);
    let bs = u64::from(
        Ext4::open(MemDisk::new(clean.clone()))
            .unwrap()
            .block_size(),
    );
    let extra: u64 = std::env::var("EXT4_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut rng = Rng(seed ^ extra.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (mut opened, mut applied) = (0, 0);
    let mut slowest = Duration::ZERO;
    for it in 0..iters {
        let mut data = clean.clone();
        for _ in 0..1 + rng.below(6) {
            let block = meta[rng.below(meta.len() as u64) as usize];
            let (base, span) = if block == 0 {
                (1024, 1024)
            } else {
                (block * bs, bs)
            };
            let at = (base + rng.below(span)) as usize;
            if rng.below(2) == 0 {
                data[at] ^= 1 << rng.below(8);
            } else {
                data[at] = rng.next() as u8;
            }
        }
        let start = Instant::now();
        let (o, n) = edit_everything(&MemDisk::new(data));
        opened += usize::from(o);
        applied += n;
        let took = start.elapsed();
        slowest = slowest.max(took);
        assert!(
            took < Duration::from_secs(20),
            "{name}: iteration {it} took {took:?}"
        );
    }
    eprintln!(
        "{name}: {iters} iterations, {opened} opened, {applied} operations applied, slowest {slowest:?}"
    );
    assert!(
        opened > 0 && applied > 0,
        "{name}: the editor was never exercised"
    );
}

#[test]
fn fuzz_edit_ext4() {
    fuzz("ext4-fuzz", 0xED17_0001);
}

#[test]
fn fuzz_edit_ext4_inline() {
    fuzz("ext4-fuzz-inline", 0xED17_0002);
}

#[test]
fn fuzz_edit_ext2() {
    fuzz("ext2-fuzz", 0xED17_0003);
}

/// Flips in the log of a journal that needs recovery: replay must verify or
/// refuse, never panic.
#[test]
fn fuzz_journal_replay() {
    let iters: u64 = std::env::var("EXT4_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let clean = std::fs::read(fixture("ext4-recover")).unwrap();
    let (log, bs) = {
        let fs = Ext4::open(MemDisk::new(clean.clone())).unwrap();
        let j = fs.journal().unwrap().unwrap();
        let log: Vec<u64> = (0..8).filter_map(|l| j.map.lookup(l)).collect();
        (log, u64::from(fs.block_size()))
    };
    assert!(Editor::open(MemDisk::new(clean.clone()), EditorOptions::default()).is_ok());
    let mut rng = Rng(0xED17_0004);
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..iters {
        let mut data = clean.clone();
        for _ in 0..1 + rng.below(4) {
            let block = log[rng.below(log.len() as u64) as usize];
            let at = (block * bs + rng.below(bs)) as usize;
            data[at] ^= 1 << rng.below(8);
        }
        match Editor::open(MemDisk::new(data), EditorOptions::default()) {
            Ok(ed) => {
                opened += 1;
                let _ = ed.commit();
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!("journal: {iters} iterations, {opened} replayed, {refused} refused");
    assert!(refused > 0, "damaged logs are refused");
}
