//! The DOS/MBR partition table: four primary slots in sector 0, and logical
//! partitions in a chain of extended boot records (EBRs) inside one extended
//! partition. The chain comes from the image, so it is followed with a visited set
//! and a bound, and every EBR and logical partition must lie inside the extended
//! partition.

use std::collections::HashSet;

use vmscrub_blockdev::ReadAt;

use crate::gpt::check_overlaps;
use crate::read::{le32, read_opt};
use crate::{Error, Result, types};

/// Linux gives a disk at most 256 partition minors (DISK_MAX_PARTS); a chain
/// longer than this is hostile or broken.
pub const MAX_LOGICAL: usize = 252;
/// Bound on EBRs visited, counting ones whose partition slot is empty.
const MAX_EBRS: usize = 2 * MAX_LOGICAL;
const ENTRIES: usize = 446;

/// A table read from an MBR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mbr {
    /// The 32-bit disk signature at byte 440 (what `fdisk` calls the disk identifier).
    pub disk_signature: u32,
    /// Sector size the LBAs were interpreted with.
    pub sector_size: u32,
    /// Primary (including the extended container) then logical partitions, by index.
    pub partitions: Vec<MbrPartition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MbrKind {
    Primary,
    /// The container of logical partitions; holds no filesystem itself.
    Extended,
    Logical,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbrPartition {
    /// 1–4 for primary slots (by slot, so gaps stay), 5.. for logical partitions in
    /// chain order, as Linux numbers them.
    pub index: u32,
    pub kind: MbrKind,
    /// The system id byte.
    pub type_id: u8,
    pub type_name: Option<&'static str>,
    /// Boot indicator 0x80.
    pub bootable: bool,
    pub first_lba: u64,
    pub sectors: u64,
    /// Byte offset of the first sector.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// One raw 16-byte slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    boot: u8,
    ty: u8,
    lba: u32,
    count: u32,
}

fn slot(sector: &[u8], i: usize) -> Slot {
    let o = ENTRIES + 16 * i;
    Slot {
        boot: sector.get(o).copied().unwrap_or(0),
        ty: sector.get(o + 4).copied().unwrap_or(0),
        lba: le32(sector, o + 8),
        count: le32(sector, o + 12),
    }
}

/// True if sector 0 ends in 0x55AA.
pub fn has_boot_signature(sector0: &[u8]) -> bool {
    sector0.get(510..512) == Some(&[0x55, 0xAA][..])
}

/// True if any primary slot has type 0xEE: the MBR protects a GPT.
pub fn is_protective(sector0: &[u8]) -> bool {
    has_boot_signature(sector0) && (0..4).any(|i| slot(sector0, i).ty == 0xEE)
}

/// True if sector 0 is a partition table rather than something else that ends in
/// 0x55AA: every boot indicator is 0x00 or 0x80 and the sector is not the boot
/// sector of a filesystem written to the bare disk (FAT, NTFS, exFAT), the same
/// tests blkid makes before it believes in a DOS table.
pub fn looks_like_mbr(sector0: &[u8]) -> bool {
    has_boot_signature(sector0)
        && (0..4).all(|i| matches!(slot(sector0, i).boot, 0x00 | 0x80))
        && !is_fs_boot_sector(sector0)
}

fn is_fs_boot_sector(s: &[u8]) -> bool {
    let oem = s.get(3..11).unwrap_or_default();
    if oem == b"NTFS    " || oem == b"EXFAT   " {
        return true;
    }
    // A FAT BIOS parameter block with sane values.
    let jump = s.first().copied().unwrap_or(0);
    let bps = u16::from_le_bytes([
        s.get(11).copied().unwrap_or(0),
        s.get(12).copied().unwrap_or(0),
    ]);
    let spc = s.get(13).copied().unwrap_or(0);
    let reserved = u16::from_le_bytes([
        s.get(14).copied().unwrap_or(0),
        s.get(15).copied().unwrap_or(0),
    ]);
    let fats = s.get(16).copied().unwrap_or(0);
    let media = s.get(21).copied().unwrap_or(0);
    matches!(jump, 0xEB | 0xE9)
        && matches!(bps, 512 | 1024 | 2048 | 4096)
        && spc.is_power_of_two()
        && reserved >= 1
        && fats >= 1
        && (media == 0xF0 || media >= 0xF8)
}

impl Mbr {
    /// Reads the MBR of `disk`, following the extended partition's EBR chain.
    /// `sector_size` is what LBAs count in (512 for nearly every MBR disk). Returns
    /// the table and warnings.
    pub fn read<D: ReadAt + ?Sized>(disk: &D, sector_size: u32) -> Result<(Mbr, Vec<String>)> {
        crate::gpt::check_sector_size(sector_size)?;
        let ss = u64::from(sector_size);
        let mut warnings = Vec::new();
        let Some(s0) = read_opt(disk, 0, 512, "MBR")? else {
            return Err(Error::NotMbr {
                reason: "the disk is smaller than one sector",
            });
        };
        if !has_boot_signature(&s0) {
            return Err(Error::NotMbr {
                reason: "sector 0 has no 0x55AA boot signature",
            });
        }
        let disk_size = disk.size();
        let mut parts = Vec::new();
        let mut extended: Option<(u64, u64)> = None;
        for i in 0..4 {
            let s = slot(&s0, i);
            if s.ty == 0 || s.count == 0 {
                continue;
            }
            let index = i as u32 + 1;
            let ext = types::is_extended(s.ty);
            let p = make(
                index,
                if ext {
                    MbrKind::Extended
                } else {
                    MbrKind::Primary
                },
                s,
                u64::from(s.lba),
                ss,
                disk_size,
            )?;
            if s.boot != 0 && s.boot != 0x80 {
                warnings.push(format!(
                    "MBR partition {index} has an invalid boot indicator {:#04x}",
                    s.boot
                ));
            }
            if ext {
                if extended.is_some() {
                    warnings.push(format!(
                        "MBR partition {index} is a second extended partition; its logical partitions are ignored (as fdisk does)"
                    ));
                } else {
                    extended = Some((p.first_lba, p.first_lba + p.sectors));
                }
            }
            parts.push(p);
        }
        check_overlaps(
            "MBR",
            parts
                .iter()
                .map(|p| (p.index, p.first_lba, p.first_lba + p.sectors - 1)),
        )?;

        if let Some((ext_start, ext_end)) = extended {
            let logical = read_chain(disk, ss, ext_start, ext_end)?;
            check_overlaps(
                "MBR",
                logical
                    .iter()
                    .map(|p| (p.index, p.first_lba, p.first_lba + p.sectors - 1)),
            )?;
            parts.extend(logical);
        }
        let disk_signature = le32(&s0, 440);
        Ok((
            Mbr {
                disk_signature,
                sector_size,
                partitions: parts,
            },
            warnings,
        ))
    }
}

/// A partition from a slot whose start is `start` (absolute LBA), checked against the disk.
fn make(
    index: u32,
    kind: MbrKind,
    s: Slot,
    start: u64,
    ss: u64,
    disk_size: u64,
) -> Result<MbrPartition> {
    let sectors = u64::from(s.count);
    let (Some(offset), Some(size)) = (start.checked_mul(ss), sectors.checked_mul(ss)) else {
        return Err(Error::PastEnd {
            table: "MBR",
            index,
            end: u64::MAX,
            disk_size,
        });
    };
    let end = offset.saturating_add(size);
    if end > disk_size {
        return Err(Error::PastEnd {
            table: "MBR",
            index,
            end,
            disk_size,
        });
    }
    Ok(MbrPartition {
        index,
        kind,
        type_id: s.ty,
        type_name: types::mbr_type_name(s.ty),
        bootable: s.boot == 0x80,
        first_lba: start,
        sectors,
        offset,
        size,
    })
}

fn read_chain<D: ReadAt + ?Sized>(
    disk: &D,
    ss: u64,
    ext_start: u64,
    ext_end: u64,
) -> Result<Vec<MbrPartition>> {
    let mut out = Vec::new();
    let mut visited = HashSet::new();
    let mut ebr = ext_start;
    let mut index = 5u32;
    for _ in 0..MAX_EBRS {
        if !visited.insert(ebr) {
            return Err(Error::EbrLoop { lba: ebr });
        }
        if ebr < ext_start || ebr >= ext_end {
            return Err(Error::Ebr {
                lba: ebr,
                reason: format!("lies outside the extended partition (LBA {ext_start}..{ext_end})"),
            });
        }
        let sec = match ebr.checked_mul(ss) {
            Some(off) => read_opt(disk, off, 512, "extended boot record")?,
            None => None,
        };
        let Some(sec) = sec else {
            return Err(Error::Ebr {
                lba: ebr,
                reason: "lies past the end of the disk (truncated image?)".into(),
            });
        };
        if !has_boot_signature(&sec) {
            return Err(Error::Ebr {
                lba: ebr,
                reason: "no 0x55AA signature".into(),
            });
        }
        let part = slot(&sec, 0);
        if part.ty != 0 && part.count != 0 && !types::is_extended(part.ty) {
            let start = ebr + u64::from(part.lba);
            let end = start + u64::from(part.count);
            if start <= ebr || end > ext_end {
                return Err(Error::Ebr {
                    lba: ebr,
                    reason: format!(
                        "logical partition {index} (LBA {start}..{end}) lies outside the space the EBR owns in the extended partition (LBA {}..{ext_end})",
                        ebr + 1
                    ),
                });
            }
            if out.len() >= MAX_LOGICAL {
                return Err(Error::TooManyLogical { max: MAX_LOGICAL });
            }
            out.push(make(index, MbrKind::Logical, part, start, ss, disk.size())?);
            index += 1;
        }
        let next = slot(&sec, 1);
        if !types::is_extended(next.ty) || next.count == 0 {
            return Ok(out);
        }
        ebr = ext_start + u64::from(next.lba);
    }
    Err(Error::TooManyLogical { max: MAX_LOGICAL })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    pub fn put(d: &mut [u8], sector: u64, i: usize, boot: u8, ty: u8, lba: u32, count: u32) {
        let o = sector as usize * 512 + ENTRIES + 16 * i;
        d[o] = boot;
        d[o + 4] = ty;
        d[o + 8..o + 12].copy_from_slice(&lba.to_le_bytes());
        d[o + 12..o + 16].copy_from_slice(&count.to_le_bytes());
        let s = sector as usize * 512;
        d[s + 510] = 0x55;
        d[s + 511] = 0xAA;
    }

    /// 1000 sectors: primary 1 (10..109, bootable FAT16), extended 2 (200..799) with
    /// logicals at 210..309 (EBR 200) and 410..449 (EBR 400).
    pub fn build_mbr() -> Vec<u8> {
        let mut d = vec![0u8; 1000 * 512];
        d[440..444].copy_from_slice(&0xdeadbeefu32.to_le_bytes());
        put(&mut d, 0, 0, 0x80, 0x0e, 10, 100);
        put(&mut d, 0, 1, 0, 0x05, 200, 600);
        put(&mut d, 200, 0, 0, 0x83, 10, 100);
        put(&mut d, 200, 1, 0, 0x05, 200, 50);
        put(&mut d, 400, 0, 0, 0x82, 10, 40);
        d
    }

    #[test]
    fn reads_primary_extended_and_logical() {
        let d = build_mbr();
        assert!(looks_like_mbr(&d[..512]));
        let (m, w) = Mbr::read(&MemDisk::new(d), 512).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(m.disk_signature, 0xdeadbeef);
        let got: Vec<_> = m
            .partitions
            .iter()
            .map(|p| (p.index, p.kind, p.type_id, p.first_lba, p.sectors))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, MbrKind::Primary, 0x0e, 10, 100),
                (2, MbrKind::Extended, 0x05, 200, 600),
                (5, MbrKind::Logical, 0x83, 210, 100),
                (6, MbrKind::Logical, 0x82, 410, 40),
            ]
        );
        assert!(m.partitions[0].bootable && !m.partitions[2].bootable);
        assert_eq!(m.partitions[3].offset, 410 * 512);
        assert_eq!(m.partitions[3].type_name, Some("Linux swap / Solaris"));
    }

    #[test]
    fn ebr_chain_loop_is_an_error() {
        let mut d = build_mbr();
        put(&mut d, 400, 1, 0, 0x05, 0, 50); // back to the first EBR
        let e = Mbr::read(&MemDisk::new(d), 512).unwrap_err();
        assert!(matches!(e, Error::EbrLoop { lba: 200 }), "{e}");
        let mut d = build_mbr();
        put(&mut d, 400, 1, 0, 0x0f, 200, 50); // to itself
        assert!(matches!(
            Mbr::read(&MemDisk::new(d), 512),
            Err(Error::EbrLoop { lba: 400 })
        ));
    }

    #[test]
    fn ebr_outside_the_extended_partition_is_an_error() {
        let mut d = build_mbr();
        put(&mut d, 200, 1, 0, 0x05, 700, 50); // 200 + 700 = 900 ≥ 800
        let e = Mbr::read(&MemDisk::new(d), 512).unwrap_err();
        assert!(matches!(e, Error::Ebr { lba: 900, .. }), "{e}");
        assert!(e.to_string().contains("outside the extended partition"));
        // A logical partition reaching out of the extended one.
        let mut d = build_mbr();
        put(&mut d, 400, 0, 0, 0x83, 10, 500);
        assert!(matches!(
            Mbr::read(&MemDisk::new(d), 512),
            Err(Error::Ebr { lba: 400, .. })
        ));
    }

    #[test]
    fn missing_ebr_signature_and_truncation_are_errors() {
        let mut d = build_mbr();
        d[400 * 512 + 510] = 0;
        assert!(matches!(
            Mbr::read(&MemDisk::new(d), 512),
            Err(Error::Ebr { lba: 400, .. })
        ));
        let d = build_mbr();
        let e = Mbr::read(&MemDisk::new(d[..300 * 512].to_vec()), 512).unwrap_err();
        assert!(matches!(e, Error::PastEnd { index: 2, .. }), "{e}");
    }

    #[test]
    fn overlapping_primaries_are_an_error() {
        let mut d = build_mbr();
        put(&mut d, 0, 2, 0, 0x83, 100, 20);
        let e = Mbr::read(&MemDisk::new(d), 512).unwrap_err();
        assert!(matches!(e, Error::Overlap { a: 1, b: 3, .. }), "{e}");
    }

    #[test]
    fn long_chain_is_bounded() {
        // 300 logical partitions of one sector each, every EBR linking to the next.
        let mut d = vec![0u8; 1000 * 512];
        put(&mut d, 0, 0, 0, 0x05, 1, 999);
        for k in 0..300u32 {
            let ebr = 1 + 2 * k;
            put(&mut d, ebr as u64, 0, 0, 0x83, 1, 1);
            put(&mut d, ebr as u64, 1, 0, 0x05, 2 * (k + 1), 2);
        }
        let e = Mbr::read(&MemDisk::new(d), 512).unwrap_err();
        assert!(
            matches!(e, Error::TooManyLogical { .. } | Error::Ebr { .. }),
            "{e}"
        );
    }

    #[test]
    fn fat_boot_sector_is_not_an_mbr() {
        let mut s = vec![0u8; 512];
        s[0] = 0xEB;
        s[11..13].copy_from_slice(&512u16.to_le_bytes());
        s[13] = 4;
        s[14] = 1;
        s[16] = 2;
        s[21] = 0xF8;
        s[510] = 0x55;
        s[511] = 0xAA;
        assert!(!looks_like_mbr(&s));
        s[0] = 0;
        assert!(looks_like_mbr(&s));
        s[446] = 0x12; // boot indicator neither 0 nor 0x80
        assert!(!looks_like_mbr(&s));
    }
}
