//! Shared by the XFS kernel-oracle tests: what the kernel shows of a mounted
//! XFS tree and what vmscrub's adapter shows, in one comparable form.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};
use vmscrub::fs::walk::walk;
use vmscrub::fs::xfs::XfsFs;
use vmscrub::fs::{FileKind, Filesystem};
use vmscrub_blockdev::FileDisk;

/// What the comparison looks at, for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub kind: FileKind,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub ino: u64,
    pub rdev: Option<(u32, u32)>,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    /// Creation time (v5 inodes; the kernel's statx birth time).
    pub crtime: Option<(i64, u32)>,
    pub link: Option<Vec<u8>>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub digest: Option<[u8; 32]>,
}

/// A read-only loop mount, unmounted on drop.
pub struct Mount(pub tempfile::TempDir);

impl Mount {
    pub fn new(img: &Path, opts: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-o", opts, "-t", "xfs"])
            .arg(img)
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount -o {opts} {}", img.display());
        Mount(dir)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

pub fn kernel_kind(t: std::fs::FileType) -> FileKind {
    if t.is_dir() {
        FileKind::Directory
    } else if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_char_device() {
        FileKind::CharDevice
    } else if t.is_block_device() {
        FileKind::BlockDevice
    } else if t.is_fifo() {
        FileKind::Fifo
    } else if t.is_socket() {
        FileKind::Socket
    } else {
        FileKind::Regular
    }
}

pub fn kernel_xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    use rustix::fs::{lgetxattr, llistxattr};
    let mut names = vec![0u8; 1 << 20];
    let n = llistxattr(p, &mut names[..]).unwrap();
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 1 << 17];
        let k = lgetxattr(p, name, &mut v[..]).unwrap();
        out.insert(name.to_vec(), v[..k].to_vec());
    }
    // XFS keeps a POSIX ACL as trusted.SGI_ACL_*, which the kernel lists
    // under that name as well as system.posix_acl_*: the adapter shows the
    // ACL once, under the name every filesystem shares.
    for (sgi, posix) in [
        (
            &b"trusted.SGI_ACL_FILE"[..],
            &b"system.posix_acl_access"[..],
        ),
        (b"trusted.SGI_ACL_DEFAULT", b"system.posix_acl_default"),
    ] {
        if out.contains_key(posix) {
            assert!(
                out.remove(sgi).is_some(),
                "{}: {posix:?} without its XFS form",
                p.display()
            );
        }
    }
    out
}

/// The kernel's birth time (statx), when it reports one.
pub fn birth_time(p: &Path) -> Option<(i64, u32)> {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    let x = statx(CWD, p, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BTIME).unwrap();
    (x.stx_mask & StatxFlags::BTIME.bits() != 0)
        .then_some((x.stx_btime.tv_sec, x.stx_btime.tv_nsec))
}

pub fn kernel_tree(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let kind = kernel_kind(m.file_type());
            if kind == FileKind::Directory {
                todo.push(p.clone());
            }
            let rel = [b"/", p.strip_prefix(root).unwrap().as_os_str().as_bytes()].concat();
            let digest = (kind == FileKind::Regular).then(|| {
                let mut h = Sha256::new();
                h.update(std::fs::read(&p).unwrap());
                h.finalize().into()
            });
            let dev = (kind == FileKind::CharDevice || kind == FileKind::BlockDevice)
                .then(|| (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())));
            out.insert(
                rel,
                Seen {
                    kind,
                    size: m.size(),
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    nlink: m.nlink() as u32,
                    ino: m.ino(),
                    rdev: dev,
                    mtime: (m.mtime(), m.mtime_nsec() as u32),
                    ctime: (m.ctime(), m.ctime_nsec() as u32),
                    crtime: birth_time(&p),
                    link: (kind == FileKind::Symlink).then(|| {
                        std::fs::read_link(&p)
                            .unwrap()
                            .as_os_str()
                            .as_bytes()
                            .to_vec()
                    }),
                    xattrs: kernel_xattrs(&p),
                    digest,
                },
            );
        }
    }
    out
}

pub fn our_tree(img: &Path) -> BTreeMap<Vec<u8>, Seen> {
    fs_tree(&XfsFs::open(FileDisk::open(img).unwrap()).unwrap())
}

/// What `fs` shows, in the form [`kernel_tree`] gives.
pub fn fs_tree(fs: &dyn Filesystem) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let skipped = walk(fs, fs.root(), b"/", |e| {
        let id = e.entry.id;
        let m = fs.metadata(id).unwrap();
        assert_eq!(
            m.kind,
            e.entry.kind,
            "{}: entry type",
            String::from_utf8_lossy(&e.path)
        );
        let digest = (m.kind == FileKind::Regular).then(|| {
            let mut h = Sha256::new();
            let mut buf = vec![];
            fs.open(id).unwrap().read_to_end(&mut buf).unwrap();
            h.update(&buf);
            h.finalize().into()
        });
        let xattrs = fs
            .xattrs(id)
            .unwrap()
            .into_iter()
            .map(|x| (x.name, x.value))
            .collect();
        out.insert(
            e.path.clone(),
            Seen {
                kind: m.kind,
                size: m.size,
                mode: m.mode,
                uid: m.uid,
                gid: m.gid,
                nlink: m.nlink,
                ino: id,
                rdev: m.rdev,
                mtime: (m.mtime.sec, m.mtime.nsec),
                ctime: (m.ctime.sec, m.ctime.nsec),
                crtime: m.crtime.map(|t| (t.sec, t.nsec)),
                link: (m.kind == FileKind::Symlink).then(|| fs.read_link(id).unwrap()),
                xattrs,
                digest,
            },
        );
        Ok(true)
    })
    .unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    out
}

/// `xfs_repair -n` clean and xfs_db's `check` (blockget: every block and
/// inode accounted for exactly once, which also catches a block unmapped but
/// never freed where there is no rmapbt for xfs_repair to compare with)
/// silent. `force_geometry`: single-AG filesystems (small LV fixtures) are
/// checked too, where xfs_repair cannot cross-check the geometry.
pub fn repair_clean(img: &Path, what: &str) {
    let o = Command::new("xfs_repair")
        .args(["-n", "-o", "force_geometry"])
        .arg(img)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{what}: xfs_repair -n:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new("xfs_db")
        .args(["-r", "-c", "check"])
        .arg(img)
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "{what}: xfs_db check:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
