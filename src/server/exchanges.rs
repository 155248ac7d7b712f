//! Exchanges: declarations and bindings live in the catalog (the controller changes
//! them), and a publish through an exchange is routed on whichever shard received it
//! (every shard holds the catalog) to each matching queue (on its owner) and topic
//! (a record on a partition chosen by the routing key, as Kafka's partitioner does).

use super::router::Reply;
use super::shard::{reply, Shard};
use crate::native::messages::{
    Acks, BindingSpec, ErrorCode, ExchangeType, PublishSpec, Request, Response,
};
use bytes::BytesMut;
use peregrine_shards::queues::exchange::{self, BindTarget, Binding, ExchangeKind};
use peregrine_shards::records::BatchBuilder;
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

/// Routes one publish and hands it to every target; answers how many it reached.
pub async fn publish(
    shard: &Rc<Shard>,
    exchange: &str,
    routing_key: &str,
    spec: PublishSpec,
    body: BytesMut,
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
                    crate::client::partitioner::partition_for_key(
                        routing_key.as_bytes(),
                        meta.config.partitions,
                    )
                };
                let headers: Vec<(&[u8], &[u8])> = spec
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                    .collect();
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
