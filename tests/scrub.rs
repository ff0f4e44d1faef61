//! `vmscrub scrub` end to end, judged by tools that share no code with vmscrub:
//! `e2fsck -fn` and `fsck.fat -n` on every output filesystem, `debugfs rdump` and
//! `mcopy` for the trees before and after, `sfdisk` for the table, `qemu-img
//! compare/check` for the containers, Python's `cryptography` (the standalone
//! decryptor) and `tarfile` for the recovery archive, and raw byte searches for
//! the planted markers and for windows of every removed file's content.
//!
//! The image is fixtures/scrub.toml's: a GPT disk with an ESP, an ext4 root and an
//! inline-data /home, holding the e2e system's secrets plus marker plants in every
//! shape the editors handle (large, fragmented, sparse, inline, hard-linked, with
//! xattrs, deep trees, a fragmented FAT file, long and non-ASCII FAT names).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scrub.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::*;
use vmscrub_fixtures::{repo_root, run};

/// Markers planted in everything the rules and the default operations remove.
const MARKERS: &[&str] = &[
    "SECRETDATA_",
    "SECRETNAME_",
    "SECRETXATTR_",
    "SECRETLINK_",
    "CONTENTMARKER-",
    "AUTH-LOG-MARKER",
    "S3cr3t-Pa55-e2e",
    "AKIAZ7FIXTUREBOB2E2E",
];

struct Scrubbed {
    dir: tempfile::TempDir,
    out: PathBuf,
    archive: PathBuf,
    report: Value,
}

