//! Message-queue calls of the native client. Every call goes to the bootstrap
//! connection, and the broker forwards it to the shard that owns the queue.

use super::{unexpected, Client, ClientError};
use crate::native::messages::{
    BindingSpec, ExchangeType, PublishSpec, QueueDelivery, QueueSpec, QueueStatsInfo, Request,
    Response,
};
use bytes::Bytes;

/// Exchanges with their types, and every binding.
pub type ExchangeList = (Vec<(String, ExchangeType)>, Vec<BindingSpec>);

/// A received message with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub delivery: QueueDelivery,
    pub body: Bytes,
}

impl Client {
    pub fn declare_queue(&mut self, spec: QueueSpec) -> Result<(), ClientError> {
        self.call(Request::DeclareQueue(spec), &[]).map(|_| ())
    }

    pub fn delete_queue(&mut self, name: &str) -> Result<(), ClientError> {
        let name = name.to_string();
        self.call(Request::DeleteQueue { name }, &[]).map(|_| ())
    }

    pub fn list_queues(&mut self) -> Result<Vec<QueueSpec>, ClientError> {
        match self.call(Request::ListQueues, &[])?.0 {
            Response::Queues { queues } => Ok(queues),
            other => Err(unexpected("list queues", &other)),
        }
    }

    pub fn queue_stats(&mut self, name: &str) -> Result<QueueStatsInfo, ClientError> {
        let name = name.to_string();
        match self.call(Request::QueueStats { name }, &[])?.0 {
            Response::QueueStats(stats) => Ok(stats),
            other => Err(unexpected("queue stats", &other)),
        }
    }

    /// Drops every ready and delayed message; returns how many.
    pub fn purge_queue(&mut self, name: &str) -> Result<u64, ClientError> {
        let name = name.to_string();
        match self.call(Request::PurgeQueue { name }, &[])?.0 {
            Response::Count { count } => Ok(count),
            other => Err(unexpected("purge", &other)),
        }
    }

    /// Publishes one message; `None` when a FIFO queue dropped it as a duplicate.
    pub fn publish(
        &mut self,
        queue: &str,
        spec: PublishSpec,
        body: &[u8],
    ) -> Result<Option<u64>, ClientError> {
        let request = Request::Publish {
            queue: queue.to_string(),
            spec,
        };
        match self.queue_call(queue, request, &[body])?.0 {
            Response::Published { id } => Ok(id),
            other => Err(unexpected("publish", &other)),
        }
    }

    /// Publishes many messages with the same options in one request (one journal
    /// batch, one fdatasync when durable); returns how many were stored.
    pub fn publish_batch(
        &mut self,
        queue: &str,
        spec: PublishSpec,
        bodies: &[&[u8]],
    ) -> Result<u32, ClientError> {
        let request = batch_request(queue, spec, bodies);
        batch_stored(self.queue_call(queue, request, bodies)?.0)
    }

    /// Pull receive: up to `max` messages, waiting up to `wait_ms` for the first.
    pub fn receive(
        &mut self,
        queue: &str,
        max: u32,
        wait_ms: u32,
        auto_ack: bool,
    ) -> Result<Vec<Received>, ClientError> {
        let request = Request::Receive {
            queue: queue.to_string(),
            max,
            wait_ms,
            auto_ack,
        };
        let (response, payload) = self.queue_call(queue, request, &[])?;
        let Response::Received { messages } = response else {
            return Err(unexpected("receive", &response));
        };
        let messages = messages.into_vec().map_err(ClientError::Protocol)?;
        let mut at = 0usize;
        let mut out = Vec::with_capacity(messages.len());
        for delivery in messages {
            let end = at + delivery.len as usize;
            let body = payload
                .get(at..end)
                .map(|_| payload.slice(at..end))
                .ok_or_else(|| {
                    ClientError::Protocol("receive answer shorter than its bodies".into())
                })?;
            at = end;
            out.push(Received { delivery, body });
        }
        Ok(out)
    }

    pub fn ack(&mut self, queue: &str, handles: &[u64]) -> Result<(), ClientError> {
        let request = Request::Ack {
            queue: queue.to_string(),
            handles: handles.to_vec(),
        };
        self.queue_call(queue, request, &[]).map(|_| ())
    }

    /// Gives leases back: ready again (`requeue`) or dead-lettered as rejected.
    pub fn nack(&mut self, queue: &str, handles: &[u64], requeue: bool) -> Result<(), ClientError> {
        let request = Request::Nack {
            queue: queue.to_string(),
            handles: handles.to_vec(),
            requeue,
        };
        self.queue_call(queue, request, &[]).map(|_| ())
    }

    /// One call about a queue, on the connection `queue_connection` picks.
    fn queue_call(
        &mut self,
        queue: &str,
        request: Request,
        payload: &[&[u8]],
    ) -> Result<(Response, Bytes), ClientError> {
        let (response, payload) = self.queue_connection(queue)?.call(request, payload)?;
        Ok((super::check(response)?, payload))
    }
}

