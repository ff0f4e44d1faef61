//! Recipients (public keys that can open an archive) and identities (the private
//! key that opens it). RSA keys serve both envelopes: the v1 one (RSA-OAEP, which a
//! stock `cryptography` install undoes) and age's `ssh-rsa`. `ssh-ed25519` keys —
//! what `ssh-keygen` makes by default — and native age X25519 keys (`age1…`,
//! `AGE-SECRET-KEY-1…`) serve the age envelope only; their conversions to the age
//! crate's types live in `age_keys.rs`. RSA keys under 2048 bits and every other key
//! type are refused with a message that says what was found.

use pkcs8::der::Decode;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The smallest RSA modulus we accept, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus we accept (bounds the cost of an untrusted key).
pub const MAX_RSA_BITS: usize = 16384;
/// The OID of `rsaEncryption` in SPKI / PKCS#8.
const RSA_OID: &str = "1.2.840.113549.1.1.1";

const ACCEPTED: &str = "accepted: OpenSSH `ssh-ed25519` or `ssh-rsa` public key lines (RSA of \
     at least 2048 bits) and native age `age1…` recipients, one per line as in `age -R` files, \
     or an RSA key as PEM/DER `BEGIN PUBLIC KEY` (SPKI) or `BEGIN RSA PUBLIC KEY` (PKCS#1)";
pub(crate) const ACCEPTED_PRIV: &str = "accepted: an OpenSSH private key (`BEGIN OPENSSH \
     PRIVATE KEY`, ssh-ed25519 or RSA, optionally passphrase-protected), an age identity \
     file (`AGE-SECRET-KEY-1…` lines, as made by age-keygen), or an RSA key of at least 2048 \
     bits as `BEGIN RSA PRIVATE KEY` (unencrypted PKCS#1), `BEGIN PRIVATE KEY` or `BEGIN \
     ENCRYPTED PRIVATE KEY` (PKCS#8)";

/// SHA-256 of the key's OpenSSH wire encoding (`string "ssh-rsa", mpint e, mpint n`):
/// the same bytes `ssh-keygen -l` hashes, so the fingerprint printed by vmscrub is the
/// one the owner already knows.
pub fn fingerprint_of(key: &RsaPublicKey) -> [u8; 32] {
    Sha256::digest(rsa_wire(key)).into()
}

/// The OpenSSH wire encoding of an RSA public key (the blob of an `ssh-rsa` line).
pub(crate) fn rsa_wire(key: &RsaPublicKey) -> Vec<u8> {
    let mut wire = Vec::new();
    put_string(&mut wire, b"ssh-rsa");
    put_mpint(&mut wire, &key.e().to_bytes_be());
    put_mpint(&mut wire, &key.n().to_bytes_be());
    wire
}

