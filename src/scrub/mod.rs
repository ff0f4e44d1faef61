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
mod args;
pub mod capture;
mod editors;
pub mod free;
pub mod recipients;
pub mod report;
pub mod residue;
mod steps;
pub mod swap;
mod tree;
pub mod verify;

pub use self::args::{ABOUT, LONG_ABOUT, ScrubArgs};

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vmscrub_recovery::{ArchiveInfo, ArchiveWriter, ImageInfo, Recipient, WriterOptions};

use self::apply::{Outcome, Step};
use self::capture::{Capture, Captured, Names};
use self::residue::{MAX_FINGERPRINTS, Removed, UnitHasher};
use self::steps::steps_of;
use self::verify::{SweepTarget, Verification};
use crate::cli::usage;
use crate::exit;
use crate::fs::{FileKind, display_path};
use crate::guest::{Guest, GuestFs};
use crate::image::{self, Layout, Volume};
use crate::ops::ActionKind;
use crate::output::same_file;
use crate::output::{self, OutputFormat, OutputImage, PassOptions, PendingFile};
use crate::overlay::Overlay;
use crate::scan::{self, ScanOptions};
use xxhash_rust::xxh3::xxh3_128;

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

/// Everything a scrub did, for the summary and the JSON report.
#[derive(Debug, Default)]
pub struct Done {
    pub outcomes: Vec<Outcome>,
    pub captured: Captured,
    pub zeroed: u64,
    /// Free space made to read as zeros (`free`).
    pub free_zeroed: u64,
    /// Volumes whose editor zeroed their free space with its edits (XFS: one
    /// session, one log rewrite), which the free-space stage skips.
    pub free_done: Vec<crate::image::VolumeKey>,
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
    /// Swap volumes re-initialized (operation `swap`).
    pub swap: Vec<swap::SwapReset>,
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

/// The scrub, as its stages. Each stage is one function below; what a stage
/// refuses, it refuses before anything is written.
pub fn run(args: &ScrubArgs) -> Result<i32> {
    let t0 = Instant::now();
    output::install_interrupt_handler();
    crate::convert::survive_file_size_limit();
    let say = Say { quiet: args.quiet };
    let (cat, selection) = args.select.resolve()?;
    let (recipients, archive_format) = check_args(args)?;
    let verify_on = !args.no_verify && !args.dry_run;
    let threads = args
        .threads
        .map_or_else(vmscrub_parmap::available_threads, usize::from);

    let img = image::open(&args.image, &args.open.options())?;
    for w in &img.info.warnings {
        eprintln!("vmscrub: warning: {w}");
    }
    let (mut out, archive_file, out_format) = open_outputs(args, &img)?;

    let overlay = Arc::new(Overlay::new(img.disk.clone()));
    let mut done = Done {
        output_format: args.output.as_ref().map(|_| out_format.describe()),
        recipients: recipients
            .iter()
            .map(Recipient::fingerprint_string)
            .collect(),
        archive_format: archive_format.name(),
        ..Done::default()
    };
    let layout = replay_journals(args, &overlay, &mut done)?;
    let mut guest = crate::guest::guest_from_layout(&layout);
    refuse_unsafe_inputs(args, &mut guest, &layout, selection.contains("swap"))?;

    say.phase("scanning");
    let t_scan = Instant::now();
    let detectors = scan::content::Detectors::for_selection(&selection)
        .map_err(|e| anyhow::anyhow!("content detectors: {e}"))?;
    let scan_opts = ScanOptions {
        catalogue: &cat,
        selection: &selection,
        keep: args.select.keep.clone(),
        content: detectors.as_ref().map(|d| d as &dyn scan::ContentScanner),
        threads,
        package_trust: !args.select.no_package_trust,
        progress: None,
    };
    let (result, memo) = scan_guest(args, &guest, &scan_opts, verify_on)?;
    let plan = result.plan();
    done.timings.scan = secs(t_scan.elapsed());

    let t_edit = Instant::now();
    let steps = steps_of(&guest, &plan)?;
    let before = tree_snapshot(verify_on, &guest, &steps, memo)?;
    let mut archive = start_archive(
        args,
        &img,
        &selection,
        &recipients,
        archive_format,
        &archive_file,
        threads,
    )?;
    let zero_free = !args.keep_free_space && !apply::fault("keep-freed");
    let targets = edit_filesystems(
        &say,
        &guest,
        &layout,
        steps,
        archive.as_mut(),
        (verify_on, zero_free),
        &mut done,
    )?;
    if selection.contains("swap") {
        reinit_swap(&layout, &mut done)?;
    }
    if zero_free {
        zero_free_space(&guest, &layout, &mut done)?;
    }
    finish_archive(archive, &mut done)?;
    done.timings.edit = secs(t_edit.elapsed());

    let said = Said {
        args,
        guest: &guest,
        result: &result,
        selection: &selection,
    };
    if args.dry_run {
        done.timings.total = secs(t0.elapsed());
        let text = report::plan_text(&done);
        std::io::stdout().write_all(text.as_bytes())?;
        return said.done(&done);
    }

    let Some(out_img) = out.as_mut() else {
        return Err(usage("--output is required unless --dry-run"));
    };
    let t_write = Instant::now();
    write_output(args, &overlay, out_img, threads)?;
    done.timings.write = secs(t_write.elapsed());

    if verify_on {
        let t_verify = Instant::now();
        say.phase("verifying the output");
        let v = verify_output(args, &guest, out_img, &scan_opts, &targets, before.as_ref())?;
        done.timings.verify = secs(t_verify.elapsed());
        let ok = v.ok();
        done.verification = Some(v);
        if !ok {
            done.timings.total = secs(t0.elapsed());
            return said.verification_failed(&done);
        }
    }

    done.output_bytes = Some(commit_outputs(out, archive_file)?);
    done.timings.total = secs(t0.elapsed());
    said.done(&done)
}

/// What the end of a scrub says: the JSON report (if asked) and the summary,
/// or the verification's problems.
struct Said<'a> {
    args: &'a ScrubArgs,
    guest: &'a Guest,
    result: &'a scan::ScanResult,
    selection: &'a crate::ops::Selection,
}

