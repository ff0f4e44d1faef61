//! The AG side of the editor judged by someone else's code: images made by
//! mkfs.xfs and populated through the kernel, names removed from shortform
//! directories by hand, the files' extents and inodes released with
//! [`release`], then `xfs_repair -n` must be clean, `xfs_db freesp` must count
//! exactly the blocks freed, and the kernel must mount the result read-only
//! with the kept files intact.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use vmscrub_blockdev::FileDisk;

use super::free_space::free_ranges;
use super::inode_raw::{RawInode, field};
use super::inodes::wipe_free_inodes;
use super::space::{AgRelease, release};
use super::test_harness::*;
use crate::agbtree::AgTree;
use crate::fs::Xfs;

/// Shell that writes `n` files of `blocks` 4 KiB blocks each into `d`.
fn files(d: &str, n: usize, blocks: usize) -> String {
    format!(
        "mkdir -p {d}; i=0; while [ $i -lt {n} ]; do head -c $(({blocks}*4096)) /dev/urandom > {d}/f$i; i=$((i+1)); done; "
    )
}

/// Directory names `{prefix}0..{prefix}{n}`: victims go in small directories
/// that stay shortform (on this host new directories carry an attribute
/// fork, which leaves room for about a dozen short names).
fn dir_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A population in one directory (so one AG, files back to back): `n`
/// files of `bytes` each, `gone` removed through the kernel (free space
/// between files), `victims` moved into small shortform directories `v*`.
/// Returns the script and the victim directories.
pub(super) fn interleaved(
    n: usize,
    bytes: usize,
    gone: &[usize],
    victims: &[usize],
) -> (String, Vec<String>) {
    let mut s = format!(
        "mkdir all; i=0; while [ $i -lt {n} ]; do head -c {bytes} /dev/urandom > all/a$i; i=$((i+1)); done; sync; "
    );
    if !gone.is_empty() {
        for g in gone {
            s += &format!("rm all/a{g}; ");
        }
        // Empty files take the inode slots back, so the chunk stays full.
        s += "REMOUNT ";
        for k in 0..gone.len() {
            s += &format!("touch all/e{k}; ");
        }
    }
    let dirs = dir_names("v", victims.len().div_ceil(12));
    for (k, chunk) in victims.chunks(12).enumerate() {
        s += &format!("mkdir {}; ", dirs[k]);
        for v in chunk {
            s += &format!("mv all/a{v} {}/; ", dirs[k]);
        }
    }
    s += "sync";
    (s, dirs)
}

pub(super) fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

/// Chunks (by start) that had no free inode before and hold a released inode:
/// the finobt must gain their records.
fn full_chunks_hit(fs: &Fs, by_ag: &BTreeMap<u32, AgRelease>) -> usize {
    let mut n = 0;
    for (&ag, rel) in by_ag {
        for c in fs.inode_chunks(ag, AgTree::Ino).unwrap() {
            if c.free_count == 0
                && rel
                    .inodes
                    .iter()
                    .any(|&i| i >= c.start_ino && i - c.start_ino < 64)
            {
                n += 1;
            }
        }
    }
    n
}