/// `SHA256:` + unpadded standard base64, as `ssh-keygen -l` prints it.
pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    format!("SHA256:{}", base64_encode(fp, false))
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn put_mpint(out: &mut Vec<u8>, be: &[u8]) {
    let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
    let mag = &be[start..];
    if mag.first().is_some_and(|&b| b & 0x80 != 0) {
        out.extend_from_slice(&((mag.len() + 1) as u32).to_be_bytes());
        out.push(0);
    } else {
        out.extend_from_slice(&(mag.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(mag);
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn base64_encode(data: &[u8], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn check_size(bits: usize, what: &str) -> Result<()> {
    if bits < MIN_RSA_BITS {
        return Err(Error::Recipient(format!(
            "{what} is an RSA key of {bits} bits, which is too small; {ACCEPTED}"
        )));
    }
    if bits > MAX_RSA_BITS {
        return Err(Error::Recipient(format!(
            "{what} is an RSA key of {bits} bits, larger than the {MAX_RSA_BITS} bits vmscrub handles"
        )));
    }
    Ok(())
}

/// The key behind a recipient.
#[derive(Clone, Debug)]
pub(crate) enum RecipientKey {
    Rsa(RsaPublicKey),
    /// The OpenSSH wire blob of an `ssh-ed25519` key (checked by the age crate).
    Ed25519(Vec<u8>),
    /// A native age X25519 recipient, `age1…` (checked by the age crate).
    X25519(String),
}

/// A public key an archive is encrypted to.
#[derive(Clone, Debug)]
pub struct Recipient {
    key: RecipientKey,
    /// SHA-256 of the OpenSSH blob for ssh keys (what `ssh-keygen -l` shows); of the
    /// `age1…` text for X25519 keys.
    fingerprint: [u8; 32],
    comment: String,
}

impl Recipient {
    /// Wraps an RSA public key after checking its size.
    pub fn from_rsa(key: RsaPublicKey, comment: &str) -> Result<Recipient> {
        check_size(key.size() * 8, "the recipient")?;
        Ok(Recipient {
            fingerprint: fingerprint_of(&key),
            key: RecipientKey::Rsa(key),
            comment: comment.to_string(),
        })
    }

    /// An `ssh-ed25519` key from its OpenSSH wire blob.
    pub(crate) fn from_ed25519_blob(blob: Vec<u8>, comment: &str) -> Result<Recipient> {
        crate::age_keys::check_ed25519(&blob)?;
        Ok(Recipient {
            fingerprint: Sha256::digest(&blob).into(),
            key: RecipientKey::Ed25519(blob),
            comment: comment.to_string(),
        })
    }

    /// A native age recipient, `age1…`.
    pub(crate) fn from_age(text: &str) -> Result<Recipient> {
        crate::age_keys::check_x25519(text)?;
        Ok(Recipient {
            fingerprint: Sha256::digest(text.as_bytes()).into(),
            key: RecipientKey::X25519(text.to_string()),
            comment: String::new(),
        })
    }

    pub(crate) fn key(&self) -> &RecipientKey {
        &self.key
    }

    /// What kind of key this is, for messages: `ssh-rsa (3072 bits)`, `ssh-ed25519`,
    /// `age X25519`.
    pub fn kind(&self) -> String {
        match &self.key {
            RecipientKey::Rsa(k) => format!("ssh-rsa ({} bits)", k.size() * 8),
            RecipientKey::Ed25519(_) => "ssh-ed25519".into(),
            RecipientKey::X25519(_) => "age X25519".into(),
        }
    }

    /// Parses a recipient file: one or more OpenSSH public key lines (an
    /// `authorized_keys`-style file) and `age1…` recipients, one per line (an `age -R`
    /// file), or PEM (`BEGIN PUBLIC KEY`, `BEGIN RSA PUBLIC KEY`), or DER. Every key in the file becomes a recipient; one unusable key
    /// fails the whole file, because silently dropping a recipient would lock its
    /// owner out.
    pub fn parse(data: &[u8]) -> Result<Vec<Recipient>> {
        let text = std::str::from_utf8(data).ok();
        if let Some(text) = text {
            if text.contains("-----BEGIN") {
                return parse_pem_public(text);
            }
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let parsed = if line.starts_with("age1") {
                    Recipient::from_age(line)
                } else {
                    parse_openssh_line(line)
                };
                out.push(parsed.map_err(|e| match e {
                    Error::Recipient(m) => Error::Recipient(format!("line {}: {m}", i + 1)),
                    other => other,
                })?);
            }
            if out.is_empty() {
                return Err(Error::Recipient(format!("no public key found; {ACCEPTED}")));
            }
            return Ok(out);
        }
        Ok(vec![parse_der_public(data)?])
    }

    /// The fingerprint recorded in the archive header for this recipient.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it; an age X25519 key as its `age1…`
    /// text.
    pub fn fingerprint_string(&self) -> String {
        match &self.key {
            RecipientKey::X25519(text) => text.clone(),
            _ => format_fingerprint(&self.fingerprint),
        }
    }

    /// `Ok` if the age format can encrypt to this key; the error says why not (an
    /// RSA key larger than the age crate's 4096 bits).
    pub fn check_age(&self) -> Result<()> {
        crate::age_keys::to_age(self).map(drop)
    }

    /// True for an RSA key: only those can open a v1 archive.
    pub fn is_rsa(&self) -> bool {
        matches!(self.key, RecipientKey::Rsa(_))
    }

    /// The OpenSSH comment, if the key came with one.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// RSA-OAEP-wraps the v1 data key; the v1 envelope has no other recipient type.
    pub(crate) fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>> {
        let RecipientKey::Rsa(key) = &self.key else {
            return Err(Error::Recipient(format!(
                "{} is an {} key, and the v1 format encrypts only to RSA keys; write the age \
                 format (--archive-format age)",
                self.fingerprint_string(),
                self.kind()
            )));
        };
        let mut rng = rand_core::OsRng;
        key.encrypt(&mut rng, Oaep::new::<Sha256>(), data_key)
            .map_err(|e| Error::Recipient(format!("RSA-OAEP wrapping failed: {e}")))
    }
}

fn parse_openssh_line(line: &str) -> Result<Recipient> {
    // authorized_keys lines may start with options; the key type is the first token
    // that looks like one.
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let idx = tokens
        .iter()
        .position(|t| {
            t.starts_with("ssh-")
                || t.starts_with("ecdsa-")
                || t.starts_with("sk-")
                || t.contains("@openssh.com")
        })
        .ok_or_else(|| {
            Error::Recipient(format!(
                "not an OpenSSH public key line (no key type found); {ACCEPTED}"
            ))
        })?;
    let kind = tokens[idx];
    if kind != "ssh-rsa" && kind != "ssh-ed25519" {
        return Err(Error::Recipient(format!(
            "found a `{kind}` key, which vmscrub cannot encrypt to; {ACCEPTED}"
        )));
    }
    let blob = tokens
        .get(idx + 1)
        .and_then(|b| base64_decode(b))
        .ok_or_else(|| Error::Recipient(format!("{kind} line without a valid base64 key")))?;
    let comment = tokens
        .get(idx + 2..)
        .map(|c| c.join(" "))
        .unwrap_or_default();
    let mut r = WireReader { data: &blob };
    let t = r.string()?;
    if t != kind.as_bytes() {
        return Err(Error::Recipient(format!(
            "the key blob says `{}`, the line says {kind}",
            String::from_utf8_lossy(t)
        )));
    }
    if kind == "ssh-ed25519" {
        return Recipient::from_ed25519_blob(blob, &comment);
    }
    let e = BigUint::from_bytes_be(r.string()?);
    let n = BigUint::from_bytes_be(r.string()?);
    let key = RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS)
        .map_err(|err| Error::Recipient(format!("invalid ssh-rsa key: {err}")))?;
    Recipient::from_rsa(key, &comment)
}

struct WireReader<'a> {
    data: &'a [u8],
}

impl<'a> WireReader<'a> {
    fn string(&mut self) -> Result<&'a [u8]> {
        let bad = || Error::Recipient("truncated OpenSSH key blob".into());
        let len_bytes: [u8; 4] = self
            .data
            .get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let s = self.data.get(4..4 + len).ok_or_else(bad)?;
        self.data = &self.data[4 + len..];
        Ok(s)
    }
}

fn parse_pem_public(text: &str) -> Result<Vec<Recipient>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN") {
        let block_start = &rest[start..];
        let end_marker = block_start
            .find("-----END")
            .ok_or_else(|| Error::Recipient("PEM block without an END line".into()))?;
        let after_end = block_start[end_marker + 8..]
            .find("-----")
            .map(|i| end_marker + 8 + i + 5)
            .ok_or_else(|| Error::Recipient("PEM block with a broken END line".into()))?;
        let block = &block_start[..after_end];
        rest = &block_start[after_end..];
        let label = block
            .strip_prefix("-----BEGIN ")
            .and_then(|b| b.split("-----").next())
            .unwrap_or("");
        if label.contains("PRIVATE KEY") {
            return Err(Error::Recipient(format!(
                "found a private key (`BEGIN {label}`) where a public key belongs; give the \
                 public half (e.g. `ssh-keygen -y -f KEY > KEY.pub`); {ACCEPTED}"
            )));
        }
        let (label, der) = pkcs8::der::pem::decode_vec(block.as_bytes())
            .map_err(|e| Error::Recipient(format!("bad PEM: {e}")))?;
        let rec = match label {
            "PUBLIC KEY" => parse_spki(&der)?,
            "RSA PUBLIC KEY" => parse_pkcs1_public(&der)?,
            l if l.contains("PRIVATE KEY") => {
                return Err(Error::Recipient(format!(
                    "found a private key (`BEGIN {l}`) where a public key belongs; give the \
                     public half (e.g. `ssh-keygen -y -f KEY > KEY.pub`); {ACCEPTED}"
                )));
            }
            l => {
                return Err(Error::Recipient(format!(
                    "found PEM `BEGIN {l}`; {ACCEPTED}"
                )));
            }
        };
        out.push(rec);
    }
    if out.is_empty() {
        return Err(Error::Recipient(format!("no public key found; {ACCEPTED}")));
    }
    Ok(out)
}

