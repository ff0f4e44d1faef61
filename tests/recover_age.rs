//! The age-format recovery archive end to end, judged by tools that share no code
//! with vmscrub: Debian's `age` and `zstd`, GNU tar, debugfs/mtools for the input's
//! files, Python for xattrs. Keys are made at test time by `ssh-keygen` (ed25519;
//! RSA, each with and without a passphrase) and `age-keygen`. One archive, five
//! recipients: every key opens it with `age -d -i KEY | zstd -d | tar -x` and with
//! `vmscrub recover`, and what comes out is the input's removed files (bytes,
//! mode, owner, mtime, xattrs). Damaged archives and wrong keys: exit 3, a reason,
//! nothing left behind — and `age` refuses them too, so the damage is real.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scrub.rs"]
mod support;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use support::*;
use vmscrub_fixtures::run;
use vmscrub_recovery::{
    ArchiveFormat, ArchiveInfo, ArchiveWriter, Metadata, Recipient, Timestamp, WriterOptions,
};

const PASS: &str = "age test passphrase";
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

struct AgeKeys {
    dir: tempfile::TempDir,
}

impl AgeKeys {
    fn p(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
}

fn ssh_keygen(args: &[&str], path: &Path) {
    let mut a: Vec<&std::ffi::OsStr> = vec!["-q".as_ref()];
    a.extend(args.iter().map(std::ffi::OsStr::new));
    a.extend([
        "-C".as_ref(),
        "test@age".as_ref(),
        "-f".as_ref(),
        path.as_os_str(),
    ]);
    let o = Command::new("ssh-keygen").args(a).output().unwrap();
    assert!(o.status.success(), "ssh-keygen: {}", stderr(&o));
}

/// id_ed25519, id_rsa (3072, no passphrase), id_rsa_pass (2048) and
/// id_ed25519_pass (both with PASS) with passphrase-less copies for the `age` CLI
/// (which asks only on a terminal),
/// age.key (age-keygen) with its recipient in age.pub, and a stranger's ed25519.
fn age_keys() -> &'static AgeKeys {
    static K: OnceLock<AgeKeys> = OnceLock::new();
    K.get_or_init(|| {
        let k = AgeKeys {
            dir: tempfile::tempdir().unwrap(),
        };
        ssh_keygen(&["-t", "ed25519", "-N", ""], &k.p("id_ed25519"));
        ssh_keygen(&["-t", "ed25519", "-N", ""], &k.p("stranger"));
        ssh_keygen(&["-t", "rsa", "-b", "3072", "-N", ""], &k.p("id_rsa"));
        ssh_keygen(
            &["-t", "rsa", "-b", "2048", "-N", PASS],
            &k.p("id_rsa_pass"),
        );
        ssh_keygen(&["-t", "ed25519", "-N", PASS], &k.p("id_ed25519_pass"));
        for key in ["id_rsa_pass", "id_ed25519_pass"] {
            let plain = k.p(&format!("{key}.plain"));
            std::fs::copy(k.p(key), &plain).unwrap();
            let o = Command::new("ssh-keygen")
                .args(["-q", "-p", "-P", PASS, "-N", "", "-f"])
                .arg(&plain)
                .output()
                .unwrap();
            assert!(o.status.success(), "ssh-keygen -p: {}", stderr(&o));
        }
        run("age-keygen", &[&"-o", &k.p("age.key")]);
        let public = run("age-keygen", &[&"-y", &k.p("age.key")]);
        // An `age -R` file: a comment, a blank line, the recipient.
        let mut file = b"# the escrow key\n\n".to_vec();
        file.extend_from_slice(&public);
        std::fs::write(k.p("age.pub"), file).unwrap();
        std::fs::write(k.p("pass.txt"), format!("{PASS}\n")).unwrap();
        k
    })
}

