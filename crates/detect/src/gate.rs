//! A cheap pre-pass that rules out most bytes for the provider-token anchors.
//!
//! Every token rule of the gated prefilter group ([`crate::rules::GATED_GROUP`])
//! reports only a match whose first [`RUN`] bytes, from the anchor on, are all
//! [`is_run_byte`] characters: a token is a prefix and a long body of
//! base64/hex/word characters (`ghp_` + 36 alphanumerics, `eyJ…` + `.` + …). Random
//! binary content almost never holds 16 such bytes in a row (p ≈ 0.26¹⁶ per
//! position), nor does log or prose text, whose words are shorter and separated by
//! spaces. So the stream is cut in [`BLOCK`]-byte blocks, and the gated group's
//! Aho-Corasick pass runs only over blocks where such a run starts.
//!
//! The check is written as plain loops over byte arrays, which the compiler turns into
//! SIMD without `unsafe`: one pass flags pairs of run bytes, one ANDs four pairs into
//! eight, and the last ORs together the ANDs of two eights (16 run bytes start here).
//! A block costs a few instructions per 16 bytes (~10 GB/s per core measured) instead
//! of the 50-pattern Teddy pass, whose fingerprints alias on lowercase text.
//!
//! Which rules may be gated is checked by tests (`rules.rs`: every gated anchor is
//! made of run bytes; `prefixed.rs`: every gated shape's prefix and shortest body are
//! at least [`RUN`] run bytes).

/// Run bytes that every gated match starts with.
pub(crate) const RUN: usize = 16;
// `run_starts_in` builds 16 from pairs, fours of pairs and two eights.
const _: () = assert!(RUN == 16);
/// Bytes judged at a time.
pub(crate) const BLOCK: usize = 4096;

/// Run bytes: `-` (0x2D) to `z` (0x7A), one range that holds every token character
/// (ASCII letters and digits, `_`, `-`, `.`, `=`: base64url bodies, JWT and Vault
/// separators, padding). The few other bytes it admits (`/`, `:`, `@`, `[`, …) only
/// make the gate open more often; a single range costs three SIMD instructions where
/// the exact class cost six comparisons. Spaces, line ends, quotes, commas, control
/// bytes and every byte ≥ 0x80 end a run.
#[inline(always)]
pub(crate) fn is_run_byte(c: u8) -> bool {
    c.wrapping_sub(b'-') <= b'z' - b'-'
}

/// Reusable flag buffers (no secret bytes: only 0/1 flags).
#[derive(Default)]
pub(crate) struct GateBuf {
    a: Vec<u8>,
    b: Vec<u8>,
}

/// Whether [`RUN`] run bytes start at some index below `starts` in `seg`
/// (`seg` holds the block and up to `RUN - 1` bytes after it).
pub(crate) fn run_starts_in(seg: &[u8], starts: usize, buf: &mut GateBuf) -> bool {
    let len = seg.len();
    if len < RUN || starts == 0 {
        return false;
    }
    if buf.a.len() < len {
        buf.a.resize(len, 0);
        buf.b.resize(len, 0);
    }
    let (g, h) = (&mut buf.a[..len], &mut buf.b[..len]);
    // g[i]: seg[i..i + 2] are run bytes (valid for i + 2 ≤ len).
    for (o, (&x, &y)) in g.iter_mut().zip(seg.iter().zip(&seg[1..])) {
        *o = u8::from(is_run_byte(x)) & u8::from(is_run_byte(y));
    }
    // h[i]: seg[i..i + 8] are (valid for i + 8 ≤ len).
    let quads = g.iter().zip(&g[2..]).zip(&g[4..]).zip(&g[6..]);
    for (o, (((w, x), y), z)) in h.iter_mut().zip(quads) {
        *o = w & x & y & z;
    }
    // seg[i..i + 16] are, for some i below `starts`.
    let valid = (len + 1 - RUN).min(starts);
    h[..valid]
        .iter()
        .zip(&h[8..])
        .fold(0u8, |a, (x, y)| a | (x & y))
        != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorized check agrees with a direct one on every start position and
    /// run length around the threshold.
    #[test]
    fn agrees_with_naive() {
        let naive = |seg: &[u8], starts: usize| {
            (0..starts)
                .any(|i| i + RUN <= seg.len() && seg[i..i + RUN].iter().all(|&c| is_run_byte(c)))
        };
        let mut buf = GateBuf::default();
        for n in [RUN - 1, RUN, RUN + 1, 40] {
            for at in 0..48 {
                let mut seg = vec![b' '; 64];
                for c in seg.iter_mut().skip(at).take(n) {
                    *c = b'a';
                }
                for starts in [0, 1, at, at + 1, 48, 64] {
                    assert_eq!(
                        run_starts_in(&seg, starts, &mut buf),
                        naive(&seg, starts),
                        "run {n} at {at}, starts below {starts}"
                    );
                }
            }
        }
    }

    #[test]
    fn classes() {
        for c in 0..=255u8 {
            let token = c.is_ascii_alphanumeric() || b"_-.=".contains(&c);
            assert!(
                !token || is_run_byte(c),
                "token byte {c:#x} must be a run byte"
            );
            let breaks = c.is_ascii_whitespace() || c >= 0x80 || b"\"',!\0".contains(&c);
            assert!(!breaks || !is_run_byte(c), "byte {c:#x} must end a run");
        }
    }
}
