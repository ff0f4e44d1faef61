//! The first cluster of the output: header fields and extensions.

use crate::header::{CompressionType, MAGIC, incompatible};

use super::Version;
use super::layout::REFCOUNT_ORDER;

/// Version 3 header length: the 104 mandatory bytes plus the compression type
/// byte, padded to a multiple of 8 (what qemu writes).
pub const V3_HEADER_LEN: usize = 112;
const V2_HEADER_LEN: usize = 72;

const EXT_FEATURE_NAMES: u32 = 0x6803_f857;

/// Names for the feature bits a reader of ours may meet, so an older reader that
/// refuses one can say which (qcow2.txt, "Feature name table"). 48-byte entries:
/// type (0 incompatible, 1 compatible, 2 autoclear), bit, name.
const FEATURE_NAMES: &[(u8, u8, &str)] = &[
    (0, 0, "dirty bit"),
    (0, 1, "corrupt bit"),
    (0, 2, "external data file"),
    (0, 3, "compression type"),
    (0, 4, "extended L2 entries"),
    (1, 0, "lazy refcounts"),
    (2, 0, "bitmaps"),
    (2, 1, "raw external data"),
];

/// Where the tables ended up: everything the header points at.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub version: Version,
    pub cluster_bits: u32,
    pub size: u64,
    pub compression: CompressionType,
    pub l1_entries: u32,
    pub l1_offset: u64,
    pub reftable_offset: u64,
    pub reftable_clusters: u32,
}

/// The header, its extensions and the end-of-extensions marker. No backing
/// file, no snapshots, no encryption; the dirty bit is clear since every
/// refcount is written. The feature name table is included when it fits the
/// first cluster (always, for version 3: 512 bytes exactly at the smallest size).
pub fn encode(f: &Fields) -> Vec<u8> {
    let mut h = Vec::with_capacity(1024);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&(f.version.number()).to_be_bytes());
    h.extend_from_slice(&0u64.to_be_bytes()); // backing_file_offset
    h.extend_from_slice(&0u32.to_be_bytes()); // backing_file_size
    h.extend_from_slice(&f.cluster_bits.to_be_bytes());
    h.extend_from_slice(&f.size.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes()); // crypt_method
    h.extend_from_slice(&f.l1_entries.to_be_bytes());
    h.extend_from_slice(&f.l1_offset.to_be_bytes());
    h.extend_from_slice(&f.reftable_offset.to_be_bytes());
    h.extend_from_slice(&f.reftable_clusters.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes()); // nb_snapshots
    h.extend_from_slice(&0u64.to_be_bytes()); // snapshots_offset
    debug_assert_eq!(h.len(), V2_HEADER_LEN);
    if f.version == Version::V3 {
        let (incompat, ctype) = match f.compression {
            CompressionType::Zstd => (incompatible::COMPRESSION_TYPE, 1u8),
            _ => (0, 0),
        };
        h.extend_from_slice(&incompat.to_be_bytes());
        h.extend_from_slice(&0u64.to_be_bytes()); // compatible_features
        h.extend_from_slice(&0u64.to_be_bytes()); // autoclear_features
        h.extend_from_slice(&REFCOUNT_ORDER.to_be_bytes());
        h.extend_from_slice(&(V3_HEADER_LEN as u32).to_be_bytes());
        h.push(ctype);
        h.resize(V3_HEADER_LEN, 0);
        let table_len = FEATURE_NAMES.len() * 48;
        if h.len() + 8 + table_len + 8 <= 1 << f.cluster_bits {
            h.extend_from_slice(&EXT_FEATURE_NAMES.to_be_bytes());
            h.extend_from_slice(&(table_len as u32).to_be_bytes());
            for (kind, bit, name) in FEATURE_NAMES {
                let mut e = [0u8; 48];
                e[0] = *kind;
                e[1] = *bit;
                e[2..2 + name.len()].copy_from_slice(name.as_bytes());
                h.extend_from_slice(&e);
            }
        }
    }
    h.extend_from_slice(&[0u8; 8]); // end of the header extension area
    h
}
