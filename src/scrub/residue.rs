//! Block fingerprints of removed content, and the sweep that looks for them in
//! the output's raw bytes.
//!
//! Markers only find what a test planted; a user's secret has no marker. So the
//! scrub fingerprints every storage unit of every file it removes (the unit a
//! filesystem stores data in: an ext4 block, a FAT sector — see
//! [`Filesystem::storage_unit`](crate::fs::Filesystem::storage_unit)), and
//! verification hashes every unit of the output's volumes at the same grid. A
//! match means removed bytes are still on the disk: in a block the editor
//! should have zeroed, in a journal, in slack.
//!
//! - **xxh3-128**, not a cryptographic hash: nobody chooses the removed content
//!   to collide with the output, and the sweep hashes every allocated byte of
//!   the output, so speed matters; 128 bits make an accidental match
//!   negligible.
//! - **All-zero units are never fingerprinted**: zeros are what removed content
//!   must become.
//! - **A file's last, partial unit** is fingerprinted zero-padded, which is how
//!   the editors leave a block's slack; if the source had garbage there, that
//!   unit goes unmatched (the other units still are).
//! - Content that legitimately survives (a file kept alive by another hard
//!   link, lines a rewrite keeps) is taken out before the sweep; a unit that is
//!   also the content of a live file of the output (two files with identical
//!   blocks) is the caller's to excuse — see `verify`.
//! - Bounded: at most [`MAX_FINGERPRINTS`] per run (1 GiB of memory at worst);
//!   beyond that units are counted but not fingerprinted, and the report says
//!   how much the sweep covered.

use std::collections::{HashMap, HashSet};
use std::io;

use xxhash_rust::xxh3::xxh3_128;

use crate::fs::NodeId;

/// Most fingerprints kept (16 bytes each, plus the set's overhead).
pub const MAX_FINGERPRINTS: usize = 32 << 20;

pub type Fingerprint = u128;

/// The fingerprint of one unit; `None` for an all-zero unit.
pub fn fingerprint(unit: &[u8]) -> Option<Fingerprint> {
    if vmscrub_blockdev::is_zero(unit) {
        None
    } else {
        Some(xxh3_128(unit))
    }
}

/// Fingerprints a stream of file content in `unit`-sized pieces at unit
/// multiples of the file offset. Feed it `(offset, bytes)` in increasing,
/// possibly discontiguous order (a sparse file's segments).
pub struct UnitHasher {
    unit: usize,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_start: u64,
    pub prints: Vec<Fingerprint>,
    /// Units seen that were not all zeros, fingerprinted or not.
    pub units: u64,
    budget_left: usize,
}

impl UnitHasher {
    pub fn new(unit: u64, budget: usize) -> Self {
        let unit = usize::try_from(unit.clamp(512, 1 << 20)).unwrap_or(4096);
        UnitHasher {
            unit,
            buf: Vec::with_capacity(unit),
            buf_start: 0,
            prints: Vec::new(),
            units: 0,
            budget_left: budget,
        }
    }

    fn emit(&mut self, unit: &[u8]) {
        if vmscrub_blockdev::is_zero(unit) {
            return;
        }
        self.units += 1;
        if self.budget_left > 0 {
            self.budget_left -= 1;
            self.prints.push(xxh3_128(unit));
        }
    }

    /// Pads and emits a partial unit.
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut b = std::mem::take(&mut self.buf);
        b.resize(self.unit, 0);
        self.emit(&b);
        b.clear();
        self.buf = b;
    }

    pub fn feed(&mut self, offset: u64, mut data: &[u8]) {
        let unit = self.unit as u64;
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.buf.is_empty() || offset != buf_end {
            // A jump (a hole): what was pending ends here.
            self.flush();
            // Data that does not start on the grid is aligned by padding its
            // first unit's head with zeros (holes read as zeros).
            let head = (offset % unit) as usize;
            self.buf_start = offset - head as u64;
            self.buf.resize(head, 0);
        }
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= self.unit {
                let (u, rest) = data.split_at(self.unit);
                self.emit(u);
                self.buf_start += unit;
                data = rest;
                continue;
            }
            let take = (self.unit - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.unit {
                let b = std::mem::take(&mut self.buf);
                self.emit(&b);
                self.buf = b;
                self.buf.clear();
                self.buf_start += unit;
            }
        }
    }

    /// Ends the stream; returns the fingerprints and the number of non-zero units.
    pub fn finish(mut self) -> (Vec<Fingerprint>, u64) {
        self.flush();
        (std::mem::take(&mut self.prints), self.units)
    }

    pub fn budget_left(&self) -> usize {
        self.budget_left
    }
}

impl Drop for UnitHasher {
    // `buf` holds the tail of a removed file: don't leave it in freed memory.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf);
    }
}

/// Fingerprints of everything removed from one filesystem, by the node they
/// came from (so content a surviving hard link keeps can be taken out).
#[derive(Default)]
pub struct Removed {
    pub unit: u64,
    pub by_node: HashMap<NodeId, Vec<Fingerprint>>,
    /// Fingerprints of content that stays (a rewrite's new content).
    pub kept: HashSet<Fingerprint>,
    /// Non-zero units seen, and how many of them were fingerprinted.
    pub units: u64,
    pub fingerprinted: u64,
}

impl Removed {
    pub fn new(unit: u64) -> Self {
        Removed {
            unit,
            ..Default::default()
        }
    }

    pub fn add(&mut self, node: NodeId, prints: Vec<Fingerprint>, units: u64) {
        self.units += units;
        self.fingerprinted += prints.len() as u64;
        self.by_node.entry(node).or_default().extend(prints);
    }

