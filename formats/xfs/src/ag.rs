//! Allocation group headers: the AGF (free space: the bnobt/cntbt roots, the
//! rmapbt and refcountbt roots, the AGFL window) in the AG's second sector and
//! the AGI (inodes: the inobt and finobt roots, unlinked buckets) in its third.
//! Each names its AG, so a header copied to the wrong place is caught. The
//! AGFL (fourth sector) holds the blocks reserved for B+tree growth, a ring
//! the AGF's first/last/count fields index.

use vmscrub_blockdev::ReadAt;

use crate::be::{u32_at, u64_at};
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;

const AGF_MAGIC: &[u8; 4] = b"XAGF";
const AGI_MAGIC: &[u8; 4] = b"XAGI";
const AGF_CRC_OFFSET: usize = 216;
const AGFL_MAGIC: &[u8; 4] = b"XAFL";
const AGFL_V5_HDR: usize = 36;
const AGFL_CRC_OFFSET: usize = 32;
const AGI_CRC_OFFSET: usize = 312;

/// The AGF's fields, with where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agf {
    pub offset: u64,
    pub seqno: u32,
    pub length: u32,
    pub bno_root: u32,
    pub cnt_root: u32,
    pub rmap_root: u32,
    pub bno_level: u32,
    pub cnt_level: u32,
    pub rmap_level: u32,
    pub fl_first: u32,
    pub fl_last: u32,
    pub fl_count: u32,
    pub free_blocks: u32,
    pub longest: u32,
    pub refcount_root: u32,
    pub refcount_level: u32,
}

/// The AGI's fields, with where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agi {
    pub offset: u64,
    pub seqno: u32,
    pub length: u32,
    pub count: u32,
    pub root: u32,
    pub level: u32,
    pub free_count: u32,
    pub free_root: u32,
    pub free_level: u32,
    /// Heads of the unlinked-inode lists (open-but-deleted files at a crash).
    pub unlinked: Vec<u32>,
    pub lsn: u64,
}

impl Agi {
    /// Inodes unlinked while still open: a crash left them for log recovery.
    pub fn has_unlinked(&self) -> bool {
        self.unlinked.iter().any(|&b| b != u32::MAX)
    }
}

impl<D: ReadAt> Xfs<D> {
    /// Reads and checks the AGF and AGI of AG `agno`.
    pub fn ag_headers(&self, agno: u32) -> Result<(Agf, Agi)> {
        if agno >= self.sb.ag_count {
            return Err(Error::corrupt(
                "AG number",
                Loc::NONE,
                format!("AG {agno} of {}", self.sb.ag_count),
            ));
        }
        let sect = u64::from(self.sb.sect_size);
        let base = self.sb.ag_byte(agno);
        let mut buf = vec![0u8; usize::from(self.sb.sect_size)];
        self.read_bytes(&mut buf, base + sect, "AGF")?;
        let agf = self.parse_agf(&buf, base + sect, agno)?;
        self.read_bytes(&mut buf, base + 2 * sect, "AGI")?;
        let agi = self.parse_agi(&buf, base + 2 * sect, agno)?;
        Ok((agf, agi))
    }

    /// The blocks on AG `agno`'s free list (AGFL), in list order.
    pub fn agfl(&self, agno: u32) -> Result<Vec<u32>> {
        let (agf, _) = self.ag_headers(agno)?;
        let sect = u64::from(self.sb.sect_size);
        let at = self.sb.ag_byte(agno) + 3 * sect;
        let loc = Loc::at(at);
        let mut buf = vec![0u8; usize::from(self.sb.sect_size)];
        self.read_bytes(&mut buf, at, "AGFL")?;
        let hdr = if self.sb.has_crc() {
            if buf.get(0..4) != Some(AGFL_MAGIC) {
                return Err(Error::corrupt("AGFL", loc, "bad magic"));
            }
            checksum::verify(self.verify, "AGFL", &buf, AGFL_CRC_OFFSET, loc)?;
            if u32_at(&buf, 4) != agno {
                return Err(Error::corrupt(
                    "AGFL",
                    loc,
                    format!("names AG {}", u32_at(&buf, 4)),
                ));
            }
            AGFL_V5_HDR
        } else {
            0
        };
        let size = (buf.len() - hdr) / 4;
        let (first, count) = (agf.fl_first as usize, agf.fl_count as usize);
        if count > size || first >= size || agf.fl_last as usize >= size {
            return Err(Error::corrupt(
                "AGF",
                Loc::at(agf.offset),
                format!(
                    "free list {first}..{} of {count} in {size} slots",
                    agf.fl_last
                ),
            ));
        }
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let b = u32_at(&buf, hdr + ((first + i) % size) * 4);
            if b >= self.sb.ag_blocks {
                return Err(Error::corrupt(
                    "AGFL",
                    loc,
                    format!("block {b} outside the AG"),
                ));
            }
            out.push(b);
        }
        Ok(out)
    }

    fn check_header(
        &self,
        buf: &[u8],
        magic: &[u8; 4],
        what: &'static str,
        crc: usize,
        loc: Loc,
        agno: u32,
    ) -> Result<()> {
        if buf.get(0..4) != Some(magic) {
            return Err(Error::corrupt(what, loc, "bad magic"));
        }
        if self.sb.has_crc() {
            checksum::verify(self.verify, what, buf, crc, loc)?;
        }
        if u32_at(buf, 8) != agno {
            return Err(Error::corrupt(
                what,
                loc,
                format!("names AG {}, found in AG {agno}", u32_at(buf, 8)),
            ));
        }
        if u32_at(buf, 12) > self.sb.ag_blocks {
            return Err(Error::corrupt(
                what,
                loc,
                format!("AG length {}", u32_at(buf, 12)),
            ));
        }
        Ok(())
    }

    fn parse_agf(&self, b: &[u8], offset: u64, agno: u32) -> Result<Agf> {
        self.check_header(b, AGF_MAGIC, "AGF", AGF_CRC_OFFSET, Loc::at(offset), agno)?;
        Ok(Agf {
            offset,
            seqno: u32_at(b, 8),
            length: u32_at(b, 12),
            bno_root: u32_at(b, 16),
            cnt_root: u32_at(b, 20),
            rmap_root: u32_at(b, 24),
            bno_level: u32_at(b, 28),
            cnt_level: u32_at(b, 32),
            rmap_level: u32_at(b, 36),
            fl_first: u32_at(b, 40),
            fl_last: u32_at(b, 44),
            fl_count: u32_at(b, 48),
            free_blocks: u32_at(b, 52),
            longest: u32_at(b, 56),
            refcount_root: u32_at(b, 88),
            refcount_level: u32_at(b, 92),
        })
    }

    fn parse_agi(&self, b: &[u8], offset: u64, agno: u32) -> Result<Agi> {
        self.check_header(b, AGI_MAGIC, "AGI", AGI_CRC_OFFSET, Loc::at(offset), agno)?;
        Ok(Agi {
            offset,
            seqno: u32_at(b, 8),
            length: u32_at(b, 12),
            count: u32_at(b, 16),
            root: u32_at(b, 20),
            level: u32_at(b, 24),
            free_count: u32_at(b, 28),
            unlinked: (0..64).map(|i| u32_at(b, 40 + i * 4)).collect(),
            lsn: u64_at(b, 320),
            free_root: u32_at(b, 328),
            free_level: u32_at(b, 332),
        })
    }
}
