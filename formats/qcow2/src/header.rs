//! The image header, its extensions and the backing file name: everything in the
//! first cluster.
//!
//! Parsing ([`Header::read`]) and refusing ([`Header::check_supported`]) are
//! separate steps so that `vmscrub inspect` can describe an image it will not read
//! (an encrypted one, say) instead of only printing an error.

use std::ops::Range;

use vmscrub_blockdev::ReadAt;

use crate::error::{Error, Result};

pub const MAGIC: [u8; 4] = *b"QFI\xfb";

/// Size of the version 2 header; version 3 headers are at least [`V3_HEADER_MIN`].
pub const V2_HEADER_LEN: u64 = 72;
pub const V3_HEADER_MIN: u64 = 104;

/// Smallest and largest cluster size qemu opens (512 bytes .. 2 MiB).
pub const MIN_CLUSTER_BITS: u32 = 9;
pub const MAX_CLUSTER_BITS: u32 = 21;

/// qemu's implementation limits, used as our bounds on allocations sized by the header.
const MAX_L1_BYTES: u64 = 32 << 20;
const MAX_REFTABLE_BYTES: u64 = 8 << 20;
const MAX_SNAPSHOTS: u64 = 65536;
const MAX_BACKING_NAME: u64 = 1023;
/// qemu keeps the backing format in a 16-byte buffer.
const MAX_BACKING_FORMAT: u64 = 15;

/// Incompatible feature bits (header bytes 72..80).
pub mod incompatible {
    pub const DIRTY: u64 = 1 << 0;
    pub const CORRUPT: u64 = 1 << 1;
    pub const DATA_FILE: u64 = 1 << 2;
    pub const COMPRESSION_TYPE: u64 = 1 << 3;
    pub const EXTENDED_L2: u64 = 1 << 4;
    /// Every bit the format defines today.
    pub const KNOWN: u64 = DIRTY | CORRUPT | DATA_FILE | COMPRESSION_TYPE | EXTENDED_L2;
}

/// Compatible feature bits (header bytes 80..88).
pub mod compatible {
    pub const LAZY_REFCOUNTS: u64 = 1 << 0;
}

/// Header extension types.
mod ext {
    pub const END: u32 = 0;
    pub const BACKING_FORMAT: u32 = 0xe279_2aca;
    pub const FEATURE_NAMES: u32 = 0x6803_f857;
    pub const BITMAPS: u32 = 0x2385_2875;
    pub const CRYPTO_HEADER: u32 = 0x0537_be77;
    pub const DATA_FILE: u32 = 0x4441_5441;
}

/// How compressed clusters are compressed (header byte 104 in version 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionType {
    /// Raw deflate (no zlib header), the only choice before qemu 5.1.
    Zlib,
    Zstd,
    /// A value the format does not define; [`Header::check_supported`] refuses it.
    Unknown(u8),
}

impl CompressionType {
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::Zlib => "zlib",
            CompressionType::Zstd => "zstd",
            CompressionType::Unknown(_) => "unknown",
        }
    }
}

/// Which feature bitmap a [`FeatureName`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    Incompatible,
    Compatible,
    Autoclear,
    Other(u8),
}

/// One entry of the feature name table extension: lets us name a feature bit we do
/// not know when we refuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureName {
    pub kind: FeatureKind,
    pub bit: u8,
    pub name: String,
}

/// The backing file the header names. The name is bytes as stored (qemu writes a
/// host path, relative to the image's directory unless absolute, or a protocol
/// string); whether to open it is the caller's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingFile {
    pub name: Vec<u8>,
    /// From the backing-format header extension; `None` means qemu would probe.
    pub format: Option<String>,
}

impl BackingFile {
    /// The name for display (invalid UTF-8 replaced).
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// The name as a host path, exactly as stored (not resolved; see
    /// [`crate::resolve_backing_path`]).
    #[cfg(unix)]
    pub fn path(&self) -> &std::path::Path {
        use std::os::unix::ffi::OsStrExt;
        std::path::Path::new(std::ffi::OsStr::from_bytes(&self.name))
    }
}

