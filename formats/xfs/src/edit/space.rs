//! Gives an AG's released extents and inodes back: reference counts
//! decremented for shared blocks, reverse mappings removed, the rest added to
//! the free-space trees, inodes marked free — every touched tree rebuilt from
//! its new record set into its own old blocks (plus the AGFL's for the trees
//! whose blocks the AGFL feeds), the AG headers rewritten to match.
//!
//! Block ownership is what keeps the rmapbt unchanged by the rebuilds: the
//! bnobt, cntbt, rmapbt and AGFL blocks are all owned by `XFS_RMAP_OWN_AG`, so
//! moving blocks among them changes no reverse mapping. The refcountbt
//! (`OWN_REFC`) and the inode trees (`OWN_INOBT`) only reuse their own blocks;
//! blocks they no longer need are freed with their reverse mapping trimmed.

use std::ops::Range;
use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use crate::agbtree::{AgTree, FreeExtent, InodeChunk, Rmap};
use crate::be::{u32_at, u64_at};
use crate::checksum;
use crate::edit::ag_state::{AGF_BTREEBLKS, AGF_REFC_BLOCKS, AGF_RMAP_BLOCKS, AgState};
use crate::edit::btree_build::{Built, NULLAGBLOCK, TreeCtx, ag_block_byte, blocks_needed};
use crate::edit::inodes::{encode_chunk, free_inodes};
use crate::edit::rmap_records::{
    OWN_INOBT, OWN_REFC, check_unmapped, rmap_add_special, rmap_remove_all,
};
use crate::edit::space_records::{
    add_free, balance_own_ag, minus_blocks, refcount_release_all, runs_of, special_runs,
    take_blocks,
};
use crate::error::{Error, Result};
use crate::fs::Xfs;
use crate::superblock::{INCOMPAT_SPINODES, RO_COMPAT_INOBTCNT, Superblock};

// The editor's entry points to the AG side, in one place (used as it lands).
#[allow(unused_imports)]
pub(crate) use crate::edit::free_space::{free_ranges, update_superblock_counters};
#[allow(unused_imports)]
pub(crate) use crate::edit::inodes::wipe_free_inodes;

/// Everything one AG gives back, gathered over all the editor's operations.
#[derive(Debug, Default, Clone)]
pub(crate) struct AgRelease {
    pub extents: Vec<Released>,
    /// AG inode numbers to free: their names are gone and their link count is 0.
    pub inodes: Vec<u32>,
}

/// One extent a file gives back, with the reverse mapping it had.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Released {
    pub agbno: u32,
    pub len: u32,
    /// The inode number.
    pub owner: u64,
    /// File offset in blocks (0 for bmbt blocks).
    pub offset: u64,
    pub attr_fork: bool,
    /// A bmap B+tree block of the fork.
    pub bmbt: bool,
    pub unwritten: bool,
}

/// What a release did.
#[derive(Debug, Default)]
pub(crate) struct AgReleased {
    /// Blocks returned to free space: the released blocks no other file
    /// shares, plus tree blocks the rebuilt refcount and inode trees no
    /// longer need. The free-space trees' own growth is not subtracted (the
    /// kernel counts their blocks as free, `sb_fdblocks`).
    pub freed_blocks: u64,
    /// Released blocks only decremented in the refcountbt, kept.
    pub shared_blocks: u64,
    pub freed_inodes: u64,
    /// Free blocks the refcount and inode trees grew into (not in the
    /// design's list: free space changed by `freed_blocks - grown_blocks`).
    pub grown_blocks: u64,
    /// Device byte ranges of what was freed (never a shared block, never a
    /// block in use after the release): the editor zeroes them after commit.
    pub zero: Vec<Range<u64>>,
}

// AGF/AGI/AGFL field offsets (xfs_format.h).
const AGF_ROOTS: usize = 16;
const AGF_LEVELS: usize = 28;
const AGF_FLFIRST: usize = 40;
const AGF_FLLAST: usize = 44;
const AGF_FLCOUNT: usize = 48;
const AGF_FREEBLKS: usize = 52;
const AGF_LONGEST: usize = 56;
const AGF_REFC_ROOT: usize = 88;
const AGF_REFC_LEVEL: usize = 92;
const AGF_LSN: usize = 208;
const AGF_CRC: usize = 216;
const AGI_ROOT: usize = 20;
const AGI_LEVEL: usize = 24;
const AGI_FREECOUNT: usize = 28;
const AGI_CRC: usize = 312;
const AGI_FREE_ROOT: usize = 328;
const AGI_FREE_LEVEL: usize = 332;
const AGI_IBLOCKS: usize = 336;
const AGI_FBLOCKS: usize = 340;
const AGFL_HDR: usize = 36;
const AGFL_CRC: usize = 32;

