//! Berkeley DB (rpm's `Packages` on RHEL 7/8 and Amazon Linux 2): every
//! key/data pair of a hash or btree database, read by scanning its pages in
//! order — no bucket or tree navigation is needed to list everything, and a
//! linear scan cannot loop.
//!
//! Layout: page 0 is the metadata page (magic at byte 12 in the creator's byte
//! order: hash `0x061561`, btree `0x053162`; page size at byte 20). Every page
//! starts with a 26-byte header (`pgno` 8, `next_pgno` 16, `entries` 20,
//! `hf_offset` 22, `type` 25) followed by `entries` u16 item offsets. Hash
//! pages (type 2 or 13) hold items `[type u8][data…]` (each item runs to the
//! previous item's start), btree leaves (type 5) `[len u16][type u8][data]`;
//! an off-page item (type 3) names the first overflow page (type 7, data
//! `hf_offset` bytes long after the header, chained by `next_pgno`) and the
//! total length. Items come in key/data pairs.
//!
//! Reference: Berkeley DB 5.3 `dbinc/db_page.h`.

use crate::bytes::{slice, u16e, u32e};
use crate::{Error, Result};

const HASH_MAGIC: u32 = 0x0006_1561;
const BTREE_MAGIC: u32 = 0x0005_3162;
const PAGE_HEADER: usize = 26;

const P_HASH_UNSORTED: u8 = 2;
const P_LBTREE: u8 = 5;
const P_OVERFLOW: u8 = 7;
const P_HASH: u8 = 13;

const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
const B_KEYDATA: u8 = 1;
const B_OVERFLOW: u8 = 3;

/// Most bytes one value may have (rpm caps headers at 256 MiB).
const MAX_VALUE: usize = 256 << 20;

fn corrupt(offset: usize, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "berkeley db",
        offset: offset as u64,
        reason: reason.into(),
    }
}

struct Db<'a> {
    data: &'a [u8],
    le: bool,
    page_size: usize,
}

/// Every (key, data) pair of the database, in page order. Duplicate sets
/// (`H_DUPLICATE`, `H_OFFDUP`) are not part of an rpmdb and are an error.
pub fn pairs(data: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let magic_le = u32e(data, 12, true, "berkeley db meta page")?;
    let magic_be = u32e(data, 12, false, "berkeley db meta page")?;
    let (le, magic) = if [HASH_MAGIC, BTREE_MAGIC].contains(&magic_le) {
        (true, magic_le)
    } else if [HASH_MAGIC, BTREE_MAGIC].contains(&magic_be) {
        (false, magic_be)
    } else {
        return Err(corrupt(12, "not a Berkeley DB hash or btree (magic)"));
    };
    if data.get(24).copied().unwrap_or(0) != 0 {
        return Err(Error::Unsupported("berkeley db: encrypted".into()));
    }
    let page_size = u32e(data, 20, le, "berkeley db meta page")? as usize;
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(corrupt(20, format!("page size {page_size}")));
    }
    // The meta page's `last_pgno`: a file cut short has lost pages.
    let last = u32e(data, 32, le, "berkeley db meta page")? as usize;
    let need = (last + 1).saturating_mul(page_size);
    if data.len() < need {
        return Err(Error::Truncated {
            what: "berkeley db (last_pgno in the meta page)",
            offset: data.len() as u64,
        });
    }
    let db = Db {
        data,
        le,
        page_size,
    };
    let leaf_types: &[u8] = if magic == HASH_MAGIC {
        &[P_HASH, P_HASH_UNSORTED]
    } else {
        &[P_LBTREE]
    };
    let mut out = vec![];
    for pn in 1..data.len() / page_size {
        let page = &data[pn * page_size..(pn + 1) * page_size];
        if !leaf_types.contains(&page[25]) {
            continue;
        }
        let items = db.items(page, pn)?;
        if items.len() % 2 != 0 {
            return Err(corrupt(
                pn * page_size,
                "odd number of items on a leaf page",
            ));
        }
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
    }
    Ok(out)
}

