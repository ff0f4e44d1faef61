//! Shared by the end-to-end tests: the e2e images (fixtures/e2e.toml), running
//! the binary, and reading independent tools' output.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The e2e disk as raw, qcow2 and streamOptimized VMDK, built by real tools.
pub fn images() -> Vec<(&'static str, PathBuf)> {
    vmscrub_fixtures::build(&["e2e-disk", "e2e-qcow2", "e2e-vmdk"]);
    vec![
        ("raw", vmscrub_fixtures::path_of("e2e-disk")),
        ("qcow2", vmscrub_fixtures::path_of("e2e-qcow2")),
        ("vmdk", vmscrub_fixtures::path_of("e2e-vmdk")),
    ]
}

/// The raw disk the containers were made from (the oracles read it).
pub fn raw_disk() -> PathBuf {
    vmscrub_fixtures::fixture("e2e-disk")
}

pub fn vmscrub<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs vmscrub and insists on exit code `code`.
pub fn vmscrub_ok<I, S>(args: I, code: i32) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    let o = vmscrub(&args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "vmscrub {args:?}: stderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// The disk's partitions per `sfdisk -J`: (1-based index, byte offset, byte size).
pub fn partitions(disk: &Path) -> Vec<(u32, u64, u64)> {
    let out = vmscrub_fixtures::run("sfdisk", &[&"-J", &disk]);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let pt = &v["partitiontable"];
    let sector = pt["sectorsize"].as_u64().unwrap_or(512);
    pt["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                i as u32 + 1,
                p["start"].as_u64().unwrap() * sector,
                p["size"].as_u64().unwrap() * sector,
            )
        })
        .collect()
}

/// Byte offsets of the disk's partitions (1-based index → offset).
pub fn partition_offsets(disk: &Path) -> Vec<(u32, u64)> {
    partitions(disk)
        .into_iter()
        .map(|(n, o, _)| (n, o))
        .collect()
}

pub fn offset_of(disk: &Path, partition: u32) -> u64 {
    partition_offsets(disk)
        .into_iter()
        .find(|p| p.0 == partition)
        .unwrap()
        .1
}

/// Undoes `vmscrub ls` escaping: `\\` → `\`, `\xNN` → the byte.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 4 <= b.len() {
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// A manifest path as the builder plants it (`escaped = true` spells bytes as `\xNN`).
pub fn manifest_path(e: &serde_json::Value) -> Vec<u8> {
    let p = e["path"].as_str().unwrap();
    if e["escaped"].as_bool() == Some(true) {
        let mut out = vec![];
        let b = p.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
                out.push(u8::from_str_radix(&p[i + 2..i + 4], 16).unwrap());
                i += 4;
            } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    } else {
        p.as_bytes().to_vec()
    }
}

/// The built directory of a tree recipe.
pub fn tree_dir(name: &str) -> PathBuf {
    vmscrub_fixtures::fixture(name)
}

/// Mode bits from an `ls -l` mode string (`drwxr-sr-t` → 0o43755 style full mode).
pub fn parse_mode(s: &str) -> u32 {
    let b = s.as_bytes();
    let ty = match b[0] {
        b'-' => 0o100000,
        b'd' => 0o040000,
        b'l' => 0o120000,
        b'c' => 0o020000,
        b'b' => 0o060000,
        b'p' => 0o010000,
        b's' => 0o140000,
        c => panic!("type letter {}", c as char),
    };
    let mut m = 0u32;
    let bits = [
        (1, b'r', 0o400),
        (2, b'w', 0o200),
        (4, b'r', 0o040),
        (5, b'w', 0o020),
        (7, b'r', 0o004),
        (8, b'w', 0o002),
    ];
    for (i, c, v) in bits {
        if b[i] == c {
            m |= v;
        }
    }
    for (i, x, special) in [(3, 0o100, 0o4000), (6, 0o010, 0o2000), (9, 0o001, 0o1000)] {
        match b[i] {
            b'x' => m |= x,
            b's' | b't' => m |= x | special,
            b'S' | b'T' => m |= special,
            b'-' => {}
            c => panic!("mode letter {}", c as char),
        }
    }
    ty | m
}

/// One parsed `vmscrub ls` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsLine {
    pub inode: Option<u64>,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size, or `None` for a device (then `rdev`).
    pub size: Option<u64>,
    pub rdev: Option<(u32, u32)>,
    pub date: String,
    pub time: String,
    /// Raw name bytes (unescaped).
    pub name: Vec<u8>,
    pub target: Option<Vec<u8>>,
}

