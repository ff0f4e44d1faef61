//! DER structures of private keys: PKCS#1 RSA, DSA (OpenSSL), SEC1 EC, PKCS#8 and
//! PKCS#8 EncryptedPrivateKeyInfo. Each function says what the key is, or None when
//! the bytes do not have the structure (a random or truncated body).

use crate::der::{
    BIT_STRING, Der, INTEGER, NULL, OCTET_STRING, OID, SEQUENCE, small_uint, uint_bits,
};

const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const DSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];
const DH: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x03, 0x01];
const X942_DH: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3e, 0x02, 0x01];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const ED448: &[u8] = &[0x2b, 0x65, 0x71];
const X25519: &[u8] = &[0x2b, 0x65, 0x6e];
const X448: &[u8] = &[0x2b, 0x65, 0x6f];
const PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const SCRYPT: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x04, 0x0b];
const PKCS5_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05];
const PKCS12_PBE_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01];

fn curve_name(oid: &[u8]) -> &'static str {
    match oid {
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07] => "P-256",
        [0x2b, 0x81, 0x04, 0x00, 0x22] => "P-384",
        [0x2b, 0x81, 0x04, 0x00, 0x23] => "P-521",
        [0x2b, 0x81, 0x04, 0x00, 0x0a] => "secp256k1",
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x01] => "P-192",
        [0x2b, 0x81, 0x04, 0x00, 0x21] => "P-224",
        [0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07] => "brainpoolP256r1",
        [0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0b] => "brainpoolP384r1",
        [0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0d] => "brainpoolP512r1",
        [0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d] => "SM2",
        _ => "unknown-curve",
    }
}

fn cipher_name(oid: &[u8]) -> &'static str {
    match oid {
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02] => "AES-128-CBC",
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16] => "AES-192-CBC",
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a] => "AES-256-CBC",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07] => "DES-EDE3-CBC",
        [0x2b, 0x0e, 0x03, 0x02, 0x07] => "DES-CBC",
        _ => "unknown cipher",
    }
}

/// PKCS#1 RSAPrivateKey: version, n, e, d, p, q, dP, dQ, qInv. Returns n's bit size.
/// The primes must be about half the modulus each: random data never gets that far.
pub(crate) fn rsa(der: &[u8]) -> Option<u32> {
    let mut d = Der::only(der, SEQUENCE)?;
    let version = small_uint(d.expect(INTEGER)?)?;
    if version > 1 {
        return None;
    }
    let mut bits = [0u32; 8];
    for b in bits.iter_mut() {
        *b = uint_bits(d.expect(INTEGER)?)?;
    }
    let [n, e, priv_d, p, q, dp, dq, qinv] = bits;
    let pq = p + q;
    if n < 256 || e < 2 || e > n || priv_d == 0 || priv_d > n || pq + 2 < n || pq > n + 2 {
        return None;
    }
    if dp == 0 || dp > p || dq == 0 || dq > q || qinv == 0 || qinv > p.max(q) {
        return None;
    }
    if version == 1 {
        d.expect(SEQUENCE)?; // otherPrimeInfos
    }
    d.is_empty().then_some(n)
}

/// OpenSSL's DSA private key: version 0, p, q, g, y, x. Returns p's bit size.
pub(crate) fn dsa(der: &[u8]) -> Option<u32> {
    let mut d = Der::only(der, SEQUENCE)?;
    if small_uint(d.expect(INTEGER)?)? != 0 {
        return None;
    }
    let p = uint_bits(d.expect(INTEGER)?)?;
    let q = uint_bits(d.expect(INTEGER)?)?;
    let g = uint_bits(d.expect(INTEGER)?)?;
    let y = uint_bits(d.expect(INTEGER)?)?;
    let x = uint_bits(d.expect(INTEGER)?)?;
    let ok = (512..=16384).contains(&p)
        && (128..=512).contains(&q)
        && g > 1
        && g <= p
        && y > 1
        && y <= p;
    (ok && x > 1 && x <= q && d.is_empty()).then_some(p)
}

