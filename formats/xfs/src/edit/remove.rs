//! One operation of the editor: names out of directories, link counts down,
//! and what an inode gives back when its last name goes, gathered by AG for
//! commit; plus the in-place shrink of a regular file.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use super::forks::{self, AgReleased};
use super::inode_raw::{RawInode, field};
use super::space::AgRelease;
use super::{Shrunk, dirent, unlinkable};
use crate::bmap::Fork;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::{FileType, Inode};

/// A tree holding more directories than this is refused (a loop through a
/// corrupt directory would otherwise never end).
const MAX_TREE_DIRS: usize = 1 << 22;

/// A name removed by [`super::Editor::unlink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlinked {
    pub ino: u64,
    /// Names the inode still has (0: it was freed).
    pub links_left: u32,
}

/// A file of a removed tree that lives on through names outside the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLink {
    pub ino: u64,
    /// Its (last seen) path inside the removed tree, relative to the tree.
    pub path: Vec<u8>,
}

/// What [`super::Editor::remove_tree`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeRemoved {
    pub files: u64,
    pub dirs: u64,
    pub kept: Vec<KeptLink>,
}

/// The running operation.
pub(crate) struct Op<'a, D: ReadAt> {
    fs: &'a Xfs<Arc<Staged<D>>>,
    stage: &'a Staged<D>,
    releases: BTreeMap<u32, AgRelease>,
}

impl<'a, D: ReadAt> Op<'a, D> {
    pub fn new(fs: &'a Xfs<Arc<Staged<D>>>, stage: &'a Staged<D>) -> Self {
        Op {
            fs,
            stage,
            releases: BTreeMap::new(),
        }
    }

    /// What the operation gives back, for the editor to keep.
    pub fn finish(self) -> BTreeMap<u32, AgRelease> {
        self.releases
    }

    pub fn unlink(&mut self, path: &[u8]) -> Result<Unlinked> {
        let (parent, name) = self.parent_of(path)?;
        let ino = self.child(&parent, name, path)?;
        let inode = self.fs.inode(ino)?;
        if !unlinkable(inode.file_type()) {
            return Err(Error::refused(
                "directory entry",
                format!(
                    "{} is a directory: remove it as a tree",
                    String::from_utf8_lossy(path)
                ),
            ));
        }
        self.remove_name(&parent, name)?;
        let links_left = self.drop_links(&inode, 1)?;
        Ok(Unlinked { ino, links_left })
    }

