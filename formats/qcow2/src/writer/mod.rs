//! A sequential qcow2 writer: the virtual disk arrives front to back, one whole
//! cluster at a time (stored as is, or already compressed by the caller's
//! threads), and is appended to the output in that order.
//!
//! # Layout
//!
//! ```text
//! cluster 0    header + extensions (written last, once the tables are placed)
//! 1 ..         data clusters in guest order; compressed clusters packed back to back,
//!              several per host cluster, a stream may run on into the next cluster
//!              [L2 tables spilled early, only for very large disks, see below]
//! tail         L2 tables, L1 table, refcount blocks, refcount table
//! ```
//!
//! The data size is not known until the end, so everything that depends on it
//! goes after the data: the tail is laid out once by [`layout::plan_tail`],
//! whose refcount blocks count every cluster of the file including themselves.
//! Every cluster is referenced (no leaks), uncompressed clusters, L2 tables and
//! the L1 carry the "refcount is one" flag, and nothing is preallocated, so the
//! file is as small as its data plus one table per 512 MiB (64 KiB clusters).
//!
//! Zero and never-written clusters stay unallocated: the output has no backing
//! file, so they read as zeros. L2 tables exist only for spans with data, so an
//! 8 TiB disk holding a few MiB costs a few tables of memory. Finished L2 tables
//! wait in memory for the tail up to [`WriterOptions::l2_memory`] bytes (32 MiB
//! by default: 256 GiB of guest data at 64 KiB clusters); past that they are
//! written out between data clusters, which keeps memory bounded for any disk.
//!
//! # Refused
//!
//! Backing files, encryption, snapshots, external data files, subclusters, lazy
//! refcounts, refcount widths other than 16 bits, zstd in a version 2 image,
//! cluster sizes outside 512 B .. 2 MiB, disks whose L1 table would exceed
//! qemu's 32 MiB limit, and files whose refcount table would exceed qemu's
//! 8 MiB. Contract breaches by the caller (clusters out of order, wrong
//! lengths) are errors, and after any error the writer refuses to continue.

mod compressor;
mod error;
mod header;
mod layout;
mod refcounts;

use std::io::{Seek, SeekFrom, Write};

pub use compressor::{ClusterCompressor, DEFAULT_ZLIB_LEVEL, DEFAULT_ZSTD_LEVEL};
pub use error::WriteError;

use crate::header::{CompressionType, MAX_CLUSTER_BITS, MIN_CLUSTER_BITS};
use layout::{COPIED, Geometry, MAX_HOST_OFFSET, MAX_L1_BYTES};
use refcounts::Refcounts;

/// The qcow2 version written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// `compat=0.10`: readable by every qemu; zlib only.
    V2,
    /// `compat=1.1`, qemu's default since 1.7 (2013).
    #[default]
    V3,
}

impl Version {
    pub fn number(self) -> u32 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    /// qemu's name for it (`qemu-img info` shows "compat").
    pub fn compat(self) -> &'static str {
        match self {
            Version::V2 => "0.10",
            Version::V3 => "1.1",
        }
    }
}

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterOptions {
    pub version: Version,
    /// log2 of the cluster size, 9 ..= 21.
    pub cluster_bits: u32,
    /// The compression type in the header, for the clusters given to
    /// [`Writer::write_compressed`]. zstd needs version 3.
    pub compression: CompressionType,
    /// Bytes of finished L2 tables kept for the tail before they are written
    /// between the data (see the module documentation).
    pub l2_memory: usize,
}

/// 64 KiB, qemu's default.
pub const DEFAULT_CLUSTER_BITS: u32 = 16;
pub const DEFAULT_L2_MEMORY: usize = 32 << 20;

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            version: Version::V3,
            cluster_bits: DEFAULT_CLUSTER_BITS,
            compression: CompressionType::Zlib,
            l2_memory: DEFAULT_L2_MEMORY,
        }
    }
}

impl WriterOptions {
    pub fn cluster_size(&self) -> u64 {
        1u64 << self.cluster_bits.min(63)
    }

    /// Sets the cluster size in bytes (a power of two, 512 B .. 2 MiB).
    pub fn set_cluster_size(&mut self, bytes: u64) -> Result<(), WriteError> {
        self.cluster_bits = cluster_bits(bytes).ok_or(WriteError::ClusterSize(bytes))?;
        Ok(())
    }

