//! Extended attributes: in the inode after `i_extra_isize` (magic, entries, values)
//! and in one external block (32-byte header with refcount, hash and checksum,
//! entries, values growing down from the end). Large values may live in their own
//! inode (`ea_inode`).

use vmscrub_blockdev::ReadAt;

use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::features::incompat;
use crate::fs::Ext4;
use crate::inode::{Inode, flags};
use crate::le::{u8_at, u16_at, u32_at};

pub const XATTR_MAGIC: u32 = 0xEA02_0000;
/// Size of the external block header.
pub const BLOCK_HEADER_SIZE: usize = 32;
/// Fixed part of an entry, before the name.
pub const ENTRY_HEADER_SIZE: usize = 16;
/// Largest value accepted from an `ea_inode` (the kernel's `EXT4_XATTR_SIZE_MAX`).
pub const EA_INODE_VALUE_MAX: u64 = 1 << 24;

/// Field offsets in the external block header.
pub mod block_off {
    pub const MAGIC: usize = 0x00;
    pub const REFCOUNT: usize = 0x04;
    pub const BLOCKS: usize = 0x08;
    pub const HASH: usize = 0x0C;
    pub const CHECKSUM: usize = 0x10;
}

/// The name prefix an index stands for; `None` for indexes nothing defines.
pub fn prefix_for_index(index: u8) -> Option<&'static str> {
    Some(match index {
        1 => "user.",
        2 => "system.posix_acl_access",
        3 => "system.posix_acl_default",
        4 => "trusted.",
        6 => "security.",
        7 => "system.",
        8 => "system.richacl",
        _ => return None,
    })
}

/// Where an entry is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrPlace {
    /// In the inode; offsets are from the start of the inode's xattr area.
    Inode,
    /// In the external block.
    Block(u64),
}

/// One entry as stored, before its value is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XattrEntry {
    pub place: XattrPlace,
    /// Offset of the entry (in the xattr area or the block).
    pub entry_offset: usize,
    pub name_index: u8,
    /// Name without the prefix the index stands for.
    pub name_suffix: Vec<u8>,
    /// Value offset, relative to the first entry (in-inode) or to the block start.
    pub value_offs: u16,
    /// Inode holding the value (`ea_inode`), or 0.
    pub value_inum: u32,
    pub value_size: u32,
    pub hash: u32,
}

impl XattrEntry {
    /// Entry size on disk: header and name, padded to 4 bytes.
    pub fn disk_size(&self) -> usize {
        (ENTRY_HEADER_SIZE + self.name_suffix.len() + 3) & !3
    }

    /// The full name: prefix from the index, then the stored suffix.
    pub fn full_name(&self) -> Result<Vec<u8>> {
        let prefix = prefix_for_index(self.name_index).ok_or_else(|| {
            Error::corrupt(
                "xattr entry",
                Loc::NONE,
                format!("unknown name index {}", self.name_index),
            )
        })?;
        let mut n = prefix.as_bytes().to_vec();
        n.extend_from_slice(&self.name_suffix);
        Ok(n)
    }
}

/// A name and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    pub name: Vec<u8>,
    /// The value exactly as stored (POSIX ACLs in ext4's compact form: see
    /// [`acl_to_xattr`] for the form `getfattr` shows).
    pub value: Vec<u8>,
    pub entry: XattrEntry,
}

/// The external xattr block, parsed.
#[derive(Debug, Clone)]
pub struct XattrBlock {
    pub block: u64,
    pub refcount: u32,
    pub blocks: u32,
    pub hash: u32,
    pub checksum: u32,
    pub entries: Vec<XattrEntry>,
    pub raw: Vec<u8>,
}

impl XattrBlock {
    /// The checksum block `raw` at `block` should carry (metadata_csum).
    pub fn compute_checksum(fs_seed: u32, block: u64, raw: &[u8]) -> u32 {
        let mut c = checksum::crc32c(fs_seed, &block.to_le_bytes());
        c = checksum::crc32c(c, raw.get(..block_off::CHECKSUM).unwrap_or(&[]));
        c = checksum::crc32c(c, &[0; 4]);
        checksum::crc32c(c, raw.get(block_off::CHECKSUM + 4..).unwrap_or(&[]))
    }
}