    pub fn remove_tree(&mut self, path: &[u8]) -> Result<TreeRemoved> {
        let (parent, name) = self.parent_of(path)?;
        let ino = self.child(&parent, name, path)?;
        let top = self.fs.inode(ino)?;
        if top.file_type() != Some(FileType::Directory) {
            self.unlink(path)?;
            return Ok(TreeRemoved {
                files: 1,
                ..TreeRemoved::default()
            });
        }
        let (dirs, names) = self.collect_tree(top)?;
        self.remove_name(&parent, name)?;
        self.adjust_nlink(parent.ino, -1)?;
        let mut out = TreeRemoved {
            dirs: dirs.len() as u64,
            ..TreeRemoved::default()
        };
        for d in &dirs {
            self.release_inode(d)?;
        }
        for (ino, (count, rel)) in names {
            out.files += u64::from(count);
            let inode = self.fs.inode(ino)?;
            if self.drop_links(&inode, count)? > 0 {
                out.kept.push(KeptLink { ino, path: rel });
            }
        }
        out.kept.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Every directory of the tree under `top` (itself included) and, for
    /// every other inode, how many names it has inside the tree and one of
    /// them.
    #[allow(clippy::type_complexity)]
    fn collect_tree(&self, top: Inode) -> Result<(Vec<Inode>, BTreeMap<u64, (u32, Vec<u8>)>)> {
        let mut seen = HashSet::from([top.ino]);
        let mut stack = vec![(top, Vec::new())];
        let mut dirs = Vec::new();
        let mut names: BTreeMap<u64, (u32, Vec<u8>)> = BTreeMap::new();
        while let Some((dir, rel)) = stack.pop() {
            let mut subdirs = 0u32;
            for e in self.fs.read_dir(&dir)? {
                let mut p = rel.clone();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(&e.name);
                let child = self.fs.inode(e.ino)?;
                if child.file_type() == Some(FileType::Directory) {
                    if !seen.insert(e.ino) || seen.len() > MAX_TREE_DIRS {
                        return Err(Error::corrupt(
                            "directory tree",
                            Loc::inode(e.ino),
                            "a directory is reached twice, or the tree is too deep to be one",
                        ));
                    }
                    subdirs += 1;
                    stack.push((child, p));
                } else {
                    let n = names.entry(e.ino).or_insert((0, Vec::new()));
                    n.0 += 1;
                    n.1 = p;
                }
            }
            // A directory's links are its name, its `.` and each child's
            // `..`: any other would be a second name outside the tree, which
            // freeing it would leave dangling.
            if dir.nlink != subdirs.saturating_add(2) {
                return Err(Error::corrupt(
                    "directory",
                    Loc::inode(dir.ino),
                    format!("link count {} with {subdirs} subdirectories", dir.nlink),
                ));
            }
            dirs.push(dir);
        }
        Ok((dirs, names))
    }

    /// Replaces the content of the regular file `path` with `content` in its
    /// own blocks and gives back the blocks past the new end.
    pub fn rewrite(&mut self, path: &[u8], content: &[u8]) -> Result<Shrunk> {
        let ino = self.fs.lookup(path, false)?;
        let inode = self.fs.inode(ino)?;
        let shown = || String::from_utf8_lossy(path).into_owned();
        if inode.file_type() != Some(FileType::Regular) {
            return Err(Error::refused(
                "inode",
                format!("{} is not a regular file", shown()),
            ));
        }
        let (old, new) = (inode.size, content.len() as u64);
        if new > old {
            return Err(Error::refused(
                "inode",
                format!(
                    "{}: the new content ({new} bytes) is longer than the file ({old})",
                    shown()
                ),
            ));
        }
        if new > 0 && inode.is_reflinked() {
            return Err(Error::refused(
                "inode",
                format!(
                    "{} shares blocks with other files (reflink): rewriting them in place \
                     would change the other copies",
                    shown()
                ),
            ));
        }
        let bs = u64::from(self.fs.sb.block_size);
        let keep = new.div_ceil(bs);
        self.refuse_shared(&inode, keep, path)?;
        self.write_content(&inode, content, keep, path)?;
        let mut raw = RawInode::read(self.fs, ino)?;
        let released = forks::shrink_data_fork(self.fs, &inode, &mut raw, keep)?;
        raw.set_u64(field::SIZE, new);
        raw.write(self.stage)?;
        self.add(released);
        Ok(Shrunk {
            old_size: old,
            new_size: new,
        })
    }

    /// The refcountbt, not only the inode's reflink flag, decides whether a
    /// block the rewrite keeps is shared: writing into a shared block would
    /// change another file.
    fn refuse_shared(&self, inode: &Inode, keep: u64, path: &[u8]) -> Result<()> {
        if self.fs.sb.ro_compat & crate::superblock::RO_COMPAT_REFLINK == 0 || keep == 0 {
            return Ok(());
        }
        let map = self.fs.block_map(inode, Fork::Data)?;
        let mut by_ag: BTreeMap<u32, Vec<crate::Refcount>> = BTreeMap::new();
        for e in map.extents.iter().filter(|e| e.offset < keep) {
            let n = e.count.min(keep - e.offset);
            let (agno, a) = self.fs.sb.fsb_split(e.start);
            let (agno, b) = (agno as u32, a + n);
            let recs = match by_ag.entry(agno) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => v.insert(self.fs.refcounts(agno)?),
            };
            let shared = recs.iter().any(|r| {
                let (s, t) = (u64::from(r.agbno), u64::from(r.agbno) + u64::from(r.len));
                s < b && a < t
            });
            if shared {
                return Err(Error::refused(
                    "refcountbt",
                    format!(
                        "{}: a block it keeps is shared with another file; rewriting it in \
                         place would change that file too",
                        String::from_utf8_lossy(path)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Stages `content` into the first `keep` blocks the file maps, the last
    /// block's slack zeroed. Holes and unwritten extents would need space or
    /// a conversion: refused.
    fn write_content(&self, inode: &Inode, content: &[u8], keep: u64, path: &[u8]) -> Result<()> {
        let bs = self.fs.sb.block_size as usize;
        let map = self.fs.block_map(inode, Fork::Data)?;
        for (fb, chunk) in (0..keep).zip(content.chunks(bs)) {
            let e = map.lookup(fb).filter(|e| !e.unwritten).ok_or_else(|| {
                Error::refused(
                    "extent list",
                    format!(
                        "{}: block {fb} is a hole or unwritten; the rewrite would need new space",
                        String::from_utf8_lossy(path)
                    ),
                )
            })?;
            let byte = self
                .fs
                .fsb_byte(e.start + (fb - e.offset), Loc::inode(inode.ino))?;
            let mut block = vec![0u8; bs];
            block[..chunk.len()].copy_from_slice(chunk);
            self.stage.put_block(byte / bs as u64, block);
        }
        Ok(())
    }

    /// Takes `name` out of `parent`; the directory blocks that leaves empty go
    /// back with the rest at commit.
    fn remove_name(&mut self, parent: &Inode, name: &[u8]) -> Result<()> {
        let r = dirent::remove_entry(self.fs, self.stage, parent, name)?;
        let mut freed = Vec::with_capacity(r.freed.len());
        for b in &r.freed {
            freed.push(forks::dir_blocks_release(self.fs, parent.ino, b)?);
        }
        self.add(freed);
        Ok(())
    }

    /// (parent directory, last component) of `path`.
    fn parent_of<'p>(&self, path: &'p [u8]) -> Result<(Inode, &'p [u8])> {
        let trimmed = path.strip_suffix(b"/").unwrap_or(path);
        let cut = trimmed.iter().rposition(|&b| b == b'/');
        let (dir, name) = match cut {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (&b""[..], trimmed),
        };
        if name.is_empty() || name == b"." || name == b".." {
            return Err(Error::refused(
                "path",
                format!("{} names no removable entry", String::from_utf8_lossy(path)),
            ));
        }
        let dir = if dir.is_empty() { &b"/"[..] } else { dir };
        let parent = self.fs.inode(self.fs.lookup(dir, true)?)?;
        if parent.file_type() != Some(FileType::Directory) {
            return Err(Error::NotADirectory { inode: parent.ino });
        }
        Ok((parent, name))
    }

    fn child(&self, parent: &Inode, name: &[u8], path: &[u8]) -> Result<u64> {
        self.fs
            .read_dir(parent)?
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.ino)
            .ok_or_else(|| Error::NotFound {
                path: path.to_vec(),
            })
    }

    /// Drops `count` names of `inode`; the inode goes when none is left.
    /// Returns the names left.
    fn drop_links(&mut self, inode: &Inode, count: u32) -> Result<u32> {
        let Some(left) = inode.nlink.checked_sub(count) else {
            return Err(Error::corrupt(
                "inode",
                Loc::inode(inode.ino),
                format!(
                    "link count {} but {count} names are being removed",
                    inode.nlink
                ),
            ));
        };
        if left == 0 {
            self.release_inode(inode)?;
        } else {
            self.adjust_nlink(inode.ino, -(count as i64))?;
        }
        Ok(left)
    }

    fn adjust_nlink(&self, ino: u64, by: i64) -> Result<()> {
        let mut raw = RawInode::read(self.fs, ino)?;
        let n = i64::from(raw.u32(field::NLINK)) + by;
        let n = u32::try_from(n).map_err(|_| {
            Error::corrupt("inode", Loc::inode(ino), "link count would go below zero")
        })?;
        raw.set_u32(field::NLINK, n);
        raw.write(self.stage)
    }

    /// Frees every orphan (see `orphans`); returns how many.
    pub fn free_orphans(&mut self) -> Result<u64> {
        let mut n = 0;
        for agno in 0..self.fs.sb.ag_count {
            for ino in super::orphans::take_orphans(self.fs, self.stage, agno)? {
                let inode = self.fs.inode(ino)?;
                self.release_inode(&inode)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Everything `inode` holds goes back at commit, the inode with it; its
    /// link count is 0 from now on (the AG side checks that before freeing).
    fn release_inode(&mut self, inode: &Inode) -> Result<()> {
        let mut rel = forks::fork_releases(self.fs, inode, Fork::Data)?;
        rel.extend(forks::fork_releases(self.fs, inode, Fork::Attr)?);
        self.add(rel);
        let mut raw = RawInode::read(self.fs, inode.ino)?;
        raw.set_u32(field::NLINK, 0);
        raw.write(self.stage)?;
        let sb = &self.fs.sb;
        let (agno, agino) = sb.ino_split(inode.ino);
        let agno = u32::try_from(agno)
            .ok()
            .filter(|a| *a < sb.ag_count)
            .ok_or_else(|| Error::corrupt("inode number", Loc::inode(inode.ino), "no such AG"))?;
        self.releases
            .entry(agno)
            .or_default()
            .inodes
            .push(agino as u32);
        Ok(())
    }

    fn add(&mut self, released: Vec<AgReleased>) {
        for (agno, r) in released {
            self.releases.entry(agno).or_default().extents.push(r);
        }
    }
}
