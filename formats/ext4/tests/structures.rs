//! Targeted checks of what the fixtures plant: the structures the editor relies on
//! (extent trees, block maps, htree, shared xattr blocks, group layouts, bitmaps,
//! the blocks each inode owns, the journal), judged by the recipe's own values, the
//! planted tree files, dumpe2fs, debugfs and e2fsck-validated counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use common::*;
use vmscrub_blockdev::FileDisk;
use vmscrub_ext4::{Error, Ext4, FileType, MetaKind, Timestamp};

fn tree_of(name: &str) -> &'static str {
    match name {
        "ext4-default" | "ext4-1k" | "ext3-rich" => "ext4-rich",
        n if n.contains("fuzz") => "ext4-small",
        _ => "ext4-rich-lite",
    }
}

fn tree_file(tree: &str, path: &str) -> Vec<u8> {
    let p = vmscrub_fixtures::fixture_dir()
        .join("trees")
        .join(tree)
        .join(path.trim_start_matches('/'));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn ino(fs: &Ext4<FileDisk>, path: &[u8]) -> u32 {
    fs.lookup(path, false)
        .unwrap_or_else(|e| panic!("lookup {}: {e}", String::from_utf8_lossy(path)))
}

fn content(fs: &Ext4<FileDisk>, path: &str) -> Vec<u8> {
    fs.read_to_vec(ino(fs, path.as_bytes()), 64 << 20).unwrap()
}

#[test]
fn planted_content_matches_the_tree() {
    for name in [
        "ext4-default",
        "ext4-1k",
        "ext4-inline",
        "ext2-rich",
        "ext4-64k",
        "ext4-noextent",
        "ext4-128inode",
    ] {
        let fs = open(&fixture(name));
        let tree = tree_of(name);
        for p in [
            "/sizes/0",
            "/sizes/1",
            "/sizes/59",
            "/sizes/60",
            "/sizes/61",
            "/sizes/4097",
            "/sizes/65537",
            "/sizes/3M",
            "/sizes/5M-text",
            "/sparse/holes",
            "/sparse/tail-hole",
            "/frag/payload.src",
        ] {
            // mkfs.ext4 1.47.0 -d with inline_data truncates sparse files at their last
            // data (the image is e2fsck-clean and debugfs reads what we read).
            if name == "ext4-inline" && p.starts_with("/sparse/") {
                continue;
            }
            let (got, want) = (content(&fs, p), tree_file(tree, p));
            assert!(
                got.len() == want.len() && sha(&got) == sha(&want),
                "{name}:{p}: content differs"
            );
        }
        let hole = content(&fs, "/sparse/only-hole");
        assert!(
            hole.len() == 3 << 20 && hole.iter().all(|&b| b == 0),
            "{name}: a hole reads as zeros"
        );
        // Names that are not UTF-8, and 255 bytes long, come back as planted.
        let latin = fs
            .read_to_vec(ino(&fs, b"/names/latin1-caf\xe9-\xff\xfe"), 100)
            .unwrap();
        assert_eq!(latin, b"not UTF-8\n", "{name}");
        let long = [b"/names/".as_slice(), &[b'n'; 255]].concat();
        assert_eq!(
            fs.read_to_vec(ino(&fs, &long), 100).unwrap(),
            b"255-byte name\n",
            "{name}"
        );
        // Streaming through io::Read gives the same bytes as read_at.
        let mut r = fs.open_file(ino(&fs, b"/sizes/3M")).unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut v).unwrap();
        assert!(v == tree_file(tree, "/sizes/3M"), "{name}: io::Read");
    }
}

