//! The editor over the feature matrix of fixtures/ext4-editor.toml: on a copy of
//! each image, remove files (plain, inline, with external / shared / in-inode
//! xattrs, hard-linked, fragmented, sparse), whole trees (with symlinks, devices,
//! fifos, sockets, hard links in and out), names from a 20 000-entry htree
//! directory and from an inline directory, truncate a file with preallocated
//! blocks and rewrite others shorter — then let independent tools judge:
//!
//! - `e2fsck -fn` exits 0 and reports nothing;
//! - debugfs and ext4-view see exactly the expected tree, and every file not
//!   targeted is byte-identical with identical metadata (a full walk before and
//!   after, minus what was removed, plus the expected link-count changes);
//! - every inode slot freed is all zeros and free in its bitmap, every block
//!   freed is zero and free;
//! - residual check: none of the removed content markers, xattr markers, symlink
//!   targets or names occurs anywhere in the raw image (journal included). Before
//!   the edit each of them must be present, and only inside the blocks of the
//!   files that own them (so a stale copy in the fixture cannot hide a miss).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod edit_support;

use std::collections::HashSet;

use common::*;
use edit_support::*;
use vmscrub_blockdev::{FileDisk, ReadAt};
use vmscrub_ext4::{EditError, Editor, EditorOptions, Ext4, FileType};

const SSH: &str = "/scrub/home/u/.ssh";

/// Unlinked one by one: (path, expect freed).
const UNLINK: &[(&str, bool)] = &[
    ("/scrub/home/u/.ssh/SECRETNAME_01_id_rsa", true),
    ("/scrub/home/u/.ssh/SECRETNAME_02_known", true),
    ("/scrub/xattr/SECRETNAME_06_ext", true),
    ("/scrub/xattr/SECRETNAME_07_inl", true),
    ("/scrub/xattr/SECRETNAME_08_sa", true),
    ("/scrub/xattr/SECRETNAME_09_sb", true),
    ("/scrub/xattr/SECRETNAME_10_sc", true),
    ("/scrub/links/SECRETNAME_11_a", false),
    ("/scrub/links/SECRETNAME_12_b", true),
    ("/scrub/links/SECRETNAME_13_c", false),
    ("/scrub/frag/SECRETNAME_40_frag", true),
    ("/scrub/frag/SECRETNAME_41_sparse", true),
    ("/scrub/inline-dir/SECRETNAME_50_x", true),
    ("/scrub/inline-dir/SECRETNAME_53_w", true),
    ("/scrub/inline-dir/SECRETNAME_54_v", true),
];

const TREES: &[&str] = &["/scrub/tree", "/scrub/inline-dir"];

/// Content markers that must be gone afterwards (removed, truncated or rewritten).
const MARKERS: &[&str] = &[
    "SECRETDATA_01:",
    "SECRETDATA_02:",
    "SECRETDATA_03:",
    "SECRETDATA_04:",
    "SECRETDATA_05:",
    "SECRETDATA_06:",
    "SECRETDATA_07:",
    "SECRETDATA_08:",
    "SECRETDATA_09:",
    "SECRETDATA_10:",
    "SECRETDATA_11:",
    "SECRETDATA_30:",
    "SECRETDATA_31:",
    "SECRETDATA_32:",
    "SECRETDATA_33:",
    "SECRETDATA_34:",
    "SECRETDATA_40:",
    "SECRETDATA_41:",
    "SECRETDATA_42:",
    "SECRETDATA_56:",
    "SECRETXATTR_06:",
    "SECRETXATTR_07:",
    "SECRETXATTR_34:",
    "SECRETLINK_37",
    "SECRETLINK_38:",
];

fn rewrite_05() -> Vec<u8> {
    b"REPLACED LINE\n"
        .iter()
        .copied()
        .cycle()
        .take(5000)
        .collect()
}

