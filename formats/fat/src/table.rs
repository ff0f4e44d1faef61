//! The File Allocation Table: entry encoding (12-bit packing included), a lazily
//! loaded cache of the active copy, and cluster chains walked with loop and range
//! detection.
//!
//! The cache loads the FAT in 64 KiB chunks on first touch, each behind a
//! `OnceLock`, so concurrent readers share it without a lock and a volume whose FAT
//! is large costs memory only for the parts a walk touches. The cache never holds
//! more than the FAT's used bytes, which the BPB validation bounded by the volume
//! size, which in turn is bounded by the device.

use std::ops::Range;
use std::sync::OnceLock;

use vmscrub_blockdev::ReadAt;

use crate::bpb::{FatType, Geometry};
use crate::error::{FatError, Result};

const CHUNK: usize = 64 * 1024;

/// What a FAT entry says about the cluster after this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatEntry {
    Free,
    /// The chain continues at this (valid) cluster.
    Next(u32),
    Bad,
    EndOfChain,
    /// 1, or a cluster number past the end of the volume: never valid in a chain.
    Invalid(u32),
}

impl FatEntry {
    pub(crate) fn classify(g: &Geometry, raw: u32) -> FatEntry {
        let bad = g.fat_type.bad_marker();
        match raw {
            0 => FatEntry::Free,
            v if v == bad => FatEntry::Bad,
            v if v > bad => FatEntry::EndOfChain,
            v if g.is_cluster(v) => FatEntry::Next(v),
            v => FatEntry::Invalid(v),
        }
    }
}

/// Reads and decodes entries of one FAT copy from any byte source.
pub(crate) fn decode_entry(fat_type: FatType, cluster: u32, bytes: [u8; 4]) -> u32 {
    match fat_type {
        FatType::Fat12 => {
            let v = u16::from_le_bytes([bytes[0], bytes[1]]) as u32;
            if cluster & 1 == 0 { v & 0xFFF } else { v >> 4 }
        }
        FatType::Fat16 => u16::from_le_bytes([bytes[0], bytes[1]]) as u32,
        FatType::Fat32 => u32::from_le_bytes(bytes) & 0x0FFF_FFFF,
    }
}

/// Where entry `cluster` lives inside a FAT copy, and how many bytes it spans.
pub(crate) fn entry_position(fat_type: FatType, cluster: u32) -> (u64, usize) {
    let c = cluster as u64;
    match fat_type {
        FatType::Fat12 => (c + c / 2, 2),
        FatType::Fat16 => (c * 2, 2),
        FatType::Fat32 => (c * 4, 4),
    }
}

/// Stores `value` into the entry's bytes, keeping the bits that belong to the
/// neighbouring FAT12 entry and FAT32's reserved top nibble.
pub(crate) fn encode_entry(fat_type: FatType, cluster: u32, value: u32, bytes: &mut [u8; 4]) {
    match fat_type {
        FatType::Fat12 => {
            let old = u16::from_le_bytes([bytes[0], bytes[1]]);
            let v = (value & 0xFFF) as u16;
            let new = if cluster & 1 == 0 {
                (old & 0xF000) | v
            } else {
                (old & 0x000F) | (v << 4)
            };
            bytes[..2].copy_from_slice(&new.to_le_bytes());
        }
        FatType::Fat16 => bytes[..2].copy_from_slice(&(value as u16).to_le_bytes()),
        FatType::Fat32 => {
            let old = u32::from_le_bytes(*bytes);
            let new = (old & 0xF000_0000) | (value & 0x0FFF_FFFF);
            *bytes = new.to_le_bytes();
        }
    }
}

/// Lazily loaded bytes of the active FAT copy.
#[derive(Debug)]
pub(crate) struct FatCache {
    base: u64,
    len: u64,
    chunks: Vec<OnceLock<Box<[u8]>>>,
}

impl FatCache {
    pub(crate) fn new(g: &Geometry) -> FatCache {
        let len = g.fat_used_bytes();
        let n = len.div_ceil(CHUNK as u64) as usize;
        FatCache {
            base: g.fat_offset(g.active_fat),
            len,
            chunks: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }

    fn chunk<D: ReadAt + ?Sized>(&self, dev: &D, i: usize) -> Result<&[u8]> {
        let cell = self.chunks.get(i).ok_or(FatError::FatEntry {
            cluster: 0,
            value: 0,
            why: "entry outside the FAT",
        })?;
        if let Some(b) = cell.get() {
            return Ok(b);
        }
        let start = i as u64 * CHUNK as u64;
        let n = (self.len - start).min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; n].into_boxed_slice();
        let offset = self.base + start;
        dev.read_exact_at(&mut buf, offset)
            .map_err(|source| FatError::Read {
                what: "FAT",
                offset,
                source,
            })?;
        // Another thread may have loaded it meanwhile: either copy is the same bytes.
        Ok(cell.get_or_init(|| buf))
    }

    fn byte<D: ReadAt + ?Sized>(&self, dev: &D, pos: u64) -> Result<u8> {
        let chunk = self.chunk(dev, (pos / CHUNK as u64) as usize)?;
        chunk
            .get((pos % CHUNK as u64) as usize)
            .copied()
            .ok_or(FatError::FatEntry {
                cluster: 0,
                value: 0,
                why: "entry outside the FAT",
            })
    }

