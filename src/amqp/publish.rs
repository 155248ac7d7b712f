//! `basic.publish` once its content has arrived: properties checked and carried as
//! engine headers, the message routed by the engine, `basic.return` for an unroutable
//! mandatory message, and publisher confirms in publish order (runs of one outcome
//! confirmed with `multiple`).
//!
//! Publishes to a queue through the default exchange join the channel's `Batch` (one
//! engine call and one journal record for many); any other publish runs as a task of
//! its own. Both are spawned in arrival order, so a connection keeps many in flight
//! (bounded by the connection, see `Conn::publish_room`), and the engine appends a
//! publish to its queue when its task first runs, so per-queue order is the publish
//! order. A persistent message on a confirm channel is confirmed once it is on disk in
//! every queue it reached (`PublishSpec::durable`).

use super::channel::{Assembly, Channel};
use super::connection::Conn;
use super::errors::{self, AmqpError};
use super::frames;
use super::props;
use crate::engine::{EngineError, PublishSpec};
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::AMQPClass;
use bytes::Bytes;
use peregrine_shards::security::Operation;
use std::rc::Rc;

/// The pseudo-queue of RabbitMQ's direct reply-to.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Headers that carry the exchange and routing key a message was published with.
pub use props::{EXCHANGE as EXCHANGE_HEADER, ROUTING_KEY as ROUTING_KEY_HEADER};

struct Publish {
    exchange: String,
    routing_key: String,
    /// The properties, kept only for a mandatory publish's `basic.return`.
    returned: Option<AMQPProperties>,
    spec: PublishSpec,
    body: Bytes,
    seq: Option<u64>,
}

pub fn start(conn: &Rc<Conn>, ch: &Rc<Channel>, a: Assembly) -> Result<(), AmqpError> {
    if a.method.immediate {
        // As RabbitMQ 3 answers it.
        return Err(AmqpError::new(errors::NOT_IMPLEMENTED, "immediate=true").at((60, 40)));
    }
    // Before anything is counted or routed: a denied publish changes nothing.
    let (exchange, routing_key) = (a.method.exchange.as_str(), a.method.routing_key.as_str());
    match exchange {
        "" => super::access::queue(conn, Operation::Write, routing_key),
        exchange => super::access::exchange(conn, Operation::Write, exchange),
    }
    .map_err(|e| e.at((60, 40)))?;
    let mut properties = a.properties.unwrap_or_default();
    if let Some(user) = properties.user_id() {
        let logged_in = conn.user.borrow();
        if user.as_str() != logged_in.as_str() {
            return Err(AmqpError::new(
                errors::PRECONDITION_FAILED,
                format!(
                    "user_id property set to '{}' but authenticated user was '{}'",
                    user.as_str(),
                    logged_in.as_str()
                ),
            )
            .at((60, 40)));
        }
    }
    let ttl_ms = match properties.expiration() {
        Some(e) => Some(e.as_str().parse::<u64>().map_err(|_| {
            AmqpError::new(
                errors::PRECONDITION_FAILED,
                format!("invalid expiration '{}'", e.as_str()),
            )
            .at((60, 40))
        })?),
        None => None,
    };
    if properties.reply_to().as_ref().map(|r| r.as_str()) == Some(REPLY_TO) {
        let Some(queue) = ch.reply_queue.borrow().clone() else {
            return Err(AmqpError::new(
                errors::PRECONDITION_FAILED,
                "fast reply consumer does not exist",
            )
            .at((60, 40)));
        };
        properties = properties.with_reply_to(queue.into());
    }
    let exchange = a.method.exchange.as_str().to_string();
    let routing_key = a.method.routing_key.as_str().to_string();
    let mut headers = props::to_headers(&properties);
    if !exchange.is_empty() {
        headers.push((EXCHANGE_HEADER.to_string(), exchange.clone()));
    }
    headers.push((ROUTING_KEY_HEADER.to_string(), routing_key.clone()));
    let spec = PublishSpec {
        priority: properties.priority().unwrap_or(0),
        ttl_ms,
        headers,
        // Transient messages are journaled without waiting for the disk.
        durable: ch.confirm.get() && *properties.delivery_mode() == Some(2),
        ..PublishSpec::default()
    };
    let seq = ch.confirm.get().then(|| {
        let seq = ch.next_publish.get();
        ch.next_publish.set(seq + 1);
        seq
    });
    let body = a.body.into_bytes();
    let publish = Publish {
        exchange,
        routing_key,
        returned: a.method.mandatory.then_some(properties),
        spec,
        body,
        seq,
    };
    let bytes = publish.body.len() as u64;
    conn.publish_started(bytes);
    ch.publishing.set(ch.publishing.get() + 1);
    if let Some((queue, max_priority)) = batch_target(conn, &publish) {
        batch(conn, ch, (queue, max_priority), publish);
        return Ok(());
    }
    flush_batch(conn, ch);
    let (conn, ch) = (conn.clone(), ch.clone());
    crate::runtime::spawn_local(async move {
        let seq = publish.seq;
        let ack = run(&conn, &ch, publish).await;
        finished(&conn, &ch, 1, bytes);
        if let Some(seq) = seq {
            confirm(&conn, &ch, seq, ack);
        }
    })
    .detach();
    Ok(())
}

