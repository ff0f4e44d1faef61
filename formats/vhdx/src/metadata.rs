//! The metadata region: a table of items by GUID. Reading a disk needs three:
//! the file parameters (block size; whether the disk has a parent), the
//! virtual disk size and the logical sector size. Any other item marked
//! required is one vmscrub does not know, and refuses.

use vmscrub_blockdev::ReadAt;

use crate::guid::{self, FILE_PARAMETERS, LOGICAL_SECTOR_SIZE, VIRTUAL_DISK_SIZE};
use crate::header::{Region, le32, le64};
use crate::{Error, read};

/// The largest virtual disk the format allows (64 TiB).
pub const MAX_DISK: u64 = 64 << 40;
const MAX_ITEMS: usize = 2047;
/// Items are at least this far into the region (after the 64 KiB table).
const ITEMS_START: u64 = 64 << 10;
/// The known items' GUIDs that a reader may need besides the three above
/// (page 83 data, physical sector size, parent locator): not required to read.
const KNOWN_OPTIONAL: [[u8; 16]; 3] = [
    guid::guid(
        0xBECA_12AB,
        0xB2E6,
        0x4523,
        [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
    ),
    guid::guid(
        0xCDA3_48C7,
        0x445D,
        0x4471,
        [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
    ),
    guid::guid(
        0xA8D3_5F2D,
        0xB30B,
        0x454D,
        [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    pub block_size: u32,
    /// Blocks stay allocated (a fixed disk).
    pub leave_allocated: bool,
    pub size: u64,
    pub logical_sector: u32,
}

pub fn read_metadata(file: &(impl ReadAt + ?Sized), region: &Region) -> Result<Metadata, Error> {
    let table = read(file, "metadata table", region.offset, ITEMS_START)?;
    if &table[..8] != b"metadata" {
        return Err(Error::corrupt(
            "metadata table",
            "no \"metadata\" signature",
        ));
    }
    let n = usize::from(u16::from_le_bytes([table[10], table[11]]));
    if n > MAX_ITEMS {
        return Err(Error::corrupt("metadata table", format!("{n} entries")));
    }
    let (mut params, mut size, mut sector) = (None, None, None);
    for i in 0..n {
        let e = &table[32 + i * 32..64 + i * 32];
        let mut id = [0u8; 16];
        id.copy_from_slice(&e[..16]);
        let (off, len, flags) = (le32(e, 16), le32(e, 20), le32(e, 24));
        let is_user = flags & 1 != 0;
        let required = flags & 4 != 0;
        let item = |want: u32| -> Result<Vec<u8>, Error> {
            let end = u64::from(off) + u64::from(want);
            if len < want || u64::from(off) < ITEMS_START || end > u64::from(region.length) {
                return Err(Error::corrupt(
                    "metadata item",
                    format!("{} at {off}+{len} outside its region", guid::show(&id)),
                ));
            }
            read(
                file,
                "metadata item",
                region.offset + u64::from(off),
                u64::from(want),
            )
        };
        if is_user {
            continue;
        }
        if id == FILE_PARAMETERS {
            let b = item(8)?;
            params = Some((le32(&b, 0), le32(&b, 4)));
        } else if id == VIRTUAL_DISK_SIZE {
            size = Some(le64(&item(8)?, 0));
        } else if id == LOGICAL_SECTOR_SIZE {
            sector = Some(le32(&item(4)?, 0));
        } else if required && !KNOWN_OPTIONAL.contains(&id) {
            return Err(Error::UnknownRequired(format!(
                "metadata item {}",
                guid::show(&id)
            )));
        }
    }
    let missing = |what: &str| Error::corrupt("metadata", format!("no {what} item"));
    let (block_size, flags) = params.ok_or_else(|| missing("file parameters"))?;
    let size = size.ok_or_else(|| missing("virtual disk size"))?;
    let logical_sector = sector.ok_or_else(|| missing("logical sector size"))?;
    if flags & 2 != 0 {
        return Err(Error::Differencing);
    }
    if !block_size.is_power_of_two() || !(1 << 20..=256 << 20).contains(&block_size) {
        return Err(Error::corrupt(
            "file parameters",
            format!("block size {block_size} is not a power of two from 1 to 256 MiB"),
        ));
    }
    if logical_sector != 512 && logical_sector != 4096 {
        return Err(Error::corrupt(
            "logical sector size",
            format!("{logical_sector} (512 or 4096)"),
        ));
    }
    if size == 0 || size > MAX_DISK || !size.is_multiple_of(u64::from(logical_sector)) {
        return Err(Error::corrupt(
            "virtual disk size",
            format!("{size} bytes (whole sectors, at most 64 TiB)"),
        ));
    }
    Ok(Metadata {
        block_size,
        leave_allocated: flags & 1 != 0,
        size,
        logical_sector,
    })
}
