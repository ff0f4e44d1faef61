//! `vmscrub inspect`: what an image is and what it holds, without changing it.
//!
//! The JSON form is an interface (CI jobs parse it); every field is documented in
//! `docs/inspect-json.md`, and its shape is fixed: every key is always present,
//! `null` where it does not apply. Warnings go into the report (human and JSON),
//! and in JSON mode also to stderr, so someone piping the JSON into `jq` still sees them.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;
use vmscrub_blockdev::ReadAt;
use vmscrub_fsprobe::{Filesystem, Kind};
use vmscrub_partition::{HeaderUsed, MbrKind, Table};

use crate::exit;
use crate::guest::{Guest, MountSource};
use crate::image::{self, ContainerInfo, Layout, OpenOptions};

mod lvm;
pub use lvm::{LvReport, PvReport, SegmentReport, StripeReport, VgReport};

/// Version of the JSON document's shape; bumped when a field changes meaning or
/// disappears (adding fields does not bump it).
pub const SCHEMA_VERSION: u32 = 1;

/// One line for `vmscrub --help`.
pub const ABOUT: &str =
    "Show an image's format, size, partitions, filesystems and operating system (read-only)";

/// `vmscrub inspect --help`.
pub const LONG_ABOUT: &str = "Show what an image is and what it holds: container format (raw, qcow2, VMDK — decided \
                  from the content, never the file name), virtual size, allocated and file size, the \
                  partition table (GPT with 512- or 4096-byte sectors, MBR with logical partitions, or \
                  none), and for each partition its type, name, GUID, offset and size, and the \
                  filesystem on it (type, label, UUID, version, ext and XFS features and whether the journal \
                  or log needs recovery), whether vmscrub can read it and where the guest mounts it; then the \
                  operating system: which filesystem is the OS root, its /etc/os-release NAME, VERSION \
                  and ID, and the mount layout from its /etc/fstab.\n\nThe image is opened read-only and never modified. Damaged \
                  tables are reported: a damaged primary GPT falls back to the backup with a warning; \
                  anything that cannot be read safely is an error (exit code 3).\n\n--format json \
                  prints one JSON document, documented in docs/inspect-json.md.";

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The image file (raw, qcow2 or VMDK).
    pub image: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,

    #[command(flatten)]
    pub open: crate::cli::OpenArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
}

/// The JSON document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub image: ImageReport,
    pub partition_table: TableReport,
    pub partitions: Vec<PartitionReport>,
    /// LVM2 volume groups on the partitions, with their PVs and LVs.
    pub volume_groups: Vec<VgReport>,
    /// The operating system found on the image, `None` when no readable
    /// filesystem holds `/etc/os-release`.
    pub os: Option<OsReport>,
    pub warnings: Vec<String>,
}

/// The OS root and how the guest mounts its filesystems.
#[derive(Debug, Serialize)]
pub struct OsReport {
    /// Partition holding the OS root (`None`: the whole disk, no table).
    pub root_partition: Option<u32>,
    /// Logical volume holding the OS root (`vg/lv`), `None` on a partition.
    pub root_lv: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub id: Option<String>,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
    /// Mount points, `/` first, sorted by path.
    pub mounts: Vec<MountReport>,
}

