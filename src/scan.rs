//! The scan engine: one walk per filesystem, every path matched against one
//! compiled `GlobSet` of all selected operations' patterns, and content
//! detection of every regular file on all cores.
//!
//! - **Matching.** Patterns are guest-absolute. A mounted filesystem is walked
//!   from its mount point, so its paths are guest paths; files of the root
//!   filesystem hidden under another mount point are walked too (they are in
//!   the image, and will be published) and flagged `shadowed`. A filesystem
//!   with no place in the tree (no OS root, not in fstab) gets content
//!   detection only: path rules need to know where a file is.
//! - **Trees.** A `delete-tree` match on a directory is one finding with the
//!   tree's file count and size; the same operation does not report what is
//!   inside it again. Content hits inside it are still reported.
//! - **Keep.** A path matching `--keep` (or a rule file's `keep`) gets no
//!   finding, and if it is a directory nothing below it does either. A tree
//!   that contains kept paths is split into the largest subtrees that do not.
//! - **Content.** Regular files are streamed to a [`ContentScanner`] by worker
//!   threads fed through a bounded queue; hits are attributed to the operation
//!   the detector names (dropped if that operation is not selected) and never
//!   carry secret bytes: detector, offset, length and hash only.
//! - **Warnings** say what the user must know: SSH host keys removed with
//!   nothing to regenerate them, operations that cannot be done offline, a
//!   filesystem or file that could not be read (the scan goes on), several OS
//!   roots or none.
//!
//! [`ScanResult::plan`] deduplicates findings into one action per path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Mutex, mpsc};

use globset::{Candidate, GlobSet, GlobSetBuilder};
use regex::bytes::Regex;
use serde::Serialize;

use crate::fs::{FileKind, Filesystem, FsResult, Metadata, NodeId, Timestamp, display_path};
use crate::guest::{Guest, read_bounded};
use crate::ops::pattern::{self, Expansions};
use crate::ops::rules::Allow;
use crate::ops::{ActionKind, Catalogue, NeedsGuestWhen, Operation, Rule, Selection};
pub use memo::{ContentMemo, Digests};

pub mod content;
pub mod memo;
pub mod redact;
mod workers;
mod xattrs;

/// Largest file a `rewrite` or `if-line` rule reads to decide.
pub const MAX_REWRITE_SIZE: u64 = 16 << 20;
/// Most line numbers a rewrite finding lists.
const MAX_LISTED_LINES: usize = 100;
/// Most hits one content finding lists.
const MAX_LISTED_HITS: usize = 100;
/// Most per-file read warnings listed (the rest are counted).
const MAX_FILE_WARNINGS: usize = 100;
/// Most unreadable directories listed per filesystem (the rest are counted).
const MAX_SKIPPED_DIRS: usize = 100;

// ------------------------------------------------------------------ content

/// One content detector hit. Never holds secret bytes: `why` is the detector's
/// description of what it found ("OpenSSH private key, ed25519"), `hash` a
/// digest chosen by the detector so the same secret can be recognized again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentHit {
    pub detector: String,
    /// The catalogue operation this hit belongs to (`private-keys`, …).
    pub operation: String,
    pub offset: u64,
    pub length: u64,
    pub hash: String,
    pub why: String,
    /// Set when the secret is inside the file's content rather than its bytes: the
    /// member of an archive or compressed stream (`gzip > tar:etc/app.key`).
    /// `offset` and `length` are then in that member, so the file can only be
    /// removed as a whole, never edited in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// File offsets of the secret's own bytes (what a redaction overwrites), when
    /// the detector knows them and they are in the file itself.
    #[serde(skip)]
    pub value: Option<std::ops::Range<u64>>,
}

/// What a content scan of one file found, and what it could not look into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentScan {
    pub hits: Vec<ContentHit>,
    /// Why part of the file's content was not scanned (an archive bound, a corrupt
    /// compressed stream): warnings of the scan.
    pub notes: Vec<String>,
}

/// What the engine needs of the content detectors; `vmscrub-detect` is wired
/// in behind it.
pub trait ContentScanner: Send + Sync {
    /// Scans one file's bytes. `path` is a hint (guest path), `size` the
    /// file's size from its metadata.
    fn scan(&self, path: &[u8], reader: &mut dyn Read, size: u64) -> io::Result<Vec<ContentHit>>;

    /// Scans one file, with notes on what could not be scanned inside it.
    fn scan_file(&self, path: &[u8], reader: &mut dyn Read, size: u64) -> io::Result<ContentScan> {
        Ok(ContentScan {
            hits: self.scan(path, reader, size)?,
            notes: vec![],
        })
    }
}

// ----------------------------------------------------------------- findings

/// Why a file was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Why {
    /// A path rule: the pattern (placeholders expanded) that matched.
    Pattern { pattern: String },
    /// Content detectors: where and what, never the bytes.
    Content {
        hits: Vec<ContentHit>,
        total_hits: usize,
    },
}

/// Size of what a `delete-tree` finding removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TreeStats {
    /// Non-directory entries below (and including) the match.
    pub files: u64,
    /// Directories below (and including) the match.
    pub dirs: u64,
    /// Sum of the regular files' sizes.
    pub bytes: u64,
}

