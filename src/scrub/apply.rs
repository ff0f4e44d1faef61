//! Carrying out a filesystem's planned actions with its editor, on the overlay.
//!
//! Every filesystem's editor is driven through the one seam of `editors`
//! ([`FsEditor`]): the plan runs the same way on ext2/3/4, FAT and XFS. The
//! device is a slice of the overlay, so the source image is never written.
//!
//! An action that cannot be carried out (a refused filesystem, a rewrite that
//! would need new space, a corrupt structure) fails the whole scrub: a tool
//! that was asked to remove a secret must not quietly publish an image that
//! still holds it. The message names the path and what to do.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use vmscrub_blockdev::WriteAt;
use zeroize::Zeroizing;

use crate::fs::{FileKind, FsType, NodeId, display_path};
use crate::ops::ActionKind;

use super::editors::{Ext4Editor, FatEditor, FsEditor, XfsEditor};

/// One action on one filesystem, ready to run.
pub struct Step {
    pub filesystem: usize,
    /// Guest path (for messages and the report).
    pub path: Vec<u8>,
    /// Path inside the filesystem (what the editor resolves).
    pub fs_path: Vec<u8>,
    pub node: NodeId,
    pub kind: FileKind,
    /// Size before the action (a regular file's content).
    pub size: u64,
    pub action: ActionKind,
    pub operations: Vec<String>,
    /// For a rewrite: the new content, computed from the current one.
    pub content: Option<Zeroizing<Vec<u8>>>,
    /// Where its files go in the recovery archive.
    pub archive_path: Vec<u8>,
}

/// What one action did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub filesystem: usize,
    #[serde(serialize_with = "crate::report::ser_path")]
    pub path: Vec<u8>,
    /// The path inside its filesystem.
    #[serde(serialize_with = "crate::report::ser_path")]
    pub fs_path: Vec<u8>,
    /// `fs_path`'s bytes in hex when they are not UTF-8 (the escaped form is
    /// then ambiguous).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_path_hex: Option<String>,
    pub action: ActionKind,
    pub operations: Vec<String>,
    /// Non-directory entries and directories removed.
    pub files: u64,
    pub dirs: u64,
    /// Bytes of content removed (a shrunk file: what it lost).
    pub bytes: u64,
    /// A truncated or rewritten file's new size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_size: Option<u64>,
    /// Something the user must know (an inode kept alive by another name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Outcome {
    fn new(s: &Step) -> Outcome {
        Outcome {
            filesystem: s.filesystem,
            path: s.path.clone(),
            fs_path: s.fs_path.clone(),
            fs_path_hex: crate::report::hex_if_not_utf8(&s.fs_path),
            action: s.action,
            operations: s.operations.clone(),
            files: 0,
            dirs: 0,
            bytes: 0,
            new_size: None,
            note: None,
        }
    }
}

/// Everything one filesystem's edit did.
#[derive(Debug, Default)]
pub struct Applied {
    pub outcomes: Vec<Outcome>,
    /// Bytes of the volume that now read as zeros (freed blocks, slack, the
    /// journal's log, wiped inode slots are within blocks written).
    pub zeroed: u64,
    /// Nodes a step removed a name of, that live on through another name.
    pub survivors: HashSet<NodeId>,
    /// What the journal replay did, for ext3/4 needing recovery.
    pub notes: Vec<String>,
    /// The free space the editor zeroed with its edits, when it did.
    pub free_zeroed: Option<u64>,
}