fn plain_case(tag: &str, mkfs: &[&str]) {
    // Files of 2 blocks back to back; a4 and a6 gone first, so a5 merges with
    // free space on both sides; 1,2 free together between kept 0 and 3; 70
    // files fill the directory's first inode chunk (finobt insert).
    let victims = [1, 2, 5, 9, 10, 11, 20, 21, 33, 40, 41, 42, 43, 60, 61];
    let (script, dirs) = interleaved(70, 8192, &[4, 6], &victims);
    let img = make(tag, mkfs, &script);
    let (stage, fs) = open(&img.path);
    let inos: Vec<u64> = dirs
        .iter()
        .flat_map(|d| {
            let dir = fs.inode(fs.lookup(d.as_bytes(), false).unwrap()).unwrap();
            fs.read_dir(&dir)
                .unwrap()
                .into_iter()
                .map(|e| e.ino)
                .collect::<Vec<_>>()
        })
        .collect();
    let by_ag = gather(&fs, &inos);
    assert!(full_chunks_hit(&fs, &by_ag) > 0, "a full chunk is hit");
    // Whether the kernel put a4, a5, a6 back to back (it does on a quiet
    // machine; under load it may not): a5's blocks with free space on both
    // sides, where a4 and a6 were.
    let a5 = fs
        .inode(
            fs.lookup(format!("{}/a5", dirs[0]).as_bytes(), false)
                .unwrap(),
        )
        .unwrap();
    let a5_map = fs.block_map(&a5, crate::bmap::Fork::Data).unwrap();
    let a5_at = a5_map
        .extents
        .first()
        .map(|e| (e.start & ((1u64 << fs.sb.ag_block_log) - 1)) as u32);
    let free_before = |ag: u32| fs.free_extents(ag, AgTree::Bno).unwrap();
    let ag0 =
        (fs.lookup(b"all", false).unwrap() >> (fs.sb.ag_block_log + fs.sb.inop_block_log)) as u32;
    let is_free =
        |bno: &[crate::FreeExtent], b: u32| bno.iter().any(|e| e.agbno <= b && b < e.agbno + e.len);
    let between = a5_at.filter(|&s| {
        let bno = free_before(ag0);
        s >= 2 && is_free(&bno, s - 1) && is_free(&bno, s + 2)
    });
    drop((stage, fs));
    let (sum, fs) = remove_dirs_and_check(&img, &strs(&dirs), "all");
    assert!(
        sum.freed_blocks >= 2 * victims.len() as u64,
        "{}",
        sum.freed_blocks
    );
    assert_eq!(sum.shared_blocks, 0);
    let ag =
        (fs.lookup(b"all", false).unwrap() >> (fs.sb.ag_block_log + fs.sb.inop_block_log)) as u32;
    let bno = fs.free_extents(ag, AgTree::Bno).unwrap();
    // 4, 5, 6 (2 blocks each) are one free extent now, where the kernel put
    // them back to back.
    match between {
        Some(s) => assert!(
            bno.iter()
                .any(|e| e.agbno <= s - 2 && s + 4 <= e.agbno + e.len),
            "{bno:?}"
        ),
        None => eprintln!("{tag}: a4, a5, a6 were not placed back to back; merge not checked"),
    }
    kernel_uses_the_trees(&img);
}

#[test]
fn plain_files_on_default_mkfs() {
    plain_case("plain", &[]);
}

#[test]
fn plain_files_with_rmapbt() {
    plain_case("plain-rmap", &["-m", "rmapbt=1"]);
}

#[test]
fn plain_files_without_finobt_or_reflink() {
    plain_case("plain-old", &["-m", "finobt=0,reflink=0", "-i", "sparse=0"]);
}

#[test]
fn many_scattered_frees_split_the_free_space_trees() {
    // 1 KiB blocks: a bnobt leaf holds 121 records; every other file of 1000
    // goes, leaving ~500 separate free extents in one AG: the trees grow by
    // more blocks than the AGFL holds, so blocks come from free space too.
    let victims: Vec<usize> = (0..500).map(|i| 2 * i + 1).collect();
    let (script, dirs) = interleaved(1000, 1024, &[], &victims);
    for (tag, mkfs) in [
        ("split", &["-b", "size=1024"][..]),
        ("split-rmap", &["-b", "size=1024", "-m", "rmapbt=1"][..]),
    ] {
        let img = make(tag, mkfs, &script);
        let (_, fs) = open(&img.path);
        let ag = (fs.lookup(b"all", false).unwrap() >> (fs.sb.ag_block_log + fs.sb.inop_block_log))
            as u32;
        let pool_before = own_ag_blocks(&fs, ag);
        drop(fs);
        let (sum, fs) = remove_dirs_and_check(&img, &strs(&dirs), "all");
        let (agf, _) = fs.ag_headers(ag).unwrap();
        assert!(agf.bno_level >= 2 && agf.cnt_level >= 2, "{tag}: {agf:?}");
        let bno = fs.free_extents(ag, AgTree::Bno).unwrap();
        assert!(bno.len() > 3 * 121, "{tag}: {}", bno.len());
        // Without an rmapbt nothing shrinks to make room: the trees and the
        // AGFL grew into free space (with one, the rmapbt loses 500 records
        // and its blocks feed the others).
        if tag == "split" {
            assert!(own_ag_blocks(&fs, ag) > pool_before, "{tag}: took no block");
        }
        kernel_uses_the_trees(&img);
        // Blocks taken back for the trees are not zeroed.
        let zeroed: u64 = sum.zero.iter().map(|z| (z.end - z.start) / 1024).sum();
        assert!(zeroed <= sum.freed_blocks, "{tag}");
    }
}

