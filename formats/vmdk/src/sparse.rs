//! A hosted sparse extent (magic `KDMV`): header, grain directory, grain tables,
//! and reads of uncompressed grains. Compressed (stream-optimized) grains are read
//! by `stream.rs` through the same lookup.
//!
//! The grain directory is read whole at open (bounded by the header checks and by
//! the file size); grain tables are read on demand into a small FIFO cache, so
//! memory stays bounded however large the disk.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use vmscrub_blockdev::{RangeSet, ReadAt};

use crate::error::{Result, VmdkError};
use crate::header::{GD_AT_END, SECTOR, SparseExtentHeader, SparseLayout};
use crate::marker::{self, Marker};
use crate::stream::StreamState;

/// Grain tables kept in memory; at 512 entries of 64 KiB grains each covers 32 MiB.
const GT_CACHE_TABLES: usize = 256;

/// What a grain-table entry says about one grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grain {
    /// Never written: reads as zeros.
    Unallocated,
    /// Explicitly zero (GTE 1 with the zeroed-grain feature, or in a stream).
    Zero,
    /// Stored at this sector of the extent file (for a stream: its grain marker).
    At(u64),
}

pub(crate) struct SparseExtent {
    pub(crate) file: Arc<dyn ReadAt>,
    pub(crate) name: String,
    /// The header in force: the footer's copy when the primary said GD_AT_END.
    pub(crate) header: SparseExtentHeader,
    pub(crate) layout: SparseLayout,
    /// Whether the grain directory was found through the stream footer.
    pub(crate) footer_used: bool,
    gd: Vec<u32>,
    gt_cache: Mutex<GtCache>,
    pub(crate) stream: Option<StreamState>,
}

#[derive(Default)]
struct GtCache {
    tables: HashMap<u64, Arc<[u32]>>,
    order: VecDeque<u64>,
}

fn read_at(file: &dyn ReadAt, name: &str, what: &str, buf: &mut [u8], offset: u64) -> Result<()> {
    let size = file.size();
    if offset
        .checked_add(buf.len() as u64)
        .is_none_or(|end| end > size)
    {
        return Err(VmdkError::corrupt(
            format!("{what} of {name}"),
            Some(offset),
            format!(
                "{} bytes there would reach past the end of the {size}-byte file",
                buf.len()
            ),
        ));
    }
    file.read_exact_at(buf, offset)
        .map_err(|e| VmdkError::io(format!("reading {what} of {name} at byte {offset}"), e))
}

impl SparseExtent {
    /// Opens the extent whose primary header is `primary` (already parsed from the
    /// first sector of `file`).
    pub(crate) fn open(
        file: Arc<dyn ReadAt>,
        name: &str,
        primary: SparseExtentHeader,
    ) -> Result<Self> {
        let file_size = file.size();
        let mut header = primary.clone();
        let mut footer_used = false;
        if primary.gd_offset == GD_AT_END {
            if !primary.compressed() && !primary.has_markers() {
                return Err(VmdkError::corrupt(
                    format!("sparse extent header of {name}"),
                    Some(56),
                    "gdOffset is GD_AT_END but the extent is not stream-optimized",
                ));
            }
            header = read_footer(&*file, name, &primary)?;
            footer_used = true;
        }
        let layout = header.validate(name, file_size)?;
        let gd_what = format!("grain directory of {name}");
        if header.gd_offset == 0 || header.gd_offset == GD_AT_END {
            return Err(VmdkError::corrupt(
                format!("sparse extent header of {name}"),
                Some(56),
                format!(
                    "gdOffset {:#x} does not locate a grain directory",
                    header.gd_offset
                ),
            ));
        }
        let gd_bytes = header.gd_offset.checked_mul(SECTOR).ok_or_else(|| {
            VmdkError::corrupt(
                gd_what.clone(),
                None,
                format!("sector {} overflows a byte offset", header.gd_offset),
            )
        })?;
        // gd_entries ≤ MAX_GD_ENTRIES (validate), so this fits; read_at checks the file.
        let mut raw = vec![0u8; (layout.gd_entries * 4) as usize];
        if gd_bytes
            .checked_add(raw.len() as u64)
            .is_none_or(|e| e > file_size)
        {
            return Err(VmdkError::corrupt(
                gd_what,
                Some(gd_bytes),
                format!(
                    "{} entries would reach past the end of the {file_size}-byte file",
                    layout.gd_entries
                ),
            ));
        }
        read_at(&*file, name, "grain directory", &mut raw, gd_bytes)?;
        let gd: Vec<u32> = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let gt_len = u64::from(layout.gtes_per_gt) * 4;
        for (i, &sector) in gd.iter().enumerate() {
            let at = u64::from(sector) * SECTOR;
            if sector != 0 && at + gt_len > file_size {
                return Err(VmdkError::corrupt(
                    format!("grain directory entry {i} of {name}"),
                    Some(gd_bytes + 4 * i as u64),
                    format!(
                        "grain table at byte {at} lies past the end of the {file_size}-byte file"
                    ),
                ));
            }
        }
        let stream = layout
            .compressed
            .then(|| StreamState::new(layout.grain_bytes));
        Ok(Self {
            file,
            name: name.to_string(),
            header,
            layout,
            footer_used,
            gd,
            gt_cache: Mutex::new(GtCache::default()),
            stream,
        })
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.layout.capacity_bytes
    }

