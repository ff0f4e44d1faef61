//! XFS, read at the level of inodes and blocks.
//!
//! vmscrub's own reader, in the style of `vmscrub-ext4`: it exposes inode
//! numbers, block maps (extent lists and bmap B+trees), directory entries and
//! attributes with their on-disk places, AG headers and the log's state — what
//! an editor needs to build on. One module per on-disk structure; each parses
//! and checks its structure and, where it needs more blocks, adds methods to
//! [`Xfs`].
//!
//! Hostile images are normal input: every structure is bounds-checked, every
//! walk over image-supplied chains is bounded (visited sets, depth limits,
//! extent maps checked sorted and inside the filesystem), v5 metadata CRCs and
//! owners are verified (switch off with [`OpenOptions::verify_checksums`] to
//! read damaged images), and what this reader cannot read right (a realtime
//! device, an external log, unknown incompatible features) fails [`Xfs::open`]
//! with [`Error::Unsupported`].
//!
//! The reader reads the device it is given: [`Xfs::log_state`] says whether the
//! log holds transactions a mount would replay first, and [`Xfs::replay_log`]
//! replays them into sectors for the caller to lay over the device (an
//! overlay), or says why it cannot.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod ag;
pub mod agbtree;
pub mod attr;
mod be;
pub mod bmap;
pub mod checksum;
pub mod dir;
pub mod edit;
pub mod error;
pub mod file;
pub mod fs;
pub mod inode;
pub mod log;
pub mod superblock;
pub mod symlink;

pub use ag::{Agf, Agi};
pub use agbtree::{AgTree, FreeExtent, InodeChunk, Refcount, Rmap};
pub use attr::{AttrPlace, Xattr};
pub use bmap::{BlockMap, Extent, Fork};
pub use dir::{DirEntry, EntryPlace};
pub use edit::{EditReport, Editor, EditorOptions, KeptLink, Shrunk, TreeRemoved, Unlinked};
pub use error::{Error, Loc, Result};
pub use file::FileReader;
pub use fs::{OpenOptions, Xfs};
pub use inode::{FileType, ForkFormat, Inode, Timestamp};
pub use log::{LogState, Replayed};
pub use superblock::Superblock;
