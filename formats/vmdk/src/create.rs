//! What the descriptor of a **new** disk says.
//!
//! A written VMDK is a new disk, not a copy of the input's identity:
//! - `CID` is fresh and random (it is the content ID that delta disks check their
//!   `parentCID` against; a new disk has new content), `parentCID=ffffffff`.
//! - `ddb.uuid` is a fresh random UUID in VMware's spelling, never the input's:
//!   VirtualBox refuses to register two disks with one UUID and vCenter tracks
//!   disks by it, so a golden image converted many times must not share it — and a
//!   scrubber removes per-instance identity rather than copying it.
//! - `ddb.adapterType`, `ddb.virtualHWVersion` and `ddb.toolsVersion` describe the
//!   guest (which controller it boots from, which tools it has), so they are
//!   carried over from an input VMDK ([`DiskOptions::inherit`]) when they hold a
//!   value VMware defines; otherwise `lsilogic` (what VMware products default to
//!   for SCSI guests and what OVA importers expect), hardware version 4 and tools
//!   version 2147483647 ("unknown", as qemu writes).
//! - The geometry is computed from the size as qemu does: 63 sectors, 16 heads for
//!   IDE and 255 otherwise, cylinders = sectors / (heads × 63), rounded down.
//!
//! Every value written is generated or validated here, so nothing from an input
//! image reaches the descriptor text verbatim (a crafted `adapterType` could
//! otherwise inject extent lines).

use std::io;

use crate::descriptor::{Access, Descriptor, Entry, ExtentLine, ExtentType, NO_PARENT_CID};
use crate::info::{Geometry, VmdkInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterType {
    Ide,
    LsiLogic,
    BusLogic,
    LegacyEsx,
}

impl AdapterType {
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterType::Ide => "ide",
            AdapterType::LsiLogic => "lsilogic",
            AdapterType::BusLogic => "buslogic",
            AdapterType::LegacyEsx => "legacyESX",
        }
    }

    /// The values VMware defines (case-insensitive, as VMware reads them).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ide" => Some(AdapterType::Ide),
            "lsilogic" => Some(AdapterType::LsiLogic),
            "buslogic" => Some(AdapterType::BusLogic),
            "legacyesx" => Some(AdapterType::LegacyEsx),
            _ => None,
        }
    }
}

/// The guest-facing facts and identity of a disk being written. See the module
/// documentation for the defaults and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskOptions {
    pub adapter_type: AdapterType,
    pub hw_version: u32,
    pub tools_version: u32,
    /// `None`: a fresh random CID (the normal case; tests pin it).
    pub cid: Option<u32>,
    /// `None`: a fresh random `ddb.uuid`.
    pub uuid: Option<[u8; 16]>,
}

pub const DEFAULT_HW_VERSION: u32 = 4;
pub const DEFAULT_TOOLS_VERSION: u32 = 2_147_483_647;

impl Default for DiskOptions {
    fn default() -> Self {
        Self {
            adapter_type: AdapterType::LsiLogic,
            hw_version: DEFAULT_HW_VERSION,
            tools_version: DEFAULT_TOOLS_VERSION,
            cid: None,
            uuid: None,
        }
    }
}

impl DiskOptions {
    /// Defaults, with the guest-facing values of an input VMDK carried over where
    /// they are valid. Returns warnings for values that were not.
    pub fn inherit(info: &VmdkInfo) -> (Self, Vec<String>) {
        let tools = info
            .ddb
            .iter()
            .find(|(k, _)| k == "ddb.toolsVersion")
            .map(|(_, v)| v.as_str());
        Self::inherit_values(
            info.adapter_type.as_deref(),
            info.hw_version.as_deref(),
            tools,
        )
    }

    /// [`inherit`](Self::inherit) from a parsed descriptor.
    pub fn inherit_descriptor(d: &Descriptor) -> (Self, Vec<String>) {
        Self::inherit_values(
            d.ddb("adapterType"),
            d.ddb("virtualHWVersion"),
            d.ddb("toolsVersion"),
        )
    }

    fn inherit_values(
        adapter: Option<&str>,
        hw: Option<&str>,
        tools: Option<&str>,
    ) -> (Self, Vec<String>) {
        let mut o = Self::default();
        let mut warnings = Vec::new();
        if let Some(a) = adapter {
            match AdapterType::parse(a) {
                Some(t) => o.adapter_type = t,
                None => warnings.push(format!(
                    "the input's ddb.adapterType {:?} is not one VMware defines; writing {:?}",
                    a.chars().take(40).collect::<String>(),
                    o.adapter_type.as_str()
                )),
            }
        }
        let num = |v: &str| v.trim().parse::<u32>().ok();
        if let Some(h) = hw {
            match num(h).filter(|v| (1..=99).contains(v)) {
                Some(v) => o.hw_version = v,
                None => warnings.push(format!(
                    "the input's ddb.virtualHWVersion {:?} is not a hardware version; writing {}",
                    h.chars().take(40).collect::<String>(),
                    o.hw_version
                )),
            }
        }
        if let Some(t) = tools {
            match num(t) {
                Some(v) => o.tools_version = v,
                None => warnings.push(format!(
                    "the input's ddb.toolsVersion {:?} is not a number; writing {}",
                    t.chars().take(40).collect::<String>(),
                    o.tools_version
                )),
            }
        }
        (o, warnings)
    }

