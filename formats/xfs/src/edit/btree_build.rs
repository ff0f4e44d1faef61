//! Rebuilds an AG B+tree from its full record set, bottom-up, into blocks the
//! caller hands over (the way `xfs_repair` phase 5 rebuilds trees): simpler and
//! easier to get right than splitting and joining blocks in place, and every
//! block it writes is whole (header, keys, pointers, CRC), so no stale byte of
//! the old tree survives in a block the new one uses.
//!
//! Blocks are packed full and evenly: every non-root block then holds at least
//! half its capacity (the minrecs `xfs_repair` checks) and the tree uses the
//! fewest blocks its records allow, so a tree whose record count did not grow
//! never needs more blocks than it had.

use std::cmp::Ordering;
use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use crate::agbtree::AgTree;
use crate::be::{u32_at, u64_at};
use crate::checksum;
use crate::error::{Error, Result};
use crate::fs::Xfs;

/// Short-form v5 block header size and its fields' offsets.
pub(crate) const HDR: usize = 56;
const CRC_OFF: usize = 52;
pub(crate) const NULLAGBLOCK: u32 = u32::MAX;
/// The rmapbt offset field's unwritten flag: a record attribute, not part of
/// the key (the kernel masks it out of keys).
pub(crate) const RMAP_UNWRITTEN: u64 = 1 << 61;
/// Deepest tree built (the kernel's AG trees stay well under this).
const MAX_LEVELS: usize = 9;

/// A tree as built: where its root is, how tall it is, which blocks it uses.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub root: u32,
    pub levels: u32,
    pub blocks: Vec<u32>,
}

/// Records per leaf and (key, pointer) pairs per node in one block.
fn capacities(tree: AgTree, block_size: usize) -> (usize, usize) {
    let (rec, key, ptr) = tree.sizes();
    let room = block_size.saturating_sub(HDR);
    ((room / rec).max(2), (room / (key + ptr)).max(2))
}

/// Blocks per level, leaves first, for `n` records packed full.
fn shape(tree: AgTree, block_size: usize, n: usize) -> Vec<usize> {
    let (leaf, node) = capacities(tree, block_size);
    let mut levels = vec![n.div_ceil(leaf).max(1)];
    while let Some(&last) = levels.last() {
        if last <= 1 || levels.len() > MAX_LEVELS {
            break;
        }
        levels.push(last.div_ceil(node));
    }
    levels
}

/// How many blocks a tree of `n` records takes.
pub(crate) fn blocks_needed(tree: AgTree, block_size: usize, n: usize) -> usize {
    shape(tree, block_size, n).iter().sum()
}

/// `n` items cut into `k` runs whose sizes differ by at most one.
fn runs(n: usize, k: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::with_capacity(k);
    let mut at = 0;
    for i in 0..k {
        let len = n / k + usize::from(i < n % k);
        out.push(at..at + len);
        at += len;
    }
    out
}

/// The low key of a record, in the byte layout node keys use.
fn low_key(tree: AgTree, rec: &[u8]) -> Vec<u8> {
    match tree {
        AgTree::Bno | AgTree::Cnt => rec[0..8].to_vec(),
        AgTree::Ino | AgTree::Fino | AgTree::Refcount => rec[0..4].to_vec(),
        AgTree::Rmap => {
            let mut k = rec[0..4].to_vec();
            k.extend_from_slice(&rec[8..16]);
            let off = u64_at(rec, 16) & !RMAP_UNWRITTEN;
            k.extend_from_slice(&off.to_be_bytes());
            k
        }
    }
}

/// The highest key a record covers (overlapping rmapbt only): its last block,
/// and for file data its last file offset too.
fn rmap_high_key(rec: &[u8]) -> Vec<u8> {
    let adj = u32_at(rec, 4).saturating_sub(1);
    let owner = u64_at(rec, 8);
    let mut off = u64_at(rec, 16) & !RMAP_UNWRITTEN;
    let non_inode = owner >> 63 != 0;
    let bmbt = off & (1 << 62) != 0;
    if !non_inode && !bmbt {
        let mask = (1u64 << 54) - 1;
        off = ((off & mask).wrapping_add(u64::from(adj)) & mask) | (off & !mask);
    }
    let mut k = u32_at(rec, 0).wrapping_add(adj).to_be_bytes().to_vec();
    k.extend_from_slice(&owner.to_be_bytes());
    k.extend_from_slice(&off.to_be_bytes());
    k
}

