//! Safe extraction into a directory. Nothing becomes visible in the target until
//! the whole archive has authenticated: entries are written into a fresh staging
//! directory (mode 0700) inside the target, and only after the final chunk
//! verified are they renamed into place. On any error the staging directory is
//! removed and the target is as it was.
//!
//! Refused: absolute paths, `.`/`..` components, and any entry (or hard-link
//! source) whose parent path contains a symlink — so an archive cannot write
//! through a symlink it planted earlier, or through one already in the target.
//! Metadata: mode, mtime (nanoseconds) and xattrs/ACLs where the filesystem and
//! privileges allow (failures become warnings); ownership and device nodes only
//! when running as root.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};
use zeroize::Zeroizing;

use crate::entry::{DeviceKind, EntryKind, Metadata};
use crate::error::{Error, Result, display_path};
use crate::keys::Identity;
use crate::manifest::Manifest;
use crate::reader::{TarReader, open};

#[derive(Clone, Debug, Default)]
pub struct ExtractOptions {
    /// Replace existing non-directory files in the target.
    pub force: bool,
}

#[derive(Debug, Default)]
pub struct ExtractReport {
    pub entries: u64,
    /// Metadata that could not be restored (xattrs refused, devices as non-root…).
    pub warnings: Vec<String>,
    pub manifest: Option<Manifest>,
}

/// Checks an archive path and turns it into a relative `PathBuf`.
fn safe_rel(p: &[u8]) -> Result<PathBuf> {
    let refuse = |why: &str| Error::Unsafe(format!("entry {:?}: {why}", display_path(p)));
    if p.is_empty() {
        return Err(refuse("empty path"));
    }
    if p.starts_with(b"/") {
        return Err(refuse("absolute path"));
    }
    if p.contains(&0) {
        return Err(refuse("NUL in path"));
    }
    let mut out = PathBuf::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" => {}
            b"." | b".." => return Err(refuse("`.` or `..` component")),
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(refuse("empty path"));
    }
    Ok(out)
}

