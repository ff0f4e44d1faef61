//! What a new user meets first, through the binary: every error keeps its
//! causes, an input that is not what was expected fails (exit 3) instead of
//! passing a CI job, a clean image scans silently with `-q`, and the messages
//! for the usual mistakes say what to do. Judged by exit codes, by the text of
//! the errors the format crates produce, by the file system (nothing left
//! behind), and by `e2fsck -fn` and `tar -tf` where something is written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use vmscrub_fixtures::{fixture, run};

fn vmscrub<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 3 with one `vmscrub: error:` message holding every needle, nothing on
/// stdout, no panic.
fn expect_error(o: &Output, what: &str, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(3), "{what}: {err}");
    assert!(err.contains("vmscrub: error: "), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(o.stdout.is_empty(), "{what}: stdout after an error");
    for n in needles {
        assert!(err.contains(n), "{what}: {n:?} not in {err}");
    }
    err
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The hostile partition tables of fixtures/partition.toml, each with the words
/// of its cause as `vmscrub-partition` states it (and `inspect` already showed).
const HOSTILE_TABLES: &[(&str, &[&str])] = &[
    (
        "gpt-both-bad",
        &["no usable GPT", "primary header", "backup header", "CRC32"],
    ),
    ("mbr-ebr-loop", &["loops back to the EBR at LBA 6144"]),
    (
        "mbr-ebr-outside",
        &["LBA 31144", "outside the extended partition"],
    ),
];

#[test]
fn every_verb_keeps_the_partition_table_cause() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.img");
    for (name, cause) in HOSTILE_TABLES {
        let img = fixture(name);
        let img = img.to_str().unwrap();
        let out = out.to_str().unwrap();
        let verbs: [(&str, Vec<&str>); 6] = [
            ("inspect", vec!["inspect", img]),
            ("scan", vec!["scan", img, "--fail-on", "secret"]),
            ("ls", vec!["ls", img, "/"]),
            ("cat", vec!["cat", img, "/etc/os-release"]),
            ("scrub", vec!["scrub", img, "-o", out]),
            ("scrub --dry-run", vec!["scrub", img, "--dry-run"]),
        ];
        for (verb, args) in verbs {
            let o = vmscrub(&args);
            let mut needles = vec!["partition table"];
            needles.extend_from_slice(cause);
            expect_error(&o, &format!("{verb} {name}"), &needles);
        }
        assert!(names_in(dir.path()).is_empty(), "scrub left files behind");
    }
}

fn dir_guest(files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let p = t.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    t
}

