//! Reading the guest's package databases into an [`Index`], through the
//! guest's mount view. Each database either loads whole or vouches for
//! nothing, with a warning that names the file and the reason.

use vmscrub_pkgdb::{Package, apk, bdb, dpkg, ndb, record, rpm, sqlite};

use super::{Index, PkgInfo, Python, Record};
use crate::fs::FileKind;
use crate::guest::{Guest, normalize_lexically, read_bounded};

/// Largest rpm database read (RHEL 9's is tens of MiB).
const MAX_DB: u64 = 512 << 20;
/// Largest text database file read (`status`, one `md5sums`, `installed`, `RECORD`).
const MAX_TEXT: u64 = 64 << 20;
/// Most `*.md5sums` files read.
const MAX_MD5SUMS: usize = 100_000;

const RPM_DIRS: [&str; 2] = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"];

/// A guest file's bytes: `Ok(None)` if there is no such file.
fn read(guest: &Guest, path: &str, limit: u64) -> Result<Option<Vec<u8>>, String> {
    let Some((i, id)) = guest.lookup(path.as_bytes(), true) else {
        return Ok(None);
    };
    let fs = &*guest.filesystems[i].fs;
    let m = fs.metadata(id).map_err(|e| format!("{path}: {e}"))?;
    if m.kind != FileKind::Regular {
        return Err(format!("{path}: not a regular file"));
    }
    read_bounded(fs, id, limit)
        .map(Some)
        .map_err(|e| format!("{path}: {e}"))
}

fn size_of(guest: &Guest, path: &str) -> Option<u64> {
    let (i, id) = guest.lookup(path.as_bytes(), true)?;
    guest.filesystems[i].fs.metadata(id).ok().map(|m| m.size)
}

/// Merged-/usr aliases: `/lib` → `/usr/lib` when `/lib` is a symlink there.
fn aliases(guest: &Guest) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = vec![];
    for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let from = format!("/{name}").into_bytes();
        let Some((i, id)) = guest.lookup(&from, false) else {
            continue;
        };
        let fs = &*guest.filesystems[i].fs;
        if !matches!(fs.metadata(id).map(|m| m.kind), Ok(FileKind::Symlink)) {
            continue;
        }
        let Ok(target) = fs.read_link(id) else {
            continue;
        };
        let mut abs = b"/".to_vec();
        abs.extend_from_slice(&target);
        if let Some(to) = normalize_lexically(&abs)
            && to.starts_with(b"/usr/")
        {
            out.push((from, to));
        }
    }
    out
}

pub(super) fn load(guest: &Guest) -> Index {
    let mut idx = Index {
        aliases: aliases(guest),
        ..Default::default()
    };
    if guest.root.is_none() {
        return idx;
    }
    // A manager whose traces are there but whose database is not: missing.
    let traces = |paths: &[&str]| paths.iter().any(|p| guest.exists(p.as_bytes()));
    let take = |idx: &mut Index, manager, r: Result<Option<Vec<Package>>, String>, traces: bool| {
        let r = match r {
            Ok(None) if traces => Err("its database is missing".to_string()),
            r => r,
        };
        match r {
            Ok(Some(pkgs)) => pkgs.into_iter().for_each(|p| idx.add(manager, p)),
            Ok(None) => {}
            Err(e) => idx.warnings.push(format!(
                "{manager} database not used, its files are scanned like any other: {e}"
            )),
        }
    };
    let t = traces(&["/var/lib/dpkg", "/usr/bin/dpkg"]);
    take(&mut idx, "dpkg", load_dpkg(guest), t);
    let t = traces(&["/var/lib/rpm", "/usr/lib/sysimage/rpm", "/usr/bin/rpm"]);
    take(&mut idx, "rpm", load_rpm(guest), t);
    let t = traces(&["/lib/apk/db", "/usr/lib/apk/db", "/sbin/apk"]);
    take(&mut idx, "apk", load_apk(guest), t);
    idx
}

