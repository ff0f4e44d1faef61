//! PuTTY private key files, formats 2 and 3 (PuTTY's `sshpubk.c` documents them):
//! `Public-Lines`/`Private-Lines` counted base64 sections and a `Private-MAC`.

use super::wire::{Wire, describe_public};
use crate::id::DetectorId;
use crate::text::starts_with_at;
use crate::window::{Ctx, Hit, Window};

/// Lines of a `.ppk`, split at `\n` (or an escaped `\n`), with `\r` trimmed.
struct Lines<'a> {
    hay: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.hay.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let (len, skip) = match memchr::memchr2(b'\n', b'\\', rest) {
            None => (rest.len(), 0),
            Some(i) if rest[i] == b'\n' => (i, 1),
            Some(i) if rest.get(i + 1) == Some(&b'n') => (i, 2),
            Some(_) => {
                // A lone backslash inside a line: find the real break.
                let i = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                (i, 1)
            }
        };
        let mut line = &rest[..len];
        self.pos += len + skip;
        while let Some(l) = line
            .strip_suffix(b"\r")
            .or_else(|| line.strip_suffix(b"\\r"))
        {
            line = l;
        }
        // Indented (YAML, heredocs): leading blanks are not part of a ppk line.
        Some(&line[crate::text::skip_blanks(line, 0)..])
    }

    fn field(&mut self, name: &[u8]) -> Option<&'a [u8]> {
        self.next()?.strip_prefix(name)?.strip_prefix(b": ")
    }

    fn count(&mut self, name: &[u8], max: usize) -> Option<usize> {
        let v = self.field(name)?;
        if v.is_empty() || v.len() > 4 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = std::str::from_utf8(v).ok()?.parse::<usize>().ok()?;
        (1..=max).contains(&n).then_some(n)
    }

    fn base64(&mut self, lines: usize, text: &mut Vec<u8>, out: &mut Vec<u8>) -> Option<()> {
        text.clear();
        for _ in 0..lines {
            let l = self.next()?;
            if !l.iter().all(|&c| crate::text::is_b64(c) || c == b'=') {
                return None;
            }
            text.extend_from_slice(l);
        }
        crate::b64::decode_into(text, out).then_some(())
    }
}

pub(crate) fn validate(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    if let Some(hit) = parse(win, ctx) {
        out.push(hit);
    }
    ctx.scratch.wipe();
}

fn parse(win: &Window, ctx: &mut Ctx) -> Option<Hit> {
    const HEAD: &[u8] = b"PuTTY-User-Key-File-";
    if !starts_with_at(win.hay, win.at, HEAD) {
        return None;
    }
    let mut lines = Lines {
        hay: win.hay,
        pos: win.at,
    };
    let first = lines.next()?.strip_prefix(HEAD)?;
    let (version, alg) = match first {
        [v @ (b'2' | b'3'), b':', b' ', alg @ ..] => (*v - b'0', alg),
        _ => return None,
    };
    let encryption = lines.field(b"Encryption")?;
    let encrypted = match encryption {
        b"none" => false,
        b"aes256-cbc" => true,
        _ => return None,
    };
    lines.field(b"Comment")?;
    let n_pub = lines.count(b"Public-Lines", 64)?;
    let s = &mut *ctx.scratch;
    lines.base64(n_pub, &mut s.text, &mut s.inner)?;
    let mut w = Wire::new(&s.inner);
    if w.string()? != alg {
        return None;
    }
    let what = describe_public(&s.inner)?;
    // Format 3 puts the Argon2 parameters of an encrypted key here.
    let mut n_priv = None;
    for _ in 0..6 {
        let save = lines.pos;
        let l = lines.next()?;
        if l.starts_with(b"Private-Lines: ") {
            lines.pos = save;
            n_priv = Some(lines.count(b"Private-Lines", 256)?);
            break;
        }
        let known = [
            &b"Key-Derivation: "[..],
            b"Argon2-Memory: ",
            b"Argon2-Passes: ",
            b"Argon2-Parallelism: ",
            b"Argon2-Salt: ",
        ];
        if version != 3 || !encrypted || !known.iter().any(|k| l.starts_with(k)) {
            return None;
        }
    }
    lines.base64(n_priv?, &mut s.text, &mut s.bin)?;
    if s.bin.is_empty() || (encrypted && !s.bin.len().is_multiple_of(16)) {
        return None;
    }
    let mac = lines.field(b"Private-MAC")?;
    let mac_len = if version == 2 { 40 } else { 64 };
    if mac.len() != mac_len || !mac.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    // The match ends with the MAC line (its position inside the window).
    let end = mac.as_ptr() as usize - win.hay.as_ptr() as usize + mac.len();
    let fingerprint = ctx.fingerprint(&[&ctx.scratch.bin]);
    let enc = if encrypted {
        "encrypted aes256-cbc"
    } else {
        "unencrypted"
    };
    Some(Hit {
        value: None,
        detector: DetectorId::PuttyPrivateKey,
        start: win.at,
        end,
        fingerprint,
        why: format!("PuTTY v{version} private key ({what}, {enc})"),
    })
}
