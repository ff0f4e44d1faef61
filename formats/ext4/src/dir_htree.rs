//! Hashed directory indexes (htree): block 0 of an indexed directory is a dx root
//! (fake `.`/`..` entries, an info header, hash → block entries), deeper index
//! blocks are dx nodes (a fake empty entry spanning the block, then entries).
//! Leaves are ordinary directory blocks, so readers may read them linearly; the
//! structure is exposed for the editor, which must keep index tails' checksums right.

use std::collections::HashSet;

use vmscrub_blockdev::ReadAt;

use crate::checksum;
use crate::dir_entry::rec_len_from_disk;
use crate::error::{Error, Loc, Result};
use crate::features::incompat;
use crate::fs::Ext4;
use crate::inode::Inode;
use crate::le::{u8_at, u16_at, u32_at};

/// Size of the checksum tail after the last possible entry (metadata_csum).
pub const DX_TAIL_SIZE: usize = 8;
/// Offset of the count/limit header in a dx root and in a dx node.
pub const ROOT_COUNT_OFFSET: usize = 32;
pub const NODE_COUNT_OFFSET: usize = 8;

/// Hash algorithms of `dx_root_info.hash_version` (and `s_def_hash_version`).
pub mod hash_version {
    pub const LEGACY: u8 = 0;
    pub const HALF_MD4: u8 = 1;
    pub const TEA: u8 = 2;
    pub const LEGACY_UNSIGNED: u8 = 3;
    pub const HALF_MD4_UNSIGNED: u8 = 4;
    pub const TEA_UNSIGNED: u8 = 5;
    pub const SIPHASH: u8 = 6;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DxRootInfo {
    pub hash_version: u8,
    pub info_length: u8,
    pub indirect_levels: u8,
    pub flags: u8,
}

/// A `hash → block` entry. The first entry of a node has no hash (its slot holds
/// the count and limit) and covers everything below the second entry's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DxEntry {
    pub hash: u32,
    pub block: u32,
}

/// The index part of a dx root or dx node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DxNode {
    /// Offset of the count/limit header (32 in a root, 8 in a node).
    pub count_offset: usize,
    pub limit: u16,
    pub count: u16,
    pub entries: Vec<DxEntry>,
}

impl DxNode {
    fn parse(block: &[u8], count_offset: usize, expect_limit: usize, loc: Loc) -> Result<Self> {
        let limit = u16_at(block, count_offset);
        let count = u16_at(block, count_offset + 2);
        if usize::from(limit) != expect_limit {
            return Err(Error::corrupt(
                "htree node",
                loc,
                format!("limit {limit}, expected {expect_limit}"),
            ));
        }
        if count == 0 || count > limit {
            return Err(Error::corrupt(
                "htree node",
                loc,
                format!("count {count} with limit {limit}"),
            ));
        }
        let mut entries = Vec::with_capacity(usize::from(count));
        for i in 0..usize::from(count) {
            let at = count_offset + i * 8;
            entries.push(DxEntry {
                hash: if i == 0 { 0 } else { u32_at(block, at) },
                block: u32_at(block, at + 4),
            });
        }
        Ok(DxNode {
            count_offset,
            limit,
            count,
            entries,
        })
    }

    /// Offset of the checksum tail: after `limit` entries.
    pub fn tail_offset(&self) -> usize {
        self.count_offset + usize::from(self.limit) * 8
    }

    /// The checksum a dx block should carry (metadata_csum): over the used entries
    /// and the tail's reserved word.
    pub fn compute_checksum(&self, inode_seed: u32, block: &[u8]) -> u32 {
        let used = (self.count_offset + usize::from(self.count) * 8).min(block.len());
        let t = self.tail_offset();
        let mut c = checksum::crc32c(inode_seed, &block[..used]);
        c = checksum::crc32c(c, block.get(t..t + 4).unwrap_or(&[]));
        checksum::crc32c(c, &[0; 4])
    }

    pub fn verify_checksum(&self, inode_seed: u32, block: &[u8], loc: Loc) -> Result<()> {
        let t = self.tail_offset();
        if t + DX_TAIL_SIZE > block.len() {
            return Err(Error::corrupt(
                "htree node",
                loc,
                "no room for the checksum tail",
            ));
        }
        let stored = u32_at(block, t + 4);
        let computed = self.compute_checksum(inode_seed, block);
        if stored != computed {
            return Err(Error::ChecksumMismatch {
                structure: "htree node",
                loc,
                stored,
                computed,
            });
        }
        Ok(())
    }
}

/// Entries that fit a root or node, as the kernel computes them.
pub fn dx_limit(block_size: u32, count_offset: usize, csum: bool) -> usize {
    let space =
        (block_size as usize).saturating_sub(count_offset + if csum { DX_TAIL_SIZE } else { 0 });
    space / 8
}

