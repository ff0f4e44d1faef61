//! XFS through the CLI, on a Rocky-like guest (fixtures/xfs.toml: /boot XFS on
//! a partition named by UUID=, root and home XFS on LVM named by /dev/mapper
//! and LABEL=): `inspect` shows the filesystems, their features and the mount
//! view; `ls`/`cat` read through the guest view (judged against the kernel's
//! read-only mount of the same LVs' images); `scan` finds the planted
//! histories (`scrub` is tests/xfs_scrub.rs). A dirty log is
//! reported by `inspect` and warned about by the read verbs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::vmscrub;
use serde_json::Value;

fn ok(o: &std::process::Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn guest_on_xfs_and_lvm_is_inspected_listed_read_and_scanned() {
    let img = vmscrub_fixtures::fixture("xfs-rocky");
    let i = img.to_str().unwrap();
    let j: Value = serde_json::from_str(&ok(&vmscrub(["inspect", "--format", "json", i]))).unwrap();
    let os = &j["os"];
    assert_eq!(os["id"], "rocky");
    assert_eq!(os["root_lv"], "rl/root");
    let mounts: Vec<(String, Value, Value)> = os["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["path"].as_str().unwrap().into(),
                m["lv"].clone(),
                m["partition"].clone(),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("/".into(), "rl/root".into(), Value::Null),
            ("/boot".into(), Value::Null, 1.into()),
            ("/home".into(), "rl/home".into(), Value::Null),
        ]
    );
    let boot = &j["partitions"][0]["filesystem"];
    assert_eq!(boot["type"], "xfs");
    assert_eq!(boot["uuid"], "5b0a7c3e-1111-4222-8333-444455556666");
    assert_eq!(boot["readable"], true);
    assert_eq!(boot["needs_recovery"], false);
    let feats: Vec<&str> = boot["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        feats.contains(&"crc") && feats.contains(&"ftype"),
        "{feats:?}"
    );
    // The guest view crosses from the root LV into /home and /boot.
    assert_eq!(
        ok(&vmscrub(["cat", i, "/root/.bash_history"])),
        "XFSSECRET-ROOT-HISTORY mysql -psecret\n"
    );
    assert_eq!(
        ok(&vmscrub(["cat", i, "/home/rocky/notes.txt"])),
        "XFSKEEP-HOME notes\n"
    );
    assert_eq!(
        ok(&vmscrub(["cat", i, "/boot/grub2/grub.cfg"])),
        "set default=0\n"
    );
    let ls = ok(&vmscrub(["ls", i, "/home/rocky"]));
    assert!(
        ls.contains(".bash_history") && ls.contains("notes.txt"),
        "{ls}"
    );
    // scan finds both histories, on the root LV and on the home LV.
    let s: Value = serde_json::from_str(&ok(&vmscrub(["scan", "--format", "json", i]))).unwrap();
    let paths: Vec<&str> = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["operation"] == "bash-history")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/root/.bash_history", "/home/rocky/.bash_history"]);
}

#[test]
fn dirty_log_is_reported_and_warned_about() {
    let img = vmscrub_fixtures::fixture("xfs-dirty");
    let i = img.to_str().unwrap();
    let j: Value = serde_json::from_str(&ok(&vmscrub(["inspect", "--format", "json", i]))).unwrap();
    assert_eq!(
        j["partitions"][0]["filesystem"]["needs_recovery"], true,
        "{j}"
    );
    assert_eq!(
        j["partitions"][0]["filesystem"]["log_replay"], "replayed (2 transactions)",
        "{j}"
    );
    let text = ok(&vmscrub(["inspect", i]));
    assert!(
        text.contains("log needs recovery: replayed (2 transactions) in memory"),
        "{text}"
    );
    // The replayed state is listed (the file and directory only the log
    // holds), with a note saying so.
    let o = vmscrub(["ls", i, "/d"]);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the XFS log needed recovery: 2 committed transaction(s) replayed"),
        "{err}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(" g\n") && out.contains(" new\n"), "{out}");
    // scan says it too, as a guest-view note (as for a replayed ext4 journal).
    let s: Value = serde_json::from_str(&ok(&vmscrub([
        "scan",
        "--format",
        "json",
        "--data-volume",
        i,
    ])))
    .unwrap();
    assert!(
        s["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["kind"] == "guest-view"
                && w["message"]
                    .as_str()
                    .unwrap()
                    .contains("the XFS log needed recovery: 2 committed transaction(s) replayed")),
        "{s}"
    );
    let clean = vmscrub_fixtures::fixture("xfs-rich");
    let j: Value = serde_json::from_str(&ok(&vmscrub([
        "inspect",
        "--format",
        "json",
        clean.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(
        j["partitions"][0]["filesystem"]["needs_recovery"], false,
        "{j}"
    );
}

/// A realtime device and an external log live outside the image: refused by
/// name (exit 3), never read half. Made here with mkfs.xfs (two files each).
#[test]
fn external_log_and_realtime_device_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (opt, file, want) in [
        ("-l", "logdev", "an external log device (logdev)"),
        ("-r", "rtdev", "a realtime device (rtdev)"),
    ] {
        let data = d.join(format!("{file}-data.img"));
        let other = d.join(format!("{file}.img"));
        for f in [&data, &other] {
            std::fs::File::create(f).unwrap().set_len(64 << 20).unwrap();
        }
        let st = std::process::Command::new("mkfs.xfs")
            .args(["-q", "-f", opt, &format!("{file}={}", other.display())])
            .arg(&data)
            // fstests' override of mkfs.xfs's 300 MB minimum.
            .envs([("TEST_DIR", "1"), ("TEST_DEV", "1"), ("QA_CHECK_FS", "1")])
            .status()
            .unwrap();
        assert!(st.success(), "mkfs.xfs {opt} {file}=");
        let o = vmscrub(["ls".as_ref(), data.as_os_str(), "/".as_ref()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(
            err.contains(&format!("unsupported XFS feature: {want}")),
            "{err}"
        );
    }
}
