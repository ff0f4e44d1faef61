//! The boot sector and its BIOS Parameter Block: where every region of the volume
//! lies, and which FAT type it is.
//!
//! The FAT type is decided by the count of data clusters, as Microsoft's FAT
//! specification (“FAT: General Overview of On-Disk Format”, v1.03) defines it —
//! below 4085 clusters FAT12, below 65525 FAT16, else FAT32 — never by the
//! `FAT12   `/`FAT32   ` label string, which is informational only. A BPB whose
//! layout contradicts its cluster count (a FAT32-shaped BPB with too few clusters,
//! which has no root directory region) is refused rather than guessed at.

use vmscrub_blockdev::ReadAt;

use crate::error::{FatError, Result};

/// FAT12, FAT16 or FAT32: the width of a FAT entry and where the root directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

impl FatType {
    /// The bad-cluster marker; values above it mark the end of a chain.
    pub(crate) fn bad_marker(self) -> u32 {
        match self {
            FatType::Fat12 => 0xFF7,
            FatType::Fat16 => 0xFFF7,
            FatType::Fat32 => 0x0FFF_FFF7,
        }
    }

    /// The end-of-chain value this crate writes.
    pub(crate) fn eoc_marker(self) -> u32 {
        match self {
            FatType::Fat12 => 0xFFF,
            FatType::Fat16 => 0xFFFF,
            FatType::Fat32 => 0x0FFF_FFFF,
        }
    }

    /// Bytes of FAT needed for `entries` entries.
    fn fat_bytes(self, entries: u64) -> u64 {
        match self {
            FatType::Fat12 => (entries * 3).div_ceil(2),
            FatType::Fat16 => entries * 2,
            FatType::Fat32 => entries * 4,
        }
    }
}

impl std::fmt::Display for FatType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FatType::Fat12 => "FAT12",
            FatType::Fat16 => "FAT16",
            FatType::Fat32 => "FAT32",
        })
    }
}

/// Clusters below this count make a FAT12 volume (Microsoft FAT specification).
const FAT12_LIMIT: u64 = 4085;
/// Clusters below this count (and not FAT12) make a FAT16 volume.
const FAT16_LIMIT: u64 = 65525;
/// FAT32 entries are 28 bits and 0x0FFFFFF7 up are markers: highest data cluster
/// 0x0FFFFFF6, so at most 0x0FFFFFF5 clusters.
const FAT32_MAX_CLUSTERS: u64 = 0x0FFF_FFF5;

/// Everything derived from the boot sector, validated, in bytes where it matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    pub fat_type: FatType,
    pub bytes_per_sector: u32,
    pub sectors_per_cluster: u32,
    /// `bytes_per_sector * sectors_per_cluster`.
    pub cluster_size: u32,
    pub reserved_sectors: u32,
    pub num_fats: u32,
    /// Sectors of one FAT copy.
    pub fat_sectors: u32,
    /// Total sectors of the volume (the 16- or 32-bit field, whichever is set).
    pub total_sectors: u32,
    /// Number of data clusters; valid cluster numbers are `2..=cluster_count + 1`.
    pub cluster_count: u32,
    /// FAT12/16: slots of the fixed root directory region. 0 on FAT32.
    pub root_entries: u32,
    /// FAT32: first cluster of the root directory. 0 on FAT12/16.
    pub root_cluster: u32,
    /// FAT32: sector of the FSInfo structure, if the BPB names one.
    pub fs_info_sector: Option<u32>,
    /// FAT32: sector of the backup boot sector, if the BPB names one. Edits never
    /// change the boot sector, so the backup stays a faithful copy.
    pub backup_boot_sector: Option<u32>,
    /// The FAT copy reads use: 0, unless FAT32 mirroring is disabled (ext_flags bit 7)
    /// and another copy is marked active.
    pub active_fat: u32,
    /// False when FAT32's ext_flags disable mirroring: only `active_fat` is current.
    pub mirrored: bool,
    /// Volume serial number, if the extended boot signature is present.
    pub volume_id: Option<u32>,
    /// The BPB's copy of the volume label (11 bytes, space padded), if present.
    pub bpb_label: Option<[u8; 11]>,
}

impl Geometry {
    /// Highest valid cluster number.
    pub fn max_cluster(&self) -> u32 {
        self.cluster_count + 1
    }

