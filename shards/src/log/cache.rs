//! The shard's cache of recent record batches.
//!
//! Segment files are O_DIRECT, so there is no page cache behind them; this cache lets
//! tail reads (consumers keeping up with producers) come from memory. One cache per
//! shard, shared by that shard's partitions through `Rc`, with one byte budget
//! (`--cache-mb`).
//!
//! Only batches already written to their segment file are inserted, so anything
//! evicted can be read back from disk; batches still waiting for their write are
//! held by the partition's pending queue and are not counted here.
//! Eviction is first-in first-out: the newest batches are the ones tail readers want.
//! Batches read from disk are not inserted, so a consumer replaying old data does not
//! push the tail out.
//!
//! Hits and misses are counted in `CacheCounters`, which the broker's `/metrics` reads
//! from another thread.
//!
//! Owned by one shard; `!Send`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

struct Entry {
    bytes: Bytes,
    last_offset: i64,
    /// Insertion number; tells a live entry from a stale one in the eviction queue.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    used_bytes: usize,
    next_seq: u64,
    live_entries: usize,
    /// Insertion order: (partition, base offset, seq). May hold stale keys of entries
    /// already removed; `compact` bounds them.
    order: VecDeque<(u64, i64, u64)>,
    partitions: HashMap<u64, BTreeMap<i64, Entry>>,
}

/// Lookups of written batches: a hit is served from memory, a miss is read from disk.
///
/// Written only by the cache's shard (a plain load and store per increment, no locked
/// instruction); read by any thread.
#[derive(Debug, Default)]
pub struct CacheCounters {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CacheCounters {
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// Shard-wide bounded cache of recent batches. Owned by one shard; shared by its
/// partitions via `Rc`.
pub struct BatchCache {
    capacity_bytes: usize,
    next_partition_id: Cell<u64>,
    inner: RefCell<Inner>,
    counters: Arc<CacheCounters>,
}

impl BatchCache {
    pub fn new(capacity_bytes: usize) -> Rc<BatchCache> {
        Rc::new(BatchCache {
            capacity_bytes,
            next_partition_id: Cell::new(0),
            inner: RefCell::new(Inner::default()),
            counters: Arc::default(),
        })
    }

    /// Hit and miss counts, readable from any thread.
    pub fn counters(&self) -> Arc<CacheCounters> {
        self.counters.clone()
    }

    /// Bytes of batch data held now; never more than the capacity.
    pub fn used_bytes(&self) -> usize {
        self.inner.borrow().used_bytes
    }

    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// A key for one partition log's entries.
    pub(crate) fn register(&self) -> u64 {
        let id = self.next_partition_id.get();
        self.next_partition_id.set(id + 1);
        id
    }

    /// Caches a batch that is on disk, evicting the oldest entries to stay in budget.
    pub(crate) fn insert(&self, partition: u64, base_offset: i64, last_offset: i64, bytes: Bytes) {
        if bytes.len() > self.capacity_bytes {
            return;
        }
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.used_bytes += bytes.len();
        let entry = Entry {
            bytes,
            last_offset,
            seq,
        };
        if let Some(old) = inner
            .partitions
            .entry(partition)
            .or_default()
            .insert(base_offset, entry)
        {
            inner.used_bytes -= old.bytes.len();
        } else {
            inner.live_entries += 1;
        }
        inner.order.push_back((partition, base_offset, seq));
        while inner.used_bytes > self.capacity_bytes {
            let Some((p, base, seq)) = inner.order.pop_front() else {
                break;
            };
            inner.remove_if(p, base, |e| e.seq == seq);
        }
    }

    /// The cached batch that contains `offset`, with its last offset; counted as a hit
    /// or a miss (callers ask only for written offsets, so a miss is a disk read).
    pub(crate) fn get(&self, partition: u64, offset: i64) -> Option<(Bytes, i64)> {
        let found = self.lookup(partition, offset);
        self.counters.count(found.is_some());
        found
    }

    fn lookup(&self, partition: u64, offset: i64) -> Option<(Bytes, i64)> {
        let inner = self.inner.borrow();
        let map = inner.partitions.get(&partition)?;
        let (_, entry) = map.range(..=offset).next_back()?;
        (entry.last_offset >= offset).then(|| (entry.bytes.clone(), entry.last_offset))
    }