/// `n` publishes of `bytes` in all are done.
fn finished(conn: &Conn, ch: &Channel, n: usize, bytes: u64) {
    conn.publish_finished(n, bytes);
    ch.publishing.set(ch.publishing.get().saturating_sub(n));
    if ch.publishing.get() == 0 {
        ch.publish_idle.notify(usize::MAX);
    }
}

/// Most messages one batch carries.
const BATCH_MESSAGES_MAX: usize = 512;
/// Most body bytes one batch carries.
const BATCH_BYTES_MAX: usize = 1 << 20;

/// Consecutive publishes of one channel to the same queue through the default exchange
/// with the same properties: journaled as one record by one engine call, and confirmed
/// together. A batch is sent when the connection has no whole frame left to read, when
/// a publish or method that does not join it arrives, or when it is full.
pub struct Batch {
    queue: String,
    spec: PublishSpec,
    lens: Vec<u32>,
    bodies: bytes::BytesMut,
    seqs: Vec<u64>,
}

/// The queue a publish may be batched into, and its maximum priority: the default
/// exchange's (a queue that exists, so it is routed and never returned), a plain message.
fn batch_target(conn: &Conn, p: &Publish) -> Option<(String, u8)> {
    if !p.exchange.is_empty() || p.body.len() > BATCH_BYTES_MAX {
        return None;
    }
    let config = conn.engine.queue_config(&p.routing_key)?;
    // FIFO queues need per-message group and dedup ids.
    (!config.fifo).then(|| (p.routing_key.clone(), config.max_priority))
}

fn batch(conn: &Rc<Conn>, ch: &Rc<Channel>, (queue, max_priority): (String, u8), p: Publish) {
    let mut spec = p.spec;
    // As the exchange path does: a priority over the queue's maximum is its maximum.
    spec.priority = spec.priority.min(max_priority);
    let joins = matches!(&*ch.batch.borrow(), Some(b) if b.queue == queue && b.spec == spec);
    if !joins {
        flush_batch(conn, ch);
    }
    {
        let mut slot = ch.batch.borrow_mut();
        let b = slot.get_or_insert_with(|| Batch {
            queue,
            spec,
            lens: Vec::new(),
            bodies: bytes::BytesMut::new(),
            seqs: Vec::new(),
        });
        b.lens.push(p.body.len() as u32);
        b.bodies.extend_from_slice(&p.body);
        b.seqs.extend(p.seq);
        if b.lens.len() < BATCH_MESSAGES_MAX && b.bodies.len() < BATCH_BYTES_MAX {
            let mut pending = conn.batching.borrow_mut();
            if !pending.iter().any(|c| Rc::ptr_eq(c, ch)) {
                pending.push(ch.clone());
            }
            return;
        }
    }
    flush_batch(conn, ch);
}

/// Sends channel `ch`'s batch, if it has one.
pub fn flush_batch(conn: &Rc<Conn>, ch: &Rc<Channel>) {
    let Some(b) = ch.batch.borrow_mut().take() else {
        return;
    };
    let (conn, ch) = (conn.clone(), ch.clone());
    crate::runtime::spawn_local(async move {
        let (n, bytes) = (b.lens.len(), b.bodies.len() as u64);
        let bodies = b.bodies.freeze();
        let stored = conn
            .engine
            .publish_batch(&b.queue, b.spec.clone(), b.lens.clone(), bodies.clone())
            .await;
        let outcomes: Vec<bool> = match stored {
            Ok(_) => vec![true; b.seqs.len()],
            // A bound refused the batch as a whole: each message on its own, so that
            // those that fit are stored and only the rest are nacked.
            Err(EngineError::QueueFull(_)) => {
                let mut outcomes = Vec::with_capacity(n);
                let mut at = 0usize;
                for len in &b.lens {
                    let body = bodies.slice(at..at + *len as usize);
                    at += *len as usize;
                    let one = conn.engine.publish(&b.queue, b.spec.clone(), body).await;
                    outcomes.push(one.is_ok());
                }
                outcomes
            }
            Err(e) => {
                failed(&conn, &ch, &b.queue, e);
                vec![false; b.seqs.len()]
            }
        };
        finished(&conn, &ch, n, bytes);
        for (seq, ack) in b.seqs.iter().zip(outcomes) {
            confirm(&conn, &ch, *seq, ack);
        }
    })
    .detach();
}

