//! Test images for the editor's unit tests, and the oracles that judge them:
//! filesystems made by mkfs.xfs and filled through the kernel (a read-write
//! loop mount, as root), edited through a stage written back to the image
//! file, then checked by xfs_repair -n, xfs_logprint and the kernel's
//! read-only loop mount. Mounts pass `nouuid`: copies of one fixture share
//! a UUID, and another test or session may have one mounted at the time.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use vmscrub_blockdev::{FileDisk, Staged};

use crate::fs::Xfs;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("vmscrub-xfs-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.join("mnt")).output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `umount`, retried: under load something (udev probing a new loop
/// device, another test's scan) can hold a mount busy for a moment.
pub fn umount(mnt: &str) {
    for _ in 0..50 {
        let o = Command::new("umount").arg(mnt).output().unwrap();
        if o.status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    run("umount", &[mnt]);
}

pub fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// mkfs.xfs on a sparse file of `size` bytes, then `script` run by sh in the
/// read-write mounted filesystem.
pub fn make(s: &Scratch, mkfs: &[&str], size: u64, script: &str) -> PathBuf {
    let img = s.path("img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    let mut args = vec!["-q", "-f"];
    args.extend_from_slice(mkfs);
    let img_s = img.to_str().unwrap();
    args.push(img_s);
    // Under fstests' variables mkfs.xfs allows logs below 64 MiB (small
    // logs wrap, so the tests see cycles above 2).
    let o = Command::new("mkfs.xfs")
        .args(&args)
        .env("TEST_DIR", &s.0)
        .env("TEST_DEV", &img)
        .env("QA_CHECK_FS", "1")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "mkfs.xfs {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mnt = s.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mnt_s = mnt.to_str().unwrap();
    run("mount", &["-o", "loop,nouuid", img_s, mnt_s]);
    let o = Command::new("sh")
        .args(["-e", "-c", script])
        .current_dir(&mnt)
        .output()
        .unwrap();
    umount(mnt_s);
    assert!(
        o.status.success(),
        "populate failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    img
}

pub type Fs = Xfs<Arc<Staged<FileDisk>>>;

/// Opens `img` through a stage, lets `edit` change it, then writes every
/// staged block back and zeroes the ranges `edit` returns.
pub fn edit<T>(
    img: &Path,
    edit: impl FnOnce(&Fs, &Staged<FileDisk>) -> (T, Vec<std::ops::Range<u64>>),
) -> T {
    let disk = FileDisk::open(img).unwrap();
    let bs = Xfs::open(FileDisk::open(img).unwrap())
        .unwrap()
        .block_size();
    let stage = Arc::new(Staged::new(disk, bs));
    let fs = Xfs::open(stage.clone()).unwrap();
    let (out, zero) = edit(&fs, &stage);
    let file = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    for (block, data) in stage.staged_blocks() {
        file.write_all_at(&data, block * u64::from(bs)).unwrap();
    }
    for r in zero {
        let z = vec![0u8; 1 << 20];
        let mut pos = r.start;
        while pos < r.end {
            let n = (r.end - pos).min(z.len() as u64);
            file.write_all_at(&z[..n as usize], pos).unwrap();
            pos += n;
        }
    }
    file.sync_all().unwrap();
    out
}

/// xfs_repair -n must find nothing to do.
pub fn assert_repair_clean(img: &Path) {
    let o = Command::new("xfs_repair")
        .args(["-n", "-f"])
        .arg(img)
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "xfs_repair -n complains:\n{out}");
    for bad in ["would ", "Would ", "bad ", "corrupt", "ahead of log"] {
        assert!(!out.contains(bad), "xfs_repair -n says {bad:?}:\n{out}");
    }
}

/// Writes a unique marker line into the kernel log and returns it, so the
/// lines after it can be found (counting lines fails once the ring is full).
pub fn dmesg_marker() -> String {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let m = format!("vmscrub-xfs-test-{}-{n}-{t}", std::process::id());
    std::fs::write("/dev/kmsg", format!("{m}\n")).unwrap();
    m
}

/// The kernel log lines between markers `from` and `to`.
pub fn dmesg_between(from: &str, to: &str) -> Vec<String> {
    let o = run("dmesg", &[]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .rposition(|l| l.contains(to))
        .expect("marker not in dmesg");
    let start = lines[..end]
        .iter()
        .rposition(|l| l.contains(from))
        .expect("marker not in dmesg");
    lines[start + 1..end]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Mounts `img` read-only through a read-only loop device, runs `look` on
/// the mount point, unmounts, and returns what the kernel logged about it.
pub fn with_ro_mount<T>(
    s: &Scratch,
    img: &Path,
    look: impl FnOnce(&Path) -> T,
) -> (T, Vec<String>) {
    let o = run("losetup", &["-f", "--show", "-r", img.to_str().unwrap()]);
    let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
    // From here to the detach, what the kernel says about the device is
    // about this image.
    let marker = dmesg_marker();
    let mnt = s.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = Command::new("mount")
        .args(["-o", "ro,nouuid", &dev, mnt.to_str().unwrap()])
        .output()
        .unwrap();
    let out = m.status.success().then(|| look(&mnt));
    if m.status.success() {
        umount(mnt.to_str().unwrap());
    }
    // Read the kernel's lines while the loop device is still ours: once it
    // is detached another test may mount something else on it.
    let done = dmesg_marker();
    let short = dev.trim_start_matches("/dev/").to_string();
    let log: Vec<String> = dmesg_between(&marker, &done)
        .into_iter()
        .filter(|l| l.contains(&format!("({short})")))
        .collect();
    run("losetup", &["-d", &dev]);
    let out = out.unwrap_or_else(|| {
        panic!(
            "the kernel refuses to mount: {}\n{}",
            String::from_utf8_lossy(&m.stderr),
            log.join("\n")
        )
    });
    (out, log)
}

/// The names in directory `dir` as the kernel lists them.
pub fn list(dir: &Path) -> BTreeSet<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect()
}
