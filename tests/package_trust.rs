//! Package trust end to end, against real package managers' databases:
//!
//! - a Debian 12 cloud root debootstrapped from Debian's packages
//!   (fixtures/debian.toml): detectors do fire on package files
//!   (`libgnutls.so.30.*`, cloud-init's ssh-keys example), `scan` reports them
//!   as vendor notes, `--no-package-trust` as findings; after `scrub` with the
//!   default operations every file of every `/var/lib/dpkg/info/*.md5sums`
//!   passes `md5sum -c` on a `debugfs rdump` of the output, while the conffile
//!   planted with a private key is gone;
//! - dpkg databases corrupted on purpose (copies of the real ones): the scan
//!   falls back to findings with a warning naming the file;
//! - an rpm root made with `rpm --initdb` and packages from `rpmbuild`, read
//!   from `rpmdb.sqlite`, from a Berkeley DB `Packages` made by `db5.3_load`
//!   from the same headers, and from an ndb `Packages.db` holding them (laid
//!   out by a script after rpm's source: Debian's rpm cannot write ndb);
//! - apk's `installed` with SHA-1s from `sha1sum`; a Python `RECORD` written
//!   by `pip install --target` from a wheel `pip wheel` built offline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vmscrub_fixtures::{fixture, run};

fn scan_json(target: &Path, extra: &[&str]) -> Value {
    let mut args: Vec<std::ffi::OsString> = vec!["scan".into(), target.into()];
    args.extend(["--format".into(), "json".into()]);
    args.extend(extra.iter().map(std::ffi::OsString::from));
    let o = common::vmscrub_ok(&args, 0);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn content_paths(v: &Value) -> BTreeSet<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["why"]["type"] == "content")
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

fn vendor_paths(v: &Value) -> BTreeSet<String> {
    v["vendor"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

fn vendor<'a>(v: &'a Value, path: &str) -> &'a Value {
    v["vendor"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["path"] == path)
        .unwrap_or_else(|| panic!("no vendor note for {path}: {:#}", v["vendor"]))
}

fn package_warnings(v: &Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "package-database")
        .map(|w| w["message"].as_str().unwrap().to_string())
        .collect()
}

/// Every path dpkg records (md5sums and conffiles) in the tree, made absolute,
/// read with nothing of vmscrub.
fn dpkg_paths(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(root.join("var/lib/dpkg/info")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md5sums") {
            for l in std::fs::read_to_string(&p).unwrap().lines() {
                out.insert(format!("/{}", l.split_once("  ").unwrap().1));
            }
        }
    }
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    for l in status.lines() {
        if let Some(rest) = l.strip_prefix(" /") {
            out.insert(format!("/{}", rest.split(' ').next().unwrap()));
        }
    }
    out
}

/// The same path with merged-/usr's aliases resolved (`/lib/x` → `/usr/lib/x`).
fn usr(p: &str) -> String {
    for a in ["/bin/", "/sbin/", "/lib/", "/lib64/"] {
        if let Some(rest) = p.strip_prefix(a) {
            return format!("/usr{a}{rest}");
        }
    }
    p.to_string()
}

const GNUTLS: &str = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3";
const CLOUD_EXAMPLE: &str = "/usr/share/doc/cloud-init/examples/cloud-config-ssh-keys.txt";
const PLANTED: &str = "/etc/sudoers.d/README";

