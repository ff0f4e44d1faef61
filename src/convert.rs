//! `vmscrub convert`: the plain-copy path — open, an [`Overlay`] with no changes,
//! the output pass, commit. It exists to debug the readers and writers on their
//! own and to change an image's format; `scrub` writes through exactly the same
//! sinks and pass.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::exit;
use crate::image;
use crate::output::{self, OutputArgs, PassOptions, same_file};
use crate::overlay::Overlay;

/// Moved to [`crate::output`] with the other output options.
pub use crate::output::FormatArg;

pub const ABOUT: &str = "Copy an image into another format, unchanged (plain copy / debugging)";

pub const LONG_ABOUT: &str = "Copy an image into another (or the same) container format without \
changing a byte of the virtual disk: raw, qcow2 or VMDK in; raw, qcow2 or VMDK \
(streamOptimized, monolithicSparse, monolithicFlat) out. This is the plain-copy path of the \
pipeline — open, an overlay with no changes, one sequential pass, commit — useful to debug \
the readers and writers and to change formats; it scrubs nothing (use `scrub` for that).\n\n\
The output format defaults to the input's; a VMDK is written as streamOptimized (what OVA \
packages and cloud importers take) unless --subformat says otherwise. Ranges the input does \
not allocate and all-zero grains or clusters are never written: they stay holes or \
unallocated grains/clusters. A new VMDK gets a fresh CID and ddb.uuid; its adapter type, \
hardware and tools versions are carried over from a VMDK input (default lsilogic, 4, \
2147483647).\n\n\
A qcow2 output is version 3 (--compat 1.1; 0.10 for version 2) with 64 KiB clusters \
(--cluster-size 512 to 2M) and no backing file, whatever the input was. --compress stores \
clusters compressed (zlib, or --compress=zstd), on all cores, each one that does not shrink \
stored as is; the options apply to qcow2 output only.\n\n\
The output is written under a temporary name beside OUT and renamed into place only when \
complete; on any error or Ctrl-C nothing is left behind (exit code 3). An existing OUT is \
never replaced without --force. The input is opened read-only.";

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// The input image (raw, qcow2 or VMDK; decided from the content).
    pub input: PathBuf,
    /// The output file (for monolithicFlat, the descriptor; the data goes to
    /// NAME-flat.vmdk beside it).
    pub output: PathBuf,
    #[command(flatten)]
    pub output_args: OutputArgs,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// No progress bar and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub open: crate::cli::OpenArgs,
    /// Worker threads for reading and compressing (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

/// Ignores SIGXFSZ so that hitting a file-size limit (`ulimit -f`) makes the write
/// fail with EFBIG — an error we unwind from, removing the temporary file —
/// instead of killing the process and leaving it behind.
pub fn survive_file_size_limit() {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGXFSZ, flag);
}

pub fn run(args: &ConvertArgs) -> anyhow::Result<i32> {
    output::install_interrupt_handler();
    survive_file_size_limit();
    let opts = args.open.options();
    if let Err(e) = args.output_args.check() {
        eprintln!("vmscrub: error: {e}");
        return Ok(exit::USAGE);
    }
    if same_file(&args.input, &args.output) {
        anyhow::bail!(
            "{} is the input; the input is never replaced",
            args.output.display()
        );
    }
    let img = image::open(&args.input, &opts)?;
    for w in &img.info.warnings {
        eprintln!("vmscrub: warning: {w}");
    }
    let out_format = match args.output_args.resolve(&args.input, &img) {
        Ok(r) => {
            for w in &r.warnings {
                eprintln!("vmscrub: warning: {w}");
            }
            r.format
        }
        Err(e) => {
            eprintln!("vmscrub: error: {e}");
            return Ok(exit::USAGE);
        }
    };
    let size = img.info.virtual_size;
    let mut out = output::create_output(&args.output, &out_format, size, args.force)?;
    for t in out.targets() {
        if same_file(&args.input, &t) {
            anyhow::bail!("{} is the input; the input is never replaced", t.display());
        }
    }
    let overlay = Overlay::new(img.disk.clone());
    let pass = PassOptions {
        threads: args
            .threads
            .map_or_else(vmscrub_parmap::available_threads, usize::from),
        progress: !args.quiet,
        label: "converting".into(),
    };
    let stats = output::write_image(&overlay, out.sink(), &pass).with_context(|| {
        format!(
            "writing {} failed; nothing was written",
            args.output.display()
        )
    })?;
    let targets = out.targets();
    out.commit()?;
    if !args.quiet {
        let file_bytes: u64 = targets
            .iter()
            .filter_map(|t| std::fs::metadata(t).ok())
            .map(|m| m.len())
            .sum();
        eprintln!(
            "vmscrub: wrote {} as {}: {} bytes virtual, {} bytes read, {} bytes of file, in {:.2} s",
            args.output.display(),
            out_format.describe(),
            stats.virtual_size,
            stats.bytes_read,
            file_bytes,
            stats.elapsed.as_secs_f64()
        );
    }
    Ok(exit::OK)
}
