//! The XFS editor over random trees in several feature sets, judged by
//! xfsprogs and the kernel: after random removals (files, hard links, whole
//! trees), truncations and rewrites, `xfs_repair -n` finds nothing, the
//! kernel's read-only mount shows exactly the expected tree (every kept file
//! byte-identical), no removed file's content is left anywhere in the image
//! (the log included), and the kernel can fill the freed space with new files
//! after which `xfs_repair -n` is still clean.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "xfs_common/mod.rs"]
mod xfs_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use vmscrub_blockdev::FileDisk;
use vmscrub_xfs::{Editor, EditorOptions};
use xfs_common::{Mount, Seen, kernel_tree, repair_clean};

/// A small deterministic generator (the seed is in every failure message).
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
}

/// The marker every byte run of file `n` carries, so a residual search can
/// tell removed content from kept content.
fn marker(n: usize) -> Vec<u8> {
    format!("XFSEDIT-{n:06}-").into_bytes()
}

fn content(n: usize, len: usize) -> Vec<u8> {
    marker(n).into_iter().cycle().take(len).collect()
}

fn mkfs(img: &Path, opts: &[&str]) {
    let f = std::fs::File::create(img).unwrap();
    f.set_len(300 << 20).unwrap();
    let o = Command::new("mkfs.xfs")
        .arg("-f")
        .args(opts)
        .arg(img)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A random tree through the kernel: nested directories, some wide enough
/// to reach the leaf and node forms, files of every size class (some
/// fragmented), hard links across directories, symlinks, xattrs, and
/// reflinked copies where the filesystem has reflink.
fn populate(img: &Path, rng: &mut Rng, reflink: bool, mount_opts: &str) -> Vec<Vec<u8>> {
    let dir = mount_rw(img, mount_opts);
    let root = dir.path();
    let mut dirs = vec![root.to_path_buf()];
    let mut files = vec![];
    let mut n = 0usize;
    for d in 0..12 {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let p = parent.join(format!("d{d}"));
        std::fs::create_dir(&p).unwrap();
        dirs.push(p);
    }
    // Wide directories cross the block, leaf and node thresholds.
    for (i, width) in [40usize, 400, 2500].into_iter().enumerate() {
        let p = root.join(format!("wide{i}"));
        std::fs::create_dir(&p).unwrap();
        for j in 0..width {
            let f = p.join(format!("entry-with-a-longish-name-{j:05}"));
            std::fs::write(&f, content(n, 16)).unwrap();
            files.push(f);
            n += 1;
        }
        dirs.push(p);
    }
    for _ in 0..300 {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let f = parent.join(format!("f{n}"));
        let len = match rng.below(4) {
            0 => rng.below(100),
            1 => rng.below(9000),
            2 => rng.below(200_000),
            _ => 4096 * (1 + rng.below(3)),
        } as usize;
        if rng.below(8) == 0 {
            // Every other block written: many extents, maybe a bmap B+tree.
            let fd = std::fs::File::create(&f).unwrap();
            use std::os::unix::fs::FileExt;
            for b in (0..80).step_by(2) {
                fd.write_all_at(&content(n, 4096), b * 4096).unwrap();
                fd.sync_data().unwrap();
            }
        } else {
            std::fs::write(&f, content(n, len)).unwrap();
        }
        if rng.below(6) == 0 {
            xattr(&f, n, rng.below(3) == 0);
        }
        files.push(f);
        n += 1;
    }
    for i in 0..30 {
        let src = files[rng.below(files.len() as u64) as usize].clone();
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let _ = std::fs::hard_link(&src, parent.join(format!("hl{i}")));
        let target = format!(
            "{}XFSLINK-{i:04}-{}",
            "../".repeat(rng.below(3) as usize),
            "t".repeat(rng.below(300) as usize + 1)
        );
        let _ = std::os::unix::fs::symlink(target, parent.join(format!("XFSNAME-SL{i:04}")));
    }
    let mut shared = vec![];
    if reflink {
        for i in 0..10 {
            let src = files[rng.below(files.len() as u64) as usize].clone();
            shared.push(
                src.strip_prefix(root)
                    .unwrap()
                    .as_os_str()
                    .as_encoded_bytes()
                    .to_vec(),
            );
            shared.push(format!("rl{i}").into_bytes());
            let st = Command::new("cp")
                .arg("--reflink=always")
                .arg(&src)
                .arg(root.join(format!("rl{i}")))
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
    let _ = Command::new("sync").status();
    let st = Command::new("umount").arg(root).status().unwrap();
    assert!(st.success());
    shared.iter().map(|p| [&b"/"[..], p].concat()).collect()
}

fn xattr(f: &Path, n: usize, remote: bool) {
    let value: Vec<u8> = if remote {
        content(n, 3000)
    } else {
        content(n, 40)
    };
    rustix::fs::setxattr(f, "user.edit-test", &value, rustix::fs::XattrFlags::empty()).unwrap();
}

/// What the editor is asked to do.
#[derive(Clone)]
enum Action {
    Unlink(Vec<u8>),
    Tree(Vec<u8>),
    Truncate(Vec<u8>),
    Rewrite(Vec<u8>, Vec<u8>),
}

/// Random actions over `tree`, applied to `expected` the way the kernel would
/// show their effect (names gone, link counts down, new sizes and content).
fn plan(
    rng: &mut Rng,
    tree: &BTreeMap<Vec<u8>, Seen>,
    expected: &mut BTreeMap<Vec<u8>, Seen>,
    shared: &[Vec<u8>],
) -> Vec<Action> {
    // Reflinked inodes are only truncated or removed: a rewrite in place
    // would change the other copies, and the editor refuses it.
    let shared: std::collections::HashSet<u64> = shared
        .iter()
        .filter_map(|p| tree.get(p))
        .map(|s| s.ino)
        .collect();
    let paths: Vec<Vec<u8>> = tree.keys().cloned().collect();
    let mut out = vec![];
    for _ in 0..60 {
        let p = paths[rng.below(paths.len() as u64) as usize].clone();
        let Some(seen) = expected.get(&p) else {
            continue;
        };
        let (kind, size) = (seen.kind, seen.size);
        use vmscrub::fs::FileKind;
        let action = match (kind, rng.below(3)) {
            (FileKind::Directory, _) => Action::Tree(p.clone()),
            (FileKind::Regular, 1) if size > 0 => Action::Truncate(p.clone()),
            (FileKind::Regular, 2) if size > 0 && !shared.contains(&seen.ino) => {
                // Within the first block, which every file here has written
                // (the fragmented ones have holes further on, which a rewrite
                // could only fill with new space).
                let keep = rng.below(size.min(4096)) as usize;
                Action::Rewrite(p.clone(), vec![b'R'; keep])
            }
            _ => Action::Unlink(p.clone()),
        };
        apply_expected(expected, &action);
        out.push(action);
    }
    out
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, p) = match self {
            Action::Unlink(p) => ("unlink", p),
            Action::Tree(p) => ("remove tree", p),
            Action::Truncate(p) => ("truncate", p),
            Action::Rewrite(p, c) => {
                return write!(
                    f,
                    "rewrite {} to {} bytes",
                    String::from_utf8_lossy(p),
                    c.len()
                );
            }
        };
        write!(f, "{what} {}", String::from_utf8_lossy(p))
    }
}

fn parent(p: &[u8]) -> Vec<u8> {
    let i = p.iter().rposition(|&b| b == b'/').unwrap_or(0);
    if i == 0 {
        b"/".to_vec()
    } else {
        p[..i].to_vec()
    }
}

fn apply_expected(expected: &mut BTreeMap<Vec<u8>, Seen>, a: &Action) {
    use sha2::{Digest, Sha256};
    use vmscrub::fs::FileKind;
    let drop_name = |expected: &mut BTreeMap<Vec<u8>, Seen>, p: &[u8]| {
        let Some(s) = expected.remove(p) else { return };
        if s.kind == FileKind::Directory {
            if let Some(par) = expected.get_mut(&parent(p)) {
                par.nlink -= 1;
            }
        } else {
            for o in expected.values_mut().filter(|o| o.ino == s.ino) {
                o.nlink -= 1;
            }
        }
    };
    match a {
        Action::Unlink(p) => drop_name(expected, p),
        Action::Tree(p) => {
            let mut prefix = p.clone();
            prefix.push(b'/');
            let inside: Vec<Vec<u8>> = expected
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            // Deepest first, so directories are empty when they go.
            for k in inside.iter().rev() {
                let s = expected.remove(k).unwrap();
                if s.kind != FileKind::Directory {
                    for o in expected.values_mut().filter(|o| o.ino == s.ino) {
                        o.nlink -= 1;
                    }
                }
            }
            drop_name(expected, p);
        }
        Action::Truncate(p) | Action::Rewrite(p, _) => {
            let new = match a {
                Action::Rewrite(_, c) => c.clone(),
                _ => vec![],
            };
            let ino = expected[p].ino;
            for o in expected.values_mut().filter(|o| o.ino == ino) {
                o.size = new.len() as u64;
                o.digest = Some(Sha256::digest(&new).into());
            }
        }
    }
}

/// Fills the free space through the kernel (the freed extents and inodes are
/// allocated again), then unmounts.
fn fill(img: &Path, mount_opts: &str) {
    let dir = mount_rw(img, mount_opts);
    for i in 0..2000 {
        if std::fs::write(dir.path().join(format!("new{i}")), vec![7u8; 1000 + i * 37]).is_err() {
            break;
        }
    }
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "status=none"])
        .arg(format!("of={}", dir.path().join("big").display()))
        .status();
    let st = Command::new("umount").arg(dir.path()).status().unwrap();
    assert!(st.success());
}

