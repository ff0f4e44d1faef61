//! The XFS editor: removes files, symlinks, special files and trees, and
//! shrinks files in place, on a staged view of the device (nothing is written
//! before commit), keeping every structure `xfs_repair -n` checks consistent.
//!
//! Module map (one structure per module):
//! - `inode_raw`: an inode's bytes, edited field by field, CRC on write.

// Used by the editor as it lands, module by module.
#[allow(dead_code)]
pub(crate) mod ag_state;
#[allow(dead_code)]
pub(crate) mod btree_build;
#[allow(dead_code)]
pub(crate) mod free_space;
#[allow(dead_code)]
pub(crate) mod inode_raw;
#[allow(dead_code)]
pub(crate) mod inodes;
#[allow(dead_code)]
pub(crate) mod rmap_records;
#[allow(dead_code)]
pub(crate) mod space;
#[allow(dead_code)]
pub(crate) mod space_records;
#[cfg(test)]
mod space_tests;
#[cfg(test)]
mod test_harness;
