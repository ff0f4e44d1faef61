//! Extent trees: a 12-byte header, then index entries (interior nodes) or extents
//! (leaves); the root lives in `i_block`, deeper nodes in blocks that end with a
//! checksum tail under metadata_csum.
//!
//! The walk is bounded for hostile images: depth at most [`MAX_DEPTH`], each tree
//! block visited once, children must be one level shallower than their parent,
//! extents sorted and non-overlapping, and a file may not map more blocks than the
//! filesystem has.

use std::collections::HashSet;

use vmscrub_blockdev::ReadAt;

use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Ext4;
use crate::inode::{I_BLOCK_SIZE, Inode};
use crate::le::{u16_at, u32_at};
use crate::map::{Extent, FileMap, MetaBlock, MetaKind};

pub const EXTENT_MAGIC: u16 = 0xF30A;
/// The kernel's `EXT4_MAX_EXTENT_DEPTH`.
pub const MAX_DEPTH: u16 = 5;
pub const HEADER_SIZE: usize = 12;
pub const ENTRY_SIZE: usize = 12;
/// An `ee_len` above this marks an uninitialized (preallocated, reads as zeros)
/// extent of `ee_len - 32768` blocks.
pub const INIT_MAX_LEN: u16 = 32768;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentHeader {
    pub magic: u16,
    pub entries: u16,
    pub max: u16,
    pub depth: u16,
    pub generation: u32,
}

impl ExtentHeader {
    pub fn parse(b: &[u8]) -> Self {
        ExtentHeader {
            magic: u16_at(b, 0),
            entries: u16_at(b, 2),
            max: u16_at(b, 4),
            depth: u16_at(b, 6),
            generation: u32_at(b, 8),
        }
    }
}

/// An interior-node entry: the subtree for logical blocks from `logical` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentIndex {
    pub logical: u32,
    pub child: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEntries {
    Index(Vec<ExtentIndex>),
    Leaf(Vec<Extent>),
}

/// One node of an extent tree, parsed and checked on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentNode {
    /// The block holding the node; `None` for the root in `i_block`.
    pub block: Option<u64>,
    pub header: ExtentHeader,
    pub entries: NodeEntries,
}

impl ExtentNode {
    /// Parses a node from `bytes` (`i_block` for the root, a whole block otherwise).
    pub fn parse(bytes: &[u8], block: Option<u64>, loc: Loc) -> Result<Self> {
        let bad = |d: String| Err(Error::corrupt("extent header", loc, d));
        let h = ExtentHeader::parse(bytes);
        if h.magic != EXTENT_MAGIC {
            return bad(format!("bad magic {:#06x}", h.magic));
        }
        if h.depth > MAX_DEPTH {
            return bad(format!("depth {} exceeds {MAX_DEPTH}", h.depth));
        }
        let room = (bytes.len().saturating_sub(HEADER_SIZE) / ENTRY_SIZE) as u16;
        if h.max > room || h.max == 0 {
            return bad(format!("eh_max {} (room for {room})", h.max));
        }
        if h.entries > h.max {
            return bad(format!("eh_entries {} > eh_max {}", h.entries, h.max));
        }
        let entry =
            |i: usize| &bytes[HEADER_SIZE + i * ENTRY_SIZE..HEADER_SIZE + (i + 1) * ENTRY_SIZE];
        let n = usize::from(h.entries);
        let entries = if h.depth == 0 {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                let e = entry(i);
                let raw_len = u16_at(e, 4);
                let (len, uninit) = if raw_len > INIT_MAX_LEN {
                    (raw_len - INIT_MAX_LEN, true)
                } else {
                    (raw_len, false)
                };
                v.push(Extent {
                    logical: u32_at(e, 0),
                    start: u64::from(u32_at(e, 8)) | (u64::from(u16_at(e, 6)) << 32),
                    len: u32::from(len),
                    uninit,
                });
            }
            NodeEntries::Leaf(v)
        } else {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                let e = entry(i);
                v.push(ExtentIndex {
                    logical: u32_at(e, 0),
                    child: u64::from(u32_at(e, 4)) | (u64::from(u16_at(e, 8)) << 32),
                });
            }
            NodeEntries::Index(v)
        };
        Ok(ExtentNode {
            block,
            header: h,
            entries,
        })
    }

    /// Offset of the checksum tail in a non-root node: after `eh_max` entries.
    pub fn tail_offset(header: &ExtentHeader) -> usize {
        HEADER_SIZE + usize::from(header.max) * ENTRY_SIZE
    }

    /// The checksum a node block should carry in its tail (metadata_csum).
    pub fn compute_checksum(inode_seed: u32, block: &[u8], header: &ExtentHeader) -> u32 {
        let end = Self::tail_offset(header).min(block.len());
        checksum::crc32c(inode_seed, &block[..end])
    }
}

/// An extent tree with every node visited: what the editor frees and rewrites.
#[derive(Debug, Clone, Default)]
pub struct ExtentTree {
    pub depth: u16,
    /// Every non-root node, parents before children.
    pub nodes: Vec<ExtentNode>,
    /// All leaf extents in logical order.
    pub extents: Vec<Extent>,
}

