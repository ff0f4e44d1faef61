//! The per-AG B+trees (short-format blocks, AG-relative pointers): free space by
//! block (bnobt) and by size (cntbt), inode chunks (inobt) and chunks with free
//! inodes (finobt), reverse mappings (rmapbt) and shared-block reference counts
//! (refcountbt). The read side needs none of them; an editor allocating and
//! freeing blocks and inodes does, and they witness each other and the AG
//! headers (the free space in the bnobt is the AGF's count, and so on).
//!
//! One walker serves every tree: levels must decrease by one per step, every
//! block is visited once (a cycle is an error), the depth is bounded and, on v5,
//! each block's CRC and owning AG are checked.

use std::collections::HashSet;

use vmscrub_blockdev::ReadAt;

use crate::be::{u8_at, u16_at, u32_at, u64_at};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;

/// Deepest AG B+tree followed (the kernel's largest is under 10).
const MAX_LEVELS: u32 = 10;
const SBLOCK_V5_HDR: usize = 56;
const SBLOCK_V4_HDR: usize = 16;
const SBLOCK_CRC_OFFSET: usize = 52;

/// Which AG B+tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgTree {
    Bno,
    Cnt,
    Ino,
    Fino,
    Rmap,
    Refcount,
}

impl AgTree {
    pub(crate) fn name(self) -> &'static str {
        match self {
            AgTree::Bno => "bnobt block",
            AgTree::Cnt => "cntbt block",
            AgTree::Ino => "inobt block",
            AgTree::Fino => "finobt block",
            AgTree::Rmap => "rmapbt block",
            AgTree::Refcount => "refcountbt block",
        }
    }

    /// (v5 magic, v4 magic) — the v5-only trees have no v4 form.
    pub(crate) fn magic(self) -> (&'static [u8; 4], Option<&'static [u8; 4]>) {
        match self {
            AgTree::Bno => (b"AB3B", Some(b"ABTB")),
            AgTree::Cnt => (b"AB3C", Some(b"ABTC")),
            AgTree::Ino => (b"IAB3", Some(b"IABT")),
            AgTree::Fino => (b"FIB3", Some(b"FIBT")),
            AgTree::Rmap => (b"RMB3", None),
            AgTree::Refcount => (b"R3FC", None),
        }
    }

    /// (record, key, pointer) sizes; the rmapbt's nodes hold a low and a high
    /// key per child (overlapping intervals).
    pub(crate) fn sizes(self) -> (usize, usize, usize) {
        match self {
            AgTree::Bno | AgTree::Cnt => (8, 8, 4),
            AgTree::Ino | AgTree::Fino => (16, 4, 4),
            AgTree::Rmap => (24, 40, 4),
            AgTree::Refcount => (12, 4, 4),
        }
    }
}

/// A free extent (bnobt/cntbt record), AG-relative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeExtent {
    pub agbno: u32,
    pub len: u32,
}

/// An inode chunk (inobt/finobt record): 64 inodes from `start_ino` (AG
/// inode number), `holemask` bits marking absent 4-inode groups (sparse inodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InodeChunk {
    pub start_ino: u32,
    pub holemask: u16,
    pub count: u8,
    pub free_count: u8,
    /// Bit `i` set: inode `start_ino + i` is free.
    pub free: u64,
}

/// A reverse mapping: `len` blocks from `agbno` belong to `owner` (an inode
/// number or a negative special owner) at file offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rmap {
    pub agbno: u32,
    pub len: u32,
    pub owner: u64,
    /// Offset in the owner's fork, with the attribute-fork, B+tree-block and
    /// unwritten flags in its top bits.
    pub offset: u64,
}

/// A shared (or CoW staging) extent and how many owners it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refcount {
    pub agbno: u32,
    pub len: u32,
    pub refcount: u32,
}

// Record decoders, shared by the reader and the editor (which reads the
// trees' records raw, with their blocks, to rebuild them).

