//! Opening an image file, and finding the volumes inside it.
//!
//! **Format by content, never by extension.** A file called `disk.qcow2` may be raw,
//! and an attacker-supplied `disk.img` may be a qcow2 whose backing file is
//! `/etc/shadow`; so [`open`] reads the first and last bytes and decides from magic
//! numbers alone ([`sniff`]). qcow2 and VMDK go to their readers; formats we know
//! but do not read (VHD, VHDX, VDI, QED) and compressed or archived files are
//! refused with an error that names them and says what to do; everything else is
//! raw, as it is for `qemu-img` without `-f`.
//!
//! **External files are a policy decision.** qcow2 backing files and VMDK extents
//! and parents are paths chosen by whoever made the image. [`OpenOptions`] says
//! whether they may be followed at all and where they may live;
//! [`OpenOptions::resolve_external`] applies that policy, and every container
//! reader must go through it before opening any file an image names.
//!
//! [`discover`] then finds the partition table (GPT, MBR or none) on the opened
//! disk and gives every partition — or the bare disk — as a [`Slice`] with what
//! `vmscrub_fsprobe` says it holds; the PVs among them are grouped into LVM2
//! volume groups and every logical volume becomes a volume too ([`lvm`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vmscrub_blockdev::{FileDisk, ReadAt, Slice};
use vmscrub_fsprobe::Filesystem;
use vmscrub_partition::{MbrKind, Table};

mod device;
mod hyperv;
pub mod lvm;
mod sniff;

pub use device::VolumeDevice;
pub use lvm::{LvId, PvState, VolumeGroup};
pub use sniff::{SNIFF_HEAD, SNIFF_TAIL, Sniffed, VmdkKind, sniff};

/// A container format vmscrub reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Raw,
    Qcow2,
    Vmdk,
    /// Read only: outputs are raw, qcow2 or VMDK.
    Vhd,
    Vhdx,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where files an image names (backing files, VMDK extents) may be opened from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExternalFiles {
    /// No file other than the image itself.
    Refuse,
    /// Only files in the image's own directory, after resolving symlinks — enough
    /// for a monolithicFlat VMDK or a backing chain copied alongside, and no way to
    /// reach `/etc/shadow` with `../../`.
    #[default]
    SameDirectory,
    /// Any path the image names (the user vouches for the image).
    Anywhere,
}

/// How [`open`] may treat an image. Defaults are safe for untrusted images.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Follow a qcow2 backing file or a VMDK parent (`parentFileNameHint`). Off by
    /// default: an image with a backing file is refused with a message naming the
    /// flag, since reading it means opening a host file the image chose.
    pub allow_backing: bool,
    /// Where any file an image names may live (applies to backing files when
    /// allowed, and always to VMDK extent files).
    pub external_files: ExternalFiles,
}

impl OpenOptions {
    /// Resolves `reference` (a path written inside `image`) to a file that may be
    /// opened under this policy. Relative references are relative to the image's
    /// directory, as qemu resolves them. `what` names the reference in errors
    /// ("backing file", "extent").
    pub fn resolve_external(
        &self,
        image: &Path,
        reference: &str,
        what: &'static str,
    ) -> Result<PathBuf, ImageError> {
        let refused = |reason: String| ImageError::ExternalRefused {
            what,
            reference: reference.to_string(),
            reason,
        };
        if self.external_files == ExternalFiles::Refuse {
            return Err(refused("opening files an image names is disabled".into()));
        }
        // The image's real directory: a symlinked image resolves names where the
        // image file really lives, as qemu does.
        let image_dir = image
            .canonicalize()
            .map_err(|e| refused(format!("cannot resolve the image path: {e}")))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let anywhere = self.external_files == ExternalFiles::Anywhere;
        vmscrub_blockdev::resolve_named_file(&image_dir, reference, anywhere).map_err(|e| match e {
            vmscrub_blockdev::ConfineError::Refused(r) if !anywhere => {
                refused(format!("{r}; pass --allow-external-files to allow it"))
            }
            other => refused(other.to_string()),
        })
    }
}

