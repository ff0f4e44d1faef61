//! Free clusters by every witness: the FAT copies and the directory tree.
//!
//! A cluster is free only if every (mirrored) FAT copy says so and no file or
//! directory reaches it. Zeroing what one witness wrongly calls free destroys
//! data a repair tool (`fsck.fat`) would recover, so any disagreement is an
//! error naming the clusters, and nothing is freed:
//!
//! - **copies that disagree** (mirrored copies are meant to be identical);
//! - **cross-linked chains**: two chains (or a chain and itself: a loop) reach
//!   one cluster;
//! - **lost chains**: clusters the FAT marks allocated that no file reaches
//!   (`fsck.fat` reclaims them into `FSCK0000.REC` files: they may be data);
//! - a chain that runs into a free or invalid entry.
//!
//! Memory: one decoded copy (4 bytes per cluster, no more than the FAT on disk)
//! and one bit per cluster; every loop is bounded by the cluster count.

use std::ops::Range;

use vmscrub_blockdev::ReadAt;

use crate::FatFs;
use crate::bpb::Geometry;
use crate::error::FatError;
use crate::table::{FatEntry, decode_entry, entry_position};

/// Most ranges named in one disagreement.
const MAX_NAMED: usize = 8;

/// Why the witnesses of free space disagree.
#[derive(Debug, thiserror::Error)]
pub enum Disagreement {
    #[error(
        "FAT copy {copy} disagrees with copy {reference} on clusters {ranges} (fsck.fat -n reports \
         \"FATs differ\")"
    )]
    CopiesDiffer {
        copy: u32,
        reference: u32,
        ranges: String,
    },
    #[error("clusters {ranges} are cross-linked: {first} and {second} both reach them")]
    CrossLinked {
        ranges: String,
        first: String,
        second: String,
    },
    #[error("the chain of {path} runs into cluster {cluster}, whose FAT entry is {entry}")]
    BrokenChain {
        path: String,
        cluster: u32,
        entry: String,
    },
    #[error(
        "clusters {ranges} ({count} in all) are allocated in the FAT but no file reaches them \
         (lost chains, which fsck.fat recovers as files)"
    )]
    LostChains { ranges: String, count: u64 },
    #[error(transparent)]
    Fat(#[from] FatError),
}

impl<D: ReadAt> FatFs<D> {
    /// Runs of clusters free by every witness, or why the witnesses disagree.
    pub fn free_by_every_witness(&self) -> Result<Vec<Range<u32>>, Disagreement> {
        let g = &self.geo;
        let reference = g.active_fat;
        let table = read_copy(&self.dev, g, reference)?;
        if g.mirrored {
            for copy in (0..g.num_fats).filter(|&c| c != reference) {
                let other = read_copy(&self.dev, g, copy)?;
                let differ = runs((2..table.len()).filter(|&c| table[c] != other[c]));
                if !differ.is_empty() {
                    return Err(Disagreement::CopiesDiffer {
                        copy,
                        reference,
                        ranges: named(&differ),
                    });
                }
            }
        }
        let owners = self.owners(&table)?;
        let mut lost: Vec<usize> = Vec::new();
        let mut free = Vec::new();
        for c in 2..table.len() {
            match FatEntry::classify(g, table[c]) {
                FatEntry::Free => free.push(c),
                FatEntry::Bad => {}
                _ if owners[c].is_none() => lost.push(c),
                _ => {}
            }
        }
        if !lost.is_empty() {
            return Err(Disagreement::LostChains {
                count: lost.len() as u64,
                ranges: named(&runs(lost.into_iter())),
            });
        }
        Ok(runs(free.into_iter())
            .into_iter()
            .map(|r| r.start as u32..r.end as u32)
            .collect())
    }

