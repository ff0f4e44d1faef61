//! The output-format options every writing verb shares (`convert`, `scrub`):
//! one `#[command(flatten)]`-able [`OutputArgs`] and its resolution into an
//! [`OutputFormat`].
//!
//! Resolution rules, in order:
//! 1. `--output-format` if given;
//! 2. else `--subformat` implies its container (VMDK or VHD);
//! 3. else the input's format (a VMDK input keeps its adapter type and
//!    versions, a VHD input its subformat).
//!
//! qcow2 options (`--compress`, `--cluster-size`, `--compat`) never pick the
//! format by themselves: given for an output that is not qcow2 they are a usage
//! error naming the format in force, rather than a silent switch to qcow2 (a
//! `--compress` on a VMDK input must not turn `out.vmdk` into a qcow2 file).

use std::path::Path;

use super::qcow2::{Qcow2Compat, Qcow2Compression, Qcow2Options};
use super::vhd::{AZURE_ALIGN, VhdSubformat};
use super::{OutputFormat, VmdkSubformat};
use crate::image::{Format, OpenedImage};

/// Output container formats (`-O`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    Raw,
    Vmdk,
    Qcow2,
    /// VHD (Virtual PC, Hyper-V, Azure); `vpc` is qemu's name for it.
    #[value(alias = "vpc")]
    Vhd,
    /// VHDX (Hyper-V), dynamic.
    Vhdx,
}

impl FormatArg {
    fn name(self) -> &'static str {
        match self {
            FormatArg::Raw => "raw",
            FormatArg::Vmdk => "vmdk",
            FormatArg::Qcow2 => "qcow2",
            FormatArg::Vhd => "vhd",
            FormatArg::Vhdx => "vhdx",
        }
    }
}

/// `--subformat` values: VMDK's and VHD's variants; each implies its container.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubformatArg {
    /// VMDK: compressed grains, one file (the default VMDK; what OVAs hold).
    #[value(name = "streamOptimized")]
    StreamOptimized,
    /// VMDK: sparse grains, one file.
    #[value(name = "monolithicSparse")]
    MonolithicSparse,
    /// VMDK: a descriptor and a flat extent file.
    #[value(name = "monolithicFlat")]
    MonolithicFlat,
    /// VHD: data then footer (what Azure takes; its size is rounded up to 1 MiB).
    Fixed,
    /// VHD: 2 MiB blocks allocated as written (the default VHD).
    Dynamic,
}

impl SubformatArg {
    /// The container this subformat belongs to.
    pub fn container(self) -> FormatArg {
        match self {
            SubformatArg::Fixed | SubformatArg::Dynamic => FormatArg::Vhd,
            _ => FormatArg::Vmdk,
        }
    }

    fn vmdk(self) -> Option<VmdkSubformat> {
        match self {
            SubformatArg::StreamOptimized => Some(VmdkSubformat::StreamOptimized),
            SubformatArg::MonolithicSparse => Some(VmdkSubformat::MonolithicSparse),
            SubformatArg::MonolithicFlat => Some(VmdkSubformat::MonolithicFlat),
            _ => None,
        }
    }

    fn vhd(self) -> Option<VhdSubformat> {
        match self {
            SubformatArg::Fixed => Some(VhdSubformat::Fixed),
            SubformatArg::Dynamic => Some(VhdSubformat::Dynamic),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        self.vmdk()
            .map(VmdkSubformat::as_str)
            .or(self.vhd().map(VhdSubformat::as_str))
            .unwrap_or("?")
    }
}

/// Options choosing the output's container format and layout. Flatten into a
/// verb's arguments with `#[command(flatten)]`, check them with
/// [`OutputArgs::check`] before opening the input (a usage error should not wait
/// for a large image to open), then call [`OutputArgs::resolve`] with the opened
/// input. Both fail only with a [`UsageError`], which a verb reports with exit
/// code 2 ([`crate::exit::USAGE`]).
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputArgs {
    /// Output container format (default: the input's).
    #[arg(long, short = 'O', value_enum, value_name = "FORMAT")]
    pub output_format: Option<FormatArg>,
    /// VMDK or VHD variant to write (implies its format; defaults:
    /// streamOptimized for VMDK, dynamic for VHD, or the input's).
    #[arg(long, value_enum, value_name = "SUBFORMAT")]
    pub subformat: Option<SubformatArg>,
    /// Fixed VHD: keep the exact virtual size, and refuse a size that is not a
    /// whole number of MiB (which Azure rejects) instead of rounding it up.
    #[arg(long)]
    pub exact_size: bool,
    /// qcow2: compress clusters, zlib by default (`--compress=zstd` for zstd,
    /// which needs compat 1.1). Clusters that do not shrink are stored as is.
    #[arg(
        long,
        value_enum,
        value_name = "TYPE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "zlib"
    )]
    pub compress: Option<Qcow2Compression>,
    /// qcow2: cluster size in bytes, a power of two from 512 to 2M (64K, 65536,
    /// 2M forms; default 64K).
    #[arg(long, value_name = "BYTES", value_parser = parse_cluster_size)]
    pub cluster_size: Option<u64>,
    /// qcow2: version, by qemu's names: 1.1 (version 3, the default) or 0.10
    /// (version 2, for very old readers; zlib only).
    #[arg(long, value_enum, value_name = "COMPAT")]
    pub compat: Option<Qcow2Compat>,
}

