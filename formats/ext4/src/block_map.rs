//! ext2/ext3 block maps: twelve direct pointers, then single, double and triple
//! indirect blocks of 32-bit pointers; a zero pointer is a hole.

use std::collections::HashSet;

use vmscrub_blockdev::ReadAt;

use crate::error::{Error, Loc, Result};
use crate::fs::Ext4;
use crate::inode::Inode;
use crate::le::u32_at;
use crate::map::{Extent, FileMap, MetaBlock, MetaKind};

pub const DIRECT_BLOCKS: usize = 12;
pub const IND_BLOCK: usize = 12;
pub const DIND_BLOCK: usize = 13;
pub const TIND_BLOCK: usize = 14;

struct Walk<'a> {
    ino: u32,
    per_block: u64,
    visited: HashSet<u64>,
    map: &'a mut FileMap,
    mapped: u64,
}

impl<D: ReadAt> Ext4<D> {
    /// The data runs and indirect blocks of a block-mapped inode.
    pub fn block_map(&self, inode: &Inode) -> Result<FileMap> {
        let mut map = FileMap::default();
        let per_block = u64::from(self.block_size() / 4);
        let mut w = Walk {
            ino: inode.ino,
            per_block,
            visited: HashSet::new(),
            map: &mut map,
            mapped: 0,
        };
        for i in 0..DIRECT_BLOCKS {
            let b = u64::from(u32_at(&inode.i_block, i * 4));
            if b != 0 {
                self.map_data(&mut w, i as u64, b)?;
            }
        }
        let mut base = DIRECT_BLOCKS as u64;
        for (slot, level) in [(IND_BLOCK, 1u8), (DIND_BLOCK, 2), (TIND_BLOCK, 3)] {
            let b = u64::from(u32_at(&inode.i_block, slot * 4));
            if b != 0 {
                self.walk_indirect(&mut w, b, level, base)?;
            }
            base += per_block.pow(u32::from(level));
        }
        Ok(map)
    }

    fn map_data(&self, w: &mut Walk<'_>, logical: u64, block: u64) -> Result<()> {
        let loc = Loc::inode(w.ino);
        if logical > u64::from(u32::MAX) {
            return Err(Error::corrupt(
                "block map",
                loc,
                "maps a logical block past 2^32",
            ));
        }
        self.check_blocks("block map", loc, block, 1)?;
        w.mapped += 1;
        if w.mapped > self.superblock().blocks_count {
            return Err(Error::corrupt(
                "block map",
                loc,
                "maps more blocks than the filesystem has",
            ));
        }
        if let Some(last) = w.map.extents.last_mut()
            && last.logical_end() == logical
            && last.start + u64::from(last.len) == block
            && last.len < u32::MAX
        {
            last.len += 1;
            return Ok(());
        }
        w.map.extents.push(Extent {
            logical: logical as u32,
            start: block,
            len: 1,
            uninit: false,
        });
        Ok(())
    }

    fn walk_indirect(&self, w: &mut Walk<'_>, block: u64, level: u8, base: u64) -> Result<()> {
        let loc = Loc::at(w.ino, block);
        self.check_blocks("indirect block", Loc::inode(w.ino), block, 1)?;
        if !w.visited.insert(block) {
            return Err(Error::corrupt(
                "indirect block",
                loc,
                "referenced twice (a loop)",
            ));
        }
        w.map.meta.push(MetaBlock {
            block,
            kind: MetaKind::Indirect { level },
        });
        let buf = self.read_block_vec(block, "indirect block")?;
        let span = w.per_block.pow(u32::from(level) - 1);
        for i in 0..w.per_block {
            let p = u64::from(u32_at(&buf, (i * 4) as usize));
            if p == 0 {
                continue;
            }
            let logical = base + i * span;
            if logical > u64::from(u32::MAX) {
                break;
            }
            if level == 1 {
                self.map_data(w, logical, p)?;
            } else {
                self.walk_indirect(w, p, level - 1, logical)?;
            }
        }
        Ok(())
    }
}
