//! The mutation engine: deterministic, dependency-free, aimed at binary headers.
//!
//! A case is a pure function of (run seed, target, case number): the same numbers
//! give the same bytes on every machine, so a crash is reproduced from three
//! integers and a committed regression needs no fuzzer state.

use std::ops::Range;

/// splitmix64: tiny, fast, statistically fine for choosing mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for one case, independent of every other case's.
    pub fn for_case(run_seed: u64, target: &str, case: u64) -> Rng {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in target.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut r = Rng(run_seed ^ h ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Values that make size and offset arithmetic go wrong: zero, one, powers of
/// two and their neighbours, sign boundaries, all-ones.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    8,
    9,
    15,
    16,
    17,
    31,
    32,
    63,
    64,
    127,
    128,
    255,
    256,
    511,
    512,
    1023,
    1024,
    4095,
    4096,
    4097,
    65535,
    65536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// Where a target wants mutations: byte ranges holding its structures
/// (headers, tables, descriptors), where most mutations land.
#[derive(Debug, Clone, Default)]
pub struct Hot(pub Vec<Range<usize>>);

impl Hot {
    /// A position: 85% inside a hot range (when there is one), else anywhere.
    fn pick(&self, rng: &mut Rng, len: usize) -> usize {
        let usable: Vec<&Range<usize>> = self
            .0
            .iter()
            .filter(|r| r.start < len && r.start < r.end)
            .collect();
        if !usable.is_empty() && rng.chance(85) {
            let r = usable[rng.index(usable.len())];
            let end = r.end.min(len);
            r.start + rng.index(end - r.start)
        } else {
            rng.index(len)
        }
    }
}

/// Applies 1 to 8 stacked mutations to `data`; `donors` feed splicing.
pub fn mutate(data: &mut Vec<u8>, hot: &Hot, donors: &[&[u8]], rng: &mut Rng) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        if data.is_empty() {
            data.push(rng.next_u64() as u8);
            continue;
        }
        let at = hot.pick(rng, data.len());
        match rng.below(100) {
            0..=24 => {
                // Bit flips: one to eight bits of one byte.
                for _ in 0..=rng.below(8) {
                    data[at] ^= 1 << rng.below(8);
                }
            }
            25..=39 => data[at] = rng.next_u64() as u8,
            40..=64 => put_interesting(data, at, rng),
            65..=71 => put_octal(data, at, rng),
            72..=79 => {
                // Zero or fill a short run (a cleared table entry, a wiped sector).
                let n = (1 + rng.index(64)).min(data.len() - at);
                let fill = if rng.chance(70) { 0 } else { 0xff };
                data[at..at + n].fill(fill);
            }
            80..=88 => splice(data, at, donors, rng),
            89..=93 => {
                // Copy a run from elsewhere in the same input (a duplicated entry).
                let n = (1 + rng.index(512)).min(data.len() - at);
                let from = rng.index(data.len() - n + 1);
                data.copy_within(from..from + n, at);
            }
            _ => truncate(data, at, rng),
        }
    }
}

/// An interesting value, 1/2/4/8 bytes wide, little or big endian, sometimes
/// nudged by ±1, written at `at` (where it fits).
fn put_interesting(data: &mut [u8], at: usize, rng: &mut Rng) {
    let width = [1usize, 2, 4, 8][rng.index(4)];
    if at + width > data.len() {
        data[at] = INTERESTING[rng.index(INTERESTING.len())] as u8;
        return;
    }
    let mut v = INTERESTING[rng.index(INTERESTING.len())];
    match rng.below(4) {
        0 => v = v.wrapping_add(1),
        1 => v = v.wrapping_sub(1),
        _ => {}
    }
    let bytes = if rng.chance(50) {
        v.to_le_bytes()
    } else {
        v.to_be_bytes()
    };
    let src = if rng.chance(50) || width == 8 {
        &bytes[..width]
    } else {
        &bytes[8 - width..]
    };
    data[at..at + width].copy_from_slice(src);
}

/// An ASCII octal or decimal number (tar and pax sizes, descriptor fields).
fn put_octal(data: &mut [u8], at: usize, rng: &mut Rng) {
    let v = INTERESTING[rng.index(INTERESTING.len())];
    let s = if rng.chance(50) {
        format!("{v:o}")
    } else {
        format!("{v}")
    };
    let n = s.len().min(data.len() - at);
    data[at..at + n].copy_from_slice(&s.as_bytes()[..n]);
}

/// Overwrites a run at `at` with bytes from the same offset of another seed
/// (so headers meet foreign tables), or from anywhere in it.
fn splice(data: &mut [u8], at: usize, donors: &[&[u8]], rng: &mut Rng) {
    if donors.is_empty() {
        return;
    }
    let d = donors[rng.index(donors.len())];
    if d.is_empty() {
        return;
    }
    let n = (1 + rng.index(4096)).min(data.len() - at);
    let from = if at < d.len() && rng.chance(60) {
        at
    } else {
        rng.index(d.len())
    };
    let n = n.min(d.len() - from);
    data[at..at + n].copy_from_slice(&d[from..from + n]);
}

/// Cuts the input: at the mutation point, at a sector boundary, or by a little.
fn truncate(data: &mut Vec<u8>, at: usize, rng: &mut Rng) {
    let len = match rng.below(3) {
        0 => at,
        1 => at / 512 * 512,
        _ => data.len().saturating_sub(1 + rng.index(64)),
    };
    data.truncate(len.max(1));
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_reproducible_and_distinct() {
        let seed = vec![0u8; 4096];
        let hot = Hot(vec![0..512]);
        let make = |case| {
            let mut d = seed.clone();
            mutate(&mut d, &hot, &[], &mut Rng::for_case(7, "t", case));
            d
        };
        assert_eq!(make(3), make(3));
        assert_ne!(make(3), make(4));
        let changed = (0..200).filter(|&c| make(c) != seed).count();
        assert!(
            changed > 180,
            "only {changed} of 200 cases changed anything"
        );
    }

    #[test]
    fn mutations_land_mostly_in_hot_ranges() {
        let seed = vec![0u8; 1 << 20];
        let hot = Hot(vec![1000..1100]);
        let mut inside = 0;
        let mut outside = 0;
        for c in 0..500 {
            let mut d = seed.clone();
            mutate(&mut d, &hot, &[], &mut Rng::for_case(1, "t", c));
            for (i, b) in d.iter().enumerate() {
                if *b != 0 {
                    if (1000..1200).contains(&i) {
                        inside += 1;
                    } else {
                        outside += 1;
                    }
                }
            }
        }
        assert!(
            inside > outside * 2,
            "{inside} in the hot range, {outside} elsewhere"
        );
    }
}
