//! `vmscrub recover` through the binary: outputs, exit codes, nothing partial left
//! behind, and hostile archives refused. Keys are made by ssh-keygen/openssl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use vmscrub_recovery::{
    ArchiveFormat, ArchiveInfo, ArchiveWriter, Identity, ImageInfo, Metadata, Recipient, Timestamp,
    WriterOptions, decrypt_to, encrypt_tar,
};

const PASS: &str = "s3cret passphrase";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn p(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
    fn recipient(&self, n: &str) -> Recipient {
        Recipient::parse(&std::fs::read(self.p(n)).unwrap())
            .unwrap()
            .remove(0)
    }
    fn identity(&self, n: &str) -> Identity {
        Identity::parse(&std::fs::read(self.p(n)).unwrap(), &mut || {
            Ok(zeroize::Zeroizing::new(PASS.to_string()))
        })
        .unwrap()
    }
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        run_ok(Command::new("ssh-keygen").args([
            "-q",
            "-t",
            "rsa",
            "-b",
            "3072",
            "-N",
            "",
            "-f",
            &p("id_rsa"),
        ]));
        run_ok(Command::new("ssh-keygen").args([
            "-q",
            "-t",
            "rsa",
            "-b",
            "2048",
            "-N",
            PASS,
            "-f",
            &p("id_pass"),
        ]));
        run_ok(Command::new("ssh-keygen").args([
            "-q",
            "-t",
            "rsa",
            "-b",
            "2048",
            "-N",
            "",
            "-f",
            &p("other"),
        ]));
        run_ok(Command::new("openssl").args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &p("key.pem"),
        ]));
        run_ok(Command::new("openssl").args([
            "pkey",
            "-in",
            &p("key.pem"),
            "-pubout",
            "-out",
            &p("key.pub.pem"),
        ]));
        std::fs::write(dir.path().join("pass.txt"), format!("{PASS}\n")).unwrap();
        std::fs::write(dir.path().join("wrongpass.txt"), "nope\n").unwrap();
        Keys { dir }
    })
}

fn meta(mode: u32) -> Metadata {
    Metadata {
        mode,
        uid: 0,
        gid: 0,
        uname: None,
        gname: None,
        mtime: Timestamp {
            secs: 1_700_000_000,
            nanos: 250,
        },
        xattrs: vec![],
    }
}

