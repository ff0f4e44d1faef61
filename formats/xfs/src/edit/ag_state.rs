//! An AG as the editor finds it: raw AGF/AGI/AGFL sectors and every AG
//! tree's records and blocks, read once, with the witnesses a release and a
//! free-space zeroing rely on checked to agree (bnobt = cntbt, the AGF's
//! free-block, longest-extent and tree-block counters).

use vmscrub_blockdev::ReadAt;

use crate::agbtree::{AgTree, FreeExtent, InodeChunk, Refcount, Rmap};
use crate::be::u32_at;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::superblock::{
    INCOMPAT_SPINODES, RO_COMPAT_FINOBT, RO_COMPAT_INOBTCNT, RO_COMPAT_REFLINK, RO_COMPAT_RMAPBT,
    Superblock,
};

pub(crate) const AGF_BTREEBLKS: usize = 60;
pub(crate) const AGF_RMAP_BLOCKS: usize = 80;
pub(crate) const AGF_REFC_BLOCKS: usize = 84;
const AGI_IBLOCKS: usize = 336;
const AGI_FBLOCKS: usize = 340;

/// An AG as read before the release: raw headers and every tree's records
/// and blocks.
pub(crate) struct AgState {
    pub agno: u32,
    pub agf: Vec<u8>,
    pub agi: Vec<u8>,
    pub agfl_buf: Vec<u8>,
    pub agf_off: u64,
    pub agi_off: u64,
    pub agfl_off: u64,
    pub agfl: Vec<u32>,
    pub free: Vec<FreeExtent>,
    pub bno_blocks: Vec<u32>,
    pub cnt_blocks: Vec<u32>,
    pub rmap: Option<(Vec<Rmap>, Vec<u32>)>,
    pub refc: Option<(Vec<Refcount>, Vec<u32>)>,
    pub ino: (Vec<InodeChunk>, Vec<u32>),
    pub fino: Option<(Vec<InodeChunk>, Vec<u32>)>,
    /// The AGI counts its inode trees' blocks (inobtcount).
    pub inobtcount: bool,
}

impl AgState {
    /// Reads AG `agno` and checks the witnesses a release relies on agree:
    /// the bnobt and cntbt hold the same extents, the AGF counts them, and
    /// its tree-block counters match the trees.
    pub(crate) fn read<D: ReadAt>(fs: &Xfs<D>, agno: u32) -> Result<Self> {
        let (agf_h, agi_h) = fs.ag_headers(agno)?;
        let sect = usize::from(fs.sb.sect_size);
        let mut agf = vec![0u8; sect];
        let mut agi = vec![0u8; sect];
        let mut agfl_buf = vec![0u8; sect];
        let agfl_off = fs.sb.ag_byte(agno) + 3 * sect as u64;
        fs.read_bytes(&mut agf, agf_h.offset, "AGF")?;
        fs.read_bytes(&mut agi, agi_h.offset, "AGI")?;
        fs.read_bytes(&mut agfl_buf, agfl_off, "AGFL")?;
        let agfl = fs.agfl(agno)?;
        let tree = |t: AgTree, root: u32, level: u32| fs.ag_tree_contents(agno, t, root, level);
        let (bno, bno_blocks) = tree(AgTree::Bno, agf_h.bno_root, agf_h.bno_level)?;
        let (cnt, cnt_blocks) = tree(AgTree::Cnt, agf_h.cnt_root, agf_h.cnt_level)?;
        let free: Vec<FreeExtent> = bno.iter().map(|r| FreeExtent::decode(r)).collect();
        let mut by_size: Vec<FreeExtent> = cnt.iter().map(|r| FreeExtent::decode(r)).collect();
        by_size.sort_by_key(|f| f.agbno);
        if by_size != free {
            return Err(Error::refused(
                "cntbt",
                format!("AG {agno}: the cntbt and bnobt disagree"),
            ));
        }
        let total: u64 = free.iter().map(|f| u64::from(f.len)).sum();
        let longest = free.iter().map(|f| f.len).max().unwrap_or(0);
        if total != u64::from(agf_h.free_blocks) || longest != agf_h.longest {
            return Err(Error::refused(
                "AGF",
                format!("AG {agno}: free blocks/longest disagree with the bnobt"),
            ));
        }
        let rmapbt = fs.sb.ro_compat & RO_COMPAT_RMAPBT != 0;
        let rmap = if rmapbt {
            let (recs, blocks) = tree(AgTree::Rmap, agf_h.rmap_root, agf_h.rmap_level)?;
            let recs = recs.iter().map(|r| Rmap::decode(r)).collect();
            Some((recs, blocks))
        } else {
            None
        };
        let refc = if fs.sb.ro_compat & RO_COMPAT_REFLINK != 0 {
            let (recs, blocks) = tree(AgTree::Refcount, agf_h.refcount_root, agf_h.refcount_level)?;
            let recs = recs.iter().map(|r| Refcount::decode(r)).collect();
            Some((recs, blocks))
        } else {
            None
        };
        let sparse = fs.sb.incompat & INCOMPAT_SPINODES != 0;
        let (irecs, iblocks) = tree(AgTree::Ino, agi_h.root, agi_h.level)?;
        let ino = (
            irecs
                .iter()
                .map(|r| InodeChunk::decode(sparse, r))
                .collect(),
            iblocks,
        );
        let fino = if fs.sb.ro_compat & RO_COMPAT_FINOBT != 0 {
            let (recs, blocks) = tree(AgTree::Fino, agi_h.free_root, agi_h.free_level)?;
            Some((
                recs.iter().map(|r| InodeChunk::decode(sparse, r)).collect(),
                blocks,
            ))
        } else {
            None
        };
        let st = AgState {
            agno,
            agf,
            agi,
            agfl_buf,
            agf_off: agf_h.offset,
            agi_off: agi_h.offset,
            agfl_off,
            agfl,
            free,
            bno_blocks,
            cnt_blocks,
            rmap,
            refc,
            ino,
            fino,
            inobtcount: fs.sb.ro_compat & RO_COMPAT_INOBTCNT != 0,
        };
        st.check_counters()?;
        st.check_bounds(agf_h.length)?;
        Ok(st)
    }

