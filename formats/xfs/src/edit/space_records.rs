//! The record-level side of a release, on plain vectors (no I/O): reference
//! counts decremented, reverse mappings removed, free extents added and merged.
//! Each step checks the records it touches agree with what is released and
//! refuses otherwise: a mismatch means the file's map and the AG's trees
//! disagree, and freeing on either's word could lose data.

use crate::agbtree::{FreeExtent, Refcount, Rmap};
use crate::edit::rmap_records::{OWN_AG, rmap_add_special, rmap_remove_all};
use crate::edit::space::Released;
use crate::error::{Error, Result};

/// Refcount records of CoW staging extents carry this bit in their start.
pub(crate) const REFC_COWFLAG: u32 = 1 << 31;
fn end(start: u32, len: u32) -> u64 {
    u64::from(start) + u64::from(len)
}

/// Decrements the shared blocks of every released `(agbno, len)` in `recs`
/// (records whose count drops to one go: a single owner is implied by no
/// record) and returns the blocks no record covers any more, which the
/// release frees, plus the number of shared blocks kept. The same as
/// releasing the extents one after another — a block released `k` times
/// with count `r` keeps `r - k` when that is 2 or more, is kept without a
/// record at 1, freed at 0, and refused below (freed twice) — in one sweep
/// over the records and the releases, sorted.
pub(crate) fn refcount_release_all(
    recs: &mut Vec<Refcount>,
    rel: &[(u32, u32)],
) -> Result<(Vec<(u32, u32)>, u64)> {
    let (mut out, mut shared_recs): (Vec<Refcount>, Vec<Refcount>) =
        recs.iter().partition(|r| r.agbno & REFC_COWFLAG != 0);
    shared_recs.sort_by_key(|r| r.agbno);
    if let Some(w) = shared_recs
        .windows(2)
        .find(|w| end(w[0].agbno, w[0].len) > u64::from(w[1].agbno))
    {
        return Err(Error::refused(
            "refcountbt record",
            format!(
                "records at blocks {} and {} overlap",
                w[0].agbno, w[1].agbno
            ),
        ));
    }
    check_cow(&out, rel)?;
    let mut events: Vec<(u64, i64)> = Vec::with_capacity(2 * rel.len());
    for &(s, l) in rel.iter().filter(|r| r.1 > 0) {
        events.push((u64::from(s), 1));
        events.push((end(s, l), -1));
    }
    events.sort_unstable();
    let mut points: Vec<u64> = events.iter().map(|e| e.0).collect();
    for r in &shared_recs {
        points.extend([u64::from(r.agbno), end(r.agbno, r.len)]);
    }
    points.sort_unstable();
    points.dedup();
    let (mut freed, mut shared) = (Vec::<(u32, u32)>::new(), 0u64);
    let (mut ev, mut k, mut ri) = (0usize, 0i64, 0usize);
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        while let Some(&(_, d)) = events.get(ev).filter(|e| e.0 <= a) {
            k += d;
            ev += 1;
        }
        while shared_recs
            .get(ri)
            .is_some_and(|r| end(r.agbno, r.len) <= a)
        {
            ri += 1;
        }
        let rec = shared_recs.get(ri).filter(|r| u64::from(r.agbno) <= a);
        let piece = |count: u32| Refcount {
            agbno: a as u32,
            len: (b - a) as u32,
            refcount: count,
        };
        let count = match rec {
            None if k == 0 => continue,
            None => 1,
            Some(r) if k == 0 => {
                out.push(piece(r.refcount));
                continue;
            }
            Some(r) if r.refcount < 2 => {
                return Err(Error::refused(
                    "refcountbt record",
                    format!(
                        "blocks {}..{} have a shared record with count {}",
                        r.agbno,
                        end(r.agbno, r.len),
                        r.refcount
                    ),
                ));
            }
            Some(r) => i64::from(r.refcount),
        };
        shared += (b - a) * (k.min(count - 1) as u64);
        match count - k {
            left if left >= 2 => out.push(piece(left as u32)),
            1 => {}
            0 => match freed.last_mut() {
                Some(p) if end(p.0, p.1) == a => p.1 += (b - a) as u32,
                _ => freed.push((a as u32, (b - a) as u32)),
            },
            _ => {
                return Err(Error::refused(
                    "bnobt record",
                    format!("block {a} would be freed twice"),
                ));
            }
        }
    }
    out.sort_by_key(|r| r.agbno);
    *recs = merge_refcounts(out);
    Ok((freed, shared))
}