/// Parses the entry list of `area` from `start`; values must lie in
/// `value_base + value_offs ..` within `area` (checked by the caller's reader).
fn parse_entries(
    area: &[u8],
    start: usize,
    place: XattrPlace,
    loc: Loc,
) -> Result<Vec<XattrEntry>> {
    let mut out = Vec::new();
    let mut pos = start;
    loop {
        // The list ends with four zero bytes (or, in the inode, at the area's end).
        if pos + 4 > area.len() {
            if matches!(place, XattrPlace::Inode) {
                break;
            }
            return Err(Error::corrupt(
                "xattr entry",
                loc,
                format!("entry list runs past the end at offset {pos}"),
            ));
        }
        if u32_at(area, pos) == 0 {
            break;
        }
        if pos + ENTRY_HEADER_SIZE > area.len() {
            return Err(Error::corrupt(
                "xattr entry",
                loc,
                format!("entry at offset {pos} runs past the end"),
            ));
        }
        let name_len = usize::from(u8_at(area, pos));
        let name_end = pos + ENTRY_HEADER_SIZE + name_len;
        let Some(name) = area.get(pos + ENTRY_HEADER_SIZE..name_end) else {
            return Err(Error::corrupt(
                "xattr entry",
                loc,
                format!("name at offset {pos} runs past the end"),
            ));
        };
        let e = XattrEntry {
            place,
            entry_offset: pos,
            name_index: u8_at(area, pos + 1),
            name_suffix: name.to_vec(),
            value_offs: u16_at(area, pos + 2),
            value_inum: u32_at(area, pos + 4),
            value_size: u32_at(area, pos + 8),
            hash: u32_at(area, pos + 12),
        };
        pos += e.disk_size();
        out.push(e);
    }
    Ok(out)
}

impl<D: ReadAt> Ext4<D> {
    /// The in-inode entries (after the 4-byte magic), or none if the area has no magic.
    pub fn inode_xattr_entries(&self, inode: &Inode) -> Result<Vec<XattrEntry>> {
        let area = inode.xattr_area();
        if area.len() < 4 || u32_at(area, 0) != XATTR_MAGIC {
            return Ok(Vec::new());
        }
        parse_entries(area, 4, XattrPlace::Inode, Loc::inode(inode.ino))
    }

    /// Reads, checks and parses the inode's external xattr block.
    pub fn xattr_block(&self, inode: &Inode) -> Result<XattrBlock> {
        let block = inode.file_acl;
        let loc = Loc::at(inode.ino, block);
        self.check_blocks("xattr block", Loc::inode(inode.ino), block, 1)?;
        let raw = self.read_block_vec(block, "xattr block")?;
        let magic = u32_at(&raw, block_off::MAGIC);
        if magic != XATTR_MAGIC {
            return Err(Error::corrupt(
                "xattr block header",
                loc,
                format!("bad magic {magic:#010x}"),
            ));
        }
        let blocks = u32_at(&raw, block_off::BLOCKS);
        if blocks != 1 {
            return Err(Error::corrupt(
                "xattr block header",
                loc,
                format!("h_blocks {blocks} (must be 1)"),
            ));
        }
        let checksum = u32_at(&raw, block_off::CHECKSUM);
        if self.superblock().has_metadata_csum() && self.verify_checksums() {
            let computed = XattrBlock::compute_checksum(self.checksum_seed(), block, &raw);
            if computed != checksum {
                return Err(Error::ChecksumMismatch {
                    structure: "xattr block",
                    loc,
                    stored: checksum,
                    computed,
                });
            }
        }
        let entries = parse_entries(&raw, BLOCK_HEADER_SIZE, XattrPlace::Block(block), loc)?;
        Ok(XattrBlock {
            block,
            refcount: u32_at(&raw, block_off::REFCOUNT),
            blocks,
            hash: u32_at(&raw, block_off::HASH),
            checksum,
            entries,
            raw,
        })
    }

    /// All entries, in-inode first, without values.
    pub fn xattr_entries(&self, inode: &Inode) -> Result<Vec<XattrEntry>> {
        let mut v = self.inode_xattr_entries(inode)?;
        if inode.file_acl != 0 {
            v.extend(self.xattr_block(inode)?.entries);
        }
        Ok(v)
    }

    /// Every extended attribute of inode `ino`, with its value.
    pub fn xattrs(&self, ino: u32) -> Result<Vec<Xattr>> {
        let inode = self.inode(ino)?;
        self.xattrs_of(&inode)
    }

