//! rpm's ndb backend (`Packages.db`, SUSE's default since openSUSE 15.2 / SLES 15
//! SP2): every package header blob it stores, read-only.
//!
//! Layout (all integers little-endian; rpm `lib/backend/ndb/rpmpkg.c`):
//!
//! - a 32-byte file header: magic `RpmP`, version 0, generation, `slotnpages`
//!   (pages of 4096 bytes holding slots, from the file's start), next package index;
//! - slots of 16 bytes after the header, filling the slot pages: magic `Slot`,
//!   package index, block offset, block count (blocks are 16 bytes). A slot whose
//!   block offset is 0 is free;
//! - at a used slot's block offset, a blob: head (magic `BlbS`, package index,
//!   timestamp, blob length), the header blob, zero padding to the block count, and a
//!   tail (Adler-32 of head + blob + padding, blob length, magic `BlbE`).
//!
//! Every slot, blob head and tail is checked the way rpm checks it when reading
//! (bounds, magics, index, length, block count, checksum): a mismatch is a typed
//! error naming the byte, so a half-written database is refused rather than read in
//! part. Work is bounded by the file size: the slot pages lie inside the file.

use crate::bytes::{slice, u32e};
use crate::{Error, Result};

const FILE_MAGIC: u32 = u32::from_le_bytes(*b"RpmP");
const SLOT_MAGIC: u32 = u32::from_le_bytes(*b"Slot");
const HEAD_MAGIC: u32 = u32::from_le_bytes(*b"BlbS");
const TAIL_MAGIC: u32 = u32::from_le_bytes(*b"BlbE");

const FILE_HEADER: usize = 32;
const SLOT: usize = 16;
const BLK: usize = 16;
const PAGE: usize = 4096;
const HEAD: usize = 16;
const TAIL: usize = 12;

fn corrupt(offset: usize, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "rpm ndb Packages.db",
        offset: offset as u64,
        reason: reason.into(),
    }
}

fn le(d: &[u8], at: usize, what: &'static str) -> Result<u32> {
    u32e(d, at, true, what)
}

/// Adler-32 (RFC 1950), as rpm computes it over a blob.
fn adler32(parts: &[&[u8]]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    for part in parts {
        // 5552 bytes is the most that cannot overflow u32 before the reduction.
        for chunk in part.chunks(5552) {
            for &x in chunk {
                a += u32::from(x);
                b += a;
            }
            a %= MOD;
            b %= MOD;
        }
    }
    (b << 16) | a
}

/// One used slot: where its blob lies.
struct Slot {
    at: usize,
    pkgidx: u32,
    blkoff: usize,
    blkcnt: usize,
}

/// Every (package index, header blob) of the database, in slot order.
pub fn blobs(data: &[u8]) -> Result<Vec<(u32, Vec<u8>)>> {
    if le(data, 0, "ndb file header")? != FILE_MAGIC {
        return Err(corrupt(
            0,
            "not an ndb package database (magic is not RpmP)",
        ));
    }
    let version = le(data, 4, "ndb file header")?;
    if version != 0 {
        return Err(Error::Unsupported(format!(
            "ndb version {version} (only 0 is known)"
        )));
    }
    let pages = le(data, 12, "ndb file header")? as usize;
    let slot_end = pages
        .checked_mul(PAGE)
        .filter(|&e| pages > 0 && e <= data.len())
        .ok_or_else(|| {
            corrupt(
                12,
                format!("{pages} slot pages do not fit the {} byte file", data.len()),
            )
        })?;
    if !data.len().is_multiple_of(BLK) {
        return Err(corrupt(
            data.len(),
            "file size is not a whole number of 16-byte blocks",
        ));
    }
    let slots = read_slots(data, slot_end)?;
    let mut out = Vec::with_capacity(slots.len());
    for s in &slots {
        out.push((s.pkgidx, read_blob(data, s)?.to_vec()));
    }
    Ok(out)
}