/// Refuses a release overlapping a copy-on-write staging extent.
fn check_cow(cow: &[Refcount], rel: &[(u32, u32)]) -> Result<()> {
    let mut runs: Vec<(u64, u64)> = cow
        .iter()
        .map(|r| {
            let s = u64::from(r.agbno & !REFC_COWFLAG);
            (s, s + u64::from(r.len))
        })
        .collect();
    runs.sort_unstable();
    let mut top = 0u64;
    let max_end: Vec<u64> = runs
        .iter()
        .map(|r| {
            top = top.max(r.1);
            top
        })
        .collect();
    for &(s, l) in rel {
        let (s, e) = (u64::from(s), end(s, l));
        let below = runs.partition_point(|r| r.0 < e);
        let reach = below.checked_sub(1).and_then(|i| max_end.get(i));
        if l > 0 && reach.is_some_and(|&x| x > s) {
            return Err(Error::refused(
                "refcountbt record",
                format!("released blocks {s}..{e} overlap a copy-on-write staging extent"),
            ));
        }
    }
    Ok(())
}

/// Neighbouring shared records with the same count become one, as the kernel
/// keeps them (and as `xfs_repair` recomputes them).
fn merge_refcounts(recs: Vec<Refcount>) -> Vec<Refcount> {
    let mut out: Vec<Refcount> = Vec::with_capacity(recs.len());
    for r in recs {
        if let Some(p) = out.last_mut()
            && r.agbno & REFC_COWFLAG == 0
            && p.refcount == r.refcount
            && end(p.agbno, p.len) == u64::from(r.agbno)
            && u64::from(p.len) + u64::from(r.len) < u64::from(u32::MAX >> 1)
        {
            p.len += r.len;
            continue;
        }
        out.push(r);
    }
    out
}

/// Adds `freed` to the free extents (sorted by block), merging neighbours;
/// refuses a block that is already free (a double free means the witnesses
/// disagree).
pub(crate) fn add_free(free: &[FreeExtent], freed: &[(u32, u32)]) -> Result<Vec<FreeExtent>> {
    let mut all: Vec<(u64, u64)> = free
        .iter()
        .map(|f| (u64::from(f.agbno), end(f.agbno, f.len)))
        .chain(freed.iter().map(|&(s, l)| (u64::from(s), end(s, l))))
        .filter(|(s, e)| s < e)
        .collect();
    all.sort_unstable();
    let mut out: Vec<(u64, u64)> = vec![];
    for (s, e) in all {
        match out.last_mut() {
            Some(p) if s < p.1 => {
                return Err(Error::refused(
                    "bnobt record",
                    format!("block {s} would be freed twice"),
                ));
            }
            Some(p) if s == p.1 => p.1 = e,
            _ => out.push((s, e)),
        }
    }
    Ok(out
        .into_iter()
        .map(|(s, e)| FreeExtent {
            agbno: s as u32,
            len: (e - s) as u32,
        })
        .collect())
}

/// Sorted, merged block runs of `blocks` (single blocks in any order).
pub(crate) fn runs_of(blocks: &[u32]) -> Vec<(u32, u32)> {
    let mut b = blocks.to_vec();
    b.sort_unstable();
    b.dedup();
    let mut out: Vec<(u32, u32)> = vec![];
    for x in b {
        match out.last_mut() {
            Some(p) if end(p.0, p.1) == u64::from(x) => p.1 += 1,
            _ => out.push((x, 1)),
        }
    }
    out
}

