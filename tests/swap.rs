//! Swap volumes (issue 14): paged-out memory and hibernation images never ship.
//! Judged outside vmscrub: the output's swap partitions must begin with exactly
//! the page `mkswap -U UUID -L LABEL -p PAGESIZE` writes on a volume of the same
//! size, hold nothing else, and be what `blkid` calls the same swap (UUID, label);
//! the planted page contents are gone from every byte of the output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scrub.rs"]
mod support;

use std::path::Path;

use support::*;
use vmscrub_fixtures::{fixture, run};

/// (partition, page size, label, marker planted in its page slots).
const SWAPS: &[(u32, usize, &str, &str)] = &[
    (2, 4096, "swap-a", "SWAPPED-OUT-SECRET-A"),
    (3, 65536, "swap-h", "HIBERNATED-SECRET-H"),
];

fn partition_bytes(disk: &Path, n: u32) -> Vec<u8> {
    let (_, off, size) = partitions(disk).into_iter().find(|p| p.0 == n).unwrap();
    let all = std::fs::read(disk).unwrap();
    all[off as usize..(off + size) as usize].to_vec()
}

/// `blkid -p` of a volume's bytes: (TYPE, UUID, LABEL).
fn blkid(bytes: &[u8]) -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("v");
    std::fs::write(&f, bytes).unwrap();
    let text = String::from_utf8(run("blkid", &[&"-p", &"-o", &"export", &f])).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    (get("TYPE"), get("UUID"), get("LABEL"))
}

/// The first page mkswap writes for this UUID, label and page size.
fn mkswap_page(size: usize, uuid: &str, label: &str, page: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s");
    std::fs::write(&f, vec![0u8; size]).unwrap();
    run(
        "mkswap",
        &[&"-U", &uuid, &"-L", &label, &"-p", &page.to_string(), &f],
    );
    std::fs::read(&f).unwrap()[..page].to_vec()
}

fn scrub(input: &Path, out: &Path, extra: &[&str]) -> String {
    let report = out.with_extension("json");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "scrub".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let o = vmscrub(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::read_to_string(&report).unwrap()
}

#[test]
fn swap_partitions_are_reinitialized_as_mkswap_would_with_their_identity() {
    let input = fixture("swap-disk");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.img");
    let report: serde_json::Value = serde_json::from_str(&scrub(&input, &out, &[])).unwrap();

    for &(n, page, label, marker) in SWAPS {
        let before = partition_bytes(&input, n);
        assert!(
            before.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "the fixture planted no {marker}"
        );
        let after = partition_bytes(&out, n);
        let (_, uuid, in_label) = blkid(&before);
        assert_eq!(in_label, label);
        assert_eq!(
            after[..page],
            mkswap_page(after.len(), &uuid, label, page)[..],
            "partition {n}: header differs from mkswap's"
        );
        assert!(
            after[page..].iter().all(|&b| b == 0),
            "partition {n}: page slots not zeroed"
        );
        assert_eq!(
            blkid(&after),
            ("swap".to_string(), uuid, label.to_string()),
            "partition {n}"
        );
    }
    let raw = std::fs::read(&out).unwrap();
    for &(_, _, _, marker) in SWAPS {
        assert!(
            !raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{marker} still in the output"
        );
    }
    let swaps = report["scrub"]["swap"].as_array().unwrap();
    assert_eq!(swaps.len(), 2, "{swaps:?}");
    assert_eq!(swaps[0]["volume"], "partition 2");
    assert!(swaps[0].get("hibernation").is_none());
    assert_eq!(swaps[1]["hibernation"], "swsusp (S1SUSPEND)");
    assert_eq!(swaps[1]["page_size"], 65536);
    // The root filesystem is untouched by it and still clean.
    let root = dir.path().join("root.img");
    std::fs::write(&root, partition_bytes(&out, 1)).unwrap();
    fsck_clean(&root, false);
}

#[test]
fn scan_names_swap_and_the_hibernation_image() {
    let input = fixture("swap-disk");
    let o = vmscrub(&["scan".as_ref(), input.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert!(
        text.contains("partition 3: holds a hibernation image (S1SUSPEND)"),
        "{text}"
    );
    for n in [2, 3] {
        assert!(
            text.contains(&format!("[swap] partition {n}")),
            "partition {n}: {text}"
        );
    }
}

#[test]
fn without_the_operation_swap_is_copied_and_said() {
    let input = fixture("swap-disk");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.img");
    let o = vmscrub(&[
        "scrub".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--operations".as_ref(),
        "defaults,-swap".as_ref(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("partition 2") && stderr(&o).contains("not scrubbed"),
        "{}",
        stderr(&o)
    );
    for &(n, ..) in SWAPS {
        assert_eq!(partition_bytes(&out, n), partition_bytes(&input, n));
    }
}
