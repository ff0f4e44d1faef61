//! The monolithicSparse writer: one hosted sparse extent, uncompressed grains.
//!
//! Layout (as VMware and qemu lay it out, so tools that later write into the disk
//! find every grain table preallocated where they expect it):
//!
//! ```text
//! sector 0            header: version 1, flags newline-check|redundant-GT
//! sector 1…20         embedded descriptor (createType="monolithicSparse")
//! rgdOffset = 21      redundant grain directory, then the redundant grain tables
//! gdOffset            grain directory, then the grain tables (4 sectors each)
//! overHead            rounded up to a grain; grains follow, 64 KiB each, in
//!                     virtual order, only those holding data (GTE 0 otherwise)
//! ```
//!
//! Both directories are written at the start (their entries are fixed by the
//! layout); each grain table and its redundant copy are written once the data has
//! moved past its 32 MiB span, so memory holds one table. Table areas whose span
//! has no data are left as holes: they read as zeros, which is an empty table.
//! The output must therefore be seekable; on a file the result is itself sparse.

use std::io::{self, Seek, SeekFrom, Write};

use crate::create::{DiskOptions, capacity_sectors, new_descriptor};
use crate::descriptor::ExtentType;
use crate::grain::{GRAIN_BYTES, GRAIN_SECTORS, GTES_PER_GT, GrainAssembler, is_zero};
use crate::header::{FLAG_NEWLINE_TEST, FLAG_REDUNDANT_GT, SECTOR, SparseExtentHeader};
use crate::stream_writer::{
    DESCRIPTOR_SECTORS, embedded_descriptor, gd_entries, invalid, sector_u32,
};

/// A monolithicSparse VMDK being written to `W`: [`write_data`] or whole grains
/// through [`write_grain`], in increasing order, then [`finish`].
///
/// [`write_data`]: SparseWriter::write_data
/// [`write_grain`]: SparseWriter::write_grain
/// [`finish`]: SparseWriter::finish
pub struct SparseWriter<W: Write + Seek> {
    out: W,
    /// End of the data written so far (the next grain goes here), in bytes.
    end: u64,
    capacity_bytes: u64,
    gd_entries: u64,
    /// Sector of the first grain table and of the first redundant one.
    gt_base: u64,
    rgt_base: u64,
    overhead: u64,
    gt: Option<(u64, Vec<u32>)>,
    next_grain: u64,
    assembler: GrainAssembler,
    grains_stored: u64,
    /// Where `out` is positioned, so sequential grains need no seek (a seek
    /// flushes a `BufWriter`).
    cursor: u64,
}

impl<W: Write + Seek> std::fmt::Debug for SparseWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseWriter")
            .field("end", &self.end)
            .field("next_grain", &self.next_grain)
            .finish_non_exhaustive()
    }
}

const GT_SECTORS: u64 = GTES_PER_GT as u64 * 4 / SECTOR;

