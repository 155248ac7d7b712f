//! Consuming: `basic.consume` as an engine `Subscription` per consumer (its prefetch is
//! the consumer's `basic.qos`), deliveries numbered per channel, `basic.get`, acks,
//! nacks and rejects (with `multiple`), `recover`, consumer cancel notifications when a
//! queue goes, and what a closing channel gives back (its unacked messages return to
//! their queues, redelivered).
//!
//! Bounds: a consumer holds at most its prefetch (`UNLIMITED_PREFETCH` when the client
//! sets none) in leases; a channel holds at most `UNACKED_MAX` unacked deliveries from
//! `basic.get`; `CONSUMERS_MAX` consumers per connection, over all its channels.

use super::channel::Channel;
use super::connection::Conn;
use super::errors::{self, AmqpError};
use super::frames;
use super::props;
use super::publish::{self, EXCHANGE_HEADER, ROUTING_KEY_HEADER};
use crate::engine::{EngineError, QueueConfig, Received, Settle, Subscription};
use crate::runtime::{self, spawn_local};
use amq_protocol::protocol::{basic, AMQPClass};
use peregrine_shards::security::Operation;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Mutex;

/// Leases a consumer may hold when the client sets no prefetch (RabbitMQ's unlimited):
/// a bound on what one consumer pins on the broker.
pub const UNLIMITED_PREFETCH: u32 = 2000;
/// Unacked `basic.get` deliveries one channel may hold; past it `basic.get` fails.
pub const UNACKED_MAX: usize = 65_536;
/// Consumers one connection may have, over all its channels (each holds up to its
/// prefetch in leases).
pub const CONSUMERS_MAX: usize = 1024;
/// Leases of AMQP consumers last this long without an ack before the message is
/// redelivered (RabbitMQ's `consumer_timeout`, 30 minutes): AMQP has no visibility
/// timeout, so queues declared over AMQP get this one.
pub const AMQP_LEASE_MS: u64 = 30 * 60 * 1000;

/// A delivery not yet acked: the queue it came from, its lease, and the subscription
/// that holds the lease (kept alive until the lease is settled).
pub struct Unacked {
    pub queue: Rc<str>,
    pub lease: Lease,
}

pub enum Lease {
    /// An engine lease, settled by handle. The subscription (held, never read) lives
    /// until the lease is settled.
    Engine {
        handle: u64,
        _sub: Option<Rc<Subscription>>,
    },
    /// A delivery from a stream: acking it only gives its consumer credit back.
    Stream { _credit: super::stream::Credit },
}

pub struct Consumer {
    task: Option<runtime::Task<()>>,
    /// Held while this is its queue's exclusive consumer.
    _exclusive: Option<ExclusiveClaim>,
}

/// Queues that have an exclusive AMQP consumer, over every shard. Touched only by
/// `basic.consume` and a consumer's end, never per message.
static EXCLUSIVE_CONSUMERS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn exclusive_consumers() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    // The set stays consistent whatever panicked while holding it (one insert/remove).
    EXCLUSIVE_CONSUMERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A queue's exclusive consumer, released when the consumer goes.
struct ExclusiveClaim(String);

impl Drop for ExclusiveClaim {
    fn drop(&mut self) {
        exclusive_consumers().remove(&self.0);
    }
}

fn in_exclusive_use(queue: &str) -> AmqpError {
    AmqpError::new(
        errors::ACCESS_REFUSED,
        format!("queue '{queue}' in vhost '/' in exclusive use"),
    )
}

impl Consumer {
    pub fn new(task: runtime::Task<()>) -> Consumer {
        Consumer {
            task: Some(task),
            _exclusive: None,
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Dropping the task cancels its loop; the subscription goes with the last
        // unacked delivery that holds it.
        drop(self.task.take());
    }
}

fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut out = String::with_capacity(22);
    let mut bits = 0u64;
    for i in 0..22 {
        if i % 10 == 0 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(crate::time::now_ms() as u64 ^ i as u64);
            bits = h.finish();
        }
        out.push(ALPHABET[(bits & 63) as usize] as char);
        bits >>= 6;
    }
    out
}