#[test]
fn metadata_matches_the_recipe() {
    let fs = open(&fixture("ext4-default"));
    let i = fs.inode(ino(&fs, b"/meta/bigids")).unwrap();
    assert_eq!((i.uid, i.gid, i.permissions()), (100_000, 200_000, 0o4750));
    let t = |p: &[u8]| fs.inode(ino(&fs, p)).unwrap().mtime;
    assert_eq!(
        t(b"/meta/nsec"),
        Timestamp {
            secs: 1_700_000_000,
            nsecs: 123_456_789
        }
    );
    assert_eq!(
        t(b"/meta/y2038"),
        Timestamp {
            secs: 2_200_000_000,
            nsecs: 0
        }
    );
    assert_eq!(
        t(b"/meta/pre1970"),
        Timestamp {
            secs: -1000,
            nsecs: 0
        }
    );
    let dev = |p: &[u8]| fs.inode(ino(&fs, p)).unwrap().device();
    assert_eq!(dev(b"/special/null"), Some((1, 3)));
    assert_eq!(dev(b"/special/sda1"), Some((8, 1)));
    assert_eq!(dev(b"/special/bignum"), Some((259, 300_000)));
    assert_eq!(
        fs.inode(ino(&fs, b"/special/fifo")).unwrap().file_type(),
        FileType::Fifo
    );
    assert_eq!(
        fs.inode(ino(&fs, b"/special/sock")).unwrap().file_type(),
        FileType::Socket
    );
    let h = ino(&fs, b"/hardlinks/original");
    assert_eq!(h, ino(&fs, b"/hardlinks/second"));
    assert_eq!(h, ino(&fs, b"/dir/third-link"));
    assert_eq!(fs.inode(h).unwrap().links_count, 3);
    assert!(matches!(
        fs.open_file(ino(&fs, b"/special/fifo")),
        Err(Error::NotAFile { .. })
    ));
}

#[test]
fn symlinks_and_lookup() {
    for name in ["ext4-default", "ext4-inline", "ext2-rich", "ext4-128inode"] {
        let fs = open(&fixture(name));
        let fast = fs.inode(ino(&fs, b"/links/fast")).unwrap();
        let slow = fs.inode(ino(&fs, b"/links/slow")).unwrap();
        assert!(
            fs.is_fast_symlink(&fast) || fs.is_inline(&fast),
            "{name}: 10-byte target is fast or inline"
        );
        assert!(!fs.is_fast_symlink(&slow), "{name}: 97-byte target is slow");
        assert_eq!(fs.readlink(fast.ino).unwrap(), b"../sizes/1");
        for p in [&b"/links/loop-a"[..], b"/links/self", b"/links/loop-b/x"] {
            assert!(
                matches!(fs.lookup(p, true), Err(Error::SymlinkLoop { .. })),
                "{name}: {p:?} loops"
            );
        }
        assert!(matches!(
            fs.lookup(b"/links/dangling", true),
            Err(Error::NotFound { .. })
        ));
        assert_eq!(
            fs.lookup(b"/links/dangling", false).unwrap(),
            ino(&fs, b"/links/dangling")
        );
        assert_eq!(
            fs.lookup(b"/links/to-dir/deeper", true).unwrap(),
            ino(&fs, b"/dir/sub/deeper")
        );
        assert_eq!(
            fs.lookup(b"/links/absolute", true).unwrap(),
            ino(&fs, b"/hardlinks/original")
        );
        assert_eq!(
            fs.lookup(b"/links/slow-ok", true).unwrap(),
            ino(&fs, b"/sizes/1025")
        );
        assert_eq!(
            fs.lookup(b"dir/sub/../sub/./deeper/../../sub", false)
                .unwrap(),
            ino(&fs, b"/dir/sub")
        );
        assert!(matches!(
            fs.lookup(b"/sizes/1/x", false),
            Err(Error::NotADirectory { .. })
        ));
        assert!(matches!(
            fs.readlink(ino(&fs, b"/sizes/1")),
            Err(Error::NotASymlink { .. })
        ));
    }
}

