//! What a detector reports. Deliberately holds no secret bytes: reports, logs and
//! `Debug` output are safe to print and to store.

use std::fmt;

use crate::id::{DetectorId, Operation};

/// A 128-bit keyed BLAKE3 fingerprint of a secret's canonical form (the decoded key
/// body, the token, the `user:password` pair), so the same key planted as PEM, inside
/// JSON or with CRLF line ends has one fingerprint, and an allow-list entry works
/// whatever the wrapping. Low-entropy secrets (passwords) can be guessed from an
/// unkeyed hash; set a private key with `Config::fingerprint_key` when fingerprints
/// leave the machine.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 16]);

impl Fingerprint {
    /// Parses the 32-hex-digit form `Display` prints.
    pub fn from_hex(s: &str) -> Option<Fingerprint> {
        let b = s.as_bytes();
        if b.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            let hi = (b[2 * i] as char).to_digit(16)?;
            let lo = (b[2 * i + 1] as char).to_digit(16)?;
            *o = (hi * 16 + lo) as u8;
        }
        Some(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// One secret found in a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Which detector fired.
    pub detector: DetectorId,
    /// Byte offset of the match from the start of the stream.
    pub offset: u64,
    /// Length of the match in bytes (the whole PEM block, the whole token, …).
    pub len: u64,
    /// Stream offsets of the secret's own bytes inside the match, where replacing
    /// just them leaves the text around valid (a token, the value of
    /// `password = …`, a URL's password): what a redaction overwrites. `None`
    /// for matches that exist for the secret (key blocks, netrc entries).
    pub value: Option<std::ops::Range<u64>>,
    /// Fingerprint of the secret's canonical form (see [`Fingerprint`]).
    pub fingerprint: Fingerprint,
    /// Why this is a secret, for people: key type, size, encryption — never the secret.
    pub why: String,
}

impl Finding {
    /// The operation the detector belongs to.
    pub fn operation(&self) -> Operation {
        self.detector.operation()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] at {}+{}: {} (fingerprint {})",
            self.detector,
            self.operation(),
            self.offset,
            self.len,
            self.why,
            self.fingerprint
        )
    }
}