/// New content of the fragmented file: text in block 0, zeros over the punched
/// (odd) blocks, 20 blocks long (so ten one-block extents stay: a depth-1 tree).
fn rewrite_42(bs: u64, size: u64) -> Vec<u8> {
    let mut v = b"REWRITTEN-42\n".to_vec();
    v.resize((19 * bs + 7).min(size) as usize, 0);
    v
}

struct Plan {
    removed: HashSet<Vec<u8>>,
    names: Vec<Vec<u8>>,
    rewrites: Vec<(&'static str, Vec<u8>)>,
    big: Vec<Vec<u8>>,
}

fn plan(before: &OurTree, bs: u64) -> Plan {
    let mut removed = HashSet::new();
    for (p, _) in UNLINK {
        removed.insert(p.as_bytes().to_vec());
    }
    for t in TREES {
        removed.insert(t.as_bytes().to_vec());
    }
    let big: Vec<Vec<u8>> = before
        .nodes
        .keys()
        .filter(|p| p.starts_with(b"/scrub/bigdir/"))
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, p)| p.clone())
        .collect();
    removed.extend(big.iter().cloned());
    // Every SECRETNAME component below something removed.
    let mut names = Vec::new();
    for p in before.nodes.keys() {
        let gone = removed.contains(p)
            || removed
                .iter()
                .any(|r| p.len() > r.len() && p.starts_with(r) && p[r.len()] == b'/');
        if gone {
            let name = p.rsplit(|&c| c == b'/').next().unwrap().to_vec();
            if name.starts_with(b"SECRETNAME_") {
                names.push(name);
            }
        }
    }
    let size42 = before.nodes[&b"/scrub/frag/KEEPNAME_42_frag-rewrite".to_vec()].size;
    Plan {
        removed,
        names,
        rewrites: vec![
            (
                "/scrub/etc/KEEPNAME_03_machine-id",
                b"uninitialized\n".to_vec(),
            ),
            ("/scrub/log/KEEPNAME_04_big.log", Vec::new()),
            ("/scrub/log/KEEPNAME_05_rewrite.log", rewrite_05()),
            (
                "/scrub/frag/KEEPNAME_42_frag-rewrite",
                rewrite_42(bs, size42),
            ),
            ("/scrub/etc/KEEPNAME_56_inline-rewrite", b"short\n".to_vec()),
        ],
        big,
    }
}

/// Before the edit: every marker and name is present, each name exactly once,
/// and every SECRET* byte string lies inside blocks that /scrub owns (or in an
/// inode table).
fn precheck(
    name: &str,
    img: &std::path::Path,
    fs: &Ext4<FileDisk>,
    patterns: &[Vec<u8>],
    names: &[Vec<u8>],
) {
    let found = occurrences(img, patterns);
    for p in patterns {
        assert!(
            found.contains_key(p),
            "{name}: {} is not in the image before the edit",
            String::from_utf8_lossy(p)
        );
    }
    for n in names {
        assert_eq!(
            found[n].len(),
            1,
            "{name}: {} occurs {} times before the edit",
            String::from_utf8_lossy(n),
            found[n].len()
        );
    }
    let (_, mut allowed) = owned_below(fs, b"/scrub");
    allowed.union_with(&inode_table_blocks(fs));
    let bs = u64::from(fs.block_size());
    let any = occurrences(
        img,
        &[
            b"SECRETDATA_".to_vec(),
            b"SECRETXATTR_".to_vec(),
            b"SECRETLINK_".to_vec(),
            b"SECRETNAME_".to_vec(),
        ],
    );
    for (p, offs) in any {
        for o in offs {
            assert!(
                allowed.contains(o / bs),
                "{name}: {} at byte {o} (block {}) lies outside the blocks of /scrub: a stale copy in the fixture",
                String::from_utf8_lossy(&p),
                o / bs
            );
        }
    }
}

