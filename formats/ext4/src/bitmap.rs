//! Block and inode bitmaps, their checksums, and the walk over inodes in use.
//!
//! Groups flagged `BLOCK_UNINIT` have no block bitmap on disk: it is computed from
//! the metadata that lies in the group. `INODE_UNINIT` groups have no inode in use.

use vmscrub_blockdev::ReadAt;

use crate::block_group::{bg_flags, group_layout};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Ext4;
use crate::inode::Inode;

/// One group's bitmap: bit `i` is block (or inode) `i` of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    pub bits: Vec<u8>,
    /// Meaningful bits (blocks or inodes per group).
    pub len: u32,
    /// Where it is stored; `None` when computed for an uninitialized group.
    pub block: Option<u64>,
}

impl Bitmap {
    pub fn get(&self, i: u32) -> bool {
        i < self.len
            && self
                .bits
                .get((i / 8) as usize)
                .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    fn set(&mut self, i: u32) {
        if let Some(b) = self.bits.get_mut((i / 8) as usize) {
            *b |= 1 << (i % 8);
        }
    }

    pub fn count_set(&self) -> u32 {
        (0..self.len).filter(|&i| self.get(i)).count() as u32
    }

    /// Indexes of set bits.
    pub fn iter_set(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }

    /// The checksum the first `len` bits should carry (metadata_csum).
    pub fn compute_checksum(fs_seed: u32, bits: &[u8], len: u32) -> u32 {
        checksum::crc32c(fs_seed, bits.get(..(len / 8) as usize).unwrap_or(bits))
    }
}

impl<D: ReadAt> Ext4<D> {
    /// The block bitmap of group `g`, verified against its descriptor checksum.
    pub fn block_bitmap(&self, g: u32) -> Result<Bitmap> {
        let sb = self.superblock();
        let desc = self.group(g)?;
        let len = sb.blocks_per_group;
        if desc.has_flag(sb, bg_flags::BLOCK_UNINIT) {
            let mut bm = Bitmap {
                bits: vec![0; self.block_size() as usize],
                len,
                block: None,
            };
            let first = sb.group_first_block(u64::from(g));
            let end = first + sb.group_block_count(u64::from(g));
            for d in self.groups() {
                for r in group_layout(sb, d).all_blocks() {
                    for b in r.start.max(first)..r.end.min(end) {
                        bm.set((b - first) as u32);
                    }
                }
            }
            // Bits past a short last group are set, as the kernel does.
            for i in (end - first) as u32..len {
                bm.set(i);
            }
            return Ok(bm);
        }
        let bits = self.read_block_vec(desc.block_bitmap, "block bitmap")?;
        if sb.has_metadata_csum() && self.verify_checksums() {
            let mut computed = Bitmap::compute_checksum(self.checksum_seed(), &bits, len);
            let stored = desc.block_bitmap_csum;
            if sb.desc_size() < 0x3A {
                computed &= 0xFFFF;
            }
            if computed != stored {
                return Err(Error::ChecksumMismatch {
                    structure: "block bitmap",
                    loc: Loc::block(desc.block_bitmap),
                    stored,
                    computed,
                });
            }
        }
        Ok(Bitmap {
            bits,
            len,
            block: Some(desc.block_bitmap),
        })
    }

    /// The inode bitmap of group `g`, verified against its descriptor checksum.
    pub fn inode_bitmap(&self, g: u32) -> Result<Bitmap> {
        let sb = self.superblock();
        let desc = self.group(g)?;
        let len = sb.inodes_per_group;
        if desc.has_flag(sb, bg_flags::INODE_UNINIT) {
            return Ok(Bitmap {
                bits: vec![0; self.block_size() as usize],
                len,
                block: None,
            });
        }
        let bits = self.read_block_vec(desc.inode_bitmap, "inode bitmap")?;
        if sb.has_metadata_csum() && self.verify_checksums() {
            let mut computed = Bitmap::compute_checksum(self.checksum_seed(), &bits, len);
            let stored = desc.inode_bitmap_csum;
            if sb.desc_size() < 0x3C {
                computed &= 0xFFFF;
            }
            if computed != stored {
                return Err(Error::ChecksumMismatch {
                    structure: "inode bitmap",
                    loc: Loc::block(desc.inode_bitmap),
                    stored,
                    computed,
                });
            }
        }
        Ok(Bitmap {
            bits,
            len,
            block: Some(desc.inode_bitmap),
        })
    }

    /// Is inode `ino` marked in use in its group's bitmap?
    pub fn inode_in_use(&self, ino: u32) -> Result<bool> {
        self.inode_location(ino)?;
        let ipg = self.superblock().inodes_per_group;
        Ok(self.inode_bitmap((ino - 1) / ipg)?.get((ino - 1) % ipg))
    }

    /// Is block `block` marked in use?
    pub fn block_in_use(&self, block: u64) -> Result<bool> {
        let sb = self.superblock();
        self.check_blocks("block", Loc::NONE, block, 1)?;
        let rel = block - u64::from(sb.first_data_block);
        let g = rel / u64::from(sb.blocks_per_group);
        Ok(self
            .block_bitmap(g as u32)?
            .get((rel % u64::from(sb.blocks_per_group)) as u32))
    }

    /// Every inode marked in use, in inode order, read from the bitmaps one group
    /// at a time (reserved inodes below `s_first_ino` included).
    pub fn inodes_in_use(&self) -> InodesInUse<'_, D> {
        InodesInUse {
            fs: self,
            group: 0,
            bitmap: None,
            next_bit: 0,
            failed: false,
        }
    }
}

pub struct InodesInUse<'a, D> {
    fs: &'a Ext4<D>,
    group: u32,
    bitmap: Option<Bitmap>,
    next_bit: u32,
    failed: bool,
}

impl<D: ReadAt> Iterator for InodesInUse<'_, D> {
    type Item = Result<Inode>;

    fn next(&mut self) -> Option<Result<Inode>> {
        let ipg = self.fs.superblock().inodes_per_group;
        loop {
            if self.failed || self.group as usize >= self.fs.groups().len() {
                return None;
            }
            let bm = match &self.bitmap {
                Some(b) => b,
                None => match self.fs.inode_bitmap(self.group) {
                    Ok(b) => self.bitmap.insert(b),
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                },
            };
            while self.next_bit < ipg && !bm.get(self.next_bit) {
                self.next_bit += 1;
            }
            if self.next_bit >= ipg {
                self.group += 1;
                self.next_bit = 0;
                self.bitmap = None;
                continue;
            }
            let ino = self.group * ipg + self.next_bit + 1;
            self.next_bit += 1;
            return Some(self.fs.inode(ino));
        }
    }
}
