//! Which files of a repository are images: decided from their bytes with the
//! same sniffer `image::open` uses, never from their names, so a `.img` that is
//! a text file is skipped with the reason and an extension-less qcow2 is found.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::image::{SNIFF_HEAD, SNIFF_TAIL, Sniffed, VmdkKind, sniff};

/// Directory levels walked below a root; deeper trees are cut off with a reason
/// rather than followed without bound.
const MAX_DEPTH: usize = 64;
/// A list file larger than this is not a list of paths.
const MAX_LIST: u64 = 16 << 20;

/// One image to process.
#[derive(Debug, Clone)]
pub struct Image {
    pub path: PathBuf,
    /// Unique relative name for its outputs and reports: its path below the
    /// walked root, or the list entry's file name (`-2`, `-3` on collisions).
    pub name: String,
    pub format: &'static str,
}

/// A file that is not processed, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Found {
    /// Sorted by path.
    pub images: Vec<Image>,
    pub skipped: Vec<Skipped>,
}

/// Walks each directory and reads each list file. `exclude` are directories
/// the batch writes into (outputs, reports), never inputs.
pub fn discover(paths: &[PathBuf], exclude: &[PathBuf]) -> Result<Found> {
    let exclude: Vec<PathBuf> = exclude
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() {
            walk(p, p, 0, &exclude, &mut found, &mut skipped)?;
        } else {
            match classify(p) {
                Ok(Some(format)) => found.push((p.clone(), file_name(p), format)),
                _ => read_list(p, &mut found, &mut skipped)?,
            }
        }
    }
    Ok(finish(found, skipped))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned())
}

/// Sorts, drops duplicates and VMDK extents their descriptor reads, and makes
/// every name unique.
fn finish(mut found: Vec<(PathBuf, String, &'static str)>, mut skipped: Vec<Skipped>) -> Found {
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.dedup_by(|a, b| a.0 == b.0);
    let extents = vmdk_extents(&found);
    let mut names = BTreeSet::new();
    let mut images = Vec::new();
    for (path, name, format) in found {
        if let Some(owner) = extents.iter().find(|(e, _)| *e == path).map(|(_, o)| o) {
            skipped.push(Skipped {
                path,
                reason: format!("an extent of the VMDK {}", owner.display()),
            });
            continue;
        }
        let mut unique = name.clone();
        let mut n = 1;
        while !names.insert(unique.clone()) {
            n += 1;
            unique = format!("{name}-{n}");
        }
        images.push(Image {
            path,
            name: unique,
            format,
        });
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Found { images, skipped }
}

fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    exclude: &[PathBuf],
    found: &mut Vec<(PathBuf, String, &'static str)>,
    skipped: &mut Vec<Skipped>,
) -> Result<()> {
    if std::fs::canonicalize(dir).is_ok_and(|c| exclude.contains(&c)) {
        return Ok(());
    }
    if depth > MAX_DEPTH {
        skipped.push(Skipped {
            path: dir.to_path_buf(),
            reason: format!("deeper than {MAX_DEPTH} directory levels"),
        });
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            walk(root, &path, depth + 1, exclude, found, skipped)?;
        } else if ft.is_symlink() {
            skipped.push(skip(path, "a symbolic link (not followed)"));
        } else if !ft.is_file() {
            skipped.push(skip(path, "not a regular file"));
        } else if path.file_name().is_some_and(is_batch_file) {
            continue;
        } else {
            match classify(&path) {
                Ok(Some(format)) => {
                    let rel = path.strip_prefix(root).unwrap_or(&path);
                    let name = rel.to_string_lossy().into_owned();
                    found.push((path, name, format));
                }
                Ok(None) => skipped.push(skip(
                    path,
                    "not a disk image (no container header, partition table or filesystem)",
                )),
                Err(e) => skipped.push(Skipped {
                    reason: format!("cannot be read: {e}"),
                    path,
                }),
            }
        }
    }
    Ok(())
}

/// The batch's own state database (and its redb lock) is never an input.
fn is_batch_file(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with(".vmscrub-batch")
}

fn skip(path: PathBuf, reason: &str) -> Skipped {
    Skipped {
        path,
        reason: reason.to_string(),
    }
}

/// A list file: one image path per line (`#` comments and blank lines ignored),
/// relative paths taken from the list's directory.
fn read_list(
    list: &Path,
    found: &mut Vec<(PathBuf, String, &'static str)>,
    skipped: &mut Vec<Skipped>,
) -> Result<()> {
    let meta = std::fs::metadata(list)?;
    if meta.len() > MAX_LIST {
        bail!(
            "{}: neither an image nor a list of image paths (larger than 16 MiB)",
            list.display()
        );
    }
    let bytes = std::fs::read(list).with_context(|| format!("{}", list.display()))?;
    let Ok(text) = String::from_utf8(bytes) else {
        bail!(
            "{}: neither an image nor a list of image paths (not UTF-8 text)",
            list.display()
        );
    };
    let base = list.parent().unwrap_or(Path::new("."));
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let path = base.join(line);
        match classify(&path) {
            Ok(Some(format)) => found.push((path.clone(), file_name(&path), format)),
            Ok(None) => skipped.push(skip(
                path,
                "not a disk image (no container header, partition table or filesystem)",
            )),
            Err(e) => skipped.push(Skipped {
                reason: format!("cannot be read: {e}"),
                path,
            }),
        }
    }
    Ok(())
}

/// The container's name when the file is an image: a container header the
/// sniffer knows (a refused format too: the image's own scan then says why it
/// is not read), or, for what the sniffer calls raw, a partition table or a
/// filesystem at its start.
pub fn classify(path: &Path) -> std::io::Result<Option<&'static str>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = vec![0u8; SNIFF_HEAD.min(len as usize)];
    f.read_exact(&mut head)?;
    let tail_len = SNIFF_TAIL.min(len as usize);
    let mut tail = vec![0u8; tail_len];
    f.seek(SeekFrom::Start(len - tail_len as u64))?;
    f.read_exact(&mut tail)?;
    Ok(match sniff(&head, &tail) {
        Sniffed::Qcow2 => Some("qcow2"),
        Sniffed::Vhd => Some("vhd"),
        Sniffed::Vhdx => Some("vhdx"),
        Sniffed::Vmdk(_) => Some("vmdk"),
        Sniffed::Refused { format, .. } => Some(format),
        Sniffed::Raw => raw_disk(path, &head, len).then_some("raw"),
    })
}