    /// qemu's geometry for a disk of `sectors` sectors on this adapter.
    pub fn geometry(&self, sectors: u64) -> Geometry {
        let heads = if self.adapter_type == AdapterType::Ide {
            16
        } else {
            255
        };
        Geometry {
            cylinders: sectors / (heads * 63),
            heads,
            sectors: 63,
        }
    }
}

/// The descriptor of the VMDK whose main file is `file` (embedded in a `KDMV`
/// sparse extent, or the text file itself), without opening any extent file.
pub fn read_descriptor(file: &dyn vmscrub_blockdev::ReadAt) -> crate::Result<Descriptor> {
    use crate::error::VmdkError;
    use crate::header::{MAX_DESCRIPTOR_SECTORS, SECTOR};
    let io_err = |e| VmdkError::io("reading the descriptor", e);
    let size = file.size();
    let mut head = [0u8; 512];
    if size >= 512 {
        file.read_exact_at(&mut head, 0).map_err(io_err)?;
    }
    if let Some(h) = crate::header::SparseExtentHeader::parse(&head) {
        if h.descriptor_offset == 0
            || h.descriptor_size == 0
            || h.descriptor_size > MAX_DESCRIPTOR_SECTORS
        {
            return Err(VmdkError::corrupt(
                "sparse extent header",
                Some(28),
                "no usable embedded descriptor",
            ));
        }
        let at = h.descriptor_offset.checked_mul(SECTOR);
        let len = h.descriptor_size * SECTOR;
        let Some(at) = at.filter(|a| a.checked_add(len).is_some_and(|e| e <= size)) else {
            return Err(VmdkError::corrupt(
                "sparse extent header",
                Some(28),
                "the embedded descriptor lies past the end of the file",
            ));
        };
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, at).map_err(io_err)?;
        return Descriptor::parse(&buf);
    }
    if size > crate::descriptor::MAX_DESCRIPTOR_BYTES {
        return Err(VmdkError::NotVmdk("too large to be a descriptor".into()));
    }
    let mut buf = vec![0u8; size as usize];
    file.read_exact_at(&mut buf, 0).map_err(io_err)?;
    Descriptor::parse(&buf)
}

fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| io::Error::other(format!("no random numbers for a new disk ID: {e}")))?;
    Ok(b)
}

/// VMware's `ddb.uuid` spelling: `60 00 c2 9a … 4b-3d …`, 8 bytes, a dash, 8 bytes.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let half = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!("{}-{}", half(&u[..8]), half(&u[8..]))
}

/// Checks that `name` can be written as a quoted extent file name: no quote, no
/// line break, no NUL, no directory part.
pub fn check_extent_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains(['"', '\n', '\r', '\0', '/']) || name == "." || name == ".."
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} cannot be written as a VMDK extent file name"),
        ));
    }
    Ok(())
}

/// Capacity in sectors of a disk of `size` bytes: rounded up to whole sectors (a
/// VMDK has no partial sectors; the padding reads as zeros). Zero is refused.
pub fn capacity_sectors(size: u64) -> io::Result<u64> {
    if size == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a VMDK cannot hold an empty (0-byte) disk",
        ));
    }
    Ok(size.div_ceil(crate::header::SECTOR))
}

