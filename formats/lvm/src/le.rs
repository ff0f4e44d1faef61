//! Little-endian fields of on-disk structures, bounds-checked.

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// LVM's CRC (lib/misc/crc.c): the reflected CRC-32 polynomial from the seed
/// 0xf597a6cf, without a final inversion. `crc` continues an earlier run.
pub fn crc(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & 0u32.wrapping_sub(crc & 1));
        }
    }
    crc
}

/// The seed every LVM checksum starts from.
pub const INITIAL_CRC: u32 = 0xf597_a6cf;
