//! Log recovery, as the kernel's `xlog_do_recover` does it, into memory: the
//! records from the tail (named by the last record's `h_tail_lsn`) to the head
//! are read and checked, their committed transactions rebuilt and replayed
//! in log order in two passes over the log — the first counts the cancelled
//! buffers, the second applies buffer, inode and inode-create items onto a sector map
//! over the device (the device itself is never written). Within a
//! transaction the kernel's order is kept: buffers and inode creates, then
//! inodes, then inode buffers (unlinked pointers).
//!
//! What this replay does not do, it refuses with a reason rather than
//! guesses: intents left without their done items (deferred work the kernel
//! redoes at mount), quota items, bmap owner changes, unknown item types; and
//! a damaged log (bad CRC, a record out of place, a malformed transaction).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use vmscrub_blockdev::ReadAt;

use super::buf_item::{self, BufFormat};
use super::icreate::{self, Icreate};
use super::inode_item::{self, InodeFormat};
use super::intent::{self, Role};
use super::record::Record;
use super::trans::{Assembler, Item, Transaction};
use super::{BB, LogState};
use crate::be::u64_at;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;

/// The largest buffer an item may name (1 MiB), so a hostile length cannot
/// make this allocate without bound.
const MAX_BUFFER_BB: u64 = 2048;
/// The most sectors a replay holds (2 GiB, the largest log's size): a
/// hostile log of inode-create items cannot grow memory without bound.
const MAX_SECTORS: usize = 1 << 22;

/// A replayed log: the sectors that differ from the device after recovery.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Committed transactions replayed.
    pub transactions: usize,
    /// Items not replayed because their block on disk already is newer (v5).
    pub skipped_newer: usize,
    /// 512-byte sectors by device byte offset.
    pub sectors: BTreeMap<u64, Vec<u8>>,
}

fn unsupported(why: impl Into<String>) -> Error {
    Error::unsupported(format!("log replay: {}", why.into()))
}

/// The sectors written so far, over the device.
struct Store<'a, D> {
    xfs: &'a Xfs<D>,
    sectors: BTreeMap<u64, Vec<u8>>,
    limit_bb: u64,
    /// Buffers (by first sector) this replay stamped, with the LSN.
    stamped: HashMap<u64, u64>,
    /// Items skipped because their block on disk is newer.
    skipped: usize,
}

impl<D: ReadAt> Store<'_, D> {
    fn read(&self, daddr: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 || len > MAX_BUFFER_BB || daddr.saturating_add(len) > self.limit_bb {
            return Err(Error::corrupt(
                "log item",
                Loc::NONE,
                format!("buffer of {len} sectors at sector {daddr} is outside the filesystem"),
            ));
        }
        let mut buf = vec![0u8; (len * BB) as usize];
        self.xfs
            .read_bytes(&mut buf, daddr * BB, "buffer replayed from the log")?;
        for (i, s) in buf.chunks_mut(BB as usize).enumerate() {
            if let Some(v) = self.sectors.get(&((daddr + i as u64) * BB)) {
                s.copy_from_slice(v);
            }
        }
        Ok(buf)
    }

    fn write(&mut self, daddr: u64, buf: &[u8]) -> Result<()> {
        for (i, s) in buf.chunks(BB as usize).enumerate() {
            self.sectors.insert((daddr + i as u64) * BB, s.to_vec());
        }
        if self.sectors.len() > MAX_SECTORS {
            return Err(unsupported(format!(
                "the replayed blocks would hold more than {} MiB in memory",
                (MAX_SECTORS as u64 * BB) >> 20
            )));
        }
        Ok(())
    }
}

