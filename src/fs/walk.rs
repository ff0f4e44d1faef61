//! Path resolution and whole-tree walks over any [`Filesystem`].
//!
//! Both are bounded: a corrupt image can make a directory contain itself, or
//! symlinks point at each other, and neither may turn into a hang.

use std::collections::HashSet;

use super::{DirEntry, FileKind, Filesystem, FsError, FsResult, NodeId, display_path};

/// How many symlinks one resolution may follow (Linux uses 40).
pub const MAX_SYMLINKS: usize = 40;
/// Deepest directory nesting a walk descends into.
pub const MAX_DEPTH: usize = 4096;

/// Resolves an absolute path inside `fs`. Symlinks in intermediate components are
/// followed (absolute targets restart at this filesystem's root); the last
/// component is followed only if `follow_last`.
pub fn resolve<F: Filesystem + ?Sized>(fs: &F, path: &[u8], follow_last: bool) -> FsResult<NodeId> {
    let mut budget = MAX_SYMLINKS;
    resolve_from(fs, fs.root(), path, follow_last, &mut budget, path)
}

fn resolve_from<F: Filesystem + ?Sized>(
    fs: &F,
    start: NodeId,
    path: &[u8],
    follow_last: bool,
    budget: &mut usize,
    whole: &[u8],
) -> FsResult<NodeId> {
    // Parent stack so `..` works after following symlinks.
    let mut stack: Vec<NodeId> = vec![if path.starts_with(b"/") {
        fs.root()
    } else {
        start
    }];
    let components: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for (i, comp) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let cur = *stack.last().unwrap_or(&fs.root());
        match *comp {
            b"." => continue,
            b".." => {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            _ => {}
        }
        let entries = fs.read_dir(cur).map_err(|e| match e {
            FsError::Io(_) | FsError::Corrupt(_) | FsError::Unsupported(_) => e,
            _ => FsError::NotADirectory {
                path: display_path(whole),
            },
        })?;
        let entry = entries
            .into_iter()
            .find(|e| e.name == *comp)
            .ok_or_else(|| FsError::NotFound {
                path: display_path(whole),
            })?;
        if entry.kind == FileKind::Symlink && (!last || follow_last) {
            if *budget == 0 {
                return Err(FsError::SymlinkLoop {
                    path: display_path(whole),
                });
            }
            *budget -= 1;
            let target = fs.read_link(entry.id)?;
            let base = *stack.last().unwrap_or(&fs.root());
            let resolved = resolve_from(fs, base, &target, true, budget, whole)?;
            stack.push(resolved);
        } else {
            if !last && entry.kind != FileKind::Directory {
                return Err(FsError::NotADirectory {
                    path: display_path(whole),
                });
            }
            stack.push(entry.id);
        }
    }
    Ok(*stack.last().unwrap_or(&fs.root()))
}

/// One file met by [`walk`].
#[derive(Debug, Clone)]
pub struct WalkEntry {
    /// Absolute path within the filesystem, e.g. `/etc/ssh/ssh_host_rsa_key`.
    pub path: Vec<u8>,
    pub entry: DirEntry,
    pub depth: usize,
}

