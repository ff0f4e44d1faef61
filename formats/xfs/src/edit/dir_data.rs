//! Directory data blocks (`XDD3`, and the block form's `XDB3` with its leaf
//! and tail at the end): an entry is removed by turning its bytes into an
//! unused entry (`0xffff`, length, tag = its own offset), merged with unused
//! neighbours — two unused entries side by side are corruption to the kernel's
//! verifier — and everything inside it zeroed, so the name is gone. The three
//! `bestfree` slots are then rescanned the way the kernel's freescan orders
//! them (longest first, the earlier of equal lengths first).

use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use super::dirent::{DirBlock, Geometry, RemovedEntry};
use super::{dir_free, dir_index, dir_lookup};
use crate::be::{u8_at, u16_at, u32_at, u64_at};
use crate::bmap::{BlockMap, Fork};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::{FileType, ForkFormat, Inode};

const DATA_MAGIC: u32 = 0x5844_4433; // XDD3
const BLOCK_MAGIC: u32 = 0x5844_4233; // XDB3
const CRC_OFF: usize = 4;
const BLKNO_OFF: usize = 8;
const OWNER_OFF: usize = 40;
const BESTFREE_OFF: usize = 48;
const HEADER: usize = 64;
const FREE_TAG: u16 = 0xffff;
/// A stale leaf entry's address (`XFS_DIR2_NULL_DATAPTR`).
const NULL_DATAPTR: u32 = 0;

/// One run of a data block: an entry or an unused stretch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    pos: usize,
    len: usize,
    free: bool,
}