impl Said<'_> {
    fn done(&self, done: &Done) -> Result<i32> {
        write_report(self.args, self.guest, self.result, self.selection, done)?;
        if !self.args.quiet {
            eprint!("{}", report::summary(done, self.args));
        }
        Ok(exit::OK)
    }

    fn verification_failed(&self, done: &Done) -> Result<i32> {
        for p in done.verification.iter().flat_map(|v| &v.problems) {
            eprintln!("vmscrub: verification: {}", crate::report::safe_text(p));
        }
        write_report(self.args, self.guest, self.result, self.selection, done)?;
        eprintln!(
            "vmscrub: error: the output failed verification; it was not kept (nothing was written)"
        );
        Ok(exit::VERIFY_FAILED)
    }
}

/// Usage errors said before the image is opened; the recipients' keys loaded
/// (a bad key is an error before minutes of work).
fn check_args(args: &ScrubArgs) -> Result<(Vec<Recipient>, vmscrub_recovery::ArchiveFormat)> {
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
    let format = args.archive_format.resolve(&recipients)?;
    Ok((recipients, format))
}

/// Creates the outputs (under temporary names) now, so "already exists" or an
/// unwritable directory is said before minutes of work.
fn open_outputs(
    args: &ScrubArgs,
    img: &image::OpenedImage,
) -> Result<(Option<OutputImage>, Option<PendingFile>, OutputFormat)> {
    let resolved = args.output_args.resolve(&args.image, img).map_err(usage)?;
    for w in &resolved.warnings {
        eprintln!("vmscrub: warning: {w}");
    }
    let out_format = resolved.format;
    let out = match (&args.output, args.dry_run) {
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
    Ok((out, archive_file, out_format))
}

/// The image as the scrub sees and edits it.
type Disk = Arc<Overlay<Arc<dyn vmscrub_blockdev::ReadAt>>>;
/// The recovery archive, streaming into its pending file (or nowhere, in a dry run).
type Archive = ArchiveWriter<Box<dyn Write + Send>>;

/// Discovers the layout and replays, in the overlay, every ext3/4 journal that
/// needs recovery, so the scan sees what the guest would see after its next
/// mount and the journal's stale copies are cleared.
fn replay_journals(args: &ScrubArgs, overlay: &Disk, done: &mut Done) -> Result<Layout<Disk>> {
    let discover =
        || image::discover(overlay.clone()).with_context(|| args.image.display().to_string());
    let layout = discover()?;
    let mut replayed = false;
    for v in &layout.volumes {
        use vmscrub_fsprobe::Kind;
        if !matches!(v.filesystem.kind, Kind::Ext3 | Kind::Ext4 | Kind::Ext2) {
            continue;
        }
        let name = v.name();
        match crate::journal::recover(v.device.clone()) {
            Ok(Some(note)) => {
                if !args.quiet {
                    eprintln!("vmscrub: {name}: {note}");
                }
                done.notes.push(format!("{name}: {note}"));
                replayed = true;
            }
            Ok(None) => {}
            // Kept as it is, the stale journal would be replayed over the
            // scrub's edits at the first mount (and bring back what it holds).
            Err(e) => bail!(
                "{name}: the journal needs recovery and cannot be replayed ({e:#}); nothing was written \
                 (replay it with e2fsck on a copy first)"
            ),
        }
    }
    if replayed {
        // The probe's view (flags, the "needs recovery" warning) predates the replay.
        return discover();
    }
    Ok(layout)
}

/// Every refusal that comes before any work, each saying why and what to do:
/// what vmscrub cannot edit safely (a filesystem read through a backup
/// superblock, free space the witnesses disagree on), cannot read, or cannot
/// place (no OS to apply path rules to). Nothing has been written yet.
fn refuse_unsafe_inputs(
    args: &ScrubArgs,
    guest: &mut Guest,
    layout: &Layout<Disk>,
    swap_on: bool,
) -> Result<()> {
    guest.require_readable(&args.image)?;
    guest.require_os(&args.image, args.select.data_volume)?;
    refuse_damaged(args, guest, swap_on)?;
    refuse_backup_superblocks(layout)?;
    free::refuse_disagreeing(guest, layout)
}

/// A filesystem read through a backup superblock is for reading only: its
/// primary is damaged, the backup's counters and flags may be stale, and an
/// edit would be made on a guess. `--allow-unreadable` does not override this:
/// the filesystem is readable, so skipping it would publish it unscrubbed.
fn refuse_backup_superblocks<D>(layout: &image::Layout<D>) -> Result<()> {
    let damaged: Vec<String> = layout
        .volumes
        .iter()
        .filter_map(|v| {
            let b = crate::guest::backup_superblock(v)?;
            Some(format!(
                "{}: its primary superblock is damaged (read through the backup at block {}; \
                 repair a copy with `e2fsck -b {} -B {}` and scrub that)",
                v.name(),
                b.block,
                b.block,
                b.block_size
            ))
        })
        .collect();
    if damaged.is_empty() {
        return Ok(());
    }
    bail!(
        "vmscrub edits only filesystems whose primary superblock is intact; nothing was written: {}",
        damaged.join("; ")
    )
}

/// A filesystem vmscrub reads but could not open is damaged: its secrets would
/// ship unexamined, so that refuses the scrub. One it does not read at all
/// (swap, btrfs, LUKS) is said.
fn refuse_damaged(args: &ScrubArgs, guest: &Guest, swap_on: bool) -> Result<()> {
    let mut damaged: Vec<String> = Vec::new();
    for u in &guest.unreadable {
        if swap_on && u.identity.fs_type.as_deref() == Some("swap") {
            continue; // re-initialized by the `swap` operation, and said then
        }
        // An LVM2 PV whose volume group cannot be put together (a PV missing,
        // metadata that contradicts itself) hides LVs vmscrub would read.
        let ours = matches!(
            u.identity.fs_type.as_deref(),
            Some("ext2" | "ext3" | "ext4" | "vfat" | "xfs" | "LVM2_member")
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
    if damaged.is_empty() {
        return Ok(());
    }
    bail!(
        "{} could not be read, so it cannot be scrubbed; nothing was written \
         (repair a copy with e2fsck/fsck.fat/vgcfgrestore, or pass --allow-unreadable to scrub the rest): {}",
        if damaged.len() == 1 {
            "a filesystem"
        } else {
            "filesystems"
        },
        damaged.join("; ")
    )
}

/// Scans with a progress spinner; what could not be read refuses the scrub
/// (unless --allow-unreadable), since what it holds is unknown. With
/// `digests`, also takes every file's content digest (for verification's tree
/// comparison).
fn scan_guest(
    args: &ScrubArgs,
    guest: &Guest,
    opts: &ScanOptions<'_>,
    digests: bool,
) -> Result<(scan::ScanResult, scan::ContentMemo)> {
    let progress = Arc::new(scan::ScanProgress::default());
    let opts = ScanOptions {
        progress: Some(&progress),
        keep: opts.keep.clone(),
        ..*opts
    };
    let spinner = {
        let p = progress.clone();
        crate::progress::Spinner::start(!args.quiet, "scanning", move || p.describe())
    };
    let mode = if digests {
        scan::Digests::Take
    } else {
        scan::Digests::Off
    };
    let (result, memo) = scan::scan_digesting(guest, &opts, mode).map_err(usage)?;
    drop(spinner);
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
            f.action.label_for(f.kind),
            crate::report::safe_path(&f.path),
            f.operation,
            crate::report::safe_text(f.note.as_deref().unwrap_or("skipped"))
        );
    }
    Ok((result, memo))
}

/// The archive writer, when --recovery asks for one (a dry run encodes into
/// nothing, so its refusals and counts are the real run's).
fn start_archive(
    args: &ScrubArgs,
    img: &image::OpenedImage,
    selection: &crate::ops::Selection,
    recipients: &[Recipient],
    archive_format: vmscrub_recovery::ArchiveFormat,
    archive_file: &Option<PendingFile>,
    threads: usize,
) -> Result<Option<Archive>> {
    if args.recovery.is_none() {
        return Ok(None);
    }
    let sink: Box<dyn Write + Send> = match archive_file {
        Some(f) => Box::new(io::BufWriter::with_capacity(
            1 << 20,
            f.file()
                .try_clone()
                .context("cannot reopen the recovery file")?,
        )),
        None => Box::new(io::sink()),
    };
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
    Ok(Some(
        ArchiveWriter::new(sink, recipients, info, &opts)
            .context("cannot start the recovery archive")?,
    ))
}

/// Completes the recovery archive once everything it holds was captured.
fn finish_archive(archive: Option<Archive>, done: &mut Done) -> Result<()> {
    if let Some(a) = archive {
        done.archive_entries = a.manifest().files.len() as u64;
        a.finish()
            .context("cannot complete the recovery archive")?
            .flush()
            .context("cannot write the recovery archive")?;
    }
    Ok(())
}

/// Captures and edits every filesystem the plan touches; returns what the
/// verification's sweep must not find.
fn edit_filesystems(
    say: &Say,
    guest: &Guest,
    layout: &Layout<Disk>,
    steps: Vec<Step>,
    mut archive: Option<&mut Archive>,
    (verify_on, zero_free): (bool, bool),
    done: &mut Done,
) -> Result<Vec<SweepTarget>> {
    let names = Names::from_guest(guest);
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
        let Some(vol) = volume_of(layout, gfs) else {
            bail!("{}: its volume disappeared", gfs.identity.describe());
        };
        let unit = gfs.fs.storage_unit();
        let mut removed = verify_on.then(|| Removed::new(unit));
        let per_step = capture_steps(
            gfs,
            &names,
            steps,
            archive.as_deref_mut(),
            removed.as_mut(),
            &mut budget,
        )?;
        let applied = apply::apply(
            vol.device.clone(),
            gfs.fs.fs_type(),
            &gfs.identity.describe(),
            steps,
            zero_free,
        )?;
        if let Some(n) = applied.free_zeroed {
            done.free_zeroed += n;
            done.free_done.push(gfs.identity.volume_key());
        }
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
                volume: gfs.identity.volume_key(),
                label: gfs.identity.describe(),
                unit,
                prints: r.target_set(&applied.survivors),
                edited: steps
                    .iter()
                    .filter_map(|s| Some((s.fs_path.clone(), xxh3_128(s.content.as_ref()?))))
                    .collect(),
            });
        }
    }
    Ok(targets)
}

