//! The streamOptimized writer: what OVA packages and most cloud importers take.
//!
//! Layout, written strictly front to back (so the output can be any `Write`, even
//! a pipe into a tar):
//!
//! ```text
//! sector 0        header: version 3, flags newline-check|compressed|markers,
//!                 gdOffset = GD_AT_END (the real one is in the footer)
//! sector 1…20     embedded descriptor (createType="streamOptimized"), zero padded
//! …127            zero padding: the first grain starts at overHead = 128 (one grain)
//! grains          [grain marker: LBA, size][zlib stream] padded to a sector, in LBA
//!                 order; all-zero grains are not stored (GTE 0)
//! after the grains of each 512-grain span that has any: GT marker + grain table
//! GD marker + grain directory
//! footer marker + footer (the header again, with the real gdOffset)
//! end-of-stream marker
//! ```
//!
//! This is what VMware's own tools write; qemu-img, VirtualBox and ESXi read it.
//! Grain tables of spans without data are not written (GD entry 0).

use std::io::{self, Write};

use crate::create::{DiskOptions, capacity_sectors, new_descriptor};
use crate::descriptor::ExtentType;
use crate::grain::{
    EncodedGrain, GRAIN_BYTES, GRAIN_SECTORS, GTES_PER_GT, GrainAssembler, GrainCompressor,
};
use crate::header::{
    COMPRESSION_DEFLATE, FLAG_COMPRESSED, FLAG_MARKERS, FLAG_NEWLINE_TEST, GD_AT_END,
    MAX_GD_ENTRIES, SECTOR, SparseExtentHeader,
};
use crate::marker::{self, Marker};

/// Sectors reserved for an embedded descriptor (qemu reserves the same).
pub(crate) const DESCRIPTOR_SECTORS: u64 = 20;

pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The descriptor text padded to `DESCRIPTOR_SECTORS` sectors.
pub(crate) fn embedded_descriptor(text: &str) -> io::Result<Vec<u8>> {
    let area = (DESCRIPTOR_SECTORS * SECTOR) as usize;
    if text.len() >= area {
        return Err(invalid(format!(
            "the descriptor ({} bytes) does not fit its {area}-byte area",
            text.len()
        )));
    }
    let mut v = text.as_bytes().to_vec();
    v.resize(area, 0);
    Ok(v)
}

/// Number of grain tables (grain-directory entries) for `sectors`.
pub(crate) fn gd_entries(sectors: u64) -> io::Result<u64> {
    let n = sectors.div_ceil(GRAIN_SECTORS * u64::from(GTES_PER_GT));
    if n > MAX_GD_ENTRIES {
        return Err(invalid(format!(
            "a disk of {sectors} sectors is larger than a VMDK sparse extent can describe"
        )));
    }
    Ok(n)
}

pub(crate) fn sector_u32(sector: u64, what: &str) -> io::Result<u32> {
    u32::try_from(sector).map_err(|_| {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "{what} at sector {sector} is beyond the 2 TiB a VMDK sparse extent can address"
            ),
        )
    })
}

/// A streamOptimized VMDK being written to `W`. Feed it with [`write_data`]
/// (compresses on the calling thread) or with grains compressed elsewhere by a
/// [`GrainCompressor`] through [`write_compressed`], in increasing order; then
/// [`finish`]. Dropping it unfinished leaves an incomplete file: callers write to
/// a temporary file and rename on success.
///
/// [`write_data`]: StreamWriter::write_data
/// [`write_compressed`]: StreamWriter::write_compressed
/// [`finish`]: StreamWriter::finish
pub struct StreamWriter<W: Write> {
    out: W,
    /// Bytes written so far (always a whole number of sectors between calls).
    pos: u64,
    header: SparseExtentHeader,
    capacity_bytes: u64,
    gd: Vec<u32>,
    /// The grain table being filled: its directory index and entries.
    gt: Option<(u64, Vec<u32>)>,
    /// Next grain index that may be written.
    next_grain: u64,
    assembler: GrainAssembler,
    compressor: GrainCompressor,
    stats: StreamStats,
}

