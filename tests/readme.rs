//! README.md cannot rot: its examples are run.
//!
//! Convention (also stated in the README): a fenced `sh` block right after a
//! `<!-- runnable -->` line is executed, in order, with `bash -eu`, in one
//! scratch directory where the README's file names are fixture images:
//! `disk.{img,qcow2,vmdk}` a clean guest, `data.img` a data volume, and
//! `golden.{img,qcow2}` the e2e guest with secrets planted; `HOME` holds a fresh
//! `~/.ssh/id_rsa` and `~/.ssh/id_ed25519`. Two substitutions adapt the restore step to a test machine
//! (`sudo ` is dropped, `-C /` becomes `-C restored`); each must apply, so the
//! README cannot drop its restore command silently. The `vmscrub` lines of the
//! YAML (CI) blocks are run with `$IMAGE` set to the clean and to the dirty
//! image: 0 and 1, with a SARIF report either way. The judges are the exit
//! codes, `tar --compare` of the recovered archive against what was restored, and
//! `qemu-img check` of the cleaned copy. Like CI, the test runs as root (the
//! README's restore is `sudo tar … -C /`: owners are restored only by root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use vmscrub_fixtures::{fixture, run};

const MARKER: &str = "<!-- runnable -->";

struct Block {
    lang: String,
    runnable: bool,
    /// 1-based line of the opening fence, for messages.
    line: usize,
    text: String,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut prev = "";
    let mut open: Option<Block> = None;
    for (i, line) in md.lines().enumerate() {
        if let Some(b) = open.as_mut() {
            if line.trim_start().starts_with("```") {
                out.extend(open.take());
            } else {
                b.text.push_str(line);
                b.text.push('\n');
            }
        } else if line.starts_with("```") {
            open = Some(Block {
                lang: line.trim_start_matches('`').trim().to_string(),
                runnable: prev.trim() == MARKER,
                line: i + 1,
                text: String::new(),
            });
        }
        if !line.trim().is_empty() {
            prev = line;
        }
    }
    assert!(open.is_none(), "README.md: an unclosed code fence");
    out
}

