//! PEM blocks (`-----BEGIN <label>-----` … `-----END <label>-----`) of private keys,
//! including the OpenSSH and OpenPGP blocks that share the framing.

use super::{armor, openssh, pgp, pkcs, sshcom};
use crate::id::DetectorId;
use crate::text::{find_in, rfind_in};
use crate::window::{Ctx, Hit, Window};

#[derive(Clone, Copy)]
enum Kind {
    Rsa,
    Dsa,
    Ec,
    Pkcs8,
    Pkcs8Encrypted,
    OpenSsh,
    Pgp,
}

fn kind_of(label: &[u8]) -> Option<Kind> {
    Some(match label {
        b"RSA PRIVATE KEY" => Kind::Rsa,
        b"DSA PRIVATE KEY" => Kind::Dsa,
        b"EC PRIVATE KEY" => Kind::Ec,
        b"PRIVATE KEY" | b"ANY PRIVATE KEY" => Kind::Pkcs8,
        b"ENCRYPTED PRIVATE KEY" => Kind::Pkcs8Encrypted,
        b"OPENSSH PRIVATE KEY" => Kind::OpenSsh,
        b"PGP PRIVATE KEY BLOCK" => Kind::Pgp,
        _ => return None,
    })
}

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";

/// The prefilter hit `PRIVATE KEY` at `win.at`: find the BEGIN line it belongs to.
pub(crate) fn validate(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let Some(begin) = rfind_in(win.hay, win.at.saturating_sub(40), win.at, BEGIN) else {
        sshcom::validate(win, ctx, out);
        return;
    };
    // The anchor must sit inside this BEGIN line's label (not in an END line or prose).
    let label_start = begin + BEGIN.len();
    let Some(label_end) = find_in(win.hay, label_start, label_start + 32, DASHES) else {
        return;
    };
    if win.at + b"PRIVATE KEY".len() > label_end {
        return;
    }
    if let Some(hit) = block(win.hay, begin, ctx) {
        out.push(hit);
    }
}

/// Validates the PEM block whose `-----BEGIN ` is at `begin`.
pub(crate) fn block(hay: &[u8], begin: usize, ctx: &mut Ctx) -> Option<Hit> {
    let label_start = begin + BEGIN.len();
    let label_end = find_in(hay, label_start, label_start + 32, DASHES)?;
    let label = hay.get(label_start..label_end)?;
    let kind = kind_of(label)?;
    let body_start = label_end + DASHES.len();
    let mut end_marker = Vec::with_capacity(48);
    end_marker.extend_from_slice(END);
    end_marker.extend_from_slice(label);
    end_marker.extend_from_slice(DASHES);
    let end_at = find_in(hay, body_start, hay.len(), &end_marker)?;
    let body = hay.get(body_start..end_at)?;
    let result = decode_and_check(kind, body, ctx);
    let (detector, why, fingerprint) = match result {
        Some((d, w)) => (d, w, ctx.fingerprint(&[&ctx.scratch.bin])),
        None => {
            ctx.scratch.wipe();
            return None;
        }
    };
    ctx.scratch.wipe();
    Some(Hit {
        value: None,
        detector,
        start: begin,
        end: end_at + end_marker.len(),
        fingerprint,
        why,
    })
}

