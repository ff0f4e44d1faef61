//! Seeds: the fixtures (built from recipes by scripts/fixtures.py) and the
//! corpora (other projects' test images, scripts/corpora.py), loaded as the
//! bytes the mutator starts from.
//!
//! Large disks are fuzzed through a window: only their partition-table pieces
//! (the first and last MiB, and the MiB before every partition, where extended
//! boot records live) are kept as the input, presented at their offsets in a
//! disk of the original size that reads as zeros elsewhere.

use std::io;
use std::path::Path;
use std::sync::Arc;

use vmscrub_blockdev::{MemDisk, ReadAt};

use crate::mutate::Hot;

/// One starting point of a target.
#[derive(Clone)]
pub struct Seed {
    /// Where it came from: `fixture:NAME`, `corpus:NAME/FILE`, `window:…`,
    /// `generated:…`. Regression files name their seed by it.
    pub id: String,
    pub data: Vec<u8>,
    pub hot: Hot,
    /// For a window: the disk's size and (offset, length) of each piece, in the
    /// order they are concatenated in `data`.
    pub window: Option<(u64, Vec<(u64, usize)>)>,
}

impl Seed {
    pub fn new(id: impl Into<String>, data: Vec<u8>, hot: Hot) -> Seed {
        Seed {
            id: id.into(),
            data,
            hot,
            window: None,
        }
    }

    /// The device a (mutated) input of this seed stands for.
    pub fn disk(&self, input: &[u8]) -> Arc<dyn ReadAt> {
        match &self.window {
            None => Arc::new(MemDisk::new(input.to_vec())),
            Some((size, pieces)) => Arc::new(Window {
                size: *size,
                pieces: pieces.clone(),
                data: input.to_vec(),
            }),
        }
    }
}

/// Bytes of a fixture, building it first when needed.
pub fn fixture(name: &str, hot: Hot) -> Seed {
    fixtures(&[name], hot).remove(0)
}

/// Several fixtures, built with one call of the fixture script.
pub fn fixtures(names: &[&str], hot: Hot) -> Vec<Seed> {
    vmscrub_fixtures::build(names);
    names
        .iter()
        .map(|n| {
            let path = vmscrub_fixtures::path_of(n);
            Seed::new(format!("fixture:{n}"), read(&path), hot.clone())
        })
        .collect()
}

/// Every file of a corpus: as it is up to 2 MiB (mutations aimed at `hot`),
/// larger ones up to 64 MiB as their non-zero blocks ([`sparse`]) when those
/// are at most `max` bytes; the rest are left out (reading a few hundred MiB
/// of zeros would cost more than the fuzzing).
pub fn corpus(name: &str, suffix: &str, max: usize, hot: &Hot) -> Vec<Seed> {
    vmscrub_fixtures::corpus_files(name, suffix)
        .into_iter()
        .filter_map(|p| {
            let file = p.file_name()?.to_string_lossy().into_owned();
            let id = format!("corpus:{name}/{file}");
            let len = std::fs::metadata(&p).ok()?.len();
            if len <= 2 << 20 {
                Some(Seed::new(id, read(&p), hot.clone()))
            } else if len > 64 << 20 {
                None
            } else {
                sparse(id, &p).filter(|s| s.data.len() <= max)
            }
        })
        .collect()
}

/// A mostly-empty image as a window of its non-zero 4 KiB blocks: what a
/// filesystem test image holds is metadata, so all of it is hot.
pub fn sparse(id: String, path: &Path) -> Option<Seed> {
    const BLOCK: usize = 4096;
    let bytes = std::fs::read(path).ok()?;
    let mut data = Vec::new();
    let mut pieces: Vec<(u64, usize)> = Vec::new();
    for (i, b) in bytes.chunks(BLOCK).enumerate() {
        if vmscrub_blockdev::is_zero(b) {
            continue;
        }
        let off = (i * BLOCK) as u64;
        match pieces.last_mut() {
            Some((start, len)) if *start + *len as u64 == off => *len += b.len(),
            _ => pieces.push((off, b.len())),
        }
        data.extend_from_slice(b);
    }
    let len = data.len();
    Some(Seed {
        id,
        data,
        hot: Hot(vec![0..len]),
        window: Some((bytes.len() as u64, pieces)),
    })
}

/// A large fixture disk as a window: its first and last MiB and the MiB before
/// each partition (`starts`, in bytes), all of it hot.
pub fn window(name: &str, starts: &[u64]) -> Seed {
    const MIB: u64 = 1 << 20;
    let path = vmscrub_fixtures::path_of(name);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut ranges: Vec<(u64, u64)> = vec![(0, MIB.min(size)), (size.saturating_sub(MIB), size)];
    ranges.extend(starts.iter().map(|&s| (s.saturating_sub(MIB), s.min(size))));
    ranges.sort();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ if a < b => merged.push((a, b)),
            _ => {}
        }
    }
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut data = Vec::new();
    let mut pieces = Vec::new();
    for (a, b) in merged {
        let mut buf = vec![0u8; (b - a) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, a)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        pieces.push((a, buf.len()));
        data.extend_from_slice(&buf);
    }
    let len = data.len();
    Seed {
        id: format!("window:{name}"),
        data,
        hot: Hot(vec![0..len]),
        window: Some((size, pieces)),
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("seed {}: {e}", path.display()))
}

/// A disk of `size` bytes made of pieces of `data` at given offsets, zeros
/// elsewhere; a piece the mutator cut short reads as zeros past the cut.
struct Window {
    size: u64,
    pieces: Vec<(u64, usize)>,
    data: Vec<u8>,
}

impl ReadAt for Window {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        vmscrub_blockdev::check_range(offset, buf.len() as u64, self.size)?;
        buf.fill(0);
        let end = offset + buf.len() as u64;
        let mut at = 0usize;
        for &(start, len) in &self.pieces {
            let (pstart, pend) = (start, start + len as u64);
            let (lo, hi) = (pstart.max(offset), pend.min(end));
            if lo < hi {
                let src = at + (lo - pstart) as usize;
                let n = (hi - lo) as usize;
                let avail = self.data.len().saturating_sub(src).min(n);
                let dst = (lo - offset) as usize;
                if avail > 0 {
                    buf[dst..dst + avail].copy_from_slice(&self.data[src..src + avail]);
                }
            }
            at += len;
        }
        Ok(())
    }
}
