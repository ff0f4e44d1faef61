//! `vmscrub scrub`: the whole pipeline, from an image to a cleaned copy and an
//! encrypted recovery archive of everything removed.
//!
//! ```text
//! open (read-only) → overlay → partitions → journals replayed in the overlay →
//! scan → plan → per filesystem: capture (archive + fingerprints), edit →
//! one sequential output pass → verify the written output → commit
//! ```
//!
//! Decisions:
//! - **Nothing is written before everything succeeded.** Edits live in the
//!   overlay; the output and the archive are written under temporary names and
//!   renamed only after verification. Any error, a failed verification or
//!   Ctrl-C removes them.
//! - **An action that cannot be done fails the scrub** (see `apply`), rather
//!   than publishing an image that still holds what the user asked to remove.
//! - **A dry run is a real run without the output**: the plan is carried out
//!   in the in-memory overlay (so refusals show up) and the archive is encoded
//!   into nothing; its report is the one the real run would write.
//! - **Journals needing recovery are replayed first** (in the overlay), so the
//!   scan sees the filesystem the guest would see after its next mount, and
//!   the journal's stale copies are cleared.
//! - **Verification is on by default** (`verify`): the output is reopened with
//!   vmscrub's own readers, re-scanned, and swept for the fingerprints of the
//!   removed content.

pub mod apply;
pub mod capture;
pub mod free;
pub mod recipients;
pub mod report;
pub mod residue;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use regex::bytes::Regex;
use vmscrub_recovery::{ArchiveInfo, ArchiveWriter, ImageInfo, Recipient, WriterOptions};
use zeroize::Zeroizing;

use self::apply::{Outcome, Step};
use self::capture::{Capture, Captured, Names};
use self::residue::{MAX_FINGERPRINTS, Removed, UnitHasher};
use self::verify::{SweepTarget, Verification};
use crate::cli::{OpenArgs, SelectArgs, usage};
use crate::exit;
use crate::fs::{FileKind, display_path};
use crate::guest::Guest;
use crate::image;
use crate::ops::ActionKind;
use crate::output::same_file;
use crate::output::{self, OutputArgs, PassOptions, PendingFile};
use crate::overlay::Overlay;
use crate::scan::{self, PlannedAction, ScanOptions};

pub const ABOUT: &str =
    "Write a cleaned copy of an image (and an encrypted archive of what was removed)";

pub const LONG_ABOUT: &str = "Write a cleaned copy of IMAGE to OUT: every file the selected \
operations target is removed (directory entry, name bytes, inode and data blocks — freed \
blocks are zeroed and become holes), truncated, or rewritten shorter; everything else is \
left byte-identical. Free space (blocks no file owns, which may still hold files deleted \
before the image was taken) is zeroed too, unless --keep-free-space. The input is opened \
read-only and never modified.\n\n\
The output has the input's format unless -O says otherwise (raw, qcow2, VMDK; --subformat \
for the VMDK variant, --compress[=zlib|zstd] for compressed qcow2 clusters on every core); \
zeroed and unallocated ranges become holes.\n\n\
With --recovery FILE --recipient KEY.pub, everything removed (and the original of every \
truncated or rewritten file) goes into an archive only the owner's private key opens: \
`vmscrub recover`, or with no vmscrub at all `age -d -i KEY FILE | zstd -d | tar -xpf - -C \
DIR` (the age format, the default for ssh-ed25519, age1… and RSA keys up to 4096 bits; \
--archive-format v1 for vmscrub's own). Plaintext of a removed file is never written \
anywhere else.\n\n\
The output is verified before it is kept (unless --no-verify): reopened with vmscrub's own \
readers, scanned again (nothing may be left to do), and swept for the removed content's \
block fingerprints. Outputs are written under temporary names and renamed at the end; on \
any error, a failed verification or Ctrl-C, nothing is left behind. An action that cannot \
be carried out (an ext4 feature the editor refuses, a corrupt structure) fails the scrub \
with the path named: exempt it with --keep or leave out its operation.\n\n\
--dry-run carries the plan out in memory and prints it, writing nothing.\n\n\
Exit codes: 0 done; 2 usage; 3 error (nothing written); 4 verification failed (nothing \
kept).";

#[derive(clap::Args, Debug)]
pub struct ScrubArgs {
    /// The input image (raw, qcow2 or VMDK; decided from the content).
    pub image: PathBuf,