/// A small archive for `id_rsa`, `id_pass` and the PEM key.
fn archive(dir: &Path) -> PathBuf {
    let k = keys();
    let recips = [
        k.recipient("id_rsa.pub"),
        k.recipient("id_pass.pub"),
        k.recipient("key.pub.pem"),
    ];
    let info = ArchiveInfo {
        image: ImageInfo {
            name: "golden.raw".into(),
            size: 1 << 30,
            sha256: None,
        },
        vmscrub_version: "0.1.0".into(),
        operations: vec!["ssh-hostkeys".into(), "bash-history".into()],
        created: None,
    };
    let mut w = ArchiveWriter::new(
        Vec::new(),
        &recips,
        info,
        &WriterOptions {
            format: ArchiveFormat::V1,
            chunk_size: 4096,
            ..Default::default()
        },
    )
    .unwrap();
    w.add_dir(b"/root", &meta(0o700), "bash-history").unwrap();
    let hist = b"ls\nssh prod-db\n".repeat(2000);
    w.add_file(
        b"/root/.bash_history",
        &meta(0o600),
        "bash-history",
        hist.len() as u64,
        &mut &hist[..],
    )
    .unwrap();
    w.add_dir(b"/etc/ssh", &meta(0o755), "ssh-hostkeys")
        .unwrap();
    let key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nhostkey\n".to_vec();
    w.add_file(
        b"/etc/ssh/ssh_host_ed25519_key",
        &meta(0o600),
        "ssh-hostkeys",
        key.len() as u64,
        &mut &key[..],
    )
    .unwrap();
    w.add_symlink(
        b"/etc/ssh/link",
        &meta(0o777),
        "ssh-hostkeys",
        b"ssh_host_ed25519_key",
    )
    .unwrap();
    let p = dir.join("removed.vsr");
    std::fs::write(&p, w.finish().unwrap()).unwrap();
    p
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn assert_exit3(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

#[test]
fn output_tar_matches_the_library_and_refuses_to_overwrite() {
    let k = keys();
    let d = tempfile::tempdir().unwrap();
    let a = archive(d.path());
    let out = d.path().join("removed.tar");
    run_ok(
        bin()
            .arg("recover")
            .arg(&a)
            .arg("--identity")
            .arg(k.p("id_rsa"))
            .arg("-o")
            .arg(&out),
    );
    let mut want = Vec::new();
    decrypt_to(
        &std::fs::read(&a).unwrap()[..],
        &k.identity("id_rsa"),
        &mut want,
    )
    .unwrap();
    assert!(std::fs::read(&out).unwrap() == want);
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let t = run_ok(Command::new("tar").arg("-tf").arg(&out));
    assert!(String::from_utf8_lossy(&t.stdout).contains("root/.bash_history"));
    // Exists: refused without --force (file untouched), replaced with it.
    std::fs::write(&out, b"precious").unwrap();
    let r = bin()
        .arg("recover")
        .arg(&a)
        .arg("-i")
        .arg(k.p("key.pem"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_exit3(&r, "already exists");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    run_ok(
        bin()
            .arg("recover")
            .arg(&a)
            .arg("-i")
            .arg(k.p("key.pem"))
            .arg("-o")
            .arg(&out)
            .arg("--force"),
    );
    assert!(std::fs::read(&out).unwrap() == want);
    assert_eq!(listing(d.path()), ["removed.tar", "removed.vsr"]);
}

#[test]
fn passphrase_file_works_and_wrong_or_missing_passphrase_is_exit_3() {
    let k = keys();
    let d = tempfile::tempdir().unwrap();
    let a = archive(d.path());
    let out = d.path().join("r.tar");
    run_ok(
        bin()
            .arg("recover")
            .arg(&a)
            .arg("-i")
            .arg(k.p("id_pass"))
            .arg("--passphrase-file")
            .arg(k.p("pass.txt"))
            .arg("-o")
            .arg(&out),
    );
    assert!(out.exists());
    std::fs::remove_file(&out).unwrap();
    let r = bin()
        .arg("recover")
        .arg(&a)
        .arg("-i")
        .arg(k.p("id_pass"))
        .arg("--passphrase-file")
        .arg(k.p("wrongpass.txt"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_exit3(&r, "wrong passphrase");
    // No terminal, no file: a clear error, not a hang.
    let r = bin()
        .arg("recover")
        .arg(&a)
        .arg("-i")
        .arg(k.p("id_pass"))
        .arg("-o")
        .arg(&out)
        .env_remove("VMSCRUB_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("passphrase"));
    assert_eq!(listing(d.path()), ["removed.vsr"]);
    // The passphrase never appears in any output.
    assert!(!String::from_utf8_lossy(&r.stderr).contains(PASS));
}

#[test]
fn wrong_key_and_tampering_leave_nothing_behind() {
    let k = keys();
    let d = tempfile::tempdir().unwrap();
    let a = archive(d.path());
    let out = d.path().join("r.tar");
    let r = bin()
        .arg("recover")
        .arg(&a)
        .arg("-i")
        .arg(k.p("other"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_exit3(&r, "no recipient");
    assert_eq!(listing(d.path()), ["removed.vsr"]);

    let mut bytes = std::fs::read(&a).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 1; // last chunk's tag
    let bad = d.path().join("bad.vsr");
    std::fs::write(&bad, &bytes).unwrap();
    let r = bin()
        .arg("recover")
        .arg(&bad)
        .arg("-i")
        .arg(k.p("id_rsa"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_exit3(&r, "failed authentication");
    let target = d.path().join("restore");
    let r = bin()
        .arg("recover")
        .arg(&bad)
        .arg("-i")
        .arg(k.p("id_rsa"))
        .arg("--extract")
        .arg(&target)
        .output()
        .unwrap();
    assert_exit3(&r, "failed authentication");
    let r = bin()
        .arg("recover")
        .arg(&bad)
        .arg("-i")
        .arg(k.p("id_rsa"))
        .arg("--list")
        .output()
        .unwrap();
    assert_exit3(&r, "failed authentication");
    assert!(r.stdout.is_empty(), "listing printed before authentication");
    // Truncated at a chunk boundary (the final chunk dropped).
    let good = std::fs::read(&a).unwrap();
    let hl = u32::from_be_bytes(good[10..14].try_into().unwrap()) as usize;
    let body = good.len() - hl;
    let last = body - (body - 1) / (4096 + 16) * (4096 + 16);
    std::fs::write(&bad, &good[..good.len() - last]).unwrap();
    let r = bin()
        .arg("recover")
        .arg(&bad)
        .arg("-i")
        .arg(k.p("id_rsa"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_exit3(&r, "truncated");
    assert_eq!(listing(d.path()), ["bad.vsr", "removed.vsr"]);
    // Not an archive at all.
    let r = bin()
        .arg("recover")
        .arg(k.p("id_rsa.pub"))
        .arg("-i")
        .arg(k.p("id_rsa"))
        .arg("--list")
        .output()
        .unwrap();
    assert_exit3(&r, "not a vmscrub recovery archive");
}

#[test]
fn extract_restores_and_list_shows_the_manifest() {
    let k = keys();
    let d = tempfile::tempdir().unwrap();
    let a = archive(d.path());
    let target = d.path().join("restore");
    run_ok(
        bin()
            .arg("recover")
            .arg(&a)
            .arg("-i")
            .arg(k.p("id_rsa"))
            .arg("--extract")
            .arg(&target),
    );
    assert_eq!(listing(&target), ["etc", "root"]);
    assert_eq!(
        std::fs::read(target.join("root/.bash_history")).unwrap(),
        b"ls\nssh prod-db\n".repeat(2000)
    );
    assert_eq!(
        std::fs::read_link(target.join("etc/ssh/link")).unwrap(),
        Path::new("ssh_host_ed25519_key")
    );
    let st = std::fs::metadata(target.join("root")).unwrap();
    assert_eq!(st.permissions().mode() & 0o7777, 0o700);
    use std::os::unix::fs::MetadataExt;
    assert_eq!((st.mtime(), st.mtime_nsec()), (1_700_000_000, 250));

    let out = run_ok(
        bin()
            .arg("recover")
            .arg(&a)
            .arg("-i")
            .arg(k.p("id_rsa"))
            .arg("--list"),
    );
    let s = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "golden.raw",
        "ssh-hostkeys, bash-history",
        "vmscrub 0.1.0",
        "entries: 5",
        "root/.bash_history",
        "-rw------- 0/0",
        "etc/ssh/link -> ssh_host_ed25519_key",
        "sha256 ",
        "2023-11-14T22:13:20.000000250Z",
    ] {
        assert!(s.contains(needle), "{needle:?} missing from:\n{s}");
    }
}

/// A hostile tar (made by Python's tarfile), encrypted for `id_rsa`.
fn hostile(dir: &Path, name: &str, script: &str) -> PathBuf {
    let tar = dir.join(format!("{name}.tar"));
    let code = format!(
        "import tarfile, io, sys\nt = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)\n\
         def f(n, data=b'pwned'):\n    i = tarfile.TarInfo(n); i.size = len(data); t.addfile(i, io.BytesIO(data))\n\
         def l(n, target, kind=tarfile.SYMTYPE):\n    i = tarfile.TarInfo(n); i.type = kind; i.linkname = target; t.addfile(i)\n\
         def d(n):\n    i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)\n\
         {script}\nt.close()\n"
    );
    run_ok(Command::new("python3").arg("-c").arg(code).arg(&tar));
    let k = keys();
    let bytes = encrypt_tar(
        Vec::new(),
        &[k.recipient("id_rsa.pub")],
        &WriterOptions::default(),
        &mut std::fs::File::open(&tar).unwrap(),
    )
    .unwrap();
    let p = dir.join(format!("{name}.vsr"));
    std::fs::write(&p, bytes).unwrap();
    std::fs::remove_file(&tar).unwrap();
    p
}

#[test]
fn extraction_attacks_are_refused_and_nothing_is_written() {
    let k = keys();
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let cases = [
        ("dotdot", "f('ok'); f('../outside/x')", "`..`"),
        (
            "absolute",
            &format!("f('ok'); f('{}/abs')", outside.display()) as &str,
            "absolute path",
        ),
        (
            "symlink-then-file",
            &format!("l('a', '{}'); f('a/x')", outside.display()),
            "through the symlink",
        ),
        (
            "relative-symlink-then-file",
            "d('sub'); l('sub/up', '../..'); f('sub/up/outside/y')",
            "through the symlink",
        ),
        (
            "symlink-then-dir",
            &format!("l('a', '{}'); d('a/sub')", outside.display()),
            "through the symlink",
        ),
        (
            "hardlink-out",
            "f('ok'); l('h', '../outside/x', tarfile.LNKTYPE)",
            "`..`",
        ),
        (
            "hardlink-through-symlink",
            &format!(
                "l('a', '{}'); l('h', 'a/x', tarfile.LNKTYPE)",
                outside.display()
            ),
            "through the symlink",
        ),
    ];
    std::fs::write(outside.join("x"), b"original").unwrap();
    for (name, script, needle) in cases {
        let a = hostile(d.path(), name, script);
        let target = d.path().join(format!("t-{name}"));
        let r = bin()
            .arg("recover")
            .arg(&a)
            .arg("-i")
            .arg(k.p("id_rsa"))
            .arg("--extract")
            .arg(&target)
            .output()
            .unwrap();
        assert_exit3(&r, needle);
        assert!(
            !target.exists(),
            "{name}: target left behind: {:?}",
            listing(&target)
        );
        assert_eq!(listing(&outside), ["x"], "{name}: wrote outside");
        assert_eq!(std::fs::read(outside.join("x")).unwrap(), b"original");
        // A pre-existing target stays as it was (no staging directory left).
        std::fs::create_dir(&target).unwrap();
        let r = bin()
            .arg("recover")
            .arg(&a)
            .arg("-i")
            .arg(k.p("id_rsa"))
            .arg("--extract")
            .arg(&target)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(3), "{name}");
        assert!(
            listing(&target).is_empty(),
            "{name}: {:?}",
            listing(&target)
        );
    }
    // A symlink already in the target is not written through either.
    let target = d.path().join("t-existing-link");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("etc")).unwrap();
    let a = hostile(d.path(), "into-existing-link", "d('etc'); f('etc/x')");
    let r = bin()
        .arg("recover")
        .arg(&a)
        .arg("-i")
        .arg(k.p("id_rsa"))
        .arg("--extract")
        .arg(&target)
        .output()
        .unwrap();
    assert_exit3(&r, "already exists");
    assert_eq!(listing(&outside), ["x"]);
    assert_eq!(listing(&target), ["etc"]);
}

#[test]
fn help_explains_every_option_and_usage_errors_are_exit_2() {
    let out = run_ok(bin().args(["recover", "--help"]));
    let s = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--identity",
        "--passphrase-file",
        "--output",
        "--extract",
        "--list",
        "--force",
        "staged",
        "authenticated",
    ] {
        assert!(s.contains(opt), "{opt} missing from help:\n{s}");
    }
    let r = bin()
        .args(["recover", "x.vsr", "--identity", "k"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let r = bin()
        .args(["recover", "x.vsr", "--identity", "k", "--list", "-o", "y"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
}
