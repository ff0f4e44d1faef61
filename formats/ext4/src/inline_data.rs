//! Inline data (`inline_data` feature): small files and directories live in the
//! 60 bytes of `i_block`, continued in the value of the in-inode `system.data`
//! xattr. An inline directory starts with the parent's inode number (4 bytes) and
//! stores no `.`/`..` entries.

use vmscrub_blockdev::ReadAt;

use crate::dir_entry::{self, DirEntry, DirEntryPlace};
use crate::error::{Error, Loc, Result};
use crate::features::incompat;
use crate::fs::Ext4;
use crate::inode::Inode;

/// `system.data` is name index 7 ("system.") with this suffix.
pub const SYSTEM_DATA_INDEX: u8 = 7;
pub const SYSTEM_DATA_NAME: &[u8] = b"data";

impl<D: ReadAt> Ext4<D> {
    /// The `system.data` continuation of an inline inode (empty if absent).
    pub fn inline_xattr_data(&self, inode: &Inode) -> Result<Vec<u8>> {
        let area = inode.xattr_area();
        for e in self.inode_xattr_entries(inode)? {
            if e.name_index == SYSTEM_DATA_INDEX && e.name_suffix == SYSTEM_DATA_NAME {
                if e.value_inum != 0 {
                    return Err(Error::corrupt(
                        "inline data",
                        Loc::inode(inode.ino),
                        "system.data in an ea_inode",
                    ));
                }
                return self.xattr_value(inode, &e, area.get(4..).unwrap_or(&[]));
            }
        }
        Ok(Vec::new())
    }

    /// The stored content of an inline file or symlink: `i_block` then
    /// `system.data`, cut at `i_size`. It may be shorter than `i_size`: the rest
    /// of the file reads as zeros (mkfs.ext4 -d stores a 3 MiB hole this way).
    pub fn inline_data(&self, inode: &Inode) -> Result<Vec<u8>> {
        if !self
            .superblock()
            .features
            .has_incompat(incompat::INLINE_DATA)
        {
            return Err(Error::corrupt(
                "inode",
                Loc::inode(inode.ino),
                "inline-data flag without the inline_data feature",
            ));
        }
        let mut data = inode.i_block.to_vec();
        data.extend(self.inline_xattr_data(inode)?);
        if inode.size < data.len() as u64 {
            data.truncate(inode.size as usize);
        }
        Ok(data)
    }

    /// Entries of an inline directory: synthetic `.` and `..`, then those stored in
    /// `i_block` (offsets from the start of `i_block`) and in `system.data`.
    pub fn inline_dir_entries(&self, inode: &Inode) -> Result<Vec<DirEntry>> {
        if !self
            .superblock()
            .features
            .has_incompat(incompat::INLINE_DATA)
        {
            return Err(Error::corrupt(
                "inode",
                Loc::inode(inode.ino),
                "inline-data flag without the inline_data feature",
            ));
        }
        let sb = self.superblock();
        let loc = Loc::inode(inode.ino);
        let filetype = sb.features.has_incompat(incompat::FILETYPE);
        let parent = crate::le::u32_at(&inode.i_block, 0);
        if parent == 0 || parent > sb.inodes_count {
            return Err(Error::corrupt(
                "inline directory",
                loc,
                format!("parent inode {parent}"),
            ));
        }
        let dot = |ino: u32, name: &[u8]| DirEntry {
            inode: ino,
            name: name.to_vec(),
            file_type_code: if filetype { 2 } else { 0 },
            rec_len: 0,
            place: DirEntryPlace::Synthetic,
            offset: 0,
        };
        let mut out = vec![dot(inode.ino, b"."), dot(parent, b"..")];
        let bs = self.block_size();
        let mut first = dir_entry::parse_entries(
            &inode.i_block[4..],
            bs,
            filetype,
            sb.inodes_count,
            DirEntryPlace::InlineIBlock,
            loc,
        )?;
        for e in &mut first {
            e.offset += 4;
        }
        out.extend(first);
        let more = self.inline_xattr_data(inode)?;
        if !more.is_empty() {
            out.extend(dir_entry::parse_entries(
                &more,
                bs,
                filetype,
                sb.inodes_count,
                DirEntryPlace::InlineXattr,
                loc,
            )?);
        }
        Ok(out)
    }
}
