//! One error type for the whole crate: every failure names the structure that was
//! wrong so the `recover` verb can print one clear line and exit 3.

use std::io;

/// Everything that can go wrong writing, reading or extracting a recovery archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(
        "not a vmscrub recovery archive (the file starts with neither the v1 magic nor an \
         age-encryption.org/v1 header)"
    )]
    BadMagic,
    #[error("recovery archive format version {0} is not supported (this vmscrub reads version 1)")]
    UnsupportedVersion(u16),
    #[error("corrupt recovery archive header: {0}")]
    Header(String),
    #[error(
        "chunk {chunk} (at byte {offset}) failed authentication: the archive was modified, \
         its header or chunks were altered, reordered or duplicated, or data was appended"
    )]
    ChunkAuth { chunk: u64, offset: u64 },
    #[error(
        "the archive is truncated: the file ends at chunk {chunk} (byte {offset}), \
         and the chunk there is missing or is not the final one"
    )]
    Truncated { chunk: u64, offset: u64 },
    /// The file ends part-way into a chunk that does not authenticate. A short
    /// final chunk is legitimate, so this cannot prove truncation, but a copy cut
    /// short is by far the likeliest cause and the one the user can fix.
    #[error(
        "the archive is truncated or its end was damaged: the file ends inside chunk {chunk} \
         (at byte {offset}), which failed authentication; a copy or download cut short, or \
         bytes appended to it, end like this, so fetch the archive again"
    )]
    EndsInsideChunk { chunk: u64, offset: u64 },
    #[error(
        "no recipient of this archive opens with the key {identity} (an age file does not \
         name its recipients: use a key the archive was made for)"
    )]
    AgeNoMatchingRecipient { identity: String },
    #[error("public key: {0}")]
    Recipient(String),
    #[error("private key: {0}")]
    Identity(String),
    #[error(
        "no recipient of this archive opens with the key {fingerprint}; the archive was \
         made for: {recipients}"
    )]
    NoMatchingRecipient {
        fingerprint: String,
        recipients: String,
    },
    #[error("entry {path:?}: {why}")]
    Entry { path: String, why: String },
    #[error("tar payload: {0}")]
    Tar(String),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("extraction refused: {0}")]
    Unsafe(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Unwraps one of our errors that travelled through an `io::Read`/`Write` impl.
    pub(crate) fn from_io(e: io::Error) -> Error {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            match e.into_inner().map(|b| b.downcast::<Error>()) {
                Some(Ok(inner)) => *inner,
                Some(Err(other)) => Error::Io(io::Error::other(other)),
                None => Error::Other("I/O error".into()),
            }
        } else {
            Error::Io(e)
        }
    }

    pub(crate) fn into_io(self) -> io::Error {
        match self {
            Error::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Shows a byte path the way a user would type it: UTF-8 where it is, `\xNN` elsewhere.
pub fn display_path(p: &[u8]) -> String {
    let mut out = String::new();
    for chunk in p.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}
