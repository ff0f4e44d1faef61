//! FAT32's FSInfo sector: a cached free-cluster count and a hint where to look for
//! the next free cluster. Both are hints to drivers, but `fsck.fat` reports a wrong
//! free count, so an edit recomputes it from the FAT rather than adjusting a value
//! that may already have been wrong.
//!
//! Only the primary FSInfo is updated. The backup (next to the backup boot sector)
//! is written by mkfs and left alone by Linux and Windows alike; the boot sector,
//! which `fsck.fat` does compare with its backup, is never changed.

use vmscrub_blockdev::ReadAt;

use crate::bpb::Geometry;
use crate::error::{FatError, Result};

const LEAD_SIG: u32 = 0x4161_5252;
const STRUC_SIG: u32 = 0x6141_7272;
const TRAIL_SIG: u32 = 0xAA55_0000;
/// "Unknown" for both the free count and the hint.
pub(crate) const UNKNOWN: u32 = 0xFFFF_FFFF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FsInfo {
    /// Byte offset of the sector.
    pub offset: u64,
    pub free_count: u32,
    pub next_free: u32,
}

impl FsInfo {
    /// The FSInfo sector, if the volume is FAT32, names one, and its three
    /// signatures are intact (a sector without them is not touched).
    pub(crate) fn read<D: ReadAt + ?Sized>(dev: &D, g: &Geometry) -> Result<Option<FsInfo>> {
        let Some(sector) = g.fs_info_sector else {
            return Ok(None);
        };
        let offset = sector as u64 * g.bytes_per_sector as u64;
        let mut b = [0u8; 512];
        dev.read_exact_at(&mut b, offset)
            .map_err(|source| FatError::Read {
                what: "FSInfo sector",
                offset,
                source,
            })?;
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        if u32_at(0) != LEAD_SIG || u32_at(484) != STRUC_SIG || u32_at(508) != TRAIL_SIG {
            return Ok(None);
        }
        Ok(Some(FsInfo {
            offset,
            free_count: u32_at(488),
            next_free: u32_at(492),
        }))
    }

    /// The 8 bytes at offset 488 of the sector: free count, then next-free hint.
    pub(crate) fn encode_counts(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.free_count.to_le_bytes());
        b[4..].copy_from_slice(&self.next_free.to_le_bytes());
        b
    }
}
