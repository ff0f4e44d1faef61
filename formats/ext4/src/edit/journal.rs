//! Journal replay (what a mount or `e2fsck` does to a filesystem with
//! `needs_recovery`) and journal reset (what a clean unmount leaves).
//!
//! Replay follows jbd2's recovery (`fs/jbd2/recovery.c`, also in e2fsprogs): scan
//! from `s_start` for the end of the log (descriptor, revoke and commit blocks with
//! the expected sequence numbers), collect the revoke records of the committed
//! transactions, then write every logged block that no later-or-equal transaction
//! revoked, restoring escaped magic numbers. Checksums (v2/v3) are verified on
//! descriptor, revoke and commit blocks and on every data block. The editor is
//! stricter than the kernel where the kernel would carry on after damage: a data
//! block whose checksum fails, or a bad commit checksum that is not explainable as
//! a stale block, refuses the whole edit (typed error) instead of replaying a
//! partial transaction. Stale blocks after the log's end (a descriptor or revoke
//! block with a bad checksum whose transaction never commits, or whose commit is
//! older than the previous one) end the log, as in jbd2.
//!
//! v1 transaction checksums (`COMPAT_CHECKSUM`: a big-endian CRC-32 over each
//! transaction's descriptor and data blocks, stored in its commit block) are
//! verified too. Not replayed (refused with `Unsupported`): asynchronous commits
//! and fast commits.
//!
//! Reset: `s_start = 0` (empty log), `s_sequence` = the next transaction id (one
//! past the last replayed, or past the old sequence), checksum updated. Every other
//! journal block is returned for zeroing: old transactions, even checkpointed
//! ones, hold copies of directory blocks and inodes.

use std::collections::HashMap;

use vmscrub_blockdev::{RangeSet, ReadAt};

use crate::checksum::crc32c;
use crate::error::{Error, Loc, Result};
use crate::fs::Ext4;
use crate::journal::{JBD2_MAGIC, Journal, JournalSuperblock, block_type, feature, off, tag_flags};

use super::error::{EditError, EditResult};
use vmscrub_blockdev::Staged;

/// jbd2 incompatible features this code understands.
const KNOWN_INCOMPAT: u32 = feature::INCOMPAT_REVOKE
    | feature::INCOMPAT_64BIT
    | feature::INCOMPAT_ASYNC_COMMIT
    | feature::INCOMPAT_CSUM_V2
    | feature::INCOMPAT_CSUM_V3
    | feature::INCOMPAT_FAST_COMMIT;

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Committed transactions found in the log.
    pub transactions: u32,
    /// Filesystem blocks written from the log (a block logged twice counts twice).
    pub blocks_replayed: u64,
    /// Logged blocks skipped because a transaction revoked them.
    pub blocks_revoked: u64,
}

/// The outcome of scanning the log.
pub(crate) struct Replay {
    pub(crate) stats: ReplayStats,
    /// The sequence number the next transaction would get.
    pub(crate) next_sequence: u32,
}

