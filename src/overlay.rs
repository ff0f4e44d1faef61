//! The overlay: every change a scrub makes, held beside the read-only source.
//!
//! The input image is opened read-only and never written. Editors (the ext4 editor,
//! the FAT scrubber) write through an [`Overlay`], which keeps changed blocks in
//! memory and records "this range is now zeros" as ranges rather than as written
//! zeros. The output writer then makes one sequential pass over base + overlay
//! ([`Overlay::segments`]); a zeroed range becomes a hole or an unallocated cluster
//! in the output, so removing a 1 GiB log costs nothing to write.
//!
//! Memory is bounded by what was edited (directory blocks, inode tables, bitmaps:
//! typically a few MiB), not by what was removed.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::RwLock;

use vmscrub_blockdev::{RangeSet, ReadAt, WriteAt, check_range};
use zeroize::Zeroize;

/// Granularity of changed blocks. Filesystem blocks of any size map onto it by
/// read-modify-write; 4 KiB matches most filesystems and keeps small edits small.
pub const OVERLAY_BLOCK: u64 = 4096;

/// A writable view of a read-only base device.
pub struct Overlay<B> {
    base: B,
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// Block index → full contents of a changed block.
    blocks: BTreeMap<u64, Box<[u8]>>,
    /// Whole blocks (as byte ranges) that read as zeros. Disjoint from `blocks`.
    zeros: RangeSet,
}

impl Drop for State {
    fn drop(&mut self) {
        // Changed blocks may hold bytes read from the source (say, the rest of a
        // directory block): don't leave them in freed memory.
        for b in self.blocks.values_mut() {
            b.zeroize();
        }
    }
}

/// One piece of the output pass, in increasing offset order.
#[derive(Debug, PartialEq, Eq)]
pub enum Segment {
    /// `len` bytes at `offset` that read as zeros: write a hole.
    Zero { offset: u64, len: u64 },
    /// Bytes to write at `offset`.
    Data { offset: u64, data: Vec<u8> },
}

/// What the overlay holds, for summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlayStats {
    pub changed_blocks: u64,
    pub zeroed_bytes: u64,
}

impl<B: ReadAt> Overlay<B> {
    pub fn new(base: B) -> Self {
        Self {
            base,
            state: RwLock::new(State::default()),
        }
    }

    pub fn base(&self) -> &B {
        &self.base
    }

    pub fn stats(&self) -> OverlayStats {
        let st = self.read_state();
        OverlayStats {
            changed_blocks: st.blocks.len() as u64,
            zeroed_bytes: st.zeros.total(),
        }
    }

    /// Every byte range whose contents differ from the base (changed blocks and
    /// zeroed ranges), for reports and for verification.
    pub fn changed_ranges(&self) -> RangeSet {
        let st = self.read_state();
        let mut set = st.zeros.clone();
        for &b in st.blocks.keys() {
            set.insert(b * OVERLAY_BLOCK..((b + 1) * OVERLAY_BLOCK).min(self.base.size()));
        }
        set
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn block_range(&self, idx: u64) -> Range<u64> {
        let start = idx * OVERLAY_BLOCK;
        start..(start + OVERLAY_BLOCK).min(self.base.size())
    }

    /// Current contents of block `idx` as an owned buffer, for read-modify-write.
    fn load_block(&self, st: &State, idx: u64) -> io::Result<Box<[u8]>> {
        if let Some(b) = st.blocks.get(&idx) {
            return Ok(b.clone());
        }
        let r = self.block_range(idx);
        let mut buf = vec![0u8; (r.end - r.start) as usize].into_boxed_slice();
        if !st.zeros.contains(r.start) {
            self.base.read_exact_at(&mut buf, r.start)?;
        }
        Ok(buf)
    }

    /// The output pass: base + overlay from start to end, as data and zero
    /// segments in increasing order, each data segment at most `chunk` bytes and
    /// aligned to `chunk`. Ranges the base never allocated and zeroed ranges come
    /// out as [`Segment::Zero`]; data chunks that happen to be all zeros are also
    /// reported as zeros, so the output is as sparse as it can be.
    pub fn segments(&self, chunk: u64) -> io::Result<Segments<'_, B>> {
        let chunk = chunk.max(OVERLAY_BLOCK).next_multiple_of(OVERLAY_BLOCK);
        let st = self.read_state();
        let mut data = self.base.allocated_ranges()?;
        for z in st.zeros.iter() {
            data.remove(z);
        }
        for &b in st.blocks.keys() {
            data.insert(self.block_range(b));
        }
        drop(st);
        Ok(Segments {
            overlay: self,
            data,
            pos: 0,
            chunk,
            pending: None,
        })
    }
}

