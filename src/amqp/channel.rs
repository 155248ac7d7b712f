//! One AMQP channel: its state (open, closing), the content of the publish it is
//! assembling, its consumers, unacked deliveries and publisher confirms, and the
//! dispatch of its methods to `declare`, `publish` and `consume`.
//!
//! Methods run in the order they arrive. Publishes are pipelined (batched or each a
//! task of its own, in order; see `publish`); any other synchronous method first sends
//! the channel's batch and waits for its publishes to finish, so that it sees their
//! effect (a `basic.get` after a publish finds the message).

use super::connection::{Conn, Incoming};
use super::consume::{Consumer, Unacked};
use super::errors::{self, AmqpError};
use super::frames::{self, BodyParts};
use super::{consume, declare, publish};
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, channel, confirm, AMQPClass};
use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// A publish whose content is still arriving.
pub struct Assembly {
    pub method: basic::Publish,
    pub properties: Option<AMQPProperties>,
    pub size: u64,
    pub body: BodyParts,
}

pub struct Channel {
    pub id: u16,
    /// Closed by the broker (a channel error): frames are dropped until `close-ok`.
    closing: Cell<bool>,
    pub assembly: RefCell<Option<Assembly>>,
    // ---- publishing ----
    pub confirm: Cell<bool>,
    /// The sequence number the next confirmed publish gets (from 1).
    pub next_publish: Cell<u64>,
    /// Publishes finished out of order, waiting for the ones before them: seq -> ack.
    pub confirmed: RefCell<BTreeMap<u64, bool>>,
    /// The lowest sequence number not yet confirmed to the client.
    pub confirm_floor: Cell<u64>,
    /// A task to send confirms is queued.
    pub confirm_flush: Cell<bool>,
    /// Publishes to one queue waiting to be sent as one (`publish::Batch`).
    pub batch: RefCell<Option<publish::Batch>>,
    pub publishing: Cell<usize>,
    pub publish_idle: Event,
    /// The private queue behind `amq.rabbitmq.reply-to` for this channel, once consumed.
    pub reply_queue: RefCell<Option<String>>,
    // ---- consuming ----
    pub next_tag: Cell<u64>,
    pub unacked: RefCell<BTreeMap<u64, Unacked>>,
    pub consumers: RefCell<HashMap<String, Consumer>>,
    /// `basic.qos` prefetch for new consumers (global=false) and for the channel.
    pub prefetch_consumer: Cell<u16>,
    pub prefetch_channel: Cell<u16>,
    /// Wakes consumers when credit returns (acks, a larger qos).
    pub credit: Event,
}