    /// `agf_btreeblks`: the free-space trees' and rmapbt's blocks but their
    /// roots. A tree of no block has no root to leave out: the AG's trees are
    /// not what the reader found, so this is corruption, never a wrapped count.
    pub(crate) fn btreeblks(&self, bno: usize, cnt: usize, rmap: Option<usize>) -> Result<u32> {
        let non_root = |n: usize, tree: &str| {
            n.checked_sub(1).ok_or_else(|| {
                Error::corrupt(
                    "AGF",
                    Loc::at(self.agf_off),
                    format!("AG {}: the {tree} has no block", self.agno),
                )
            })
        };
        let mut sum = non_root(bno, "bnobt")? + non_root(cnt, "cntbt")?;
        if let Some(r) = rmap {
            sum += non_root(r, "rmapbt")?;
        }
        u32::try_from(sum).map_err(|_| {
            Error::corrupt(
                "AGF",
                Loc::at(self.agf_off),
                format!("AG {}: {sum} tree blocks", self.agno),
            )
        })
    }

    fn check_counters(&self) -> Result<()> {
        let r = self.rmap.as_ref().map(|r| r.1.len());
        let want = self.btreeblks(self.bno_blocks.len(), self.cnt_blocks.len(), r)?;
        let mut bad = u32_at(&self.agf, AGF_BTREEBLKS) != want;
        if let Some(r) = r {
            bad |= u32_at(&self.agf, AGF_RMAP_BLOCKS) as usize != r;
        }
        if let Some((_, b)) = &self.refc {
            bad |= u32_at(&self.agf, AGF_REFC_BLOCKS) as usize != b.len();
        }
        if self.inobtcount {
            bad |= u32_at(&self.agi, AGI_IBLOCKS) as usize != self.ino.1.len();
            let f = self.fino.as_ref().map_or(0, |f| f.1.len());
            bad |= u32_at(&self.agi, AGI_FBLOCKS) as usize != f;
        }
        if bad {
            return Err(Error::refused(
                "AGF",
                format!(
                    "AG {}: the tree block counters disagree with the trees",
                    self.agno
                ),
            ));
        }
        Ok(())
    }

    /// Every record inside the AG, free extents sorted and apart: the
    /// editor's arithmetic on them then cannot overflow or wrap.
    fn check_bounds(&self, length: u32) -> Result<()> {
        let inside = |s: u32, l: u32| l > 0 && u64::from(s) + u64::from(l) <= u64::from(length);
        let free_ok = self.free.iter().all(|f| inside(f.agbno, f.len))
            && self
                .free
                .windows(2)
                .all(|w| u64::from(w[0].agbno) + u64::from(w[0].len) <= u64::from(w[1].agbno));
        let rmap_ok = self
            .rmap
            .as_ref()
            .is_none_or(|r| r.0.iter().all(|m| inside(m.agbno, m.len)));
        let refc_ok = self
            .refc
            .as_ref()
            .is_none_or(|r| r.0.iter().all(|c| inside(c.agbno & !(1 << 31), c.len)));
        if !(free_ok && rmap_ok && refc_ok) {
            return Err(Error::refused(
                "AG B+tree record",
                format!(
                    "AG {}: a record lies outside the AG or free extents overlap",
                    self.agno
                ),
            ));
        }
        Ok(())
    }

