//! The fuzz loop: cases made from seeds, each run in process under
//! `catch_unwind`, timed, and measured by the counting allocator; a watchdog
//! thread ends the process when a case hangs (a stuck parser cannot be stopped
//! from inside), after writing which case it was.
//!
//! Findings are written to the output directory as regression cases
//! ([`crate::case`]), minimized: every patch that is not needed to reproduce
//! the finding is dropped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::alloc;
use crate::case::Case;
use crate::mutate::{Rng, mutate};
use crate::seeds::Seed;
use crate::targets::Target;

/// How one run goes.
#[derive(Debug, Clone)]
pub struct Config {
    pub run_seed: u64,
    /// Time given to each target.
    pub per_target: Duration,
    /// A case slower than this is a finding (a parser doing work the input
    /// does not justify).
    pub slow: Duration,
    /// A case still running after this is a hang: the watchdog ends the process.
    pub hang: Duration,
    /// Where findings (and the watchdog's note) are written.
    pub out: PathBuf,
}

/// What went wrong in one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Panic(String),
    Slow(Duration),
    Alloc(usize),
}

impl Kind {
    fn same_class(&self, other: &Kind) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    pub fn describe(&self, input_len: usize) -> String {
        match self {
            Kind::Panic(m) => format!("panic: {m}"),
            Kind::Slow(d) => format!("slow: {:.1} s on a {input_len}-byte input", d.as_secs_f64()),
            Kind::Alloc(n) => format!(
                "allocation of {n} bytes on a {input_len}-byte input (justified: {})",
                alloc::justified(input_len)
            ),
        }
    }
}

/// One target's run.
#[derive(Debug, Default)]
pub struct Summary {
    pub cases: u64,
    pub findings: Vec<PathBuf>,
}

/// The panic message of the last panic on any thread (the hook stores it
/// instead of printing: thousands of expected-to-be-caught panics would bury
/// the report).
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());
/// (target, seed, case, started) of the case running now, for the watchdog.
static RUNNING: Mutex<Option<(String, String, u64, Instant)>> = Mutex::new(None);

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CASE.with(|c| c.get()) {
                return default(info);
            }
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let loc = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if let Ok(mut p) = LAST_PANIC.lock() {
                *p = format!("{msg}{loc}");
            }
        }))
    });
}

thread_local! {
    /// Set while a case runs on this thread: only its panics are kept quiet.
    static IN_CASE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The watchdog: checks the running case every 100 ms; past `hang`, writes
/// `HANG` (target, seed, case, run seed) into the output directory and exits
/// with status 70.
fn start_watchdog(config: &Config) {
    let (hang, out, run_seed) = (config.hang, config.out.clone(), config.run_seed);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let stuck = RUNNING
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .filter(|r| r.3.elapsed() > hang);
            if let Some((target, seed, case, _)) = stuck {
                let note = format!(
                    "hang: target {target}, seed {seed}, case {case} of run seed {run_seed} \
                     ran longer than {} s\nreproduce: vmscrub-fuzz repro {target} {run_seed} {case}\n",
                    hang.as_secs()
                );
                let _ = std::fs::write(out.join("HANG"), &note);
                eprintln!("vmscrub-fuzz: {note}");
                std::process::exit(70);
            }
        }
    });
}

/// Case `case` of `target`: which seed and the mutated bytes.
pub fn make_case(target: &str, seeds: &[Seed], run_seed: u64, case: u64) -> (usize, Vec<u8>) {
    let mut rng = Rng::for_case(run_seed, target, case);
    let i = rng.index(seeds.len());
    let mut data = seeds[i].data.clone();
    let donors: Vec<&[u8]> = seeds.iter().map(|s| s.data.as_slice()).collect();
    mutate(&mut data, &seeds[i].hot, &donors, &mut rng);
    (i, data)
}