#[test]
fn debian_cloud_package_files_are_vendor_notes_not_findings() {
    let disk = fixture("debian-cloud-disk");
    let tree = common::tree_dir("debian-cloud-base");
    let listed: BTreeSet<String> = dpkg_paths(&tree).iter().map(|p| usr(p)).collect();

    // Without package trust the detectors fire on package files (issue 22).
    let audit = scan_json(&disk, &["--no-package-trust"]);
    let hits = content_paths(&audit);
    for p in [GNUTLS, CLOUD_EXAMPLE, PLANTED] {
        assert!(
            hits.contains(p),
            "{p} should fire without package trust: {hits:?}"
        );
    }
    assert!(audit["vendor"].as_array().unwrap().is_empty());

    let r = scan_json(&disk, &[]);
    let hits = content_paths(&r);
    let on_package_files: Vec<&String> = hits
        .iter()
        .filter(|p| listed.contains(*p) && *p != PLANTED)
        .collect();
    assert!(
        on_package_files.is_empty(),
        "content findings on package files: {on_package_files:?}"
    );
    // The conffile with a key pasted in no longer matches its md5: found.
    assert!(hits.contains(PLANTED), "{hits:?}");
    assert!(!vendor_paths(&r).contains(PLANTED));
    // Everything trusted is a dpkg-listed file, and every earlier hit on one is a note.
    let notes = vendor_paths(&r);
    assert!(
        notes.is_subset(&listed),
        "{:?}",
        notes.difference(&listed).collect::<Vec<_>>()
    );
    let before: BTreeSet<String> = content_paths(&audit)
        .into_iter()
        .filter(|p| listed.contains(p) && p != PLANTED)
        .collect();
    assert_eq!(notes, before);
    for p in [GNUTLS, CLOUD_EXAMPLE] {
        let n = vendor(&r, p);
        assert_eq!(n["manager"], "dpkg");
        assert_eq!(n["algorithm"], "md5");
        assert!(!n["hits"].as_array().unwrap().is_empty());
    }
    assert_eq!(vendor(&r, GNUTLS)["package"], "libgnutls30");
    assert_eq!(vendor(&r, CLOUD_EXAMPLE)["package"], "cloud-init");
    assert!(package_warnings(&r).is_empty(), "{:?}", r["warnings"]);
    assert_eq!(r["summary"]["vendor_notes"], notes.len());

    // SARIF: the notes are informational, suppressed results.
    let o = common::vmscrub_ok(
        [
            "scan".as_ref(),
            disk.as_os_str(),
            "--format".as_ref(),
            "sarif".as_ref(),
        ],
        0,
    );
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    let gnutls = s["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == GNUTLS[1..])
        .unwrap();
    assert_eq!(gnutls["kind"], "informational");
    assert_eq!(gnutls["level"], "none");
    assert_eq!(gnutls["properties"]["vendor"]["package"], "libgnutls30");
    assert_eq!(gnutls["suppressions"][0]["kind"], "external");
}

#[test]
fn debian_cloud_scrub_keeps_every_package_file_intact() {
    let disk = fixture("debian-cloud-disk");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clean.img");
    let o = common::vmscrub([
        "scrub".as_ref(),
        "-q".as_ref(),
        disk.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The output's root, taken out by debugfs (no vmscrub code involved).
    let root_off = common::offset_of(&out, 2);
    let part = dir.path().join("root.img");
    run(
        "dd",
        &[
            &format!("if={}", out.display()),
            &format!("of={}", part.display()),
            &"bs=1M",
            &format!("skip={}", root_off >> 20),
            &"status=none",
        ],
    );
    assert_eq!(root_off % (1 << 20), 0);
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&part)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let dump = dir.path().join("dump");
    std::fs::create_dir(&dump).unwrap();
    run(
        "debugfs",
        &[&"-R", &format!("rdump / {}", dump.display()), &part],
    );

    // Every md5sums file, checked by md5sum itself from the dumped root.
    let info = dump.join("var/lib/dpkg/info");
    let mut sums: Vec<PathBuf> = std::fs::read_dir(&info)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md5sums"))
        .collect();
    sums.sort();
    assert!(sums.len() > 100, "{} md5sums files", sums.len());
    let mut files = 0;
    for s in &sums {
        files += std::fs::read_to_string(s).unwrap().lines().count();
        let c = Command::new("md5sum")
            .args(["-c", "--quiet", "--strict"])
            .arg(s)
            .current_dir(&dump)
            .output()
            .unwrap();
        assert!(
            c.status.success(),
            "{}: {}{}",
            s.display(),
            String::from_utf8_lossy(&c.stdout),
            String::from_utf8_lossy(&c.stderr)
        );
    }
    assert!(files > 5000, "{files} files checked");
    // The conffiles too, but for the planted one, which is gone.
    let status = std::fs::read_to_string(dump.join("var/lib/dpkg/status")).unwrap();
    let mut conf = String::new();
    for l in status.lines() {
        if let Some(rest) = l.strip_prefix(" /") {
            let f: Vec<&str> = rest.split(' ').collect();
            if f.len() == 2 && f[0] != &PLANTED[1..] {
                conf.push_str(&format!("{}  {}\n", f[1], f[0]));
            }
        }
    }
    let list = dir.path().join("conffiles.md5");
    std::fs::write(&list, conf).unwrap();
    let c = Command::new("md5sum")
        .args(["-c", "--quiet", "--strict"])
        .arg(&list)
        .current_dir(&dump)
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stdout));
    assert!(
        !dump.join(&PLANTED[1..]).exists(),
        "{PLANTED} holds a key and must be removed"
    );
}