fn load_dpkg(guest: &Guest) -> Result<Option<Vec<Package>>, String> {
    const STATUS: &str = "/var/lib/dpkg/status";
    let Some(status) = read(guest, STATUS, MAX_TEXT)? else {
        return Ok(None);
    };
    let entries = dpkg::parse_status(&status).map_err(|e| format!("{STATUS}: {e}"))?;
    let mut pkgs: Vec<Package> = vec![];
    let mut by_name = std::collections::HashMap::new();
    for e in entries.into_iter().filter(|e| e.installed) {
        by_name.insert((e.package.clone(), e.arch.clone()), pkgs.len());
        pkgs.push(Package {
            name: e.package,
            version: e.version,
            files: e.conffiles,
        });
    }
    const INFO: &str = "/var/lib/dpkg/info";
    let (i, dir) = guest
        .lookup(INFO.as_bytes(), true)
        .ok_or_else(|| format!("{INFO} is missing"))?;
    let fs = &*guest.filesystems[i].fs;
    let list = fs.read_dir(dir).map_err(|e| format!("{INFO}: {e}"))?;
    let mut read_any = false;
    for e in list.iter().take(MAX_MD5SUMS) {
        let Some((name, arch)) = dpkg::md5sums_package(&e.name) else {
            continue;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        let slot = match arch {
            Some(a) => by_name
                .get(&(name.clone(), String::from_utf8_lossy(a).into_owned()))
                .copied(),
            None => by_name
                .iter()
                .find(|((n, _), _)| *n == name)
                .map(|(_, v)| *v),
        };
        // md5sums of a package that is not installed (removed, half-installed) vouch for nothing.
        let Some(slot) = slot else { continue };
        let path = format!("{INFO}/{}", String::from_utf8_lossy(&e.name));
        let text = read_bounded(fs, e.id, MAX_TEXT).map_err(|err| format!("{path}: {err}"))?;
        let files = dpkg::parse_md5sums(&text).map_err(|err| format!("{path}: {err}"))?;
        read_any = true;
        pkgs[slot].files.extend(files);
    }
    if !read_any && !pkgs.is_empty() {
        return Err(format!(
            "{STATUS} lists {} installed packages but {INFO} has no md5sums (partial database)",
            pkgs.len()
        ));
    }
    Ok(Some(pkgs))
}

fn load_rpm(guest: &Guest) -> Result<Option<Vec<Package>>, String> {
    for dir in RPM_DIRS {
        let path = format!("{dir}/rpmdb.sqlite");
        let Some(data) = read(guest, &path, MAX_DB)? else {
            continue;
        };
        // Transactions still in the write-ahead log are not in the main file.
        if size_of(guest, &format!("{path}-wal")).is_some_and(|n| n > 0) {
            return Err(format!(
                "{path}-wal holds transactions not yet in the database (rpm did not close it)"
            ));
        }
        let db = sqlite::Database::open(&data).map_err(|e| format!("{path}: {e}"))?;
        let mut pkgs = vec![];
        db.for_each_row("Packages", |rowid, cols| {
            let Some(sqlite::Value::Blob(b)) = cols.get(1) else {
                return Err(vmscrub_pkgdb::Error::Unsupported(format!(
                    "Packages row {rowid} has no blob"
                )));
            };
            pkgs.push(rpm::parse_header(b)?);
            Ok(())
        })
        .map_err(|e| format!("{path}: {e}"))?;
        return Ok(Some(pkgs));
    }
    for dir in RPM_DIRS {
        let path = format!("{dir}/Packages");
        let Some(data) = read(guest, &path, MAX_DB)? else {
            continue;
        };
        let mut pkgs = vec![];
        for (k, v) in bdb::pairs(&data).map_err(|e| format!("{path}: {e}"))? {
            // Key 0 holds rpm's instance counter, not a header.
            if k.iter().all(|&b| b == 0) && v.len() < 8 {
                continue;
            }
            pkgs.push(rpm::parse_header(&v).map_err(|e| format!("{path}: {e}"))?);
        }
        return Ok(Some(pkgs));
    }
    for dir in RPM_DIRS {
        let path = format!("{dir}/Packages.db");
        let Some(data) = read(guest, &path, MAX_DB)? else {
            continue;
        };
        let mut pkgs = vec![];
        for (_, blob) in ndb::blobs(&data).map_err(|e| format!("{path}: {e}"))? {
            pkgs.push(rpm::parse_header(&blob).map_err(|e| format!("{path}: {e}"))?);
        }
        return Ok(Some(pkgs));
    }
    Ok(None)
}

fn load_apk(guest: &Guest) -> Result<Option<Vec<Package>>, String> {
    for path in ["/lib/apk/db/installed", "/usr/lib/apk/db/installed"] {
        if let Some(t) = read(guest, path, MAX_TEXT)? {
            return apk::parse_installed(&t)
                .map(Some)
                .map_err(|e| format!("{path}: {e}"));
        }
    }
    Ok(None)
}

/// RECORD entries of every `*.dist-info` directly in guest directory `dir`,
/// as (guest path, record); a RECORD that does not parse is a warning.
pub(super) fn site_records(guest: &Guest, dir: &[u8], py: &mut Python) -> Vec<(Vec<u8>, Record)> {
    let mut out = vec![];
    let Some((i, id)) = guest.lookup(dir, true) else {
        return out;
    };
    let fs = &*guest.filesystems[i].fs;
    let Ok(list) = fs.read_dir(id) else {
        return out;
    };
    for e in list {
        let Some(stem) = e.name.strip_suffix(b".dist-info") else {
            continue;
        };
        if e.kind != FileKind::Directory {
            continue;
        }
        let rid = fs.read_dir(e.id).ok().and_then(|l| {
            l.into_iter()
                .find(|x| x.name == b"RECORD" && x.kind == FileKind::Regular)
        });
        let Some(rid) = rid.map(|x| x.id) else {
            continue;
        };
        let mut shown = dir.to_vec();
        shown.extend_from_slice(b"/");
        shown.extend_from_slice(&e.name);
        shown.extend_from_slice(b"/RECORD");
        let shown = crate::fs::display_path(&shown);
        let parsed = read_bounded(fs, rid, MAX_TEXT)
            .map_err(|err| err.to_string())
            .and_then(|t| record::parse_record(&t).map_err(|err| err.to_string()));
        let rows = match parsed {
            Ok(r) => r,
            Err(err) => {
                py.warnings.push(format!(
                    "python RECORD not used, the files it lists are scanned like any other: {shown}: {err}"
                ));
                continue;
            }
        };
        // `name-version.dist-info`: the name has no `-` (wheel escaping).
        let stem = String::from_utf8_lossy(stem);
        let (name, version) = stem.split_once('-').unwrap_or((&stem, ""));
        let pkg = py.pkgs.len() as u32;
        py.pkgs.push(PkgInfo {
            manager: "python",
            name: name.to_string(),
            version: version.to_string(),
        });
        for r in rows {
            let mut p = dir.to_vec();
            p.push(b'/');
            p.extend_from_slice(&r.path);
            let Some(p) = normalize_lexically(&p) else {
                continue;
            };
            out.push((
                p,
                Record {
                    pkg,
                    algo: r.algo,
                    digest: r.digest,
                },
            ));
        }
    }
    out
}
