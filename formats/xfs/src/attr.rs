//! Extended attributes in every form: shortform (inside the inode), a single
//! leaf block, and a da-btree of node blocks over leaf blocks; values either
//! local (next to the name) or remote (their own blocks of the attribute fork,
//! headed by `XARM` on v5). Names come with their namespace as the kernel shows
//! them: `user.`, `trusted.` (root), `security.` (secure), and the POSIX ACLs
//! (`SGI_ACL_FILE`/`SGI_ACL_DEFAULT` in the root namespace) as
//! `system.posix_acl_access`/`_default` in the kernel's xattr form. Parent
//! pointers and incomplete (half-written) entries are not attributes a user
//! sees and are left out.

use std::collections::HashSet;

use vmscrub_blockdev::ReadAt;

use crate::be::{u8_at, u16_at, u32_at, u64_at};
use crate::bmap::{BlockMap, Fork};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::{ForkFormat, Inode};

const LEAF_MAGIC_V5: u16 = 0x3bee;
const LEAF_MAGIC_V4: u16 = 0xfbee;
const NODE_MAGIC_V5: u16 = 0x3ebe;
const NODE_MAGIC_V4: u16 = 0xfebe;
const RMT_MAGIC: u32 = 0x5841_524d; // XARM
const RMT_HDR: usize = 56;
const DA3_CRC_OFFSET: usize = 12;
const FLAG_LOCAL: u8 = 0x01;
const FLAG_ROOT: u8 = 0x02;
const FLAG_SECURE: u8 = 0x04;
const FLAG_PARENT: u8 = 0x08;
const FLAG_INCOMPLETE: u8 = 0x80;
/// Deepest da-btree (`XFS_DA_NODE_MAXDEPTH`).
const MAX_DEPTH: usize = 5;
/// Largest attribute value (`XFS_XATTR_SIZE_MAX`).
const MAX_VALUE: usize = 1 << 16;

/// Where an attribute is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrPlace {
    /// Shortform, at this byte of the attribute fork.
    Shortform { offset: usize },
    /// Entry `index` of the leaf block at this device byte offset; a remote
    /// value starts at attribute-fork block `remote_block`.
    Leaf {
        block: u64,
        index: usize,
        remote_block: Option<u32>,
    },
}

/// One attribute: the name as the kernel shows it, the value as `getxattr`
/// returns it, the raw namespace flags and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
    pub flags: u8,
    pub place: AttrPlace,
}

