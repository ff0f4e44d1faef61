//! A qcow2 reader that presents the virtual disk as a
//! [`vmscrub_blockdev::ReadAt`] device, and a sequential writer ([`Writer`]) that
//! appends a disk given front to back, optionally with compressed clusters.
//!
//! Format: qemu's `docs/interop/qcow2.txt`. Supported: versions 2 and 3
//! (`compat=0.10` / `1.1`), cluster sizes 512 B .. 2 MiB, standard, zero and
//! unallocated clusters, compressed clusters (raw deflate or zstd), backing files.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use vmscrub_blockdev::{FileDisk, ReadAt};
//! use vmscrub_qcow2::{OpenOptions, Qcow2, read_header};
//!
//! let file = FileDisk::open("disk.qcow2".as_ref())?;
//! let header = read_header(&file)?;
//! // The caller decides whether to follow `header.backing_file` (see below).
//! let disk = Qcow2::with_header(file, header, None, &OpenOptions::default())?;
//! let mut sector = [0u8; 512];
//! disk.read_exact_at(&mut sector, 0)?;
//! # Ok(()) }
//! ```
//!
//! # Decisions
//!
//! - **The crate never opens host paths.** The container file and the backing
//!   device are handed in already opened. A backing file name comes from the image,
//!   which may be hostile (absolute paths, `..`, device nodes, protocol strings), so
//!   whether to follow it is the caller's policy. [`resolve_backing_path`] computes
//!   where qemu would look; [`open_chain`] walks a chain through an opener the
//!   caller supplies. If the header names a backing file and none is given, `open`
//!   refuses unless [`MissingBacking::ReadZeros`] is chosen.
//! - **Backing devices shorter than the image** read as zeros past their end, as in
//!   qemu.
//! - **Internal snapshots are ignored**: the active L1 table is the disk. Their count
//!   is in [`Info::snapshots`].
//! - **Dirty bit** (incompatible bit 0): accepted and reported. It only says the
//!   refcounts may be stale; qemu writes the L1/L2 mapping before it sets refcounts
//!   lazily, and a reader never looks at refcounts.
//! - **Corrupt bit** (incompatible bit 1): accepted and reported
//!   ([`Info::corrupt`]), as qemu does for read-only opens. The structures we use
//!   are all checked as we go (offsets aligned and inside the file, compressed data
//!   inflating to exactly one cluster), so a genuinely damaged table gives an error,
//!   not garbage; a caller that wants to refuse such images can check the flag.
//! - **Refused**, with a typed [`Error`]: encryption, external data files, extended
//!   L2 entries (subclusters), unknown incompatible feature bits, unknown or
//!   inconsistent compression types, versions other than 2 and 3, cluster sizes
//!   outside 512 B .. 2 MiB, and every size qemu itself refuses (L1 over 32 MiB, more
//!   than 65536 snapshots, a virtual size the L1 table cannot map).
//! - **Hostile input**: every table and data range is checked against the file size
//!   before it is read, allocations are bounded by the first cluster, the cluster
//!   size or qemu's 32 MiB L1 limit, and [`ReadAt::allocated_ranges`] refuses an L2
//!   table referenced twice from the L1, so its work is bounded by the file size.
//!   Data clusters must lie entirely inside the file (qemu would read zeros past
//!   the end; we say the image is truncated).
//!
//! # Concurrency
//!
//! Reads take `&self`. The L2 cache and the cache of inflated clusters are guarded
//! by short locks that are never held across I/O or decompression, and
//! decompressor contexts come from a pool, so threads reading disjoint ranges (of a
//! compressed image especially) run in parallel.
//!
//! [`ReadAt::allocated_ranges`]: vmscrub_blockdev::ReadAt::allocated_ranges

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod cache;
mod chain;
mod compress;
mod error;
mod header;
mod image;
mod l2;
mod writer;

pub use chain::{
    ChainLink, DEFAULT_MAX_DEPTH, DynQcow2, LinkFormat, open_chain, resolve_backing_path,
};
pub use error::{Error, Result};
pub use header::{
    BackingFile, CompressionType, FeatureKind, FeatureName, Header, Info, MAGIC, compatible,
    incompatible,
};
pub use image::{MissingBacking, OpenOptions, Qcow2};
pub use writer::{
    ClusterCompressor, DEFAULT_CLUSTER_BITS, DEFAULT_L2_MEMORY, DEFAULT_ZLIB_LEVEL,
    DEFAULT_ZSTD_LEVEL, Summary, Version, WriteError, Writer, WriterOptions, cluster_bits,
};

use vmscrub_blockdev::ReadAt;

/// Reads and validates the header of the qcow2 image in `file` without opening
/// the image: to learn the backing file before deciding whether to open it, or to
/// describe an image that [`Header::check_supported`] would refuse.
pub fn read_header<F: ReadAt + ?Sized>(file: &F) -> Result<Header> {
    Header::read(file)
}

/// True if `file` starts with the qcow2 magic (format sniffing; never decide by
/// file name).
pub fn is_qcow2<F: ReadAt + ?Sized>(file: &F) -> bool {
    let mut magic = [0u8; 4];
    file.size() >= 4 && file.read_exact_at(&mut magic, 0).is_ok() && magic == MAGIC
}
