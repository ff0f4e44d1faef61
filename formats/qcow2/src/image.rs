//! The opened image: L1/L2 lookup, coalesced reads, and the allocation map.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use vmscrub_blockdev::{RangeSet, ReadAt, check_range};

use crate::cache::Lru;
use crate::compress::{Compressed, Inflater};
use crate::error::{Error, Result};
use crate::header::{Header, Info, MAX_CLUSTER_BITS, MIN_CLUSTER_BITS};
use crate::l2::{Decoder, Mapping};

/// What to do when the header names a backing file but `open` gets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingBacking {
    /// Refuse to open ([`Error::MissingBacking`]): reading unallocated clusters as
    /// zeros would silently show a different disk than the guest sees.
    #[default]
    Refuse,
    /// Read unallocated clusters as zeros: only this image's own layer is shown.
    /// Useful to scan what an overlay added without trusting its backing path.
    ReadZeros,
}

/// Tuning and policy for [`Qcow2::open`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenOptions {
    /// L2 tables kept decoded in memory. `None`: enough to map the whole disk, but
    /// no more than 4 MiB of tables and no fewer than 4 tables.
    pub l2_cache_tables: Option<usize>,
    /// Inflated compressed clusters kept for partial reads (so sequential small
    /// reads inflate each cluster once). 0 disables the cache.
    pub compressed_cache_clusters: usize,
    pub missing_backing: MissingBacking,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            l2_cache_tables: None,
            compressed_cache_clusters: 4,
            missing_backing: MissingBacking::Refuse,
        }
    }
}

/// A read-only qcow2 image presented as its virtual disk.
///
/// `F` is the container file (any [`ReadAt`], usually a `FileDisk`). Reads take
/// `&self` and may run on several threads; caches use short internal locks.
pub struct Qcow2<F> {
    file: F,
    header: Header,
    decoder: Decoder,
    l1: Box<[u64]>,
    backing: Option<Arc<dyn ReadAt>>,
    l2_cache: Lru<[u64]>,
    inflater: Inflater,
}

impl<F> std::fmt::Debug for Qcow2<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2")
            .field("header", &self.header)
            .field("has_backing", &self.backing.is_some())
            .finish_non_exhaustive()
    }
}

/// A pending run of guest clusters that can be served with one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunKind {
    /// Host-contiguous data starting at this host offset.
    Data(u64),
    Zero,
    /// Unallocated here: the backing device, or zeros.
    Backing,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    kind: RunKind,
    /// Start in the caller's buffer, and length.
    at: usize,
    len: usize,
}

impl<F: ReadAt> Qcow2<F> {
    /// Opens the qcow2 image in `file`.
    ///
    /// `backing` is the already-opened backing device when the header names one
    /// (see [`Qcow2::header`] / [`crate::read_header`] to learn its name and format
    /// first). This crate never opens host paths: whether an image may make us open
    /// a path it names is the caller's policy, and the name comes from a possibly
    /// hostile image (absolute paths, `..`, device nodes, protocol strings).
    pub fn open(file: F, backing: Option<Arc<dyn ReadAt>>, options: &OpenOptions) -> Result<Self> {
        let header = Header::read(&file)?;
        Self::with_header(file, header, backing, options)
    }

    /// Like [`Qcow2::open`], with a header the caller already read from `file`.
    pub fn with_header(
        file: F,
        header: Header,
        backing: Option<Arc<dyn ReadAt>>,
        options: &OpenOptions,
    ) -> Result<Self> {
        // The header's fields are public: re-check what the arithmetic below relies on.
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&header.cluster_bits)
            || !matches!(header.version, 2 | 3)
        {
            return Err(Error::field(
                "cluster_bits",
                header.cluster_bits.into(),
                "out of range",
            ));
        }
        header.check_geometry()?;
        header.check_supported()?;
        match (&header.backing_file, &backing) {
            (Some(b), None) if options.missing_backing == MissingBacking::Refuse => {
                return Err(Error::MissingBacking {
                    name: b.name_lossy(),
                });
            }
            (None, Some(_)) => return Err(Error::UnexpectedBacking),
            _ => {}
        }
        if file.size() != header.file_size {
            return Err(Error::io(
                "qcow2 container",
                io::Error::other("the file changed size since its header was read"),
            ));
        }
        // Bounded by check_geometry: ≤ 32 MiB and inside the file.
        let l1_len = header.l1_size as usize;
        let mut raw = vec![0u8; l1_len * 8];
        file.read_exact_at(&mut raw, header.l1_table_offset)
            .map_err(|e| {
                Error::io(
                    format!(
                        "active L1 table at file offset {:#x}",
                        header.l1_table_offset
                    ),
                    e,
                )
            })?;
        let l1: Box<[u64]> = raw.chunks_exact(8).map(be64).collect();