/// The used slots of the slot pages (`[FILE_HEADER, slot_end)`); at most
/// `slot_end / 16` iterations.
fn read_slots(data: &[u8], slot_end: usize) -> Result<Vec<Slot>> {
    let min_blkoff = slot_end / BLK;
    let file_blks = data.len() / BLK;
    let mut slots: Vec<Slot> = Vec::new();
    // A set, not a scan of `slots`: a hostile file may hold a million slots.
    let mut seen = std::collections::HashSet::new();
    for at in (FILE_HEADER..slot_end).step_by(SLOT) {
        if le(data, at, "ndb slot")? != SLOT_MAGIC {
            return Err(corrupt(at, "slot magic is not Slot"));
        }
        let blkoff = le(data, at + 8, "ndb slot")? as usize;
        if blkoff == 0 {
            continue;
        }
        let pkgidx = le(data, at + 4, "ndb slot")?;
        let blkcnt = le(data, at + 12, "ndb slot")? as usize;
        if pkgidx == 0 || blkcnt == 0 || blkoff < min_blkoff {
            return Err(corrupt(
                at,
                format!("slot of package {pkgidx} points into the slot pages or is empty"),
            ));
        }
        if blkoff.saturating_add(blkcnt) > file_blks {
            return Err(corrupt(
                at,
                format!("slot of package {pkgidx} runs past the file's end (truncated database)"),
            ));
        }
        if !seen.insert(pkgidx) {
            return Err(corrupt(at, format!("two slots name package {pkgidx}")));
        }
        slots.push(Slot {
            at,
            pkgidx,
            blkoff,
            blkcnt,
        });
    }
    // Blobs must not overlap (rpm refuses the same when it writes).
    let mut order: Vec<&Slot> = slots.iter().collect();
    order.sort_by_key(|s| s.blkoff);
    for w in order.windows(2) {
        if w[0].blkoff + w[0].blkcnt > w[1].blkoff {
            return Err(corrupt(
                w[1].at,
                format!(
                    "blobs of packages {} and {} overlap",
                    w[0].pkgidx, w[1].pkgidx
                ),
            ));
        }
    }
    Ok(slots)
}

