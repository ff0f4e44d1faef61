//! `docs/operations.md`, generated from the catalogue so the two cannot drift
//! (a test compares them; `VMSCRUB_BLESS=1 cargo test -p vmscrub ops::` rewrites it).

use std::fmt::Write;

use super::{ActionKind, Catalogue, NeedsGuestWhen, Operation};

/// The whole markdown page.
pub fn markdown(cat: &Catalogue) -> String {
    let mut out = String::new();
    let total = cat.operations.len();
    let on = cat.operations.iter().filter(|o| o.default).count();
    let _ = writeln!(out, "# Operations\n");
    let _ = writeln!(
        out,
        "<!-- Generated from src/ops/catalogue.toml by src/ops/docs.rs; do not edit by hand. \
         Regenerate: VMSCRUB_BLESS=1 cargo test -p vmscrub --lib ops::docs -->\n"
    );
    let _ = writeln!(
        out,
        "{total} operations, {on} on by default (`*`). Select them like virt-sysprep: \
         `--operations defaults,-logfiles,+user-account` (lists apply left to right to a set that \
         starts empty; `defaults`, `all`, `NAME`/`+NAME`, `-NAME`), or `--enable a,b` for exactly \
         those. `--keep GLOB` exempts paths from every operation; `--rules FILE` adds operations \
         in the form of `src/ops/catalogue.toml`.\n"
    );
    let _ = writeln!(
        out,
        "Patterns: `*`, `?`, `[…]` never cross `/` and **do** match dotfiles; `**` matches any \
         number of directories; `{{a,b}}` alternates. `{{home}}` is every home directory in \
         `/etc/passwd` plus `/root` and `/home/*`; `{{user}}`/`{{user-home}}` are the accounts \
         `user-account` removes.\n"
    );
    let _ = writeln!(
        out,
        "Actions: **delete** removes a file (a directory matched by `delete` is left alone); \
         **delete-tree** removes the match and everything below it (reported once, with the \
         tree's file count and size); **truncate** empties a regular file; **rewrite** replaces \
         a regular file's content or drops matching lines, and is skipped (with a note) if the \
         result would be longer than the file; **redact** (content rules) overwrites each \
         secret value in a text configuration file with `REDACTED` (or as many `*` when the \
         value is shorter), keeping the file, its syntax and its inode, and deletes any other \
         file the detectors fire on; **report** only reports. Operations marked \
         *needs guest* cannot be done offline and are reported as not performed.\n"
    );
    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(out, "| operation | default | source | action | heading |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for op in &cat.operations {
        let _ = writeln!(
            out,
            "| [`{}`](#{}) | {} | {} | {} | {} |",
            op.name,
            op.name,
            if op.default { "*" } else { "" },
            op.source,
            actions(op),
            op.heading.replace('|', "\\|")
        );
    }
    let _ = writeln!(out, "\n## Details");
    for op in &cat.operations {
        detail(&mut out, op);
    }
    out
}

fn actions(op: &Operation) -> String {
    let mut a: Vec<String> = op.actions().iter().map(|a| a.to_string()).collect();
    if op.is_content() {
        a.push("content".into());
    }
    if op.needs_guest.is_some() {
        a.push("needs guest".into());
    }
    match op.volume {
        Some(super::VolumeAction::ReinitSwap) => a.push("re-initialize swap volumes".into()),
        Some(super::VolumeAction::ReportLvmMetadata) => a.push("report LVM metadata".into()),
        None => {}
    }
    a.join(", ")
}

fn detail(out: &mut String, op: &Operation) {
    let _ = writeln!(out, "\n### {}\n", op.name);
    let _ = writeln!(out, "{}\n", op.heading);
    let _ = writeln!(
        out,
        "- default: **{}**; source: {}; guard: {}",
        if op.default { "on" } else { "off" },
        op.source,
        op.os
    );
    if let Some(n) = &op.needs_guest {
        let when = match op.needs_guest_when {
            NeedsGuestWhen::Always => "always",
            NeedsGuestWhen::Findings => "when the operation found something",
        };
        let _ = writeln!(out, "- needs guest ({when}): {n}");
    }
    for (i, r) in op.rules.iter().enumerate() {
        let mut line = format!("- rule {}: **{}**", i + 1, r.action);
        if !r.os.is_empty() {
            let _ = write!(line, " (if {})", r.os);
        }
        if r.content {
            line.push_str(" files the content detectors attribute to this operation");
        }
        if !r.kinds.is_empty() {
            let k: Vec<String> = r
                .kinds
                .iter()
                .map(|k| format!("{k:?}").to_lowercase())
                .collect();
            let _ = write!(line, "; only {}", k.join(", "));
        }
        match (r.action, &r.replace, &r.drop_lines) {
            (ActionKind::Rewrite, Some(rep), _) => {
                let _ = write!(line, "; content becomes `{}`", rep.escape_default());
            }
            (ActionKind::Rewrite, None, Some(d)) => {
                let _ = write!(line, "; drops lines matching `{d}`");
            }
            _ => {}
        }
        if let Some(il) = &r.if_line {
            let _ = write!(line, "; only files with a line matching `{il}`");
        }
        if let Some(reason) = &r.reason {
            let _ = write!(line, "; {reason}");
        }
        let _ = writeln!(out, "{line}");
        if !r.paths.is_empty() {
            let _ = writeln!(out, "  - paths: {}", code_list(&r.paths));
        }
        if !r.except.is_empty() {
            let _ = writeln!(out, "  - except: {}", code_list(&r.except));
        }
    }
    if let Some(n) = &op.notes {
        let _ = writeln!(out, "\n{n}");
    }
}

fn code_list(v: &[String]) -> String {
    v.iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_md_is_in_sync() {
        let cat = Catalogue::builtin().unwrap();
        let md = markdown(&cat);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md");
        if std::env::var_os("VMSCRUB_BLESS").is_some() {
            std::fs::write(path, &md).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == md,
            "docs/operations.md is out of date; regenerate with \
             VMSCRUB_BLESS=1 cargo test -p vmscrub --lib ops::docs"
        );
    }
}
