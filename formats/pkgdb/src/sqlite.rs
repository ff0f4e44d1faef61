//! A small read-only SQLite reader: enough to list the rows of one table
//! (rpm's `Packages (hnum INTEGER PRIMARY KEY, blob BLOB)`), from the whole
//! database file in memory.
//!
//! Why our own: the pure-Rust SQLite crates are either full engines or
//! unmaintained, and `rusqlite` (C SQLite) can only open a file on disk or
//! deserialize into a writable in-memory database — more code and a C
//! toolchain for what is a walk over table b-tree pages. Only what a table
//! scan needs is implemented: the 100-byte header, table b-tree pages
//! (interior 0x05, leaf 0x0d), overflow chains and the record format. A
//! database in WAL mode whose `-wal` file still holds frames is the caller's
//! to refuse (this reader sees the main file only).
//!
//! Reference: <https://www.sqlite.org/fileformat2.html>.

use crate::bytes::{be16, be32, slice};
use crate::{Error, Result};

const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// B-trees deeper than this are corrupt (SQLite's own limit is 20).
const MAX_DEPTH: usize = 40;

/// One column value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

pub struct Database<'a> {
    data: &'a [u8],
    page_size: usize,
    usable: usize,
    pages: u32,
}

fn corrupt(offset: usize, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "sqlite",
        offset: offset as u64,
        reason: reason.into(),
    }
}

/// Reads a SQLite varint at `at`: (value, length).
fn varint(d: &[u8], at: usize) -> Result<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..9 {
        let b = *d.get(at + i).ok_or(Error::Truncated {
            what: "sqlite varint",
            offset: (at + i) as u64,
        })?;
        if i == 8 {
            return Ok((v << 8 | u64::from(b), 9));
        }
        v = v << 7 | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(corrupt(at, "varint"))
}

impl<'a> Database<'a> {
    pub fn open(data: &'a [u8]) -> Result<Database<'a>> {
        if data.get(..16) != Some(&MAGIC[..]) {
            return Err(corrupt(0, "not a SQLite 3 database (magic)"));
        }
        let ps = be16(data, 16, "sqlite header")?;
        let page_size = if ps == 1 { 65536 } else { usize::from(ps) };
        if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
            return Err(corrupt(16, format!("page size {page_size}")));
        }
        let reserved = usize::from(*data.get(20).unwrap_or(&0));
        let usable = page_size - reserved;
        if usable < 480 {
            return Err(corrupt(20, format!("usable page size {usable}")));
        }
        if be32(data, 56, "sqlite header")? > 1 {
            return Err(Error::Unsupported("sqlite: text encoding is UTF-16".into()));
        }
        let pages = (data.len() / page_size) as u32;
        Ok(Database {
            data,
            page_size,
            usable,
            pages,
        })
    }

