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

use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Clusters inflated so far (tests check the cache with it).
    inflated: AtomicU64,
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
            inflated: AtomicU64::new(0),
        }
    }

    #[cfg(test)]
    fn inflated(&self) -> u64 {
        self.inflated.load(Ordering::Relaxed)
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
            if set.entries.len() >= self.recent_capacity
                && let Some(i) = set
                    .entries
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.tick)
                    .map(|(i, _)| i)
            {
                set.entries.swap_remove(i);
            }
            set.tick += 1;
            let tick = set.tick;
            set.entries.push(Recent { key, data, tick });
        }
        Ok(())
    }

    /// Inflates compressed cluster `c` into `out`, which is exactly one cluster.
    fn inflate<F: ReadAt + ?Sized>(&self, file: &F, c: Compressed, out: &mut [u8]) -> Result<()> {
        self.inflated.fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    const CS: usize = 4096;

    fn cluster(seed: u8) -> Vec<u8> {
        (0..CS)
            .map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 7) as u8)
            .collect()
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut c = flate2::Compress::new(flate2::Compression::default(), false);
        let mut out = vec![0u8; data.len() + 1024];
        c.compress(data, &mut out, flate2::FlushCompress::Finish)
            .unwrap();
        out.truncate(c.total_out() as usize);
        out
    }

    /// A file holding `streams` back to back from offset 512; returns it and where each is.
    fn file_with(streams: &[Vec<u8>]) -> (MemDisk, Vec<Compressed>) {
        let mut bytes = vec![0u8; 512];
        let mut at = Vec::new();
        for (i, s) in streams.iter().enumerate() {
            at.push(Compressed {
                guest: (i * CS) as u64,
                host: bytes.len() as u64,
                len: s.len() as u64,
            });
            bytes.extend_from_slice(s);
        }
        (MemDisk::new(bytes), at)
    }

    #[test]
    fn small_sequential_reads_inflate_each_cluster_once() {
        let (a, b) = (cluster(3), cluster(7));
        let (file, at) = file_with(&[deflate(&a), deflate(&b)]);
        let inf = Inflater::new(CompressionType::Zlib, CS, 1);
        let mut out = vec![0u8; 256];
        for i in 0..CS / 256 {
            inf.read(&file, at[0], i * 256, &mut out).unwrap();
            assert_eq!(out, a[i * 256..(i + 1) * 256]);
        }
        assert_eq!(inf.inflated(), 1);
        // A one-slot cache alternating between two clusters inflates every time.
        inf.read(&file, at[1], 100, &mut out).unwrap();
        assert_eq!(out, b[100..356]);
        inf.read(&file, at[0], 0, &mut out).unwrap();
        assert_eq!(inf.inflated(), 3);
        // A whole-cluster read goes straight to the caller, bypassing the cache.
        let mut whole = vec![0u8; CS];
        inf.read(&file, at[1], 0, &mut whole).unwrap();
        assert_eq!(whole, b);
        assert_eq!(inf.inflated(), 4);
    }

    #[test]
    fn trailing_bytes_after_the_stream_are_ignored() {
        let a = cluster(5);
        let mut z = deflate(&a);
        z.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut zs = zstd::bulk::compress(&a, 3).unwrap();
        zs.extend_from_slice(&[0xde, 0xad]);
        for (kind, stream) in [(CompressionType::Zlib, z), (CompressionType::Zstd, zs)] {
            let (file, at) = file_with(&[stream]);
            let mut out = vec![0u8; CS];
            Inflater::new(kind, CS, 0)
                .read(&file, at[0], 0, &mut out)
                .unwrap();
            assert_eq!(out, a, "{kind:?}");
        }
    }

    #[test]
    fn a_zstd_cluster_may_be_several_frames() {
        let a = cluster(9);
        let mut two = zstd::bulk::compress(&a[..1000], 1).unwrap();
        two.extend(zstd::bulk::compress(&a[1000..], 1).unwrap());
        let (file, at) = file_with(&[two]);
        let mut out = vec![0u8; CS];
        Inflater::new(CompressionType::Zstd, CS, 0)
            .read(&file, at[0], 0, &mut out)
            .unwrap();
        assert_eq!(out, a);
    }

    #[test]
    fn short_streams_and_streams_past_eof_are_errors() {
        let a = cluster(11);
        let (file, at) = file_with(&[deflate(&a[..CS - 1])]);
        let mut out = vec![0u8; CS];
        let err = Inflater::new(CompressionType::Zlib, CS, 0)
            .read(&file, at[0], 0, &mut out)
            .unwrap_err();
        assert!(err.to_string().contains("inflates to 4095 bytes"), "{err}");
        // The descriptor's length may run past EOF (the last cluster); the start may not.
        let z = deflate(&a);
        let (file, mut at) = file_with(&[z]);
        at[0].len += 3000;
        Inflater::new(CompressionType::Zlib, CS, 0)
            .read(&file, at[0], 0, &mut out)
            .unwrap();
        assert_eq!(out, a);
        at[0].host = file.size();
        let err = Inflater::new(CompressionType::Zlib, CS, 0)
            .read(&file, at[0], 0, &mut out)
            .unwrap_err();
        assert!(
            err.to_string().contains("past the end of the file"),
            "{err}"
        );
    }

    #[test]
    fn two_threads_inflate_at_once() {
        let clusters: Vec<Vec<u8>> = (1..=8).map(cluster).collect();
        let (file, at) = file_with(
            &clusters
                .iter()
                .map(|c| zstd::bulk::compress(c, 1).unwrap())
                .collect::<Vec<_>>(),
        );
        let inf = Inflater::new(CompressionType::Zstd, CS, 2);
        std::thread::scope(|s| {
            for t in 0..2 {
                let (inf, file, at, clusters) = (&inf, &file, &at, &clusters);
                s.spawn(move || {
                    let mut out = vec![0u8; 300];
                    for round in 0..50 {
                        let i = (round * 3 + t) % 8;
                        inf.read(file, at[i], 17, &mut out).unwrap();
                        assert_eq!(out, clusters[i][17..317]);
                    }
                });
            }
        });
    }
}