fn scenario(name: &str) {
    let img = scratch(name);
    let fs = open(&img.path);
    let bs = u64::from(fs.block_size());
    let before = walk_ours(&fs);
    let plan = plan(&before, bs);
    let mut patterns: Vec<Vec<u8>> = MARKERS.iter().map(|m| m.as_bytes().to_vec()).collect();
    patterns.extend(plan.names.iter().cloned());
    precheck(name, &img.path, &fs, &patterns, &plan.names);
    let (scrub_inodes, scrub_blocks) = owned_below(&fs, b"/scrub");
    let shared_block = fs
        .inode(fs.lookup(b"/keep/xattr-sd", false).unwrap())
        .unwrap()
        .file_acl;
    drop(fs);

    let ((), report) = edit(&img.path, caller_zeroes(), |ed| {
        for (p, freed) in UNLINK {
            let u = ed
                .unlink(p.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: unlink {p}: {e}"));
            assert_eq!(u.freed, *freed, "{name}: {p}: {u:?}");
            assert_eq!(u.links_left == 0, *freed, "{name}: {p}: {u:?}");
        }
        let t = ed.remove_tree(b"/scrub/tree").unwrap();
        // 30 (+ its hard link 35), 31, 32, 33, 34, 36 (kept), 37, 38, 39, 43, 44.
        assert_eq!((t.files, t.dirs), (12, 9), "{name}: {t:?}");
        assert_eq!(t.kept.len(), 1, "{name}: {t:?}");
        assert_eq!(
            t.kept[0].path, b"/scrub/tree/SECRETNAME_36_keep-hl",
            "{name}"
        );
        assert_eq!(t.kept[0].links_left, 1, "{name}");
        let t = ed.remove_tree(b"/scrub/inline-dir").unwrap();
        assert_eq!((t.files, t.dirs, t.kept.len()), (2, 1, 0), "{name}: {t:?}");
        for (p, content) in &plan.rewrites {
            let s = if content.is_empty() {
                ed.truncate(p.as_bytes())
            } else {
                ed.rewrite(p.as_bytes(), content)
            }
            .unwrap_or_else(|e| panic!("{name}: rewrite {p}: {e}"));
            assert_eq!(s.new_size, content.len() as u64, "{name}: {p}");
        }
        for p in &plan.big {
            assert!(ed.unlink(p).unwrap().freed, "{name}");
        }
    });
    assert!(report.inodes_freed > 20, "{name}: {report:?}");
    assert!(!report.zero_ranges.is_empty(), "{name}");

    e2fsck_clean(&img.path);
    let fs = open(&img.path);
    let after = walk_ours(&fs);

    // The expected tree: removed paths gone, link counts and rewritten content updated.
    let mut want = without(&before, &plan.removed);
    for (p, d) in [("/keep/linked", 1u16), ("/keep/dir/file", 1)] {
        want.nodes.get_mut(p.as_bytes()).unwrap().nlink -= d;
    }
    want.nodes.get_mut(b"/scrub".as_slice()).unwrap().nlink -= 2;
    for (p, content) in &plan.rewrites {
        let n = want.nodes.get_mut(p.as_bytes()).unwrap();
        n.size = content.len() as u64;
        n.sha256 = Some(sha(content));
        n.block_map_holes = after.nodes[p.as_bytes()].block_map_holes;
        // Inline files show their spill-over as the system.data xattr.
        if let Some(v) = n.xattrs.get_mut(b"system.data".as_slice()) {
            *v = content.get(60..).unwrap_or_default().to_vec();
        }
    }
    for (p, n) in &want.nodes {
        assert_eq!(
            Some(n),
            after.nodes.get(p),
            "{name}: {}",
            String::from_utf8_lossy(p)
        );
    }
    assert_eq!(want.nodes.len(), after.nodes.len(), "{name}: path count");
    assert_eq!(want.dirs, after.dirs, "{name}: directory listings");

    // The shared xattr block of /keep/xattr-sd stays, now with one reference.
    let sd = fs
        .inode(fs.lookup(b"/keep/xattr-sd", false).unwrap())
        .unwrap();
    assert_eq!(sd.file_acl, shared_block, "{name}");
    if shared_block != 0 {
        let refs = fs.xattr_block(&sd).unwrap().refcount;
        assert_eq!(
            refs, 1,
            "{name}: refcount of the block /keep/xattr-sd shared"
        );
    }
    // The slack after each rewritten file's end is zero on disk.
    for (p, content) in &plan.rewrites {
        let ino = fs.lookup(p.as_bytes(), false).unwrap();
        let inode = fs.inode(ino).unwrap();
        let n = content.len() as u64;
        if fs.is_inline(&inode) || n.is_multiple_of(bs) {
            continue;
        }
        // The rewritten fragmented file ends in a hole (zeros, nothing stored).
        let Some(phys) = fs.file_map(&inode).unwrap().lookup(n / bs) else {
            continue;
        };
        let mut b = vec![0u8; bs as usize];
        fs.device().read_exact_at(&mut b, phys * bs).unwrap();
        assert!(
            b[(n % bs) as usize..].iter().all(|&c| c == 0),
            "{name}: {p}: slack"
        );
    }
    drop(fs);

    let (freed_i, freed_b) = assert_released(name, &img.path, &scrub_inodes, &scrub_blocks);
    assert!(
        freed_i as u64 >= report.inodes_freed.min(40),
        "{name}: {freed_i} inodes checked"
    );
    assert!(freed_b > 100, "{name}: {freed_b} blocks checked");
    assert_no_residue(name, &img.path, &patterns);
    assert_matches_debugfs(name, &img.path, &after);
    // ext4-view refuses meta_bg, inline_data, ea_inode and 128-byte inodes.
    let view = matches_ext4_view(name, &img.path, &after);
    let view_supported = !matches!(
        name,
        "ed-ext4-metabg" | "ed-ext4-inline" | "ed-ext4-eainode" | "ed-ext4-128inode"
    );
    assert!(
        view || !view_supported,
        "{name}: ext4-view could not load the edited image"
    );
}

macro_rules! matrix {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            scenario($name);
        }
    )*};
}

