//! Support for the editor tests: scratch copies of fixtures, the e2fsck and
//! debugfs oracles, the residual scan, and the block/inode accounting checks.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use aho_corasick::AhoCorasick;
use vmscrub_blockdev::{FileDisk, RangeSet, WriteAt};
use vmscrub_ext4::{EditReport, Editor, EditorOptions, Ext4, FileType, ROOT_INO};

use crate::common::*;

/// A private copy of a fixture image, deleted with the value.
pub struct Img {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn scratch(name: &str) -> Img {
    let src = fixture(name);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.img"));
    std::fs::copy(&src, &path).unwrap();
    Img { _dir: dir, path }
}

pub fn scratch_of(src: &Path) -> Img {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.img");
    std::fs::copy(src, &path).unwrap();
    Img { _dir: dir, path }
}

pub fn file_sha(p: &Path) -> [u8; 32] {
    sha(&std::fs::read(p).unwrap())
}

/// `e2fsck -fn` must exit 0 and print nothing but its pass headers and summary.
pub fn e2fsck_clean(img: &Path) {
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let unexpected: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            !(l.starts_with("Pass ") && l.contains(": Checking")
                || l.contains(" files (") && l.contains(" blocks"))
        })
        .collect();
    assert!(
        out.status.success() && unexpected.is_empty(),
        "e2fsck -fn {} exited {:?}:\n{stdout}{}",
        img.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens `img` read-write, runs `f` on an editor, commits, and zeroes the
/// returned ranges itself when `opts.zero_freed` is off (the caller's duty).
pub fn edit<T>(
    img: &Path,
    opts: EditorOptions,
    f: impl FnOnce(&mut Editor<FileDisk>) -> T,
) -> (T, EditReport) {
    let dev = FileDisk::open_rw(img).unwrap();
    let mut ed = Editor::open(dev, opts).unwrap();
    let t = f(&mut ed);
    let report = ed.commit().unwrap();
    if !opts.zero_freed {
        zero(img, &report.zero_ranges);
    }
    (t, report)
}

pub fn zero(img: &Path, ranges: &RangeSet) {
    let dev = FileDisk::open_rw(img).unwrap();
    for r in ranges.iter() {
        dev.zero_range(r).unwrap();
    }
}

/// Options where the test zeroes the ranges (exercising the report).
pub fn caller_zeroes() -> EditorOptions {
    EditorOptions {
        zero_freed: false,
        ..EditorOptions::default()
    }
}

/// Every occurrence of each pattern in the raw image: pattern → byte offsets.
pub fn occurrences(img: &Path, patterns: &[Vec<u8>]) -> BTreeMap<Vec<u8>, Vec<u64>> {
    let data = std::fs::read(img).unwrap();
    let ac = AhoCorasick::new(patterns).unwrap();
    let mut out: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
    for m in ac.find_overlapping_iter(&data) {
        out.entry(patterns[m.pattern().as_usize()].clone())
            .or_default()
            .push(m.start() as u64);
    }
    out
}

/// Asserts that none of `patterns` occurs anywhere in the image (journal,
/// free space and slack included).
pub fn assert_no_residue(name: &str, img: &Path, patterns: &[Vec<u8>]) {
    let found = occurrences(img, patterns);
    let shown: Vec<String> = found
        .iter()
        .take(10)
        .map(|(p, offs)| {
            format!(
                "{} at {:?}",
                String::from_utf8_lossy(p),
                &offs[..offs.len().min(4)]
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "{name}: {} removed markers survive: {}",
        found.len(),
        shown.join("; ")
    );
}

/// Blocks holding inode tables (where inline data, fast symlinks and in-inode
/// xattrs live).
pub fn inode_table_blocks<D: vmscrub_blockdev::ReadAt>(fs: &Ext4<D>) -> RangeSet {
    let mut s = RangeSet::new();
    for d in fs.groups() {
        s.insert(fs.group_layout(d.group).unwrap().inode_table);
    }
    s
}

/// Every inode reachable below `root` (and the value inodes of their xattrs),
/// with the blocks each owns.
pub fn owned_below<D: vmscrub_blockdev::ReadAt>(
    fs: &Ext4<D>,
    root: &[u8],
) -> (BTreeSet<u32>, RangeSet) {
    let mut inodes = BTreeSet::new();
    let mut blocks = RangeSet::new();
    let Ok(top) = fs.lookup(root, false) else {
        return (inodes, blocks);
    };
    let mut stack = vec![top];
    while let Some(ino) = stack.pop() {
        if !inodes.insert(ino) {
            continue;
        }
        let inode = fs.inode(ino).unwrap();
        let owned = fs.owned_blocks(ino).unwrap();
        for r in owned.block_ranges() {
            blocks.insert(r);
        }
        stack.extend(owned.ea_inodes.iter().copied());
        if inode.is_dir() && !inode.has_flag(vmscrub_ext4::inode::flags::EA_INODE) {
            for e in fs.read_dir(ino).unwrap() {
                let e = e.unwrap();
                if !e.is_dot_or_dotdot() {
                    stack.push(e.inode);
                }
            }
        }
    }
    (inodes, blocks)
}

/// Every inode in use and every block they own (plus static metadata is not
/// included).
pub fn all_owned<D: vmscrub_blockdev::ReadAt>(fs: &Ext4<D>) -> (BTreeSet<u32>, RangeSet) {
    let mut inodes = BTreeSet::new();
    let mut blocks = RangeSet::new();
    for i in fs.inodes_in_use() {
        let i = i.unwrap();
        inodes.insert(i.ino);
        if i.mode == 0 && i.links_count == 0 {
            continue;
        }
        for r in fs.owned_blocks(i.ino).unwrap().block_ranges() {
            blocks.insert(r);
        }
    }
    (inodes, blocks)
}

/// Checks that every inode of `before_inodes` that is no longer in use has an
/// all-zero slot, and that every block of `before_blocks` no longer owned by
/// anything is free in its bitmap and reads as zeros.
pub fn assert_released(
    name: &str,
    img: &Path,
    before_inodes: &BTreeSet<u32>,
    before_blocks: &RangeSet,
) -> (usize, u64) {
    let fs = open(img);
    let (live_inodes, live_blocks) = all_owned(&fs);
    let bs = u64::from(fs.block_size());
    let isz = usize::from(fs.superblock().inode_size);
    let data = std::fs::read(img).unwrap();
    let mut freed_inodes = 0;
    for &ino in before_inodes {
        if live_inodes.contains(&ino) {
            continue;
        }
        freed_inodes += 1;
        assert!(
            !fs.inode_in_use(ino).unwrap(),
            "{name}: inode {ino} is marked in use"
        );
        let (blk, off) = fs.inode_location(ino).unwrap();
        let at = (blk * bs + u64::from(off)) as usize;
        assert!(
            data[at..at + isz].iter().all(|&c| c == 0),
            "{name}: freed inode {ino} slot is not zeroed"
        );
    }
    let mut freed_blocks = 0u64;
    for r in before_blocks.iter() {
        for b in r {
            if live_blocks.contains(b) {
                continue;
            }
            freed_blocks += 1;
            assert!(
                !fs.block_in_use(b).unwrap(),
                "{name}: freed block {b} is marked in use"
            );
            let at = (b * bs) as usize;
            assert!(
                data[at..at + bs as usize].iter().all(|&c| c == 0),
                "{name}: freed block {b} is not zeroed"
            );
        }
    }
    (freed_inodes, freed_blocks)
}

/// Compares our walk of the edited image with debugfs' view of it (listings,
/// stat fields, content, xattrs, link targets).
pub fn assert_matches_debugfs(name: &str, img: &Path, ours: &OurTree) {
    let dbg = debugfs_tree(img);
    let our_dirs: Vec<&u32> = ours.dirs.keys().collect();
    let dbg_dirs: Vec<&u32> = dbg.dirs.keys().collect();
    assert_eq!(our_dirs, dbg_dirs, "{name}: directory inodes (debugfs)");
    for (ino, list) in &ours.dirs {
        assert_eq!(
            list, &dbg.dirs[ino],
            "{name}: entries of directory {ino} (debugfs)"
        );
    }
    for (path, n) in &ours.nodes {
        let p = String::from_utf8_lossy(path);
        let s = &dbg.stats[&n.ino];
        assert_eq!(type_name(n.ftype), s.ftype, "{name}:{p}: type (debugfs)");
        assert_eq!(
            (n.perm, n.uid, n.gid),
            (s.perm, s.uid, s.gid),
            "{name}:{p}: mode/owner (debugfs)"
        );
        assert_eq!(
            (n.size, n.nlink),
            (s.size, s.links),
            "{name}:{p}: size/links (debugfs)"
        );
        assert_eq!(n.mtime_raw, s.mtime_raw, "{name}:{p}: mtime (debugfs)");
        if let Some(l) = &n.link {
            assert_eq!(
                Some(l),
                dbg.link_targets.get(&n.ino),
                "{name}:{p}: link (debugfs)"
            );
        }
        if let Some(h) = n.sha256 {
            let want = dbg.content.get(&n.ino).copied().unwrap_or_else(|| sha(b""));
            assert_eq!(h, want, "{name}:{p}: content (debugfs)");
        }
        assert_eq!(n.xattrs, dbg.xattrs[&n.ino], "{name}:{p}: xattrs (debugfs)");
    }
}

/// ext4-view (an independent reader) must see the same paths, types, sizes and
/// content. Returns false when ext4-view does not support the filesystem.
pub fn matches_ext4_view(name: &str, img: &Path, ours: &OurTree) -> bool {
    let Ok(view) = ext4_view::Ext4::load_from_path(img) else {
        return false;
    };
    let mut seen = BTreeSet::new();
    let mut stack = vec![b"/".to_vec()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = view.read_dir(ext4_view::Path::new(&dir)) else {
            return false;
        };
        for e in rd {
            let e = e.unwrap();
            let fname = e.file_name();
            let n: &[u8] = fname.as_ref();
            if n == b"." || n == b".." {
                continue;
            }
            let pb: Vec<u8> = e.path().as_ref().to_vec();
            let p = String::from_utf8_lossy(&pb).into_owned();
            let mine = ours
                .nodes
                .get(&pb)
                .unwrap_or_else(|| panic!("{name}: ext4-view has {p}, we do not"));
            let md = view.symlink_metadata(ext4_view::Path::new(&pb)).unwrap();
            assert_eq!(md.len(), mine.size, "{name}:{p}: size (ext4-view)");
            match mine.ftype {
                FileType::Directory => stack.push(pb.clone()),
                FileType::Regular => {
                    if let Ok(data) = view.read(ext4_view::Path::new(&pb)) {
                        assert_eq!(
                            Some(sha(&data)),
                            mine.sha256,
                            "{name}:{p}: content (ext4-view)"
                        );
                    } else {
                        assert!(mine.block_map_holes, "{name}:{p}: ext4-view cannot read it");
                    }
                }
                _ => {}
            }
            seen.insert(pb);
        }
    }
    let ours_paths: BTreeSet<Vec<u8>> = ours
        .nodes
        .keys()
        .filter(|p| p.as_slice() != b"/")
        .cloned()
        .collect();
    assert_eq!(ours_paths, seen, "{name}: path sets (ext4-view)");
    true
}

/// The tree a walk should show after removing `removed` (paths; everything
/// below a removed directory goes too) from `before`.
pub fn without(before: &OurTree, removed: &HashSet<Vec<u8>>) -> OurTree {
    // A path is gone if it or one of its ancestors was removed.
    let gone = |p: &[u8]| {
        removed.contains(p)
            || p.iter()
                .enumerate()
                .skip(1)
                .any(|(i, &c)| c == b'/' && removed.contains(&p[..i]))
    };
    let mut nodes = BTreeMap::new();
    let mut gone_inos = HashSet::new();
    for (p, n) in &before.nodes {
        if gone(p) {
            gone_inos.insert((p.clone(), n.ino));
        } else {
            nodes.insert(p.clone(), n.clone());
        }
    }
    // Directory listings: drop removed directories, and removed names from parents.
    let live_dirs: HashSet<u32> = nodes
        .values()
        .filter(|n| n.ftype == FileType::Directory)
        .map(|n| n.ino)
        .collect();
    let mut dirs = BTreeMap::new();
    for (ino, list) in &before.dirs {
        if !live_dirs.contains(ino) && *ino != ROOT_INO {
            continue;
        }
        // The path of this directory, to know its children's paths.
        let dpath = nodes
            .iter()
            .find(|(_, n)| n.ino == *ino && n.ftype == FileType::Directory)
            .map(|(p, _)| p.clone())
            .unwrap_or_else(|| b"/".to_vec());
        let kept: Vec<(Vec<u8>, u32)> = list
            .iter()
            .filter(|(name, _)| {
                if name == b"." || name == b".." {
                    return true;
                }
                let mut p = if dpath == b"/" {
                    Vec::new()
                } else {
                    dpath.clone()
                };
                p.push(b'/');
                p.extend_from_slice(name);
                !gone(&p)
            })
            .cloned()
            .collect();
        dirs.insert(*ino, kept);
    }
    OurTree { nodes, dirs }
}
