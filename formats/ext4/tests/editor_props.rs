//! Property test: random trees (directories, files of random sizes including
//! sparse ones, hard links, fast and slow symlinks, fifos, small and large xattrs)
//! are generated into a temporary directory and built with `mkfs.ext4 -d` for
//! several feature sets; a random plan of unlinks, tree removals, truncates and
//! rewrites is applied (operations that do not apply any more — a path already
//! gone, a rewrite over a hole — must fail without changing anything). Then:
//! `e2fsck -fn` clean, debugfs agrees with our reader, the rest of the tree is
//! unchanged (link counts and rewritten content as the model predicts), freed
//! inodes and blocks are zero and free, and no marker of anything removed survives.
//!
//! `EXT4_PROP_SEEDS` sets the number of seeds per feature set (default 3);
//! `EXT4_PROP_SEED` the first seed (default 1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod edit_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use edit_support::*;
use vmscrub_ext4::{EditError, FileType};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// Markers a planted object carries, by path.
#[derive(Default)]
struct Planted {
    /// Content markers of the file at each path (shared by its hard links).
    content: HashMap<PathBuf, Vec<u8>>,
    /// xattr and slow-symlink markers.
    extra: HashMap<PathBuf, Vec<u8>>,
}

fn marker_content(marker: &[u8], size: usize) -> Vec<u8> {
    let mut line = marker.to_vec();
    line.extend_from_slice(b" some log text\n");
    line.iter().copied().cycle().take(size).collect()
}

/// Plants a random tree under `root`; returns the markers.
fn plant(root: &Path, seed: u64, rng: &mut Rng, xattr_max: usize) -> Planted {
    let mut p = Planted::default();
    let mut dirs = vec![root.to_path_buf()];
    let mut files: Vec<PathBuf> = Vec::new();
    let n_objects = 40 + rng.below(80);
    for n in 0..n_objects {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let kind = rng.below(100);
        if kind < 15
            && dirs.len() < 25
            && parent.components().count() < root.components().count() + 5
        {
            let d = parent.join(format!("SECRETNAME_{seed}_{n}_d"));
            std::fs::create_dir(&d).unwrap();
            dirs.push(d);
        } else if kind < 75 {
            let f = parent.join(format!("SECRETNAME_{seed}_{n}_f"));
            let marker = format!("PROPMARK_{seed}_{n}:").into_bytes();
            let size = match rng.below(8) {
                0 => rng.below(3),
                1 => 20 + rng.below(100),
                2 => 4096 * (1 + rng.below(4)) - 3 + rng.below(6),
                3 => 1000 + rng.below(40_000),
                4 => 60 + rng.below(300),
                5 => 100_000 + rng.below(300_000),
                _ => 1 + rng.below(9000),
            } as usize;
            if rng.chance(10) && size > 50_000 {
                // Sparse: data at a few places, holes between.
                let file = std::fs::File::create(&f).unwrap();
                file.set_len(size as u64 * 4).unwrap();
                use std::os::unix::fs::FileExt;
                for k in 0..3u64 {
                    let at = rng.below(size as u64 * 4 - 8000);
                    file.write_all_at(&marker_content(&marker, 3000 + k as usize), at)
                        .unwrap();
                }
            } else {
                std::fs::write(&f, marker_content(&marker, size)).unwrap();
            }
            if rng.chance(30) {
                let xm = format!("PROPXATTR_{seed}_{n}:").into_bytes();
                let len = if rng.chance(50) { 30 } else { xattr_max };
                let v: Vec<u8> = xm.iter().copied().cycle().take(len).collect();
                rustix::fs::setxattr(&f, "user.prop", &v, rustix::fs::XattrFlags::empty()).unwrap();
                p.extra.insert(f.clone(), xm);
            }
            p.content.insert(f.clone(), marker);
            files.push(f);
        } else if kind < 85 && !files.is_empty() {
            let target = files[rng.below(files.len() as u64) as usize].clone();
            let l = parent.join(format!("SECRETNAME_{seed}_{n}_h"));
            std::fs::hard_link(&target, &l).unwrap();
        } else if kind < 95 {
            let l = parent.join(format!("SECRETNAME_{seed}_{n}_l"));
            if rng.chance(50) {
                std::os::unix::fs::symlink(format!("t{n}"), &l).unwrap();
            } else {
                let m = format!(
                    "PROPLINK_{seed}_{n}:/a/target/long/enough/to/need/a/block/of/its/own/x"
                );
                std::os::unix::fs::symlink(&m, &l).unwrap();
                p.extra
                    .insert(l, format!("PROPLINK_{seed}_{n}:").into_bytes());
            }
        } else {
            let f = parent.join(format!("SECRETNAME_{seed}_{n}_p"));
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &f,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .unwrap();
        }
    }
    p
}