/// Gives back what `rel` releases in AG `agno`, staged; see the module doc.
pub(crate) fn release<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    agno: u32,
    rel: &AgRelease,
) -> Result<AgReleased> {
    if !fs.sb.has_crc() {
        return Err(Error::refused("AG", "version 4 filesystems are not edited"));
    }
    if rel.extents.is_empty() && rel.inodes.is_empty() {
        return Ok(AgReleased::default());
    }
    let mut ag = AgState::read(fs, agno)?;
    let (_, agi_h) = fs.ag_headers(agno)?;
    if !rel.inodes.is_empty() && agi_h.has_unlinked() {
        return Err(Error::refused(
            "AGI",
            format!("AG {agno} has unlinked inodes pending"),
        ));
    }
    // The superblock, AGF, AGI and AGFL: one sector each.
    let headers = (4 * u32::from(fs.sb.sect_size)).div_ceil(fs.sb.block_size);
    check_extents(&fs.sb, &ag, rel, headers)?;
    let mut out = AgReleased::default();
    let released: Vec<(u32, u32)> = rel.extents.iter().map(|e| (e.agbno, e.len)).collect();
    let mut freed = match ag.refc.as_mut() {
        Some((recs, _)) if !released.is_empty() => {
            let (f, s) = refcount_release_all(recs, &released)?;
            out.shared_blocks = s;
            f
        }
        _ => released,
    };
    if let Some((recs, _)) = ag.rmap.as_mut() {
        rmap_remove_all(recs, &rel.extents)?;
        check_unmapped(recs, &freed)?;
    }
    let lsn = u64_at(&ag.agf, AGF_LSN);
    let ctx = TreeCtx {
        fs,
        stage,
        agno,
        lsn,
    };
    let mut space = Space {
        free: add_free(&ag.free, &freed)?,
        taken: vec![],
        given: vec![],
    };
    let refc_built = rebuild_refcount(&ctx, &mut ag, &mut space)?;
    if !rel.inodes.is_empty() {
        let fino = ag.fino.as_mut().map(|f| &mut f.0);
        out.freed_inodes = free_inodes(fs, stage, agno, &mut ag.ino.0, fino, &rel.inodes)?;
    }
    let ino_built = if rel.inodes.is_empty() {
        None
    } else {
        Some(rebuild_inode_trees(&ctx, &mut ag, &mut space)?)
    };
    let own = rebuild_own_ag(&ctx, &mut ag, space.free.clone())?;
    write_agfl(stage, &mut ag, &own.agfl)?;
    // Blocks any rebuilt tree uses now; a freed block that went to the AGFL
    // may be zeroed (its content is never read).
    let mut in_use = own.tree_blocks;
    if let Some(b) = &refc_built {
        in_use.extend(&b.blocks);
    }
    if let Some((ib, fb)) = &ino_built {
        in_use.extend(&ib.blocks);
        in_use.extend(fb.iter().flat_map(|b| b.blocks.iter()));
    }
    if let Some(b) = refc_built {
        put_root(&mut ag.agf, AGF_REFC_ROOT, AGF_REFC_LEVEL, &b);
        set32(&mut ag.agf, AGF_REFC_BLOCKS, b.blocks.len() as u32);
    }
    if let Some((ib, fb)) = ino_built {
        put_root(&mut ag.agi, AGI_ROOT, AGI_LEVEL, &ib);
        if let Some(fb) = &fb {
            put_root(&mut ag.agi, AGI_FREE_ROOT, AGI_FREE_LEVEL, fb);
        }
        if fs.sb.ro_compat & RO_COMPAT_INOBTCNT != 0 {
            set32(&mut ag.agi, AGI_IBLOCKS, ib.blocks.len() as u32);
            set32(
                &mut ag.agi,
                AGI_FBLOCKS,
                fb.map_or(0, |b| b.blocks.len() as u32),
            );
        }
        let fc = u32_at(&ag.agi, AGI_FREECOUNT).saturating_add(out.freed_inodes as u32);
        set32(&mut ag.agi, AGI_FREECOUNT, fc);
    }
    put_header(stage, ag.agi_off, &mut ag.agi, AGI_CRC)?;
    put_header(stage, ag.agf_off, &mut ag.agf, AGF_CRC)?;
    freed.extend(&space.given);
    let given: u64 = freed.iter().map(|f| u64::from(f.1)).sum();
    out.freed_blocks = given;
    out.grown_blocks = space.taken.len() as u64;
    for (agbno, len) in minus_blocks(&freed, &in_use) {
        let s = ag_block_byte(fs, agno, agbno)?;
        out.zero
            .push(s..s + u64::from(len) * u64::from(fs.sb.block_size));
    }
    Ok(out)
}

