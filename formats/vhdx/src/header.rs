//! The two headers and the two region tables at the front of every VHDX, each
//! with a CRC-32C of its bytes (the checksum field counted as zero). The header
//! in force is the valid copy with the larger sequence number; a region table
//! copy that fails its checksum gives way to the other.

use vmscrub_blockdev::ReadAt;

use crate::guid::{self, BAT_REGION, METADATA_REGION};
use crate::{Error, read};

const HEADER_AT: [u64; 2] = [64 << 10, 128 << 10];
const HEADER_SIZE: u64 = 4 << 10;
const REGIONS_AT: [u64; 2] = [192 << 10, 256 << 10];
const REGIONS_SIZE: u64 = 64 << 10;
/// The most entries a 64 KiB region table holds.
const MAX_REGIONS: u32 = 2047;

/// The header in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub sequence: u64,
    /// Non-zero: the log holds entries to replay before the disk is consistent.
    pub log_guid: [u8; 16],
    pub log_offset: u64,
    pub log_length: u32,
}

/// One region: where the BAT and the metadata are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub guid: [u8; 16],
    pub offset: u64,
    pub length: u32,
    pub required: bool,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The CRC-32C at `b[4..8]` matches the bytes (with that field as zero).
fn checksum_ok(b: &[u8]) -> Result<(), String> {
    let stored = le32(b, 4);
    let mut c = crc32c::crc32c(&b[..4]);
    c = crc32c::crc32c_append(c, &[0; 4]);
    c = crc32c::crc32c_append(c, &b[8..]);
    if c == stored {
        Ok(())
    } else {
        Err(format!("checksum {stored:#010x}, bytes give {c:#010x}"))
    }
}

fn parse_header(b: &[u8]) -> Result<Header, String> {
    if &b[..4] != b"head" {
        return Err("no \"head\" signature".into());
    }
    checksum_ok(b)?;
    let version = le16(b, 66);
    if version != 1 {
        return Err(format!("version {version} (only 1 exists)"));
    }
    let mut log_guid = [0u8; 16];
    log_guid.copy_from_slice(&b[48..64]);
    Ok(Header {
        sequence: le64(b, 8),
        log_guid,
        log_length: le32(b, 68),
        log_offset: le64(b, 72),
    })
}

/// The valid header with the larger sequence number.
pub fn current(file: &(impl ReadAt + ?Sized)) -> Result<Header, Error> {
    let mut best: Option<Header> = None;
    let mut why = Vec::new();
    for (i, at) in HEADER_AT.into_iter().enumerate() {
        let b = read(file, "header", at, HEADER_SIZE)?;
        match parse_header(&b) {
            Ok(h) if best.as_ref().is_none_or(|x| h.sequence > x.sequence) => best = Some(h),
            Ok(_) => {}
            Err(e) => why.push(format!("header {}: {e}", i + 1)),
        }
    }
    best.ok_or_else(|| Error::NoHeader(why.join("; ")))
}

fn parse_regions(b: &[u8], file_size: u64) -> Result<Vec<Region>, String> {
    if &b[..4] != b"regi" {
        return Err("no \"regi\" signature".into());
    }
    checksum_ok(b)?;
    let n = le32(b, 8);
    if n > MAX_REGIONS {
        return Err(format!("{n} entries (at most {MAX_REGIONS} fit)"));
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let e = &b[16 + i * 32..48 + i * 32];
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&e[..16]);
        let r = Region {
            guid,
            offset: le64(e, 16),
            length: le32(e, 24),
            required: le32(e, 28) & 1 != 0,
        };
        let mib = 1u64 << 20;
        let end = r.offset.saturating_add(u64::from(r.length));
        if !r.offset.is_multiple_of(mib) || r.offset < mib || end > file_size {
            return Err(format!(
                "region {} at {}+{} is not 1 MiB-aligned inside the {file_size}-byte file",
                guid::show(&guid),
                r.offset,
                r.length
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// The BAT and metadata regions (of the first valid region table).
pub fn regions(file: &(impl ReadAt + ?Sized)) -> Result<(Region, Region), Error> {
    let mut why = Vec::new();
    for (i, at) in REGIONS_AT.into_iter().enumerate() {
        let b = read(file, "region table", at, REGIONS_SIZE)?;
        let list = match parse_regions(&b, file.size()) {
            Ok(l) => l,
            Err(e) => {
                why.push(format!("table {}: {e}", i + 1));
                continue;
            }
        };
        if let Some(r) = list
            .iter()
            .find(|r| r.required && r.guid != BAT_REGION && r.guid != METADATA_REGION)
        {
            return Err(Error::UnknownRequired(format!(
                "region {}",
                guid::show(&r.guid)
            )));
        }
        let find = |g: [u8; 16]| list.iter().copied().find(|r| r.guid == g);
        match (find(BAT_REGION), find(METADATA_REGION)) {
            (Some(b), Some(m)) => return Ok((b, m)),
            _ => why.push(format!("table {}: no BAT or no metadata region", i + 1)),
        }
    }
    Err(Error::NoRegionTable(why.join("; ")))
}
