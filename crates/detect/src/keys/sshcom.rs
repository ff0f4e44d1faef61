//! The ssh.com / Tectia private key format (`---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----`,
//! also written by `puttygen -O private-sshcom`): RFC 4716 armor around a blob that
//! starts with the magic 0x3f6ff9eb and its own total length.

use super::armor;
use super::wire::Wire;
use crate::id::DetectorId;
use crate::text::{find_in, rfind_in, starts_with_at};
use crate::window::{Ctx, Hit, Window};

const BEGIN: &[u8] = b"---- BEGIN SSH2 ENCRYPTED ";
const END: &[u8] = b"---- END SSH2 ENCRYPTED PRIVATE KEY ----";
const MAGIC: u32 = 0x3f6f_f9eb;

pub(crate) fn validate(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let hay = win.hay;
    let Some(begin) = rfind_in(hay, win.at.saturating_sub(BEGIN.len()), win.at, BEGIN) else {
        return;
    };
    if begin + BEGIN.len() != win.at || !starts_with_at(hay, win.at, b"PRIVATE KEY ----") {
        return;
    }
    let body_start = win.at + b"PRIVATE KEY ----".len();
    let Some(end_at) = find_in(hay, body_start, hay.len(), END) else {
        return;
    };
    let s = &mut *ctx.scratch;
    let described = armor::collect(&hay[body_start..end_at], &mut s.text, false, true)
        .filter(|_| crate::b64::decode_into(&s.text, &mut s.bin))
        .and_then(|_| describe(&s.bin));
    if let Some(why) = described {
        let fingerprint = ctx.fingerprint(&[&ctx.scratch.bin]);
        out.push(Hit {
            value: None,
            detector: DetectorId::Ssh2PrivateKey,
            start: begin,
            end: end_at + END.len(),
            fingerprint,
            why,
        });
    }
    ctx.scratch.wipe();
}

fn describe(blob: &[u8]) -> Option<String> {
    let mut w = Wire::new(blob);
    if w.u32()? != MAGIC || w.u32()? as usize != blob.len() {
        return None;
    }
    let key_type = w.string()?;
    let cipher = w.string()?;
    let data = w.string()?;
    if data.len() < 16 || w.remaining() != 0 {
        return None;
    }
    let alg = if key_type.starts_with(b"if-modn{sign{rsa") {
        "RSA"
    } else if key_type.starts_with(b"dl-modp{sign{dsa") {
        "DSA"
    } else {
        "unknown type"
    };
    let enc = match cipher {
        b"none" => "unencrypted",
        b"3des-cbc" => "encrypted 3des-cbc",
        _ => "encrypted",
    };
    Some(format!("ssh.com (SSH2) private key ({alg}, {enc})"))
}
