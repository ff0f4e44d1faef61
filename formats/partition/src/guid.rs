//! GUIDs as GPT stores them: the first three fields little-endian, the rest as bytes.

use std::fmt;

/// A GUID in its on-disk byte order. `Display` gives the usual upper-case text form
/// (`C12A7328-F81F-11D2-BA4B-00A0C93EC93B`), as `sfdisk` and `sgdisk` print it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    pub const ZERO: Guid = Guid([0; 16]);

    /// Reads a GUID from 16 on-disk bytes; `None` if `b` is shorter.
    pub fn from_slice(b: &[u8]) -> Option<Guid> {
        let mut g = [0u8; 16];
        g.copy_from_slice(b.get(..16)?);
        Some(Guid(g))
    }

    /// Parses the text form (case-insensitive, with dashes). Used for the table of
    /// well-known types, so they can be written the way specifications print them.
    pub fn parse(s: &str) -> Option<Guid> {
        let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
        if hex.len() != 32 || s.len() != 36 {
            return None;
        }
        let mut text = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            *text.get_mut(i)? = u8::from_str_radix(s, 16).ok()?;
        }
        // Text order → on-disk order: swap the first three fields.
        let mut d = text;
        d[0..4].reverse();
        d[4..6].reverse();
        d[6..8].reverse();
        Some(Guid(d))
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_text_and_disk_order() {
        let g = Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        assert_eq!(g.0[..4], [0x28, 0x73, 0x2A, 0xC1]);
        assert_eq!(g.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), Some(g));
        assert_eq!(Guid::parse("C12A7328F81F11D2BA4B00A0C93EC93B"), None);
        assert_eq!(Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93G"), None);
        assert!(Guid::from_slice(&[0; 15]).is_none());
        assert!(Guid::from_slice(&[0; 16]).unwrap().is_zero());
    }
}
