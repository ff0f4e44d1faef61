//! The plan turned into editor steps: each action with its node's kind and size,
//! where its files go in the archive, and a rewrite's new content.

use anyhow::{Context, Result};
use regex::bytes::Regex;
use zeroize::Zeroizing;

use super::apply::Step;
use crate::fs::{Filesystem, display_path};
use crate::guest::Guest;
use crate::ops::ActionKind;
use crate::scan::{self, PlannedAction};

/// Where an action's files go in the archive (see `capture`).
fn archive_path(guest: &Guest, a: &PlannedAction) -> Vec<u8> {
    let mounted = guest.mount_point(a.filesystem).is_some() && !a.shadowed;
    let mut p = Vec::new();
    if mounted {
        p.extend_from_slice(a.path.strip_prefix(b"/").unwrap_or(&a.path));
    } else {
        let id = &guest.filesystems[a.filesystem].identity;
        match (&id.lv, id.partition) {
            // The /dev/mapper name: `-` inside names doubled, so `a-b/c` and
            // `a/b-c` do not share a directory.
            (Some(lv), _) => {
                let (vg, name) = lv.split_once('/').unwrap_or((lv.as_str(), ""));
                let dm = format!("{}-{}", vg.replace('-', "--"), name.replace('-', "--"));
                p.extend_from_slice(format!("lv-{dm}/").as_bytes())
            }
            (None, Some(n)) => p.extend_from_slice(format!("partition-{n}/").as_bytes()),
            (None, None) => p.extend_from_slice(b"disk/"),
        }
        p.extend_from_slice(a.fs_path.strip_prefix(b"/").unwrap_or(&a.fs_path));
    }
    p
}

/// A file's new content: its secrets overwritten with the placeholder, then
/// the lines the rewrites drop taken out, exactly as the scan predicted.
fn edited(fs: &dyn Filesystem, a: &PlannedAction) -> Result<Zeroizing<Vec<u8>>> {
    let old = Zeroizing::new(
        crate::guest::read_bounded(fs, a.node, scan::MAX_REWRITE_SIZE)
            .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(&a.path)))?,
    );
    let redacted = Zeroizing::new(
        scan::redact::apply(&old, &a.redact)
            .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(&a.path)))?,
    );
    if a.drop_lines.is_empty() {
        return Ok(redacted);
    }
    let res: Vec<Regex> = a
        .drop_lines
        .iter()
        .map(|d| Regex::new(d))
        .collect::<Result<_, _>>()
        .context("a drop-lines pattern")?;
    Ok(Zeroizing::new(scan::drop_lines(&redacted, &res)))
}

/// Turns the plan into steps: node kinds and sizes from the filesystem, and
/// each rewrite's new content computed from the current one exactly as the
/// scan predicted it.
pub(super) fn steps_of(guest: &Guest, plan: &[PlannedAction]) -> Result<Vec<Step>> {
    let mut steps = Vec::with_capacity(plan.len());
    for a in plan {
        let fs = &*guest.filesystems[a.filesystem].fs;
        let m = fs
            .metadata(a.node)
            .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(&a.path)))?;
        let content = match (a.action, &a.replace) {
            (ActionKind::Rewrite, Some(r)) => Some(Zeroizing::new(r.as_bytes().to_vec())),
            (ActionKind::Rewrite | ActionKind::Redact, None) => Some(edited(fs, a)?),
            _ => None,
        };
        steps.push(Step {
            filesystem: a.filesystem,
            path: a.path.clone(),
            fs_path: a.fs_path.clone(),
            node: a.node,
            kind: m.kind,
            size: m.size,
            action: a.action,
            operations: a.operations.clone(),
            content,
            archive_path: archive_path(guest, a),
        });
    }
    Ok(steps)
}