/// What the container says about itself: everything `inspect` reports about the
/// image file before looking inside the virtual disk.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub format: Format,
    /// `monolithicSparse`, `streamOptimized`, `v3`, … (`None` for raw).
    pub subformat: Option<String>,
    /// Size of the virtual disk in bytes.
    pub virtual_size: u64,
    /// Size of the image file in bytes (for multi-file VMDKs, of the file given).
    pub file_size: u64,
    /// Bytes of the virtual disk that may hold data ([`ReadAt::allocated_ranges`]):
    /// for raw, the host file's non-hole ranges; for qcow2/VMDK, allocated clusters
    /// or grains. `None` if the container cannot tell.
    pub allocated_bytes: Option<u64>,
    /// Format-specific facts (cluster size, compression, backing file, …), as JSON
    /// values so each reader can add its own without touching `inspect`.
    pub details: BTreeMap<String, serde_json::Value>,
    pub warnings: Vec<String>,
}

/// An opened image: the virtual disk as a device, and what the container says.
pub struct OpenedImage {
    pub disk: Arc<dyn ReadAt>,
    pub info: ContainerInfo,
}

impl fmt::Debug for OpenedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedImage")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot open {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{path} is a directory, not an image file")]
    Directory { path: PathBuf },

    #[error("{path} is a {format}, which vmscrub does not read; {advice}")]
    Unsupported {
        path: PathBuf,
        format: &'static str,
        advice: &'static str,
    },

    #[error(
        "{path} needs its backing file {reference:?}; pass --allow-backing to let vmscrub open it"
    )]
    BackingRefused { path: PathBuf, reference: String },

    #[error("refusing to open the {what} {reference:?} named by the image: {reason}")]
    ExternalRefused {
        what: &'static str,
        reference: String,
        reason: String,
    },

    /// A container reader's own error (corrupt header, unsupported feature, …).
    #[error("{path}: corrupt or unsupported {format} image")]
    Container {
        path: PathBuf,
        format: Format,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Opens `path` read-only and returns its virtual disk. The format comes from
/// the content ([`sniff`]); the input file is never written.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<OpenedImage, ImageError> {
    let io_err = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        return Err(ImageError::Directory {
            path: path.to_path_buf(),
        });
    }
    let file = FileDisk::open(path).map_err(io_err)?;
    let size = file.size();
    let mut head = vec![0u8; size.min(SNIFF_HEAD as u64) as usize];
    file.read_exact_at(&mut head, 0).map_err(io_err)?;
    let tail_len = size.min(SNIFF_TAIL as u64);
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact_at(&mut tail, size - tail_len)
        .map_err(io_err)?;
    match sniff(&head, &tail) {
        Sniffed::Raw => open_raw(path, file),
        Sniffed::Qcow2 => open_qcow2(path, file, opts),
        Sniffed::Vhd => hyperv::open_vhd(path, file),
        Sniffed::Vhdx => hyperv::open_vhdx(path, file),
        Sniffed::Vmdk(kind) => open_vmdk(path, file, kind, opts),
        Sniffed::Refused { format, advice } => Err(ImageError::Unsupported {
            path: path.to_path_buf(),
            format,
            advice,
        }),
    }
}

