//! The opened filesystem: superblock and group descriptors in memory, everything
//! else read on demand. All methods take `&self` and keep no mutable state, so one
//! `Ext4` is shared between threads as is.

use vmscrub_blockdev::ReadAt;

use crate::backup::BackupSuperblock;
use crate::block_group::{self, GroupDesc, GroupLayout};
use crate::error::{Error, Loc, Result};
use crate::inode::{FileType, Inode, flags};
use crate::map::{FileMap, MetaBlock, MetaKind, OwnedBlocks};
use crate::superblock::{SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, Superblock};

/// The root directory's inode number.
pub const ROOT_INO: u32 = 2;

/// How strictly to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Verify metadata checksums (`metadata_csum`, `gdt_csum`). On by default; turn
    /// off only to inspect a damaged image, knowing that what is read may be wrong.
    /// Structural checks (bounds, loops, magic numbers) stay on either way.
    pub verify_checksums: bool,
    /// Read through this backup superblock (and its group's copy of the
    /// descriptor table) instead of the primary: for reading a filesystem whose
    /// primary superblock is damaged ([`crate::backup`]). Never for editing.
    pub backup: Option<BackupSuperblock>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            verify_checksums: true,
            backup: None,
        }
    }
}

pub struct Ext4<D> {
    dev: D,
    sb: Superblock,
    groups: Vec<GroupDesc>,
    opts: OpenOptions,
    csum_seed: u32,
    notes: Vec<String>,
}

