//! File content: positioned reads through a fork's block map (holes and
//! unwritten extents read as zeros; contiguous runs read in one I/O) and a
//! streaming reader that does not load the file.

use std::io;

use vmscrub_blockdev::ReadAt;

use crate::bmap::{BlockMap, Fork};
use crate::error::{Error, Loc, Result};
use crate::fs::Xfs;
use crate::inode::{FileType, Inode};

/// Largest single device read, so a huge extent does not allocate a huge buffer.
const MAX_RUN: u64 = 1 << 20;

impl<D: ReadAt> Xfs<D> {
    /// Reads `buf.len()` bytes at byte `pos` of the mapped fork (no size limit:
    /// the caller clips to the file size). Holes and unwritten extents are zeros.
    pub(crate) fn read_mapped(
        &self,
        map: &BlockMap,
        pos: u64,
        buf: &mut [u8],
        loc: Loc,
    ) -> Result<()> {
        let bs = u64::from(self.sb.block_size);
        let mut done = 0usize;
        while done < buf.len() {
            let at = pos + done as u64;
            let fb = at / bs;
            let within = at % bs;
            let want = (buf.len() - done) as u64;
            let n = match map.lookup(fb) {
                Some(e) => {
                    let run = ((e.end() - fb) * bs - within).min(want).min(MAX_RUN);
                    let out = &mut buf[done..done + run as usize];
                    if e.unwritten {
                        out.fill(0);
                    } else {
                        let off = self.fsb_byte(e.start + (fb - e.offset), loc)? + within;
                        self.read_bytes(out, off, "file data")?;
                    }
                    run
                }
                None => {
                    let i = map.extents.partition_point(|e| e.end() <= fb);
                    let next = map.extents.get(i).map(|e| e.offset.saturating_mul(bs));
                    let run = next.map_or(want, |n| (n - at).min(want));
                    buf[done..done + run as usize].fill(0);
                    run
                }
            };
            done += n as usize;
        }
        Ok(())
    }

    /// A reader over a regular file's bytes.
    pub fn open_file(&self, inode: Inode) -> Result<FileReader<'_, D>> {
        match inode.file_type() {
            Some(FileType::Regular) => {}
            other => {
                return Err(Error::NotAFile {
                    inode: inode.ino,
                    kind: other.map_or("unknown type", FileType::name),
                });
            }
        }
        let map = self.block_map(&inode, Fork::Data)?;
        Ok(FileReader {
            fs: self,
            inode,
            map,
            pos: 0,
        })
    }
}

/// A streaming reader over one regular file.
pub struct FileReader<'a, D> {
    fs: &'a Xfs<D>,
    inode: Inode,
    map: BlockMap,
    pos: u64,
}

impl<D: ReadAt> FileReader<'_, D> {
    pub fn inode(&self) -> &Inode {
        &self.inode
    }

    pub fn map(&self) -> &BlockMap {
        &self.map
    }

    /// Reads at `offset`, up to the end of the file; returns the byte count.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= self.inode.size {
            return Ok(0);
        }
        let n = (self.inode.size - offset).min(buf.len() as u64) as usize;
        self.fs.read_mapped(
            &self.map,
            offset,
            &mut buf[..n],
            crate::error::Loc::inode(self.inode.ino),
        )?;
        Ok(n)
    }
}

impl<D: ReadAt> io::Read for FileReader<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(self.pos, buf).map_err(to_io)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: ReadAt> io::Seek for FileReader<'_, D> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let new = match to {
            io::SeekFrom::Start(p) => Some(p),
            io::SeekFrom::End(d) => self.inode.size.checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

fn to_io(e: Error) -> io::Error {
    let kind = match &e {
        Error::Io { source, .. } => source.kind(),
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, e)
}