/// What a rewrite would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    /// `replace`: the new content (catalogue data, never guest data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace: Option<String>,
    /// `drop-lines`: the regex (placeholders expanded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_lines: Option<String>,
    /// 1-based numbers of the dropped lines (first 100).
    pub dropped_lines: Vec<u64>,
    pub dropped_count: u64,
    pub new_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub operation: String,
    pub action: ActionKind,
    /// Guest-absolute path; for a filesystem with no mount point, the path
    /// inside that filesystem.
    #[serde(serialize_with = "crate::report::ser_path")]
    pub path: Vec<u8>,
    /// The path's bytes in hex, only when the path is not UTF-8 (the escaped
    /// `path` is then ambiguous).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// Index into the guest's filesystems.
    pub filesystem: usize,
    /// The path inside the filesystem.
    #[serde(serialize_with = "crate::report::ser_path")]
    pub fs_path: Vec<u8>,
    /// Inode number (ext4) or directory-entry position (FAT).
    pub node: NodeId,
    pub kind: FileKind,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub nlink: u32,
    pub mtime: Timestamp,
    /// Hidden under another filesystem's mount point in the running guest.
    pub shadowed: bool,
    pub why: Why,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    /// For a `redact`: the lines and values overwritten.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redact: Option<redact::Redaction>,
    /// The action cannot be carried out (the finding stays, as information).
    pub skipped: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Finding {
    /// Bytes this finding removes (a tree's total for `delete-tree`).
    pub fn bytes(&self) -> u64 {
        match (self.action, self.tree) {
            (_, Some(t)) => t.bytes,
            (ActionKind::Rewrite, _) => self
                .rewrite
                .as_ref()
                .map_or(0, |r| self.size.saturating_sub(r.new_size)),
            (ActionKind::Redact, _) => self
                .redact
                .as_ref()
                .map_or(0, |r| self.size.saturating_sub(r.new_size)),
            (ActionKind::Report, _) => 0,
            _ if self.kind == FileKind::Regular => self.size,
            _ => 0,
        }
    }

    pub fn is_content(&self) -> bool {
        matches!(self.why, Why::Content { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// SSH host keys would be removed and nothing regenerates them.
    SshHostKeys,
    /// An operation (or part of one) that cannot be performed offline.
    NotPerformedOffline,
    /// A filesystem could not be opened or walked to the end.
    UnreadableFilesystem,
    /// A swap volume: memory pages, not files; `scrub` re-initializes it.
    SwapSpace,
    /// LVM2 metadata areas keep older copies and the hosts that wrote them
    /// (operation `lvm-metadata`).
    LvmMetadata,
    /// One file could not be read.
    UnreadableFile,
    /// No OS root, several roots, unresolved fstab lines.
    GuestView,
    /// Content detectors are not available in this build.
    NoContentDetection,
    /// A removed file has other hard links that keep its content.
    HardLink,
    /// Guest data that cannot be used as a pattern (non-UTF-8 home).
    Pattern,
    /// A package database that vouches for nothing (missing, partial, corrupt).
    PackageDatabase,
    /// Part of an archive's or compressed file's content was not scanned inside
    /// (a depth, size or expansion bound — a decompression bomb — or corrupt data).
    NestedContent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub kind: WarningKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    pub message: String,
}

/// One selected operation and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationStatus {
    pub name: String,
    pub heading: String,
    pub default: bool,
    pub actions: Vec<ActionKind>,
    /// The operation's OS guard holds on this guest.
    pub applies: bool,
    pub content: bool,
    pub findings: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanStats {
    pub filesystems_scanned: usize,
    pub entries_walked: u64,
    pub files_content_scanned: u64,
    pub bytes_content_scanned: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScanResult {
    /// Sorted by operation (catalogue order), filesystem, path.
    pub findings: Vec<Finding>,
    pub warnings: Vec<Warning>,
    pub operations: Vec<OperationStatus>,
    pub stats: ScanStats,
    /// Content hits on files whose content their package recorded: not findings.
    pub vendor: Vec<crate::pkgtrust::VendorNote>,
}

// ------------------------------------------------------------------ options

pub struct ScanOptions<'a> {
    pub catalogue: &'a Catalogue,
    pub selection: &'a Selection,
    /// `--keep` globs (the catalogue's rule-file `keep` entries are added).
    pub keep: Vec<String>,
    /// `None`: content detection unavailable (a warning says so).
    pub content: Option<&'a dyn ContentScanner>,
    /// Content worker threads; 0 = one per core.
    pub threads: usize,
    /// Counters the scan advances as it goes, for a progress display.
    pub progress: Option<&'a ScanProgress>,
    /// Content hits on files that match their package's digest become vendor
    /// notes, not findings (`--no-package-trust` clears it).
    pub package_trust: bool,
}

/// How far a scan is: entries walked, files and bytes content-scanned. Updated
/// from every thread; read by whoever draws a progress display.
#[derive(Debug, Default)]
pub struct ScanProgress {
    pub entries: std::sync::atomic::AtomicU64,
    pub files: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
}

impl ScanProgress {
    /// `1234 entries, 56 files (78.9 MiB) scanned`.
    pub fn describe(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        format!(
            "{} entries, {} files ({}) read",
            self.entries.load(Relaxed),
            self.files.load(Relaxed),
            crate::report::human_size(self.bytes.load(Relaxed))
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("--keep: {0}")]
    Keep(String),
    #[error("operation `{op}`: {message}")]
    Rule { op: String, message: String },
}

// ----------------------------------------------------------------- compiled

struct CRule<'c> {
    op: usize,
    rule: &'c Rule,
    except: Option<GlobSet>,
    drop_lines: Option<(Regex, String)>,
    if_line: Option<Regex>,
}

struct Compiled<'c> {
    ops: Vec<&'c Operation>,
    /// Catalogue order of each active operation (for sorting).
    active: Vec<bool>,
    rules: Vec<CRule<'c>>,
    set: GlobSet,
    /// Glob index → (rule index, pattern).
    glob_map: Vec<(usize, String)>,
    keep: GlobSet,
    allow: Option<(GlobSet, Vec<Allow>)>,
    /// Active content operations by name → op index.
    content_ops: HashMap<String, usize>,
    expansions: Expansions,
}

fn build_set(globs: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(pattern::glob(g)?);
    }
    b.build().map_err(|e| e.to_string())
}

fn compile<'c>(guest: &Guest, opts: &ScanOptions<'c>) -> Result<Compiled<'c>, ScanError> {
    let cat = opts.catalogue;
    let x = guest.expansions();
    let ops: Vec<&Operation> = cat.operations.iter().collect();
    let mut active = vec![false; ops.len()];
    let mut rules = vec![];
    let mut b = GlobSetBuilder::new();
    let mut glob_map = vec![];
    let mut content_ops = HashMap::new();
    for (oi, op) in ops.iter().enumerate() {
        if !opts.selection.contains(&op.name) || !op.os.holds(&guest.facts) {
            continue;
        }
        active[oi] = true;
        let err = |message: String| ScanError::Rule {
            op: op.name.clone(),
            message,
        };
        for rule in &op.rules {
            if !rule.os.holds(&guest.facts) {
                continue;
            }
            if rule.content {
                content_ops.insert(op.name.clone(), oi);
            }
            let except: Vec<String> = rule
                .except
                .iter()
                .flat_map(|p| pattern::expand(p, &x))
                .collect();
            let except = if except.is_empty() {
                None
            } else {
                Some(build_set(&except).map_err(err)?)
            };
            let drop_lines = match &rule.drop_lines {
                Some(d) => {
                    let re = pattern::line_regex(d, &x).map_err(err)?;
                    let src = re.as_str().to_string();
                    Some((re, src))
                }
                None => None,
            };
            let if_line = match &rule.if_line {
                Some(d) => Some(pattern::line_regex(d, &x).map_err(err)?),
                None => None,
            };
            let ri = rules.len();
            for p in &rule.paths {
                for e in pattern::expand(p, &x) {
                    b.add(pattern::glob(&e).map_err(err)?);
                    glob_map.push((ri, e));
                }
            }
            rules.push(CRule {
                op: oi,
                rule,
                except,
                drop_lines,
                if_line,
            });
        }
    }
    let set = b.build().map_err(|e| ScanError::Rule {
        op: "*".into(),
        message: e.to_string(),
    })?;
    let mut keep_globs = opts.keep.clone();
    keep_globs.extend(cat.keep.iter().cloned());
    for k in &keep_globs {
        pattern::check_glob(k).map_err(ScanError::Keep)?;
    }
    let keep = build_set(&keep_globs).map_err(ScanError::Keep)?;
    let allow = if cat.allow.is_empty() {
        None
    } else {
        let globs: Vec<String> = cat.allow.iter().map(|a| a.path.clone()).collect();
        Some((
            build_set(&globs).map_err(ScanError::Keep)?,
            cat.allow.clone(),
        ))
    };
    Ok(Compiled {
        ops,
        active,
        rules,
        set,
        glob_map,
        keep,
        allow,
        content_ops,
        expansions: x,
    })
}