    pub(crate) fn is_cluster(&self, c: u32) -> bool {
        (2..=self.max_cluster()).contains(&c)
    }

    /// Byte offset of FAT copy `copy` (0-based).
    pub fn fat_offset(&self, copy: u32) -> u64 {
        (self.reserved_sectors as u64 + copy as u64 * self.fat_sectors as u64)
            * self.bytes_per_sector as u64
    }

    /// Bytes of one FAT copy that hold entries 0..=max_cluster (the rest is padding).
    pub fn fat_used_bytes(&self) -> u64 {
        self.fat_type.fat_bytes(self.cluster_count as u64 + 2)
    }

    /// Byte offset of the FAT12/16 root directory region (where FAT32's would be).
    pub fn root_dir_offset(&self) -> u64 {
        self.fat_offset(self.num_fats)
    }

    /// Bytes of the FAT12/16 root directory region.
    pub fn root_dir_bytes(&self) -> u64 {
        self.root_entries as u64 * 32
    }

    /// Byte offset of cluster 2, the first data cluster.
    pub fn data_offset(&self) -> u64 {
        let root_sectors = self.root_dir_bytes().div_ceil(self.bytes_per_sector as u64);
        self.root_dir_offset() + root_sectors * self.bytes_per_sector as u64
    }

    /// Byte offset of data cluster `c` (which must be a valid cluster number).
    pub fn cluster_offset(&self, c: u32) -> u64 {
        self.data_offset() + (c as u64 - 2) * self.cluster_size as u64
    }

    /// Length of the volume in bytes.
    pub fn volume_bytes(&self) -> u64 {
        self.total_sectors as u64 * self.bytes_per_sector as u64
    }

    /// Parses and validates the boot sector of `dev`.
    pub fn read<D: ReadAt + ?Sized>(dev: &D) -> Result<Geometry> {
        let mut bs = [0u8; 512];
        dev.read_exact_at(&mut bs, 0)
            .map_err(|source| FatError::Read {
                what: "boot sector",
                offset: 0,
                source,
            })?;
        let g = Self::parse(&bs)?;
        if g.volume_bytes() > dev.size() {
            return Err(FatError::Truncated {
                need: g.volume_bytes(),
                have: dev.size(),
            });
        }
        Ok(g)
    }

