//! Reading, judged by independent oracles: every file's name, kind, size, content,
//! attributes and modification time as vmscrub-fat reports them must equal what
//! mtools (`mdir`, `mattrib`, `mcopy`) and the `fatfs` crate report, on FAT12, FAT16
//! and FAT32 volumes built by mkfs.fat + mtools.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;

use common::*;
use vmscrub_blockdev::{FileDisk, MemDisk};
use vmscrub_fat::{FatError, FatFs, FatType, ROOT};

#[test]
fn every_file_matches_mtools_and_fatfs() {
    for name in ALL_FAT {
        let path = vmscrub_fixtures::fixture(name);
        let fs = FatFs::open(FileDisk::open(&path).unwrap()).unwrap();
        let mine = ours(&fs);
        assert!(mine.len() >= 8, "{name}: only {} entries", mine.len());
        let image = std::fs::read(&path).unwrap();
        assert_same(
            &mine,
            &fatfs_summary(&image),
            &format!("{name} vs fatfs"),
            true,
        );
        assert_same(
            &mine,
            &mtools_summary(&path),
            &format!("{name} vs mtools"),
            false,
        );
    }
}

#[test]
fn fat_type_follows_the_cluster_count() {
    for (name, want) in [
        ("fat12-tree", FatType::Fat12),
        ("fat16-tree", FatType::Fat16),
        ("fat32-tree", FatType::Fat32),
        ("fat12-small", FatType::Fat12),
        ("fat16-small", FatType::Fat16),
        ("esp-fat32", FatType::Fat32),
    ] {
        let path = vmscrub_fixtures::fixture(name);
        let fs = FatFs::open(FileDisk::open(&path).unwrap()).unwrap();
        assert_eq!(fs.fat_type(), want, "{name}");
        // minfo (mtools) agrees on the geometry.
        let (ok, info, _) = mtools("minfo", &["-i", path.to_str().unwrap(), "::"]);
        assert!(ok);
        let info = String::from_utf8(info).unwrap();
        let g = fs.geometry();
        assert!(
            info.contains(&format!("sector size: {} bytes", g.bytes_per_sector)),
            "{info}"
        );
        assert!(
            info.contains(&format!("cluster size: {} sectors", g.sectors_per_cluster)),
            "{info}"
        );
        assert!(info.contains(&format!("fats: {}", g.num_fats)), "{info}");
        assert!(
            info.contains(&format!("reserved (boot) sectors: {}", g.reserved_sectors)),
            "{info}"
        );
        if want == FatType::Fat32 {
            assert!(
                info.contains(&format!("rootCluster={}", g.root_cluster)),
                "{info}"
            );
            assert!(
                info.contains(&format!(
                    "backup boot sector={}",
                    g.backup_boot_sector.unwrap()
                )),
                "{info}"
            );
        }
        // Free clusters: fsck.fat's summary says used/total.
        let out = std::process::Command::new("fsck.fat")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let summary = text.lines().last().unwrap();
        let frac = summary
            .split(", ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        let (used, total): (u32, u32) = {
            let mut it = frac.split('/').map(|x| x.parse().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        };
        assert_eq!(total, g.cluster_count, "{name}: {summary}");
        assert_eq!(
            total - used,
            fs.free_clusters().unwrap(),
            "{name}: {summary}"
        );
    }
}

#[test]
fn labels_long_names_and_case_insensitive_lookup() {
    let path = vmscrub_fixtures::fixture("fat16-tree");
    let fs = FatFs::open(FileDisk::open(&path).unwrap()).unwrap();
    assert_eq!(fs.volume_label().unwrap().as_deref(), Some("TREE16"));

    let e = fs
        .lookup_entry("/keep/日本語のファイル名.txt".as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(e.long_name.as_deref(), Some("日本語のファイル名.txt"));
    assert_eq!(
        e.slots.len(),
        2,
        "one long-name slot (11 UTF-16 units) + the short entry"
    );
    assert_eq!(*e.slots.last().unwrap(), e.id());

    // Case-insensitive by long name, by short name, and through '.' and '..'.
    let a = fs
        .lookup(b"/Long secret LONGNAMEMARKER2 file.conf")
        .unwrap();
    assert_eq!(
        fs.lookup(b"/LONG SECRET longnamemarker2 FILE.CONF")
            .unwrap(),
        a
    );
    assert_eq!(fs.lookup(b"/longse~1.con").unwrap(), a);
    assert_eq!(
        fs.lookup(b"/keep/../keep/./README").unwrap(),
        fs.lookup(b"/KEEP/readme").unwrap()
    );
    assert_eq!(
        fs.lookup("/ünïcödé SÉCRET namemarkerü3.TXT".as_bytes())
            .unwrap(),
        fs.lookup("/Ünïcödé sécret NAMEMARKERÜ3.txt".as_bytes())
            .unwrap()
    );
    // NT lower-case flags: stored as "LOWER   TXT", shown as mtools shows it.
    let lower = fs.lookup_entry(b"/LOWER.TXT").unwrap().unwrap();
    assert_eq!(lower.name, b"lower.txt");
    assert_eq!(lower.long_name, None);
    assert_eq!(&lower.short_name_raw, b"LOWER   TXT");

    assert!(matches!(
        fs.lookup(b"/nope"),
        Err(FatError::NotFound { .. })
    ));
    assert!(matches!(
        fs.lookup(b"/lower.txt/x"),
        Err(FatError::NotADirectory { .. })
    ));
    assert_eq!(fs.lookup(b"/").unwrap().id, ROOT);

    // A node id is the short entry's offset: it reads back, other offsets do not.
    assert_eq!(fs.node(a.id).unwrap(), a);
    assert!(matches!(fs.node(a.id + 1), Err(FatError::BadNode { .. })));
    assert!(matches!(fs.node(512), Err(FatError::BadNode { .. })));
}

#[test]
fn chains_extents_and_sizes_at_cluster_edges() {
    for name in FAT_TREES {
        let path = vmscrub_fixtures::fixture(name);
        let fs = FatFs::open(FileDisk::open(&path).unwrap()).unwrap();
        let cs = fs.geometry().cluster_size as u64;
        for (file, size) in [
            ("c512.bin", 512u64),
            ("c513.bin", 513),
            ("c2048.bin", 2048),
            ("c2049.bin", 2049),
        ] {
            let n = fs.lookup(format!("/sizes/{file}").as_bytes()).unwrap();
            assert_eq!(n.size as u64, size);
            let chain = fs.chain(&n).unwrap();
            assert_eq!(chain.len() as u64, size.div_ceil(cs), "{name} {file}");
            let ext = fs.extents(&n).unwrap();
            assert_eq!(ext.iter().map(|e| e.len).sum::<u64>(), size);
        }
        let empty = fs.lookup(b"/empty.txt").unwrap();
        assert_eq!((empty.size, empty.first_cluster), (0, 0));
        assert!(fs.chain(&empty).unwrap().is_empty());

        // The fragmented file: its chain has several runs and matches mshowfat.
        let frag = fs.lookup(b"/frag/Fragmented NAMEMARKER7.bin").unwrap();
        let chain = fs.chain(&frag).unwrap();
        assert!(chain.runs().len() >= 3, "{name}: {:?}", chain.runs());
        let (ok, out, _) = mtools(
            "mshowfat",
            &[
                "-i",
                path.to_str().unwrap(),
                "::/frag/Fragmented NAMEMARKER7.bin",
            ],
        );
        assert!(ok);
        let shown: String = chain
            .runs()
            .iter()
            .map(|r| {
                if r.end - r.start == 1 {
                    format!("<{}>", r.start)
                } else {
                    format!("<{}-{}>", r.start, r.end - 1)
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            String::from_utf8_lossy(&out).contains(&shown),
            "{name}: mshowfat {} vs {shown}",
            String::from_utf8_lossy(&out)
        );

        // The many-entry directory spans several clusters.
        let many = fs.lookup(b"/many").unwrap();
        assert!(fs.dir_chain(many.id).unwrap().len() >= 3);
        assert_eq!(fs.read_dir(many.id).unwrap().len(), 200);
    }
}

#[test]
fn timestamps_convert_as_utc() {
    let path = vmscrub_fixtures::fixture("fat32-tree");
    let fs = FatFs::open(FileDisk::open(&path).unwrap()).unwrap();
    let n = fs.lookup(b"/keep/untouched.bin").unwrap();
    // mcopy stored the host's local time; the builder and the test share the zone
    // (the fixtures run in UTC), so the planted Unix time comes back, to 2 s.
    let (secs, _) = n.modified.to_unix().unwrap();
    assert!(
        (1_400_000_020 - secs).abs() <= 2 || std::env::var("TZ").is_ok(),
        "{secs}"
    );
    assert!(n.created.to_unix().is_some());
    assert!(n.accessed.decode().is_some());
}

#[test]
fn two_threads_read_at_once() {
    let path = vmscrub_fixtures::fixture("fat16-tree");
    let fs = FatFs::open(MemDisk::new(std::fs::read(&path).unwrap())).unwrap();
    let want = ours(&fs);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| ours(&fs))).collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), want);
        }
    });
    // Small reads through the streaming reader give the same bytes as one big read.
    let n = fs.lookup(b"/frag/Fragmented NAMEMARKER7.bin").unwrap();
    let mut whole = Vec::new();
    fs.open_file(n.id).unwrap().read_to_end(&mut whole).unwrap();
    let mut r = fs.open_file(n.id).unwrap();
    let mut pieces = Vec::new();
    let mut buf = [0u8; 777];
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        pieces.extend_from_slice(&buf[..k]);
    }
    assert_eq!(pieces, whole);
}
