//! The arithmetic of the output file: table geometry, compressed-cluster
//! descriptors, and where the metadata appended at the end goes.
//!
//! Kept free of I/O so every formula can be tested on its own (the writer only
//! strings these together).

use super::error::WriteError;

/// The one refcount width we write: 16 bits (`refcount_order` 4), the only one
/// a version 2 image can have and qemu's default for version 3.
pub const REFCOUNT_ORDER: u32 = 4;
/// The largest count a 16-bit refcount entry holds.
pub const MAX_REFCOUNT: u16 = u16::MAX;

/// qemu's implementation limits: it refuses to open images with larger tables.
pub const MAX_L1_BYTES: u64 = 32 << 20;
pub const MAX_REFTABLE_BYTES: u64 = 8 << 20;

/// L1 entries and standard L2 descriptors may only use bits 9..=55 for the offset.
pub const MAX_HOST_OFFSET: u64 = 1 << 56;

/// L1 / L2 bit 63: the table or cluster has refcount exactly one (qemu's
/// `OFLAG_COPIED`; `qemu-img check` reports a mismatch as an error).
pub const COPIED: u64 = 1 << 63;
/// L2 bit 62: a compressed cluster.
pub const COMPRESSED: u64 = 1 << 62;

const SECTOR: u64 = 512;

/// Sizes that follow from the cluster size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub cluster_bits: u32,
}

impl Geometry {
    pub fn cluster_size(self) -> u64 {
        1 << self.cluster_bits
    }

    /// Entries in one L2 table (one cluster of 8-byte entries).
    pub fn l2_entries(self) -> u64 {
        self.cluster_size() / 8
    }

    /// Entries in one refcount block (one cluster of 16-bit counts).
    pub fn refblock_entries(self) -> u64 {
        self.cluster_size() * 8 / (1 << REFCOUNT_ORDER)
    }

    /// Guest clusters in a disk of `size` bytes (the last may be partial).
    pub fn guest_clusters(self, size: u64) -> u64 {
        size.div_ceil(self.cluster_size())
    }

    /// L1 entries a disk of `size` bytes needs: exactly what qemu computes, so the
    /// table is neither too small (qemu refuses) nor padded with unused entries.
    pub fn l1_entries(self, size: u64) -> u64 {
        self.guest_clusters(size).div_ceil(self.l2_entries())
    }

    /// Whole clusters holding `bytes` bytes.
    pub fn clusters_for(self, bytes: u64) -> u64 {
        bytes.div_ceil(self.cluster_size())
    }

    /// Bit where a compressed descriptor's sector count starts
    /// (`x = 62 - (cluster_bits - 8)` in qcow2.txt).
    pub fn csize_shift(self) -> u32 {
        62 - (self.cluster_bits - 8)
    }

    /// The L2 entry of a compressed cluster whose `len` bytes start at host byte
    /// `offset`. The sector count is the number of 512-byte sectors after the one
    /// holding `offset` that the data reaches into (qcow2.txt, "Compressed
    /// Clusters Descriptor"); readers take whole sectors, so the bytes after the
    /// data in its last sector may belong to the next compressed cluster.
    pub fn compressed_entry(self, offset: u64, len: u64) -> Result<u64, WriteError> {
        let shift = self.csize_shift();
        if len == 0 || len >= self.cluster_size() {
            return Err(WriteError::Internal(format!(
                "compressed length {len} outside 1..{}",
                self.cluster_size()
            )));
        }
        let limit = (1u64 << shift).min(MAX_HOST_OFFSET);
        if offset.checked_add(len).is_none_or(|end| end > limit) {
            return Err(WriteError::FileTooLarge {
                what: "compressed cluster",
                offset,
                limit,
            });
        }
        let extra = (offset + len - 1) / SECTOR - offset / SECTOR;
        // Data shorter than a cluster spans at most cluster_size/512 + 1 sectors;
        // the field has cluster_bits - 8 bits, so this always fits.
        if extra >= 1 << (self.cluster_bits - 8) {
            return Err(WriteError::Internal(format!(
                "{extra} additional sectors do not fit the descriptor"
            )));
        }
        Ok(COMPRESSED | (extra << shift) | offset)
    }
}

