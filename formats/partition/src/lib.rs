//! Read-only GPT and MBR partition tables from untrusted disk images.
//!
//! vmscrub only ever *reads* partition tables — a scrub changes files inside
//! filesystems, never the layout — and every table comes from an image someone
//! else made. So this is a small parser of our own rather than `gptman`/`mbrman`
//! (which are built to edit tables and trust more of what they read): every size
//! and count from the image is bounded before it is used (the GPT entry array is
//! capped at [`gpt::MAX_ARRAY_BYTES`], the EBR chain at [`mbr::MAX_LOGICAL`] with a
//! visited set), every CRC is checked, and every partition must lie inside the
//! disk and not overlap another. Damage gives a typed [`Error`] naming the
//! structure; things a user should know but that do not stop reading (backup GPT
//! used, no protective MBR, backup damaged) are returned as warnings.
//!
//! Entry point: [`detect`], which decides between GPT (512- or 4096-byte sectors),
//! MBR and no table at all.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod error;
pub mod gpt;
mod guid;
pub mod mbr;
mod read;
pub mod types;

use vmscrub_blockdev::ReadAt;

pub use error::{Error, Result};
pub use gpt::{Gpt, GptPartition, HeaderUsed};
pub use guid::Guid;
pub use mbr::{Mbr, MbrKind, MbrPartition};

use read::read_opt;

/// Logical sector sizes GPT detection tries, in order.
pub const SECTOR_SIZES: [u32; 2] = [512, 4096];

/// The partition table found on a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Table {
    Gpt(Gpt),
    Mbr(Mbr),
    /// No partition table: the disk may hold a filesystem directly.
    None,
}

/// What [`detect`] found, and what a user should be told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub table: Table,
    pub warnings: Vec<String>,
}

/// A region of the disk that may hold a filesystem, whatever the table type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Partition number as Linux gives it.
    pub index: u32,
    pub offset: u64,
    pub size: u64,
}

impl Table {
    /// `"gpt"`, `"mbr"` or `"none"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Table::Gpt(_) => "gpt",
            Table::Mbr(_) => "mbr",
            Table::None => "none",
        }
    }

    /// Sector size the table's LBAs count in (`None` without a table).
    pub fn sector_size(&self) -> Option<u32> {
        match self {
            Table::Gpt(g) => Some(g.sector_size),
            Table::Mbr(m) => Some(m.sector_size),
            Table::None => None,
        }
    }

    /// The disk identifier as `sfdisk` prints it: the GPT disk GUID, or the MBR
    /// signature as `0x` and eight hex digits.
    pub fn disk_id(&self) -> Option<String> {
        match self {
            Table::Gpt(g) => Some(g.disk_guid.to_string()),
            Table::Mbr(m) => Some(format!("0x{:08x}", m.disk_signature)),
            Table::None => None,
        }
    }

    /// The partitions that can hold data, in index order: every GPT partition,
    /// MBR primary and logical partitions (not the extended container).
    pub fn regions(&self) -> Vec<Region> {
        match self {
            Table::Gpt(g) => g
                .partitions
                .iter()
                .map(|p| Region {
                    index: p.index,
                    offset: p.offset,
                    size: p.size,
                })
                .collect(),
            Table::Mbr(m) => m
                .partitions
                .iter()
                .filter(|p| p.kind != MbrKind::Extended)
                .map(|p| Region {
                    index: p.index,
                    offset: p.offset,
                    size: p.size,
                })
                .collect(),
            Table::None => Vec::new(),
        }
    }
}

/// Finds the partition table of `disk`.
///
/// GPT is recognised by its signature at LBA 1 for 512- then 4096-byte sectors. If
/// there is none but sector 0 is a protective MBR, the backup header at the last
/// LBA is tried (primary wiped); if that fails too it is an error, since the disk
/// says it is GPT. Otherwise a sector 0 that passes [`mbr::looks_like_mbr`] is read
/// as an MBR, and anything else is [`Table::None`].
pub fn detect<D: ReadAt + ?Sized>(disk: &D) -> Result<Detected> {
    let Some(s0) = read_opt(disk, 0, 512, "sector 0")? else {
        return Ok(Detected {
            table: Table::None,
            warnings: Vec::new(),
        });
    };
    let protective = mbr::is_protective(&s0);
    for ss in SECTOR_SIZES {
        if gpt::has_signature(disk, ss)? {
            let (g, mut warnings) = Gpt::read(disk, ss)?;
            gpt_mbr_warnings(&s0, protective, &mut warnings);
            return Ok(Detected {
                table: Table::Gpt(g),
                warnings,
            });
        }
    }
    if protective {
        // No primary header at LBA 1 for any sector size: look for a backup.
        let mut problems = Vec::new();
        for ss in SECTOR_SIZES {
            match Gpt::read(disk, ss) {
                Ok((g, mut warnings)) => {
                    gpt_mbr_warnings(&s0, protective, &mut warnings);
                    return Ok(Detected {
                        table: Table::Gpt(g),
                        warnings,
                    });
                }
                Err(e @ Error::Io { .. }) => return Err(e),
                Err(Error::NoUsableGpt { backup, .. }) => {
                    problems.push(format!("{ss}-byte sectors: {backup}"))
                }
                Err(e) => return Err(e),
            }
        }
        return Err(Error::NoUsableGpt {
            primary: "no \"EFI PART\" signature at LBA 1".into(),
            backup: problems.join("; "),
        });
    }
    if mbr::looks_like_mbr(&s0) {
        let (m, warnings) = Mbr::read(disk, 512)?;
        return Ok(Detected {
            table: Table::Mbr(m),
            warnings,
        });
    }
    Ok(Detected {
        table: Table::None,
        warnings: Vec::new(),
    })
}

