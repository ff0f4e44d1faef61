//! FAT12/16/32 boot sector (BIOS parameter block). The FAT type is decided by the
//! count of data clusters, as Microsoft's specification (fatgen103) says — the
//! `FAT16   ` string in the boot sector is only a comment. The label is the volume
//! label entry of the root directory when there is one (what Windows and blkid
//! show), else the boot sector's copy.

use vmscrub_blockdev::ReadAt;

use crate::util::{label, le16, le32, read_opt};
use crate::{Error, FatDetails, Filesystem, Kind};

/// Largest cluster counts of FAT12 and FAT16 (fatgen103: < 4085 is FAT12,
/// < 65525 is FAT16, anything more FAT32).
const FAT12_LIMIT: u64 = 4085;
const FAT16_LIMIT: u64 = 65525;
const NO_NAME: &[u8; 11] = b"NO NAME    ";
/// Root directory search bounds: clusters followed on FAT32, bytes read in all.
const MAX_ROOT_CLUSTERS: usize = 100;
const MAX_ROOT_BYTES: u64 = 1 << 20;

pub(crate) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<Filesystem>, Error> {
    let Some(bs) = read_opt(dev, 0, 512, "FAT boot sector")? else {
        return Ok(None);
    };
    let strong_magic = matches!(bs.get(0x52..0x5A), Some(b"FAT32   "))
        || bs.get(0x52..0x57) == Some(b"MSWIN")
        || bs.get(0x36..0x3B) == Some(b"MSDOS")
        || matches!(
            bs.get(0x36..0x3E),
            Some(b"FAT16   " | b"FAT12   " | b"FAT     ")
        );
    let jump = matches!(bs.first(), Some(0xEB | 0xE9));
    let sig = bs.get(510..512) == Some(&[0x55, 0xAA][..]);
    if !(strong_magic || (jump && sig)) {
        return Ok(None);
    }
    if !strong_magic && matches!(bs.get(0x36..0x3E), Some(b"JFS     " | b"HPFS    ")) {
        return Ok(None);
    }
    let bps = u64::from(le16(&bs, 11));
    let spc = u64::from(bs.get(13).copied().unwrap_or(0));
    let reserved = u64::from(le16(&bs, 14));
    let nfats = u64::from(bs.get(16).copied().unwrap_or(0));
    let root_entries = u64::from(le16(&bs, 17));
    let media = bs.get(21).copied().unwrap_or(0);
    let fat_sz16 = u64::from(le16(&bs, 22));
    let fat_sz32 = u64::from(le32(&bs, 36));
    let tot16 = u64::from(le16(&bs, 19));
    let tot32 = u64::from(le32(&bs, 32));
    if !matches!(bps, 512 | 1024 | 2048 | 4096)
        || !spc.is_power_of_two()
        || reserved == 0
        || nfats == 0
        || !(media == 0xF0 || media >= 0xF8)
    {
        return Ok(None);
    }
    let fat_sz = if fat_sz16 != 0 { fat_sz16 } else { fat_sz32 };
    let total = if tot16 != 0 { tot16 } else { tot32 };
    let root_dir_sectors = (root_entries * 32).div_ceil(bps);
    let meta = reserved + nfats * fat_sz + root_dir_sectors;
    let Some(data_sectors) = total.checked_sub(meta) else {
        return Ok(None);
    };
    if fat_sz == 0 {
        return Ok(None);
    }
    let clusters = data_sectors / spc;
    let bits: u8 = if clusters < FAT12_LIMIT {
        12
    } else if clusters < FAT16_LIMIT {
        16
    } else {
        32
    };
    let mut warnings = Vec::new();
    let layout32 = fat_sz16 == 0;
    if layout32 != (bits == 32) {
        warnings.push(format!(
            "FAT boot sector has the FAT{} layout but {clusters} clusters make it FAT{bits} by the specification",
            if layout32 { "32" } else { "12/16" }
        ));
    }
    if total.saturating_mul(bps) > dev.size() {
        warnings.push(format!(
            "FAT filesystem claims {} bytes but the device holds {} (truncated?)",
            total.saturating_mul(bps),
            dev.size()
        ));
    }
    // The extended BPB (serial, label) sits after the FAT32 fields on FAT32 layouts.
    let ext = if layout32 { 0x40 } else { 0x24 };
    let serial = le32(&bs, ext + 3);
    let boot_label_raw: [u8; 11] = crate::util::bytes(&bs, ext + 7);
    let root_label_raw = if layout32 {
        let cluster_bytes = bps * spc;
        let data_start = (reserved + nfats * fat_sz) * bps;
        root_label_fat32(
            dev,
            le32(&bs, 44),
            cluster_bytes,
            data_start,
            reserved * bps,
            bits,
        )?
    } else {
        let start = (reserved + nfats * fat_sz) * bps;
        root_label_in(dev, start, root_entries.min(MAX_ROOT_BYTES / 32))?
    };
    let pick = |raw: &[u8; 11]| if raw == NO_NAME { None } else { label(raw) };
    let boot_label = pick(&boot_label_raw);
    let vol_label = root_label_raw
        .as_ref()
        .and_then(pick)
        .or_else(|| boot_label.clone());
    if layout32 {
        let fsinfo = u64::from(le16(&bs, 48));
        if fsinfo != 0
            && let Some(fi) = read_opt(dev, fsinfo * bps, 512, "FAT32 FSInfo")?
        {
            let s1 = fi.get(0..4).unwrap_or_default();
            let s2 = fi.get(484..488).unwrap_or_default();
            if !matches!(s1, b"RRaA" | b"RRdA" | [0, 0, 0, 0])
                || !matches!(s2, b"rrAa" | [0, 0, 0, 0])
            {
                warnings.push(format!(
                    "FAT32 FSInfo sector {fsinfo} has no valid signature"
                ));
            }
        }
    }
    let b = serial.to_le_bytes();
    Ok(Some(Filesystem {
        kind: Kind::Vfat,
        label: vol_label,
        uuid: Some(format!("{:02X}{:02X}-{:02X}{:02X}", b[3], b[2], b[1], b[0])),
        version: Some(format!("FAT{bits}")),
        block_size: u32::try_from(bps * spc).ok(),
        ext: None,
        fat: Some(FatDetails {
            fat_bits: bits,
            clusters,
            sector_size: bps as u32,
            boot_label,
        }),
        warnings,
    }))
}