/// Blocks owned by the AG (free-space trees, rmapbt, AGFL), from the AGF.
fn own_ag_blocks(fs: &Fs, ag: u32) -> u64 {
    let (agf, _) = fs.ag_headers(ag).unwrap();
    let mut raw = [0u8; 64];
    fs.read_bytes(&mut raw, agf.offset, "AGF").unwrap();
    let btreeblks = u32::from_be_bytes([raw[60], raw[61], raw[62], raw[63]]);
    let roots = if fs.sb.ro_compat & crate::superblock::RO_COMPAT_RMAPBT != 0 {
        3
    } else {
        2
    };
    u64::from(btreeblks) + roots + u64::from(agf.fl_count)
}

fn reflink_case(tag: &str, mkfs: &[&str]) {
    let script = "mkdir all; i=0; while [ $i -lt 10 ]; do head -c 8192 /dev/urandom > all/a$i; i=$((i+1)); done; \
        head -c 32768 /dev/urandom > all/r0; sync; \
        cp --reflink=always all/r0 all/r1; cp --reflink=always all/r0 all/r2; sync; \
        dd if=/dev/urandom of=all/r1 bs=4096 seek=2 count=2 conv=notrunc status=none; sync; \
        REMOUNT mkdir v0; mv all/r1 all/r2 v0/; sync";
    let img = make(tag, mkfs, script);
    let (_, fs) = open(&img.path);
    let ag = (fs.lookup(b"all/r0", false).unwrap() >> (fs.sb.ag_block_log + fs.sb.inop_block_log))
        as u32;
    let before: Vec<u32> = fs
        .refcounts(ag)
        .unwrap()
        .iter()
        .map(|r| r.refcount)
        .collect();
    assert!(before.contains(&3) && before.contains(&2), "{before:?}");
    drop(fs);
    let (sum, fs) = remove_dirs_and_check(&img, &["v0"], "all");
    // r1 shared 6 of its 8 blocks, r2 all 8; r1's 2 rewritten blocks are its own.
    assert_eq!((sum.shared_blocks, sum.freed_blocks), (14, 2));
    assert!(fs.refcounts(ag).unwrap().is_empty(), "r0 is alone again");
    kernel_uses_the_trees(&img);
    assert!(
        sum.zero.iter().all(|z| z.end - z.start == 8192),
        "{:?}",
        sum.zero
    );
}

#[test]
fn reflinked_files_only_decrement_shared_blocks() {
    reflink_case("reflink", &[]);
}

#[test]
fn reflinked_files_with_rmapbt() {
    reflink_case("reflink-rmap", &["-m", "rmapbt=1"]);
}

