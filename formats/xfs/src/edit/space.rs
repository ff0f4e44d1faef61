//! PLACEHOLDER (replaced by branch xfs-space).
#![allow(dead_code, unused_variables)]
use std::ops::Range;
use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use crate::error::{Error, Result};
use crate::fs::Xfs;

#[derive(Debug, Default, Clone)]
pub(crate) struct AgRelease {
    pub extents: Vec<Released>,
    pub inodes: Vec<u32>,
}
#[derive(Debug, Clone, Copy)]
pub(crate) struct Released {
    pub agbno: u32,
    pub len: u32,
    pub owner: u64,
    pub offset: u64,
    pub attr_fork: bool,
    pub bmbt: bool,
    pub unwritten: bool,
}
pub(crate) struct AgReleased {
    pub freed_blocks: u64,
    pub shared_blocks: u64,
    pub freed_inodes: u64,
    pub zero: Vec<Range<u64>>,
}
pub(crate) fn release<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    agno: u32,
    rel: &AgRelease,
) -> Result<AgReleased> {
    Err(Error::refused("placeholder", "space"))
}
pub(crate) fn update_superblock_counters<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
) -> Result<()> {
    Err(Error::refused("placeholder", "space"))
}
pub(crate) fn free_ranges<D: ReadAt>(fs: &Xfs<Arc<Staged<D>>>) -> Result<Vec<Range<u64>>> {
    Err(Error::refused("placeholder", "space"))
}
pub(crate) fn wipe_free_inodes<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
) -> Result<u64> {
    Err(Error::refused("placeholder", "space"))
}
