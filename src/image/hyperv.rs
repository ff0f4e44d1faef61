//! The Microsoft formats: VHD (Virtual PC, Hyper-V's first, Azure's) and VHDX
//! (Hyper-V's), each opened through its format crate and described for
//! `inspect`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use vmscrub_blockdev::{FileDisk, ReadAt};

use super::{ContainerInfo, Format, ImageError, OpenedImage};

/// A VHD, fixed or dynamic (`vmscrub-vhd`); differencing disks are refused there
/// with the way out.
pub(super) fn open_vhd(path: &Path, file: FileDisk) -> Result<OpenedImage, ImageError> {
    let file_size = file.size();
    let vhd = vmscrub_vhd::Vhd::open(file).map_err(|e| ImageError::Container {
        path: path.to_path_buf(),
        format: Format::Vhd,
        source: Box::new(e),
    })?;
    let mut details = BTreeMap::new();
    details.insert(
        "creator".into(),
        String::from_utf8_lossy(&vhd.footer.creator)
            .trim()
            .to_string()
            .into(),
    );
    if let Some(h) = vhd.dynamic_header() {
        details.insert("block_size".into(), h.block_size.into());
    }
    let mut warnings = Vec::new();
    if vhd.footer.at == 0 {
        warnings.push(
            "the VHD footer at the end of the file is missing or damaged; read with the copy at \
             its start"
                .to_string(),
        );
    }
    Ok(OpenedImage {
        info: ContainerInfo {
            format: Format::Vhd,
            subformat: Some(vhd.subformat().to_string()),
            virtual_size: vhd.footer.current_size,
            file_size,
            allocated_bytes: Some(vhd.allocated_bytes()),
            details,
            warnings,
        },
        disk: Arc::new(vhd),
    })
}

/// A VHDX, fixed or dynamic (`vmscrub-vhdx`); differencing disks and a log
/// left to replay are refused there with the way out.
pub(super) fn open_vhdx(path: &Path, file: FileDisk) -> Result<OpenedImage, ImageError> {
    let file_size = file.size();
    let vhdx = vmscrub_vhdx::Vhdx::open(file).map_err(|e| ImageError::Container {
        path: path.to_path_buf(),
        format: Format::Vhdx,
        source: Box::new(e),
    })?;
    let mut details = BTreeMap::new();
    details.insert("block_size".into(), vhdx.metadata.block_size.into());
    details.insert(
        "logical_sector_size".into(),
        vhdx.metadata.logical_sector.into(),
    );
    Ok(OpenedImage {
        info: ContainerInfo {
            format: Format::Vhdx,
            subformat: Some(vhdx.subformat().to_string()),
            virtual_size: vhdx.metadata.size,
            file_size,
            allocated_bytes: Some(vhdx.allocated_bytes()),
            details,
            warnings: Vec::new(),
        },
        disk: Arc::new(vhdx),
    })
}
