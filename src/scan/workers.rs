//! The content workers: threads that take regular files off the walk's
//! bounded queue, stream each through the detectors (and, for a scrub, a
//! digest: [`memo`](super::memo)), and collect hits, warnings and counters.

use std::io;
use std::sync::{Mutex, mpsc};

use super::memo::{self, ContentMemo, Digest, DigestReader, Digests};
use super::{ContentHit, ContentScan, ContentScanner, Job, ScanProgress, Warning, WarningKind};
use crate::fs::{Filesystem, display_path};
use crate::guest::Guest;

/// What the workers produce, shared between them.
#[derive(Default)]
pub(super) struct ContentOut {
    /// Files with hits, and the hits.
    pub results: Mutex<Vec<(Job, Vec<ContentHit>)>>,
    /// Files that could not be read, and what nested content could not be.
    pub errors: Mutex<Vec<Warning>>,
    /// Files and bytes scanned.
    pub scanned: Mutex<(u64, u64)>,
    pub memo: Mutex<ContentMemo>,
}

/// One file's content judged: its scan (xattrs included) and, when digests
/// are taken, its digest and whether the scan was the memo's.
struct Judged {
    scan: ContentScan,
    digest: Option<(Digest, Option<ContentScan>)>,
}

/// Runs until the queue closes.
pub(super) fn work(
    guest: &Guest,
    sc: &dyn ContentScanner,
    rx: &Mutex<mpsc::Receiver<Job>>,
    out: &ContentOut,
    progress: Option<&ScanProgress>,
    digests: Digests<'_>,
) {
    loop {
        let job = {
            let Ok(guard) = rx.lock() else { return };
            match guard.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let fs = &*guest.filesystems[job.fs].fs;
        match judge(sc, fs, &job, digests) {
            Ok(j) => out.record(guest, job, j, progress),
            Err(e) => out.unreadable(guest, &job, e),
        }
    }
}

/// Scans one file's content (or takes the memo's judgement of the same
/// bytes), then its `user.*` xattrs, which no digest covers.
fn judge(
    sc: &dyn ContentScanner,
    fs: &dyn Filesystem,
    job: &Job,
    digests: Digests<'_>,
) -> io::Result<Judged> {
    let open = || fs.open(job.meta.id).map_err(io::Error::other);
    let mut j = match digests {
        Digests::Off => Judged {
            scan: sc.scan_file(&job.path, &mut open()?, job.meta.size)?,
            digest: None,
        },
        Digests::Take => scan_and_digest(sc, open()?, job)?,
        Digests::Reuse(m) => {
            let d = memo::digest_of(open()?)?;
            match m.scans.get(&d) {
                Some(known) => Judged {
                    scan: known.clone(),
                    digest: Some((d, None)),
                },
                None => scan_and_digest(sc, open()?, job)?,
            }
        }
    };
    super::xattrs::scan_user_xattrs(sc, fs, job.meta.id, &job.path, &mut j.scan);
    Ok(j)
}

fn scan_and_digest(
    sc: &dyn ContentScanner,
    reader: Box<dyn io::Read + Send + '_>,
    job: &Job,
) -> io::Result<Judged> {
    let mut r = DigestReader::new(reader);
    let scan = sc.scan_file(&job.path, &mut r, job.meta.size)?;
    let d = r.finish()?;
    Ok(Judged {
        digest: Some((d, Some(scan.clone()))),
        scan,
    })
}

impl ContentOut {
    fn record(&self, guest: &Guest, job: Job, j: Judged, progress: Option<&ScanProgress>) {
        let Judged { scan, digest } = j;
        if let Some((d, fresh)) = digest
            && let Ok(mut m) = self.memo.lock()
        {
            m.digests.insert((job.fs, job.meta.id), d);
            match fresh {
                Some(s) => {
                    m.scans.insert(d, s);
                }
                None => m.reused += 1,
            }
        }
        if !scan.notes.is_empty()
            && let Ok(mut v) = self.errors.lock()
        {
            for n in scan.notes {
                v.push(Warning {
                    kind: WarningKind::NestedContent,
                    operation: None,
                    message: format!(
                        "{}: {}: {n}",
                        guest.filesystems[job.fs].identity.describe(),
                        display_path(&job.path)
                    ),
                });
            }
        }
        if let Ok(mut s) = self.scanned.lock() {
            s.0 += 1;
            s.1 += job.meta.size;
        }
        if let Some(p) = progress {
            use std::sync::atomic::Ordering::Relaxed;
            p.files.fetch_add(1, Relaxed);
            p.bytes.fetch_add(job.meta.size, Relaxed);
        }
        if !scan.hits.is_empty()
            && let Ok(mut v) = self.results.lock()
        {
            v.push((job, scan.hits));
        }
    }

    fn unreadable(&self, guest: &Guest, job: &Job, e: io::Error) {
        if let Ok(mut v) = self.errors.lock() {
            v.push(Warning {
                kind: WarningKind::UnreadableFile,
                operation: None,
                message: format!(
                    "{}: {} (content not scanned: {e})",
                    guest.filesystems[job.fs].identity.describe(),
                    display_path(&job.path)
                ),
            });
        }
    }
}
