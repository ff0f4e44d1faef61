//! Inode-create items (`xfs_icreate_log`, v5): a new inode chunk is not
//! logged block by block; the item says which blocks to initialise (the
//! kernel's `xfs_ialloc_inode_init` at recovery): every inode zeroed but for
//! its magic, version, generation, an empty unlinked pointer, and on v5 its
//! number, the filesystem's UUID and its CRC.

use crate::error::{Error, Loc, Result};
use crate::superblock::Superblock;

pub const TYPE: u16 = 0x123f;

/// A decoded `xfs_icreate_log` (its fields are big-endian).
#[derive(Debug, Clone)]
pub struct Icreate {
    pub ag: u32,
    pub agbno: u32,
    pub count: u32,
    pub isize: u32,
    pub length: u32,
    pub generation: u32,
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Icreate {
    pub fn parse(r: &[u8], sb: &Superblock) -> Result<Icreate> {
        let bad = |d: String| Error::corrupt("inode create log item", Loc::NONE, d);
        if r.len() < 28 {
            return Err(bad(format!("format of {} bytes", r.len())));
        }
        let ic = Icreate {
            ag: be32(r, 4),
            agbno: be32(r, 8),
            count: be32(r, 12),
            isize: be32(r, 16),
            length: be32(r, 20),
            generation: be32(r, 24),
        };
        let per_block = u64::from(sb.block_size) / u64::from(sb.inode_size.max(1));
        if ic.ag >= sb.ag_count
            || ic.agbno == 0
            || u64::from(ic.agbno) + u64::from(ic.length) > u64::from(sb.ag_blocks)
            || ic.isize != u32::from(sb.inode_size)
            || ic.count == 0
            || u64::from(ic.count) != u64::from(ic.length) * per_block
            || ic.count > 64
        {
            return Err(bad(format!("{ic:?} does not fit the filesystem")));
        }
        Ok(ic)
    }

    /// The initialised chunk: its first filesystem block (`ag`/`agbno` as a
    /// block number) and its bytes.
    pub fn chunk(&self, sb: &Superblock) -> (u64, Vec<u8>) {
        let isize = self.isize as usize;
        let mut buf = vec![0u8; self.count as usize * isize];
        let first_agino = u64::from(self.agbno) << sb.inop_block_log;
        let ag_shift = u32::from(sb.ag_block_log) + u32::from(sb.inop_block_log);
        let v3 = sb.has_crc();
        for i in 0..self.count as usize {
            let d = &mut buf[i * isize..(i + 1) * isize];
            d[0..2].copy_from_slice(&0x494e_u16.to_be_bytes());
            d[4] = if v3 { 3 } else { 2 };
            d[92..96].copy_from_slice(&self.generation.to_be_bytes());
            d[96..100].copy_from_slice(&u32::MAX.to_be_bytes());
            if v3 {
                let ino = (u64::from(self.ag) << ag_shift) | (first_agino + i as u64);
                d[152..160].copy_from_slice(&ino.to_be_bytes());
                d[160..176].copy_from_slice(&sb.metadata_uuid());
                let crc = crate::checksum::compute(d, 100);
                d[100..104].copy_from_slice(&crc.to_le_bytes());
            }
        }
        let fsb = (u64::from(self.ag) << sb.ag_block_log) | u64::from(self.agbno);
        (fsb, buf)
    }
}
