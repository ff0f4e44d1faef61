//! Linux swap: the signature sits in the last 10 bytes of the first page, and the
//! page size depends on the architecture that ran mkswap, so each size blkid knows
//! is tried.

use vmscrub_blockdev::ReadAt;

use crate::util::{label, le32, read_opt, uuid};
use crate::{Error, Filesystem, Kind};

const PAGE_SIZES: [u64; 5] = [4096, 8192, 16384, 32768, 65536];
/// TuxOnIce hibernation images keep a valid swap signature and add their own.
const TOI_MAGIC: &[u8] = b"\xed\xc3\x02\xe9\x98\x56\xe5\x0c";
/// Signatures a hibernating kernel or tool writes over the swap magic (blkid's
/// swsuspend probe); the version-1 fields before them are intact.
const HIBERNATION: &[&[u8]] = &[b"S1SUSPEND", b"S2SUSPEND", b"ULSUSPEND", b"LINHIB0001"];

pub(crate) fn probe<D: ReadAt + ?Sized>(dev: &D) -> Result<Option<Filesystem>, Error> {
    // blkid wants at least ten pages.
    if dev.size() < 10 * 4096 {
        return Ok(None);
    }
    for ps in PAGE_SIZES {
        let Some(magic) = read_opt(dev, ps - 10, 10, "swap signature")? else {
            return Ok(None);
        };
        let hibernation = HIBERNATION.iter().find(|s| magic.starts_with(s));
        let v1 = magic == b"SWAPSPACE2" || hibernation.is_some();
        if !v1 && magic != b"SWAP-SPACE" {
            continue;
        }
        let toi = read_opt(dev, 0, 8, "swap header")?.is_some_and(|b| b == TOI_MAGIC);
        let warnings = match (hibernation, toi) {
            (Some(sig), _) => vec![format!(
                "holds a hibernation image ({}): the memory of a suspended system",
                String::from_utf8_lossy(sig)
            )],
            (None, true) => {
                vec!["holds a TuxOnIce hibernation image: the memory of a suspended system".into()]
            }
            (None, false) => vec![],
        };
        if !v1 {
            return Ok(Some(Filesystem {
                kind: Kind::Swap,
                version: Some("0".into()),
                ..Filesystem::unknown()
            }));
        }
        let Some(h) = read_opt(dev, 1024, 512, "swap header")? else {
            return Ok(None);
        };
        let version = le32(&h, 0);
        if (version != 1 && version.swap_bytes() != 1) || le32(&h, 4) == 0 {
            continue;
        }
        // blkid trusts label and UUID only if this padding is clean.
        let clean = le32(&h, 44 + 32 * 4) == 0 && le32(&h, 44 + 33 * 4) == 0;
        let (lbl, id) = if clean {
            (
                label(h.get(28..44).unwrap_or_default()),
                uuid(h.get(12..28).unwrap_or_default()),
            )
        } else {
            (None, None)
        };
        return Ok(Some(Filesystem {
            kind: Kind::Swap,
            label: lbl,
            uuid: id,
            version: Some("1".into()),
            block_size: u32::try_from(ps).ok(),
            warnings,
            ..Filesystem::unknown()
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    fn swap(ps: usize) -> Vec<u8> {
        let mut d = vec![0u8; 64 * 1024];
        d[ps - 10..ps].copy_from_slice(b"SWAPSPACE2");
        d[1024] = 1;
        d[1028] = 15;
        d[1036..1052].copy_from_slice(&[0x2f; 16]);
        d[1052..1057].copy_from_slice(b"swap0");
        d
    }

    #[test]
    fn finds_v1_at_each_page_size() {
        for ps in [4096, 16384] {
            let fs = probe(&MemDisk::new(swap(ps))).unwrap().unwrap();
            assert_eq!(
                (fs.kind, fs.label.as_deref(), fs.version.as_deref()),
                (Kind::Swap, Some("swap0"), Some("1"))
            );
            assert_eq!(fs.block_size, Some(ps as u32));
        }
        let mut d = swap(4096);
        d[4086..4096].copy_from_slice(b"S1SUSPEND\0");
        let fs = probe(&MemDisk::new(d.clone())).unwrap().unwrap();
        assert_eq!((fs.kind, fs.label.as_deref()), (Kind::Swap, Some("swap0")));
        assert!(fs.warnings[0].contains("hibernation image (S1SUSPEND)"));
        d[..8].copy_from_slice(TOI_MAGIC);
        d[4086..4096].copy_from_slice(b"SWAPSPACE2");
        assert!(probe(&MemDisk::new(d)).unwrap().unwrap().warnings[0].contains("TuxOnIce"));
        let mut d = swap(4096);
        d[1028] = 0; // last_page 0: not swap
        assert!(probe(&MemDisk::new(d)).unwrap().is_none());
        assert!(
            probe(&MemDisk::new(swap(4096)[..20000].to_vec()))
                .unwrap()
                .is_none(),
            "too small"
        );
    }
}