impl Db<'_> {
    fn items(&self, page: &[u8], pn: usize) -> Result<Vec<Vec<u8>>> {
        let base = pn * self.page_size;
        let n = usize::from(u16e(page, 20, self.le, "berkeley db page header")?);
        if PAGE_HEADER + 2 * n > page.len() {
            return Err(corrupt(base + 20, format!("{n} items do not fit the page")));
        }
        let hash = page[25] != P_LBTREE;
        let mut out = Vec::with_capacity(n);
        let mut end = page.len();
        for i in 0..n {
            let off = usize::from(u16e(
                page,
                PAGE_HEADER + 2 * i,
                self.le,
                "berkeley db index",
            )?);
            if off < PAGE_HEADER + 2 * n || off >= page.len() {
                return Err(corrupt(
                    base + PAGE_HEADER + 2 * i,
                    format!("item offset {off}"),
                ));
            }
            let item = if hash {
                // Hash items are laid out downwards: each ends where the previous began.
                if off >= end {
                    return Err(corrupt(base + off, "hash items overlap"));
                }
                let it = &page[off..end];
                end = off;
                match it[0] {
                    H_KEYDATA => it[1..].to_vec(),
                    H_OFFPAGE => self.overflow(it, 4, base + off)?,
                    t => return Err(corrupt(base + off, format!("hash item type {t}"))),
                }
            } else {
                let len = usize::from(u16e(page, off, self.le, "berkeley db item")?);
                match page.get(off + 2).map(|t| t & 0x7f) {
                    Some(B_KEYDATA) => slice(page, off + 3, len, "berkeley db item")?.to_vec(),
                    Some(B_OVERFLOW) => self.overflow(&page[off..], 4, base + off)?,
                    t => return Err(corrupt(base + off, format!("btree item type {t:?}"))),
                }
            };
            out.push(item);
        }
        Ok(out)
    }

    /// Follows an overflow chain: `pgno` at `at` in the item, `tlen` after it.
    fn overflow(&self, item: &[u8], at: usize, loc: usize) -> Result<Vec<u8>> {
        let mut pg = u32e(item, at, self.le, "berkeley db off-page item")? as usize;
        let tlen = u32e(item, at + 4, self.le, "berkeley db off-page item")? as usize;
        if tlen > MAX_VALUE || tlen > self.data.len() {
            return Err(corrupt(loc, format!("off-page item of {tlen} bytes")));
        }
        let pages = self.data.len() / self.page_size;
        let mut out = Vec::with_capacity(tlen);
        let mut hops = 0;
        while out.len() < tlen {
            hops += 1;
            if pg == 0 || pg >= pages || hops > pages {
                return Err(corrupt(
                    loc,
                    "overflow chain ends early, leaves the file or loops",
                ));
            }
            let p = &self.data[pg * self.page_size..(pg + 1) * self.page_size];
            if p[25] != P_OVERFLOW {
                return Err(corrupt(
                    pg * self.page_size,
                    "overflow chain reaches a non-overflow page",
                ));
            }
            let len = usize::from(u16e(p, 22, self.le, "berkeley db overflow page")?);
            out.extend_from_slice(slice(p, PAGE_HEADER, len, "berkeley db overflow page")?);
            pg = u32e(p, 16, self.le, "berkeley db overflow page")? as usize;
        }
        if out.len() != tlen {
            return Err(corrupt(loc, "overflow chain longer than the item"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn rejects_other_files() {
        assert!(pairs(&[0u8; 4096]).is_err());
        assert!(pairs(b"short").is_err());
        let mut m = vec![0u8; 4096];
        m[12..16].copy_from_slice(&HASH_MAGIC.to_le_bytes());
        m[20..24].copy_from_slice(&1000u32.to_le_bytes());
        assert!(pairs(&m).is_err());
    }
}