#[test]
fn fragmented_file_with_a_bmap_btree() {
    // 256 one-block extents with a punched hole between each: a bmap B+tree
    // fork, and every freed extent merges with free space on both sides.
    let script = "mkdir all; head -c 65536 /dev/urandom > all/k0; \
        xfs_io -f -c 'pwrite -q 0 2m' -c fsync all/frag; \
        i=0; while [ $i -lt 256 ]; do xfs_io -c \"fpunch $((i*8192+4096)) 4096\" all/frag; i=$((i+1)); done; \
        sync; REMOUNT mkdir v0; mv all/frag v0/; sync";
    for (tag, mkfs) in [("bmbt", &[][..]), ("bmbt-rmap", &["-m", "rmapbt=1"][..])] {
        let img = make(tag, mkfs, script);
        let (_, fs) = open(&img.path);
        let ino = fs.lookup(b"v0/frag", false).unwrap();
        let inode = fs.inode(ino).unwrap();
        let map = fs.block_map(&inode, crate::bmap::Fork::Data).unwrap();
        assert_eq!(map.extents.len(), 256, "{tag}");
        assert!(!map.tree_blocks.is_empty(), "{tag}: a bmap B+tree");
        let tree_blocks = map.tree_blocks.len() as u64;
        drop(fs);
        let (sum, _) = remove_dirs_and_check(&img, &["v0"], "all");
        assert_eq!(sum.freed_blocks, 256 + tree_blocks, "{tag}");
    }
}

#[test]
fn many_inodes_make_multi_level_inode_trees() {
    // 1 KiB blocks: an inobt or finobt leaf holds 60 records; 4000 inodes in
    // one AG make ~63 full chunks, and one inode of each goes: the finobt
    // grows from one block to three, the new ones taken from free space.
    let victims: Vec<usize> = (0..62).map(|i| 64 * i + 5).collect();
    let (files, dirs) = interleaved(0, 0, &[], &victims);
    let script = format!(
        "mkdir all; cd all; i=0; while [ $i -lt 4000 ]; do : > a$i; i=$((i+1)); done; cd ..; {files}"
    )
    .replace(
        "mkdir all; i=0; while [ $i -lt 0 ]; do head -c 0 /dev/urandom > all/a$i; i=$((i+1)); done; ",
        "",
    );
    for (tag, mkfs) in [
        ("inodes", &["-b", "size=1024"][..]),
        ("inodes-rmap", &["-b", "size=1024", "-m", "rmapbt=1"][..]),
    ] {
        let img = make(tag, mkfs, &script);
        let (_, fs) = open(&img.path);
        let ag = (fs.lookup(b"all", false).unwrap() >> (fs.sb.ag_block_log + fs.sb.inop_block_log))
            as u32;
        let (_, agi) = fs.ag_headers(ag).unwrap();
        assert!(agi.level >= 2, "{agi:?}");
        drop(fs);
        let (sum, fs) = remove_dirs_and_check(&img, &strs(&dirs), "all");
        assert_eq!(sum.freed_inodes, 62);
        let fino = fs.inode_chunks(ag, AgTree::Fino).unwrap();
        assert!(fino.len() > 60, "{tag}: {}", fino.len());
        let (_, agi) = fs.ag_headers(ag).unwrap();
        assert_eq!(agi.free_level, 2, "{tag}");
        kernel_uses_the_trees(&img);
    }
}

