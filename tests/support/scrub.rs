//! Shared by the scrub tests: running a scrub, taking an image apart with
//! independent tools (sfdisk, debugfs rdump, mtools), and the trees they see.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use sha2::{Digest, Sha256};
use vmscrub_fixtures::{fixture, repo_root, run};

#[path = "../common/mod.rs"]
mod common;
#[allow(unused_imports)] // each test binary uses a different part
pub use common::{os, partitions, unescape};

pub fn vmscrub<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args)
        .output()
        .unwrap()
}

/// `vmscrub recover ARCHIVE -i KEY MODE...`, which must succeed.
pub fn recover(archive: &Path, key: &Path, mode: &[&std::ffi::OsStr]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["recover".as_ref(), archive.as_os_str()];
    args.extend(["-i".as_ref(), key.as_os_str()]);
    args.extend(mode);
    let o = vmscrub(&args);
    assert!(
        o.status.success(),
        "recover {} with {}: {}",
        archive.display(),
        key.display(),
        stderr(&o)
    );
    o
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn rules() -> PathBuf {
    repo_root().join("fixtures/scrub-rules.toml")
}

/// An RSA key pair made by ssh-keygen, shared by the tests of one binary.
pub struct Keys {
    pub dir: tempfile::TempDir,
}

impl Keys {
    pub fn public(&self) -> PathBuf {
        self.dir.path().join("id_rsa.pub")
    }
    pub fn private(&self) -> PathBuf {
        self.dir.path().join("id_rsa")
    }
}

pub fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("id_rsa");
        run(
            "ssh-keygen",
            &[
                &"-q",
                &"-t",
                &"rsa",
                &"-b",
                &"3072",
                &"-N",
                &"",
                &"-C",
                &"owner@test",
                &"-f",
                &k,
            ],
        );
        Keys { dir }
    })
}

pub fn is_root() -> bool {
    String::from_utf8(run("id", &[&"-u"])).unwrap().trim() == "0"
}

/// SHA-256 of a whole file, streamed.
pub fn file_sha(path: &Path) -> [u8; 32] {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().into()
}

/// Copies partition `n` of a raw disk into its own file.
pub fn extract(disk: &Path, n: u32, dir: &Path) -> PathBuf {
    use std::os::unix::fs::FileExt;
    let (_, off, size) = partitions(disk).into_iter().find(|p| p.0 == n).unwrap();
    let out = dir.join(format!(
        "{}-p{n}.img",
        disk.file_name().unwrap().to_string_lossy()
    ));
    let src = std::fs::File::open(disk).unwrap();
    let dst = std::fs::File::create(&out).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    let mut pos = 0;
    while pos < size {
        let k = (size - pos).min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..k], off + pos).unwrap();
        dst.write_all_at(&buf[..k], pos).unwrap();
        pos += k as u64;
    }
    out
}

/// One entry of a dumped tree, as the host sees the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `f`, `d` or `l`.
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub sha: [u8; 32],
    pub target: Vec<u8>,
}

/// Path (absolute inside the filesystem, bytes) → node.
pub type Tree = BTreeMap<Vec<u8>, Node>;

/// A dumped filesystem: its tree and where the dump's files are.
pub struct Dump {
    pub tree: Tree,
    pub root: PathBuf,
    /// What the dumping tool said it could not read, with the dump's own
    /// directory taken out of the paths (so two dumps compare).
    pub errors: Vec<String>,
}

impl Dump {
    pub fn content(&self, path: &[u8]) -> Vec<u8> {
        std::fs::read(self.host(path)).unwrap()
    }
    pub fn host(&self, path: &[u8]) -> PathBuf {
        self.root.join(std::ffi::OsStr::from_bytes(
            path.strip_prefix(b"/").unwrap_or(path),
        ))
    }
}

fn walk_host(root: &Path) -> Tree {
    let mut t = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap();
            let mut key = b"/".to_vec();
            key.extend_from_slice(rel.as_os_str().as_bytes());
            let (kind, sha, target) = if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                ('l', [0; 32], t.as_os_str().as_bytes().to_vec())
            } else if m.is_dir() {
                stack.push(p.clone());
                ('d', [0; 32], vec![])
            } else {
                ('f', file_sha(&p), vec![])
            };
            t.insert(
                key,
                Node {
                    kind,
                    mode: m.permissions().mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    // A dumped symlink has the time of the dump.
                    mtime: if kind == 'l' { 0 } else { m.mtime() },
                    size: if kind == 'f' { m.len() } else { 0 },
                    sha,
                    target,
                },
            );
        }
    }
    t
}

