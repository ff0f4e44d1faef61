//! An inode's on-disk bytes, for editing: read through the stage, changed
//! field by field, written back with its v3 CRC recomputed. The decoded
//! [`crate::Inode`] is the reader's view; this is the editor's.

use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use crate::be::{u16_at, u32_at, u64_at};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::CRC_OFFSET;

/// Where the fields the editor changes live in the inode core (v3).
pub(crate) mod field {
    pub const MODE: usize = 2;
    pub const FORMAT: usize = 5;
    pub const NLINK: usize = 16;
    /// nrext64: the 64-bit data-fork extent count.
    pub const BIG_NEXTENTS: usize = 24;
    pub const SIZE: usize = 56;
    pub const NBLOCKS: usize = 64;
    /// Without nrext64: the 32-bit data-fork extent count; with it, the
    /// 32-bit attribute-fork count.
    pub const NEXTENTS: usize = 76;
    pub const GEN: usize = 92;
    pub const NEXT_UNLINKED: usize = 96;
    pub const FLAGS2: usize = 120;
    pub const INO: usize = 152;
    pub const UUID: usize = 160;
    /// The literal area (forks) of a v3 inode starts here.
    pub const LITERAL: usize = 176;
}

/// One inode's bytes, as staged.
pub(crate) struct RawInode {
    pub ino: u64,
    /// Device byte offset.
    pub offset: u64,
    pub buf: Vec<u8>,
}

impl RawInode {
    /// Reads inode `ino` as the edits so far leave it.
    pub fn read<D: ReadAt>(fs: &Xfs<Arc<Staged<D>>>, ino: u64) -> Result<Self> {
        let offset = fs.sb.inode_to_byte(ino).ok_or_else(|| {
            Error::corrupt(
                "inode number",
                Loc::inode(ino),
                "names no place inside the allocation groups",
            )
        })?;
        let mut buf = vec![0u8; usize::from(fs.sb.inode_size)];
        fs.read_bytes(&mut buf, offset, "inode")?;
        Ok(RawInode { ino, offset, buf })
    }

    pub fn u16(&self, off: usize) -> u16 {
        u16_at(&self.buf, off)
    }

    pub fn u32(&self, off: usize) -> u32 {
        u32_at(&self.buf, off)
    }

    pub fn u64(&self, off: usize) -> u64 {
        u64_at(&self.buf, off)
    }

    pub fn set_u8(&mut self, off: usize, v: u8) {
        self.buf[off] = v;
    }

    #[cfg(test)]
    pub fn set_u16(&mut self, off: usize, v: u16) {
        self.buf[off..off + 2].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_u32(&mut self, off: usize, v: u32) {
        self.buf[off..off + 4].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_u64(&mut self, off: usize, v: u64) {
        self.buf[off..off + 8].copy_from_slice(&v.to_be_bytes());
    }

    /// Stages the inode with its CRC recomputed (v3 inodes carry one).
    pub fn write<D: ReadAt>(mut self, stage: &Staged<D>) -> Result<()> {
        if self.buf.get(4) == Some(&3) {
            checksum::store(&mut self.buf, CRC_OFFSET);
        }
        stage
            .patch(self.offset, &self.buf)
            .map_err(|source| Error::Io {
                what: "staged inode",
                offset: self.offset,
                source,
            })
    }
}
