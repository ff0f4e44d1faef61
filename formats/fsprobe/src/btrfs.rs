//! btrfs primary superblock at 64 KiB.

use vmscrub_blockdev::ReadAt;

use crate::util::{label, le32, read_opt, uuid};
use crate::{Error, Filesystem, Kind};

const SB_OFFSET: u64 = 0x10000;

pub(crate) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<Filesystem>, Error> {
    let Some(sb) = read_opt(dev, SB_OFFSET, 0x22B, "btrfs superblock")? else {
        return Ok(None);
    };
    if sb.get(0x40..0x48) != Some(b"_BHRfS_M") {
        return Ok(None);
    }
    let sectorsize = le32(&sb, 0x90);
    Ok(Some(Filesystem {
        kind: Kind::Btrfs,
        label: label(sb.get(0x12B..0x22B).unwrap_or_default()),
        uuid: uuid(sb.get(0x20..0x30).unwrap_or_default()),
        version: None,
        block_size: sectorsize.is_power_of_two().then_some(sectorsize),
        ..Filesystem::unknown()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    #[test]
    fn reads_label_and_fsid() {
        let mut d = vec![0u8; 0x11000];
        let s = 0x10000;
        d[s + 0x20..s + 0x30].copy_from_slice(&[0xd2; 16]);
        d[s + 0x40..s + 0x48].copy_from_slice(b"_BHRfS_M");
        d[s + 0x90..s + 0x94].copy_from_slice(&4096u32.to_le_bytes());
        d[s + 0x12B..s + 0x132].copy_from_slice(b"btrdata");
        let fs = probe(&MemDisk::new(d.clone())).unwrap().unwrap();
        assert_eq!(
            (fs.kind, fs.label.as_deref(), fs.block_size),
            (Kind::Btrfs, Some("btrdata"), Some(4096))
        );
        assert!(
            probe(&MemDisk::new(d[..0x10100].to_vec()))
                .unwrap()
                .is_none(),
            "truncated superblock"
        );
    }
}
