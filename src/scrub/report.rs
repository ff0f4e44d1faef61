//! What a scrub tells its user: the plan as carried out (one line per action,
//! printed by `--dry-run`), the summary at the end, and the JSON report
//! (`--report`), which is the scan report plus a `scrub` section. Like every
//! report, none of them holds file content: paths, sizes, counts.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::apply::Outcome;
use super::verify::Verification;
use super::{Done, ScrubArgs, Timings};
use crate::ops::ActionKind;
use crate::report::{ReportInput, human_size, safe_path, safe_text};

/// One line per action, in plan order.
/// The plan as carried out, one line per action (what `--dry-run` prints).
pub fn plan_text(done: &Done) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# dry run: {} action(s); nothing is written",
        done.outcomes.len()
    );
    for o in &done.outcomes {
        let what = match o.action {
            ActionKind::DeleteTree if o.dirs > 0 => format!(
                "{} file(s), {} dir(s), {}",
                o.files,
                o.dirs,
                human_size(o.bytes)
            ),
            ActionKind::Truncate | ActionKind::Rewrite | ActionKind::Redact => format!(
                "{} -> {} bytes",
                human_size(o.bytes + o.new_size.unwrap_or(0)),
                o.new_size.unwrap_or(0)
            ),
            _ => human_size(o.bytes),
        };
        let _ = write!(
            s,
            "{:<11} {}  ({what}; {})",
            label(o),
            safe_path(&o.path),
            o.operations.join(", ")
        );
        if let Some(n) = &o.note {
            let _ = write!(s, "; {}", safe_text(n));
        }
        s.push('\n');
    }
    s
}

/// The action as it applied: a `delete-tree` rule that matched a file removed
/// just that file (the capture counted no directory), so it reads `delete`.
fn label(o: &Outcome) -> &'static str {
    match o.action {
        ActionKind::DeleteTree if o.dirs == 0 => "delete",
        a => a.as_str(),
    }
}

/// Per operation: files touched and bytes removed.
fn per_operation(outcomes: &[Outcome]) -> BTreeMap<&str, (u64, u64)> {
    let mut m: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for o in outcomes {
        // Attributed to the first operation that asked (the plan lists them in
        // catalogue order), so totals add up.
        if let Some(op) = o.operations.first() {
            let e = m.entry(op.as_str()).or_default();
            e.0 += o.files.max(1);
            e.1 += o.bytes;
        }
    }
    m
}

/// The closing summary on stderr.
pub fn summary(done: &Done, args: &ScrubArgs) -> String {
    let dry_run = args.dry_run;
    let mut s = String::new();
    let count = |k: ActionKind| done.outcomes.iter().filter(|o| o.action == k).count();
    let trees = done
        .outcomes
        .iter()
        .filter(|o| o.action == ActionKind::DeleteTree && o.dirs > 0)
        .count();
    let (files, bytes) = (done.removed_files(), done.removed_bytes());
    let _ = writeln!(
        s,
        "vmscrub: {}{} file(s) removed ({} tree(s)), {} truncated, {} rewritten, {} redacted; {} of content removed, {} zeroed",
        if dry_run { "dry run: would do: " } else { "" },
        files,
        trees,
        count(ActionKind::Truncate),
        count(ActionKind::Rewrite),
        count(ActionKind::Redact),
        human_size(bytes),
        human_size(done.zeroed),
    );
    for w in &done.swap {
        let _ = writeln!(
            s,
            "  swap {}: re-initialized (UUID {}, label {:?}, {} pages of {} bytes){}; {} zeroed",
            w.volume,
            w.uuid,
            w.label,
            w.pages,
            w.page_size,
            w.hibernation
                .map(|h| format!(", it held a {h} hibernation image"))
                .unwrap_or_default(),
            human_size(w.zeroed_bytes)
        );
    }
    if done.free_zeroed > 0 {
        let _ = writeln!(
            s,
            "  free space zeroed: {} (blocks no file owns)",
            human_size(done.free_zeroed)
        );
    }
    for (op, (n, b)) in per_operation(&done.outcomes) {
        let _ = writeln!(s, "  {op:<24} {n:>6} file(s) {:>12}", human_size(b));
    }
    for n in &done.notes {
        let _ = writeln!(s, "  note: {}", safe_text(n));
    }
    if let Some(r) = &args.recovery {
        let _ = writeln!(
            s,
            "  recovery archive {}{} ({} format): {} entries, for {}",
            r.display(),
            if dry_run { " (not written)" } else { "" },
            done.archive_format,
            done.archive_entries,
            done.recipients.join(", ")
        );
    }
    if done.captured.sockets_skipped > 0 {
        let _ = writeln!(
            s,
            "  {} socket(s) removed but not archived (tar cannot hold sockets)",
            done.captured.sockets_skipped
        );
    }
    if let Some(v) = &done.verification {
        let _ = writeln!(
            s,
            "  verified: kept paths as in the input, re-scan found nothing left to do; {} swept for {} fingerprint(s) of removed content: none found{}",
            human_size(v.swept_bytes),
            v.fingerprints,
            if v.excused_units > 0 {
                format!(" ({} unit(s) also held by kept files)", v.excused_units)
            } else {
                String::new()
            }
        );
        if done.fingerprints < done.units_removed {
            let _ = writeln!(
                s,
                "  the sweep looked for {} of the {} removed units (its memory bound)",
                done.fingerprints, done.units_removed
            );
        }
    } else if !dry_run {
        let _ = writeln!(s, "  not verified (--no-verify)");
    }
    if let (Some(o), Some(f), Some(b)) = (&args.output, &done.output_format, done.output_bytes) {
        let _ = writeln!(
            s,
            "  wrote {} ({f}, {} of file)",
            o.display(),
            human_size(b)
        );
    }
    let t = &done.timings;
    let _ = writeln!(
        s,
        "  time: scan {:.2} s, edit {:.2} s, write {:.2} s, verify {:.2} s, total {:.2} s",
        t.scan, t.edit, t.write, t.verify, t.total
    );
    s
}

