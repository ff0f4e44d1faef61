//! `vmscrub ls` and `vmscrub cat`: look inside an image without booting or
//! mounting it, like `virt-ls` and `virt-cat`.
//!
//! **Which tree.** Paths are guest paths: they resolve through the guest's mount
//! view (the OS root plus what its `/etc/fstab` mounts — `/boot`, `/boot/efi`,
//! `/home`, `/var` — see [`crate::guest`]), crossing mount points as the running
//! guest would, symlinks included (absolute targets restart at the guest's `/`).
//! `--partition N` or `--fs LABEL|UUID` picks one filesystem instead, and paths
//! are then inside it. An image with no OS and a single filesystem needs neither.
//!
//! **Names are bytes.** `cat` writes the file's bytes exactly; `ls` shows names
//! and link targets with every byte that is not printable UTF-8 escaped as
//! `\xNN` and a backslash doubled (`\\`), so a hostile name cannot drive the
//! terminal and the escaped form maps back to exactly one byte string. Paths on
//! the command line are taken as bytes too.
//!
//! **Errors** (no such file, is a directory, a filesystem that cannot be read)
//! name the path and make the command exit 3; `ls -R` and `cat` with several
//! paths report each failure and go on with the rest.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::exit;
use crate::fs::walk::{MAX_DEPTH, MAX_SYMLINKS};
use crate::fs::{FileKind, Filesystem, FsError, Metadata, NodeId};
use crate::guest::{self, Guest};

pub const LS_ABOUT: &str = "List files inside an image, like `ls -l` (read-only)";

pub const LS_LONG_ABOUT: &str = "List files inside an image, like `ls -l` and virt-ls, without booting or mounting it.\n\n\
Each line shows the type and permission bits, the link count, uid, gid, size (major, minor for \
device nodes), modification time (UTC) and name; a symlink shows `-> target`. A directory lists \
its entries sorted by name; any other path lists itself.\n\n\
Paths resolve against the guest's mount view: the OS root filesystem (the one holding \
/etc/os-release) plus what its /etc/fstab mounts (/boot, /boot/efi, /home, /var, ...), crossing \
mount points and following symlinks as the running guest would. --partition N or --fs LABEL|UUID \
lists one filesystem on its own instead (an ESP, a data partition, a second OS). FAT names are \
looked up case-insensitively, as FAT does.\n\n\
Names are bytes: bytes that are not printable UTF-8 are shown as \\xNN and a backslash as \\\\.\n\n\
Exit status: 0 if everything was listed, 3 if a path or filesystem could not be read (each \
failure is named on stderr; -R goes on with the rest).";

pub const CAT_ABOUT: &str = "Print files from inside an image to stdout, byte for byte (read-only)";

pub const CAT_LONG_ABOUT: &str = "Print files from inside an image to stdout, like cat and virt-cat, without booting or \
mounting it. The bytes are written exactly as stored (sparse regions as zeros); nothing is \
converted or escaped. Symlinks are followed.\n\n\
Paths resolve against the guest's mount view (the OS root plus its /etc/fstab mounts); \
--partition N or --fs LABEL|UUID reads one filesystem on its own instead.\n\n\
Exit status: 0 if every file was printed, 3 if one could not be (no such file, a directory, a \
device, an unreadable filesystem): the failure is named on stderr and the other paths are still \
printed.";

/// Where to look: the image and which of its filesystems.
#[derive(clap::Args, Debug)]
pub struct Source {
    /// Disk image (raw, qcow2, VMDK), or a directory holding an unpacked root
    pub image: PathBuf,

    /// Use partition N (1-based, as Linux numbers it) on its own instead of the
    /// guest's mount view
    #[arg(long, value_name = "N", conflicts_with = "fs")]
    pub partition: Option<u32>,

    /// Use the filesystem with this label or UUID (also PARTLABEL/PARTUUID, or
    /// an LVM2 logical volume as VG/LV; `LABEL=`, `UUID=`, `LV=` prefixes
    /// accepted) on its own
    #[arg(long = "fs", value_name = "LABEL|UUID")]
    pub fs: Option<String>,

