//! dosfstools's test images (Debian's `dosfstools` source package: the hex dumps
//! of `tests/check-*.fsck`, FAT12/16/32 filesystems fsck.fat must repair —
//! circular and cross-linked chains, bad names, dot entries, first-cluster
//! damage — and the clean `*.xxd` references and label images), fetched at test
//! time by scripts/corpora.py, through every verb. Judged by dosfstools and
//! mtools: `fsck.fat -n` says what is clean, `mcopy` dumps trees, `cmp` and
//! SHA-256 say what changed.
//!
//! - every verb: as for the e2fsprogs corpus (tests/support/corpus.rs);
//! - a scrub that exits 0 loses nothing: the output's tree (mcopy) is the
//!   input's minus what the report says was removed, and a clean input gives
//!   an `fsck.fat -n`-clean output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/scrub.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use corpus::{each, every_verb, identical, judge, name, run};

fn images() -> Vec<PathBuf> {
    let v = vmscrub_fixtures::corpus_files("dosfstools", ".img");
    assert!(v.len() > 40, "only {} dosfstools images", v.len());
    corpus::selected(v)
}

#[test]
fn every_image_through_every_verb() {
    let images = images();
    let problems = each(&images, |img| every_verb(img, &|a, b| identical(a, b)));
    corpus::assert_none("dosfstools", images.len(), &problems);
}

fn fsck_clean(img: &Path) -> bool {
    Command::new("timeout")
        .args(["120", "fsck.fat", "-n"])
        .arg(img)
        .output()
        .unwrap()
        .status
        .success()
}

fn loses_nothing(img: &Path) -> Vec<String> {
    let n = name(img);
    let mut p = Vec::new();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let out = w.join("out.img");
    let report = w.join("report.json");
    let scrub = run(&[
        &"scrub",
        &"-q",
        &"--data-volume",
        &img,
        &"-o",
        &out,
        &"--report",
        &report,
    ]);
    if !judge(&format!("{n}: scrub"), &scrub, &[0, 3, 4], &mut p) {
        return p;
    }
    if fsck_clean(img) && !fsck_clean(&out) {
        p.push(format!(
            "{n}: the input is fsck.fat-clean, the scrubbed output is not"
        ));
    }
    // mtools refuses some of the damaged inputs (a bad media byte, an
    // unreadable FAT): then there is no independent tree to compare with, and
    // the image is named as not judged rather than passed in silence.
    let Ok(before) = std::panic::catch_unwind(|| support::dump_fat(img, w)) else {
        eprintln!("{n}: not judged: mcopy cannot read the input");
        return p;
    };
    let after = support::dump_fat(&out, w);
    p.extend(corpus::tree_losses(
        &n,
        &before,
        &after,
        &corpus::removed(&report),
        true,
    ));
    p
}

#[test]
fn a_scrub_that_succeeds_loses_nothing() {
    let images = images();
    let problems = each(&images, |img| loses_nothing(img));
    corpus::assert_none("dosfstools", images.len(), &problems);
}