#[derive(Debug, Serialize)]
pub struct MountReport {
    pub path: String,
    pub partition: Option<u32>,
    /// Logical volume mounted there (`vg/lv`), `None` for a partition.
    pub lv: Option<String>,
    /// `root`, `fstab` or `esp-auto`.
    pub source: String,
    pub fstab_line: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub path: String,
    pub format: String,
    pub subformat: Option<String>,
    pub virtual_size: u64,
    pub file_size: u64,
    pub allocated_bytes: Option<u64>,
    pub details: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct TableReport {
    #[serde(rename = "type")]
    pub kind: String,
    pub sector_size: Option<u32>,
    pub disk_id: Option<String>,
    pub first_usable_lba: Option<u64>,
    pub last_usable_lba: Option<u64>,
    pub header: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PartitionReport {
    pub index: Option<u32>,
    pub role: String,
    pub start: u64,
    pub size: u64,
    pub first_lba: Option<u64>,
    pub last_lba: Option<u64>,
    #[serde(rename = "type")]
    pub part_type: Option<TypeReport>,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub attributes: Option<u64>,
    pub bootable: Option<bool>,
    pub filesystem: Option<FsReport>,
}

#[derive(Debug, Serialize)]
pub struct TypeReport {
    pub guid: Option<String>,
    pub mbr_id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FsReport {
    #[serde(rename = "type")]
    pub kind: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub version: Option<String>,
    pub block_size: Option<u32>,
    pub features: Option<Vec<String>>,
    pub needs_recovery: Option<bool>,
    /// XFS: what happened to a log that needs recovery (replayed in memory,
    /// or why not); `null` otherwise.
    pub log_replay: Option<String>,
    /// vmscrub can read its files (ext2/3/4, FAT that opened cleanly).
    pub readable: bool,
    /// Why not, for a filesystem that cannot be read (`None` when readable, or
    /// when there is no filesystem signature at all).
    pub unreadable_reason: Option<String>,
    /// Where the guest mounts it (`/`, `/boot/efi`), `None` if it does not.
    pub mount_point: Option<String>,
}

/// Runs the verb: prints the report and returns the exit code.
pub fn run(args: &InspectArgs) -> anyhow::Result<i32> {
    let opts = args.open.options();
    let report = build_report(args, &opts)?;
    match args.format {
        OutputFormat::Json => {
            for w in &report.warnings {
                eprintln!("vmscrub: warning: {w}");
            }
            let mut out =
                serde_json::to_string_pretty(&report).context("serialising the report")?;
            out.push('\n');
            print!("{out}");
        }
        OutputFormat::Human => print!("{}", render_human(&report)),
    }
    Ok(exit::OK)
}

/// Opens the image and gathers everything the report says.
pub fn build_report(args: &InspectArgs, opts: &OpenOptions) -> anyhow::Result<Report> {
    let opened = image::open(&args.image, opts)?;
    let disk: Arc<dyn ReadAt> = opened.disk;
    let layout = image::discover(disk).with_context(|| format!("{}", args.image.display()))?;
    let guest = crate::guest::guest_from_layout(&layout);
    Ok(report_from(
        &args.image.to_string_lossy(),
        &opened.info,
        &layout,
        &guest,
    ))
}

/// What the guest view says about one volume: readable or why not, and where
/// it is mounted.
fn access_of(guest: &Guest, key: &image::VolumeKey) -> (bool, Option<String>, Option<String>) {
    if let Some(i) = guest
        .filesystems
        .iter()
        .position(|f| f.identity.volume_key() == *key)
    {
        let mp = guest.mount_point(i).map(crate::fs::display_path);
        return (true, None, mp);
    }
    let why = guest
        .unreadable
        .iter()
        .find(|u| u.identity.volume_key() == *key)
        .map(|u| u.error.clone());
    (false, why, None)
}

fn os_report(guest: &Guest) -> Option<OsReport> {
    let root = guest.root?;
    let os = guest.os.clone().unwrap_or_default();
    let mut mounts: Vec<MountReport> = guest
        .mounts
        .iter()
        .map(|m| {
            let (source, line) = match m.source {
                MountSource::Root => ("root", None),
                MountSource::Fstab { line } => ("fstab", Some(line)),
                MountSource::EspAuto => ("esp-auto", None),
            };
            MountReport {
                path: crate::fs::display_path(&m.path),
                partition: guest.filesystems[m.fs].identity.partition,
                lv: guest.filesystems[m.fs].identity.lv.clone(),
                source: source.into(),
                fstab_line: line,
            }
        })
        .collect();
    mounts.sort_by(|a, b| a.path.cmp(&b.path));
    Some(OsReport {
        root_partition: guest.filesystems[root].identity.partition,
        root_lv: guest.filesystems[root].identity.lv.clone(),
        name: os.name,
        version: os.version,
        id: os.id,
        version_id: os.version_id,
        pretty_name: os.pretty_name,
        mounts,
    })
}

fn report_from<D: vmscrub_blockdev::ReadAt + Clone + 'static>(
    path: &str,
    info: &ContainerInfo,
    layout: &Layout<D>,
    guest: &Guest,
) -> Report {
    let mut warnings = info.warnings.clone();
    warnings.extend(layout.warnings.iter().cloned());
    for n in &guest.notes {
        if !warnings.contains(n) {
            warnings.push(n.clone());
        }
    }
    let image = ImageReport {
        path: path.to_string(),
        format: info.format.as_str().to_string(),
        subformat: info.subformat.clone(),
        virtual_size: info.virtual_size,
        file_size: info.file_size,
        allocated_bytes: info.allocated_bytes,
        details: info.details.clone(),
    };
    let fs_of = |index: u32| {
        layout
            .volumes
            .iter()
            .find(|v| v.index == Some(index))
            .map(|v| fs_report_of(v, access_of(guest, &v.key())))
    };
    let (partition_table, partitions) = match &layout.table {
        Table::Gpt(g) => (
            TableReport {
                kind: "gpt".into(),
                sector_size: Some(g.sector_size),
                disk_id: Some(g.disk_guid.to_string()),
                first_usable_lba: Some(g.first_usable_lba),
                last_usable_lba: Some(g.last_usable_lba),
                header: Some(match g.header {
                    HeaderUsed::Primary => "primary".into(),
                    HeaderUsed::Backup { .. } => "backup".into(),
                }),
            },
            g.partitions
                .iter()
                .map(|p| PartitionReport {
                    index: Some(p.index),
                    role: "partition".into(),
                    start: p.offset,
                    size: p.size,
                    first_lba: Some(p.first_lba),
                    last_lba: Some(p.last_lba),
                    part_type: Some(TypeReport {
                        guid: Some(p.type_guid.to_string()),
                        mbr_id: None,
                        name: p.type_name.map(str::to_string),
                    }),
                    name: Some(p.name.clone()),
                    uuid: Some(p.guid.to_string()),
                    attributes: Some(p.attributes),
                    bootable: None,
                    filesystem: fs_of(p.index),
                })
                .collect(),
        ),
        Table::Mbr(m) => (
            TableReport {
                kind: "mbr".into(),
                sector_size: Some(m.sector_size),
                disk_id: layout.table.disk_id(),
                first_usable_lba: None,
                last_usable_lba: None,
                header: None,
            },
            m.partitions
                .iter()
                .map(|p| PartitionReport {
                    index: Some(p.index),
                    role: match p.kind {
                        MbrKind::Primary => "primary",
                        MbrKind::Extended => "extended",
                        MbrKind::Logical => "logical",
                    }
                    .into(),
                    start: p.offset,
                    size: p.size,
                    first_lba: Some(p.first_lba),
                    last_lba: Some(p.first_lba + p.sectors.saturating_sub(1)),
                    part_type: Some(TypeReport {
                        guid: None,
                        mbr_id: Some(format!("0x{:02x}", p.type_id)),
                        name: p.type_name.map(str::to_string),
                    }),
                    name: None,
                    uuid: None,
                    attributes: None,
                    bootable: Some(p.bootable),
                    filesystem: if p.kind == MbrKind::Extended {
                        None
                    } else {
                        fs_of(p.index)
                    },
                })
                .collect(),
        ),
        Table::None => (
            TableReport {
                kind: "none".into(),
                sector_size: None,
                disk_id: None,
                first_usable_lba: None,
                last_usable_lba: None,
                header: None,
            },
            layout
                .volumes
                .iter()
                .filter(|v| v.lv.is_none())
                .map(|v| PartitionReport {
                    index: None,
                    role: "whole-disk".into(),
                    start: v.offset,
                    size: v.size,
                    first_lba: None,
                    last_lba: None,
                    part_type: None,
                    name: None,
                    uuid: None,
                    attributes: None,
                    bootable: None,
                    filesystem: Some(fs_report_of(v, access_of(guest, &v.key()))),
                })
                .collect(),
        ),
    };
    Report {
        schema_version: SCHEMA_VERSION,
        image,
        partition_table,
        partitions,
        volume_groups: lvm::vg_reports(layout, guest),
        os: os_report(guest),
        warnings,
    }
}

/// [`fs_report`], with what only the filesystem's own reader knows: for XFS,
/// the feature names (as mkfs.xfs calls them) and whether the log is dirty.
pub(crate) fn fs_report_of<D: vmscrub_blockdev::ReadAt + Clone + 'static>(
    v: &crate::image::Volume<D>,
    access: (bool, Option<String>, Option<String>),
) -> FsReport {
    let mut r = fs_report(&v.filesystem, access);
    if v.filesystem.kind == vmscrub_fsprobe::Kind::Xfs
        && let Ok(fs) = vmscrub_xfs::Xfs::open(v.device.clone())
    {
        r.features = Some(
            fs.superblock()
                .feature_names()
                .iter()
                .map(|f| f.to_string())
                .collect(),
        );
        r.needs_recovery = fs.log_state().ok().map(|s| s.is_dirty());
        if r.needs_recovery == Some(true) {
            r.log_replay = Some(match fs.replay_log() {
                Ok(Some(done)) => format!("replayed ({} transactions)", done.transactions),
                Ok(None) => "replayed (0 transactions)".into(),
                Err(e) => format!("not replayed ({e})"),
            });
        }
    }
    r
}

fn fs_report(fs: &Filesystem, access: (bool, Option<String>, Option<String>)) -> FsReport {
    let (readable, unreadable_reason, mount_point) = access;
    FsReport {
        kind: fs.kind.blkid_type().to_string(),
        label: fs.label.clone(),
        uuid: fs.uuid.clone(),
        version: fs.version.clone(),
        block_size: fs.block_size,
        features: fs.ext.as_ref().map(|e| e.features.clone()),
        needs_recovery: fs.ext.as_ref().map(|e| e.needs_recovery),
        log_replay: None,
        readable,
        unreadable_reason,
        mount_point,
    }
}

/// `partition 2`, or `the whole disk`.
fn where_is(index: Option<u32>) -> String {
    match index {
        Some(i) => format!("partition {i}"),
        None => "the whole disk".into(),
    }
}

/// [`where_is`], or `logical volume rhel/root`.
fn where_is_vol(index: Option<u32>, lv: &Option<String>) -> String {
    match lv {
        Some(lv) => format!("logical volume {}", safe(lv)),
        None => where_is(index),
    }
}

/// Guest strings (os-release values, paths) cannot drive the terminal.
fn safe(s: &str) -> String {
    crate::report::safe_text(s)
}

/// Sizes as people read them, in binary units like `sgdisk -p` (`40.0 MiB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Left-aligned columns separated by two spaces; numeric columns right-aligned.
fn table(rows: &[Vec<String>], right: &[bool]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let w = widths[c];
                if right.get(c).copied().unwrap_or(false) {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        out.push_str(format!("  {}", cells.join("  ")).trim_end());
        out.push('\n');
    }
    out
}

fn or_dash(s: &Option<String>) -> String {
    s.clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// The human form: a header block, then one aligned row per partition.
pub fn render_human(r: &Report) -> String {
    let mut out = String::new();
    let im = &r.image;
    let fmt = match &im.subformat {
        Some(s) => format!("{} ({s})", im.format),
        None => im.format.clone(),
    };
    let _ = writeln!(out, "Image:        {}", im.path);
    let _ = writeln!(out, "Format:       {fmt}");
    let _ = writeln!(
        out,
        "Virtual size: {} ({} bytes)",
        human_size(im.virtual_size),
        im.virtual_size
    );
    match im.allocated_bytes {
        Some(a) => {
            let _ = writeln!(out, "Allocated:    {} ({a} bytes)", human_size(a));
        }
        None => out.push_str("Allocated:    unknown\n"),
    }
    let _ = writeln!(
        out,
        "File size:    {} ({} bytes)",
        human_size(im.file_size),
        im.file_size
    );
    for (k, v) in &im.details {
        let v = v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        let _ = writeln!(out, "  {k}: {v}");
    }
    let t = &r.partition_table;
    let table_line = match t.kind.as_str() {
        "gpt" => format!(
            "GPT, {}-byte sectors, disk GUID {}, usable LBA {}..{}{}",
            t.sector_size.unwrap_or(0),
            or_dash(&t.disk_id),
            t.first_usable_lba.unwrap_or(0),
            t.last_usable_lba.unwrap_or(0),
            if t.header.as_deref() == Some("backup") {
                " (read from the backup header)"
            } else {
                ""
            }
        ),
        "mbr" => format!(
            "MBR (DOS), {}-byte sectors, disk identifier {}",
            t.sector_size.unwrap_or(0),
            or_dash(&t.disk_id)
        ),
        _ => "none (the filesystem starts at byte 0)".to_string(),
    };
    let _ = writeln!(out, "Partitions:   {table_line}");
    out.push('\n');

    // Positions in sectors of the table, like sgdisk and fdisk; in bytes without a table.
    let (first, last) = if r.partition_table.kind == "none" {
        ("Start", "End")
    } else {
        ("First LBA", "Last LBA")
    };
    let mut rows = vec![
        [
            "#",
            first,
            last,
            "Size",
            "Type",
            "Name",
            "Filesystem",
            "Label",
            "UUID",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    let mut details = Vec::new();
    for p in &r.partitions {
        let index = match p.index {
            Some(i) => i.to_string(),
            None => "disk".into(),
        };
        let ty = match &p.part_type {
            Some(TypeReport {
                mbr_id: Some(id),
                name,
                ..
            }) => format!(
                "{} {}",
                id.trim_start_matches("0x"),
                name.clone().unwrap_or_default()
            )
            .trim()
            .to_string(),
            Some(TypeReport { guid, name, .. }) => {
                name.clone().or_else(|| guid.clone()).unwrap_or_default()
            }
            None => "-".into(),
        };
        let ty = if p.role == "extended" {
            format!("{ty} (extended)")
        } else {
            ty
        };
        let ty = if p.bootable == Some(true) {
            format!("{ty} *")
        } else {
            ty
        };
        let (fs, label, uuid) = match &p.filesystem {
            Some(f) => {
                let kind = match &f.version {
                    Some(v) if f.kind != Kind::LvmPv.blkid_type() => format!("{} {v}", f.kind),
                    _ => f.kind.clone(),
                };
                (kind, or_dash(&f.label), or_dash(&f.uuid))
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        let (start, end) = match (p.first_lba, p.last_lba) {
            (Some(a), Some(b)) => (a.to_string(), b.to_string()),
            _ => (
                p.start.to_string(),
                (p.start + p.size).saturating_sub(1).to_string(),
            ),
        };
        rows.push(vec![
            index.clone(),
            start,
            end,
            human_size(p.size),
            ty,
            or_dash(&p.name),
            fs,
            label,
            uuid,
        ]);
        if let Some(f) = &p.filesystem {
            let mut d = Vec::new();
            if let Some(b) = f.block_size {
                d.push(format!("block size {b}"));
            }
            if f.needs_recovery == Some(true) && f.kind == "xfs" {
                match &f.log_replay {
                    Some(r) if r.starts_with("replayed") => {
                        d.push(format!("log needs recovery: {r} in memory"))
                    }
                    Some(r) => d.push(format!("LOG NEEDS RECOVERY, {r}")),
                    None => d.push("LOG NEEDS RECOVERY".into()),
                }
            } else if f.needs_recovery == Some(true) {
                d.push("JOURNAL NEEDS RECOVERY".into());
            }
            if let Some(feat) = &f.features {
                d.push(format!("features: {}", feat.join(" ")));
            }
            if !d.is_empty() {
                details.push(format!("  {index:>4}  {}: {}", f.kind, d.join(", ")));
            }
        }
    }
    out.push_str(&table(&rows, &[true, true, true, true]));
    out.push('\n');
    match &r.os {
        Some(os) => {
            let name = match (&os.pretty_name, &os.name, &os.version) {
                (Some(p), _, _) => p.clone(),
                (None, Some(n), Some(v)) => format!("{n} {v}"),
                (None, Some(n), None) => n.clone(),
                (None, None, _) => "unknown (no NAME in os-release)".into(),
            };
            let id = match (&os.id, &os.version_id) {
                (Some(i), Some(v)) => format!(" [ID {i}, VERSION_ID {v}]"),
                (Some(i), None) => format!(" [ID {i}]"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "Operating system: {}{id} on {}",
                safe(&name),
                where_is_vol(os.root_partition, &os.root_lv)
            );
            out.push_str("Mounts:\n");
            let mut rows = vec![];
            for m in &os.mounts {
                let how = match (m.source.as_str(), m.fstab_line) {
                    ("root", _) => "OS root".to_string(),
                    ("fstab", Some(l)) => format!("/etc/fstab line {l}"),
                    ("esp-auto", _) => "ESP not in fstab: where systemd mounts it".to_string(),
                    (s, _) => s.to_string(),
                };
                let fs = match &m.lv {
                    Some(lv) => r
                        .volume_groups
                        .iter()
                        .flat_map(|g| {
                            g.logical_volumes.iter().filter(move |l| {
                                g.name
                                    .as_ref()
                                    .is_some_and(|n| format!("{n}/{}", l.name) == *lv)
                            })
                        })
                        .find_map(|l| l.filesystem.as_ref()),
                    None => r
                        .partitions
                        .iter()
                        .find(|p| p.index == m.partition)
                        .and_then(|p| p.filesystem.as_ref()),
                }
                .map(|f| format!("{} {}", f.kind, or_dash(&f.label)))
                .unwrap_or_default();
                rows.push(vec![
                    safe(&m.path),
                    where_is_vol(m.partition, &m.lv),
                    fs,
                    how,
                ]);
            }
            out.push_str(&table(&rows, &[]));
        }
        None => out.push_str(
            "Operating system: none found (no readable filesystem holds /etc/os-release)\n",
        ),
    }
    let unreadable: Vec<String> = r
        .partitions
        .iter()
        .filter_map(|p| {
            let f = p.filesystem.as_ref()?;
            let why = f.unreadable_reason.as_ref()?;
            Some(format!("  {}: {}", where_is(p.index), why))
        })
        .collect();
    if !unreadable.is_empty() {
        out.push_str("\nNot readable:\n");
        for u in unreadable {
            out.push_str(&u);
            out.push('\n');
        }
    }
    lvm::render(&r.volume_groups, &mut out);
    if !details.is_empty() {
        out.push_str("\nFilesystem details:\n");
        for d in details {
            out.push_str(&d);
            out.push('\n');
        }
    }
    if !r.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &r.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(40 << 20), "40.0 MiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["#".to_string(), "Name".into()],
            vec!["10".into(), "x".into()],
        ];
        assert_eq!(table(&rows, &[true]), "   #  Name\n  10  x\n");
    }
}