/// The descriptor of a new disk of `sectors` sectors with one extent.
pub(crate) fn new_descriptor(
    opts: &DiskOptions,
    create_type: &str,
    sectors: u64,
    kind: ExtentType,
    file_name: &str,
    offset: Option<u64>,
) -> io::Result<Descriptor> {
    check_extent_name(file_name)?;
    let cid = match opts.cid {
        Some(c) => c,
        // CID ffffffff would read as "no parent" if this disk were ever a parent.
        None => u32::from_le_bytes(random_bytes::<4>()?) & 0xffff_fffe,
    };
    let uuid = match opts.uuid {
        Some(u) => u,
        None => random_bytes::<16>()?,
    };
    let e = |key: &str, value: String, quoted: bool| Entry {
        key: key.to_string(),
        value,
        quoted,
    };
    let g = opts.geometry(sectors);
    Ok(Descriptor {
        entries: vec![
            e("version", "1".into(), false),
            e("CID", format!("{cid:08x}"), false),
            e("parentCID", format!("{NO_PARENT_CID:08x}"), false),
            e("createType", create_type.into(), true),
        ],
        extents: vec![ExtentLine {
            access: Access::ReadWrite,
            sectors,
            kind,
            file_name: Some(file_name.to_string()),
            offset,
            line: 0,
        }],
        ddb: vec![
            e("ddb.virtualHWVersion", opts.hw_version.to_string(), true),
            e("ddb.geometry.cylinders", g.cylinders.to_string(), true),
            e("ddb.geometry.heads", g.heads.to_string(), true),
            e("ddb.geometry.sectors", g.sectors.to_string(), true),
            e("ddb.adapterType", opts.adapter_type.as_str().into(), true),
            e("ddb.toolsVersion", opts.tools_version.to_string(), true),
            e("ddb.uuid", format_uuid(&uuid), true),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_parses_back_with_fresh_ids() {
        let o = DiskOptions::default();
        let a = new_descriptor(
            &o,
            "streamOptimized",
            204800,
            ExtentType::Sparse,
            "x.vmdk",
            None,
        )
        .unwrap();
        let b = new_descriptor(
            &o,
            "streamOptimized",
            204800,
            ExtentType::Sparse,
            "x.vmdk",
            None,
        )
        .unwrap();
        let pa = Descriptor::parse(a.to_text().as_bytes()).unwrap();
        assert_eq!(pa.create_type(), Some("streamOptimized"));
        assert_eq!(pa.parent_cid(), Some(NO_PARENT_CID));
        assert!(!pa.has_parent());
        assert_eq!(pa.ddb("adapterType"), Some("lsilogic"));
        assert_eq!(pa.ddb("geometry.heads"), Some("255"));
        assert_eq!(pa.ddb("geometry.cylinders"), Some("12"));
        assert_ne!(a.get("CID"), b.get("CID"));
        assert_ne!(a.ddb("uuid"), b.ddb("uuid"));
        assert_eq!(pa.ddb("uuid").unwrap().len(), 16 * 3 - 1);
    }

    #[test]
    fn geometry_matches_qemu() {
        let ide = DiskOptions {
            adapter_type: AdapterType::Ide,
            ..DiskOptions::default()
        };
        // qemu-img create -f vmdk … 100M / 10M (ide) and 600G (lsilogic).
        assert_eq!(ide.geometry(204800).cylinders, 203);
        assert_eq!(ide.geometry(20480).cylinders, 20);
        assert_eq!(
            DiskOptions::default().geometry(1_258_291_200).cylinders,
            78325
        );
        assert_eq!(ide.geometry(1).cylinders, 0);
    }

    #[test]
    fn hostile_names_and_values_are_refused() {
        for bad in ["a\"b", "a\nRW 1 FLAT \"x\" 0", "", "d/x.vmdk", ".."] {
            assert!(check_extent_name(bad).is_err(), "{bad:?}");
        }
        let info = VmdkInfo {
            adapter_type: Some("ide\"\nRW 1 FLAT \"/etc/shadow\" 0".into()),
            hw_version: Some("x".into()),
            ddb: vec![("ddb.toolsVersion".into(), "12345".into())],
            subformat: crate::info::Subformat::MonolithicSparse,
            create_type: "monolithicSparse".into(),
            virtual_size: 1 << 20,
            grain_size: Some(65536),
            compression: crate::info::Compression::None,
            extents: Vec::new(),
            descriptor_embedded: true,
            descriptor_version: 1,
            cid: None,
            parent_cid: None,
            geometry: None,
            file_size: 0,
        };
        let (o, w) = DiskOptions::inherit(&info);
        assert_eq!(o.adapter_type, AdapterType::LsiLogic);
        assert_eq!(o.hw_version, DEFAULT_HW_VERSION);
        assert_eq!(o.tools_version, 12345);
        assert_eq!(w.len(), 2);
        assert!(capacity_sectors(0).is_err());
        assert_eq!(capacity_sectors(513).unwrap(), 2);
    }

    /// `read_descriptor` reads untrusted files: damaged headers and truncations
    /// give errors, never a panic or an unbounded allocation.
    #[test]
    fn read_descriptor_of_hostile_files() {
        use vmscrub_blockdev::MemDisk;
        let mut w =
            crate::StreamWriter::new(Vec::new(), 1 << 20, "x.vmdk", &DiskOptions::default())
                .unwrap();
        w.write_data(0, b"data").unwrap();
        let (good, _) = w.finish().unwrap();
        let d = read_descriptor(&MemDisk::new(good.clone())).unwrap();
        assert_eq!(d.create_type(), Some("streamOptimized"));
        // Field offsets: descriptorOffset at 28, descriptorSize at 36.
        for (at, val) in [
            (28usize, u64::MAX),
            (28, 0),
            (36, 0),
            (36, 1 << 40),
            (28, 1 << 50),
            (36, 2048),
        ] {
            let mut b = good.clone();
            b[at..at + 8].copy_from_slice(&val.to_le_bytes());
            let _ = read_descriptor(&MemDisk::new(b)); // must return, Ok or Err
        }
        for len in [0usize, 3, 511, 512, 600, 1024] {
            assert!(
                read_descriptor(&MemDisk::new(good[..len].to_vec())).is_err(),
                "{len}"
            );
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..500 {
            let mut b = good[..512 * 21].to_vec();
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed % b.len() as u64) as usize;
                b[i] = (seed >> 32) as u8;
            }
            let _ = read_descriptor(&MemDisk::new(b));
        }
        assert!(read_descriptor(&MemDisk::new(b"not a descriptor".to_vec())).is_err());
    }
}
