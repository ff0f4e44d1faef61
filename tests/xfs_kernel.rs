//! The XFS adapter judged by the kernel: each XFS fixture (made through a
//! read-write loop mount, fixtures/xfs.toml) is mounted read-only, and every
//! path's kind, size, mode, owners, link count, inode number, device number,
//! mtime with nanoseconds, link target, xattrs (POSIX ACLs included) and
//! content digest must equal what `vmscrub::fs::xfs` reads. `xfs_db` confirms
//! the fixture holds the directory and fork forms the reader must handle, and
//! `xfs_repair -n` that the fixtures are sound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod xfs_common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use vmscrub::fs::Filesystem;
use vmscrub::fs::walk::walk;
use vmscrub::fs::xfs::XfsFs;
use vmscrub_blockdev::FileDisk;
use xfs_common::{Mount, Seen, kernel_tree, our_tree};

fn compare(img: &Path, mount_opts: &str) -> BTreeMap<Vec<u8>, Seen> {
    let ours = our_tree(img);
    let theirs = {
        let m = Mount::new(img, mount_opts);
        kernel_tree(m.0.path())
    };
    let only_ours: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    let only_theirs: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "paths only we see: {:?}; only the kernel: {:?}",
        only_ours
            .iter()
            .take(5)
            .map(|p| String::from_utf8_lossy(p))
            .collect::<Vec<_>>(),
        only_theirs
            .iter()
            .take(5)
            .map(|p| String::from_utf8_lossy(p))
            .collect::<Vec<_>>()
    );
    for (path, k) in &theirs {
        assert_eq!(&ours[path], k, "{}", String::from_utf8_lossy(path));
    }
    ours
}

fn xfs_db(img: &Path, cmds: &[&str]) -> String {
    let mut args: Vec<String> = vec!["-r".into()];
    for c in cmds {
        args.push("-c".into());
        args.push((*c).into());
    }
    args.push(img.display().to_string());
    let o = Command::new("xfs_db").args(&args).output().unwrap();
    assert!(o.status.success(), "xfs_db {args:?}");
    String::from_utf8(o.stdout).unwrap()
}

fn repair_clean(img: &Path) {
    let o = Command::new("xfs_repair")
        .args(["-n", "-f", "-o", "force_geometry"])
        .arg(img)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "xfs_repair -n {}: {}",
        img.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn fixture(name: &str) -> PathBuf {
    vmscrub_fixtures::fixture(name)
}

#[test]
fn rich_fixture_reads_as_the_kernel_reads_it() {
    let img = fixture("xfs-rich");
    repair_clean(&img);
    // The fixture holds the forms the reader must handle.
    let fmt = |p: &str| xfs_db(&img, &[&format!("path {p}"), "print core.format"]);
    assert!(fmt("/sf").contains("local"), "shortform directory");
    assert!(fmt("/blk").contains("extents"), "block directory");
    assert!(fmt("/btree").contains("btree"), "B+tree directory");
    assert!(
        fmt("/files/fragmented").contains("btree"),
        "bmap B+tree file"
    );
    let afmt = |p: &str| xfs_db(&img, &[&format!("path {p}"), "print core.aformat"]);
    assert!(
        afmt("/xattr/short").contains("local"),
        "shortform attributes"
    );
    assert!(afmt("/xattr/node").contains("extents"), "attribute blocks");
    // Leaf and node directories: the block at the leaf offset (32 GiB) is a
    // leaf1 block or a da-btree node; attributes in one leaf block and in a node.
    let at_leaf = |p: &str, field: &str| {
        xfs_db(
            &img,
            &[
                &format!("path {p}"),
                "dblock 8388608",
                &format!("print {field}"),
            ],
        )
    };
    assert!(
        at_leaf("/leaf", "lhdr.info.hdr.magic").contains("0x3df1"),
        "leaf directory"
    );
    assert!(
        at_leaf("/node", "nhdr.info.hdr.magic").contains("0x3ebe"),
        "node directory"
    );
    let attr_root = |p: &str| {
        xfs_db(
            &img,
            &[&format!("path {p}"), "ablock 0", "print hdr.info.hdr.magic"],
        )
    };
    assert!(
        attr_root("/xattr/leaf").contains("0x3bee"),
        "attribute leaf"
    );
    assert!(
        attr_root("/xattr/node").contains("0x3ebe"),
        "attribute node"
    );
    let ours = compare(&img, "ro,loop");
    assert!(ours.len() > 4900, "{} paths", ours.len());
    let acl = &ours[&b"/xattr/acl".to_vec()].xattrs;
    assert!(
        acl.contains_key(&b"system.posix_acl_access".to_vec()),
        "{:?}",
        acl.keys()
    );
    let node = &ours[&b"/xattr/node".to_vec()].xattrs;
    assert_eq!(node.len(), 800);
    assert_eq!(ours[&b"/meta/y2100".to_vec()].mtime, (4_102_444_800, 0));
    assert!(ours[&b"/meta/nsec".to_vec()].crtime.is_some());
    data_ranges_match_xfs_db(&img);
}

/// Written extents (xfs_db `bmap`: flag 0) merged and clipped to the size
/// are what `data_ranges` reports; unwritten ones (flag 1) are holes.
fn data_ranges_match_xfs_db(img: &Path) {
    let fs = XfsFs::open(FileDisk::open(img).unwrap()).unwrap();
    for path in [
        "/files/sparse",
        "/files/prealloc",
        "/files/fragmented",
        "/files/3M",
    ] {
        let id = fs.lookup(path.as_bytes()).unwrap();
        let size = fs.metadata(id).unwrap().size;
        let mut want: Vec<std::ops::Range<u64>> = vec![];
        for l in xfs_db(img, &[&format!("path {path}"), "bmap"]).lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!((f[0], f[1]), ("data", "offset"), "{l}");
            let (off, count, flag): (u64, u64, &str) =
                (f[2].parse().unwrap(), f[7].parse().unwrap(), f[9]);
            if flag != "0" {
                continue;
            }
            let r = off * 4096..((off + count) * 4096).min(size);
            match want.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => want.push(r),
            }
        }
        assert!(!want.is_empty(), "{path}");
        assert_eq!(fs.data_ranges(id).unwrap(), want, "{path}");
    }
}

