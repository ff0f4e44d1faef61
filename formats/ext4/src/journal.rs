//! The jbd2 journal (big-endian): its superblock, and a scan of the transactions
//! a mount would replay. The reader never replays (it reads the on-disk state and
//! reports [`Ext4::needs_recovery`]); the scan is what an editor needs to replay or
//! to reset the journal.

use vmscrub_blockdev::ReadAt;

use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::features::compat;
use crate::fs::Ext4;
use crate::le::{be32_at, u8_at};
use crate::map::FileMap;

pub const JBD2_MAGIC: u32 = 0xC03B_3998;

pub mod block_type {
    pub const DESCRIPTOR: u32 = 1;
    pub const COMMIT: u32 = 2;
    pub const SUPERBLOCK_V1: u32 = 3;
    pub const SUPERBLOCK_V2: u32 = 4;
    pub const REVOKE: u32 = 5;
}

pub mod feature {
    pub const COMPAT_CHECKSUM: u32 = 0x1;
    pub const INCOMPAT_REVOKE: u32 = 0x1;
    pub const INCOMPAT_64BIT: u32 = 0x2;
    pub const INCOMPAT_ASYNC_COMMIT: u32 = 0x4;
    pub const INCOMPAT_CSUM_V2: u32 = 0x8;
    pub const INCOMPAT_CSUM_V3: u32 = 0x10;
    pub const INCOMPAT_FAST_COMMIT: u32 = 0x20;
}

/// Descriptor tag flags.
pub mod tag_flags {
    /// The data block's first four bytes were the journal magic and are zeroed.
    pub const ESCAPE: u32 = 1;
    /// No 16-byte UUID follows the tag.
    pub const SAME_UUID: u32 = 2;
    pub const DELETED: u32 = 4;
    pub const LAST_TAG: u32 = 8;
}

/// Journal superblock field offsets.
pub mod off {
    pub const MAGIC: usize = 0x0;
    pub const BLOCKTYPE: usize = 0x4;
    pub const BLOCKSIZE: usize = 0xC;
    pub const MAXLEN: usize = 0x10;
    pub const FIRST: usize = 0x14;
    pub const SEQUENCE: usize = 0x18;
    pub const START: usize = 0x1C;
    pub const ERRNO: usize = 0x20;
    pub const FEATURE_COMPAT: usize = 0x24;
    pub const FEATURE_INCOMPAT: usize = 0x28;
    pub const FEATURE_RO_COMPAT: usize = 0x2C;
    pub const UUID: usize = 0x30;
    pub const NR_USERS: usize = 0x40;
    pub const MAX_TRANSACTION: usize = 0x48;
    pub const CHECKSUM_TYPE: usize = 0x50;
    pub const CHECKSUM: usize = 0xFC;
}

#[derive(Debug, Clone)]
pub struct JournalSuperblock {
    /// 3 (v1) or 4 (v2).
    pub blocktype: u32,
    pub block_size: u32,
    /// Journal length in blocks.
    pub maxlen: u32,
    /// First log block.
    pub first: u32,
    /// Sequence of the first transaction expected in the log.
    pub sequence: u32,
    /// Log block of the first transaction; 0 means the journal is empty (clean).
    pub start: u32,
    pub errno: i32,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    pub uuid: [u8; 16],
    pub nr_users: u32,
    pub checksum_type: u8,
    pub checksum: u32,
    /// The first 1024 bytes of journal block 0.
    pub raw: Vec<u8>,
}

