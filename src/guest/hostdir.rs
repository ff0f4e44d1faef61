//! A host directory as a read-only [`Filesystem`]: `vmscrub scan DIR` audits an
//! unpacked root filesystem (a chroot, an extracted tarball, a mounted image)
//! with the same catalogue and detectors as an image.
//!
//! Node ids are the host inode numbers (stable while the tree is not changed);
//! the id → path map is filled as directories are listed. Nothing is ever
//! written, and symlinks are never followed (the walk sees them as links).

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::fs::{
    DirEntry, FileKind, Filesystem, FsError, FsResult, FsType, Metadata, NodeId, Timestamp, Xattr,
};

pub struct HostDir {
    root: NodeId,
    paths: RwLock<HashMap<NodeId, PathBuf>>,
}

impl HostDir {
    pub fn open(dir: &Path) -> FsResult<Self> {
        let m = fs::metadata(dir)?;
        if !m.is_dir() {
            return Err(FsError::NotADirectory {
                path: dir.display().to_string(),
            });
        }
        let mut paths = HashMap::new();
        paths.insert(m.ino(), dir.to_path_buf());
        Ok(HostDir {
            root: m.ino(),
            paths: RwLock::new(paths),
        })
    }

    fn path(&self, id: NodeId) -> FsResult<PathBuf> {
        self.paths
            .read()
            .map_err(|_| FsError::Corrupt("host directory map poisoned".into()))?
            .get(&id)
            .cloned()
            .ok_or_else(|| FsError::NotFound {
                path: format!("node {id}"),
            })
    }
}

fn kind_of(t: fs::FileType) -> FileKind {
    if t.is_dir() {
        FileKind::Directory
    } else if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_char_device() {
        FileKind::CharDevice
    } else if t.is_block_device() {
        FileKind::BlockDevice
    } else if t.is_fifo() {
        FileKind::Fifo
    } else if t.is_socket() {
        FileKind::Socket
    } else {
        FileKind::Regular
    }
}

fn ts(sec: i64, nsec: i64) -> Timestamp {
    Timestamp {
        sec,
        nsec: u32::try_from(nsec).unwrap_or(0),
    }
}

impl Filesystem for HostDir {
    /// Not an on-disk format: reported as `directory` through the identity;
    /// this value only satisfies the trait (nothing edits a host directory).
    fn fs_type(&self) -> FsType {
        FsType::Ext4
    }

    fn root(&self) -> NodeId {
        self.root
    }

    fn metadata(&self, id: NodeId) -> FsResult<Metadata> {
        let m = fs::symlink_metadata(self.path(id)?)?;
        let dev = m.rdev();
        let kind = kind_of(m.file_type());
        Ok(Metadata {
            id,
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            nlink: u32::try_from(m.nlink()).unwrap_or(u32::MAX),
            size: m.size(),
            atime: ts(m.atime(), m.atime_nsec()),
            mtime: ts(m.mtime(), m.mtime_nsec()),
            ctime: ts(m.ctime(), m.ctime_nsec()),
            crtime: None,
            rdev: matches!(kind, FileKind::CharDevice | FileKind::BlockDevice).then(|| {
                (
                    u32::try_from((dev >> 8) & 0xfff).unwrap_or(0),
                    u32::try_from((dev & 0xff) | ((dev >> 12) & 0xfff00)).unwrap_or(0),
                )
            }),
        })
    }

    fn read_dir(&self, id: NodeId) -> FsResult<Vec<DirEntry>> {
        let dir = self.path(id)?;
        let mut out = vec![];
        let mut new = vec![];
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let m = fs::symlink_metadata(e.path())?;
            out.push(DirEntry {
                name: e.file_name().into_vec(),
                id: m.ino(),
                kind: kind_of(m.file_type()),
            });
            new.push((m.ino(), e.path()));
        }
        // On-disk order is not meaningful here; sort for stable reports.
        out.sort_by(|a, b| a.name.cmp(&b.name));
        let mut map = self
            .paths
            .write()
            .map_err(|_| FsError::Corrupt("host directory map poisoned".into()))?;
        for (ino, p) in new {
            map.entry(ino).or_insert(p);
        }
        Ok(out)
    }

    fn open(&self, id: NodeId) -> FsResult<Box<dyn Read + Send + '_>> {
        let p = self.path(id)?;
        // Only regular files: opening a FIFO would block, a symlink would be followed.
        if !fs::symlink_metadata(&p)?.file_type().is_file() {
            return Err(FsError::Unsupported(format!(
                "{}: not a regular file",
                p.display()
            )));
        }
        Ok(Box::new(fs::File::open(p)?))
    }

    fn read_link(&self, id: NodeId) -> FsResult<Vec<u8>> {
        Ok(fs::read_link(self.path(id)?)?
            .as_os_str()
            .as_bytes()
            .to_vec())
    }

    fn xattrs(&self, _id: NodeId) -> FsResult<Vec<Xattr>> {
        Ok(vec![])
    }
}
