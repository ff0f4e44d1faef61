//! Bad input: copies of fixtures with one structure broken at a time. Each must give
//! a typed error that names the structure (and the inode where there is one) —
//! never a panic or a hang. Fields are patched and, where the test is about the
//! structure rather than its checksum, the checksum is recomputed so that the
//! structural check is what fires.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::*;
use vmscrub_blockdev::FileDisk;
use vmscrub_ext4::block_group::GroupDesc;
use vmscrub_ext4::dir_htree::{self};
use vmscrub_ext4::extent::{ExtentNode, NodeEntries};
use vmscrub_ext4::superblock::{Superblock, off as sb_off};
use vmscrub_ext4::xattr::XattrBlock;
use vmscrub_ext4::{DirBlockKind, Error, Ext4, Inode, OpenOptions};

struct Img {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn copy(name: &str) -> Img {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.img"));
    std::fs::copy(fixture(name), &path).unwrap();
    Img { _dir: dir, path }
}

fn write(p: &Path, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

fn read(p: &Path, off: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(p).unwrap();
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, off).unwrap();
    b
}

fn try_open(p: &Path) -> Result<Ext4<FileDisk>, Error> {
    Ext4::open(FileDisk::open(p).unwrap())
}

fn lax(p: &Path) -> Ext4<FileDisk> {
    Ext4::open_with(
        FileDisk::open(p).unwrap(),
        OpenOptions {
            verify_checksums: false,
            ..Default::default()
        },
    )
    .unwrap()
}

fn fix_sb(p: &Path) {
    let raw: [u8; 1024] = read(p, 1024, 1024).try_into().unwrap();
    write(
        p,
        1024 + sb_off::CHECKSUM as u64,
        &Superblock::compute_checksum(&raw).to_le_bytes(),
    );
}

fn patch_sb(p: &Path, off: usize, bytes: &[u8]) {
    write(p, 1024 + off as u64, bytes);
    fix_sb(p);
}

fn inode_byte(fs: &Ext4<FileDisk>, ino: u32) -> u64 {
    let (b, o) = fs.inode_location(ino).unwrap();
    b * u64::from(fs.block_size()) + u64::from(o)
}

/// Rewrites inode `ino`'s checksum after a patch.
fn fix_inode(p: &Path, ino: u32) {
    let fs = lax(p);
    let at = inode_byte(&fs, ino);
    let raw = read(p, at, usize::from(fs.superblock().inode_size));
    let c = Inode::compute_checksum(fs.checksum_seed(), ino, &raw);
    write(p, at + 0x7C, &(c as u16).to_le_bytes());
    if raw.len() > 128 && u16::from_le_bytes([raw[0x80], raw[0x81]]) >= 4 {
        write(p, at + 0x82, &((c >> 16) as u16).to_le_bytes());
    }
}

fn patch_inode(p: &Path, ino: u32, off: u64, bytes: &[u8]) {
    let at = inode_byte(&lax(p), ino);
    write(p, at + off, bytes);
    fix_inode(p, ino);
}

fn ino_of(p: &Path, path: &[u8]) -> u32 {
    lax(p).lookup(path, false).unwrap()
}

fn expect_corrupt<T: std::fmt::Debug>(r: Result<T, Error>, what: &str, ino: Option<u32>) -> String {
    match r {
        Err(Error::Corrupt {
            what: w,
            loc,
            detail,
        }) => {
            assert_eq!(w, what, "structure named ({detail})");
            if ino.is_some() {
                assert_eq!(loc.inode, ino, "inode named ({detail})");
            }
            let msg = Error::Corrupt {
                what: w,
                loc,
                detail,
            }
            .to_string();
            assert!(msg.contains(what));
            msg
        }
        other => panic!("expected Corrupt {{ what: {what:?} }}, got {other:?}"),
    }
}

fn expect_csum<T: std::fmt::Debug>(r: Result<T, Error>, structure: &str) {
    match r {
        Err(Error::ChecksumMismatch { structure: s, .. }) => assert_eq!(s, structure),
        other => panic!("expected a {structure} checksum mismatch, got {other:?}"),
    }
}

/// Reads every byte of a file (the walk every bad-input test ends with).
fn read_all(fs: &Ext4<FileDisk>, ino: u32) -> Result<u64, Error> {
    let r = fs.open_file(ino)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    loop {
        let n = r.read_at(off, &mut buf)?;
        if n == 0 {
            return Ok(off);
        }
        off += n as u64;
    }
}

#[test]
fn superblock_fields() {
    let cases: &[(&str, usize, &[u8])] = &[
        ("magic", sb_off::MAGIC, &[0x12, 0x34]),
        ("block size log", sb_off::LOG_BLOCK_SIZE, &[9, 0, 0, 0]),
        (
            "blocks count",
            sb_off::BLOCKS_COUNT_LO,
            &[0xFF, 0xFF, 0xFF, 0x0F],
        ),
        ("inodes count", sb_off::INODES_COUNT, &[7, 0, 0, 0]),
        ("first data block", sb_off::FIRST_DATA_BLOCK, &[5, 0, 0, 0]),
        ("blocks per group", sb_off::BLOCKS_PER_GROUP, &[3, 0, 0, 0]),
        ("inodes per group", sb_off::INODES_PER_GROUP, &[0, 0, 0, 0]),
        ("inode size", sb_off::INODE_SIZE, &[100, 0]),
        ("desc size", sb_off::DESC_SIZE, &[48, 0]),
        ("first ino", sb_off::FIRST_INO, &[2, 0, 0, 0]),
    ];
    for (label, off, bytes) in cases {
        let img = copy("ext4-default");
        patch_sb(&img.path, *off, bytes);
        let msg = expect_corrupt(try_open(&img.path), "superblock", None);
        eprintln!("{label}: {msg}");
    }
}

#[test]
fn superblock_checksum_and_features() {
    let img = copy("ext4-default");
    write(&img.path, 1024 + 0x34, &[9, 9]); // s_mnt_count, checksum left stale
    expect_csum(try_open(&img.path), "superblock");
    assert!(
        lax(&img.path).read_dir(2).is_ok(),
        "verification off still reads"
    );

    for (label, off, bit) in [
        ("unknown incompat", sb_off::FEATURE_INCOMPAT, 0x0100_0000u32),
        ("encrypt", sb_off::FEATURE_INCOMPAT, 0x10000),
        ("casefold", sb_off::FEATURE_INCOMPAT, 0x20000),
        ("compression", sb_off::FEATURE_INCOMPAT, 0x1),
        ("bigalloc", sb_off::FEATURE_RO_COMPAT, 0x200),
        ("verity", sb_off::FEATURE_RO_COMPAT, 0x8000),
    ] {
        let img = copy("ext4-fuzz");
        let old = u32::from_le_bytes(read(&img.path, 1024 + off as u64, 4).try_into().unwrap());
        patch_sb(&img.path, off, &(old | bit).to_le_bytes());
        match try_open(&img.path) {
            Err(Error::Unsupported { feature }) => eprintln!("{label}: {feature}"),
            other => panic!("{label}: expected Unsupported, got {:?}", other.map(|_| ())),
        }
    }
    // An unknown read-only-compatible feature is read, with a note.
    let img = copy("ext4-fuzz");
    let old = u32::from_le_bytes(
        read(&img.path, 1024 + sb_off::FEATURE_RO_COMPAT as u64, 4)
            .try_into()
            .unwrap(),
    );
    patch_sb(
        &img.path,
        sb_off::FEATURE_RO_COMPAT,
        &(old | 0x0100_0000).to_le_bytes(),
    );
    let fs = try_open(&img.path).unwrap();
    assert_eq!(fs.notes().len(), 1);
    assert!(fs.read_dir(2).unwrap().count() > 3);
}

#[test]
fn truncated_images() {
    let img = copy("ext4-fuzz");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&img.path)
        .unwrap();
    f.set_len(1 << 20).unwrap();
    expect_corrupt(try_open(&img.path), "superblock", None);
    f.set_len(1500).unwrap();
    assert!(matches!(
        try_open(&img.path),
        Err(Error::Io {
            what: "superblock",
            ..
        })
    ));
}

