//! The operations catalogue covers the prior art's concrete paths, judged
//! against a hand transcription of the reference (`tests/data/prior-art-paths.tsv`),
//! not against the catalogue itself.
//!
//! Every row of the TSV is planted in a throw-away root directory (one per guest
//! family: `[rh]`, `[debian]`, `[suse]`), each with the os-release, passwd and
//! marker files the catalogue's OS guards test. `vmscrub scan ROOT --operations all
//! --format json` must then report each path under the operation the row names,
//! and must not report the `-` / `!OP` rows. Every failure of every root is listed
//! at once. The TSV's header explains its columns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::vmscrub_ok;
use serde_json::Value;

const TSV: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/prior-art-paths.tsv"
));

/// Credential stores at well-known places and more programs' histories (issue
/// 22), same columns as `prior-art-paths.tsv`.
const CREDENTIAL_TSV: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/credential-stores.tsv"
));

/// What a file without a content column holds: text no content detector fires on.
const HARMLESS: &[u8] = b"vmscrub catalogue-coverage fixture\n";

/// One guest family's root: what the test itself writes before planting rows.
struct Family {
    name: &'static str,
    /// `ID` the scan must report (proves the os-release was read).
    id: &'static str,
    os_release: &'static str,
    passwd: &'static str,
    /// Empty files whose existence the guards test (src/guest.rs `read_os`).
    marker_files: &'static [&'static str],
    marker_dirs: &'static [&'static str],
}

const FAMILIES: &[Family] = &[
    // linux, rhel-family, id=rhel (rh-subscription-manager, rhn-systemid),
    // systemd, package-format=rpm, package-manager=dnf and yum, lvm2.
    Family {
        name: "rh",
        id: "rhel",
        os_release: "NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"9.4 (Plow)\"\nID=\"rhel\"\n\
                     ID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\n",
        passwd: "root:x:0:0:root:/root:/bin/bash\n\
                 postgres:x:26:26:PostgreSQL Server:/var/lib/pgsql:/bin/bash\n\
                 deploy:x:1000:1000::/srv/deploy:/bin/bash\n\
                 alice:x:1001:1001::/home/alice:/bin/bash\n",
        marker_files: &["/usr/lib/systemd/systemd", "/usr/bin/dnf", "/usr/bin/yum"],
        marker_dirs: &["/var/lib/rpm", "/etc/lvm"],
    },
    // linux, debian-family, systemd, package-format=dpkg, package-manager=apt.
    Family {
        name: "debian",
        id: "debian",
        os_release: "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                     VERSION_ID=\"12\"\nID=debian\n",
        passwd: "root:x:0:0:root:/root:/bin/bash\n\
                 postgres:x:105:111:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n\
                 deploy:x:1000:1000::/srv/deploy:/bin/bash\n\
                 alice:x:1001:1001::/home/alice:/bin/bash\n",
        marker_files: &[
            "/usr/lib/systemd/systemd",
            "/usr/bin/apt-get",
            "/var/lib/dpkg/status",
        ],
        marker_dirs: &[],
    },
    // package-manager=zypper.
    Family {
        name: "suse",
        id: "opensuse-leap",
        os_release: "NAME=\"openSUSE Leap\"\nVERSION=\"15.6\"\nID=\"opensuse-leap\"\n\
                     ID_LIKE=\"suse opensuse\"\nVERSION_ID=\"15.6\"\n",
        passwd: "root:x:0:0:root:/root:/bin/bash\n",
        marker_files: &["/usr/lib/systemd/systemd", "/usr/bin/zypper"],
        marker_dirs: &["/usr/lib/sysimage/rpm"],
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// This operation must report the path.
    Op(String),
    /// No operation may report it.
    Nobody,
    /// This operation must not report it.
    NotOp(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    /// Written by the test (os-release, passwd), only checked.
    Given,
}

#[derive(Debug, Clone)]
struct Row {
    /// The TSV the row comes from (for messages).
    file: &'static str,
    line: usize,
    family: String,
    source: String,
    expect: Expect,
    path: String,
    kind: Kind,
    content: Option<String>,
}

impl Row {
    fn at(&self) -> String {
        format!(
            "{}:{} [{}] ({})",
            self.file, self.line, self.family, self.source
        )
    }
}

fn unescape(s: &str, file: &str, line: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            other => panic!("{file}:{line}: bad escape \\{other:?}"),
        }
    }
    out
}

