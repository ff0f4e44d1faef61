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

/// Values people put where a secret goes in documentation and templates.
pub(crate) fn is_placeholder(v: &[u8]) -> bool {
    if v.is_empty() {
        return true;
    }
    if matches!(v[0], b'$' | b'<' | b'{' | b'%' | b'[' | b'(') {
        return true;
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
    WORDS.iter().any(|w| v.eq_ignore_ascii_case(w))
}
