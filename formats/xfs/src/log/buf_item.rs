//! Buffer log items (`xfs_buf_log_format`): a metadata buffer (`blf_blkno`,
//! `blf_len` in 512-byte units) and a bitmap of its dirty 128-byte chunks;
//! each run of set bits is one region of the item, copied onto the buffer.
//! `XFS_BLF_CANCEL` says the buffer was freed (earlier items for it are not
//! replayed); `XFS_BLF_INODE_BUF` items carry only the inodes'
//! `di_next_unlinked` words. On v5 the kernel skips an item whose buffer
//! already carries a newer LSN, and the buffer's write verifier stamps the
//! replaying LSN and a fresh CRC into it: [`lsn_place`] knows where each
//! metadata block keeps them.

use crate::error::{Error, Loc, Result};

pub const TYPE: u16 = 0x123c;
const CHUNK: usize = 128;
pub const FLAG_INODE_BUF: u16 = 0x1;
pub const FLAG_CANCEL: u16 = 0x2;
/// Quota buffers (user, project, group dquots).
pub const FLAG_DQUOT: u16 = 0x4 | 0x8 | 0x10;
/// Offset of `di_next_unlinked` in an inode.
const NEXT_UNLINKED: usize = 96;
/// The most bitmap words (`XFS_BLF_DATAMAP_SIZE`: 64 KiB of 128-byte chunks).
const MAX_MAP_WORDS: usize = 17;