#[test]
fn group_descriptor_outside_the_filesystem() {
    for name in ["ext4-default", "ext4-nocsum", "ext4-32bit", "ext2-rich"] {
        let img = copy(name);
        let fs = lax(&img.path);
        let d = fs.group(0).unwrap().clone();
        let at = d.location.0 * u64::from(fs.block_size()) + u64::from(d.location.1);
        let mut raw = d.raw.clone();
        raw[8..12].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes()); // inode table
        if let Some(c) = GroupDesc::compute_checksum(fs.superblock(), 0, &raw) {
            raw[0x1E..0x20].copy_from_slice(&c.to_le_bytes());
        }
        write(&img.path, at, &raw);
        let msg = expect_corrupt(try_open(&img.path), "group descriptor", None);
        assert!(msg.contains("inode table"), "{msg}");
        // Unfixed checksum: the mismatch is what is reported.
        if fs.superblock().has_group_csum() {
            write(&img.path, at + 0x1E, &[0xAB, 0xCD]);
            expect_csum(try_open(&img.path), "group descriptor");
        }
    }
}

#[test]
fn inode_numbers_out_of_range() {
    let fs = open(&fixture("ext4-fuzz"));
    let n = fs.superblock().inodes_count;
    for ino in [0, n + 1, u32::MAX] {
        assert!(
            matches!(fs.inode(ino), Err(Error::InodeOutOfRange { .. })),
            "{ino}"
        );
        assert!(fs.read_dir(ino).is_err());
    }
}

