//! Damaged images (issue 13), each made by recipe with e2fsprogs under the
//! conditions of one of its test images. Free space by every witness: a scrub
//! never zeroes a block that the bitmaps call free while a live file owns it. The damaged images are made by
//! recipe with e2fsprogs (the conditions of its `f_bitmaps` and
//! `f_uninit_set_inode_not_set` test images); e2fsck judges that the damage is
//! real, debugfs that the scrub left the input alone and wrote nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scrub.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::*;
use vmscrub_fixtures::run;

/// A 4 MiB ext4 (1 KiB blocks, 1 MiB groups, no flex_bg so each group holds
/// only its own metadata; mke2fs puts the journal in group 2) with a 2.5 MiB
/// file spanning groups 0, 1 and 3 and a directory of small files.
fn populated(dir: &Path) -> PathBuf {
    let img = dir.join("fs.img");
    run(
        "mkfs.ext4",
        &[
            &"-q",
            &"-F",
            &"-b",
            &"1024",
            &"-g",
            &"1024",
            &"-O",
            &"^flex_bg,^resize_inode",
            &img,
            &"4M",
        ],
    );
    let big = dir.join("big");
    let data: Vec<u8> = (0..2_621_440u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&big, data).unwrap();
    let small = dir.join("small");
    std::fs::write(&small, b"a small file that must survive\n".repeat(60)).unwrap();
    let cmds = format!(
        "write {} big\nmkdir docs\ncd docs\nwrite {} one\nwrite {} two\n",
        big.display(),
        small.display(),
        small.display()
    );
    debugfs_w(&img, &cmds);
    fsck_clean(&img, false);
    img
}

/// Runs debugfs -w with commands from a file.
fn debugfs_w(img: &Path, cmds: &str) {
    let f = img.with_extension("cmds");
    std::fs::write(&f, cmds).unwrap();
    run("debugfs", &[&"-w", &"-f", &f, &img]);
}