impl<D> std::fmt::Debug for Ext4<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ext4")
            .field("superblock", &self.sb)
            .field("groups", &self.groups.len())
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl<D: ReadAt> Ext4<D> {
    /// Opens with checksum verification on.
    pub fn open(dev: D) -> Result<Self> {
        Self::open_with(dev, OpenOptions::default())
    }

    pub fn open_with(dev: D, opts: OpenOptions) -> Result<Self> {
        let at = opts.backup.map_or(SUPERBLOCK_OFFSET, |b| b.offset);
        let mut raw = [0u8; SUPERBLOCK_SIZE];
        dev.read_exact_at(&mut raw, at)
            .map_err(|source| Error::Io {
                what: "superblock",
                offset: at,
                source,
            })?;
        let sb = Superblock::parse(&raw, dev.size())?;
        if opts.verify_checksums {
            sb.verify_checksum()?;
        }
        let mut notes = sb.features.check_readable()?;
        if let Some(b) = opts.backup {
            if sb.features.has_incompat(crate::features::incompat::META_BG) {
                return Err(Error::unsupported(
                    "reading through a backup superblock with meta_bg",
                ));
            }
            notes.push(format!(
                "read through the backup superblock at block {} (group {}): the primary is damaged; \
                 its groups' uninitialized flags are ignored, as e2fsck does (`e2fsck -b {} -B {}` repairs a copy)",
                b.block, b.group, b.block, b.block_size
            ));
        }
        let csum_seed = sb.checksum_seed();
        let mut fs = Ext4 {
            dev,
            sb,
            groups: Vec::new(),
            opts,
            csum_seed,
            notes,
        };
        fs.groups = fs.load_group_descriptors()?;
        Ok(fs)
    }

    fn load_group_descriptors(&self) -> Result<Vec<GroupDesc>> {
        let sb = &self.sb;
        let count = sb.group_count();
        let dpb = u64::from(sb.descs_per_block());
        let ds = sb.desc_size() as usize;
        let mut groups = Vec::with_capacity(count.min(1 << 20) as usize);
        let mut buf = vec![0u8; self.block_size() as usize];
        for blk_idx in 0..count.div_ceil(dpb) {
            let blk = match self.opts.backup {
                Some(b) => sb.group_first_block(u64::from(b.group)) + 1 + blk_idx,
                None => block_group::descriptor_block(sb, blk_idx),
            };
            self.check_blocks("group descriptor table", Loc::NONE, blk, 1)?;
            self.read_block(blk, &mut buf, "group descriptor block")?;
            for j in 0..dpb {
                let g = blk_idx * dpb + j;
                if g >= count {
                    break;
                }
                let at = (j as usize) * ds;
                let raw = &buf[at..at + ds];
                let mut d = GroupDesc::parse(sb, g as u32, raw, (blk, at as u32));
                if self.opts.verify_checksums {
                    d.verify_checksum(sb)?;
                }
                d.validate(sb)?;
                if self.opts.backup.is_some() {
                    d.flags &= !(block_group::bg_flags::INODE_UNINIT
                        | block_group::bg_flags::BLOCK_UNINIT);
                    d.itable_unused = 0;
                }
                groups.push(d);
            }
        }
        Ok(groups)
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    pub fn groups(&self) -> &[GroupDesc] {
        &self.groups
    }

    pub fn group(&self, g: u32) -> Result<&GroupDesc> {
        self.groups
            .get(g as usize)
            .ok_or_else(|| Error::corrupt("group descriptor", Loc::NONE, format!("no group {g}")))
    }

    /// The device this filesystem was opened on.
    pub fn device(&self) -> &D {
        &self.dev
    }

    pub fn options(&self) -> OpenOptions {
        self.opts
    }

    pub(crate) fn verify_checksums(&self) -> bool {
        self.opts.verify_checksums
    }

    pub fn block_size(&self) -> u32 {
        self.sb.block_size()
    }

    /// Seed of metadata_csum checksums (see [`Superblock::checksum_seed`]).
    pub fn checksum_seed(&self) -> u32 {
        self.csum_seed
    }

    /// The journal holds transactions not yet written to their final place: the
    /// on-disk state read here may be older than what a mount would show.
    pub fn needs_recovery(&self) -> bool {
        self.sb.needs_recovery()
    }

    /// Caveats found at open (unknown read-only-compatible features).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Fails unless blocks `start..start + len` lie inside the filesystem (and not
    /// in block 0 before the first data block).
    pub(crate) fn check_blocks(
        &self,
        what: &'static str,
        loc: Loc,
        start: u64,
        len: u64,
    ) -> Result<()> {
        let first = u64::from(self.sb.first_data_block);
        let ok = start >= first
            && start
                .checked_add(len)
                .is_some_and(|e| e <= self.sb.blocks_count);
        if !ok || start == 0 {
            return Err(Error::corrupt(
                what,
                loc,
                format!(
                    "block {start} (+{len}) is outside the filesystem ({} blocks)",
                    self.sb.blocks_count
                ),
            ));
        }
        Ok(())
    }

    /// Reads whole blocks starting at `block` into `buf` (a multiple of the block size).
    pub fn read_block(&self, block: u64, buf: &mut [u8], what: &'static str) -> Result<()> {
        let offset = block.saturating_mul(u64::from(self.block_size()));
        self.read_bytes(offset, buf, what)
    }

    pub(crate) fn read_block_vec(&self, block: u64, what: &'static str) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.block_size() as usize];
        self.read_block(block, &mut buf, what)?;
        Ok(buf)
    }

    pub(crate) fn read_bytes(&self, offset: u64, buf: &mut [u8], what: &'static str) -> Result<()> {
        self.dev
            .read_exact_at(buf, offset)
            .map_err(|source| Error::Io {
                what,
                offset,
                source,
            })
    }

    /// Where inode `ino` is stored: (block, byte offset in that block).
    pub fn inode_location(&self, ino: u32) -> Result<(u64, u32)> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(Error::InodeOutOfRange {
                inode: u64::from(ino),
                count: self.sb.inodes_count,
            });
        }
        let ipg = self.sb.inodes_per_group;
        let g = (ino - 1) / ipg;
        let index = u64::from((ino - 1) % ipg);
        let desc = self.group(g)?;
        let byte = index * u64::from(self.sb.inode_size);
        let bs = u64::from(self.block_size());
        Ok((desc.inode_table + byte / bs, (byte % bs) as u32))
    }

    /// Reads inode `ino` (verifying its checksum under metadata_csum). Free inodes
    /// are returned as stored; see [`Ext4::inode_in_use`]. An all-zero slot (never
    /// used, or wiped by the editor) carries no checksum and is accepted as e2fsck
    /// accepts it.
    pub fn inode(&self, ino: u32) -> Result<Inode> {
        let (block, offset) = self.inode_location(ino)?;
        let mut raw = vec![0u8; usize::from(self.sb.inode_size)];
        let byte = block * u64::from(self.block_size()) + u64::from(offset);
        self.read_bytes(byte, &mut raw, "inode")?;
        let zeroed = raw.iter().all(|&b| b == 0);
        let inode = Inode::parse(ino, raw, (block, offset))?;
        if self.sb.has_metadata_csum()
            && self.opts.verify_checksums
            && !zeroed
            && !self.inode_never_written(ino)?
        {
            inode.verify_checksum(self.csum_seed)?;
        }
        Ok(inode)
    }

    /// Inodes in a group's never-initialized tail (`INODE_UNINIT`, `bg_itable_unused`)
    /// may hold garbage that was never checksummed.
    fn inode_never_written(&self, ino: u32) -> Result<bool> {
        let ipg = self.sb.inodes_per_group;
        let g = (ino - 1) / ipg;
        let desc = self.group(g)?;
        if desc.has_flag(&self.sb, block_group::bg_flags::INODE_UNINIT) {
            return Ok(true);
        }
        let index = (ino - 1) % ipg;
        Ok(self.sb.has_group_csum() && index >= ipg.saturating_sub(desc.itable_unused))
    }

    pub fn root(&self) -> Result<Inode> {
        self.inode(ROOT_INO)
    }

    /// The static metadata blocks of group `g`.
    pub fn group_layout(&self, g: u32) -> Result<GroupLayout> {
        Ok(block_group::group_layout(&self.sb, self.group(g)?))
    }

    /// Does the inode keep its data in `i_block` and the `system.data` xattr?
    pub fn is_inline(&self, inode: &Inode) -> bool {
        inode.has_flag(flags::INLINE_DATA)
    }

    /// An inode flagged both inline-data and extent-mapped has two readings of
    /// `i_block` (debugfs reads one, the kernel another; e2fsck clears one):
    /// corrupt, rather than a guess at which one holds the data.
    pub fn check_data_flags(&self, inode: &Inode) -> Result<()> {
        if inode.has_flag(flags::INLINE_DATA) && inode.has_flag(flags::EXTENTS) {
            return Err(Error::corrupt(
                "inode",
                Loc::inode(inode.ino),
                "both the inline-data and the extents flags are set",
            ));
        }
        Ok(())
    }

    /// Is `inode` a symlink whose target is stored in `i_block` itself?
    pub fn is_fast_symlink(&self, inode: &Inode) -> bool {
        if inode.file_type() != FileType::Symlink || self.is_inline(inode) {
            return false;
        }
        if inode.has_flag(flags::EXTENTS) {
            // A slow symlink with an extent root carries the extent magic.
            return crate::le::u16_at(&inode.i_block, 0) != crate::extent::EXTENT_MAGIC
                && inode.size < 60;
        }
        let xattr_sectors = if inode.file_acl != 0 {
            u64::from(self.block_size() / 512)
        } else {
            0
        };
        inode.sectors(self.block_size()) <= xattr_sectors && inode.size < 60
    }

    /// Does this inode map blocks (as opposed to inline data, a fast symlink, or a
    /// device/fifo/socket that stores nothing)?
    pub fn has_block_map(&self, inode: &Inode) -> bool {
        match inode.file_type() {
            FileType::Regular | FileType::Directory => !self.is_inline(inode),
            FileType::Symlink => !self.is_inline(inode) && !self.is_fast_symlink(inode),
            _ => false,
        }
    }

    /// The logical-to-physical map of an inode's data (empty for inodes that map
    /// no blocks).
    pub fn file_map(&self, inode: &Inode) -> Result<FileMap> {
        self.check_data_flags(inode)?;
        if !self.has_block_map(inode) {
            return Ok(FileMap::default());
        }
        if inode.has_flag(flags::EXTENTS) {
            self.extent_map(inode)
        } else {
            self.block_map(inode)
        }
    }

    /// Convenience: extents of inode `ino` (extent-mapped or block-mapped alike).
    pub fn extents(&self, ino: u32) -> Result<FileMap> {
        let inode = self.inode(ino)?;
        self.file_map(&inode)
    }

    /// Every block inode `ino` owns: data, extent-tree or indirect blocks, the
    /// xattr block (with its refcount), and the `ea_inode`s of its xattr values.
    pub fn owned_blocks(&self, ino: u32) -> Result<OwnedBlocks> {
        let inode = self.inode(ino)?;
        let map = self.file_map(&inode)?;
        let mut owned = OwnedBlocks {
            ino,
            data: map.extents,
            meta: map.meta,
            ea_inodes: Vec::new(),
        };
        if inode.file_acl != 0 {
            let blk = self.xattr_block(&inode)?;
            owned.meta.push(MetaBlock {
                block: inode.file_acl,
                kind: MetaKind::XattrBlock {
                    refcount: blk.refcount,
                },
            });
        }
        for x in self.xattr_entries(&inode)? {
            if x.value_inum != 0 {
                owned.ea_inodes.push(x.value_inum);
            }
        }
        Ok(owned)
    }
}