pub(super) fn remove<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    dir: &Inode,
    name: &[u8],
) -> Result<RemovedEntry> {
    let loc = Loc::inode(dir.ino);
    let geo = Geometry::of(fs);
    let map = fs.block_map(dir, Fork::Data)?;
    let not_found = || Error::NotFound {
        path: name.to_vec(),
    };
    let at = DirAt {
        dir,
        map: &map,
        geo: &geo,
    };
    if geo.mapped(&map, geo.leaf_db, geo.free_db).is_empty() {
        // Block form: the one block holds its own leaf.
        for db in geo.mapped(&map, 0, geo.leaf_db) {
            if let Some(r) = at.remove_in(fs, stage, db, Target::Name(name), None)? {
                return Ok(r);
            }
        }
        return Err(not_found());
    }
    let Some(found) = dir_lookup::find(fs, dir, &map, &geo, name)? else {
        // Not in the index: make sure it is not in the data blocks either.
        if at.holds(fs, name)? {
            return Err(Error::corrupt(
                "directory",
                loc,
                format!(
                    "{:?} is in a data block but not in the hash index",
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        return Err(not_found());
    };
    let leaf = Some((found.leaf_db, found.leaf_at));
    at.remove_in(fs, stage, found.db, Target::At(found.pos, name), leaf)?
        .ok_or_else(|| {
            Error::corrupt(
                "directory",
                loc,
                "the hash index points at an entry the data block does not hold",
            )
        })
}

/// Which entry of a data block: by name (block form), or at a byte the
/// hash index gave (with the name it must carry).
#[derive(Clone, Copy)]
enum Target<'a> {
    Name(&'a [u8]),
    At(usize, &'a [u8]),
}

/// The directory a removal works in.
struct DirAt<'a> {
    dir: &'a Inode,
    map: &'a BlockMap,
    geo: &'a Geometry,
}

impl DirAt<'_> {
    /// Whether any data block holds `name` (every block read and checked).
    fn holds<D: ReadAt>(&self, fs: &Xfs<Arc<Staged<D>>>, name: &[u8]) -> Result<bool> {
        for db in self.geo.mapped(self.map, 0, self.geo.leaf_db) {
            let blk = DirBlock::read(fs, self.geo, self.map, db, Loc::inode(self.dir.ino))?;
            let loc = Loc::inode(self.dir.ino).with_offset(blk.offset());
            let is_block = check_header(&blk, self.dir.ino, loc)?;
            let end = data_end(&blk.buf, is_block, loc)?;
            let regions = regions(&blk.buf, end, fs.sb.has_ftype(), loc)?;
            if regions
                .iter()
                .any(|r| !r.free && entry_name(&blk.buf, r.pos) == name)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Frees the target entry of data block `db` and fixes the indexes
    /// (`leaf`: where its hash entry is, outside the block forms); `None`
    /// when the block does not hold it.
    fn remove_in<D: ReadAt>(
        &self,
        fs: &Xfs<Arc<Staged<D>>>,
        stage: &Staged<D>,
        db: u64,
        target: Target,
        leaf: Option<(u64, usize)>,
    ) -> Result<Option<RemovedEntry>> {
        let (dir, geo) = (self.dir, self.geo);
        let ftype = fs.sb.has_ftype();
        let mut blk = DirBlock::read(fs, geo, self.map, db, Loc::inode(dir.ino))?;
        let loc = Loc::inode(dir.ino).with_offset(blk.offset());
        let is_block = check_header(&blk, dir.ino, loc)?;
        if is_block == leaf.is_some() {
            return Err(Error::corrupt(
                "directory data block",
                loc,
                "a block-form block in a leaf directory, or a data block with no leaf",
            ));
        }
        let end = data_end(&blk.buf, is_block, loc)?;
        let regions = regions(&blk.buf, end, ftype, loc)?;
        let (Target::Name(name) | Target::At(_, name)) = target;
        let Some(k) = regions.iter().position(|r| {
            !r.free
                && entry_name(&blk.buf, r.pos) == name
                && !matches!(target, Target::At(p, _) if p != r.pos)
        }) else {
            return Ok(None);
        };
        let pos = regions[k].pos;
        let mut removed = entry_of(fs, &blk.buf, pos, ftype, loc)?;
        let old_best = check_bestfree(&blk.buf, &regions, loc)?;
        free_region(&mut blk.buf, &regions, k);
        let new_regions = regions_after_free(&regions, k);
        let emptied = !is_block && new_regions.iter().all(|r| r.free);
        if emptied && (db == 0 || dir.format != ForkFormat::Extents) {
            return Err(Error::refused(
                "directory data block",
                format!(
                    "removing {:?} empties data block {db} of directory {}, which would have \
                     to leave a fork held in a bmap B+tree (or the first block)",
                    String::from_utf8_lossy(name),
                    dir.ino
                ),
            ));
        }
        let new_best = store_bestfree(&mut blk.buf, &new_regions);
        let dataptr = u32::try_from((db * geo.dir_block_size + pos as u64) >> 3)
            .map_err(|_| Error::corrupt("directory", loc, "entry address past 32 bits"))?;
        if is_block {
            stale_block_leaf(&mut blk.buf, end, dataptr, loc)?;
        }
        checksum::store(&mut blk.buf, CRC_OFF);
        blk.write(stage)?;
        if let Some(leaf) = leaf {
            let change = dir_index::BestChange {
                db,
                dataptr,
                old: old_best,
                new: new_best,
                emptied,
            };
            let free_db = dir_index::stale_and_rebest(fs, stage, dir, self.map, geo, leaf, change)?;
            if emptied {
                let gone: Vec<u64> = std::iter::once(db).chain(free_db).collect();
                removed.freed = dir_free::unmap(fs, stage, dir, self.map, geo, &gone)?;
            }
        }
        Ok(Some(removed))
    }
}

/// Checks magic, CRC, owner and self-address; says whether this is the
/// block form's single block.
fn check_header(blk: &DirBlock, ino: u64, loc: Loc) -> Result<bool> {
    let b = &blk.buf;
    let is_block = match u32_at(b, 0) {
        DATA_MAGIC => false,
        BLOCK_MAGIC => true,
        m => {
            return Err(Error::corrupt(
                "directory data block",
                loc,
                format!("magic {m:#x}"),
            ));
        }
    };
    checksum::verify(true, "directory data block", b, CRC_OFF, loc)?;
    if u64_at(b, OWNER_OFF) != ino || u64_at(b, BLKNO_OFF) != blk.daddr() {
        return Err(Error::corrupt(
            "directory data block",
            loc,
            "owner or block number in the header is not this block's",
        ));
    }
    Ok(is_block)
}

/// Where the entries end: the block form's leaf and tail follow them.
fn data_end(b: &[u8], is_block: bool, loc: Loc) -> Result<usize> {
    if !is_block {
        return Ok(b.len());
    }
    let count = u32_at(b, b.len() - 8) as usize;
    match count.checked_mul(8).and_then(|l| l.checked_add(8)) {
        Some(l) if l + HEADER <= b.len() => Ok(b.len() - l),
        _ => Err(Error::corrupt(
            "directory block",
            loc,
            format!("tail counts {count} leaf entries"),
        )),
    }
}

fn entry_size(namelen: usize, ftype: bool) -> usize {
    (8 + 1 + namelen + usize::from(ftype) + 2).div_ceil(8) * 8
}

fn entry_name(b: &[u8], pos: usize) -> &[u8] {
    let n = usize::from(u8_at(b, pos + 8));
    b.get(pos + 9..pos + 9 + n).unwrap_or_default()
}

/// Every entry and unused stretch between the header and `end`, each
/// checked to carry its own offset as tag.
fn regions(b: &[u8], end: usize, ftype: bool, loc: Loc) -> Result<Vec<Region>> {
    let bad = |d: String| Err(Error::corrupt("directory data block", loc, d));
    let mut out = vec![];
    let mut pos = HEADER;
    while pos < end {
        let free = u16_at(b, pos) == FREE_TAG;
        let len = if free {
            usize::from(u16_at(b, pos + 2))
        } else {
            let namelen = usize::from(u8_at(b, pos + 8));
            if namelen == 0 {
                return bad(format!("entry at byte {pos} has an empty name"));
            }
            entry_size(namelen, ftype)
        };
        if len < 8 || len % 8 != 0 || pos + len > end {
            return bad(format!("a {len}-byte run at byte {pos} does not fit"));
        }
        if usize::from(u16_at(b, pos + len - 2)) != pos {
            return bad(format!(
                "the run at byte {pos} is tagged with another offset"
            ));
        }
        if free && out.last().is_some_and(|r: &Region| r.free) {
            return bad(format!("two unused runs side by side at byte {pos}"));
        }
        out.push(Region { pos, len, free });
        pos += len;
    }
    Ok(out)
}

fn entry_of<D: ReadAt>(
    fs: &Xfs<D>,
    b: &[u8],
    pos: usize,
    ftype: bool,
    loc: Loc,
) -> Result<RemovedEntry> {
    let ino = u64_at(b, pos);
    if ino == 0 || fs.sb.inode_to_byte(ino).is_none() {
        return Err(Error::corrupt(
            "directory entry",
            loc,
            format!("inode number {ino} is outside the filesystem"),
        ));
    }
    let namelen = usize::from(u8_at(b, pos + 8));
    let file_type = if ftype {
        FileType::from_dirent(u8_at(b, pos + 9 + namelen))
    } else {
        None
    };
    Ok(RemovedEntry {
        ino,
        file_type,
        freed: vec![],
    })
}

/// The three longest unused runs, longest first, the earlier first among
/// equals (what the kernel's freescan leaves).
fn scan_bestfree(regions: &[Region]) -> [(u16, u16); 3] {
    let mut free: Vec<&Region> = regions.iter().filter(|r| r.free).collect();
    free.sort_by_key(|r| std::cmp::Reverse(r.len));
    let mut out = [(0u16, 0u16); 3];
    for (slot, r) in out.iter_mut().zip(free) {
        *slot = (r.pos as u16, r.len as u16);
    }
    out
}

fn bestfree_of(b: &[u8]) -> [(u16, u16); 3] {
    let at = |i: usize| {
        (
            u16_at(b, BESTFREE_OFF + 4 * i),
            u16_at(b, BESTFREE_OFF + 4 * i + 2),
        )
    };
    [at(0), at(1), at(2)]
}

/// The stored bestfree must be a valid one (what the kernel's data check
/// accepts: each slot names an unused run of its length, slots sorted, no
/// unused run longer than the last slot left out). Returns the longest.
fn check_bestfree(b: &[u8], regions: &[Region], loc: Loc) -> Result<u16> {
    let bf = bestfree_of(b);
    let bad = |d: &str| Err(Error::corrupt("directory data block bestfree", loc, d));
    for (off, len) in bf {
        if (off == 0) != (len == 0) {
            return bad("a slot with an offset but no length, or the reverse");
        }
        if len != 0
            && !regions
                .iter()
                .any(|r| r.free && r.pos == usize::from(off) && r.len == usize::from(len))
        {
            return bad("a slot names no unused run of its length");
        }
    }
    if bf[0].1 < bf[1].1 || bf[1].1 < bf[2].1 {
        return bad("slots out of order");
    }
    let listed = |r: &Region| bf.iter().any(|(o, _)| usize::from(*o) == r.pos);
    if regions
        .iter()
        .any(|r| r.free && !listed(r) && r.len > usize::from(bf[2].1))
    {
        return bad("a longer unused run than the slots hold is left out");
    }
    Ok(bf[0].1)
}

fn store_bestfree(b: &mut [u8], regions: &[Region]) -> u16 {
    let bf = scan_bestfree(regions);
    for (i, (off, len)) in bf.iter().enumerate() {
        put(b, BESTFREE_OFF + 4 * i, &off.to_be_bytes());
        put(b, BESTFREE_OFF + 4 * i + 2, &len.to_be_bytes());
    }
    bf[0].1
}

/// The run entry `k` becomes: itself plus an unused neighbour on each side.
fn merged(regions: &[Region], k: usize) -> (usize, usize, usize) {
    let mut first = k;
    let mut last = k;
    if k > 0 && regions[k - 1].free {
        first = k - 1;
    }
    if regions.get(k + 1).is_some_and(|r| r.free) {
        last = k + 1;
    }
    let start = regions[first].pos;
    let end = regions[last].pos + regions[last].len;
    (first, last, end - start)
}

/// Zeroes entry `k` and its unused neighbours into one unused run.
fn free_region(b: &mut [u8], regions: &[Region], k: usize) {
    let (first, _, len) = merged(regions, k);
    let start = regions[first].pos;
    if let Some(s) = b.get_mut(start..start + len) {
        s.fill(0);
    }
    put(b, start, &FREE_TAG.to_be_bytes());
    put(b, start + 2, &(len as u16).to_be_bytes());
    put(b, start + len - 2, &(start as u16).to_be_bytes());
}

fn regions_after_free(regions: &[Region], k: usize) -> Vec<Region> {
    let (first, last, len) = merged(regions, k);
    let mut out = regions[..first].to_vec();
    out.push(Region {
        pos: regions[first].pos,
        len,
        free: true,
    });
    out.extend_from_slice(&regions[last + 1..]);
    out
}

/// Block form: the hash entry pointing at the entry becomes stale and the
/// tail counts it.
fn stale_block_leaf(b: &mut [u8], leaf_start: usize, dataptr: u32, loc: Loc) -> Result<()> {
    let tail = b.len() - 8;
    let hits: Vec<usize> = (leaf_start..tail)
        .step_by(8)
        .filter(|at| u32_at(b, at + 4) == dataptr)
        .collect();
    let [at] = hits[..] else {
        return Err(Error::corrupt(
            "directory block leaf",
            loc,
            format!("{} hash entries point at the entry", hits.len()),
        ));
    };
    let stale = u32_at(b, tail + 4)
        .checked_add(1)
        .ok_or_else(|| Error::corrupt("directory block leaf", loc, "stale count overflows"))?;
    put(b, at + 4, &NULL_DATAPTR.to_be_bytes());
    put(b, tail + 4, &stale.to_be_bytes());
    Ok(())
}

/// Writes `bytes` at `off` (offsets are checked by the caller; an
/// out-of-range write is dropped rather than panicking).
pub(super) fn put(b: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(s) = b.get_mut(off..off + bytes.len()) {
        s.copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(pos: usize, len: usize, free: bool) -> Region {
        Region { pos, len, free }
    }

    #[test]
    fn merge_takes_both_unused_neighbours() {
        let regs = [
            r(64, 16, true),
            r(80, 24, false),
            r(104, 8, true),
            r(112, 16, false),
        ];
        assert_eq!(merged(&regs, 1), (0, 2, 48));
        let after = regions_after_free(&regs, 1);
        assert_eq!(after, vec![r(64, 48, true), r(112, 16, false)]);
        assert_eq!(merged(&regs, 3), (2, 3, 24));
    }

    #[test]
    fn bestfree_longest_first_earlier_among_equals() {
        let regs = [
            r(64, 16, true),
            r(80, 8, false),
            r(88, 32, true),
            r(120, 8, false),
            r(128, 16, true),
            r(144, 8, false),
            r(152, 16, true),
        ];
        assert_eq!(scan_bestfree(&regs), [(88, 32), (64, 16), (128, 16)]);
    }
}