fn parse(file: &'static str, text: &str) -> Vec<Row> {
    let mut rows = vec![];
    let mut family: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        if let Some(name) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            assert!(
                FAMILIES.iter().any(|f| f.name == name),
                "{file}:{line}: unknown section [{name}]"
            );
            family = Some(name.to_string());
            continue;
        }
        let family = family
            .clone()
            .unwrap_or_else(|| panic!("{file}:{line}: row before any [section]"));
        let cols: Vec<&str> = raw.split('\t').collect();
        assert!(
            (3..=5).contains(&cols.len()),
            "{file}:{line}: expected 3 to 5 TAB-separated columns, got {}: {raw:?}",
            cols.len()
        );
        let (source, expected, path) = (cols[0].trim(), cols[1].trim(), cols[2]);
        assert!(!source.is_empty(), "{file}:{line}: no source");
        let expect = match expected {
            "-" => Expect::Nobody,
            e if e.starts_with('!') && e.len() > 1 => Expect::NotOp(e[1..].to_string()),
            e if !e.is_empty() && !e.contains(char::is_whitespace) => Expect::Op(e.to_string()),
            e => panic!("{file}:{line}: bad expected operation {e:?}"),
        };
        assert!(
            path.starts_with('/')
                && !path.ends_with('/')
                && path[1..]
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".."),
            "{file}:{line}: path must be absolute and normal: {path:?}"
        );
        let kind = match cols.get(3).map(|k| k.trim()).unwrap_or("") {
            "" | "file" => Kind::File,
            "dir" => Kind::Dir,
            "symlink" => Kind::Symlink,
            "given" => Kind::Given,
            k => panic!("{file}:{line}: unknown kind {k:?}"),
        };
        let content = cols.get(4).map(|c| unescape(c, file, line));
        match kind {
            Kind::Symlink => assert!(
                content.as_deref().is_some_and(|t| !t.is_empty()),
                "{file}:{line}: a symlink needs its target in the content column"
            ),
            Kind::Dir | Kind::Given => assert!(
                content.is_none(),
                "{file}:{line}: only files and symlinks take content"
            ),
            Kind::File => {}
        }
        rows.push(Row {
            file,
            line,
            family,
            source: source.to_string(),
            expect,
            path: path.to_string(),
            kind,
            content,
        });
    }
    rows
}

fn host_path(root: &Path, guest: &str) -> PathBuf {
    root.join(guest.trim_start_matches('/'))
}

fn write_file(root: &Path, guest: &str, data: &[u8]) {
    let p = host_path(root, guest);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
}

/// Panics if a directory between `root` and the guest path is a symlink: the
/// file would land somewhere else (e.g. through `/var/run -> /run`).
fn assert_no_symlink_above(root: &Path, guest: &str, row: &Row) {
    let mut p = root.to_path_buf();
    let comps: Vec<&str> = guest[1..].split('/').collect();
    for c in &comps[..comps.len() - 1] {
        p.push(c);
        if let Ok(m) = fs::symlink_metadata(&p) {
            assert!(
                !m.file_type().is_symlink(),
                "{}: {} would be planted through the symlink {}",
                row.at(),
                guest,
                p.display()
            );
        }
    }
}

