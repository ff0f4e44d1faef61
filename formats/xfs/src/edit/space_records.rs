//! The record-level side of a release, on plain vectors (no I/O): reference
//! counts decremented, reverse mappings removed, free extents added and merged.
//! Each step checks the records it touches agree with what is released and
//! refuses otherwise: a mismatch means the file's map and the AG's trees
//! disagree, and freeing on either's word could lose data.

use crate::agbtree::{FreeExtent, Refcount, Rmap};
use crate::edit::btree_build::RMAP_UNWRITTEN;
use crate::edit::space::Released;
use crate::error::{Error, Result};

/// Refcount records of CoW staging extents carry this bit in their start.
pub(crate) const REFC_COWFLAG: u32 = 1 << 31;
const RMAP_ATTR: u64 = 1 << 63;
const RMAP_BMBT: u64 = 1 << 62;
const RMAP_FLAGS: u64 = RMAP_ATTR | RMAP_BMBT | RMAP_UNWRITTEN;
const RMAP_OFF_MASK: u64 = (1 << 54) - 1;
/// The rmapbt owners of AG metadata the editor moves blocks of.
pub(crate) const OWN_INOBT: u64 = -6i64 as u64;
pub(crate) const OWN_REFC: u64 = -8i64 as u64;

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

/// The rmapbt offset flags of a released extent.
fn flags_of(r: &Released) -> u64 {
    (if r.attr_fork { RMAP_ATTR } else { 0 })
        | (if r.bmbt { RMAP_BMBT } else { 0 })
        | (if r.unwritten { RMAP_UNWRITTEN } else { 0 })
}

/// Removes exactly the mapping `r` from `recs` (records trimmed or split), or
/// refuses when the rmapbt does not hold that mapping in full.
pub(crate) fn rmap_remove(recs: &mut Vec<Rmap>, r: &Released) -> Result<()> {
    let flags = flags_of(r);
    let (s, e) = (u64::from(r.agbno), end(r.agbno, r.len));
    let positional = r.owner >> 63 == 0 && !r.bmbt;
    let mut covered = 0u64;
    let mut out = Vec::with_capacity(recs.len() + 1);
    for m in recs.drain(..) {
        let (ms, me) = (u64::from(m.agbno), end(m.agbno, m.len));
        let (os, oe) = (ms.max(s), me.min(e));
        if m.owner != r.owner || m.offset & RMAP_FLAGS != flags || os >= oe {
            out.push(m);
            continue;
        }
        let moff = m.offset & RMAP_OFF_MASK;
        if positional
            && (i128::from(moff) - i128::from(ms)) != (i128::from(r.offset) - i128::from(s))
        {
            return Err(Error::refused(
                "rmapbt record",
                format!(
                    "inode {} blocks {os}..{oe}: the rmapbt places them at another file offset",
                    r.owner
                ),
            ));
        }
        covered += oe - os;
        if ms < os {
            out.push(Rmap {
                len: (os - ms) as u32,
                ..m
            });
        }
        if oe < me {
            let off = if positional {
                m.offset + (oe - ms)
            } else {
                m.offset
            };
            out.push(Rmap {
                agbno: oe as u32,
                len: (me - oe) as u32,
                offset: off,
                ..m
            });
        }
    }
    if covered != e - s {
        return Err(Error::refused(
            "rmapbt record",
            format!(
                "inode {} blocks {s}..{e}: the rmapbt maps {covered} of them to it",
                r.owner
            ),
        ));
    }
    sort_rmaps(&mut out);
    *recs = out;
    Ok(())
}

/// The rmapbt's key order: block, owner, offset without the unwritten flag.
pub(crate) fn sort_rmaps(recs: &mut [Rmap]) {
    recs.sort_by_key(|m| (m.agbno, m.owner, m.offset & !RMAP_UNWRITTEN));
}

/// Refuses when any reverse mapping still covers a block about to be freed.
pub(crate) fn check_unmapped(recs: &[Rmap], freed: &[(u32, u32)]) -> Result<()> {
    for &(s, l) in freed {
        let (s, e) = (u64::from(s), end(s, l));
        if let Some(m) = recs
            .iter()
            .find(|m| u64::from(m.agbno) < e && s < end(m.agbno, m.len))
        {
            return Err(Error::refused(
                "rmapbt record",
                format!(
                    "blocks {s}..{e} are to be freed but owner {:#x} still maps block {}",
                    m.owner, m.agbno
                ),
            ));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(agbno: u32, len: u32, owner: u64, offset: u64) -> Released {
        Released {
            agbno,
            len,
            owner,
            offset,
            attr_fork: false,
            bmbt: false,
            unwritten: false,
        }
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
    fn rmap_removal_needs_the_exact_mapping() {
        let m = |agbno, len, owner, offset| Rmap {
            agbno,
            len,
            owner,
            offset,
        };
        let mut recs = vec![m(100, 10, 131, 0), m(200, 4, 132, 7)];
        rmap_remove(&mut recs, &rel(103, 2, 131, 3)).unwrap();
        assert_eq!(
            recs,
            vec![m(100, 3, 131, 0), m(105, 5, 131, 5), m(200, 4, 132, 7)]
        );
        assert!(rmap_remove(&mut recs.clone(), &rel(200, 4, 132, 8)).is_err());
        assert!(rmap_remove(&mut recs.clone(), &rel(102, 2, 131, 2)).is_err());
        assert!(check_unmapped(&recs, &[(108, 1)]).is_err());
        assert!(check_unmapped(&recs, &[(103, 2)]).is_ok());
    }

    #[test]
    fn free_extents_merge_and_refuse_double_frees() {
        let f = |agbno, len| FreeExtent { agbno, len };
        let got = add_free(&[f(0, 5), f(10, 5)], &[(5, 5), (20, 1)]).unwrap();
        assert_eq!(got, vec![f(0, 15), f(20, 1)]);
        assert!(add_free(&[f(0, 5)], &[(4, 2)]).is_err());
        assert_eq!(runs_of(&[9, 3, 4, 5, 8]), vec![(3, 3), (8, 2)]);
    }
}
