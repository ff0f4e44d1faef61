//! Reverse mappings (rmapbt records) as a release changes them, on plain
//! vectors: a file's mappings removed exactly (trimmed or split, refused when
//! the rmapbt does not hold them), special owners' runs added and merged as
//! the kernel keeps them, and the check that nothing still maps a block about
//! to be freed.

use std::collections::HashMap;

use crate::agbtree::Rmap;
use crate::edit::btree_build::RMAP_UNWRITTEN;
use crate::edit::space::Released;
use crate::error::{Error, Result};

const RMAP_ATTR: u64 = 1 << 63;
const RMAP_BMBT: u64 = 1 << 62;
const RMAP_FLAGS: u64 = RMAP_ATTR | RMAP_BMBT | RMAP_UNWRITTEN;
const RMAP_OFF_MASK: u64 = (1 << 54) - 1;
/// The rmapbt owners of AG metadata the editor moves blocks of.
pub(crate) const OWN_INOBT: u64 = -6i64 as u64;
pub(crate) const OWN_REFC: u64 = -8i64 as u64;

/// The rmapbt offset flags of a released extent.
fn flags_of(r: &Released) -> u64 {
    (if r.attr_fork { RMAP_ATTR } else { 0 })
        | (if r.bmbt { RMAP_BMBT } else { 0 })
        | (if r.unwritten { RMAP_UNWRITTEN } else { 0 })
}

/// Removes exactly the mapping `r` from `recs` (records trimmed or split), or
/// refuses when the rmapbt does not hold that mapping in full: one release at
/// a time, the reference [`rmap_remove_all`]'s sweep is tested against.
#[cfg(test)]
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

/// Removes every mapping of `rels` from `recs` (sorted) in one sweep —
/// records trimmed or split — or refuses when the rmapbt does not hold one
/// of them in full, or two releases claim the same mapping.
pub(crate) fn rmap_remove_all(recs: &mut Vec<Rmap>, rels: &[Released]) -> Result<()> {
    let mut by_key: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    for (i, r) in rels.iter().enumerate() {
        by_key.entry((r.owner, flags_of(r))).or_default().push(i);
    }
    for list in by_key.values_mut() {
        list.sort_by_key(|&i| rels[i].agbno);
        if let Some(w) = list
            .windows(2)
            .find(|w| span(&rels[w[0]]).1 > u64::from(rels[w[1]].agbno))
        {
            let r = &rels[w[1]];
            return Err(Error::refused(
                "rmapbt record",
                format!(
                    "inode {} blocks from {} are released twice",
                    r.owner, r.agbno
                ),
            ));
        }
    }
    let mut covered = vec![0u64; rels.len()];
    let mut out = Vec::with_capacity(recs.len() + rels.len());
    for m in recs.drain(..) {
        let Some(list) = by_key.get(&(m.owner, m.offset & RMAP_FLAGS)) else {
            out.push(m);
            continue;
        };
        let (ms, me) = (u64::from(m.agbno), end(m.agbno, m.len));
        let positional = m.owner >> 63 == 0 && m.offset & RMAP_BMBT == 0;
        let first = list.partition_point(|&i| span(&rels[i]).1 <= ms);
        let mut cur = ms;
        for &i in &list[first..] {
            let (rs, re) = span(&rels[i]);
            if rs >= me {
                break;
            }
            let (os, oe) = (rs.max(ms), re.min(me));
            let moff = i128::from(m.offset & RMAP_OFF_MASK);
            if positional && moff - i128::from(ms) != i128::from(rels[i].offset) - i128::from(rs) {
                return Err(Error::refused(
                    "rmapbt record",
                    format!(
                        "inode {} blocks {os}..{oe}: the rmapbt places them at another file offset",
                        m.owner
                    ),
                ));
            }
            covered[i] += oe - os;
            if cur < os {
                out.push(piece(&m, cur, os, positional));
            }
            cur = oe;
        }
        if cur < me {
            out.push(piece(&m, cur, me, positional));
        }
    }
    if let Some((i, c)) = covered
        .iter()
        .enumerate()
        .find(|(i, c)| **c != u64::from(rels[*i].len))
    {
        let r = &rels[i];
        return Err(Error::refused(
            "rmapbt record",
            format!(
                "inode {} blocks {}+{}: the rmapbt maps {c} of them to it",
                r.owner, r.agbno, r.len
            ),
        ));
    }
    sort_rmaps(&mut out);
    *recs = out;
    Ok(())
}

fn span(r: &Released) -> (u64, u64) {
    (u64::from(r.agbno), end(r.agbno, r.len))
}

