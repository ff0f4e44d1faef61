//! The primary superblock (AG 0, byte 0): geometry, feature bits, root inode,
//! log placement. v5 (CRC) filesystems are read with their CRCs checked; v4 is
//! read without (it has none). What this reader cannot read correctly — a
//! realtime device, an external log, unknown incompatible features, the
//! metadata-directory tree — fails [`Superblock::parse`] with a refusal that
//! names it.

use crate::be::{bytes_at, u8_at, u16_at, u32_at, u64_at};
use crate::checksum;
use crate::error::{Error, Loc, Result};

pub const MAGIC: &[u8; 4] = b"XFSB";
/// Offset of `sb_crc` in the superblock sector.
pub const CRC_OFFSET: usize = 224;

// sb_versionnum bits.
const VERSION_NUMBITS: u16 = 0x000f;
const VERSION_DIRV2: u16 = 0x2000;
const VERSION_MOREBITS: u16 = 0x8000;
const VERSION_BORG: u16 = 0x4000;
// sb_features2 bits.
const F2_FTYPE: u32 = 0x0200;
// v5 feature bits.
pub const RO_COMPAT_FINOBT: u32 = 1;
pub const RO_COMPAT_RMAPBT: u32 = 2;
pub const RO_COMPAT_REFLINK: u32 = 4;
pub const RO_COMPAT_INOBTCNT: u32 = 8;
pub const INCOMPAT_FTYPE: u32 = 0x01;
pub const INCOMPAT_SPINODES: u32 = 0x02;
pub const INCOMPAT_META_UUID: u32 = 0x04;
pub const INCOMPAT_BIGTIME: u32 = 0x08;
pub const INCOMPAT_NEEDSREPAIR: u32 = 0x10;
pub const INCOMPAT_NREXT64: u32 = 0x20;
pub const INCOMPAT_EXCHRANGE: u32 = 0x40;
pub const INCOMPAT_PARENT: u32 = 0x80;
/// Incompatible features this reader understands; any other bit is refused.
const INCOMPAT_KNOWN: u32 = INCOMPAT_FTYPE
    | INCOMPAT_SPINODES
    | INCOMPAT_META_UUID
    | INCOMPAT_BIGTIME
    | INCOMPAT_NEEDSREPAIR
    | INCOMPAT_NREXT64
    | INCOMPAT_EXCHRANGE
    | INCOMPAT_PARENT;

/// The fields of the superblock this reader uses, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub block_size: u32,
    pub dblocks: u64,
    pub rblocks: u64,
    pub rextents: u64,
    pub uuid: [u8; 16],
    /// First block of the internal log (0: the log is on another device).
    pub log_start: u64,
    pub root_ino: u64,
    pub ag_blocks: u32,
    pub ag_count: u32,
    pub log_blocks: u32,
    pub version: u8,
    pub versionnum: u16,
    pub sect_size: u16,
    pub inode_size: u16,
    pub inodes_per_block: u16,
    pub label: [u8; 12],
    pub block_log: u8,
    pub inode_log: u8,
    pub inop_block_log: u8,
    pub ag_block_log: u8,
    pub in_progress: u8,
    pub icount: u64,
    pub ifree: u64,
    pub fdblocks: u64,
    /// Directory blocks are `block_size << dir_block_log` bytes.
    pub dir_block_log: u8,
    pub features2: u32,
    pub ro_compat: u32,
    pub incompat: u32,
    pub log_incompat: u32,
    pub meta_uuid: [u8; 16],
}

impl Superblock {
    /// Decodes and checks the superblock sector (`buf` holds at least 512 bytes;
    /// on v5 the CRC covers `sb_sectsize` bytes, which `buf` must hold).
    pub fn parse(buf: &[u8], verify_crc: bool) -> Result<Self> {
        if buf.get(0..4) != Some(MAGIC) {
            return Err(Error::corrupt("superblock", Loc::at(0), "no XFSB magic"));
        }
        let sb = Self::decode(buf);
        sb.check_geometry()?;
        if sb.version == 5 {
            let len = usize::from(sb.sect_size).min(buf.len());
            checksum::verify(
                verify_crc,
                "superblock",
                &buf[..len],
                CRC_OFFSET,
                Loc::at(0),
            )?;
        }
        sb.check_supported()?;
        Ok(sb)
    }

