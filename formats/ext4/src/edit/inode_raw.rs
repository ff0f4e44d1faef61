//! Field edits on the raw bytes of an on-disk inode, and how an edited inode is
//! written back (checksum under metadata_csum) or wiped (a freed slot).

use crate::inode::{GOOD_OLD_INODE_SIZE, Inode, Timestamp, flags, off};
use crate::superblock::Superblock;

pub(crate) fn put_u16(raw: &mut [u8], at: usize, v: u16) {
    if let Some(s) = raw.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn put_u32(raw: &mut [u8], at: usize, v: u32) {
    if let Some(s) = raw.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn get_u32(raw: &[u8], at: usize) -> u32 {
    raw.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn get_u16(raw: &[u8], at: usize) -> u16 {
    raw.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

pub(crate) fn set_links(raw: &mut [u8], n: u16) {
    put_u16(raw, off::LINKS_COUNT, n);
}

pub(crate) fn set_size(raw: &mut [u8], size: u64) {
    put_u32(raw, off::SIZE_LO, size as u32);
    put_u32(raw, off::SIZE_HIGH, (size >> 32) as u32);
}

/// `i_blocks` in 512-byte sectors, whatever unit the inode stores.
pub(crate) fn sectors(inode: &Inode, block_size: u32) -> u64 {
    inode.sectors(block_size)
}

/// Stores `sectors` (512-byte units) into `i_blocks`, in the unit the inode's
/// `HUGE_FILE` flag selects.
pub(crate) fn set_sectors(raw: &mut [u8], sectors: u64, block_size: u32) {
    let huge = get_u32(raw, off::FLAGS) & flags::HUGE_FILE != 0;
    let v = if huge {
        sectors / u64::from(block_size / 512)
    } else {
        sectors
    };
    put_u32(raw, off::BLOCKS_LO, v as u32);
    put_u16(raw, off::BLOCKS_HIGH, (v >> 32) as u16);
}

/// The bytes of `i_extra_isize` that exist past the classic 128 (0 for small inodes).
fn extra_end(raw: &[u8]) -> usize {
    if raw.len() <= GOOD_OLD_INODE_SIZE {
        return GOOD_OLD_INODE_SIZE;
    }
    GOOD_OLD_INODE_SIZE + usize::from(get_u16(raw, off::EXTRA_ISIZE))
}

/// Sets one of the timestamps (`base` is `off::MTIME` etc., `extra` its `*_EXTRA`),
/// with nanoseconds and epoch bits when the inode has room for them.
pub(crate) fn set_time(raw: &mut [u8], base: usize, extra: usize, t: Timestamp) {
    let lo = t.secs as u32;
    put_u32(raw, base, lo);
    if extra + 4 <= extra_end(raw) {
        let epoch = ((t.secs - i64::from(lo as i32)) >> 32) as u32 & 3;
        put_u32(raw, extra, epoch | (t.nsecs.min(999_999_999) << 2));
    }
}

/// Sets mtime and ctime (what a content or directory change touches).
pub(crate) fn touch(raw: &mut [u8], t: Timestamp) {
    set_time(raw, off::MTIME, off::MTIME_EXTRA, t);
    set_time(raw, off::CTIME, off::CTIME_EXTRA, t);
}

/// Stores the inode checksum (metadata_csum) into `raw`.
pub(crate) fn set_checksum(sb: &Superblock, fs_seed: u32, ino: u32, raw: &mut [u8]) {
    if !sb.has_metadata_csum() {
        return;
    }
    let c = Inode::compute_checksum(fs_seed, ino, raw);
    put_u16(raw, off::CHECKSUM_LO, c as u16);
    if raw.len() > GOOD_OLD_INODE_SIZE
        && usize::from(get_u16(raw, off::EXTRA_ISIZE)) >= off::CHECKSUM_HI + 2 - GOOD_OLD_INODE_SIZE
    {
        put_u16(raw, off::CHECKSUM_HI, (c >> 16) as u16);
    }
}

/// The reference count of an `ea_inode` (how many xattr entries point at it):
/// `i_ctime` holds the high 32 bits, `i_version` (osd1) the low 32.
pub(crate) fn ea_inode_refs(raw: &[u8]) -> u64 {
    (u64::from(get_u32(raw, off::CTIME)) << 32) | u64::from(get_u32(raw, off::VERSION))
}

pub(crate) fn set_ea_inode_refs(raw: &mut [u8], refs: u64) {
    put_u32(raw, off::CTIME, (refs >> 32) as u32);
    put_u32(raw, off::VERSION, refs as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_the_reader() {
        let mut raw = vec![0u8; 256];
        put_u16(&mut raw, off::EXTRA_ISIZE, 32);
        for secs in [0i64, 1, -1000, 1_700_000_000, 2_200_000_000, (1 << 33) + 5] {
            let t = Timestamp {
                secs,
                nsecs: 123_456_789,
            };
            touch(&mut raw, t);
            let i = Inode::parse(12, raw.clone(), (0, 0)).unwrap();
            assert_eq!(i.mtime, t, "{secs}");
            assert_eq!(i.ctime, t, "{secs}");
        }
        // A 128-byte inode keeps only the seconds.
        let mut small = vec![0u8; 128];
        touch(&mut small, Timestamp { secs: 99, nsecs: 5 });
        let i = Inode::parse(12, small, (0, 0)).unwrap();
        assert_eq!(i.mtime, Timestamp { secs: 99, nsecs: 0 });
    }

    #[test]
    fn i_blocks_units() {
        let mut raw = vec![0u8; 256];
        set_sectors(&mut raw, 80, 4096);
        assert_eq!(get_u32(&raw, off::BLOCKS_LO), 80);
        put_u32(&mut raw, off::FLAGS, flags::HUGE_FILE);
        set_sectors(&mut raw, 80, 4096);
        assert_eq!(get_u32(&raw, off::BLOCKS_LO), 10);
        let i = Inode::parse(12, raw, (0, 0)).unwrap();
        assert_eq!(i.sectors(4096), 80);
    }
}
