//! The internal log's state, found the way the kernel's log recovery starts: the
//! head is where the cycle number stamped into the first word of every 512-byte
//! log block drops; the last record before it is clean only if it is a lone
//! unmount record. A dirty log holds metadata changes the on-disk structures do
//! not have yet (a snapshot of a running VM): [`Xfs::replay_log`] replays it
//! into a list of sectors to lay over the device (the submodules, one per log
//! structure), never onto the device itself.

pub mod buf_item;
pub mod icreate;
pub mod inode_item;
pub mod intent;
pub mod record;
pub mod replay;
pub mod trans;

pub use replay::Replayed;

use vmscrub_blockdev::ReadAt;

use crate::be::{u8_at, u32_at};
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;

pub(crate) const BB: u64 = 512;
pub(crate) const HEADER_MAGIC: u32 = 0xfeed_babe;
const UNMOUNT_TRANS: u8 = 0x20;
/// How far before the head the kernel looks for a partly written record.
const HEAD_SCAN: u64 = 256;

/// What the log says about the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    /// Never written since mkfs (all zeros): nothing to recover.
    Empty,
    /// Ends with an unmount record: the structures on disk are complete.
    Clean,
    /// Holds transactions that a mount would replay first.
    Dirty {
        /// Log block (512-byte units) of the head.
        head: u64,
        /// Cycle number at the head.
        cycle: u32,
    },
}

impl LogState {
    pub fn is_dirty(&self) -> bool {
        matches!(self, LogState::Dirty { .. })
    }
}

impl<D: ReadAt> Xfs<D> {
    /// Finds the log head and decides whether the log is clean.
    pub fn log_state(&self) -> Result<LogState> {
        let (start, total) = self.log_geometry()?;
        // A record header block starts with the magic and has its cycle in the
        // next word; every other log block starts with its cycle.
        let cycle_at = |bb: u64| -> Result<u32> {
            let mut w = [0u8; 8];
            self.read_bytes(&mut w, start + bb * BB, "log block")?;
            let at = if u32_at(&w, 0) == HEADER_MAGIC { 4 } else { 0 };
            Ok(u32_at(&w, at))
        };
        let first = cycle_at(0)?;
        if first == 0 {
            return Ok(LogState::Empty);
        }
        let last = cycle_at(total - 1)?;
        // Blocks [0, head) carry cycle `first`, [head, total) the cycle before
        // (or `first` too when the log ends exactly at its end).
        let mut head = if last == first {
            total
        } else {
            first_block_with(&cycle_at, 0, total - 1, first)?
        };
        // A write in flight can leave older-cycle blocks just before the head.
        let window = head.saturating_sub(HEAD_SCAN);
        for bb in window..head {
            if cycle_at(bb)? != first {
                head = bb;
                break;
            }
        }
        self.classify(start, total, head % total, first)
    }

    /// Looks back from the head for the last record header and checks whether
    /// it is a lone unmount record that ends exactly at the head.
    fn classify(&self, start: u64, total: u64, head: u64, cycle: u32) -> Result<LogState> {
        let dirty = LogState::Dirty { head, cycle };
        let (bb, hdr) = self.last_record(head)?;
        let len = u64::from(u32_at(&hdr, 12));
        let version = u32_at(&hdr, 8);
        let h_size = u64::from(u32_at(&hdr, 320));
        let hblks = if version == 2 && h_size > 32768 {
            h_size.div_ceil(32768)
        } else {
            1
        };
        let after = (bb + hblks + len.div_ceil(BB)) % total;
        if u32_at(&hdr, 40) != 1 || after != head {
            return Ok(dirty);
        }
        let mut op = [0u8; 12];
        self.read_bytes(
            &mut op,
            start + ((bb + hblks) % total) * BB,
            "log operation",
        )?;
        Ok(if u8_at(&op, 9) & UNMOUNT_TRANS != 0 {
            LogState::Clean
        } else {
            dirty
        })
    }

    /// Where the internal log starts (byte offset) and its length in 512-byte
    /// log blocks.
    pub(crate) fn log_geometry(&self) -> Result<(u64, u64)> {
        let start = self.fsb_byte(self.sb.log_start, Loc::NONE)?;
        let total = (u64::from(self.sb.log_blocks) << self.sb.block_log) / BB;
        if total < 2 {
            return Err(Error::corrupt(
                "log",
                Loc::at(start),
                "the log has no blocks",
            ));
        }
        Ok((start, total))
    }

    /// The last record header before log block `head`: its block and its
    /// first 512 bytes (the kernel's `xlog_find_tail` reads the tail from it).
    pub(crate) fn last_record(&self, head: u64) -> Result<(u64, [u8; 512])> {
        let (start, total) = self.log_geometry()?;
        let mut hdr = [0u8; 512];
        for back in 1..=total.min(1 << 16) {
            let bb = (head + total - back) % total;
            self.read_bytes(&mut hdr, start + bb * BB, "log record header")?;
            if u32_at(&hdr, 0) == HEADER_MAGIC {
                return Ok((bb, hdr));
            }
        }
        Err(Error::corrupt(
            "log",
            Loc::at(start),
            "no record header before the head",
        ))
    }
}

/// Binary search for the first block in `[lo, hi]` whose cycle differs from
/// `cycle` (the kernel's `xlog_find_cycle_start`), given that `hi` differs.
fn first_block_with(
    cycle_at: &dyn Fn(u64) -> Result<u32>,
    mut lo: u64,
    mut hi: u64,
    cycle: u32,
) -> Result<u64> {
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if cycle_at(mid)? == cycle {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}
