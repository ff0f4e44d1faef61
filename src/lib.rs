//! vmscrub: an offline disk-image sanitizer.
//!
//! The pipeline (see `ARCHITECTURE.md` in the design notes and README.md): container
//! reader → overlay → partition table → filesystem → rules and detectors → plan →
//! apply → output writer → verify. Format crates under `formats/` know nothing of
//! rules or the CLI; this crate wires them together, and `main.rs` is only argument
//! parsing and dispatch.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod batch;
pub mod browse;
pub mod cli;
pub mod convert;
pub mod exit;
pub mod fs;
pub mod guest;
pub mod image;
pub mod inspect;
pub mod journal;
pub mod ops;
pub mod output;
pub mod overlay;
pub mod pkgtrust;
pub mod progress;
pub mod recover;
pub mod report;
pub mod scan;
pub mod scrub;
