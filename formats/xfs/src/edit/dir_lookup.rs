//! Finding a name in a leaf, node or B+tree directory the way the kernel
//! does: by the name's hash, through the single leaf block (leaf form) or
//! down the da-btree to a leaf block (node and B+tree forms), then each
//! live hash entry with that hash checked against the name in its data
//! block. A removal then costs a few block reads, not a read of the whole
//! directory, so removing many names from a large directory stays linear.

use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use super::dir_index::{self, LEAF1_MAGIC, LEAFN_MAGIC, NODE_MAGIC};
use super::dirent::{DirBlock, Geometry};
use crate::be::{u8_at, u16_at, u32_at};
use crate::bmap::BlockMap;
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::Inode;

/// Deepest da-btree followed (the kernel's limit is 5).
const MAX_DEPTH: usize = 8;
const NODE_COUNT_OFF: usize = 56;
const NODE_ENTRIES: usize = 64;
const DA_FORW_OFF: usize = 0;
const FREE_TAG: u16 = 0xffff;

/// Where a name lives: its data entry and its hash entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    /// Data block and byte of the entry in it.
    pub db: u64,
    pub pos: usize,
    /// Leaf block and byte of the hash entry in it.
    pub leaf_db: u64,
    pub leaf_at: usize,
}

/// The directory name hash (`xfs_da_hashname`): seven bits a byte, rotated.
pub(super) fn hashname(name: &[u8]) -> u32 {
    let b = |i: usize| u32::from(name.get(i).copied().unwrap_or(0));
    let mut hash = 0u32;
    let mut i = 0;
    while name.len() - i >= 4 {
        hash = (b(i) << 21) ^ (b(i + 1) << 14) ^ (b(i + 2) << 7) ^ b(i + 3) ^ hash.rotate_left(28);
        i += 4;
    }
    match name.len() - i {
        3 => (b(i) << 14) ^ (b(i + 1) << 7) ^ b(i + 2) ^ hash.rotate_left(21),
        2 => (b(i) << 7) ^ b(i + 1) ^ hash.rotate_left(14),
        1 => b(i) ^ hash.rotate_left(7),
        _ => hash,
    }
}

/// Looks `name` up through the hash index; `None` when it is not there.
pub(super) fn find<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    dir: &Inode,
    map: &BlockMap,
    geo: &Geometry,
    name: &[u8],
) -> Result<Option<Found>> {
    let loc = Loc::inode(dir.ino);
    let hash = hashname(name);
    let per = geo.dir_block_size / geo.block_size;
    let mut db = geo.leaf_db;
    for _ in 0..MAX_DEPTH {
        let blk = DirBlock::read(fs, geo, map, db, loc)?;
        let bloc = loc.with_offset(blk.offset());
        dir_index::check_da_header(&blk, dir.ino, bloc)?;
        match u16_at(&blk.buf, 8) {
            LEAF1_MAGIC | LEAFN_MAGIC => return scan_leaves(fs, dir, map, geo, blk, hash, name),
            NODE_MAGIC => db = child(&blk.buf, hash, per, bloc)?,
            m => {
                return Err(Error::corrupt(
                    "directory da-btree",
                    bloc,
                    format!("magic {m:#x}"),
                ));
            }
        }
    }
    Err(Error::corrupt(
        "directory da-btree",
        loc,
        format!("deeper than {MAX_DEPTH} levels"),
    ))
}

/// The child of a node block to follow for `hash`: the first whose highest
/// hash is not below it (the last if none is).
fn child(b: &[u8], hash: u32, per: u64, loc: Loc) -> Result<u64> {
    let count = usize::from(u16_at(b, NODE_COUNT_OFF));
    if count == 0 || NODE_ENTRIES + count * 8 > b.len() {
        return Err(Error::corrupt(
            "directory node",
            loc,
            format!("{count} entries"),
        ));
    }
    let key = |i: usize| u32_at(b, NODE_ENTRIES + 8 * i);
    let i = (0..count).find(|&i| key(i) >= hash).unwrap_or(count - 1);
    let before = u64::from(u32_at(b, NODE_ENTRIES + 8 * i + 4));
    if before % per != 0 {
        return Err(Error::corrupt(
            "directory node",
            loc,
            format!("child at block {before} is not a directory block"),
        ));
    }
    Ok(before / per)
}

