//! ext2/3/4 as a [`Filesystem`], over our own reader (`vmscrub-ext4`).
//!
//! Node ids are inode numbers, so findings, the recovery archive and `ls --inode`
//! name the same numbers `debugfs` and `ls -i` show. Metadata comes straight from
//! the inode: nanosecond times and the creation time where the inode has the
//! extra fields, device numbers in either encoding.
//!
//! Decisions:
//! - **Reads are streams** over the file map: nothing is loaded whole, holes and
//!   uninitialized extents read as zeros.
//! - **`data_ranges`** are the initialized extents clipped to `i_size`, so a
//!   sparse file (a 50 MB disk image holding 3 MB) is archived as 3 MB.
//!   Uninitialized (preallocated) extents read as zeros and count as holes.
//! - **xattrs** are shown as the kernel shows them to `getxattr`: POSIX ACLs in
//!   the kernel's xattr form (ext4 stores a compact form), and `system.data`
//!   (where inline files keep their tail — not an attribute) left out.
//! - **Directory entry types** come from the entry when the filesystem records
//!   them (`filetype` feature); otherwise the inode is read. An inode that cannot
//!   be read there is listed as a regular file: the error then surfaces, with the
//!   file's path, when its metadata or content is read.
//! - The journal is not replayed here: the caller opens this over an overlay
//!   holding the replay (`crate::journal`), or warns when it cannot be replayed.

use std::io::Read;
use std::ops::Range;

use vmscrub_blockdev::ReadAt;
use vmscrub_ext4::{Error as Ext4Error, Ext4, FileType, Inode};

use super::{
    DirEntry, FileKind, Filesystem, FsError, FsResult, FsType, Metadata, NodeId, Timestamp, Xattr,
};

/// An opened ext2/3/4 filesystem.
pub struct Ext4Fs<D> {
    fs: Ext4<D>,
    kind: FsType,
}

impl<D: ReadAt> Ext4Fs<D> {
    /// Opens the filesystem on `dev` (checksums verified). `kind` is what the probe
    /// called it (ext2, ext3 or ext4), for reports and for choosing an editor.
    pub fn open(dev: D, kind: FsType) -> Result<Self, Ext4Error> {
        Ok(Ext4Fs {
            fs: Ext4::open(dev)?,
            kind,
        })
    }

    /// Opens through a backup superblock (the primary is damaged), read-only.
    pub fn open_backup(
        dev: D,
        kind: FsType,
        backup: vmscrub_ext4::BackupSuperblock,
    ) -> Result<Self, Ext4Error> {
        let opts = vmscrub_ext4::OpenOptions {
            backup: Some(backup),
            ..Default::default()
        };
        Ok(Ext4Fs {
            fs: Ext4::open_with(dev, opts)?,
            kind,
        })
    }

    /// The reader below, for the editor and for facts the trait does not carry.
    pub fn inner(&self) -> &Ext4<D> {
        &self.fs
    }

    fn inode(&self, id: NodeId) -> FsResult<Inode> {
        let ino = ino(id)?;
        self.fs.inode(ino).map_err(|e| map_err(e, id))
    }
}

fn ino(id: NodeId) -> FsResult<u32> {
    u32::try_from(id).map_err(|_| FsError::NotFound {
        path: format!("inode {id}"),
    })
}

fn kind_of(t: FileType) -> Option<FileKind> {
    Some(match t {
        FileType::Regular => FileKind::Regular,
        FileType::Directory => FileKind::Directory,
        FileType::Symlink => FileKind::Symlink,
        FileType::CharDevice => FileKind::CharDevice,
        FileType::BlockDevice => FileKind::BlockDevice,
        FileType::Fifo => FileKind::Fifo,
        FileType::Socket => FileKind::Socket,
        FileType::Unknown => return None,
    })
}

fn ts(t: vmscrub_ext4::Timestamp) -> Timestamp {
    Timestamp {
        sec: t.secs,
        nsec: t.nsecs,
    }
}

/// Keeps the reader's typed errors typed where the trait has a variant for them;
/// everything else keeps its message (which names the structure and inode).
fn map_err(e: Ext4Error, id: NodeId) -> FsError {
    match e {
        Ext4Error::NotFound { path } => FsError::NotFound {
            path: super::display_path(&path),
        },
        Ext4Error::NotADirectory { inode } => FsError::NotADirectory {
            path: format!("inode {inode}"),
        },
        Ext4Error::SymlinkLoop { path } => FsError::SymlinkLoop {
            path: super::display_path(&path),
        },
        Ext4Error::InodeOutOfRange { .. } => FsError::Corrupt(format!("inode {id}: {e}")),
        Ext4Error::Io { ref source, .. } => {
            FsError::Io(std::io::Error::new(source.kind(), e.to_string()))
        }
        Ext4Error::Unsupported { .. } => FsError::Unsupported(e.to_string()),
        other => FsError::Corrupt(other.to_string()),
    }
}

impl<D: ReadAt> Filesystem for Ext4Fs<D> {
    fn fs_type(&self) -> FsType {
        self.kind
    }

    fn root(&self) -> NodeId {
        NodeId::from(vmscrub_ext4::ROOT_INO)
    }

