//! The guest's mount view: which filesystem is the OS root, where the others are
//! mounted, and what the OS is.
//!
//! Given every filesystem found in an image (each an `Arc<dyn Filesystem>` with
//! its partition identity), [`Guest::new`]:
//! 1. picks the **OS root**: the filesystem holding `/etc/os-release` (or
//!    `/usr/lib/os-release`). With several candidates it prefers one whose own
//!    fstab names it as `/` (by UUID, label, PARTUUID, …), then the first in
//!    partition order, and notes the others (they are scanned by partition);
//! 2. reads the root's `/etc/fstab` and mounts the other filesystems at their
//!    mount points; an ESP that fstab does not mention is placed at `/efi`, as
//!    systemd-gpt-auto-generator would (or `/boot/efi` if the root has that
//!    directory and nothing is mounted there);
//! 3. reads `/etc/os-release`, `/etc/passwd` and `/etc/login.defs` and derives
//!    the [`OsFacts`] the catalogue's guards test.
//!
//! A guest with no OS root still works: every filesystem is "unmounted" and is
//! scanned on its own, by partition.

mod expect;
pub mod fstab;
pub mod osrelease;
pub mod passwd;

use std::io::Read;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use crate::fs::{FileKind, Filesystem, FsError, FsResult, NodeId, display_path};
use crate::ops::OsFacts;
use crate::ops::pattern::{Expansions, normalize_abs};
pub use osrelease::OsRelease;
pub use passwd::PasswdEntry;

/// GPT partition type of an EFI System Partition.
pub const ESP_GPT_TYPE: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

/// Where a filesystem came from in the image, as the partition/probe layer
/// reports it. Every field is optional: a bare filesystem has no partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsIdentity {
    /// 1-based partition number (`None` for a filesystem without a table).
    pub partition: Option<u32>,
    pub part_uuid: Option<String>,
    pub part_name: Option<String>,
    /// GPT type GUID, or the MBR type as `0x83`.
    pub part_type: Option<String>,
    pub fs_uuid: Option<String>,
    pub fs_label: Option<String>,
    /// What the probe found (`ext4`, `vfat`, `xfs`, `directory`, …).
    pub fs_type: Option<String>,
    /// The LVM2 logical volume holding it, as `vg/lv` (`None` on a partition).
    pub lv: Option<String>,
}

impl FsIdentity {
    /// `partition 2 (root, ext4)` for messages.
    pub fn describe(&self) -> String {
        let mut s = match (&self.lv, self.partition) {
            (Some(lv), _) => format!("logical volume {lv}"),
            (None, Some(n)) => format!("partition {n}"),
            (None, None) => "filesystem".to_string(),
        };
        let mut extra = vec![];
        if let Some(l) = self.fs_label.as_ref().or(self.part_name.as_ref()) {
            extra.push(l.clone());
        }
        if let Some(t) = &self.fs_type {
            extra.push(t.clone());
        }
        if !extra.is_empty() {
            s.push_str(&format!(" ({})", extra.join(", ")));
        }
        s
    }

    /// The volume this came from, as [`crate::image::Volume::key`] says it.
    pub fn volume_key(&self) -> crate::image::VolumeKey {
        (self.partition, self.lv.clone())
    }

    fn is_esp(&self) -> bool {
        self.part_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ESP_GPT_TYPE) || t.eq_ignore_ascii_case("0xef"))
    }
}

/// One readable filesystem of the image.
#[derive(Clone)]
pub struct GuestFs {
    pub identity: FsIdentity,
    pub fs: Arc<dyn Filesystem>,
}

/// What one volume group's metadata areas keep besides the current metadata.
#[derive(Debug, Clone, Serialize)]
pub struct LvmHistory {
    pub vg: String,
    /// Metadata copies in the ring buffers, the current one included.
    pub copies: usize,
    /// Every `creation_host` any copy names.
    pub hosts: Vec<String>,
}

/// A filesystem the image has but vmscrub could not open (unsupported type,
/// corrupt superblock): the report names it with its error.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub identity: FsIdentity,
    pub error: String,
}

