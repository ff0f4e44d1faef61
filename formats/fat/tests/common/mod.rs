//! Shared test support: what a volume holds according to vmscrub-fat, to the
//! `fatfs` crate and to mtools (`mdir`, `mattrib`, `mcopy`), in one comparable shape.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use vmscrub_blockdev::{ReadAt, WriteAt};
use vmscrub_fat::FatFs;

pub const FAT_TREES: [&str; 3] = ["fat12-tree", "fat16-tree", "fat32-tree"];
pub const ALL_FAT: [&str; 6] = [
    "fat12-tree",
    "fat16-tree",
    "fat32-tree",
    "fat12-small",
    "fat16-small",
    "esp-fat32",
];

/// One file or directory as every oracle can describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub is_dir: bool,
    pub size: u64,
    /// Read-only, hidden, system, archive bits.
    pub attrs: u8,
    /// Modification time: year, month, day, hour, minute, second.
    pub mtime: (u16, u8, u8, u8, u8, u8),
    /// sha256 of the content (files only).
    pub sha: Option<[u8; 32]>,
}

pub type Summary = BTreeMap<String, Info>;

pub fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn mtools(cmd: &str, args: &[&str]) -> (bool, Vec<u8>, Vec<u8>) {
    let out = Command::new(cmd)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    (out.status.success(), out.stdout, out.stderr)
}

/// A private copy of a fixture to edit.
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let src = vmscrub_fixtures::fixture(name);
    let dst = dir.join(format!("{name}.img"));
    std::fs::copy(&src, &dst).unwrap();
    dst
}

/// The volume through vmscrub-fat.
pub fn ours<D: ReadAt>(fs: &FatFs<D>) -> Summary {
    let mut out = Summary::new();
    for w in fs.walk().unwrap() {
        let n = &w.entry.node;
        let d = n.modified.decode().unwrap();
        let sha = (!n.is_dir).then(|| {
            let mut v = Vec::new();
            fs.open_file(n.id).unwrap().read_to_end(&mut v).unwrap();
            assert_eq!(v.len() as u64, n.size as u64);
            sha(&v)
        });
        out.insert(
            String::from_utf8(w.path).unwrap(),
            Info {
                is_dir: n.is_dir,
                size: if n.is_dir { 0 } else { n.size as u64 },
                attrs: n.attributes.0 & 0x27,
                mtime: (d.year, d.month, d.day, d.hour, d.minute, d.second),
                sha,
            },
        );
    }
    out
}

/// The volume through the `fatfs` crate.
pub fn fatfs_summary(image: &[u8]) -> Summary {
    let fs = fatfs::FileSystem::new(
        std::io::Cursor::new(image.to_vec()),
        fatfs::FsOptions::new(),
    )
    .unwrap();
    let mut out = Summary::new();
    let mut stack = vec![(fs.root_dir(), String::new())];
    while let Some((dir, path)) = stack.pop() {
        for e in dir.iter() {
            let e = e.unwrap();
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let p = format!("{path}/{name}");
            let m = e.modified();
            let sha = (!e.is_dir()).then(|| {
                let mut v = Vec::new();
                e.to_file().read_to_end(&mut v).unwrap();
                sha(&v)
            });
            if e.is_dir() {
                stack.push((e.to_dir(), p.clone()));
            }
            out.insert(
                p,
                Info {
                    is_dir: e.is_dir(),
                    size: if e.is_dir() { 0 } else { e.len() },
                    attrs: e.attributes().bits() & 0x27,
                    mtime: (
                        m.date.year,
                        m.date.month as u8,
                        m.date.day as u8,
                        m.time.hour as u8,
                        m.time.min as u8,
                        m.time.sec as u8,
                    ),
                    sha,
                },
            );
        }
    }
    out
}

