//! v5 metadata CRCs: CRC32C of the whole structure with its CRC field taken as
//! zero, stored little-endian (the kernel's `xfs_start_cksum`/`xfs_end_cksum`
//! reduce to the standard CRC32C with these conventions).

use crate::error::{Error, Loc, Result};

/// The CRC32C of `buf` with the four bytes at `crc_off` taken as zero.
pub fn compute(buf: &[u8], crc_off: usize) -> u32 {
    let Some(end) = crc_off.checked_add(4).filter(|e| *e <= buf.len()) else {
        return 0;
    };
    let crc = crc32c::crc32c(&buf[..crc_off]);
    let crc = crc32c::crc32c_append(crc, &[0; 4]);
    crc32c::crc32c_append(crc, &buf[end..])
}

/// Recomputes and stores the CRC of `buf` at `crc_off` (a no-op if the field
/// does not fit), after an edit.
pub fn store(buf: &mut [u8], crc_off: usize) {
    let crc = compute(buf, crc_off);
    if let Some(s) = buf.get_mut(crc_off..crc_off.wrapping_add(4)) {
        s.copy_from_slice(&crc.to_le_bytes());
    }
}

/// The CRC stored at `crc_off` (little-endian).
pub fn stored(buf: &[u8], crc_off: usize) -> u32 {
    match buf.get(crc_off..crc_off.wrapping_add(4)) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Checks the CRC of `structure` in `buf`; a no-op when `enabled` is false
/// (v4 filesystems have none, and damaged images may be read without).
pub fn verify(
    enabled: bool,
    structure: &'static str,
    buf: &[u8],
    crc_off: usize,
    loc: Loc,
) -> Result<()> {
    if !enabled {
        return Ok(());
    }
    let (s, c) = (stored(buf, crc_off), compute(buf, crc_off));
    if s != c {
        return Err(Error::ChecksumMismatch {
            structure,
            loc,
            stored: s,
            computed: c,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_ignores_its_own_field() {
        let mut b = vec![7u8; 64];
        let c = compute(&b, 8);
        b[8..12].copy_from_slice(&c.to_le_bytes());
        assert!(verify(true, "t", &b, 8, Loc::NONE).is_ok());
        b[20] ^= 1;
        assert!(verify(true, "t", &b, 8, Loc::NONE).is_err());
        assert!(verify(false, "t", &b, 8, Loc::NONE).is_ok());
        assert_eq!(compute(&b, 62), 0, "field past the end");
    }
}
