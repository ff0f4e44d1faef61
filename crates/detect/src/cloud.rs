//! Cloud provider credentials: AWS key pairs, GCP service-account keys, Azure
//! account keys and shared access signatures.

use crate::id::DetectorId;
use crate::keys::pem;
use crate::text::{
    clear_at, clear_before, find_in, is_alnum, is_b64, rfind_in, run_len, starts_with_at,
};
use crate::window::{Ctx, Hit, Window};

/// How far from an access key id its secret may be (same INI section, env file or
/// JSON object in practice).
const AWS_PAIR_DISTANCE: usize = 1024;

/// `AKIA…`/`ASIA…` followed by exactly 16 of `[A-Z0-9]`, with a 40-character secret
/// access key near it. An id alone is not a credential (they are printed in logs,
/// ARNs and policies); the pair is.
pub(crate) fn aws(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let id_ok = clear_before(hay, at, is_alnum)
        && run_len(hay, at + 4, 17, |c| {
            c.is_ascii_uppercase() || c.is_ascii_digit()
        }) == 16
        && clear_at(hay, at + 20, is_alnum);
    if !id_ok {
        return;
    }
    let id = &hay[at..at + 20];
    let lo = at.saturating_sub(AWS_PAIR_DISTANCE);
    let hi = (at + 20 + AWS_PAIR_DISTANCE).min(hay.len());
    let mut best: Option<(usize, usize)> = None;
    let mut i = lo;
    while i < hi {
        if !is_b64(hay[i]) {
            i += 1;
            continue;
        }
        let n = run_len(hay, i, 64, is_b64);
        let j = i + n;
        let whole = clear_before(hay, i, is_b64) && clear_at(hay, j, |c| is_b64(c) || c == b'=');
        if n == 40 && whole && plausible_secret(&hay[i..j]) {
            let dist = i.abs_diff(at);
            if best.is_none_or(|(b, _)| dist < b.abs_diff(at)) {
                best = Some((i, j));
            }
        }
        i = j + run_len(hay, j, usize::MAX, is_b64);
    }
    let Some((s, e)) = best else { return };
    out.push(Hit {
        value: None,
        detector: DetectorId::AwsAccessKey,
        start: s.min(at),
        end: e.max(at + 20),
        fingerprint: ctx.fingerprint(&[id, &hay[s..e]]),
        why: if id.starts_with(b"ASIA") {
            "AWS temporary access key id with its secret access key".into()
        } else {
            "AWS access key id with its secret access key".into()
        },
    });
}

/// A random 30-byte secret in base64 has upper, lower case and digits; a hex digest,
/// a word or a path does not.
fn plausible_secret(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_uppercase)
        && s.iter().any(u8::is_ascii_lowercase)
        && s.iter().any(u8::is_ascii_digit)
}

/// Skips `"`, `\"`, whitespace and one `:` — the glue between a JSON key and value.
fn json_glue(hay: &[u8], mut i: usize) -> usize {
    let mut colon = false;
    loop {
        match hay.get(i) {
            Some(b'"' | b'\\') => i += 1,
            Some(c) if c.is_ascii_whitespace() => i += 1,
            Some(b':') if !colon => {
                colon = true;
                i += 1
            }
            _ => return i,
        }
    }
}

/// `"type": "service_account"` with a `"private_key"` in the same JSON holding a valid
/// PEM private key. The key itself is also reported by `pem-private-key`.
pub(crate) fn gcp(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    // The anchor is `_account`; the value is `service_account`.
    let hay = win.hay;
    let Some(at) = win
        .at
        .checked_sub(7)
        .filter(|&a| starts_with_at(hay, a, b"service_account"))
    else {
        return;
    };
    // Walk back over the glue to the "type" key.
    let mut k = at;
    let mut colon = false;
    while k > 0 && k + 64 > at {
        match hay[k - 1] {
            b'"' | b'\\' | b' ' | b'\t' | b'\r' | b'\n' => k -= 1,
            b':' if !colon => {
                colon = true;
                k -= 1
            }
            _ => break,
        }
    }
    if !colon || k < 4 || &hay[k - 4..k] != b"type" {
        return;
    }
    let type_start = k - 4;
    // The nearest "private_key" (not "private_key_id") on either side.
    const PK: &[u8] = b"\"private_key";
    let near = 8 << 10;
    let mut candidates = Vec::with_capacity(2);
    let mut from = at;
    while let Some(p) = find_in(hay, from, at + near, PK) {
        if matches!(hay.get(p + PK.len()), Some(b'"' | b'\\')) {
            candidates.push(p);
            break;
        }
        from = p + 1;
    }
    let mut to = at;
    while let Some(p) = rfind_in(hay, at.saturating_sub(near), to, PK) {
        if matches!(hay.get(p + PK.len()), Some(b'"' | b'\\')) {
            candidates.push(p);
            break;
        }
        to = p;
    }
    for p in candidates {
        let v = json_glue(hay, p + PK.len());
        if !starts_with_at(hay, v, b"-----BEGIN ") {
            continue;
        }
        if let Some(key) = pem::block(hay, v, ctx) {
            out.push(Hit {
                value: None,
                detector: DetectorId::GcpServiceAccount,
                start: type_start.min(p + 1),
                end: key.end.max(at + b"service_account".len()),
                fingerprint: key.fingerprint,
                why: format!("GCP service-account key file ({})", key.why),
            });
            return;
        }
    }
}