impl<B: ReadAt> ReadAt for Overlay<B> {
    fn size(&self) -> u64 {
        self.base.size()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        let st = self.read_state();
        let end = offset + buf.len() as u64;
        // Walk the range, alternating between overlay pieces and maximal runs that
        // come from the base, so a large read of unchanged data is one base read.
        let mut pos = offset;
        while pos < end {
            let idx = pos / OVERLAY_BLOCK;
            let in_block = (pos % OVERLAY_BLOCK) as usize;
            let out = &mut buf[(pos - offset) as usize..];
            if let Some(b) = st.blocks.get(&idx) {
                let n = (b.len() - in_block).min(out.len());
                out[..n].copy_from_slice(&b[in_block..in_block + n]);
                pos += n as u64;
                continue;
            }
            if st.zeros.contains(pos) {
                let zend = st
                    .zeros
                    .overlapping(pos..end)
                    .next()
                    .map_or(pos + 1, |r| r.end);
                let n = (zend - pos) as usize;
                out[..n].fill(0);
                pos = zend;
                continue;
            }
            // A base run: up to the next changed block or zero range.
            let next_block = st
                .blocks
                .range(idx + 1..)
                .next()
                .map_or(u64::MAX, |(&i, _)| i * OVERLAY_BLOCK);
            let next_zero = st
                .zeros
                .overlapping(pos..end)
                .next()
                .map_or(u64::MAX, |r| r.start);
            // Both bounds lie beyond `pos`: the current block is unchanged and `pos`
            // is not in a zero range.
            let run_end = end.min(next_block).min(next_zero);
            let n = (run_end - pos) as usize;
            self.base.read_exact_at(&mut out[..n], pos)?;
            pos = run_end;
        }
        Ok(())
    }

    fn allocated_ranges(&self) -> io::Result<RangeSet> {
        let st = self.read_state();
        let mut set = self.base.allocated_ranges()?;
        for z in st.zeros.iter() {
            set.remove(z);
        }
        for &b in st.blocks.keys() {
            set.insert(self.block_range(b));
        }
        Ok(set)
    }
}

