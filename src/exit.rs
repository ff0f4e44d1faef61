//! Process exit codes. CI pipelines branch on these, so they are part of the
//! interface and documented in README.md; never renumber them.

/// The command did what was asked; for `scan`, nothing matched the `--fail-on` policy.
pub const OK: i32 = 0;
/// `scan --fail-on …` found something the policy fails on.
pub const FINDINGS: i32 = 1;
/// The command line was wrong (clap's own code for usage errors).
pub const USAGE: i32 = 2;
/// The image, a file or a key could not be read or is corrupt or unsupported;
/// nothing was written.
pub const ERROR: i32 = 3;
/// The scrub completed but verification of the output failed; the output was not kept.
pub const VERIFY_FAILED: i32 = 4;
/// `vmscrub batch`: some images could not be processed (each one's reason is in
/// the summary and the JSON lines).
pub const BATCH_INCOMPLETE: i32 = 5;
