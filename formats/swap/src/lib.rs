//! Linux swap space: the header in the first page (util-linux `mkswap.c`, the
//! kernel's `union swap_header` in `include/linux/swap.h`) and the hibernation
//! signatures that replace its magic while a suspended image is stored
//! (`kernel/power/swap.c` `struct swsusp_header`, uswsusp, TuxOnIce).
//!
//! Paged-out memory and hibernation images hold whatever the build's processes
//! had in memory: keys, tokens, passwords. A swap volume is therefore never
//! copied as it is; the scrub writes a fresh header — byte for byte the first
//! page `mkswap -U UUID -L LABEL -p PAGESIZE` writes — and zeroes every page slot,
//! so the guest's fstab (`UUID=`/`LABEL=`) still finds its swap.

use std::io;

use vmscrub_blockdev::ReadAt;

/// Page sizes mkswap may have used (the architecture's), as blkid tries them.
pub const PAGE_SIZES: [u64; 5] = [4096, 8192, 16384, 32768, 65536];

/// The magic of a version-1 swap header, in the last 10 bytes of the first page.
pub const MAGIC: &[u8; 10] = b"SWAPSPACE2";

/// Where the version-1 fields start: after the 1024 "boot bits".
const INFO: u64 = 1024;

/// Signatures a hibernating kernel (or tool) writes in place of the magic.
const HIBERNATION: &[(&[u8], &str)] = &[
    (b"S1SUSPEND", "swsusp (S1SUSPEND)"),
    (b"S2SUSPEND", "swsusp (S2SUSPEND)"),
    (b"ULSUSPEND", "uswsusp (ULSUSPEND)"),
    (b"LINHIB0001", "hibernation (LINHIB0001)"),
];
/// TuxOnIce keeps the swap magic and puts its own at the start of the page.
const TUXONICE: &[u8] = b"\xed\xc3\x02\xe9\x98\x56\xe5\x0c";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the swap header at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error(
        "swap header of an unknown version {version} (page size {page_size}); only version 1 \
         (mkswap since Linux 2.2) is rewritten"
    )]
    Version { version: u32, page_size: u64 },
    #[error("the swap volume of {size} bytes is smaller than ten {page_size}-byte pages")]
    TooSmall { size: u64, page_size: u64 },
}

/// A swap header as found on a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub page_size: u64,
    /// Fields are big-endian (mkswap ran on a big-endian machine).
    pub big_endian: bool,
    pub last_page: u32,
    pub bad_pages: u32,
    pub uuid: [u8; 16],
    pub label: [u8; 16],
    /// What replaced the magic when the volume holds a hibernation image.
    pub hibernation: Option<&'static str>,
}

fn read(dev: &(impl ReadAt + ?Sized), offset: u64, len: usize) -> Result<Vec<u8>, Error> {
    let mut b = vec![0u8; len];
    dev.read_exact_at(&mut b, offset)
        .map_err(|source| Error::Io { offset, source })?;
    Ok(b)
}