/// Sends every batch the connection's channels hold (it has nothing more to read now).
pub fn flush_all(conn: &Rc<Conn>) {
    let pending = std::mem::take(&mut *conn.batching.borrow_mut());
    for ch in pending {
        flush_batch(conn, &ch);
    }
}

/// A publish the engine refused: a nack (storage, shutdown) or a channel error.
fn failed(conn: &Rc<Conn>, ch: &Rc<Channel>, target: &str, e: EngineError) {
    match e {
        EngineError::QueueFull(_) => {}
        // A publish the disk could not take is nacked; the channel stays open.
        EngineError::Internal(_)
        | EngineError::ShuttingDown(_)
        | EngineError::StorageFull(_)
        | EngineError::StorageFailed(_) => {
            tracing::warn!(peer = %conn.peer, %target, "AMQP publish failed: {e}");
        }
        e => conn.channel_error(ch, AmqpError::from(e).at((60, 40))),
    }
}

/// Routes one message; whether it is acked (false: nacked).
async fn run(conn: &Rc<Conn>, ch: &Rc<Channel>, p: Publish) -> bool {
    let routed = conn
        .engine
        .publish_to_exchange(&p.exchange, &p.routing_key, p.spec, p.body.clone())
        .await;
    match routed {
        Ok(routed) => {
            if let Some(properties) = p.returned {
                if routed.queues + routed.topics == 0 && !ch.is_closing() {
                    let ret = basic::Return {
                        reply_code: errors::NO_ROUTE,
                        reply_text: "NO_ROUTE".into(),
                        exchange: p.exchange.as_str().into(),
                        routing_key: p.routing_key.as_str().into(),
                    };
                    let frame_max = conn.frame_max.get();
                    conn.out.push(|b| {
                        frames::encode_method(
                            b,
                            ch.id,
                            AMQPClass::Basic(basic::AMQPMethod::Return(ret)),
                        );
                        frames::encode_content(b, ch.id, properties, &p.body, frame_max);
                    });
                }
            }
            true
        }
        // reject-publish: the publisher hears a nack (nothing without confirms).
        Err(e) => {
            failed(conn, ch, &p.exchange, e);
            false
        }
    }
}

/// Records publish `seq`'s outcome and confirms every publish up to the first still
/// running, in order, a run of equal outcomes in one `multiple` ack or nack.
///
/// The confirms go out from a task queued behind the publishes that finished in the
/// same turn (one group commit wakes many), so that they coalesce into one `multiple`.
fn confirm(conn: &Rc<Conn>, ch: &Rc<Channel>, seq: u64, ack: bool) {
    ch.confirmed.borrow_mut().insert(seq, ack);
    if ch.confirm_flush.replace(true) {
        return;
    }
    let (conn, ch) = (conn.clone(), ch.clone());
    crate::runtime::spawn_local(async move {
        // glommio may run a new task at once: step back behind the tasks already woken.
        futures_lite::future::yield_now().await;
        flush_confirms(&conn, &ch)
    })
    .detach();
}

/// Sends the confirms of every publish finished so far, up to the first still running.
pub fn flush_confirms(conn: &Conn, ch: &Channel) {
    ch.confirm_flush.set(false);
    let mut floor = ch.confirm_floor.get();
    let mut run: Option<(bool, u64, u64)> = None;
    let mut runs = Vec::new();
    {
        let mut confirmed = ch.confirmed.borrow_mut();
        while let Some(ack) = confirmed.remove(&floor) {
            run = match run {
                Some((kind, first, _)) if kind == ack => Some((kind, first, floor)),
                Some(done) => {
                    runs.push(done);
                    Some((ack, floor, floor))
                }
                None => Some((ack, floor, floor)),
            };
            floor += 1;
        }
    }
    runs.extend(run);
    ch.confirm_floor.set(floor);
    if ch.is_closing() {
        return;
    }
    for (ack, first, last) in runs {
        let multiple = last > first;
        let method = if ack {
            basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: last,
                multiple,
            })
        } else {
            basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: last,
                multiple,
                requeue: false,
            })
        };
        conn.out.method(ch.id, AMQPClass::Basic(method));
    }
}
