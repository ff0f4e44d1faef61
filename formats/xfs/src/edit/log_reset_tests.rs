//! The reset log judged by others: xfs_logprint (clean, tail = head), the
//! kernel (a read-only loop device mounts only a log that needs no recovery;
//! dmesg says "Ending clean mount"; then a read-write mount writes on from
//! there and xfs_repair still finds nothing), xfs_repair -n (which also
//! checks no metadata LSN is ahead of the log), and the old log's bytes gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use super::*;
use crate::edit::test_image::{self as ti, Scratch};
use crate::log::LogState;
use vmscrub_blockdev::Staged;

/// Metadata churn with a name to look for: each fsync forces a log write, so
/// a small log wraps several times (cycles above 2).
const CHURN: &str = r#"
python3 - <<'PY'
import os
os.mkdir("d")
for i in range(2500):
    p = f"d/log-witness-name-{i:06d}"
    with open(p, "wb") as f:
        f.write(b"x"); f.flush(); os.fsync(f.fileno())
    if i % 3 == 0:
        os.unlink(p)
PY
"#;

fn log_region(img: &Path) -> Vec<u8> {
    let fs = Xfs::open(vmscrub_blockdev::FileDisk::open(img).unwrap()).unwrap();
    let (start, total) = fs.log_geometry().unwrap();
    let mut buf = vec![0u8; (total * 512) as usize];
    fs.read_bytes(&mut buf, start, "log").unwrap();
    buf
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `xfs_logprint -t`: the log is clean with the tail at the head.
fn assert_logprint_clean(img: &Path) -> String {
    let o = Command::new("xfs_logprint")
        .arg("-t")
        .arg(img)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "xfs_logprint fails:\n{out}");
    let line = out
        .lines()
        .find(|l| l.contains("log tail:"))
        .unwrap_or_else(|| panic!("no tail/head line:\n{out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(line.contains("<CLEAN>"), "{line}");
    assert_eq!(words[2], words[4], "tail and head differ: {line}");
    out
}

fn reset_and_judge(mkfs: &[&str], witness: bool) {
    let s = Scratch::new("log");
    let img = ti::make(&s, mkfs, 300 << 20, CHURN);
    let old = log_region(&img);
    if witness {
        assert!(
            contains(&old, b"log-witness-name-"),
            "the old log holds no name to look for"
        );
    }
    let old_top = old
        .chunks_exact(512)
        .map(|b| u32::from_be_bytes(b[..4].try_into().unwrap()))
        .filter(|c| *c != 0xfeed_babe)
        .max()
        .unwrap();
    let reset = ti::edit(&img, |fs, stage| {
        let r = reset_log(fs, &mut stage_writer(stage)).unwrap();
        let zero = r.zero.clone();
        (r, zero)
    });
    assert!(
        reset.cycle > old_top,
        "cycle {} not above {old_top}",
        reset.cycle
    );
    assert!(old_top >= 3, "the log did not wrap: cycle {old_top}");
    let new = log_region(&img);
    assert!(
        !contains(&new, b"log-witness-name-"),
        "an old record survives"
    );
    let fs = Xfs::open(vmscrub_blockdev::FileDisk::open(&img).unwrap()).unwrap();
    assert_eq!(fs.log_state().unwrap(), LogState::Clean);
    // The first record and the first of the previous cycle carry right CRCs
    // (the reader checks them) and one operation each.
    let (start, total) = fs.log_geometry().unwrap();
    let first = crate::log::record::Record::read(&fs, start, total, 0).unwrap();
    assert_eq!(
        (first.lsn >> 32, first.num_ops),
        (u64::from(reset.cycle), 1)
    );
    let second = crate::log::record::Record::read(&fs, start, total, first.blocks).unwrap();
    assert_eq!(second.lsn >> 32, u64::from(reset.cycle - 1));
    drop(fs);
    assert_logprint_clean(&img);
    ti::assert_repair_clean(&img);
    let (names, log) = ti::with_ro_mount(&s, &img, |mnt| ti::list(&mnt.join("d")).len());
    assert_eq!(names, 2500 - 834);
    assert!(
        log.iter().any(|l| l.contains("Ending clean mount")),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("recovery")), "{log:?}");
    // The kernel writes on from the reset log, and leaves it consistent.
    let mnt = s.path("mnt");
    let (img_s, mnt_s) = (img.to_str().unwrap(), mnt.to_str().unwrap());
    ti::run("mount", &["-o", "loop,nouuid", img_s, mnt_s]);
    let more = Command::new("sh")
        .args([
            "-c",
            "for i in $(seq 1 200); do echo $i > d/after-$i; sync d/after-$i; done",
        ])
        .current_dir(&mnt)
        .output()
        .unwrap();
    ti::umount(mnt_s);
    assert!(more.status.success());
    assert_logprint_clean(&img);
    ti::assert_repair_clean(&img);
}

#[test]
fn reset_small_wrapped_log() {
    reset_and_judge(&["-l", "size=1368b"], true);
}

#[test]
fn reset_log_with_a_stripe_unit_of_eight_headers() {
    // 256 KiB records: eight header blocks each.
    reset_and_judge(&["-l", "su=256k"], false);
}

/// A log a shutdown left dirty, replayed into the stage first (what the
/// editor does), then reset: the kernel mounts without recovery and sees
/// what its own recovery of the same log shows; xfs_repair -n finds the
/// replayed metadata consistent and no LSN ahead of the new log.
#[test]
fn reset_after_replaying_a_dirty_log() {
    let s = Scratch::new("dirty");
    let fixture = vmscrub_fixtures::fixture("xfs-dirty-mix");
    let (ours, theirs) = (s.path("ours.img"), s.path("theirs.img"));
    std::fs::copy(&fixture, &ours).unwrap();
    std::fs::copy(&fixture, &theirs).unwrap();
    let reset = ti::edit(&ours, |fs, stage| {
        assert!(fs.log_state().unwrap().is_dirty());
        let replayed = fs.replay_log().unwrap().unwrap();
        for (off, sector) in &replayed.sectors {
            stage.patch(*off, sector).unwrap();
        }
        let r = reset_log(fs, &mut stage_writer(stage)).unwrap();
        lazy_counters_from_ag_headers(fs, stage);
        let zero = r.zero.clone();
        (r, zero)
    });
    assert!(reset.cycle >= 2);
    assert_logprint_clean(&ours);
    ti::assert_repair_clean(&ours);
    let tree = |mnt: &Path| {
        ["keep", "del", "ren", "new", "new/sub"]
            .map(|d| ti::list(&mnt.join(d)))
            .to_vec()
    };
    let (mine, log) = ti::with_ro_mount(&s, &ours, tree);
    assert!(!log.iter().any(|l| l.contains("recovery")), "{log:?}");
    // The kernel's own recovery of the same log, on a read-write mount.
    let mnt = s.path("mnt");
    let (img_s, mnt_s) = (theirs.to_str().unwrap(), mnt.to_str().unwrap());
    ti::run("mount", &["-o", "loop,nouuid", img_s, mnt_s]);
    let kernel = tree(&mnt);
    ti::umount(mnt_s);
    assert_eq!(mine, kernel);
}

/// A clean log tells the kernel to trust the superblock's lazy counters,
/// which a dirty log left stale: recount them from the AG headers as the
/// kernel does after recovery (the editor's counter update does this; here
/// it stands in for it).
fn lazy_counters_from_ag_headers(fs: &ti::Fs, stage: &Staged<vmscrub_blockdev::FileDisk>) {
    let (mut icount, mut ifree, mut fdblocks) = (0u64, 0u64, 0u64);
    for ag in 0..fs.sb.ag_count {
        let (agf, agi) = fs.ag_headers(ag).unwrap();
        let mut raw = [0u8; 64];
        fs.read_bytes(&mut raw, agf.offset, "AGF").unwrap();
        let btreeblks = u32::from_be_bytes(raw[60..64].try_into().unwrap());
        icount += u64::from(agi.count);
        ifree += u64::from(agi.free_count);
        fdblocks += u64::from(agf.free_blocks) + u64::from(agf.fl_count) + u64::from(btreeblks);
    }
    let mut sb = vec![0u8; usize::from(fs.sb.sect_size)];
    fs.read_bytes(&mut sb, 0, "superblock").unwrap();
    sb[128..136].copy_from_slice(&icount.to_be_bytes());
    sb[136..144].copy_from_slice(&ifree.to_be_bytes());
    sb[144..152].copy_from_slice(&fdblocks.to_be_bytes());
    crate::checksum::store(&mut sb, crate::superblock::CRC_OFFSET);
    stage.patch(0, &sb).unwrap();
}

#[test]
fn reset_log_with_4k_sectors() {
    reset_and_judge(&["-s", "size=4096", "-l", "size=1368b"], true);
}
