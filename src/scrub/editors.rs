//! The one editing seam: every filesystem the scrub edits implements
//! [`FsEditor`] (remove a name, remove a tree, truncate, rewrite, finish), so
//! the pipeline runs a plan the same way on ext2/3/4, FAT and XFS and the next
//! filesystem plugs in here without touching it.
//!
//! Each editor works on a slice of the overlay, so the source image is never
//! written; the ranges an editor frees read as zeros when `finish` returns
//! (ext4 and XFS zero them at commit, FAT's removals are zeroed as they go).

use vmscrub_blockdev::{RangeSet, WriteAt};

use super::apply::fault;
use crate::fs::NodeId;

/// A name removed: the node and the names it still has (0: it was freed).
pub struct Removed {
    pub node: Option<NodeId>,
    pub links_left: u32,
}

/// What finishing an editor did.
#[derive(Default)]
pub struct Finished {
    /// Bytes of the volume that now read as zeros.
    pub zeroed: u64,
    /// What the user should know (a journal or log replayed or reset).
    pub notes: Vec<String>,
    /// Free space zeroed with the edits (an editor that does it in the same
    /// session), so the free-space stage leaves the volume alone.
    pub free_zeroed: Option<u64>,
}

/// One filesystem's editor, as the pipeline sees it.
pub trait FsEditor {
    /// Removes the name `path` (not a directory).
    fn remove(&mut self, path: &[u8]) -> anyhow::Result<Removed>;
    /// Removes a directory and everything below it; returns the nodes that
    /// live on through names outside the tree, with their path in it.
    fn remove_tree(&mut self, path: &[u8]) -> anyhow::Result<Vec<(NodeId, Vec<u8>)>>;
    /// Truncates a regular file to zero bytes; returns its new size.
    fn truncate(&mut self, path: &[u8]) -> anyhow::Result<u64>;
    /// Replaces a regular file's content with `content`, no longer than it.
    fn rewrite(&mut self, path: &[u8], content: &[u8]) -> anyhow::Result<u64>;
    /// Writes every change into the device and zeroes what was freed.
    fn finish(self: Box<Self>) -> anyhow::Result<Finished>;
}

pub struct Ext4Editor<D: WriteAt + Clone> {
    ed: vmscrub_ext4::Editor<D>,
}

impl<D: WriteAt + Clone + 'static> Ext4Editor<D> {
    pub fn open(dev: D) -> anyhow::Result<(Self, Vec<String>)> {
        use vmscrub_ext4::{Editor, EditorOptions};
        let opts = EditorOptions {
            zero_freed: !fault("keep-freed"),
            ..EditorOptions::default()
        };
        let ed = Editor::open(dev, opts)?;
        let notes = ed
            .replay_stats()
            .map(|r| {
                format!(
                    "journal replayed first: {} transaction(s), {} block(s)",
                    r.transactions, r.blocks_replayed
                )
            })
            .into_iter()
            .collect();
        Ok((Ext4Editor { ed }, notes))
    }
}

impl<D: WriteAt + Clone + 'static> FsEditor for Ext4Editor<D> {
    fn remove(&mut self, path: &[u8]) -> anyhow::Result<Removed> {
        let u = self.ed.unlink(path)?;
        Ok(Removed {
            node: Some(NodeId::from(u.ino)),
            links_left: u32::from(u.links_left),
        })
    }

    fn remove_tree(&mut self, path: &[u8]) -> anyhow::Result<Vec<(NodeId, Vec<u8>)>> {
        let t = self.ed.remove_tree(path)?;
        Ok(t.kept
            .into_iter()
            .map(|k| (NodeId::from(k.ino), k.path))
            .collect())
    }

    fn truncate(&mut self, path: &[u8]) -> anyhow::Result<u64> {
        Ok(self.ed.truncate(path)?.new_size)
    }

    fn rewrite(&mut self, path: &[u8], content: &[u8]) -> anyhow::Result<u64> {
        Ok(self.ed.rewrite(path, content)?.new_size)
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Finished> {
        let report = self.ed.commit().map_err(|e| {
            anyhow::anyhow!("writing the edits into the overlay failed: {e}; nothing was written")
        })?;
        let mut notes = vec![];
        if report.journal_reset {
            notes.push("journal reset to empty (its log was zeroed)".to_string());
        }
        Ok(Finished {
            zeroed: report.zero_ranges.total(),
            notes,
            free_zeroed: None,
        })
    }
}

pub struct FatEditor<D: WriteAt + Clone> {
    fs: vmscrub_fat::FatFs<D>,
    dev: D,
    zeroed: u64,
}

impl<D: WriteAt + Clone> FatEditor<D> {
    pub fn open(dev: D) -> anyhow::Result<Self> {
        Ok(FatEditor {
            fs: vmscrub_fat::FatFs::open(dev.clone())?,
            dev,
            zeroed: 0,
        })
    }