impl<W: Write + Seek> SparseWriter<W> {
    /// Starts a disk of `size` bytes (rounded up to whole sectors) in `out`, which
    /// must be empty; `file_name` is the name the finished file will have.
    pub fn new(mut out: W, size: u64, file_name: &str, opts: &DiskOptions) -> io::Result<Self> {
        let sectors = capacity_sectors(size)?;
        let entries = gd_entries(sectors)?;
        let gd_sectors = (entries * 4).div_ceil(SECTOR);
        let tables = entries * GT_SECTORS;
        let rgd_offset = 1 + DESCRIPTOR_SECTORS;
        let rgt_base = rgd_offset + gd_sectors;
        let gd_offset = rgt_base + tables;
        let gt_base = gd_offset + gd_sectors;
        let overhead = (gt_base + tables).next_multiple_of(GRAIN_SECTORS);
        sector_u32(overhead, "the first grain")?;
        let desc = new_descriptor(
            opts,
            "monolithicSparse",
            sectors,
            ExtentType::Sparse,
            file_name,
            None,
        )?;
        let header = SparseExtentHeader {
            version: 1,
            flags: FLAG_NEWLINE_TEST | FLAG_REDUNDANT_GT,
            capacity: sectors,
            grain_size: GRAIN_SECTORS,
            descriptor_offset: 1,
            descriptor_size: DESCRIPTOR_SECTORS,
            num_gtes_per_gt: GTES_PER_GT,
            rgd_offset,
            gd_offset,
            overhead,
            unclean_shutdown: false,
            newline_chars: SparseExtentHeader::NEWLINE_CHARS,
            compress_algorithm: 0,
        };
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&header.serialize())?;
        out.write_all(&embedded_descriptor(&desc.to_text())?)?;
        // Both directories point at their preallocated tables.
        let dir = |base: u64| -> Vec<u8> {
            let mut v: Vec<u8> = (0..entries)
                .flat_map(|i| ((base + i * GT_SECTORS) as u32).to_le_bytes())
                .collect();
            v.resize((gd_sectors * SECTOR) as usize, 0);
            v
        };
        out.write_all(&dir(rgt_base))?;
        out.seek(SeekFrom::Start(gd_offset * SECTOR))?;
        out.write_all(&dir(gt_base))?;
        Ok(Self {
            out,
            end: overhead * SECTOR,
            capacity_bytes: sectors * SECTOR,
            gd_entries: entries,
            gt_base,
            rgt_base,
            overhead,
            gt: None,
            next_grain: 0,
            assembler: GrainAssembler::new(sectors * SECTOR),
            grains_stored: 0,
            cursor: (gd_offset + gd_sectors) * SECTOR,
        })
    }

    pub fn capacity(&self) -> u64 {
        self.capacity_bytes
    }

    pub fn grain_bytes(&self) -> u64 {
        GRAIN_BYTES
    }

    /// Writes `data` at virtual offset `offset`; offsets must increase.
    pub fn write_data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut asm = std::mem::replace(&mut self.assembler, GrainAssembler::new(0));
        let r = asm.push(offset, data, &mut |g, bytes| self.store(g, bytes));
        self.assembler = asm;
        r
    }

    /// Writes whole grain `index` (`data` is one grain, or the rest of the disk for
    /// the last one). An all-zero grain is not stored.
    pub fn write_grain(&mut self, index: u64, data: &[u8]) -> io::Result<()> {
        if let Some(p) = self.assembler.pending_grain() {
            if p >= index {
                return Err(invalid(format!(
                    "grain {index} given after data for grain {p}"
                )));
            }
            let mut asm = std::mem::replace(&mut self.assembler, GrainAssembler::new(0));
            let r = asm.flush(&mut |g, bytes| self.store(g, bytes));
            self.assembler = asm;
            r?;
        }
        let end = (index + 1).saturating_mul(GRAIN_BYTES);
        self.assembler.advance_to(end.min(self.capacity_bytes));
        self.store(index, data)
    }

    fn store(&mut self, g: u64, data: &[u8]) -> io::Result<()> {
        let grains = self.capacity_bytes.div_ceil(GRAIN_BYTES);
        if g < self.next_grain || g >= grains {
            return Err(invalid(format!(
                "grain {g} out of order or past the end (next is {}, the disk has {grains})",
                self.next_grain
            )));
        }
        if data.len() as u64 > GRAIN_BYTES {
            return Err(invalid(format!("grain {g} is {} bytes", data.len())));
        }
        self.next_grain = g + 1;
        if is_zero(data) {
            return Ok(());
        }
        let per = u64::from(GTES_PER_GT);
        let table = g / per;
        if self.gt.as_ref().is_some_and(|(t, _)| *t != table) {
            self.flush_gt()?;
        }
        let sector = sector_u32(self.end / SECTOR, "a grain")?;
        sector_u32(self.end / SECTOR + GRAIN_SECTORS - 1, "a grain")?;
        let (_, entries) = self
            .gt
            .get_or_insert_with(|| (table, vec![0u32; GTES_PER_GT as usize]));
        entries[(g % per) as usize] = sector;
        if self.cursor != self.end {
            self.out.seek(SeekFrom::Start(self.end))?;
        }
        self.out.write_all(data)?;
        if (data.len() as u64) < GRAIN_BYTES {
            // A short last grain is stored whole: readers may read a full grain.
            self.out
                .write_all(&vec![0u8; (GRAIN_BYTES - data.len() as u64) as usize])?;
        }
        self.end += GRAIN_BYTES;
        self.cursor = self.end;
        self.grains_stored += 1;
        Ok(())
    }

    fn flush_gt(&mut self) -> io::Result<()> {
        let Some((table, entries)) = self.gt.take() else {
            return Ok(());
        };
        if table >= self.gd_entries {
            return Err(invalid(format!("grain table {table} past the directory")));
        }
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        for base in [self.gt_base, self.rgt_base] {
            self.out
                .seek(SeekFrom::Start((base + table * GT_SECTORS) * SECTOR))?;
            self.out.write_all(&bytes)?;
        }
        self.cursor = u64::MAX; // unknown: seek before the next grain
        Ok(())
    }

    /// Writes the last grain table and makes sure the file reaches the first grain
    /// (a disk without data still has its full metadata area). Returns the output
    /// and the number of grains stored.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let mut asm = std::mem::replace(&mut self.assembler, GrainAssembler::new(0));
        asm.flush(&mut |g, bytes| self.store(g, bytes))?;
        self.flush_gt()?;
        if self.end == self.overhead * SECTOR {
            // No grain: end the file at overHead with a zero sector.
            self.out.seek(SeekFrom::Start(self.end - SECTOR))?;
            self.cursor = self.end;
            self.out.write_all(&[0u8; SECTOR as usize])?;
        }
        self.out.flush()?;
        Ok((self.out, self.grains_stored))
    }
}
