//! ext2/ext3/ext4, read at the level of inodes and blocks.
//!
//! vmscrub's own reader: unlike a path-only API it exposes inode numbers, extent
//! trees and block maps, the blocks every inode owns, extended attributes with
//! their placement, directory entries with their on-disk location, bitmaps, group
//! layouts and the journal — what the ext4 editor (same crate, built on this) and
//! the recovery archive need. One module per on-disk structure; each parses and
//! checks its structure and, where it needs more blocks, adds methods to [`Ext4`].
//!
//! Hostile images are normal input: every structure is bounds-checked, every walk
//! over image-supplied chains is bounded (visited sets, depth limits, a file may
//! not map more blocks than the filesystem has), metadata checksums are verified
//! (switch off with [`OpenOptions::verify_checksums`] to inspect damaged images),
//! and unknown or refused features fail [`Ext4::open`] with [`Error::Unsupported`].
//!
//! The reader reads the on-disk state only: with a journal that needs recovery
//! ([`Ext4::needs_recovery`]) it does not replay; [`Ext4::journal_transactions`]
//! lists what a replay would write.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backup;
pub mod bitmap;
pub mod block_group;
pub mod block_map;
pub mod checksum;
pub mod dir;
pub mod dir_entry;
pub mod dir_htree;
pub mod edit;
pub mod error;
pub mod extent;
pub mod features;
pub mod file;
pub mod fs;
pub mod inline_data;
pub mod inode;
pub mod journal;
mod le;
pub mod map;
pub mod superblock;
pub mod witness;
pub mod xattr;

pub use backup::{BackupSuperblock, find_backup};
pub use bitmap::{Bitmap, InodesInUse};
pub use block_group::{GroupDesc, GroupLayout};
pub use dir::{DirBlock, DirBlockKind, ReadDir};
pub use dir_entry::{DirEntry, DirEntryPlace};
pub use dir_htree::Htree;
pub use edit::{
    EditError, EditReport, EditResult, Editor, EditorOptions, KeptLink, Refusal, ReplayStats,
    Shrunk, Staged, TreeRemoved, Unlinked,
};
pub use error::{Error, Loc, Result};
pub use extent::{ExtentNode, ExtentTree};
pub use file::FileReader;
pub use fs::{Ext4, OpenOptions, ROOT_INO};
pub use inode::{FileType, Inode, Timestamp};
pub use journal::{Journal, JournalSuperblock, Transaction};
pub use map::{Extent, FileMap, MetaBlock, MetaKind, OwnedBlocks};
pub use superblock::Superblock;
pub use witness::{Disagreement, FreeSpace, WitnessError};
pub use xattr::{Xattr, XattrEntry, XattrPlace};
