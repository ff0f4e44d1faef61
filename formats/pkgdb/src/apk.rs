//! apk (Alpine): `/lib/apk/db/installed`, blank-line separated package blocks
//! of `X:value` lines: `P:` name, `V:` version, `F:` a directory (relative to
//! `/`), `R:` a file in the last `F:`, `Z:` that file's checksum — `Q1` +
//! base64 of its SHA-1 (`Q2` would be SHA-256).
//!
//! Reference: <https://wiki.alpinelinux.org/wiki/Apk_spec> ("Installed
//! Database" and "Package Checksum").

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::{Algo, Error, FileDigest, Package, Result};

pub fn parse_installed(text: &[u8]) -> Result<Vec<Package>> {
    let mut out = vec![];
    let mut pkg = Package::default();
    let mut have = false;
    let mut dir: Vec<u8> = vec![];
    let mut file: Option<Vec<u8>> = None;
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let bad = |reason: &str| Error::Line {
            line: i + 1,
            reason: reason.into(),
        };
        if line.is_empty() {
            if have {
                if pkg.name.is_empty() {
                    return Err(bad("package block without a P: line"));
                }
                out.push(std::mem::take(&mut pkg));
            }
            have = false;
            dir.clear();
            file = None;
            continue;
        }
        have = true;
        if line.len() < 2 || line[1] != b':' {
            return Err(bad("line is not `X:value`"));
        }
        let v = &line[2..];
        match line[0] {
            b'P' => pkg.name = String::from_utf8_lossy(v).into_owned(),
            b'V' => pkg.version = String::from_utf8_lossy(v).into_owned(),
            b'F' => {
                dir = v.to_vec();
                file = None;
            }
            b'R' => {
                let mut p = vec![b'/'];
                if !dir.is_empty() {
                    p.extend_from_slice(&dir);
                    p.push(b'/');
                }
                p.extend_from_slice(v);
                file = Some(p);
            }
            b'Z' => {
                // A Z: after F: without R: is the directory's own (ACL) checksum.
                let Some(path) = file.take() else { continue };
                let (algo, b64) = if let Some(b) = v.strip_prefix(b"Q1") {
                    (Algo::Sha1, b)
                } else if let Some(b) = v.strip_prefix(b"Q2") {
                    (Algo::Sha256, b)
                } else {
                    return Err(bad("checksum is neither Q1 (SHA-1) nor Q2 (SHA-256)"));
                };
                let digest = STANDARD
                    .decode(b64)
                    .ok()
                    .filter(|d| d.len() == algo.digest_len())
                    .ok_or_else(|| bad("checksum is not base64 of the digest's length"))?;
                pkg.files.push(FileDigest { path, algo, digest });
            }
            _ => {}
        }
    }
    if have {
        if pkg.name.is_empty() {
            return Err(Error::Line {
                line: text.split(|&b| b == b'\n').count(),
                reason: "package block without a P: line".into(),
            });
        }
        out.push(pkg);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn blocks_files_and_checksums() {
        // SHA-1 of "abc" is a9993e36…d89d; base64 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=.
        let t = b"C:Q1xxx=\nP:musl\nV:1.2.4-r2\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1qZk+NkcGgWq6PiVxeFDCbJzQ2J0=\nR:nosum\nF:etc\nZ:Q1qZk+NkcGgWq6PiVxeFDCbJzQ2J0=\n\nP:b\nV:2\n";
        let p = parse_installed(t).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "musl");
        assert_eq!(p[0].files.len(), 1);
        assert_eq!(p[0].files[0].path, b"/lib/ld-musl-x86_64.so.1");
        assert_eq!(p[0].files[0].digest[0], 0xa9);
        assert!(p[1].files.is_empty());
    }

    #[test]
    fn bad_checksums_are_errors() {
        assert!(matches!(
            parse_installed(b"P:a\nF:x\nR:y\nZ:Q1!!\n"),
            Err(Error::Line { line: 4, .. })
        ));
        assert!(parse_installed(b"P:a\nF:x\nR:y\nZ:X1abc\n").is_err());
        assert!(parse_installed(b"V:1\n\n").is_err());
        assert!(parse_installed(b"garbage\n").is_err());
    }
}
