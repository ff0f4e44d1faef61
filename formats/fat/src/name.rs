//! File names: 8.3 short names, VFAT long names, and how lookups compare them.
//!
//! Short names are stored in an OEM code page; this crate decodes their bytes above
//! 0x7F as code page 437 (the IBM PC set, Linux's `codepage=437` default). Long names
//! are UTF-16LE. Names are returned as UTF-8 bytes: the long name when its entries are
//! intact and it is valid UTF-16, else the short name.
//!
//! Lookups are case-insensitive, as FAT is: a path component matches an entry when it
//! equals the entry's returned name byte for byte, or, failing that, when it matches
//! its long name or its short name (`NAME.EXT`, without padding) after both are folded
//! character by character to upper case. Folding uses Unicode's simple (one-to-one)
//! upper-case mapping and leaves characters whose upper case is several characters
//! (`ß`) unchanged — the same shape as the one-to-one up-case table Windows uses, so
//! ASCII behaves exactly like Windows and other scripts nearly so. When several
//! entries match (possible only on images written by tools that do not enforce
//! uniqueness), the byte-exact match wins, then the first in on-disk order.

/// Code page 437, bytes 0x80..=0xFF.
const CP437_HIGH: [char; 128] = [
    '\u{00C7}', '\u{00FC}', '\u{00E9}', '\u{00E2}', '\u{00E4}', '\u{00E0}', '\u{00E5}', '\u{00E7}',
    '\u{00EA}', '\u{00EB}', '\u{00E8}', '\u{00EF}', '\u{00EE}', '\u{00EC}', '\u{00C4}', '\u{00C5}',
    '\u{00C9}', '\u{00E6}', '\u{00C6}', '\u{00F4}', '\u{00F6}', '\u{00F2}', '\u{00FB}', '\u{00F9}',
    '\u{00FF}', '\u{00D6}', '\u{00DC}', '\u{00A2}', '\u{00A3}', '\u{00A5}', '\u{20A7}', '\u{0192}',
    '\u{00E1}', '\u{00ED}', '\u{00F3}', '\u{00FA}', '\u{00F1}', '\u{00D1}', '\u{00AA}', '\u{00BA}',
    '\u{00BF}', '\u{2310}', '\u{00AC}', '\u{00BD}', '\u{00BC}', '\u{00A1}', '\u{00AB}', '\u{00BB}',
    '\u{2591}', '\u{2592}', '\u{2593}', '\u{2502}', '\u{2524}', '\u{2561}', '\u{2562}', '\u{2556}',
    '\u{2555}', '\u{2563}', '\u{2551}', '\u{2557}', '\u{255D}', '\u{255C}', '\u{255B}', '\u{2510}',
    '\u{2514}', '\u{2534}', '\u{252C}', '\u{251C}', '\u{2500}', '\u{253C}', '\u{255E}', '\u{255F}',
    '\u{255A}', '\u{2554}', '\u{2569}', '\u{2566}', '\u{2560}', '\u{2550}', '\u{256C}', '\u{2567}',
    '\u{2568}', '\u{2564}', '\u{2565}', '\u{2559}', '\u{2558}', '\u{2552}', '\u{2553}', '\u{256B}',
    '\u{256A}', '\u{2518}', '\u{250C}', '\u{2588}', '\u{2584}', '\u{258C}', '\u{2590}', '\u{2580}',
    '\u{03B1}', '\u{00DF}', '\u{0393}', '\u{03C0}', '\u{03A3}', '\u{03C3}', '\u{00B5}', '\u{03C4}',
    '\u{03A6}', '\u{0398}', '\u{03A9}', '\u{03B4}', '\u{221E}', '\u{03C6}', '\u{03B5}', '\u{2229}',
    '\u{2261}', '\u{00B1}', '\u{2265}', '\u{2264}', '\u{2320}', '\u{2321}', '\u{00F7}', '\u{2248}',
    '\u{00B0}', '\u{2219}', '\u{00B7}', '\u{221A}', '\u{207F}', '\u{00B2}', '\u{25A0}', '\u{00A0}',
];