    /// Refuses combinations the writer cannot produce.
    pub fn check(&self) -> Result<(), WriteError> {
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&self.cluster_bits) {
            return Err(WriteError::ClusterSize(self.cluster_size()));
        }
        match self.compression {
            CompressionType::Zlib => Ok(()),
            CompressionType::Zstd if self.version == Version::V3 => Ok(()),
            CompressionType::Zstd => Err(WriteError::ZstdNeedsV3),
            CompressionType::Unknown(t) => Err(WriteError::CompressionType(t)),
        }
    }

    /// Refuses a disk of `size` bytes whose L1 table would exceed qemu's 32 MiB
    /// limit with this cluster size (512-byte clusters stop at 128 GiB).
    pub fn check_size(&self, size: u64) -> Result<(), WriteError> {
        self.check()?;
        let geo = Geometry {
            cluster_bits: self.cluster_bits,
        };
        let l1_bytes = geo.l1_entries(size) * 8;
        if l1_bytes > MAX_L1_BYTES {
            return Err(WriteError::DiskTooLarge {
                size,
                cluster_size: geo.cluster_size(),
                l1_bytes,
            });
        }
        Ok(())
    }
}

/// log2 of `bytes` if it is a cluster size qcow2 writers and qemu accept.
pub fn cluster_bits(bytes: u64) -> Option<u32> {
    let bits = bytes.checked_ilog2()?;
    (bytes.is_power_of_two() && (MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&bits))
        .then_some(bits)
}

/// What [`Writer::finish`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub file_size: u64,
    /// Guest clusters stored uncompressed / compressed.
    pub data_clusters: u64,
    pub compressed_clusters: u64,
    /// Host clusters holding compressed data.
    pub compressed_host_clusters: u64,
    pub l2_tables: u64,
    /// L2 tables written between the data because of [`WriterOptions::l2_memory`].
    pub l2_tables_spilled: u64,
}

/// One L2 table being filled or waiting for the tail.
struct L2Table {
    l1_index: u64,
    entries: Box<[u64]>,
}

const SECTOR: u64 = 512;

/// Zeros for padding to a cluster boundary.
const ZEROS: [u8; 4096] = [0; 4096];

/// The writer. `W` is the output, positioned at its start and empty; it is
/// written sequentially except for one seek back to the header at the end.
pub struct Writer<W: Write + Seek> {
    out: W,
    geo: Geometry,
    opts: WriterOptions,
    size: u64,
    guest_clusters: u64,
    l1_entries: u64,
    /// Bytes written so far: where the next byte goes.
    pos: u64,
    /// The lowest guest cluster still acceptable.
    next: u64,
    current: Option<L2Table>,
    /// Finished tables waiting for the tail, and their memory.
    waiting: Vec<L2Table>,
    /// (L1 index, L2 table offset) of tables already written, increasing.
    l1: Vec<(u64, u64)>,
    refs: Refcounts,
    summary: Summary,
    failed: bool,
}

impl<W: Write + Seek> Writer<W> {
    /// Starts an image of `size` virtual bytes in `out`. Checks the options and
    /// reserves the header cluster.
    ///
    /// The size is rounded up to whole 512-byte sectors, like every qemu-made
    /// image: qemu reads a header size as whole sectors, rounded down, so an
    /// unaligned size would hide the disk's last bytes from it. The padding
    /// reads as zeros.
    pub fn new(mut out: W, size: u64, opts: &WriterOptions) -> Result<Self, WriteError> {
        let size = size
            .checked_next_multiple_of(SECTOR)
            .ok_or(WriteError::DiskTooLarge {
                size,
                cluster_size: opts.cluster_size(),
                l1_bytes: u64::MAX,
            })?;
        opts.check_size(size)?;
        let geo = Geometry {
            cluster_bits: opts.cluster_bits,
        };
        let l1_entries = geo.l1_entries(size);
        let mut w = Writer {
            geo,
            opts: opts.clone(),
            size,
            guest_clusters: geo.guest_clusters(size),
            l1_entries,
            pos: 0,
            next: 0,
            current: None,
            waiting: Vec::new(),
            l1: Vec::new(),
            refs: Refcounts::new(geo.refblock_entries()),
            summary: Summary::default(),
            failed: false,
            out: {
                out.seek(SeekFrom::Start(0))
                    .map_err(|e| WriteError::io("seeking to the start", e))?;
                out
            },
        };
        // The header's cluster, zeros until `finish` knows where the tables are.
        w.pad_to(geo.cluster_size())?;
        w.refs.push_ones(1)?;
        Ok(w)
    }

