//! Editing, judged by independent oracles: after removals, a tree removal, a
//! truncate and a shorter rewrite on FAT12, FAT16 and FAT32 — and zeroing the
//! ranges the editor returned — `fsck.fat -n` finds nothing, mtools and fatfs see
//! exactly the expected tree with every untouched file byte-identical, and no
//! removed file's content marker or name survives anywhere in the raw image (ASCII
//! or UTF-16LE).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vmscrub_blockdev::{FileDisk, ReadAt, WriteAt};
use vmscrub_fat::{FatError, FatFs, FatType, Removal};

/// Content markers of everything the edit removes (or truncates, or rewrites away).
const CONTENT_MARKERS: [&str; 12] = [
    "CONTENTMARKER-ALPHA-7f3e",
    "CONTENTMARKER-BRAVO-91ab",
    "CONTENTMARKER-CHARLIE-55d0",
    "CONTENTMARKER-DELTA-0c11",
    "CONTENTMARKER-ECHO-e4e4",
    "CONTENTMARKER-FOXTROT-3b3b",
    "CONTENTMARKER-GOLF-8a8a",
    "CONTENTMARKER-HOTEL-1212",
    "CONTENTMARKER-INDIA-3434",
    "CONTENTMARKER-JULIET-5656",
    "CONTENTMARKER-KILO-9090",
    "CONTENTMARKER-LIMA-2323",
];

/// Names of removed files, as full long names: none may remain, in ASCII/UTF-8 or
/// UTF-16LE.
const NAMES: [&str; 9] = [
    "SECRETNAMEMARKER1.TXT",
    "Long secret LONGNAMEMARKER2 file.conf",
    "Ünïcödé sécret NAMEMARKERÜ3.txt",
    "SECRETNAMEMARKER4.KEY",
    "another LONGNAMEMARKER5 in a tree.txt",
    "NAMEMARKER6.bin",
    "Fragmented NAMEMARKER7.bin",
    "gone-NAMEMARKER8.bin",
    "gone-NAMEMARKER9.bin",
];

/// How a long name lies on disk: 13 UTF-16 units per slot, split 5 + 6 + 2 over the
/// slot, terminated by 0x0000 and padded with 0xFFFF. A name is never contiguous
/// UTF-16LE in the image, so the residual check looks for each slot's 5- and 6-unit
/// pieces that carry at least four characters of the name.
fn lfn_fragments(name: &str) -> Vec<Vec<u8>> {
    let mut units: Vec<u16> = name.encode_utf16().collect();
    let real = units.len();
    if !real.is_multiple_of(13) {
        units.push(0);
    }
    while !units.len().is_multiple_of(13) {
        units.push(0xFFFF);
    }
    let mut out = Vec::new();
    for (k, slot) in units.chunks(13).enumerate() {
        for (from, to) in [(0, 5), (5, 11)] {
            let chars = (k * 13 + to).min(real).saturating_sub(k * 13 + from);
            if chars >= 4 {
                out.push(
                    slot[from..to]
                        .iter()
                        .flat_map(|u| u.to_le_bytes())
                        .collect(),
                );
            }
        }
    }
    out
}

/// Residual needles: content markers, each long name's on-disk pieces, and each
/// name in UTF-8 and UTF-16LE; with whether the unedited image must contain it (the
/// contiguous forms never are, so they are checked for absence only).
fn needles() -> Vec<(String, Vec<u8>, bool)> {
    let mut v = Vec::new();
    for m in CONTENT_MARKERS {
        v.push((m.to_string(), m.as_bytes().to_vec(), true));
    }
    for n in NAMES {
        v.push((format!("{n} (UTF-8)"), n.as_bytes().to_vec(), false));
        v.push((format!("{n} (UTF-16LE)"), utf16le(n), false));
        for (i, f) in lfn_fragments(n).into_iter().enumerate() {
            v.push((format!("{n} (long-name piece {i})"), f, true));
        }
        let word = n
            .split([' ', '.', '-'])
            .find(|w| w.contains("MARKER"))
            .unwrap();
        v.push((format!("{word} (UTF-8)"), word.as_bytes().to_vec(), false));
        v.push((format!("{word} (UTF-16LE)"), utf16le(word), false));
    }
    v
}

fn apply_zero(fs: &FatFs<FileDisk>, r: &Removal) {
    for range in r.zero_ranges.iter() {
        fs.device().zero_range(range).unwrap();
    }
}

fn image_bytes(fs: &FatFs<FileDisk>) -> Vec<u8> {
    let mut v = vec![0u8; fs.device().size() as usize];
    fs.device().read_exact_at(&mut v, 0).unwrap();
    v
}

