//! Compressed clusters: reading the compressed bytes, inflating them (raw deflate or
//! zstd) to exactly one cluster, and a small cache of recently inflated clusters.
//!
//! Decompressor contexts (and their input buffers) live in a pool: a thread takes
//! one, inflates without holding any lock, and puts it back. So two threads reading
//! disjoint ranges of a compressed image inflate in parallel, and a long sequential
//! read allocates nothing per cluster.
//!
//! Acceptance matches qemu: the stream must produce a full cluster; bytes after
//! that (the tail of the last 512-byte sector, possibly the start of the next
//! compressed cluster) are ignored. A zstd stream may consist of several frames.
//! The descriptor's sector count may run past the end of the file for the last
//! compressed cluster (qemu reads zeros there); we read up to the end of the file,
//! and a stream that needed those bytes fails to produce a full cluster.

use std::sync::{Mutex, MutexGuard};

use flate2::{Decompress, FlushDecompress};
use vmscrub_blockdev::ReadAt;
use zstd::zstd_safe;

use crate::error::{Error, Result};
use crate::header::CompressionType;

/// One decompression context and its input buffer.
#[derive(Default)]
struct Ctx {
    zlib: Option<Decompress>,
    zstd: Option<zstd_safe::DCtx<'static>>,
    input: Vec<u8>,
}

/// A recently inflated cluster, keyed by its host descriptor.
struct Recent {
    key: (u64, u64),
    data: Vec<u8>,
    tick: u64,
}

struct RecentSet {
    entries: Vec<Recent>,
    tick: u64,
}

/// Where a compressed cluster is, for reading and for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Compressed {
    /// Guest offset of the cluster's first byte.
    pub guest: u64,
    pub host: u64,
    pub len: u64,
}

pub struct Inflater {
    kind: CompressionType,
    cluster_size: usize,
    pool: Mutex<Vec<Ctx>>,
    recent: Mutex<RecentSet>,
    recent_capacity: usize,
}

