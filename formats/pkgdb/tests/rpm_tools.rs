//! The rpm readers against real tools' output: packages built with `rpmbuild`,
//! installed with `rpm --root … -i` into a fresh `rpm --initdb` database
//! (sqlite, rpm's default backend), judged by `rpm -q --dump` (paths and
//! digests) and by Python's `sqlite3` (the rows' blobs). The same blobs are
//! loaded by Berkeley DB's own `db5.3_load` into hash and btree databases (rpm ≥
//! 4.16 can no longer write one), which the BDB reader must give back. Debian's rpm
//! is built without the ndb backend (`_db_backend ndb` falls back to a dummy
//! database), so the ndb `Packages.db` is written here by a Python script from
//! rpm's documented layout (`lib/backend/ndb/rpmpkg.c`; checksums by zlib's
//! `adler32`, not ours), with rpm's real header blobs inside, two slot pages and a
//! free slot between used ones: the reader must give back exactly the blobs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use vmscrub_pkgdb::{bdb, ndb, rpm, sqlite};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const SPEC: &str = r#"Name: NAME
Version: 1.0
Release: 3
Summary: test package
License: MIT
BuildArch: noarch
%description
test
%install
mkdir -p %{buildroot}/usr/share/NAME %{buildroot}/etc
printf 'hello from NAME\n' > %{buildroot}/usr/share/NAME/a.txt
printf 'key = value\n' > %{buildroot}/etc/NAME.conf
ln -s a.txt %{buildroot}/usr/share/NAME/link
for i in $(seq 1 MANY); do printf "file $i\n" > %{buildroot}/usr/share/NAME/f$i; done
%files
%dir /usr/share/NAME
/usr/share/NAME/*
%config(noreplace) /etc/NAME.conf
"#;

/// Builds packages `tiny` (a few files) and `wide` (300 files: its header
/// spills into SQLite overflow pages) and installs them under `root`.
fn rpm_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    let top = dir.join("top");
    for (name, many) in [("tiny", 1), ("wide", 300)] {
        let spec = dir.join(format!("{name}.spec"));
        std::fs::write(
            &spec,
            SPEC.replace("NAME", name)
                .replace("MANY", &many.to_string()),
        )
        .unwrap();
        run(Command::new("rpmbuild")
            .arg("--quiet")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg("-bb")
            .arg(&spec));
    }
    run(Command::new("rpm")
        .args(["--dbpath", "/var/lib/rpm", "--root"])
        .arg(&root)
        .arg("--initdb"));
    let rpms: Vec<_> = std::fs::read_dir(top.join("RPMS/noarch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    run(Command::new("rpm")
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "--nodeps",
            "--noscripts",
            "-i",
            "--root",
        ])
        .arg(&root)
        .args(&rpms));
    root
}

/// `rpm -q --dump`: (path, digest hex) of every file with a digest.
fn rpm_dump(root: &Path, pkg: &str) -> BTreeSet<(String, String)> {
    let out = run(Command::new("rpm")
        .args(["--dbpath", "/var/lib/rpm", "-q", "--dump", "--root"])
        .arg(root)
        .arg(pkg));
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 3 && f[3].bytes().any(|b| b != b'0')).then(|| (f[0].into(), f[3].into()))
        })
        .collect()
}

fn ours(pkgs: &[vmscrub_pkgdb::Package], name: &str) -> BTreeSet<(String, String)> {
    let p = pkgs.iter().find(|p| p.name == name).unwrap();
    assert_eq!(p.version, "1.0-3");
    p.files
        .iter()
        .map(|f| {
            assert_eq!(f.algo, vmscrub_pkgdb::Algo::Sha256);
            (
                String::from_utf8(f.path.clone()).unwrap(),
                f.digest.iter().map(|b| format!("{b:02x}")).collect(),
            )
        })
        .collect()
}

#[test]
fn sqlite_and_berkeley_db_rpmdbs_read_like_rpm_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = rpm_root(dir.path());
    let db = root.join("var/lib/rpm/rpmdb.sqlite");
    let bytes = std::fs::read(&db).unwrap();

    // Rows through our SQLite reader.
    let mut rows = vec![];
    sqlite::Database::open(&bytes)
        .unwrap()
        .for_each_row("Packages", |rowid, cols| {
            match cols.get(1) {
                Some(sqlite::Value::Blob(b)) => rows.push((rowid, b.clone())),
                other => panic!("row {rowid}: blob column is {other:?}"),
            }
            Ok(())
        })
        .unwrap();
    // Python's sqlite3 (the C library) is the oracle for the rows.
    let py = run(Command::new("python3").arg("-c").arg(format!(
        "import sqlite3,hashlib\nc=sqlite3.connect('file:{}?mode=ro&immutable=1',uri=True)\n\
         for h,b in c.execute('select hnum,blob from Packages order by hnum'): print(h,len(b),hashlib.sha256(b).hexdigest())",
        db.display()
    )));
    let mine: Vec<String> = rows
        .iter()
        .map(|(h, b)| {
            use sha2::Digest;
            format!("{h} {} {:x}", b.len(), sha2::Sha256::digest(b))
        })
        .collect();
    assert_eq!(mine, py.lines().collect::<Vec<_>>());
    assert!(
        rows.iter().any(|(_, b)| b.len() > 4096),
        "the wide header must need overflow pages"
    );

    let pkgs: Vec<_> = rows
        .iter()
        .map(|(_, b)| rpm::parse_header(b).unwrap())
        .collect();
    for name in ["tiny", "wide"] {
        let want = rpm_dump(&root, name);
        assert!(want.len() >= 3);
        assert_eq!(ours(&pkgs, name), want, "{name}");
    }

    // The same headers in Berkeley DB hash and btree files made by db_load.
    let mut text = String::from("");
    for (h, b) in &rows {
        for line in [&(*h as u32).to_le_bytes()[..], b] {
            for x in line {
                text.push_str(&format!("\\{x:02x}"));
            }
            text.push('\n');
        }
    }
    let input = dir.path().join("load.txt");
    std::fs::write(&input, text).unwrap();
    for ty in ["hash", "btree"] {
        let out = dir.path().join(format!("Packages.{ty}"));
        run(Command::new("db5.3_load")
            .args(["-T", "-t", ty, "-c", "db_pagesize=1024", "-f"])
            .arg(&input)
            .arg(&out));
        let data = std::fs::read(&out).unwrap();
        let mut pairs = bdb::pairs(&data).unwrap();
        pairs.sort();
        let mut want: Vec<(Vec<u8>, Vec<u8>)> = rows
            .iter()
            .map(|(h, b)| ((*h as u32).to_le_bytes().to_vec(), b.clone()))
            .collect();
        want.sort();
        assert_eq!(pairs, want, "{ty}");
    }

    // The same blobs in an ndb Packages.db laid out as rpmpkg.c writes one.
    let blobs_dir = dir.path().join("blobs");
    std::fs::create_dir(&blobs_dir).unwrap();
    for (h, b) in &rows {
        std::fs::write(blobs_dir.join(h.to_string()), b).unwrap();
    }
    let ndb_path = dir.path().join("Packages.db");
    run(Command::new("python3")
        .arg("-c")
        .arg(NDB_WRITER)
        .arg(&blobs_dir)
        .arg(&ndb_path));
    let data = std::fs::read(&ndb_path).unwrap();
    let mut got = ndb::blobs(&data).unwrap();
    got.sort();
    let mut want: Vec<(u32, Vec<u8>)> = rows.iter().map(|(h, b)| (*h as u32, b.clone())).collect();
    want.sort();
    assert_eq!(got, want, "ndb");
    let pkgs: Vec<_> = got
        .iter()
        .map(|(_, b)| rpm::parse_header(b).unwrap())
        .collect();
    assert_eq!(ours(&pkgs, "wide"), rpm_dump(&root, "wide"), "ndb wide");
    // A blob cut short (the file truncated inside it) is an error, not fewer packages.
    assert!(ndb::blobs(&data[..data.len() - 16]).is_err());
}

/// rpm's ndb layout: 32-byte header (RpmP, version 0, generation, slot pages, next
/// index), 16-byte slots (Slot, pkgidx, blkoff, blkcnt) filling `slotnpages` pages of
/// 4096 bytes, blobs in 16-byte blocks (BlbS, pkgidx, time, len, blob, zero pad,
/// adler32 of all before, len, BlbE). Two slot pages; slot 3 left free.
const NDB_WRITER: &str = r#"
import os, struct, sys, zlib
src, out = sys.argv[1], sys.argv[2]
blobs = sorted((int(n), open(os.path.join(src, n), 'rb').read()) for n in os.listdir(src))
pages = 2
d = bytearray(pages * 4096)
d[0:20] = struct.pack('<4sIIII', b'RpmP', 0, 5, pages, max(i for i, _ in blobs) + 1)
for at in range(32, pages * 4096, 16):
    d[at:at + 4] = b'Slot'
slot = 2
for idx, b in blobs:
    if slot == 3:
        slot += 1
    blkoff = len(d) // 16
    area = struct.pack('<4sIII', b'BlbS', idx, 1700000000, len(b)) + b
    blkcnt = (len(area) + 12 + 15) // 16
    area += bytes(blkcnt * 16 - 12 - len(area))
    area += struct.pack('<II4s', zlib.adler32(area) & 0xffffffff, len(b), b'BlbE')
    d += area
    d[slot * 16 + 4:slot * 16 + 16] = struct.pack('<III', idx, blkoff, blkcnt)
    slot += 1
open(out, 'wb').write(d)
"#;
