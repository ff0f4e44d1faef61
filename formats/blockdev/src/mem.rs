//! An in-memory device, for tests and for small synthetic images.

use std::io;
use std::sync::RwLock;

use crate::{ReadAt, WriteAt, check_range};

#[derive(Debug, Default)]
pub struct MemDisk {
    data: RwLock<Vec<u8>>,
}

impl MemDisk {
    pub fn new(data: Vec<u8>) -> Self {
        Self {
            data: RwLock::new(data),
        }
    }

    pub fn zeroed(size: usize) -> Self {
        Self::new(vec![0; size])
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.data.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ReadAt for MemDisk {
    fn size(&self) -> u64 {
        self.data.read().unwrap_or_else(|p| p.into_inner()).len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let data = self.data.read().unwrap_or_else(|p| p.into_inner());
        check_range(offset, buf.len() as u64, data.len() as u64)?;
        let start = offset as usize;
        buf.copy_from_slice(&data[start..start + buf.len()]);
        Ok(())
    }
}

impl WriteAt for MemDisk {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut data = self.data.write().unwrap_or_else(|p| p.into_inner());
        check_range(offset, buf.len() as u64, data.len() as u64)?;
        let start = offset as usize;
        data[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}
