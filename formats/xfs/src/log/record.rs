//! Log records (`xlog_rec_header`, `xlog_rec_ext_header`): a header block,
//! extended header blocks for v2 records larger than 32 KiB, then the data
//! blocks. When a record is written the first word of every 512-byte data
//! block is replaced by the cycle number (so a torn write shows), the
//! original words are kept in the header's `h_cycle_data` (and the extended
//! headers' `xh_cycle_data`); [`Record::read`] puts them back. On v5 the
//! record's CRC covers the header, the extended headers and the packed data.

use vmscrub_blockdev::ReadAt;

use super::{BB, HEADER_MAGIC};
use crate::be::{u32_at, u64_at};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;

/// Bytes of `xlog_rec_header` the CRC covers; `h_crc` sits at byte 32.
const HEADER_LEN: usize = 328;
const CRC_OFF: usize = 32;
/// Bytes of `xlog_rec_ext_header` the CRC covers.
const EXT_HEADER_LEN: usize = 260;
/// Cycle words one header block keeps (32 KiB of data).
const CYCLE_WORDS: u64 = 64;
/// The largest record the kernel writes (`XLOG_MAX_RECORD_BSIZE`).
const MAX_RECORD: u64 = 256 * 1024;

/// One record, its data unpacked.
pub struct Record {
    /// Log sequence number: cycle << 32 | block of the header.
    pub lsn: u64,
    /// Where the log's tail was when this record was written.
    pub tail_lsn: u64,
    pub num_ops: u32,
    /// `h_len` bytes of operations.
    pub data: Vec<u8>,
    /// Log blocks the record occupies (headers and data).
    pub blocks: u64,
}

impl Record {
    /// Reads the record whose header is at log block `bb` (the log is a ring
    /// of `total` blocks from byte `start`), checks it and unpacks its data.
    pub fn read<D: ReadAt>(xfs: &Xfs<D>, start: u64, total: u64, bb: u64) -> Result<Record> {
        let block = |i: u64| -> Result<Vec<u8>> {
            let mut b = vec![0u8; BB as usize];
            xfs.read_bytes(&mut b, start + ((bb + i) % total) * BB, "log record")?;
            Ok(b)
        };
        let loc = Loc::at(start + bb * BB);
        let bad = |d: String| Error::corrupt("log record", loc, d);
        let hdr = block(0)?;
        if u32_at(&hdr, 0) != HEADER_MAGIC {
            return Err(bad("no record header where the previous record ends".into()));
        }
        let version = u32_at(&hdr, 8);
        let len = u64::from(u32_at(&hdr, 12));
        let h_size = u64::from(u32_at(&hdr, 320));
        let hblks = match version {
            1 => 1,
            2 if h_size <= 32768 => 1,
            2 if h_size <= MAX_RECORD => h_size.div_ceil(32768),
            2 => {
                return Err(bad(format!(
                    "record size {h_size} is larger than any log writes"
                )));
            }
            v => return Err(bad(format!("unknown record version {v}"))),
        };
        let limit = if version == 1 {
            32768
        } else {
            h_size.max(32768)
        };
        if len > limit {
            return Err(bad(format!("record length {len} exceeds its size {limit}")));
        }
        let dblks = len.div_ceil(BB);
        if hblks + dblks >= total {
            return Err(bad("record longer than the log".into()));
        }
        let ext: Vec<Vec<u8>> = (1..hblks).map(block).collect::<Result<_>>()?;
        let mut data = Vec::with_capacity((dblks * BB) as usize);
        for i in 0..dblks {
            data.extend_from_slice(&block(hblks + i)?);
        }
        if xfs.sb.has_crc() {
            let mut covered = hdr[..HEADER_LEN].to_vec();
            for e in &ext {
                covered.extend_from_slice(&e[..EXT_HEADER_LEN]);
            }
            covered.extend_from_slice(&data[..len as usize]);
            let stored = checksum::stored(&hdr, CRC_OFF);
            let mut c = covered;
            c[CRC_OFF..CRC_OFF + 4].copy_from_slice(&[0; 4]);
            let computed = checksum::compute(&c, CRC_OFF);
            if stored != computed {
                return Err(Error::ChecksumMismatch {
                    structure: "log record",
                    loc,
                    stored,
                    computed,
                });
            }
        }
        // Put back the words the cycle stamps replaced.
        for i in 0..dblks {
            let (src, off): (&[u8], u64) = if i < CYCLE_WORDS {
                (&hdr, 44 + 4 * i)
            } else {
                let j = (i / CYCLE_WORDS) as usize;
                let e = ext
                    .get(j.wrapping_sub(1))
                    .ok_or_else(|| bad("missing extended header".into()))?;
                (e, 4 + 4 * (i % CYCLE_WORDS))
            };
            let at = (i * BB) as usize;
            data[at..at + 4].copy_from_slice(&src[off as usize..off as usize + 4]);
        }
        data.truncate(len as usize);
        Ok(Record {
            lsn: u64_at(&hdr, 16),
            tail_lsn: u64_at(&hdr, 24),
            num_ops: u32_at(&hdr, 40),
            data,
            blocks: hblks + dblks,
        })
    }
}
