//! Refusals: every unsupported feature or state, and every corrupt structure an
//! operation touches, gives the documented typed error — and the image stays
//! byte-identical (the editor writes nothing before commit, and a failed
//! operation keeps nothing). Each case mutates a fresh copy of a fixture, fixing
//! up the checksums the mutation would break so that only the intended fault is
//! left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod edit_support;

use std::os::unix::fs::FileExt;
use std::path::Path;

use edit_support::*;
use vmscrub_blockdev::FileDisk;
use vmscrub_ext4::bitmap::Bitmap;
use vmscrub_ext4::block_group::{GroupDesc, off as gd};
use vmscrub_ext4::inode::off as io;
use vmscrub_ext4::superblock::{Superblock, off as sb};
use vmscrub_ext4::xattr::{XattrBlock, block_off};
use vmscrub_ext4::{
    EditError, EditResult, Editor, EditorOptions, Error, Ext4, Inode, OpenOptions, Refusal,
    dir_entry,
};

const ID_RSA: &[u8] = b"/scrub/home/u/.ssh/SECRETNAME_01_id_rsa";
const KNOWN: &[u8] = b"/scrub/home/u/.ssh/SECRETNAME_02_known";

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

fn read(p: &Path, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    std::fs::File::open(p)
        .unwrap()
        .read_exact_at(&mut b, off)
        .unwrap();
    b
}