    /// The set the sweep looks for: every removed node's fingerprints except
    /// those of `survivors` and of kept content.
    pub fn target_set(&self, survivors: &HashSet<NodeId>) -> HashSet<Fingerprint> {
        self.by_node
            .iter()
            .filter(|(n, _)| !survivors.contains(n))
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|p| !self.kept.contains(p))
            .collect()
    }
}

/// One place in the output where removed content was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Byte offset inside the volume.
    pub offset: u64,
    pub print: Fingerprint,
}

/// Hashes every `unit` of `dev`'s allocated ranges and returns where a
/// fingerprint of `targets` occurs (at most `max_hits`), and the bytes swept.
pub fn sweep(
    dev: &dyn vmscrub_blockdev::ReadAt,
    unit: u64,
    targets: &HashSet<Fingerprint>,
    max_hits: usize,
) -> io::Result<(Vec<Hit>, u64)> {
    let mut hits = Vec::new();
    if targets.is_empty() {
        return Ok((hits, 0));
    }
    let unit = unit.clamp(512, 1 << 20);
    let chunk = (4u64 << 20).next_multiple_of(unit);
    let size = dev.size();
    let mut buf = vec![0u8; chunk as usize];
    let mut swept = 0u64;
    for r in dev.allocated_ranges()?.iter() {
        let mut pos = r.start / unit * unit;
        let end = r.end.div_ceil(unit).saturating_mul(unit).min(size);
        while pos < end {
            crate::output::check_interrupted()?;
            let n = (end - pos).min(chunk) as usize;
            dev.read_exact_at(&mut buf[..n], pos)?;
            for (i, u) in buf[..n].chunks(unit as usize).enumerate() {
                // A short unit at the volume's end cannot hold a whole one.
                if u.len() as u64 != unit {
                    continue;
                }
                if let Some(p) = fingerprint(u)
                    && targets.contains(&p)
                    && hits.len() < max_hits
                {
                    hits.push(Hit {
                        offset: pos + (i as u64) * unit,
                        print: p,
                    });
                }
            }
            pos += n as u64;
            swept += n as u64;
        }
    }
    Ok((hits, swept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::{MemDisk, WriteAt};

    fn prints(unit: u64, pieces: &[(u64, &[u8])]) -> Vec<Fingerprint> {
        let mut h = UnitHasher::new(unit, usize::MAX);
        for (o, d) in pieces {
            h.feed(*o, d);
        }
        h.finish().0
    }

    #[test]
    fn units_are_cut_on_the_file_offset_grid_whatever_the_read_sizes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let whole = prints(4096, &[(0, &data)]);
        assert_eq!(whole.len(), 3);
        // Fed in odd pieces: the same fingerprints.
        let mut h = UnitHasher::new(4096, usize::MAX);
        let mut pos = 0;
        for piece in data.chunks(777) {
            h.feed(pos, piece);
            pos += piece.len() as u64;
        }
        assert_eq!(h.finish().0, whole);
        // The last partial unit is padded with zeros.
        let mut last = data[8192..].to_vec();
        last.resize(4096, 0);
        assert_eq!(whole[2], xxh3_128(&last));
    }

    #[test]
    fn holes_and_zero_units_are_not_fingerprinted() {
        let a = vec![7u8; 4096];
        let z = vec![0u8; 4096];
        let mut all = a.clone();
        all.extend_from_slice(&z);
        all.extend_from_slice(&a);
        assert_eq!(prints(4096, &[(0, &all)]).len(), 2);
        // Sparse: two segments with a hole between them.
        let p = prints(4096, &[(0, &a), (3 * 4096, &a)]);
        assert_eq!(p, vec![xxh3_128(&a), xxh3_128(&a)]);
        // A segment starting off the grid is aligned with a zero head.
        let p = prints(4096, &[(4096 + 100, &a[..100])]);
        let mut u = vec![0u8; 4096];
        u[100..200].copy_from_slice(&a[..100]);
        assert_eq!(p, vec![xxh3_128(&u)]);
    }

    #[test]
    fn budget_bounds_memory_but_counts_everything() {
        let data: Vec<u8> = (0..5 * 4096u32).map(|i| (i / 4096) as u8 + 1).collect();
        let mut h = UnitHasher::new(4096, 2);
        h.feed(0, &data);
        let (p, units) = h.finish();
        assert_eq!((p.len(), units), (2, 5));
    }

    #[test]
    fn sweep_finds_fingerprinted_units_at_their_offsets_only() {
        let disk = MemDisk::zeroed(64 * 1024);
        let secret = vec![0xabu8; 4096];
        disk.write_all_at(&secret, 5 * 4096).unwrap();
        // The same bytes off the grid are not a unit of the volume.
        disk.write_all_at(&secret, 9 * 4096 + 512).unwrap();
        let targets: HashSet<Fingerprint> = [xxh3_128(&secret)].into();
        let (hits, swept) = sweep(&disk, 4096, &targets, 10).unwrap();
        assert_eq!(swept, 64 * 1024);
        assert_eq!(
            hits,
            vec![Hit {
                offset: 5 * 4096,
                print: xxh3_128(&secret)
            }]
        );
        // At 512-byte units the shifted copy is found too.
        let t512: HashSet<Fingerprint> = [xxh3_128(&secret[..512])].into();
        let (hits, _) = sweep(&disk, 512, &t512, 100).unwrap();
        assert_eq!(hits.len(), 16);
    }

    #[test]
    fn survivors_and_kept_content_leave_the_target_set() {
        let mut r = Removed::new(4096);
        r.add(1, vec![1, 2], 2);
        r.add(2, vec![3], 1);
        r.add(3, vec![4, 5], 2);
        r.kept.insert(5);
        let t = r.target_set(&[2].into());
        assert_eq!(t, [1, 2, 4].into());
    }
}