    /// Validates the first 512 bytes of a volume. Every field that places a region or
    /// bounds a loop is checked here, so later code can index with it.
    pub fn parse(bs: &[u8; 512]) -> Result<Geometry> {
        let u16_at = |o: usize| u16::from_le_bytes([bs[o], bs[o + 1]]) as u32;
        let u32_at = |o: usize| u32::from_le_bytes([bs[o], bs[o + 1], bs[o + 2], bs[o + 3]]);
        let bad = |field, value: u64, why| FatError::Bpb { field, value, why };

        if bs[510] != 0x55 || bs[511] != 0xAA {
            return Err(FatError::NoSignature);
        }
        let bps = u16_at(11);
        if !matches!(bps, 512 | 1024 | 2048 | 4096) {
            return Err(bad(
                "BPB_BytsPerSec",
                bps.into(),
                "must be 512, 1024, 2048 or 4096",
            ));
        }
        let spc = bs[13] as u32;
        if !spc.is_power_of_two() {
            return Err(bad(
                "BPB_SecPerClus",
                spc.into(),
                "must be a power of two from 1 to 128",
            ));
        }
        let rsvd = u16_at(14);
        if rsvd == 0 {
            return Err(bad("BPB_RsvdSecCnt", 0, "must be at least 1"));
        }
        let nfats = bs[16] as u32;
        if nfats == 0 {
            return Err(bad("BPB_NumFATs", 0, "must be at least 1"));
        }
        let root_entries = u16_at(17);
        let tot16 = u16_at(19);
        let tot32 = u32_at(32);
        let total = if tot16 != 0 { tot16 } else { tot32 };
        if total == 0 {
            return Err(bad(
                "BPB_TotSec16/BPB_TotSec32",
                0,
                "the volume has no sectors",
            ));
        }
        let fat16_size = u16_at(22);
        let fat32_size = u32_at(36);
        let fat_sectors = if fat16_size != 0 {
            fat16_size
        } else {
            fat32_size
        };
        if fat_sectors == 0 {
            return Err(bad("BPB_FATSz16/BPB_FATSz32", 0, "the FAT has no sectors"));
        }
        let root_sectors = (root_entries as u64 * 32).div_ceil(bps as u64);
        let meta = rsvd as u64 + nfats as u64 * fat_sectors as u64 + root_sectors;
        if meta >= total as u64 {
            return Err(bad(
                "BPB_FATSz",
                fat_sectors.into(),
                "reserved sectors, FATs and root directory fill the whole volume",
            ));
        }
        let clusters = (total as u64 - meta) / spc as u64;
        if clusters == 0 {
            return Err(bad(
                "BPB_TotSec",
                total.into(),
                "no room for a single data cluster",
            ));
        }
        let fat_type = if clusters < FAT12_LIMIT {
            FatType::Fat12
        } else if clusters < FAT16_LIMIT {
            FatType::Fat16
        } else {
            FatType::Fat32
        };
        if fat_type == FatType::Fat32 && clusters > FAT32_MAX_CLUSTERS {
            return Err(bad(
                "BPB_TotSec32",
                total.into(),
                "more clusters than FAT32 can address",
            ));
        }
        if fat_type.fat_bytes(clusters + 2) > fat_sectors as u64 * bps as u64 {
            return Err(bad(
                "BPB_FATSz",
                fat_sectors.into(),
                "the FAT is too small for the volume's clusters",
            ));
        }

        let mut g = Geometry {
            fat_type,
            bytes_per_sector: bps,
            sectors_per_cluster: spc,
            cluster_size: bps * spc,
            reserved_sectors: rsvd,
            num_fats: nfats,
            fat_sectors,
            total_sectors: total,
            cluster_count: clusters as u32,
            root_entries: 0,
            root_cluster: 0,
            fs_info_sector: None,
            backup_boot_sector: None,
            active_fat: 0,
            mirrored: true,
            volume_id: None,
            bpb_label: None,
        };
        let label_at = |sig: usize, g: &mut Geometry| {
            if bs[sig] == 0x29 {
                g.volume_id = Some(u32_at(sig + 1));
                let mut l = [0u8; 11];
                l.copy_from_slice(&bs[sig + 5..sig + 16]);
                g.bpb_label = Some(l);
            }
        };
        if fat_type == FatType::Fat32 {
            if root_entries != 0 {
                return Err(bad(
                    "BPB_RootEntCnt",
                    root_entries.into(),
                    "must be 0 on a FAT32 volume (decided by its cluster count)",
                ));
            }
            if fat16_size != 0 {
                return Err(bad(
                    "BPB_FATSz16",
                    fat16_size.into(),
                    "must be 0 on a FAT32 volume (decided by its cluster count)",
                ));
            }
            let version = u16_at(42);
            if version != 0 {
                return Err(bad(
                    "BPB_FSVer",
                    version.into(),
                    "only FAT32 version 0.0 is defined",
                ));
            }
            let ext = u16_at(40);
            if ext & 0x80 != 0 {
                g.mirrored = false;
                g.active_fat = ext & 0x0F;
                if g.active_fat >= nfats {
                    return Err(bad(
                        "BPB_ExtFlags",
                        ext.into(),
                        "the active FAT does not exist",
                    ));
                }
            }
            let root = u32_at(44);
            if !g.is_cluster(root) {
                return Err(bad("BPB_RootClus", root.into(), "not a valid data cluster"));
            }
            g.root_cluster = root;
            let fsinfo = u16_at(48);
            if fsinfo != 0 && fsinfo != 0xFFFF {
                if fsinfo >= rsvd {
                    return Err(bad(
                        "BPB_FSInfo",
                        fsinfo.into(),
                        "outside the reserved region",
                    ));
                }
                g.fs_info_sector = Some(fsinfo);
            }
            let backup = u16_at(50);
            if backup != 0 && backup != 0xFFFF {
                if backup >= rsvd {
                    return Err(bad(
                        "BPB_BkBootSec",
                        backup.into(),
                        "outside the reserved region",
                    ));
                }
                g.backup_boot_sector = Some(backup);
            }
            label_at(66, &mut g);
        } else {
            if root_entries == 0 {
                return Err(bad(
                    "BPB_RootEntCnt",
                    0,
                    "a FAT12/16 volume (decided by its cluster count) needs a root directory region",
                ));
            }
            g.root_entries = root_entries;
            label_at(38, &mut g);
        }
        Ok(g)
    }
}
