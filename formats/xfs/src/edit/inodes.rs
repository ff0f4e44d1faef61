//! Inodes given back: their bit set free in the inobt record of their chunk,
//! the finobt record updated or inserted, and the slot itself rewritten as a
//! fresh free inode — what `xfs_ialloc_inode_init` writes into a new chunk —
//! so no old content (forks, names in shortform directories, xattrs, symlink
//! targets) survives in the inode table. Chunks are never freed: a chunk whose
//! inodes are all free stays allocated, as with the `ikeep` mount option.

use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use crate::agbtree::{AgTree, InodeChunk};
use crate::edit::inode_raw::{RawInode, field};
use crate::error::{Error, Result};
use crate::fs::Xfs;
use crate::superblock::INCOMPAT_SPINODES;

const NULLAGINO: u32 = u32::MAX;
const INODES_PER_CHUNK: u32 = 64;

/// The inode number of AG inode `agino` in AG `agno`.
pub(crate) fn ino_of<D: ReadAt>(fs: &Xfs<D>, agno: u32, agino: u32) -> u64 {
    let shift = u32::from(fs.sb.ag_block_log) + u32::from(fs.sb.inop_block_log);
    (u64::from(agno) << shift) | u64::from(agino)
}

/// One inobt/finobt record in its on-disk layout (sparse or not).
pub(crate) fn encode_chunk(sparse: bool, c: &InodeChunk) -> Vec<u8> {
    let mut r = Vec::with_capacity(16);
    r.extend_from_slice(&c.start_ino.to_be_bytes());
    if sparse {
        r.extend_from_slice(&c.holemask.to_be_bytes());
        r.push(c.count);
        r.push(c.free_count);
    } else {
        r.extend_from_slice(&u32::from(c.free_count).to_be_bytes());
    }
    r.extend_from_slice(&c.free.to_be_bytes());
    r
}

fn in_hole(c: &InodeChunk, idx: u32) -> bool {
    c.holemask & (1 << (idx / 4)) != 0
}

/// Marks `inodes` (AG inode numbers) free in the inode trees' records and
/// stages each slot as a fresh free inode. Refuses an inode that is already
/// free, in a sparse hole, outside every chunk or on an unlinked list; then
/// nothing is staged.
pub(crate) fn free_inodes<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    agno: u32,
    ino: &mut [InodeChunk],
    fino: Option<&mut Vec<InodeChunk>>,
    inodes: &[u32],
) -> Result<u64> {
    let sorted = mark_free(agno, ino, fino, inodes)?;
    let mut fresh_slots = Vec::with_capacity(sorted.len());
    for &agino in &sorted {
        let raw = RawInode::read(fs, ino_of(fs, agno, agino))?;
        if raw.u32(field::NEXT_UNLINKED) != NULLAGINO {
            return Err(refuse(agno, agino, "it is on an unlinked list"));
        }
        if raw.u32(field::NLINK) != 0 {
            return Err(refuse(agno, agino, "it still has links"));
        }
        // The kernel's `xfs_ifree` bumps the generation: a file handle of
        // the removed file (NFS) must never match the slot's next file.
        let generation = raw.u32(field::GEN).wrapping_add(1);
        fresh_slots.push(fresh(fs, raw, generation));
    }
    for slot in fresh_slots {
        slot.write(stage)?;
    }
    Ok(sorted.len() as u64)
}

/// The record side of [`free_inodes`], on plain vectors: each inode's bit
/// set free in its inobt record (found by binary search), then each touched
/// chunk's finobt record updated, or inserted when the chunk had no free
/// inode before — the finobt sorted once at the end. Returns the inodes
/// sorted.
pub(crate) fn mark_free(
    agno: u32,
    ino: &mut [InodeChunk],
    fino: Option<&mut Vec<InodeChunk>>,
    inodes: &[u32],
) -> Result<Vec<u32>> {
    let mut sorted = inodes.to_vec();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::refused(
            "inode release",
            "an inode is released twice",
        ));
    }
    check_sorted(agno, "inobt", ino)?;
    // (chunk index, first inode released in it, the chunk had free inodes)
    let mut touched: Vec<(usize, u32, bool)> = vec![];
    for &agino in &sorted {
        let i = ino
            .partition_point(|c| c.start_ino <= agino)
            .checked_sub(1)
            .filter(|&i| {
                ino.get(i)
                    .is_some_and(|c| agino - c.start_ino < INODES_PER_CHUNK)
            })
            .ok_or_else(|| refuse(agno, agino, "no inode chunk holds it"))?;
        let c = &mut ino[i];
        let idx = agino - c.start_ino;
        if in_hole(c, idx) {
            return Err(refuse(agno, agino, "it lies in a sparse chunk's hole"));
        }
        if c.free & (1 << idx) != 0 {
            return Err(refuse(agno, agino, "the inobt says it is already free"));
        }
        if touched.last().is_none_or(|t| t.0 != i) {
            touched.push((i, agino, c.free_count > 0));
        }
        c.free |= 1 << idx;
        c.free_count = c.free_count.saturating_add(1);
    }
    let Some(f) = fino else {
        return Ok(sorted);
    };
    check_sorted(agno, "finobt", f)?;
    let mut added = vec![];
    for (i, agino, had_free) in touched {
        let Some(&c) = ino.get(i) else { continue };
        match f.binary_search_by_key(&c.start_ino, |x| x.start_ino) {
            Ok(j) => f[j] = c,
            Err(_) if !had_free => added.push(c),
            Err(_) => {
                return Err(refuse(
                    agno,
                    agino,
                    "its chunk has free inodes the finobt lacks",
                ));
            }
        }
    }
    f.extend(added);
    f.sort_by_key(|x| x.start_ino);
    Ok(sorted)
}

