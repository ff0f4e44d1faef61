//! What the batch says: one JSON line per image (`--report FILE.jsonl`), the
//! progress line while it runs, and the summary table at the end.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use super::Tally;
use super::discover::Image;
use super::job::Done;
use super::state::{Identity, Record};
use crate::report::human_size;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

/// One image's line of the batch report.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    pub status: Status,
    /// Skipped because the state recorded it done, unchanged, the same way.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    /// Findings by operation.
    pub findings: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    pub seconds: f64,
    #[serde(skip)]
    pub counts: Vec<(String, bool, u64)>,
    #[serde(skip)]
    pub warnings: u64,
    #[serde(skip)]
    pub interrupted: bool,
}

impl Line {
    fn new(path: &Path, status: Status) -> Line {
        Line {
            path: path.to_path_buf(),
            format: None,
            identity: None,
            status,
            unchanged: false,
            findings: BTreeMap::new(),
            reason: None,
            report: None,
            output: None,
            seconds: 0.0,
            counts: Vec::new(),
            warnings: 0,
            interrupted: false,
        }
    }

    pub fn skipped(path: &Path, reason: &str) -> Line {
        Line {
            reason: Some(reason.to_string()),
            ..Line::new(path, Status::Skipped)
        }
    }

    pub fn failed(img: &Image, identity: Option<Identity>, reason: String) -> Line {
        Line {
            format: Some(img.format),
            identity,
            interrupted: crate::output::check_interrupted().is_err(),
            reason: Some(reason),
            ..Line::new(&img.path, Status::Failed)
        }
    }

    pub fn unchanged(img: &Image, identity: Identity, rec: &Record) -> Line {
        let mut line = Line {
            format: Some(img.format),
            identity: Some(identity),
            unchanged: true,
            reason: Some("unchanged since it was processed with this configuration".into()),
            report: rec.report.clone(),
            output: rec.output.clone(),
            ..Line::new(&img.path, Status::Skipped)
        };
        line.set_counts(rec.findings.clone(), rec.warnings);
        line
    }

    pub fn processed(
        img: &Image,
        identity: Identity,
        done: Done,
        report_dir: &Option<PathBuf>,
    ) -> Line {
        if let Some(reason) = done.failure {
            return Line::failed(img, Some(identity), reason);
        }
        let mut line = Line {
            format: Some(img.format),
            identity: Some(identity),
            output: done.output,
            report: report_dir
                .as_ref()
                .map(|d| d.join(format!("{}.json", img.name))),
            ..Line::new(&img.path, Status::Ok)
        };
        if let Some(report) = &done.report {
            let (counts, warnings) = super::job::counts(report);
            line.set_counts(counts, warnings);
        }
        line
    }

    fn set_counts(&mut self, counts: Vec<(String, bool, u64)>, warnings: u64) {
        for (op, _, n) in &counts {
            *self.findings.entry(op.clone()).or_default() += n;
        }
        self.counts = counts;
        self.warnings = warnings;
    }

    fn total(&self) -> u64 {
        self.findings.values().sum()
    }
}

/// The `--report` file, a line written and flushed as each image finishes.
pub struct Lines {
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl Lines {
    pub fn create(path: Option<&Path>) -> Result<Lines> {
        let out = match path {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("{}", p.display()))?,
            )),
            None => None,
        };
        Ok(Lines { out })
    }

    pub fn write(&mut self, line: &Line) -> Result<()> {
        if let Some(out) = &mut self.out {
            serde_json::to_writer(&mut *out, line)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        Ok(())
    }
}

/// Totals for the table at the end.
#[derive(Debug, Default)]
pub struct Summary {
    pub ok: Row,
    pub unchanged: Row,
    pub failed: usize,
    pub failed_bytes: u64,
    pub skipped: usize,
    pub failures: Vec<(PathBuf, String)>,
    pub seconds: f64,
}

#[derive(Debug, Default)]
pub struct Row {
    pub images: usize,
    pub findings: u64,
    pub bytes: u64,
}

impl Summary {
    pub fn add(&mut self, line: &Line) {
        let size = line.identity.as_ref().map_or(0, |i| i.size);
        let row = match line.status {
            Status::Ok => &mut self.ok,
            Status::Skipped if line.unchanged => &mut self.unchanged,
            Status::Skipped => {
                self.skipped += 1;
                return;
            }
            Status::Failed => {
                self.failed += 1;
                self.failed_bytes += size;
                let reason = line.reason.clone().unwrap_or_default();
                self.failures.push((line.path.clone(), reason));
                return;
            }
        };
        row.images += 1;
        row.findings += line.total();
        row.bytes += size;
    }

    pub fn table(&self) -> String {
        let mut s = String::from("vmscrub batch:\n");
        s += &format!(
            "  {:<10} {:>7} {:>9} {:>10}\n",
            "status", "images", "findings", "bytes"
        );
        for (name, r) in [("done", &self.ok), ("unchanged", &self.unchanged)] {
            s += &format!(
                "  {:<10} {:>7} {:>9} {:>10}\n",
                name,
                r.images,
                r.findings,
                human_size(r.bytes)
            );
        }
        s += &format!(
            "  {:<10} {:>7} {:>9} {:>10}\n",
            "failed",
            self.failed,
            "-",
            human_size(self.failed_bytes)
        );
        s += &format!(
            "  {:<10} {:>7} {:>9} {:>10}\n",
            "skipped", self.skipped, "-", "-"
        );
        for (path, reason) in &self.failures {
            s += &format!(
                "  failed: {}: {}\n",
                crate::report::safe_text(&path.display().to_string()),
                crate::report::safe_text(reason)
            );
        }
        s += &format!("  time: {:.1} s\n", self.seconds);
        s
    }
}

/// The progress line: images done / running / failed, and an ETA from the
/// bytes done so far.
pub(super) fn describe(t: &Tally, total: usize, total_bytes: u64, start: Instant) -> String {
    let done = t.done.load(Ordering::Relaxed);
    let bytes = t.bytes_done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let eta = if bytes > 0 && total_bytes > bytes {
        format!(
            ", ETA {:.0} s",
            elapsed / bytes as f64 * (total_bytes - bytes) as f64
        )
    } else {
        String::new()
    };
    format!(
        "{done}/{total} images done, {} running, {} failed, {}{eta}",
        t.running.load(Ordering::Relaxed),
        t.failed.load(Ordering::Relaxed),
        human_size(bytes)
    )
}
