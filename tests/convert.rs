//! `vmscrub convert` through the binary, judged by independent tools: for every
//! input fixture and every output format, `qemu-img check` finds no error,
//! `qemu-img compare` says the output is identical to the input, `qemu-img info`
//! names the expected format / create-type / compression, 7-Zip (a second,
//! independent VMDK reader) extracts streamOptimized outputs byte for byte, and
//! our own readers read back the oracle's bytes. Then the failure paths: no
//! writable directory, a full disk (tmpfs) and a file-size limit (EFBIG), Ctrl-C —
//! exit 3, no output and no temporary file left, input unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use vmscrub::image::{self, OpenOptions};
use vmscrub_blockdev::ReadAt;
use vmscrub_fixtures::{fixture, qemu_raw, run};

fn vmscrub(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn qemu_info(path: &Path) -> Value {
    serde_json::from_slice(&run("qemu-img", &[&"info", &"--output=json", &path])).unwrap()
}

/// Container fixtures (qemu-made) and the edge shapes of fixtures/convert.toml.
const INPUTS: &[&str] = &[
    "c-raw",
    "c-vmdk-sparse",
    "c-vmdk-stream",
    "c-vmdk-flat",
    "c-vmdk-2gb-sparse",
    "c-vmdk-2gb-flat",
    "c-vmdk-odd-stream",
    "conv-odd",
    "conv-unaligned",
    "conv-big-sparse",
    "conv-all-zero",
    "conv-random",
    "conv-one-sector",
];

/// qcow2 inputs (the compressed ones are where parallel reading pays).
const QCOW2_INPUTS: &[&str] = &[
    "c-qcow2",
    "c-qcow2-v2",
    "c-qcow2-zlib",
    "c-qcow2-zstd",
    "c-qcow2-4k-clusters",
    "c-qcow2-2m-clusters",
    "c-qcow2-zero-clusters",
];

/// (output args, qemu format, VMDK create-type)
const OUTPUTS: &[(&[&str], &str, Option<&str>)] = &[
    (&["-O", "raw"], "raw", None),
    (
        &["--subformat", "streamOptimized"],
        "vmdk",
        Some("streamOptimized"),
    ),
    (
        &["--subformat", "monolithicSparse"],
        "vmdk",
        Some("monolithicSparse"),
    ),
    (
        &["--subformat", "monolithicFlat"],
        "vmdk",
        Some("monolithicFlat"),
    ),
];

/// Compares a device with the oracle raw file. Sizes may differ by less than a
/// sector (a VMDK rounds its capacity up to whole sectors, and so does qemu's raw
/// output; our raw output keeps the exact size); the extra bytes must be zeros.
fn same_bytes(dev: &dyn ReadAt, oracle: &Path, what: &str) {
    use std::os::unix::fs::FileExt;
    let o = std::fs::File::open(oracle).unwrap();
    let olen = o.metadata().unwrap().len();
    assert!(
        dev.size().abs_diff(olen) < 512,
        "{what}: size {} vs {olen}",
        dev.size()
    );
    let chunk = 4 << 20;
    let (mut a, mut b) = (vec![0u8; chunk], vec![0u8; chunk]);
    let mut pos = 0u64;
    let total = dev.size().max(olen);
    while pos < total {
        let n = (total - pos).min(chunk as u64) as usize;
        a[..n].fill(0);
        let d = dev.size().saturating_sub(pos).min(n as u64) as usize;
        dev.read_exact_at(&mut a[..d], pos).unwrap();
        b[..n].fill(0);
        let m = olen.saturating_sub(pos).min(n as u64) as usize;
        o.read_exact_at(&mut b[..m], pos).unwrap();
        assert!(a[..n] == b[..n], "{what}: bytes differ in [{pos}, +{n})");
        pos += n as u64;
    }
}

fn judge(input: &Path, oracle: &Path, out: &Path, format: &str, ct: Option<&str>, what: &str) {
    if format == "vmdk" {
        let check = run("qemu-img", &[&"check", &"-f", &"vmdk", &out]);
        assert!(
            String::from_utf8_lossy(&check).contains("No errors"),
            "{what}: {}",
            String::from_utf8_lossy(&check)
        );
    }
    let cmp = Command::new("qemu-img")
        .args(["compare", "-F", format])
        .arg(input)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        cmp.status.success() && String::from_utf8_lossy(&cmp.stdout).contains("identical"),
        "{what}: qemu-img compare: {}{}",
        String::from_utf8_lossy(&cmp.stdout),
        String::from_utf8_lossy(&cmp.stderr)
    );
    let info = qemu_info(out);
    assert_eq!(info["format"], format, "{what}");
    if let Some(ct) = ct {
        let data = &info["format-specific"]["data"];
        assert_eq!(data["create-type"], ct, "{what}");
        let compressed = ct == "streamOptimized";
        for e in data["extents"].as_array().unwrap() {
            assert_eq!(
                e["compressed"].as_bool().unwrap_or(false),
                compressed,
                "{what}: {e}"
            );
        }
    }
    let img = image::open(out, &OpenOptions::default()).unwrap();
    assert_eq!(img.info.format.as_str(), format, "{what}");
    if let Some(ct) = ct {
        assert_eq!(img.info.subformat.as_deref(), Some(ct), "{what}");
    }
    same_bytes(&*img.disk, oracle, what);
    if ct == Some("streamOptimized") {
        // 7-Zip's VMDK handler: an independent reader of VMware-style streams.
        // Its output is streamed and compared chunk by chunk (the big shape is 6 GiB).
        use std::io::Read;
        use std::os::unix::fs::FileExt;
        let mut child = Command::new("7zz")
            .args(["e", "-tvmdk", "-so"])
            .arg(out)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut pipe = child.stdout.take().unwrap();
        let o = std::fs::File::open(oracle).unwrap();
        let olen = o.metadata().unwrap().len();
        let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut pos = 0u64;
        loop {
            let n = pipe.read(&mut a).unwrap();
            if n == 0 {
                break;
            }
            b[..n].fill(0);
            let m = olen.saturating_sub(pos).min(n as u64) as usize;
            o.read_exact_at(&mut b[..m], pos).unwrap();
            assert!(a[..n] == b[..n], "{what}: 7zz bytes differ near {pos}");
            pos += n as u64;
        }
        assert!(child.wait().unwrap().success(), "{what}: 7zz failed");
        assert!(
            pos >= olen && pos - olen < 512,
            "{what}: 7zz gave {pos} bytes"
        );
    }
}

