//! What can be wrong with a VHDX file, each with where and why.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the VHDX {what} at byte {offset}: {source}")]
    Io {
        what: &'static str,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("the VHDX {what} needs bytes up to {need} but the file has {have}")]
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
    #[error("not a VHDX: no \"vhdxfile\" signature at byte 0")]
    NotVhdx,
    #[error("neither VHDX header (at 64 KiB and 128 KiB) is valid: {0}")]
    NoHeader(String),
    #[error("neither VHDX region table (at 192 KiB and 256 KiB) is valid: {0}")]
    NoRegionTable(String),
    #[error("the VHDX {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error(
        "the VHDX log holds entries not yet written back (the disk was not closed \
         cleanly); open it once in Hyper-V, or replay it on a copy with \
         `qemu-img check -r all COPY.vhdx`, then read the copy"
    )]
    DirtyLog,
    #[error(
        "a differencing VHDX needs its parent disk; merge it first \
         (qemu-img convert -O vhdx CHILD.vhdx MERGED.vhdx)"
    )]
    Differencing,
    #[error("the VHDX requires {0}, which vmscrub does not know")]
    UnknownRequired(String),
}

impl Error {
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}