/// `amq.gen-…`: a server-named queue.
pub fn generated_name(prefix: &str) -> String {
    format!("{prefix}{}", random_token())
}

pub async fn consume(
    conn: &Rc<Conn>,
    ch: &Rc<Channel>,
    c: basic::Consume,
) -> Result<(), AmqpError> {
    let mut queue = c.queue.as_str().to_string();
    if queue == publish::REPLY_TO {
        if !c.no_ack {
            return Err(AmqpError::new(
                errors::PRECONDITION_FAILED,
                "reply consumer cannot acknowledge",
            ));
        }
        queue = reply_queue(conn, ch).await?;
    } else {
        super::declare::check_exclusive(conn, &queue)?;
        super::access::queue(conn, Operation::Read, &queue)?;
        let stats = match conn.engine.queue_stats(&queue).await {
            Err(EngineError::UnknownQueue(_)) if conn.engine.topic_exists(&queue) => {
                let tag = consumer_tag(conn, ch, c.consumer_tag.as_str())?;
                return super::stream::consume(conn, ch, c, tag).await;
            }
            stats => stats.map_err(not_found(&queue))?,
        };
        if c.exclusive && stats.consumers > 0 {
            return Err(in_exclusive_use(&queue));
        }
    }
    if exclusive_consumers().contains(&queue) {
        return Err(in_exclusive_use(&queue));
    }
    let tag = consumer_tag(conn, ch, c.consumer_tag.as_str())?;
    let exclusive = if c.exclusive {
        if !exclusive_consumers().insert(queue.clone()) {
            return Err(in_exclusive_use(&queue));
        }
        Some(ExclusiveClaim(queue.clone()))
    } else {
        None
    };
    let prefetch = prefetch(ch);
    let sub = Rc::new(conn.engine.subscribe(&queue, prefetch, c.no_ack));
    consume_ok(conn, ch, &tag, c.nowait);
    let delivery = Delivery {
        conn: conn.clone(),
        ch: ch.clone(),
        tag: tag.clone(),
        queue: queue.into(),
        no_ack: c.no_ack,
    };
    let task = spawn_local(delivery.run(sub));
    ch.consumers.borrow_mut().insert(
        tag,
        Consumer {
            task: Some(task),
            _exclusive: exclusive,
        },
    );
    Ok(())
}

/// A new consumer's prefetch: its own `basic.qos`, else the channel's, else unlimited
/// (`UNLIMITED_PREFETCH`).
pub fn prefetch(ch: &Channel) -> u32 {
    match (ch.prefetch_consumer.get(), ch.prefetch_channel.get()) {
        (0, 0) => UNLIMITED_PREFETCH,
        (0, n) | (n, _) => u32::from(n),
    }
}

pub fn consume_ok(conn: &Conn, ch: &Channel, tag: &str, nowait: bool) {
    if !nowait {
        let ok = basic::ConsumeOk {
            consumer_tag: tag.into(),
        };
        conn.out
            .method(ch.id, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)));
    }
}

/// The tag a new consumer gets: the client's, or a generated one.
fn consumer_tag(conn: &Conn, ch: &Channel, asked: &str) -> Result<String, AmqpError> {
    let tag = match asked {
        "" => generated_name("amq.ctag-"),
        t => t.to_string(),
    };
    if ch.consumers.borrow().contains_key(&tag) {
        return Err(AmqpError::new(
            errors::NOT_ALLOWED,
            format!("attempt to reuse consumer tag '{tag}'"),
        ));
    }
    let consumers: usize = conn
        .channels
        .borrow()
        .values()
        .map(|c| c.consumers.borrow().len())
        .sum();
    if consumers >= CONSUMERS_MAX {
        return Err(AmqpError::new(
            errors::PRECONDITION_FAILED,
            format!("a connection may have {CONSUMERS_MAX} consumers"),
        ));
    }
    Ok(tag)
}

