//! The editor: remove a file or a tree, truncate, rewrite with shorter content —
//! so that nothing of what was removed survives in the volume's structures.
//!
//! Every edit is planned in full before a byte is written: the chains it touches are
//! walked (loops, bad or out-of-range entries are errors), the whole volume is
//! walked to prove no other file or directory shares a touched cluster, and every
//! FAT copy must agree on the touched entries. Only then are the writes applied:
//! content (rewrite), directory slots, every FAT copy, FSInfo.
//!
//! A removed entry's slots — the short entry, its long-name slots, and any orphaned
//! long-name slots directly before it — become `0xE5` followed by 31 zero bytes:
//! deleted (not end-of-directory, so later entries stay visible) and holding no name
//! byte, no cluster number, no size and no time.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use vmscrub_blockdev::{RangeSet, WriteAt};

use crate::dir::DirEntry;
use crate::dirent::{DELETED, ENTRY, NodeId, ROOT};
use crate::error::{FatError, Result};
use crate::fsinfo::{FsInfo, UNKNOWN};
use crate::table::{Chain, decode_entry, encode_entry, entry_position};
use crate::{FatFs, read};

/// What an edit did, and what the caller still has to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Device byte ranges that held removed content: freed clusters, and after a
    /// truncate or rewrite the slack behind the new end of the last kept cluster.
    /// **The caller must zero them** (`WriteAt::zero_range`); the editor does not,
    /// so an overlay can record them as holes.
    pub zero_ranges: RangeSet,
    /// Clusters returned to the free pool (in every FAT copy).
    pub freed_clusters: u32,
    /// Device offsets of the 32-byte directory slots the editor wiped.
    pub wiped_slots: Vec<u64>,
    /// Nodes removed, deepest first (empty for truncate and rewrite).
    pub removed: Vec<NodeId>,
}

struct Write {
    offset: u64,
    bytes: Vec<u8>,
    what: &'static str,
}

#[derive(Default)]
struct Plan {
    /// Entries the edit removes or changes: their chains are not "someone else's".
    targets: HashSet<NodeId>,
    /// Clusters of every touched chain; no other chain may hold one of them.
    owned: HashSet<u32>,
    /// The same clusters as runs, for comparing FAT copies.
    runs: Vec<Range<u32>>,
    /// New FAT values by cluster.
    fat: BTreeMap<u32, u32>,
    /// Content and directory-slot writes.
    writes: Vec<Write>,
    removal: Removal,
}

impl Plan {
    fn claim(&mut self, id: NodeId, chain: &Chain) -> Result<()> {
        self.targets.insert(id);
        for c in chain.clusters() {
            if !self.owned.insert(c) {
                return Err(FatError::CrossLinked { cluster: c });
            }
        }
        self.runs.extend(chain.runs().iter().cloned());
        Ok(())
    }

    fn free<D>(&mut self, fs: &FatFs<D>, chain: &Chain) {
        for c in chain.clusters() {
            self.fat.insert(c, 0);
        }
        for r in chain.byte_ranges(&fs.geo) {
            self.removal.zero_ranges.insert(r);
        }
        self.removal.freed_clusters += chain.len();
    }

    fn wipe(&mut self, entry: &DirEntry) {
        for &slot in entry.orphan_slots.iter().chain(&entry.slots) {
            let mut bytes = vec![0u8; ENTRY];
            bytes[0] = DELETED;
            self.writes.push(Write {
                offset: slot,
                bytes,
                what: "directory entry",
            });
            self.removal.wiped_slots.push(slot);
        }
        self.removal.removed.push(entry.id());
    }
}

impl<D: WriteAt> FatFs<D> {
    /// Removes a file (not a directory: see [`FatFs::remove_tree`]).
    pub fn remove_file(&mut self, path: &[u8]) -> Result<Removal> {
        let entry = self.target(path)?;
        if entry.node.is_dir {
            return Err(FatError::IsADirectory { path: shown(path) });
        }
        let mut plan = Plan::default();
        let chain = self.file_chain(&entry.node)?;
        plan.claim(entry.id(), &chain)?;
        plan.free(self, &chain);
        plan.wipe(&entry);
        self.execute(plan)
    }

    /// Removes a directory and everything below it, deepest entries first (a file
    /// is removed like [`FatFs::remove_file`]).
    pub fn remove_tree(&mut self, path: &[u8]) -> Result<Removal> {
        let entry = self.target(path)?;
        if !entry.node.is_dir {
            return self.remove_file(path);
        }
        let mut below = Vec::new();
        self.walk_from(&entry.node, b"", &mut below)?;
        let mut plan = Plan::default();
        // Pre-order reversed: every entry comes before the directory holding it.
        for w in below.iter().rev().map(|w| &w.entry).chain([&entry]) {
            let chain = if w.node.is_dir {
                self.chain(&w.node)?
            } else {
                self.file_chain(&w.node)?
            };
            plan.claim(w.id(), &chain)?;
            plan.free(self, &chain);
            plan.wipe(w);
        }
        self.execute(plan)
    }

