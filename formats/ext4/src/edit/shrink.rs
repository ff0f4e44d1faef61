//! Truncating and rewriting a regular file with content no longer than before.
//!
//! The file keeps its inode (number, owner, mode, xattrs). Its first
//! `ceil(len / block_size)` logical blocks are kept and rewritten whole (new
//! content, zeros after it), everything after them — data, and extent or indirect
//! blocks no longer needed — is freed, and the slack after the new end is returned
//! for zeroing too. Blocks are never allocated: new content over a hole, or inline
//! data that would have to grow, is refused. Uninitialized extents in the kept
//! range become initialized and are written in full: their blocks may still hold
//! old content (`FALLOC_FL_ZERO_RANGE` marks extents unwritten without clearing
//! them), which must not survive a rewrite.
//!
//! Inline files stay inline: the content goes to `i_block` and the `system.data`
//! value (which shrinks in place; the freed value bytes are zeroed).

use std::collections::HashSet;

use vmscrub_blockdev::WriteAt;

use crate::block_map::{DIND_BLOCK, DIRECT_BLOCKS, IND_BLOCK, TIND_BLOCK};
use crate::error::{Error, Loc};
use crate::inline_data::{SYSTEM_DATA_INDEX, SYSTEM_DATA_NAME};
use crate::inode::{FileType, I_BLOCK_SIZE, Inode, flags, off as ioff};
use crate::map::Extent;

use super::error::{EditError, EditResult};
use super::paths::xattr_entry_hash;
use super::{Editor, Op, Shrunk, extent_build, inode_raw};

/// `EXT4_EOFBLOCKS_FL`: obsolete "blocks past EOF" marker, meaningless after a shrink.
const EOFBLOCKS_FL: u32 = 0x0040_0000;

/// A run of kept logical blocks.
#[derive(Debug, Clone, Copy)]
struct Run {
    logical: u64,
    start: u64,
    len: u64,
}

impl<D: WriteAt> Editor<D> {
    pub(crate) fn shrink_op(
        &mut self,
        op: &mut Op,
        path: &[u8],
        content: &[u8],
    ) -> EditResult<Shrunk> {
        let loc = self.locate(path)?;
        let inode = self.fs.inode(loc.slot.ino)?;
        self.check_linked(&inode)?;
        let ft = inode.file_type();
        if ft != FileType::Regular {
            return Err(EditError::NotARegularFile {
                path: path.to_vec(),
                kind: ft.name(),
            });
        }
        let n = content.len() as u64;
        if n > inode.size {
            return Err(EditError::ContentTooLong {
                path: path.to_vec(),
                len: n,
                size: inode.size,
            });
        }
        let freed = if self.fs.is_inline(&inode) {
            self.shrink_inline(path, &inode, content)?;
            0
        } else if inode.has_flag(flags::EXTENTS) {
            self.shrink_extents(op, path, &inode, content)?
        } else {
            self.shrink_block_map(op, path, &inode, content)?
        };
        Ok(Shrunk {
            ino: inode.ino,
            old_size: inode.size,
            new_size: n,
            blocks_freed: freed,
        })
    }

    fn finish_inode(&self, inode: &Inode, raw: &mut [u8], n: u64, freed: u64) -> EditResult<()> {
        let bs = self.fs.block_size();
        let per = u64::from(bs / 512);
        let sectors = inode_raw::sectors(inode, bs);
        let left = sectors.checked_sub(freed * per).ok_or_else(|| {
            Error::corrupt(
                "inode",
                Loc::inode(inode.ino),
                format!("i_blocks {sectors} sectors is less than the {freed} blocks it owns"),
            )
        })?;
        inode_raw::set_sectors(raw, left, bs);
        inode_raw::set_size(raw, n);
        let fl = inode_raw::get_u32(raw, ioff::FLAGS) & !EOFBLOCKS_FL;
        inode_raw::put_u32(raw, ioff::FLAGS, fl);
        if let Some(t) = self.opts.time {
            inode_raw::touch(raw, t);
        }
        self.put_inode(inode.ino, raw)
    }

