//! Test harness for the XFS editor: images made by mkfs.xfs and populated
//! through the kernel (as root, loop devices), edits staged and written back
//! the way the editor's commit does, and the oracles — `xfs_repair -n`,
//! `xfs_db check` and `freesp`, the kernel's read-only mount.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use vmscrub_blockdev::{FileDisk, Staged};

use super::free_space::update_superblock_counters;
use super::inode_raw::{RawInode, field};
use super::space::{AgRelease, AgReleased, Released, release};
use crate::bmap::Fork;
use crate::fs::Xfs;

pub(super) type Fs = Xfs<Arc<Staged<FileDisk>>>;

pub(super) struct Img {
    pub dir: PathBuf,
    pub path: PathBuf,
}

impl Drop for Img {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.join("mnt")).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// A fresh 320 MiB filesystem made with `mkfs` options, populated by `script`
/// run in its mount point.
pub(super) fn make(tag: &str, mkfs: &[&str], script: &str) -> Img {
    let dir = std::env::temp_dir().join(format!("vmscrub-space-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mnt")).unwrap();
    let path = dir.join("img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(320 << 20)
        .unwrap();
    run(Command::new("mkfs.xfs")
        .args(["-f", "-q"])
        .args(mkfs)
        .arg(&path));
    let img = Img { dir, path };
    // Parts separated by `REMOUNT` run in separate mounts: an unmount
    // finishes the kernel's background inode freeing.
    for part in script.split("REMOUNT") {
        mount(&img, false);
        run(Command::new("sh")
            .arg("-ec")
            .arg(part)
            .current_dir(img.dir.join("mnt")));
        run(Command::new("umount").arg(img.dir.join("mnt")));
    }
    img
}

/// A private copy of fixture `name` (sparse), to edit.
pub(super) fn fixture_copy(name: &str) -> Img {
    let src = vmscrub_fixtures::fixture(name);
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "vmscrub-space-fx-{name}-{}-{seq}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mnt")).unwrap();
    let path = dir.join("img");
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(&src)
        .arg(&path));
    Img { dir, path }
}

/// Removes `names` from shortform directory `path` by hand (the remaining
/// entries packed, count and size right), drops each named inode's link
/// count to 0 and returns their inode numbers.
pub(super) fn unlink_names(
    fs: &Fs,
    stage: &Staged<FileDisk>,
    path: &str,
    names: &[&str],
) -> Vec<u64> {
    let dino = fs.lookup(path.as_bytes(), false).unwrap();
    let mut raw = RawInode::read(fs, dino).unwrap();
    assert_eq!(raw.buf[5], 1, "{path} must be shortform");
    let l = field::LITERAL;
    let wide = raw.buf[l + 1] != 0;
    let ino_len = if wide { 8 } else { 4 };
    let ftype = usize::from(fs.superblock().has_ftype());
    let count = usize::from(if wide { raw.buf[l + 1] } else { raw.buf[l] });
    let mut at = l + 2 + ino_len;
    let mut kept: Vec<u8> = vec![];
    let (mut left, mut gone) = (0u8, vec![]);
    for _ in 0..count {
        let namelen = usize::from(raw.buf[at]);
        let len = 3 + namelen + ftype + ino_len;
        let entry = raw.buf[at..at + len].to_vec();
        let name = std::str::from_utf8(&entry[3..3 + namelen]).unwrap();
        if names.contains(&name) {
            let ib = &entry[3 + namelen + ftype..];
            gone.push(if wide {
                u64::from_be_bytes(ib[..8].try_into().unwrap())
            } else {
                u64::from(u32::from_be_bytes(ib[..4].try_into().unwrap()))
            });
        } else {
            kept.extend_from_slice(&entry);
            left += 1;
        }
        at += len;
    }
    assert_eq!(gone.len(), names.len(), "{path}: every name found");
    let hdr = 2 + ino_len;
    if wide {
        raw.buf[l + 1] = left;
    } else {
        raw.buf[l] = left;
    }
    raw.buf[l + hdr..l + hdr + kept.len()].copy_from_slice(&kept);
    raw.buf[l + hdr + kept.len()..at].fill(0);
    raw.set_u64(field::SIZE, (hdr + kept.len()) as u64);
    raw.write(stage).unwrap();
    for &ino in &gone {
        let mut r = RawInode::read(fs, ino).unwrap();
        r.set_u32(field::NLINK, 0);
        r.write(stage).unwrap();
    }
    gone
}

