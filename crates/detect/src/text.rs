//! Byte-class helpers shared by the validators. All of them are bounds-checked: the
//! window they look at is arbitrary file content.

pub(crate) fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// Characters of the standard base64 alphabet (without padding).
pub(crate) fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

/// Characters of the URL-safe base64 alphabet, and of most `[\w-]` token bodies.
pub(crate) fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// How many bytes from `from` satisfy `pred`, counting at most `max`.
pub(crate) fn run_len(hay: &[u8], from: usize, max: usize, pred: impl Fn(u8) -> bool) -> usize {
    hay.get(from..)
        .unwrap_or(&[])
        .iter()
        .take(max)
        .take_while(|&&c| pred(c))
        .count()
}

/// True when the byte before `at` does not satisfy `pred` (or there is none).
pub(crate) fn clear_before(hay: &[u8], at: usize, pred: impl Fn(u8) -> bool) -> bool {
    match at.checked_sub(1).and_then(|i| hay.get(i)) {
        Some(&c) => !pred(c),
        None => true,
    }
}

/// True when the byte at `at` does not satisfy `pred` (or the window ends there).
pub(crate) fn clear_at(hay: &[u8], at: usize, pred: impl Fn(u8) -> bool) -> bool {
    match hay.get(at) {
        Some(&c) => !pred(c),
        None => true,
    }
}

pub(crate) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t')
}

/// Skips spaces and tabs (not line ends) from `i`.
pub(crate) fn skip_blanks(hay: &[u8], i: usize) -> usize {
    i + run_len(hay, i, usize::MAX, is_space)
}

pub(crate) fn starts_with_at(hay: &[u8], at: usize, needle: &[u8]) -> bool {
    hay.get(at..).is_some_and(|s| s.starts_with(needle))
}

/// First occurrence of `needle` in `hay[from..to]`, as an index into `hay`.
pub(crate) fn find_in(hay: &[u8], from: usize, to: usize, needle: &[u8]) -> Option<usize> {
    let to = to.min(hay.len());
    let s = hay.get(from..to)?;
    memchr::memmem::find(s, needle).map(|i| i + from)
}

/// Last occurrence of `needle` in `hay[from..to]`, as an index into `hay`.
pub(crate) fn rfind_in(hay: &[u8], from: usize, to: usize, needle: &[u8]) -> Option<usize> {
    let to = to.min(hay.len());
    let s = hay.get(from..to)?;
    memchr::memmem::rfind(s, needle).map(|i| i + from)
}

/// The line containing `at`: (start, end) with end excluding the line break.
pub(crate) fn line_around(hay: &[u8], at: usize) -> (usize, usize) {
    let start = hay
        .get(..at)
        .and_then(|s| memchr::memrchr(b'\n', s))
        .map_or(0, |i| i + 1);
    let end = hay
        .get(at..)
        .and_then(|s| memchr::memchr(b'\n', s))
        .map_or(hay.len(), |i| i + at);
    (start, end)
}

/// Values people put where a secret goes in documentation and templates: the gate
/// every password-like detector shares. Sources: gitleaks' global allowlist
/// (`config/gitleaks.toml`: `EXAMPLE`, `xxx`, `${…}`, `<…>`, `changeme`-style
/// stopwords) and TruffleHog's `detectors.FalsePositives` word list.
pub(crate) fn is_placeholder(v: &[u8]) -> bool {
    if v.is_empty() {
        return true;
    }
    if matches!(v[0], b'$' | b'<' | b'{' | b'%' | b'[' | b'(' | b'@') {
        return true; // $VAR, ${VAR}, <your-password>, {{ jinja }}, %s, [REDACTED], @token@
    }
    if v.iter().all(|&c| c == v[0]) {
        return true; // "xxxxxxxx", "********"
    }
    const WORDS: &[&[u8]] = &[
        b"password",
        b"passwd",
        b"pass",
        b"pwd",
        b"secret",
        b"token",
        b"mypassword",
        b"yourpassword",
        b"your_password",
        b"your-password",
        b"changeme",
        b"example",
        b"redacted",
        b"null",
        b"none",
        b"undefined",
        b"placeholder",
    ];
    if WORDS.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        return true;
    }
    // Markers anywhere in the value.
    const PARTS: &[&[u8]] = &[
        b"xxx",
        b"***",
        b"...",
        b"${",
        b"{{",
        b"example",
        b"changeme",
        b"change_me",
        b"change-me",
        b"placeholder",
        b"dummy",
        b"redacted",
        b"your_",
        b"your-",
        b"yourpass",
        b"yoursecret",
        b"yourtoken",
        b"insert",
        b"replace_me",
        b"replaceme",
        b"<",
    ];
    PARTS.iter().any(|p| contains_ignore_case(v, p))
}

/// ASCII case-insensitive substring test (short needles, short values).
pub(crate) fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Shannon entropy of `v` in bits per byte: random tokens score high (base64 ≈ 5–6,
/// hex ≈ 3.5–4), words and repeated patterns low.
pub(crate) fn entropy(v: &[u8]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &c in v {
        counts[c as usize] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        for v in [
            &b"${DB_PASSWORD}"[..],
            b"<password>",
            b"changeme",
            b"CHANGE_ME_PLEASE",
            b"xxxxxxxx",
            b"abcXXXdef",
            b"{{ vault_pw }}",
            b"%s",
            b"my-example-pw",
            b"your_api_key_here",
        ] {
            assert!(is_placeholder(v), "{}", String::from_utf8_lossy(v));
        }
        for v in [&b"Xk9mP2qL7vR4"[..], b"s3cr3t-P4ss", b"hunter22!"] {
            assert!(!is_placeholder(v), "{}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn entropy_orders_random_above_words() {
        assert!(entropy(b"aaaaaaaa") < 0.01);
        assert!(entropy(b"Xk9mP2qL7vR4tY8w") > 3.5);
        assert!(entropy(b"passwordpassword") < 3.0);
    }
}
