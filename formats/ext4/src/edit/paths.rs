//! Finding what to edit: path resolution over a per-directory name index (so
//! removing thousands of entries from one large directory reads it once), the
//! removal of one entry from its directory (block, htree leaf or inline area),
//! and what the editor must never touch (static metadata, reserved inodes).

use std::collections::HashMap;

use vmscrub_blockdev::{RangeSet, ReadAt, WriteAt};

use crate::dir_entry::{self, DirEntryPlace};
use crate::error::{Error, Loc, Result};
use crate::features::incompat;
use crate::fs::{Ext4, ROOT_INO};
use crate::inline_data::{SYSTEM_DATA_INDEX, SYSTEM_DATA_NAME};
use crate::inode::{FileType, I_BLOCK_SIZE, off as ioff};
use crate::journal::Journal;

use super::dirent::{self, EntryFormat};
use super::error::{EditError, EditResult};
use super::{Editor, Op, inode_raw};

/// Symlinks followed while resolving one path (as the reader's lookup).
const MAX_SYMLINKS: usize = 40;

/// Where one entry of a directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) ino: u32,
    pub(crate) place: DirEntryPlace,
    pub(crate) offset: u32,
    /// The entry's type code (0 without the `filetype` feature).
    pub(crate) code: u8,
}

/// The entries of one directory by name.
#[derive(Debug, Default)]
pub(crate) struct DirIndex {
    by_name: HashMap<Vec<u8>, Slot>,
}

impl DirIndex {
    pub(crate) fn remove(&mut self, name: &[u8]) {
        self.by_name.remove(name);
    }
}

/// A path's last component, found in its parent.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) parent: u32,
    pub(crate) name: Vec<u8>,
    pub(crate) slot: Slot,
}

fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

impl<D: WriteAt> Editor<D> {
    /// The entry `name` of directory `dir`, from its index (built on first use).
    pub(crate) fn lookup_in(&mut self, dir: u32, name: &[u8]) -> EditResult<Option<Slot>> {
        if !self.dirs.contains_key(&dir) {
            let mut ix = DirIndex::default();
            for e in self.fs.read_dir(dir)? {
                let e = e?;
                ix.by_name.insert(
                    e.name.clone(),
                    Slot {
                        ino: e.inode,
                        place: e.place,
                        offset: e.offset,
                        code: e.file_type_code,
                    },
                );
            }
            self.dirs.insert(dir, ix);
        }
        Ok(self
            .dirs
            .get(&dir)
            .and_then(|ix| ix.by_name.get(name))
            .cloned())
    }