/// The parsed header of a qcow2 image: the fixed fields, the known extensions and
/// the backing file name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    pub version: u32,
    pub backing_file: Option<BackingFile>,
    pub cluster_bits: u32,
    /// Virtual disk size in bytes.
    pub size: u64,
    pub crypt_method: u32,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u32,
    pub nb_snapshots: u32,
    pub snapshots_offset: u64,
    pub incompatible_features: u64,
    pub compatible_features: u64,
    pub autoclear_features: u64,
    pub refcount_order: u32,
    pub header_length: u32,
    pub compression_type: CompressionType,
    pub feature_names: Vec<FeatureName>,
    /// From the external data file name extension (only meaningful with the
    /// external data file incompatible bit, which we refuse).
    pub external_data_file: Option<String>,
    /// The full disk encryption header pointer extension: (offset, length).
    pub crypto_header: Option<(u64, u64)>,
    pub has_bitmaps_extension: bool,
    /// Size of the container file when the header was read.
    pub file_size: u64,
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_be_bytes(a)
}

fn read_region<F: ReadAt + ?Sized>(file: &F, range: Range<u64>, what: &str) -> Result<Vec<u8>> {
    // Every caller bounds `range` by the first cluster (≤ 2 MiB) and the file size.
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    file.read_exact_at(&mut buf, range.start)
        .map_err(|e| Error::io(format!("{what} at file offset {:#x}", range.start), e))?;
    Ok(buf)
}

/// Checks a table offset the way qemu does: cluster-aligned, and offset plus size
/// representable.
fn check_table(
    field: &'static str,
    offset: u64,
    entries: u64,
    entry_len: u64,
    cluster_size: u64,
) -> Result<()> {
    let fits = entries
        .checked_mul(entry_len)
        .and_then(|len| offset.checked_add(len))
        .is_some_and(|end| end <= i64::MAX as u64);
    if !fits {
        return Err(Error::field(
            field,
            offset,
            format!("{entries} entries at this offset overflow"),
        ));
    }
    if !offset.is_multiple_of(cluster_size) {
        return Err(Error::field(
            field,
            offset,
            format!("not aligned to the cluster size ({cluster_size})"),
        ));
    }
    Ok(())
}

