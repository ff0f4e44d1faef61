//! Every container variant of one disk, opened through the binary: `inspect` must
//! see the same partitions and filesystems as on the raw disk, and agree with
//! `qemu-img info` on format, subformat and virtual size.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use vmscrub_fixtures::{fixture, run};

fn vmscrub(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn inspect(path: &Path, extra: &[&str]) -> Value {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"inspect", &"--format", &"json"];
    for e in extra {
        args.push(e);
    }
    args.push(&path);
    let o = vmscrub(&args);
    assert!(
        o.status.success(),
        "inspect {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn qemu_info(path: &Path) -> Value {
    serde_json::from_slice(&run("qemu-img", &[&"info", &"--output=json", &path])).unwrap()
}

/// (fixture, format, subformat as we name it)
const VARIANTS: &[(&str, &str, &str)] = &[
    ("c-qcow2", "qcow2", "v3"),
    ("c-qcow2-v2", "qcow2", "v2"),
    ("c-qcow2-zlib", "qcow2", "v3"),
    ("c-qcow2-zstd", "qcow2", "v3"),
    ("c-qcow2-4k-clusters", "qcow2", "v3"),
    ("c-qcow2-2m-clusters", "qcow2", "v3"),
    ("c-qcow2-zero-clusters", "qcow2", "v3"),
    ("c-qcow2-dirty", "qcow2", "v3"),
    ("c-vmdk-sparse", "vmdk", "monolithicSparse"),
    ("c-vmdk-stream", "vmdk", "streamOptimized"),
    ("c-vmdk-flat", "vmdk", "monolithicFlat"),
    ("c-vmdk-2gb-sparse", "vmdk", "twoGbMaxExtentSparse"),
    ("c-vmdk-2gb-flat", "vmdk", "twoGbMaxExtentFlat"),
    ("c-vhd-dynamic", "vhd", "dynamic"),
    ("c-vhd-fixed", "vhd", "fixed"),
    ("c-vhdx-dynamic", "vhdx", "dynamic"),
    ("c-vhdx-fixed", "vhdx", "fixed"),
];

#[test]
fn every_variant_shows_the_raw_disk() {
    let raw = inspect(&fixture("c-raw"), &[]);
    assert!(raw["partitions"].as_array().unwrap().len() == 2);
    for (name, format, subformat) in VARIANTS {
        let path = fixture(name);
        let j = inspect(&path, &[]);
        assert_eq!(j["image"]["format"], *format, "{name}");
        assert_eq!(j["image"]["subformat"], *subformat, "{name}");
        assert_eq!(j["partition_table"], raw["partition_table"], "{name}");
        assert_eq!(j["partitions"], raw["partitions"], "{name}");
        // qemu's probe only sees a VHD's footer copy at the start, which a fixed
        // VHD has not: it must be told (vmscrub finds the footer at the end).
        let q = if *name == "c-vhd-fixed" {
            serde_json::from_slice(&run(
                "qemu-img",
                &[&"info", &"-f", &"vpc", &"--output=json", &path],
            ))
            .unwrap()
        } else {
            qemu_info(&path)
        };
        assert_eq!(j["image"]["virtual_size"], q["virtual-size"], "{name}");
        // qemu calls VHD "vpc".
        let qemu_name = if *format == "vhd" { "vpc" } else { format };
        assert_eq!(q["format"], qemu_name, "{name}");
        if *format == "vmdk" {
            assert_eq!(
                q["format-specific"]["data"]["create-type"], *subformat,
                "{name}"
            );
        }
        // Sparse containers hold much less than the virtual disk.
        let alloc = j["image"]["allocated_bytes"].as_u64().unwrap();
        assert!(
            alloc > 0 && alloc <= j["image"]["virtual_size"].as_u64().unwrap(),
            "{name}"
        );
    }
}

/// A descriptor is untrusted text: an extent path leaving the image's directory
/// must not be opened unless the user allows it.
#[test]
fn vmdk_extent_outside_the_directory_is_refused() {
    let src = fixture("c-vmdk-flat");
    let flat = src.with_file_name("c-vmdk-flat-flat.vmdk");
    let outer = tempfile::tempdir().unwrap();
    let inner = outer.path().join("img");
    std::fs::create_dir(&inner).unwrap();
    std::fs::copy(&flat, outer.path().join("data.vmdk")).unwrap();
    let text = std::fs::read_to_string(&src)
        .unwrap()
        .replace("\"c-vmdk-flat-flat.vmdk\"", "\"../data.vmdk\"");
    let desc = inner.join("disk.vmdk");
    std::fs::write(&desc, text).unwrap();

    let o = vmscrub(&[&"inspect", &desc]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("..") && err.contains("data.vmdk"), "{err}");

    let j = inspect(&desc, &["--allow-external-files"]);
    let raw = inspect(&fixture("c-raw"), &[]);
    assert_eq!(j["partitions"], raw["partitions"]);
}

/// Opening never writes: every container file is byte-identical afterwards.
#[test]
fn inputs_are_untouched() {
    for (name, _, _) in VARIANTS {
        let path = fixture(name);
        let before = std::fs::read(&path).unwrap();
        inspect(&path, &[]);
        assert_eq!(std::fs::read(&path).unwrap(), before, "{name}");
    }
}

/// A backing file is a host path chosen by the image: refused unless the user
/// passes --allow-backing; then the overlay reads through to it.
#[test]
fn qcow2_backing_needs_permission() {
    let path = fixture("c-qcow2-backed");
    let o = vmscrub(&[&"inspect", &path]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--allow-backing") && err.contains("c-qcow2-backing-base"),
        "{err}"
    );

    let j = inspect(&path, &["--allow-backing"]);
    let raw = inspect(&fixture("c-raw"), &[]);
    assert_eq!(j["partitions"], raw["partitions"]);
    assert!(
        j["image"]["details"]["backing_chain"][0]
            .as_str()
            .unwrap()
            .ends_with("c-qcow2-backing-base.qcow2")
    );
}

/// A backing name that leaves the image's directory is refused even with
/// --allow-backing, unless external files are allowed anywhere.
#[test]
fn qcow2_backing_outside_the_directory_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    let inner = outer.path().join("img");
    std::fs::create_dir(&inner).unwrap();
    std::fs::copy(fixture("c-qcow2"), outer.path().join("base.qcow2")).unwrap();
    let top = inner.join("top.qcow2");
    run(
        "qemu-img",
        &[
            &"create",
            &"-q",
            &"-f",
            &"qcow2",
            &"-b",
            &"../base.qcow2",
            &"-F",
            &"qcow2",
            &top,
        ],
    );
    let o = vmscrub(&[&"inspect", &"--allow-backing", &top]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("..") && err.contains("base.qcow2"), "{err}");
    let j = inspect(&top, &["--allow-backing", "--allow-external-files"]);
    assert_eq!(
        j["partitions"],
        inspect(&fixture("c-raw"), &[])["partitions"]
    );
}

