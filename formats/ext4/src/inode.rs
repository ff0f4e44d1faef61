//! Inodes: the fixed 128-byte part, the "extra" part sized by `i_extra_isize`, and
//! the checksum over the whole on-disk inode.

use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::le::{u16_at, u32_at};

/// Field offsets inside an on-disk inode (kernel `struct ext4_inode`).
pub mod off {
    pub const MODE: usize = 0x00;
    pub const UID: usize = 0x02;
    pub const SIZE_LO: usize = 0x04;
    pub const ATIME: usize = 0x08;
    pub const CTIME: usize = 0x0C;
    pub const MTIME: usize = 0x10;
    pub const DTIME: usize = 0x14;
    pub const GID: usize = 0x18;
    pub const LINKS_COUNT: usize = 0x1A;
    pub const BLOCKS_LO: usize = 0x1C;
    pub const FLAGS: usize = 0x20;
    pub const VERSION: usize = 0x24;
    pub const BLOCK: usize = 0x28;
    pub const GENERATION: usize = 0x64;
    pub const FILE_ACL_LO: usize = 0x68;
    pub const SIZE_HIGH: usize = 0x6C;
    pub const BLOCKS_HIGH: usize = 0x74;
    pub const FILE_ACL_HIGH: usize = 0x76;
    pub const UID_HIGH: usize = 0x78;
    pub const GID_HIGH: usize = 0x7A;
    pub const CHECKSUM_LO: usize = 0x7C;
    pub const EXTRA_ISIZE: usize = 0x80;
    pub const CHECKSUM_HI: usize = 0x82;
    pub const CTIME_EXTRA: usize = 0x84;
    pub const MTIME_EXTRA: usize = 0x88;
    pub const ATIME_EXTRA: usize = 0x8C;
    pub const CRTIME: usize = 0x90;
    pub const CRTIME_EXTRA: usize = 0x94;
    pub const VERSION_HI: usize = 0x98;
    pub const PROJID: usize = 0x9C;
}

/// The size of the classic inode; everything past it is the "extra" part.
pub const GOOD_OLD_INODE_SIZE: usize = 128;
/// Bytes of `i_block`: block map, extent root, inline data or fast symlink target.
pub const I_BLOCK_SIZE: usize = 60;

/// `i_flags` bits a reader acts on.
pub mod flags {
    pub const SECRM: u32 = 0x1;
    pub const IMMUTABLE: u32 = 0x10;
    pub const APPEND: u32 = 0x20;
    pub const NOATIME: u32 = 0x80;
    pub const ENCRYPT: u32 = 0x800;
    /// Directory has an htree index.
    pub const INDEX: u32 = 0x1000;
    pub const JOURNAL_DATA: u32 = 0x4000;
    /// `i_blocks` counts filesystem blocks, not 512-byte sectors (`huge_file`).
    pub const HUGE_FILE: u32 = 0x40000;
    /// `i_block` holds an extent tree root.
    pub const EXTENTS: u32 = 0x80000;
    pub const VERITY: u32 = 0x100000;
    /// This inode stores a large extended-attribute value (`ea_inode`).
    pub const EA_INODE: u32 = 0x200000;
    /// Data lives in `i_block` and the `system.data` xattr.
    pub const INLINE_DATA: u32 = 0x10000000;
    pub const PROJINHERIT: u32 = 0x20000000;
    pub const CASEFOLD: u32 = 0x40000000;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    /// A mode whose type bits name nothing.
    Unknown,
}

impl FileType {
    pub fn from_mode(mode: u16) -> Self {
        match mode & 0xF000 {
            0x8000 => FileType::Regular,
            0x4000 => FileType::Directory,
            0xA000 => FileType::Symlink,
            0x2000 => FileType::CharDevice,
            0x6000 => FileType::BlockDevice,
            0x1000 => FileType::Fifo,
            0xC000 => FileType::Socket,
            _ => FileType::Unknown,
        }
    }

