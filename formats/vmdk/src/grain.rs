//! Grains on the way out: assembling `write_data` calls into whole grains, telling
//! all-zero grains apart, and compressing a grain into a stream record.
//!
//! Compression is a separate, self-contained step ([`GrainCompressor`]) so that a
//! caller can run it on many threads (`vmscrub-parmap`) and hand the finished
//! records to [`crate::StreamWriter::write_compressed`] in order.

use std::io;

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::header::SECTOR;
use crate::marker::{GRAIN_MARKER_LEN, Marker};

/// The grain size every writer here uses: 128 sectors (64 KiB), what VMware and
/// qemu write and what every importer expects.
pub const GRAIN_SECTORS: u64 = 128;
pub const GRAIN_BYTES: u64 = GRAIN_SECTORS * SECTOR;
/// Grain-table entries per grain table (fixed by the spec).
pub const GTES_PER_GT: u32 = 512;

pub use vmscrub_blockdev::is_zero;

/// One grain of a stream, ready to be appended: its index and either nothing (the
/// grain is all zeros and is not stored) or its record — grain marker, zlib stream,
/// zero padding to a whole sector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedGrain {
    pub index: u64,
    pub record: Option<Vec<u8>>,
}

/// Compresses grains for a stream-optimized extent. Holds a zlib compressor that is
/// reused grain after grain; make one per thread.
///
/// The VMDK format has no "stored uncompressed" escape for a grain of a compressed
/// extent, so incompressible data is stored in a zlib stream anyway: deflate then
/// falls back to stored blocks by itself, costing about 11 bytes over the grain
/// (marker and padding included, at most one sector more than the raw grain).
pub struct GrainCompressor {
    z: Compress,
}

impl std::fmt::Debug for GrainCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrainCompressor").finish_non_exhaustive()
    }
}

impl Default for GrainCompressor {
    fn default() -> Self {
        Self::new(DEFAULT_LEVEL)
    }
}

/// zlib level 6, the zlib default that qemu-img and VMware use: outputs of similar
/// size, and all cores make up for the time.
pub const DEFAULT_LEVEL: u32 = 6;

impl GrainCompressor {
    /// `level` 0–9 as zlib (values above 9 are clamped).
    pub fn new(level: u32) -> Self {
        Self {
            z: Compress::new(Compression::new(level.min(9)), true),
        }
    }

    /// Encodes grain `index` whose bytes are `data` (one grain, or less for the
    /// last grain of the disk: it is padded with zeros to a whole grain, so every
    /// grain inflates to the grain size as readers expect).
    pub fn compress(&mut self, index: u64, data: &[u8]) -> io::Result<EncodedGrain> {
        if data.len() as u64 > GRAIN_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("grain {index} is {} bytes, more than a grain", data.len()),
            ));
        }
        if is_zero(data) {
            return Ok(EncodedGrain {
                index,
                record: None,
            });
        }
        let padded;
        let input: &[u8] = if data.len() as u64 == GRAIN_BYTES {
            data
        } else {
            let mut p = vec![0u8; GRAIN_BYTES as usize];
            p[..data.len()].copy_from_slice(data);
            padded = p;
            &padded
        };
        // Stored blocks cost 5 bytes per 64 KiB block plus the zlib header and
        // trailer: a grain plus 64 bytes always suffices; the loop is a safeguard.
        let mut out = vec![0u8; GRAIN_MARKER_LEN + input.len() + 64];
        self.z.reset();
        let mut produced = 0usize;
        loop {
            let before_in = self.z.total_in() as usize;
            let before_out = self.z.total_out() as usize;
            let status = self
                .z
                .compress(
                    &input[before_in..],
                    &mut out[GRAIN_MARKER_LEN + produced..],
                    FlushCompress::Finish,
                )
                .map_err(|e| io::Error::other(format!("deflate of grain {index} failed: {e}")))?;
            produced += self.z.total_out() as usize - before_out;
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {
                    if GRAIN_MARKER_LEN + produced == out.len() {
                        out.resize(out.len() + 4096, 0);
                    } else if self.z.total_out() as usize == before_out
                        && self.z.total_in() as usize == before_in
                    {
                        return Err(io::Error::other(format!(
                            "deflate of grain {index} made no progress"
                        )));
                    }
                }
            }
        }
        let size = u32::try_from(produced).map_err(|_| {
            io::Error::other(format!("compressed grain {index} does not fit a marker"))
        })?;
        let marker = Marker::Grain {
            lba: index * GRAIN_SECTORS,
            size,
        }
        .serialize();
        out[..GRAIN_MARKER_LEN].copy_from_slice(&marker);
        let total = (GRAIN_MARKER_LEN + produced).next_multiple_of(SECTOR as usize);
        out.resize(total, 0);
        Ok(EncodedGrain {
            index,
            record: Some(out),
        })
    }
}

/// Turns `write_data(offset, data)` calls in increasing offset order into whole
/// grains. Aligned whole grains in the input are passed through without copying;
/// partial ones are collected in one buffer (gaps read as zeros).
#[derive(Debug)]
pub(crate) struct GrainAssembler {
    capacity: u64,
    /// Grain being collected and its bytes (one grain long).
    pending: Option<(u64, Vec<u8>)>,
    /// Lowest offset the next write may start at.
    next: u64,
}

