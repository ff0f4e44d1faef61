//! Entry removal judged by others: xfs_repair -n, the kernel's read-only
//! mount (exactly the remaining names), and the removed names' bytes absent
//! from every block of the directory (leaf and free-index blocks included).
//! Every removed name's file has a second hard link in `keep/`, so only its
//! link count changes (done here with `RawInode`, as the editor will).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::dir::EntryPlace;
use crate::edit::inode_raw::{RawInode, field};
use crate::edit::test_image::{self as ti, Fs, Scratch};

/// The five forms (the B+tree one scattered by interleaved fsynced file
/// data, as in the xfs-rich fixture), two directories to empty completely,
/// and a hard link in keep/ for every name.
const POPULATE: &str = r#"
mkdir sf sf-all blk blk-all leaf node btree keep
python3 - <<'PY'
import os
def mk(d, name, data=b""):
    with open(f"{d}/{name}", "wb") as f:
        f.write(data)
        if data:
            f.flush(); os.fsync(f.fileno())
    os.link(f"{d}/{name}", f"keep/{d}-{name}")
for i in range(5): mk("sf", f"sf-entry-{i}")
for i in range(2): mk("sf-all", f"sf-all-entry-{i}")
for i in range(40): mk("blk", f"entry-{i:04d}")
for i in range(30): mk("blk-all", f"gone-{i:04d}")
for i in range(400): mk("leaf", f"entry-with-a-longer-name-{i:05d}")
for i in range(3000): mk("node", "n" * 60 + f"-{i:06d}")
for i in range(700):
    mk("btree", "b" * 100 + f"-{i:06d}", os.urandom(4096))
    if i % 40 == 0:
        os.sync()
PY
"#;

fn dir_ino(fs: &Fs, path: &str) -> u64 {
    fs.lookup(path.as_bytes(), false).unwrap()
}

/// Names to remove: the first and last entries, every `step`-th, and with
/// `whole_block` every name but one of a data block other than the first
/// (that one is returned apart: removing it would empty the block).
fn pick(fs: &Fs, dir: u64, step: usize, whole_block: bool) -> (BTreeSet<Vec<u8>>, Option<Vec<u8>>) {
    let entries = fs.read_dir(&fs.inode(dir).unwrap()).unwrap();
    let block_of = |e: &crate::dir::DirEntry| match e.place {
        EntryPlace::Block { block, .. } => block,
        EntryPlace::Shortform { .. } => 0,
    };
    let first_block = block_of(&entries[0]);
    let victim = entries
        .iter()
        .map(block_of)
        .find(|b| *b != first_block)
        .filter(|_| whole_block);
    let in_victim: Vec<Vec<u8>> = entries
        .iter()
        .filter(|e| Some(block_of(e)) == victim)
        .map(|e| e.name.clone())
        .collect();
    let keep = in_victim.last().cloned();
    let mut out = BTreeSet::new();
    out.insert(entries[0].name.clone());
    out.insert(entries[entries.len() - 1].name.clone());
    for e in entries.iter().step_by(step) {
        out.insert(e.name.clone());
    }
    out.extend(in_victim);
    if let Some(k) = &keep {
        out.remove(k);
    }
    (out, keep)
}

fn remove_all(
    fs: &Fs,
    stage: &Staged<vmscrub_blockdev::FileDisk>,
    dir: u64,
    names: &BTreeSet<Vec<u8>>,
) {
    for name in names {
        let d = fs.inode(dir).unwrap();
        let gone = remove_entry(fs, stage, &d, name).unwrap();
        assert_eq!(gone.file_type, Some(FileType::Regular));
        let mut child = RawInode::read(fs, gone.ino).unwrap();
        let nlink = child.u32(field::NLINK);
        assert_eq!(nlink, 2, "every test file has a second link");
        child.set_u32(field::NLINK, nlink - 1);
        child.write(stage).unwrap();
        let again = remove_entry(fs, stage, &fs.inode(dir).unwrap(), name);
        assert!(
            matches!(again, Err(Error::NotFound { .. })),
            "removed twice"
        );
    }
}

