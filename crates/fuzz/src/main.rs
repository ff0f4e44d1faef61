//! `vmscrub-fuzz`: runs the mutation fuzzer (see the crate documentation).
//!
//! ```text
//! vmscrub-fuzz run [--seconds N] [--seed S] [--out DIR] [TARGET...]   N seconds over the targets (default all, 120 s)
//! vmscrub-fuzz repro TARGET SEED CASE [--out FILE]                    rebuild one case, run it, write it as a .case
//! vmscrub-fuzz replay DIR                                             run every DIR/*.case (regressions)
//! vmscrub-fuzz list                                                   the targets
//! ```
//! Exit status: 0 nothing found; 1 findings (written to the output directory);
//! 2 usage; 70 a case hung (the watchdog wrote DIR/HANG).

use std::path::PathBuf;
use std::time::Duration;

use vmscrub_fuzz::runner::{self, Config};
use vmscrub_fuzz::{alloc, case::Case, targets};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const SLOW: Duration = Duration::from_secs(3);
const HANG: Duration = Duration::from_secs(30);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("repro") => repro(&args[1..]),
        Some("replay") if args.len() == 2 => {
            let bad = runner::replay_dir(&PathBuf::from(&args[1]), &targets::all(), SLOW);
            bad.iter().for_each(|b| eprintln!("{b}"));
            i32::from(!bad.is_empty())
        }
        Some("list") => {
            for t in targets::all() {
                println!("{:<13} {}", t.name, t.about);
            }
            0
        }
        _ => usage(),
    };
    std::process::exit(code);
}

fn usage() -> i32 {
    eprintln!(
        "usage: vmscrub-fuzz run [--seconds N] [--seed S] [--out DIR] [TARGET...]\n       \
         vmscrub-fuzz repro TARGET SEED CASE [--out FILE]\n       \
         vmscrub-fuzz replay DIR\n       vmscrub-fuzz list"
    );
    2
}

fn run(args: &[String]) -> i32 {
    let mut seconds = 120u64;
    let mut run_seed = 0u64;
    let mut out = PathBuf::from("fuzz-findings");
    let mut names = vec![];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--seconds" => seconds = value().parse().unwrap_or(0),
            "--seed" => run_seed = value().parse().unwrap_or(0),
            "--out" => out = PathBuf::from(value()),
            n => names.push(n.to_string()),
        }
    }
    let all = targets::all();
    let chosen: Vec<&targets::Target> = all
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
        .collect();
    if chosen.is_empty() || seconds == 0 {
        return usage();
    }
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("vmscrub-fuzz: {}: {e}", out.display());
        return 2;
    }
    let config = Config {
        run_seed,
        per_target: Duration::from_secs(seconds) / chosen.len() as u32,
        slow: SLOW,
        hang: HANG,
        out: out.clone(),
    };
    let mut found = 0;
    for t in chosen {
        let t0 = std::time::Instant::now();
        let seeds = t.seeds();
        let loaded = t0.elapsed();
        let s = runner::fuzz(t, &seeds, &config);
        println!(
            "{:<13} {:>7} cases from {:>3} seeds in {:.1} s (seeds loaded in {:.1} s): {} finding(s)",
            t.name,
            s.cases,
            seeds.len(),
            config.per_target.as_secs_f64(),
            loaded.as_secs_f64(),
            s.findings.len()
        );
        for f in &s.findings {
            println!("  {}", f.display());
        }
        found += s.findings.len();
    }
    i32::from(found > 0)
}

fn repro(args: &[String]) -> i32 {
    let [target, run_seed, case, rest @ ..] = args else {
        return usage();
    };
    let (Ok(run_seed), Ok(case)) = (run_seed.parse::<u64>(), case.parse::<u64>()) else {
        return usage();
    };
    let all = targets::all();
    let Some(t) = all.iter().find(|t| t.name == target) else {
        return usage();
    };
    let seeds = t.seeds();
    let (si, input) = runner::make_case(t.name, &seeds, run_seed, case);
    let found = runner::check(t, &input, &seeds[si], SLOW);
    let what = found
        .as_ref()
        .map_or("nothing found".to_string(), |k| k.describe(input.len()));
    println!(
        "{target} case {case} of run seed {run_seed} (seed {}): {what}",
        seeds[si].id
    );
    if let [flag, file] = rest
        && flag == "--out"
    {
        let c = Case::diff(&what, t.name, &seeds[si], &input);
        let c = match &found {
            Some(k) => runner::minimize(t, &seeds[si], c, k, SLOW),
            None => c,
        };
        if let Err(e) = std::fs::write(file, c.to_text()) {
            eprintln!("vmscrub-fuzz: {file}: {e}");
            return 2;
        }
    }
    i32::from(found.is_some())
}
