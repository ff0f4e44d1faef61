//! The targeted ext4 editor: removes files and trees, truncates and rewrites
//! files shorter, and leaves nothing of what it removed — no name bytes, no inode,
//! no data or mapping block, no copy in the journal — while keeping the
//! filesystem consistent (every bitmap, counter and checksum; `e2fsck -fn` clean).
//!
//! ```text
//! let mut ed = Editor::open(dev, EditorOptions::default())?;   // validates, replays the journal
//! ed.unlink(b"/etc/ssh/ssh_host_rsa_key")?;                     // -> Unlinked { ino, links_left, freed }
//! ed.remove_tree(b"/var/lib/cloud")?;                           // -> TreeRemoved { files, dirs, bytes, kept }
//! ed.truncate(b"/var/log/wtmp")?;
//! ed.rewrite(b"/etc/machine-id", b"uninitialized\n")?;         // no longer than the old content
//! let report = ed.commit()?;                                    // writes each changed block once
//! // report.zero_ranges: byte ranges that held removed content (zeroed already
//! // unless EditorOptions::zero_freed is false — then the caller must zero them)
//! ```
//!
//! Design:
//! - **Nothing is written before [`Editor::commit`].** Changes are staged in
//!   memory ([`Staged`]), and every operation is atomic: one that fails (a
//!   refusal, a corrupt structure, a checksum mismatch) leaves no staged change.
//!   An error from `open` or from an operation therefore leaves the device
//!   byte-identical; the caller may go on with other operations or drop the editor.
//! - **Validate, then write.** `open` refuses unsupported features and states
//!   before anything; each operation reads and checks every structure it relies on
//!   (checksums, bitmap bits of what it frees, group accounting, link counts,
//!   directory entry types) before its changes are kept.
//! - **Freed inode slots are zeroed entirely** (all `s_inode_size` bytes, checksum
//!   field included): the slot then looks exactly like one that was never used.
//!   `e2fsck` accepts an all-zero inode as valid under metadata_csum, the kernel
//!   answers a stale file handle to it with `ESTALE` before looking at checksums,
//!   and no deletion time, owner, size, block pointer, inline data or in-inode
//!   xattr survives.
//! - **The journal is reset at commit** (if the filesystem has one): replayed
//!   first when `needs_recovery` says so, then emptied as a clean unmount leaves it
//!   (`s_start = 0`, sequence advanced), `needs_recovery` cleared, and every journal
//!   block but its superblock returned for zeroing — old transactions hold copies
//!   of directory blocks and inodes.
//! - **Times** of changed inodes are kept by default (the image should not show
//!   when it was scrubbed); [`EditorOptions::time`] sets mtime and ctime of
//!   truncated/rewritten files and of directories that lost an entry instead.
//! - **The editor never allocates.** Rewrites reuse the file's own blocks and
//!   extent-tree blocks (the tree is rebuilt packed and as shallow as possible).

mod dirent;
mod error;
mod extent_build;
mod groups;
mod inode_raw;
mod journal;
mod paths;
mod release;
mod shrink;

mod tree;

use std::collections::HashMap;
use std::sync::Arc;

use vmscrub_blockdev::{RangeSet, ReadAt, WriteAt};

use crate::error::{Error, Loc};
use crate::features::ro_compat;
use crate::fs::Ext4;
use crate::inode::Timestamp;
use crate::journal::Journal;
use crate::superblock::{SUPERBLOCK_OFFSET, off as sb_off, state};

pub use error::{EditError, EditResult, Refusal};
pub use journal::ReplayStats;
pub use vmscrub_blockdev::Staged;

use groups::{Frees, Groups};
use paths::DirIndex;

/// How the editor behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EditorOptions {
    /// Replay a journal that needs recovery (on by default). Off: such a
    /// filesystem is refused with [`Refusal::NeedsRecovery`].
    pub replay_journal: bool,
    /// Let [`Editor::commit`] zero [`EditReport::zero_ranges`] itself through
    /// [`WriteAt::zero_range`] (on by default; an overlay records them as holes).
    /// Off: the caller must zero them, or removed content stays on the device.
    pub zero_freed: bool,
    /// `None` (default): times are kept. `Some(t)`: truncated and rewritten files,
    /// and directories that lost an entry, get mtime = ctime = `t`.
    pub time: Option<Timestamp>,
}

impl Default for EditorOptions {
    fn default() -> Self {
        EditorOptions {
            replay_journal: true,
            zero_freed: true,
            time: None,
        }
    }
}

/// The result of [`Editor::unlink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlinked {
    pub ino: u32,
    /// Links the inode still has: above 0, its data stays (other hard links).
    pub links_left: u16,
    /// The inode and everything it owned were freed.
    pub freed: bool,
}