    /// The cleaned copy (for a monolithicFlat VMDK, the descriptor; the data goes
    /// to NAME-flat.vmdk beside it). Required unless --dry-run.
    #[arg(
        long,
        short = 'o',
        value_name = "OUT",
        required_unless_present = "dry_run"
    )]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub select: SelectArgs,

    /// Carry out the plan in memory and print it; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Write the encrypted recovery archive of everything removed here.
    #[arg(long, value_name = "FILE")]
    pub recovery: Option<PathBuf>,

    /// Public key the recovery archive is encrypted to: a file of OpenSSH
    /// `ssh-ed25519` / `ssh-rsa` lines (~/.ssh/id_ed25519.pub, an authorized_keys
    /// file) and age `age1…` recipients, one per line (as `age -R` reads), or a
    /// PEM/DER RSA public key; RSA keys of at least 2048 bits. A recipient may also
    /// be given inline (`--recipient age1…`). Repeatable: any one key opens it.
    #[arg(long, value_name = "KEY.pub")]
    pub recipient: Vec<PathBuf>,

    /// The recovery archive's format: `age` (age-encryption.org/v1; opens with the
    /// standard `age` tool), `v1` (vmscrub's own; RSA keys only), or `auto`: age when
    /// every recipient is a key it serves (ssh-ed25519, age1…, RSA up to 4096 bits),
    /// else v1. `vmscrub recover` reads both.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t)]
    pub archive_format: recipients::FormatChoice,

    /// Also write what was done as JSON (the scan report's schema plus a `scrub`
    /// section; docs/scan-json.md).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Skip verifying the written output.
    #[arg(long)]
    pub no_verify: bool,

    /// Leave free space as it is. By default every block no file owns is zeroed
    /// (it becomes a hole), so data deleted before the image was taken — an
    /// `rm`'d key, an old log — does not ship either; the output gets smaller too.
    #[arg(long)]
    pub keep_free_space: bool,

    /// Scrub even if a file, directory or filesystem vmscrub should read cannot be
    /// read (it is left as it is, unexamined). Without it that is an error.
    #[arg(long)]
    pub allow_unreadable: bool,

    #[command(flatten)]
    pub output_args: OutputArgs,

    /// Replace OUT (and the recovery file) if they exist.
    #[arg(long)]
    pub force: bool,

    /// No progress and no summary (errors and warnings still go to stderr).
    #[arg(long, short)]
    pub quiet: bool,

    #[command(flatten)]
    pub open: OpenArgs,

    /// Worker threads for scanning, compressing and verifying (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

/// Prints phase messages unless quiet.
struct Say {
    quiet: bool,
}

impl Say {
    fn phase(&self, what: &str) {
        if !self.quiet {
            eprintln!("vmscrub: {what}…");
        }
    }
}

/// Times of the phases, for the summary.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Timings {
    pub scan: f64,
    pub edit: f64,
    pub write: f64,
    pub verify: f64,
    pub total: f64,
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Where an action's files go in the archive (see `capture`).
fn archive_path(guest: &Guest, a: &PlannedAction) -> Vec<u8> {
    let mounted = guest.mount_point(a.filesystem).is_some() && !a.shadowed;
    let mut p = Vec::new();
    if mounted {
        p.extend_from_slice(a.path.strip_prefix(b"/").unwrap_or(&a.path));
    } else {
        match guest.filesystems[a.filesystem].identity.partition {
            Some(n) => p.extend_from_slice(format!("partition-{n}/").as_bytes()),
            None => p.extend_from_slice(b"disk/"),
        }
        p.extend_from_slice(a.fs_path.strip_prefix(b"/").unwrap_or(&a.fs_path));
    }
    p
}

