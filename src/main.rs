//! The `vmscrub` command: argument parsing and one function per verb. Everything
//! else lives in the library so it can be tested without a process.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use vmscrub::cli::{SelectArgs, Usage, catalogue, usage};
use vmscrub::exit;
use vmscrub::report::{self, Format, ReportInput, policy::FailOn};
use vmscrub::scan;

/// Offline disk-image sanitizer: opens raw, qcow2 and VMDK images without booting
/// them, finds secrets and per-instance state, and writes a cleaned copy plus an
/// encrypted recovery archive of everything removed. The input is never modified.
#[derive(Parser, Debug)]
#[command(name = "vmscrub", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(about = vmscrub::inspect::ABOUT, long_about = vmscrub::inspect::LONG_ABOUT)]
    Inspect(vmscrub::inspect::InspectArgs),
    #[command(about = vmscrub::browse::LS_ABOUT, long_about = vmscrub::browse::LS_LONG_ABOUT)]
    Ls(vmscrub::browse::LsArgs),
    #[command(about = vmscrub::browse::CAT_ABOUT, long_about = vmscrub::browse::CAT_LONG_ABOUT)]
    Cat(vmscrub::browse::CatArgs),
    #[command(about = vmscrub::convert::ABOUT, long_about = vmscrub::convert::LONG_ABOUT)]
    Convert(vmscrub::convert::ConvertArgs),
    /// List the operations catalogue (name, `*` if on by default, heading)
    #[command(long_about = OPERATIONS_LONG_ABOUT)]
    Operations(OperationsArgs),
    /// Audit an image (or an unpacked root directory): every finding, with why
    #[command(long_about = SCAN_LONG_ABOUT)]
    Scan(ScanArgs),
    #[command(about = vmscrub::scrub::ABOUT, long_about = vmscrub::scrub::LONG_ABOUT)]
    Scrub(vmscrub::scrub::ScrubArgs),
    /// Decrypt a recovery archive back to a plain tar, a directory, or a listing.
    Recover(vmscrub::recover::RecoverArgs),
    #[command(about = vmscrub::batch::ABOUT, long_about = vmscrub::batch::LONG_ABOUT)]
    Batch(vmscrub::batch::BatchArgs),
}

const SCAN_LONG_ABOUT: &str = "Audit an image (raw, qcow2, VMDK) or a directory holding an \
unpacked root filesystem: every finding of the selected operations and content detectors, with \
why, as a human report, JSON (docs/scan-json.md) or SARIF. Nothing is modified.\n\n\
The input must hold an operating system (an /etc/os-release): an image or directory without \
one is an error (exit 3), so a wrong path fails a CI job instead of passing it. Scan a bare \
data volume with --data-volume (content detectors only).\n\n\
Operations that need the running guest (customize, script, lvm-uuids, fs-uuids, \
flag-reconfiguration) are off by default: offline they can do nothing, and `vmscrub \
operations --verbose` says why for each.\n\n\
Exit codes: 0 nothing matched --fail-on; 1 a finding matched --fail-on; 2 usage; 3 error \
(unreadable or unexpected input: no filesystem, no operating system).";