/// Block runs of a special owner (an AG structure) as releases of their
/// reverse mappings, removed in one sweep.
pub(crate) fn special_runs(runs: &[(u32, u32)], owner: u64) -> Vec<Released> {
    runs.iter()
        .map(|&(agbno, len)| Released {
            agbno,
            len,
            owner,
            offset: 0,
            attr_fork: false,
            bmbt: false,
            unwritten: false,
        })
        .collect()
}

/// Rounds of give-and-take before [`balance_own_ag`] gives up (each round
/// changes the record counts by a few at most; two or three settle it).
const BALANCE_ROUNDS: usize = 16;

/// Takes up to `k` blocks from the end of the longest free extent (the
/// kernel's allocator would find them as easily; the end keeps the extent's
/// start, so the bnobt order is unchanged). Returns (first block, count).
pub(crate) fn take_blocks(free: &mut Vec<FreeExtent>, k: u32) -> Result<(u32, u32)> {
    let Some(i) = (0..free.len()).max_by_key(|&i| (free[i].len, u32::MAX - free[i].agbno)) else {
        return Err(Error::refused(
            "AG free space",
            "no free block left for the AG's trees",
        ));
    };
    let t = k.min(free[i].len);
    let start = free[i].agbno + free[i].len - t;
    free[i].len -= t;
    if free[i].len == 0 {
        free.remove(i);
    }
    Ok((start, t))
}

/// Fits the `OWN_AG` block pool to what the rebuilt free-space trees need
/// (`need(free records, rmap records)`) plus an AGFL of at most `slots`: a
/// short pool takes blocks from the end of the longest free extent, an
/// overfull AGFL gives blocks back to free space — each with its `OWN_AG`
/// reverse mapping added or removed. Returns the blocks taken from free space
/// (in use afterwards, so never to be zeroed).
pub(crate) fn balance_own_ag(
    free: &mut Vec<FreeExtent>,
    mut rmaps: Option<&mut Vec<Rmap>>,
    pool: &mut Vec<u32>,
    need: impl Fn(usize, usize) -> usize,
    slots: usize,
) -> Result<Vec<u32>> {
    let mut taken = vec![];
    for _ in 0..BALANCE_ROUNDS {
        let n = need(free.len(), rmaps.as_deref().map_or(0, |r| r.len()));
        if n > pool.len() {
            let (start, t) = take_blocks(free, (n - pool.len()) as u32)?;
            pool.extend(start..start + t);
            taken.extend(start..start + t);
            if let Some(r) = rmaps.as_deref_mut() {
                rmap_add_special(r, start, t, OWN_AG);
            }
        } else if pool.len() - n > slots {
            let back: Vec<u32> = pool.split_off(n + slots);
            taken.retain(|b| !back.contains(b));
            let runs = runs_of(&back);
            *free = add_free(free, &runs)?;
            if let Some(r) = rmaps.as_deref_mut() {
                rmap_remove_all(r, &special_runs(&runs, OWN_AG))?;
            }
        } else {
            return Ok(taken);
        }
    }
    Err(Error::refused(
        "AGFL",
        "the free-space trees' block count does not settle",
    ))
}

