//! The XFS editor: removes files, symlinks, special files and whole trees, and
//! shrinks files in place, keeping every structure `xfs_repair -n` checks
//! consistent. It never allocates: a rewrite is never longer than the file
//! was, and the B+trees it rebuilds take their blocks from the blocks they
//! had and the AG free list.
//!
//! - **Nothing is written before [`Editor::commit`].** Changes are staged in
//!   memory ([`Staged`]) and every operation is atomic: one that fails (a
//!   refusal, a corrupt structure) leaves no staged change and nothing to
//!   release.
//! - **Names and inodes go at once, space at commit.** An operation removes the
//!   directory entry and rewrites the inodes it touches; what the inodes give
//!   back (extents, bmap blocks, the inodes themselves) is gathered per AG and
//!   returned to the AG's trees once, at commit.
//! - **The log is rewritten empty and clean at commit**: a dirty log is
//!   replayed first (at open), and the stale copies a log holds of removed
//!   metadata do not survive.
//! - **Version 5 only.** A v4 filesystem, one that needs repair or has parent
//!   pointers is refused at open with the reason.
//!
//! Module map (one structure per module):
//! - `inode_raw`: an inode's bytes, edited field by field, CRC on write.
//! - `forks`: what an inode's forks give back; shrinking a data fork.
//! - `remove`: names, link counts and whole trees.
//! - `space` (with `ag_state`, `space_records`, `rmap_records`, `btree_build`, `inodes`,
//!   `free_space`): the AG side — free-space, reverse-mapping,
//!   reference-count and inode B+trees, AG headers, superblock counters, free
//!   space and free inodes.
//! - `dirent` (with `dir_sf`, `dir_data`, `dir_index`, `dir_free`,
//!   `dir_lookup`): a name out of a directory in any of the five forms.
//! - `log_reset`: the log rewritten empty with an unmount record.
//! - `orphans`: files deleted while open, freed as log recovery would.

mod ag_state;
mod btree_build;
mod dir_data;
mod dir_free;
mod dir_index;
mod dir_lookup;
mod dir_sf;
mod dirent;
mod forks;
mod free_space;
mod inode_raw;
mod inodes;
mod log_reset;
mod orphans;
mod remove;
mod rmap_records;
mod space;
mod space_records;
#[cfg(test)]
mod space_tests;
#[cfg(test)]
mod test_harness;
#[cfg(test)]
mod test_image;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use vmscrub_blockdev::{RangeSet, ReadAt, Staged, WriteAt};

use crate::error::{Error, Result};
use crate::fs::Xfs;
use crate::inode::FileType;
use crate::superblock::INCOMPAT_PARENT;
use space::AgRelease;

pub use remove::{KeptLink, TreeRemoved, Unlinked};

/// How the editor treats what it frees.
#[derive(Debug, Clone, Copy)]
pub struct EditorOptions {
    /// Zero freed blocks, the slack after a shrunk file's end and the old log
    /// (default). Off only for tests that must see verification catch it.
    pub zero_freed: bool,
    /// Also zero every free block and rewrite every free inode slot (the
    /// scrub's free-space wipe).
    pub zero_free_space: bool,
}

impl Default for EditorOptions {
    fn default() -> Self {
        EditorOptions {
            zero_freed: true,
            zero_free_space: false,
        }
    }
}

/// A file truncated or rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shrunk {
    pub old_size: u64,
    pub new_size: u64,
}

/// What [`Editor::commit`] did.
#[derive(Debug, Clone, Default)]
pub struct EditReport {
    /// Device byte ranges that now read as zeros: freed blocks, slack after
    /// shrunk files, the old log, and with `zero_free_space` all free space.
    pub zero_ranges: RangeSet,
    pub blocks_freed: u64,
    /// Blocks shared with other files (reflink): only their count dropped.
    pub blocks_unshared: u64,
    pub inodes_freed: u64,
    /// Free inode slots rewritten (with `zero_free_space`).
    pub inodes_wiped: u64,
    /// Bytes of `zero_ranges` that are free space beyond what the edits
    /// freed (with `zero_free_space`).
    pub free_space_zeroed: u64,
    pub blocks_written: usize,
    /// Transactions replayed from a dirty log at open.
    pub log_replayed: Option<usize>,
    /// The cycle of the fresh log's unmount record.
    pub log_cycle: u32,
    /// Files deleted while open (on the AGI unlinked lists) freed, as the
    /// guest's log recovery would have.
    pub orphans_freed: u64,
    /// Quota accounting is on: its "checked" flags were cleared so the next
    /// mount recounts usage (the removals changed it).
    pub quota_unchecked: bool,
}

/// An editor over one XFS filesystem on `D`. See the module docs.
pub struct Editor<D: WriteAt> {
    stage: Arc<Staged<D>>,
    fs: Xfs<Arc<Staged<D>>>,
    opts: EditorOptions,
    /// What the operations so far give back, by AG.
    releases: BTreeMap<u32, AgRelease>,
    log_replayed: Option<usize>,
    orphans_freed: u64,
}

