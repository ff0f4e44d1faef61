//! One rpm header as the rpmdb stores it (no lead, no magic): `il` and `dl`
//! (u32 big-endian), `il` index entries of 16 bytes (tag, type, offset,
//! count), then `dl` bytes of data. File `i` is `DIRNAMES[DIRINDEXES[i]]`
//! followed by `BASENAMES[i]` (or `OLDFILENAMES` in very old headers), with a hex
//! `FILEDIGESTS[i]` in the algorithm `FILEDIGESTALGO` names (MD5 when absent);
//! directories, symlinks and ghosts have an empty digest.
//!
//! Reference: rpm's `lib/header.c` (`headerImport`) and `lib/rpmtag.h`;
//! the "RPM file format" chapter of rpm.org's documentation.

use std::collections::HashMap;

use crate::bytes::{be32, slice, unhex};
use crate::{Algo, Error, FileDigest, Package, Result};

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_OLDFILENAMES: u32 = 1027;
const TAG_FILEDIGESTS: u32 = 1035;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;
const TAG_FILEDIGESTALGO: u32 = 5011;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// rpm refuses headers with more tags or data than this (`hdrchkTags`,
/// `hdrchkData`); so do we.
const MAX_TAGS: u32 = 0xffff;
const MAX_DATA: u32 = 256 << 20;

struct Entry {
    ty: u32,
    offset: usize,
    count: usize,
}

struct Header<'a> {
    data: &'a [u8],
    /// Offset of the data store in the blob (for error locations).
    base: usize,
    entries: HashMap<u32, Entry>,
}

impl<'a> Header<'a> {
    fn corrupt(&self, at: usize, reason: String) -> Error {
        Error::Corrupt {
            what: "rpm header",
            offset: (self.base + at) as u64,
            reason,
        }
    }

