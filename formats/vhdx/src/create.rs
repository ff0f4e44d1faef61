//! What a new dynamic VHDX needs, encoded: the file type identifier, the two
//! headers, the two region tables, the metadata region and the BAT. The
//! caller streams the payload blocks; this module only lays out and encodes,
//! so both can be tested apart.
//!
//! Layout (every region 1 MiB-aligned, as the specification requires):
//!
//! | offset | what |
//! |---|---|
//! | 0 | file type identifier, headers at 64 and 128 KiB, region tables at 192 and 256 KiB |
//! | 1 MiB | the log (1 MiB, empty: its GUID in the headers is zero) |
//! | 2 MiB | the metadata region (1 MiB) |
//! | 3 MiB | the BAT (whole MiBs) |
//! | after | payload blocks, in the order they are first written |
//!
//! Blocks are 32 MiB (qemu's default for dynamic disks); a block's unwritten
//! parts are holes in the file, which read as the zeros they hold.

use crate::guid::{
    self, BAT_REGION, FILE_PARAMETERS, LOGICAL_SECTOR_SIZE, METADATA_REGION, VIRTUAL_DISK_SIZE,
};

pub const MIB: u64 = 1 << 20;
pub const BLOCK_SIZE: u64 = 32 * MIB;
pub const LOGICAL_SECTOR: u64 = 512;
const PHYSICAL_SECTOR: u32 = 4096;
pub const LOG_OFFSET: u64 = MIB;
pub const LOG_LENGTH: u64 = MIB;
pub const METADATA_OFFSET: u64 = 2 * MIB;
pub const METADATA_LENGTH: u64 = MIB;
pub const BAT_OFFSET: u64 = 3 * MIB;
/// The largest disk the format describes.
pub const MAX_SIZE: u64 = 64 << 40;
/// A BAT entry's state for a block with data.
const FULLY_PRESENT: u64 = 6;

const VIRTUAL_DISK_ID: [u8; 16] = guid::guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
const PHYSICAL_SECTOR_SIZE: [u8; 16] = guid::guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);

/// Sector bitmap entries come after every this many payload entries.
pub fn chunk_ratio() -> u64 {
    (1u64 << 23) * LOGICAL_SECTOR / BLOCK_SIZE
}

/// Payload blocks of a disk of `size` bytes.
pub fn blocks(size: u64) -> u64 {
    size.div_ceil(BLOCK_SIZE)
}

/// BAT entries (payload entries with their interleaved bitmap entries).
pub fn bat_entries(size: u64) -> u64 {
    let n = blocks(size);
    n + n.saturating_sub(1) / chunk_ratio()
}

/// Where the first payload block goes.
pub fn first_block_offset(size: u64) -> u64 {
    BAT_OFFSET + (bat_entries(size) * 8).next_multiple_of(MIB)
}

/// The BAT's bytes: block `i`'s file offset (a multiple of 1 MiB) or `None`.
pub fn encode_bat(size: u64, placed: &[Option<u64>]) -> Vec<u8> {
    let len = (bat_entries(size) * 8).next_multiple_of(MIB) as usize;
    let mut out = vec![0u8; len];
    let ratio = chunk_ratio();
    for (i, at) in placed.iter().enumerate() {
        let i = i as u64;
        let e = at.map_or(0, |a| (a / MIB) << 20 | FULLY_PRESENT);
        let slot = ((i + i / ratio) * 8) as usize;
        if let Some(dst) = out.get_mut(slot..slot + 8) {
            dst.copy_from_slice(&e.to_le_bytes());
        }
    }
    out
}

