//! The runner catches what it is for: a target with planted bugs (a panic on
//! one byte value, an allocation sized by a header field, a loop that spins on
//! another) is fuzzed in process, and every bug must come back as a minimized
//! case that rebuilds the crashing input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::single_range_in_vec_init
)]

use std::time::Duration;

use vmscrub_fuzz::alloc;
use vmscrub_fuzz::case::Case;
use vmscrub_fuzz::mutate::Hot;
use vmscrub_fuzz::runner::{Config, Kind, check, fuzz};
use vmscrub_fuzz::seeds::Seed;
use vmscrub_fuzz::targets::Target;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

fn seeds() -> Vec<Seed> {
    vec![Seed::new("fixture:none", vec![0u8; 64], Hot(vec![0..16]))]
}

fn buggy(input: &[u8], _: &Seed) {
    match input.first() {
        Some(0x41) => panic!("planted panic"),
        Some(0x42) => {
            // A size field believed: 2^28 bytes for a 64-byte input.
            let v = vec![1u8; 1 << 28];
            std::hint::black_box(&v);
        }
        Some(0x43) => std::thread::sleep(Duration::from_millis(300)),
        _ => {}
    }
}

#[test]
fn planted_bugs_are_found_and_written_as_cases() {
    let t = Target::new("planted", "a target with planted bugs", seeds, buggy);
    let seed = &seeds()[0];
    let slow = Duration::from_millis(200);
    let mut input = vec![0u8; 64];
    assert_eq!(check(&t, &input, seed, slow), None);
    input[0] = 0x41;
    assert!(
        matches!(check(&t, &input, seed, slow), Some(Kind::Panic(m)) if m.contains("planted panic"))
    );
    input[0] = 0x42;
    assert!(matches!(check(&t, &input, seed, slow), Some(Kind::Alloc(n)) if n >= 1 << 28));
    input[0] = 0x43;
    assert!(matches!(check(&t, &input, seed, slow), Some(Kind::Slow(_))));

    let out = tempfile::tempdir().unwrap();
    let config = Config {
        run_seed: 1,
        per_target: Duration::from_secs(3),
        slow,
        hang: Duration::from_secs(60),
        out: out.path().to_path_buf(),
    };
    let s = fuzz(&t, &seeds(), &config);
    assert!(s.cases > 100, "{} cases", s.cases);
    let mut kinds = std::collections::BTreeSet::new();
    for f in &s.findings {
        let c = Case::parse(&std::fs::read_to_string(f).unwrap()).unwrap();
        let rebuilt = c.apply(&seed.data);
        // Minimized: the one byte that matters is all that is left.
        assert_eq!(c.patches.len(), 1, "{}", c.to_text());
        assert_eq!(c.patches[0].0, 0, "{}", c.to_text());
        kinds.insert(rebuilt[0]);
        assert!(check(&t, &rebuilt, seed, slow).is_some(), "{}", c.to_text());
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec![0x41, 0x42, 0x43]
    );
}