#[test]
fn an_input_without_an_operating_system_is_exit_3_unless_a_data_volume() {
    // An empty directory, and one that is not an unpacked root (a typo'd path
    // one level too high or low): errors, even with a --fail-on policy.
    let empty = tempfile::tempdir().unwrap();
    let o = vmscrub([
        OsStr::new("scan"),
        empty.path().as_os_str(),
        OsStr::new("--fail-on"),
        OsStr::new("secret"),
    ]);
    expect_error(&o, "empty dir", &["no operating system", "--data-volume"]);
    let wrong = dir_guest(&[("root/etc/os-release", "ID=debian\n")]);
    let o = vmscrub([OsStr::new("scan"), wrong.path().as_os_str()]);
    expect_error(&o, "wrong dir", &["no operating system", "unpacked root"]);
    // The same directory one level down is a guest.
    let o = vmscrub([
        OsStr::new("scan"),
        wrong.path().join("root").as_os_str(),
        OsStr::new("--fail-on"),
        OsStr::new("secret"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // A data disk: the filesystem is read, but there is no OS on it.
    let data = fixture("ux-data-volume");
    let o = vmscrub([OsStr::new("scan"), data.as_os_str()]);
    expect_error(
        &o,
        "data volume",
        &["no operating system", "data, ext4", "--data-volume"],
    );
    let o = vmscrub([
        OsStr::new("scan"),
        data.as_os_str(),
        OsStr::new("--data-volume"),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Expected, so not warned about; the detectors did read the files.
    assert!(
        !v["warnings"]
            .to_string()
            .contains("no operating system found"),
        "{}",
        v["warnings"]
    );
    assert_eq!(v["stats"]["filesystems_scanned"], 1, "{}", v["stats"]);
    assert!(
        v["stats"]["files_content_scanned"].as_u64().unwrap() >= 2,
        "{}",
        v["stats"]
    );

    // scrub: the same rule. Refused without the flag (nothing written); with
    // it the copy is written and e2fsck finds it clean.
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("data.img");
    let o = vmscrub([
        OsStr::new("scrub"),
        data.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ]);
    expect_error(&o, "scrub data volume", &["no operating system"]);
    assert!(names_in(d.path()).is_empty());
    let o = vmscrub([
        OsStr::new("scrub"),
        data.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--data-volume"),
        OsStr::new("-q"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    run("e2fsck", &[&"-fn", &out]);

    // ls and cat name a file, so they browse a data volume as it is.
    let o = vmscrub([
        OsStr::new("cat"),
        data.as_os_str(),
        OsStr::new("/srv/app/README"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, b"application data volume\n");

    // No filesystem at all (zeros): exit 3 however it is asked.
    let zeros = d.path().join("zeros.img");
    fs::write(&zeros, vec![0u8; 1 << 20]).unwrap();
    for extra in [None, Some("--data-volume")] {
        let mut args = vec![OsStr::new("scan"), zeros.as_os_str()];
        args.extend(extra.map(OsStr::new));
        let o = vmscrub(&args);
        expect_error(&o, "zeros", &["no filesystem", "no filesystem signature"]);
    }
}

#[test]
fn a_default_scan_of_a_clean_image_is_silent_with_q() {
    let img = fixture("ux-clean-qcow2");
    let o = vmscrub([OsStr::new("scan"), OsStr::new("-q"), img.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    // Without -q the report is there, and has nothing to say.
    let o = vmscrub([OsStr::new("scan"), img.as_os_str()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("OS: Debian GNU/Linux 12"), "{text}");
    assert!(
        text.contains("Summary: 0 findings in 0 operations on 0 paths"),
        "{text}"
    );
    assert!(text.contains("; 0 warnings"), "{text}");
    // A scrub with -q: nothing either.
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("clean.qcow2");
    let o = vmscrub([
        OsStr::new("scrub"),
        OsStr::new("-q"),
        img.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", stderr(&o));
    run("qemu-img", &[&"check", &out]);
    // -q does not hide findings: on a directory guest with a history file.
    let g = dir_guest(&[
        ("etc/os-release", "ID=debian\n"),
        ("root/.bash_history", "ls\n"),
    ]);
    let o = vmscrub([OsStr::new("scan"), OsStr::new("-q"), g.path().as_os_str()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("/root/.bash_history"), "{text}");
}

#[test]
fn no_op_operations_are_off_by_default_and_said_once() {
    let o = vmscrub(["operations"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    for name in ["customize", "script", "lvm-uuids"] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap();
        assert!(!line.contains(" * "), "{line}");
        assert!(line.contains("(not performed offline)"), "{line}");
    }
    for verb in [&["operations", "--help"][..], &["scan", "--help"][..]] {
        let o = vmscrub(verb);
        let help = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(help.contains("off by default"), "{verb:?}: {help}");
    }
    // Asked for, it is said once, as one warning.
    let g = dir_guest(&[("etc/os-release", "ID=debian\n")]);
    let o = vmscrub([
        OsStr::new("scan"),
        g.path().as_os_str(),
        OsStr::new("--operations"),
        OsStr::new("defaults,+customize"),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.matches("not performed offline").count(), 1, "{text}");
}

#[test]
fn counts_agree_in_number_and_a_file_is_not_a_tree() {
    let g = dir_guest(&[
        ("etc/os-release", "ID=debian\n"),
        ("var/lib/dhcp/state", "lease {}\n"),
    ]);
    let o = vmscrub([OsStr::new("scan"), g.path().as_os_str()]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("(1 finding,"), "{text}");
    assert!(
        text.contains("Summary: 1 finding in 1 operation on 1 path (1 planned action,"),
        "{text}"
    );
    assert!(!text.contains("1 findings"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("/var/lib/dhcp/state"))
        .unwrap();
    assert!(line.trim_start().starts_with("delete "), "{line}");
    // A directory under the same delete-tree rule is a tree.
    let g = dir_guest(&[
        ("etc/os-release", "ID=debian\n"),
        ("var/lib/dhcp/old/a", "lease {}\n"),
    ]);
    let o = vmscrub([OsStr::new("scan"), g.path().as_os_str()]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("/var/lib/dhcp/old"))
        .unwrap();
    assert!(line.trim_start().starts_with("delete-tree "), "{line}");
    // The scrub's plan labels the same way: the e2e lease file (a regular file
    // under dhcp-client-state's delete-tree rule) reads `delete`, and every
    // `delete-tree` line removed a directory.
    let o = vmscrub([
        OsStr::new("scrub"),
        fixture("e2e-disk").as_os_str(),
        OsStr::new("--dry-run"),
        OsStr::new("-q"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan = String::from_utf8_lossy(&o.stdout).into_owned();
    let lease = plan
        .lines()
        .find(|l| l.contains("/var/lib/dhcp/dhclient.eth0.leases"))
        .unwrap();
    assert!(lease.starts_with("delete "), "{lease}");
    for l in plan.lines().filter(|l| l.starts_with("delete-tree")) {
        assert!(l.contains(" dir(s)"), "{l}");
    }
}

#[test]
fn a_missing_output_directory_is_named_as_the_user_wrote_it() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("no-such-dir/clean.img");
    let img = fixture("ux-clean");
    let g = dir_guest(&[("etc/os-release", "ID=debian\n")]);
    let cases: [(&str, Vec<&OsStr>); 3] = [
        (
            "scrub",
            vec![
                OsStr::new("scrub"),
                img.as_os_str(),
                OsStr::new("-o"),
                target.as_os_str(),
            ],
        ),
        (
            "convert",
            vec![OsStr::new("convert"), img.as_os_str(), target.as_os_str()],
        ),
        (
            "scan --output",
            vec![
                OsStr::new("scan"),
                g.path().as_os_str(),
                OsStr::new("--output"),
                target.as_os_str(),
            ],
        ),
    ];
    for (what, args) in cases {
        let o = vmscrub(&args);
        let err = expect_error(
            &o,
            what,
            &[
                &target.display().to_string(),
                "does not exist",
                &d.path().join("no-such-dir").display().to_string(),
            ],
        );
        assert!(!err.contains("vmscrub-tmp"), "{what}: {err}");
    }
    assert_eq!(names_in(d.path()), Vec::<String>::new());
}

#[test]
fn an_interrupted_scrub_says_interrupted_and_nothing_else() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("clean.img");
    let o = Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args([OsStr::new("scrub"), fixture("ux-clean").as_os_str()])
        .arg("-o")
        .arg(&out)
        .env("VMSCRUB_FAULT", "interrupt-free-space")
        .output()
        .unwrap();
    let err = expect_error(&o, "interrupted", &["interrupted"]);
    assert!(!err.contains("free space not zeroed"), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert!(names_in(d.path()).is_empty(), "{:?}", names_in(d.path()));
}

/// An RSA key pair in `dir` (`id`, `id.pub`), with `pass` as passphrase.
fn keypair(dir: &Path, pass: &str) -> PathBuf {
    let key = dir.join("id");
    run(
        "ssh-keygen",
        &[
            &"-q", &"-t", &"rsa", &"-b", &"2048", &"-N", &pass, &"-f", &key,
        ],
    );
    key
}

#[test]
fn recover_messages_name_the_way_out() {
    let d = tempfile::tempdir().unwrap();
    let key = keypair(d.path(), "correct horse");
    let archive = d.path().join("removed.vsr");
    let o = vmscrub([
        OsStr::new("scrub"),
        OsStr::new("-q"),
        fixture("ux-clean").as_os_str(),
        OsStr::new("--dry-run"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A real archive of the clean image (it holds the manifest), in the v1
    // format whose chunk layout the truncation check below cuts into (the age
    // format's truncation is tested in tests/recover_age.rs).
    let out = d.path().join("clean.img");
    let o = vmscrub([
        OsStr::new("scrub"),
        OsStr::new("-q"),
        fixture("ux-clean").as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--recovery"),
        archive.as_os_str(),
        OsStr::new("--recipient"),
        d.path().join("id.pub").as_os_str(),
        OsStr::new("--archive-format"),
        OsStr::new("v1"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // No terminal at all (a new session: /dev/tty cannot be opened).
    let tar = d.path().join("removed.tar");
    let o = Command::new("setsid")
        .arg("-w")
        .arg(env!("CARGO_BIN_EXE_vmscrub"))
        .arg("recover")
        .arg(&archive)
        .arg("-i")
        .arg(&key)
        .arg("-o")
        .arg(&tar)
        .env_remove("VMSCRUB_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = expect_error(
        &o,
        "no terminal",
        &[
            "passphrase-protected",
            "--passphrase-file",
            "VMSCRUB_PASSPHRASE",
        ],
    );
    assert!(!err.contains("correct horse"));
    // The way it names works.
    let o = Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .arg("recover")
        .arg(&archive)
        .arg("-i")
        .arg(&key)
        .arg("-o")
        .arg(&tar)
        .env("VMSCRUB_PASSPHRASE", "correct horse")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    run("tar", &[&"-tf", &tar]);

    // Cut short: "truncated", not "modified".
    let whole = fs::read(&archive).unwrap();
    let cut = d.path().join("cut.vsr");
    let header = u32::from_be_bytes(whole[10..14].try_into().unwrap()) as usize;
    assert!(whole.len() > header + 16, "no chunk after the header");
    for keep in [whole.len() - 7, header + (whole.len() - header) / 2] {
        fs::write(&cut, &whole[..keep]).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_vmscrub"))
            .arg("recover")
            .arg(&cut)
            .arg("-i")
            .arg(&key)
            .arg("--list")
            .env("VMSCRUB_PASSPHRASE", "correct horse")
            .output()
            .unwrap();
        let err = expect_error(&o, "truncated", &["truncated"]);
        assert!(!err.contains("was modified"), "{err}");
    }
}