/// A read-write loop mount of `img` (left to the caller to unmount).
fn mount_rw(img: &Path, opts: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("mount")
        .args(["-o", opts, "-t", "xfs"])
        .arg(img)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success(), "mount -o {opts} {}", img.display());
    dir
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn run_case(opts: &[&str], seed: u64, reflink: bool, mount_opts: &str) {
    let what = format!("mkfs.xfs {opts:?}, seed {seed}");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fs.img");
    mkfs(&img, opts);
    let mut rng = Rng(seed);
    let shared = populate(&img, &mut rng, reflink, mount_opts);
    let before = {
        let m = Mount::new(&img, "ro,loop");
        kernel_tree(m.0.path())
    };
    let mut expected = before.clone();
    let actions = plan(&mut rng, &before, &mut expected, &shared);
    let mut ed = Editor::open(FileDisk::open_rw(&img).unwrap(), EditorOptions::default()).unwrap();
    for a in &actions {
        let r = match a {
            Action::Unlink(p) => ed.unlink(p).map(|_| ()),
            Action::Tree(p) => ed.remove_tree(p).map(|_| ()),
            Action::Truncate(p) => ed.truncate(p).map(|_| ()),
            Action::Rewrite(p, c) => ed.rewrite(p, c).map(|_| ()),
        };
        r.unwrap_or_else(|e| panic!("{what}: {a:?}: {e}"));
    }
    ed.commit()
        .unwrap_or_else(|e| panic!("{what}: commit: {e}"));
    repair_clean(&img, &what);
    let after = {
        let m = Mount::new(&img, "ro,loop");
        kernel_tree(m.0.path())
    };
    let diff: Vec<String> = expected
        .keys()
        .chain(after.keys())
        .filter(|k| expected.get(*k) != after.get(*k))
        .map(|k| {
            format!(
                "{}: expected {:?}, kernel shows {:?}",
                String::from_utf8_lossy(k),
                expected.get(k).map(|s| (s.kind, s.size, s.nlink)),
                after.get(k).map(|s| (s.kind, s.size, s.nlink))
            )
        })
        .collect();
    assert!(diff.is_empty(), "{what}: {}", diff.join("\n"));
    // No content of a removed or shrunk file is left: every marker of a file
    // whose inode is gone from the tree, or that was truncated to nothing.
    let raw = std::fs::read(&img).unwrap();
    let kept_markers: std::collections::HashSet<Vec<u8>> =
        after.keys().filter_map(|k| name_number(k)).collect();
    for k in before.keys() {
        if let Some(m) = name_number(k)
            && !kept_markers.contains(&m)
            && !after.values().any(|s| s.ino == before[k].ino)
        {
            assert!(
                !contains(&raw, &m),
                "{what}: {} of removed {} is still in the image",
                String::from_utf8_lossy(&m),
                String::from_utf8_lossy(k)
            );
        }
    }
    // A removed symlink's name and target are gone too (the target inline in
    // the freed inode or in a freed block, the name from its directory).
    for (k, seen) in &before {
        let name = &k[k.iter().rposition(|&b| b == b'/').unwrap() + 1..];
        let Some(i) = name.strip_prefix(b"XFSNAME-SL") else {
            continue;
        };
        if after.contains_key(k) {
            continue;
        }
        let target = [&b"XFSLINK-"[..], i, b"-"].concat();
        for needle in [name, &target[..]] {
            assert!(
                !contains(&raw, needle),
                "{what}: {} of removed symlink {} is still in the image",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(k)
            );
        }
        assert_eq!(seen.kind, vmscrub::fs::FileKind::Symlink);
    }
    free_space_agrees(&img, &what);
    fill(&img, mount_opts);
    repair_clean(&img, &format!("{what}, after filling the freed space"));
}