#[test]
fn removal_leaves_a_clean_volume_and_no_residue() {
    for name in FAT_TREES {
        let dir = tempfile::tempdir().unwrap();
        let path = copy_fixture(name, dir.path());
        let original = std::fs::read(&path).unwrap();

        // Positive control: every needle is in the image before the edit, so the
        // residual check below can fail.
        let all = needles();
        let bytes: Vec<Vec<u8>> = all.iter().map(|n| n.1.clone()).collect();
        for ((what, _, planted), hits) in all.iter().zip(find_each(&original, &bytes)) {
            assert!(!planted || !hits.is_empty(), "{name}: {what} not planted");
        }

        let mut fs = FatFs::open(FileDisk::open_rw(&path).unwrap()).unwrap();
        let before = ours(&fs);
        let free_before = fs.free_clusters().unwrap();
        let cs = fs.geometry().cluster_size as u64;
        let mut expected = before.clone();
        let mut freed = 0u32;
        let gone = |p: &str, expected: &mut Summary| {
            let keys: Vec<String> = expected
                .keys()
                .filter(|k| *k == p || k.starts_with(&format!("{p}/")))
                .cloned()
                .collect();
            assert!(!keys.is_empty(), "{p} not in the tree");
            for k in keys {
                expected.remove(&k);
            }
        };

        // Removals, by exact and by case-folded paths.
        for (p, canonical) in [
            ("/SECRETNAMEMARKER1.TXT", "/SECRETNAMEMARKER1.TXT"),
            (
                "/long secret longnamemarker2 FILE.CONF",
                "/Long secret LONGNAMEMARKER2 file.conf",
            ),
            (
                "/Ünïcödé sécret NAMEMARKERÜ3.txt",
                "/Ünïcödé sécret NAMEMARKERÜ3.txt",
            ),
            (
                "/frag/Fragmented NAMEMARKER7.bin",
                "/frag/Fragmented NAMEMARKER7.bin",
            ),
            ("/sizes/gone-NAMEMARKER8.bin", "/sizes/gone-NAMEMARKER8.bin"),
            ("/sizes/gone-NAMEMARKER9.bin", "/sizes/gone-NAMEMARKER9.bin"),
            (
                "/many/many-files-long-name-000100",
                "/many/many-files-long-name-000100",
            ),
            ("/empty.txt", "/empty.txt"),
        ] {
            let size = before[canonical].size;
            let r = fs.remove_file(p.as_bytes()).unwrap();
            assert_eq!(r.freed_clusters as u64, size.div_ceil(cs), "{name} {p}");
            assert_eq!(r.zero_ranges.total(), r.freed_clusters as u64 * cs);
            assert_eq!(r.removed.len(), 1);
            assert!(!r.wiped_slots.is_empty());
            freed += r.freed_clusters;
            apply_zero(&fs, &r);
            gone(canonical, &mut expected);
        }

        // A tree, bottom-up; and an empty directory.
        for p in ["/secrets", "/empty-dir"] {
            let r = fs.remove_tree(p.as_bytes()).unwrap();
            let n = expected
                .keys()
                .filter(|k| *k == p || k.starts_with(&format!("{p}/")))
                .count();
            assert_eq!(r.removed.len(), n, "{name} {p}");
            freed += r.freed_clusters;
            apply_zero(&fs, &r);
            gone(p, &mut expected);
        }

        // Truncate to 0.
        let r = fs.truncate(b"/truncate-me.log").unwrap();
        assert_eq!(r.freed_clusters as u64, 9000u64.div_ceil(cs));
        freed += r.freed_clusters;
        apply_zero(&fs, &r);
        let t = expected.get_mut("/truncate-me.log").unwrap();
        t.size = 0;
        t.sha = Some(sha(b""));

        // Rewrite shorter: the new bytes in the old chain, the tail freed, the
        // slack after the new end returned.
        let new = b"replaced: nothing to see here\n";
        let r = fs.rewrite(b"/rewrite-me.cfg", new).unwrap();
        assert_eq!(r.freed_clusters as u64, 6000u64.div_ceil(cs) - 1);
        assert_eq!(
            r.zero_ranges.total(),
            r.freed_clusters as u64 * cs + (cs - new.len() as u64)
        );
        freed += r.freed_clusters;
        apply_zero(&fs, &r);
        let t = expected.get_mut("/rewrite-me.cfg").unwrap();
        t.size = new.len() as u64;
        t.sha = Some(sha(new));

        // Refusals on bad requests change nothing.
        let snapshot = image_bytes(&fs);
        assert!(matches!(
            fs.remove_file(b"/keep"),
            Err(FatError::IsADirectory { .. })
        ));
        assert!(matches!(fs.remove_file(b"/"), Err(FatError::Root { .. })));
        assert!(matches!(fs.remove_tree(b"/"), Err(FatError::Root { .. })));
        assert!(matches!(
            fs.remove_file(b"/SECRETNAMEMARKER1.TXT"),
            Err(FatError::NotFound { .. })
        ));
        assert!(matches!(
            fs.rewrite(b"/keep/README", b"this is longer than eight bytes"),
            Err(FatError::RewriteTooLong { .. })
        ));
        assert!(matches!(
            fs.truncate(b"/deep"),
            Err(FatError::IsADirectory { .. })
        ));
        assert_eq!(image_bytes(&fs), snapshot, "{name}: a refused edit wrote");

        assert_eq!(fs.free_clusters().unwrap(), free_before + freed, "{name}");
        // FAT32: the FSInfo free count was kept right (fsck.fat checks it too).
        if fs.fat_type() == FatType::Fat32 {
            let g = fs.geometry();
            let off = g.fs_info_sector.unwrap() as u64 * g.bytes_per_sector as u64;
            let mut b = [0u8; 8];
            fs.device().read_exact_at(&mut b, off + 488).unwrap();
            assert_eq!(
                u32::from_le_bytes(b[..4].try_into().unwrap()),
                free_before + freed
            );
            let hint = u32::from_le_bytes(b[4..].try_into().unwrap());
            assert!(hint >= 2 && hint <= g.max_cluster(), "{hint:#x}");
        }

        // Our own view, reopened from scratch.
        let after = ours(&FatFs::open(FileDisk::open(&path).unwrap()).unwrap());
        assert_same(
            &after,
            &expected,
            &format!("{name}: vmscrub-fat after edit"),
            true,
        );
        drop(fs);

        assert_fsck_clean(&path);
        let image = std::fs::read(&path).unwrap();
        assert_same(
            &fatfs_summary(&image),
            &expected,
            &format!("{name}: fatfs after edit"),
            true,
        );
        assert_same(
            &mtools_summary(&path),
            &expected,
            &format!("{name}: mtools after edit"),
            false,
        );

        for ((what, _, _), hits) in all.iter().zip(find_each(&image, &bytes)) {
            assert!(hits.is_empty(), "{name}: {what} survives at {hits:?}");
        }
        // The rewrite's new content is there; the boot sector is untouched.
        assert!(!find_all(&image, new).is_empty());
        assert_eq!(image[..512], original[..512]);
    }
}

