//! Our keys as the age crate's recipients and identities. The age envelope is
//! written for Debian's `age` CLI (1.1.x), which knows the X25519, `ssh-ed25519` and
//! `ssh-rsa` recipient types: those are what we produce. The age crate marks them
//! deprecated for *new* encryption in favour of post-quantum recipients that the
//! deployed `age` tools cannot open yet; opening with the tool the owner already
//! has is the point of this envelope, hence the `allow(deprecated)`.
//!
//! Every key goes through the age crate's own parser (checks included): an RSA key
//! is handed over as its OpenSSH line (public) or PKCS#1 PEM (private, in a zeroized
//! buffer), so every RSA encoding we read serves both envelopes.

#![allow(deprecated)]

use std::str::FromStr;

use age::secrecy::SecretString;
use rsa::RsaPrivateKey;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{
    ACCEPTED_PRIV, AgeIdentity, Identity, PassphraseFn, Recipient, RecipientKey, base64_encode,
    rsa_wire,
};

/// The recipient as the age crate's type; an error says why age cannot serve it
/// (an RSA key larger than the age crate's limit, 4096 bits).
pub(crate) fn to_age(r: &Recipient) -> Result<Box<dyn age::Recipient + Send>> {
    let line = match r.key() {
        RecipientKey::Rsa(k) => format!("ssh-rsa {}", base64_encode(&rsa_wire(k), true)),
        RecipientKey::Ed25519(blob) => format!("ssh-ed25519 {}", base64_encode(blob, true)),
        RecipientKey::X25519(text) => {
            return age::x25519::Recipient::from_str(text)
                .map(|k| Box::new(k) as Box<dyn age::Recipient + Send>)
                .map_err(|e| Error::Recipient(format!("invalid age recipient: {e}")));
        }
    };
    ssh_recipient(&line, &r.kind())
}

fn ssh_recipient(line: &str, kind: &str) -> Result<Box<dyn age::Recipient + Send>> {
    use age::ssh::ParseRecipientKeyError as P;
    match age::ssh::Recipient::from_str(line) {
        Ok(k) => Ok(Box::new(k)),
        Err(P::RsaModulusTooLarge) => Err(Error::Recipient(format!(
            "an {kind} key is larger than the 4096 bits the age format's tools take; \
             write the v1 format for it (--archive-format v1)"
        ))),
        Err(P::RsaModulusTooSmall) => Err(Error::Recipient(format!(
            "an {kind} key is smaller than 2048 bits"
        ))),
        Err(P::Invalid(why)) => Err(Error::Recipient(format!("invalid {kind} key: {why}"))),
        Err(P::Unsupported(t)) => Err(Error::Recipient(format!(
            "the age format cannot encrypt to a `{t}` key"
        ))),
        Err(_) => Err(Error::Recipient(format!(
            "the age format cannot encrypt to this {kind} key"
        ))),
    }
}

/// Checks an `ssh-ed25519` blob the way the age crate will use it (a valid point).
pub(crate) fn check_ed25519(blob: &[u8]) -> Result<()> {
    ssh_recipient(
        &format!("ssh-ed25519 {}", base64_encode(blob, true)),
        "ssh-ed25519",
    )
    .map(drop)
}

/// Checks an `age1…` recipient (Bech32 checksum, key length).
pub(crate) fn check_x25519(text: &str) -> Result<()> {
    age::x25519::Recipient::from_str(text)
        .map(drop)
        .map_err(|e| {
            Error::Recipient(format!(
                "not a valid age X25519 recipient ({e}); plugin and post-quantum `age1…` \
                 recipients are not supported"
            ))
        })
}

/// The age identity for an RSA key, whatever encoding it came in. `None` when the
/// age crate refuses the key (larger than 4096 bits): it still opens v1 archives.
pub(crate) fn rsa_identity(key: &RsaPrivateKey) -> Option<AgeIdentity> {
    use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
    let pem = key.to_pkcs1_pem(LineEnding::LF).ok()?;
    match age::ssh::Identity::from_buffer(pem.as_bytes(), None).ok()? {
        id @ age::ssh::Identity::Unencrypted(_) => Some(Box::new(id)),
        _ => None,
    }
}

/// An OpenSSH `ssh-ed25519` private key, decrypted with the passphrase if it has one.
pub(crate) fn openssh_identity(text: &str, passphrase: &mut PassphraseFn<'_>) -> Result<Identity> {
    let public = openssh_public(text)?;
    let parsed = age::ssh::Identity::from_buffer(text.trim_start().as_bytes(), None)
        .map_err(|e| Error::Identity(format!("bad OpenSSH private key: {e}")))?;
    let key = match parsed {
        age::ssh::Identity::Unencrypted(k) => k,
        age::ssh::Identity::Encrypted(enc) => {
            let pass = passphrase()?;
            enc.decrypt(SecretString::from(pass.as_str().to_owned()))
                .map_err(|_| Error::Identity("wrong passphrase for the OpenSSH key".into()))?
        }
        age::ssh::Identity::Unsupported(_) => {
            return Err(Error::Identity(format!(
                "this OpenSSH key is encrypted with a cipher the age crate does not \
                 implement; {ACCEPTED_PRIV}"
            )));
        }
    };
    let id: AgeIdentity = Box::new(age::ssh::Identity::Unencrypted(key));
    Ok(Identity::from_age(vec![id], public))
}

/// The public half of an OpenSSH `ssh-ed25519` private key (stored unencrypted).
fn openssh_public(text: &str) -> Result<Recipient> {
    let key = ssh_key::PrivateKey::from_openssh(text.trim())
        .map_err(|e| Error::Identity(format!("bad OpenSSH private key: {e}")))?;
    let blob = key
        .public_key()
        .to_bytes()
        .map_err(|e| Error::Identity(format!("bad OpenSSH public key: {e}")))?;
    Recipient::from_ed25519_blob(blob, key.comment())
        .map_err(|e| Error::Identity(format!("the key's public half: {e}")))
}

/// True for an age identity file (what `age-keygen` writes).
pub(crate) fn is_identity_file(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .any(|l| l.starts_with("AGE-SECRET-KEY-"))
}

/// Every `AGE-SECRET-KEY-1…` line of an identity file (`#` comments and blank lines
/// skipped); any other line is refused by number, never quoted, since it may be
/// secret.
pub(crate) fn identity_file(text: &str) -> Result<Identity> {
    let mut ids: Vec<AgeIdentity> = Vec::new();
    let mut public: Option<Recipient> = None;
    for (i, line) in text.lines().enumerate() {
        let line = Zeroizing::new(line.trim().to_owned());
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = age::x25519::Identity::from_str(&line).map_err(|_| {
            Error::Identity(format!(
                "line {} of the age identity file is not an X25519 identity \
                 (AGE-SECRET-KEY-1…); plugin and post-quantum identities are not supported",
                i + 1
            ))
        })?;
        if public.is_none() {
            public = Some(Recipient::from_age(&id.to_public().to_string())?);
        }
        ids.push(Box::new(id));
    }
    let public = public.ok_or_else(|| {
        Error::Identity(format!(
            "the age identity file holds no identity; {ACCEPTED_PRIV}"
        ))
    })?;
    Ok(Identity::from_age(ids, public))
}