/// What was written, for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub grains_stored: u64,
    pub grain_tables: u64,
    pub bytes_written: u64,
}

impl<W: Write> std::fmt::Debug for StreamWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("pos", &self.pos)
            .field("next_grain", &self.next_grain)
            .finish_non_exhaustive()
    }
}

impl<W: Write> StreamWriter<W> {
    /// Starts a stream for a disk of `size` bytes (rounded up to whole sectors);
    /// `file_name` is the name the finished file will have (the descriptor names
    /// its own extent). Writes the header and descriptor at once.
    pub fn new(out: W, size: u64, file_name: &str, opts: &DiskOptions) -> io::Result<Self> {
        let sectors = capacity_sectors(size)?;
        let entries = gd_entries(sectors)?;
        let desc = new_descriptor(
            opts,
            "streamOptimized",
            sectors,
            ExtentType::Sparse,
            file_name,
            None,
        )?;
        let header = SparseExtentHeader {
            version: 3,
            flags: FLAG_NEWLINE_TEST | FLAG_COMPRESSED | FLAG_MARKERS,
            capacity: sectors,
            grain_size: GRAIN_SECTORS,
            descriptor_offset: 1,
            descriptor_size: DESCRIPTOR_SECTORS,
            num_gtes_per_gt: GTES_PER_GT,
            rgd_offset: 0,
            gd_offset: GD_AT_END,
            overhead: GRAIN_SECTORS,
            unclean_shutdown: false,
            newline_chars: SparseExtentHeader::NEWLINE_CHARS,
            compress_algorithm: COMPRESSION_DEFLATE,
        };
        let mut w = Self {
            out,
            pos: 0,
            header,
            capacity_bytes: sectors * SECTOR,
            gd: vec![0; entries as usize],
            gt: None,
            next_grain: 0,
            assembler: GrainAssembler::new(sectors * SECTOR),
            compressor: GrainCompressor::default(),
            stats: StreamStats::default(),
        };
        let head = w.header.serialize();
        w.put(&head)?;
        w.put(&embedded_descriptor(&desc.to_text())?)?;
        let pad = vec![0u8; ((GRAIN_SECTORS - 1 - DESCRIPTOR_SECTORS) * SECTOR) as usize];
        w.put(&pad)?;
        Ok(w)
    }

    /// The virtual size in bytes (the requested size rounded up to a sector).
    pub fn capacity(&self) -> u64 {
        self.capacity_bytes
    }

    pub fn grain_bytes(&self) -> u64 {
        GRAIN_BYTES
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        self.stats.bytes_written = self.pos;
        Ok(())
    }

