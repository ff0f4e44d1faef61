//! The human report: grouped by operation, one line per finding (action,
//! path, size, owner, mode, mtime, why), then warnings and a summary line.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{ReportInput, human_size, plural, safe_path, safe_text, utc};
use crate::scan::{Finding, Why};

fn why(f: &Finding) -> String {
    let mut s = match &f.why {
        Why::Pattern { pattern } => format!("matches {}", safe_text(pattern)),
        Why::Content { hits, total_hits } => {
            let first: Vec<String> = hits
                .iter()
                .take(3)
                .map(|h| {
                    format!(
                        "{} at {}+{} ({}, hash {})",
                        safe_text(&h.detector),
                        h.offset,
                        h.length,
                        safe_text(&h.why),
                        safe_text(&h.hash)
                    )
                })
                .collect();
            let more = total_hits.saturating_sub(first.len());
            if more > 0 {
                format!("{} and {more} more", first.join("; "))
            } else {
                first.join("; ")
            }
        }
    };
    if let Some(rw) = &f.rewrite {
        if rw.replace.is_some() {
            let _ = write!(s, "; becomes {} bytes", rw.new_size);
        } else {
            let lines: Vec<String> = rw.dropped_lines.iter().map(u64::to_string).collect();
            let _ = write!(s, "; drops line(s) {}", lines.join(","));
            if rw.dropped_count as usize > rw.dropped_lines.len() {
                let _ = write!(
                    s,
                    " (+{})",
                    rw.dropped_count as usize - rw.dropped_lines.len()
                );
            }
        }
    }
    if let Some(r) = &f.redact {
        let lines: Vec<String> = r.lines.iter().map(u64::to_string).collect();
        let _ = write!(
            s,
            "; {} value(s) overwritten on line(s) {}",
            r.values,
            lines.join(",")
        );
    }
    if let Some(t) = f.tree {
        let _ = write!(s, "; tree of {} files, {} dirs", t.files, t.dirs);
    }
    if f.shadowed {
        s.push_str("; hidden under a mount point");
    }
    if let Some(n) = &f.note {
        let _ = write!(s, "; {}", safe_text(n));
    }
    s
}

pub fn render(input: &ReportInput<'_>) -> String {
    let g = input.guest;
    let r = input.result;
    let mut out = String::new();
    let _ = writeln!(out, "vmscrub scan of {}", safe_text(input.image));
    match (&g.os, g.root) {
        (Some(os), Some(root)) => {
            let _ = writeln!(
                out,
                "OS: {} on {}",
                safe_text(&os.describe()),
                g.filesystems[root].identity.describe()
            );
        }
        _ => {
            let _ = writeln!(out, "OS: none found; filesystems scanned by partition");
        }
    }
    for m in g.mounts.iter().rev() {
        let _ = writeln!(
            out,
            "  mount {:<12} {}",
            safe_path(&m.path),
            g.filesystems[m.fs].identity.describe()
        );
    }
    for op in &r.operations {
        let mine: Vec<&Finding> = r
            .findings
            .iter()
            .filter(|f| f.operation == op.name)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{} — {} ({}, {})",
            op.name,
            op.heading,
            plural(mine.len() as u64, "finding"),
            human_size(op.bytes)
        );
        for f in mine {
            let place = if g.mount_point(f.filesystem).is_some() {
                String::new()
            } else {
                format!("[{}] ", g.filesystems[f.filesystem].identity.describe())
            };
            let _ = writeln!(
                out,
                "  {:<11} {}{}  {}  {}:{} {:04o}  {}  {}{}",
                f.action.label_for(f.kind),
                place,
                safe_path(&f.path),
                human_size(f.tree.map_or(f.size, |t| t.bytes)),
                f.uid,
                f.gid,
                f.mode,
                utc(f.mtime.sec),
                if f.skipped { "SKIPPED: " } else { "" },
                why(f)
            );
        }
    }
    if !r.vendor.is_empty() {
        let _ = writeln!(
            out,
            "\nVendor files (content detectors fired, but the content is what the package recorded; left in place):"
        );
        for v in &r.vendor {
            let det: BTreeSet<&str> = v.hits.iter().map(|h| h.detector.as_str()).collect();
            let _ = writeln!(
                out,
                "  = {}  [{} {} {}, {}] {}",
                safe_text(&crate::fs::display_path(&v.path)),
                v.manager,
                safe_text(&v.package),
                safe_text(&v.version),
                v.algorithm,
                det.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in &r.warnings {
            let op = w
                .operation
                .as_deref()
                .map(|o| format!("[{o}] "))
                .unwrap_or_default();
            let _ = writeln!(out, "  ! {op}{}", safe_text(&w.message));
        }
    }
    let paths: BTreeSet<(usize, &[u8])> = r
        .findings
        .iter()
        .map(|f| (f.filesystem, f.path.as_slice()))
        .collect();
    let ops = r.operations.iter().filter(|o| o.findings > 0).count();
    let secrets = r.findings.iter().filter(|f| f.is_content()).count();
    let planned = r.plan().len();
    let _ = writeln!(
        out,
        "\nSummary: {} in {} on {} ({}, {}); {} by content detectors; {}",
        plural(r.findings.len() as u64, "finding"),
        plural(ops as u64, "operation"),
        plural(paths.len() as u64, "path"),
        plural(planned as u64, "planned action"),
        human_size(r.operations.iter().map(|o| o.bytes).sum()),
        secrets,
        plural(r.warnings.len() as u64, "warning")
    );
    out
}
