//! Zeroing the free space of every filesystem the scrub can read.
//!
//! Removing files properly is not enough: a key deleted with `rm` before the
//! image was taken still sits in free blocks, where no scan of the directory
//! tree can see it, and virt-sysprep ships it (its manual says to run
//! virt-sparsify afterwards). So by default every block no file owns — per the
//! ext4 block bitmaps, per every FAT copy — becomes a zero range in the overlay:
//! nothing is read or written for it, and it becomes a hole in the output,
//! which also makes the output smaller. Filesystem metadata is not touched, so
//! this cannot make a filesystem inconsistent. `--keep-free-space` turns it off.

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
        FsType::Directory => Ok(0),
    }
}

fn ext4<D: WriteAt + Clone>(dev: D) -> anyhow::Result<u64> {
    let fs = vmscrub_ext4::Ext4::open(dev.clone())?;
    let sb = fs.superblock();
    let bs = u64::from(fs.block_size());
    let per = u64::from(sb.blocks_per_group);
    let first = u64::from(sb.first_data_block);
    let total = sb.blocks_count;
    let mut zeroed = 0u64;
    let mut run: Option<(u64, u64)> = None;
    let mut flush = |run: &mut Option<(u64, u64)>| -> anyhow::Result<()> {
        if let Some((a, b)) = run.take() {
            dev.zero_range(a * bs..b * bs)?;
            zeroed += (b - a) * bs;
        }
        Ok(())
    };
    for g in 0..sb.group_count() {
        crate::output::check_interrupted()?;
        let g32 = u32::try_from(g)?;
        let bitmap = fs.block_bitmap(g32)?;
        let start = first + g * per;
        let len = per.min(total.saturating_sub(start));
        for i in 0..len {
            let blk = start + i;
            // `i < len <= blocks_per_group`, which is a u32.
            if bitmap.get(i as u32) {
                flush(&mut run)?;
            } else {
                match run.as_mut() {
                    Some((_, b)) if *b == blk => *b += 1,
                    _ => {
                        flush(&mut run)?;
                        run = Some((blk, blk + 1));
                    }
                }
            }
        }
    }
    flush(&mut run)?;
    Ok(zeroed)
}

fn fat<D: WriteAt + Clone>(dev: D) -> anyhow::Result<u64> {
    let fs = vmscrub_fat::FatFs::open(dev.clone())?;
    let g = fs.geometry().clone();
    let mut zeroed = 0u64;
    for r in fs.free_cluster_runs()? {
        crate::output::check_interrupted()?;
        let a = g.cluster_offset(r.start);
        let b = g.cluster_offset(r.end - 1) + u64::from(g.cluster_size);
        dev.zero_range(a..b)?;
        zeroed += b - a;
    }
    Ok(zeroed)
}
