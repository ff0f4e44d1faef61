//! A window onto part of a device: a partition, or one filesystem inside a disk.

use std::io;
use std::ops::Range;

use crate::{RangeSet, ReadAt, WriteAt, check_range};

/// `len` bytes of `inner` starting at `offset`, addressed from 0.
#[derive(Debug, Clone)]
pub struct Slice<D> {
    inner: D,
    offset: u64,
    len: u64,
}

impl<D: ReadAt> Slice<D> {
    /// Fails if the window does not lie inside `inner`: a partition table that points
    /// past the end of the disk is reported, not read as zeros.
    pub fn new(inner: D, offset: u64, len: u64) -> io::Result<Self> {
        check_range(offset, len, inner.size()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "range of {len} bytes at offset {offset} lies outside the {}-byte device",
                    inner.size()
                ),
            )
        })?;
        Ok(Self { inner, offset, len })
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: ReadAt> ReadAt for Slice<D> {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.len)?;
        self.inner.read_exact_at(buf, self.offset + offset)
    }

    fn allocated_ranges(&self) -> io::Result<RangeSet> {
        let all = self.inner.allocated_ranges()?;
        Ok(all
            .overlapping(self.offset..self.offset + self.len)
            .map(|r| r.start - self.offset..r.end - self.offset)
            .collect())
    }
}

impl<D: WriteAt> WriteAt for Slice<D> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.len)?;
        self.inner.write_all_at(buf, self.offset + offset)
    }

    fn zero_range(&self, range: Range<u64>) -> io::Result<()> {
        check_range(range.start, range.end.saturating_sub(range.start), self.len)?;
        self.inner
            .zero_range(range.start + self.offset..range.end + self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDisk;

    #[test]
    fn window_is_bounded() {
        let m = MemDisk::new((0..100u8).collect());
        assert!(Slice::new(&m, 90, 11).is_err());
        assert!(Slice::new(&m, u64::MAX, 2).is_err());
        let s = Slice::new(&m, 10, 20).unwrap();
        let mut b = [0u8; 3];
        s.read_exact_at(&mut b, 17).unwrap();
        assert_eq!(b, [27, 28, 29]);
        assert!(s.read_exact_at(&mut b, 18).is_err());
        s.write_all_at(&[0xff], 0).unwrap();
        assert_eq!(m.to_vec()[10], 0xff);
        s.zero_range(1..3).unwrap();
        assert_eq!(&m.to_vec()[10..14], &[0xff, 0, 0, 13]);
    }
}