/// Refuses released extents outside the AG or on blocks the AG itself uses
/// (headers, internal log, inode chunks, tree and AGFL blocks): without an
/// rmapbt nothing else would tell a file's map that claims them. Two files
/// may release the same blocks when they share them: the refcountbt decides,
/// and a block freed twice is refused when the free extents are merged.
fn check_extents(sb: &Superblock, ag: &AgState, rel: &AgRelease, headers: u32) -> Result<()> {
    let length = u32_at(&ag.agf, 12);
    let used = ag.used_runs(sb, headers);
    for e in &rel.extents {
        let (s, l) = (e.agbno, e.len);
        let end = u64::from(s) + u64::from(l);
        if l == 0 || end > u64::from(length) {
            return Err(Error::refused(
                "extent release",
                format!("AG {}: blocks {s}..{end} lie outside the AG", ag.agno),
            ));
        }
        if let Some((b, n, what)) = used.overlap(s, l) {
            return Err(Error::refused(
                what.structure(),
                format!(
                    "AG {}: blocks {s}..{end} of inode {} are released, but blocks {b}+{n} hold the {}",
                    ag.agno,
                    e.owner,
                    what.structure()
                ),
            ));
        }
    }
    Ok(())
}

/// Free space while the AG's trees are rebuilt: what the release frees, less
/// blocks taken for trees that grew, plus blocks trees no longer need.
struct Space {
    free: Vec<FreeExtent>,
    /// Blocks taken from free space for the refcount or inode trees.
    taken: Vec<u32>,
    /// Tree blocks given back to free space.
    given: Vec<(u32, u32)>,
}

impl Space {
    /// Grows `pool` to `need` blocks from free space, mapped to `owner`.
    fn fit(
        &mut self,
        rmaps: Option<&mut Vec<Rmap>>,
        pool: &mut Vec<u32>,
        need: usize,
        owner: u64,
    ) -> Result<()> {
        let mut rmaps = rmaps;
        let mut rounds = 0;
        while pool.len() < need && rounds < 64 {
            let (start, t) = take_blocks(&mut self.free, (need - pool.len()) as u32)?;
            pool.extend(start..start + t);
            self.taken.extend(start..start + t);
            if let Some(r) = rmaps.as_deref_mut() {
                rmap_add_special(r, start, t, owner);
            }
            rounds += 1;
        }
        Ok(())
    }

    /// Returns `blocks` of a tree owned by `owner` to free space.
    fn give_back(
        &mut self,
        rmaps: Option<&mut Vec<Rmap>>,
        blocks: &[u32],
        owner: u64,
    ) -> Result<()> {
        let runs = runs_of(blocks);
        self.free = add_free(&self.free, &runs)?;
        self.taken.retain(|b| !blocks.contains(b));
        if let Some(r) = rmaps {
            rmap_remove_all(r, &special_runs(&runs, owner))?;
        }
        self.given.extend(runs);
        Ok(())
    }
}

