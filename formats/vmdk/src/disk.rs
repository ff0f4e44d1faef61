//! The virtual disk: detects the variant, assembles extents in order and serves
//! reads and allocation maps across them.

use std::io;
use std::path::Path;
use std::sync::Arc;

use vmscrub_blockdev::{FileDisk, RangeSet, ReadAt, check_range};

use crate::descriptor::{Access, Descriptor, ExtentLine, ExtentType, MAX_DESCRIPTOR_BYTES};
use crate::error::{Result, VmdkError};
use crate::flat::FlatExtent;
use crate::header::{COWD_MAGIC, FLAG_REDUNDANT_GT, SECTOR, SparseExtentHeader};
use crate::info::{Compression, ExtentInfo, ExtentKind, Geometry, SparseInfo, Subformat, VmdkInfo};
use crate::opener::{DirExtentOpener, ExtentOpener};
use crate::sparse::SparseExtent;

/// First eight bytes of an ESXi seSparse extent (its const-header magic, LE u64).
const SESPARSE_MAGIC: u64 = 0xcafe_babe;

/// A VMDK opened read-only: every supported variant presents one [`ReadAt`]
/// device of the virtual disk's size.
pub struct Vmdk {
    extents: Vec<Placed>,
    size: u64,
    info: VmdkInfo,
}

struct Placed {
    /// Byte range of the virtual disk this extent holds.
    start: u64,
    len: u64,
    extent: Extent,
}

enum Extent {
    Zero,
    Flat(FlatExtent),
    Sparse(Box<SparseExtent>),
}

impl std::fmt::Debug for Vmdk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vmdk")
            .field("size", &self.size)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

impl Vmdk {
    /// Opens the VMDK at `path` (a monolithic image or a descriptor), with extent
    /// files confined to its directory ([`DirExtentOpener::for_descriptor`]).
    pub fn open_path(path: &Path) -> Result<Self> {
        let file = FileDisk::open(path)
            .map_err(|e| VmdkError::io(format!("cannot open {}", path.display()), e))?;
        Self::open(
            Arc::new(file),
            &display_name(path),
            &DirExtentOpener::for_descriptor(path),
        )
    }