impl Client {
    pub fn declare_exchange(&mut self, name: &str, kind: ExchangeType) -> Result<(), ClientError> {
        let name = name.to_string();
        self.call(Request::DeclareExchange { name, kind }, &[])
            .map(|_| ())
    }

    pub fn delete_exchange(&mut self, name: &str) -> Result<(), ClientError> {
        let name = name.to_string();
        self.call(Request::DeleteExchange { name }, &[]).map(|_| ())
    }

    /// Exchanges with their types, and every binding.
    pub fn list_exchanges(&mut self) -> Result<ExchangeList, ClientError> {
        match self.call(Request::ListExchanges, &[])?.0 {
            Response::Exchanges {
                exchanges,
                bindings,
            } => Ok((exchanges, bindings)),
            other => Err(unexpected("list exchanges", &other)),
        }
    }

    pub fn bind(&mut self, spec: BindingSpec) -> Result<(), ClientError> {
        self.call(Request::Bind(spec), &[]).map(|_| ())
    }

    pub fn unbind(&mut self, spec: BindingSpec) -> Result<(), ClientError> {
        self.call(Request::Unbind(spec), &[]).map(|_| ())
    }

    /// Publishes through an exchange; returns how many queues and topics it reached.
    pub fn publish_to_exchange(
        &mut self,
        exchange: &str,
        routing_key: &str,
        spec: PublishSpec,
        body: &[u8],
    ) -> Result<(u32, u32), ClientError> {
        let request = Request::PublishToExchange {
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            spec,
        };
        match self.call(request, &[body])?.0 {
            Response::Routed { queues, topics } => Ok((queues, topics)),
            other => Err(unexpected("publish", &other)),
        }
    }
}

/// One request publishing `bodies` with the same options.
fn batch_request(queue: &str, spec: PublishSpec, bodies: &[&[u8]]) -> Request {
    Request::PublishBatch {
        queue: queue.to_string(),
        spec,
        lens: bodies.iter().map(|b| b.len() as u32).collect(),
    }
}

/// How many messages a batch publish stored, from its (checked) answer.
fn batch_stored(response: Response) -> Result<u32, ClientError> {
    match response {
        Response::PublishedBatch { stored } => Ok(stored),
        other => Err(unexpected("publish batch", &other)),
    }
}

/// Batch publishes to one queue with several requests in flight on the queue's
/// connection, as a Kafka producer pipelines: one thread keeps the owner shard busy
/// while earlier batches are on their way to disk. Answers are taken oldest first.
pub struct BatchPublisher {
    client: Client,
    queue: String,
    spec: PublishSpec,
    /// Request ids in the order sent.
    in_flight: std::collections::VecDeque<u64>,
    /// Answers that came back ahead of an older one, by request id.
    early: std::collections::HashMap<u64, Result<u32, ClientError>>,
}

impl BatchPublisher {
    pub fn new(client: Client, queue: &str, spec: PublishSpec) -> BatchPublisher {
        BatchPublisher {
            client,
            queue: queue.to_string(),
            spec,
            in_flight: Default::default(),
            early: Default::default(),
        }
    }

    /// Sends one batch without waiting for its answer.
    pub fn send(&mut self, bodies: &[&[u8]]) -> Result<(), ClientError> {
        let request = batch_request(&self.queue, self.spec.clone(), bodies);
        let id = self
            .client
            .queue_connection(&self.queue)?
            .send(request, bodies)?;
        self.in_flight.push_back(id);
        Ok(())
    }

    /// Batches sent whose answer has not been taken yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits for the oldest batch in flight: how many messages it stored; `None` when
    /// nothing is in flight.
    pub fn wait_oldest(&mut self) -> Result<Option<u32>, ClientError> {
        let Some(oldest) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        loop {
            if let Some(answer) = self.early.remove(&oldest) {
                return answer.map(Some);
            }
            let (id, response, _) = self.client.queue_connection(&self.queue)?.recv()?;
            let answer = super::check(response).and_then(batch_stored);
            if id != oldest && !self.in_flight.contains(&id) {
                answer?; // an error about the connection as a whole, say
                return Err(ClientError::Protocol(format!(
                    "answer for unknown request {id}"
                )));
            }
            self.early.insert(id, answer);
        }
    }
}

/// A push subscription on a connection of its own: the broker sends messages as they
/// come, never more than `prefetch` unacked; acks and nacks go on the same connection.
/// Dropping it (or the process dying) gives every unacked message back at once.
///
/// The connection goes to the port of the shard that owns the queue (asked of the
/// bootstrap broker first; the bootstrap address when that port cannot be reached): a
/// subscription on another shard would cross cores with every delivery batch and ack.
pub struct Subscription {
    conn: super::Connection,
    queue: String,
    id: u64,
    buffered: std::collections::VecDeque<Received>,
    /// Ack/nack requests not answered yet, with how many handles each settles.
    pending: std::collections::HashMap<u64, usize>,
    /// Handles whose ack or nack the broker has answered (acks: on disk).
    answered: u64,
}