/// Rebuilds the refcountbt when its records changed, into its own blocks
/// (plus free blocks if it grew; spare ones go back to free space).
fn rebuild_refcount<D: ReadAt>(
    ctx: &TreeCtx<'_, D>,
    ag: &mut AgState,
    space: &mut Space,
) -> Result<Option<Built>> {
    let Some((recs, blocks)) = ag.refc.as_ref() else {
        return Ok(None);
    };
    if ctx.fs.refcounts(ag.agno)? == *recs {
        return Ok(None);
    }
    let raw: Vec<Vec<u8>> = recs
        .iter()
        .map(|r| {
            [
                r.agbno.to_be_bytes(),
                r.len.to_be_bytes(),
                r.refcount.to_be_bytes(),
            ]
            .concat()
        })
        .collect();
    let mut pool = blocks.clone();
    let need = blocks_needed(AgTree::Refcount, ctx.fs.sb.block_size as usize, raw.len());
    let mut rmaps = ag.rmap.as_mut().map(|r| &mut r.0);
    space.fit(rmaps.as_deref_mut(), &mut pool, need, OWN_REFC)?;
    let built = ctx.build(AgTree::Refcount, &raw, &pool)?;
    space.give_back(rmaps, &pool[built.blocks.len()..], OWN_REFC)?;
    Ok(Some(built))
}

/// Rebuilds the inobt and finobt (both owned by `OWN_INOBT`, so they share
/// one pool: their blocks, plus free blocks if they grew).
fn rebuild_inode_trees<D: ReadAt>(
    ctx: &TreeCtx<'_, D>,
    ag: &mut AgState,
    space: &mut Space,
) -> Result<(Built, Option<Built>)> {
    let sparse = ctx.fs.sb.incompat & INCOMPAT_SPINODES != 0;
    let bs = ctx.fs.sb.block_size as usize;
    let enc = |v: &[InodeChunk]| {
        v.iter()
            .map(|c| encode_chunk(sparse, c))
            .collect::<Vec<_>>()
    };
    let mut pool = ag.ino.1.clone();
    let mut need = blocks_needed(AgTree::Ino, bs, ag.ino.0.len());
    if let Some((recs, b)) = &ag.fino {
        pool.extend(b);
        need += blocks_needed(AgTree::Fino, bs, recs.len());
    }
    let mut rmaps = ag.rmap.as_mut().map(|r| &mut r.0);
    space.fit(rmaps.as_deref_mut(), &mut pool, need, OWN_INOBT)?;
    let ib = ctx.build(AgTree::Ino, &enc(&ag.ino.0), &pool)?;
    let used = ib.blocks.len();
    let fb = match &ag.fino {
        Some((recs, _)) => Some(ctx.build(AgTree::Fino, &enc(recs), &pool[used..])?),
        None => None,
    };
    let used = used + fb.as_ref().map_or(0, |b| b.blocks.len());
    space.give_back(rmaps, &pool[used..], OWN_INOBT)?;
    Ok((ib, fb))
}

/// Rebuilds the bnobt, cntbt and rmapbt from the `OWN_AG` pool (their old
/// blocks and the AGFL's), writes their roots into the AGF and returns what
/// is left for the AGFL.
fn rebuild_own_ag<D: ReadAt>(
    ctx: &TreeCtx<'_, D>,
    ag: &mut AgState,
    mut free: Vec<FreeExtent>,
) -> Result<OwnAg> {
    let bs = ctx.fs.sb.block_size as usize;
    let mut pool = ag.bno_blocks.clone();
    pool.extend(&ag.cnt_blocks);
    if let Some((_, b)) = &ag.rmap {
        pool.extend(b);
    }
    pool.extend(&ag.agfl);
    let rmapbt = ag.rmap.is_some();
    let need = |nfree: usize, nrmap: usize| {
        2 * blocks_needed(AgTree::Bno, bs, nfree)
            + if rmapbt {
                blocks_needed(AgTree::Rmap, bs, nrmap)
            } else {
                0
            }
    };
    let slots = (ag.agfl_buf.len() - AGFL_HDR) / 4;
    let rmaps = ag.rmap.as_mut().map(|r| &mut r.0);
    let taken = balance_own_ag(&mut free, rmaps, &mut pool, need, slots)?;
    let free = &free[..];
    let enc = |f: &FreeExtent| [f.agbno.to_be_bytes(), f.len.to_be_bytes()].concat();
    let by_bno: Vec<Vec<u8>> = free.iter().map(enc).collect();
    let mut by_cnt = free.to_vec();
    by_cnt.sort_by_key(|f| (f.len, f.agbno));
    let by_cnt: Vec<Vec<u8>> = by_cnt.iter().map(enc).collect();
    let bno = ctx.build(AgTree::Bno, &by_bno, &pool)?;
    let mut used = bno.blocks.len();
    let cnt = ctx.build(AgTree::Cnt, &by_cnt, &pool[used..])?;
    used += cnt.blocks.len();
    let agf = &mut ag.agf;
    put_root(agf, AGF_ROOTS, AGF_LEVELS, &bno);
    put_root(agf, AGF_ROOTS + 4, AGF_LEVELS + 4, &cnt);
    let mut rmap_blocks = None;
    if let Some((recs, _)) = &ag.rmap {
        let raw: Vec<Vec<u8>> = recs
            .iter()
            .map(|m| {
                [
                    &m.agbno.to_be_bytes()[..],
                    &m.len.to_be_bytes(),
                    &m.owner.to_be_bytes(),
                    &m.offset.to_be_bytes(),
                ]
                .concat()
            })
            .collect();
        let rb = ctx.build(AgTree::Rmap, &raw, &pool[used..])?;
        used += rb.blocks.len();
        put_root(agf, AGF_ROOTS + 8, AGF_LEVELS + 8, &rb);
        set32(agf, AGF_RMAP_BLOCKS, rb.blocks.len() as u32);
        rmap_blocks = Some(rb.blocks.len());
    }
    let total: u64 = free.iter().map(|f| u64::from(f.len)).sum();
    set32(agf, AGF_FREEBLKS, total as u32);
    set32(
        agf,
        AGF_LONGEST,
        free.iter().map(|f| f.len).max().unwrap_or(0),
    );
    let bt = ag.btreeblks(bno.blocks.len(), cnt.blocks.len(), rmap_blocks)?;
    set32(&mut ag.agf, AGF_BTREEBLKS, bt);
    let _ = taken;
    Ok(OwnAg {
        agfl: pool[used..].to_vec(),
        tree_blocks: pool[..used].to_vec(),
    })
}