/// The private queue behind `amq.rabbitmq.reply-to` for channel `ch` (made on first use).
async fn reply_queue(conn: &Rc<Conn>, ch: &Rc<Channel>) -> Result<String, AmqpError> {
    if let Some(q) = ch.reply_queue.borrow().clone() {
        return Ok(q);
    }
    let name = generated_name(&format!("{}.", publish::REPLY_TO));
    // Gone with its connection, and at a restart.
    let config = QueueConfig {
        visibility_timeout_ms: AMQP_LEASE_MS,
        durable: false,
        exclusive: Some(conn.id.clone()),
        ..QueueConfig::default()
    };
    conn.engine.declare_queue(&name, config).await?;
    *ch.reply_queue.borrow_mut() = Some(name.clone());
    Ok(name)
}

pub fn not_found(queue: &str) -> impl FnOnce(EngineError) -> AmqpError + '_ {
    move |e| match e {
        EngineError::UnknownQueue(_) => AmqpError::new(
            errors::NOT_FOUND,
            format!("no queue '{queue}' in vhost '/'"),
        ),
        e => AmqpError::from(e),
    }
}

/// One consumer's delivery loop.
struct Delivery {
    conn: Rc<Conn>,
    ch: Rc<Channel>,
    tag: String,
    queue: Rc<str>,
    no_ack: bool,
}

impl Delivery {
    async fn run(self, sub: Rc<Subscription>) {
        loop {
            // Pulls that find messages ready and output with room never wait.
            runtime::yield_if_needed().await;
            self.credit().await;
            self.conn.out.room().await;
            match sub.next().await {
                Ok(got) => self.deliver(&sub, got).await,
                Err(e) => {
                    consumer_ended(&self.conn, &self.ch, &self.tag, &e);
                    return;
                }
            }
        }
    }

    /// Waits until the channel may take more: flow on and under its own prefetch.
    async fn credit(&self) {
        let ch = &self.ch;
        runtime::until(&ch.credit, || ch.has_credit()).await;
    }

    /// Delivers what one pull got, each message only while the channel has credit (a
    /// pull may get more than a channel-wide prefetch leaves: the rest waits here,
    /// leased to this consumer, until acks make room).
    async fn deliver(&self, sub: &Rc<Subscription>, got: Received) {
        let (ch, conn) = (&self.ch, &self.conn);
        let frame_max = conn.frame_max.get();
        let m = &got.messages;
        let mut extras = m.extras.iter().peekable();
        let mut offset = 0usize;
        for i in 0..m.len() {
            self.credit().await;
            if ch.is_closing() || conn.out.is_closed() {
                // Leases return when the subscription goes with the channel.
                return;
            }
            let len = m.lens[i] as usize;
            let body = got.bodies.slice(offset..offset + len);
            offset += len;
            let headers = match extras.peek() {
                Some(x) if x.index as usize == i => extras.next().map(|x| &x.headers[..]),
                _ => None,
            }
            .unwrap_or(&[]);
            let tag = ch.next_tag.get();
            ch.next_tag.set(tag + 1);
            if !self.no_ack {
                ch.unacked.borrow_mut().insert(
                    tag,
                    Unacked {
                        queue: self.queue.clone(),
                        lease: Lease::Engine {
                            handle: m.handles[i],
                            _sub: Some(sub.clone()),
                        },
                    },
                );
            }
            let (exchange, routing_key) = routing(headers, &self.queue);
            let deliver = basic::Deliver {
                consumer_tag: self.tag.as_str().into(),
                delivery_tag: tag,
                redelivered: m.deliveries[i] > 1,
                exchange: exchange.into(),
                routing_key: routing_key.into(),
            };
            let properties = props::from_headers(headers, m.priorities[i]);
            conn.out.push(|b| {
                frames::encode_method(
                    b,
                    ch.id,
                    AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver)),
                );
                frames::encode_content(b, ch.id, properties, &body, frame_max);
            });
        }
    }
}