    pub fn cluster_size(&self) -> u64 {
        self.geo.cluster_size()
    }

    /// The virtual size written in the header (whole sectors).
    pub fn virtual_size(&self) -> u64 {
        self.size
    }

    /// Stores guest clusters `first ..` uncompressed: `data` holds whole
    /// clusters, except that the disk's last cluster may be short (it is padded
    /// with zeros in the file).
    pub fn write_data(&mut self, first: u64, data: &[u8]) -> Result<(), WriteError> {
        self.guard(|w| w.write_data_inner(first, data))
    }

    /// Stores guest cluster `index` as the compressed stream `data` (raw deflate
    /// or zstd per [`WriterOptions::compression`], inflating to one whole
    /// cluster, shorter than a cluster; see [`ClusterCompressor`]).
    pub fn write_compressed(&mut self, index: u64, data: &[u8]) -> Result<(), WriteError> {
        self.guard(|w| w.write_compressed_inner(index, data))
    }

    /// Writes the tables and the header, flushes, and hands the output back.
    pub fn finish(mut self) -> Result<(W, Summary), WriteError> {
        if self.failed {
            return Err(WriteError::Failed);
        }
        self.finish_inner()?;
        Ok((self.out, self.summary))
    }

    /// Runs `f`; after a failure the image is inconsistent, so every later call
    /// is refused.
    fn guard(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<(), WriteError>,
    ) -> Result<(), WriteError> {
        if self.failed {
            return Err(WriteError::Failed);
        }
        let r = f(self);
        self.failed = r.is_err();
        r
    }

    /// Checks that guest clusters `first .. first + n` may come now.
    fn accept(&self, first: u64, n: u64) -> Result<(), WriteError> {
        if first < self.next {
            return Err(WriteError::OutOfOrder {
                index: first,
                next: self.next,
            });
        }
        if first.saturating_add(n) > self.guest_clusters {
            return Err(WriteError::PastEnd {
                index: first.saturating_add(n).saturating_sub(1),
                clusters: self.guest_clusters,
            });
        }
        Ok(())
    }

    fn write_data_inner(&mut self, first: u64, data: &[u8]) -> Result<(), WriteError> {
        let cs = self.geo.cluster_size();
        let len = data.len() as u64;
        let n = len.div_ceil(cs);
        if len == 0 {
            return Err(WriteError::Length {
                index: first,
                len,
                why: "no data".into(),
            });
        }
        self.accept(first, n)?;
        if !len.is_multiple_of(cs) && first + n != self.guest_clusters {
            return Err(WriteError::Length {
                index: first,
                len,
                why: format!("not whole {cs}-byte clusters, and not the disk's last cluster"),
            });
        }
        // One piece per L2 table, since a spill may come between two.
        let per_table = self.geo.l2_entries();
        let mut index = first;
        let mut rest = data;
        while !rest.is_empty() {
            let in_table = per_table - index % per_table;
            let take = (in_table * cs).min(rest.len() as u64) as usize;
            let (piece, tail) = rest.split_at(take);
            self.table_for(index)?;
            self.pad_to_cluster()?;
            let at = self.pos;
            if at + piece.len() as u64 > MAX_HOST_OFFSET {
                return Err(WriteError::FileTooLarge {
                    what: "data cluster",
                    offset: at,
                    limit: MAX_HOST_OFFSET,
                });
            }
            self.out
                .write_all(piece)
                .map_err(|e| WriteError::io(format!("data at file offset {at:#x}"), e))?;
            self.pos += piece.len() as u64;
            self.pad_to_cluster()?;
            let clusters = (piece.len() as u64).div_ceil(cs);
            for k in 0..clusters {
                self.set_entry(index + k, (at + k * cs) | COPIED)?;
            }
            self.refs.push_ones(clusters)?;
            self.summary.data_clusters += clusters;
            index += clusters;
            rest = tail;
        }
        self.next = index;
        Ok(())
    }

