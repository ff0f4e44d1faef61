//! Block group descriptors: where they live (classic table or `meta_bg`), their
//! 32- and 64-byte layouts, their checksums, and which blocks of a group are
//! filesystem metadata.

use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::features::incompat;
use crate::le::{u16_at, u32_at};
use crate::superblock::Superblock;

/// Field offsets in a group descriptor (kernel `struct ext4_group_desc`).
pub mod off {
    pub const BLOCK_BITMAP_LO: usize = 0x00;
    pub const INODE_BITMAP_LO: usize = 0x04;
    pub const INODE_TABLE_LO: usize = 0x08;
    pub const FREE_BLOCKS_COUNT_LO: usize = 0x0C;
    pub const FREE_INODES_COUNT_LO: usize = 0x0E;
    pub const USED_DIRS_COUNT_LO: usize = 0x10;
    pub const FLAGS: usize = 0x12;
    pub const EXCLUDE_BITMAP_LO: usize = 0x14;
    pub const BLOCK_BITMAP_CSUM_LO: usize = 0x18;
    pub const INODE_BITMAP_CSUM_LO: usize = 0x1A;
    pub const ITABLE_UNUSED_LO: usize = 0x1C;
    pub const CHECKSUM: usize = 0x1E;
    pub const BLOCK_BITMAP_HI: usize = 0x20;
    pub const INODE_BITMAP_HI: usize = 0x24;
    pub const INODE_TABLE_HI: usize = 0x28;
    pub const FREE_BLOCKS_COUNT_HI: usize = 0x2C;
    pub const FREE_INODES_COUNT_HI: usize = 0x2E;
    pub const USED_DIRS_COUNT_HI: usize = 0x30;
    pub const ITABLE_UNUSED_HI: usize = 0x32;
    pub const EXCLUDE_BITMAP_HI: usize = 0x34;
    pub const BLOCK_BITMAP_CSUM_HI: usize = 0x38;
    pub const INODE_BITMAP_CSUM_HI: usize = 0x3A;
}

/// `bg_flags` bits.
pub mod bg_flags {
    /// Inode table and bitmap not initialized: every inode is free.
    pub const INODE_UNINIT: u16 = 0x1;
    /// Block bitmap not initialized: only the group's own metadata is in use.
    pub const BLOCK_UNINIT: u16 = 0x2;
    /// Inode table is zeroed.
    pub const INODE_ZEROED: u16 = 0x4;
}

/// One parsed group descriptor. The `*_hi` halves are folded in when the
/// descriptor is 64 bytes or more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDesc {
    pub group: u32,
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub free_blocks_count: u32,
    pub free_inodes_count: u32,
    pub used_dirs_count: u32,
    pub flags: u16,
    pub block_bitmap_csum: u32,
    pub inode_bitmap_csum: u32,
    pub itable_unused: u32,
    pub checksum: u16,
    /// Where this descriptor is stored: block number and byte offset in it.
    pub location: (u64, u32),
    /// The exact descriptor bytes (`desc_size` long).
    pub raw: Vec<u8>,
}