fn scrub(input: &Path, extra: &[&str]) -> Scrubbed {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clean.img");
    let archive = dir.path().join("removed.vsr");
    let report = dir.path().join("report.json");
    let mut args: Vec<std::ffi::OsString> = vec![
        "scrub".into(),
        "-q".into(),
        input.into(),
        "-o".into(),
        out.clone().into(),
        "--rules".into(),
        rules().into(),
        "--recovery".into(),
        archive.clone().into(),
        "--recipient".into(),
        keys().public().into(),
        "--report".into(),
        report.clone().into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let o = vmscrub(&args);
    assert_eq!(o.status.code(), Some(0), "scrub failed:\n{}", stderr(&o));
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    Scrubbed {
        dir,
        out,
        archive,
        report,
    }
}

/// Is `line` sequence `new` what `old` becomes with some lines dropped?
fn drops_lines_only(old: &[u8], new: &[u8]) -> bool {
    let mut old_lines = old.split_inclusive(|&b| b == b'\n');
    new.split_inclusive(|&b| b == b'\n')
        .all(|l| old_lines.any(|o| o == l))
}

/// Is `new` what `old` becomes with values overwritten in place: the same lines,
/// each identical or with one run replaced by `REDACTED` (or `*`s) no longer
/// than what it replaced, and at least one such line?
fn redacted_only(old: &[u8], new: &[u8]) -> bool {
    let (o, n): (Vec<&[u8]>, Vec<&[u8]>) = (
        old.split_inclusive(|&b| b == b'\n').collect(),
        new.split_inclusive(|&b| b == b'\n').collect(),
    );
    // One placeholder somewhere in `n`, the rest of the line as in `o`.
    let redacted_line = |o: &[u8], n: &[u8]| {
        let fits = |at: usize, len: usize| {
            let (head, tail) = (&n[..at], &n[at + len..]);
            o.len() >= n.len() && o.starts_with(head) && o.ends_with(tail)
        };
        let named =
            (0..n.len().saturating_sub(7)).any(|i| n[i..].starts_with(b"REDACTED") && fits(i, 8));
        let starred = (0..n.len()).any(|i| {
            let run = n[i..].iter().take_while(|&&c| c == b'*').count();
            run > 0 && run < 8 && fits(i, run)
        });
        named || starred
    };
    o.len() == n.len() && o != n && o.iter().zip(&n).all(|(o, n)| o == n || redacted_line(o, n))
}

/// What the rules and the catalogue say each rewritten file becomes.
fn expected_rewrite(guest_path: &str, old: &[u8], new: &[u8]) {
    match guest_path {
        "/etc/hosts" | "/etc/fstab" => {
            assert!(new.len() < old.len(), "{guest_path}: not shorter");
            assert!(
                drops_lines_only(old, new),
                "{guest_path}: more than lines dropped"
            );
        }
        _ => assert_eq!(
            new, b"uninitialized\n",
            "{guest_path}: rewritten to something else"
        ),
    }
}

/// Trees before and after: exactly the planned paths are gone or changed, the
/// rest is identical (content, mode, owner, mtime, link target).
fn check_tree(part: u32, before: &Dump, after: &Dump, acts: &[(u32, Vec<u8>, String, String)]) {
    let acts: Vec<_> = acts.iter().filter(|a| a.0 == part).collect();
    let root = is_root();
    for (p, n) in &before.tree {
        let act = acts
            .iter()
            .find(|a| under(p, &a.1) && (a.3 == "delete-tree" || a.1 == *p));
        match act.map(|a| a.3.as_str()) {
            Some("delete" | "delete-tree") => {
                assert!(
                    !after.tree.contains_key(p),
                    "partition {part}: {} survived its removal",
                    String::from_utf8_lossy(p)
                );
                continue;
            }
            Some(kind @ ("truncate" | "rewrite" | "redact")) => {
                let a = after.tree.get(p).unwrap_or_else(|| {
                    panic!("{} was removed, not shrunk", String::from_utf8_lossy(p))
                });
                assert_eq!((a.kind, a.mode), (n.kind, n.mode), "{kind} keeps mode");
                if root {
                    assert_eq!((a.uid, a.gid), (n.uid, n.gid), "{kind} keeps owner");
                }
                if kind == "truncate" {
                    assert_eq!(a.size, 0, "{} not empty", String::from_utf8_lossy(p));
                } else if kind == "redact" {
                    assert!(
                        redacted_only(&before.content(p), &after.content(p)),
                        "{}: more than secret values changed",
                        String::from_utf8_lossy(p)
                    );
                } else {
                    let guest = &act.unwrap().2;
                    expected_rewrite(guest, &before.content(p), &after.content(p));
                }
                continue;
            }
            _ => {}
        }
        let a = after.tree.get(p).unwrap_or_else(|| {
            panic!(
                "partition {part}: untouched {} is missing",
                String::from_utf8_lossy(p)
            )
        });
        let (mut a, mut n) = (a.clone(), n.clone());
        if !root || part == 1 {
            // Owners come from the dumping tool, not the image, on FAT and as non-root.
            (a.uid, a.gid, n.uid, n.gid) = (0, 0, 0, 0);
        }
        // mtools gives directories the time of the copy.
        if part == 1 && a.kind == 'd' {
            (a.mtime, n.mtime) = (0, 0);
        }
        assert_eq!(
            a,
            n,
            "partition {part}: untouched {} changed",
            String::from_utf8_lossy(p)
        );
    }
    for p in after.tree.keys() {
        assert!(
            before.tree.contains_key(p),
            "partition {part}: {} appeared",
            String::from_utf8_lossy(p)
        );
    }
}

/// No marker anywhere in the output's raw bytes (the input has each of them).
fn no_markers(input: &Path, out: &Path) {
    let i = std::fs::read(input).unwrap();
    let o = std::fs::read(out).unwrap();
    let ac = aho_corasick::AhoCorasick::new(MARKERS).unwrap();
    let mut seen_in: BTreeSet<usize> = BTreeSet::new();
    for m in ac.find_iter(&i) {
        seen_in.insert(m.pattern().as_usize());
    }
    assert_eq!(seen_in.len(), MARKERS.len(), "the input lacks a marker");
    if let Some(m) = ac.find(&o) {
        panic!(
            "marker {} survives at byte {} of the output",
            MARKERS[m.pattern().as_usize()],
            m.start()
        );
    }
}

/// Windows of every removed file's content (start, middle, end; skipping
/// windows too repetitive to mean anything) must not be in the output's raw
/// bytes — unless a file still in the output holds the same bytes.
fn no_removed_content(
    out: &Path,
    before: &BTreeMap<u32, (PathBuf, Dump)>,
    after: &BTreeMap<u32, (PathBuf, Dump)>,
    acts: &[(u32, Vec<u8>, String, String)],
) {
    const W: usize = 48;
    let mut windows: Vec<Vec<u8>> = Vec::new();
    for (part, (_, d)) in before {
        for (p, n) in &d.tree {
            if n.kind != 'f' || n.size < W as u64 {
                continue;
            }
            let Some(a) = acts
                .iter()
                .find(|a| a.0 == *part && under(p, &a.1) && (a.3 == "delete-tree" || a.1 == *p))
            else {
                continue;
            };
            let old = d.content(p);
            let new = if a.3 == "rewrite" {
                after[part].1.content(p)
            } else {
                vec![]
            };
            for at in [0, old.len() / 2 - W / 2, old.len() - W] {
                let w = &old[at..at + W];
                let distinct: HashSet<u8> = w.iter().copied().collect();
                if distinct.len() < 12 || new.windows(W).any(|x| x == w) {
                    continue;
                }
                windows.push(w.to_vec());
            }
        }
    }
    assert!(
        windows.len() > 100,
        "too few windows to mean anything: {}",
        windows.len()
    );
    let ac = aho_corasick::AhoCorasick::new(&windows).unwrap();
    let o = std::fs::read(out).unwrap();
    let found: BTreeSet<usize> = ac
        .find_overlapping_iter(&o)
        .map(|m| m.pattern().as_usize())
        .collect();
    'w: for i in found {
        for (_, d) in after.values() {
            for (p, n) in &d.tree {
                if n.kind == 'f' && d.content(p).windows(W).any(|x| x == windows[i]) {
                    continue 'w;
                }
            }
        }
        panic!("removed content survives in the output: window {i}");
    }
}

