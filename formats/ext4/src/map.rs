//! The logical-to-physical map of a file, whatever stored it (extent tree or
//! indirect block map), and the metadata blocks the mapping itself occupies.
//! This is what the editor frees and what content reads follow.

/// A run of `len` file blocks from logical block `logical` stored at physical
/// block `start`. `uninit` extents are allocated but read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    pub logical: u32,
    pub start: u64,
    pub len: u32,
    pub uninit: bool,
}

impl Extent {
    pub fn logical_end(&self) -> u64 {
        u64::from(self.logical) + u64::from(self.len)
    }

    /// Physical blocks `start..start + len`.
    pub fn physical(&self) -> std::ops::Range<u64> {
        self.start..self.start + u64::from(self.len)
    }
}

/// What a mapping block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaKind {
    /// An extent tree node below the root; `depth` 0 is a leaf.
    ExtentNode { depth: u16 },
    /// An indirect block: level 1 (single), 2 (double) or 3 (triple).
    Indirect { level: u8 },
    /// The external extended-attribute block; `refcount` > 1 means it is shared
    /// with other inodes and must not be freed while they use it.
    XattrBlock { refcount: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetaBlock {
    pub block: u64,
    pub kind: MetaKind,
}

/// Data extents in logical order, plus the blocks holding the map itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileMap {
    pub extents: Vec<Extent>,
    pub meta: Vec<MetaBlock>,
}

impl FileMap {
    /// Index of the extent holding logical block `lblk`, or of the first one
    /// after it (`Err`), by binary search.
    pub fn find(&self, lblk: u64) -> Result<usize, usize> {
        self.extents.binary_search_by(|e| {
            if e.logical_end() <= lblk {
                std::cmp::Ordering::Less
            } else if u64::from(e.logical) > lblk {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
    }

    /// The physical block for logical block `lblk`, `None` for a hole or an
    /// uninitialized extent (both read as zeros).
    pub fn lookup(&self, lblk: u64) -> Option<u64> {
        let i = self.find(lblk).ok()?;
        let e = self.extents.get(i)?;
        if e.uninit {
            return None;
        }
        Some(e.start + (lblk - u64::from(e.logical)))
    }

    /// Number of data blocks mapped (initialized or not).
    pub fn data_blocks(&self) -> u64 {
        self.extents.iter().map(|e| u64::from(e.len)).sum()
    }
}

/// Every block an inode owns: its data, its mapping blocks and its xattr block,
/// plus the inodes holding its large xattr values (`ea_inode`). The editor's input
/// for freeing an inode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedBlocks {
    pub ino: u32,
    pub data: Vec<Extent>,
    pub meta: Vec<MetaBlock>,
    /// Inodes holding this inode's large xattr values.
    pub ea_inodes: Vec<u32>,
}

impl OwnedBlocks {
    /// All physical block ranges (data and metadata), sorted and coalesced. Shared
    /// xattr blocks are included; check [`MetaKind::XattrBlock`] `refcount` first.
    pub fn block_ranges(&self) -> Vec<std::ops::Range<u64>> {
        let mut v: Vec<std::ops::Range<u64>> = self.data.iter().map(|e| e.physical()).collect();
        v.extend(self.meta.iter().map(|m| m.block..m.block + 1));
        v.sort_by_key(|r| r.start);
        let mut out: Vec<std::ops::Range<u64>> = Vec::with_capacity(v.len());
        for r in v {
            match out.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => out.push(r),
            }
        }
        out
    }
}
