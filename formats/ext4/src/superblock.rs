//! The superblock: 1024 bytes at byte 1024 of the filesystem.
//!
//! Parsed fields are public for reading; [`Superblock::raw`] keeps the exact bytes,
//! and [`off`] names every field offset, so the editor patches counters in place and
//! recomputes the checksum with [`Superblock::compute_checksum`] without a second
//! copy of the layout.

use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::features::{Features, incompat, ro_compat};
use crate::le::{bytes_at, u8_at, u16_at, u32_at};

/// Byte offset of the primary superblock from the start of the filesystem.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock structure.
pub const SUPERBLOCK_SIZE: usize = 1024;
pub const EXT4_MAGIC: u16 = 0xEF53;

/// Field offsets inside the superblock (kernel `struct ext4_super_block`).
pub mod off {
    pub const INODES_COUNT: usize = 0x00;
    pub const BLOCKS_COUNT_LO: usize = 0x04;
    pub const R_BLOCKS_COUNT_LO: usize = 0x08;
    pub const FREE_BLOCKS_COUNT_LO: usize = 0x0C;
    pub const FREE_INODES_COUNT: usize = 0x10;
    pub const FIRST_DATA_BLOCK: usize = 0x14;
    pub const LOG_BLOCK_SIZE: usize = 0x18;
    pub const LOG_CLUSTER_SIZE: usize = 0x1C;
    pub const BLOCKS_PER_GROUP: usize = 0x20;
    pub const CLUSTERS_PER_GROUP: usize = 0x24;
    pub const INODES_PER_GROUP: usize = 0x28;
    pub const MTIME: usize = 0x2C;
    pub const WTIME: usize = 0x30;
    pub const MAGIC: usize = 0x38;
    pub const STATE: usize = 0x3A;
    pub const ERRORS: usize = 0x3C;
    pub const MINOR_REV_LEVEL: usize = 0x3E;
    pub const CREATOR_OS: usize = 0x48;
    pub const REV_LEVEL: usize = 0x4C;
    pub const FIRST_INO: usize = 0x54;
    pub const INODE_SIZE: usize = 0x58;
    pub const BLOCK_GROUP_NR: usize = 0x5A;
    pub const FEATURE_COMPAT: usize = 0x5C;
    pub const FEATURE_INCOMPAT: usize = 0x60;
    pub const FEATURE_RO_COMPAT: usize = 0x64;
    pub const UUID: usize = 0x68;
    pub const VOLUME_NAME: usize = 0x78;
    pub const LAST_MOUNTED: usize = 0x88;
    pub const RESERVED_GDT_BLOCKS: usize = 0xCE;
    pub const JOURNAL_UUID: usize = 0xD0;
    pub const JOURNAL_INUM: usize = 0xE0;
    pub const JOURNAL_DEV: usize = 0xE4;
    pub const LAST_ORPHAN: usize = 0xE8;
    pub const HASH_SEED: usize = 0xEC;
    pub const DEF_HASH_VERSION: usize = 0xFC;
    pub const JNL_BACKUP_TYPE: usize = 0xFD;
    pub const DESC_SIZE: usize = 0xFE;
    pub const DEFAULT_MOUNT_OPTS: usize = 0x100;
    pub const FIRST_META_BG: usize = 0x104;
    pub const MKFS_TIME: usize = 0x108;
    pub const JNL_BLOCKS: usize = 0x10C;
    pub const BLOCKS_COUNT_HI: usize = 0x150;
    pub const R_BLOCKS_COUNT_HI: usize = 0x154;
    pub const FREE_BLOCKS_COUNT_HI: usize = 0x158;
    pub const MIN_EXTRA_ISIZE: usize = 0x15C;
    pub const WANT_EXTRA_ISIZE: usize = 0x15E;
    pub const FLAGS: usize = 0x160;
    pub const MMP_BLOCK: usize = 0x168;
    pub const LOG_GROUPS_PER_FLEX: usize = 0x174;
    pub const CHECKSUM_TYPE: usize = 0x175;
    pub const KBYTES_WRITTEN: usize = 0x178;
    pub const ERROR_COUNT: usize = 0x194;
    pub const FIRST_ERROR_TIME: usize = 0x198;
    pub const FIRST_ERROR_INO: usize = 0x19C;
    pub const FIRST_ERROR_BLOCK: usize = 0x1A0;
    pub const LAST_ERROR_TIME: usize = 0x1CC;
    pub const LAST_ERROR_INO: usize = 0x1D0;
    pub const LAST_ERROR_BLOCK: usize = 0x1D8;
    pub const USR_QUOTA_INUM: usize = 0x240;
    pub const GRP_QUOTA_INUM: usize = 0x244;
    pub const OVERHEAD_CLUSTERS: usize = 0x248;
    pub const BACKUP_BGS: usize = 0x24C;
    pub const LPF_INO: usize = 0x268;
    pub const PRJ_QUOTA_INUM: usize = 0x26C;
    pub const CHECKSUM_SEED: usize = 0x270;
    pub const ENCODING: usize = 0x27C;
    pub const ORPHAN_FILE_INUM: usize = 0x280;
    pub const CHECKSUM: usize = 0x3FC;
}

