//! Inode log items (`xfs_inode_log_format`, then `xfs_log_dinode`, then the
//! logged forks): the inode core is logged in the host's byte order and
//! converted to the on-disk (big-endian) dinode, as the kernel's
//! `xfs_log_dinode_to_disk`; the data and attribute forks are copied when
//! `ilf_fields` says they were logged (a B+tree root converted from its
//! in-memory block form to the on-disk `bmdr` form); on v5 the inode's LSN
//! becomes the replaying transaction's and its CRC is recomputed.

use crate::error::{Error, Loc, Result};

pub const TYPE: u16 = 0x123b;
const CORE: u32 = 0x001;
const DDATA: u32 = 0x002;
const DEXT: u32 = 0x004;
const DBROOT: u32 = 0x008;
const DEV: u32 = 0x010;
const ADATA: u32 = 0x040;
const AEXT: u32 = 0x080;
const ABROOT: u32 = 0x100;
const DOWNER: u32 = 0x200;
const AOWNER: u32 = 0x400;
const DFORK: u32 = DDATA | DEXT | DBROOT;
const AFORK: u32 = ADATA | AEXT | ABROOT;
const DINODE_MAGIC: u16 = 0x494e;
const V3_CORE: usize = 176;
const V2_CORE: usize = 100;
const BIGTIME: u64 = 1 << 3;
const NREXT64: u64 = 1 << 4;
const CRC_OFF: usize = 100;

/// A decoded `xfs_inode_log_format` (or its packed 32-bit layout).
#[derive(Debug, Clone)]
pub struct InodeFormat {
    pub fields: u32,
    pub ino: u64,
    pub rdev: u32,
    /// The inode's buffer, in 512-byte units, and the inode's offset in it.
    pub blkno: u64,
    pub len: u64,
    pub boffset: usize,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::corrupt("inode log item", Loc::NONE, detail)
}