    fn decode(b: &[u8]) -> Self {
        let versionnum = u16_at(b, 100);
        let version = (versionnum & VERSION_NUMBITS) as u8;
        let v5 = version == 5;
        Superblock {
            block_size: u32_at(b, 4),
            dblocks: u64_at(b, 8),
            rblocks: u64_at(b, 16),
            rextents: u64_at(b, 24),
            uuid: bytes_at(b, 32),
            log_start: u64_at(b, 48),
            root_ino: u64_at(b, 56),
            ag_blocks: u32_at(b, 84),
            ag_count: u32_at(b, 88),
            log_blocks: u32_at(b, 96),
            version,
            versionnum,
            sect_size: u16_at(b, 102),
            inode_size: u16_at(b, 104),
            inodes_per_block: u16_at(b, 106),
            label: bytes_at(b, 108),
            block_log: u8_at(b, 120),
            inode_log: u8_at(b, 122),
            inop_block_log: u8_at(b, 123),
            ag_block_log: u8_at(b, 124),
            in_progress: u8_at(b, 126),
            icount: u64_at(b, 128),
            ifree: u64_at(b, 136),
            fdblocks: u64_at(b, 144),
            dir_block_log: u8_at(b, 192),
            features2: if versionnum & VERSION_MOREBITS != 0 {
                u32_at(b, 200)
            } else {
                0
            },
            ro_compat: if v5 { u32_at(b, 212) } else { 0 },
            incompat: if v5 { u32_at(b, 216) } else { 0 },
            log_incompat: if v5 { u32_at(b, 220) } else { 0 },
            meta_uuid: bytes_at(b, 248),
        }
    }

