//! Twilio credentials, found from the word `twilio` (gitleaks' `twilio-api-key` rule
//! uses that keyword too): an API key SID, and an account SID only beside an auth token.
//!
//! - API key SID: `SK` + 32 hex (gitleaks `twilio-api-key`: `SK[0-9a-fA-F]{32}`,
//!   keyword `twilio`). Reported as gitleaks does: whoever has it can try its secret.
//! - Account SID: `AC` + 32 lowercase hex, an identifier on its own. TruffleHog's
//!   `twilio` detector (`sidPat = \bAC[0-9a-f]{32}\b`, `keyPat = \b[0-9a-f]{32}\b`)
//!   reports a SID only when a 32-hex auth token is in the same chunk; here the token
//!   must be within [`NEAR`] bytes of the keyword, and the finding is the token (the
//!   secret), its reason naming the SID beside it.
//!
//! Source for the shapes: Twilio's docs "API keys" (`SK…`) and "Auth tokens and how to
//! change them" (account SID `AC…`, 32-character auth token).

use crate::id::DetectorId;
use crate::text::{is_alnum, is_placeholder};
use crate::window::{Ctx, Hit, Window};

/// How far around the keyword SIDs and tokens are looked for: a config block.
const NEAR: usize = 1024;
/// At most this many 32-hex candidates per keyword (bounded work on hex dumps).
const MAX_CANDIDATES: usize = 64;

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn is_lower_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

/// One bounded alphanumeric word of `hay[lo..hi]`: (start, end).
fn words(hay: &[u8], lo: usize, hi: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = lo;
    std::iter::from_fn(move || {
        while i < hi && !is_alnum(hay[i]) {
            i += 1;
        }
        if i >= hi {
            return None;
        }
        let s = i;
        // A word may run past `hi`; it is judged whole (at most to the window's end).
        while i < hay.len() && is_alnum(hay[i]) {
            i += 1;
        }
        Some((s, i))
    })
}

pub(crate) fn validate(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let hay = win.hay;
    let lo = win.at.saturating_sub(NEAR);
    let hi = (win.at + NEAR).min(hay.len());
    // A word that starts before `lo` is cut: skip to the first whole one.
    let mut lo = lo;
    while lo > 0 && lo < hi && is_alnum(hay[lo - 1]) && is_alnum(hay[lo]) {
        lo += 1;
    }
    let mut sid: Option<(usize, usize)> = None;
    let mut tokens: Vec<(usize, usize)> = Vec::new();
    for (s, e) in words(hay, lo, hi) {
        let w = &hay[s..e];
        if w.len() == 34 && w.starts_with(b"SK") && w[2..].iter().all(|&c| is_hex(c)) {
            if !is_placeholder(&w[2..]) {
                out.push(Hit {
                    value: Some(s..e),
                    detector: DetectorId::TwilioKey,
                    start: s,
                    end: e,
                    fingerprint: ctx.fingerprint(&[w]),
                    why: "Twilio API key SID".into(),
                });
            }
        } else if w.len() == 34 && w.starts_with(b"AC") && w[2..].iter().all(|&c| is_lower_hex(c)) {
            sid.get_or_insert((s, e));
        } else if w.len() == 32
            && w.iter().all(|&c| is_lower_hex(c))
            && tokens.len() < MAX_CANDIDATES
        {
            tokens.push((s, e));
        }
    }
    let Some((ss, se)) = sid else { return };
    for (s, e) in tokens {
        let t = &hay[s..e];
        // A random token mixes digits and letters; an all-digit or repeated run is not one.
        let mixed = t.iter().any(u8::is_ascii_digit) && t.iter().any(u8::is_ascii_lowercase);
        if !mixed || is_placeholder(t) {
            continue;
        }
        out.push(Hit {
            value: Some(s..e),
            detector: DetectorId::TwilioKey,
            start: s,
            end: e,
            fingerprint: ctx.fingerprint(&[&hay[ss..se], t]),
            why: "Twilio auth token beside an account SID".into(),
        });
    }
}
