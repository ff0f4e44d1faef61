//! `vmscrub ls`, `cat` and `inspect` through the binary on the e2e disk
//! (fixtures/e2e.toml) as raw, qcow2 and streamOptimized VMDK, judged by
//! independent tools: `debugfs` for the ext4 root and /home, `mdir`/`mtype` for
//! the ESP, `sfdisk -J` for where the partitions are, and the recipe's own
//! built tree for symlink targets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use common::*;

const ROOT: u32 = 2;
const ESP: u32 = 1;
const HOME: u32 = 3;

fn ls_r(image: &std::path::Path, extra: &[&str], path: &str) -> Vec<LsLine> {
    let mut args: Vec<OsString> = vec!["ls".into(), "-R".into(), "--inode".into()];
    args.extend(extra.iter().map(OsString::from));
    args.push(image.into());
    args.push(path.into());
    let o = vmscrub_ok(&args, 0);
    parse_ls(&o.stdout, true)
}

/// For every entry of the ext4 root (and of /home): `vmscrub ls -R --inode`
/// gives debugfs's names, inode numbers, modes, owners and sizes, through every
/// container; symlink targets are those planted; device numbers are debugfs's.
#[test]
fn ls_recursive_equals_debugfs_on_every_container() {
    let raw = raw_disk();
    let tree = tree_dir("e2e-root");
    for (part, count_at_least) in [(ROOT, 400), (HOME, 8)] {
        let oracle = debugfs_tree(&raw, offset_of(&raw, part));
        assert!(oracle.len() >= count_at_least, "{}", oracle.len());
        let by_path: BTreeMap<Vec<u8>, &DebugfsEntry> =
            oracle.iter().map(|e| (e.path.clone(), e)).collect();
        for (fmt, img) in images() {
            let ours = ls_r(&img, &["--partition", &part.to_string()], "/");
            assert_eq!(
                ours.len(),
                oracle.len(),
                "{fmt} partition {part}: entry count"
            );
            for l in &ours {
                let e = by_path.get(&l.name).unwrap_or_else(|| {
                    panic!(
                        "{fmt}: {} is not in debugfs's listing",
                        String::from_utf8_lossy(&l.name)
                    )
                });
                let what = format!("{fmt} {}", String::from_utf8_lossy(&l.name));
                assert_eq!(l.inode, Some(e.ino), "{what}: inode");
                assert_eq!(l.mode, e.mode, "{what}: mode {:o} vs {:o}", l.mode, e.mode);
                assert_eq!((l.uid, l.gid), (e.uid, e.gid), "{what}: owner");
                match (l.size, e.size, l.rdev) {
                    (None, Some(0), Some(_)) => {} // device: checked below
                    (Some(_), None, None) => assert_eq!(e.mode & 0o170000, 0o040000),
                    (a, b, _) => assert_eq!(a, b, "{what}: size"),
                }
                if part == ROOT && l.mode & 0o170000 == 0o120000 {
                    let planted = std::fs::read_link(tree.join(os(&l.name[1..]))).unwrap();
                    assert_eq!(
                        l.target.as_deref(),
                        Some(planted.as_os_str().as_bytes()),
                        "{what}: symlink target"
                    );
                }
            }
            // Pre-order with sorted names: parents before children.
            let paths: Vec<&Vec<u8>> = ours.iter().map(|l| &l.name).collect();
            let mut sorted = paths.clone();
            sorted.sort_by(|a, b| {
                let ca: Vec<&[u8]> = a.split(|&c| c == b'/').collect();
                let cb: Vec<&[u8]> = b.split(|&c| c == b'/').collect();
                ca.cmp(&cb)
            });
            assert_eq!(paths, sorted, "{fmt}: order");
        }
    }
    // Devices: major, minor as debugfs stat shows them.
    let (_, qcow) = &images()[1];
    let devs = ls_r(qcow, &[], "/dev");
    let spec = format!("{}?offset={}", raw.display(), offset_of(&raw, ROOT));
    for l in devs {
        let path = String::from_utf8(l.name.clone()).unwrap();
        let stat = vmscrub_fixtures::run("debugfs", &[&"-R", &format!("stat {path}"), &spec]);
        let stat = String::from_utf8_lossy(&stat);
        let nums = stat
            .split("major/minor number: ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.split_once(':'))
            .map(|(a, b)| (a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap()));
        assert_eq!(l.rdev, nums, "{path}: {stat}");
    }
}

/// Every regular file of the ext4 root: `vmscrub cat` gives exactly the bytes
/// `debugfs dump` writes (sparse 50 MB image, CRLF, binary, non-UTF-8 names,
/// hard links), through every container.
#[test]
fn cat_equals_debugfs_dump_on_every_container() {
    let raw = raw_disk();
    for part in [ROOT, HOME] {
        let off = offset_of(&raw, part);
        let files: Vec<DebugfsEntry> = debugfs_tree(&raw, off)
            .into_iter()
            .filter(|e| e.mode & 0o170000 == 0o100000)
            .collect();
        assert!(files.len() > 20 || part == HOME);
        let inodes: Vec<u64> = files.iter().map(|e| e.ino).collect();
        let want = debugfs_dump(&raw, off, &inodes);
        for (fmt, img) in images() {
            let mut args: Vec<OsString> = vec![
                "cat".into(),
                "--partition".into(),
                part.to_string().into(),
                img.clone().into(),
            ];
            args.extend(files.iter().map(|e| OsString::from_vec(e.path.clone())));
            let o = vmscrub_ok(&args, 0);
            let mut at = 0usize;
            for (e, w) in files.iter().zip(&want) {
                let got = o.stdout.get(at..at + w.len()).unwrap_or_else(|| {
                    panic!("{fmt}: output ends in {}", String::from_utf8_lossy(&e.path))
                });
                assert!(
                    got == w.as_slice(),
                    "{fmt}: {} differs from debugfs dump",
                    String::from_utf8_lossy(&e.path)
                );
                assert_eq!(e.size, Some(w.len() as u64));
                at += w.len();
            }
            assert_eq!(at, o.stdout.len(), "{fmt}: no extra bytes");
        }
    }
}

/// The ESP: `vmscrub ls -R` lists the paths `mdir -/ -b` lists, with the dates
/// `mdir` shows; `cat` gives what `mtype` gives; lookups are case-insensitive.
#[test]
fn esp_equals_mtools_on_every_container() {
    let raw = raw_disk();
    let spec = format!("{}@@{}", raw.display(), offset_of(&raw, ESP));
    let listing = mtools("mdir", &[&"-/", &"-b", &"-i", &spec, &"::/"]);
    let mut want: Vec<(String, bool)> = String::from_utf8(listing)
        .unwrap()
        .lines()
        .map(|l| {
            let p = l.strip_prefix("::").unwrap();
            match p.strip_suffix('/') {
                Some(d) => (d.to_string(), true),
                None => (p.to_string(), false),
            }
        })
        .collect();
    want.sort();
    // Dates and sizes from mdir's long listing of each directory.
    let mut dated: BTreeMap<String, (Option<u64>, String)> = BTreeMap::new();
    let dirs: Vec<String> = std::iter::once(String::new())
        .chain(want.iter().filter(|w| w.1).map(|w| w.0.clone()))
        .collect();
    for d in &dirs {
        let text = mtools("mdir", &[&"-i", &spec, &format!("::{d}/")]);
        for line in String::from_utf8(text).unwrap().lines() {
            // `NAME     EXT       size YYYY-MM-DD  H:MM  long name`
            let Some(rest) = line.get(12..) else { continue };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() < 3 || !fields[1].contains('-') || line.starts_with('.') {
                continue;
            }
            let short = format!("{}.{}", line[..8].trim(), line[9..12].trim());
            let short = short.trim_end_matches('.').to_string();
            let name = if fields.len() > 3 {
                fields[3..].join(" ")
            } else {
                short
            };
            let size = fields[0].parse().ok();
            let (h, m) = fields[2].split_once(':').unwrap();
            let when = format!("{} {:02}:{m}", fields[1], h.parse::<u32>().unwrap());
            dated.insert(format!("{d}/{name}"), (size, when));
        }
    }
    // Read-only attributes, as mattrib shows them.
    let attrs = mtools("mattrib", &[&"-i", &spec, &"-/", &"::/"]);
    let read_only: Vec<String> = String::from_utf8(attrs)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (a, p) = l.split_once("::")?;
            a.contains('R').then(|| p.to_string())
        })
        .collect();
    assert_eq!(read_only, ["/EFI/keys", "/EFI/keys/db.crt"]);
    for (fmt, img) in images() {
        let ours = ls_r(&img, &["--partition", "1"], "/");
        let mut got: Vec<(String, bool)> = ours
            .iter()
            .map(|l| {
                (
                    String::from_utf8(l.name.clone()).unwrap(),
                    l.mode & 0o170000 == 0o040000,
                )
            })
            .collect();
        got.sort();
        assert_eq!(got, want, "{fmt}: ESP paths");
        for l in &ours {
            let p = String::from_utf8(l.name.clone()).unwrap();
            let (size, when) = dated
                .get(&p)
                .unwrap_or_else(|| panic!("{fmt}: mdir has no date for {p}: {dated:?}"));
            assert_eq!(&format!("{} {}", l.date, &l.time[..5]), when, "{fmt} {p}");
            let is_dir = l.mode & 0o170000 == 0o040000;
            // vfat's view: 0755 directories (read-only ignored, as without
            // `rodir`), 0644 files, 0444 read-only files.
            let want = match (is_dir, read_only.contains(&p)) {
                (true, _) => 0o755,
                (false, false) => 0o644,
                (false, true) => 0o444,
            };
            assert_eq!(l.mode & 0o7777, want, "{fmt} {p}");
            assert_eq!((l.uid, l.gid), (0, 0));
            if !is_dir {
                assert_eq!(l.size, *size, "{fmt} {p}: size");
                let body = mtools("mtype", &[&"-i", &spec, &format!("::{p}")]);
                let o = vmscrub_ok(["cat", "--fs", "ESP", img.to_str().unwrap(), p.as_str()], 0);
                assert!(o.stdout == body, "{fmt} {p}: cat differs from mtype");
            }
        }
        // Through the guest view at /boot/efi, any case.
        let body = mtools("mtype", &[&"-i", &spec, &"::/EFI/BOOT/BOOTX64.EFI"]);
        let o = vmscrub_ok(
            [
                "cat",
                img.to_str().unwrap(),
                "/boot/efi/efi/boot/bootx64.efi",
            ],
            0,
        );
        assert!(o.stdout == body, "{fmt}: case-insensitive lookup");
        let o = vmscrub_ok(
            ["cat", img.to_str().unwrap(), "/etc/efi-boot/BOOTX64.EFI"],
            0,
        );
        assert!(o.stdout == body, "{fmt}: symlink into the ESP mount");
    }
}

