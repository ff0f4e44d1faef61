//! The inode core (`xfs_dinode`): mode, owners, times (with nanoseconds, bigtime
//! and the v3 creation time), sizes, fork formats and extent counts (nrext64
//! widens them), and the two forks' bytes as they sit in the inode's literal
//! area. The forks are decoded elsewhere (`bmap`, `dir`, `attr`, `symlink`).

use crate::be::{bytes_at, u8_at, u16_at, u32_at, u64_at};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::superblock::Superblock;

pub const MAGIC: u16 = 0x494e; // "IN"
pub const CRC_OFFSET: usize = 100;
const V3_CORE: usize = 176;
const V2_CORE: usize = 100;

const FLAGS2_BIGTIME: u64 = 0x08;
/// The inode counts data-fork extents in 64 bits (nrext64).
pub(crate) const FLAGS2_NREXT64: u64 = 0x10;
/// Seconds between the bigtime epoch (the lowest 32-bit time) and 1970.
const BIGTIME_EPOCH_OFFSET: i64 = 1 << 31;

/// How a fork stores its contents (`di_format` / `di_aformat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkFormat {
    /// A device number (device inodes' data fork).
    Dev,
    /// The bytes are inside the inode.
    Local,
    /// An extent list inside the inode.
    Extents,
    /// The root of a bmap B+tree inside the inode.
    Btree,
}

