//! Binary key containers, recognised by structure at the start of a stream (never by
//! name): PKCS#12/PFX with key bags, Java keystores (JKS, JCEKS) with key entries,
//! KeePass databases, binary OpenPGP secret keys (`secring.gpg`, `gpg
//! --export-secret-keys`), bare DER private keys. Each reports the whole file.
//! Encrypted keys are findings too (a weak passphrase falls to an offline attack);
//! the reason says "encrypted".

use crate::der::{Der, INTEGER, OCTET_STRING, OID, SEQUENCE, small_uint};
use crate::id::DetectorId;
use crate::keys::{pgp, pkcs};
use crate::window::{Ctx, Hit};

/// Largest file judged as a bare DER key (a 16384-bit RSA key is ~9.5 KiB of DER).
const MAX_DER_KEY: usize = 16 << 10;

const PKCS7_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const PKCS7_ENCRYPTED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
/// PKCS#12 bag types (RFC 7292 §4.2): 1.2.840.113549.1.12.10.1.{1 keyBag, 2 shrouded}.
const KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x01,
];
const SHROUDED_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02,
];

/// Runs every head rule on the first bytes of a stream. `head` holds the stream's
/// first bytes (at most one buffer); `whole` says it is the entire stream.
pub(crate) fn head(head: &[u8], whole: bool, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let hit = |detector, end: usize, why: String, ctx: &mut Ctx| Hit {
        value: None,
        detector,
        start: 0,
        end,
        fingerprint: ctx.fingerprint(&[&head[..end.min(head.len())]]),
        why,
    };
    if let Some(why) = keepass(head) {
        out.push(hit(DetectorId::KeepassDatabase, head.len(), why, ctx));
    } else if let Some(why) = java_keystore(head) {
        out.push(hit(DetectorId::JavaKeystore, head.len(), why, ctx));
    } else if let Some(why) = pkcs12(head) {
        out.push(hit(DetectorId::Pkcs12PrivateKey, head.len(), why, ctx));
    } else if let Some(why) = pgp_binary(head) {
        out.push(hit(DetectorId::PgpPrivateKey, head.len(), why, ctx));
    } else if whole
        && head.len() <= MAX_DER_KEY
        && let Some(why) = der_key(head)
    {
        out.push(hit(DetectorId::DerPrivateKey, head.len(), why, ctx));
    }
}

/// KeePass: signature 1 `0x9AA2D903`, signature 2 `0xB54BFB67` (KDBX 2–4),
/// `0xB54BFB65` (KeePass 1.x `.kdb`) or `0xB54BFB66` (KDBX pre-release), little
/// endian; KDBX then has a format version whose major part is 2, 3 or 4.
/// Source: KeePassXC `src/format/KeePass2.h` (SIGNATURE_1/2, FILE_VERSION_*).
fn keepass(h: &[u8]) -> Option<String> {
    let sig1 = u32::from_le_bytes(h.get(0..4)?.try_into().ok()?);
    let sig2 = u32::from_le_bytes(h.get(4..8)?.try_into().ok()?);
    if sig1 != 0x9AA2_D903 {
        return None;
    }
    match sig2 {
        0xB54B_FB67 => {
            let version = u32::from_le_bytes(h.get(8..12)?.try_into().ok()?);
            let major = version >> 16;
            (2..=4)
                .contains(&major)
                .then(|| format!("KeePass database (KDBX {major}, encrypted)"))
        }
        0xB54B_FB65 => Some("KeePass 1.x database (encrypted)".into()),
        0xB54B_FB66 => Some("KeePass database (KDBX pre-release, encrypted)".into()),
        _ => None,
    }
}

/// A bounded big-endian reader for the Java keystore layout.
struct Be<'a> {
    d: &'a [u8],
    pos: usize,
}

