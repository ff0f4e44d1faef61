//! Shared test support: the fixture list, our own walk, and the debugfs oracle.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use vmscrub_blockdev::FileDisk;
use vmscrub_ext4::{Ext4, FileType, ROOT_INO};

/// Every ext fixture of fixtures/ext4.toml.
pub const FIXTURES: &[&str] = &[
    "ext4-default",
    "ext4-1k",
    "ext4-2k",
    "ext4-64k",
    "ext4-nocsum",
    "ext4-32bit",
    "ext4-inline",
    "ext4-metabg",
    "ext4-noflex",
    "ext4-noextent",
    "ext4-128inode",
    "ext4-eainode",
    "ext2-rich",
    "ext2-nofiletype",
    "ext3-rich",
    "ext4-recover",
    "ext4-fuzz",
    "ext4-fuzz-inline",
    "ext2-fuzz",
];

pub fn open(path: &Path) -> Ext4<FileDisk> {
    let disk = FileDisk::open(path).expect("open image");
    Ext4::open(disk).expect("open ext4")
}

/// What we compare per inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub ino: u32,
    pub ftype: FileType,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u16,
    pub link: Option<Vec<u8>>,
    pub sha256: Option<[u8; 32]>,
    pub device: Option<(u32, u32)>,
    pub mtime_raw: (u32, Option<u32>),
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// A block-mapped (ext2/ext3-style) regular file with holes.
    pub block_map_holes: bool,
}