impl JournalSuperblock {
    pub fn parse(raw: &[u8], loc: Loc) -> Result<Self> {
        let bad = |d: String| Err(Error::corrupt("journal superblock", loc, d));
        if raw.len() < 1024 {
            return bad("shorter than 1024 bytes".into());
        }
        let magic = be32_at(raw, off::MAGIC);
        if magic != JBD2_MAGIC {
            return bad(format!("bad magic {magic:#010x}"));
        }
        let blocktype = be32_at(raw, off::BLOCKTYPE);
        if blocktype != block_type::SUPERBLOCK_V1 && blocktype != block_type::SUPERBLOCK_V2 {
            return bad(format!("block type {blocktype} is not a superblock"));
        }
        let v2 = blocktype == block_type::SUPERBLOCK_V2;
        let word = |o| if v2 { be32_at(raw, o) } else { 0 };
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&raw[off::UUID..off::UUID + 16]);
        let sb = JournalSuperblock {
            blocktype,
            block_size: be32_at(raw, off::BLOCKSIZE),
            maxlen: be32_at(raw, off::MAXLEN),
            first: be32_at(raw, off::FIRST),
            sequence: be32_at(raw, off::SEQUENCE),
            start: be32_at(raw, off::START),
            errno: be32_at(raw, off::ERRNO) as i32,
            feature_compat: word(off::FEATURE_COMPAT),
            feature_incompat: word(off::FEATURE_INCOMPAT),
            feature_ro_compat: word(off::FEATURE_RO_COMPAT),
            uuid,
            nr_users: word(off::NR_USERS),
            checksum_type: if v2 {
                u8_at(raw, off::CHECKSUM_TYPE)
            } else {
                0
            },
            checksum: word(off::CHECKSUM),
            raw: raw[..1024].to_vec(),
        };
        if sb.first == 0
            || sb.first >= sb.maxlen
            || (sb.start != 0 && (sb.start < sb.first || sb.start >= sb.maxlen))
        {
            return bad(format!(
                "log area first {} start {} maxlen {}",
                sb.first, sb.start, sb.maxlen
            ));
        }
        Ok(sb)
    }

    pub fn has_csum_v2v3(&self) -> bool {
        self.feature_incompat & (feature::INCOMPAT_CSUM_V2 | feature::INCOMPAT_CSUM_V3) != 0
    }

    pub fn is_64bit(&self) -> bool {
        self.feature_incompat & feature::INCOMPAT_64BIT != 0
    }

    /// The journal superblock checksum (csum v2/v3): crc32c over the 1024 bytes
    /// with the checksum field zeroed.
    pub fn compute_checksum(raw: &[u8]) -> u32 {
        let mut c = checksum::crc32c(!0, raw.get(..off::CHECKSUM).unwrap_or(&[]));
        c = checksum::crc32c(c, &[0; 4]);
        checksum::crc32c(c, raw.get(off::CHECKSUM + 4..1024).unwrap_or(&[]))
    }

    /// Size of one descriptor tag (without the optional UUID).
    pub fn tag_size(&self) -> usize {
        if self.feature_incompat & feature::INCOMPAT_CSUM_V3 != 0 {
            16
        } else if self.is_64bit() {
            12
        } else {
            8
        }
    }
}

/// One block a transaction logs: journal log block `journal_block` holds the new
/// content of filesystem block `fs_block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedBlock {
    pub fs_block: u64,
    pub journal_block: u32,
    /// The first four bytes must be restored to the journal magic on replay.
    pub escaped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub sequence: u32,
    pub blocks: Vec<LoggedBlock>,
    /// Filesystem blocks revoked by this transaction.
    pub revoked: Vec<u64>,
}

/// The opened journal: its inode, map and superblock.
#[derive(Debug, Clone)]
pub struct Journal {
    pub inode: u32,
    pub map: FileMap,
    pub superblock: JournalSuperblock,
    /// Where the journal superblock is (filesystem block).
    pub superblock_block: u64,
}

impl<D: ReadAt> Ext4<D> {
    /// The internal journal, if the filesystem has one. An external journal
    /// device is reported as unsupported.
    pub fn journal(&self) -> Result<Option<Journal>> {
        let sb = self.superblock();
        if !sb.features.has_compat(compat::HAS_JOURNAL) {
            return Ok(None);
        }
        if sb.journal_inum == 0 {
            return Err(Error::unsupported("external journal device"));
        }
        let inode = self.inode(sb.journal_inum)?;
        let map = self.file_map(&inode)?;
        let loc = Loc::inode(inode.ino);
        let blk0 = map
            .lookup(0)
            .ok_or_else(|| Error::corrupt("journal", loc, "block 0 is not mapped"))?;
        let raw = self.read_block_vec(blk0, "journal superblock")?;
        let jsb = JournalSuperblock::parse(&raw, loc.with_block(blk0))?;
        if jsb.block_size != self.block_size() {
            return Err(Error::corrupt(
                "journal superblock",
                loc,
                format!("block size {}", jsb.block_size),
            ));
        }
        if u64::from(jsb.maxlen) > map.data_blocks() {
            return Err(Error::corrupt(
                "journal superblock",
                loc,
                format!("maxlen {} exceeds the journal inode", jsb.maxlen),
            ));
        }
        if jsb.has_csum_v2v3() && self.verify_checksums() {
            let computed = JournalSuperblock::compute_checksum(&raw);
            if computed != jsb.checksum {
                return Err(Error::ChecksumMismatch {
                    structure: "journal superblock",
                    loc: loc.with_block(blk0),
                    stored: jsb.checksum,
                    computed,
                });
            }
        }
        Ok(Some(Journal {
            inode: inode.ino,
            map,
            superblock: jsb,
            superblock_block: blk0,
        }))
    }