#[test]
fn inode_checksum() {
    let img = copy("ext4-fuzz");
    let ino = ino_of(&img.path, b"/sizes/5000");
    let at = inode_byte(&lax(&img.path), ino);
    write(&img.path, at + 2, &[0x55]); // uid, checksum stale
    let fs = try_open(&img.path).unwrap();
    expect_csum(fs.inode(ino), "inode");
    assert_eq!(lax(&img.path).inode(ino).unwrap().uid & 0xFF, 0x55);
}

#[test]
fn extent_headers() {
    let base = copy("ext4-fuzz");
    let ino = ino_of(&base.path, b"/sizes/300K");
    let cases: &[(&str, u64, &[u8])] = &[
        ("bad magic", 0x28, &[0x0B, 0xF3]),
        ("depth 6", 0x28 + 6, &[6, 0]),
        ("entries > max", 0x28 + 2, &[5, 0]),
        ("max > room", 0x28 + 4, &[9, 0]),
        // First extent: length 0, then start outside the filesystem.
        ("zero length", 0x28 + 12 + 4, &[0, 0]),
        ("outside", 0x28 + 12 + 6, &[0xFF, 0x7F]),
    ];
    for (label, off, bytes) in cases {
        let img = copy("ext4-fuzz");
        patch_inode(&img.path, ino, *off, bytes);
        let fs = try_open(&img.path).unwrap();
        let what = if label.starts_with("zero") || label.starts_with("outside") {
            "extent"
        } else {
            "extent header"
        };
        let msg = expect_corrupt(read_all(&fs, ino), what, Some(ino));
        eprintln!("{label}: {msg}");
    }
}

/// Finds an index node of depth 1 in /frag/fragmented of ext4-1k (depth 2).
fn index_node(p: &Path) -> (u32, u64, Vec<vmscrub_ext4::extent::ExtentIndex>, u16) {
    let fs = lax(p);
    let ino = fs.lookup(b"/frag/fragmented", false).unwrap();
    let tree = fs.extent_tree(&fs.inode(ino).unwrap()).unwrap();
    let node = tree
        .nodes
        .iter()
        .find(|n| n.header.depth == 1)
        .expect("a depth-1 node");
    let NodeEntries::Index(ix) = &node.entries else {
        panic!()
    };
    (ino, node.block.unwrap(), ix.clone(), node.header.max)
}

