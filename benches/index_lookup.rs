//! Offset and timestamp lookups in a large partition log (about 50 MB in 3 segments,
//! 40,000 batches of 10 × 100-byte records), at random offsets:
//!
//! * `lookup/read/disk`: `PartitionLog::read` with a cache of 0 bytes, so every read
//!   is the segment search, the sparse-index search and an aligned O_DIRECT read with a
//!   CRC check (the virtual disk's host may still cache blocks).
//! * `lookup/read/cache`: the same log with every batch in the shard cache.
//! * `lookup/offset_for_timestamp/{disk,cache}`: the time-index search plus the scan
//!   from the indexed point to the batch (ListOffsets by timestamp).
//!
//! The index types (`log::index::SegmentIndex`) are crate-private, so the index search
//! is measured through these public calls, not on its own.

mod common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::LocalExecutor;
use peregrine_shards::log::{LogConfig, PartitionLog};

const RECORDS_PER_BATCH: usize = 10;
const BATCHES: usize = 40_000;
/// First batch's timestamp in `common::fill`; each next batch is 1 ms later.
const FIRST_TIMESTAMP_MS: i64 = 1_000_000;
/// Larger than the whole log, so the cached log serves every read from memory.
const CACHE_BYTES: usize = 512 << 20;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 << 20,
        ..LogConfig::default()
    }
}

async fn random_reads(log: &PartitionLog, rng: &mut common::XorShift, iters: u64) -> Duration {
    let end = log.end_offset() as u64;
    let start = Instant::now();
    for _ in 0..iters {
        let offset = rng.next_below(end) as i64;
        // max_bytes 1: exactly the batch holding the offset.
        let read = log.read(offset, 1).await.expect("read");
        black_box(read);
    }
    start.elapsed()
}

async fn random_time_lookups(
    log: &PartitionLog,
    rng: &mut common::XorShift,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let ts = FIRST_TIMESTAMP_MS + rng.next_below(BATCHES as u64) as i64;
        let found = log.offset_for_timestamp(ts).await.expect("lookup");
        black_box(found.expect("every timestamp in range has a batch"));
    }
    start.elapsed()
}

fn bench_lookup(c: &mut Criterion) {
    let ex: LocalExecutor = common::executor(None);
    let dir = tempfile::tempdir().expect("temporary directory");
    // Batches reach the cache only when written through it, so each log is filled
    // through its own cache setting.
    let logs: Vec<(&str, Rc<PartitionLog>)> = [("disk", 0), ("cache", CACHE_BYTES)]
        .into_iter()
        .map(|(name, cache_bytes)| {
            let log = ex.run(async {
                let log = common::open_log(dir.path().join(name), config(), cache_bytes).await;
                common::fill(&log, RECORDS_PER_BATCH, BATCHES).await;
                log
            });
            eprintln!(
                "lookup/{name}: {} offsets, {} bytes, {} segments",
                log.end_offset(),
                log.size_bytes(),
                log.segment_count()
            );
            (name, log)
        })
        .collect();

    let mut group = c.benchmark_group("lookup/read");
    group.throughput(Throughput::Elements(1));
    for (name, log) in &logs {
        let mut rng = common::XorShift(0x9E37_79B9_7F4A_7C15);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| ex.run(random_reads(log, &mut rng, iters)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("lookup/offset_for_timestamp");
    group.throughput(Throughput::Elements(1));
    for (name, log) in &logs {
        let mut rng = common::XorShift(0x2545_F491_4F6C_DD1D);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| ex.run(random_time_lookups(log, &mut rng, iters)))
        });
    }
    group.finish();

    for (_, log) in logs {
        ex.run(log.close()).expect("closing the log");
    }
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