    /// Truncates a file to zero bytes: its whole chain is freed and its entry keeps
    /// its name with size 0 and no first cluster.
    pub fn truncate(&mut self, path: &[u8]) -> Result<Removal> {
        let entry = self.target(path)?;
        if entry.node.is_dir {
            return Err(FatError::IsADirectory { path: shown(path) });
        }
        let chain = self.file_chain(&entry.node)?;
        if chain.is_empty() && entry.node.size == 0 {
            return Ok(Removal::default());
        }
        let mut plan = Plan::default();
        plan.claim(entry.id(), &chain)?;
        plan.free(self, &chain);
        plan.writes
            .push(self.short_entry_update(&entry, Some(0), 0)?);
        self.execute(plan)
    }

    /// Replaces a file's content with `content`, which may not be longer than the
    /// file. The new bytes go into the existing chain; clusters past the new end are
    /// freed.
    pub fn rewrite(&mut self, path: &[u8], content: &[u8]) -> Result<Removal> {
        let entry = self.target(path)?;
        if entry.node.is_dir {
            return Err(FatError::IsADirectory { path: shown(path) });
        }
        let new_len = content.len() as u64;
        if new_len > entry.node.size as u64 {
            return Err(FatError::RewriteTooLong {
                path: shown(path),
                new: new_len,
                old: entry.node.size as u64,
            });
        }
        if content.is_empty() {
            return self.truncate(path);
        }
        let g = self.geo.clone();
        let chain = self.file_chain(&entry.node)?;
        let keep = new_len.div_ceil(g.cluster_size as u64) as u32;
        let kept = chain.prefix(keep);
        let tail = chain.suffix(keep);
        let mut plan = Plan::default();
        plan.claim(entry.id(), &chain)?;
        plan.free(self, &tail);
        if let Some(last) = kept.clusters().last() {
            if !tail.is_empty() {
                plan.fat.insert(last, g.fat_type.eoc_marker());
            }
            let used = new_len % g.cluster_size as u64;
            if used != 0 {
                let end = g.cluster_offset(last) + g.cluster_size as u64;
                plan.removal
                    .zero_ranges
                    .insert(g.cluster_offset(last) + used..end);
            }
        }
        for e in read::extents(&g, kept.runs(), new_len) {
            let from = e.file_offset as usize;
            let bytes = content
                .get(from..from + e.len as usize)
                .unwrap_or_default()
                .to_vec();
            plan.writes.push(Write {
                offset: e.device_offset,
                bytes,
                what: "file content",
            });
        }
        plan.writes
            .push(self.short_entry_update(&entry, None, new_len as u32)?);
        self.execute(plan)
    }

    /// The entry an edit targets; the root cannot be one.
    fn target(&self, path: &[u8]) -> Result<DirEntry> {
        self.lookup_entry(path)?
            .ok_or_else(|| FatError::Root { path: shown(path) })
    }

    /// The short entry with a new size and, if given, a new first cluster.
    fn short_entry_update(
        &self,
        entry: &DirEntry,
        cluster: Option<u32>,
        size: u32,
    ) -> Result<Write> {
        let offset = entry.id();
        let mut e = [0u8; ENTRY];
        self.dev
            .read_exact_at(&mut e, offset)
            .map_err(|source| FatError::Read {
                what: "directory entry",
                offset,
                source,
            })?;
        if let Some(c) = cluster {
            e[20..22].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
            e[26..28].copy_from_slice(&(c as u16).to_le_bytes());
        }
        e[28..32].copy_from_slice(&size.to_le_bytes());
        Ok(Write {
            offset,
            bytes: e.to_vec(),
            what: "directory entry",
        })
    }

    /// Checks the plan against the whole volume, then applies it.
    fn execute(&mut self, mut plan: Plan) -> Result<Removal> {
        let g = self.geo.clone();
        if !g.mirrored && g.num_fats > 1 {
            return Err(FatError::Unsupported(
                "FAT32 mirroring is disabled, so only one FAT copy is current",
            ));
        }
        self.check_exclusive(&plan)?;
        self.check_copies_agree(&plan)?;

        let mut fat_writes = Vec::new();
        for copy in 0..g.num_fats {
            fat_writes.extend(self.fat_writes(copy, &plan.fat)?);
        }
        let freed: Vec<u32> = plan
            .fat
            .iter()
            .filter(|&(_, &v)| v == 0)
            .map(|(&c, _)| c)
            .collect();
        if let Some(mut info) = FsInfo::read(&self.dev, &g)? {
            info.free_count = self.fat.count_free(&self.dev, &g)? + freed.len() as u32;
            if let Some(&lowest) = freed.first() {
                let hint_valid = g.is_cluster(info.next_free);
                if !hint_valid || info.next_free > lowest {
                    info.next_free = lowest;
                }
            } else if !g.is_cluster(info.next_free) && info.next_free != UNKNOWN {
                info.next_free = UNKNOWN;
            }
            fat_writes.push(Write {
                offset: info.offset + 488,
                bytes: info.encode_counts().to_vec(),
                what: "FSInfo sector",
            });
        }
        plan.writes.extend(fat_writes);
        for w in &plan.writes {
            if w.offset + w.bytes.len() as u64 > g.volume_bytes() {
                return Err(FatError::Entry {
                    entry: w.offset,
                    why: "a planned write lies outside the volume",
                });
            }
        }

        // From here on the device changes.
        for w in &plan.writes {
            self.dev
                .write_all_at(&w.bytes, w.offset)
                .map_err(|source| FatError::Write {
                    what: w.what,
                    offset: w.offset,
                    source,
                })?;
        }
        for &c in plan.fat.keys() {
            let (pos, n) = entry_position(g.fat_type, c);
            self.fat.invalidate(pos..pos + n as u64);
        }
        Ok(plan.removal)
    }