    /// The geometry every other computation relies on: powers of two that agree
    /// with their logs, an inode number layout that fits in 64 bits, AGs that
    /// cover the data blocks.
    fn check_geometry(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::corrupt("superblock", Loc::at(0), detail));
        let pow = |log: u8| 1u64.checked_shl(u32::from(log)).unwrap_or(0);
        if !(9..=16).contains(&self.block_log) || u64::from(self.block_size) != pow(self.block_log)
        {
            return bad(format!(
                "block size {} (log {})",
                self.block_size, self.block_log
            ));
        }
        if !(8..=11).contains(&self.inode_log)
            || u64::from(self.inode_size) != pow(self.inode_log)
            || self.block_log.checked_sub(self.inode_log) != Some(self.inop_block_log)
        {
            return bad(format!(
                "inode size {} (log {})",
                self.inode_size, self.inode_log
            ));
        }
        if !self.sect_size.is_power_of_two() || !(512..=32768).contains(&self.sect_size) {
            return bad(format!("sector size {}", self.sect_size));
        }
        if self.ag_count == 0
            || self.ag_blocks < 16
            || pow(self.ag_block_log) < u64::from(self.ag_blocks)
            || self.ag_block_log > 31
            || u32::from(self.ag_block_log) + u32::from(self.inop_block_log) > 32
        {
            return bad(format!(
                "{} AGs of {} blocks (log {})",
                self.ag_count, self.ag_blocks, self.ag_block_log
            ));
        }
        let max = u64::from(self.ag_count) * u64::from(self.ag_blocks);
        // Every AG but the last is whole, so each starts inside the data blocks.
        let whole = u64::from(self.ag_count - 1) * u64::from(self.ag_blocks);
        if self.dblocks == 0 || self.dblocks > max || self.dblocks <= whole {
            return bad(format!("{} data blocks in {max} AG blocks", self.dblocks));
        }
        if u32::from(self.dir_block_log) + u32::from(self.block_log) > 16 {
            return bad(format!("directory block log {}", self.dir_block_log));
        }
        if self.in_progress != 0 {
            return bad("mkfs did not finish (sb_inprogress is set)".into());
        }
        Ok(())
    }

    fn check_supported(&self) -> Result<()> {
        match self.version {
            5 => {}
            4 if self.versionnum & VERSION_DIRV2 != 0 => {}
            4 => return Err(Error::unsupported("v4 XFS with version 1 directories")),
            v => return Err(Error::unsupported(format!("XFS superblock version {v}"))),
        }
        if self.versionnum & VERSION_BORG != 0 {
            return Err(Error::unsupported(
                "ASCII case-insensitive directories (ascii-ci)",
            ));
        }
        if self.rblocks != 0 || self.rextents != 0 {
            return Err(Error::unsupported("a realtime device (rtdev)"));
        }
        if self.log_start == 0 {
            return Err(Error::unsupported("an external log device (logdev)"));
        }
        let unknown = self.incompat & !INCOMPAT_KNOWN;
        if unknown != 0 {
            let what = if unknown & 0x100 != 0 {
                "the metadata directory tree (metadir)".to_string()
            } else {
                format!("incompatible feature bits {unknown:#x}")
            };
            return Err(Error::unsupported(what));
        }
        // The log lies inside one AG, inside the data blocks.
        let log_last = self
            .log_start
            .saturating_add(u64::from(self.log_blocks))
            .saturating_sub(1);
        if self.log_blocks == 0
            || self.fsb_to_byte(self.log_start).is_none()
            || self.fsb_to_byte(log_last).is_none()
            || log_last >> self.ag_block_log != self.log_start >> self.ag_block_log
        {
            return Err(Error::corrupt(
                "superblock",
                Loc::at(0),
                format!(
                    "log of {} blocks at block {}",
                    self.log_blocks, self.log_start
                ),
            ));
        }
        Ok(())
    }

    pub fn has_crc(&self) -> bool {
        self.version == 5
    }

    /// Directory entries carry the file type.
    pub fn has_ftype(&self) -> bool {
        self.incompat & INCOMPAT_FTYPE != 0 || self.features2 & F2_FTYPE != 0
    }

    pub fn has_bigtime(&self) -> bool {
        self.incompat & INCOMPAT_BIGTIME != 0
    }

    pub fn has_nrext64(&self) -> bool {
        self.incompat & INCOMPAT_NREXT64 != 0
    }

    pub fn needs_repair(&self) -> bool {
        self.incompat & INCOMPAT_NEEDSREPAIR != 0
    }

    /// The UUID stamped into metadata blocks (differs from `uuid` after
    /// `xfs_admin -U` with the meta_uuid feature).
    pub fn metadata_uuid(&self) -> [u8; 16] {
        if self.incompat & INCOMPAT_META_UUID != 0 {
            self.meta_uuid
        } else {
            self.uuid
        }
    }

    /// Bytes per directory block.
    pub fn dir_block_size(&self) -> u32 {
        self.block_size << self.dir_block_log
    }

    /// The label, without its NUL padding.
    pub fn label(&self) -> &[u8] {
        let end = self
            .label
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.label.len());
        &self.label[..end]
    }

    /// The feature names mkfs.xfs and xfs_info use, in a fixed order.
    pub fn feature_names(&self) -> Vec<&'static str> {
        let mut out = vec![];
        let mut add = |on: bool, name| {
            if on {
                out.push(name)
            }
        };
        add(self.has_crc(), "crc");
        add(self.has_ftype(), "ftype");
        add(self.ro_compat & RO_COMPAT_FINOBT != 0, "finobt");
        add(self.incompat & INCOMPAT_SPINODES != 0, "sparse");
        add(self.ro_compat & RO_COMPAT_RMAPBT != 0, "rmapbt");
        add(self.ro_compat & RO_COMPAT_REFLINK != 0, "reflink");
        add(self.ro_compat & RO_COMPAT_INOBTCNT != 0, "inobtcount");
        add(self.has_bigtime(), "bigtime");
        add(self.has_nrext64(), "nrext64");
        add(self.incompat & INCOMPAT_EXCHRANGE != 0, "exchange");
        add(self.incompat & INCOMPAT_PARENT != 0, "parent");
        add(self.incompat & INCOMPAT_META_UUID != 0, "meta_uuid");
        add(self.needs_repair(), "needsrepair");
        out
    }

    /// Byte offset on the device of filesystem block `fsb` (AG-encoded:
    /// `agno << agblklog | agbno`), or `None` when it lies outside the AGs.
    pub fn fsb_to_byte(&self, fsb: u64) -> Option<u64> {
        let agno = fsb >> self.ag_block_log;
        let agbno = fsb & ((1u64 << self.ag_block_log) - 1);
        if agno >= u64::from(self.ag_count) || agbno >= u64::from(self.ag_blocks) {
            return None;
        }
        let linear = agno * u64::from(self.ag_blocks) + agbno;
        if linear >= self.dblocks {
            return None;
        }
        linear.checked_mul(u64::from(self.block_size))
    }

    /// Byte offset of inode `ino`, or `None` when the number names no place
    /// inside the AGs.
    pub fn inode_to_byte(&self, ino: u64) -> Option<u64> {
        let per_block_log = u32::from(self.inop_block_log);
        let fsb = ino >> per_block_log;
        let index = ino & ((1u64 << per_block_log) - 1);
        let agno = fsb >> self.ag_block_log;
        if agno >= u64::from(self.ag_count) {
            return None;
        }
        self.fsb_to_byte(fsb)?.checked_add(index << self.inode_log)
    }

    /// (AG, block within the AG) of AG-encoded block `fsb`.
    pub fn fsb_split(&self, fsb: u64) -> (u64, u64) {
        (
            fsb >> self.ag_block_log,
            fsb & ((1u64 << self.ag_block_log) - 1),
        )
    }

    /// (AG, block within the AG) of the block at device byte `byte` (the
    /// form bmap B+tree blocks come in, [`crate::BlockMap::tree_blocks`]).
    pub fn byte_split(&self, byte: u64) -> (u64, u64) {
        let linear = byte / u64::from(self.block_size.max(1));
        let per_ag = u64::from(self.ag_blocks.max(1));
        (linear / per_ag, linear % per_ag)
    }

    /// (AG, inode number within the AG) of inode `ino`.
    pub fn ino_split(&self, ino: u64) -> (u64, u64) {
        let bits = u32::from(self.inop_block_log) + u32::from(self.ag_block_log);
        (ino >> bits, ino & ((1u64 << bits) - 1))
    }

    /// Byte offset of AG `agno`'s first block.
    pub fn ag_byte(&self, agno: u32) -> u64 {
        (u64::from(agno) * u64::from(self.ag_blocks)).saturating_mul(u64::from(self.block_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sb() -> Vec<u8> {
        let mut d = vec![0u8; 512];
        d[0..4].copy_from_slice(b"XFSB");
        d[4..8].copy_from_slice(&4096u32.to_be_bytes());
        d[8..16].copy_from_slice(&1000u64.to_be_bytes());
        d[48..56].copy_from_slice(&100u64.to_be_bytes());
        d[56..64].copy_from_slice(&128u64.to_be_bytes());
        d[84..88].copy_from_slice(&250u32.to_be_bytes());
        d[88..92].copy_from_slice(&4u32.to_be_bytes());
        d[96..100].copy_from_slice(&50u32.to_be_bytes());
        d[100..102].copy_from_slice(&(5u16 | 0x8000 | 0x2000).to_be_bytes());
        d[102..104].copy_from_slice(&512u16.to_be_bytes());
        d[104..106].copy_from_slice(&512u16.to_be_bytes());
        d[106..108].copy_from_slice(&8u16.to_be_bytes());
        d[108..111].copy_from_slice(b"lbl");
        d[120..125].copy_from_slice(&[12, 9, 9, 3, 8]);
        d[216..220].copy_from_slice(&(INCOMPAT_FTYPE | INCOMPAT_BIGTIME).to_be_bytes());
        fix(&mut d);
        d
    }

    fn fix(d: &mut [u8]) {
        let c = checksum::compute(d, CRC_OFFSET);
        d[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&c.to_le_bytes());
    }

    #[test]
    fn parses_and_refuses() {
        let s = Superblock::parse(&sb(), true).unwrap();
        assert_eq!((s.label(), s.version, s.root_ino), (&b"lbl"[..], 5, 128));
        assert_eq!(s.feature_names(), ["crc", "ftype", "bigtime"]);
        assert_eq!(s.inode_to_byte(128), Some(16 * 4096));
        let mut d = sb();
        d[300] ^= 1;
        assert!(matches!(
            Superblock::parse(&d, true),
            Err(Error::ChecksumMismatch { .. })
        ));
        assert!(Superblock::parse(&d, false).is_ok());
        let mut d = sb();
        d[24..32].copy_from_slice(&5u64.to_be_bytes());
        fix(&mut d);
        let e = Superblock::parse(&d, true).unwrap_err().to_string();
        assert!(e.contains("realtime"), "{e}");
        let mut d = sb();
        d[48..56].fill(0);
        fix(&mut d);
        let e = Superblock::parse(&d, true).unwrap_err().to_string();
        assert!(e.contains("external log"), "{e}");
        let mut d = sb();
        d[216..220].copy_from_slice(&0x101u32.to_be_bytes());
        fix(&mut d);
        let e = Superblock::parse(&d, true).unwrap_err().to_string();
        assert!(e.contains("metadir"), "{e}");
        let mut d = sb();
        d[120] = 200;
        assert!(Superblock::parse(&d, false).is_err());
    }

    /// Extreme values in any field (all ones, all zeros) give a value or an
    /// error, never an arithmetic overflow, here or in the offset helpers.
    #[test]
    fn extreme_fields_do_not_overflow() {
        for at in 0..256 {
            for fill in [0x00, 0x7f, 0xff] {
                let mut d = sb();
                let end = (at + 8).min(256);
                d[at..end].fill(fill);
                if let Ok(s) = Superblock::parse(&d, false) {
                    for x in [0, 1, u64::MAX, u64::from(u32::MAX), s.dblocks] {
                        let _ = (s.fsb_to_byte(x), s.inode_to_byte(x));
                    }
                    let _ = s.ag_byte(s.ag_count - 1);
                }
            }
        }
    }
}
