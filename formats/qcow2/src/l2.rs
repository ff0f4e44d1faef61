//! L1 and L2 table entries: what one guest cluster maps to.

/// Bits 9..56 of L1 entries and of standard L2 descriptors: the host offset. Bits
/// 1..9 and 56..62 are reserved and ignored on read, as qemu does.
pub const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 bit 62: the cluster is compressed.
const COMPRESSED: u64 = 1 << 62;
/// Standard descriptor bit 0 (version 3): the cluster reads as zeros.
const ZERO: u64 = 1;

/// What a guest cluster maps to, decoded from its L2 entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// Not in this image: read the backing file, else zeros.
    Unallocated,
    /// Reads as zeros, never from the backing file (v3 zero flag).
    Zero,
    /// Uncompressed, at this cluster-aligned host offset.
    Data(u64),
    /// Compressed: `len` bytes at host offset `offset` (not aligned), inflating to
    /// exactly one cluster. `len` may run past the end of the file (see
    /// [`crate::compress`]).
    Compressed { offset: u64, len: u64 },
}

/// Why an entry is invalid; the caller adds where it was.
pub type EntryError = String;

/// Decodes L2 entries for one image geometry.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    pub cluster_bits: u32,
    pub version: u32,
    /// Compressed descriptor: the sector count starts at this bit.
    csize_shift: u32,
    csize_mask: u64,
}

impl Decoder {
    pub fn new(cluster_bits: u32, version: u32) -> Self {
        // x = 62 - (cluster_bits - 8): offset in bits 0..x, additional sectors in x..62.
        let csize_shift = 62 - (cluster_bits - 8);
        Decoder {
            cluster_bits,
            version,
            csize_shift,
            csize_mask: (1u64 << (cluster_bits - 8)) - 1,
        }
    }

    fn cluster_mask(&self) -> u64 {
        (1u64 << self.cluster_bits) - 1
    }

    /// The L2 table an L1 entry points to (`None`: the whole span is unallocated).
    pub fn l1_entry(&self, entry: u64) -> Result<Option<u64>, EntryError> {
        let off = entry & OFFSET_MASK;
        if off == 0 {
            return Ok(None);
        }
        if off & self.cluster_mask() != 0 {
            return Err(format!(
                "L2 table offset {off:#x} is not aligned to a cluster"
            ));
        }
        Ok(Some(off))
    }

    pub fn l2_entry(&self, entry: u64) -> Result<Mapping, EntryError> {
        if entry & COMPRESSED != 0 {
            let offset = entry & ((1u64 << self.csize_shift) - 1);
            if offset >> 56 != 0 {
                return Err(format!(
                    "compressed cluster offset {offset:#x} uses bits above 55"
                ));
            }
            let sectors = ((entry >> self.csize_shift) & self.csize_mask) + 1;
            // The first sector is the one holding `offset`; data starts inside it.
            let len = sectors * 512 - (offset & 511);
            if offset == 0 {
                return Err("compressed cluster at file offset 0 (the header)".into());
            }
            return Ok(Mapping::Compressed { offset, len });
        }
        let off = entry & OFFSET_MASK;
        if entry & ZERO != 0 {
            if self.version < 3 {
                return Err("zero-cluster flag in a version 2 image".into());
            }
            if off & self.cluster_mask() != 0 {
                return Err(format!(
                    "preallocated zero cluster offset {off:#x} is not aligned to a cluster"
                ));
            }
            return Ok(Mapping::Zero);
        }
        if off == 0 {
            return Ok(Mapping::Unallocated);
        }
        if off & self.cluster_mask() != 0 {
            return Err(format!(
                "data cluster offset {off:#x} is not aligned to a cluster"
            ));
        }
        Ok(Mapping::Data(off))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_kind() {
        let d = Decoder::new(16, 3);
        assert_eq!(d.l2_entry(0), Ok(Mapping::Unallocated));
        assert_eq!(d.l2_entry(1 << 63), Ok(Mapping::Unallocated));
        assert_eq!(d.l2_entry((1 << 63) | 0x50000), Ok(Mapping::Data(0x50000)));
        assert_eq!(d.l2_entry(0x50000 | 1), Ok(Mapping::Zero));
        assert_eq!(d.l2_entry(1), Ok(Mapping::Zero));
        assert!(d.l2_entry(0x50200).unwrap_err().contains("not aligned"));
        assert!(
            Decoder::new(16, 2)
                .l2_entry(1)
                .unwrap_err()
                .contains("version 2")
        );
        // 64 KiB clusters: x = 54; offset 0x12345, 3 additional sectors.
        let e = COMPRESSED | (3u64 << 54) | 0x12345;
        assert_eq!(
            d.l2_entry(e),
            Ok(Mapping::Compressed {
                offset: 0x12345,
                len: 4 * 512 - 0x145
            })
        );
        assert_eq!(d.l1_entry(0), Ok(None));
        assert_eq!(d.l1_entry((1 << 63) | 0x30000), Ok(Some(0x30000)));
        assert!(d.l1_entry(0x30200).is_err());
    }

    #[test]
    fn compressed_offset_bits_above_55_are_refused_for_small_clusters() {
        // 512-byte clusters: x = 61, so the offset field could reach bit 60.
        let d = Decoder::new(9, 3);
        assert!(d.l2_entry(COMPRESSED | (1 << 57)).is_err());
        assert_eq!(
            d.l2_entry(COMPRESSED | (1 << 61) | 0x400),
            Ok(Mapping::Compressed {
                offset: 0x400,
                len: 1024
            })
        );
    }
}