impl<B: ReadAt> WriteAt for Overlay<B> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        let mut st = self.write_state();
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        while pos < end {
            let idx = pos / OVERLAY_BLOCK;
            let r = self.block_range(idx);
            let n = (r.end.min(end) - pos) as usize;
            let src = &buf[(pos - offset) as usize..][..n];
            let mut block = if pos == r.start && n as u64 == r.end - r.start {
                src.to_vec().into_boxed_slice()
            } else {
                let mut b = self.load_block(&st, idx)?;
                let at = (pos - r.start) as usize;
                b[at..at + n].copy_from_slice(src);
                b
            };
            st.zeros.remove(r.clone());
            if let Some(mut old) = st.blocks.insert(idx, std::mem::take(&mut block)) {
                old.zeroize();
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn zero_range(&self, range: Range<u64>) -> io::Result<()> {
        check_range(
            range.start,
            range.end.saturating_sub(range.start),
            self.size(),
        )?;
        if range.start >= range.end {
            return Ok(());
        }
        // Partial blocks at either end are written as zeros; whole blocks become a
        // zero range and drop any changed copy.
        let first_full = range.start.next_multiple_of(OVERLAY_BLOCK);
        let last_full = if range.end == self.size() {
            range.end
        } else {
            range.end / OVERLAY_BLOCK * OVERLAY_BLOCK
        };
        if first_full >= last_full {
            let zeros = vec![0u8; (range.end - range.start) as usize];
            return self.write_all_at(&zeros, range.start);
        }
        if range.start < first_full {
            self.write_all_at(&vec![0u8; (first_full - range.start) as usize], range.start)?;
        }
        if last_full < range.end {
            self.write_all_at(&vec![0u8; (range.end - last_full) as usize], last_full)?;
        }
        let mut st = self.write_state();
        let first_idx = first_full / OVERLAY_BLOCK;
        let last_idx = last_full.div_ceil(OVERLAY_BLOCK);
        let dropped: Vec<u64> = st
            .blocks
            .range(first_idx..last_idx)
            .map(|(&i, _)| i)
            .collect();
        for i in dropped {
            if let Some(mut b) = st.blocks.remove(&i) {
                b.zeroize();
            }
        }
        st.zeros.insert(first_full..last_full);
        Ok(())
    }
}

/// Iterator over the output pass; see [`Overlay::segments`].
pub struct Segments<'a, B> {
    overlay: &'a Overlay<B>,
    /// Ranges that may hold non-zero bytes in base + overlay.
    data: RangeSet,
    pos: u64,
    chunk: u64,
    pending: Option<Segment>,
}

impl<B: ReadAt> Segments<'_, B> {
    fn next_segment(&mut self) -> io::Result<Option<Segment>> {
        let size = self.overlay.size();
        if self.pos >= size {
            return Ok(None);
        }
        let next_data = self.data.overlapping(self.pos..size).next();
        match next_data {
            None => {
                let seg = Segment::Zero {
                    offset: self.pos,
                    len: size - self.pos,
                };
                self.pos = size;
                Ok(Some(seg))
            }
            Some(r) if r.start > self.pos => {
                let seg = Segment::Zero {
                    offset: self.pos,
                    len: r.start - self.pos,
                };
                self.pos = r.start;
                Ok(Some(seg))
            }
            Some(r) => {
                // Data: up to the end of this data range or the next chunk boundary.
                let boundary = (self.pos / self.chunk + 1) * self.chunk;
                let end = r.end.min(boundary);
                let mut data = vec![0u8; (end - self.pos) as usize];
                self.overlay.read_exact_at(&mut data, self.pos)?;
                let offset = self.pos;
                self.pos = end;
                if vmscrub_blockdev::is_zero(&data) {
                    Ok(Some(Segment::Zero {
                        offset,
                        len: end - offset,
                    }))
                } else {
                    Ok(Some(Segment::Data { offset, data }))
                }
            }
        }
    }
}

