//! The AG side's witnesses judged by someone else's code: what a release or
//! a free-space pass must refuse when only the AG's own structures (no
//! rmapbt) can tell a claim is wrong — built with mkfs.xfs, the kernel and
//! `xfs_db` — and the generation a freed inode slot takes, read by `xfs_db`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::agbtree::AgTree;
use crate::edit::free_space::free_ranges;
use crate::edit::inode_raw::{RawInode, field};
use crate::edit::space::{AgRelease, Released, release};
use crate::edit::space_tests::{interleaved, strs};
use crate::edit::test_harness::*;

/// `core.gen` of inode `ino`, as `xfs_db` reads it.
fn db_generation(img: &Path, ino: u64) -> u32 {
    let out = run(Command::new("xfs_db")
        .args(["-r", "-c", &format!("inode {ino}"), "-c", "print core.gen"])
        .arg(img));
    let v = out
        .trim()
        .strip_prefix("core.gen = ")
        .unwrap_or_else(|| panic!("{out}"));
    v.parse().unwrap()
}

#[test]
fn freed_inodes_take_the_next_generation() {
    let (script, dirs) = interleaved(8, 8192, &[], &[1, 2, 3]);
    let img = make("generation", &[], &script);
    let (stage, fs) = open(&img.path);
    let dir = fs
        .inode(fs.lookup(dirs[0].as_bytes(), false).unwrap())
        .unwrap();
    let inos: Vec<u64> = fs.read_dir(&dir).unwrap().iter().map(|e| e.ino).collect();
    // One victim at the last generation: the next one wraps to 0.
    let mut raw = RawInode::read(&fs, inos[0]).unwrap();
    raw.set_u32(field::GEN, u32::MAX);
    raw.write(&stage).unwrap();
    commit(&img.path, &stage, u64::from(fs.block_size()), &[]);
    drop((stage, fs));
    let before: Vec<u32> = inos.iter().map(|&i| db_generation(&img.path, i)).collect();
    assert_eq!(before[0], u32::MAX);
    let _ = remove_dirs_and_check(&img, &strs(&dirs), "all");
    let after: Vec<u32> = inos.iter().map(|&i| db_generation(&img.path, i)).collect();
    let want: Vec<u32> = before.iter().map(|g| g.wrapping_add(1)).collect();
    assert_eq!(after, want);
}

#[test]
fn free_ranges_refuse_a_free_bmap_btree_block_without_rmapbt() {
    // Only the bmap B+tree blocks of a live file released: the bnobt then
    // lists blocks the file's fork still uses, and only the inode walk can
    // tell (no rmapbt).
    let script = "mkdir all; xfs_io -f -c 'pwrite -q 0 1m' -c fsync all/frag; \
        i=0; while [ $i -lt 128 ]; do xfs_io -c \"fpunch $((i*8192+4096)) 4096\" all/frag; i=$((i+1)); done; sync";
    let img = make("bmbt-free", &["-m", "rmapbt=0"], script);
    let (stage, fs) = open(&img.path);
    let ino = fs.lookup(b"all/frag", false).unwrap();
    let by_ag = gather(&fs, &[ino]);
    let mut tree = BTreeMap::new();
    for (&agno, rel) in &by_ag {
        let extents: Vec<_> = rel.extents.iter().filter(|e| e.bmbt).copied().collect();
        if !extents.is_empty() {
            tree.insert(agno, extents);
        }
    }
    assert!(!tree.is_empty(), "a bmap B+tree");
    assert!(free_ranges(&fs).is_ok());
    stage.begin();
    for (&agno, extents) in &tree {
        let rel = AgRelease {
            extents: extents.clone(),
            inodes: vec![],
        };
        release(&fs, &stage, agno, &rel).unwrap();
    }
    let r = free_ranges(&fs);
    let blocks: Vec<String> = tree
        .values()
        .flatten()
        .map(|e| format!("maps free block {}", e.agbno))
        .collect();
    assert!(
        matches!(&r, Err(crate::Error::Refused { why, .. }) if blocks.iter().any(|b| why.ends_with(b.as_str()))),
        "{r:?}, {blocks:?}"
    );
    stage.drop_op();
}

#[test]
fn releases_on_the_ags_own_blocks_are_refused_without_rmapbt() {
    // Without an rmapbt only the AG's own structures can tell a file's map
    // that claims an inode chunk, the log or the headers.
    let (script, _) = interleaved(8, 8192, &[], &[]);
    let img = make("own-blocks", &["-m", "rmapbt=0"], &script);
    let (stage, fs) = open(&img.path);
    let owner = fs.lookup(b"all/a3", false).unwrap();
    let agl = fs.sb.ag_block_log;
    let at = |agbno, len| Released {
        agbno,
        len,
        owner,
        offset: 0,
        attr_fork: false,
        bmbt: false,
        unwritten: false,
    };
    let chunk = fs.inode_chunks(0, AgTree::Ino).unwrap()[0];
    let log_ag = (fs.sb.log_start >> agl) as u32;
    let log_bno = (fs.sb.log_start & ((1 << agl) - 1)) as u32;
    let cases = [
        (
            0,
            at((chunk.start_ino >> fs.sb.inop_block_log) + 1, 1),
            "inode chunk",
        ),
        (
            log_ag,
            at(log_bno + fs.sb.log_blocks - 1, 3),
            "internal log",
        ),
        (1, at(0, 1), "AG headers"),
    ];
    for (agno, extent, structure) in cases {
        stage.begin();
        let rel = AgRelease {
            extents: vec![extent],
            inodes: vec![],
        };
        let r = release(&fs, &stage, agno, &rel);
        assert!(
            matches!(&r, Err(crate::Error::Refused { structure: s, .. }) if *s == structure),
            "{structure}: {r:?}"
        );
        assert_eq!(stage.staged_count(), 0, "{structure}: nothing staged");
        stage.drop_op();
    }
}

#[test]
fn free_ranges_refuse_free_space_over_the_log() {
    // xfs_db stretches the free extent after the log back over its last
    // block (bnobt, cntbt and AGF kept in agreement with one another).
    let img = make("log-free", &["-m", "rmapbt=0"], "true");
    let (_, fs) = open(&img.path);
    let agl = fs.sb.ag_block_log;
    let ag = fs.sb.log_start >> agl;
    let log_end = (fs.sb.log_start & ((1 << agl) - 1)) as u32 + fs.sb.log_blocks;
    let free = fs.free_extents(ag as u32, AgTree::Bno).unwrap();
    assert_eq!(free.len(), 1, "{free:?}");
    assert!(free[0].agbno >= log_end, "{free:?} after {log_end}");
    drop(fs);
    let (start, len) = (log_end - 1, free[0].len + free[0].agbno - (log_end - 1));
    let mut db = Command::new("xfs_db");
    db.arg("-x");
    for root in ["bnoroot", "cntroot"] {
        db.args(["-c", &format!("agf {ag}"), "-c", &format!("addr {root}")]);
        db.args(["-c", &format!("write recs[1].startblock {start}")]);
        db.args(["-c", &format!("write recs[1].blockcount {len}")]);
    }
    db.args([
        "-c",
        &format!("agf {ag}"),
        "-c",
        &format!("write freeblks {len}"),
    ]);
    db.args(["-c", &format!("write longest {len}")]);
    run(db.arg(&img.path));
    let (_, fs) = open(&img.path);
    let r = free_ranges(&fs);
    assert!(
        matches!(&r, Err(crate::Error::Refused { why, .. }) if why.contains("of the internal log")),
        "{r:?}"
    );
}
