//! The indexes beside a leaf, node or B+tree directory's data blocks. The hash
//! entry pointing at a removed entry (found by `dir_lookup`) is made stale
//! (`XFS_DIR2_NULL_DATAPTR`)
//! and counted in its leaf header's `stale`. Stale entries keep their hash, so
//! every leaf's last hash — the key the da-btree nodes hold — is unchanged and
//! no node block needs touching. The data block's longest free run goes to
//! the leaf form's tail `bests`, or to the free-index block (`XDF3`) covering
//! it in the node and B+tree forms; the old value must be what the block had,
//! or the directory is refused as inconsistent.

use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use super::dir_data::put;
use super::dirent::{DirBlock, Geometry};
use crate::be::{u16_at, u32_at, u64_at};
use crate::bmap::BlockMap;
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::Inode;

pub(super) const LEAF1_MAGIC: u16 = 0x3df1;
pub(super) const LEAFN_MAGIC: u16 = 0x3dff;
pub(super) const NODE_MAGIC: u16 = 0x3ebe;
const FREE_MAGIC: u32 = 0x5844_4633; // XDF3
/// da3 block header: magic at 8, CRC at 12, blkno at 16, owner at 48.
const DA_MAGIC_OFF: usize = 8;
const DA_CRC_OFF: usize = 12;
const DA_BLKNO_OFF: usize = 16;
const DA_OWNER_OFF: usize = 48;
const LEAF_COUNT_OFF: usize = 56;
const LEAF_STALE_OFF: usize = 58;
const LEAF_ENTS: usize = 64;
/// Free-index header (`xfs_dir3_free_hdr`).
const FREE_CRC_OFF: usize = 4;
const FREE_BLKNO_OFF: usize = 8;
const FREE_OWNER_OFF: usize = 40;
const FREE_FIRSTDB_OFF: usize = 48;
const FREE_NVALID_OFF: usize = 52;
const FREE_NUSED_OFF: usize = 56;
/// A `bests` slot of a data block that is not there (`NULLDATAOFF`).
const NO_BLOCK: u16 = 0xffff;
const FREE_BESTS: usize = 64;

/// One data block's longest free run changing, after the entry at
/// `dataptr` was freed.
#[derive(Debug, Clone, Copy)]
pub(super) struct BestChange {
    pub db: u64,
    pub dataptr: u32,
    pub old: u16,
    pub new: u16,
    /// The data block lost its last entry and leaves the directory.
    pub emptied: bool,
}

impl BestChange {
    fn slot(&self) -> u16 {
        if self.emptied { NO_BLOCK } else { self.new }
    }
}

/// Stales the hash entry at byte `leaf_at` of leaf block `leaf_db` (found
/// by the lookup) and records the data block's new longest free run;
/// returns a free-index block left indexing nothing.
pub(super) fn stale_and_rebest<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    dir: &Inode,
    map: &BlockMap,
    geo: &Geometry,
    (db, at): (u64, usize),
    change: BestChange,
) -> Result<Option<u64>> {
    let loc = Loc::inode(dir.ino);
    let mut blk = DirBlock::read(fs, geo, map, db, loc)?;
    let loc = loc.with_offset(blk.offset());
    check_da_header(&blk, dir.ino, loc)?;
    let leaf1 = u16_at(&blk.buf, DA_MAGIC_OFF) == LEAF1_MAGIC;
    let ents = leaf_entries(&blk.buf, leaf1, loc)?;
    let b = &mut blk.buf;
    let aligned = at >= ents.start && (at - ents.start) % 8 == 0;
    if !ents.contains(&at) || !aligned || u32_at(b, at + 4) != change.dataptr {
        return Err(Error::corrupt(
            "directory leaf",
            loc,
            "the hash entry found no longer points at the entry",
        ));
    }
    let stale = u16_at(b, LEAF_STALE_OFF)
        .checked_add(1)
        .ok_or_else(|| Error::corrupt("directory leaf", loc, "stale count overflows"))?;
    put(b, at + 4, &0u32.to_be_bytes());
    put(b, LEAF_STALE_OFF, &stale.to_be_bytes());
    if leaf1 {
        rebest_leaf_tail(b, change, loc)?;
    }
    checksum::store(b, DA_CRC_OFF);
    blk.write(stage)?;
    if leaf1 {
        return Ok(None);
    }
    rebest_free_index(fs, stage, dir, map, geo, change)
}

pub(super) fn check_da_header(blk: &DirBlock, ino: u64, loc: Loc) -> Result<()> {
    checksum::verify(true, "directory leaf", &blk.buf, DA_CRC_OFF, loc)?;
    if u64_at(&blk.buf, DA_OWNER_OFF) != ino || u64_at(&blk.buf, DA_BLKNO_OFF) != blk.daddr() {
        return Err(Error::corrupt(
            "directory leaf",
            loc,
            "owner or block number in the header is not this block's",
        ));
    }
    Ok(())
}

/// Byte range of the hash entries; in the leaf form they must end before
/// the `bests` and the tail.
pub(super) fn leaf_entries(b: &[u8], leaf1: bool, loc: Loc) -> Result<std::ops::Range<usize>> {
    let count = usize::from(u16_at(b, LEAF_COUNT_OFF));
    let limit = if leaf1 {
        let bests = u32_at(b, b.len() - 4) as usize;
        b.len()
            .saturating_sub(bests.saturating_mul(2).saturating_add(4))
    } else {
        b.len()
    };
    let end = LEAF_ENTS + count * 8;
    if end > limit {
        return Err(Error::corrupt(
            "directory leaf",
            loc,
            format!("{count} hash entries run past the block"),
        ));
    }
    Ok(LEAF_ENTS..end)
}

