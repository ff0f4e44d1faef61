//! `vmscrub batch`: a repository of images through the single-image verbs.
//!
//! ```text
//! discover (sniff every file) → sort → shard → per image, on --jobs threads:
//!   identity → state says done and unchanged? → skip : scan/scrub → report
//! → main thread: state record (committed at once), JSON line, progress
//! → summary table, exit code over the batch
//! ```
//!
//! Decisions:
//! - **One image's failure is not the batch's**: an error or a panic on hostile
//!   data fails that image with its reason; the others go on, and the exit code
//!   (5) says some failed.
//! - **Only the main thread writes** the state and the JSON lines, each as its
//!   image finishes, so Ctrl-C loses only the images in progress.
//! - **A record vouches only for the same bytes under the same configuration**:
//!   anything else (a touched file, other operations, another vmscrub) redoes
//!   the image.

mod args;
pub mod discover;
pub mod job;
mod lines;
pub mod state;

pub use self::args::{
    ABOUT, BatchArgs, BatchScanArgs, BatchScrubArgs, BatchVerb, CommonArgs, LONG_ABOUT,
};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use self::discover::Image;
use self::job::Done;
use self::lines::{Line, Lines, Status, Summary};
use self::state::{Record, State};
use crate::cli::usage;
use crate::exit;
use crate::ops::{Catalogue, Selection};
use crate::report::policy::FailOn;

/// Exit code: some images could not be processed.
pub const SOME_FAILED: i32 = exit::BATCH_INCOMPLETE;

pub fn run(args: &BatchArgs) -> Result<i32> {
    match &args.verb {
        BatchVerb::Scan(a) => run_verb(&a.common, None),
        BatchVerb::Scrub(a) => run_verb(&a.common, Some(a)),
    }
}

/// Everything a worker needs, shared read-only.
struct Ctx<'a> {
    common: &'a CommonArgs,
    scrub: Option<&'a BatchScrubArgs>,
    cat: Catalogue,
    selection: Selection,
    config: String,
    state: State,
    /// Threads per image; 0: the verb's default (one per core).
    threads: usize,
}

/// How far the run is, for the progress display.
#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    running: AtomicUsize,
    failed: AtomicUsize,
    bytes_done: AtomicU64,
}

