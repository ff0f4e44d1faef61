//! Reading compressed grains (stream-optimized extents).
//!
//! Each allocated grain-table entry points at a grain marker (LBA + compressed
//! size) followed by one zlib stream. For speed on whole-disk reads:
//! - compressed bytes come through a read-ahead window sized from what is left of
//!   the caller's request, so consecutive grains cost one host read, not one each;
//! - a whole grain the caller wants is inflated straight into the caller's buffer;
//! - inflaters, windows and grain buffers live in a small pool of scratch sets that
//!   are reused across calls (and used by concurrent readers without contention);
//! - the last few grains inflated for partial reads are cached, since small
//!   sequential reads (a filesystem walking 4 KiB blocks) hit the same grain again.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Mutex;

use flate2::{Decompress, FlushDecompress, Status};
use vmscrub_blockdev::ReadAt;

use crate::error::{Result, VmdkError};
use crate::header::SECTOR;
use crate::marker::{GRAIN_MARKER_LEN, Marker};
use crate::sparse::{Grain, SparseExtent, describe};

/// Largest read-ahead; a request's remaining size decides below that.
const MAX_READAHEAD: u64 = 8 << 20;
/// Bytes of inflated grains kept for partial reads.
const GRAIN_CACHE_BYTES: u64 = 1 << 20;
const MAX_POOLED_SCRATCH: usize = 8;

pub(crate) struct StreamState {
    grain_bytes: usize,
    pool: Mutex<Vec<Scratch>>,
    cache: Mutex<GrainCache>,
}

struct Scratch {
    inflater: Decompress,
    window: Window,
    /// One grain's worth of output for partial reads.
    grain: Vec<u8>,
}

/// A buffered span `[start, start+len)` of the extent file.
#[derive(Default)]
struct Window {
    buf: Vec<u8>,
    start: u64,
    len: usize,
}

struct GrainCache {
    /// (grain index, inflated bytes); most recent last.
    entries: VecDeque<(u64, Vec<u8>)>,
    capacity: usize,
}

impl StreamState {
    pub(crate) fn new(grain_bytes: u64) -> Self {
        let capacity = (GRAIN_CACHE_BYTES / grain_bytes).clamp(1, 16) as usize;
        Self {
            grain_bytes: grain_bytes as usize,
            pool: Mutex::new(Vec::new()),
            cache: Mutex::new(GrainCache {
                entries: VecDeque::new(),
                capacity,
            }),
        }
    }

    fn take(&self) -> Scratch {
        if let Some(s) = self.pool.lock().ok().and_then(|mut p| p.pop()) {
            return s;
        }
        Scratch {
            inflater: Decompress::new(true),
            window: Window::default(),
            grain: vec![0; self.grain_bytes],
        }
    }

    fn give(&self, s: Scratch) {
        if let Ok(mut p) = self.pool.lock()
            && p.len() < MAX_POOLED_SCRATCH
        {
            p.push(s);
        }
    }

    /// Copies `out.len()` bytes at `in_grain` of cached grain `g`, if cached.
    fn cached(&self, g: u64, in_grain: usize, out: &mut [u8]) -> bool {
        let Ok(c) = self.cache.lock() else {
            return false;
        };
        match c.entries.iter().find(|(k, _)| *k == g) {
            Some((_, data)) => match data.get(in_grain..in_grain + out.len()) {
                Some(src) => {
                    out.copy_from_slice(src);
                    true
                }
                None => false,
            },
            None => false,
        }
    }

    /// Stores an inflated grain; returns a buffer to reuse (an evicted one).
    fn put(&self, g: u64, data: Vec<u8>) -> Vec<u8> {
        let Ok(mut c) = self.cache.lock() else {
            return data;
        };
        c.entries.retain(|(k, _)| *k != g);
        c.entries.push_back((g, data));
        if c.entries.len() > c.capacity
            && let Some((_, old)) = c.entries.pop_front()
        {
            return old;
        }
        vec![0; self.grain_bytes]
    }
}

impl Window {
    /// At least `need` bytes at `off` (more if buffered), reading `want` bytes ahead
    /// when they are not already here. `None` if the file ends before `off+need`.
    fn get(
        &mut self,
        file: &dyn ReadAt,
        off: u64,
        need: usize,
        want: u64,
    ) -> Option<std::io::Result<&[u8]>> {
        let end = off.checked_add(need as u64)?;
        if off >= self.start && end <= self.start + self.len as u64 {
            let from = (off - self.start) as usize;
            return Some(Ok(&self.buf[from..self.len]));
        }
        let size = file.size();
        if end > size {
            return None;
        }
        let n = (need as u64).max(want).min(size - off) as usize;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        self.len = 0;
        if let Err(e) = file.read_exact_at(&mut self.buf[..n], off) {
            return Some(Err(e));
        }
        self.start = off;
        self.len = n;
        Some(Ok(&self.buf[..n]))
    }
}