/// Every byte the directory holds: its inode and all its fork's blocks.
fn dir_bytes(fs: &Xfs<vmscrub_blockdev::FileDisk>, dir: u64) -> Vec<u8> {
    let inode = fs.inode(dir).unwrap();
    let mut out = inode.raw().to_vec();
    let map = fs.block_map(&inode, crate::bmap::Fork::Data).unwrap();
    for e in &map.extents {
        for i in 0..e.count {
            out.extend(fs.read_fsb(e.start + i, "test", Loc::NONE).unwrap());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn removes_names_in_every_form() {
    let s = Scratch::new("dirent");
    let img = ti::make(&s, &[], 300 << 20, POPULATE);
    let dirs = [
        ("sf", 0usize, false),
        ("sf-all", 0, false),
        ("blk", 3, false),
        ("blk-all", 0, false),
        ("leaf", 5, true),
        ("node", 7, true),
        ("btree", 7, true),
    ];
    let (plan, before) = ti::edit(&img, |fs, stage| {
        let mut plan = vec![];
        let mut before = BTreeMap::new();
        for (path, step, whole) in dirs {
            let ino = dir_ino(fs, path);
            let inode = fs.inode(ino).unwrap();
            let all: BTreeSet<Vec<u8>> = fs
                .read_dir(&inode)
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            let (names, last) = if step == 0 {
                (all.clone(), None)
            } else {
                pick(fs, ino, step, whole)
            };
            assert_eq!(whole, last.is_some(), "{path}: no second data block");
            let map = fs.block_map(&inode, crate::bmap::Fork::Data).unwrap();
            let geo = Geometry::of(fs);
            let index = (
                geo.mapped(&map, geo.leaf_db, geo.free_db).len(),
                geo.mapped(&map, geo.free_db, u64::MAX).len(),
            );
            match path {
                "blk" | "blk-all" => assert_eq!((map.extents.len(), index), (1, (0, 0))),
                "leaf" => assert_eq!(index, (1, 0), "leaf form: one leaf block"),
                "node" | "btree" => assert!(index.0 > 2 && index.1 > 0, "{path}: {index:?}"),
                _ => {}
            }
            before.insert(path, (inode.format, all));
            remove_all(fs, stage, ino, &names);
            if let Some(last) = last {
                assert_refuses(fs, stage, ino, &last);
            }
            plan.push((path, ino, names));
        }
        ((plan, before), vec![])
    });
    // The forms are the ones meant.
    assert_eq!(before["sf"].0, ForkFormat::Local);
    assert_eq!(before["btree"].0, ForkFormat::Btree);
    ti::assert_repair_clean(&img);
    let (listed, _) = ti::with_ro_mount(&s, &img, |mnt| {
        plan.iter()
            .map(|(path, _, _)| ti::list(&mnt.join(path)))
            .collect::<Vec<_>>()
    });
    let fs = Xfs::open(vmscrub_blockdev::FileDisk::open(&img).unwrap()).unwrap();
    for ((path, ino, names), listed) in plan.iter().zip(listed) {
        let want: BTreeSet<Vec<u8>> = before[path].1.difference(names).cloned().collect();
        assert_eq!(listed, want, "{path}: the kernel lists other names");
        let bytes = dir_bytes(&fs, *ino);
        for n in names {
            assert!(
                !contains(&bytes, n),
                "{path}: {} still in the directory",
                String::from_utf8_lossy(n)
            );
        }
    }
}

/// Removing the last name of a leaf/node data block is refused, and the
/// refused operation's layer is dropped as the editor does.
fn assert_refuses(fs: &Fs, stage: &Staged<vmscrub_blockdev::FileDisk>, dir: u64, name: &[u8]) {
    stage.begin();
    let r = remove_entry(fs, stage, &fs.inode(dir).unwrap(), name);
    assert!(matches!(r, Err(Error::Refused { .. })), "{r:?}");
    stage.drop_op();
}