fn write(p: &Path, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Patches superblock bytes and fixes its checksum.
fn patch_sb(p: &Path, at: usize, bytes: &[u8]) {
    write(p, 1024 + at as u64, bytes);
    let mut raw: [u8; 1024] = read(p, 1024, 1024).try_into().unwrap();
    let c = Superblock::compute_checksum(&raw);
    raw[sb::CHECKSUM..sb::CHECKSUM + 4].copy_from_slice(&c.to_le_bytes());
    write(p, 1024, &raw);
}

fn sb_u32(p: &Path, at: usize) -> u32 {
    u32_at(&read(p, 1024, 1024), at)
}

fn inode_at(fs: &Ext4<FileDisk>, ino: u32) -> u64 {
    let (b, o) = fs.inode_location(ino).unwrap();
    b * u64::from(fs.block_size()) + u64::from(o)
}

/// Applies `edit` to inode `ino`'s raw bytes and fixes its checksum.
fn patch_inode(p: &Path, ino: u32, edit: impl FnOnce(&mut [u8])) {
    let fs = lax(p);
    let at = inode_at(&fs, ino);
    let mut raw = read(p, at, usize::from(fs.superblock().inode_size));
    edit(&mut raw);
    let c = Inode::compute_checksum(fs.checksum_seed(), ino, &raw);
    raw[io::CHECKSUM_LO..io::CHECKSUM_LO + 2].copy_from_slice(&(c as u16).to_le_bytes());
    raw[io::CHECKSUM_HI..io::CHECKSUM_HI + 2].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
    write(p, at, &raw);
}

/// Applies `edit` to group `g`'s descriptor and fixes its checksum.
fn patch_desc(p: &Path, g: u32, edit: impl FnOnce(&mut [u8])) {
    let fs = lax(p);
    let d = fs.group(g).unwrap().clone();
    let bs = u64::from(fs.block_size());
    let at = d.location.0 * bs + u64::from(d.location.1);
    let mut raw = read(p, at, d.raw.len());
    edit(&mut raw);
    let c = GroupDesc::compute_checksum(fs.superblock(), g, &raw).unwrap();
    raw[gd::CHECKSUM..gd::CHECKSUM + 2].copy_from_slice(&c.to_le_bytes());
    write(p, at, &raw);
}

fn ino(p: &Path, path: &[u8]) -> u32 {
    lax(p).lookup(path, false).unwrap()
}

fn first_block(p: &Path, path: &[u8]) -> u64 {
    let fs = lax(p);
    fs.extents(fs.lookup(path, false).unwrap()).unwrap().extents[0].start
}

/// Opening must fail with an error `check` accepts; the image is unchanged.
fn refuse_open(name: &str, mutate: impl FnOnce(&Path), check: impl Fn(&EditError) -> bool) {
    let img = scratch(name);
    mutate(&img.path);
    let before = file_sha(&img.path);
    let err = Editor::open(
        FileDisk::open_rw(&img.path).unwrap(),
        EditorOptions::default(),
    )
    .unwrap_err();
    assert!(check(&err), "{name}: unexpected {err:?}");
    assert!(!err.to_string().is_empty());
    assert_eq!(file_sha(&img.path), before, "{name}: image changed");
}

/// The operation must fail with an error `check` accepts; after the editor is
/// dropped the image is unchanged.
fn refuse_op<T: std::fmt::Debug>(
    what: &str,
    name: &str,
    mutate: impl FnOnce(&Path),
    op: impl FnOnce(&mut Editor<FileDisk>) -> EditResult<T>,
    check: impl Fn(&EditError) -> bool,
) {
    let img = scratch(name);
    mutate(&img.path);
    let before = file_sha(&img.path);
    let mut ed = Editor::open(
        FileDisk::open_rw(&img.path).unwrap(),
        EditorOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let err = op(&mut ed).unwrap_err();
    assert!(check(&err), "{what}: unexpected {err:?}");
    drop(ed);
    assert_eq!(file_sha(&img.path), before, "{what}: image changed");
}

fn corrupt(what: &'static str) -> impl Fn(&EditError) -> bool {
    move |e| matches!(e, EditError::Read(Error::Corrupt { what: w, .. }) if *w == what)
}

fn csum(structure: &'static str) -> impl Fn(&EditError) -> bool {
    move |e| matches!(e, EditError::Read(Error::ChecksumMismatch { structure: s, .. }) if *s == structure)
}

fn read_unsupported(e: &EditError) -> bool {
    matches!(e, EditError::Read(Error::Unsupported { .. }))
}

fn set_bits(p: &Path, at: usize, bits: u32) {
    let v = sb_u32(p, at) | bits;
    patch_sb(p, at, &v.to_le_bytes());
}

#[test]
fn unsupported_features() {
    type Check = fn(&EditError) -> bool;
    let cases: [(&str, usize, u32, Check); 8] = [
        (
            "unknown incompat",
            sb::FEATURE_INCOMPAT,
            0x0010_0000,
            read_unsupported,
        ),
        ("encrypt", sb::FEATURE_INCOMPAT, 0x10000, read_unsupported),
        ("casefold", sb::FEATURE_INCOMPAT, 0x20000, read_unsupported),
        ("bigalloc", sb::FEATURE_RO_COMPAT, 0x200, read_unsupported),
        ("verity", sb::FEATURE_RO_COMPAT, 0x8000, read_unsupported),
        (
            "quota",
            sb::FEATURE_RO_COMPAT,
            0x100,
            |e| matches!(e, EditError::Unsupported { feature } if feature.contains("quota")),
        ),
        (
            "unknown ro_compat",
            sb::FEATURE_RO_COMPAT,
            0x0040_0000,
            |e| matches!(e, EditError::Unsupported { feature } if feature.contains("0x400000")),
        ),
        (
            "hurd",
            sb::CREATOR_OS,
            1,
            |e| matches!(e, EditError::Unsupported { feature } if feature.contains("Hurd")),
        ),
    ];
    for (what, at, bits, check) in cases {
        println!("case {what}");
        refuse_open("ed-ext4", |p| set_bits(p, at, bits), check);
    }
}

#[test]
fn unsupported_states() {
    // Errors recorded; not cleanly unmounted; orphans; needs_recovery without a journal.
    refuse_open(
        "ed-ext4",
        |p| {
            let st = read(p, 1024 + sb::STATE as u64, 2);
            patch_sb(p, sb::STATE, &[st[0] | 2, st[1]]);
        },
        |e| matches!(e, EditError::Refused(Refusal::ErrorsRecorded)),
    );
    refuse_open(
        "ed-ext2",
        |p| {
            let st = read(p, 1024 + sb::STATE as u64, 2);
            patch_sb(p, sb::STATE, &[st[0] & !1, st[1]]);
        },
        |e| matches!(e, EditError::Refused(Refusal::NotClean)),
    );
    refuse_open(
        "ed-ext4",
        |p| {
            let i = ino(p, KNOWN);
            patch_sb(p, sb::LAST_ORPHAN, &i.to_le_bytes());
        },
        |e| matches!(e, EditError::Refused(Refusal::Orphans { .. })),
    );
    refuse_open(
        "ed-ext2",
        |p| set_bits(p, sb::FEATURE_INCOMPAT, 0x4),
        corrupt("superblock"),
    );
}

#[test]
fn aborted_journal_is_refused() {
    refuse_open(
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let j = fs.journal().unwrap().unwrap();
            let at = j.superblock_block * u64::from(fs.block_size()) + 0x20;
            write(p, at, &(-5i32).to_be_bytes());
        },
        |e| matches!(e, EditError::Refused(Refusal::JournalAborted { errno: -5 })),
    );
}

/// orphan_present with an empty orphan file is what every mounted filesystem
/// with orphan_file shows: accepted, and cleared at commit. With an inode listed
/// in the orphan file, refused.
#[test]
fn orphan_file() {
    let img = scratch("ed-ext4-orphanfile");
    set_bits(&img.path, sb::FEATURE_RO_COMPAT, 0x10000);
    edit(&img.path, caller_zeroes(), |ed| {
        ed.unlink(ID_RSA).unwrap();
    });
    e2fsck_clean(&img.path);
    assert_eq!(
        sb_u32(&img.path, sb::FEATURE_RO_COMPAT) & 0x10000,
        0,
        "orphan_present cleared"
    );
    refuse_open(
        "ed-ext4-orphanfile",
        |p| {
            set_bits(p, sb::FEATURE_RO_COMPAT, 0x10000);
            let fs = lax(p);
            let o = fs.superblock().orphan_file_inum;
            let b = fs.extents(o).unwrap().extents[0].start;
            write(
                p,
                b * u64::from(fs.block_size()),
                &ino(p, KNOWN).to_le_bytes(),
            );
        },
        |e| matches!(e, EditError::Refused(Refusal::Orphans { .. })),
    );
}

#[test]
fn corrupt_structures_touched_by_an_operation() {
    // The target's inode checksum.
    refuse_op(
        "inode checksum",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let at = inode_at(&fs, fs.lookup(ID_RSA, false).unwrap());
            write(p, at + io::UID as u64, &[0x77]);
        },
        |ed| ed.unlink(ID_RSA),
        csum("inode"),
    );
    // An extent tree block of the fragmented file.
    refuse_op(
        "extent block checksum",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let i = fs.lookup(b"/scrub/frag/SECRETNAME_40_frag", false).unwrap();
            let node = fs.extent_tree(&fs.inode(i).unwrap()).unwrap().nodes[0]
                .block
                .unwrap();
            write(p, node * u64::from(fs.block_size()) + 20, &[0xEE]);
        },
        |ed| ed.unlink(b"/scrub/frag/SECRETNAME_40_frag"),
        csum("extent block"),
    );
    // The parent directory's block.
    refuse_op(
        "directory block checksum",
        "ed-ext4",
        |p| {
            let b = first_block(p, b"/scrub/home/u/.ssh");
            let bs = u64::from(lax(p).block_size());
            write(p, b * bs + bs - 100, &[0xEE]);
        },
        |ed| ed.unlink(ID_RSA),
        csum("directory block"),
    );
    // The external xattr block.
    refuse_op(
        "xattr block checksum",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let i = fs
                .inode(fs.lookup(b"/scrub/xattr/SECRETNAME_06_ext", false).unwrap())
                .unwrap();
            write(p, i.file_acl * u64::from(fs.block_size()) + 200, &[0xEE]);
        },
        |ed| ed.unlink(b"/scrub/xattr/SECRETNAME_06_ext"),
        csum("xattr block"),
    );
    // The block bitmap of the group the target's data lies in.
    refuse_op(
        "block bitmap checksum",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let g = (first_block(p, ID_RSA) / u64::from(fs.superblock().blocks_per_group)) as u32;
            let bm = fs.group(g).unwrap().block_bitmap;
            write(p, bm * u64::from(fs.block_size()) + 4000, &[0x5A]);
        },
        |ed| ed.unlink(ID_RSA),
        csum("block bitmap"),
    );
    // Bad accounting: the descriptor's free count disagrees with its bitmap.
    refuse_op(
        "group free count",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let g = (first_block(p, ID_RSA) / u64::from(fs.superblock().blocks_per_group)) as u32;
            patch_desc(p, g, |d| {
                let v = u16::from_le_bytes([
                    d[gd::FREE_BLOCKS_COUNT_LO],
                    d[gd::FREE_BLOCKS_COUNT_LO + 1],
                ]);
                d[gd::FREE_BLOCKS_COUNT_LO..gd::FREE_BLOCKS_COUNT_LO + 2]
                    .copy_from_slice(&(v + 1).to_le_bytes());
            });
        },
        |ed| ed.unlink(ID_RSA),
        corrupt("group descriptor"),
    );
    // A block the file owns is marked free (bitmap, its checksum and the count
    // all agree, so only the double ownership is wrong).
    refuse_op(
        "owned block marked free",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let bpg = u64::from(fs.superblock().blocks_per_group);
            let b = first_block(p, ID_RSA);
            let g = (b / bpg) as u32;
            let bm = fs.group(g).unwrap().block_bitmap;
            let bs = u64::from(fs.block_size());
            let mut bits = read(p, bm * bs, bs as usize);
            let i = (b % bpg) as usize;
            bits[i / 8] &= !(1 << (i % 8));
            write(p, bm * bs, &bits);
            let c = Bitmap::compute_checksum(fs.checksum_seed(), &bits, bpg as u32);
            patch_desc(p, g, |d| {
                let v = u16::from_le_bytes([
                    d[gd::FREE_BLOCKS_COUNT_LO],
                    d[gd::FREE_BLOCKS_COUNT_LO + 1],
                ]);
                d[gd::FREE_BLOCKS_COUNT_LO..gd::FREE_BLOCKS_COUNT_LO + 2]
                    .copy_from_slice(&(v + 1).to_le_bytes());
                d[gd::BLOCK_BITMAP_CSUM_LO..gd::BLOCK_BITMAP_CSUM_LO + 2]
                    .copy_from_slice(&(c as u16).to_le_bytes());
                d[gd::BLOCK_BITMAP_CSUM_HI..gd::BLOCK_BITMAP_CSUM_HI + 2]
                    .copy_from_slice(&((c >> 16) as u16).to_le_bytes());
            });
        },
        |ed| ed.unlink(ID_RSA),
        corrupt("block bitmap"),
    );
    // An inode in use marked free in the inode bitmap.
    refuse_op(
        "inode marked free",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let i = fs.lookup(ID_RSA, false).unwrap();
            let ipg = fs.superblock().inodes_per_group;
            let g = (i - 1) / ipg;
            let bm = fs.group(g).unwrap().inode_bitmap;
            let bs = u64::from(fs.block_size());
            let mut bits = read(p, bm * bs, bs as usize);
            let x = ((i - 1) % ipg) as usize;
            bits[x / 8] &= !(1 << (x % 8));
            write(p, bm * bs, &bits);
            let c = Bitmap::compute_checksum(fs.checksum_seed(), &bits, ipg);
            patch_desc(p, g, |d| {
                let v = u16::from_le_bytes([
                    d[gd::FREE_INODES_COUNT_LO],
                    d[gd::FREE_INODES_COUNT_LO + 1],
                ]);
                d[gd::FREE_INODES_COUNT_LO..gd::FREE_INODES_COUNT_LO + 2]
                    .copy_from_slice(&(v + 1).to_le_bytes());
                d[gd::INODE_BITMAP_CSUM_LO..gd::INODE_BITMAP_CSUM_LO + 2]
                    .copy_from_slice(&(c as u16).to_le_bytes());
                d[gd::INODE_BITMAP_CSUM_HI..gd::INODE_BITMAP_CSUM_HI + 2]
                    .copy_from_slice(&((c >> 16) as u16).to_le_bytes());
            });
        },
        |ed| ed.unlink(ID_RSA),
        corrupt("inode bitmap"),
    );
    // An extent pointing into the inode table: never "freed".
    refuse_op(
        "extent into metadata",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let itable = fs.group(0).unwrap().inode_table;
            let i = fs.lookup(KNOWN, false).unwrap();
            patch_inode(p, i, |raw| {
                // Root leaf, first extent: ee_start_lo at 12 + 8 of i_block.
                let at = io::BLOCK + 12 + 8;
                raw[at..at + 4].copy_from_slice(&(itable as u32 + 3).to_le_bytes());
            });
        },
        |ed| ed.unlink(KNOWN),
        corrupt("block map"),
    );
    // An entry pointing at an inode with no links.
    refuse_op(
        "zero link count",
        "ed-ext4",
        |p| {
            let i = ino(p, ID_RSA);
            patch_inode(p, i, |raw| {
                raw[io::LINKS_COUNT..io::LINKS_COUNT + 2].fill(0)
            });
        },
        |ed| ed.unlink(ID_RSA),
        corrupt("directory entry"),
    );
    // An entry whose type code says directory for a regular file.
    refuse_op(
        "entry type",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let dir = fs.lookup(b"/scrub/home/u/.ssh", false).unwrap();
            let e = fs
                .find_entry(dir, b"SECRETNAME_01_id_rsa")
                .unwrap()
                .unwrap();
            let vmscrub_ext4::DirEntryPlace::Block { physical, .. } = e.place else {
                panic!("not in a block")
            };
            let bs = u64::from(fs.block_size());
            let mut b = read(p, physical * bs, bs as usize);
            b[e.offset as usize + 7] = 2;
            let seed = fs.inode(dir).unwrap().checksum_seed(fs.checksum_seed());
            let c = dir_entry::compute_leaf_checksum(seed, &b);
            let n = b.len();
            b[n - 4..].copy_from_slice(&c.to_le_bytes());
            write(p, physical * bs, &b);
        },
        |ed| ed.unlink(ID_RSA),
        corrupt("directory entry"),
    );
    // A shared xattr block whose reference count says nobody uses it.
    refuse_op(
        "xattr refcount 0",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let i = fs
                .inode(fs.lookup(b"/scrub/xattr/SECRETNAME_08_sa", false).unwrap())
                .unwrap();
            let bs = u64::from(fs.block_size());
            let mut b = read(p, i.file_acl * bs, bs as usize);
            b[block_off::REFCOUNT..block_off::REFCOUNT + 4].fill(0);
            let c = XattrBlock::compute_checksum(fs.checksum_seed(), i.file_acl, &b);
            b[block_off::CHECKSUM..block_off::CHECKSUM + 4].copy_from_slice(&c.to_le_bytes());
            write(p, i.file_acl * bs, &b);
        },
        |ed| ed.unlink(b"/scrub/xattr/SECRETNAME_08_sa"),
        corrupt("xattr block header"),
    );
    // A subdirectory deep in a removed tree whose '..' points elsewhere: the
    // whole removal is refused, nothing of its first part kept.
    refuse_op(
        "dotdot",
        "ed-ext4",
        |p| {
            let fs = lax(p);
            let d = fs
                .lookup(
                    b"/scrub/tree/SECRETNAME_20_d1/SECRETNAME_21_d2/SECRETNAME_22_d3",
                    false,
                )
                .unwrap();
            let di = fs.inode(d).unwrap();
            let b = fs.extents(d).unwrap().extents[0].start;
            let bs = u64::from(fs.block_size());
            let mut blk = read(p, b * bs, bs as usize);
            blk[12..16].copy_from_slice(&2u32.to_le_bytes());
            let c = dir_entry::compute_leaf_checksum(di.checksum_seed(fs.checksum_seed()), &blk);
            let n = blk.len();
            blk[n - 4..].copy_from_slice(&c.to_le_bytes());
            write(p, b * bs, &blk);
        },
        |ed| ed.remove_tree(b"/scrub/tree"),
        corrupt("directory entry"),
    );
}