struct Features {
    label: &'static str,
    kind: &'static str,
    block_size: u32,
    opts: &'static str,
}

const FEATURES: &[Features] = &[
    Features {
        label: "ext4",
        kind: "ext4",
        block_size: 4096,
        opts: "",
    },
    Features {
        label: "ext4-1k-nocsum-32bit",
        kind: "ext4",
        block_size: 1024,
        opts: "^metadata_csum,^64bit,uninit_bg",
    },
    Features {
        label: "ext4-inline",
        kind: "ext4",
        block_size: 4096,
        opts: "inline_data",
    },
    Features {
        label: "ext2-1k",
        kind: "ext2",
        block_size: 1024,
        opts: "",
    },
    Features {
        label: "ext3-2k",
        kind: "ext3",
        block_size: 2048,
        opts: "",
    },
];

fn mkfs(f: &Features, root: &Path, img: &Path) {
    let mut c = Command::new(format!("mkfs.{}", f.kind));
    c.args(["-q", "-F", "-b", &f.block_size.to_string(), "-N", "2048"]);
    if !f.opts.is_empty() {
        c.args(["-O", f.opts]);
    }
    c.arg("-d").arg(root).arg(img).arg("40M");
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "mkfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rel(root: &Path, p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let r = p.strip_prefix(root).unwrap();
    let mut v = b"/".to_vec();
    v.extend_from_slice(r.as_os_str().as_bytes());
    v
}

