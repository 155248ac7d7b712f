//! `PartitionLog::append` on a real O_DIRECT log in a temporary directory, inside one
//! glommio executor built once for the whole bench:
//!
//! * `append/leader`: the synchronous part of an `acks=leader` produce (split, CRC32C,
//!   offset assignment, queueing). Appends are timed in chunks; between chunks the
//!   flusher drains untimed, so the figure is the CPU cost on the shard, not disk speed.
//! * `append/durable/N`: `append` + `wait_durable` from N concurrent appenders that
//!   share each write + fdatasync (group commit). Time per append = 1 / throughput;
//!   mean latency is about N times that.
//!
//! Each append is one batch of 100 records of 100 bytes.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::LocalExecutor;
use peregrine_shards::log::{LogConfig, PartitionLog};

const RECORDS_PER_BATCH: usize = 100;
/// Appends timed back to back before the flusher gets to run (about 2.7 MB).
const CHUNK_BATCHES: u64 = 256;
/// The broker's default `--cache-mb`.
const CACHE_BYTES: usize = 256 << 20;
/// Concurrent durable appenders sharing fdatasyncs.
const APPENDERS: [u64; 3] = [1, 8, 64];

/// Segments small enough that retention keeps the temporary directory bounded while
/// the leader bench writes gigabytes.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 128 << 20,
        retention_bytes: Some(256 << 20),
        ..LogConfig::default()
    }
}

async fn append_leader(log: &PartitionLog, template: &BytesMut, iters: u64) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters;
    let mut chunk: Vec<BytesMut> = Vec::with_capacity(CHUNK_BATCHES as usize);
    while left > 0 {
        let n = left.min(CHUNK_BATCHES);
        // The request buffer a connection would hand over; copied outside the timing.
        chunk.extend((0..n).map(|_| template.clone()));
        let start = Instant::now();
        for batch in chunk.drain(..) {
            black_box(log.append(batch).expect("append"));
        }
        timed += start.elapsed();
        common::drain(log).await;
        log.enforce_retention(0).await.expect("retention");
        left -= n;
    }
    timed
}

async fn append_durable(
    log: &Rc<PartitionLog>,
    template: &BytesMut,
    iters: u64,
    appenders: u64,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|a| {
            let (log, template) = (log.clone(), template.clone());
            // Spread `iters` over the appenders; the first ones take the remainder.
            let ops = iters / appenders + u64::from(a < iters % appenders);
            glommio::spawn_local(async move {
                for _ in 0..ops {
                    let done = log.append(template.clone()).expect("append");
                    log.wait_durable(done.last_offset).await.expect("durable");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
    let elapsed = start.elapsed();
    log.enforce_retention(0).await.expect("retention");
    elapsed
}

fn bench_append(c: &mut Criterion) {
    let ex: LocalExecutor = common::executor(None);
    let dir = tempfile::tempdir().expect("temporary directory");
    let template = common::batch(RECORDS_PER_BATCH, 1_000);
    let batch_bytes = template.len() as u64;

    let log = ex.run(common::open_log(
        dir.path().join("leader"),
        config(),
        CACHE_BYTES,
    ));
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(batch_bytes));
    group.bench_function("leader", |b| {
        b.iter_custom(|iters| ex.run(append_leader(&log, &template, iters)))
    });
    group.finish();
    ex.run(log.close()).expect("closing the log");

    // Durable appends wait about a millisecond each: fewer samples keep it short.
    let mut group = c.benchmark_group("append/durable");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(batch_bytes));
    for appenders in APPENDERS {
        let log = ex.run(common::open_log(
            dir.path().join(format!("durable-{appenders}")),
            config(),
            CACHE_BYTES,
        ));
        let (ops, fsyncs_before) = (Cell::new(0u64), log.fsync_count());
        group.bench_with_input(
            BenchmarkId::from_parameter(appenders),
            &appenders,
            |b, &n| {
                b.iter_custom(|iters| {
                    ops.set(ops.get() + iters);
                    ex.run(append_durable(&log, &template, iters, n))
                })
            },
        );
        // How well group commit shares: the figure that explains the timings above.
        let fsyncs = log.fsync_count() - fsyncs_before;
        eprintln!(
            "append/durable/{appenders}: {} appends, {fsyncs} fdatasyncs, {:.1} appends per fdatasync",
            ops.get(),
            ops.get() as f64 / fsyncs.max(1) as f64
        );
        ex.run(log.close()).expect("closing the log");
    }
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