/// Visits every entry below directory `start` (whose path is `start_path`),
/// depth-first, parents before children, names in on-disk order. Symlinks are
/// not followed. The visitor returns `false` to skip a directory's contents.
/// A directory met twice (only possible in a corrupt image) is an error.
pub fn walk<F, V>(fs: &F, start: NodeId, start_path: &[u8], mut visit: V) -> FsResult<()>
where
    F: Filesystem + ?Sized,
    V: FnMut(&WalkEntry) -> FsResult<bool>,
{
    let mut seen: HashSet<NodeId> = HashSet::new();
    seen.insert(start);
    let base = start_path.strip_suffix(b"/").unwrap_or(start_path).to_vec();
    // Stack of (directory, its path, depth) still to list.
    let mut todo: Vec<(NodeId, Vec<u8>, usize)> = vec![(start, base, 0)];
    while let Some((dir, dir_path, depth)) = todo.pop() {
        if depth >= MAX_DEPTH {
            return Err(FsError::Corrupt(format!(
                "{}: directories nested deeper than {MAX_DEPTH} levels",
                display_path(&dir_path)
            )));
        }
        let entries = fs.read_dir(dir)?;
        let mut subdirs = Vec::new();
        for entry in entries {
            let mut path = dir_path.clone();
            path.push(b'/');
            path.extend_from_slice(&entry.name);
            let is_dir = entry.kind == FileKind::Directory;
            let id = entry.id;
            let item = WalkEntry {
                path,
                entry,
                depth: depth + 1,
            };
            let descend = visit(&item)?;
            if is_dir && descend {
                if !seen.insert(id) {
                    return Err(FsError::Corrupt(format!(
                        "{}: directory appears twice in the tree (node {id})",
                        display_path(&item.path)
                    )));
                }
                subdirs.push((id, item.path, depth + 1));
            }
        }
        // Reverse so the first subdirectory is listed first.
        todo.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod memfs {
    //! A tiny in-memory filesystem for testing code above the trait.

    use super::super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    pub struct MemFs {
        pub nodes: BTreeMap<NodeId, (Metadata, Vec<u8>, Vec<DirEntry>)>,
    }

    fn meta(id: NodeId, kind: FileKind, size: u64) -> Metadata {
        Metadata {
            id,
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            nlink: 1,
            size,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            crtime: None,
            rdev: None,
        }
    }

    impl MemFs {
        pub fn new() -> Self {
            let mut fs = MemFs::default();
            fs.nodes
                .insert(1, (meta(1, FileKind::Directory, 0), vec![], vec![]));
            fs
        }

        /// Adds a node under directory `parent`; returns its id.
        pub fn add(&mut self, parent: NodeId, name: &[u8], kind: FileKind, data: &[u8]) -> NodeId {
            let id = self.nodes.len() as NodeId + 1;
            self.nodes.insert(
                id,
                (meta(id, kind, data.len() as u64), data.to_vec(), vec![]),
            );
            self.link(parent, name, id, kind);
            id
        }

        /// Creates `path` (absolute) and any missing parent directories; returns
        /// the new node's id.
        pub fn put(&mut self, path: &[u8], kind: FileKind, data: &[u8]) -> NodeId {
            let comps: Vec<&[u8]> = path
                .split(|&b| b == b'/')
                .filter(|c| !c.is_empty())
                .collect();
            let mut dir = 1;
            for (i, c) in comps.iter().enumerate() {
                let last = i + 1 == comps.len();
                let found = self.nodes[&dir]
                    .2
                    .iter()
                    .find(|e| e.name == *c)
                    .map(|e| e.id);
                dir = match (found, last) {
                    (Some(id), false) => id,
                    (_, true) => return self.add(dir, c, kind, data),
                    (None, false) => self.add(dir, c, FileKind::Directory, b""),
                };
            }
            dir
        }

        /// A regular file at `path` (parents created).
        pub fn file(&mut self, path: &str, data: &[u8]) -> NodeId {
            self.put(path.as_bytes(), FileKind::Regular, data)
        }

        pub fn meta_mut(&mut self, id: NodeId) -> &mut Metadata {
            &mut self.nodes.get_mut(&id).unwrap().0
        }

        pub fn link(&mut self, parent: NodeId, name: &[u8], id: NodeId, kind: FileKind) {
            self.nodes.get_mut(&parent).unwrap().2.push(DirEntry {
                name: name.to_vec(),
                id,
                kind,
            });
        }
    }

    impl Filesystem for MemFs {
        fn fs_type(&self) -> FsType {
            FsType::Ext4
        }
        fn root(&self) -> NodeId {
            1
        }
        fn metadata(&self, id: NodeId) -> FsResult<Metadata> {
            Ok(self.nodes[&id].0.clone())
        }
        fn read_dir(&self, id: NodeId) -> FsResult<Vec<DirEntry>> {
            let n = &self.nodes[&id];
            if n.0.kind != FileKind::Directory {
                return Err(FsError::NotADirectory {
                    path: format!("node {id}"),
                });
            }
            Ok(n.2.clone())
        }
        fn open(&self, id: NodeId) -> FsResult<Box<dyn std::io::Read + Send + '_>> {
            Ok(Box::new(&self.nodes[&id].1[..]))
        }
        fn read_link(&self, id: NodeId) -> FsResult<Vec<u8>> {
            Ok(self.nodes[&id].1.clone())
        }
        fn xattrs(&self, _id: NodeId) -> FsResult<Vec<Xattr>> {
            Ok(vec![])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memfs::MemFs;
    use super::*;

    fn sample() -> MemFs {
        let mut fs = MemFs::new();
        let etc = fs.add(1, b"etc", FileKind::Directory, b"");
        let ssh = fs.add(etc, b"ssh", FileKind::Directory, b"");
        fs.add(ssh, b"key", FileKind::Regular, b"secret");
        fs.add(1, b"link", FileKind::Symlink, b"/etc/ssh");
        fs.add(1, b"rel", FileKind::Symlink, b"etc/../etc/ssh/key");
        fs.add(1, b"loop1", FileKind::Symlink, b"/loop2");
        fs.add(1, b"loop2", FileKind::Symlink, b"/loop1");
        fs.add(1, b"n\xffbin", FileKind::Regular, b"x");
        fs
    }

    #[test]
    fn resolves_paths_and_symlinks() {
        let fs = sample();
        let key = resolve(&fs, b"/etc/ssh/key", false).unwrap();
        assert_eq!(fs.read_link(key).unwrap(), b"secret");
        assert_eq!(resolve(&fs, b"/link/key", false).unwrap(), key);
        assert_eq!(resolve(&fs, b"/rel", true).unwrap(), key);
        assert_ne!(resolve(&fs, b"/rel", false).unwrap(), key);
        assert_eq!(resolve(&fs, b"/etc/./ssh/../ssh//key", false).unwrap(), key);
        assert!(matches!(
            resolve(&fs, b"/loop1/x", false),
            Err(FsError::SymlinkLoop { .. })
        ));
        assert!(matches!(
            resolve(&fs, b"/etc/nope", false),
            Err(FsError::NotFound { .. })
        ));
        assert!(matches!(
            resolve(&fs, b"/etc/ssh/key/x", false),
            Err(FsError::NotADirectory { .. })
        ));
        assert_eq!(resolve(&fs, b"/", false).unwrap(), 1);
    }

    #[test]
    fn walks_everything_once_in_order() {
        let fs = sample();
        let mut paths = vec![];
        walk(&fs, 1, b"/", |e| {
            paths.push(display_path(&e.path));
            Ok(true)
        })
        .unwrap();
        assert_eq!(
            paths,
            [
                "/etc",
                "/link",
                "/rel",
                "/loop1",
                "/loop2",
                "/n\\xffbin",
                "/etc/ssh",
                "/etc/ssh/key"
            ]
        );
        let mut pruned = vec![];
        walk(&fs, 1, b"/", |e| {
            pruned.push(e.path.clone());
            Ok(e.path != b"/etc")
        })
        .unwrap();
        assert_eq!(pruned.len(), 6);
    }

    #[test]
    fn directory_cycle_is_an_error_not_a_hang() {
        let mut fs = MemFs::new();
        let a = fs.add(1, b"a", FileKind::Directory, b"");
        fs.link(a, b"back", 1, FileKind::Directory);
        let err = walk(&fs, 1, b"/", |_| Ok(true)).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }
}