matrix! {
    edit_ext4 => "ed-ext4",
    edit_ext4_1k => "ed-ext4-1k",
    edit_ext4_2k => "ed-ext4-2k",
    edit_ext4_nocsum => "ed-ext4-nocsum",
    edit_ext4_32bit => "ed-ext4-32bit",
    edit_ext4_inline => "ed-ext4-inline",
    edit_ext4_metabg => "ed-ext4-metabg",
    edit_ext4_64k => "ed-ext4-64k",
    edit_ext4_eainode => "ed-ext4-eainode",
    edit_ext4_128inode => "ed-ext4-128inode",
    edit_ext4_noextent => "ed-ext4-noextent",
    edit_ext2 => "ed-ext2",
    edit_ext3 => "ed-ext3",
    edit_ext4_orphanfile => "ed-ext4-orphanfile",
}

#[test]
fn every_editor_fixture_is_in_the_matrix() {
    let recipe =
        std::fs::read_to_string(vmscrub_fixtures::repo_root().join("fixtures/ext4-editor.toml"))
            .unwrap();
    let mut names: Vec<&str> = recipe
        .lines()
        .filter_map(|l| l.strip_prefix("[fs.").and_then(|r| r.strip_suffix(']')))
        .collect();
    names.sort();
    let src = include_str!("editor.rs");
    for n in names {
        assert!(
            src.contains(&format!("=> \"{n}\"")),
            "{n} has no matrix test"
        );
    }
}