/// `pieces` without the blocks in `used` (sorted once, each piece's cut
/// found by binary search).
pub(crate) fn minus_blocks(pieces: &[(u32, u32)], used: &[u32]) -> Vec<(u32, u32)> {
    let mut used = used.to_vec();
    used.sort_unstable();
    used.dedup();
    let mut out = vec![];
    for &(s, l) in pieces {
        let lo = used.partition_point(|&b| b < s);
        let hi = used.partition_point(|&b| u64::from(b) < end(s, l));
        let mut cur = s;
        for &b in used.get(lo..hi).unwrap_or_default() {
            if b > cur {
                out.push((cur, b - cur));
            }
            cur = cur.max(b.saturating_add(1));
        }
        if u64::from(cur) < end(s, l) {
            out.push((cur, (end(s, l) - u64::from(cur)) as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::rmap_records::OWN_INOBT;

    /// The release of one extent as it was done before the sweep, one
    /// extent after another: the reference [`refcount_release_all`] must
    /// agree with.
    fn refcount_release(
        recs: &mut Vec<Refcount>,
        agbno: u32,
        len: u32,
    ) -> Result<(Vec<(u32, u32)>, u64)> {
        let (s, e) = (u64::from(agbno), end(agbno, len));
        let mut freed = vec![];
        let mut shared = 0u64;
        let mut cur = s;
        let mut out = Vec::with_capacity(recs.len() + 2);
        for r in recs.drain(..) {
            let (rs, re) = (u64::from(r.agbno), end(r.agbno, r.len));
            if r.agbno & REFC_COWFLAG != 0 {
                let cs = rs & u64::from(!REFC_COWFLAG);
                if cs < e && s < cs + u64::from(r.len) {
                    return Err(Error::refused(
                        "refcountbt record",
                        format!("released blocks {s}..{e} overlap a copy-on-write staging extent"),
                    ));
                }
                out.push(r);
                continue;
            }
            let (os, oe) = (rs.max(s), re.min(e));
            if os >= oe {
                out.push(r);
                continue;
            }
            if r.refcount < 2 {
                return Err(Error::refused(
                    "refcountbt record",
                    format!(
                        "blocks {rs}..{re} have a shared record with count {}",
                        r.refcount
                    ),
                ));
            }
            if cur < os {
                freed.push((cur as u32, (os - cur) as u32));
            }
            if rs < os {
                out.push(Refcount {
                    agbno: r.agbno,
                    len: (os - rs) as u32,
                    refcount: r.refcount,
                });
            }
            if r.refcount > 2 {
                out.push(Refcount {
                    agbno: os as u32,
                    len: (oe - os) as u32,
                    refcount: r.refcount - 1,
                });
            }
            if oe < re {
                out.push(Refcount {
                    agbno: oe as u32,
                    len: (re - oe) as u32,
                    refcount: r.refcount,
                });
            }
            shared += oe - os;
            cur = oe;
        }
        if cur < e {
            freed.push((cur as u32, (e - cur) as u32));
        }
        out.sort_by_key(|r| r.agbno);
        *recs = merge_refcounts(out);
        Ok((freed, shared))
    }

    #[test]
    fn refcount_splits_decrements_and_frees_the_rest() {
        let mut recs = vec![
            Refcount {
                agbno: 10,
                len: 10,
                refcount: 2,
            },
            Refcount {
                agbno: 20,
                len: 5,
                refcount: 3,
            },
            Refcount {
                agbno: 25,
                len: 5,
                refcount: 2,
            },
        ];
        let (freed, shared) = refcount_release(&mut recs, 5, 20).unwrap();
        assert_eq!(freed, vec![(5, 5)]);
        assert_eq!(shared, 15);
        // 10..20 drops to one owner (no record), 20..25 to 2, merging with 25..30.
        assert_eq!(
            recs,
            vec![Refcount {
                agbno: 20,
                len: 10,
                refcount: 2
            }]
        );
    }

    #[test]
    fn free_extents_merge_and_refuse_double_frees() {
        let f = |agbno, len| FreeExtent { agbno, len };
        let got = add_free(&[f(0, 5), f(10, 5)], &[(5, 5), (20, 1)]).unwrap();
        assert_eq!(got, vec![f(0, 15), f(20, 1)]);
        assert!(add_free(&[f(0, 5)], &[(4, 2)]).is_err());
        assert_eq!(runs_of(&[9, 3, 4, 5, 8]), vec![(3, 3), (8, 2)]);
        assert_eq!(
            minus_blocks(&[(10, 5)], &[12, 14, 99]),
            vec![(10, 2), (13, 1)]
        );
    }

    #[test]
    fn own_ag_pool_takes_and_gives_back_with_rmaps() {
        let f = |agbno, len| FreeExtent { agbno, len };
        let m = |agbno, len, owner| Rmap {
            agbno,
            len,
            owner,
            offset: 0,
        };
        let mut free = vec![f(100, 10), f(200, 50)];
        let mut rmaps = vec![m(5, 3, OWN_AG), m(8, 2, OWN_INOBT), m(250, 1, 131)];
        let mut pool = vec![5, 6, 7];
        let taken = balance_own_ag(&mut free, Some(&mut rmaps), &mut pool, |_, _| 5, 10).unwrap();
        assert_eq!(taken, vec![248, 249]);
        assert_eq!(free, vec![f(100, 10), f(200, 48)]);
        assert!(rmaps.contains(&m(248, 2, OWN_AG)));
        let taken = balance_own_ag(&mut free, Some(&mut rmaps), &mut pool, |_, _| 2, 1).unwrap();
        assert!(taken.is_empty());
        assert_eq!(pool, vec![5, 6, 7]);
        assert_eq!(free, vec![f(100, 10), f(200, 50)]);
        assert!(!rmaps.iter().any(|r| r.agbno >= 248 && r.owner == OWN_AG));
    }

    /// A small deterministic generator (xorshift), so failures replay.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u32) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % u64::from(n)) as u32
        }
    }

    type Outcome = Option<(Vec<Refcount>, Vec<FreeExtent>, u64)>;

    fn one_by_one(mut recs: Vec<Refcount>, rel: &[(u32, u32)]) -> Outcome {
        let (mut freed, mut shared) = (vec![], 0);
        for &(s, l) in rel {
            let (f, n) = refcount_release(&mut recs, s, l).ok()?;
            freed.extend(f);
            shared += n;
        }
        Some((recs, add_free(&[], &freed).ok()?, shared))
    }

    fn swept(mut recs: Vec<Refcount>, rel: &[(u32, u32)]) -> Outcome {
        let (freed, shared) = refcount_release_all(&mut recs, rel).ok()?;
        Some((recs, add_free(&[], &freed).ok()?, shared))
    }

    #[test]
    fn refcount_sweep_agrees_with_one_release_after_another() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut refused = 0;
        for case in 0..20_000 {
            let mut recs = vec![];
            let mut at = rng.below(8);
            while at < 120 {
                let len = 1 + rng.below(10);
                let (agbno, refcount) = match rng.below(20) {
                    0 => (at | REFC_COWFLAG, 1),
                    1 => (at, 1),
                    _ => (at, 2 + rng.below(3)),
                };
                recs.push(Refcount {
                    agbno,
                    len,
                    refcount,
                });
                at += len + rng.below(3) * rng.below(6);
            }
            let rel: Vec<(u32, u32)> = (0..1 + rng.below(6))
                .map(|_| (rng.below(130), 1 + rng.below(20)))
                .collect();
            let want = one_by_one(recs.clone(), &rel);
            refused += usize::from(want.is_none());
            assert_eq!(
                swept(recs.clone(), &rel),
                want,
                "case {case}: {recs:?} {rel:?}"
            );
        }
        assert!((2_000..18_000).contains(&refused), "{refused} refused");
    }

    #[test]
    fn large_releases_are_swept_not_scanned() {
        // 50k shared records and 50k released extents, 50k pieces less 50k
        // blocks in use: quadratic passes would take minutes here.
        let mut recs: Vec<Refcount> = (0..50_000)
            .map(|i| Refcount {
                agbno: 10 * i,
                len: 4,
                refcount: 3,
            })
            .collect();
        let rel: Vec<(u32, u32)> = (0..50_000).map(|i| (10 * i + 2, 6)).collect();
        let (freed, shared) = refcount_release_all(&mut recs, &rel).unwrap();
        assert_eq!(shared, 2 * 50_000);
        assert_eq!(freed.len(), 50_000);
        assert_eq!(freed[7], (74, 4));
        assert_eq!(recs.len(), 100_000);
        let used: Vec<u32> = (0..50_000).map(|i| 10 * i + 4).collect();
        let left = minus_blocks(&freed, &used);
        assert_eq!(left.len(), 50_000);
        assert_eq!(left[7], (75, 3));
    }
}
