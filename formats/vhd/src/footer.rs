//! The hard-disk footer: 512 bytes, big-endian, at the end of every VHD (and
//! at the start of a dynamic one). Its checksum is the one's complement of the
//! sum of its bytes with the checksum field taken as zero.

use vmscrub_blockdev::ReadAt;

use crate::Error;

pub const FOOTER_SIZE: u64 = 512;
const COOKIE: &[u8; 8] = b"conectix";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskType {
    Fixed,
    Dynamic,
    Differencing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Offset of the dynamic header; `u64::MAX` on fixed disks.
    pub data_offset: u64,
    /// The virtual disk's size in bytes.
    pub current_size: u64,
    pub disk_type: DiskType,
    /// Four ASCII letters: `qemu`, `win `, `vpc `, `vs  `, …
    pub creator: [u8; 4],
    pub unique_id: [u8; 16],
    /// Where the footer was read: the end of the file, or its start (a damaged
    /// end copy on a dynamic disk).
    pub at: u64,
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(w)
}

pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(w)
}

/// One's complement of the byte sum, the checksum field (`at..at+4`) as zero.
pub(crate) fn checksum(b: &[u8], at: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(at..at + 4).contains(i))
        .fold(0u32, |s, (_, &x)| s.wrapping_add(u32::from(x)));
    !sum
}

fn parse(b: &[u8], at: u64) -> Result<Footer, Error> {
    let stored = be32(b, 64);
    let computed = checksum(b, 64);
    if stored != computed {
        return Err(Error::FooterChecksum { stored, computed });
    }
    let disk_type = match be32(b, 60) {
        2 => DiskType::Fixed,
        3 => DiskType::Dynamic,
        4 => DiskType::Differencing,
        t => return Err(Error::DiskType(t)),
    };
    let mut creator = [0u8; 4];
    creator.copy_from_slice(&b[28..32]);
    let mut unique_id = [0u8; 16];
    unique_id.copy_from_slice(&b[68..84]);
    Ok(Footer {
        data_offset: be64(b, 16),
        current_size: be64(b, 48),
        disk_type,
        creator,
        unique_id,
        at,
    })
}

fn read_at(file: &(impl ReadAt + ?Sized), offset: u64) -> Result<Vec<u8>, Error> {
    let mut b = vec![0u8; FOOTER_SIZE as usize];
    file.read_exact_at(&mut b, offset)
        .map_err(|source| Error::Io {
            what: "footer",
            offset,
            source,
        })?;
    Ok(b)
}

/// The footer at the end of the file; else (a damaged or missing end copy) the
/// copy a dynamic disk keeps at its start. Virtual PC before 2004 wrote 511-byte
/// footers; those are read too.
pub fn find(file: &(impl ReadAt + ?Sized)) -> Result<Footer, Error> {
    let size = file.size();
    if size < FOOTER_SIZE {
        return Err(Error::Truncated {
            what: "footer",
            need: FOOTER_SIZE,
            have: size,
        });
    }
    let mut first_err = None;
    for at in [size - FOOTER_SIZE, size - FOOTER_SIZE + 1, 0] {
        if at + FOOTER_SIZE > size {
            continue;
        }
        let b = read_at(file, at)?;
        if &b[..8] != COOKIE {
            continue;
        }
        match parse(&b, at) {
            Ok(f) if at == 0 && f.disk_type == DiskType::Fixed => continue,
            Ok(f) => return Ok(f),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(Error::NoFooter))
}
