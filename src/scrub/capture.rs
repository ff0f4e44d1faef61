//! Reading what a scrub is about to remove, before it is removed: each file goes
//! into the recovery archive (when one is asked for) and is fingerprinted for
//! the residual sweep (when verification is on), in one read.
//!
//! Everything is read through the [`Filesystem`] view of the image as it stands
//! before the edits, so the archive holds the files exactly as the owner had
//! them: metadata, xattrs and ACLs, symlink targets, device numbers, hard links
//! (the second name of an inode becomes a tar hard link to the first), sparse
//! files stored sparsely. Plaintext only ever flows from the image reader
//! through the archive's encryptor: never into a temporary file.
//!
//! Archive paths are guest paths without the leading `/`, so `tar -xpf … -C /`
//! on the parent instance puts each file back where it was, whichever
//! filesystem holds it. A filesystem with no mount point, and a root-filesystem
//! file hidden under another filesystem's mount point, go under
//! `partition-N/` (or `disk/` for a bare filesystem) instead: restoring them
//! into the running system's tree would put them somewhere else.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use anyhow::{Context, Result};
use vmscrub_recovery::{ArchiveWriter, DeviceKind, Metadata as ArMeta, Segment, Timestamp, Xattr};

use super::residue::{Removed, UnitHasher};
use crate::fs::{FileKind, Filesystem, Metadata, NodeId, display_path};

/// Owner and group names for the tar headers, from the image's own passwd and
/// group files.
#[derive(Default)]
pub struct Names {
    pub users: HashMap<u32, Vec<u8>>,
    pub groups: HashMap<u32, Vec<u8>>,
}

impl Names {
    pub fn from_guest(guest: &crate::guest::Guest) -> Names {
        let mut n = Names::default();
        for p in &guest.passwd {
            if p.name_is_utf8 {
                n.users
                    .entry(p.uid)
                    .or_insert_with(|| p.name.clone().into_bytes());
            }
        }
        if let Some(text) = guest.read(b"/etc/group", 16 << 20) {
            for line in text.split(|&b| b == b'\n') {
                let mut f = line.splitn(4, |&b| b == b':');
                let (Some(name), Some(_), Some(gid)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                let Some(gid) = std::str::from_utf8(gid).ok().and_then(|g| g.parse().ok()) else {
                    continue;
                };
                if !name.is_empty() && !name.starts_with(b"#") && !name.starts_with(b"+") {
                    n.groups.entry(gid).or_insert_with(|| name.to_vec());
                }
            }
        }
        n
    }
}

/// What one capture did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Captured {
    /// Archive entries written (every kind).
    pub entries: u64,
    /// Non-directory entries met (sockets included) and the bytes of the regular
    /// files' content: what a removed tree held, counted the same way on every
    /// filesystem.
    pub files: u64,
    pub bytes: u64,
    /// Directories met (a removed tree's, itself included).
    pub dirs: u64,
    /// Sockets cannot be archived (tar has no type for them): counted here.
    pub sockets_skipped: u64,
}

impl std::ops::AddAssign for Captured {
    fn add_assign(&mut self, o: Captured) {
        self.entries += o.entries;
        self.files += o.files;
        self.bytes += o.bytes;
        self.dirs += o.dirs;
        self.sockets_skipped += o.sockets_skipped;
    }
}

/// Captures files of one filesystem.
pub struct Capture<'a, W: Write> {
    pub fs: &'a dyn Filesystem,
    pub archive: Option<&'a mut ArchiveWriter<W>>,
    pub names: &'a Names,
    /// Fingerprints for the sweep; `None` when verification is off.
    pub removed: Option<&'a mut Removed>,
    /// Budget of fingerprints left for the whole run.
    pub budget: &'a mut usize,
    /// Regular files with several links already archived: node → archive path.
    pub linked: HashMap<NodeId, Vec<u8>>,
}

