//! Reading directories: streaming entries block by block (linear and htree
//! directories alike, since htree leaves are ordinary blocks), inline directories,
//! and path lookup with bounded symlink following.

use std::collections::VecDeque;

use vmscrub_blockdev::ReadAt;

use crate::dir_entry::{self, DirEntry, DirEntryPlace};
use crate::dir_htree::{self, DxNode, DxRootInfo};
use crate::error::{Error, Loc, Result};
use crate::features::incompat;
use crate::fs::{Ext4, ROOT_INO};
use crate::inode::{FileType, Inode};
use crate::map::FileMap;

/// Symlinks followed while resolving one path (Linux's `MAXSYMLINKS`).
pub const MAX_SYMLINKS: usize = 40;

/// What one directory block holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirBlockKind {
    /// Ordinary entries (including unused ones with inode 0); `tail` says whether
    /// the block ends with a metadata_csum tail.
    Leaf { entries: Vec<DirEntry>, tail: bool },
    /// Block 0 of an indexed directory: `.` and `..`, then the index root.
    DxRoot {
        dots: Vec<DirEntry>,
        info: DxRootInfo,
        node: DxNode,
    },
    /// An interior index block.
    DxNode(DxNode),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirBlock {
    pub logical: u32,
    pub physical: u64,
    pub kind: DirBlockKind,
}

/// Streams the entries of a directory (never `inode == 0` slots). `.` and `..`
/// come first for ordinary directories, as stored.
pub struct ReadDir<'a, D> {
    fs: &'a Ext4<D>,
    inode: Inode,
    map: FileMap,
    nblocks: u64,
    ext_idx: usize,
    in_ext: u32,
    pending: VecDeque<DirEntry>,
    done: bool,
}

impl<D: ReadAt> Iterator for ReadDir<'_, D> {
    type Item = Result<DirEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            match self.next_block() {
                Ok(Some(block)) => {
                    let entries = match block.kind {
                        DirBlockKind::Leaf { entries, .. } => entries,
                        DirBlockKind::DxRoot { dots, .. } => dots,
                        DirBlockKind::DxNode(_) => Vec::new(),
                    };
                    self.pending
                        .extend(entries.into_iter().filter(|e| e.inode != 0));
                }
                Ok(None) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl<D: ReadAt> ReadDir<'_, D> {
    /// The next mapped block below the directory size (holes are skipped, as the
    /// kernel's readdir does).
    fn next_block(&mut self) -> Result<Option<DirBlock>> {
        while let Some(e) = self.map.extents.get(self.ext_idx).copied() {
            if self.in_ext >= e.len {
                self.ext_idx += 1;
                self.in_ext = 0;
                continue;
            }
            let lblk = e.logical + self.in_ext;
            if u64::from(lblk) >= self.nblocks {
                return Ok(None);
            }
            let phys = e.start + u64::from(self.in_ext);
            self.in_ext += 1;
            if e.uninit {
                continue;
            }
            return self.fs.dir_block_at(&self.inode, lblk, phys).map(Some);
        }
        Ok(None)
    }
}