pub fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Streams a file through our reader in 1 MiB reads.
pub fn our_sha(fs: &Ext4<FileDisk>, ino: u32) -> ([u8; 32], u64) {
    let r = fs.open_file(ino).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = r.read_at(off, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    (h.finalize().into(), off)
}

/// Our whole tree: path → node, and directory inode → set of (name, inode).
pub struct OurTree {
    pub nodes: BTreeMap<Vec<u8>, Node>,
    pub dirs: BTreeMap<u32, Vec<(Vec<u8>, u32)>>,
}

pub fn walk_ours(fs: &Ext4<FileDisk>) -> OurTree {
    let mut nodes = BTreeMap::new();
    let mut dirs = BTreeMap::new();
    let mut stack = vec![(b"".to_vec(), ROOT_INO)];
    nodes.insert(b"/".to_vec(), node_of(fs, ROOT_INO));
    while let Some((path, ino)) = stack.pop() {
        let mut list = Vec::new();
        for e in fs.read_dir(ino).unwrap() {
            let e = e.unwrap();
            list.push((e.name.clone(), e.inode));
            if e.is_dot_or_dotdot() {
                continue;
            }
            let mut p = path.clone();
            p.push(b'/');
            p.extend_from_slice(&e.name);
            let n = node_of(fs, e.inode);
            if let Some(t) = e.file_type() {
                assert_eq!(t, n.ftype, "dirent type of {}", String::from_utf8_lossy(&p));
            }
            if n.ftype == FileType::Directory {
                stack.push((p.clone(), e.inode));
            }
            nodes.insert(p, n);
        }
        list.sort();
        dirs.insert(ino, list);
    }
    OurTree { nodes, dirs }
}

pub fn node_of(fs: &Ext4<FileDisk>, ino: u32) -> Node {
    let i = fs.inode(ino).unwrap();
    let ft = i.file_type();
    let link = (ft == FileType::Symlink).then(|| fs.readlink(ino).unwrap());
    let sha256 = (ft == FileType::Regular).then(|| {
        let (h, n) = our_sha(fs, ino);
        assert_eq!(n, i.size, "inode {ino}: bytes read vs i_size");
        h
    });
    let xattrs = fs
        .xattrs(ino)
        .unwrap()
        .into_iter()
        .map(|x| (x.name, x.value))
        .collect();
    let raw = &i.raw;
    let mt = u32::from_le_bytes(raw[0x10..0x14].try_into().unwrap());
    let mt_extra =
        (i.extra_isize >= 12).then(|| u32::from_le_bytes(raw[0x88..0x8C].try_into().unwrap()));
    Node {
        ino,
        ftype: ft,
        perm: i.permissions(),
        uid: i.uid,
        gid: i.gid,
        size: i.size,
        nlink: i.links_count,
        link,
        sha256,
        device: i.device(),
        mtime_raw: (mt, mt_extra),
        xattrs,
        block_map_holes: ft == FileType::Regular
            && !i.has_flag(vmscrub_ext4::inode::flags::EXTENTS)
            && !fs.is_inline(&i)
            && fs.file_map(&i).unwrap().data_blocks() * u64::from(fs.block_size()) < i.size,
    }
}

// ------------------------------------------------------------------- debugfs

/// Runs a debugfs command file; returns the output split per command
/// (`debugfs: CMD` echo lines start each section).
pub fn debugfs_batch(img: &Path, cmds: &[String]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cmds");
    std::fs::write(&f, cmds.join("\n") + "\n").unwrap();
    let out = Command::new("debugfs")
        .env("DEBUGFS_PAGER", "__none__")
        .env("PAGER", "__none__")
        .arg("-f")
        .arg(&f)
        .arg(img)
        .output()
        .expect("run debugfs");
    if std::env::var_os("EXT4_TEST_DUMP").is_some() {
        std::fs::write("/tmp/debugfs-out", &out.stdout).unwrap();
        std::fs::write("/tmp/debugfs-cmds", cmds.join("\n")).unwrap();
    }
    assert!(
        out.status.success(),
        "debugfs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sections: Vec<Vec<u8>> = Vec::new();
    for line in out.stdout.split(|&c| c == b'\n') {
        if line.starts_with(b"debugfs: ") {
            sections.push(Vec::new());
        } else if let Some(s) = sections.last_mut() {
            s.extend_from_slice(line);
            s.push(b'\n');
        }
    }
    assert_eq!(
        sections.len(),
        cmds.len(),
        "one output section per debugfs command"
    );
    sections
}

/// `ls -p` lines: `/ino/mode/uid/gid/name/size/`.
pub fn parse_ls(section: &[u8]) -> Vec<(Vec<u8>, u32, u32)> {
    let mut v = Vec::new();
    for line in section.split(|&c| c == b'\n') {
        if line.is_empty() {
            continue;
        }
        let f: Vec<&[u8]> = line.split(|&c| c == b'/').collect();
        assert!(
            f.len() >= 7 && f[0].is_empty(),
            "ls -p line {:?}",
            String::from_utf8_lossy(line)
        );
        let ino: u32 = std::str::from_utf8(f[1]).unwrap().parse().unwrap();
        let mode = u32::from_str_radix(std::str::from_utf8(f[2]).unwrap(), 8).unwrap();
        // debugfs lists the unused slot of an inline directory as inode 0.
        if ino != 0 {
            v.push((f[5].to_vec(), ino, mode));
        }
    }
    v
}

#[derive(Debug, Default, Clone)]
pub struct DebugfsStat {
    pub ftype: String,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub links: u16,
    pub mtime_raw: (u32, Option<u32>),
    pub fast_link: Option<Vec<u8>>,
    pub device: Option<(u32, u32)>,
    pub file_acl: u64,
    /// `Flags:` has the inline-data bit.
    pub inline: bool,
}

fn field<'a>(text: &'a str, key: &str) -> &'a str {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in stat output:\n{text}"))
        + key.len();
    text[at..].split_whitespace().next().unwrap()
}