/// Runs `steps` (all on the filesystem on `dev`) with the editor for `fs_type`;
/// `zero_free`: the scrub zeroes free space, which an editor may do with its
/// edits (see [`Applied::free_zeroed`]).
pub fn apply<D: WriteAt + Clone + 'static>(
    dev: D,
    fs_type: FsType,
    label: &str,
    steps: &[Step],
    zero_free: bool,
) -> anyhow::Result<Applied> {
    let mut out = Applied::default();
    let mut ed = open_editor(dev.clone(), fs_type, zero_free, &mut out.notes)
        .map_err(|e| refused(label, steps, e))?;
    // Node → (its last unlink's outcome, links left after it).
    let mut links: HashMap<NodeId, (usize, u32)> = HashMap::new();
    for s in steps {
        let mut o = Outcome::new(s);
        match s.action {
            ActionKind::DeleteTree if s.kind == FileKind::Directory => {
                // Counts come from the capture's walk of the same tree (the
                // caller fills them in), the same way on every filesystem.
                let kept = ed.remove_tree(&s.fs_path).map_err(|e| failed(s, e))?;
                if !kept.is_empty() {
                    out.survivors.extend(kept.iter().map(|(n, _)| *n));
                    o.note = Some(kept_note(&kept));
                }
            }
            // A delete-tree that matched a file is a plain unlink.
            ActionKind::Delete | ActionKind::DeleteTree => {
                let r = ed.remove(&s.fs_path).map_err(|e| failed(s, e))?;
                o.files = 1;
                o.bytes = if s.kind == FileKind::Regular {
                    s.size
                } else {
                    0
                };
                if let Some(n) = r.node {
                    links.insert(n, (out.outcomes.len(), r.links_left));
                }
            }
            ActionKind::Truncate => {
                let n = ed.truncate(&s.fs_path).map_err(|e| failed(s, e))?;
                o.bytes = s.size.saturating_sub(n);
                o.new_size = Some(n);
            }
            ActionKind::Rewrite | ActionKind::Redact => {
                let n = ed
                    .rewrite(&s.fs_path, new_content(s))
                    .map_err(|e| failed(s, e))?;
                o.bytes = s.size.saturating_sub(n);
                o.new_size = Some(n);
            }
            ActionKind::Report => continue,
        }
        out.outcomes.push(o);
    }
    // A later step may have removed the node's other names: only what is
    // still linked after the last step survives.
    for (node, (at, left)) in links {
        if left > 0 {
            out.survivors.insert(node);
            if let Some(o) = out.outcomes.get_mut(at) {
                o.note = Some(format!(
                    "inode {node} keeps its content through {left} other name(s)"
                ));
            }
        }
    }
    let fin = ed.finish()?;
    out.zeroed = fin.zeroed;
    out.free_zeroed = fin.free_zeroed;
    out.notes.extend(fin.notes);
    if matches!(fs_type, FsType::Ext2 | FsType::Ext3 | FsType::Ext4) {
        if fault("corrupt-dir-block") {
            corrupt_parent_dir(&dev, steps)?;
        }
        if fault("corrupt-kept-file") {
            corrupt_kept_file(&dev, steps)?;
        }
    }
    Ok(out)
}

/// The editor for `fs_type` on `dev`; what opening it did goes to `notes`.
fn open_editor<D: WriteAt + Clone + 'static>(
    dev: D,
    fs_type: FsType,
    zero_free: bool,
    notes: &mut Vec<String>,
) -> anyhow::Result<Box<dyn FsEditor>> {
    Ok(match fs_type {
        FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => {
            let (ed, n) = Ext4Editor::open(dev)?;
            notes.extend(n);
            Box::new(ed)
        }
        FsType::Vfat => Box::new(FatEditor::open(dev)?),
        FsType::Xfs => {
            let (ed, n) = XfsEditor::open(dev, zero_free)?;
            notes.extend(n);
            Box::new(ed)
        }
        FsType::Directory => anyhow::bail!("a host directory is never edited"),
    })
}