    #[command(flatten)]
    pub open: crate::cli::OpenArgs,
}

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    pub source: Source,

    /// Path to list (default `/`)
    #[arg(value_name = "PATH")]
    pub path: Option<OsString>,

    /// List subdirectories recursively; each line then shows the full path
    #[arg(short = 'R', long)]
    pub recursive: bool,

    /// Show inode numbers (on FAT: the directory entry's byte offset)
    #[arg(short = 'i', long)]
    pub inode: bool,

    /// List a directory itself, not its contents
    #[arg(short = 'd', long, conflicts_with = "recursive")]
    pub directory: bool,

    /// Show times with nanoseconds
    #[arg(long)]
    pub full_time: bool,
}

#[derive(clap::Args, Debug)]
pub struct CatArgs {
    #[command(flatten)]
    pub source: Source,

    /// Files to print, in order
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<OsString>,
}

/// The tree paths resolve in: the guest's mount view, or one filesystem.
struct View {
    guest: Guest,
    /// `Some(i)`: filesystem `i` on its own.
    single: Option<usize>,
}

/// A resolution failure, worded like the shell's.
#[derive(Debug)]
enum Missing {
    NotFound,
    NotADirectory,
    Loop,
    Other(String),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::NotFound => f.write_str("no such file or directory"),
            Missing::NotADirectory => f.write_str("not a directory"),
            Missing::Loop => f.write_str("too many levels of symbolic links"),
            Missing::Other(s) => f.write_str(s),
        }
    }
}

fn missing(e: FsError) -> Missing {
    match e {
        FsError::NotFound { .. } => Missing::NotFound,
        FsError::NotADirectory { .. } => Missing::NotADirectory,
        FsError::SymlinkLoop { .. } => Missing::Loop,
        other => Missing::Other(other.to_string()),
    }
}