/// The volume-label entry among `count` 32-byte entries at `offset`, with blkid's
/// rules: stop at an end marker, skip deleted and long-name entries and anything
/// with a cluster, take the first entry with the volume-id bit and not the
/// directory bit.
fn root_label_in<D: ReadAt + ?Sized>(
    dev: &D,
    offset: u64,
    count: u64,
) -> Result<Option<[u8; 11]>, Error> {
    Ok(scan(dev, offset, count)?.0)
}

/// `(label, reached_end_marker)`.
fn scan<D: ReadAt + ?Sized>(
    dev: &D,
    offset: u64,
    count: u64,
) -> Result<(Option<[u8; 11]>, bool), Error> {
    let Some(dir) = read_opt(dev, offset, (count * 32) as usize, "FAT root directory")? else {
        return Ok((None, true));
    };
    for e in dir.chunks_exact(32) {
        let first = e[0];
        if first == 0 {
            return Ok((None, true));
        }
        let attr = e[11];
        let cluster = le16(e, 20) != 0 || le16(e, 26) != 0;
        if first == 0xE5 || cluster || attr & 0x3F == 0x0F {
            continue;
        }
        if attr & 0x18 == 0x08 {
            return Ok((Some(crate::util::bytes(e, 0)), true));
        }
    }
    Ok((None, false))
}

