//! The 512-byte `SparseExtentHeader` that starts every hosted sparse and
//! stream-optimized extent (and, in a stream, is repeated as the footer).
//!
//! Parsing keeps every field as found so a writer can round-trip it; [`validate`]
//! is a separate step that checks the fields against each other and the file size
//! and derives the layout the reader works with, bounding everything an attacker
//! controls before anything is allocated from it.
//!
//! [`validate`]: SparseExtentHeader::validate

use crate::error::{Result, VmdkError};

pub const SECTOR: u64 = 512;
/// `KDMV` as it appears on disk (the spec's little-endian `0x564d444b`).
pub const MAGIC: [u8; 4] = *b"KDMV";
/// The old VMware 3 / ESX 2 sparse format.
pub const COWD_MAGIC: [u8; 4] = *b"COWD";
/// gdOffset of a stream whose grain directory is only known from the footer.
pub const GD_AT_END: u64 = u64::MAX;

pub const FLAG_NEWLINE_TEST: u32 = 1 << 0;
pub const FLAG_REDUNDANT_GT: u32 = 1 << 1;
pub const FLAG_ZERO_GRAIN_GTE: u32 = 1 << 2;
pub const FLAG_COMPRESSED: u32 = 1 << 16;
pub const FLAG_MARKERS: u32 = 1 << 17;

pub const COMPRESSION_NONE: u16 = 0;
pub const COMPRESSION_DEFLATE: u16 = 1;

/// Bounds on image-supplied geometry. The spec fixes numGTEsPerGT at 512 and grains
/// at a power of two of at least 8 sectors; we accept a little more than VMware
/// writes, but never so much that one grain or one table is an unreasonable
/// allocation.
pub const MIN_GRAIN_SECTORS: u64 = 8;
pub const MAX_GRAIN_SECTORS: u64 = 1 << 15; // 16 MiB
pub const MAX_GTES_PER_GT: u32 = 4096;
/// The grain directory is read whole at open; qemu uses the same limit.
pub const MAX_GD_ENTRIES: u64 = 32 << 20;
/// An embedded descriptor larger than this is not a descriptor.
pub const MAX_DESCRIPTOR_SECTORS: u64 = 2048;

/// The header fields exactly as stored (little-endian on disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseExtentHeader {
    pub version: u32,
    pub flags: u32,
    /// Virtual size of this extent, in sectors.
    pub capacity: u64,
    /// Grain size in sectors.
    pub grain_size: u64,
    pub descriptor_offset: u64,
    pub descriptor_size: u64,
    pub num_gtes_per_gt: u32,
    pub rgd_offset: u64,
    pub gd_offset: u64,
    /// Sectors of metadata before the first grain ("overHead").
    pub overhead: u64,
    pub unclean_shutdown: bool,
    /// The four line-end check characters: '\n', ' ', '\r', '\n' when intact.
    pub newline_chars: [u8; 4],
    pub compress_algorithm: u16,
}

