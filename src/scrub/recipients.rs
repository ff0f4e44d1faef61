//! Who the recovery archive is for, and in which envelope: `--recipient` values
//! (key files, `age -R`-style recipient files, or a recipient given inline as
//! `age -r` takes it) and `--archive-format`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vmscrub_recovery::{ArchiveFormat, Recipient};

/// `--archive-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FormatChoice {
    /// age when every recipient is a key the age format serves (ssh-ed25519,
    /// age1… X25519, ssh-rsa up to 4096 bits), else v1 (RSA keys only).
    #[default]
    Auto,
    /// age-encryption.org/v1: opens with the standard `age` tool.
    Age,
    /// vmscrub's own v1 format (RSA keys only; scripts/vmscrub-recover.py opens it).
    V1,
}

impl FormatChoice {
    /// The envelope to write for these recipients; an explicit choice that cannot
    /// serve one of them fails here, before any work is done.
    pub fn resolve(self, recipients: &[Recipient]) -> Result<ArchiveFormat> {
        let format = match self {
            FormatChoice::Auto => ArchiveFormat::for_recipients(recipients)?,
            FormatChoice::Age => ArchiveFormat::Age,
            FormatChoice::V1 => ArchiveFormat::V1,
        };
        let refused: Vec<String> = match format {
            ArchiveFormat::V1 => recipients
                .iter()
                .filter(|r| !r.is_rsa())
                .map(|r| format!("{} ({})", r.fingerprint_string(), r.kind()))
                .collect(),
            ArchiveFormat::Age => recipients
                .iter()
                .filter_map(|r| r.check_age().err())
                .map(|e| e.to_string())
                .collect(),
        };
        if !refused.is_empty() {
            anyhow::bail!(
                "the {} archive format cannot encrypt to {}",
                format.name(),
                refused.join(", ")
            );
        }
        Ok(format)
    }
}

/// Every recipient of every `--recipient` value. A value that names no file but
/// reads as a recipient itself (`age1…`, `ssh-ed25519 AAAA…`, `ssh-rsa AAAA…`) is
/// taken inline, as `age -r` does.
pub fn load_recipients(values: &[PathBuf]) -> Result<Vec<Recipient>> {
    let mut out = Vec::new();
    for v in values {
        let keys = match inline(v) {
            Some(text) => Recipient::parse(text.as_bytes())
                .with_context(|| format!("the recipient {text}"))?,
            None => {
                let data = std::fs::read(v)
                    .with_context(|| format!("cannot read the recipient key {}", v.display()))?;
                Recipient::parse(&data).with_context(|| format!("{}", v.display()))?
            }
        };
        out.extend(keys);
    }
    Ok(out)
}

fn inline(v: &Path) -> Option<&str> {
    let text = v.to_str()?;
    let looks = ["age1", "ssh-ed25519 ", "ssh-rsa "]
        .iter()
        .any(|p| text.starts_with(p));
    (looks && std::fs::symlink_metadata(v).is_err()).then_some(text)
}