    fn shrink_inline(&self, path: &[u8], inode: &Inode, content: &[u8]) -> EditResult<()> {
        let loc = Loc::inode(inode.ino);
        let mut raw = inode.raw.clone();
        let entries = self.fs.inode_xattr_entries(inode)?;
        let sd = entries
            .iter()
            .find(|e| e.name_index == SYSTEM_DATA_INDEX && e.name_suffix == SYSTEM_DATA_NAME);
        let cap = I_BLOCK_SIZE + sd.map_or(0, |e| e.value_size as usize);
        if content.len() > cap {
            return Err(EditError::NeedsAllocation {
                path: path.to_vec(),
                detail: format!(
                    "{} bytes do not fit the {cap} bytes of inline data the file has",
                    content.len()
                ),
            });
        }
        let head = content.len().min(I_BLOCK_SIZE);
        let ib = &mut raw[ioff::BLOCK..ioff::BLOCK + I_BLOCK_SIZE];
        ib.fill(0);
        ib[..head].copy_from_slice(&content[..head]);
        if let Some(e) = sd {
            if e.value_inum != 0 {
                return Err(
                    Error::corrupt("inline data", loc, "system.data in an ea_inode").into(),
                );
            }
            let area = inode.xattr_area_offset();
            let base = area + 4 + usize::from(e.value_offs);
            let old = (e.value_size as usize).div_ceil(4) * 4;
            let rest = &content[head..];
            let region = raw.get_mut(base..base + old).ok_or_else(|| {
                Error::corrupt("inline data", loc, "system.data lies outside the inode")
            })?;
            region.fill(0);
            region[..rest.len()].copy_from_slice(rest);
            let entry = area + e.entry_offset;
            inode_raw::put_u32(&mut raw, entry + 8, rest.len() as u32);
            if e.hash != 0 {
                let h = xattr_entry_hash(&e.name_suffix, rest);
                inode_raw::put_u32(&mut raw, entry + 12, h);
            }
        }
        self.finish_inode(inode, &mut raw, content.len() as u64, 0)
    }

    /// Writes `content` over kept runs (whole blocks, zero-padded) and records the
    /// slack after its end. `runs` must cover every block with non-zero content.
    fn write_runs(&self, op: &mut Op, runs: &[Run], content: &[u8]) {
        let bs = self.fs.block_size() as usize;
        let n = content.len();
        for r in runs {
            for i in 0..r.len {
                let l = (r.logical + i) as usize;
                let mut data = vec![0u8; bs];
                let from = (l * bs).min(n);
                let to = ((l + 1) * bs).min(n);
                data[..to - from].copy_from_slice(&content[from..to]);
                let phys = r.start + i;
                self.stage.put_block(phys, data);
                if !n.is_multiple_of(bs) && l == n / bs {
                    let b = phys * bs as u64;
                    op.zero.insert(b + (n % bs) as u64..b + bs as u64);
                }
            }
        }
    }

    /// Fails if any block of `[0, k)` with non-zero content is not in `runs`.
    fn check_holes(&self, path: &[u8], runs: &[Run], content: &[u8], k: u64) -> EditResult<()> {
        let bs = u64::from(self.fs.block_size());
        let mut covered: Vec<(u64, u64)> = runs
            .iter()
            .map(|r| (r.logical, r.logical + r.len))
            .collect();
        covered.sort_unstable();
        let mut next = 0u64;
        let mut gaps = Vec::new();
        for (a, b) in covered {
            if a > next {
                gaps.push((next, a));
            }
            next = next.max(b);
        }
        if next < k {
            gaps.push((next, k));
        }
        for (a, b) in gaps {
            let from = (a * bs).min(content.len() as u64) as usize;
            let to = (b * bs).min(content.len() as u64) as usize;
            if content[from..to].iter().any(|&c| c != 0) {
                return Err(EditError::NeedsAllocation {
                    path: path.to_vec(),
                    detail: format!("logical blocks {a}..{b} are a hole"),
                });
            }
        }
        Ok(())
    }

    fn shrink_extents(
        &mut self,
        op: &mut Op,
        path: &[u8],
        inode: &Inode,
        content: &[u8],
    ) -> EditResult<u64> {
        let ino = inode.ino;
        let bs = u64::from(self.fs.block_size());
        let n = content.len() as u64;
        let k = n.div_ceil(bs);
        let tree = self.fs.extent_tree(inode)?;
        let mut freed = 0u64;
        let mut kept: Vec<Extent> = Vec::new();
        for e in &tree.extents {
            let l = u64::from(e.logical);
            if l >= k {
                op.frees.add_blocks(e.physical(), ino)?;
                freed += u64::from(e.len);
            } else if e.logical_end() > k {
                let keep = (k - l) as u32;
                kept.push(Extent { len: keep, ..*e });
                op.frees
                    .add_blocks(e.start + u64::from(keep)..e.start + u64::from(e.len), ino)?;
                freed += u64::from(e.len - keep);
            } else {
                kept.push(*e);
            }
        }
        // Every kept block is written in full, so every kept extent is initialized.
        let mut runs = Vec::new();
        for e in &mut kept {
            e.uninit = false;
            runs.push(Run {
                logical: u64::from(e.logical),
                start: e.start,
                len: u64::from(e.len),
            });
        }
        self.check_holes(path, &runs, content, k)?;
        self.write_runs(op, &runs, content);
        // The tree, rebuilt packed from the old tree's own blocks.
        let mut old: Vec<u64> = tree.nodes.iter().filter_map(|nd| nd.block).collect();
        old.sort_unstable();
        let need = extent_build::blocks_needed(kept.len(), self.fs.block_size());
        let seed = self
            .fs
            .superblock()
            .has_metadata_csum()
            .then(|| inode.checksum_seed(self.fs.checksum_seed()));
        let built =
            extent_build::build(&kept, &old, self.fs.block_size(), seed).ok_or_else(|| {
                Error::corrupt(
                    "extent tree",
                    Loc::inode(ino),
                    "fewer tree blocks than its extents need",
                )
            })?;
        for b in old.iter().skip(need) {
            op.frees.add_blocks(*b..*b + 1, ino)?;
            freed += 1;
        }
        for (b, data) in built.nodes {
            self.stage.put_block(b, data);
        }
        let mut raw = inode.raw.clone();
        raw[ioff::BLOCK..ioff::BLOCK + I_BLOCK_SIZE].copy_from_slice(&built.root);
        self.finish_inode(inode, &mut raw, n, freed)?;
        Ok(freed)
    }

