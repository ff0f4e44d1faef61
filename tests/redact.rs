//! Redaction (issue 22 §3): a secret inside the system's own configuration is
//! overwritten in place, and the file keeps working. Judged outside vmscrub:
//! debugfs reads the files and their inodes, `findmnt --tab-file` parses the
//! fstab, `systemd-analyze verify` the unit, e2fsck checks the filesystem, the
//! output's raw bytes are searched for the secrets, and the recovery archive
//! gives back the originals byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scrub.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use support::*;
use vmscrub_fixtures::{fixture, run};

/// Each configuration file of fixtures/redact.toml and the secrets in it.
const CONFIGS: &[(&str, &[&str])] = &[
    ("/etc/fstab", &["Qw7rT2zX9kLm4Np"]),
    ("/etc/systemd/system/myapp.service", &["Hy8uJ3nB6vC1xZ0q"]),
    (
        "/etc/myapp/myapp.conf",
        &["Pl4sM9qW2eR7tY5u", "Zx3cV8bN1mQ6wE"],
    ),
    ("/srv/app/.env", &["Rt5yU1iO9pA3sD7fG2hJ"]),
];
const NOT_CONFIG: (&str, &str) = ("/root/notes.txt", "Kj6hG4fD2sA9lZ3x");

fn cat(image: &Path, path: &str) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f");
    let o = Command::new("debugfs")
        .args(["-R", &format!("dump {path} {}", out.display())])
        .arg(image)
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::read(&out).ok()
}

/// `debugfs stat`'s inode number, mode and owner line, which a redaction keeps.
fn identity(image: &Path, path: &str) -> (String, String) {
    let o = run("debugfs", &[&"-R", &format!("stat {path}"), &image]);
    let text = String::from_utf8_lossy(&o).into_owned();
    let inode = text
        .lines()
        .next()
        .unwrap()
        .split("Type:")
        .next()
        .unwrap()
        .to_string();
    let owner = text
        .lines()
        .find(|l| l.starts_with("User:"))
        .unwrap()
        .split("Size:")
        .next()
        .unwrap()
        .to_string();
    (inode, owner)
}

fn replaced(text: &[u8], secrets: &[&str]) -> Vec<u8> {
    let mut s = String::from_utf8(text.to_vec()).unwrap();
    for v in secrets {
        let with = if v.len() >= 8 {
            "REDACTED".to_string()
        } else {
            "*".repeat(v.len())
        };
        assert_eq!(s.matches(v).count(), 1, "{v} once in the fixture");
        s = s.replace(v, &with);
    }
    s.into_bytes()
}

#[test]
fn configuration_secrets_are_redacted_and_the_files_still_parse() {
    let input = fixture("redact-disk");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.img");
    let vsr = dir.path().join("removed.vsr");
    let k = keys();
    let o = vmscrub(&[
        "scrub".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--recovery".as_ref(),
        vsr.as_os_str(),
        "--recipient".as_ref(),
        k.public().as_os_str(),
        "--report".as_ref(),
        dir.path().join("report.json").as_os_str(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("4 redacted"), "{}", stderr(&o));

    for (path, secrets) in CONFIGS {
        let before = cat(&input, path).unwrap();
        let after = cat(&out, path).unwrap_or_else(|| panic!("{path} is gone"));
        assert_eq!(after, replaced(&before, secrets), "{path}");
        assert_eq!(identity(&input, path), identity(&out, path), "{path}");
    }
    assert!(cat(&out, NOT_CONFIG.0).is_none(), "{} kept", NOT_CONFIG.0);

    // The guest's own parsers read the redacted files.
    let fstab = dir.path().join("fstab");
    std::fs::write(&fstab, cat(&out, "/etc/fstab").unwrap()).unwrap();
    let mounts = run(
        "findmnt",
        &[
            &"--fstab",
            &"--tab-file",
            &fstab,
            &"-n",
            &"-o",
            &"TARGET,OPTIONS",
        ],
    );
    let mounts = String::from_utf8(mounts).unwrap();
    assert!(
        mounts.contains("/mnt/share") && mounts.contains("username=svc,password=REDACTED,vers=3.0"),
        "{mounts}"
    );
    let unit = dir.path().join("myapp.service");
    std::fs::write(
        &unit,
        cat(&out, "/etc/systemd/system/myapp.service").unwrap(),
    )
    .unwrap();
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let v = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .output()
            .unwrap();
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }

    // Nothing of a secret is left anywhere on the disk; the filesystem is clean.
    let raw = std::fs::read(&out).unwrap();
    let all = CONFIGS
        .iter()
        .flat_map(|(_, s)| s.iter())
        .chain(std::iter::once(&NOT_CONFIG.1));
    for s in all {
        assert!(
            !raw.windows(s.len()).any(|w| w == s.as_bytes()),
            "{s} is still in the output's bytes"
        );
    }
    fsck_clean(&out, false);

    // The report says redact with the lines; the archive holds the originals.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let conf = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/myapp/myapp.conf")
        .unwrap();
    assert_eq!(conf["action"], "redact");
    assert_eq!(conf["redact"]["lines"], serde_json::json!([5, 6]));
    let restored = dir.path().join("restored");
    recover(
        &vsr,
        &k.private(),
        &["--extract".as_ref(), restored.as_os_str()],
    );
    for path in CONFIGS.iter().map(|c| c.0).chain([NOT_CONFIG.0]) {
        let original = cat(&input, path).unwrap();
        let back = std::fs::read(restored.join(path.trim_start_matches('/'))).unwrap();
        assert_eq!(back, original, "{path} from the archive");
    }

    // A re-scan of the output finds nothing to do.
    let o = vmscrub(&["scan".as_ref(), out.as_os_str(), "-q".as_ref()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn the_catalogue_shows_which_operations_redact() {
    let o = vmscrub(&["operations", "--verbose"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    for op in ["tokens", "cloud-credentials", "credential-files"] {
        let entry = text
            .split(&format!("\n{op} "))
            .nth(1)
            .unwrap_or_else(|| panic!("{op} not listed"));
        let entry: String = entry
            .lines()
            .enumerate()
            .take_while(|(i, l)| *i == 0 || l.starts_with(' '))
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        assert!(entry.contains("redact: content detectors"), "{op}: {entry}");
    }
    let keys = text.split("\nprivate-keys ").nth(1).unwrap();
    assert!(
        keys.lines()
            .nth(1)
            .unwrap()
            .contains("delete: content detectors")
    );
}

/// A rewrite that writes other bytes than planned (a fault only debug builds can
/// inject: one byte short) fails verification, naming the file; nothing is kept.
#[test]
fn verification_reads_every_edited_file_back() {
    let input = fixture("redact-disk");
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .env("VMSCRUB_FAULT", "short-rewrite")
        .args(["scrub", "-q"])
        .arg(&input)
        .arg("-o")
        .arg(dir.path().join("out.img"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    for (path, _) in CONFIGS {
        assert!(
            stderr(&o).contains(&format!("{path}: its content is not what the scrub wrote")),
            "{path}: {}",
            stderr(&o)
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