// -------------------------------------------------------------------- walk

struct Job {
    fs: usize,
    path: Vec<u8>,
    fs_path: Vec<u8>,
    meta: Metadata,
    shadowed: bool,
}

#[derive(Default)]
struct FsOutcome {
    findings: Vec<Finding>,
    warnings: Vec<Warning>,
    /// (tree finding index, kept path below it).
    kept_in_trees: Vec<(usize, Vec<u8>)>,
    entries: u64,
}

fn candidate(p: &[u8]) -> Candidate<'_> {
    Candidate::new(Path::new(OsStr::from_bytes(p)))
}

#[allow(clippy::too_many_arguments)]
fn finding_from(
    op: &Operation,
    action: ActionKind,
    fs: usize,
    path: &[u8],
    fs_path: &[u8],
    meta: &Metadata,
    shadowed: bool,
    why: Why,
) -> Finding {
    Finding {
        operation: op.name.clone(),
        action,
        path: path.to_vec(),
        path_hex: crate::report::hex_if_not_utf8(path),
        filesystem: fs,
        fs_path: fs_path.to_vec(),
        node: meta.id,
        kind: meta.kind,
        size: meta.size,
        uid: meta.uid,
        gid: meta.gid,
        mode: meta.mode,
        nlink: meta.nlink,
        mtime: meta.mtime,
        shadowed,
        why,
        tree: None,
        rewrite: None,
        redact: None,
        skipped: false,
        note: None,
    }
}

/// Splits file content into lines (each with its `\n`).
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split_inclusive(|&b| b == b'\n')
}