fn components(p: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    p.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

impl View {
    fn open(src: &Source) -> anyhow::Result<View> {
        let opts = guest::OpenOptions {
            image: src.open.options(),
        };
        let guest = guest::guest_from_path(&src.image, &opts)?;
        for n in &guest.journal_notes {
            eprintln!("vmscrub: {n}");
        }
        let image = src.image.display();
        let pick = |what: String, found: Vec<usize>| -> anyhow::Result<usize> {
            match found.as_slice() {
                [i] => Ok(*i),
                [] => {
                    if let Some(u) = guest
                        .unreadable
                        .iter()
                        .find(|u| matches_fs(&u.identity, src.partition, src.fs.as_deref()))
                    {
                        anyhow::bail!("{image}: {}: {}", u.identity.describe(), u.error);
                    }
                    anyhow::bail!(
                        "{image}: no filesystem is {what} (filesystems: {})",
                        describe_all(&guest)
                    )
                }
                several => anyhow::bail!(
                    "{image}: several filesystems are {what}: {}; use --partition",
                    several
                        .iter()
                        .map(|&i| guest.filesystems[i].identity.describe())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        };
        let single = if let Some(n) = src.partition {
            let found = (0..guest.filesystems.len())
                .filter(|&i| guest.filesystems[i].identity.partition == Some(n))
                .collect();
            Some(pick(format!("partition {n}"), found)?)
        } else if let Some(name) = &src.fs {
            let found = (0..guest.filesystems.len())
                .filter(|&i| matches_fs(&guest.filesystems[i].identity, None, Some(name)))
                .collect();
            Some(pick(format!("labelled or identified `{name}`"), found)?)
        } else if guest.root.is_some() {
            None
        } else if guest.filesystems.len() == 1 {
            Some(0)
        } else if guest.filesystems.is_empty() {
            let why: Vec<String> = guest
                .unreadable
                .iter()
                .map(|u| format!("{}: {}", u.identity.describe(), u.error))
                .collect();
            anyhow::bail!(
                "{image}: no filesystem of this image could be read{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", why.join("; "))
                }
            );
        } else {
            anyhow::bail!(
                "{image}: no operating system found (no /etc/os-release on any filesystem); \
                 choose one with --partition N or --fs LABEL|UUID|VG/LV (filesystems: {})",
                describe_all(&guest)
            );
        };
        Ok(View { guest, single })
    }

    fn fs(&self, i: usize) -> &dyn Filesystem {
        &*self.guest.filesystems[i].fs
    }

    /// The filesystem and in-filesystem path of a resolved (symlink-free) path.
    fn locate(&self, path: &[u8]) -> Option<(usize, Vec<u8>)> {
        match self.single {
            Some(i) => Some((i, path.to_vec())),
            None => self.guest.resolve(path),
        }
    }

    /// The filesystem mounted exactly at `path` (not the root's `/`).
    fn mounted_at(&self, path: &[u8]) -> Option<usize> {
        if self.single.is_some() || path == b"/" {
            return None;
        }
        self.guest
            .mounts
            .iter()
            .find(|m| m.path == path)
            .map(|m| m.fs)
    }

    /// Where `/` is: the OS root's (or the chosen filesystem's) root directory.
    fn top(&self) -> Result<(usize, NodeId), Missing> {
        let (i, _) = self.locate(b"/").ok_or(Missing::NotFound)?;
        Ok((i, self.fs(i).root()))
    }

    /// The entry `name` of directory `dir` on filesystem `fs`; `here` is the
    /// entry's full (symlink-free) path. An exact byte match in the listing
    /// costs one directory read; only a miss asks the filesystem to resolve the
    /// whole path, which is where FAT's case-insensitive names are matched.
    fn child(
        &self,
        fs: usize,
        dir: NodeId,
        name: &[u8],
        here: &[u8],
    ) -> Result<(usize, NodeId), Missing> {
        if let Some(m) = self.mounted_at(here) {
            return Ok((m, self.fs(m).root()));
        }
        let f = self.fs(fs);
        let entries = f.read_dir(dir).map_err(missing)?;
        if let Some(e) = entries.iter().find(|e| e.name == name) {
            return Ok((fs, e.id));
        }
        let (i, inner) = self.locate(here).ok_or(Missing::NotFound)?;
        Ok((i, self.fs(i).lookup(&inner).map_err(missing)?))
    }

    /// Resolves `path` component by component, crossing mount points and
    /// following symlinks (the last one only if `follow_last`). Bounded: at most
    /// [`MAX_SYMLINKS`] links, [`MAX_DEPTH`] levels and 64 Ki components in all,
    /// and each component costs one directory read from where the walk stands
    /// (a directory that contains itself in a corrupt image cannot make the
    /// work grow with the square of the depth). Returns the resolved path
    /// (symlinks expanded), its filesystem and node.
    fn resolve(&self, path: &[u8], follow_last: bool) -> Result<(Vec<u8>, usize, NodeId), Missing> {
        // The resolved components: the length of `here` before each, and
        // where each lives. `here` is their path, kept up to date in place.
        let mut stack: Vec<(usize, usize, NodeId)> = vec![];
        let mut here: Vec<u8> = vec![];
        // Components still to walk, next one last.
        let mut todo: Vec<Vec<u8>> = components(path).rev().map(<[u8]>::to_vec).collect();
        let mut links = 0usize;
        let mut steps = 0usize;
        let top = self.top()?;
        while let Some(comp) = todo.pop() {
            steps += 1;
            if steps > 64 * 1024 || stack.len() > MAX_DEPTH {
                return Err(Missing::Loop);
            }
            match comp.as_slice() {
                b"." => continue,
                b".." => {
                    if let Some((len, _, _)) = stack.pop() {
                        here.truncate(len);
                    }
                    continue;
                }
                _ => {}
            }
            let last = todo.is_empty();
            let (dfs, dir) = stack.last().map_or(top, |s| (s.1, s.2));
            let before = here.len();
            here.push(b'/');
            here.extend_from_slice(&comp);
            let (i, id) = self.child(dfs, dir, &comp, &here)?;
            let fs = self.fs(i);
            let m = fs.metadata(id).map_err(missing)?;
            if m.kind == FileKind::Symlink && (!last || follow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Missing::Loop);
                }
                let target = fs.read_link(id).map_err(missing)?;
                here.truncate(before);
                if target.starts_with(b"/") {
                    stack.clear();
                    here.clear();
                }
                todo.extend(components(&target).rev().map(<[u8]>::to_vec));
                continue;
            }
            if !last && m.kind != FileKind::Directory {
                return Err(Missing::NotADirectory);
            }
            stack.push((before, i, id));
        }
        let (i, id) = stack.last().map_or(top, |s| (s.1, s.2));
        if here.is_empty() {
            here.push(b'/');
        }
        Ok((here, i, id))
    }
}

