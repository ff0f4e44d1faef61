//! Nested content: a file that is a compressed stream (gzip, xz, zstd, bzip2) or an
//! archive (tar, zip/jar, cpio) is scanned inside too, member by member, to a
//! bounded depth, total size and expansion ratio. A decompression bomb hits a bound
//! and becomes a warning, never a hang or an allocation; a corrupt container is
//! scanned as the bytes it is, with a warning. A finding inside names its member
//! (`gzip > tar:etc/ssl/private/app.key`), and the container file is what the
//! caller removes.
//!
//! The container's own bytes are always scanned as well (through a tee, in the same
//! read), so a stored zip member, a tar that stops parsing halfway or a file that
//! only looks compressed loses nothing; a raw finding whose fingerprint a member
//! finding already has is dropped.

mod archive;
mod zip;

use std::cell::Cell;
use std::io::{self, Read};

use crate::engine::{DetectorSet, ScanError, Scanner, Stream};
use crate::finding::{Finding, Fingerprint};

/// Bounds of a nested scan.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Container layers opened below the file (a `.tar.gz` is 2).
    pub max_depth: usize,
    /// Decompressed bytes per file, all layers together.
    pub max_total: u64,
    /// Output bytes per input byte of one compressed layer (past 1 MiB).
    pub max_ratio: u64,
    /// Archive members per file.
    pub max_members: u64,
    /// Largest zip read into memory to find its central directory.
    pub max_zip: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 4,
            max_total: 512 << 20,
            max_ratio: 250,
            max_members: 100_000,
            max_zip: 64 << 20,
        }
    }
}

/// Output below this many bytes never counts against the ratio (tiny compressed
/// files of zeros are normal).
const RATIO_FLOOR: u64 = 1 << 20;

/// A finding and where it is: `None` for the file's own bytes, else the member path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NestedFinding {
    pub member: Option<String>,
    pub finding: Finding,
}

/// The result of a nested scan.
#[derive(Clone, Debug, Default)]
pub struct NestedScan {
    pub findings: Vec<NestedFinding>,
    /// What could not be scanned inside, and why (bounds hit, corrupt containers).
    pub warnings: Vec<String>,
    /// Bytes of the file itself.
    pub bytes: u64,
    /// Decompressed / member bytes scanned inside.
    pub inner_bytes: u64,
}

/// One [`Scanner`] per depth, allocated when first used. Keep one per thread.
#[derive(Default)]
pub struct ScannerPool {
    levels: Vec<Scanner>,
}

impl ScannerPool {
    pub fn new() -> Self {
        ScannerPool::default()
    }
}

impl std::fmt::Debug for ScannerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScannerPool")
            .field("levels", &self.levels.len())
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Plain,
    Gzip,
    Xz,
    Zstd,
    Bzip2,
    Zip,
    Tar,
    Cpio,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Gzip => "gzip",
            Kind::Xz => "xz",
            Kind::Zstd => "zstd",
            Kind::Bzip2 => "bzip2",
            Kind::Zip => "zip",
            Kind::Tar => "tar",
            Kind::Cpio => "cpio",
        }
    }
}

/// Bytes needed to recognise every kind (tar's magic is at 257).
const PEEK: usize = 512;

/// What the first bytes say the stream is (magic numbers from each format's spec:
/// RFC 1952, the xz and zstd (RFC 8878) file formats, bzip2's `BZh` + block magic,
/// APPNOTE.TXT local header, POSIX ustar, cpio(5) newc/crc/odc).
pub(crate) fn sniff(h: &[u8]) -> Kind {
    if h.starts_with(&[0x1f, 0x8b, 0x08]) {
        Kind::Gzip
    } else if h.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
        Kind::Xz
    } else if h.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        Kind::Zstd
    } else if h.len() >= 10
        && h.starts_with(b"BZh")
        && (b'1'..=b'9').contains(&h[3])
        && (h[4..10] == [0x31, 0x41, 0x59, 0x26, 0x53, 0x59]
            || h[4..10] == [0x17, 0x72, 0x45, 0x38, 0x50, 0x90])
    {
        Kind::Bzip2
    } else if h.starts_with(b"PK\x03\x04") {
        Kind::Zip
    } else if h.starts_with(b"070701") || h.starts_with(b"070702") || h.starts_with(b"070707") {
        Kind::Cpio
    } else if h.len() >= 512 && &h[257..262] == b"ustar" && archive::tar_checksum_ok(&h[..512]) {
        Kind::Tar
    } else {
        Kind::Plain
    }
}