pub(super) fn mount(img: &Img, ro: bool) {
    // nouuid: copies of one fixture (here or in other tests) share a UUID.
    let opts = if ro { "loop,ro,nouuid" } else { "loop,nouuid" };
    run(Command::new("mount")
        .args(["-o", opts])
        .arg(&img.path)
        .arg(img.dir.join("mnt")));
}

pub(super) fn open(img: &Path) -> (Arc<Staged<FileDisk>>, Fs) {
    let bs = Xfs::open(FileDisk::open(img).unwrap())
        .unwrap()
        .block_size();
    let stage = Arc::new(Staged::new(FileDisk::open(img).unwrap(), bs));
    let fs = Xfs::open(stage.clone()).unwrap();
    (stage, fs)
}

/// Empties shortform directory `path` by hand (count 0, size the header) and
/// returns the inodes its entries named.
pub(super) fn unlink_all(fs: &Fs, stage: &Staged<FileDisk>, path: &str) -> Vec<u64> {
    let dino = fs.lookup(path.as_bytes(), false).unwrap();
    let dir = fs.inode(dino).unwrap();
    let inos: Vec<u64> = fs.read_dir(&dir).unwrap().iter().map(|e| e.ino).collect();
    let mut raw = RawInode::read(fs, dino).unwrap();
    assert_eq!(raw.buf[5], 1, "{path} must be shortform");
    assert_eq!(
        raw.buf[field::LITERAL + 1],
        0,
        "{path}: 4-byte inode numbers"
    );
    raw.set_u8(field::LITERAL, 0);
    raw.set_u64(field::SIZE, 6);
    raw.write(stage).unwrap();
    for &ino in &inos {
        let mut r = RawInode::read(fs, ino).unwrap();
        r.set_u32(field::NLINK, 0);
        r.write(stage).unwrap();
    }
    inos
}

/// What the files `inos` give back, by AG: every extent of both forks and
/// every bmap B+tree block, with its reverse mapping, and the inodes.
pub(super) fn gather(fs: &Fs, inos: &[u64]) -> BTreeMap<u32, AgRelease> {
    let sb = fs.superblock();
    let (agl, inol) = (u32::from(sb.ag_block_log), u32::from(sb.inop_block_log));
    let mut by_ag: BTreeMap<u32, AgRelease> = BTreeMap::new();
    for &ino in inos {
        let inode = fs.inode(ino).unwrap();
        for fork in [Fork::Data, Fork::Attr] {
            let map = fs.block_map(&inode, fork).unwrap();
            let attr_fork = fork == Fork::Attr;
            for e in &map.extents {
                let r = Released {
                    agbno: (e.start & ((1 << agl) - 1)) as u32,
                    len: e.count as u32,
                    owner: ino,
                    offset: e.offset,
                    attr_fork,
                    bmbt: false,
                    unwritten: e.unwritten,
                };
                by_ag
                    .entry((e.start >> agl) as u32)
                    .or_default()
                    .extents
                    .push(r);
            }
            // The reader gives bmap B+tree blocks as device byte offsets.
            for &off in &map.tree_blocks {
                let linear = off / u64::from(sb.block_size);
                let (agno, agbno) = (
                    linear / u64::from(sb.ag_blocks),
                    linear % u64::from(sb.ag_blocks),
                );
                let r = Released {
                    agbno: agbno as u32,
                    len: 1,
                    owner: ino,
                    offset: 0,
                    attr_fork,
                    bmbt: true,
                    unwritten: false,
                };
                by_ag.entry(agno as u32).or_default().extents.push(r);
            }
        }
        let agno = (ino >> (agl + inol)) as u32;
        let agino = (ino & ((1 << (agl + inol)) - 1)) as u32;
        by_ag.entry(agno).or_default().inodes.push(agino);
    }
    by_ag
}