fn readme() -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The scratch directory: fixture images under the README's names, a home
/// with a key pair, and `vmscrub` first on PATH.
struct Scratch {
    dir: tempfile::TempDir,
    path_var: String,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        vmscrub_fixtures::build(&[
            "ux-clean",
            "ux-clean-qcow2",
            "ux-clean-vmdk",
            "ux-data-volume",
            "e2e-disk",
            "e2e-qcow2",
        ]);
        for (name, fx) in [
            ("disk.img", "ux-clean"),
            ("disk.qcow2", "ux-clean-qcow2"),
            ("disk.vmdk", "ux-clean-vmdk"),
            ("data.img", "ux-data-volume"),
            ("golden.img", "e2e-disk"),
            ("golden.qcow2", "e2e-qcow2"),
        ] {
            std::os::unix::fs::symlink(fixture(fx), dir.path().join(name)).unwrap();
        }
        let ssh = dir.path().join("home/.ssh");
        fs::create_dir_all(&ssh).unwrap();
        let key = ssh.join("id_rsa");
        run(
            "ssh-keygen",
            &[
                &"-q", &"-t", &"rsa", &"-b", &"2048", &"-N", &"", &"-f", &key,
            ],
        );
        let key = ssh.join("id_ed25519");
        run(
            "ssh-keygen",
            &[&"-q", &"-t", &"ed25519", &"-N", &"", &"-f", &key],
        );
        let bin = Path::new(env!("CARGO_BIN_EXE_vmscrub")).parent().unwrap();
        let path_var = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Scratch { dir, path_var }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn bash(&self, script: &str, env: &[(&str, &Path)]) -> Output {
        let mut c = Command::new("bash");
        c.args(["-eu", "-c", script])
            .current_dir(self.path())
            .env("HOME", self.path().join("home"))
            .env("PATH", &self.path_var);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

/// The README's shell text with the two documented substitutions, counting them.
fn adapt(text: &str, sudo: &mut usize, root: &mut usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        if l.starts_with("sudo ") {
            l = l["sudo ".len()..].to_string();
            *sudo += 1;
        }
        if l.trim_end().ends_with(" -C /") {
            l = format!("{}restored", l.trim_end().trim_end_matches('/'));
            *root += 1;
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[test]
fn runnable_readme_blocks_run() {
    let md = readme();
    let all = blocks(&md);
    let runnable: Vec<&Block> = all.iter().filter(|b| b.runnable).collect();
    assert!(runnable.len() >= 3, "the README lost its runnable examples");
    let s = Scratch::new();
    fs::create_dir(s.path().join("restored")).unwrap();
    let (mut sudo, mut root) = (0, 0);
    for b in &runnable {
        assert_eq!(b.lang, "sh", "README.md:{}: runnable blocks are sh", b.line);
        let script = adapt(&b.text, &mut sudo, &mut root);
        let o = s.bash(&script, &[]);
        assert!(
            o.status.success(),
            "README.md:{}: the block failed ({}):\n{script}\nstdout:\n{}\nstderr:\n{}",
            b.line,
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(sudo >= 1 && root >= 1, "the README's restore step is gone");
    // The restore put back every file the recovered tar holds, byte for byte
    // with its mode and mtime: GNU tar's own comparison is the judge.
    let tar = s.path().join("removed.tar");
    let members = run("tar", &[&"-tf", &tar]);
    assert!(
        members
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            > 10,
        "the e2e scrub removed almost nothing"
    );
    run(
        "tar",
        &[
            &"--compare",
            &"--xattrs",
            &"--acls",
            &"-f",
            &tar,
            &"-C",
            &s.path().join("restored"),
        ],
    );
    run("qemu-img", &[&"check", &s.path().join("clean.qcow2")]);

    // The CI jobs' vmscrub lines: 0 on the clean image, 1 on the dirty one,
    // and a SARIF report both times.
    let ci: Vec<String> = all
        .iter()
        .filter(|b| b.lang == "yaml")
        .flat_map(|b| b.text.lines())
        .filter_map(|l| l.find("vmscrub scan").map(|i| l[i..].to_string()))
        .collect();
    assert!(ci.len() >= 2, "the CI quick-start lost its scan jobs");
    for line in &ci {
        for (image, code, results) in [("disk.qcow2", 0, false), ("golden.qcow2", 1, true)] {
            let sarif = s.path().join("vmscrub.sarif");
            let _ = fs::remove_file(&sarif);
            let o = s.bash(line, &[("IMAGE", &s.path().join(image))]);
            assert_eq!(
                o.status.code(),
                Some(code),
                "{line} on {image}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&fs::read(&sarif).unwrap()).unwrap();
            assert_eq!(v["version"], "2.1.0");
            let n = v["runs"][0]["results"].as_array().unwrap().len();
            assert_eq!(n > 0, results, "{line} on {image}: {n} results");
        }
    }
}

#[test]
fn the_readme_restore_command_is_the_one_recover_help_gives() {
    let o = Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .args(["recover", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let start = help
        .find("`sudo tar")
        .expect("recover --help names the restore");
    let cmd = &help[start + 1..];
    let cmd = &cmd[..cmd.find('`').unwrap()];
    let cmd = cmd.replace(" OUT ", " removed.tar ");
    let md = readme();
    assert!(md.contains(&cmd), "README.md does not restore with `{cmd}`");
    // And no other tar extraction in the README forgets xattrs and ACLs.
    let bare: Vec<&str> = md.lines().filter(|l| l.contains("tar -x")).collect();
    assert!(
        bare.is_empty(),
        "README.md: a restore without xattrs and ACLs: {bare:?}"
    );
}

#[test]
fn every_verb_has_a_usage_line_in_the_readme() {
    let o = Command::new(env!("CARGO_BIN_EXE_vmscrub"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    let verbs: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1) // the rest of the `Commands:` line
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .collect();
    assert!(verbs.len() >= 8, "{verbs:?}");
    let shell: String = blocks(&readme())
        .iter()
        .filter(|b| b.lang == "sh")
        .map(|b| b.text.clone())
        .collect();
    for v in verbs {
        if v == "operations" {
            // Named in prose and in the CI section; the listing has no arguments.
            assert!(readme().contains("vmscrub operations"));
            continue;
        }
        assert!(
            shell.contains(&format!("vmscrub {v} ")),
            "README.md has no usage line for `vmscrub {v}`"
        );
    }
}
