//! A metadata area: a 512-byte `mda_header` (checksum, magic, version, where the
//! area lies, and `raw_locn` slots pointing at metadata text), then a ring
//! buffer of text. Slot 0 is the committed metadata; its text may wrap from the
//! end of the area back to just after the header. Layout per lvm2's
//! lib/format_text/layout.h; reading per format-text.c.

use vmscrub_blockdev::ReadAt;

use crate::error::{Error, Result, io};
use crate::label::DiskLocn;
use crate::le::{INITIAL_CRC, crc, u32_at, u64_at};

/// `FMTT_MAGIC`.
pub const MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// Size of the header at the start of every metadata area.
pub const MDA_HEADER_SIZE: u64 = 512;
/// The largest metadata text read: real VGs use kilobytes; this bounds memory.
pub const MAX_TEXT: u64 = 16 << 20;
/// `RAW_LOCN_IGNORED`: the area is kept but not used (`pvchange --metadataignore`).
pub const RAW_LOCN_IGNORED: u32 = 1;

/// One `raw_locn` slot: text at `offset` from the area's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLocn {
    pub offset: u64,
    pub size: u64,
    pub checksum: u32,
    pub flags: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdaHeader {
    /// Byte offset of the area on the PV (equals the label's `disk_locn`).
    pub start: u64,
    pub size: u64,
    pub version: u32,
    pub raw_locns: Vec<RawLocn>,
}

/// Reads and checks the header of the area at `locn`.
pub fn read_header<D: ReadAt + ?Sized>(dev: &D, locn: DiskLocn) -> Result<MdaHeader> {
    let bad = |reason: String| Error::Mda {
        offset: locn.offset,
        reason,
    };
    if locn.size <= MDA_HEADER_SIZE {
        return Err(bad(format!("the area is only {} bytes", locn.size)));
    }
    let mut h = [0u8; MDA_HEADER_SIZE as usize];
    dev.read_exact_at(&mut h, locn.offset)
        .map_err(io("LVM2 metadata area header"))?;
    if u32_at(&h, 0) != Some(crc(INITIAL_CRC, &h[4..])) {
        return Err(bad("the header checksum does not match".into()));
    }
    if h.get(4..20) != Some(MAGIC) {
        return Err(bad("no metadata area magic".into()));
    }
    let version = u32_at(&h, 20).unwrap_or(0);
    if version != 1 {
        return Err(bad(format!(
            "metadata area version {version} (lvm2 writes 1)"
        )));
    }
    let start = u64_at(&h, 24).unwrap_or(0);
    let size = u64_at(&h, 32).unwrap_or(0);
    if start != locn.offset {
        return Err(bad(format!("the header says the area starts at {start}")));
    }
    if size != locn.size {
        return Err(bad(format!(
            "the header says the area is {size} bytes, the label {}",
            locn.size
        )));
    }
    let mut raw_locns = vec![];
    let mut pos = 40;
    while let (Some(offset), Some(sz), Some(checksum), Some(flags)) = (
        u64_at(&h, pos),
        u64_at(&h, pos + 8),
        u32_at(&h, pos + 16),
        u32_at(&h, pos + 20),
    ) {
        if offset == 0 {
            break;
        }
        raw_locns.push(RawLocn {
            offset,
            size: sz,
            checksum,
            flags,
        });
        pos += 24;
    }
    Ok(MdaHeader {
        start,
        size,
        version,
        raw_locns,
    })
}

/// The committed metadata text of the area (slot 0), checksum verified and the
/// ring buffer's wrap undone. `Ok(None)`: the area holds no metadata (empty or
/// ignored).
pub fn read_text<D: ReadAt + ?Sized>(dev: &D, hdr: &MdaHeader) -> Result<Option<Vec<u8>>> {
    let Some(r) = hdr.raw_locns.first() else {
        return Ok(None);
    };
    if r.flags & RAW_LOCN_IGNORED != 0 || r.size == 0 {
        return Ok(None);
    }
    read_slot(dev, hdr, r).map(Some)
}