fn run_verb(common: &CommonArgs, scrub: Option<&BatchScrubArgs>) -> Result<i32> {
    let t0 = Instant::now();
    crate::output::install_interrupt_handler();
    let (cat, selection) = common.select.resolve()?;
    let fail_on = FailOn::parse(&cat, &common.fail_on).map_err(usage)?;
    if let Some(s) = scrub {
        s.output_args.check().map_err(usage)?;
        std::fs::create_dir_all(&s.out).with_context(|| format!("{}", s.out.display()))?;
        if let Some(r) = &s.recovery_dir {
            std::fs::create_dir_all(r).with_context(|| format!("{}", r.display()))?;
        }
    }
    if let Some(d) = &common.report_dir {
        std::fs::create_dir_all(d).with_context(|| format!("{}", d.display()))?;
    }
    let config = config_digest(common, scrub, &selection)?;
    let exclude: Vec<PathBuf> = [
        scrub.map(|s| s.out.clone()),
        common.report_dir.clone(),
        scrub.and_then(|s| s.recovery_dir.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let found = discover::discover(&common.paths, &exclude)?;
    let (images, skipped) = shard(found, common.shard);
    let state = State::open(&state_path(common, scrub))?;
    let cores = vmscrub_parmap::available_threads();
    let jobs = usize::from(common.jobs);
    let threads = match common.threads {
        Some(t) => usize::from(t),
        None if jobs == 1 && scrub.is_none() => 0,
        None => (cores / jobs).max(1),
    };
    let ctx = Ctx {
        common,
        scrub,
        cat,
        selection,
        config,
        state,
        threads,
    };
    let mut lines = Lines::create(common.report.as_deref())?;
    let mut summary = Summary::default();
    for s in &skipped {
        let line = Line::skipped(&s.path, &s.reason);
        summary.add(&line);
        lines.write(&line)?;
    }
    let failed_on = process_all(&ctx, &images, jobs, &fail_on, &mut lines, &mut summary)?;
    summary.seconds = t0.elapsed().as_secs_f64();
    eprint!("{}", summary.table());
    if crate::output::check_interrupted().is_err() {
        eprintln!("vmscrub: interrupted; finished images are recorded, rerun to go on");
        return Ok(130);
    }
    if summary.failed > 0 {
        eprintln!("vmscrub: {} images could not be processed", summary.failed);
        return Ok(SOME_FAILED);
    }
    if failed_on > 0 {
        eprintln!("vmscrub: {failed_on} images have findings matching --fail-on");
        return Ok(exit::FINDINGS);
    }
    Ok(exit::OK)
}

/// Runs the images on `jobs` threads; the main thread records each as it
/// finishes. Returns how many images matched the `--fail-on` policy.
fn process_all(
    ctx: &Ctx<'_>,
    images: &[Image],
    jobs: usize,
    fail_on: &FailOn,
    lines: &mut Lines,
    summary: &mut Summary,
) -> Result<usize> {
    let tally = Arc::new(Tally::default());
    let total_bytes: u64 = images
        .iter()
        .filter_map(|i| std::fs::metadata(&i.path).ok())
        .map(|m| m.len())
        .sum();
    let spinner = {
        let (t, n, start) = (tally.clone(), images.len(), Instant::now());
        crate::progress::Spinner::start(!ctx.common.quiet, "batch", move || {
            lines::describe(&t, n, total_bytes, start)
        })
    };
    let next = AtomicUsize::new(0);
    let mut matched = 0;
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = mpsc::channel::<(usize, Line)>();
        for _ in 0..jobs.min(images.len()) {
            let tx = tx.clone();
            let (next, tally) = (&next, &tally);
            scope.spawn(move || {
                while crate::output::check_interrupted().is_ok() {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(img) = images.get(i) else { break };
                    tally.running.fetch_add(1, Ordering::SeqCst);
                    let line = process(ctx, img);
                    tally.running.fetch_sub(1, Ordering::SeqCst);
                    if line.status == Status::Failed {
                        tally.failed.fetch_add(1, Ordering::SeqCst);
                    }
                    tally.done.fetch_add(1, Ordering::SeqCst);
                    if crate::scrub::apply::fault("batch-interrupt") {
                        // Tests: Ctrl-C right after the first image finished.
                        crate::output::simulate_interrupt();
                    }
                    let size = line.identity.as_ref().map_or(0, |i| i.size);
                    tally.bytes_done.fetch_add(size, Ordering::SeqCst);
                    if tx.send((i, line)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, line) in rx {
            let Some(img) = images.get(i) else { continue };
            record(ctx, img, &line)?;
            if line.status != Status::Failed
                && fail_on
                    .evaluate_counts(&line.counts, line.warnings)
                    .is_some()
            {
                matched += 1;
            }
            summary.add(&line);
            lines.write(&line)?;
        }
        Ok(())
    })?;
    drop(spinner);
    Ok(matched)
}

/// Keeps what finished in the state (committed before the next image is
/// recorded); forgets what failed.
fn record(ctx: &Ctx<'_>, img: &Image, line: &Line) -> Result<()> {
    match (&line.status, &line.identity) {
        (Status::Ok, Some(identity)) => ctx.state.put(
            &img.path,
            &Record {
                identity: identity.clone(),
                config: ctx.config.clone(),
                findings: line.counts.clone(),
                warnings: line.warnings,
                output: line.output.clone(),
                report: line.report.clone(),
            },
        ),
        (Status::Failed, _) if !line.interrupted => ctx.state.remove(&img.path),
        _ => Ok(()),
    }
}

/// One image: skipped when the state vouches for it, else processed.
fn process(ctx: &Ctx<'_>, img: &Image) -> Line {
    let t0 = Instant::now();
    let identity = match state::identity(&img.path, ctx.common.verify_digests) {
        Ok(i) => i,
        Err(e) => return Line::failed(img, None, format!("cannot be read: {e}")),
    };
    let previous = ctx.state.get(&img.path).ok().flatten();
    if let Some(rec) = &previous
        && state::unchanged(rec, &identity, &ctx.config, ctx.common.verify_digests)
        && rec.output.as_ref().is_none_or(|o| o.exists())
    {
        return Line::unchanged(img, identity, rec);
    }
    let done = job::guarded(|| match ctx.scrub {
        None => scan_one(ctx, img),
        Some(s) => scrub_one(ctx, s, img, previous.is_some()),
    });
    let mut line = Line::processed(img, identity, done, &ctx.common.report_dir);
    line.seconds = t0.elapsed().as_secs_f64();
    line
}

fn report_path(ctx: &Ctx<'_>, img: &Image) -> Result<Option<PathBuf>> {
    let Some(dir) = &ctx.common.report_dir else {
        return Ok(None);
    };
    let path = dir.join(format!("{}.json", img.name));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok(Some(path))
}

fn scan_one(ctx: &Ctx<'_>, img: &Image) -> Result<Done> {
    let (guest, result) = job::scan_image(
        &img.path,
        &ctx.common.select,
        &ctx.cat,
        &ctx.selection,
        ctx.threads,
        None,
    )?;
    let text = job::json_report(&img.path, &guest, &result, &ctx.selection);
    if let Some(path) = report_path(ctx, img)? {
        use std::io::Write;
        let mut out = crate::output::PendingFile::create(&path, true)?;
        out.file_mut().write_all(text.as_bytes())?;
        out.commit()?;
    }
    Ok(Done {
        failure: None,
        report: Some(serde_json::from_str(&text)?),
        output: None,
    })
}

/// The output's name: the image's, with -O's extension when a format is asked.
fn output_name(name: &str, s: &BatchScrubArgs) -> String {
    let format = s
        .output_args
        .output_format
        .or(s.output_args.subformat.map(|f| f.container()));
    let Some(format) = format else {
        return name.to_string();
    };
    let ext = match format!("{format:?}").to_lowercase().as_str() {
        "raw" => "img".to_string(),
        other => other.to_string(),
    };
    Path::new(name)
        .with_extension(ext)
        .to_string_lossy()
        .into_owned()
}

/// `vmscrub scrub IMAGE -o OUT/NAME` through [`crate::scrub::run`]. `ours`: a
/// previous run recorded this image, so its old output may be replaced.
fn scrub_one(ctx: &Ctx<'_>, s: &BatchScrubArgs, img: &Image, ours: bool) -> Result<Done> {
    let out = s.out.join(output_name(&img.name, s));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let scratch = tempfile::tempdir()?;
    let report = report_path(ctx, img)?.unwrap_or_else(|| scratch.path().join("report.json"));
    let recovery = s
        .recovery_dir
        .as_ref()
        .map(|d| d.join(format!("{}.tar.zst.age", img.name)));
    if let Some(parent) = recovery.as_ref().and_then(|r| r.parent()) {
        std::fs::create_dir_all(parent)?;
    }
    let args = crate::scrub::ScrubArgs {
        image: img.path.clone(),
        output: Some(out.clone()),
        select: ctx.common.select.clone(),
        dry_run: false,
        recovery,
        recipient: s.recipient.clone(),
        archive_format: Default::default(),
        report: Some(report.clone()),
        no_verify: s.no_verify,
        keep_free_space: s.keep_free_space,
        allow_unreadable: s.allow_unreadable,
        output_args: s.output_args.clone(),
        force: ours,
        quiet: true,
        open: s.open.clone(),
        threads: u16::try_from(ctx.threads.max(1)).ok(),
    };
    let code = crate::scrub::run(&args)?;
    let report = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let failure = match code {
        exit::OK => None,
        exit::VERIFY_FAILED => Some("the output failed verification; it was not kept".into()),
        other => Some(format!("scrub exited with {other}")),
    };
    Ok(Done {
        output: failure.is_none().then_some(out),
        failure,
        report,
    })
}

/// Shard K/N of the sorted images; files that are not images go to shard 0.
fn shard(
    found: discover::Found,
    shard: Option<(usize, usize)>,
) -> (Vec<Image>, Vec<discover::Skipped>) {
    let Some((k, n)) = shard else {
        return (found.images, found.skipped);
    };
    let images = found
        .images
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % n == k)
        .map(|(_, img)| img)
        .collect();
    let skipped = if k == 0 { found.skipped } else { Vec::new() };
    (images, skipped)
}

/// `--state`, or `.vmscrub-batch.redb` in the report directory, the output
/// directory, beside the JSON lines, or here. A shard gets a file of its own
/// (`.vmscrub-batch-K-of-N.redb`): redb locks its file, and shards writing
/// into one directory must not wait on each other.
fn state_path(common: &CommonArgs, scrub: Option<&BatchScrubArgs>) -> PathBuf {
    if let Some(s) = &common.state {
        return s.clone();
    }
    let name = match common.shard {
        Some((k, n)) => format!(".vmscrub-batch-{k}-of-{n}.redb"),
        None => ".vmscrub-batch.redb".to_string(),
    };
    let dir = common
        .report_dir
        .clone()
        .or_else(|| scrub.map(|s| s.out.clone()))
        .or_else(|| {
            common
                .report
                .as_ref()
                .and_then(|r| r.parent())
                .map(Path::to_path_buf)
        })
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    dir.join(name)
}

/// Everything that changes what an image's processing gives: a record made
/// under another digest does not vouch for the image.
fn config_digest(
    common: &CommonArgs,
    scrub: Option<&BatchScrubArgs>,
    selection: &Selection,
) -> Result<String> {
    let file_digest = |p: &PathBuf| -> String {
        match std::fs::read(p) {
            Ok(b) => format!("{:x}", Sha256::digest(&b)),
            Err(_) => p.display().to_string(),
        }
    };
    let select = &common.select;
    let config = serde_json::json!({
        "vmscrub": env!("CARGO_PKG_VERSION"),
        "verb": if scrub.is_some() { "scrub" } else { "scan" },
        "operations": selection.names(),
        "keep": select.keep,
        "rules": select.rules.iter().map(file_digest).collect::<Vec<_>>(),
        "data_volume": select.data_volume,
        "no_package_trust": select.no_package_trust,
        "report_dir": common.report_dir.as_ref().map(|d| abs(d)),
        "scrub": scrub.map(|s| serde_json::json!({
            "out": abs(&s.out),
            "output": format!("{:?}", s.output_args),
            "recovery_dir": s.recovery_dir.as_ref().map(|d| abs(d)),
            "recipients": s.recipient.iter().map(file_digest).collect::<Vec<_>>(),
            "no_verify": s.no_verify,
            "keep_free_space": s.keep_free_space,
            "allow_unreadable": s.allow_unreadable,
            "open": format!("{:?}", s.open),
        })),
    });
    Ok(format!(
        "sha256:{:x}",
        Sha256::digest(serde_json::to_vec(&config)?)
    ))
}

fn abs(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}
