//! The `exchange.*` and `queue.*` methods: declarations (with RabbitMQ's `x-` arguments
//! as engine settings), bindings, purge and delete.

use super::channel::Channel;
use super::connection::Conn;
use super::consume::{generated_name, not_found, AMQP_LEASE_MS};
use super::errors::{self, AmqpError};
use super::{access, stream};
use crate::engine::{
    BindTarget, Binding, EngineError, ExchangeChange, ExchangeKind, ExchangeMeta, Overflow,
    QueueConfig,
};
use amq_protocol::protocol::{exchange, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};
use peregrine_shards::security::Operation;
use std::rc::Rc;

pub async fn exchange_method(
    conn: &Rc<Conn>,
    ch: &Rc<Channel>,
    m: exchange::AMQPMethod,
) -> Result<(), AmqpError> {
    let reply = |nowait: bool, method: exchange::AMQPMethod| {
        if !nowait {
            conn.out.method(ch.id, AMQPClass::Exchange(method));
        }
    };
    match m {
        exchange::AMQPMethod::Declare(d) => {
            let name = d.exchange.as_str();
            if d.passive {
                if !name.is_empty() {
                    access::exchange(conn, Operation::Describe, name)?;
                }
                if name.is_empty() || conn.engine.exchange(name).is_some() {
                    let ok = exchange::DeclareOk {};
                    reply(d.nowait, exchange::AMQPMethod::DeclareOk(ok));
                    return Ok(());
                }
                return Err(no_exchange(name));
            }
            check_exchange_name(name)?;
            access::exchange(conn, Operation::Create, name)?;
            let kind = exchange_kind(d.kind.as_str(), &d.arguments)?;
            let alternate = match d.arguments.inner().get("alternate-exchange") {
                Some(v) => Some(text(v).ok_or_else(|| {
                    AmqpError::new(
                        errors::PRECONDITION_FAILED,
                        "invalid arg 'alternate-exchange': expected a string",
                    )
                })?),
                None => None,
            };
            let meta = ExchangeMeta {
                kind,
                durable: d.durable,
                auto_delete: d.auto_delete,
                internal: d.internal,
                alternate,
                delayed: d.kind.as_str() == "x-delayed-message",
            };
            let change = ExchangeChange::Declare {
                name: name.to_string(),
                meta,
            };
            conn.engine
                .change_exchanges(change)
                .await
                .map_err(|e| match e {
                    EngineError::PreconditionFailed(_) => AmqpError::new(
                        errors::PRECONDITION_FAILED,
                        format!("inequivalent arg for exchange '{name}' in vhost '/': {e}"),
                    ),
                    e => AmqpError::from(e),
                })?;
            let ok = exchange::DeclareOk {};
            reply(d.nowait, exchange::AMQPMethod::DeclareOk(ok));
            Ok(())
        }
        exchange::AMQPMethod::Delete(d) => {
            let name = d.exchange.as_str();
            check_exchange_name(name)?;
            access::exchange(conn, Operation::Delete, name)?;
            let change = ExchangeChange::Delete {
                name: name.to_string(),
                if_unused: d.if_unused,
            };
            match conn.engine.change_exchanges(change).await {
                // Deleting what is not there is fine in 0-9-1 (RabbitMQ agrees).
                Ok(()) | Err(EngineError::UnknownExchange(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let ok = exchange::DeleteOk {};
            reply(d.nowait, exchange::AMQPMethod::DeleteOk(ok));
            Ok(())
        }
        exchange::AMQPMethod::Bind(b) => {
            let binding = binding(
                b.source.as_str(),
                BindTarget::Exchange(b.destination.as_str().to_string()),
                b.routing_key.as_str(),
                &b.arguments,
            )?;
            access::exchange(conn, Operation::Write, b.destination.as_str())?;
            access::exchange(conn, Operation::Read, b.source.as_str())?;
            if conn.engine.exchange(b.destination.as_str()).is_none() {
                return Err(no_exchange(b.destination.as_str()));
            }
            bind(conn, ExchangeChange::Bind(binding)).await?;
            reply(b.nowait, exchange::AMQPMethod::BindOk(exchange::BindOk {}));
            Ok(())
        }
        exchange::AMQPMethod::Unbind(u) => {
            let binding = binding(
                u.source.as_str(),
                BindTarget::Exchange(u.destination.as_str().to_string()),
                u.routing_key.as_str(),
                &u.arguments,
            )?;
            access::exchange(conn, Operation::Write, u.destination.as_str())?;
            access::exchange(conn, Operation::Read, u.source.as_str())?;
            unbind(conn, binding).await?;
            let ok = exchange::UnbindOk {};
            reply(u.nowait, exchange::AMQPMethod::UnbindOk(ok));
            Ok(())
        }
        _ => Err(AmqpError::new(
            errors::COMMAND_INVALID,
            "a server-to-client exchange method from the client",
        )),
    }
}

fn no_exchange(name: &str) -> AmqpError {
    AmqpError::new(
        errors::NOT_FOUND,
        format!("no exchange '{name}' in vhost '/'"),
    )
}

/// The default exchange and `amq.*` names are the broker's.
fn check_exchange_name(name: &str) -> Result<(), AmqpError> {
    if name.is_empty() || name.starts_with("amq.") {
        return Err(AmqpError::new(
            errors::ACCESS_REFUSED,
            format!("operation not permitted on exchange '{name}' in vhost '/'"),
        ));
    }
    Ok(())
}

/// Another connection's exclusive queue is locked (405), as in RabbitMQ.
pub fn check_exclusive(conn: &Conn, queue: &str) -> Result<(), AmqpError> {
    match conn.engine.queue_config(queue).and_then(|c| c.exclusive) {
        Some(owner) if owner != conn.id => Err(AmqpError::new(
            errors::RESOURCE_LOCKED,
            format!(
                "cannot obtain exclusive access to locked queue '{queue}' in vhost '/'. It \
                 could be originally declared on another connection or the exclusive \
                 property value does not match that of the original declaration."
            ),
        )),
        _ => Ok(()),
    }
}

fn exchange_kind(kind: &str, args: &FieldTable) -> Result<ExchangeKind, AmqpError> {
    let kind = match kind {
        "x-delayed-message" => match args.inner().get("x-delayed-type") {
            Some(v) => text(v).unwrap_or_default(),
            None => {
                return Err(AmqpError::new(
                    errors::PRECONDITION_FAILED,
                    "Invalid argument, 'x-delayed-type' must be an existing exchange type",
                ))
            }
        },
        k => k.to_string(),
    };
    match kind.as_str() {
        "direct" => Ok(ExchangeKind::Direct),
        "fanout" => Ok(ExchangeKind::Fanout),
        "topic" => Ok(ExchangeKind::Topic),
        "headers" => Ok(ExchangeKind::Headers),
        other => Err(AmqpError::new(
            errors::COMMAND_INVALID,
            format!("unknown exchange type '{other}'"),
        )),
    }
}

pub async fn queue_method(
    conn: &Rc<Conn>,
    ch: &Rc<Channel>,
    m: queue::AMQPMethod,
) -> Result<(), AmqpError> {
    let reply = |nowait: bool, method: queue::AMQPMethod| {
        if !nowait {
            conn.out.method(ch.id, AMQPClass::Queue(method));
        }
    };
    match m {
        queue::AMQPMethod::Declare(d) => {
            let mut name = d.queue.as_str().to_string();
            check_exclusive(conn, &name)?;
            if d.passive {
                access::queue(conn, Operation::Describe, &name)?;
                let stats = match conn.engine.queue_stats(&name).await {
                    Err(EngineError::UnknownQueue(_)) if conn.engine.topic_exists(&name) => {
                        reply(d.nowait, declare_ok(&name, 0, 0));
                        return Ok(());
                    }
                    stats => stats.map_err(not_found(&name))?,
                };
                reply(d.nowait, declare_ok(&name, stats.ready, stats.consumers));
                return Ok(());
            }
            if name.is_empty() {
                name = generated_name("amq.gen-");
            } else if name.starts_with("amq.") {
                return Err(AmqpError::new(
                    errors::ACCESS_REFUSED,
                    format!("queue name '{name}' contains reserved prefix 'amq.*'"),
                ));
            }
            access::queue(conn, Operation::Create, &name)?;
            if stream::is_stream(&d.arguments) {
                stream::declare(conn, &name, &d.arguments).await?;
                reply(d.nowait, declare_ok(&name, 0, 0));
                return Ok(());
            }
            let mut config = queue_config(&d.arguments)?;
            config.durable = d.durable;
            config.auto_delete = d.auto_delete;
            config.exclusive = d.exclusive.then(|| conn.id.clone());
            conn.engine
                .declare_queue(&name, config)
                .await
                .map_err(|e| match e {
                    EngineError::QueueMismatch(m) => AmqpError::new(
                        errors::PRECONDITION_FAILED,
                        format!("inequivalent arg for queue '{name}' in vhost '/': {m}"),
                    ),
                    e => AmqpError::from(e),
                })?;
            if d.exclusive && !conn.exclusive.borrow().contains(&name) {
                conn.exclusive.borrow_mut().push(name.clone());
            }
            let stats = conn.engine.queue_stats(&name).await?;
            reply(d.nowait, declare_ok(&name, stats.ready, stats.consumers));
            Ok(())
        }
        queue::AMQPMethod::Bind(b) => {
            check_exclusive(conn, b.queue.as_str())?;
            access::queue(conn, Operation::Write, b.queue.as_str())?;
            access::exchange(conn, Operation::Read, b.exchange.as_str())?;
            let mut binding = binding(
                b.exchange.as_str(),
                BindTarget::Queue(b.queue.as_str().to_string()),
                b.routing_key.as_str(),
                &b.arguments,
            )?;
            to_stream(conn, &mut binding);
            bind(conn, ExchangeChange::Bind(binding)).await?;
            reply(b.nowait, queue::AMQPMethod::BindOk(queue::BindOk {}));
            Ok(())
        }
        queue::AMQPMethod::Unbind(u) => {
            check_exclusive(conn, u.queue.as_str())?;
            access::queue(conn, Operation::Write, u.queue.as_str())?;
            access::exchange(conn, Operation::Read, u.exchange.as_str())?;
            let mut binding = binding(
                u.exchange.as_str(),
                BindTarget::Queue(u.queue.as_str().to_string()),
                u.routing_key.as_str(),
                &u.arguments,
            )?;
            to_stream(conn, &mut binding);
            unbind(conn, binding).await?;
            reply(false, queue::AMQPMethod::UnbindOk(queue::UnbindOk {}));
            Ok(())
        }
        queue::AMQPMethod::Purge(p) => {
            let name = p.queue.as_str();
            check_exclusive(conn, name)?;
            access::queue(conn, Operation::Delete, name)?;
            let purged = conn
                .engine
                .purge_queue(name)
                .await
                .map_err(not_found(name))?;
            let ok = queue::PurgeOk {
                message_count: u32::try_from(purged).unwrap_or(u32::MAX),
            };
            reply(p.nowait, queue::AMQPMethod::PurgeOk(ok));
            Ok(())
        }
        queue::AMQPMethod::Delete(d) => {
            let name = d.queue.as_str();
            check_exclusive(conn, name)?;
            access::queue(conn, Operation::Delete, name)?;
            let deleted = conn
                .engine
                .delete_queue_if(name, d.if_unused, d.if_empty)
                .await;
            let count = match deleted {
                Ok(count) => count,
                Err(EngineError::UnknownQueue(_)) if conn.engine.topic_exists(name) => {
                    conn.engine.delete_topic(name).await?;
                    0
                }
                // Deleting what is not there answers 0 (as RabbitMQ does).
                Err(EngineError::UnknownQueue(_)) => 0,
                Err(e) => return Err(e.into()),
            };
            conn.exclusive.borrow_mut().retain(|q| q != name);
            let ok = queue::DeleteOk {
                message_count: u32::try_from(count).unwrap_or(u32::MAX),
            };
            reply(d.nowait, queue::AMQPMethod::DeleteOk(ok));
            Ok(())
        }
        _ => Err(AmqpError::new(
            errors::COMMAND_INVALID,
            "a server-to-client queue method from the client",
        )),
    }
}

/// A binding to a stream targets its topic.
fn to_stream(conn: &Conn, binding: &mut Binding) {
    if let BindTarget::Queue(q) = &binding.target {
        if conn.engine.queue_config(q).is_none() && conn.engine.topic_exists(q) {
            binding.target = BindTarget::Topic(q.clone());
        }
    }
}

async fn unbind(conn: &Conn, binding: Binding) -> Result<(), AmqpError> {
    match conn
        .engine
        .change_exchanges(ExchangeChange::Unbind(binding))
        .await
    {
        // Unbinding what is not bound is fine (RabbitMQ agrees).
        Ok(()) | Err(EngineError::InvalidRequest(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn bind(conn: &Conn, change: ExchangeChange) -> Result<(), AmqpError> {
    // A missing exchange or queue is 404 by the one mapping (`errors::code`).
    Ok(conn.engine.change_exchanges(change).await?)
}

fn declare_ok(name: &str, ready: u64, consumers: u64) -> queue::AMQPMethod {
    queue::AMQPMethod::DeclareOk(queue::DeclareOk {
        queue: name.into(),
        message_count: u32::try_from(ready).unwrap_or(u32::MAX),
        consumer_count: u32::try_from(consumers).unwrap_or(u32::MAX),
    })
}

fn binding(
    exchange: &str,
    target: BindTarget,
    key: &str,
    args: &FieldTable,
) -> Result<Binding, AmqpError> {
    if exchange.is_empty() {
        return Err(AmqpError::new(
            errors::ACCESS_REFUSED,
            "operation not permitted on the default exchange",
        ));
    }
    let mut match_all = true;
    let mut headers = Vec::new();
    for (k, v) in args {
        match k.as_str() {
            "x-match" => {
                match_all = match text(v).as_deref() {
                    Some("all") | Some("all-with-x") => true,
                    Some("any") | Some("any-with-x") => false,
                    _ => return Err(AmqpError::new(
                        errors::PRECONDITION_FAILED,
                        "Invalid x-match field value; expected all, any, all-with-x, or any-with-x",
                    )),
                }
            }
            name if name.starts_with("x-") => {}
            name => {
                if let Some(t) = text(v) {
                    headers.push((name.to_string(), t));
                }
            }
        }
    }
    Ok(Binding {
        exchange: exchange.to_string(),
        target,
        routing_key: key.to_string(),
        headers,
        match_all,
    })
}

/// A scalar argument as text (the form message headers are matched in).
pub fn text(v: &AMQPValue) -> Option<String> {
    Some(match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        _ => return int(v).map(|i| i.to_string()),
    })
}

/// An integer argument of any width.
pub fn int(v: &AMQPValue) -> Option<i64> {
    Some(match *v {
        AMQPValue::ShortShortInt(i) => i64::from(i),
        AMQPValue::ShortShortUInt(i) => i64::from(i),
        AMQPValue::ShortInt(i) => i64::from(i),
        AMQPValue::ShortUInt(i) => i64::from(i),
        AMQPValue::LongInt(i) => i64::from(i),
        AMQPValue::LongUInt(i) => i64::from(i),
        AMQPValue::LongLongInt(i) => i,
        AMQPValue::Timestamp(i) => i64::try_from(i).ok()?,
        _ => return None,
    })
}

/// RabbitMQ's queue arguments as engine settings.
pub fn queue_config(args: &FieldTable) -> Result<QueueConfig, AmqpError> {
    let mut config = QueueConfig {
        visibility_timeout_ms: AMQP_LEASE_MS,
        ..QueueConfig::default()
    };
    let invalid = |name: &str, why: &str| {
        AmqpError::new(
            errors::PRECONDITION_FAILED,
            format!("invalid arg '{name}' for queue: {why}"),
        )
    };
    for (k, v) in args {
        let name = k.as_str();
        let non_negative = || {
            int(v)
                .filter(|i| *i >= 0)
                .map(|i| i as u64)
                .ok_or_else(|| invalid(name, "expected a non-negative integer"))
        };
        match name {
            "x-max-priority" => {
                let p = non_negative()?;
                config.max_priority = u8::try_from(p.min(255)).unwrap_or(255);
            }
            "x-message-ttl" => config.ttl_ms = Some(non_negative()?),
            "x-expires" => match non_negative()? {
                0 => return Err(invalid(name, "expected a positive integer")),
                ms => config.expires_ms = Some(ms),
            },
            "x-dead-letter-routing-key" => {
                let key = text(v).ok_or_else(|| invalid(name, "expected a string"))?;
                config.dead_letter_routing_key = Some(key);
            }
            "x-max-length" => config.max_length = Some(non_negative()?),
            "x-max-length-bytes" => config.max_bytes = Some(non_negative()?),
            "x-delivery-limit" | "x-max-retries" => {
                // "Unsuccessful deliveries allowed": dead-lettered on the one after.
                let limit = non_negative()?;
                config.max_deliveries = Some(u32::try_from(limit + 1).unwrap_or(u32::MAX));
            }
            "x-dead-letter-exchange" => {
                let dlx = text(v).ok_or_else(|| invalid(name, "expected a string"))?;
                config.dead_letter = (!dlx.is_empty()).then_some(dlx);
            }
            "x-overflow" => {
                config.overflow = match text(v).as_deref() {
                    Some("drop-head") => Overflow::DropHead,
                    Some("reject-publish") | Some("reject-publish-dlx") => Overflow::RejectPublish,
                    _ => return Err(invalid(name, "expected drop-head or reject-publish")),
                }
            }
            "x-queue-type" => match text(v).as_deref() {
                Some("classic") | Some("quorum") => {}
                _ => return Err(invalid(name, "expected classic or quorum")),
            },
            // Accepted and not applicable to this engine (or not supported yet).
            _ => {}
        }
    }
    Ok(config)
}
