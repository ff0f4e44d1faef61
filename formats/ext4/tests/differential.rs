//! Differential tests: every fixture of fixtures/ext4.toml is walked and read with
//! our reader and compared with debugfs (inode numbers, listings, stat fields,
//! xattrs, content) and with ext4-view (paths, types, sizes, modes, owners, link
//! targets, content) where ext4-view supports the filesystem.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use vmscrub_ext4::FileType;

fn e2fsck_clean(img: &std::path::Path) {
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    assert!(
        out.status.success(),
        "fixture {} is not e2fsck-clean:\n{}",
        img.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// ext4-view 0.9 refuses meta_bg, inline_data, ea_inode and filesystems without
/// filetype, and fails on 128-byte inodes (`InodeTruncated`).
fn ext4_view_supports(name: &str) -> bool {
    !matches!(
        name,
        "ext4-metabg"
            | "ext4-inline"
            | "ext4-fuzz-inline"
            | "ext4-eainode"
            | "ext2-nofiletype"
            | "ext4-128inode"
    )
}

fn differential(name: &str) {
    let img = fixture(name);
    e2fsck_clean(&img);
    let fs = open(&img);
    let ours = walk_ours(&fs);
    let dbg = debugfs_tree(&img);

    // Listings: every directory, as (name, inode) sets.
    let our_dirs: Vec<&u32> = ours.dirs.keys().collect();
    let dbg_dirs: Vec<&u32> = dbg.dirs.keys().collect();
    assert_eq!(our_dirs, dbg_dirs, "{name}: directory inodes");
    for (ino, list) in &ours.dirs {
        assert_eq!(
            list, &dbg.dirs[ino],
            "{name}: entries of directory inode {ino}"
        );
    }

    // Per inode: stat fields, link targets, content, xattrs.
    let mut regular = 0;
    for (path, n) in &ours.nodes {
        let p = String::from_utf8_lossy(path);
        let s = &dbg.stats[&n.ino];
        assert_eq!(type_name(n.ftype), s.ftype, "{name}:{p}: type");
        assert_eq!(n.perm, s.perm, "{name}:{p}: mode");
        assert_eq!((n.uid, n.gid), (s.uid, s.gid), "{name}:{p}: owner");
        assert_eq!(n.size, s.size, "{name}:{p}: size");
        assert_eq!(n.nlink, s.links, "{name}:{p}: links");
        assert_eq!(
            n.mtime_raw, s.mtime_raw,
            "{name}:{p}: mtime (raw seconds, extra)"
        );
        assert_eq!(n.device, s.device, "{name}:{p}: device numbers");
        if let Some(l) = &n.link {
            assert_eq!(
                Some(l),
                dbg.link_targets.get(&n.ino),
                "{name}:{p}: link target"
            );
        }
        if let Some(h) = n.sha256 {
            regular += 1;
            let want = dbg.content.get(&n.ino).copied().unwrap_or_else(|| sha(b""));
            assert_eq!(h, want, "{name}:{p}: content sha256");
        }
        assert_eq!(n.xattrs, dbg.xattrs[&n.ino], "{name}:{p}: xattrs");
    }
    let (min_files, min_paths) = if name.contains("fuzz") {
        (8, 300)
    } else {
        (40, 2000)
    };
    assert!(
        regular > min_files,
        "{name}: only {regular} regular files walked"
    );
    assert!(
        ours.nodes.len() > min_paths,
        "{name}: only {} paths walked",
        ours.nodes.len()
    );

    // ext4-view.
    match ext4_view::Ext4::load_from_path(&img) {
        Ok(view) if ext4_view_supports(name) => compare_with_ext4_view(name, &view, &ours.nodes),
        // ext4-view loads 128-byte-inode filesystems but cannot read their inodes.
        Ok(_) => assert_eq!(
            name, "ext4-128inode",
            "{name}: ext4-view now loads it; update ext4_view_supports"
        ),
        Err(e) => assert!(!ext4_view_supports(name), "{name}: ext4-view failed: {e}"),
    }
}

fn view_type(t: ext4_view::FileType) -> FileType {
    use ext4_view::FileType as V;
    match t {
        V::BlockDevice => FileType::BlockDevice,
        V::CharacterDevice => FileType::CharDevice,
        V::Directory => FileType::Directory,
        V::Fifo => FileType::Fifo,
        V::Regular => FileType::Regular,
        V::Socket => FileType::Socket,
        V::Symlink => FileType::Symlink,
    }
}

fn compare_with_ext4_view(name: &str, view: &ext4_view::Ext4, ours: &BTreeMap<Vec<u8>, Node>) {
    let mut seen = BTreeMap::new();
    let mut view_skipped = 0usize;
    let mut stack = vec![b"/".to_vec()];
    while let Some(dir) = stack.pop() {
        for e in view.read_dir(ext4_view::Path::new(&dir)).unwrap() {
            let e = e.unwrap();
            let fname = e.file_name();
            let n: &[u8] = fname.as_ref();
            if n == b"." || n == b".." {
                continue;
            }
            let path = e.path();
            let pb: Vec<u8> = path.as_ref().to_vec();
            let md = view.symlink_metadata(ext4_view::Path::new(&pb)).unwrap();
            let t = view_type(md.file_type());
            let p = String::from_utf8_lossy(&pb).into_owned();
            let mine = ours
                .get(&pb)
                .unwrap_or_else(|| panic!("{name}: ext4-view has {p}, we do not"));
            assert_eq!(t, mine.ftype, "{name}:{p}: type (ext4-view)");
            assert_eq!(md.len(), mine.size, "{name}:{p}: size (ext4-view)");
            assert_eq!(
                md.mode() & 0o7777,
                mine.perm,
                "{name}:{p}: mode (ext4-view)"
            );
            assert_eq!(
                (md.uid(), md.gid()),
                (mine.uid, mine.gid),
                "{name}:{p}: owner (ext4-view)"
            );
            match t {
                FileType::Directory => stack.push(pb.clone()),
                FileType::Symlink => {
                    let target = view.read_link(ext4_view::Path::new(&pb)).unwrap();
                    assert_eq!(
                        Some(target.as_ref()),
                        mine.link.as_deref(),
                        "{name}:{p}: link (ext4-view)"
                    );
                }
                FileType::Regular => match view.read(ext4_view::Path::new(&pb)) {
                    Ok(data) => assert_eq!(
                        Some(sha(&data)),
                        mine.sha256,
                        "{name}:{p}: content (ext4-view)"
                    ),
                    // ext4-view 0.9 treats a zero pointer in a block map as corruption
                    // (it has no holes for ext2/ext3 files); only those may fail.
                    Err(e) => {
                        assert!(mine.block_map_holes, "{name}:{p}: ext4-view failed: {e}");
                        view_skipped += 1;
                    }
                },
                _ => {}
            }
            seen.insert(pb, ());
        }
    }
    let ours_paths: Vec<&Vec<u8>> = ours.keys().filter(|p| p.as_slice() != b"/").collect();
    let view_paths: Vec<&Vec<u8>> = seen.keys().collect();
    assert_eq!(ours_paths, view_paths, "{name}: path sets (ext4-view)");
    let holes = ours.values().filter(|n| n.block_map_holes).count();
    assert!(
        view_skipped <= holes,
        "{name}: {view_skipped} files ext4-view could not read"
    );
}

macro_rules! fixtures {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            differential($name);
        }
    )*};
}