/// The guest view crosses mount points: `/home` is the home partition (the root
/// filesystem's own /home/alice is hidden under it), `/boot/efi` the ESP.
#[test]
fn guest_view_crosses_mounts() {
    let raw = raw_disk();
    let home = debugfs_tree(&raw, offset_of(&raw, HOME));
    for (fmt, img) in images() {
        let all = ls_r(&img, &[], "/");
        let under = |prefix: &[u8]| -> Vec<Vec<u8>> {
            all.iter()
                .filter(|l| l.name.starts_with(prefix))
                .map(|l| l.name[prefix.len() - 1..].to_vec())
                .collect()
        };
        let mut got = under(b"/home/");
        got.sort();
        let mut want: Vec<Vec<u8>> = home.iter().map(|e| e.path.clone()).collect();
        want.sort();
        assert_eq!(got, want, "{fmt}: /home is the home partition");
        let h = all.iter().find(|l| l.name == b"/home").unwrap();
        assert_eq!(h.inode, Some(2), "{fmt}: /home shows the mounted root");
        let esp: Vec<Vec<u8>> = under(b"/boot/efi/");
        assert!(esp.contains(&b"/loader/random-seed".to_vec()), "{fmt}");
        // The root filesystem still has its own /home/alice, read by partition.
        let o = vmscrub_ok(
            [
                "ls",
                "--partition",
                "2",
                img.to_str().unwrap(),
                "/home/alice/.ssh",
            ],
            0,
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("id_ed25519"));
        let o = vmscrub(["ls", img.to_str().unwrap(), "/home/alice"]);
        assert_eq!(o.status.code(), Some(3), "{fmt}: hidden under the mount");
    }
}

