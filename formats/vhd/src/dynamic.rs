//! Dynamic disks: the 1024-byte header ("cxsparse") the footer points at, and
//! the block allocation table (BAT) it points at. Each BAT entry is the sector
//! where a block starts (or 0xFFFFFFFF: not allocated); the block's data follows
//! a sector bitmap of one bit per sector, most significant bit first.

use std::io;

use vmscrub_blockdev::{RangeSet, ReadAt, StatedReadError};

use crate::Error;
use crate::footer::{Footer, be32, be64, checksum};

const HEADER_SIZE: usize = 1024;
const UNALLOCATED: u32 = u32::MAX;
const SECTOR: u64 = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicHeader {
    pub table_offset: u64,
    pub max_table_entries: u32,
    pub block_size: u32,
}

#[derive(Debug)]
pub(crate) struct Table {
    pub header: DynamicHeader,
    pub block_size: u32,
    bat: Vec<u32>,
    /// Bytes of each block's sector bitmap (rounded up to whole sectors).
    bitmap_bytes: u64,
}

fn read(
    file: &(impl ReadAt + ?Sized),
    what: &'static str,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, Error> {
    vmscrub_blockdev::read_stated(file, offset, len).map_err(|e| match e {
        StatedReadError::Truncated { need, have } => Error::Truncated { what, need, have },
        StatedReadError::Io(source) => Error::Io {
            what,
            offset,
            source,
        },
    })
}

impl Table {
    pub fn load(file: &(impl ReadAt + ?Sized), footer: &Footer) -> Result<Table, Error> {
        let at = footer.data_offset;
        let h = read(file, "dynamic header", at, HEADER_SIZE as u64)?;
        if &h[..8] != b"cxsparse" {
            return Err(Error::NoDynamicHeader(at));
        }
        let (stored, computed) = (be32(&h, 36), checksum(&h, 36));
        if stored != computed {
            return Err(Error::HeaderChecksum { stored, computed });
        }
        let header = DynamicHeader {
            table_offset: be64(&h, 16),
            max_table_entries: be32(&h, 28),
            block_size: be32(&h, 32),
        };
        let bs = header.block_size;
        if !bs.is_power_of_two() || !(512..=256 << 20).contains(&bs) {
            return Err(Error::BlockSize(bs));
        }
        let blocks_needed = footer.current_size.div_ceil(u64::from(bs));
        if u64::from(header.max_table_entries) < blocks_needed {
            return Err(Error::TableTooSmall {
                entries: header.max_table_entries,
                block_size: bs,
                size: footer.current_size,
            });
        }
        // Only the entries the disk's size uses are read: a huge max_table_entries
        // costs nothing, and the table cannot be larger than the file.
        let raw = read(file, "BAT", header.table_offset, blocks_needed * 4)?;
        let bat: Vec<u32> = raw.chunks_exact(4).map(|c| be32(c, 0)).collect();
        let bitmap_bytes = (u64::from(bs) / SECTOR).div_ceil(8).div_ceil(SECTOR) * SECTOR;
        let block_span = bitmap_bytes + u64::from(bs);
        for (block, &sector) in bat.iter().enumerate() {
            if sector != UNALLOCATED && u64::from(sector) * SECTOR + block_span > file.size() {
                return Err(Error::BlockOutside {
                    block: block as u64,
                    sector,
                    file_size: file.size(),
                });
            }
        }
        Ok(Table {
            block_size: bs,
            header,
            bat,
            bitmap_bytes,
        })
    }

    pub fn allocated_blocks(&self) -> u64 {
        self.bat.iter().filter(|&&s| s != UNALLOCATED).count() as u64
    }

    pub fn allocated_ranges(&self, size: u64) -> RangeSet {
        let bs = u64::from(self.block_size);
        let mut set = RangeSet::new();
        for (i, &s) in self.bat.iter().enumerate() {
            if s != UNALLOCATED {
                let start = i as u64 * bs;
                set.insert(start..(start + bs).min(size));
            }
        }
        set
    }

    /// Fills `buf` from virtual offset `offset`, a block (and within it a run of
    /// sectors with the same bitmap bit) at a time.
    pub fn read(
        &self,
        file: &(impl ReadAt + ?Sized),
        buf: &mut [u8],
        offset: u64,
    ) -> io::Result<()> {
        let bs = u64::from(self.block_size);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let block = pos / bs;
            let in_block = pos % bs;
            let n = ((bs - in_block) as usize).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            let sector = self.bat.get(block as usize).copied().unwrap_or(UNALLOCATED);
            if sector == UNALLOCATED {
                out.fill(0);
            } else {
                let base = u64::from(sector) * SECTOR;
                let mut bitmap = vec![0u8; self.bitmap_bytes as usize];
                file.read_exact_at(&mut bitmap, base)?;
                self.read_present(file, &bitmap, base + self.bitmap_bytes, in_block, out)?;
            }
            done += n;
        }
        Ok(())
    }

    /// Reads `out` from block data at `data`, zero where the bitmap says a sector
    /// is not present.
    fn read_present(
        &self,
        file: &(impl ReadAt + ?Sized),
        bitmap: &[u8],
        data: u64,
        in_block: u64,
        out: &mut [u8],
    ) -> io::Result<()> {
        let present = |s: u64| bitmap[(s / 8) as usize] & (0x80 >> (s % 8)) != 0;
        let mut done = 0usize;
        while done < out.len() {
            let pos = in_block + done as u64;
            let s = pos / SECTOR;
            let here = present(s);
            // Extend over following sectors with the same bit.
            let mut end_sector = s + 1;
            let last = (in_block + out.len() as u64 - 1) / SECTOR;
            while end_sector <= last && present(end_sector) == here {
                end_sector += 1;
            }
            let end = (end_sector * SECTOR - in_block).min(out.len() as u64) as usize;
            let part = &mut out[done..end];
            if here {
                file.read_exact_at(part, data + pos)?;
            } else {
                part.fill(0);
            }
            done = end;
        }
        Ok(())
    }
}