fn parse_spki(der: &[u8]) -> Result<Recipient> {
    let spki = pkcs8::spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| Error::Recipient(format!("bad SubjectPublicKeyInfo: {e}")))?;
    let oid = spki.algorithm.oid.to_string();
    if oid != RSA_OID {
        return Err(Error::Recipient(format!(
            "found a {} public key (algorithm OID {oid}), not RSA; {ACCEPTED}",
            oid_name(&oid)
        )));
    }
    let key = RsaPublicKey::try_from(spki)
        .map_err(|e| Error::Recipient(format!("invalid RSA public key: {e}")))?;
    Recipient::from_rsa(key, "")
}

fn parse_pkcs1_public(der: &[u8]) -> Result<Recipient> {
    let pk = pkcs1::RsaPublicKey::from_der(der)
        .map_err(|e| Error::Recipient(format!("bad PKCS#1 RSA public key: {e}")))?;
    let n = BigUint::from_bytes_be(pk.modulus.as_bytes());
    let e = BigUint::from_bytes_be(pk.public_exponent.as_bytes());
    let key = RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS)
        .map_err(|err| Error::Recipient(format!("invalid RSA public key: {err}")))?;
    Recipient::from_rsa(key, "")
}

fn parse_der_public(der: &[u8]) -> Result<Recipient> {
    if pkcs8::spki::SubjectPublicKeyInfoRef::from_der(der).is_ok() {
        return parse_spki(der);
    }
    if pkcs1::RsaPublicKey::from_der(der).is_ok() {
        return parse_pkcs1_public(der);
    }
    Err(Error::Recipient(format!(
        "not a public key this tool reads; {ACCEPTED}"
    )))
}

