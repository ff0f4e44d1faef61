//! Every verb sees the journal-replayed state (issue 13 §4). An ext4 whose
//! journal holds a committed, unapplied transaction is built by recipe: the
//! change (a file renamed, its content rewritten, a new file made) is made
//! with debugfs on a copy, every block that differs is logged over the
//! original with debugfs' journal writer (`jo`/`jw`/`jc`), and
//! `needs_recovery` is left set. The oracle is e2fsck replaying the journal on
//! a copy, then debugfs reading the result; the un-replayed image (debugfs
//! without replay) shows the old tree, so the test fails if vmscrub read the
//! stale state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scrub.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::*;
use vmscrub_fixtures::run;

fn debugfs_w(img: &Path, cmds: &str) {
    let f = img.with_extension("cmds");
    std::fs::write(&f, cmds).unwrap();
    run("debugfs", &[&"-w", &"-f", &f, &img]);
}

fn debugfs(img: &Path, req: &str) -> String {
    String::from_utf8_lossy(&run("debugfs", &[&"-R", &req, &img])).into_owned()
}

/// A 4 MiB ext4 (1 KiB blocks) whose journal holds a transaction that renames
/// /etc/old.conf to /etc/new.conf, rewrites it and adds /etc/added.txt.
fn journaled(dir: &Path) -> PathBuf {
    let img = dir.join("fs.img");
    run(
        "mkfs.ext4",
        &[
            &"-q",
            &"-F",
            &"-b",
            &"1024",
            &"-O",
            &"^metadata_csum",
            &img,
            &"4M",
        ],
    );
    let old = dir.join("old");
    std::fs::write(&old, b"setting = before the crash\n".repeat(10)).unwrap();
    debugfs_w(
        &img,
        &format!("mkdir etc\ncd etc\nwrite {} old.conf\n", old.display()),
    );
    fsck_clean(&img, false);
    // The change, made on a copy.
    let changed = dir.join("changed.img");
    std::fs::copy(&img, &changed).unwrap();
    let new = dir.join("new");
    std::fs::write(&new, b"setting = only in the journal\n".repeat(10)).unwrap();
    let blk = debugfs(&changed, "bmap /etc/old.conf 0")
        .trim()
        .parse::<u64>()
        .unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&changed)
            .unwrap();
        let mut b = vec![0u8; 1024];
        let n = b"setting = only in the journal\n".repeat(10);
        b[..n.len()].copy_from_slice(&n);
        f.write_all_at(&b, blk * 1024).unwrap();
    }
    debugfs_w(
        &changed,
        &format!(
            "cd etc\nln old.conf new.conf\nunlink old.conf\nsif new.conf size {}\nwrite {} added.txt\n",
            n_len(),
            new.display()
        ),
    );
    fsck_clean(&changed, false);
    // Every differing block goes into one journal transaction over the original.
    let (a, b) = (
        std::fs::read(&img).unwrap(),
        std::fs::read(&changed).unwrap(),
    );
    let mut blocks = vec![];
    let mut payload = vec![];
    for (i, (x, y)) in a.chunks(1024).zip(b.chunks(1024)).enumerate() {
        if x != y {
            blocks.push(i.to_string());
            payload.extend_from_slice(y);
        }
    }
    assert!(
        blocks.len() >= 3,
        "the change touched {} block(s)",
        blocks.len()
    );
    let p = dir.join("payload");
    std::fs::write(&p, &payload).unwrap();
    debugfs_w(
        &img,
        &format!("jo\njw -b {} {}\njc\n", blocks.join(","), p.display()),
    );
    assert!(
        debugfs(&img, "stats").contains("needs_recovery"),
        "the journal was not left needing recovery"
    );
    img
}

fn n_len() -> usize {
    b"setting = only in the journal\n".len() * 10
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn read_verbs_see_the_replayed_journal() {
    let dir = tempfile::tempdir().unwrap();
    let img = journaled(dir.path());
    // Without replay, the image holds the old tree (the test can fail).
    assert!(debugfs(&img, "ls -l /etc").contains("old.conf"));
    // The oracle: e2fsck replays the journal on a copy.
    let oracle = dir.path().join("oracle.img");
    std::fs::copy(&img, &oracle).unwrap();
    let _ = std::process::Command::new("e2fsck")
        .args(["-fy"])
        .arg(&oracle)
        .output()
        .unwrap();
    fsck_clean(&oracle, false);
    let listed = debugfs(&oracle, "ls -l /etc");
    assert!(
        listed.contains("new.conf") && listed.contains("added.txt"),
        "{listed}"
    );
    assert!(!listed.contains("old.conf"), "{listed}");
    let want_new = run("debugfs", &[&"-R", &"cat /etc/new.conf", &oracle]);
    let want_added = run("debugfs", &[&"-R", &"cat /etc/added.txt", &oracle]);
    assert_eq!(want_new, b"setting = only in the journal\n".repeat(10));

    let before = file_sha(&img);
    let o = vmscrub(&["ls".as_ref(), img.as_os_str(), "/etc".as_ref()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ls = stdout(&o);
    assert!(ls.contains("new.conf") && ls.contains("added.txt"), "{ls}");
    assert!(!ls.contains("old.conf"), "{ls}");
    assert!(
        stderr(&o).contains("replayed"),
        "no note of the replay: {}",
        stderr(&o)
    );
    for (path, want) in [
        ("/etc/new.conf", &want_new),
        ("/etc/added.txt", &want_added),
    ] {
        let o = vmscrub(&["cat".as_ref(), img.as_os_str(), path.as_ref()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(&o.stdout, want, "{path}");
    }
    // scan and inspect read the same tree.
    let o = vmscrub(&[
        "scan".as_ref(),
        "--data-volume".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        img.as_os_str(),
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let o = vmscrub(&["inspect".as_ref(), img.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(file_sha(&img), before, "the input changed");
}

/// A journal that cannot be replayed (its superblock zeroed): the read verbs
/// show the on-disk state and warn, naming why.
#[test]
fn an_unreplayable_journal_is_read_as_is_with_a_warning() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let img = journaled(dir.path());
    let jblock: u64 = debugfs(&img, "bmap <8> 0").trim().parse().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&[0u8; 1024], jblock * 1024).unwrap();
    drop(f);
    let o = vmscrub(&["ls".as_ref(), img.as_os_str(), "/etc".as_ref()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("old.conf"), "{}", stdout(&o));
    let err = stderr(&o);
    for n in ["cannot be replayed", "journal superblock", "on-disk state"] {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
}
