//! Typed errors. Every refusal names what was found, and every corruption names the
//! structure and, where one exists, the byte offset in the file that holds it, so a
//! user can tell "unsupported variant" from "damaged image" from "bad path".

use std::io;

/// Why a VMDK could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum VmdkError {
    /// The host I/O underneath failed (not the image's fault).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// Neither a sparse extent (magic `KDMV`) nor a text descriptor.
    #[error("not a VMDK image: {0}")]
    NotVmdk(String),

    /// A valid VMDK of a kind this reader deliberately does not handle (delta disks,
    /// ESX-only extents, the old COWD format, unknown createTypes, …).
    #[error("unsupported VMDK: {0}")]
    Unsupported(String),

    /// An on-disk structure is damaged or contradicts another one.
    #[error("corrupt VMDK {structure}{}: {detail}", at_offset(*.offset))]
    Corrupt {
        /// What was being parsed, e.g. "sparse extent header of 'disk.vmdk'".
        structure: String,
        /// Byte offset of the structure in its file, when it has one.
        offset: Option<u64>,
        detail: String,
    },

    /// The text descriptor does not parse.
    #[error("bad VMDK descriptor{}: {detail}", at_line(*.line))]
    Descriptor {
        /// 1-based line number, 0 when the problem is not tied to one line.
        line: usize,
        detail: String,
    },

    /// An extent file name the opener would not resolve (absolute path, `..`,
    /// symlink leaving the image's directory, not a regular file, …).
    #[error("extent file {name:?} refused: {reason}")]
    ExtentPathRefused { name: String, reason: String },
}

fn at_offset(offset: Option<u64>) -> String {
    offset.map(|o| format!(" at byte {o}")).unwrap_or_default()
}

fn at_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line})")
    }
}

impl VmdkError {
    pub(crate) fn corrupt(
        structure: impl Into<String>,
        offset: Option<u64>,
        detail: impl Into<String>,
    ) -> Self {
        VmdkError::Corrupt {
            structure: structure.into(),
            offset,
            detail: detail.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        VmdkError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Reads through [`vmscrub_blockdev::ReadAt`] must return `io::Error`; keep the typed
/// error inside so callers can downcast, and pick the kind the trait documents:
/// `InvalidData` for corrupt structures, the host's own kind for host I/O failures.
impl From<VmdkError> for io::Error {
    fn from(e: VmdkError) -> io::Error {
        let kind = match &e {
            VmdkError::Io { source, .. } => source.kind(),
            VmdkError::Unsupported(_) => io::ErrorKind::Unsupported,
            VmdkError::ExtentPathRefused { .. } => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

pub type Result<T, E = VmdkError> = std::result::Result<T, E>;
