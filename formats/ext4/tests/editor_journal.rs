//! The editor and the journal: replay of a journal that needs recovery (judged
//! against `e2fsck -fy` on another copy), replay of real metadata transactions,
//! revokes and escaped blocks, refusal of damaged logs, and the reset that leaves
//! no old transaction — and no copy of a removed name or content — in the log.
//!
//! Transactions are written with debugfs (`jo -c`, `jw`, `jc`: jbd2 with csum v3),
//! from blocks the test takes out of a copy changed by debugfs itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod edit_support;

use std::path::Path;
use std::process::Command;

use common::*;
use edit_support::*;
use vmscrub_blockdev::FileDisk;
use vmscrub_ext4::{EditError, Editor, EditorOptions, Error, Refusal};

const ID_RSA: &[u8] = b"/scrub/home/u/.ssh/SECRETNAME_01_id_rsa";
const KNOWN: &[u8] = b"/scrub/home/u/.ssh/SECRETNAME_02_known";

/// Runs debugfs commands in one writable session; fails on any error message.
fn debugfs_w(img: &Path, cmds: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cmds");
    std::fs::write(&f, cmds.join("\n") + "\n").unwrap();
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&f)
        .arg(img)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errs: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs "))
        .collect();
    assert!(
        out.status.success() && errs.is_empty(),
        "debugfs {cmds:?}: {stderr}"
    );
}

/// e2fsck's journal replay alone (`-E journal_only`): with a full `-fy` run it
/// would also index large directories, which has nothing to do with the journal.
fn e2fsck_replay(img: &Path) {
    let out = Command::new("e2fsck")
        .args(["-y", "-E", "journal_only"])
        .arg(img)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "e2fsck -E journal_only: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!open(img).needs_recovery());
}

fn block_size(img: &Path) -> u64 {
    u64::from(open(img).block_size())
}

/// Blocks (of `bs` bytes) where two images differ.
fn changed_blocks(a: &Path, b: &Path, bs: u64) -> Vec<u64> {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    x.chunks(bs as usize)
        .zip(y.chunks(bs as usize))
        .enumerate()
        .filter(|(_, (p, q))| p != q)
        .map(|(i, _)| i as u64)
        .collect()
}

/// Logs the current content of `blocks` in `from` as one committed transaction
/// in the journal of `img` (which then needs recovery).
fn log_blocks(img: &Path, from: &Path, blocks: &[u64]) {
    log_blocks_with(img, from, blocks, true);
}