impl<D: ReadAt> Xfs<D> {
    /// Replays a dirty log in memory. `Ok(None)`: the log is clean or empty.
    /// An error says why it cannot be replayed (a damaged log, or something
    /// this replay does not do: [`Error::Unsupported`]).
    pub fn replay_log(&self) -> Result<Option<Replayed>> {
        let LogState::Dirty { head, .. } = self.log_state()? else {
            return Ok(None);
        };
        // Pass 1: the cancelled buffers, over the whole log.
        let mut cancels: HashMap<(u64, u64), u32> = HashMap::new();
        let mut transactions = 0usize;
        self.each_transaction(head, &mut |t| {
            transactions += 1;
            count_cancels(t, &mut cancels)
        })?;
        // Pass 2: the items, in log order.
        let mut store = Store {
            xfs: self,
            sectors: BTreeMap::new(),
            limit_bb: self
                .sb
                .dblocks
                .saturating_mul(u64::from(self.sb.block_size))
                / BB,
            stamped: HashMap::new(),
            skipped: 0,
        };
        let mut intents: BTreeSet<(usize, u64)> = BTreeSet::new();
        self.each_transaction(head, &mut |t| {
            // A checkpoint may hold an intent and its done item in any order:
            // its intents are counted before its done items are.
            let mut pairs = Pairs::default();
            for item in ordered(&t.items) {
                self.apply(&mut store, &mut cancels, &mut pairs, t.lsn, item)?;
            }
            intents.extend(pairs.intents);
            for d in pairs.done {
                intents.remove(&d);
            }
            Ok(())
        })?;
        if !intents.is_empty() {
            let mut names: Vec<&str> = intents.iter().map(|(i, _)| intent::PAIRS[*i].2).collect();
            names.dedup();
            return Err(unsupported(format!(
                "the log ends with {} unfinished intent(s) ({}): the kernel redoes that deferred work at mount, this replay does not",
                intents.len(),
                names.join(", ")
            )));
        }
        Ok(Some(Replayed {
            transactions,
            skipped_newer: store.skipped,
            sectors: store.sectors,
        }))
    }

    /// Reads the records from the tail to `head`, rebuilds the transactions
    /// and hands each committed one to `each` as its commit is read, so only
    /// the transactions still open are held in memory.
    fn each_transaction(
        &self,
        head: u64,
        each: &mut dyn FnMut(&Transaction) -> Result<()>,
    ) -> Result<()> {
        let (start, total) = self.log_geometry()?;
        let (_, hdr) = self.last_record(head)?;
        let tail = u64_at(&hdr, 24) & 0xffff_ffff;
        if tail >= total {
            return Err(Error::corrupt(
                "log",
                Loc::at(start),
                format!("tail block {tail} outside the log"),
            ));
        }
        let span = (head + total - tail) % total;
        let mut asm = Assembler::default();
        let (mut bb, mut walked) = (tail, 0u64);
        while walked < span {
            let rec = Record::read(self, start, total, bb)?;
            if rec.lsn & 0xffff_ffff != bb {
                return Err(Error::corrupt(
                    "log record",
                    Loc::at(start + bb * BB),
                    format!(
                        "header names block {} (a stale record)",
                        rec.lsn & 0xffff_ffff
                    ),
                ));
            }
            asm.add(&rec)?;
            for t in asm.committed.drain(..) {
                each(&t)?;
            }
            walked += rec.blocks;
            bb = (bb + rec.blocks) % total;
        }
        if walked != span {
            return Err(Error::corrupt(
                "log",
                Loc::at(start),
                "the records run past the head",
            ));
        }
        Ok(())
    }

    fn apply(
        &self,
        store: &mut Store<'_, D>,
        cancels: &mut HashMap<(u64, u64), u32>,
        pairs: &mut Pairs,
        lsn: u64,
        item: &Item,
    ) -> Result<()> {
        let first = item.regions.first().map(Vec::as_slice).unwrap_or_default();
        match item.kind() {
            buf_item::TYPE => self.apply_buffer(store, cancels, lsn, item),
            inode_item::TYPE => {
                let f = InodeFormat::parse(first)?;
                if cancels.contains_key(&(f.blkno, f.len)) {
                    return Ok(());
                }
                self.apply_inode(store, &f, lsn, item)
            }
            icreate::TYPE => {
                let ic = Icreate::parse(first, &self.sb)?;
                let (fsb, chunk) = ic.chunk(&self.sb);
                let daddr = self.fsb_byte(fsb, Loc::NONE)? / BB;
                let end = daddr + chunk.len() as u64 / BB;
                // A chunk freed later in the log (its cluster buffers
                // cancelled) is not initialised: the kernel skips it too.
                if cancels
                    .keys()
                    .any(|(b, l)| (daddr..end).contains(b) && b + l <= end)
                {
                    return Ok(());
                }
                store.read(daddr, end - daddr)?;
                store.write(daddr, &chunk)?;
                Ok(())
            }
            k => match intent::role(k) {
                Some(Role::Intent(i)) => {
                    pairs
                        .intents
                        .push((i, intent::id(first).unwrap_or_default()));
                    Ok(())
                }
                Some(Role::Done(i)) => {
                    pairs.done.push((i, intent::id(first).unwrap_or_default()));
                    Ok(())
                }
                None => Err(unsupported(match k {
                    0x123d | 0x123e => "quota items".to_string(),
                    k => format!("log item type {k:#x}"),
                })),
            },
        }
    }