/// Why a filesystem is mounted where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "by")]
pub enum MountSource {
    /// It is the OS root.
    Root,
    /// Line `line` of the root's `/etc/fstab`.
    Fstab { line: usize },
    /// An ESP fstab does not mention, placed where systemd would mount it.
    EspAuto,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Guest-absolute mount point (`/`, `/boot/efi`).
    #[serde(serialize_with = "crate::report::ser_path")]
    pub path: Vec<u8>,
    /// Index into [`Guest::filesystems`].
    pub fs: usize,
    pub source: MountSource,
}

/// The whole guest as the scanner sees it.
pub struct Guest {
    pub filesystems: Vec<GuestFs>,
    pub unreadable: Vec<Unreadable>,
    /// Index of the OS root in `filesystems`.
    pub root: Option<usize>,
    /// Mounts, longest mount point first (so the first prefix match wins).
    pub mounts: Vec<Mount>,
    pub os: Option<OsRelease>,
    pub passwd: Vec<PasswdEntry>,
    /// `UID_MIN..=UID_MAX` from login.defs.
    pub uid_range: (u32, u32),
    pub facts: OsFacts,
    /// Things the user should know about how the view was built (several OS
    /// roots, fstab lines that name nothing in this image, …).
    pub notes: Vec<String>,
    /// What happened to ext3/4 journals that needed recovery (replayed in
    /// memory, or why not), each naming its filesystem; also in `notes`. The
    /// browsing verbs print these, since they change what is shown.
    pub journal_notes: Vec<String>,
    /// The user said the input is a data volume (`--data-volume`): no
    /// operating system is expected, so its absence is not warned about.
    pub data_volume: bool,
    /// Volume groups whose metadata areas still hold older copies or name the
    /// hosts that wrote them (the `lvm-metadata` operation reports them).
    pub lvm_history: Vec<LvmHistory>,
}

/// Bounds on files read to build the view.
const MAX_SMALL_FILE: u64 = 1 << 20;
const MAX_PASSWD: u64 = 16 << 20;

/// Reads at most `limit` bytes of `id`; a longer file is an error, not a silent cut.
pub fn read_bounded(fs: &dyn Filesystem, id: NodeId, limit: u64) -> FsResult<Vec<u8>> {
    let mut buf = Vec::new();
    fs.open(id)?.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(FsError::Unsupported(format!(
            "file larger than {limit} bytes"
        )));
    }
    Ok(buf)
}

