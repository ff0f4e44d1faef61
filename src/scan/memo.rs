//! Content digests taken while the scan reads each file, so that a scrub's
//! verification need not read the input again, and its re-scan of the output
//! runs the detectors only on content it has not seen.
//!
//! The scan streams every regular file through the detectors anyway; hashing
//! the same bytes on the way (xxh3-128, a few GB/s per core) costs little next
//! to the detectors. The input's digests then stand in for the tree snapshot's
//! second full read, and in the output's re-scan a file whose bytes hash to a
//! digest the input scan already judged gets that judgement again: the
//! detectors are deterministic functions of the bytes. Only content the scrub
//! changed (rewritten, redacted, truncated files) is scanned twice.
//!
//! The digest guards against the scrub's own mistakes (a wrong block written,
//! a corrupt output), not against an adversary: the output is made from the
//! input by vmscrub, so nobody chooses its bytes to collide.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read};

use xxhash_rust::xxh3::Xxh3;

use super::ContentScan;
use crate::fs::NodeId;

/// xxh3-128 of a file's whole content.
pub type Digest = u128;

/// What a scan learned about content, by node and by digest.
#[derive(Debug, Default)]
pub struct ContentMemo {
    /// (filesystem index in the scanned guest, node) → its content's digest.
    pub digests: HashMap<(usize, NodeId), Digest>,
    /// A content digest → what the detectors found in those bytes.
    pub scans: HashMap<Digest, ContentScan>,
    /// Files whose content scan was taken from `scans` instead of re-run.
    pub reused: u64,
}

/// Whether a scan takes digests, and whether it may reuse earlier judgements.
#[derive(Clone, Copy, Default)]
pub enum Digests<'a> {
    /// Neither (`scan`, `ls`: nothing would use them).
    #[default]
    Off,
    /// Hash every file the detectors read.
    Take,
    /// Hash every file first; run the detectors only on digests not in the memo.
    Reuse(&'a ContentMemo),
}

thread_local! {
    /// The read buffer of [`DigestReader::finish`], one per thread and zeroized
    /// when the thread ends: a buffer per file would cost more to zeroize (byte
    /// by byte) than the file costs to hash.
    static BUF: RefCell<zeroize::Zeroizing<Vec<u8>>> =
        RefCell::new(zeroize::Zeroizing::new(vec![0u8; 256 << 10]));
}

/// Hashes what passes through it; [`DigestReader::finish`] reads the rest, so
/// the digest covers the whole stream even when its reader stopped early.
pub struct DigestReader<R> {
    inner: R,
    hash: Xxh3,
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R) -> Self {
        DigestReader {
            inner,
            hash: Xxh3::new(),
        }
    }

    /// The digest of the whole stream (what was not read yet is read now).
    pub fn finish(mut self) -> io::Result<Digest> {
        BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            while self.read(&mut buf)? != 0 {}
            Ok(self.hash.digest128())
        })
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// The digest of everything `r` yields.
pub fn digest_of(r: impl Read) -> io::Result<Digest> {
    DigestReader::new(r).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_covers_what_the_reader_did_not_read() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = DigestReader::new(&data[..]);
        let mut head = [0u8; 1000];
        r.read_exact(&mut head).unwrap();
        assert_eq!(
            r.finish().unwrap(),
            xxhash_rust::xxh3::xxh3_128(&data),
            "a partial read still digests the whole stream"
        );
        assert_ne!(
            digest_of(&data[1..]).unwrap(),
            digest_of(&data[..]).unwrap()
        );
    }
}