/// The text of one slot (also usable for the older copies a caller finds).
pub fn read_slot<D: ReadAt + ?Sized>(dev: &D, hdr: &MdaHeader, r: &RawLocn) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::Mda {
        offset: hdr.start,
        reason,
    };
    let ring = hdr.size - MDA_HEADER_SIZE;
    if r.offset < MDA_HEADER_SIZE || r.offset >= hdr.size {
        return Err(bad(format!(
            "metadata text offset {} is outside the area",
            r.offset
        )));
    }
    if r.size > ring || r.size > MAX_TEXT {
        return Err(bad(format!(
            "metadata text of {} bytes does not fit",
            r.size
        )));
    }
    let first = r.size.min(hdr.size - r.offset);
    let mut text = vec![0u8; r.size as usize];
    let (a, b) = text.split_at_mut(first as usize);
    dev.read_exact_at(a, hdr.start + r.offset)
        .map_err(io("LVM2 metadata text"))?;
    if !b.is_empty() {
        dev.read_exact_at(b, hdr.start + MDA_HEADER_SIZE)
            .map_err(io("LVM2 metadata text (wrapped)"))?;
    }
    let c = crc(INITIAL_CRC, &text);
    if c != r.checksum {
        return Err(bad(format!(
            "metadata text checksum {c:#010x} does not match the header's {:#010x}",
            r.checksum
        )));
    }
    // lvm2 stores the text NUL-terminated; the NUL may be counted.
    while text.last() == Some(&0) {
        text.pop();
    }
    Ok(text)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vmscrub_blockdev::MemDisk;

    /// Writes an mda header at `start` (area of `size`) with one slot holding
    /// `text` at `offset` (wrapping if it must) into `d`.
    pub(crate) fn write_area(d: &mut [u8], start: u64, size: u64, offset: u64, text: &[u8]) {
        let mut h = vec![0u8; 512];
        h[4..20].copy_from_slice(MAGIC);
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[24..32].copy_from_slice(&start.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h[40..48].copy_from_slice(&offset.to_le_bytes());
        h[48..56].copy_from_slice(&(text.len() as u64).to_le_bytes());
        h[56..60].copy_from_slice(&crc(INITIAL_CRC, text).to_le_bytes());
        let c = crc(INITIAL_CRC, &h[4..]);
        h[0..4].copy_from_slice(&c.to_le_bytes());
        let s = start as usize;
        d[s..s + 512].copy_from_slice(&h);
        for (i, &b) in text.iter().enumerate() {
            let mut at = offset + i as u64;
            if at >= size {
                at = at - size + MDA_HEADER_SIZE;
            }
            d[s + at as usize] = b;
        }
    }

    #[test]
    fn reads_plain_and_wrapped_text() {
        let locn = DiskLocn {
            offset: 4096,
            size: 2048,
        };
        let text = b"vg { seqno = 1 }\n".repeat(20);
        for offset in [512u64, 1024, 2000] {
            let mut d = vec![0u8; 8192];
            write_area(&mut d, 4096, 2048, offset, &text);
            let m = MemDisk::new(d);
            let h = read_header(&m, locn).unwrap();
            assert_eq!(read_text(&m, &h).unwrap().unwrap(), text, "{offset}");
        }
    }

    #[test]
    fn corrupt_areas_are_named() {
        let locn = DiskLocn {
            offset: 4096,
            size: 2048,
        };
        let mut d = vec![0u8; 8192];
        write_area(&mut d, 4096, 2048, 512, b"hello");
        let mut flipped = d.clone();
        flipped[4096 + 512] ^= 1;
        let m = MemDisk::new(flipped);
        let h = read_header(&m, locn).unwrap();
        assert!(
            read_text(&m, &h)
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
        let mut hdr = d.clone();
        hdr[4096 + 30] ^= 1;
        assert!(read_header(&MemDisk::new(hdr), locn).is_err());
        let short = MemDisk::new(d[..4200].to_vec());
        assert!(read_header(&short, locn).is_err());
        let other = DiskLocn {
            offset: 4096,
            size: 4096,
        };
        assert!(read_header(&MemDisk::new(d), other).is_err());
    }
}

/// What a metadata area's ring buffer still holds besides the committed text:
/// lvm2 writes each new version after the previous one and only moves the
/// pointer, so older versions (with removed LVs' names, earlier hosts) stay
/// until overwritten.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// `seqno` of every copy found in the ring, committed one included, sorted.
    pub seqnos: Vec<u64>,
    /// Every distinct `creation_host` value found in any copy, sorted.
    pub hosts: Vec<String>,
}

impl History {
    /// Adds what another area (or another PV) holds.
    pub fn merge(&mut self, other: History) {
        self.seqnos.extend(other.seqnos);
        self.hosts.extend(other.hosts);
        self.seqnos.sort_unstable();
        self.seqnos.dedup();
        self.hosts.sort();
        self.hosts.dedup();
    }
}

/// Reads the whole ring buffer of the area (bounded by [`MAX_TEXT`]) and lists
/// what its copies say. A heuristic over text fragments: it reports, never
/// decides anything.
pub fn history<D: ReadAt + ?Sized>(dev: &D, hdr: &MdaHeader) -> Result<History> {
    let len = (hdr.size - MDA_HEADER_SIZE).min(MAX_TEXT);
    let mut ring = vec![0u8; len as usize];
    dev.read_exact_at(&mut ring, hdr.start + MDA_HEADER_SIZE)
        .map_err(io("LVM2 metadata ring buffer"))?;
    let mut h = History::default();
    for at in find_all(&ring, b"\nseqno = ") {
        let digits: Vec<u8> = ring[at + 9..]
            .iter()
            .take(20)
            .take_while(|c| c.is_ascii_digit())
            .copied()
            .collect();
        if let Some(n) = std::str::from_utf8(&digits)
            .ok()
            .and_then(|s| s.parse().ok())
        {
            h.seqnos.push(n);
        }
    }
    for at in find_all(&ring, b"creation_host = \"") {
        let v: Vec<u8> = ring[at + 17..]
            .iter()
            .take(256)
            .take_while(|&&c| c != b'"' && c != b'\n')
            .copied()
            .collect();
        h.hosts.push(String::from_utf8_lossy(&v).into_owned());
    }
    h.seqnos.sort_unstable();
    h.seqnos.dedup();
    h.hosts.sort();
    h.hosts.dedup();
    Ok(h)
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod history_tests {
    use super::tests::write_area;
    use super::*;
    use vmscrub_blockdev::MemDisk;

    #[test]
    fn finds_older_copies_and_hosts() {
        let mut d = vec![0u8; 8192];
        let old = b"vg {\nseqno = 3\n}\ncreation_host = \"laptop\"\n";
        d[4096 + 1200..4096 + 1200 + old.len()].copy_from_slice(old);
        write_area(
            &mut d,
            4096,
            4096,
            512,
            b"vg {\nseqno = 4\n}\ncreation_host = \"build7\"\n",
        );
        let m = MemDisk::new(d);
        let h = history(
            &m,
            &read_header(
                &m,
                DiskLocn {
                    offset: 4096,
                    size: 4096,
                },
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(h.seqnos, [3, 4]);
        assert_eq!(h.hosts, ["build7", "laptop"]);
    }
}