/// Does a filesystem's identity answer to `--partition` / `--fs`?
fn matches_fs(id: &guest::FsIdentity, partition: Option<u32>, name: Option<&str>) -> bool {
    if let Some(n) = partition {
        return id.partition == Some(n);
    }
    let Some(name) = name else { return false };
    let (kind, value) = match name.split_once('=') {
        Some((k, v)) => (Some(k.to_ascii_uppercase()), v),
        None => (None, name),
    };
    let eq_ci = |a: &Option<String>| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(value));
    let eq = |a: &Option<String>| a.as_deref() == Some(value);
    match kind.as_deref() {
        Some("UUID") => eq_ci(&id.fs_uuid),
        Some("LABEL") => eq(&id.fs_label),
        Some("PARTUUID") => eq_ci(&id.part_uuid),
        Some("PARTLABEL") => eq(&id.part_name),
        Some("LV") => eq(&id.lv),
        _ => {
            eq(&id.fs_label)
                || eq_ci(&id.fs_uuid)
                || eq(&id.part_name)
                || eq_ci(&id.part_uuid)
                || eq(&id.lv)
        }
    }
}

fn describe_all(g: &Guest) -> String {
    let mut all: Vec<String> = g
        .filesystems
        .iter()
        .map(|f| f.identity.describe())
        .collect();
    all.extend(
        g.unreadable
            .iter()
            .map(|u| format!("{} [unreadable]", u.identity.describe())),
    );
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

/// Escapes a name for a terminal: printable UTF-8 as is, `\` as `\\`, every
/// other byte (controls, invalid UTF-8) as `\xNN`.
pub fn escape_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `drwxr-xr-x`, with setuid/setgid/sticky as `s`/`S`, `t`/`T`.
pub fn mode_string(kind: FileKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind.letter());
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    let special = |x: bool, special: bool, on: char, off: char| match (x, special) {
        (true, true) => on,
        (false, true) => off,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(mode & 0o100 != 0, mode & 0o4000 != 0, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(mode & 0o010 != 0, mode & 0o2000 != 0, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(mode & 0o001 != 0, mode & 0o1000 != 0, 't', 'T'));
    s
}

/// One `ls -l` line (without the trailing newline).
fn ls_line(
    m: &Metadata,
    name: &[u8],
    target: Option<&[u8]>,
    inode: bool,
    full_time: bool,
) -> String {
    let size = match m.rdev {
        Some((major, minor)) if matches!(m.kind, FileKind::CharDevice | FileKind::BlockDevice) => {
            format!("{major}, {minor}")
        }
        _ => m.size.to_string(),
    };
    let mut time = crate::report::utc(m.mtime.sec)
        .trim_end_matches('Z')
        .to_string();
    if full_time {
        time.push_str(&format!(".{:09}", m.mtime.nsec));
    }
    let mut line = String::new();
    if inode {
        line.push_str(&format!("{:>8} ", m.id));
    }
    line.push_str(&format!(
        "{} {:>3} {:>5} {:>5} {:>10} {} {}",
        mode_string(m.kind, m.mode),
        m.nlink,
        m.uid,
        m.gid,
        size,
        time,
        escape_name(name)
    ));
    if let Some(t) = target {
        line.push_str(" -> ");
        line.push_str(&escape_name(t));
    }
    line
}

/// Writes to stdout; a closed pipe (`| head`) ends the command quietly.
struct Out {
    w: io::BufWriter<io::StdoutLock<'static>>,
    closed: bool,
}

impl Out {
    fn new() -> Out {
        Out {
            w: io::BufWriter::with_capacity(1 << 16, io::stdout().lock()),
            closed: false,
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.w.write_all(data) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            r => r,
        }
    }

    fn finish(mut self) -> io::Result<()> {
        match self.w.flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    }
}

fn report(path: &[u8], what: impl std::fmt::Display) {
    eprintln!("vmscrub: error: {}: {what}", escape_name(path));
}

struct Lister<'a> {
    view: &'a View,
    args: &'a LsArgs,
    out: Out,
    failed: bool,
}

impl Lister<'_> {
    fn line(&mut self, fs: usize, id: NodeId, name: &[u8], shown_path: &[u8]) -> io::Result<()> {
        let f = self.view.fs(fs);
        match f.metadata(id) {
            Ok(m) => {
                let target = if m.kind == FileKind::Symlink {
                    match f.read_link(id) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            report(shown_path, format!("cannot read the link: {e}"));
                            self.failed = true;
                            None
                        }
                    }
                } else {
                    None
                };
                let mut l = ls_line(
                    &m,
                    name,
                    target.as_deref(),
                    self.args.inode,
                    self.args.full_time,
                );
                l.push('\n');
                self.out.write(l.as_bytes())
            }
            Err(e) => {
                report(shown_path, e);
                self.failed = true;
                Ok(())
            }
        }
    }

    /// The entries of a directory, sorted by name, each with where it really
    /// lives (a mount point shows the mounted filesystem's root).
    fn entries(&mut self, fs: usize, id: NodeId, path: &[u8]) -> Vec<(Vec<u8>, usize, NodeId)> {
        let mut es = match self.view.fs(fs).read_dir(id) {
            Ok(es) => es,
            Err(e) => {
                report(path, e);
                self.failed = true;
                return vec![];
            }
        };
        es.sort_by(|a, b| a.name.cmp(&b.name));
        es.into_iter()
            .map(|e| {
                let child = child_path(path, &e.name);
                match self.view.mounted_at(&child) {
                    Some(m) => {
                        let root = self.view.fs(m).root();
                        (e.name, m, root)
                    }
                    None => (e.name, fs, e.id),
                }
            })
            .collect()
    }

    fn list_dir(&mut self, fs: usize, id: NodeId, path: &[u8]) -> io::Result<()> {
        for (name, cfs, cid) in self.entries(fs, id, path) {
            let child = child_path(path, &name);
            self.line(cfs, cid, &name, &child)?;
        }
        Ok(())
    }

    /// Pre-order, names sorted, full paths; every directory listed once.
    fn list_recursive(&mut self, fs: usize, id: NodeId, path: &[u8]) -> io::Result<()> {
        let mut seen: HashSet<(usize, NodeId)> = HashSet::new();
        seen.insert((fs, id));
        // Stack of pending entries, next one last.
        let mut todo = self.children(fs, id, path, 0);
        while let Some((p, cfs, cid, depth)) = todo.pop() {
            if self.out.closed {
                break;
            }
            self.line(cfs, cid, &p, &p)?;
            let is_dir = self
                .view
                .fs(cfs)
                .metadata(cid)
                .is_ok_and(|m| m.kind == FileKind::Directory);
            if !is_dir {
                continue;
            }
            if depth >= MAX_DEPTH {
                report(&p, format!("directories nested deeper than {MAX_DEPTH}"));
                self.failed = true;
                continue;
            }
            if !seen.insert((cfs, cid)) {
                report(
                    &p,
                    "directory appears twice in the tree (corrupt filesystem)",
                );
                self.failed = true;
                continue;
            }
            let kids = self.children(cfs, cid, &p, depth);
            todo.extend(kids);
        }
        Ok(())
    }

    /// A directory's entries as pending recursive items, first one last.
    fn children(
        &mut self,
        fs: usize,
        id: NodeId,
        path: &[u8],
        depth: usize,
    ) -> Vec<(Vec<u8>, usize, NodeId, usize)> {
        let mut kids: Vec<(Vec<u8>, usize, NodeId, usize)> = self
            .entries(fs, id, path)
            .into_iter()
            .map(|(name, cfs, cid)| (child_path(path, &name), cfs, cid, depth + 1))
            .collect();
        kids.reverse();
        kids
    }
}