/// Orders rmapbt keys as the kernel does: block, owner, then offset.
fn rmap_key_cmp(a: &[u8], b: &[u8]) -> Ordering {
    (u32_at(a, 0), u64_at(a, 4), u64_at(a, 12)).cmp(&(u32_at(b, 0), u64_at(b, 4), u64_at(b, 12)))
}

/// One block's keys as its parent stores them: low key, plus the high key
/// on the rmapbt.
#[derive(Clone)]
struct Keys {
    low: Vec<u8>,
    high: Option<Vec<u8>>,
}

impl Keys {
    fn bytes(&self) -> Vec<u8> {
        let mut k = self.low.clone();
        if let Some(h) = &self.high {
            k.extend_from_slice(h);
        }
        k
    }
}

/// What every block of one tree shares: the tree, the AG, the stamp fields.
pub(crate) struct TreeCtx<'a, D> {
    pub fs: &'a Xfs<Arc<Staged<D>>>,
    pub stage: &'a Staged<D>,
    pub agno: u32,
    /// LSN stamped in each block: one not above the log head.
    pub lsn: u64,
}

impl<D: ReadAt> TreeCtx<'_, D> {
    /// Builds `tree` holding `recs` (sorted, raw) into exactly the first
    /// `blocks_needed` of `pool`, staged. Refuses when the pool is short.
    pub(crate) fn build(&self, tree: AgTree, recs: &[Vec<u8>], pool: &[u32]) -> Result<Built> {
        let bs = self.fs.sb.block_size as usize;
        let shape = shape(tree, bs, recs.len());
        if shape.len() > MAX_LEVELS {
            return Err(Error::refused(
                tree.name(),
                "the rebuilt tree would be too tall",
            ));
        }
        let need: usize = shape.iter().sum();
        if need > pool.len() {
            return Err(Error::refused(
                tree.name(),
                format!(
                    "AG {}: the rebuilt tree needs {need} blocks, {} are at hand",
                    self.agno,
                    pool.len()
                ),
            ));
        }
        let mut taken = pool[..need].to_vec();
        taken.sort_unstable();
        let mut next = taken.iter().copied();
        // Leaves.
        let leaf_blocks: Vec<u32> = next.by_ref().take(shape[0]).collect();
        let mut children: Vec<(u32, Keys)> = vec![];
        for (i, run) in runs(recs.len(), shape[0]).into_iter().enumerate() {
            let slice = &recs[run];
            let mut body = Vec::with_capacity(slice.len() * tree.sizes().0);
            for r in slice {
                body.extend_from_slice(r);
            }
            let keys = Keys {
                low: slice.first().map(|r| low_key(tree, r)).unwrap_or_else(|| {
                    vec![
                        0;
                        if tree == AgTree::Rmap {
                            20
                        } else {
                            tree.sizes().1
                        }
                    ]
                }),
                high: (tree == AgTree::Rmap).then(|| {
                    slice
                        .iter()
                        .map(|r| rmap_high_key(r))
                        .max_by(|a, b| rmap_key_cmp(a, b))
                        .unwrap_or_else(|| vec![0; 20])
                }),
            };
            self.write(tree, &leaf_blocks, i, 0, slice.len(), &body)?;
            children.push((leaf_blocks[i], keys));
        }
        // Nodes, level by level.
        for (level, &count) in shape.iter().enumerate().skip(1) {
            let blocks: Vec<u32> = next.by_ref().take(count).collect();
            let (_, node_max) = capacities(tree, bs);
            let keylen = tree.sizes().1;
            let mut parents = vec![];
            for (i, run) in runs(children.len(), count).into_iter().enumerate() {
                let slice = &children[run];
                let mut body = vec![0u8; node_max * (keylen + 4)];
                for (j, (ptr, keys)) in slice.iter().enumerate() {
                    let kb = keys.bytes();
                    body[j * keylen..j * keylen + kb.len()].copy_from_slice(&kb);
                    let p = node_max * keylen + j * 4;
                    body[p..p + 4].copy_from_slice(&ptr.to_be_bytes());
                }
                let keys = Keys {
                    low: slice.first().map(|c| c.1.low.clone()).unwrap_or_default(),
                    high: (tree == AgTree::Rmap).then(|| {
                        slice
                            .iter()
                            .filter_map(|c| c.1.high.clone())
                            .max_by(|a, b| rmap_key_cmp(a, b))
                            .unwrap_or_default()
                    }),
                };
                self.write(tree, &blocks, i, level as u16, slice.len(), &body)?;
                parents.push((blocks[i], keys));
            }
            children = parents;
        }
        let root = children.first().map(|c| c.0).unwrap_or(NULLAGBLOCK);
        Ok(Built {
            root,
            levels: shape.len() as u32,
            blocks: taken,
        })
    }

    /// Stages block `i` of a level (`blocks` in sibling order).
    fn write(
        &self,
        tree: AgTree,
        blocks: &[u32],
        i: usize,
        level: u16,
        numrecs: usize,
        body: &[u8],
    ) -> Result<()> {
        let sb = &self.fs.sb;
        let bs = sb.block_size as usize;
        let agbno = blocks[i];
        let left = if i == 0 { NULLAGBLOCK } else { blocks[i - 1] };
        let right = blocks.get(i + 1).copied().unwrap_or(NULLAGBLOCK);
        let byte = ag_block_byte(self.fs, self.agno, agbno)?;
        let mut b = vec![0u8; bs];
        b[0..4].copy_from_slice(tree.magic().0);
        b[4..6].copy_from_slice(&level.to_be_bytes());
        b[6..8].copy_from_slice(&(numrecs as u16).to_be_bytes());
        b[8..12].copy_from_slice(&left.to_be_bytes());
        b[12..16].copy_from_slice(&right.to_be_bytes());
        b[16..24].copy_from_slice(&(byte / 512).to_be_bytes());
        b[24..32].copy_from_slice(&self.lsn.to_be_bytes());
        b[32..48].copy_from_slice(&sb.metadata_uuid());
        b[48..52].copy_from_slice(&self.agno.to_be_bytes());
        let n = body.len().min(bs - HDR);
        b[HDR..HDR + n].copy_from_slice(&body[..n]);
        checksum::store(&mut b, CRC_OFF);
        self.stage.put_block(byte / u64::from(sb.block_size), b);
        Ok(())
    }
}

