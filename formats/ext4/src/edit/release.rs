//! Dropping links and freeing inodes: every block an inode owns (data, extent
//! nodes, indirect blocks), its xattr block only when no other inode shares it
//! (else the shared block's refcount drops by one), the `ea_inode`s holding its
//! large xattr values (each by reference count), and finally its slot, zeroed.

use vmscrub_blockdev::WriteAt;

use crate::error::{Error, Loc};
use crate::inode::{Inode, flags};
use crate::xattr::{XattrBlock, block_off};

use super::error::EditResult;
use super::{Editor, Op, inode_raw};

impl<D: WriteAt> Editor<D> {
    /// Checks that `inode` is one a directory entry may point at.
    pub(crate) fn check_linked(&self, inode: &Inode) -> EditResult<()> {
        let loc = Loc::inode(inode.ino);
        if inode.mode == 0 || inode.links_count == 0 {
            return Err(Error::corrupt(
                "directory entry",
                loc,
                "points at an inode that is not in use (no links)",
            )
            .into());
        }
        if inode.has_flag(flags::EA_INODE) {
            return Err(Error::corrupt(
                "directory entry",
                loc,
                "points at an inode that holds an xattr value",
            )
            .into());
        }
        Ok(())
    }

    /// Drops one link of non-directory inode `ino`, freeing it at zero links.
    /// Returns (links left, freed, its size).
    pub(crate) fn drop_link(&mut self, op: &mut Op, ino: u32) -> EditResult<(u16, bool, u64)> {
        let inode = self.fs.inode(ino)?;
        self.check_linked(&inode)?;
        if inode.links_count > 1 {
            let left = inode.links_count - 1;
            let mut raw = inode.raw.clone();
            inode_raw::set_links(&mut raw, left);
            if let Some(t) = self.opts.time {
                inode_raw::set_time(
                    &mut raw,
                    crate::inode::off::CTIME,
                    crate::inode::off::CTIME_EXTRA,
                    t,
                );
            }
            self.put_inode(ino, &mut raw)?;
            return Ok((left, false, 0));
        }
        let size = inode.size;
        self.free_inode(op, &inode)?;
        Ok((0, true, size))
    }

    /// Frees `inode` and everything it owns, and zeroes its slot.
    pub(crate) fn free_inode(&mut self, op: &mut Op, inode: &Inode) -> EditResult<()> {
        self.free_inode_at(op, inode, false)
    }

    fn free_inode_at(&mut self, op: &mut Op, inode: &Inode, is_value: bool) -> EditResult<()> {
        let ino = inode.ino;
        let map = self.fs.file_map(inode)?;
        for e in &map.extents {
            op.frees.add_blocks(e.physical(), ino)?;
        }
        for m in &map.meta {
            op.frees.add_blocks(m.block..m.block + 1, ino)?;
        }
        let mut values: Vec<u32> = Vec::new();
        for e in self.fs.inode_xattr_entries(inode)? {
            if e.value_inum != 0 {
                values.push(e.value_inum);
            }
        }
        if inode.file_acl != 0 {
            let blk = self.fs.xattr_block(inode)?;
            let loc = Loc::at(ino, blk.block);
            match blk.refcount {
                0 => {
                    return Err(
                        Error::corrupt("xattr block header", loc, "reference count 0").into(),
                    );
                }
                1 => {
                    op.frees.add_blocks(blk.block..blk.block + 1, ino)?;
                    values.extend(
                        blk.entries
                            .iter()
                            .filter(|e| e.value_inum != 0)
                            .map(|e| e.value_inum),
                    );
                }
                n => {
                    // Shared: the other inodes keep it (and its value inodes).
                    let mut raw = blk.raw.clone();
                    inode_raw::put_u32(&mut raw, block_off::REFCOUNT, n - 1);
                    if self.fs.superblock().has_metadata_csum() {
                        let c =
                            XattrBlock::compute_checksum(self.fs.checksum_seed(), blk.block, &raw);
                        inode_raw::put_u32(&mut raw, block_off::CHECKSUM, c);
                    }
                    self.stage.put_block(blk.block, raw);
                }
            }
        }
        if is_value && !values.is_empty() {
            return Err(Error::corrupt(
                "xattr value inode",
                Loc::inode(ino),
                "has large xattr values of its own",
            )
            .into());
        }
        for v in values {
            self.release_value_inode(op, ino, v)?;
        }
        let zero = vec![0u8; usize::from(self.fs.superblock().inode_size)];
        self.put_inode_raw(ino, &zero)?;
        op.frees.inodes.push((ino, inode.is_dir()));
        if inode.is_dir() {
            op.freed_dirs.push(ino);
        }
        Ok(())
    }

    /// Drops one reference to `ea_inode` `vino` held by `owner`; frees it at zero.
    fn release_value_inode(&mut self, op: &mut Op, owner: u32, vino: u32) -> EditResult<()> {
        let loc = Loc::inode(owner);
        if vino == owner {
            return Err(
                Error::corrupt("xattr entry", loc, "value inode is the inode itself").into(),
            );
        }
        let vi = self.fs.inode(vino)?;
        if !vi.has_flag(flags::EA_INODE) || vi.links_count == 0 {
            return Err(Error::corrupt(
                "xattr entry",
                loc,
                format!("inode {vino} is not an xattr value inode in use"),
            )
            .into());
        }
        let refs = inode_raw::ea_inode_refs(&vi.raw);
        match refs {
            0 => Err(
                Error::corrupt("xattr value inode", Loc::inode(vino), "reference count 0").into(),
            ),
            1 => self.free_inode_at(op, &vi, true),
            n => {
                let mut raw = vi.raw.clone();
                inode_raw::set_ea_inode_refs(&mut raw, n - 1);
                self.put_inode(vino, &mut raw)
            }
        }
    }
}
