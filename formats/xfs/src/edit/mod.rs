//! The XFS editor: removes files, symlinks, special files and trees, and
//! shrinks files in place, on a staged view of the device (nothing is written
//! before commit), keeping every structure `xfs_repair -n` checks consistent.
//!
//! Module map (one structure per module):
//! - `inode_raw`: an inode's bytes, edited field by field, CRC on write.

// Used by the editor as it lands, module by module.
#[allow(dead_code)]
pub(crate) mod inode_raw;

mod dir_data;
mod dir_free;
mod dir_index;
mod dir_lookup;
mod dir_sf;
#[allow(dead_code)]
pub(crate) mod dirent;
#[allow(dead_code)]
pub(crate) mod log_reset;
#[cfg(test)]
mod test_image;
