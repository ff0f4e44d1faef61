//! qemu's iotests sample images (Debian's `qemu` source package,
//! `tests/qemu-iotests/sample_images/`: VMDK, VHD, VHDX, parallels, bochs,
//! cloop, DMG and raw images, some of them fuzzer-found crashers of qemu's own
//! readers), fetched at test time by scripts/corpora.py, through every verb.
//! Judged by qemu-img, which reads them all:
//!
//! - every verb: as for the e2fsprogs corpus (tests/support/corpus.rs);
//! - a format vmscrub does not read is refused, never read as something else:
//!   whatever `convert` writes, `qemu-img compare` (reading the input in the
//!   format qemu-img detects) finds identical to the input, and `qemu-img
//!   check` finds clean when it is a qcow2 or VMDK.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/scrub.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use corpus::{each, every_verb};

/// qemu-img's name for the image's format (`raw` when it recognises none).
fn qemu_format(img: &Path) -> Option<String> {
    let o = Command::new("timeout")
        .args(["60", "qemu-img", "info", "--output=json"])
        .arg(img)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v["format"].as_str().map(str::to_string)
}

/// The judge of `convert`: qemu-img reads the input its way and the output as
/// the format vmscrub wrote; both must hold the same disk.
fn same_disk(input: &Path, output: &Path) -> bool {
    let Some(fmt) = qemu_format(input) else {
        // qemu-img cannot read it: nothing to compare with.
        return true;
    };
    let compare = Command::new("timeout")
        .args(["120", "qemu-img", "compare", "-f", &fmt])
        .arg(input)
        .arg(output)
        .output()
        .unwrap();
    let out_fmt = qemu_format(output).unwrap_or_default();
    let checked = !matches!(out_fmt.as_str(), "qcow2" | "vmdk")
        || Command::new("qemu-img")
            .args(["check", "-q"])
            .arg(output)
            .status()
            .unwrap()
            .success();
    if !compare.status.success() {
        eprintln!(
            "{}: read as {fmt} by qemu-img, {out_fmt} output: {}",
            input.display(),
            String::from_utf8_lossy(&compare.stdout)
        );
    }
    compare.status.success() && checked
}

#[test]
fn every_image_through_every_verb() {
    let images = vmscrub_fixtures::corpus_files("qemu", "");
    assert!(
        images.len() >= 10,
        "only {} qemu sample images",
        images.len()
    );
    let problems = each(&images, |img| every_verb(img, &same_disk));
    corpus::assert_none("qemu sample_images", images.len(), &problems);
}
