//! Verification of the written output, before it is renamed into place.
//!
//! The output is reopened through the same readers a later `scan` would use
//! (container, partition table, filesystems with checksums verified), and:
//!
//! 1. every filesystem that was readable in the input must be readable in the
//!    output — a damaged filesystem would otherwise hide its findings;
//! 2. the selected operations are scanned again: the plan must be empty (every
//!    removed file gone, every truncated file empty, every rewrite done);
//! 3. the output's raw bytes are swept for the fingerprints of every removed
//!    file ([`residue`](super::residue)): a unit found again is removed content
//!    that survived. A unit that is also the content of a file still in the
//!    output (two files with identical blocks) is not a leak and is excused;
//!    that check reads the live files only when the sweep found something;
//! 4. every rewritten or redacted file reads back as exactly the content the
//!    scrub wrote: the secret gone, every other byte as it was;
//! 5. every kept path of the input is in the output as it was
//!    ([`tree`](super::tree)).
//!
//! The re-scan of step 2 reads every file of the output once, hashing it on
//! the way; a file whose bytes hash to content the scrub's scan already
//! judged is not run through the detectors again (the detectors are functions
//! of the bytes), and its digest is what step 5 compares.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use vmscrub_blockdev::ReadAt;

use super::residue::{self, Fingerprint, Hit};
use crate::fs::{FileKind, Filesystem};
use crate::guest::Guest;
use crate::scan::{self, PlannedAction, ScanOptions};

/// Most hits listed (the sweep stops counting beyond this per volume).
const MAX_HITS: usize = 1000;

/// What to sweep one filesystem of the output for.
pub struct SweepTarget {
    /// The volume holding it, as in the input.
    pub volume: crate::image::VolumeKey,
    pub label: String,
    pub unit: u64,
    pub prints: HashSet<Fingerprint>,
    /// Files rewritten or redacted (path in the filesystem) and the xxh3-128 of
    /// the content the scrub wrote: read back, they must hold exactly that —
    /// the secret gone and every other byte as it was.
    pub edited: Vec<(Vec<u8>, u128)>,
}

