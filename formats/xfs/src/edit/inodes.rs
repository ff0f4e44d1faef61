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
/// free, in a sparse hole, outside every chunk or on an unlinked list.
pub(crate) fn free_inodes<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    agno: u32,
    ino: &mut [InodeChunk],
    fino: Option<&mut Vec<InodeChunk>>,
    inodes: &[u32],
) -> Result<u64> {
    let mut fino = fino;
    let mut sorted = inodes.to_vec();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::refused(
            "inode release",
            "an inode is released twice",
        ));
    }
    for &agino in &sorted {
        let i = ino
            .iter()
            .position(|c| c.start_ino <= agino && agino - c.start_ino < INODES_PER_CHUNK)
            .ok_or_else(|| refuse(agno, agino, "no inode chunk holds it"))?;
        let c = &mut ino[i];
        let idx = agino - c.start_ino;
        if in_hole(c, idx) {
            return Err(refuse(agno, agino, "it lies in a sparse chunk's hole"));
        }
        if c.free & (1 << idx) != 0 {
            return Err(refuse(agno, agino, "the inobt says it is already free"));
        }
        let had_free = c.free_count > 0;
        c.free |= 1 << idx;
        c.free_count = c.free_count.saturating_add(1);
        let updated = *c;
        if let Some(f) = fino.as_deref_mut() {
            match f.iter().position(|x| x.start_ino == updated.start_ino) {
                Some(j) => f[j] = updated,
                None if !had_free => {
                    f.push(updated);
                    f.sort_by_key(|x| x.start_ino);
                }
                None => {
                    return Err(refuse(
                        agno,
                        agino,
                        "its chunk has free inodes the finobt lacks",
                    ));
                }
            }
        }
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
        fresh(fs, raw, generation).write(stage)?;
    }
    Ok(sorted.len() as u64)
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
