//! Block maps: the extent records (`xfs_bmbt_rec`) of a fork, held either as a
//! list inside the inode or as a bmap B+tree whose root is inside the inode and
//! whose other nodes are long-format B+tree blocks (`BMA3`/`BMAP`).
//!
//! The walk is bounded: a depth limit, every block read at most once (a cycle in
//! a hostile tree ends with an error), levels that must decrease by one per step
//! and record counts no larger than the block can hold. The result is checked to
//! be sorted and non-overlapping, which the readers rely on.

use std::collections::HashSet;

use vmscrub_blockdev::ReadAt;

use crate::be::{u16_at, u32_at, u64_at};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::{ForkFormat, Inode};

/// Deepest bmap B+tree this reader follows (the kernel's limit is 9 with nrext64).
const MAX_LEVELS: u16 = 10;
const BMAP_MAGIC_V5: u32 = 0x424d_4133; // "BMA3"
const BMAP_MAGIC_V4: u32 = 0x424d_4150; // "BMAP"
const LBLOCK_V5_HDR: usize = 72;
const LBLOCK_V4_HDR: usize = 24;
const LBLOCK_CRC_OFFSET: usize = 64;

/// One mapping of `count` file blocks from file block `offset` to filesystem
/// block `start` (AG-encoded). Unwritten (preallocated) extents read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub start: u64,
    pub count: u64,
    pub unwritten: bool,
}

impl Extent {
    /// Decodes a 16-byte record: flag (1 bit), file offset (54), start block
    /// (52), length (21).
    pub fn decode(rec: &[u8]) -> Self {
        let l0 = u64_at(rec, 0);
        let l1 = u64_at(rec, 8);
        Extent {
            unwritten: l0 >> 63 != 0,
            offset: (l0 & ((1 << 63) - 1)) >> 9,
            start: ((l0 & 0x1ff) << 43) | (l1 >> 21),
            count: l1 & ((1 << 21) - 1),
        }
    }

    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.count)
    }
}

/// Which of an inode's two forks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    Data,
    Attr,
}

/// A fork's extents, sorted by file offset, with the B+tree blocks that hold
/// them (empty for an in-inode list), as device byte offsets.
#[derive(Debug, Clone, Default)]
pub struct BlockMap {
    pub extents: Vec<Extent>,
    pub tree_blocks: Vec<u64>,
}

impl BlockMap {
    /// The extent holding file block `fb`, or `None` in a hole.
    pub fn lookup(&self, fb: u64) -> Option<&Extent> {
        let i = self.extents.partition_point(|e| e.end() <= fb);
        self.extents.get(i).filter(|e| e.offset <= fb)
    }
}

impl<D: ReadAt> Xfs<D> {
    /// The extents of `fork` of `inode` (an empty map for a local fork).
    pub fn block_map(&self, inode: &Inode, fork: Fork) -> Result<BlockMap> {
        let loc = Loc::inode(inode.ino);
        let (bytes, format, declared) = match fork {
            Fork::Data => (inode.data_fork(), inode.format, inode.nextents),
            Fork::Attr => match (inode.attr_fork(), inode.attr_format) {
                (Some(b), Some(f)) => (b, f, inode.anextents),
                _ => return Ok(BlockMap::default()),
            },
        };
        let mut map = BlockMap::default();
        match format {
            ForkFormat::Dev | ForkFormat::Local => return Ok(map),
            ForkFormat::Extents => {
                let n = usize::try_from(declared).unwrap_or(usize::MAX);
                if n > bytes.len() / 16 {
                    return Err(Error::corrupt(
                        "extent list",
                        loc,
                        format!(
                            "{declared} extents do not fit in a fork of {} bytes",
                            bytes.len()
                        ),
                    ));
                }
                map.extents = bytes.chunks_exact(16).take(n).map(Extent::decode).collect();
            }
            ForkFormat::Btree => self.walk_btree_root(bytes, loc, &mut map)?,
        }
        self.check_map(&map, loc)?;
        Ok(map)
    }

