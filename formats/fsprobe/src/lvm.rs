//! LVM2 physical-volume label: `LABELONE` in one of the first four sectors, with
//! a CRC over the rest of its sector that blkid insists on (and so do we: a stale
//! label without a valid CRC is not a PV to LVM either).

use vmscrub_blockdev::ReadAt;

use crate::util::{le32, le64, read_opt};
use crate::{Error, Filesystem, Kind};

/// LVM's CRC: the reflected CRC-32 polynomial, nibble-wise, from a fixed seed and
/// without the final inversion (lib/misc/crc.c in LVM2).
fn lvm_crc(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xf597_a6cf;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & 0u32.wrapping_sub(crc & 1));
        }
    }
    crc
}

pub(crate) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<Filesystem>, Error> {
    let Some(head) = read_opt(dev, 0, 4 * 512, "LVM2 label")? else {
        return Ok(None);
    };
    let mut warnings = Vec::new();
    for (sector, s) in head.chunks_exact(512).enumerate() {
        if s.get(0..8) != Some(b"LABELONE") || s.get(0x18..0x20) != Some(b"LVM2 001") {
            continue;
        }
        if le64(s, 8) != sector as u64 {
            warnings.push(format!(
                "LVM2 label in sector {sector} says it is in sector {}",
                le64(s, 8)
            ));
            continue;
        }
        let crc = lvm_crc(s.get(20..).unwrap_or_default());
        if crc != le32(s, 16) {
            warnings.push(format!(
                "LVM2 label in sector {sector} has a bad checksum; not treated as a PV"
            ));
            continue;
        }
        let raw = String::from_utf8_lossy(s.get(0x20..0x40).unwrap_or_default()).into_owned();
        let mut uuid = String::new();
        for (i, c) in raw.chars().enumerate() {
            if [6, 10, 14, 18, 22, 26].contains(&i) {
                uuid.push('-');
            }
            uuid.push(c);
        }
        return Ok(Some(Filesystem {
            kind: Kind::LvmPv,
            uuid: Some(uuid),
            version: Some("LVM2 001".into()),
            ..Filesystem::unknown()
        }));
    }
    Ok((!warnings.is_empty()).then(|| Filesystem {
        warnings,
        ..Filesystem::unknown()
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    /// A PV label in sector 1 with a valid CRC.
    pub fn label() -> Vec<u8> {
        let mut d = vec![0u8; 8192];
        let s = 512;
        d[s..s + 8].copy_from_slice(b"LABELONE");
        d[s + 8] = 1;
        d[s + 20] = 0x20;
        d[s + 0x18..s + 0x20].copy_from_slice(b"LVM2 001");
        d[s + 0x20..s + 0x40].copy_from_slice(b"Ag3B4c5D6e7F8g9H0i1J2k3L4m5N6o7P");
        let crc = lvm_crc(&d[s + 20..s + 512]);
        d[s + 16..s + 20].copy_from_slice(&crc.to_le_bytes());
        d
    }

    #[test]
    fn crc_matches_lvm_reference_value() {
        // The table-driven nibble form in LVM2/libblkid gives this for 4 zero bytes.
        let mut crc: u32 = 0xf597a6cf;
        const T: [u32; 16] = [
            0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158,
            0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4,
            0xa00ae278, 0xbdbdf21c,
        ];
        for b in [0u8, 1, 2, 0xff] {
            crc ^= u32::from(b);
            crc = (crc >> 4) ^ T[(crc & 0xf) as usize];
            crc = (crc >> 4) ^ T[(crc & 0xf) as usize];
        }
        assert_eq!(lvm_crc(&[0, 1, 2, 0xff]), crc);
    }

    #[test]
    fn finds_pv_and_rejects_bad_crc() {
        let fs = probe(&MemDisk::new(label())).unwrap().unwrap();
        assert_eq!(fs.kind, Kind::LvmPv);
        assert_eq!(
            fs.uuid.as_deref(),
            Some("Ag3B4c-5D6e-7F8g-9H0i-1J2k-3L4m-5N6o7P")
        );
        let mut d = label();
        d[600] ^= 1;
        let fs = probe(&MemDisk::new(d)).unwrap().unwrap();
        assert_eq!(fs.kind, Kind::Unknown);
        assert!(fs.warnings[0].contains("bad checksum"));
    }
}