/// `s_state` bits.
pub mod state {
    /// Cleanly unmounted.
    pub const VALID: u16 = 0x1;
    /// Errors detected.
    pub const ERROR: u16 = 0x2;
    /// Orphans being recovered.
    pub const ORPHAN: u16 = 0x4;
}

/// `s_flags` bits (only the hash signedness matters to a reader).
pub mod sb_flags {
    pub const SIGNED_HASH: u32 = 0x1;
    pub const UNSIGNED_HASH: u32 = 0x2;
}

#[derive(Clone)]
pub struct Superblock {
    raw: Box<[u8; SUPERBLOCK_SIZE]>,
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub r_blocks_count: u64,
    pub free_blocks_count: u64,
    pub free_inodes_count: u32,
    pub first_data_block: u32,
    pub log_block_size: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub mtime: u32,
    pub wtime: u32,
    pub magic: u16,
    pub state: u16,
    pub errors: u16,
    pub creator_os: u32,
    pub rev_level: u32,
    pub first_ino: u32,
    pub inode_size: u16,
    pub features: Features,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub reserved_gdt_blocks: u16,
    pub journal_uuid: [u8; 16],
    pub journal_inum: u32,
    pub journal_dev: u32,
    pub last_orphan: u32,
    pub hash_seed: [u32; 4],
    pub def_hash_version: u8,
    /// Descriptor size as stored (0 when not 64bit); see [`Superblock::desc_size`].
    pub desc_size_raw: u16,
    pub first_meta_bg: u32,
    pub mkfs_time: u32,
    pub min_extra_isize: u16,
    pub want_extra_isize: u16,
    pub flags: u32,
    pub log_groups_per_flex: u8,
    pub checksum_type: u8,
    pub error_count: u32,
    pub backup_bgs: [u32; 2],
    pub checksum_seed: u32,
    pub orphan_file_inum: u32,
    pub checksum: u32,
}