/// The 8.3 name of a short entry, as displayed: `NAME.EXT`, padding removed, the
/// first-byte 0x05 escape undone (it stands for 0xE5, which would mean "deleted"),
/// and the Windows NT lower-case flags (byte 12, 0x08 base and 0x10 extension) applied.
pub(crate) fn short_name_display(raw: &[u8; 11], nt_flags: u8) -> String {
    let mut base: Vec<u8> = raw[..8].to_vec();
    if base[0] == 0x05 {
        base[0] = 0xE5;
    }
    let trim = |v: &[u8]| -> Vec<u8> {
        let end = v.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        v[..end].to_vec()
    };
    let mut base = trim(&base);
    let mut ext = trim(&raw[8..11]);
    if nt_flags & 0x08 != 0 {
        base.make_ascii_lowercase();
    }
    if nt_flags & 0x10 != 0 {
        ext.make_ascii_lowercase();
    }
    let mut s = oem_to_string(&base);
    if !ext.is_empty() {
        s.push('.');
        s.push_str(&oem_to_string(&ext));
    }
    s
}

/// A volume label (11 OEM bytes, space padded) as text.
pub(crate) fn label_display(raw: &[u8; 11]) -> String {
    oem_to_string(raw).trim_end_matches(' ').to_string()
}

fn oem_to_string(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            // A '/' or NUL would split or end a path: such (corrupt) names are shown
            // with '_' in their place.
            b'/' | 0 => '_',
            0x00..=0x7F => b as char,
            _ => CP437_HIGH[(b - 0x80) as usize],
        })
        .collect()
}

/// The checksum of an 11-byte short name that binds VFAT long-name entries to it.
pub(crate) fn lfn_checksum(raw: &[u8; 11]) -> u8 {
    raw.iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// Decodes long-name UTF-16 units (up to the 0x0000 terminator). `None` if the
/// units are not valid UTF-16, or the name could not be a path component.
pub(crate) fn decode_long_name(units: &[u16]) -> Option<String> {
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    // 0xFFFF is padding after the terminator; inside a name it means the slots lie.
    if units[..end].contains(&0xFFFF) {
        return None;
    }
    let s: String = char::decode_utf16(units[..end].iter().copied())
        .collect::<Result<String, _>>()
        .ok()?;
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        return None;
    }
    Some(s)
}

/// One character folded for comparison (see the module doc).
fn fold(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Case-insensitive equality of two names, as lookups use it.
pub(crate) fn eq_fold(a: &str, b: &str) -> bool {
    a.chars().map(fold).eq(b.chars().map(fold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(short_name_display(b"README  TXT", 0), "README.TXT");
        assert_eq!(short_name_display(b"README  TXT", 0x18), "readme.txt");
        assert_eq!(short_name_display(b"README  TXT", 0x08), "readme.TXT");
        assert_eq!(short_name_display(b"EFI        ", 0), "EFI");
        assert_eq!(short_name_display(b"\x05BC     X  ", 0), "\u{3c3}BC.X");
        assert_eq!(short_name_display(b"A/B     \x00  ", 0), "A_B._");
    }

    #[test]
    fn checksum_matches_the_specification_example() {
        // The checksum algorithm from the FAT specification, computed by hand for
        // "FOO     BAR": each step is rotate-right then add.
        let mut sum = 0u8;
        for &b in b"FOO     BAR" {
            sum = (if sum & 1 != 0 { 0x80 } else { 0 }) + (sum >> 1);
            sum = sum.wrapping_add(b);
        }
        assert_eq!(lfn_checksum(b"FOO     BAR"), sum);
    }

    #[test]
    fn long_names() {
        let units: Vec<u16> = "Straße ü".encode_utf16().chain([0, 0xFFFF]).collect();
        assert_eq!(decode_long_name(&units).as_deref(), Some("Straße ü"));
        assert_eq!(decode_long_name(&[0xD800, 0x41, 0]), None);
        assert_eq!(decode_long_name(&[0x2F, 0]), None);
        assert_eq!(decode_long_name(&[0]), None);
    }

    #[test]
    fn folding() {
        assert!(eq_fold("readme.TXT", "README.txt"));
        assert!(eq_fold("Ünïcödé", "üNÏCÖDÉ"));
        assert!(!eq_fold("straße", "STRASSE"));
        assert!(!eq_fold("a", "ab"));
    }
}
