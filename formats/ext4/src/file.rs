//! File content: positioned reads through the file map (holes and uninitialized
//! extents read as zeros; physically contiguous runs read in one I/O), a streaming
//! reader, and symlink targets.

use std::io;

use vmscrub_blockdev::ReadAt;

use crate::error::{Error, Loc, Result};
use crate::fs::Ext4;
use crate::inode::{FileType, Inode};
use crate::map::FileMap;

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
enum Content {
    Mapped(FileMap),
    Inline(Vec<u8>),
}

/// A streaming reader over one file; cheap to create, `&self` reads via
/// [`FileReader::read_at`] so several threads may share one.
pub struct FileReader<'a, D> {
    fs: &'a Ext4<D>,
    inode: Inode,
    content: Content,
    pos: u64,
}

impl<D: ReadAt> FileReader<'_, D> {
    pub fn inode(&self) -> &Inode {
        &self.inode
    }

    pub fn size(&self) -> u64 {
        self.inode.size
    }

    /// Reads at `offset`; fills `buf` fully unless the end of the file comes first.
    /// Returns the number of bytes read (0 at or past the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        match &self.content {
            Content::Mapped(map) => self.fs.read_mapped(&self.inode, map, offset, buf),
            Content::Inline(data) => {
                // Past the stored bytes and up to i_size an inline file reads as
                // zeros, as the kernel's inline readpage zero-fills the page.
                if offset >= self.inode.size {
                    return Ok(0);
                }
                let n = (self.inode.size - offset).min(buf.len() as u64) as usize;
                let out = &mut buf[..n];
                out.fill(0);
                if let Some(rest) = usize::try_from(offset).ok().and_then(|o| data.get(o..)) {
                    let k = rest.len().min(n);
                    out[..k].copy_from_slice(&rest[..k]);
                }
                Ok(n)
            }
        }
    }
}

impl<D: ReadAt> io::Read for FileReader<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(self.pos, buf).map_err(io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: ReadAt> io::Seek for FileReader<'_, D> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let new = match pos {
            io::SeekFrom::Start(p) => Some(p),
            io::SeekFrom::End(d) => self.inode.size.checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

impl<D: ReadAt> Ext4<D> {
    /// Opens inode `ino` for reading (regular files, directories and symlinks).
    pub fn open_file(&self, ino: u32) -> Result<FileReader<'_, D>> {
        let inode = self.inode(ino)?;
        self.open_inode(inode)
    }

    pub fn open_inode(&self, inode: Inode) -> Result<FileReader<'_, D>> {
        self.check_data_flags(&inode)?;
        let ft = inode.file_type();
        let content = match ft {
            FileType::Regular | FileType::Directory | FileType::Symlink => {
                if self.is_inline(&inode) {
                    Content::Inline(self.inline_data(&inode)?)
                } else if ft == FileType::Symlink && self.is_fast_symlink(&inode) {
                    Content::Inline(self.readlink_of(&inode)?)
                } else {
                    Content::Mapped(self.file_map(&inode)?)
                }
            }
            _ => {
                return Err(Error::NotAFile {
                    inode: inode.ino,
                    kind: ft.name(),
                });
            }
        };
        Ok(FileReader {
            fs: self,
            inode,
            content,
            pos: 0,
        })
    }

    /// Reads up to `buf.len()` bytes at `offset` through `map`, stopping at
    /// `i_size`. Consecutive extents that are also physically adjacent are read
    /// with one device read.
    pub fn read_mapped(
        &self,
        inode: &Inode,
        map: &FileMap,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        if offset >= inode.size {
            return Ok(0);
        }
        let want = (inode.size - offset).min(buf.len() as u64) as usize;
        let bs = u64::from(self.block_size());
        let mut done = 0usize;
        while done < want {
            let pos = offset + done as u64;
            let lblk = pos / bs;
            let left = want - done;
            match map.find(lblk) {
                Ok(i) => {
                    let e = map.extents[i];
                    let mut j = i;
                    let mut run_end = e.logical_end();
                    while let Some(n) = map.extents.get(j + 1) {
                        let cur = &map.extents[j];
                        if u64::from(n.logical) == cur.logical_end()
                            && n.start == cur.start + u64::from(cur.len)
                            && n.uninit == e.uninit
                        {
                            j += 1;
                            run_end = n.logical_end();
                        } else {
                            break;
                        }
                    }
                    let n = (run_end * bs - pos).min(left as u64) as usize;
                    let out = &mut buf[done..done + n];
                    if e.uninit {
                        out.fill(0);
                    } else {
                        let phys = (e.start + (lblk - u64::from(e.logical))) * bs + pos % bs;
                        self.read_bytes(phys, out, "file data")?;
                    }
                    done += n;
                }
                Err(i) => {
                    let next = map
                        .extents
                        .get(i)
                        .map_or(u64::MAX, |e| u64::from(e.logical) * bs);
                    let n = (next - pos).min(left as u64) as usize;
                    buf[done..done + n].fill(0);
                    done += n;
                }
            }
        }
        Ok(done)
    }

    /// The whole content of inode `ino`, refusing files over `limit` bytes.
    pub fn read_to_vec(&self, ino: u32, limit: u64) -> Result<Vec<u8>> {
        let r = self.open_file(ino)?;
        if r.size() > limit {
            return Err(Error::corrupt(
                "inode",
                Loc::inode(ino),
                format!("{} bytes exceeds the limit {limit}", r.size()),
            ));
        }
        let mut buf = vec![0u8; r.size() as usize];
        let n = r.read_at(0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The target of symlink `ino`.
    pub fn readlink(&self, ino: u32) -> Result<Vec<u8>> {
        let inode = self.inode(ino)?;
        self.readlink_of(&inode)
    }

    pub fn readlink_of(&self, inode: &Inode) -> Result<Vec<u8>> {
        if inode.file_type() != FileType::Symlink {
            return Err(Error::NotASymlink { inode: inode.ino });
        }
        let loc = Loc::inode(inode.ino);
        if inode.size >= u64::from(self.block_size()) {
            return Err(Error::corrupt(
                "symlink",
                loc,
                format!("target length {} is not below the block size", inode.size),
            ));
        }
        if self.is_inline(inode) {
            let target = self.inline_data(inode)?;
            if (target.len() as u64) < inode.size {
                return Err(Error::corrupt(
                    "symlink",
                    loc,
                    "inline target shorter than i_size",
                ));
            }
            return Ok(target);
        }
        if self.is_fast_symlink(inode) {
            return Ok(inode.i_block[..inode.size as usize].to_vec());
        }
        let map = self.file_map(inode)?;
        let mut buf = vec![0u8; inode.size as usize];
        let n = self.read_mapped(inode, &map, 0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
}