/// The archive's members, read by Python's tarfile from the tar made without
/// vmscrub (`age -d | zstd -d`, or the standalone decryptor for v1); the tar
/// `vmscrub recover` makes is the same bytes.
fn archive_members(s: &Scrubbed) -> Vec<Value> {
    let py_tar = s.dir.path().join("py.tar");
    independent_tar(&s.archive, &keys().private(), &py_tar);
    let our_tar = s.dir.path().join("our.tar");
    recover(
        &s.archive,
        &keys().private(),
        &["-o".as_ref(), our_tar.as_os_str()],
    );
    assert_eq!(
        file_sha(&py_tar),
        file_sha(&our_tar),
        "the two decryptors disagree"
    );
    let list = run(
        "python3",
        &[&repo_root().join("tests/data/tar_manifest.py"), &py_tar],
    );
    serde_json::from_slice(&list).unwrap()
}

fn bytes(hex_value: &Value) -> Vec<u8> {
    hex::decode(hex_value.as_str().unwrap()).unwrap()
}

fn check_archive(s: &Scrubbed, before: &BTreeMap<u32, (PathBuf, Dump)>) {
    let members = archive_members(s);
    let acts = actions(&s.report);
    let by_name: BTreeMap<Vec<u8>, &Value> = members
        .iter()
        .filter(|m| !(m["type"] == "hardlink" && m["linkname_hex"] == m["name_hex"]))
        .map(|m| (bytes(&m["name_hex"]), m))
        .collect();
    let root = is_root();
    let mut expected: BTreeSet<Vec<u8>> = BTreeSet::new();
    for (part, fs_path, guest, _) in &acts {
        // The root filesystem's files hidden under /home are archived by partition.
        let shadowed = *part == 2 && guest.starts_with("/home/");
        let d = &before[part].1;
        for (p, n) in d
            .tree
            .range(fs_path.clone()..)
            .take_while(|(p, _)| p.starts_with(fs_path))
            .filter(|(p, _)| under(p, fs_path))
        {
            let name = archive_name(*part, p, shadowed);
            expected.insert(name.clone());
            let m = by_name.get(&name).unwrap_or_else(|| {
                panic!("{} is not in the archive", String::from_utf8_lossy(&name))
            });
            let what = String::from_utf8_lossy(&name);
            match n.kind {
                'f' if m["type"] == "hardlink" => {
                    // A second name: the first one carries the bytes.
                    let target = by_name[&bytes(&m["linkname_hex"])];
                    assert_eq!(target["sha256"], hex::encode(n.sha), "{what}");
                }
                'f' => {
                    assert_eq!(m["type"], "file", "{what}");
                    assert_eq!(m["sha256"], hex::encode(n.sha), "{what}: content");
                    assert_eq!(m["mtime"].as_f64().unwrap() as i64, n.mtime, "{what}");
                }
                'l' => {
                    assert_eq!(m["type"], "symlink", "{what}");
                    assert_eq!(bytes(&m["linkname_hex"]), n.target, "{what}");
                }
                'd' => assert_eq!(m["type"], "dir", "{what}"),
                _ => unreachable!(),
            }
            if n.kind != 'l' && *part != 1 {
                assert_eq!(m["mode"].as_u64().unwrap() as u32, n.mode, "{what}: mode");
                if root {
                    assert_eq!(
                        (
                            m["uid"].as_u64().unwrap() as u32,
                            m["gid"].as_u64().unwrap() as u32
                        ),
                        (n.uid, n.gid),
                        "{what}: owner"
                    );
                }
            }
        }
    }
    // What debugfs does not dump (devices, fifos) is in the archive too, and
    // nothing unrelated is.
    for (name, m) in &by_name {
        if expected.contains(name) {
            continue;
        }
        let t = m["type"].as_str().unwrap();
        assert!(
            ["char", "block", "fifo"].contains(&t),
            "unexpected {t} member {}",
            String::from_utf8_lossy(name)
        );
        assert!(
            expected.iter().any(|e| under(name, e)),
            "{} is in the archive but was not removed",
            String::from_utf8_lossy(name)
        );
    }
    let m = |n: &str| by_name[n.as_bytes()];
    let null = m("scrub/tree/SECRETNAME_20_d1/SECRETNAME_44_null");
    assert_eq!(
        (
            null["type"].as_str(),
            null["devmajor"].as_u64(),
            null["devminor"].as_u64()
        ),
        (Some("char"), Some(1), Some(3))
    );
    assert_eq!(
        m("scrub/tree/SECRETNAME_20_d1/SECRETNAME_39_fifo")["type"],
        "fifo"
    );
    // Hard links inside one removed set are stored once.
    let hl = [
        m("scrub/links/SECRETNAME_11_a"),
        m("scrub/links/SECRETNAME_12_b"),
    ];
    assert_eq!(hl.iter().filter(|x| x["type"] == "hardlink").count(), 1);
    // xattrs travel as pax records (hex of the value).
    let x = &m("scrub/xattr/SECRETNAME_06_ext")["pax"];
    assert_eq!(
        x["SCHILY.xattr.user.secret"].as_str().unwrap(),
        hex::encode("SECRETXATTR_06:".repeat(60))
    );
    assert_eq!(x["SCHILY.xattr.user.small"], hex::encode("s"));
    // The sparse file is stored sparse (its content, holes filled by tarfile,
    // was compared above) …
    let sparse = &m("scrub/frag/SECRETNAME_41_sparse")["pax"];
    assert_eq!(sparse["GNU.sparse.major"], hex::encode("1"));
    assert_eq!(
        sparse["GNU.sparse.realsize"],
        hex::encode((8u64 << 20).to_string())
    );
    // … and the manifest rides along as the pax global header's comment.
    assert!(
        members.iter().any(|m| m["pax"]["comment"]
            .as_str()
            .is_some_and(|c| String::from_utf8(hex::decode(c).unwrap())
                .unwrap()
                .contains("vmscrub-manifest/1"))),
        "no manifest"
    );
    // Sockets cannot be archived and are counted instead.
    assert_eq!(
        s.report["scrub"]["recovery"]["sockets_skipped"].as_u64(),
        Some(2),
        "one socket in each /scrub tree"
    );
}