    /// Opens a VMDK whose main file (monolithic image or descriptor) is `file`;
    /// `name` is used in messages; extent files named by a descriptor come from
    /// `opener`, which is only used during this call.
    pub fn open(file: Arc<dyn ReadAt>, name: &str, opener: &dyn ExtentOpener) -> Result<Self> {
        let size = file.size();
        if size < 8 {
            return Err(VmdkError::NotVmdk(format!(
                "{name} is only {size} bytes long"
            )));
        }
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0)
            .map_err(|e| VmdkError::io(format!("reading {name}"), e))?;
        if magic[..4] == crate::header::MAGIC {
            let header = read_header(&*file, name)?;
            return Self::open_monolithic(file, name, header);
        }
        refuse_other_binary(&magic, name)?;
        if size > MAX_DESCRIPTOR_BYTES {
            return Err(VmdkError::NotVmdk(format!(
                "{name} has no sparse-extent magic and, at {size} bytes, is too large to be a descriptor"
            )));
        }
        let mut text = vec![0u8; size as usize];
        file.read_exact_at(&mut text, 0)
            .map_err(|e| VmdkError::io(format!("reading {name}"), e))?;
        if !looks_like_descriptor(&text) {
            return Err(VmdkError::NotVmdk(format!(
                "{name} is neither a sparse extent (no KDMV magic) nor a descriptor (no version= line first)"
            )));
        }
        let desc = Descriptor::parse(&text)?;
        Self::open_descriptor(desc, size, opener)
    }

    /// A `KDMV` file opened directly: its embedded descriptor must describe it alone.
    fn open_monolithic(
        file: Arc<dyn ReadAt>,
        name: &str,
        header: SparseExtentHeader,
    ) -> Result<Self> {
        let file_size = file.size();
        if header.descriptor_offset == 0 {
            return Err(VmdkError::Unsupported(format!(
                "{name} is a sparse extent without an embedded descriptor: one extent of a split disk; open the disk's descriptor file instead"
            )));
        }
        // Bounded by validate() below; check here first so the read is bounded too.
        header.validate(name, file_size)?;
        let mut raw = vec![0u8; (header.descriptor_size * SECTOR) as usize];
        file.read_exact_at(&mut raw, header.descriptor_offset * SECTOR)
            .map_err(|e| VmdkError::io(format!("reading the embedded descriptor of {name}"), e))?;
        if raw.iter().all(|&b| b == 0 || b.is_ascii_whitespace()) {
            return Err(VmdkError::Unsupported(format!(
                "{name} is a sparse extent with an empty descriptor area: one extent of a split disk; open the disk's descriptor file instead"
            )));
        }
        let desc = Descriptor::parse(&raw)?;
        refuse_parent(&desc)?;
        let ct = desc.create_type().unwrap_or("");
        if !matches!(ct, "monolithicSparse" | "streamOptimized") {
            return Err(VmdkError::Unsupported(format!(
                "{name} is a sparse extent whose embedded descriptor says createType={ct:?}; only monolithicSparse and streamOptimized disks embed their descriptor"
            )));
        }
        let line = match desc.extents.as_slice() {
            [one] => one.clone(),
            other => {
                return Err(VmdkError::Descriptor {
                    line: 0,
                    detail: format!(
                        "the embedded descriptor of {name} lists {} extents; a monolithic disk has exactly one",
                        other.len()
                    ),
                });
            }
        };
        if line.kind != ExtentType::Sparse {
            return Err(VmdkError::Descriptor {
                line: line.line,
                detail: format!(
                    "the embedded descriptor's extent is {}, not SPARSE",
                    line.kind.as_str()
                ),
            });
        }
        refuse_access(&line)?;
        let sparse = SparseExtent::open(file, name, header)?;
        if sparse.header.capacity != line.sectors {
            return Err(VmdkError::corrupt(
                format!("sparse extent header of {name}"),
                Some(12),
                format!(
                    "capacity is {} sectors but the embedded descriptor says {}",
                    sparse.header.capacity, line.sectors
                ),
            ));
        }
        let subformat = if sparse.layout.compressed {
            Subformat::StreamOptimized
        } else {
            Subformat::MonolithicSparse
        };
        let placed = vec![Placed {
            start: 0,
            len: sparse.capacity(),
            extent: Extent::Sparse(Box::new(sparse)),
        }];
        let mut line = line;
        line.file_name = Some(name.to_string());
        Ok(Self::assemble(
            placed,
            &desc,
            &[line],
            subformat,
            true,
            file_size,
        ))
    }

    fn open_descriptor(
        desc: Descriptor,
        file_size: u64,
        opener: &dyn ExtentOpener,
    ) -> Result<Self> {
        refuse_parent(&desc)?;
        let ct = desc
            .create_type()
            .ok_or_else(|| VmdkError::Descriptor {
                line: 0,
                detail: "no createType".into(),
            })?
            .to_string();
        let mut subformat = match ct.as_str() {
            "monolithicFlat" => Subformat::MonolithicFlat,
            "twoGbMaxExtentFlat" => Subformat::TwoGbMaxExtentFlat,
            "twoGbMaxExtentSparse" => Subformat::TwoGbMaxExtentSparse,
            // A separate descriptor for a monolithic sparse extent; refined below.
            "monolithicSparse" | "streamOptimized" => Subformat::MonolithicSparse,
            "vmfs"
            | "vmfsSparse"
            | "vmfsThin"
            | "seSparse"
            | "vsanSparse"
            | "vmfsRaw"
            | "vmfsRawDeviceMap"
            | "vmfsPassthroughRawDeviceMap"
            | "fullDevice"
            | "partitionedDevice"
            | "custom" => {
                return Err(VmdkError::Unsupported(format!(
                    "createType={ct:?} (an ESXi or device-backed disk) is not supported"
                )));
            }
            other => {
                return Err(VmdkError::Unsupported(format!(
                    "unknown createType={other:?}"
                )));
            }
        };
        if desc.extents.is_empty() {
            return Err(VmdkError::Descriptor {
                line: 0,
                detail: "no extent lines".into(),
            });
        }
        let total = desc
            .total_sectors()
            .and_then(|s| s.checked_mul(SECTOR))
            .ok_or_else(|| VmdkError::Descriptor {
                line: 0,
                detail: "the extents' sizes overflow".into(),
            })?;
        let mut placed = Vec::with_capacity(desc.extents.len());
        let mut start = 0u64;
        for line in &desc.extents {
            refuse_access(line)?;
            let len = line.sectors * SECTOR; // no overflow: the sum fits
            let extent = open_extent(line, opener)?;
            placed.push(Placed { start, len, extent });
            start += len;
        }
        debug_assert_eq!(start, total);
        if subformat == Subformat::MonolithicSparse
            && placed
                .iter()
                .any(|p| matches!(&p.extent, Extent::Sparse(s) if s.layout.compressed))
        {
            subformat = Subformat::StreamOptimized;
        }
        Ok(Self::assemble(
            placed,
            &desc,
            &desc.extents,
            subformat,
            false,
            file_size,
        ))
    }

    fn assemble(
        extents: Vec<Placed>,
        desc: &Descriptor,
        lines: &[ExtentLine],
        subformat: Subformat,
        embedded: bool,
        file_size: u64,
    ) -> Self {
        let size = extents.last().map(|p| p.start + p.len).unwrap_or(0);
        let mut infos = Vec::with_capacity(extents.len());
        let mut grain_size = None;
        let mut compression = Compression::None;
        for (p, line) in extents.iter().zip(lines) {
            let (kind, flat_offset, file_size, sparse) = match &p.extent {
                Extent::Zero => (ExtentKind::Zero, None, None, None),
                Extent::Flat(f) => (ExtentKind::Flat, Some(f.offset), Some(f.file.size()), None),
                Extent::Sparse(s) => {
                    grain_size.get_or_insert(s.layout.grain_bytes);
                    if s.layout.compressed {
                        compression = Compression::Deflate;
                    }
                    let h = &s.header;
                    let info = SparseInfo {
                        version: h.version,
                        flags: h.flags,
                        grain_size: s.layout.grain_bytes,
                        gtes_per_gt: s.layout.gtes_per_gt,
                        grain_tables: s.allocated_tables(),
                        grain_table_span: s.table_span(),
                        compressed: s.layout.compressed,
                        markers: s.layout.markers,
                        zero_grain_gte: s.layout.zero_grain_gte,
                        redundant_gd: h.flags & FLAG_REDUNDANT_GT != 0,
                        footer: s.footer_used,
                        unclean_shutdown: h.unclean_shutdown,
                    };
                    (ExtentKind::Sparse, None, Some(s.file.size()), Some(info))
                }
            };
            infos.push(ExtentInfo {
                kind,
                access: line.access,
                file_name: line.file_name.clone(),
                virtual_offset: p.start,
                size: p.len,
                flat_offset,
                file_size,
                sparse,
            });
        }
        let num = |k: &str| desc.ddb(k).and_then(|v| v.trim().parse::<u64>().ok());
        let geometry = match (
            num("geometry.cylinders"),
            num("geometry.heads"),
            num("geometry.sectors"),
        ) {
            (Some(cylinders), Some(heads), Some(sectors)) => Some(Geometry {
                cylinders,
                heads,
                sectors,
            }),
            _ => None,
        };
        let info = VmdkInfo {
            subformat,
            create_type: desc.create_type().unwrap_or("").to_string(),
            virtual_size: size,
            grain_size,
            compression,
            extents: infos,
            descriptor_embedded: embedded,
            descriptor_version: desc
                .get("version")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            cid: desc.cid(),
            parent_cid: desc.parent_cid(),
            adapter_type: desc.ddb("adapterType").map(str::to_string),
            hw_version: desc.ddb("virtualHWVersion").map(str::to_string),
            geometry,
            ddb: desc
                .ddb
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect(),
            file_size,
        };
        Self {
            extents,
            size,
            info,
        }
    }

    /// Facts for `vmscrub inspect`.
    pub fn info(&self) -> &VmdkInfo {
        &self.info
    }

    fn read(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let mut idx = self.extents.partition_point(|p| p.start + p.len <= offset);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let Some(p) = self.extents.get(idx) else {
                return Err(VmdkError::corrupt(
                    "extent list",
                    None,
                    format!("no extent holds virtual byte {pos}"),
                ));
            };
            let rel = pos - p.start;
            let n = ((p.len - rel) as usize).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            match &p.extent {
                Extent::Zero => out.fill(0),
                Extent::Flat(f) => f.read(out, rel)?,
                Extent::Sparse(s) => s.read(out, rel)?,
            }
            done += n;
            idx += 1;
        }
        Ok(())
    }
}

