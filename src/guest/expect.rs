//! Is the input what the user meant to give? `scan` and `scrub` are run in CI on
//! images and unpacked roots; a typo'd path, an empty directory or a data disk
//! given by mistake must fail the job (exit 3), not pass it with a warning that
//! nobody reads. So a guest must have a readable filesystem, and an operating
//! system unless the user said it is a data volume (`--data-volume`).

use std::path::Path;

use super::Guest;

impl Guest {
    /// An error naming every reason when no filesystem could be read: an image
    /// vmscrub could not read must never be called clean (or be "scrubbed").
    pub fn require_readable(&self, image: &Path) -> anyhow::Result<()> {
        if self.readable() {
            return Ok(());
        }
        let why: Vec<String> = self
            .unreadable
            .iter()
            .map(|u| format!("{}: {}", u.identity.describe(), u.error))
            .collect();
        anyhow::bail!(
            "{}: no filesystem of this image could be read ({})",
            image.display(),
            if why.is_empty() {
                "no filesystem signature found on the disk or on any partition".to_string()
            } else {
                why.join("; ")
            }
        )
    }

    /// An error when no operating system was found, unless `data_volume` (the
    /// user said so, and then only the content detectors can apply). Records
    /// the answer, so reports do not warn about an absence that was expected.
    pub fn require_os(&mut self, input: &Path, data_volume: bool) -> anyhow::Result<()> {
        self.data_volume = data_volume;
        if self.root.is_some() || data_volume {
            return Ok(());
        }
        let directory = self
            .filesystems
            .iter()
            .any(|f| f.identity.fs_type.as_deref() == Some("directory"));
        if directory {
            anyhow::bail!(
                "{}: no operating system in this directory (no etc/os-release or \
                 usr/lib/os-release below it): give the directory holding the unpacked root \
                 (the one with etc/ and usr/), or pass --data-volume to scan any directory \
                 with the content detectors only",
                input.display()
            );
        }
        let seen: Vec<String> = self
            .filesystems
            .iter()
            .map(|f| f.identity.describe())
            .collect();
        anyhow::bail!(
            "{}: no operating system found (no /etc/os-release on {}), so the path operations \
             cannot run; if this is a data volume, pass --data-volume to scan it with the \
             content detectors only",
            input.display(),
            seen.join(", ")
        )
    }
}
