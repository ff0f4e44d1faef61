//! LUKS1 and LUKS2 headers. LUKS2 keeps a second header copy; when the first is
//! wiped blkid still finds the volume through the second, and so do we.

use vmscrub_blockdev::ReadAt;

use crate::util::{be16, be64, label, read_opt};
use crate::{Error, Filesystem, Kind};

const MAGIC: &[u8] = b"LUKS\xba\xbe";
const MAGIC2: &[u8] = b"SKUL\xba\xbe";
/// Where cryptsetup may put the LUKS2 secondary header.
const SECONDARY: [u64; 9] = [
    0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000,
];

pub(crate) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<Filesystem>, Error> {
    let Some(h) = read_opt(dev, 0, 512, "LUKS header")? else {
        return Ok(None);
    };
    if let Some(fs) = parse(&h, MAGIC, 0) {
        return Ok(Some(fs));
    }
    for off in SECONDARY {
        let Some(h) = read_opt(dev, off, 512, "LUKS2 secondary header")? else {
            break;
        };
        if let Some(mut fs) = parse(&h, MAGIC2, off) {
            fs.warnings.push(format!(
                "LUKS2 primary header is missing; found the secondary header at byte {off}"
            ));
            return Ok(Some(fs));
        }
    }
    Ok(None)
}

fn parse(h: &[u8], magic: &[u8], offset: u64) -> Option<Filesystem> {
    if h.get(0..6) != Some(magic) {
        return None;
    }
    let version = be16(h, 6);
    if version == 2 && be64(h, 256) != offset {
        return None;
    }
    // The UUID is stored as text (40 bytes, NUL-padded) in both versions.
    let uuid = label(h.get(168..208).unwrap_or_default());
    let lbl = if version == 2 {
        label(h.get(24..72).unwrap_or_default())
    } else {
        None
    };
    Some(Filesystem {
        kind: Kind::Luks,
        label: lbl,
        uuid,
        version: Some(version.to_string()),
        ..Filesystem::unknown()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    #[test]
    fn v1_v2_and_secondary() {
        let mut d = vec![0u8; 0x8000];
        d[0..6].copy_from_slice(MAGIC);
        d[7] = 1;
        d[168..172].copy_from_slice(b"abcd");
        let fs = probe(&MemDisk::new(d.clone())).unwrap().unwrap();
        assert_eq!(
            (fs.kind, fs.version.as_deref(), fs.uuid.as_deref()),
            (Kind::Luks, Some("1"), Some("abcd"))
        );
        d[7] = 2;
        d[24..29].copy_from_slice(b"vault");
        let fs = probe(&MemDisk::new(d.clone())).unwrap().unwrap();
        assert_eq!(
            (fs.version.as_deref(), fs.label.as_deref()),
            (Some("2"), Some("vault"))
        );
        let mut d2 = vec![0u8; 0x8000];
        d2[0x4000..0x4200].copy_from_slice(&d[..0x200]);
        d2[0x4000..0x4006].copy_from_slice(MAGIC2);
        d2[0x4000 + 256..0x4000 + 264].copy_from_slice(&0x4000u64.to_be_bytes());
        let fs = probe(&MemDisk::new(d2)).unwrap().unwrap();
        assert_eq!(fs.kind, Kind::Luks);
        assert_eq!(fs.warnings.len(), 1);
    }
}
