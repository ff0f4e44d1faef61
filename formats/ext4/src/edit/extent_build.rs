//! Writing an extent tree for a list of extents, reusing blocks the old tree had.
//!
//! A file only ever shrinks under the editor, so the kept extents always fit in
//! the blocks its old tree used. The new tree is as shallow and as tightly packed
//! as possible: e2fsck reports a tree that "could be narrower" or "could be
//! shorter" (`e2fsck_should_rebuild_extents`), and a packed tree of minimal depth
//! never is.

use crate::extent::{
    ENTRY_SIZE, EXTENT_MAGIC, ExtentHeader, ExtentNode, HEADER_SIZE, INIT_MAX_LEN,
};
use crate::inode::I_BLOCK_SIZE;
use crate::map::Extent;

/// Entries in the root (in `i_block`).
pub(crate) const ROOT_ENTRIES: usize = (I_BLOCK_SIZE - HEADER_SIZE) / ENTRY_SIZE;

/// A built tree: the 60 bytes of `i_block`, and each node block with its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltTree {
    pub(crate) root: [u8; I_BLOCK_SIZE],
    pub(crate) nodes: Vec<(u64, Vec<u8>)>,
}

/// Entries that fit a node block.
pub(crate) fn per_block(block_size: u32) -> usize {
    (block_size as usize - HEADER_SIZE) / ENTRY_SIZE
}

/// Node blocks a tree of `n` extents needs.
pub(crate) fn blocks_needed(n: usize, block_size: u32) -> usize {
    let per = per_block(block_size);
    let mut level = n;
    let mut total = 0;
    while level > ROOT_ENTRIES {
        level = level.div_ceil(per);
        total += level;
    }
    total
}

fn header(buf: &mut [u8], entries: usize, max: usize, depth: u16) {
    buf[0..2].copy_from_slice(&EXTENT_MAGIC.to_le_bytes());
    buf[2..4].copy_from_slice(&(entries as u16).to_le_bytes());
    buf[4..6].copy_from_slice(&(max as u16).to_le_bytes());
    buf[6..8].copy_from_slice(&depth.to_le_bytes());
    buf[8..12].fill(0);
}

fn put_extent(buf: &mut [u8], e: &Extent) {
    let len = if e.uninit {
        e.len as u16 + INIT_MAX_LEN
    } else {
        e.len as u16
    };
    buf[0..4].copy_from_slice(&e.logical.to_le_bytes());
    buf[4..6].copy_from_slice(&len.to_le_bytes());
    buf[6..8].copy_from_slice(&((e.start >> 32) as u16).to_le_bytes());
    buf[8..12].copy_from_slice(&(e.start as u32).to_le_bytes());
}

fn put_index(buf: &mut [u8], logical: u32, child: u64) {
    buf[0..4].copy_from_slice(&logical.to_le_bytes());
    buf[4..8].copy_from_slice(&(child as u32).to_le_bytes());
    buf[8..10].copy_from_slice(&((child >> 32) as u16).to_le_bytes());
    buf[10..12].fill(0);
}

