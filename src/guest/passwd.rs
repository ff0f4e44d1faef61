//! `/etc/passwd` and `/etc/login.defs`, read defensively: a guest's account
//! database is hostile input like any other file in it.

use serde::Serialize;

/// Most entries kept (a passwd with more is treated as truncated there).
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasswdEntry {
    /// User name (lossy UTF-8 for display; patterns skip non-UTF-8 names).
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Home directory bytes as written.
    #[serde(skip)]
    pub home: Vec<u8>,
    pub name_is_utf8: bool,
}

/// Parses `name:pw:uid:gid:gecos:home:shell` lines. NIS `+`/`-` lines,
/// comments, lines with too few fields or a non-numeric UID are skipped.
pub fn parse_passwd(text: &[u8]) -> Vec<PasswdEntry> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        if out.len() >= MAX_ENTRIES {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line[0] == b'#' || line[0] == b'+' || line[0] == b'-' {
            continue;
        }
        let f: Vec<&[u8]> = line.splitn(7, |&b| b == b':').collect();
        if f.len() < 6 || f[0].is_empty() {
            continue;
        }
        let (Some(uid), Some(gid)) = (num(f[2]), num(f[3])) else {
            continue;
        };
        let name_is_utf8 = std::str::from_utf8(f[0]).is_ok();
        out.push(PasswdEntry {
            name: String::from_utf8_lossy(f[0]).into_owned(),
            uid,
            gid,
            home: f[5].to_vec(),
            name_is_utf8,
        });
    }
    out
}

fn num(b: &[u8]) -> Option<u32> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// `UID_MIN` and `UID_MAX` of login.defs (shadow-utils defaults 1000, 60000).
pub fn parse_uid_range(text: &[u8]) -> (u32, u32) {
    let (mut min, mut max) = (1000, 60000);
    for line in text.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let mut it = line.split_whitespace();
        match (it.next(), it.next().and_then(|v| v.parse::<u32>().ok())) {
            (Some("UID_MIN"), Some(v)) => min = v,
            (Some("UID_MAX"), Some(v)) => max = v,
            _ => {}
        }
    }
    // Root is never a removable account, whatever login.defs says.
    (min.max(1), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hostile_passwd() {
        let e = parse_passwd(
            b"root:x:0:0:root:/root:/bin/bash\n# c\n+nis::::::\nbad\nx:x:notnum:0::/h:/s\ndeploy:x:1000:1000:D,,,:/srv/deploy:/bin/bash\r\nno:shell:1:1::/nohome\n\xff:x:1001:1001::/home/\xff:\n",
        );
        let names: Vec<_> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["root", "deploy", "no", "\u{fffd}"]);
        assert_eq!(e[1].home, b"/srv/deploy");
        assert_eq!(e[2].home, b"/nohome");
        assert!(!e[3].name_is_utf8);
        let big = "u:x:1:1::/h:/s\n".repeat(MAX_ENTRIES + 10);
        assert_eq!(parse_passwd(big.as_bytes()).len(), MAX_ENTRIES);
    }

    #[test]
    fn login_defs() {
        assert_eq!(parse_uid_range(b""), (1000, 60000));
        assert_eq!(
            parse_uid_range(b"UID_MIN 500\n#UID_MAX 1\nUID_MAX\t999\n"),
            (500, 999)
        );
        assert_eq!(parse_uid_range(b"UID_MIN 0\n"), (1, 60000));
    }
}
