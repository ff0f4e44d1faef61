//! The opened filesystem: the superblock, the device, and the reads every other
//! module builds on (blocks by AG-encoded number, inodes by number, mapped file
//! blocks), plus path lookup.

use vmscrub_blockdev::ReadAt;

use crate::error::{Error, Loc, Result};
use crate::inode::{FileType, Inode};
use crate::superblock::Superblock;

/// How to open a filesystem.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Check v5 metadata CRCs and owners (default). Off reads damaged images as
    /// far as their structure allows.
    pub verify_checksums: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            verify_checksums: true,
        }
    }
}

/// Deepest chain of symbolic links followed by [`Xfs::lookup`].
const MAX_SYMLINKS: usize = 40;

/// An opened XFS filesystem.
pub struct Xfs<D> {
    pub(crate) dev: D,
    pub(crate) sb: Superblock,
    pub(crate) verify: bool,
    notes: Vec<String>,
}

impl<D: ReadAt> Xfs<D> {
    /// Opens with CRCs checked.
    pub fn open(dev: D) -> Result<Self> {
        Self::open_with(dev, OpenOptions::default())
    }

    pub fn open_with(dev: D, opts: OpenOptions) -> Result<Self> {
        let mut first = vec![0u8; 512];
        read(&dev, &mut first, 0, "superblock")?;
        let sect = usize::from(crate::be::u16_at(&first, 102));
        if sect > 512 && sect <= 32768 && sect.is_power_of_two() {
            first = vec![0u8; sect];
            read(&dev, &mut first, 0, "superblock")?;
        }
        let sb = Superblock::parse(&first, opts.verify_checksums)?;
        let mut fs = Xfs {
            dev,
            sb,
            verify: opts.verify_checksums && first.len() >= 512,
            notes: vec![],
        };
        fs.verify = opts.verify_checksums && fs.sb.has_crc();
        // Every block the filesystem claims must be on the device: a truncated
        // image is refused here rather than failing file by file.
        let claimed = fs.sb.dblocks.saturating_mul(u64::from(fs.sb.block_size));
        if claimed > fs.dev.size() {
            return Err(Error::corrupt(
                "superblock",
                Loc::at(0),
                format!(
                    "the filesystem is {claimed} bytes but the device holds {} (truncated image?)",
                    fs.dev.size()
                ),
            ));
        }
        fs.ag_headers(0)?;
        if fs.sb.version == 4 {
            fs.notes
                .push("version 4 XFS (no metadata checksums): read without CRC checks".into());
        }
        if fs.sb.needs_repair() {
            fs.notes
                .push("the superblock says the filesystem needs xfs_repair (needsrepair)".into());
        }
        let unknown_ro = fs.sb.ro_compat & !0xf;
        if unknown_ro != 0 {
            fs.notes.push(format!(
                "read-only-compatible feature bits {unknown_ro:#x} this reader does not know"
            ));
        }
        Ok(fs)
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Caveats found while opening, for the user.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn block_size(&self) -> u32 {
        self.sb.block_size
    }

    pub fn root_ino(&self) -> u64 {
        self.sb.root_ino
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub(crate) fn read_bytes(&self, buf: &mut [u8], offset: u64, what: &'static str) -> Result<()> {
        read(&self.dev, buf, offset, what)
    }

    /// Device byte offset of filesystem block `fsb`.
    pub(crate) fn fsb_byte(&self, fsb: u64, loc: Loc) -> Result<u64> {
        self.sb.fsb_to_byte(fsb).ok_or_else(|| {
            Error::corrupt(
                "block pointer",
                loc,
                format!("block {fsb} is outside the filesystem"),
            )
        })
    }

    /// Reads filesystem block `fsb`.
    pub(crate) fn read_fsb(&self, fsb: u64, what: &'static str, loc: Loc) -> Result<Vec<u8>> {
        let off = self.fsb_byte(fsb, loc)?;
        let mut buf = vec![0u8; self.sb.block_size as usize];
        self.read_bytes(&mut buf, off, what)?;
        Ok(buf)
    }

    /// Reads and decodes inode `ino`.
    pub fn inode(&self, ino: u64) -> Result<Inode> {
        let off = self.sb.inode_to_byte(ino).ok_or_else(|| {
            Error::corrupt(
                "inode number",
                Loc::inode(ino),
                "names no place inside the allocation groups",
            )
        })?;
        let mut raw = vec![0u8; usize::from(self.sb.inode_size)];
        self.read_bytes(&mut raw, off, "inode")?;
        Inode::parse(&self.sb, ino, off, raw, self.verify)
    }

    /// Resolves `path` from the root. Intermediate symlinks are followed
    /// (relative to the root, a bounded number of times); the last component
    /// is followed only when `follow` is set.
    pub fn lookup(&self, path: &[u8], follow: bool) -> Result<u64> {
        let mut budget = MAX_SYMLINKS;
        self.resolve(self.sb.root_ino, path, follow, &mut budget, path)
    }

    fn resolve(
        &self,
        start: u64,
        path: &[u8],
        follow: bool,
        budget: &mut usize,
        full: &[u8],
    ) -> Result<u64> {
        let mut stack = vec![self.sb.root_ino];
        if !path.starts_with(b"/") {
            stack = vec![start];
        }
        let parts: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .collect();
        for (i, part) in parts.iter().enumerate() {
            let cur = stack.last().copied().unwrap_or(self.sb.root_ino);
            if *part == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let dir = self.inode(cur)?;
            if dir.file_type() != Some(FileType::Directory) {
                return Err(Error::NotADirectory { inode: cur });
            }
            let found = self
                .read_dir(&dir)?
                .into_iter()
                .find(|e| e.name == *part)
                .ok_or_else(|| Error::NotFound {
                    path: full.to_vec(),
                })?;
            let last = i + 1 == parts.len();
            let node = self.inode(found.ino)?;
            if node.file_type() == Some(FileType::Symlink) && (!last || follow) {
                *budget = budget.checked_sub(1).ok_or_else(|| Error::SymlinkLoop {
                    path: full.to_vec(),
                })?;
                let target = self.read_link(&node)?;
                let parent = cur;
                let resolved = self.resolve(parent, &target, true, budget, full)?;
                stack.push(resolved);
            } else {
                stack.push(found.ino);
            }
        }
        Ok(stack.last().copied().unwrap_or(self.sb.root_ino))
    }
}

fn read<D: ReadAt>(dev: &D, buf: &mut [u8], offset: u64, what: &'static str) -> Result<()> {
    dev.read_exact_at(buf, offset).map_err(|source| Error::Io {
        what,
        offset,
        source,
    })
}