impl<B: ReadAt> Iterator for Segments<'_, B> {
    type Item = io::Result<Segment>;

    /// Adjacent zero segments are merged, so writers see one hole per gap.
    fn next(&mut self) -> Option<Self::Item> {
        let mut cur = match self.pending.take() {
            Some(s) => s,
            None => match self.next_segment() {
                Ok(Some(s)) => s,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            },
        };
        if let Segment::Zero { len, .. } = &mut cur {
            loop {
                match self.next_segment() {
                    Ok(Some(Segment::Zero { len: l2, .. })) => *len += l2,
                    Ok(Some(other)) => {
                        self.pending = Some(other);
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => return Some(Err(e)),
                }
            }
        }
        Some(Ok(cur))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    /// Deterministic xorshift, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn collect(o: &Overlay<&MemDisk>) -> Vec<u8> {
        let mut out = vec![0u8; o.size() as usize];
        let mut last_end = 0;
        for seg in o.segments(64 * 1024).unwrap() {
            match seg.unwrap() {
                Segment::Zero { offset, len } => {
                    assert_eq!(offset, last_end, "segments are contiguous");
                    last_end = offset + len;
                }
                Segment::Data { offset, data } => {
                    assert_eq!(offset, last_end, "segments are contiguous");
                    assert!(
                        data.iter().any(|&b| b != 0),
                        "all-zero data segment at {offset}"
                    );
                    out[offset as usize..][..data.len()].copy_from_slice(&data);
                    last_end = offset + data.len() as u64;
                }
            }
        }
        assert_eq!(last_end, o.size());
        out
    }

    #[test]
    fn base_is_never_written() {
        let base = MemDisk::new(vec![7u8; 3 * 4096 + 100]);
        let o = Overlay::new(&base);
        o.write_all_at(b"hello", 4094).unwrap();
        o.zero_range(0..4096 * 3 + 100).unwrap();
        o.write_all_at(b"x", 12_000).unwrap();
        assert!(base.to_vec().iter().all(|&b| b == 7));
        let mut b = [0u8; 4];
        o.read_exact_at(&mut b, 11_999).unwrap();
        assert_eq!(b, [0, b'x', 0, 0]);
    }

    #[test]
    fn matches_a_plain_buffer_model() {
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let size = 20_000 + rng.below(50_000) as usize;
            let init: Vec<u8> = (0..size)
                .map(|i| {
                    if (i / 5000) % 3 == 0 {
                        0
                    } else {
                        (i % 251) as u8 + 1
                    }
                })
                .collect();
            let base = MemDisk::new(init.clone());
            let o = Overlay::new(&base);
            let mut model = init.clone();
            for step in 0..200 {
                let a = rng.below(size as u64) as usize;
                let len = (rng.below(12_000) as usize).min(size - a);
                match rng.below(3) {
                    0 => {
                        o.zero_range(a as u64..(a + len) as u64).unwrap();
                        model[a..a + len].fill(0);
                    }
                    1 => {
                        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                        o.write_all_at(&data, a as u64).unwrap();
                        model[a..a + len].copy_from_slice(&data);
                    }
                    _ => {
                        let mut buf = vec![0u8; len];
                        o.read_exact_at(&mut buf, a as u64).unwrap();
                        assert_eq!(
                            buf,
                            model[a..a + len],
                            "seed {seed} step {step} read {a}+{len}"
                        );
                    }
                }
            }
            assert_eq!(collect(&o), model, "seed {seed}: output pass differs");
            assert_eq!(base.to_vec(), init, "seed {seed}: base modified");
            // Allocated ranges must cover every non-zero byte.
            let alloc = o.allocated_ranges().unwrap();
            for (i, &b) in model.iter().enumerate() {
                if b != 0 {
                    assert!(
                        alloc.contains(i as u64),
                        "seed {seed}: non-zero byte {i} not allocated"
                    );
                }
            }
        }
    }

    #[test]
    fn zeroed_ranges_become_holes() {
        let base = MemDisk::new(vec![1u8; 1 << 20]);
        let o = Overlay::new(&base);
        o.zero_range(4096..(1 << 20) - 4096).unwrap();
        let segs: Vec<Segment> = o.segments(1 << 20).unwrap().map(|s| s.unwrap()).collect();
        assert_eq!(segs.len(), 3);
        assert!(matches!(segs[1], Segment::Zero { offset: 4096, len } if len == (1 << 20) - 8192));
        assert_eq!(o.stats().changed_blocks, 0);
        assert_eq!(o.stats().zeroed_bytes, (1 << 20) - 8192);
    }

    #[test]
    fn out_of_range_is_an_error() {
        let base = MemDisk::new(vec![0u8; 100]);
        let o = Overlay::new(&base);
        assert!(o.write_all_at(b"ab", 99).is_err());
        assert!(o.zero_range(50..101).is_err());
        assert!(o.read_exact_at(&mut [0u8; 2], 99).is_err());
    }
}
