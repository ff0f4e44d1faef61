//! What can go wrong reading a partition table. Every variant names the structure
//! and, where there is one, the sector or partition, so a user can find the damage
//! with `sgdisk -v`, `fdisk -l` or a hex dump.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {structure} at byte offset {offset}")]
    Io {
        structure: &'static str,
        offset: u64,
        #[source]
        source: io::Error,
    },

    /// Neither GPT header (with its entry array) could be used.
    #[error("no usable GPT: primary header: {primary}; backup header: {backup}")]
    NoUsableGpt { primary: String, backup: String },

    #[error(
        "GPT partition {index} spans LBA {first}..={last}, outside the usable range {first_usable}..={last_usable}"
    )]
    OutsideUsable {
        index: u32,
        first: u64,
        last: u64,
        first_usable: u64,
        last_usable: u64,
    },

    #[error("{table} partition {index} ends before it starts (LBA {first}..={last})")]
    Inverted {
        table: &'static str,
        index: u32,
        first: u64,
        last: u64,
    },

    #[error(
        "{table} partitions {a} (LBA {a_first}..={a_last}) and {b} (LBA {b_first}..={b_last}) overlap"
    )]
    Overlap {
        table: &'static str,
        a: u32,
        a_first: u64,
        a_last: u64,
        b: u32,
        b_first: u64,
        b_last: u64,
    },

    /// A partition reaches past the end of the image: usually a truncated file.
    #[error(
        "{table} partition {index} ends at byte {end}, past the end of the {disk_size}-byte disk (truncated image?)"
    )]
    PastEnd {
        table: &'static str,
        index: u32,
        end: u64,
        disk_size: u64,
    },

    #[error(
        "MBR has a protective GPT entry (type 0xEE) but no GPT header was found at LBA 1 or at the end of the disk"
    )]
    ProtectiveWithoutGpt,

    #[error("invalid logical sector size {0} (must be a power of two from 512 to 65536)")]
    SectorSize(u32),

    #[error("not an MBR: {reason}")]
    NotMbr { reason: &'static str },

    #[error("extended boot record at LBA {lba}: {reason}")]
    Ebr { lba: u64, reason: String },

    #[error("extended partition chain loops back to the EBR at LBA {lba}")]
    EbrLoop { lba: u64 },

    #[error("more than {max} logical partitions in the extended partition chain")]
    TooManyLogical { max: usize },
}

pub type Result<T> = std::result::Result<T, Error>;