    /// Which walk entry (index into the walk, plus one; the root is 0) owns each
    /// cluster, following every chain through `table`.
    fn owners(&self, table: &[u32]) -> Result<Vec<Option<u32>>, Disagreement> {
        let g = &self.geo;
        let entries = self.walk()?;
        let mut owner: Vec<Option<u32>> = vec![None; table.len()];
        let name = |i: u32| -> String {
            if i == 0 {
                "the root directory".to_string()
            } else {
                entries.get(i as usize - 1).map_or_else(String::new, |e| {
                    String::from_utf8_lossy(&e.path).into_owned()
                })
            }
        };
        let mut starts: Vec<(u32, u32)> = Vec::new();
        let root = self.root_node();
        if root.first_cluster != 0 {
            starts.push((0, root.first_cluster));
        }
        for (i, e) in entries.iter().enumerate() {
            if e.entry.node.first_cluster != 0 {
                starts.push((i as u32 + 1, e.entry.node.first_cluster));
            }
        }
        for (who, first) in starts {
            let mut c = first;
            let mut cross: Vec<usize> = Vec::new();
            let mut other = None;
            for _ in 0..table.len() {
                let Some(slot) = owner.get_mut(c as usize).filter(|_| g.is_cluster(c)) else {
                    return Err(Disagreement::BrokenChain {
                        path: name(who),
                        cluster: c,
                        entry: "outside the volume".into(),
                    });
                };
                if let Some(o) = *slot {
                    cross.push(c as usize);
                    other.get_or_insert(o);
                } else {
                    *slot = Some(who);
                }
                match FatEntry::classify(g, table[c as usize]) {
                    FatEntry::Next(n) if other.is_none() => c = n,
                    FatEntry::EndOfChain => break,
                    FatEntry::Next(_) => break, // the rest is the other chain's
                    FatEntry::Free => {
                        return Err(Disagreement::BrokenChain {
                            path: name(who),
                            cluster: c,
                            entry: "free".into(),
                        });
                    }
                    FatEntry::Bad => {
                        return Err(Disagreement::BrokenChain {
                            path: name(who),
                            cluster: c,
                            entry: "the bad-cluster marker".into(),
                        });
                    }
                    FatEntry::Invalid(v) => {
                        return Err(Disagreement::BrokenChain {
                            path: name(who),
                            cluster: c,
                            entry: format!("{v:#x} (no such cluster)"),
                        });
                    }
                }
            }
            if let Some(o) = other {
                return Err(Disagreement::CrossLinked {
                    ranges: named(&runs(cross.into_iter())),
                    first: name(o),
                    second: name(who),
                });
            }
        }
        Ok(owner)
    }
}

/// Every entry of FAT copy `copy`, indexed by cluster (0..=max cluster).
fn read_copy<D: ReadAt>(dev: &D, g: &Geometry, copy: u32) -> Result<Vec<u32>, FatError> {
    let base = g.fat_offset(copy);
    let len = g.fat_used_bytes();
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    dev.read_exact_at(&mut buf, base)
        .map_err(|source| FatError::Read {
            what: "FAT",
            offset: base,
            source,
        })?;
    Ok((0..=g.max_cluster())
        .map(|c| {
            let (pos, k) = entry_position(g.fat_type, c);
            let mut b = [0u8; 4];
            for (i, slot) in b.iter_mut().take(k).enumerate() {
                *slot = buf.get(pos as usize + i).copied().unwrap_or(0);
            }
            decode_entry(g.fat_type, c, b)
        })
        .collect())
}

/// Consecutive numbers as ranges.
fn runs(items: impl Iterator<Item = usize>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for c in items {
        match out.last_mut() {
            Some(r) if r.end == c => r.end += 1,
            _ => out.push(c..c + 1),
        }
    }
    out
}

/// `5-9, 12, …` (at most [`MAX_NAMED`] ranges).
fn named(rs: &[Range<usize>]) -> String {
    let mut v: Vec<String> = rs
        .iter()
        .take(MAX_NAMED)
        .map(|r| {
            if r.end - r.start == 1 {
                r.start.to_string()
            } else {
                format!("{}-{}", r.start, r.end - 1)
            }
        })
        .collect();
    if rs.len() > MAX_NAMED {
        v.push(format!("… ({} ranges)", rs.len()));
    }
    v.join(", ")
}
