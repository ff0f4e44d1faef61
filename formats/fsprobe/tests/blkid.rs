//! Every filesystem fixture probed by us and by `blkid -p -o export` (the oracle):
//! TYPE, LABEL, UUID and VERSION must agree, and ext feature lists must equal
//! `dumpe2fs -h`'s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use vmscrub_blockdev::FileDisk;
use vmscrub_fixtures::{build, path_of, run};
use vmscrub_fsprobe::{Kind, probe};

/// `blkid -p -o export` as a map; empty when blkid finds nothing (exit 2).
fn blkid(path: &Path) -> HashMap<String, String> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success() || out.status.code() == Some(2),
        "blkid failed: {out:?}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("\\ ", " ")))
        .collect()
}

const FIXTURES: &[&str] = &[
    "root-ext4",
    "ext2-small",
    "ext3-small",
    "ext4-needs-recovery",
    "ext4-4k-features",
    "esp-fat32",
    "fat16-small",
    "fat12-small",
    "fat16-nolabel",
    "swap-small",
    "xfs-small",
    "btrfs-small",
    "luks-small",
    "luks1-small",
    "lvm-pv-crc",
    "lvm-pv-small",
    "unknown-data",
];

#[test]
fn agrees_with_blkid_on_every_fixture() {
    build(FIXTURES);
    let mut kinds = Vec::new();
    for name in FIXTURES {
        let path = path_of(name);
        let fs = probe(&FileDisk::open(&path).unwrap()).unwrap();
        let b = blkid(&path);
        let ty = b.get("TYPE").map(String::as_str).unwrap_or("unknown");
        assert_eq!(fs.kind.blkid_type(), ty, "{name}: TYPE");
        assert_eq!(
            fs.label.as_deref(),
            b.get("LABEL").map(String::as_str),
            "{name}: LABEL"
        );
        assert_eq!(
            fs.uuid.as_deref(),
            b.get("UUID").map(String::as_str),
            "{name}: UUID"
        );
        assert_eq!(
            fs.version.as_deref(),
            b.get("VERSION").map(String::as_str),
            "{name}: VERSION"
        );
        kinds.push(fs.kind);
    }
    // The corpus covers every kind we claim to identify.
    for k in [
        Kind::Ext2,
        Kind::Ext3,
        Kind::Ext4,
        Kind::Vfat,
        Kind::Swap,
        Kind::Xfs,
        Kind::Btrfs,
        Kind::Luks,
        Kind::LvmPv,
        Kind::Unknown,
    ] {
        assert!(kinds.contains(&k), "no fixture is {k:?}");
    }
}

#[test]
fn ext_details_agree_with_dumpe2fs() {
    let names = [
        "root-ext4",
        "ext2-small",
        "ext3-small",
        "ext4-needs-recovery",
        "ext4-4k-features",
    ];
    build(&names);
    for name in names {
        let path = path_of(name);
        let fs = probe(&FileDisk::open(&path).unwrap()).unwrap();
        let ext = fs.ext.as_ref().unwrap();
        let out = String::from_utf8(run("dumpe2fs", &[&"-h", &path])).unwrap();
        let field = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap()
        };
        assert_eq!(
            ext.features.join(" "),
            field("Filesystem features:"),
            "{name}"
        );
        assert_eq!(
            fs.block_size.unwrap().to_string(),
            field("Block size:"),
            "{name}"
        );
        assert_eq!(ext.needs_recovery, name == "ext4-needs-recovery", "{name}");
        assert_eq!(
            fs.warnings.iter().any(|w| w.contains("needs recovery")),
            ext.needs_recovery
        );
    }
}

#[test]
fn fat_details() {
    build(&["esp-fat32", "fat16-small", "fat12-small"]);
    for (name, bits) in [("esp-fat32", 32), ("fat16-small", 16), ("fat12-small", 12)] {
        let fs = probe(&FileDisk::open(&path_of(name)).unwrap()).unwrap();
        let fat = fs.fat.unwrap();
        assert_eq!(fat.fat_bits, bits, "{name}");
        assert!(fs.warnings.is_empty(), "{name}: {:?}", fs.warnings);
        assert_eq!(
            fat.boot_label, fs.label,
            "mkfs.fat writes the label in both places"
        );
    }
}
