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

use super::{bump, error_index, native_api, Protocol, ShardMetrics, StorageCounters};
use crate::native::messages::{Request, Response};
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
    /// topic -> partition index -> traffic.
    pub(super) static PARTITIONS: RefCell<FxHashMap<String, Vec<Rc<PartitionTraffic>>>> =
        RefCell::new(FxHashMap::default());
    pub(super) static QUEUES: RefCell<FxHashMap<String, Rc<QueueTotals>>> =
        RefCell::new(FxHashMap::default());
}

/// Makes `metrics` the calling shard thread's block (once; later calls are ignored),
/// with the shard's cache counters and this thread's fdatasync figures.
pub fn install(metrics: Arc<ShardMetrics>, cache: Arc<CacheCounters>) {
    let storage = StorageCounters {
        cache,
        sync: peregrine_shards::log::sync_stats(),
    };
    let _ = metrics.storage.set(storage);
    SHARD.with(|s| {
        let _ = s.set(metrics);
    });
}

fn with(f: impl FnOnce(&ShardMetrics)) {
    SHARD.with(|s| {
        if let Some(m) = s.get() {
            f(m)
        }
    });
}

/// A native request decoded from a client's frame.
pub fn native_request(request: &Request) {
    with(|m| bump(&m.requests_native[native_api(request)], 1));
}

/// A Kafka request with this API key, decoded from a client's frame.
pub fn kafka_request(api_key: i16) {
    let slot = usize::try_from(api_key)
        .unwrap_or(usize::MAX)
        .min(super::KAFKA_API_SLOTS - 1);
    with(|m| bump(&m.requests_kafka[slot], 1));
}

/// An engine answer about to go to a client of `protocol`: errors are counted by code.
pub fn answered(protocol: Protocol, response: &Response) {
    if let Response::Error { code, .. } = response {
        with(|m| bump(&m.errors[protocol as usize][error_index(*code)], 1));
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

/// What a queue call did, for the queue's totals; made before the call runs, settled
/// with its answer.
pub struct QueueCall {
    queue: String,
    kind: QueueCallKind,
}

enum QueueCallKind {
    Publish,
    Ack(u64),
    Receive { auto_ack: bool },
    Other,
}

impl QueueCall {
    pub fn of(request: &Request) -> QueueCall {
        let (queue, kind) = match request {
            Request::Publish { queue, .. } | Request::PublishBatch { queue, .. } => {
                (queue, QueueCallKind::Publish)
            }
            Request::Ack { queue, handles } => (queue, QueueCallKind::Ack(handles.len() as u64)),
            Request::Receive {
                queue, auto_ack, ..
            }
            | Request::SubscriptionPull {
                queue, auto_ack, ..
            } => (
                queue,
                QueueCallKind::Receive {
                    auto_ack: *auto_ack,
                },
            ),
            _ => {
                return QueueCall {
                    queue: String::new(),
                    kind: QueueCallKind::Other,
                }
            }
        };
        QueueCall {
            queue: queue.clone(),
            kind,
        }
    }

    /// Counts what the answer says happened (nothing for an error answer).
    pub fn settled(self, answer: &Option<(Response, Vec<Bytes>)>) {
        let Some((response, _)) = answer else {
            return;
        };
        let (published, acked, redelivered) = match (&self.kind, response) {
            (QueueCallKind::Publish, Response::Published { id: Some(_) }) => (1, 0, 0),
            (QueueCallKind::Publish, Response::PublishedBatch { stored }) => {
                (u64::from(*stored), 0, 0)
            }
            (QueueCallKind::Ack(n), Response::Ok) => (0, *n, 0),
            (QueueCallKind::Receive { auto_ack }, Response::Received { messages }) => {
                let n = messages.deliveries.len() as u64;
                let again = messages.deliveries.iter().filter(|d| **d > 1).count() as u64;
                (0, if *auto_ack { n } else { 0 }, again)
            }
            _ => return,
        };
        if published + acked + redelivered == 0 {
            return;
        }
        QUEUES.with(|q| {
            let mut map = q.borrow_mut();
            let totals = match map.get(self.queue.as_str()) {
                Some(t) => t.clone(),
                None => map.entry(self.queue).or_default().clone(),
            };
            totals.published.set(totals.published.get() + published);
            totals.acked.set(totals.acked.get() + acked);
            totals
                .redelivered
                .set(totals.redelivered.get() + redelivered);
        });
    }
}
