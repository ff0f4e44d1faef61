//! `vmscrub batch`: a repository made from fixture images (plus a file that is
//! not an image and a truncated qcow2), judged against single-image runs of the
//! same binary and, for scrub outputs, by `qemu-img compare` and `qemu-img check`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BATCH_INCOMPLETE: i32 = 5;

fn vmscrub(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args)
        .output()
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

/// The good images of the repository, by their path below it.
const GOOD: [&str; 3] = ["a.qcow2", "c.vhd", "sub/b.img"];

/// repo/: three images of different containers (one without an extension
/// that says so), a text file named like an image, and a truncated qcow2.
fn repository(dir: &Path) -> PathBuf {
    vmscrub_fixtures::build(&["c-qcow2", "c-raw", "c-vhd-dynamic"]);
    let repo = dir.join("repo");
    fs::create_dir_all(repo.join("sub")).unwrap();
    fs::copy(vmscrub_fixtures::path_of("c-qcow2"), repo.join("a.qcow2")).unwrap();
    fs::copy(
        vmscrub_fixtures::path_of("c-vhd-dynamic"),
        repo.join("c.vhd"),
    )
    .unwrap();
    let raw = vmscrub_fixtures::path_of("c-raw");
    let ok = Command::new("cp")
        .arg("--sparse=always")
        .arg(&raw)
        .arg(repo.join("sub/b.img"))
        .status()
        .unwrap();
    assert!(ok.success());
    fs::write(
        repo.join("notes.img"),
        b"not a disk, whatever its name says\n",
    )
    .unwrap();
    let qcow = fs::read(vmscrub_fixtures::path_of("c-qcow2")).unwrap();
    fs::write(repo.join("broken.qcow2"), &qcow[..qcow.len() / 5]).unwrap();
    repo
}

fn lines(path: &Path) -> BTreeMap<String, Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["path"].as_str().unwrap().to_string(), v))
        .collect()
}

fn rel(repo: &Path, line_path: &str) -> String {
    Path::new(line_path)
        .strip_prefix(repo)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn status_of(repo: &Path, report: &Path) -> BTreeMap<String, (String, bool)> {
    lines(report)
        .into_iter()
        .map(|(p, v)| {
            let unchanged = v["unchanged"].as_bool().unwrap_or(false);
            (
                rel(repo, &p),
                (v["status"].as_str().unwrap().to_string(), unchanged),
            )
        })
        .collect()
}

#[test]
fn batch_scan_equals_single_scans_and_names_what_failed() {
    let t = tempfile::tempdir().unwrap();
    let repo = repository(t.path());
    let (rep, jsonl) = (t.path().join("reports"), t.path().join("batch.jsonl"));
    let out = vmscrub(&[
        &"batch",
        &"scan",
        &repo,
        &"--report-dir",
        &rep,
        &"--report",
        &jsonl,
        &"-q",
    ]);
    assert_eq!(
        code(&out),
        BATCH_INCOMPLETE,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed") && stderr.contains("broken.qcow2"),
        "{stderr}"
    );

    let by = lines(&jsonl);
    assert_eq!(by.len(), 5, "{by:#?}");
    for name in GOOD {
        let image = repo.join(name);
        let line = &by[image.to_str().unwrap()];
        assert_eq!(line["status"], "ok", "{line}");
        let single = vmscrub(&[&"scan", &image, &"--format", &"json", &"-q"]);
        assert_eq!(code(&single), 0);
        let single: Value = serde_json::from_slice(&single.stdout).unwrap();
        let batch: Value =
            serde_json::from_slice(&fs::read(rep.join(format!("{name}.json"))).unwrap()).unwrap();
        assert_eq!(
            batch, single,
            "{name}: the batch's report differs from `vmscrub scan`'s"
        );
        // The JSON line's counts are the single report's findings by operation.
        let mut expect: BTreeMap<String, u64> = BTreeMap::new();
        for f in single["findings"].as_array().unwrap() {
            *expect
                .entry(f["operation"].as_str().unwrap().into())
                .or_default() += 1;
        }
        assert!(!expect.is_empty(), "the fixture has findings");
        let got: BTreeMap<String, u64> = serde_json::from_value(line["findings"].clone()).unwrap();
        assert_eq!(got, expect, "{name}");
        assert_eq!(
            line["identity"]["size"],
            fs::metadata(&image).unwrap().len()
        );
    }
    let broken = &by[repo.join("broken.qcow2").to_str().unwrap()];
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["format"], "qcow2");
    let reason = broken["reason"].as_str().unwrap();
    // The single verb fails on it too, exit 3, with the same reason.
    let single = vmscrub(&[&"scan", &repo.join("broken.qcow2"), &"-q"]);
    assert_eq!(code(&single), 3);
    assert!(
        String::from_utf8_lossy(&single.stderr).contains(reason),
        "{reason}"
    );
    let notes = &by[repo.join("notes.img").to_str().unwrap()];
    assert_eq!(notes["status"], "skipped");
    assert!(
        notes["reason"]
            .as_str()
            .unwrap()
            .contains("not a disk image")
    );
    assert!(!rep.join("notes.img.json").exists() && !rep.join("broken.qcow2.json").exists());
}