    /// Resolves the directory named by `comps`, following symlinks.
    fn resolve_dir(&mut self, comps: &[Vec<u8>], path: &[u8]) -> EditResult<u32> {
        let mut stack: Vec<Vec<u8>> = comps.iter().rev().cloned().collect();
        let mut cur = ROOT_INO;
        let mut links = 0usize;
        while let Some(c) = stack.pop() {
            let dir = self.fs.inode(cur)?;
            if !dir.is_dir() {
                return Err(Error::NotADirectory { inode: cur }.into());
            }
            let slot = self.lookup_in(cur, &c)?.ok_or_else(|| Error::NotFound {
                path: path.to_vec(),
            })?;
            let child = self.fs.inode(slot.ino)?;
            if child.file_type() == FileType::Symlink {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::SymlinkLoop {
                        path: path.to_vec(),
                    }
                    .into());
                }
                let target = self.fs.readlink_of(&child)?;
                if target.first() == Some(&b'/') {
                    cur = ROOT_INO;
                }
                let t = components(&target);
                if t.is_empty() && target.first() != Some(&b'/') {
                    return Err(Error::NotFound {
                        path: path.to_vec(),
                    }
                    .into());
                }
                stack.extend(t.into_iter().rev());
                continue;
            }
            cur = slot.ino;
        }
        if !self.fs.inode(cur)?.is_dir() {
            return Err(Error::NotADirectory { inode: cur }.into());
        }
        Ok(cur)
    }

    /// Finds the entry `path` names (its last component is not followed) and
    /// refuses names that must not be removed.
    pub(crate) fn locate(&mut self, path: &[u8]) -> EditResult<Located> {
        let mut comps = components(path);
        let Some(name) = comps.pop() else {
            return Err(EditError::Protected {
                path: path.to_vec(),
                why: "it is the root directory",
            });
        };
        if name == b".." {
            return Err(EditError::Protected {
                path: path.to_vec(),
                why: "'..' is not an entry that can be removed",
            });
        }
        let parent = self.resolve_dir(&comps, path)?;
        if parent == ROOT_INO && name == b"lost+found" {
            return Err(EditError::Protected {
                path: path.to_vec(),
                why: "e2fsck needs /lost+found",
            });
        }
        let slot = self
            .lookup_in(parent, &name)?
            .ok_or_else(|| Error::NotFound {
                path: path.to_vec(),
            })?;
        if self.special.contains(&slot.ino) {
            return Err(EditError::Protected {
                path: path.to_vec(),
                why: "the filesystem reserves this inode for itself",
            });
        }
        Ok(Located { parent, name, slot })
    }

    fn entry_format(&self) -> EntryFormat {
        let sb = self.fs.superblock();
        EntryFormat {
            block_size: self.fs.block_size(),
            filetype: sb.features.has_incompat(incompat::FILETYPE),
            inodes_count: sb.inodes_count,
        }
    }

    /// Writes `raw` as inode `ino` (with its checksum) into the stage.
    pub(crate) fn put_inode(&self, ino: u32, raw: &mut [u8]) -> EditResult<()> {
        inode_raw::set_checksum(self.fs.superblock(), self.fs.checksum_seed(), ino, raw);
        self.put_inode_raw(ino, raw)
    }

    /// Writes `raw` as inode `ino` exactly as given.
    pub(crate) fn put_inode_raw(&self, ino: u32, raw: &[u8]) -> EditResult<()> {
        let (block, offset) = self.fs.inode_location(ino)?;
        let at = block * u64::from(self.fs.block_size()) + u64::from(offset);
        self.stage.patch(at, raw).map_err(|source| {
            Error::Io {
                what: "inode table",
                offset: at,
                source,
            }
            .into()
        })
    }

    /// Removes entry `loc` from its directory and wipes its name.
    pub(crate) fn remove_slot(&mut self, op: &mut Op, loc: &Located) -> EditResult<()> {
        let fmt = self.entry_format();
        let dir = self.fs.inode(loc.parent)?;
        let Located { parent, name, slot } = loc;
        let eloc = Loc::inode(*parent);
        match slot.place {
            DirEntryPlace::Block { physical, .. } => {
                let bs = self.fs.block_size() as usize;
                let mut b = self
                    .stage
                    .read_block(physical)
                    .map_err(|source| Error::Io {
                        what: "directory block",
                        offset: physical * bs as u64,
                        source,
                    })?;
                let csum = self.fs.superblock().has_metadata_csum();
                let seed = dir.checksum_seed(self.fs.checksum_seed());
                let bloc = eloc.with_block(physical);
                let end = if csum {
                    dir_entry::verify_leaf(&b, seed, true, bloc)?
                } else {
                    bs
                };
                dirent::remove_entry(
                    &mut b[..end],
                    slot.offset as usize,
                    slot.ino,
                    name,
                    fmt,
                    bloc,
                )?;
                if csum {
                    let c = dir_entry::compute_leaf_checksum(seed, &b);
                    b[bs - 4..].copy_from_slice(&c.to_le_bytes());
                }
                self.stage.put_block(physical, b);
            }
            DirEntryPlace::InlineIBlock => {
                let mut raw = dir.raw.clone();
                let start = ioff::BLOCK + 4;
                let off = (slot.offset as usize).checked_sub(4).ok_or_else(|| {
                    Error::corrupt("inline directory", eloc, "entry inside the parent field")
                })?;
                dirent::remove_entry(
                    &mut raw[start..ioff::BLOCK + I_BLOCK_SIZE],
                    off,
                    slot.ino,
                    name,
                    fmt,
                    eloc,
                )?;
                self.put_inode(*parent, &mut raw)?;
            }
            DirEntryPlace::InlineXattr => {
                let mut raw = dir.raw.clone();
                let entries = self.fs.inode_xattr_entries(&dir)?;
                let e = entries
                    .iter()
                    .find(|e| {
                        e.name_index == SYSTEM_DATA_INDEX && e.name_suffix == SYSTEM_DATA_NAME
                    })
                    .ok_or_else(|| {
                        Error::corrupt("inline directory", eloc, "no system.data attribute")
                    })?;
                let base = dir.xattr_area_offset() + 4 + usize::from(e.value_offs);
                let end = base + e.value_size as usize;
                let area = raw.get_mut(base..end).ok_or_else(|| {
                    Error::corrupt("inline directory", eloc, "system.data outside the inode")
                })?;
                dirent::remove_entry(area, slot.offset as usize, slot.ino, name, fmt, eloc)?;
                if e.hash != 0 {
                    let h = xattr_entry_hash(&e.name_suffix, &raw[base..end]);
                    let at = dir.xattr_area_offset() + e.entry_offset + 12;
                    inode_raw::put_u32(&mut raw, at, h);
                }
                self.put_inode(*parent, &mut raw)?;
            }
            DirEntryPlace::Synthetic => {
                return Err(EditError::Protected {
                    path: name.clone(),
                    why: "'.' and '..' are not entries that can be removed",
                });
            }
        }
        op.removed.push((*parent, name.clone()));
        Ok(())
    }
}

