//! ext2/ext3/ext4 superblock (1024 bytes at byte 1024). Which of the three a
//! filesystem is follows blkid: by what its feature flags would need, not by what
//! made it (an ext2 with a journal added is ext3; anything ext3 cannot mount is ext4).

use vmscrub_blockdev::ReadAt;

use crate::util::{label, le16, le32, read_opt, uuid};
use crate::{Error, ExtDetails, Filesystem, Kind};

const SB_OFFSET: u64 = 1024;
const MAGIC: u16 = 0xEF53;

const COMPAT_HAS_JOURNAL: u32 = 0x0004;
const INCOMPAT_FILETYPE: u32 = 0x0002;
const INCOMPAT_RECOVER: u32 = 0x0004;
const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
const INCOMPAT_META_BG: u32 = 0x0010;
const RO_SPARSE_SUPER: u32 = 0x0001;
const RO_LARGE_FILE: u32 = 0x0002;
const RO_BTREE_DIR: u32 = 0x0004;

const EXT2_INCOMPAT_SUPP: u32 = INCOMPAT_FILETYPE | INCOMPAT_META_BG;
const EXT2_RO_SUPP: u32 = RO_SPARSE_SUPER | RO_LARGE_FILE | RO_BTREE_DIR;
const EXT3_INCOMPAT_SUPP: u32 = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;
const EXT3_RO_SUPP: u32 = EXT2_RO_SUPP;

/// Feature names as e2fsprogs (`dumpe2fs -h`) prints them, per bit.
const COMPAT_NAMES: &[(u32, &str)] = &[
    (0x0001, "dir_prealloc"),
    (0x0002, "imagic_inodes"),
    (0x0004, "has_journal"),
    (0x0008, "ext_attr"),
    (0x0010, "resize_inode"),
    (0x0020, "dir_index"),
    (0x0040, "lazy_bg"),
    (0x0100, "snapshot_bitmap"),
    (0x0200, "sparse_super2"),
    (0x0400, "fast_commit"),
    (0x0800, "stable_inodes"),
    (0x1000, "orphan_file"),
];
const INCOMPAT_NAMES: &[(u32, &str)] = &[
    (0x0001, "compression"),
    (0x0002, "filetype"),
    (0x0004, "needs_recovery"),
    (0x0008, "journal_dev"),
    (0x0010, "meta_bg"),
    (0x0040, "extent"),
    (0x0080, "64bit"),
    (0x0100, "mmp"),
    (0x0200, "flex_bg"),
    (0x0400, "ea_inode"),
    (0x1000, "dirdata"),
    (0x2000, "metadata_csum_seed"),
    (0x4000, "large_dir"),
    (0x8000, "inline_data"),
    (0x10000, "encrypt"),
    (0x20000, "casefold"),
];
const RO_COMPAT_NAMES: &[(u32, &str)] = &[
    (0x0001, "sparse_super"),
    (0x0002, "large_file"),
    (0x0008, "huge_file"),
    (0x0010, "uninit_bg"),
    (0x0020, "dir_nlink"),
    (0x0040, "extra_isize"),
    (0x0080, "snapshot"),
    (0x0100, "quota"),
    (0x0200, "bigalloc"),
    (0x0400, "metadata_csum"),
    (0x0800, "replica"),
    (0x1000, "read-only"),
    (0x2000, "project"),
    (0x4000, "shared_blocks"),
    (0x8000, "verity"),
    (0x10000, "orphan_present"),
];

/// The feature list in `dumpe2fs` order: compat, incompat, ro_compat bits from
/// low to high; unnamed bits as e2fsprogs spells them (`FEATURE_C7`, `FEATURE_I11`, `FEATURE_R2`).
pub fn feature_names(compat: u32, incompat: u32, ro_compat: u32) -> Vec<String> {
    let mut out = Vec::new();
    for (bits, names, tag) in [
        (compat, COMPAT_NAMES, 'C'),
        (incompat, INCOMPAT_NAMES, 'I'),
        (ro_compat, RO_COMPAT_NAMES, 'R'),
    ] {
        for bit in 0..32 {
            let mask = 1u32 << bit;
            if bits & mask == 0 {
                continue;
            }
            match names.iter().find(|&&(m, _)| m == mask) {
                Some(&(_, n)) => out.push(n.to_string()),
                None => out.push(format!("FEATURE_{tag}{bit}")),
            }
        }
    }
    out
}

pub(crate) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<Filesystem>, Error> {
    probe_at(dev, SB_OFFSET)
}

