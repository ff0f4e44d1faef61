//! The monolithicFlat writer: a small text descriptor plus a `-flat.vmdk` extent
//! holding the raw disk, with holes where the disk is zero.
//!
//! The two files are written separately (the caller owns both and decides how to
//! commit them together); the descriptor names the extent by its final file name,
//! which must therefore sit in the same directory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::create::{DiskOptions, capacity_sectors, new_descriptor};
use crate::descriptor::ExtentType;
use crate::grain::is_zero;

/// The extent file name qemu and VMware use for `disk.vmdk`: `disk-flat.vmdk`.
pub fn flat_extent_name(descriptor_name: &str) -> String {
    match descriptor_name.strip_suffix(".vmdk") {
        Some(stem) if !stem.is_empty() => format!("{stem}-flat.vmdk"),
        _ => format!("{descriptor_name}-flat.vmdk"),
    }
}

/// The descriptor text of a monolithicFlat disk of `size` bytes (rounded up to
/// whole sectors) whose data is in `extent_name`.
pub fn flat_descriptor(size: u64, extent_name: &str, opts: &DiskOptions) -> io::Result<String> {
    let sectors = capacity_sectors(size)?;
    let d = new_descriptor(
        opts,
        "monolithicFlat",
        sectors,
        ExtentType::Flat,
        extent_name,
        Some(0),
    )?;
    Ok(d.to_text())
}

/// Writes the extent of a flat disk: data in place, zeros as holes.
#[derive(Debug)]
pub struct FlatWriter<'a> {
    extent: &'a File,
    capacity_bytes: u64,
    next: u64,
}

/// Below this, a zero run inside data is written rather than punched: a hole
/// smaller than a filesystem block saves nothing.
const HOLE_GRANULE: usize = 4096;

impl<'a> FlatWriter<'a> {
    /// `extent` must be empty; `size` is rounded up to whole sectors.
    pub fn new(extent: &'a File, size: u64) -> io::Result<Self> {
        Ok(Self {
            extent,
            capacity_bytes: capacity_sectors(size)? * crate::header::SECTOR,
            next: 0,
        })
    }

    pub fn capacity(&self) -> u64 {
        self.capacity_bytes
    }

    /// Writes `data` at `offset` (offsets increase); aligned 4 KiB blocks of zeros
    /// inside it are skipped so they stay holes.
    pub fn write_data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= self.capacity_bytes && offset >= self.next)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "write of {} bytes at {offset} is out of order or past the end",
                        data.len()
                    ),
                )
            })?;
        self.next = end;
        let mut i = 0usize;
        while i < data.len() {
            let pos = offset + i as u64;
            let to_boundary = HOLE_GRANULE - (pos % HOLE_GRANULE as u64) as usize;
            let n = to_boundary.min(data.len() - i);
            let piece = &data[i..i + n];
            if !(n == HOLE_GRANULE && is_zero(piece)) {
                // Coalesce following non-zero blocks into one write.
                let mut j = i + n;
                while j < data.len() {
                    let m = HOLE_GRANULE.min(data.len() - j);
                    if m == HOLE_GRANULE && is_zero(&data[j..j + m]) {
                        break;
                    }
                    j += m;
                }
                self.extent.write_all_at(&data[i..j], pos)?;
                i = j;
                continue;
            }
            i += n;
        }
        Ok(())
    }

    /// Sets the extent's length to the capacity (trailing zeros become a hole).
    pub fn finish(self) -> io::Result<()> {
        self.extent.set_len(self.capacity_bytes)
    }
}
