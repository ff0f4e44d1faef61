//! The internal log rewritten empty and clean, the layout xfsprogs'
//! `libxfs_log_clear` gives a log it resets at a cycle above 1: at block 0 a
//! record holding only an unmount record, at cycle `C`; every other block in
//! records of cycle `C - 1`, each an unmount record too. The kernel's
//! `xlog_find_head` then finds the head right after the first record (the
//! first block whose cycle drops to `C - 1`), `xlog_find_tail` finds the
//! unmount record ending exactly there, and the log is clean: no recovery.
//!
//! Why not zeros after the first record: a log whose last block has cycle 0
//! must start with cycle 1 (`xlog_find_zeroed` refuses anything else), and a
//! v5 filesystem needs a cycle above every LSN stamped in its metadata (the
//! verifiers reject metadata "from the future"). `C` is one above the highest
//! cycle found anywhere in the old log (every block's cycle stamp and every
//! record's LSN and tail LSN) and in the LSNs of the superblock and the AG
//! headers; the kernel stamps metadata only with LSNs of records it wrote to
//! this log, so nothing on disk is above the old log's head.
//!
//! Every block of the log is rewritten, so no old record survives and nothing
//! is left to zero. The records go to the caller's writer a megabyte at a
//! time rather than into the stage: a log can be 2 GiB, and holding it in
//! memory to write it once is what the stage is not for. The caller must have
//! replayed a dirty log before: this throws its transactions away.

use std::ops::Range;
use std::sync::Arc;

use vmscrub_blockdev::{ReadAt, Staged};

use crate::be::{u16_at, u32_at, u64_at};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;

const BB: usize = 512;
const HEADER_MAGIC: u32 = 0xfeed_babe;
/// Bytes of the record header and of an extended header the CRC covers.
const HEADER_LEN: usize = 328;
const EXT_HEADER_LEN: usize = 260;
const CRC_OFF: usize = 32;
/// Data blocks one header's cycle words cover (`XLOG_HEADER_CYCLE_SIZE`).
const CYCLE_SIZE: usize = 32 * 1024;
/// The largest log record (`XLOG_MAX_RECORD_BSIZE`).
const MAX_RECORD: usize = 256 * 1024;
const SB_VERSION_LOGV2: u16 = 0x0400;
const SB_LOGSECTSIZE: usize = 194;
const SB_LOGSUNIT: usize = 196;
const SB_LSN: usize = 240;
const AGF_LSN: usize = 208;
const AGFL_LSN: usize = 24;
/// `XLOG_FMT_LINUX_LE`: the unmount record's magic is written little-endian.
const FMT_LINUX_LE: u32 = 1;
/// The transaction id xfsprogs marks its unmount records with.
const USER_TID: u32 = 0xb0c0_d0d0;
const CLIENT_LOG: u8 = 0xaa;
const UNMOUNT_TRANS: u8 = 0x20;
const UNMOUNT_TYPE: u16 = 0x556e;

/// What the reset wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogReset {
    /// The cycle of the unmount record at block 0.
    pub cycle: u32,
    /// Device byte ranges of the log to zero (all of it but what was staged):
    /// empty, every block is staged.
    pub zero: Vec<Range<u64>>,
}

/// How the log's records are laid out.
#[derive(Debug, Clone, Copy)]
struct Layout {
    version: u32,
    /// Blocks (512 bytes) per record, headers included.
    record_bbs: usize,
    /// `h_size`: the record size the kernel derives the header count from.
    h_size: usize,
    headers: usize,
    uuid: [u8; 16],
}

/// Where the rewritten log goes: `(device byte offset, bytes)`, in order.
pub(crate) type LogWriter<'a> = dyn FnMut(u64, &[u8]) -> Result<()> + 'a;

/// Bytes handed to the writer at once.
const WRITE_CHUNK: usize = 1 << 20;

