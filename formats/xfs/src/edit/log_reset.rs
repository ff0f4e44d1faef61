//! PLACEHOLDER (replaced by branch xfs-dir).
#![allow(dead_code, unused_variables)]
use std::ops::Range;
use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use crate::error::{Error, Result};
use crate::fs::Xfs;

pub(crate) struct LogReset {
    pub cycle: u32,
    pub zero: Vec<Range<u64>>,
}
pub(crate) fn reset_log<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
) -> Result<LogReset> {
    Err(Error::refused("placeholder", "log"))
}
