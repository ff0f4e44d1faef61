//! What can be wrong with a VHD file, each with where and why.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the VHD {what} at byte {offset}: {source}")]
    Io {
        what: &'static str,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("no VHD footer (\"conectix\") in the last 512 bytes nor at the start")]
    NoFooter,
    #[error("the VHD footer's checksum is {stored:#010x}, its bytes sum to {computed:#010x}")]
    FooterChecksum { stored: u32, computed: u32 },
    #[error("VHD disk type {0} is not fixed (2), dynamic (3) or differencing (4)")]
    DiskType(u32),
    #[error(
        "a differencing VHD needs its parent disk; merge it first \
         (qemu-img convert -O vpc CHILD.vhd MERGED.vhd)"
    )]
    Differencing,
    #[error("the VHD {what} needs {need} bytes but the file has {have}")]
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
    #[error("the VHD dynamic header has no \"cxsparse\" cookie at byte {0}")]
    NoDynamicHeader(u64),
    #[error(
        "the VHD dynamic header's checksum is {stored:#010x}, its bytes sum to {computed:#010x}"
    )]
    HeaderChecksum { stored: u32, computed: u32 },
    #[error("VHD block size {0} is not a power of two between 512 bytes and 256 MiB")]
    BlockSize(u32),
    #[error(
        "the VHD BAT has {entries} entries of {block_size} bytes, too few for the {size}-byte disk"
    )]
    TableTooSmall {
        entries: u32,
        block_size: u32,
        size: u64,
    },
    #[error("VHD block {block} lies at sector {sector}, past the end of the {file_size}-byte file")]
    BlockOutside {
        block: u64,
        sector: u32,
        file_size: u64,
    },
}