/// Parses the dx root of block 0, returning its info and index.
pub fn parse_root(block: &[u8], csum: bool, loc: Loc) -> Result<(DxRootInfo, DxNode)> {
    let bs = block.len() as u32;
    let bad = |d: &str| Err(Error::corrupt("htree root", loc, d.to_string()));
    // "." (rec_len 12) then ".." spanning the rest of the block.
    if u8_at(block, 6) != 1
        || block.get(8) != Some(&b'.')
        || rec_len_from_disk(u16_at(block, 4), bs) != 12
    {
        return bad("first entry is not '.'");
    }
    if u8_at(block, 18) != 2 || block.get(20..22) != Some(b"..") {
        return bad("second entry is not '..'");
    }
    let info = DxRootInfo {
        hash_version: u8_at(block, 28),
        info_length: u8_at(block, 29),
        indirect_levels: u8_at(block, 30),
        flags: u8_at(block, 31),
    };
    if info.info_length != 8 {
        return bad("dx_root_info length is not 8");
    }
    if info.hash_version > hash_version::SIPHASH {
        return Err(Error::corrupt(
            "htree root",
            loc,
            format!("unknown hash version {}", info.hash_version),
        ));
    }
    let node = DxNode::parse(
        block,
        ROOT_COUNT_OFFSET,
        dx_limit(bs, ROOT_COUNT_OFFSET, csum),
        loc,
    )?;
    Ok((info, node))
}

/// Parses a dx node (an interior index block).
pub fn parse_node(block: &[u8], csum: bool, loc: Loc) -> Result<DxNode> {
    let bs = block.len() as u32;
    if u32_at(block, 0) != 0 || rec_len_from_disk(u16_at(block, 4), bs) != bs {
        return Err(Error::corrupt(
            "htree node",
            loc,
            "fake entry does not span the block",
        ));
    }
    DxNode::parse(
        block,
        NODE_COUNT_OFFSET,
        dx_limit(bs, NODE_COUNT_OFFSET, csum),
        loc,
    )
}

/// Is this block of an indexed directory an index block (the kernel's test: a
/// first entry spanning the whole block; we also require it to be unused)?
pub fn looks_like_dx_node(block: &[u8]) -> bool {
    let bs = block.len() as u32;
    u32_at(block, 0) == 0 && u8_at(block, 6) == 0 && rec_len_from_disk(u16_at(block, 4), bs) == bs
}

/// A whole htree: root, interior nodes and the leaf blocks they point at.
#[derive(Debug, Clone)]
pub struct Htree {
    pub info: DxRootInfo,
    pub root: DxNode,
    /// Interior nodes: (logical block, level below the root starting at 1, node).
    pub nodes: Vec<(u32, u8, DxNode)>,
    /// Logical blocks of the leaves, in hash order.
    pub leaves: Vec<u32>,
}

impl<D: ReadAt> Ext4<D> {
    /// Is `inode` a directory with a hashed index the kernel would use?
    pub fn is_htree_dir(&self, inode: &Inode) -> bool {
        inode.is_dir()
            && inode.has_flag(crate::inode::flags::INDEX)
            && !self.is_inline(inode)
            && self
                .superblock()
                .features
                .has_compat(crate::features::compat::DIR_INDEX)
    }

    /// Walks the htree of a directory (`None` if it is not indexed), checking
    /// levels, limits, block numbers and index checksums.
    pub fn htree(&self, inode: &Inode) -> Result<Option<Htree>> {
        if !self.is_htree_dir(inode) {
            return Ok(None);
        }
        let csum = self.superblock().has_metadata_csum();
        let seed = inode.checksum_seed(self.checksum_seed());
        let map = self.file_map(inode)?;
        let nblocks = inode.size.div_ceil(u64::from(self.block_size()));
        let read = |lblk: u32| -> Result<(u64, Vec<u8>)> {
            let loc = Loc::inode(inode.ino);
            if u64::from(lblk) >= nblocks {
                return Err(Error::corrupt(
                    "htree node",
                    loc,
                    format!("points at block {lblk} past the directory end"),
                ));
            }
            let phys = map.lookup(u64::from(lblk)).ok_or_else(|| {
                Error::corrupt("htree node", loc, format!("points at hole {lblk}"))
            })?;
            Ok((phys, self.read_block_vec(phys, "directory block")?))
        };
        let (phys0, b0) = read(0)?;
        let loc0 = Loc::at(inode.ino, phys0);
        let (info, root) = parse_root(&b0, csum, loc0)?;
        let max_levels = if self.superblock().features.has_incompat(incompat::LARGEDIR) {
            3
        } else {
            2
        };
        if info.indirect_levels >= max_levels {
            return Err(Error::corrupt(
                "htree root",
                loc0,
                format!(
                    "{} indirect levels (at most {})",
                    info.indirect_levels,
                    max_levels - 1
                ),
            ));
        }
        if csum && self.verify_checksums() {
            root.verify_checksum(seed, &b0, loc0)?;
        }
        let mut tree = Htree {
            info,
            root: root.clone(),
            nodes: Vec::new(),
            leaves: Vec::new(),
        };
        let mut visited = HashSet::from([0u32]);
        // Depth-first, so leaves come out in hash order.
        let mut stack: Vec<(u32, u8)> = root.entries.iter().rev().map(|e| (e.block, 1u8)).collect();
        while let Some((lblk, level)) = stack.pop() {
            if !visited.insert(lblk) {
                return Err(Error::corrupt(
                    "htree node",
                    loc0,
                    format!("block {lblk} is referenced twice"),
                ));
            }
            if level > info.indirect_levels {
                tree.leaves.push(lblk);
                continue;
            }
            let (phys, b) = read(lblk)?;
            let loc = Loc::at(inode.ino, phys);
            let node = parse_node(&b, csum, loc)?;
            if csum && self.verify_checksums() {
                node.verify_checksum(seed, &b, loc)?;
            }
            stack.extend(node.entries.iter().rev().map(|e| (e.block, level + 1)));
            tree.nodes.push((lblk, level, node));
        }
        Ok(Some(tree))
    }
}
