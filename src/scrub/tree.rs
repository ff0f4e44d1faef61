//! Verification by trees: the output holds every path of the input the plan
//! did not remove, as it was.
//!
//! Before any edit, every filesystem the scrub reads is walked ([`snapshot`]):
//! for each path its kind, permissions, owner, mtime and ctime, size and link
//! target, and a digest (xxh3-128) of a regular file's content. After the
//! output is written, its trees are walked the same way ([`compare`]) and every
//! kept path must be there with the same facts and a byte-identical content.
//! What the plan removed (a deleted path and everything under it) is left out;
//! a truncated, rewritten or redacted file keeps its kind, mode, owner and
//! times but not its size or content (the content check of rewrites is
//! `verify::check_edits`'s). Anything readable in the input and unreadable in
//! the output is a failure: a damaged output must not pass for a clean one.
//!
//! Content digests come from the scans ([`ContentMemo`]): the scrub's scan of
//! the input and verification's re-scan of the output each read every file
//! once anyway, so comparing trees costs a walk of metadata, not two more full
//! reads. A file a scan did not read (no content detector selected) is read
//! here.
//!
//! Directory sizes and link counts are not compared: removing entries
//! legitimately changes them. Access times are not compared either.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;

use super::apply::Step;
use crate::fs::{FileKind, Filesystem, display_path};
use crate::guest::Guest;
use crate::ops::ActionKind;
use crate::scan::ContentMemo;

/// Most problems listed per filesystem.
const MAX_LISTED: usize = 20;

/// What is compared of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Facts {
    kind: FileKind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    ctime: (i64, u32),
    /// Regular files and symlinks: size; directories: none.
    size: Option<u64>,
    link: Option<Vec<u8>>,
    /// A regular file's content digest.
    digest: Option<u128>,
    /// The node (not compared: only to know which paths an edit reaches).
    id: crate::fs::NodeId,
}

/// One filesystem's tree: path → facts, and path → why it could not be read.
#[derive(Default)]
struct Tree {
    paths: BTreeMap<Vec<u8>, Facts>,
    unreadable: BTreeMap<Vec<u8>, String>,
}

/// How the plan changes a path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Gone, with everything under it.
    Removed,
    /// Kept with a new size and content.
    Edited,
}

/// The input's trees, taken before any edit.
pub struct Snapshot {
    /// Per filesystem: its volume (partition and LV), description, tree and the
    /// plan's changes.
    filesystems: Vec<(crate::image::VolumeKey, String, Tree, Changes)>,
    /// The input scan's digests and judgements, which the output's re-scan
    /// reuses for content it finds unchanged.
    memo: ContentMemo,
}

impl Snapshot {
    pub fn memo(&self) -> &ContentMemo {
        &self.memo
    }
}

/// The plan's changes on one filesystem: by path, and the nodes whose content
/// an edit changes (under every name they have).
#[derive(Default)]
struct Changes {
    paths: HashMap<Vec<u8>, Change>,
    edited_nodes: std::collections::HashSet<crate::fs::NodeId>,
}

/// Walks every filesystem of `guest` (the input, before the edits of `steps`);
/// `memo` holds the digests its scan took.
pub fn snapshot(guest: &Guest, steps: &[Step], memo: ContentMemo) -> Result<Snapshot> {
    let mut filesystems = Vec::new();
    for (i, g) in guest.filesystems.iter().enumerate() {
        let mut changes = Changes::default();
        for s in steps.iter().filter(|s| s.filesystem == i) {
            let c = match s.action {
                ActionKind::Delete | ActionKind::DeleteTree => Change::Removed,
                _ => {
                    changes.edited_nodes.insert(s.node);
                    Change::Edited
                }
            };
            changes.paths.insert(normal(&s.fs_path), c);
        }
        filesystems.push((
            g.identity.volume_key(),
            g.identity.describe(),
            tree_of(&*g.fs, i, &memo)?,
            changes,
        ));
    }
    Ok(Snapshot { filesystems, memo })
}

/// The problems of `output` against the snapshot (empty: the trees agree);
/// `memo` holds the digests the output's re-scan took.
pub fn compare(before: &Snapshot, output: &Guest, memo: &ContentMemo) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for (part, label, tree, changes) in &before.filesystems {
        // Readable in the input, not in the output: `verify` says so.
        let Some((i, g)) = output
            .filesystems
            .iter()
            .enumerate()
            .find(|(_, f)| f.identity.volume_key() == *part)
        else {
            continue;
        };
        let after = tree_of(&*g.fs, i, memo)?;
        let mut found = Vec::new();
        for (path, want) in &tree.paths {
            let change = change_of(&changes.paths, path);
            if change == Some(Change::Removed) {
                continue;
            }
            let edited = change == Some(Change::Edited) || changes.edited_nodes.contains(&want.id);
            if let Some(why) = after.unreadable.get(path) {
                found.push(format!(
                    "{}: unreadable in the output: {why}",
                    display_path(path)
                ));
                continue;
            }
            let Some(got) = after.paths.get(path) else {
                found.push(format!("{}: missing from the output", display_path(path)));
                continue;
            };
            if let Some(d) = differs(want, got, edited) {
                found.push(format!("{}: {d}", display_path(path)));
            }
        }
        for (path, why) in &after.unreadable {
            if !tree.unreadable.contains_key(path)
                && !tree.paths.contains_key(path)
                && change_of(&changes.paths, path) != Some(Change::Removed)
            {
                found.push(format!(
                    "{}: unreadable in the output: {why}",
                    display_path(path)
                ));
            }
        }
        let n = found.len();
        problems.extend(
            found
                .into_iter()
                .take(MAX_LISTED)
                .map(|p| format!("{label}: {p}")),
        );
        if n > MAX_LISTED {
            problems.push(format!("{label}: … {n} paths in all differ from the input"));
        }
    }
    Ok(problems)
}

