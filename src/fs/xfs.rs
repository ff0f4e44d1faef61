//! XFS as a [`Filesystem`], over our own reader (`vmscrub-xfs`).
//!
//! Node ids are inode numbers (64-bit on XFS), so hard links share one id and
//! `ls --inode` names the numbers `xfs_db` and `ls -i` show. Metadata comes
//! straight from the inode: nanosecond times (bigtime included), the v5
//! creation time, device numbers.
//!
//! Decisions:
//! - **Reads are streams** over the block map: nothing is loaded whole; holes
//!   and unwritten (preallocated) extents read as zeros.
//! - **`data_ranges`** are the written extents clipped to the size, so a sparse
//!   file is archived sparsely; unwritten extents count as holes.
//! - **xattrs** are named as the kernel names them (`user.`, `trusted.`,
//!   `security.`), POSIX ACLs as `system.posix_acl_*` in the kernel's xattr
//!   form, as the ext4 adapter shows them; parent pointers are left out.
//! - **Directory entry types** come from the entry (ftype) or else the inode;
//!   an inode that cannot be read there is listed as a regular file and the
//!   error surfaces, with its path, when it is read.
//! - **A dirty log is replayed in memory** ([`replayed_view`]), as the ext4
//!   journal is: the adapter is opened over an overlay holding the replayed
//!   sectors, so every verb sees what the guest's next mount would show.
//!   Where the replay cannot be done (a damaged log, unfinished intents, quota
//!   items), the on-disk state is read and the reason said.

use std::io::Read;
use std::ops::Range;
use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, WriteAt};

use crate::journal::View;
use crate::overlay::Overlay;
use vmscrub_xfs::{Error as XfsError, FileType, Fork, Inode, Xfs};

use super::{
    DirEntry, FileKind, Filesystem, FsError, FsResult, FsType, Metadata, NodeId, Timestamp, Xattr,
};

/// The state of the XFS volume on `dev` after its log's replay, held in an
/// in-memory overlay (bounded by the log's size); `dev` itself is only read.
/// [`View::AsIs`] when the log is clean (or the filesystem cannot be opened:
/// the caller's own open then names why).
pub fn replayed_view<D: ReadAt + Clone>(dev: D) -> View<D> {
    let Ok(fs) = Xfs::open(dev.clone()) else {
        return View::AsIs(dev);
    };
    if let Err(e) = fs.log_state() {
        return View::Unreplayable(
            dev,
            format!("the XFS log cannot be read ({e}): what is shown is the on-disk state"),
        );
    }
    match fs.replay_log() {
        Ok(None) => View::AsIs(dev),
        Ok(Some(r)) => {
            let overlay = Arc::new(Overlay::new(dev.clone()));
            for (off, s) in &r.sectors {
                if let Err(e) = overlay.write_all_at(s, *off) {
                    return View::Unreplayable(dev, unreplayable(&e.to_string()));
                }
            }
            View::Replayed(
                overlay,
                format!(
                    "the XFS log needed recovery: {} committed transaction(s) replayed \
                     ({} sector(s)), in memory; the image is unchanged",
                    r.transactions,
                    r.sectors.len()
                ),
            )
        }
        Err(e) => View::Unreplayable(dev, unreplayable(&e.to_string())),
    }
}

fn unreplayable(why: &str) -> String {
    format!(
        "the XFS log needs recovery (the image was taken from a running or crashed system) \
         and cannot be replayed: {why}; this shows the on-disk state, so the most recent \
         changes may be missing"
    )
}

/// An opened XFS filesystem.
pub struct XfsFs<D> {
    fs: Xfs<D>,
}

impl<D: ReadAt> XfsFs<D> {
    /// Opens the filesystem on `dev` (v5 CRCs verified).
    pub fn open(dev: D) -> Result<Self, XfsError> {
        Ok(XfsFs {
            fs: Xfs::open(dev)?,
        })
    }

    /// The reader below, for facts the trait does not carry.
    pub fn inner(&self) -> &Xfs<D> {
        &self.fs
    }

    fn inode(&self, id: NodeId) -> FsResult<Inode> {
        self.fs.inode(id).map_err(|e| map_err(e, id))
    }
}