impl Header {
    /// Reads and validates the header of the qcow2 image in `file`: magic, version,
    /// field ranges, table placement, header extensions (bounded by the first
    /// cluster) and the backing file name. Features this reader does not implement
    /// are *not* refused here; see [`Header::check_supported`].
    pub fn read<F: ReadAt + ?Sized>(file: &F) -> Result<Header> {
        let file_size = file.size();
        if file_size < V2_HEADER_LEN {
            return Err(Error::TooShort {
                size: file_size,
                need: V2_HEADER_LEN,
            });
        }
        let fixed = read_region(file, 0..V2_HEADER_LEN, "qcow2 header")?;
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&fixed[0..4]);
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let version = be32(&fixed, 4);
        if version != 2 && version != 3 {
            return Err(Error::UnsupportedVersion(version));
        }
        let cluster_bits = be32(&fixed, 20);
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(Error::field(
                "cluster_bits",
                cluster_bits.into(),
                format!(
                    "must be between {MIN_CLUSTER_BITS} and {MAX_CLUSTER_BITS} (512 B .. 2 MiB clusters)"
                ),
            ));
        }
        let cluster_size = 1u64 << cluster_bits;

        // The whole first cluster (or as much of it as the file has): the header, its
        // extensions and the backing file name all live here.
        let first_cluster =
            read_region(file, 0..cluster_size.min(file_size), "qcow2 header cluster")?;

        let header_length = if version == 3 {
            if file_size < V3_HEADER_MIN {
                return Err(Error::TooShort {
                    size: file_size,
                    need: V3_HEADER_MIN,
                });
            }
            let len = be32(&first_cluster, 100);
            if u64::from(len) < V3_HEADER_MIN {
                return Err(Error::field(
                    "header_length",
                    len.into(),
                    "a version 3 header is at least 104 bytes",
                ));
            }
            if u64::from(len) > cluster_size {
                return Err(Error::field(
                    "header_length",
                    len.into(),
                    "the header must fit in the first cluster",
                ));
            }
            if u64::from(len) > file_size {
                return Err(Error::TooShort {
                    size: file_size,
                    need: len.into(),
                });
            }
            len
        } else {
            V2_HEADER_LEN as u32
        };
        let (incompatible_features, compatible_features, autoclear_features, refcount_order) =
            if version == 3 {
                (
                    be64(&first_cluster, 72),
                    be64(&first_cluster, 80),
                    be64(&first_cluster, 88),
                    be32(&first_cluster, 96),
                )
            } else {
                (0, 0, 0, 4)
            };
        if refcount_order > 6 {
            return Err(Error::field(
                "refcount_order",
                refcount_order.into(),
                "refcounts are at most 64 bits wide (order 6)",
            ));
        }
        let compression_type = if u64::from(header_length) > V3_HEADER_MIN {
            match first_cluster.get(104).copied().unwrap_or(0) {
                0 => CompressionType::Zlib,
                1 => CompressionType::Zstd,
                other => CompressionType::Unknown(other),
            }
        } else {
            CompressionType::Zlib
        };

        let mut h = Header {
            version,
            backing_file: None,
            cluster_bits,
            size: be64(&first_cluster, 24),
            crypt_method: be32(&first_cluster, 32),
            l1_size: be32(&first_cluster, 36),
            l1_table_offset: be64(&first_cluster, 40),
            refcount_table_offset: be64(&first_cluster, 48),
            refcount_table_clusters: be32(&first_cluster, 56),
            nb_snapshots: be32(&first_cluster, 60),
            snapshots_offset: be64(&first_cluster, 64),
            incompatible_features,
            compatible_features,
            autoclear_features,
            refcount_order,
            header_length,
            compression_type,
            feature_names: Vec::new(),
            external_data_file: None,
            crypto_header: None,
            has_bitmaps_extension: false,
            file_size,
        };
        h.check_geometry()?;

        let backing_offset = be64(&first_cluster, 8);
        let backing_len = u64::from(be32(&first_cluster, 16));
        let ext_start = u64::from(header_length);
        let ext_end = if backing_offset != 0 {
            if backing_offset > cluster_size {
                return Err(Error::field(
                    "backing_file_offset",
                    backing_offset,
                    "the backing file name must lie in the first cluster",
                ));
            }
            if backing_offset < ext_start {
                return Err(Error::field(
                    "backing_file_offset",
                    backing_offset,
                    format!("overlaps the {ext_start}-byte header"),
                ));
            }
            backing_offset
        } else {
            cluster_size
        };
        let backing_format =
            h.parse_extensions(&first_cluster, ext_start, ext_end.min(file_size))?;

        if backing_offset != 0 && backing_len > 0 {
            if backing_len > MAX_BACKING_NAME.min(cluster_size - backing_offset) {
                return Err(Error::field(
                    "backing_file_size",
                    backing_len,
                    format!(
                        "the name must be at most {MAX_BACKING_NAME} bytes and end inside the first cluster"
                    ),
                ));
            }
            let end = backing_offset + backing_len;
            let name = first_cluster
                .get(backing_offset as usize..end as usize)
                .ok_or(Error::PastEof {
                    what: "backing file name".into(),
                    offset: backing_offset,
                    len: backing_len,
                    file_size,
                })?;
            h.backing_file = Some(BackingFile {
                name: name.to_vec(),
                format: backing_format,
            });
        }
        Ok(h)
    }
}

impl Header {
    /// Field ranges and table placement, the checks qemu makes before it trusts a
    /// header, plus: the active L1 table must lie inside the file.
    pub(crate) fn check_geometry(&self) -> Result<()> {
        let cs = self.cluster_size();
        if self.size > i64::MAX as u64 {
            return Err(Error::field(
                "size",
                self.size,
                "virtual size does not fit in 63 bits",
            ));
        }
        if u64::from(self.l1_size) > MAX_L1_BYTES / 8 {
            return Err(Error::field(
                "l1_size",
                self.l1_size.into(),
                format!(
                    "active L1 table larger than {} entries (32 MiB)",
                    MAX_L1_BYTES / 8
                ),
            ));
        }
        let needed = self.l1_entries_needed();
        if needed > u64::from(self.l1_size) {
            return Err(Error::field(
                "l1_size",
                self.l1_size.into(),
                format!("the virtual size {} needs {needed} L1 entries", self.size),
            ));
        }
        check_table(
            "l1_table_offset",
            self.l1_table_offset,
            self.l1_size.into(),
            8,
            cs,
        )?;
        if self.l1_size > 0 {
            let len = u64::from(self.l1_size) * 8;
            if self.l1_table_offset == 0 {
                return Err(Error::field(
                    "l1_table_offset",
                    0,
                    "the L1 table cannot overlap the header",
                ));
            }
            if self.l1_table_offset.saturating_add(len) > self.file_size {
                return Err(Error::PastEof {
                    what: "active L1 table".into(),
                    offset: self.l1_table_offset,
                    len,
                    file_size: self.file_size,
                });
            }
        }
        if u64::from(self.refcount_table_clusters) > MAX_REFTABLE_BYTES >> self.cluster_bits {
            return Err(Error::field(
                "refcount_table_clusters",
                self.refcount_table_clusters.into(),
                "refcount table larger than 8 MiB",
            ));
        }
        check_table(
            "refcount_table_offset",
            self.refcount_table_offset,
            u64::from(self.refcount_table_clusters) * cs / 8,
            8,
            cs,
        )?;
        if u64::from(self.nb_snapshots) > MAX_SNAPSHOTS {
            return Err(Error::field(
                "nb_snapshots",
                self.nb_snapshots.into(),
                format!("more than {MAX_SNAPSHOTS} snapshots"),
            ));
        }
        // 40 bytes: the fixed part of a snapshot table entry.
        check_table(
            "snapshots_offset",
            self.snapshots_offset,
            self.nb_snapshots.into(),
            40,
            cs,
        )?;
        Ok(())
    }

