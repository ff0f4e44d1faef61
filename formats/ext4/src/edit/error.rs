//! What the editor answers when it will not (or cannot) make a change.
//!
//! Every refusal is decided before a byte reaches the device: the editor stages
//! all changes in memory and writes only at commit, so an `Err` from any call
//! before [`crate::edit::Editor::commit`] leaves the device byte-identical.

use std::io;

use crate::error::Error;

/// Why the editor refuses a whole filesystem. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the journal holds transactions that were never applied (needs_recovery) and journal replay is off: \
         enable replay, or run `e2fsck -fy` on a copy of the image first"
    )]
    NeedsRecovery,
    #[error(
        "the filesystem is marked as having errors: run `e2fsck -f` on a copy of the image first"
    )]
    ErrorsRecorded,
    #[error(
        "the filesystem was not cleanly unmounted and has no journal to replay: run `e2fsck -f` on a copy of the image first"
    )]
    NotClean,
    #[error(
        "inodes are waiting on the orphan list ({detail}): run `e2fsck -f` on a copy of the image first"
    )]
    Orphans { detail: String },
    #[error(
        "the journal was aborted (s_errno {errno}): run `e2fsck -f` on a copy of the image first"
    )]
    JournalAborted { errno: i32 },
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// Reading or validating a structure failed: corrupt metadata, a checksum
    /// mismatch, a missing path, an I/O error below.
    #[error(transparent)]
    Read(#[from] Error),

    /// The filesystem as a whole is in a state the editor does not edit.
    #[error("refusing to edit: {0}")]
    Refused(#[from] Refusal),

    /// A feature whose structures the editor cannot keep consistent.
    #[error("cannot edit a filesystem with {feature}")]
    Unsupported { feature: String },

    /// Writing the staged changes failed (only at commit).
    #[error("I/O error writing {what} at byte offset {offset}: {source}")]
    Write {
        what: &'static str,
        offset: u64,
        #[source]
        source: io::Error,
    },

    #[error("{} is a directory (use remove_tree)", show(path))]
    IsADirectory { path: Vec<u8> },

    #[error("{} is a {kind}, not a regular file", show(path))]
    NotARegularFile { path: Vec<u8>, kind: &'static str },

    /// The root, `.`/`..`, `lost+found` at the root, or an inode the filesystem
    /// reserves for itself (journal, resize, quota, orphan file).
    #[error("{} cannot be removed: {why}", show(path))]
    Protected { path: Vec<u8>, why: &'static str },

    #[error(
        "new content of {} is {len} bytes, longer than the {size} bytes it replaces",
        show(path)
    )]
    ContentTooLong { path: Vec<u8>, len: u64, size: u64 },

    /// Rewriting would need a block the file does not have (a hole, or inline
    /// data that would have to grow): the editor never allocates.
    #[error(
        "rewriting {} would need new space ({detail}); the editor only shrinks files",
        show(path)
    )]
    NeedsAllocation { path: Vec<u8>, detail: String },
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

pub type EditResult<T> = std::result::Result<T, EditError>;

impl EditError {
    /// True when the image itself is damaged (as opposed to a refusal or a usage error).
    pub fn is_corruption(&self) -> bool {
        matches!(self, EditError::Read(e) if e.is_corruption())
    }

    pub(crate) fn unsupported(feature: impl Into<String>) -> Self {
        EditError::Unsupported {
            feature: feature.into(),
        }
    }
}
