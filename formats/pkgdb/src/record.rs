//! Python wheels' `*.dist-info/RECORD`: a CSV of `path,algo=digest,size`,
//! the digest in urlsafe base64 without padding; paths are relative to the
//! site directory that holds the `.dist-info` (scripts reach out with `../`).
//! `RECORD` itself and `.pyc` files have an empty hash column.
//!
//! Reference: PEP 376 and the "Recording installed projects" specification
//! (packaging.python.org/specifications/recording-installed-packages).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{Algo, Error, FileDigest, Result};

/// Parses RECORD; rows without a hash are skipped. Paths stay relative.
pub fn parse_record(text: &[u8]) -> Result<Vec<FileDigest>> {
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
        let cols = csv_row(line).ok_or_else(|| bad("unterminated quoted field"))?;
        let [path, hash, ..] = cols.as_slice() else {
            return Err(bad("fewer than 2 columns"));
        };
        if hash.is_empty() {
            continue;
        }
        let Some(eq) = hash.iter().position(|&b| b == b'=') else {
            return Err(bad("hash column is not `algo=digest`"));
        };
        let algo = match &hash[..eq] {
            b"sha256" => Algo::Sha256,
            b"sha384" => Algo::Sha384,
            b"sha512" => Algo::Sha512,
            // PEP 376 forbids md5 and sha1 here; anything else is unknown.
            _ => return Err(bad("hash algorithm is not sha256, sha384 or sha512")),
        };
        let digest =
            decode_digest(hash[eq + 1..].trim_ascii_end(), algo.digest_len()).ok_or_else(|| {
                bad("digest is neither urlsafe base64 nor hex of the algorithm's length")
            })?;
        if path.is_empty() {
            return Err(bad("empty path"));
        }
        out.push(FileDigest {
            path: path.clone(),
            algo,
            digest,
        });
    }
    Ok(out)
}

/// A RECORD digest: urlsafe base64 as the wheel spec writes it, or lowercase
/// hex, which Debian's dh-python writes when it rewrites the RECORDs of the
/// packages it builds (`sha256=d79a17…`). The two cannot be confused: a hex
/// digest is twice the digest's length, base64 4/3 of it.
fn decode_digest(text: &[u8], len: usize) -> Option<Vec<u8>> {
    if text.len() == 2 * len {
        return crate::bytes::unhex(text);
    }
    URL_SAFE_NO_PAD.decode(text).ok().filter(|d| d.len() == len)
}

/// One CSV row (RFC 4180 quoting, `,` separator), `None` on an open quote.
fn csv_row(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut cols = vec![];
    let mut cur = vec![];
    let mut i = 0;
    let mut quoted = false;
    while i < line.len() {
        let b = line[i];
        if quoted {
            if b == b'"' {
                if line.get(i + 1) == Some(&b'"') {
                    cur.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                cur.push(b);
            }
        } else if b == b'"' && cur.is_empty() {
            quoted = true;
        } else if b == b',' {
            cols.push(std::mem::take(&mut cur));
        } else {
            cur.push(b);
        }
        i += 1;
    }
    if quoted {
        return None;
    }
    cols.push(cur);
    Some(cols)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn debian_hex_digests() {
        // dh-python's rewritten RECORD: sha256("abc") in hex.
        let t = b"tiny/__init__.py,sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad,3\n";
        let r = parse_record(t).unwrap();
        assert_eq!(
            r[0].digest,
            crate::bytes::unhex(
                b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            )
            .unwrap()
        );
        assert!(
            parse_record(
                b"a,sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015,3\n"
            )
            .is_err()
        );
    }

    #[test]
    fn rows() {
        // sha256("abc") in urlsafe base64 without padding.
        let t = b"tiny/__init__.py,sha256=ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0,3\n\
\"odd,name.py\",sha256=ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0,3\n\
tiny-1.0.dist-info/RECORD,,\n../../bin/tiny,sha256=ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0,3\r\n";
        let r = parse_record(t).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].path, b"tiny/__init__.py");
        assert_eq!(r[1].path, b"odd,name.py");
        assert_eq!(r[2].path, b"../../bin/tiny");
        assert_eq!(r[0].digest[0], 0xba);
    }

    #[test]
    fn errors() {
        assert!(parse_record(b"a,md5=xx,1\n").is_err());
        assert!(parse_record(b"a,sha256=short,1\n").is_err());
        assert!(parse_record(b"\"open,sha256=x\n").is_err());
        assert!(parse_record(b"lonely\n").is_err());
    }
}