/// Builds a tree for `extents` (sorted, non-overlapping, each at most the
/// extent length limit) from `blocks` (at least [`blocks_needed`] of them; the
/// first ones are used). `inode_seed` is `Some` under metadata_csum: node blocks
/// then get their checksum tail.
pub(crate) fn build(
    extents: &[Extent],
    blocks: &[u64],
    block_size: u32,
    inode_seed: Option<u32>,
) -> Option<BuiltTree> {
    let per = per_block(block_size);
    let bs = block_size as usize;
    let mut nodes: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut next_block = blocks.iter().copied();
    // Current level: (first logical block, node block) per node; starts as leaves.
    let mut depth: u16 = 0;
    let mut level: Vec<(u32, u64)> = Vec::new();
    if extents.len() > ROOT_ENTRIES {
        for chunk in extents.chunks(per) {
            let blk = next_block.next()?;
            let mut buf = vec![0u8; bs];
            header(&mut buf, chunk.len(), per, 0);
            for (i, e) in chunk.iter().enumerate() {
                let at = HEADER_SIZE + i * ENTRY_SIZE;
                put_extent(&mut buf[at..at + ENTRY_SIZE], e);
            }
            level.push((chunk[0].logical, blk));
            nodes.push((blk, buf));
        }
        depth = 1;
        while level.len() > ROOT_ENTRIES {
            let mut up = Vec::new();
            for chunk in level.chunks(per) {
                let blk = next_block.next()?;
                let mut buf = vec![0u8; bs];
                header(&mut buf, chunk.len(), per, depth);
                for (i, &(l, child)) in chunk.iter().enumerate() {
                    let at = HEADER_SIZE + i * ENTRY_SIZE;
                    put_index(&mut buf[at..at + ENTRY_SIZE], l, child);
                }
                up.push((chunk[0].0, blk));
                nodes.push((blk, buf));
            }
            level = up;
            depth += 1;
        }
    }
    let mut root = [0u8; I_BLOCK_SIZE];
    if depth == 0 {
        header(&mut root, extents.len(), ROOT_ENTRIES, 0);
        for (i, e) in extents.iter().enumerate() {
            let at = HEADER_SIZE + i * ENTRY_SIZE;
            put_extent(&mut root[at..at + ENTRY_SIZE], e);
        }
    } else {
        header(&mut root, level.len(), ROOT_ENTRIES, depth);
        for (i, &(l, child)) in level.iter().enumerate() {
            let at = HEADER_SIZE + i * ENTRY_SIZE;
            put_index(&mut root[at..at + ENTRY_SIZE], l, child);
        }
    }
    if let Some(seed) = inode_seed {
        for (_, buf) in &mut nodes {
            let h = ExtentHeader::parse(buf);
            let c = ExtentNode::compute_checksum(seed, buf, &h);
            let t = ExtentNode::tail_offset(&h);
            buf[t..t + 4].copy_from_slice(&c.to_le_bytes());
        }
    }
    Some(BuiltTree { root, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Loc;
    use crate::extent::NodeEntries;

    fn extents(n: usize) -> Vec<Extent> {
        (0..n)
            .map(|i| Extent {
                logical: (i * 2) as u32,
                start: 1000 + (i as u64) * 3,
                len: 1,
                uninit: i % 5 == 0,
            })
            .collect()
    }

    /// Walks a built tree with the reader's node parser and returns its extents.
    fn walk(t: &BuiltTree, bs: u32) -> (u16, Vec<Extent>) {
        fn go(bytes: &[u8], t: &BuiltTree, out: &mut Vec<Extent>) -> u16 {
            let n = ExtentNode::parse(bytes, None, Loc::NONE).unwrap();
            match n.entries {
                NodeEntries::Leaf(v) => out.extend(v),
                NodeEntries::Index(ix) => {
                    for i in ix {
                        let (_, b) = t.nodes.iter().find(|(blk, _)| *blk == i.child).unwrap();
                        let first = out.len();
                        go(b, t, out);
                        assert_eq!(out[first].logical, i.logical, "index start");
                    }
                }
            }
            n.header.depth
        }
        let _ = bs;
        let mut out = Vec::new();
        let d = go(&t.root, t, &mut out);
        (d, out)
    }

    #[test]
    fn depths_and_packing() {
        let bs = 1024; // 84 entries per node
        for (n, depth) in [
            (0, 0),
            (4, 0),
            (5, 1),
            (84 * 4, 1),
            (84 * 4 + 1, 2),
            (84 * 84 * 4 + 1, 3),
        ] {
            let ex = extents(n);
            let need = blocks_needed(n, bs);
            let blocks: Vec<u64> = (0..need as u64).map(|i| 50 + i).collect();
            let t = build(&ex, &blocks, bs, Some(7)).unwrap();
            assert_eq!(t.nodes.len(), need, "{n}");
            let (d, got) = walk(&t, bs);
            assert_eq!((d, got), (depth, ex.clone()), "{n}");
            assert!(build(&ex, &blocks[..need.saturating_sub(1)], bs, None).is_none() || need == 0);
            // Checksums verify as the reader computes them.
            for (_, b) in &t.nodes {
                let h = ExtentHeader::parse(b);
                let at = ExtentNode::tail_offset(&h);
                assert_eq!(
                    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()),
                    ExtentNode::compute_checksum(7, b, &h)
                );
            }
        }
    }
}