/// What [`SparseExtentHeader::validate`] derives: everything the reader needs, in
/// bytes, already bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseLayout {
    pub capacity_bytes: u64,
    pub grain_bytes: u64,
    pub gtes_per_gt: u32,
    /// Number of grain-directory entries (grain tables) covering the capacity.
    pub gd_entries: u64,
    pub compressed: bool,
    pub markers: bool,
    pub zero_grain_gte: bool,
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl SparseExtentHeader {
    /// The standard line-end check bytes.
    pub const NEWLINE_CHARS: [u8; 4] = [b'\n', b' ', b'\r', b'\n'];

    /// Parses the first sector of an extent. Returns `None` when the magic is not
    /// `KDMV`, so callers can try other formats.
    pub fn parse(sector: &[u8; 512]) -> Option<Self> {
        if sector[0..4] != MAGIC {
            return None;
        }
        let b = &sector[..];
        Some(Self {
            version: le32(b, 4),
            flags: le32(b, 8),
            capacity: le64(b, 12),
            grain_size: le64(b, 20),
            descriptor_offset: le64(b, 28),
            descriptor_size: le64(b, 36),
            num_gtes_per_gt: le32(b, 44),
            rgd_offset: le64(b, 48),
            gd_offset: le64(b, 56),
            overhead: le64(b, 64),
            unclean_shutdown: b[72] != 0,
            newline_chars: [b[73], b[74], b[75], b[76]],
            compress_algorithm: u16::from_le_bytes([b[77], b[78]]),
        })
    }

    /// The on-disk sector (padding zeroed).
    pub fn serialize(&self) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[0..4].copy_from_slice(&MAGIC);
        s[4..8].copy_from_slice(&self.version.to_le_bytes());
        s[8..12].copy_from_slice(&self.flags.to_le_bytes());
        s[12..20].copy_from_slice(&self.capacity.to_le_bytes());
        s[20..28].copy_from_slice(&self.grain_size.to_le_bytes());
        s[28..36].copy_from_slice(&self.descriptor_offset.to_le_bytes());
        s[36..44].copy_from_slice(&self.descriptor_size.to_le_bytes());
        s[44..48].copy_from_slice(&self.num_gtes_per_gt.to_le_bytes());
        s[48..56].copy_from_slice(&self.rgd_offset.to_le_bytes());
        s[56..64].copy_from_slice(&self.gd_offset.to_le_bytes());
        s[64..72].copy_from_slice(&self.overhead.to_le_bytes());
        s[72] = u8::from(self.unclean_shutdown);
        s[73..77].copy_from_slice(&self.newline_chars);
        s[77..79].copy_from_slice(&self.compress_algorithm.to_le_bytes());
        s
    }

    pub fn compressed(&self) -> bool {
        self.compress_algorithm == COMPRESSION_DEFLATE
    }

    pub fn has_markers(&self) -> bool {
        self.flags & FLAG_MARKERS != 0
    }

    /// Checks every field that sizes or locates something, against the size of the
    /// file the header came from. `what` names the extent in errors. The gdOffset is
    /// checked by the caller, which knows whether a footer replaces it.
    pub fn validate(&self, what: &str, file_size: u64) -> Result<SparseLayout> {
        let bad = |detail: String| {
            VmdkError::corrupt(format!("sparse extent header of {what}"), Some(0), detail)
        };
        if !(1..=3).contains(&self.version) {
            return Err(VmdkError::Unsupported(format!(
                "sparse extent {what} has header version {} (only 1, 2 and 3 exist)",
                self.version
            )));
        }
        if self.flags & FLAG_NEWLINE_TEST != 0 && self.newline_chars != Self::NEWLINE_CHARS {
            return Err(bad(format!(
                "line-end check bytes are {:02x?}, expected 0a 20 0d 0a: the file was probably transferred in text mode",
                self.newline_chars
            )));
        }
        let compressed = match self.compress_algorithm {
            COMPRESSION_NONE => false,
            COMPRESSION_DEFLATE => true,
            other => {
                return Err(VmdkError::Unsupported(format!(
                    "sparse extent {what} uses compression algorithm {other} (only 0 = none and 1 = deflate exist)"
                )));
            }
        };
        if self.capacity == 0 {
            return Err(bad("capacity is 0 sectors".into()));
        }
        let capacity_bytes = self.capacity.checked_mul(SECTOR).ok_or_else(|| {
            bad(format!(
                "capacity of {} sectors overflows a byte count",
                self.capacity
            ))
        })?;
        let g = self.grain_size;
        if !g.is_power_of_two() || !(MIN_GRAIN_SECTORS..=MAX_GRAIN_SECTORS).contains(&g) {
            return Err(bad(format!(
                "grain size of {g} sectors is not a power of two between {MIN_GRAIN_SECTORS} and {MAX_GRAIN_SECTORS}"
            )));
        }
        let n = self.num_gtes_per_gt;
        if n == 0 || n > MAX_GTES_PER_GT {
            return Err(bad(format!(
                "numGTEsPerGT is {n}, expected 1 to {MAX_GTES_PER_GT} (VMware writes 512)"
            )));
        }
        let gt_span = g * u64::from(n); // sectors covered by one grain table; ≤ 2^27
        let gd_entries = self.capacity.div_ceil(gt_span);
        if gd_entries > MAX_GD_ENTRIES {
            return Err(bad(format!(
                "capacity of {} sectors needs {gd_entries} grain tables, more than the {MAX_GD_ENTRIES} supported",
                self.capacity
            )));
        }
        let file_sectors = file_size / SECTOR;
        if self.overhead > file_sectors {
            return Err(bad(format!(
                "file truncated: grains start at sector {} (overHead) but the file has {} bytes",
                self.overhead, file_size
            )));
        }
        if self.descriptor_offset != 0 {
            if self.descriptor_size == 0 || self.descriptor_size > MAX_DESCRIPTOR_SECTORS {
                return Err(bad(format!(
                    "embedded descriptor size of {} sectors is not between 1 and {MAX_DESCRIPTOR_SECTORS}",
                    self.descriptor_size
                )));
            }
            let end = self.descriptor_offset.checked_add(self.descriptor_size);
            if end.is_none_or(|e| e > file_sectors) {
                return Err(bad(format!(
                    "embedded descriptor at sector {} ({} sectors) lies past the end of the {file_size}-byte file",
                    self.descriptor_offset, self.descriptor_size
                )));
            }
        }
        Ok(SparseLayout {
            capacity_bytes,
            grain_bytes: g * SECTOR,
            gtes_per_gt: n,
            gd_entries,
            compressed,
            markers: self.has_markers(),
            zero_grain_gte: self.flags & FLAG_ZERO_GRAIN_GTE != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SparseExtentHeader {
        SparseExtentHeader {
            version: 3,
            flags: FLAG_NEWLINE_TEST | FLAG_REDUNDANT_GT | FLAG_COMPRESSED | FLAG_MARKERS,
            capacity: 204_800,
            grain_size: 128,
            descriptor_offset: 1,
            descriptor_size: 20,
            num_gtes_per_gt: 512,
            rgd_offset: 21,
            gd_offset: GD_AT_END,
            overhead: 128,
            unclean_shutdown: false,
            newline_chars: SparseExtentHeader::NEWLINE_CHARS,
            compress_algorithm: COMPRESSION_DEFLATE,
        }
    }

    #[test]
    fn round_trips() {
        let h = sample();
        let s = h.serialize();
        assert_eq!(&s[0..4], b"KDMV");
        assert_eq!(SparseExtentHeader::parse(&s), Some(h));
    }

    #[test]
    fn validate_derives_layout_and_bounds_fields() {
        let h = sample();
        let l = h.validate("x", 1 << 20).unwrap();
        assert_eq!(l.grain_bytes, 65536);
        assert_eq!(l.gd_entries, 4); // 204800 / (128*512) rounded up
        assert!(l.compressed && l.markers);

        for (mutate, needle) in [
            (
                Box::new(|h: &mut SparseExtentHeader| h.grain_size = 12)
                    as Box<dyn Fn(&mut SparseExtentHeader)>,
                "grain size",
            ),
            (Box::new(|h| h.grain_size = 4), "grain size"),
            (Box::new(|h| h.grain_size = 1 << 40), "grain size"),
            (Box::new(|h| h.num_gtes_per_gt = 0), "numGTEsPerGT"),
            (Box::new(|h| h.num_gtes_per_gt = 1 << 20), "numGTEsPerGT"),
            (Box::new(|h| h.capacity = u64::MAX), "overflows"),
            (Box::new(|h| h.capacity = 0), "capacity is 0"),
            (Box::new(|h| h.capacity = 1 << 50), "grain tables"),
            (Box::new(|h| h.overhead = 1 << 30), "truncated"),
            (Box::new(|h| h.descriptor_size = 1 << 30), "descriptor size"),
            (
                Box::new(|h| h.descriptor_offset = u64::MAX),
                "embedded descriptor",
            ),
            (Box::new(|h| h.newline_chars = *b"\n \n\n"), "text mode"),
            (Box::new(|h| h.version = 4), "version"),
            (
                Box::new(|h| h.compress_algorithm = 7),
                "compression algorithm",
            ),
        ] {
            let mut h = sample();
            mutate(&mut h);
            let e = h.validate("x", 1 << 20).unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        }
    }
}
