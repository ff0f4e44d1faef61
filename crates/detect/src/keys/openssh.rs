//! `openssh-key-v1` blobs (OpenSSH's PROTOCOL.key): magic, cipher, KDF, public keys
//! and the private section, whose two check words match when it is unencrypted.

use super::wire::{Wire, describe_public};

const MAGIC: &[u8] = b"openssh-key-v1\0";

fn cipher_name(c: &[u8]) -> &'static str {
    match c {
        b"none" => "none",
        b"aes256-ctr" => "aes256-ctr",
        b"aes192-ctr" => "aes192-ctr",
        b"aes128-ctr" => "aes128-ctr",
        b"aes256-cbc" => "aes256-cbc",
        b"aes128-cbc" => "aes128-cbc",
        b"aes256-gcm@openssh.com" => "aes256-gcm",
        b"aes128-gcm@openssh.com" => "aes128-gcm",
        b"chacha20-poly1305@openssh.com" => "chacha20-poly1305",
        b"3des-cbc" => "3des-cbc",
        _ => "unknown cipher",
    }
}

/// Describes a valid blob: "ed25519, unencrypted" / "rsa 3072-bit, encrypted aes256-ctr".
pub(crate) fn describe(blob: &[u8]) -> Option<String> {
    let rest = blob.strip_prefix(MAGIC)?;
    let mut w = Wire::new(rest);
    let cipher = w.string()?;
    let kdf = w.string()?;
    let kdf_opts = w.string()?;
    if cipher.len() > 64 || kdf.len() > 64 || kdf_opts.len() > 1024 {
        return None;
    }
    let nkeys = w.u32()?;
    if !(1..=16).contains(&nkeys) {
        return None;
    }
    let first = w.string()?;
    let what = describe_public(first)?;
    for _ in 1..nkeys {
        w.string()?;
    }
    let private = w.string()?;
    if private.len() < 8 || private.len() % 8 != 0 {
        return None;
    }
    let encrypted = cipher != b"none";
    if encrypted {
        // AEAD ciphers append their tag after the private section.
        if w.remaining() > 16 || kdf == b"none" {
            return None;
        }
        Some(format!("{what}, encrypted {}", cipher_name(cipher)))
    } else {
        if w.remaining() != 0 || kdf != b"none" || !kdf_opts.is_empty() {
            return None;
        }
        let mut p = Wire::new(private);
        if p.u32()? != p.u32()? {
            return None;
        }
        Some(format!("{what}, unencrypted"))
    }
}
