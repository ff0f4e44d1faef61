//! The block allocation table: one 64-bit entry per payload block, with a
//! sector-bitmap entry after every `chunk ratio` of them (used only by
//! differencing disks, which are refused). An entry's low three bits are the
//! block's state, its top 44 bits the block's file offset in MiB.

use vmscrub_blockdev::{RangeSet, ReadAt};

use crate::header::{Region, le64};
use crate::metadata::Metadata;
use crate::{Error, read};

const NOT_PRESENT: u64 = 0;
const UNDEFINED: u64 = 1;
const ZERO: u64 = 2;
const UNMAPPED: u64 = 3;
const FULLY_PRESENT: u64 = 6;

/// Per payload block: where its data is in the file (`None`: reads as zeros).
#[derive(Debug)]
pub struct Bat {
    blocks: Vec<Option<u64>>,
    block_size: u64,
}

impl Bat {
    pub fn load(
        file: &(impl ReadAt + ?Sized),
        region: &Region,
        m: &Metadata,
    ) -> Result<Bat, Error> {
        let block_size = u64::from(m.block_size);
        let count = m.size.div_ceil(block_size);
        let chunk_ratio = ((1u64 << 23) * u64::from(m.logical_sector)) / block_size;
        let entries = count + (count - 1) / chunk_ratio;
        if entries * 8 > u64::from(region.length) {
            return Err(Error::corrupt(
                "BAT",
                format!(
                    "{entries} entries do not fit its {}-byte region",
                    region.length
                ),
            ));
        }
        let raw = read(file, "BAT", region.offset, entries * 8)?;
        let mut blocks = Vec::with_capacity(count as usize);
        for i in 0..count {
            let e = le64(&raw, ((i + i / chunk_ratio) * 8) as usize);
            blocks.push(Self::place(e, i, block_size, m.size, file.size())?);
        }
        Ok(Bat { blocks, block_size })
    }

    /// Where block `i`'s data is, checked against the file.
    fn place(e: u64, i: u64, block_size: u64, disk: u64, file: u64) -> Result<Option<u64>, Error> {
        match e & 7 {
            NOT_PRESENT | UNDEFINED | ZERO | UNMAPPED => Ok(None),
            FULLY_PRESENT => {
                let at = (e >> 20) << 20;
                let len = block_size.min(disk - i * block_size);
                if at < (1 << 20) || at.saturating_add(len) > file {
                    return Err(Error::corrupt(
                        "BAT",
                        format!("block {i} at byte {at} lies outside the {file}-byte file"),
                    ));
                }
                Ok(Some(at))
            }
            s => Err(Error::corrupt(
                "BAT",
                format!(
                    "block {i} has state {s} (partially present belongs to differencing disks)"
                ),
            )),
        }
    }

    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// Where disk byte `offset` is in the file, if its block has data.
    pub fn locate(&self, offset: u64) -> Option<u64> {
        let b = self.blocks.get((offset / self.block_size) as usize)?;
        b.map(|at| at + offset % self.block_size)
    }

    pub fn allocated_ranges(&self, size: u64) -> RangeSet {
        let mut s = RangeSet::new();
        for (i, b) in self.blocks.iter().enumerate() {
            if b.is_some() {
                let start = i as u64 * self.block_size;
                s.insert(start..(start + self.block_size).min(size));
            }
        }
        s
    }
}
