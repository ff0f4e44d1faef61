//! `--fail-on`: which findings make `scan` exit with [`crate::exit::FINDINGS`].
//!
//! A comma-separated list (repeatable); the scan fails if any finding matches
//! any item:
//! - `finding` (alias `any`): every finding, including report-only and skipped ones;
//! - `secret`: findings of the content detectors (`private-keys`, `tokens`, …);
//! - `warning`: also fail when the scan emitted a warning of kind
//!   `ssh-host-keys` or `unreadable-filesystem`;
//! - an operation name: findings of that operation.
//!
//! Without `--fail-on` the exit code is 0 whatever was found (an audit report).

use crate::ops::Catalogue;
use crate::scan::{ScanResult, WarningKind};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailOn {
    any: bool,
    secret: bool,
    warning: bool,
    operations: Vec<String>,
}

impl FailOn {
    pub fn parse(cat: &Catalogue, lists: &[String]) -> Result<Self, String> {
        let mut p = FailOn::default();
        for list in lists {
            for item in list.split(',').map(str::trim) {
                match item {
                    "finding" | "findings" | "any" => p.any = true,
                    "secret" | "secrets" => p.secret = true,
                    "warning" | "warnings" => p.warning = true,
                    "" => return Err(format!("--fail-on: empty item in `{list}`")),
                    name => {
                        if cat.get(name).is_none() {
                            // Reuse the selection's close-match suggestions.
                            let e = crate::ops::Selection::resolve(cat, &[name.to_string()], &[])
                                .err()
                                .map(|e| e.to_string())
                                .unwrap_or_default();
                            return Err(format!(
                                "--fail-on: `{name}` is not finding, secret, warning or an operation ({e})"
                            ));
                        }
                        p.operations.push(name.to_string());
                    }
                }
            }
        }
        Ok(p)
    }

    pub fn is_empty(&self) -> bool {
        *self == FailOn::default()
    }

    /// The same decision as [`FailOn::evaluate`] from counts kept across runs
    /// (`vmscrub batch` re-applies today's policy to an image it did not redo):
    /// `findings` is (operation, from a content detector, count); `warnings` counts
    /// the kinds `warning` fails on.
    pub fn evaluate_counts(
        &self,
        findings: &[(String, bool, u64)],
        warnings: u64,
    ) -> Option<String> {
        let hits: u64 = findings
            .iter()
            .filter(|(op, content, _)| {
                self.any || (self.secret && *content) || self.operations.contains(op)
            })
            .map(|(_, _, n)| n)
            .sum();
        let warns = if self.warning { warnings } else { 0 };
        match (hits, warns) {
            (0, 0) => None,
            (h, 0) => Some(format!("{h} findings match --fail-on")),
            (0, w) => Some(format!("{w} warnings match --fail-on")),
            (h, w) => Some(format!("{h} findings and {w} warnings match --fail-on")),
        }
    }

    /// The findings (by index) and warnings the policy fails on, as a reason.
    pub fn evaluate(&self, r: &ScanResult) -> Option<String> {
        let hits = r
            .findings
            .iter()
            .filter(|f| {
                self.any
                    || (self.secret && f.is_content())
                    || self.operations.contains(&f.operation)
            })
            .count();
        let warns = if self.warning {
            r.warnings
                .iter()
                .filter(|w| {
                    matches!(
                        w.kind,
                        WarningKind::SshHostKeys
                            | WarningKind::UnreadableFilesystem
                            | WarningKind::SwapSpace
                    )
                })
                .count()
        } else {
            0
        };
        match (hits, warns) {
            (0, 0) => None,
            (h, 0) => Some(format!("{h} findings match --fail-on")),
            (0, w) => Some(format!("{w} warnings match --fail-on")),
            (h, w) => Some(format!("{h} findings and {w} warnings match --fail-on")),
        }
    }
}