/// The ext superblock at byte `offset` (1024 for the primary; a backup's place
/// when the primary is damaged), identified the same way.
pub fn probe_at<D: ReadAt + ?Sized>(dev: &D, offset: u64) -> Result<Option<Filesystem>, Error> {
    let Some(sb) = read_opt(dev, offset, 1024, "ext superblock")? else {
        return Ok(None);
    };
    if le16(&sb, 0x38) != MAGIC {
        return Ok(None);
    }
    let compat = le32(&sb, 0x5C);
    let incompat = le32(&sb, 0x60);
    let ro_compat = le32(&sb, 0x64);
    let has_journal = compat & COMPAT_HAS_JOURNAL != 0;
    let mut warnings = Vec::new();

    let kind = if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        Kind::Jbd
    } else if !has_journal && ro_compat & !EXT2_RO_SUPP == 0 && incompat & !EXT2_INCOMPAT_SUPP == 0
    {
        Kind::Ext2
    } else if has_journal && ro_compat & !EXT3_RO_SUPP == 0 && incompat & !EXT3_INCOMPAT_SUPP == 0 {
        Kind::Ext3
    } else if ro_compat & !EXT3_RO_SUPP != 0 || incompat & !EXT3_INCOMPAT_SUPP != 0 {
        Kind::Ext4
    } else {
        // No journal, yet flags only ext3 knows (needs_recovery): blkid names
        // nothing here, and neither do we.
        warnings
            .push("ext superblock marks journal recovery needed but has no journal".to_string());
        return Ok(Some(Filesystem {
            warnings,
            ..Filesystem::unknown()
        }));
    };

    let log = le32(&sb, 0x18);
    let block_size = if log <= 6 {
        Some(1024u32 << log)
    } else {
        warnings.push(format!("ext block size exponent {log} is out of range"));
        None
    };
    let needs_recovery = incompat & INCOMPAT_RECOVER != 0;
    if needs_recovery {
        warnings.push(
            "ext journal needs recovery (the filesystem was not unmounted cleanly)".to_string(),
        );
    }
    let state = le16(&sb, 0x3A);
    Ok(Some(Filesystem {
        kind,
        label: label(sb.get(0x78..0x88).unwrap_or_default()),
        uuid: uuid(sb.get(0x68..0x78).unwrap_or_default()),
        version: Some(format!("{}.{}", le32(&sb, 0x4C), le16(&sb, 0x3E))),
        block_size,
        ext: Some(ExtDetails {
            features: feature_names(compat, incompat, ro_compat),
            needs_recovery,
            clean: state & 1 != 0,
            errors: state & 2 != 0,
            compat,
            incompat,
            ro_compat,
            superblock_offset: offset,
        }),
        fat: None,
        warnings,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    pub fn sb(compat: u32, incompat: u32, ro: u32) -> Vec<u8> {
        let mut d = vec![0u8; 8192];
        let s = 1024;
        d[s + 0x18..s + 0x1C].copy_from_slice(&2u32.to_le_bytes());
        d[s + 0x38..s + 0x3A].copy_from_slice(&MAGIC.to_le_bytes());
        d[s + 0x3A] = 1;
        d[s + 0x4C] = 1;
        d[s + 0x5C..s + 0x60].copy_from_slice(&compat.to_le_bytes());
        d[s + 0x60..s + 0x64].copy_from_slice(&incompat.to_le_bytes());
        d[s + 0x64..s + 0x68].copy_from_slice(&ro.to_le_bytes());
        d[s + 0x68..s + 0x78].copy_from_slice(&[0xab; 16]);
        d[s + 0x78..s + 0x7C].copy_from_slice(b"data");
        d
    }

    fn kind(compat: u32, incompat: u32, ro: u32) -> Kind {
        probe(&MemDisk::new(sb(compat, incompat, ro)))
            .unwrap()
            .unwrap()
            .kind
    }

    #[test]
    fn kind_follows_features_like_blkid() {
        assert_eq!(kind(0x38, 0x2, 0x3), Kind::Ext2);
        assert_eq!(kind(0x3c, 0x2, 0x3), Kind::Ext3);
        assert_eq!(
            kind(0x3c, 0x6, 0x3),
            Kind::Ext3,
            "ext3 needing recovery is still ext3"
        );
        assert_eq!(kind(0x3c, 0x2c2, 0x47b), Kind::Ext4);
        assert_eq!(
            kind(0x38, 0x42, 0x3),
            Kind::Ext4,
            "extents without a journal"
        );
        assert_eq!(kind(0x0, 0x8, 0x0), Kind::Jbd);
        assert_eq!(kind(0x0, 0x4, 0x0), Kind::Unknown);
    }

    #[test]
    fn details_and_needs_recovery() {
        let fs = probe(&MemDisk::new(sb(0x3c, 0x2c6, 0x46b)))
            .unwrap()
            .unwrap();
        assert_eq!(fs.label.as_deref(), Some("data"));
        assert_eq!(
            fs.uuid.as_deref(),
            Some("abababab-abab-abab-abab-abababababab")
        );
        assert_eq!(fs.block_size, Some(4096));
        assert_eq!(fs.version.as_deref(), Some("1.0"));
        let ext = fs.ext.unwrap();
        assert!(ext.needs_recovery && ext.clean);
        assert_eq!(
            ext.features.join(" "),
            "has_journal ext_attr resize_inode dir_index filetype needs_recovery extent 64bit flex_bg \
             sparse_super large_file huge_file dir_nlink extra_isize metadata_csum"
        );
        assert!(fs.warnings.iter().any(|w| w.contains("needs recovery")));
    }

    #[test]
    fn unknown_bits_are_spelled_like_e2fsprogs() {
        assert_eq!(
            feature_names(0x80, 0x800, 0x4),
            vec!["FEATURE_C7", "FEATURE_I11", "FEATURE_R2"]
        );
    }

    #[test]
    fn small_or_foreign_devices_are_not_ext() {
        assert!(probe(&MemDisk::zeroed(1500)).unwrap().is_none());
        assert!(probe(&MemDisk::zeroed(4096)).unwrap().is_none());
        let mut d = sb(0, 0, 0);
        d[1024 + 0x18] = 40; // absurd block size: reported, not used
        let fs = probe(&MemDisk::new(d)).unwrap().unwrap();
        assert_eq!(fs.block_size, None);
    }
}