#[test]
fn releases_the_trees_contradict_are_refused() {
    let victims = [1, 3];
    let (script, dirs) = interleaved(8, 8192, &[], &victims);
    for (tag, mkfs) in [
        ("refuse", &[][..]),
        ("refuse-rmap", &["-m", "rmapbt=1"][..]),
    ] {
        let img = make(tag, mkfs, &script);
        let (stage, fs) = open(&img.path);
        let rmapbt = fs.sb.ro_compat & crate::superblock::RO_COMPAT_RMAPBT != 0;
        let dir = fs
            .inode(fs.lookup(dirs[0].as_bytes(), false).unwrap())
            .unwrap();
        let inos: Vec<u64> = fs.read_dir(&dir).unwrap().iter().map(|e| e.ino).collect();
        let by_ag = gather(&fs, &inos);
        let (&agno, rel) = by_ag.iter().next().unwrap();
        let refused = |rel: &AgRelease| {
            stage.begin();
            let r = release(&fs, &stage, agno, rel);
            stage.drop_op();
            matches!(r, Err(crate::Error::Refused { .. }))
        };
        // The same blocks twice (no reflink in between): a double free.
        let mut twice = rel.clone();
        twice.extents.push(rel.extents[0]);
        twice.inodes.clear();
        assert!(refused(&twice), "{tag}: double free");
        // Still linked: the names were not removed.
        assert!(
            refused(&AgRelease {
                extents: vec![],
                inodes: rel.inodes.clone()
            }),
            "{tag}"
        );
        // Free space released again.
        let free = fs.free_extents(agno, AgTree::Bno).unwrap()[0];
        let mut bogus = rel.extents[0];
        (bogus.agbno, bogus.len) = (free.agbno, 1);
        assert!(
            refused(&AgRelease {
                extents: vec![bogus],
                inodes: vec![]
            }),
            "{tag}: free"
        );
        if rmapbt {
            // A file offset the rmapbt does not record for those blocks.
            let mut moved = rel.extents[0];
            moved.offset += 1;
            assert!(
                refused(&AgRelease {
                    extents: vec![moved],
                    inodes: vec![]
                }),
                "{tag}"
            );
        }
        assert_eq!(stage.staged_count(), 0, "{tag}: nothing staged");
    }
}

#[test]
fn fixture_files_of_every_kind() {
    // xfs-rich: a bmap B+tree file, a sparse file, unwritten extents, one
    // copy of a reflinked pair, remote xattr values, a node-form attribute
    // fork, a remote symlink, special files — released, the rest intact.
    let img = fixture_copy("xfs-rich");
    let gone = [
        (
            "files",
            &["fragmented", "sparse", "prealloc", "3M-reflink", "4097"][..],
        ),
        ("xattr", &["leaf", "node", "remote", "acl"][..]),
        ("links", &["long", "short", "char", "fifo", "sock"][..]),
    ];
    let listings = |img: &Img| gone.map(|(d, _)| kernel_listing(img, d));
    let before = listings(&img);
    let (stage, fs) = open(&img.path);
    let before_free = freesp(&img.path, &fs);
    stage.begin();
    let mut inos = vec![];
    for (dir, names) in gone {
        inos.extend(unlink_names(&fs, &stage, dir, names));
    }
    let by_ag = gather(&fs, &inos);
    let sum = release_all(&fs, &stage, &by_ag);
    stage.keep();
    assert!(
        sum.shared_blocks > 700,
        "3M-reflink shares its blocks: {}",
        sum.shared_blocks
    );
    commit(&img.path, &stage, u64::from(fs.block_size()), &sum.zero);
    assert_repair_clean(&img.path);
    assert_db_check_clean(&img.path);
    let (_, fs) = open(&img.path);
    assert_eq!(
        freesp(&img.path, &fs),
        before_free + sum.freed_blocks - sum.grown_blocks
    );
    // Each directory lists exactly its kept names, with the kept files'
    // checksums (3M among them: its reflinked blocks were kept) unchanged.
    for ((dir, names), (was, now)) in gone.iter().zip(before.iter().zip(listings(&img))) {
        let is_gone = |l: &str| {
            names
                .iter()
                .any(|n| l == *n || l.ends_with(&format!(" ./{n}")))
        };
        let expect: Vec<&str> = was.lines().filter(|l| !is_gone(l)).collect();
        assert_eq!(now.lines().collect::<Vec<_>>(), expect, "{dir}");
    }
}

