//! What a new VHD needs: its footer, a dynamic disk's header and the layout of
//! its blocks (Microsoft's "Virtual Hard Disk Image Format Specification").
//! The writing itself (one sequential pass, holes kept) is the caller's; this
//! module only encodes the structures, so both can be tested apart.
//!
//! Decisions:
//! - **Geometry.** The footer's CHS geometry is the specification's for the
//!   size when it describes the size exactly. Otherwise it is the largest
//!   geometry (65535/16/255), which tells every reader to take the size field:
//!   Hyper-V and Azure always do, qemu does for that geometry, and only Virtual
//!   PC would size the disk by a geometry that cannot say its size.
//! - **Blocks** are 2 MiB (the specification's default, what Hyper-V and qemu
//!   write), each preceded by a one-sector bitmap with every bit set: a sector
//!   of an allocated block is data even where it is zero. Blocks are placed in
//!   the order they are first written, so the file grows front to back.

use crate::DiskType;
use crate::footer::{FOOTER_SIZE, checksum};

/// The data block size of dynamic disks vmscrub writes.
pub const BLOCK_SIZE: u64 = 2 << 20;
/// The sector bitmap before each block (one bit per 512-byte sector, rounded
/// up to a sector).
pub const BITMAP_BYTES: u64 = 512;
/// The largest disk the format describes (the specification's 2040 GB).
pub const MAX_SIZE: u64 = 2040 << 30;
/// Where the dynamic header and the BAT start.
pub const HEADER_OFFSET: u64 = FOOTER_SIZE;
pub const HEADER_SIZE: u64 = 1024;
pub const BAT_OFFSET: u64 = HEADER_OFFSET + HEADER_SIZE;
/// A BAT entry for a block never written.
pub const UNALLOCATED: u32 = u32::MAX;

/// Seconds from the Unix epoch to the VHD epoch (2000-01-01 00:00:00 UTC).
const VHD_EPOCH: u64 = 946_684_800;
const CREATOR_APP: &[u8; 4] = b"vmsc";
/// 0.1, as the specification encodes versions (major in the high half).
const CREATOR_VERSION: u32 = 0x0000_0001;
/// "Wi2k": the specification knows only Windows and Macintosh hosts.
const CREATOR_HOST: u32 = 0x5769_326B;

/// A disk to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDisk {
    /// The virtual size in bytes (a multiple of 512).
    pub size: u64,
    pub disk_type: DiskType,
    pub unique_id: [u8; 16],
    /// Seconds since the Unix epoch (clamped to the VHD epoch).
    pub unix_time: u64,
}

/// Why a disk cannot be a VHD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    #[error("a VHD holds at most 2040 GiB; this disk is {0} bytes")]
    TooLarge(u64),
    #[error("a VHD's size is a whole number of 512-byte sectors; this disk is {0} bytes")]
    NotSectors(u64),
    #[error("vmscrub writes fixed and dynamic VHDs, not differencing ones")]
    Differencing,
}

/// Whether a disk of `size` bytes can be a VHD.
pub fn check_size(size: u64) -> Result<(), CreateError> {
    if size > MAX_SIZE {
        return Err(CreateError::TooLarge(size));
    }
    if !size.is_multiple_of(512) {
        return Err(CreateError::NotSectors(size));
    }
    Ok(())
}

impl NewDisk {
    pub fn check(&self) -> Result<(), CreateError> {
        check_size(self.size)?;
        if self.disk_type == DiskType::Differencing {
            return Err(CreateError::Differencing);
        }
        Ok(())
    }

    /// The 512-byte footer (a dynamic disk also starts with a copy of it).
    pub fn footer(&self) -> Result<[u8; 512], CreateError> {
        self.check()?;
        let mut b = [0u8; 512];
        b[0..8].copy_from_slice(b"conectix");
        put32(&mut b, 8, 2); // features: "reserved", always set
        put32(&mut b, 12, 0x0001_0000);
        let data_offset = match self.disk_type {
            DiskType::Fixed => u64::MAX,
            _ => HEADER_OFFSET,
        };
        put64(&mut b, 16, data_offset);
        let stamp = self
            .unix_time
            .saturating_sub(VHD_EPOCH)
            .min(u64::from(u32::MAX));
        put32(&mut b, 24, stamp as u32);
        b[28..32].copy_from_slice(CREATOR_APP);
        put32(&mut b, 32, CREATOR_VERSION);
        put32(&mut b, 36, CREATOR_HOST);
        put64(&mut b, 40, self.size);
        put64(&mut b, 48, self.size);
        let (c, h, s) = geometry(self.size);
        b[56..58].copy_from_slice(&c.to_be_bytes());
        b[58] = h;
        b[59] = s;
        let t = match self.disk_type {
            DiskType::Fixed => 2,
            _ => 3,
        };
        put32(&mut b, 60, t);
        b[68..84].copy_from_slice(&self.unique_id);
        let sum = checksum(&b, 64);
        put32(&mut b, 64, sum);
        Ok(b)
    }
}

