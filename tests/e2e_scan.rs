//! `vmscrub scan` through the binary on the e2e disk (fixtures/e2e.toml) as raw,
//! qcow2 and streamOptimized VMDK: the exact finding set per operation (a
//! reviewed snapshot), every planted secret found by the detector its recipe
//! names and no decoy, selection and `--keep`, exit codes, the SSH host key
//! warning, SARIF against the 2.1.0 schema, and no secret byte in any report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use serde_json::Value;

const SNAPSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/e2e-scan-findings.json"
);

fn scan(img: &Path, extra: &[&str], code: i32) -> Value {
    let mut args = vec!["scan", img.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let o = vmscrub_ok(&args, code);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn path_bytes(f: &Value) -> Vec<u8> {
    match f["path_hex"].as_str() {
        Some(h) => (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect(),
        None => f["path"].as_str().unwrap().as_bytes().to_vec(),
    }
}

fn detectors(f: &Value) -> Vec<String> {
    f["why"]["hits"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|h| h["detector"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Each finding as one stable line, grouped by operation: what, where, why
/// (patterns, or the detectors that fired) — nothing that changes when keys
/// are regenerated (sizes, offsets, fingerprints, inode numbers).
fn finding_set(v: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in v["findings"].as_array().unwrap() {
        let why = match f["why"]["type"].as_str().unwrap() {
            "pattern" => format!("pattern {}", f["why"]["pattern"].as_str().unwrap()),
            _ => format!("content {}", detectors(f).join(",")),
        };
        let mut line = format!(
            "{} {} {} [{}]",
            f["action"].as_str().unwrap(),
            f["kind"].as_str().unwrap(),
            f["path"].as_str().unwrap(),
            why
        );
        if f["shadowed"] == true {
            line.push_str(" shadowed");
        }
        if f["skipped"] == true {
            line.push_str(" skipped");
        }
        if let Some(t) = f.get("tree") {
            line.push_str(&format!(" tree {} files {} dirs", t["files"], t["dirs"]));
        }
        out.entry(f["operation"].as_str().unwrap().to_string())
            .or_default()
            .push(line);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// The whole JSON report without what legitimately differs between containers.
fn normalized(mut v: Value) -> Value {
    v["image"] = Value::Null;
    v
}

#[test]
fn finding_set_is_exact_stable_and_the_same_in_every_container() {
    let mut sets = vec![];
    let mut docs = vec![];
    for (fmt, img) in images() {
        let a = scan(&img, &["--threads", "2"], 0);
        let b = scan(&img, &["--threads", "1"], 0);
        assert_eq!(
            a, b,
            "{fmt}: two runs (2 and 1 threads) give the same report"
        );
        assert_eq!(a["stats"]["filesystems_scanned"], 3);
        sets.push((fmt, finding_set(&a)));
        docs.push((fmt, normalized(a)));
    }
    for (fmt, d) in &docs[1..] {
        assert!(
            *d == docs[0].1,
            "{fmt}: the report differs from the raw image's"
        );
    }
    let got = serde_json::to_string_pretty(&sets[0].1).unwrap() + "\n";
    if std::env::var_os("VMSCRUB_BLESS").is_some() {
        std::fs::write(SNAPSHOT, &got).unwrap();
    }
    let want = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        got == want,
        "the finding set differs from tests/data/e2e-scan-findings.json \
         (review, then VMSCRUB_BLESS=1 to update):\n{got}"
    );
    // A few lines the snapshot must hold whatever else changes.
    let s = &sets[0].1;
    let has = |op: &str, needle: &str| {
        s.get(op)
            .is_some_and(|v| v.iter().any(|l| l.contains(needle)))
    };
    assert!(has("ssh-hostkeys", "/etc/ssh/ssh_host_ed25519_key "));
    assert!(has("random-seed", "/boot/efi/loader/random-seed"));
    assert!(has("private-keys", "/boot/efi/EFI/keys/db.key"));
    assert!(has("private-keys", "/home/bob/.ssh/id_ed25519"));
    assert!(has(
        "private-keys",
        "/home/alice/.ssh/id_ed25519 [content openssh-private-key] shadowed"
    ));
    assert!(has("private-keys", "/srv/odd/k\\xffey"));
    assert!(has("bash-history", "/home/bob/.bash_history"));
    assert!(has("cloud-init-data", "/var/lib/cloud/instances"));
    assert!(has(
        "network-manager-state",
        "/var/lib/NetworkManager/secret_key"
    ));
    assert!(has("dhcp-leases", "/var/lib/dhcp/dhclient.eth0.leases"));
    assert!(has("machine-id", "rewrite regular /etc/machine-id"));
    assert!(has("swapfile", "/swapfile"));
}

/// Every file a recipe plants with `expect` is found by exactly those detectors;
/// every other planted file (the decoys among them) by none.
#[test]
fn every_expected_secret_is_found_and_no_decoy_is() {
    let (_, img) = &images()[1];
    let v = scan(img, &[], 0);
    let mut found: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for f in v["findings"].as_array().unwrap() {
        if f["why"]["type"] == "content" {
            found.entry(path_bytes(f)).or_default().extend(detectors(f));
        }
    }
    let mut expected: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    let mut checked = 0;
    for (tree, prefix) in [
        ("e2e-root", ""),
        ("e2e-home", "/home"),
        ("e2e-esp", "/boot/efi"),
    ] {
        let m = vmscrub_fixtures::manifest(tree);
        let entries = m.as_array().unwrap();
        let expect_of = |path: &str| -> Vec<String> {
            entries
                .iter()
                .find(|e| e["path"] == path)
                .and_then(|e| e["expect"].as_array())
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        for e in entries {
            let want = match e["type"].as_str().unwrap() {
                "file" => expect_of(e["path"].as_str().unwrap()),
                // A hard link is the same file: the detectors see the same bytes.
                "hardlink" => expect_of(e["target"].as_str().unwrap()),
                _ => continue,
            };
            let mut path = prefix.as_bytes().to_vec();
            path.extend(manifest_path(e));
            expected.insert(path, want);
            checked += 1;
        }
    }
    assert!(checked > 80, "{checked}");
    assert!(
        expected.values().filter(|v| !v.is_empty()).count() >= 30,
        "secrets planted"
    );
    for (path, want) in &expected {
        let mut want = want.clone();
        want.sort();
        let mut got = found.get(path).cloned().unwrap_or_default();
        got.sort();
        assert_eq!(got, want, "{}", String::from_utf8_lossy(path));
    }
    for p in found.keys() {
        assert!(
            expected.contains_key(p),
            "content finding on a file no recipe planted: {}",
            String::from_utf8_lossy(p)
        );
    }
}

#[test]
fn selection_and_keep() {
    let (_, img) = &images()[1];
    let all = finding_set(&scan(img, &[], 0));
    assert!(all.contains_key("private-keys"));
    // Deselecting the detector family removes exactly its findings.
    let v = scan(img, &["--operations", "defaults,-private-keys"], 0);
    let mut want = all.clone();
    want.remove("private-keys");
    assert_eq!(finding_set(&v), want);
    assert!(
        !v["selection"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "private-keys")
    );
    // --keep exempts paths (and everything below a kept directory) from every
    // operation, content detectors included.
    let without = |pred: &dyn Fn(&str) -> bool| -> BTreeMap<String, Vec<String>> {
        all.iter()
            .map(|(op, v)| {
                (
                    op.clone(),
                    v.iter()
                        .filter(|l| !pred(l.split(' ').nth(2).unwrap()))
                        .cloned()
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, v)| !v.is_empty())
            .collect()
    };
    let v = scan(img, &["--keep", "/etc/ssh/ssh_host_*"], 0);
    assert_eq!(
        finding_set(&v),
        without(&|p| p.starts_with("/etc/ssh/ssh_host_"))
    );
    let v = scan(img, &["--keep", "/home/bob", "--keep", "/var/log/*"], 0);
    let got = finding_set(&v);
    assert_eq!(
        got,
        without(&|p| p.starts_with("/home/bob") || p.starts_with("/var/log/"))
    );
    assert!(got.contains_key("private-keys") && !got.contains_key("logfiles"));
}

#[test]
fn exit_codes() {
    let (_, img) = &images()[1];
    let img = img.to_str().unwrap();
    vmscrub_ok(["scan", img], 0);
    vmscrub_ok(["scan", img, "--fail-on", "finding"], 1);
    vmscrub_ok(["scan", img, "--fail-on", "secret"], 1);
    vmscrub_ok(["scan", img, "--fail-on", "machine-id"], 1);
    vmscrub_ok(["scan", img, "--fail-on", "abrt-data"], 0);
    // Without the detector operations nothing is a secret.
    let no_detectors = "defaults,-private-keys,-cloud-credentials,-credential-files,-tokens";
    vmscrub_ok(
        [
            "scan",
            img,
            "--operations",
            no_detectors,
            "--fail-on",
            "secret",
        ],
        0,
    );
    vmscrub_ok(
        [
            "scan",
            img,
            "--operations",
            no_detectors,
            "--fail-on",
            "finding",
        ],
        1,
    );
    vmscrub_ok(["scan", img, "--fail-on", "secrets,nonsense"], 2);
    // Errors are 3 whatever the policy: a missing image, a truncated one, garbage.
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.qcow2");
    let bytes = std::fs::read(img).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let garbage = dir.path().join("garbage.img");
    std::fs::write(&garbage, vec![0x5au8; 1 << 20]).unwrap();
    for bad in [
        dir.path().join("missing.img"),
        truncated.clone(),
        garbage.clone(),
    ] {
        let o = vmscrub(["scan", bad.to_str().unwrap(), "--fail-on", "finding"]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "{}: {}",
            bad.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stdout.is_empty(),
            "no report for an image that was not read"
        );
    }
}

/// Removing SSH host keys warns when nothing in the guest regenerates them
/// (Debian without cloud-init), not when cloud-init is installed.
#[test]
fn ssh_host_key_warning_depends_on_cloud_init() {
    let nocloud = vmscrub_fixtures::fixture("e2e-nocloud-disk");
    let v = scan(&nocloud, &[], 0);
    let kinds = |v: &Value| -> Vec<String> {
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(v["guest"]["os"]["id"] == "debian");
    assert!(
        finding_set(&v)["ssh-hostkeys"].len() == 4,
        "host keys found on the image without cloud-init"
    );
    assert!(
        kinds(&v).contains(&"ssh-host-keys".to_string()),
        "{:?}",
        kinds(&v)
    );
    vmscrub_ok(
        ["scan", nocloud.to_str().unwrap(), "--fail-on", "warning"],
        1,
    );
    let v = scan(&nocloud, &["--operations", "defaults,-ssh-hostkeys"], 0);
    assert!(!kinds(&v).contains(&"ssh-host-keys".to_string()));
    for (fmt, img) in images() {
        let v = scan(&img, &[], 0);
        assert!(finding_set(&v)["ssh-hostkeys"].len() == 4);
        assert!(
            !kinds(&v).contains(&"ssh-host-keys".to_string()),
            "{fmt}: cloud-init regenerates host keys"
        );
    }
}

#[test]
fn sarif_is_valid_and_human_names_every_path() {
    let schema: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sarif-schema-2.1.0.json"
    )))
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for (fmt, img) in images() {
        let img = img.to_str().unwrap();
        let json = scan(Path::new(img), &[], 0);
        let findings = json["findings"].as_array().unwrap();
        let o = vmscrub_ok(["scan", img, "--format", "sarif"], 0);
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{fmt}: {errors:#?}");
        assert_eq!(
            doc["runs"][0]["results"].as_array().unwrap().len(),
            findings.len(),
            "{fmt}: one SARIF result per finding"
        );
        // The same findings, not just as many: (rule, filesystem, inode, action).
        let key = |op: &Value, fs: &Value, node: &Value, action: &Value| {
            format!("{op} {fs} {node} {action}")
        };
        let mut from_sarif: Vec<String> = doc["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let p = &r["properties"];
                key(&r["ruleId"], &p["filesystem"], &p["inode"], &p["action"])
            })
            .collect();
        let mut from_json: Vec<String> = findings
            .iter()
            .map(|f| key(&f["operation"], &f["filesystem"], &f["node"], &f["action"]))
            .collect();
        from_sarif.sort();
        from_json.sort();
        assert_eq!(from_sarif, from_json, "{fmt}: SARIF and JSON disagree");
        let o = vmscrub_ok(["scan", img], 0);
        let text = String::from_utf8(o.stdout).unwrap();
        for f in findings {
            let p = f["path"].as_str().unwrap();
            assert!(text.contains(p), "{fmt}: human report lacks {p}");
        }
        assert!(text.contains("OS: Debian GNU/Linux 12 (bookworm)"));
    }
}

/// No report — human, JSON, SARIF, on stdout, stderr or `--output` — holds a
/// byte of any planted secret.
#[test]
fn no_report_contains_secret_material() {
    let mut needles: BTreeSet<String> = [
        "S3cr3t-Pa55-e2e",
        "Fx-n3trc-secret",
        "ghx-fixture-cred-42",
        "Xy7-fixture-pass",
        "9s8F/xq2Lk7mVb3NcR1tYw0uEi4oPa6SdGh5Jz+K",
        "Zq8Lk2mVb7NcR1tYw0uEi4oPa6SdGh5Jz3Xc9Bn1",
    ]
    .map(String::from)
    .into();
    for (tree, prefix) in [("e2e-root", ""), ("e2e-home", ""), ("e2e-esp", "")] {
        let dir = tree_dir(tree);
        for e in vmscrub_fixtures::manifest(tree).as_array().unwrap() {
            if e["expect"].is_null() || e["type"] != "file" {
                continue;
            }
            let rel = manifest_path(e);
            let data = std::fs::read(dir.join(os(&rel[1..]))).unwrap();
            let _ = prefix;
            // Every long run of base64/token characters: key bodies, tokens, secrets.
            for run in data.split(|b| !(b.is_ascii_alphanumeric() || b"+/=_-".contains(b))) {
                if run.len() >= 24 {
                    needles.insert(String::from_utf8(run.to_vec()).unwrap());
                }
            }
        }
    }
    assert!(needles.len() > 100, "{}", needles.len());
    let (_, img) = &images()[1];
    let img = img.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.sarif");
    let mut outputs = vec![];
    for fmt in ["human", "json", "sarif"] {
        let o = vmscrub(["scan", img, "--format", fmt, "--operations", "all"]);
        assert!(matches!(o.status.code(), Some(0)), "{fmt}");
        assert!(o.stdout.len() > 1000);
        outputs.push((fmt.to_string(), o.stdout));
        outputs.push((format!("{fmt} stderr"), o.stderr));
    }
    vmscrub_ok(
        [
            "scan",
            img,
            "--format",
            "sarif",
            "--output",
            out.to_str().unwrap(),
        ],
        0,
    );
    outputs.push(("--output".into(), std::fs::read(&out).unwrap()));
    for (what, bytes) in &outputs {
        let text = String::from_utf8_lossy(bytes);
        for n in &needles {
            assert!(!text.contains(n.as_str()), "{what} holds secret material");
        }
    }
}

/// Reading never writes: the images are byte-identical after every command.
#[test]
fn inputs_are_never_modified() {
    let imgs = images();
    let sums: Vec<(u32, std::time::SystemTime)> = imgs
        .iter()
        .map(|(_, p)| {
            let d = std::fs::read(p).unwrap();
            (
                crc32fast::hash(&d),
                std::fs::metadata(p).unwrap().modified().unwrap(),
            )
        })
        .collect();
    for (_, img) in &imgs {
        let i = img.to_str().unwrap();
        vmscrub_ok(["scan", i, "--operations", "all"], 0);
        vmscrub_ok(["inspect", i], 0);
        vmscrub_ok(["ls", "-R", i, "/"], 0);
        vmscrub_ok(["cat", i, "/var/backups/disk.img"], 0);
    }
    for ((_, p), before) in imgs.iter().zip(sums) {
        let d = std::fs::read(p).unwrap();
        assert_eq!(
            (
                crc32fast::hash(&d),
                std::fs::metadata(p).unwrap().modified().unwrap()
            ),
            before,
            "{}",
            p.display()
        );
    }
}

/// A journal that needs recovery is replayed in memory (issue 13 §4): the scan
/// reads the state the guest's next mount would see, and says so; inspect says
/// so too, and still reports the on-disk flag.
#[test]
fn a_journal_needing_recovery_is_read_with_a_warning() {
    let img = vmscrub_fixtures::fixture("ext4-needs-recovery");
    // A bare filesystem with no OS on it: a data volume, said so.
    let v = scan(&img, &["--data-volume"], 0);
    assert_eq!(v["guest"]["filesystems"].as_array().unwrap().len(), 1);
    let says = |msgs: &[&str]| {
        msgs.iter().any(|m| {
            m.contains("the journal needed recovery")
                && m.contains("in memory; the image is unchanged")
                && m.contains("(dirty, ext4)")
        })
    };
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "guest-view")
        .map(|w| w["message"].as_str().unwrap())
        .collect();
    assert!(says(&warnings), "{warnings:?}");
    let o = vmscrub_ok(["inspect", "--format", "json", img.to_str().unwrap()], 0);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let w: Vec<&str> = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(says(&w), "{w:?}");
    assert_eq!(j["partitions"][0]["filesystem"]["needs_recovery"], true);
    assert_eq!(j["partitions"][0]["filesystem"]["readable"], true);
}
