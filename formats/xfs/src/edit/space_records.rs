//! The record-level side of a release, on plain vectors (no I/O): reference
//! counts decremented, reverse mappings removed, free extents added and merged.
//! Each step checks the records it touches agree with what is released and
//! refuses otherwise: a mismatch means the file's map and the AG's trees
//! disagree, and freeing on either's word could lose data.

use crate::agbtree::{FreeExtent, Refcount, Rmap};
use crate::edit::rmap_records::{OWN_AG, rmap_add_special, rmap_remove};
use crate::edit::space::Released;
use crate::error::{Error, Result};

/// Refcount records of CoW staging extents carry this bit in their start.
pub(crate) const REFC_COWFLAG: u32 = 1 << 31;
fn end(start: u32, len: u32) -> u64 {
    u64::from(start) + u64::from(len)
}

/// Decrements the shared part of `[agbno, agbno+len)` in `recs` (records with a
/// count dropping to one go: a single owner is implied by no record) and
/// returns the parts no record covers, which the release frees, plus the
/// number of shared blocks kept.
pub(crate) fn refcount_release(
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
                for &(agbno, len) in &runs {
                    let rel = Released {
                        agbno,
                        len,
                        owner: OWN_AG,
                        offset: 0,
                        attr_fork: false,
                        bmbt: false,
                        unwritten: false,
                    };
                    rmap_remove(r, &rel)?;
                }
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

/// `pieces` without the blocks in `used`.
pub(crate) fn minus_blocks(pieces: &[(u32, u32)], used: &[u32]) -> Vec<(u32, u32)> {
    let mut out = vec![];
    for &(s, l) in pieces {
        let mut cut: Vec<u32> = used
            .iter()
            .copied()
            .filter(|&b| b >= s && u64::from(b) < end(s, l))
            .collect();
        cut.sort_unstable();
        let mut cur = s;
        for b in cut {
            if b > cur {
                out.push((cur, b - cur));
            }
            cur = cur.max(b + 1);
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
}