        let cs = header.cluster_size();
        let tables = options.l2_cache_tables.unwrap_or_else(|| {
            let whole_disk = usize::try_from(header.l1_entries_needed()).unwrap_or(usize::MAX);
            whole_disk.min(((4u64 << 20) / cs) as usize).max(4)
        });
        Ok(Qcow2 {
            decoder: Decoder::new(header.cluster_bits, header.version),
            inflater: Inflater::new(
                header.compression_type,
                cs as usize,
                options.compressed_cache_clusters,
            ),
            l2_cache: Lru::new(tables),
            l1,
            backing,
            header,
            file,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn info(&self) -> Info {
        self.header.info()
    }

    /// The container file.
    pub fn file(&self) -> &F {
        &self.file
    }

    pub fn backing(&self) -> Option<&Arc<dyn ReadAt>> {
        self.backing.as_ref()
    }

    /// How many L2 tables the cache holds at most.
    pub fn l2_cache_tables(&self) -> usize {
        self.l2_cache.capacity()
    }

    fn cluster_size(&self) -> u64 {
        self.header.cluster_size()
    }

    /// Bits of a guest offset below the L1 index.
    fn l1_shift(&self) -> u32 {
        2 * self.header.cluster_bits - 3
    }

    /// The L2 table for L1 entry `index`, or `None` if the span is unallocated.
    fn l2_table(&self, index: u64) -> Result<Option<Arc<[u64]>>> {
        let Some(l2_offset) = self.l2_offset(index)? else {
            return Ok(None);
        };
        if let Some(t) = self.l2_cache.get(l2_offset) {
            return Ok(Some(t));
        }
        let table = self.load_l2(index, l2_offset)?;
        self.l2_cache.insert(l2_offset, Arc::clone(&table));
        Ok(Some(table))
    }

    fn l2_offset(&self, index: u64) -> Result<Option<u64>> {
        // Indexes past the L1 table are past the virtual size (check_geometry), but a
        // missing entry means unallocated anyway.
        let entry = usize::try_from(index)
            .ok()
            .and_then(|i| self.l1.get(i))
            .copied()
            .unwrap_or(0);
        self.decoder
            .l1_entry(entry)
            .map_err(|why| Error::L1Entry { index, entry, why })
    }

    fn load_l2(&self, index: u64, l2_offset: u64) -> Result<Arc<[u64]>> {
        let cs = self.cluster_size();
        let file_size = self.header.file_size;
        if l2_offset.checked_add(cs).is_none_or(|end| end > file_size) {
            return Err(Error::PastEof {
                what: format!("L2 table of L1 entry {index}"),
                offset: l2_offset,
                len: cs,
                file_size,
            });
        }
        let mut raw = vec![0u8; cs as usize];
        self.file
            .read_exact_at(&mut raw, l2_offset)
            .map_err(|e| Error::io(format!("L2 table at file offset {l2_offset:#x}"), e))?;
        Ok(raw.chunks_exact(8).map(be64).collect())
    }

    fn mapping(
        &self,
        table: &[u64],
        l2_offset_for_errors: impl Fn() -> u64,
        index: usize,
        guest: u64,
    ) -> Result<Mapping> {
        let entry = table.get(index).copied().unwrap_or(0);
        self.decoder.l2_entry(entry).map_err(|why| Error::L2Entry {
            guest,
            l2_offset: l2_offset_for_errors(),
            index: index as u64,
            entry,
            why,
        })
    }

    /// The guest read: walks the L2 entries of the range, merging neighbouring
    /// clusters of the same kind (host-contiguous data, zeros, fall-through) into
    /// runs served with one read or fill each. Compressed clusters are inflated one
    /// at a time, straight into `buf` when a whole cluster is asked for.
    fn read_guest(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let cs = self.cluster_size();
        let l1_shift = self.l1_shift();
        let entries = 1usize << (self.header.cluster_bits - 3);
        let mut run: Option<Run> = None;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let l1_index = pos >> l1_shift;
            let Some(table) = self.l2_table(l1_index)? else {
                let span_end = (l1_index + 1) << l1_shift;
                let n = (span_end - pos).min((buf.len() - done) as u64) as usize;
                self.extend(&mut run, RunKind::Backing, done, n, buf, offset)?;
                done += n;
                continue;
            };
            let mut l2_index = ((pos >> self.header.cluster_bits) as usize) & (entries - 1);
            while done < buf.len() && l2_index < entries {
                let pos = offset + done as u64;
                let within = pos & (cs - 1);
                let n = (cs - within).min((buf.len() - done) as u64) as usize;
                let l2_off = || self.l2_offset(l1_index).ok().flatten().unwrap_or(0);
                match self.mapping(&table, l2_off, l2_index, pos - within)? {
                    Mapping::Unallocated => {
                        self.extend(&mut run, RunKind::Backing, done, n, buf, offset)?
                    }
                    Mapping::Zero => self.extend(&mut run, RunKind::Zero, done, n, buf, offset)?,
                    Mapping::Data(host) => {
                        self.extend(&mut run, RunKind::Data(host + within), done, n, buf, offset)?
                    }
                    Mapping::Compressed { offset: host, len } => {
                        if let Some(r) = run.take() {
                            self.flush(r, buf, offset)?;
                        }
                        let c = Compressed {
                            guest: pos - within,
                            host,
                            len,
                        };
                        self.inflater.read(
                            &self.file,
                            c,
                            within as usize,
                            &mut buf[done..done + n],
                        )?;
                    }
                }
                done += n;
                l2_index += 1;
            }
        }
        if let Some(r) = run.take() {
            self.flush(r, buf, offset)?;
        }
        Ok(())
    }

    /// Adds `len` bytes at `at` of kind `kind` to the pending run, flushing it first
    /// if they do not continue it.
    fn extend(
        &self,
        run: &mut Option<Run>,
        kind: RunKind,
        at: usize,
        len: usize,
        buf: &mut [u8],
        offset: u64,
    ) -> Result<()> {
        if let Some(r) = run {
            let continues = match (r.kind, kind) {
                (RunKind::Data(start), RunKind::Data(host)) => start + r.len as u64 == host,
                (a, b) => a == b,
            };
            if continues {
                r.len += len;
                return Ok(());
            }
            let r = *r;
            self.flush(r, buf, offset)?;
        }
        *run = Some(Run { kind, at, len });
        Ok(())
    }

    fn flush(&self, r: Run, buf: &mut [u8], offset: u64) -> Result<()> {
        let out = &mut buf[r.at..r.at + r.len];
        let guest = offset + r.at as u64;
        match r.kind {
            RunKind::Zero => out.fill(0),
            RunKind::Data(host) => {
                let file_size = self.header.file_size;
                if host
                    .checked_add(r.len as u64)
                    .is_none_or(|end| end > file_size)
                {
                    return Err(Error::PastEof {
                        what: format!("data for guest offset {guest:#x}"),
                        offset: host,
                        len: r.len as u64,
                        file_size,
                    });
                }
                self.file.read_exact_at(out, host).map_err(|e| {
                    Error::io(
                        format!("data at file offset {host:#x} (guest {guest:#x})"),
                        e,
                    )
                })?;
            }
            RunKind::Backing => match &self.backing {
                None => out.fill(0),
                Some(b) => {
                    // qemu semantics: past the end of a shorter backing device, zeros.
                    let avail = b.size().saturating_sub(guest).min(r.len as u64) as usize;
                    let (from_backing, beyond) = out.split_at_mut(avail);
                    if !from_backing.is_empty() {
                        b.read_exact_at(from_backing, guest).map_err(|e| {
                            Error::io(format!("backing device at offset {guest:#x}"), e)
                        })?;
                    }
                    beyond.fill(0);
                }
            },
        }
        Ok(())
    }

    /// The allocation map: guest ranges whose clusters hold data or compressed data
    /// in this image, plus the backing device's allocated ranges where this image
    /// is unallocated. Zero clusters are excluded. Each L2 table is read once
    /// (bypassing the cache); an L2 table referenced twice from the active L1 is
    /// refused, which bounds the work by the file size.
    fn allocation(&self) -> Result<RangeSet> {
        let size = self.header.size;
        let cs = self.cluster_size();
        let span = 1u64 << self.l1_shift();
        let mut local = RangeSet::new();
        let mut fall_through = RangeSet::new();
        let mut seen: HashMap<u64, u64> = HashMap::new();
        for index in 0..self.header.l1_entries_needed() {
            let span_start = index * span;
            let span_end = (span_start + span).min(size);
            let Some(l2_offset) = self.l2_offset(index)? else {
                fall_through.insert(span_start..span_end);
                continue;
            };
            if let Some(first) = seen.insert(l2_offset, index) {
                let entry = self.l1.get(index as usize).copied().unwrap_or(0);
                return Err(Error::L1Entry {
                    index,
                    entry,
                    why: format!("L2 table at {l2_offset:#x} is also used by L1 entry {first}"),
                });
            }
            let table = match self.l2_cache.get(l2_offset) {
                Some(t) => t,
                None => self.load_l2(index, l2_offset)?,
            };
            // Coalesce runs of the same kind before inserting into the sets.
            let mut cur: Option<(bool, u64, u64)> = None; // (is_local, start, end)
            let mut guest = span_start;
            for i in 0..table.len() {
                if guest >= span_end {
                    break;
                }
                let end = (guest + cs).min(span_end);
                let kind = match self.mapping(&table, || l2_offset, i, guest)? {
                    Mapping::Data(_) | Mapping::Compressed { .. } => Some(true),
                    Mapping::Unallocated => Some(false),
                    Mapping::Zero => None,
                };
                cur = match (cur, kind) {
                    (Some((l, s, _)), Some(k)) if l == k => Some((l, s, end)),
                    (prev, k) => {
                        if let Some((l, s, e)) = prev {
                            if l { &mut local } else { &mut fall_through }.insert(s..e);
                        }
                        k.map(|k| (k, guest, end))
                    }
                };
                guest = end;
            }
            if let Some((l, s, e)) = cur {
                if l { &mut local } else { &mut fall_through }.insert(s..e);
            }
        }
        if let Some(b) = &self.backing {
            let reach = b.size().min(size);
            let below: RangeSet = fall_through.overlapping(0..reach).collect();
            if !below.is_empty() {
                let backing_alloc = b
                    .allocated_ranges()
                    .map_err(|e| Error::io("the backing device's allocation map", e))?;
                local.union_with(&backing_alloc.intersection(&below));
            }
        }
        Ok(local)
    }
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

impl<F: ReadAt> ReadAt for Qcow2<F> {
    fn size(&self) -> u64 {
        self.header.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.header.size)?;
        self.read_guest(buf, offset).map_err(io::Error::from)
    }

    fn allocated_ranges(&self) -> io::Result<RangeSet> {
        self.allocation().map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    /// A hand-made version 2 image with 512-byte clusters, as old qemu wrote them:
    /// the backing name right after the 72-byte header, no extensions. Guest cluster
    /// 0 is data, 1 is unallocated, 2 is data contiguous with 0's host cluster + 1.
    fn v2_image() -> Vec<u8> {
        let mut b = vec![0u8; 5 * 512];
        b[0..4].copy_from_slice(&crate::MAGIC);
        b[4..8].copy_from_slice(&2u32.to_be_bytes());
        b[8..16].copy_from_slice(&72u64.to_be_bytes()); // backing name offset
        b[16..20].copy_from_slice(&8u32.to_be_bytes());
        b[20..24].copy_from_slice(&9u32.to_be_bytes()); // 512-byte clusters
        b[24..32].copy_from_slice(&(4u64 * 512).to_be_bytes()); // 4 guest clusters
        b[36..40].copy_from_slice(&1u32.to_be_bytes()); // l1_size
        b[40..48].copy_from_slice(&512u64.to_be_bytes()); // L1 at cluster 1
        b[72..80].copy_from_slice(b"base.img");
        b[512..520].copy_from_slice(&((1u64 << 63) | 1024).to_be_bytes()); // L2 at cluster 2
        b[1024..1032].copy_from_slice(&((1u64 << 63) | 1536).to_be_bytes());
        b[1040..1048].copy_from_slice(&((1u64 << 63) | 2048).to_be_bytes());
        b[1536..2048].fill(0xaa);
        b[2048..2560].fill(0xbb);
        b
    }

    #[test]
    fn v2_with_a_short_backing_file() {
        // The backing device covers 1.5 guest clusters: the rest of cluster 1 and all
        // of cluster 3 read as zeros.
        let backing: Arc<dyn ReadAt> = Arc::new(MemDisk::new(vec![0x11; 768]));
        let disk = Qcow2::open(
            MemDisk::new(v2_image()),
            Some(backing),
            &OpenOptions::default(),
        )
        .unwrap();
        let info = disk.info();
        assert_eq!(
            (info.version, info.cluster_size, info.refcount_order),
            (2, 512, 4)
        );
        assert_eq!(info.backing_file.as_deref(), Some("base.img"));
        assert_eq!(info.backing_format, None);
        let mut all = vec![0u8; 2048];
        disk.read_exact_at(&mut all, 0).unwrap();
        assert!(all[..512].iter().all(|&b| b == 0xaa));
        assert!(all[512..768].iter().all(|&b| b == 0x11));
        assert!(all[768..1024].iter().all(|&b| b == 0));
        assert!(all[1024..1536].iter().all(|&b| b == 0xbb));
        assert!(all[1536..].iter().all(|&b| b == 0));
        let alloc: Vec<_> = disk.allocated_ranges().unwrap().iter().collect();
        assert_eq!(alloc, vec![0..768, 1024..1536]);
        // Without the backing device: refused, or this layer alone.
        let err = Qcow2::open(MemDisk::new(v2_image()), None, &OpenOptions::default()).unwrap_err();
        assert!(matches!(err, Error::MissingBacking { .. }));
        let o = OpenOptions {
            missing_backing: MissingBacking::ReadZeros,
            ..Default::default()
        };
        let alone = Qcow2::open(MemDisk::new(v2_image()), None, &o).unwrap();
        alone.read_exact_at(&mut all, 0).unwrap();
        assert!(all[512..1024].iter().all(|&b| b == 0) && all[1024] == 0xbb);
        assert_eq!(
            alone.allocated_ranges().unwrap().iter().collect::<Vec<_>>(),
            vec![0..512, 1024..1536]
        );
    }

    #[test]
    fn the_default_l2_cache_is_bounded() {
        let backing: Arc<dyn ReadAt> = Arc::new(MemDisk::new(vec![]));
        let disk = Qcow2::open(
            MemDisk::new(v2_image()),
            Some(backing),
            &OpenOptions::default(),
        )
        .unwrap();
        assert_eq!(disk.l2_cache_tables(), 4);
        let o = OpenOptions {
            l2_cache_tables: Some(0),
            ..Default::default()
        };
        let backing: Arc<dyn ReadAt> = Arc::new(MemDisk::new(vec![]));
        let disk = Qcow2::open(MemDisk::new(v2_image()), Some(backing), &o).unwrap();
        assert_eq!(disk.l2_cache_tables(), 1);
    }
}
