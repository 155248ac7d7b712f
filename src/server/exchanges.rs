//! Exchanges: declarations and bindings live in the catalog (the controller changes
//! them), and a publish through an exchange is routed on whichever shard received it
//! (every shard holds the catalog) to each matching queue (on its owner) and topic
//! (a record on a partition chosen by the routing key, as Kafka's partitioner does).

use super::router::Reply;
use super::shard::{reply, Shard};
use crate::native::messages::{
    Acks, BindingSpec, ErrorCode, ExchangeType, OffsetSpec, PublishSpec, Request, Response,
};
use bytes::BytesMut;
use peregrine_shards::batch;
use peregrine_shards::queues::exchange::{self, BindTarget, Binding, ExchangeKind};
use peregrine_shards::records::{self, BatchBuilder};
use std::rc::Rc;

pub fn kind_of(t: ExchangeType) -> ExchangeKind {
    match t {
        ExchangeType::Direct => ExchangeKind::Direct,
        ExchangeType::Fanout => ExchangeKind::Fanout,
        ExchangeType::Topic => ExchangeKind::Topic,
        ExchangeType::Headers => ExchangeKind::Headers,
    }
}

fn type_of(k: ExchangeKind) -> ExchangeType {
    match k {
        ExchangeKind::Direct => ExchangeType::Direct,
        ExchangeKind::Fanout => ExchangeType::Fanout,
        ExchangeKind::Topic => ExchangeType::Topic,
        ExchangeKind::Headers => ExchangeType::Headers,
    }
}

pub fn binding_of(spec: &BindingSpec) -> Result<Binding, String> {
    let target = match (&spec.queue, &spec.topic) {
        (Some(q), None) => BindTarget::Queue(q.clone()),
        (None, Some(t)) => BindTarget::Topic(t.clone()),
        _ => return Err("a binding names exactly one of a queue and a topic".into()),
    };
    Ok(Binding {
        exchange: spec.exchange.clone(),
        target,
        routing_key: spec.routing_key.clone(),
        headers: spec.headers.clone(),
        match_all: spec.match_all,
    })
}

fn spec_of(b: &Binding) -> BindingSpec {
    let (queue, topic) = match &b.target {
        BindTarget::Queue(q) => (Some(q.clone()), None),
        BindTarget::Topic(t) => (None, Some(t.clone())),
    };
    BindingSpec {
        exchange: b.exchange.clone(),
        queue,
        topic,
        routing_key: b.routing_key.clone(),
        headers: b.headers.clone(),
        match_all: b.match_all,
    }
}

pub fn list(shard: &Rc<Shard>) -> Option<Reply> {
    let catalog = shard.catalog();
    reply(Response::Exchanges {
        exchanges: catalog
            .exchanges
            .iter()
            .map(|(name, kind)| (name.clone(), type_of(*kind)))
            .collect(),
        bindings: catalog.bindings.iter().map(spec_of).collect(),
    })
}

/// Header naming a dead letter's origin (`source-queue/id`) on a topic record.
const ORIGIN_HEADER: &str = "x-origin";
/// Bytes read per fetch while looking for an origin in a topic partition.
const ORIGIN_SCAN_BYTES: u32 = 1 << 20;

/// Routes one publish and hands it to every target; answers how many it reached.
pub async fn publish(
    shard: &Rc<Shard>,
    exchange: &str,
    routing_key: &str,
    spec: PublishSpec,
    body: BytesMut,
) -> Option<Reply> {
    publish_once(shard, exchange, routing_key, spec, body, None).await
}

/// `publish`; with `since_ms`, the publish (a dead letter, `spec.origin` set) may have
/// reached some targets already, at or after that time: its move was retried after a
/// target refused it, or resumed after a crash. A queue drops the copy by its origin
/// key; a topic partition is searched from `since_ms` for a record with the origin
/// header and not written again when it has one.
pub async fn publish_once(
    shard: &Rc<Shard>,
    exchange: &str,
    routing_key: &str,
    spec: PublishSpec,
    body: BytesMut,
    since_ms: Option<i64>,
) -> Option<Reply> {
    let catalog = shard.catalog();
    let targets = if exchange.is_empty() {
        // The default exchange: the queue named by the routing key.
        match catalog.queue(routing_key) {
            Ok(_) => vec![BindTarget::Queue(routing_key.to_string())],
            Err(_) => Vec::new(),
        }
    } else {
        let Some(kind) = catalog.exchanges.get(exchange) else {
            return reply(Response::error(
                ErrorCode::UnknownExchange,
                format!("exchange '{exchange}' does not exist"),
            ));
        };
        exchange::route(
            *kind,
            &catalog.bindings_of(exchange),
            routing_key,
            &spec.headers,
        )
    };
    let (mut queues, mut topics) = (0u32, 0u32);
    for target in targets {
        let (request, payload) = match &target {
            BindTarget::Queue(q) => (
                Request::Publish {
                    queue: q.clone(),
                    spec: spec.clone(),
                },
                body.clone(),
            ),
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
                        match topic_has_origin(shard, t, partition, origin, since).await {
                            Ok(true) => {
                                topics += 1;
                                continue;
                            }
                            Ok(false) => {}
                            Err((code, message)) => {
                                return reply(Response::error(
                                    code,
                                    format!("routing to {target:?}: {message}"),
                                ))
                            }
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
                (
                    Request::Produce {
                        topic: t.clone(),
                        partition,
                        acks,
                    },
                    BytesMut::from(&batch[..]),
                )
            }
        };
        match Box::pin(shard.dispatch(request, payload)).await {
            Some((Response::Error { code, message }, _)) => {
                return reply(Response::error(
                    code,
                    format!("routing to {target:?}: {message}"),
                ))
            }
            _ => match target {
                BindTarget::Queue(_) => queues += 1,
                BindTarget::Topic(_) => topics += 1,
            },
        }
    }
    reply(Response::Routed { queues, topics })
}

/// Whether `topic`/`partition` holds a record with `origin` in its origin header,
/// appended at or after `since_ms` (found through the time index, read forward); the
/// error of a lookup or read that failed.
async fn topic_has_origin(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    origin: &str,
    since_ms: i64,
) -> Result<bool, (ErrorCode, String)> {
    let failed = |what: &str, answer: Option<Reply>| match answer {
        Some((Response::Error { code, message }, _)) => (code, format!("{what}: {message}")),
        other => (ErrorCode::Internal, format!("{what}: {other:?}")),
    };
    let list = Request::ListOffsets {
        topic: topic.to_string(),
        partition,
        spec: OffsetSpec::Timestamp(since_ms),
    };
    let mut offset = match Box::pin(shard.dispatch(list, BytesMut::new())).await {
        Some((Response::Offset { offset }, _)) => offset,
        other => {
            return Err(failed(
                &format!("finding where to look for {origin}"),
                other,
            ))
        }
    };
    loop {
        let fetch = Request::Fetch {
            topic: topic.to_string(),
            partition,
            offset,
            max_bytes: ORIGIN_SCAN_BYTES,
            max_wait_ms: 0,
            min_bytes: 0,
        };
        let (high_watermark, chunks) = match Box::pin(shard.dispatch(fetch, BytesMut::new())).await
        {
            Some((Response::Fetched { high_watermark, .. }, chunks)) => (high_watermark, chunks),
            other => return Err(failed(&format!("looking for {origin}"), other)),
        };
        let mut next = offset;
        for chunk in &chunks {
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
        if next <= offset || next >= high_watermark {
            return Ok(false);
        }
        offset = next;
    }
}