/// A small root made of real dpkg records: cloud-init's status stanza and
/// md5sums from the debootstrapped tree, and the files they list that fire.
fn small_dpkg_root(dir: &Path) -> PathBuf {
    let src = common::tree_dir("debian-cloud-base");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/doc/cloud-init/examples")).unwrap();
    std::fs::copy(src.join("etc/os-release"), root.join("etc/os-release")).unwrap();
    std::fs::copy(
        src.join(&CLOUD_EXAMPLE[1..]),
        root.join(&CLOUD_EXAMPLE[1..]),
    )
    .unwrap();
    let status = std::fs::read_to_string(src.join("var/lib/dpkg/status")).unwrap();
    let stanza = status
        .split("\n\n")
        .find(|s| s.starts_with("Package: cloud-init\n"))
        .unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), format!("{stanza}\n\n")).unwrap();
    std::fs::copy(
        src.join("var/lib/dpkg/info/cloud-init.md5sums"),
        root.join("var/lib/dpkg/info/cloud-init.md5sums"),
    )
    .unwrap();
    root
}

#[test]
fn corrupt_dpkg_databases_fall_back_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_dpkg_root(dir.path());
    let r = scan_json(&root, &[]);
    assert_eq!(
        vendor_paths(&r),
        BTreeSet::from([CLOUD_EXAMPLE.to_string()])
    );
    assert!(content_paths(&r).is_empty());

    // A conffile md5 cut short in status.
    let status_path = root.join("var/lib/dpkg/status");
    let good_status = std::fs::read_to_string(&status_path).unwrap();
    let line = good_status
        .lines()
        .find(|l| l.starts_with(" /etc/"))
        .unwrap();
    std::fs::write(
        &status_path,
        good_status.replace(line, &line[..line.len() - 5]),
    )
    .unwrap();
    let r = scan_json(&root, &[]);
    assert!(r["vendor"].as_array().unwrap().is_empty());
    assert_eq!(
        content_paths(&r),
        BTreeSet::from([CLOUD_EXAMPLE.to_string()])
    );
    let w = package_warnings(&r);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("/var/lib/dpkg/status: line"), "{}", w[0]);
    std::fs::write(&status_path, &good_status).unwrap();

    // A garbled md5sums line.
    let sums = root.join("var/lib/dpkg/info/cloud-init.md5sums");
    let mut text = std::fs::read_to_string(&sums).unwrap();
    text.insert_str(0, "not-an-md5  usr/bin/x\n");
    std::fs::write(&sums, text).unwrap();
    let r = scan_json(&root, &[]);
    assert!(r["vendor"].as_array().unwrap().is_empty());
    assert_eq!(
        content_paths(&r),
        BTreeSet::from([CLOUD_EXAMPLE.to_string()])
    );
    let w = package_warnings(&r);
    assert!(w[0].contains("cloud-init.md5sums: line 1"), "{}", w[0]);
}

const SPEC: &str = r#"Name: keyring-demo
Version: 2.0
Release: 1
Summary: ships a test key
License: MIT
BuildArch: noarch
%description
demo
%install
mkdir -p %{buildroot}/usr/share/keyring-demo %{buildroot}/etc
cp KEYFILE %{buildroot}/usr/share/keyring-demo/test-key.pem
printf 'listen = 1\n' > %{buildroot}/etc/keyring-demo.conf
%files
/usr/share/keyring-demo/test-key.pem
%config(noreplace) /etc/keyring-demo.conf
"#;

fn openssl_key(path: &Path) {
    run(
        "openssl",
        &[
            &"genpkey",
            &"-algorithm",
            &"EC",
            &"-pkeyopt",
            &"ec_paramgen_curve:P-256",
            &"-out",
            &path,
        ],
    );
}

