//! POSIX ACLs: the kernel's `system.posix_acl_access`/`_default` xattr binary and
//! the text form GNU tar and star put in `SCHILY.acl.access`/`.default` (one entry
//! per line, numeric ids, which `acl_from_text` reads back). The scrub side hands us
//! the xattr as read from the image; tar users get ACLs restored with `--acls`.

use crate::error::{Error, Result};

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const UNDEFINED_ID: u32 = u32::MAX;

pub const ACCESS_XATTR: &[u8] = b"system.posix_acl_access";
pub const DEFAULT_XATTR: &[u8] = b"system.posix_acl_default";

fn perm_text(p: u16) -> [u8; 3] {
    [
        if p & 4 != 0 { b'r' } else { b'-' },
        if p & 2 != 0 { b'w' } else { b'-' },
        if p & 1 != 0 { b'x' } else { b'-' },
    ]
}

/// xattr binary → text, or `None` if the binary is not a well-formed ACL (the
/// caller then keeps the raw xattr).
pub fn to_text(bin: &[u8]) -> Option<Vec<u8>> {
    let (head, body) = bin.split_at_checked(4)?;
    if u32::from_le_bytes(head.try_into().ok()?) != VERSION || body.len() % 8 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for e in body.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        if perm & !7 != 0 {
            return None;
        }
        let line = match tag {
            USER_OBJ if id == UNDEFINED_ID => "user::".to_string(),
            USER => format!("user:{id}:"),
            GROUP_OBJ if id == UNDEFINED_ID => "group::".to_string(),
            GROUP => format!("group:{id}:"),
            MASK if id == UNDEFINED_ID => "mask::".to_string(),
            OTHER if id == UNDEFINED_ID => "other::".to_string(),
            _ => return None,
        };
        if !out.is_empty() {
            out.push(b'\n');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(&perm_text(perm));
    }
    Some(out)
}

/// Text → xattr binary (entries in the order given, as the kernel stores them).
pub fn from_text(text: &[u8]) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::Tar(format!("bad ACL text: {why}"));
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
    let mut out = VERSION.to_le_bytes().to_vec();
    for entry in text.split(['\n', ',']) {
        let entry = entry.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let mut parts = entry.split(':');
        let (tag, qual, perm) = (parts.next(), parts.next(), parts.next());
        let (Some(tag), Some(qual), Some(perm)) = (tag, qual, perm) else {
            return Err(bad(entry));
        };
        let qualified = !qual.is_empty();
        let tag = match (tag, qualified) {
            ("user" | "u", false) => USER_OBJ,
            ("user" | "u", true) => USER,
            ("group" | "g", false) => GROUP_OBJ,
            ("group" | "g", true) => GROUP,
            ("mask" | "m", false) => MASK,
            ("other" | "o", false) => OTHER,
            _ => return Err(bad(entry)),
        };
        let id = if qualified {
            qual.parse::<u32>()
                .map_err(|_| bad("non-numeric qualifier"))?
        } else {
            UNDEFINED_ID
        };
        let mut p = 0u16;
        for c in perm.chars() {
            p |= match c {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                '-' => 0,
                _ => return Err(bad(entry)),
            };
        }
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&p.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let text = b"user::rw-\nuser:1000:r-x\ngroup::r--\ngroup:27:rwx\nmask::rwx\nother::---";
        let bin = from_text(text).unwrap();
        assert_eq!(bin.len(), 4 + 6 * 8);
        assert_eq!(to_text(&bin).unwrap(), text);
        assert_eq!(
            from_text(b"u::rw-,g::r--,o::r--").unwrap(),
            from_text(b"user::rw-\ngroup::r--\nother::r--").unwrap()
        );
        assert!(to_text(&[2, 0, 0, 0, 1]).is_none());
    }
}