    /// Walks the header extensions in `[start, end)` of the first cluster. Every
    /// length is checked against `end` before it is used. Returns the backing format.
    fn parse_extensions(&mut self, cluster: &[u8], start: u64, end: u64) -> Result<Option<String>> {
        let mut backing_format = None;
        let mut off = start;
        // Each round advances by at least 8 bytes inside a ≤ 2 MiB area: bounded.
        while off < end {
            if end - off < 8 {
                return Err(Error::HeaderExtension {
                    kind: 0,
                    offset: off,
                    why: format!(
                        "an extension header needs 8 bytes, only {} are left before {end:#x}",
                        end - off
                    ),
                });
            }
            let kind = be32(cluster, off as usize);
            let len = u64::from(be32(cluster, off as usize + 4));
            if kind == ext::END {
                break;
            }
            let data_start = off + 8;
            if len > end - data_start {
                return Err(Error::HeaderExtension {
                    kind,
                    offset: off,
                    why: format!(
                        "length {len} runs past the end of the extension area at {end:#x}"
                    ),
                });
            }
            let data = cluster
                .get(data_start as usize..(data_start + len) as usize)
                .unwrap_or_default();
            let bad = |why: String| Error::HeaderExtension {
                kind,
                offset: off,
                why,
            };
            match kind {
                ext::BACKING_FORMAT => {
                    if backing_format.is_some() {
                        return Err(bad("backing file format extension appears twice".into()));
                    }
                    if len > MAX_BACKING_FORMAT {
                        return Err(bad(format!(
                            "backing file format name is {len} bytes (at most {MAX_BACKING_FORMAT})"
                        )));
                    }
                    let name = std::str::from_utf8(data)
                        .map_err(|_| bad("backing file format name is not UTF-8".into()))?;
                    backing_format = Some(name.to_owned());
                }
                ext::FEATURE_NAMES => {
                    if !self.feature_names.is_empty() {
                        return Err(bad("feature name table appears twice".into()));
                    }
                    self.feature_names = data
                        .chunks_exact(48)
                        .map(|e| {
                            let raw = &e[2..48];
                            let n = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                            FeatureName {
                                kind: match e[0] {
                                    0 => FeatureKind::Incompatible,
                                    1 => FeatureKind::Compatible,
                                    2 => FeatureKind::Autoclear,
                                    k => FeatureKind::Other(k),
                                },
                                bit: e[1],
                                name: String::from_utf8_lossy(&raw[..n]).into_owned(),
                            }
                        })
                        .collect();
                }
                ext::DATA_FILE => {
                    if self.external_data_file.is_some() {
                        return Err(bad("external data file name appears twice".into()));
                    }
                    self.external_data_file = Some(String::from_utf8_lossy(data).into_owned());
                }
                ext::CRYPTO_HEADER => {
                    if len != 16 {
                        return Err(bad(format!(
                            "encryption header pointer is {len} bytes, expected 16"
                        )));
                    }
                    self.crypto_header = Some((be64(data, 0), be64(data, 8)));
                }
                ext::BITMAPS => self.has_bitmaps_extension = true,
                // Unknown extensions can be safely ignored (spec).
                _ => {}
            }
            off = data_start + len.next_multiple_of(8);
        }
        Ok(backing_format)
    }