    fn walk_btree_root(&self, root: &[u8], loc: Loc, map: &mut BlockMap) -> Result<()> {
        let level = u16_at(root, 0);
        let numrecs = usize::from(u16_at(root, 2));
        let maxrecs = root.len().saturating_sub(4) / 16;
        if level == 0 || level > MAX_LEVELS || numrecs == 0 || numrecs > maxrecs {
            return Err(Error::corrupt(
                "bmap B+tree root",
                loc,
                format!("level {level} with {numrecs} records (room for {maxrecs})"),
            ));
        }
        let ptrs = 4 + maxrecs * 8;
        let mut seen = HashSet::new();
        for i in 0..numrecs {
            let ptr = u64_at(root, ptrs + i * 8);
            self.walk_btree_block(ptr, level - 1, loc, &mut seen, map)?;
        }
        Ok(())
    }

    fn walk_btree_block(
        &self,
        fsb: u64,
        level: u16,
        loc: Loc,
        seen: &mut HashSet<u64>,
        map: &mut BlockMap,
    ) -> Result<()> {
        let buf = self.read_fsb(fsb, "bmap B+tree block", loc)?;
        let off = self.fsb_byte(fsb, loc)?;
        let loc = loc.with_offset(off);
        if !seen.insert(fsb) {
            return Err(Error::corrupt(
                "bmap B+tree",
                loc,
                "a block is reached twice (a cycle)",
            ));
        }
        let (magic, hdr) = if self.sb.has_crc() {
            (BMAP_MAGIC_V5, LBLOCK_V5_HDR)
        } else {
            (BMAP_MAGIC_V4, LBLOCK_V4_HDR)
        };
        if u32_at(&buf, 0) != magic {
            return Err(Error::corrupt("bmap B+tree block", loc, "bad magic"));
        }
        if self.sb.has_crc() {
            checksum::verify(
                self.verify,
                "bmap B+tree block",
                &buf,
                LBLOCK_CRC_OFFSET,
                loc,
            )?;
            if self.verify && loc.inode.is_some_and(|i| u64_at(&buf, 56) != i) {
                return Err(Error::corrupt(
                    "bmap B+tree block",
                    loc,
                    "owned by another inode",
                ));
            }
        }
        let got = u16_at(&buf, 4);
        let numrecs = usize::from(u16_at(&buf, 6));
        let maxrecs = (buf.len() - hdr) / 16;
        if got != level || numrecs > maxrecs {
            return Err(Error::corrupt(
                "bmap B+tree block",
                loc,
                format!("level {got} (expected {level}), {numrecs} records (room for {maxrecs})"),
            ));
        }
        map.tree_blocks.push(off);
        if level == 0 {
            let recs = buf.get(hdr..hdr + numrecs * 16).unwrap_or_default();
            map.extents
                .extend(recs.chunks_exact(16).map(Extent::decode));
            return Ok(());
        }
        let ptrs = hdr + maxrecs * 8;
        for i in 0..numrecs {
            let ptr = u64_at(&buf, ptrs + i * 8);
            self.walk_btree_block(ptr, level - 1, loc, seen, map)?;
        }
        Ok(())
    }

    /// Extents must be sorted, disjoint, non-empty and inside the filesystem.
    fn check_map(&self, map: &BlockMap, loc: Loc) -> Result<()> {
        let mut prev_end = 0u64;
        for e in &map.extents {
            let last = e.start.checked_add(e.count.saturating_sub(1));
            let inside = last.is_some_and(|l| {
                self.sb.fsb_to_byte(e.start).is_some() && self.sb.fsb_to_byte(l).is_some()
            });
            if e.count == 0 || e.offset < prev_end || !inside {
                return Err(Error::corrupt(
                    "extent map",
                    loc,
                    format!(
                        "extent of {} blocks at file block {} -> block {} (after file block {prev_end})",
                        e.count, e.offset, e.start
                    ),
                ));
            }
            prev_end = e.end();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_records() {
        let (flag, off, start, count) = (1u64, 0x12345u64, 0xabcdefu64, 77u64);
        let l0 = (flag << 63) | (off << 9) | (start >> 43);
        let l1 = ((start & ((1 << 43) - 1)) << 21) | count;
        let mut rec = l0.to_be_bytes().to_vec();
        rec.extend_from_slice(&l1.to_be_bytes());
        let e = Extent::decode(&rec);
        assert_eq!(
            e,
            Extent {
                offset: off,
                start,
                count,
                unwritten: true
            }
        );
        let map = BlockMap {
            extents: vec![e],
            tree_blocks: vec![],
        };
        assert!(map.lookup(off).is_some() && map.lookup(off + 77).is_none());
    }
}