#[test]
fn fragmented_files_have_deep_extent_trees_and_block_maps() {
    for (name, min_depth, bs) in [
        ("ext4-default", 1, 4096usize),
        ("ext4-1k", 2, 1024),
        ("ext4-2k", 1, 2048),
    ] {
        let fs = open(&fixture(name));
        let i = fs.inode(ino(&fs, b"/frag/fragmented")).unwrap();
        let tree = fs.extent_tree(&i).unwrap();
        assert!(tree.depth >= min_depth, "{name}: depth {}", tree.depth);
        assert!(
            tree.extents.len() > 300,
            "{name}: {} extents",
            tree.extents.len()
        );
        assert!(!tree.nodes.is_empty());
        let owned = fs.owned_blocks(i.ino).unwrap();
        let nodes = owned
            .meta
            .iter()
            .filter(|m| matches!(m.kind, MetaKind::ExtentNode { .. }))
            .count();
        assert_eq!(nodes, tree.nodes.len(), "{name}: every tree block is owned");
        assert!(
            content(&fs, "/frag/fragmented") == tree_file("ext4-rich", "/frag/payload.src"),
            "{name}"
        );
        // The victim: every other block punched out.
        let mut want = tree_file("ext4-rich", "/frag/victim");
        for chunk in want.chunks_mut(bs).step_by(2) {
            chunk.fill(0);
        }
        assert!(content(&fs, "/frag/victim") == want, "{name}: punched file");
    }
    // ext2: 1 KiB blocks, 3 MiB needs the double-indirect block.
    let fs = open(&fixture("ext2-rich"));
    let map = fs.extents(ino(&fs, b"/sizes/3M")).unwrap();
    let levels: BTreeSet<u8> = map
        .meta
        .iter()
        .filter_map(|m| match m.kind {
            MetaKind::Indirect { level } => Some(level),
            _ => None,
        })
        .collect();
    assert_eq!(levels, BTreeSet::from([1, 2]));
    assert!(content(&fs, "/frag/fragmented") == tree_file("ext4-rich-lite", "/frag/payload.src"));
    // debugfs punch on a block-mapped file frees more than asked (differential tests
    // show debugfs reads what we read); the victim is at least full of holes.
    let victim = fs.extents(ino(&fs, b"/frag/victim")).unwrap();
    assert!(
        victim.extents.len() > 10 && victim.data_blocks() < 4096,
        "{victim:?}"
    );
}

#[test]
fn preallocated_extents_are_uninitialized_and_read_as_zeros() {
    let fs = open(&fixture("ext4-default"));
    let map = fs.extents(ino(&fs, b"/sparse/prealloc")).unwrap();
    assert!(map.extents.iter().any(|e| e.uninit), "{map:?}");
    let data = content(&fs, "/sparse/prealloc");
    assert_eq!(data.len(), 1 << 20);
    assert!(data.iter().all(|&b| b == 0));
}

