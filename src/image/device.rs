//! What a volume reads and writes through: a window of the disk (a partition,
//! or the bare disk), or a logical volume mapped onto windows of the disk.

use std::io;
use std::ops::Range;

use vmscrub_blockdev::{RangeSet, ReadAt, Slice, WriteAt};
use vmscrub_lvm::LvDevice;

/// A volume's bytes, addressed from 0. Editors write through it into the
/// scrub's overlay; an LV splits every request at its segment and stripe
/// boundaries.
#[derive(Debug, Clone)]
pub enum VolumeDevice<D> {
    Slice(Slice<D>),
    Lv(LvDevice<Slice<D>>),
}

impl<D: ReadAt> ReadAt for VolumeDevice<D> {
    fn size(&self) -> u64 {
        match self {
            Self::Slice(s) => s.size(),
            Self::Lv(l) => l.size(),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Self::Slice(s) => s.read_exact_at(buf, offset),
            Self::Lv(l) => l.read_exact_at(buf, offset),
        }
    }

    fn allocated_ranges(&self) -> io::Result<RangeSet> {
        match self {
            Self::Slice(s) => s.allocated_ranges(),
            Self::Lv(l) => l.allocated_ranges(),
        }
    }
}

impl<D: WriteAt> WriteAt for VolumeDevice<D> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match self {
            Self::Slice(s) => s.write_all_at(buf, offset),
            Self::Lv(l) => l.write_all_at(buf, offset),
        }
    }

    fn zero_range(&self, range: Range<u64>) -> io::Result<()> {
        match self {
            Self::Slice(s) => s.zero_range(range),
            Self::Lv(l) => l.zero_range(range),
        }
    }
}
