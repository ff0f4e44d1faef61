//! `vmscrub operations` and `vmscrub scan` through the binary: exit codes,
//! formats, selection flags, rule files. Guests are mostly unpacked root
//! directories; images are covered end to end in `tests/e2e_scan.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn vmscrub(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args)
        .output()
        .unwrap()
}

fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn guest() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    put(r, "etc/os-release", b"ID=ubuntu\nID_LIKE=debian\n");
    put(
        r,
        "etc/passwd",
        b"root:x:0:0::/root:/bin/bash\ndeploy:x:1000:1000::/srv/deploy:/bin/bash\n",
    );
    put(r, "etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
    put(r, "etc/ssh/ssh_host_ed25519_key", b"k");
    put(r, "srv/deploy/.ssh/authorized_keys", b"ssh-ed25519 AAAA");
    put(r, "srv/deploy/.app/token", b"t");
    put(r, "root/.bash_history", b"ls\n");
    put(r, "tmp/evil\n\x1b[2Jname", b"x");
    put(r, "usr/lib/systemd/systemd", b"");
    t
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ops(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["operation"].as_str().unwrap(),
                f["path"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn operations_lists_the_catalogue() {
    let o = vmscrub(&["operations"]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    let line = |n: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(n))
            .unwrap()
            .to_string()
    };
    assert!(line("logfiles").contains(" * "));
    assert!(!line("user-account").contains(" * "));
    assert!(!line("fs-uuids").contains(" * "));
    assert_eq!(text.lines().count(), 96);
    let o = vmscrub(&["operations", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 96);
    let o = vmscrub(&["operations", "--verbose"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("rewrite: /etc/machine-id"));
    assert!(text.contains("replace with: uninitialized\\n"));
}

#[test]
fn scan_exit_codes() {
    let g = guest();
    let dir = g.path().to_str().unwrap();
    assert_eq!(vmscrub(&["scan", dir]).status.code(), Some(0));
    assert_eq!(
        vmscrub(&["scan", dir, "--fail-on", "finding"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        vmscrub(&["scan", dir, "--fail-on", "machine-id"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        vmscrub(&["scan", dir, "--fail-on", "abrt-data"])
            .status
            .code(),
        Some(0)
    );
    let o = vmscrub(&["scan", dir, "--fail-on", "machin-id"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`machine-id`"));
    let o = vmscrub(&["scan", dir, "--operations", "defaults,-logfile"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean `logfiles`"));
    assert_eq!(
        vmscrub(&["scan", dir, "--enable", "a", "--operations", "b"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        vmscrub(&["scan", "/nonexistent/image.qcow2"]).status.code(),
        Some(3)
    );
    // A file with no filesystem: an error, never a clean report.
    let img = g.path().join("etc/machine-id");
    let o = vmscrub(&["scan", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no filesystem of this image could be read")
    );
}

#[test]
fn selection_keep_and_output_file() {
    let g = guest();
    let dir = g.path().to_str().unwrap();
    let out = g.path().join("report.json");
    let o = vmscrub(&[
        "scan",
        dir,
        "--format",
        "json",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["schema_version"], 1);
    let all = ops(&v);
    assert!(
        all.contains(&"ssh-hostkeys /etc/ssh/ssh_host_ed25519_key".to_string()),
        "{all:?}"
    );
    assert!(
        all.contains(&"ssh-authorized-keys /srv/deploy/.ssh/authorized_keys".to_string()),
        "{all:?}"
    );
    assert!(all.contains(&"machine-id /etc/machine-id".to_string()));
    let o = vmscrub(&[
        "scan",
        dir,
        "--format",
        "json",
        "--operations",
        "defaults,-ssh-hostkeys,+user-account",
    ]);
    let v = json(&o);
    let got = ops(&v);
    assert!(!got.iter().any(|s| s.starts_with("ssh-hostkeys ")));
    assert!(
        got.contains(&"user-account /srv/deploy".to_string()),
        "{got:?}"
    );
    assert!(
        !v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["kind"] == "ssh-host-keys")
    );
    let o = vmscrub(&[
        "scan",
        dir,
        "--format",
        "json",
        "--enable",
        "ssh-hostkeys,bash-history",
        "--keep",
        "/etc/ssh/*",
    ]);
    assert_eq!(ops(&json(&o)), ["bash-history /root/.bash_history"]);
}

#[test]
fn rule_files_add_operations_and_report_errors_by_line() {
    let g = guest();
    let dir = g.path().to_str().unwrap();
    let rules = g.path().join("extra.toml");
    fs::write(
        &rules,
        "[[operation]]\nname = \"app-token\"\nheading = \"Remove the app token\"\ndefault = true\n\n  [[operation.rule]]\n  action = \"delete\"\n  paths = [\"{home}/.app/token\"]\n",
    )
    .unwrap();
    let o = vmscrub(&[
        "scan",
        dir,
        "--format",
        "json",
        "--rules",
        rules.to_str().unwrap(),
        "--enable",
        "app-token",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(ops(&json(&o)), ["app-token /srv/deploy/.app/token"]);
    let o = vmscrub(&["operations", "--rules", rules.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("app-token"));
    fs::write(&rules, "[[operation]]\nname = \"x\"\nheading = \"h\"\ndefault = true\n[[operation.rule]]\naction = \"delete\"\npaths = [\"/a\"]\nexcept = \"/b\"\n").unwrap();
    let o = vmscrub(&["scan", dir, "--rules", rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("extra.toml:8") && e.contains("invalid type"),
        "{e}"
    );
}

#[test]
fn human_report_escapes_hostile_names() {
    let g = guest();
    let o = vmscrub(&["scan", g.path().to_str().unwrap()]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("/tmp/evil\\x0a\\x1b[2Jname"), "{text}");
    assert!(!text.contains('\x1b'));
}

/// A real GPT image with one partition of every kind: what vmscrub cannot read
/// (swap, btrfs, LUKS, a PV no metadata describes) is named with the reason, never skipped
/// silently; the readable filesystems are still scanned.
#[test]
fn scan_of_an_image_names_what_it_cannot_read() {
    let img = vmscrub_fixtures::fixture("gpt-fs-zoo");
    let o = vmscrub(&["scan", img.to_str().unwrap(), "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    let unreadable: Vec<(u64, String)> = v["guest"]["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["identity"]["partition"].as_u64().unwrap(),
                u["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason = |n: u64| {
        unreadable
            .iter()
            .find(|u| u.0 == n)
            .map(|u| u.1.clone())
            .unwrap_or_else(|| panic!("partition {n} not named: {unreadable:?}"))
    };
    assert!(reason(5).contains("swap"));
    // XFS is read (an empty one here), so it is not among them.
    assert!(unreadable.iter().all(|u| u.0 != 6), "{unreadable:?}");
    assert!(reason(7).contains("btrfs is not supported"));
    assert!(reason(8).contains("LUKS"));
    // The synthetic PV has a label and no metadata area: vmscrub reads LVM2 and
    // says why this one gives no volume group.
    assert!(
        reason(9).starts_with(
            "LVM2 physical volume: no metadata in the image describes this physical volume"
        ),
        "{}",
        reason(9)
    );
    assert_eq!(unreadable.len(), 4, "{unreadable:?}");
    let warnings: Vec<String> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "unreadable-filesystem")
        .map(|w| w["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    // Swap holds pages, not files: its own warning kind, naming the operation.
    let swap: Vec<&serde_json::Value> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "swap-space")
        .collect();
    assert_eq!(swap.len(), 1, "{swap:?}");
    assert_eq!(swap[0]["operation"], "swap");
    assert!(
        swap[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("partition 5")
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("partition 7 (btrdata, btrfs)")),
        "{warnings:?}"
    );
    // The ext2, ext3, FAT16, FAT12 and XFS partitions were read.
    let fs: Vec<&str> = v["guest"]["filesystems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fs_type"].as_str().unwrap())
        .collect();
    assert_eq!(fs, ["ext2", "ext3", "vfat", "vfat", "xfs"]);
    assert!(v["stats"]["files_content_scanned"].as_u64().unwrap() > 10);
    // `--fail-on warning` fails on them.
    let o = vmscrub(&["scan", img.to_str().unwrap(), "--fail-on", "warning"]);
    assert_eq!(o.status.code(), Some(1));
}