/// The leaf form keeps each data block's longest free run in the `bests`
/// array before its tail. When the last data block goes, the array shrinks
/// past every trailing missing block (block 0 always stays), as the kernel's
/// `xfs_dir2_leaf_removename` leaves it: xfs_repair wants one slot per data
/// block up to the last.
fn rebest_leaf_tail(b: &mut [u8], change: BestChange, loc: Loc) -> Result<()> {
    let count = u64::from(u32_at(b, b.len() - 4));
    if change.db >= count {
        return Err(Error::corrupt(
            "directory leaf tail",
            loc,
            format!("data block {} has no bests slot ({count} slots)", change.db),
        ));
    }
    let first = (b.len() as u64)
        .checked_sub(4 + 2 * count)
        .ok_or_else(|| Error::corrupt("directory leaf tail", loc, "bests larger than the block"))?
        as usize;
    let at = first + 2 * change.db as usize;
    set_best(b, at, change, loc)?;
    if !change.emptied || change.db + 1 != count {
        return Ok(());
    }
    let slot = |b: &[u8], i: u64| u16_at(b, first + 2 * i as usize);
    let mut keep = change.db;
    while keep > 1 && slot(b, keep - 1) == NO_BLOCK {
        keep -= 1;
    }
    // Slots [0, keep) move to the end, against the tail.
    let drop = (count - keep) as usize * 2;
    let end = b.len() - 4;
    b.copy_within(first..end - drop, first + drop);
    b[first..first + drop].fill(0);
    put(b, end, &(keep as u32).to_be_bytes());
    Ok(())
}

fn set_best(b: &mut [u8], at: usize, change: BestChange, loc: Loc) -> Result<()> {
    let old = u16_at(b, at);
    if old != change.old {
        return Err(Error::corrupt(
            "directory bests",
            loc,
            format!(
                "data block {} is recorded with {old} free bytes, its header says {}",
                change.db, change.old
            ),
        ));
    }
    put(b, at, &change.slot().to_be_bytes());
    Ok(())
}

/// The node and B+tree forms keep the bests in free-index blocks, each
/// covering `nvalid` data blocks from `firstdb`. A data block leaving gives
/// up its slot (trailing missing slots trimmed off `nvalid`, `nused` one
/// less, as the kernel's `xfs_dir3_data_block_free`); a free-index block left
/// with no used slot is returned, to leave the directory too.
fn rebest_free_index<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    dir: &Inode,
    map: &BlockMap,
    geo: &Geometry,
    change: BestChange,
) -> Result<Option<u64>> {
    let loc = Loc::inode(dir.ino);
    for db in geo.mapped(map, geo.free_db, u64::MAX) {
        let mut blk = DirBlock::read(fs, geo, map, db, loc)?;
        let loc = loc.with_offset(blk.offset());
        let b = &blk.buf;
        if u32_at(b, 0) != FREE_MAGIC {
            return Err(Error::corrupt(
                "directory free index",
                loc,
                format!("magic {:#x}", u32_at(b, 0)),
            ));
        }
        checksum::verify(true, "directory free index", b, FREE_CRC_OFF, loc)?;
        if u64_at(b, FREE_OWNER_OFF) != dir.ino || u64_at(b, FREE_BLKNO_OFF) != blk.daddr() {
            return Err(Error::corrupt(
                "directory free index",
                loc,
                "owner or block number in the header is not this block's",
            ));
        }
        let first = u64::from(u32_at(b, FREE_FIRSTDB_OFF));
        let nvalid = u64::from(u32_at(b, FREE_NVALID_OFF));
        if change.db < first || change.db >= first + nvalid {
            continue;
        }
        let at = FREE_BESTS + 2 * (change.db - first) as usize;
        if at + 2 > b.len() {
            return Err(Error::corrupt(
                "directory free index",
                loc,
                format!("{nvalid} bests do not fit in the block"),
            ));
        }
        set_best(&mut blk.buf, at, change, loc)?;
        let mut gone = false;
        if change.emptied {
            gone = give_up_slot(&mut blk.buf, change.db - first, nvalid, loc)?;
        }
        checksum::store(&mut blk.buf, FREE_CRC_OFF);
        blk.write(stage)?;
        return Ok(gone.then_some(db));
    }
    Err(Error::corrupt(
        "directory free index",
        loc,
        format!("no free-index block covers data block {}", change.db),
    ))
}

/// Slot `idx` of a free-index block is now `NO_BLOCK`: trims `nvalid` if it
/// was the last, counts one block less used. True when none is left.
fn give_up_slot(b: &mut [u8], idx: u64, nvalid: u64, loc: Loc) -> Result<bool> {
    if idx + 1 == nvalid {
        let mut valid = idx;
        while valid > 0 && u16_at(b, FREE_BESTS + 2 * (valid as usize - 1)) == NO_BLOCK {
            valid -= 1;
        }
        put(b, FREE_NVALID_OFF, &(valid as u32).to_be_bytes());
    }
    let used = u32_at(b, FREE_NUSED_OFF)
        .checked_sub(1)
        .ok_or_else(|| Error::corrupt("directory free index", loc, "no used slot to give up"))?;
    put(b, FREE_NUSED_OFF, &used.to_be_bytes());
    Ok(used == 0)
}