#[test]
fn a_list_of_paths_and_the_fail_on_policy_over_the_batch() {
    let t = tempfile::tempdir().unwrap();
    let repo = repository(t.path());
    let list = t.path().join("images.txt");
    // Relative to the list's directory; comments and blank lines ignored.
    fs::write(&list, "# good ones\nrepo/a.qcow2\n\n").unwrap();
    fs::write(
        t.path().join("more.txt"),
        format!("{}\n", repo.join("c.vhd").display()),
    )
    .unwrap();
    let state = t.path().join("state.redb");
    let more = t.path().join("more.txt");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vmscrub"))
            .args(["batch", "scan", "-q"])
            .arg(&list)
            .arg(&more)
            .arg("--state")
            .arg(&state)
            .args(extra)
            .output()
            .unwrap()
    };
    assert_eq!(code(&run(&[])), 0);
    let failed = run(&["--fail-on", "machine-id"]);
    assert_eq!(
        code(&failed),
        1,
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    // The second run skipped both images as unchanged: the policy is applied
    // to the counts the state recorded.
    assert!(String::from_utf8_lossy(&failed.stderr).contains("2 images have findings"));
    assert_eq!(code(&run(&["--fail-on", "secret"])), 0);
    assert_eq!(code(&run(&["--fail-on", "no-such-operation"])), 2);
}

