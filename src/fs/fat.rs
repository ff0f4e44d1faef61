//! FAT12/16/32 as a [`Filesystem`], over our own reader (`vmscrub-fat`).
//!
//! FAT has no owners, permissions, inodes or links; the adapter shows what a
//! Linux `vfat` mount shows, so a report or an archive of an ESP reads the way the
//! running guest sees it:
//!
//! - **Node ids** are the byte offset of the file's short directory entry in the
//!   volume (the crate's `NodeId`); the root is 0. Stable for the life of the file.
//! - **Mode**: directories `0755`, files `0644` — a mount with the usual
//!   `umask=022` and without execute bits on data files (`fmask=0133`,
//!   `dmask=0022`); the kernel's bare default also sets `x` on files, which says
//!   nothing about FAT content and would make every ESP file look executable. The
//!   read-only attribute drops the write bits of files (`0444`); on directories it
//!   is ignored, as the kernel does without `rodir` (Windows uses it there to mark
//!   customized folders).
//! - **Owner** uid 0, gid 0 (a mount without `uid=`/`gid=`, as root).
//! - **Links**: 1 for files; `2 + subdirectories` for directories, as the kernel
//!   counts them.
//! - **Sizes**: files as stored; directories their allocated bytes (clusters ×
//!   cluster size, the FAT12/16 root its fixed region), as the kernel reports.
//! - **Times** as the crate converts them (the stored local time read as UTC):
//!   `mtime` the modification time, `ctime` the same (FAT keeps no change time;
//!   Linux shows mtime), `atime` the access date at midnight, `crtime` the
//!   creation time with its 10 ms part. An unset or invalid time shows as the FAT
//!   epoch, 1980-01-01 00:00:00 (`crtime`: none); the root, which has no entry,
//!   shows 1970-01-01.
//! - **Lookups are case-insensitive**, like FAT itself (`/efi/boot/bootx64.efi`
//!   finds `/EFI/BOOT/BOOTX64.EFI`): see `FatFs::lookup`.
//! - No symlinks, devices or extended attributes exist on FAT.

use std::io::Read;

use vmscrub_blockdev::ReadAt;
use vmscrub_fat::{FatError, FatFs, FatTime, ROOT};

use super::{
    DirEntry, FileKind, Filesystem, FsError, FsResult, FsType, Metadata, NodeId, Timestamp, Xattr,
};

/// 1980-01-01T00:00:00Z, the earliest time FAT can store.
pub const FAT_EPOCH: i64 = 315_532_800;

/// An opened FAT volume.
pub struct FatAdapter<D> {
    fs: FatFs<D>,
}

impl<D: ReadAt> FatAdapter<D> {
    pub fn open(dev: D) -> Result<Self, FatError> {
        Ok(FatAdapter {
            fs: FatFs::open(dev)?,
        })
    }

    /// The reader below, for the scrubbing editor.
    pub fn inner(&self) -> &FatFs<D> {
        &self.fs
    }

    /// Allocated bytes and link count of a directory, as the kernel reports them.
    fn dir_size_and_links(&self, id: NodeId) -> (u64, u32) {
        let g = self.fs.geometry();
        let size = match self.fs.dir_chain(id) {
            Ok(c) if c.is_empty() && id == ROOT => u64::from(g.root_entries) * 32,
            Ok(c) => u64::from(c.len()) * u64::from(g.cluster_size),
            Err(_) => 0,
        };
        let subdirs = self
            .fs
            .read_dir(id)
            .map(|es| es.iter().filter(|e| e.node.is_dir).count())
            .unwrap_or(0);
        (
            size,
            u32::try_from(subdirs).unwrap_or(u32::MAX).saturating_add(2),
        )
    }
}

fn map_err(e: FatError) -> FsError {
    match e {
        FatError::NotFound { path } => FsError::NotFound { path },
        FatError::NotADirectory { path } => FsError::NotADirectory { path },
        FatError::Read { ref source, .. } => {
            FsError::Io(std::io::Error::new(source.kind(), e.to_string()))
        }
        other => FsError::Corrupt(other.to_string()),
    }
}