    fn write_compressed_inner(&mut self, index: u64, data: &[u8]) -> Result<(), WriteError> {
        let cs = self.geo.cluster_size();
        let len = data.len() as u64;
        if len == 0 || len >= cs {
            return Err(WriteError::Length {
                index,
                len,
                why: format!("a compressed cluster takes 1 to {} bytes", cs - 1),
            });
        }
        self.accept(index, 1)?;
        self.table_for(index)?;
        // Pack after the previous stream, unless the host cluster it ends in has
        // run out of references (tiny zstd frames in 2 MiB clusters can).
        if !self.refs.can_add(self.pos / cs) {
            self.pad_to_cluster()?;
        }
        let at = self.pos;
        let entry = self.geo.compressed_entry(at, len)?;
        self.out
            .write_all(data)
            .map_err(|e| WriteError::io(format!("compressed data at file offset {at:#x}"), e))?;
        self.pos += len;
        // Every host cluster the stream touches holds one more reference.
        for c in at / cs..=(at + len - 1) / cs {
            if c == self.refs.len() {
                self.summary.compressed_host_clusters += 1;
            }
            self.refs.add(c)?;
        }
        self.set_entry(index, entry)?;
        self.summary.compressed_clusters += 1;
        self.next = index + 1;
        Ok(())
    }

    /// Makes the current L2 table the one mapping guest cluster `index`,
    /// retiring the previous one (and spilling the waiting ones if they
    /// exceed the memory budget).
    fn table_for(&mut self, index: u64) -> Result<(), WriteError> {
        let l1_index = index / self.geo.l2_entries();
        if self
            .current
            .as_ref()
            .is_some_and(|t| t.l1_index == l1_index)
        {
            return Ok(());
        }
        if let Some(done) = self.current.take() {
            self.waiting.push(done);
            let waiting_bytes = self.waiting.len() as u64 * self.geo.cluster_size();
            if waiting_bytes > self.opts.l2_memory as u64 {
                self.spill()?;
            }
        }
        self.current = Some(L2Table {
            l1_index,
            entries: vec![0u64; self.geo.l2_entries() as usize].into_boxed_slice(),
        });
        Ok(())
    }

    fn set_entry(&mut self, index: u64, entry: u64) -> Result<(), WriteError> {
        let per_table = self.geo.l2_entries();
        match &mut self.current {
            Some(t) if t.l1_index == index / per_table => {
                t.entries[(index % per_table) as usize] = entry;
                Ok(())
            }
            _ => Err(WriteError::Internal(format!(
                "no L2 table for guest cluster {index}"
            ))),
        }
    }

    /// Writes the waiting L2 tables here, between data clusters.
    fn spill(&mut self) -> Result<(), WriteError> {
        let tables = std::mem::take(&mut self.waiting);
        self.summary.l2_tables_spilled += tables.len() as u64;
        for t in &tables {
            self.write_table(t)?;
        }
        Ok(())
    }

    /// Appends one L2 table at the next cluster boundary and points the L1 at it.
    fn write_table(&mut self, t: &L2Table) -> Result<(), WriteError> {
        self.pad_to_cluster()?;
        let at = self.pos;
        if at >= MAX_HOST_OFFSET {
            return Err(WriteError::FileTooLarge {
                what: "L2 table",
                offset: at,
                limit: MAX_HOST_OFFSET,
            });
        }
        let mut bytes = Vec::with_capacity(t.entries.len() * 8);
        for e in t.entries.iter() {
            bytes.extend_from_slice(&e.to_be_bytes());
        }
        self.out
            .write_all(&bytes)
            .map_err(|e| WriteError::io(format!("L2 table at file offset {at:#x}"), e))?;
        self.pos += bytes.len() as u64;
        self.refs.push_ones(1)?;
        self.l1.push((t.l1_index, at));
        self.summary.l2_tables += 1;
        Ok(())
    }