    /// Sectors covered by one grain table, in bytes.
    fn gt_span(&self) -> u64 {
        self.layout.grain_bytes * u64::from(self.layout.gtes_per_gt)
    }

    fn read_gt_into(&self, gd_index: u64, out: &mut Vec<u32>) -> Result<bool> {
        let sector = match self.gd.get(gd_index as usize) {
            Some(&0) | None => return Ok(false),
            Some(&s) => s,
        };
        let mut raw = vec![0u8; self.layout.gtes_per_gt as usize * 4];
        read_at(
            &*self.file,
            &self.name,
            "grain table",
            &mut raw,
            u64::from(sector) * SECTOR,
        )?;
        out.clear();
        out.extend(
            raw.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        Ok(true)
    }

    /// The grain table for directory entry `gd_index`, or `None` if the directory
    /// has none there (the whole span is unallocated).
    pub(crate) fn gt(&self, gd_index: u64) -> Result<Option<Arc<[u32]>>> {
        if let Ok(c) = self.gt_cache.lock()
            && let Some(t) = c.tables.get(&gd_index)
        {
            return Ok(Some(t.clone()));
        }
        let mut v = Vec::new();
        if !self.read_gt_into(gd_index, &mut v)? {
            return Ok(None);
        }
        let table: Arc<[u32]> = v.into();
        if let Ok(mut c) = self.gt_cache.lock() {
            if c.tables.insert(gd_index, table.clone()).is_none() {
                c.order.push_back(gd_index);
            }
            while c.order.len() > GT_CACHE_TABLES {
                if let Some(old) = c.order.pop_front() {
                    c.tables.remove(&old);
                }
            }
        }
        Ok(Some(table))
    }

    pub(crate) fn classify(&self, gte: u32) -> Grain {
        match gte {
            0 => Grain::Unallocated,
            1 if self.layout.zero_grain_gte || self.layout.compressed => Grain::Zero,
            s => Grain::At(u64::from(s)),
        }
    }

    /// Bytes of grain `g` that lie inside the capacity (the last grain may be short).
    pub(crate) fn grain_len(&self, g: u64) -> u64 {
        self.layout
            .grain_bytes
            .min(self.capacity() - g * self.layout.grain_bytes)
    }

    /// Calls `f(grain_index, in_grain_offset, buf_range, grain)` for each grain the
    /// byte range `[off, off+len)` touches, in order, loading grain tables as needed.
    pub(crate) fn walk(
        &self,
        off: u64,
        len: usize,
        mut f: impl FnMut(u64, u64, std::ops::Range<usize>, Grain) -> Result<()>,
    ) -> Result<()> {
        let gb = self.layout.grain_bytes;
        let per_gt = u64::from(self.layout.gtes_per_gt);
        let mut cur: Option<(u64, Option<Arc<[u32]>>)> = None;
        let mut done = 0usize;
        while done < len {
            let pos = off + done as u64;
            let g = pos / gb;
            let in_grain = pos % gb;
            let n = ((gb - in_grain) as usize).min(len - done);
            let gd_index = g / per_gt;
            if cur.as_ref().is_none_or(|(i, _)| *i != gd_index) {
                cur = Some((gd_index, self.gt(gd_index)?));
            }
            let gte = match &cur {
                Some((_, Some(t))) => t.get((g % per_gt) as usize).copied().unwrap_or(0),
                _ => 0,
            };
            f(g, in_grain, done..done + n, self.classify(gte))?;
            done += n;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at extent offset `off` (inside the capacity).
    pub(crate) fn read(&self, buf: &mut [u8], off: u64) -> Result<()> {
        if self.layout.compressed {
            return self.read_compressed(buf, off);
        }
        // Host-contiguous grains are coalesced into one read: (host offset, buf range).
        let mut run: Option<(u64, std::ops::Range<usize>)> = None;
        let file = &*self.file;
        let flush =
            |run: &mut Option<(u64, std::ops::Range<usize>)>, buf: &mut [u8]| -> Result<()> {
                if let Some((host, r)) = run.take() {
                    self.read_grain_bytes(file, &mut buf[r.clone()], host, off + r.start as u64)?;
                }
                Ok(())
            };
        self.walk(off, buf.len(), |_, in_grain, r, grain| {
            match grain {
                Grain::Unallocated | Grain::Zero => buf[r].fill(0),
                Grain::At(sector) => {
                    let host = sector * SECTOR + in_grain;
                    match &mut run {
                        Some((h, rr))
                            if *h + (rr.end - rr.start) as u64 == host && rr.end == r.start =>
                        {
                            rr.end = r.end
                        }
                        _ => {
                            flush(&mut run, buf)?;
                            run = Some((host, r));
                        }
                    }
                }
            }
            Ok(())
        })?;
        flush(&mut run, buf)
    }

    fn read_grain_bytes(
        &self,
        file: &dyn ReadAt,
        buf: &mut [u8],
        host: u64,
        virt: u64,
    ) -> Result<()> {
        let size = file.size();
        if host.checked_add(buf.len() as u64).is_none_or(|e| e > size) {
            return Err(VmdkError::corrupt(
                format!("grain table of {}", self.name),
                None,
                format!(
                    "the grain for virtual byte {virt} is at file byte {host}, past the end of the {size}-byte file"
                ),
            ));
        }
        file.read_exact_at(buf, host).map_err(|e| {
            VmdkError::io(
                format!("reading grain data of {} at byte {host}", self.name),
                e,
            )
        })
    }

    /// Virtual byte ranges of allocated grains (zero grains excluded).
    pub(crate) fn allocated(&self) -> Result<RangeSet> {
        let gb = self.layout.grain_bytes;
        let per_gt = u64::from(self.layout.gtes_per_gt);
        let cap = self.capacity();
        let mut set = RangeSet::new();
        let mut run: Option<(u64, u64)> = None;
        let mut table = Vec::new();
        for gd_index in 0..self.layout.gd_entries {
            if !self.read_gt_into(gd_index, &mut table)? {
                continue;
            }
            for (k, &gte) in table.iter().enumerate() {
                let g = gd_index * per_gt + k as u64;
                let start = g * gb;
                if start >= cap {
                    break;
                }
                if matches!(self.classify(gte), Grain::At(_)) {
                    let end = (start + gb).min(cap);
                    match &mut run {
                        Some((_, e)) if *e == start => *e = end,
                        _ => {
                            if let Some((s, e)) = run.take() {
                                set.insert(s..e);
                            }
                            run = Some((start, end));
                        }
                    }
                }
            }
        }
        if let Some((s, e)) = run {
            set.insert(s..e);
        }
        Ok(set)
    }

    /// Number of grain tables the directory points at.
    pub(crate) fn allocated_tables(&self) -> usize {
        self.gd.iter().filter(|&&s| s != 0).count()
    }

    /// Virtual bytes one grain table covers (for info).
    pub(crate) fn table_span(&self) -> u64 {
        self.gt_span()
    }
}

/// The footer of a stream whose header says GD_AT_END: footer marker, a copy of the
/// header with the real gdOffset, end-of-stream marker, in the last three sectors.
fn read_footer(
    file: &dyn ReadAt,
    name: &str,
    primary: &SparseExtentHeader,
) -> Result<SparseExtentHeader> {
    let size = file.size();
    let what = format!("stream footer of {name}");
    if size < 4 * SECTOR {
        return Err(VmdkError::corrupt(
            what,
            None,
            format!("the {size}-byte file is too short to hold a footer"),
        ));
    }
    let at = size - 3 * SECTOR;
    let mut buf = [0u8; 1536];
    read_at(file, name, "stream footer", &mut buf, at)?;
    let bad = |off: u64, detail: String| VmdkError::corrupt(what.clone(), Some(off), detail);
    match Marker::parse(&buf[..512]) {
        Some(Marker::Meta {
            kind: marker::TYPE_FOOTER,
            ..
        }) => {}
        other => {
            return Err(bad(
                at,
                format!("expected a footer marker, found {}", describe(other)),
            ));
        }
    }
    match Marker::parse(&buf[1024..]) {
        Some(Marker::Meta {
            kind: marker::TYPE_EOS,
            sectors: 0,
        }) => {}
        other => {
            return Err(bad(
                at + 1024,
                format!(
                    "expected an end-of-stream marker, found {}",
                    describe(other)
                ),
            ));
        }
    }
    let mut sector = [0u8; 512];
    sector.copy_from_slice(&buf[512..1024]);
    let footer = SparseExtentHeader::parse(&sector)
        .ok_or_else(|| bad(at + 512, "footer does not start with the KDMV magic".into()))?;
    if footer.gd_offset == GD_AT_END {
        return Err(bad(
            at + 512,
            "the footer's gdOffset is GD_AT_END too".into(),
        ));
    }
    if (
        footer.capacity,
        footer.grain_size,
        footer.num_gtes_per_gt,
        footer.compress_algorithm,
    ) != (
        primary.capacity,
        primary.grain_size,
        primary.num_gtes_per_gt,
        primary.compress_algorithm,
    ) {
        return Err(bad(
            at + 512,
            format!(
                "footer disagrees with the header (capacity {} vs {}, grain {} vs {}, GTEs {} vs {}, compression {} vs {})",
                footer.capacity,
                primary.capacity,
                footer.grain_size,
                primary.grain_size,
                footer.num_gtes_per_gt,
                primary.num_gtes_per_gt,
                footer.compress_algorithm,
                primary.compress_algorithm
            ),
        ));
    }
    Ok(footer)
}

pub(crate) fn describe(m: Option<Marker>) -> String {
    match m {
        None => "nothing".into(),
        Some(Marker::Grain { lba, size }) => format!("a grain marker (LBA {lba}, {size} bytes)"),
        Some(Marker::Meta { kind, sectors }) => {
            format!(
                "a {} marker (type {kind}, {sectors} sectors)",
                marker::kind_name(kind)
            )
        }
    }
}
