//! Positioned I/O over virtual disks.
//!
//! Every layer of vmscrub — container readers (raw, qcow2, VMDK), the overlay that holds
//! a scrub's changes, partition slices and filesystem code — talks to the layer below
//! through the two traits here. They take `&self` so that one opened image can be
//! shared between threads (the scanner reads files on all cores) and between the
//! filesystems of its partitions without locking at this level; implementations that
//! keep caches use interior mutability.
//!
//! Reads are exact: a read that reaches past [`ReadAt::size`] is an error, never a
//! short read, so a parser never mistakes a truncated image for zeros.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod confine;
mod cursor;
mod file;
mod mem;
mod ranges;
mod slice;
mod staged;

use std::io;
use std::ops::Range;
use std::sync::Arc;

pub use confine::{ConfineError, resolve_named_file};
pub use cursor::Cursor;
pub use file::FileDisk;
pub use mem::MemDisk;
pub use ranges::RangeSet;
pub use slice::Slice;
pub use staged::Staged;

/// True if every byte of `data` is zero. Word-at-a-time, with an early exit:
/// every layer that turns zeros into holes (writers, the overlay's output pass,
/// the scrub's fingerprints) asks this of every block it handles.
pub fn is_zero(data: &[u8]) -> bool {
    let mut chunks = data.chunks_exact(64);
    for c in &mut chunks {
        let mut acc = 0u64;
        for w in c.chunks_exact(8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            acc |= u64::from_ne_bytes(a);
        }
        if acc != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

/// A read-only, random-access byte device: a virtual disk, a partition, a file.
pub trait ReadAt: Send + Sync {
    /// Size of the device in bytes.
    fn size(&self) -> u64;

    /// Fills `buf` with the bytes at `offset`. Fails with `UnexpectedEof` when the
    /// range is not entirely inside the device, and with `InvalidData` when the
    /// container's own structures are corrupt.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Byte ranges that may hold non-zero data, sorted and disjoint. Everything
    /// outside them reads as zeros, so copy and scan passes can skip it. A superset
    /// is allowed (the default says "everything"); a subset is a bug.
    fn allocated_ranges(&self) -> io::Result<RangeSet> {
        let mut set = RangeSet::new();
        set.insert(0..self.size());
        Ok(set)
    }
}

/// A device that can also be changed. The ext4 editor and the FAT scrubber write
/// through this; in the pipeline it is the overlay, in tests often a plain file.
pub trait WriteAt: ReadAt {
    /// Writes all of `buf` at `offset`; the range must lie inside the device.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes `range` read as zeros. Overlays record this as a hole rather than as
    /// written zeros, so the output can leave it unallocated.
    fn zero_range(&self, range: Range<u64>) -> io::Result<()> {
        check_range(
            range.start,
            range.end.saturating_sub(range.start),
            self.size(),
        )?;
        let zeros = vec![0u8; 64 * 1024];
        let mut pos = range.start;
        while pos < range.end {
            let n = (range.end - pos).min(zeros.len() as u64) as usize;
            self.write_all_at(&zeros[..n], pos)?;
            pos += n as u64;
        }
        Ok(())
    }
}

/// Checks that `len` bytes at `offset` lie inside a device of `size` bytes.
pub fn check_range(offset: u64, len: u64, size: u64) -> io::Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "read of {len} bytes at offset {offset} is beyond the end of the device ({size} bytes)"
            ),
        )),
    }
}

/// Why [`read_stated`] read nothing.
#[derive(Debug)]
pub enum StatedReadError {
    /// The device ends before `need` (the end of what was asked).
    Truncated {
        need: u64,
        have: u64,
    },
    Io(io::Error),
}

/// `len` bytes at `offset`, where `len` and `offset` come from the image (a
/// header's table size, a region's offset): read only if the device holds them
/// all, so a hostile length cannot make an allocation the file does not back.
pub fn read_stated<D: ReadAt + ?Sized>(
    dev: &D,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, StatedReadError> {
    let end = offset.saturating_add(len);
    if end > dev.size() {
        return Err(StatedReadError::Truncated {
            need: end,
            have: dev.size(),
        });
    }
    let mut b = vec![0u8; len as usize];
    dev.read_exact_at(&mut b, offset)
        .map_err(StatedReadError::Io)?;
    Ok(b)
}

macro_rules! forward_read_at {
    ($($ty:ty),*) => {$(
        impl<T: ReadAt + ?Sized> ReadAt for $ty {
            fn size(&self) -> u64 {
                (**self).size()
            }
            fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
                (**self).read_exact_at(buf, offset)
            }
            fn allocated_ranges(&self) -> io::Result<RangeSet> {
                (**self).allocated_ranges()
            }
        }
        impl<T: WriteAt + ?Sized> WriteAt for $ty {
            fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
                (**self).write_all_at(buf, offset)
            }
            fn zero_range(&self, range: Range<u64>) -> io::Result<()> {
                (**self).zero_range(range)
            }
        }
    )*};
}
forward_read_at!(&T, Box<T>, Arc<T>);

#[cfg(test)]
mod tests {
    use super::is_zero;

    #[test]
    fn zero_check_sees_a_set_byte_anywhere() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0u8; 1000]));
        for i in [0usize, 7, 63, 64, 999] {
            let mut v = vec![0u8; 1000];
            v[i] = 1;
            assert!(!is_zero(&v), "{i}");
        }
    }
}