impl ForkFormat {
    fn from_raw(v: u8) -> Option<Self> {
        Some(match v {
            0 => ForkFormat::Dev,
            1 => ForkFormat::Local,
            2 => ForkFormat::Extents,
            3 => ForkFormat::Btree,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Fifo,
    CharDevice,
    Directory,
    BlockDevice,
    Regular,
    Symlink,
    Socket,
}

impl FileType {
    pub fn from_mode(mode: u16) -> Option<Self> {
        Some(match mode & 0o170000 {
            0o010000 => FileType::Fifo,
            0o020000 => FileType::CharDevice,
            0o040000 => FileType::Directory,
            0o060000 => FileType::BlockDevice,
            0o100000 => FileType::Regular,
            0o120000 => FileType::Symlink,
            0o140000 => FileType::Socket,
            _ => return None,
        })
    }

    /// The directory entry file type (`XFS_DIR3_FT_*`), 0 meaning unknown.
    pub fn from_dirent(ft: u8) -> Option<Self> {
        Some(match ft {
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

    pub fn name(self) -> &'static str {
        match self {
            FileType::Fifo => "fifo",
            FileType::CharDevice => "character device",
            FileType::Directory => "directory",
            FileType::BlockDevice => "block device",
            FileType::Regular => "regular file",
            FileType::Symlink => "symbolic link",
            FileType::Socket => "socket",
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nsecs: u32,
}

/// One decoded inode, with its raw bytes for the forks.
#[derive(Debug, Clone)]
pub struct Inode {
    pub ino: u64,
    /// Byte offset of the inode on the device.
    pub offset: u64,
    pub mode: u16,
    pub version: u8,
    pub format: ForkFormat,
    pub attr_format: Option<ForkFormat>,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub crtime: Option<Timestamp>,
    pub size: u64,
    pub nblocks: u64,
    pub nextents: u64,
    pub anextents: u64,
    /// Start of the attribute fork in the literal area, in 8-byte units (0: none).
    pub forkoff: u8,
    pub flags: u16,
    pub flags2: u64,
    raw: Vec<u8>,
    core: usize,
}

impl Inode {
    /// Decodes inode `ino` from its `inode_size` bytes at `offset`.
    pub fn parse(
        sb: &Superblock,
        ino: u64,
        offset: u64,
        raw: Vec<u8>,
        verify: bool,
    ) -> Result<Self> {
        let loc = Loc::inode(ino).with_offset(offset);
        let bad = |d: String| Err(Error::corrupt("inode", loc, d));
        if u16_at(&raw, 0) != MAGIC {
            return bad(format!("magic {:#06x}, not \"IN\"", u16_at(&raw, 0)));
        }
        let version = u8_at(&raw, 4);
        let core = match (sb.has_crc(), version) {
            (true, 3) => V3_CORE,
            (false, 1 | 2) => V2_CORE,
            _ => {
                return bad(format!(
                    "inode version {version} on a v{} filesystem",
                    sb.version
                ));
            }
        };
        if version == 3 {
            checksum::verify(verify, "inode", &raw, CRC_OFFSET, loc)?;
            if u64_at(&raw, 152) != ino {
                return bad(format!("records inode number {}", u64_at(&raw, 152)));
            }
            if verify && bytes_at::<16>(&raw, 160) != sb.metadata_uuid() {
                return bad("belongs to another filesystem (UUID)".into());
            }
        }
        let Some(format) = ForkFormat::from_raw(u8_at(&raw, 5)) else {
            return bad(format!("data fork format {}", u8_at(&raw, 5)));
        };
        let flags2 = if version == 3 { u64_at(&raw, 120) } else { 0 };
        let big = flags2 & FLAGS2_BIGTIME != 0;
        let nrext64 = flags2 & FLAGS2_NREXT64 != 0;
        let forkoff = u8_at(&raw, 82);
        let attr_format = if forkoff == 0 {
            None
        } else {
            match ForkFormat::from_raw(u8_at(&raw, 83)) {
                Some(f) if f != ForkFormat::Dev => Some(f),
                _ => return bad(format!("attribute fork format {}", u8_at(&raw, 83))),
            }
        };
        if usize::from(forkoff) * 8 >= raw.len().saturating_sub(core) {
            return bad(format!("attribute fork offset {forkoff} past the inode"));
        }
        let inode = Inode {
            ino,
            offset,
            mode: u16_at(&raw, 2),
            version,
            format,
            attr_format,
            uid: u32_at(&raw, 8),
            gid: u32_at(&raw, 12),
            nlink: if version == 1 {
                u32::from(u16_at(&raw, 6))
            } else {
                u32_at(&raw, 16)
            },
            atime: time_at(&raw, 32, big),
            mtime: time_at(&raw, 40, big),
            ctime: time_at(&raw, 48, big),
            crtime: (version == 3).then(|| time_at(&raw, 144, big)),
            size: u64_at(&raw, 56),
            nblocks: u64_at(&raw, 64),
            nextents: if nrext64 {
                u64_at(&raw, 24)
            } else {
                u64::from(u32_at(&raw, 76))
            },
            anextents: if nrext64 {
                u64::from(u32_at(&raw, 76))
            } else {
                u64::from(u16_at(&raw, 80))
            },
            forkoff,
            flags: u16_at(&raw, 90),
            flags2,
            raw,
            core,
        };
        inode.check_format(loc)?;
        Ok(inode)
    }

    fn check_format(&self, loc: Loc) -> Result<()> {
        let Some(ft) = self.file_type() else {
            return Err(Error::corrupt(
                "inode",
                loc,
                format!("mode {:#o} names no file type", self.mode),
            ));
        };
        let ok = match ft {
            FileType::CharDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
                self.format == ForkFormat::Dev
            }
            FileType::Regular => matches!(self.format, ForkFormat::Extents | ForkFormat::Btree),
            FileType::Directory | FileType::Symlink => self.format != ForkFormat::Dev,
        };
        if !ok {
            return Err(Error::corrupt(
                "inode",
                loc,
                format!("a {} with data fork format {:?}", ft.name(), self.format),
            ));
        }
        if self.size > i64::MAX as u64 {
            return Err(Error::corrupt("inode", loc, format!("size {}", self.size)));
        }
        Ok(())
    }

    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }

    /// Permission bits with setuid, setgid and sticky.
    pub fn permissions(&self) -> u16 {
        self.mode & 0o7777
    }

    /// The whole inode as read from disk (the editor rewrites from this).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The data fork's bytes (the literal area up to the attribute fork).
    pub fn data_fork(&self) -> &[u8] {
        let end = if self.forkoff == 0 {
            self.raw.len()
        } else {
            self.core + usize::from(self.forkoff) * 8
        };
        self.raw.get(self.core..end).unwrap_or_default()
    }

    /// The attribute fork's bytes, if the inode has one.
    pub fn attr_fork(&self) -> Option<&[u8]> {
        if self.forkoff == 0 {
            return None;
        }
        self.raw.get(self.core + usize::from(self.forkoff) * 8..)
    }

    /// Byte offset of the data fork inside the inode.
    pub fn data_fork_offset(&self) -> usize {
        self.core
    }

    /// Major and minor of a device inode (the fork holds a Linux `sysv` number).
    pub fn device(&self) -> Option<(u32, u32)> {
        match self.file_type()? {
            FileType::CharDevice | FileType::BlockDevice => {
                let dev = u32_at(self.data_fork(), 0);
                Some(((dev >> 18) & 0x3fff, dev & 0x3ffff))
            }
            _ => None,
        }
    }

    /// The file is shared with others through reflink (`XFS_DIFLAG2_REFLINK`).
    pub fn is_reflinked(&self) -> bool {
        self.flags2 & 0x02 != 0
    }
}

/// A timestamp: `be32 seconds, be32 nanoseconds`, or with bigtime one `be64` of
/// nanoseconds since the lowest 32-bit time.
fn time_at(b: &[u8], off: usize, bigtime: bool) -> Timestamp {
    if bigtime {
        let v = u64_at(b, off);
        let secs = (v / 1_000_000_000) as i64 - BIGTIME_EPOCH_OFFSET;
        Timestamp {
            secs,
            nsecs: (v % 1_000_000_000) as u32,
        }
    } else {
        Timestamp {
            secs: i64::from(u32_at(b, off) as i32),
            nsecs: u32_at(b, off + 4).min(999_999_999),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_both_encodings() {
        let mut b = vec![0u8; 16];
        b[0..4].copy_from_slice(&(-1000i32).to_be_bytes());
        b[4..8].copy_from_slice(&5u32.to_be_bytes());
        assert_eq!(
            time_at(&b, 0, false),
            Timestamp {
                secs: -1000,
                nsecs: 5
            }
        );
        let v: u64 = (4_000_000_000u64 + (1 << 31)) * 1_000_000_000 + 7;
        b[0..8].copy_from_slice(&v.to_be_bytes());
        assert_eq!(
            time_at(&b, 0, true),
            Timestamp {
                secs: 4_000_000_000,
                nsecs: 7
            }
        );
    }
}