/// The negative control: the same removal without zeroing the reported ranges
/// leaves the content in the image, and the residual check finds it.
#[test]
fn residual_check_sees_unzeroed_ranges() {
    let img = scratch("ed-ext4");
    let dev = FileDisk::open_rw(&img.path).unwrap();
    let mut ed = Editor::open(dev, caller_zeroes()).unwrap();
    ed.unlink(format!("{SSH}/SECRETNAME_01_id_rsa").as_bytes())
        .unwrap();
    let report = ed.commit().unwrap();
    // Not zeroed: the data is still there ...
    let found = occurrences(
        &img.path,
        &[b"SECRETDATA_01:".to_vec(), b"SECRETNAME_01_id_rsa".to_vec()],
    );
    assert!(
        found.contains_key(b"SECRETDATA_01:".as_slice()),
        "the content survives without zeroing"
    );
    // ... but the name, wiped in place by the editor, is not.
    assert!(
        !found.contains_key(b"SECRETNAME_01_id_rsa".as_slice()),
        "names are wiped in place"
    );
    // Zeroing the reported ranges removes it.
    zero(&img.path, &report.zero_ranges);
    assert_no_residue("ed-ext4", &img.path, &[b"SECRETDATA_01:".to_vec()]);
    e2fsck_clean(&img.path);
}

/// The default options zero the ranges through the device.
#[test]
fn default_options_zero_the_ranges() {
    let img = scratch("ed-ext4-1k");
    let (_, report) = edit(&img.path, EditorOptions::default(), |ed| {
        ed.remove_tree(b"/scrub/tree").unwrap();
        ed.truncate(b"/scrub/log/KEEPNAME_04_big.log").unwrap();
    });
    assert!(report.journal_reset);
    e2fsck_clean(&img.path);
    let data = std::fs::read(&img.path).unwrap();
    for r in report.zero_ranges.iter() {
        assert!(
            data[r.start as usize..r.end as usize]
                .iter()
                .all(|&c| c == 0),
            "{r:?}"
        );
    }
    assert_no_residue(
        "ed-ext4-1k",
        &img.path,
        &[
            b"SECRETDATA_33:".to_vec(),
            b"SECRETDATA_04:".to_vec(),
            b"SECRETNAME_26_d7".to_vec(),
        ],
    );
}

/// Removing one of two inodes sharing an xattr block keeps the block (refcount
/// 2 → 1, checksum updated) and the other inode's xattrs.
#[test]
fn shared_xattr_block_loses_one_reference() {
    for name in ["ed-ext4", "ed-ext4-nocsum", "ed-ext2"] {
        let img = scratch(name);
        let fs = open(&img.path);
        let b_ino = fs.lookup(b"/scrub/xattr/SECRETNAME_09_sb", false).unwrap();
        let b = fs.inode(b_ino).unwrap();
        assert_eq!(
            fs.xattr_block(&b).unwrap().refcount,
            2,
            "{name}: fixture shares the block"
        );
        let xattrs = fs.xattrs(b_ino).unwrap();
        drop(fs);
        edit(&img.path, caller_zeroes(), |ed| {
            ed.unlink(b"/scrub/xattr/SECRETNAME_08_sa").unwrap();
        });
        e2fsck_clean(&img.path);
        let fs = open(&img.path);
        let b = fs.inode(b_ino).unwrap();
        let blk = fs.xattr_block(&b).unwrap();
        assert_eq!(blk.refcount, 1, "{name}");
        assert!(fs.block_in_use(blk.block).unwrap(), "{name}");
        assert_eq!(fs.xattrs(b_ino).unwrap(), xattrs, "{name}");
    }
}

/// Hard links: the caller learns what survives, and the survivor is intact.
#[test]
fn hard_links_are_reported() {
    let img = scratch("ed-ext4");
    let fs = open(&img.path);
    let keep = fs.lookup(b"/keep/linked", false).unwrap();
    let content = fs.read_to_vec(keep, 1 << 20).unwrap();
    drop(fs);
    let (r, _) = edit(&img.path, caller_zeroes(), |ed| {
        let c = ed.unlink(b"/scrub/links/SECRETNAME_13_c").unwrap();
        let a = ed.unlink(b"/scrub/links/SECRETNAME_11_a").unwrap();
        let b = ed.unlink(b"/scrub/links/SECRETNAME_12_b").unwrap();
        (c, a, b)
    });
    assert_eq!((r.0.ino, r.0.links_left, r.0.freed), (keep, 1, false));
    assert_eq!((r.1.links_left, r.1.freed), (1, false));
    assert_eq!((r.2.links_left, r.2.freed, r.2.ino), (0, true, r.1.ino));
    e2fsck_clean(&img.path);
    let fs = open(&img.path);
    assert_eq!(fs.read_to_vec(keep, 1 << 20).unwrap(), content);
    assert_eq!(fs.inode(keep).unwrap().links_count, 1);
    assert_no_residue(
        "ed-ext4",
        &img.path,
        &[b"SECRETDATA_11:".to_vec(), b"SECRETNAME_13_c".to_vec()],
    );
}