/// Device byte offset of block `agbno` of AG `agno`.
pub(crate) fn ag_block_byte<D: ReadAt>(fs: &Xfs<D>, agno: u32, agbno: u32) -> Result<u64> {
    let fsb = (u64::from(agno) << fs.sb.ag_block_log) | u64::from(agbno);
    fs.fsb_byte(fsb, crate::error::Loc::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_runs_respect_half_full() {
        let (leaf, _) = capacities(AgTree::Bno, 4096);
        assert_eq!(leaf, 505);
        for n in [0, 1, 505, 506, 1011, 5000] {
            let s = shape(AgTree::Bno, 4096, n);
            let r = runs(n, s[0]);
            assert_eq!(r.iter().map(|r| r.len()).sum::<usize>(), n);
            if s[0] > 1 {
                assert!(r.iter().all(|r| r.len() >= leaf / 2 && r.len() <= leaf));
            }
        }
        assert_eq!(shape(AgTree::Bno, 4096, 506), vec![2, 1]);
        assert_eq!(shape(AgTree::Bno, 4096, 0), vec![1]);
    }

    #[test]
    fn rmap_high_key_spans_blocks_and_offsets() {
        let mut rec = vec![0u8; 24];
        rec[0..4].copy_from_slice(&100u32.to_be_bytes());
        rec[4..8].copy_from_slice(&8u32.to_be_bytes());
        rec[8..16].copy_from_slice(&131u64.to_be_bytes());
        rec[16..24].copy_from_slice(&(RMAP_UNWRITTEN | 40).to_be_bytes());
        let k = rmap_high_key(&rec);
        assert_eq!(u32_at(&k, 0), 107);
        assert_eq!(u64_at(&k, 12), 47, "unwritten is masked, offset advanced");
        let low = low_key(AgTree::Rmap, &rec);
        assert_eq!(u64_at(&low, 12), 40);
        assert_eq!(rmap_key_cmp(&low, &k), Ordering::Less);
    }
}
