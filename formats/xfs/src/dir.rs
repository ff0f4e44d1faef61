//! Directories in all five forms. Reading needs only the names: a shortform
//! directory lists them inside the inode; the block, leaf, node and B+tree
//! forms all keep every entry in the data blocks below the leaf offset (32 GiB
//! into the fork), mapped by an extent list or a bmap B+tree, so those forms
//! are read by walking the data blocks (the leaf, free-index and da-btree
//! blocks only index them). Each entry keeps its place, for an editor.

use vmscrub_blockdev::ReadAt;

use crate::be::{u8_at, u16_at, u32_at, u64_at};
use crate::bmap::{BlockMap, Fork};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::{FileType, ForkFormat, Inode};

/// Byte offset in the fork where leaf blocks start: data blocks lie below.
const LEAF_OFFSET: u64 = 32 << 30;
const DATA_MAGIC_V5: u32 = 0x5844_4433; // XDD3
const BLOCK_MAGIC_V5: u32 = 0x5844_4233; // XDB3
const DATA_MAGIC_V4: u32 = 0x5844_3244; // XD2D
const BLOCK_MAGIC_V4: u32 = 0x5844_3242; // XD2B
const DATA_CRC_OFFSET: usize = 4;
const FREE_TAG: u16 = 0xffff;

/// Where an entry is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPlace {
    /// In the inode's shortform list, at this byte of the data fork.
    Shortform { offset: usize },
    /// In the data block at this device byte offset, at this byte of the block.
    Block { block: u64, offset: usize },
}

/// One directory entry (never `.` or `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    /// The type recorded in the entry (ftype feature), if any.
    pub file_type: Option<FileType>,
    pub place: EntryPlace,
}

