//! Removing one entry from a run of directory entries (a directory block's entry
//! area, or one of the two areas of an inline directory), the way the kernel's
//! `ext4_generic_delete_entry` does — and then wiping what it leaves behind.
//!
//! An entry after the first is merged into its predecessor (`rec_len` grows over
//! it); the first entry of an area cannot be merged away, so it is kept as an
//! unused record (`inode` 0, same `rec_len`). Either way every byte that is now
//! slack — the removed name, its header, and whatever older slack the merged
//! record carried — is zeroed, so no name survives in the block.

use crate::dir_entry::{self, DIRENT_HEADER_SIZE, DirEntryPlace};
use crate::error::{Error, Loc, Result};

/// How entries of this filesystem are laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryFormat {
    pub(crate) block_size: u32,
    /// The `filetype` feature (one-byte name length plus a type code).
    pub(crate) filetype: bool,
    pub(crate) inodes_count: u32,
}

/// Removes the entry at byte `offset` of `area`, which must hold inode `ino`
/// named `name`.
pub(crate) fn remove_entry(
    area: &mut [u8],
    offset: usize,
    ino: u32,
    name: &[u8],
    fmt: EntryFormat,
    loc: Loc,
) -> Result<()> {
    let block_size = fmt.block_size;
    let entries = dir_entry::parse_entries(
        area,
        block_size,
        fmt.filetype,
        fmt.inodes_count,
        DirEntryPlace::Synthetic,
        loc,
    )?;
    let Some(i) = entries.iter().position(|e| e.offset as usize == offset) else {
        return Err(Error::corrupt(
            "directory entry",
            loc,
            format!("no entry starts at offset {offset}"),
        ));
    };
    let e = &entries[i];
    if e.inode != ino || e.name != name {
        return Err(Error::corrupt(
            "directory entry",
            loc,
            format!("the entry at offset {offset} changed under the edit"),
        ));
    }
    let rec_len = e.rec_len as usize;
    if i == 0 {
        // Keep the record (and its rec_len); clear inode, name_len, type and name.
        area[offset..offset + 4].fill(0);
        area[offset + 6..offset + rec_len].fill(0);
        return Ok(());
    }
    let p = &entries[i - 1];
    let p_off = p.offset as usize;
    let merged = p.rec_len as usize + rec_len;
    let enc = dir_entry::rec_len_to_disk(merged as u32, block_size);
    area[p_off + 4..p_off + 6].copy_from_slice(&enc.to_le_bytes());
    let keep = p_off + DIRENT_HEADER_SIZE + p.name.len();
    area[keep..p_off + merged].fill(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: EntryFormat = EntryFormat {
        block_size: 1024,
        filetype: true,
        inodes_count: 100,
    };

    fn entry(ino: u32, name: &[u8], rec_len: u16) -> Vec<u8> {
        let mut v = ino.to_le_bytes().to_vec();
        v.extend(rec_len.to_le_bytes());
        v.push(name.len() as u8);
        v.push(1);
        v.extend(name);
        v.resize(rec_len as usize, 0xAA); // stale slack
        v
    }

    fn block() -> Vec<u8> {
        let mut b = entry(12, b"first", 16);
        b.extend(entry(13, b"second", 20));
        b.extend(entry(14, b"third", 1024 - 36));
        b
    }

    #[test]
    fn merges_into_the_previous_entry_and_wipes() {
        let mut b = block();
        remove_entry(&mut b, 16, 13, b"second", F, Loc::NONE).unwrap();
        let e = dir_entry::parse_entries(&b, 1024, true, 100, DirEntryPlace::Synthetic, Loc::NONE)
            .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].rec_len, e[1].name.as_slice()), (36, &b"third"[..]));
        assert!(b[13..36].iter().all(|&c| c == 0), "slack wiped");
        assert!(!b.windows(6).any(|w| w == b"second"));
        // The last entry merges too, and the wiped tail covers its stale slack.
        remove_entry(&mut b, 36, 14, b"third", F, Loc::NONE).unwrap();
        assert!(b[13..].iter().all(|&c| c == 0));
    }

    #[test]
    fn the_first_entry_becomes_unused() {
        let mut b = block();
        remove_entry(&mut b, 0, 12, b"first", F, Loc::NONE).unwrap();
        let e = dir_entry::parse_entries(&b, 1024, true, 100, DirEntryPlace::Synthetic, Loc::NONE)
            .unwrap();
        assert_eq!((e[0].inode, e[0].rec_len, e[0].name.len()), (0, 16, 0));
        assert!(b[6..16].iter().all(|&c| c == 0));
        assert_eq!(e[1].name, b"second");
    }

    #[test]
    fn refuses_a_stale_location() {
        let mut b = block();
        let before = b.clone();
        assert!(remove_entry(&mut b, 16, 99, b"second", F, Loc::NONE).is_err());
        assert!(remove_entry(&mut b, 8, 13, b"second", F, Loc::NONE).is_err());
        assert_eq!(b, before);
    }
}
