//! The fuzzer in CI: a bounded run over every target (two minutes in all;
//! `VMSCRUB_FUZZ_SECONDS` to change it) that must find nothing, and the
//! committed regression cases (tests/data/fuzz/*.case, each a crash the fuzzer
//! once found, now fixed) replayed. Both run the `vmscrub-fuzz` binary, where
//! the counting allocator is installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn fuzz_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmscrub-fuzz"))
}

#[test]
fn a_bounded_run_over_every_parser_finds_nothing() {
    let seconds = std::env::var("VMSCRUB_FUZZ_SECONDS").unwrap_or_else(|_| "120".into());
    let out = tempfile::tempdir().unwrap();
    let o = fuzz_bin()
        .args(["run", "--seconds", &seconds, "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    eprintln!("{stdout}");
    let mut found = String::new();
    for e in std::fs::read_dir(out.path()).unwrap() {
        let p = e.unwrap().path();
        found.push_str(&format!(
            "--- {}\n{}\n",
            p.display(),
            std::fs::read_to_string(&p).unwrap_or_default()
        ));
    }
    assert_eq!(
        o.status.code(),
        Some(0),
        "the fuzzer found something (commit each case under tests/data/fuzz/ and fix the parser):\n{stdout}\n{}\n{found}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Every target ran cases (a target whose seeds failed to load would not).
    for line in stdout.lines().filter(|l| l.contains(" cases from ")) {
        let cases: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(cases > 0, "{line}");
    }
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains(" cases from "))
            .count(),
        12,
        "{stdout}"
    );
}

#[test]
fn committed_regression_cases_stay_fixed() {
    let dir = vmscrub_fixtures::repo_root().join("tests/data/fuzz");
    let o = fuzz_bin().arg("replay").arg(&dir).output().unwrap();
    assert!(
        o.status.success(),
        "regressions came back:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