/// `EditorOptions::time`: rewritten files and directories that lost an entry get
/// the given mtime and ctime; everything else keeps its times.
#[test]
fn time_policy() {
    let t = vmscrub_ext4::Timestamp {
        secs: 1_800_000_000,
        nsecs: 42,
    };
    let img = scratch("ed-ext4");
    let fs = open(&img.path);
    let keep_before = fs
        .inode(fs.lookup(b"/keep/dir/file", false).unwrap())
        .unwrap();
    let ssh_before = fs.inode(fs.lookup(SSH.as_bytes(), false).unwrap()).unwrap();
    drop(fs);
    let opts = EditorOptions {
        time: Some(t),
        ..caller_zeroes()
    };
    edit(&img.path, opts, |ed| {
        ed.unlink(format!("{SSH}/SECRETNAME_01_id_rsa").as_bytes())
            .unwrap();
        ed.rewrite(b"/scrub/etc/KEEPNAME_03_machine-id", b"x\n")
            .unwrap();
    });
    e2fsck_clean(&img.path);
    let fs = open(&img.path);
    let ssh = fs.inode(fs.lookup(SSH.as_bytes(), false).unwrap()).unwrap();
    assert_eq!((ssh.mtime, ssh.ctime), (t, t));
    assert_eq!(ssh.atime, ssh_before.atime);
    let mid = fs
        .inode(
            fs.lookup(b"/scrub/etc/KEEPNAME_03_machine-id", false)
                .unwrap(),
        )
        .unwrap();
    assert_eq!((mid.mtime, mid.ctime), (t, t));
    let keep = fs
        .inode(fs.lookup(b"/keep/dir/file", false).unwrap())
        .unwrap();
    assert_eq!(
        (keep.mtime, keep.ctime),
        (keep_before.mtime, keep_before.ctime)
    );
    // The default keeps times.
    let img = scratch("ed-ext4");
    edit(&img.path, caller_zeroes(), |ed| {
        ed.unlink(format!("{SSH}/SECRETNAME_01_id_rsa").as_bytes())
            .unwrap();
    });
    let fs = open(&img.path);
    let ssh = fs.inode(fs.lookup(SSH.as_bytes(), false).unwrap()).unwrap();
    assert_eq!((ssh.mtime, ssh.ctime), (ssh_before.mtime, ssh_before.ctime));
}