/// Names are bytes: escaped in `ls`, raw in `cat` (the name given as raw bytes).
#[test]
fn non_utf8_names_and_symlinks() {
    for (fmt, img) in images() {
        let o = vmscrub_ok(["ls", img.to_str().unwrap(), "/srv/odd"], 0);
        let text = String::from_utf8(o.stdout).unwrap();
        for want in [
            " k\\xffey\n",
            " latin1-caf\\xe9.txt\n",
            " back\\\\slash and space\n",
            " caf\u{e9}-utf8.txt\n",
            " link-\\xfe -> latin1-caf\u{e9}.txt\n",
        ] {
            assert!(text.contains(want), "{fmt}: {want:?} in\n{text}");
        }
        let o = vmscrub_ok(
            [
                os(b"cat"),
                img.as_os_str(),
                os(b"/srv/odd/latin1-caf\xe9.txt"),
            ],
            0,
        );
        assert_eq!(o.stdout, b"named in latin-1\n");
        // ls -l shows a symlink named on the command line, not its target; a
        // trailing slash follows it; cat follows links (relative, chained).
        let o = vmscrub_ok(["ls", img.to_str().unwrap(), "/var/run"], 0);
        let l = &parse_ls(&o.stdout, false)[0];
        assert_eq!(
            (l.name.as_slice(), l.target.as_deref()),
            (&b"/var/run"[..], Some(&b"/run"[..]))
        );
        let o = vmscrub_ok(["ls", img.to_str().unwrap(), "/var/run/"], 0);
        let names: Vec<Vec<u8>> = parse_ls(&o.stdout, false)
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(names, [b"e2e.sock".to_vec(), b"initctl".to_vec()]);
        let payload = vmscrub_ok(["cat", img.to_str().unwrap(), "/usr/lib/payload.bin"], 0);
        let via = vmscrub_ok(["cat", img.to_str().unwrap(), "/usr/bin/python3"], 0);
        assert_eq!(payload.stdout.len(), 3 << 20);
        assert!(
            payload.stdout == via.stdout,
            "{fmt}: chained relative links"
        );
        // Nanoseconds are shown with --full-time (set by debugfs in the recipe).
        let o = vmscrub_ok(["ls", "--full-time", img.to_str().unwrap(), "/etc/motd"], 0);
        let l = &parse_ls(&o.stdout, false)[0];
        assert_eq!(
            (l.date.as_str(), l.time.as_str()),
            ("2023-11-14", "22:13:20.123456789")
        );
    }
}

