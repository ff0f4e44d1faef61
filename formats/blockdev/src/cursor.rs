//! `std::io` stream adapter, for crates that want `Read + Seek` (+ `Write`), such as
//! `fatfs` and `tar`.

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::{ReadAt, WriteAt};

/// A position over a device. Reads stop at the end of the device (like a file);
/// writes past the end fail, since devices do not grow.
#[derive(Debug, Clone)]
pub struct Cursor<D> {
    dev: D,
    pos: u64,
}

impl<D: ReadAt> Cursor<D> {
    pub fn new(dev: D) -> Self {
        Self { dev, pos: 0 }
    }

    pub fn into_inner(self) -> D {
        self.dev
    }

    pub fn get_ref(&self) -> &D {
        &self.dev
    }
}

impl<D: ReadAt> Read for Cursor<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.dev.size().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(remaining) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.dev.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: WriteAt> Write for Cursor<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.dev.write_all_at(buf, self.pos)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<D: ReadAt> Seek for Cursor<D> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.dev.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDisk;

    #[test]
    fn stream_over_device() {
        let m = MemDisk::new(b"abcdef".to_vec());
        let mut c = Cursor::new(&m);
        let mut s = String::new();
        c.seek(SeekFrom::Start(2)).unwrap();
        c.read_to_string(&mut s).unwrap();
        assert_eq!(s, "cdef");
        c.seek(SeekFrom::End(-1)).unwrap();
        c.write_all(b"Z").unwrap();
        assert!(c.write_all(b"!").is_err());
        assert!(c.seek(SeekFrom::Current(-100)).is_err());
        assert_eq!(m.to_vec(), b"abcdeZ");
    }
}