/// A raw file is a disk when it is whole sectors and holds an MBR/GPT
/// signature or a filesystem the probe knows; anything else the sniffer calls
/// raw only because it knows no other container.
fn raw_disk(path: &Path, head: &[u8], len: u64) -> bool {
    if len == 0 || !len.is_multiple_of(512) {
        return false;
    }
    if head.get(510..512) == Some(&[0x55, 0xaa][..]) {
        return true;
    }
    let Ok(disk) = vmscrub_blockdev::FileDisk::open(path) else {
        return false;
    };
    crate::image::probe_volume(&disk).is_ok_and(|fs| fs.kind != vmscrub_fsprobe::Kind::Unknown)
}

/// Extent files named by the VMDK descriptors among `found` (same directory),
/// with the descriptor that reads each: they are parts, not images.
fn vmdk_extents(found: &[(PathBuf, String, &'static str)]) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for (path, _, format) in found {
        if *format != "vmdk" {
            continue;
        }
        let Ok(mut f) = std::fs::File::open(path) else {
            continue;
        };
        let mut head = vec![0u8; SNIFF_HEAD];
        let n = f.read(&mut head).unwrap_or(0);
        head.truncate(n);
        if sniff(&head, &[]) != Sniffed::Vmdk(VmdkKind::Descriptor) {
            continue;
        }
        let text = String::from_utf8_lossy(&head);
        let dir = path.parent().unwrap_or(Path::new("."));
        for line in text.lines().map(str::trim) {
            let access = ["RW ", "RDONLY ", "NOACCESS "];
            if !access.iter().any(|a| line.starts_with(a)) {
                continue;
            }
            let mut parts = line.split('"');
            if let (Some(_), Some(name)) = (parts.next(), parts.next()) {
                out.push((dir.join(name), path.clone()));
            }
        }
    }
    out
}
