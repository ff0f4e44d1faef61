//! VMDK reader and writers.
//!
//! Presents a VMware virtual disk as one [`vmscrub_blockdev::ReadAt`] device:
//! - **monolithicSparse**: one hosted sparse extent (`KDMV`) with its descriptor
//!   embedded; grain directory → grain tables → grains.
//! - **streamOptimized**: the same structure with every grain deflate-compressed
//!   behind a grain marker; the grain directory may only be known from the footer
//!   (`gdOffset = GD_AT_END`).
//! - **monolithicFlat**, **twoGbMaxExtentFlat**, **twoGbMaxExtentSparse**: a text
//!   descriptor naming one or more FLAT / SPARSE / ZERO extent files, concatenated.
//!
//! The variant is decided from content, never from the file name. Everything else
//! (delta disks with a parent, ESXi VMFS/seSparse/RDM extents, the old COWD
//! format, NOACCESS extents, unknown createTypes) is refused with
//! [`VmdkError::Unsupported`] naming what was found.
//!
//! Extent files are opened only through an [`ExtentOpener`]; [`DirExtentOpener`]
//! confines them to the descriptor's directory, because a descriptor is untrusted
//! text that could otherwise name any host file.
//!
//! Writers ([`StreamWriter`], [`SparseWriter`], [`FlatWriter`]) take data in
//! increasing offset order and never store all-zero grains; a new disk gets a
//! fresh CID and UUID ([`create`] says what its descriptor holds and why).
//! [`GrainCompressor`] is separate from [`StreamWriter`] so grains can be
//! compressed on several threads and appended in order.
//!
//! Each on-disk structure has one module that both parses and serializes it
//! ([`header`], [`marker`], [`descriptor`]) so a writer can reuse them.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod create;
pub mod descriptor;
mod disk;
mod error;
mod flat;
mod flat_writer;
pub mod grain;
pub mod header;
mod info;
pub mod marker;
mod opener;
mod sparse;
mod sparse_writer;
mod stream;
mod stream_writer;

pub use create::{AdapterType, DiskOptions};
pub use descriptor::Descriptor;
pub use disk::Vmdk;
pub use error::{Result, VmdkError};
pub use flat_writer::{FlatWriter, flat_descriptor, flat_extent_name};
pub use grain::{EncodedGrain, GrainCompressor};
pub use header::SparseExtentHeader;
pub use info::{Compression, ExtentInfo, ExtentKind, Geometry, SparseInfo, Subformat, VmdkInfo};
pub use marker::Marker;
pub use opener::{DirExtentOpener, ExtentOpener, NoExtentFiles};
pub use sparse_writer::SparseWriter;
pub use stream_writer::{StreamStats, StreamWriter};