fn gpt_mbr_warnings(s0: &[u8], protective: bool, warnings: &mut Vec<String>) {
    if !protective {
        warnings
            .push("GPT disk has no protective MBR (no partition of type 0xEE in sector 0)".into());
    } else if looks_hybrid(s0) {
        warnings.push("hybrid MBR: sector 0 lists partitions besides the GPT protective one; they are ignored".into());
    }
}

fn looks_hybrid(s0: &[u8]) -> bool {
    (0..4).any(|i| {
        let ty = s0.get(446 + 16 * i + 4).copied().unwrap_or(0);
        ty != 0 && ty != 0xEE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::tests::{P, build_gpt};
    use vmscrub_blockdev::MemDisk;

    const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

    #[test]
    fn detects_each_kind() {
        let d = build_gpt(
            4096,
            64,
            &[P {
                index: 2,
                ty: LINUX,
                first: 6,
                last: 20,
                name: "x",
            }],
        );
        let det = detect(&MemDisk::new(d)).unwrap();
        assert_eq!(det.table.kind(), "gpt");
        assert_eq!(det.table.sector_size(), Some(4096));
        assert_eq!(
            det.table.regions(),
            vec![Region {
                index: 2,
                offset: 6 * 4096,
                size: 15 * 4096
            }]
        );
        assert!(det.warnings.is_empty(), "{:?}", det.warnings);

        let det = detect(&MemDisk::new(mbr::tests::build_mbr())).unwrap();
        assert_eq!(det.table.kind(), "mbr");
        assert_eq!(det.table.disk_id().as_deref(), Some("0xdeadbeef"));
        assert_eq!(
            det.table
                .regions()
                .iter()
                .map(|r| r.index)
                .collect::<Vec<_>>(),
            vec![1, 5, 6]
        );

        assert_eq!(
            detect(&MemDisk::zeroed(1 << 20)).unwrap().table,
            Table::None
        );
        assert_eq!(detect(&MemDisk::zeroed(100)).unwrap().table, Table::None);
    }

    #[test]
    fn gpt_without_protective_mbr_warns() {
        let mut d = build_gpt(
            512,
            256,
            &[P {
                index: 1,
                ty: LINUX,
                first: 34,
                last: 40,
                name: "",
            }],
        );
        d[446 + 4] = 0;
        let det = detect(&MemDisk::new(d)).unwrap();
        assert_eq!(det.table.kind(), "gpt");
        assert!(det.warnings.iter().any(|w| w.contains("no protective MBR")));
    }

    #[test]
    fn protective_mbr_with_wiped_primary_finds_backup_or_fails() {
        let mut d = build_gpt(
            512,
            256,
            &[P {
                index: 1,
                ty: LINUX,
                first: 34,
                last: 40,
                name: "",
            }],
        );
        d[512..1024].fill(0);
        let det = detect(&MemDisk::new(d.clone())).unwrap();
        assert!(matches!(&det.table, Table::Gpt(g) if g.header == HeaderUsed::Backup { lba: 255 }));
        let n = d.len();
        d[n - 512..].fill(0);
        let e = detect(&MemDisk::new(d)).unwrap_err();
        assert!(matches!(e, Error::NoUsableGpt { .. }), "{e}");
    }

    #[test]
    fn hybrid_mbr_is_reported() {
        let mut d = build_gpt(
            512,
            256,
            &[P {
                index: 1,
                ty: LINUX,
                first: 34,
                last: 40,
                name: "",
            }],
        );
        crate::mbr::tests::put(&mut d, 0, 1, 0x80, 0x0c, 34, 7);
        let det = detect(&MemDisk::new(d)).unwrap();
        assert!(
            det.warnings.iter().any(|w| w.contains("hybrid MBR")),
            "{:?}",
            det.warnings
        );
    }

    /// Random byte flips over the first 64 KiB of small GPT and MBR disks: every
    /// outcome is fine except a panic or a hang (the loop is bounded and each read
    /// of a 1 MiB disk is fast, so a hang would show as a timeout).
    #[test]
    fn fuzz_byte_flips_never_panic() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let gpt = build_gpt(
            512,
            2048,
            &[
                P {
                    index: 1,
                    ty: LINUX,
                    first: 34,
                    last: 999,
                    name: "a",
                },
                P {
                    index: 2,
                    ty: LINUX,
                    first: 1000,
                    last: 1900,
                    name: "b",
                },
            ],
        );
        let mut mbr = mbr::tests::build_mbr();
        mbr.resize(2048 * 512, 0);
        let mut outcomes = [0usize; 3];
        for base in [gpt, mbr] {
            for _ in 0..1500 {
                let mut d = base.clone();
                let flips = 1 + next() % 8;
                for _ in 0..flips {
                    // Bias towards the structures: sector 0–2, EBRs, then anywhere.
                    let window = [1024u64, 3 * 512, 64 * 1024][(next() % 3) as usize];
                    let at = (next() % window) as usize;
                    d[at] ^= 1 << (next() % 8);
                }
                if next() % 10 == 0 {
                    d.truncate((next() % (d.len() as u64)) as usize);
                }
                match detect(&MemDisk::new(d)) {
                    Ok(det) if det.table == Table::None => outcomes[0] += 1,
                    Ok(_) => outcomes[1] += 1,
                    Err(e) => {
                        assert!(!e.to_string().is_empty());
                        outcomes[2] += 1
                    }
                }
            }
        }
        // The corpus must exercise both outcomes, or it is testing nothing.
        assert!(outcomes[1] > 100 && outcomes[2] > 100, "{outcomes:?}");
    }
}
