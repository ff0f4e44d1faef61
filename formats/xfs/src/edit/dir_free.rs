//! A leaf or node directory's data block that loses its last entry must leave
//! the directory (xfs_repair junks empty data blocks), and so must a
//! free-index block that no longer indexes any data block. This cuts such
//! blocks out of the directory's extent list (an in-inode list only: a fork
//! held in a bmap B+tree is refused), fixes the extent and block counts and
//! the size (the end of the last data block, as the kernel's
//! `xfs_dir2_shrink_inode` leaves it), stages zeros over the blocks, and hands
//! them back for the caller to return to free space (bnobt, cntbt, rmapbt:
//! owner the directory, data fork, at their file offset).

use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use super::dirent::{DirBlock, Geometry};
use super::inode_raw::{RawInode, field};
use crate::bmap::{BlockMap, Extent};
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::Inode;

/// Filesystem blocks a removal took out of the directory's data fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FreedBlocks {
    /// First filesystem block (AG-encoded).
    pub fsb: u64,
    /// File block (in the directory's data fork) it was mapped at.
    pub offset: u64,
    pub count: u64,
}

/// Zeroes directory blocks `dbs` and unmaps them from `dir`'s fork.
pub(super) fn unmap<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    dir: &Inode,
    map: &BlockMap,
    geo: &Geometry,
    dbs: &[u64],
) -> Result<Vec<FreedBlocks>> {
    let loc = Loc::inode(dir.ino);
    let per = geo.dir_block_size / geo.block_size;
    let mut extents = map.extents.clone();
    let mut freed = vec![];
    for &db in dbs {
        let mut blk = DirBlock::read(fs, geo, map, db, loc)?;
        blk.buf.fill(0);
        blk.write(stage)?;
        freed.extend(cut(&mut extents, db * per, (db + 1) * per));
    }
    let mut raw = RawInode::read(fs, dir.ino)?;
    let capacity = fork_capacity(&raw, dir);
    if extents.len() > capacity {
        return Err(Error::refused(
            "directory extent list",
            format!(
                "unmapping an emptied block splits an extent: {} extents do not fit in the inode's {capacity}",
                extents.len()
            ),
        ));
    }
    write_extents(&mut raw, &extents, capacity);
    let count: u64 = freed.iter().map(|f| f.count).sum();
    let nblocks = raw.u64(field::NBLOCKS).checked_sub(count).ok_or_else(|| {
        Error::corrupt(
            "directory inode",
            loc,
            "block count below its mapped blocks",
        )
    })?;
    raw.set_u64(field::NBLOCKS, nblocks);
    if raw.u64(field::FLAGS2) & crate::inode::FLAGS2_NREXT64 != 0 {
        raw.set_u64(field::BIG_NEXTENTS, extents.len() as u64);
    } else {
        raw.set_u32(field::NEXTENTS, extents.len() as u32);
    }
    // The size ends with the last data block (the kernel's
    // `xfs_dir2_shrink_inode`); leaf and free-index blocks lie beyond the
    // leaf offset and do not count.
    let data_end = extents
        .iter()
        .filter(|e| e.offset < geo.leaf_db * per)
        .map(|e| e.end().min(geo.leaf_db * per))
        .filter(|end| *end > 0)
        .max()
        .unwrap_or(0);
    let size = raw.u64(field::SIZE).min(data_end * geo.block_size);
    raw.set_u64(field::SIZE, size);
    raw.write(stage)?;
    Ok(freed)
}

/// Extents the inode's data fork holds.
fn fork_capacity(raw: &RawInode, dir: &Inode) -> usize {
    let end = if dir.forkoff == 0 {
        raw.buf.len()
    } else {
        field::LITERAL + usize::from(dir.forkoff) * 8
    };
    end.saturating_sub(field::LITERAL) / 16
}

/// Removes file blocks `[lo, hi)` from `extents` (splitting one if needed)
/// and returns the physical runs they had.
fn cut(extents: &mut Vec<Extent>, lo: u64, hi: u64) -> Vec<FreedBlocks> {
    let mut out = vec![];
    let mut kept = Vec::with_capacity(extents.len() + 1);
    for e in extents.drain(..) {
        let (a, b) = (e.offset.max(lo), e.end().min(hi));
        if a >= b {
            kept.push(e);
            continue;
        }
        out.push(FreedBlocks {
            fsb: e.start + (a - e.offset),
            offset: a,
            count: b - a,
        });
        if e.offset < a {
            kept.push(Extent {
                count: a - e.offset,
                ..e
            });
        }
        if b < e.end() {
            kept.push(Extent {
                offset: b,
                start: e.start + (b - e.offset),
                count: e.end() - b,
                ..e
            });
        }
    }
    *extents = kept;
    out
}

/// The extent records (`xfs_bmbt_rec`), the rest of the data fork zeroed.
fn write_extents(raw: &mut RawInode, extents: &[Extent], capacity: usize) {
    for i in 0..capacity {
        let rec = extents.get(i).map_or([0u8; 16], encode);
        let at = field::LITERAL + i * 16;
        if let Some(s) = raw.buf.get_mut(at..at + 16) {
            s.copy_from_slice(&rec);
        }
    }
}

fn encode(e: &Extent) -> [u8; 16] {
    let l0 = (u64::from(e.unwritten) << 63) | (e.offset << 9) | (e.start >> 43);
    let l1 = (e.start << 21) | (e.count & ((1 << 21) - 1));
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&l0.to_be_bytes());
    out[8..].copy_from_slice(&l1.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(offset: u64, start: u64, count: u64) -> Extent {
        Extent {
            offset,
            start,
            count,
            unwritten: false,
        }
    }

    #[test]
    fn cut_splits_and_reports_the_runs() {
        let mut v = vec![ext(0, 100, 4), ext(4, 200, 8)];
        let f = cut(&mut v, 6, 8);
        assert_eq!(
            f,
            vec![FreedBlocks {
                fsb: 202,
                offset: 6,
                count: 2
            }]
        );
        assert_eq!(v, vec![ext(0, 100, 4), ext(4, 200, 2), ext(8, 204, 4)]);
        let f = cut(&mut v, 0, 4);
        assert_eq!(f.len(), 1);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn records_round_trip() {
        let e = Extent {
            offset: 0x8_0000_0000 >> 12,
            start: (3 << 20) | 77,
            count: 1,
            unwritten: false,
        };
        assert_eq!(Extent::decode(&encode(&e)), e);
    }
}