/// A VHD scrubs to the same disk as the raw image it was converted from (judged
/// by `qemu-img compare`); with no output format named, the output is a VHD of
/// the input's subformat, which qemu reads as that (`qemu-img info -f vpc`) and
/// finds identical to the raw image's scrub. A VHDX scrubs the same way.
#[test]
fn vhd_scrubs_like_its_raw_disk() {
    let dir = tempfile::tempdir().unwrap();
    let scrub = |input: &Path, out: &Path, extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"scrub", &"-q", &"--data-volume", &input, &"-o", &out];
        for e in extra {
            args.push(e);
        }
        vmscrub(&args)
    };
    let want = dir.path().join("raw.qcow2");
    let o = scrub(&fixture("c-raw"), &want, &["--output-format", "qcow2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["c-vhd-dynamic", "c-vhd-fixed"] {
        let out = dir.path().join(format!("{name}.qcow2"));
        let o = scrub(&fixture(name), &out, &["--output-format", "qcow2"]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        run("qemu-img", &[&"compare", &"-q", &want, &out]);
        let vhd_out = dir.path().join(format!("{name}.vhd"));
        let o = scrub(&fixture(name), &vhd_out, &[]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&run(
            "qemu-img",
            &[&"info", &"--output=json", &"-f", &"vpc", &vhd_out],
        ))
        .unwrap();
        assert_eq!(info["format"], "vpc", "{name}");
        let disk_type = {
            use std::os::unix::fs::FileExt;
            let f = std::fs::File::open(&vhd_out).unwrap();
            let mut b = [0u8; 4];
            f.read_exact_at(&mut b, f.metadata().unwrap().len() - 512 + 60)
                .unwrap();
            u32::from_be_bytes(b)
        };
        let want_type = if name == "c-vhd-fixed" { 2 } else { 3 };
        assert_eq!(
            disk_type, want_type,
            "{name}: the input's subformat is kept"
        );
        run(
            "qemu-img",
            &[&"compare", &"-q", &"-F", &"vpc", &want, &vhd_out],
        );
    }
    // VHDX: read, scrubbed to the same disk; with no format named the output
    // is a VHDX, which qemu-img checks clean and finds identical.
    for name in ["c-vhdx-dynamic", "c-vhdx-fixed"] {
        let out = dir.path().join(format!("{name}.qcow2"));
        let o = scrub(&fixture(name), &out, &["--output-format", "qcow2"]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        run("qemu-img", &[&"compare", &"-q", &want, &out]);
        let vhdx_out = dir.path().join(format!("{name}.vhdx"));
        let o = scrub(&fixture(name), &vhdx_out, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{name}: {err}");
        let check = run("qemu-img", &[&"check", &"-f", &"vhdx", &vhdx_out]);
        assert!(
            String::from_utf8_lossy(&check).contains("No errors"),
            "{name}: {}",
            String::from_utf8_lossy(&check)
        );
        run(
            "qemu-img",
            &[&"compare", &"-q", &"-F", &"vhdx", &want, &vhdx_out],
        );
    }
}
