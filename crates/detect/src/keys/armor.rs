//! The body of a PEM / OpenPGP armor / RFC 4716 block, however it was wrapped: LF or
//! CRLF lines, indented lines (YAML), one long line with spaces (a key pasted into an
//! env var), or a JSON string where line breaks are the two characters `\n`.

/// Most base64 text we collect from one block (the window is smaller anyway).
const MAX_TEXT: usize = 96 << 10;

#[derive(Default)]
pub(crate) struct Armor {
    /// `Proc-Type: 4,ENCRYPTED` was present.
    pub proc_encrypted: bool,
    /// The cipher named by `DEK-Info:` (legacy OpenSSL encryption).
    pub dek_cipher: Option<&'static str>,
    /// The OpenPGP `=XXXX` CRC-24 line, decoded.
    pub crc24: Option<u32>,
    /// How many header lines there were.
    pub headers: usize,
}

/// The next line of `body` from `i`: (start, end, next). A line ends at `\n` or at the
/// two bytes `\` `n` (JSON/C-escaped text).
fn next_line(body: &[u8], i: usize) -> Option<(usize, usize, usize)> {
    if i >= body.len() {
        return None;
    }
    let rest = &body[i..];
    let mut j = 0;
    while j < rest.len() {
        match rest[j] {
            b'\n' => return Some((i, i + j, i + j + 1)),
            b'\\' if rest.get(j + 1) == Some(&b'n') => return Some((i, i + j, i + j + 2)),
            _ => j += 1,
        }
    }
    Some((i, body.len(), body.len()))
}

fn trim(mut l: &[u8]) -> &[u8] {
    loop {
        let before = l.len();
        while let Some((&c, rest)) = l.split_first() {
            if matches!(c, b' ' | b'\t' | b'\r') {
                l = rest;
            } else {
                break;
            }
        }
        while let Some((&c, rest)) = l.split_last() {
            if matches!(c, b' ' | b'\t' | b'\r') {
                l = rest;
            } else {
                break;
            }
        }
        if l.ends_with(b"\\r") {
            l = &l[..l.len() - 2];
        }
        if l.len() == before {
            return l;
        }
    }
}

/// `Name: value` (RFC 1421 / RFC 4880 / RFC 4716 headers). Base64 never holds ':'.
fn header(l: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', l)?;
    let name = &l[..colon];
    if name.is_empty()
        || !name[0].is_ascii_alphabetic()
        || !name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    {
        return None;
    }
    Some((name, trim(&l[colon + 1..])))
}

fn dek_cipher(v: &[u8]) -> Option<&'static str> {
    let comma = memchr::memchr(b',', v)?;
    let (name, iv) = (&v[..comma], &v[comma + 1..]);
    if !(iv.len() == 16 || iv.len() == 32) || !iv.iter().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    const KNOWN: &[&str] = &[
        "AES-128-CBC",
        "AES-192-CBC",
        "AES-256-CBC",
        "DES-EDE3-CBC",
        "DES-CBC",
        "CAMELLIA-256-CBC",
        "ARIA-256-CBC",
    ];
    KNOWN
        .iter()
        .copied()
        .find(|k| k.as_bytes().eq_ignore_ascii_case(name))
        .or(Some("unknown cipher"))
}

/// Collects the base64 payload of `body` into `out`. `pgp` allows the CRC line,
/// `continuation` allows RFC 4716 header lines continued with a trailing backslash.
/// None when anything but headers, base64 and whitespace is there.
pub(crate) fn collect(
    body: &[u8],
    out: &mut Vec<u8>,
    pgp: bool,
    continuation: bool,
) -> Option<Armor> {
    out.clear();
    let mut a = Armor::default();
    let mut in_body = false;
    let mut headers_done = false;
    let mut continued = false;
    let mut i = 0;
    while let Some((s, e, next)) = next_line(body, i) {
        i = next;
        let line = trim(&body[s..e]);
        if continued {
            continued = line.ends_with(b"\\");
            continue;
        }
        if line.is_empty() {
            if a.headers > 0 {
                headers_done = true;
            }
            continue;
        }
        if !in_body
            && !headers_done
            && let Some((name, value)) = header(line)
        {
            a.headers += 1;
            if a.headers > 32 {
                return None;
            }
            if name.eq_ignore_ascii_case(b"Proc-Type") && value.ends_with(b"ENCRYPTED") {
                a.proc_encrypted = true;
            } else if name.eq_ignore_ascii_case(b"DEK-Info") {
                a.dek_cipher = dek_cipher(value);
            }
            continued = continuation && line.ends_with(b"\\");
            continue;
        }
        in_body = true;
        if pgp && line.len() == 5 && line[0] == b'=' {
            let mut crc = Vec::with_capacity(3);
            if !crate::b64::decode_into(&line[1..], &mut crc) || crc.len() != 3 || a.crc24.is_some()
            {
                return None;
            }
            a.crc24 = Some((crc[0] as u32) << 16 | (crc[1] as u32) << 8 | crc[2] as u32);
            continue;
        }
        if a.crc24.is_some() {
            return None; // nothing may follow the checksum
        }
        let mut j = 0;
        while j < line.len() {
            let c = line[j];
            if crate::text::is_b64(c) || c == b'=' {
                out.push(c);
            } else if c == b'\\' && line.get(j + 1) == Some(&b'/') {
                out.push(b'/');
                j += 1;
            } else if c == b'\\' && matches!(line.get(j + 1), Some(b'r' | b't')) {
                j += 1;
            } else if !matches!(c, b' ' | b'\t' | b'\r') {
                return None;
            }
            j += 1;
        }
        if out.len() > MAX_TEXT {
            return None;
        }
    }
    (!out.is_empty()).then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappings_give_the_same_payload() {
        let mut out = Vec::new();
        for body in [
            &b"\nQUJD\nREVG\n"[..],
            b"\r\nQUJD\r\nREVG\r\n",
            b"\\nQUJD\\nREVG\\n",
            b"\\r\\nQUJD\\r\\nREVG\\r\\n",
            b"\n    QUJD\n    REVG\n  ",
            b" QUJD REVG ",
        ] {
            assert!(collect(body, &mut out, false, false).is_some(), "{body:?}");
            assert_eq!(out, b"QUJDREVG");
        }
    }

    #[test]
    fn prose_is_rejected() {
        let mut out = Vec::new();
        assert!(collect(b"\n...\n", &mut out, false, false).is_none());
        assert!(collect(b"\n(your key here)\n", &mut out, false, false).is_none());
        assert!(collect(b"\n\n", &mut out, false, false).is_none());
    }

    #[test]
    fn legacy_headers() {
        let mut out = Vec::new();
        let a = collect(
            b"\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nQUJD\n",
            &mut out,
            false,
            false,
        )
        .unwrap();
        assert!(a.proc_encrypted);
        assert_eq!(a.dek_cipher, Some("AES-128-CBC"));
        assert_eq!(out, b"QUJD");
    }
}