fixtures! {
    ext4_default => "ext4-default",
    ext4_1k => "ext4-1k",
    ext4_2k => "ext4-2k",
    ext4_64k => "ext4-64k",
    ext4_nocsum => "ext4-nocsum",
    ext4_32bit => "ext4-32bit",
    ext4_inline => "ext4-inline",
    ext4_metabg => "ext4-metabg",
    ext4_noflex => "ext4-noflex",
    ext4_noextent => "ext4-noextent",
    ext4_128inode => "ext4-128inode",
    ext4_eainode => "ext4-eainode",
    ext2_rich => "ext2-rich",
    ext2_nofiletype => "ext2-nofiletype",
    ext3_rich => "ext3-rich",
    ext4_recover => "ext4-recover",
    ext4_fuzz => "ext4-fuzz",
    ext4_fuzz_inline => "ext4-fuzz-inline",
    ext2_fuzz => "ext2-fuzz",
}

#[test]
fn fixture_list_matches_the_recipe() {
    let recipe =
        std::fs::read_to_string(vmscrub_fixtures::repo_root().join("fixtures/ext4.toml")).unwrap();
    let mut names: Vec<&str> = recipe
        .lines()
        .filter_map(|l| l.strip_prefix("[fs.").and_then(|r| r.strip_suffix(']')))
        .collect();
    names.sort();
    let mut ours: Vec<&str> = FIXTURES.to_vec();
    ours.sort();
    assert_eq!(
        names, ours,
        "every fs of fixtures/ext4.toml is in FIXTURES (and gets a differential test)"
    );
}