    /// No chain outside the edit's targets may hold a cluster the edit frees or
    /// writes: that would be a cross-link, and freeing it would corrupt the other
    /// file. Walks the whole volume (any corruption met there also refuses the edit).
    fn check_exclusive(&self, plan: &Plan) -> Result<()> {
        let clash = |chain: &Chain| -> Result<()> {
            match chain.clusters().find(|c| plan.owned.contains(c)) {
                Some(c) => Err(FatError::CrossLinked { cluster: c }),
                None => Ok(()),
            }
        };
        clash(&self.dir_chain(ROOT)?)?;
        for w in self.walk()? {
            if plan.targets.contains(&w.entry.id()) {
                continue;
            }
            clash(&self.chain(&w.entry.node)?)?;
        }
        Ok(())
    }

    /// Every FAT copy must hold the same values for the touched chains.
    fn check_copies_agree(&self, plan: &Plan) -> Result<()> {
        let g = &self.geo;
        for run in &plan.runs {
            let reference = self.copy_values(g.active_fat, run.clone())?;
            for copy in (0..g.num_fats).filter(|&c| c != g.active_fat) {
                let values = self.copy_values(copy, run.clone())?;
                if let Some((i, (&v, &r))) = values
                    .iter()
                    .zip(&reference)
                    .enumerate()
                    .find(|(_, (v, r))| v != r)
                {
                    return Err(FatError::FatMismatch {
                        cluster: run.start + i as u32,
                        copy,
                        value: v,
                        reference: g.active_fat,
                        expected: r,
                    });
                }
            }
        }
        Ok(())
    }

    /// Bytes of FAT copy `copy` holding entries `run`, and where they start.
    fn copy_span(&self, copy: u32, run: Range<u32>) -> Result<(u64, Vec<u8>)> {
        let g = &self.geo;
        let (start, _) = entry_position(g.fat_type, run.start);
        let (last, n) = entry_position(g.fat_type, run.end - 1);
        let offset = g.fat_offset(copy) + start;
        let mut buf = vec![0u8; (last + n as u64 - start) as usize];
        self.dev
            .read_exact_at(&mut buf, offset)
            .map_err(|source| FatError::Read {
                what: "FAT",
                offset,
                source,
            })?;
        Ok((offset, buf))
    }

    fn copy_values(&self, copy: u32, run: Range<u32>) -> Result<Vec<u32>> {
        let g = &self.geo;
        let (start, _) = entry_position(g.fat_type, run.start);
        let (_, buf) = self.copy_span(copy, run.clone())?;
        Ok(run
            .map(|c| {
                let (pos, n) = entry_position(g.fat_type, c);
                let at = (pos - start) as usize;
                let mut b = [0u8; 4];
                b[..n].copy_from_slice(&buf[at..at + n]);
                decode_entry(g.fat_type, c, b)
            })
            .collect())
    }

    /// The writes that store `updates` into FAT copy `copy`, one per run of
    /// consecutive clusters (read-modify-write, so neighbouring FAT12 nibbles and
    /// FAT32's reserved bits survive).
    fn fat_writes(&self, copy: u32, updates: &BTreeMap<u32, u32>) -> Result<Vec<Write>> {
        let g = &self.geo;
        let mut out = Vec::new();
        let mut runs: Vec<Range<u32>> = Vec::new();
        for &c in updates.keys() {
            match runs.last_mut() {
                Some(r) if r.end == c => r.end += 1,
                _ => runs.push(c..c + 1),
            }
        }
        for run in runs {
            let (start, _) = entry_position(g.fat_type, run.start);
            let (offset, mut buf) = self.copy_span(copy, run.clone())?;
            for c in run {
                let (pos, n) = entry_position(g.fat_type, c);
                let at = (pos - start) as usize;
                let mut b = [0u8; 4];
                b[..n].copy_from_slice(&buf[at..at + n]);
                encode_entry(g.fat_type, c, updates.get(&c).copied().unwrap_or(0), &mut b);
                buf[at..at + n].copy_from_slice(&b[..n]);
            }
            out.push(Write {
                offset,
                bytes: buf,
                what: "FAT",
            });
        }
        Ok(out)
    }
}

fn shown(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}