/// (key for `vmscrub recover`, extra arguments, key for the `age` CLI).
fn identities() -> Vec<(PathBuf, Vec<PathBuf>, PathBuf)> {
    let k = age_keys();
    let pass = vec![PathBuf::from("--passphrase-file"), k.p("pass.txt")];
    vec![
        (k.p("id_ed25519"), vec![], k.p("id_ed25519")),
        (k.p("id_rsa"), vec![], k.p("id_rsa")),
        (k.p("id_rsa_pass"), pass.clone(), k.p("id_rsa_pass.plain")),
        (k.p("id_ed25519_pass"), pass, k.p("id_ed25519_pass.plain")),
        (k.p("age.key"), vec![], k.p("age.key")),
    ]
}

/// `bash -c SCRIPT _ ARGS…` with pipefail.
fn sh(script: &str, args: &[&Path]) -> Output {
    Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {script}"), "_"])
        .args(args)
        .output()
        .unwrap()
}

/// The scrub fixture scrubbed with an archive for all five keys, in the default
/// format (age, since every key is one it serves).
fn scrubbed(dir: &Path) -> (PathBuf, Value) {
    let k = age_keys();
    let archive = dir.join("removed.tar.zst.age");
    let report = dir.join("report.json");
    let mut args: Vec<std::ffi::OsString> = vec!["scrub".into(), "-q".into()];
    args.push(image("scrub-disk").into());
    for (a, b) in [
        ("-o", dir.join("clean.img")),
        ("--rules", rules()),
        ("--recovery", archive.clone()),
        ("--report", report.clone()),
        ("--recipient", k.p("id_ed25519.pub")),
        ("--recipient", k.p("id_rsa.pub")),
        ("--recipient", k.p("id_rsa_pass.pub")),
        ("--recipient", k.p("id_ed25519_pass.pub")),
        ("--recipient", k.p("age.pub")),
    ] {
        args.push(a.into());
        args.push(b.into());
    }
    let o = vmscrub(&args);
    assert_eq!(o.status.code(), Some(0), "scrub: {}", stderr(&o));
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    (archive, report)
}

