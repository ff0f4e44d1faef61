//! Free space by every witness: which blocks may be zeroed without losing data.
//!
//! The block bitmaps alone are not enough: a damaged image can mark live blocks
//! free (e2fsprogs' `f_bitmaps`), or flag a group `BLOCK_UNINIT` (so its bitmap
//! is computed from the layout and says "free") while files live in it
//! (`f_uninit_set_inode_not_set`). Zeroing such a block destroys a directory or
//! a file. So a block counts as free only when three witnesses agree:
//!
//! 1. the block bitmaps, read the way the kernel reads them (an uninit group's
//!    bitmap computed from the layout — [`Ext4::block_bitmap`]);
//! 2. the metadata layout of every group (superblocks and backups, descriptor
//!    and reserved descriptor blocks, bitmaps, inode tables wherever flex_bg put
//!    them) and the MMP block;
//! 3. every inode the inode tables hold in use — marked in the inode bitmap, or
//!    looking live in the table (mode set, links, no deletion time) whatever the
//!    bitmap says, reachable from the root or not — with its data, extent-tree or
//!    indirect blocks and its xattr block.
//!
//! A block the bitmap calls free that another witness owns is a disagreement:
//! [`Ext4::free_by_every_witness`] refuses with the groups and block ranges,
//! rather than guess which witness is wrong. A block the bitmap calls used that
//! nothing else owns (leaked, or a bad block) is simply not free.

use std::ops::Range;

use vmscrub_blockdev::ReadAt;

use crate::error::Error;
use crate::fs::Ext4;
use crate::inode::Inode;

/// One group's blocks that its bitmap calls free while another witness owns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    pub group: u32,
    /// Whether the group's bitmap was computed (`BLOCK_UNINIT`) rather than read.
    pub uninit: bool,
    pub ranges: Vec<Range<u64>>,
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "group {}", self.group)?;
        if self.uninit {
            f.write_str(" (flagged BLOCK_UNINIT)")?;
        }
        f.write_str(" blocks ")?;
        for (i, r) in self.ranges.iter().take(8).enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.end - r.start == 1 {
                write!(f, "{}", r.start)?;
            } else {
                write!(f, "{}-{}", r.start, r.end - 1)?;
            }
        }
        if self.ranges.len() > 8 {
            write!(f, " and {} more ranges", self.ranges.len() - 8)?;
        }
        Ok(())
    }
}

/// Why the free space of a filesystem cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The bitmaps call blocks free that the layout or an inode owns.
    #[error(
        "the block bitmaps mark blocks free that are in use (by an inode or filesystem metadata): {}; \
         the filesystem is damaged (run e2fsck on a copy first)",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Disagree(Vec<Disagreement>),
    /// An inode in use whose blocks cannot be listed: what it owns is unknown.
    #[error(
        "the blocks of inode {ino}, which is in use, cannot be listed (run e2fsck on a copy first): {source}"
    )]
    Unmapped {
        ino: u32,
        #[source]
        source: Error,
    },
    /// A structure the witnesses need could not be read.
    #[error(transparent)]
    Read(#[from] Error),
}

/// Blocks every witness calls free, as sorted, disjoint ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreeSpace {
    pub runs: Vec<Range<u64>>,
    /// Blocks the bitmaps mark used that no inode or layout owns (left alone).
    pub unowned_used: u64,
}

/// One bit per block of the filesystem.
struct BlockSet {
    words: Vec<u64>,
    len: u64,
}

