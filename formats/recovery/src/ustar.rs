//! The 512-byte ustar header block (POSIX.1-1988 layout, as extended by pax):
//! encoding and decoding of its fixed fields. Values that do not fit a field go in
//! a pax record (`pax.rs`); sizes additionally use GNU base-256 so that readers
//! which compute the next header's offset from the ustar field (Python's
//! `tarfile` for sparse members) stay correct beyond 8 GiB.

use crate::error::{Error, Result};

pub const BLOCK: usize = 512;

pub const TYPE_FILE: u8 = b'0';
pub const TYPE_HARDLINK: u8 = b'1';
pub const TYPE_SYMLINK: u8 = b'2';
pub const TYPE_CHAR: u8 = b'3';
pub const TYPE_BLOCK: u8 = b'4';
pub const TYPE_DIR: u8 = b'5';
pub const TYPE_FIFO: u8 = b'6';
pub const TYPE_CONTIG: u8 = b'7';
pub const TYPE_PAX: u8 = b'x';
pub const TYPE_PAX_GLOBAL: u8 = b'g';
pub const TYPE_GNU_LONGNAME: u8 = b'L';
pub const TYPE_GNU_LONGLINK: u8 = b'K';

/// Largest value of an octal field of `width` bytes (width-1 digits + NUL).
pub fn octal_max(width: usize) -> u64 {
    (1u64 << (3 * (width as u32 - 1))) - 1
}

/// Fields of a header block as we write them.
pub struct Fields<'a> {
    pub name: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub typeflag: u8,
    pub linkname: &'a [u8],
    pub uname: &'a [u8],
    pub gname: &'a [u8],
    pub devmajor: u64,
    pub devminor: u64,
}

fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

fn put_numeric(field: &mut [u8], value: u64) {
    if value <= octal_max(field.len()) {
        put_octal(field, value);
    } else {
        // GNU base-256: high bit of the first byte set, big-endian binary.
        field.fill(0);
        let be = value.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&be);
        field[0] |= 0x80;
    }
}

fn put_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Builds a header block. Callers have already moved values that do not fit
/// into pax records; here they are clamped (octal fields) or base-256 (size).
pub fn encode(f: &Fields<'_>) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_bytes(&mut b[0..100], f.name);
    put_octal(&mut b[100..108], u64::from(f.mode & 0o7777));
    put_octal(&mut b[108..116], f.uid.min(octal_max(8)));
    put_octal(&mut b[116..124], f.gid.min(octal_max(8)));
    put_numeric(&mut b[124..136], f.size);
    put_octal(&mut b[136..148], f.mtime.min(octal_max(12)));
    b[156] = f.typeflag;
    put_bytes(&mut b[157..257], f.linkname);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put_bytes(&mut b[265..297], f.uname);
    put_bytes(&mut b[297..329], f.gname);
    put_octal(&mut b[329..337], f.devmajor.min(octal_max(8)));
    put_octal(&mut b[337..345], f.devminor.min(octal_max(8)));
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

/// A decoded header block (ustar or GNU; pax records are applied by the caller).
#[derive(Debug, Clone)]
pub struct Decoded {
    pub name: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub typeflag: u8,
    pub linkname: Vec<u8>,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub devmajor: u64,
    pub devminor: u64,
}

fn cstr(field: &[u8]) -> Vec<u8> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

fn parse_numeric(field: &[u8], what: &str, offset: u64) -> Result<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err(Error::Tar(format!(
                "negative base-256 {what} in header at {offset}"
            )));
        }
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| Error::Tar(format!("{what} overflows in header at {offset}")))?;
        }
        return Ok(v);
    }
    let mut v: u64 = 0;
    let mut seen = false;
    for &b in field {
        match b {
            b'0'..=b'7' => {
                seen = true;
                v = v
                    .checked_mul(8)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                    .ok_or_else(|| Error::Tar(format!("{what} overflows in header at {offset}")))?;
            }
            b' ' if !seen => {}
            0 | b' ' => break,
            _ => {
                return Err(Error::Tar(format!(
                    "bad octal {what} in header at {offset}"
                )));
            }
        }
    }
    Ok(v)
}

/// True for an all-zero block (end of archive).
pub fn is_zero(b: &[u8; BLOCK]) -> bool {
    b.iter().all(|&x| x == 0)
}

pub fn decode(b: &[u8; BLOCK], offset: u64) -> Result<Decoded> {
    let stored = parse_numeric(&b[148..156], "checksum", offset)?;
    let sum: u64 = b
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(x)
            }
        })
        .sum();
    if stored != sum {
        return Err(Error::Tar(format!(
            "header checksum mismatch at payload offset {offset}"
        )));
    }
    Ok(Decoded {
        name: cstr(&b[0..100]),
        mode: parse_numeric(&b[100..108], "mode", offset)? as u32,
        uid: parse_numeric(&b[108..116], "uid", offset)?,
        gid: parse_numeric(&b[116..124], "gid", offset)?,
        size: parse_numeric(&b[124..136], "size", offset)?,
        mtime: parse_numeric(&b[136..148], "mtime", offset)? as i64,
        typeflag: b[156],
        linkname: cstr(&b[157..257]),
        uname: cstr(&b[265..297]),
        gname: cstr(&b[297..329]),
        devmajor: parse_numeric(&b[329..337], "devmajor", offset)?,
        devminor: parse_numeric(&b[337..345], "devminor", offset)?,
    })
}

/// Bytes of padding after `size` bytes of member data.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}
