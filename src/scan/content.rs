//! The scan engine's [`ContentScanner`] over `vmscrub-detect`.
//!
//! The detector set is compiled once per scan from the selected operations (a
//! detector family whose operation is deselected — `--operations -private-keys` —
//! is not even in the prefilter, so it costs nothing). Each worker thread keeps
//! its own [`Scanner`] (1.1 MiB of buffer, zeroized when the thread ends), so
//! files are streamed through in bounded memory with no locking.
//!
//! A hit carries the detector id, its operation, offset, length, the detector's
//! fingerprint of the secret and its human reason — never secret bytes.
//!
//! Archives and compressed files are scanned inside too (`vmscrub-detect`'s nested
//! scanner, default bounds: 4 layers, 512 MiB decompressed per file, 250× per
//! layer, 100 000 members, zips up to 64 MiB): a hit inside names its member, and
//! what a bound or corrupt data kept from being scanned becomes a warning.

use std::cell::RefCell;
use std::io::{self, Read};

use vmscrub_detect::{Config, DetectorSet, Limits, Operation, ScannerPool};

use super::{ContentHit, ContentScan, ContentScanner};
use crate::ops::Selection;

thread_local! {
    static SCANNERS: RefCell<Option<ScannerPool>> = const { RefCell::new(None) };
}

/// The content detectors of the selected operations.
pub struct Detectors {
    set: DetectorSet,
    operations: Vec<Operation>,
    limits: Limits,
}

impl Detectors {
    /// The detectors whose operation `selection` contains; `None` if it contains
    /// none of them (then no file needs to be read for content at all).
    pub fn for_selection(selection: &Selection) -> Result<Option<Detectors>, String> {
        let on: Vec<Operation> = Operation::ALL
            .into_iter()
            .filter(|op| selection.contains(op.as_str()))
            .collect();
        if on.is_empty() {
            return Ok(None);
        }
        let mut config = Config::new();
        for op in Operation::ALL {
            if !on.contains(&op) {
                config = config.disable_operation(op);
            }
        }
        let set = DetectorSet::new(config).map_err(|e| e.to_string())?;
        Ok(Some(Detectors {
            set,
            operations: on,
            limits: Limits::default(),
        }))
    }

    /// The detector operations this set runs.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }
}

impl ContentScanner for Detectors {
    fn scan(&self, path: &[u8], reader: &mut dyn Read, size: u64) -> io::Result<Vec<ContentHit>> {
        self.scan_file(path, reader, size).map(|s| s.hits)
    }

    fn scan_file(
        &self,
        _path: &[u8],
        reader: &mut dyn Read,
        _size: u64,
    ) -> io::Result<ContentScan> {
        SCANNERS.with(|cell| {
            let mut slot = cell.borrow_mut();
            let pool = slot.get_or_insert_with(ScannerPool::new);
            let scan = self
                .set
                .scan_nested(pool, reader, &self.limits)
                .map_err(io::Error::other)?;
            let hits = scan
                .findings
                .into_iter()
                .map(|n| {
                    let f = n.finding;
                    ContentHit {
                        detector: f.detector.as_str().to_string(),
                        operation: f.operation().as_str().to_string(),
                        offset: f.offset,
                        length: f.len,
                        hash: f.fingerprint.to_string(),
                        why: match &n.member {
                            Some(m) => format!("inside {m}: {}", f.why),
                            None => f.why,
                        },
                        value: f.value.filter(|_| n.member.is_none()),
                        member: n.member,
                    }
                })
                .collect();
            Ok(ContentScan {
                hits,
                notes: scan.warnings,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Catalogue;

    /// A fresh ed25519 key from ssh-keygen (keys are never committed).
    fn key() -> String {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("k");
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&k)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read_to_string(k).unwrap()
    }

    fn select(ops: &[&str]) -> Selection {
        let cat = Catalogue::builtin().unwrap();
        let ops: Vec<String> = ops.iter().map(|s| s.to_string()).collect();
        Selection::resolve(&cat, &ops, &[]).unwrap()
    }

    #[test]
    fn names_match_the_catalogue() {
        let cat = Catalogue::builtin().unwrap();
        for op in Operation::ALL {
            let c = cat.get(op.as_str()).unwrap_or_else(|| panic!("{op}"));
            assert!(c.is_content(), "{op} is a content operation");
        }
    }

    #[test]
    fn a_key_inside_a_tar_gz_names_its_member() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/app")).unwrap();
        std::fs::write(dir.path().join("etc/app/id"), key()).unwrap();
        std::fs::write(dir.path().join("etc/app/readme"), "nothing here\n").unwrap();
        let st = std::process::Command::new("tar")
            .arg("-czf")
            .arg(dir.path().join("b.tgz"))
            .arg("-C")
            .arg(dir.path())
            .arg("etc")
            .status()
            .unwrap();
        assert!(st.success());
        let data = std::fs::read(dir.path().join("b.tgz")).unwrap();
        let d = Detectors::for_selection(&select(&["defaults"]))
            .unwrap()
            .unwrap();
        let scan = d
            .scan_file(b"/b.tgz", &mut &data[..], data.len() as u64)
            .unwrap();
        assert!(scan.notes.is_empty(), "{:?}", scan.notes);
        assert_eq!(scan.hits.len(), 1, "{:?}", scan.hits);
        let h = &scan.hits[0];
        assert_eq!(h.detector, "openssh-private-key");
        assert_eq!(h.member.as_deref(), Some("gzip > tar:etc/app/id"));
        assert!(
            h.why.starts_with("inside gzip > tar:etc/app/id: "),
            "{}",
            h.why
        );
    }

    #[test]
    fn finds_keys_without_their_bytes_and_follows_the_selection() {
        let d = Detectors::for_selection(&select(&["defaults"]))
            .unwrap()
            .unwrap();
        let key = key();
        let data = format!("prefix\n{key}");
        let hits = d
            .scan(b"/k", &mut data.as_bytes(), data.len() as u64)
            .unwrap();
        assert_eq!(hits.len(), 1, "{hits:?}");
        let h = &hits[0];
        assert_eq!(
            (h.detector.as_str(), h.operation.as_str(), h.offset),
            ("openssh-private-key", "private-keys", 7)
        );
        assert_eq!(h.length, key.trim_end().len() as u64);
        assert_eq!(h.hash.len(), 32);
        let shown = format!("{hits:?}");
        let body = key.lines().nth(1).unwrap();
        assert!(!shown.contains(body), "{shown}");

        let d = Detectors::for_selection(&select(&["defaults", "-private-keys"]))
            .unwrap()
            .unwrap();
        assert!(!d.operations().contains(&Operation::PrivateKeys));
        assert!(
            d.scan(b"/k", &mut data.as_bytes(), 0).unwrap().is_empty(),
            "private-keys deselected"
        );
        assert!(
            Detectors::for_selection(&select(&["machine-id"]))
                .unwrap()
                .is_none()
        );
    }
}
