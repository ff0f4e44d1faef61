//! Errors of the FAT reader and editor. Each one names the on-disk structure it was
//! met at (a BPB field, FAT entry N, a directory's first cluster, a directory entry's
//! byte offset), so a user can tell which part of a broken image is at fault.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum FatError {
    #[error("I/O error reading {what} at byte {offset}: {source}")]
    Read {
        what: &'static str,
        offset: u64,
        #[source]
        source: io::Error,
    },

    /// A write failed while an edit was being applied. This is the only error an
    /// edit can return after it started changing the device.
    #[error("I/O error writing {what} at byte {offset}: {source}")]
    Write {
        what: &'static str,
        offset: u64,
        #[source]
        source: io::Error,
    },

    #[error("not a FAT volume: no 0x55AA signature at the end of the boot sector")]
    NoSignature,

    #[error("boot sector: {field} = {value}: {why}")]
    Bpb {
        field: &'static str,
        value: u64,
        why: &'static str,
    },

    #[error("the volume is {need} bytes long but the device holds only {have} (truncated image?)")]
    Truncated { need: u64, have: u64 },

    #[error("FAT entry {cluster} = {value:#x}: {why}")]
    FatEntry {
        cluster: u32,
        value: u32,
        why: &'static str,
    },

    #[error("cluster chain starting at cluster {start} loops (cluster {cluster} is reached twice)")]
    ChainLoop { start: u32, cluster: u32 },

    #[error(
        "cluster chain starting at cluster {start} is longer than the volume's {limit} clusters"
    )]
    ChainTooLong { start: u32, limit: u32 },

    #[error("directory entry at byte {entry}: first cluster {cluster} is outside 2..={max}")]
    FirstClusterOutOfRange { entry: u64, cluster: u32, max: u32 },

    #[error(
        "directory entry at byte {entry}: size {size} needs {need} clusters but the chain from cluster {start} has {have}"
    )]
    ChainTooShort {
        entry: u64,
        size: u32,
        need: u64,
        have: u64,
        start: u32,
    },

    #[error("directory at cluster {cluster}: more than 65536 entries")]
    DirectoryTooLarge { cluster: u32 },

    #[error("directory at cluster {cluster} is reached twice (a directory loop or a cross-link)")]
    DirectoryLoop { cluster: u32 },

    #[error("directory entry at byte {entry}: {why}")]
    Entry { entry: u64, why: &'static str },

    #[error("node {id:#x} is not a live directory entry of this volume")]
    BadNode { id: u64 },

    #[error("{path}: no such file or directory")]
    NotFound { path: String },

    #[error("{path}: not a directory")]
    NotADirectory { path: String },

    #[error("{path}: is a directory")]
    IsADirectory { path: String },

    #[error("{path}: the root directory cannot be removed")]
    Root { path: String },

    #[error("{path}: new content ({new} bytes) is longer than the file ({old} bytes)")]
    RewriteTooLong { path: String, new: u64, old: u64 },

    #[error("refusing to edit: cluster {cluster} belongs to more than one chain (cross-linked)")]
    CrossLinked { cluster: u32 },

    #[error(
        "refusing to edit: FAT copy {copy} says entry {cluster} = {value:#x}, FAT copy {reference} says {expected:#x}"
    )]
    FatMismatch {
        cluster: u32,
        copy: u32,
        value: u32,
        reference: u32,
        expected: u32,
    },

    #[error("refusing to edit: {0}")]
    Unsupported(&'static str),
}

pub type Result<T> = std::result::Result<T, FatError>;

impl From<FatError> for io::Error {
    /// Readers hand out `std::io::Read`; corruption found mid-stream travels as
    /// `InvalidData` carrying the typed error, I/O errors as themselves.
    fn from(e: FatError) -> Self {
        match e {
            FatError::Read { ref source, .. } | FatError::Write { ref source, .. } => {
                io::Error::new(source.kind(), e)
            }
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