/// The part `s..e` of record `m`, its file offset moved along for data.
fn piece(m: &Rmap, s: u64, e: u64, positional: bool) -> Rmap {
    let off = if positional {
        m.offset + (s - u64::from(m.agbno))
    } else {
        m.offset
    };
    Rmap {
        agbno: s as u32,
        len: (e - s) as u32,
        offset: off,
        ..*m
    }
}

/// Refuses when any reverse mapping (`recs` sorted) still covers a block
/// about to be freed. The running maximum of the records' ends finds the
/// first one reaching past a freed start by binary search (a long record,
/// the log's, would make a window scan quadratic).
pub(crate) fn check_unmapped(recs: &[Rmap], freed: &[(u32, u32)]) -> Result<()> {
    let mut top = 0u64;
    let max_end: Vec<u64> = recs
        .iter()
        .map(|m| {
            top = top.max(end(m.agbno, m.len));
            top
        })
        .collect();
    for &(s, l) in freed {
        let hi = recs.partition_point(|m| u64::from(m.agbno) < end(s, l));
        let first = max_end
            .get(..hi)
            .unwrap_or_default()
            .partition_point(|&e| e <= u64::from(s));
        if let Some(m) = recs
            .get(first..hi)
            .unwrap_or_default()
            .iter()
            .find(|m| overlaps(m, s, l))
        {
            return Err(Error::refused(
                "rmapbt record",
                format!(
                    "blocks {s}+{l} are to be freed but owner {:#x} still maps block {}",
                    m.owner, m.agbno
                ),
            ));
        }
    }
    Ok(())
}

fn overlaps(m: &Rmap, s: u32, l: u32) -> bool {
    u64::from(m.agbno) < end(s, l) && u64::from(s) < end(m.agbno, m.len)
}

/// The rmapbt owner of the free-space trees' and the AGFL's blocks.
pub(crate) const OWN_AG: u64 = -5i64 as u64;
/// Maps `agbno..agbno+len` to special owner `owner`, merged with a touching
/// record of the same owner as the kernel keeps them.
pub(crate) fn rmap_add_special(recs: &mut Vec<Rmap>, agbno: u32, len: u32, owner: u64) {
    recs.push(Rmap {
        agbno,
        len,
        owner,
        offset: 0,
    });
    sort_rmaps(recs);
    let mut out: Vec<Rmap> = Vec::with_capacity(recs.len());
    for m in recs.drain(..) {
        if let Some(p) = out.last_mut()
            && p.owner == m.owner
            && m.owner >> 63 != 0
            && p.offset == m.offset
            && end(p.agbno, p.len) == u64::from(m.agbno)
        {
            p.len += m.len;
            continue;
        }
        out.push(m);
    }
    *recs = out;
}

fn end(start: u32, len: u32) -> u64 {
    u64::from(start) + u64::from(len)
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
        let mut all = vec![m(100, 10, 131, 0), m(200, 4, 132, 7)];
        rmap_remove_all(&mut all, &[rel(103, 2, 131, 3), rel(200, 1, 132, 7)]).unwrap();
        assert_eq!(
            all,
            vec![m(100, 3, 131, 0), m(105, 5, 131, 5), m(201, 3, 132, 8)]
        );
        let mut all = vec![m(100, 10, 131, 0)];
        assert!(rmap_remove_all(&mut all, &[rel(103, 2, 131, 3), rel(104, 1, 131, 4)]).is_err());
        assert!(
            rmap_remove_all(&mut all, &[rel(108, 4, 131, 8)]).is_err(),
            "past the record"
        );
    }

    #[test]
    fn unmapped_check_finds_long_records_by_search() {
        let m = |agbno, len, owner| Rmap {
            agbno,
            len,
            owner,
            offset: 0,
        };
        // A long record (the log's) among 200k one-block ones, 50k freed
        // extents between them: a window scan behind each would be quadratic.
        let mut recs = vec![m(0, 1_000_000, -3i64 as u64)];
        recs.extend((0..200_000).map(|i| m(1_000_000 + 5 * i, 1, 200 + u64::from(i))));
        let freed: Vec<(u32, u32)> = (0..50_000).map(|i| (1_000_001 + 20 * i, 4)).collect();
        assert!(check_unmapped(&recs, &freed).is_ok());
        assert!(check_unmapped(&recs, &[(999_999, 1)]).is_err());
        assert!(check_unmapped(&recs, &[(1_000_004, 2)]).is_err());
        assert!(check_unmapped(&recs, &[(1_000_001, 4), (1_000_006, 4)]).is_ok());
    }
}