#[test]
fn scrub_removes_exactly_the_plan_and_keeps_everything_else() {
    let input = image("scrub-disk");
    let input_sha = file_sha(&input);
    let s = scrub(&input, &[]);
    assert_eq!(file_sha(&input), input_sha, "the input changed");
    assert_eq!(s.report["scrub"]["dry_run"], false);
    assert!(
        s.report["scrub"]["verification"]["problems"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The table is the same table.
    assert_eq!(partitions(&input), partitions(&s.out));
    let work = s.dir.path();
    let before = dumps(&input, work);
    let after = dumps(&s.out, work);
    for (n, (img, _)) in &after {
        fsck_clean(img, *n == 1);
    }
    let acts = actions(&s.report);
    assert!(acts.len() > 80, "{} actions", acts.len());
    for (n, (_, b)) in &before {
        check_tree(*n, b, &after[n].1, &acts);
    }
    // Independently of the plan: every planted name is gone from the trees.
    for (n, (_, d)) in &after {
        for p in d.tree.keys() {
            let p = String::from_utf8_lossy(p);
            assert!(
                !p.contains("SECRETNAME_") && !p.contains("NAMEMARKER"),
                "partition {n}: {p} survived"
            );
        }
    }
    no_markers(&input, &s.out);
    no_removed_content(&s.out, &before, &after, &acts);
    check_archive(&s, &before);
    check_extract(&s, &before);
    // A removed tree is reported with what debugfs saw in it (plus the fifo,
    // socket and device debugfs does not dump), on ext4 and on FAT alike.
    for (part, tree, specials) in [(2u32, &b"/scrub/tree"[..], 3u64), (1, b"/secrets", 0)] {
        let d = &before[&part].1;
        let below: Vec<&Node> = d
            .tree
            .iter()
            .filter(|(p, _)| under(p, tree) && p.as_slice() != tree)
            .map(|(_, n)| n)
            .collect();
        let a = s.report["scrub"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["fs_path"].as_str().unwrap().as_bytes() == tree)
            .unwrap();
        let dirs = 1 + below.iter().filter(|n| n.kind == 'd').count() as u64;
        let files = below.iter().filter(|n| n.kind != 'd').count() as u64 + specials;
        let bytes: u64 = below.iter().filter(|n| n.kind == 'f').map(|n| n.size).sum();
        assert_eq!(
            (a["dirs"].as_u64(), a["files"].as_u64()),
            (Some(dirs), Some(files)),
            "{}",
            String::from_utf8_lossy(tree)
        );
        // Hard links are dumped as copies: bytes count each name's content once per
        // name in the dump but once per inode in the scrub, so compare loosely.
        assert!(a["bytes"].as_u64().unwrap() <= bytes && a["bytes"].as_u64().unwrap() > 0);
    }
}

/// The same image in every container scrubs to the same bytes, and every
/// output format holds exactly those bytes.
#[test]
fn containers_and_output_formats_agree() {
    let raw = scrub(&image("scrub-disk"), &[]);
    for input in ["scrub-qcow2", "scrub-vmdk"] {
        let s = scrub(&image(input), &["-O", "raw"]);
        assert_eq!(
            file_sha(&s.out),
            file_sha(&raw.out),
            "{input}: scrubbed to different bytes"
        );
    }
    for (fmt, sub) in [("vmdk", "streamOptimized"), ("vmdk", "monolithicSparse")] {
        let s = scrub(&image("scrub-disk"), &["-O", fmt, "--subformat", sub]);
        let info: Value =
            serde_json::from_slice(&run("qemu-img", &[&"info", &"--output=json", &s.out])).unwrap();
        assert_eq!(info["format"], fmt);
        assert_eq!(info["format-specific"]["data"]["create-type"], sub, "{sub}");
        run("qemu-img", &[&"check", &s.out]);
        run("qemu-img", &[&"compare", &s.out, &raw.out]);
    }
    // qcow2, the default for a qcow2 input (and compressed on request): written,
    // read back by the verification, valid and leak-free, the same disk.
    for (input, extra, compression) in [
        ("scrub-qcow2", &[][..], None),
        (
            "scrub-disk",
            &["-O", "qcow2", "--compress=zstd"][..],
            Some("zstd"),
        ),
        (
            "scrub-vmdk",
            &["-O", "qcow2", "--compress"][..],
            Some("zlib"),
        ),
    ] {
        let s = scrub(&image(input), extra);
        let info: Value =
            serde_json::from_slice(&run("qemu-img", &[&"info", &"--output=json", &s.out])).unwrap();
        assert_eq!(info["format"], "qcow2", "{input} {extra:?}");
        assert_eq!(
            info["format-specific"]["data"]["compression-type"].as_str(),
            Some(compression.unwrap_or("zlib")),
            "{input} {extra:?}"
        );
        let check: Value =
            serde_json::from_slice(&run("qemu-img", &[&"check", &"--output=json", &s.out]))
                .unwrap();
        assert_eq!(check["check-errors"], 0, "{check}");
        assert!(
            check.get("leaks").is_none() && check.get("corruptions").is_none(),
            "{check}"
        );
        if compression.is_some() {
            let map: Value =
                serde_json::from_slice(&run("qemu-img", &[&"map", &"--output=json", &s.out]))
                    .unwrap();
            assert!(
                map.as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["compressed"] == true),
                "{input} {extra:?}: no compressed cluster"
            );
        }
        run("qemu-img", &[&"compare", &s.out, &raw.out]);
    }
}

/// A dry run writes nothing, and reports exactly what the real run then does.
#[test]
fn dry_run_writes_nothing_and_plans_what_the_run_does() {
    let input = image("scrub-disk");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("dry.json");
    let out = dir.path().join("never.img");
    let vsr = dir.path().join("never.vsr");
    let o = vmscrub(&[
        "scrub".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--dry-run".as_ref(),
        "--rules".as_ref(),
        rules().as_os_str(),
        "--recovery".as_ref(),
        vsr.as_os_str(),
        "--recipient".as_ref(),
        keys().public().as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("dry.json")]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("# dry run:"), "{stdout}");
    assert!(stdout.contains("delete-tree /scrub/tree"), "{stdout}");
    let dry: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(dry["scrub"]["dry_run"], true);
    assert_eq!(dry["scrub"]["recovery"]["written"], false);
    let real = scrub(&input, &[]);
    assert_eq!(dry["scrub"]["actions"], real.report["scrub"]["actions"]);
    assert_eq!(
        dry["scrub"]["recovery"]["entries"],
        real.report["scrub"]["recovery"]["entries"]
    );
    assert_eq!(dry["plan"], real.report["plan"]);
    // --output is only optional in a dry run.
    let o = vmscrub(&["scrub".as_ref(), input.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
}

/// --keep exempts a tree and --operations drops an operation: neither is
/// touched, and the archive holds nothing of them.
#[test]
fn keep_and_operation_selection_are_honoured() {
    let input = image("scrub-disk");
    let s = scrub(
        &input,
        &[
            "--keep",
            "/scrub/tree",
            "--operations",
            "defaults,-ssh-hostkeys,test-plant,test-plant-rewrite",
        ],
    );
    let acts = actions(&s.report);
    assert!(acts.iter().all(|a| !a.2.starts_with("/scrub/tree")));
    assert!(
        acts.iter()
            .all(|a| !a.2.starts_with("/etc/ssh/ssh_host_") || a.2.ends_with("_key")),
        "only the private host keys (found by content) go: {acts:?}"
    );
    let work = s.dir.path();
    let b = dump_ext(&extract(&input, 2, work), work);
    let a = dump_ext(&extract(&s.out, 2, work), work);
    let kept = b.tree.iter().filter(|(p, _)| under(p, b"/scrub/tree"));
    for (p, n) in kept {
        assert_eq!(a.tree.get(p), Some(n), "{}", String::from_utf8_lossy(p));
    }
    assert!(
        a.tree
            .contains_key(b"/etc/ssh/ssh_host_ed25519_key.pub".as_slice())
    );
    let members = archive_members(&s);
    assert!(
        members
            .iter()
            .all(|m| !m["name"].as_str().unwrap().starts_with("scrub/tree"))
    );
}

/// A journal left needing recovery is replayed before the scan: the output is
/// what e2fsck's own replay gives (same tree), clean, with an empty journal.
#[test]
fn journal_needing_recovery_is_replayed_first() {
    let input = image("scrub-journal-disk");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.img");
    // The filesystem holds no OS: a data volume, said so.
    let o = vmscrub(&[
        "scrub".as_ref(),
        "-q".as_ref(),
        "--data-volume".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let work = dir.path();
    let ours = extract(&out, 1, work);
    fsck_clean(&ours, false);
    let header = String::from_utf8(run("dumpe2fs", &[&"-h", &ours])).unwrap();
    assert!(header.contains("Journal start:            0"), "{header}");
    assert!(!header.contains("needs_recovery"), "{header}");
    // e2fsck's replay of the same partition, as the reference.
    let theirs = extract(&input, 1, work);
    let fixed = work.join("e2fsck-replayed.img");
    std::fs::rename(&theirs, &fixed).unwrap();
    let st = Command::new("e2fsck")
        .args(["-fy"])
        .arg(&fixed)
        .output()
        .unwrap();
    assert!(
        st.status.code().unwrap() <= 1,
        "e2fsck -fy: {}",
        stderr(&st)
    );
    let a = dump_ext(&ours, work);
    let b = dump_ext(&fixed, work);
    assert_trees_eq(&a.tree, &b.tree, "ours vs e2fsck's replay");
}

/// The archive restores: `vmscrub recover --extract` puts every removed regular
/// file back with the bytes, mode and mtime debugfs/mtools read from the input.
fn check_extract(s: &Scrubbed, before: &BTreeMap<u32, (PathBuf, Dump)>) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let target = s.dir.path().join("restore");
    recover(
        &s.archive,
        &keys().private(),
        &["--extract".as_ref(), target.as_os_str()],
    );
    let mut checked = 0;
    for (part, fs_path, guest, _) in actions(&s.report) {
        let shadowed = part == 2 && guest.starts_with("/home/");
        let d = &before[&part].1;
        for (p, n) in d
            .tree
            .iter()
            .filter(|(p, n)| n.kind == 'f' && under(p, &fs_path))
        {
            let name = archive_name(part, p, shadowed);
            let host = target.join(std::ffi::OsStr::from_bytes(&name));
            let what = String::from_utf8_lossy(&name);
            assert_eq!(file_sha(&host), n.sha, "{what}: restored content");
            let m = std::fs::metadata(&host).unwrap();
            assert_eq!(m.mtime(), n.mtime, "{what}: restored mtime");
            if part != 1 {
                assert_eq!(
                    m.permissions().mode() & 0o7777,
                    n.mode,
                    "{what}: restored mode"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} files restored");
}

/// Two recipients (an OpenSSH `ssh-rsa` line and a PEM SPKI key made by
/// openssl): each alone opens the archive. And no plaintext touches the disk:
/// under strace, the only files the scrub opens for writing are its three
/// outputs' temporary files; TMPDIR stays empty; the archive's bytes hold no
/// marker.
#[test]
fn recovery_for_two_recipients_and_no_plaintext_on_disk() {
    let input = image("scrub-disk");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pem_key = d.join("escrow.pem");
    let pem_pub = d.join("escrow.pub.pem");
    run(
        "openssl",
        &[
            &"genpkey",
            &"-algorithm",
            &"RSA",
            &"-pkeyopt",
            &"rsa_keygen_bits:2048",
            &"-out",
            &pem_key,
        ],
    );
    run(
        "openssl",
        &[&"pkey", &"-in", &pem_key, &"-pubout", &"-out", &pem_pub],
    );
    let tmp = d.join("tmp");
    let outdir = d.join("out");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::create_dir(&outdir).unwrap();
    let trace = d.join("trace.txt");
    let out = outdir.join("clean.img");
    let vsr = outdir.join("removed.vsr");
    let report = outdir.join("report.json");
    let o = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,creat", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_vmscrub"))
        .env("TMPDIR", &tmp)
        .args(["scrub", "-q"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .arg("--rules")
        .arg(rules())
        .arg("--recovery")
        .arg(&vsr)
        .arg("--recipient")
        .arg(keys().public())
        .arg("--recipient")
        .arg(&pem_pub)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let trace = std::fs::read_to_string(&trace).unwrap();
    let mut written: Vec<String> = Vec::new();
    for line in trace.lines() {
        let writes = ["O_WRONLY", "O_RDWR", "O_CREAT"]
            .iter()
            .any(|f| line.contains(f))
            || line.contains("creat(");
        if !writes || line.contains("= -1") {
            continue;
        }
        let path = line.split('"').nth(1).unwrap_or_default().to_string();
        written.push(path);
    }
    let outdir_s = outdir.display().to_string();
    for p in &written {
        let name = p.strip_prefix(&format!("{outdir_s}/")).unwrap_or("");
        let ok = p == "/dev/null"
            || (name.ends_with(".vmscrub-tmp")
                && [".clean.img.", ".removed.vsr.", ".report.json."]
                    .iter()
                    .any(|pre| name.starts_with(pre)));
        assert!(ok, "the scrub wrote to {p}");
    }
    assert!(written.len() >= 3, "strace saw no writes: {trace}");
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "TMPDIR not empty"
    );
    let mut left: Vec<String> = std::fs::read_dir(&outdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["clean.img", "removed.vsr", "report.json"]);
    let archive = std::fs::read(&vsr).unwrap();
    for m in MARKERS {
        assert!(
            !archive.windows(m.len()).any(|w| w == m.as_bytes()),
            "{m} in the archive's bytes"
        );
    }
    // Each recipient alone opens it.
    for key in [keys().private(), pem_key] {
        let o = recover(&vsr, &key, &["--list".as_ref()]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("scrub/tree/SECRETNAME_20_d1"));
    }
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        r["scrub"]["recovery"]["recipients"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A removed file whose bytes also sit in a committed journal transaction: the
/// scrub replays the log (the copy lands in free blocks), removes the file,
/// resets the journal and zeroes free space, so the marker is nowhere in the
/// output. With `--keep-free-space` the replayed copy would ship, and the
/// verification's block fingerprints find it: exit 4, nothing kept.
#[test]
fn journaled_copies_of_removed_files_are_gone() {
    const MARKER: &[u8] = b"JOURNALED-LOG-MARKER";
    let input = image("scrub-journaled-disk");
    let raw = std::fs::read(&input).unwrap();
    assert!(raw.windows(MARKER.len()).any(|w| w == MARKER));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.img");
    let o = vmscrub(&[
        "scrub".as_ref(),
        "-q".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cleaned = std::fs::read(&out).unwrap();
    assert!(
        !cleaned.windows(MARKER.len()).any(|w| w == MARKER),
        "the journaled copy survived"
    );
    fsck_clean(&extract(&out, 1, dir.path()), false);
    std::fs::remove_file(&out).unwrap();
    let o = vmscrub(&[
        "scrub".as_ref(),
        "-q".as_ref(),
        "--keep-free-space".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("of removed content are still in the output"),
        "{err}"
    );
    assert!(!out.exists());
}
