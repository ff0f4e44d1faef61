//! Extended attribute values are content too: `user.*` attributes can hold anything
//! an application puts there (tokens, passwords, keys), and they ship with the
//! image. Each `user.*` value is scanned like a small file; a hit names the
//! attribute (`xattr user.api`), never its value, and removes the file that
//! carries it. `system.*`/`security.*`/`trusted.*` are the kernel's and
//! security modules' (ACLs, SELinux labels, capabilities) and are not secrets.

use super::{ContentScan, ContentScanner};
use crate::fs::{Filesystem, NodeId};

/// Largest value scanned (ext4 limits a value to one block; other filesystems more).
const MAX_VALUE: usize = 1 << 20;

/// Adds the hits of `id`'s `user.*` xattr values to `scan`. An unreadable xattr
/// area is a note, not an error: the file's content was already scanned.
pub(super) fn scan_user_xattrs(
    sc: &dyn ContentScanner,
    fs: &dyn Filesystem,
    id: NodeId,
    path: &[u8],
    scan: &mut ContentScan,
) {
    let attrs = match fs.xattrs(id) {
        Ok(a) => a,
        Err(e) => {
            scan.notes
                .push(format!("extended attributes not scanned: {e}"));
            return;
        }
    };
    for x in attrs.iter().filter(|x| x.name.starts_with(b"user.")) {
        let name = String::from_utf8_lossy(&x.name).into_owned();
        let value = &x.value[..x.value.len().min(MAX_VALUE)];
        match sc.scan_file(path, &mut &value[..], value.len() as u64) {
            Ok(inner) => {
                for mut h in inner.hits {
                    let member = match h.member.take() {
                        Some(m) => format!("xattr {name} > {m}"),
                        None => format!("xattr {name}"),
                    };
                    h.why = format!("in {member}: {}", h.why);
                    h.member = Some(member);
                    scan.hits.push(h);
                }
                scan.notes.extend(
                    inner
                        .notes
                        .into_iter()
                        .map(|n| format!("xattr {name}: {n}")),
                );
            }
            Err(e) => scan.notes.push(format!("xattr {name} not scanned: {e}")),
        }
    }
}