fn time_or_epoch(t: &FatTime) -> Timestamp {
    match t.to_unix() {
        Some((sec, nsec)) => Timestamp { sec, nsec },
        None => Timestamp {
            sec: FAT_EPOCH,
            nsec: 0,
        },
    }
}

/// The mode a `vfat` mount shows (see the module doc).
pub fn vfat_mode(is_dir: bool, read_only: bool) -> u32 {
    match (is_dir, read_only) {
        (true, _) => 0o755,
        (false, false) => 0o644,
        (false, true) => 0o444,
    }
}

impl<D: ReadAt> Filesystem for FatAdapter<D> {
    fn fs_type(&self) -> FsType {
        FsType::Vfat
    }

    fn root(&self) -> NodeId {
        ROOT
    }

    fn metadata(&self, id: NodeId) -> FsResult<Metadata> {
        let n = self.fs.node(id).map_err(map_err)?;
        let (size, nlink) = if n.is_dir {
            self.dir_size_and_links(id)
        } else {
            (u64::from(n.size), 1)
        };
        let (mtime, atime) = if id == ROOT {
            (Timestamp::default(), Timestamp::default())
        } else {
            (time_or_epoch(&n.modified), time_or_epoch(&n.accessed))
        };
        Ok(Metadata {
            id,
            kind: if n.is_dir {
                FileKind::Directory
            } else {
                FileKind::Regular
            },
            mode: vfat_mode(n.is_dir, n.attributes.read_only()),
            uid: 0,
            gid: 0,
            nlink,
            size,
            atime,
            mtime,
            ctime: mtime,
            crtime: n
                .created
                .to_unix()
                .map(|(sec, nsec)| Timestamp { sec, nsec }),
            rdev: None,
        })
    }

    fn read_dir(&self, id: NodeId) -> FsResult<Vec<DirEntry>> {
        Ok(self
            .fs
            .read_dir(id)
            .map_err(map_err)?
            .into_iter()
            .map(|e| DirEntry {
                id: e.node.id,
                kind: if e.node.is_dir {
                    FileKind::Directory
                } else {
                    FileKind::Regular
                },
                name: e.name,
            })
            .collect())
    }

    fn open(&self, id: NodeId) -> FsResult<Box<dyn Read + Send + '_>> {
        let n = self.fs.node(id).map_err(map_err)?;
        if n.is_dir {
            return Err(FsError::Unsupported(format!(
                "node {id:#x} is a directory, not a regular file"
            )));
        }
        Ok(Box::new(self.fs.open_file(id).map_err(map_err)?))
    }

    fn storage_unit(&self) -> u64 {
        u64::from(self.fs.geometry().bytes_per_sector)
    }

    fn read_link(&self, id: NodeId) -> FsResult<Vec<u8>> {
        Err(FsError::Unsupported(format!(
            "node {id:#x}: FAT has no symbolic links"
        )))
    }

    fn xattrs(&self, _id: NodeId) -> FsResult<Vec<Xattr>> {
        Ok(vec![])
    }

    /// FAT files have no holes: every byte up to the size is in a cluster.
    fn data_ranges(&self, id: NodeId) -> FsResult<Vec<std::ops::Range<u64>>> {
        let n = self.fs.node(id).map_err(map_err)?;
        if n.is_dir || n.size == 0 {
            return Ok(vec![]);
        }
        Ok(std::iter::once(0..u64::from(n.size)).collect())
    }

    /// Case-insensitive, like FAT (the trait's default compares bytes).
    fn lookup(&self, path: &[u8]) -> FsResult<NodeId> {
        let shown = || super::display_path(path);
        match self.fs.lookup(path) {
            Ok(n) => Ok(n.id),
            Err(FatError::NotFound { .. }) => Err(FsError::NotFound { path: shown() }),
            Err(FatError::NotADirectory { .. }) => Err(FsError::NotADirectory { path: shown() }),
            Err(e) => Err(map_err(e)),
        }
    }
}