    fn zero(&mut self, ranges: &RangeSet) -> anyhow::Result<()> {
        if !fault("keep-freed") {
            for r in ranges.iter() {
                self.dev.zero_range(r)?;
            }
        }
        self.zeroed += ranges.total();
        Ok(())
    }
}

impl<D: WriteAt + Clone> FsEditor for FatEditor<D> {
    fn remove(&mut self, path: &[u8]) -> anyhow::Result<Removed> {
        let r = self.fs.remove_file(path)?;
        self.zero(&r.zero_ranges)?;
        Ok(Removed {
            node: r.removed.first().copied(),
            links_left: 0,
        })
    }

    fn remove_tree(&mut self, path: &[u8]) -> anyhow::Result<Vec<(NodeId, Vec<u8>)>> {
        let r = self.fs.remove_tree(path)?;
        self.zero(&r.zero_ranges)?;
        Ok(vec![])
    }

    fn truncate(&mut self, path: &[u8]) -> anyhow::Result<u64> {
        let r = self.fs.truncate(path)?;
        self.zero(&r.zero_ranges)?;
        Ok(0)
    }

    fn rewrite(&mut self, path: &[u8], content: &[u8]) -> anyhow::Result<u64> {
        let r = self.fs.rewrite(path, content)?;
        self.zero(&r.zero_ranges)?;
        Ok(content.len() as u64)
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Finished> {
        Ok(Finished {
            zeroed: self.zeroed,
            notes: vec![],
            free_zeroed: None,
        })
    }
}

pub struct XfsEditor<D: WriteAt> {
    ed: vmscrub_xfs::Editor<D>,
    zero_free: bool,
}

impl<D: WriteAt> XfsEditor<D> {
    /// `zero_free`: also zero the free space in the same commit, so the log
    /// is rewritten once rather than again by the free-space stage.
    pub fn open(dev: D, zero_free: bool) -> anyhow::Result<(Self, Vec<String>)> {
        let opts = vmscrub_xfs::EditorOptions {
            zero_freed: !fault("keep-freed"),
            zero_free_space: zero_free,
        };
        let ed = vmscrub_xfs::Editor::open(dev, opts)?;
        Ok((XfsEditor { ed, zero_free }, vec![]))
    }
}

impl<D: WriteAt> FsEditor for XfsEditor<D> {
    fn remove(&mut self, path: &[u8]) -> anyhow::Result<Removed> {
        let u = self.ed.unlink(path)?;
        Ok(Removed {
            node: Some(NodeId::from(u.ino)),
            links_left: u.links_left,
        })
    }

    fn remove_tree(&mut self, path: &[u8]) -> anyhow::Result<Vec<(NodeId, Vec<u8>)>> {
        let t = self.ed.remove_tree(path)?;
        Ok(t.kept
            .into_iter()
            .map(|k| (NodeId::from(k.ino), k.path))
            .collect())
    }

    fn truncate(&mut self, path: &[u8]) -> anyhow::Result<u64> {
        Ok(self.ed.truncate(path)?.new_size)
    }

    fn rewrite(&mut self, path: &[u8], content: &[u8]) -> anyhow::Result<u64> {
        Ok(self.ed.rewrite(path, content)?.new_size)
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Finished> {
        let r = self.ed.commit().map_err(|e| {
            anyhow::anyhow!("writing the edits into the overlay failed: {e}; nothing was written")
        })?;
        let mut notes = vec![];
        if let Some(n) = r.log_replayed {
            notes.push(format!("the log was replayed first: {n} transaction(s)"));
        }
        notes.push(format!(
            "log rewritten empty (cycle {}); {} block(s) and {} inode(s) freed{}",
            r.log_cycle,
            r.blocks_freed,
            r.inodes_freed,
            if r.blocks_unshared > 0 {
                format!(
                    ", {} shared block(s) kept for their other owners",
                    r.blocks_unshared
                )
            } else {
                String::new()
            }
        ));
        if r.orphans_freed > 0 {
            notes.push(format!(
                "{} file(s) deleted while still open (orphans) freed and zeroed, as the guest's \
                 next mount would",
                r.orphans_freed
            ));
        }
        if r.quota_unchecked {
            notes.push(
                "quota usage changed: its checked flags were cleared, so the next mount \
                 recounts it"
                    .to_string(),
            );
        }
        let free_zeroed = self.zero_free.then_some(r.free_space_zeroed);
        Ok(Finished {
            zeroed: r.zero_ranges.total() - r.free_space_zeroed,
            notes,
            free_zeroed,
        })
    }
}

/// Zeroes every free block and rewrites every free inode slot of the XFS
/// filesystem on `dev` (the free-space stage), after its edits.
pub fn xfs_zero_free_space<D: WriteAt>(dev: D) -> anyhow::Result<u64> {
    let opts = vmscrub_xfs::EditorOptions {
        zero_freed: true,
        zero_free_space: true,
    };
    let r = vmscrub_xfs::Editor::open(dev, opts)?.commit()?;
    Ok(r.zero_ranges.total())
}
