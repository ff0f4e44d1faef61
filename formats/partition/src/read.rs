//! Bounded reads that turn I/O failures into errors naming the structure.

use std::io;

use vmscrub_blockdev::ReadAt;

use crate::{Error, Result};

/// Reads `len` bytes at `offset`. `Ok(None)` when the range is not inside the disk
/// (a structure a header points at past the end is a finding, not an I/O failure);
/// any other I/O error is returned, since a container that cannot be read must not
/// look like a damaged table.
pub(crate) fn read_opt<D: ReadAt + ?Sized>(
    disk: &D,
    offset: u64,
    len: usize,
    structure: &'static str,
) -> Result<Option<Vec<u8>>> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= disk.size() => {}
        _ => return Ok(None),
    }
    let mut buf = vec![0u8; len];
    match disk.read_exact_at(&mut buf, offset) {
        Ok(()) => Ok(Some(buf)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(source) => Err(Error::Io {
            structure,
            offset,
            source,
        }),
    }
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}