/// Errors name the path and exit 3; usage errors exit 2; `--help` explains.
#[test]
fn errors_and_help() {
    let (_, img) = &images()[1];
    let img = img.to_str().unwrap();
    for (args, msg) in [
        (vec!["cat", img, "/etc"], "/etc: is a directory"),
        (
            vec!["cat", img, "/etc/nope"],
            "/etc/nope: no such file or directory",
        ),
        (
            vec!["cat", img, "/etc/motd/x"],
            "/etc/motd/x: not a directory",
        ),
        (
            vec!["cat", img, "/dev/null"],
            "/dev/null: not a regular file",
        ),
        (
            vec!["ls", img, "/srv/loop-a/"],
            "/srv/loop-a/: too many levels of symbolic links",
        ),
        (vec!["ls", img, "/nope"], "/nope: no such file or directory"),
        (
            vec!["ls", "--partition", "7", img],
            "no filesystem is partition 7",
        ),
        (
            vec!["ls", "--fs", "nolabel", img],
            "no filesystem is labelled or identified `nolabel`",
        ),
        (
            vec!["ls", "/nonexistent.qcow2"],
            "cannot open /nonexistent.qcow2",
        ),
    ] {
        let o = vmscrub(&args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {e}");
        assert!(e.contains(msg), "{args:?}: {e}");
    }
    // A filesystem vmscrub cannot read is named with the reason.
    let zoo = vmscrub_fixtures::fixture("gpt-fs-zoo");
    let o = vmscrub(["ls", "--partition", "7", zoo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("partition 7 (btrdata, btrfs): btrfs is not supported"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // XFS is read: its (empty) root lists.
    let o = vmscrub(["ls", "--partition", "6", zoo.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A reader that stops early (`| head`) is not an error.
    for args in [
        vec!["ls", "-R", img, "/"],
        vec!["cat", img, "/var/backups/disk.img"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vmscrub"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
        drop(child.stdout.take());
        assert_eq!(child.wait().unwrap().code(), Some(0), "{args:?}");
    }
    // cat goes on after a failure, and still exits 3.
    let o = vmscrub(["cat", img, "/nope", "/etc/hostname"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(o.stdout, b"golden\n");
    let o = vmscrub(["ls", "--partition", "1", "--fs", "ESP", img]);
    assert_eq!(o.status.code(), Some(2));
    let o = vmscrub(["cat", img]);
    assert_eq!(o.status.code(), Some(2));
    let o = vmscrub_ok(["ls", "--help"], 0);
    let h = String::from_utf8_lossy(&o.stdout);
    for w in [
        "mount view",
        "--partition",
        "--fs",
        "\\xNN",
        "-R",
        "--inode",
    ] {
        assert!(h.contains(w), "ls --help lacks {w}:\n{h}");
    }
    let o = vmscrub_ok(["cat", "--help"], 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("exactly as stored"));
    // Selection by label, UUID and partition all reach the same filesystem.
    let a = vmscrub_ok(["ls", "-i", "--fs", "home", img], 0);
    let b = vmscrub_ok(
        [
            "ls",
            "-i",
            "--fs",
            "UUID=E2E0B0B0-1111-4222-8333-444455556666",
            img,
        ],
        0,
    );
    let c = vmscrub_ok(["ls", "-i", "--partition", "3", img], 0);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stdout, c.stdout);
    // ls -d lists a directory itself.
    let o = vmscrub_ok(["ls", "-d", "-i", img, "/home"], 0);
    let l = &parse_ls(&o.stdout, true)[0];
    assert_eq!((l.inode, l.name.as_slice()), (Some(2), &b"/home"[..]));
}

/// `inspect` names the OS root, its os-release and the mount layout, the same
/// through every container.
#[test]
fn inspect_shows_the_os_and_mounts() {
    let mut docs = vec![];
    for (fmt, img) in images() {
        let o = vmscrub_ok(["inspect", "--format", "json", img.to_str().unwrap()], 0);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let os = &v["os"];
        assert_eq!(os["root_partition"], 2, "{fmt}");
        assert_eq!(os["name"], "Debian GNU/Linux");
        assert_eq!(os["version"], "12 (bookworm)");
        assert_eq!(os["id"], "debian");
        assert_eq!(os["version_id"], "12");
        assert_eq!(
            os["mounts"],
            serde_json::json!([
                {"path": "/", "partition": 2, "lv": null, "source": "root", "fstab_line": null},
                {"path": "/boot/efi", "partition": 1, "lv": null, "source": "fstab", "fstab_line": 4},
                {"path": "/home", "partition": 3, "lv": null, "source": "fstab", "fstab_line": 3},
            ]),
            "{fmt}"
        );
        let mps: Vec<&serde_json::Value> = v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["filesystem"]["mount_point"])
            .collect();
        assert_eq!(mps, ["/boot/efi", "/", "/home"]);
        for p in v["partitions"].as_array().unwrap() {
            assert_eq!(p["filesystem"]["readable"], true);
            assert_eq!(
                p["filesystem"]["unreadable_reason"],
                serde_json::Value::Null
            );
        }
        let o = vmscrub_ok(["inspect", img.to_str().unwrap()], 0);
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(
            text.contains(
                "Operating system: Debian GNU/Linux 12 (bookworm) [ID debian, VERSION_ID 12] on partition 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("/home      partition 3  ext4 home  /etc/fstab line 3"),
            "{text}"
        );
        let mut v = v;
        v["image"] = serde_json::Value::Null;
        docs.push(v);
    }
    // Without the container facts, the three reports agree.
    assert_eq!(docs[0]["os"], docs[1]["os"]);
    assert_eq!(docs[0]["os"], docs[2]["os"]);
    assert_eq!(docs[0]["partitions"], docs[2]["partitions"]);
}
