//! GUID Partition Table (UEFI specification, chapter 5.3), read-only.
//!
//! Both copies of the header and of the entry array carry CRC32s; we trust a copy
//! only when both of its CRCs match and its geometry is self-consistent. The
//! primary copy wins; the backup is used (with a warning) when the primary is
//! damaged, and its own damage is reported as a warning when the primary is fine.

use vmscrub_blockdev::ReadAt;

use crate::read::{le32, le64, read_opt};
use crate::{Error, Guid, Result, types};

/// The GPT header signature, at the start of LBA 1 (and of the backup's LBA).
pub const SIGNATURE: &[u8; 8] = b"EFI PART";
/// The header fields end at byte 92; the rest of the sector is reserved.
const MIN_HEADER_SIZE: u32 = 92;
/// Smallest entry the specification allows; larger ones are multiples of 8 here
/// (the specification says 128 × 2^n; Linux accepts any multiple of 8).
const MIN_ENTRY_SIZE: u32 = 128;
/// Bound on the entry array, so a hostile header cannot make us allocate or CRC
/// gigabytes: 1 MiB is 8192 entries of 128 bytes, 64 × what tools create.
pub const MAX_ARRAY_BYTES: u64 = 1 << 20;

/// A partition table read from a GPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    /// Logical sector size the table was found with (512 or 4096).
    pub sector_size: u32,
    pub disk_guid: Guid,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    /// Which header the table was read from.
    pub header: HeaderUsed,
    /// Where the header used says its twin is.
    pub alternate_lba: u64,
    /// First LBA of the entry array the table was read from.
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    /// Used entries, in entry-array order.
    pub partitions: Vec<GptPartition>,
}

/// The header a [`Gpt`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderUsed {
    /// The primary header at LBA 1.
    Primary,
    /// The backup header at this LBA: the primary or its array was damaged.
    Backup { lba: u64 },
}

/// One used entry of the partition entry array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based position in the entry array, as Linux numbers partitions (`sda3` is
    /// entry 3 even when entries 1 and 2 are unused).
    pub index: u32,
    pub type_guid: Guid,
    /// Name of a well-known type (`EFI System`, `Linux filesystem`, …).
    pub type_name: Option<&'static str>,
    pub guid: Guid,
    pub first_lba: u64,
    /// Inclusive, as the specification stores it.
    pub last_lba: u64,
    /// Bit 0 required, 1 no block-IO protocol, 2 legacy BIOS bootable, 48–63 type-specific.
    pub attributes: u64,
    /// The UTF-16LE partition name up to its first NUL (unpaired surrogates become U+FFFD).
    pub name: String,
    /// Byte offset of the first sector.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The fields of one header that passed its own checks, and its entry array.
#[derive(Debug, Clone)]
struct Header {
    my_lba: u64,
    alternate_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: Guid,
    entries_lba: u64,
    num_entries: u32,
    entry_size: u32,
    array: Vec<u8>,
}

/// True if the sector at LBA 1 for `sector_size` starts with the GPT signature.
pub fn has_signature<D: ReadAt + ?Sized>(disk: &D, sector_size: u32) -> Result<bool> {
    Ok(
        read_opt(disk, u64::from(sector_size), SIGNATURE.len(), "GPT header")?
            .is_some_and(|b| b == SIGNATURE),
    )
}