    /// The raw (28-bit for FAT32) value of entry `cluster`.
    pub(crate) fn raw<D: ReadAt + ?Sized>(
        &self,
        dev: &D,
        g: &Geometry,
        cluster: u32,
    ) -> Result<u32> {
        let (pos, n) = entry_position(g.fat_type, cluster);
        let mut b = [0u8; 4];
        // FAT16/32 entries never straddle a chunk (CHUNK is a multiple of 4); FAT12's
        // can, so read byte by byte.
        for (i, slot) in b.iter_mut().take(n).enumerate() {
            *slot = self.byte(dev, pos + i as u64)?;
        }
        Ok(decode_entry(g.fat_type, cluster, b))
    }

    pub(crate) fn entry<D: ReadAt + ?Sized>(
        &self,
        dev: &D,
        g: &Geometry,
        cluster: u32,
    ) -> Result<FatEntry> {
        Ok(FatEntry::classify(g, self.raw(dev, g, cluster)?))
    }

    /// Drops cached chunks covering `bytes` of the FAT so the next read sees what an
    /// edit wrote.
    pub(crate) fn invalidate(&mut self, bytes: Range<u64>) {
        if bytes.start >= bytes.end {
            return;
        }
        let first = (bytes.start / CHUNK as u64) as usize;
        let last = ((bytes.end - 1) / CHUNK as u64) as usize;
        for i in first..=last {
            if let Some(cell) = self.chunks.get_mut(i) {
                cell.take();
            }
        }
    }

    /// Counts free entries among clusters 2..=max.
    pub(crate) fn count_free<D: ReadAt + ?Sized>(&self, dev: &D, g: &Geometry) -> Result<u32> {
        let mut free = 0;
        for c in 2..=g.max_cluster() {
            if self.raw(dev, g, c)? == 0 {
                free += 1;
            }
        }
        Ok(free)
    }
}

/// A cluster chain as runs of consecutive clusters, in chain order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    runs: Vec<Range<u32>>,
    len: u32,
}

impl Chain {
    fn push(&mut self, c: u32) {
        match self.runs.last_mut() {
            Some(r) if r.end == c => r.end += 1,
            _ => self.runs.push(c..c + 1),
        }
        self.len += 1;
    }

    /// Runs of consecutive cluster numbers, in chain order.
    pub fn runs(&self) -> &[Range<u32>] {
        &self.runs
    }

    /// Number of clusters.
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clusters(&self) -> impl Iterator<Item = u32> + '_ {
        self.runs.iter().flat_map(|r| r.clone())
    }

    /// The first `n` clusters (all of them if the chain is shorter).
    pub fn prefix(&self, n: u32) -> Chain {
        let mut out = Chain::default();
        for c in self.clusters().take(n as usize) {
            out.push(c);
        }
        out
    }

    /// The clusters after the first `n`.
    pub fn suffix(&self, n: u32) -> Chain {
        let mut out = Chain::default();
        for c in self.clusters().skip(n as usize) {
            out.push(c);
        }
        out
    }

    /// Byte ranges of the chain's clusters on the device, in chain order.
    pub fn byte_ranges(&self, g: &Geometry) -> Vec<Range<u64>> {
        self.runs
            .iter()
            .map(|r| {
                let start = g.cluster_offset(r.start);
                start..start + (r.end - r.start) as u64 * g.cluster_size as u64
            })
            .collect()
    }
}

/// Follows the chain from `start` to its end-of-chain marker. Fails on a free, bad or
/// out-of-range entry inside the chain, and on a loop — found by Brent's algorithm
/// in at most about three times the chain's length, without a visited set, and in
/// any case bounded by the volume's cluster count.
pub(crate) fn walk_chain<D: ReadAt + ?Sized>(
    dev: &D,
    g: &Geometry,
    fat: &FatCache,
    start: u32,
) -> Result<Chain> {
    if !g.is_cluster(start) {
        return Err(FatError::FatEntry {
            cluster: start,
            value: start,
            why: "a chain starts at a cluster outside the volume",
        });
    }
    let mut chain = Chain::default();
    chain.push(start);
    let (mut tortoise, mut hare) = (start, start);
    let (mut power, mut lam) = (1u64, 0u64);
    loop {
        let next = match fat.entry(dev, g, hare)? {
            FatEntry::EndOfChain => return Ok(chain),
            FatEntry::Next(n) => n,
            FatEntry::Free => {
                return Err(FatError::FatEntry {
                    cluster: hare,
                    value: 0,
                    why: "a chain runs into a free cluster",
                });
            }
            FatEntry::Bad => {
                return Err(FatError::FatEntry {
                    cluster: hare,
                    value: g.fat_type.bad_marker(),
                    why: "a chain runs into a bad-cluster marker",
                });
            }
            FatEntry::Invalid(v) => {
                return Err(FatError::FatEntry {
                    cluster: hare,
                    value: v,
                    why: "points outside the volume's clusters",
                });
            }
        };
        hare = next;
        lam += 1;
        if hare == tortoise {
            return Err(FatError::ChainLoop {
                start,
                cluster: hare,
            });
        }
        if chain.len() >= g.cluster_count {
            return Err(FatError::ChainTooLong {
                start,
                limit: g.cluster_count,
            });
        }
        chain.push(hare);
        if lam == power {
            tortoise = hare;
            power *= 2;
            lam = 0;
        }
    }
}
