//! Operation headers (`xlog_op_header`) and transactions rebuilt from them,
//! as the kernel's `xlog_recover_process_ophdr` does: an operation flagged
//! START opens a transaction (by its id), the operations after it add the
//! transaction header and then the log items' regions (an item's first region,
//! its format structure, says how many regions it has), a region split across
//! records continues (WAS_CONT), and COMMIT hands the whole transaction over.
//! Transactions without their commit (cut off at the head, or begun before
//! the tail) are dropped: the kernel does not replay them either.
//!
//! The item format structures are in the writing host's byte order; only
//! little-endian logs (x86, arm64: every image this is for) are read, and a
//! big-endian one is refused by the header magic.

use std::collections::HashMap;

use super::record::Record;
use crate::be::u32_at;
use crate::error::{Error, Loc, Result};

const OP_HEADER: usize = 12;
const CLIENT_TRANSACTION: u8 = 0x69;
const CLIENT_LOG: u8 = 0xaa;
const START: u8 = 0x01;
const COMMIT: u8 = 0x02;
const CONTINUE: u8 = 0x04;
const WAS_CONT: u8 = 0x08;
const END: u8 = 0x10;
const UNMOUNT: u8 = 0x20;
/// `XFS_TRANS_HEADER_MAGIC` ("TRAN"), in the host's (little-endian) order.
const TRANS_MAGIC: u32 = 0x5452_414e;
const TRANS_HEADER: usize = 16;
/// The most regions one item can have (`XLOG_MAX_REGIONS_IN_ITEM`).
const MAX_REGIONS: u16 = 257;

/// One log item: its regions, the first being its format structure.
#[derive(Debug, Clone)]
pub struct Item {
    pub regions: Vec<Vec<u8>>,
    total: u16,
}

impl Item {
    /// The item type (`XFS_LI_*`), the first field of every format structure.
    pub fn kind(&self) -> u16 {
        self.regions
            .first()
            .and_then(|r| r.get(..2))
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    }
}

/// A committed transaction.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// LSN of the record the transaction started in (the kernel's `r_lsn`).
    pub lsn: u64,
    pub items: Vec<Item>,
}

#[derive(Default)]
struct Open {
    lsn: u64,
    header: Vec<u8>,
    items: Vec<Item>,
}

/// Rebuilds transactions from the records of the log, in log order.
#[derive(Default)]
pub struct Assembler {
    open: HashMap<u32, Open>,
    pub committed: Vec<Transaction>,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::corrupt("log transaction", Loc::NONE, detail)
}

impl Assembler {
    /// Adds the operations of one record.
    pub fn add(&mut self, rec: &Record) -> Result<()> {
        let d = &rec.data;
        let mut pos = 0usize;
        for _ in 0..rec.num_ops {
            let Some(h) = d.get(pos..pos + OP_HEADER) else {
                return Err(bad(format!(
                    "record at lsn {:#x}: operations run past its end",
                    rec.lsn
                )));
            };
            let tid = u32_at(h, 0);
            let len = u32_at(h, 4) as usize;
            let (client, flags) = (h[8], h[9]);
            if client != CLIENT_TRANSACTION && client != CLIENT_LOG {
                return Err(bad(format!("operation with unknown client id {client:#x}")));
            }
            let body = d
                .get(pos + OP_HEADER..pos + OP_HEADER + len)
                .ok_or_else(|| bad(format!("operation of {len} bytes runs past its record")))?;
            pos += OP_HEADER + len;
            self.op(rec.lsn, tid, flags, body)?;
        }
        Ok(())
    }

    fn op(&mut self, lsn: u64, tid: u32, flags: u8, body: &[u8]) -> Result<()> {
        let Some(t) = self.open.get_mut(&tid) else {
            // Slack before a transaction starts, or the rest of one that
            // started before the tail: nothing to replay.
            if flags & START != 0 {
                self.open.insert(
                    tid,
                    Open {
                        lsn,
                        ..Open::default()
                    },
                );
            }
            return Ok(());
        };
        let mut f = flags & !END;
        if f & WAS_CONT != 0 {
            f &= !CONTINUE;
        }
        match f {
            0 | CONTINUE => add_region(t, body),
            WAS_CONT => continue_region(t, body),
            COMMIT => {
                let t = self.open.remove(&tid).unwrap_or_default();
                if let Some(i) = t
                    .items
                    .iter()
                    .find(|i| i.regions.len() != usize::from(i.total))
                {
                    return Err(bad(format!(
                        "committed item of type {:#x} has {} of its {} regions",
                        i.kind(),
                        i.regions.len(),
                        i.total
                    )));
                }
                self.committed.push(Transaction {
                    lsn: t.lsn,
                    items: t.items,
                });
                Ok(())
            }
            UNMOUNT => {
                self.open.remove(&tid);
                Ok(())
            }
            other => Err(bad(format!("operation with flags {other:#x}"))),
        }
    }
}

fn add_region(t: &mut Open, body: &[u8]) -> Result<()> {
    if body.is_empty() {
        return Ok(());
    }
    if t.header.len() < TRANS_HEADER && t.items.is_empty() {
        if !t.header.is_empty() || body.len() > TRANS_HEADER {
            return Err(bad("malformed transaction header"));
        }
        if body.len() < 4 || u32::from_le_bytes([body[0], body[1], body[2], body[3]]) != TRANS_MAGIC
        {
            return Err(bad(
                "no transaction header magic (a damaged log, or one written by a big-endian host)",
            ));
        }
        t.header = body.to_vec();
        return Ok(());
    }
    let full = t
        .items
        .last()
        .is_none_or(|i| i.regions.len() == usize::from(i.total));
    if full {
        let total = body
            .get(2..4)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        if total == 0 || total > MAX_REGIONS {
            return Err(bad(format!("log item with {total} regions")));
        }
        t.items.push(Item {
            regions: Vec::new(),
            total,
        });
    }
    if let Some(i) = t.items.last_mut() {
        i.regions.push(body.to_vec());
    }
    Ok(())
}

fn continue_region(t: &mut Open, body: &[u8]) -> Result<()> {
    if t.items.is_empty() {
        if t.header.is_empty() || t.header.len() + body.len() > TRANS_HEADER {
            return Err(bad("malformed continued transaction header"));
        }
        t.header.extend_from_slice(body);
        return Ok(());
    }
    match t.items.last_mut().and_then(|i| i.regions.last_mut()) {
        Some(r) => {
            r.extend_from_slice(body);
            Ok(())
        }
        None => Err(bad("a continued region with nothing to continue")),
    }
}
