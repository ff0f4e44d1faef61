//! The parser against util-linux on images built by real tools (`sfdisk`, `fdisk -b
//! 4096`): every start, size, type, name and GUID must agree with `sfdisk -J`, and
//! for the 4Kn disk with `fdisk -b 4096 -l`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::Value;
use vmscrub_blockdev::FileDisk;
use vmscrub_fixtures::{fixture, run};
use vmscrub_partition::{Guid, MbrKind, Table, detect, types};

fn sfdisk_json(path: &Path) -> Value {
    serde_json::from_slice(&run("sfdisk", &[&"-J", &path])).unwrap()
}

fn table_of(path: &Path) -> (Table, Vec<String>) {
    let d = detect(&FileDisk::open(path).unwrap()).unwrap();
    (d.table, d.warnings)
}

#[test]
fn gpt_512_matches_sfdisk() {
    for name in ["gpt-esp-root", "gpt-fs-zoo"] {
        let path = fixture(name);
        let (table, warnings) = table_of(&path);
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        let Table::Gpt(g) = table else {
            panic!("{name}: not GPT")
        };
        let j = &sfdisk_json(&path)["partitiontable"];
        assert_eq!(j["label"], "gpt");
        assert_eq!(g.disk_guid.to_string(), j["id"].as_str().unwrap());
        assert_eq!(g.sector_size as u64, j["sectorsize"].as_u64().unwrap());
        assert_eq!(g.first_usable_lba, j["firstlba"].as_u64().unwrap());
        assert_eq!(g.last_usable_lba, j["lastlba"].as_u64().unwrap());
        let parts = j["partitions"].as_array().unwrap();
        assert_eq!(g.partitions.len(), parts.len(), "{name}");
        for (p, o) in g.partitions.iter().zip(parts) {
            let node = o["node"].as_str().unwrap();
            assert!(
                node.ends_with(&format!("img{}", p.index)),
                "{node} vs {}",
                p.index
            );
            assert_eq!(p.first_lba, o["start"].as_u64().unwrap(), "{node}");
            assert_eq!(
                p.last_lba - p.first_lba + 1,
                o["size"].as_u64().unwrap(),
                "{node}"
            );
            assert_eq!(p.offset, p.first_lba * 512);
            assert_eq!(p.size, o["size"].as_u64().unwrap() * 512);
            assert_eq!(
                p.type_guid.to_string(),
                o["type"].as_str().unwrap(),
                "{node}"
            );
            assert_eq!(p.guid.to_string(), o["uuid"].as_str().unwrap(), "{node}");
            assert_eq!(p.name, o["name"].as_str().unwrap_or(""), "{node}");
        }
    }
}

#[test]
fn mbr_with_logical_partitions_matches_sfdisk() {
    let path = fixture("mbr-logical");
    let (table, warnings) = table_of(&path);
    assert!(warnings.is_empty(), "{warnings:?}");
    let Table::Mbr(m) = table else {
        panic!("not MBR")
    };
    let j = &sfdisk_json(&path)["partitiontable"];
    assert_eq!(j["label"], "dos");
    assert_eq!(
        format!("0x{:08x}", m.disk_signature),
        j["id"].as_str().unwrap()
    );
    let parts = j["partitions"].as_array().unwrap();
    assert_eq!(m.partitions.len(), parts.len());
    for (p, o) in m.partitions.iter().zip(parts) {
        let node = o["node"].as_str().unwrap();
        assert!(
            node.ends_with(&format!("img{}", p.index)),
            "{node} vs {}",
            p.index
        );
        assert_eq!(p.first_lba, o["start"].as_u64().unwrap(), "{node}");
        assert_eq!(p.sectors, o["size"].as_u64().unwrap(), "{node}");
        assert_eq!(
            format!("{:x}", p.type_id),
            o["type"].as_str().unwrap(),
            "{node}"
        );
        assert_eq!(
            p.bootable,
            o["bootable"].as_bool().unwrap_or(false),
            "{node}"
        );
    }
    assert_eq!(
        m.partitions
            .iter()
            .map(|p| (p.index, p.kind))
            .collect::<Vec<_>>(),
        vec![
            (1, MbrKind::Primary),
            (2, MbrKind::Extended),
            (5, MbrKind::Logical),
            (6, MbrKind::Logical)
        ]
    );
}

/// `fdisk -b 4096 -l` rows: `Device Start End Sectors Size Type…`.
#[test]
fn gpt_4k_matches_fdisk() {
    let path = fixture("gpt-4k");
    let (table, warnings) = table_of(&path);
    assert!(warnings.is_empty(), "{warnings:?}");
    let Table::Gpt(g) = table else {
        panic!("not GPT")
    };
    assert_eq!(g.sector_size, 4096);
    let out = String::from_utf8(run("fdisk", &[&"-b", &"4096", &"-l", &path])).unwrap();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Disk identifier: "))
        .unwrap();
    assert_eq!(g.disk_guid.to_string(), id.trim());
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip_while(|l| !l.starts_with("Device"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), g.partitions.len(), "{out}");
    for (p, r) in g.partitions.iter().zip(&rows) {
        assert!(r[0].ends_with(&format!("img{}", p.index)));
        assert_eq!(p.first_lba.to_string(), r[1]);
        assert_eq!(p.last_lba.to_string(), r[2]);
        assert_eq!((p.last_lba - p.first_lba + 1).to_string(), r[3]);
        assert_eq!(p.type_name.unwrap(), r[5..].join(" "));
        assert_eq!(p.offset, p.first_lba * 4096);
    }
}

#[test]
fn bare_filesystem_has_no_table() {
    let (table, warnings) = table_of(&fixture("bare-ext4"));
    assert_eq!(table, Table::None);
    assert!(warnings.is_empty());
}

/// Our type names are util-linux's: every GUID and id that `sfdisk -T` knows must
/// carry the same name here.
#[test]
fn type_names_match_sfdisk() {
    let gpt = String::from_utf8(run("sfdisk", &[&"--label", &"gpt", &"-T"])).unwrap();
    let mut checked = 0;
    for line in gpt.lines().skip(1) {
        let Some((id, name)) = line.split_once("  ") else {
            continue;
        };
        let Some(g) = Guid::parse(id.trim()) else {
            continue;
        };
        if let Some(ours) = types::gpt_type_name(&g) {
            assert_eq!(ours, name.trim(), "{id}");
            checked += 1;
        }
    }
    // sfdisk prints a few GUIDs in lower case.
    let upper = gpt.to_uppercase();
    let known_to_sfdisk = types::gpt_known_types()
        .filter(|(g, _)| upper.contains(&g.to_string()))
        .count();
    assert_eq!(checked, known_to_sfdisk);
    assert!(checked >= 40, "only {checked} GPT names checked");

    let dos = String::from_utf8(run("sfdisk", &[&"--label", &"dos", &"-T"])).unwrap();
    let mut checked = 0;
    for line in dos.lines().skip(1) {
        let line = line.trim();
        let Some((id, name)) = line.split_once("  ") else {
            continue;
        };
        let Ok(id) = u8::from_str_radix(id.trim(), 16) else {
            continue;
        };
        if let Some(ours) = types::mbr_type_name(id) {
            assert_eq!(ours, name.trim(), "{id:#x}");
            checked += 1;
        }
    }
    assert_eq!(checked, types::mbr_known_types().count());
}