fn kept_note(kept: &[(NodeId, Vec<u8>)]) -> String {
    format!(
        "{} file(s) keep their content through names outside the tree: {}",
        kept.len(),
        kept.iter()
            .take(5)
            .map(|(_, p)| display_path(p))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Fault injection for the tests of verification (debug builds only): with
/// `VMSCRUB_FAULT=keep-freed`, freed ranges are not zeroed, so removed content
/// stays in the output and verification must catch it.
pub fn fault(name: &str) -> bool {
    cfg!(debug_assertions)
        && std::env::var("VMSCRUB_FAULT").is_ok_and(|v| v.split(',').any(|x| x == name))
}

/// What a rewrite or redaction writes: the step's content (with the
/// `short-rewrite` fault, one byte short, so tests see verification catch it).
fn new_content(s: &Step) -> &[u8] {
    let c = s.content.as_deref().map_or(&[][..], |c| c.as_slice());
    if fault("short-rewrite") {
        &c[..c.len().saturating_sub(1)]
    } else {
        c
    }
}

/// The editor refused the whole filesystem.
fn refused(label: &str, steps: &[Step], e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot edit {label}, where {} action(s) are planned (first: {} {}): {e}; nothing was \
         written. Leave them out with --operations or --keep to scrub the rest",
        steps.len(),
        steps.first().map_or("", |s| s.action.as_str()),
        steps
            .first()
            .map_or(String::new(), |s| display_path(&s.path)),
    )
}

fn failed(s: &Step, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot {} {} ({}): {e}; nothing was written. Exempt it with --keep, or leave out \
         the operation with --operations",
        s.action.as_str(),
        display_path(&s.path),
        s.operations.join(", ")
    )
}

/// Fault injection (`VMSCRUB_FAULT=corrupt-dir-block`, debug builds): after the
/// edits are written, the first block of the nearest directory above the first
/// step's path that has one (kept, and edited by the scrub; inline directories
/// have none) is overwritten with garbage, so tests see the tree comparison
/// reject an output that lost a directory.
fn corrupt_parent_dir<D: WriteAt + Clone>(dev: &D, steps: &[Step]) -> anyhow::Result<()> {
    use crate::fs::Filesystem;
    let Some(s) = steps.first() else {
        return Ok(());
    };
    let fs = crate::fs::ext4::Ext4Fs::open(dev.clone(), FsType::Ext4)?;
    let bs = u64::from(fs.inner().block_size());
    let mut dir = s.fs_path.clone();
    while let Some(i) = dir.iter().rposition(|&b| b == b'/') {
        dir.truncate(i);
        let path = if dir.is_empty() { &b"/"[..] } else { &dir };
        let ino = u32::try_from(fs.lookup(path)?)?;
        if let Some(block) = fs.inner().extents(ino)?.lookup(0) {
            eprintln!("vmscrub: fault: corrupting {}", display_path(path));
            dev.write_all_at(&vec![0xA5; bs as usize], block * bs)?;
            return Ok(());
        }
    }
    anyhow::bail!("fault: no directory above the first step has a block")
}

/// The `corrupt-kept-file` fault: inverts the first block of the first
/// regular file (of a block or more) the plan keeps, so tests see the tree
/// comparison catch a kept file whose content changed.
fn corrupt_kept_file<D: WriteAt + Clone>(dev: &D, steps: &[Step]) -> anyhow::Result<()> {
    use crate::fs::Filesystem;
    let fs = crate::fs::ext4::Ext4Fs::open(dev.clone(), FsType::Ext4)?;
    let bs = u64::from(fs.inner().block_size());
    let planned = |p: &[u8]| steps.iter().any(|s| p.starts_with(&s.fs_path));
    let mut target = None;
    crate::fs::walk::walk(&fs, fs.root(), b"", |e| {
        if target.is_none()
            && e.entry.kind == FileKind::Regular
            && !planned(&e.path)
            && fs.metadata(e.entry.id)?.size >= bs
        {
            target = Some((e.path.clone(), e.entry.id));
        }
        Ok(target.is_none())
    })?;
    // A filesystem with no such file is left alone (the test's root has one).
    let Some((path, id)) = target else {
        return Ok(());
    };
    let Some(block) = fs.inner().extents(u32::try_from(id)?)?.lookup(0) else {
        anyhow::bail!("fault: {} has no first block", display_path(&path))
    };
    let mut buf = vec![0u8; usize::try_from(bs)?];
    dev.read_exact_at(&mut buf, block * bs)?;
    buf.iter_mut().for_each(|b| *b = !*b);
    eprintln!("vmscrub: fault: corrupting {}", display_path(&path));
    dev.write_all_at(&buf, block * bs)?;
    Ok(())
}