fn convert_all(inputs: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    for name in inputs {
        let input = fixture(name);
        let oracle = qemu_raw(&input, dir.path());
        for (args, format, ct) in OUTPUTS {
            let what = format!("{name} → {}", args.join(" "));
            let ext = if *format == "raw" { "raw" } else { "vmdk" };
            let out = dir
                .path()
                .join(format!("out-{name}-{}.{ext}", ct.unwrap_or("raw")));
            let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"convert", &"--quiet"];
            for x in *args {
                a.push(x);
            }
            a.push(&input);
            a.push(&out);
            ok(&vmscrub(&a), &what);
            judge(&input, &oracle, &out, format, *ct, &what);
            for e in std::fs::read_dir(dir.path()).unwrap() {
                let n = e.unwrap().file_name();
                assert!(
                    !n.to_string_lossy().ends_with(".vmscrub-tmp"),
                    "{what}: temporary file {n:?} left"
                );
            }
            std::fs::remove_file(&out).unwrap();
            let _ = std::fs::remove_file(
                out.with_file_name(format!("out-{name}-{}-flat.vmdk", ct.unwrap_or("raw"))),
            );
        }
        std::fs::remove_file(&oracle).unwrap();
    }
}

#[test]
fn qemu_made_containers_to_every_output() {
    vmscrub_fixtures::build(&INPUTS[..7]);
    convert_all(&INPUTS[..7]);
}

#[test]
fn edge_shapes_to_every_output() {
    vmscrub_fixtures::build(&INPUTS[7..]);
    convert_all(&INPUTS[7..]);
}

#[test]
fn qcow2_inputs_to_every_output() {
    vmscrub_fixtures::build(QCOW2_INPUTS);
    convert_all(QCOW2_INPUTS);
}