    /// The type code stored in directory entries (`filetype` feature).
    pub fn from_dirent_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => FileType::Regular,
            2 => FileType::Directory,
            3 => FileType::CharDevice,
            4 => FileType::BlockDevice,
            5 => FileType::Fifo,
            6 => FileType::Socket,
            7 => FileType::Symlink,
            _ => return None,
        })
    }

    pub fn dirent_code(self) -> u8 {
        match self {
            FileType::Regular => 1,
            FileType::Directory => 2,
            FileType::CharDevice => 3,
            FileType::BlockDevice => 4,
            FileType::Fifo => 5,
            FileType::Socket => 6,
            FileType::Symlink => 7,
            FileType::Unknown => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FileType::Regular => "regular file",
            FileType::Directory => "directory",
            FileType::Symlink => "symbolic link",
            FileType::CharDevice => "character device",
            FileType::BlockDevice => "block device",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
            FileType::Unknown => "unknown type",
        }
    }
}

/// A time as ext4 stores it: 32 signed seconds, extended by two epoch bits and
/// nanoseconds from the `*_extra` field when the inode is large enough to hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nsecs: u32,
}

impl Timestamp {
    pub fn decode(base: u32, extra: Option<u32>) -> Self {
        let mut secs = i64::from(base as i32);
        let mut nsecs = 0;
        if let Some(extra) = extra {
            secs += i64::from(extra & 3) << 32;
            nsecs = extra >> 2;
        }
        Timestamp { secs, nsecs }
    }
}

/// An inode as read from the inode table.
#[derive(Debug, Clone)]
pub struct Inode {
    pub ino: u32,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub links_count: u16,
    /// `i_blocks` with its high half, in the unit `i_flags` says (see [`Inode::sectors`]).
    pub blocks_raw: u64,
    pub flags: u32,
    pub atime: Timestamp,
    pub ctime: Timestamp,
    pub mtime: Timestamp,
    /// Creation time, present only in inodes with room for it.
    pub crtime: Option<Timestamp>,
    pub dtime: u32,
    pub generation: u32,
    /// The external extended-attribute block (48 bits), 0 for none.
    pub file_acl: u64,
    pub extra_isize: u16,
    pub projid: Option<u32>,
    /// `i_block`: block map, extent root, inline data or fast symlink target.
    pub i_block: [u8; I_BLOCK_SIZE],
    /// Where the inode lives: block and byte offset inside it.
    pub location: (u64, u32),
    /// The exact on-disk bytes (`s_inode_size` long).
    pub raw: Vec<u8>,
}