#[derive(Serialize)]
struct ScrubSection<'a> {
    dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_format: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_bytes: Option<u64>,
    actions: &'a [Outcome],
    removed_files: u64,
    removed_bytes: u64,
    /// Non-zero storage units of removed content, and how many of them the
    /// verification's sweep looked for (fewer only past its memory bound).
    removed_units: u64,
    fingerprinted_units: u64,
    zeroed_bytes: u64,
    free_space_zeroed_bytes: u64,
    notes: &'a [String],
    /// Swap volumes re-initialized: UUID, label, page size, pages, hibernation.
    swap: &'a [super::swap::SwapReset],
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery: Option<Recovery<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<&'a Verification>,
    timings: &'a Timings,
}

#[derive(Serialize)]
struct Recovery<'a> {
    path: String,
    /// False in a dry run (the archive was encoded into nothing).
    written: bool,
    entries: u64,
    /// `age` or `v1`.
    format: &'a str,
    recipients: &'a [String],
    sockets_skipped: u64,
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(flatten)]
    scan: crate::report::json::Document<'a>,
    scrub: ScrubSection<'a>,
}

/// The `--report` JSON: the scan report's document plus `scrub`.
pub fn json(input: &ReportInput<'_>, done: &Done, args: &ScrubArgs) -> String {
    let doc = Document {
        scan: crate::report::json::document(input),
        scrub: ScrubSection {
            dry_run: args.dry_run,
            output: if args.dry_run {
                None
            } else {
                args.output.as_ref().map(|o| o.display().to_string())
            },
            output_format: done.output_format.as_deref(),
            output_bytes: done.output_bytes,
            actions: &done.outcomes,
            removed_files: done.removed_files(),
            removed_bytes: done.removed_bytes(),
            removed_units: done.units_removed,
            fingerprinted_units: done.fingerprints,
            zeroed_bytes: done.zeroed,
            free_space_zeroed_bytes: done.free_zeroed,
            notes: &done.notes,
            swap: &done.swap,
            recovery: args.recovery.as_ref().map(|p| Recovery {
                path: p.display().to_string(),
                written: !args.dry_run,
                entries: done.archive_entries,
                format: done.archive_format,
                recipients: &done.recipients,
                sockets_skipped: done.captured.sockets_skipped,
            }),
            verification: done.verification.as_ref(),
            timings: &done.timings,
        },
    };
    let mut s = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialize report: {e}\"}}"));
    s.push('\n');
    s
}
