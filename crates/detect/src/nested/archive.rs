//! Streamed archives: POSIX ustar / GNU tar (with GNU long names and pax `path`
//! records) and cpio (newc, crc, odc). Each regular member is scanned as its own
//! stream; everything else is skipped. Sources: POSIX.1-2017 `pax` (ustar header
//! layout, pax extended headers), GNU tar manual "Basic Tar Format" (`L` records,
//! base-256 sizes), cpio(5) from libarchive (newc/crc and odc headers).

use std::io::{self, Read};

use super::Walk;
use crate::engine::Scanner;

/// Longest name record (GNU `L`, pax `x`) read.
const MAX_NAME_RECORD: u64 = 64 << 10;

/// The header checksum: the sum of all bytes with the checksum field as spaces.
pub(crate) fn tar_checksum_ok(h: &[u8]) -> bool {
    let Some(want) = octal(&h[148..156]) else {
        return false;
    };
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    sum == want
}

fn octal(f: &[u8]) -> Option<u64> {
    let t: &[u8] = {
        let s = f.iter().position(|&c| c != b' ').unwrap_or(f.len());
        let e = f[s..]
            .iter()
            .position(|&c| c == 0 || c == b' ')
            .map_or(f.len(), |p| s + p);
        &f[s..e]
    };
    if t.is_empty() {
        return Some(0);
    }
    t.iter().try_fold(0u64, |a, &c| {
        (b'0'..=b'7')
            .contains(&c)
            .then(|| a.checked_mul(8).map(|a| a + (c - b'0') as u64))
            .flatten()
    })
}

/// A size field: octal, or GNU base-256 when the high bit is set.
fn tar_size(f: &[u8]) -> Option<u64> {
    if f[0] & 0x80 != 0 {
        let mut v: u64 = (f[0] & 0x7f) as u64;
        for &b in &f[1..] {
            v = v.checked_mul(256)? + b as u64;
        }
        Some(v)
    } else {
        octal(f)
    }
}

fn cstr(f: &[u8]) -> String {
    let e = f.iter().position(|&c| c == 0).unwrap_or(f.len());
    String::from_utf8_lossy(&f[..e]).into_owned()
}

/// Skips `n` bytes of `r`.
fn skip(r: &mut dyn Read, n: u64) -> io::Result<()> {
    let got = io::copy(&mut Read::take(&mut *r, n), &mut io::sink())?;
    if got < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "archive ends inside a member",
        ));
    }
    Ok(())
}

fn read_record(r: &mut dyn Read, n: u64) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    Read::take(&mut *r, n.min(MAX_NAME_RECORD)).read_to_end(&mut v)?;
    if n > MAX_NAME_RECORD {
        skip(r, n - MAX_NAME_RECORD)?;
    }
    Ok(v)
}

