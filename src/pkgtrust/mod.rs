//! Package trust: a file whose content matches the digest its package manager
//! recorded is the distribution's, public (every machine with that package has
//! the same bytes), so content detectors do not act on it. The scan reports it
//! as a [`VendorNote`] instead of a finding; `--no-package-trust` turns this off.
//!
//! - **Which databases.** dpkg (`info/*.md5sums`, conffile md5s in `status`),
//!   rpm (`rpmdb.sqlite`, Berkeley DB `Packages`, SUSE's ndb `Packages.db`),
//!   apk (`/lib/apk/db/installed`) and Python
//!   `*.dist-info/RECORD` in any directory above the file. Parsing is
//!   `vmscrub-pkgdb`'s; this module reads the files through the guest's mount
//!   view and decides.
//! - **Lazily.** Nothing is read unless a content detector fired on some file:
//!   the databases are loaded on the first such file, and only the files with
//!   hits are hashed. A scan without hits costs nothing more.
//! - **Fail closed.** A database that cannot be read or parsed vouches for
//!   nothing (its files are scanned like any other), and a warning says which
//!   and why. A file some package lists but whose content differs (a modified
//!   config holding a password) is scanned like any other file.
//! - **What trust means.** "The package manager recorded these bytes", not
//!   "these bytes are safe": a locally built package can ship anything. The
//!   vendor note keeps every hit visible to an auditor.

mod load;

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use vmscrub_pkgdb::Algo;

use crate::fs::NodeId;
use crate::guest::Guest;
use crate::scan::ContentHit;

/// A content hit the distribution vouches for: reported, never removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VendorNote {
    #[serde(serialize_with = "crate::report::ser_path")]
    pub path: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub filesystem: usize,
    pub node: NodeId,
    pub size: u64,
    /// `dpkg`, `rpm`, `apk` or `python`.
    pub manager: &'static str,
    pub package: String,
    pub version: String,
    /// The algorithm of the digest that matched (`md5`, `sha256`, …).
    pub algorithm: &'static str,
    /// What fired (never secret bytes: detector, offset, length, hash).
    pub hits: Vec<ContentHit>,
}

/// Which package vouches for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouch {
    pub manager: &'static str,
    pub package: String,
    pub version: String,
    pub algorithm: &'static str,
}

/// One recorded digest and whose it is.
#[derive(Debug, Clone)]
struct Record {
    pkg: u32,
    algo: Algo,
    digest: Vec<u8>,
}

#[derive(Debug, Clone)]
struct PkgInfo {
    manager: &'static str,
    name: String,
    version: String,
}

/// Every path some database records, with its digests.
#[derive(Debug, Default)]
struct Index {
    files: HashMap<Vec<u8>, Vec<Record>>,
    packages: Vec<PkgInfo>,
    /// Why a database vouches for nothing (missing, partial, corrupt).
    warnings: Vec<String>,
    /// `/lib` → `/usr/lib` and the like (merged /usr), guest-absolute.
    aliases: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Index {
    fn add(&mut self, manager: &'static str, p: vmscrub_pkgdb::Package) {
        let pkg = self.packages.len() as u32;
        self.packages.push(PkgInfo {
            manager,
            name: p.name,
            version: p.version,
        });
        for f in p.files {
            let path = canonical(&self.aliases, &f.path);
            self.files.entry(path).or_default().push(Record {
                pkg,
                algo: f.algo,
                digest: f.digest,
            });
        }
    }
}

/// `path` with a leading merged-/usr alias replaced (`/lib/x` → `/usr/lib/x`).
fn canonical(aliases: &[(Vec<u8>, Vec<u8>)], path: &[u8]) -> Vec<u8> {
    for (from, to) in aliases {
        if let Some(rest) = path.strip_prefix(from.as_slice())
            && rest.starts_with(b"/")
        {
            let mut p = to.clone();
            p.extend_from_slice(rest);
            return p;
        }
    }
    path.to_vec()
}

/// The lazily loaded package view of one guest.
pub struct PackageTrust<'g> {
    guest: &'g Guest,
    index: OnceLock<Index>,
    python: Mutex<Python>,
}

/// Python site directories already looked at, and what they held.
#[derive(Default)]
struct Python {
    /// dir → (guest path, record) of every RECORD in its `*.dist-info`.
    dirs: HashMap<Vec<u8>, Vec<(Vec<u8>, Record)>>,
    pkgs: Vec<PkgInfo>,
    warnings: Vec<String>,
}