/// Usage errors and refusals of single operations: typed, and atomic — nothing
/// of a failed operation is kept, the device is untouched until commit, and the
/// editor goes on working.
#[test]
fn failed_operations_change_nothing() {
    let img = scratch("ed-ext4");
    let before = file_sha(&img.path);
    let dev = FileDisk::open_rw(&img.path).unwrap();
    let mut ed = Editor::open(dev, caller_zeroes()).unwrap();
    let cases: Vec<(&[u8], EditError)> = vec![
        (b"/scrub/tree", ed.unlink(b"/scrub/tree").unwrap_err()),
        (b"/", ed.remove_tree(b"/").unwrap_err()),
        (b"/lost+found", ed.remove_tree(b"/lost+found").unwrap_err()),
        (b"/scrub/..", ed.remove_tree(b"/scrub/..").unwrap_err()),
        (b"/nope", ed.unlink(b"/nope/x").unwrap_err()),
        (
            b"/scrub/etc/KEEPNAME_03_machine-id",
            ed.rewrite(b"/scrub/etc/KEEPNAME_03_machine-id", &[b'x'; 100])
                .unwrap_err(),
        ),
        (b"/scrub/tree", ed.truncate(b"/scrub/tree").unwrap_err()),
        (b"/links", ed.truncate(b"/links/fast").unwrap_err()),
    ];
    for (p, e) in &cases {
        let ok = match e {
            EditError::IsADirectory { .. } => *p == b"/scrub/tree",
            EditError::Protected { .. } => matches!(*p, b"/" | b"/lost+found" | b"/scrub/.."),
            EditError::Read(vmscrub_ext4::Error::NotFound { .. }) => *p == b"/nope",
            EditError::ContentTooLong {
                len: 100, size: 31, ..
            } => true,
            EditError::NotARegularFile { kind, .. } => {
                (*p == b"/scrub/tree" && *kind == FileType::Directory.name())
                    || (*p == b"/links" && *kind == FileType::Symlink.name())
            }
            _ => false,
        };
        assert!(ok, "{}: unexpected {e:?}", String::from_utf8_lossy(p));
        assert!(!e.to_string().is_empty());
    }
    // A removal refused midway (a directory entry pointing at a reserved inode,
    // found deep in the tree) keeps nothing of what it did before.
    drop(ed);
    assert_eq!(file_sha(&img.path), before, "no byte changed before commit");
    let dev = FileDisk::open_rw(&img.path).unwrap();
    let mut ed = Editor::open(dev, caller_zeroes()).unwrap();
    let unlinked = ed
        .unlink(b"/scrub/home/u/.ssh/SECRETNAME_01_id_rsa")
        .unwrap();
    assert!(
        ed.unlink(b"/scrub/home/u/.ssh/SECRETNAME_01_id_rsa")
            .is_err(),
        "gone after the first unlink"
    );
    assert!(
        ed.reader()
            .lookup(b"/scrub/home/u/.ssh/SECRETNAME_01_id_rsa", false)
            .is_err()
    );
    // The staged view shows the zeroed slot (bitmaps and counters are written at commit).
    assert_eq!(
        ed.reader().inode(unlinked.ino).unwrap().mode,
        0,
        "the staged view shows the slot wiped"
    );
    assert_eq!(file_sha(&img.path), before, "staged only");
    let report = ed.commit().unwrap();
    zero(&img.path, &report.zero_ranges);
    e2fsck_clean(&img.path);
}

/// `dir_nlink`: a directory whose link count overflowed is stored with 1. When
/// one of its subdirectories goes, the editor recounts and stores the real count
/// if it fits again — which is what e2fsck then expects (here the fixture's
/// /scrub is set to 1 by hand, which e2fsck reports before the edit).
#[test]
fn dir_nlink_one_is_recounted() {
    let img = scratch("ed-ext4");
    let out = std::process::Command::new("debugfs")
        .args(["-w", "-R", "sif /scrub links_count 1"])
        .arg(&img.path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let fsck = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(&img.path)
        .output()
        .unwrap();
    assert!(
        !fsck.status.success(),
        "e2fsck objects to the hand-set count before the edit"
    );
    let fs = open(&img.path);
    let subdirs = walk_ours(&fs)
        .nodes
        .iter()
        .filter(|(p, n)| {
            n.ftype == FileType::Directory
                && p.starts_with(b"/scrub/")
                && !p[b"/scrub/".len()..].contains(&b'/')
        })
        .count() as u16;
    drop(fs);
    edit(&img.path, caller_zeroes(), |ed| {
        ed.remove_tree(b"/scrub/tree").unwrap();
    });
    e2fsck_clean(&img.path);
    let fs = open(&img.path);
    let scrub = fs.inode(fs.lookup(b"/scrub", false).unwrap()).unwrap();
    assert_eq!(scrub.links_count, subdirs - 1 + 2);
}
