//! Zeroing the free space of every filesystem the scrub can read.
//!
//! Removing files properly is not enough: a key deleted with `rm` before the
//! image was taken still sits in free blocks, where no scan of the directory
//! tree can see it, and virt-sysprep ships it (its manual says to run
//! virt-sparsify afterwards). So by default every block no file owns — per the
//! ext4 bitmaps, layout and inode tables together (`free_by_every_witness`),
//! per every FAT copy and the directory tree (`free_by_every_witness`), per
//! XFS's free-space, reverse-mapping and inode B+trees — becomes
//! a zero range in the overlay:
//! nothing is read or written for it, and it becomes a hole in the output,
//! which also makes the output smaller. On ext4 and FAT, filesystem metadata is
//! not touched, so this cannot make a filesystem inconsistent; on XFS the free
//! inode slots are rewritten as fresh free inodes and the log rewritten empty
//! (the editor's commit, judged by xfs_repair like every XFS edit).
//! `--keep-free-space` turns it off.
//!
//! LVM2 has free space of its own: extents no LV holds (where an `lvremove`d
//! volume's contents stay) and the PV bytes outside the label, the metadata
//! areas and the extents. [`zero_unused_lvm`] zeroes those on every volume group
//! vmscrub read completely; the label and metadata areas stay byte-identical,
//! and a refused VG (a PV missing) is not touched at all.

use vmscrub_blockdev::WriteAt;

use crate::fs::FsType;

/// Bytes of free space now reading as zeros (whatever they held before).
/// An interruption (Ctrl-C) is an error like any other here; the caller tells
/// it apart with [`crate::output::check_interrupted`], since it must stop the
/// scrub rather than be reported as free space left unzeroed.
pub fn zero_free_space<D: WriteAt + Clone>(dev: D, fs_type: FsType) -> anyhow::Result<u64> {
    if super::apply::fault("interrupt-free-space") {
        crate::output::simulate_interrupt();
    }
    match fs_type {
        FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => ext4(dev),
        FsType::Vfat => fat(dev),
        FsType::Xfs => super::editors::xfs_zero_free_space(dev),
        FsType::Directory => Ok(0),
    }
}

fn ext4<D: WriteAt + Clone>(dev: D) -> anyhow::Result<u64> {
    let fs = vmscrub_ext4::Ext4::open(dev.clone())?;
    let bs = u64::from(fs.block_size());
    let mut zeroed = 0u64;
    for r in fs.free_by_every_witness()?.runs {
        crate::output::check_interrupted()?;
        dev.zero_range(r.start * bs..r.end * bs)?;
        zeroed += (r.end - r.start) * bs;
    }
    Ok(zeroed)
}

/// [`check_witnesses`] on every filesystem of the guest, naming the one refused.
pub fn refuse_disagreeing(
    guest: &crate::guest::Guest,
    layout: &crate::image::Layout<super::Disk>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    for gfs in &guest.filesystems {
        let Some(vol) = super::volume_of(layout, gfs) else {
            continue;
        };
        check_witnesses(vol.device.clone(), gfs.fs.fs_type()).with_context(|| {
            format!(
                "{} cannot be scrubbed without losing data; nothing was written",
                gfs.identity.describe()
            )
        })?;
    }
    Ok(())
}

/// Refuses a filesystem whose witnesses of free space disagree, before anything
/// is edited: the editor allocates from the same bitmaps, and free-space zeroing
/// would destroy the blocks they wrongly call free. `--allow-unreadable` does not
/// apply: this is not about what cannot be read but about what would be lost.
pub fn check_witnesses<D: vmscrub_blockdev::ReadAt>(dev: D, fs_type: FsType) -> anyhow::Result<()> {
    match fs_type {
        FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => {
            vmscrub_ext4::Ext4::open(dev)?.free_by_every_witness()?;
        }
        FsType::Vfat => {
            vmscrub_fat::FatFs::open(dev)?
                .free_by_every_witness()
                .map_err(|e| anyhow::anyhow!("{e} (run fsck.fat on a copy first)"))?;
        }
        FsType::Xfs => {
            vmscrub_xfs::edit::check_free_space(dev)?;
        }
        FsType::Directory => {}
    }
    Ok(())
}

fn fat<D: WriteAt + Clone>(dev: D) -> anyhow::Result<u64> {
    let fs = vmscrub_fat::FatFs::open(dev.clone())?;
    let g = fs.geometry().clone();
    let mut zeroed = 0u64;
    for r in fs.free_by_every_witness()? {
        crate::output::check_interrupted()?;
        let a = g.cluster_offset(r.start);
        let b = g.cluster_offset(r.end - 1) + u64::from(g.cluster_size);
        dev.zero_range(a..b)?;
        zeroed += b - a;
    }
    Ok(zeroed)
}

/// Zeroes the space no LVM structure uses on the PVs of every fully read volume
/// group ([`crate::image::VolumeGroup::unused`]); returns the bytes per VG.
pub fn zero_unused_lvm<D: WriteAt + Clone>(
    layout: &crate::image::Layout<D>,
) -> anyhow::Result<Vec<(String, u64)>> {
    use anyhow::Context;
    let mut out = vec![];
    for g in layout.lvm.iter().filter(|g| g.refused.is_none()) {
        let name = g.name.clone().unwrap_or_default();
        let mut zeroed = 0u64;
        for (vol, ranges) in &g.unused {
            let Some(v) = layout.volumes.get(*vol) else {
                continue;
            };
            for r in ranges.iter() {
                crate::output::check_interrupted()?;
                v.device
                    .zero_range(r.clone())
                    .with_context(|| format!("volume group {name}: zeroing unused PV space"))?;
                zeroed += r.end - r.start;
            }
        }
        out.push((name, zeroed));
    }
    Ok(out)
}
