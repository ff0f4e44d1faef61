//! What can go wrong writing a qcow2 image.
//!
//! Three families: the options (refused before a byte is written), the caller
//! breaking the writer's contract (clusters out of order, wrong lengths — a bug
//! in the pipeline feeding it, reported rather than written as a broken image),
//! and the output itself (I/O errors, a file qcow2 cannot address).

use std::io;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The output failed underneath us (disk full, file-size limit, EIO).
    #[error("cannot write the qcow2 image ({what}): {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("cluster size {0} is not a power of two from 512 bytes to 2 MiB")]
    ClusterSize(u64),

    #[error("zstd compression needs a version 3 image (compat 1.1); version 2 only knows zlib")]
    ZstdNeedsV3,

    #[error("compression type {0} cannot be written (only zlib and zstd)")]
    CompressionType(u8),

    /// qemu will not open an image whose L1 table exceeds 32 MiB.
    #[error(
        "a {size}-byte disk with {cluster_size}-byte clusters needs a {l1_bytes}-byte L1 table, \
         over qemu's 32 MiB limit; use larger clusters"
    )]
    DiskTooLarge {
        size: u64,
        cluster_size: u64,
        l1_bytes: u64,
    },

    /// The writer only appends: guest clusters must arrive in increasing order.
    #[error("guest cluster {index} arrived out of order (the next acceptable one is {next})")]
    OutOfOrder { index: u64, next: u64 },

    #[error("guest cluster {index} is past the end of the disk ({clusters} clusters)")]
    PastEnd { index: u64, clusters: u64 },

    #[error("guest cluster {index}: {len} bytes of data: {why}")]
    Length { index: u64, len: u64, why: String },

    /// A structure would land where qcow2 (or qemu) cannot address it.
    #[error(
        "the image grows too large for qcow2: {what} at file offset {offset:#x} (limit {limit:#x})"
    )]
    FileTooLarge {
        what: &'static str,
        offset: u64,
        limit: u64,
    },

    /// An earlier call failed; the image is incomplete and cannot be finished.
    #[error("an earlier write failed; the qcow2 image cannot be completed")]
    Failed,

    /// A broken invariant of the writer itself (never expected).
    #[error("qcow2 writer bug: {0}")]
    Internal(String),
}

impl WriteError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        WriteError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<WriteError> for io::Error {
    /// Keeps the kind of an I/O failure (so "No space left on device" stays
    /// recognisable), `InvalidInput` for options and contract errors.
    fn from(e: WriteError) -> Self {
        let kind = match &e {
            WriteError::Io { source, .. } => source.kind(),
            WriteError::FileTooLarge { .. } => io::ErrorKind::FileTooLarge,
            WriteError::Failed | WriteError::Internal(_) => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}
