//! A flat extent: the virtual bytes stored as-is in a file, from an offset on.

use std::sync::Arc;

use vmscrub_blockdev::{RangeSet, ReadAt};

use crate::error::{Result, VmdkError};

pub(crate) struct FlatExtent {
    pub(crate) file: Arc<dyn ReadAt>,
    pub(crate) name: String,
    /// Where the extent's data starts in the file, in bytes.
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

impl FlatExtent {
    /// Reads at extent offset `off`. A flat file shorter than the extent is only an
    /// error when a read reaches the missing part, as with qemu.
    pub(crate) fn read(&self, buf: &mut [u8], off: u64) -> Result<()> {
        let size = self.file.size();
        let host = self.offset.checked_add(off);
        let end = host.and_then(|h| h.checked_add(buf.len() as u64));
        match (host, end) {
            (Some(host), Some(end)) if end <= size => {
                self.file.read_exact_at(buf, host).map_err(|e| {
                    VmdkError::io(
                        format!("reading flat extent {} at byte {host}", self.name),
                        e,
                    )
                })
            }
            _ => Err(VmdkError::corrupt(
                format!("flat extent {}", self.name),
                host,
                format!(
                    "{} bytes of the extent lie past the end of the {size}-byte file (the extent needs {} bytes from byte {})",
                    buf.len(),
                    self.len,
                    self.offset
                ),
            )),
        }
    }

    /// The host file's data ranges inside the extent, as extent offsets (so holes in
    /// a sparse host file are not reported).
    pub(crate) fn allocated(&self) -> Result<RangeSet> {
        let all = self.file.allocated_ranges().map_err(|e| {
            VmdkError::io(
                format!("finding the data ranges of flat extent {}", self.name),
                e,
            )
        })?;
        let end = self.offset.saturating_add(self.len);
        Ok(all
            .overlapping(self.offset..end)
            .map(|r| r.start - self.offset..r.end - self.offset)
            .collect())
    }
}