impl Gpt {
    /// Reads the GPT of `disk` assuming `sector_size`-byte logical sectors. Returns
    /// the table and the warnings a user should see (backup used, backup damaged,
    /// disk size disagreeing with the table).
    pub fn read<D: ReadAt + ?Sized>(disk: &D, sector_size: u32) -> Result<(Gpt, Vec<String>)> {
        check_sector_size(sector_size)?;
        let ss = u64::from(sector_size);
        let disk_sectors = disk.size() / ss;
        let last_lba = disk_sectors.saturating_sub(1);
        let mut warnings = Vec::new();

        let primary = load(disk, sector_size, 1, disk_sectors)?;
        let (hdr, used) = match primary {
            Ok(p) => {
                check_backup(disk, sector_size, &p, disk_sectors, &mut warnings)?;
                (p, HeaderUsed::Primary)
            }
            Err(primary_problem) => {
                // The primary's alternate-LBA is untrusted, but worth a look: the
                // backup found there must pass every check on its own.
                let mut candidates = Vec::new();
                if let Some(alt) = raw_alternate_lba(disk, sector_size)? {
                    candidates.push(alt);
                }
                candidates.push(last_lba);
                candidates.dedup();
                let mut backup_problem = String::from("not found");
                let mut found = None;
                for lba in candidates {
                    if lba <= 1 || lba >= disk_sectors {
                        backup_problem = format!(
                            "LBA {lba} is not a valid backup location on a {disk_sectors}-sector disk"
                        );
                        continue;
                    }
                    match load(disk, sector_size, lba, disk_sectors)? {
                        Ok(b) if b.alternate_lba != 1 => {
                            backup_problem = format!(
                                "header at LBA {lba} points to LBA {} instead of LBA 1",
                                b.alternate_lba
                            )
                        }
                        Ok(b) => {
                            found = Some(b);
                            break;
                        }
                        Err(p) => backup_problem = format!("at LBA {lba}: {p}"),
                    }
                }
                let Some(b) = found else {
                    return Err(Error::NoUsableGpt {
                        primary: primary_problem,
                        backup: backup_problem,
                    });
                };
                warnings.push(format!(
                    "primary GPT is damaged ({primary_problem}); using the backup GPT at LBA {}",
                    b.my_lba
                ));
                let lba = b.my_lba;
                (b, HeaderUsed::Backup { lba })
            }
        };

        if hdr.last_usable >= disk_sectors {
            warnings.push(format!(
                "GPT describes a disk of at least {} sectors but the image has {disk_sectors} (truncated image?)",
                hdr.last_usable.saturating_add(1)
            ));
        }

        let partitions = parse_entries(&hdr, sector_size, disk.size())?;
        Ok((
            Gpt {
                sector_size,
                disk_guid: hdr.disk_guid,
                first_usable_lba: hdr.first_usable,
                last_usable_lba: hdr.last_usable,
                header: used,
                alternate_lba: hdr.alternate_lba,
                entries_lba: hdr.entries_lba,
                entry_count: hdr.num_entries,
                entry_size: hdr.entry_size,
                partitions,
            },
            warnings,
        ))
    }
}

/// Logical sector sizes are powers of two from 512 to 64 KiB.
pub(crate) fn check_sector_size(sector_size: u32) -> Result<()> {
    if sector_size.is_power_of_two() && (512..=65536).contains(&sector_size) {
        Ok(())
    } else {
        Err(Error::SectorSize(sector_size))
    }
}

/// The alternate-LBA field of the primary header if its signature is intact, with
/// no other check: only a hint where to look for the backup.
fn raw_alternate_lba<D: ReadAt + ?Sized>(disk: &D, sector_size: u32) -> Result<Option<u64>> {
    let Some(b) = read_opt(disk, u64::from(sector_size), 92, "GPT header")? else {
        return Ok(None);
    };
    if b.get(..8) != Some(SIGNATURE.as_slice()) {
        return Ok(None);
    }
    Ok(Some(le64(&b, 32)))
}

/// With a good primary, looks at the backup so a user learns about damage before
/// they need the backup.
fn check_backup<D: ReadAt + ?Sized>(
    disk: &D,
    sector_size: u32,
    primary: &Header,
    disk_sectors: u64,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let alt = primary.alternate_lba;
    let last = disk_sectors.saturating_sub(1);
    if alt >= disk_sectors {
        warnings.push(format!(
            "backup GPT header should be at LBA {alt}, past the end of the {disk_sectors}-sector disk (truncated image?)"
        ));
        return Ok(());
    }
    if alt <= 1 {
        warnings.push(format!(
            "primary GPT header gives LBA {alt} for its backup; the backup was not checked"
        ));
        return Ok(());
    }
    if alt != last {
        warnings.push(format!(
            "backup GPT header is at LBA {alt}, not at the last LBA {last} (image resized without relocating it?)"
        ));
    }
    match load(disk, sector_size, alt, disk_sectors)? {
        Err(p) => warnings.push(format!("backup GPT at LBA {alt} is damaged: {p}")),
        Ok(b) => {
            if b.alternate_lba != 1 {
                warnings.push(format!(
                    "backup GPT header at LBA {alt} points to LBA {} instead of LBA 1",
                    b.alternate_lba
                ));
            }
            if b.disk_guid != primary.disk_guid
                || b.first_usable != primary.first_usable
                || b.last_usable != primary.last_usable
                || b.array != primary.array
            {
                warnings.push("primary and backup GPT differ; the primary was used".to_string());
            }
        }
    }
    Ok(())
}

