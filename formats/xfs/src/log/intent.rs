//! Intent and done items (EFI/EFD, RUI/RUD, CUI/CUD, BUI/BUD, ATTRI/ATTRD,
//! XMI/XMD): an intent says deferred work will follow (freeing extents,
//! updating the rmap or refcount B+trees, a bmap change, an xattr change, a
//! file exchange); its done item says the work is logged. An intent left
//! without its done item at the end of the log means the kernel would redo
//! that work at mount: this replay does not, it refuses (the caller then reads
//! the on-disk state and says why). Both kinds carry the intent's id at byte 8.

/// The intent types, their done types, and their names.
pub const PAIRS: &[(u16, u16, &str)] = &[
    (0x1236, 0x1237, "extent free (EFI)"),
    (0x1240, 0x1241, "reverse mapping update (RUI)"),
    (0x1242, 0x1243, "reference count update (CUI)"),
    (0x1244, 0x1245, "block mapping update (BUI)"),
    (0x1246, 0x1247, "extended attribute update (ATTRI)"),
    (0x1248, 0x1249, "file range exchange (XMI)"),
    (0x124a, 0x124b, "realtime extent free (EFI)"),
    (0x124c, 0x124d, "realtime reverse mapping update (RUI)"),
    (0x124e, 0x124f, "realtime reference count update (CUI)"),
];

/// What an item type is to the intent bookkeeping.
pub enum Role {
    /// An intent of pair `usize`.
    Intent(usize),
    /// A done item of pair `usize`.
    Done(usize),
}

pub fn role(kind: u16) -> Option<Role> {
    PAIRS.iter().enumerate().find_map(|(i, (a, d, _))| {
        if kind == *a {
            Some(Role::Intent(i))
        } else if kind == *d {
            Some(Role::Done(i))
        } else {
            None
        }
    })
}

/// The intent id an intent or done item carries (byte 8, host order).
pub fn id(first_region: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(
        first_region.get(8..16)?.try_into().ok()?,
    ))
}
