//! What `vmscrub inspect` shows about a VMDK: plain data, no behaviour.

use std::fmt;

use crate::descriptor::Access;

/// The VMDK variant, decided from content (magic, header flags, descriptor), never
/// from the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subformat {
    MonolithicSparse,
    StreamOptimized,
    MonolithicFlat,
    TwoGbMaxExtentSparse,
    TwoGbMaxExtentFlat,
}

impl Subformat {
    /// The descriptor's `createType` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Subformat::MonolithicSparse => "monolithicSparse",
            Subformat::StreamOptimized => "streamOptimized",
            Subformat::MonolithicFlat => "monolithicFlat",
            Subformat::TwoGbMaxExtentSparse => "twoGbMaxExtentSparse",
            Subformat::TwoGbMaxExtentFlat => "twoGbMaxExtentFlat",
        }
    }
}

impl fmt::Display for Subformat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Deflate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentKind {
    Flat,
    Sparse,
    Zero,
}

/// `ddb.geometry.*`, as the descriptor states it (not checked against the size:
/// guests and tools disagree about CHS, and nothing here depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub cylinders: u64,
    pub heads: u64,
    pub sectors: u64,
}

/// Header facts of one sparse extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseInfo {
    pub version: u32,
    pub flags: u32,
    pub grain_size: u64,
    pub gtes_per_gt: u32,
    /// Grain tables the directory points at, and the virtual bytes each covers.
    pub grain_tables: usize,
    pub grain_table_span: u64,
    pub compressed: bool,
    pub markers: bool,
    pub zero_grain_gte: bool,
    pub redundant_gd: bool,
    /// The grain directory came from the stream footer (gdOffset = GD_AT_END).
    pub footer: bool,
    pub unclean_shutdown: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentInfo {
    pub kind: ExtentKind,
    pub access: Access,
    /// As named in the descriptor (`None` for ZERO extents).
    pub file_name: Option<String>,
    /// Where the extent starts in the virtual disk, and its length, in bytes.
    pub virtual_offset: u64,
    pub size: u64,
    /// For flat extents: where the data starts in the file, in bytes.
    pub flat_offset: Option<u64>,
    pub file_size: Option<u64>,
    pub sparse: Option<SparseInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmdkInfo {
    pub subformat: Subformat,
    /// The descriptor's createType as written.
    pub create_type: String,
    pub virtual_size: u64,
    /// Grain size in bytes of the (first) sparse extent; `None` for flat disks.
    pub grain_size: Option<u64>,
    pub compression: Compression,
    pub extents: Vec<ExtentInfo>,
    /// Whether the descriptor is embedded in the sparse extent (monolithic disks).
    pub descriptor_embedded: bool,
    pub descriptor_version: u32,
    pub cid: Option<u32>,
    pub parent_cid: Option<u32>,
    pub adapter_type: Option<String>,
    pub hw_version: Option<String>,
    pub geometry: Option<Geometry>,
    /// Every `ddb.*` entry, in file order.
    pub ddb: Vec<(String, String)>,
    /// Size of the file that was opened (descriptor or monolithic image).
    pub file_size: u64,
}
