//! VHDX, Hyper-V's disk format, after Microsoft's "VHDX Format Specification"
//! (MS-VHDX): a file type identifier, two headers and two region tables (each
//! with a CRC-32C), a metadata region (block size, virtual size, sector size)
//! and a block allocation table of 1–256 MiB payload blocks.
//!
//! New dynamic disks are laid out and encoded by [`create`] (the caller streams
//! the data).
//!
//! Read-only and random access, like the VHD, qcow2 and VMDK readers. A block
//! the BAT leaves not present, zero or unmapped reads as zeros. Refused with a
//! reason: differencing disks (they need their parent), a log that still holds
//! entries (the disk was not closed cleanly: replaying it is the owner's
//! decision, and the message says how), and any region or metadata item marked
//! required that the specification does not define. Every structure is checked
//! against the file's size before it is used.

mod bat;
pub mod create;
mod error;
pub mod guid;
mod header;
mod metadata;

use std::io;

use vmscrub_blockdev::{RangeSet, ReadAt, StatedReadError};

pub use error::Error;
pub use header::Header;
pub use metadata::Metadata;

/// An opened VHDX image: the virtual disk it holds.
#[derive(Debug)]
pub struct Vhdx<F> {
    file: F,
    pub header: Header,
    pub metadata: Metadata,
    bat: bat::Bat,
}

/// `len` bytes of `file` at `offset`, or why not.
pub(crate) fn read(
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

/// The file starts with the VHDX signature.
pub fn is_vhdx(head: &[u8]) -> bool {
    head.starts_with(b"vhdxfile")
}

impl<F: ReadAt> Vhdx<F> {
    pub fn open(file: F) -> Result<Self, Error> {
        let sig = read(&file, "file type identifier", 0, 8)?;
        if !is_vhdx(&sig) {
            return Err(Error::NotVhdx);
        }
        let header = header::current(&file)?;
        if header.log_guid != [0; 16] {
            return Err(Error::DirtyLog);
        }
        let (bat_region, meta_region) = header::regions(&file)?;
        let metadata = metadata::read_metadata(&file, &meta_region)?;
        let bat = bat::Bat::load(&file, &bat_region, &metadata)?;
        Ok(Vhdx {
            file,
            header,
            metadata,
            bat,
        })
    }

    /// `fixed` (blocks kept allocated) or `dynamic`, as qemu-img names them.
    pub fn subformat(&self) -> &'static str {
        if self.metadata.leave_allocated {
            "fixed"
        } else {
            "dynamic"
        }
    }

    /// Bytes of the disk the file stores (its present blocks).
    pub fn allocated_bytes(&self) -> u64 {
        self.bat.allocated_ranges(self.metadata.size).total()
    }
}

impl<F: ReadAt> ReadAt for Vhdx<F> {
    fn size(&self) -> u64 {
        self.metadata.size
    }

    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        vmscrub_blockdev::check_range(offset, buf.len() as u64, self.size())?;
        let bs = self.bat.block_size();
        while !buf.is_empty() {
            let n = (bs - offset % bs).min(buf.len() as u64) as usize;
            let (now, rest) = buf.split_at_mut(n);
            match self.bat.locate(offset) {
                Some(at) => self.file.read_exact_at(now, at)?,
                None => now.fill(0),
            }
            buf = rest;
            offset += n as u64;
        }
        Ok(())
    }

    fn allocated_ranges(&self) -> io::Result<RangeSet> {
        Ok(self.bat.allocated_ranges(self.metadata.size))
    }
}