impl<'g> PackageTrust<'g> {
    pub fn new(guest: &'g Guest) -> PackageTrust<'g> {
        PackageTrust {
            guest,
            index: OnceLock::new(),
            python: Mutex::new(Python::default()),
        }
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| load::load(self.guest))
    }

    /// Why some database vouches for nothing; empty if nothing was loaded
    /// (no content hit needed it) or everything read cleanly.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = self
            .index
            .get()
            .map(|i| i.warnings.clone())
            .unwrap_or_default();
        if let Ok(p) = self.python.lock() {
            w.extend(p.warnings.iter().cloned());
        }
        w
    }

    /// Whether the regular file `id` of filesystem `fs`, at guest path
    /// `path`, holds exactly what a package recorded. Reads the file once,
    /// only if some database lists the path.
    pub fn vouch(&self, fs: usize, path: &[u8], id: NodeId) -> Option<Vouch> {
        // Only a file with a place in the guest's tree has a package path.
        self.guest.mount_point(fs)?;
        let idx = self.index();
        let path = canonical(&idx.aliases, path);
        let mut cands: Vec<(Record, PkgInfo)> = idx
            .files
            .get(&path)
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r.clone(), idx.packages.get(r.pkg as usize)?.clone())))
            .collect();
        cands.extend(self.python_records(&path));
        if cands.is_empty() {
            return None;
        }
        let mut algos: Vec<Algo> = cands.iter().map(|(r, _)| r.algo).collect();
        algos.sort();
        algos.dedup();
        let digests = self.digest(fs, id, &algos)?;
        cands.into_iter().find_map(|(r, p)| {
            (digests.get(&r.algo) == Some(&r.digest)).then(|| Vouch {
                manager: p.manager,
                package: p.name,
                version: p.version,
                algorithm: r.algo.name(),
            })
        })
    }

    /// The file's digests in each of `algos`, from one read.
    fn digest(&self, fs: usize, id: NodeId, algos: &[Algo]) -> Option<HashMap<Algo, Vec<u8>>> {
        let f = &*self.guest.filesystems.get(fs)?.fs;
        let mut r = f.open(id).ok()?;
        let mut hs: Vec<_> = algos.iter().map(|a| a.hasher()).collect();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = r.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            for h in &mut hs {
                h.update(&buf[..n]);
            }
        }
        Some(
            algos
                .iter()
                .copied()
                .zip(hs.into_iter().map(|h| h.finish()))
                .collect(),
        )
    }

    /// RECORD entries naming `path`, from every `*.dist-info` in a directory
    /// above it (each directory is read once).
    fn python_records(&self, path: &[u8]) -> Vec<(Record, PkgInfo)> {
        let mut out = vec![];
        let Ok(mut py) = self.python.lock() else {
            return out;
        };
        for (i, _) in path.iter().enumerate().filter(|(_, b)| **b == b'/') {
            let dir = if i == 0 { &b"/"[..] } else { &path[..i] };
            if !py.dirs.contains_key(dir) {
                let entries = load::site_records(self.guest, dir, &mut py);
                py.dirs.insert(dir.to_vec(), entries);
            }
            let py = &*py;
            for (p, r) in py.dirs.get(dir).into_iter().flatten() {
                if p == path
                    && let Some(info) = py.pkgs.get(r.pkg as usize)
                {
                    out.push((r.clone(), info.clone()));
                }
            }
        }
        out
    }
}

/// The vendor note for a file with content findings, if its package vouches
/// for it (the findings then go away: they are the distribution's bytes).
pub fn vendor_note(
    trust: &PackageTrust<'_>,
    path: &[u8],
    fs: usize,
    meta: &crate::fs::Metadata,
    findings: &[crate::scan::Finding],
) -> Option<VendorNote> {
    let v = trust.vouch(fs, path, meta.id)?;
    let hits = findings
        .iter()
        .flat_map(|f| match &f.why {
            crate::scan::Why::Content { hits, .. } => hits.clone(),
            _ => vec![],
        })
        .collect();
    Some(VendorNote {
        path: path.to_vec(),
        path_hex: crate::report::hex_if_not_utf8(path),
        filesystem: fs,
        node: meta.id,
        size: meta.size,
        manager: v.manager,
        package: v.package,
        version: v.version,
        algorithm: v.algorithm,
        hits,
    })
}

#[cfg(test)]
mod tests;