impl std::fmt::Debug for Superblock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Superblock")
            .field("inodes_count", &self.inodes_count)
            .field("blocks_count", &self.blocks_count)
            .field("block_size", &self.block_size())
            .field("features", &self.features)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Superblock {
    /// Parses and validates the 1024 superblock bytes against a device of
    /// `device_size` bytes. Checksum verification is the caller's choice
    /// ([`Superblock::verify_checksum`]).
    pub fn parse(bytes: &[u8; SUPERBLOCK_SIZE], device_size: u64) -> Result<Self> {
        let b = &bytes[..];
        let blocks_count = u64::from(u32_at(b, off::BLOCKS_COUNT_LO));
        let incompat_word = u32_at(b, off::FEATURE_INCOMPAT);
        let is64 = incompat_word & incompat::BIT64 != 0;
        let hi = |o: usize| {
            if is64 {
                u64::from(u32_at(b, o)) << 32
            } else {
                0
            }
        };
        let rev_level = u32_at(b, off::REV_LEVEL);
        let sb = Superblock {
            raw: Box::new(*bytes),
            inodes_count: u32_at(b, off::INODES_COUNT),
            blocks_count: blocks_count | hi(off::BLOCKS_COUNT_HI),
            r_blocks_count: u64::from(u32_at(b, off::R_BLOCKS_COUNT_LO))
                | hi(off::R_BLOCKS_COUNT_HI),
            free_blocks_count: u64::from(u32_at(b, off::FREE_BLOCKS_COUNT_LO))
                | hi(off::FREE_BLOCKS_COUNT_HI),
            free_inodes_count: u32_at(b, off::FREE_INODES_COUNT),
            first_data_block: u32_at(b, off::FIRST_DATA_BLOCK),
            log_block_size: u32_at(b, off::LOG_BLOCK_SIZE),
            blocks_per_group: u32_at(b, off::BLOCKS_PER_GROUP),
            inodes_per_group: u32_at(b, off::INODES_PER_GROUP),
            mtime: u32_at(b, off::MTIME),
            wtime: u32_at(b, off::WTIME),
            magic: u16_at(b, off::MAGIC),
            state: u16_at(b, off::STATE),
            errors: u16_at(b, off::ERRORS),
            creator_os: u32_at(b, off::CREATOR_OS),
            rev_level,
            first_ino: if rev_level == 0 {
                11
            } else {
                u32_at(b, off::FIRST_INO)
            },
            inode_size: if rev_level == 0 {
                128
            } else {
                u16_at(b, off::INODE_SIZE)
            },
            features: Features {
                compat: u32_at(b, off::FEATURE_COMPAT),
                incompat: if rev_level == 0 { 0 } else { incompat_word },
                ro_compat: if rev_level == 0 {
                    0
                } else {
                    u32_at(b, off::FEATURE_RO_COMPAT)
                },
            },
            uuid: bytes_at(b, off::UUID),
            volume_name: bytes_at(b, off::VOLUME_NAME),
            reserved_gdt_blocks: u16_at(b, off::RESERVED_GDT_BLOCKS),
            journal_uuid: bytes_at(b, off::JOURNAL_UUID),
            journal_inum: u32_at(b, off::JOURNAL_INUM),
            journal_dev: u32_at(b, off::JOURNAL_DEV),
            last_orphan: u32_at(b, off::LAST_ORPHAN),
            hash_seed: [
                u32_at(b, off::HASH_SEED),
                u32_at(b, off::HASH_SEED + 4),
                u32_at(b, off::HASH_SEED + 8),
                u32_at(b, off::HASH_SEED + 12),
            ],
            def_hash_version: u8_at(b, off::DEF_HASH_VERSION),
            desc_size_raw: u16_at(b, off::DESC_SIZE),
            first_meta_bg: u32_at(b, off::FIRST_META_BG),
            mkfs_time: u32_at(b, off::MKFS_TIME),
            min_extra_isize: u16_at(b, off::MIN_EXTRA_ISIZE),
            want_extra_isize: u16_at(b, off::WANT_EXTRA_ISIZE),
            flags: u32_at(b, off::FLAGS),
            log_groups_per_flex: u8_at(b, off::LOG_GROUPS_PER_FLEX),
            checksum_type: u8_at(b, off::CHECKSUM_TYPE),
            error_count: u32_at(b, off::ERROR_COUNT),
            backup_bgs: [u32_at(b, off::BACKUP_BGS), u32_at(b, off::BACKUP_BGS + 4)],
            checksum_seed: u32_at(b, off::CHECKSUM_SEED),
            orphan_file_inum: u32_at(b, off::ORPHAN_FILE_INUM),
            checksum: u32_at(b, off::CHECKSUM),
        };
        sb.validate(device_size)?;
        Ok(sb)
    }

    fn validate(&self, device_size: u64) -> Result<()> {
        let bad = |detail: String| Err(Error::corrupt("superblock", Loc::NONE, detail));
        if self.magic != EXT4_MAGIC {
            return bad(format!("bad magic {:#06x} (expected 0xef53)", self.magic));
        }
        if self.rev_level > 1 {
            return bad(format!("unknown revision level {}", self.rev_level));
        }
        // 1 KiB << 6 = 64 KiB, the largest block size ext4 defines.
        if self.log_block_size > 6 {
            return bad(format!(
                "s_log_block_size {} (block size above 64 KiB)",
                self.log_block_size
            ));
        }
        let bs = self.block_size();
        let is = u32::from(self.inode_size);
        if is < 128 || !is.is_power_of_two() || is > bs {
            return bad(format!(
                "inode size {is} (must be a power of two in 128..={bs})"
            ));
        }
        if self.blocks_per_group < 8
            || self.blocks_per_group > 8 * bs
            || !self.blocks_per_group.is_multiple_of(8)
        {
            return bad(format!("s_blocks_per_group {}", self.blocks_per_group));
        }
        if self.inodes_per_group == 0
            || self.inodes_per_group > 8 * bs
            || !self.inodes_per_group.is_multiple_of(8)
        {
            return bad(format!("s_inodes_per_group {}", self.inodes_per_group));
        }
        let want_first = if bs == 1024 { 1 } else { 0 };
        if self.first_data_block != want_first {
            return bad(format!(
                "s_first_data_block {} (expected {want_first} for {bs}-byte blocks)",
                self.first_data_block
            ));
        }
        if self.blocks_count <= u64::from(self.first_data_block) {
            return bad(format!(
                "s_blocks_count {} leaves no block group",
                self.blocks_count
            ));
        }
        let fs_bytes = self.blocks_count.checked_mul(u64::from(bs));
        match fs_bytes {
            Some(n) if n <= device_size => {}
            _ => {
                return bad(format!(
                    "{} blocks of {bs} bytes do not fit the device ({device_size} bytes)",
                    self.blocks_count
                ));
            }
        }
        let groups = self.group_count();
        if u64::from(self.inodes_count) != groups * u64::from(self.inodes_per_group) {
            return bad(format!(
                "s_inodes_count {} is not {groups} groups x {} inodes",
                self.inodes_count, self.inodes_per_group
            ));
        }
        if self.first_ino < 11 || self.first_ino > self.inodes_count {
            return bad(format!("s_first_ino {}", self.first_ino));
        }
        if self.features.has_incompat(incompat::BIT64) {
            let ds = self.desc_size_raw;
            if !(64..=1024).contains(&ds) || !ds.is_power_of_two() || u32::from(ds) > bs {
                return bad(format!("s_desc_size {ds} with 64bit"));
            }
        }
        if self.features.has_ro_compat(ro_compat::METADATA_CSUM) && self.checksum_type != 1 {
            return bad(format!(
                "s_checksum_type {} (only crc32c, 1, exists)",
                self.checksum_type
            ));
        }
        if self.features.has_incompat(incompat::META_BG) {
            let gdt_blocks = groups.div_ceil(u64::from(self.descs_per_block()));
            if u64::from(self.first_meta_bg) > gdt_blocks {
                return bad(format!(
                    "s_first_meta_bg {} beyond {gdt_blocks} descriptor blocks",
                    self.first_meta_bg
                ));
            }
        }
        Ok(())
    }

    /// The 1024 bytes this was parsed from.
    pub fn raw(&self) -> &[u8; SUPERBLOCK_SIZE] {
        &self.raw
    }

    pub fn block_size(&self) -> u32 {
        1024u32 << self.log_block_size.min(6)
    }

    /// Number of block groups (the last one may be short).
    pub fn group_count(&self) -> u64 {
        (self.blocks_count - u64::from(self.first_data_block))
            .div_ceil(u64::from(self.blocks_per_group))
    }

    /// Size of one group descriptor: 32 bytes, or `s_desc_size` with `64bit`.
    pub fn desc_size(&self) -> u32 {
        if self.features.has_incompat(incompat::BIT64) {
            u32::from(self.desc_size_raw)
        } else {
            32
        }
    }

    pub fn descs_per_block(&self) -> u32 {
        self.block_size() / self.desc_size()
    }

    pub fn is_64bit(&self) -> bool {
        self.features.has_incompat(incompat::BIT64)
    }

    pub fn has_metadata_csum(&self) -> bool {
        self.features.has_ro_compat(ro_compat::METADATA_CSUM)
    }

    pub fn has_gdt_csum(&self) -> bool {
        self.features.has_ro_compat(ro_compat::GDT_CSUM)
    }

    /// Group descriptors carry a checksum of either kind (which also makes the
    /// `*_UNINIT` group flags meaningful).
    pub fn has_group_csum(&self) -> bool {
        self.has_metadata_csum() || self.has_gdt_csum()
    }

    /// The journal must be replayed before the on-disk state is consistent.
    pub fn needs_recovery(&self) -> bool {
        self.features.has_incompat(incompat::RECOVER)
    }

    /// Seed of every metadata_csum checksum except the superblock's own.
    pub fn checksum_seed(&self) -> u32 {
        if self.features.has_incompat(incompat::CSUM_SEED) {
            self.checksum_seed
        } else {
            checksum::fs_seed_from_uuid(&self.uuid)
        }
    }

    /// The checksum the superblock bytes `raw` should carry (crc32c of everything
    /// before the checksum field).
    pub fn compute_checksum(raw: &[u8; SUPERBLOCK_SIZE]) -> u32 {
        checksum::crc32c(!0, &raw[..off::CHECKSUM])
    }

    /// Checks `s_checksum` when `metadata_csum` is on.
    pub fn verify_checksum(&self) -> Result<()> {
        if !self.has_metadata_csum() {
            return Ok(());
        }
        let computed = Self::compute_checksum(&self.raw);
        if computed != self.checksum {
            return Err(Error::ChecksumMismatch {
                structure: "superblock",
                loc: Loc::NONE,
                stored: self.checksum,
                computed,
            });
        }
        Ok(())
    }

    /// Volume label, up to the first NUL.
    pub fn label(&self) -> &[u8] {
        let end = self.volume_name.iter().position(|&c| c == 0).unwrap_or(16);
        &self.volume_name[..end]
    }

    /// Does group `g` hold a superblock backup (and so a descriptor-table copy)?
    /// Follows `sparse_super2` (groups 0 and `s_backup_bgs`), `sparse_super` (0, 1
    /// and powers of 3, 5 and 7) or, with neither, every group.
    pub fn group_has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if self
            .features
            .has_compat(crate::features::compat::SPARSE_SUPER2)
        {
            return g == u64::from(self.backup_bgs[0]) || g == u64::from(self.backup_bgs[1]);
        }
        if g <= 1 || !self.features.has_ro_compat(ro_compat::SPARSE_SUPER) {
            return true;
        }
        if g.is_multiple_of(2) {
            return false;
        }
        [3u64, 5, 7].iter().any(|&base| is_power_of(g, base))
    }

    /// First block of group `g`.
    pub fn group_first_block(&self, g: u64) -> u64 {
        u64::from(self.first_data_block) + g * u64::from(self.blocks_per_group)
    }

    /// Number of blocks in group `g` (the last group may be short).
    pub fn group_block_count(&self, g: u64) -> u64 {
        let first = self.group_first_block(g);
        (self.blocks_count - first.min(self.blocks_count)).min(u64::from(self.blocks_per_group))
    }

    /// Inode tables occupy this many blocks per group.
    pub fn inode_table_blocks(&self) -> u64 {
        (u64::from(self.inodes_per_group) * u64::from(self.inode_size))
            .div_ceil(u64::from(self.block_size()))
    }
}

fn is_power_of(mut n: u64, base: u64) -> bool {
    while n > 1 && n.is_multiple_of(base) {
        n /= base;
    }
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_backup_groups() {
        let mut raw = [0u8; SUPERBLOCK_SIZE];
        raw[off::MAGIC..off::MAGIC + 2].copy_from_slice(&EXT4_MAGIC.to_le_bytes());
        raw[off::REV_LEVEL] = 1;
        raw[off::FEATURE_RO_COMPAT] = 1;
        raw[off::INODE_SIZE] = 128;
        raw[off::FIRST_INO] = 11;
        raw[off::LOG_BLOCK_SIZE] = 2;
        raw[off::BLOCKS_PER_GROUP + 1] = 0x80; // 32768
        raw[off::INODES_PER_GROUP] = 64;
        raw[off::BLOCKS_COUNT_LO + 2] = 0x10; // 1 Mi blocks = 32 groups
        raw[off::INODES_COUNT + 1] = 8; // 2048 = 32 x 64
        let sb = Superblock::parse(&raw, 1 << 40).unwrap();
        let with: Vec<u64> = (0..32).filter(|&g| sb.group_has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27]);
    }
}