/// Runs one input; `None` if nothing went wrong.
pub fn check(target: &Target, input: &[u8], seed: &Seed, slow: Duration) -> Option<Kind> {
    install_panic_hook();
    alloc::reset();
    let t0 = Instant::now();
    IN_CASE.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| target.run(input, seed)));
    IN_CASE.with(|c| c.set(false));
    let took = t0.elapsed();
    let largest = alloc::largest();
    if result.is_err() {
        let msg = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
        return Some(Kind::Panic(msg));
    }
    if largest > alloc::justified(input.len()) {
        return Some(Kind::Alloc(largest));
    }
    (took > slow).then_some(Kind::Slow(took))
}

/// Drops every patch the finding does not need, and the length change if it
/// can; at most 200 tries.
pub fn minimize(target: &Target, seed: &Seed, mut case: Case, kind: &Kind, slow: Duration) -> Case {
    let base: Vec<u8> = if case.seed == "none" {
        vec![]
    } else {
        seed.data.clone()
    };
    let still =
        |c: &Case| check(target, &c.apply(&base), seed, slow).is_some_and(|k| k.same_class(kind));
    let mut tries = 0;
    if case.len != base.len() && !base.is_empty() {
        let mut c = case.clone();
        c.len = base.len();
        tries += 1;
        if still(&c) {
            case = c;
        }
    }
    let mut i = 0;
    while i < case.patches.len() && tries < 200 {
        let mut c = case.clone();
        c.patches.remove(i);
        tries += 1;
        if still(&c) {
            case = c;
        } else {
            i += 1;
        }
    }
    case
}

/// Fuzzes `target` for `config.per_target`, writing each finding (minimized)
/// into `config.out` as `TARGET-CASE.case`.
pub fn fuzz(target: &Target, seeds: &[Seed], config: &Config) -> Summary {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| start_watchdog(config));
    let mut summary = Summary::default();
    if seeds.is_empty() {
        return summary;
    }
    let t0 = Instant::now();
    let mut case = 0u64;
    while t0.elapsed() < config.per_target {
        let (si, input) = make_case(target.name, seeds, config.run_seed, case);
        let seed = &seeds[si];
        set_running(Some((
            target.name.into(),
            seed.id.clone(),
            case,
            Instant::now(),
        )));
        let found = check(target, &input, seed, config.slow);
        set_running(None);
        if let Some(kind) = found {
            let what = format!(
                "{}\nfound by: vmscrub-fuzz repro {} {} {case}",
                kind.describe(input.len()),
                target.name,
                config.run_seed
            );
            let c = Case::diff(&what, target.name, seed, &input);
            let c = minimize(target, seed, c, &kind, config.slow);
            let path = config.out.join(format!("{}-{case}.case", target.name));
            if std::fs::write(&path, c.to_text()).is_ok() {
                summary.findings.push(path);
            }
        }
        case += 1;
    }
    summary.cases = case;
    summary
}

fn set_running(v: Option<(String, String, u64, Instant)>) {
    if let Ok(mut r) = RUNNING.lock() {
        *r = v;
    }
}

/// Replays committed regression cases: every `*.case` in `dir`; returns the
/// ones that still go wrong, with what happened.
pub fn replay_dir(dir: &Path, targets: &[Target], slow: Duration) -> Vec<String> {
    install_panic_hook();
    let mut bad = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "case"));
    files.sort();
    for f in files {
        let shown = f.display();
        let Ok(text) = std::fs::read_to_string(&f) else {
            bad.push(format!("{shown}: unreadable"));
            continue;
        };
        let c = match Case::parse(&text) {
            Ok(c) => c,
            Err(e) => {
                bad.push(format!("{shown}: {e}"));
                continue;
            }
        };
        let Some(t) = targets.iter().find(|t| t.name == c.target) else {
            bad.push(format!("{shown}: no target {}", c.target));
            continue;
        };
        match c.load_seed(t) {
            Err(e) => bad.push(format!("{shown}: {e}")),
            Ok(seed) => {
                let input = c.apply(if c.seed == "none" { &[] } else { &seed.data });
                if let Some(k) = check(t, &input, &seed, slow) {
                    bad.push(format!("{shown}: {}", k.describe(input.len())));
                }
            }
        }
    }
    bad
}