    fn strings(&self, tag: u32) -> Result<Option<Vec<&'a [u8]>>> {
        let Some(e) = self.entries.get(&tag) else {
            return Ok(None);
        };
        if !matches!(e.ty, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
            return Err(self.corrupt(
                e.offset,
                format!("tag {tag} is not a string (type {})", e.ty),
            ));
        }
        let mut out = Vec::with_capacity(e.count.min(1 << 16));
        let mut at = e.offset;
        for _ in 0..e.count {
            let rest = self.data.get(at..).unwrap_or_default();
            let Some(nul) = rest.iter().position(|&b| b == 0) else {
                return Err(self.corrupt(at, format!("tag {tag}: string runs past the data")));
            };
            out.push(&rest[..nul]);
            at += nul + 1;
        }
        Ok(Some(out))
    }

    fn string(&self, tag: u32) -> Result<Option<String>> {
        Ok(self
            .strings(tag)?
            .and_then(|v| v.first().map(|s| String::from_utf8_lossy(s).into_owned())))
    }

    fn int32s(&self, tag: u32) -> Result<Option<Vec<u32>>> {
        let Some(e) = self.entries.get(&tag) else {
            return Ok(None);
        };
        if e.ty != TYPE_INT32 {
            return Err(self.corrupt(e.offset, format!("tag {tag} is not INT32 (type {})", e.ty)));
        }
        let len = e
            .count
            .checked_mul(4)
            .ok_or_else(|| self.corrupt(e.offset, "count overflows".into()))?;
        let s = slice(self.data, e.offset, len, "rpm header data")?;
        Ok(Some(
            s.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }
}

/// Parses a header blob into the package's name, `[EPOCH:]VERSION-RELEASE`
/// and the files it records a digest for.
pub fn parse_header(blob: &[u8]) -> Result<Package> {
    let il = be32(blob, 0, "rpm header")?;
    let dl = be32(blob, 4, "rpm header")?;
    if il == 0 || il > MAX_TAGS || dl > MAX_DATA {
        return Err(Error::Corrupt {
            what: "rpm header",
            offset: 0,
            reason: format!("{il} tags, {dl} data bytes: outside rpm's limits"),
        });
    }
    let base = 8 + il as usize * 16;
    let data = slice(blob, base, dl as usize, "rpm header data")?;
    let mut entries = HashMap::new();
    for i in 0..il as usize {
        let at = 8 + i * 16;
        let tag = be32(blob, at, "rpm header index")?;
        let ty = be32(blob, at + 4, "rpm header index")?;
        let offset = be32(blob, at + 8, "rpm header index")? as usize;
        let count = be32(blob, at + 12, "rpm header index")? as usize;
        if offset > data.len() || count > data.len() + 1 {
            return Err(Error::Corrupt {
                what: "rpm header index",
                offset: at as u64,
                reason: format!(
                    "tag {tag}: offset {offset} / count {count} outside {dl} data bytes"
                ),
            });
        }
        entries.insert(tag, Entry { ty, offset, count });
    }
    let h = Header {
        data,
        base,
        entries,
    };
    let name = h.string(TAG_NAME)?.unwrap_or_default();
    if name.is_empty() {
        return Err(Error::Corrupt {
            what: "rpm header",
            offset: 0,
            reason: "no NAME tag".into(),
        });
    }
    let mut version = h.string(TAG_VERSION)?.unwrap_or_default();
    if let Some(r) = h.string(TAG_RELEASE)? {
        version = format!("{version}-{r}");
    }
    if let Some(e) = h.int32s(TAG_EPOCH)?.and_then(|v| v.first().copied()) {
        version = format!("{e}:{version}");
    }
    let algo = match h
        .int32s(TAG_FILEDIGESTALGO)?
        .and_then(|v| v.first().copied())
    {
        None => Algo::Md5,
        Some(n) => Algo::from_rpm(n)
            .ok_or_else(|| Error::Unsupported(format!("{name}: unknown FILEDIGESTALGO {n}")))?,
    };
    let paths = file_paths(&h)?;
    let digests = h.strings(TAG_FILEDIGESTS)?.unwrap_or_default();
    if !digests.is_empty() && digests.len() != paths.len() {
        return Err(Error::Corrupt {
            what: "rpm header",
            offset: 0,
            reason: format!(
                "{name}: {} files but {} digests",
                paths.len(),
                digests.len()
            ),
        });
    }
    let mut files = vec![];
    for (path, hex) in paths.into_iter().zip(digests) {
        if hex.is_empty() {
            continue;
        }
        let digest = unhex(hex)
            .filter(|d| d.len() == algo.digest_len())
            .ok_or_else(|| Error::Corrupt {
                what: "rpm header",
                offset: 0,
                reason: format!("{name}: a FILEDIGESTS entry is not {} hex", algo.name()),
            })?;
        files.push(FileDigest { path, algo, digest });
    }
    Ok(Package {
        name,
        version,
        files,
    })
}

fn file_paths(h: &Header<'_>) -> Result<Vec<Vec<u8>>> {
    let Some(base) = h.strings(TAG_BASENAMES)? else {
        return Ok(h
            .strings(TAG_OLDFILENAMES)?
            .unwrap_or_default()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect());
    };
    let dirs = h.strings(TAG_DIRNAMES)?.unwrap_or_default();
    let idx = h.int32s(TAG_DIRINDEXES)?.unwrap_or_default();
    if idx.len() != base.len() {
        return Err(h.corrupt(
            0,
            format!("{} basenames but {} dirindexes", base.len(), idx.len()),
        ));
    }
    let mut out = Vec::with_capacity(base.len());
    for (b, i) in base.into_iter().zip(idx) {
        let d = dirs
            .get(i as usize)
            .ok_or_else(|| h.corrupt(0, format!("dirindex {i} past {} dirnames", dirs.len())))?;
        let mut p = d.to_vec();
        p.extend_from_slice(b);
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Builds a header blob from (tag, type, count, data) entries.
    pub fn blob(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = vec![];
        let mut data = vec![];
        for (tag, ty, count, d) in entries {
            if *ty == TYPE_INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            for v in [*tag, *ty, data.len() as u32, *count] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(d);
        }
        let mut out = vec![];
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    fn strs(v: &[&str]) -> Vec<u8> {
        v.iter().flat_map(|s| s.bytes().chain([0])).collect()
    }

    pub fn sample() -> Vec<u8> {
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        blob(&[
            (TAG_NAME, TYPE_STRING, 1, strs(&["tiny"])),
            (TAG_VERSION, TYPE_STRING, 1, strs(&["1.0"])),
            (TAG_RELEASE, TYPE_STRING, 1, strs(&["1"])),
            (
                TAG_FILEDIGESTALGO,
                TYPE_INT32,
                1,
                8u32.to_be_bytes().to_vec(),
            ),
            (
                TAG_BASENAMES,
                TYPE_STRING_ARRAY,
                3,
                strs(&["tiny", "a.conf", "d"]),
            ),
            (
                TAG_DIRNAMES,
                TYPE_STRING_ARRAY,
                2,
                strs(&["/etc/", "/usr/share/"]),
            ),
            (
                TAG_DIRINDEXES,
                TYPE_INT32,
                3,
                [1u32, 0, 1].iter().flat_map(|v| v.to_be_bytes()).collect(),
            ),
            (TAG_FILEDIGESTS, TYPE_STRING_ARRAY, 3, strs(&[sha, sha, ""])),
        ])
    }

    #[test]
    fn files_and_digests() {
        let p = parse_header(&sample()).unwrap();
        assert_eq!(p.name, "tiny");
        assert_eq!(p.version, "1.0-1");
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.files[0].path, b"/usr/share/tiny");
        assert_eq!(p.files[1].path, b"/etc/a.conf");
        assert_eq!(p.files[0].algo, Algo::Sha256);
    }

    #[test]
    fn every_truncation_and_flip_is_an_error_or_a_package() {
        let s = sample();
        for n in 0..s.len() {
            assert!(parse_header(&s[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..s.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut c = s.clone();
                c[i] ^= x;
                let _ = parse_header(&c);
            }
        }
    }
}