impl<D: ReadAt> Ext4<D> {
    /// Streams the entries of directory `ino`.
    pub fn read_dir(&self, ino: u32) -> Result<ReadDir<'_, D>> {
        let inode = self.inode(ino)?;
        self.read_dir_of(inode)
    }

    pub fn read_dir_of(&self, inode: Inode) -> Result<ReadDir<'_, D>> {
        if !inode.is_dir() {
            return Err(Error::NotADirectory { inode: inode.ino });
        }
        let mut rd = ReadDir {
            fs: self,
            map: FileMap::default(),
            nblocks: 0,
            ext_idx: 0,
            in_ext: 0,
            pending: VecDeque::new(),
            done: false,
            inode,
        };
        if self.is_inline(&rd.inode) {
            rd.pending = self
                .inline_dir_entries(&rd.inode)?
                .into_iter()
                .filter(|e| e.inode != 0)
                .collect();
            rd.done = true;
        } else {
            rd.map = self.file_map(&rd.inode)?;
            rd.nblocks = rd.inode.size.div_ceil(u64::from(self.block_size()));
        }
        Ok(rd)
    }

    /// Reads and parses logical block `logical` of directory `inode` (`None` for a hole).
    pub fn dir_block(&self, inode: &Inode, logical: u32) -> Result<Option<DirBlock>> {
        let map = self.file_map(inode)?;
        match map.lookup(u64::from(logical)) {
            Some(phys) => self.dir_block_at(inode, logical, phys).map(Some),
            None => Ok(None),
        }
    }

    /// Parses a directory block already located, verifying its checksum.
    pub fn dir_block_at(&self, inode: &Inode, logical: u32, physical: u64) -> Result<DirBlock> {
        let buf = self.read_block_vec(physical, "directory block")?;
        let loc = Loc::at(inode.ino, physical);
        let sb = self.superblock();
        let csum = sb.has_metadata_csum();
        let verify = csum && self.verify_checksums();
        let seed = inode.checksum_seed(self.checksum_seed());
        let filetype = sb.features.has_incompat(incompat::FILETYPE);
        let place = DirEntryPlace::Block { logical, physical };
        let bs = self.block_size();
        let kind = if self.is_htree_dir(inode) && logical == 0 {
            let (info, node) = dir_htree::parse_root(&buf, csum, loc)?;
            let max_levels = if sb.features.has_incompat(incompat::LARGEDIR) {
                3
            } else {
                2
            };
            if info.indirect_levels >= max_levels {
                return Err(Error::corrupt(
                    "htree root",
                    loc,
                    format!(
                        "{} indirect levels (at most {})",
                        info.indirect_levels,
                        max_levels - 1
                    ),
                ));
            }
            if verify {
                node.verify_checksum(seed, &buf, loc)?;
            }
            // "." is 12 bytes; ".." claims the rest of the block, over the index.
            let mut dots =
                dir_entry::parse_entries(&buf[..12], bs, filetype, sb.inodes_count, place, loc)?;
            let parent = crate::le::u32_at(&buf, 12);
            if parent == 0 || parent > sb.inodes_count {
                return Err(Error::corrupt(
                    "htree root",
                    loc,
                    format!("'..' points at inode {parent}"),
                ));
            }
            let mut dotdot = vec![DirEntry {
                inode: parent,
                name: b"..".to_vec(),
                file_type_code: if filetype {
                    crate::le::u8_at(&buf, 19)
                } else {
                    0
                },
                rec_len: dir_entry::rec_len_from_disk(crate::le::u16_at(&buf, 16), bs),
                place,
                offset: 12,
            }];
            dots.append(&mut dotdot);
            DirBlockKind::DxRoot { dots, info, node }
        } else if self.is_htree_dir(inode) && dir_htree::looks_like_dx_node(&buf) {
            let node = dir_htree::parse_node(&buf, csum, loc)?;
            if verify {
                node.verify_checksum(seed, &buf, loc)?;
            }
            DirBlockKind::DxNode(node)
        } else {
            let end = if csum {
                dir_entry::verify_leaf(&buf, seed, verify, loc)?
            } else {
                buf.len()
            };
            let entries =
                dir_entry::parse_entries(&buf[..end], bs, filetype, sb.inodes_count, place, loc)?;
            DirBlockKind::Leaf {
                entries,
                tail: csum,
            }
        };
        Ok(DirBlock {
            logical,
            physical,
            kind,
        })
    }

    /// Finds `name` in directory `dir` by scanning it.
    pub fn find_entry(&self, dir: u32, name: &[u8]) -> Result<Option<DirEntry>> {
        for e in self.read_dir(dir)? {
            let e = e?;
            if e.name == name {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Resolves `path` (bytes, `/`-separated, relative paths start at the root)
    /// to an inode number. Symlinks in the middle are always followed; the last
    /// component's only when `follow_final`. Absolute link targets restart at this
    /// filesystem's root. More than [`MAX_SYMLINKS`] links is an error.
    pub fn lookup(&self, path: &[u8], follow_final: bool) -> Result<u32> {
        let mut stack: Vec<Vec<u8>> = split(path);
        let mut cur = ROOT_INO;
        let mut links = 0usize;
        while let Some(comp) = stack.pop() {
            let dir = self.inode(cur)?;
            if !dir.is_dir() {
                return Err(Error::NotADirectory { inode: cur });
            }
            let entry = self
                .find_entry(cur, &comp)?
                .ok_or_else(|| Error::NotFound {
                    path: path.to_vec(),
                })?;
            let child = self.inode(entry.inode)?;
            if child.file_type() == FileType::Symlink && (!stack.is_empty() || follow_final) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::SymlinkLoop {
                        path: path.to_vec(),
                    });
                }
                let target = self.readlink_of(&child)?;
                if target.is_empty() {
                    return Err(Error::NotFound {
                        path: path.to_vec(),
                    });
                }
                if target.first() == Some(&b'/') {
                    cur = ROOT_INO;
                }
                stack.extend(split(&target));
                continue;
            }
            cur = entry.inode;
        }
        Ok(cur)
    }

    /// Like [`Ext4::lookup`], returning the inode.
    pub fn lookup_inode(&self, path: &[u8], follow_final: bool) -> Result<Inode> {
        let ino = self.lookup(path, follow_final)?;
        self.inode(ino)
    }
}

/// Path components in reverse order (so `pop` yields the first), without empty
/// and `.` components.
fn split(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}