impl FreeExtent {
    pub(crate) fn decode(r: &[u8]) -> Self {
        FreeExtent {
            agbno: u32_at(r, 0),
            len: u32_at(r, 4),
        }
    }
}

impl InodeChunk {
    /// `sparse`: the sparse-inode record layout (holemask and count in
    /// place of a 32-bit free count).
    pub(crate) fn decode(sparse: bool, r: &[u8]) -> Self {
        let (holemask, count, free_count) = if sparse {
            (u16_at(r, 4), u8_at(r, 6), u8_at(r, 7))
        } else {
            (0, 64, u32_at(r, 4).min(64) as u8)
        };
        InodeChunk {
            start_ino: u32_at(r, 0),
            holemask,
            count,
            free_count,
            free: u64_at(r, 8),
        }
    }
}

impl Rmap {
    pub(crate) fn decode(r: &[u8]) -> Self {
        Rmap {
            agbno: u32_at(r, 0),
            len: u32_at(r, 4),
            owner: u64_at(r, 8),
            offset: u64_at(r, 16),
        }
    }
}

impl Refcount {
    pub(crate) fn decode(r: &[u8]) -> Self {
        Refcount {
            agbno: u32_at(r, 0),
            len: u32_at(r, 4),
            refcount: u32_at(r, 8),
        }
    }
}

impl<D: ReadAt> Xfs<D> {
    /// The free extents of AG `agno`, by block (`AgTree::Bno`) or by size (`AgTree::Cnt`).
    pub fn free_extents(&self, agno: u32, tree: AgTree) -> Result<Vec<FreeExtent>> {
        let (agf, _) = self.ag_headers(agno)?;
        let (root, level) = match tree {
            AgTree::Cnt => (agf.cnt_root, agf.cnt_level),
            _ => (agf.bno_root, agf.bno_level),
        };
        let recs = self.ag_tree_records(agno, tree, root, level)?;
        Ok(recs.iter().map(|r| FreeExtent::decode(r)).collect())
    }

    /// The inode chunks of AG `agno` (`AgTree::Ino`), or those with a free
    /// inode (`AgTree::Fino`, finobt filesystems).
    pub fn inode_chunks(&self, agno: u32, tree: AgTree) -> Result<Vec<InodeChunk>> {
        let (_, agi) = self.ag_headers(agno)?;
        let (root, level) = match tree {
            AgTree::Fino => (agi.free_root, agi.free_level),
            _ => (agi.root, agi.level),
        };
        let sparse = self.sb.incompat & crate::superblock::INCOMPAT_SPINODES != 0;
        let recs = self.ag_tree_records(agno, tree, root, level)?;
        Ok(recs.iter().map(|r| InodeChunk::decode(sparse, r)).collect())
    }

    /// The reverse mappings of AG `agno` (rmapbt filesystems; empty otherwise).
    pub fn rmaps(&self, agno: u32) -> Result<Vec<Rmap>> {
        let (agf, _) = self.ag_headers(agno)?;
        if self.sb.ro_compat & crate::superblock::RO_COMPAT_RMAPBT == 0 {
            return Ok(vec![]);
        }
        let recs = self.ag_tree_records(agno, AgTree::Rmap, agf.rmap_root, agf.rmap_level)?;
        Ok(recs.iter().map(|r| Rmap::decode(r)).collect())
    }

    /// The reference counts of AG `agno` (reflink filesystems; empty otherwise).
    pub fn refcounts(&self, agno: u32) -> Result<Vec<Refcount>> {
        let (agf, _) = self.ag_headers(agno)?;
        if self.sb.ro_compat & crate::superblock::RO_COMPAT_REFLINK == 0 {
            return Ok(vec![]);
        }
        let recs = self.ag_tree_records(
            agno,
            AgTree::Refcount,
            agf.refcount_root,
            agf.refcount_level,
        )?;
        Ok(recs.iter().map(|r| Refcount::decode(r)).collect())
    }