/// Releases everything in `by_ag`, updates the superblock counters and sums
/// up what the releases report.
pub(super) fn release_all(
    fs: &Fs,
    stage: &Staged<FileDisk>,
    by_ag: &BTreeMap<u32, AgRelease>,
) -> AgReleased {
    let mut sum = AgReleased::default();
    for (&agno, rel) in by_ag {
        let r = release(fs, stage, agno, rel).unwrap();
        sum.freed_blocks += r.freed_blocks;
        sum.shared_blocks += r.shared_blocks;
        sum.freed_inodes += r.freed_inodes;
        sum.grown_blocks += r.grown_blocks;
        sum.zero.extend(r.zero);
    }
    update_superblock_counters(fs, stage).unwrap();
    sum
}

/// Writes the stage and zeroes `zero` in the image, as the editor's commit does.
pub(super) fn commit(img: &Path, stage: &Staged<FileDisk>, bs: u64, zero: &[std::ops::Range<u64>]) {
    let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    for (block, data) in stage.staged_blocks() {
        f.write_all_at(&data, block * bs).unwrap();
    }
    let zeros = vec![0u8; 1 << 20];
    for r in zero {
        assert!(
            r.start < r.end && r.end <= f.metadata().unwrap().len(),
            "zero range {r:?}"
        );
        if r.end - r.start > zeros.len() as u64 {
            // Large ranges (a multi-terabyte sparse fixture) are punched:
            // they read as zeros and the copy stays sparse.
            run(Command::new("fallocate")
                .args(["--punch-hole", "--keep-size", "-o"])
                .arg(r.start.to_string())
                .arg("-l")
                .arg((r.end - r.start).to_string())
                .arg(img));
        } else {
            f.write_all_at(&zeros[..(r.end - r.start) as usize], r.start)
                .unwrap();
        }
    }
    f.sync_all().unwrap();
}

/// `xfs_repair -n` exits 0 and prints nothing but its phase banners.
pub(super) fn assert_repair_clean(img: &Path) {
    let o = Command::new("xfs_repair")
        .arg("-n")
        .arg(img)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let benign = |l: &str| {
        l.starts_with("Phase ")
            || l.starts_with("        - ")
            || l.starts_with("No modify flag set")
            || l == "Cannot get host filesystem geometry."
            || l == "Repair may fail if there is a sector size mismatch between"
            || l == "the image and the host filesystem."
    };
    let complaints: Vec<&str> = text.lines().filter(|l| !benign(l)).collect();
    assert!(
        o.status.success() && complaints.is_empty(),
        "xfs_repair -n:\n{text}"
    );
}