fn strip_eol(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// `text` without the lines any of `drop` matches (matched without their line
/// end, as the scan decides). The scrub writes exactly what the scan predicted.
pub fn drop_lines(text: &[u8], drop: &[Regex]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for l in lines(text) {
        if !drop.iter().any(|re| re.is_match(strip_eol(l))) {
            out.extend_from_slice(l);
        }
    }
    out
}

struct Walker<'a, 'c> {
    c: &'a Compiled<'c>,
    guest: &'a Guest,
    fs_index: usize,
    fs: &'a dyn Filesystem,
    mounted: bool,
    /// Other filesystems' mount points (for `shadowed`), only for the root.
    other_mounts: Vec<Vec<u8>>,
    /// Path prefix stripped to get the in-filesystem path.
    prefix: Vec<u8>,
    jobs: Option<&'a mpsc::SyncSender<Job>>,
    out: FsOutcome,
    /// delete-tree directory path → finding indexes.
    trees: HashMap<Vec<u8>, Vec<usize>>,
    matches: Vec<usize>,
    progress: Option<&'a ScanProgress>,
}

impl Walker<'_, '_> {
    fn fs_path(&self, path: &[u8]) -> Vec<u8> {
        if self.prefix.is_empty() {
            return path.to_vec();
        }
        let rest = &path[self.prefix.len().min(path.len())..];
        if rest.is_empty() {
            b"/".to_vec()
        } else {
            rest.to_vec()
        }
    }

    /// Proper ancestors of `p` (component boundaries), nearest last.
    fn ancestors(p: &[u8]) -> impl Iterator<Item = &[u8]> {
        p.iter()
            .enumerate()
            .skip(1)
            .filter(|(_, b)| **b == b'/')
            .map(move |(i, _)| &p[..i])
    }

    fn warn_file(&mut self, path: &[u8], e: impl std::fmt::Display) {
        self.out.warnings.push(Warning {
            kind: WarningKind::UnreadableFile,
            operation: None,
            message: format!(
                "{}: {} ({})",
                self.guest.filesystems[self.fs_index].identity.describe(),
                display_path(path),
                e
            ),
        });
    }

    fn visit(&mut self, path: &[u8], id: NodeId, kind: FileKind) -> bool {
        self.out.entries += 1;
        if let Some(p) = self.progress {
            p.entries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let cand = candidate(path);
        let kept = self.c.keep.is_match_candidate(&cand);
        let covering: Vec<usize> = if self.trees.is_empty() {
            vec![]
        } else {
            Self::ancestors(path)
                .filter_map(|a| self.trees.get(a))
                .flatten()
                .copied()
                .collect()
        };
        if kept {
            for &t in &covering {
                self.out.kept_in_trees.push((t, path.to_vec()));
            }
            // A kept directory keeps everything below it: don't descend.
            return false;
        }
        let needs_meta = kind == FileKind::Regular || !covering.is_empty();
        let mut meta: Option<Metadata> = None;
        if needs_meta {
            match self.fs.metadata(id) {
                Ok(m) => meta = Some(m),
                Err(e) => {
                    self.warn_file(path, e);
                    return kind == FileKind::Directory;
                }
            }
        }
        if let Some(m) = &meta {
            for &t in &covering {
                if let Some(ts) = self.out.findings[t].tree.as_mut() {
                    if kind == FileKind::Directory {
                        ts.dirs += 1;
                    } else {
                        ts.files += 1;
                    }
                    if kind == FileKind::Regular {
                        ts.bytes = ts.bytes.saturating_add(m.size);
                    }
                }
            }
        }
        let shadowed = self
            .other_mounts
            .iter()
            .any(|mp| path.starts_with(mp) && path.get(mp.len()) == Some(&b'/'));
        if self.mounted {
            self.c.set.matches_candidate_into(&cand, &mut self.matches);
            let matched = std::mem::take(&mut self.matches);
            let mut seen_rules = HashSet::new();
            for gi in &matched {
                let Some((ri, pat)) = self.c.glob_map.get(*gi) else {
                    continue;
                };
                if !seen_rules.insert(*ri) {
                    continue;
                }
                let cr = &self.c.rules[*ri];
                if !cr.rule.accepts_kind(kind) {
                    continue;
                }
                if cr
                    .except
                    .as_ref()
                    .is_some_and(|e| e.is_match_candidate(&cand))
                {
                    continue;
                }
                let op = self.c.ops[cr.op];
                // The same operation already removes an enclosing tree.
                if covering
                    .iter()
                    .any(|&t| self.out.findings[t].operation == op.name)
                {
                    continue;
                }
                if meta.is_none() {
                    match self.fs.metadata(id) {
                        Ok(m) => meta = Some(m),
                        Err(e) => {
                            self.warn_file(path, e);
                            break;
                        }
                    }
                }
                let Some(m) = meta.as_ref() else { break };
                let fs_path = self.fs_path(path);
                if let Some(f) = self.rule_finding(cr, op, pat, path, &fs_path, m, shadowed) {
                    let is_tree = f.action == ActionKind::DeleteTree && kind == FileKind::Directory;
                    self.out.findings.push(f);
                    if is_tree {
                        let idx = self.out.findings.len() - 1;
                        self.trees.entry(path.to_vec()).or_default().push(idx);
                    }
                }
            }
            self.matches = matched;
        }
        if kind == FileKind::Regular
            && let (Some(tx), Some(m)) = (self.jobs, meta)
        {
            let job = Job {
                fs: self.fs_index,
                path: path.to_vec(),
                fs_path: self.fs_path(path),
                meta: m,
                shadowed,
            };
            // Workers gone means the scan is being torn down; nothing to do.
            let _ = tx.send(job);
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn rule_finding(
        &mut self,
        cr: &CRule<'_>,
        op: &Operation,
        pat: &str,
        path: &[u8],
        fs_path: &[u8],
        m: &Metadata,
        shadowed: bool,
    ) -> Option<Finding> {
        let why = Why::Pattern {
            pattern: pat.to_string(),
        };
        let mut f = finding_from(
            op,
            cr.rule.action,
            self.fs_index,
            path,
            fs_path,
            m,
            shadowed,
            why,
        );
        let needs_text = cr.if_line.is_some() || cr.rule.action == ActionKind::Rewrite;
        let text = if needs_text {
            if m.size > MAX_REWRITE_SIZE {
                f.skipped = true;
                f.note = Some(format!(
                    "larger than {} MiB: not read to decide",
                    MAX_REWRITE_SIZE >> 20
                ));
                return Some(f);
            }
            match read_bounded(self.fs, m.id, MAX_REWRITE_SIZE) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.warn_file(path, e);
                    return None;
                }
            }
        } else {
            None
        };
        if let (Some(re), Some(t)) = (&cr.if_line, &text)
            && !lines(t).any(|l| re.is_match(strip_eol(l)))
        {
            return None;
        }
        match cr.rule.action {
            ActionKind::DeleteTree if m.kind == FileKind::Directory => {
                f.tree = Some(TreeStats {
                    files: 0,
                    dirs: 1,
                    bytes: 0,
                });
            }
            ActionKind::Truncate if m.size == 0 => return None,
            ActionKind::Report => f.note = cr.rule.reason.clone(),
            ActionKind::Rewrite => {
                let t = text.unwrap_or_default();
                let rw = if let Some(rep) = &cr.rule.replace {
                    if t == rep.as_bytes() {
                        return None;
                    }
                    if rep.len() as u64 > m.size {
                        f.skipped = true;
                        f.note = Some(format!(
                            "the replacement ({} bytes) is longer than the file ({} bytes); \
                             vmscrub only shortens files, so it is left as is",
                            rep.len(),
                            m.size
                        ));
                    }
                    Rewrite {
                        replace: Some(rep.clone()),
                        drop_lines: None,
                        dropped_lines: vec![],
                        dropped_count: 0,
                        new_size: if f.skipped { m.size } else { rep.len() as u64 },
                    }
                } else if let Some((re, src)) = &cr.drop_lines {
                    let mut dropped = vec![];
                    let mut count = 0u64;
                    let mut new_size = 0u64;
                    for (n, l) in lines(&t).enumerate() {
                        if re.is_match(strip_eol(l)) {
                            count += 1;
                            if dropped.len() < MAX_LISTED_LINES {
                                dropped.push(n as u64 + 1);
                            }
                        } else {
                            new_size += l.len() as u64;
                        }
                    }
                    if count == 0 {
                        return None;
                    }
                    Rewrite {
                        replace: None,
                        drop_lines: Some(src.clone()),
                        dropped_lines: dropped,
                        dropped_count: count,
                        new_size,
                    }
                } else {
                    return None;
                };
                f.rewrite = Some(rw);
            }
            _ => {}
        }
        Some(f)
    }
}

/// Re-walks a tree that holds kept paths and returns delete-tree findings for
/// the largest subtrees without any.
fn split_tree(
    fs: &dyn Filesystem,
    prefix_len: usize,
    tree: &Finding,
    kept: &[Vec<u8>],
) -> FsResult<Vec<Finding>> {
    let mut out = vec![];
    // Directories that are ancestors of a kept path (they must stay).
    let mut on_path: HashSet<Vec<u8>> = HashSet::new();
    for k in kept {
        for a in Walker::ancestors(k) {
            if a.len() >= tree.path.len() {
                on_path.insert(a.to_vec());
            }
        }
    }
    let kept_set: HashSet<&[u8]> = kept.iter().map(Vec::as_slice).collect();
    let mut todo: Vec<(NodeId, Vec<u8>)> = vec![(tree.node, tree.path.clone())];
    let mut budget = 1_000_000usize;
    while let Some((dir, dpath)) = todo.pop() {
        for e in fs.read_dir(dir)? {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return Err(crate::fs::FsError::Corrupt(
                    "tree too large to split".into(),
                ));
            }
            let mut p = dpath.clone();
            p.push(b'/');
            p.extend_from_slice(&e.name);
            if kept_set.contains(p.as_slice()) {
                continue;
            }
            if on_path.contains(&p) {
                todo.push((e.id, p));
                continue;
            }
            let m = fs.metadata(e.id)?;
            let mut stats = TreeStats::default();
            if m.kind == FileKind::Directory {
                stats.dirs = 1;
                let skipped = crate::fs::walk::walk(fs, e.id, &p, |w| {
                    if w.entry.kind == FileKind::Directory {
                        stats.dirs += 1;
                    } else {
                        stats.files += 1;
                        if w.entry.kind == FileKind::Regular {
                            stats.bytes = stats.bytes.saturating_add(fs.metadata(w.entry.id)?.size);
                        }
                    }
                    Ok(true)
                })?;
                // A split must see the whole tree to be right.
                if let Some(s) = skipped.into_iter().next() {
                    return Err(s.error);
                }
            }
            let mut f = tree.clone();
            f.fs_path = p.get(prefix_len..).map(<[u8]>::to_vec).unwrap_or_default();
            f.path_hex = crate::report::hex_if_not_utf8(&p);
            f.path = p;
            f.node = m.id;
            f.kind = m.kind;
            f.size = m.size;
            f.uid = m.uid;
            f.gid = m.gid;
            f.mode = m.mode;
            f.nlink = m.nlink;
            f.mtime = m.mtime;
            f.tree = (m.kind == FileKind::Directory).then_some(stats);
            f.note = Some(format!(
                "part of {}, which holds kept paths",
                display_path(&tree.path)
            ));
            out.push(f);
        }
    }
    Ok(out)
}

// --------------------------------------------------------------------- scan

/// Scans a guest. Errors only for an invalid `--keep` or rule; unreadable
/// filesystems and files become warnings.
pub fn scan(guest: &Guest, opts: &ScanOptions<'_>) -> Result<ScanResult, ScanError> {
    scan_digesting(guest, opts, Digests::Off).map(|(r, _)| r)
}

/// [`scan`], also taking every scanned file's content digest (and, with
/// [`Digests::Reuse`], judging known content without the detectors): what a
/// scrub's verification compares instead of reading every file again.
pub fn scan_digesting(
    guest: &Guest,
    opts: &ScanOptions<'_>,
    digests: Digests<'_>,
) -> Result<(ScanResult, ContentMemo), ScanError> {
    let c = compile(guest, opts)?;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    let scanner = if c.content_ops.is_empty() {
        None
    } else {
        opts.content
    };
    let content = workers::ContentOut::default();
    let mut outcomes: Vec<FsOutcome> = vec![];

    let (tx, rx) = mpsc::sync_channel::<Job>(256);
    let rx = Mutex::new(rx);
    std::thread::scope(|s| {
        if let Some(sc) = scanner {
            for _ in 0..threads {
                let (rx, content) = (&rx, &content);
                s.spawn(move || workers::work(guest, sc, rx, content, opts.progress, digests));
            }
        }
        let tx_ref = scanner.map(|_| tx.clone());
        let mut handles = vec![];
        for i in 0..guest.filesystems.len() {
            let tx_ref = tx_ref.clone();
            let c = &c;
            handles.push(
                s.spawn(move || walk_filesystem(c, guest, i, tx_ref.as_ref(), opts.progress)),
            );
        }
        drop(tx_ref);
        drop(tx);
        for h in handles {
            match h.join() {
                Ok(o) => outcomes.push(o),
                Err(_) => outcomes.push(FsOutcome {
                    warnings: vec![Warning {
                        kind: WarningKind::UnreadableFilesystem,
                        operation: None,
                        message: "a filesystem walker failed unexpectedly".into(),
                    }],
                    ..Default::default()
                }),
            }
        }
    });

    let mut findings = vec![];
    let mut warnings = vec![];
    let mut stats = ScanStats {
        filesystems_scanned: guest.filesystems.len(),
        ..Default::default()
    };
    let mut file_warnings = vec![];
    for o in outcomes {
        findings.extend(o.findings);
        stats.entries_walked += o.entries;
        for w in o.warnings {
            if w.kind == WarningKind::UnreadableFile {
                file_warnings.push(w);
            } else {
                warnings.push(w);
            }
        }
    }
    file_warnings.extend(content.errors.into_inner().unwrap_or_default());
    if let Ok((n, b)) = content.scanned.into_inner() {
        stats.files_content_scanned = n;
        stats.bytes_content_scanned = b;
    }

    // Content hits → findings, one per (file, operation).
    let mut unknown_ops: HashSet<String> = HashSet::new();
    let trust = opts
        .package_trust
        .then(|| crate::pkgtrust::PackageTrust::new(guest));
    let mut vendor = vec![];
    for (job, hits) in content.results.into_inner().unwrap_or_default() {
        let mut job_findings = vec![];
        let mut per_op: BTreeMap<usize, Vec<ContentHit>> = BTreeMap::new();
        for h in hits {
            let Some(&oi) = c.content_ops.get(&h.operation) else {
                if opts.catalogue.get(&h.operation).is_none() {
                    unknown_ops.insert(h.operation.clone());
                }
                continue;
            };
            if let Some((set, allow)) = &c.allow {
                let cand = candidate(&job.path);
                let allowed = set.matches_candidate(&cand).into_iter().any(|ai| {
                    allow.get(ai).is_some_and(|a| {
                        a.detector.as_ref().is_none_or(|d| *d == h.detector)
                            && a.hash.as_ref().is_none_or(|x| *x == h.hash)
                    })
                });
                if allowed {
                    continue;
                }
            }
            per_op.entry(oi).or_default().push(h);
        }
        for (oi, mut hits) in per_op {
            let op = c.ops[oi];
            let action = op
                .rules
                .iter()
                .find(|r| r.content)
                .map_or(ActionKind::Report, |r| r.action);
            let rule_except = op.rules.iter().filter(|r| r.content).any(|r| {
                r.except
                    .iter()
                    .flat_map(|p| pattern::expand(p, &c.expansions))
                    .any(|g| {
                        pattern::glob(&g).is_ok_and(|g| {
                            g.compile_matcher()
                                .is_match_candidate(&candidate(&job.path))
                        })
                    })
            });
            if rule_except {
                continue;
            }
            let (action, redaction, note) = if action == ActionKind::Redact {
                let fs = &*guest.filesystems[job.fs].fs;
                match redact::decide(fs, &job.path, &job.meta, &hits) {
                    (Some(r), _) => (ActionKind::Redact, Some(r), None),
                    (None, why) => (ActionKind::Delete, None, Some(why)),
                }
            } else {
                (action, None, None)
            };
            hits.sort_by(|a, b| a.offset.cmp(&b.offset).then(a.detector.cmp(&b.detector)));
            let total = hits.len();
            hits.truncate(MAX_LISTED_HITS);
            let mut f = finding_from(
                op,
                action,
                job.fs,
                &job.path,
                &job.fs_path,
                &job.meta,
                job.shadowed,
                Why::Content {
                    hits,
                    total_hits: total,
                },
            );
            f.redact = redaction;
            f.note = note;
            job_findings.push(f);
        }
        match &trust {
            Some(t) if !job_findings.is_empty() && !job.shadowed => {
                match crate::pkgtrust::vendor_note(t, &job.path, job.fs, &job.meta, &job_findings) {
                    Some(n) => vendor.push(n),
                    None => findings.extend(job_findings),
                }
            }
            _ => findings.extend(job_findings),
        }
    }
    if let Some(t) = &trust {
        warnings.extend(t.warnings().into_iter().map(|message| Warning {
            kind: WarningKind::PackageDatabase,
            operation: None,
            message,
        }));
    }
    vendor.sort_by(|a, b| (a.filesystem, &a.path).cmp(&(b.filesystem, &b.path)));
    for name in unknown_ops {
        warnings.push(Warning {
            kind: WarningKind::NoContentDetection,
            operation: Some(name.clone()),
            message: format!("a detector reported operation `{name}`, which the catalogue does not have; its hits were dropped"),
        });
    }

    let order: HashMap<&str, usize> = c
        .ops
        .iter()
        .enumerate()
        .map(|(i, o)| (o.name.as_str(), i))
        .collect();
    findings.sort_by(|a, b| {
        order
            .get(a.operation.as_str())
            .cmp(&order.get(b.operation.as_str()))
            .then(a.filesystem.cmp(&b.filesystem))
            .then(a.path.cmp(&b.path))
    });

    let mut operations = vec![];
    for (oi, op) in c.ops.iter().enumerate() {
        if !opts.selection.contains(&op.name) {
            continue;
        }
        let mine: Vec<&Finding> = findings.iter().filter(|f| f.operation == op.name).collect();
        operations.push(OperationStatus {
            name: op.name.clone(),
            heading: op.heading.clone(),
            default: op.default,
            actions: op.actions(),
            applies: c.active[oi],
            content: op.is_content(),
            findings: mine.len(),
            bytes: mine.iter().filter(|f| !f.skipped).map(|f| f.bytes()).sum(),
        });
    }

    warnings.extend(guest_warnings(guest, &c, &findings, opts));
    let extra = file_warnings.len().saturating_sub(MAX_FILE_WARNINGS);
    file_warnings.truncate(MAX_FILE_WARNINGS);
    warnings.extend(file_warnings);
    if extra > 0 {
        warnings.push(Warning {
            kind: WarningKind::UnreadableFile,
            operation: None,
            message: format!("{extra} more files could not be read"),
        });
    }
    let memo = content.memo.into_inner().unwrap_or_default();
    Ok((
        ScanResult {
            findings,
            warnings,
            operations,
            stats,
            vendor,
        },
        memo,
    ))
}

/// Walks filesystem `i` of `guest` from its place in the guest's tree, matching
/// every path against the compiled rules and queueing regular files on `jobs`
/// for the content workers; splits `delete-tree` findings around kept paths.
fn walk_filesystem(
    c: &Compiled<'_>,
    guest: &Guest,
    i: usize,
    jobs: Option<&mpsc::SyncSender<Job>>,
    progress: Option<&ScanProgress>,
) -> FsOutcome {
    let mount = guest.mount_point(i).map(<[u8]>::to_vec);
    let other_mounts = if guest.root == Some(i) {
        guest
            .mounts
            .iter()
            .filter(|m| m.fs != i)
            .map(|m| m.path.clone())
            .collect()
    } else {
        vec![]
    };
    let prefix = match &mount {
        Some(p) if p != b"/" => p.clone(),
        _ => vec![],
    };
    let mut w = Walker {
        c,
        guest,
        fs_index: i,
        fs: &*guest.filesystems[i].fs,
        mounted: mount.is_some(),
        other_mounts,
        prefix: prefix.clone(),
        jobs,
        out: FsOutcome::default(),
        trees: HashMap::new(),
        matches: vec![],
        progress,
    };
    let fs = w.fs;
    let root = fs.root();
    let start: Vec<u8> = prefix.clone();
    let r = crate::fs::walk::walk(fs, root, &start, |e| {
        Ok(w.visit(&e.path, e.entry.id, e.entry.kind))
    });
    match r {
        Ok(skipped) => {
            // Each skipped directory is a part of the filesystem nobody
            // looked at: a warning of its own (the first ones), then a count.
            let n = skipped.len();
            for s in skipped.iter().take(MAX_SKIPPED_DIRS) {
                w.out.warnings.push(Warning {
                    kind: WarningKind::UnreadableFilesystem,
                    operation: None,
                    message: format!(
                        "{}: directory {} could not be read; nothing below it was scanned: {}",
                        guest.filesystems[i].identity.describe(),
                        display_path(&s.path),
                        s.error
                    ),
                });
            }
            if n > MAX_SKIPPED_DIRS {
                w.out.warnings.push(Warning {
                    kind: WarningKind::UnreadableFilesystem,
                    operation: None,
                    message: format!(
                        "{}: {} more directories could not be read",
                        guest.filesystems[i].identity.describe(),
                        n - MAX_SKIPPED_DIRS
                    ),
                });
            }
        }
        Err(e) => w.out.warnings.push(Warning {
            kind: WarningKind::UnreadableFilesystem,
            operation: None,
            message: format!(
                "{}: the walk stopped early, files after the error were not scanned: {e}",
                guest.filesystems[i].identity.describe()
            ),
        }),
    }
    // Split trees that hold kept paths.
    let mut by_tree: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
    for (t, p) in std::mem::take(&mut w.out.kept_in_trees) {
        by_tree.entry(t).or_default().push(p);
    }
    let mut remove = vec![];
    let mut add = vec![];
    for (t, kept) in by_tree {
        let tree = &w.out.findings[t];
        match split_tree(fs, prefix.len(), tree, &kept) {
            Ok(parts) => {
                remove.push(t);
                add.extend(parts);
            }
            Err(e) => {
                let f = &mut w.out.findings[t];
                f.skipped = true;
                f.note = Some(format!("holds kept paths and could not be split: {e}"));
            }
        }
    }
    for t in remove.into_iter().rev() {
        w.out.findings.remove(t);
    }
    w.out.findings.extend(add);
    w.out
}

/// What the `lvm-metadata` operation reports: per volume group, the metadata
/// copies its areas keep and the hosts they name (scrub leaves them as they are).
fn lvm_metadata_warnings(guest: &Guest) -> Vec<Warning> {
    guest
        .lvm_history
        .iter()
        .map(|h| Warning {
            kind: WarningKind::LvmMetadata,
            operation: Some("lvm-metadata".into()),
            message: format!(
                "volume group {}: its metadata areas keep {} cop{} of the metadata{}; \
             scrub leaves LVM metadata byte-identical, so they ship with the image",
                h.vg,
                h.copies,
                if h.copies == 1 { "y" } else { "ies" },
                if h.hosts.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", naming the host(s) that wrote them: {}",
                        crate::report::safe_text(&h.hosts.join(", "))
                    )
                }
            ),
        })
        .collect()
}

