//! Shared by the corpus tests (tests/corpus_*.rs): other projects' hostile
//! images through the `vmscrub` binary, each command under a time limit and an
//! address-space limit (`timeout`, `prlimit --as`, as tests/hostile_limits.rs
//! does), every problem collected with the image and the verb named so that one
//! run lists them all.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{Dump, Node, file_sha, under};

/// 1 GiB of address space: a scrub of the largest corpus image (140 MiB) needs
/// a fraction of it; a reader that believes a corrupt size field does not fit.
pub const AS_LIMIT: u64 = 1 << 30;
/// Seconds for one command. The slowest image takes about a second; a reader
/// caught in a loop takes this long and is reported as a hang.
pub const TIME_LIMIT: u64 = 120;

/// What one limited command did.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub took: Duration,
}

/// `vmscrub ARGS` under [`TIME_LIMIT`] and [`AS_LIMIT`].
pub fn limited(args: &[&OsStr]) -> Ran {
    let t0 = Instant::now();
    let o = Command::new("timeout")
        .args(["-s", "KILL", &TIME_LIMIT.to_string()])
        .arg("prlimit")
        .arg(format!("--as={AS_LIMIT}"))
        .arg(env!("CARGO_BIN_EXE_vmscrub"))
        .args(args)
        .output()
        .unwrap();
    Ran {
        code: o.status.code(),
        stdout: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        took: t0.elapsed(),
    }
}

/// Judges one command: a panic, a hang, a signal or an exit code outside
/// `allowed` is a problem (pushed with `what` and the end of stderr).
/// Returns whether it exited 0.
pub fn judge(what: &str, ran: &Ran, allowed: &[i32], problems: &mut Vec<String>) -> bool {
    let tail: String = {
        let lines: Vec<&str> = ran.stderr.lines().collect();
        lines[lines.len().saturating_sub(6)..].join("\n    ")
    };
    if ran.took >= Duration::from_secs(TIME_LIMIT) {
        problems.push(format!("{what}: hung (killed after {TIME_LIMIT} s)"));
    } else if ran.stderr.contains("panicked") || ran.code == Some(101) {
        problems.push(format!("{what}: panicked:\n    {tail}"));
    } else if ran.stderr.contains("memory allocation of") {
        problems.push(format!("{what}: aborted on an allocation:\n    {tail}"));
    } else if !ran.code.is_some_and(|c| allowed.contains(&c)) {
        problems.push(format!(
            "{what}: exit {:?} (allowed {allowed:?}):\n    {tail}",
            ran.code
        ));
    } else if ran.code != Some(0) && !ran.stderr.contains("vmscrub: ") {
        problems.push(format!("{what}: failed without saying why: {tail}"));
    }
    ran.code == Some(0)
}

pub fn run(args: &[&dyn AsRef<OsStr>]) -> Ran {
    let a: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
    limited(&a)
}

/// Every verb on one image: `inspect`, `ls -R /`, `cat` of three files it
/// listed, `scan`, `scrub` and `convert` (whose output `same` compares with the
/// input), each judged by [`judge`]; then the input must be unchanged.
pub fn every_verb(img: &Path, same: &(dyn Fn(&Path, &Path) -> bool + Sync)) -> Vec<String> {
    let n = name(img);
    let mut p = Vec::new();
    let before = file_sha(img);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    judge(
        &format!("{n}: inspect"),
        &run(&[&"inspect", &img]),
        &[0, 3],
        &mut p,
    );
    let ls = run(&[&"ls", &"-R", &img, &"/"]);
    if judge(&format!("{n}: ls -R"), &ls, &[0, 3], &mut p) || !ls.stdout.is_empty() {
        for (path, size) in some_files(&ls.stdout, 3) {
            let what = format!("{n}: cat {}", String::from_utf8_lossy(&path));
            let cat = run(&[&"cat", &img, &crate::support::os(&path)]);
            if judge(&what, &cat, &[0, 3], &mut p) && cat.stdout.len() as u64 != size {
                p.push(format!(
                    "{what}: {} bytes, ls says {size}",
                    cat.stdout.len()
                ));
            }
        }
    }
    judge(
        &format!("{n}: scan"),
        &run(&[&"scan", &"--data-volume", &img]),
        &[0, 3],
        &mut p,
    );

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
    let ok = judge(&format!("{n}: scrub"), &scrub, &[0, 3, 4], &mut p);
    // Exit 4 (verification failed) keeps the report, never the output.
    let allowed: &[&str] = if ok {
        &["out.img", "report.json"]
    } else {
        &["report.json"]
    };
    if !ok && out.exists() {
        p.push(format!("{n}: scrub exit {:?} left its output", scrub.code));
    }
    for l in leftovers(w, allowed) {
        p.push(format!("{n}: scrub left {l}"));
    }
    let _ = std::fs::remove_file(&out);

    let conv = w.join(format!("conv-{n}"));
    if judge(
        &format!("{n}: convert"),
        &run(&[&"convert", &"-q", &img, &conv]),
        &[0, 3],
        &mut p,
    ) {
        if !same(img, &conv) {
            p.push(format!("{n}: convert's copy differs from the input"));
        }
    } else if conv.exists() {
        p.push(format!("{n}: a failed convert left its output"));
    }
    if file_sha(img) != before {
        p.push(format!("{n}: THE INPUT CHANGED"));
    }
    p
}