/// Is the jbd2 superblock something the editor may reset (and replay from)?
pub(crate) fn check_features(j: &Journal) -> EditResult<()> {
    let sb = &j.superblock;
    let unknown = sb.feature_incompat & !KNOWN_INCOMPAT;
    if unknown != 0 {
        return Err(EditError::unsupported(format!(
            "unknown journal incompatible feature bits {unknown:#x}"
        )));
    }
    if sb.feature_ro_compat != 0 {
        return Err(EditError::unsupported(format!(
            "unknown journal read-only-compatible feature bits {:#x}",
            sb.feature_ro_compat
        )));
    }
    if sb.has_csum_v2v3() && sb.checksum_type != 4 {
        return Err(EditError::unsupported(format!(
            "journal checksum type {} (only crc32c, 4, exists)",
            sb.checksum_type
        )));
    }
    Ok(())
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

/// The kernel's `crc32_be` (big-endian CRC-32, polynomial 0x04C11DB7, no final
/// inversion) that v1 journal checksums use.
fn crc32_be(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// jbd2's `tid_gt`: sequence numbers wrap.
fn tid_gt(x: u32, y: u32) -> bool {
    (x.wrapping_sub(y) as i32) > 0
}

/// Size of one descriptor tag (without the 16-byte UUID that may follow).
fn tag_bytes(sb: &JournalSuperblock) -> usize {
    if sb.feature_incompat & feature::INCOMPAT_CSUM_V3 != 0 {
        return 16;
    }
    let mut sz = 12;
    if sb.feature_incompat & feature::INCOMPAT_CSUM_V2 != 0 {
        sz += 2;
    }
    if sb.is_64bit() { sz } else { sz - 4 }
}

struct Tag {
    fs_block: u64,
    log_block: u32,
    flags: u32,
    checksum: u32,
}

struct Txn {
    sequence: u32,
    tags: Vec<Tag>,
    revokes: Vec<u64>,
}

/// Replays the committed transactions of `j` into `stage`.
pub(crate) fn replay<R: ReadAt, D: ReadAt>(
    fs: &Ext4<R>,
    j: &Journal,
    stage: &Staged<D>,
) -> EditResult<Replay> {
    let sb = &j.superblock;
    if sb.start == 0 {
        return Ok(Replay {
            stats: ReplayStats::default(),
            next_sequence: sb.sequence.wrapping_add(1),
        });
    }
    if sb.feature_incompat & feature::INCOMPAT_ASYNC_COMMIT != 0 {
        return Err(EditError::unsupported(
            "journal replay with asynchronous commits",
        ));
    }
    if sb.feature_incompat & feature::INCOMPAT_FAST_COMMIT != 0 {
        return Err(EditError::unsupported("journal replay with fast commits"));
    }
    let loc = Loc::inode(j.inode);
    let bs = fs.block_size() as usize;
    let csum = sb.has_csum_v2v3();
    let seed = crc32c(!0, &sb.uuid);
    let (first, last) = (sb.first, sb.maxlen);
    let wrap = |b: u32| if b >= last { b - (last - first) } else { b };
    let read = |lb: u32| -> Result<Vec<u8>> {
        let phys = j.map.lookup(u64::from(lb)).ok_or_else(|| {
            Error::corrupt("journal", loc, format!("log block {lb} is not mapped"))
        })?;
        fs.read_block_vec(phys, "journal block")
    };
    // Checksum of a block whose last 4 bytes hold it (descriptor and revoke tails).
    let tail_ok = |b: &[u8]| -> bool {
        let t = bs - 4;
        let mut c = crc32c(seed, &b[..t]);
        c = crc32c(c, &[0; 4]);
        c == be32(b, t)
    };
    let tag_size = tag_bytes(sb);
    let tail = if csum { 4 } else { 0 };
    let v1 = sb.feature_compat & feature::COMPAT_CHECKSUM != 0;
    let mut crc_v1: u32 = !0;

    // Pass 1: find the committed transactions.
    let mut committed: Vec<Txn> = Vec::new();
    let mut cur = Txn {
        sequence: sb.sequence,
        tags: Vec::new(),
        revokes: Vec::new(),
    };
    let mut suspect = false;
    let mut last_commit_time: u64 = 0;
    let mut blk = sb.start;
    let mut steps: u64 = 0;
    let limit = u64::from(last - first);
    loop {
        steps += 1;
        if steps > limit {
            return Err(Error::corrupt(
                "journal",
                loc,
                "the log runs longer than the journal (a loop)",
            )
            .into());
        }
        let b = read(blk)?;
        let here = blk;
        blk = wrap(blk + 1);
        if be32(&b, 0) != JBD2_MAGIC || be32(&b, 8) != cur.sequence {
            break;
        }
        match be32(&b, 4) {
            block_type::DESCRIPTOR => {
                if csum && !tail_ok(&b) {
                    suspect = true;
                }
                if v1 {
                    crc_v1 = crc32_be(crc_v1, &b);
                }
                let mut pos = 12;
                while pos + tag_size <= bs - tail {
                    let lo = u64::from(be32(&b, pos));
                    let (flags, checksum) = if tag_size == 16 {
                        (be32(&b, pos + 4), be32(&b, pos + 12))
                    } else {
                        (
                            u32::from(u16::from_be_bytes([b[pos + 6], b[pos + 7]])),
                            u32::from(u16::from_be_bytes([b[pos + 4], b[pos + 5]])),
                        )
                    };
                    let hi = if sb.is_64bit() {
                        u64::from(be32(&b, pos + 8))
                    } else {
                        0
                    };
                    if v1 {
                        crc_v1 = crc32_be(crc_v1, &read(blk)?);
                    }
                    cur.tags.push(Tag {
                        fs_block: lo | (hi << 32),
                        log_block: blk,
                        flags,
                        checksum,
                    });
                    blk = wrap(blk + 1);
                    steps += 1;
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
                if csum && !tail_ok(&b) {
                    suspect = true;
                }
                let count = be32(&b, 12) as usize;
                if count > bs - tail {
                    return Err(Error::corrupt(
                        "journal revoke block",
                        loc,
                        format!("r_count {count} in log block {here}"),
                    )
                    .into());
                }
                let rec = if sb.is_64bit() { 8 } else { 4 };
                let mut pos = 16;
                while pos + rec <= count {
                    cur.revokes.push(if rec == 8 {
                        be64(&b, pos)
                    } else {
                        u64::from(be32(&b, pos))
                    });
                    pos += rec;
                }
            }
            block_type::COMMIT => {
                let commit_time = be64(&b, 48);
                if suspect {
                    if commit_time >= last_commit_time {
                        return Err(Error::corrupt(
                            "journal",
                            loc,
                            format!(
                                "transaction {} has a descriptor or revoke block with a bad checksum",
                                cur.sequence
                            ),
                        )
                        .into());
                    }
                    break; // a stale block from an older log
                }
                if csum {
                    let mut c = crc32c(seed, &b[..16]);
                    c = crc32c(c, &[0; 4]);
                    c = crc32c(c, &b[20..]);
                    if c != be32(&b, 16) {
                        if commit_time < last_commit_time {
                            break;
                        }
                        return Err(Error::ChecksumMismatch {
                            structure: "journal commit block",
                            loc: loc.with_block(u64::from(here)),
                            stored: be32(&b, 16),
                            computed: c,
                        }
                        .into());
                    }
                }
                if v1 {
                    let found = be32(&b, 16);
                    let (kind, size) = (b[12], b[13]);
                    let ok = (kind == 1 && size == 4 && found == crc_v1)
                        || (kind == 0 && size == 0 && found == 0);
                    if !ok {
                        if commit_time < last_commit_time {
                            break;
                        }
                        return Err(Error::ChecksumMismatch {
                            structure: "journal transaction (v1 checksum)",
                            loc: loc.with_block(u64::from(here)),
                            stored: found,
                            computed: crc_v1,
                        }
                        .into());
                    }
                    crc_v1 = !0;
                }
                last_commit_time = commit_time;
                let next = cur.sequence.wrapping_add(1);
                committed.push(std::mem::replace(
                    &mut cur,
                    Txn {
                        sequence: next,
                        tags: Vec::new(),
                        revokes: Vec::new(),
                    },
                ));
            }
            _ => break,
        }
    }
    let next_sequence = cur.sequence;

    // Pass 2: revoke records of committed transactions (the latest per block).
    let mut revoked: HashMap<u64, u32> = HashMap::new();
    for t in &committed {
        for &r in &t.revokes {
            let e = revoked.entry(r).or_insert(t.sequence);
            if tid_gt(t.sequence, *e) {
                *e = t.sequence;
            }
        }
    }

    // Pass 3: replay, verifying everything before staging anything of a block.
    let mut stats = ReplayStats {
        transactions: committed.len() as u32,
        ..Default::default()
    };
    let blocks_count = fs.superblock().blocks_count;
    for t in &committed {
        for tag in &t.tags {
            if let Some(&r) = revoked.get(&tag.fs_block)
                && !tid_gt(t.sequence, r)
            {
                stats.blocks_revoked += 1;
                continue;
            }
            let mut data = read(tag.log_block)?;
            if csum {
                let mut c = crc32c(seed, &t.sequence.to_be_bytes());
                c = crc32c(c, &data);
                let (stored, computed) = if tag_size == 16 {
                    (tag.checksum, c)
                } else {
                    (tag.checksum, c & 0xFFFF)
                };
                if stored != computed {
                    return Err(Error::ChecksumMismatch {
                        structure: "journal data block",
                        loc: loc.with_block(u64::from(tag.log_block)),
                        stored,
                        computed,
                    }
                    .into());
                }
            }
            if tag.fs_block >= blocks_count {
                return Err(Error::corrupt(
                    "journal descriptor",
                    loc,
                    format!(
                        "transaction {} logs block {} past the end of the filesystem",
                        t.sequence, tag.fs_block
                    ),
                )
                .into());
            }
            if tag.flags & tag_flags::ESCAPE != 0 {
                data[..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
            }
            stage.put_block(tag.fs_block, data);
            stats.blocks_replayed += 1;
        }
    }
    Ok(Replay {
        stats,
        next_sequence,
    })
}

/// Stages the reset journal superblock and returns the byte ranges of every
/// other journal block (to be zeroed).
pub(crate) fn reset<R: ReadAt, D: ReadAt>(
    fs: &Ext4<R>,
    j: &Journal,
    stage: &Staged<D>,
    next_sequence: u32,
) -> EditResult<RangeSet> {
    let mut block = stage
        .read_block(j.superblock_block)
        .map_err(|source| Error::Io {
            what: "journal superblock",
            offset: j.superblock_block * u64::from(fs.block_size()),
            source,
        })?;
    block[off::START..off::START + 4].copy_from_slice(&0u32.to_be_bytes());
    block[off::SEQUENCE..off::SEQUENCE + 4].copy_from_slice(&next_sequence.to_be_bytes());
    if j.superblock.has_csum_v2v3() {
        let c = JournalSuperblock::compute_checksum(&block[..1024]);
        block[off::CHECKSUM..off::CHECKSUM + 4].copy_from_slice(&c.to_be_bytes());
    }
    stage.put_block(j.superblock_block, block);
    let bs = u64::from(fs.block_size());
    let mut zero = RangeSet::new();
    for e in &j.map.extents {
        let mut r = e.physical();
        if e.logical == 0 {
            r.start += 1;
        }
        if r.start < r.end {
            zero.insert(r.start * bs..r.end * bs);
        }
    }
    Ok(zero)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_be_matches_the_mpeg2_check_value() {
        // CRC-32/MPEG-2 is this CRC with seed !0: check value of "123456789".
        assert_eq!(crc32_be(!0, b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn sequence_comparisons_wrap() {
        assert!(tid_gt(5, 4));
        assert!(!tid_gt(4, 4));
        assert!(tid_gt(1, u32::MAX));
        assert!(!tid_gt(u32::MAX, 1));
    }
}