#[test]
fn shared_xattr_block() {
    for name in ["ext4-default", "ext4-1k", "ext4-nocsum"] {
        let fs = open(&fixture(name));
        let blk = |p: &[u8]| {
            let o = fs.owned_blocks(ino(&fs, p)).unwrap();
            o.meta
                .into_iter()
                .find(|m| matches!(m.kind, MetaKind::XattrBlock { .. }))
                .unwrap()
        };
        let (a, b) = (blk(b"/xattr/shared-a"), blk(b"/xattr/shared-b"));
        assert_eq!(a, b, "{name}: one block for both");
        assert_eq!(a.kind, MetaKind::XattrBlock { refcount: 2 });
        let xa = fs.xattrs(ino(&fs, b"/xattr/shared-a")).unwrap();
        assert_eq!(xa.len(), 1);
        assert_eq!(xa[0].name, b"user.shared");
        assert_eq!(xa[0].value, vec![b'S'; 700]);
        // The ACL decodes to the value planted (kernel xattr form).
        let acl = fs.xattrs(ino(&fs, b"/xattr/acl")).unwrap();
        let v = &acl
            .iter()
            .find(|x| x.name == b"system.posix_acl_access")
            .unwrap()
            .value;
        let planted = "0200000001000600ffffffff02000400e803000004000400ffffffff10000400ffffffff20000000ffffffff";
        assert_eq!(
            hex(&vmscrub_ext4::xattr::acl_to_xattr(v).unwrap()),
            planted,
            "{name}"
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn ea_inode_values() {
    let fs = open(&fixture("ext4-eainode"));
    let x = fs.xattrs(ino(&fs, b"/xattr/small")).unwrap();
    let huge = x.iter().find(|x| x.name == b"user.huge").unwrap();
    assert_ne!(huge.entry.value_inum, 0, "stored in its own inode");
    let planted = tree_file("ext4-rich-lite", "/sizes/4097");
    assert!(
        huge.value.len() >= 1024 && planted.starts_with(&huge.value),
        "value is the planted file's bytes"
    );
    let owned = fs.owned_blocks(ino(&fs, b"/xattr/small")).unwrap();
    assert_eq!(owned.ea_inodes, vec![huge.entry.value_inum]);
}

#[test]
fn htree_directories() {
    for (name, entries, levels) in [
        ("ext4-default", 20_000, 0),
        ("ext4-1k", 20_000, 1),
        ("ext3-rich", 20_000, 0),
        ("ext4-2k", 2000, 0),
    ] {
        let fs = open(&fixture(name));
        let d = fs.inode(ino(&fs, b"/big-dir")).unwrap();
        let h = fs
            .htree(&d)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: /big-dir is indexed"));
        assert_eq!(h.info.indirect_levels, levels, "{name}");
        assert_eq!(h.nodes.is_empty(), levels == 0, "{name}");
        assert!(h.leaves.len() > 1);
        let n = fs.read_dir(d.ino).unwrap().count();
        assert_eq!(n, entries + 2, "{name}");
        let leaf = fs.dir_block(&d, h.leaves[0]).unwrap().unwrap();
        match leaf.kind {
            vmscrub_ext4::DirBlockKind::Leaf { tail, .. } => {
                assert_eq!(tail, fs.superblock().has_metadata_csum())
            }
            k => panic!("{name}: leaf is {k:?}"),
        }
    }
}

/// dumpe2fs's view of each group's static metadata.
fn dumpe2fs_layout(img: &std::path::Path) -> Vec<BTreeSet<u64>> {
    let out = Command::new("dumpe2fs").arg(img).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut groups: Vec<BTreeSet<u64>> = Vec::new();
    let range = |s: &str| -> Vec<u64> {
        let s = s.trim().trim_end_matches(',');
        match s.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect(),
            None => vec![s.parse().unwrap()],
        }
    };
    for line in text.lines() {
        let is_group = line.strip_prefix("Group ").is_some_and(|r| {
            r.split(':')
                .next()
                .is_some_and(|n| n.parse::<u64>().is_ok())
        });
        if is_group {
            groups.push(BTreeSet::new());
            continue;
        }
        let Some(g) = groups.last_mut() else { continue };
        for part in line.split(", ") {
            let part = part.trim();
            for key in [
                "superblock at ",
                "Group descriptors at ",
                "Group descriptor at ",
                "Reserved GDT blocks at ",
                "Block bitmap at ",
                "Inode bitmap at ",
                "Inode table at ",
            ] {
                if let Some(at) = part.find(key) {
                    let v = part[at + key.len()..].split_whitespace().next().unwrap();
                    g.extend(range(v));
                }
            }
        }
    }
    groups
}

#[test]
fn group_layouts_match_dumpe2fs() {
    for name in FIXTURES {
        let img = fixture(name);
        let fs = open(&img);
        let want = dumpe2fs_layout(&img);
        assert_eq!(want.len(), fs.groups().len(), "{name}: group count");
        for (g, w) in want.iter().enumerate() {
            let l = fs.group_layout(g as u32).unwrap();
            let got: BTreeSet<u64> = l.all_blocks().into_iter().flatten().collect();
            assert_eq!(&got, w, "{name}: group {g} metadata blocks");
        }
    }
}

/// The editor's contract: every block the bitmaps mark in use is either static
/// metadata of some group or owned by an in-use inode, and nothing else is.
#[test]
fn bitmaps_and_block_ownership_agree() {
    for name in FIXTURES {
        let fs = open(&fixture(name));
        let sb = fs.superblock();
        let mut used = BTreeSet::new();
        let mut free_inodes = 0u64;
        for d in fs.groups() {
            let g = u64::from(d.group);
            let bm = fs.block_bitmap(d.group).unwrap();
            let first = sb.group_first_block(g);
            let count = sb.group_block_count(g);
            let set: Vec<u64> = (0..count as u32)
                .filter(|&i| bm.get(i))
                .map(|i| first + u64::from(i))
                .collect();
            assert_eq!(
                count - set.len() as u64,
                u64::from(d.free_blocks_count),
                "{name}: group {g} free blocks"
            );
            used.extend(set);
            let ib = fs.inode_bitmap(d.group).unwrap();
            assert_eq!(
                sb.inodes_per_group - ib.count_set(),
                d.free_inodes_count,
                "{name}: group {g} free inodes"
            );
            free_inodes += u64::from(d.free_inodes_count);
        }
        assert_eq!(free_inodes, u64::from(sb.free_inodes_count), "{name}");
        let mut claimed = BTreeSet::new();
        for d in fs.groups() {
            for r in fs.group_layout(d.group).unwrap().all_blocks() {
                claimed.extend(r);
            }
        }
        let mut owner: HashMap<u64, u32> = HashMap::new();
        let mut in_use = 0u64;
        for inode in fs.inodes_in_use() {
            let inode = inode.unwrap();
            in_use += 1;
            let owned = fs.owned_blocks(inode.ino).unwrap();
            for m in &owned.meta {
                if let MetaKind::XattrBlock { refcount } = m.kind
                    && refcount > 1
                {
                    claimed.insert(m.block);
                    continue;
                }
                if let Some(prev) = owner.insert(m.block, inode.ino) {
                    panic!(
                        "{name}: block {} owned by inodes {prev} and {}",
                        m.block, inode.ino
                    );
                }
            }
            for e in &owned.data {
                for b in e.physical() {
                    if let Some(prev) = owner.insert(b, inode.ino) {
                        panic!("{name}: block {b} owned by inodes {prev} and {}", inode.ino);
                    }
                }
            }
        }
        assert_eq!(
            in_use,
            u64::from(sb.inodes_count - sb.free_inodes_count),
            "{name}: inodes in use"
        );
        claimed.extend(owner.keys());
        // With 1 KiB blocks block 0 is before the first group and never counted.
        let extra: Vec<&u64> = claimed.difference(&used).take(10).collect();
        let missing: Vec<&u64> = used.difference(&claimed).take(10).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{name}: owned but free {extra:?}, used but unowned {missing:?}"
        );
    }
}

#[test]
fn journal_needing_recovery() {
    let img = fixture("ext4-recover");
    let fs = open(&img);
    assert!(fs.needs_recovery());
    let j = fs.journal().unwrap().unwrap();
    assert_ne!(j.superblock.start, 0);
    assert!(j.superblock.feature_incompat & vmscrub_ext4::journal::feature::INCOMPAT_CSUM_V3 != 0);
    let txs = fs.journal_transactions(&j).unwrap();
    // debugfs logdump is the oracle for what the log holds.
    let out = Command::new("debugfs")
        .args(["-R", "logdump -a"])
        .arg(&img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut logged = Vec::new();
    let mut revoked = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if let Some(r) = l.strip_prefix("FS block ") {
            let mut w = r.split_whitespace();
            let fsb: u64 = w.next().unwrap().parse().unwrap();
            let jb: u32 = w.nth(4).unwrap().parse().unwrap();
            logged.push((fsb, jb));
        } else if let Some(r) = l.strip_prefix("Revoke FS block ") {
            revoked.push(r.split_whitespace().next().unwrap().parse::<u64>().unwrap());
        }
    }
    let ours: Vec<(u64, u32)> = txs
        .iter()
        .flat_map(|t| t.blocks.iter().map(|b| (b.fs_block, b.journal_block)))
        .collect();
    let our_revoked: Vec<u64> = txs.iter().flat_map(|t| t.revoked.clone()).collect();
    assert_eq!(ours, logged, "logged blocks vs logdump");
    assert_eq!(our_revoked, revoked, "revoked blocks vs logdump");
    assert_eq!(txs.len(), 2);
    assert_eq!(
        ours.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![15000, 15001, 15002]
    );
    // The logged blocks hold the planted payload, and are free on disk (so the
    // on-disk state we read and a replayed one differ only there).
    let payload = tree_file("ext4-rich-lite", "/journal/payload");
    let bs = fs.block_size() as usize;
    for (k, b) in txs[0].blocks.iter().enumerate() {
        let phys = j.map.lookup(u64::from(b.journal_block)).unwrap();
        let mut buf = vec![0u8; bs];
        fs.read_block(phys, &mut buf, "test").unwrap();
        assert_eq!(buf, payload[k * bs..(k + 1) * bs]);
        assert!(!fs.block_in_use(b.fs_block).unwrap());
    }
    // A clean filesystem: journal present, empty.
    let fs = open(&fixture("ext4-default"));
    assert!(!fs.needs_recovery());
    let j = fs.journal().unwrap().unwrap();
    assert_eq!(j.superblock.start, 0);
    assert!(fs.journal_transactions(&j).unwrap().is_empty());
    assert!(open(&fixture("ext2-rich")).journal().unwrap().is_none());
}

#[test]
fn features_and_checksum_kinds() {
    let f = |n: &str| open(&fixture(n));
    let fs = f("ext4-default");
    assert!(fs.superblock().has_metadata_csum() && fs.superblock().is_64bit());
    assert_eq!(fs.superblock().desc_size(), 64);
    let fs = f("ext4-nocsum");
    assert!(!fs.superblock().has_metadata_csum() && fs.superblock().has_gdt_csum());
    assert_eq!(f("ext4-32bit").superblock().desc_size(), 32);
    assert_eq!(f("ext4-64k").block_size(), 65536);
    assert_eq!(f("ext4-2k").block_size(), 2048);
    assert_eq!(f("ext4-128inode").superblock().inode_size, 128);
    let fs = f("ext4-noflex");
    assert!(
        fs.superblock()
            .features
            .has_incompat(vmscrub_ext4::features::incompat::CSUM_SEED)
    );
    assert_ne!(
        fs.checksum_seed(),
        vmscrub_ext4::checksum::fs_seed_from_uuid(&fs.superblock().uuid)
    );
    let fs = f("ext4-metabg");
    assert!(
        fs.superblock()
            .features
            .has_incompat(vmscrub_ext4::features::incompat::META_BG)
    );
    assert!(
        fs.groups().len() > 16,
        "meta_bg fixture spans more than one meta group"
    );
    for fs in [f("ext4-default"), f("ext2-rich")] {
        assert!(fs.notes().is_empty());
    }
}

/// The reader is shared between threads by reference.
#[test]
fn reads_from_two_threads() {
    let fs = open(&fixture("ext4-default"));
    let a = ino(&fs, b"/sizes/3M");
    let b = ino(&fs, b"/frag/fragmented");
    let (ha, hb) = std::thread::scope(|s| {
        let ta = s.spawn(|| our_sha(&fs, a).0);
        let tb = s.spawn(|| our_sha(&fs, b).0);
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!(ha, sha(&tree_file("ext4-rich", "/sizes/3M")));
    assert_eq!(hb, sha(&tree_file("ext4-rich", "/frag/payload.src")));
}