impl<D: ReadAt> Ext4<D> {
    /// Walks the extent tree of `inode`, checking every node.
    pub fn extent_tree(&self, inode: &Inode) -> Result<ExtentTree> {
        let ino = inode.ino;
        let root = ExtentNode::parse(&inode.i_block[..I_BLOCK_SIZE], None, Loc::inode(ino))?;
        let mut tree = ExtentTree {
            depth: root.header.depth,
            ..Default::default()
        };
        let mut visited = HashSet::new();
        let mut mapped: u64 = 0;
        let seed = inode.checksum_seed(self.checksum_seed());
        self.walk_node(
            inode,
            seed,
            &root,
            0,
            u64::from(u32::MAX) + 1,
            &mut visited,
            &mut mapped,
            &mut tree,
        )?;
        Ok(tree)
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_node(
        &self,
        inode: &Inode,
        seed: u32,
        node: &ExtentNode,
        lo: u64,
        hi: u64,
        visited: &mut HashSet<u64>,
        mapped: &mut u64,
        tree: &mut ExtentTree,
    ) -> Result<()> {
        let ino = inode.ino;
        let loc = match node.block {
            Some(b) => Loc::at(ino, b),
            None => Loc::inode(ino),
        };
        match &node.entries {
            NodeEntries::Leaf(extents) => {
                let mut next = lo;
                for e in extents {
                    let l = u64::from(e.logical);
                    let end = l + u64::from(e.len);
                    if e.len == 0 {
                        return Err(Error::corrupt(
                            "extent",
                            loc,
                            format!("zero-length extent at logical block {l}"),
                        ));
                    }
                    if l < next || end > hi {
                        return Err(Error::corrupt(
                            "extent",
                            loc,
                            format!("extent {l}..{end} overlaps or leaves its range {next}..{hi}"),
                        ));
                    }
                    self.check_blocks("extent", loc, e.start, u64::from(e.len))?;
                    *mapped += u64::from(e.len);
                    if *mapped > self.superblock().blocks_count {
                        return Err(Error::corrupt(
                            "extent tree",
                            loc,
                            "maps more blocks than the filesystem has",
                        ));
                    }
                    next = end;
                    tree.extents.push(*e);
                }
            }
            NodeEntries::Index(indexes) => {
                for (i, ix) in indexes.iter().enumerate() {
                    let start = u64::from(ix.logical);
                    let end = indexes.get(i + 1).map_or(hi, |n| u64::from(n.logical));
                    let in_order = i == 0 || start > u64::from(indexes[i - 1].logical);
                    if !in_order || start < lo || start >= end || end > hi {
                        return Err(Error::corrupt(
                            "extent index",
                            loc,
                            format!(
                                "index entry {i} at logical block {start} is out of order or outside {lo}..{hi}"
                            ),
                        ));
                    }
                    self.check_blocks("extent index", loc, ix.child, 1)?;
                    if !visited.insert(ix.child) {
                        return Err(Error::corrupt(
                            "extent tree",
                            loc,
                            format!("block {} is referenced twice (a loop)", ix.child),
                        ));
                    }
                    let buf = self.read_block_vec(ix.child, "extent tree block")?;
                    let child = ExtentNode::parse(&buf, Some(ix.child), Loc::at(ino, ix.child))?;
                    if child.header.depth + 1 != node.header.depth {
                        return Err(Error::corrupt(
                            "extent header",
                            Loc::at(ino, ix.child),
                            format!(
                                "depth {} under a node of depth {}",
                                child.header.depth, node.header.depth
                            ),
                        ));
                    }
                    if self.superblock().has_metadata_csum() && self.verify_checksums() {
                        let off = ExtentNode::tail_offset(&child.header);
                        if off + 4 > buf.len() {
                            return Err(Error::corrupt(
                                "extent block",
                                Loc::at(ino, ix.child),
                                "no room for the checksum tail",
                            ));
                        }
                        let stored = u32_at(&buf, off);
                        let computed = ExtentNode::compute_checksum(seed, &buf, &child.header);
                        if stored != computed {
                            return Err(Error::ChecksumMismatch {
                                structure: "extent block",
                                loc: Loc::at(ino, ix.child),
                                stored,
                                computed,
                            });
                        }
                    }
                    tree.nodes.push(child.clone());
                    self.walk_node(inode, seed, &child, start, end, visited, mapped, tree)?;
                }
            }
        }
        Ok(())
    }

    /// The data extents and tree blocks of an extent-mapped inode.
    pub(crate) fn extent_map(&self, inode: &Inode) -> Result<FileMap> {
        let tree = self.extent_tree(inode)?;
        let meta = tree
            .nodes
            .iter()
            .filter_map(|n| {
                n.block.map(|b| MetaBlock {
                    block: b,
                    kind: MetaKind::ExtentNode {
                        depth: n.header.depth,
                    },
                })
            })
            .collect();
        Ok(FileMap {
            extents: tree.extents,
            meta,
        })
    }
}