impl Be<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.d.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<usize> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// JKS (`FEEDFEED`) / JCEKS (`CECECECE`): magic, version 1|2, entry count, entries:
/// tag (1 private key, 2 trusted certificate, 3 JCEKS secret key), alias (UTF),
/// timestamp, then the protected key and certificate chain, or one certificate.
/// Source: OpenJDK `sun.security.provider.JavaKeyStore.engineLoad` and
/// `com.sun.crypto.provider.JceKeyStore.engineLoad`. A keystore of trusted
/// certificates only (a Java `cacerts`) is public and not a finding.
fn java_keystore(h: &[u8]) -> Option<String> {
    let kind = match h.get(0..4)? {
        [0xFE, 0xED, 0xFE, 0xED] => "JKS",
        [0xCE, 0xCE, 0xCE, 0xCE] => "JCEKS",
        _ => return None,
    };
    let mut r = Be { d: h, pos: 4 };
    let version = r.u32()?;
    if !(1..=2).contains(&version) {
        return None;
    }
    let count = r.u32()?;
    if count > 1 << 20 {
        return None;
    }
    let mut keys = 0u32;
    let cert = |r: &mut Be| -> Option<()> {
        if version == 2 {
            let n = r.u16()?;
            r.take(n)?; // certificate type, "X.509"
        }
        let n = r.u32()? as usize;
        r.take(n)?;
        Some(())
    };
    for _ in 0..count {
        let Some(tag) = r.u32() else { break };
        let alias = r.u16().and_then(|n| r.take(n).map(|_| ()));
        if alias.is_none() || r.take(8).is_none() {
            break;
        }
        match tag {
            1 => {
                keys += 1;
                let Some(n) = r.u32() else { break };
                if r.take(n as usize).is_none() {
                    break;
                }
                let Some(chain) = r.u32() else { break };
                if (0..chain.min(64)).any(|_| cert(&mut r).is_none()) {
                    break;
                }
            }
            2 => {
                if cert(&mut r).is_none() {
                    break;
                }
            }
            3 if kind == "JCEKS" => {
                keys += 1;
                break; // a serialized Java object: nothing after it can be located
            }
            _ => return None,
        }
    }
    (keys > 0)
        .then(|| format!("Java keystore ({kind}) with private or secret key entries (encrypted)"))
}

/// PKCS#12 (RFC 7292): `PFX ::= SEQUENCE { version 3, authSafe ContentInfo(data),
/// macData OPTIONAL }`; the AuthenticatedSafe is a sequence of ContentInfos whose
/// `data` ones hold SafeBags in clear. A key bag or a shrouded key bag there is a
/// private key (shrouded: encrypted). Keys inside `encryptedData` cannot be seen
/// without the password; PFX files made by OpenSSL, Java and Windows keep key bags
/// in `data`, and a trust store (certificates only) has none, so it is not a finding.
fn pkcs12(h: &[u8]) -> Option<String> {
    if h.first() != Some(&SEQUENCE) {
        return None;
    }
    let mut pfx = Der::new(Der::new(h).expect(SEQUENCE)?);
    if small_uint(pfx.expect(INTEGER)?)? != 3 {
        return None;
    }
    let mut ci = Der::new(pfx.expect(SEQUENCE)?);
    if ci.expect(OID)? != PKCS7_DATA {
        return None;
    }
    let (tag, explicit) = ci.read()?;
    if tag != 0xa0 {
        return None;
    }
    let auth_safe = Der::only(explicit, OCTET_STRING)?.rest();
    let mut infos = Der::new(Der::only(auth_safe, SEQUENCE)?.rest());
    let (mut plain, mut shrouded) = (0u32, 0u32);
    while !infos.is_empty() {
        let mut info = Der::new(infos.expect(SEQUENCE)?);
        let oid = info.expect(OID)?;
        if oid == PKCS7_ENCRYPTED {
            continue;
        }
        if oid != PKCS7_DATA {
            return None;
        }
        let (tag, explicit) = info.read()?;
        if tag != 0xa0 {
            return None;
        }
        let safe = Der::only(explicit, OCTET_STRING)?.rest();
        let mut bags = Der::new(Der::only(safe, SEQUENCE)?.rest());
        while !bags.is_empty() {
            let mut bag = Der::new(bags.expect(SEQUENCE)?);
            match bag.expect(OID)? {
                KEY_BAG => plain += 1,
                SHROUDED_KEY_BAG => shrouded += 1,
                _ => {}
            }
        }
    }
    match (plain, shrouded) {
        (0, 0) => None,
        (0, _) => Some("PKCS#12 file with a private key (shrouded key bag, encrypted)".into()),
        _ => Some("PKCS#12 file with a private key (unencrypted key bag)".into()),
    }
}

/// A binary OpenPGP stream that starts with a Secret-Key packet (tag 5) followed by
/// a packet a transferable secret key has next (RFC 9580 §10.2: user ID, signature,
/// subkey, trust, user attribute) or the end of the stream.
fn pgp_binary(h: &[u8]) -> Option<String> {
    let &b = h.first()?;
    let tag = if b & 0x40 != 0 {
        b & 0x3f
    } else {
        (b >> 2) & 0x0f
    };
    if b & 0x80 == 0 || tag != 5 {
        return None;
    }
    let what = pgp::describe(h, None)?;
    let len = pgp::packet_len(h)?;
    match h.get(len) {
        None => Some(what),
        Some(&n) => {
            let next = if n & 0x40 != 0 {
                n & 0x3f
            } else {
                (n >> 2) & 0x0f
            };
            (n & 0x80 != 0 && matches!(next, 2 | 7 | 12 | 13 | 17)).then_some(what)
        }
    }
}