/// SEC1 ECPrivateKey: version 1, the private scalar, optional [0] curve, [1] public key.
/// `outer_curve` is the curve named by a PKCS#8 wrapper, if any.
pub(crate) fn sec1(der: &[u8], outer_curve: Option<&[u8]>) -> Option<&'static str> {
    let mut d = Der::only(der, SEQUENCE)?;
    if small_uint(d.expect(INTEGER)?)? != 1 {
        return None;
    }
    let scalar = d.expect(OCTET_STRING)?;
    if scalar.is_empty() || scalar.len() > 72 {
        return None;
    }
    let mut curve = outer_curve;
    if d.peek_tag() == Some(0xa0) {
        let (_, params) = d.read()?;
        curve = Some(Der::only(params, OID)?.rest());
    }
    if d.peek_tag() == Some(0xa1) {
        let (_, pubkey) = d.read()?;
        Der::only(pubkey, BIT_STRING)?;
    }
    if !d.is_empty() {
        return None;
    }
    Some(curve.map_or("unknown-curve", curve_name))
}

/// PKCS#8 PrivateKeyInfo / OneAsymmetricKey. Returns a description.
pub(crate) fn pkcs8(der: &[u8]) -> Option<String> {
    let mut d = Der::only(der, SEQUENCE)?;
    if small_uint(d.expect(INTEGER)?)? > 1 {
        return None;
    }
    let mut alg = Der::new(d.expect(SEQUENCE)?);
    let oid = alg.expect(OID)?;
    let params = if alg.is_empty() {
        None
    } else {
        Some(alg.read()?)
    };
    if !alg.is_empty() {
        return None;
    }
    let key = d.expect(OCTET_STRING)?;
    // Optional [0] attributes and [1] public key; nothing else.
    while let Some(tag) = d.peek_tag() {
        if !matches!(tag, 0xa0 | 0x81 | 0xa1) {
            return None;
        }
        d.read()?;
    }
    let what = match oid {
        RSA | RSA_PSS => {
            let bits = rsa(key)?;
            let pss = if oid == RSA_PSS { "RSA-PSS" } else { "RSA" };
            format!("{pss} {bits}-bit private key (PKCS#8)")
        }
        EC => {
            let curve = match params {
                Some((OID, c)) => Some(c),
                _ => None,
            };
            format!("EC {} private key (PKCS#8)", sec1(key, curve)?)
        }
        ED25519 | X25519 | ED448 | X448 => {
            let inner = Der::only(key, OCTET_STRING)?.rest();
            let (name, len) = match oid {
                ED25519 => ("Ed25519", 32),
                X25519 => ("X25519", 32),
                ED448 => ("Ed448", 57),
                _ => ("X448", 56),
            };
            if inner.len() != len {
                return None;
            }
            format!("{name} private key (PKCS#8)")
        }
        DSA | DH | X942_DH => {
            let x = uint_bits(Der::only(key, INTEGER)?.rest())?;
            if x < 64 {
                return None;
            }
            let name = if oid == DSA { "DSA" } else { "DH" };
            format!("{name} private key (PKCS#8)")
        }
        _ => {
            if key.len() < 16 || matches!(params, Some((NULL, c)) if !c.is_empty()) {
                return None;
            }
            "private key of an unknown algorithm (PKCS#8)".to_string()
        }
    };
    Some(what)
}

/// PKCS#8 EncryptedPrivateKeyInfo: AlgorithmIdentifier + ciphertext.
pub(crate) fn pkcs8_encrypted(der: &[u8]) -> Option<String> {
    let mut d = Der::only(der, SEQUENCE)?;
    let mut alg = Der::new(d.expect(SEQUENCE)?);
    let data = d.expect(OCTET_STRING)?;
    if !d.is_empty() || data.len() < 16 || data.len() % 8 != 0 {
        return None;
    }
    let oid = alg.expect(OID)?;
    let scheme = if oid == PBES2 {
        let mut p = Der::new(alg.expect(SEQUENCE)?);
        let mut kdf = Der::new(p.expect(SEQUENCE)?);
        let kdf_name = match kdf.expect(OID)? {
            PBKDF2 => "PBKDF2",
            SCRYPT => "scrypt",
            _ => "unknown KDF",
        };
        let mut enc = Der::new(p.expect(SEQUENCE)?);
        let cipher = cipher_name(enc.expect(OID)?);
        format!("PBES2 {kdf_name} {cipher}")
    } else if oid.starts_with(PKCS12_PBE_PREFIX) {
        alg.expect(SEQUENCE)?;
        "PKCS#12 PBE".to_string()
    } else if oid.starts_with(PKCS5_PREFIX) {
        alg.expect(SEQUENCE)?;
        "PBES1".to_string()
    } else {
        "unknown scheme".to_string()
    };
    Some(format!("encrypted private key (PKCS#8, {scheme})"))
}