impl ReadAt for Vmdk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        Ok(self.read(buf, offset)?)
    }

    /// Allocated grains of sparse extents, the host file's data ranges of flat
    /// extents, nothing for ZERO extents, unallocated and zeroed grains.
    fn allocated_ranges(&self) -> io::Result<RangeSet> {
        let mut set = RangeSet::new();
        for p in &self.extents {
            let part = match &p.extent {
                Extent::Zero => continue,
                Extent::Flat(f) => f.allocated()?,
                Extent::Sparse(s) => s.allocated()?,
            };
            for r in part.iter() {
                set.insert(p.start + r.start.min(p.len)..p.start + r.end.min(p.len));
            }
        }
        Ok(set)
    }
}

fn read_header(file: &dyn ReadAt, name: &str) -> Result<SparseExtentHeader> {
    if file.size() < SECTOR {
        return Err(VmdkError::corrupt(
            format!("sparse extent header of {name}"),
            Some(0),
            format!("the file is only {} bytes long", file.size()),
        ));
    }
    let mut sector = [0u8; 512];
    file.read_exact_at(&mut sector, 0)
        .map_err(|e| VmdkError::io(format!("reading the header of {name}"), e))?;
    SparseExtentHeader::parse(&sector)
        .ok_or_else(|| VmdkError::corrupt(format!("extent file {name}"), Some(0), "no KDMV magic"))
}