pub fn parse_ls(text: &[u8], with_inode: bool) -> Vec<LsLine> {
    let text = std::str::from_utf8(text).expect("ls output is UTF-8 (names are escaped)");
    text.lines()
        .map(|l| {
            let mut rest = l.trim_start();
            let mut next = || {
                let s = rest.trim_start();
                let end = s.find(' ').unwrap_or(s.len());
                let (tok, r) = s.split_at(end);
                rest = r;
                tok.to_string()
            };
            let inode = with_inode.then(|| next().parse().unwrap());
            let modestr = next();
            let mode = parse_mode(&modestr);
            let nlink = next().parse().unwrap();
            let uid = next().parse().unwrap();
            let gid = next().parse().unwrap();
            let (size, rdev) = if modestr.starts_with(['c', 'b']) {
                let major = next();
                let minor = next();
                (
                    None,
                    Some((
                        major.trim_end_matches(',').parse().unwrap(),
                        minor.parse().unwrap(),
                    )),
                )
            } else {
                (Some(next().parse().unwrap()), None)
            };
            let date = next();
            let time = next();
            let name_part = rest.strip_prefix(' ').unwrap();
            let (name, target) = if modestr.starts_with('l') {
                let (n, t) = name_part.split_once(" -> ").unwrap();
                (unescape(n), Some(unescape(t)))
            } else {
                (unescape(name_part), None)
            };
            LsLine {
                inode,
                mode,
                nlink,
                uid,
                gid,
                size,
                rdev,
                date,
                time,
                name,
                target,
            }
        })
        .collect()
}

/// One entry of `debugfs ls -p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugfsEntry {
    pub path: Vec<u8>,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Empty for directories.
    pub size: Option<u64>,
}

/// Every entry of an ext filesystem (at `offset` in `image`), walked with
/// `debugfs ls -p`, one debugfs session per directory level.
pub fn debugfs_tree(image: &Path, offset: u64) -> Vec<DebugfsEntry> {
    let spec = format!("{}?offset={offset}", image.display());
    let mut out = vec![];
    let mut level: Vec<(Vec<u8>, u64)> = vec![(vec![], 2)];
    while !level.is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cmds = dir.path().join("cmds");
        let mut script = String::new();
        for (_, ino) in &level {
            script.push_str(&format!("ls -p <{ino}>\n"));
        }
        std::fs::write(&cmds, script).unwrap();
        let text = vmscrub_fixtures::run("debugfs", &[&"-f", &cmds, &spec]);
        let mut next = vec![];
        let mut current: Option<usize> = None;
        let mut k = 0usize;
        for line in text.split(|&b| b == b'\n') {
            if line.starts_with(b"debugfs: ls -p") {
                current = Some(k);
                k += 1;
                continue;
            }
            if !line.starts_with(b"/") {
                continue;
            }
            let f: Vec<&[u8]> = line.split(|&b| b == b'/').collect();
            assert_eq!(f.len(), 8, "{}", String::from_utf8_lossy(line));
            let name = f[5];
            // Unused slots (lost+found is preallocated) list as inode 0, no name.
            if name.is_empty() || name == b"." || name == b".." || f[1] == b"0" {
                continue;
            }
            let (parent, _) = &level[current.unwrap()];
            let mut path = parent.clone();
            path.push(b'/');
            path.extend_from_slice(name);
            let num = |b: &[u8]| std::str::from_utf8(b).unwrap().to_string();
            let e = DebugfsEntry {
                path,
                ino: num(f[1]).parse().unwrap(),
                mode: u32::from_str_radix(&num(f[2]), 8).unwrap(),
                uid: num(f[3]).parse().unwrap(),
                gid: num(f[4]).parse().unwrap(),
                size: (!f[6].is_empty()).then(|| num(f[6]).parse().unwrap()),
            };
            if e.mode & 0o170000 == 0o040000 {
                next.push((e.path.clone(), e.ino));
            }
            out.push(e);
        }
        assert_eq!(k, level.len(), "debugfs listed every directory");
        level = next;
    }
    out
}

/// `debugfs dump` of every inode in `inodes`, in one session; returns the bytes
/// of each, in order.
pub fn debugfs_dump(image: &Path, offset: u64, inodes: &[u64]) -> Vec<Vec<u8>> {
    let spec = format!("{}?offset={offset}", image.display());
    let dir = tempfile::tempdir().unwrap();
    let cmds = dir.path().join("cmds");
    let mut script = String::new();
    for ino in inodes {
        script.push_str(&format!(
            "dump <{ino}> {}\n",
            dir.path().join(ino.to_string()).display()
        ));
    }
    std::fs::write(&cmds, script).unwrap();
    vmscrub_fixtures::run("debugfs", &[&"-f", &cmds, &spec]);
    inodes
        .iter()
        .map(|i| std::fs::read(dir.path().join(i.to_string())).unwrap())
        .collect()
}

/// mtools commands need this to accept images whose geometry they would question.
pub fn mtools(cmd: &str, args: &[&dyn AsRef<OsStr>]) -> Vec<u8> {
    let out = Command::new(cmd)
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
