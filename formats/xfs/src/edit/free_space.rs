//! Free space as a zeroing pass may trust it, and the superblock counters made
//! exact after edits.
//!
//! A block is zeroed only when every witness says it is free: the bnobt and
//! the cntbt hold the same extents, the AGF counts them (free blocks, longest
//! extent, free-list window, tree-block counters), no header, tree or AGFL
//! block, inode chunk or log block lies in them, and the owners agree — the
//! rmapbt maps nothing there (and only `OWN_AG` on the AGFL's blocks), or, on
//! filesystems without one, no allocated inode's fork or bmap B+tree maps a
//! block there.

use std::ops::Range;
use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use crate::agbtree::{FreeExtent, Rmap};
use crate::be::u32_at;
use crate::bmap::Fork;
use crate::checksum;
use crate::edit::ag_state::AgState;
use crate::edit::btree_build::ag_block_byte;
use crate::edit::inodes::ino_of;
use crate::edit::rmap_records::OWN_AG;
use crate::error::{Error, Result};
use crate::fs::Xfs;
use crate::superblock::CRC_OFFSET;

const SB_ICOUNT: usize = 128;
const SB_IFREE: usize = 136;
const SB_FDBLOCKS: usize = 144;

/// `sb_icount`, `sb_ifree` and `sb_fdblocks` recomputed from the AG headers
/// (free blocks, free-list blocks and the free-space trees' non-root blocks
/// count as free, as the kernel counts them), staged with the CRC.
pub(crate) fn update_superblock_counters<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
) -> Result<()> {
    let (mut icount, mut ifree, mut fdblocks) = (0u64, 0u64, 0u64);
    let sect = usize::from(fs.sb.sect_size);
    for agno in 0..fs.sb.ag_count {
        let (agf, agi) = fs.ag_headers(agno)?;
        let mut raw = vec![0u8; sect];
        fs.read_bytes(&mut raw, agf.offset, "AGF")?;
        let btreeblks = u32_at(&raw, 60);
        icount += u64::from(agi.count);
        ifree += u64::from(agi.free_count);
        fdblocks += u64::from(agf.free_blocks) + u64::from(agf.fl_count) + u64::from(btreeblks);
    }
    if ifree > icount || fdblocks > fs.sb.dblocks {
        return Err(Error::refused(
            "superblock",
            format!("the AG headers count {ifree} free of {icount} inodes, {fdblocks} free blocks"),
        ));
    }
    let mut sb = vec![0u8; sect];
    fs.read_bytes(&mut sb, 0, "superblock")?;
    sb[SB_ICOUNT..SB_ICOUNT + 8].copy_from_slice(&icount.to_be_bytes());
    sb[SB_IFREE..SB_IFREE + 8].copy_from_slice(&ifree.to_be_bytes());
    sb[SB_FDBLOCKS..SB_FDBLOCKS + 8].copy_from_slice(&fdblocks.to_be_bytes());
    checksum::store(&mut sb, CRC_OFFSET);
    stage.patch(0, &sb).map_err(|source| Error::Io {
        what: "staged superblock",
        offset: 0,
        source,
    })
}

/// Every device byte range free by the bnobt, plus the AGFL's blocks, when
/// every witness agrees (module doc); otherwise `Refused` naming the one that
/// does not.
pub(crate) fn free_ranges<D: ReadAt>(fs: &Xfs<Arc<Staged<D>>>) -> Result<Vec<Range<u64>>> {
    let mut ags = Vec::with_capacity(fs.sb.ag_count as usize);
    for agno in 0..fs.sb.ag_count {
        let ag = AgState::read(fs, agno)?;
        let (agf, _) = fs.ag_headers(agno)?;
        if agf.fl_count as usize != ag.agfl.len() {
            return Err(refuse(
                agno,
                "the AGF's free-list count and the AGFL disagree",
            ));
        }
        let headers = (4 * u32::from(fs.sb.sect_size)).div_ceil(fs.sb.block_size);
        let used = ag.used_runs(&fs.sb, headers);
        for f in &ag.free {
            if let Some((b, _, what)) = used.overlap(f.agbno, f.len) {
                return Err(refuse(
                    agno,
                    &format!(
                        "free blocks {}+{} hold block {} of the {}",
                        f.agbno,
                        f.len,
                        b.max(f.agbno),
                        what.structure()
                    ),
                ));
            }
        }
        if let Some((rmaps, _)) = &ag.rmap {
            check_rmaps(agno, rmaps, &ag.free, &ag.agfl)?;
        }
        ags.push(ag);
    }
    let free: Vec<Vec<(u32, u32)>> = ags
        .iter()
        .map(|ag| {
            let mut p: Vec<(u32, u32)> = ag.free.iter().map(|f| (f.agbno, f.len)).collect();
            p.extend(ag.agfl.iter().map(|&b| (b, 1)));
            p.sort_unstable();
            p
        })
        .collect();
    check_inode_chunks(&ags, &free, fs.sb.inop_block_log)?;
    if ags.iter().any(|ag| ag.rmap.is_none()) {
        check_inode_forks(fs, &ags, &free)?;
    }
    let bs = u64::from(fs.sb.block_size);
    let mut out: Vec<Range<u64>> = vec![];
    for (agno, pieces) in free.iter().enumerate() {
        for &(b, l) in pieces {
            let s = ag_block_byte(fs, agno as u32, b)?;
            let e = s + u64::from(l) * bs;
            match out.last_mut() {
                Some(p) if p.end == s => p.end = e,
                _ => out.push(s..e),
            }
        }
    }
    Ok(out)
}

