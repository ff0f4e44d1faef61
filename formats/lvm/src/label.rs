//! The PV label: `LABELONE` in one of the first four 512-byte sectors, followed
//! (at `offset_xl` inside that sector) by the `pv_header`: the PV's UUID, its
//! size, and three zero-terminated lists of disk locations — data areas (where
//! the physical extents start), metadata areas, and (label extension v1+)
//! bootloader areas. Layout per lvm2's lib/format_text/layout.h and
//! lib/label/label.h.

use vmscrub_blockdev::ReadAt;

use crate::error::{Error, Result, io};
use crate::le::{INITIAL_CRC, crc, u32_at, u64_at};

pub const SECTOR: u64 = 512;
/// Sectors scanned for the label (LABEL_SCAN_SECTORS).
pub const LABEL_SCAN_SECTORS: u64 = 4;
const ID: &[u8; 8] = b"LABELONE";
const TYPE: &[u8; 8] = b"LVM2 001";

/// A byte range on the PV (`disk_locn`): `size == 0` in a data area means "to
/// the end of the device".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLocn {
    pub offset: u64,
    pub size: u64,
}

/// A parsed PV label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Sector (0..4) holding the label.
    pub sector: u64,
    /// The 32-character UUID as stored (no dashes).
    pub pv_uuid: String,
    /// Size of the PV in bytes as the label records it.
    pub device_size: u64,
    pub data_areas: Vec<DiskLocn>,
    pub metadata_areas: Vec<DiskLocn>,
    pub bootloader_areas: Vec<DiskLocn>,
}

impl Label {
    /// The UUID as lvm2 prints it (`xxxxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxxxx`).
    pub fn uuid_dashed(&self) -> String {
        dashed(&self.pv_uuid)
    }
}

/// Inserts lvm2's dashes into a 32-character UUID (6-4-4-4-4-4-6).
pub fn dashed(raw: &str) -> String {
    let mut out = String::with_capacity(38);
    for (i, c) in raw.chars().enumerate() {
        if [6, 10, 14, 18, 22, 26].contains(&i) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Finds and parses the label in the first four sectors. `Ok(None)`: no label
/// (or a stale one whose checksum fails, which lvm2 ignores too). A label whose
/// checksum holds but whose header is malformed is an error.
pub fn read_label<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<Label>> {
    let n = (LABEL_SCAN_SECTORS * SECTOR).min(dev.size() / SECTOR * SECTOR);
    let mut head = vec![0u8; n as usize];
    dev.read_exact_at(&mut head, 0)
        .map_err(io("LVM2 label sectors"))?;
    for (i, s) in head.chunks_exact(SECTOR as usize).enumerate() {
        let sector = i as u64;
        if s.get(..8) != Some(ID) || s.get(24..32) != Some(TYPE) {
            continue;
        }
        if u64_at(s, 8) != Some(sector) || u32_at(s, 16) != Some(crc(INITIAL_CRC, &s[20..])) {
            continue;
        }
        return parse_pv_header(s, sector).map(Some);
    }
    Ok(None)
}

fn parse_pv_header(s: &[u8], sector: u64) -> Result<Label> {
    let bad = |reason: &str| Error::Label {
        sector,
        reason: reason.to_string(),
    };
    let at = u32_at(s, 20).ok_or_else(|| bad("truncated header"))? as usize;
    if !(32..=SECTOR as usize - 40).contains(&at) {
        return Err(bad(&format!("pv_header offset {at} is outside the sector")));
    }
    let uuid = s.get(at..at + 32).ok_or_else(|| bad("truncated UUID"))?;
    if !uuid.iter().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad("the PV UUID is not 32 alphanumeric characters"));
    }
    let pv_uuid = String::from_utf8_lossy(uuid).into_owned();
    let device_size = u64_at(s, at + 32).ok_or_else(|| bad("truncated device size"))?;
    let mut pos = at + 40;
    let data_areas = locn_list(s, &mut pos).ok_or_else(|| bad("unterminated data area list"))?;
    let metadata_areas =
        locn_list(s, &mut pos).ok_or_else(|| bad("unterminated metadata area list"))?;
    // pv_header_extension: version, flags, then bootloader areas (version >= 1).
    let mut bootloader_areas = vec![];
    if let Some(version) = u32_at(s, pos)
        && version >= 1
    {
        pos += 8;
        bootloader_areas =
            locn_list(s, &mut pos).ok_or_else(|| bad("unterminated bootloader area list"))?;
    }
    if data_areas.len() > 1 {
        return Err(bad("more than one data area (lvm2 writes exactly one)"));
    }
    Ok(Label {
        sector,
        pv_uuid,
        device_size,
        data_areas,
        metadata_areas,
        bootloader_areas,
    })
}