    fn page(&self, n: u32) -> Result<&'a [u8]> {
        if n == 0 || n > self.pages {
            return Err(corrupt(
                0,
                format!("page {n} outside the file's {} pages", self.pages),
            ));
        }
        slice(
            self.data,
            (n as usize - 1) * self.page_size,
            self.page_size,
            "sqlite page",
        )
    }

    /// Every row of table `name` (rowid, columns) in rowid order, handed to `f`.
    /// An `INTEGER PRIMARY KEY` column reads as `Null`: its value is the rowid.
    pub fn for_each_row(
        &self,
        name: &str,
        mut f: impl FnMut(i64, Vec<Value>) -> Result<()>,
    ) -> Result<()> {
        let mut root = None;
        self.walk(1, &mut |_, cols| {
            if let [Value::Text(ty), Value::Text(n), _, Value::Int(r), ..] = cols.as_slice()
                && ty == b"table"
                && n.eq_ignore_ascii_case(name.as_bytes())
            {
                root = Some(*r);
            }
            Ok(())
        })?;
        let root = root.ok_or_else(|| Error::Unsupported(format!("sqlite: no table {name}")))?;
        let root = u32::try_from(root)
            .map_err(|_| corrupt(0, format!("table {name}: root page {root}")))?;
        self.walk(root, &mut f)
    }

    /// Depth-first walk of the table b-tree at `root`; a page seen twice is a loop.
    fn walk(&self, root: u32, f: &mut dyn FnMut(i64, Vec<Value>) -> Result<()>) -> Result<()> {
        let mut seen = vec![false; self.pages as usize + 1];
        let mut stack = vec![(root, 0usize)];
        while let Some((pn, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(corrupt(0, "b-tree deeper than 40 levels"));
            }
            let slot = seen
                .get_mut(pn as usize)
                .ok_or_else(|| corrupt(0, format!("page {pn} outside the file")))?;
            if *slot {
                return Err(corrupt(0, format!("page {pn} is reached twice (loop)")));
            }
            *slot = true;
            let page = self.page(pn)?;
            let hdr = if pn == 1 { 100 } else { 0 };
            let at = |o: usize| (pn as usize - 1) * self.page_size + o;
            let kind = *page
                .get(hdr)
                .ok_or_else(|| corrupt(at(hdr), "page header"))?;
            let cells = usize::from(be16(page, hdr + 3, "sqlite page header")?);
            match kind {
                0x05 => {
                    let right = be32(page, hdr + 8, "sqlite page header")?;
                    // Children pushed in reverse so rows come out in rowid order.
                    stack.push((right, depth + 1));
                    let mut kids = Vec::with_capacity(cells);
                    for i in 0..cells {
                        let ptr = usize::from(be16(page, hdr + 12 + 2 * i, "sqlite cell pointer")?);
                        kids.push(be32(page, ptr, "sqlite interior cell")?);
                    }
                    stack.extend(kids.into_iter().rev().map(|k| (k, depth + 1)));
                }
                0x0d => {
                    for i in 0..cells {
                        let ptr = usize::from(be16(page, hdr + 8 + 2 * i, "sqlite cell pointer")?);
                        let (len, a) = varint(page, ptr)?;
                        let (rowid, b) = varint(page, ptr + a)?;
                        let payload = self.payload(page, ptr + a + b, len, at(ptr))?;
                        f(rowid as i64, record(&payload, at(ptr))?)?;
                    }
                }
                k => {
                    return Err(corrupt(
                        at(hdr),
                        format!("page {pn}: type {k:#x} is not a table b-tree page"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A cell's whole payload: the local part, then the overflow chain.
    fn payload(&self, page: &[u8], at: usize, len: u64, loc: usize) -> Result<Vec<u8>> {
        let u = self.usable;
        let len = usize::try_from(len).map_err(|_| corrupt(loc, "payload size"))?;
        if len > self.data.len() {
            return Err(corrupt(
                loc,
                format!("payload of {len} bytes is larger than the file"),
            ));
        }
        let x = u - 35;
        if len <= x {
            return Ok(slice(page, at, len, "sqlite cell")?.to_vec());
        }
        let m = (u - 12) * 32 / 255 - 23;
        let k = m + (len - m) % (u - 4);
        let local = if k <= x { k } else { m };
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(slice(page, at, local, "sqlite cell")?);
        let mut next = be32(page, at + local, "sqlite overflow pointer")?;
        let mut hops = 0u32;
        while out.len() < len {
            hops += 1;
            if next == 0 || hops > self.pages {
                return Err(corrupt(loc, "overflow chain ends early or loops"));
            }
            let p = self.page(next)?;
            let take = (len - out.len()).min(u - 4);
            out.extend_from_slice(slice(p, 4, take, "sqlite overflow page")?);
            next = be32(p, 0, "sqlite overflow page")?;
        }
        Ok(out)
    }
}

/// Decodes a record: header of serial types, then the values.
fn record(p: &[u8], loc: usize) -> Result<Vec<Value>> {
    let (hlen, mut at) = varint(p, 0)?;
    let hlen = usize::try_from(hlen).map_err(|_| corrupt(loc, "record header size"))?;
    if hlen > p.len() {
        return Err(corrupt(loc, "record header longer than the record"));
    }
    let mut body = hlen;
    let mut out = vec![];
    while at < hlen {
        let (t, n) = varint(p, at)?;
        at += n;
        let (v, size) = match t {
            0 => (Value::Null, 0),
            1..=6 => {
                let size = [0, 1, 2, 3, 4, 6, 8][t as usize];
                let b = slice(p, body, size, "sqlite record")?;
                let mut v = if b[0] & 0x80 != 0 { -1i64 } else { 0 };
                for &x in b {
                    v = v << 8 | i64::from(x);
                }
                (Value::Int(v), size)
            }
            7 => {
                let b = slice(p, body, 8, "sqlite record")?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (Value::Float(f64::from_be_bytes(a)), 8)
            }
            8 => (Value::Int(0), 0),
            9 => (Value::Int(1), 0),
            10 | 11 => return Err(corrupt(loc, "reserved serial type")),
            t => {
                let size = usize::try_from((t - 12) / 2).map_err(|_| corrupt(loc, "value size"))?;
                let b = slice(p, body, size, "sqlite record")?.to_vec();
                (
                    if t % 2 == 0 {
                        Value::Blob(b)
                    } else {
                        Value::Text(b)
                    },
                    size,
                )
            }
        };
        body += size;
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x7f], 0).unwrap(), (0x7f, 1));
        assert_eq!(varint(&[0x81, 0x00], 0).unwrap(), (0x80, 2));
        assert_eq!(varint(&[0xff; 9], 0).unwrap(), (u64::MAX, 9));
        assert!(varint(&[0x81], 0).is_err());
    }

    #[test]
    fn records() {
        // header 4 bytes (its own size included): NULL, int8, 3-byte blob
        let r = record(&[4, 0, 1, 18, 0xfe, b'a', b'b', b'c'], 0).unwrap();
        assert_eq!(
            r,
            vec![Value::Null, Value::Int(-2), Value::Blob(b"abc".to_vec())]
        );
        assert!(record(&[4, 0, 1, 18, 0xfe, b'a'], 0).is_err());
        assert!(record(&[9, 0], 0).is_err());
    }

    #[test]
    fn rejects_non_sqlite() {
        assert!(Database::open(b"not a database at all, not at all, no").is_err());
        let mut h = MAGIC.to_vec();
        h.resize(100, 0);
        h[16] = 0x03; // page size 0x0300: not a power of two
        assert!(Database::open(&h).is_err());
    }
}