/// As [`log_blocks`]; `csum` asks debugfs for journal checksums (v3 with
/// metadata_csum, else v1).
fn log_blocks_with(img: &Path, from: &Path, blocks: &[u64], csum: bool) {
    let bs = block_size(img) as usize;
    let data = std::fs::read(from).unwrap();
    let mut payload = Vec::new();
    for &b in blocks {
        payload.extend_from_slice(&data[b as usize * bs..(b as usize + 1) * bs]);
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("payload");
    std::fs::write(&f, &payload).unwrap();
    let list: Vec<String> = blocks.iter().map(u64::to_string).collect();
    debugfs_w(
        img,
        &[
            if csum { "jo -c" } else { "jo" }.into(),
            format!("jw -b {} {}", list.join(","), f.display()),
            "jc".into(),
        ],
    );
    assert!(open(img).needs_recovery(), "the journal now needs recovery");
}

/// Journal blocks (physical) and the fs blocks outside the journal.
fn journal_blocks(img: &Path) -> vmscrub_blockdev::RangeSet {
    let fs = open(img);
    let j = fs.journal().unwrap().unwrap();
    j.map.extents.iter().map(|e| e.physical()).collect()
}

/// Blocks that differ between two images, ignoring the superblock's block and the
/// journal (e2fsck stamps check times and resets the journal its own way).
fn differing_blocks(a: &Path, b: &Path) -> Vec<u64> {
    let bs = block_size(a);
    let journal = journal_blocks(a);
    let sb_block = 1024 / bs;
    changed_blocks(a, b, bs)
        .into_iter()
        .filter(|&blk| blk != sb_block && !journal.contains(blk))
        .collect()
}

fn assert_same_tree(what: &str, a: &Path, b: &Path) {
    let (ta, tb) = (walk_ours(&open(a)), walk_ours(&open(b)));
    for (p, n) in &ta.nodes {
        assert_eq!(
            Some(n),
            tb.nodes.get(p),
            "{what}: {}",
            String::from_utf8_lossy(p)
        );
    }
    assert_eq!(ta.nodes.len(), tb.nodes.len(), "{what}: path count");
    assert_eq!(ta.dirs, tb.dirs, "{what}: listings");
}

#[test]
fn replay_matches_e2fsck_on_the_recipe_journal() {
    let ours = scratch("ext4-recover");
    let theirs = scratch_of(&ours.path);
    let payload =
        std::fs::read(vmscrub_fixtures::fixture_dir().join("trees/ext4-rich-lite/journal/payload"))
            .unwrap();
    let original = std::fs::read(&ours.path).unwrap();
    let (_, report) = edit(&ours.path, caller_zeroes(), |_| ());
    let stats = report.journal_replay.unwrap();
    // Two committed transactions: blocks 15000-15002 logged, then 15001 revoked.
    assert_eq!(
        (
            stats.transactions,
            stats.blocks_replayed,
            stats.blocks_revoked
        ),
        (2, 2, 1)
    );
    e2fsck_replay(&theirs.path);
    e2fsck_clean(&ours.path);
    e2fsck_clean(&theirs.path);
    assert!(!open(&ours.path).needs_recovery());
    assert_same_tree("replay vs e2fsck", &ours.path, &theirs.path);
    assert_eq!(
        differing_blocks(&ours.path, &theirs.path),
        Vec::<u64>::new()
    );
    let data = std::fs::read(&ours.path).unwrap();
    let blk = |b: usize| &data[b * 4096..(b + 1) * 4096];
    assert_eq!(blk(15000), &payload[..4096]);
    assert_eq!(blk(15002), &payload[8192..]);
    assert_eq!(blk(15001), &original[15001 * 4096..15002 * 4096], "revoked");
    // The reset journal: empty, next sequence, valid checksum (the reader checks it).
    let fs = open(&ours.path);
    let j = fs.journal().unwrap().unwrap();
    assert_eq!(j.superblock.start, 0);
    assert_eq!(
        j.superblock.sequence, 3,
        "one past the last replayed transaction"
    );
    assert!(fs.journal_transactions(&j).unwrap().is_empty());
}

#[test]
fn replay_refused_when_off_and_nothing_changes() {
    let img = scratch("ext4-recover");
    let before = file_sha(&img.path);
    let dev = FileDisk::open_rw(&img.path).unwrap();
    let opts = EditorOptions {
        replay_journal: false,
        ..EditorOptions::default()
    };
    let err = Editor::open(dev, opts).unwrap_err();
    assert!(
        matches!(err, EditError::Refused(Refusal::NeedsRecovery)),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("e2fsck"),
        "the message says what to do: {err}"
    );
    assert_eq!(file_sha(&img.path), before);
}

/// A transaction holding real metadata (debugfs `rm` of one file: directory
/// block, inode table, bitmaps, descriptors, superblock) replays to what
/// e2fsck's replay gives and to the state debugfs left; edits on top are clean,
/// and the journal's copy of the directory block is gone with the names.
#[test]
fn replay_of_a_metadata_transaction_then_edit() {
    let base = scratch("ed-ext4");
    let bs = block_size(&base.path);
    let removed = scratch_of(&base.path);
    debugfs_w(
        &removed.path,
        &[format!("rm {}", String::from_utf8_lossy(ID_RSA))],
    );
    let blocks = changed_blocks(&base.path, &removed.path, bs);
    assert!(
        blocks.len() >= 4,
        "rm changes several metadata blocks: {blocks:?}"
    );
    log_blocks(&base.path, &removed.path, &blocks);
    // The journal now holds a copy of the .ssh directory block: the name of the
    // file we remove next is in the image twice.
    let names = occurrences(&base.path, &[b"SECRETNAME_02_known".to_vec()]);
    assert_eq!(names[b"SECRETNAME_02_known".as_slice()].len(), 2);

    let ours = scratch_of(&base.path);
    let (_, report) = edit(&ours.path, caller_zeroes(), |_| ());
    assert_eq!(
        report.journal_replay.unwrap().blocks_replayed,
        blocks.len() as u64
    );
    let theirs = scratch_of(&base.path);
    e2fsck_replay(&theirs.path);
    e2fsck_clean(&theirs.path);
    e2fsck_clean(&ours.path);
    assert_same_tree("replay vs e2fsck", &ours.path, &theirs.path);
    assert_same_tree("replay vs debugfs rm", &ours.path, &removed.path);
    assert_eq!(
        differing_blocks(&ours.path, &theirs.path),
        Vec::<u64>::new()
    );

    // Replay and edit in one session.
    let edited = scratch_of(&base.path);
    let (u, _) = edit(&edited.path, caller_zeroes(), |ed| {
        ed.unlink(KNOWN).unwrap()
    });
    assert!(u.freed);
    e2fsck_clean(&edited.path);
    assert_no_residue(
        "replay+edit",
        &edited.path,
        &[b"SECRETNAME_02_known".to_vec(), b"SECRETDATA_02:".to_vec()],
    );
    let fs = open(&edited.path);
    assert!(fs.lookup(ID_RSA, false).is_err() && fs.lookup(KNOWN, false).is_err());
    let j = fs.journal().unwrap().unwrap();
    assert_eq!(
        (j.superblock.start, j.superblock.sequence),
        (0, 2),
        "one transaction replayed"
    );
}

/// A clean journal (s_start 0) still holds old transactions: copies of a
/// directory block and of file data. Removing the file must leave no copy.
#[test]
fn checkpointed_transactions_are_wiped() {
    let img = scratch("ed-ext4");
    let fs = open(&img.path);
    let ino = fs.lookup(ID_RSA, false).unwrap();
    let data_blocks: Vec<u64> = fs
        .extents(ino)
        .unwrap()
        .extents
        .iter()
        .flat_map(|e| e.physical())
        .collect();
    let dir = fs.lookup(b"/scrub/home/u/.ssh", false).unwrap();
    let dir_blocks: Vec<u64> = fs
        .extents(dir)
        .unwrap()
        .extents
        .iter()
        .flat_map(|e| e.physical())
        .collect();
    drop(fs);
    let mut logged = dir_blocks.clone();
    logged.extend(&data_blocks);
    let copy = scratch_of(&img.path);
    log_blocks(&img.path, &copy.path, &logged);
    // e2fsck replays (the same bytes) and marks the journal empty, leaving the log.
    e2fsck_replay(&img.path);
    let fs = open(&img.path);
    assert!(!fs.needs_recovery());
    let j = fs.journal().unwrap().unwrap();
    assert_eq!(j.superblock.start, 0, "clean journal");
    drop(fs);
    let markers = [b"SECRETDATA_01:".to_vec(), b"SECRETNAME_01_id_rsa".to_vec()];
    let journal = journal_blocks(&img.path);
    let bs = block_size(&img.path);
    let found = occurrences(&img.path, &markers);
    for m in &markers {
        assert!(
            found[m].iter().any(|o| journal.contains(o / bs)),
            "{}: the old log holds a copy",
            String::from_utf8_lossy(m)
        );
    }
    let (_, report) = edit(&img.path, caller_zeroes(), |ed| {
        ed.unlink(ID_RSA).unwrap();
    });
    assert!(report.journal_reset && report.journal_replay.is_none());
    e2fsck_clean(&img.path);
    assert_no_residue("stale journal", &img.path, &markers);
    // Without zeroing, the copies would survive: the reported ranges cover the log.
    let j = journal_blocks(&img.path);
    let log: u64 = j.iter().map(|r| r.end - r.start).sum::<u64>() - 1;
    assert!(report.zero_ranges.total() >= log * bs);
}

/// A logged block whose first four bytes are the jbd2 magic is stored escaped;
/// replay restores the magic, as e2fsck does. Over journals with v3 checksums
/// (64-bit and 32-bit tags), v1 checksums (ext3, ext4 without metadata_csum) and
/// none.
#[test]
fn escaped_blocks_are_restored() {
    for (name, csum, kind) in [
        ("ed-ext4-nocsum", true, feature_compat_checksum()),
        ("ed-ext3", true, feature_compat_checksum()),
        ("ed-ext4-32bit", true, 0),
        ("ed-ext4-1k", true, 0),
        ("ed-ext4-64k", false, 0),
    ] {
        let img = scratch(name);
        let bs = block_size(&img.path) as usize;
        let fs = open(&img.path);
        let half = fs.superblock().blocks_count / 2;
        let free = (half..).find(|&b| !fs.block_in_use(b).unwrap()).unwrap();
        drop(fs);
        let mut block = vec![0x5Au8; bs];
        block[..4].copy_from_slice(&[0xC0, 0x3B, 0x39, 0x98]);
        let src = scratch_of(&img.path);
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&src.path)
                .unwrap();
            f.write_all_at(&block, free * bs as u64).unwrap();
        }
        log_blocks_with(&img.path, &src.path, &[free], csum);
        let j = open(&img.path).journal().unwrap().unwrap().superblock;
        assert_eq!(j.feature_compat & 1, kind, "{name}: v1 checksums or not");
        assert_eq!(
            j.has_csum_v2v3(),
            csum && kind == 0,
            "{name}: v3 checksums or not"
        );
        let theirs = scratch_of(&img.path);
        e2fsck_replay(&theirs.path);
        let (_, report) = edit(&img.path, caller_zeroes(), |_| ());
        assert_eq!(report.journal_replay.unwrap().blocks_replayed, 1, "{name}");
        e2fsck_clean(&img.path);
        let at = free as usize * bs;
        let ours = std::fs::read(&img.path).unwrap();
        let e2 = std::fs::read(&theirs.path).unwrap();
        assert_eq!(
            &ours[at..at + bs],
            block.as_slice(),
            "{name}: magic restored"
        );
        assert_eq!(&e2[at..at + bs], block.as_slice(), "{name}: e2fsck agrees");
    }
}