fn volume_of<'a>(layout: &'a Layout<Disk>, gfs: &GuestFs) -> Option<&'a Volume<Disk>> {
    layout
        .volumes
        .iter()
        .find(|v| v.key() == gfs.identity.volume_key())
}

/// Reads every file a step removes once, into the archive and into the
/// fingerprints; a rewrite's new content is fingerprinted as kept, so the sweep
/// does not flag what stays.
fn capture_steps(
    gfs: &GuestFs,
    names: &Names,
    steps: &[Step],
    archive: Option<&mut Archive>,
    mut removed: Option<&mut Removed>,
    budget: &mut usize,
) -> Result<Vec<Captured>> {
    let mut per_step: Vec<Captured> = Vec::with_capacity(steps.len());
    {
        let mut cap = Capture {
            fs: &*gfs.fs,
            archive,
            names,
            removed: removed.as_deref_mut(),
            budget,
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
                .with_context(|| format!("reading {} before removing it", display_path(&s.path)))?;
            per_step.push(c);
        }
    }
    if let Some(r) = removed {
        let unit = gfs.fs.storage_unit();
        for c in steps.iter().filter_map(|s| s.content.as_ref()) {
            let mut h = UnitHasher::new(unit, usize::MAX);
            h.feed(0, c);
            r.kept.extend(h.finish().0);
        }
    }
    Ok(per_step)
}