fn rewrite_node(p: &Path, ino: u32, block: u64, edit: impl FnOnce(&mut [u8])) {
    let fs = lax(p);
    let bs = fs.block_size() as usize;
    let mut buf = read(p, block * bs as u64, bs);
    edit(&mut buf);
    let h = vmscrub_ext4::extent::ExtentHeader::parse(&buf);
    let seed = fs.inode(ino).unwrap().checksum_seed(fs.checksum_seed());
    let c = ExtentNode::compute_checksum(seed, &buf, &h);
    let t = ExtentNode::tail_offset(&h);
    buf[t..t + 4].copy_from_slice(&c.to_le_bytes());
    write(p, block * bs as u64, &buf);
}

#[test]
fn extent_tree_loops_and_depth() {
    // Two index entries sharing a child: the visited set stops it.
    let img = copy("ext4-1k");
    let (ino, block, ix, _) = index_node(&img.path);
    assert!(ix.len() >= 2);
    rewrite_node(&img.path, ino, block, |b| {
        let c = (ix[0].child as u32).to_le_bytes();
        b[12 + 12 + 4..12 + 12 + 8].copy_from_slice(&c);
    });
    let fs = try_open(&img.path).unwrap();
    let msg = expect_corrupt(read_all(&fs, ino), "extent tree", Some(ino));
    assert!(msg.contains("twice"), "{msg}");

    // An index node pointing at itself: a depth mismatch, not a hang.
    let img = copy("ext4-1k");
    let (ino, block, _, _) = index_node(&img.path);
    rewrite_node(&img.path, ino, block, |b| {
        b[16..20].copy_from_slice(&(block as u32).to_le_bytes())
    });
    let fs = try_open(&img.path).unwrap();
    assert!(read_all(&fs, ino).unwrap_err().is_corruption());

    // A child outside the filesystem.
    let img = copy("ext4-1k");
    let (ino, block, _, _) = index_node(&img.path);
    rewrite_node(&img.path, ino, block, |b| {
        b[16..20].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes())
    });
    let fs = try_open(&img.path).unwrap();
    expect_corrupt(read_all(&fs, ino), "extent index", Some(ino));

    // A stale tail checksum.
    let img = copy("ext4-1k");
    let (ino, block, _, _) = index_node(&img.path);
    let bs = 1024;
    write(&img.path, block * bs + 12, &[0x77]);
    let fs = try_open(&img.path).unwrap();
    expect_csum(read_all(&fs, ino), "extent block");
}

fn first_dir_block(p: &Path, path: &[u8]) -> (u32, u64) {
    let fs = lax(p);
    let ino = fs.lookup(path, false).unwrap();
    let phys = fs.extents(ino).unwrap().lookup(0).unwrap();
    (ino, phys)
}

fn fix_leaf(p: &Path, ino: u32, block: u64) {
    let fs = lax(p);
    let bs = fs.block_size() as usize;
    let buf = read(p, block * bs as u64, bs);
    let seed = fs.inode(ino).unwrap().checksum_seed(fs.checksum_seed());
    let c = vmscrub_ext4::dir_entry::compute_leaf_checksum(seed, &buf);
    write(p, block * bs as u64 + bs as u64 - 4, &c.to_le_bytes());
}

