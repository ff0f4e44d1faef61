//! A minimal DER reader: definite lengths only, every length checked against the
//! bytes that are really there. Enough to tell a real key structure from base64 noise.

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OID: u8 = 0x06;
pub(crate) const NULL: u8 = 0x05;

pub(crate) struct Der<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Der<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Der { data, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub(crate) fn remaining_slice(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    /// The unread bytes, for `only(…)` wrappers whose content is not itself DER.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.remaining_slice()
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// Reads one TLV: (tag, content).
    pub(crate) fn read(&mut self) -> Option<(u8, &'a [u8])> {
        let tag = *self.data.get(self.pos)?;
        let first = *self.data.get(self.pos + 1)?;
        let mut p = self.pos + 2;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                return None; // indefinite or absurd lengths are not DER keys
            }
            let mut len = 0usize;
            for _ in 0..n {
                len = (len << 8) | *self.data.get(p)? as usize;
                p += 1;
            }
            if len < 0x80 {
                return None; // non-minimal length encoding: not DER
            }
            len
        };
        let end = p.checked_add(len)?;
        let content = self.data.get(p..end)?;
        self.pos = end;
        Some((tag, content))
    }

    pub(crate) fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.read()? {
            (t, c) if t == tag => Some(c),
            _ => None,
        }
    }

    /// A whole buffer that is exactly one TLV of `tag`.
    pub(crate) fn only(data: &'a [u8], tag: u8) -> Option<Der<'a>> {
        let mut d = Der::new(data);
        let c = d.expect(tag)?;
        d.is_empty().then(|| Der::new(c))
    }
}

/// Bit length of a non-negative DER INTEGER; None for empty or negative ones.
pub(crate) fn uint_bits(content: &[u8]) -> Option<u32> {
    let first = *content.first()?;
    if first & 0x80 != 0 {
        return None;
    }
    let stripped: &[u8] = {
        let skip = content.iter().take_while(|&&b| b == 0).count();
        &content[skip..]
    };
    match stripped.first() {
        None => Some(0),
        Some(&b) => Some((stripped.len() as u32 - 1) * 8 + (8 - b.leading_zeros())),
    }
}

/// Small non-negative INTEGER value (version fields).
pub(crate) fn small_uint(content: &[u8]) -> Option<u64> {
    if content.is_empty() || content.len() > 8 || content[0] & 0x80 != 0 {
        return None;
    }
    Some(content.iter().fold(0u64, |a, &b| (a << 8) | b as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_bounded_by_the_data() {
        // SEQUENCE claiming 0x0100 bytes with 2 present.
        assert!(Der::new(&[0x30, 0x82, 0x01, 0x00, 1, 2]).read().is_none());
        // Indefinite length.
        assert!(Der::new(&[0x30, 0x80, 0, 0]).read().is_none());
        // Non-minimal long form.
        assert!(
            Der::new(&[0x30, 0x81, 0x05, 1, 2, 3, 4, 5])
                .read()
                .is_none()
        );
        let (t, c) = Der::new(&[0x02, 0x02, 0x01, 0x00]).read().unwrap();
        assert_eq!((t, c), (INTEGER, &[1u8, 0][..]));
    }

    #[test]
    fn integer_bits() {
        assert_eq!(uint_bits(&[0x00, 0x80]), Some(8));
        assert_eq!(uint_bits(&[0x01, 0x00]), Some(9));
        assert_eq!(uint_bits(&[0x80]), None);
        assert_eq!(uint_bits(&[]), None);
        assert_eq!(small_uint(&[0x01]), Some(1));
    }
}
