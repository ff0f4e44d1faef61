//! Regression cases: a crashing input written as its seed plus the bytes that
//! differ, small enough to commit (tests/data/fuzz/*.case) however large the
//! seed image is, and readable in a review.
//!
//! ```text
//! # panic: index out of bounds at formats/ext4/src/dir.rs:120
//! target ext4
//! seed corpus:e2fsprogs/f_dup_de.img
//! len 1048576
//! patch 1088 ff00ff00
//! ```
//!
//! `seed none` starts from an empty input (then the patches hold all of it:
//! used for generated seeds, which differ on every run).

use std::fmt::Write as _;

use crate::mutate::Hot;
use crate::seeds::{self, Seed};
use crate::targets::Target;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub what: String,
    pub target: String,
    pub seed: String,
    pub len: usize,
    pub patches: Vec<(usize, Vec<u8>)>,
}

impl Case {
    /// The case turning `seed` into `input`: one patch per run of differing
    /// bytes (runs closer than 8 bytes merged).
    pub fn diff(what: &str, target: &str, seed: &Seed, input: &[u8]) -> Case {
        let generated = seed.id.starts_with("generated:");
        let base: &[u8] = if generated { &[] } else { &seed.data };
        Case {
            what: what.to_string(),
            target: target.to_string(),
            seed: if generated {
                "none".into()
            } else {
                seed.id.clone()
            },
            len: input.len(),
            patches: runs(base, input),
        }
    }

    /// The input this case stands for, given its seed's bytes.
    pub fn apply(&self, base: &[u8]) -> Vec<u8> {
        let mut v = base.to_vec();
        v.resize(self.len, 0);
        for (at, bytes) in &self.patches {
            let end = (at + bytes.len()).min(v.len());
            if *at < end {
                v[*at..end].copy_from_slice(&bytes[..end - at]);
            }
        }
        v
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for l in self.what.lines() {
            let _ = writeln!(s, "# {l}");
        }
        let _ = writeln!(
            s,
            "target {}\nseed {}\nlen {}",
            self.target, self.seed, self.len
        );
        for (at, bytes) in &self.patches {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(s, "patch {at} {hex}");
        }
        s
    }

    pub fn parse(text: &str) -> Result<Case, String> {
        let mut c = Case {
            what: String::new(),
            target: String::new(),
            seed: String::new(),
            len: 0,
            patches: vec![],
        };
        for line in text.lines() {
            if let Some(w) = line.strip_prefix("# ") {
                c.what.push_str(w);
                c.what.push('\n');
                continue;
            }
            let (k, v) = line.split_once(' ').ok_or(format!("bad line {line:?}"))?;
            match k {
                "target" => c.target = v.to_string(),
                "seed" => c.seed = v.to_string(),
                "len" => c.len = v.parse().map_err(|e| format!("len: {e}"))?,
                "patch" => {
                    let (at, hex) = v.split_once(' ').ok_or(format!("bad patch {v:?}"))?;
                    let at = at.parse().map_err(|e| format!("patch offset: {e}"))?;
                    let bytes = (0..hex.len() / 2)
                        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                        .collect::<Result<Vec<u8>, _>>()
                        .map_err(|e| format!("patch bytes: {e}"))?;
                    c.patches.push((at, bytes));
                }
                _ => return Err(format!("unknown key {k:?}")),
            }
        }
        Ok(c)
    }

    /// The seed this case names, loaded the way the target loads it.
    pub fn load_seed(&self, target: &Target) -> Result<Seed, String> {
        if self.seed == "none" {
            return Ok(Seed::new("none", vec![], Hot::default()));
        }
        if let Some(name) = self.seed.strip_prefix("fixture:") {
            return Ok(seeds::fixture(name, Hot::default()));
        }
        if let Some(rest) = self.seed.strip_prefix("corpus:") {
            let (corpus, file) = rest.split_once('/').ok_or("corpus seed without a file")?;
            return seeds::corpus(corpus, file, usize::MAX, &Hot::default())
                .into_iter()
                .find(|s| s.id == self.seed)
                .ok_or(format!("no {} in the corpus", self.seed));
        }
        target
            .seeds()
            .into_iter()
            .find(|s| s.id == self.seed)
            .ok_or(format!("target {} has no seed {}", target.name, self.seed))
    }
}

/// Runs of bytes where `input` differs from `base` (or extends past it).
fn runs(base: &[u8], input: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut out: Vec<(usize, Vec<u8>)> = Vec::new();
    let differs = |i: usize| base.get(i) != Some(&input[i]);
    let mut i = 0;
    while i < input.len() {
        if !differs(i) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        let mut gap = 0;
        let mut j = end;
        while j < input.len() && gap < 8 {
            if differs(j) {
                end = j + 1;
                gap = 0;
            } else {
                gap += 1;
            }
            j += 1;
        }
        out.push((start, input[start..end].to_vec()));
        i = end;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_case_round_trips_through_text_and_rebuilds_its_input() {
        let seed = Seed::new(
            "fixture:x",
            (0..=255u8).cycle().take(5000).collect(),
            Hot::default(),
        );
        let mut input = seed.data.clone();
        input[10] ^= 1;
        input[14] = 0;
        input[4000..4004].copy_from_slice(b"abcd");
        input.truncate(4500);
        let c = Case::diff("panic: x\nsecond line", "t", &seed, &input);
        assert_eq!(c.patches.len(), 2, "{:?}", c.patches);
        let back = Case::parse(&c.to_text()).unwrap();
        assert_eq!(
            back,
            Case {
                what: "panic: x\nsecond line\n".into(),
                ..c.clone()
            }
        );
        assert_eq!(back.apply(&seed.data), input);
    }
}