#[test]
fn fixture_with_every_feature_and_small_blocks() {
    // xfs-features: 1 KiB blocks, rmapbt, reflink, sparse inodes, nrext64.
    let img = fixture_copy("xfs-features");
    let before = kernel_listing(&img, "d");
    let (stage, fs) = open(&img.path);
    let before_free = freesp(&img.path, &fs);
    stage.begin();
    let inos = unlink_names(&fs, &stage, "d", &["f", "rand", "frag"]);
    let sum = release_all(&fs, &stage, &gather(&fs, &inos));
    stage.keep();
    commit(&img.path, &stage, u64::from(fs.block_size()), &sum.zero);
    assert_repair_clean(&img.path);
    assert_db_check_clean(&img.path);
    let (_, fs) = open(&img.path);
    assert_eq!(
        freesp(&img.path, &fs),
        before_free + sum.freed_blocks - sum.grown_blocks
    );
    assert!(sum.freed_blocks >= 98 + 200, "{}", sum.freed_blocks);
    let expect: Vec<&str> = before
        .lines()
        .filter(|l| {
            !["f", "rand", "frag"]
                .iter()
                .any(|n| l == n || l.ends_with(&format!(" ./{n}")))
        })
        .collect();
    assert_eq!(
        kernel_listing(&img, "d").lines().collect::<Vec<_>>(),
        expect
    );
}

#[test]
fn fixtures_free_space_and_free_inodes_wiped() {
    for name in [
        "xfs-rich",
        "xfs-features",
        "xfs-4k-sectors",
        "xfs-wide-inodes",
        "xfs-rocky-root",
    ] {
        let img = fixture_copy(name);
        let (stage, fs) = open(&img.path);
        let ranges = free_ranges(&fs).unwrap();
        let bs = u64::from(fs.block_size());
        let total: u64 = ranges.iter().map(|r| (r.end - r.start) / bs).sum();
        assert_eq!(total, xfs_db_free(&img.path), "{name}");
        stage.begin();
        wipe_free_inodes(&fs, &stage).unwrap();
        stage.keep();
        commit(&img.path, &stage, bs, &ranges);
        assert_repair_clean(&img.path);
        assert_db_check_clean(&img.path);
    }
}

#[test]
fn inodes_in_sparse_chunks() {
    // A filesystem filled to the last block: the last inode chunks can only
    // be allocated sparse (holemask set). Files whose inodes sit in them are
    // released; their chunk stays sparse and consistent.
    let script = "xfs_io -x -c 'resblks 0' . > /dev/null; \
        avail=$(df -B1024 --output=avail . | tail -1); fallocate -l $((avail*1024)) big || true; \
        j=0; while fallocate -l 64k f$j 2>/dev/null; do j=$((j+1)); done; \
        while fallocate -l 1k g$j 2>/dev/null; do j=$((j+1)); done; sync; \
        rm -f g$((j-1)) g$((j-2)) g$((j-3)) g$((j-4)); sync";
    let img = make("sparse", &["-b", "size=1024"], script);
    let (_, fs) = open(&img.path);
    let root = fs.inode(fs.root_ino()).unwrap();
    let shift = u32::from(fs.sb.ag_block_log) + u32::from(fs.sb.inop_block_log);
    let mut names = vec![];
    for e in fs.read_dir(&root).unwrap() {
        let (ag, agino) = ((e.ino >> shift) as u32, (e.ino & ((1 << shift) - 1)) as u32);
        let in_sparse = fs
            .inode_chunks(ag, AgTree::Ino)
            .unwrap()
            .iter()
            .any(|c| c.holemask != 0 && agino >= c.start_ino && agino - c.start_ino < 64);
        if in_sparse && names.len() < 10 {
            names.push(String::from_utf8(e.name.clone()).unwrap());
        }
    }
    assert!(names.len() >= 3, "files in sparse chunks: {names:?}");
    drop(fs);
    // Space back (an unmount finishes the kernel's deferred freeing), then
    // the victims into a shortform directory.
    let mv = format!(
        "rm -f big f1*; sync; mkdir v0; mv {} v0/; sync",
        names.join(" ")
    );
    for part in mv.split("; mkdir") {
        let part = if part.starts_with(" v0") {
            format!("mkdir{part}")
        } else {
            part.to_string()
        };
        mount(&img, false);
        run(Command::new("sh")
            .arg("-ec")
            .arg(&part)
            .current_dir(img.dir.join("mnt")));
        run(Command::new("umount").arg(img.dir.join("mnt")));
    }
    let (sum, fs) = remove_dirs_and_check(&img, &["v0"], ".");
    assert_eq!(sum.freed_inodes, names.len() as u64);
    let sparse: Vec<_> = (0..fs.sb.ag_count)
        .flat_map(|a| fs.inode_chunks(a, AgTree::Ino).unwrap())
        .filter(|c| c.holemask != 0)
        .collect();
    assert!(sparse.iter().any(|c| c.free_count > 0), "{sparse:?}");
}