    /// Every leaf record of one AG B+tree (raw bytes, key order) and every
    /// block of the tree: an editor rebuilding a tree reuses its blocks.
    pub(crate) fn ag_tree_contents(
        &self,
        agno: u32,
        tree: AgTree,
        root: u32,
        levels: u32,
    ) -> Result<(Vec<Vec<u8>>, Vec<u32>)> {
        if levels == 0 || levels > MAX_LEVELS {
            return Err(Error::corrupt(
                tree.name(),
                Loc::NONE,
                format!("AG {agno}: {levels} levels"),
            ));
        }
        let mut out = vec![];
        let mut seen = HashSet::new();
        self.ag_tree_block(agno, tree, root, levels - 1, &mut seen, &mut out)?;
        let mut blocks: Vec<u32> = seen.into_iter().collect();
        blocks.sort_unstable();
        Ok((out, blocks))
    }

    /// Every leaf record of one AG B+tree, in key order, as raw bytes.
    fn ag_tree_records(
        &self,
        agno: u32,
        tree: AgTree,
        root: u32,
        levels: u32,
    ) -> Result<Vec<Vec<u8>>> {
        if levels == 0 || levels > MAX_LEVELS {
            return Err(Error::corrupt(
                tree.name(),
                Loc::NONE,
                format!("AG {agno}: {levels} levels"),
            ));
        }
        let mut out = vec![];
        let mut seen = HashSet::new();
        self.ag_tree_block(agno, tree, root, levels - 1, &mut seen, &mut out)?;
        Ok(out)
    }

    fn ag_tree_block(
        &self,
        agno: u32,
        tree: AgTree,
        agbno: u32,
        level: u32,
        seen: &mut HashSet<u32>,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        let fsb = (u64::from(agno) << self.sb.ag_block_log) | u64::from(agbno);
        let buf = self.read_fsb(fsb, tree.name(), Loc::NONE)?;
        let loc = Loc::at(self.fsb_byte(fsb, Loc::NONE)?);
        if !seen.insert(agbno) {
            return Err(Error::corrupt(
                tree.name(),
                loc,
                "a block is reached twice (a cycle)",
            ));
        }
        let v5 = self.sb.has_crc();
        let (m5, m4) = tree.magic();
        let ok = if v5 {
            buf.get(0..4) == Some(m5)
        } else {
            m4.is_some_and(|m| buf.get(0..4) == Some(m))
        };
        if !ok {
            return Err(Error::corrupt(tree.name(), loc, "bad magic"));
        }
        let hdr = if v5 { SBLOCK_V5_HDR } else { SBLOCK_V4_HDR };
        if v5 {
            checksum::verify(self.verify, tree.name(), &buf, SBLOCK_CRC_OFFSET, loc)?;
            if self.verify && u32_at(&buf, 48) != agno {
                return Err(Error::corrupt(tree.name(), loc, "owned by another AG"));
            }
        }
        let got = u32::from(u16_at(&buf, 4));
        let numrecs = usize::from(u16_at(&buf, 6));
        let (rec, key, ptr) = tree.sizes();
        let room = (buf.len() - hdr) / if level == 0 { rec } else { key + ptr };
        if got != level || numrecs > room {
            return Err(Error::corrupt(
                tree.name(),
                loc,
                format!("level {got} (expected {level}), {numrecs} records (room for {room})"),
            ));
        }
        if level == 0 {
            out.extend((0..numrecs).map(|i| buf[hdr + i * rec..hdr + (i + 1) * rec].to_vec()));
            return Ok(());
        }
        let ptrs = hdr + room * key;
        for i in 0..numrecs {
            let child = u32_at(&buf, ptrs + i * ptr);
            if child >= self.sb.ag_blocks {
                return Err(Error::corrupt(
                    tree.name(),
                    loc,
                    format!("pointer to block {child}"),
                ));
            }
            self.ag_tree_block(agno, tree, child, level - 1, seen, out)?;
        }
        Ok(())
    }
}