/// Counters shared by every layer of one file's walk.
pub(crate) struct Budget {
    total: Cell<u64>,
    max_total: u64,
    max_ratio: u64,
    /// Set when a bound stopped a decompression.
    pub(crate) hit: Cell<bool>,
}

/// A decompressor's output, cut off (as an end of stream) when the file's total or
/// this layer's ratio to its input is exceeded.
pub(crate) struct Bounded<'b, R> {
    inner: R,
    budget: &'b Budget,
    input: &'b Cell<u64>,
    out: u64,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let b = self.budget;
        let by_ratio = self
            .input
            .get()
            .saturating_mul(b.max_ratio)
            .max(RATIO_FLOOR)
            .saturating_sub(self.out);
        let by_total = b.max_total.saturating_sub(b.total.get());
        let room = by_ratio.min(by_total);
        if room == 0 {
            b.hit.set(true);
            return Ok(0);
        }
        let want = buf.len().min(room.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.out += n as u64;
        b.total.set(b.total.get() + n as u64);
        Ok(n)
    }
}

/// Reads through to the caller while feeding every byte to a raw scan, and counts.
struct Tee<'s, 'a, R> {
    inner: R,
    stream: &'s mut Stream<'a>,
    consumed: &'s Cell<u64>,
    /// An error of the underlying reader (not of a decoder above it).
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.stream.push(&buf[..n]);
                self.consumed.set(self.consumed.get() + n as u64);
                Ok(n)
            }
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                Err(copy)
            }
        }
    }
}

/// The walk of one file.
pub(crate) struct Walk<'w> {
    pub(crate) set: &'w DetectorSet,
    pub(crate) limits: &'w Limits,
    pub(crate) budget: &'w Budget,
    pub(crate) out: NestedScan,
    pub(crate) members: u64,
}

pub(crate) fn join(path: &str, seg: &str) -> String {
    if path.is_empty() {
        seg.to_string()
    } else {
        format!("{path} > {seg}")
    }
}