/// Contexts kept for reuse; more concurrent readers than this just create more.
const POOL_MAX: usize = 16;

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inflater {
    pub fn new(kind: CompressionType, cluster_size: usize, recent_capacity: usize) -> Self {
        Inflater {
            kind,
            cluster_size,
            pool: Mutex::new(Vec::new()),
            recent: Mutex::new(RecentSet {
                entries: Vec::new(),
                tick: 0,
            }),
            recent_capacity,
        }
    }

    /// Reads `out.len()` bytes starting `within` bytes into the compressed cluster `c`.
    pub fn read<F: ReadAt + ?Sized>(
        &self,
        file: &F,
        c: Compressed,
        within: usize,
        out: &mut [u8],
    ) -> Result<()> {
        let key = (c.host, c.len);
        let end = within + out.len();
        debug_assert!(end <= self.cluster_size);
        if self.recent_capacity > 0 {
            let mut set = relock(&self.recent);
            set.tick += 1;
            let tick = set.tick;
            if let Some(hit) = set.entries.iter_mut().find(|e| e.key == key) {
                hit.tick = tick;
                out.copy_from_slice(&hit.data[within..end]);
                return Ok(());
            }
        }
        if out.len() == self.cluster_size || self.recent_capacity == 0 {
            // A whole cluster goes straight into the caller's buffer: large sequential
            // reads never touch the cache.
            if out.len() == self.cluster_size {
                return self.inflate(file, c, out);
            }
            let mut tmp = vec![0u8; self.cluster_size];
            self.inflate(file, c, &mut tmp)?;
            out.copy_from_slice(&tmp[within..end]);
            return Ok(());
        }
        // Partial read: inflate into a cache slot (reusing the evicted one's memory).
        let mut data = {
            let mut set = relock(&self.recent);
            if set.entries.len() >= self.recent_capacity {
                let oldest = set
                    .entries
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.tick)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                set.entries.swap_remove(oldest).data
            } else {
                vec![0u8; self.cluster_size]
            }
        };
        self.inflate(file, c, &mut data)?;
        out.copy_from_slice(&data[within..end]);
        let mut set = relock(&self.recent);
        if set.entries.iter().all(|e| e.key != key) {
            if set.entries.len() >= self.recent_capacity {
                if let Some(i) = set
                    .entries
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.tick)
                    .map(|(i, _)| i)
                {
                    set.entries.swap_remove(i);
                }
            }
            set.tick += 1;
            let tick = set.tick;
            set.entries.push(Recent { key, data, tick });
        }
        Ok(())
    }

    /// Inflates compressed cluster `c` into `out`, which is exactly one cluster.
    fn inflate<F: ReadAt + ?Sized>(&self, file: &F, c: Compressed, out: &mut [u8]) -> Result<()> {
        let file_size = file.size();
        let fail = |why: String| Error::Decompress {
            guest: c.guest,
            host: c.host,
            len: c.len,
            compression: self.kind.name(),
            why,
        };
        if c.host >= file_size {
            return Err(Error::PastEof {
                what: format!("compressed cluster for guest offset {:#x}", c.guest),
                offset: c.host,
                len: c.len,
                file_size,
            });
        }
        // `len` ≤ 2 clusters (the descriptor's sector count is cluster_bits - 8 bits).
        let avail = c.len.min(file_size - c.host) as usize;
        let mut ctx = relock(&self.pool).pop().unwrap_or_default();
        ctx.input.clear();
        ctx.input.resize(avail, 0);
        let result = match file.read_exact_at(&mut ctx.input, c.host) {
            Err(e) => Err(Error::io(
                format!("compressed cluster at file offset {:#x}", c.host),
                e,
            )),
            Ok(()) => match self.kind {
                CompressionType::Zlib => inflate_zlib(&mut ctx, out),
                CompressionType::Zstd => inflate_zstd(&mut ctx, out),
                CompressionType::Unknown(t) => Err(format!("unknown compression type {t}")),
            }
            .map_err(fail),
        };
        let mut pool = relock(&self.pool);
        if pool.len() < POOL_MAX {
            pool.push(ctx);
        }
        result
    }
}

fn inflate_zlib(ctx: &mut Ctx, out: &mut [u8]) -> Result<(), String> {
    let d = ctx.zlib.get_or_insert_with(|| Decompress::new(false));
    d.reset(false);
    d.decompress(&ctx.input, out, FlushDecompress::Finish)
        .map_err(|e| format!("does not inflate: {e}"))?;
    let produced = d.total_out();
    if produced != out.len() as u64 {
        return Err(format!(
            "inflates to {produced} bytes, expected a full cluster of {}",
            out.len()
        ));
    }
    Ok(())
}

fn inflate_zstd(ctx: &mut Ctx, out: &mut [u8]) -> Result<(), String> {
    let d = ctx.zstd.get_or_insert_with(zstd_safe::DCtx::create);
    let input = &ctx.input[..];
    let (mut at_in, mut at_out) = (0usize, 0usize);
    // Frame by frame until the cluster is full; each frame consumes input, so this
    // ends. A frame that would overflow the cluster fails (dst too small).
    while at_out < out.len() {
        let rest = &input[at_in..];
        if rest.is_empty() {
            return Err(format!(
                "the data ends after {at_out} of {} bytes",
                out.len()
            ));
        }
        let frame = zstd_safe::find_frame_compressed_size(rest).map_err(|code| {
            format!(
                "no complete zstd frame at byte {at_in} of the data: {}",
                zstd_safe::get_error_name(code)
            )
        })?;
        let n = d
            .decompress(&mut out[at_out..], &rest[..frame])
            .map_err(|code| {
                format!(
                    "zstd frame at byte {at_in} does not decompress: {}",
                    zstd_safe::get_error_name(code)
                )
            })?;
        at_in += frame;
        at_out += n;
    }
    Ok(())
}