impl Channel {
    pub fn new(id: u16) -> Channel {
        Channel {
            id,
            closing: Cell::new(false),
            assembly: RefCell::new(None),
            confirm: Cell::new(false),
            next_publish: Cell::new(1),
            confirmed: RefCell::new(BTreeMap::new()),
            confirm_floor: Cell::new(1),
            confirm_flush: Cell::new(false),
            batch: RefCell::new(None),
            publishing: Cell::new(0),
            publish_idle: Event::new(),
            reply_queue: RefCell::new(None),
            next_tag: Cell::new(1),
            unacked: RefCell::new(BTreeMap::new()),
            consumers: RefCell::new(HashMap::new()),
            prefetch_consumer: Cell::new(0),
            prefetch_channel: Cell::new(0),
            credit: Event::new(),
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Whether the channel may take one more delivery under its channel-wide prefetch.
    pub fn has_credit(&self) -> bool {
        let limit = usize::from(self.prefetch_channel.get());
        limit == 0 || self.unacked.borrow().len() < limit
    }

    /// Handles one frame for this channel; an error returned is a connection error
    /// (channel errors are answered here with `channel.close`).
    pub async fn handle(
        self: &Rc<Self>,
        conn: &Rc<Conn>,
        incoming: Incoming,
    ) -> Result<(), AmqpError> {
        if self.closing.get() {
            // After our channel.close only close-ok (or the client's own close) counts.
            if let Incoming::Method(AMQPClass::Channel(m)) = incoming {
                match m {
                    channel::AMQPMethod::CloseOk(_) => {
                        conn.channels.borrow_mut().remove(&self.id);
                    }
                    channel::AMQPMethod::Close(_) => {
                        let ok = channel::CloseOk {};
                        conn.out.method(
                            self.id,
                            AMQPClass::Channel(channel::AMQPMethod::CloseOk(ok)),
                        );
                    }
                    _ => {}
                }
            }
            return Ok(());
        }
        let result = match incoming {
            Incoming::Method(method) => self.method(conn, method).await,
            Incoming::Header(payload) => self.content_header(conn, &payload),
            Incoming::Body(payload) => self.content_body(conn, payload),
        };
        match result {
            Err(e) if e.is_hard() => Err(e),
            Err(e) => {
                self.fail(conn, e);
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// A channel error: `channel.close` with `e`; what the channel holds is released.
    pub fn fail(self: &Rc<Self>, conn: &Rc<Conn>, e: AmqpError) {
        if self.closing.get() || conn.ending.get() {
            return;
        }
        tracing::debug!(peer = %conn.peer, channel = self.id, code = e.code, "AMQP channel error: {}", e.text);
        self.closing.set(true);
        let close = channel::Close {
            reply_code: e.code,
            reply_text: e.reply_text().into(),
            class_id: e.class_id,
            method_id: e.method_id,
        };
        conn.out.method(
            self.id,
            AMQPClass::Channel(channel::AMQPMethod::Close(close)),
        );
        let (ch, conn) = (self.clone(), conn.clone());
        crate::runtime::spawn_local(async move { ch.release(&conn).await }).detach();
    }

    async fn method(self: &Rc<Self>, conn: &Rc<Conn>, method: AMQPClass) -> Result<(), AmqpError> {
        let at = (method.get_amqp_class_id(), method.get_amqp_method_id());
        if self.assembly.borrow().is_some() {
            return Err(AmqpError::new(
                errors::UNEXPECTED_FRAME,
                "a method frame in the middle of a publish's content",
            )
            .at(at));
        }
        let settles = matches!(
            method,
            AMQPClass::Basic(
                basic::AMQPMethod::Publish(_)
                    | basic::AMQPMethod::Ack(_)
                    | basic::AMQPMethod::Nack(_)
                    | basic::AMQPMethod::Reject(_)
            )
        );
        if !settles {
            // Whatever else comes sees the publishes before it.
            publish::flush_batch(conn, self);
        }
        let result = match method {
            AMQPClass::Basic(basic::AMQPMethod::Publish(p)) => {
                *self.assembly.borrow_mut() = Some(Assembly {
                    method: p,
                    properties: None,
                    size: 0,
                    body: BodyParts::default(),
                });
                Ok(())
            }
            AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                consume::ack(conn, self, a.delivery_tag, a.multiple)
            }
            AMQPClass::Basic(basic::AMQPMethod::Nack(n)) => {
                consume::reject(conn, self, n.delivery_tag, n.multiple, n.requeue)
            }
            AMQPClass::Basic(basic::AMQPMethod::Reject(r)) => {
                consume::reject(conn, self, r.delivery_tag, false, r.requeue)
            }
            AMQPClass::Channel(m) => self.channel_method(conn, m).await,
            other => {
                self.publishes_done().await;
                self.sync_method(conn, other).await
            }
        };
        result.map_err(|e| e.at(at))
    }

    async fn channel_method(
        self: &Rc<Self>,
        conn: &Rc<Conn>,
        m: channel::AMQPMethod,
    ) -> Result<(), AmqpError> {
        match m {
            channel::AMQPMethod::Open(_) => Err(AmqpError::new(
                errors::CHANNEL_ERROR,
                format!("second 'channel.open' seen on channel {}", self.id),
            )),
            channel::AMQPMethod::Close(_) => {
                // Publishes already made are confirmed before close-ok.
                self.publishes_done().await;
                publish::flush_confirms(conn, self);
                conn.channels.borrow_mut().remove(&self.id);
                self.release(conn).await;
                let ok = channel::CloseOk {};
                conn.out.method(
                    self.id,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(ok)),
                );
                Ok(())
            }
            // close-ok for a close we did not send: nothing to do.
            channel::AMQPMethod::CloseOk(_) => Ok(()),
            channel::AMQPMethod::Flow(f) => {
                if !f.active {
                    // As RabbitMQ answers it: consumers pause with basic.qos instead.
                    return Err(AmqpError::new(errors::NOT_IMPLEMENTED, "active=false"));
                }
                self.credit.notify(usize::MAX);
                let ok = channel::FlowOk { active: f.active };
                conn.out
                    .method(self.id, AMQPClass::Channel(channel::AMQPMethod::FlowOk(ok)));
                Ok(())
            }
            channel::AMQPMethod::FlowOk(_) | channel::AMQPMethod::OpenOk(_) => Err(AmqpError::new(
                errors::COMMAND_INVALID,
                "a server-to-client channel method from the client",
            )),
        }
    }

    async fn sync_method(
        self: &Rc<Self>,
        conn: &Rc<Conn>,
        method: AMQPClass,
    ) -> Result<(), AmqpError> {
        match method {
            AMQPClass::Exchange(m) => declare::exchange_method(conn, self, m).await,
            AMQPClass::Queue(m) => declare::queue_method(conn, self, m).await,
            AMQPClass::Basic(m) => match m {
                basic::AMQPMethod::Qos(q) => {
                    if q.global {
                        self.prefetch_channel.set(q.prefetch_count);
                    } else {
                        self.prefetch_consumer.set(q.prefetch_count);
                    }
                    self.credit.notify(usize::MAX);
                    let ok = basic::QosOk {};
                    conn.out
                        .method(self.id, AMQPClass::Basic(basic::AMQPMethod::QosOk(ok)));
                    Ok(())
                }
                basic::AMQPMethod::Consume(c) => consume::consume(conn, self, c).await,
                basic::AMQPMethod::Cancel(c) => {
                    consume::cancel(conn, self, c.consumer_tag.as_str(), c.nowait);
                    Ok(())
                }
                basic::AMQPMethod::Get(g) => consume::get(conn, self, g).await,
                basic::AMQPMethod::Recover(r) => {
                    consume::recover(conn, self, r.requeue).await;
                    let ok = basic::RecoverOk {};
                    conn.out
                        .method(self.id, AMQPClass::Basic(basic::AMQPMethod::RecoverOk(ok)));
                    Ok(())
                }
                basic::AMQPMethod::RecoverAsync(r) => {
                    consume::recover(conn, self, r.requeue).await;
                    Ok(())
                }
                _ => Err(AmqpError::new(
                    errors::COMMAND_INVALID,
                    "a server-to-client basic method from the client",
                )),
            },
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                self.confirm.set(true);
                if !s.nowait {
                    let ok = confirm::SelectOk {};
                    conn.out.method(
                        self.id,
                        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(ok)),
                    );
                }
                Ok(())
            }
            AMQPClass::Tx(_) => Err(AmqpError::new(
                errors::NOT_IMPLEMENTED,
                "transactions (tx.*) are not supported; use publisher confirms",
            )),
            AMQPClass::Access(_) => {
                let ok = amq_protocol::protocol::access::RequestOk {};
                conn.out.method(
                    self.id,
                    AMQPClass::Access(amq_protocol::protocol::access::AMQPMethod::RequestOk(ok)),
                );
                Ok(())
            }
            _ => Err(AmqpError::new(
                errors::COMMAND_INVALID,
                "a method that is not valid on a channel",
            )),
        }
    }

    fn content_header(self: &Rc<Self>, conn: &Rc<Conn>, payload: &[u8]) -> Result<(), AmqpError> {
        let header = frames::decode_content_header(payload)
            .map_err(|e| AmqpError::new(errors::FRAME_ERROR, e))?;
        let max = u64::from(conn.engine.config().max_frame_bytes);
        {
            let mut slot = self.assembly.borrow_mut();
            let Some(a) = slot.as_mut() else {
                return Err(AmqpError::new(
                    errors::UNEXPECTED_FRAME,
                    "content header without a basic.publish",
                ));
            };
            if a.properties.is_some() {
                return Err(AmqpError::new(
                    errors::UNEXPECTED_FRAME,
                    "a second content header for one publish",
                ));
            }
            if header.class_id != 60 {
                return Err(AmqpError::new(
                    errors::FRAME_ERROR,
                    format!("content header of class {}, not basic", header.class_id),
                ));
            }
            if header.body_size > max {
                drop(slot.take());
                return Err(AmqpError::new(
                    errors::PRECONDITION_FAILED,
                    format!(
                        "message size {} is larger than configured max size {max}",
                        header.body_size
                    ),
                )
                .at((60, 40)));
            }
            a.properties = Some(header.properties);
            a.size = header.body_size;
            if a.size > 0 {
                return Ok(());
            }
        }
        self.complete(conn)
    }

    fn content_body(
        self: &Rc<Self>,
        conn: &Rc<Conn>,
        payload: bytes::Bytes,
    ) -> Result<(), AmqpError> {
        {
            let mut slot = self.assembly.borrow_mut();
            let Some(a) = slot.as_mut().filter(|a| a.properties.is_some()) else {
                return Err(AmqpError::new(
                    errors::UNEXPECTED_FRAME,
                    "content body without a basic.publish and its header",
                ));
            };
            if a.body.len() + payload.len() as u64 > a.size {
                return Err(AmqpError::new(
                    errors::FRAME_ERROR,
                    format!("body frames carry more than the {} bytes declared", a.size),
                ));
            }
            a.body.push(payload);
            if a.body.len() < a.size {
                return Ok(());
            }
        }
        self.complete(conn)
    }

    fn complete(self: &Rc<Self>, conn: &Rc<Conn>) -> Result<(), AmqpError> {
        let Some(a) = self.assembly.borrow_mut().take() else {
            return Ok(());
        };
        publish::start(conn, self, a)
    }

    /// Waits until every publish this channel started has finished.
    pub async fn publishes_done(&self) {
        crate::runtime::until(&self.publish_idle, || self.publishing.get() == 0).await;
    }

    /// The channel ends: consumers stop, unacked messages return to their queues, the
    /// direct reply-to queue goes.
    pub async fn release(self: &Rc<Self>, conn: &Rc<Conn>) {
        self.assembly.borrow_mut().take();
        // Publishes that arrived before the end are made (RabbitMQ does too).
        publish::flush_batch(conn, self);
        self.publishes_done().await;
        consume::release(conn, self).await;
        let reply = self.reply_queue.borrow_mut().take();
        if let Some(q) = reply {
            if let Err(e) = conn.engine.delete_queue(&q).await {
                tracing::debug!(queue = %q, "deleting a reply-to queue: {e}");
            }
        }
    }
}
