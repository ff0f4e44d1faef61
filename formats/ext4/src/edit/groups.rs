//! Allocation state of the groups an edit touches: their block and inode bitmaps
//! and free counters, loaded (and checked against each other) once per group, then
//! changed in memory and written back once at commit with every checksum that
//! covers them (bitmap checksums in the descriptor, the descriptor's own, the
//! superblock's free counts and checksum).
//!
//! A freed block must be marked in use, lie inside the filesystem, and not be
//! static metadata or a block of a reserved inode (journal, resize inode, …): a
//! hostile extent pointing into the inode table is refused, not "freed".

use std::collections::BTreeMap;
use std::ops::Range;

use vmscrub_blockdev::{RangeSet, ReadAt};

use crate::bitmap::Bitmap;
use crate::block_group::{bg_flags, off as gd_off};
use crate::error::{Error, Loc, Result};
use crate::fs::Ext4;
use crate::superblock::{SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, Superblock, off as sb_off};

use vmscrub_blockdev::Staged;

/// One group as the editor sees it after loading.
#[derive(Debug, Clone)]
pub(crate) struct GroupState {
    block_bits: Vec<u8>,
    inode_bits: Vec<u8>,
    pub(crate) free_blocks: u32,
    pub(crate) free_inodes: u32,
    pub(crate) used_dirs: u32,
    /// First inode index of the never-used tail of the inode table.
    itable_used_end: u32,
    blocks_changed: bool,
    inodes_changed: bool,
}

/// What an operation frees, validated and applied at its end.
#[derive(Debug, Default)]
pub(crate) struct Frees {
    /// Block numbers.
    pub(crate) blocks: RangeSet,
    /// Inodes and whether each was a directory.
    pub(crate) inodes: Vec<(u32, bool)>,
}

impl Frees {
    /// Records blocks `r` as freed; claiming a block twice is corruption
    /// (two owners, or one extent listed twice).
    pub(crate) fn add_blocks(&mut self, r: Range<u64>, ino: u32) -> Result<()> {
        if r.start >= r.end {
            return Ok(());
        }
        if self.blocks.intersects(r.clone()) {
            return Err(Error::corrupt(
                "block ownership",
                Loc::at(ino, r.start),
                format!("blocks {}..{} are claimed twice", r.start, r.end),
            ));
        }
        self.blocks.insert(r);
        Ok(())
    }
}

#[derive(Debug, Default)]
pub(crate) struct Groups {
    loaded: BTreeMap<u32, GroupState>,
    /// Static metadata of every group (superblock copies, descriptors, reserved
    /// GDT, bitmaps, inode tables: with flex_bg they sit in other groups than their
    /// own) and the blocks of reserved inodes. Never freed.
    protected: RangeSet,
}

impl Groups {
    pub(crate) fn new(protected: RangeSet) -> Self {
        Groups {
            loaded: BTreeMap::new(),
            protected,
        }
    }

    fn load<D: ReadAt>(&mut self, fs: &Ext4<D>, g: u32) -> Result<&mut GroupState> {
        match self.loaded.entry(g) {
            std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(v) => Ok(v.insert(load_group(fs, g)?)),
        }
    }