pub fn parse_stat(section: &[u8]) -> DebugfsStat {
    let text = String::from_utf8_lossy(section).into_owned();
    let type_start = text
        .find("Type: ")
        .unwrap_or_else(|| panic!("no Type in stat output:\n{text}"))
        + 6;
    let type_end = text[type_start..].find("  ").unwrap() + type_start;
    let mline = text
        .lines()
        .find(|l| l.trim_start().starts_with("mtime:"))
        .unwrap();
    let hex = mline
        .trim_start()
        .trim_start_matches("mtime:")
        .split_whitespace()
        .next()
        .unwrap();
    let mut parts = hex.split(':');
    let base = u32::from_str_radix(parts.next().unwrap().trim_start_matches("0x"), 16).unwrap();
    let extra = parts.next().map(|e| u32::from_str_radix(e, 16).unwrap());
    // The fast link target, taken from the raw bytes (it may not be UTF-8).
    let fast_link = section
        .windows(16)
        .position(|w| w == b"Fast link dest: ")
        .map(|p| {
            let rest = &section[p + 17..];
            let end = rest.iter().rposition(|&c| c == b'"').unwrap();
            rest[..end].to_vec()
        });
    let device = text
        .lines()
        .find(|l| l.contains("Device major/minor number:"))
        .map(|l| {
            let v = l
                .split("number:")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            let (a, b) = v.split_once(':').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        });
    DebugfsStat {
        ftype: text[type_start..type_end].trim().to_string(),
        perm: u16::from_str_radix(field(&text, "Mode:"), 8).unwrap(),
        uid: field(&text, "User:").parse().unwrap(),
        gid: field(&text, "Group:").parse().unwrap(),
        size: field(&text, "Size:").parse().unwrap(),
        links: field(&text, "Links:").parse().unwrap(),
        mtime_raw: (base, extra),
        fast_link,
        device,
        file_acl: field(&text, "File ACL:").parse().unwrap(),
        inline: u32::from_str_radix(field(&text, "Flags:").trim_start_matches("0x"), 16).unwrap()
            & 0x1000_0000
            != 0,
    }
}

pub fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::Regular => "regular",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::CharDevice => "character special",
        FileType::BlockDevice => "block special",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::Unknown => "bad type",
    }
}

/// `ea_list` lines: `  name (size) = "text"` or `= hex bytes`, or `  name (size)`
/// when the value is long (then `None`).
pub fn parse_ea_list(section: &[u8]) -> Vec<(Vec<u8>, usize, Option<Vec<u8>>)> {
    let mut v = Vec::new();
    for line in section.split(|&c| c == b'\n') {
        if !line.starts_with(b"  ") {
            continue;
        }
        let line = &line[2..];
        let open = line.iter().position(|&c| c == b'(').unwrap();
        let close = line.iter().position(|&c| c == b')').unwrap();
        let name = line[..open - 1].to_vec();
        let size: usize = std::str::from_utf8(&line[open + 1..close])
            .unwrap()
            .parse()
            .unwrap();
        let rest = &line[close + 1..];
        let value = rest.strip_prefix(b" = ").map(|val| {
            if val.first() == Some(&b'"') {
                val[1..val.len() - 1].to_vec()
            } else {
                std::str::from_utf8(val)
                    .unwrap()
                    .split_whitespace()
                    .map(|h| u8::from_str_radix(h, 16).unwrap())
                    .collect()
            }
        });
        v.push((name, size, value));
    }
    v
}

/// The debugfs view of a whole filesystem, discovered from the root by `ls -p`.
pub struct DebugfsTree {
    pub dirs: BTreeMap<u32, Vec<(Vec<u8>, u32)>>,
    pub stats: HashMap<u32, DebugfsStat>,
    pub xattrs: HashMap<u32, BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Content sha256 of regular files (and slow symlink targets), from `dump`.
    pub content: HashMap<u32, [u8; 32]>,
    pub link_targets: HashMap<u32, Vec<u8>>,
}