fn open_raw(path: &Path, file: FileDisk) -> Result<OpenedImage, ImageError> {
    let size = file.size();
    let allocated = file
        .allocated_ranges()
        .map_err(|source| ImageError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .total();
    let mut warnings = Vec::new();
    if size == 0 {
        warnings.push("the image is empty (0 bytes)".to_string());
    } else if !size.is_multiple_of(512) {
        warnings.push(format!("image size {size} is not a multiple of 512 bytes; the last partial sector is ignored by most tools"));
    }
    Ok(OpenedImage {
        disk: Arc::new(file),
        info: ContainerInfo {
            format: Format::Raw,
            subformat: None,
            virtual_size: size,
            file_size: size,
            allocated_bytes: Some(allocated),
            details: BTreeMap::new(),
            warnings,
        },
    })
}

/// A qcow2 image, v2 or v3. A backing file is a host path chosen by the image:
/// without `--allow-backing` the image is refused with a message naming the flag;
/// with it, every backing name goes through the same confinement rule as VMDK
/// extents ([`vmscrub_blockdev::resolve_named_file`]), relative to the top image's
/// directory, unless external files are allowed anywhere.
fn open_qcow2(path: &Path, file: FileDisk, opts: &OpenOptions) -> Result<OpenedImage, ImageError> {
    use vmscrub_qcow2 as q;
    let container_err = |e: q::Error| ImageError::Container {
        path: path.to_path_buf(),
        format: Format::Qcow2,
        source: Box::new(e),
    };
    let header = q::read_header(&file).map_err(container_err)?;
    let info = header.info();
    let file_size = file.size();
    let (disk, chain): (Arc<dyn ReadAt>, Vec<q::ChainLink>) = match &header.backing_file {
        None => {
            let image = q::Qcow2::with_header(file, header, None, &q::OpenOptions::default())
                .map_err(container_err)?;
            (Arc::new(image), vec![])
        }
        Some(b) if !opts.allow_backing => {
            return Err(ImageError::BackingRefused {
                path: path.to_path_buf(),
                reference: b.name_lossy(),
            });
        }
        Some(_) => {
            drop(file);
            let top_dir = path
                .canonicalize()
                .map_err(|source| ImageError::Io {
                    path: path.to_path_buf(),
                    source,
                })?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| std::path::PathBuf::from("/"));
            let top = top_dir.join(path.file_name().unwrap_or_default());
            let anywhere = opts.external_files == ExternalFiles::Anywhere;
            let refuse_all = opts.external_files == ExternalFiles::Refuse;
            let opener = |p: &Path| -> io::Result<Box<dyn ReadAt>> {
                if p == top {
                    return Ok(Box::new(FileDisk::open(p)?));
                }
                if refuse_all {
                    return Err(io::Error::other("opening files an image names is disabled"));
                }
                // Names are joined lexically to the naming image's directory; express
                // them relative to the top image's directory so `..` stays visible.
                let name = match p.strip_prefix(&top_dir) {
                    Ok(rel) => rel.to_string_lossy().into_owned(),
                    Err(_) => p.to_string_lossy().into_owned(),
                };
                let real = vmscrub_blockdev::resolve_named_file(&top_dir, &name, anywhere)
                    .map_err(|e| {
                        io::Error::other(format!(
                            "{e}; --allow-external-files lifts the directory limit"
                        ))
                    })?;
                Ok(Box::new(FileDisk::open(&real)?))
            };
            let (image, chain) = q::open_chain(
                &top,
                opener,
                &q::OpenOptions::default(),
                q::DEFAULT_MAX_DEPTH,
            )
            .map_err(container_err)?;
            (Arc::new(image), chain)
        }
    };
    let allocated = disk
        .allocated_ranges()
        .map_err(|source| ImageError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .total();
    let mut details = BTreeMap::new();
    details.insert("cluster_size".into(), info.cluster_size.into());
    details.insert("compression_type".into(), info.compression.name().into());
    details.insert("refcount_bits".into(), (1u64 << info.refcount_order).into());
    details.insert("dirty".into(), info.dirty.into());
    details.insert("snapshots".into(), info.snapshots.into());
    if let Some(b) = &info.backing_file {
        details.insert("backing_file".into(), b.clone().into());
        details.insert("backing_format".into(), info.backing_format.clone().into());
        details.insert(
            "backing_chain".into(),
            chain
                .iter()
                .skip(1)
                .map(|l| l.path.display().to_string())
                .collect::<Vec<_>>()
                .into(),
        );
    }
    let mut warnings = Vec::new();
    if info.dirty {
        warnings.push("the qcow2 dirty bit is set (not closed cleanly); its data is read as stored, which is safe read-only".into());
    }
    if info.corrupt {
        warnings.push("qemu marked this qcow2 image corrupt; reading it anyway, read-only".into());
    }
    if info.snapshots > 0 {
        warnings.push(format!(
            "the image has {} internal snapshot(s); only the active disk is read, and snapshots are not copied to outputs",
            info.snapshots
        ));
    }
    Ok(OpenedImage {
        disk,
        info: ContainerInfo {
            format: Format::Qcow2,
            subformat: Some(format!("v{}", info.version)),
            virtual_size: info.virtual_size,
            file_size,
            allocated_bytes: Some(allocated),
            details,
            warnings,
        },
    })
}

/// A VMDK in any supported subformat. Extent files named by a descriptor are
/// untrusted paths: they are confined to the image's directory unless the user
/// allowed external files, and refused altogether under [`ExternalFiles::Refuse`].
fn open_vmdk(
    path: &Path,
    file: FileDisk,
    kind: VmdkKind,
    opts: &OpenOptions,
) -> Result<OpenedImage, ImageError> {
    use vmscrub_vmdk::{DirExtentOpener, ExtentOpener, NoExtentFiles, Vmdk};
    let container_err = |e: vmscrub_vmdk::VmdkError| ImageError::Container {
        path: path.to_path_buf(),
        format: Format::Vmdk,
        source: Box::new(e),
    };
    if kind == VmdkKind::Cowd {
        return Err(ImageError::Unsupported {
            path: path.to_path_buf(),
            format: "VMware ESX 2 (COWD) sparse extent",
            advice: "convert it with `qemu-img convert -O vmdk` first",
        });
    }
    let file_size = file.size();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let opener: Box<dyn ExtentOpener> = match opts.external_files {
        ExternalFiles::Refuse => Box::new(NoExtentFiles),
        ExternalFiles::SameDirectory => Box::new(DirExtentOpener::new(dir)),
        ExternalFiles::Anywhere => Box::new(DirExtentOpener::allow_outside(dir)),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let vmdk = Vmdk::open(Arc::new(file), &name, opener.as_ref()).map_err(container_err)?;
    let allocated = vmdk
        .allocated_ranges()
        .map_err(|source| ImageError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .total();
    let info = vmdk.info();
    let mut details = BTreeMap::new();
    details.insert("create_type".into(), info.create_type.clone().into());
    if let Some(g) = info.grain_size {
        details.insert("grain_size".into(), g.into());
    }
    details.insert(
        "compression".into(),
        match info.compression {
            vmscrub_vmdk::Compression::None => "none",
            vmscrub_vmdk::Compression::Deflate => "deflate",
        }
        .into(),
    );
    details.insert(
        "extents".into(),
        info.extents
            .iter()
            .map(|e| {
                serde_json::json!({
                    "kind": match e.kind {
                        vmscrub_vmdk::ExtentKind::Flat => "flat",
                        vmscrub_vmdk::ExtentKind::Sparse => "sparse",
                        vmscrub_vmdk::ExtentKind::Zero => "zero",
                    },
                    "file": e.file_name,
                    "virtual_offset": e.virtual_offset,
                    "size": e.size,
                })
            })
            .collect::<Vec<_>>()
            .into(),
    );
    if let Some(cid) = info.cid {
        details.insert("cid".into(), format!("{cid:08x}").into());
    }
    if let Some(a) = &info.adapter_type {
        details.insert("adapter_type".into(), a.clone().into());
    }
    if let Some(h) = &info.hw_version {
        details.insert("hw_version".into(), h.clone().into());
    }
    let mut warnings = Vec::new();
    if info
        .extents
        .iter()
        .any(|e| e.sparse.as_ref().is_some_and(|s| s.unclean_shutdown))
    {
        warnings.push(
            "the VMDK was not closed cleanly (uncleanShutdown is set); reading its on-disk state"
                .into(),
        );
    }
    let subformat = Some(info.subformat.as_str().to_string());
    let virtual_size = info.virtual_size;
    Ok(OpenedImage {
        disk: Arc::new(vmdk),
        info: ContainerInfo {
            format: Format::Vmdk,
            subformat,
            virtual_size,
            file_size,
            allocated_bytes: Some(allocated),
            details,
            warnings,
        },
    })
}

/// A partition, the whole disk when there is no table, or an LVM2 logical
/// volume, and what it holds.
#[derive(Debug)]
pub struct Volume<D> {
    /// Partition number as Linux gives it; `None` for the whole disk and for LVs.
    pub index: Option<u32>,
    /// Byte range in the disk (for an LV: 0 and its size; its bytes are where
    /// its segments say).
    pub offset: u64,
    pub size: u64,
    /// The volume's bytes, addressed from 0.
    pub device: VolumeDevice<D>,
    pub filesystem: Filesystem,
    /// Which logical volume this is (`None` for partitions and the whole disk).
    pub lv: Option<LvId>,
    /// For a volume carrying an LVM2 PV label: what became of the PV.
    pub pv: Option<PvState>,
}

impl<D> Volume<D> {
    /// `partition 2`, `whole disk`, `logical volume rhel/root`.
    pub fn name(&self) -> String {
        match &self.lv {
            Some(lv) => format!("logical volume {}", lv.path()),
            None => volume_name(self.index),
        }
    }

    /// Says which volume this is, the same way [`crate::guest::FsIdentity::volume_key`] does.
    pub fn key(&self) -> VolumeKey {
        (self.index, self.lv.as_ref().map(LvId::path))
    }
}

/// Identifies a volume across a layout and the guest view built from it:
/// (partition number, `vg/lv`).
pub type VolumeKey = (Option<u32>, Option<String>);

/// The partition table of a disk and its volumes.
#[derive(Debug)]
pub struct Layout<D> {
    pub table: Table,
    /// Data-bearing partitions in index order (not the MBR extended container), or
    /// the whole disk when there is no table.
    pub volumes: Vec<Volume<D>>,
    /// From the table and from every filesystem probe (prefixed with the partition).
    pub warnings: Vec<String>,
    /// LVM2 volume groups found on the volumes (their LVs are in `volumes`).
    pub lvm: Vec<VolumeGroup>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("partition table")]
    Table(#[from] vmscrub_partition::Error),
    #[error("{volume}")]
    Probe {
        volume: String,
        #[source]
        source: vmscrub_fsprobe::Error,
    },
    #[error("{volume}")]
    Slice {
        volume: String,
        #[source]
        source: io::Error,
    },
}

fn volume_name(index: Option<u32>) -> String {
    match index {
        Some(i) => format!("partition {i}"),
        None => "whole disk".to_string(),
    }
}

/// Finds the partition table on `disk` and probes each volume for a filesystem.
/// `D` is whatever the pipeline reads through (`Arc<dyn ReadAt>` here, the overlay
/// in a scrub); it is cloned into each [`Slice`].
pub fn discover<D: ReadAt + Clone>(disk: D) -> Result<Layout<D>, DiscoverError> {
    let detected = vmscrub_partition::detect(&disk)?;
    let mut warnings = detected.warnings;
    let mut table = detected.table;
    // A boot loader in a filesystem's boot block (ext2 at byte 0, e2fsprogs'
    // f_dup_de) carries the 0x55AA signature: with no partition in it, a
    // filesystem found at its place beats the MBR reading.
    if matches!(&table, Table::Mbr(m) if m.partitions.is_empty())
        && Slice::new(disk.clone(), 0, disk.size())
            .ok()
            .and_then(|d| vmscrub_fsprobe::probe(&d).ok())
            .is_some_and(|f| f.kind != vmscrub_fsprobe::Kind::Unknown)
    {
        warnings.push(
            "the boot sector has an MBR signature but no partitions, and a filesystem \
             starts at byte 0: read as a filesystem"
                .to_string(),
        );
        table = Table::None;
    }
    let regions: Vec<(Option<u32>, u64, u64)> = match &table {
        Table::None => vec![(None, 0, disk.size())],
        t => t
            .regions()
            .into_iter()
            .map(|r| (Some(r.index), r.offset, r.size))
            .collect(),
    };
    if let Table::Mbr(m) = &table
        && m.partitions.iter().all(|p| p.kind == MbrKind::Extended)
    {
        warnings.push("MBR holds no data partitions".to_string());
    }
    let mut volumes = Vec::with_capacity(regions.len());
    for (index, offset, size) in regions {
        let volume = volume_name(index);
        let device =
            Slice::new(disk.clone(), offset, size).map_err(|source| DiscoverError::Slice {
                volume: volume.clone(),
                source,
            })?;
        let filesystem = probe_volume(&device).map_err(|source| DiscoverError::Probe {
            volume: volume.clone(),
            source,
        })?;
        warnings.extend(filesystem.warnings.iter().map(|w| format!("{volume}: {w}")));
        volumes.push(Volume {
            index,
            offset,
            size,
            device: VolumeDevice::Slice(device),
            filesystem,
            lv: None,
            pv: None,
        });
    }
    let lvm = lvm::add_volumes(&mut volumes, &mut warnings);
    Ok(Layout {
        table,
        volumes,
        warnings,
        lvm,
    })
}

/// What a volume holds, by the probe; where the probe finds nothing, an ext
/// filesystem whose primary superblock is damaged is still found through a
/// backup, as `e2fsck` finds it (blkid does not look there). It is read
/// through that backup with a warning, and `scrub` refuses to edit it.
pub fn probe_volume<D: ReadAt + ?Sized>(device: &D) -> Result<Filesystem, vmscrub_fsprobe::Error> {
    let fs = vmscrub_fsprobe::probe(device)?;
    if fs.kind != vmscrub_fsprobe::Kind::Unknown {
        return Ok(fs);
    }
    let Some(b) = vmscrub_ext4::find_backup(device) else {
        return Ok(fs);
    };
    // The reader opened through it says so, with the repair command.
    Ok(match vmscrub_fsprobe::ext::probe_at(device, b.offset)? {
        Some(found) if found.kind != vmscrub_fsprobe::Kind::Unknown => found,
        _ => fs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;
    use vmscrub_fsprobe::Kind;

    #[test]
    fn open_refuses_by_content_whatever_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk.img");
        std::fs::write(&p, [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]).unwrap();
        let e = open(&p, &OpenOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("zstd-compressed") && e.to_string().contains("decompress"),
            "{e}"
        );
        let p = dir.path().join("really-raw.qcow2");
        std::fs::write(&p, vec![0u8; 8192]).unwrap();
        let img = open(&p, &OpenOptions::default()).unwrap();
        assert_eq!(img.info.format, Format::Raw);
        assert_eq!(img.info.virtual_size, 8192);
        let p = dir.path().join("x.raw");
        std::fs::write(&p, b"QFI\xfb\0\0\0\x03").unwrap();
        // A truncated qcow2 named .raw is still read as qcow2 — and refused as one.
        let e = open(&p, &OpenOptions::default()).unwrap_err();
        assert!(
            matches!(
                e,
                ImageError::Container {
                    format: Format::Qcow2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            open(dir.path(), &OpenOptions::default()),
            Err(ImageError::Directory { .. })
        ));
        assert!(matches!(
            open(&dir.path().join("missing"), &OpenOptions::default()),
            Err(ImageError::Io { .. })
        ));
    }

    #[test]
    fn external_file_policy() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("images");
        std::fs::create_dir(&sub).unwrap();
        let image = sub.join("disk.vmdk");
        std::fs::write(&image, b"# Disk DescriptorFile\n").unwrap();
        std::fs::write(sub.join("disk-flat.vmdk"), b"").unwrap();
        std::fs::write(dir.path().join("secret"), b"").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), sub.join("link.vmdk")).unwrap();
        let opts = OpenOptions::default();
        assert_eq!(
            opts.resolve_external(&image, "disk-flat.vmdk", "extent")
                .unwrap(),
            sub.join("disk-flat.vmdk").canonicalize().unwrap()
        );
        for bad in [
            "../secret",
            "link.vmdk",
            "/etc/passwd",
            "",
            "missing.vmdk",
            ".",
        ] {
            let e = opts.resolve_external(&image, bad, "extent").unwrap_err();
            assert!(
                matches!(e, ImageError::ExternalRefused { .. }),
                "{bad}: {e}"
            );
        }
        let any = OpenOptions {
            external_files: ExternalFiles::Anywhere,
            ..OpenOptions::default()
        };
        assert!(
            any.resolve_external(&image, "../secret", "backing file")
                .is_ok()
        );
        let none = OpenOptions {
            external_files: ExternalFiles::Refuse,
            ..OpenOptions::default()
        };
        assert!(
            none.resolve_external(&image, "disk-flat.vmdk", "extent")
                .is_err()
        );
    }

    #[test]
    fn discover_bare_disk_and_empty_disk() {
        let disk: Arc<dyn ReadAt> = Arc::new(MemDisk::zeroed(1 << 20));
        let l = discover(disk).unwrap();
        assert_eq!(l.table, Table::None);
        assert_eq!(l.volumes.len(), 1);
        assert_eq!((l.volumes[0].index, l.volumes[0].size), (None, 1 << 20));
        assert_eq!(l.volumes[0].filesystem.kind, Kind::Unknown);
        let empty: Arc<dyn ReadAt> = Arc::new(MemDisk::zeroed(0));
        assert_eq!(discover(empty).unwrap().volumes.len(), 1);
    }
}