/// An inode inside a removed tree that survives because it has hard links
/// outside the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLink {
    /// The (last) path under the removed tree that linked it.
    pub path: Vec<u8>,
    pub ino: u32,
    pub links_left: u16,
}

/// The result of [`Editor::remove_tree`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeRemoved {
    /// Non-directory entries removed (files, symlinks, devices, fifos, sockets).
    pub files: u64,
    /// Directories removed, the top one included.
    pub dirs: u64,
    /// `i_size` sum of the non-directory inodes freed.
    pub bytes: u64,
    /// Inodes that keep their data because of links outside the tree.
    pub kept: Vec<KeptLink>,
}

/// The result of [`Editor::truncate`] and [`Editor::rewrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shrunk {
    pub ino: u32,
    pub old_size: u64,
    pub new_size: u64,
    /// Data and mapping blocks freed.
    pub blocks_freed: u64,
}

/// What [`Editor::commit`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EditReport {
    /// Device byte ranges that held removed content: freed data blocks, freed
    /// metadata blocks (extent, indirect, xattr and directory blocks), the slack
    /// after the new end of shrunk files, and the journal's log area. They must
    /// read as zeros in the result (see [`EditorOptions::zero_freed`]); none of
    /// them holds anything the filesystem still uses.
    pub zero_ranges: RangeSet,
    pub blocks_freed: u64,
    pub inodes_freed: u64,
    /// Metadata and data blocks written at commit.
    pub blocks_written: usize,
    /// Set when a journal needing recovery was replayed.
    pub journal_replay: Option<ReplayStats>,
    /// The journal was emptied (it exists).
    pub journal_reset: bool,
}

/// What one operation frees and zeroes, applied when it succeeds.
#[derive(Debug, Default)]
pub(crate) struct Op {
    pub(crate) frees: Frees,
    /// Extra byte ranges to zero (slack after a shrunk file's end).
    pub(crate) zero: RangeSet,
    /// Directories freed (their name indexes are dropped).
    pub(crate) freed_dirs: Vec<u32>,
    /// Entries removed: (directory, name).
    pub(crate) removed: Vec<(u32, Vec<u8>)>,
}

/// An editor over one ext2/3/4 filesystem on `D`. See the module docs.
pub struct Editor<D: WriteAt> {
    stage: Arc<Staged<D>>,
    fs: Ext4<Arc<Staged<D>>>,
    opts: EditorOptions,
    groups: Groups,
    /// Byte ranges to zero.
    zero: RangeSet,
    /// Blocks freed (never written at commit).
    freed: RangeSet,
    journal: Option<Journal>,
    next_sequence: u32,
    replay: Option<ReplayStats>,
    clear_orphan_present: bool,
    dirs: HashMap<u32, DirIndex>,
    /// Inodes the filesystem reserves for itself: never removed.
    special: Vec<u32>,
    inodes_freed: u64,
}

impl<D: WriteAt> std::fmt::Debug for Editor<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Editor")
            .field("fs", &self.fs)
            .field("opts", &self.opts)
            .field("staged_blocks", &self.stage.staged_count())
            .finish_non_exhaustive()
    }
}

/// Read-only-compatible features the editor keeps consistent.
const EDITABLE_RO_COMPAT: u32 = ro_compat::SPARSE_SUPER
    | ro_compat::LARGE_FILE
    | ro_compat::BTREE_DIR
    | ro_compat::HUGE_FILE
    | ro_compat::GDT_CSUM
    | ro_compat::DIR_NLINK
    | ro_compat::EXTRA_ISIZE
    | ro_compat::METADATA_CSUM
    | ro_compat::READONLY
    | ro_compat::PROJECT
    | ro_compat::ORPHAN_PRESENT;

fn check_editable<R: ReadAt>(fs: &Ext4<R>) -> EditResult<()> {
    let sb = fs.superblock();
    let ro = sb.features.ro_compat;
    if ro & ro_compat::QUOTA != 0 {
        return Err(EditError::unsupported(
            "quota (the quota files' usage records would go stale; remove the feature with \
             `tune2fs -O ^quota` on a copy first)",
        ));
    }
    let unknown = ro & !EDITABLE_RO_COMPAT;
    if unknown != 0 {
        return Err(EditError::unsupported(format!(
            "read-only-compatible feature bits {unknown:#x}"
        )));
    }
    // The Hurd lays out the inode's OS-dependent fields differently.
    if sb.creator_os == 1 {
        return Err(EditError::unsupported(
            "a filesystem created by the Hurd (different inode layout)",
        ));
    }
    Ok(())
}

