//! Linear directory entries (`ext4_dir_entry_2`) and the checksum tail that ends
//! each leaf block under metadata_csum.

use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::inode::FileType;
use crate::le::{u8_at, u16_at, u32_at};

/// Size of the entry header before the name.
pub const DIRENT_HEADER_SIZE: usize = 8;
/// Size of the checksum tail (a fake entry: inode 0, rec_len 12, type 0xDE).
pub const TAIL_SIZE: usize = 12;
pub const TAIL_FILE_TYPE: u8 = 0xDE;
pub const MAX_NAME_LEN: usize = 255;

/// Decodes `rec_len`: with 64 KiB blocks a whole-block entry cannot be said in 16
/// bits, so 0 and 65535 mean "the whole block" and the low two bits carry bits 16-17.
pub fn rec_len_from_disk(raw: u16, block_size: u32) -> u32 {
    let len = u32::from(raw);
    if block_size < 65536 {
        return len;
    }
    if len == 65535 || len == 0 {
        return block_size;
    }
    (len & 65532) | ((len & 3) << 16)
}

/// Encodes `rec_len` (the inverse of [`rec_len_from_disk`]).
pub fn rec_len_to_disk(len: u32, block_size: u32) -> u16 {
    if block_size < 65536 {
        return len as u16;
    }
    if len == block_size {
        return if block_size == 65536 { 65535 } else { 0 };
    }
    ((len & 65532) | ((len >> 16) & 3)) as u16
}

/// The smallest record that holds a name of `name_len` bytes.
pub fn min_rec_len(name_len: usize) -> u32 {
    ((DIRENT_HEADER_SIZE + name_len + 3) & !3) as u32
}

/// Where an entry is stored, for the editor to rewrite it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirEntryPlace {
    /// In directory block `logical`, stored at `physical`.
    Block { logical: u32, physical: u64 },
    /// In the inline-data area of `i_block` (offsets from `i_block` start).
    InlineIBlock,
    /// In the `system.data` xattr value of an inline directory.
    InlineXattr,
    /// `.` or `..` of an inline directory, which are not stored as entries.
    Synthetic,
}

/// One directory entry. `inode` 0 entries (unused space) are never returned by
/// the readers, only by [`parse_block`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub inode: u32,
    pub name: Vec<u8>,
    /// The stored type code (0 when the filesystem has no `filetype` feature).
    pub file_type_code: u8,
    pub rec_len: u32,
    pub place: DirEntryPlace,
    /// Byte offset of the entry inside its block or area.
    pub offset: u32,
}

impl DirEntry {
    /// The type the entry claims (`None` without the `filetype` feature: read the inode).
    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_dirent_code(self.file_type_code)
    }

    pub fn is_dot_or_dotdot(&self) -> bool {
        self.name == b"." || self.name == b".."
    }
}

/// Parses the entries of `area` (a directory block or an inline area), including
/// unused ones (`inode` 0). `filetype`: the superblock has the feature (so the
/// name length is one byte); `inodes_count` bounds inode numbers.
pub fn parse_entries(
    area: &[u8],
    block_size: u32,
    filetype: bool,
    inodes_count: u32,
    place: DirEntryPlace,
    loc: Loc,
) -> Result<Vec<DirEntry>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < area.len() {
        let bad = |d: String| {
            Err(Error::corrupt(
                "directory entry",
                loc,
                format!("at offset {pos}: {d}"),
            ))
        };
        if pos + DIRENT_HEADER_SIZE > area.len() {
            return bad(format!("header runs past the end ({} bytes)", area.len()));
        }
        let inode = u32_at(area, pos);
        let rec_len = rec_len_from_disk(u16_at(area, pos + 4), block_size) as usize;
        let (name_len, code) = if filetype {
            (usize::from(u8_at(area, pos + 6)), u8_at(area, pos + 7))
        } else {
            (usize::from(u16_at(area, pos + 6)), 0)
        };
        if rec_len < 12 || !rec_len.is_multiple_of(4) {
            return bad(format!("impossible rec_len {rec_len}"));
        }
        if pos + rec_len > area.len() {
            return bad(format!(
                "rec_len {rec_len} runs past the end ({} bytes)",
                area.len()
            ));
        }
        if name_len > MAX_NAME_LEN || (min_rec_len(name_len) as usize) > rec_len {
            return bad(format!(
                "name_len {name_len} does not fit rec_len {rec_len}"
            ));
        }
        if inode > inodes_count {
            return bad(format!("inode {inode} out of range"));
        }
        if inode != 0 && name_len == 0 {
            return bad("empty name".into());
        }
        out.push(DirEntry {
            inode,
            name: area[pos + DIRENT_HEADER_SIZE..pos + DIRENT_HEADER_SIZE + name_len].to_vec(),
            file_type_code: code,
            rec_len: rec_len as u32,
            place,
            offset: pos as u32,
        });
        pos += rec_len;
    }
    Ok(out)
}

/// Does `block` end with a metadata_csum leaf tail?
pub fn has_tail(block: &[u8]) -> bool {
    let Some(t) = block.len().checked_sub(TAIL_SIZE) else {
        return false;
    };
    u32_at(block, t) == 0
        && u16_at(block, t + 4) == TAIL_SIZE as u16
        && u8_at(block, t + 6) == 0
        && u8_at(block, t + 7) == TAIL_FILE_TYPE
}

/// The checksum a leaf block should carry in its tail.
pub fn compute_leaf_checksum(inode_seed: u32, block: &[u8]) -> u32 {
    checksum::crc32c(inode_seed, &block[..block.len().saturating_sub(TAIL_SIZE)])
}

/// Checks a leaf block's tail checksum; returns the length of the entry area.
pub fn verify_leaf(block: &[u8], inode_seed: u32, verify: bool, loc: Loc) -> Result<usize> {
    if !has_tail(block) {
        return Err(Error::corrupt(
            "directory block",
            loc,
            "no metadata_csum tail",
        ));
    }
    let end = block.len() - TAIL_SIZE;
    if verify {
        let stored = u32_at(block, block.len() - 4);
        let computed = compute_leaf_checksum(inode_seed, block);
        if stored != computed {
            return Err(Error::ChecksumMismatch {
                structure: "directory block",
                loc,
                stored,
                computed,
            });
        }
    }
    Ok(end)
}