impl GrainAssembler {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            capacity,
            pending: None,
            next: 0,
        }
    }

    /// Bytes of grain `g` inside the capacity.
    fn grain_len(&self, g: u64) -> usize {
        (self.capacity - g * GRAIN_BYTES).min(GRAIN_BYTES) as usize
    }

    /// Feeds data; `emit(grain, bytes)` is called for each completed grain in
    /// order (`bytes` is the grain's length inside the capacity).
    pub(crate) fn push(
        &mut self,
        offset: u64,
        data: &[u8],
        emit: &mut dyn FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= self.capacity)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "write of {} bytes at {offset} is past the end of the {}-byte disk",
                        data.len(),
                        self.capacity
                    ),
                )
            })?;
        if offset < self.next {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "writes must come in increasing offset order: {offset} after {}",
                    self.next
                ),
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.next = end;
        let mut pos = offset;
        while pos < end {
            let g = pos / GRAIN_BYTES;
            let in_grain = (pos % GRAIN_BYTES) as usize;
            let glen = self.grain_len(g);
            let n = (glen - in_grain).min((end - pos) as usize);
            let src = &data[(pos - offset) as usize..][..n];
            if self.pending.as_ref().is_some_and(|(pg, _)| *pg != g) {
                self.flush(emit)?;
            }
            if in_grain == 0 && n == glen && self.pending.is_none() {
                emit(g, src)?;
            } else {
                let (_, buf) = self.pending.get_or_insert_with(|| (g, vec![0u8; glen]));
                buf[in_grain..in_grain + n].copy_from_slice(src);
                if in_grain + n == glen {
                    self.flush(emit)?;
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    /// Emits the grain being collected, if any.
    pub(crate) fn flush(
        &mut self,
        emit: &mut dyn FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        if let Some((g, buf)) = self.pending.take() {
            emit(g, &buf)?;
        }
        Ok(())
    }

    /// Whole grains passed on elsewhere (`write_compressed`, `write_grain`): later
    /// `push` calls may not go back before `offset`.
    pub(crate) fn advance_to(&mut self, offset: u64) {
        self.next = self.next.max(offset);
    }

    pub(crate) fn pending_grain(&self) -> Option<u64> {
        self.pending.as_ref().map(|(g, _)| *g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_grains_inflate_back() {
        let mut c = GrainCompressor::default();
        let mut x = 1u32;
        let random: Vec<u8> = (0..GRAIN_BYTES)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for (data, full) in [
            (random.clone(), true),
            (vec![7u8; GRAIN_BYTES as usize], true),
            (random[..3584].to_vec(), false),
        ] {
            let g = c.compress(5, &data).unwrap();
            let rec = g.record.unwrap();
            assert_eq!(rec.len() % 512, 0);
            let Some(Marker::Grain { lba, size }) = Marker::parse(&rec) else {
                panic!("no grain marker")
            };
            assert_eq!(lba, 5 * GRAIN_SECTORS);
            let mut d = flate2::Decompress::new(true);
            let mut out = vec![0u8; GRAIN_BYTES as usize + 1];
            d.decompress(
                &rec[12..12 + size as usize],
                &mut out,
                flate2::FlushDecompress::Finish,
            )
            .unwrap();
            assert_eq!(d.total_out(), GRAIN_BYTES);
            assert_eq!(&out[..data.len()], &data[..]);
            assert!(is_zero(&out[data.len()..GRAIN_BYTES as usize]));
            if full && data == random {
                // Incompressible: stored blocks, at most one sector over the grain.
                assert!(rec.len() as u64 <= GRAIN_BYTES + 512, "{}", rec.len());
            }
        }
        assert_eq!(c.compress(9, &[0u8; 100]).unwrap().record, None);
        assert!(c.compress(0, &vec![1u8; GRAIN_BYTES as usize + 1]).is_err());
    }

    #[test]
    fn assembler_emits_whole_grains_in_order() {
        let cap = 3 * GRAIN_BYTES + 1000;
        let mut a = GrainAssembler::new(cap);
        let mut got: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut emit = |g: u64, b: &[u8]| {
            got.push((g, b.to_vec()));
            Ok(())
        };
        a.push(10, &[1, 2, 3], &mut emit).unwrap();
        a.push(GRAIN_BYTES - 1, &[9, 9], &mut emit).unwrap();
        a.push(2 * GRAIN_BYTES, &vec![5u8; GRAIN_BYTES as usize], &mut emit)
            .unwrap();
        a.push(cap - 1, &[4], &mut emit).unwrap();
        assert!(a.push(cap, &[1], &mut emit).is_err());
        assert!(a.push(5, &[1], &mut emit).is_err());
        a.flush(&mut emit).unwrap();
        let idx: Vec<u64> = got.iter().map(|(g, _)| *g).collect();
        assert_eq!(idx, vec![0, 1, 2, 3]);
        assert_eq!(&got[0].1[10..13], &[1, 2, 3]);
        assert_eq!(got[0].1[GRAIN_BYTES as usize - 1], 9);
        assert_eq!(got[1].1[0], 9);
        assert_eq!(got[3].1.len(), 1000);
        assert_eq!(got[3].1[999], 4);
    }
}
