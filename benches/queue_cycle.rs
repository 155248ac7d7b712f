//! The broker-side CPU of one message's life in a work queue, without the network:
//!
//! * `queue/cycle`: the delivery state machine (`Queue`) alone: publish a batch of 1000,
//!   hand them out 100 at a time (a subscription's prefetch), ack 50 at a time.
//! * `queue/cycle_backlog`: the same with `BACKLOG` messages standing ready ahead (a
//!   consumer a little behind its publishers, as under load): each cycle publishes a
//!   batch and hands out and acks as many of the oldest, so the entries in use are not
//!   the ones just written.
//! * `journal/cycle`: the same life in the queue's journal (`QueueStore`) on a real
//!   O_DIRECT log: the publish batch, one delivery record per hand-out, one settle
//!   record per ack, not waiting for the disk (the flusher drains between chunks,
//!   untimed), so the figure is encoding and appending on the shard.
//!
//! Throughput is in messages: time per element is the cost of one message's publish,
//! delivery and ack.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use peregrine_shards::log::LogConfig;
use peregrine_shards::queues::{
    Event, Holder, Publish, PublishOptions, Queue, QueueConfig, QueueStore,
};

const BATCH: usize = 1000;
/// Ready messages standing ahead of the consumer in `queue/cycle_backlog`.
const BACKLOG: usize = 20_000;
const PREFETCH: usize = 100;
const ACK_EVERY: usize = 50;
/// Message batches timed back to back before the flusher drains (about 1.3 MB).
const CHUNK_BATCHES: u64 = 8;

/// One request's bodies: slices of one buffer, as the broker gets them.
fn bodies() -> Vec<Bytes> {
    let all = Bytes::from(vec![b'x'; BATCH * common::VALUE_BYTES]);
    (0..BATCH)
        .map(|i| all.slice(i * common::VALUE_BYTES..(i + 1) * common::VALUE_BYTES))
        .collect()
}

/// Publishes one batch, then delivers and acks until the queue is empty; returns the
/// ids published.
fn cycle(q: &mut Queue, bodies: &[Bytes], now: i64) -> Vec<u64> {
    let ids = publish(q, bodies, now);
    deliver_and_ack(q, usize::MAX, now);
    ids
}

fn publish(q: &mut Queue, bodies: &[Bytes], now: i64) -> Vec<u64> {
    bodies
        .iter()
        .filter_map(|b| {
            q.publish(b.clone(), PublishOptions::default(), now)
                .ok()
                .flatten()
        })
        .collect()
}

/// Hands out up to `max` messages a prefetch at a time, acking each hand-out in halves.
fn deliver_and_ack(q: &mut Queue, max: usize, now: i64) {
    let holder = Holder::Subscription(1);
    let mut handles = Vec::with_capacity(PREFETCH);
    let mut answer = Vec::with_capacity(PREFETCH * common::VALUE_BYTES);
    let mut left = max;
    while left > 0 {
        // As the broker hands out: each body copied into the answer, no message cloned.
        handles.clear();
        answer.clear();
        q.receive_with(PREFETCH.min(left), holder, now, |handle, m| {
            handles.push(handle);
            answer.extend_from_slice(&m.body);
        });
        if handles.is_empty() {
            break;
        }
        left -= handles.len();
        black_box(&answer);
        for chunk in handles.chunks(ACK_EVERY) {
            q.ack_all(
                chunk,
                |id| {
                    black_box(id);
                },
                |h| {
                    black_box(h);
                },
            );
        }
    }
}

fn bench_queue(c: &mut Criterion) {
    let bodies = bodies();
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut q = Queue::new("bench", QueueConfig::default());
    group.bench_function("cycle", |b| {
        b.iter(|| black_box(cycle(&mut q, &bodies, 1_000)))
    });
    let mut q = Queue::new("bench", QueueConfig::default());
    for _ in 0..BACKLOG / BATCH {
        publish(&mut q, &bodies, 1_000);
    }
    group.bench_function("cycle_backlog", |b| {
        b.iter(|| {
            let ids = publish(&mut q, &bodies, 1_000);
            deliver_and_ack(&mut q, BATCH, 1_000);
            black_box(ids)
        })
    });
    group.finish();
}

async fn journal_cycles(
    store: &QueueStore,
    q: &mut Queue,
    bodies: &[Bytes],
    iters: u64,
) -> Duration {
    let mut timed = Duration::ZERO;
    let holder = Holder::Subscription(1);
    for i in 0..iters {
        let start = Instant::now();
        let mut ids = Vec::with_capacity(BATCH);
        for b in bodies {
            if let Ok(Some(id)) = q.publish(b.clone(), PublishOptions::default(), 1_000) {
                ids.push(id);
            }
        }
        let messages: Vec<_> = ids.iter().filter_map(|id| q.message(*id)).collect();
        let publish = Publish {
            messages: &messages,
            dedup_ids: &[],
            origin: None,
        };
        let _ = store.append_published(publish, 1_000);
        loop {
            let (deliveries, _) = q.receive(PREFETCH, holder, 1_000);
            if deliveries.is_empty() {
                break;
            }
            let ids = deliveries.iter().map(|d| d.message.id).collect();
            let _ = store.append_event(&Event::Delivered { ids }, 1_000);
            for chunk in deliveries.chunks(ACK_EVERY) {
                let handles: Vec<u64> = chunk.iter().map(|d| d.handle).collect();
                let mut ids = Vec::with_capacity(handles.len());
                q.ack_all(&handles, |id| ids.push(id), |_| {});
                let _ = store.append_event(&Event::Settled { ids }, 1_000);
            }
        }
        timed += start.elapsed();
        if i % CHUNK_BATCHES == CHUNK_BATCHES - 1 {
            common::drain(store.log()).await;
            let _ = store.reclaim(1_000).await;
        }
    }
    common::drain(store.log()).await;
    timed
}

fn bench_journal(c: &mut Criterion) {
    let ex = common::executor(None);
    let dir = tempfile::tempdir().expect("temporary directory");
    let bodies = bodies();
    let config = LogConfig {
        segment_bytes: 16 << 20,
        ..LogConfig::default()
    };
    let (store, _) = ex
        .run(QueueStore::open(dir.path().join("journal"), config))
        .expect("opening the journal");
    let mut q = Queue::new("bench", QueueConfig::default());
    let mut group = c.benchmark_group("journal");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("cycle", |b| {
        b.iter_custom(|iters| ex.run(journal_cycles(&store, &mut q, &bodies, iters)))
    });
    group.finish();
    ex.run(store.close()).expect("closing the journal");
}

criterion_group!(benches, bench_queue, bench_journal);
criterion_main!(benches);