/// Zeroes every block no file owns, on every filesystem vmscrub reads. Free
/// space that cannot be told refuses the scrub: a warning would ship whatever
/// deleted secrets it holds, and a guess could zero live data.
fn zero_free_space(guest: &Guest, layout: &Layout<Disk>, done: &mut Done) -> Result<()> {
    for gfs in &guest.filesystems {
        let Some(vol) = volume_of(layout, gfs) else {
            continue;
        };
        if done.free_done.contains(&gfs.identity.volume_key()) {
            continue;
        }
        let zeroed = free::zero_free_space(vol.device.clone(), gfs.fs.fs_type());
        if zeroed.is_err() {
            crate::output::check_interrupted()?; // Ctrl-C stops; it is not a free-space problem
        }
        done.free_zeroed += zeroed
            .with_context(|| format!("{}: free space cannot be zeroed", gfs.identity.describe()))?;
    }
    for (vg, n) in free::zero_unused_lvm(layout)? {
        done.free_zeroed += n;
        done.notes.push(format!(
            "LVM2 volume group {vg}: {} of free extents and unused PV space zeroed (label and metadata areas kept)",
            crate::inspect::human_size(n)
        ));
    }
    Ok(())
}

/// Gives every swap volume a fresh header and zeroed page slots (see `swap`).
fn reinit_swap(layout: &Layout<Disk>, done: &mut Done) -> Result<()> {
    for vol in &layout.volumes {
        if let Some(r) = swap::reinit(&vol.name(), vol.filesystem.kind, &vol.device)? {
            done.swap.push(r);
        }
    }
    Ok(())
}

