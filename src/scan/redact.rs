//! Redaction: a secret inside the system's own configuration (an fstab line with a
//! CIFS password, a unit's `Environment=`, a service's config) is overwritten in
//! place instead of costing the guest the whole file. Deleting `/etc/fstab` or a
//! service's settings breaks the machine; overwriting the value with a placeholder
//! keeps the line, the file's syntax, inode, mode and owner, and still removes the
//! secret (the original goes to the recovery archive like any removed file).
//!
//! A file is redacted only when every one of these holds, else it is deleted:
//! - it is a configuration file by place or name ([`is_config_path`]);
//! - it is text (no NUL byte) and small enough to rewrite;
//! - every hit names the secret's own bytes (a token, a value, a URL's password)
//!   in the file itself, not inside an archive member or an xattr;
//! - something besides the secrets is left: a file that is only a token exists
//!   for the secret and is deleted.

use serde::Serialize;

use super::{ContentHit, MAX_REWRITE_SIZE};
use crate::fs::Filesystem;
use crate::fs::Metadata;

/// What replaces a value of at least its length; shorter values become as many `*`.
pub const PLACEHOLDER: &[u8] = b"REDACTED";

/// 1-based line numbers listed per finding (the count says how many there are).
const MAX_LISTED_LINES: usize = 100;

/// Directories whose text files are configuration wherever their names.
const CONFIG_DIRS: &[&[u8]] = &[b"/etc/", b"/usr/local/etc/", b"/opt/etc/"];

/// File-name endings of configuration and settings files elsewhere (an app's
/// `.env`, `settings.yaml`, `wp-config.php`, a unit under /usr/lib/systemd).
const CONFIG_SUFFIXES: &[&[u8]] = &[
    b".conf",
    b".cfg",
    b".cnf",
    b".ini",
    b".toml",
    b".yaml",
    b".yml",
    b".json",
    b".env",
    b".properties",
    b".xml",
    b".config",
    b".service",
    b".socket",
    b".timer",
    b".mount",
    b".network",
    b".netdev",
    b".nmconnection",
    b".php",
    b".rc",
    b"/.env",
    b"/fstab",
    b"/crypttab",
];

/// What a redaction does to one file, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redaction {
    /// The secrets' byte ranges in the file (offset, end), merged where they overlap.
    #[serde(skip)]
    pub spans: Vec<(u64, u64)>,
    /// 1-based numbers of the lines holding a secret (first 100).
    pub lines: Vec<u64>,
    /// How many values are overwritten.
    pub values: u64,
    /// The file's size afterwards.
    pub new_size: u64,
}

/// Whether `path` (guest-absolute, or inside a filesystem with no mount point)
/// names a configuration file.
pub fn is_config_path(path: &[u8]) -> bool {
    CONFIG_DIRS.iter().any(|d| path.starts_with(d))
        || CONFIG_SUFFIXES.iter().any(|s| path.ends_with(s))
}

/// The placeholder for a value of `len` bytes: never longer than the value.
fn placeholder(len: usize) -> Vec<u8> {
    if len >= PLACEHOLDER.len() {
        PLACEHOLDER.to_vec()
    } else {
        vec![b'*'; len]
    }
}

/// Bytes that say nothing on their own: a file of a value and these is the value.
fn is_filler(c: &u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'"' | b'\'')
}

/// The hits' value spans, sorted and merged; `None` when a hit has no span of
/// its own bytes in the file (a key block, a member of an archive).
fn value_spans(hits: &[ContentHit], size: u64) -> Option<Vec<(u64, u64)>> {
    let mut spans = Vec::with_capacity(hits.len());
    for h in hits {
        let v = h.value.as_ref().filter(|_| h.member.is_none())?;
        if v.start >= v.end || v.end > size {
            return None;
        }
        spans.push((v.start, v.end));
    }
    Some(merge(spans))
}