/// Whether sorted, disjoint `free` runs hold any of `agbno..agbno+len`.
fn is_free(free: &[(u32, u32)], agbno: u32, len: u32) -> bool {
    let i = free.partition_point(|f| u64::from(f.0) + u64::from(f.1) <= u64::from(agbno));
    free.get(i).is_some_and(|f| overlaps(f.0, f.1, agbno, len))
}

fn refuse(agno: u32, why: &str) -> Error {
    Error::refused("free space", format!("AG {agno}: {why}"))
}

fn overlaps(a: u32, alen: u32, b: u32, blen: u32) -> bool {
    u64::from(a) < u64::from(b) + u64::from(blen) && u64::from(b) < u64::from(a) + u64::from(alen)
}

/// No reverse mapping on a free extent; every AGFL block mapped, only by
/// `OWN_AG`. One pass over the rmaps, each placed by binary search among the
/// free extents (sorted and apart, [`AgState::read`]) and the AGFL's blocks.
fn check_rmaps(agno: u32, rmaps: &[Rmap], free: &[FreeExtent], agfl: &[u32]) -> Result<()> {
    // The lowest free extent any rmap overlaps, with the first such rmap.
    let mut hit: Option<(usize, &Rmap)> = None;
    let mut sorted = agfl.to_vec();
    sorted.sort_unstable();
    // Difference arrays over `sorted`: rmaps covering each AGFL block, and
    // how many of them are not `OWN_AG`.
    let mut count = vec![0i64; sorted.len() + 1];
    let mut foreign = vec![0i64; sorted.len() + 1];
    for m in rmaps {
        let end = u64::from(m.agbno) + u64::from(m.len);
        let i =
            free.partition_point(|f| u64::from(f.agbno) + u64::from(f.len) <= u64::from(m.agbno));
        let overlapping = free
            .get(i)
            .is_some_and(|f| overlaps(f.agbno, f.len, m.agbno, m.len));
        if overlapping && hit.is_none_or(|(j, _)| i < j) {
            hit = Some((i, m));
        }
        let lo = sorted.partition_point(|&b| b < m.agbno);
        let hi = sorted.partition_point(|&b| u64::from(b) < end);
        if lo < hi {
            count[lo] += 1;
            count[hi] -= 1;
            if m.owner != OWN_AG {
                foreign[lo] += 1;
                foreign[hi] -= 1;
            }
        }
    }
    if let Some((i, m)) = hit
        && let Some(f) = free.get(i)
    {
        return Err(refuse(
            agno,
            &format!(
                "free blocks {}+{} are mapped to owner {:#x}",
                f.agbno, f.len, m.owner
            ),
        ));
    }
    let (mut c, mut x) = (0i64, 0i64);
    let per_block: Vec<(i64, i64)> = count
        .iter()
        .zip(&foreign)
        .map(|(dc, dx)| {
            c += dc;
            x += dx;
            (c, x)
        })
        .collect();
    for &b in agfl {
        let k = sorted.partition_point(|&s| s < b);
        if per_block.get(k) != Some(&(1, 0)) {
            return Err(refuse(
                agno,
                &format!("AGFL block {b} is not owned by the AG alone"),
            ));
        }
    }
    Ok(())
}