/// Reads and checks the header at `lba` and its entry array. The outer `Result` is
/// an I/O failure; the inner one says why this copy cannot be trusted.
fn load<D: ReadAt + ?Sized>(
    disk: &D,
    sector_size: u32,
    lba: u64,
    disk_sectors: u64,
) -> Result<std::result::Result<Header, String>> {
    let ss = u64::from(sector_size);
    let Some(off) = lba.checked_mul(ss) else {
        return Ok(Err(format!("LBA {lba} is out of range")));
    };
    let Some(sec) = read_opt(disk, off, sector_size as usize, "GPT header")? else {
        return Ok(Err(format!("LBA {lba} is past the end of the disk")));
    };
    if sec.get(..8) != Some(SIGNATURE.as_slice()) {
        return Ok(Err("no \"EFI PART\" signature".into()));
    }
    let revision = le32(&sec, 8);
    if revision >> 16 != 1 {
        return Ok(Err(format!("unsupported header revision {revision:#010x}")));
    }
    let header_size = le32(&sec, 12);
    if header_size < MIN_HEADER_SIZE || header_size > sector_size {
        return Ok(Err(format!(
            "header size {header_size} is not in {MIN_HEADER_SIZE}..={sector_size}"
        )));
    }
    let stored_crc = le32(&sec, 16);
    let mut h = sec.get(..header_size as usize).unwrap_or_default().to_vec();
    if let Some(c) = h.get_mut(16..20) {
        c.fill(0);
    }
    let crc = crc32fast::hash(&h);
    if crc != stored_crc {
        return Ok(Err(format!(
            "header CRC32 mismatch (stored {stored_crc:#010x}, computed {crc:#010x})"
        )));
    }
    let my_lba = le64(&sec, 24);
    if my_lba != lba {
        return Ok(Err(format!(
            "header at LBA {lba} says it is at LBA {my_lba}"
        )));
    }
    let alternate_lba = le64(&sec, 32);
    let first_usable = le64(&sec, 40);
    let last_usable = le64(&sec, 48);
    let disk_guid = Guid::from_slice(sec.get(56..72).unwrap_or_default()).unwrap_or_default();
    let entries_lba = le64(&sec, 72);
    let num_entries = le32(&sec, 80);
    let entry_size = le32(&sec, 84);
    let entries_crc = le32(&sec, 88);

    if first_usable > last_usable {
        return Ok(Err(format!(
            "first usable LBA {first_usable} is after last usable LBA {last_usable}"
        )));
    }
    if (first_usable..=last_usable).contains(&lba) {
        return Ok(Err(format!(
            "header LBA {lba} lies inside the usable range {first_usable}..={last_usable}"
        )));
    }
    if entry_size < MIN_ENTRY_SIZE || !entry_size.is_multiple_of(8) {
        return Ok(Err(format!(
            "partition entry size {entry_size} is not a multiple of 8 of at least 128"
        )));
    }
    let array_bytes = u64::from(num_entries) * u64::from(entry_size);
    if array_bytes > MAX_ARRAY_BYTES {
        return Ok(Err(format!(
            "partition entry array of {num_entries} × {entry_size} bytes exceeds the {MAX_ARRAY_BYTES}-byte limit"
        )));
    }
    let array_sectors = array_bytes.div_ceil(ss);
    let Some(array_end) = entries_lba.checked_add(array_sectors) else {
        return Ok(Err(format!(
            "partition entry array LBA {entries_lba} is out of range"
        )));
    };
    if array_sectors > 0 {
        if entries_lba <= last_usable && array_end > first_usable {
            return Ok(Err(format!(
                "partition entry array (LBA {entries_lba}..{array_end}) overlaps the usable range {first_usable}..={last_usable}"
            )));
        }
        if (entries_lba..array_end).contains(&lba) {
            return Ok(Err(format!(
                "partition entry array (LBA {entries_lba}..{array_end}) overlaps its header"
            )));
        }
        if array_end > disk_sectors {
            return Ok(Err(format!(
                "partition entry array (LBA {entries_lba}..{array_end}) runs past the end of the {disk_sectors}-sector disk"
            )));
        }
    }
    let array = if array_bytes == 0 {
        Vec::new()
    } else {
        let Some(off) = entries_lba.checked_mul(ss) else {
            return Ok(Err(format!(
                "partition entry array LBA {entries_lba} is out of range"
            )));
        };
        match read_opt(disk, off, array_bytes as usize, "GPT partition entry array")? {
            Some(a) => a,
            None => {
                return Ok(Err(
                    "partition entry array is past the end of the disk".into()
                ));
            }
        }
    };
    let crc = crc32fast::hash(&array);
    if crc != entries_crc {
        return Ok(Err(format!(
            "partition entry array CRC32 mismatch (stored {entries_crc:#010x}, computed {crc:#010x})"
        )));
    }
    Ok(Ok(Header {
        my_lba,
        alternate_lba,
        first_usable,
        last_usable,
        disk_guid,
        entries_lba,
        num_entries,
        entry_size,
        array,
    }))
}

