//! The ext4 and FAT `Filesystem` adapters in process, on the e2e filesystem
//! images, against debugfs and mtools; and on mutated copies of them (flipped
//! bytes, truncation), where every call must return, with a value or an error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::single_range_in_vec_init
)]

mod common;

use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use vmscrub::fs::ext4::Ext4Fs;
use vmscrub::fs::fat::FatAdapter;
use vmscrub::fs::walk::walk;
use vmscrub::fs::{FileKind, Filesystem, FsError, FsType};
use vmscrub_blockdev::{FileDisk, MemDisk};

fn ext4(path: &Path) -> Ext4Fs<FileDisk> {
    Ext4Fs::open(FileDisk::open(path).unwrap(), FsType::Ext4).unwrap()
}

fn debugfs(img: &Path, cmd: &str) -> String {
    String::from_utf8(vmscrub_fixtures::run("debugfs", &[&"-R", &cmd, &img])).unwrap()
}

/// Logical byte ranges holding data, from the EXTENTS section of `debugfs stat`.
fn debugfs_data_ranges(img: &Path, path: &str, size: u64, bs: u64) -> Vec<Range<u64>> {
    let stat = debugfs(img, &format!("stat {path}"));
    let ext = stat.split("EXTENTS:").nth(1).unwrap();
    let mut out: Vec<Range<u64>> = vec![];
    for item in ext.split(", ") {
        let item = item.trim();
        let Some(rest) = item.strip_prefix('(') else {
            continue;
        };
        let (logical, _) = rest.split_once(')').unwrap();
        if logical.starts_with("ETB") || item.contains("[u") {
            continue;
        }
        let (a, b) = match logical.split_once('-') {
            Some((a, b)) => (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()),
            None => (logical.parse().unwrap(), logical.parse().unwrap()),
        };
        let r = a * bs..((b + 1) * bs).min(size);
        match out.last_mut() {
            Some(l) if l.end == r.start => l.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

#[test]
fn ext4_metadata_xattrs_and_sparse_ranges_match_debugfs() {
    let img = vmscrub_fixtures::fixture("e2e-root-ext4");
    let fs = ext4(&img);
    assert_eq!(fs.fs_type(), FsType::Ext4);
    // A 50 MB file holding 2 MB of random bytes and a key at 32 MiB + 1.
    let id = fs.lookup(b"/var/backups/disk.img").unwrap();
    let m = fs.metadata(id).unwrap();
    assert_eq!(m.size, 50 << 20);
    let ranges = fs.data_ranges(id).unwrap();
    assert_eq!(
        ranges,
        debugfs_data_ranges(&img, "/var/backups/disk.img", m.size, 1024)
    );
    let data: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    assert!(data < 3 << 20, "sparse: {data} bytes of data");
    // Holes read as zeros, data as planted.
    let mut all = vec![];
    fs.open(id).unwrap().read_to_end(&mut all).unwrap();
    let planted = std::fs::read(common::tree_dir("e2e-root").join("var/backups/disk.img")).unwrap();
    assert!(all == planted);
    // Nanoseconds, creation time (mkfs ran at the fixtures' fixed time).
    let m = fs.metadata(fs.lookup(b"/etc/motd").unwrap()).unwrap();
    assert_eq!((m.mtime.sec, m.mtime.nsec), (1_700_000_000, 123_456_789));
    // All four times, seconds and nanoseconds, as debugfs decodes them
    // (`NAME: 0xSECONDS:EXTRA`, EXTRA = nanoseconds << 2 | epoch bits).
    let stat = debugfs(&img, "stat /etc/motd");
    let time = |name: &str| {
        let v = stat
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{name}: 0x")))
            .unwrap();
        let sec = i64::from(u32::from_str_radix(&v[..8], 16).unwrap());
        let extra = u32::from_str_radix(&v[9..17], 16).unwrap();
        let epoch = i64::from(extra & 3) << 32;
        (sec + epoch, extra >> 2)
    };
    let t = |x: vmscrub::fs::Timestamp| (x.sec, x.nsec);
    assert_eq!(t(m.atime), time("atime"));
    assert_eq!(t(m.mtime), time("mtime"));
    assert_eq!(t(m.ctime), time("ctime"));
    assert_eq!(m.crtime.map(t), Some(time("crtime")));
    // Devices in the new encoding.
    let m = fs.metadata(fs.lookup(b"/dev/big").unwrap()).unwrap();
    assert_eq!(
        (m.kind, m.rdev),
        (FileKind::CharDevice, Some((259, 300_000)))
    );
    assert!(fs.open(m.id).is_err(), "a device has no content to stream");
    // xattrs as getfattr shows them.
    let x = fs
        .xattrs(fs.lookup(b"/srv/odd/with-xattr").unwrap())
        .unwrap();
    assert!(debugfs(&img, "ea_list /srv/odd/with-xattr").contains("user.comment (3) = \"e2e\""));
    assert_eq!(x.len(), 1);
    assert_eq!(
        (x[0].name.as_slice(), x[0].value.as_slice()),
        (&b"user.comment"[..], &b"e2e"[..])
    );
    // Typed lookup errors.
    assert!(matches!(
        fs.lookup(b"/etc/nope"),
        Err(FsError::NotFound { .. })
    ));
    assert!(matches!(
        fs.lookup(b"/etc/motd/x"),
        Err(FsError::NotADirectory { .. })
    ));
    assert!(matches!(
        fs.lookup(b"/srv/loop-a/x"),
        Err(FsError::SymlinkLoop { .. })
    ));
    assert!(fs.metadata(u64::from(u32::MAX) + 5).is_err());
}

#[test]
fn fat_shows_what_a_vfat_mount_shows() {
    let img = vmscrub_fixtures::fixture("e2e-esp-fat32");
    let fs = FatAdapter::open(FileDisk::open(&img).unwrap()).unwrap();
    assert_eq!(fs.fs_type(), FsType::Vfat);
    let root = fs.metadata(fs.root()).unwrap();
    assert_eq!(
        (root.kind, root.mode, root.uid, root.gid),
        (FileKind::Directory, 0o755, 0, 0)
    );
    let efi = fs.metadata(fs.lookup(b"/EFI").unwrap()).unwrap();
    // BOOT, debian, keys: 2 + 3 subdirectories, as the kernel counts links.
    assert_eq!(efi.nlink, 5);
    let cluster = u64::from(fs.inner().geometry().cluster_size);
    assert!(efi.size > 0 && efi.size.is_multiple_of(cluster));
    let crt = fs
        .metadata(fs.lookup(b"/EFI/keys/db.crt").unwrap())
        .unwrap();
    assert_eq!(
        (crt.kind, crt.mode, crt.nlink),
        (FileKind::Regular, 0o444, 1)
    );
    let keys = fs.metadata(fs.lookup(b"/EFI/keys").unwrap()).unwrap();
    assert_eq!(keys.mode, 0o755, "read-only is ignored on directories");
    let key = fs.lookup(b"/EFI/keys/db.key").unwrap();
    assert_eq!(
        fs.lookup(b"/efi/KEYS/DB.KEY").unwrap(),
        key,
        "case-insensitive"
    );
    let m = fs.metadata(key).unwrap();
    assert_eq!(m.mode, 0o644);
    assert_eq!(m.mtime.sec, 1_735_689_600, "the tree's mtime, via mcopy -m");
    assert_eq!(m.ctime, m.mtime);
    assert!(m.crtime.is_some());
    assert_eq!(fs.data_ranges(key).unwrap(), [0..m.size]);
    assert!(fs.read_link(key).is_err());
    assert!(fs.xattrs(key).unwrap().is_empty());
    assert!(matches!(
        fs.lookup(b"/EFI/none"),
        Err(FsError::NotFound { .. })
    ));
    assert!(matches!(
        fs.lookup(b"/EFI/keys/db.key/x"),
        Err(FsError::NotADirectory { .. })
    ));
    let spec = format!("{}", img.display());
    let body = common::mtools("mtype", &[&"-i", &spec, &"::/EFI/keys/db.key"]);
    let mut got = vec![];
    fs.open(key).unwrap().read_to_end(&mut got).unwrap();
    assert!(got == body);
}

/// Touches everything the trait offers on every entry; errors are fine, panics
/// and hangs are not.
fn exercise(fs: &dyn Filesystem) -> (usize, usize) {
    let mut ok = 0usize;
    let mut errors = 0usize;
    let mut count = |r: bool| if r { ok += 1 } else { errors += 1 };
    let root = fs.root();
    count(fs.metadata(root).is_ok());
    let skipped = walk(fs, root, b"/", |e| {
        let id = e.entry.id;
        if let Ok(m) = fs.metadata(id) {
            if m.kind == FileKind::Regular
                && let Ok(mut r) = fs.open(id)
            {
                let mut buf = vec![0u8; 1 << 16];
                let mut total = 0u64;
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n as u64,
                    }
                    // A file never yields more than it claims.
                    assert!(total <= m.size, "read past the size");
                }
            }
            let _ = fs.data_ranges(id);
            let _ = fs.xattrs(id);
            if m.kind == FileKind::Symlink {
                let _ = fs.read_link(id);
            }
        }
        count(fs.metadata(id).is_ok());
        Ok(true)
    })
    .map(|s| s.len())
    .unwrap_or(1);
    let _ = fs.lookup(b"/a/b/../c");
    (ok, errors + skipped)
}

/// A tiny deterministic generator (no dev-dependency for a few numbers).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Mutates copies of `base` in the byte ranges `spans` (where the structures
/// that matter live) and exercises whatever still opens.
fn mutate_and_exercise(
    base: &[u8],
    open: &dyn Fn(MemDisk) -> Option<Box<dyn Filesystem>>,
    spans: &[Range<u64>],
) {
    let span = spans.iter().map(|r| r.end).max().unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut opened = 0;
    let mut damage = 0;
    for case in 0..60 {
        let mut img = base.to_vec();
        match case % 6 {
            // Truncated: the filesystem claims more than the device holds.
            0 => img.truncate((rng.next() % span) as usize),
            // Runs of flipped bytes in the metadata-heavy start.
            _ => {
                for _ in 0..(1 + rng.next() % 64) {
                    let r = &spans[(rng.next() % spans.len() as u64) as usize];
                    let at = (r.start + rng.next() % (r.end - r.start)) as usize;
                    img[at] ^= (rng.next() % 255 + 1) as u8;
                }
            }
        }
        let started = Instant::now();
        if let Some(fs) = open(MemDisk::new(img)) {
            opened += 1;
            damage += exercise(&*fs).1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "case {case} took {:?}",
            started.elapsed()
        );
    }
    assert!(opened > 10, "most mutations still open ({opened}/60)");
    // The mutations reached structures below the superblock.
    assert!(
        damage > 0,
        "no mutation was noticed past open ({opened} opened)"
    );
    eprintln!("{opened}/60 mutated images opened; {damage} errors met walking them");
}

#[test]
fn hostile_ext4_and_fat_images_give_errors_not_panics() {
    let home = std::fs::read(vmscrub_fixtures::fixture("e2e-home-ext4")).unwrap();
    let (ok, _) = exercise(&Ext4Fs::open(MemDisk::new(home.clone()), FsType::Ext4).unwrap());
    assert!(ok > 10);
    mutate_and_exercise(
        &home,
        &|d| {
            Ext4Fs::open(d, FsType::Ext4)
                .ok()
                .map(|f| Box::new(f) as Box<dyn Filesystem>)
        },
        &[0..2 << 20],
    );
    let esp = std::fs::read(vmscrub_fixtures::fixture("e2e-esp-fat32")).unwrap();
    let fat = FatAdapter::open(MemDisk::new(esp.clone())).unwrap();
    let (ok, errors) = exercise(&fat);
    assert!(ok > 10 && errors == 0);
    let g = fat.inner().geometry();
    let (f0, f1, data) = (g.fat_offset(0), g.fat_offset(1), g.data_offset());
    // The boot sector, the used start of both FATs, the first data clusters
    // (the root and the other directories, small files).
    mutate_and_exercise(
        &esp,
        &|d| {
            FatAdapter::open(d)
                .ok()
                .map(|f| Box::new(f) as Box<dyn Filesystem>)
        },
        &[
            0..512,
            f0..f0 + 4096,
            f1..f1 + 4096,
            data..data + (256 << 10),
        ],
    );
}

/// Through the binary: a corrupted image is read as far as it can be, and
/// every outcome is a report (0) or a clear error (3), never a crash.
#[test]
fn hostile_images_through_the_binary() {
    use std::os::unix::fs::FileExt;
    let raw = common::raw_disk();
    let offsets = common::partition_offsets(&raw);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xfeed_0000_0000_0042);
    for case in 0..8 {
        let p = dir.path().join(format!("case{case}.img"));
        vmscrub_fixtures::run("cp", &[&"--sparse=always", &raw, &p]);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        // Flip bytes at the start of the ESP and of the home partition.
        for _ in 0..32 {
            let (_, base) = offsets[if case % 2 == 0 { 0 } else { 2 }];
            let at = base + rng.next() % (1 << 20);
            let mut b = [0u8];
            f.read_exact_at(&mut b, at).unwrap();
            f.write_all_at(&[b[0] ^ 0xff], at).unwrap();
        }
        drop(f);
        for args in [
            vec!["scan", p.to_str().unwrap(), "--format", "json"],
            vec!["ls", "-R", p.to_str().unwrap(), "/"],
        ] {
            let started = Instant::now();
            let o = common::vmscrub(&args);
            assert!(
                matches!(o.status.code(), Some(0 | 3)),
                "case {case} {args:?}: {:?} {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(started.elapsed() < Duration::from_secs(60));
            if args[0] == "scan" {
                // The root is intact: the report is produced and names the damage.
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                assert_eq!(v["guest"]["os"]["id"], "debian");
            }
        }
        std::fs::remove_file(&p).unwrap();
    }
}
