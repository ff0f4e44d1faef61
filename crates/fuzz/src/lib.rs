//! A mutation fuzzer for every parser of vmscrub, on stable Rust.
//!
//! cargo-fuzz needs nightly and libFuzzer; this needs neither. It is small on
//! purpose: a deterministic mutation engine aimed at binary structures
//! ([`mutate`]: bit flips, byte sets, interesting values at the offsets where
//! headers and tables are, ASCII numbers, splicing between seeds, truncation),
//! seeds from the fixtures and the fetched corpora ([`seeds`]), one target per
//! parser ([`targets`]), and a runner ([`runner`]) that executes each case in
//! process under `catch_unwind` with a time budget, a watchdog for hangs and a
//! counting allocator ([`alloc`]) that flags any allocation larger than the
//! input justifies. Every finding is written as a small regression case
//! ([`case`]) to commit under tests/data/fuzz/, where the test suite replays it.
//!
//! `vmscrub-fuzz` (src/main.rs) runs it; `scripts/fuzz.sh DURATION` for long
//! runs; `cargo test -p vmscrub-fuzz` runs the bounded CI run and the replays.

// `expect` only on the fuzzer's own setup (a key, a sample archive, a seed
// file): a failure there must stop the run loudly. Image data never meets it.
#![allow(clippy::expect_used)]
// Hot regions are lists of ranges; one range is a list too.
#![allow(clippy::single_range_in_vec_init)]

pub mod alloc;
pub mod case;
pub mod mutate;
pub mod runner;
pub mod seeds;
pub mod targets;