#[test]
fn rpm_sqlite_and_berkeley_db_roots() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("test-key.pem");
    openssl_key(&key);
    let spec = dir.path().join("demo.spec");
    std::fs::write(&spec, SPEC.replace("KEYFILE", &key.display().to_string())).unwrap();
    let top = dir.path().join("top");
    run(
        "rpmbuild",
        &[
            &"--quiet",
            &"--define",
            &format!("_topdir {}", top.display()),
            &"-bb",
            &spec,
        ],
    );
    let root = dir.path().join("root");
    run(
        "rpm",
        &[&"--dbpath", &"/var/lib/rpm", &"--root", &root, &"--initdb"],
    );
    let pkg = top.join("RPMS/noarch/keyring-demo-2.0-1.noarch.rpm");
    run(
        "rpm",
        &[
            &"--dbpath",
            &"/var/lib/rpm",
            &"--root",
            &root,
            &"--nodeps",
            &"--noscripts",
            &"-i",
            &pkg,
        ],
    );
    std::fs::write(root.join("etc/os-release"), "ID=rhel\nID_LIKE=\"fedora\"\n").unwrap();
    // A config of the package edited to hold a key: no longer what rpm recorded.
    let mut conf = std::fs::read(root.join("etc/keyring-demo.conf")).unwrap();
    conf.extend(std::fs::read(&key).unwrap());
    std::fs::write(root.join("etc/keyring-demo.conf"), conf).unwrap();

    let shipped = "/usr/share/keyring-demo/test-key.pem";
    let check = |r: &Value| {
        assert_eq!(
            vendor_paths(r),
            BTreeSet::from([shipped.to_string()]),
            "{:#}",
            r["warnings"]
        );
        let n = vendor(r, shipped);
        assert_eq!(
            (&n["manager"], &n["package"], &n["version"], &n["algorithm"]),
            (
                &"rpm".into(),
                &"keyring-demo".into(),
                &"2.0-1".into(),
                &"sha256".into()
            )
        );
        assert_eq!(
            content_paths(r),
            BTreeSet::from(["/etc/keyring-demo.conf".to_string()])
        );
        assert!(package_warnings(r).is_empty(), "{:?}", package_warnings(r));
    };
    check(&scan_json(&root, &[]));
    let all = scan_json(&root, &["--no-package-trust"]);
    assert_eq!(content_paths(&all).len(), 2);

    // The same headers in a Berkeley DB hash `Packages`, as RHEL 7/8 keep them.
    let db = root.join("var/lib/rpm");
    let load = dir.path().join("load.txt");
    run(
        "python3",
        &[
            &"-c",
            &"import sqlite3,struct,sys\n\
              c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro&immutable=1',uri=True)\n\
              o=open(sys.argv[2],'w')\n\
              for h,b in c.execute('select hnum,blob from Packages'):\n \
              o.write(''.join('\\\\%02x'%x for x in struct.pack('<I',h))+'\\n'+''.join('\\\\%02x'%x for x in b)+'\\n')",
            &db.join("rpmdb.sqlite"),
            &load,
        ],
    );
    run(
        "db5.3_load",
        &[&"-T", &"-t", &"hash", &"-f", &load, &db.join("Packages")],
    );
    // And in SUSE's ndb `Packages.db`, laid out as rpm's lib/backend/ndb/rpmpkg.c
    // writes it (Debian's rpm has no ndb backend to make one): kept aside for below.
    let ndb = dir.path().join("Packages.db");
    run(
        "python3",
        &[&"-c", &NDB_FROM_SQLITE, &db.join("rpmdb.sqlite"), &ndb],
    );
    for f in ["rpmdb.sqlite", "rpmdb.sqlite-wal", "rpmdb.sqlite-shm"] {
        let _ = std::fs::remove_file(db.join(f));
    }
    check(&scan_json(&root, &[]));

    // A Packages file cut in half: rpm vouches for nothing, and says so.
    let data = std::fs::read(db.join("Packages")).unwrap();
    std::fs::write(db.join("Packages"), &data[..data.len() / 2 + 100]).unwrap();
    let r = scan_json(&root, &[]);
    assert!(r["vendor"].as_array().unwrap().is_empty());
    assert_eq!(content_paths(&r).len(), 2);
    let w = package_warnings(&r);
    assert!(
        w[0].starts_with("rpm database not used") && w[0].contains("/var/lib/rpm/Packages"),
        "{w:?}"
    );

    // SUSE: only the ndb Packages.db.
    std::fs::remove_file(db.join("Packages")).unwrap();
    std::fs::copy(&ndb, db.join("Packages.db")).unwrap();
    check(&scan_json(&root, &[]));
    // A flipped byte in a header blob: its Adler-32 no longer matches, nothing is vouched for.
    let mut data = std::fs::read(&ndb).unwrap();
    let at = data.len() - 40;
    data[at] ^= 0x20;
    std::fs::write(db.join("Packages.db"), &data).unwrap();
    let r = scan_json(&root, &[]);
    assert!(r["vendor"].as_array().unwrap().is_empty());
    assert_eq!(content_paths(&r).len(), 2);
    let w = package_warnings(&r);
    assert!(
        w[0].contains("/var/lib/rpm/Packages.db") && w[0].contains("Adler-32"),
        "{w:?}"
    );
}