#[test]
fn free_ranges_refuse_when_a_witness_disagrees() {
    let (script, _) = interleaved(8, 8192, &[], &[]);
    for (tag, mkfs) in [
        ("witness", &[][..]),
        ("witness-rmap", &["-m", "rmapbt=1"][..]),
    ] {
        let img = make(tag, mkfs, &script);
        let (stage, fs) = open(&img.path);
        let ino = fs.lookup(b"all/a3", false).unwrap();
        let by_ag = gather(&fs, &[ino]);
        let (&agno, rel) = by_ag.iter().next().unwrap();
        // The AGF counting one free block more than its bnobt holds.
        stage.begin();
        let (agf, _) = fs.ag_headers(agno).unwrap();
        let mut raw = vec![0u8; usize::from(fs.sb.sect_size)];
        fs.read_bytes(&mut raw, agf.offset, "AGF").unwrap();
        raw[52..56].copy_from_slice(&(agf.free_blocks + 1).to_be_bytes());
        crate::checksum::store(&mut raw, 216);
        stage.patch(agf.offset, &raw).unwrap();
        assert!(
            matches!(free_ranges(&fs), Err(crate::Error::Refused { .. })),
            "{tag}"
        );
        stage.drop_op();
        assert!(free_ranges(&fs).is_ok(), "{tag}");
        // A file's blocks freed while its inode still maps them (only its
        // extents released): without an rmapbt the inode walk must see it.
        if fs.sb.ro_compat & crate::superblock::RO_COMPAT_RMAPBT == 0 {
            stage.begin();
            let only_blocks = AgRelease {
                extents: rel.extents.clone(),
                inodes: vec![],
            };
            release(&fs, &stage, agno, &only_blocks).unwrap();
            let r = free_ranges(&fs);
            assert!(
                matches!(&r, Err(crate::Error::Refused { why, .. }) if why.contains("maps free block")),
                "{r:?}"
            );
            stage.drop_op();
        }
    }
}

