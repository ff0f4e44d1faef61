//! Provider tokens with a fixed prefix and shape. Few, precise rules: each checks the
//! exact length and alphabet, the characters around it, and a checksum where the
//! format has one (GitHub and npm: CRC32 of the random part, base62, last 6 chars).

use crate::id::DetectorId;
use crate::text::{clear_at, clear_before, is_alnum, is_b64url, run_len, starts_with_at};
use crate::window::{Ctx, Hit, Window};

fn push(
    out: &mut Vec<Hit>,
    ctx: &Ctx,
    detector: DetectorId,
    hay: &[u8],
    s: usize,
    e: usize,
    why: &str,
) {
    out.push(Hit {
        value: Some(s..e),
        detector,
        start: s,
        end: e,
        fingerprint: ctx.fingerprint(&[&hay[s..e]]),
        why: why.into(),
    });
}

/// `prefix` + exactly `len` chars of `class`, with nothing of `class` on either side.
fn fixed(hay: &[u8], at: usize, prefix: usize, len: usize, class: fn(u8) -> bool) -> Option<usize> {
    let e = at + prefix + len;
    (clear_before(hay, at, is_alnum)
        && run_len(hay, at + prefix, len, class) == len
        && clear_at(hay, e, class))
    .then_some(e)
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// GitHub's (and npm's) checksum: the last 6 characters are the CRC32 of the 30
/// random characters, base62-encoded, left-padded with '0'.
pub(crate) fn crc_ok(random: &[u8], check: &[u8]) -> bool {
    let mut want = crc32fast::hash(random) as u64;
    let mut enc = [b'0'; 6];
    for slot in enc.iter_mut().rev() {
        *slot = BASE62[(want % 62) as usize];
        want /= 62;
    }
    want == 0 && enc == check
}

fn is_word(c: u8) -> bool {
    is_alnum(c) || c == b'_'
}

pub(crate) fn github(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    if starts_with_at(hay, at, b"github_pat_") {
        let s = at + 11;
        let ok = clear_before(hay, at, is_alnum)
            && run_len(hay, s, 22, is_alnum) == 22
            && hay.get(s + 22) == Some(&b'_')
            && run_len(hay, s + 23, 59, is_alnum) == 59
            && clear_at(hay, s + 82, is_word);
        if ok {
            push(
                out,
                ctx,
                DetectorId::GithubToken,
                hay,
                at,
                s + 82,
                "GitHub fine-grained personal access token",
            );
        }
        return;
    }
    let Some(e) = fixed(hay, at, 4, 36, is_alnum) else {
        return;
    };
    if !clear_at(hay, e, is_word) || !crc_ok(&hay[at + 4..at + 34], &hay[at + 34..e]) {
        return;
    }
    let why = match hay[at + 2] {
        b'p' => "GitHub personal access token (classic)",
        b'o' => "GitHub OAuth access token",
        b'u' => "GitHub App user-to-server token",
        b's' => "GitHub App installation token",
        _ => "GitHub refresh token",
    };
    push(out, ctx, DetectorId::GithubToken, hay, at, e, why);
}

pub(crate) fn npm(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    if let Some(e) = fixed(hay, at, 4, 36, is_alnum)
        && clear_at(hay, e, is_word)
        && crc_ok(&hay[at + 4..at + 34], &hay[at + 34..e])
    {
        push(
            out,
            ctx,
            DetectorId::NpmToken,
            hay,
            at,
            e,
            "npm access token",
        );
    }
}

/// `glpat-` + 20 `[\w-]`, or the longer routable form ending in `.<2><7>`.
pub(crate) fn gitlab(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    if !clear_before(hay, at, is_alnum) {
        return;
    }
    let s = at + 6;
    let n = run_len(hay, s, 301, is_b64url);
    let e = if n == 20 && hay.get(s + n) != Some(&b'.') {
        s + n
    } else if (27..=300).contains(&n) && hay.get(s + n) == Some(&b'.') {
        let t = s + n + 1;
        let lower_digit = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if run_len(hay, t, 10, lower_digit) != 9 {
            return;
        }
        t + 9
    } else {
        return;
    };
    if clear_at(hay, e, |c| is_b64url(c) || c == b'.') {
        push(
            out,
            ctx,
            DetectorId::GitlabToken,
            hay,
            at,
            e,
            "GitLab personal access token",
        );
    }
}

/// `xox[abprs]-` then 1–3 numeric ids and a final alphanumeric secret.
pub(crate) fn slack(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    if !clear_before(hay, at, is_alnum)
        || !matches!(hay.get(at + 3), Some(b'a' | b'b' | b'p' | b'r' | b's'))
        || hay.get(at + 4) != Some(&b'-')
    {
        return;
    }
    let mut i = at + 5;
    let mut ids = 0;
    loop {
        let d = run_len(hay, i, 17, |c| c.is_ascii_digit());
        if (1..=16).contains(&d) && hay.get(i + d) == Some(&b'-') && ids < 3 {
            ids += 1;
            i += d + 1;
        } else {
            break;
        }
    }
    let n = run_len(hay, i, 65, is_alnum);
    if ids == 0 || !(20..=64).contains(&n) || !clear_at(hay, i + n, is_b64url) {
        return;
    }
    push(
        out,
        ctx,
        DetectorId::SlackToken,
        hay,
        at,
        i + n,
        "Slack API token",
    );
}

/// Slack app-level tokens (Socket Mode): `xapp-<digit>-<app id>-<digits>-<secret>`,
/// e.g. `xapp-1-A0123456789-1234567890123-<64 hex>`. Source: gitleaks
/// `slack-app-token` (`(?i)xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+`) and Slack's "Token
/// types" page (app-level tokens). Stricter than gitleaks: the app id is upper-case
/// alphanumeric (Slack ids are), and the secret at least 32 lowercase alphanumerics.
pub(crate) fn slack_app(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let upper_digit = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    let lower_digit = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = at + b"xapp-".len();
    if !clear_before(hay, at, is_alnum)
        || !hay.get(i).is_some_and(u8::is_ascii_digit)
        || hay.get(i + 1) != Some(&b'-')
    {
        return;
    }
    i += 2;
    let app = run_len(hay, i, 33, upper_digit);
    if !(8..=32).contains(&app) || hay.get(i + app) != Some(&b'-') {
        return;
    }
    i += app + 1;
    let id = run_len(hay, i, 21, |c| c.is_ascii_digit());
    if !(8..=20).contains(&id) || hay.get(i + id) != Some(&b'-') {
        return;
    }
    i += id + 1;
    let n = run_len(hay, i, 129, lower_digit);
    if !(32..=128).contains(&n) || !clear_at(hay, i + n, is_b64url) {
        return;
    }
    push(
        out,
        ctx,
        DetectorId::SlackToken,
        hay,
        at,
        i + n,
        "Slack app-level token",
    );
}

/// `hooks.slack.com/services/T…/B…/<24 alnum>`.
pub(crate) fn slack_webhook(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let mut i = at + b"hooks.slack.com/".len();
    if !starts_with_at(hay, i, b"services/") {
        return;
    }
    i += 9;
    let upper_digit = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    for lead in [b'T', b'B'] {
        let n = run_len(hay, i, 16, upper_digit);
        if hay.get(i) != Some(&lead) || !(8..=14).contains(&n) || hay.get(i + n) != Some(&b'/') {
            return;
        }
        i += n + 1;
    }
    if run_len(hay, i, 25, is_alnum) != 24 || !clear_at(hay, i + 24, is_alnum) {
        return;
    }
    let start = if at >= 8 && &hay[at - 8..at] == b"https://" {
        at - 8
    } else {
        at
    };
    push(
        out,
        ctx,
        DetectorId::SlackWebhook,
        hay,
        start,
        i + 24,
        "Slack incoming webhook URL",
    );
}

pub(crate) fn stripe(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    // The anchor is `k_live_`, after `s` (secret) or `r` (restricted).
    let hay = win.hay;
    let Some(at) = win
        .at
        .checked_sub(1)
        .filter(|&a| matches!(hay[a], b's' | b'r'))
    else {
        return;
    };
    let n = run_len(hay, at + 8, 248, is_alnum);
    if clear_before(hay, at, is_alnum)
        && (24..=247).contains(&n)
        && clear_at(hay, at + 8 + n, is_word)
    {
        let why = if hay[at] == b's' {
            "Stripe live secret key"
        } else {
            "Stripe live restricted key"
        };
        push(out, ctx, DetectorId::StripeKey, hay, at, at + 8 + n, why);
    }
}

pub(crate) fn google_api_key(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    if let Some(e) = fixed(hay, at, 4, 35, is_b64url) {
        push(
            out,
            ctx,
            DetectorId::GoogleApiKey,
            hay,
            at,
            e,
            "Google API key",
        );
    }
}

/// PyPI tokens are macaroons whose base64 starts with the issuer (`pypi.org` or
/// `test.pypi.org`): `pypi-AgEIcHlwaS5vcmc…` / `pypi-AgENdGVzdC5weXBpLm9yZw…`.
pub(crate) fn pypi(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let s = at + 5;
    let issuer = starts_with_at(hay, s, b"AgEIcHlwaS5vcmc")
        || starts_with_at(hay, s, b"AgENdGVzdC5weXBpLm9yZw");
    let n = run_len(hay, s, 4096, is_b64url);
    if issuer
        && clear_before(hay, at, is_alnum)
        && (80..4096).contains(&n)
        && clear_at(hay, s + n, is_b64url)
    {
        push(
            out,
            ctx,
            DetectorId::PypiToken,
            hay,
            at,
            s + n,
            "PyPI API token",
        );
    }
}

/// `SG.` + 22 + `.` + 43 of `[\w-]`.
pub(crate) fn sendgrid(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let ok = clear_before(hay, at, is_alnum)
        && run_len(hay, at + 3, 22, is_b64url) == 22
        && hay.get(at + 25) == Some(&b'.')
        && run_len(hay, at + 26, 43, is_b64url) == 43
        && clear_at(hay, at + 69, is_b64url);
    if ok {
        push(
            out,
            ctx,
            DetectorId::SendgridKey,
            hay,
            at,
            at + 69,
            "SendGrid API key",
        );
    }
}

/// Vault service (`hvs.`, 90–120 chars) and batch (`hvb.`, 138–212 chars) tokens.
pub(crate) fn vault(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let batch = hay.get(at + 2) == Some(&b'b');
    let range = if batch { 138..=212 } else { 90..=120 };
    let n = run_len(hay, at + 4, 213, is_b64url);
    if clear_before(hay, at, is_alnum) && range.contains(&n) && clear_at(hay, at + 4 + n, is_b64url)
    {
        let why = if batch {
            "HashiCorp Vault batch token"
        } else {
            "HashiCorp Vault service token"
        };
        push(out, ctx, DetectorId::VaultToken, hay, at, at + 4 + n, why);
    }
}

/// OpenAI keys carry `T3BlbkFJ` (base64 of "OpenAI") in the middle: `sk-…T3BlbkFJ…`.
pub(crate) fn openai(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let mut s = at;
    while s > 0 && at - s < 200 && is_b64url(hay[s - 1]) {
        s -= 1;
    }
    if !starts_with_at(hay, s, b"sk-") || !clear_before(hay, s, is_b64url) {
        return;
    }
    let before = (at - s).saturating_sub(3);
    let after = run_len(hay, at + 8, 200, is_b64url);
    let e = at + 8 + after;
    if before >= 20 && after >= 20 && clear_at(hay, e, is_b64url) {
        push(out, ctx, DetectorId::OpenaiKey, hay, s, e, "OpenAI API key");
    }
}

/// `sk-ant-api03-` / `sk-ant-admin01-` + 93 `[\w-]` + `AA`.
pub(crate) fn anthropic(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let s = if starts_with_at(hay, at, b"sk-ant-api03-") {
        at + 13
    } else if starts_with_at(hay, at, b"sk-ant-admin01-") {
        at + 15
    } else {
        return;
    };
    let e = s + 95;
    let ok = clear_before(hay, at, is_b64url)
        && run_len(hay, s, 96, is_b64url) == 95
        && hay.get(e - 2..e) == Some(b"AA")
        && clear_at(hay, e, is_b64url);
    if ok {
        push(
            out,
            ctx,
            DetectorId::AnthropicKey,
            hay,
            at,
            e,
            "Anthropic API key",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_crc_padding() {
        // CRC32("") == 0 encodes as "000000".
        assert!(crc_ok(b"", b"000000"));
        assert!(!crc_ok(b"", b"000001"));
    }
}
