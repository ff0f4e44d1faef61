//! Removing entries: one file (`unlink`) or a whole tree, depth first (`remove_tree`),
//! and the link count of the directory that loses a subdirectory.

use std::collections::{HashMap, HashSet};

use vmscrub_blockdev::WriteAt;

use crate::dir_entry::DirEntry;
use crate::error::{Error, Loc};
use crate::inode::{FileType, Inode};

use super::error::{EditError, EditResult};
use super::{Editor, KeptLink, Op, TreeRemoved, Unlinked, inode_raw};

/// ext4's `EXT4_LINK_MAX`: a directory with more subdirectories stores 1
/// (`dir_nlink`).
const LINK_MAX: u32 = 65000;

struct Frame {
    ino: u32,
    parent: u32,
    path: Vec<u8>,
    entries: Vec<DirEntry>,
    next: usize,
}

impl<D: WriteAt> Editor<D> {
    /// The entry's type code must name the inode's type.
    fn check_entry(&self, code: u8, inode: &Inode, dir: u32) -> EditResult<()> {
        self.check_linked(inode)?;
        if code != 0 && FileType::from_dirent_code(code) != Some(inode.file_type()) {
            return Err(Error::corrupt(
                "directory entry",
                Loc::inode(dir),
                format!(
                    "type code {code} for inode {} which is a {}",
                    inode.ino,
                    inode.file_type().name()
                ),
            )
            .into());
        }
        Ok(())
    }

    /// Applies the time policy to directory `dir` (it lost an entry).
    fn touch_dir(&mut self, dir: u32) -> EditResult<()> {
        if let Some(t) = self.opts.time {
            let mut raw = self.fs.inode(dir)?.raw;
            inode_raw::touch(&mut raw, t);
            self.put_inode(dir, &mut raw)?;
        }
        Ok(())
    }

    fn read_entries(&self, ino: u32) -> EditResult<Vec<DirEntry>> {
        let mut v = Vec::new();
        for e in self.fs.read_dir(ino)? {
            v.push(e?);
        }
        Ok(v)
    }

    pub(crate) fn unlink_op(&mut self, op: &mut Op, path: &[u8]) -> EditResult<Unlinked> {
        let loc = self.locate(path)?;
        let child = self.fs.inode(loc.slot.ino)?;
        self.check_entry(loc.slot.code, &child, loc.parent)?;
        if child.is_dir() {
            return Err(EditError::IsADirectory {
                path: path.to_vec(),
            });
        }
        self.remove_slot(op, &loc)?;
        self.touch_dir(loc.parent)?;
        let (links_left, freed, _) = self.drop_link(op, child.ino)?;
        Ok(Unlinked {
            ino: child.ino,
            links_left,
            freed,
        })
    }

    pub(crate) fn remove_tree_op(&mut self, op: &mut Op, path: &[u8]) -> EditResult<TreeRemoved> {
        let loc = self.locate(path)?;
        let top = self.fs.inode(loc.slot.ino)?;
        self.check_entry(loc.slot.code, &top, loc.parent)?;
        let mut res = TreeRemoved::default();
        if !top.is_dir() {
            self.remove_slot(op, &loc)?;
            self.touch_dir(loc.parent)?;
            let (left, freed, size) = self.drop_link(op, top.ino)?;
            res.files = 1;
            if freed {
                res.bytes = size;
            } else {
                res.kept.push(KeptLink {
                    path: path.to_vec(),
                    ino: top.ino,
                    links_left: left,
                });
            }
            return Ok(res);
        }
        let mut kept: HashMap<u32, (Vec<u8>, u16)> = HashMap::new();
        let mut visited: HashSet<u32> = HashSet::from([top.ino]);
        let mut stack = vec![Frame {
            ino: top.ino,
            parent: loc.parent,
            path: path.to_vec(),
            entries: self.read_entries(top.ino)?,
            next: 0,
        }];
        while let Some(f) = stack.last_mut() {
            let Some(e) = f.entries.get(f.next).cloned() else {
                let done = stack.pop();
                if let Some(done) = done {
                    let inode = self.fs.inode(done.ino)?;
                    self.free_inode(op, &inode)?;
                    res.dirs += 1;
                }
                continue;
            };
            f.next += 1;
            let (dir, parent) = (f.ino, f.parent);
            let dloc = Loc::inode(dir);
            if e.name == b"." || e.name == b".." {
                let want = if e.name == b"." { dir } else { parent };
                if e.inode != want {
                    return Err(Error::corrupt(
                        "directory entry",
                        dloc,
                        format!(
                            "'{}' points at inode {}, expected {want}",
                            String::from_utf8_lossy(&e.name),
                            e.inode
                        ),
                    )
                    .into());
                }
                continue;
            }
            let mut cpath = f.path.clone();
            cpath.push(b'/');
            cpath.extend_from_slice(&e.name);
            if self.special.contains(&e.inode) {
                return Err(EditError::Protected {
                    path: cpath,
                    why: "the filesystem reserves this inode for itself",
                });
            }
            let child = self.fs.inode(e.inode)?;
            self.check_entry(e.file_type_code, &child, dir)?;
            if child.is_dir() {
                if !visited.insert(child.ino) {
                    return Err(Error::corrupt(
                        "directory",
                        Loc::inode(child.ino),
                        "linked from two places (a directory loop)",
                    )
                    .into());
                }
                let entries = self.read_entries(child.ino)?;
                stack.push(Frame {
                    ino: child.ino,
                    parent: dir,
                    path: cpath,
                    entries,
                    next: 0,
                });
            } else {
                let (left, freed, size) = self.drop_link(op, child.ino)?;
                res.files += 1;
                if freed {
                    res.bytes += size;
                    kept.remove(&child.ino);
                } else {
                    kept.insert(child.ino, (cpath, left));
                }
            }
        }
        self.remove_slot(op, &loc)?;
        self.drop_subdir_link(loc.parent)?;
        self.touch_dir(loc.parent)?;
        let mut kept: Vec<KeptLink> = kept
            .into_iter()
            .map(|(ino, (path, links_left))| KeptLink {
                path,
                ino,
                links_left,
            })
            .collect();
        kept.sort_by(|a, b| a.path.cmp(&b.path));
        res.kept = kept;
        Ok(res)
    }

    /// Directory `dir` lost a subdirectory (whose `..` counted as a link).
    fn drop_subdir_link(&mut self, dir: u32) -> EditResult<()> {
        let inode = self.fs.inode(dir)?;
        let links = inode.links_count;
        let new = if links == 1 {
            // dir_nlink: 1 means "too many to count". Recount; e2fsck wants the
            // real number back once it fits.
            let mut subdirs: u32 = 0;
            for e in self.read_entries(dir)? {
                if e.name == b"." || e.name == b".." {
                    continue;
                }
                let is_dir = match e.file_type() {
                    Some(t) => t == FileType::Directory,
                    None => self.fs.inode(e.inode)?.is_dir(),
                };
                subdirs += u32::from(is_dir);
            }
            if subdirs + 2 > LINK_MAX {
                1
            } else {
                (subdirs + 2) as u16
            }
        } else if links <= 2 {
            return Err(Error::corrupt(
                "directory",
                Loc::inode(dir),
                format!("{links} links, yet it has a subdirectory"),
            )
            .into());
        } else {
            links - 1
        };
        let mut raw = inode.raw;
        inode_raw::set_links(&mut raw, new);
        self.put_inode(dir, &mut raw)
    }
}