/// `AccountKey=<88 base64 chars>` after an `AccountName=`, or `SharedAccessKey=<44>`
/// after an `Endpoint=sb://` / `SharedAccessKeyName=`.
pub(crate) fn azure_connection_string(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    // The anchor is `Key=`: `AccountKey=` or `SharedAccessKey=` end there.
    let hay = win.hay;
    let (at, name_len, want_bytes, context): (usize, usize, usize, &[&[u8]]) =
        match (win.at.checked_sub(7), win.at.checked_sub(12)) {
            (Some(a), _) if starts_with_at(hay, a, b"AccountKey=") => {
                (a, 11, 64, &[b"AccountName="])
            }
            (_, Some(a)) if starts_with_at(hay, a, b"SharedAccessKey=") => {
                (a, 16, 32, &[b"SharedAccessKeyName=", b"Endpoint=sb://"])
            }
            _ => return,
        };
    if !clear_before(hay, at, is_alnum) {
        return;
    }
    let v = at + name_len;
    let n = run_len(hay, v, 200, |c| is_b64(c) || c == b'=');
    if !clear_at(hay, v + n, is_b64) {
        return;
    }
    let lo = at.saturating_sub(512);
    if !context.iter().any(|c| rfind_in(hay, lo, at, c).is_some()) {
        return;
    }
    let s = &mut *ctx.scratch;
    if !crate::b64::decode_into(&hay[v..v + n], &mut s.bin) || s.bin.len() != want_bytes {
        s.wipe();
        return;
    }
    let fingerprint = ctx.fingerprint(&[&ctx.scratch.bin]);
    ctx.scratch.wipe();
    out.push(Hit {
        value: Some(v..v + n),
        detector: DetectorId::AzureConnectionString,
        start: at,
        end: v + n,
        fingerprint,
        why: if want_bytes == 64 {
            "Azure storage account key in a connection string".into()
        } else {
            "Azure Service Bus / Event Hubs shared access key in a connection string".into()
        },
    });
}

fn is_url_char(c: u8) -> bool {
    !(c.is_ascii_whitespace()
        || matches!(c, b'"' | b'\'' | b'<' | b'>' | b'`')
        || !(0x20..0x7f).contains(&c))
}

/// `sig=<url-encoded base64 HMAC-SHA256>` in a query with an `sv=YYYY-…` version.
pub(crate) fn azure_sas(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    // The anchor is `&sig=` or `?sig=`.
    let (hay, at) = (win.hay, win.at + 1);
    if at == 0 || !matches!(hay[at - 1], b'&' | b'?') {
        return;
    }
    let v = at + 4;
    let n = run_len(hay, v, 160, |c| is_b64(c) || c == b'%' || c == b'=');
    if n < 43 || !clear_at(hay, v + n, |c| is_alnum(c) || c == b'%') {
        return;
    }
    // The query this signature is part of: back to the start of the URL/token.
    let mut q = at;
    while q > 0 && at - q < 1024 && is_url_char(hay[q - 1]) {
        q -= 1;
    }
    let has_version = (q..at).any(|i| {
        (i == q || matches!(hay[i - 1], b'&' | b'?'))
            && starts_with_at(hay, i, b"sv=")
            && run_len(hay, i + 3, 4, |c| c.is_ascii_digit()) == 4
            && hay.get(i + 7) == Some(&b'-')
    });
    if !has_version {
        return;
    }
    let s = &mut *ctx.scratch;
    s.text.clear();
    let raw = &hay[v..v + n];
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let decoded = match raw.get(i + 1..i + 3) {
                Some(b"2B" | b"2b") => b'+',
                Some(b"2F" | b"2f") => b'/',
                Some(b"3D" | b"3d") => b'=',
                _ => {
                    s.wipe();
                    return;
                }
            };
            s.text.push(decoded);
            i += 3;
        } else {
            s.text.push(raw[i]);
            i += 1;
        }
    }
    let ok = crate::b64::decode_into(&s.text, &mut s.bin) && s.bin.len() == 32;
    if ok {
        let fingerprint = ctx.fingerprint(&[&ctx.scratch.bin]);
        out.push(Hit {
            value: Some(v..v + n),
            detector: DetectorId::AzureSasToken,
            start: q,
            end: v + n,
            fingerprint,
            why: "Azure shared access signature (SAS) token".into(),
        });
    }
    ctx.scratch.wipe();
}