/// The first 1 MiB of the file: identifier, both headers, both region tables.
/// `ids` are the file-write, data-write and virtual-disk GUIDs (random).
pub fn front(size: u64, ids: [[u8; 16]; 3]) -> Vec<u8> {
    let mut out = vec![0u8; MIB as usize];
    out[..8].copy_from_slice(b"vhdxfile");
    for (i, c) in "vmscrub".encode_utf16().enumerate() {
        out[8 + 2 * i..10 + 2 * i].copy_from_slice(&c.to_le_bytes());
    }
    for (seq, at) in [(1u64, 64usize << 10), (2, 128 << 10)] {
        let h = &mut out[at..at + 4096];
        h[..4].copy_from_slice(b"head");
        h[8..16].copy_from_slice(&seq.to_le_bytes());
        h[16..32].copy_from_slice(&ids[0]);
        h[32..48].copy_from_slice(&ids[1]);
        // Log GUID 48..64 zero: nothing to replay. Log version 0, version 1.
        h[66..68].copy_from_slice(&1u16.to_le_bytes());
        h[68..72].copy_from_slice(&(LOG_LENGTH as u32).to_le_bytes());
        h[72..80].copy_from_slice(&LOG_OFFSET.to_le_bytes());
        seal(h);
    }
    let bat_len = first_block_offset(size) - BAT_OFFSET;
    for at in [192usize << 10, 256 << 10] {
        let r = &mut out[at..at + (64 << 10)];
        r[..4].copy_from_slice(b"regi");
        r[8..12].copy_from_slice(&2u32.to_le_bytes());
        for (k, (g, off, len)) in [
            (BAT_REGION, BAT_OFFSET, bat_len),
            (METADATA_REGION, METADATA_OFFSET, METADATA_LENGTH),
        ]
        .into_iter()
        .enumerate()
        {
            let e = &mut r[16 + 32 * k..48 + 32 * k];
            e[..16].copy_from_slice(&g);
            e[16..24].copy_from_slice(&off.to_le_bytes());
            e[24..28].copy_from_slice(&(len as u32).to_le_bytes());
            e[28..32].copy_from_slice(&1u32.to_le_bytes()); // required
        }
        seal(r);
    }
    out
}

/// The metadata region: its table and the five items a disk needs.
pub fn metadata(size: u64, disk_id: [u8; 16]) -> Vec<u8> {
    let mut out = vec![0u8; METADATA_LENGTH as usize];
    out[..8].copy_from_slice(b"metadata");
    let mut params = [0u8; 8];
    params[..4].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
    let items: [([u8; 16], Vec<u8>, u32); 5] = [
        (FILE_PARAMETERS, params.to_vec(), 4),
        (VIRTUAL_DISK_SIZE, size.to_le_bytes().to_vec(), 4 | 2),
        (VIRTUAL_DISK_ID, disk_id.to_vec(), 4 | 2),
        (
            LOGICAL_SECTOR_SIZE,
            (LOGICAL_SECTOR as u32).to_le_bytes().to_vec(),
            4 | 2,
        ),
        (
            PHYSICAL_SECTOR_SIZE,
            PHYSICAL_SECTOR.to_le_bytes().to_vec(),
            4 | 2,
        ),
    ];
    out[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
    let mut data_at = 64usize << 10;
    for (k, (id, data, flags)) in items.iter().enumerate() {
        let e = &mut out[32 + 32 * k..64 + 32 * k];
        e[..16].copy_from_slice(id);
        e[16..20].copy_from_slice(&(data_at as u32).to_le_bytes());
        e[20..24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        e[24..28].copy_from_slice(&flags.to_le_bytes());
        out[data_at..data_at + data.len()].copy_from_slice(data);
        data_at += 4096;
    }
    out
}

/// Writes the CRC-32C of `b` (its field at 4..8 counted as zero) into 4..8.
fn seal(b: &mut [u8]) {
    b[4..8].fill(0);
    let c = crc32c::crc32c(b);
    b[4..8].copy_from_slice(&c.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Vhdx;
    use vmscrub_blockdev::{MemDisk, ReadAt};

    /// A disk assembled from the encoders reads back through our reader.
    #[test]
    fn encoded_structures_read_back() {
        let size = 100 * MIB + 512;
        let first = first_block_offset(size);
        let mut file = front(size, [[1; 16], [2; 16], [3; 16]]);
        file.resize(first as usize + BLOCK_SIZE as usize, 0);
        let meta = metadata(size, [3; 16]);
        file[METADATA_OFFSET as usize..(METADATA_OFFSET + METADATA_LENGTH) as usize]
            .copy_from_slice(&meta);
        let mut placed = vec![None; blocks(size) as usize];
        placed[2] = Some(first);
        let bat = encode_bat(size, &placed);
        file[BAT_OFFSET as usize..BAT_OFFSET as usize + bat.len()].copy_from_slice(&bat);
        file[first as usize + 5] = 0xAB;
        let v = Vhdx::open(MemDisk::new(file)).unwrap();
        assert_eq!(v.size(), size);
        assert_eq!(v.subformat(), "dynamic");
        let mut b = [0u8; 8];
        v.read_exact_at(&mut b, 2 * BLOCK_SIZE).unwrap();
        assert_eq!(b, [0, 0, 0, 0, 0, 0xAB, 0, 0]);
        v.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(b, [0; 8]);
        assert_eq!(v.allocated_bytes(), BLOCK_SIZE);
    }
}
