//! The payload cipher: AES-256-GCM in the STREAM construction (Hoang, Reyhanitabar,
//! Rogaway, Vizár), nonce = 7-byte file prefix ‖ 32-bit big-endian chunk counter ‖
//! last-chunk flag. Position and finality are in the nonce, so reordering,
//! duplication, truncation (even at a chunk boundary) and appended data all fail
//! authentication. The reader hands out plaintext only from chunks that verified,
//! and reports end of stream only after the final chunk verified.

use std::io::{self, BufRead, Read, Write};

use aes_gcm::aead::stream::{EncryptorBE32, NewStream, StreamBE32, StreamPrimitive};
use aes_gcm::{Aes256Gcm, KeyInit};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const TAG_LEN: usize = 16;

/// Encrypts everything written to it into chunks on `inner`. Call [`finish`]:
/// dropping it without finishing leaves an archive without a final chunk, which
/// every reader rejects as truncated.
///
/// [`finish`]: EncryptWriter::finish
pub struct EncryptWriter<W: Write> {
    inner: W,
    enc: Option<EncryptorBE32<Aes256Gcm>>,
    /// Plaintext of the chunk being filled; encrypted in place, so the plaintext is
    /// overwritten by ciphertext and never reallocated (capacity fixed up front).
    buf: Zeroizing<Vec<u8>>,
    chunk_size: usize,
    aad: [u8; 32],
}

impl<W: Write> EncryptWriter<W> {
    pub fn new(
        inner: W,
        key: &[u8; 32],
        nonce_prefix: &[u8; 7],
        chunk_size: u32,
        aad: [u8; 32],
    ) -> Self {
        let aead = Aes256Gcm::new(key.into());
        let enc = EncryptorBE32::from_aead(aead, nonce_prefix.into());
        let chunk_size = chunk_size as usize;
        EncryptWriter {
            inner,
            enc: Some(enc),
            buf: Zeroizing::new(Vec::with_capacity(chunk_size + TAG_LEN)),
            chunk_size,
            aad,
        }
    }

    fn seal_full_chunk(&mut self) -> io::Result<()> {
        let enc = self
            .enc
            .as_mut()
            .ok_or_else(|| io::Error::other("write after finish"))?;
        enc.encrypt_next_in_place(&self.aad, &mut *self.buf)
            .map_err(|_| {
                io::Error::other("STREAM counter exhausted (archive larger than 2^32 chunks)")
            })?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Seals the buffered data as the final chunk and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        let enc = self
            .enc
            .take()
            .ok_or_else(|| Error::Other("finish called twice".into()))?;
        enc.encrypt_last_in_place(&self.aad, &mut *self.buf)
            .map_err(|_| Error::Other("AES-GCM encryption failed".into()))?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.inner.flush()?;
        // `self` has a Drop-free layout: move the writer out.
        let EncryptWriter { inner, .. } = self;
        Ok(inner)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffer is sealed as a non-final chunk only once more data arrives,
        // so the final chunk is never empty unless the whole payload is.
        if self.buf.len() == self.chunk_size {
            self.seal_full_chunk()?;
        }
        let n = data.len().min(self.chunk_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts and verifies chunk by chunk; yields EOF only after the final chunk.
pub struct DecryptReader<R: Read> {
    inner: R,
    stream: StreamBE32<Aes256Gcm>,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    lookahead: Option<u8>,
    chunk_size: usize,
    aad: [u8; 32],
    /// Index and file offset of the next chunk, for error messages.
    chunk_index: u32,
    offset: u64,
    done: bool,
}

impl<R: Read> DecryptReader<R> {
    /// `offset` is where the first chunk starts in the file (the header length).
    pub fn new(
        inner: R,
        key: &[u8],
        nonce_prefix: &[u8; 7],
        chunk_size: u32,
        aad: [u8; 32],
        offset: u64,
    ) -> Result<Self> {
        let aead = Aes256Gcm::new_from_slice(key)
            .map_err(|_| Error::Other("the unwrapped data key is not 32 bytes".into()))?;
        let stream = StreamBE32::from_aead(aead, nonce_prefix.into());
        let chunk_size = chunk_size as usize;
        Ok(DecryptReader {
            inner,
            stream,
            buf: Zeroizing::new(Vec::with_capacity(chunk_size + TAG_LEN)),
            pos: 0,
            lookahead: None,
            chunk_size,
            aad,
            chunk_index: 0,
            offset,
            done: false,
        })
    }

    /// True once the final chunk has been read and verified and all of it consumed.
    pub fn is_done(&self) -> bool {
        self.done && self.pos >= self.buf.len()
    }

    fn fill(&mut self, max: usize) -> io::Result<usize> {
        let mut got = self.buf.len();
        self.buf.resize(max, 0);
        while got < max {
            match self.inner.read(&mut self.buf[got..max]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(got);
                    return Err(e);
                }
            }
        }
        self.buf.truncate(got);
        Ok(got)
    }

    fn at_eof(&mut self) -> io::Result<bool> {
        let mut one = [0u8; 1];
        loop {
            match self.inner.read(&mut one) {
                Ok(0) => return Ok(true),
                Ok(_) => {
                    self.lookahead = Some(one[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let full = self.chunk_size + TAG_LEN;
        self.buf.clear();
        self.pos = 0;
        if let Some(b) = self.lookahead.take() {
            self.buf.push(b);
        }
        let got = self.fill(full)?;
        let (chunk, offset) = (u64::from(self.chunk_index), self.offset);
        let last = got < full || self.at_eof()?;
        if got < TAG_LEN {
            self.buf.clear();
            // Nothing at all where a chunk must be: only possible right after the
            // header (a full chunk followed by EOF is taken as the final one).
            return Err(if got == 0 {
                Error::Truncated { chunk, offset }.into_io()
            } else {
                Error::EndsInsideChunk { chunk, offset }.into_io()
            });
        }
        if !last && self.chunk_index == u32::MAX {
            return Err(Error::ChunkAuth { chunk, offset }.into_io());
        }
        let ciphertext = if last {
            Some(Zeroizing::new(self.buf.to_vec()))
        } else {
            None
        };
        let res = self
            .stream
            .decrypt_in_place(self.chunk_index, last, &self.aad, &mut *self.buf);
        if res.is_err() {
            self.buf.clear();
            // A final-position failure that verifies as a middle chunk means the
            // file was cut exactly at a chunk boundary: say "truncated".
            if let Some(mut ct) = ciphertext {
                let probe =
                    self.stream
                        .decrypt_in_place(self.chunk_index, false, &self.aad, &mut *ct);
                if probe.is_ok() {
                    return Err(Error::Truncated { chunk, offset }.into_io());
                }
                if got < full {
                    return Err(Error::EndsInsideChunk { chunk, offset }.into_io());
                }
            }
            return Err(Error::ChunkAuth { chunk, offset }.into_io());
        }
        self.done = last;
        self.chunk_index = self.chunk_index.wrapping_add(1);
        self.offset += got as u64;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Buffered reads straight from the decrypted chunk, so no second (unzeroized)
/// buffer of plaintext exists between the cipher and zstd.
impl<R: Read> BufRead for DecryptReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.buf.len() {
            if self.done {
                return Ok(&[]);
            }
            self.next_chunk()?;
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.buf.len());
    }
}
