//! Reports of a scan: human text ([`human`]), one stable JSON document
//! ([`json`], schema in `docs/scan-json.md`), SARIF 2.1.0 ([`sarif`]), and the
//! `--fail-on` exit-code policy ([`policy`]).
//!
//! No report ever contains file content: findings carry paths, metadata and,
//! for content hits, detector/offset/length/hash.

pub mod human;
pub mod json;
pub mod policy;
pub mod sarif;

use serde::Serializer;

use crate::guest::Guest;
use crate::scan::ScanResult;

/// Serializes a byte path as display-escaped text (`\xNN` for non-UTF-8 bytes).
pub fn ser_path<S: Serializer>(p: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::fs::display_path(p))
}

/// Hex of a path that is not valid UTF-8.
pub fn hex_if_not_utf8(p: &[u8]) -> Option<String> {
    std::str::from_utf8(p)
        .is_err()
        .then(|| p.iter().map(|b| format!("{b:02x}")).collect())
}

/// What every report needs besides the scan itself.
pub struct ReportInput<'a> {
    /// The scanned image or directory, as given on the command line.
    pub image: &'a str,
    pub guest: &'a Guest,
    pub result: &'a ScanResult,
    /// Selected operation names (catalogue order).
    pub selection: &'a [String],
}

/// Output formats of `scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

/// Renders a report in `format`.
pub fn render(format: Format, input: &ReportInput<'_>) -> String {
    match format {
        Format::Human => human::render(input),
        Format::Json => json::render(input),
        Format::Sarif => sarif::render(input),
    }
}

/// `1 finding`, `2 findings`: a count with its noun, for every human-facing
/// line. `noun` is the singular; the plural adds `s`, as every noun counted in
/// vmscrub's messages does.
pub fn plural(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Escapes control characters (a hostile file name must not drive the
/// terminal) and non-UTF-8 bytes.
pub fn safe_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

pub fn safe_path(p: &[u8]) -> String {
    safe_text(&crate::fs::display_path(p))
}

/// `1.5 MiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `2024-01-02 03:04:05Z` from Unix seconds (proleptic Gregorian, UTC).
pub fn utc(sec: i64) -> String {
    let days = sec.div_euclid(86_400);
    let rem = sec.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