/// rpm's ndb layout (see formats/pkgdb/tests/rpm_tools.rs): the header blobs of an
/// rpmdb.sqlite in a one-slot-page Packages.db, checksums by zlib's adler32.
const NDB_FROM_SQLITE: &str = r#"
import sqlite3, struct, sys, zlib
c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro&immutable=1', uri=True)
blobs = sorted(c.execute('select hnum, blob from Packages'))
d = bytearray(4096)
d[0:20] = struct.pack('<4sIIII', b'RpmP', 0, 1, 1, max(h for h, _ in blobs) + 1)
for at in range(32, 4096, 16):
    d[at:at + 4] = b'Slot'
for slot, (idx, b) in enumerate(blobs, start=2):
    blkoff = len(d) // 16
    area = struct.pack('<4sIII', b'BlbS', idx, 1700000000, len(b)) + bytes(b)
    blkcnt = (len(area) + 12 + 15) // 16
    area += bytes(blkcnt * 16 - 12 - len(area))
    area += struct.pack('<II4s', zlib.adler32(area) & 0xffffffff, len(b), b'BlbE')
    d += area
    d[slot * 16 + 4:slot * 16 + 16] = struct.pack('<III', idx, blkoff, blkcnt)
open(sys.argv[2], 'wb').write(d)
"#;

#[test]
fn apk_installed_with_real_sha1s() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc/ssl/private")).unwrap();
    std::fs::create_dir_all(root.join("lib/apk/db")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=alpine\n").unwrap();
    openssl_key(&root.join("etc/ssl/private/shipped.pem"));
    openssl_key(&root.join("etc/ssl/private/local.pem"));
    let sha1 =
        String::from_utf8(run("sha1sum", &[&root.join("etc/ssl/private/shipped.pem")])).unwrap();
    let bin: Vec<u8> = (0..20)
        .map(|i| u8::from_str_radix(&sha1[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    use base64::Engine;
    let q1 = base64::engine::general_purpose::STANDARD.encode(bin);
    std::fs::write(
        root.join("lib/apk/db/installed"),
        format!("C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:demo-keys\nV:1.0-r0\nA:x86_64\nF:etc/ssl/private\nR:shipped.pem\na:0:0:600\nZ:Q1{q1}\n\n"),
    )
    .unwrap();
    let r = scan_json(&root, &[]);
    assert_eq!(
        vendor_paths(&r),
        BTreeSet::from(["/etc/ssl/private/shipped.pem".to_string()])
    );
    assert_eq!(
        vendor(&r, "/etc/ssl/private/shipped.pem")["algorithm"],
        "sha1"
    );
    assert_eq!(
        content_paths(&r),
        BTreeSet::from(["/etc/ssl/private/local.pem".to_string()])
    );
}

#[test]
fn python_record_from_pip_install_target() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("proj");
    std::fs::create_dir_all(proj.join("tinykeys")).unwrap();
    std::fs::write(proj.join("tinykeys/__init__.py"), "").unwrap();
    openssl_key(&proj.join("tinykeys/test_key.pem"));
    std::fs::write(
        proj.join("setup.py"),
        "from setuptools import setup\nsetup(name='tinykeys', version='0.3', packages=['tinykeys'], package_data={'tinykeys': ['*.pem']})\n",
    )
    .unwrap();
    let wheels = dir.path().join("wheels");
    run(
        "python3",
        &[
            &"-m",
            &"pip",
            &"wheel",
            &"-q",
            &"--no-deps",
            &"--no-build-isolation",
            &"--no-index",
            &"-w",
            &wheels,
            &proj,
        ],
    );
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let root = dir.path().join("root");
    let site = root.join("opt/app/site-packages");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=debian\n").unwrap();
    run(
        "python3",
        &[
            &"-m",
            &"pip",
            &"install",
            &"-q",
            &"--no-deps",
            &"--no-index",
            &"--target",
            &site,
            &wheel,
        ],
    );
    // A copy pip did not install: same bytes, but no RECORD names its path.
    std::fs::copy(
        site.join("tinykeys/test_key.pem"),
        site.join("tinykeys/copy.pem"),
    )
    .unwrap();
    let r = scan_json(&root, &[]);
    let shipped = "/opt/app/site-packages/tinykeys/test_key.pem";
    assert_eq!(vendor_paths(&r), BTreeSet::from([shipped.to_string()]));
    let n = vendor(&r, shipped);
    assert_eq!(
        (&n["manager"], &n["package"], &n["version"]),
        (&"python".into(), &"tinykeys".into(), &"0.3".into())
    );
    assert_eq!(
        content_paths(&r),
        BTreeSet::from(["/opt/app/site-packages/tinykeys/copy.pem".to_string()])
    );
}