fn decode_and_check(kind: Kind, body: &[u8], ctx: &mut Ctx) -> Option<(DetectorId, String)> {
    let s = &mut *ctx.scratch;
    let a = armor::collect(body, &mut s.text, matches!(kind, Kind::Pgp), false)?;
    if !crate::b64::decode_into(&s.text, &mut s.bin) {
        return None;
    }
    let der = &s.bin[..];
    let legacy = a.proc_encrypted;
    match kind {
        Kind::Rsa | Kind::Dsa | Kind::Ec if legacy => {
            // OpenSSL "traditional" encryption: the body is ciphertext, so the framing
            // is the evidence: both headers, a known cipher, whole cipher blocks.
            let cipher = a.dek_cipher?;
            if der.len() < 64 || !der.len().is_multiple_of(8) {
                return None;
            }
            let alg = match kind {
                Kind::Rsa => "RSA",
                Kind::Dsa => "DSA",
                _ => "EC",
            };
            Some((
                DetectorId::PemPrivateKey,
                format!("{alg} private key (legacy PEM encryption, {cipher})"),
            ))
        }
        _ if a.headers > 0 && !matches!(kind, Kind::Pgp) => None,
        Kind::Rsa => {
            let bits = pkcs::rsa(der)?;
            Some((
                DetectorId::PemPrivateKey,
                format!("RSA {bits}-bit private key (PKCS#1, unencrypted)"),
            ))
        }
        Kind::Dsa => {
            let bits = pkcs::dsa(der)?;
            Some((
                DetectorId::PemPrivateKey,
                format!("DSA {bits}-bit private key (unencrypted)"),
            ))
        }
        Kind::Ec => {
            let curve = pkcs::sec1(der, None)?;
            Some((
                DetectorId::PemPrivateKey,
                format!("EC {curve} private key (SEC1, unencrypted)"),
            ))
        }
        Kind::Pkcs8 => Some((DetectorId::PemPrivateKey, pkcs::pkcs8(der)?)),
        Kind::Pkcs8Encrypted => Some((DetectorId::PemPrivateKey, pkcs::pkcs8_encrypted(der)?)),
        Kind::OpenSsh => Some((
            DetectorId::OpensshPrivateKey,
            format!("OpenSSH private key ({})", openssh::describe(der)?),
        )),
        Kind::Pgp => Some((DetectorId::PgpPrivateKey, pgp::describe(der, a.crc24)?)),
    }
}

/// Longest base64 line that is taken as wrapped (GNU `base64` wraps at 76,
/// `openssl base64` at 64); a shorter line ends the run.
const WRAP: [usize; 2] = [64, 76];

/// A PEM private key encoded once more in base64: Kubernetes Secrets (`data:
/// tls.key: LS0t…`), Helm values (`b64enc`), Terraform and CI variables. The anchor
/// `LS0tLS1CRUdJTi` is base64 of `-----BEGIN `; the text is collected on one line,
/// or over lines wrapped at 64 or 76 characters, decoded, and the key inside must
/// validate like any PEM block. Reported under the inner key's detector.
pub(crate) fn base64_wrapped(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    use crate::text::{clear_before, is_b64, run_len};
    let (hay, at) = (win.hay, win.at);
    if !clear_before(hay, at, is_b64) {
        return;
    }
    // A kubeconfig's `client-key-data` is reported by `kubeconfig-credentials`.
    let (line_start, _) = crate::text::line_around(hay, at);
    if memchr::memmem::find(&hay[line_start..at], b"client-key-data").is_some() {
        return;
    }
    let mut text = std::mem::take(&mut ctx.scratch.inner);
    text.clear();
    let mut i = at;
    let mut end = at;
    loop {
        let n = run_len(hay, i, 64 << 10, |c| is_b64(c) || c == b'=');
        text.extend_from_slice(&hay[i..i + n]);
        end = end.max(i + n);
        if !WRAP.contains(&n) || text.len() > 64 << 10 {
            break;
        }
        // Next line: same indentation, more base64.
        let mut j = i + n;
        if hay.get(j) == Some(&b'\r') {
            j += 1;
        }
        if hay.get(j) != Some(&b'\n') {
            break;
        }
        j += 1;
        j += run_len(hay, j, 64, |c| c == b' ' || c == b'\t');
        if !hay.get(j).is_some_and(|&c| is_b64(c)) {
            break;
        }
        i = j;
    }
    let mut decoded = Vec::new();
    let hit = crate::b64::decode_into(&text, &mut decoded)
        .then(|| decoded.starts_with(BEGIN).then_some(0))
        .flatten()
        .and_then(|b| block(&decoded, b, ctx));
    zeroize::Zeroize::zeroize(&mut decoded);
    zeroize::Zeroize::zeroize(&mut text);
    ctx.scratch.inner = text;
    if let Some(key) = hit {
        out.push(Hit {
            value: None,
            detector: key.detector,
            start: at,
            end,
            fingerprint: key.fingerprint,
            why: format!("{} (base64-wrapped PEM)", key.why),
        });
    }
}