/// The dynamic-disk header for a disk of `size` bytes: 2 MiB blocks, the BAT
/// right after the header.
pub fn dynamic_header(size: u64) -> [u8; HEADER_SIZE as usize] {
    let mut b = [0u8; HEADER_SIZE as usize];
    b[0..8].copy_from_slice(b"cxsparse");
    put64(&mut b, 8, u64::MAX);
    put64(&mut b, 16, BAT_OFFSET);
    put32(&mut b, 24, 0x0001_0000);
    put32(&mut b, 28, bat_entries(size));
    put32(&mut b, 32, BLOCK_SIZE as u32);
    let sum = checksum(&b, 36);
    put32(&mut b, 36, sum);
    b
}

/// Blocks in a disk of `size` bytes (at most 1 020 000 for 2040 GiB).
pub fn bat_entries(size: u64) -> u32 {
    u32::try_from(size.div_ceil(BLOCK_SIZE)).unwrap_or(u32::MAX)
}

/// The BAT's bytes on disk: its entries, padded to a sector with unallocated
/// entries.
pub fn bat_bytes(size: u64) -> u64 {
    (u64::from(bat_entries(size)) * 4).next_multiple_of(512)
}

/// Where a dynamic disk's first block goes.
pub fn first_block_offset(size: u64) -> u64 {
    BAT_OFFSET + bat_bytes(size)
}

/// The BAT as written: `entries` (sector offsets of each block's bitmap, or
/// [`UNALLOCATED`]) big-endian, padded to a sector.
pub fn encode_bat(entries: &[u32]) -> Vec<u8> {
    let len = (entries.len() as u64 * 4).next_multiple_of(512) as usize;
    let mut out = vec![0xFF; len];
    for (i, e) in entries.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&e.to_be_bytes());
    }
    out
}

/// The footer's cylinders, heads and sectors per track for `size` bytes: the
/// specification's algorithm where its result is exactly `size`, else the
/// largest geometry (see the module documentation).
pub fn geometry(size: u64) -> (u16, u8, u8) {
    const MAX: (u16, u8, u8) = (65535, 16, 255);
    let total = (size / 512).min(65535 * 16 * 255);
    let (spt, heads, cth) = if total >= 65535 * 16 * 63 {
        (255, 16, total / 255)
    } else {
        let mut spt = 17;
        let mut cth = total / spt;
        let mut heads = cth.div_ceil(1024).max(4);
        if cth >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if cth >= heads * 1024 {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
        (spt, heads, cth)
    };
    let cylinders = cth / heads;
    if cylinders * heads * spt * 512 != size {
        return MAX;
    }
    match (
        u16::try_from(cylinders),
        u8::try_from(heads),
        u8::try_from(spt),
    ) {
        (Ok(c), Ok(h), Ok(s)) => (c, h, s),
        _ => MAX,
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_the_specifications_where_it_is_exact() {
        // 1000 cylinders × 4 heads × 17 sectors: exactly what the algorithm says.
        assert_eq!(geometry(1000 * 4 * 17 * 512), (1000, 4, 17));
        // 1 GiB is not a whole number of 16 × 63 cylinders: the size field rules.
        assert_eq!(geometry(1 << 30), (65535, 16, 255));
        // Beyond 127 GiB every disk has the largest geometry.
        assert_eq!(geometry(200 << 30), (65535, 16, 255));
    }

    #[test]
    fn footer_and_header_checksums_verify_and_the_reader_agrees() {
        let d = NewDisk {
            size: 5 << 20,
            disk_type: DiskType::Dynamic,
            unique_id: [7; 16],
            unix_time: VHD_EPOCH + 10,
        };
        let f = d.footer().unwrap();
        assert_eq!(
            u32::from_be_bytes(f[64..68].try_into().unwrap()),
            checksum(&f, 64)
        );
        assert_eq!(u32::from_be_bytes(f[24..28].try_into().unwrap()), 10);
        let h = dynamic_header(5 << 20);
        assert_eq!(
            u32::from_be_bytes(h[36..40].try_into().unwrap()),
            checksum(&h, 36)
        );
        assert_eq!(bat_entries(5 << 20), 3);
        assert_eq!(first_block_offset(5 << 20), 1536 + 512);
        let bat = encode_bat(&[4, UNALLOCATED, 9]);
        assert_eq!(bat.len(), 512);
        assert_eq!(&bat[..4], &4u32.to_be_bytes());
        assert!(bat[4..8].iter().chain(&bat[12..]).all(|&b| b == 0xFF));

        assert_eq!(
            NewDisk { size: 1000, ..d }.footer(),
            Err(CreateError::NotSectors(1000))
        );
        assert_eq!(
            NewDisk {
                size: MAX_SIZE + 512,
                ..d
            }
            .footer(),
            Err(CreateError::TooLarge(MAX_SIZE + 512))
        );
    }
}