fn parse_entries(h: &Header, sector_size: u32, disk_size: u64) -> Result<Vec<GptPartition>> {
    let ss = u64::from(sector_size);
    let mut parts = Vec::new();
    for (i, e) in h.array.chunks_exact(h.entry_size as usize).enumerate() {
        let type_guid = Guid::from_slice(e).unwrap_or_default();
        if type_guid.is_zero() {
            continue;
        }
        let index = i as u32 + 1;
        let first = le64(e, 32);
        let last = le64(e, 40);
        if last < first {
            return Err(Error::Inverted {
                table: "GPT",
                index,
                first,
                last,
            });
        }
        if first < h.first_usable || last > h.last_usable {
            return Err(Error::OutsideUsable {
                index,
                first,
                last,
                first_usable: h.first_usable,
                last_usable: h.last_usable,
            });
        }
        let end = last.checked_add(1).and_then(|n| n.checked_mul(ss));
        let offset = first.checked_mul(ss);
        let (Some(offset), Some(end)) = (offset, end) else {
            return Err(Error::PastEnd {
                table: "GPT",
                index,
                end: u64::MAX,
                disk_size,
            });
        };
        if end > disk_size {
            return Err(Error::PastEnd {
                table: "GPT",
                index,
                end,
                disk_size,
            });
        }
        let units: Vec<u16> = e
            .get(56..128)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        parts.push(GptPartition {
            index,
            type_name: types::gpt_type_name(&type_guid),
            type_guid,
            guid: Guid::from_slice(e.get(16..32).unwrap_or_default()).unwrap_or_default(),
            first_lba: first,
            last_lba: last,
            attributes: le64(e, 48),
            name: String::from_utf16_lossy(&units),
            offset,
            size: end - offset,
        });
    }
    check_overlaps(
        "GPT",
        parts.iter().map(|p| (p.index, p.first_lba, p.last_lba)),
    )?;
    Ok(parts)
}