/// xfs_db's count of free blocks (`freesp -s`: the free-space trees and the
/// AG free lists) is what the AG headers the editor wrote say.
fn free_space_agrees(img: &Path, what: &str) {
    let o = Command::new("xfs_db")
        .args(["-r", "-c", "freesp -s"])
        .arg(img)
        .output()
        .unwrap();
    let db: u64 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("total free blocks "))
        .unwrap_or_else(|| panic!("{what}: xfs_db freesp: {o:?}"))
        .trim()
        .parse()
        .unwrap();
    let fs = vmscrub_xfs::Xfs::open(FileDisk::open(img).unwrap()).unwrap();
    let ours: u64 = (0..fs.superblock().ag_count)
        .map(|ag| {
            let (agf, _) = fs.ag_headers(ag).unwrap();
            u64::from(agf.free_blocks) + u64::from(agf.fl_count)
        })
        .sum();
    assert_eq!(
        db, ours,
        "{what}: free blocks by xfs_db and by the AG headers"
    );
}

/// The marker of the file at `path` (`.../fN`), if it is one of the numbered files.
fn name_number(path: &[u8]) -> Option<Vec<u8>> {
    let name = &path[path.iter().rposition(|&b| b == b'/')? + 1..];
    let n: usize = std::str::from_utf8(name.strip_prefix(b"f")?)
        .ok()?
        .parse()
        .ok()?;
    Some(marker(n))
}

