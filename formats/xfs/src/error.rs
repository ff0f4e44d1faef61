//! Typed errors. Every variant names the on-disk structure and, where one is known,
//! the inode and the byte offset on the device, so a message about a hostile image
//! points at the bytes.

use std::fmt;
use std::io;

/// Where a problem was found: an inode, a byte offset on the device, both or neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loc {
    pub inode: Option<u64>,
    /// Byte offset of the structure on the device.
    pub offset: Option<u64>,
}

impl Loc {
    pub const NONE: Loc = Loc {
        inode: None,
        offset: None,
    };

    pub fn inode(ino: u64) -> Self {
        Loc {
            inode: Some(ino),
            offset: None,
        }
    }

    pub fn at(offset: u64) -> Self {
        Loc {
            inode: None,
            offset: Some(offset),
        }
    }

    /// The same place, with the byte offset filled in.
    pub fn with_offset(self, offset: u64) -> Self {
        Loc {
            offset: Some(offset),
            ..self
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.inode, self.offset) {
            (Some(i), Some(o)) => write!(f, " (inode {i}, byte {o})"),
            (Some(i), None) => write!(f, " (inode {i})"),
            (None, Some(o)) => write!(f, " (byte {o})"),
            (None, None) => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device below failed (or the filesystem claims bytes past its end).
    #[error("I/O error reading {what} at byte offset {offset}: {source}")]
    Io {
        what: &'static str,
        offset: u64,
        #[source]
        source: io::Error,
    },

    /// A structure holds values that cannot be right.
    #[error("corrupt XFS {what}{loc}: {detail}")]
    Corrupt {
        what: &'static str,
        loc: Loc,
        detail: String,
    },

    /// A v5 metadata CRC does not match the bytes it covers.
    #[error("XFS {structure} checksum mismatch{loc}: stored {stored:#x}, computed {computed:#x}")]
    ChecksumMismatch {
        structure: &'static str,
        loc: Loc,
        stored: u32,
        computed: u32,
    },

    /// The filesystem uses something this reader refuses rather than guesses at.
    #[error("unsupported XFS feature: {feature}")]
    Unsupported { feature: String },

    /// The editor met something it does not change (a form, a feature, a tree
    /// that would need to grow) and stopped before writing anything.
    #[error("the XFS editor refuses: {structure}: {why}")]
    Refused {
        structure: &'static str,
        why: String,
    },

    /// A path component that does not exist.
    #[error("no such file or directory: {}", String::from_utf8_lossy(path))]
    NotFound { path: Vec<u8> },

    /// A directory operation on something that is not a directory.
    #[error("inode {inode} is not a directory")]
    NotADirectory { inode: u64 },

    /// `readlink` on something that is not a symlink.
    #[error("inode {inode} is not a symbolic link")]
    NotASymlink { inode: u64 },

    /// A content read on something that holds no content (device, fifo, socket, directory).
    #[error("inode {inode} has no readable content ({kind})")]
    NotAFile { inode: u64, kind: &'static str },

    /// Symlink resolution went deeper than the bound (a loop, or a chain too long).
    #[error(
        "too many levels of symbolic links resolving {}",
        String::from_utf8_lossy(path)
    )]
    SymlinkLoop { path: Vec<u8> },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn corrupt(what: &'static str, loc: Loc, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            loc,
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(feature: impl Into<String>) -> Self {
        Error::Unsupported {
            feature: feature.into(),
        }
    }

    pub(crate) fn refused(structure: &'static str, why: impl Into<String>) -> Self {
        Error::Refused {
            structure,
            why: why.into(),
        }
    }

    /// True for errors that say the image is damaged (corrupt structure or bad
    /// checksum), as opposed to I/O, usage or unsupported-feature errors.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. } | Error::ChecksumMismatch { .. } | Error::SymlinkLoop { .. }
        )
    }
}