/// What differs between a kept path's input and output facts.
fn differs(want: &Facts, got: &Facts, edited: bool) -> Option<String> {
    let mut d = Vec::new();
    if want.kind != got.kind {
        d.push(format!("kind {:?} became {:?}", want.kind, got.kind));
    }
    if want.mode != got.mode {
        d.push(format!("mode {:o} became {:o}", want.mode, got.mode));
    }
    if (want.uid, want.gid) != (got.uid, got.gid) {
        d.push(format!(
            "owner {}:{} became {}:{}",
            want.uid, want.gid, got.uid, got.gid
        ));
    }
    if want.mtime != got.mtime || want.ctime != got.ctime {
        d.push("its times changed".to_string());
    }
    if want.link != got.link {
        d.push("its link target changed".to_string());
    }
    if !edited {
        if want.size != got.size {
            d.push(format!(
                "size {} became {}",
                want.size.unwrap_or(0),
                got.size.unwrap_or(0)
            ));
        } else if want.digest != got.digest {
            d.push("its content differs from the input's".to_string());
        }
    }
    (!d.is_empty()).then(|| d.join(", "))
}

/// How the plan changes `path`: removed if it or a parent was removed.
fn change_of(changes: &HashMap<Vec<u8>, Change>, path: &[u8]) -> Option<Change> {
    let mut p = path;
    let mut first = true;
    loop {
        match changes.get(p) {
            Some(Change::Removed) => return Some(Change::Removed),
            Some(Change::Edited) if first => return Some(Change::Edited),
            _ => {}
        }
        first = false;
        let i = p.iter().rposition(|&b| b == b'/')?;
        if i == 0 {
            return None;
        }
        p = &p[..i];
    }
}

/// `/a/b` for `a/b`, `/a/b/`, `/a/b`.
fn normal(p: &[u8]) -> Vec<u8> {
    let t = p.strip_suffix(b"/").unwrap_or(p);
    let mut v = Vec::with_capacity(t.len() + 1);
    if !t.starts_with(b"/") {
        v.push(b'/');
    }
    v.extend_from_slice(t);
    v
}

/// Walks `fs` (filesystem `index` of its guest), with each regular file's
/// digest from `memo`, or read (files in parallel) where the scan took none.
fn tree_of(fs: &dyn Filesystem, index: usize, memo: &ContentMemo) -> Result<Tree> {
    let mut t = Tree::default();
    let mut found: Vec<(Vec<u8>, crate::fs::NodeId)> = Vec::new();
    let skipped = crate::fs::walk::walk(fs, fs.root(), b"", |e| {
        found.push((e.path.clone(), e.entry.id));
        Ok(true)
    })?;
    let opts = vmscrub_parmap::Options::with_threads(vmscrub_parmap::available_threads());
    vmscrub_parmap::map_ordered(
        &opts,
        found,
        |(path, id)| {
            let known = memo.digests.get(&(index, id)).copied();
            Ok::<_, std::io::Error>((path, facts(fs, id, known)))
        },
        |(path, f)| {
            match f {
                Ok(f) => {
                    t.paths.insert(path, f);
                }
                Err(err) => {
                    t.unreadable.insert(path, err.to_string());
                }
            }
            Ok(())
        },
    )?;
    for s in skipped {
        let path = if s.path.is_empty() {
            b"/".to_vec()
        } else {
            s.path
        };
        t.unreadable
            .insert(path, format!("its entries cannot be listed: {}", s.error));
    }
    Ok(t)
}

fn facts(
    fs: &dyn Filesystem,
    id: crate::fs::NodeId,
    known: Option<u128>,
) -> crate::fs::FsResult<Facts> {
    let m = fs.metadata(id)?;
    let (size, link, digest) = match m.kind {
        FileKind::Directory => (None, None, None),
        FileKind::Symlink => (Some(m.size), Some(fs.read_link(id)?), None),
        FileKind::Regular => {
            let d = match known {
                Some(d) => d,
                None => crate::scan::memo::digest_of(fs.open(id)?)?,
            };
            (Some(m.size), None, Some(d))
        }
        _ => (Some(m.size), None, None),
    };
    Ok(Facts {
        kind: m.kind,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime: (m.mtime.sec, m.mtime.nsec),
        ctime: (m.ctime.sec, m.ctime.nsec),
        size,
        link,
        digest,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_covers_children_and_edits_only_the_path() {
        let mut c = HashMap::new();
        c.insert(b"/home/a".to_vec(), Change::Removed);
        c.insert(b"/etc/f".to_vec(), Change::Edited);
        assert!(change_of(&c, b"/home/a/x/y") == Some(Change::Removed));
        assert!(change_of(&c, b"/home/a") == Some(Change::Removed));
        assert!(change_of(&c, b"/home/ab").is_none());
        assert!(change_of(&c, b"/etc/f") == Some(Change::Edited));
        assert!(change_of(&c, b"/etc/f/g").is_none());
        assert_eq!(normal(b"home/a/"), b"/home/a".to_vec());
    }
}