/// A qcow2 input defaults to qcow2 output, whose writer is not built yet: a clear
/// error, exit 3, nothing written.
#[test]
fn qcow2_output_says_not_built_yet() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.qcow2");
    for extra in [&[][..], &["-O", "qcow2"][..]] {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"convert"];
        for x in extra {
            a.push(x);
        }
        let input = fixture("c-qcow2");
        a.push(&input);
        a.push(&out);
        let o = vmscrub(&a);
        assert_eq!(o.status.code(), Some(3), "{extra:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("not built yet"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

fn descriptor_of(path: &Path) -> vmscrub_vmdk::Descriptor {
    let f = vmscrub_blockdev::FileDisk::open(path).unwrap();
    vmscrub_vmdk::create::read_descriptor(&f).unwrap()
}

/// Defaults: the input's format; a VMDK becomes streamOptimized; a new disk gets
/// fresh IDs and keeps the input's adapter (qemu wrote "ide").
#[test]
fn defaults_and_descriptor_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sparse = fixture("c-vmdk-sparse");
    ok(
        &vmscrub(&[&"convert", &"-q", &sparse, &d.join("a.vmdk")]),
        "vmdk default",
    );
    ok(
        &vmscrub(&[&"convert", &"-q", &sparse, &d.join("b.vmdk")]),
        "vmdk default again",
    );
    let raw = fixture("c-raw");
    ok(
        &vmscrub(&[&"convert", &"-q", &raw, &d.join("c.img")]),
        "raw default",
    );
    ok(
        &vmscrub(&[
            &"convert",
            &"-q",
            &"--subformat",
            &"monolithicSparse",
            &raw,
            &d.join("e.vmdk"),
        ]),
        "--subformat implies vmdk",
    );
    assert_eq!(qemu_info(&d.join("c.img"))["format"], "raw");
    let (input, a, b, e) = (
        descriptor_of(&sparse),
        descriptor_of(&d.join("a.vmdk")),
        descriptor_of(&d.join("b.vmdk")),
        descriptor_of(&d.join("e.vmdk")),
    );
    assert_eq!(a.create_type(), Some("streamOptimized"));
    assert_eq!(e.create_type(), Some("monolithicSparse"));
    assert_eq!(input.ddb("adapterType"), Some("ide"));
    assert_eq!(
        a.ddb("adapterType"),
        Some("ide"),
        "carried over from the VMDK input"
    );
    assert_eq!(a.ddb("geometry.heads"), Some("16"));
    assert_eq!(
        e.ddb("adapterType"),
        Some("lsilogic"),
        "default for a raw input"
    );
    assert_eq!(e.ddb("geometry.heads"), Some("255"));
    assert_eq!(a.ddb("toolsVersion"), input.ddb("toolsVersion"));
    assert_eq!(a.ddb("virtualHWVersion"), input.ddb("virtualHWVersion"));
    assert_ne!(a.cid(), input.cid());
    assert_ne!(a.cid(), b.cid());
    assert_ne!(a.ddb("uuid"), b.ddb("uuid"));
    assert!(a.ddb("uuid").is_some());
    assert_eq!(a.parent_cid(), Some(0xffff_ffff));
    // The extent line names the file by its final name, not the temporary one.
    assert_eq!(a.extents[0].file_name.as_deref(), Some("a.vmdk"));

    let o = vmscrub(&[
        &"convert",
        &"-O",
        &"raw",
        &"--subformat",
        &"streamOptimized",
        &raw,
        &d.join("x"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let help = vmscrub(&[&"convert", &"--help"]);
    ok(&help, "help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("plain-copy") && help.contains("debug"),
        "{help}"
    );
}

fn no_leftovers(dir: &Path, keep: &[&str], what: &str) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, keep, "{what}: leftovers");
}

#[test]
fn existing_output_and_the_input_itself_are_protected() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.img");
    std::fs::copy(fixture("conv-odd"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let out = dir.path().join("out.vmdk");
    std::fs::write(&out, b"precious").unwrap();
    let o = vmscrub(&[&"convert", &"-q", &input, &out]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    ok(
        &vmscrub(&[&"convert", &"-q", &"--force", &"-O", &"vmdk", &input, &out]),
        "--force",
    );
    assert_eq!(qemu_info(&out)["format"], "vmdk");
    for args in [vec!["--force"], vec!["--force", "-O", "vmdk"]] {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"convert", &"-q"];
        for x in &args {
            a.push(x);
        }
        a.push(&input);
        a.push(&input);
        let o = vmscrub(&a);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("is the input"));
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
    no_leftovers(dir.path(), &["in.img", "out.vmdk"], "protect");
}

#[test]
fn unwritable_directory_fails_cleanly() {
    let input = fixture("conv-odd");
    let o = vmscrub(&[&"convert", &input, &"/nonexistent-dir/out.vmdk"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent-dir"));

    // A directory without write permission, as an unprivileged user (root ignores
    // permissions, so drop to nobody when running as root).
    use std::os::unix::fs::PermissionsExt;
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ro = top.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let src = top.path().join("in.img");
    std::fs::copy(&input, &src).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let euid = String::from_utf8(run("id", &[&"-u"])).unwrap();
    let mut cmd = if euid.trim() == "0" {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_vmscrub"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_vmscrub"))
    };
    let o = cmd
        .args(["convert", "-q"])
        .arg(&src)
        .arg(ro.join("out.vmdk"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot create a file in"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    no_leftovers(&ro, &[], "read-only dir");
}

/// The file-size limit (`prlimit --fsize`, unprivileged): writes fail with EFBIG
/// instead of SIGXFSZ killing the process mid-write.
#[test]
fn file_size_limit_fails_cleanly() {
    let input = fixture("c-raw");
    for sub in ["streamOptimized", "monolithicSparse", "monolithicFlat"] {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new("prlimit")
            .arg("--fsize=1500000")
            .arg(env!("CARGO_BIN_EXE_vmscrub"))
            .args(["convert", "-q", "--subformat", sub])
            .arg(&input)
            .arg(dir.path().join("o.vmdk"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{sub}: {err}");
        assert!(err.contains("File too large"), "{sub}: {err}");
        no_leftovers(dir.path(), &[], sub);
    }
}

/// A full filesystem: a 1 MiB tmpfs in a private mount namespace (`unshare -rm`
/// works without root where user namespaces are allowed, and as root).
#[test]
fn disk_full_fails_cleanly() {
    let input = fixture("c-raw");
    let mnt = tempfile::tempdir().unwrap();
    for sub in [
        "streamOptimized",
        "monolithicSparse",
        "monolithicFlat",
        "raw",
    ] {
        let fmt = if sub == "raw" {
            "-O raw".to_string()
        } else {
            format!("--subformat {sub}")
        };
        let script = format!(
            "mount -t tmpfs -o size=1M none '{m}' && '{bin}' convert -q {fmt} '{i}' '{m}/o.img'; echo \"rc=$?\"; ls -A '{m}'",
            m = mnt.path().display(),
            bin = env!("CARGO_BIN_EXE_vmscrub"),
            i = input.display(),
        );
        let o = Command::new("unshare")
            .args(["-rm", "sh", "-c", &script])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            out.trim(),
            "rc=3",
            "{sub}: leftovers or wrong exit: {out} / {err}"
        );
        assert!(err.contains("No space left"), "{sub}: {err}");
    }
}

fn crc_of(path: &Path) -> (u64, u32) {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 8 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    (n, h.finalize())
}

/// SIGINT during a long convert: exit 3, no output, no temporary file, input as before.
#[test]
fn ctrl_c_leaves_nothing() {
    let input = fixture("conv-interrupt");
    let before = crc_of(&input);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.vmdk");
    let child = Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args([
            "convert",
            "-q",
            "--threads",
            "1",
            "--subformat",
            "streamOptimized",
        ])
        .arg(&input)
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the temporary file is being written, then interrupt.
    let t0 = Instant::now();
    loop {
        let growing = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 4 << 20));
        if growing {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "convert never started writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run("kill", &[&"-INT", &child.id().to_string()]);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    no_leftovers(dir.path(), &[], "ctrl-c");
    assert_eq!(crc_of(&input), before, "input changed");
}

/// A damaged input (a flipped byte inside a compressed grain): the read error
/// stops the pass, exit 3, nothing left beside the input.
#[test]
fn corrupt_input_fails_cleanly() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("in.vmdk");
    ok(
        &vmscrub(&[
            &"convert",
            &"-q",
            &"-O",
            &"vmdk",
            &fixture("conv-random"),
            &good,
        ]),
        "make a stream",
    );
    // Our streams put the first grain marker at sector 128 (overHead).
    let f = std::fs::OpenOptions::new().write(true).open(&good).unwrap();
    f.write_all_at(&[0xff; 16], 128 * 512 + 2000).unwrap();
    drop(f);
    for out in ["o.raw", "o.vmdk"] {
        let o = vmscrub(&[&"convert", &"-q", &good, &dir.path().join(out)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(
            err.contains("grain 0") && err.contains("nothing was written"),
            "{err}"
        );
        no_leftovers(dir.path(), &["in.vmdk"], out);
    }
}
