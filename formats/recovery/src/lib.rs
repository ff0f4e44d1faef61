//! The vmscrub recovery archive: everything a scrub removed, in a file only the
//! owner's private key opens. Payload = pax tar → zstd, in one of two envelopes
//! (`envelope.rs`): the age format (age-encryption.org/v1, written and read with the
//! `age` crate; X25519, ssh-ed25519 and ssh-rsa recipients; the standard `age` tool
//! opens it), or vmscrub's own v1 format (AES-256-GCM STREAM chunks, a fresh
//! 256-bit data key RSA-OAEP-SHA-256-wrapped for each recipient, the header
//! authenticated by every chunk). Both are specified in `docs/recovery-format.md`;
//! `scripts/vmscrub-recover.py` was written from that page alone for v1.
//!
//! Write side: [`ArchiveWriter`] (`add_file`, `add_sparse_file`, `add_dir`, …,
//! `finish`). Read side: [`open`] + [`TarReader`], [`decrypt_to`] (plain tar), and
//! [`extract::extract`] (safe, staged extraction).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod acl;
mod age_keys;
mod age_stream;
pub mod entry;
pub mod envelope;
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
pub use envelope::{ArchiveFormat, Envelope};
pub use error::{Error, Result};
pub use keys::{Identity, Recipient};
pub use manifest::{FileRecord, ImageInfo, Manifest};
pub use reader::{TarReader, decrypt_to, open};
pub use writer::{ArchiveInfo, ArchiveWriter, WriterOptions, encrypt_tar, normalize_sparse};