fn feature_compat_checksum() -> u32 {
    vmscrub_ext4::journal::feature::COMPAT_CHECKSUM
}

/// Where the parts of the first transaction live: (descriptor, data blocks,
/// commit) as device byte offsets.
fn transaction_layout(img: &Path) -> (u64, Vec<u64>, u64) {
    let fs = open(img);
    let bs = u64::from(fs.block_size());
    let j = fs.journal().unwrap().unwrap();
    let t = &fs.journal_transactions(&j).unwrap()[0];
    let phys = |lb: u32| j.map.lookup(u64::from(lb)).unwrap() * bs;
    let desc = phys(j.superblock.start);
    let data: Vec<u64> = t.blocks.iter().map(|b| phys(b.journal_block)).collect();
    let commit = phys(t.blocks.last().unwrap().journal_block + 1);
    (desc, data, commit)
}

fn flip(img: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
}

#[test]
fn damaged_logs_are_refused_untouched() {
    let base = scratch("ext4-recover");
    let (desc, data, commit) = transaction_layout(&base.path);
    let cases: [(&str, u64); 3] = [
        ("data block", data[0] + 100),
        ("descriptor block", desc + 40),
        ("commit block", commit + 60),
    ];
    for (what, at) in cases {
        let img = scratch_of(&base.path);
        flip(&img.path, at);
        let before = file_sha(&img.path);
        let dev = FileDisk::open_rw(&img.path).unwrap();
        let err = Editor::open(dev, EditorOptions::default()).unwrap_err();
        let ok = match (&err, what) {
            (EditError::Read(Error::ChecksumMismatch { structure, .. }), "data block") => {
                *structure == "journal data block"
            }
            (
                EditError::Read(Error::Corrupt {
                    what: w, detail, ..
                }),
                "descriptor block",
            ) => *w == "journal" && detail.contains("bad checksum"),
            (EditError::Read(Error::ChecksumMismatch { structure, .. }), "commit block") => {
                *structure == "journal commit block"
            }
            _ => false,
        };
        assert!(ok, "{what}: {err:?}");
        assert!(err.is_corruption(), "{what}");
        assert_eq!(file_sha(&img.path), before, "{what}: untouched");
    }
    // v1: the commit block's CRC-32 covers descriptor and data blocks.
    let img = scratch("ed-ext3");
    let src = scratch_of(&img.path);
    log_blocks(&img.path, &src.path, &[9000, 9001]);
    let (_, data, _) = transaction_layout(&img.path);
    flip(&img.path, data[1] + 7);
    let before = file_sha(&img.path);
    let err = Editor::open(
        FileDisk::open_rw(&img.path).unwrap(),
        EditorOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, EditError::Read(Error::ChecksumMismatch { structure, .. }) if structure.contains("v1")),
        "{err:?}"
    );
    assert_eq!(file_sha(&img.path), before);
}