/// Where the metadata appended after the data goes, in file clusters. Order:
/// L2 tables still in memory, the L1 table, the refcount blocks, the refcount
/// table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// First cluster of the tail (the data, and the header, end before it).
    pub first: u64,
    pub l2_tables: u64,
    pub l1_clusters: u64,
    pub refblocks: u64,
    pub reftable_clusters: u64,
}

impl Tail {
    /// Clusters in the whole file once the tail is written.
    pub fn total_clusters(&self) -> u64 {
        self.first + self.l2_tables + self.l1_clusters + self.refblocks + self.reftable_clusters
    }

    pub fn l1_cluster(&self) -> u64 {
        self.first + self.l2_tables
    }

    pub fn refblock_cluster(&self) -> u64 {
        self.l1_cluster() + self.l1_clusters
    }

    pub fn reftable_cluster(&self) -> u64 {
        self.refblock_cluster() + self.refblocks
    }
}

/// Lays out the tail after `first` clusters of header and data. The refcount
/// blocks must count every cluster of the file, themselves and the refcount
/// table included, and the table must point at every block: the smallest
/// `(blocks, table)` pair that covers the file it completes. Iterating from zero
/// reaches it, since both counts only grow with the file (each step adds at
/// most a few clusters, and a block covers thousands).
pub fn plan_tail(
    geo: Geometry,
    first: u64,
    l2_tables: u64,
    l1_entries: u64,
) -> Result<Tail, WriteError> {
    let mut tail = Tail {
        first,
        l2_tables,
        l1_clusters: geo.clusters_for(l1_entries * 8),
        refblocks: 0,
        reftable_clusters: 0,
    };
    loop {
        let blocks = tail.total_clusters().div_ceil(geo.refblock_entries());
        let table = geo.clusters_for(blocks * 8);
        if blocks == tail.refblocks && table == tail.reftable_clusters {
            break;
        }
        tail.refblocks = blocks;
        tail.reftable_clusters = table;
    }
    let table_bytes = tail.reftable_clusters * geo.cluster_size();
    if table_bytes > MAX_REFTABLE_BYTES {
        return Err(WriteError::FileTooLarge {
            what: "refcount table",
            offset: tail.total_clusters() * geo.cluster_size(),
            limit: MAX_REFTABLE_BYTES / 8 * geo.refblock_entries() * geo.cluster_size(),
        });
    }
    let end = tail.total_clusters().checked_mul(geo.cluster_size());
    if end.is_none_or(|e| e > MAX_HOST_OFFSET) {
        return Err(WriteError::FileTooLarge {
            what: "metadata",
            offset: tail.first.saturating_mul(geo.cluster_size()),
            limit: MAX_HOST_OFFSET,
        });
    }
    Ok(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(bits: u32) -> Geometry {
        Geometry { cluster_bits: bits }
    }

    #[test]
    fn geometry_of_each_cluster_size() {
        assert_eq!(geo(16).l2_entries(), 8192);
        assert_eq!(geo(16).cluster_size() * geo(16).l2_entries(), 512 << 20);
        assert_eq!(geo(16).refblock_entries(), 32768);
        assert_eq!(geo(9).l2_entries(), 64);
        assert_eq!(geo(9).cluster_size() * geo(9).l2_entries(), 32 << 10);
        assert_eq!(geo(9).refblock_entries(), 256);
        assert_eq!(geo(21).cluster_size() * geo(21).l2_entries(), 512 << 30);
        // L2 boundaries: one entry past a full table needs a second L1 entry.
        let g = geo(16);
        assert_eq!(g.l1_entries(0), 0);
        assert_eq!(g.l1_entries(1), 1);
        assert_eq!(g.l1_entries(512 << 20), 1);
        assert_eq!(g.l1_entries((512 << 20) + 1), 2);
        assert_eq!(g.l1_entries(8 << 40), 16384);
        assert_eq!(geo(12).l1_entries((2 << 20) * 3 - 1), 3);
        assert_eq!(g.guest_clusters(65537), 2);
    }

    /// Decodes an entry the way qcow2.txt describes it, independently of the
    /// encoder: (offset, bytes a reader takes).
    fn decode(bits: u32, e: u64) -> (u64, u64) {
        assert_eq!(e >> 62, 1, "compressed bit, copied bit clear");
        let x = 62 - (bits - 8);
        let offset = e & ((1 << x) - 1);
        let sectors = ((e >> x) & ((1 << (bits - 8)) - 1)) + 1;
        (offset, sectors * 512 - (offset & 511))
    }

    #[test]
    fn compressed_descriptors_for_several_cluster_sizes() {
        // 64 KiB clusters: x = 54. Data inside one sector: no additional sector.
        let g = geo(16);
        assert_eq!(
            g.compressed_entry(0x10000, 100).unwrap(),
            COMPRESSED | 0x10000
        );
        // 0x10150 + 0x200 reaches into the next sector: one additional.
        assert_eq!(
            g.compressed_entry(0x10150, 0x200).unwrap(),
            COMPRESSED | (1 << 54) | 0x10150
        );
        // Ends exactly on a sector boundary: that sector is not counted.
        assert_eq!(
            g.compressed_entry(0x10000, 1024).unwrap(),
            COMPRESSED | (1 << 54) | 0x10000
        );
        for bits in [9u32, 12, 16, 21] {
            let g = geo(bits);
            let cs = g.cluster_size();
            for (off, len) in [
                (cs, 1),
                (cs + 511, 1),
                (cs + 511, 2),
                (cs + 511, cs - 1),
                (3 * cs + 17, cs / 2),
                (cs * 1000 + 300, cs - 1),
            ] {
                let e = g.compressed_entry(off, len).unwrap();
                let (o, take) = decode(bits, e);
                assert_eq!(o, off, "bits {bits}");
                // The reader's window covers the data and ends on a sector boundary
                // less than a sector after it.
                assert!(
                    take >= len && take - len < 512,
                    "bits {bits}: {take} for {len}"
                );
                assert_eq!((o + take) % 512, 0);
            }
            assert!(g.compressed_entry(cs, cs).is_err());
            assert!(g.compressed_entry(cs, 0).is_err());
        }
        // 2 MiB clusters leave 49 bits for the offset (qcow2.txt: below 512 TiB).
        let g = geo(21);
        assert!(g.compressed_entry((1 << 49) - 100, 50).is_ok());
        assert!(matches!(
            g.compressed_entry((1 << 49) - 10, 50),
            Err(WriteError::FileTooLarge { .. })
        ));
        // 512-byte clusters: the field could reach bit 60, but offsets stop at 2^56.
        assert!(geo(9).compressed_entry(1 << 56, 10).is_err());
    }

    /// The tail's refcount blocks count the whole file, themselves included, and
    /// the result is the smallest such layout.
    #[test]
    fn refcount_structures_count_themselves() {
        for bits in [9u32, 12, 16, 21] {
            let g = geo(bits);
            let epb = g.refblock_entries();
            for first in [
                1,
                2,
                epb - 3,
                epb - 2,
                epb - 1,
                epb,
                epb + 1,
                7 * epb - 2,
                300 * epb + 5,
            ] {
                for (l2, l1e) in [(0, 0), (1, 1), (5, 3 * g.l2_entries()), (40, 40)] {
                    let t = plan_tail(g, first, l2, l1e).unwrap();
                    let total = t.total_clusters();
                    assert!(
                        t.refblocks * epb >= total,
                        "bits {bits} first {first}: {t:?}"
                    );
                    assert!(t.reftable_clusters * g.cluster_size() / 8 >= t.refblocks);
                    // Minimal: one block fewer would not cover the file.
                    assert!((t.refblocks - 1) * epb < total, "{t:?}");
                    assert_eq!(t.reftable_clusters, g.clusters_for(t.refblocks * 8));
                    assert_eq!(t.l1_clusters, g.clusters_for(l1e * 8));
                }
            }
        }
        // The classic edge: data ends two clusters short of a block's reach; the
        // L1 and the first block fill it, so the table spills into a second block.
        let g = geo(9);
        let t = plan_tail(g, 254, 0, 1).unwrap();
        assert_eq!(t.total_clusters(), 254 + 1 + 2 + 1);
        assert_eq!(t.refblocks, 2);
    }

    #[test]
    fn refcount_table_limit() {
        // 512-byte clusters: 8 MiB of table → 1 Mi blocks of 256 clusters of 512 B.
        let g = geo(9);
        assert!(plan_tail(g, 1 << 27, 0, 1).is_ok());
        assert!(matches!(
            plan_tail(g, 1 << 28, 0, 1),
            Err(WriteError::FileTooLarge {
                what: "refcount table",
                ..
            })
        ));
    }
}