/// How many times `needle` occurs in the image outside the internal log
/// (the log is reset by another part of the editor).
fn occurrences(img: &Path, needle: &str) -> usize {
    let mut data = std::fs::read(img).unwrap();
    let fs = Xfs::open(FileDisk::open(img).unwrap()).unwrap();
    let sb = fs.superblock();
    let start = sb.fsb_to_byte(sb.log_start).unwrap() as usize;
    let len = sb.log_blocks as usize * sb.block_size as usize;
    data[start..start + len].fill(0);
    data.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

/// Writes `marker` into the literal area of the first free inode slot (and
/// `mode`), CRC kept right, straight into the image; returns the inode.
fn plant_in_free_slot(img: &Path, marker: &[u8], mode: u16) -> u64 {
    let (stage, fs) = open(img);
    let c = fs
        .inode_chunks(0, AgTree::Ino)
        .unwrap()
        .into_iter()
        .find(|c| c.free != 0)
        .unwrap();
    let idx = c.free.trailing_zeros();
    let ino = super::inodes::ino_of(&fs, 0, c.start_ino + idx);
    let mut raw = RawInode::read(&fs, ino).unwrap();
    raw.buf[field::LITERAL + 8..field::LITERAL + 8 + marker.len()].copy_from_slice(marker);
    raw.set_u16(field::MODE, mode);
    raw.write(&stage).unwrap();
    commit(img, &stage, u64::from(fs.block_size()), &[]);
    ino
}

#[test]
fn wipe_and_free_ranges_erase_what_the_kernel_left() {
    // The kernel's unlink leaves a file's data in free blocks and, for small
    // symlinks and xattrs, their bytes in the freed inode.
    let script = format!(
        "{} head -c 100000 /dev/zero | tr '\\0' Q | sed 's/^/DATA-MARKER-7f3a/' > gone; \
         ln -s TARGET-MARKER-91c2 link; touch attr; setfattr -n user.k -v VALUE-MARKER-5e11 attr; \
         sync; rm gone link attr; sync",
        files("keep", 10, 2)
    );
    let img = make("wipe", &[], &script);
    assert!(occurrences(&img.path, "DATA-MARKER-7f3a") > 0);
    // This kernel clears a freed inode's inline content; older ones did not.
    // Plant stale bytes in a free slot the way they would be left.
    plant_in_free_slot(&img.path, b"SLOT-MARKER-0b7d", 0);
    assert_eq!(occurrences(&img.path, "SLOT-MARKER-0b7d"), 1);
    assert_repair_clean(&img.path);
    let before = kernel_listing(&img, "keep");
    let (stage, fs) = open(&img.path);
    let ranges = free_ranges(&fs).unwrap();
    let bs = u64::from(fs.block_size());
    let total: u64 = ranges.iter().map(|r| (r.end - r.start) / bs).sum();
    assert_eq!(total, xfs_db_free(&img.path));
    stage.begin();
    let n = wipe_free_inodes(&fs, &stage).unwrap();
    stage.keep();
    let free_inodes: u64 = (0..fs.superblock().ag_count)
        .flat_map(|a| fs.inode_chunks(a, AgTree::Ino).unwrap())
        .map(|c| u64::from(c.free_count))
        .sum();
    assert_eq!(n, free_inodes);
    commit(&img.path, &stage, bs, &ranges);
    for m in [
        "DATA-MARKER-7f3a",
        "TARGET-MARKER-91c2",
        "VALUE-MARKER-5e11",
        "SLOT-MARKER-0b7d",
    ] {
        assert_eq!(occurrences(&img.path, m), 0, "{m} survives");
    }
    assert_repair_clean(&img.path);
    assert_db_check_clean(&img.path);
    assert_eq!(kernel_listing(&img, "keep"), before);
    // A free slot whose mode says in use: the witnesses disagree, refused.
    plant_in_free_slot(&img.path, b"x", 0o100644);
    let (stage, fs) = open(&img.path);
    assert!(matches!(
        wipe_free_inodes(&fs, &stage),
        Err(crate::Error::Refused { .. })
    ));
}

#[test]
fn free_ranges_after_a_release_with_rmapbt() {
    let victims: Vec<usize> = (0..20).map(|i| 3 * i + 1).collect();
    let (script, dirs) = interleaved(64, 8192, &[], &victims);
    let img = make("ranges-rmap", &["-m", "rmapbt=1"], &script);
    let _ = remove_dirs_and_check(&img, &strs(&dirs), "all");
    let (stage, fs) = open(&img.path);
    let ranges = free_ranges(&fs).unwrap();
    let bs = u64::from(fs.block_size());
    let total: u64 = ranges.iter().map(|r| (r.end - r.start) / bs).sum();
    assert_eq!(total, xfs_db_free(&img.path));
    stage.begin();
    wipe_free_inodes(&fs, &stage).unwrap();
    stage.keep();
    commit(&img.path, &stage, bs, &ranges);
    assert_repair_clean(&img.path);
    assert_db_check_clean(&img.path);
}