/// A consumer's queue went (or the broker is stopping): the client is told its consumer
/// was cancelled. Called from the consumer's own task.
pub fn consumer_ended(conn: &Conn, ch: &Channel, tag: &str, e: &EngineError) {
    tracing::debug!(consumer = %tag, "AMQP consumer ended: {e}");
    let removed = ch.consumers.borrow_mut().remove(tag);
    if let Some(mut consumer) = removed {
        // This task is that consumer's: let it finish rather than cancel itself.
        if let Some(task) = consumer.task.take() {
            task.detach();
        }
        if conn.cancel_notify.get() && !ch.is_closing() {
            let cancel = basic::Cancel {
                consumer_tag: tag.into(),
                nowait: true,
            };
            conn.out
                .method(ch.id, AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)));
        }
    }
}

/// The exchange and routing key a message was published with (a message published by
/// another protocol: the default exchange and its queue's name).
pub fn routing<'a>(headers: &'a [(String, String)], queue: &'a str) -> (&'a str, &'a str) {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match find(ROUTING_KEY_HEADER) {
        Some(key) => (find(EXCHANGE_HEADER).unwrap_or(""), key),
        None => ("", queue),
    }
}

pub fn cancel(conn: &Rc<Conn>, ch: &Rc<Channel>, tag: &str, nowait: bool) {
    ch.consumers.borrow_mut().remove(tag);
    if !nowait {
        let ok = basic::CancelOk {
            consumer_tag: tag.into(),
        };
        conn.out
            .method(ch.id, AMQPClass::Basic(basic::AMQPMethod::CancelOk(ok)));
    }
}

pub async fn get(conn: &Rc<Conn>, ch: &Rc<Channel>, g: basic::Get) -> Result<(), AmqpError> {
    let queue = g.queue.as_str().to_string();
    super::declare::check_exclusive(conn, &queue)?;
    super::access::queue(conn, Operation::Read, &queue)?;
    if !g.no_ack && ch.unacked.borrow().len() >= UNACKED_MAX {
        return Err(AmqpError::new(
            errors::PRECONDITION_FAILED,
            format!("{UNACKED_MAX} deliveries are unacked on this channel; ack some first"),
        ));
    }
    let got = conn
        .engine
        .receive(&queue, 1, 0, g.no_ack)
        .await
        .map_err(not_found(&queue))?;
    let m = &got.messages;
    if m.is_empty() {
        let empty = basic::GetEmpty {};
        conn.out
            .method(ch.id, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(empty)));
        return Ok(());
    }
    let tag = ch.next_tag.get();
    ch.next_tag.set(tag + 1);
    if !g.no_ack {
        ch.unacked.borrow_mut().insert(
            tag,
            Unacked {
                queue: queue.as_str().into(),
                lease: Lease::Engine {
                    handle: m.handles[0],
                    _sub: None,
                },
            },
        );
    }
    let remaining = conn
        .engine
        .queue_stats(&queue)
        .await
        .map(|s| s.ready)
        .unwrap_or(0);
    let headers = m.extras.first().map(|x| &x.headers[..]).unwrap_or(&[]);
    let (exchange, routing_key) = routing(headers, &queue);
    let ok = basic::GetOk {
        delivery_tag: tag,
        redelivered: m.deliveries[0] > 1,
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        message_count: u32::try_from(remaining).unwrap_or(u32::MAX),
    };
    let properties = props::from_headers(headers, m.priorities[0]);
    let frame_max = conn.frame_max.get();
    let body = got.bodies.slice(0..m.lens[0] as usize);
    conn.out.push(|b| {
        frames::encode_method(b, ch.id, AMQPClass::Basic(basic::AMQPMethod::GetOk(ok)));
        frames::encode_content(b, ch.id, properties, &body, frame_max);
    });
    Ok(())
}