    fn shrink_block_map(
        &mut self,
        op: &mut Op,
        path: &[u8],
        inode: &Inode,
        content: &[u8],
    ) -> EditResult<u64> {
        let ino = inode.ino;
        let bs = u64::from(self.fs.block_size());
        let n = content.len() as u64;
        let k = n.div_ceil(bs);
        let map = self.fs.block_map(inode)?;
        let mut freed = 0u64;
        let mut runs = Vec::new();
        for e in &map.extents {
            let l = u64::from(e.logical);
            if l >= k {
                op.frees.add_blocks(e.physical(), ino)?;
                freed += u64::from(e.len);
            } else {
                let keep = (k - l).min(u64::from(e.len));
                runs.push(Run {
                    logical: l,
                    start: e.start,
                    len: keep,
                });
                if keep < u64::from(e.len) {
                    op.frees
                        .add_blocks(e.start + keep..e.start + u64::from(e.len), ino)?;
                    freed += u64::from(e.len) - keep;
                }
            }
        }
        self.check_holes(path, &runs, content, k)?;
        self.write_runs(op, &runs, content);
        let mut raw = inode.raw.clone();
        let per = bs / 4;
        let mut kept_meta = HashSet::new();
        for i in 0..DIRECT_BLOCKS {
            if i as u64 >= k {
                inode_raw::put_u32(&mut raw, ioff::BLOCK + i * 4, 0);
            }
        }
        let mut base = DIRECT_BLOCKS as u64;
        for (slot, level) in [(IND_BLOCK, 1u32), (DIND_BLOCK, 2), (TIND_BLOCK, 3)] {
            let at = ioff::BLOCK + slot * 4;
            let p = u64::from(inode_raw::get_u32(&raw, at));
            if p != 0 && !self.trim_indirect(p, level, base, k, per, &mut kept_meta)? {
                inode_raw::put_u32(&mut raw, at, 0);
            }
            base += per.pow(level);
        }
        for m in &map.meta {
            if !kept_meta.contains(&m.block) {
                op.frees.add_blocks(m.block..m.block + 1, ino)?;
                freed += 1;
            }
        }
        self.finish_inode(inode, &mut raw, n, freed)?;
        Ok(freed)
    }

    /// Clears the pointers of indirect block `block` (mapping logical blocks from
    /// `base`) that reach `k` or beyond; returns whether it still maps anything
    /// (and so stays). The structure was walked and bounded by the reader already.
    fn trim_indirect(
        &self,
        block: u64,
        level: u32,
        base: u64,
        k: u64,
        per: u64,
        kept: &mut HashSet<u64>,
    ) -> EditResult<bool> {
        if base >= k {
            return Ok(false);
        }
        let bs = self.fs.block_size();
        let mut b = self.stage.read_block(block).map_err(|source| Error::Io {
            what: "indirect block",
            offset: block * u64::from(bs),
            source,
        })?;
        let span = per.pow(level - 1);
        let mut any = false;
        let mut changed = false;
        for i in 0..per as usize {
            let p = u64::from(inode_raw::get_u32(&b, i * 4));
            if p == 0 {
                continue;
            }
            let cb = base + i as u64 * span;
            let keep = if level == 1 {
                cb < k
            } else {
                self.trim_indirect(p, level - 1, cb, k, per, kept)?
            };
            if keep {
                any = true;
            } else {
                inode_raw::put_u32(&mut b, i * 4, 0);
                changed = true;
            }
        }
        if any {
            kept.insert(block);
            if changed {
                self.stage.put_block(block, b);
            }
        }
        Ok(any)
    }
}
