//! Feature flags of the superblock, and which of them this reader accepts.
//!
//! The rule: an unknown or refused *incompatible* feature stops `open` with
//! [`Error::Unsupported`]; an unknown *read-only compatible* feature only adds a note
//! (its data may be read, never written — the editor must refuse it); compatible
//! features never matter to a reader.

use crate::error::{Error, Result};

pub mod compat {
    pub const DIR_PREALLOC: u32 = 0x1;
    pub const IMAGIC_INODES: u32 = 0x2;
    pub const HAS_JOURNAL: u32 = 0x4;
    pub const EXT_ATTR: u32 = 0x8;
    pub const RESIZE_INODE: u32 = 0x10;
    pub const DIR_INDEX: u32 = 0x20;
    pub const LAZY_BG: u32 = 0x40;
    pub const EXCLUDE_BITMAP: u32 = 0x100;
    pub const SPARSE_SUPER2: u32 = 0x200;
    pub const FAST_COMMIT: u32 = 0x400;
    pub const STABLE_INODES: u32 = 0x800;
    pub const ORPHAN_FILE: u32 = 0x1000;
}

pub mod incompat {
    pub const COMPRESSION: u32 = 0x1;
    pub const FILETYPE: u32 = 0x2;
    pub const RECOVER: u32 = 0x4;
    pub const JOURNAL_DEV: u32 = 0x8;
    pub const META_BG: u32 = 0x10;
    pub const EXTENTS: u32 = 0x40;
    pub const BIT64: u32 = 0x80;
    pub const MMP: u32 = 0x100;
    pub const FLEX_BG: u32 = 0x200;
    pub const EA_INODE: u32 = 0x400;
    pub const DIRDATA: u32 = 0x1000;
    pub const CSUM_SEED: u32 = 0x2000;
    pub const LARGEDIR: u32 = 0x4000;
    pub const INLINE_DATA: u32 = 0x8000;
    pub const ENCRYPT: u32 = 0x10000;
    pub const CASEFOLD: u32 = 0x20000;
}

pub mod ro_compat {
    pub const SPARSE_SUPER: u32 = 0x1;
    pub const LARGE_FILE: u32 = 0x2;
    pub const BTREE_DIR: u32 = 0x4;
    pub const HUGE_FILE: u32 = 0x8;
    pub const GDT_CSUM: u32 = 0x10;
    pub const DIR_NLINK: u32 = 0x20;
    pub const EXTRA_ISIZE: u32 = 0x40;
    pub const HAS_SNAPSHOT: u32 = 0x80;
    pub const QUOTA: u32 = 0x100;
    pub const BIGALLOC: u32 = 0x200;
    pub const METADATA_CSUM: u32 = 0x400;
    pub const REPLICA: u32 = 0x800;
    pub const READONLY: u32 = 0x1000;
    pub const PROJECT: u32 = 0x2000;
    pub const SHARED_BLOCKS: u32 = 0x4000;
    pub const VERITY: u32 = 0x8000;
    pub const ORPHAN_PRESENT: u32 = 0x10000;
}

/// Incompatible features this reader understands.
const KNOWN_INCOMPAT: u32 = incompat::FILETYPE
    | incompat::RECOVER
    | incompat::META_BG
    | incompat::EXTENTS
    | incompat::BIT64
    | incompat::MMP
    | incompat::FLEX_BG
    | incompat::EA_INODE
    | incompat::CSUM_SEED
    | incompat::LARGEDIR
    | incompat::INLINE_DATA;

/// Read-only-compatible features this reader understands.
const KNOWN_RO_COMPAT: u32 = ro_compat::SPARSE_SUPER
    | ro_compat::LARGE_FILE
    | ro_compat::BTREE_DIR
    | ro_compat::HUGE_FILE
    | ro_compat::GDT_CSUM
    | ro_compat::DIR_NLINK
    | ro_compat::EXTRA_ISIZE
    | ro_compat::QUOTA
    | ro_compat::METADATA_CSUM
    | ro_compat::READONLY
    | ro_compat::PROJECT
    | ro_compat::ORPHAN_PRESENT;

/// The three feature words of a superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    pub compat: u32,
    pub incompat: u32,
    pub ro_compat: u32,
}

impl Features {
    pub fn has_compat(&self, f: u32) -> bool {
        self.compat & f != 0
    }
    pub fn has_incompat(&self, f: u32) -> bool {
        self.incompat & f != 0
    }
    pub fn has_ro_compat(&self, f: u32) -> bool {
        self.ro_compat & f != 0
    }

    /// Refuses what cannot be read faithfully; returns notes on what is read with
    /// a caveat (unknown read-only-compatible bits).
    pub fn check_readable(&self) -> Result<Vec<String>> {
        let refused: [(u32, &str); 5] = [
            (incompat::COMPRESSION, "compression"),
            (
                incompat::JOURNAL_DEV,
                "journal_dev (this is an external journal device, not a filesystem)",
            ),
            (incompat::DIRDATA, "dirdata"),
            (
                incompat::ENCRYPT,
                "encrypt (file contents and names are encrypted)",
            ),
            (
                incompat::CASEFOLD,
                "casefold (case-insensitive directories)",
            ),
        ];
        for (bit, name) in refused {
            if self.incompat & bit != 0 {
                return Err(Error::unsupported(name));
            }
        }
        let unknown = self.incompat & !KNOWN_INCOMPAT;
        if unknown != 0 {
            return Err(Error::unsupported(format!(
                "unknown incompatible feature bits {unknown:#x}"
            )));
        }
        let refused_ro: [(u32, &str); 4] = [
            (ro_compat::BIGALLOC, "bigalloc (cluster allocation)"),
            (ro_compat::VERITY, "verity"),
            (ro_compat::HAS_SNAPSHOT, "has_snapshot"),
            (ro_compat::SHARED_BLOCKS, "shared_blocks"),
        ];
        for (bit, name) in refused_ro {
            if self.ro_compat & bit != 0 {
                return Err(Error::unsupported(name));
            }
        }
        let mut notes = Vec::new();
        let unknown_ro = self.ro_compat & !KNOWN_RO_COMPAT & !ro_compat::REPLICA;
        if unknown_ro != 0 {
            notes.push(format!(
                "unknown read-only-compatible feature bits {unknown_ro:#x}: read anyway, must not be written"
            ));
        }
        Ok(notes)
    }
}