fn oid_name(oid: &str) -> &'static str {
    match oid {
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.3.101.110" => "X25519",
        "1.2.840.10045.2.1" => "ECDSA/EC",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        _ => "non-RSA",
    }
}

/// The private key that opens an archive: the RSA key itself (v1) and the age
/// crate's identities for the same key (age). The `rsa` crate zeroizes its key on
/// drop, and so does the age crate its identities.
pub struct Identity {
    /// Present for RSA keys, the only ones a v1 archive opens with.
    rsa: Option<RsaPrivateKey>,
    age: Vec<AgeIdentity>,
    public: Recipient,
}

/// One age identity (an X25519 secret, or an ssh key already decrypted).
pub(crate) type AgeIdentity = Box<dyn age::Identity + Send + Sync>;

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.public.fingerprint_string())
    }
}

/// Where an identity gets its passphrase from, asked only when the key is encrypted.
pub type PassphraseFn<'a> = dyn FnMut() -> Result<Zeroizing<String>> + 'a;

impl Identity {
    /// Reads a private key in any of the accepted encodings (`ACCEPTED_PRIV`).
    /// `passphrase` is called only for an encrypted key, at most once. `data` should
    /// come from a zeroizing buffer.
    pub fn parse(data: &[u8], passphrase: &mut PassphraseFn<'_>) -> Result<Identity> {
        if let Ok(text) = std::str::from_utf8(data) {
            if crate::age_keys::is_identity_file(text) {
                return crate::age_keys::identity_file(text);
            }
            if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") && !openssh_is_rsa(text)? {
                return crate::age_keys::openssh_identity(text, passphrase);
            }
        }
        let key = parse_private(data, passphrase)?;
        let bits = key.size() * 8;
        if bits < MIN_RSA_BITS {
            return Err(Error::Identity(format!(
                "an RSA key of {bits} bits is too small; {ACCEPTED_PRIV}"
            )));
        }
        if bits > MAX_RSA_BITS {
            return Err(Error::Identity(format!(
                "an RSA key of {bits} bits is too large"
            )));
        }
        let public = Recipient::from_rsa(key.to_public_key(), "")?;
        // An RSA key too large for the age crate still opens v1 archives.
        let age = crate::age_keys::rsa_identity(&key).into_iter().collect();
        Ok(Identity {
            rsa: Some(key),
            age,
            public,
        })
    }

    pub(crate) fn from_age(age: Vec<AgeIdentity>, public: Recipient) -> Identity {
        Identity {
            rsa: None,
            age,
            public,
        }
    }

    /// The fingerprint of the public half.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.public.fingerprint()
    }

    /// `SHA256:…` of the public half (`age1…` for an age identity).
    pub fn fingerprint_string(&self) -> String {
        self.public.fingerprint_string()
    }

    /// What kind of key this is, for messages.
    pub fn kind(&self) -> String {
        self.public.kind()
    }

    /// The public half, to encrypt test archives to this identity.
    pub fn to_recipient(&self) -> Result<Recipient> {
        Ok(self.public.clone())
    }

    /// True if this key can open v1 archives (an RSA key).
    pub fn is_rsa(&self) -> bool {
        self.rsa.is_some()
    }

    pub(crate) fn age_identities(&self) -> &[AgeIdentity] {
        &self.age
    }

    /// RSA-OAEP-SHA-256 unwrap. Not constant-time (RUSTSEC-2023-0071): see the
    /// format document for why that matters little offline.
    pub(crate) fn unwrap(&self, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.rsa
            .as_ref()?
            .decrypt(Oaep::new::<Sha256>(), wrapped)
            .ok()
            .map(Zeroizing::new)
    }
}

