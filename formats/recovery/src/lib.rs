//! The vmscrub recovery archive: everything a scrub removed, in a file only the
//! owner's RSA private key opens. Payload = pax tar → zstd → AES-256-GCM STREAM
//! chunks; a fresh 256-bit data key per archive is RSA-OAEP-SHA-256-wrapped for
//! each recipient; the header is authenticated by every chunk. The byte layout is
//! specified in `docs/recovery-format.md`, from which `scripts/vmscrub-recover.py`
//! was written independently.
//!
//! Write side: [`ArchiveWriter`] (`add_file`, `add_sparse_file`, `add_dir`, …,
//! `finish`). Read side: [`open`] + [`TarReader`], [`decrypt_to`] (plain tar), and
//! [`extract::extract`] (safe, staged extraction).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod acl;
pub mod entry;
pub mod error;
pub mod extract;
pub mod header;
pub mod keys;
pub mod manifest;
pub mod pax;
pub mod reader;
pub mod stream;
pub mod ustar;
pub mod writer;

pub use entry::{DeviceKind, Entry, EntryKind, Metadata, Segment, Timestamp, Xattr};
pub use error::{Error, Result};
pub use keys::{Identity, Recipient};
pub use manifest::{FileRecord, ImageInfo, Manifest};
pub use reader::{TarReader, decrypt_to, open};
pub use writer::{ArchiveInfo, ArchiveWriter, WriterOptions, encrypt_tar, normalize_sparse};
