//! Content detectors: find secrets in any file by what it contains.
//!
//! The scan and scrub layers walk every file of an image and stream its bytes here;
//! each [`Finding`] names the detector, its operation, the byte range, a fingerprint
//! and a human reason — never the secret itself. This crate knows nothing about
//! paths, images or allow-list globs: path policy lives above it.
//!
//! How it stays fast: three Aho-Corasick automata (`MatchKind::LeftmostFirst`, SIMD
//! Teddy prefilter) look for ~100 short literal anchors (`PRIVATE KEY`, `AKIA`,
//! `ghp_`, `password`, …), split so their fingerprints stay rare (rules.rs): long
//! anchors everywhere, text syntaxes only in text streams, and provider tokens only in
//! 4 KiB blocks where 16 token characters in a row start (gate.rs, a vectorized
//! pre-pass). Bytes without an anchor cost only those passes, binary or not. Around
//! each anchor a validator proves the secret on a bounded window: base64 and
//! DER/SSH-wire structure for keys, exact lengths, alphabets and checksums for
//! tokens, a nearby secret for AWS key ids.
//!
//! ```
//! use vmscrub_detect::{DetectorSet, Scanner};
//! let set = DetectorSet::with_defaults().unwrap();
//! let mut scanner = Scanner::new(); // one per thread
//! let scan = set.scan_bytes(&mut scanner, b"-----BEGIN RSA PRIVATE KEY-----\n(example)\n");
//! assert!(scan.findings.is_empty()); // a header with no key is not a key
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod assign;
mod b64;
mod cloud;
mod containers;
mod creds;
mod der;
mod engine;
mod finding;
mod gate;
mod id;
mod jwt;
mod keys;
mod nested;
mod prefixed;
mod recovery;
mod rules;
mod text;
mod tokens;
mod twilio;
mod window;

pub use engine::{
    BUFFER, BuildError, CHUNK, Config, DetectorSet, Scan, ScanError, Scanner, Stream,
};
pub use finding::{Finding, Fingerprint};
pub use id::{DetectorId, Operation};
pub use nested::{Limits, NestedFinding, NestedScan, ScannerPool};
pub use window::{LOOKAHEAD, LOOKBEHIND};