/// Fails on the first pair of `(index, first, last)` ranges that share a sector.
pub(crate) fn check_overlaps(
    table: &'static str,
    ranges: impl Iterator<Item = (u32, u64, u64)>,
) -> Result<()> {
    let mut v: Vec<(u32, u64, u64)> = ranges.collect();
    v.sort_by_key(|&(i, first, _)| (first, i));
    // The earlier range reaching furthest is the one any later range would hit first.
    let mut reach: Option<(u32, u64, u64)> = None;
    for &(i, first, last) in &v {
        if let Some((a, a_first, a_last)) = reach
            && first <= a_last
        {
            let ((a, a_first, a_last), (b, b_first, b_last)) = if a < i {
                ((a, a_first, a_last), (i, first, last))
            } else {
                ((i, first, last), (a, a_first, a_last))
            };
            return Err(Error::Overlap {
                table,
                a,
                a_first,
                a_last,
                b,
                b_first,
                b_last,
            });
        }
        if reach.is_none_or(|(_, _, l)| last > l) {
            reach = Some((i, first, last));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    /// A partition for the synthetic GPT builder.
    pub struct P {
        pub index: u32,
        pub ty: &'static str,
        pub first: u64,
        pub last: u64,
        pub name: &'static str,
    }

    /// Writes a valid GPT (protective MBR, primary and backup) for a disk of
    /// `sectors` sectors of `ss` bytes, 128 entries of 128 bytes.
    pub fn build_gpt(ss: u32, sectors: u64, parts: &[P]) -> Vec<u8> {
        let ssz = ss as usize;
        let mut d = vec![0u8; ssz * sectors as usize];
        // Protective MBR.
        let pe = 446;
        d[pe + 4] = 0xEE;
        d[pe + 8..pe + 12].copy_from_slice(&1u32.to_le_bytes());
        d[pe + 12..pe + 16]
            .copy_from_slice(&((sectors - 1).min(u32::MAX as u64) as u32).to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xAA;
        let array_sectors = (128 * 128u64).div_ceil(ss as u64);
        let mut array = vec![0u8; 128 * 128];
        for p in parts {
            let e = &mut array[(p.index as usize - 1) * 128..p.index as usize * 128];
            e[0..16].copy_from_slice(&Guid::parse(p.ty).unwrap().0);
            let mut g = [0u8; 16];
            g[0] = p.index as u8;
            g[15] = 0x42;
            e[16..32].copy_from_slice(&g);
            e[32..40].copy_from_slice(&p.first.to_le_bytes());
            e[40..48].copy_from_slice(&p.last.to_le_bytes());
            for (k, u) in p.name.encode_utf16().enumerate() {
                e[56 + 2 * k..58 + 2 * k].copy_from_slice(&u.to_le_bytes());
            }
        }
        let first_usable = 2 + array_sectors;
        let last_usable = sectors - 2 - array_sectors;
        let backup_lba = sectors - 1;
        let backup_array = backup_lba - array_sectors;
        for (lba, alt, arr) in [(1, backup_lba, 2), (backup_lba, 1, backup_array)] {
            let off = (arr * ss as u64) as usize;
            d[off..off + array.len()].copy_from_slice(&array);
            let h = header(lba, alt, first_usable, last_usable, arr, &array);
            let off = (lba * ss as u64) as usize;
            d[off..off + 92].copy_from_slice(&h);
        }
        d
    }

    pub fn header(lba: u64, alt: u64, fu: u64, lu: u64, arr: u64, array: &[u8]) -> [u8; 92] {
        let mut h = [0u8; 92];
        h[0..8].copy_from_slice(SIGNATURE);
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&lba.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&fu.to_le_bytes());
        h[48..56].copy_from_slice(&lu.to_le_bytes());
        h[56..72].copy_from_slice(
            &Guid::parse("01234567-89AB-CDEF-0123-456789ABCDEF")
                .unwrap()
                .0,
        );
        h[72..80].copy_from_slice(&arr.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc32fast::hash(array).to_le_bytes());
        let crc = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Recomputes both CRCs of the header at `lba` (after a test edited it or its array).
    pub fn fix_crcs(d: &mut [u8], ss: u32, lba: u64) {
        let off = (lba * ss as u64) as usize;
        let arr = u64::from_le_bytes(d[off + 72..off + 80].try_into().unwrap());
        let n = u32::from_le_bytes(d[off + 80..off + 84].try_into().unwrap()) as usize;
        let es = u32::from_le_bytes(d[off + 84..off + 88].try_into().unwrap()) as usize;
        let a = (arr * ss as u64) as usize;
        // An absurd geometry does not fit the disk: leave the array CRC alone then.
        if let Some(array) = d.get(a..a + n * es) {
            let crc = crc32fast::hash(array);
            d[off + 88..off + 92].copy_from_slice(&crc.to_le_bytes());
        }
        d[off + 16..off + 20].fill(0);
        let crc = crc32fast::hash(&d[off..off + 92]);
        d[off + 16..off + 20].copy_from_slice(&crc.to_le_bytes());
    }

    const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

    fn two_parts() -> Vec<P> {
        vec![
            P {
                index: 1,
                ty: ESP,
                first: 40,
                last: 99,
                name: "EFI System",
            },
            P {
                index: 3,
                ty: LINUX,
                first: 100,
                last: 199,
                name: "root ✓",
            },
        ]
    }

    #[test]
    fn reads_a_valid_table_with_512_and_4096_byte_sectors() {
        for ss in [512u32, 4096] {
            let d = build_gpt(ss, 256, &two_parts());
            let m = MemDisk::new(d);
            assert!(has_signature(&m, ss).unwrap());
            let (g, w) = Gpt::read(&m, ss).unwrap();
            assert!(w.is_empty(), "{w:?}");
            assert_eq!(g.sector_size, ss);
            assert_eq!(g.header, HeaderUsed::Primary);
            assert_eq!(
                g.disk_guid.to_string(),
                "01234567-89AB-CDEF-0123-456789ABCDEF"
            );
            assert_eq!(g.partitions.len(), 2);
            let p = &g.partitions[1];
            assert_eq!((p.index, p.first_lba, p.last_lba), (3, 100, 199));
            assert_eq!((p.offset, p.size), (100 * ss as u64, 100 * ss as u64));
            assert_eq!(p.name, "root ✓");
            assert_eq!(p.type_name, Some("Linux filesystem"));
            assert_eq!(g.partitions[0].type_name, Some("EFI System"));
        }
    }

    #[test]
    fn damaged_primary_header_falls_back_to_backup_with_a_warning() {
        let mut d = build_gpt(512, 256, &two_parts());
        d[512 + 40] ^= 1; // first usable LBA: header CRC no longer matches
        let (g, w) = Gpt::read(&MemDisk::new(d), 512).unwrap();
        assert_eq!(g.header, HeaderUsed::Backup { lba: 255 });
        assert_eq!(g.partitions.len(), 2);
        assert!(
            w.iter()
                .any(|x| x.contains("header CRC32 mismatch") && x.contains("backup")),
            "{w:?}"
        );
    }

    #[test]
    fn damaged_primary_array_falls_back_to_backup() {
        let mut d = build_gpt(512, 256, &two_parts());
        d[2 * 512 + 200] ^= 0xFF;
        let (g, w) = Gpt::read(&MemDisk::new(d), 512).unwrap();
        assert_eq!(g.header, HeaderUsed::Backup { lba: 255 });
        assert!(w.iter().any(|x| x.contains("entry array CRC32")), "{w:?}");
    }

    #[test]
    fn wiped_primary_signature_uses_backup_at_last_lba() {
        let mut d = build_gpt(
            4096,
            64,
            &[P {
                index: 1,
                ty: LINUX,
                first: 6,
                last: 50,
                name: "",
            }],
        );
        d[4096..4096 + 8].fill(0);
        let (g, w) = Gpt::read(&MemDisk::new(d), 4096).unwrap();
        assert_eq!(g.header, HeaderUsed::Backup { lba: 63 });
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn both_copies_damaged_is_an_error_naming_both() {
        let mut d = build_gpt(512, 256, &two_parts());
        d[512 + 16] ^= 1;
        d[255 * 512 + 16] ^= 1;
        let e = Gpt::read(&MemDisk::new(d), 512).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::NoUsableGpt { .. }), "{msg}");
        assert!(
            msg.contains("primary header: header CRC32")
                && msg.contains("backup header: at LBA 255"),
            "{msg}"
        );
    }

    #[test]
    fn damaged_backup_is_a_warning_when_primary_is_good() {
        let mut d = build_gpt(512, 256, &two_parts());
        d[255 * 512 + 3] = b'X';
        let (g, w) = Gpt::read(&MemDisk::new(d), 512).unwrap();
        assert_eq!(g.header, HeaderUsed::Primary);
        assert!(
            w.iter()
                .any(|x| x.contains("backup GPT at LBA 255 is damaged")),
            "{w:?}"
        );
    }

    #[test]
    fn overlapping_partitions_name_both() {
        let mut parts = two_parts();
        parts.push(P {
            index: 2,
            ty: LINUX,
            first: 150,
            last: 160,
            name: "",
        });
        let d = build_gpt(512, 256, &parts);
        let e = Gpt::read(&MemDisk::new(d), 512).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Overlap {
                    a: 2,
                    b: 3,
                    a_first: 150,
                    b_first: 100,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("partitions 2 (LBA 150..=160) and 3 (LBA 100..=199) overlap"),
            "{e}"
        );
    }

    #[test]
    fn inverted_and_out_of_range_partitions_are_errors() {
        let d = build_gpt(
            512,
            256,
            &[P {
                index: 1,
                ty: LINUX,
                first: 100,
                last: 99,
                name: "",
            }],
        );
        assert!(matches!(
            Gpt::read(&MemDisk::new(d), 512),
            Err(Error::Inverted { index: 1, .. })
        ));
        let d = build_gpt(
            512,
            256,
            &[P {
                index: 5,
                ty: LINUX,
                first: 10,
                last: 99,
                name: "",
            }],
        );
        assert!(matches!(
            Gpt::read(&MemDisk::new(d), 512),
            Err(Error::OutsideUsable { index: 5, .. })
        ));
        let d = build_gpt(
            512,
            256,
            &[P {
                index: 1,
                ty: LINUX,
                first: 40,
                last: 230,
                name: "",
            }],
        );
        assert!(matches!(
            Gpt::read(&MemDisk::new(d), 512),
            Err(Error::OutsideUsable { .. })
        ));
    }

    #[test]
    fn absurd_entry_geometry_is_refused_in_both_copies() {
        for (field, value) in [
            (80usize, 0x10_0000u32),
            (84, 100),
            (84, 132),
            (84, 1 << 20),
            (12, 8192),
            (12, 10),
        ] {
            let mut d = build_gpt(512, 256, &two_parts());
            for lba in [1u64, 255] {
                let off = (lba * 512) as usize + field;
                d[off..off + 4].copy_from_slice(&value.to_le_bytes());
                if field != 12 {
                    fix_crcs(&mut d, 512, lba);
                }
            }
            let e = Gpt::read(&MemDisk::new(d), 512).unwrap_err();
            assert!(
                matches!(e, Error::NoUsableGpt { .. }),
                "field {field}={value}: {e}"
            );
        }
    }

    #[test]
    fn truncated_disk_reports_partition_past_end() {
        let d = build_gpt(512, 256, &two_parts());
        // Keep the primary and the first partition only.
        let m = MemDisk::new(d[..150 * 512].to_vec());
        let e = Gpt::read(&m, 512).unwrap_err();
        assert!(matches!(e, Error::PastEnd { index: 3, .. }), "{e}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn huge_lbas_do_not_overflow() {
        // A header whose usable range reaches u64::MAX and a partition ending there.
        let mut d = build_gpt(
            512,
            256,
            &[P {
                index: 1,
                ty: LINUX,
                first: 40,
                last: 99,
                name: "",
            }],
        );
        for lba in [1u64, 255] {
            let h = (lba * 512) as usize;
            d[h + 48..h + 56].copy_from_slice(&u64::MAX.to_le_bytes());
        }
        let a = 2 * 512 + 40;
        d[a..a + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let b = (255 - 32) * 512 + 40;
        d[b..b + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        fix_crcs(&mut d, 512, 1);
        fix_crcs(&mut d, 512, 255);
        // The backup's array now overlaps the usable range, the primary's partition
        // runs past the disk: an error either way, never an overflow.
        assert!(Gpt::read(&MemDisk::new(d), 512).is_err());
        assert!(matches!(
            Gpt::read(&MemDisk::zeroed(4096), 0),
            Err(Error::SectorSize(0))
        ));
        assert!(matches!(
            Gpt::read(&MemDisk::zeroed(4096), 1000),
            Err(Error::SectorSize(1000))
        ));
    }

    #[test]
    fn overlap_check_reports_the_right_pair() {
        // 1 covers everything; 3 is inside it even though 2 ends before 3 starts.
        let r = check_overlaps("MBR", [(1, 0, 100), (2, 0, 0), (3, 50, 60)].into_iter());
        assert!(r.is_err());
        let r = check_overlaps("MBR", [(1, 0, 9), (2, 10, 19), (3, 20, 20)].into_iter());
        assert!(r.is_ok());
    }
}
