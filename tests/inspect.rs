//! `vmscrub inspect` end to end, through the built binary, over images built by real
//! tools. Independent oracles decide: `sfdisk -J` (512-byte GPT and MBR with logical
//! partitions), `fdisk -b 4096 -l` (4Kn GPT), `blkid -p -o export -O OFFSET -S SIZE`
//! on each partition's bytes, `dumpe2fs -h` (ext features), `qemu-img map` (allocated
//! bytes). Then the bad-input corpus: corrupt tables built by recipes
//! (fixtures/partition.toml) or crafted here, each a clear error with exit code 3 (or
//! a warning where the backup GPT saves the day), and a byte-flip fuzz loop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vmscrub_blockdev::{MemDisk, ReadAt};
use vmscrub_fixtures::{fixture, run};

fn vmscrub(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `vmscrub inspect --format json`, which must succeed and print one JSON document.
fn inspect_json(path: &Path) -> (Value, String) {
    let o = vmscrub(&[&"inspect", &"--format", &"json", &path]);
    assert!(
        o.status.success(),
        "inspect {} failed: {}",
        path.display(),
        stderr(&o)
    );
    (
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON document"),
        stderr(&o),
    )
}

/// Runs inspect on an image that must be refused: exit 3, nothing on stdout, one
/// `vmscrub: error:` line on stderr containing every needle, no panic.
fn expect_error(path: &Path, needles: &[&str]) -> String {
    for format in ["json", "human"] {
        let o = vmscrub(&[&"inspect", &"--format", &format, &path]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{}: {err}", path.display());
        assert!(o.stdout.is_empty(), "nothing on stdout after an error");
        assert!(err.starts_with("vmscrub: error: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        for n in needles {
            assert!(err.contains(n), "{}: {n:?} not in {err}", path.display());
        }
    }
    stderr(&vmscrub(&[&"inspect", &path]))
}

/// `blkid -p -o export` of `size` bytes at `offset`; empty when it finds nothing.
fn blkid(path: &Path, offset: u64, size: u64) -> HashMap<String, String> {
    let o = Command::new("blkid")
        .args([
            "-p",
            "-o",
            "export",
            "-O",
            &offset.to_string(),
            "-S",
            &size.to_string(),
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success() || o.status.code() == Some(2),
        "blkid: {o:?}"
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("\\ ", " ")))
        .collect()
}

/// Every partition's filesystem as inspect reports it must be what blkid says of
/// the same bytes. Returns the number of partitions checked.
fn filesystems_match_blkid(path: &Path, j: &Value) -> usize {
    let mut n = 0;
    for p in j["partitions"].as_array().unwrap() {
        if p["filesystem"].is_null() {
            assert_eq!(p["role"], "extended");
            continue;
        }
        let (start, size) = (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());
        let b = blkid(path, start, size);
        let fs = &p["filesystem"];
        let what = format!("{} partition {}", path.display(), p["index"]);
        assert_eq!(
            fs["type"].as_str().unwrap(),
            b.get("TYPE").map_or("unknown", String::as_str),
            "{what}"
        );
        for (ours, theirs) in [("label", "LABEL"), ("uuid", "UUID"), ("version", "VERSION")] {
            assert_eq!(
                fs[ours].as_str(),
                b.get(theirs).map(String::as_str),
                "{what}: {ours}"
            );
        }
        n += 1;
    }
    n
}

fn sfdisk_json(path: &Path) -> Value {
    serde_json::from_slice::<Value>(&run("sfdisk", &[&"-J", &path])).unwrap()["partitiontable"]
        .clone()
}

/// Partition starts, sizes, types, names and GUIDs equal `sfdisk -J`'s.
fn table_matches_sfdisk(path: &Path, j: &Value) {
    let s = sfdisk_json(path);
    let t = &j["partition_table"];
    let label = s["label"].as_str().unwrap();
    assert_eq!(t["type"], if label == "dos" { "mbr" } else { label });
    assert_eq!(t["disk_id"].as_str(), s["id"].as_str());
    assert_eq!(t["sector_size"], s["sectorsize"]);
    if label == "gpt" {
        assert_eq!(t["first_usable_lba"], s["firstlba"]);
        assert_eq!(t["last_usable_lba"], s["lastlba"]);
    }
    let ss = s["sectorsize"].as_u64().unwrap();
    let ours = j["partitions"].as_array().unwrap();
    let theirs = s["partitions"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{}", path.display());
    for (p, o) in ours.iter().zip(theirs) {
        let node = o["node"].as_str().unwrap();
        let index = p["index"].as_u64().unwrap();
        assert!(node.ends_with(&format!(".img{index}")), "{node} vs {index}");
        assert_eq!(p["first_lba"], o["start"], "{node}");
        assert_eq!(
            p["start"].as_u64().unwrap(),
            o["start"].as_u64().unwrap() * ss,
            "{node}"
        );
        assert_eq!(
            p["size"].as_u64().unwrap(),
            o["size"].as_u64().unwrap() * ss,
            "{node}"
        );
        assert_eq!(
            p["last_lba"].as_u64().unwrap(),
            o["start"].as_u64().unwrap() + o["size"].as_u64().unwrap() - 1,
            "{node}"
        );
        if label == "gpt" {
            assert_eq!(p["type"]["guid"], o["type"], "{node}");
            assert_eq!(p["uuid"], o["uuid"], "{node}");
            assert_eq!(
                p["name"].as_str().unwrap(),
                o["name"].as_str().unwrap_or(""),
                "{node}"
            );
            assert_eq!(p["role"], "partition");
        } else {
            let id = u8::from_str_radix(o["type"].as_str().unwrap(), 16).unwrap();
            assert_eq!(
                p["type"]["mbr_id"].as_str().unwrap(),
                format!("0x{id:02x}"),
                "{node}"
            );
            assert_eq!(
                p["bootable"].as_bool().unwrap(),
                o["bootable"].as_bool().unwrap_or(false),
                "{node}"
            );
            let role = if matches!(id, 0x05 | 0x0f | 0x85) {
                "extended"
            } else if index >= 5 {
                "logical"
            } else {
                "primary"
            };
            assert_eq!(p["role"], role, "{node}");
        }
    }
}

#[test]
fn gpt_esp_root_matches_sfdisk_and_blkid() {
    for name in ["gpt-esp-root", "c-raw"] {
        let path = fixture(name);
        let (j, err) = inspect_json(&path);
        assert!(err.is_empty(), "no warnings expected: {err}");
        table_matches_sfdisk(&path, &j);
        assert_eq!(filesystems_match_blkid(&path, &j), 2);
        assert_eq!(j["partition_table"]["header"], "primary");
        assert_eq!(j["partitions"][0]["type"]["name"], "EFI System");
        assert_eq!(j["partitions"][1]["type"]["name"], "Linux filesystem");
        assert_eq!(j["partitions"][1]["filesystem"]["needs_recovery"], false);
        assert_eq!(j["warnings"], Value::Array(vec![]));
    }
}

#[test]
fn raw_sizes_match_the_file_and_qemu_img_map() {
    let path = fixture("c-raw");
    let (j, _) = inspect_json(&path);
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(j["image"]["format"], "raw");
    assert_eq!(j["image"]["subformat"], Value::Null);
    assert_eq!(j["image"]["virtual_size"].as_u64().unwrap(), len);
    assert_eq!(j["image"]["file_size"].as_u64().unwrap(), len);
    let map: Value = serde_json::from_slice(&run(
        "qemu-img",
        &[&"map", &"-f", &"raw", &"--output=json", &path],
    ))
    .unwrap();
    let data: u64 = map
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"] == true)
        .map(|e| e["length"].as_u64().unwrap())
        .sum();
    assert!(data > 0 && data < len);
    assert_eq!(j["image"]["allocated_bytes"].as_u64().unwrap(), data);
}

#[test]
fn fs_zoo_every_partition_matches_blkid() {
    let path = fixture("gpt-fs-zoo");
    let (j, _) = inspect_json(&path);
    table_matches_sfdisk(&path, &j);
    assert_eq!(filesystems_match_blkid(&path, &j), 11);
    let types: Vec<&str> = j["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["filesystem"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ext2",
            "ext3",
            "vfat",
            "vfat",
            "swap",
            "xfs",
            "btrfs",
            "crypto_LUKS",
            "LVM2_member",
            "unknown",
            "unknown"
        ]
    );
}

#[test]
fn gpt_4k_matches_fdisk_and_blkid() {
    let path = fixture("gpt-4k");
    let (j, _) = inspect_json(&path);
    assert_eq!(j["partition_table"]["sector_size"], 4096);
    let out = String::from_utf8(run("fdisk", &[&"-b", &"4096", &"-l", &path])).unwrap();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Disk identifier: "))
        .unwrap();
    assert_eq!(j["partition_table"]["disk_id"], id.trim());
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip_while(|l| !l.starts_with("Device"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    let parts = j["partitions"].as_array().unwrap();
    assert_eq!(rows.len(), parts.len());
    for (p, r) in parts.iter().zip(&rows) {
        assert!(r[0].ends_with(&format!("img{}", p["index"])));
        assert_eq!(p["first_lba"].to_string(), r[1]);
        assert_eq!(p["last_lba"].to_string(), r[2]);
        assert_eq!(
            p["size"].as_u64().unwrap(),
            r[3].parse::<u64>().unwrap() * 4096
        );
        assert_eq!(
            p["start"].as_u64().unwrap(),
            r[1].parse::<u64>().unwrap() * 4096
        );
        assert_eq!(p["type"]["name"].as_str().unwrap(), r[5..].join(" "));
    }
    assert_eq!(filesystems_match_blkid(&path, &j), 2);
}

#[test]
fn mbr_logical_partitions_match_sfdisk_and_blkid() {
    let path = fixture("mbr-logical");
    let (j, _) = inspect_json(&path);
    table_matches_sfdisk(&path, &j);
    let idx: Vec<u64> = j["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, [1, 2, 5, 6]);
    assert_eq!(filesystems_match_blkid(&path, &j), 3);
    assert_eq!(j["partitions"][0]["bootable"], true);
    assert_eq!(j["partitions"][3]["type"]["name"], "Linux swap / Solaris");
}

#[test]
fn bare_ext4_is_one_whole_disk_volume() {
    let path = fixture("bare-ext4");
    let (j, _) = inspect_json(&path);
    assert_eq!(j["partition_table"]["type"], "none");
    assert_eq!(j["partition_table"]["sector_size"], Value::Null);
    let parts = j["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0]["role"], "whole-disk");
    assert_eq!(parts[0]["index"], Value::Null);
    assert_eq!(parts[0]["start"], 0);
    assert_eq!(
        parts[0]["size"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    assert_eq!(filesystems_match_blkid(&path, &j), 1);
    let out = String::from_utf8(run("dumpe2fs", &[&"-h", &path])).unwrap();
    let features = out
        .lines()
        .find_map(|l| l.strip_prefix("Filesystem features:"))
        .unwrap()
        .trim();
    let ours: Vec<&str> = parts[0]["filesystem"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(ours.join(" "), features);
}

#[test]
fn human_output_is_aligned_and_complete() {
    let path = fixture("gpt-esp-root");
    let o = vmscrub(&[&"inspect", &path]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("Format:       raw"), "{out}");
    assert!(
        out.contains("Virtual size: 100.0 MiB (104857600 bytes)"),
        "{out}"
    );
    assert!(
        out.contains("GPT, 512-byte sectors, disk GUID D1FB2794-213C-409C-853D-6BC82E63131B"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.trim_start().starts_with("#  First LBA"))
        .unwrap();
    let rows = &lines[header..header + 3];
    // Every column starts at the same character position in each row.
    let col = |l: &str, word: &str| l.find(word).unwrap();
    assert_eq!(col(rows[0], "Type"), col(rows[1], "EFI System"));
    assert_eq!(col(rows[0], "Type"), col(rows[2], "Linux filesystem"));
    assert_eq!(
        col(rows[0], "UUID"),
        col(rows[2], "3cf1a6d6-be95-4e38-8798-4247413559f1")
    );
    assert!(rows[1].contains("vfat FAT32") && rows[1].contains("8742-DDE3"));
    assert!(out.contains("features: has_journal"));
}

#[test]
fn inspect_never_modifies_the_image() {
    let path = fixture("gpt-small");
    let before = std::fs::read(&path).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    inspect_json(&path);
    assert!(vmscrub(&[&"inspect", &path]).status.success());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
}

// ------------------------------------------------------------ JSON contract

/// Every key path of a JSON report, with array elements as `[]`. `image.details` is
/// a free-form map, so its keys are not paths.
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                if p != "image.details" {
                    key_paths(v, &p, out);
                }
            }
        }
        Value::Array(a) => {
            for e in a {
                key_paths(e, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// The first back-quoted word of every table row in docs/inspect-json.md.
fn documented_keys() -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/inspect-json.md"))
            .unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(k, _)| k.to_string())
        .collect()
}

#[test]
fn json_matches_its_documentation() {
    let documented = documented_keys();
    assert!(documented.len() > 30, "{documented:?}");
    let top: BTreeSet<String> = documented
        .iter()
        .filter(|k| !k.contains(['.', '[']))
        .cloned()
        .collect();
    assert_eq!(
        top,
        [
            "schema_version",
            "image",
            "partition_table",
            "partitions",
            "os",
            "volume_groups",
            "warnings"
        ]
        .map(String::from)
        .into()
    );
    let mut all_seen = BTreeSet::new();
    for name in [
        "gpt-esp-root",
        "mbr-logical",
        "bare-ext4",
        "gpt-bad-header-crc",
        "lvm-rhel",
        "lvm-missing",
        "lvm-thin",
    ] {
        let (j, _) = inspect_json(&fixture(name));
        let mut keys = BTreeSet::new();
        key_paths(&j, "", &mut keys);
        let undocumented: Vec<_> = keys.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "{name}: keys missing from docs/inspect-json.md: {undocumented:?}"
        );
        for t in &top {
            assert!(j.get(t).is_some(), "{name}: top-level key {t} missing");
        }
        // Every key of every object is present (null when it does not apply).
        for p in j["partitions"].as_array().unwrap() {
            for k in documented
                .iter()
                .filter_map(|k| k.strip_prefix("partitions[]."))
                .filter(|k| !k.contains('.'))
            {
                assert!(p.get(k).is_some(), "{name}: partitions[].{k} missing");
            }
        }
        all_seen.extend(keys);
    }
    let never: Vec<_> = documented.difference(&all_seen).collect();
    assert!(never.is_empty(), "documented but never produced: {never:?}");
    // A few fields exactly.
    let (j, _) = inspect_json(&fixture("gpt-esp-root"));
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["partitions"][0]["start"], 1048576);
    assert_eq!(j["partitions"][0]["size"], 41943040);
    assert_eq!(
        j["partitions"][1]["filesystem"]["uuid"],
        "3cf1a6d6-be95-4e38-8798-4247413559f1"
    );
    assert_eq!(j["partitions"][0]["filesystem"]["version"], "FAT32");
    // Stable: the same image gives the same document.
    assert_eq!(inspect_json(&fixture("gpt-esp-root")).0, j);
}

// -------------------------------------------------------------- bad input

#[test]
fn damaged_primary_gpt_uses_backup_with_warning() {
    for (name, why) in [
        ("gpt-bad-header-crc", "header CRC32 mismatch"),
        ("gpt-bad-array-crc", "entry array CRC32 mismatch"),
    ] {
        let path = fixture(name);
        let (j, err) = inspect_json(&path);
        assert_eq!(j["partition_table"]["header"], "backup", "{name}");
        let w = j["warnings"].as_array().unwrap();
        assert!(
            w.iter().any(
                |w| w.as_str().unwrap().contains(why) && w.as_str().unwrap().contains("backup")
            ),
            "{w:?}"
        );
        assert!(
            err.contains("vmscrub: warning: primary GPT is damaged"),
            "{err}"
        );
        // libfdisk falls back to the backup too: the partitions must still be right.
        table_matches_sfdisk(&path, &j);
        assert_eq!(filesystems_match_blkid(&path, &j), 2);
        let human = String::from_utf8(vmscrub(&[&"inspect", &path]).stdout).unwrap();
        assert!(
            human.contains("(read from the backup header)") && human.contains("Warnings:"),
            "{human}"
        );
    }
}

#[test]
fn corrupt_tables_from_recipes_are_errors() {
    expect_error(
        &fixture("gpt-both-bad"),
        &["no usable GPT", "primary header", "backup header", "CRC32"],
    );
    expect_error(
        &fixture("mbr-ebr-loop"),
        &["loops back to the EBR at LBA 6144"],
    );
    expect_error(
        &fixture("mbr-ebr-outside"),
        &["LBA 31144", "outside the extended partition"],
    );
}

fn copy_to(dir: &Path, name: &str) -> (PathBuf, Vec<u8>) {
    let data = std::fs::read(fixture(name)).unwrap();
    (dir.join(format!("{name}.img")), data)
}

fn le64(d: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(d[at..at + 8].try_into().unwrap())
}

fn le32(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(d[at..at + 4].try_into().unwrap())
}

/// Recomputes the CRCs of both GPT headers of a 512-byte-sector disk (after a test
/// edited entries or header fields). An entry array too large to exist keeps its
/// old CRC.
fn fix_gpt_crcs(d: &mut [u8]) {
    let last = d.len() / 512 - 1;
    for lba in [1, last] {
        let h = lba * 512;
        let arr = le64(d, h + 72) as usize * 512;
        let len = le32(d, h + 80) as usize * le32(d, h + 84) as usize;
        if let Some(a) = d.get(arr..arr + len) {
            let crc = crc32fast::hash(a);
            d[h + 88..h + 92].copy_from_slice(&crc.to_le_bytes());
        }
        d[h + 16..h + 20].fill(0);
        let crc = crc32fast::hash(&d[h..h + 92]);
        d[h + 16..h + 20].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Applies `edit` to entry `index` (1-based) of both entry arrays of gpt-small.
fn edit_both_arrays(d: &mut [u8], index: usize, edit: impl Fn(&mut [u8])) {
    let last = d.len() / 512 - 1;
    for lba in [1, last] {
        let arr = le64(d, lba * 512 + 72) as usize * 512;
        edit(&mut d[arr + (index - 1) * 128..arr + index * 128]);
    }
}

#[test]
fn crafted_corrupt_gpts_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (path, base) = copy_to(dir.path(), "gpt-small");
    // gpt-small: partition 1 at LBA 2048..=10239, partition 2 at 10240..=14335.
    type Edit = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "overlap",
            Box::new(|d| {
                edit_both_arrays(d, 2, |e| e[32..40].copy_from_slice(&10000u64.to_le_bytes()))
            }),
            vec!["partitions 1 (LBA 2048..=10239) and 2 (LBA 10000..=14335) overlap"],
        ),
        (
            "past the usable range and the disk",
            Box::new(|d| {
                edit_both_arrays(d, 2, |e| e[40..48].copy_from_slice(&20000u64.to_le_bytes()))
            }),
            vec!["partition 2", "outside the usable range"],
        ),
        (
            "end before start",
            Box::new(|d| {
                edit_both_arrays(d, 1, |e| e[40..48].copy_from_slice(&2000u64.to_le_bytes()))
            }),
            vec!["partition 1 ends before it starts"],
        ),
        (
            "absurd entry count",
            Box::new(|d| {
                let last = d.len() / 512 - 1;
                for lba in [1, last] {
                    d[lba * 512 + 80..lba * 512 + 84].copy_from_slice(&1_000_000u32.to_le_bytes());
                }
            }),
            vec!["no usable GPT", "exceeds"],
        ),
        (
            "absurd entry size",
            Box::new(|d| {
                let last = d.len() / 512 - 1;
                for lba in [1, last] {
                    d[lba * 512 + 84..lba * 512 + 88].copy_from_slice(&129u32.to_le_bytes());
                }
            }),
            vec!["no usable GPT", "entry size 129"],
        ),
    ];
    for (what, edit, needles) in cases {
        let mut d = base.clone();
        edit(&mut d);
        fix_gpt_crcs(&mut d);
        std::fs::write(&path, &d).unwrap();
        let human = expect_error(&path, &needles);
        assert!(human.contains("partition table"), "{what}: {human}");
    }
}

#[test]
fn truncated_images_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, keep, needles) in [
        (
            "gpt-esp-root",
            60u64 << 20,
            vec!["GPT partition 2", "past the end", "truncated"],
        ),
        (
            "mbr-logical",
            50 << 20,
            vec!["MBR partition 2", "past the end", "truncated"],
        ),
    ] {
        let (path, d) = copy_to(dir.path(), name);
        std::fs::write(&path, &d[..keep as usize]).unwrap();
        expect_error(&path, &needles);
    }
}

#[test]
fn other_formats_are_refused_by_content() {
    let dir = tempfile::tempdir().unwrap();
    for (file, bytes, needle) in [
        (
            "disk.img",
            &b"\x1f\x8b\x08\0\0\0\0\0"[..],
            "gzip-compressed file",
        ),
        ("disk.raw", b"\xfd7zXZ\0\0\0", "xz-compressed file"),
        (
            "disk.qcow2",
            b"\x28\xb5\x2f\xfd\0\0\0\0",
            "zstd-compressed file",
        ),
        (
            "disk.vdi",
            b"<<< Oracle VM VirtualBox Disk Image >>>\n",
            "VDI",
        ),
        ("disk.qed", b"QED\0\0\0\0\0", "QED"),
    ] {
        let p = dir.path().join(file);
        std::fs::write(&p, bytes).unwrap();
        expect_error(&p, &[needle, "does not read"]);
    }
    // A VHDX signature is read as a VHDX: twelve bytes of it are a truncated one.
    let p = dir.path().join("disk.vmdk");
    std::fs::write(&p, b"vhdxfile\0\0\0\0").unwrap();
    expect_error(
        &p,
        &[
            "vhdx image",
            "header needs bytes up to 69632 but the file has 12",
        ],
    );
    // A VHD cookie is read as a VHD now: twelve bytes of it are a truncated one.
    let p = dir.path().join("disk.img");
    std::fs::write(&p, b"conectix\0\0\0\0").unwrap();
    expect_error(
        &p,
        &["vhd image", "footer needs 512 bytes but the file has 12"],
    );
    expect_error(dir.path(), &["is a directory"]);
    expect_error(
        &dir.path().join("missing.img"),
        &["cannot open", "No such file"],
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(vmscrub(&[&"inspect"]).status.code(), Some(2));
    assert_eq!(
        vmscrub(&[&"inspect", &"--format", &"xml", &"x.img"])
            .status
            .code(),
        Some(2)
    );
    let help = vmscrub(&[&"inspect", &"--help"]);
    assert!(help.status.success());
    assert!(
        String::from_utf8(help.stdout)
            .unwrap()
            .contains("never the file name")
    );
}

// -------------------------------------------------------------------- fuzz

/// A device that reads `head` over the first bytes of a shared base image, so each
/// fuzz case copies 64 KiB rather than the whole disk.
struct Patched {
    base: Arc<Vec<u8>>,
    head: Vec<u8>,
}

impl ReadAt for Patched {
    fn size(&self) -> u64 {
        self.base.len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        vmscrub_blockdev::check_range(offset, buf.len() as u64, self.size())?;
        let (off, end) = (offset as usize, offset as usize + buf.len());
        buf.copy_from_slice(&self.base[off..end]);
        if off < self.head.len() {
            let h_end = end.min(self.head.len());
            buf[..h_end - off].copy_from_slice(&self.head[off..h_end]);
        }
        Ok(())
    }
}

#[test]
fn fuzz_first_64k_of_gpt_and_mbr_images() {
    let mut seed = 0xD1B5_4A32_D192_ED03u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    // Clean, read with warnings (backup GPT used, odd signatures), refused.
    let mut outcomes = [0usize; 3];
    for name in ["gpt-small", "mbr-small"] {
        let base = Arc::new(std::fs::read(fixture(name)).unwrap());
        for case in 0..400 {
            let mut head = base[..64 * 1024].to_vec();
            for _ in 0..1 + next() % 12 {
                // Half the flips land in the first three sectors, where the tables are.
                let window = if next() % 2 == 0 { 3 * 512 } else { 64 * 1024 };
                let at = (next() % window) as usize;
                head[at] ^= 1 << (next() % 8);
            }
            let disk: Arc<dyn ReadAt> = Arc::new(Patched {
                base: base.clone(),
                head: head.clone(),
            });
            match vmscrub::image::discover(disk) {
                Ok(l) if l.warnings.is_empty() => outcomes[0] += 1,
                Ok(_) => outcomes[1] += 1,
                Err(e) => {
                    assert!(!format!("{e:#}").is_empty());
                    outcomes[2] += 1
                }
            }
            // A few cases through the binary too: exit 0 or 3, never a panic.
            if case % 50 == 0 {
                let mut d = (*base).clone();
                d[..head.len()].copy_from_slice(&head);
                let p = dir.path().join("fuzz.img");
                std::fs::write(&p, &d).unwrap();
                let o = vmscrub(&[&"inspect", &"--format", &"json", &p]);
                assert!(matches!(o.status.code(), Some(0 | 3)), "{o:?}");
                assert!(!stderr(&o).contains("panicked"));
            }
        }
        // MemDisk path (what the pipeline uses in tests): whole-image flips.
        let m = MemDisk::new((*base).clone());
        assert!(vmscrub::image::discover(Arc::new(m) as Arc<dyn ReadAt>).is_ok());
    }
    // The flips must really damage tables (the backup GPT at the end of the disk is
    // out of their reach, so most GPT damage is survived with a warning).
    assert!(
        outcomes[1] > 100 && outcomes[2] > 10,
        "the corpus must hit every outcome: {outcomes:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(300),
        "fuzz loop took {:?}",
        start.elapsed()
    );
}