/// Turns the plan into steps: node kinds and sizes from the filesystem, and
/// each rewrite's new content computed from the current one exactly as the
/// scan predicted it.
fn steps_of(guest: &Guest, plan: &[PlannedAction]) -> Result<Vec<Step>> {
    let mut steps = Vec::with_capacity(plan.len());
    for a in plan {
        let fs = &*guest.filesystems[a.filesystem].fs;
        let m = fs
            .metadata(a.node)
            .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(&a.path)))?;
        let content = if a.action == ActionKind::Rewrite {
            let new = match &a.replace {
                Some(r) => r.as_bytes().to_vec(),
                None => {
                    let old = Zeroizing::new(
                        crate::guest::read_bounded(fs, a.node, scan::MAX_REWRITE_SIZE)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", display_path(&a.path)))?,
                    );
                    let res: Vec<Regex> = a
                        .drop_lines
                        .iter()
                        .map(|d| Regex::new(d))
                        .collect::<Result<_, _>>()
                        .context("a drop-lines pattern")?;
                    scan::drop_lines(&old, &res)
                }
            };
            Some(Zeroizing::new(new))
        } else {
            None
        };
        steps.push(Step {
            filesystem: a.filesystem,
            path: a.path.clone(),
            fs_path: a.fs_path.clone(),
            node: a.node,
            kind: m.kind,
            size: m.size,
            action: a.action,
            operations: a.operations.clone(),
            content,
            archive_path: archive_path(guest, a),
        });
    }
    Ok(steps)
}

/// Everything a scrub did, for the summary and the JSON report.
#[derive(Debug, Default)]
pub struct Done {
    pub outcomes: Vec<Outcome>,
    pub captured: Captured,
    pub zeroed: u64,
    /// Free space made to read as zeros (`free`).
    pub free_zeroed: u64,
    pub notes: Vec<String>,
    pub archive_entries: u64,
    pub recipients: Vec<String>,
    pub archive_format: &'static str,
    pub verification: Option<Verification>,
    /// Non-zero storage units of removed content, and how many were
    /// fingerprinted for the sweep (all, unless past `MAX_FINGERPRINTS`).
    pub fingerprints: u64,
    pub units_removed: u64,
    pub timings: Timings,
    pub output_format: Option<String>,
    pub output_bytes: Option<u64>,
}

impl Done {
    /// Non-directory entries the deletes removed.
    pub fn removed_files(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.action, ActionKind::Delete | ActionKind::DeleteTree))
            .map(|o| o.files)
            .sum()
    }

    /// Bytes of content removed by every action.
    pub fn removed_bytes(&self) -> u64 {
        self.outcomes.iter().map(|o| o.bytes).sum()
    }
}

