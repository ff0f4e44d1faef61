//! XFS log replay judged by the kernel's own recovery: each dirty-log fixture
//! (fixtures/xfs.toml: `shutdown = true`) is copied, the copy mounted
//! read-write through a loop device (the kernel replays its log) and
//! unmounted, then mounted read-only; every path's kind, size, mode, owners,
//! link count, inode number, times, link target, xattrs and content digest
//! must equal what vmscrub reads from the ORIGINAL image through its in-memory
//! replay. The on-disk state (no replay) must differ, so the comparison cannot
//! pass by accident, and the original image must be unchanged. Mounts use
//! `nouuid`: the tests run in parallel on copies of the same filesystems.

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
    let m = Mount::new(&copy, "loop,nouuid");
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
    for name in [
        "xfs-dirty",
        "xfs-dirty-mix",
        "xfs-dirty-features",
        "xfs-dirty-wrapped",
    ] {
        let img = vmscrub_fixtures::fixture(name);
        let before = digest(&img);
        let (ours, note) = ours_replayed(&img);
        assert!(note.contains("committed transaction(s) replayed"), "{note}");
        let dir = tempfile::tempdir().unwrap();
        let copy = kernel_replayed(&img, dir.path());
        let theirs = {
            let m = Mount::new(&copy, "ro,loop,nouuid");
            kernel_tree(m.0.path())
        };
        same_trees(&ours, &theirs, name);
        // The on-disk state without the log may not even be consistent (a
        // directory naming an inode the log initialises): unreadable is
        // different too.
        let stale = std::panic::catch_unwind(|| our_tree(&img)).ok();
        assert!(
            stale.as_ref() != Some(&theirs),
            "{name}: the on-disk state already is the recovered one"
        );
        assert_eq!(digest(&img), before, "{name}: the image changed");
        if name == "xfs-dirty-mix" {
            // The replay rebuilt the forms the fixture is for.
            let fmt = |p: &str| xfs_db(&copy, &[&format!("path {p}"), "print core.format"]);
            assert!(fmt("/new/grown").contains("btree"), "bmap B+tree root");
            let sub: &[u8] = b"/new/sub";
            assert!(
                stale.as_ref().and_then(|t| t.get(sub)) != theirs.get(sub),
                "the directory grown in the log"
            );
            assert!(ours.len() > 300, "{} paths", ours.len());
        }
    }
}

fn vmscrub<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(args: I) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args)
        .output()
        .unwrap()
}

/// A damaged log (a byte of the last record flipped, so its CRC fails) is
/// not replayed: the verbs say why and read the on-disk state.
#[test]
fn a_damaged_log_is_not_replayed_and_the_verbs_say_why() {
    let img = vmscrub_fixtures::fixture("xfs-dirty");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.img");
    std::fs::copy(&img, &bad).unwrap();
    let (start, head) = {
        let fs = vmscrub_xfs::Xfs::open(FileDisk::open(&img).unwrap()).unwrap();
        let sb = fs.superblock();
        let vmscrub_xfs::LogState::Dirty { head, .. } = fs.log_state().unwrap() else {
            panic!("clean")
        };
        (sb.fsb_to_byte(sb.log_start).unwrap(), head)
    };
    let mut bytes = std::fs::read(&bad).unwrap();
    let last = (0..head)
        .rev()
        .map(|bb| (start + bb * 512) as usize)
        .find(|&at| bytes[at..at + 4] == [0xfe, 0xed, 0xba, 0xbe])
        .unwrap();
    bytes[last + 512 + 40] ^= 0x10;
    std::fs::write(&bad, &bytes).unwrap();
    let b = bad.to_str().unwrap();
    let o = vmscrub(["ls", b, "/"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("the XFS log needs recovery")
            && err.contains("cannot be replayed: XFS log record checksum mismatch"),
        "{err}"
    );
    let o = vmscrub(["inspect", b]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("LOG NEEDS RECOVERY, not replayed (XFS log record checksum mismatch"),
        "{text}"
    );
    // What is read is the on-disk state: the kernel's, told not to recover.
    let fs = match replayed_view(std::sync::Arc::new(FileDisk::open(&bad).unwrap())) {
        View::Unreplayable(dev, _) => XfsFs::open(dev).unwrap(),
        _ => panic!("the damaged log was replayed"),
    };
    let theirs = {
        let m = Mount::new(&bad, "ro,loop,norecovery,nouuid");
        kernel_tree(m.0.path())
    };
    same_trees(&fs_tree(&fs), &theirs, "damaged log");
}