#[test]
fn removed_entries_are_deleted_not_end_markers() {
    // Removing the first of two entries must keep the second visible: the wiped slot
    // starts with 0xE5 (deleted), never 0x00 (end of directory).
    for name in FAT_TREES {
        let dir = tempfile::tempdir().unwrap();
        let path = copy_fixture(name, dir.path());
        let mut fs = FatFs::open(FileDisk::open_rw(&path).unwrap()).unwrap();
        let many = fs.lookup(b"/many").unwrap();
        let entries = fs.read_dir(many.id).unwrap();
        let first = entries[0].clone();
        let r = fs
            .remove_file(&[b"/many/".as_slice(), &first.name].concat())
            .unwrap();
        assert_eq!(r.wiped_slots, first.slots);
        for &s in &first.slots {
            let mut b = [0u8; 32];
            fs.device().read_exact_at(&mut b, s).unwrap();
            assert_eq!(b[0], 0xE5);
            assert!(b[1..].iter().all(|&x| x == 0));
        }
        assert_eq!(fs.read_dir(many.id).unwrap().len(), entries.len() - 1);
        assert!(matches!(fs.node(first.id()), Err(FatError::BadNode { .. })));
        apply_zero(&fs, &r);
        drop(fs);
        assert_fsck_clean(&path);
    }
}

#[test]
fn removing_everything_frees_every_cluster() {
    for name in FAT_TREES {
        let dir = tempfile::tempdir().unwrap();
        let path = copy_fixture(name, dir.path());
        let mut fs = FatFs::open(FileDisk::open_rw(&path).unwrap()).unwrap();
        let top: Vec<Vec<u8>> = fs
            .read_dir(vmscrub_fat::ROOT)
            .unwrap()
            .into_iter()
            .map(|e| [b"/".as_slice(), &e.name].concat())
            .collect();
        for p in top {
            let r = fs.remove_tree(&p).unwrap();
            apply_zero(&fs, &r);
        }
        let g = fs.geometry().clone();
        let root_clusters = fs.dir_chain(vmscrub_fat::ROOT).unwrap().len();
        assert_eq!(
            fs.free_clusters().unwrap(),
            g.cluster_count - root_clusters,
            "{name}"
        );
        assert!(fs.walk().unwrap().is_empty());
        drop(fs);
        assert_fsck_clean(&path);
        let (ok, out, _) = mtools("mdir", &["-/", "-i", path.to_str().unwrap(), "::/"]);
        assert!(!ok || !String::from_utf8_lossy(&out).contains("<DIR>"));
    }
}
