//! Exchanges: declarations and bindings live in the catalog (the controller changes
//! them, `admin`), and a publish through an exchange is routed on whichever shard
//! received it (every shard holds the catalog) to each matching queue (on its owner)
//! and topic (a record on a partition chosen by the routing key, as Kafka's partitioner
//! does). Routing follows exchange-to-exchange bindings and alternate exchanges
//! (`exchange::route_through`, each target once); a delayed exchange on the way gives
//! queue targets the delay of the message's `x-delay` header. A client may not publish
//! straight to an internal exchange (`publish_from_client`).

use super::error::EngineError;
use super::mesh::CallClass;
use super::shard::Shard;
use super::types::{Acks, BindTarget, Exchanges, FetchArgs, OffsetSpec, PublishSpec, Routed};
use super::Engine;
use bytes::{Bytes, BytesMut};
use peregrine_shards::batch;
use peregrine_shards::queues::exchange;
use peregrine_shards::records::{self, BatchBuilder};
use std::rc::Rc;

pub fn list(shard: &Rc<Shard>) -> Exchanges {
    let catalog = shard.catalog();
    Exchanges {
        exchanges: catalog
            .exchanges
            .iter()
            .map(|(name, meta)| (name.clone(), meta.kind))
            .collect(),
        bindings: catalog.bindings.clone(),
    }
}

/// Header naming a dead letter's origin (`source-queue/id`) on a topic record.
const ORIGIN_HEADER: &str = "x-origin";
/// Bytes read per fetch while looking for an origin in a topic partition.
const ORIGIN_SCAN_BYTES: u32 = 1 << 20;

/// `publish` through an exchange (`exchange`, `routing_key`); with `since_ms`, the
/// publish (a dead letter, `spec.origin` set) may have reached some targets already, at
/// or after that time: its move was retried after a target refused it, or resumed after
/// a crash. A queue drops the copy by its origin key; a topic partition is searched from
/// `since_ms` for a record with the origin header and not written again when it has one.
/// Runs on the shard that received it (every shard holds the catalog).
pub async fn publish_once(
    shard: &Rc<Shard>,
    class: CallClass,
    (exchange, routing_key): (&str, &str),
    spec: PublishSpec,
    body: Bytes,
    since_ms: Option<i64>,
) -> Result<Routed, EngineError> {
    let engine = Engine::new(shard.clone());
    let catalog = shard.catalog();
    let targets = if exchange.is_empty() {
        // The default exchange: the queue named by the routing key, else the topic
        // (an AMQP stream is a topic).
        let target = if catalog.queue(routing_key).is_ok() {
            Some(BindTarget::Queue(routing_key.to_string()))
        } else if catalog.topic(routing_key).is_ok() {
            Some(BindTarget::Topic(routing_key.to_string()))
        } else {
            None
        };
        target
            .map(|target| exchange::Reached {
                target,
                delayed: false,
            })
            .into_iter()
            .collect()
    } else {
        if !catalog.exchanges.contains_key(exchange) {
            return Err(EngineError::UnknownExchange(format!(
                "exchange '{exchange}' does not exist"
            )));
        }
        exchange::route_through(
            &catalog.exchanges,
            &catalog.bindings,
            exchange,
            routing_key,
            &spec.headers,
        )
    };
    let delay_ms = exchange::delay_of(&spec.headers);
    let mut routed = Routed {
        queues: 0,
        topics: 0,
    };
    let failed = |target: &BindTarget, e: EngineError| {
        with_message(e, |m| format!("routing to {target:?}: {m}"))
    };
    for exchange::Reached { target, delayed } in targets {
        match &target {
            BindTarget::Queue(q) => {
                let mut spec = spec.clone();
                if delayed && delay_ms.is_some() {
                    spec.delay_ms = delay_ms;
                }
                // Routed messages follow RabbitMQ: a priority over the queue's maximum is
                // its maximum (a direct publish to a queue is refused instead).
                if let Ok(meta) = catalog.queue(q) {
                    spec.priority = spec.priority.min(meta.config.max_priority);
                }
                Box::pin(engine.publish_as(class, q, spec, body.clone()))
                    .await
                    .map_err(|e| failed(&target, e))?;
                routed.queues += 1;
            }
            // Followed by `route_through`, never a target of its own.
            BindTarget::Exchange(_) => {}
            BindTarget::Topic(t) => {
                let Ok(meta) = catalog.topic(t) else { continue };
                let partition = if routing_key.is_empty() {
                    0
                } else {
                    peregrine_shards::partitioner::partition_for_key(
                        routing_key.as_bytes(),
                        meta.config.partitions,
                    )
                };
                let mut headers: Vec<(&[u8], &[u8])> = spec
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                    .collect();
                if let Some(origin) = &spec.origin {
                    if let Some(since) = since_ms {
                        let found = topic_has_origin(&engine, class, (t, partition), origin, since)
                            .await
                            .map_err(|e| failed(&target, e))?;
                        if found {
                            routed.topics += 1;
                            continue;
                        }
                    }
                    headers.push((ORIGIN_HEADER.as_bytes(), origin.as_bytes()));
                }
                let now = crate::time::now_ms();
                let mut builder = BatchBuilder::new(now, body.len() + routing_key.len() + 64);
                let key = (!routing_key.is_empty()).then_some(routing_key.as_bytes());
                builder.push(key, Some(&body), now, &headers);
                let Some(batch) = builder.finish() else {
                    continue;
                };
                let acks = if spec.durable {
                    Acks::Durable
                } else {
                    Acks::Leader
                };
                let payload = BytesMut::from(&batch[..]);
                Box::pin(engine.produce_as(class, t, partition, acks, payload))
                    .await
                    .map_err(|e| failed(&target, e))?;
                routed.topics += 1;
            }
        }
    }
    Ok(routed)
}