#[test]
fn directory_entries() {
    // rec_len too small / not a multiple of 4 / past the block; name_len too long; inode too large.
    let cases: &[(&str, u64, &[u8])] = &[
        ("rec_len 5", 4, &[5, 0]),
        ("rec_len 14", 4, &[14, 0]),
        ("rec_len past end", 4, &[0xF0, 0x3F]),
        ("name_len", 6, &[200]),
        ("inode", 0, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];
    for (label, off, bytes) in cases {
        let img = copy("ext4-fuzz");
        let (ino, blk) = first_dir_block(&img.path, b"/d");
        write(&img.path, blk * 1024 + off, bytes);
        fix_leaf(&img.path, ino, blk);
        let fs = try_open(&img.path).unwrap();
        let r: Result<Vec<_>, Error> = fs.read_dir(ino).unwrap().collect();
        let msg = expect_corrupt(r, "directory entry", Some(ino));
        eprintln!("{label}: {msg}");
        assert!(fs.lookup(b"/d/e/file", false).is_err());
    }
    // Stale leaf checksum.
    let img = copy("ext4-fuzz");
    let (ino, blk) = first_dir_block(&img.path, b"/d");
    write(&img.path, blk * 1024 + 30, &[0x41]);
    let fs = try_open(&img.path).unwrap();
    let r: Result<Vec<_>, Error> = fs.read_dir(ino).unwrap().collect();
    expect_csum(r, "directory block");
}

#[test]
fn htree_levels_and_limits() {
    for (label, off, bytes) in [
        ("levels", 30u64, &[3u8][..]),
        ("info length", 29, &[9]),
        ("limit", 32, &[7, 0]),
    ] {
        let img = copy("ext4-fuzz");
        let (ino, blk) = first_dir_block(&img.path, b"/many");
        write(&img.path, blk * 1024 + off, bytes);
        // Recompute the dx tail so the structure check is what fires.
        let fs = lax(&img.path);
        let dir = fs.inode(ino).unwrap();
        let buf = read(&img.path, blk * 1024, 1024);
        let seed = dir.checksum_seed(fs.checksum_seed());
        if let Ok((_, node)) = dir_htree::parse_root(&buf, true, vmscrub_ext4::Loc::NONE) {
            let c = node.compute_checksum(seed, &buf);
            write(
                &img.path,
                blk * 1024 + node.tail_offset() as u64 + 4,
                &c.to_le_bytes(),
            );
        }
        let fs = try_open(&img.path).unwrap();
        let dir = fs.inode(ino).unwrap();
        let msg = expect_corrupt(
            fs.htree(&dir),
            if label == "limit" {
                "htree node"
            } else {
                "htree root"
            },
            Some(ino),
        );
        eprintln!("{label}: {msg}");
        let r: Result<Vec<_>, Error> = fs.read_dir(ino).unwrap().collect();
        assert!(r.unwrap_err().is_corruption());
    }
    // A leaf of the index read as a dx node must still be a sound block.
    let fs = open(&fixture("ext4-fuzz"));
    let dir = fs.inode(fs.lookup(b"/many", false).unwrap()).unwrap();
    let h = fs.htree(&dir).unwrap().unwrap();
    assert!(matches!(
        fs.dir_block(&dir, 0).unwrap().unwrap().kind,
        DirBlockKind::DxRoot { .. }
    ));
    assert!(h.leaves.len() >= 2);
}

#[test]
fn symlink_loops() {
    let fs = open(&fixture("ext4-fuzz"));
    assert!(matches!(
        fs.lookup(b"/l/loop", true),
        Err(Error::SymlinkLoop { .. })
    ));
    assert!(matches!(
        fs.lookup(b"/l/loop/a/b", false),
        Err(Error::SymlinkLoop { .. })
    ));
}

#[test]
fn xattr_block_entries() {
    let cases: &[(&str, u64, &[u8], &str)] = &[
        ("value offset", 32 + 2, &[0xF0, 0xFF], "xattr entry"),
        ("value size", 32 + 8, &[0, 0, 1, 0], "xattr entry"),
        ("name past end", 32, &[0xFF], "xattr entry"),
        ("magic", 0, &[0, 0, 0, 0], "xattr block header"),
        ("h_blocks", 8, &[2], "xattr block header"),
    ];
    for (label, off, bytes, what) in cases {
        let img = copy("ext4-fuzz");
        let ino = ino_of(&img.path, b"/x/big");
        let fs = lax(&img.path);
        let blk = fs.inode(ino).unwrap().file_acl;
        // Put the entry list's end right at the block end for "name past end".
        if *label == "name past end" {
            let mut b = read(&img.path, blk * 1024, 1024);
            b[32..1024].fill(0xAA);
            write(&img.path, blk * 1024, &b);
        }
        write(&img.path, blk * 1024 + off, bytes);
        let raw = read(&img.path, blk * 1024, 1024);
        let c = XattrBlock::compute_checksum(fs.checksum_seed(), blk, &raw);
        write(&img.path, blk * 1024 + 0x10, &c.to_le_bytes());
        let fs = try_open(&img.path).unwrap();
        let msg = expect_corrupt(fs.xattrs(ino), what, Some(ino));
        eprintln!("{label}: {msg}");
    }
    let img = copy("ext4-fuzz");
    let ino = ino_of(&img.path, b"/x/big");
    let blk = lax(&img.path).inode(ino).unwrap().file_acl;
    write(&img.path, blk * 1024 + 100, &[0x99]);
    expect_csum(try_open(&img.path).unwrap().xattrs(ino), "xattr block");
}

#[test]
fn in_inode_xattr_value_out_of_range() {
    let img = copy("ext4-fuzz");
    let ino = ino_of(&img.path, b"/x/small");
    let fs = lax(&img.path);
    let inode = fs.inode(ino).unwrap();
    let area = inode.xattr_area_offset() as u64;
    // First entry after the 4-byte magic: e_value_offs at +2.
    patch_inode(&img.path, ino, area + 4 + 2, &[0x00, 0x30]);
    let fs = try_open(&img.path).unwrap();
    expect_corrupt(fs.xattrs(ino), "xattr entry", Some(ino));
}

#[test]
fn indirect_blocks() {
    // A single-indirect pointer outside the filesystem.
    let img = copy("ext2-fuzz");
    let ino = ino_of(&img.path, b"/sizes/300K");
    let at = inode_byte(&lax(&img.path), ino);
    write(&img.path, at + 0x28 + 12 * 4, &0x7FFF_0000u32.to_le_bytes());
    let fs = try_open(&img.path).unwrap();
    expect_corrupt(read_all(&fs, ino), "indirect block", Some(ino));

    // The double-indirect block listing itself: a loop.
    let img = copy("ext2-fuzz");
    let ino = ino_of(&img.path, b"/sizes/300K");
    let fs = lax(&img.path);
    let dind = u32::from_le_bytes(fs.inode(ino).unwrap().i_block[52..56].try_into().unwrap());
    assert_ne!(
        dind, 0,
        "300 KiB at 1 KiB blocks uses the double-indirect block"
    );
    write(&img.path, u64::from(dind) * 1024 + 4, &dind.to_le_bytes());
    let fs = try_open(&img.path).unwrap();
    let msg = expect_corrupt(read_all(&fs, ino), "indirect block", Some(ino));
    assert!(msg.contains("twice"), "{msg}");

    // A data pointer outside.
    let img = copy("ext2-fuzz");
    let ino = ino_of(&img.path, b"/sizes/5000");
    let at = inode_byte(&lax(&img.path), ino);
    write(&img.path, at + 0x28, &0xFFFF_FFF0u32.to_le_bytes());
    let fs = try_open(&img.path).unwrap();
    expect_corrupt(read_all(&fs, ino), "block map", Some(ino));
}

#[test]
fn bitmap_checksums() {
    let img = copy("ext4-fuzz");
    let fs = lax(&img.path);
    let d = fs.group(0).unwrap().clone();
    let bs = u64::from(fs.block_size());
    let b = read(&img.path, d.block_bitmap * bs + 200, 1)[0];
    write(&img.path, d.block_bitmap * bs + 200, &[b ^ 0x10]);
    let i = read(&img.path, d.inode_bitmap * bs + 20, 1)[0];
    write(&img.path, d.inode_bitmap * bs + 20, &[i ^ 0x01]);
    let fs = try_open(&img.path).unwrap();
    expect_csum(fs.block_bitmap(0), "block bitmap");
    expect_csum(fs.inode_bitmap(0), "inode bitmap");
    assert!(fs.inodes_in_use().any(|r| r.is_err()));
    assert!(lax(&img.path).block_bitmap(0).is_ok());
}

#[test]
fn journal_superblock() {
    let img = copy("ext4-recover");
    let fs = lax(&img.path);
    let j = fs.journal().unwrap().unwrap();
    let at = j.superblock_block * u64::from(fs.block_size());
    write(&img.path, at, &[0, 0, 0, 0]);
    let fs = try_open(&img.path).unwrap();
    expect_corrupt(fs.journal(), "journal superblock", Some(8));
    let img = copy("ext4-recover");
    write(&img.path, at + 0x1C, &0x7FFF_FFFFu32.to_be_bytes()); // s_start past the log
    expect_corrupt(
        try_open(&img.path).unwrap().journal(),
        "journal superblock",
        Some(8),
    );
}
