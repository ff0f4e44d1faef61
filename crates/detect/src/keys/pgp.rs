//! OpenPGP transferable secret keys (RFC 4880 / RFC 9580): the armor's CRC-24 must
//! match and the first packet must be a Secret-Key packet.

fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0x00B7_04CE;
    for &b in data {
        crc ^= (b as u32) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4CFB;
            }
        }
    }
    crc & 0x00FF_FFFF
}

fn algo_name(a: u8) -> &'static str {
    match a {
        1..=3 => "RSA",
        16 => "ElGamal",
        17 => "DSA",
        18 => "ECDH",
        19 => "ECDSA",
        22 => "EdDSA",
        25 => "X25519",
        26 => "X448",
        27 => "Ed25519",
        28 => "Ed448",
        _ => "unknown algorithm",
    }
}

/// The header of the first packet: (tag, header length, body length). Partial
/// lengths are refused (key packets never use them).
fn packet_header(data: &[u8]) -> Option<(u8, usize, usize)> {
    let &b = data.first()?;
    if b & 0x80 == 0 {
        return None;
    }
    let r: (u8, usize, usize) = if b & 0x40 != 0 {
        let l0 = *data.get(1)? as usize;
        match l0 {
            0..=191 => (b & 0x3f, 2, l0),
            192..=223 => (
                b & 0x3f,
                3,
                ((l0 - 192) << 8) + *data.get(2)? as usize + 192,
            ),
            255 => {
                let l = data.get(2..6)?;
                (
                    b & 0x3f,
                    6,
                    u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize,
                )
            }
            _ => return None, // partial lengths are not allowed for key packets
        }
    } else {
        let tag = (b >> 2) & 0x0f;
        match b & 3 {
            0 => (tag, 2, *data.get(1)? as usize),
            1 => (
                tag,
                3,
                u16::from_be_bytes([*data.get(1)?, *data.get(2)?]) as usize,
            ),
            2 => {
                let l = data.get(1..5)?;
                (
                    tag,
                    5,
                    u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize,
                )
            }
            _ => return None,
        }
    };
    Some(r)
}

/// Header plus body length of the first packet.
pub(crate) fn packet_len(data: &[u8]) -> Option<usize> {
    let (_, hdr, len) = packet_header(data)?;
    hdr.checked_add(len)
}

pub(crate) fn describe(data: &[u8], crc: Option<u32>) -> Option<String> {
    if let Some(c) = crc
        && crc24(data) != c
    {
        return None;
    }
    let (tag, hdr, len) = packet_header(data)?;
    if tag != 5 {
        return None;
    }
    let body = data.get(hdr..hdr.checked_add(len)?)?;
    let version = *body.first()?;
    let algo = match version {
        3 => *body.get(7)?,
        4..=6 => *body.get(5)?,
        _ => return None,
    };
    if body.len() < 12 {
        return None;
    }
    Some(format!("PGP secret key (v{version}, {})", algo_name(algo)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc24_of_rfc_example() {
        // The CRC-24 of no data is the initial value.
        assert_eq!(super::crc24(b""), 0x00B7_04CE);
    }
}
