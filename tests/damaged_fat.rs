//! Damaged FAT volumes (issue 13): free clusters are zeroed only if every FAT
//! copy and the directory tree agree. Each volume is made with mkfs.fat and
//! mtools, then damaged with a targeted byte edit of the FAT; `fsck.fat -n`
//! judges that the damage is real (and of the kind named), and the scrub must
//! refuse (exit 3) naming the clusters, writing nothing and leaving the input
//! as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scrub.rs"]
mod support;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;
use vmscrub_fixtures::run;

/// A 16 MiB FAT16 with two files whose first bytes are markers.
fn volume(dir: &Path) -> PathBuf {
    let img = dir.join("fat.img");
    run("mkfs.fat", &[&"-F", &"16", &"-C", &img, &"16384"]);
    for (name, marker) in [("A.TXT", "AAAA-MARKER"), ("B.TXT", "BBBB-MARKER")] {
        let f = dir.join(name);
        std::fs::write(&f, format!("{marker}{}", "x".repeat(5000))).unwrap();
        let o = Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&img)
            .arg(&f)
            .arg(format!("::{name}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(fsck(&img).0, Some(0), "the fresh volume is not clean");
    img
}

/// Geometry from the boot sector: (FAT offset, FAT bytes, copies, data offset, cluster bytes).
fn geometry(img: &Path) -> (u64, u64, u64, u64, u64) {
    let b = std::fs::read(img).unwrap();
    let u16at = |o: usize| u64::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let sec = u16at(11);
    let spc = u64::from(b[13]);
    let fat = u16at(14) * sec;
    let fatsz = u16at(22) * sec;
    let nfats = u64::from(b[16]);
    let root = (u16at(17) * 32).div_ceil(sec) * sec;
    (fat, fatsz, nfats, fat + nfats * fatsz + root, spc * sec)
}

/// The first cluster of the file whose content starts with `marker`.
fn cluster_of(img: &Path, marker: &[u8]) -> u64 {
    let (_, _, _, data, cs) = geometry(img);
    let b = std::fs::read(img).unwrap();
    let at = (data as usize..b.len())
        .step_by(cs as usize)
        .find(|&o| b[o..].starts_with(marker))
        .unwrap();
    (at as u64 - data) / cs + 2
}

/// Sets FAT16 entry `cluster` to `value` in the copies listed.
fn set_entry(img: &Path, copies: &[u64], cluster: u64, value: u16) {
    let (fat, fatsz, _, _, _) = geometry(img);
    let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    for c in copies {
        f.write_all_at(&value.to_le_bytes(), fat + c * fatsz + 2 * cluster)
            .unwrap();
    }
}

/// `fsck.fat -n`: its exit code and what it said.
fn fsck(img: &Path) -> (Option<i32>, String) {
    let o = Command::new("fsck.fat")
        .arg("-n")
        .arg(img)
        .output()
        .unwrap();
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Scrubs `img`; returns the exit code and stderr, checking nothing was
/// written and the input did not change.
fn scrub(img: &Path) -> (Option<i32>, String) {
    let before = file_sha(img);
    let out = img.with_extension("out");
    let o = vmscrub(&[
        "scrub".as_ref(),
        "-q".as_ref(),
        "--data-volume".as_ref(),
        img.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(file_sha(img), before, "the input changed");
    if o.status.code() != Some(0) {
        assert!(!out.exists(), "a refused scrub left its output");
    }
    (o.status.code(), stderr(&o))
}

fn expect_refused(img: &Path, needles: &[&str]) {
    let (code, err) = scrub(img);
    assert_eq!(code, Some(3), "{err}");
    for n in needles
        .iter()
        .chain(&["fsck.fat on a copy", "nothing was written"])
    {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
}

#[test]
fn a_healthy_volume_scrubs() {
    let dir = tempfile::tempdir().unwrap();
    let img = volume(dir.path());
    let (code, err) = scrub(&img);
    assert_eq!(code, Some(0), "{err}");
    fsck_clean(&img.with_extension("out"), true);
}

/// A free cluster marked end-of-chain in the second copy only.
#[test]
fn fat_copies_that_disagree_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let img = volume(dir.path());
    set_entry(&img, &[1], 1000, 0xFFFF);
    let (code, said) = fsck(&img);
    assert_ne!(code, Some(0));
    assert!(said.contains("FATs differ"), "{said}");
    expect_refused(&img, &["FAT copy 1 disagrees with copy 0 on clusters 1000"]);
}

/// Two free clusters chained in every copy that no file reaches.
#[test]
fn lost_chains_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let img = volume(dir.path());
    set_entry(&img, &[0, 1], 1000, 1001);
    set_entry(&img, &[0, 1], 1001, 0xFFFF);
    let (code, said) = fsck(&img);
    assert_ne!(code, Some(0));
    assert!(said.to_lowercase().contains("unused cluster"), "{said}");
    expect_refused(&img, &["clusters 1000-1001 (2 in all) are allocated"]);
}

/// B.TXT's directory entry pointed at A.TXT's first cluster: both files claim
/// A's clusters (and B's own become lost).
#[test]
fn cross_linked_chains_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let img = volume(dir.path());
    let a = cluster_of(&img, b"AAAA-MARKER");
    let (fat, fatsz, nfats, _, _) = geometry(&img);
    let root = fat + nfats * fatsz;
    let b = std::fs::read(&img).unwrap();
    let slot = (0..512u64)
        .map(|i| root + i * 32)
        .find(|&o| &b[o as usize..o as usize + 11] == b"B       TXT")
        .unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&(a as u16).to_le_bytes(), slot + 26)
        .unwrap();
    drop(f);
    let (code, said) = fsck(&img);
    assert_ne!(code, Some(0));
    assert!(said.contains("share clusters"), "{said}");
    expect_refused(
        &img,
        &["cross-linked", "/A.TXT", "/B.TXT", &format!("clusters {a}")],
    );
}