impl<D: WriteAt> Editor<D> {
    /// Opens the filesystem on `dev` for editing, replaying a dirty log into
    /// the stage first.
    pub fn open(dev: D, opts: EditorOptions) -> Result<Self> {
        let (stage, fs, log_replayed) = open_staged(dev)?;
        refuse_features(&fs)?;
        let mut ed = Editor {
            stage,
            fs,
            opts,
            releases: BTreeMap::new(),
            log_replayed,
            orphans_freed: 0,
        };
        ed.orphans_freed = ed.atomic(|op| op.free_orphans())?;
        Ok(ed)
    }

    /// The filesystem as the edits so far leave it.
    pub fn reader(&self) -> &Xfs<Arc<Staged<D>>> {
        &self.fs
    }

    /// Runs `f` as one operation: its staged changes and releases are kept
    /// only if it succeeds.
    fn atomic<T>(&mut self, f: impl FnOnce(&mut remove::Op<'_, D>) -> Result<T>) -> Result<T> {
        self.stage.begin();
        let mut op = remove::Op::new(&self.fs, &self.stage);
        match f(&mut op) {
            Ok(v) => {
                let releases = op.finish();
                self.stage.keep();
                for (agno, r) in releases {
                    let e = self.releases.entry(agno).or_default();
                    e.extents.extend(r.extents);
                    e.inodes.extend(r.inodes);
                }
                Ok(v)
            }
            Err(e) => {
                self.stage.drop_op();
                Err(e)
            }
        }
    }

    /// Removes the name `path` (not a directory); the inode goes when it was
    /// its last name.
    pub fn unlink(&mut self, path: &[u8]) -> Result<Unlinked> {
        self.atomic(|op| op.unlink(path))
    }

    /// Removes `path` and, for a directory, everything below it.
    pub fn remove_tree(&mut self, path: &[u8]) -> Result<TreeRemoved> {
        self.atomic(|op| op.remove_tree(path))
    }

    /// Truncates the regular file `path` to zero bytes.
    pub fn truncate(&mut self, path: &[u8]) -> Result<Shrunk> {
        self.atomic(|op| op.rewrite(path, &[]))
    }

    /// Replaces the content of the regular file `path` with `content`, which
    /// must not be longer than the file.
    pub fn rewrite(&mut self, path: &[u8], content: &[u8]) -> Result<Shrunk> {
        self.atomic(|op| op.rewrite(path, content))
    }

    /// Gives back what the operations released, rewrites the log empty and
    /// writes every staged block, then zeroes what was freed.
    pub fn commit(self) -> Result<EditReport> {
        let mut report = EditReport {
            log_replayed: self.log_replayed,
            orphans_freed: self.orphans_freed,
            ..EditReport::default()
        };
        let nothing = self.releases.is_empty()
            && self.stage.staged_count() == 0
            && !self.opts.zero_free_space;
        if nothing {
            return Ok(report);
        }
        // What the operations staged, before the AG side stages its trees:
        // only these may turn out freed (see `write_out`).
        let by_ops: HashMap<u64, Box<[u8]>> = self.stage.staged_blocks().into_iter().collect();
        for (&agno, rel) in &self.releases {
            let out = space::release(&self.fs, &self.stage, agno, rel)?;
            report.blocks_freed += out.freed_blocks;
            report.blocks_unshared += out.shared_blocks;
            report.inodes_freed += out.freed_inodes;
            out.zero
                .into_iter()
                .for_each(|r| report.zero_ranges.insert(r));
        }
        free_space::update_superblock_counters(&self.fs, &self.stage)?;
        report.quota_unchecked = uncheck_quotas(&self.fs, &self.stage)?;
        if self.opts.zero_free_space {
            report.inodes_wiped = inodes::wipe_free_inodes(&self.fs, &self.stage)?;
            let edits = report.zero_ranges.total();
            for r in free_space::free_ranges(&self.fs)? {
                report.zero_ranges.insert(r);
            }
            report.free_space_zeroed = report.zero_ranges.total() - edits;
        }
        report.blocks_written = self.write_out(&report.zero_ranges, &by_ops)?;
        if self.opts.zero_freed {
            for r in report.zero_ranges.iter() {
                let (start, len) = (r.start, r.end - r.start);
                self.stage
                    .device()
                    .zero_range(r)
                    .map_err(|source| io_err("zeroing freed space", start + len, source))?;
            }
        }
        // The log goes last, straight to the device: until then a failure
        // leaves the old log, whose replay still describes the old state.
        let dev = self.stage.device();
        let log = log_reset::reset_log(&self.fs, &mut |at, bytes| {
            dev.write_all_at(bytes, at)
                .map_err(|source| io_err("writing the log", at, source))
        })?;
        report.log_cycle = log.cycle;
        for r in log.zero {
            report.zero_ranges.insert(r);
        }
        Ok(report)
    }

    /// Writes each staged block once, except those an operation staged and a
    /// later one freed (a file rewritten and later removed, a directory
    /// edited and later removed as a tree): they are zeroed instead. A block
    /// the commit itself wrote (a rebuilt tree, a header) inside the ranges to
    /// zero would be in use and freed at once: refused, nothing written.
    fn write_out(&self, zero: &RangeSet, by_ops: &HashMap<u64, Box<[u8]>>) -> Result<usize> {
        let bs = u64::from(self.fs.sb.block_size);
        let mut blocks = self.stage.staged_blocks();
        for (b, data) in &blocks {
            let freed = zero.intersects(b * bs..(b + 1) * bs);
            if freed && by_ops.get(b) != Some(data) {
                return Err(Error::refused(
                    "commit",
                    format!(
                        "block {b} is written by the commit and freed by it; nothing was written"
                    ),
                ));
            }
        }
        blocks.retain(|(b, _)| !zero.intersects(b * bs..(b + 1) * bs));
        for (b, data) in &blocks {
            self.stage
                .device()
                .write_all_at(data, b * bs)
                .map_err(|source| io_err("writing an edited block", b * bs, source))?;
        }
        Ok(blocks.len())
    }
}

/// The filesystem on `dev` through a stage, a dirty log replayed into it.
#[allow(clippy::type_complexity)]
fn open_staged<D: ReadAt>(dev: D) -> Result<(Arc<Staged<D>>, Xfs<Arc<Staged<D>>>, Option<usize>)> {
    let bs = Xfs::open(&dev)?.block_size();
    let stage = Arc::new(Staged::new(dev, bs));
    let fs = Xfs::open(stage.clone())?;
    if !fs.log_state()?.is_dirty() {
        return Ok((stage, fs, None));
    }
    let Some(r) = fs.replay_log()? else {
        return Ok((stage, fs, None));
    };
    for (&off, sector) in &r.sectors {
        stage
            .patch(off, sector)
            .map_err(|source| io_err("staged log replay", off, source))?;
    }
    let fs = Xfs::open(stage.clone())?;
    Ok((stage, fs, Some(r.transactions)))
}

/// Checks, without editing, that every witness of free space agrees (the
/// free-space trees, the AG headers, the reverse mappings): the scrub refuses
/// a filesystem where they do not before anything is written.
pub fn check_free_space<D: ReadAt>(dev: D) -> Result<()> {
    let (_, fs, _) = open_staged(dev)?;
    free_space::free_ranges(&fs).map(|_| ())
}

/// Offset of `sb_qflags` in the superblock.
const SB_QFLAGS: usize = 176;
/// The user, group/project (old) , group and project "checked" quota flags.
const QUOTA_CHECKED: u16 = 0x0004 | 0x0020 | 0x0100 | 0x0400;

/// Clears the quota "checked" flags, as xfs_repair does when usage changed
/// under the quota files: the kernel then recounts at the next mount instead
/// of trusting counts that no longer match.
fn uncheck_quotas<D: ReadAt>(fs: &Xfs<Arc<Staged<D>>>, stage: &Staged<D>) -> Result<bool> {
    let mut sb = vec![0u8; usize::from(fs.sb.sect_size).max(512)];
    fs.read_bytes(&mut sb, 0, "superblock")?;
    let q = u16::from_be_bytes([sb[SB_QFLAGS], sb[SB_QFLAGS + 1]]);
    if q & QUOTA_CHECKED == 0 {
        return Ok(false);
    }
    sb[SB_QFLAGS..SB_QFLAGS + 2].copy_from_slice(&(q & !QUOTA_CHECKED).to_be_bytes());
    crate::checksum::store(&mut sb, crate::superblock::CRC_OFFSET);
    stage
        .patch(0, &sb)
        .map_err(|source| io_err("staged superblock", 0, source))?;
    Ok(true)
}

fn io_err(what: &'static str, offset: u64, source: std::io::Error) -> Error {
    Error::Io {
        what,
        offset,
        source,
    }
}

/// What the editor does not change, said before anything is staged.
fn refuse_features<D: ReadAt>(fs: &Xfs<D>) -> Result<()> {
    let sb = fs.superblock();
    let why = if !sb.has_crc() {
        Some("version 4 (no metadata checksums): only version 5 is edited")
    } else if sb.needs_repair() {
        Some("the superblock says the filesystem needs xfs_repair")
    } else if sb.incompat & INCOMPAT_PARENT != 0 {
        Some("parent pointers (every name is also an attribute of its inode)")
    } else {
        None
    };
    match why {
        Some(w) => Err(Error::refused("superblock", w)),
        None => Ok(()),
    }
}

/// Whether a file type is removed by [`Editor::unlink`] (everything but a
/// directory).
pub(crate) fn unlinkable(t: Option<FileType>) -> bool {
    t.is_some_and(|t| t != FileType::Directory)
}