fn guest_warnings(
    guest: &Guest,
    c: &Compiled<'_>,
    findings: &[Finding],
    opts: &ScanOptions<'_>,
) -> Vec<Warning> {
    let mut w = vec![];
    let warn = |kind, operation: Option<&str>, message: String| Warning {
        kind,
        operation: operation.map(String::from),
        message,
    };
    for u in &guest.unreadable {
        // Swap holds memory pages, not files: nothing to scan, and the `swap`
        // operation re-initializes it, so it is not unknown content.
        let kind = if u.identity.fs_type.as_deref() == Some("swap") {
            WarningKind::SwapSpace
        } else {
            WarningKind::UnreadableFilesystem
        };
        w.push(warn(
            kind,
            (kind == WarningKind::SwapSpace).then_some("swap"),
            format!("{}: not scanned: {}", u.identity.describe(), u.error),
        ));
    }
    if opts.selection.contains("lvm-metadata") {
        w.extend(lvm_metadata_warnings(guest));
    }
    if guest.root.is_none() && !guest.data_volume {
        w.push(warn(
            WarningKind::GuestView,
            None,
            "no operating system found (no /etc/os-release on any filesystem): path operations \
             did not run; content detectors scanned every filesystem by partition"
                .into(),
        ));
    }
    for n in &guest.notes {
        w.push(warn(WarningKind::GuestView, None, n.clone()));
    }
    for i in guest.unmounted() {
        if guest.root.is_some() {
            w.push(warn(
                WarningKind::GuestView,
                None,
                format!(
                    "{} is not mounted by the OS (not in /etc/fstab): only content detectors scanned it",
                    guest.filesystems[i].identity.describe()
                ),
            ));
        }
    }
    let (_, bad_homes) = guest.homes();
    for h in bad_homes {
        w.push(warn(
            WarningKind::Pattern,
            None,
            format!(
                "home directory {} is not UTF-8: {{home}} rules do not cover it",
                display_path(&h)
            ),
        ));
    }
    let count = |name: &str| {
        findings
            .iter()
            .filter(|f| f.operation == name && !f.skipped)
            .count()
    };
    if c.ops
        .iter()
        .enumerate()
        .any(|(i, o)| c.active[i] && o.name == "ssh-hostkeys")
        && count("ssh-hostkeys") > 0
        && guest.ssh_hostkey_regeneration().is_empty()
    {
        w.push(warn(
            WarningKind::SshHostKeys,
            Some("ssh-hostkeys"),
            "SSH host keys are removed, and nothing in the guest regenerates them (no cloud-init, \
             no sshd-keygen unit, no `ssh-keygen -A` in a unit or rc script): sshd will not start \
             on the clone. Add a first-boot hook (e.g. `dpkg-reconfigure openssh-server`) or \
             deselect with --operations defaults,-ssh-hostkeys"
                .into(),
        ));
    }
    for (i, op) in c.ops.iter().enumerate() {
        if !c.active[i] {
            continue;
        }
        if let Some(n) = &op.needs_guest {
            let due = match op.needs_guest_when {
                NeedsGuestWhen::Always => true,
                NeedsGuestWhen::Findings => count(&op.name) > 0,
            };
            if due {
                w.push(warn(
                    WarningKind::NotPerformedOffline,
                    Some(&op.name),
                    format!("not performed offline: {n}"),
                ));
            }
        }
    }
    let removes = |f: &&Finding| {
        matches!(f.action, ActionKind::Delete | ActionKind::DeleteTree)
            && f.kind == FileKind::Regular
            && !f.skipped
    };
    // Names of each inode that something removes: when every name of an inode
    // goes, its content goes too, and there is nothing to warn about.
    let mut names: HashMap<(usize, NodeId), HashSet<&[u8]>> = HashMap::new();
    for f in findings.iter().filter(removes) {
        names
            .entry((f.filesystem, f.node))
            .or_default()
            .insert(&f.fs_path);
    }
    let hard: Vec<&Finding> = findings
        .iter()
        .filter(removes)
        .filter(|f| {
            f.nlink > 1
                && names
                    .get(&(f.filesystem, f.node))
                    .is_none_or(|n| (n.len() as u64) < u64::from(f.nlink))
        })
        .collect();
    for f in hard.iter().take(20) {
        w.push(warn(
            WarningKind::HardLink,
            Some(&f.operation),
            format!(
                "{} has {} hard links: removing this name leaves the content reachable through the others",
                display_path(&f.path),
                f.nlink
            ),
        ));
    }
    if opts.content.is_none() {
        let names: Vec<&str> = c
            .content_ops
            .keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !names.is_empty() {
            w.push(warn(
                WarningKind::NoContentDetection,
                None,
                format!(
                    "content detectors are not available in this build: {} found nothing by content",
                    names.join(", ")
                ),
            ));
        }
    }
    w
}