fn root_label_fat32<D: ReadAt + ?Sized>(
    dev: &D,
    root_cluster: u32,
    cluster_bytes: u64,
    data_start: u64,
    fat_start: u64,
    bits: u8,
) -> Result<Option<[u8; 11]>, Error> {
    if bits != 32 || cluster_bytes > MAX_ROOT_BYTES {
        return Ok(None);
    }
    let mut next = u64::from(root_cluster);
    let mut read = 0u64;
    for _ in 0..MAX_ROOT_CLUSTERS {
        if !(2..0x0FFF_FFF7).contains(&next) || read >= MAX_ROOT_BYTES {
            break;
        }
        let off = data_start + (next - 2) * cluster_bytes;
        let (found, end) = scan(dev, off, cluster_bytes / 32)?;
        read += cluster_bytes;
        if found.is_some() || end {
            return Ok(found);
        }
        let Some(entry) = read_opt(dev, fat_start + next * 4, 4, "FAT32 table entry")? else {
            break;
        };
        next = u64::from(le32(&entry, 0) & 0x0FFF_FFFF);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    /// A FAT16-layout boot sector over `total` sectors with 4 sectors per cluster.
    fn fat16(total: u32, fat_sz: u16) -> Vec<u8> {
        let mut d = vec![0u8; 1 << 20];
        d[0] = 0xEB;
        d[3..11].copy_from_slice(b"mkfs.fat");
        d[11..13].copy_from_slice(&512u16.to_le_bytes());
        d[13] = 4;
        d[14..16].copy_from_slice(&4u16.to_le_bytes());
        d[16] = 2;
        d[17..19].copy_from_slice(&512u16.to_le_bytes());
        d[21] = 0xF8;
        d[22..24].copy_from_slice(&fat_sz.to_le_bytes());
        d[32..36].copy_from_slice(&total.to_le_bytes());
        d[0x27..0x2B].copy_from_slice(&0x1AAF7691u32.to_le_bytes());
        d[0x2B..0x36].copy_from_slice(b"BOOTLABEL  ");
        d[0x36..0x3E].copy_from_slice(b"FAT16   ");
        d[510] = 0x55;
        d[511] = 0xAA;
        d
    }

    #[test]
    fn type_comes_from_the_cluster_count() {
        // 4 + 2*32 + 32 root sectors = 100 metadata sectors.
        for (total, bits) in [
            (100 + 4 * 4084, 12),
            (100 + 4 * 4085, 16),
            (100 + 4 * 65524, 16),
            (100 + 4 * 65525, 32),
        ] {
            let fs = probe(&MemDisk::new(fat16(total, 32))).unwrap().unwrap();
            assert_eq!(fs.fat.as_ref().unwrap().fat_bits, bits, "total {total}");
            assert_eq!(fs.version.unwrap(), format!("FAT{bits}"));
            // A FAT32 count with a FAT16 layout is worth a warning.
            assert_eq!(fs.warnings.iter().any(|w| w.contains("layout")), bits == 32);
        }
    }

    #[test]
    fn root_directory_label_wins_over_boot_sector() {
        let mut d = fat16(20000, 32);
        let root = (4 + 2 * 32) * 512;
        d[root..root + 11].copy_from_slice(b"LFNPART    ");
        d[root + 11] = 0x0F; // long-name entry: skipped
        d[root + 32..root + 43].copy_from_slice(b"ROOTLABEL  ");
        d[root + 43] = 0x08;
        let fs = probe(&MemDisk::new(d.clone())).unwrap().unwrap();
        assert_eq!(fs.label.as_deref(), Some("ROOTLABEL"));
        assert_eq!(fs.fat.unwrap().boot_label.as_deref(), Some("BOOTLABEL"));
        assert_eq!(fs.uuid.as_deref(), Some("1AAF-7691"));
        d[root + 32..root + 43].copy_from_slice(NO_NAME);
        let fs = probe(&MemDisk::new(d)).unwrap().unwrap();
        assert_eq!(fs.label.as_deref(), Some("BOOTLABEL"));
    }

    #[test]
    fn garbage_is_not_fat() {
        let mut d = fat16(20000, 32);
        d[13] = 3; // sectors per cluster not a power of two
        assert!(probe(&MemDisk::new(d)).unwrap().is_none());
        let mut d = fat16(20000, 32);
        d[32..36].copy_from_slice(&10u32.to_le_bytes()); // smaller than its own metadata
        assert!(probe(&MemDisk::new(d)).unwrap().is_none());
        assert!(probe(&MemDisk::zeroed(100)).unwrap().is_none());
        assert!(probe(&MemDisk::zeroed(4096)).unwrap().is_none());
    }

    #[test]
    fn fat32_root_chain_is_bounded() {
        // A FAT32 layout whose root cluster chain loops on itself.
        let mut d = vec![0u8; 4 << 20];
        d[0] = 0xEB;
        d[11..13].copy_from_slice(&512u16.to_le_bytes());
        d[13] = 1;
        d[14..16].copy_from_slice(&32u16.to_le_bytes());
        d[16] = 1;
        d[21] = 0xF8;
        d[32..36].copy_from_slice(&200_000u32.to_le_bytes());
        d[36..40].copy_from_slice(&1600u32.to_le_bytes());
        d[44..48].copy_from_slice(&2u32.to_le_bytes());
        d[0x52..0x5A].copy_from_slice(b"FAT32   ");
        d[510] = 0x55;
        d[511] = 0xAA;
        let fat = 32 * 512;
        d[fat + 8..fat + 12].copy_from_slice(&2u32.to_le_bytes()); // cluster 2 → 2
        let data = (32 + 1600) * 512;
        d[data] = b'A'; // a used entry, so the scan goes on to the next cluster
        for i in 1..16 {
            d[data + 32 * i] = b'B';
        }
        let fs = probe(&MemDisk::new(d)).unwrap().unwrap();
        assert_eq!(fs.version.as_deref(), Some("FAT32"));
        assert_eq!(fs.label, None);
        assert!(fs.warnings.iter().any(|w| w.contains("truncated")));
    }
}
