//! `/etc/os-release` (os-release(5)): shell-like `KEY=value` lines.
//!
//! Hostile input: values are length-bounded, control characters are dropped,
//! unknown keys and malformed lines are ignored.

use serde::Serialize;

/// Longest value kept (os-release values are short; anything longer is junk).
const MAX_VALUE: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    pub name: Option<String>,
    pub version: Option<String>,
    pub id: Option<String>,
    pub id_like: Vec<String>,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}

impl OsRelease {
    pub fn parse(text: &[u8]) -> Self {
        let mut r = OsRelease::default();
        for line in text.split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line);
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let Some((key, raw)) = line.split_once('=') else {
                continue;
            };
            let value = unquote(raw.trim());
            if value.is_empty() {
                continue;
            }
            match key.trim() {
                "NAME" => r.name = Some(value),
                "VERSION" => r.version = Some(value),
                "ID" => r.id = Some(value.to_ascii_lowercase()),
                "ID_LIKE" => {
                    r.id_like = value
                        .split_whitespace()
                        .take(16)
                        .map(|s| s.to_ascii_lowercase())
                        .collect()
                }
                "VERSION_ID" => r.version_id = Some(value),
                "PRETTY_NAME" => r.pretty_name = Some(value),
                _ => {}
            }
        }
        r
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        self.pretty_name
            .clone()
            .or_else(|| {
                self.name.as_ref().map(|n| match &self.version {
                    Some(v) => format!("{n} {v}"),
                    None => n.clone(),
                })
            })
            .or_else(|| self.id.clone())
            .unwrap_or_else(|| "unknown Linux".into())
    }
}

/// Removes one level of shell quoting: `"…"` with `\"`, `\\`, `\$`, `` \` ``
/// escapes, or `'…'` literally; a bare value ends at whitespace.
fn unquote(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    match v.chars().next() {
        Some('"') => {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some(n) = chars.next() {
                            out.push(n);
                        }
                    }
                    c => out.push(c),
                }
            }
        }
        Some('\'') => {
            chars.next();
            for c in chars.by_ref() {
                if c == '\'' {
                    break;
                }
                out.push(c);
            }
        }
        _ => {
            for c in chars {
                if c.is_whitespace() {
                    break;
                }
                out.push(c);
            }
        }
    }
    out.retain(|c| !c.is_control());
    if out.len() > MAX_VALUE {
        let mut end = MAX_VALUE;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoting_and_ignores_junk() {
        let r = OsRelease::parse(
            b"# comment\nNAME=\"Ubuntu\"\nVERSION='22.04 LTS'\nID=Ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\nPRETTY_NAME=\"Ubuntu \\\"Jammy\\\"\x1b[31m\"\ngarbage\n=x\nID_LIKE_X=y\n\xff\xfe=1\n",
        );
        assert_eq!(r.name.as_deref(), Some("Ubuntu"));
        assert_eq!(r.version.as_deref(), Some("22.04 LTS"));
        assert_eq!(r.id.as_deref(), Some("ubuntu"));
        assert_eq!(r.id_like, ["debian"]);
        assert_eq!(r.version_id.as_deref(), Some("22.04"));
        assert_eq!(r.pretty_name.as_deref(), Some("Ubuntu \"Jammy\"[31m"));
        let long = format!("NAME=\"{}\"", "é".repeat(1000));
        assert!(OsRelease::parse(long.as_bytes()).name.unwrap().len() <= MAX_VALUE);
        assert_eq!(OsRelease::parse(b"").describe(), "unknown Linux");
    }
}