/// A combination of output options that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The output format, and anything worth telling the user on the way (a VMDK
/// input's descriptor that could not be read again, an inherited value that was
/// replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedOutput {
    pub format: OutputFormat,
    pub warnings: Vec<String>,
}

/// Parses `65536`, `64K`, `64k`, `64KiB`, `2M`, `2MiB`: a power of two from 512
/// bytes to 2 MiB.
pub fn parse_cluster_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (digits, mult) = if let Some(d) = strip_unit(&lower, 'k') {
        (d, 1u64 << 10)
    } else if let Some(d) = strip_unit(&lower, 'm') {
        (d, 1 << 20)
    } else {
        (lower.strip_suffix('b').unwrap_or(&lower), 1)
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 65536, 64K, 2M)"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    vmscrub_qcow2::cluster_bits(bytes)
        .map(|_| bytes)
        .ok_or_else(|| format!("{s} is not a power of two from 512 to 2M"))
}

fn strip_unit(s: &str, unit: char) -> Option<&str> {
    ["ib", "b", ""]
        .iter()
        .find_map(|tail| s.strip_suffix(tail)?.strip_suffix(unit))
}

impl OutputArgs {
    /// The qcow2-only options given, by flag name.
    fn qcow2_flags(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.compress.is_some() {
            v.push("--compress");
        }
        if self.cluster_size.is_some() {
            v.push("--cluster-size");
        }
        if self.compat.is_some() {
            v.push("--compat");
        }
        v
    }

    /// The usage errors visible without the input.
    pub fn check(&self) -> Result<(), UsageError> {
        let q = self.qcow2_flags();
        if let (Some(f), Some(sub)) = (self.output_format, self.subformat)
            && f != sub.container()
            && !(f == FormatArg::Vhdx && sub == SubformatArg::Dynamic)
        {
            return Err(UsageError(format!(
                "--subformat {} applies to --output-format {} only",
                sub.name(),
                sub.container().name()
            )));
        }
        if self.exact_size
            && (self.subformat.is_some_and(|s| s != SubformatArg::Fixed)
                || self.output_format.is_some_and(|f| f != FormatArg::Vhd))
        {
            return Err(UsageError(
                "--exact-size applies to fixed VHD output only (--subformat fixed)".into(),
            ));
        }
        if let Some(first) = q.first() {
            if let Some(f) = self.output_format.filter(|f| *f != FormatArg::Qcow2) {
                return Err(UsageError(format!(
                    "{first} applies to qcow2 output only, and --output-format is {}",
                    f.name()
                )));
            }
            if let Some(sub) = self.subformat {
                return Err(UsageError(format!(
                    "{first} applies to qcow2 output only, and --subformat makes a {}",
                    sub.container().name().to_uppercase()
                )));
            }
        }
        if self.compress == Some(Qcow2Compression::Zstd) && self.compat == Some(Qcow2Compat::V0_10)
        {
            return Err(UsageError(
                "--compress=zstd needs --compat 1.1: version 2 images only know zlib".into(),
            ));
        }
        Ok(())
    }