impl Guest {
    pub fn new(filesystems: Vec<GuestFs>, unreadable: Vec<Unreadable>) -> Guest {
        let mut g = Guest {
            filesystems,
            unreadable,
            root: None,
            mounts: vec![],
            os: None,
            passwd: vec![],
            uid_range: (1000, 60000),
            facts: OsFacts::default(),
            notes: vec![],
            journal_notes: vec![],
            data_volume: false,
            lvm_history: Vec::new(),
        };
        g.pick_root();
        if let Some(root) = g.root {
            g.mounts.push(Mount {
                path: b"/".to_vec(),
                fs: root,
                source: MountSource::Root,
            });
            g.mount_fstab(root);
            g.mount_esp(root);
            g.mounts
                .sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.path.cmp(&b.path)));
            g.read_os();
        }
        g
    }

    fn pick_root(&mut self) {
        let candidates: Vec<usize> = (0..self.filesystems.len())
            .filter(|&i| {
                let fs = &*self.filesystems[i].fs;
                fs.lookup(b"/etc/os-release").is_ok() || fs.lookup(b"/usr/lib/os-release").is_ok()
            })
            .collect();
        let names_itself = |i: usize| -> bool {
            let fs = &*self.filesystems[i].fs;
            let Ok(text) = fs
                .lookup(b"/etc/fstab")
                .and_then(|id| read_bounded(fs, id, MAX_SMALL_FILE))
            else {
                return false;
            };
            fstab::parse(&text)
                .iter()
                .any(|e| e.mountpoint == b"/" && self.matches(&e.spec) == Some(i))
        };
        let chosen = candidates
            .iter()
            .copied()
            .find(|&i| names_itself(i))
            .or_else(|| candidates.first().copied());
        if candidates.len() > 1
            && let Some(c) = chosen
        {
            let others: Vec<String> = candidates
                .iter()
                .filter(|&&i| i != c)
                .map(|&i| self.filesystems[i].identity.describe())
                .collect();
            self.notes.push(format!(
                "several filesystems hold an OS ({} and {}); {} is used as the OS root \
                 (its fstab names it `/`, or it comes first); the others are scanned by partition",
                self.filesystems[c].identity.describe(),
                others.join(", "),
                self.filesystems[c].identity.describe()
            ));
        }
        self.root = chosen;
    }

    /// Which filesystem an fstab spec names.
    fn matches(&self, spec: &fstab::Spec) -> Option<usize> {
        use fstab::Spec;
        let eq =
            |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
        let same = |a: &Option<String>, b: &str| a.as_deref() == Some(b);
        self.filesystems.iter().position(|f| {
            let id = &f.identity;
            match spec {
                Spec::Uuid(u) => eq(&id.fs_uuid, u),
                Spec::Label(l) => same(&id.fs_label, l),
                Spec::PartUuid(u) => eq(&id.part_uuid, u),
                Spec::PartLabel(l) => same(&id.part_name, l),
                Spec::Partition(n) => id.partition == Some(*n),
                Spec::Lv { vg, lv } => id.lv.as_deref() == Some(&format!("{vg}/{lv}")),
                Spec::Other(_) => false,
            }
        })
    }

    fn mount_fstab(&mut self, root: usize) {
        let fs = &*self.filesystems[root].fs;
        let Ok(text) = fs
            .lookup(b"/etc/fstab")
            .and_then(|id| read_bounded(fs, id, MAX_SMALL_FILE))
        else {
            return;
        };
        for e in fstab::parse(&text) {
            if e.mountpoint == b"/" {
                continue;
            }
            match self.matches(&e.spec) {
                Some(i) if i == root => {}
                Some(i) => {
                    if self.mounts.iter().any(|m| m.fs == i) {
                        continue;
                    }
                    if self.mounts.iter().any(|m| m.path == e.mountpoint) {
                        self.notes.push(format!(
                            "/etc/fstab line {}: {} is already a mount point; ignored",
                            e.line,
                            display_path(&e.mountpoint)
                        ));
                        continue;
                    }
                    self.mounts.push(Mount {
                        path: e.mountpoint,
                        fs: i,
                        source: MountSource::Fstab { line: e.line },
                    });
                }
                None => self.notes.push(format!(
                    "/etc/fstab line {}: {} ({}) names no filesystem of this image",
                    e.line,
                    display_path(&e.mountpoint),
                    e.fstype
                )),
            }
        }
    }

    fn mount_esp(&mut self, root: usize) {
        let Some(esp) = (0..self.filesystems.len()).find(|&i| {
            i != root
                && self.filesystems[i].identity.is_esp()
                && !self.mounts.iter().any(|m| m.fs == i)
        }) else {
            return;
        };
        let root_fs = &*self.filesystems[root].fs;
        let free = |p: &[u8]| !self.mounts.iter().any(|m| m.path == p);
        let path: &[u8] = if root_fs.lookup(b"/boot/efi").is_ok() && free(b"/boot/efi") {
            b"/boot/efi"
        } else {
            b"/efi"
        };
        if free(path) {
            self.mounts.push(Mount {
                path: path.to_vec(),
                fs: esp,
                source: MountSource::EspAuto,
            });
        }
    }

    /// The filesystem and in-filesystem path a guest-absolute path lives on
    /// (longest mount prefix, component-wise). `None` without an OS root.
    pub fn resolve(&self, path: &[u8]) -> Option<(usize, Vec<u8>)> {
        for m in &self.mounts {
            if m.path == b"/" {
                return Some((m.fs, path.to_vec()));
            }
            if let Some(rest) = path.strip_prefix(m.path.as_slice())
                && (rest.is_empty() || rest.starts_with(b"/"))
            {
                let inner = if rest.is_empty() {
                    b"/".to_vec()
                } else {
                    rest.to_vec()
                };
                return Some((m.fs, inner));
            }
        }
        None
    }

    /// Finds a guest path through the mounts. Symlinks in the last component
    /// are followed (absolute targets re-resolved through the mounts) when
    /// `follow`, a bounded number of times.
    pub fn lookup(&self, path: &[u8], follow: bool) -> Option<(usize, NodeId)> {
        let mut path = path.to_vec();
        for _ in 0..crate::fs::walk::MAX_SYMLINKS {
            let (i, inner) = self.resolve(&path)?;
            let fs = &*self.filesystems[i].fs;
            let id = fs.lookup(&inner).ok()?;
            if !follow || fs.metadata(id).ok()?.kind != FileKind::Symlink {
                return Some((i, id));
            }
            let target = fs.read_link(id).ok()?;
            path = if target.starts_with(b"/") {
                target
            } else {
                let parent = path.rsplit_once_slash();
                let mut p = parent.to_vec();
                p.push(b'/');
                p.extend_from_slice(&target);
                p
            };
            path = normalize_lexically(&path)?;
        }
        None
    }

    pub fn exists(&self, path: &[u8]) -> bool {
        self.lookup(path, false).is_some()
    }

    /// Reads a small guest file (following a final symlink), at most `limit` bytes.
    pub fn read(&self, path: &[u8], limit: u64) -> Option<Vec<u8>> {
        let (i, id) = self.lookup(path, true)?;
        let fs = &*self.filesystems[i].fs;
        if fs.metadata(id).ok()?.kind != FileKind::Regular {
            return None;
        }
        read_bounded(fs, id, limit).ok()
    }

    fn read_os(&mut self) {
        let os = self
            .read(b"/etc/os-release", MAX_SMALL_FILE)
            .or_else(|| self.read(b"/usr/lib/os-release", MAX_SMALL_FILE))
            .map(|t| OsRelease::parse(&t))
            .unwrap_or_default();
        self.passwd = self
            .read(b"/etc/passwd", MAX_PASSWD)
            .map(|t| passwd::parse_passwd(&t))
            .unwrap_or_default();
        self.uid_range = self
            .read(b"/etc/login.defs", MAX_SMALL_FILE)
            .map(|t| passwd::parse_uid_range(&t))
            .unwrap_or((1000, 60000));
        let mut f = OsFacts {
            has_os: true,
            id: os.id.clone(),
            ..Default::default()
        };
        f.set_families(os.id.as_deref(), &os.id_like);
        let any = |paths: &[&[u8]]| paths.iter().any(|p| self.exists(p));
        if any(&[b"/var/lib/rpm", b"/usr/lib/sysimage/rpm"]) {
            f.package_formats.push("rpm".into());
        }
        if any(&[b"/var/lib/dpkg/status"]) {
            f.package_formats.push("dpkg".into());
        }
        for (pm, paths) in [
            ("apt", &[&b"/usr/bin/apt-get"[..], b"/etc/apt"][..]),
            ("dnf", &[b"/usr/bin/dnf", b"/etc/dnf"]),
            ("yum", &[b"/usr/bin/yum", b"/etc/yum.conf"]),
            ("zypper", &[b"/usr/bin/zypper", b"/etc/zypp"]),
        ] {
            if any(paths) {
                f.package_managers.push(pm.into());
            }
        }
        f.lvm2 = any(&[b"/etc/lvm"]);
        f.systemd = any(&[b"/usr/lib/systemd/systemd", b"/lib/systemd/systemd"]);
        self.facts = f;
        self.os = Some(os);
    }

    /// Home directories from passwd, normalized and deduplicated (not `/root`
    /// and `/home/*`, which `{home}` always adds). Non-UTF-8 homes cannot be
    /// patterns; they are returned separately so the caller can say so.
    pub fn homes(&self) -> (Vec<String>, Vec<Vec<u8>>) {
        let mut ok: Vec<String> = vec![];
        let mut bad = vec![];
        for e in &self.passwd {
            let Some(h) = normalize_abs(&e.home) else {
                continue;
            };
            match String::from_utf8(h) {
                Ok(s) => {
                    if s != "/root" && !ok.contains(&s) {
                        ok.push(s);
                    }
                }
                Err(e) => bad.push(e.into_bytes()),
            }
        }
        (ok, bad)
    }

    /// The accounts `user-account` removes: UID in login.defs' range, never
    /// root; a home that is `/` or a top-level system directory is not theirs
    /// to lose.
    pub fn removable_users(&self) -> Vec<(String, Option<String>)> {
        const SYSTEM: &[&str] = &[
            "/",
            "/bin",
            "/boot",
            "/dev",
            "/etc",
            "/home",
            "/lib",
            "/lib32",
            "/lib64",
            "/opt",
            "/proc",
            "/root",
            "/run",
            "/sbin",
            "/srv",
            "/sys",
            "/tmp",
            "/usr",
            "/var",
            "/mnt",
            "/media",
            "/nonexistent",
        ];
        let (min, max) = self.uid_range;
        self.passwd
            .iter()
            .filter(|e| e.uid != 0 && e.uid >= min && e.uid <= max && e.name_is_utf8)
            .map(|e| {
                let home = normalize_abs(&e.home)
                    .and_then(|h| String::from_utf8(h).ok())
                    .filter(|h| {
                        !SYSTEM.contains(&h.as_str())
                            && !h.starts_with("/usr/")
                            && !h.starts_with("/var/lib/")
                    });
                (e.name.clone(), home)
            })
            .collect()
    }

    /// Placeholder values for the catalogue's patterns.
    pub fn expansions(&self) -> Expansions {
        Expansions {
            homes: self.homes().0,
            users: self.removable_users(),
        }
    }

    /// Evidence that something in the guest regenerates SSH host keys at boot
    /// (empty: nothing found, sshd will not start once they are removed).
    pub fn ssh_hostkey_regeneration(&self) -> Vec<String> {
        let mut why = vec![];
        if self.exists(b"/etc/cloud/cloud.cfg") || self.exists(b"/usr/bin/cloud-init") {
            why.push("cloud-init is installed (its ssh module generates host keys)".to_string());
        }
        const UNIT_DIRS: &[&[u8]] = &[
            b"/etc/systemd/system",
            b"/usr/lib/systemd/system",
            b"/lib/systemd/system",
        ];
        const UNITS: &[&[u8]] = &[
            b"sshd-keygen@.service",
            b"sshd-keygen.service",
            b"sshd-keygen.target",
            b"sshdgenkeys.service",
            b"ssh-keygen.service",
            b"regenerate_ssh_host_keys.service",
        ];
        for d in UNIT_DIRS {
            for u in UNITS {
                let p = [*d, b"/", *u].concat();
                if self.exists(&p) {
                    why.push(format!("unit {}", display_path(&p)));
                }
            }
        }
        if !why.is_empty() {
            return why;
        }
        // Look inside units and rc scripts whose names suggest ssh or first boot.
        const NEEDLES: &[&[u8]] = &[
            b"ssh-keygen -A",
            b"sshd-keygen",
            b"sshd-gen-keys-start",
            b"dpkg-reconfigure openssh-server",
            b"dpkg-reconfigure -f noninteractive openssh-server",
        ];
        let mut files: Vec<Vec<u8>> =
            vec![b"/etc/rc.local".to_vec(), b"/etc/rc.d/rc.local".to_vec()];
        for d in UNIT_DIRS.iter().chain(&[
            &b"/etc/init.d"[..],
            b"/etc/rc.d/init.d",
            b"/usr/lib/virt-sysprep/scripts",
        ]) {
            let Some((i, id)) = self.lookup(d, true) else {
                continue;
            };
            let Ok(entries) = self.filesystems[i].fs.read_dir(id) else {
                continue;
            };
            for e in entries.iter().take(10_000) {
                let lower = e.name.to_ascii_lowercase();
                let interesting = d.ends_with(b"virt-sysprep/scripts")
                    || lower.windows(3).any(|w| w == b"ssh")
                    || lower.windows(9).any(|w| w == b"firstboot");
                if interesting && e.kind != FileKind::Directory {
                    files.push([*d, b"/", &e.name].concat());
                }
            }
        }
        for p in files {
            if let Some(text) = self.read(&p, 256 << 10)
                && NEEDLES
                    .iter()
                    .any(|n| text.windows(n.len()).any(|w| w == *n))
            {
                why.push(format!("{} regenerates host keys", display_path(&p)));
            }
        }
        why
    }

    /// Filesystems not placed in the tree (no OS root, not in fstab): scanned on
    /// their own.
    pub fn unmounted(&self) -> Vec<usize> {
        (0..self.filesystems.len())
            .filter(|i| !self.mounts.iter().any(|m| m.fs == *i))
            .collect()
    }

    /// The mount point of filesystem `i`, if it is mounted.
    pub fn mount_point(&self, i: usize) -> Option<&[u8]> {
        self.mounts
            .iter()
            .find(|m| m.fs == i)
            .map(|m| m.path.as_slice())
    }
}