    /// Scans the log from `s_start` and returns the committed transactions a
    /// replay would apply, in order (an uncommitted tail is left out). Bounded by
    /// one pass over the log.
    pub fn journal_transactions(&self, j: &Journal) -> Result<Vec<Transaction>> {
        let sb = &j.superblock;
        let mut out = Vec::new();
        if sb.start == 0 {
            return Ok(out);
        }
        let loc = Loc::inode(j.inode);
        let next = |b: u32| if b + 1 >= sb.maxlen { sb.first } else { b + 1 };
        let read = |lb: u32| -> Result<Vec<u8>> {
            let phys = j.map.lookup(u64::from(lb)).ok_or_else(|| {
                Error::corrupt("journal", loc, format!("log block {lb} is not mapped"))
            })?;
            self.read_block_vec(phys, "journal block")
        };
        let bs = self.block_size() as usize;
        let tail = if sb.has_csum_v2v3() { 4 } else { 0 };
        let tag_size = sb.tag_size();
        let mut blk = sb.start;
        let mut seq = sb.sequence;
        let mut cur = Transaction {
            sequence: seq,
            blocks: Vec::new(),
            revoked: Vec::new(),
        };
        let mut steps = 0u32;
        while steps < sb.maxlen {
            steps += 1;
            let b = read(blk)?;
            if be32_at(&b, 0) != JBD2_MAGIC || be32_at(&b, 8) != seq {
                break;
            }
            match be32_at(&b, 4) {
                block_type::DESCRIPTOR => {
                    let mut pos = 12;
                    while pos + tag_size <= bs - tail {
                        let lo = u64::from(be32_at(&b, pos));
                        let (flags, hi) = if tag_size == 16 {
                            (be32_at(&b, pos + 4), u64::from(be32_at(&b, pos + 8)))
                        } else {
                            let f = u32::from(u16::from_be_bytes([b[pos + 6], b[pos + 7]]));
                            (
                                f,
                                if tag_size == 12 {
                                    u64::from(be32_at(&b, pos + 8))
                                } else {
                                    0
                                },
                            )
                        };
                        blk = next(blk);
                        steps += 1;
                        cur.blocks.push(LoggedBlock {
                            fs_block: lo | (hi << 32),
                            journal_block: blk,
                            escaped: flags & tag_flags::ESCAPE != 0,
                        });
                        pos += tag_size;
                        if flags & tag_flags::SAME_UUID == 0 {
                            pos += 16;
                        }
                        if flags & tag_flags::LAST_TAG != 0 {
                            break;
                        }
                    }
                }
                block_type::REVOKE => {
                    let count = (be32_at(&b, 12) as usize).min(bs - tail);
                    let rec = if sb.is_64bit() { 8 } else { 4 };
                    let mut pos = 16;
                    while pos + rec <= count {
                        let v = if rec == 8 {
                            (u64::from(be32_at(&b, pos)) << 32) | u64::from(be32_at(&b, pos + 4))
                        } else {
                            u64::from(be32_at(&b, pos))
                        };
                        cur.revoked.push(v);
                        pos += rec;
                    }
                }
                block_type::COMMIT => {
                    out.push(std::mem::replace(
                        &mut cur,
                        Transaction {
                            sequence: seq.wrapping_add(1),
                            blocks: Vec::new(),
                            revoked: Vec::new(),
                        },
                    ));
                    seq = seq.wrapping_add(1);
                }
                _ => break,
            }
            blk = next(blk);
        }
        Ok(out)
    }
}
