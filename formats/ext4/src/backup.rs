//! Backup superblocks: where a filesystem whose primary superblock is damaged
//! can still be read from, as `e2fsck` finds it.
//!
//! Every group that `sparse_super` keeps a superblock in holds a copy of it and
//! of the group descriptor table; group 1 always has one. Its place depends on
//! the block size, which the damaged primary no longer says, so each size ext
//! allows (1–64 KiB) is tried with the default group size (8 × block size
//! blocks), as `e2fsck` does without `-b`. A candidate counts only if it says
//! it is group 1's copy and its geometry puts it exactly where it was found.
//!
//! A backup is written when the filesystem is made or resized and by
//! `e2fsck`, so its counters and its groups' "uninitialized" flags can be stale:
//! the reader opened from one ignores those flags (an inode table or bitmap
//! flagged unused may have been used since), like `e2fsck` does, and is meant
//! for reading only.

use vmscrub_blockdev::ReadAt;

use crate::superblock::{SUPERBLOCK_SIZE, off};

const MAGIC: u16 = 0xEF53;
/// ext's largest block size, as a log2 of KiB (64 KiB).
const MAX_LOG_BLOCK_SIZE: u32 = 6;

/// Where a backup superblock was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSuperblock {
    /// The group holding it.
    pub group: u32,
    /// Its block number (what `e2fsck -b` takes), in `block_size` blocks.
    pub block: u64,
    pub block_size: u32,
    /// Its byte offset in the volume.
    pub offset: u64,
}

/// Group 1's backup superblock, if one is where a block size puts it.
pub fn find_backup<D: ReadAt + ?Sized>(dev: &D) -> Option<BackupSuperblock> {
    (0..=MAX_LOG_BLOCK_SIZE).find_map(|log| candidate(dev, log))
}

fn candidate<D: ReadAt + ?Sized>(dev: &D, log: u32) -> Option<BackupSuperblock> {
    let bs = 1024u64 << log;
    let first_data_block = u64::from(bs == 1024);
    let block = first_data_block + 8 * bs;
    let offset = block * bs;
    if offset + SUPERBLOCK_SIZE as u64 > dev.size() {
        return None;
    }
    let mut raw = [0u8; SUPERBLOCK_SIZE];
    dev.read_exact_at(&mut raw, offset).ok()?;
    let u16_at = |at: usize| u16::from_le_bytes([raw[at], raw[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
    let fits = u16_at(off::MAGIC) == MAGIC
        && u16_at(off::BLOCK_GROUP_NR) == 1
        && u32_at(off::LOG_BLOCK_SIZE) == log
        && u64::from(u32_at(off::BLOCKS_PER_GROUP)) == 8 * bs
        && u64::from(u32_at(off::FIRST_DATA_BLOCK)) == first_data_block;
    fits.then_some(BackupSuperblock {
        group: 1,
        block,
        block_size: bs as u32,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    fn plant(disk: &mut [u8], log: u32, at: u64, group: u16, bpg: u32, fdb: u32) {
        let o = at as usize;
        let sb = &mut disk[o..o + SUPERBLOCK_SIZE];
        sb[off::MAGIC..off::MAGIC + 2].copy_from_slice(&MAGIC.to_le_bytes());
        sb[off::BLOCK_GROUP_NR..off::BLOCK_GROUP_NR + 2].copy_from_slice(&group.to_le_bytes());
        sb[off::LOG_BLOCK_SIZE..off::LOG_BLOCK_SIZE + 4].copy_from_slice(&log.to_le_bytes());
        sb[off::BLOCKS_PER_GROUP..off::BLOCKS_PER_GROUP + 4].copy_from_slice(&bpg.to_le_bytes());
        sb[off::FIRST_DATA_BLOCK..off::FIRST_DATA_BLOCK + 4].copy_from_slice(&fdb.to_le_bytes());
    }

    #[test]
    fn finds_group_one_for_each_block_size_and_nothing_else() {
        // 1 KiB blocks: group 1 starts at block 8193.
        let mut d = vec![0u8; 9 << 20];
        plant(&mut d, 0, 8193 * 1024, 1, 8192, 1);
        let b = find_backup(&MemDisk::new(d.clone())).unwrap();
        assert_eq!((b.block, b.block_size, b.offset), (8193, 1024, 8193 * 1024));

        // A copy that says it is group 2's, or has another geometry, is not it.
        let mut wrong = vec![0u8; 9 << 20];
        plant(&mut wrong, 0, 8193 * 1024, 2, 8192, 1);
        assert!(find_backup(&MemDisk::new(wrong.clone())).is_none());
        plant(&mut wrong, 0, 8193 * 1024, 1, 4096, 1);
        assert!(find_backup(&MemDisk::new(wrong)).is_none());

        // 4 KiB blocks: block 32768, 128 MiB in.
        let mut d = vec![0u8; 129 << 20];
        plant(&mut d, 2, 32768 * 4096, 1, 32768, 0);
        let b = find_backup(&MemDisk::new(d)).unwrap();
        assert_eq!((b.block, b.block_size), (32768, 4096));

        // A device too small for any backup.
        assert!(find_backup(&MemDisk::new(vec![0u8; 4096])).is_none());
    }
}