/// A client's publish through `exchange`: refused when it is internal (reached only
/// through other exchanges), otherwise `publish_once`.
pub async fn publish_from_client(
    shard: &Rc<Shard>,
    (exchange, routing_key): (&str, &str),
    spec: PublishSpec,
    body: Bytes,
) -> Result<Routed, EngineError> {
    let internal = shard
        .catalog()
        .exchanges
        .get(exchange)
        .is_some_and(|m| m.internal);
    if internal {
        return Err(EngineError::AccessRefused(format!(
            "exchange '{exchange}' is internal: publish to an exchange bound to it instead"
        )));
    }
    let route = (exchange, routing_key);
    publish_once(shard, CallClass::Client, route, spec, body, None).await
}

/// The same kind of error with its text rewritten.
fn with_message(e: EngineError, f: impl FnOnce(&str) -> String) -> EngineError {
    use EngineError as E;
    match e {
        E::InvalidRequest(m) => E::InvalidRequest(f(&m)),
        E::UnknownTopic(m) => E::UnknownTopic(f(&m)),
        E::UnknownPartition(m) => E::UnknownPartition(f(&m)),
        E::TopicExists(m) => E::TopicExists(f(&m)),
        E::InvalidTopic(m) => E::InvalidTopic(f(&m)),
        E::InvalidPartitions(m) => E::InvalidPartitions(f(&m)),
        E::UnknownQueue(m) => E::UnknownQueue(f(&m)),
        E::UnknownExchange(m) => E::UnknownExchange(f(&m)),
        E::QueueMismatch(m) => E::QueueMismatch(f(&m)),
        E::QueueFull(m) => E::QueueFull(f(&m)),
        E::UnknownHandle(m) => E::UnknownHandle(f(&m)),
        E::OffsetOutOfRange(m) => E::OffsetOutOfRange(f(&m)),
        E::CorruptBatch(m) => E::CorruptBatch(f(&m)),
        E::MessageTooLarge(m) => E::MessageTooLarge(f(&m)),
        E::UnknownMember(m) => E::UnknownMember(f(&m)),
        E::IllegalGeneration(m) => E::IllegalGeneration(f(&m)),
        E::RebalanceInProgress(m) => E::RebalanceInProgress(f(&m)),
        E::InvalidSessionTimeout(m) => E::InvalidSessionTimeout(f(&m)),
        E::InvalidGroup(m) => E::InvalidGroup(f(&m)),
        E::GroupNotEmpty(m) => E::GroupNotEmpty(f(&m)),
        E::OutOfOrderSequence(m) => E::OutOfOrderSequence(f(&m)),
        E::ProducerFenced(m) => E::ProducerFenced(f(&m)),
        E::NotSupported(m) => E::NotSupported(f(&m)),
        E::ShuttingDown(m) => E::ShuttingDown(f(&m)),
        E::Internal(m) => E::Internal(f(&m)),
        E::StorageFull(m) => E::StorageFull(f(&m)),
        E::StorageFailed(m) => E::StorageFailed(f(&m)),
        E::PreconditionFailed(m) => E::PreconditionFailed(f(&m)),
        E::AccessRefused(m) => E::AccessRefused(f(&m)),
        E::InvalidTxnState(m) => E::InvalidTxnState(f(&m)),
        E::ConcurrentTransactions(m) => E::ConcurrentTransactions(f(&m)),
        E::UnknownTransactionalId(m) => E::UnknownTransactionalId(f(&m)),
        E::InvalidTransactionTimeout(m) => E::InvalidTransactionTimeout(f(&m)),
        E::SubscriptionClosed => E::SubscriptionClosed,
    }
}

/// Whether `topic`/`partition` holds a record with `origin` in its origin header,
/// appended at or after `since_ms` (found through the time index, read forward); the
/// error of a lookup or read that failed.
pub(crate) async fn topic_has_origin(
    engine: &Engine,
    class: CallClass,
    (topic, partition): (&str, i32),
    origin: &str,
    since_ms: i64,
) -> Result<bool, EngineError> {
    let spec = OffsetSpec::Timestamp(since_ms);
    let mut offset = Box::pin(engine.list_offsets_as(class, topic, partition, spec))
        .await
        .map_err(|e| with_message(e, |m| format!("finding where to look for {origin}: {m}")))?;
    loop {
        let args = FetchArgs {
            offset,
            max_bytes: ORIGIN_SCAN_BYTES,
            max_wait_ms: 0,
            min_bytes: 0,
            isolation: Default::default(),
            pending: true,
        };
        let fetched = Box::pin(engine.fetch_as(class, topic, partition, args))
            .await
            .map_err(|e| with_message(e, |m| format!("looking for {origin}: {m}")))?;
        let mut next = offset;
        for chunk in &fetched.batches {
            // Stored batches were validated when appended; one that does not parse
            // cannot hold the record looked for (ours are plain, uncompressed).
            let Ok(batches) = batch::split(chunk) else {
                continue;
            };
            for (range, header) in batches {
                next = next.max(header.last_offset() + 1);
                if header.compression() != 0 || header.is_control() {
                    continue;
                }
                let Ok(found) = records::records(&chunk[range]) else {
                    continue;
                };
                let has = |r: &records::RecordView<'_>| {
                    r.headers().is_ok_and(|hs| {
                        hs.iter().any(|(k, v)| {
                            *k == ORIGIN_HEADER.as_bytes() && *v == Some(origin.as_bytes())
                        })
                    })
                };
                if found.flatten().any(|r| r.offset >= offset && has(&r)) {
                    return Ok(true);
                }
            }
        }
        if next <= offset || next >= fetched.high_watermark {
            return Ok(false);
        }
        offset = next;
    }
}
