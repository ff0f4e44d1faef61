//! JSON Web Tokens (RFC 7519 / RFC 7515 compact serialization): `header.payload.sig`,
//! each part base64url without padding. Sources: gitleaks' `jwt` rule
//! (`\bey[a-zA-Z0-9]{17,}\.ey[a-zA-Z0-9\/\\_-]{17,}\.(?:[a-zA-Z0-9\/\\_-]{10,}={0,2})?`)
//! and TruffleHog's `jwt` detector, which parses the header. Here the header must
//! decode to a JSON object naming an `alg` other than `none`, the payload must decode
//! to a JSON object, and the signature must be long enough to be one (an HMAC-SHA256
//! is 43 characters; 16 is the floor).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::id::DetectorId;
use crate::text::{clear_before, is_b64url, run_len};
use crate::window::{Ctx, Hit, Window};

/// Longest part considered (a JWT with many claims is a few KiB).
const MAX_PART: usize = 8192;

fn decodes_to_object(part: &[u8], buf: &mut Vec<u8>) -> bool {
    buf.clear();
    // Some encoders keep the padding; the RFC forbids it, decoders accept it.
    let trimmed = part
        .strip_suffix(b"==")
        .or(part.strip_suffix(b"="))
        .unwrap_or(part);
    if URL_SAFE_NO_PAD.decode_vec(trimmed, buf).is_err() {
        return false;
    }
    let t = buf.trim_ascii();
    t.first() == Some(&b'{') && t.last() == Some(&b'}')
}

/// The anchor is `eyJ` (base64 of `{"`), the start of the header.
pub(crate) fn validate(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    if !clear_before(hay, at, |c| is_b64url(c) || c == b'.') {
        return;
    }
    let h = run_len(hay, at, MAX_PART, is_b64url);
    if h < 10 || hay.get(at + h) != Some(&b'.') {
        return;
    }
    let p0 = at + h + 1;
    let p = run_len(hay, p0, MAX_PART, is_b64url);
    if p < 4 || hay.get(p0 + p) != Some(&b'.') {
        return;
    }
    let s0 = p0 + p + 1;
    let s = run_len(hay, s0, MAX_PART, is_b64url);
    if s < 16 || hay.get(s0 + s).is_some_and(|&c| is_b64url(c) || c == b'.') {
        return;
    }
    let mut buf = std::mem::take(&mut ctx.scratch.text);
    let header_ok = decodes_to_object(&hay[at..at + h], &mut buf)
        && memchr::memmem::find(&buf, b"\"alg\"").is_some()
        && memchr::memmem::find(&buf, b"\"none\"").is_none();
    let alg = header_ok.then(|| alg_name(&buf)).flatten();
    let ok = header_ok && decodes_to_object(&hay[p0..p0 + p], &mut buf);
    zeroize::Zeroize::zeroize(&mut buf);
    ctx.scratch.text = buf;
    if !ok {
        return;
    }
    let end = s0 + s;
    out.push(Hit {
        value: Some(at..end),
        detector: DetectorId::Jwt,
        start: at,
        end,
        fingerprint: ctx.fingerprint(&[&hay[at..end]]),
        why: format!("JSON Web Token (signed, {})", alg.unwrap_or("unknown alg")),
    });
}

/// The `alg` of a decoded header, when it is one of the registered names (RFC 7518).
fn alg_name(header: &[u8]) -> Option<&'static str> {
    const ALGS: &[&str] = &[
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256",
        "PS384", "PS512", "EdDSA", "ES256K",
    ];
    ALGS.iter()
        .copied()
        .find(|a| memchr::memmem::find(header, format!("\"{a}\"").as_bytes()).is_some())
}
