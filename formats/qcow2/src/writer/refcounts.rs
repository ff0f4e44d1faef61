//! Reference counts of the host clusters written so far.
//!
//! The file is written front to back, so counts only change at its end: a new
//! cluster is appended, or the last one gains a reference (compressed clusters
//! packed into the same host cluster). Almost every cluster has count one
//! (header, data, tables); only clusters shared by compressed data differ. So
//! counts are kept per refcount block, and a block stays an implicit "all ones"
//! until a cluster in it differs: an uncompressed 1 TiB output costs a few bytes
//! here, a compressed one two bytes per host cluster (what its refcount block
//! will hold anyway).

use super::error::WriteError;
use super::layout::MAX_REFCOUNT;

#[derive(Debug)]
pub struct Refcounts {
    /// Entries per refcount block.
    per_block: u64,
    /// `None`: every counted cluster of the block has count one.
    blocks: Vec<Option<Box<[u16]>>>,
    /// Clusters counted so far (the file's length in clusters).
    len: u64,
}

impl Refcounts {
    pub fn new(per_block: u64) -> Self {
        Refcounts {
            per_block: per_block.max(1),
            blocks: Vec::new(),
            len: 0,
        }
    }

    /// Clusters counted so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn get(&self, cluster: u64) -> u16 {
        if cluster >= self.len {
            return 0;
        }
        let (b, i) = self.split(cluster);
        match self.blocks.get(b) {
            Some(Some(dense)) => dense.get(i).copied().unwrap_or(0),
            Some(None) => 1,
            None => 0,
        }
    }

    /// True if `cluster` can take one more reference (it is new, or its count is
    /// below the 16-bit maximum).
    pub fn can_add(&self, cluster: u64) -> bool {
        cluster >= self.len || self.get(cluster) < MAX_REFCOUNT
    }

    /// Adds a reference to `cluster`, which must be the last counted cluster or
    /// the next one (the file only grows at its end).
    pub fn add(&mut self, cluster: u64) -> Result<(), WriteError> {
        if cluster == self.len {
            let (b, i) = self.split(cluster);
            if b == self.blocks.len() {
                self.blocks.push(None);
            }
            if let Some(Some(dense)) = self.blocks.get_mut(b) {
                dense[i] = 1;
            }
            self.len += 1;
            return Ok(());
        }
        if cluster + 1 != self.len {
            return Err(WriteError::Internal(format!(
                "refcount of cluster {cluster} changed after cluster {}",
                self.len.saturating_sub(1)
            )));
        }
        let count = self.get(cluster);
        if count == MAX_REFCOUNT {
            return Err(WriteError::Internal(format!(
                "refcount of cluster {cluster} would overflow"
            )));
        }
        let (b, i) = self.split(cluster);
        let per_block = self.per_block as usize;
        let block_start = cluster - i as u64;
        let counted = (self.len - block_start) as usize;
        let slot = &mut self.blocks[b];
        let dense = slot.get_or_insert_with(|| {
            let mut d = vec![0u16; per_block].into_boxed_slice();
            d[..counted].fill(1);
            d
        });
        dense[i] = count + 1;
        Ok(())
    }

    /// Appends `n` clusters of count one.
    pub fn push_ones(&mut self, n: u64) -> Result<(), WriteError> {
        for _ in 0..n {
            self.add(self.len)?;
        }
        Ok(())
    }

    /// Serializes refcount block `b` (big-endian 16-bit counts, zeros past the end).
    pub fn block_bytes(&self, b: u64, out: &mut Vec<u8>) {
        out.clear();
        let start = b * self.per_block;
        for c in start..start + self.per_block {
            out.extend_from_slice(&self.get(c).to_be_bytes());
        }
    }

    fn split(&self, cluster: u64) -> (usize, usize) {
        (
            (cluster / self.per_block) as usize,
            (cluster % self.per_block) as usize,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ones_stay_implicit_and_shared_clusters_count() {
        let mut r = Refcounts::new(4);
        r.push_ones(6).unwrap();
        assert!(r.blocks.iter().all(Option::is_none));
        assert_eq!(
            (0..7).map(|c| r.get(c)).collect::<Vec<_>>(),
            [1, 1, 1, 1, 1, 1, 0]
        );
        r.add(5).unwrap();
        r.add(5).unwrap();
        r.add(6).unwrap();
        r.add(6).unwrap();
        assert_eq!((4..8).map(|c| r.get(c)).collect::<Vec<_>>(), [1, 3, 2, 0]);
        assert!(r.blocks[0].is_none(), "a full block of ones stays implicit");
        let mut b = Vec::new();
        r.block_bytes(1, &mut b);
        assert_eq!(b, [0, 1, 0, 3, 0, 2, 0, 0]);
        // Only the end of the file changes.
        assert!(matches!(r.add(2), Err(WriteError::Internal(_))));
        assert!(matches!(r.add(9), Err(WriteError::Internal(_))));
    }

    #[test]
    fn overflow_is_seen_before_it_happens() {
        let mut r = Refcounts::new(8);
        r.add(0).unwrap();
        for _ in 1..MAX_REFCOUNT {
            r.add(0).unwrap();
        }
        assert_eq!(r.get(0), MAX_REFCOUNT);
        assert!(!r.can_add(0));
        assert!(r.can_add(1));
        assert!(r.add(0).is_err());
    }
}