/// The physical blocks of `path` as debugfs lists them.
fn blocks_of(img: &Path, path: &str) -> Vec<u64> {
    let out = run("debugfs", &[&"-R", &format!("blocks {path}"), &img]);
    String::from_utf8(out)
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

/// e2fsck on the damaged image finds the bitmap wrong (so the damage is real).
fn assert_e2fsck_objects(img: &Path) {
    let o = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(img)
        .output()
        .unwrap();
    assert!(!o.status.success(), "e2fsck found nothing wrong");
}

/// Scrubs `img` and expects the refusal: exit 3, the message naming `needle`
/// (group and blocks), the hint, no output, the input unchanged.
fn expect_refusal(img: &Path, needles: &[&str]) {
    let before = file_sha(img);
    let out = img.with_extension("out");
    for extra in [&[][..], &["--allow-unreadable"][..]] {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "scrub".as_ref(),
            "--data-volume".as_ref(),
            "-q".as_ref(),
            img.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ];
        args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
        let o = vmscrub(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{err}");
        for n in needles.iter().chain(&["e2fsck", "nothing was written"]) {
            assert!(err.contains(n), "expected {n:?} in:\n{err}");
        }
        assert!(!out.exists(), "an output was left");
    }
    assert_eq!(file_sha(img), before, "the input changed");
}

/// The stderr of a scrub of `img` (its output discarded).
fn scrub_stderr(img: &Path) -> String {
    let out = img.with_extension("out2");
    let o = vmscrub(&[
        "scrub".as_ref(),
        "--data-volume".as_ref(),
        "-q".as_ref(),
        img.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    stderr(&o)
}

/// The undamaged image scrubs (exit 0) and e2fsck finds the output clean: the
/// witnesses agree on a healthy filesystem.
#[test]
fn a_healthy_filesystem_scrubs() {
    let dir = tempfile::tempdir().unwrap();
    let img = populated(dir.path());
    let out = dir.path().join("o.img");
    let o = vmscrub(&[
        "scrub".as_ref(),
        "--data-volume".as_ref(),
        "-q".as_ref(),
        img.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    fsck_clean(&out, false);
    let a = dump_ext(&img, dir.path());
    let b = dump_ext(&out, dir.path());
    assert_trees_eq(&a.tree, &b.tree, "scrubbed healthy filesystem");
}

/// `f_bitmaps`: live blocks (a directory's and a file's) marked free in the
/// bitmap. Zeroing them would destroy the directory; the scrub refuses.
#[test]
fn f_bitmaps_live_blocks_marked_free_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let img = populated(dir.path());
    let d = blocks_of(&img, "/docs");
    let f = blocks_of(&img, "/docs/one");
    debugfs_w(&img, &format!("freeb {}\nfreeb {}\n", d[0], f[0]));
    assert_e2fsck_objects(&img);
    let g = (d[0] - 1) / 1024;
    expect_refusal(&img, &[&format!("group {g}"), &d[0].to_string()]);
}

/// `f_uninit_set_inode_not_set`: a group flagged BLOCK_UNINIT (its bitmap
/// computed from the layout, all data blocks free) while a file's data lives
/// in it. The kernel's reading of the flag says free; the inode says in use.
#[test]
fn f_uninit_block_uninit_group_with_live_data_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let img = populated(dir.path());
    let big = blocks_of(&img, "/big");
    let in_g3: Vec<u64> = big
        .iter()
        .copied()
        .filter(|b| (3073..4096).contains(b))
        .collect();
    assert!(!in_g3.is_empty(), "the recipe put no data in group 3");
    debugfs_w(&img, "set_bg 3 flags 3\nset_bg 3 checksum calc\n");
    assert_e2fsck_objects(&img);
    // The message names the group and the first range it holds (from the
    // journal's tail in group 3 to the file's and the directory's blocks).
    expect_refusal(&img, &["group 3 (flagged BLOCK_UNINIT) blocks "]);
    let err = scrub_stderr(&img);
    let first = err
        .split("group 3 (flagged BLOCK_UNINIT) blocks ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit() && c != '-').next())
        .unwrap()
        .to_string();
    let (a, b) = first.split_once('-').unwrap();
    let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
    assert!(
        a <= in_g3[0] && *in_g3.last().unwrap() <= b,
        "the named range {first} does not cover /big's blocks in group 3"
    );
}

/// A journal that needs recovery and cannot be replayed (its superblock
/// zeroed; e2fsck calls it corrupt): kept as it is, the first mount of the
/// output would replay it over the scrub's edits, so the scrub refuses and
/// says why.
#[test]
fn an_unreplayable_journal_refuses() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let img = populated(dir.path());
    let jblock: u64 = String::from_utf8(run("debugfs", &[&"-R", &"bmap <8> 0", &img]))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    debugfs_w(&img, "feature needs_recovery\n");
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&[0u8; 1024], jblock * 1024).unwrap();
    drop(f);
    assert_e2fsck_objects(&img);
    let before = file_sha(&img);
    let out = img.with_extension("out");
    let o = vmscrub(&[
        "scrub".as_ref(),
        "--data-volume".as_ref(),
        "-q".as_ref(),
        img.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    for n in [
        "journal needs recovery and cannot be replayed",
        "journal superblock",
        "nothing was written",
    ] {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
    assert!(!out.exists());
    assert_eq!(file_sha(&img), before, "the input changed");
}

/// `f_dup_de`: an ext2 at byte 0 whose boot block holds a boot loader with the
/// 0x55AA signature (and no partitions) is read as the filesystem it is, not as
/// an empty MBR disk; debugfs judges what is in it.
#[test]
fn a_boot_loader_in_the_boot_block_is_not_an_mbr() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ext2.img");
    run("mkfs.ext2", &[&"-q", &"-F", &"-b", &"1024", &img, &"2M"]);
    let hello = dir.path().join("h");
    std::fs::write(&hello, b"hello\n").unwrap();
    debugfs_w(&img, &format!("write {} hello.txt\n", hello.display()));
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    let mut boot = vec![0xEB, 0x48, 0x90];
    boot.extend(b"boot loader code ".repeat(20));
    f.write_all_at(&boot, 0).unwrap();
    f.write_all_at(&[0x55, 0xAA], 510).unwrap();
    drop(f);
    fsck_clean(&img, false);
    let listed = String::from_utf8(run("debugfs", &[&"-R", &"ls -l /", &img])).unwrap();
    assert!(listed.contains("hello.txt"));
    let o = vmscrub(&["ls".as_ref(), img.as_os_str(), "/".as_ref()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        out.contains("hello.txt") && out.contains("lost+found"),
        "{out}"
    );
}

/// `f_zero_super`: an ext4 whose primary superblock is zeroed is read through
/// group 1's backup superblock, as e2fsck reads it; debugfs pointed at the same
/// backup (`-s`/`-b`) judges what vmscrub lists and reads. Scrub refuses it:
/// the input stays as it was and nothing is written.
#[test]
fn a_zeroed_primary_superblock_is_read_through_its_backup() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fs.img");
    // 1 KiB blocks and the default 8192-block groups: group 1's backup at 8193.
    run("mkfs.ext4", &[&"-q", &"-F", &"-b", &"1024", &img, &"24M"]);
    let data = dir.path().join("data");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 241) as u8).collect();
    std::fs::write(&data, &content).unwrap();
    debugfs_w(
        &img,
        &format!("mkdir etc\ncd etc\nwrite {} payload.bin\n", data.display()),
    );
    fsck_clean(&img, false);
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&[0u8; 1024], 1024).unwrap();
    drop(f);
    let e2fsck = std::process::Command::new("e2fsck")
        .args(["-fn"])
        .arg(&img)
        .output()
        .unwrap();
    assert_ne!(e2fsck.status.code(), Some(0), "the damage is real");
    // -c: the backup's bitmap checksums are as stale as its counters.
    let backup = |req: &str| {
        run(
            "debugfs",
            &[&"-c", &"-s", &"8193", &"-b", &"1024", &"-R", &req, &img],
        )
    };
    assert!(
        backup("cat /etc/payload.bin") == content,
        "debugfs reads the backup"
    );

    let o = vmscrub(&["cat".as_ref(), img.as_os_str(), "/etc/payload.bin".as_ref()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout == content, "vmscrub reads what debugfs reads");
    assert!(
        stderr(&o).contains("read through the backup"),
        "the user is told: {}",
        stderr(&o)
    );
    let listed = String::from_utf8(backup("ls -p /etc")).unwrap();
    let o = vmscrub(&["ls".as_ref(), img.as_os_str(), "/etc".as_ref()]);
    assert!(listed.contains("/payload.bin/300000/"), "{listed}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("payload.bin"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    let before = file_sha(&img);
    let out = dir.path().join("out.img");
    let o = vmscrub(&[
        "scrub".as_ref(),
        "-q".as_ref(),
        img.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--data-volume".as_ref(),
        "--allow-unreadable".as_ref(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    for n in [
        "primary superblock is damaged",
        "e2fsck -b 8193 -B 1024",
        "nothing was written",
    ] {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
    assert!(!out.exists());
    assert_eq!(file_sha(&img), before, "the input changed");
}