#[test]
fn every_key_type_opens_the_age_archive_with_age_and_with_vmscrub() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (archive, report) = scrubbed(d);
    assert!(std::fs::read(&archive).unwrap().starts_with(AGE_MAGIC));
    assert_eq!(report["scrub"]["recovery"]["format"], "age");
    assert_eq!(
        report["scrub"]["recovery"]["recipients"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // Every key opens it both ways, to the same tar.
    let mut tars = Vec::new();
    for (i, (ours, extra, theirs)) in identities().iter().enumerate() {
        let t = d.join(format!("ours-{i}.tar"));
        let mut mode: Vec<&std::ffi::OsStr> = vec!["-o".as_ref(), t.as_os_str()];
        mode.extend(extra.iter().map(|p| p.as_os_str()));
        recover(&archive, ours, &mode);
        let a = d.join(format!("age-{i}.tar"));
        let o = sh(
            "age -d -i \"$1\" \"$2\" | zstd -d -q > \"$3\"",
            &[theirs, &archive, &a],
        );
        assert!(
            o.status.success(),
            "age -i {}: {}",
            theirs.display(),
            stderr(&o)
        );
        tars.push(file_sha(&t));
        tars.push(file_sha(&a));
    }
    assert!(tars.windows(2).all(|w| w[0] == w[1]), "the tars differ");
    // GNU tar restores what debugfs and mtools read from the input.
    let restore = d.join("restore");
    std::fs::create_dir(&restore).unwrap();
    let k = age_keys();
    let o = sh(
        "age -d -i \"$1\" \"$2\" | zstd -d -q | tar --xattrs --xattrs-include='*' --acls -xpf - -C \"$3\"",
        &[&k.p("id_ed25519"), &archive, &restore],
    );
    assert!(o.status.success(), "age | zstd | tar: {}", stderr(&o));
    let before = dumps(&image("scrub-disk"), d);
    let mut checked = 0;
    for (part, fs_path, guest, _) in actions(&report) {
        let shadowed = part == 2 && guest.starts_with("/home/");
        for (p, n) in before[&part]
            .1
            .tree
            .iter()
            .filter(|(p, _)| under(p, &fs_path))
        {
            let name = archive_name(part, p, shadowed);
            let host = restore.join(std::ffi::OsStr::from_bytes(&name));
            let what = String::from_utf8_lossy(&name);
            let m = std::fs::symlink_metadata(&host)
                .unwrap_or_else(|e| panic!("{what} not restored: {e}"));
            match n.kind {
                'f' => {
                    assert_eq!(file_sha(&host), n.sha, "{what}: content");
                    assert_eq!(m.mtime(), n.mtime, "{what}: mtime");
                }
                'l' => assert_eq!(
                    std::fs::read_link(&host).unwrap().as_os_str().as_bytes(),
                    n.target,
                    "{what}: link target"
                ),
                _ => assert!(m.is_dir(), "{what}: not a directory"),
            }
            if n.kind != 'l' && part != 1 {
                assert_eq!(m.permissions().mode() & 0o7777, n.mode, "{what}: mode");
                if is_root() {
                    assert_eq!((m.uid(), m.gid()), (n.uid, n.gid), "{what}: owner");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} entries compared");
    // xattrs, read back by Python from what GNU tar restored (the fixture plants
    // this value; the marker is 15 bytes, 60 times).
    let x = restore.join("scrub/xattr/SECRETNAME_06_ext");
    let got = run(
        "python3",
        &[
            &"-c",
            &"import os, sys; sys.stdout.write(os.getxattr(sys.argv[1], 'user.secret').decode())",
            &x,
        ],
    );
    assert_eq!(got, "SECRETXATTR_06:".repeat(60).into_bytes());
}

/// A small archive for one ed25519 recipient, written through the library: a
/// 300 KB incompressible file makes a payload of several 64 KiB chunks.
fn small_age_archive(dir: &Path) -> PathBuf {
    let k = age_keys();
    let r = Recipient::parse(&std::fs::read(k.p("id_ed25519.pub")).unwrap()).unwrap();
    let path = dir.join("small.age");
    let opts = WriterOptions {
        format: ArchiveFormat::Age,
        ..WriterOptions::default()
    };
    let out = std::fs::File::create(&path).unwrap();
    let mut w = ArchiveWriter::new(out, &r, ArchiveInfo::default(), &opts).unwrap();
    let meta = Metadata {
        mode: 0o600,
        uid: 0,
        gid: 0,
        uname: None,
        gname: None,
        mtime: Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        },
        xattrs: Vec::new(),
    };
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    w.add_file(
        b"var/noise",
        &meta,
        "test",
        noise.len() as u64,
        &mut &noise[..],
    )
    .unwrap();
    w.finish().unwrap();
    path
}

#[test]
fn damaged_age_archives_and_wrong_keys_are_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let k = age_keys();
    let good = std::fs::read(small_age_archive(d)).unwrap();
    // The payload starts after the header's MAC line and the 16-byte nonce.
    let mac_line = good.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    let header_end = mac_line + good[mac_line..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let payload = header_end + 16;
    let chunk = 64 * 1024 + 16;
    assert!(good.len() > payload + 4 * chunk, "{} bytes", good.len());
    let flip = |at: usize| {
        let mut b = good.clone();
        b[at] ^= 0x40;
        b
    };
    let mut appended = good.clone();
    appended.extend_from_slice(b"appended");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("header", flip(mac_line - 3), "header"),
        ("mac", flip(mac_line + 6), "header"),
        ("chunk 2", flip(payload + 2 * chunk + 100), "chunk 2"),
        (
            "cut in a chunk",
            good[..good.len() - 100].to_vec(),
            "truncated",
        ),
        (
            "cut at a chunk",
            good[..payload + 3 * chunk].to_vec(),
            "truncated",
        ),
        ("appended", appended, "appended"),
        ("empty", Vec::new(), "empty"),
    ];
    for (what, bytes, needle) in cases {
        let f = d.join("damaged.age");
        std::fs::write(&f, &bytes).unwrap();
        let out = d.join("out.tar");
        let o = vmscrub(&[
            "recover".as_ref(),
            f.as_os_str(),
            "-i".as_ref(),
            k.p("id_ed25519").as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        let msg = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{what}: {msg}");
        assert!(msg.contains(needle), "{what}: {msg}");
        assert!(!out.exists(), "{what}: output left behind");
        let a = sh(
            "age -d -i \"$1\" \"$2\" > /dev/null",
            &[&k.p("id_ed25519"), &f],
        );
        assert!(!a.status.success(), "{what}: age opened it");
    }
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".vmscrub"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    // A key that is not a recipient, and the undamaged archive with the right one.
    let f = d.join("good.age");
    std::fs::write(&f, &good).unwrap();
    for (key, code, needle) in [
        (k.p("stranger"), 3, "no recipient of this archive opens"),
        (k.p("age.key"), 3, "no recipient of this archive opens"),
        (k.p("id_ed25519"), 0, "var/noise"),
    ] {
        let o = vmscrub(&[
            "recover".as_ref(),
            f.as_os_str(),
            "-i".as_ref(),
            key.as_os_str(),
            "--list".as_ref(),
        ]);
        let text = format!("{}{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
        assert_eq!(o.status.code(), Some(code), "{}: {text}", key.display());
        assert!(text.contains(needle), "{}: {text}", key.display());
    }
}

/// v1 stays writable on request (and still opens with the standalone decryptor);
/// a format that cannot serve a recipient is refused before anything is written;
/// a v1 archive asks for an RSA key.
#[test]
fn v1_on_request_and_refusals_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let k = age_keys();
    let v1 = d.join("removed.vsr");
    let base = |archive: &Path, key: &Path, format: &str| -> Output {
        vmscrub(&[
            "scrub".as_ref(),
            "-q".as_ref(),
            image("scrub-disk").as_os_str(),
            "-o".as_ref(),
            d.join("clean.img").as_os_str(),
            "--force".as_ref(),
            "--rules".as_ref(),
            rules().as_os_str(),
            "--recovery".as_ref(),
            archive.as_os_str(),
            "--recipient".as_ref(),
            key.as_os_str(),
            "--archive-format".as_ref(),
            format.as_ref(),
        ])
    };
    let o = base(&v1, &k.p("id_rsa.pub"), "v1");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        std::fs::read(&v1)
            .unwrap()
            .starts_with(b"\x89VSR\r\n\x1a\n")
    );
    let py = d.join("py.tar");
    independent_tar(&v1, &k.p("id_rsa"), &py);
    let ours = d.join("ours.tar");
    recover(&v1, &k.p("id_rsa"), &["-o".as_ref(), ours.as_os_str()]);
    assert_eq!(file_sha(&py), file_sha(&ours));
    let o = vmscrub(&[
        "recover".as_ref(),
        v1.as_os_str(),
        "-i".as_ref(),
        k.p("id_ed25519").as_os_str(),
        "--list".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("opens only with an RSA key"),
        "{}",
        stderr(&o)
    );
    for (key, format) in [("id_ed25519.pub", "v1"), ("age.pub", "v1")] {
        let target = d.join(format!("refused-{format}.vsr"));
        let o = base(&target, &k.p(key), format);
        assert_eq!(o.status.code(), Some(3), "{key}: {}", stderr(&o));
        assert!(stderr(&o).contains("cannot encrypt to"), "{}", stderr(&o));
        assert!(!target.exists());
    }
    // An inline recipient, as `age -r` takes it.
    let public = String::from_utf8(std::fs::read(k.p("age.pub")).unwrap()).unwrap();
    let inline = public.lines().last().unwrap().trim().to_string();
    let a = d.join("inline.age");
    let o = base(&a, Path::new(&inline), "auto");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = sh(
        "age -d -i \"$1\" \"$2\" | zstd -d -q | tar -tf - > /dev/null",
        &[&k.p("age.key"), &a],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}
