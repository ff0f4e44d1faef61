//! The plan turned into editor steps: each action with its node's kind and size,
//! where its files go in the archive, and a rewrite's new content.

use anyhow::{Context, Result};
use regex::bytes::Regex;
use zeroize::Zeroizing;

use super::apply::Step;
use crate::fs::display_path;
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
        match guest.filesystems[a.filesystem].identity.partition {
            Some(n) => p.extend_from_slice(format!("partition-{n}/").as_bytes()),
            None => p.extend_from_slice(b"disk/"),
        }
        p.extend_from_slice(a.fs_path.strip_prefix(b"/").unwrap_or(&a.fs_path));
    }
    p
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
        let content = if a.action == ActionKind::Rewrite {
            let new = match &a.replace {
                Some(r) => r.as_bytes().to_vec(),
                None => {
                    let old = Zeroizing::new(
                        crate::guest::read_bounded(fs, a.node, scan::MAX_REWRITE_SIZE)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(&a.path)))?,
                    );
                    let res: Vec<Regex> = a
                        .drop_lines
                        .iter()
                        .map(|d| Regex::new(d))
                        .collect::<Result<_, _>>()
                        .context("a drop-lines pattern")?;
                    scan::drop_lines(&old, &res)
                }
            };
            Some(Zeroizing::new(new))
        } else {
            None
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
