//! Streaming a file's content: reads follow the chain's runs, so a contiguous file
//! is read in as few device reads as the caller's buffer allows.

use std::io::{self, Read};
use std::ops::Range;

use vmscrub_blockdev::ReadAt;

use crate::bpb::Geometry;

/// Where a part of a file lies: `len` bytes at file offset `file_offset` are at
/// device offset `device_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub file_offset: u64,
    pub device_offset: u64,
    pub len: u64,
}

/// The extents holding the first `size` bytes of a chain whose clusters are given
/// as runs (the caller checked the chain is long enough).
pub(crate) fn extents(g: &Geometry, runs: &[Range<u32>], size: u64) -> Vec<Extent> {
    let mut out = Vec::new();
    let mut file_offset = 0u64;
    for r in runs {
        if file_offset >= size {
            break;
        }
        let bytes = (r.end - r.start) as u64 * g.cluster_size as u64;
        let len = bytes.min(size - file_offset);
        out.push(Extent {
            file_offset,
            device_offset: g.cluster_offset(r.start),
            len,
        });
        file_offset += len;
    }
    out
}

/// A file's bytes as a stream. Created by [`crate::FatFs::open_file`].
pub struct FileReader<'a, D: ?Sized> {
    pub(crate) dev: &'a D,
    pub(crate) extents: Vec<Extent>,
    pub(crate) size: u64,
    pub(crate) pos: u64,
    /// Index of the extent holding `pos`.
    pub(crate) at: usize,
}

impl<D: ReadAt + ?Sized> FileReader<'_, D> {
    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

impl<D: ReadAt + ?Sized> Read for FileReader<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        while let Some(e) = self.extents.get(self.at) {
            if self.pos < e.file_offset + e.len {
                break;
            }
            self.at += 1;
        }
        let Some(e) = self.extents.get(self.at) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "file is longer than its cluster chain",
            ));
        };
        let within = self.pos - e.file_offset;
        let n = (e.len - within).min(buf.len() as u64) as usize;
        self.dev
            .read_exact_at(&mut buf[..n], e.device_offset + within)?;
        self.pos += n as u64;
        Ok(n)
    }
}