/// Walks the hash entries equal to `hash` from the first leaf block found,
/// on to right siblings while the run goes on (node form).
fn scan_leaves<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    dir: &Inode,
    map: &BlockMap,
    geo: &Geometry,
    mut blk: DirBlock,
    hash: u32,
    name: &[u8],
) -> Result<Option<Found>> {
    let loc = Loc::inode(dir.ino);
    let per = geo.dir_block_size / geo.block_size;
    let hops = geo.mapped(map, geo.leaf_db, geo.free_db).len();
    for _ in 0..=hops {
        let bloc = loc.with_offset(blk.offset());
        let leaf1 = u16_at(&blk.buf, 8) == LEAF1_MAGIC;
        let ents = dir_index::leaf_entries(&blk.buf, leaf1, bloc)?;
        let count = ents.len() / 8;
        let hash_at = |i: usize| u32_at(&blk.buf, ents.start + 8 * i);
        let first = partition(count, |i| hash_at(i) < hash);
        let mut i = first;
        while i < count && hash_at(i) == hash {
            let at = ents.start + 8 * i;
            let addr = u32_at(&blk.buf, at + 4);
            if addr != 0
                && let Some((db, pos)) = names_at(fs, map, geo, dir, addr, name)?
            {
                return Ok(Some(Found {
                    db,
                    pos,
                    leaf_db: blk.db,
                    leaf_at: at,
                }));
            }
            i += 1;
        }
        let forw = u64::from(u32_at(&blk.buf, DA_FORW_OFF));
        if leaf1 || i < count || forw == 0 || forw % per != 0 {
            return Ok(None);
        }
        blk = DirBlock::read(fs, geo, map, forw / per, loc)?;
        let bloc = loc.with_offset(blk.offset());
        dir_index::check_da_header(&blk, dir.ino, bloc)?;
        if u16_at(&blk.buf, 8) != LEAFN_MAGIC {
            return Err(Error::corrupt(
                "directory leaf",
                bloc,
                "a leaf's right sibling is not a leaf",
            ));
        }
    }
    Err(Error::corrupt(
        "directory leaf",
        loc,
        "the leaf siblings loop",
    ))
}

/// The first index in `[0, n)` for which `below` is false (a sorted run).
fn partition(n: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Whether the data entry at address `addr` (8-byte units into the data
/// section) carries `name`; its data block and byte if so. The removal
/// checks the block in full before changing it.
fn names_at<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    map: &BlockMap,
    geo: &Geometry,
    dir: &Inode,
    addr: u32,
    name: &[u8],
) -> Result<Option<(u64, usize)>> {
    let byte = u64::from(addr) * 8;
    let (db, pos) = (
        byte / geo.dir_block_size,
        (byte % geo.dir_block_size) as usize,
    );
    if db >= geo.leaf_db {
        return Err(Error::corrupt(
            "directory leaf",
            Loc::inode(dir.ino),
            format!("hash entry address {addr} points past the data blocks"),
        ));
    }
    let blk = DirBlock::read(fs, geo, map, db, Loc::inode(dir.ino))?;
    let loc = Loc::inode(dir.ino).with_offset(blk.offset());
    checksum::verify(true, "directory data block", &blk.buf, 4, loc)?;
    let b = &blk.buf;
    let n = usize::from(u8_at(b, pos + 8));
    let here = u16_at(b, pos) != FREE_TAG && b.get(pos + 9..pos + 9 + n) == Some(name);
    Ok(here.then_some((db, pos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_xfs_db() {
        // Values printed by `xfs_db -c "hash NAME"`.
        let n60 = format!("{}-000001", "n".repeat(60));
        let cases: [(&[u8], u32); 7] = [
            (b"a", 0x61),
            (b"ab", 0x30e2),
            (b"abc", 0x0018_7163),
            (b"abcd", 0x0c38_b1e4),
            (b"abcde", 0x1c58_f263),
            (b"entry-with-a-longer-name-00001", 0x347c_1f2f),
            (n60.as_bytes(), 0xebcd_16c4),
        ];
        for (name, want) in cases {
            assert_eq!(hashname(name), want, "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn partition_finds_the_first_not_below() {
        let v = [1, 3, 3, 3, 7];
        assert_eq!(partition(v.len(), |i| v[i] < 3), 1);
        assert_eq!(partition(v.len(), |i| v[i] < 8), 5);
        assert_eq!(partition(0, |_| true), 0);
    }
}