impl Inode {
    /// Parses the on-disk bytes of inode `ino`. `raw` is `s_inode_size` long.
    pub fn parse(ino: u32, raw: Vec<u8>, location: (u64, u32)) -> Result<Self> {
        let b = &raw[..];
        if b.len() < GOOD_OLD_INODE_SIZE {
            return Err(Error::corrupt(
                "inode",
                Loc::inode(ino),
                "shorter than 128 bytes",
            ));
        }
        let extra_isize = if b.len() > GOOD_OLD_INODE_SIZE {
            u16_at(b, off::EXTRA_ISIZE)
        } else {
            0
        };
        let extra_end = GOOD_OLD_INODE_SIZE + usize::from(extra_isize);
        if extra_end > b.len() || extra_isize % 4 != 0 {
            return Err(Error::corrupt(
                "inode",
                Loc::inode(ino),
                format!(
                    "i_extra_isize {extra_isize} does not fit a {}-byte inode",
                    b.len()
                ),
            ));
        }
        // A field of the extra part exists when i_extra_isize reaches past its end.
        let has = |o: usize, len: usize| o + len <= extra_end;
        let extra = |o: usize| if has(o, 4) { Some(u32_at(b, o)) } else { None };
        let mut i_block = [0u8; I_BLOCK_SIZE];
        i_block.copy_from_slice(&b[off::BLOCK..off::BLOCK + I_BLOCK_SIZE]);
        Ok(Inode {
            ino,
            mode: u16_at(b, off::MODE),
            uid: u32::from(u16_at(b, off::UID)) | (u32::from(u16_at(b, off::UID_HIGH)) << 16),
            gid: u32::from(u16_at(b, off::GID)) | (u32::from(u16_at(b, off::GID_HIGH)) << 16),
            size: u64::from(u32_at(b, off::SIZE_LO)) | (u64::from(u32_at(b, off::SIZE_HIGH)) << 32),
            links_count: u16_at(b, off::LINKS_COUNT),
            blocks_raw: u64::from(u32_at(b, off::BLOCKS_LO))
                | (u64::from(u16_at(b, off::BLOCKS_HIGH)) << 32),
            flags: u32_at(b, off::FLAGS),
            atime: Timestamp::decode(u32_at(b, off::ATIME), extra(off::ATIME_EXTRA)),
            ctime: Timestamp::decode(u32_at(b, off::CTIME), extra(off::CTIME_EXTRA)),
            mtime: Timestamp::decode(u32_at(b, off::MTIME), extra(off::MTIME_EXTRA)),
            crtime: extra(off::CRTIME)
                .map(|base| Timestamp::decode(base, extra(off::CRTIME_EXTRA))),
            dtime: u32_at(b, off::DTIME),
            generation: u32_at(b, off::GENERATION),
            file_acl: u64::from(u32_at(b, off::FILE_ACL_LO))
                | (u64::from(u16_at(b, off::FILE_ACL_HIGH)) << 32),
            extra_isize,
            projid: extra(off::PROJID),
            i_block,
            location,
            raw,
        })
    }

