//! What one archive member is: the shapes the scrub side adds and the reader
//! yields. Paths are bytes, relative, `/`-separated, never `..`.

use crate::error::{Error, Result, display_path};

/// Seconds and nanoseconds since the epoch (seconds may be negative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// One extended attribute, name and value as bytes. POSIX ACLs are passed as the
/// kernel's `system.posix_acl_access` / `system.posix_acl_default` binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// Inode metadata common to every entry kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits including setuid/setgid/sticky (`& 0o7777`); the file type
    /// comes from the entry kind.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Owner and group names when the image's passwd/group know them.
    pub uname: Option<Vec<u8>>,
    pub gname: Option<Vec<u8>>,
    pub mtime: Timestamp,
    pub xattrs: Vec<Xattr>,
}

/// One non-hole extent of a sparse file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub len: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    /// Data only for `segments`; holes read as zeros up to the entry's size.
    Sparse {
        segments: Vec<Segment>,
    },
    Dir,
    Symlink {
        target: Vec<u8>,
    },
    /// A second name for an earlier entry of the same archive.
    HardLink {
        target: Vec<u8>,
    },
    Device {
        kind: DeviceKind,
        major: u32,
        minor: u32,
    },
    Fifo,
}

impl EntryKind {
    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Sparse { .. } => "sparse",
            EntryKind::Dir => "dir",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::HardLink { .. } => "hardlink",
            EntryKind::Device {
                kind: DeviceKind::Char,
                ..
            } => "char",
            EntryKind::Device {
                kind: DeviceKind::Block,
                ..
            } => "block",
            EntryKind::Fifo => "fifo",
        }
    }
}

/// A member as the reader yields it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: EntryKind,
    pub meta: Metadata,
    /// Logical size (regular and sparse files), 0 otherwise.
    pub size: u64,
}

/// Canonical relative form of an image path: leading `/` dropped, empty
/// components collapsed; `.`/`..` components, NUL bytes and empty paths refused,
/// so nothing in an archive can point outside the directory it is extracted into.
pub fn normalize_path(p: &[u8]) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::Entry {
        path: display_path(p),
        why: why.to_string(),
    };
    if p.contains(&0) {
        return Err(bad("path contains a NUL byte"));
    }
    let mut out = Vec::with_capacity(p.len());
    for comp in p.split(|&b| b == b'/') {
        match comp {
            b"" => {}
            b"." | b".." => return Err(bad("path has a `.` or `..` component")),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    if out.is_empty() {
        return Err(bad("empty path"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize() {
        assert_eq!(normalize_path(b"/etc//ssh/").unwrap(), b"etc/ssh");
        assert!(normalize_path(b"/").is_err());
        assert!(normalize_path(b"a/../b").is_err());
        assert!(normalize_path(b"./a").is_err());
        assert_eq!(normalize_path(b"a\xff/b").unwrap(), b"a\xff/b");
    }
}