    /// Drops a partition's batches below `offset` (retention moved its start).
    pub(crate) fn remove_below(&self, partition: u64, offset: i64) {
        let mut inner = self.inner.borrow_mut();
        let Some(map) = inner.partitions.get_mut(&partition) else {
            return;
        };
        let keep = map.split_off(&offset);
        let gone = std::mem::replace(map, keep);
        inner.forget(gone.into_values());
    }

    /// Drops all of a partition's batches (close, delete).
    pub(crate) fn remove_partition(&self, partition: u64) {
        let mut inner = self.inner.borrow_mut();
        if let Some(map) = inner.partitions.remove(&partition) {
            inner.forget(map.into_values());
        }
    }
}

impl Inner {
    fn remove_if(&mut self, partition: u64, base: i64, pred: impl Fn(&Entry) -> bool) {
        let Some(map) = self.partitions.get_mut(&partition) else {
            return;
        };
        if map.get(&base).is_some_and(pred) {
            if let Some(entry) = map.remove(&base) {
                self.used_bytes -= entry.bytes.len();
                self.live_entries -= 1;
            }
        }
        if map.is_empty() {
            self.partitions.remove(&partition);
        }
    }

    fn forget(&mut self, entries: impl Iterator<Item = Entry>) {
        for entry in entries {
            self.used_bytes -= entry.bytes.len();
            self.live_entries -= 1;
        }
        self.compact();
    }

    /// Drops stale keys from the eviction queue once they outnumber live entries.
    fn compact(&mut self) {
        if self.order.len() <= 2 * self.live_entries + 1024 {
            return;
        }
        let partitions = &self.partitions;
        self.order.retain(|(p, base, seq)| {
            partitions
                .get(p)
                .and_then(|m| m.get(base))
                .is_some_and(|e| e.seq == *seq)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    #[test]
    fn cache_stays_within_its_budget_evicting_oldest_first() {
        let cache = BatchCache::new(1_000);
        let (a, b) = (cache.register(), cache.register());
        for i in 0..20 {
            cache.insert(if i % 2 == 0 { a } else { b }, i, i, batch(100));
            assert!(cache.used_bytes() <= 1_000);
        }
        assert_eq!(cache.used_bytes(), 1_000);
        assert!(cache.get(a, 0).is_none(), "oldest evicted");
        assert!(cache.get(b, 19).is_some(), "newest kept");
        cache.insert(a, 100, 100, batch(5_000));
        assert!(
            cache.get(a, 100).is_none(),
            "larger than the whole cache: not cached"
        );
    }

    #[test]
    fn lookup_finds_the_batch_containing_an_offset() {
        let cache = BatchCache::new(10_000);
        let p = cache.register();
        cache.insert(p, 10, 14, batch(10));
        cache.insert(p, 15, 15, batch(10));
        assert_eq!(cache.get(p, 12).map(|(_, last)| last), Some(14));
        assert_eq!(cache.get(p, 15).map(|(_, last)| last), Some(15));
        assert!(cache.get(p, 16).is_none());
        assert!(cache.get(p, 9).is_none());
        let counters = cache.counters();
        assert_eq!((counters.hits(), counters.misses()), (2, 2));
    }

    #[test]
    fn removing_a_partition_or_a_prefix_frees_its_bytes() {
        let cache = BatchCache::new(10_000);
        let (a, b) = (cache.register(), cache.register());
        for i in 0..10 {
            cache.insert(a, i, i, batch(10));
            cache.insert(b, i, i, batch(10));
        }
        cache.remove_below(a, 5);
        assert_eq!(cache.used_bytes(), 150);
        assert!(cache.get(a, 4).is_none() && cache.get(a, 5).is_some());
        cache.remove_partition(b);
        assert_eq!(cache.used_bytes(), 50);
        // Stale queue keys must not evict anything live later on.
        for i in 100..1_100 {
            cache.insert(a, i, i, batch(10));
        }
        assert!(cache.used_bytes() <= 10_000);
        assert!(cache.get(a, 1_099).is_some());
    }
}