// --------------------------------------------------------------------- plan

/// One action the scrub performs on one path, after deduplication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedAction {
    pub filesystem: usize,
    #[serde(serialize_with = "crate::report::ser_path")]
    pub path: Vec<u8>,
    #[serde(serialize_with = "crate::report::ser_path")]
    pub fs_path: Vec<u8>,
    pub node: NodeId,
    pub action: ActionKind,
    /// Every operation that asked for something on this path.
    pub operations: Vec<String>,
    /// For a rewrite: the replacement, or every `drop-lines` regex to apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace: Option<String>,
    pub drop_lines: Vec<String>,
    /// For a redaction (or a rewrite that also redacts): the secrets' byte ranges
    /// (offset, end) to overwrite with the placeholder, before any line drops.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<(u64, u64)>,
    /// A file of the root filesystem hidden under another filesystem's mount
    /// point (its guest path names the other filesystem's file).
    #[serde(skip)]
    pub shadowed: bool,
}

impl ScanResult {
    /// Deduplicates findings into one action per (filesystem, path):
    /// - `report` and skipped findings plan nothing;
    /// - anything below a `delete-tree` directory of the same filesystem is
    ///   covered by it (content hits inside it included);
    /// - several operations on one path: the strongest action wins
    ///   (delete-tree > delete > truncate > rewrite > redact); rewrites merge (a
    ///   `replace` wins over line drops; the drop regexes are all applied), and a
    ///   rewrite by line drops also carries out the redactions of the same file.
    ///
    /// Hard links are separate names: each is planned on its own path.
    pub fn plan(&self) -> Vec<PlannedAction> {
        let live: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.action != ActionKind::Report && !f.skipped)
            .collect();
        let trees: HashSet<(usize, &[u8])> = live
            .iter()
            .filter(|f| f.action == ActionKind::DeleteTree && f.kind == FileKind::Directory)
            .map(|f| (f.filesystem, f.fs_path.as_slice()))
            .collect();
        let mut by_path: BTreeMap<(usize, Vec<u8>), PlannedAction> = BTreeMap::new();
        for f in live {
            if Walker::ancestors(&f.fs_path).any(|a| trees.contains(&(f.filesystem, a))) {
                continue;
            }
            let e = by_path
                .entry((f.filesystem, f.fs_path.clone()))
                .or_insert_with(|| PlannedAction {
                    filesystem: f.filesystem,
                    path: f.path.clone(),
                    fs_path: f.fs_path.clone(),
                    node: f.node,
                    action: f.action,
                    operations: vec![],
                    replace: None,
                    drop_lines: vec![],
                    redact: vec![],
                    shadowed: f.shadowed,
                });
            if !e.operations.contains(&f.operation) {
                e.operations.push(f.operation.clone());
            }
            if f.action.strength() > e.action.strength() {
                e.action = f.action;
            }
            if let Some(r) = &f.redact {
                e.redact.extend_from_slice(&r.spans);
            }
            if let Some(rw) = &f.rewrite {
                if e.replace.is_none() {
                    e.replace = rw.replace.clone();
                }
                if let Some(d) = &rw.drop_lines
                    && !e.drop_lines.contains(d)
                {
                    e.drop_lines.push(d.clone());
                }
            }
        }
        let mut out: Vec<PlannedAction> = by_path.into_values().collect();
        for p in &mut out {
            if p.action != ActionKind::Rewrite {
                p.replace = None;
                p.drop_lines.clear();
            } else if p.replace.is_some() {
                p.drop_lines.clear();
                p.redact.clear(); // the replacement is catalogue data
            }
            if !matches!(p.action, ActionKind::Rewrite | ActionKind::Redact) {
                p.redact.clear();
            }
            p.redact = redact::merge(std::mem::take(&mut p.redact));
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests;