/// Reads up to `PEEK` bytes (fewer only at the end of the stream).
fn peek(reader: &mut dyn Read, head: &mut Vec<u8>) -> io::Result<()> {
    head.clear();
    head.resize(PEEK, 0);
    let mut n = 0;
    while n < PEEK {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(())
}

impl Walk<'_> {
    fn add(&mut self, path: &str, findings: Vec<Finding>) {
        let member = (!path.is_empty()).then(|| path.to_string());
        self.out
            .findings
            .extend(findings.into_iter().map(|finding| NestedFinding {
                member: member.clone(),
                finding,
            }));
    }

    pub(crate) fn warn(&mut self, msg: String) {
        if self.out.warnings.len() < 32 {
            self.out.warnings.push(msg);
        }
    }

    /// Scans `reader` at `depth` (`levels[0]` is this depth's scanner), opening it
    /// when it is a container and depth allows. Returns the bytes read.
    pub(crate) fn level(
        &mut self,
        levels: &mut [Scanner],
        reader: &mut dyn Read,
        depth: usize,
        path: &str,
    ) -> Result<u64, ScanError> {
        let Some((cur, deeper)) = levels.split_first_mut() else {
            return Ok(0);
        };
        let mut head = Vec::with_capacity(PEEK);
        peek(reader, &mut head).map_err(|source| ScanError::Read { offset: 0, source })?;
        let kind = if depth < self.limits.max_depth && !deeper.is_empty() {
            sniff(&head)
        } else {
            Kind::Plain
        };
        let mut chained = io::Cursor::new(head).chain(reader);
        if kind == Kind::Plain {
            let scan = self.set.scan_reader(cur, &mut chained)?;
            self.add(path, scan.findings);
            return Ok(scan.bytes);
        }
        let mut stream = self.set.stream(cur);
        let consumed = Cell::new(0u64);
        let first_inner = self.out.findings.len();
        let failed = {
            let mut tee = Tee {
                inner: &mut chained,
                stream: &mut stream,
                consumed: &consumed,
                failed: None,
            };
            let r = self.open(kind, &mut tee, &consumed, deeper, depth, path);
            if let Err(e) = r {
                self.warn(format!(
                    "{}: not a readable {} stream: {e}; scanned as bytes",
                    if path.is_empty() { "the file" } else { path },
                    kind.name()
                ));
            }
            // The raw scan must see the whole file, whatever the decoder read.
            if tee.failed.is_none() {
                let _ = io::copy(&mut tee, &mut io::sink());
            }
            tee.failed.take()
        };
        if let Some(source) = failed {
            return Err(ScanError::Read {
                offset: consumed.get(),
                source,
            });
        }
        let raw = stream.finish();
        let inner: Vec<Fingerprint> = self.out.findings[first_inner..]
            .iter()
            .map(|f| f.finding.fingerprint)
            .collect();
        let raw_only: Vec<Finding> = raw
            .findings
            .into_iter()
            .filter(|f| !inner.contains(&f.fingerprint))
            .collect();
        self.add(path, raw_only);
        Ok(raw.bytes)
    }

    /// Opens one container layer read through `tee`.
    fn open(
        &mut self,
        kind: Kind,
        tee: &mut dyn Read,
        consumed: &Cell<u64>,
        deeper: &mut [Scanner],
        depth: usize,
        path: &str,
    ) -> io::Result<()> {
        let here = join(path, kind.name());
        let decoded: Box<dyn Read + '_> = match kind {
            Kind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(tee)),
            Kind::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(tee)),
            Kind::Zstd => Box::new(zstd::stream::read::Decoder::new(tee)?),
            Kind::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(tee)),
            Kind::Tar => return archive::tar(self, tee, deeper, depth, path),
            Kind::Cpio => return archive::cpio(self, tee, deeper, depth, path),
            Kind::Zip => return zip::zip(self, tee, deeper, depth, path),
            Kind::Plain => return Ok(()),
        };
        let budget = self.budget;
        let mut bounded = Bounded {
            inner: decoded,
            budget,
            input: consumed,
            out: 0,
        };
        let hit_before = budget.hit.get();
        let n = self
            .level(deeper, &mut bounded, depth + 1, &here)
            .map_err(|e| match e {
                ScanError::Read { source, .. } => source,
            })?;
        self.out.inner_bytes += n;
        if budget.hit.get() && !hit_before {
            self.warn(format!(
                "{here}: decompression stopped after {n} bytes (bound: {} bytes per file, {}x per layer); \
                 a decompression bomb? The rest was not scanned inside",
                self.limits.max_total, self.limits.max_ratio
            ));
        }
        Ok(())
    }

    /// Scans one archive member read from `reader` (its exact bytes).
    pub(crate) fn member(
        &mut self,
        deeper: &mut [Scanner],
        reader: &mut dyn Read,
        depth: usize,
        path: &str,
        name: &str,
    ) -> io::Result<bool> {
        self.members += 1;
        if self.members > self.limits.max_members {
            self.warn(format!(
                "{}: more than {} archive members; the rest were not scanned inside",
                if path.is_empty() { "the file" } else { path },
                self.limits.max_members
            ));
            return Ok(false);
        }
        let seg = join(path, name);
        let n = self
            .level(deeper, reader, depth + 1, &seg)
            .map_err(|e| match e {
                ScanError::Read { source, .. } => source,
            })?;
        self.out.inner_bytes += n;
        Ok(true)
    }
}

impl DetectorSet {
    /// Scans a file and, when it is a compressed stream or an archive, what is inside
    /// (see the module docs). `pool` holds one scanner per depth; keep one per thread.
    pub fn scan_nested<R: Read>(
        &self,
        pool: &mut ScannerPool,
        mut reader: R,
        limits: &Limits,
    ) -> Result<NestedScan, ScanError> {
        let want = limits.max_depth + 1;
        while pool.levels.len() < want {
            pool.levels.push(Scanner::new());
        }
        let budget = Budget {
            total: Cell::new(0),
            max_total: limits.max_total,
            max_ratio: limits.max_ratio.max(1),
            hit: Cell::new(false),
        };
        let mut walk = Walk {
            set: self,
            limits,
            budget: &budget,
            out: NestedScan::default(),
            members: 0,
        };
        let bytes = walk.level(&mut pool.levels[..want], &mut reader, 0, "")?;
        let mut out = walk.out;
        out.bytes = bytes;
        Ok(out)
    }
}