impl GroupDesc {
    pub fn parse(sb: &Superblock, group: u32, raw: &[u8], location: (u64, u32)) -> Self {
        let wide = sb.desc_size() >= 64;
        let hi32 = |o: usize| {
            if wide {
                u64::from(u32_at(raw, o)) << 32
            } else {
                0
            }
        };
        let hi16 = |o: usize| {
            if wide {
                u32::from(u16_at(raw, o)) << 16
            } else {
                0
            }
        };
        GroupDesc {
            group,
            block_bitmap: u64::from(u32_at(raw, off::BLOCK_BITMAP_LO)) | hi32(off::BLOCK_BITMAP_HI),
            inode_bitmap: u64::from(u32_at(raw, off::INODE_BITMAP_LO)) | hi32(off::INODE_BITMAP_HI),
            inode_table: u64::from(u32_at(raw, off::INODE_TABLE_LO)) | hi32(off::INODE_TABLE_HI),
            free_blocks_count: u32::from(u16_at(raw, off::FREE_BLOCKS_COUNT_LO))
                | hi16(off::FREE_BLOCKS_COUNT_HI),
            free_inodes_count: u32::from(u16_at(raw, off::FREE_INODES_COUNT_LO))
                | hi16(off::FREE_INODES_COUNT_HI),
            used_dirs_count: u32::from(u16_at(raw, off::USED_DIRS_COUNT_LO))
                | hi16(off::USED_DIRS_COUNT_HI),
            flags: u16_at(raw, off::FLAGS),
            block_bitmap_csum: u32::from(u16_at(raw, off::BLOCK_BITMAP_CSUM_LO))
                | hi16(off::BLOCK_BITMAP_CSUM_HI),
            inode_bitmap_csum: u32::from(u16_at(raw, off::INODE_BITMAP_CSUM_LO))
                | hi16(off::INODE_BITMAP_CSUM_HI),
            itable_unused: u32::from(u16_at(raw, off::ITABLE_UNUSED_LO))
                | hi16(off::ITABLE_UNUSED_HI),
            checksum: u16_at(raw, off::CHECKSUM),
            location,
            raw: raw.to_vec(),
        }
    }

    /// Flags only mean something when descriptors are checksummed (the kernel
    /// ignores `*_UNINIT` otherwise).
    pub fn has_flag(&self, sb: &Superblock, flag: u16) -> bool {
        sb.has_group_csum() && self.flags & flag != 0
    }

    /// The checksum descriptor bytes `raw` of group `group` should carry, or
    /// `None` when the filesystem has no descriptor checksums.
    pub fn compute_checksum(sb: &Superblock, group: u32, raw: &[u8]) -> Option<u16> {
        let size = (sb.desc_size() as usize).min(raw.len());
        let le_group = group.to_le_bytes();
        if sb.has_metadata_csum() {
            let mut c = checksum::crc32c(sb.checksum_seed(), &le_group);
            c = checksum::crc32c(c, raw.get(..off::CHECKSUM)?);
            c = checksum::crc32c(c, &[0, 0]);
            if size > off::CHECKSUM + 2 {
                c = checksum::crc32c(c, raw.get(off::CHECKSUM + 2..size)?);
            }
            Some((c & 0xFFFF) as u16)
        } else if sb.has_gdt_csum() {
            let mut c = checksum::crc16(!0, &sb.uuid);
            c = checksum::crc16(c, &le_group);
            c = checksum::crc16(c, raw.get(..off::CHECKSUM)?);
            if sb.features.has_incompat(incompat::BIT64) && size > off::CHECKSUM + 2 {
                c = checksum::crc16(c, raw.get(off::CHECKSUM + 2..size)?);
            }
            Some(c)
        } else {
            None
        }
    }

    pub fn verify_checksum(&self, sb: &Superblock) -> Result<()> {
        if let Some(computed) = Self::compute_checksum(sb, self.group, &self.raw)
            && computed != self.checksum
        {
            return Err(Error::ChecksumMismatch {
                structure: "group descriptor",
                loc: Loc::block(self.location.0),
                stored: u32::from(self.checksum),
                computed: u32::from(computed),
            });
        }
        Ok(())
    }

    /// Checks that the bitmaps and the inode table lie inside the filesystem.
    pub fn validate(&self, sb: &Superblock) -> Result<()> {
        let first = u64::from(sb.first_data_block);
        let end = sb.blocks_count;
        let check = |what: &str, start: u64, len: u64| -> Result<()> {
            if start < first || start.checked_add(len).is_none_or(|e| e > end) {
                return Err(Error::corrupt(
                    "group descriptor",
                    Loc::block(self.location.0),
                    format!(
                        "group {}: {what} at block {start} (+{len}) is outside the filesystem (blocks {first}..{end})",
                        self.group
                    ),
                ));
            }
            Ok(())
        };
        check("block bitmap", self.block_bitmap, 1)?;
        check("inode bitmap", self.inode_bitmap, 1)?;
        check("inode table", self.inode_table, sb.inode_table_blocks())?;
        Ok(())
    }
}