impl<D: ReadAt> Xfs<D> {
    /// Every entry of directory `dir` except `.` and `..`, in on-disk order.
    pub fn read_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        if dir.file_type() != Some(FileType::Directory) {
            return Err(Error::NotADirectory { inode: dir.ino });
        }
        match dir.format {
            ForkFormat::Local => self.shortform_entries(dir),
            ForkFormat::Extents | ForkFormat::Btree => {
                let map = self.block_map(dir, Fork::Data)?;
                self.data_block_entries(dir, &map)
            }
            ForkFormat::Dev => Err(Error::corrupt(
                "directory",
                Loc::inode(dir.ino),
                "device fork",
            )),
        }
    }

    fn shortform_entries(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        let loc = Loc::inode(dir.ino).with_offset(dir.offset);
        let fork = dir.data_fork();
        let size = usize::try_from(dir.size).unwrap_or(usize::MAX);
        if size > fork.len() || size < 6 {
            return Err(Error::corrupt(
                "shortform directory",
                loc,
                format!("size {} in a fork of {}", dir.size, fork.len()),
            ));
        }
        let b = &fork[..size];
        let count = usize::from(u8_at(b, 0));
        let wide = u8_at(b, 1) != 0;
        let ino_len = if wide { 8 } else { 4 };
        let ftype = self.sb.has_ftype();
        let mut pos = 2 + ino_len;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let namelen = usize::from(u8_at(b, pos));
            let name_at = pos + 3;
            let ft_at = name_at + namelen;
            let ino_at = ft_at + usize::from(ftype);
            let next = ino_at + ino_len;
            if namelen == 0 || next > b.len() {
                return Err(Error::corrupt(
                    "shortform directory",
                    loc,
                    format!("entry at byte {pos} runs past the end"),
                ));
            }
            let ino = if wide {
                u64_at(b, ino_at)
            } else {
                u64::from(u32_at(b, ino_at))
            };
            out.push(DirEntry {
                name: b[name_at..ft_at].to_vec(),
                ino: self.check_entry_ino(ino, loc)?,
                file_type: if ftype {
                    FileType::from_dirent(u8_at(b, ft_at))
                } else {
                    None
                },
                place: EntryPlace::Shortform { offset: pos },
            });
            pos = next;
        }
        Ok(out)
    }

    fn check_entry_ino(&self, ino: u64, loc: Loc) -> Result<u64> {
        if ino == 0 || self.sb.inode_to_byte(ino).is_none() {
            return Err(Error::corrupt(
                "directory entry",
                loc,
                format!("inode number {ino} is outside the filesystem"),
            ));
        }
        Ok(ino)
    }

    /// Walks every mapped directory block below the leaf offset.
    fn data_block_entries(&self, dir: &Inode, map: &BlockMap) -> Result<Vec<DirEntry>> {
        let bs = u64::from(self.sb.block_size);
        let dbs = u64::from(self.sb.dir_block_size());
        let per = dbs / bs;
        let leaf_fb = LEAF_OFFSET / bs;
        let mut out = vec![];
        let mut buf = vec![0u8; dbs as usize];
        let loc = Loc::inode(dir.ino);
        // Directory blocks in order, each once (an extent may start inside a
        // multi-block directory block the previous extent began). The extents
        // are checked to lie inside the filesystem, so this is bounded by it.
        let mut next = 0u64;
        for e in &map.extents {
            let end = e.end().min(leaf_fb);
            let mut d = (e.offset / per).max(next);
            while d * per < end {
                self.read_mapped(map, d * dbs, &mut buf, loc)?;
                let phys = map
                    .lookup(d * per)
                    .and_then(|e| self.sb.fsb_to_byte(e.start + (d * per - e.offset)))
                    .unwrap_or(0);
                self.block_entries(&buf, phys, loc.with_offset(phys), &mut out)?;
                d += 1;
            }
            next = d;
        }
        Ok(out)
    }

    /// The entries of one data block (or the single block of block form).
    fn block_entries(&self, b: &[u8], phys: u64, loc: Loc, out: &mut Vec<DirEntry>) -> Result<()> {
        let bad = |d: String| Err(Error::corrupt("directory data block", loc, d));
        let v5 = self.sb.has_crc();
        let magic = u32_at(b, 0);
        let (hdr, is_block) = match (v5, magic) {
            (true, DATA_MAGIC_V5) => (64, false),
            (true, BLOCK_MAGIC_V5) => (64, true),
            (false, DATA_MAGIC_V4) => (16, false),
            (false, BLOCK_MAGIC_V4) => (16, true),
            _ => return bad(format!("magic {magic:#x}")),
        };
        if v5 {
            checksum::verify(self.verify, "directory block", b, DATA_CRC_OFFSET, loc)?;
            if self.verify && loc.inode.is_some_and(|i| u64_at(b, 40) != i) {
                return bad("owned by another inode".into());
            }
        }
        let mut end = b.len();
        if is_block {
            let count = u64::from(u32_at(b, b.len() - 8));
            let leaf = count.checked_mul(8).and_then(|l| l.checked_add(8));
            match leaf.and_then(|l| usize::try_from(l).ok()) {
                Some(l) if l + hdr <= b.len() => end = b.len() - l,
                _ => return bad(format!("block tail counts {count} leaf entries")),
            }
        }
        let ftype = self.sb.has_ftype();
        let mut pos = hdr;
        while pos < end {
            if u16_at(b, pos) == FREE_TAG {
                let len = usize::from(u16_at(b, pos + 2));
                if len < 8 || len % 8 != 0 || pos + len > end {
                    return bad(format!("unused entry of {len} bytes at byte {pos}"));
                }
                pos += len;
                continue;
            }
            let namelen = usize::from(u8_at(b, pos + 8));
            let size = (8 + 1 + namelen + usize::from(ftype) + 2).div_ceil(8) * 8;
            if namelen == 0 || pos + size > end {
                return bad(format!("entry at byte {pos} runs past the end"));
            }
            let name = &b[pos + 9..pos + 9 + namelen];
            if name != b"." && name != b".." {
                out.push(DirEntry {
                    name: name.to_vec(),
                    ino: self.check_entry_ino(u64_at(b, pos), loc)?,
                    file_type: if ftype {
                        FileType::from_dirent(u8_at(b, pos + 9 + namelen))
                    } else {
                        None
                    },
                    place: EntryPlace::Block {
                        block: phys,
                        offset: pos,
                    },
                });
            }
            pos += size;
        }
        Ok(())
    }
}
