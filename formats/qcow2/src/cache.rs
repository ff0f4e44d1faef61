//! A small, bounded, thread-safe LRU map, used for decoded L2 tables.
//!
//! The lock is held only to look up or insert an `Arc`; the I/O that fills a miss
//! happens outside it, so readers on several threads never wait for each other's
//! disk reads. Two threads missing on the same key both load it; the second insert
//! simply wins, which is cheaper than making one wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

pub struct Lru<V: ?Sized> {
    inner: Mutex<Inner<V>>,
    capacity: usize,
}

struct Inner<V: ?Sized> {
    map: HashMap<u64, (Arc<V>, u64)>,
    tick: u64,
}

impl<V: ?Sized> Lru<V> {
    /// A cache holding at most `capacity` values (at least one).
    pub fn new(capacity: usize) -> Self {
        Lru {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                tick: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: u64) -> Option<Arc<V>> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        g.map.get_mut(&key).map(|(v, t)| {
            *t = tick;
            Arc::clone(v)
        })
    }

    pub fn insert(&self, key: u64, value: Arc<V>) {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        if !g.map.contains_key(&key) && g.map.len() >= self.capacity {
            // O(capacity), but only on a miss, which also costs a cluster read.
            if let Some(oldest) = g.map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) {
                g.map.remove(&oldest);
            }
        }
        g.map.insert(key, (value, tick));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let c: Lru<[u64]> = Lru::new(2);
        c.insert(1, Arc::from(vec![1u64]));
        c.insert(2, Arc::from(vec![2u64]));
        assert!(c.get(1).is_some()); // 2 is now the oldest
        c.insert(3, Arc::from(vec![3u64]));
        assert!(c.get(2).is_none());
        assert_eq!(c.get(1).unwrap()[0], 1);
        assert_eq!(c.get(3).unwrap()[0], 3);
        assert_eq!(c.len(), 2);
        // Re-inserting a present key does not evict.
        c.insert(3, Arc::from(vec![30u64]));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(3).unwrap()[0], 30);
        assert!(c.get(1).is_some());
    }
}