    fn finish_inner(&mut self) -> Result<(), WriteError> {
        if let Some(t) = self.current.take() {
            self.waiting.push(t);
        }
        self.pad_to_cluster()?;
        let cs = self.geo.cluster_size();
        let tail = layout::plan_tail(
            self.geo,
            self.refs.len(),
            self.waiting.len() as u64,
            self.l1_entries,
        )?;
        for t in std::mem::take(&mut self.waiting) {
            self.write_table(&t)?;
        }
        self.check_at(tail.l1_cluster(), "L1 table")?;
        let l1_offset = if self.l1_entries == 0 { 0 } else { self.pos };
        let mut bytes = Vec::with_capacity((tail.l1_clusters * cs) as usize);
        let mut listed = self.l1.iter().peekable();
        for i in 0..self.l1_entries {
            let e = match listed.next_if(|(idx, _)| *idx == i) {
                Some((_, off)) => off | COPIED,
                None => 0,
            };
            bytes.extend_from_slice(&e.to_be_bytes());
        }
        self.append_clusters(&bytes, tail.l1_clusters, "L1 table")?;
        self.refs.push_ones(tail.l1_clusters)?;
        // Count the refcount structures before serializing them: they count
        // themselves.
        self.check_at(tail.refblock_cluster(), "refcount blocks")?;
        let reftable_offset = tail.reftable_cluster() * cs;
        self.refs
            .push_ones(tail.refblocks + tail.reftable_clusters)?;
        if self.refs.len() != tail.total_clusters() {
            return Err(WriteError::Internal(format!(
                "{} clusters counted, {} laid out",
                self.refs.len(),
                tail.total_clusters()
            )));
        }
        let mut block = Vec::with_capacity(cs as usize);
        for b in 0..tail.refblocks {
            self.refs.block_bytes(b, &mut block);
            let at = self.pos;
            self.out
                .write_all(&block)
                .map_err(|e| WriteError::io(format!("refcount block at {at:#x}"), e))?;
            self.pos += block.len() as u64;
        }
        let mut table = Vec::with_capacity((tail.reftable_clusters * cs) as usize);
        for b in 0..tail.refblocks {
            table.extend_from_slice(&((tail.refblock_cluster() + b) * cs).to_be_bytes());
        }
        self.check_at(tail.reftable_cluster(), "refcount table")?;
        self.append_clusters(&table, tail.reftable_clusters, "refcount table")?;
        let fields = header::Fields {
            version: self.opts.version,
            cluster_bits: self.geo.cluster_bits,
            size: self.size,
            compression: self.opts.compression,
            l1_entries: self.l1_entries as u32,
            l1_offset,
            reftable_offset,
            reftable_clusters: tail.reftable_clusters as u32,
        };
        let head = header::encode(&fields);
        if head.len() as u64 > cs {
            return Err(WriteError::Internal(format!(
                "a {}-byte header does not fit a cluster",
                head.len()
            )));
        }
        let io = |e| WriteError::io("the header", e);
        self.out.seek(SeekFrom::Start(0)).map_err(io)?;
        self.out.write_all(&head).map_err(io)?;
        self.out.flush().map_err(io)?;
        self.summary.file_size = self.pos;
        Ok(())
    }

    /// Appends `bytes` padded with zeros to `clusters` whole clusters (tables
    /// are allocated whole; a short table's padding must be zero).
    fn append_clusters(
        &mut self,
        bytes: &[u8],
        clusters: u64,
        what: &str,
    ) -> Result<(), WriteError> {
        let at = self.pos;
        self.out
            .write_all(bytes)
            .map_err(|e| WriteError::io(format!("{what} at file offset {at:#x}"), e))?;
        self.pos += bytes.len() as u64;
        self.pad_to(at + clusters * self.geo.cluster_size())
    }

    /// The tail is written where [`layout::plan_tail`] said.
    fn check_at(&self, cluster: u64, what: &str) -> Result<(), WriteError> {
        if self.pos != cluster * self.geo.cluster_size() {
            return Err(WriteError::Internal(format!(
                "{what} at {:#x}, planned at cluster {cluster}",
                self.pos
            )));
        }
        Ok(())
    }

    fn pad_to_cluster(&mut self) -> Result<(), WriteError> {
        self.pad_to(self.pos.next_multiple_of(self.geo.cluster_size()))
    }

    fn pad_to(&mut self, end: u64) -> Result<(), WriteError> {
        while self.pos < end {
            let n = (end - self.pos).min(ZEROS.len() as u64) as usize;
            let at = self.pos;
            self.out
                .write_all(&ZEROS[..n])
                .map_err(|e| WriteError::io(format!("padding at file offset {at:#x}"), e))?;
            self.pos += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