trait ParentPath {
    fn rsplit_once_slash(&self) -> &[u8];
}

impl ParentPath for Vec<u8> {
    fn rsplit_once_slash(&self) -> &[u8] {
        match self.iter().rposition(|&b| b == b'/') {
            Some(0) | None => b"",
            Some(i) => &self[..i],
        }
    }
}

/// Resolves `.` and `..` lexically (for symlink targets; `..` at `/` stays at `/`).
pub(crate) fn normalize_lexically(p: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = vec![];
    for c in p.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        match c {
            b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = vec![];
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    (out.len() <= 4096).then_some(out)
}

#[cfg(test)]
mod tests;

/// Options for opening a guest from the command line.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub image: crate::image::OpenOptions,
}

/// Opens what `scan` was given: a directory is an unpacked root filesystem
/// ([`HostDir`](crate::fs::hostdir::HostDir)); anything else is a disk image.
pub fn guest_from_path(path: &std::path::Path, opts: &OpenOptions) -> anyhow::Result<Guest> {
    if path.is_dir() {
        let fs = crate::fs::hostdir::HostDir::open(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(Guest::new(
            vec![GuestFs {
                identity: FsIdentity {
                    fs_type: Some("directory".into()),
                    ..Default::default()
                },
                fs: Arc::new(fs),
            }],
            vec![],
        ));
    }
    guest_from_image(path, opts)
}

/// The partition-table side of a volume's identity.
fn identity_of<D>(table: &vmscrub_partition::Table, v: &crate::image::Volume<D>) -> FsIdentity {
    use vmscrub_partition::Table;
    let mut id = FsIdentity {
        partition: v.index,
        fs_uuid: v.filesystem.uuid.clone(),
        fs_label: v.filesystem.label.clone(),
        fs_type: Some(v.filesystem.kind.blkid_type().to_string()),
        lv: v.lv.as_ref().map(crate::image::LvId::path),
        ..Default::default()
    };
    match (table, v.index) {
        (Table::Gpt(g), Some(i)) => {
            if let Some(p) = g.partitions.iter().find(|p| p.index == i) {
                id.part_uuid = Some(p.guid.to_string().to_ascii_lowercase());
                id.part_name = Some(p.name.clone());
                id.part_type = Some(p.type_guid.to_string().to_ascii_lowercase());
            }
        }
        (Table::Mbr(m), Some(i)) => {
            if let Some(p) = m.partitions.iter().find(|p| p.index == i) {
                // What blkid calls PARTUUID on MBR: disk signature - partition number.
                id.part_uuid = Some(format!("{:08x}-{:02x}", m.disk_signature, i));
                id.part_type = Some(format!("0x{:02x}", p.type_id));
            }
        }
        _ => {}
    }
    id
}

/// Opens a disk image (raw, qcow2, VMDK), finds its partitions and
/// filesystems, and builds the guest view.
pub fn guest_from_image(path: &std::path::Path, opts: &OpenOptions) -> anyhow::Result<Guest> {
    let opened = crate::image::open(path, &opts.image)?;
    let disk: Arc<dyn vmscrub_blockdev::ReadAt> = opened.disk;
    // `with_context`, not `{e}` in a new message: the partition table's own
    // reasons (CRC mismatch, an EBR loop) are the error's sources.
    let layout = crate::image::discover(disk).with_context(|| path.display().to_string())?;
    Ok(guest_from_layout(&layout))
}

/// Builds the guest view from discovered volumes: every ext2/3/4 and FAT volume
/// is opened; every other one is listed as [`Unreadable`] with the reason, so
/// nothing is silently left out. `D` is what the volumes read through (the
/// opened image, or the overlay during a scrub).
pub fn guest_from_layout<D>(layout: &crate::image::Layout<D>) -> Guest
where
    D: vmscrub_blockdev::ReadAt + Clone + 'static,
{
    let mut readable = vec![];
    let mut unreadable = vec![];
    let mut notes = vec![];
    let mut journal_notes = vec![];
    for v in &layout.volumes {
        let identity = identity_of(&layout.table, v);
        match open_filesystem(v) {
            Opened::Fs {
                fs,
                notes: n,
                journal,
            } => {
                journal_notes.extend(journal.map(|j| format!("{}: {j}", identity.describe())));
                notes.extend(
                    n.into_iter()
                        .map(|n| format!("{}: {n}", identity.describe())),
                );
                readable.push(GuestFs { identity, fs });
            }
            Opened::Unreadable(error) => unreadable.push(Unreadable { identity, error }),
            Opened::Container => {}
            Opened::Nothing => notes.push(format!(
                "{}: no filesystem signature found; its contents are not read",
                identity.describe()
            )),
        }
    }
    // Logical volumes vmscrub does not map are named like unreadable partitions.
    for g in &layout.lvm {
        for (lv, why) in &g.refused_lvs {
            unreadable.push(Unreadable {
                identity: FsIdentity {
                    lv: Some(lv.path()),
                    ..Default::default()
                },
                error: why.clone(),
            });
        }
    }
    let mut g = Guest::new(readable, unreadable);
    g.lvm_history = layout
        .lvm
        .iter()
        .filter(|v| !v.history.hosts.is_empty() || v.history.seqnos.len() > 1)
        .map(|v| LvmHistory {
            vg: v.name.clone().unwrap_or_else(|| "(unnamed)".into()),
            copies: v.history.seqnos.len(),
            hosts: v.history.hosts.clone(),
        })
        .collect();
    g.notes.extend(layout.warnings.iter().cloned());
    g.notes.extend(notes);
    g.notes.extend(journal_notes.iter().cloned());
    g.journal_notes = journal_notes;
    g
}

/// What [`open_filesystem`] made of a volume.
pub enum Opened {
    /// A readable filesystem, with caveats the user should hear about.
    Fs {
        fs: Arc<dyn Filesystem>,
        notes: Vec<String>,
        /// What makes the state read differ from the primary on-disk state (a
        /// journal replayed or not, a backup superblock), which every verb says.
        journal: Option<String>,
    },
    /// A filesystem (or container) vmscrub cannot read, and why.
    Unreadable(String),
    /// No signature at all: empty space, a BIOS boot partition, raw data.
    Nothing,
    /// An LVM2 physical volume whose logical volumes are volumes of their own.
    Container,
}

/// Opens one volume with the adapter the probe's verdict calls for:
/// ext2/3/4 through `vmscrub-ext4`, XFS through `vmscrub-xfs`, FAT through `vmscrub-fat`. Everything else
/// is [`Opened::Unreadable`] with a reason that says what was not scanned.
pub fn open_filesystem<D>(v: &crate::image::Volume<D>) -> Opened
where
    D: vmscrub_blockdev::ReadAt + Clone + 'static,
{
    use crate::fs::FsType;
    use crate::fs::fat::FatAdapter;
    use vmscrub_fsprobe::Kind;
    let kind = v.filesystem.kind;
    if let Some(backup) = backup_superblock(v) {
        let t = match kind {
            Kind::Ext2 => FsType::Ext2,
            Kind::Ext3 => FsType::Ext3,
            _ => FsType::Ext4,
        };
        return match crate::fs::ext4::Ext4Fs::open_backup(v.device.clone(), t, backup) {
            // Every verb says this one (with the journal's notes): what is
            // shown is not what the primary superblock would show.
            Ok(fs) => {
                let (view, notes): (Vec<String>, Vec<String>) = fs
                    .inner()
                    .notes()
                    .iter()
                    .cloned()
                    .partition(|n| n.starts_with("read through the backup superblock"));
                Opened::Fs {
                    notes,
                    fs: Arc::new(fs),
                    journal: view.into_iter().next(),
                }
            }
            Err(e) => Opened::Unreadable(format!(
                "{t} cannot be read through its backup superblock: {e}"
            )),
        };
    }
    let ext = |t: FsType| match crate::journal::replayed_view(v.device.clone()) {
        crate::journal::View::AsIs(dev) => open_ext(dev, t, None),
        crate::journal::View::Replayed(dev, note) => open_ext(dev, t, Some(note)),
        crate::journal::View::Unreplayable(dev, why) => open_ext(dev, t, Some(why)),
    };
    match kind {
        Kind::Ext2 => ext(FsType::Ext2),
        Kind::Ext3 => ext(FsType::Ext3),
        Kind::Ext4 => ext(FsType::Ext4),
        Kind::Vfat => match FatAdapter::open(v.device.clone()) {
            Ok(fs) => Opened::Fs {
                fs: Arc::new(fs),
                notes: vec![],
                journal: None,
            },
            Err(e) => Opened::Unreadable(format!("vfat cannot be read: {e}")),
        },
        Kind::Xfs => open_xfs(v.device.clone()),
        Kind::Unknown => Opened::Nothing,
        Kind::Swap => Opened::Unreadable(
            "swap space: not a filesystem; it may hold paged-out secrets, and `scrub` \
             re-initializes it (operation `swap`)"
                .to_string(),
        ),
        Kind::Luks => Opened::Unreadable(
            "LUKS-encrypted volume: cannot be read without its key"
                .to_string(),
        ),
        Kind::LvmPv => match &v.pv {
            Some(crate::image::PvState::Member { .. }) => Opened::Container,
            Some(crate::image::PvState::Refused(why)) => {
                Opened::Unreadable(format!("LVM2 physical volume: {why}"))
            }
            None => Opened::Unreadable("LVM2 physical volume: its label cannot be read".into()),
        },
        Kind::Jbd => Opened::Unreadable(
            "external ext journal device: vmscrub does not read it (it may hold copies of recently written data)"
                .to_string(),
        ),
        other => Opened::Unreadable(format!(
            "{} is not supported (vmscrub reads ext2/3/4, XFS and FAT)",
            other.blkid_type()
        )),
    }
}

/// Where the probe read a volume's ext superblock when that was a backup
/// (the primary is damaged): such a filesystem is read through it, without
/// replaying its journal (the backup's journal fields may be stale).
pub fn backup_superblock<D>(v: &crate::image::Volume<D>) -> Option<vmscrub_ext4::BackupSuperblock> {
    let at = v.filesystem.ext.as_ref()?.superblock_offset;
    let bs = u64::from(v.filesystem.block_size?);
    (at != 1024 && bs > 0 && at % bs == 0).then(|| vmscrub_ext4::BackupSuperblock {
        group: 1,
        block: at / bs,
        block_size: bs as u32,
        offset: at,
    })
}

/// Opens XFS on `dev`, through an overlay holding its log's replay when the
/// log is dirty; `journal` says what happened to the log (replayed, or why
/// not: the on-disk state is then read).
fn open_xfs<D>(dev: D) -> Opened
where
    D: vmscrub_blockdev::ReadAt + Clone + 'static,
{
    use crate::journal::View;
    match crate::fs::xfs::replayed_view(dev) {
        View::AsIs(dev) => open_xfs_on(dev, None),
        View::Replayed(dev, note) => open_xfs_on(dev, Some(note)),
        View::Unreplayable(dev, why) => open_xfs_on(dev, Some(why)),
    }
}

fn open_xfs_on<D>(dev: D, journal: Option<String>) -> Opened
where
    D: vmscrub_blockdev::ReadAt + Clone + 'static,
{
    match crate::fs::xfs::XfsFs::open(dev) {
        Ok(fs) => Opened::Fs {
            notes: fs.inner().notes().to_vec(),
            fs: Arc::new(fs),
            journal,
        },
        Err(e) => Opened::Unreadable(format!("xfs cannot be read: {e}")),
    }
}

/// Opens ext2/3/4 on `dev` (the volume, or an overlay holding its journal's
/// replay), with `journal` (what happened to the journal) among its notes.
fn open_ext<D>(dev: D, t: crate::fs::FsType, journal: Option<String>) -> Opened
where
    D: vmscrub_blockdev::ReadAt + Clone + 'static,
{
    match crate::fs::ext4::Ext4Fs::open(dev, t) {
        Ok(fs) => Opened::Fs {
            notes: fs.inner().notes().to_vec(),
            fs: Arc::new(fs),
            journal,
        },
        Err(e) => Opened::Unreadable(format!("{t} cannot be read: {e}")),
    }
}

impl Guest {
    /// At least one filesystem could be read.
    pub fn readable(&self) -> bool {
        !self.filesystems.is_empty()
    }
}