/// Builds one family's root: the test's own files, then every row.
fn plant(root: &Path, fam: &Family, rows: &[&Row]) {
    write_file(root, "/etc/os-release", fam.os_release.as_bytes());
    write_file(root, "/etc/passwd", fam.passwd.as_bytes());
    for m in fam.marker_files {
        write_file(root, m, b"");
    }
    for d in fam.marker_dirs {
        fs::create_dir_all(host_path(root, d)).unwrap();
    }
    let given = ["/etc/os-release", "/etc/passwd"];

    // One entry per path: its kind (all rows must agree) and the rows' contents.
    let mut plan: BTreeMap<&str, (Kind, Vec<&str>, &Row)> = BTreeMap::new();
    for r in rows {
        let e = plan.entry(r.path.as_str()).or_insert((r.kind, vec![], r));
        assert_eq!(
            e.0,
            r.kind,
            "{}: {} is planted as {:?} by line {} and as {:?} here",
            r.at(),
            r.path,
            e.0,
            e.2.line,
            r.kind
        );
        if let Some(c) = &r.content {
            e.1.push(c);
        }
    }
    // Symlinks first, so that planting through one is caught below.
    for (path, (kind, contents, row)) in &plan {
        if *kind == Kind::Symlink {
            assert_eq!(contents.len(), 1, "{}: one target per symlink", row.at());
            let p = host_path(root, path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(contents[0], &p).unwrap();
        }
    }
    for (path, (kind, contents, row)) in &plan {
        match kind {
            Kind::Symlink => {}
            Kind::Given => assert!(
                given.contains(path),
                "{}: `given` is only for files the test writes ({given:?})",
                row.at()
            ),
            Kind::Dir => {
                assert_no_symlink_above(root, path, row);
                fs::create_dir_all(host_path(root, path)).unwrap();
            }
            Kind::File => {
                assert_no_symlink_above(root, path, row);
                assert!(
                    !given.contains(path),
                    "{}: {path} is written by the test; mark the row `given`",
                    row.at()
                );
                let data = if contents.is_empty() {
                    HARMLESS.to_vec()
                } else {
                    contents.concat().into_bytes()
                };
                write_file(root, path, &data);
            }
        }
    }
}

struct Found {
    operation: String,
    path: String,
    tree: bool,
    skipped: bool,
    note: Option<String>,
}

impl Found {
    /// This finding removes (or reports) `path`: it is the path, or a directory
    /// above it that the operation removes as a tree.
    fn covers(&self, path: &str) -> bool {
        self.path == path
            || (self.tree
                && path.starts_with(self.path.as_str())
                && path.as_bytes().get(self.path.len()) == Some(&b'/'))
    }
}

fn scan(root: &Path, operations: &str) -> Value {
    let root = root.to_str().unwrap();
    let o = vmscrub_ok(
        ["scan", root, "--operations", operations, "--format", "json"],
        0,
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Checks one family's rows against its scan; returns the problems.
fn check(fam: &Family, rows: &[&Row], v: &Value) -> Vec<String> {
    let mut problems = vec![];
    let id = v["guest"]["os"]["id"].as_str();
    if id != Some(fam.id) {
        problems.push(format!(
            "[{}] the scan did not read the os-release: guest.os.id = {id:?}, want {:?}",
            fam.name, fam.id
        ));
    }
    // Planted content is harmless: every finding comes from a path rule.
    let content = &v["summary"]["content_findings"];
    if content != 0 {
        problems.push(format!(
            "[{}] {content} content-detector findings: planted content must be harmless",
            fam.name
        ));
    }
    // Every operation (all are selected), and those whose OS guard fails here.
    let mut ops = BTreeSet::new();
    let mut not_applying = BTreeSet::new();
    for o in v["operations"].as_array().unwrap() {
        let name = o["name"].as_str().unwrap();
        ops.insert(name);
        if o["applies"] == false {
            not_applying.insert(name);
        }
    }
    let found: Vec<Found> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Found {
            operation: f["operation"].as_str().unwrap().to_string(),
            path: f["path"].as_str().unwrap().to_string(),
            tree: f["action"] == "delete-tree" && f["kind"] == "directory",
            skipped: f["skipped"] == true,
            note: f["note"].as_str().map(str::to_string),
        })
        .collect();
    let covering =
        |path: &str| -> Vec<&Found> { found.iter().filter(|f| f.covers(path)).collect() };
    for r in rows {
        let hits = covering(&r.path);
        let reported_by = || -> String {
            let by: BTreeSet<&str> = hits.iter().map(|f| f.operation.as_str()).collect();
            if by.is_empty() {
                "no operation reports it".to_string()
            } else {
                format!("reported by {by:?}")
            }
        };
        match &r.expect {
            Expect::Op(op) => {
                if !ops.contains(op.as_str()) {
                    problems.push(format!(
                        "unknown operation `{op}` for {}: {}; {}",
                        r.path,
                        r.at(),
                        reported_by()
                    ));
                    continue;
                }
                let mine: Vec<&&Found> = hits.iter().filter(|f| f.operation == *op).collect();
                if mine.iter().any(|f| !f.skipped) {
                    continue;
                }
                let mut msg = format!("missing ({op}, {}): {}", r.path, r.at());
                if let Some(f) = mine.first() {
                    let _ = write!(msg, "; only a skipped finding: {:?}", f.note);
                }
                let _ = write!(msg, "; {}", reported_by());
                if not_applying.contains(&op.as_str()) {
                    let _ = write!(msg, "; `{op}`'s OS guard does not hold on [{}]", fam.name);
                }
                problems.push(msg);
            }
            Expect::Nobody => {
                if !hits.is_empty() {
                    let by: BTreeSet<String> = hits
                        .iter()
                        .map(|f| format!("{} at {}", f.operation, f.path))
                        .collect();
                    problems.push(format!(
                        "must not be reported, but is ({}): {} {by:?}",
                        r.path,
                        r.at()
                    ));
                }
            }
            Expect::NotOp(op) => {
                if !ops.contains(op.as_str()) {
                    problems.push(format!("{}: unknown operation `{op}`", r.at()));
                    continue;
                }
                if let Some(f) = hits.iter().find(|f| f.operation == *op) {
                    problems.push(format!(
                        "must not be reported by {op}, but is ({}, via {}): {}",
                        r.path,
                        f.path,
                        r.at()
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn the_tsv_accounts_for_every_virt_sysprep_operation() {
    // Rows or the header's "no paths" notes name all 45 rows of §1.3.
    let missing: Vec<u32> = (1..=45)
        .filter(|n| !TSV.contains(&format!("§1.3 #{n} ")))
        .collect();
    assert!(
        missing.is_empty(),
        "prior-art-paths.tsv names no row for §1.3 #{missing:?}"
    );
}

#[test]
fn every_prior_art_path_is_reported_by_its_operation() {
    check_tsv("prior-art-paths.tsv", TSV, "all");
}

/// The credential-store catalogue (issue 22) and the histories of more programs,
/// judged against a hand-made list of the programs' documented paths. Scanned
/// with the default operations (these must be on without being asked for) less
/// the four content-detector operations: the plants hold invented credentials
/// (`password: hunter2`, `nexusPassword=…`) that the assignment and URI
/// detectors rightly report, and this test judges the path rules alone.
#[test]
fn every_credential_store_path_is_reported_by_its_operation() {
    check_tsv(
        "credential-stores.tsv",
        CREDENTIAL_TSV,
        "defaults,-private-keys,-cloud-credentials,-credential-files,-tokens",
    );
}

/// Plants every row of one TSV in its family's root, scans each root with the
/// `operations` selection and lists every row not reported as the row expects.
fn check_tsv(file: &'static str, text: &str, operations: &str) {
    let rows = parse(file, text);
    let mut problems = vec![];
    let mut checked = 0;
    for fam in FAMILIES {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.family == fam.name).collect();
        assert!(!mine.is_empty(), "{file}: no rows for [{}]", fam.name);
        let dir = tempfile::tempdir().unwrap();
        plant(dir.path(), fam, &mine);
        let v = scan(dir.path(), operations);
        problems.extend(check(fam, &mine, &v));
        checked += mine.len();
    }
    assert_eq!(checked, rows.len());
    assert!(
        problems.is_empty(),
        "{} of {} rows of {file} fail:\n{}",
        problems.len(),
        rows.len(),
        problems.join("\n")
    );
}