/// Binary VMDK relatives that must be named, not mistaken for a missing descriptor.
fn refuse_other_binary(magic: &[u8; 8], name: &str) -> Result<()> {
    if magic[..4] == COWD_MAGIC {
        return Err(VmdkError::Unsupported(format!(
            "{name} is a COWD sparse extent (VMware Workstation 3 / ESX 2 format)"
        )));
    }
    if u64::from_le_bytes(*magic) == SESPARSE_MAGIC {
        return Err(VmdkError::Unsupported(format!(
            "{name} is an ESXi seSparse extent"
        )));
    }
    Ok(())
}

/// qemu's rule: after comment and blank lines, the text starts with `version=`.
fn looks_like_descriptor(text: &[u8]) -> bool {
    for line in text.split(|&b| b == b'\n') {
        let t = line.trim_ascii();
        if t.is_empty() || t.starts_with(b"#") {
            continue;
        }
        return t.starts_with(b"version") && t.contains(&b'=');
    }
    false
}

fn refuse_parent(desc: &Descriptor) -> Result<()> {
    if desc.has_parent() {
        return Err(VmdkError::Unsupported(format!(
            "delta disk (parentCID={}, parentFileNameHint={:?}): its unwritten grains live in a parent disk, which this reader does not follow",
            desc.get("parentCID").unwrap_or("?"),
            desc.get("parentFileNameHint").unwrap_or("")
        )));
    }
    Ok(())
}

fn refuse_access(line: &ExtentLine) -> Result<()> {
    if line.access == Access::NoAccess {
        return Err(VmdkError::Unsupported(format!(
            "extent on descriptor line {} is NOACCESS: its data is not available",
            line.line
        )));
    }
    Ok(())
}

fn open_extent(line: &ExtentLine, opener: &dyn ExtentOpener) -> Result<Extent> {
    let name = line.file_name.as_deref().unwrap_or("");
    let len = line.sectors * SECTOR;
    match &line.kind {
        ExtentType::Zero => Ok(Extent::Zero),
        ExtentType::Flat => {
            let offset = line
                .offset
                .unwrap_or(0)
                .checked_mul(SECTOR)
                .ok_or_else(|| VmdkError::Descriptor {
                    line: line.line,
                    detail: "flat extent offset overflows".into(),
                })?;
            let file = opener.open(name)?;
            Ok(Extent::Flat(FlatExtent {
                file,
                name: name.to_string(),
                offset,
                len,
            }))
        }
        ExtentType::Sparse => {
            let file = opener.open(name)?;
            let mut magic = [0u8; 8];
            if file.size() >= 8 {
                file.read_exact_at(&mut magic, 0)
                    .map_err(|e| VmdkError::io(format!("reading {name}"), e))?;
            }
            if magic[..4] != crate::header::MAGIC {
                refuse_other_binary(&magic, name)?;
                return Err(VmdkError::corrupt(
                    format!("sparse extent {name}"),
                    Some(0),
                    "no KDMV magic (descriptor line says SPARSE)",
                ));
            }
            let header = read_header(&*file, name)?;
            let sparse = SparseExtent::open(file, name, header)?;
            if sparse.header.capacity != line.sectors {
                return Err(VmdkError::corrupt(
                    format!("sparse extent header of {name}"),
                    Some(12),
                    format!(
                        "capacity is {} sectors but descriptor line {} says {}",
                        sparse.header.capacity, line.line, line.sectors
                    ),
                ));
            }
            Ok(Extent::Sparse(Box::new(sparse)))
        }
        other => Err(VmdkError::Unsupported(format!(
            "{} extent {name:?} (descriptor line {}): only FLAT, SPARSE and ZERO extents are supported",
            other.as_str(),
            line.line
        ))),
    }
}