/// A `disk_locn` list ending with an all-zero entry; `None` if the sector ends first.
fn locn_list(s: &[u8], pos: &mut usize) -> Option<Vec<DiskLocn>> {
    let mut out = vec![];
    loop {
        let offset = u64_at(s, *pos)?;
        let size = u64_at(s, *pos + 8)?;
        *pos += 16;
        if offset == 0 {
            return Some(out);
        }
        out.push(DiskLocn { offset, size });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    /// A label sector for a PV with one data area at `pe_start` and one mda.
    pub(crate) fn sector(uuid: &str, size: u64, pe_start: u64, mda: DiskLocn) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[..8].copy_from_slice(ID);
        s[20..24].copy_from_slice(&32u32.to_le_bytes());
        s[24..32].copy_from_slice(TYPE);
        s[32..64].copy_from_slice(uuid.as_bytes());
        s[64..72].copy_from_slice(&size.to_le_bytes());
        s[72..80].copy_from_slice(&pe_start.to_le_bytes());
        // terminator 88..104, mda 104..120, terminator 120..136, ext v2 at 136
        s[104..112].copy_from_slice(&mda.offset.to_le_bytes());
        s[112..120].copy_from_slice(&mda.size.to_le_bytes());
        s[136..140].copy_from_slice(&2u32.to_le_bytes());
        seal(&mut s, 1);
        s
    }

    pub(crate) fn seal(s: &mut [u8], sector: u64) {
        s[8..16].copy_from_slice(&sector.to_le_bytes());
        let c = crc(INITIAL_CRC, &s[20..512]);
        s[16..20].copy_from_slice(&c.to_le_bytes());
    }

    const UUID: &str = "Zq3B4c5D6e7F8g9H0i1J2k3L4m5N6o7Q";

    #[test]
    fn parses_a_label_in_sector_one() {
        let mut d = vec![0u8; 8192];
        let mda = DiskLocn {
            offset: 4096,
            size: 1 << 20,
        };
        d[512..1024].copy_from_slice(&sector(UUID, 8 << 20, 1 << 20, mda));
        let l = read_label(&MemDisk::new(d)).unwrap().unwrap();
        assert_eq!(l.sector, 1);
        assert_eq!(l.uuid_dashed(), "Zq3B4c-5D6e-7F8g-9H0i-1J2k-3L4m-5N6o7Q");
        assert_eq!(l.device_size, 8 << 20);
        assert_eq!(
            l.data_areas,
            [DiskLocn {
                offset: 1 << 20,
                size: 0
            }]
        );
        assert_eq!(l.metadata_areas, [mda]);
        assert!(l.bootloader_areas.is_empty());
    }

    #[test]
    fn bad_crc_is_no_label_and_bad_lists_are_errors() {
        let mda = DiskLocn {
            offset: 4096,
            size: 4096,
        };
        let mut d = vec![0u8; 4096];
        let mut s = sector(UUID, 1, 2048, mda);
        s[100] ^= 1;
        d[512..1024].copy_from_slice(&s);
        assert!(read_label(&MemDisk::new(d.clone())).unwrap().is_none());
        // pv_header pointing past the sector, with a valid CRC.
        let mut s = sector(UUID, 1, 2048, mda);
        s[20..24].copy_from_slice(&600u32.to_le_bytes());
        seal(&mut s, 1);
        d[512..1024].copy_from_slice(&s);
        assert!(matches!(
            read_label(&MemDisk::new(d.clone())),
            Err(Error::Label { .. })
        ));
        // A list that never ends.
        let mut s = sector(UUID, 1, 2048, mda);
        for i in (72..512).step_by(8) {
            s[i] = 1;
        }
        seal(&mut s, 1);
        d[512..1024].copy_from_slice(&s);
        assert!(read_label(&MemDisk::new(d.clone())).is_err());
        // Tiny devices: no panic.
        assert!(read_label(&MemDisk::new(vec![0u8; 100])).unwrap().is_none());
    }
}