#[test]
fn reruns_skip_what_is_unchanged_and_redo_what_changed() {
    let t = tempfile::tempdir().unwrap();
    let repo = repository(t.path());
    let rep = t.path().join("reports");
    let jsonl = t.path().join("batch.jsonl");
    let run = |ops: &str| {
        let out = vmscrub(&[
            &"batch",
            &"scan",
            &repo,
            &"--report-dir",
            &rep,
            &"--report",
            &jsonl,
            &"-q",
            &"--operations",
            &ops,
        ]);
        assert_eq!(
            code(&out),
            BATCH_INCOMPLETE,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        status_of(&repo, &jsonl)
    };
    let first = run("defaults");
    for name in GOOD {
        assert_eq!(first[name], ("ok".into(), false));
    }
    assert!(rep.join(".vmscrub-batch.redb").exists());
    let report_time = |n: &str| {
        fs::metadata(rep.join(format!("{n}.json")))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = GOOD.iter().map(|n| report_time(n)).collect();

    let second = run("defaults");
    for name in GOOD {
        assert_eq!(second[name], ("skipped".into(), true), "{name}");
    }
    // Failed images are not recorded: they are tried again.
    assert_eq!(second["broken.qcow2"], ("failed".into(), false));
    assert_eq!(second["notes.img"], ("skipped".into(), false));
    let after: Vec<_> = GOOD.iter().map(|n| report_time(n)).collect();
    assert_eq!(before, after, "a skipped image's report was rewritten");
    // Its findings are still in the batch report, from the state.
    let l = lines(&jsonl);
    assert_eq!(
        l[repo.join("a.qcow2").to_str().unwrap()]["findings"]["machine-id"],
        1
    );

    // A new mtime redoes that image only.
    let ok = Command::new("touch")
        .arg(repo.join("c.vhd"))
        .status()
        .unwrap();
    assert!(ok.success());
    let third = run("defaults");
    assert_eq!(third["c.vhd"], ("ok".into(), false));
    assert_eq!(third["a.qcow2"], ("skipped".into(), true));
    assert_eq!(third["sub/b.img"], ("skipped".into(), true));

    // Changed bytes with size and mtime kept (the MBR's disk signature, in the
    // first MiB) are caught by the digest.
    let b = repo.join("sub/b.img");
    let mtime = fs::metadata(&b).unwrap().modified().unwrap();
    let mut bytes = fs::read(&b).unwrap();
    bytes[440] ^= 0xff;
    fs::write(&b, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&b)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let fourth = run("defaults");
    assert_eq!(fourth["sub/b.img"], ("ok".into(), false));
    assert_eq!(fourth["a.qcow2"], ("skipped".into(), true));

    // Another configuration redoes every image.
    let fifth = run("defaults,-logfiles");
    for name in GOOD {
        assert_eq!(fifth[name], ("ok".into(), false), "{name}");
    }
    let l = lines(&jsonl);
    assert!(
        l[repo.join("a.qcow2").to_str().unwrap()]["findings"]
            .get("logfiles")
            .is_none()
    );
}

#[test]
fn shards_partition_the_repository() {
    let t = tempfile::tempdir().unwrap();
    let repo = repository(t.path());
    let mut seen: Vec<BTreeSet<String>> = Vec::new();
    for k in 0..2 {
        let jsonl = t.path().join(format!("s{k}.jsonl"));
        let state = t.path().join(format!("s{k}.redb"));
        let shard = format!("{k}/2");
        let out = vmscrub(&[
            &"batch",
            &"scan",
            &repo,
            &"--shard",
            &shard,
            &"--report",
            &jsonl,
            &"--state",
            &state,
            &"-q",
        ]);
        assert!([0, BATCH_INCOMPLETE].contains(&code(&out)));
        let images: BTreeSet<String> = status_of(&repo, &jsonl)
            .into_iter()
            .filter(|(_, (s, _))| s != "skipped")
            .map(|(p, _)| p)
            .collect();
        assert!(!images.is_empty());
        seen.push(images);
    }
    assert!(seen[0].is_disjoint(&seen[1]), "{seen:?}");
    let all: BTreeSet<String> = seen.concat_sets();
    let expect: BTreeSet<String> = GOOD
        .iter()
        .map(|s| s.to_string())
        .chain(["broken.qcow2".to_string()])
        .collect();
    assert_eq!(all, expect);
    // Both shards at once, into one report directory: each has its own state.
    let rep = t.path().join("reports");
    let children: Vec<_> = (0..2)
        .map(|k| {
            Command::new(env!("CARGO_BIN_EXE_vmscrub"))
                .args([
                    "batch",
                    "scan",
                    "-q",
                    "--shard",
                    &format!("{k}/2"),
                    "--report-dir",
                ])
                .arg(&rep)
                .arg(&repo)
                .spawn()
                .unwrap()
        })
        .collect();
    // Sorted: a.qcow2, broken.qcow2, c.vhd, sub/b.img; the broken one is shard 1's.
    let codes: Vec<_> = children
        .into_iter()
        .map(|mut c| c.wait().unwrap().code())
        .collect();
    assert_eq!(codes, [Some(0), Some(BATCH_INCOMPLETE)]);
    for name in GOOD {
        assert!(rep.join(format!("{name}.json")).exists(), "{name}");
    }
    assert!(rep.join(".vmscrub-batch-0-of-2.redb").exists());
    assert!(rep.join(".vmscrub-batch-1-of-2.redb").exists());
    let bad = vmscrub(&[&"batch", &"scan", &repo, &"--shard", &"2/2"]);
    assert_eq!(code(&bad), 2);
}

trait ConcatSets {
    fn concat_sets(&self) -> BTreeSet<String>;
}

impl ConcatSets for Vec<BTreeSet<String>> {
    fn concat_sets(&self) -> BTreeSet<String> {
        self.iter().flatten().cloned().collect()
    }
}

#[test]
fn batch_scrub_outputs_are_the_single_scrubs_outputs() {
    let t = tempfile::tempdir().unwrap();
    let repo = repository(t.path());
    let out_dir = t.path().join("clean");
    let rec_dir = t.path().join("recovery");
    let key = t.path().join("id_ed25519");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let pubkey = t.path().join("id_ed25519.pub");
    let jsonl = t.path().join("scrub.jsonl");
    let out = vmscrub(&[
        &"batch",
        &"scrub",
        &repo,
        &"--out",
        &out_dir,
        &"-O",
        &"qcow2",
        &"--recovery-dir",
        &rec_dir,
        &"--recipient",
        &pubkey,
        &"--report",
        &jsonl,
        &"--jobs",
        &"2",
        &"-q",
    ]);
    assert_eq!(
        code(&out),
        BATCH_INCOMPLETE,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by = status_of(&repo, &jsonl);
    assert_eq!(by["broken.qcow2"].0, "failed");
    for name in GOOD {
        assert_eq!(by[name].0, "ok", "{name}");
        let batch_out = out_dir.join(Path::new(name).with_extension("qcow2"));
        let single_out = t.path().join("single.qcow2");
        let _ = fs::remove_file(&single_out);
        let single = vmscrub(&[
            &"scrub",
            &repo.join(name),
            &"-o",
            &single_out,
            &"-O",
            &"qcow2",
            &"-q",
        ]);
        assert_eq!(
            code(&single),
            0,
            "{}",
            String::from_utf8_lossy(&single.stderr)
        );
        for img in [&batch_out, &single_out] {
            let check = Command::new("qemu-img")
                .arg("check")
                .arg(img)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{}",
                String::from_utf8_lossy(&check.stdout)
            );
        }
        let cmp = Command::new("qemu-img")
            .args(["compare", "-f", "qcow2", "-F", "qcow2"])
            .arg(&batch_out)
            .arg(&single_out)
            .output()
            .unwrap();
        assert!(
            cmp.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&cmp.stdout)
        );
        // The batch output differs from its input (something was removed).
        let orig = Command::new("qemu-img")
            .arg("compare")
            .arg(repo.join(name))
            .arg(&batch_out)
            .output()
            .unwrap();
        assert_eq!(
            orig.status.code(),
            Some(1),
            "{name}: the scrub changed nothing"
        );
        let archive = rec_dir.join(format!("{name}.tar.zst.age"));
        let list = vmscrub(&[&"recover", &archive, &"-i", &key, &"--list"]);
        assert_eq!(code(&list), 0, "{}", String::from_utf8_lossy(&list.stderr));
        assert!(String::from_utf8_lossy(&list.stdout).contains("machine-id"));
    }
    // A rerun keeps what it made and does no work.
    let again = vmscrub(&[
        &"batch",
        &"scrub",
        &repo,
        &"--out",
        &out_dir,
        &"-O",
        &"qcow2",
        &"--recovery-dir",
        &rec_dir,
        &"--recipient",
        &pubkey,
        &"--report",
        &jsonl,
        &"-q",
    ]);
    assert_eq!(code(&again), BATCH_INCOMPLETE);
    let by = status_of(&repo, &jsonl);
    for name in GOOD {
        assert_eq!(by[name], ("skipped".into(), true), "{name}");
    }
}

#[test]
fn an_interrupted_run_keeps_what_finished() {
    let t = tempfile::tempdir().unwrap();
    let repo = repository(t.path());
    let jsonl = t.path().join("batch.jsonl");
    let state = t.path().join("state.redb");
    let run = |fault: &str| {
        Command::new(env!("CARGO_BIN_EXE_vmscrub"))
            .args(["batch", "scan", "-q", "--jobs", "1"])
            .arg(&repo)
            .arg("--report")
            .arg(&jsonl)
            .arg("--state")
            .arg(&state)
            .env("VMSCRUB_FAULT", fault)
            .output()
            .unwrap()
    };
    // The fault stands for Ctrl-C as the first image finishes.
    let first = run("batch-interrupt");
    assert_eq!(
        code(&first),
        130,
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let done: Vec<String> = status_of(&repo, &jsonl)
        .into_iter()
        .filter(|(_, (s, _))| s != "skipped")
        .map(|(p, _)| p)
        .collect();
    assert_eq!(done.len(), 1, "{done:?}");
    let second = run("");
    assert_eq!(code(&second), BATCH_INCOMPLETE);
    let by = status_of(&repo, &jsonl);
    for name in GOOD.iter().chain(&["broken.qcow2"]) {
        let expect = if done.contains(&name.to_string()) && *name != "broken.qcow2" {
            ("skipped".to_string(), true)
        } else if *name == "broken.qcow2" {
            ("failed".to_string(), false)
        } else {
            ("ok".to_string(), false)
        };
        assert_eq!(by[*name], expect, "{name}");
    }
}

#[test]
fn verify_digests_catches_an_edit_the_quick_identity_cannot() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let repo = repository(t.path());
    let jsonl = t.path().join("batch.jsonl");
    let state = t.path().join("state.redb");
    let run = |verify: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vmscrub"));
        c.args(["batch", "scan", "-q"])
            .arg(&repo)
            .arg("--report")
            .arg(&jsonl)
            .arg("--state")
            .arg(&state);
        if verify {
            c.arg("--verify-digests");
        }
        let out = c.output().unwrap();
        assert_eq!(code(&out), BATCH_INCOMPLETE);
        status_of(&repo, &jsonl)
    };
    assert_eq!(run(true)["sub/b.img"], ("ok".into(), false));
    assert_eq!(run(true)["sub/b.img"], ("skipped".into(), true));
    let line = &lines(&jsonl)[repo.join("sub/b.img").to_str().unwrap()];
    assert!(
        line["identity"]["full_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // One byte in the middle of the 100 MiB disk, size and mtime kept.
    let b = repo.join("sub/b.img");
    let mtime = fs::metadata(&b).unwrap().modified().unwrap();
    let f = fs::File::options().write(true).open(&b).unwrap();
    f.write_all_at(b"x", 50 << 20).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    // The first and last MiB cannot see it; the whole-file digest does.
    assert_eq!(run(false)["sub/b.img"], ("skipped".into(), true));
    let redone = run(true);
    assert_eq!(redone["sub/b.img"], ("ok".into(), false));
    assert_eq!(redone["a.qcow2"], ("skipped".into(), true));
}

#[test]
fn a_vmdk_descriptors_extent_is_part_of_it_not_an_image() {
    let t = tempfile::tempdir().unwrap();
    vmscrub_fixtures::build(&["c-raw"]);
    let repo = t.path().join("repo");
    fs::create_dir_all(&repo).unwrap();
    let ok = Command::new("qemu-img")
        .args(["convert", "-O", "vmdk", "-o", "subformat=monolithicFlat"])
        .arg(vmscrub_fixtures::path_of("c-raw"))
        .arg(repo.join("d.vmdk"))
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(repo.join("d-flat.vmdk").exists());
    let jsonl = t.path().join("b.jsonl");
    let out = vmscrub(&[
        &"batch",
        &"scan",
        &repo,
        &"--report",
        &jsonl,
        &"--state",
        &t.path().join("s"),
        &"-q",
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let by = lines(&jsonl);
    let d = &by[repo.join("d.vmdk").to_str().unwrap()];
    assert_eq!(
        (d["status"].as_str(), d["format"].as_str()),
        (Some("ok"), Some("vmdk"))
    );
    let flat = &by[repo.join("d-flat.vmdk").to_str().unwrap()];
    assert_eq!(flat["status"], "skipped");
    assert!(
        flat["reason"]
            .as_str()
            .unwrap()
            .contains("an extent of the VMDK"),
        "{flat}"
    );
}