#[derive(Debug, Default, Serialize)]
pub struct Verification {
    /// Problems found; empty means the output verified.
    pub problems: Vec<String>,
    /// Actions the re-scan still planned (should be none).
    pub remaining: Vec<PlannedAction>,
    /// Bytes of the output swept, and fingerprints looked for.
    pub swept_bytes: u64,
    pub fingerprints: u64,
    /// Units found again that are also the content of a live file (not leaks).
    pub excused_units: u64,
    /// Warnings of the re-scan (files the scan could not read, …).
    pub rescan_warnings: usize,
    /// Files of the re-scan whose content the scrub's scan had already judged.
    pub rescan_reused: u64,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the output whose virtual disk is `disk`. `expected` names the
/// filesystems readable in the input (their descriptions).
pub fn verify(
    disk: Arc<dyn ReadAt>,
    expected: &[(crate::image::VolumeKey, String)],
    opts: &ScanOptions<'_>,
    targets: &[SweepTarget],
    before: Option<&super::tree::Snapshot>,
) -> anyhow::Result<Verification> {
    let mut v = Verification::default();
    let layout =
        crate::image::discover(disk).context("the output's partition table cannot be read")?;
    let guest = crate::guest::guest_from_layout(&layout);
    for (part, what) in expected {
        if !guest
            .filesystems
            .iter()
            .any(|f| f.identity.volume_key() == *part)
        {
            let why = guest
                .unreadable
                .iter()
                .find(|u| u.identity.volume_key() == *part)
                .map_or_else(|| "it is missing".to_string(), |u| u.error.clone());
            v.problems.push(format!(
                "{what} was readable in the input but not in the output: {why}"
            ));
        }
    }
    let input = before.map(super::tree::Snapshot::memo);
    let mode = input.map_or(scan::Digests::Off, scan::Digests::Reuse);
    let (result, memo) =
        scan::scan_digesting(&guest, opts, mode).map_err(|e| anyhow::anyhow!("{e}"))?;
    v.rescan_reused = memo.reused;
    v.rescan_warnings = result.warnings.len();
    v.remaining = result.plan();
    for a in v.remaining.iter().take(20) {
        v.problems.push(format!(
            "still to {} in the output: {} ({})",
            a.action.as_str(),
            crate::fs::display_path(&a.path),
            a.operations.join(", ")
        ));
    }
    if v.remaining.len() > 20 {
        v.problems
            .push(format!("… and {} more", v.remaining.len() - 20));
    }
    for t in targets {
        check_edits(&guest, t, &mut v);
        if t.prints.is_empty() {
            continue;
        }
        v.fingerprints += t.prints.len() as u64;
        let Some(vol) = layout.volumes.iter().find(|x| x.key() == t.volume) else {
            v.problems
                .push(format!("{}: no such volume in the output", t.label));
            continue;
        };
        let (hits, swept) = residue::sweep(&vol.device, t.unit, &t.prints, MAX_HITS)?;
        v.swept_bytes += swept;
        if hits.is_empty() {
            continue;
        }
        let live = guest
            .filesystems
            .iter()
            .find(|f| f.identity.volume_key() == t.volume)
            .map(|f| live_prints(&*f.fs, t.unit, &hits))
            .transpose()?
            .unwrap_or_default();
        let mut leaks: Vec<&Hit> = Vec::new();
        for h in &hits {
            if live.contains(&h.print) {
                v.excused_units += 1;
            } else {
                leaks.push(h);
            }
        }
        if !leaks.is_empty() {
            let shown: Vec<String> = leaks
                .iter()
                .take(5)
                .map(|h| format!("byte {}", h.offset))
                .collect();
            v.problems.push(format!(
                "{}: {} unit(s) of {} bytes of removed content are still in the output ({}{})",
                t.label,
                leaks.len(),
                t.unit,
                shown.join(", "),
                if leaks.len() > 5 { ", …" } else { "" }
            ));
        }
    }
    if let Some(before) = before {
        v.problems
            .extend(super::tree::compare(before, &guest, &memo)?);
    }
    Ok(v)
}

/// Every rewritten or redacted file of `t`'s filesystem reads back as written.
fn check_edits(guest: &Guest, t: &SweepTarget, v: &mut Verification) {
    if t.edited.is_empty() {
        return;
    }
    let Some(gfs) = guest
        .filesystems
        .iter()
        .find(|f| f.identity.volume_key() == t.volume)
    else {
        return; // reported above: readable in the input, not in the output
    };
    for (path, want) in &t.edited {
        let got = gfs
            .fs
            .lookup(path)
            .and_then(|id| crate::guest::read_bounded(&*gfs.fs, id, scan::MAX_REWRITE_SIZE))
            .map(|c| xxhash_rust::xxh3::xxh3_128(&zeroize::Zeroizing::new(c)));
        let why = match got {
            Ok(h) if h == *want => continue,
            Ok(_) => "its content is not what the scrub wrote".to_string(),
            Err(e) => format!("it cannot be read back: {e}"),
        };
        v.problems.push(format!(
            "{}: {}: {why}",
            t.label,
            crate::fs::display_path(path)
        ));
    }
}

/// Which of the hits' fingerprints are the content of a live file of `fs`.
fn live_prints(
    fs: &dyn Filesystem,
    unit: u64,
    hits: &[Hit],
) -> anyhow::Result<HashSet<Fingerprint>> {
    let wanted: HashSet<Fingerprint> = hits.iter().map(|h| h.print).collect();
    let mut found = HashSet::new();
    let unit = usize::try_from(unit).unwrap_or(4096);
    let mut buf = zeroize::Zeroizing::new(vec![0u8; unit]);
    let mut errors: HashMap<String, String> = HashMap::new();
    crate::fs::walk::walk(fs, fs.root(), b"", |e| {
        if e.entry.kind != FileKind::Regular || found.len() == wanted.len() {
            return Ok(true);
        }
        let mut r = match fs.open(e.entry.id) {
            Ok(r) => r,
            Err(err) => {
                errors.insert(crate::fs::display_path(&e.path), err.to_string());
                return Ok(true);
            }
        };
        loop {
            let mut n = 0;
            while n < unit {
                match r.read(&mut buf[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            if n == 0 {
                break;
            }
            buf[n..].fill(0);
            if let Some(p) = residue::fingerprint(&buf)
                && wanted.contains(&p)
            {
                found.insert(p);
            }
            if n < unit {
                break;
            }
        }
        Ok(true)
    })?;
    Ok(found)
}

/// The readable filesystems of a guest, as `verify` expects them back.
pub fn expected_filesystems(guest: &Guest) -> Vec<(crate::image::VolumeKey, String)> {
    guest
        .filesystems
        .iter()
        .map(|f| (f.identity.volume_key(), f.identity.describe()))
        .collect()
}
