//! dpkg: `/var/lib/dpkg/info/PKG[:ARCH].md5sums` (one `HEX  path` line per
//! file, paths relative to `/`) and `/var/lib/dpkg/status` (deb822 stanzas;
//! `Conffiles:` lists ` /etc/path md5` for the configuration files, which
//! `md5sums` leaves out).
//!
//! Reference: deb-md5sums(5), deb-conffiles(5), dpkg's `lib/dpkg/parse.c`.

use crate::bytes::unhex;
use crate::{Algo, Error, FileDigest, Result};

/// One stanza of `status` that matters here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusEntry {
    pub package: String,
    /// `Architecture:` (the `:ARCH` of a multi-arch `md5sums` file name).
    pub arch: String,
    pub version: String,
    /// `Status:` says `installed` (`install ok installed`).
    pub installed: bool,
    /// Conffiles with their md5 (obsolete and `newconffile` entries skipped).
    pub conffiles: Vec<FileDigest>,
}

/// Parses a `status` file. A stanza without `Package:` or a malformed
/// `Conffiles` line is an error with its line number: a corrupt database must
/// not vouch for anything.
pub fn parse_status(text: &[u8]) -> Result<Vec<StatusEntry>> {
    let mut out = vec![];
    let mut cur = StatusEntry::default();
    let mut have = false;
    let mut start = 1usize;
    let mut field: Vec<u8> = vec![];
    let finish = |cur: &mut StatusEntry, have: &mut bool, start: usize, out: &mut Vec<_>| {
        if *have {
            if cur.package.is_empty() {
                return Err(Error::Line {
                    line: start,
                    reason: "stanza without a Package field".into(),
                });
            }
            out.push(std::mem::take(cur));
        }
        *have = false;
        Ok(())
    };
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            finish(&mut cur, &mut have, start, &mut out)?;
            continue;
        }
        if !have {
            have = true;
            start = n;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // Continuation of the current field.
            if field.eq_ignore_ascii_case(b"conffiles") {
                let parts: Vec<&[u8]> = line
                    .split(|b| *b == b' ' || *b == b'\t')
                    .filter(|p| !p.is_empty())
                    .collect();
                let (path, md5) = match parts.as_slice() {
                    [p, m, ..] => (*p, *m),
                    _ => {
                        return Err(Error::Line {
                            line: n,
                            reason: "Conffiles line is not `path md5`".into(),
                        });
                    }
                };
                // ` /etc/x newconffile` (unpacked, not configured) and
                // ` /etc/x md5 obsolete` vouch for nothing current.
                if parts.get(2).is_some_and(|f| *f == b"obsolete") || md5 == b"newconffile" {
                    continue;
                }
                let digest = unhex(md5).filter(|d| d.len() == 16).ok_or(Error::Line {
                    line: n,
                    reason: "Conffiles md5 is not 32 hex digits".into(),
                })?;
                if !path.starts_with(b"/") {
                    return Err(Error::Line {
                        line: n,
                        reason: "Conffiles path is not absolute".into(),
                    });
                }
                cur.conffiles.push(FileDigest {
                    path: path.to_vec(),
                    algo: Algo::Md5,
                    digest,
                });
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(Error::Line {
                line: n,
                reason: "field line without a colon".into(),
            });
        };
        field = line[..colon].to_vec();
        let value = String::from_utf8_lossy(line[colon + 1..].trim_ascii()).into_owned();
        match field.to_ascii_lowercase().as_slice() {
            b"package" => cur.package = value,
            b"version" => cur.version = value,
            b"architecture" => cur.arch = value,
            b"status" => cur.installed = value.split_whitespace().last() == Some("installed"),
            _ => {}
        }
    }
    finish(&mut cur, &mut have, start, &mut out)?;
    Ok(out)
}

