//! VHD output, fixed and dynamic, in the one sequential pass.
//!
//! **Fixed** is raw data followed by the footer; zero units stay holes, so the
//! file is as sparse as a raw output. Azure takes only fixed VHDs whose virtual
//! size is a whole number of MiB, so the size is rounded up to one (the added
//! tail reads as zeros) unless the user asked for the exact size
//! ([`super::args`] decides and warns).
//!
//! **Dynamic** places each 2 MiB block in the file the first time the pass
//! writes into it, in disk order, so the file still grows front to back; only
//! the non-zero units of a block are written (the rest of it stays a hole, and
//! reads as zeros, which is what those sectors hold). The footer copy, the
//! header and the BAT go at the front, and the footer at the end, once the
//! last block is known.

use std::fs::File;
use std::io;

use vmscrub_vhd::DiskType;
use vmscrub_vhd::create::{self, NewDisk};

use super::writeback::{self, SyncingFile};
use super::{ImageSink, RAW_UNIT, Run};

/// VHD variants vmscrub writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VhdSubformat {
    Fixed,
    Dynamic,
}

impl VhdSubformat {
    pub fn as_str(self) -> &'static str {
        match self {
            VhdSubformat::Fixed => "fixed",
            VhdSubformat::Dynamic => "dynamic",
        }
    }
}

/// Azure's unit for fixed VHD sizes.
pub const AZURE_ALIGN: u64 = 1 << 20;

/// The footer of a new disk of `size` bytes, with a fresh unique ID.
fn new_footer(size: u64, disk_type: DiskType) -> io::Result<[u8; 512]> {
    let mut unique_id = [0u8; 16];
    getrandom::fill(&mut unique_id)
        .map_err(|e| io::Error::other(format!("no random numbers for a new disk ID: {e}")))?;
    let unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    NewDisk {
        size,
        disk_type,
        unique_id,
        unix_time,
    }
    .footer()
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// A fixed VHD of `size` bytes (already rounded as the user chose).
pub struct VhdFixedSink {
    file: SyncingFile,
    size: u64,
    footer: [u8; 512],
}

impl VhdFixedSink {
    pub fn new(file: File, size: u64) -> io::Result<Self> {
        Ok(Self {
            footer: new_footer(size, DiskType::Fixed)?,
            file: SyncingFile::new(file, writeback::STEP)?,
            size,
        })
    }
}

impl ImageSink for VhdFixedSink {
    fn unit_size(&self) -> u64 {
        RAW_UNIT
    }

    fn write_run(&mut self, run: &mut Run) -> io::Result<()> {
        super::write_plain_units(&mut self.file, run, RAW_UNIT)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.file.write_all_at(&self.footer, self.size)?;
        self.file.finish()
    }
}

/// A dynamic VHD of `size` bytes.
pub struct VhdDynamicSink {
    file: SyncingFile,
    size: u64,
    /// Per block: the sector of its bitmap in the file, or unallocated.
    bat: Vec<u32>,
    /// Where the next block goes.
    next: u64,
    footer: [u8; 512],
}

impl VhdDynamicSink {
    pub fn new(file: File, size: u64) -> io::Result<Self> {
        let footer = new_footer(size, DiskType::Dynamic)?;
        Ok(Self {
            footer,
            file: SyncingFile::new(file, writeback::STEP)?,
            size,
            bat: vec![create::UNALLOCATED; create::bat_entries(size) as usize],
            next: create::first_block_offset(size),
        })
    }
}

/// The file offset of the data of `block`, placing the block (its bitmap, then
/// its data) at `next` if it is new.
fn place_block(
    bat: &mut [u32],
    next: &mut u64,
    file: &mut SyncingFile,
    block: usize,
) -> io::Result<u64> {
    let Some(entry) = bat.get_mut(block) else {
        return Err(io::Error::other(format!(
            "block {block} is past the disk's end"
        )));
    };
    if *entry == create::UNALLOCATED {
        let sector = u32::try_from(*next / 512)
            .map_err(|_| io::Error::other("the VHD outgrew its 32-bit block table"))?;
        *entry = sector;
        let at = *next;
        *next += create::BITMAP_BYTES + create::BLOCK_SIZE;
        file.write_all_at(&[0xFF; create::BITMAP_BYTES as usize], at)?;
    }
    Ok(u64::from(*entry) * 512 + create::BITMAP_BYTES)
}

impl ImageSink for VhdDynamicSink {
    fn unit_size(&self) -> u64 {
        RAW_UNIT
    }

    fn write_run(&mut self, run: &mut Run) -> io::Result<()> {
        let Self {
            file, bat, next, ..
        } = self;
        super::write_placed(file, run, create::BLOCK_SIZE, |f, b| {
            place_block(bat, next, f, b)
        })
    }

    fn finish(&mut self) -> io::Result<()> {
        // A block's unwritten tail (the disk's last block, or zeros the pass
        // skipped) stays a hole: the footer after the last block sets the length.
        self.file.write_all_at(&self.footer, 0)?;
        self.file
            .write_all_at(&create::dynamic_header(self.size), create::HEADER_OFFSET)?;
        self.file
            .write_all_at(&create::encode_bat(&self.bat), create::BAT_OFFSET)?;
        self.file.write_all_at(&self.footer, self.next)?;
        self.file.finish()
    }
}