#[test]
fn random_edits_default_features() {
    for seed in [1, 2, 7, 8] {
        run_case(&[], seed, true, "loop");
    }
}

#[test]
fn random_edits_with_rmapbt() {
    run_case(&["-m", "rmapbt=1"], 3, true, "loop");
}

#[test]
fn random_edits_without_finobt_sparse_or_reflink() {
    run_case(
        &["-m", "finobt=0,reflink=0", "-i", "sparse=0"],
        4,
        false,
        "loop",
    );
}

#[test]
fn random_edits_with_nrext64_and_large_directory_blocks() {
    run_case(&["-i", "nrext64=1", "-n", "size=16384"], 5, true, "loop");
}

#[test]
fn v4_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("v4.img");
    mkfs(&img, &["-m", "crc=0"]);
    let before = std::fs::read(&img).unwrap();
    let e = Editor::open(FileDisk::open_rw(&img).unwrap(), EditorOptions::default())
        .err()
        .expect("v4 opened for editing");
    assert!(e.to_string().contains("version 4"), "{e}");
    assert!(std::fs::read(&img).unwrap() == before);
}

/// A snapshot of a running system: a file deleted while a program still has
/// it open sits on an AGI unlinked list, and the log is dirty. The editor
/// replays the log, frees the orphan as the guest's log recovery would (its
/// content zeroed), and writes a clean log; xfs_repair, xfs_db and the kernel
/// agree, and the orphan's content is gone.
#[test]
fn orphans_of_a_running_system_are_freed() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fs.img");
    mkfs(&img, &[]);
    let mnt = mount_rw(&img, "loop");
    let victim = mnt.path().join("deleted-while-open");
    std::fs::write(&victim, content(999_999, 300_000)).unwrap();
    std::fs::write(mnt.path().join("kept"), content(999_998, 5000)).unwrap();
    let _ = Command::new("sync").status();
    let open = std::fs::File::open(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    let st = Command::new("xfs_io")
        .args(["-x", "-c", "shutdown -f"])
        .arg(mnt.path())
        .status()
        .unwrap();
    assert!(st.success());
    drop(open);
    let st = Command::new("umount").arg(mnt.path()).status().unwrap();
    assert!(st.success());
    let raw = std::fs::read(&img).unwrap();
    assert!(
        contains(&raw, &marker(999_999)),
        "the orphan's content is on disk"
    );
    let ed = Editor::open(FileDisk::open_rw(&img).unwrap(), EditorOptions::default()).unwrap();
    let r = ed.commit().unwrap();
    assert_eq!(r.orphans_freed, 1, "{r:?}");
    repair_clean(&img, "orphan freed");
    free_space_agrees(&img, "orphan freed");
    let raw = std::fs::read(&img).unwrap();
    assert!(
        !contains(&raw, &marker(999_999)),
        "the orphan's content survived"
    );
    let m = Mount::new(&img, "ro,loop");
    let names: Vec<_> = std::fs::read_dir(m.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(
        std::fs::read(m.0.path().join("kept")).unwrap(),
        content(999_998, 5000)
    );
}

/// Rewriting a reflinked file in place would change its other copies: the
/// editor refuses, names why, and the failed operation leaves nothing behind
/// (the commit that follows writes nothing at all).
#[test]
fn rewriting_a_shared_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fs.img");
    mkfs(&img, &[]);
    let mnt = mount_rw(&img, "loop");
    std::fs::write(mnt.path().join("a"), content(1, 20_000)).unwrap();
    let st = Command::new("cp")
        .args(["--reflink=always", "a", "b"])
        .current_dir(mnt.path())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        Command::new("umount")
            .arg(mnt.path())
            .status()
            .unwrap()
            .success()
    );
    let before = std::fs::read(&img).unwrap();
    let mut ed = Editor::open(FileDisk::open_rw(&img).unwrap(), EditorOptions::default()).unwrap();
    let e = ed.rewrite(b"/a", b"short").unwrap_err();
    assert!(e.to_string().contains("shares blocks"), "{e}");
    let r = ed.commit().unwrap();
    assert_eq!(r.blocks_written, 0);
    assert!(
        std::fs::read(&img).unwrap() == before,
        "a refused edit wrote"
    );
}
