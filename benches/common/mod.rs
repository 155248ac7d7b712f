//! Helpers shared by the benches: realistic batches and a glommio executor that lives
//! on the bench thread. Each bench uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use peregrine::client::records::{encode_batch, OutRecord};
use peregrine_shards::log::{BatchCache, LogConfig, PartitionLog};

/// Value size of every benchmark record: the size the baseline in RESULTS.md uses.
pub const VALUE_BYTES: usize = 100;
/// io_uring registered memory for a bench executor (the broker uses 16 MiB per shard).
const IO_MEMORY_BYTES: usize = 16 << 20;

/// One uncompressed v2 batch of `records` records with 100-byte values and 10-byte
/// keys, built by the native client's encoder (what a producer sends).
pub fn batch(records: usize, timestamp_ms: i64) -> BytesMut {
    let out: Vec<OutRecord> = (0..records)
        .map(|i| OutRecord {
            key: Some(Bytes::from(format!("key-{i:06}"))),
            value: Bytes::from(vec![b'x'; VALUE_BYTES]),
            timestamp_ms,
        })
        .collect();
    encode_batch(&out).expect("encoding a benchmark batch")
}

/// A single-threaded glommio executor on the calling thread, pinned to `core` when
/// that core exists. Built once per bench; `run` is called once per sample.
pub fn executor(core: Option<usize>) -> LocalExecutor {
    peregrine_shards::sys::raise_memlock_limit().expect("raising RLIMIT_MEMLOCK for io_uring");
    let placement = match core.filter(|c| *c < cpu_count()) {
        Some(c) => Placement::Fixed(c),
        None => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("building a glommio executor")
}

pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Opens a fresh partition log in `dir` with a cache of `cache_bytes`.
pub async fn open_log(dir: PathBuf, config: LogConfig, cache_bytes: usize) -> Rc<PartitionLog> {
    PartitionLog::open(dir, config, BatchCache::new(cache_bytes))
        .await
        .expect("opening the benchmark partition log")
}

/// Waits (outside any timed region) until the flusher has written everything pending,
/// without asking for an fdatasync.
pub async fn drain(log: &PartitionLog) {
    while log.pending_bytes() > 0 {
        glommio::timer::sleep(Duration::from_micros(100)).await;
    }
}

/// Appends `batches` batches of `records` records, timestamps one ms apart (each batch
/// its own), then waits until all is written. Builds the logs of the read benches.
pub async fn fill(log: &PartitionLog, records: usize, batches: usize) {
    for i in 0..batches {
        log.append(batch(records, 1_000_000 + i as i64))
            .expect("appending while filling the log");
        if i % 1024 == 1023 {
            drain(log).await;
        }
    }
    drain(log).await;
}

/// Deterministic xorshift64, so every run reads the same offsets.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}