    /// The output format for `img`, opened from `input`: see the module
    /// documentation for the rules.
    pub fn resolve(&self, input: &Path, img: &OpenedImage) -> Result<ResolvedOutput, UsageError> {
        self.check()?;
        let mut warnings = Vec::new();
        let chosen = match (self.output_format, self.subformat) {
            (Some(f), _) => f,
            (None, Some(sub)) => sub.container(),
            (None, None) => match img.info.format {
                Format::Raw => FormatArg::Raw,
                Format::Qcow2 => FormatArg::Qcow2,
                Format::Vmdk => FormatArg::Vmdk,
                Format::Vhd => FormatArg::Vhd,
                Format::Vhdx => FormatArg::Vhdx,
            },
        };
        let q = self.qcow2_flags();
        if chosen != FormatArg::Qcow2
            && let Some(first) = q.first()
        {
            return Err(UsageError(format!(
                "{first} applies to qcow2 output only, and the output format is {} (the \
                 input's); add --output-format qcow2",
                chosen.name()
            )));
        }
        let format = match chosen {
            FormatArg::Raw => OutputFormat::Raw,
            FormatArg::Vmdk => vmdk_format(
                input,
                img,
                self.subformat.and_then(SubformatArg::vmdk),
                &mut warnings,
            ),
            FormatArg::Vhd => self.vhd_format(img, &mut warnings)?,
            FormatArg::Vhdx => vhdx_format(img)?,
            FormatArg::Qcow2 => {
                let defaults = Qcow2Options::default();
                let opts = Qcow2Options {
                    compression: self.compress,
                    cluster_size: self.cluster_size.unwrap_or(defaults.cluster_size),
                    compat: self.compat.unwrap_or(defaults.compat),
                };
                let wopts = opts
                    .writer_options()
                    .map_err(|e| UsageError(e.to_string()))?;
                wopts
                    .check_size(img.info.virtual_size)
                    .map_err(|e| UsageError(e.to_string()))?;
                OutputFormat::Qcow2(opts)
            }
        };
        Ok(ResolvedOutput { format, warnings })
    }
}

impl OutputArgs {
    /// VHD output: the subformat asked for, else the input's (a VHD input), else
    /// dynamic; a fixed disk's size rounded up to a whole MiB for Azure, with a
    /// warning, unless `--exact-size` (then such a size is refused).
    fn vhd_format(
        &self,
        img: &OpenedImage,
        warnings: &mut Vec<String>,
    ) -> Result<OutputFormat, UsageError> {
        let input_sub = (img.info.format == Format::Vhd)
            .then_some(img.info.subformat.as_deref())
            .flatten();
        let subformat = match (self.subformat.and_then(SubformatArg::vhd), input_sub) {
            (Some(s), _) => s,
            (None, Some("fixed")) => VhdSubformat::Fixed,
            _ => VhdSubformat::Dynamic,
        };
        let size = img.info.virtual_size;
        // Whole sectors, as the other containers store it (the tail reads as zeros).
        let mut out_size = size.next_multiple_of(512);
        if subformat == VhdSubformat::Fixed && !size.is_multiple_of(AZURE_ALIGN) {
            if self.exact_size {
                return Err(UsageError(format!(
                    "the disk is {size} bytes, not a whole number of MiB, which Azure refuses \
                     for a fixed VHD; drop --exact-size to round it up"
                )));
            }
            out_size = size.next_multiple_of(AZURE_ALIGN);
            warnings.push(format!(
                "the fixed VHD's virtual size is rounded up from {size} to {out_size} bytes \
                 (a whole number of MiB, as Azure requires; the added tail reads as zeros; \
                 --exact-size keeps the size and refuses instead)"
            ));
        }
        vmscrub_vhd::create::check_size(out_size).map_err(|e| UsageError(e.to_string()))?;
        Ok(OutputFormat::Vhd {
            subformat,
            size: out_size,
        })
    }
}

/// VHDX output (dynamic; a fixed VHDX input is written dynamic, with its
/// holes kept), the size in whole sectors.
fn vhdx_format(img: &OpenedImage) -> Result<OutputFormat, UsageError> {
    let size = img.info.virtual_size.next_multiple_of(512);
    if size > vmscrub_vhdx::create::MAX_SIZE {
        return Err(UsageError(format!(
            "a VHDX holds at most 64 TiB; this disk is {size} bytes"
        )));
    }
    Ok(OutputFormat::Vhdx { size })
}

