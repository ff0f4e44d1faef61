//! Package trust through the scan, on in-memory guests with each database
//! kind: vouched files become vendor notes, changed files stay findings, a
//! broken database vouches for nothing and says why, and nothing is loaded
//! when no detector fired. (The same against real dpkg/rpm output is in
//! tests/package_trust.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use base64::Engine;
use vmscrub_pkgdb::Algo;

use crate::fs::FileKind;
use crate::fs::walk::memfs::MemFs;
use crate::guest::{FsIdentity, Guest, GuestFs};
use crate::ops::{Catalogue, Selection};
use crate::scan::tests::{FakeDetector, SECRET};
use crate::scan::{ScanOptions, ScanResult, WarningKind, scan};

fn hex(a: Algo, data: &[u8]) -> String {
    let mut h = a.hasher();
    h.update(data);
    h.finish().iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(a: Algo, data: &[u8]) -> Vec<u8> {
    let mut h = a.hasher();
    h.update(data);
    h.finish()
}

fn guest(fs: MemFs) -> Guest {
    Guest::new(
        vec![GuestFs {
            identity: FsIdentity {
                fs_type: Some("ext4".into()),
                ..Default::default()
            },
            fs: Arc::new(fs),
        }],
        vec![],
    )
}

fn base() -> MemFs {
    let mut r = MemFs::new();
    r.file("/etc/os-release", b"ID=debian\n");
    r
}

fn run(g: &Guest, trust: bool) -> ScanResult {
    let cat = Catalogue::builtin().unwrap();
    let sel = Selection::resolve(&cat, &["private-keys".to_string()], &[]).unwrap();
    scan(
        g,
        &ScanOptions {
            catalogue: &cat,
            selection: &sel,
            keep: vec![],
            content: Some(&FakeDetector),
            threads: 2,
            progress: None,
            package_trust: trust,
        },
    )
    .unwrap()
}

fn found(r: &ScanResult) -> Vec<String> {
    let mut v: Vec<String> = r
        .findings
        .iter()
        .map(|f| String::from_utf8_lossy(&f.path).into_owned())
        .collect();
    v.sort();
    v
}

fn vendored(r: &ScanResult) -> Vec<String> {
    r.vendor
        .iter()
        .map(|v| String::from_utf8_lossy(&v.path).into_owned())
        .collect()
}

fn pkg_warnings(r: &ScanResult) -> Vec<&str> {
    r.warnings
        .iter()
        .filter(|w| w.kind == WarningKind::PackageDatabase)
        .map(|w| w.message.as_str())
        .collect()
}

/// dpkg with a library file, a conffile, a file recorded under merged-/usr's
/// `/lib`, and one listed file whose content changed.
fn dpkg_guest(status_extra: &[u8], md5sums_extra: &[u8]) -> Guest {
    let mut r = base();
    let changed = [SECRET, b"local edit\n"].concat();
    r.file("/usr/share/keys/test.pem", SECRET);
    r.file("/usr/share/keys/changed.pem", &changed);
    r.file("/etc/keys.conf", SECRET);
    r.file("/usr/lib/keys/alias.pem", SECRET);
    r.put(b"/lib", FileKind::Symlink, b"usr/lib");
    let status = format!(
        "Package: keys\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.2-3\n\
         Conffiles:\n /etc/keys.conf {}\n\n",
        hex(Algo::Md5, SECRET)
    );
    r.file(
        "/var/lib/dpkg/status",
        &[status.as_bytes(), status_extra].concat(),
    );
    let sums = format!(
        "{0}  usr/share/keys/test.pem\n{0}  usr/share/keys/changed.pem\n{0}  lib/keys/alias.pem\n",
        hex(Algo::Md5, SECRET)
    );
    r.file(
        "/var/lib/dpkg/info/keys:amd64.md5sums",
        &[sums.as_bytes(), md5sums_extra].concat(),
    );
    guest(r)
}

#[test]
fn dpkg_vouches_for_matching_files_only() {
    let g = dpkg_guest(b"", b"");
    let r = run(&g, true);
    assert_eq!(found(&r), ["/usr/share/keys/changed.pem"]);
    assert_eq!(
        vendored(&r),
        [
            "/etc/keys.conf",
            "/usr/lib/keys/alias.pem",
            "/usr/share/keys/test.pem"
        ]
    );
    let v = &r.vendor[0];
    assert_eq!(
        (
            v.manager,
            v.package.as_str(),
            v.version.as_str(),
            v.algorithm
        ),
        ("dpkg", "keys", "1.2-3", "md5")
    );
    assert_eq!(v.hits[0].detector, "test-key");
    assert!(pkg_warnings(&r).is_empty(), "{:?}", r.warnings);

    // --no-package-trust: every hit is a finding again.
    let r = run(&g, false);
    assert_eq!(found(&r).len(), 4);
    assert!(r.vendor.is_empty());
}

#[test]
fn corrupt_dpkg_databases_vouch_for_nothing_and_say_why() {
    for (status, sums, why) in [
        (
            &b"Package: x\nConffiles:\n /etc/x nothex\n"[..],
            &b""[..],
            "/var/lib/dpkg/status: line",
        ),
        (b"", b"zz  usr/x\n", "keys:amd64.md5sums: line 4"),
    ] {
        let r = run(&dpkg_guest(status, sums), true);
        assert_eq!(found(&r).len(), 4, "{why}");
        assert!(r.vendor.is_empty());
        let w = pkg_warnings(&r);
        assert_eq!(w.len(), 1, "{:?}", r.warnings);
        assert!(w[0].starts_with("dpkg database not used"), "{}", w[0]);
        assert!(w[0].contains(why), "{} lacks {why}", w[0]);
    }
}

#[test]
fn missing_md5sums_and_missing_status_are_partial_databases() {
    let mut r = base();
    r.file("/usr/share/keys/test.pem", SECRET);
    r.file(
        "/var/lib/dpkg/status",
        b"Package: keys\nStatus: install ok installed\nVersion: 1\n",
    );
    r.put(b"/var/lib/dpkg/info", FileKind::Directory, b"");
    let res = run(&guest(r), true);
    assert_eq!(found(&res).len(), 1);
    assert!(pkg_warnings(&res)[0].contains("no md5sums (partial database)"));

    let mut r = base();
    r.file("/usr/share/keys/test.pem", SECRET);
    r.put(b"/var/lib/dpkg/info", FileKind::Directory, b"");
    let res = run(&guest(r), true);
    assert_eq!(found(&res).len(), 1);
    assert!(pkg_warnings(&res)[0].contains("dpkg database not used"));
    assert!(pkg_warnings(&res)[0].contains("missing"));
}

#[test]
fn databases_are_read_only_when_a_detector_fired() {
    // A corrupt status, but no file with a hit: nothing is loaded, nothing said.
    let mut r = base();
    r.file("/var/lib/dpkg/status", b"garbage without colon\n");
    r.file("/usr/share/doc/readme", b"nothing secret\n");
    let res = run(&guest(r), true);
    assert!(res.findings.is_empty() && res.vendor.is_empty());
    assert!(pkg_warnings(&res).is_empty());
}

#[test]
fn apk_installed_sha1() {
    let mut r = base();
    r.file("/usr/share/keys/test.pem", SECRET);
    r.file("/usr/share/keys/other.pem", SECRET);
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest(Algo::Sha1, SECRET));
    let db = format!(
        "P:keys\nV:1.0-r0\nF:usr/share/keys\nR:test.pem\nZ:Q1{b64}\nR:other.pem\nZ:Q1{}\n\n",
        base64::engine::general_purpose::STANDARD.encode([0u8; 20])
    );
    r.file("/lib/apk/db/installed", db.as_bytes());
    let res = run(&guest(r), true);
    assert_eq!(vendored(&res), ["/usr/share/keys/test.pem"]);
    assert_eq!(res.vendor[0].algorithm, "sha1");
    assert_eq!(res.vendor[0].manager, "apk");
    assert_eq!(found(&res), ["/usr/share/keys/other.pem"]);
}