/// Takes the unacked deliveries `tag` names (with `multiple`, every one up to it; tag 0
/// with `multiple`: all).
fn take(ch: &Channel, tag: u64, multiple: bool) -> Result<Vec<Unacked>, AmqpError> {
    let mut unacked = ch.unacked.borrow_mut();
    let taken: Vec<Unacked> = if multiple {
        if tag == 0 {
            std::mem::take(&mut *unacked).into_values().collect()
        } else {
            let rest = unacked.split_off(&(tag + 1));
            std::mem::replace(&mut *unacked, rest)
                .into_values()
                .collect()
        }
    } else {
        unacked.remove(&tag).into_iter().collect()
    };
    if taken.is_empty() && !(multiple && tag == 0) {
        return Err(AmqpError::new(
            errors::PRECONDITION_FAILED,
            format!("unknown delivery tag {tag}"),
        ));
    }
    Ok(taken)
}

pub fn ack(conn: &Rc<Conn>, ch: &Rc<Channel>, tag: u64, multiple: bool) -> Result<(), AmqpError> {
    let taken = take(ch, tag, multiple)?;
    settle(conn, ch, taken, |handles| Settle::Ack { handles });
    Ok(())
}

pub fn reject(
    conn: &Rc<Conn>,
    ch: &Rc<Channel>,
    tag: u64,
    multiple: bool,
    requeue: bool,
) -> Result<(), AmqpError> {
    let taken = take(ch, tag, multiple)?;
    if requeue {
        settle(conn, ch, taken, |handles| Settle::Requeue { handles });
    } else {
        settle(conn, ch, taken, |handles| Settle::Reject { handles });
    }
    Ok(())
}

/// Settles `taken` per queue in a task; the subscriptions they hold live until it is
/// done, so that a cancelled consumer's leases are settled, not returned.
fn settle(conn: &Rc<Conn>, ch: &Rc<Channel>, taken: Vec<Unacked>, how: fn(Vec<u64>) -> Settle) {
    ch.credit.notify(usize::MAX);
    if taken.is_empty() {
        return;
    }
    let conn = conn.clone();
    spawn_local(async move { settle_now(&conn, taken, how).await }).detach();
}

async fn settle_now(conn: &Conn, taken: Vec<Unacked>, how: fn(Vec<u64>) -> Settle) {
    let mut by_queue: BTreeMap<Rc<str>, Vec<u64>> = BTreeMap::new();
    for u in &taken {
        if let Lease::Engine { handle, .. } = u.lease {
            by_queue.entry(u.queue.clone()).or_default().push(handle);
        }
    }
    for (queue, handles) in by_queue {
        if let Err(e) = conn.engine.settle(&queue, how(handles)).await {
            // A lease that timed out was redelivered already; nothing to undo.
            tracing::debug!(%queue, "settling AMQP deliveries: {e}");
        }
    }
    drop(taken);
}

/// `basic.recover`: every unacked delivery returns to its queue (redelivered).
pub async fn recover(conn: &Rc<Conn>, ch: &Rc<Channel>, _requeue: bool) {
    let taken: Vec<Unacked> = std::mem::take(&mut *ch.unacked.borrow_mut())
        .into_values()
        .collect();
    ch.credit.notify(usize::MAX);
    settle_now(conn, taken, |handles| Settle::Requeue { handles }).await;
}

/// The channel is closing: consumers stop and unacked deliveries return.
pub async fn release(conn: &Rc<Conn>, ch: &Rc<Channel>) {
    let consumers: Vec<Consumer> = ch.consumers.borrow_mut().drain().map(|(_, c)| c).collect();
    drop(consumers);
    recover(conn, ch, true).await;
}