    /// Checks that everything in `frees` may be freed; changes nothing.
    pub(crate) fn validate<D: ReadAt>(&mut self, fs: &Ext4<D>, frees: &Frees) -> Result<()> {
        let sb = fs.superblock();
        let first = u64::from(sb.first_data_block);
        let bpg = u64::from(sb.blocks_per_group);
        for r in frees.blocks.iter() {
            if r.start < first.max(1) || r.end > sb.blocks_count {
                return Err(Error::corrupt(
                    "block map",
                    Loc::block(r.start),
                    format!("blocks {}..{} lie outside the filesystem", r.start, r.end),
                ));
            }
            if self.protected.intersects(r.clone()) {
                return Err(Error::corrupt(
                    "block map",
                    Loc::block(r.start),
                    format!(
                        "blocks {}..{} are filesystem metadata or belong to a reserved inode (journal, resize inode)",
                        r.start, r.end
                    ),
                ));
            }
            for (g, lo, hi) in split_by_group(r.clone(), first, bpg) {
                let st = self.load(fs, g)?;
                let base = first + u64::from(g) * bpg;
                if let Some(i) = (lo..hi).find(|&i| !bit(&st.block_bits, i)) {
                    return Err(Error::corrupt(
                        "block bitmap",
                        Loc::block(base + u64::from(i)),
                        format!(
                            "block {} is owned by a file but marked free",
                            base + u64::from(i)
                        ),
                    ));
                }
            }
        }
        let ipg = sb.inodes_per_group;
        let mut seen = std::collections::HashSet::new();
        for &(ino, _) in &frees.inodes {
            if !seen.insert(ino) {
                return Err(Error::corrupt(
                    "inode",
                    Loc::inode(ino),
                    "freed twice (more directory entries than links)",
                ));
            }
            let g = (ino - 1) / ipg;
            let idx = (ino - 1) % ipg;
            let st = self.load(fs, g)?;
            if !bit(&st.inode_bits, idx) {
                return Err(Error::corrupt(
                    "inode bitmap",
                    Loc::inode(ino),
                    "inode is in use but marked free",
                ));
            }
            if idx >= st.itable_used_end {
                return Err(Error::corrupt(
                    "group descriptor",
                    Loc::inode(ino),
                    "inode in use lies in the never-initialized part of the inode table",
                ));
            }
        }
        // Directory counts must not go below zero.
        let mut dirs: BTreeMap<u32, u32> = BTreeMap::new();
        for &(ino, is_dir) in &frees.inodes {
            if is_dir {
                *dirs.entry((ino - 1) / ipg).or_default() += 1;
            }
        }
        for (g, n) in dirs {
            let st = self.load(fs, g)?;
            if st.used_dirs < n {
                return Err(Error::corrupt(
                    "group descriptor",
                    Loc::NONE,
                    format!(
                        "group {g} counts {} directories, {n} are being removed",
                        st.used_dirs
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Applies `frees` (already validated).
    pub(crate) fn apply(&mut self, sb: &Superblock, frees: &Frees) {
        let first = u64::from(sb.first_data_block);
        let bpg = u64::from(sb.blocks_per_group);
        for r in frees.blocks.iter() {
            for (g, lo, hi) in split_by_group(r, first, bpg) {
                if let Some(st) = self.loaded.get_mut(&g) {
                    clear_bits(&mut st.block_bits, lo, hi);
                    st.free_blocks += hi - lo;
                    st.blocks_changed = true;
                }
            }
        }
        let ipg = sb.inodes_per_group;
        for &(ino, is_dir) in &frees.inodes {
            let g = (ino - 1) / ipg;
            if let Some(st) = self.loaded.get_mut(&g) {
                let idx = (ino - 1) % ipg;
                clear_bits(&mut st.inode_bits, idx, idx + 1);
                st.free_inodes += 1;
                if is_dir {
                    st.used_dirs = st.used_dirs.saturating_sub(1);
                }
                st.inodes_changed = true;
            }
        }
    }

    /// Changed groups, for the commit.
    pub(crate) fn changed(&self) -> impl Iterator<Item = (u32, &GroupState)> {
        self.loaded
            .iter()
            .filter(|(_, s)| s.blocks_changed || s.inodes_changed)
            .map(|(g, s)| (*g, s))
    }

    /// The free counts of group `g` as they will be written.
    pub(crate) fn counts(&self, g: u32) -> Option<(u32, u32)> {
        self.loaded.get(&g).map(|s| (s.free_blocks, s.free_inodes))
    }
}

impl GroupState {
    pub(crate) fn block_bits(&self) -> &[u8] {
        &self.block_bits
    }
    pub(crate) fn inode_bits(&self) -> &[u8] {
        &self.inode_bits
    }
}

fn bit(bits: &[u8], i: u32) -> bool {
    bits.get((i / 8) as usize)
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}

fn clear_bits(bits: &mut [u8], lo: u32, hi: u32) {
    let mut i = lo;
    while i < hi {
        if i.is_multiple_of(8) && i + 8 <= hi {
            if let Some(b) = bits.get_mut((i / 8) as usize) {
                *b = 0;
            }
            i += 8;
        } else {
            if let Some(b) = bits.get_mut((i / 8) as usize) {
                *b &= !(1 << (i % 8));
            }
            i += 1;
        }
    }
}

fn count_zero_bits(bits: &[u8], len: u32) -> u32 {
    let full = (len / 8) as usize;
    let mut n: u32 = bits.iter().take(full).map(|b| b.count_zeros()).sum();
    for i in (full as u32 * 8)..len {
        if !bit(bits, i) {
            n += 1;
        }
    }
    n
}

/// Splits block range `r` at group boundaries: (group, first bit, end bit).
fn split_by_group(r: Range<u64>, first: u64, bpg: u64) -> Vec<(u32, u32, u32)> {
    let mut out = Vec::new();
    let mut b = r.start;
    while b < r.end {
        let rel = b - first;
        let g = rel / bpg;
        let g_end = first + (g + 1) * bpg;
        let e = r.end.min(g_end);
        out.push((g as u32, (rel % bpg) as u32, (rel % bpg + (e - b)) as u32));
        b = e;
    }
    out
}

/// Loads group `g` and checks that its descriptor's free counts agree with its
/// bitmaps (bad accounting is refused rather than built upon).
fn load_group<D: ReadAt>(fs: &Ext4<D>, g: u32) -> Result<GroupState> {
    let sb = fs.superblock();
    let desc = fs.group(g)?;
    let bbm = fs.block_bitmap(g)?;
    let ibm = fs.inode_bitmap(g)?;
    let nblocks = sb.group_block_count(u64::from(g)) as u32;
    let free_b = count_zero_bits(&bbm.bits, nblocks);
    let free_i = count_zero_bits(&ibm.bits, sb.inodes_per_group);
    if free_b != desc.free_blocks_count || free_i != desc.free_inodes_count {
        return Err(Error::corrupt(
            "group descriptor",
            Loc::block(desc.location.0),
            format!(
                "group {g} claims {} free blocks and {} free inodes, its bitmaps say {free_b} and {free_i}",
                desc.free_blocks_count, desc.free_inodes_count
            ),
        ));
    }
    let ipg = sb.inodes_per_group;
    let itable_used_end = if desc.has_flag(sb, bg_flags::INODE_UNINIT) {
        0
    } else if sb.has_group_csum() {
        ipg.saturating_sub(desc.itable_unused)
    } else {
        ipg
    };
    Ok(GroupState {
        block_bits: bbm.bits,
        inode_bits: ibm.bits,
        free_blocks: desc.free_blocks_count,
        free_inodes: desc.free_inodes_count,
        used_dirs: desc.used_dirs_count,
        itable_used_end,
        blocks_changed: false,
        inodes_changed: false,
    })
}

/// Writes every changed group's bitmaps and descriptor, and the superblock's free
/// counts, into the stage.
pub(crate) fn stage_groups<R: ReadAt, D: ReadAt>(
    fs: &Ext4<R>,
    stage: &Staged<D>,
    groups: &Groups,
) -> Result<usize> {
    let sb = fs.superblock();
    let seed = fs.checksum_seed();
    let ds = sb.desc_size() as usize;
    let mut n = 0;
    for (g, st) in groups.changed() {
        let desc = fs.group(g)?;
        // Uninitialized bitmaps have nothing in use to free: validation refuses
        // such frees, so an uninitialized bitmap is never changed (and a group
        // with INODE_UNINIT may still have its blocks freed).
        if (st.blocks_changed && desc.has_flag(sb, bg_flags::BLOCK_UNINIT))
            || (st.inodes_changed && desc.has_flag(sb, bg_flags::INODE_UNINIT))
        {
            return Err(Error::corrupt(
                "group descriptor",
                Loc::NONE,
                format!("group {g}: an uninitialized bitmap was changed"),
            ));
        }
        let bs = fs.block_size() as usize;
        let mut bb = st.block_bits().to_vec();
        bb.resize(bs, 0);
        let mut ib = st.inode_bits().to_vec();
        ib.resize(bs, 0);
        if st.blocks_changed {
            stage.put_block(desc.block_bitmap, bb.clone());
        }
        if st.inodes_changed {
            stage.put_block(desc.inode_bitmap, ib.clone());
        }
        let (blk, at) = desc.location;
        let mut dblock = stage.read_block(blk).map_err(|source| Error::Io {
            what: "group descriptor block",
            offset: blk * bs as u64,
            source,
        })?;
        let at = at as usize;
        let Some(raw) = dblock.get_mut(at..at + ds) else {
            return Err(Error::corrupt(
                "group descriptor",
                Loc::block(blk),
                "descriptor lies outside its block",
            ));
        };
        let wide = ds >= 64;
        put16(raw, gd_off::FREE_BLOCKS_COUNT_LO, st.free_blocks as u16);
        put16(raw, gd_off::FREE_INODES_COUNT_LO, st.free_inodes as u16);
        put16(raw, gd_off::USED_DIRS_COUNT_LO, st.used_dirs as u16);
        if wide {
            put16(
                raw,
                gd_off::FREE_BLOCKS_COUNT_HI,
                (st.free_blocks >> 16) as u16,
            );
            put16(
                raw,
                gd_off::FREE_INODES_COUNT_HI,
                (st.free_inodes >> 16) as u16,
            );
            put16(raw, gd_off::USED_DIRS_COUNT_HI, (st.used_dirs >> 16) as u16);
        }
        if sb.has_metadata_csum() && st.blocks_changed {
            let bc = Bitmap::compute_checksum(seed, &bb, sb.blocks_per_group);
            put16(raw, gd_off::BLOCK_BITMAP_CSUM_LO, bc as u16);
            if ds >= gd_off::BLOCK_BITMAP_CSUM_HI + 2 {
                put16(raw, gd_off::BLOCK_BITMAP_CSUM_HI, (bc >> 16) as u16);
            }
        }
        if sb.has_metadata_csum() && st.inodes_changed {
            let ic = Bitmap::compute_checksum(seed, &ib, sb.inodes_per_group);
            put16(raw, gd_off::INODE_BITMAP_CSUM_LO, ic as u16);
            if ds >= gd_off::INODE_BITMAP_CSUM_HI + 2 {
                put16(raw, gd_off::INODE_BITMAP_CSUM_HI, (ic >> 16) as u16);
            }
        }
        if let Some(c) = crate::block_group::GroupDesc::compute_checksum(sb, g, raw) {
            put16(raw, gd_off::CHECKSUM, c);
        }
        stage.put_block(blk, dblock);
        n += 1;
    }
    Ok(n)
}

/// The superblock with free counts summed over every group (changed ones from
/// `groups`, the rest from their descriptors), `needs_recovery` cleared when
/// asked, and its checksum.
pub(crate) fn superblock_bytes<R: ReadAt, D: ReadAt>(
    fs: &Ext4<R>,
    stage: &Staged<D>,
    groups: &Groups,
    clear_recover: bool,
) -> Result<[u8; SUPERBLOCK_SIZE]> {
    let sb = fs.superblock();
    let mut raw = [0u8; SUPERBLOCK_SIZE];
    stage
        .read_exact_at(&mut raw, SUPERBLOCK_OFFSET)
        .map_err(|source| Error::Io {
            what: "superblock",
            offset: SUPERBLOCK_OFFSET,
            source,
        })?;
    let mut free_b: u64 = 0;
    let mut free_i: u64 = 0;
    for d in fs.groups() {
        let (b, i) = groups
            .counts(d.group)
            .unwrap_or((d.free_blocks_count, d.free_inodes_count));
        free_b += u64::from(b);
        free_i += u64::from(i);
    }
    put32(&mut raw, sb_off::FREE_BLOCKS_COUNT_LO, free_b as u32);
    if sb.is_64bit() {
        put32(
            &mut raw,
            sb_off::FREE_BLOCKS_COUNT_HI,
            (free_b >> 32) as u32,
        );
    }
    put32(&mut raw, sb_off::FREE_INODES_COUNT, free_i as u32);
    if clear_recover {
        let inc = u32::from_le_bytes([
            raw[sb_off::FEATURE_INCOMPAT],
            raw[sb_off::FEATURE_INCOMPAT + 1],
            raw[sb_off::FEATURE_INCOMPAT + 2],
            raw[sb_off::FEATURE_INCOMPAT + 3],
        ]);
        put32(
            &mut raw,
            sb_off::FEATURE_INCOMPAT,
            inc & !crate::features::incompat::RECOVER,
        );
    }
    if sb.has_metadata_csum() {
        let c = Superblock::compute_checksum(&raw);
        put32(&mut raw, sb_off::CHECKSUM, c);
    }
    Ok(raw)
}

fn put16(raw: &mut [u8], at: usize, v: u16) {
    if let Some(s) = raw.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn put32(raw: &mut [u8], at: usize, v: u32) {
    if let Some(s) = raw.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_clear() {
        assert_eq!(
            split_by_group(8190..8200, 1, 8192),
            vec![(0, 8189, 8192), (1, 0, 7)]
        );
        let mut bits = vec![0xFFu8; 4];
        clear_bits(&mut bits, 3, 21);
        assert_eq!(bits, vec![0b0000_0111, 0, 0b1110_0000, 0xFF]);
        assert_eq!(count_zero_bits(&bits, 30), 18);
        assert_eq!(count_zero_bits(&bits, 19), 16);
    }
}