/// The header blob a slot points at, after rpm's checks of head, tail and checksum.
fn read_blob<'a>(data: &'a [u8], s: &Slot) -> Result<&'a [u8]> {
    let start = s.blkoff * BLK;
    let area = slice(data, start, s.blkcnt * BLK, "ndb blob")?;
    let head = slice(area, 0, HEAD, "ndb blob head")?;
    if le(head, 0, "ndb blob head")? != HEAD_MAGIC {
        return Err(corrupt(start, "blob head magic is not BlbS"));
    }
    if le(head, 4, "ndb blob head")? != s.pkgidx {
        return Err(corrupt(
            start + 4,
            format!("blob names another package than its slot ({})", s.pkgidx),
        ));
    }
    let len = le(head, 12, "ndb blob head")? as usize;
    if (HEAD + len + TAIL).div_ceil(BLK) != s.blkcnt {
        return Err(corrupt(
            start + 12,
            format!("blob length {len} does not fill its {} blocks", s.blkcnt),
        ));
    }
    let tail_at = area.len() - TAIL;
    let tail = &area[tail_at..];
    if le(tail, 8, "ndb blob tail")? != TAIL_MAGIC {
        return Err(corrupt(start + tail_at + 8, "blob tail magic is not BlbE"));
    }
    if le(tail, 4, "ndb blob tail")? as usize != len {
        return Err(corrupt(
            start + tail_at + 4,
            "blob tail length differs from its head",
        ));
    }
    if adler32(&[&area[..tail_at]]) != le(tail, 0, "ndb blob tail")? {
        return Err(corrupt(
            start + tail_at,
            format!("Adler-32 mismatch in the blob of package {}", s.pkgidx),
        ));
    }
    Ok(&area[HEAD..HEAD + len])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A database as rpm's writer lays it out: one slot page, blobs after it.
    pub(crate) fn build(blobs: &[(u32, &[u8])]) -> Vec<u8> {
        let mut d = vec![0u8; PAGE];
        d[..4].copy_from_slice(b"RpmP");
        d[8..12].copy_from_slice(&1u32.to_le_bytes());
        d[12..16].copy_from_slice(&1u32.to_le_bytes());
        d[16..20].copy_from_slice(&(blobs.len() as u32 + 1).to_le_bytes());
        for at in (FILE_HEADER..PAGE).step_by(SLOT) {
            d[at..at + 4].copy_from_slice(b"Slot");
        }
        for (i, (idx, b)) in blobs.iter().enumerate() {
            let blkoff = d.len() / BLK;
            let blkcnt = (HEAD + b.len() + TAIL).div_ceil(BLK);
            let mut area = Vec::new();
            area.extend_from_slice(b"BlbS");
            area.extend_from_slice(&idx.to_le_bytes());
            area.extend_from_slice(&7u32.to_le_bytes());
            area.extend_from_slice(&(b.len() as u32).to_le_bytes());
            area.extend_from_slice(b);
            area.resize(blkcnt * BLK - TAIL, 0);
            let sum = adler32(&[&area]);
            area.extend_from_slice(&sum.to_le_bytes());
            area.extend_from_slice(&(b.len() as u32).to_le_bytes());
            area.extend_from_slice(b"BlbE");
            d.extend_from_slice(&area);
            let at = FILE_HEADER + i * SLOT;
            d[at + 4..at + 8].copy_from_slice(&idx.to_le_bytes());
            d[at + 8..at + 12].copy_from_slice(&(blkoff as u32).to_le_bytes());
            d[at + 12..at + 16].copy_from_slice(&(blkcnt as u32).to_le_bytes());
        }
        d
    }

    #[test]
    fn adler32_rfc1950_vector() {
        // RFC 1950's definition on "Wikipedia": 0x11E60398 (the common test vector).
        assert_eq!(adler32(&[b"Wikipedia"]), 0x11E6_0398);
    }

    #[test]
    fn reads_what_was_laid_out() {
        let a = crate::rpm::header::tests::sample();
        let b = vec![0x5a; 5000];
        let d = build(&[(3, &a), (9, &b)]);
        let got = blobs(&d).unwrap();
        assert_eq!(got, vec![(3, a.clone()), (9, b)]);
        assert!(crate::rpm::parse_header(&got[0].1).is_ok());
    }

    #[test]
    fn structural_errors() {
        let dup = build(&[(4, b"one"), (4, b"two")]);
        assert!(
            matches!(blobs(&dup), Err(Error::Corrupt { .. })),
            "two slots, one package"
        );
        let mut not = build(&[(1, b"x")]);
        not[0] = b'X';
        assert!(matches!(blobs(&not), Err(Error::Corrupt { offset: 0, .. })));
        let mut v1 = build(&[(1, b"x")]);
        v1[4] = 1;
        assert!(matches!(blobs(&v1), Err(Error::Unsupported(_))));
        assert!(blobs(&build(&[])).unwrap().is_empty(), "an empty database");
    }

    #[test]
    fn every_truncation_and_flip_is_an_error_or_a_database() {
        let a = crate::rpm::header::tests::sample();
        let d = build(&[(1, &a), (2, b"xyz")]);
        for n in (0..d.len()).step_by(7) {
            let _ = blobs(&d[..n]);
        }
        for i in (0..d.len()).step_by(3) {
            let mut e = d.clone();
            e[i] ^= 0x41;
            // A flip in a blob's bytes is caught by its checksum; anything else by
            // the structure checks, or it lands in unused slot bytes.
            if let Ok(got) = blobs(&e) {
                assert_eq!(got.len(), 2, "flip at {i}");
            }
        }
        let mut e = d.clone();
        let last = e.len() - 20;
        e[last] ^= 1;
        assert!(matches!(blobs(&e), Err(Error::Corrupt { .. })), "checksum");
    }
}