/// The volume through mtools: `mdir -/ -a` for names, sizes, kinds and times (to the
/// minute, which is all mdir prints), `mattrib -/` for attributes, `mcopy -s` for
/// contents.
pub fn mtools_summary(image: &Path) -> Summary {
    let img = image.to_str().unwrap();
    let (ok, listing, err) = mtools("mdir", &["-/", "-a", "-i", img, "::/"]);
    assert!(ok, "mdir: {}", String::from_utf8_lossy(&err));
    let listing = String::from_utf8(listing).unwrap();
    let mut out = Summary::new();
    let mut dir = String::new();
    for line in listing.lines() {
        if let Some(d) = line.strip_prefix("Directory for ::") {
            dir = d.trim_end_matches('/').to_string();
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        if chars.len() < 13 || line.starts_with(' ') {
            continue;
        }
        let short_base: String = chars[..8].iter().collect::<String>().trim_end().to_string();
        let short_ext: String = chars[9..12]
            .iter()
            .collect::<String>()
            .trim_end()
            .to_string();
        if short_base == "." || short_base == ".." {
            continue;
        }
        let rest: String = chars[12..].iter().collect();
        let toks: Vec<&str> = rest.split_whitespace().take(3).collect();
        // Entry lines only: "NAME     EXT   size|<DIR> YYYY-MM-DD  H:MM  long name".
        let [size, date, time] = toks[..] else {
            continue;
        };
        if date.len() != 10 || date.as_bytes()[4] != b'-' || chars[8] != ' ' {
            continue;
        }
        let after_time = rest.find(time).unwrap() + time.len();
        let long = rest[after_time..]
            .strip_prefix("  ")
            .unwrap_or("")
            .trim_end();
        let name = if !long.is_empty() {
            long.to_string()
        } else if short_ext.is_empty() {
            short_base
        } else {
            format!("{short_base}.{short_ext}")
        };
        let is_dir = size == "<DIR>";
        let ymd: Vec<u32> = date.split('-').map(|x| x.parse().unwrap()).collect();
        let hm: Vec<u32> = time.split(':').map(|x| x.parse().unwrap()).collect();
        out.insert(
            format!("{dir}/{name}"),
            Info {
                is_dir,
                size: if is_dir { 0 } else { size.parse().unwrap() },
                attrs: 0,
                mtime: (
                    ymd[0] as u16,
                    ymd[1] as u8,
                    ymd[2] as u8,
                    hm[0] as u8,
                    hm[1] as u8,
                    0,
                ),
                sha: None,
            },
        );
    }
    let (ok, attrs, err) = mtools("mattrib", &["-/", "-i", img, "::/"]);
    assert!(ok, "mattrib: {}", String::from_utf8_lossy(&err));
    for line in String::from_utf8(attrs).unwrap().lines() {
        let Some(pos) = line.find("::/") else {
            continue;
        };
        let (flags, path) = (&line[..pos], &line[pos + 2..]);
        if path == "/" {
            continue;
        }
        let mut a = 0u8;
        for (ch, bit) in [('R', 0x01), ('H', 0x02), ('S', 0x04), ('A', 0x20)] {
            if flags.contains(ch) {
                a |= bit;
            }
        }
        out.get_mut(path)
            .unwrap_or_else(|| panic!("mattrib lists {path}, mdir does not"))
            .attrs = a;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = mtools(
        "mcopy",
        &["-s", "-n", "-i", img, "::/", tmp.path().to_str().unwrap()],
    );
    assert!(ok, "mcopy: {}", String::from_utf8_lossy(&err));
    for (path, info) in out.iter_mut() {
        let host = tmp.path().join(path.trim_start_matches('/'));
        if !info.is_dir {
            info.sha = Some(sha(&std::fs::read(&host).unwrap()));
        }
    }
    out
}

/// Compares two summaries, mtime only to the minute (or fully) and with attributes.
pub fn assert_same(a: &Summary, b: &Summary, what: &str, seconds: bool) {
    let ka: Vec<&String> = a.keys().collect();
    let kb: Vec<&String> = b.keys().collect();
    assert_eq!(ka, kb, "{what}: different paths");
    for (p, x) in a {
        let y = &b[p];
        assert_eq!(x.is_dir, y.is_dir, "{what}: {p} kind");
        assert_eq!(x.size, y.size, "{what}: {p} size");
        assert_eq!(x.attrs, y.attrs, "{what}: {p} attributes");
        assert_eq!(x.sha, y.sha, "{what}: {p} content");
        let (mx, my) = if seconds {
            (x.mtime, y.mtime)
        } else {
            (
                (x.mtime.0, x.mtime.1, x.mtime.2, x.mtime.3, x.mtime.4, 0),
                (y.mtime.0, y.mtime.1, y.mtime.2, y.mtime.3, y.mtime.4, 0),
            )
        };
        assert_eq!(mx, my, "{what}: {p} mtime");
    }
}

/// `fsck.fat -n`: must exit 0 and report nothing but its banner and summary line.
pub fn assert_fsck_clean(image: &Path) {
    let out = Command::new("fsck.fat")
        .arg("-n")
        .arg(image)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "fsck.fat -n failed ({}):\n{text}",
        out.status
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 2 && lines[0].starts_with("fsck.fat") && lines[1].contains(" files, "),
        "fsck.fat -n reported something:\n{text}"
    );
}

/// Occurrences of `needle` in `hay` (byte offsets).
pub fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let ac = aho_corasick::AhoCorasick::new([needle]).unwrap();
    ac.find_overlapping_iter(hay).map(|m| m.start()).collect()
}

