//! The age envelope, through the age crate: its header (one stanza per recipient,
//! HMAC'd with a key derived from the file key) and its STREAM payload
//! (ChaCha20-Poly1305, 64 KiB chunks, a counter and a last-chunk flag in the nonce),
//! so truncation — even at a chunk boundary —, reordering, flipped bytes and
//! appended bytes all fail authentication. What this module adds is the mapping
//! of the crate's errors to ours, with the chunk and byte offset where it happened,
//! and a zeroized buffer for zstd to read from.

use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use zeroize::Zeroizing;

use crate::age_keys::to_age;
use crate::error::{Error, Result};
use crate::keys::{Identity, Recipient};

/// age's plaintext chunk size and tag length (age-encryption.org/v1, fixed).
const CHUNK: u64 = 64 * 1024;
const TAG: u64 = 16;

/// Writes the age header (a fresh file key wrapped for every recipient) and returns
/// the STREAM writer for the payload.
pub(crate) fn seal<W: Write>(
    out: W,
    recipients: &[Recipient],
) -> Result<age::stream::StreamWriter<W>> {
    let keys = recipients.iter().map(to_age).collect::<Result<Vec<_>>>()?;
    let enc = age::Encryptor::with_recipients(keys.iter().map(|k| k.as_ref() as _))
        .map_err(|e| Error::Recipient(format!("age: {e}")))?;
    enc.wrap_output(out).map_err(Error::Io)
}

/// Parses the age header, finds the stanza `identity` opens (the header MAC is
/// checked with the file key it yields) and starts the payload.
pub(crate) fn open<R: Read>(input: R, identity: &Identity) -> Result<AgeReader<R>> {
    let read = Arc::new(AtomicU64::new(0));
    let eof = Arc::new(AtomicBool::new(false));
    let counted = Counted {
        inner: input,
        read: read.clone(),
        eof: eof.clone(),
    };
    let dec = age::Decryptor::new(counted).map_err(header_error)?;
    let ids = identity.age_identities();
    if ids.is_empty() {
        return Err(Error::Identity(format!(
            "{} is an {} key too large for the age format; it opens only v1 archives",
            identity.fingerprint_string(),
            identity.kind()
        )));
    }
    let payload_start = read.load(Ordering::Relaxed);
    let stream = dec
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Error::AgeNoMatchingRecipient {
                identity: format!("{} ({})", identity.fingerprint_string(), identity.kind()),
            },
            other => header_error(other),
        })?;
    Ok(AgeReader {
        inner: stream,
        buf: Zeroizing::new(vec![0u8; CHUNK as usize]),
        pos: 0,
        filled: 0,
        delivered: 0,
        payload_start,
        eof,
        done: false,
    })
}

fn header_error(e: age::DecryptError) -> Error {
    use age::DecryptError as D;
    match e {
        D::InvalidHeader => Error::Header("the age header is malformed".into()),
        D::InvalidMac => {
            Error::Header("the age header's MAC does not verify: the header was modified".into())
        }
        D::DecryptionFailed => Error::Header(
            "this key's recipient stanza does not decrypt: the header was modified".into(),
        ),
        D::UnknownFormat => {
            Error::Header("an age file of a version this vmscrub does not read".into())
        }
        D::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Error::Header("the file ends inside the age header (truncated)".into())
        }
        D::Io(e) => Error::Io(e),
        D::KeyDecryptionFailed => Error::Identity("cannot decrypt the private key".into()),
        other => Error::Header(format!("age: {other}")),
    }
}

/// Counts the bytes the age crate reads and notes the end of the file, so a failing
/// chunk can be located and a failure at the end called what it likely is.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
    eof: Arc<AtomicBool>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if n == 0 && !out.is_empty() {
            self.eof.store(true, Ordering::Relaxed);
        }
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The age payload's plaintext, a chunk at a time, with our errors.
pub struct AgeReader<R: Read> {
    inner: age::stream::StreamReader<Counted<R>>,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    filled: usize,
    /// Plaintext bytes taken from the stream: which chunk comes next.
    delivered: u64,
    /// File offset of the first chunk (after the header and the 16-byte nonce).
    payload_start: u64,
    eof: Arc<AtomicBool>,
    /// The stream said end of file: its final chunk authenticated.
    done: bool,
}

impl<R: Read> AgeReader<R> {
    /// Our error for one of the age stream's (which say only "decryption error" or
    /// "age file is truncated").
    fn explain(&self, e: io::Error) -> io::Error {
        let chunk = self.delivered / CHUNK;
        let offset = self.payload_start + chunk * (CHUNK + TAG);
        match e.kind() {
            io::ErrorKind::UnexpectedEof => Error::Truncated { chunk, offset }.into_io(),
            io::ErrorKind::InvalidData if self.eof.load(Ordering::Relaxed) => {
                Error::EndsInsideChunk { chunk, offset }.into_io()
            }
            io::ErrorKind::InvalidData => Error::ChunkAuth { chunk, offset }.into_io(),
            _ => e,
        }
    }

    /// After the zstd stream ended: the age stream must end too, its final chunk
    /// authenticated, with no plaintext left over.
    pub(crate) fn check_end(&mut self) -> Result<()> {
        let left = self.fill_buf().map_err(Error::from_io)?.len();
        if left > 0 {
            return Err(Error::Other(format!(
                "{left} bytes of plaintext follow the end of the compressed payload"
            )));
        }
        Ok(())
    }
}

impl<R: Read> Read for AgeReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        crate::envelope::read_buffered(self, out)
    }
}

impl<R: Read> BufRead for AgeReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.filled && !self.done {
            let n = match self.inner.read(&mut self.buf[..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.explain(e)),
            };
            self.pos = 0;
            self.filled = n;
            self.delivered += n as u64;
            self.done = n == 0;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.filled);
    }
}
