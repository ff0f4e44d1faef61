//! What an inode's forks give back: every extent of the data and attribute
//! forks and every block of their bmap B+trees, as [`Released`] ranges with the
//! reverse mapping they had, by AG; and the shrinking of a data fork's extent
//! list when a file is truncated or rewritten shorter.

use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use super::inode_raw::{RawInode, field};
use super::space::Released;
use crate::bmap::{Extent, Fork};
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::{ForkFormat, Inode};

/// Bytes in one in-inode extent record.
const EXTENT_REC: usize = 16;
/// Extents may hold at most 2^21 - 1 blocks.
const MAX_EXTENT_LEN: u64 = (1 << 21) - 1;

/// One AG's share of a release.
pub(crate) type AgReleased = (u32, Released);

/// Every extent and bmap block of `fork` of `inode`.
pub(crate) fn fork_releases<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    inode: &Inode,
    fork: Fork,
) -> Result<Vec<AgReleased>> {
    let map = fs.block_map(inode, fork)?;
    let attr_fork = fork == Fork::Attr;
    let mut out = Vec::with_capacity(map.extents.len() + map.tree_blocks.len());
    for e in &map.extents {
        out.push(extent_release(
            fs, inode.ino, e, e.offset, e.count, attr_fork,
        )?);
    }
    for &byte in &map.tree_blocks {
        let (agno, agbno) = byte_to_ag(fs, byte, inode.ino)?;
        out.push((
            agno,
            Released {
                agbno,
                len: 1,
                owner: inode.ino,
                offset: 0,
                attr_fork,
                bmbt: true,
                unwritten: false,
            },
        ));
    }
    Ok(out)
}

/// Blocks a directory removal took out of the directory's data fork.
pub(crate) fn dir_blocks_release<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    dir: u64,
    b: &super::dir_free::FreedBlocks,
) -> Result<AgReleased> {
    let e = Extent {
        offset: b.offset,
        start: b.fsb,
        count: b.count,
        unwritten: false,
    };
    extent_release(fs, dir, &e, b.offset, b.count, false)
}

/// The part of extent `e` from file block `from` (`count` blocks) as a release.
fn extent_release<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    ino: u64,
    e: &Extent,
    from: u64,
    count: u64,
    attr_fork: bool,
) -> Result<AgReleased> {
    let sb = &fs.sb;
    let skip = from - e.offset;
    let fsb = e.start + skip;
    let (agno, agbno) = sb.fsb_split(fsb);
    let bad = || {
        Error::corrupt(
            "extent",
            Loc::inode(ino),
            format!("blocks {fsb}+{count} lie outside their AG"),
        )
    };
    if agno >= u64::from(sb.ag_count)
        || count > MAX_EXTENT_LEN
        || agbno + count > u64::from(sb.ag_blocks)
    {
        return Err(bad());
    }
    Ok((
        agno as u32,
        Released {
            agbno: agbno as u32,
            len: count as u32,
            owner: ino,
            offset: from,
            attr_fork,
            bmbt: false,
            unwritten: e.unwritten,
        },
    ))
}

/// (AG, AG block) of the block at device byte `byte`.
pub(crate) fn byte_to_ag<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    byte: u64,
    ino: u64,
) -> Result<(u32, u32)> {
    let (agno, agbno) = fs.sb.byte_split(byte);
    if agno >= u64::from(fs.sb.ag_count) {
        return Err(Error::corrupt(
            "bmap B+tree",
            Loc::inode(ino),
            format!("block at byte {byte} is outside the filesystem"),
        ));
    }
    Ok((agno as u32, agbno as u32))
}

/// Keeps the first `keep` file blocks of `inode`'s data fork and gives back the
/// rest (with the bmap B+tree if the kept extents fit in the inode), updating
/// the extent list, format, extent count and block count in `raw`. A B+tree
/// fork whose kept part still needs the tree is refused: rewriting a B+tree
/// is not done here.
pub(crate) fn shrink_data_fork<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    inode: &Inode,
    raw: &mut RawInode,
    keep: u64,
) -> Result<Vec<AgReleased>> {
    let map = fs.block_map(inode, Fork::Data)?;
    let mut kept: Vec<Extent> = Vec::new();
    let mut released = Vec::new();
    for e in &map.extents {
        if e.end() <= keep {
            kept.push(*e);
        } else if e.offset < keep {
            let k = keep - e.offset;
            kept.push(Extent { count: k, ..*e });
            released.push(extent_release(fs, inode.ino, e, keep, e.count - k, false)?);
        } else {
            released.push(extent_release(fs, inode.ino, e, e.offset, e.count, false)?);
        }
    }
    if released.is_empty() {
        return Ok(released);
    }
    let fork_len = inode.data_fork().len();
    if inode.format == ForkFormat::Btree {
        if kept.len() * EXTENT_REC > fork_len {
            return Err(Error::refused(
                "bmap B+tree",
                format!(
                    "inode {}: the {} extents kept need the B+tree, which this editor does not \
                     rewrite",
                    inode.ino,
                    kept.len()
                ),
            ));
        }
        for &byte in &map.tree_blocks {
            let (agno, agbno) = byte_to_ag(fs, byte, inode.ino)?;
            released.push((
                agno,
                Released {
                    agbno,
                    len: 1,
                    owner: inode.ino,
                    offset: 0,
                    attr_fork: false,
                    bmbt: true,
                    unwritten: false,
                },
            ));
        }
        raw.set_u8(field::FORMAT, 2);
    }
    write_extent_list(fs, inode, raw, &kept);
    let freed: u64 = released.iter().map(|(_, r)| u64::from(r.len)).sum();
    raw.set_u64(
        field::NBLOCKS,
        raw.u64(field::NBLOCKS).saturating_sub(freed),
    );
    Ok(released)
}

/// Writes `extents` as the in-inode list of the data fork, the rest of the
/// fork zeroed, and the data-fork extent count.
fn write_extent_list<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    inode: &Inode,
    raw: &mut RawInode,
    extents: &[Extent],
) {
    let start = inode.data_fork_offset();
    let end = start + inode.data_fork().len();
    raw.buf[start..end].fill(0);
    for (i, e) in extents.iter().enumerate() {
        let at = start + i * EXTENT_REC;
        raw.buf[at..at + EXTENT_REC].copy_from_slice(&encode(e));
    }
    let n = extents.len() as u64;
    if fs.sb.has_nrext64() && inode.flags2 & crate::inode::FLAGS2_NREXT64 != 0 {
        raw.set_u64(field::BIG_NEXTENTS, n);
    } else {
        raw.set_u32(field::NEXTENTS, n as u32);
    }
}

/// The 16-byte on-disk form of an extent (the inverse of [`Extent::decode`]).
pub(crate) fn encode(e: &Extent) -> [u8; 16] {
    let l0 = (u64::from(e.unwritten) << 63) | (e.offset << 9) | (e.start >> 43);
    let l1 = (e.start << 21) | (e.count & MAX_EXTENT_LEN);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&l0.to_be_bytes());
    out[8..].copy_from_slice(&l1.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_encoding_round_trips() {
        for e in [
            Extent {
                offset: 0,
                start: 12,
                count: 1,
                unwritten: false,
            },
            Extent {
                offset: (1 << 54) - 1,
                start: (1 << 52) - 1,
                count: MAX_EXTENT_LEN,
                unwritten: true,
            },
        ] {
            assert_eq!(Extent::decode(&encode(&e)), e);
        }
    }
}