/// For each needle, the offsets where it occurs in `hay` (one pass for all).
/// All-zero 4 KiB blocks are skipped (most of an image, and test binaries are
/// unoptimized): only the non-zero stretches, widened by the longest needle on both
/// sides, are searched, so a needle that runs into zeros is still found.
pub fn find_each(hay: &[u8], needles: &[Vec<u8>]) -> Vec<Vec<usize>> {
    const BLOCK: usize = 4096;
    static ZERO: [u8; BLOCK] = [0; BLOCK];
    let ac = aho_corasick::AhoCorasick::new(needles).unwrap();
    let margin = needles.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut segments: Vec<(usize, usize)> = Vec::new();
    for (i, blk) in hay.chunks(BLOCK).enumerate() {
        if blk == &ZERO[..blk.len()] {
            continue;
        }
        let start = (i * BLOCK).saturating_sub(margin);
        let end = (i * BLOCK + blk.len() + margin).min(hay.len());
        match segments.last_mut() {
            Some(last) if last.1 >= start => last.1 = end,
            _ => segments.push((start, end)),
        }
    }
    let mut out = vec![Vec::new(); needles.len()];
    for (start, end) in segments {
        for m in ac.find_overlapping_iter(&hay[start..end]) {
            out[m.pattern().as_usize()].push(start + m.start());
        }
    }
    out
}

pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// A device over shared base bytes with a private block overlay, counting writes:
/// fuzz loops use it so each case costs no copy of the image, and refusals can be
/// checked to have written nothing.
pub struct CowDisk {
    base: Arc<Vec<u8>>,
    blocks: RwLock<HashMap<u64, Box<[u8; 512]>>>,
    pub writes: AtomicUsize,
}

impl CowDisk {
    pub fn new(base: Arc<Vec<u8>>) -> Self {
        CowDisk {
            base,
            blocks: RwLock::new(HashMap::new()),
            writes: AtomicUsize::new(0),
        }
    }

    pub fn patch(&self, offset: u64, bytes: &[u8]) {
        self.write_all_at(bytes, offset).unwrap();
        self.writes.store(0, Ordering::SeqCst);
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Blocks that differ from the base (0 after a refusal).
    pub fn changed_blocks(&self) -> usize {
        self.blocks.read().unwrap().len()
    }
}

impl std::fmt::Debug for CowDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CowDisk({} bytes)", self.base.len())
    }
}

impl ReadAt for CowDisk {
    fn size(&self) -> u64 {
        self.base.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        vmscrub_blockdev::check_range(offset, buf.len() as u64, self.size())?;
        let blocks = self.blocks.read().unwrap();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let within = (pos % 512) as usize;
            let n = (512 - within).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            match blocks.get(&(pos / 512)) {
                Some(blk) => dst.copy_from_slice(&blk[within..within + n]),
                None => dst.copy_from_slice(&self.base[pos as usize..pos as usize + n]),
            }
            done += n;
        }
        Ok(())
    }
}

impl WriteAt for CowDisk {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        vmscrub_blockdev::check_range(offset, buf.len() as u64, self.size())?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut blocks = self.blocks.write().unwrap();
        for (i, &b) in buf.iter().enumerate() {
            let pos = offset + i as u64;
            let blk = blocks.entry(pos / 512).or_insert_with(|| {
                let s = (pos / 512 * 512) as usize;
                let mut a = Box::new([0u8; 512]);
                a.copy_from_slice(&self.base[s..s + 512]);
                a
            });
            blk[(pos % 512) as usize] = b;
        }
        Ok(())
    }
}