/// A decoded `xfs_buf_log_format`.
#[derive(Debug, Clone)]
pub struct BufFormat {
    pub flags: u16,
    /// In 512-byte units.
    pub blkno: u64,
    pub len: u64,
    map: Vec<u32>,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::corrupt("buffer log item", Loc::NONE, detail)
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl BufFormat {
    pub fn parse(r: &[u8]) -> Result<BufFormat> {
        if r.len() < 20 {
            return Err(bad(format!("format of {} bytes", r.len())));
        }
        let words = le32(r, 16) as usize;
        if words > MAX_MAP_WORDS || r.len() < 20 + 4 * words {
            return Err(bad(format!("dirty map of {words} words")));
        }
        let blkno = i64::from_le_bytes(r[8..16].try_into().unwrap_or_default());
        Ok(BufFormat {
            flags: le16(r, 4),
            blkno: u64::try_from(blkno).map_err(|_| bad("negative block number"))?,
            len: u64::from(le16(r, 6)),
            map: (0..words).map(|w| le32(r, 20 + 4 * w)).collect(),
        })
    }

    fn bit(&self, n: usize) -> bool {
        self.map
            .get(n / 32)
            .is_some_and(|w| w & (1 << (n % 32)) != 0)
    }

    /// The dirty runs: (byte offset in the buffer, byte length), in order.
    pub fn runs(&self) -> Vec<(usize, usize)> {
        let mut out = vec![];
        let bits = self.map.len() * 32;
        let mut n = 0;
        while n < bits {
            if !self.bit(n) {
                n += 1;
                continue;
            }
            let s = n;
            while n < bits && self.bit(n) {
                n += 1;
            }
            out.push((s * CHUNK, (n - s) * CHUNK));
        }
        out
    }

    /// Copies the logged regions (`regions[1..]`) onto `buf`, as the
    /// kernel's `xlog_recover_do_reg_buffer`.
    pub fn apply(&self, regions: &[Vec<u8>], buf: &mut [u8]) -> Result<()> {
        for (i, (off, len)) in self.runs().into_iter().enumerate() {
            let src = regions
                .get(i + 1)
                .ok_or_else(|| bad("fewer regions than dirty runs"))?;
            // A short region logs fewer chunks (the kernel copies what is there).
            let n = len.min(src.len() / CHUNK * CHUNK);
            let dst = buf
                .get_mut(off..off + n)
                .ok_or_else(|| bad("dirty region outside its buffer"))?;
            dst.copy_from_slice(&src[..n]);
        }
        Ok(())
    }

    /// Copies the logged `di_next_unlinked` words onto an inode buffer
    /// (`xlog_recover_do_inode_buffer`); returns the inodes changed.
    pub fn apply_unlinked(
        &self,
        regions: &[Vec<u8>],
        buf: &mut [u8],
        inode_size: usize,
    ) -> Result<Vec<usize>> {
        let runs = self.runs();
        let mut changed = vec![];
        for i in 0..buf.len() / inode_size.max(1) {
            let at = i * inode_size + NEXT_UNLINKED;
            let Some((r, (off, len))) = runs
                .iter()
                .enumerate()
                .find(|(_, (o, l))| at >= *o && at < o + l)
            else {
                continue;
            };
            if at + 4 > off + len {
                return Err(bad("an unlinked pointer straddles a logged region"));
            }
            let src = regions
                .get(r + 1)
                .and_then(|s| s.get(at - off..at - off + 4))
                .ok_or_else(|| bad("logged region shorter than its run"))?;
            buf[at..at + 4].copy_from_slice(src);
            changed.push(i);
        }
        Ok(changed)
    }
}

/// Where a v5 metadata block keeps its LSN and CRC (byte offsets), found by
/// its magic as the kernel's `xlog_recover_get_buf_lsn` does; `None` for
/// blocks without (the kernel then always replays).
pub fn lsn_place(b: &[u8]) -> Option<(usize, usize)> {
    if b.len() < 512 {
        return None;
    }
    let m32 = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let place = match m32 {
        0x5846_5342 => (240, 224), // superblock
        0x5841_4746 => (208, 216), // AGF
        0x5841_4749 => (320, 312), // AGI
        0x5841_464c => (24, 32),   // AGFL
        // Short-pointer B+tree blocks: free space (2), inodes (2), rmap, refcount.
        0x4142_3342 | 0x4142_3343 | 0x4941_4233 | 0x4649_4233 | 0x524d_4233 | 0x5233_4643 => {
            (24, 52)
        }
        0x424d_4133 => (32, 64), // bmap B+tree block
        // Directory data/block/free blocks (xfs_dir3_blk_hdr).
        0x5844_4233 | 0x5844_4433 | 0x5844_4633 => (16, 4),
        0x5853_4c4d => (48, 12), // remote symlink
        _ => match u16::from_be_bytes([b[8], b[9]]) {
            // Directory leaf and node blocks, attribute leaves (xfs_da3_blkinfo).
            0x3bee | 0x3ebe | 0x3df1 | 0x3dff => (24, 12),
            _ => return None,
        },
    };
    Some(place)
}

/// The LSN a buffer carries, if its kind keeps one (inode buffers: the first
/// inode's, as the kernel reads it).
pub fn buffer_lsn(b: &[u8]) -> Option<u64> {
    if b.len() >= 176 && b[0..2] == [0x49, 0x4e] && b[4] >= 3 {
        return Some(u64::from_be_bytes(b[112..120].try_into().ok()?));
    }
    let (lsn, _) = lsn_place(b)?;
    Some(u64::from_be_bytes(b.get(lsn..lsn + 8)?.try_into().ok()?))
}

/// What the write verifier does after a replay on v5: the LSN and the CRC.
pub fn stamp(b: &mut [u8], lsn: u64) {
    if let Some((l, c)) = lsn_place(b) {
        b[l..l + 8].copy_from_slice(&lsn.to_be_bytes());
        let crc = crate::checksum::compute(b, c);
        b[c..c + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_follow_the_bitmap() {
        let f = BufFormat {
            flags: 0,
            blkno: 0,
            len: 8,
            map: vec![0b1011, 1 << 31],
        };
        assert_eq!(f.runs(), vec![(0, 256), (384, 128), (63 * 128, 128)]);
        let mut buf = vec![0u8; 8192];
        let regions = vec![vec![], vec![1u8; 256], vec![2u8; 128], vec![3u8; 128]];
        f.apply(&regions, &mut buf).unwrap();
        assert_eq!(buf[255], 1);
        assert_eq!(buf[256], 0);
        assert_eq!(buf[384], 2);
        assert_eq!(buf[63 * 128], 3);
    }
}
