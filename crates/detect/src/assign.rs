//! Secret-named keys with a real-looking value: `DB_PASSWORD=…` (env files, shell
//! `export`), `password = …` (INI, TOML), `api_key: …` (YAML), `"client_secret":
//! "…"` (JSON), `<password>…</password>` (XML), `--password=…` (command lines).
//!
//! Sources: gitleaks' `generic-api-key` rule (`config/gitleaks.toml`: a keyword list
//! — `access`, `auth`, `api`, `credential`, `creds`, `key`, `passw(or)?d`, `secret`,
//! `token` — then an assignment operator, then a value with an entropy of at least
//! 3.5, and a stopword list); TruffleHog's `detectors/generic` keyword approach and
//! its `FalsePositives` words. Here the key must *end* in a secret word (so
//! `password_file`, `token_url` and `secret_name` are not secrets), the value must
//! pass the shared placeholder gate, must not be a variable, a path, a URL or code
//! (`self.password`), and must look random: two character classes and an entropy
//! floor that grows with the length.

use crate::id::DetectorId;
use crate::text::{entropy, is_placeholder, run_len};
use crate::window::{Ctx, Hit, Window};

/// What kind of secret a key name announces; decides the value's minimum length.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Password,
    Token,
}

/// Normalized key endings (lowercase, `_`, `-`, `.` removed) that announce a secret.
const ENDINGS: &[(&[u8], Kind)] = &[
    (b"password", Kind::Password),
    (b"passwd", Kind::Password),
    (b"passphrase", Kind::Password),
    (b"psk", Kind::Password),
    (b"presharedkey", Kind::Token),
    (b"secret", Kind::Token),
    (b"secretkey", Kind::Token),
    (b"token", Kind::Token),
    (b"apikey", Kind::Token),
    (b"accesskey", Kind::Token),
    (b"privatekey", Kind::Token),
];

/// Values that belong to a specific detector: when that detector rejects them (a
/// GitHub token with a wrong checksum), this one must not report them either.
const CLAIMED_PREFIXES: &[&[u8]] = &[
    b"ghp_",
    b"gho_",
    b"ghu_",
    b"ghs_",
    b"ghr_",
    b"github_pat_",
    b"glpat-",
    b"xox",
    b"npm_",
    b"sk_live_",
    b"rk_live_",
    b"sk_test_",
    b"pypi-",
    b"AKIA",
    b"ASIA",
    b"-----BEGIN",
    b"eyJ",
];

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// The key around the anchor: (start, end) of the identifier containing `at`.
fn key_span(hay: &[u8], at: usize) -> (usize, usize) {
    let mut s = at;
    while s > 0 && at - s < 64 && is_key_char(hay[s - 1]) {
        s -= 1;
    }
    let e = at + run_len(hay, at, 64, is_key_char);
    // `--password`, `-p`: flags, not part of the name.
    while s < e && hay[s] == b'-' {
        s += 1;
    }
    (s, e)
}

fn kind_of(key: &[u8]) -> Option<Kind> {
    let mut norm = [0u8; 64];
    let mut n = 0;
    for &c in key {
        if c.is_ascii_alphanumeric() && n < norm.len() {
            norm[n] = c.to_ascii_lowercase();
            n += 1;
        }
    }
    let norm = &norm[..n];
    ENDINGS
        .iter()
        .find(|(e, _)| norm.ends_with(e))
        .map(|&(_, k)| k)
}

/// Skips spaces and tabs.
fn blanks(hay: &[u8], i: usize) -> usize {
    i + run_len(hay, i, 64, |c| c == b' ' || c == b'\t')
}

/// The value after the key: (value start, value end, span end, quoted).
fn value_after(
    hay: &[u8],
    key_start: usize,
    key_end: usize,
) -> Option<(usize, usize, usize, bool)> {
    let before = key_start.checked_sub(1).map(|i| hay[i]);
    // XML element: `<password>value</password>`.
    if before == Some(b'<') && hay.get(key_end) == Some(&b'>') {
        let v = key_end + 1;
        let n = run_len(hay, v, 257, |c| c != b'<' && c != b'\n' && c != b'\r');
        let close = v + n;
        if hay.get(close..close + 2) != Some(b"</") {
            return None;
        }
        return Some((v, close, close, false));
    }
    let mut i = key_end;
    // The closing quote of a quoted key (JSON, YAML, Python dicts).
    if matches!(before, Some(b'"' | b'\'')) && hay.get(i).copied() == before {
        i += 1;
    }
    i = blanks(hay, i);
    match hay.get(i..i + 2) {
        Some(b":=") | Some(b"=>") => i += 2,
        Some([b'=', b'=']) | Some([b'=', b'~']) => return None, // comparisons
        Some([b'=' | b':', _]) => i += 1,
        _ => return None,
    }
    i = blanks(hay, i);
    let q = *hay.get(i)?;
    if matches!(q, b'"' | b'\'' | b'`') {
        let v = i + 1;
        let n = run_len(hay, v, 257, |c| {
            c != q && c != b'\n' && c != b'\r' && c != b'\\'
        });
        let close = v + n;
        if hay.get(close) != Some(&q) {
            return None; // escapes, line breaks or too long: not a plain literal
        }
        Some((v, close, close + 1, true))
    } else {
        let n = run_len(hay, i, 257, |c| {
            c.is_ascii_graphic() && !matches!(c, b',' | b';' | b'&' | b'}' | b']' | b'"' | b'\'')
        });
        Some((i, i + n, i + n, false))
    }
}