/// (fs_path, action) of every action in a scrub report.
pub fn removed(report: &Path) -> Vec<(Vec<u8>, String)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    v["scrub"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let path = match a["fs_path_hex"].as_str() {
                Some(h) => hex::decode(h).unwrap(),
                None => a["fs_path"].as_str().unwrap().as_bytes().to_vec(),
            };
            (path, a["action"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The input's tree minus the plan against the output's, each difference named.
///
/// On FAT (`fat`) owners come from mtools, not the image, and mtools gives
/// directories the time of the copy: neither is compared.
pub fn tree_losses(
    n: &str,
    before: &Dump,
    after: &Dump,
    acts: &[(Vec<u8>, String)],
    fat: bool,
) -> Vec<String> {
    let mut p = Vec::new();
    let shown = |path: &[u8]| String::from_utf8_lossy(path).into_owned();
    let norm = |x: &Node| {
        let mut x = x.clone();
        if fat {
            (x.uid, x.gid) = (0, 0);
            if x.kind == 'd' {
                x.mtime = 0;
            }
        }
        x
    };
    for (path, node) in &before.tree {
        let node = &norm(node);
        let act = acts
            .iter()
            .find(|a| under(path, &a.0) && (a.1 == "delete-tree" || a.0 == *path));
        match (act.map(|a| a.1.as_str()), after.tree.get(path)) {
            (Some("delete" | "delete-tree"), _) => {}
            (Some(_), Some(a))
                if {
                    let a = norm(a);
                    (a.kind, a.mode, a.uid, a.gid) == (node.kind, node.mode, node.uid, node.gid)
                } => {}
            (_, None) => p.push(format!("{n}: LOST {}", shown(path))),
            (_, Some(a)) if norm(a) != *node => {
                p.push(format!("{n}: CHANGED {}: {node:?} -> {a:?}", shown(path)))
            }
            _ => {}
        }
    }
    for path in after.tree.keys().filter(|k| !before.tree.contains_key(*k)) {
        p.push(format!("{n}: appeared {}", shown(path)));
    }
    p
}

/// Files in `dir` other than `expected`: what a failed or finished command left
/// behind (temporary outputs must never survive).
pub fn leftovers(dir: &Path, expected: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !expected.contains(&n.as_str()))
        .collect();
    v.sort();
    v
}

/// The images whose names contain `$VMSCRUB_CORPUS_ONLY` (to re-run a few
/// while fixing them), else all.
pub fn selected(images: Vec<PathBuf>) -> Vec<PathBuf> {
    match std::env::var("VMSCRUB_CORPUS_ONLY") {
        Ok(only) => images
            .into_iter()
            .filter(|p| name(p).contains(&only))
            .collect(),
        Err(_) => images,
    }
}

/// Runs `f` over `items` on a few threads (`VMSCRUB_CORPUS_JOBS`, default 2:
/// CI has two cores) and returns every problem, in item order.
pub fn each<T: Sync>(items: &[T], f: impl Fn(&T) -> Vec<String> + Sync) -> Vec<String> {
    let jobs = std::env::var("VMSCRUB_CORPUS_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(2usize)
        .max(1);
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, Vec<String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    // A panic of the test's own helpers (an oracle that failed)
                    // is one more problem of this image, not the end of the run.
                    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(item)))
                        .unwrap_or_else(|e| {
                            let msg = e
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            let msg: String = msg.chars().take(2000).collect();
                            vec![format!("item {i}: the check itself failed: {msg}")]
                        });
                    out.lock().unwrap().push((i, found));
                }
            });
        }
    });
    let mut all = out.into_inner().unwrap();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().flat_map(|(_, p)| p).collect()
}

/// Fails with every problem listed (and how many images had one), or passes.
pub fn assert_none(corpus: &str, images: usize, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{corpus}: {} problem(s) over {images} image(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

pub fn os(s: &str) -> OsString {
    OsString::from(s)
}

/// The image's name for messages: its file name.
pub fn name(img: &Path) -> String {
    img.file_name().unwrap().to_string_lossy().into_owned()
}

/// Two raw files hold the same bytes: the same size, and `qemu-img compare`
/// (an independent tool that skips holes, where `cmp` would read hundreds of
/// MiB of zeros of a sparse corpus image) finds them identical.
pub fn identical(a: &Path, b: &Path) -> bool {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
    len(a) == len(b)
        && Command::new("qemu-img")
            .args(["compare", "-q", "-f", "raw", "-F", "raw"])
            .arg(a)
            .arg(b)
            .status()
            .unwrap()
            .success()
}

/// A copy of `src` in `dir` (sparse, like the corpus files), for tools that write.
pub fn scratch_copy(src: &Path, dir: &Path, name: &str) -> PathBuf {
    let dst = dir.join(name);
    let ok = Command::new("cp")
        .arg("--sparse=always")
        .arg(src)
        .arg(&dst)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp {} {}", src.display(), dst.display());
    dst
}

/// Regular files named by `vmscrub ls -R` output (full paths; `-` lines), with
/// the size ls gives, at most `n`, spread over the listing.
pub fn some_files(ls: &[u8], n: usize) -> Vec<(Vec<u8>, u64)> {
    let files: Vec<(Vec<u8>, u64)> = String::from_utf8_lossy(ls)
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            // mode nlink uid gid size date time PATH
            let (f, path) = fields(l, 7)?;
            Some((crate::support::unescape(path), f[4].parse().ok()?))
        })
        .collect();
    if files.len() <= n {
        return files;
    }
    (0..n).map(|i| files[i * files.len() / n].clone()).collect()
}

/// The first `n` space-separated fields of `line` and the rest after one space.
fn fields(line: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut rest = line;
    let mut f = Vec::with_capacity(n);
    for _ in 0..n {
        rest = rest.trim_start();
        let end = rest.find(' ')?;
        f.push(&rest[..end]);
        rest = &rest[end..];
    }
    Some((f, rest.strip_prefix(' ')?))
}
