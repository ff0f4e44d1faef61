//! `vmscrub scrub` on a Rocky-like guest whose filesystems are all XFS (/boot
//! on a GPT partition, root and /home on LVM), judged by xfsprogs and the
//! kernel: every output XFS volume (extracted at lvm2's own offsets) passes
//! `xfs_repair -n` and `xfs_db check` and mounts read-only with the secrets gone and the rest
//! intact; no planted secret is left anywhere in the raw output, the log
//! included; and the recovery archive gives back exactly what was removed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scrub.rs"]
mod support;
#[path = "xfs_common/mod.rs"]
mod xfs_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::*;
use vmscrub_fixtures::{repo_root, run};
use xfs_common::repair_clean;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Each XFS volume of `disk` in a file of its own: partition 1 by the GPT,
/// the LVs by lvm2's report of where their extents lie.
fn volumes(disk: &Path, dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = vec![("boot".to_string(), extract(disk, 1, dir))];
    let report: Value = serde_json::from_slice(&run(
        "python3",
        &[
            &repo_root().join("scripts/lvm_fixture.py"),
            &"report",
            &disk,
        ],
    ))
    .unwrap();
    let data = std::fs::read(disk).unwrap();
    for lv in ["rl/root", "rl/home"] {
        let mut runs: Vec<(u64, u64, u64)> = report["lv_map"][lv]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let n = |v: &Value| v.as_u64().or_else(|| v.as_str()?.parse().ok()).unwrap();
                (n(&r[0]), n(&r[1]), n(&r[2]))
            })
            .collect();
        runs.sort();
        let mut bytes = vec![];
        for (_, at, len) in runs {
            bytes.extend_from_slice(&data[at as usize..(at + len) as usize]);
        }
        let f = dir.join(lv.replace('/', "-"));
        std::fs::write(&f, bytes).unwrap();
        out.push((lv.to_string(), f));
    }
    out
}

/// The kernel's view of one file on a read-only mount of `img` (None: absent).
fn kernel_read(img: &Path, path: &str) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("mount")
        .args(["-o", "ro,loop", "-t", "xfs"])
        .arg(img)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success(), "the kernel does not mount {}", img.display());
    let r = std::fs::read(dir.path().join(path.trim_start_matches('/'))).ok();
    let _ = Command::new("umount").arg(dir.path()).status();
    r
}

#[test]
fn scrub_cleans_xfs_on_partitions_and_lvm() {
    let img = vmscrub_fixtures::fixture("xfs-rocky");
    let before = std::fs::read(&img).unwrap();
    assert!(contains(&before, b"XFSSECRET-ROOT-HISTORY"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.img");
    let archive = dir.path().join("removed.vsr");
    let report = dir.path().join("report.json");
    let o = vmscrub(&[
        "scrub".as_ref(),
        img.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--recovery".as_ref(),
        archive.as_os_str(),
        "--recipient".as_ref(),
        keys().public().as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read(&img).unwrap() == before, "the input changed");
    // The same scrub into qcow2 holds the same disk, by qemu-img's reading.
    let q = dir.path().join("out.qcow2");
    let oq = vmscrub(&[
        "scrub".as_ref(),
        img.as_os_str(),
        "-O".as_ref(),
        "qcow2".as_ref(),
        "-o".as_ref(),
        q.as_os_str(),
    ]);
    assert_eq!(oq.status.code(), Some(0), "{}", stderr(&oq));
    run("qemu-img", &[&"check", &q]);
    run(
        "qemu-img",
        &[&"compare", &"-f", &"qcow2", &"-F", &"raw", &q, &out],
    );
    let raw = std::fs::read(&out).unwrap();
    for secret in [&b"XFSSECRET-ROOT-HISTORY"[..], b"XFSSECRET-HOME-HISTORY"] {
        assert!(
            !contains(&raw, secret),
            "{} is left in the output",
            String::from_utf8_lossy(secret)
        );
    }
    let vols = volumes(&out, dir.path());
    for (name, f) in &vols {
        repair_clean(f, name);
    }
    let vol = |n: &str| &vols.iter().find(|v| v.0 == n).unwrap().1;
    assert_eq!(kernel_read(vol("rl/root"), "/root/.bash_history"), None);
    assert_eq!(
        kernel_read(vol("rl/root"), "/usr/share/doc/keep.txt").as_deref(),
        Some(&b"XFSKEEP-ROOT nothing secret\n"[..])
    );
    assert_eq!(kernel_read(vol("rl/home"), "/rocky/.bash_history"), None);
    assert_eq!(
        kernel_read(vol("rl/home"), "/rocky/notes.txt").as_deref(),
        Some(&b"XFSKEEP-HOME notes\n"[..])
    );
    assert_eq!(
        kernel_read(vol("boot"), "/grub2/grub.cfg").as_deref(),
        Some(&b"set default=0\n"[..])
    );
    // The recovery archive gives both histories back, byte for byte.
    let target = dir.path().join("recovered");
    recover(
        &archive,
        &keys().private(),
        &["--extract".as_ref(), target.as_os_str()],
    );
    let found: Vec<Vec<u8>> = walkdir(&target)
        .into_iter()
        .filter(|p| p.ends_with(".bash_history"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(
        found.contains(&b"XFSSECRET-ROOT-HISTORY mysql -psecret\n".to_vec())
            && found.contains(&b"XFSSECRET-HOME-HISTORY ssh prod\n".to_vec()),
        "recovered: {found:?}"
    );
}

fn walkdir(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut todo = vec![d.to_path_buf()];
    while let Some(p) = todo.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                todo.push(e);
            } else {
                out.push(e);
            }
        }
    }
    out
}

/// What the XFS editor does not handle is refused before anything is
/// written, with the structure named: here a version 4 filesystem (no
/// metadata checksums), whose free space scrub would otherwise zero.
#[test]
fn scrub_refuses_version_4_xfs_by_name_and_writes_nothing() {
    let img = vmscrub_fixtures::fixture("xfs-v4");
    let before = file_sha(&img);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.img");
    let o = vmscrub(&[
        "scrub".as_ref(),
        img.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--data-volume".as_ref(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("version 4") && err.contains("refuses"),
        "{err}"
    );
    assert!(!out.exists(), "an output was left behind");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert_eq!(file_sha(&img), before, "the input changed");
}
