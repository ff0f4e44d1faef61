//! Read-only parsers of the package databases a Linux guest carries, reduced to
//! what a sanitizer needs to know: which package shipped which path, and the
//! digest the package manager recorded for its content.
//!
//! One module per database, each taking the database's bytes (read by the
//! caller, bounded) and returning [`Package`]s or a typed [`Error`] that names
//! where the data stopped making sense:
//!
//! - [`dpkg`]: `/var/lib/dpkg/info/*.md5sums` and the conffile md5s of
//!   `/var/lib/dpkg/status`;
//! - [`rpm`]: header blobs ([`rpm::header`]) from `rpmdb.sqlite` ([`sqlite`]) or
//!   a Berkeley DB hash/btree `Packages` file ([`bdb`]) or SUSE's ndb
//!   `Packages.db` ([`ndb`]);
//! - [`apk`] reads `/lib/apk/db/installed`;
//! - [`record`] reads Python `*.dist-info/RECORD`.
//!
//! No policy lives here (what a match means is the caller's business); the
//! crate only parses and computes digests ([`Digester`]).

pub mod apk;
pub mod bdb;
pub mod digest;
pub mod dpkg;
pub mod ndb;
pub mod record;
pub mod rpm;
pub mod sqlite;

pub use digest::{Algo, Digester};

/// One file a package recorded a content digest for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Path as the database names it: absolute for dpkg/rpm/apk (a leading `/`
    /// is added where the database stores it relative to `/`), relative to the
    /// site directory for a Python RECORD.
    pub path: Vec<u8>,
    pub algo: Algo,
    pub digest: Vec<u8>,
}

/// One installed package and its files' digests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub files: Vec<FileDigest>,
}

/// Why a database could not be read. Every variant says where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{what}: truncated at byte {offset}")]
    Truncated { what: &'static str, offset: u64 },
    #[error("{what} at byte {offset}: {reason}")]
    Corrupt {
        what: &'static str,
        offset: u64,
        reason: String,
    },
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{what}: more than {limit} {unit}")]
    TooLarge {
        what: &'static str,
        limit: u64,
        unit: &'static str,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Bounds-checked little helpers over a byte slice, shared by the binary parsers.
pub(crate) mod bytes {
    use super::{Error, Result};

    pub fn slice<'a>(d: &'a [u8], at: usize, len: usize, what: &'static str) -> Result<&'a [u8]> {
        at.checked_add(len)
            .and_then(|end| d.get(at..end))
            .ok_or(Error::Truncated {
                what,
                offset: at as u64,
            })
    }

    pub fn be16(d: &[u8], at: usize, what: &'static str) -> Result<u16> {
        let s = slice(d, at, 2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    pub fn be32(d: &[u8], at: usize, what: &'static str) -> Result<u32> {
        let s = slice(d, at, 4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    pub fn u16e(d: &[u8], at: usize, le: bool, what: &'static str) -> Result<u16> {
        let s = slice(d, at, 2, what)?;
        let b = [s[0], s[1]];
        Ok(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    pub fn u32e(d: &[u8], at: usize, le: bool, what: &'static str) -> Result<u32> {
        let s = slice(d, at, 4, what)?;
        let b = [s[0], s[1], s[2], s[3]];
        Ok(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    /// Lowercase hex string → bytes; `None` if it is not even-length hex.
    pub fn unhex(s: &[u8]) -> Option<Vec<u8>> {
        if !s.len().is_multiple_of(2) {
            return None;
        }
        let v = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        s.chunks(2)
            .map(|p| Some(v(p[0])? << 4 | v(p[1])?))
            .collect()
    }
}
