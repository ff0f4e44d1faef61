//! Symbolic link targets: inside the inode (local fork), or in remote blocks,
//! which on v5 each start with a header (`XSLM`) naming the owner and the
//! target bytes they carry.

use vmscrub_blockdev::ReadAt;

use crate::be::{u32_at, u64_at};
use crate::bmap::Fork;
use crate::checksum;
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::{FileType, ForkFormat, Inode};

/// Longest target the kernel writes (`XFS_SYMLINK_MAXLEN`).
pub const MAX_LEN: u64 = 1024;
const MAGIC: u32 = 0x5853_4c4d; // XSLM
const HDR: usize = 56;
const CRC_OFFSET: usize = 12;

impl<D: ReadAt> Xfs<D> {
    /// The target of symlink `inode`.
    pub fn read_link(&self, inode: &Inode) -> Result<Vec<u8>> {
        let loc = Loc::inode(inode.ino).with_offset(inode.offset);
        if inode.file_type() != Some(FileType::Symlink) {
            return Err(Error::NotASymlink { inode: inode.ino });
        }
        if inode.size == 0 || inode.size > MAX_LEN {
            return Err(Error::corrupt(
                "symlink",
                loc,
                format!("target of {} bytes", inode.size),
            ));
        }
        let len = inode.size as usize;
        match inode.format {
            ForkFormat::Local => inode
                .data_fork()
                .get(..len)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| Error::corrupt("symlink", loc, "target longer than the inode")),
            ForkFormat::Extents | ForkFormat::Btree => self.remote_link(inode, len, loc),
            ForkFormat::Dev => Err(Error::corrupt("symlink", loc, "device fork")),
        }
    }

    fn remote_link(&self, inode: &Inode, len: usize, loc: Loc) -> Result<Vec<u8>> {
        let map = self.block_map(inode, Fork::Data)?;
        let bs = self.sb.block_size as usize;
        let v5 = self.sb.has_crc();
        let per = if v5 { bs - HDR } else { bs };
        let mut out = Vec::with_capacity(len);
        let mut fb = 0u64;
        while out.len() < len {
            let e = map.lookup(fb).ok_or_else(|| {
                Error::corrupt(
                    "symlink",
                    loc,
                    format!("block {fb} of the target is not mapped"),
                )
            })?;
            let buf = self.read_fsb(e.start + (fb - e.offset), "symlink block", loc)?;
            let want = (len - out.len()).min(per);
            if v5 {
                let bl = loc.with_offset(self.fsb_byte(e.start + (fb - e.offset), loc)?);
                self.check_symlink_hdr(&buf, inode.ino, out.len(), want, bl)?;
                out.extend_from_slice(&buf[HDR..HDR + want]);
            } else {
                out.extend_from_slice(&buf[..want]);
            }
            fb += 1;
        }
        Ok(out)
    }

    fn check_symlink_hdr(
        &self,
        b: &[u8],
        ino: u64,
        offset: usize,
        bytes: usize,
        loc: Loc,
    ) -> Result<()> {
        if u32_at(b, 0) != MAGIC {
            return Err(Error::corrupt("symlink block", loc, "bad magic"));
        }
        checksum::verify(self.verify, "symlink block", b, CRC_OFFSET, loc)?;
        let ok = u32_at(b, 4) as usize == offset && u32_at(b, 8) as usize == bytes;
        if self.verify && (!ok || u64_at(b, 32) != ino) {
            return Err(Error::corrupt(
                "symlink block",
                loc,
                "header disagrees with the inode",
            ));
        }
        Ok(())
    }
}