/// `a.b.c` / `self.password` / `os.environ` / `getpass()`: code, not a literal.
fn is_code(v: &[u8], quoted: bool) -> bool {
    if quoted {
        return false;
    }
    if v.contains(&b'(') || v.contains(&b'[') {
        return true;
    }
    let ident_dots = v
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.');
    ident_dots && v.contains(&b'.') && v[0].is_ascii_alphabetic()
}

/// Whether `v` looks like a credential rather than a word, number, path or reference.
fn plausible(v: &[u8], kind: Kind, quoted: bool) -> bool {
    let min = if kind == Kind::Password { 6 } else { 12 };
    if v.len() < min || v.len() > 256 || is_placeholder(v) || is_code(v, quoted) {
        return false;
    }
    if !v.iter().all(|&c| (0x20..0x7f).contains(&c)) {
        return false;
    }
    if matches!(
        v[0],
        b'/' | b'~' | b'.' | b'#' | b'|' | b'>' | b'!' | b'&' | b'*'
    ) || memchr::memmem::find(v, b"://").is_some()
    {
        return false; // paths, YAML block scalars/tags/anchors/aliases, URLs
    }
    if CLAIMED_PREFIXES.iter().any(|p| v.starts_with(p)) {
        return false;
    }
    let lower = v.iter().any(u8::is_ascii_lowercase);
    let upper = v.iter().any(u8::is_ascii_uppercase);
    let digit = v.iter().any(u8::is_ascii_digit);
    let other = v.iter().any(|c| !c.is_ascii_alphanumeric());
    let classes = [lower, upper, digit, other].iter().filter(|&&b| b).count();
    if classes < 2 || !(lower || upper) {
        return false; // words, numbers, dates
    }
    // Random strings of length n reach ~log2(n) bits; words and patterns stay low.
    let floor = if v.len() < 12 { 2.5 } else { 3.0 };
    entropy(v) >= floor
}

/// The anchor is a fragment of a secret word (`assword`, `OKEN`, …) inside a key.
pub(crate) fn validate(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let hay = win.hay;
    let (ks, ke) = key_span(hay, win.at);
    if ke <= ks || ke - ks > 60 {
        return;
    }
    let key = &hay[ks..ke];
    let Some(kind) = kind_of(key) else { return };
    // What comes before the key: start of line, blanks, quotes, `export `, `{`, `,`,
    // query separators, XML `<`, a flag's `-`.
    if let Some(&c) = ks.checked_sub(1).and_then(|i| hay.get(i))
        && !(c.is_ascii_whitespace() || b"\"'{,;(&?<-$".contains(&c))
    {
        return;
    }
    let Some((vs, ve, end, quoted)) = value_after(hay, ks, ke) else {
        return;
    };
    let value = &hay[vs..ve];
    if !plausible(value, kind, quoted) {
        return;
    }
    let shown: String = key.iter().take(48).map(|&c| c as char).collect::<String>();
    out.push(Hit {
        value: Some(vs..ve),
        detector: DetectorId::SecretAssignment,
        start: ks,
        end,
        fingerprint: ctx.fingerprint(&[value]),
        why: format!("value of the secret-named key `{shown}`"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_kinds() {
        for k in [
            &b"DB_PASSWORD"[..],
            b"password",
            b"client_secret",
            b"aws_secret_access_key",
            b"GITHUB_TOKEN",
            b"api-key",
            b"apiKey",
            b"PrivateKey",
            b"spring.datasource.password",
            b"psk",
        ] {
            assert!(kind_of(k).is_some(), "{}", String::from_utf8_lossy(k));
        }
        for k in [
            &b"password_file"[..],
            b"token_url",
            b"secret_name",
            b"max_tokens",
            b"user",
            b"PasswordAuthentication",
        ] {
            assert!(kind_of(k).is_none(), "{}", String::from_utf8_lossy(k));
        }
    }

    #[test]
    fn values() {
        assert!(plausible(b"Xk9mP2qL7vR4", Kind::Password, false));
        assert!(plausible(b"hunter22!", Kind::Password, true));
        for v in [
            &b"true"[..],
            b"12345678901234",
            b"self.password",
            b"os.environ.get",
            b"get_password()",
            b"/run/secrets/db",
            b"${DB_PASSWORD}",
            b"changeme123",
            b"|",
            b"correcthorse",
        ] {
            assert!(
                !plausible(v, Kind::Password, false),
                "{}",
                String::from_utf8_lossy(v)
            );
        }
    }
}