/// The `path=` record of a pax extended header (`LEN path=VALUE\n`).
fn pax_path(rec: &[u8]) -> Option<String> {
    let mut i = 0;
    while i < rec.len() {
        let sp = rec[i..].iter().position(|&c| c == b' ')? + i;
        let len: usize = std::str::from_utf8(&rec[i..sp]).ok()?.parse().ok()?;
        let end = i.checked_add(len)?.min(rec.len());
        let kv = rec.get(sp + 1..end.saturating_sub(1))?;
        if let Some(v) = kv.strip_prefix(b"path=") {
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        if len == 0 {
            return None;
        }
        i = end;
    }
    None
}

pub(crate) fn tar(
    w: &mut Walk,
    r: &mut dyn Read,
    deeper: &mut [Scanner],
    depth: usize,
    path: &str,
) -> io::Result<()> {
    let mut h = [0u8; 512];
    let mut long_name: Option<String> = None;
    loop {
        if let Err(e) = r.read_exact(&mut h) {
            return if e.kind() == io::ErrorKind::UnexpectedEof {
                Ok(())
            } else {
                Err(e)
            };
        }
        if h.iter().all(|&b| b == 0) {
            return Ok(()); // end-of-archive blocks
        }
        if !tar_checksum_ok(&h) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad tar header checksum",
            ));
        }
        let size = tar_size(&h[124..136])
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad tar size field"))?;
        let padded = size.div_ceil(512) * 512;
        let name = long_name.take().unwrap_or_else(|| {
            let n = cstr(&h[0..100]);
            let prefix = if &h[257..262] == b"ustar" {
                cstr(&h[345..500])
            } else {
                String::new()
            };
            if prefix.is_empty() {
                n
            } else {
                format!("{prefix}/{n}")
            }
        });
        match h[156] {
            b'L' => {
                let rec = read_record(r, size)?;
                long_name = Some(cstr(&rec));
                skip(r, padded - size)?;
            }
            b'x' => {
                let rec = read_record(r, size)?;
                long_name = pax_path(&rec);
                skip(r, padded - size)?;
            }
            b'0' | 0 | b'7' => {
                let mut member = Read::take(&mut *r, size);
                let go_on = w.member(deeper, &mut member, depth, path, &format!("tar:{name}"))?;
                // What the member scan left unread (a bound stopped it).
                io::copy(&mut member, &mut io::sink())?;
                if member.limit() > 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "archive ends inside a member",
                    ));
                }
                skip(r, padded - size)?;
                if !go_on {
                    return Ok(());
                }
            }
            _ => skip(r, padded)?,
        }
    }
}

fn hex8(f: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(f).ok()?, 16).ok()
}

fn oct(f: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(f).ok()?, 8).ok()
}

pub(crate) fn cpio(
    w: &mut Walk,
    r: &mut dyn Read,
    deeper: &mut [Scanner],
    depth: usize,
    path: &str,
) -> io::Result<()> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad cpio header: {what}"),
        )
    };
    loop {
        let mut magic = [0u8; 6];
        if let Err(e) = r.read_exact(&mut magic) {
            return if e.kind() == io::ErrorKind::UnexpectedEof {
                Ok(())
            } else {
                Err(e)
            };
        }
        let (mode, namesize, filesize, newc) = match &magic {
            b"070701" | b"070702" => {
                let mut f = [0u8; 104];
                r.read_exact(&mut f)?;
                let field = |i: usize| hex8(&f[i * 8..i * 8 + 8]).ok_or_else(|| bad("hex field"));
                (field(1)?, field(11)?, field(6)?, true)
            }
            b"070707" => {
                let mut f = [0u8; 70];
                r.read_exact(&mut f)?;
                let mode = oct(&f[12..18]).ok_or_else(|| bad("mode"))?;
                let namesize = oct(&f[53..59]).ok_or_else(|| bad("name size"))?;
                let filesize = oct(&f[59..70]).ok_or_else(|| bad("file size"))?;
                (mode, namesize, filesize, false)
            }
            _ => return Err(bad("magic")),
        };
        if namesize == 0 || namesize > 4096 {
            return Err(bad("name size"));
        }
        let mut name = vec![0u8; namesize as usize];
        r.read_exact(&mut name)?;
        let name = cstr(&name);
        if newc {
            skip(r, (4 - (110 + namesize) % 4) % 4)?;
        }
        if name == "TRAILER!!!" {
            return Ok(());
        }
        let data_pad = if newc { (4 - filesize % 4) % 4 } else { 0 };
        if mode & 0o170000 == 0o100000 {
            let mut member = Read::take(&mut *r, filesize);
            let go_on = w.member(deeper, &mut member, depth, path, &format!("cpio:{name}"))?;
            io::copy(&mut member, &mut io::sink())?;
            if member.limit() > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "archive ends inside a member",
                ));
            }
            skip(r, data_pad)?;
            if !go_on {
                return Ok(());
            }
        } else {
            skip(r, filesize + data_pad)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(octal(b"0000644\0"), Some(0o644));
        assert_eq!(octal(b"   12 \0"), Some(0o12));
        assert_eq!(octal(b"89"), None);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 5;
        assert_eq!(tar_size(&big), Some(5));
        assert_eq!(
            pax_path(b"20 path=etc/app.key\n"),
            Some("etc/app.key".into())
        );
    }
}