/// Whether an OpenSSH private key is RSA (read by our own parser, for both
/// envelopes) or ssh-ed25519 (read by the age crate, for the age envelope). Only
/// the unencrypted public part is looked at.
fn openssh_is_rsa(text: &str) -> Result<bool> {
    let key = ssh_key::PrivateKey::from_openssh(text.trim())
        .map_err(|e| Error::Identity(format!("bad OpenSSH private key: {e}")))?;
    match key.algorithm() {
        ssh_key::Algorithm::Rsa { .. } => Ok(true),
        ssh_key::Algorithm::Ed25519 => Ok(false),
        alg => Err(Error::Identity(format!(
            "found an OpenSSH `{}` key, which vmscrub cannot decrypt with; {ACCEPTED_PRIV}",
            alg.as_str()
        ))),
    }
}

fn parse_private(data: &[u8], passphrase: &mut PassphraseFn<'_>) -> Result<RsaPrivateKey> {
    let Ok(text) = std::str::from_utf8(data) else {
        return parse_private_der(data);
    };
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        return parse_openssh_private(text, passphrase);
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(Error::Identity(
            "this is a legacy OpenSSL-encrypted PEM key (Proc-Type: 4,ENCRYPTED), whose MD5 \
             key derivation vmscrub does not implement; convert it with \
             `openssl pkcs8 -topk8 -in KEY -out KEY.p8` (keeps a passphrase) and use KEY.p8"
                .into(),
        ));
    }
    let Some(start) = text.find("-----BEGIN") else {
        return Err(Error::Identity(format!(
            "no PEM private key found; {ACCEPTED_PRIV}"
        )));
    };
    let (label, der) = pkcs8::der::pem::decode_vec(text[start..].trim_end().as_bytes())
        .map_err(|e| Error::Identity(format!("bad PEM: {e}")))?;
    let der = Zeroizing::new(der);
    match label {
        "RSA PRIVATE KEY" => {
            use pkcs1::DecodeRsaPrivateKey;
            RsaPrivateKey::from_pkcs1_der(&der)
                .map_err(|e| Error::Identity(format!("bad PKCS#1 RSA private key: {e}")))
        }
        "PRIVATE KEY" => pkcs8_to_rsa(&der),
        "ENCRYPTED PRIVATE KEY" => {
            let enc = pkcs8::EncryptedPrivateKeyInfo::from_der(&der)
                .map_err(|e| Error::Identity(format!("bad encrypted PKCS#8: {e}")))?;
            let pass = passphrase()?;
            let doc = enc.decrypt(pass.as_bytes()).map_err(|_| {
                Error::Identity("wrong passphrase (or an unsupported PKCS#8 encryption)".into())
            })?;
            pkcs8_to_rsa(doc.as_bytes())
        }
        l => Err(Error::Identity(format!(
            "found PEM `BEGIN {l}`; {ACCEPTED_PRIV}"
        ))),
    }
}

fn parse_private_der(der: &[u8]) -> Result<RsaPrivateKey> {
    if pkcs8::PrivateKeyInfo::from_der(der).is_ok() {
        return pkcs8_to_rsa(der);
    }
    use pkcs1::DecodeRsaPrivateKey;
    RsaPrivateKey::from_pkcs1_der(der).map_err(|_| {
        Error::Identity(format!(
            "not a private key this tool reads; {ACCEPTED_PRIV}"
        ))
    })
}