/// Seconds one debugfs command may take ([`debugfs`]); the corpus loss check
/// lowers it, so a pathological image costs seconds, not minutes.
pub static DEBUGFS_TIMEOUT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(120);

/// debugfs under a time limit: the corpus tests dump deliberately corrupt images.
fn debugfs() -> Command {
    let mut c = Command::new("timeout");
    c.arg(
        DEBUGFS_TIMEOUT
            .load(std::sync::atomic::Ordering::Relaxed)
            .to_string(),
    )
    .arg("debugfs");
    c
}

/// `debugfs rdump /` of an ext2/3/4 image: regular files, directories and
/// symlinks with mode, owner (as root) and mtime. (debugfs skips fifos,
/// devices and sockets; hard links come out as copies.)
pub fn dump_ext(img: &Path, dir: &Path) -> Dump {
    try_dump_ext(img, dir).unwrap_or_else(|e| panic!("{e}"))
}

/// [`dump_ext`], or why debugfs could not dump (it failed or hung).
pub fn try_dump_ext(img: &Path, dir: &Path) -> Result<Dump, String> {
    let root = dir.join(format!(
        "{}.rdump",
        img.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&root).unwrap();
    let cmd = format!("rdump / {}", root.display());
    let o = debugfs().args(["-R", &cmd]).arg(img).output().unwrap();
    if !o.status.success() {
        let e = stderr(&o);
        let e: String = e.chars().take(2000).collect();
        return Err(format!("debugfs rdump ({}): {e}", o.status));
    }
    let shown = root.display().to_string();
    let errors = stderr(&o)
        .lines()
        .filter(|l| !l.starts_with("debugfs "))
        .map(|l| l.replace(&format!("{shown}//"), "/").replace(&shown, ""))
        .collect();
    let mut tree = walk_host(&root);
    tree.remove(b"/lost+found".as_slice());
    fix_inline_sizes(img, &root, &mut tree, dir);
    Ok(Dump { tree, root, errors })
}

/// debugfs dumps an inline-data file shorter than the inline area (60 bytes)
/// with that whole area, zeros included. `ls -p` gives every file's real size:
/// cut such dumps back to it.
fn fix_inline_sizes(img: &Path, root: &Path, tree: &mut Tree, dir: &Path) {
    use std::io::Write;
    let dirs: Vec<Vec<u8>> = std::iter::once(b"/".to_vec())
        .chain(
            tree.iter()
                .filter(|(_, n)| n.kind == 'd')
                .map(|(p, _)| p.clone()),
        )
        .collect();
    let cmds = dir.join(format!(
        "{}.ls-cmds",
        img.file_name().unwrap().to_string_lossy()
    ));
    let mut f = std::fs::File::create(&cmds).unwrap();
    for d in &dirs {
        f.write_all(b"ls -p \"").unwrap();
        f.write_all(d).unwrap();
        f.write_all(b"\"\n").unwrap();
    }
    drop(f);
    let o = debugfs().arg("-f").arg(&cmds).arg(img).output().unwrap();
    let mut cur: &[u8] = b"/";
    for line in o.stdout.split(|&b| b == b'\n') {
        if let Some(d) = line.strip_prefix(b"debugfs: ls -p \"") {
            cur = d.strip_suffix(b"\"").unwrap_or(d);
            continue;
        }
        // /ino/mode/uid/gid/name/size/
        let f: Vec<&[u8]> = line.split(|&b| b == b'/').collect();
        if f.len() != 8 || !f[2].starts_with(b"10") {
            continue;
        }
        let Some(size) = std::str::from_utf8(f[6])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let mut path = cur.to_vec();
        if path != b"/" {
            path.push(b'/');
        }
        path.extend_from_slice(f[5]);
        if let Some(n) = tree.get_mut(&path)
            && n.kind == 'f'
            && n.size > size
        {
            let host = root.join(std::ffi::OsStr::from_bytes(&path[1..]));
            std::fs::OpenOptions::new()
                .write(true)
                .open(&host)
                .unwrap()
                .set_len(size)
                .unwrap();
            n.size = size;
            n.sha = file_sha(&host);
        }
    }
}

/// `mcopy -s -p -m` of a FAT image: names, contents and mtimes as mtools reads them.
pub fn dump_fat(img: &Path, dir: &Path) -> Dump {
    let root = dir.join(format!(
        "{}.mcopy",
        img.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&root).unwrap();
    let dst = format!("{}/", root.display());
    run(
        "mcopy",
        &[&"-s", &"-p", &"-m", &"-n", &"-i", &img, &"::/", &dst],
    );
    Dump {
        tree: walk_host(&root),
        root,
        errors: vec![],
    }
}

/// The e2fsck / fsck.fat verdicts: exit 0 and nothing to fix.
pub fn fsck_clean(img: &Path, fat: bool) {
    let o = if fat {
        Command::new("fsck.fat")
            .arg("-n")
            .arg(img)
            .output()
            .unwrap()
    } else {
        Command::new("e2fsck").arg("-fn").arg(img).output().unwrap()
    };
    assert!(
        o.status.success(),
        "{} is not clean:\n{}{}",
        img.display(),
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

/// The `scrub.actions` of a report: (partition, path inside the filesystem,
/// guest path, action), with each filesystem index mapped to its partition.
pub fn actions(report: &Value) -> Vec<(u32, Vec<u8>, String, String)> {
    let fss = report["guest"]["filesystems"].as_array().unwrap();
    report["scrub"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let fi = a["filesystem"].as_u64().unwrap() as usize;
            let part = fss[fi]["partition"].as_u64().unwrap() as u32;
            let fs_path = match a["fs_path_hex"].as_str() {
                Some(h) => hex::decode(h).unwrap(),
                None => a["fs_path"].as_str().unwrap().as_bytes().to_vec(),
            };
            (
                part,
                fs_path,
                a["path"].as_str().unwrap().to_string(),
                a["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn under(path: &[u8], prefix: &[u8]) -> bool {
    path == prefix || (path.starts_with(prefix) && path.get(prefix.len()) == Some(&b'/'))
}

/// A fixture by name (built on demand).
pub fn image(name: &str) -> PathBuf {
    fixture(name)
}

/// Trees equal, or a panic naming the paths that differ (not the whole trees).
pub fn assert_trees_eq(a: &Tree, b: &Tree, what: &str) {
    let mut diffs = Vec::new();
    for (p, n) in a {
        match b.get(p) {
            None => diffs.push(format!("only in the first: {}", String::from_utf8_lossy(p))),
            Some(m) if m != n => diffs.push(format!(
                "differs: {}: {n:?} vs {m:?}",
                String::from_utf8_lossy(p)
            )),
            _ => {}
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        diffs.push(format!(
            "only in the second: {}",
            String::from_utf8_lossy(p)
        ));
    }
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}
/// Partition 1 is the ESP (FAT), 2 the root, 3 /home (ext4).
pub fn dumps(disk: &Path, dir: &Path) -> BTreeMap<u32, (PathBuf, Dump)> {
    let mut m = BTreeMap::new();
    for (n, _, _) in partitions(disk) {
        let img = extract(disk, n, dir);
        let d = if n == 1 {
            dump_fat(&img, dir)
        } else {
            dump_ext(&img, dir)
        };
        m.insert(n, (img, d));
    }
    m
}

/// Where a filesystem's files go in the archive (see scrub::capture).
pub fn archive_prefix(part: u32) -> &'static [u8] {
    match part {
        1 => b"boot/efi",
        2 => b"",
        3 => b"home",
        _ => unreachable!(),
    }
}

pub fn archive_name(part: u32, fs_path: &[u8], shadowed: bool) -> Vec<u8> {
    let rel = fs_path.strip_prefix(b"/").unwrap_or(fs_path);
    let mut n = if shadowed {
        format!("partition-{part}/").into_bytes()
    } else {
        let p = archive_prefix(part);
        let mut v = p.to_vec();
        if !v.is_empty() {
            v.push(b'/');
        }
        v
    };
    n.extend_from_slice(rel);
    n
}

/// The archive's plain tar, made without vmscrub: Debian's `age -d -i KEY | zstd -d`
/// for an age archive, the standalone Python decryptor for a v1 one.
pub fn independent_tar(archive: &Path, key: &Path, out: &Path) {
    let mut head = [0u8; 22];
    let n = std::fs::File::open(archive)
        .unwrap()
        .read(&mut head)
        .unwrap();
    if head[..n] == b"age-encryption.org/v1\n"[..] {
        let o = Command::new("bash")
            .args([
                "-c",
                "set -o pipefail; age -d -i \"$1\" \"$2\" | zstd -d -q > \"$3\"",
                "_",
            ])
            .args([key, archive, out])
            .output()
            .unwrap();
        assert!(o.status.success(), "age | zstd: {}", stderr(&o));
    } else {
        run(
            "python3",
            &[
                &repo_root().join("scripts/vmscrub-recover.py"),
                &archive,
                &"--identity",
                &key,
                &"-o",
                &out,
            ],
        );
    }
}