/// The hash of an xattr entry (e2fsprogs' `ext2fs_ext_attr_hash_entry`): its name,
/// then its value as little-endian words (the value padded with zeros to 4 bytes).
pub(crate) fn xattr_entry_hash(name: &[u8], value: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 5) ^ (h >> 27) ^ u32::from(c);
    }
    for w in value.chunks(4) {
        let mut b = [0u8; 4];
        b[..w.len()].copy_from_slice(w);
        h = (h << 16) ^ (h >> 16) ^ u32::from_le_bytes(b);
    }
    h
}

/// With `orphan_present` set, the orphan file must hold no inode number.
pub(crate) fn check_orphan_file<R: ReadAt>(fs: &Ext4<R>) -> EditResult<()> {
    let ino = fs.superblock().orphan_file_inum;
    if ino == 0 {
        return Err(super::Refusal::Orphans {
            detail: "orphan_present is set but there is no orphan file".into(),
        }
        .into());
    }
    let map = fs.extents(ino)?;
    let bs = fs.block_size() as usize;
    for e in &map.extents {
        for b in e.physical() {
            let buf = fs.read_block_vec(b, "orphan file block")?;
            // Each block: inode numbers, then an 8-byte tail (magic, checksum).
            if buf[..bs - 8].iter().any(|&c| c != 0) {
                return Err(super::Refusal::Orphans {
                    detail: format!("orphan file block {b} lists inodes"),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// Static metadata of every group and the blocks of reserved inodes (never
/// freed), and the inode numbers that are never removed.
pub(crate) fn protected_blocks<R: ReadAt>(
    fs: &Ext4<R>,
    journal: Option<&Journal>,
) -> Result<(RangeSet, Vec<u32>)> {
    let sb = fs.superblock();
    let mut set = RangeSet::new();
    for d in fs.groups() {
        for r in fs.group_layout(d.group)?.all_blocks() {
            set.insert(r);
        }
    }
    let mut special: Vec<u32> = (1..sb.first_ino).collect();
    special.extend([sb.journal_inum, sb.orphan_file_inum]);
    let raw = sb.raw();
    for o in [0x240usize, 0x244, 0x26C] {
        special.push(u32::from_le_bytes([
            raw[o],
            raw[o + 1],
            raw[o + 2],
            raw[o + 3],
        ]));
    }
    special.retain(|&i| i != 0 && i <= sb.inodes_count);
    special.sort_unstable();
    special.dedup();
    for &ino in &special {
        // Unused reserved inodes are all zeros.
        let inode = fs.inode(ino)?;
        if inode.mode == 0 && inode.links_count == 0 {
            continue;
        }
        for r in fs.owned_blocks(ino)?.block_ranges() {
            set.insert(r);
        }
    }
    if let Some(j) = journal {
        for e in &j.map.extents {
            set.insert(e.physical());
        }
        for m in &j.map.meta {
            set.insert(m.block..m.block + 1);
        }
    }
    Ok((set, special))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components() {
        assert_eq!(
            components(b"//a/./b//c/"),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert!(components(b"/").is_empty());
    }
}
