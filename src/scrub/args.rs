//! The `scrub` verb's command line: what it takes and what `--help` says.

use std::path::PathBuf;

use crate::cli::{OpenArgs, SelectArgs};
use crate::output::OutputArgs;

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
    pub archive_format: super::recipients::FormatChoice,

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
    /// On LVM2, extents no logical volume holds (an `lvremove`d volume's old
    /// contents) are zeroed the same way; the PV label and metadata are kept.
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
