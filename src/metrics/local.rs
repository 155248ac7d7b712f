//! The hot-path side of the metrics: one call per event, on the shard where it happens.
//!
//! Each shard thread installs its `ShardMetrics` once (`install`); the calls here find
//! it through a thread-local, so the front ends and handlers need no new parameters
//! (each call is one line where requests are dispatched, easy to move when the engine
//! API replaces the native request as the cross-core message). On a thread without an
//! installed block (a client, a unit test) every call does nothing.
//!
//! Per-partition and per-queue traffic counters are plain `Cell`s in thread-local maps
//! (only the owning shard touches them); `objects::snapshot` copies them out and drops
//! those of partitions and queues that are gone. Entries are made only for partitions
//! and queues that exist, so clients cannot grow the maps with made-up names.

use super::{bump, Metrics, Protocol, ShardMetrics, StorageCounters, ERROR_CODES, NATIVE_APIS};
use bytes::Bytes;
use peregrine_shards::batch::BatchHeader;
use peregrine_shards::log::{AppendResult, CacheCounters};
use rustc_hash::FxHashMap;
use std::cell::{Cell, OnceCell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Messages and bytes into and out of one partition, since this shard opened it.
#[derive(Debug, Default)]
pub struct PartitionTraffic {
    pub messages_in: Cell<u64>,
    pub bytes_in: Cell<u64>,
    pub messages_out: Cell<u64>,
    pub bytes_out: Cell<u64>,
}

/// Totals of one queue on its owning shard, since the shard opened it.
#[derive(Debug, Default)]
pub struct QueueTotals {
    pub published: Cell<u64>,
    pub acked: Cell<u64>,
    pub redelivered: Cell<u64>,
}

thread_local! {
    static SHARD: OnceCell<Arc<ShardMetrics>> = const { OnceCell::new() };
    static REGISTRY: OnceCell<Arc<Metrics>> = const { OnceCell::new() };
    /// topic -> partition index -> traffic.
    pub(crate) static PARTITIONS: RefCell<FxHashMap<String, Vec<Rc<PartitionTraffic>>>> =
        RefCell::new(FxHashMap::default());
    pub(crate) static QUEUES: RefCell<FxHashMap<String, Rc<QueueTotals>>> =
        RefCell::new(FxHashMap::default());
}

/// Makes `registry` this shard thread's registry and `metrics` its block (once; later
/// calls are ignored), with the shard's cache counters and this thread's fdatasync
/// figures.
pub fn install(registry: Arc<Metrics>, metrics: Arc<ShardMetrics>, cache: Arc<CacheCounters>) {
    REGISTRY.with(|r| {
        let _ = r.set(registry);
    });
    let storage = StorageCounters {
        cache,
        sync: peregrine_shards::log::sync_stats(),
    };
    let _ = metrics.storage.set(storage);
    SHARD.with(|s| {
        let _ = s.set(metrics);
    });
}

/// The registry of every shard's metrics, on a shard thread.
pub fn registry() -> Option<Arc<Metrics>> {
    REGISTRY.with(|r| r.get().cloned())
}

fn with(f: impl FnOnce(&ShardMetrics)) {
    SHARD.with(|s| {
        if let Some(m) = s.get() {
            f(m)
        }
    });
}

/// A native request decoded from a client's frame, by its index in `NATIVE_APIS`.
pub fn native_request(api: usize) {
    with(|m| bump(&m.requests_native[api.min(NATIVE_APIS.len() - 1)], 1));
}

/// A Kafka request with this API key, decoded from a client's frame.
pub fn kafka_request(api_key: i16) {
    let slot = usize::try_from(api_key)
        .unwrap_or(usize::MAX)
        .min(super::KAFKA_API_SLOTS - 1);
    with(|m| bump(&m.requests_kafka[slot], 1));
}

/// An AMQP method from a client, by its class and method id.
pub fn amqp_request(class_id: u16, method_id: u16) {
    let slot = super::amqp_method_slot(class_id, method_id);
    with(|m| bump(&m.requests_amqp[slot], 1));
}

/// An SQS request on the HTTP listener, by its action (`None`: none the broker serves).
pub fn sqs_request(action: Option<peregrine_aws_wire::sqs::Action>) {
    let slot = super::sqs_action_slot(action);
    with(|m| bump(&m.requests_sqs[slot], 1));
}

/// An SNS request on the HTTP listener, by its action (`None`: none the broker serves,
/// counted with SQS's as "unknown").
pub fn sns_request(action: Option<peregrine_aws_wire::sns::Action>) {
    let slot = action.and_then(|a| {
        peregrine_aws_wire::sns::Action::ALL
            .iter()
            .position(|known| *known == a)
    });
    match slot {
        Some(slot) => with(|m| bump(&m.requests_sns[slot], 1)),
        None => sqs_request(None),
    }
}

/// An engine error about to go to a client of `protocol`, by its index in
/// `ERROR_CODES` (`EngineError::metrics_index`).
pub fn error(protocol: Protocol, kind: usize) {
    with(|m| {
        bump(
            &m.errors[protocol as usize][kind.min(ERROR_CODES.len() - 1)],
            1,
        )
    });
}

/// One SNS delivery attempt to `protocol` (a `SNS_DELIVERY_PROTOCOLS` name) and its
/// outcome (a `SNS_DELIVERY_OUTCOMES` name); unknown names are not counted.
pub fn sns_delivery(protocol: &str, outcome: &str) {
    let p = super::SNS_DELIVERY_PROTOCOLS
        .iter()
        .position(|n| *n == protocol);
    let o = super::SNS_DELIVERY_OUTCOMES
        .iter()
        .position(|n| *n == outcome);
    if let (Some(p), Some(o)) = (p, o) {
        with(|m| bump(&m.sns_deliveries[p][o], 1));
    }
}

/// A request sent to another shard.
pub fn cross_core_call() {
    with(|m| bump(&m.cross_core_calls, 1));
}

/// Runs a connection's future, counting it as open meanwhile.
pub async fn connection<F: Future<Output = ()>>(protocol: Protocol, serve: F) {
    struct Open(Option<Arc<ShardMetrics>>, usize);
    impl Drop for Open {
        fn drop(&mut self) {
            if let Some(m) = &self.0 {
                let gauge = &m.connections[self.1];
                gauge.store(gauge.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
            }
        }
    }
    let metrics = SHARD.with(|s| s.get().cloned());
    if let Some(m) = &metrics {
        let gauge = &m.connections[protocol as usize];
        gauge.store(gauge.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    let _open = Open(metrics, protocol as usize);
    serve.await
}

/// A connection this shard counts as open (`connection`) that another shard serves for
/// now: while the guard lives, this shard's gauge leaves it out (the other shard counts
/// it, under its own `connection`).
pub fn connection_moved_out(protocol: Protocol) -> MovedOut {
    let metrics = SHARD.with(|s| s.get().cloned());
    if let Some(m) = &metrics {
        let gauge = &m.connections[protocol as usize];
        gauge.store(gauge.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }
    MovedOut(metrics, protocol as usize)
}

/// See `connection_moved_out`; counts the connection here again when dropped.
pub struct MovedOut(Option<Arc<ShardMetrics>>, usize);

impl Drop for MovedOut {
    fn drop(&mut self) {
        if let Some(m) = &self.0 {
            let gauge = &m.connections[self.1];
            gauge.store(gauge.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }
}

/// The traffic counters of a partition that exists on this shard.
fn partition(topic: &str, partition: i32) -> Option<Rc<PartitionTraffic>> {
    let index = usize::try_from(partition).ok()?;
    PARTITIONS.with(|p| {
        let mut map = p.borrow_mut();
        if let Some(row) = map.get(topic).and_then(|v| v.get(index)) {
            return Some(row.clone());
        }
        let row = map.entry(topic.to_string()).or_default();
        if row.len() <= index {
            row.resize_with(index + 1, Rc::default);
        }
        Some(row[index].clone())
    })
}

/// Times a produce on its partition's shard, from arrival to answer.
pub struct ProduceTimer {
    started: Instant,
    bytes: u64,
}

impl ProduceTimer {
    pub fn start(payload_bytes: usize) -> ProduceTimer {
        ProduceTimer {
            started: Instant::now(),
            bytes: payload_bytes as u64,
        }
    }

    /// The produce was appended (and, for acks=durable, synced) and is answered now;
    /// `answered` is false for acks=none.
    pub fn appended(self, topic: &str, index: i32, appended: &AppendResult, answered: bool) {
        if !appended.duplicate {
            if let Some(t) = partition(topic, index) {
                let messages = (appended.last_offset - appended.base_offset + 1).max(0) as u64;
                t.messages_in.set(t.messages_in.get() + messages);
                t.bytes_in.set(t.bytes_in.get() + self.bytes);
            }
        }
        if answered {
            let us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            with(|m| m.produce_ack.record_us(us));
        }
    }
}

/// A fetch from `offset` answered with `batches` (whole batches: the first may start
/// before `offset`; the records before it are not counted as messages out).
pub fn fetched(topic: &str, index: i32, offset: i64, batches: &[Bytes]) {
    let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
        return;
    };
    let (Ok(first), Ok(last)) = (BatchHeader::parse(first), BatchHeader::parse(last)) else {
        return;
    };
    let messages = (last.last_offset() + 1 - offset.max(first.base_offset)).max(0) as u64;
    let bytes: usize = batches.iter().map(Bytes::len).sum();
    if let Some(t) = partition(topic, index) {
        t.messages_out.set(t.messages_out.get() + messages);
        t.bytes_out.set(t.bytes_out.get() + bytes as u64);
    }
}

/// What a queue call on this shard did, for the queue's totals (the engine calls it
/// once the publish is stored, the ack settled, the receive handed out).
pub fn queue_totals(queue: &str, published: u64, acked: u64, redelivered: u64) {
    if published + acked + redelivered == 0 {
        return;
    }
    QUEUES.with(|q| {
        let mut map = q.borrow_mut();
        let totals = match map.get(queue) {
            Some(t) => t.clone(),
            None => map.entry(queue.to_string()).or_default().clone(),
        };
        totals.published.set(totals.published.get() + published);
        totals.acked.set(totals.acked.get() + acked);
        totals
            .redelivered
            .set(totals.redelivered.get() + redelivered);
    });
}
