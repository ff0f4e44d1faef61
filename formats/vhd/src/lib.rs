//! VHD, the Virtual PC / Hyper-V (first generation) disk format, after
//! Microsoft's "Virtual Hard Disk Image Format Specification" (version 1.0):
//! a 512-byte footer at the end of the file (and, on dynamic disks, a copy at
//! the start), a dynamic-disk header, and a block allocation table (BAT) whose
//! blocks each begin with a sector bitmap.
//!
//! Written by [`create`]'s encoders (the caller streams the data).
//!
//! Read-only and random access, like the qcow2 and VMDK readers: fixed disks are
//! their data followed by the footer; dynamic disks map each block through the
//! BAT, and a sector whose bitmap bit is clear, or a block the BAT leaves
//! unallocated, reads as zeros. Differencing disks (which need their parent) are
//! refused with a reason. Every structure is checked against the file's size
//! before it is used: a hostile image gets a typed error, never a panic.

pub mod create;
mod dynamic;
mod error;
mod footer;

use std::io;

use vmscrub_blockdev::{RangeSet, ReadAt};

pub use dynamic::DynamicHeader;
pub use error::Error;
pub use footer::{DiskType, FOOTER_SIZE, Footer};

/// An opened VHD image: the virtual disk it holds.
#[derive(Debug)]
pub struct Vhd<F> {
    file: F,
    pub footer: Footer,
    layout: Layout,
}

#[derive(Debug)]
enum Layout {
    Fixed,
    Dynamic(dynamic::Table),
}

impl<F: ReadAt> Vhd<F> {
    /// Reads and checks the footer (the one at the end; a dynamic disk's copy at
    /// the start is used when the end one is damaged) and, for a dynamic disk, its
    /// header and BAT.
    pub fn open(file: F) -> Result<Self, Error> {
        let footer = footer::find(&file)?;
        let layout = match footer.disk_type {
            DiskType::Fixed => {
                let data = file.size() - FOOTER_SIZE;
                if footer.current_size > data {
                    return Err(Error::Truncated {
                        what: "fixed disk data",
                        need: footer.current_size,
                        have: data,
                    });
                }
                Layout::Fixed
            }
            DiskType::Dynamic => Layout::Dynamic(dynamic::Table::load(&file, &footer)?),
            DiskType::Differencing => return Err(Error::Differencing),
        };
        Ok(Vhd {
            file,
            footer,
            layout,
        })
    }

    /// `fixed` or `dynamic`.
    pub fn subformat(&self) -> &'static str {
        match self.layout {
            Layout::Fixed => "fixed",
            Layout::Dynamic(_) => "dynamic",
        }
    }

    /// Bytes of the disk the image stores (allocated blocks; for a fixed disk,
    /// its data where the file is not a hole).
    pub fn allocated_bytes(&self) -> u64 {
        match &self.layout {
            Layout::Fixed => self
                .allocated_ranges()
                .map_or(self.footer.current_size, |r| r.total()),
            Layout::Dynamic(t) => t.allocated_blocks() * u64::from(t.block_size),
        }
    }

    /// The dynamic header, for `inspect`.
    pub fn dynamic_header(&self) -> Option<&DynamicHeader> {
        match &self.layout {
            Layout::Fixed => None,
            Layout::Dynamic(t) => Some(&t.header),
        }
    }
}

impl<F: ReadAt> ReadAt for Vhd<F> {
    fn size(&self) -> u64 {
        self.footer.current_size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        vmscrub_blockdev::check_range(offset, buf.len() as u64, self.size())?;
        match &self.layout {
            Layout::Fixed => self.file.read_exact_at(buf, offset),
            Layout::Dynamic(t) => t.read(&self.file, buf, offset),
        }
    }

    fn allocated_ranges(&self) -> io::Result<RangeSet> {
        match &self.layout {
            // The file's own holes are the disk's (a fixed VHD is its data as is).
            Layout::Fixed => Ok(self
                .file
                .allocated_ranges()?
                .overlapping(0..self.size())
                .collect()),
            Layout::Dynamic(t) => Ok(t.allocated_ranges(self.size())),
        }
    }
}