pub fn debugfs_tree(img: &Path) -> DebugfsTree {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = BTreeMap::new();
    let mut inodes: Vec<u32> = vec![ROOT_INO];
    let mut frontier = vec![ROOT_INO];
    while !frontier.is_empty() {
        let cmds: Vec<String> = frontier.iter().map(|i| format!("ls -p <{i}>")).collect();
        let out = debugfs_batch(img, &cmds);
        let mut next = Vec::new();
        for (dir, sec) in frontier.iter().zip(out) {
            let mut list = Vec::new();
            for (name, ino, mode) in parse_ls(&sec) {
                list.push((name.clone(), ino));
                if name == b"." || name == b".." {
                    continue;
                }
                inodes.push(ino);
                if mode & 0o170000 == 0o040000 {
                    next.push(ino);
                }
            }
            list.sort();
            dirs.insert(*dir, list);
        }
        frontier = next;
    }
    inodes.sort();
    inodes.dedup();
    let cmds: Vec<String> = inodes
        .iter()
        .flat_map(|i| [format!("stat <{i}>"), format!("ea_list <{i}>")])
        .collect();
    let out = debugfs_batch(img, &cmds);
    let mut stats = HashMap::new();
    let mut eas = HashMap::new();
    let mut missing = Vec::new();
    for (k, ino) in inodes.iter().enumerate() {
        stats.insert(*ino, parse_stat(&out[2 * k]));
        let mut m = BTreeMap::new();
        for (name, size, value) in parse_ea_list(&out[2 * k + 1]) {
            match value {
                Some(v) => {
                    assert_eq!(
                        v.len(),
                        size,
                        "ea_list size of {}",
                        String::from_utf8_lossy(&name)
                    );
                    m.insert(name, v);
                }
                None => missing.push((*ino, name)),
            }
        }
        eas.insert(*ino, m);
    }
    // Long values: ea_get -f writes them to a file.
    if !missing.is_empty() {
        let cmds: Vec<String> = missing
            .iter()
            .enumerate()
            .map(|(n, (ino, name))| {
                format!(
                    "ea_get -f {}/ea{n} <{ino}> {}",
                    tmp.path().display(),
                    String::from_utf8_lossy(name)
                )
            })
            .collect();
        debugfs_batch(img, &cmds);
        for (n, (ino, name)) in missing.into_iter().enumerate() {
            let v = std::fs::read(tmp.path().join(format!("ea{n}"))).unwrap();
            eas.get_mut(&ino).unwrap().insert(name, v);
        }
    }
    // Content: dump every non-empty regular file and every symlink without a fast target.
    let dump: Vec<u32> = inodes
        .iter()
        .copied()
        .filter(|i| {
            let s = &stats[i];
            (s.ftype == "regular" && s.size > 0) || (s.ftype == "symlink" && s.fast_link.is_none())
        })
        .collect();
    let cmds: Vec<String> = dump
        .iter()
        .map(|i| format!("dump <{i}> {}/d{i}", tmp.path().display()))
        .collect();
    debugfs_batch(img, &cmds);
    let mut content = HashMap::new();
    let mut link_targets = HashMap::new();
    for i in dump {
        let mut data = std::fs::read(tmp.path().join(format!("d{i}"))).unwrap();
        // debugfs 1.47 dumps the whole 60-byte inline area of inline-data files,
        // whatever i_size says; the file is its first i_size bytes.
        // And a hole stored inline (size above the inline bytes) reads as zeros up
        // to i_size, as in the kernel; debugfs stops at the inline bytes.
        if (data.len() as u64) < stats[&i].size && stats[&i].inline {
            data.resize(stats[&i].size as usize, 0);
        }
        if data.len() as u64 > stats[&i].size {
            assert!(
                data[stats[&i].size as usize..].iter().all(|&b| b == 0),
                "inode {i}: dump longer than i_size"
            );
            data.truncate(stats[&i].size as usize);
        }
        if stats[&i].ftype == "symlink" {
            link_targets.insert(i, data);
        } else {
            content.insert(i, sha(&data));
        }
    }
    for (i, s) in &stats {
        if let Some(l) = &s.fast_link {
            link_targets.insert(*i, l.clone());
        }
    }
    DebugfsTree {
        dirs,
        stats,
        xattrs: eas,
        content,
        link_targets,
    }
}

pub fn fixture(name: &str) -> PathBuf {
    vmscrub_fixtures::fixture(name)
}