#[test]
fn python_record_in_a_directory_above() {
    let mut r = base();
    let site = "/opt/app/lib/python3.11/site-packages";
    r.file(&format!("{site}/tinykeys/data/test.pem"), SECRET);
    r.file(&format!("{site}/tinykeys/data/mine.pem"), SECRET);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest(Algo::Sha256, SECRET));
    r.file(
        &format!("{site}/tinykeys-0.1.dist-info/RECORD"),
        format!(
            "tinykeys/data/test.pem,sha256={b64},{}\ntinykeys-0.1.dist-info/RECORD,,\n",
            SECRET.len()
        )
        .as_bytes(),
    );
    r.file(
        &format!("{site}/broken-1.dist-info/RECORD"),
        b"x,md5=abc,1\n",
    );
    let res = run(&guest(r), true);
    assert_eq!(vendored(&res), [format!("{site}/tinykeys/data/test.pem")]);
    let v = &res.vendor[0];
    assert_eq!(
        (
            v.manager,
            v.package.as_str(),
            v.version.as_str(),
            v.algorithm
        ),
        ("python", "tinykeys", "0.1", "sha256")
    );
    assert_eq!(found(&res), [format!("{site}/tinykeys/data/mine.pem")]);
    let w = pkg_warnings(&res);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("broken-1.dist-info/RECORD"), "{}", w[0]);
}
