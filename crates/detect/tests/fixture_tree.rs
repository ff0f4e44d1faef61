//! Walks the built `secrets-root` tree (fixtures/secrets.toml) and checks that every
//! file's findings are exactly what its recipe entry's `expect` field says — and that
//! every other file (decoys, the included minimal root) has none.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use vmscrub_detect::{DetectorId, DetectorSet, Operation, Scanner};

fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            walk(&e.path(), root, out);
        } else if t.is_file() {
            out.push(format!(
                "/{}",
                e.path().strip_prefix(root).unwrap().display()
            ));
        }
    }
}

#[test]
fn every_planted_file_gives_exactly_its_expected_findings() {
    let root = vmscrub_fixtures::fixture("secrets-root");
    let manifest = vmscrub_fixtures::manifest("secrets-root");
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in manifest.as_array().unwrap() {
        if e["type"] == "file" {
            let mut want: Vec<String> = e
                .get("expect")
                .and_then(|x| x.as_array())
                .map(|a| a.iter().map(|d| d.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            for d in &want {
                assert!(
                    DetectorId::from_name(d).is_some(),
                    "recipe names unknown detector {d}"
                );
            }
            want.sort();
            expected.insert(e["path"].as_str().unwrap().to_string(), want);
        }
    }
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    assert!(
        files.len() >= expected.len(),
        "the tree holds every planted file"
    );

    let set = DetectorSet::with_defaults().unwrap();
    let mut scanner = Scanner::new();
    let mut seen_ops = std::collections::BTreeSet::new();
    let mut seen_detectors = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for path in &files {
        let f = File::open(root.join(&path[1..])).unwrap();
        let scan = set.scan_reader(&mut scanner, f).unwrap();
        let mut got: Vec<String> = scan
            .findings
            .iter()
            .map(|f| f.detector.as_str().to_string())
            .collect();
        got.sort();
        let want = expected.get(path).cloned().unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{path}: got {got:?}, want {want:?} ({:?})",
                scan.findings
            ));
        }
        for f in &scan.findings {
            seen_ops.insert(f.operation());
            seen_detectors.insert(f.detector);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The recipe exercises every operation, and the key detectors all fire.
    assert_eq!(
        seen_ops.into_iter().collect::<Vec<_>>(),
        Operation::ALL.to_vec()
    );
    for d in [
        DetectorId::PemPrivateKey,
        DetectorId::OpensshPrivateKey,
        DetectorId::PuttyPrivateKey,
        DetectorId::PgpPrivateKey,
        DetectorId::Ssh2PrivateKey,
        DetectorId::GcpServiceAccount,
        DetectorId::AwsAccessKey,
        DetectorId::Netrc,
        DetectorId::UrlPassword,
        DetectorId::DockerAuth,
        DetectorId::KubeconfigCredentials,
        DetectorId::SecretAssignment,
        DetectorId::Jwt,
        DetectorId::Pkcs12PrivateKey,
        DetectorId::JavaKeystore,
        DetectorId::DerPrivateKey,
        DetectorId::GpgAgentKey,
        DetectorId::RecoveryKey,
        DetectorId::AgeSecretKey,
    ] {
        assert!(seen_detectors.contains(&d), "{d} never fired on the tree");
    }
}

#[test]
fn the_50_mb_file_key_is_at_its_planted_offset() {
    let root = vmscrub_fixtures::fixture("secrets-root");
    let set = DetectorSet::with_defaults().unwrap();
    let f = File::open(root.join("var/backups/disk.img")).unwrap();
    let scan = set.scan_reader(&mut Scanner::new(), f).unwrap();
    assert_eq!(scan.bytes, 50 << 20);
    assert_eq!(scan.findings.len(), 1);
    assert_eq!(scan.findings[0].offset, 33_554_433);
}