/// Creates missing parent directories of `rel` under `root`, refusing to pass
/// through anything that is not a real directory.
fn prepare_parents(root: &Path, rel: &Path, what: &[u8]) -> Result<()> {
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::Unsafe(format!(
                    "entry {:?} would be written through the symlink {:?}",
                    display_path(what),
                    display_path(
                        cur.strip_prefix(root)
                            .unwrap_or(&cur)
                            .as_os_str()
                            .as_bytes()
                    )
                )));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Unsafe(format!(
                    "entry {:?} has a parent that is not a directory",
                    display_path(what)
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new().mode(0o700).create(&cur)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes whatever is at `p` so a later entry can replace it (tar semantics),
/// except that a directory is only ever replaced by a directory.
fn clear_slot(p: &Path, new_is_dir: bool) -> Result<bool> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            if new_is_dir {
                Ok(true)
            } else {
                Err(Error::Unsafe(format!(
                    "a later entry would replace the directory {:?}",
                    p.display()
                )))
            }
        }
        Ok(_) => {
            fs::remove_file(p)?;
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Decrypts `input` with `identity` and extracts it under `target` (created if
/// missing). All or nothing: see the module comment.
pub fn extract<R: Read>(
    input: R,
    identity: &Identity,
    target: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractReport> {
    let created_target = !target.exists();
    if created_target {
        fs::create_dir_all(target)?;
    }
    let result = extract_inner(input, identity, target, opts);
    if result.is_err() && created_target {
        let _ = fs::remove_dir(target);
    }
    result
}

fn extract_inner<R: Read>(
    input: R,
    identity: &Identity,
    target: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractReport> {
    let meta = fs::symlink_metadata(target)?;
    if !meta.is_dir() {
        return Err(Error::Unsafe(format!(
            "{} is not a directory",
            target.display()
        )));
    }
    let staging = tempfile::Builder::new()
        .prefix(".vmscrub-recover-")
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(target)?;
    let root = staging.path();
    let (_, payload) = open(input, identity)?;
    let mut tar = TarReader::new(payload);
    let mut report = ExtractReport::default();
    let mut pending: Vec<(PathBuf, Metadata, bool)> = Vec::new();
    let mut explicit_dirs: HashSet<PathBuf> = HashSet::new();
    let root_user = is_root();
    let mut buf = Zeroizing::new(vec![0u8; 64 * 1024]);

    while let Some(entry) = tar.next_entry()? {
        let rel = safe_rel(&entry.path)?;
        prepare_parents(root, &rel, &entry.path)?;
        let dst = root.join(&rel);
        let is_dir = matches!(entry.kind, EntryKind::Dir);
        let existed_dir = clear_slot(&dst, is_dir)?;
        let mut apply_meta = true;
        match &entry.kind {
            EntryKind::File | EntryKind::Sparse { .. } => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc_nofollow())
                    .open(&dst)?;
                let segments = match &entry.kind {
                    EntryKind::Sparse { segments } => segments.clone(),
                    _ => vec![crate::entry::Segment {
                        offset: 0,
                        len: entry.size,
                    }],
                };
                for s in &segments {
                    f.seek(SeekFrom::Start(s.offset))?;
                    let mut left = s.len;
                    while left > 0 {
                        let k = left.min(buf.len() as u64) as usize;
                        let n = tar.read_data(&mut buf[..k])?;
                        if n == 0 {
                            return Err(Error::Tar("member data shorter than its map".into()));
                        }
                        f.write_all(&buf[..n])?;
                        left -= n as u64;
                    }
                }
                f.set_len(entry.size)?;
            }
            EntryKind::Dir => {
                if !existed_dir {
                    fs::DirBuilder::new().mode(0o700).create(&dst)?;
                }
                explicit_dirs.insert(rel.clone());
            }
            EntryKind::Symlink { target: t } => {
                std::os::unix::fs::symlink(OsStr::from_bytes(t), &dst)?;
            }
            EntryKind::HardLink { target: t } => {
                let src_rel = safe_rel(t)?;
                prepare_parents(root, &src_rel, t)?;
                let src = root.join(&src_rel);
                let m = fs::symlink_metadata(&src).map_err(|_| {
                    Error::Unsafe(format!(
                        "hard link {:?} points to {:?}, which is not an earlier entry",
                        display_path(&entry.path),
                        display_path(t)
                    ))
                })?;
                if m.is_dir() {
                    return Err(Error::Unsafe(format!(
                        "hard link {:?} points to a directory",
                        display_path(&entry.path)
                    )));
                }
                fs::hard_link(&src, &dst)?;
                apply_meta = false;
            }
            EntryKind::Device { kind, major, minor } => {
                if root_user {
                    let ft = match kind {
                        DeviceKind::Char => FileType::CharacterDevice,
                        DeviceKind::Block => FileType::BlockDevice,
                    };
                    rustix::fs::mknodat(
                        CWD,
                        &dst,
                        ft,
                        Mode::from_raw_mode(0o600),
                        rustix::fs::makedev(*major, *minor),
                    )
                    .map_err(std::io::Error::from)?;
                } else {
                    report.warnings.push(format!(
                        "{}: device node not created (needs root)",
                        display_path(&entry.path)
                    ));
                    apply_meta = false;
                }
            }
            EntryKind::Fifo => {
                rustix::fs::mknodat(CWD, &dst, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(std::io::Error::from)?;
            }
        }
        if apply_meta {
            let is_link = matches!(entry.kind, EntryKind::Symlink { .. });
            pending.push((rel, entry.meta, is_link));
        }
        report.entries += 1;
    }
    // Authenticate everything before anything leaves the staging directory.
    report.manifest = tar.finish()?;

    // Files, links and nodes get their metadata in the staging directory (a rename
    // keeps it). Directories get theirs at their final place after every move, in
    // reverse order: moving children into or out of a directory changes its mtime,
    // and a read-only staged directory could not be emptied.
    for (rel, meta, is_link) in pending.iter().rev() {
        if !explicit_dirs.contains(rel) {
            apply_metadata(
                &root.join(rel),
                meta,
                *is_link,
                root_user,
                &mut report.warnings,
            );
        }
    }
    let plan = plan_commit(root, target, Path::new(""), opts)?;
    for step in &plan {
        if let Step::Move(rel) = step {
            if opts.force
                && let Ok(m) = fs::symlink_metadata(target.join(rel))
                && !m.is_dir()
            {
                fs::remove_file(target.join(rel))?;
            }
            fs::rename(root.join(rel), target.join(rel))?;
        }
    }
    for (rel, meta, _) in pending.iter().rev() {
        if explicit_dirs.contains(rel) {
            apply_metadata(
                &target.join(rel),
                meta,
                false,
                root_user,
                &mut report.warnings,
            );
        }
    }
    if let Err(e) = staging.close() {
        report
            .warnings
            .push(format!("could not remove the staging directory: {e}"));
    }
    Ok(report)
}

enum Step {
    Move(PathBuf),
    /// Both sides are directories: their children were planned one by one.
    Merged,
}

/// Decides, before moving anything, how staged entries go into the target; fails
/// on a conflict so that nothing is half-moved.
fn plan_commit(root: &Path, target: &Path, rel: &Path, opts: &ExtractOptions) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut names: Vec<_> = fs::read_dir(root.join(rel))?.collect::<std::io::Result<Vec<_>>>()?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let r = rel.join(e.file_name());
        let staged_dir = e.file_type()?.is_dir();
        match fs::symlink_metadata(target.join(&r)) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => steps.push(Step::Move(r)),
            Err(err) => return Err(err.into()),
            Ok(m) if m.is_dir() && staged_dir => {
                steps.extend(plan_commit(root, target, &r, opts)?);
                steps.push(Step::Merged);
            }
            Ok(m) if !m.is_dir() && !staged_dir && opts.force => steps.push(Step::Move(r)),
            Ok(m) => {
                return Err(Error::Unsafe(format!(
                    "{} already exists in the target{}",
                    r.display(),
                    if m.is_dir() || staged_dir {
                        " (a directory cannot replace a file or the reverse)"
                    } else {
                        "; use --force to replace it"
                    }
                )));
            }
        }
    }
    Ok(steps)
}

fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn apply_metadata(
    p: &Path,
    meta: &Metadata,
    is_link: bool,
    root_user: bool,
    warnings: &mut Vec<String>,
) {
    let name = p.display();
    if root_user {
        let uid = u32::try_from(meta.uid).ok().map(rustix::fs::Uid::from_raw);
        let gid = u32::try_from(meta.gid).ok().map(rustix::fs::Gid::from_raw);
        if let Err(e) = rustix::fs::chownat(CWD, p, uid, gid, AtFlags::SYMLINK_NOFOLLOW) {
            warnings.push(format!("{name}: owner not restored: {e}"));
        }
    }
    if !is_link {
        // After chown, which clears setuid/setgid.
        if let Err(e) = fs::set_permissions(p, fs::Permissions::from_mode(meta.mode & 0o7777)) {
            warnings.push(format!("{name}: mode not restored: {e}"));
        }
    }
    // After chown too: chown drops security.capability.
    for x in &meta.xattrs {
        if let Err(e) =
            rustix::fs::lsetxattr(p, OsStr::from_bytes(&x.name), &x.value, XattrFlags::empty())
        {
            warnings.push(format!(
                "{name}: xattr {} not restored: {e}",
                display_path(&x.name)
            ));
        }
    }
    let ts = Timespec {
        tv_sec: meta.mtime.secs,
        tv_nsec: i64::from(meta.mtime.nanos) as _,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    if let Err(e) = rustix::fs::utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW) {
        warnings.push(format!("{name}: mtime not restored: {e}"));
    }
}