/// `xfs_db freesp -s` total (which must equal the sum of every AGF's free
/// blocks and free-list count), plus the free-space trees' non-root blocks:
/// what the kernel counts as free (`sb_fdblocks`), conserved by a release
/// but for the blocks it frees.
pub(super) fn freesp(img: &Path, fs: &Fs) -> u64 {
    let out = run(Command::new("xfs_db")
        .args(["-r", "-c", "freesp -s"])
        .arg(img));
    let total: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("total free blocks "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (mut sum, mut btree) = (0u64, 0u64);
    for ag in 0..fs.superblock().ag_count {
        let (agf, _) = fs.ag_headers(ag).unwrap();
        sum += u64::from(agf.free_blocks) + u64::from(agf.fl_count);
        let mut raw = [0u8; 64];
        fs.read_bytes(&mut raw, agf.offset, "AGF").unwrap();
        btree += u64::from(u32::from_be_bytes([raw[60], raw[61], raw[62], raw[63]]));
    }
    assert_eq!(total, sum, "xfs_db freesp against the AGFs");
    total + btree
}

pub(super) fn xfs_db_free(img: &Path) -> u64 {
    let out = run(Command::new("xfs_db")
        .args(["-r", "-c", "freesp -s"])
        .arg(img));
    out.lines()
        .find_map(|l| l.strip_prefix("total free blocks "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The superblock's counters equal the AG headers' sums.
pub(super) fn assert_sb_counters(fs: &Fs) {
    let (mut icount, mut ifree, mut fd) = (0u64, 0u64, 0u64);
    for ag in 0..fs.superblock().ag_count {
        let (agf, agi) = fs.ag_headers(ag).unwrap();
        icount += u64::from(agi.count);
        ifree += u64::from(agi.free_count);
        let mut raw = [0u8; 64];
        fs.read_bytes(&mut raw, agf.offset, "AGF").unwrap();
        let bt = u32::from_be_bytes([raw[60], raw[61], raw[62], raw[63]]);
        fd += u64::from(agf.free_blocks) + u64::from(agf.fl_count) + u64::from(bt);
    }
    let sb = fs.superblock();
    assert_eq!(
        (sb.icount, sb.ifree, sb.fdblocks),
        (icount, ifree, fd),
        "superblock counters"
    );
}

/// `xfs_db check` (blockget) prints nothing on a consistent filesystem.
pub(super) fn assert_db_check_clean(img: &Path) {
    let out = run(Command::new("xfs_db").args(["-r", "-c", "check"]).arg(img));
    assert!(out.trim().is_empty(), "xfs_db check:\n{out}");
}

/// Lists `dir` (relative) through a read-only kernel mount, with each file's
/// bytes hashed by `cksum`.
pub(super) fn kernel_listing(img: &Img, dir: &str) -> String {
    mount(img, true);
    let mnt = img.dir.join("mnt");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {dir} && ls -A | sort && (find . -type f | sort | xargs -r cksum)"
        ))
        .current_dir(&mnt)
        .output()
        .unwrap();
    run(Command::new("umount").arg(&mnt));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The kernel works with the edited trees: a read-write mount creates files
/// (inodes from the finobt, blocks from the bnobt/cntbt and the AGFL),
/// removes half of them, unmounts; `xfs_repair -n` must stay clean.
pub(super) fn kernel_uses_the_trees(img: &Img) {
    mount(img, false);
    let script = "mkdir -p after; i=0; while [ $i -lt 300 ]; do head -c $(( (i % 7) * 3000 + 1 )) /dev/urandom > after/n$i; i=$((i+1)); done; sync; \
        i=0; while [ $i -lt 300 ]; do rm after/n$i; i=$((i+2)); done; sync";
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(img.dir.join("mnt"))
        .output()
        .unwrap();
    run(Command::new("umount").arg(img.dir.join("mnt")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_repair_clean(&img.path);
}

/// Releases every file of each shortform directory in `dirs` and checks the
/// result with the oracles; returns what the releases reported.
pub(super) fn remove_dirs_and_check(img: &Img, dirs: &[&str], keep_dir: &str) -> (AgReleased, Fs) {
    // The kept directory's listing, the emptied directories left out (they
    // may sit inside it).
    let listing = |img: &Img| -> Vec<String> {
        kernel_listing(img, keep_dir)
            .lines()
            .filter(|l| {
                !dirs
                    .iter()
                    .any(|d| *l == *d || l.contains(&format!("./{d}/")))
            })
            .map(String::from)
            .collect()
    };
    let before_listing = listing(img);
    let (stage, fs) = open(&img.path);
    let before = freesp(&img.path, &fs);
    stage.begin();
    let mut inos = vec![];
    for d in dirs {
        inos.extend(unlink_all(&fs, &stage, d));
    }
    let by_ag = gather(&fs, &inos);
    let sum = release_all(&fs, &stage, &by_ag);
    stage.keep();
    assert_eq!(sum.freed_inodes, inos.len() as u64);
    commit(&img.path, &stage, u64::from(fs.block_size()), &sum.zero);
    assert_repair_clean(&img.path);
    assert_db_check_clean(&img.path);
    let (_, after_fs) = open(&img.path);
    assert_eq!(
        freesp(&img.path, &after_fs),
        before + sum.freed_blocks - sum.grown_blocks,
        "freed blocks"
    );
    assert_sb_counters(&after_fs);
    for d in dirs {
        assert_eq!(kernel_listing(img, d), "", "{d} is empty to the kernel");
    }
    assert!(listing(img) == before_listing, "kept files intact");
    (sum, after_fs)
}