impl<W: Write> Capture<'_, W> {
    fn needs_content(&self) -> bool {
        self.archive.is_some() || self.removed.is_some()
    }

    fn meta(&self, m: &Metadata, id: NodeId) -> Result<ArMeta> {
        let xattrs = if self.archive.is_some() {
            self.fs
                .xattrs(id)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .into_iter()
                .map(|x| Xattr {
                    name: x.name,
                    value: x.value,
                })
                .collect()
        } else {
            vec![]
        };
        Ok(ArMeta {
            mode: m.mode & 0o7777,
            uid: u64::from(m.uid),
            gid: u64::from(m.gid),
            uname: self.names.users.get(&m.uid).cloned(),
            gname: self.names.groups.get(&m.gid).cloned(),
            mtime: Timestamp {
                secs: m.mtime.sec,
                nanos: m.mtime.nsec,
            },
            xattrs,
        })
    }

    /// Captures one file, symlink, device, fifo or (with everything below it)
    /// directory, archived under `arch_path`. A tree is walked with the same
    /// walker the scan uses, but anything it cannot list is an error here: what
    /// is removed must be in the archive.
    pub fn node(
        &mut self,
        arch_path: &[u8],
        id: NodeId,
        operation: &str,
        with_tree: bool,
    ) -> Result<Captured> {
        let fs = self.fs;
        let m = fs
            .metadata(id)
            .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(arch_path)))?;
        if m.kind != FileKind::Directory {
            return self.leaf(arch_path, id, &m, operation);
        }
        if !with_tree {
            return Ok(Captured::default());
        }
        let mut out = self.dir(arch_path, id, &m, operation)?;
        let mut failed = None;
        let walked = crate::fs::walk::walk(fs, id, arch_path, |e| {
            let r = fs
                .metadata(e.entry.id)
                .map_err(|err| anyhow::anyhow!("{}: {err}", display_path(&e.path)))
                .and_then(|m| {
                    if m.kind == FileKind::Directory {
                        self.dir(&e.path, e.entry.id, &m, operation)
                    } else {
                        self.leaf(&e.path, e.entry.id, &m, operation)
                    }
                });
            match r {
                Ok(c) => {
                    out += c;
                    Ok(true)
                }
                Err(err) => {
                    failed = Some(err);
                    Err(crate::fs::FsError::Corrupt("capture stopped".into()))
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let skipped = walked.map_err(|e| anyhow::anyhow!("{}: {e}", display_path(arch_path)))?;
        if let Some(s) = skipped.first() {
            anyhow::bail!("{}: {}", display_path(&s.path), s.error);
        }
        Ok(out)
    }

    fn dir(&mut self, path: &[u8], id: NodeId, m: &Metadata, operation: &str) -> Result<Captured> {
        let mut out = Captured {
            dirs: 1,
            ..Captured::default()
        };
        if self.archive.is_some() {
            let meta = self.meta(m, id)?;
            if let Some(a) = self.archive.as_deref_mut() {
                a.add_dir(path, &meta, operation)
                    .with_context(|| format!("archiving {}", display_path(path)))?;
                out.entries += 1;
            }
        }
        Ok(out)
    }

    fn leaf(&mut self, path: &[u8], id: NodeId, m: &Metadata, operation: &str) -> Result<Captured> {
        let mut out = Captured {
            files: 1,
            ..Captured::default()
        };
        let ctx = || format!("archiving {}", display_path(path));
        if m.kind == FileKind::Socket {
            out.sockets_skipped += 1;
            return Ok(out);
        }
        if m.kind == FileKind::Regular && m.nlink > 1 {
            if let Some(first) = self.linked.get(&id).cloned() {
                // A second name of an inode already captured: a tar hard link;
                // its content was read (and fingerprinted) with the first name.
                if self.archive.is_some() {
                    let meta = self.meta(m, id)?;
                    let Some(a) = self.archive.as_deref_mut() else {
                        return Ok(out);
                    };
                    a.add_hardlink(path, &meta, operation, &first)
                        .with_context(ctx)?;
                    out.entries += 1;
                }
                return Ok(out);
            }
            self.linked.insert(id, path.to_vec());
        }
        let meta = self.meta(m, id)?;
        match m.kind {
            FileKind::Regular => {
                out.bytes += m.size;
                if !self.needs_content() {
                    return Ok(out);
                }
                let mut hasher = self
                    .removed
                    .as_ref()
                    .map(|r| UnitHasher::new(r.unit, *self.budget));
                let ranges = self
                    .fs
                    .data_ranges(id)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(path)))?;
                // A file without holes is one segment from offset 0.
                let dense = ranges.iter().map(|r| r.end - r.start).sum::<u64>() == m.size;
                let mut rd = Segments {
                    fs: self.fs,
                    id,
                    ranges: ranges.clone(),
                    next: 0,
                    cur: None,
                    hasher: hasher.as_mut(),
                };
                match self.archive.as_deref_mut() {
                    Some(a) if dense => {
                        a.add_file(path, &meta, operation, m.size, &mut rd)
                            .with_context(ctx)?;
                        out.entries += 1;
                    }
                    Some(a) => {
                        let segments: Vec<Segment> = ranges
                            .iter()
                            .map(|r| Segment {
                                offset: r.start,
                                len: r.end - r.start,
                            })
                            .collect();
                        a.add_sparse_file(path, &meta, operation, m.size, &segments, &mut rd)
                            .with_context(ctx)?;
                        out.entries += 1;
                    }
                    None => {
                        io::copy(&mut rd, &mut io::sink()).with_context(ctx)?;
                    }
                }
                if let (Some(h), Some(r)) = (hasher, self.removed.as_deref_mut()) {
                    *self.budget = h.budget_left();
                    let (prints, units) = h.finish();
                    r.add(id, prints, units);
                }
            }
            FileKind::Symlink => {
                if let Some(a) = self.archive.as_deref_mut() {
                    let target = self
                        .fs
                        .read_link(id)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(path)))?;
                    a.add_symlink(path, &meta, operation, &target)
                        .with_context(ctx)?;
                    out.entries += 1;
                }
            }
            FileKind::CharDevice | FileKind::BlockDevice => {
                if let Some(a) = self.archive.as_deref_mut() {
                    let (major, minor) = m.rdev.unwrap_or((0, 0));
                    let kind = if m.kind == FileKind::CharDevice {
                        DeviceKind::Char
                    } else {
                        DeviceKind::Block
                    };
                    a.add_device(path, &meta, operation, kind, major, minor)
                        .with_context(ctx)?;
                    out.entries += 1;
                }
            }
            FileKind::Fifo => {
                if let Some(a) = self.archive.as_deref_mut() {
                    a.add_fifo(path, &meta, operation).with_context(ctx)?;
                    out.entries += 1;
                }
            }
            FileKind::Directory | FileKind::Socket => {}
        }
        Ok(out)
    }
}

/// The data segments of a file (all of it when it has no holes), back to back,
/// fingerprinted at their file offsets as they pass when verification is on.
struct Segments<'a, 'h> {
    fs: &'a dyn Filesystem,
    id: NodeId,
    ranges: Vec<std::ops::Range<u64>>,
    next: usize,
    /// The open segment: its reader, the file offset reached, and its end.
    cur: Option<(Box<dyn Read + Send + 'a>, u64, u64)>,
    hasher: Option<&'h mut UnitHasher>,
}

impl Read for Segments<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((r, pos, end)) = self.cur.as_mut() {
                let want = (*end - *pos).min(buf.len() as u64) as usize;
                if want == 0 {
                    self.cur = None;
                    continue;
                }
                let n = r.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ended inside one of its data segments",
                    ));
                }
                if let Some(h) = self.hasher.as_deref_mut() {
                    h.feed(*pos, &buf[..n]);
                }
                *pos += n as u64;
                return Ok(n);
            }
            let Some(r) = self.ranges.get(self.next).cloned() else {
                return Ok(0);
            };
            self.next += 1;
            let rd = self
                .fs
                .open_at(self.id, r.start)
                .map_err(io::Error::other)?;
            self.cur = Some((rd, r.start, r.end));
        }
    }
}