    /// Writes `data` at virtual offset `offset`. Offsets must increase; what is
    /// never written reads as zeros. All-zero grains are not stored.
    pub fn write_data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut asm = std::mem::replace(&mut self.assembler, GrainAssembler::new(0));
        let r = asm.push(offset, data, &mut |g, bytes| {
            let enc = self.compressor.compress(g, bytes)?;
            self.append(enc)
        });
        self.assembler = asm;
        r
    }

    /// Appends a grain compressed by a [`GrainCompressor`] (possibly on another
    /// thread). Grain indices must increase, and not go back before data given to
    /// [`write_data`](Self::write_data).
    pub fn write_compressed(&mut self, grain: EncodedGrain) -> io::Result<()> {
        if let Some(p) = self.assembler.pending_grain() {
            if p >= grain.index {
                return Err(invalid(format!(
                    "grain {} given after data for grain {p}",
                    grain.index
                )));
            }
            let mut asm = std::mem::replace(&mut self.assembler, GrainAssembler::new(0));
            let r = asm.flush(&mut |g, bytes| {
                let enc = self.compressor.compress(g, bytes)?;
                self.append(enc)
            });
            self.assembler = asm;
            r?;
        }
        let end = (grain.index + 1).saturating_mul(GRAIN_BYTES);
        self.assembler.advance_to(end.min(self.capacity_bytes));
        self.append(grain)
    }

    fn append(&mut self, grain: EncodedGrain) -> io::Result<()> {
        let g = grain.index;
        let grains = self.capacity_bytes.div_ceil(GRAIN_BYTES);
        if g < self.next_grain || g >= grains {
            return Err(invalid(format!(
                "grain {g} out of order or past the end (next is {}, the disk has {grains})",
                self.next_grain
            )));
        }
        self.next_grain = g + 1;
        let Some(record) = grain.record else {
            return Ok(()); // all zeros: GTE stays 0
        };
        if record.len() % SECTOR as usize != 0 || record.len() < 512 {
            return Err(invalid(format!(
                "grain {g}'s record is {} bytes, not whole sectors",
                record.len()
            )));
        }
        match Marker::parse(&record) {
            Some(Marker::Grain { lba, .. }) if lba == g * GRAIN_SECTORS => {}
            _ => {
                return Err(invalid(format!(
                    "grain {g}'s record has no matching marker"
                )));
            }
        }
        let per = u64::from(GTES_PER_GT);
        let table = g / per;
        if self.gt.as_ref().is_some_and(|(t, _)| *t != table) {
            self.flush_gt()?;
        }
        let sector = sector_u32(self.pos / SECTOR, "a grain")?;
        let (_, entries) = self
            .gt
            .get_or_insert_with(|| (table, vec![0u32; GTES_PER_GT as usize]));
        entries[(g % per) as usize] = sector;
        self.put(&record)?;
        self.stats.grains_stored += 1;
        Ok(())
    }

    /// Writes the grain table being filled (marker, then the table).
    fn flush_gt(&mut self) -> io::Result<()> {
        let Some((table, entries)) = self.gt.take() else {
            return Ok(());
        };
        let gt_sectors = u64::from(GTES_PER_GT) * 4 / SECTOR;
        self.put(
            &Marker::Meta {
                kind: marker::TYPE_GT,
                sectors: gt_sectors,
            }
            .serialize(),
        )?;
        let at = sector_u32(self.pos / SECTOR, "a grain table")?;
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        self.put(&bytes)?;
        if let Some(slot) = self.gd.get_mut(table as usize) {
            *slot = at;
        }
        self.stats.grain_tables += 1;
        Ok(())
    }

    /// Writes the last grain table, the grain directory, the footer and the
    /// end-of-stream marker, flushes, and returns the output and what was written.
    pub fn finish(mut self) -> io::Result<(W, StreamStats)> {
        let mut asm = std::mem::replace(&mut self.assembler, GrainAssembler::new(0));
        asm.flush(&mut |g, bytes| {
            let enc = self.compressor.compress(g, bytes)?;
            self.append(enc)
        })?;
        self.flush_gt()?;
        let gd_bytes: Vec<u8> = self.gd.iter().flat_map(|e| e.to_le_bytes()).collect();
        let gd_sectors = (gd_bytes.len() as u64).div_ceil(SECTOR);
        self.put(
            &Marker::Meta {
                kind: marker::TYPE_GD,
                sectors: gd_sectors,
            }
            .serialize(),
        )?;
        let gd_at = self.pos / SECTOR;
        let mut padded = gd_bytes;
        padded.resize((gd_sectors * SECTOR) as usize, 0);
        self.put(&padded)?;
        self.put(
            &Marker::Meta {
                kind: marker::TYPE_FOOTER,
                sectors: 1,
            }
            .serialize(),
        )?;
        let mut footer = self.header.clone();
        footer.gd_offset = gd_at;
        self.put(&footer.serialize())?;
        self.put(
            &Marker::Meta {
                kind: marker::TYPE_EOS,
                sectors: 0,
            }
            .serialize(),
        )?;
        self.out.flush()?;
        Ok((self.out, self.stats))
    }
}
