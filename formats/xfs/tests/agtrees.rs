//! The per-AG B+trees read by `vmscrub-xfs`, judged by xfs_db (`freesp -s`: the
//! free blocks the bnobt and the AG free lists hold), by the AG headers the kernel wrote (free
//! blocks, inode and free-inode counts) and by each other (bnobt = cntbt,
//! finobt = the inobt's chunks with a free inode, the rmapbt owns every data
//! extent of a file, the refcountbt counts the reflinked copy's blocks twice).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;

use vmscrub_blockdev::FileDisk;
use vmscrub_xfs::{AgTree, Fork, Xfs};

fn open(name: &str) -> (Xfs<FileDisk>, std::path::PathBuf) {
    let img = vmscrub_fixtures::fixture(name);
    (Xfs::open(FileDisk::open(&img).unwrap()).unwrap(), img)
}

fn xfs_db_free_blocks(img: &std::path::Path) -> u64 {
    let o = Command::new("xfs_db")
        .args(["-r", "-c", "freesp -s"])
        .arg(img)
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("total free blocks "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn free_space_and_inode_trees_agree_with_xfs_db_and_the_headers() {
    for name in ["xfs-rich", "xfs-features", "xfs-v4", "xfs-rocky-root"] {
        let (fs, img) = open(name);
        let mut free = 0u64;
        for ag in 0..fs.superblock().ag_count {
            let (agf, agi) = fs.ag_headers(ag).unwrap();
            let bno = fs.free_extents(ag, AgTree::Bno).unwrap();
            let cnt = fs.free_extents(ag, AgTree::Cnt).unwrap();
            let sum =
                |v: &[vmscrub_xfs::FreeExtent]| v.iter().map(|e| u64::from(e.len)).sum::<u64>();
            assert_eq!(
                sum(&bno),
                u64::from(agf.free_blocks),
                "{name} AG {ag}: bnobt"
            );
            assert_eq!(
                sum(&cnt),
                u64::from(agf.free_blocks),
                "{name} AG {ag}: cntbt"
            );
            assert!(
                bno.windows(2).all(|w| w[0].agbno + w[0].len < w[1].agbno),
                "{name}: bnobt order"
            );
            assert!(
                cnt.windows(2)
                    .all(|w| (w[0].len, w[0].agbno) < (w[1].len, w[1].agbno)),
                "{name}: cntbt order"
            );
            // xfs_db's freesp counts the AG free list's blocks as free too.
            let agfl = fs.agfl(ag).unwrap();
            assert_eq!(agfl.len(), agf.fl_count as usize, "{name} AG {ag}: AGFL");
            assert!(
                agfl.iter()
                    .all(|b| !bno.iter().any(|e| e.agbno <= *b && *b < e.agbno + e.len)),
                "{name} AG {ag}: an AGFL block is also in the bnobt"
            );
            free += sum(&bno) + agfl.len() as u64;
            let ino = fs.inode_chunks(ag, AgTree::Ino).unwrap();
            let count: u32 = ino.iter().map(|c| u32::from(c.count)).sum();
            let nfree: u32 = ino.iter().map(|c| u32::from(c.free_count)).sum();
            assert_eq!(
                (count, nfree),
                (agi.count, agi.free_count),
                "{name} AG {ag}: inobt"
            );
            if fs.superblock().feature_names().contains(&"finobt") {
                let with_free: BTreeSet<u32> = ino
                    .iter()
                    .filter(|c| c.free_count > 0)
                    .map(|c| c.start_ino)
                    .collect();
                let fino: BTreeSet<u32> = fs
                    .inode_chunks(ag, AgTree::Fino)
                    .unwrap()
                    .iter()
                    .map(|c| c.start_ino)
                    .collect();
                assert_eq!(fino, with_free, "{name} AG {ag}: finobt");
            }
        }
        assert_eq!(free, xfs_db_free_blocks(&img), "{name}: free blocks");
    }
}

#[test]
fn rmapbt_owns_each_extent_and_refcountbt_counts_the_reflink() {
    let (fs, _) = open("xfs-features");
    let ino = fs.lookup(b"/d/frag", false).unwrap();
    let map = fs.block_map(&fs.inode(ino).unwrap(), Fork::Data).unwrap();
    let sb = fs.superblock();
    let rmaps: Vec<Vec<vmscrub_xfs::Rmap>> =
        (0..sb.ag_count).map(|ag| fs.rmaps(ag).unwrap()).collect();
    assert!(map.extents.len() > 100);
    for e in &map.extents {
        let ag = (e.start >> sb.ag_block_log) as usize;
        let agbno = (e.start & ((1 << sb.ag_block_log) - 1)) as u32;
        let covered = rmaps[ag].iter().any(|r| {
            r.owner == ino
                && r.agbno <= agbno
                && agbno + e.count as u32 <= r.agbno + r.len
                && r.offset & ((1 << 54) - 1) <= e.offset
        });
        assert!(
            covered,
            "extent {e:?} has no reverse mapping to inode {ino}"
        );
    }
    let (fs, _) = open("xfs-rich");
    let copy = fs
        .inode(fs.lookup(b"/files/3M-reflink", false).unwrap())
        .unwrap();
    assert!(copy.is_reflinked());
    let shared: u64 = (0..fs.superblock().ag_count)
        .flat_map(|ag| fs.refcounts(ag).unwrap())
        .filter(|r| r.refcount == 2)
        .map(|r| u64::from(r.len))
        .sum();
    assert_eq!(
        shared,
        3_000_000u64.div_ceil(4096),
        "the reflinked file's blocks, shared twice"
    );
}