/// Parses one `*.md5sums` file into absolute paths with their md5. dpkg writes
/// `HEX  path` (two spaces; `md5sum` format, a `*` before the path in binary
/// mode is accepted).
pub fn parse_md5sums(text: &[u8]) -> Result<Vec<FileDigest>> {
    let mut out = vec![];
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let bad = |reason: &str| Error::Line {
            line: i + 1,
            reason: reason.into(),
        };
        let (hex, rest) = line.split_at(
            line.iter()
                .position(|&b| b == b' ')
                .ok_or_else(|| bad("no space after the md5"))?,
        );
        let digest = unhex(hex)
            .filter(|d| d.len() == 16)
            .ok_or_else(|| bad("md5 is not 32 hex digits"))?;
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        let rest = rest
            .strip_prefix(b" ")
            .or_else(|| rest.strip_prefix(b"*"))
            .unwrap_or(rest);
        let rel = rest.strip_prefix(b"/").unwrap_or(rest);
        if rel.is_empty() {
            return Err(bad("empty path"));
        }
        let mut path = Vec::with_capacity(rel.len() + 1);
        path.push(b'/');
        path.extend_from_slice(rel);
        out.push(FileDigest {
            path,
            algo: Algo::Md5,
            digest,
        });
    }
    Ok(out)
}

/// The package name (without `:ARCH`) of an `info/` file name ending in `.md5sums`.
pub fn md5sums_package(file_name: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let stem = file_name.strip_suffix(b".md5sums")?;
    if stem.is_empty() {
        return None;
    }
    Some(match stem.iter().position(|&b| b == b':') {
        Some(c) => (&stem[..c], Some(&stem[c + 1..])),
        None => (stem, None),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn status_with_conffiles() {
        let s = b"Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\n\
Version: 1:9.2p1-2+deb12u3\nConffiles:\n /etc/ssh/moduli 8f5ec2e1aa2bf7f5b5f9d4e3d6e5c1f0\n \
/etc/old 00000000000000000000000000000000 obsolete\n /etc/new newconffile\nDescription: x\n more\n\n\
Package: gone\nStatus: deinstall ok config-files\n";
        let e = parse_status(s).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].package, "openssh-server");
        assert_eq!(e[0].version, "1:9.2p1-2+deb12u3");
        assert!(e[0].installed);
        assert_eq!(e[0].conffiles.len(), 1);
        assert_eq!(e[0].conffiles[0].path, b"/etc/ssh/moduli");
        assert!(!e[1].installed);
    }

    #[test]
    fn status_errors_name_the_line() {
        assert_eq!(
            parse_status(b"Package: a\nConffiles:\n /etc/a zz\n"),
            Err(Error::Line {
                line: 3,
                reason: "Conffiles md5 is not 32 hex digits".into()
            })
        );
        assert!(matches!(
            parse_status(b"Version: 1\n\n"),
            Err(Error::Line { line: 1, .. })
        ));
        assert!(matches!(
            parse_status(b"Package a\n"),
            Err(Error::Line { line: 1, .. })
        ));
    }

    #[test]
    fn md5sums_lines() {
        let m = parse_md5sums(
            b"d41d8cd98f00b204e9800998ecf8427e  usr/bin/x\n900150983cd24fb0d6963f7d28e17f72 *usr/share/a b\n",
        )
        .unwrap();
        assert_eq!(m[0].path, b"/usr/bin/x");
        assert_eq!(m[1].path, b"/usr/share/a b");
        assert!(matches!(
            parse_md5sums(b"nothex  usr/x\n"),
            Err(Error::Line { line: 1, .. })
        ));
        assert!(parse_md5sums(b"d41d8cd98f00b204e9800998ecf8427e\n").is_err());
        assert_eq!(
            md5sums_package(b"libc6:amd64.md5sums"),
            Some((&b"libc6"[..], Some(&b"amd64"[..])))
        );
        assert_eq!(md5sums_package(b"x.list"), None);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut v = vec![];
            for _ in 0..(seed % 200) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.push(b" \n:/0af\tPCz*"[(seed >> 33) as usize % 12]);
            }
            let _ = parse_status(&v);
            let _ = parse_md5sums(&v);
        }
    }
}