impl<D: WriteAt> Editor<D> {
    /// Opens the filesystem on `dev` for editing: checks that it is one the
    /// editor can keep consistent, replays its journal if it needs recovery (in
    /// memory), and validates the state every edit relies on.
    pub fn open(dev: D, opts: EditorOptions) -> EditResult<Self> {
        let bs = Ext4::open(&dev)?.block_size();
        let stage = Arc::new(Staged::new(dev, bs));
        let mut fs = Ext4::open(stage.clone())?;
        check_editable(&fs)?;
        let mut journal = fs.journal()?;
        let mut next_sequence = 0;
        let mut replay = None;
        if let Some(j) = &journal {
            journal::check_features(j)?;
            if j.superblock.errno != 0 {
                return Err(Refusal::JournalAborted {
                    errno: j.superblock.errno,
                }
                .into());
            }
            next_sequence = j.superblock.sequence.wrapping_add(1);
            // A log with transactions needs replay whatever the flag says (e2fsck
            // asks to "run the journal anyway").
            if fs.needs_recovery() || j.superblock.start != 0 {
                if j.superblock.start != 0 && !opts.replay_journal {
                    return Err(Refusal::NeedsRecovery.into());
                }
                let r = journal::replay(&fs, j, &stage)?;
                next_sequence = r.next_sequence;
                replay = Some(r.stats);
            }
        } else if fs.needs_recovery() {
            return Err(Error::corrupt(
                "superblock",
                Loc::NONE,
                "needs_recovery is set but there is no journal",
            )
            .into());
        }
        if replay.is_some_and(|r| r.blocks_replayed > 0) {
            // The log may have rewritten the superblock and descriptors.
            fs = Ext4::open(stage.clone())?;
            check_editable(&fs)?;
            journal = fs.journal()?;
        }
        let sb = fs.superblock();
        if sb.state & state::ERROR != 0 {
            return Err(Refusal::ErrorsRecorded.into());
        }
        if sb.state & state::VALID == 0 {
            return Err(Refusal::NotClean.into());
        }
        if sb.last_orphan != 0 {
            return Err(Refusal::Orphans {
                detail: format!("s_last_orphan = {}", sb.last_orphan),
            }
            .into());
        }
        let clear_orphan_present = sb.features.has_ro_compat(ro_compat::ORPHAN_PRESENT);
        if clear_orphan_present {
            paths::check_orphan_file(&fs)?;
        }
        let (protected, special) = paths::protected_blocks(&fs, journal.as_ref())?;
        Ok(Editor {
            stage,
            fs,
            opts,
            groups: Groups::new(protected),
            zero: RangeSet::new(),
            freed: RangeSet::new(),
            journal,
            next_sequence,
            replay,
            clear_orphan_present,
            dirs: HashMap::new(),
            special,
            inodes_freed: 0,
        })
    }

    /// The filesystem as it stands with the edits so far (reads go through the
    /// staged changes). Use it to read a file before removing it.
    pub fn reader(&self) -> &Ext4<Arc<Staged<D>>> {
        &self.fs
    }

    /// What the journal replay at open did, if one was needed.
    pub fn replay_stats(&self) -> Option<ReplayStats> {
        self.replay
    }

    /// Runs one operation atomically: its staged changes and frees are kept only
    /// if it and the validation of its frees succeed.
    fn run<T>(&mut self, f: impl FnOnce(&mut Self, &mut Op) -> EditResult<T>) -> EditResult<T> {
        self.stage.begin();
        let mut op = Op::default();
        let r = f(self, &mut op).and_then(|t| {
            self.groups.validate(&self.fs, &op.frees)?;
            Ok(t)
        });
        match r {
            Ok(t) => {
                self.groups.apply(self.fs.superblock(), &op.frees);
                self.stage.keep();
                let bs = u64::from(self.fs.block_size());
                for r in op.frees.blocks.iter() {
                    self.zero.insert(r.start * bs..r.end * bs);
                    self.freed.insert(r);
                }
                self.zero.union_with(&op.zero);
                self.inodes_freed += op.frees.inodes.len() as u64;
                for d in &op.freed_dirs {
                    self.dirs.remove(d);
                }
                for (d, name) in &op.removed {
                    if let Some(ix) = self.dirs.get_mut(d) {
                        ix.remove(name);
                    }
                }
                Ok(t)
            }
            Err(e) => {
                self.stage.drop_op();
                self.dirs.clear();
                Err(e)
            }
        }
    }

    /// Removes the directory entry `path` (not a directory; symlinks are not
    /// followed) and drops one link of its inode; at zero links the inode and
    /// everything it owns are freed.
    pub fn unlink(&mut self, path: &[u8]) -> EditResult<Unlinked> {
        self.run(|ed, op| ed.unlink_op(op, path))
    }