/// Inflates one zlib stream from `input` into `out`; the number of bytes produced,
/// or why it failed. Never writes past `out` and never loops.
fn inflate(d: &mut Decompress, input: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    d.reset(true);
    match d.decompress(input, out, FlushDecompress::Finish) {
        Err(e) => Err(format!("does not inflate ({e})")),
        Ok(Status::StreamEnd) => Ok(d.total_out() as usize),
        Ok(_) if d.total_out() as usize == out.len() => {
            // Output full: either the stream ends exactly here or it holds more.
            let used = (d.total_in() as usize).min(input.len());
            let mut extra = [0u8; 1];
            match d.decompress(&input[used..], &mut extra, FlushDecompress::Finish) {
                Ok(Status::StreamEnd) if d.total_out() as usize == out.len() => Ok(out.len()),
                Err(e) => Err(format!("does not inflate ({e})")),
                Ok(_) if d.total_out() as usize > out.len() => Err(format!(
                    "inflates to more than the {}-byte grain",
                    out.len()
                )),
                Ok(_) => Err("compressed data ends before its deflate stream does".into()),
            }
        }
        Ok(_) => Err(format!(
            "compressed data ends before its deflate stream does (after {} bytes of output)",
            d.total_out()
        )),
    }
}

impl SparseExtent {
    pub(crate) fn read_compressed(&self, buf: &mut [u8], off: u64) -> Result<()> {
        let Some(st) = self.stream.as_ref() else {
            return Err(VmdkError::corrupt(
                format!("extent {}", self.name),
                None,
                "no stream state",
            ));
        };
        let mut scratch = st.take();
        let len = buf.len();
        let gb = self.layout.grain_bytes as usize;
        let res = self.walk(off, len, |g, in_grain, r: Range<usize>, grain| {
            let sector = match grain {
                Grain::Unallocated | Grain::Zero => {
                    buf[r].fill(0);
                    return Ok(());
                }
                Grain::At(s) => s,
            };
            let glen = self.grain_len(g) as usize;
            let hint = (len - r.start) as u64;
            if in_grain == 0 && r.len() == gb {
                // A whole full-size grain: inflate in place.
                return self.inflate_grain(&mut scratch, g, sector, &mut buf[r], hint, gb);
            }
            let in_grain = in_grain as usize;
            if st.cached(g, in_grain, &mut buf[r.clone()]) {
                return Ok(());
            }
            let mut out = std::mem::take(&mut scratch.grain);
            out.resize(gb, 0);
            let res = self.inflate_grain(&mut scratch, g, sector, &mut out, hint, glen);
            if res.is_ok() {
                buf[r.clone()].copy_from_slice(&out[in_grain..in_grain + r.len()]);
                scratch.grain = st.put(g, out);
            } else {
                scratch.grain = out;
            }
            res
        });
        st.give(scratch);
        res
    }

    /// Inflates grain `g` stored at `sector` into `out` (one grain long); `expect`
    /// is how many bytes it must produce (less than a grain only for the last grain
    /// of an extent whose capacity is not a multiple of the grain size).
    fn inflate_grain(
        &self,
        scratch: &mut Scratch,
        g: u64,
        sector: u64,
        out: &mut [u8],
        hint: u64,
        expect: usize,
    ) -> Result<()> {
        let gb = self.layout.grain_bytes;
        let at = sector * SECTOR;
        let file = &*self.file;
        let size = file.size();
        let want = (hint + hint / 8 + 4096).clamp(gb + 4096, MAX_READAHEAD);
        let what = || format!("grain {g} (virtual byte {}) of {}", g * gb, self.name);
        let past_end = |n: u64| {
            VmdkError::corrupt(
                what(),
                Some(at),
                format!("{n} bytes there reach past the end of the {size}-byte file"),
            )
        };
        let io = |e| VmdkError::io(format!("reading {}", what()), e);
        let (data_at, data_len) = if self.layout.markers {
            let need = GRAIN_MARKER_LEN;
            let head = scratch
                .window
                .get(file, at, need, want)
                .ok_or_else(|| past_end(need as u64))?
                .map_err(io)?;
            match Marker::parse(head) {
                Some(Marker::Grain { lba, size: csize }) => {
                    let expect_lba = g * (gb / SECTOR);
                    if lba != expect_lba {
                        return Err(VmdkError::corrupt(
                            what(),
                            Some(at),
                            format!(
                                "grain marker says LBA {lba}, but the grain table maps LBA {expect_lba} here"
                            ),
                        ));
                    }
                    if u64::from(csize) > 2 * gb {
                        return Err(VmdkError::corrupt(
                            what(),
                            Some(at),
                            format!(
                                "grain marker claims {csize} compressed bytes for a {gb}-byte grain"
                            ),
                        ));
                    }
                    (at + GRAIN_MARKER_LEN as u64, csize as usize)
                }
                other => {
                    return Err(VmdkError::corrupt(
                        what(),
                        Some(at),
                        format!(
                            "the grain table points at {} instead of a grain marker",
                            describe(other)
                        ),
                    ));
                }
            }
        } else {
            // No marker: the zlib stream ends itself; give it up to two grains.
            (at, (2 * gb).min(size.saturating_sub(at)) as usize)
        };
        let data = scratch
            .window
            .get(file, data_at, data_len, want)
            .ok_or_else(|| past_end(data_len as u64))?
            .map_err(io)?;
        let produced = inflate(&mut scratch.inflater, &data[..data_len], out).map_err(|why| {
            VmdkError::corrupt(what(), Some(at), format!("compressed grain {why}"))
        })?;
        if produced != expect && !(expect < out.len() && produced == out.len()) {
            return Err(VmdkError::corrupt(
                what(),
                Some(at),
                format!("compressed grain inflates to {produced} bytes, expected {expect}"),
            ));
        }
        Ok(())
    }
}