/// One sequential pass over base + overlay into the output; the disk flush goes
/// on in the background while verification reads the output back.
fn write_output(
    args: &ScrubArgs,
    overlay: &Disk,
    out_img: &mut OutputImage,
    threads: usize,
) -> Result<()> {
    let pass = PassOptions {
        threads,
        progress: !args.quiet,
        label: "writing".into(),
    };
    let target = args.output.clone().unwrap_or_default();
    output::write_image(&**overlay, out_img.sink(), &pass)
        .with_context(|| format!("writing {} failed; nothing was written", target.display()))?;
    out_img.finish()?;
    out_img.sync_in_background()?;
    Ok(())
}

/// Reopens the written output with vmscrub's own readers, rescans it and sweeps
/// it for the removed content's fingerprints.
fn verify_output(
    args: &ScrubArgs,
    guest: &Guest,
    out_img: &mut OutputImage,
    scan_opts: &ScanOptions<'_>,
    targets: &[SweepTarget],
    before: Option<&tree::Snapshot>,
) -> Result<Verification> {
    let disk = out_img.reopen()?;
    let expected = verify::expected_filesystems(guest);
    let progress = Arc::new(scan::ScanProgress::default());
    let opts = ScanOptions {
        progress: Some(&progress),
        keep: scan_opts.keep.clone(),
        ..*scan_opts
    };
    let spinner = {
        let p = progress.clone();
        crate::progress::Spinner::start(!args.quiet, "verifying", move || p.describe())
    };
    let v = verify::verify(disk, &expected, &opts, targets, before)?;
    drop(spinner);
    Ok(v)
}

/// The input's trees before any edit, for [`compare_trees`] (none without
/// verification; debug builds measure its cost with `VMSCRUB_FAULT=no-tree`).
fn tree_snapshot(
    on: bool,
    guest: &Guest,
    steps: &[Step],
    memo: scan::ContentMemo,
) -> Result<Option<tree::Snapshot>> {
    (on && !apply::fault("no-tree"))
        .then(|| tree::snapshot(guest, steps, memo))
        .transpose()
}

/// Renames the archive and the output into place; returns the output's size.
/// If the output cannot be committed, the archive is taken back too, so a
/// failed scrub leaves nothing.
fn commit_outputs(out: Option<OutputImage>, archive_file: Option<PendingFile>) -> Result<u64> {
    let targets_out = out.as_ref().map(OutputImage::targets).unwrap_or_default();
    let recovery_target = archive_file.as_ref().map(|f| f.target().to_path_buf());
    if let Some(f) = archive_file {
        f.commit()?;
    }
    if let Some(o) = out
        && let Err(e) = o.commit()
    {
        if let Some(r) = &recovery_target {
            let _ = std::fs::remove_file(r);
        }
        return Err(e);
    }
    Ok(targets_out
        .iter()
        .filter_map(|t| std::fs::metadata(t).ok())
        .map(|m| m.len())
        .sum())
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