fn le(b: &[u8], o: usize, n: usize) -> u64 {
    b[o..o + n]
        .iter()
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

impl InodeFormat {
    pub fn parse(r: &[u8]) -> Result<InodeFormat> {
        // 56 bytes with the 64-bit padding, 52 packed (32-bit kernels).
        let (ino, rdev, blk) = match r.len() {
            56 => (16, 24, 40),
            52 => (12, 20, 36),
            n => return Err(bad(format!("format of {n} bytes"))),
        };
        let blkno = le(r, blk, 8);
        Ok(InodeFormat {
            fields: le(r, 4, 4) as u32,
            ino: le(r, ino, 8),
            rdev: le(r, rdev, 4) as u32,
            blkno: i64::try_from(blkno).map_err(|_| bad("negative block number"))? as u64,
            len: le(r, blk + 8, 4),
            boffset: le(r, blk + 12, 4) as usize,
        })
    }

    /// Bmap B+tree owner changes (an extent swap) are not replayed.
    pub fn owner_change(&self) -> bool {
        self.fields & (DOWNER | AOWNER) != 0
    }
}

/// The on-disk inode's LSN (v3 inodes), for the "newer on disk" rule.
pub fn disk_lsn(dip: &[u8]) -> Option<u64> {
    (dip.len() >= V3_CORE && dip[4] >= 3)
        .then(|| u64::from_be_bytes(dip[112..120].try_into().unwrap_or_default()))
}

/// Whether a v2 inode on disk was flushed after this log copy (the kernel's
/// `di_flushiter` rule, with its wrap-around).
pub fn flushed_later(dip: &[u8], ldip: &[u8]) -> bool {
    if dip[4] >= 3 || ldip.len() < 32 {
        return false;
    }
    let disk = u16::from_be_bytes([dip[30], dip[31]]);
    let logged = le(ldip, 30, 2) as u16;
    logged < disk && !(disk == u16::MAX && logged < u16::MAX >> 1)
}

/// Applies the item (`regions[1]` the log dinode, then the forks) onto the
/// inode `dip` (the inode's `inode_size` bytes in its buffer).
pub fn apply(
    f: &InodeFormat,
    regions: &[Vec<u8>],
    dip: &mut [u8],
    lsn: u64,
    has_crc: bool,
) -> Result<()> {
    if f.fields & CORE == 0 {
        return Err(bad("an inode item without the inode core"));
    }
    let ld = regions.get(1).ok_or_else(|| bad("no inode core region"))?;
    if u16::from_be_bytes([dip[0], dip[1]]) != DINODE_MAGIC {
        return Err(bad(format!("inode {}: no inode magic on disk", f.ino)));
    }
    if ld.len() < V2_CORE - 4 || le(ld, 0, 2) as u16 != DINODE_MAGIC {
        return Err(bad(format!(
            "inode {}: logged core without the inode magic",
            f.ino
        )));
    }
    let version = ld[4];
    let core = if version >= 3 { V3_CORE } else { V2_CORE };
    let logged_core = if version >= 3 { V3_CORE } else { 96 };
    if ld.len() > logged_core || dip.len() < core || (version >= 3 && ld.len() < V3_CORE) {
        return Err(bad(format!(
            "inode {}: logged core of {} bytes",
            f.ino,
            ld.len()
        )));
    }
    core_to_disk(ld, dip, lsn);
    let lit = dip.len() - core;
    let forkoff = usize::from(dip[82]) * 8;
    if forkoff > lit {
        return Err(bad(format!(
            "inode {}: fork offset {forkoff} past the inode",
            f.ino
        )));
    }
    let dsize = if forkoff != 0 { forkoff } else { lit };
    if f.fields & DEV != 0 {
        dip[core..core + 4].copy_from_slice(&f.rdev.to_be_bytes());
    }
    let mut next = 2;
    if f.fields & DFORK != 0 {
        let src = regions
            .get(next)
            .ok_or_else(|| bad("data fork region missing"))?;
        copy_fork(src, &mut dip[core..core + dsize], f.fields & DBROOT != 0)?;
        next += 1;
    }
    if f.fields & AFORK != 0 {
        if forkoff == 0 {
            return Err(bad(format!(
                "inode {}: an attribute fork logged without a fork offset",
                f.ino
            )));
        }
        let src = regions
            .get(next)
            .ok_or_else(|| bad("attribute fork region missing"))?;
        copy_fork(src, &mut dip[core + forkoff..], f.fields & ABROOT != 0)?;
    }
    if has_crc && version >= 3 {
        let crc = crate::checksum::compute(dip, CRC_OFF);
        dip[CRC_OFF..CRC_OFF + 4].copy_from_slice(&crc.to_le_bytes());
    }
    Ok(())
}

fn copy_fork(src: &[u8], dst: &mut [u8], broot: bool) -> Result<()> {
    if broot {
        return bmbt_to_bmdr(src, dst);
    }
    let d = dst.get_mut(..src.len()).ok_or_else(|| {
        bad(format!(
            "fork of {} bytes does not fit the inode",
            src.len()
        ))
    })?;
    d.copy_from_slice(src);
    Ok(())
}

/// The in-memory root of a bmap B+tree (a long-format block header, keys and
/// pointers for as many records as fit its size) to the on-disk root (level
/// and count, then keys and pointers for as many as fit the fork).
fn bmbt_to_bmdr(src: &[u8], dst: &mut [u8]) -> Result<()> {
    // The header is 72 bytes with CRCs, 24 without: tell by the magic.
    let hdr = match src.get(..4) {
        Some(b"BMA3") => 72,
        Some(b"BMAP") => 24,
        _ => return Err(bad("logged B+tree root without a bmap block magic")),
    };
    if src.len() < hdr || dst.len() < 4 {
        return Err(bad("logged B+tree root too short"));
    }
    let level = &src[4..6];
    let n = usize::from(u16::from_be_bytes([src[6], src[7]]));
    let src_max = (src.len() - hdr) / 16;
    let dst_max = (dst.len() - 4) / 16;
    if n > src_max || n > dst_max {
        return Err(bad(format!("B+tree root with {n} records")));
    }
    dst[0..2].copy_from_slice(level);
    dst[2..4].copy_from_slice(&src[6..8]);
    let (sk, sp, dk, dp) = (hdr, hdr + src_max * 8, 4, 4 + dst_max * 8);
    dst[dk..dk + n * 8].copy_from_slice(&src[sk..sk + n * 8]);
    dst[dp..dp + n * 8].copy_from_slice(&src[sp..sp + n * 8]);
    Ok(())
}

/// `xfs_log_dinode_to_disk`: every core field but `di_next_unlinked` and the
/// CRC, from host to disk order.
fn core_to_disk(l: &[u8], d: &mut [u8], lsn: u64) {
    if l[4] >= 3 {
        d[24..32].fill(0); // di_v3_pad, unless the extent counts below use it
    }
    let mut put = |off: usize, n: usize| {
        let v = le(l, off, n);
        d[off..off + n].copy_from_slice(&v.to_be_bytes()[8 - n..]);
    };
    put(0, 2); // magic
    put(2, 2); // mode
    put(6, 2); // di_onlink (v1) / metadata type
    let version = l[4];
    let flags2 = if version >= 3 { le(l, 120, 8) } else { 0 };
    for (off, n) in [
        (8, 4),
        (12, 4),
        (16, 4),
        (20, 2),
        (22, 2),
        (56, 8),
        (64, 8),
        (72, 4),
        (84, 4),
        (88, 2),
        (90, 2),
        (92, 4),
    ] {
        put(off, n);
    }
    let bigtime = version >= 3 && flags2 & BIGTIME != 0;
    let mut times = vec![32, 40, 48];
    if version >= 3 {
        times.push(144);
    }
    for t in times {
        if bigtime {
            put(t, 8);
        } else {
            put(t, 4);
            put(t + 4, 4);
        }
    }
    if flags2 & NREXT64 != 0 {
        put(24, 8); // di_big_nextents
        put(76, 4); // di_big_anextents
        put(80, 2);
    } else {
        put(76, 4); // di_nextents
        put(80, 2); // di_anextents
    }
    if version >= 3 {
        for (off, n) in [(104, 8), (120, 8), (128, 4), (152, 8)] {
            put(off, n);
        }
        d[112..120].copy_from_slice(&lsn.to_be_bytes());
        d[132..144].fill(0);
        d[160..176].copy_from_slice(&l[160..176]); // uuid: bytes
    } else {
        put(30, 2); // di_flushiter
        if flags2 & NREXT64 == 0 {
            d[24..30].fill(0);
        }
    }
    d[4] = l[4];
    d[5] = l[5];
    d[82] = l[82]; // forkoff
    d[83] = l[83]; // aformat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmbt_root_is_repacked_for_the_fork() {
        // In memory: a 72-byte header, room for 4 records (keys, then pointers).
        let mut src = vec![0u8; 72 + 4 * 16];
        src[..4].copy_from_slice(b"BMA3");
        src[4..6].copy_from_slice(&1u16.to_be_bytes());
        src[6..8].copy_from_slice(&2u16.to_be_bytes());
        for i in 0..2 {
            src[72 + i * 8..80 + i * 8].copy_from_slice(&(10 + i as u64).to_be_bytes());
            src[104 + i * 8..112 + i * 8].copy_from_slice(&(20 + i as u64).to_be_bytes());
        }
        // On disk: a 4-byte header, room for 3 records.
        let mut dst = vec![0xffu8; 4 + 3 * 16];
        bmbt_to_bmdr(&src, &mut dst).unwrap();
        assert_eq!(&dst[..4], &[0, 1, 0, 2]);
        assert_eq!(u64::from_be_bytes(dst[4..12].try_into().unwrap()), 10);
        assert_eq!(u64::from_be_bytes(dst[12..20].try_into().unwrap()), 11);
        assert_eq!(u64::from_be_bytes(dst[28..36].try_into().unwrap()), 20);
        assert_eq!(u64::from_be_bytes(dst[36..44].try_into().unwrap()), 21);
        src[6..8].copy_from_slice(&5u16.to_be_bytes());
        assert!(
            bmbt_to_bmdr(&src, &mut dst).is_err(),
            "more records than fit"
        );
    }

    #[test]
    fn core_fields_change_byte_order_and_times_their_encoding() {
        let mut l = vec![0u8; 176];
        l[0..2].copy_from_slice(&DINODE_MAGIC.to_le_bytes());
        l[2..4].copy_from_slice(&0o100644u16.to_le_bytes());
        l[4] = 3;
        l[8..12].copy_from_slice(&1000u32.to_le_bytes());
        l[56..64].copy_from_slice(&12345u64.to_le_bytes());
        l[32..36].copy_from_slice(&7u32.to_le_bytes()); // legacy: seconds
        l[36..40].copy_from_slice(&9u32.to_le_bytes()); // nanoseconds
        let mut d = vec![0u8; 512];
        core_to_disk(&l, &mut d, 0x1_0000_0002);
        assert_eq!(&d[0..2], b"IN");
        assert_eq!(u16::from_be_bytes([d[2], d[3]]), 0o100644);
        assert_eq!(u32::from_be_bytes(d[8..12].try_into().unwrap()), 1000);
        assert_eq!(u64::from_be_bytes(d[56..64].try_into().unwrap()), 12345);
        assert_eq!(&d[32..40], &[0, 0, 0, 7, 0, 0, 0, 9]);
        assert_eq!(
            u64::from_be_bytes(d[112..120].try_into().unwrap()),
            0x1_0000_0002
        );
        // bigtime: one 64-bit count.
        l[120..128].copy_from_slice(&BIGTIME.to_le_bytes());
        l[32..40].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        core_to_disk(&l, &mut d, 1);
        assert_eq!(&d[32..40], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
