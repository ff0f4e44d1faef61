//! What a validator sees: a bounded window of the stream around one prefilter hit,
//! plus scratch space that is wiped after use.

use zeroize::Zeroize;

use crate::finding::Fingerprint;
use crate::id::DetectorId;

/// Bytes a validator may look at before the anchor (AWS secrets printed before their
/// key id, the `-----BEGIN` before `PRIVATE KEY`, a GCP `"private_key"` before `"type"`).
pub const LOOKBEHIND: usize = 16 << 10;
/// Bytes a validator may look at from the anchor on: the largest PEM/PGP block we call
/// a key. A 16384-bit RSA key is ~12 KiB of PEM; anything over this is not a key file.
pub const LOOKAHEAD: usize = 64 << 10;

/// The window: `hay[at..]` starts with the anchor. The window's contents do not
/// depend on how the stream was chunked, so results are the same whatever the reads.
pub(crate) struct Window<'a> {
    pub hay: &'a [u8],
    pub at: usize,
}

/// A validated match, in window coordinates.
pub(crate) struct Hit {
    /// The secret's own bytes inside the match, where replacing just them keeps
    /// the text around valid (a token, an assignment's value, a URL's password);
    /// `None` when the match is a structure that exists for the secret (a key
    /// block, a netrc entry), which is removed whole.
    pub value: Option<std::ops::Range<usize>>,
    pub detector: DetectorId,
    pub start: usize,
    pub end: usize,
    pub fingerprint: Fingerprint,
    pub why: String,
}

/// Per-thread scratch buffers (decoded key material lives here, briefly).
#[derive(Default)]
pub(crate) struct Scratch {
    pub text: Vec<u8>,
    pub bin: Vec<u8>,
    pub inner: Vec<u8>,
    /// The token gate's flag buffers (flags only, nothing to wipe).
    pub gate: crate::gate::GateBuf,
}

impl Scratch {
    pub(crate) fn wipe(&mut self) {
        self.text.zeroize();
        self.bin.zeroize();
        self.inner.zeroize();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.wipe();
    }
}

pub(crate) struct Ctx<'s> {
    pub fp_key: &'s [u8; 32],
    pub scratch: &'s mut Scratch,
}

impl Ctx<'_> {
    /// Keyed BLAKE3 over length-prefixed parts, truncated to 128 bits.
    pub(crate) fn fingerprint(&self, parts: &[&[u8]]) -> Fingerprint {
        fingerprint(self.fp_key, parts)
    }
}

pub(crate) fn fingerprint(key: &[u8; 32], parts: &[&[u8]]) -> Fingerprint {
    let mut h = blake3::Hasher::new_keyed(key);
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let out = h.finalize();
    let mut fp = [0u8; 16];
    fp.copy_from_slice(&out.as_bytes()[..16]);
    Fingerprint(fp)
}