/// The catalogue, and which operations cannot be done offline.
const OPERATIONS_LONG_ABOUT: &str = "List the operations catalogue: name, `*` if on by \
default, heading. `--verbose` adds each operation's rules (paths, actions, guards).\n\n\
Operations whose heading says \"(not performed offline)\" need the running guest (they run \
programs in it or change block devices) and have no rule vmscrub could apply to an image: \
they are off by default, and selecting one only adds a note to the scan report saying why.";

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ListFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
struct OperationsArgs {
    #[arg(long, value_enum, default_value = "text")]
    format: ListFormat,
    /// Show each operation's rules: paths, actions, guards
    #[arg(long, short)]
    verbose: bool,
    /// Rule files whose operations are listed too
    #[arg(long, value_name = "FILE")]
    rules: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct ScanArgs {
    /// Disk image, or a directory holding an unpacked root filesystem
    image: PathBuf,
    #[command(flatten)]
    select: SelectArgs,
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Write the report here instead of stdout (atomically)
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Exit 1 if findings match: `finding`, `secret`, `warning` or operation
    /// names (comma-separated; repeatable). Without it, findings exit 0
    #[arg(long = "fail-on", value_name = "POLICY")]
    fail_on: Vec<String>,
    /// Content-scanning threads (default: one per core)
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// No progress display; the human report is printed only when it has a
    /// finding or a warning, so a clean image prints nothing (JSON and SARIF
    /// documents, and --output files, are always written whole)
    #[arg(long, short)]
    quiet: bool,
}

fn operations(args: OperationsArgs) -> anyhow::Result<i32> {
    let cat = catalogue(&args.rules)?;
    let mut out = String::new();
    match args.format {
        ListFormat::Json => {
            out = serde_json::to_string_pretty(&cat.operations)?;
            out.push('\n');
        }
        ListFormat::Text => {
            let width = cat
                .operations
                .iter()
                .map(|o| o.name.len())
                .max()
                .unwrap_or(0);
            for op in &cat.operations {
                out.push_str(&format!(
                    "{:<width$} {} {}\n",
                    op.name,
                    if op.default { "*" } else { " " },
                    op.heading
                ));
                if args.verbose {
                    if !op.os.is_empty() {
                        out.push_str(&format!("{:width$}     guard: {}\n", "", op.os));
                    }
                    for r in &op.rules {
                        let what = if r.content {
                            "content detectors".to_string()
                        } else {
                            r.paths.join(" ")
                        };
                        out.push_str(&format!("{:width$}     {}: {}\n", "", r.action, what));
                        if !r.except.is_empty() {
                            out.push_str(&format!(
                                "{:width$}       except: {}\n",
                                "",
                                r.except.join(" ")
                            ));
                        }
                        if let Some(d) = &r.drop_lines {
                            out.push_str(&format!("{:width$}       drop lines: {d}\n", ""));
                        }
                        if let Some(rep) = &r.replace {
                            out.push_str(&format!(
                                "{:width$}       replace with: {}\n",
                                "",
                                rep.escape_default()
                            ));
                        }
                    }
                    if let Some(n) = &op.needs_guest {
                        out.push_str(&format!("{:width$}     not performed offline: {n}\n", ""));
                    }
                }
            }
        }
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(exit::OK)
}

fn scan_verb(args: ScanArgs) -> anyhow::Result<i32> {
    let (cat, selection) = args.select.resolve()?;
    let fail_on = FailOn::parse(&cat, &args.fail_on).map_err(usage)?;
    let progress = std::sync::Arc::new(scan::ScanProgress::default());
    let spinner = {
        let p = progress.clone();
        vmscrub::progress::Spinner::start(!args.quiet, "scanning", move || p.describe())
    };
    // The same function `vmscrub batch scan` runs for each image.
    let (guest, result) = vmscrub::batch::job::scan_image(
        &args.image,
        &args.select,
        &cat,
        &selection,
        args.threads,
        Some(&progress),
    )?;
    drop(spinner);
    let image = args.image.display().to_string();
    let text = report::render(
        args.format,
        &ReportInput {
            image: &image,
            guest: &guest,
            result: &result,
            selection: selection.names(),
        },
    );
    match &args.output {
        Some(path) => {
            // A report is replaced freely (force): it is ours, not the user's data.
            let mut out = vmscrub::output::PendingFile::create(path, true)?;
            out.file_mut().write_all(text.as_bytes())?;
            out.commit()?;
        }
        None => {
            let nothing = result.findings.is_empty() && result.warnings.is_empty();
            if !(args.quiet && nothing && matches!(args.format, Format::Human)) {
                std::io::stdout().write_all(text.as_bytes())?;
            }
        }
    }
    if let Some(reason) = fail_on.evaluate(&result) {
        eprintln!("vmscrub: {reason}");
        return Ok(exit::FINDINGS);
    }
    Ok(exit::OK)
}

fn main() {
    let cli = Cli::parse();
    let result: anyhow::Result<i32> = match cli.command {
        Command::Inspect(args) => vmscrub::inspect::run(&args),
        Command::Ls(args) => vmscrub::browse::ls(&args),
        Command::Cat(args) => vmscrub::browse::cat(&args),
        Command::Convert(args) => vmscrub::convert::run(&args),
        Command::Operations(a) => operations(a),
        Command::Scan(a) => scan_verb(a),
        Command::Scrub(args) => vmscrub::scrub::run(&args),
        Command::Recover(args) => vmscrub::recover::run(&args),
        Command::Batch(args) => vmscrub::batch::run(&args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) if e.downcast_ref::<Usage>().is_some() => {
            eprintln!("vmscrub: {e:#}");
            std::process::exit(exit::USAGE);
        }
        Err(e) => {
            eprintln!("vmscrub: error: {e:#}");
            std::process::exit(exit::ERROR);
        }
    }
}
