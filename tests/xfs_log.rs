//! XFS log replay judged by the kernel's own recovery: each dirty-log fixture
//! (fixtures/xfs.toml: `shutdown = true`) is copied, the copy mounted
//! read-write through a loop device (the kernel replays its log) and
//! unmounted, then mounted read-only; every path's kind, size, mode, owners,
//! link count, inode number, times, link target, xattrs and content digest
//! must equal what vmscrub reads from the ORIGINAL image through its in-memory
//! replay. The on-disk state (no replay) must differ, so the comparison cannot
//! pass by accident, and the original image must be unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod xfs_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use vmscrub::fs::xfs::{XfsFs, replayed_view};
use vmscrub::journal::View;
use vmscrub_blockdev::FileDisk;
use xfs_common::{Mount, Seen, fs_tree, kernel_tree, our_tree};

fn digest(p: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(p).unwrap()).into()
}

/// A copy of `img` recovered by the kernel (read-write mount, unmount).
fn kernel_replayed(img: &Path, dir: &Path) -> PathBuf {
    let copy = dir.join("copy.img");
    std::fs::copy(img, &copy).unwrap();
    let m = Mount::new(&copy, "loop");
    drop(m);
    copy
}

/// What vmscrub reads from `img` through its log replay, and the note.
fn ours_replayed(img: &Path) -> (BTreeMap<Vec<u8>, Seen>, String) {
    match replayed_view(std::sync::Arc::new(FileDisk::open(img).unwrap())) {
        View::Replayed(dev, note) => (fs_tree(&XfsFs::open(dev).unwrap()), note),
        View::AsIs(_) => panic!("{}: nothing replayed", img.display()),
        View::Unreplayable(_, why) => panic!("{}: {why}", img.display()),
    }
}

fn same_trees(ours: &BTreeMap<Vec<u8>, Seen>, theirs: &BTreeMap<Vec<u8>, Seen>, what: &str) {
    let only_ours: Vec<_> = ours
        .keys()
        .filter(|k| !theirs.contains_key(*k))
        .map(|p| String::from_utf8_lossy(p))
        .take(5)
        .collect();
    let only_theirs: Vec<_> = theirs
        .keys()
        .filter(|k| !ours.contains_key(*k))
        .map(|p| String::from_utf8_lossy(p))
        .take(5)
        .collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{what}: paths only we see: {only_ours:?}; only the kernel: {only_theirs:?}"
    );
    for (path, k) in theirs {
        assert_eq!(&ours[path], k, "{what}: {}", String::from_utf8_lossy(path));
    }
}

fn xfs_db(img: &Path, cmds: &[&str]) -> String {
    let mut c = Command::new("xfs_db");
    c.arg("-r");
    for x in cmds {
        c.args(["-c", x]);
    }
    let o = c.arg(img).output().unwrap();
    assert!(o.status.success(), "xfs_db {cmds:?}");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn dirty_logs_replay_as_the_kernel_replays_them() {
    for name in ["xfs-dirty", "xfs-dirty-mix"] {
        let img = vmscrub_fixtures::fixture(name);
        let before = digest(&img);
        let (ours, note) = ours_replayed(&img);
        assert!(note.contains("committed transaction(s) replayed"), "{note}");
        let dir = tempfile::tempdir().unwrap();
        let copy = kernel_replayed(&img, dir.path());
        let theirs = {
            let m = Mount::new(&copy, "ro,loop");
            kernel_tree(m.0.path())
        };
        same_trees(&ours, &theirs, name);
        let stale = our_tree(&img);
        assert!(
            stale != theirs,
            "{name}: the on-disk state already is the recovered one"
        );
        assert_eq!(digest(&img), before, "{name}: the image changed");
        if name == "xfs-dirty-mix" {
            // The replay rebuilt the forms the fixture is for.
            let fmt = |p: &str| xfs_db(&copy, &[&format!("path {p}"), "print core.format"]);
            assert!(fmt("/new/grown").contains("btree"), "bmap B+tree root");
            let sub: &[u8] = b"/new/sub";
            assert!(
                stale.get(sub) != theirs.get(sub),
                "the directory grown in the log"
            );
            assert!(ours.len() > 300, "{} paths", ours.len());
        }
    }
}
