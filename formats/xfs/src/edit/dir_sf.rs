//! Shortform directories: the entries packed inside the inode's data fork
//! behind a header (count, i8count, parent). Every inode number is 4 bytes
//! unless `i8count` — how many of the parent and the entries need 8 — is
//! non-zero, then all are 8; so removing the last wide entry narrows the
//! whole list (the kernel's `xfs_dir2_sf_toino4`). The list is decoded,
//! checked (sizes, i8count), and encoded again without the entry; the bytes
//! after the new end of the fork are zeroed, so no name survives there.

use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use super::dirent::RemovedEntry;
use super::inode_raw::{RawInode, field};
use crate::be::{u8_at, u16_at, u32_at, u64_at};
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::{FileType, Inode};

/// The largest inode number a 4-byte field holds.
const MAX_SHORT_INO: u64 = 0xffff_ffff;

struct Entry {
    offset: u16,
    name: Vec<u8>,
    ftype: u8,
    ino: u64,
}

struct Shortform {
    parent: u64,
    entries: Vec<Entry>,
}

pub(super) fn remove<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    stage: &Staged<D>,
    dir: &Inode,
    name: &[u8],
) -> Result<RemovedEntry> {
    let loc = Loc::inode(dir.ino).with_offset(dir.offset);
    let mut raw = RawInode::read(fs, dir.ino)?;
    let start = field::LITERAL;
    let end = if dir.forkoff == 0 {
        raw.buf.len()
    } else {
        start + usize::from(dir.forkoff) * 8
    };
    let ftype = fs.sb.has_ftype();
    let size = usize::try_from(raw.u64(field::SIZE)).unwrap_or(usize::MAX);
    let fork = raw
        .buf
        .get(start..end)
        .filter(|f| size <= f.len())
        .and_then(|f| f.get(..size))
        .ok_or_else(|| {
            Error::corrupt(
                "shortform directory",
                loc,
                format!("size {size} is larger than the data fork"),
            )
        })?;
    let mut sf = decode(fork, ftype, loc)?;
    let k = sf
        .entries
        .iter()
        .position(|e| e.name == name)
        .ok_or_else(|| Error::NotFound {
            path: name.to_vec(),
        })?;
    let gone = sf.entries.remove(k);
    let bytes = encode(&sf, ftype);
    let area = raw.buf.get_mut(start..end).unwrap_or_default();
    if bytes.len() > area.len() {
        return Err(Error::corrupt(
            "shortform directory",
            loc,
            "the list grew on removal",
        ));
    }
    area.fill(0);
    area[..bytes.len()].copy_from_slice(&bytes);
    raw.set_u64(field::SIZE, bytes.len() as u64);
    raw.write(stage)?;
    Ok(RemovedEntry {
        ino: gone.ino,
        file_type: if ftype {
            FileType::from_dirent(gone.ftype)
        } else {
            None
        },
        freed: vec![],
    })
}

/// Decodes the whole list; it must fill exactly `b` and agree with its
/// `i8count`.
fn decode(b: &[u8], ftype: bool, loc: Loc) -> Result<Shortform> {
    let bad = |d: String| Error::corrupt("shortform directory", loc, d);
    if b.len() < 6 {
        return Err(bad(format!("{} bytes hold no header", b.len())));
    }
    let count = usize::from(u8_at(b, 0));
    let i8count = usize::from(u8_at(b, 1));
    let wide = i8count != 0;
    let ino_len = if wide { 8 } else { 4 };
    let ino_at = |at: usize| {
        if wide {
            u64_at(b, at)
        } else {
            u64::from(u32_at(b, at))
        }
    };
    let parent = ino_at(2);
    let mut pos = 2 + ino_len;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let namelen = usize::from(u8_at(b, pos));
        let name_at = pos + 3;
        let ft_at = name_at + namelen;
        let i_at = ft_at + usize::from(ftype);
        let next = i_at + ino_len;
        if namelen == 0 || next > b.len() {
            return Err(bad(format!("entry at byte {pos} runs past the end")));
        }
        entries.push(Entry {
            offset: u16_at(b, pos + 1),
            name: b[name_at..ft_at].to_vec(),
            ftype: if ftype { u8_at(b, ft_at) } else { 0 },
            ino: ino_at(i_at),
        });
        pos = next;
    }
    if pos != b.len() {
        return Err(bad(format!(
            "{count} entries end at byte {pos} of {}",
            b.len()
        )));
    }
    let sf = Shortform { parent, entries };
    if wide_count(&sf) != i8count {
        return Err(bad(format!(
            "i8count {i8count}, but {} inode numbers need 8 bytes",
            wide_count(&sf)
        )));
    }
    Ok(sf)
}

/// How many of the parent and the entries need an 8-byte inode number.
fn wide_count(sf: &Shortform) -> usize {
    usize::from(sf.parent > MAX_SHORT_INO)
        + sf.entries.iter().filter(|e| e.ino > MAX_SHORT_INO).count()
}

fn encode(sf: &Shortform, ftype: bool) -> Vec<u8> {
    let i8count = wide_count(sf);
    let put_ino = |out: &mut Vec<u8>, ino: u64| {
        if i8count != 0 {
            out.extend_from_slice(&ino.to_be_bytes());
        } else {
            out.extend_from_slice(&(ino as u32).to_be_bytes());
        }
    };
    let mut out = vec![sf.entries.len() as u8, i8count as u8];
    put_ino(&mut out, sf.parent);
    for e in &sf.entries {
        out.push(e.name.len() as u8);
        out.extend_from_slice(&e.offset.to_be_bytes());
        out.extend_from_slice(&e.name);
        if ftype {
            out.push(e.ftype);
        }
        put_ino(&mut out, e.ino);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8], ino: u64) -> Entry {
        Entry {
            offset: 0x60,
            name: name.to_vec(),
            ftype: 1,
            ino,
        }
    }

    #[test]
    fn last_wide_entry_narrows_the_list() {
        let sf = Shortform {
            parent: 128,
            entries: vec![entry(b"a", 131), entry(b"big", 1 << 40)],
        };
        let wide = encode(&sf, true);
        assert_eq!(wide[1], 1, "i8count");
        let mut back = decode(&wide, true, Loc::NONE).unwrap();
        assert_eq!(back.entries[1].ino, 1 << 40);
        back.entries.remove(1);
        let narrow = encode(&back, true);
        assert_eq!(narrow[1], 0);
        // header 6, entry 1 + 2 + 1 + 1 + 4
        assert_eq!(narrow.len(), 6 + 9);
        let again = decode(&narrow, true, Loc::NONE).unwrap();
        assert_eq!(again.entries[0].name, b"a");
        assert_eq!(again.entries[0].ino, 131);
    }

    #[test]
    fn inconsistent_i8count_is_refused() {
        let sf = Shortform {
            parent: 128,
            entries: vec![entry(b"a", 131)],
        };
        let mut b = encode(&sf, false);
        b[1] = 1;
        assert!(decode(&b, false, Loc::NONE).is_err());
    }
}