    pub fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode)
    }

    /// Permission bits, set-id and sticky bits (the low 12 bits of the mode).
    pub fn permissions(&self) -> u16 {
        self.mode & 0o7777
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }

    pub fn has_flag(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// Allocated space in 512-byte units, whatever unit `i_blocks` uses
    /// (`huge_file` inodes count filesystem blocks).
    pub fn sectors(&self, block_size: u32) -> u64 {
        if self.has_flag(flags::HUGE_FILE) {
            self.blocks_raw.saturating_mul(u64::from(block_size / 512))
        } else {
            self.blocks_raw
        }
    }

    /// Device number `(major, minor)` of a character or block device, decoding
    /// the old 8:8 form in `i_block[0]` or else the new 12:20 form in `i_block[1]`.
    pub fn device(&self) -> Option<(u32, u32)> {
        if !matches!(
            self.file_type(),
            FileType::CharDevice | FileType::BlockDevice
        ) {
            return None;
        }
        let old = u32_at(&self.i_block, 0);
        if old != 0 {
            return Some(((old >> 8) & 0xFF, old & 0xFF));
        }
        let new = u32_at(&self.i_block, 4);
        Some(((new & 0xFFF00) >> 8, (new & 0xFF) | ((new >> 12) & 0xFFF00)))
    }

    /// The bytes after the extra part, where in-inode extended attributes live.
    pub fn xattr_area(&self) -> &[u8] {
        let start = GOOD_OLD_INODE_SIZE + usize::from(self.extra_isize);
        self.raw.get(start..).unwrap_or(&[])
    }

    /// Byte offset of [`Inode::xattr_area`] inside the inode.
    pub fn xattr_area_offset(&self) -> usize {
        GOOD_OLD_INODE_SIZE + usize::from(self.extra_isize)
    }

    /// The checksum that on-disk inode bytes `raw` of `ino` should carry
    /// (metadata_csum): crc32c over inode number, generation and the inode with its
    /// checksum fields zeroed. Returns the full 32 bits; when the inode has no room
    /// for `i_checksum_hi` only the low 16 are stored.
    pub fn compute_checksum(fs_seed: u32, ino: u32, raw: &[u8]) -> u32 {
        let generation = u32_at(raw, off::GENERATION);
        let seed = checksum::inode_seed(fs_seed, ino, generation);
        let mut c = checksum::crc32c(seed, raw.get(..off::CHECKSUM_LO).unwrap_or(&[]));
        c = checksum::crc32c(c, &[0, 0]);
        if raw.len() <= GOOD_OLD_INODE_SIZE {
            return checksum::crc32c(c, raw.get(off::CHECKSUM_LO + 2..).unwrap_or(&[]));
        }
        c = checksum::crc32c(
            c,
            raw.get(off::CHECKSUM_LO + 2..off::CHECKSUM_HI)
                .unwrap_or(&[]),
        );
        if Self::has_checksum_hi(raw) {
            c = checksum::crc32c(c, &[0, 0]);
            c = checksum::crc32c(c, raw.get(off::CHECKSUM_HI + 2..).unwrap_or(&[]));
        } else {
            c = checksum::crc32c(c, raw.get(off::CHECKSUM_HI..).unwrap_or(&[]));
        }
        c
    }

    fn has_checksum_hi(raw: &[u8]) -> bool {
        raw.len() > GOOD_OLD_INODE_SIZE
            && usize::from(u16_at(raw, off::EXTRA_ISIZE)) >= off::CHECKSUM_HI + 2 - 128
    }

    /// The checksum as stored (16 or 32 bits).
    pub fn stored_checksum(&self) -> u32 {
        let lo = u32::from(u16_at(&self.raw, off::CHECKSUM_LO));
        if Self::has_checksum_hi(&self.raw) {
            lo | (u32::from(u16_at(&self.raw, off::CHECKSUM_HI)) << 16)
        } else {
            lo
        }
    }

    pub fn verify_checksum(&self, fs_seed: u32) -> Result<()> {
        let mut computed = Self::compute_checksum(fs_seed, self.ino, &self.raw);
        if !Self::has_checksum_hi(&self.raw) {
            computed &= 0xFFFF;
        }
        let stored = self.stored_checksum();
        if computed != stored {
            return Err(Error::ChecksumMismatch {
                structure: "inode",
                loc: Loc::inode(self.ino),
                stored,
                computed,
            });
        }
        Ok(())
    }

    /// Seed of this inode's extent, directory and xattr-in-inode checksums.
    pub fn checksum_seed(&self, fs_seed: u32) -> u32 {
        checksum::inode_seed(fs_seed, self.ino, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_decode_epoch_and_nanoseconds() {
        // 2038+ : epoch bit 1 set, seconds wrap.
        let t = Timestamp::decode(0x8000_0000, Some((5 << 2) | 1));
        assert_eq!(t.secs, -(1i64 << 31) + (1i64 << 32));
        assert_eq!(t.nsecs, 5);
        assert_eq!(Timestamp::decode(0xFFFF_FFFF, None).secs, -1);
    }

    #[test]
    fn device_numbers_old_and_new() {
        let mut raw = vec![0u8; 256];
        raw[0..2].copy_from_slice(&0x2180u16.to_le_bytes()); // char device
        raw[off::BLOCK..off::BLOCK + 4].copy_from_slice(&0x0104u32.to_le_bytes());
        let i = Inode::parse(12, raw.clone(), (0, 0)).unwrap();
        assert_eq!(i.device(), Some((1, 4)));
        raw[off::BLOCK..off::BLOCK + 4].copy_from_slice(&0u32.to_le_bytes());
        // major 259, minor 300000: minor low 8 bits, major 12 bits, minor high 12 bits.
        let (ma, mi) = (259u32, 300_000u32);
        let enc = (mi & 0xFF) | (ma << 8) | ((mi & !0xFF) << 12);
        raw[off::BLOCK + 4..off::BLOCK + 8].copy_from_slice(&enc.to_le_bytes());
        let i = Inode::parse(12, raw, (0, 0)).unwrap();
        assert_eq!(i.device(), Some((ma, mi)));
    }
}
