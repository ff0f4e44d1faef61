//! Compressing one cluster the way qemu reads it back.
//!
//! **zlib** means raw deflate (no zlib header) with a 4 KiB window, as qemu
//! writes it: qemu declares `windowBits = -12` when it inflates, so a reader
//! built to match may keep only 4 KiB of history. qemu itself inflates a
//! cluster in one call and would follow longer distances, but another reader
//! inflating piecewise would not; a stream qemu could have written is the safe
//! one. Level 6 is zlib's default and qemu's.
//!
//! **zstd** is one frame per cluster at zstd's default level 3, as qemu writes.
//!
//! A cluster is stored compressed only if the stream is shorter than the
//! cluster (qemu's rule too): otherwise it is stored as is, never expanded. A
//! short last cluster is padded with zeros first, since readers expect every
//! compressed cluster to inflate to exactly one cluster.

use flate2::{Compress, Compression, FlushCompress, Status};
use zstd::zstd_safe;

use crate::header::CompressionType;

use super::error::WriteError;

/// zlib's default level, which qemu uses.
pub const DEFAULT_ZLIB_LEVEL: u32 = 6;
/// zstd's default level, which qemu uses.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// qemu inflates with a 2^12-byte window; the deflate window must not be larger.
const ZLIB_WINDOW_BITS: u8 = 12;
const DST_TOO_SMALL: zstd_safe::zstd_sys::ZSTD_ErrorCode =
    zstd_safe::zstd_sys::ZSTD_ErrorCode::ZSTD_error_dstSize_tooSmall;

enum Engine {
    Zlib(Box<Compress>),
    Zstd(zstd_safe::CCtx<'static>, i32),
}

/// One compression context with its scratch buffers; one per worker thread.
pub struct ClusterCompressor {
    engine: Engine,
    cluster_size: usize,
    out: Vec<u8>,
    padded: Vec<u8>,
}

impl ClusterCompressor {
    /// `level`: `None` for qemu's choice (zlib 6, zstd 3); clamped to what the
    /// library accepts.
    pub fn new(
        kind: CompressionType,
        cluster_size: usize,
        level: Option<i32>,
    ) -> Result<Self, WriteError> {
        let engine = match kind {
            CompressionType::Zlib => {
                let level = level.map_or(DEFAULT_ZLIB_LEVEL, |l| l.clamp(0, 9) as u32);
                Engine::Zlib(Box::new(Compress::new_with_window_bits(
                    Compression::new(level),
                    false,
                    ZLIB_WINDOW_BITS,
                )))
            }
            CompressionType::Zstd => {
                let (lo, hi) = (zstd_safe::min_c_level(), zstd_safe::max_c_level());
                let level = level.map_or(DEFAULT_ZSTD_LEVEL, |l| l.clamp(lo, hi));
                let cctx = zstd_safe::CCtx::try_create()
                    .ok_or_else(|| WriteError::Internal("zstd cannot allocate a context".into()))?;
                Engine::Zstd(cctx, level)
            }
            CompressionType::Unknown(t) => return Err(WriteError::CompressionType(t)),
        };
        Ok(ClusterCompressor {
            engine,
            cluster_size,
            // Room for a stream one byte short of the cluster: longer does not pay.
            out: vec![0u8; cluster_size.saturating_sub(1)],
            padded: Vec::new(),
        })
    }

    /// The compressed form of `data` (one cluster, or the short last one), or
    /// `None` when it would not be smaller than the cluster.
    pub fn compress(&mut self, data: &[u8]) -> Result<Option<&[u8]>, WriteError> {
        if data.len() > self.cluster_size {
            return Err(WriteError::Length {
                index: 0,
                len: data.len() as u64,
                why: format!("more than one {}-byte cluster", self.cluster_size),
            });
        }
        let input = if data.len() < self.cluster_size {
            self.padded.clear();
            self.padded.extend_from_slice(data);
            self.padded.resize(self.cluster_size, 0);
            &self.padded[..]
        } else {
            data
        };
        let fail = |why: String| WriteError::Internal(format!("compressing a cluster: {why}"));
        let n = match &mut self.engine {
            Engine::Zlib(z) => {
                z.reset();
                match z.compress(input, &mut self.out, FlushCompress::Finish) {
                    Ok(Status::StreamEnd) => z.total_out() as usize,
                    // The output filled up before the stream ended: it does not pay.
                    Ok(Status::Ok | Status::BufError) => return Ok(None),
                    Err(e) => return Err(fail(e.to_string())),
                }
            }
            Engine::Zstd(cctx, level) => match cctx.compress(&mut self.out[..], input, *level) {
                Ok(n) => n,
                Err(code) if zstd_safe::is_error_kind(code, DST_TOO_SMALL) => return Ok(None),
                Err(code) => return Err(fail(zstd_safe::get_error_name(code).to_string())),
            },
        };
        Ok(Some(&self.out[..n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    #[test]
    fn short_clusters_are_padded_and_incompressible_ones_refused() {
        for kind in [CompressionType::Zlib, CompressionType::Zstd] {
            let mut c = ClusterCompressor::new(kind, 4096, None).unwrap();
            let z = c.compress(b"tail of the disk").unwrap().unwrap().to_vec();
            let mut full = vec![0u8; 4096];
            match kind {
                CompressionType::Zlib => {
                    let mut d = Decompress::new(false);
                    d.decompress(&z, &mut full, FlushDecompress::Finish)
                        .unwrap();
                    assert_eq!(d.total_out(), 4096);
                }
                _ => {
                    let n = zstd_safe::decompress(&mut full[..], &z).unwrap();
                    assert_eq!(n, 4096);
                }
            }
            assert_eq!(&full[..16], b"tail of the disk");
            assert!(full[16..].iter().all(|&b| b == 0));
            let mut x = 1u32;
            let noise: Vec<u8> = (0..4096)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 24) as u8
                })
                .collect();
            assert_eq!(c.compress(&noise).unwrap(), None, "{kind:?}");
            assert!(c.compress(&vec![1u8; 4097]).is_err());
        }
        assert!(ClusterCompressor::new(CompressionType::Unknown(7), 4096, None).is_err());
    }
}