/// Inode tree records in order and apart (64 inodes each): the binary
/// searches rely on it, and a tree that breaks it is not what it claims.
fn check_sorted(agno: u32, tree: &'static str, recs: &[InodeChunk]) -> Result<()> {
    let apart = |w: &[InodeChunk]| {
        u64::from(w[0].start_ino) + u64::from(INODES_PER_CHUNK) <= u64::from(w[1].start_ino)
    };
    if recs.windows(2).all(apart) {
        return Ok(());
    }
    Err(Error::refused(
        tree,
        format!("AG {agno}: records out of order or overlapping"),
    ))
}

fn refuse(agno: u32, agino: u32, why: &str) -> Error {
    Error::refused("inode release", format!("AG {agno} inode {agino}: {why}"))
}

/// The slot of `raw` as a new free inode: magic, version 3, `generation`,
/// its number, the metadata UUID, no unlinked successor; everything else zero.
fn fresh<D: ReadAt>(fs: &Xfs<Arc<Staged<D>>>, raw: RawInode, generation: u32) -> RawInode {
    let mut new = RawInode {
        ino: raw.ino,
        offset: raw.offset,
        buf: vec![0u8; raw.buf.len()],
    };
    new.buf[0..2].copy_from_slice(b"IN");
    new.set_u8(4, 3);
    new.set_u32(field::GEN, generation);
    new.set_u32(field::NEXT_UNLINKED, NULLAGINO);
    new.set_u64(field::INO, raw.ino);
    let uuid = fs.sb.metadata_uuid();
    new.buf[field::UUID..field::UUID + 16].copy_from_slice(&uuid);
    new
}

/// Every free inode slot inside an allocated chunk rewritten as a fresh free
/// inode. A slot marked free that still looks in use (mode set) refuses: the
/// inobt and the inode disagree. Returns how many slots were rewritten.
pub(crate) fn wipe_free_inodes<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
) -> Result<u64> {
    if !fs.sb.has_crc() {
        return Err(Error::refused(
            "inode table",
            "version 4 filesystems are not edited",
        ));
    }
    let sparse = fs.sb.incompat & INCOMPAT_SPINODES != 0;
    let mut n = 0u64;
    for agno in 0..fs.sb.ag_count {
        for c in fs.inode_chunks(agno, AgTree::Ino)? {
            for idx in 0..INODES_PER_CHUNK {
                if (sparse && in_hole(&c, idx)) || c.free & (1 << idx) == 0 {
                    continue;
                }
                let agino = c.start_ino.saturating_add(idx);
                let raw = RawInode::read(fs, ino_of(fs, agno, agino))?;
                if raw.u16(field::MODE) != 0 {
                    return Err(refuse(agno, agino, "marked free but its mode says in use"));
                }
                // Already free: the kernel bumped the generation when it
                // freed the slot.
                let generation = raw.u32(field::GEN);
                let new = fresh(fs, raw, generation);
                new.write(stage)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(start_ino: u32, free: u64) -> InodeChunk {
        InodeChunk {
            start_ino,
            holemask: 0,
            count: 64,
            free_count: free.count_ones() as u8,
            free,
        }
    }

    #[test]
    fn marks_free_and_keeps_the_finobt_in_step() {
        let mut ino = vec![chunk(64, 0), chunk(128, 1), chunk(256, 0)];
        let mut fino = vec![chunk(128, 1)];
        let got = mark_free(0, &mut ino, Some(&mut fino), &[300, 70, 129, 65]).unwrap();
        assert_eq!(got, vec![65, 70, 129, 300]);
        let want = vec![
            chunk(64, (1 << 1) | (1 << 6)),
            chunk(128, 0b11),
            chunk(256, 1 << 44),
        ];
        assert_eq!(ino, want);
        assert_eq!(fino, want);
        let refused = |ino: &mut [InodeChunk], fino: &mut Vec<InodeChunk>, inodes: &[u32]| {
            matches!(
                mark_free(0, ino, Some(fino), inodes),
                Err(Error::Refused { .. })
            )
        };
        let base = vec![chunk(64, 0), chunk(128, 1)];
        assert!(
            refused(&mut base.clone(), &mut vec![], &[128 + 5]),
            "finobt lacks it"
        );
        assert!(refused(&mut base.clone(), &mut vec![], &[200]), "no chunk");
        assert!(refused(&mut base.clone(), &mut vec![], &[63]), "no chunk");
        assert!(
            refused(&mut base.clone(), &mut vec![], &[128]),
            "already free"
        );
        assert!(refused(&mut base.clone(), &mut vec![], &[65, 65]), "twice");
        let mut holed = vec![InodeChunk {
            holemask: 0b10,
            ..chunk(64, 0)
        }];
        assert!(refused(&mut holed, &mut vec![], &[64 + 5]), "a hole");
        assert!(refused(
            &mut [chunk(128, 0), chunk(64, 0)],
            &mut vec![],
            &[65]
        ));
    }

    #[test]
    fn many_inodes_are_placed_not_scanned() {
        // 50k full chunks, two inodes freed in each: a linear search per
        // inode and a finobt re-sort per insert would take minutes here.
        let mut ino: Vec<InodeChunk> = (0..50_000).map(|i| chunk(64 * i, 0)).collect();
        let inodes: Vec<u32> = (0..50_000u32)
            .rev()
            .flat_map(|i| [64 * i + 3, 64 * i + 60])
            .collect();
        let mut fino = vec![];
        let got = mark_free(0, &mut ino, Some(&mut fino), &inodes).unwrap();
        assert_eq!(got.len(), 100_000);
        assert_eq!(fino.len(), 50_000);
        assert_eq!(fino[123], chunk(64 * 123, (1 << 3) | (1 << 60)));
        assert_eq!(fino, ino);
    }
}