fn child_path(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// `vmscrub ls`.
pub fn ls(args: &LsArgs) -> anyhow::Result<i32> {
    let view = View::open(&args.source)?;
    let given: Vec<u8> = args
        .path
        .as_ref()
        .map(|p| p.as_bytes().to_vec())
        .unwrap_or_else(|| b"/".to_vec());
    // Like ls -l: a symlink named on the command line is shown, not followed,
    // unless the path ends in `/`.
    let follow = given.ends_with(b"/") && given != b"/";
    let (path, fs, id) = match view.resolve(&given, follow) {
        Ok(r) => r,
        Err(e) => {
            report(&given, e);
            return Ok(exit::ERROR);
        }
    };
    let mut l = Lister {
        view: &view,
        args,
        out: Out::new(),
        failed: false,
    };
    let m = match view.fs(fs).metadata(id) {
        Ok(m) => m,
        Err(e) => {
            report(&given, e);
            return Ok(exit::ERROR);
        }
    };
    if m.kind != FileKind::Directory || args.directory {
        l.line(fs, id, &given, &given)?;
    } else if args.recursive {
        l.list_recursive(fs, id, &path)?;
    } else {
        l.list_dir(fs, id, &path)?;
    }
    let failed = l.failed;
    l.out.finish()?;
    Ok(if failed { exit::ERROR } else { exit::OK })
}

/// `vmscrub cat`.
pub fn cat(args: &CatArgs) -> anyhow::Result<i32> {
    let view = View::open(&args.source)?;
    let mut out = Out::new();
    let mut failed = false;
    for p in &args.paths {
        let given = p.as_bytes();
        let (_, fs, id) = match view.resolve(given, true) {
            Ok(r) => r,
            Err(e) => {
                report(given, e);
                failed = true;
                continue;
            }
        };
        let f = view.fs(fs);
        let kind = match f.metadata(id) {
            Ok(m) => m.kind,
            Err(e) => {
                report(given, e);
                failed = true;
                continue;
            }
        };
        match kind {
            FileKind::Regular => {}
            FileKind::Directory => {
                report(given, "is a directory");
                failed = true;
                continue;
            }
            other => {
                report(given, format!("not a regular file ({other:?})"));
                failed = true;
                continue;
            }
        }
        let mut r = match f.open(id) {
            Ok(r) => r,
            Err(e) => {
                report(given, e);
                failed = true;
                continue;
            }
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.write(&buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    report(given, format!("read error: {e}"));
                    failed = true;
                    break;
                }
            }
            if out.closed {
                break;
            }
        }
    }
    out.finish()?;
    Ok(if failed { exit::ERROR } else { exit::OK })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_names_unambiguously() {
        assert_eq!(escape_name(b"plain.txt"), "plain.txt");
        assert_eq!(escape_name("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(escape_name(b"a\xffb"), "a\\xffb");
        assert_eq!(escape_name(b"a\\xffb"), "a\\\\xffb");
        assert_eq!(escape_name(b"evil\n\x1b[2J"), "evil\\x0a\\x1b[2J");
        assert_eq!(escape_name("c1\u{85}".as_bytes()), "c1\\xc2\\x85");
    }

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string(FileKind::Directory, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(FileKind::Regular, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(FileKind::Regular, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(FileKind::Directory, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(FileKind::Directory, 0o1776), "drwxrwxrwT");
        assert_eq!(mode_string(FileKind::CharDevice, 0o600), "crw-------");
        assert_eq!(mode_string(FileKind::Symlink, 0o777), "lrwxrwxrwx");
    }

    use crate::fs::walk::memfs::MemFs;
    use crate::guest::{FsIdentity, GuestFs};
    use std::sync::Arc;

    fn view(fss: Vec<(MemFs, &str)>, single: Option<usize>) -> View {
        let filesystems = fss
            .into_iter()
            .enumerate()
            .map(|(i, (fs, label))| GuestFs {
                identity: FsIdentity {
                    partition: Some(i as u32 + 1),
                    fs_label: Some(label.into()),
                    ..Default::default()
                },
                fs: Arc::new(fs),
            })
            .collect();
        View {
            guest: Guest::new(filesystems, vec![]),
            single,
        }
    }

    #[test]
    fn resolves_through_mounts_and_symlinks() {
        let mut root = MemFs::new();
        root.file("/etc/os-release", b"ID=debian\n");
        root.file("/etc/fstab", b"LABEL=data /srv/data ext4 defaults 0 2\n");
        root.put(b"/srv/data", FileKind::Directory, b"");
        root.file("/srv/data/shadowed", b"on the root fs");
        root.put(b"/link", FileKind::Symlink, b"/srv/data/sub");
        root.put(b"/etc/rel", FileKind::Symlink, b"../srv/./data");
        let mut data = MemFs::new();
        let f = data.file("/sub/file", b"on the data fs");
        let v = view(vec![(root, "root"), (data, "data")], None);
        let (p, fs, id) = v.resolve(b"/link/file", true).unwrap();
        assert_eq!((p.as_slice(), fs, id), (&b"/srv/data/sub/file"[..], 1, f));
        let (p, fs, _) = v.resolve(b"/etc/rel/sub/../sub/file", false).unwrap();
        assert_eq!((p.as_slice(), fs), (&b"/srv/data/sub/file"[..], 1));
        let (_, fs, id) = v.resolve(b"/srv/data", false).unwrap();
        assert_eq!((fs, id), (1, 1), "a mount point is the mounted root");
        assert!(matches!(
            v.resolve(b"/srv/data/shadowed", false),
            Err(Missing::NotFound)
        ));
        let (p, fs, _) = v.resolve(b"/link", false).unwrap();
        assert_eq!(
            (p.as_slice(), fs),
            (&b"/link"[..], 0),
            "last link not followed"
        );
        assert!(matches!(
            v.resolve(b"/etc/os-release/x", false),
            Err(Missing::NotADirectory)
        ));
        let (p, _, id) = v.resolve(b"/../..", false).unwrap();
        assert_eq!((p.as_slice(), id), (&b"/"[..], 1));
        // One filesystem on its own: no mounts.
        let v1 = View {
            guest: v.guest,
            single: Some(0),
        };
        assert_eq!(
            v1.resolve(b"/srv/data/shadowed", false).unwrap().1,
            0,
            "--partition sees what the mount hides"
        );
    }

    #[test]
    fn hostile_trees_resolve_in_bounded_time() {
        let mut fs = MemFs::new();
        let a = fs.put(b"/a", FileKind::Directory, b"");
        // A directory that contains itself (only in a corrupt image).
        fs.link(a, b"a", a, FileKind::Directory);
        let deep = b"a/".repeat(2000);
        fs.put(b"/s", FileKind::Symlink, &deep);
        fs.put(b"/loop1", FileKind::Symlink, b"/loop2/x");
        fs.put(b"/loop2", FileKind::Symlink, b"/loop1/x");
        let v = view(vec![(fs, "x")], Some(0));
        let started = std::time::Instant::now();
        let mut long = b"/a".to_vec();
        for _ in 0..5000 {
            long.extend_from_slice(b"/a");
        }
        assert!(matches!(v.resolve(&long, true), Err(Missing::Loop)));
        let mut via_links = b"/s".to_vec();
        for _ in 0..30 {
            via_links.extend_from_slice(b"/../s");
        }
        let _ = v.resolve(&via_links, true);
        assert!(matches!(v.resolve(b"/loop1", true), Err(Missing::Loop)));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(v.resolve(&b"/a".repeat(100), true).unwrap().2, a);
    }

    #[test]
    fn fs_selection_by_name() {
        let id = guest::FsIdentity {
            partition: Some(2),
            fs_uuid: Some("0b7c-1234".into()),
            fs_label: Some("root".into()),
            part_name: Some("Linux root".into()),
            part_uuid: Some("aaaa-bbbb".into()),
            ..Default::default()
        };
        assert!(matches_fs(&id, Some(2), None));
        assert!(!matches_fs(&id, Some(1), None));
        for ok in [
            "root",
            "0B7C-1234",
            "UUID=0b7c-1234",
            "LABEL=root",
            "label=root",
            "Linux root",
            "PARTUUID=AAAA-BBBB",
        ] {
            assert!(matches_fs(&id, None, Some(ok)), "{ok}");
        }
        for bad in ["ROOT", "LABEL=0b7c-1234", "UUID=root", "x"] {
            assert!(!matches_fs(&id, None, Some(bad)), "{bad}");
        }
    }
}
