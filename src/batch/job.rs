//! One image through the single-image verbs' library code: `scan` as
//! [`scan_image`] (which the `scan` verb itself calls), `scrub` as
//! [`crate::scrub::run`] with arguments built per image. Whatever happens to
//! one image (an error, a panic on hostile data) is that image's failure, never
//! the batch's.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::{SelectArgs, usage};
use crate::guest::Guest;
use crate::ops::{Catalogue, Selection};
use crate::report::{self, Format, ReportInput};
use crate::scan::{self, ScanOptions, ScanResult};

/// What `vmscrub scan IMAGE` does before rendering: open the image or root
/// directory, require it readable and holding an OS (unless a data volume),
/// and scan it.
pub fn scan_image(
    image: &Path,
    select: &SelectArgs,
    cat: &Catalogue,
    selection: &Selection,
    threads: usize,
    progress: Option<&scan::ScanProgress>,
) -> Result<(Guest, ScanResult)> {
    let mut guest = crate::guest::guest_from_path(image, &Default::default())?;
    guest.require_readable(image)?;
    guest.require_os(image, select.data_volume)?;
    let detectors = scan::content::Detectors::for_selection(selection)
        .map_err(|e| anyhow::anyhow!("content detectors: {e}"))?;
    let result = scan::scan(
        &guest,
        &ScanOptions {
            catalogue: cat,
            selection,
            keep: select.keep.clone(),
            content: detectors.as_ref().map(|d| d as &dyn scan::ContentScanner),
            threads,
            package_trust: !select.no_package_trust,
            progress,
        },
    )
    .map_err(usage)?;
    Ok((guest, result))
}

/// The JSON report `vmscrub scan --format json` writes for this result.
pub fn json_report(
    image: &Path,
    guest: &Guest,
    result: &ScanResult,
    selection: &Selection,
) -> String {
    let image = image.display().to_string();
    report::render(
        Format::Json,
        &ReportInput {
            image: &image,
            guest,
            result,
            selection: selection.names(),
        },
    )
}

/// What one image's processing gave.
#[derive(Debug, Default)]
pub struct Done {
    /// `None`: the image was processed; `Some(reason)`: it failed.
    pub failure: Option<String>,
    /// The image's JSON report (scan's, or scrub's with its `scrub` section).
    pub report: Option<serde_json::Value>,
    pub output: Option<PathBuf>,
}

/// Runs `f`, turning an error or a panic into a failure with its reason.
pub fn guarded(f: impl FnOnce() -> Result<Done>) -> Done {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => Done {
            failure: Some(format!("{e:#}")),
            ..Done::default()
        },
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Done {
                failure: Some(format!("internal error (panic): {what}")),
                ..Done::default()
            }
        }
    }
}

/// Counts of a JSON report's findings by (operation, content detector), and of
/// its warnings of the kinds `--fail-on warning` counts: what the state keeps
/// so a later run can apply its policy without redoing the image.
pub fn counts(report: &serde_json::Value) -> (Vec<(String, bool, u64)>, u64) {
    let mut by: std::collections::BTreeMap<(String, bool), u64> = Default::default();
    for f in report["findings"].as_array().into_iter().flatten() {
        let op = f["operation"].as_str().unwrap_or("").to_string();
        let content = f["why"]["type"].as_str() == Some("content");
        *by.entry((op, content)).or_default() += 1;
    }
    let warned = ["ssh-host-keys", "unreadable-filesystem", "swap-space"];
    let warnings = report["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["kind"].as_str().is_some_and(|k| warned.contains(&k)))
        .count() as u64;
    (
        by.into_iter().map(|((o, c), n)| (o, c, n)).collect(),
        warnings,
    )
}