fn field(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    if big_endian {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

/// The signature at the end of a page of size `ps`: the swap magic, or which
/// hibernation image replaced it.
fn signature(tail: &[u8], head: &[u8]) -> Option<Option<&'static str>> {
    if tail == MAGIC {
        return Some((head == TUXONICE).then_some("TuxOnIce"));
    }
    HIBERNATION
        .iter()
        .find(|(sig, _)| tail.starts_with(sig))
        .map(|&(_, name)| Some(name))
}

impl Header {
    /// Finds a swap header on `dev`, trying every page size. `Ok(None)`: no swap
    /// signature (a version-0 `SWAP-SPACE` header counts as none: nothing has
    /// written one since Linux 2.4, and it carries no UUID to keep).
    pub fn find(dev: &(impl ReadAt + ?Sized)) -> Result<Option<Header>, Error> {
        let head = read(dev, 0, TUXONICE.len().min(dev.size() as usize))?;
        for ps in PAGE_SIZES {
            if dev.size() < ps {
                break;
            }
            let tail = read(dev, ps - 10, 10)?;
            let Some(hibernation) = signature(&tail, &head) else {
                continue;
            };
            if dev.size() < 10 * ps {
                return Err(Error::TooSmall {
                    size: dev.size(),
                    page_size: ps,
                });
            }
            let info = read(dev, INFO, 44)?;
            let le = field(&info, 0, false);
            let big_endian = le != 1 && le.swap_bytes() == 1;
            if le != 1 && !big_endian {
                return Err(Error::Version {
                    version: le,
                    page_size: ps,
                });
            }
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(&info[12..28]);
            let mut label = [0u8; 16];
            label.copy_from_slice(&info[28..44]);
            return Ok(Some(Header {
                page_size: ps,
                big_endian,
                last_page: field(&info, 4, big_endian),
                bad_pages: field(&info, 8, big_endian),
                uuid,
                label,
                hibernation,
            }));
        }
        Ok(None)
    }

    /// Page slots of a volume of `size` bytes, header page included.
    pub fn pages(&self, size: u64) -> u64 {
        size / self.page_size
    }

    /// The first page `mkswap -U UUID -L LABEL -p PAGE_SIZE` writes on a volume
    /// of `size` bytes: zeros, version 1, the last page, no bad pages, the UUID
    /// and label, the magic. Bad-page lists are not carried over (mkswap only
    /// writes one with `-c`, which checks the device it runs on).
    pub fn fresh_page(&self, size: u64) -> Vec<u8> {
        let ps = self.page_size as usize;
        let mut p = vec![0u8; ps];
        let last = u32::try_from(self.pages(size).saturating_sub(1)).unwrap_or(u32::MAX);
        let put = |p: &mut [u8], at: usize, v: u32| {
            let b = if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            p[at..at + 4].copy_from_slice(&b);
        };
        let i = INFO as usize;
        put(&mut p, i, 1);
        put(&mut p, i + 4, last);
        put(&mut p, i + 8, 0);
        p[i + 12..i + 28].copy_from_slice(&self.uuid);
        p[i + 28..i + 44].copy_from_slice(&self.label);
        p[ps - 10..].copy_from_slice(MAGIC);
        p
    }

    /// The UUID in its usual text form.
    pub fn uuid_string(&self) -> String {
        let h: Vec<String> = self.uuid.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            h[0..4].concat(),
            h[4..6].concat(),
            h[6..8].concat(),
            h[8..10].concat(),
            h[10..16].concat()
        )
    }

    /// The label up to its first NUL, lossily as text.
    pub fn label_string(&self) -> String {
        let end = self.label.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.label[..end]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use vmscrub_blockdev::MemDisk;

    fn swap(ps: usize, size: usize, tail: &[u8]) -> Vec<u8> {
        let mut d = vec![0xa5u8; size];
        d[..ps].fill(0);
        d[1024..1028].copy_from_slice(&1u32.to_le_bytes());
        d[1028..1032].copy_from_slice(&((size / ps - 1) as u32).to_le_bytes());
        d[1036..1052].copy_from_slice(&[7u8; 16]);
        d[1052..1058].copy_from_slice(b"myswap");
        d[ps - 10..ps].copy_from_slice(tail);
        d
    }

    #[test]
    fn finds_every_page_size_and_hibernation() {
        for ps in PAGE_SIZES {
            let d = MemDisk::new(swap(ps as usize, 12 * ps as usize, MAGIC));
            let h = Header::find(&d).unwrap().unwrap();
            assert_eq!(
                (h.page_size, h.hibernation, h.label_string().as_str()),
                (ps, None, "myswap")
            );
            assert_eq!(h.fresh_page(d.size()).len(), ps as usize);
        }
        let d = MemDisk::new(swap(4096, 16 * 4096, b"S1SUSPEND\0"));
        let h = Header::find(&d).unwrap().unwrap();
        assert_eq!(h.hibernation, Some("swsusp (S1SUSPEND)"));
        assert_eq!(h.uuid, [7u8; 16]);
        let page = h.fresh_page(d.size());
        assert_eq!(&page[4086..], MAGIC);
        assert!(page[..1024].iter().all(|&b| b == 0));
    }

    #[test]
    fn hostile_headers_are_named_not_trusted() {
        assert!(
            Header::find(&MemDisk::new(vec![0u8; 1 << 16]))
                .unwrap()
                .is_none()
        );
        assert!(Header::find(&MemDisk::new(vec![])).unwrap().is_none());
        let mut d = swap(4096, 16 * 4096, MAGIC);
        d[1024..1028].copy_from_slice(&7u32.to_le_bytes());
        assert!(matches!(
            Header::find(&MemDisk::new(d)),
            Err(Error::Version { version: 7, .. })
        ));
        let small = swap(4096, 4 * 4096, MAGIC);
        assert!(matches!(
            Header::find(&MemDisk::new(small)),
            Err(Error::TooSmall { .. })
        ));
        // Every truncation of a real header answers, never panics.
        let full = swap(4096, 12 * 4096, MAGIC);
        for n in (0..full.len()).step_by(511) {
            let _ = Header::find(&MemDisk::new(full[..n].to_vec()));
        }
    }
}