impl Subscription {
    pub fn open(
        bootstrap: &str,
        queue: &str,
        prefetch: u32,
        auto_ack: bool,
    ) -> Result<Subscription, ClientError> {
        let address = {
            let mut client = Client::connect(bootstrap)?;
            client.set_shard_aware(true);
            client.queue_address(queue, bootstrap)?
        };
        match Subscription::open_at(&address, queue, prefetch, auto_ack) {
            // The owner's own port may not be reachable from here (only the main
            // port published): the bootstrap broker routes instead.
            Err(ClientError::Io(_)) if address != bootstrap => {
                Subscription::open_at(bootstrap, queue, prefetch, auto_ack)
            }
            opened => opened,
        }
    }

    /// `open` through `client`: the subscription's connection is made as the client's
    /// are (TLS, credentials), to the port of the shard that owns the queue.
    pub fn open_with(
        client: &mut Client,
        queue: &str,
        prefetch: u32,
        auto_ack: bool,
    ) -> Result<Subscription, ClientError> {
        let conn = match client.queue_owner_port(queue)? {
            Some((_, port)) => match client.connect_port(port) {
                // Only the main port may be reachable from here: it routes instead.
                Err(ClientError::Io(_)) => client.connect_bootstrap()?,
                connected => connected?,
            },
            None => client.connect_bootstrap()?,
        };
        Subscription::on(conn, queue, prefetch, auto_ack)
    }

    /// `open` on exactly this address (`host:port`), wherever the queue lives.
    pub fn open_at(
        address: &str,
        queue: &str,
        prefetch: u32,
        auto_ack: bool,
    ) -> Result<Subscription, ClientError> {
        let conn = super::Connection::connect(address)?;
        Subscription::on(conn, queue, prefetch, auto_ack)
    }

    fn on(
        mut conn: super::Connection,
        queue: &str,
        prefetch: u32,
        auto_ack: bool,
    ) -> Result<Subscription, ClientError> {
        let request = Request::Subscribe {
            queue: queue.to_string(),
            prefetch,
            auto_ack,
        };
        let id = conn.send(request, &[])?;
        Ok(Subscription {
            conn,
            queue: queue.to_string(),
            id,
            buffered: Default::default(),
            pending: Default::default(),
            answered: 0,
        })
    }

    /// The next message, waiting up to `timeout`; `None` when none came.
    pub fn next(&mut self, timeout: std::time::Duration) -> Result<Option<Received>, ClientError> {
        if let Some(r) = self.buffered.pop_front() {
            return Ok(Some(r));
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !self.conn.wait_readable(left)? {
                return Ok(None);
            }
            let (id, response, payload) = self.conn.recv()?;
            if let Some(handles) = self.pending.remove(&id) {
                super::check(response)?;
                self.answered += handles as u64;
                continue;
            }
            if id != self.id {
                return Err(ClientError::Protocol(format!(
                    "answer for unknown request {id}"
                )));
            }
            let Response::Received { messages } = super::check(response)? else {
                return Err(ClientError::Protocol(
                    "unexpected answer to subscribe".into(),
                ));
            };
            let messages = messages.into_vec().map_err(ClientError::Protocol)?;
            let mut at = 0usize;
            for delivery in messages {
                let end = at + delivery.len as usize;
                if end > payload.len() {
                    return Err(ClientError::Protocol(
                        "delivery shorter than its bodies".into(),
                    ));
                }
                self.buffered.push_back(Received {
                    delivery,
                    body: payload.slice(at..end),
                });
                at = end;
            }
            if let Some(r) = self.buffered.pop_front() {
                return Ok(Some(r));
            }
        }
    }

    /// Handles acked or nacked so far whose answer has come back (an ack is answered
    /// once it is on disk); answers are read by `next`.
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Acknowledges without waiting (the answer is checked by a later `next`).
    pub fn ack(&mut self, handles: &[u64]) -> Result<(), ClientError> {
        let request = Request::Ack {
            queue: self.queue.clone(),
            handles: handles.to_vec(),
        };
        let id = self.conn.send(request, &[])?;
        self.pending.insert(id, handles.len());
        Ok(())
    }

    pub fn nack(&mut self, handles: &[u64], requeue: bool) -> Result<(), ClientError> {
        let request = Request::Nack {
            queue: self.queue.clone(),
            handles: handles.to_vec(),
            requeue,
        };
        let id = self.conn.send(request, &[])?;
        self.pending.insert(id, handles.len());
        Ok(())
    }
}