    /// Every block of the AG that is neither file data nor free space: the
    /// headers (`headers` blocks from 0), the internal log when it lies in
    /// this AG, the allocated parts of inode chunks (a sparse chunk's holes
    /// may hold anything), every AG B+tree block and the AGFL's blocks.
    pub(crate) fn used_runs(&self, sb: &Superblock, headers: u32) -> UsedRuns {
        let agl = u32::from(sb.ag_block_log);
        let log = (sb.log_start >> agl == u64::from(self.agno))
            .then(|| ((sb.log_start & ((1u64 << agl) - 1)) as u32, sb.log_blocks));
        self.used_runs_with(headers, log, sb.inop_block_log)
    }

    /// [`Self::used_runs`] with the log's run in this AG, if any, and
    /// log2(inodes per block) given.
    fn used_runs_with(&self, headers: u32, log: Option<(u32, u32)>, inop: u8) -> UsedRuns {
        let mut runs = vec![(0, headers, Used::Headers)];
        runs.extend(log.map(|(s, l)| (s, l, Used::Log)));
        let inop = u32::from(inop);
        for c in &self.ino.0 {
            // Holemask bit g covers inodes 4g..4g+3 of the chunk.
            let mut cur: Option<(u32, u32)> = None;
            for g in (0..16u32).filter(|g| c.holemask & (1 << g) == 0) {
                let first = c.start_ino.saturating_add(4 * g) >> inop;
                let last = c.start_ino.saturating_add(4 * g + 3) >> inop;
                match &mut cur {
                    Some((_, l)) if first <= l.saturating_add(1) => *l = (*l).max(last),
                    _ => {
                        runs.extend(cur.map(|(f, l)| (f, l - f + 1, Used::InodeChunk)));
                        cur = Some((first, last));
                    }
                }
            }
            runs.extend(cur.map(|(f, l)| (f, l - f + 1, Used::InodeChunk)));
        }
        let trees = [
            Some(&self.bno_blocks),
            Some(&self.cnt_blocks),
            Some(&self.ino.1),
            self.fino.as_ref().map(|f| &f.1),
            self.rmap.as_ref().map(|r| &r.1),
            self.refc.as_ref().map(|r| &r.1),
        ];
        for b in trees.into_iter().flatten() {
            runs.extend(b.iter().map(|&x| (x, 1, Used::TreeBlock)));
        }
        runs.extend(self.agfl.iter().map(|&x| (x, 1, Used::Agfl)));
        UsedRuns::new(runs)
    }
}

/// What a block that is neither file data nor free space holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Used {
    Headers,
    Log,
    InodeChunk,
    TreeBlock,
    Agfl,
}

impl Used {
    /// The structure a refusal names.
    pub(crate) fn structure(self) -> &'static str {
        match self {
            Used::Headers => "AG headers",
            Used::Log => "internal log",
            Used::InodeChunk => "inode chunk",
            Used::TreeBlock => "AG B+tree",
            Used::Agfl => "AGFL",
        }
    }
}

/// An AG's used runs `(start, length, what)` sorted by start, with the
/// running maximum of their ends: which run overlaps a range is then a
/// binary search (runs may overlap one another on a corrupt AG).
pub(crate) struct UsedRuns {
    runs: Vec<(u32, u32, Used)>,
    max_end: Vec<u64>,
}

impl UsedRuns {
    pub(crate) fn new(mut runs: Vec<(u32, u32, Used)>) -> Self {
        runs.retain(|r| r.1 > 0);
        runs.sort_unstable_by_key(|r| (r.0, r.1));
        let mut top = 0u64;
        let max_end = runs
            .iter()
            .map(|r| {
                top = top.max(u64::from(r.0) + u64::from(r.1));
                top
            })
            .collect();
        UsedRuns { runs, max_end }
    }