    /// Removes `path` and, if it is a directory, everything below it (like
    /// `rm -rf`). Hard-linked inodes with links outside the tree survive and are
    /// listed in [`TreeRemoved::kept`].
    pub fn remove_tree(&mut self, path: &[u8]) -> EditResult<TreeRemoved> {
        self.run(|ed, op| ed.remove_tree_op(op, path))
    }

    /// Truncates regular file `path` to zero bytes, freeing all its blocks.
    pub fn truncate(&mut self, path: &[u8]) -> EditResult<Shrunk> {
        self.run(|ed, op| ed.shrink_op(op, path, &[]))
    }

    /// Replaces the content of regular file `path` with `content`, which may not
    /// be longer than the current content. Inode number, owner, mode and xattrs
    /// stay; blocks past the new end are freed and the slack after it zeroed.
    pub fn rewrite(&mut self, path: &[u8], content: &[u8]) -> EditResult<Shrunk> {
        self.run(|ed, op| ed.shrink_op(op, path, content))
    }

    /// Writes every staged change (each block once, the superblock last), resets
    /// the journal, and zeroes the freed ranges if [`EditorOptions::zero_freed`].
    pub fn commit(self) -> EditResult<EditReport> {
        let bs = u64::from(self.fs.block_size());
        let mut zero = self.zero.clone();
        let mut journal_reset = false;
        if let Some(j) = &self.journal {
            let z = journal::reset(&self.fs, j, &self.stage, self.next_sequence)?;
            zero.union_with(&z);
            journal_reset = true;
        }
        groups::stage_groups(&self.fs, &self.stage, &self.groups)?;
        let mut sb = groups::superblock_bytes(&self.fs, &self.stage, &self.groups, true)?;
        if self.clear_orphan_present {
            let ro = u32::from_le_bytes([
                sb[sb_off::FEATURE_RO_COMPAT],
                sb[sb_off::FEATURE_RO_COMPAT + 1],
                sb[sb_off::FEATURE_RO_COMPAT + 2],
                sb[sb_off::FEATURE_RO_COMPAT + 3],
            ]) & !ro_compat::ORPHAN_PRESENT;
            sb[sb_off::FEATURE_RO_COMPAT..sb_off::FEATURE_RO_COMPAT + 4]
                .copy_from_slice(&ro.to_le_bytes());
            if self.fs.superblock().has_metadata_csum() {
                let c = crate::superblock::Superblock::compute_checksum(&sb);
                sb[sb_off::CHECKSUM..sb_off::CHECKSUM + 4].copy_from_slice(&c.to_le_bytes());
            }
        }
        self.stage
            .patch(SUPERBLOCK_OFFSET, &sb)
            .map_err(|source| Error::Io {
                what: "superblock",
                offset: SUPERBLOCK_OFFSET,
                source,
            })?;
        let sb_block = SUPERBLOCK_OFFSET / bs;
        let dev = self.stage.device();
        let mut written = 0usize;
        let blocks = self.stage.staged_blocks();
        let mut last: Option<&[u8]> = None;
        // Consecutive blocks go out in one write.
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0u64;
        let mut run_next = u64::MAX;
        let flush = |run: &mut Vec<u8>, start: u64| -> EditResult<()> {
            if run.is_empty() {
                return Ok(());
            }
            dev.write_all_at(run, start * bs)
                .map_err(|source| EditError::Write {
                    what: "staged blocks",
                    offset: start * bs,
                    source,
                })?;
            run.clear();
            Ok(())
        };
        for (blk, data) in &blocks {
            if self.freed.contains(*blk) {
                continue;
            }
            written += 1;
            if *blk == sb_block {
                last = Some(data);
                continue;
            }
            if *blk != run_next || run.len() >= 4 << 20 {
                flush(&mut run, run_start)?;
                run_start = *blk;
            }
            run.extend_from_slice(data);
            run_next = blk + 1;
        }
        flush(&mut run, run_start)?;
        if let Some(data) = last {
            dev.write_all_at(data, sb_block * bs)
                .map_err(|source| EditError::Write {
                    what: "superblock",
                    offset: sb_block * bs,
                    source,
                })?;
        }
        if self.opts.zero_freed {
            for r in zero.iter() {
                dev.zero_range(r.clone())
                    .map_err(|source| EditError::Write {
                        what: "freed range",
                        offset: r.start,
                        source,
                    })?;
            }
        }
        Ok(EditReport {
            zero_ranges: zero,
            blocks_freed: self.freed.total(),
            inodes_freed: self.inodes_freed,
            blocks_written: written,
            journal_replay: self.replay,
            journal_reset,
        })
    }
}