/// No allocated part of an inode chunk (sparse holes excepted) lies in free
/// space.
fn check_inode_chunks(ags: &[AgState], free: &[Vec<(u32, u32)>], inop_log: u8) -> Result<()> {
    for (agno, (ag, free)) in ags.iter().zip(free).enumerate() {
        for c in &ag.ino.0 {
            for idx in 0..64u32 {
                let agbno = c.start_ino.saturating_add(idx) >> inop_log;
                if c.holemask & (1 << (idx / 4)) == 0 && is_free(free, agbno, 1) {
                    return Err(refuse(
                        agno as u32,
                        &format!("inode chunk {} lies in free space", c.start_ino),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Without an rmapbt: walks every allocated inode once and refuses when one
/// of its forks (or their bmap B+tree blocks) maps a free block.
fn check_inode_forks<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    ags: &[AgState],
    free: &[Vec<(u32, u32)>],
) -> Result<()> {
    for (a, ag) in ags.iter().enumerate() {
        for c in &ag.ino.0 {
            for idx in 0..64u32 {
                if c.free & (1 << idx) != 0 || c.holemask & (1 << (idx / 4)) != 0 {
                    continue;
                }
                let inode = fs.inode(ino_of(fs, a as u32, c.start_ino.saturating_add(idx)))?;
                for fork in [Fork::Data, Fork::Attr] {
                    let map = fs.block_map(&inode, fork)?;
                    // Extents start at AG-encoded block numbers; the bmap
                    // B+tree's blocks come as device byte offsets.
                    let extents = map.extents.iter().map(|e| {
                        let (agno, agbno) = fs.sb.fsb_split(e.start);
                        (agno, agbno, e.count)
                    });
                    let tree = map.tree_blocks.iter().map(|&byte| {
                        let (agno, agbno) = fs.sb.byte_split(byte);
                        (agno, agbno, 1)
                    });
                    for (agno, agbno, count) in extents.chain(tree) {
                        let Some(f) = free.get(agno as usize) else {
                            continue;
                        };
                        let len = u32::try_from(count).unwrap_or(u32::MAX);
                        let agbno = u32::try_from(agbno).unwrap_or(u32::MAX);
                        if is_free(f, agbno, len) {
                            return Err(refuse(
                                agno as u32,
                                &format!("inode {} maps free block {agbno}", inode.ino),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(agbno: u32, len: u32, owner: u64) -> Rmap {
        Rmap {
            agbno,
            len,
            owner,
            offset: 0,
        }
    }

    fn f(agbno: u32, len: u32) -> FreeExtent {
        FreeExtent { agbno, len }
    }

    #[test]
    fn rmaps_on_free_space_or_the_agfl_refuse() {
        let free = [f(10, 5), f(30, 5)];
        let agfl = [21, 20];
        let ok = [m(0, 10, 131), m(15, 5, 132), m(20, 2, OWN_AG), m(35, 9, 7)];
        assert!(check_rmaps(0, &ok, &free, &agfl).is_ok());
        let refused = |extra: Rmap| {
            let mut r = ok.to_vec();
            r.push(extra);
            r.sort_by_key(|m| m.agbno);
            check_rmaps(0, &r, &free, &agfl)
        };
        let e = refused(m(34, 1, 133)).unwrap_err().to_string();
        assert!(e.contains("free blocks 30+5") && e.contains("0x85"), "{e}");
        // Mapped twice, or by another owner.
        assert!(refused(m(21, 1, OWN_AG)).is_err());
        assert!(refused(m(19, 2, 134)).is_err());
        // Not mapped at all.
        assert!(check_rmaps(0, &ok[..1], &free, &agfl).is_err());
        // The first free extent mapped is named, by its first rmap.
        let e = check_rmaps(
            0,
            &[m(12, 1, 140), m(11, 1, 141), m(31, 1, 142)],
            &free,
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("free blocks 10+5") && e.contains("0x8c"), "{e}");
    }

    #[test]
    fn large_rmap_sets_are_placed_not_scanned() {
        // 200k rmaps between 50k free extents and a full AGFL: quadratic
        // checks would take minutes here.
        let free: Vec<FreeExtent> = (0..50_000).map(|i| f(10 * i, 2)).collect();
        let agfl: Vec<u32> = (0..1000).map(|i| 10 * i + 2).collect();
        let mut rmaps = vec![];
        for i in 0..50_000u32 {
            let own = if i < 1000 { OWN_AG } else { 200 + u64::from(i) };
            rmaps.push(m(10 * i + 2, 1, own));
            rmaps.extend((3..6).map(|k| m(10 * i + k, 1, 100_000 + u64::from(i))));
        }
        assert_eq!(rmaps.len(), 200_000);
        assert!(check_rmaps(0, &rmaps, &free, &agfl).is_ok());
        rmaps.push(m(10 * 49_999 + 1, 1, 9));
        assert!(check_rmaps(0, &rmaps, &free, &agfl).is_err());
    }
}
