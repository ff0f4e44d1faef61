//! Removing one name from a directory, in any of the five forms. A shortform
//! directory lives in the inode (`dir_sf`); the other four keep every entry in
//! data blocks (`dir_data`) and differ only in the index beside them: the block
//! form's leaf inside the same block, the leaf form's single leaf block with
//! its `bests` tail, the node and B+tree forms' leaf blocks plus free-index
//! blocks (`dir_index`). So the removal is one path: find the name (by its
//! hash outside the block form: `dir_lookup`), free the entry in its data
//! block, then stale its hash entry and fix the `bests` wherever the form
//! keeps them. A data block left empty must leave the directory (`dir_free`;
//! xfs_repair junks empty ones). Nothing is converted (a block directory that
//! would fit in the inode stays a block, a leaf that would fit in a block
//! stays a leaf): the kernel would convert, but a consistent directory does
//! not need it.
//!
//! The reads go through the stage, so a second removal in the same directory
//! sees the first.

use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

pub(crate) use super::dir_free::FreedBlocks;
use super::{dir_data, dir_sf};
use crate::bmap::BlockMap;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::{FileType, ForkFormat, Inode};
use crate::superblock::INCOMPAT_PARENT;

/// What the removed name pointed at, for the caller to drop the link, and
/// the directory's own blocks the removal unmapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemovedEntry {
    pub ino: u64,
    pub file_type: Option<FileType>,
    /// Blocks taken out of the directory's data fork (a leaf/node data block
    /// left empty, a free-index block left indexing nothing), already zeroed
    /// in the stage: the caller returns them to free space (owner the
    /// directory, data fork, at `offset`; never shared).
    pub freed: Vec<FreedBlocks>,
}

/// Removes `name` from directory `dir` in any of the five forms, staged: the
/// entry's bytes (name included) cleared into an unused entry merged with its
/// unused neighbours, bestfree recomputed, the hash entry staled, the `bests`
/// of the leaf tail or free index kept right, v5 CRCs recomputed; in a
/// shortform directory the entry is cut out of the inode's fork. The caller
/// handles the child inode and the parent's link count.
pub(crate) fn remove_entry<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    dir: &Inode,
    name: &[u8],
) -> Result<RemovedEntry> {
    if !fs.sb.has_crc() {
        return Err(Error::refused(
            "directory",
            "a version 4 filesystem (no metadata checksums)",
        ));
    }
    // Parent pointers keep each name a second time, in the child's
    // attributes: not edited here. (Case-insensitive names, which hash
    // another way, are refused when the filesystem is opened.)
    if fs.sb.incompat & INCOMPAT_PARENT != 0 {
        return Err(Error::refused(
            "directory",
            "parent pointers (the name is also kept in the child's attributes)",
        ));
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Error::refused(
            "directory entry",
            format!(
                "{:?} is not a removable name",
                String::from_utf8_lossy(name)
            ),
        ));
    }
    // The caller's copy may predate an earlier removal in the same directory.
    let dir = fs.inode(dir.ino)?;
    if dir.file_type() != Some(FileType::Directory) {
        return Err(Error::NotADirectory { inode: dir.ino });
    }
    match dir.format {
        ForkFormat::Local => dir_sf::remove(fs, stage, &dir, name),
        ForkFormat::Extents | ForkFormat::Btree => dir_data::remove(fs, stage, &dir, name),
        ForkFormat::Dev => Err(Error::corrupt(
            "directory",
            Loc::inode(dir.ino),
            "device fork",
        )),
    }
}

/// Where the directory's blocks lie in its fork, in directory blocks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    pub block_size: u64,
    pub dir_block_size: u64,
    /// First directory block of the leaf (hash index) range.
    pub leaf_db: u64,
    /// First directory block of the free-index range.
    pub free_db: u64,
}

/// Byte offsets in the fork where the leaf and free-index blocks start.
const LEAF_OFFSET: u64 = 32 << 30;
const FREE_OFFSET: u64 = 64 << 30;

impl Geometry {
    pub fn of<D: ReadAt>(fs: &Xfs<D>) -> Self {
        let dir_block_size = u64::from(fs.sb.dir_block_size());
        Geometry {
            block_size: u64::from(fs.sb.block_size),
            dir_block_size,
            leaf_db: LEAF_OFFSET / dir_block_size,
            free_db: FREE_OFFSET / dir_block_size,
        }
    }

    fn per(&self) -> u64 {
        self.dir_block_size / self.block_size
    }

    /// The directory blocks in `[lo, hi)` that the map holds, each once.
    pub fn mapped(&self, map: &BlockMap, lo: u64, hi: u64) -> Vec<u64> {
        let per = self.per();
        let mut out = vec![];
        let mut next = lo;
        for e in &map.extents {
            let first = (e.offset / per).max(next);
            let end = e.end().div_ceil(per).min(hi);
            for db in first..end {
                out.push(db);
            }
            next = next.max(end);
        }
        out
    }
}

/// One directory block (possibly several filesystem blocks, not necessarily
/// contiguous on the device), read through the stage.
pub(super) struct DirBlock {
    pub db: u64,
    pub buf: Vec<u8>,
    /// Device byte offset of each filesystem block of the directory block.
    pieces: Vec<u64>,
}

impl DirBlock {
    pub fn read<D: ReadAt>(
        fs: &Xfs<D>,
        geo: &Geometry,
        map: &BlockMap,
        db: u64,
        loc: Loc,
    ) -> Result<DirBlock> {
        let per = geo.per();
        let bs = geo.block_size as usize;
        let mut buf = vec![0u8; geo.dir_block_size as usize];
        let mut pieces = Vec::with_capacity(per as usize);
        for (i, chunk) in buf.chunks_exact_mut(bs).enumerate() {
            let fb = db * per + i as u64;
            let e = map.lookup(fb).filter(|e| !e.unwritten).ok_or_else(|| {
                Error::corrupt(
                    "directory block",
                    loc,
                    format!("directory block {db} is only partly mapped"),
                )
            })?;
            let off = fs.fsb_byte(e.start + (fb - e.offset), loc)?;
            fs.read_bytes(chunk, off, "directory block")?;
            pieces.push(off);
        }
        Ok(DirBlock { db, buf, pieces })
    }

    /// Device byte offset of the block's start.
    pub fn offset(&self) -> u64 {
        self.pieces.first().copied().unwrap_or(0)
    }

    /// The block's `blkno` as its header records it: the first sector.
    pub fn daddr(&self) -> u64 {
        self.offset() / 512
    }

    pub fn write<D: ReadAt>(self, stage: &Staged<D>) -> Result<()> {
        let bs = self.buf.len() / self.pieces.len().max(1);
        for (chunk, off) in self.buf.chunks_exact(bs.max(1)).zip(&self.pieces) {
            stage.patch(*off, chunk).map_err(|source| Error::Io {
                what: "staged directory block",
                offset: *off,
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "dirent_tests.rs"]
mod tests;
