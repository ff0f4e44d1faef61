//! `vmscrub batch`'s command line and what `--help` says.

use std::path::PathBuf;

use crate::cli::{OpenArgs, SelectArgs};
use crate::output::OutputArgs;

pub const ABOUT: &str =
    "Scan or scrub every image of a repository (a directory or a list of paths)";

pub const LONG_ABOUT: &str = "Scan or scrub every image of a repository. Each PATH is a \
directory (walked; images are found by their content, not their names: a container header, \
a partition table or a filesystem; anything else is listed as skipped with the reason) or a \
file listing image paths, one per line (relative paths are taken from the list's \
directory; # starts a comment). Each image goes through the same code as `vmscrub scan` / \
`vmscrub scrub` of that one image.\n\n\
Reports: --report-dir DIR gets each image's JSON report (docs/scan-json.md) as \
DIR/NAME.json, NAME being the image's path below the walked directory (or its file name \
for a list entry); --report FILE.jsonl gets one JSON line per image (path, identity, \
status ok/failed/skipped, findings by operation, reason); a summary table goes to stderr \
at the end.\n\n\
Resumable: a state file (--state, default .vmscrub-batch.redb in the report directory, \
else the output directory, else beside --report, else the current directory; \
.vmscrub-batch-K-of-N.redb for --shard K/N) records each \
image processed to the end with its identity (path, size, mtime, a SHA-256 of its first \
and last MiB, where every container keeps its header; --verify-digests hashes the whole \
image) and the configuration (verb, operations, rules, options, vmscrub version). A rerun \
skips images that are unchanged and were done the same way, and redoes the rest. Ctrl-C \
stops the run; only the images in progress are lost.\n\n\
--shard K/N takes only the images whose index in the sorted list is K modulo N (files \
that are not images are listed by shard 0 only), so N processes or hosts share a \
repository.\n\n\
Exit codes: 0 every image processed and nothing matched --fail-on; 1 an image's findings \
matched --fail-on (applied to every image, the skipped unchanged ones too, from their \
recorded counts); 5 some images could not be processed (their reasons are in the summary \
and the JSON lines), whatever the findings; 2 usage; 3 the batch itself could not run \
(an unreadable PATH or state file); 130 interrupted.";

/// `vmscrub batch scan|scrub`.
#[derive(clap::Args, Debug)]
pub struct BatchArgs {
    #[command(subcommand)]
    pub verb: BatchVerb,
}

#[derive(clap::Subcommand, Debug)]
pub enum BatchVerb {
    /// Scan every image: the findings of each, as `vmscrub scan` gives them
    #[command(long_about = LONG_ABOUT)]
    Scan(BatchScanArgs),
    /// Write a cleaned copy of every image into --out, as `vmscrub scrub` does
    #[command(long_about = LONG_ABOUT)]
    Scrub(BatchScrubArgs),
}

/// What both batch verbs take.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Directories to walk, or files listing image paths (one per line)
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Write each image's JSON report here, as NAME.json
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Write the batch report here: one JSON line per image
    #[arg(long, value_name = "FILE.jsonl")]
    pub report: Option<PathBuf>,
    /// Exit 1 if any image's findings match: `finding`, `secret`, `warning`
    /// or operation names (comma-separated; repeatable), as `scan --fail-on`
    #[arg(long = "fail-on", value_name = "POLICY")]
    pub fail_on: Vec<String>,
    /// Images processed at the same time
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Threads per image (default: the cores divided among --jobs)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// The state file that makes reruns skip finished, unchanged images
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Identify images by a SHA-256 of their whole content, not only of their
    /// first and last MiB (slower; catches an edit that kept size and mtime)
    #[arg(long)]
    pub verify_digests: bool,
    /// Take only the images whose index in the sorted list is K modulo N
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// No progress display (the summary is still printed)
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct BatchScanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(clap::Args, Debug)]
pub struct BatchScrubArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Write the cleaned copies here, as NAME (its extension replaced by
    /// -O's format when given)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub output_args: OutputArgs,
    /// Write each image's encrypted recovery archive here, as NAME.tar.zst.age
    #[arg(long, value_name = "DIR", requires = "recipient")]
    pub recovery_dir: Option<PathBuf>,
    /// Public key the recovery archives are encrypted to (as `scrub --recipient`)
    #[arg(long, value_name = "KEY.pub", requires = "recovery_dir")]
    pub recipient: Vec<PathBuf>,
    /// Skip verifying the written outputs
    #[arg(long)]
    pub no_verify: bool,
    /// Leave free space as it is (as `scrub --keep-free-space`)
    #[arg(long)]
    pub keep_free_space: bool,
    /// Scrub even if something should be read cannot be (as `scrub --allow-unreadable`)
    #[arg(long)]
    pub allow_unreadable: bool,
    #[command(flatten)]
    pub open: OpenArgs,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}` is not K/N with 0 <= K < N");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let k: usize = k.trim().parse().map_err(|_| bad())?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    if n == 0 || k >= n {
        return Err(bad());
    }
    Ok((k, n))
}
