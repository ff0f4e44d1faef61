//! The read side of every filesystem vmscrub understands, as one trait.
//!
//! Scan, plan, the recovery archive and verification all see filesystems through
//! [`Filesystem`]: walk with stable node identity, stat, stream file contents, read
//! xattrs and link targets. Changing a filesystem is not part of this trait: each
//! filesystem has its own editor (the ext4 editor, the FAT scrubber) that works on
//! the overlay, because what "removed so nothing survives" means is specific to the
//! on-disk format.
//!
//! Paths are byte strings (`&[u8]`), never `str`: Linux file names are bytes, and a
//! secret in a file with a non-UTF-8 name must still be found and removed.

pub mod ext4;
pub mod fat;
pub mod hostdir;
pub mod walk;
pub mod xfs;

use std::fmt;
use std::io::Read;

/// Identity of a file inside one filesystem, stable for the life of the opened
/// filesystem: the inode number on ext4 and XFS; on FAT (no inodes), a value derived from
/// the position of the file's directory entry. Hard links share one id.
pub type NodeId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileKind {
    /// The `ls -l` type letter.
    pub fn letter(self) -> char {
        match self {
            FileKind::Regular => '-',
            FileKind::Directory => 'd',
            FileKind::Symlink => 'l',
            FileKind::CharDevice => 'c',
            FileKind::BlockDevice => 'b',
            FileKind::Fifo => 'p',
            FileKind::Socket => 's',
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

/// What `stat` says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub id: NodeId,
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    /// Logical size in bytes (for symlinks, the target's length).
    pub size: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub crtime: Option<Timestamp>,
    /// Major and minor number of a device node.
    pub rdev: Option<(u32, u32)>,
}

/// One name in a directory (`.` and `..` are never returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub id: NodeId,
    pub kind: FileKind,
}

/// An extended attribute, full name (`user.foo`, `security.selinux`,
/// `system.posix_acl_access`) and raw value.
#[derive(Clone, PartialEq, Eq)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl fmt::Debug for Xattr {
    // Values can be secrets (user.* can hold anything): show their size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Xattr({}, {} bytes)",
            String::from_utf8_lossy(&self.name),
            self.value.len()
        )
    }
}

/// Errors of the filesystem layer. Corruption is reported with the path or node it
/// was met at, so a user knows which file of a broken image is unreadable.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path}: not a directory")]
    NotADirectory { path: String },
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop { path: String },
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type FsResult<T> = Result<T, FsError>;

/// Which on-disk format a filesystem is, for reports and for choosing an editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    Ext2,
    Ext3,
    Ext4,
    Vfat,
    Xfs,
    /// A host directory (`scan DIR`): an unpacked root, read through the host's
    /// kernel. Never edited in place.
    Directory,
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
            FsType::Vfat => "vfat",
            FsType::Xfs => "xfs",
            FsType::Directory => "directory",
        })
    }
}

/// Read access to one filesystem. `Send + Sync` so the scanner can read files on
/// every core at once.
pub trait Filesystem: Send + Sync {
    fn fs_type(&self) -> FsType;

    fn root(&self) -> NodeId;

    fn metadata(&self, id: NodeId) -> FsResult<Metadata>;

    /// Every entry of directory `id` except `.` and `..`, in on-disk order.
    fn read_dir(&self, id: NodeId) -> FsResult<Vec<DirEntry>>;

    /// A stream of the file's bytes (holes read as zeros). Does not load the file
    /// into memory: files can be larger than RAM.
    fn open(&self, id: NodeId) -> FsResult<Box<dyn Read + Send + '_>>;

    fn read_link(&self, id: NodeId) -> FsResult<Vec<u8>>;

    fn xattrs(&self, id: NodeId) -> FsResult<Vec<Xattr>>;

    /// Byte ranges of the file that hold data (everything else is a hole), so the
    /// archive can store sparse files sparsely. Default: the whole file.
    fn data_ranges(&self, id: NodeId) -> FsResult<Vec<std::ops::Range<u64>>> {
        let size = self.metadata(id)?.size;
        Ok(std::iter::once(0..size).filter(|r| !r.is_empty()).collect())
    }

    /// A stream of the file's bytes from `offset` on, so a sparse file's data
    /// segments can be read without reading through its holes. Default: open
    /// and skip.
    fn open_at(&self, id: NodeId, offset: u64) -> FsResult<Box<dyn Read + Send + '_>> {
        let mut r = self.open(id)?;
        std::io::copy(&mut (&mut r).take(offset), &mut std::io::sink())?;
        Ok(r)
    }

    /// The size of the pieces a file's data is stored in on disk, each starting
    /// at a multiple of it from the volume's start (ext4: the block size; FAT:
    /// the sector size, since clusters start on sectors). The scrub's residual
    /// sweep hashes removed content and the output's raw bytes in these units.
    fn storage_unit(&self) -> u64 {
        4096
    }

    /// Finds `path` (absolute within this filesystem, `/`-separated bytes) without
    /// following symlinks in its last component. Intermediate symlinks are
    /// followed, relative to this filesystem's root, a bounded number of times.
    fn lookup(&self, path: &[u8]) -> FsResult<NodeId> {
        walk::resolve(self, path, false)
    }
}

/// Renders a path for messages: valid UTF-8 as is, other bytes as `\xNN`.
pub fn display_path(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}
