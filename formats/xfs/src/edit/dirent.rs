//! PLACEHOLDER (replaced by branch xfs-dir).
#![allow(dead_code, unused_variables)]
use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use crate::error::{Error, Result};
use crate::fs::Xfs;
use crate::inode::{FileType, Inode};

pub(crate) struct RemovedEntry {
    pub ino: u64,
    pub file_type: Option<FileType>,
}
pub(crate) fn remove_entry<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    dir: &Inode,
    name: &[u8],
) -> Result<RemovedEntry> {
    Err(Error::refused("placeholder", "dirent"))
}