impl<D: ReadAt> Xfs<D> {
    /// Every attribute of `inode`.
    pub fn xattrs(&self, inode: &Inode) -> Result<Vec<Xattr>> {
        let loc = Loc::inode(inode.ino).with_offset(inode.offset);
        let mut out = vec![];
        match (inode.attr_fork(), inode.attr_format) {
            (Some(fork), Some(ForkFormat::Local)) => shortform(fork, loc, &mut out)?,
            (Some(_), Some(ForkFormat::Extents | ForkFormat::Btree)) => {
                let map = self.block_map(inode, Fork::Attr)?;
                if !map.extents.is_empty() {
                    self.attr_tree(inode, &map, &mut out)?;
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// Walks the da-btree from block 0 down to every leaf (each block once).
    fn attr_tree(&self, inode: &Inode, map: &BlockMap, out: &mut Vec<Xattr>) -> Result<()> {
        let mut seen = HashSet::new();
        let mut stack = vec![(0u32, 0usize)];
        while let Some((blk, depth)) = stack.pop() {
            let loc = Loc::inode(inode.ino);
            if depth > MAX_DEPTH || !seen.insert(blk) {
                return Err(Error::corrupt(
                    "attribute tree",
                    loc,
                    format!("block {blk} reached twice or too deep"),
                ));
            }
            let (buf, phys) = self.attr_block(map, blk, loc)?;
            let loc = loc.with_offset(phys);
            let magic = u16_at(&buf, 8);
            let v5 = self.sb.has_crc();
            if v5 {
                checksum::verify(self.verify, "attribute block", &buf, DA3_CRC_OFFSET, loc)?;
                if self.verify && u64_at(&buf, 48) != inode.ino {
                    return Err(Error::corrupt(
                        "attribute block",
                        loc,
                        "owned by another inode",
                    ));
                }
            }
            match (v5, magic) {
                (true, LEAF_MAGIC_V5) | (false, LEAF_MAGIC_V4) => {
                    self.leaf_entries(inode, map, &buf, phys, loc, out)?;
                }
                (true, NODE_MAGIC_V5) | (false, NODE_MAGIC_V4) => {
                    let hdr = if v5 { 64 } else { 16 };
                    let count = usize::from(u16_at(&buf, hdr - if v5 { 8 } else { 4 }));
                    if count == 0 || hdr + count * 8 > buf.len() {
                        return Err(Error::corrupt(
                            "attribute node",
                            loc,
                            format!("{count} entries"),
                        ));
                    }
                    // Pushed in reverse so leaves come out in hash order.
                    for i in (0..count).rev() {
                        stack.push((u32_at(&buf, hdr + i * 8 + 4), depth + 1));
                    }
                }
                _ => {
                    return Err(Error::corrupt(
                        "attribute block",
                        loc,
                        format!("magic {magic:#x}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Attribute-fork block `blk` (attribute blocks are one filesystem block).
    fn attr_block(&self, map: &BlockMap, blk: u32, loc: Loc) -> Result<(Vec<u8>, u64)> {
        let e = map.lookup(u64::from(blk)).ok_or_else(|| {
            Error::corrupt("attribute fork", loc, format!("block {blk} is not mapped"))
        })?;
        let fsb = e.start + (u64::from(blk) - e.offset);
        Ok((
            self.read_fsb(fsb, "attribute block", loc)?,
            self.fsb_byte(fsb, loc)?,
        ))
    }

    fn leaf_entries(
        &self,
        inode: &Inode,
        map: &BlockMap,
        b: &[u8],
        phys: u64,
        loc: Loc,
        out: &mut Vec<Xattr>,
    ) -> Result<()> {
        let v5 = self.sb.has_crc();
        let (count_at, hdr) = if v5 { (56, 80) } else { (12, 32) };
        let count = usize::from(u16_at(b, count_at));
        if hdr + count * 8 > b.len() {
            return Err(Error::corrupt(
                "attribute leaf",
                loc,
                format!("{count} entries"),
            ));
        }
        for i in 0..count {
            let e = hdr + i * 8;
            let nameidx = usize::from(u16_at(b, e + 4));
            let flags = u8_at(b, e + 6);
            if flags & FLAG_INCOMPLETE != 0 {
                continue;
            }
            let bad = |d: &str| Error::corrupt("attribute leaf", loc, format!("entry {i}: {d}"));
            let (raw_name, value, remote) = if flags & FLAG_LOCAL != 0 {
                let vlen = usize::from(u16_at(b, nameidx));
                let nlen = usize::from(u8_at(b, nameidx + 2));
                let name = b
                    .get(nameidx + 3..nameidx + 3 + nlen)
                    .ok_or_else(|| bad("name past the block"))?;
                let value = b
                    .get(nameidx + 3 + nlen..nameidx + 3 + nlen + vlen)
                    .ok_or_else(|| bad("value past the block"))?;
                (name, value.to_vec(), None)
            } else {
                let blk = u32_at(b, nameidx);
                let vlen = u32_at(b, nameidx + 4) as usize;
                let nlen = usize::from(u8_at(b, nameidx + 8));
                let name = b
                    .get(nameidx + 9..nameidx + 9 + nlen)
                    .ok_or_else(|| bad("name past the block"))?;
                (
                    name,
                    self.remote_value(inode, map, blk, vlen, loc)?,
                    Some(blk),
                )
            };
            if let Some(name) = full_name(flags, raw_name) {
                out.push(Xattr {
                    value: if flags & FLAG_ROOT != 0 {
                        acl_value(raw_name, value)
                    } else {
                        value
                    },
                    name,
                    flags,
                    place: AttrPlace::Leaf {
                        block: phys,
                        index: i,
                        remote_block: remote,
                    },
                });
            }
        }
        Ok(())
    }

    fn remote_value(
        &self,
        inode: &Inode,
        map: &BlockMap,
        first: u32,
        len: usize,
        loc: Loc,
    ) -> Result<Vec<u8>> {
        if len > MAX_VALUE {
            return Err(Error::corrupt(
                "attribute",
                loc,
                format!("remote value of {len} bytes"),
            ));
        }
        let v5 = self.sb.has_crc();
        let bs = self.sb.block_size as usize;
        let per = if v5 { bs - RMT_HDR } else { bs };
        let mut out = Vec::with_capacity(len);
        let mut blk = first;
        while out.len() < len {
            let (buf, phys) = self.attr_block(map, blk, loc)?;
            let want = (len - out.len()).min(per);
            if v5 {
                let bl = loc.with_offset(phys);
                if u32_at(&buf, 0) != RMT_MAGIC {
                    return Err(Error::corrupt("remote attribute value", bl, "bad magic"));
                }
                checksum::verify(
                    self.verify,
                    "remote attribute value",
                    &buf,
                    DA3_CRC_OFFSET,
                    bl,
                )?;
                let ok = u32_at(&buf, 4) as usize == out.len() && u32_at(&buf, 8) as usize == want;
                if self.verify && (!ok || u64_at(&buf, 32) != inode.ino) {
                    return Err(Error::corrupt(
                        "remote attribute value",
                        bl,
                        "header disagrees with the entry",
                    ));
                }
                out.extend_from_slice(&buf[RMT_HDR..RMT_HDR + want]);
            } else {
                out.extend_from_slice(&buf[..want]);
            }
            blk = blk
                .checked_add(1)
                .ok_or_else(|| Error::corrupt("attribute", loc, "remote value past the fork"))?;
        }
        Ok(out)
    }
}

/// Shortform attributes: a 4-byte header (total size, count), then entries of
/// name length, value length, flags, name and value.
fn shortform(fork: &[u8], loc: Loc, out: &mut Vec<Xattr>) -> Result<()> {
    let total = usize::from(u16_at(fork, 0));
    let count = usize::from(u8_at(fork, 2));
    if total > fork.len() || total < 4 {
        return Err(Error::corrupt(
            "shortform attributes",
            loc,
            format!("total size {total}"),
        ));
    }
    let b = &fork[..total];
    let mut pos = 4;
    for _ in 0..count {
        let nlen = usize::from(u8_at(b, pos));
        let vlen = usize::from(u8_at(b, pos + 1));
        let flags = u8_at(b, pos + 2);
        let end = pos + 3 + nlen + vlen;
        if end > b.len() {
            return Err(Error::corrupt(
                "shortform attributes",
                loc,
                format!("entry at byte {pos} runs past the end"),
            ));
        }
        let raw_name = &b[pos + 3..pos + 3 + nlen];
        let value = b[pos + 3 + nlen..end].to_vec();
        if flags & FLAG_INCOMPLETE == 0
            && let Some(name) = full_name(flags, raw_name)
        {
            out.push(Xattr {
                value: if flags & FLAG_ROOT != 0 {
                    acl_value(raw_name, value)
                } else {
                    value
                },
                name,
                flags,
                place: AttrPlace::Shortform { offset: pos },
            });
        }
        pos = end;
    }
    Ok(())
}

/// The name with its namespace prefix as the kernel shows it; `None` for
/// parent pointers (not user-visible).
fn full_name(flags: u8, raw: &[u8]) -> Option<Vec<u8>> {
    if flags & FLAG_PARENT != 0 {
        return None;
    }
    let prefix: &[u8] = if flags & FLAG_ROOT != 0 {
        match raw {
            b"SGI_ACL_FILE" => return Some(b"system.posix_acl_access".to_vec()),
            b"SGI_ACL_DEFAULT" => return Some(b"system.posix_acl_default".to_vec()),
            _ => b"trusted.",
        }
    } else if flags & FLAG_SECURE != 0 {
        b"security."
    } else {
        b"user."
    };
    Some([prefix, raw].concat())
}

/// An ACL's value in the kernel's xattr form; other root attributes as stored.
fn acl_value(raw_name: &[u8], value: Vec<u8>) -> Vec<u8> {
    if raw_name == b"SGI_ACL_FILE" || raw_name == b"SGI_ACL_DEFAULT" {
        acl_to_xattr(&value).unwrap_or(value)
    } else {
        value
    }
}

/// Converts XFS's on-disk ACL (`be32 count`, then 12-byte entries of
/// `be32 tag, be32 id, be16 perm, pad`) to the kernel's xattr form (version 2,
/// little-endian 8-byte entries; owner, group-owner, mask and other carry the
/// undefined id), which is what `getfattr` shows. `None` if not a valid ACL.
pub fn acl_to_xattr(disk: &[u8]) -> Option<Vec<u8>> {
    let count = u32_at(disk, 0) as usize;
    if disk.len() < 4 || count > 25 || disk.len() < 4 + count * 12 {
        return None;
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    for i in 0..count {
        let e = 4 + i * 12;
        let tag = u32_at(disk, e);
        let id = match tag {
            0x02 | 0x08 => u32_at(disk, e + 4),
            0x01 | 0x04 | 0x10 | 0x20 => u32::MAX,
            _ => return None,
        };
        out.extend_from_slice(&(tag as u16).to_le_bytes());
        out.extend_from_slice(&u16_at(disk, e + 8).to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_acls() {
        assert_eq!(full_name(0, b"a").unwrap(), b"user.a");
        assert_eq!(
            full_name(FLAG_SECURE, b"selinux").unwrap(),
            b"security.selinux"
        );
        assert_eq!(
            full_name(FLAG_ROOT, b"SGI_ACL_FILE").unwrap(),
            b"system.posix_acl_access"
        );
        assert_eq!(full_name(FLAG_ROOT, b"t").unwrap(), b"trusted.t");
        assert!(full_name(FLAG_PARENT, b"p").is_none());
        let mut acl = 1u32.to_be_bytes().to_vec();
        acl.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 6, 0, 0]);
        assert_eq!(
            acl_to_xattr(&acl).unwrap(),
            [2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff]
        );
        assert!(acl_to_xattr(&[0, 0, 0, 9]).is_none());
    }
}