/// A whole file that is exactly one DER private key structure.
fn der_key(h: &[u8]) -> Option<String> {
    if h.first() != Some(&SEQUENCE) || h.len() < 48 {
        return None;
    }
    if let Some(bits) = pkcs::rsa(h) {
        return Some(format!(
            "RSA {bits}-bit private key (PKCS#1 DER, unencrypted)"
        ));
    }
    if let Some(w) = pkcs::pkcs8(h) {
        return Some(format!("{w}, DER, unencrypted"));
    }
    if let Some(w) = pkcs::pkcs8_encrypted(h) {
        return Some(format!("{w}, DER"));
    }
    if let Some(curve) = pkcs::sec1(h, None) {
        return Some(format!("EC {curve} private key (SEC1 DER, unencrypted)"));
    }
    pkcs::dsa(h).map(|bits| format!("DSA {bits}-bit private key (DER, unencrypted)"))
}

/// GnuPG agent keys (`private-keys-v1.d/<keygrip>.key`): the canonical s-expression
/// `(11:private-key(3:rsa(1:n…` / `(21:protected-private-key(…`, or the extended
/// text format `Key: (private-key (rsa (n #…#)…`. A `shadowed-private-key` (the key
/// lives on a smartcard) holds no secret and has no anchor here. Source: GnuPG
/// `agent/keyformat.txt`.
pub(crate) fn gpg_agent(win: &crate::window::Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    // Anchors: `protected-private-key`, `(private-key`, `11:private-key(`.
    let (word, protected) = if hay[at..].starts_with(b"protected-") {
        (at, true)
    } else if hay[at] == b'(' {
        (at + 1, false)
    } else {
        (at + 3, false)
    };
    let word_len = if protected { 21 } else { 11 };
    let after = word + word_len;
    let len_prefix: &[u8] = if protected { b"(21:" } else { b"(11:" };
    let canonical = word >= 4 && &hay[word - 4..word] == len_prefix;
    let extended = !canonical && word >= 1 && hay[word - 1] == b'(';
    if !canonical && !extended {
        return;
    }
    let body_end = (after + 8192).min(hay.len());
    let body = &hay[after..body_end];
    let algo_ok = if canonical {
        [
            &b"(3:rsa("[..],
            b"(3:dsa(",
            b"(3:ecc(",
            b"(3:elg(",
            b"(5:ecdsa(",
            b"(5:eddsa(",
        ]
        .iter()
        .any(|a| body.starts_with(a))
    } else {
        let t = body.trim_ascii_start();
        [
            &b"(rsa"[..],
            b"(dsa",
            b"(ecc",
            b"(elg",
            b"(ecdsa",
            b"(eddsa",
        ]
        .iter()
        .any(|a| t.starts_with(a))
    };
    if !algo_ok {
        return;
    }
    // The secret part: `d` (rsa/ecc), `x` (dsa/elg) or the `protected` blob.
    let secret_markers: &[&[u8]] = if canonical {
        &[b"(1:d", b"(1:x", b"(9:protected"]
    } else {
        &[b"(d ", b"(x ", b"(protected "]
    };
    let Some(mark) = secret_markers
        .iter()
        .filter_map(|m| memchr::memmem::find(body, m))
        .min()
    else {
        return;
    };
    let start = if extended {
        // Include `Key: ` when it is there.
        if hay[..word - 1].ends_with(b"Key: ") {
            word - 6
        } else {
            word - 1
        }
    } else {
        word - 4
    };
    let end = after + mark + 4;
    out.push(Hit {
        value: None,
        detector: DetectorId::GpgAgentKey,
        start,
        end,
        fingerprint: ctx.fingerprint(&[&hay[after..body_end]]),
        why: if protected {
            "GnuPG agent private key (protected, encrypted)".into()
        } else {
            "GnuPG agent private key (unprotected)".into()
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepass_signatures() {
        let mut h = vec![0x03, 0xD9, 0xA2, 0x9A, 0x67, 0xFB, 0x4B, 0xB5];
        h.extend_from_slice(&0x0004_0000u32.to_le_bytes());
        assert!(keepass(&h).unwrap().contains("KDBX 4"));
        h[8..12].copy_from_slice(&0x0009_0000u32.to_le_bytes());
        assert!(keepass(&h).is_none());
        assert!(keepass(b"\x03\xd9\xa2\x9a").is_none());
    }

    #[test]
    fn jks_without_key_entries_is_not_a_finding() {
        // version 2, one trusted certificate entry.
        let mut h = vec![0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 1];
        h.extend_from_slice(&[0, 0, 0, 2, 0, 2, b'c', b'a']);
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&[0, 5]);
        h.extend_from_slice(b"X.509");
        h.extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]);
        assert!(java_keystore(&h).is_none());
        // The same with a private-key entry first.
        let mut k = vec![0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 1];
        k.extend_from_slice(&[0, 0, 0, 1, 0, 1, b'k']);
        k.extend_from_slice(&[0; 8]);
        k.extend_from_slice(&[0, 0, 0, 2, 9, 9, 0, 0, 0, 0]);
        assert!(java_keystore(&k).unwrap().contains("encrypted"));
    }
}