    fn apply_buffer(
        &self,
        store: &mut Store<'_, D>,
        cancels: &mut HashMap<(u64, u64), u32>,
        lsn: u64,
        item: &Item,
    ) -> Result<()> {
        let f = BufFormat::parse(item.regions.first().map(Vec::as_slice).unwrap_or_default())?;
        let key = (f.blkno, f.len);
        if f.flags & buf_item::FLAG_CANCEL != 0 {
            if let Some(n) = cancels.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    cancels.remove(&key);
                }
            }
            return Ok(());
        }
        if cancels.contains_key(&key) {
            return Ok(());
        }
        if f.flags & buf_item::FLAG_DQUOT != 0 {
            return Err(unsupported("quota buffers"));
        }
        let mut buf = store.read(f.blkno, f.len)?;
        let crc = self.sb.has_crc();
        // The kernel stamps a replayed buffer's LSN when it writes it, which
        // it does before the first commit with a later LSN: a buffer this
        // replay stamped with the current LSN is not yet "newer" for it.
        let ours = store.stamped.get(&f.blkno) == Some(&lsn);
        if crc
            && !ours
            && buf_item::buffer_lsn(&buf).is_some_and(|l| l != 0 && l != u64::MAX && l >= lsn)
        {
            store.skipped += 1;
            return Ok(());
        }
        if f.flags & buf_item::FLAG_INODE_BUF != 0 {
            let isize = usize::from(self.sb.inode_size);
            for i in f.apply_unlinked(&item.regions, &mut buf, isize)? {
                let d = &mut buf[i * isize..(i + 1) * isize];
                if crc && d[4] >= 3 {
                    let c = crate::checksum::compute(d, 100);
                    d[100..104].copy_from_slice(&c.to_le_bytes());
                }
            }
        } else {
            f.apply(&item.regions, &mut buf)?;
            if crc {
                buf_item::stamp(&mut buf, lsn);
                store.stamped.insert(f.blkno, lsn);
            }
        }
        store.write(f.blkno, &buf)?;
        Ok(())
    }

    fn apply_inode(
        &self,
        store: &mut Store<'_, D>,
        f: &InodeFormat,
        lsn: u64,
        item: &Item,
    ) -> Result<()> {
        if f.owner_change() {
            return Err(unsupported("a bmap B+tree owner change (extent swap)"));
        }
        let mut buf = store.read(f.blkno, f.len)?;
        let isize = usize::from(self.sb.inode_size);
        let dip = buf
            .get_mut(f.boffset..f.boffset.saturating_add(isize))
            .ok_or_else(|| {
                Error::corrupt(
                    "inode log item",
                    Loc::inode(f.ino),
                    "inode offset outside its buffer",
                )
            })?;
        if self.sb.has_crc()
            && inode_item::disk_lsn(dip).is_some_and(|l| l != 0 && l != u64::MAX && l >= lsn)
        {
            store.skipped += 1;
            return Ok(());
        }
        if let Some(ld) = item.regions.get(1)
            && inode_item::flushed_later(dip, ld)
        {
            return Ok(());
        }
        inode_item::apply(f, &item.regions, dip, lsn, self.sb.has_crc())?;
        store.write(f.blkno, &buf)?;
        Ok(())
    }
}

/// The intents and done items of one transaction (pair index, intent id).
#[derive(Default)]
struct Pairs {
    intents: Vec<(usize, u64)>,
    done: Vec<(usize, u64)>,
}

/// Pass 1: counts the buffers (start, length) `t` cancels.
fn count_cancels(t: &Transaction, out: &mut HashMap<(u64, u64), u32>) -> Result<()> {
    for item in t.items.iter().filter(|i| i.kind() == buf_item::TYPE) {
        let f = BufFormat::parse(item.regions.first().map(Vec::as_slice).unwrap_or_default())?;
        if f.flags & buf_item::FLAG_CANCEL != 0 {
            *out.entry((f.blkno, f.len)).or_default() += 1;
        }
    }
    Ok(())
}

/// The kernel's `xlog_recover_reorder_trans`: buffers and inode creates,
/// then inodes and the other items, then inode buffers, then cancellations.
fn ordered(items: &[Item]) -> Vec<&Item> {
    let rank = |i: &Item| -> u8 {
        let flags = || {
            i.regions
                .first()
                .and_then(|r| r.get(4..6))
                .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
        };
        match i.kind() {
            buf_item::TYPE if flags() & buf_item::FLAG_CANCEL != 0 => 3,
            buf_item::TYPE if flags() & buf_item::FLAG_INODE_BUF != 0 => 2,
            buf_item::TYPE | icreate::TYPE => 0,
            _ => 1,
        }
    };
    let mut v: Vec<&Item> = items.iter().collect();
    v.sort_by_key(|i| rank(i));
    v
}