/// Rewrites the internal log empty and clean through `write` (see the module
/// doc).
pub(crate) fn reset_log<D: ReadAt>(
    fs: &Xfs<Arc<Staged<D>>>,
    write: &mut LogWriter<'_>,
) -> Result<LogReset> {
    if !fs.sb.has_crc() {
        return Err(Error::refused(
            "log",
            "a version 4 filesystem (no metadata checksums)",
        ));
    }
    let (start, total) = fs.log_geometry()?;
    let total = usize::try_from(total).map_err(|_| Error::refused("log", "too large"))?;
    let layout = layout(fs)?;
    let top = highest_cycle(fs, start, total)?;
    // Cycle 1 would need the rest of the log zeroed instead (the kernel's
    // rule for a partly written log): step to 2 at least.
    let cycle = top
        .checked_add(1)
        .map(|c| c.max(2))
        .ok_or_else(|| Error::refused("log", format!("cycle {top} cannot be stepped over")))?;
    if total < 2 * layout.record_bbs {
        return Err(Error::refused(
            "log",
            format!("{total} log blocks hold fewer than two records"),
        ));
    }
    let bs = fs.sb.block_size as usize;
    if !start.is_multiple_of(bs as u64) || !(total * BB).is_multiple_of(bs) {
        return Err(Error::corrupt(
            "log",
            Loc::at(start),
            "not aligned to filesystem blocks",
        ));
    }
    // Every record is checked before the first byte goes out: the writer
    // writes to the device, and a log refused half-written would be lost.
    let len = layout.record_bbs;
    let last = (total - len) % len;
    if last != 0 && last <= layout.headers {
        return Err(Error::refused(
            "log",
            format!("{total} log blocks leave a one-block record at the end"),
        ));
    }
    let mut sink = Sink {
        write,
        bs,
        next: start,
        pending: Vec::with_capacity(WRITE_CHUNK + MAX_RECORD),
    };
    let whole = |c: u32, b: usize| (u64::from(c) << 32) | b as u64;
    let first_tail = whole(cycle - 1, total.saturating_sub(len));
    sink.push(&record(&layout, cycle, whole(cycle, 0), first_tail, len))?;
    let mut blk = len;
    while blk < total {
        let n = len.min(total - blk);
        let lsn = whole(cycle - 1, blk);
        let tail = whole(cycle - 1, blk - len);
        sink.push(&record(&layout, cycle - 1, lsn, tail, n))?;
        blk += n;
    }
    sink.finish()?;
    Ok(LogReset {
        cycle,
        zero: vec![],
    })
}

fn layout<D: ReadAt>(fs: &Xfs<D>) -> Result<Layout> {
    let mut sb = vec![0u8; BB];
    fs.read_bytes(&mut sb, 0, "superblock")?;
    let logv2 = fs.sb.versionnum & SB_VERSION_LOGV2 != 0;
    let sunit = if logv2 {
        u32_at(&sb, SB_LOGSUNIT) as usize
    } else {
        0
    };
    if sunit > MAX_RECORD || (sunit > 1 && !sunit.is_multiple_of(BB)) {
        return Err(Error::refused(
            "log",
            format!("log stripe unit of {sunit} bytes"),
        ));
    }
    // Records never smaller than a log sector: the kernel writes from the
    // head on, and its writes must start on a sector.
    let sector = usize::from(u16_at(&sb, SB_LOGSECTSIZE)).max(BB);
    if sector > CYCLE_SIZE || !sector.is_power_of_two() {
        return Err(Error::refused(
            "log",
            format!("log sector size of {sector} bytes"),
        ));
    }
    let record_bbs = sunit.div_ceil(BB).max(sector / BB).max(2);
    let h_size = sunit.max(CYCLE_SIZE);
    let headers = if logv2 && h_size > CYCLE_SIZE {
        h_size.div_ceil(CYCLE_SIZE)
    } else {
        1
    };
    Ok(Layout {
        version: if logv2 { 2 } else { 1 },
        record_bbs,
        h_size,
        headers,
        uuid: fs.sb.uuid,
    })
}

/// The highest cycle in the old log (block stamps, record LSNs and tail
/// LSNs) and in the superblock's and AG headers' LSNs.
fn highest_cycle<D: ReadAt>(fs: &Xfs<D>, start: u64, total: usize) -> Result<u32> {
    let cycle_of = |lsn: u64| (lsn >> 32) as u32;
    let mut top = 0u32;
    let mut buf = vec![0u8; 1 << 20];
    let mut bb = 0usize;
    while bb < total {
        let n = (total - bb).min(buf.len() / BB);
        let chunk = &mut buf[..n * BB];
        fs.read_bytes(chunk, start + (bb * BB) as u64, "log")?;
        for b in chunk.chunks_exact(BB) {
            if u32_at(b, 0) == HEADER_MAGIC {
                top = top
                    .max(u32_at(b, 4))
                    .max(cycle_of(u64_at(b, 16)))
                    .max(cycle_of(u64_at(b, 24)));
            } else {
                top = top.max(u32_at(b, 0));
            }
        }
        bb += n;
    }
    let mut sb = vec![0u8; BB];
    fs.read_bytes(&mut sb, 0, "superblock")?;
    top = top.max(cycle_of(u64_at(&sb, SB_LSN)));
    let sect = u64::from(fs.sb.sect_size);
    let mut hdr = vec![0u8; BB];
    for agno in 0..fs.sb.ag_count {
        let ag = fs.sb.ag_byte(agno);
        for (sector, at) in [(1, AGF_LSN), (2, 0), (3, AGFL_LSN)] {
            if sector == 2 {
                top = top.max(cycle_of(fs.ag_headers(agno)?.1.lsn));
                continue;
            }
            fs.read_bytes(&mut hdr, ag + sector * sect, "AG header")?;
            top = top.max(cycle_of(u64_at(&hdr, at)));
        }
    }
    Ok(top)
}

