//! The archive header: everything needed to open the payload, authenticated as a
//! whole (its SHA-256 is the associated data of every chunk), so a change to any
//! byte of it — algorithm ids, chunk size, nonce, a recipient entry — makes every
//! chunk fail. Layout in `docs/recovery-format.md`; all integers big-endian.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::keys::format_fingerprint;

/// PNG-style: a high byte and CR LF / SUB / LF catch 7-bit and text-mode transfers.
pub const MAGIC: [u8; 8] = *b"\x89VSR\r\n\x1a\n";
pub const VERSION: u16 = 1;
/// AES-256-GCM in STREAM (32-bit big-endian counter, 1-byte last flag).
pub const AEAD_AES256GCM_STREAM_BE32: u8 = 1;
pub const COMPRESSION_ZSTD: u8 = 1;
pub const PAYLOAD_PAX_TAR: u8 = 1;
/// RSA-OAEP with SHA-256 and MGF1-SHA-256, empty label.
pub const RECIPIENT_RSA_OAEP_SHA256: u8 = 1;
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Upper bounds a reader enforces before allocating anything sized by the header.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
pub const MAX_HEADER_LEN: u32 = 1024 * 1024;
pub const MAX_RECIPIENTS: u16 = 1024;
pub const NONCE_PREFIX_LEN: usize = 7;
/// Fixed part: magic 8, version 2, header_len 4, 4 algorithm bytes, chunk size 4,
/// nonce prefix 7, recipient count 2.
pub const FIXED_LEN: usize = 31;

/// One wrapped copy of the data key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientEntry {
    pub kind: u8,
    pub fingerprint: [u8; 32],
    pub wrapped: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Header {
    pub chunk_size: u32,
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub recipients: Vec<RecipientEntry>,
    /// The exact bytes read or written; their SHA-256 is every chunk's AAD.
    raw: Vec<u8>,
}

impl Header {
    pub fn new(
        chunk_size: u32,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        recipients: Vec<RecipientEntry>,
    ) -> Result<Header> {
        if recipients.is_empty() {
            return Err(Error::Header(
                "an archive needs at least one recipient".into(),
            ));
        }
        if recipients.len() > usize::from(MAX_RECIPIENTS) {
            return Err(Error::Header(format!(
                "more than {MAX_RECIPIENTS} recipients"
            )));
        }
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::Header(format!(
                "chunk size {chunk_size} out of range"
            )));
        }
        let mut raw = Vec::new();
        raw.extend_from_slice(&MAGIC);
        raw.extend_from_slice(&VERSION.to_be_bytes());
        raw.extend_from_slice(&[0; 4]); // header_len, patched below
        raw.extend_from_slice(&[
            AEAD_AES256GCM_STREAM_BE32,
            COMPRESSION_ZSTD,
            PAYLOAD_PAX_TAR,
            0,
        ]);
        raw.extend_from_slice(&chunk_size.to_be_bytes());
        raw.extend_from_slice(&nonce_prefix);
        raw.extend_from_slice(&(recipients.len() as u16).to_be_bytes());
        for r in &recipients {
            let len = u16::try_from(r.wrapped.len())
                .map_err(|_| Error::Header("wrapped key longer than 65535 bytes".into()))?;
            raw.push(r.kind);
            raw.push(0);
            raw.extend_from_slice(&r.fingerprint);
            raw.extend_from_slice(&len.to_be_bytes());
            raw.extend_from_slice(&r.wrapped);
        }
        let total = u32::try_from(raw.len())
            .ok()
            .filter(|&l| l <= MAX_HEADER_LEN)
            .ok_or_else(|| Error::Header("header too large".into()))?;
        raw[10..14].copy_from_slice(&total.to_be_bytes());
        Ok(Header {
            chunk_size,
            nonce_prefix,
            recipients,
            raw,
        })
    }

    /// Reads and validates a header from the start of `r`. Every length is bounded
    /// before it sizes an allocation.
    pub fn read(r: &mut impl std::io::Read) -> Result<Header> {
        let mut fixed = [0u8; FIXED_LEN];
        read_full(r, &mut fixed)?;
        if fixed[..8] != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = u16::from_be_bytes([fixed[8], fixed[9]]);
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let header_len = u32::from_be_bytes([fixed[10], fixed[11], fixed[12], fixed[13]]);
        if header_len > MAX_HEADER_LEN || (header_len as usize) < FIXED_LEN {
            return Err(Error::Header(format!(
                "header length {header_len} out of range"
            )));
        }
        let (aead, comp, payload, reserved) = (fixed[14], fixed[15], fixed[16], fixed[17]);
        if aead != AEAD_AES256GCM_STREAM_BE32 {
            return Err(Error::Header(format!("unknown cipher id {aead}")));
        }
        if comp != COMPRESSION_ZSTD {
            return Err(Error::Header(format!("unknown compression id {comp}")));
        }
        if payload != PAYLOAD_PAX_TAR {
            return Err(Error::Header(format!("unknown payload id {payload}")));
        }
        if reserved != 0 {
            return Err(Error::Header(format!("reserved byte is {reserved}, not 0")));
        }
        let chunk_size = u32::from_be_bytes([fixed[18], fixed[19], fixed[20], fixed[21]]);
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::Header(format!(
                "chunk size {chunk_size} out of range"
            )));
        }
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&fixed[22..29]);
        let count = u16::from_be_bytes([fixed[29], fixed[30]]);
        if count == 0 || count > MAX_RECIPIENTS {
            return Err(Error::Header(format!(
                "recipient count {count} out of range"
            )));
        }
        let mut raw = vec![0u8; header_len as usize];
        raw[..FIXED_LEN].copy_from_slice(&fixed);
        read_full(r, &mut raw[FIXED_LEN..])?;
        let mut pos = FIXED_LEN;
        let mut recipients = Vec::with_capacity(usize::from(count));
        for i in 0..count {
            let bad = || Error::Header(format!("recipient entry {i} runs past the header end"));
            let fixed = raw.get(pos..pos + 36).ok_or_else(bad)?;
            let kind = fixed[0];
            if kind != RECIPIENT_RSA_OAEP_SHA256 {
                return Err(Error::Header(format!(
                    "recipient entry {i} has unknown type {kind}"
                )));
            }
            if fixed[1] != 0 {
                return Err(Error::Header(format!(
                    "recipient entry {i}: reserved byte not 0"
                )));
            }
            let mut fingerprint = [0u8; 32];
            fingerprint.copy_from_slice(&fixed[2..34]);
            let len = usize::from(u16::from_be_bytes([fixed[34], fixed[35]]));
            pos += 36;
            let wrapped = raw.get(pos..pos + len).ok_or_else(bad)?.to_vec();
            pos += len;
            recipients.push(RecipientEntry {
                kind,
                fingerprint,
                wrapped,
            });
        }
        if pos != raw.len() {
            return Err(Error::Header(format!(
                "{} bytes left over after the recipient entries",
                raw.len() - pos
            )));
        }
        Ok(Header {
            chunk_size,
            nonce_prefix,
            recipients,
            raw,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The associated data of every chunk.
    pub fn aad(&self) -> [u8; 32] {
        Sha256::digest(&self.raw).into()
    }

    /// The recipients' fingerprints, comma-separated, for error messages.
    pub fn recipient_list(&self) -> String {
        self.recipients
            .iter()
            .map(|r| format_fingerprint(&r.fingerprint))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(if got == 0 && buf.len() == FIXED_LEN {
                    Error::Header("the file is empty or shorter than a header".into())
                } else {
                    Error::Header("the file ends inside the header (truncated)".into())
                });
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(())
}
