//! Why LVM2 structures could not be read: each variant names the structure.

use std::io;

/// A corrupt, truncated or unsupported LVM2 structure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device could not be read where a structure should be.
    #[error("cannot read the {what}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// The `LABELONE` sector or the `pv_header` after it.
    #[error("LVM2 label in sector {sector}: {reason}")]
    Label { sector: u64, reason: String },
    /// A metadata area's header or the text it points to.
    #[error("LVM2 metadata area at byte {offset}: {reason}")]
    Mda { offset: u64, reason: String },
    /// The metadata text does not parse.
    #[error("LVM2 metadata text, line {line}: {reason}")]
    Text { line: usize, reason: String },
    /// The text parses but does not describe a consistent volume group.
    #[error("LVM2 volume group {vg:?}: {reason}")]
    Model { vg: String, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(what: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, source }
}