fn pkcs8_to_rsa(der: &[u8]) -> Result<RsaPrivateKey> {
    let info = pkcs8::PrivateKeyInfo::from_der(der)
        .map_err(|e| Error::Identity(format!("bad PKCS#8 private key: {e}")))?;
    let oid = info.algorithm.oid.to_string();
    if oid != RSA_OID {
        return Err(Error::Identity(format!(
            "found a {} private key (algorithm OID {oid}), not RSA; {ACCEPTED_PRIV}",
            oid_name(&oid)
        )));
    }
    RsaPrivateKey::try_from(info)
        .map_err(|e| Error::Identity(format!("invalid RSA private key: {e}")))
}

fn parse_openssh_private(text: &str, passphrase: &mut PassphraseFn<'_>) -> Result<RsaPrivateKey> {
    let mut key = ssh_key::PrivateKey::from_openssh(text.trim())
        .map_err(|e| Error::Identity(format!("bad OpenSSH private key: {e}")))?;
    let alg = key.algorithm();
    if !matches!(alg, ssh_key::Algorithm::Rsa { .. }) {
        return Err(Error::Identity(format!(
            "found an OpenSSH `{}` key, not RSA; {ACCEPTED_PRIV}",
            alg.as_str()
        )));
    }
    if key.is_encrypted() {
        let pass = passphrase()?;
        key = key
            .decrypt(pass.as_bytes())
            .map_err(|_| Error::Identity("wrong passphrase for the OpenSSH key".into()))?;
    }
    match key.key_data() {
        // Built from the components here: ssh-key 0.6.7's own conversion passes
        // `p` twice instead of `p, q` and rejects every key.
        ssh_key::private::KeypairData::Rsa(pair) => {
            let big = |m: &ssh_key::Mpint| {
                m.as_positive_bytes()
                    .map(BigUint::from_bytes_be)
                    .ok_or_else(|| Error::Identity("negative RSA component".into()))
            };
            let key = RsaPrivateKey::from_components(
                big(&pair.public.n)?,
                big(&pair.public.e)?,
                big(&pair.private.d)?,
                vec![big(&pair.private.p)?, big(&pair.private.q)?],
            )
            .map_err(|e| Error::Identity(format!("invalid RSA private key: {e}")))?;
            key.validate()
                .map_err(|e| Error::Identity(format!("inconsistent RSA private key: {e}")))?;
            Ok(key)
        }
        _ => Err(Error::Identity(format!("not an RSA key; {ACCEPTED_PRIV}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b"foob", true), "Zm9vYg==");
        assert_eq!(base64_encode(b"foob", false), "Zm9vYg");
        assert_eq!(base64_decode("Zm9vYmFy").unwrap(), b"foobar");
    }

    #[test]
    fn mpint_adds_sign_byte() {
        let mut v = Vec::new();
        put_mpint(&mut v, &[0x00, 0x80, 0x01]);
        assert_eq!(v, [0, 0, 0, 3, 0, 0x80, 0x01]);
        let mut v = Vec::new();
        put_mpint(&mut v, &[0x01, 0x00, 0x01]);
        assert_eq!(v, [0, 0, 0, 3, 1, 0, 1]);
    }

    #[test]
    fn unsupported_openssh_line_is_refused_by_name() {
        let e = Recipient::parse(b"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHFliOyIZs1gxGF3fmDxFykQhE88wy6AKDGFBfn0R6ZuvRmENABZQa9+pj9hMki+LX0qDJbmHTiWDbYv/cmFt/Q= x@y\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ecdsa-sha2-nistp256") && e.contains("accepted"),
            "{e}"
        );
    }

    #[test]
    fn ed25519_and_age_lines_are_recipients_and_not_v1_ones() {
        let text = b"# age -R style\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x@y\n\nage1xkdghwnypn7mwcqq85ve52pyxepk39ydyavvwfj945qp9jh0lglsf82nkn\n";
        let r = Recipient::parse(text).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].kind(), "ssh-ed25519");
        assert_eq!(r[0].comment(), "x@y");
        assert_eq!(r[1].kind(), "age X25519");
        assert!(r[1].fingerprint_string().starts_with("age1"));
        let e = r[0].wrap(&[0; 32]).unwrap_err().to_string();
        assert!(e.contains("only to RSA keys"), "{e}");
        // A corrupted age1 string fails its Bech32 checksum, naming the line.
        let e =
            Recipient::parse(b"age1xkdghwnypn7mwcqq85ve52pyxepk39ydyavvwfj945qp9jh0lglsf82nkm\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