pub fn run(args: &ScrubArgs) -> Result<i32> {
    let t0 = Instant::now();
    output::install_interrupt_handler();
    crate::convert::survive_file_size_limit();
    let say = Say { quiet: args.quiet };
    let (cat, selection) = args.select.resolve()?;
    if args.recovery.is_some() && args.recipient.is_empty() {
        return Err(usage(
            "--recovery needs at least one --recipient (the public key that will open it)",
        ));
    }
    if args.recovery.is_none() && !args.recipient.is_empty() {
        return Err(usage("--recipient is only used with --recovery FILE"));
    }
    args.output_args.check().map_err(usage)?;
    for p in [&args.output, &args.recovery].into_iter().flatten() {
        if same_file(&args.image, p) {
            bail!("{} is the input; the input is never replaced", p.display());
        }
    }
    if let (Some(o), Some(r)) = (&args.output, &args.recovery)
        && (o == r || same_file(o, r))
    {
        return Err(usage("--output and --recovery name the same file"));
    }
    let recipients = recipients::load_recipients(&args.recipient)?;
    let archive_format = args.archive_format.resolve(&recipients)?;
    let verify_on = !args.no_verify && !args.dry_run;
    let threads = args
        .threads
        .map_or_else(vmscrub_parmap::available_threads, usize::from);

    let img = image::open(&args.image, &args.open.options())?;
    for w in &img.info.warnings {
        eprintln!("vmscrub: warning: {w}");
    }
    let resolved = args.output_args.resolve(&args.image, &img).map_err(usage)?;
    for w in &resolved.warnings {
        eprintln!("vmscrub: warning: {w}");
    }
    let out_format = resolved.format;
    // Create the outputs now, so "already exists" or an unwritable directory is
    // said before minutes of work.
    let mut out = match (&args.output, args.dry_run) {
        (Some(o), false) => {
            let out = output::create_output(o, &out_format, img.info.virtual_size, args.force)?;
            for t in out.targets() {
                if same_file(&args.image, &t) {
                    bail!("{} is the input; the input is never replaced", t.display());
                }
            }
            Some(out)
        }
        _ => None,
    };
    let archive_file = match (&args.recovery, args.dry_run) {
        (Some(r), false) => Some(PendingFile::create(r, args.force)?),
        _ => None,
    };

    let overlay = Arc::new(Overlay::new(img.disk.clone()));
    let discover = || {
        image::discover(overlay.clone())
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", args.image.display()))
    };
    let mut layout = discover()?;
    let mut done = Done {
        output_format: args.output.as_ref().map(|_| out_format.describe()),
        recipients: recipients
            .iter()
            .map(Recipient::fingerprint_string)
            .collect(),
        archive_format: archive_format.name(),
        ..Done::default()
    };
    let mut replayed = false;
    for v in &layout.volumes {
        use vmscrub_fsprobe::Kind;
        if !matches!(v.filesystem.kind, Kind::Ext3 | Kind::Ext4 | Kind::Ext2) {
            continue;
        }
        let name = v
            .index
            .map_or("whole disk".to_string(), |i| format!("partition {i}"));
        match apply::recover_journal(v.device.clone()) {
            Ok(Some(note)) => {
                if !args.quiet {
                    eprintln!("vmscrub: {name}: {note}");
                }
                done.notes.push(format!("{name}: {note}"));
                replayed = true;
            }
            Ok(None) => {}
            Err(e) => eprintln!(
                "vmscrub: warning: {name}: the journal could not be replayed ({e:#}); scanning the on-disk state"
            ),
        }
    }
    if replayed {
        // The probe's view (flags, the "needs recovery" warning) predates the replay.
        layout = discover()?;
    }
    let guest = crate::guest::guest_from_layout(&layout);
    guest.require_readable(&args.image)?;

    // A filesystem vmscrub reads but could not open is damaged: its secrets would
    // ship unexamined. One it does not read at all (swap, LVM, xfs, LUKS) is said.
    let mut damaged: Vec<String> = Vec::new();
    for u in &guest.unreadable {
        let ours = matches!(
            u.identity.fs_type.as_deref(),
            Some("ext2" | "ext3" | "ext4" | "vfat")
        );
        if ours && !args.allow_unreadable {
            damaged.push(format!("{}: {}", u.identity.describe(), u.error));
        } else {
            eprintln!(
                "vmscrub: warning: {} is not scrubbed: {}",
                u.identity.describe(),
                u.error
            );
        }
    }
    if !damaged.is_empty() {
        bail!(
            "{} could not be read, so it cannot be scrubbed; nothing was written \
             (repair a copy with e2fsck/fsck.fat, or pass --allow-unreadable to scrub the rest): {}",
            if damaged.len() == 1 {
                "a filesystem"
            } else {
                "filesystems"
            },
            damaged.join("; ")
        );
    }

    say.phase("scanning");
    let t_scan = Instant::now();
    let detectors = scan::content::Detectors::for_selection(&selection)
        .map_err(|e| anyhow::anyhow!("content detectors: {e}"))?;
    let scan_progress = Arc::new(scan::ScanProgress::default());
    let scan_opts = ScanOptions {
        catalogue: &cat,
        selection: &selection,
        keep: args.select.keep.clone(),
        content: detectors.as_ref().map(|d| d as &dyn scan::ContentScanner),
        threads,
        progress: Some(&scan_progress),
    };
    let spinner = {
        let p = scan_progress.clone();
        crate::progress::Spinner::start(!args.quiet, "scanning", move || p.describe())
    };
    let result = scan::scan(&guest, &scan_opts).map_err(usage)?;
    drop(spinner);
    let plan = result.plan();
    done.timings.scan = secs(t_scan.elapsed());
    let unread: Vec<&scan::Warning> = result
        .warnings
        .iter()
        .filter(|w| {
            matches!(
                w.kind,
                scan::WarningKind::UnreadableFile | scan::WarningKind::UnreadableFilesystem
            )
        })
        .collect();
    if !unread.is_empty() && !args.allow_unreadable {
        let shown: Vec<String> = unread
            .iter()
            .take(10)
            .map(|w| crate::report::safe_text(&w.message))
            .collect();
        bail!(
            "{} part(s) of the image could not be read, so what they hold is unknown; nothing was \
             written (repair a copy, or pass --allow-unreadable to scrub the rest): {}{}",
            unread.len(),
            shown.join("; "),
            if unread.len() > 10 { "; …" } else { "" }
        );
    }
    for w in &result.warnings {
        eprintln!("vmscrub: warning: {}", crate::report::safe_text(&w.message));
    }
    for f in result.findings.iter().filter(|f| f.skipped) {
        eprintln!(
            "vmscrub: warning: not done: {} {} ({}): {}",
            f.action.as_str(),
            crate::report::safe_path(&f.path),
            f.operation,
            crate::report::safe_text(f.note.as_deref().unwrap_or("skipped"))
        );
    }

    // ---------------------------------------------------------- edit
    let t_edit = Instant::now();
    let steps = steps_of(&guest, &plan)?;
    let names = Names::from_guest(&guest);
    let sink: Box<dyn Write + Send> = match &archive_file {
        Some(f) => Box::new(io::BufWriter::with_capacity(
            1 << 20,
            f.file()
                .try_clone()
                .context("cannot reopen the recovery file")?,
        )),
        None => Box::new(io::sink()),
    };
    let mut archive = if args.recovery.is_some() {
        let info = ArchiveInfo {
            image: ImageInfo {
                name: args
                    .image
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                size: img.info.file_size,
                sha256: None,
            },
            vmscrub_version: env!("CARGO_PKG_VERSION").to_string(),
            operations: selection.names().to_vec(),
            created: None,
        };
        let opts = WriterOptions {
            format: archive_format,
            zstd_workers: u32::try_from(threads.min(8)).unwrap_or(0),
            zstd_level: 1,
            ..WriterOptions::default()
        };
        Some(
            ArchiveWriter::new(sink, &recipients, info, &opts)
                .context("cannot start the recovery archive")?,
        )
    } else {
        None
    };
    let mut by_fs: BTreeMap<usize, Vec<Step>> = BTreeMap::new();
    for s in steps {
        by_fs.entry(s.filesystem).or_default().push(s);
    }
    let mut targets: Vec<SweepTarget> = Vec::new();
    let mut budget = MAX_FINGERPRINTS;
    if !by_fs.is_empty() {
        say.phase("removing");
    }
    for (fi, steps) in &by_fs {
        let gfs = &guest.filesystems[*fi];
        let Some(vol) = layout
            .volumes
            .iter()
            .find(|v| v.index == gfs.identity.partition)
        else {
            bail!("{}: its volume disappeared", gfs.identity.describe());
        };
        let unit = gfs.fs.storage_unit();
        let mut removed = verify_on.then(|| Removed::new(unit));
        let mut per_step: Vec<Captured> = Vec::with_capacity(steps.len());
        {
            let mut cap = Capture {
                fs: &*gfs.fs,
                archive: archive.as_mut(),
                names: &names,
                removed: removed.as_mut(),
                budget: &mut budget,
                linked: HashMap::new(),
            };
            for s in steps {
                let ops = s.operations.join(",");
                let c = cap
                    .node(
                        &s.archive_path,
                        s.node,
                        &ops,
                        s.action == ActionKind::DeleteTree,
                    )
                    .with_context(|| {
                        format!("reading {} before removing it", display_path(&s.path))
                    })?;
                per_step.push(c);
            }
        }
        if let Some(r) = removed.as_mut() {
            for s in steps {
                if let Some(c) = &s.content {
                    let mut h = UnitHasher::new(unit, usize::MAX);
                    h.feed(0, c);
                    r.kept.extend(h.finish().0);
                }
            }
        }
        let applied = apply::apply(
            vol.device.clone(),
            gfs.fs.fs_type(),
            &gfs.identity.describe(),
            steps,
        )?;
        let mut outcomes = applied.outcomes;
        // One outcome per step, in order (the plan holds no report actions).
        for ((o, c), s) in outcomes.iter_mut().zip(&per_step).zip(steps) {
            if s.action == ActionKind::DeleteTree && s.kind == FileKind::Directory {
                o.files = c.files;
                o.dirs = c.dirs;
                o.bytes = c.bytes;
            }
        }
        for c in &per_step {
            done.captured += *c;
        }
        done.outcomes.extend(outcomes);
        done.zeroed += applied.zeroed;
        for n in applied.notes {
            done.notes.push(format!("{}: {n}", gfs.identity.describe()));
        }
        if let Some(r) = removed {
            done.units_removed += r.units;
            done.fingerprints += r.fingerprinted;
            targets.push(SweepTarget {
                partition: gfs.identity.partition,
                label: gfs.identity.describe(),
                unit,
                prints: r.target_set(&applied.survivors),
            });
        }
    }
    if !args.keep_free_space && !apply::fault("keep-freed") {
        for gfs in &guest.filesystems {
            let Some(vol) = layout
                .volumes
                .iter()
                .find(|v| v.index == gfs.identity.partition)
            else {
                continue;
            };
            match free::zero_free_space(vol.device.clone(), gfs.fs.fs_type()) {
                Ok(n) => done.free_zeroed += n,
                Err(e) => {
                    let msg = format!("{}: free space not zeroed: {e:#}", gfs.identity.describe());
                    eprintln!("vmscrub: warning: {msg}");
                    done.notes.push(msg);
                }
            }
        }
    }
    if let Some(a) = archive.take() {
        done.archive_entries = a.manifest().files.len() as u64;
        a.finish()
            .context("cannot complete the recovery archive")?
            .flush()
            .context("cannot write the recovery archive")?;
    }
    done.timings.edit = secs(t_edit.elapsed());

    if args.dry_run {
        done.timings.total = secs(t0.elapsed());
        let text = report::plan_text(&done);
        std::io::stdout().write_all(text.as_bytes())?;
        write_report(args, &guest, &result, &selection, &done)?;
        if !args.quiet {
            eprint!("{}", report::summary(&done, args));
        }
        return Ok(exit::OK);
    }

    // ---------------------------------------------------------- write
    let Some(out_img) = out.as_mut() else {
        return Err(usage("--output is required unless --dry-run"));
    };
    let t_write = Instant::now();
    let pass = PassOptions {
        threads,
        progress: !args.quiet,
        label: "writing".into(),
    };
    let target = args.output.clone().unwrap_or_default();
    output::write_image(&*overlay, out_img.sink(), &pass)
        .with_context(|| format!("writing {} failed; nothing was written", target.display()))?;
    out_img.finish()?;
    out_img.sync_in_background()?;
    done.timings.write = secs(t_write.elapsed());

    // ---------------------------------------------------------- verify
    if verify_on {
        let t_verify = Instant::now();
        say.phase("verifying the output");
        let disk = out_img.reopen()?;
        let expected = verify::expected_filesystems(&guest);
        let rescan_progress = Arc::new(scan::ScanProgress::default());
        let rescan_opts = ScanOptions {
            progress: Some(&rescan_progress),
            keep: scan_opts.keep.clone(),
            ..scan_opts
        };
        let spinner = {
            let p = rescan_progress.clone();
            crate::progress::Spinner::start(!args.quiet, "verifying", move || p.describe())
        };
        let v = verify::verify(disk, &expected, &rescan_opts, &targets)?;
        drop(spinner);
        done.timings.verify = secs(t_verify.elapsed());
        let ok = v.ok();
        done.verification = Some(v);
        if !ok {
            done.timings.total = secs(t0.elapsed());
            if let Some(v) = &done.verification {
                for p in &v.problems {
                    eprintln!("vmscrub: verification: {}", crate::report::safe_text(p));
                }
            }
            write_report(args, &guest, &result, &selection, &done)?;
            eprintln!(
                "vmscrub: error: the output failed verification; it was not kept (nothing was written)"
            );
            return Ok(exit::VERIFY_FAILED);
        }
    }

    // ---------------------------------------------------------- commit
    let targets_out = out_img.targets();
    let recovery_target = archive_file.as_ref().map(|f| f.target().to_path_buf());
    if let Some(f) = archive_file {
        f.commit()?;
    }
    if let Some(o) = out.take()
        && let Err(e) = o.commit()
    {
        if let Some(r) = &recovery_target {
            let _ = std::fs::remove_file(r);
        }
        return Err(e);
    }
    done.output_bytes = Some(
        targets_out
            .iter()
            .filter_map(|t| std::fs::metadata(t).ok())
            .map(|m| m.len())
            .sum(),
    );
    done.timings.total = secs(t0.elapsed());
    write_report(args, &guest, &result, &selection, &done)?;
    if !args.quiet {
        eprint!("{}", report::summary(&done, args));
    }
    Ok(exit::OK)
}

fn write_report(
    args: &ScrubArgs,
    guest: &Guest,
    result: &scan::ScanResult,
    selection: &crate::ops::Selection,
    done: &Done,
) -> Result<()> {
    let Some(path) = &args.report else {
        return Ok(());
    };
    let image = args.image.display().to_string();
    let input = crate::report::ReportInput {
        image: &image,
        guest,
        result,
        selection: selection.names(),
    };
    let text = report::json(&input, done, args);
    let mut f = PendingFile::create(path, true)?;
    f.file_mut().write_all(text.as_bytes())?;
    f.commit()
}
