//! Reading a directory: its slots (the FAT12/16 fixed root region, or a cluster
//! chain), and VFAT long names assembled onto their short entries.
//!
//! Long names follow Windows' rules: a run of long-name slots counts only if it
//! starts with the "last" flag (0x40), counts down through every sequence number to
//! 1 with one checksum, and is followed directly by a short entry whose name has that
//! checksum. Any other slot — orphaned, out of order, with a mismatched checksum, or
//! separated by a deleted entry — is ignored, and the short entry then stands on its
//! own name. Only the slots of an accepted run are reported as the entry's location,
//! so an orphaned slot is not attributed to (or wiped with) a file it does not
//! belong to.

use vmscrub_blockdev::ReadAt;

use crate::bpb::Geometry;
use crate::dirent::{ENTRY, Node, NodeId, Slot, classify, lfn_units, short_name_bytes};
use crate::error::{FatError, Result};
use crate::name::{decode_long_name, lfn_checksum, short_name_display};
use crate::table::{Chain, FatCache, walk_chain};

/// The specification's limit on a directory's size: 65536 entries (2 MiB).
pub(crate) const MAX_DIR_ENTRIES: u64 = 65536;

/// One live name in a directory (`.`, `..`, deleted slots and the volume label are
/// not returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// UTF-8: the long name if intact and valid, else the short name.
    pub name: Vec<u8>,
    pub long_name: Option<String>,
    /// The 8.3 name as displayed (`NAME.EXT`, NT lower-case flags applied).
    pub short_name: String,
    /// The raw 11 bytes of the short name, as stored.
    pub short_name_raw: [u8; 11],
    pub node: Node,
    /// Device byte offsets of the entry's 32-byte slots: its long-name slots in
    /// on-disk order, then the short entry (always last; its offset is the node id).
    pub slots: Vec<u64>,
    /// Long-name slots directly before this entry that did not validate (orphaned,
    /// out of order, wrong checksum). They belong to no file as far as FAT is
    /// concerned, but may still hold this file's name bytes, so the editor wipes
    /// them together with the entry.
    pub orphan_slots: Vec<u64>,
}

impl DirEntry {
    pub fn id(&self) -> NodeId {
        self.node.id
    }
}

/// A directory's contents and where they live.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    pub entries: Vec<DirEntry>,
    pub label: Option<[u8; 11]>,
    /// The directory's own chain (`None` for the FAT12/16 root region).
    pub chain: Option<Chain>,
}

/// Byte regions holding a directory's slots, in order.
fn regions<D: ReadAt + ?Sized>(
    dev: &D,
    g: &Geometry,
    fat: &FatCache,
    dir: &Node,
) -> Result<(Vec<std::ops::Range<u64>>, Option<Chain>, u32)> {
    if dir.id == crate::dirent::ROOT && g.root_cluster == 0 {
        let start = g.root_dir_offset();
        let region = start..start + g.root_dir_bytes();
        return Ok((vec![region], None, 0));
    }
    let first = dir.first_cluster;
    if !g.is_cluster(first) {
        return Err(FatError::FirstClusterOutOfRange {
            entry: dir.id,
            cluster: first,
            max: g.max_cluster(),
        });
    }
    let chain = walk_chain(dev, g, fat, first)?;
    Ok((chain.byte_ranges(g), Some(chain), first))
}

/// Builds a partially collected long name while its slots are read.
struct LongName {
    checksum: u8,
    /// The sequence number the next slot must carry.
    expect: u8,
    units: Vec<u16>,
    slots: Vec<u64>,
}

