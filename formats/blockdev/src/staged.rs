//! Staged blocks: every change a filesystem editor makes lives here, in memory,
//! until its commit writes each changed block once (the ext4 and XFS editors
//! share it).
//!
//! The stage is also the device the editor's reader reads through, so a later
//! operation sees the effect of an earlier one (a directory block with an entry
//! already removed, an inode with its link count already dropped). Changes come in
//! two layers: `base` holds the operations that succeeded, `op` the one running.
//! An operation that fails drops its layer, so a refused or corrupt target leaves
//! no trace, and nothing at all reaches the device before commit.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, MutexGuard};

use crate::{ReadAt, check_range};

#[derive(Default)]
struct Layers {
    base: HashMap<u64, Box<[u8]>>,
    op: Option<HashMap<u64, Box<[u8]>>>,
}

impl Layers {
    fn get(&self, block: u64) -> Option<&[u8]> {
        if let Some(op) = &self.op
            && let Some(b) = op.get(&block)
        {
            return Some(b);
        }
        self.base.get(&block).map(|b| &b[..])
    }
}

/// A device plus the blocks the editor changed on top of it (not yet written).
/// Reading it shows the filesystem as the edits so far leave it.
pub struct Staged<D> {
    dev: D,
    block_size: u64,
    layers: Mutex<Layers>,
}

impl<D: ReadAt> Staged<D> {
    pub fn new(dev: D, block_size: u32) -> Self {
        Staged {
            dev,
            block_size: u64::from(block_size),
            layers: Mutex::new(Layers::default()),
        }
    }

    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    fn lock(&self) -> MutexGuard<'_, Layers> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way that matters more than the panic itself; keep going with the data.
        self.layers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an operation's layer.
    pub fn begin(&self) {
        self.lock().op = Some(HashMap::new());
    }

    /// Keeps the running operation's changes.
    pub fn keep(&self) {
        let mut l = self.lock();
        if let Some(op) = l.op.take() {
            l.base.extend(op);
        }
    }

    /// Drops the running operation's changes.
    pub fn drop_op(&self) {
        self.lock().op = None;
    }

    /// Reads block `block` as currently staged (or from the device).
    pub fn read_block(&self, block: u64) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.block_size as usize];
        let offset = block
            .checked_mul(self.block_size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "block number overflow"))?;
        self.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Stages the whole content of `block` (into the running operation's layer
    /// if there is one).
    pub fn put_block(&self, block: u64, data: Vec<u8>) {
        debug_assert_eq!(data.len() as u64, self.block_size);
        let mut l = self.lock();
        let data = data.into_boxed_slice();
        match &mut l.op {
            Some(op) => {
                op.insert(block, data);
            }
            None => {
                l.base.insert(block, data);
            }
        }
    }

    /// Patches `bytes` at byte `offset` (read-modify-write of the blocks it covers).
    pub fn patch(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let bs = self.block_size;
        let mut pos = 0usize;
        while pos < bytes.len() {
            let at = offset + pos as u64;
            let block = at / bs;
            let in_block = (at % bs) as usize;
            let n = (bs as usize - in_block).min(bytes.len() - pos);
            let mut b = self.read_block(block)?;
            b[in_block..in_block + n].copy_from_slice(&bytes[pos..pos + n]);
            self.put_block(block, b);
            pos += n;
        }
        Ok(())
    }

    /// Every staged block (committed operations only), in block order.
    pub fn staged_blocks(&self) -> Vec<(u64, Box<[u8]>)> {
        let l = self.lock();
        let mut v: Vec<(u64, Box<[u8]>)> = l.base.iter().map(|(k, b)| (*k, b.clone())).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    pub fn staged_count(&self) -> usize {
        self.lock().base.len()
    }
}

impl<D: ReadAt> ReadAt for Staged<D> {
    fn size(&self) -> u64 {
        self.dev.size()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.dev.size())?;
        let bs = self.block_size;
        let l = self.lock();
        if l.base.is_empty() && l.op.as_ref().is_none_or(|o| o.is_empty()) {
            drop(l);
            return self.dev.read_exact_at(buf, offset);
        }
        // Walk the range block by block; unstaged runs are read from the device in
        // one call each.
        let mut pos = 0usize;
        let mut run_start: Option<usize> = None;
        while pos < buf.len() {
            let at = offset + pos as u64;
            let block = at / bs;
            let in_block = (at % bs) as usize;
            let n = (bs as usize - in_block).min(buf.len() - pos);
            if let Some(data) = l.get(block) {
                if let Some(s) = run_start.take() {
                    self.dev
                        .read_exact_at(&mut buf[s..pos], offset + s as u64)?;
                }
                buf[pos..pos + n].copy_from_slice(&data[in_block..in_block + n]);
            } else if run_start.is_none() {
                run_start = Some(pos);
            }
            pos += n;
        }
        if let Some(s) = run_start {
            self.dev.read_exact_at(&mut buf[s..], offset + s as u64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDisk;

    #[test]
    fn layers_read_through_and_roll_back() {
        let m = MemDisk::new(vec![7u8; 4096]);
        let s = Staged::new(&m, 1024);
        s.put_block(1, vec![1u8; 1024]);
        s.begin();
        s.patch(2046, &[9, 9, 9, 9]).unwrap();
        let mut b = vec![0u8; 8];
        s.read_exact_at(&mut b, 2044).unwrap();
        assert_eq!(b, [1, 1, 9, 9, 9, 9, 7, 7]);
        s.drop_op();
        s.read_exact_at(&mut b, 2044).unwrap();
        assert_eq!(b, [1, 1, 1, 1, 7, 7, 7, 7]);
        s.begin();
        s.patch(0, &[5]).unwrap();
        s.keep();
        assert_eq!(s.staged_count(), 2);
        let mut all = vec![0u8; 4096];
        s.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(all[0], 5);
        assert_eq!(all[1], 7);
        assert_eq!(&all[1024..2048], &[1u8; 1024][..]);
        // The device itself is untouched.
        assert_eq!(m.to_vec(), vec![7u8; 4096]);
    }
}
