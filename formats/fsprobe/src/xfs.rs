//! XFS superblock (big-endian, at byte 0). The magic alone is four letters, so the
//! geometry is checked the way blkid does before we believe it.

use vmscrub_blockdev::ReadAt;

use crate::util::{be16, be32, be64, label, read_opt, uuid};
use crate::{Error, Filesystem, Kind};

pub(crate) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<Filesystem>, Error> {
    let Some(sb) = read_opt(dev, 0, 512, "XFS superblock")? else {
        return Ok(None);
    };
    if sb.get(0..4) != Some(b"XFSB") || !sane(&sb) {
        return Ok(None);
    }
    Ok(Some(Filesystem {
        kind: Kind::Xfs,
        label: label(sb.get(108..120).unwrap_or_default()),
        uuid: uuid(sb.get(32..48).unwrap_or_default()),
        version: None,
        block_size: Some(be32(&sb, 4)),
        ..Filesystem::unknown()
    }))
}

fn sane(sb: &[u8]) -> bool {
    let blocksize = u64::from(be32(sb, 4));
    let dblocks = be64(sb, 8);
    let rextsize = u64::from(be32(sb, 80));
    let agblocks = u64::from(be32(sb, 84));
    let agcount = u64::from(be32(sb, 88));
    let sectsize = u64::from(be16(sb, 102));
    let inodesize = u64::from(be16(sb, 104));
    let (blocklog, sectlog, inodelog, inopblog) = (sb[120], sb[121], sb[122], sb[123]);
    let imax_pct = sb[127];
    let pow = |log: u8| 1u64.checked_shl(u32::from(log)).unwrap_or(0);
    agcount > 0
        && (9..=15).contains(&sectlog)
        && sectsize == pow(sectlog)
        && (9..=16).contains(&blocklog)
        && blocksize == pow(blocklog)
        && (8..=11).contains(&inodelog)
        && inodesize == pow(inodelog)
        && blocklog.checked_sub(inodelog) == Some(inopblog)
        && (4096..=1 << 30).contains(&(rextsize * blocksize))
        && imax_pct <= 100
        && dblocks > 0
        && dblocks <= agcount * agblocks
        && dblocks >= (agcount - 1) * agblocks + 64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    pub fn sb() -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        d[0..4].copy_from_slice(b"XFSB");
        d[4..8].copy_from_slice(&4096u32.to_be_bytes());
        d[8..16].copy_from_slice(&1000u64.to_be_bytes());
        d[32..48].copy_from_slice(&[0x36; 16]);
        d[80..84].copy_from_slice(&1u32.to_be_bytes());
        d[84..88].copy_from_slice(&250u32.to_be_bytes());
        d[88..92].copy_from_slice(&4u32.to_be_bytes());
        d[102..104].copy_from_slice(&512u16.to_be_bytes());
        d[104..106].copy_from_slice(&512u16.to_be_bytes());
        d[108..115].copy_from_slice(b"xfsdata");
        d[120..124].copy_from_slice(&[12, 9, 9, 3]);
        d[127] = 25;
        d
    }

    #[test]
    fn valid_and_insane_superblocks() {
        let fs = probe(&MemDisk::new(sb())).unwrap().unwrap();
        assert_eq!(
            (fs.kind, fs.label.as_deref(), fs.block_size),
            (Kind::Xfs, Some("xfsdata"), Some(4096))
        );
        assert_eq!(
            fs.uuid.as_deref(),
            Some("36363636-3636-3636-3636-363636363636")
        );
        let mut d = sb();
        d[88..92].fill(0); // no allocation groups
        assert!(probe(&MemDisk::new(d)).unwrap().is_none());
        let mut d = sb();
        d[120] = 200; // shift overflow must not panic
        assert!(probe(&MemDisk::new(d)).unwrap().is_none());
    }
}