    fn metadata(&self, id: NodeId) -> FsResult<Metadata> {
        let i = self.inode(id)?;
        let kind = kind_of(i.file_type()).ok_or_else(|| {
            FsError::Corrupt(format!("inode {id}: mode {:#o} names no file type", i.mode))
        })?;
        Ok(Metadata {
            id,
            kind,
            mode: u32::from(i.permissions()),
            uid: i.uid,
            gid: i.gid,
            nlink: u32::from(i.links_count),
            size: i.size,
            atime: ts(i.atime),
            mtime: ts(i.mtime),
            ctime: ts(i.ctime),
            crtime: i.crtime.map(ts),
            rdev: i.device(),
        })
    }

    fn read_dir(&self, id: NodeId) -> FsResult<Vec<DirEntry>> {
        let dir = self.inode(id)?;
        let entries = self.fs.read_dir_of(dir).map_err(|e| map_err(e, id))?;
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|e| map_err(e, id))?;
            if e.is_dot_or_dotdot() {
                continue;
            }
            let kind = match e.file_type().and_then(kind_of) {
                Some(k) => k,
                None => self
                    .fs
                    .inode(e.inode)
                    .ok()
                    .and_then(|i| kind_of(i.file_type()))
                    .unwrap_or(FileKind::Regular),
            };
            out.push(DirEntry {
                name: e.name,
                id: NodeId::from(e.inode),
                kind,
            });
        }
        Ok(out)
    }

    fn open(&self, id: NodeId) -> FsResult<Box<dyn Read + Send + '_>> {
        let i = self.inode(id)?;
        if i.file_type() != FileType::Regular {
            return Err(FsError::Unsupported(format!(
                "inode {id} is a {}, not a regular file",
                i.file_type().name()
            )));
        }
        let r = self.fs.open_inode(i).map_err(|e| map_err(e, id))?;
        Ok(Box::new(r))
    }

    fn open_at(&self, id: NodeId, offset: u64) -> FsResult<Box<dyn Read + Send + '_>> {
        use std::io::Seek;
        let i = self.inode(id)?;
        if i.file_type() != FileType::Regular {
            return Err(FsError::Unsupported(format!(
                "inode {id} is a {}, not a regular file",
                i.file_type().name()
            )));
        }
        let mut r = self.fs.open_inode(i).map_err(|e| map_err(e, id))?;
        r.seek(std::io::SeekFrom::Start(offset))?;
        Ok(Box::new(r))
    }

    fn storage_unit(&self) -> u64 {
        u64::from(self.fs.block_size())
    }

    fn read_link(&self, id: NodeId) -> FsResult<Vec<u8>> {
        let i = self.inode(id)?;
        self.fs.readlink_of(&i).map_err(|e| map_err(e, id))
    }

    fn xattrs(&self, id: NodeId) -> FsResult<Vec<Xattr>> {
        let i = self.inode(id)?;
        let all = self.fs.xattrs_of(&i).map_err(|e| map_err(e, id))?;
        Ok(all
            .into_iter()
            .filter(|x| x.name != b"system.data")
            .map(|x| {
                let value = if x.name == b"system.posix_acl_access"
                    || x.name == b"system.posix_acl_default"
                {
                    vmscrub_ext4::xattr::acl_to_xattr(&x.value).unwrap_or(x.value)
                } else {
                    x.value
                };
                Xattr {
                    name: x.name,
                    value,
                }
            })
            .collect())
    }

    /// The reader's own resolution: it stops scanning a directory at the
    /// match and reads no inode for the names it passes (the trait's default
    /// lists whole directories). `..` is the on-disk entry, so after a symlink
    /// it leads to the physical parent, as in the kernel.
    fn lookup(&self, path: &[u8]) -> FsResult<NodeId> {
        let shown = || super::display_path(path);
        match self.fs.lookup(path, false) {
            Ok(ino) => Ok(NodeId::from(ino)),
            Err(Ext4Error::NotFound { .. }) => Err(FsError::NotFound { path: shown() }),
            Err(Ext4Error::NotADirectory { .. }) => Err(FsError::NotADirectory { path: shown() }),
            Err(Ext4Error::SymlinkLoop { .. }) => Err(FsError::SymlinkLoop { path: shown() }),
            Err(e) => Err(map_err(e, NodeId::from(vmscrub_ext4::ROOT_INO))),
        }
    }

    fn data_ranges(&self, id: NodeId) -> FsResult<Vec<Range<u64>>> {
        let i = self.inode(id)?;
        let size = i.size;
        if i.file_type() != FileType::Regular {
            return Ok(vec![]);
        }
        if !self.fs.has_block_map(&i) {
            // Inline data: the bytes live in the inode.
            return Ok(std::iter::once(0..size).filter(|r| !r.is_empty()).collect());
        }
        let map = self.fs.file_map(&i).map_err(|e| map_err(e, id))?;
        let bs = u64::from(self.fs.block_size());
        let mut out: Vec<Range<u64>> = Vec::new();
        for e in map.extents.iter().filter(|e| !e.uninit) {
            let start = u64::from(e.logical).saturating_mul(bs);
            let end = e.logical_end().saturating_mul(bs).min(size);
            if start >= end {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => out.push(start..end),
            }
        }
        Ok(out)
    }
}