/// Where the descriptor block `i` (0-based, each holding `descs_per_block`
/// descriptors) of the primary copy lives. Before `s_first_meta_bg` (or without
/// `meta_bg`) the table follows the primary superblock; after it, each meta group's
/// descriptor block sits in the first group of that meta group, after the
/// superblock backup if that group has one.
pub fn descriptor_block(sb: &Superblock, i: u64) -> u64 {
    let base = u64::from(sb.first_data_block);
    if !sb.features.has_incompat(incompat::META_BG) || i < u64::from(sb.first_meta_bg) {
        return base + 1 + i;
    }
    let g = i * u64::from(sb.descs_per_block());
    sb.group_first_block(g) + u64::from(sb.group_has_super(g))
}

/// The blocks of one group that are filesystem metadata (not owned by any inode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLayout {
    pub group: u32,
    /// Blocks `first..end` of the group.
    pub blocks: std::ops::Range<u64>,
    /// Superblock (primary or backup), if this group has one.
    pub superblock: Option<u64>,
    /// Descriptor-table blocks stored in this group (primary or backup copies;
    /// with `meta_bg`, the meta group's descriptor block and its backups).
    pub descriptor_blocks: Vec<u64>,
    /// Reserved GDT blocks for online resize (owned by the resize inode, 7, too).
    pub reserved_gdt: std::ops::Range<u64>,
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: std::ops::Range<u64>,
}

impl GroupLayout {
    /// Every block in this layout, with duplicates removed.
    pub fn all_blocks(&self) -> Vec<std::ops::Range<u64>> {
        let mut v: Vec<std::ops::Range<u64>> = Vec::new();
        if let Some(s) = self.superblock {
            v.push(s..s + 1);
        }
        v.extend(self.descriptor_blocks.iter().map(|&b| b..b + 1));
        v.push(self.reserved_gdt.clone());
        v.push(self.block_bitmap..self.block_bitmap + 1);
        v.push(self.inode_bitmap..self.inode_bitmap + 1);
        v.push(self.inode_table.clone());
        v.retain(|r| r.start < r.end);
        v
    }
}

/// Computes the static metadata of group `g` (as e2fsprogs' `ext2fs_super_and_bgd_loc2`
/// and the descriptor's own pointers describe it).
pub fn group_layout(sb: &Superblock, desc: &GroupDesc) -> GroupLayout {
    let g = u64::from(desc.group);
    let first = sb.group_first_block(g);
    let end = first + sb.group_block_count(g);
    let has_super = sb.group_has_super(g);
    let dpb = u64::from(sb.descs_per_block());
    let gdt_blocks = sb.group_count().div_ceil(dpb);
    let mut descriptor_blocks = Vec::new();
    let mut reserved_gdt = first..first;
    // With 1 KiB blocks group 0 starts at block 1, where the superblock is.
    let super_block = if has_super { Some(first) } else { None };
    let meta_bg = sb.features.has_incompat(incompat::META_BG);
    let old_desc_blocks = if meta_bg {
        u64::from(sb.first_meta_bg)
    } else {
        gdt_blocks
    };
    if has_super {
        let start = first + 1;
        descriptor_blocks.extend(start..start + old_desc_blocks);
        let rstart = start + old_desc_blocks;
        reserved_gdt = rstart..rstart + u64::from(sb.reserved_gdt_blocks);
    }
    if meta_bg {
        let meta_group = g / dpb;
        if meta_group >= u64::from(sb.first_meta_bg) {
            let idx = g % dpb;
            if idx == 0 || idx == 1 || idx == dpb - 1 {
                descriptor_blocks.push(first + u64::from(has_super));
            }
        }
    }
    let itb = sb.inode_table_blocks();
    GroupLayout {
        group: desc.group,
        blocks: first..end,
        superblock: super_block,
        descriptor_blocks,
        reserved_gdt,
        block_bitmap: desc.block_bitmap,
        inode_bitmap: desc.inode_bitmap,
        inode_table: desc.inode_table..desc.inode_table + itb,
    }
}
