//! A plain file as a device: raw images, qcow2/VMDK container files, extent files.

use std::fs::File;
use std::io::{self, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::{RangeSet, ReadAt, WriteAt, check_range};

/// A file read (and, if opened so, written) with positioned I/O. The size is fixed
/// at open time: devices do not grow.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    size: u64,
    writable: bool,
}

impl FileDisk {
    /// Opens `path` read-only. This is how every input image is opened, so the input
    /// can never be modified through vmscrub.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        Self::from_file(file, false)
    }

    /// Opens `path` for reading and writing (tests and in-place tools only).
    pub fn open_rw(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Self::from_file(file, true)
    }

    pub fn from_file(file: File, writable: bool) -> io::Result<Self> {
        let meta = file.metadata()?;
        let size = if meta.file_type().is_file() {
            meta.len()
        } else {
            // Block devices report length 0 in metadata; seeking to the end works.
            let mut f = &file;
            io::Seek::seek(&mut f, SeekFrom::End(0))?
        };
        Ok(Self {
            file,
            size,
            writable,
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}

impl ReadAt for FileDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        self.file.read_exact_at(buf, offset)
    }

    /// Asks the host filesystem where the data is (SEEK_DATA/SEEK_HOLE). Where that
    /// is not supported, the whole file counts as allocated.
    fn allocated_ranges(&self) -> io::Result<RangeSet> {
        let mut set = RangeSet::new();
        match data_ranges(&self.file, self.size) {
            Ok(ranges) => ranges.into_iter().for_each(|r| set.insert(r)),
            Err(_) => set.insert(0..self.size),
        }
        Ok(set)
    }
}

fn data_ranges(file: &File, size: u64) -> io::Result<Vec<Range<u64>>> {
    use rustix::fs::{SeekFrom as RSeek, seek};
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(file, RSeek::Data(pos)) {
            Ok(s) => s,
            // ENXIO: no data at or after pos.
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if start >= size {
            break;
        }
        let end = match seek(file, RSeek::Hole(start)) {
            Ok(e) => e.min(size),
            Err(e) => return Err(e.into()),
        };
        if end <= start {
            // A filesystem that answers nonsense: fall back to "all data" from here.
            out.push(start..size);
            break;
        }
        out.push(start..end);
        pos = end;
    }
    Ok(out)
}

impl WriteAt for FileDisk {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "device is opened read-only",
            ));
        }
        check_range(offset, buf.len() as u64, self.size)?;
        self.file.write_all_at(buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_exactly_and_refuses_past_end() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"hello world").unwrap();
        let d = FileDisk::open(f.path()).unwrap();
        let mut buf = [0u8; 5];
        d.read_exact_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"world");
        let err = d.read_exact_at(&mut buf, 7).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(d.read_exact_at(&mut buf, u64::MAX - 2).is_err());
        assert_eq!(
            d.write_all_at(b"x", 0).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
    }

    #[test]
    fn sparse_file_reports_its_data_ranges() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let file = f.as_file();
        file.set_len(64 << 20).unwrap();
        file.write_all_at(&[1u8; 4096], 8 << 20).unwrap();
        file.sync_all().unwrap();
        let d = FileDisk::open(f.path()).unwrap();
        let set = d.allocated_ranges().unwrap();
        assert!(set.covers((8 << 20)..(8 << 20) + 4096), "{set:?}");
        // On filesystems with hole support most of the file is a hole; either way the
        // data must be covered and nothing may be reported past the end.
        assert!(set.iter().all(|r| r.end <= 64 << 20));
    }
}