#[test]
fn small_blocks_and_every_v5_feature_read_as_the_kernel_reads_them() {
    let img = fixture("xfs-features");
    repair_clean(&img);
    let ours = compare(&img, "ro,loop");
    assert!(ours.len() > 600, "{} paths", ours.len());
    let fs = XfsFs::open(FileDisk::open(&img).unwrap()).unwrap();
    let feats = fs.inner().superblock().feature_names();
    for f in [
        "crc",
        "finobt",
        "sparse",
        "rmapbt",
        "reflink",
        "inobtcount",
        "bigtime",
        "nrext64",
    ] {
        assert!(feats.contains(&f), "{f} missing from {feats:?}");
    }
    // Below mkfs.xfs's usual minimum (the LVM guest's volumes): 2 AGs, a small log.
    // And 4 KiB sectors, 1 KiB inodes, 64 KiB directory blocks; and inode
    // numbers above 2^32 (8-byte numbers in shortform directories).
    for name in [
        "xfs-rocky-root",
        "xfs-rocky-home",
        "xfs-rocky-boot",
        "xfs-4k-sectors",
        "xfs-wide-inodes",
    ] {
        let img = fixture(name);
        repair_clean(&img);
        let ours = compare(&img, "ro,loop");
        assert!(ours.len() > 1, "{name}");
        if name == "xfs-wide-inodes" {
            assert!(
                ours.values().any(|s| s.ino > u64::from(u32::MAX)),
                "no inode above 2^32"
            );
        }
    }
}

/// v4 (no CRCs): this kernel cannot mount it, so the oracle is xfs_db's
/// listing and the files mkfs copied in from the protofile's sources.
#[test]
fn v4_reads_as_xfs_db_lists_it() {
    let img = fixture("xfs-v4");
    repair_clean(&img);
    let tree = vmscrub_fixtures::fixture("xfs-v4-tree");
    let fs = XfsFs::open(FileDisk::open(&img).unwrap()).unwrap();
    assert_eq!(fs.inner().superblock().version, 4);
    assert!(!fs.inner().superblock().has_ftype());
    let mut ours = BTreeMap::new();
    walk(&fs, fs.root(), b"/", |e| {
        ours.insert(String::from_utf8(e.path.clone()).unwrap(), e.entry.id);
        Ok(true)
    })
    .unwrap();
    let ls = xfs_db(&img, &["ls /", "ls /d", "ls /d/sub"]);
    let mut theirs: Vec<(u64, String)> = ls
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 7 && f[5] != "." && f[5] != "..")
                .then(|| (f[1].parse().unwrap(), f[5].to_string()))
        })
        .collect();
    theirs.sort();
    let mut names: Vec<(u64, String)> = ours
        .iter()
        .map(|(p, id)| (*id, p.rsplit('/').next().unwrap().to_string()))
        .collect();
    names.sort();
    assert_eq!(names, theirs);
    for (path, src) in [
        ("/f", "f"),
        ("/rand", "rand"),
        ("/big", "big"),
        ("/d/sub/deep", "f"),
    ] {
        let mut got = vec![];
        fs.open(ours[path]).unwrap().read_to_end(&mut got).unwrap();
        assert!(got == std::fs::read(tree.join(src)).unwrap(), "{path}");
    }
    assert_eq!(fs.read_link(ours["/link"]).unwrap(), b"f");
    assert_eq!(fs.metadata(ours["/rand"]).unwrap().uid, 1000);
    assert_eq!(fs.metadata(ours["/dev"]).unwrap().rdev, Some((1, 3)));
}

/// A dirty log: the reader says so and reads the on-disk state; the kernel,
/// told not to recover (`norecovery`), sees the same on-disk state.
#[test]
fn dirty_log_is_detected_and_the_on_disk_state_read() {
    let img = fixture("xfs-dirty");
    let fs = XfsFs::open(FileDisk::open(&img).unwrap()).unwrap();
    assert!(fs.inner().log_state().unwrap().is_dirty());
    for clean in ["xfs-rich", "xfs-v4", "xfs-features", "xfs-small"] {
        let fs = XfsFs::open(FileDisk::open(&fixture(clean)).unwrap()).unwrap();
        let state = fs.inner().log_state().unwrap();
        assert!(!state.is_dirty(), "{clean}: {state:?}");
    }
    // nouuid: tests/xfs_log.rs mounts copies of this filesystem.
    compare(&img, "ro,loop,norecovery,nouuid");
}
