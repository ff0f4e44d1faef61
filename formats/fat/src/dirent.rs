//! The 32-byte directory entry: short (8.3) entries, VFAT long-name slots, and the
//! per-file facts a short entry holds.

use crate::time::FatTime;

pub(crate) const ENTRY: usize = 32;
/// First byte of a deleted entry.
pub(crate) const DELETED: u8 = 0xE5;
/// Attribute value of a VFAT long-name slot (read-only|hidden|system|volume).
pub(crate) const ATTR_LFN: u8 = 0x0F;

/// Identity of a file on a FAT volume, which has no inodes: the byte offset (within
/// the device the volume was opened on) of the file's short directory entry. It is
/// stable for as long as the file exists — edits never move entries — and unique,
/// since two entries cannot share a slot. The root directory, which has no entry,
/// is [`ROOT`].
pub type NodeId = u64;

/// The root directory's [`NodeId`]: offset 0 is the boot sector, never an entry.
pub const ROOT: NodeId = 0;

/// The attribute byte of a short entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Attributes(pub u8);

impl Attributes {
    pub const READ_ONLY: u8 = 0x01;
    pub const HIDDEN: u8 = 0x02;
    pub const SYSTEM: u8 = 0x04;
    pub const VOLUME_ID: u8 = 0x08;
    pub const DIRECTORY: u8 = 0x10;
    pub const ARCHIVE: u8 = 0x20;

    pub fn read_only(self) -> bool {
        self.0 & Self::READ_ONLY != 0
    }
    pub fn hidden(self) -> bool {
        self.0 & Self::HIDDEN != 0
    }
    pub fn system(self) -> bool {
        self.0 & Self::SYSTEM != 0
    }
    pub fn archive(self) -> bool {
        self.0 & Self::ARCHIVE != 0
    }
    pub fn directory(self) -> bool {
        self.0 & Self::DIRECTORY != 0
    }
}

/// What a short directory entry (or, for the root, the BPB) says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    pub attributes: Attributes,
    pub is_dir: bool,
    /// Size in bytes (0 for directories, whose size is their chain's length).
    pub size: u32,
    /// First cluster, 0 for an empty file (and for the FAT12/16 root).
    pub first_cluster: u32,
    pub created: FatTime,
    pub modified: FatTime,
    /// Last access: a date only (`time` is 0).
    pub accessed: FatTime,
}

impl Node {
    pub(crate) fn from_short(id: NodeId, e: &[u8; ENTRY]) -> Node {
        let u16_at = |o: usize| u16::from_le_bytes([e[o], e[o + 1]]);
        let attributes = Attributes(e[11]);
        Node {
            id,
            attributes,
            is_dir: attributes.directory(),
            size: u32::from_le_bytes([e[28], e[29], e[30], e[31]]),
            first_cluster: (u16_at(20) as u32) << 16 | u16_at(26) as u32,
            created: FatTime {
                date: u16_at(16),
                time: u16_at(14),
                centis: e[13],
            },
            modified: FatTime {
                date: u16_at(24),
                time: u16_at(22),
                centis: 0,
            },
            accessed: FatTime {
                date: u16_at(18),
                time: 0,
                centis: 0,
            },
        }
    }
}

/// How one 32-byte slot reads.
pub(crate) enum Slot<'a> {
    /// 0x00 first byte: this and every later slot of the directory are unused.
    End,
    Deleted,
    Lfn(&'a [u8; ENTRY]),
    VolumeLabel,
    Dot,
    Short(&'a [u8; ENTRY]),
}

pub(crate) fn classify(e: &[u8; ENTRY]) -> Slot<'_> {
    match e[0] {
        0 => Slot::End,
        DELETED => Slot::Deleted,
        _ if e[11] & 0x3F == ATTR_LFN => Slot::Lfn(e),
        _ if e[11] & (Attributes::VOLUME_ID | Attributes::DIRECTORY) == Attributes::VOLUME_ID => {
            Slot::VolumeLabel
        }
        _ if &e[..11] == b".          " || &e[..11] == b"..         " => Slot::Dot,
        _ => Slot::Short(e),
    }
}

/// The 13 UTF-16 units a long-name slot carries, in order.
pub(crate) fn lfn_units(e: &[u8; ENTRY]) -> [u16; 13] {
    const POS: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
    POS.map(|o| u16::from_le_bytes([e[o], e[o + 1]]))
}

pub(crate) fn short_name_bytes(e: &[u8; ENTRY]) -> [u8; 11] {
    let mut n = [0u8; 11];
    n.copy_from_slice(&e[..11]);
    n
}