fn kind_of(t: FileType) -> FileKind {
    match t {
        FileType::Regular => FileKind::Regular,
        FileType::Directory => FileKind::Directory,
        FileType::Symlink => FileKind::Symlink,
        FileType::CharDevice => FileKind::CharDevice,
        FileType::BlockDevice => FileKind::BlockDevice,
        FileType::Fifo => FileKind::Fifo,
        FileType::Socket => FileKind::Socket,
    }
}

fn ts(t: vmscrub_xfs::Timestamp) -> Timestamp {
    Timestamp {
        sec: t.secs,
        nsec: t.nsecs,
    }
}

/// Keeps the reader's typed errors typed where the trait has a variant for
/// them; everything else keeps its message (which names structure and inode).
fn map_err(e: XfsError, id: NodeId) -> FsError {
    match e {
        XfsError::NotFound { path } => FsError::NotFound {
            path: super::display_path(&path),
        },
        XfsError::NotADirectory { inode } => FsError::NotADirectory {
            path: format!("inode {inode}"),
        },
        XfsError::SymlinkLoop { path } => FsError::SymlinkLoop {
            path: super::display_path(&path),
        },
        XfsError::Io { ref source, .. } => {
            FsError::Io(std::io::Error::new(source.kind(), e.to_string()))
        }
        XfsError::Unsupported { .. } | XfsError::NotAFile { .. } => {
            FsError::Unsupported(format!("inode {id}: {e}"))
        }
        other => FsError::Corrupt(other.to_string()),
    }
}

impl<D: ReadAt> Filesystem for XfsFs<D> {
    fn fs_type(&self) -> FsType {
        FsType::Xfs
    }

    fn root(&self) -> NodeId {
        self.fs.root_ino()
    }

    fn metadata(&self, id: NodeId) -> FsResult<Metadata> {
        let i = self.inode(id)?;
        let kind = i.file_type().map(kind_of).ok_or_else(|| {
            FsError::Corrupt(format!("inode {id}: mode {:#o} names no file type", i.mode))
        })?;
        Ok(Metadata {
            id,
            kind,
            mode: u32::from(i.permissions()),
            uid: i.uid,
            gid: i.gid,
            nlink: i.nlink,
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
        let entries = self.fs.read_dir(&dir).map_err(|e| map_err(e, id))?;
        Ok(entries
            .into_iter()
            .map(|e| {
                let t = e
                    .file_type
                    .or_else(|| self.fs.inode(e.ino).ok()?.file_type());
                DirEntry {
                    kind: t.map_or(FileKind::Regular, kind_of),
                    name: e.name,
                    id: e.ino,
                }
            })
            .collect())
    }

    fn open(&self, id: NodeId) -> FsResult<Box<dyn Read + Send + '_>> {
        self.open_at(id, 0)
    }

    fn open_at(&self, id: NodeId, offset: u64) -> FsResult<Box<dyn Read + Send + '_>> {
        use std::io::Seek;
        let i = self.inode(id)?;
        let mut r = self.fs.open_file(i).map_err(|e| map_err(e, id))?;
        r.seek(std::io::SeekFrom::Start(offset))?;
        Ok(Box::new(r))
    }

    fn storage_unit(&self) -> u64 {
        u64::from(self.fs.block_size())
    }

    fn read_link(&self, id: NodeId) -> FsResult<Vec<u8>> {
        let i = self.inode(id)?;
        self.fs.read_link(&i).map_err(|e| map_err(e, id))
    }

    fn xattrs(&self, id: NodeId) -> FsResult<Vec<Xattr>> {
        let i = self.inode(id)?;
        let all = self.fs.xattrs(&i).map_err(|e| map_err(e, id))?;
        Ok(all
            .into_iter()
            .map(|x| Xattr {
                name: x.name,
                value: x.value,
            })
            .collect())
    }

    fn data_ranges(&self, id: NodeId) -> FsResult<Vec<Range<u64>>> {
        let i = self.inode(id)?;
        if i.file_type() != Some(FileType::Regular) {
            return Ok(vec![]);
        }
        let size = i.size;
        let map = self
            .fs
            .block_map(&i, Fork::Data)
            .map_err(|e| map_err(e, id))?;
        let bs = u64::from(self.fs.block_size());
        let mut out: Vec<Range<u64>> = Vec::new();
        for e in map.extents.iter().filter(|e| !e.unwritten) {
            let start = e.offset.saturating_mul(bs);
            let end = e.end().saturating_mul(bs).min(size);
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