fn run_seed(f: &Features, seed: u64) {
    let name = format!("{}-seed{seed}", f.label);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut rng =
        Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x1000_0001) ^ u64::from(f.block_size));
    let xattr_max = (f.block_size as usize).min(4096) - 200;
    let planted = plant(&root, seed, &mut rng, xattr_max);
    let img = tmp.path().join("fs.img");
    mkfs(f, &root, &img);
    e2fsck_clean(&img);

    let fs = open(&img);
    let before = walk_ours(&fs);
    let (all_inodes, all_blocks) = owned_below(&fs, b"/");
    drop(fs);
    // Which markers are in the image at all (a tiny file holds none).
    let mut candidates: Vec<Vec<u8>> = planted
        .content
        .values()
        .chain(planted.extra.values())
        .cloned()
        .collect();
    candidates.extend(
        before
            .nodes
            .keys()
            .filter(|p| p.as_slice() != b"/")
            .map(|p| p.rsplit(|&c| c == b'/').next().unwrap().to_vec()),
    );
    let present: HashSet<Vec<u8>> = occurrences(&img, &candidates).into_keys().collect();

    // A random plan over what exists.
    let paths: Vec<Vec<u8>> = before
        .nodes
        .keys()
        .filter(|p| p.as_slice() != b"/" && !p.starts_with(b"/lost+found"))
        .cloned()
        .collect();
    let mut plan: Vec<(u8, Vec<u8>, Vec<u8>)> = Vec::new();
    for _ in 0..(5 + rng.below(20)) {
        let p = paths[rng.below(paths.len() as u64) as usize].clone();
        let n = &before.nodes[&p];
        let op = match (n.ftype, rng.below(4)) {
            (FileType::Directory, _) => b't',
            (FileType::Regular, 0) => b'T',
            (FileType::Regular, 1) => b'R',
            (_, 2) => b't',
            _ => b'u',
        };
        let content = if op == b'R' {
            let len = rng.below(n.size + 1) as usize;
            b"NEW CONTENT LINE\n"
                .iter()
                .copied()
                .cycle()
                .take(len)
                .collect()
        } else {
            Vec::new()
        };
        plan.push((op, p, content));
    }

    // The model: removed paths, changed content by inode, link drops by inode.
    let ino_of: HashMap<Vec<u8>, u32> = before
        .nodes
        .iter()
        .map(|(p, n)| (p.clone(), n.ino))
        .collect();
    let mut removed: HashSet<Vec<u8>> = HashSet::new();
    let mut content: HashMap<u32, Vec<u8>> = HashMap::new();
    let is_gone = |removed: &HashSet<Vec<u8>>, p: &[u8]| {
        removed.contains(p)
            || p.iter()
                .enumerate()
                .skip(1)
                .any(|(i, &c)| c == b'/' && removed.contains(&p[..i]))
    };
    let ((), _) = edit(&img, caller_zeroes(), |ed| {
        for (op, p, c) in &plan {
            let r: Result<(), EditError> = match op {
                b'u' => ed.unlink(p).map(|_| ()),
                b't' => ed.remove_tree(p).map(|_| ()),
                b'T' => ed.truncate(p).map(|_| ()),
                _ => ed.rewrite(p, c).map(|_| ()),
            };
            let gone = is_gone(&removed, p);
            match r {
                Ok(()) => {
                    assert!(
                        !gone,
                        "{name}: {} succeeded on a removed path",
                        String::from_utf8_lossy(p)
                    );
                    match op {
                        b'u' | b't' => {
                            removed.insert(p.clone());
                        }
                        _ => {
                            content.insert(ino_of[p], c.clone());
                        }
                    }
                }
                Err(EditError::Read(vmscrub_ext4::Error::NotFound { .. })) => {
                    assert!(gone, "{name}: {} not found", String::from_utf8_lossy(p));
                }
                Err(EditError::NeedsAllocation { .. }) => {
                    assert!(*op == b'R', "{name}");
                }
                Err(EditError::ContentTooLong { .. }) => {
                    // A rewrite after a truncate of the same inode (its hard link).
                    assert!(content.contains_key(&ino_of[p]), "{name}");
                }
                Err(e) => panic!(
                    "{name}: {} {}: {e}",
                    *op as char,
                    String::from_utf8_lossy(p)
                ),
            }
        }
    });
    e2fsck_clean(&img);
    let fs = open(&img);
    let after = walk_ours(&fs);
    drop(fs);

    let mut want = without(&before, &removed);
    // Link counts: every removed non-directory path drops one link of its inode.
    let mut drops: HashMap<u32, u16> = HashMap::new();
    let mut dir_drops: HashMap<Vec<u8>, u16> = HashMap::new();
    for (p, n) in &before.nodes {
        if !is_gone(&removed, p) {
            continue;
        }
        if n.ftype != FileType::Directory {
            *drops.entry(n.ino).or_default() += 1;
        } else {
            let parent = p[..p.iter().rposition(|&c| c == b'/').unwrap().max(1)].to_vec();
            if !is_gone(&removed, &parent) {
                *dir_drops.entry(parent).or_default() += 1;
            }
        }
    }
    for (p, n) in want.nodes.iter_mut() {
        if let Some(d) = drops.get(&n.ino) {
            n.nlink -= d;
        }
        if let Some(d) = dir_drops.get(p) {
            n.nlink -= d;
        }
        if let Some(c) = content.get(&n.ino) {
            n.size = c.len() as u64;
            n.sha256 = Some(sha(c));
            n.block_map_holes = after.nodes[p].block_map_holes;
            if let Some(v) = n.xattrs.get_mut(b"system.data".as_slice()) {
                *v = c.get(60..).unwrap_or_default().to_vec();
            }
        }
    }
    for (p, n) in &want.nodes {
        assert_eq!(
            Some(n),
            after.nodes.get(p),
            "{name}: {}",
            String::from_utf8_lossy(p)
        );
    }
    assert_eq!(want.nodes.len(), after.nodes.len(), "{name}: paths");
    assert_eq!(want.dirs, after.dirs, "{name}: listings");
    assert_matches_debugfs(&name, &img, &after);
    assert_released(&name, &img, &all_inodes, &all_blocks);

    // Residue: names of removed paths; content markers of inodes that lost every
    // link or got new content; xattr and symlink markers of freed inodes.
    let live: HashSet<u32> = after.nodes.values().map(|n| n.ino).collect();
    let mut patterns: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
    for p in before.nodes.keys().filter(|p| is_gone(&removed, p)) {
        patterns.insert(p.rsplit(|&c| c == b'/').next().unwrap().to_vec(), ());
    }
    for (path, m) in planted.content.iter().chain(planted.extra.iter()) {
        let r = rel(&root, path);
        let Some(&ino) = ino_of.get(&r) else { continue };
        let gone = !live.contains(&ino);
        let rewritten = content.contains_key(&ino) && planted.content.get(path) == Some(m);
        if gone || rewritten {
            patterns.insert(m.clone(), ());
        }
    }
    let patterns: Vec<Vec<u8>> = patterns
        .into_keys()
        .filter(|m| present.contains(m))
        .collect();
    assert!(
        removed.is_empty() || !patterns.is_empty(),
        "{name}: nothing to look for although {} paths were removed",
        removed.len()
    );
    assert_no_residue(&name, &img, &patterns);
    eprintln!(
        "{name}: {} paths, {} planned operations, {} paths removed, {} rewritten inodes, {} markers checked",
        before.nodes.len(),
        plan.len(),
        removed.len(),
        content.len(),
        patterns.len()
    );
}

fn seeds() -> std::ops::Range<u64> {
    let n: u64 = std::env::var("EXT4_PROP_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let first: u64 = std::env::var("EXT4_PROP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    first..first + n
}

macro_rules! props {
    ($($test:ident => $i:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            for seed in seeds() {
                run_seed(&FEATURES[$i], seed);
            }
        }
    )*};
}

props! {
    random_trees_ext4 => 0,
    random_trees_ext4_1k_nocsum_32bit => 1,
    random_trees_ext4_inline => 2,
    random_trees_ext2_1k => 3,
    random_trees_ext3 => 4,
}