    /// The used run with the lowest start that overlaps `start..start+len`.
    pub(crate) fn overlap(&self, start: u32, len: u32) -> Option<(u32, u32, Used)> {
        let end = u64::from(start) + u64::from(len);
        let below = self.runs.partition_point(|r| u64::from(r.0) < end);
        let first = self
            .max_end
            .get(..below)?
            .partition_point(|&e| e <= u64::from(start));
        (first < below && len > 0)
            .then(|| self.runs.get(first).copied())
            .flatten()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An AG with no record and no tree block, for record-level tests.
    pub(crate) fn synthetic(agno: u32) -> AgState {
        AgState {
            agno,
            agf: vec![0; 512],
            agi: vec![0; 512],
            agfl_buf: vec![0; 512],
            agf_off: 512,
            agi_off: 1024,
            agfl_off: 1536,
            agfl: vec![],
            free: vec![],
            bno_blocks: vec![],
            cnt_blocks: vec![],
            rmap: None,
            refc: None,
            ino: (vec![], vec![]),
            fino: None,
            inobtcount: false,
        }
    }

    #[test]
    fn used_runs_skip_sparse_holes_and_find_overlaps() {
        let mut ag = synthetic(1);
        let chunk = |start_ino, holemask| InodeChunk {
            start_ino,
            holemask,
            count: 64,
            free_count: 0,
            free: 0,
        };
        // 8 inodes a block: chunk at inode 800 = blocks 100..108; the sparse
        // one at 1600 = blocks 200..208 with inodes 16..47 (blocks 202..206)
        // a hole.
        ag.ino = (vec![chunk(800, 0), chunk(1600, 0x0ff0)], vec![50]);
        ag.bno_blocks = vec![40];
        ag.agfl = vec![41, 42];
        let used = ag.used_runs_with(2, Some((300, 64)), 3);
        let at = |s, l| used.overlap(s, l).map(|r| r.2);
        assert_eq!(at(0, 1), Some(Used::Headers));
        assert_eq!(at(2, 38), None);
        assert_eq!(at(2, 39), Some(Used::TreeBlock));
        assert_eq!(at(42, 1), Some(Used::Agfl));
        assert_eq!(at(99, 1), None);
        assert_eq!(at(90, 11), Some(Used::InodeChunk));
        assert_eq!(at(107, 1), Some(Used::InodeChunk));
        assert_eq!(at(108, 92), None);
        assert_eq!(used.overlap(201, 1), Some((200, 2, Used::InodeChunk)));
        assert_eq!(at(202, 4), None, "a sparse hole");
        assert_eq!(used.overlap(203, 4), Some((206, 2, Used::InodeChunk)));
        assert_eq!(at(299, 1), None);
        assert_eq!(at(363, 10), Some(Used::Log));
        assert_eq!(at(364, 10), None);
        assert_eq!(at(5, 0), None);
        // Runs overlapping one another (a corrupt AG): still found.
        let used = UsedRuns::new(vec![
            (10, 100, Used::Log),
            (20, 1, Used::TreeBlock),
            (30, 1, Used::Agfl),
        ]);
        assert_eq!(used.overlap(50, 1).map(|r| r.2), Some(Used::Log));
        assert_eq!(used.overlap(110, 5), None);
    }

    #[test]
    fn many_used_runs_are_searched_not_scanned() {
        // 200k tree blocks and 50k chunks against 50k free extents: a scan
        // of every used block per extent would take minutes here.
        let mut ag = synthetic(0);
        ag.bno_blocks = (0..200_000).map(|i| 10 * i + 1).collect();
        ag.ino.0 = (0..50_000)
            .map(|i| InodeChunk {
                start_ino: (2_000_000 + 10 * i) << 3,
                holemask: 0,
                count: 64,
                free_count: 0,
                free: 0,
            })
            .collect();
        let used = ag.used_runs_with(1, None, 3);
        for i in 0..50_000 {
            assert_eq!(used.overlap(40 * i + 2, 8), None);
            assert_eq!(used.overlap(2_000_000 + 10 * i + 8, 2), None);
        }
        assert_eq!(
            used.overlap(2_000_000 + 10 * 777 + 7, 2),
            Some((2_007_770, 8, Used::InodeChunk))
        );
    }

    #[test]
    fn btreeblks_of_a_tree_without_blocks_is_corruption() {
        let ag = synthetic(3);
        assert_eq!(ag.btreeblks(3, 2, Some(2)).unwrap(), 4);
        assert_eq!(ag.btreeblks(1, 1, None).unwrap(), 0);
        for (bno, cnt, rmap) in [(0, 1, None), (1, 0, None), (1, 1, Some(0))] {
            assert!(
                matches!(
                    ag.btreeblks(bno, cnt, rmap),
                    Err(Error::Corrupt { what: "AGF", .. })
                ),
                "{bno} {cnt} {rmap:?}"
            );
        }
    }
}
