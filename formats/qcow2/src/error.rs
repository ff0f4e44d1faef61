//! Everything that can go wrong opening or reading a qcow2 image.
//!
//! Two families: *refusals* (a valid image using a feature this reader does not
//! implement — encryption, external data files, subclusters, unknown incompatible
//! features) and *corruption* (a structure that contradicts the format or the file it
//! lives in). Both name the structure and, where there is one, the offset, so a user
//! looking at a hostile or damaged image can see what tripped the reader.

use std::io;

/// A qcow2 error. Converted into an `io::Error` (kind `Unsupported` for refusals,
/// `InvalidData` for corruption, the original kind for I/O failures) when it crosses
/// the [`vmscrub_blockdev::ReadAt`] boundary; callers get it back with
/// [`Error::from_io`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The container (or backing) device failed underneath us.
    #[error("I/O error reading {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("not a qcow2 image: magic is {found:02x?}, expected \"QFI\\xfb\"")]
    BadMagic { found: [u8; 4] },

    #[error("the file is too short for a qcow2 header: {size} bytes, need at least {need}")]
    TooShort { size: u64, need: u64 },

    #[error("unsupported qcow2 version {0} (this reader supports 2 and 3)")]
    UnsupportedVersion(u32),

    /// A header field out of range or inconsistent with another one.
    #[error("invalid qcow2 header: {field} = {value:#x}: {why}")]
    HeaderField {
        field: &'static str,
        value: u64,
        why: String,
    },

    /// A header extension that does not fit where it is, or is malformed.
    #[error("invalid qcow2 header extension {kind:#010x} at file offset {offset:#x}: {why}")]
    HeaderExtension { kind: u32, offset: u64, why: String },

    #[error(
        "the image is encrypted (crypt_method {method}: {name}); encrypted qcow2 is not supported"
    )]
    Encrypted { method: u32, name: &'static str },

    #[error("the image keeps its data in an external data file{}; external data files are not supported",
        name.as_deref().map(|n| format!(" ({n:?})")).unwrap_or_default())]
    ExternalDataFile { name: Option<String> },

    #[error(
        "the image uses extended L2 entries (subclusters, incompatible feature bit 4); not supported"
    )]
    ExtendedL2,

    /// Incompatible feature bits this reader does not know: the spec says to refuse.
    #[error("the image uses unknown incompatible features {bits:#x}{}; refusing to read it",
        if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) })]
    UnknownIncompatibleFeatures { bits: u64, names: Vec<String> },

    #[error("unknown compression type {0} (known: 0 = zlib, 1 = zstd)")]
    UnknownCompressionType(u8),

    /// The header names a backing file, but `open` got no backing device.
    #[error(
        "the image has a backing file ({name:?}) but no backing device was given; \
             open it (or opt in to reading unallocated clusters as zeros)"
    )]
    MissingBacking { name: String },

    /// `open` got a backing device, but the header names no backing file.
    #[error("a backing device was given but the image names no backing file")]
    UnexpectedBacking,

    /// The active L1 table, or one of its entries.
    #[error("corrupt L1 table: entry {index} ({entry:#018x}): {why}")]
    L1Entry { index: u64, entry: u64, why: String },

    /// An L2 entry: `guest` is the virtual-disk offset of the cluster it maps.
    #[error(
        "corrupt L2 entry for guest offset {guest:#x} (L2 table at {l2_offset:#x}, entry {index}, {entry:#018x}): {why}"
    )]
    L2Entry {
        guest: u64,
        l2_offset: u64,
        index: u64,
        entry: u64,
        why: String,
    },

    /// A table or data range that does not lie inside the container file.
    #[error(
        "{what} at file offset {offset:#x} (+{len:#x}) lies past the end of the file ({file_size:#x} bytes)"
    )]
    PastEof {
        what: String,
        offset: u64,
        len: u64,
        file_size: u64,
    },

    /// A compressed cluster that does not decompress to exactly one cluster.
    #[error(
        "compressed cluster for guest offset {guest:#x} ({compression}, {len} bytes at file offset {host:#x}): {why}"
    )]
    Decompress {
        guest: u64,
        host: u64,
        len: u64,
        compression: &'static str,
        why: String,
    },

    /// The backing chain helper: a link could not be opened or makes no sense.
    #[error("backing chain: {path}: {why}")]
    Chain { path: String, why: String },

    /// The backing chain helper: a qcow2 backing image failed to open.
    #[error("backing image {path}: {source}")]
    InBacking {
        path: String,
        #[source]
        source: Box<Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn field(field: &'static str, value: u64, why: impl Into<String>) -> Self {
        Error::HeaderField {
            field,
            value,
            why: why.into(),
        }
    }

    /// True for images that are valid but use a feature this reader refuses.
    pub fn is_unsupported(&self) -> bool {
        if let Error::InBacking { source, .. } = self {
            return source.is_unsupported();
        }
        matches!(
            self,
            Error::UnsupportedVersion(_)
                | Error::Encrypted { .. }
                | Error::ExternalDataFile { .. }
                | Error::ExtendedL2
                | Error::UnknownIncompatibleFeatures { .. }
                | Error::UnknownCompressionType(_)
        )
    }

    /// Recovers the qcow2 error from an `io::Error` returned through `ReadAt`.
    pub fn from_io(err: &io::Error) -> Option<&Error> {
        err.get_ref().and_then(|e| e.downcast_ref::<Error>())
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Io { source, .. } => source.kind(),
            e if e.is_unsupported() => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
