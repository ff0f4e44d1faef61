//! Swap volumes: paged-out memory and hibernation images hold whatever the
//! build's processes had in memory. A swap partition or logical volume is never
//! copied as it is: it gets the header `mkswap -U UUID -L LABEL` would write
//! (same UUID, label and page size, so the guest's fstab still finds it) and
//! every other page slot is zeroed, which the output writers turn into holes.
//! Nothing goes to the recovery archive: memory pages are not files to restore.

use anyhow::{Context, Result};
use serde::Serialize;
use vmscrub_blockdev::WriteAt;
use vmscrub_fsprobe::Kind;
use vmscrub_swap::Header;

/// One swap volume the scrub re-initialized.
#[derive(Debug, Clone, Serialize)]
pub struct SwapReset {
    /// `partition 3`, `whole disk`, …
    pub volume: String,
    pub uuid: String,
    pub label: String,
    pub page_size: u64,
    pub pages: u64,
    /// Set when a hibernation image had replaced the swap signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hibernation: Option<&'static str>,
    /// Bytes after the header page made to read as zeros.
    pub zeroed_bytes: u64,
}

/// Re-initializes `dev` if the probe called it swap (`kind`) and it holds a
/// swap header; `Ok(None)` otherwise. Only the probe's verdict counts: a
/// filesystem can hold the bytes of a swap or hibernation signature at a page's
/// end in a file's data, and zeroing it on that evidence would destroy it.
/// A swap header that cannot be trusted (unknown version, a volume too small
/// for it) refuses the scrub: shipping it unexamined could ship memory.
pub fn reinit<D: WriteAt>(volume: &str, kind: Kind, dev: &D) -> Result<Option<SwapReset>> {
    if kind != Kind::Swap {
        return Ok(None);
    }
    let Some(h) = Header::find(dev).with_context(|| format!("{volume}: swap space"))? else {
        return Ok(None);
    };
    let size = dev.size();
    let page = h.fresh_page(size);
    dev.zero_range(h.page_size..size)
        .and_then(|()| dev.write_all_at(&page, 0))
        .with_context(|| format!("{volume}: re-initializing the swap space"))?;
    Ok(Some(SwapReset {
        volume: volume.to_string(),
        uuid: h.uuid_string(),
        label: h.label_string(),
        page_size: h.page_size,
        pages: h.pages(size),
        hibernation: h.hibernation,
        zeroed_bytes: size - h.page_size,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use vmscrub_blockdev::MemDisk;

    #[test]
    fn a_swap_volume_keeps_its_identity_and_loses_its_pages() {
        let ps = 4096usize;
        let mut d = vec![0x5au8; 16 * ps];
        d[..ps].fill(0);
        d[1024..1028].copy_from_slice(&1u32.to_le_bytes());
        d[1028..1032].copy_from_slice(&15u32.to_le_bytes());
        d[1036..1052].copy_from_slice(&[0x11; 16]);
        d[1052..1056].copy_from_slice(b"swp0");
        d[ps - 10..ps].copy_from_slice(b"S1SUSPEND\0");
        // The probe's verdict decides: the same bytes on a volume it calls
        // something else (a file holding the signature text) are not touched.
        let m = MemDisk::new(d.clone());
        assert!(reinit("partition 2", Kind::Ext4, &m).unwrap().is_none());
        assert_eq!(m.to_vec(), d);
        let r = reinit("partition 2", Kind::Swap, &m).unwrap().unwrap();
        assert_eq!(r.hibernation, Some("swsusp (S1SUSPEND)"));
        assert_eq!((r.label.as_str(), r.pages), ("swp0", 16));
        let out = m.to_vec();
        assert_eq!(&out[ps - 10..ps], b"SWAPSPACE2");
        assert_eq!(&out[1052..1056], b"swp0");
        assert!(out[ps..].iter().all(|&b| b == 0));
        let zeros = MemDisk::zeroed(1 << 20);
        assert!(reinit("partition 1", Kind::Swap, &zeros).unwrap().is_none());
    }
}