/// One record of `bbs` blocks holding a lone unmount record: headers, the
/// unmount operation, zeros; each data block stamped with the cycle, the
/// word it replaced kept in the headers, the CRC over all of it.
fn record(l: &Layout, cycle: u32, lsn: u64, tail_lsn: u64, bbs: usize) -> Vec<u8> {
    let mut r = vec![0u8; bbs * BB];
    let hdrs = l.headers;
    let data_len = (bbs - hdrs) * BB;
    let put32 = |r: &mut [u8], at: usize, v: u32| r[at..at + 4].copy_from_slice(&v.to_be_bytes());
    put32(&mut r, 0, HEADER_MAGIC);
    put32(&mut r, 4, cycle);
    put32(&mut r, 8, l.version);
    put32(&mut r, 12, data_len as u32);
    r[16..24].copy_from_slice(&lsn.to_be_bytes());
    r[24..32].copy_from_slice(&tail_lsn.to_be_bytes());
    put32(&mut r, 36, u32::MAX); // h_prev_block: none
    put32(&mut r, 40, 1); // h_num_logops
    put32(&mut r, 300, FMT_LINUX_LE);
    r[304..320].copy_from_slice(&l.uuid);
    put32(&mut r, 320, l.h_size as u32);
    for h in 1..hdrs {
        put32(&mut r, h * BB, cycle); // xh_cycle
    }
    // The unmount operation: header (tid, len, client, flags) and its
    // 8-byte payload, the magic in the log's (little-endian) format.
    let op = hdrs * BB;
    put32(&mut r, op, USER_TID);
    put32(&mut r, op + 4, 8);
    r[op + 8] = CLIENT_LOG;
    r[op + 9] = UNMOUNT_TRANS;
    r[op + 12..op + 14].copy_from_slice(&UNMOUNT_TYPE.to_le_bytes());
    // Stamp every data block; only the first had a non-zero first word.
    r.copy_within(op..op + 4, 44);
    for d in 0..bbs - hdrs {
        put32(&mut r, op + d * BB, cycle);
    }
    // The kernel's CRC covers the extended headers the record's length needs
    // (`xlog_cksum`), fewer than the record has when it is the short last one.
    let crc_hdrs = data_len.div_ceil(CYCLE_SIZE).clamp(1, hdrs);
    let mut covered = r[..HEADER_LEN].to_vec();
    for h in 1..crc_hdrs {
        covered.extend_from_slice(&r[h * BB..h * BB + EXT_HEADER_LEN]);
    }
    covered.extend_from_slice(&r[op..op + data_len]);
    let crc = checksum::compute(&covered, CRC_OFF);
    r[CRC_OFF..CRC_OFF + 4].copy_from_slice(&crc.to_le_bytes());
    r
}

/// Gathers the stream of log bytes and hands it on in large writes.
struct Sink<'w, 'a> {
    write: &'w mut LogWriter<'a>,
    bs: usize,
    /// Device byte offset of `pending`'s first byte.
    next: u64,
    pending: Vec<u8>,
}

impl Sink<'_, '_> {
    fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        (self.write)(self.next, &self.pending)?;
        self.next += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        if !self.pending.len().is_multiple_of(self.bs) {
            return Err(Error::corrupt(
                "log",
                Loc::NONE,
                "records do not end on a block boundary",
            ));
        }
        self.flush()
    }
}

/// A writer that stages the log's blocks (tests read the result through the
/// stage).
#[cfg(test)]
pub(crate) fn stage_writer<D: ReadAt>(
    stage: &Staged<D>,
) -> impl FnMut(u64, &[u8]) -> Result<()> + '_ {
    let bs = stage.block_size() as usize;
    move |at: u64, bytes: &[u8]| {
        for (i, b) in bytes.chunks(bs).enumerate() {
            stage.put_block(at / bs as u64 + i as u64, b.to_vec());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "log_reset_tests.rs"]
mod tests;