/// VMDK output: the subformat asked for (default streamOptimized), with the
/// descriptor values carried over from a VMDK input.
fn vmdk_format(
    input: &Path,
    img: &OpenedImage,
    sub: Option<VmdkSubformat>,
    warnings: &mut Vec<String>,
) -> OutputFormat {
    let mut disk = vmscrub_vmdk::DiskOptions::default();
    if img.info.format == Format::Vmdk {
        let read = vmscrub_blockdev::FileDisk::open(input)
            .map_err(|e| e.to_string())
            .and_then(|f| vmscrub_vmdk::create::read_descriptor(&f).map_err(|e| e.to_string()));
        match read {
            Ok(d) => {
                let (o, w) = vmscrub_vmdk::DiskOptions::inherit_descriptor(&d);
                warnings.extend(w.into_iter().map(|w| w.to_string()));
                disk = o;
            }
            Err(e) => warnings.push(format!(
                "cannot read the input's descriptor again ({e}); using default adapter and versions"
            )),
        }
    }
    OutputFormat::Vmdk {
        subformat: sub.unwrap_or(VmdkSubformat::StreamOptimized),
        disk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        out: OutputArgs,
        input: String,
        output: String,
    }

    fn parse(args: &[&str]) -> Result<OutputArgs, String> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v)
            .map(|c| {
                assert_eq!((c.input.as_str(), c.output.as_str()), ("in", "out"));
                c.out
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn cluster_sizes() {
        for (s, n) in [
            ("512", 512),
            ("65536", 65536),
            ("64K", 65536),
            ("64k", 65536),
            ("64KiB", 65536),
            ("4kb", 4096),
            ("2M", 2 << 20),
            ("1m", 1 << 20),
        ] {
            assert_eq!(parse_cluster_size(s), Ok(n), "{s}");
        }
        for s in [
            "256",
            "3000",
            "4M",
            "64G",
            "",
            "K",
            "-64K",
            "64 K",
            "99999999999999999999K",
        ] {
            assert!(parse_cluster_size(s).is_err(), "{s}");
        }
    }

    #[test]
    fn compress_takes_its_value_only_with_equals() {
        // A bare --compress never swallows the input's name.
        let a = parse(&["--compress", "in", "out"]).unwrap();
        assert_eq!(a.compress, Some(Qcow2Compression::Zlib));
        let a = parse(&["in", "out", "--compress"]).unwrap();
        assert_eq!(a.compress, Some(Qcow2Compression::Zlib));
        let a = parse(&["--compress=zstd", "in", "out"]).unwrap();
        assert_eq!(a.compress, Some(Qcow2Compression::Zstd));
        assert!(parse(&["--compress=lz4", "in", "out"]).is_err());
        let a = parse(&[
            "-O",
            "qcow2",
            "--cluster-size",
            "4K",
            "--compat",
            "0.10",
            "in",
            "out",
        ])
        .unwrap();
        assert_eq!(a.cluster_size, Some(4096));
        assert_eq!(a.compat, Some(Qcow2Compat::V0_10));
        assert_eq!(
            parse(&["--compat", "v3", "in", "out"]).unwrap().compat,
            Some(Qcow2Compat::V1_1)
        );
        assert!(parse(&["--cluster-size", "1000", "in", "out"]).is_err());
    }

    #[test]
    fn nonsense_combinations_are_usage_errors() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["-O", "raw", "--subformat", "streamOptimized"],
                "--subformat streamOptimized applies to --output-format vmdk only",
            ),
            (
                &["-O", "vmdk", "--subformat", "fixed"],
                "--subformat fixed applies to --output-format vhd only",
            ),
            (
                &["-O", "qcow2", "--exact-size"],
                "--exact-size applies to fixed VHD output only",
            ),
            (
                &["--subformat", "dynamic", "--exact-size"],
                "--exact-size applies to fixed VHD output only",
            ),
            (
                &["--subformat", "fixed", "--compress"],
                "--subformat makes a VHD",
            ),
            (
                &["-O", "vhdx", "--subformat", "fixed"],
                "--subformat fixed applies to --output-format vhd only",
            ),
            (
                &["-O", "raw", "--compress"],
                "--compress applies to qcow2 output only",
            ),
            (
                &["-O", "vmdk", "--cluster-size", "4K"],
                "--cluster-size applies",
            ),
            (
                &["--subformat", "monolithicSparse", "--compat", "1.1"],
                "--subformat makes a VMDK",
            ),
            (
                &["-O", "qcow2", "--compress=zstd", "--compat", "0.10"],
                "needs --compat 1.1",
            ),
        ];
        for (args, want) in cases {
            let mut v = args.to_vec();
            v.extend(["in", "out"]);
            let e = parse(&v).unwrap().check().unwrap_err();
            assert!(e.0.contains(want), "{args:?}: {e}");
        }
        for ok in [
            &["-O", "qcow2", "--compress=zstd", "--compat", "1.1"][..],
            &["--compress", "--cluster-size", "2M"],
            &["--subformat", "streamOptimized"],
            &["-O", "raw"],
            &["-O", "vpc"],
            &["--subformat", "fixed", "--exact-size"],
            &["-O", "vhdx", "--subformat", "dynamic"],
        ] {
            let mut v = ok.to_vec();
            v.extend(["in", "out"]);
            parse(&v).unwrap().check().unwrap();
        }
    }
}
