//! A set of byte ranges, kept sorted, disjoint and coalesced.

use std::collections::BTreeMap;
use std::ops::Range;

/// Sorted, disjoint, coalesced half-open ranges of `u64`. Used for allocation maps,
/// zero ranges in the overlay and the ranges a removal freed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start → end; no two entries overlap or touch.
    map: BTreeMap<u64, u64>,
}

impl std::fmt::Debug for RangeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Sum of the lengths of all ranges.
    pub fn total(&self) -> u64 {
        self.map.iter().map(|(s, e)| e - s).sum()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Range<u64>> + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
    }

    /// Adds `r`, merging with every range it overlaps or touches.
    pub fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let (mut start, mut end) = (r.start, r.end);
        // A range starting at or before `start` may overlap or touch.
        if let Some((&s, &e)) = self.map.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
        }
        let absorbed: Vec<u64> = self.map.range(start..=end).map(|(&s, _)| s).collect();
        for s in absorbed {
            if let Some(e) = self.map.remove(&s) {
                end = end.max(e);
            }
        }
        self.map.insert(start, end);
    }

    /// Removes `r` from the set, splitting ranges as needed.
    pub fn remove(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let overlapping: Vec<(u64, u64)> = self
            .map
            .range(..r.end)
            .rev()
            .take_while(|&(_, &e)| e > r.start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in overlapping {
            self.map.remove(&s);
            if s < r.start {
                self.map.insert(s, r.start);
            }
            if e > r.end {
                self.map.insert(r.end, e);
            }
        }
    }

    pub fn contains(&self, pos: u64) -> bool {
        self.map
            .range(..=pos)
            .next_back()
            .is_some_and(|(_, &e)| pos < e)
    }

    /// True if any byte of `r` is in the set.
    pub fn intersects(&self, r: Range<u64>) -> bool {
        self.overlapping(r).next().is_some()
    }

    /// True if every byte of `r` is in the set.
    pub fn covers(&self, r: Range<u64>) -> bool {
        if r.start >= r.end {
            return true;
        }
        self.map
            .range(..=r.start)
            .next_back()
            .is_some_and(|(_, &e)| e >= r.end)
    }

    /// The parts of the set inside `r`, clipped to `r`, in order.
    pub fn overlapping(&self, r: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let first = self
            .map
            .range(..=r.start)
            .next_back()
            .filter(|&(_, &e)| e > r.start)
            .map(|(&s, _)| s)
            .unwrap_or(r.start);
        self.map
            .range(first..r.end.max(first))
            .map(move |(&s, &e)| s.max(r.start)..e.min(r.end))
            .filter(|x| x.start < x.end)
    }

    /// Every range of `self` also in `other`.
    pub fn intersection(&self, other: &RangeSet) -> RangeSet {
        let mut out = RangeSet::new();
        for r in self.iter() {
            for o in other.overlapping(r) {
                out.insert(o);
            }
        }
        out
    }

    /// `[0, size)` minus the set: the gaps.
    pub fn complement(&self, size: u64) -> RangeSet {
        let mut out = RangeSet::new();
        out.insert(0..size);
        for r in self.iter() {
            out.remove(r);
        }
        out
    }

    pub fn union_with(&mut self, other: &RangeSet) {
        for r in other.iter() {
            self.insert(r);
        }
    }
}

impl FromIterator<Range<u64>> for RangeSet {
    fn from_iter<I: IntoIterator<Item = Range<u64>>>(iter: I) -> Self {
        let mut s = RangeSet::new();
        for r in iter {
            s.insert(r);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &RangeSet) -> Vec<Range<u64>> {
        s.iter().collect()
    }

    #[test]
    fn insert_merges_overlapping_and_touching() {
        let mut s = RangeSet::new();
        s.insert(10..20);
        s.insert(30..40);
        s.insert(20..25);
        assert_eq!(v(&s), vec![10..25, 30..40]);
        s.insert(5..35);
        assert_eq!(v(&s), vec![5..40]);
        s.insert(50..50);
        assert_eq!(s.len(), 1);
        assert_eq!(s.total(), 35);
    }

    #[test]
    fn remove_splits() {
        let mut s: RangeSet = std::iter::once(0..100).collect();
        s.remove(10..20);
        s.remove(90..200);
        assert_eq!(v(&s), vec![0..10, 20..90]);
        s.remove(0..25);
        assert_eq!(v(&s), vec![25..90]);
    }

    #[test]
    fn queries() {
        let s: RangeSet = [0..10, 20..30].into_iter().collect();
        assert!(s.contains(0) && s.contains(9) && !s.contains(10) && s.contains(25));
        assert!(s.intersects(5..25) && !s.intersects(10..20));
        assert!(s.covers(21..30) && !s.covers(5..21));
        assert_eq!(
            s.overlapping(5..25).collect::<Vec<_>>(),
            vec![5..10, 20..25]
        );
        assert_eq!(v(&s.complement(40)), vec![10..20, 30..40]);
        let o: RangeSet = std::iter::once(8..22).collect();
        assert_eq!(v(&s.intersection(&o)), vec![8..10, 20..22]);
    }

    #[test]
    fn matches_a_bitmap_model() {
        // Deterministic pseudo-random operations checked against a plain bool array.
        let mut seed = 0x2545F4914F6CDD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut s = RangeSet::new();
        let mut model = [false; 256];
        for _ in 0..2000 {
            let a = next() % 256;
            let b = (a + next() % 40).min(256);
            if next() % 3 == 0 {
                s.remove(a..b);
                model[a as usize..b as usize]
                    .iter_mut()
                    .for_each(|x| *x = false);
            } else {
                s.insert(a..b);
                model[a as usize..b as usize]
                    .iter_mut()
                    .for_each(|x| *x = true);
            }
            for (i, &m) in model.iter().enumerate() {
                assert_eq!(s.contains(i as u64), m, "position {i}");
            }
            let ranges = v(&s);
            for w in ranges.windows(2) {
                assert!(w[0].end < w[1].start, "not coalesced: {ranges:?}");
            }
        }
    }
}