    pub fn xattrs_of(&self, inode: &Inode) -> Result<Vec<Xattr>> {
        let mut out = Vec::new();
        let area = inode.xattr_area();
        for entry in self.inode_xattr_entries(inode)? {
            let value = self.xattr_value(inode, &entry, area.get(4..).unwrap_or(&[]))?;
            out.push(self.named(inode, entry, value)?);
        }
        if inode.file_acl != 0 {
            let blk = self.xattr_block(inode)?;
            for entry in blk.entries.iter().cloned() {
                let value = self.xattr_value(inode, &entry, &blk.raw)?;
                out.push(self.named(inode, entry, value)?);
            }
        }
        Ok(out)
    }

    fn named(&self, inode: &Inode, entry: XattrEntry, value: Vec<u8>) -> Result<Xattr> {
        let name = entry.full_name().map_err(|_| {
            Error::corrupt(
                "xattr entry",
                Loc::inode(inode.ino),
                format!("unknown name index {}", entry.name_index),
            )
        })?;
        Ok(Xattr { name, value, entry })
    }

    /// The value of one entry: from `values` (the area its offsets are relative
    /// to) or from its `ea_inode`.
    pub fn xattr_value(&self, inode: &Inode, entry: &XattrEntry, values: &[u8]) -> Result<Vec<u8>> {
        let loc = match entry.place {
            XattrPlace::Inode => Loc::inode(inode.ino),
            XattrPlace::Block(b) => Loc::at(inode.ino, b),
        };
        if entry.value_inum != 0 {
            return self.ea_inode_value(inode, entry, loc);
        }
        let start = usize::from(entry.value_offs);
        let end = start.checked_add(entry.value_size as usize);
        match end.and_then(|end| values.get(start..end)) {
            Some(v) => Ok(v.to_vec()),
            None => Err(Error::corrupt(
                "xattr entry",
                loc,
                format!(
                    "value of {} bytes at offset {start} lies outside the {}-byte area",
                    entry.value_size,
                    values.len()
                ),
            )),
        }
    }

    fn ea_inode_value(&self, inode: &Inode, entry: &XattrEntry, loc: Loc) -> Result<Vec<u8>> {
        if !self.superblock().features.has_incompat(incompat::EA_INODE) {
            return Err(Error::corrupt(
                "xattr entry",
                loc,
                "value in an inode without the ea_inode feature",
            ));
        }
        if entry.value_inum == inode.ino {
            return Err(Error::corrupt(
                "xattr entry",
                loc,
                "value inode is the inode itself",
            ));
        }
        let size = u64::from(entry.value_size);
        if size > EA_INODE_VALUE_MAX {
            return Err(Error::corrupt(
                "xattr entry",
                loc,
                format!("value of {size} bytes is too large"),
            ));
        }
        let vi = self.inode(entry.value_inum)?;
        if !vi.has_flag(flags::EA_INODE) || vi.size < size {
            return Err(Error::corrupt(
                "xattr entry",
                loc,
                format!(
                    "inode {} is not a large-value inode of {size} bytes",
                    entry.value_inum
                ),
            ));
        }
        let mut buf = vec![0u8; size as usize];
        let map = self.file_map(&vi)?;
        self.read_mapped(&vi, &map, 0, &mut buf)?;
        Ok(buf)
    }
}

/// Converts a POSIX ACL from ext4's compact on-disk form (version 1; short
/// entries for the owner, group, mask and other) to the kernel's xattr form
/// (version 2; every entry 8 bytes with an id), which is what `getfattr` and
/// `debugfs ea_get` show. `None` if `disk` is not a valid ACL.
pub fn acl_to_xattr(disk: &[u8]) -> Option<Vec<u8>> {
    if u32_at(disk, 0) != 1 || disk.len() < 4 {
        return None;
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    let mut pos = 4;
    while pos < disk.len() {
        let tag = u16_at(disk, pos);
        let perm = u16_at(disk, pos + 2);
        let (id, size) = match tag {
            0x02 | 0x08 => (u32_at(disk, pos + 4), 8),
            0x01 | 0x04 | 0x10 | 0x20 => (u32::MAX, 4),
            _ => return None,
        };
        if pos + size > disk.len() {
            return None;
        }
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        pos += size;
    }
    Some(out)
}
