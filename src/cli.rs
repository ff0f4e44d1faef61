//! Pieces of the command line that several verbs share: choosing operations,
//! loading the catalogue, and usage errors (exit code 2) detected after clap.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::ops::{Catalogue, Selection};

/// Choosing operations, like virt-sysprep.
#[derive(Args, Debug, Default, Clone)]
pub struct SelectArgs {
    /// Operation set algebra, applied left to right to an empty set:
    /// `defaults`, `all`, `NAME`/`+NAME`, `-NAME` (comma-separated; repeatable).
    /// Operations that can do nothing offline (customize, script, lvm-uuids,
    /// fs-uuids, flag-reconfiguration: they need the running guest) are off by
    /// default; selecting one only adds a note to the report
    #[arg(long = "operations", visible_alias = "operation", value_name = "LIST")]
    pub operations: Vec<String>,
    /// Run exactly these operations (comma-separated)
    #[arg(long, value_name = "LIST", conflicts_with = "operations")]
    pub enable: Vec<String>,
    /// Exempt paths matching GLOB from every operation (repeatable; a kept
    /// directory keeps everything below it)
    #[arg(long, value_name = "GLOB")]
    pub keep: Vec<String>,
    /// Add operations, keep and allow entries from a rule file (catalogue form)
    #[arg(long, value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// The input is a data volume, not an operating system: scan it with the
    /// content detectors only. Without it, an input with no OS (no
    /// /etc/os-release) is an error (exit 3), so a wrong path cannot pass a CI job
    #[arg(long)]
    pub data_volume: bool,

    /// Let content detectors act on files whose content matches the digest
    /// their package recorded (dpkg, rpm, apk, Python RECORD); by default such
    /// hits are reported as `vendor` notes, never removed
    #[arg(long)]
    pub no_package_trust: bool,
}

impl SelectArgs {
    /// The catalogue with the rule files added, the resolved selection, and the
    /// `--keep` globs checked. Every problem is a [`Usage`] error.
    pub fn resolve(&self) -> anyhow::Result<(Catalogue, Selection)> {
        let cat = catalogue(&self.rules)?;
        let selection = Selection::resolve(&cat, &self.operations, &self.enable).map_err(usage)?;
        for k in &self.keep {
            crate::ops::pattern::check_glob(k).map_err(|e| usage(format!("--keep: {e}")))?;
        }
        Ok((cat, selection))
    }
}

/// A usage error detected after clap (bad operation name, bad rule file):
/// `main` exits with [`crate::exit::USAGE`] when it sees one.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Usage(e.to_string()))
}

/// The built-in catalogue plus the user's rule files.
pub fn catalogue(rules: &[PathBuf]) -> anyhow::Result<Catalogue> {
    let mut cat = Catalogue::builtin().context("the built-in catalogue")?;
    for r in rules {
        cat.add_file(r).map_err(usage)?;
    }
    Ok(cat)
}

/// Whether the image may make vmscrub open other host files (a qcow2 backing
/// file, VMDK extents or parent). Shared by the verbs that open images.
#[derive(Args, Debug, Default, Clone)]
pub struct OpenArgs {
    /// Let the image make vmscrub open its backing file (qcow2) or parent (VMDK).
    /// Off by default: the path is chosen by whoever made the image.
    #[arg(long)]
    pub allow_backing: bool,
    /// Let the image name backing or extent files outside its own directory.
    #[arg(long)]
    pub allow_external_files: bool,
}

impl OpenArgs {
    pub fn options(&self) -> crate::image::OpenOptions {
        crate::image::OpenOptions {
            allow_backing: self.allow_backing,
            external_files: if self.allow_external_files {
                crate::image::ExternalFiles::Anywhere
            } else {
                crate::image::ExternalFiles::SameDirectory
            },
        }
    }
}
