//! Bounded reads and the text conventions blkid uses for labels and UUIDs, so what
//! we print can be compared with `blkid -p -o export` byte for byte.

use std::io;

use vmscrub_blockdev::ReadAt;

use crate::Error;

/// `len` bytes at `offset`, or `None` if they are not inside the device: a small
/// partition simply cannot hold a superblock that far in.
pub(crate) fn read_opt<D: ReadAt + ?Sized>(
    dev: &D,
    offset: u64,
    len: usize,
    structure: &'static str,
) -> Result<Option<Vec<u8>>, Error> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= dev.size() => {}
        _ => return Ok(None),
    }
    let mut buf = vec![0u8; len];
    match dev.read_exact_at(&mut buf, offset) {
        Ok(()) => Ok(Some(buf)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(source) => Err(Error::Io {
            structure,
            offset,
            source,
        }),
    }
}

pub(crate) fn bytes<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        a.copy_from_slice(s);
    }
    a
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes(b, at))
}
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes(b, at))
}
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes(b, at))
}
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(bytes(b, at))
}
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes(b, at))
}
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes(b, at))
}

/// A label field as blkid reports it: up to the first NUL, trailing whitespace
/// removed, `None` when nothing is left.
pub(crate) fn label(field: &[u8]) -> Option<String> {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    let s = String::from_utf8_lossy(&field[..end]);
    let s = s.trim_end();
    (!s.is_empty()).then(|| s.to_string())
}

/// A binary 16-byte UUID in the usual lower-case text form; `None` when all zero
/// (blkid does not report empty UUIDs).
pub(crate) fn uuid(b: &[u8]) -> Option<String> {
    let u = b.get(..16)?;
    if u.iter().all(|&c| c == 0) {
        return None;
    }
    let h: String = u.iter().map(|c| format!("{c:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_uuids() {
        assert_eq!(label(b"root\0garbage"), Some("root".into()));
        assert_eq!(label(b"ESP        "), Some("ESP".into()));
        assert_eq!(label(b"   \0"), None);
        assert_eq!(uuid(&[0; 16]), None);
        assert_eq!(uuid(&[0; 15]), None);
        let u: Vec<u8> = (0..16).collect();
        assert_eq!(uuid(&u).unwrap(), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert_eq!(
            le32(&[1, 0], 0),
            0,
            "short input reads as zero, never panics"
        );
    }
}