/// Spans sorted, with overlapping and touching ones joined.
pub fn merge(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Decides whether the hits in `content` (the file at `path`) can be redacted,
/// and how. `None`: delete the file instead.
pub fn plan(path: &[u8], content: &[u8], hits: &[ContentHit]) -> Option<Redaction> {
    if hits.is_empty() || !is_config_path(path) || content.contains(&0) {
        return None;
    }
    let spans = value_spans(hits, content.len() as u64)?;
    let mut rest = 0usize;
    let mut at = 0usize;
    for &(s, e) in &spans {
        rest += content[at..s as usize]
            .iter()
            .filter(|c| !is_filler(c))
            .count();
        at = e as usize;
    }
    rest += content[at..].iter().filter(|c| !is_filler(c)).count();
    if rest == 0 {
        return None; // the file is the secret
    }
    let mut lines = Vec::new();
    let mut line = 1u64;
    let mut counted = 0usize;
    for &(s, _) in &spans {
        line += content[counted..s as usize]
            .iter()
            .filter(|&&c| c == b'\n')
            .count() as u64;
        counted = s as usize;
        if lines.last() != Some(&line) && lines.len() < MAX_LISTED_LINES {
            lines.push(line);
        }
    }
    let removed: u64 = spans
        .iter()
        .map(|&(s, e)| (e - s) - placeholder((e - s) as usize).len() as u64)
        .sum();
    Some(Redaction {
        values: spans.len() as u64,
        new_size: content.len() as u64 - removed,
        spans,
        lines,
    })
}

/// The action for a content finding whose rule says `redact`: `Redact` with its
/// plan when the file qualifies, else `Delete` with a note saying why.
pub fn decide(
    fs: &dyn Filesystem,
    path: &[u8],
    meta: &Metadata,
    hits: &[ContentHit],
) -> (Option<Redaction>, String) {
    if !is_config_path(path) {
        return (None, "not a configuration file: deleted whole".into());
    }
    if meta.size > MAX_REWRITE_SIZE {
        return (None, "too large to rewrite: deleted whole".into());
    }
    let content = match crate::guest::read_bounded(fs, meta.id, MAX_REWRITE_SIZE) {
        Ok(c) => zeroize::Zeroizing::new(c),
        Err(e) => {
            return (
                None,
                format!("could not be read to redact ({e}): deleted whole"),
            );
        }
    };
    match plan(path, &content, hits) {
        Some(r) => (Some(r), String::new()),
        None => (
            None,
            "binary, only the secret, or a secret without a value span of its own: deleted whole"
                .into(),
        ),
    }
}

/// `content` with every span replaced by its placeholder. Spans must be sorted,
/// disjoint and inside `content` (what [`plan`] returns); others are refused.
pub fn apply(content: &[u8], spans: &[(u64, u64)]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(content.len());
    let mut at = 0usize;
    for &(s, e) in spans {
        let (s, e) = (s as usize, e as usize);
        if s < at || e < s || e > content.len() {
            return Err(format!(
                "redaction span {s}..{e} does not fit the {}-byte file; it changed since the scan",
                content.len()
            ));
        }
        out.extend_from_slice(&content[at..s]);
        out.extend_from_slice(&placeholder(e - s));
        at = e;
    }
    out.extend_from_slice(&content[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(text: &str, value: &str) -> ContentHit {
        let start = text.find(value).unwrap() as u64;
        ContentHit {
            detector: "secret-assignment".into(),
            operation: "credential-files".into(),
            offset: start,
            length: value.len() as u64,
            hash: String::new(),
            why: String::new(),
            member: None,
            value: Some(start..start + value.len() as u64),
        }
    }

    #[test]
    fn redacts_values_in_config_files_and_keeps_the_rest() {
        let text =
            "[db]\nuser = app\npassword = Xk9mP2qL7vR4wZ\nurl = postgres://app:pw4Lk9q@db/app\n";
        let hits = [hit(text, "Xk9mP2qL7vR4wZ"), hit(text, "pw4Lk9q")];
        let r = plan(b"/etc/app/app.conf", text.as_bytes(), &hits).unwrap();
        assert_eq!(r.lines, [3, 4]);
        assert_eq!(r.values, 2);
        let out = apply(text.as_bytes(), &r.spans).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "[db]\nuser = app\npassword = REDACTED\nurl = postgres://app:*******@db/app\n"
        );
        assert_eq!(r.new_size, out.len() as u64);
    }

    #[test]
    fn deletes_what_is_not_a_config_file_or_is_only_the_secret() {
        let text = "password = Xk9mP2qL7vR4wZ\n";
        let hits = [hit(text, "Xk9mP2qL7vR4wZ")];
        assert!(plan(b"/home/u/notes.txt", text.as_bytes(), &hits).is_none());
        assert!(plan(b"/etc/app.conf", b"pass\0word = Xk9mP2qL7vR4wZ\n", &hits).is_none());
        let token = "ghp_Xk9mP2qL7vR4wZ\n";
        assert!(
            plan(
                b"/etc/app/token",
                token.as_bytes(),
                &[hit(token, "ghp_Xk9mP2qL7vR4wZ")]
            )
            .is_none()
        );
        let mut member = hit(text, "Xk9mP2qL7vR4wZ");
        member.member = Some("tar:x".into());
        assert!(plan(b"/etc/app.conf", text.as_bytes(), &[member]).is_none());
        let mut block = hit(text, "Xk9mP2qL7vR4wZ");
        block.value = None;
        assert!(plan(b"/etc/app.conf", text.as_bytes(), &[block]).is_none());
    }

    #[test]
    fn overlapping_values_merge_and_bad_spans_are_refused() {
        let text = "TOKEN=ghp_Xk9mP2qL7vR4wZabc\n";
        let a = hit(text, "ghp_Xk9mP2qL7vR4wZabc");
        let b = hit(text, "Xk9mP2qL7vR4wZ");
        let r = plan(b"/srv/app/.env", text.as_bytes(), &[a, b]).unwrap();
        assert_eq!(r.spans.len(), 1);
        assert_eq!(
            apply(text.as_bytes(), &r.spans).unwrap(),
            b"TOKEN=REDACTED\n"
        );
        assert!(apply(b"short", &[(2, 9)]).is_err());
        assert!(apply(b"0123456789", &[(4, 6), (2, 3)]).is_err());
    }
}