/// What the `OWN_AG` rebuild leaves: the AGFL's blocks, and the blocks its
/// trees now use (some maybe just freed by the release: never to be zeroed).
struct OwnAg {
    agfl: Vec<u32>,
    tree_blocks: Vec<u32>,
}

/// Writes the AGFL holding `blocks` from slot 0 and points the AGF at it.
fn write_agfl<D: ReadAt>(stage: &Staged<D>, ag: &mut AgState, blocks: &[u32]) -> Result<()> {
    let mut buf = ag.agfl_buf.clone();
    let slots = (buf.len() - AGFL_HDR) / 4;
    if blocks.len() > slots {
        return Err(Error::refused(
            "AGFL",
            format!(
                "AG {}: {} spare tree blocks, the AGFL holds {slots}",
                ag.agno,
                blocks.len()
            ),
        ));
    }
    for i in 0..slots {
        let b = blocks.get(i).copied().unwrap_or(NULLAGBLOCK);
        set32(&mut buf, AGFL_HDR + 4 * i, b);
    }
    checksum::store(&mut buf, AGFL_CRC);
    stage_bytes(stage, ag.agfl_off, &buf)?;
    // An empty list is first 0, last the final slot (what the kernel's reset
    // writes); otherwise the blocks sit in slots 0..count.
    let last = if blocks.is_empty() {
        slots - 1
    } else {
        blocks.len() - 1
    };
    set32(&mut ag.agf, AGF_FLFIRST, 0);
    set32(&mut ag.agf, AGF_FLLAST, last as u32);
    set32(&mut ag.agf, AGF_FLCOUNT, blocks.len() as u32);
    Ok(())
}

fn put_root(buf: &mut [u8], root_at: usize, level_at: usize, b: &Built) {
    set32(buf, root_at, b.root);
    set32(buf, level_at, b.levels);
}

fn set32(buf: &mut [u8], at: usize, v: u32) {
    if let Some(s) = buf.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

fn put_header<D: ReadAt>(stage: &Staged<D>, at: u64, buf: &mut [u8], crc: usize) -> Result<()> {
    checksum::store(buf, crc);
    stage_bytes(stage, at, buf)
}

fn stage_bytes<D: ReadAt>(stage: &Staged<D>, at: u64, buf: &[u8]) -> Result<()> {
    stage.patch(at, buf).map_err(|source| Error::Io {
        what: "staged AG header",
        offset: at,
        source,
    })
}

#[cfg(test)]
#[path = "space_witness_tests.rs"]
mod witness_tests;
