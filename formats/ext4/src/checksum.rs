//! The two checksum functions ext4 uses and the seed rules around them.
//!
//! ext4 calls crc32c without the customary final inversion (the kernel's
//! `ext4_chksum`): a checksum is the raw CRC register after the data, started from a
//! seed. The seed of per-filesystem structures is `crc32c(~0, uuid)` or, with
//! `metadata_csum_seed`, `s_checksum_seed`; per-inode structures (extent blocks,
//! directory blocks) chain the inode number and generation onto it.
//! Older filesystems (`gdt_csum`) protect only the group descriptors, with crc16.

/// ext4's crc32c: continues the raw CRC register `seed` over `data`.
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    // The crc32c crate inverts on entry and exit; undo both to get the raw register.
    !crc32c::crc32c_append(!seed, data)
}

/// The filesystem-wide checksum seed for a superblock's uuid (when
/// `metadata_csum_seed` is off).
pub fn fs_seed_from_uuid(uuid: &[u8; 16]) -> u32 {
    crc32c(!0, uuid)
}

/// The per-inode seed that extent, directory and inode checksums start from.
pub fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    let s = crc32c(fs_seed, &ino.to_le_bytes());
    crc32c(s, &generation.to_le_bytes())
}

/// The CRC-16 of the kernel's lib/crc16.c (polynomial 0x8005, reflected), used by
/// `gdt_csum` group-descriptor checksums.
pub fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The standard (inverted) CRC-32C of "123456789" is 0xE3069283.
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn crc16_matches_the_arc_check_value() {
        // CRC-16/ARC (init 0) of "123456789" is 0xBB3D.
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
    }

    #[test]
    fn crc32c_chains() {
        let whole = crc32c(7, b"hello world");
        let parts = crc32c(crc32c(7, b"hello "), b"world");
        assert_eq!(whole, parts);
    }
}
