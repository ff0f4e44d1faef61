//! Zip (and jar, war, apk…): read whole (bounded), members located through the
//! central directory, stored and deflated members scanned. Source: PKWARE
//! APPNOTE.TXT §4.3 (end of central directory, central and local headers).
//! Zip64 and encrypted members are named in a warning, not opened.

use std::io::{self, Read};

use super::Walk;
use crate::engine::Scanner;

fn u16_at(b: &[u8], i: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?) as usize)
}

fn u32_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?) as u64)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zip: {what}"))
}

pub(crate) fn zip(
    w: &mut Walk,
    r: &mut dyn Read,
    deeper: &mut [Scanner],
    depth: usize,
    path: &str,
) -> io::Result<()> {
    let max = w.limits.max_zip;
    let mut data = Vec::new();
    Read::take(&mut *r, max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        w.warn(format!(
            "{}: zip larger than {max} bytes; its members were not scanned inside",
            if path.is_empty() { "the file" } else { path }
        ));
        return Ok(());
    }
    // End of central directory: the last `PK\x05\x06` within 64 KiB + 22 of the end.
    let tail = data.len().saturating_sub(65_557);
    let eocd = memchr::memmem::rfind(&data[tail..], b"PK\x05\x06")
        .map(|i| tail + i)
        .ok_or_else(|| bad("no end of central directory"))?;
    let count = u16_at(&data, eocd + 10).ok_or_else(|| bad("short end record"))?;
    let cd_off = u32_at(&data, eocd + 16).ok_or_else(|| bad("short end record"))?;
    if count == 0xFFFF || cd_off == 0xFFFF_FFFF {
        return Err(bad("zip64 archives are not opened"));
    }
    let mut p = cd_off as usize;
    let mut skipped = Vec::new();
    for _ in 0..count {
        if data.get(p..p + 4) != Some(b"PK\x01\x02") {
            return Err(bad("bad central directory entry"));
        }
        let field = |i: usize| u16_at(&data, p + i).ok_or_else(|| bad("short entry"));
        let flags = field(8)?;
        let method = field(10)?;
        let csize = u32_at(&data, p + 20).ok_or_else(|| bad("short entry"))?;
        let (nlen, elen, clen) = (field(28)?, field(30)?, field(32)?);
        let local = u32_at(&data, p + 42).ok_or_else(|| bad("short entry"))? as usize;
        let name_bytes = data
            .get(p + 46..p + 46 + nlen)
            .ok_or_else(|| bad("short name"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        p += 46 + nlen + elen + clen;
        if name.ends_with('/') {
            continue;
        }
        if flags & 1 != 0 || !matches!(method, 0 | 8) {
            skipped.push(name);
            continue;
        }
        if data.get(local..local + 4) != Some(b"PK\x03\x04") {
            return Err(bad("bad local header"));
        }
        let lnlen = u16_at(&data, local + 26).ok_or_else(|| bad("short local header"))?;
        let lelen = u16_at(&data, local + 28).ok_or_else(|| bad("short local header"))?;
        let start = local + 30 + lnlen + lelen;
        let body = data
            .get(start..start + csize as usize)
            .ok_or_else(|| bad("member outside the file"))?;
        let member = format!("zip:{name}");
        let go_on = if method == 0 {
            w.member(deeper, &mut &body[..], depth, path, &member)?
        } else {
            // Deflate: bounded like any compressed layer, by ratio to its size.
            let input = std::cell::Cell::new(body.len() as u64);
            let hit_before = w.budget.hit.get();
            let mut bounded = super::Bounded {
                inner: flate2::read::DeflateDecoder::new(body),
                budget: w.budget,
                input: &input,
                out: 0,
            };
            let go_on = w.member(deeper, &mut bounded, depth, path, &member)?;
            if w.budget.hit.get() && !hit_before {
                w.warn(format!(
                    "{}: inflating stopped (bound: {} bytes per file, {}x per member); a zip bomb? The rest was not scanned inside",
                    super::join(path, &member),
                    w.limits.max_total,
                    w.limits.max_ratio
                ));
            }
            go_on
        };
        if !go_on {
            break;
        }
    }
    if !skipped.is_empty() {
        w.warn(format!(
            "{}: {} encrypted or unsupported zip member(s) not scanned inside (first: {})",
            if path.is_empty() { "the file" } else { path },
            skipped.len(),
            skipped[0]
        ));
    }
    Ok(())
}