impl BlockSet {
    fn new(len: u64) -> Self {
        BlockSet {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    /// Marks `r` (clipped to the filesystem).
    fn insert(&mut self, r: Range<u64>) {
        for b in r.start..r.end.min(self.len) {
            if let Some(w) = self.words.get_mut((b / 64) as usize) {
                *w |= 1 << (b % 64);
            }
        }
    }

    fn contains(&self, b: u64) -> bool {
        self.words
            .get((b / 64) as usize)
            .is_some_and(|w| w & (1 << (b % 64)) != 0)
    }
}

impl<D: ReadAt> Ext4<D> {
    /// The blocks that every witness calls free, or why there is none to tell.
    pub fn free_by_every_witness(&self) -> Result<FreeSpace, WitnessError> {
        let sb = self.superblock();
        let total = sb.blocks_count;
        let mut owned = BlockSet::new(total);
        // Blocks before the first group (the boot block with 1 KiB blocks).
        owned.insert(0..u64::from(sb.first_data_block));
        for d in self.groups() {
            for r in crate::block_group::group_layout(sb, d).all_blocks() {
                owned.insert(r);
            }
        }
        if sb.features.has_incompat(crate::features::incompat::MMP) {
            let mmp = sb
                .raw()
                .get(crate::superblock::off::MMP_BLOCK..crate::superblock::off::MMP_BLOCK + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes);
            owned.insert(mmp..mmp.saturating_add(1));
        }
        self.mark_inode_blocks(&mut owned)?;
        self.compare_with_bitmaps(&owned)
    }

    /// Marks the blocks of every inode the tables hold in use.
    fn mark_inode_blocks(&self, owned: &mut BlockSet) -> Result<(), WitnessError> {
        let sb = self.superblock();
        let isz = u64::from(sb.inode_size);
        let ipg = sb.inodes_per_group;
        let bs = u64::from(self.block_size());
        let table_bytes = usize::try_from(u64::from(ipg) * isz)
            .map_err(|_| Error::corrupt("superblock", crate::Loc::NONE, "inode table too large"))?;
        let mut table = vec![0u8; table_bytes];
        for (g, d) in self.groups().iter().enumerate() {
            let g = g as u32;
            let bitmap = self.inode_bitmap(g)?;
            self.read_bytes(d.inode_table.saturating_mul(bs), &mut table, "inode table")?;
            for (i, raw) in table.chunks_exact(isz as usize).enumerate() {
                let marked = bitmap.get(i as u32);
                if !marked && !looks_live(raw) {
                    continue;
                }
                let Some(ino) = (g * ipg).checked_add(i as u32 + 1) else {
                    break;
                };
                if ino > sb.inodes_count {
                    break;
                }
                let byte = u64::from(i as u32) * isz;
                let loc = (d.inode_table + byte / bs, (byte % bs) as u32);
                match self.inode_claim(ino, raw, loc) {
                    Ok(ranges) => ranges.into_iter().for_each(|r| owned.insert(r)),
                    // An inode the bitmap calls in use must be mapped; one only
                    // the table suggests (a stale or garbage slot) is a claim
                    // that counts only when it can be read.
                    Err(source) if marked => return Err(WitnessError::Unmapped { ino, source }),
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }

    /// The block ranges inode `ino` (stored as `raw`) owns.
    fn inode_claim(&self, ino: u32, raw: &[u8], loc: (u64, u32)) -> crate::Result<Vec<Range<u64>>> {
        let inode = Inode::parse(ino, raw.to_vec(), loc)?;
        let map = self.file_map(&inode)?;
        let mut v: Vec<Range<u64>> = map.extents.iter().map(|e| e.physical()).collect();
        v.extend(map.meta.iter().map(|m| m.block..m.block + 1));
        if inode.file_acl != 0 {
            self.check_blocks("xattr block", crate::Loc::inode(ino), inode.file_acl, 1)?;
            v.push(inode.file_acl..inode.file_acl + 1);
        }
        Ok(v)
    }

    /// Walks every group's bitmap against the owned set.
    fn compare_with_bitmaps(&self, owned: &BlockSet) -> Result<FreeSpace, WitnessError> {
        let sb = self.superblock();
        let mut free = FreeSpace::default();
        let mut bad = Vec::new();
        for g in 0..sb.group_count() {
            let g32 = u32::try_from(g)
                .map_err(|_| Error::corrupt("superblock", crate::Loc::NONE, "too many groups"))?;
            let bitmap = self.block_bitmap(g32)?;
            let first = sb.group_first_block(g);
            let len = sb.group_block_count(g);
            let mut ranges: Vec<Range<u64>> = Vec::new();
            for i in 0..len {
                let b = first + i;
                let used = bitmap.get(i as u32);
                match (used, owned.contains(b)) {
                    (false, true) => push_block(&mut ranges, b),
                    (false, false) => push_block(&mut free.runs, b),
                    (true, false) => free.unowned_used += 1,
                    (true, true) => {}
                }
            }
            if !ranges.is_empty() {
                bad.push(Disagreement {
                    group: g32,
                    uninit: bitmap.block.is_none(),
                    ranges,
                });
            }
        }
        if bad.is_empty() {
            Ok(free)
        } else {
            Err(WitnessError::Disagree(bad))
        }
    }
}

/// Extends the last range by `b` or starts a new one.
fn push_block(v: &mut Vec<Range<u64>>, b: u64) {
    match v.last_mut() {
        Some(r) if r.end == b => r.end += 1,
        _ => v.push(b..b + 1),
    }
}

/// A slot that looks like a live inode whatever the bitmap says: a mode, links,
/// and no deletion time.
fn looks_live(raw: &[u8]) -> bool {
    let u16_at = |o: usize| {
        raw.get(o..o + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    };
    let dtime = raw
        .get(0x14..0x18)
        .map_or(1, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    u16_at(0) != 0 && u16_at(0x1A) != 0 && dtime == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_coalesce_and_print_inclusive() {
        let mut v = Vec::new();
        for b in [5, 6, 7, 9] {
            push_block(&mut v, b);
        }
        assert_eq!(v, vec![5..8, 9..10]);
        let d = Disagreement {
            group: 3,
            uninit: true,
            ranges: v,
        };
        assert_eq!(d.to_string(), "group 3 (flagged BLOCK_UNINIT) blocks 5-7,9");
    }

    #[test]
    fn live_slot_needs_mode_links_and_no_dtime() {
        let mut raw = vec![0u8; 256];
        assert!(!looks_live(&raw));
        raw[0] = 0xA4;
        raw[1] = 0x81;
        raw[0x1A] = 1;
        assert!(looks_live(&raw));
        raw[0x14] = 1;
        assert!(!looks_live(&raw));
    }
}