pub(crate) fn list<D: ReadAt + ?Sized>(
    dev: &D,
    g: &Geometry,
    fat: &FatCache,
    dir: &Node,
) -> Result<Listing> {
    let (regions, chain, cluster) = regions(dev, g, fat, dir)?;
    let mut out = Listing {
        entries: Vec::new(),
        label: None,
        chain,
    };
    let mut pending: Option<LongName> = None;
    // Offsets of the long-name slots since the last other slot.
    let mut lfn_run: Vec<u64> = Vec::new();
    let mut seen = 0u64;
    // Read at most one cluster (or 64 KiB of the root region) at a time.
    let step = (g.cluster_size as u64).max(ENTRY as u64);
    let mut buf = Vec::new();
    for region in regions {
        let mut pos = region.start;
        while pos < region.end {
            let n = (region.end - pos).min(step).min(64 * 1024);
            buf.resize(n as usize, 0);
            dev.read_exact_at(&mut buf, pos)
                .map_err(|source| FatError::Read {
                    what: "directory",
                    offset: pos,
                    source,
                })?;
            for (i, raw) in buf.chunks_exact(ENTRY).enumerate() {
                let offset = pos + (i * ENTRY) as u64;
                seen += 1;
                if seen > MAX_DIR_ENTRIES {
                    return Err(FatError::DirectoryTooLarge { cluster });
                }
                let mut e = [0u8; ENTRY];
                e.copy_from_slice(raw);
                let slot = classify(&e);
                if !matches!(slot, Slot::Lfn(_) | Slot::Short(_)) {
                    lfn_run.clear();
                }
                match slot {
                    Slot::End => return Ok(out),
                    Slot::Deleted | Slot::Dot => pending = None,
                    Slot::VolumeLabel => {
                        pending = None;
                        if out.label.is_none() {
                            out.label = Some(short_name_bytes(&e));
                        }
                    }
                    Slot::Lfn(e) => {
                        lfn_run.push(offset);
                        pending = long_name_slot(pending.take(), e, offset);
                    }
                    Slot::Short(e) => {
                        let raw_name = short_name_bytes(e);
                        let long = pending.take().and_then(|ln| {
                            (ln.expect == 0 && ln.checksum == lfn_checksum(&raw_name)).then_some(ln)
                        });
                        let short_name = short_name_display(&raw_name, e[12]);
                        let (long_name, mut slots) = match long {
                            Some(ln) => (decode_long_name(&ln.units), ln.slots),
                            None => (None, Vec::new()),
                        };
                        let orphan_slots =
                            lfn_run.drain(..).filter(|o| !slots.contains(o)).collect();
                        slots.push(offset);
                        let name = long_name
                            .as_ref()
                            .unwrap_or(&short_name)
                            .as_bytes()
                            .to_vec();
                        out.entries.push(DirEntry {
                            name,
                            long_name,
                            short_name,
                            short_name_raw: raw_name,
                            node: Node::from_short(offset, e),
                            slots,
                            orphan_slots,
                        });
                    }
                }
            }
            pos += n;
        }
    }
    Ok(out)
}

/// Feeds one long-name slot to the name being collected; returns what to keep.
fn long_name_slot(pending: Option<LongName>, e: &[u8; ENTRY], offset: u64) -> Option<LongName> {
    let ord = e[0];
    let seq = ord & 0x1F;
    let checksum = e[13];
    let mut ln = if ord & 0x40 != 0 {
        // The physically first slot carries the highest sequence number; a name has
        // at most 20 slots (255 characters).
        if !(1..=20).contains(&seq) {
            return None;
        }
        LongName {
            checksum,
            expect: seq,
            units: vec![0xFFFF; seq as usize * 13],
            slots: Vec::with_capacity(seq as usize),
        }
    } else {
        match pending {
            Some(ln) if ln.expect == seq && ln.checksum == checksum && seq >= 1 => ln,
            _ => return None,
        }
    };
    let at = (seq as usize - 1) * 13;
    if let Some(dst) = ln.units.get_mut(at..at + 13) {
        dst.copy_from_slice(&lfn_units(e));
    }
    ln.slots.push(offset);
    ln.expect = seq - 1;
    Some(ln)
}
