//! Big-endian field access (XFS is big-endian on disk) on buffers whose length
//! the caller has checked. An out-of-range offset reads as zero instead of
//! panicking, so a logic slip cannot turn hostile input into a crash.

pub(crate) fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    match b.get(off..off.wrapping_add(2)) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    match b.get(off..off.wrapping_add(4)) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    let hi = u64::from(u32_at(b, off));
    let lo = u64::from(u32_at(b, off.wrapping_add(4)));
    if b.len() < off.saturating_add(8) {
        return 0;
    }
    (hi << 32) | lo
}

pub(crate) fn bytes_at<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = b.get(off..off.wrapping_add(N)) {
        out.copy_from_slice(s);
    }
    out
}