    /// Refuses images this reader cannot present faithfully: unknown incompatible
    /// features, encryption, external data files, extended L2 entries and unknown or
    /// inconsistent compression types. The dirty and corrupt bits are accepted (see
    /// the crate documentation).
    pub fn check_supported(&self) -> Result<()> {
        let unknown = self.incompatible_features & !incompatible::KNOWN;
        if unknown != 0 {
            let names = self
                .feature_names
                .iter()
                .filter(|f| {
                    f.kind == FeatureKind::Incompatible
                        && f.bit < 64
                        && unknown & (1u64 << f.bit) != 0
                })
                .map(|f| format!("bit {}: {}", f.bit, f.name))
                .collect();
            return Err(Error::UnknownIncompatibleFeatures {
                bits: unknown,
                names,
            });
        }
        match self.crypt_method {
            0 => {}
            1 => {
                return Err(Error::Encrypted {
                    method: 1,
                    name: "AES-CBC",
                });
            }
            2 => {
                return Err(Error::Encrypted {
                    method: 2,
                    name: "LUKS",
                });
            }
            m => {
                return Err(Error::Encrypted {
                    method: m,
                    name: "unknown method",
                });
            }
        }
        if self.incompatible_features & incompatible::DATA_FILE != 0 {
            return Err(Error::ExternalDataFile {
                name: self.external_data_file.clone(),
            });
        }
        if self.incompatible_features & incompatible::EXTENDED_L2 != 0 {
            return Err(Error::ExtendedL2);
        }
        let flag = self.incompatible_features & incompatible::COMPRESSION_TYPE != 0;
        match self.compression_type {
            CompressionType::Unknown(t) => return Err(Error::UnknownCompressionType(t)),
            CompressionType::Zlib if flag => {
                return Err(Error::field(
                    "incompatible_features",
                    self.incompatible_features,
                    "the compression type bit is set but the compression type is zlib",
                ));
            }
            CompressionType::Zstd if !flag => {
                return Err(Error::field(
                    "compression_type",
                    1,
                    "zstd compression without the compression type incompatible bit",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Bytes of virtual disk one L2 table maps.
    pub fn l2_span(&self) -> u64 {
        // cluster_bits ≤ 21, so this is at most 2^39.
        1u64 << (2 * self.cluster_bits - 3)
    }

    /// L1 entries the virtual size needs (the active L1 may have more).
    pub fn l1_entries_needed(&self) -> u64 {
        self.size.div_ceil(self.l2_span())
    }

    /// Incompatible bit 0: refcounts may be stale (lazy refcounts, unclean shutdown).
    /// Harmless for reading: the mapping tables are always written first.
    pub fn is_dirty(&self) -> bool {
        self.incompatible_features & incompatible::DIRTY != 0
    }

    /// Incompatible bit 1: qemu found an inconsistency and stopped writing.
    pub fn is_corrupt(&self) -> bool {
        self.incompatible_features & incompatible::CORRUPT != 0
    }

    pub fn lazy_refcounts(&self) -> bool {
        self.compatible_features & compatible::LAZY_REFCOUNTS != 0
    }

    /// The summary `vmscrub inspect` shows.
    pub fn info(&self) -> Info {
        Info {
            version: self.version,
            cluster_size: self.cluster_size(),
            virtual_size: self.size,
            compression: self.compression_type,
            backing_file: self.backing_file.as_ref().map(BackingFile::name_lossy),
            backing_format: self.backing_file.as_ref().and_then(|b| b.format.clone()),
            dirty: self.is_dirty(),
            corrupt: self.is_corrupt(),
            lazy_refcounts: self.lazy_refcounts(),
            encrypted: self.crypt_method != 0,
            snapshots: self.nb_snapshots,
            refcount_order: self.refcount_order,
            file_size: self.file_size,
        }
    }
}

/// What `vmscrub inspect` reports about a qcow2 container.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Info {
    /// 2 (`compat=0.10`) or 3 (`compat=1.1`).
    pub version: u32,
    pub cluster_size: u64,
    pub virtual_size: u64,
    pub compression: CompressionType,
    /// As stored in the header (lossy UTF-8), not resolved.
    pub backing_file: Option<String>,
    pub backing_format: Option<String>,
    pub dirty: bool,
    pub corrupt: bool,
    pub lazy_refcounts: bool,
    pub encrypted: bool,
    /// Internal snapshots present in the image; the reader ignores them.
    pub snapshots: u32,
    /// refcount width is `1 << refcount_order` bits.
    pub refcount_order: u32,
    /// Size of the container file in bytes.
    pub file_size: u64,
}
