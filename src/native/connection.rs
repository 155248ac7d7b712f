//! One native-protocol connection on a shard: read frames, run each request as an
//! engine call (requests are pipelined, answered by id in completion order), write
//! answers. A `Subscribe` becomes an engine `Subscription` owned by the connection;
//! when the connection goes, so does the subscription, and its leases return.
//!
//! Bounds: `--max-in-flight-requests` requests and `--max-in-flight-bytes` payload
//! bytes (at least one whole frame) read and not yet answered; past either the
//! connection is not read, so the client feels TCP backpressure. A connection idle for
//! `--connections-max-idle-ms` with no request in flight and no subscription is closed
//! (`server::idle`).

use super::auth::{Gate, Session};
use super::frame::{self, FrameError, HEAD_LEN};
use super::handler::{self, Reply};
use super::messages::{Acks, ErrorCode, Request, Response, ResponseEnvelope};
use crate::engine::{Engine, EngineError, Subscription};
use crate::runtime::{self, spawn_local};
use crate::server::answer_budget::{AnswerBudget, ANSWER_BYTES_MAX};
use crate::server::idle::{close_when_idle, Idle};
use crate::server::stream::{read_some, write_all, Stream};
use bytes::{Bytes, BytesMut};
use futures_lite::future;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::Cell;
use std::rc::Rc;

/// Size of each receive buffer (a larger frame gets a buffer of its own size). When a
/// frame does not fit in what is left, the part of it already read moves to a new
/// buffer: the larger the buffer, the rarer that copy (1 MiB measured 25 % less broker
/// CPU per message than 256 KiB; pages never written are never faulted in).
const READ_CHUNK: usize = 1 << 20;
/// A payload split off the receive buffer keeps that whole buffer alive for as long as
/// the log's batch cache or a queue holds it, and they count only the payload: a 69-byte
/// batch produced on a fresh connection kept ~200 KiB resident (found by the hammer
/// test). Payloads under this size are copied out instead, so what is held is at most
/// 16 times what is counted, while large batches stay zero-copy.
const PAYLOAD_COPY_BELOW: usize = READ_CHUNK / 16;
/// Payloads above this are written straight from the batch buffers, not copied.
const COPY_PAYLOAD_MAX: usize = 64 * 1024;

/// An answer encoded by whoever produced it, so that its size is known (and counted
/// against the connection's `AnswerBudget`) before it waits for the writer.
struct Outgoing {
    /// Frame head and envelope.
    head: Vec<u8>,
    payload: Vec<Bytes>,
}

impl Outgoing {
    fn encode(id: u64, (response, payload): Reply) -> Outgoing {
        let payload_len = payload.iter().map(|b| b.len()).sum();
        let env = ResponseEnvelope { id, response };
        match frame::encode_response(&env, payload_len) {
            Ok(head) => Outgoing { head, payload },
            Err(e) => {
                tracing::error!("encoding answer {id}: {e}");
                let (response, _) = invalid(format!("the answer could not be encoded: {e}"));
                let env = ResponseEnvelope { id, response };
                Outgoing {
                    // An error envelope of one short string always encodes.
                    head: frame::encode_response(&env, 0).unwrap_or_default(),
                    payload: Vec::new(),
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.head.len() + self.payload.iter().map(|b| b.len()).sum::<usize>()
    }
}

/// What a connection past `--max-connections` is told before it is closed: an error
/// answer with id 0 (no request of the client's has that id).
pub fn refusal() -> Vec<u8> {
    let message = "the broker has as many native connections open as --max-connections \
                   allows; close one or try again later";
    let env = ResponseEnvelope {
        id: 0,
        response: Response::error(ErrorCode::InvalidRequest, message),
    };
    // A short error envelope always encodes; nothing is sent if it did not.
    frame::encode_response(&env, 0).unwrap_or_default()
}

/// Sends an answer to the writer, counting it against the connection's budget;
/// false once the writer is gone (a push subscription then stops taking messages).
async fn send_answer(
    tx: &LocalSender<Outgoing>,
    budget: &AnswerBudget,
    id: u64,
    reply: Reply,
) -> bool {
    if budget.is_closed() {
        return false;
    }
    let out = Outgoing::encode(id, reply);
    let len = out.len();
    budget.hold(len);
    if tx.send(out).await.is_err() {
        budget.release(len);
        return false;
    }
    true
}

/// Splits whole frames off a receive buffer; payloads stay in that buffer (no copy).
///
/// The buffer is allocated zeroed once (fresh pages, no memset) and read into until it
/// is full; a frame that does not fit moves, with whatever part of it was read, to a new
/// buffer sized for it. Frames split off keep their buffer alive while the log's cache
/// holds their batches.
struct FrameReader {
    stream: Stream,
    buf: BytesMut,
    /// Bytes of `buf` holding received data; the rest is zeroed room to read into.
    filled: usize,
    max_frame_bytes: u32,
    /// Every read counts as activity, so a large frame arriving slowly is not idle.
    idle: Rc<Idle>,
}

enum Incoming {
    Frame {
        envelope: BytesMut,
        payload: BytesMut,
    },
    Closed,
}

impl FrameReader {
    fn new(stream: Stream, max_frame_bytes: u32, idle: Rc<Idle>) -> FrameReader {
        FrameReader {
            stream,
            buf: BytesMut::zeroed(READ_CHUNK),
            filled: 0,
            max_frame_bytes,
            idle,
        }
    }

    /// Makes room for `want` bytes in the current buffer, moving to a new one if needed.
    fn make_room(&mut self, want: usize) {
        if self.buf.len() >= want {
            return;
        }
        let mut fresh = BytesMut::zeroed(want.max(READ_CHUNK));
        fresh[..self.filled].copy_from_slice(&self.buf[..self.filled]);
        self.buf = fresh;
    }

    async fn fill(&mut self, want: usize) -> std::io::Result<bool> {
        while self.filled < want {
            // Grow with what arrives, not with what the head claims: a client that
            // declares a large frame and sends it slowly (or never) makes the broker
            // hold about twice what it sent.
            self.make_room(want.min((2 * self.filled).max(READ_CHUNK)));
            let n = read_some(&self.stream, &mut self.buf[self.filled..]).await?;
            if n == 0 {
                return Ok(false);
            }
            self.idle.touch();
            self.filled += n;
        }
        Ok(true)
    }

    async fn next(&mut self) -> Result<Incoming, ReadError> {
        if !self.fill(HEAD_LEN).await? {
            return if self.filled == 0 {
                Ok(Incoming::Closed)
            } else {
                Err(ReadError::Truncated)
            };
        }
        let mut head = [0u8; HEAD_LEN];
        head.copy_from_slice(&self.buf[..HEAD_LEN]);
        let head = frame::parse_head(head, self.max_frame_bytes)?;
        let frame_len = HEAD_LEN + head.body_len();
        if !self.fill(frame_len).await? {
            return Err(ReadError::Truncated);
        }
        let mut body = self.buf.split_to(frame_len);
        self.filled -= frame_len;
        let _ = body.split_to(HEAD_LEN);
        let mut payload = body.split_off(head.envelope_len as usize);
        if payload.len() < PAYLOAD_COPY_BELOW {
            payload = BytesMut::from(&payload[..]);
        }
        Ok(Incoming::Frame {
            envelope: body,
            payload,
        })
    }
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Most push subscriptions one connection may hold at once; a `Subscribe` past it is
/// refused (each holds up to its prefetch in leases and one pull in flight).
pub const SUBSCRIPTIONS_MAX: usize = 1024;

pub async fn serve(engine: Engine, stream: Stream) {
    let peer = stream.peer();
    let tls_shard_ports = tls_shard_ports(&engine, &stream);
    let limits = engine.config().connection_limits;
    let (tx, rx) = local_channel::new_bounded::<Outgoing>(limits.max_in_flight_requests);
    let tx = Rc::new(tx);
    let budget = Rc::new(AnswerBudget::new(ANSWER_BYTES_MAX));
    let idle = Rc::new(Idle::new(limits.connections_max_idle_ms));
    let writer = spawn_local(write_loop(stream.clone(), rx, budget.clone(), idle.clone()));
    let requests_max = limits.max_in_flight_requests as u64;
    let in_flight = Rc::new(glommio::sync::Semaphore::new(requests_max));
    let max_frame_bytes = engine.config().max_frame_bytes;
    // A frame larger than the byte bound is still served, alone.
    let bytes_max = limits.max_in_flight_bytes.max(u64::from(max_frame_bytes));
    let in_flight_bytes = Rc::new(glommio::sync::Semaphore::new(bytes_max));
    let mut session = Session::new(&engine, &stream);
    let mut reader = FrameReader::new(stream.clone(), max_frame_bytes, idle.clone());
    // Push subscriptions end when this does (their leases return); counted to bound them.
    let closing = Rc::new(Closing::default());
    let subscriptions = Rc::new(Cell::new(0usize));
    // A request being served (a long poll among them) or a subscription waiting for
    // messages keeps the connection from counting as idle; answers waiting for a peer
    // that does not read them do not.
    let serving = Rc::new(Cell::new(0usize));
    let busy = {
        let (serving, subscriptions) = (serving.clone(), subscriptions.clone());
        move || serving.get() > 0 || subscriptions.get() > 0
    };
    // Dropped (so cancelled) when the connection ends.
    let _idle_watch = spawn_local(close_when_idle(idle, busy, stream.clone(), "native"));
    loop {
        // Buffered frames and requests answered in this loop never wait: the shard's
        // other connections get their turn here.
        runtime::yield_if_needed().await;
        let read = async {
            // A client that does not read its answers is not read either.
            budget.room().await;
            Some(reader.next().await)
        };
        let next = future::or(read, async {
            engine.shutdown().wait().await;
            None
        });
        let (envelope, payload) = match next.await {
            None | Some(Ok(Incoming::Closed)) => break,
            Some(Ok(Incoming::Frame { envelope, payload })) => (envelope, payload),
            Some(Err(e)) => {
                // The stream cannot be resynchronised: say why, then close.
                tracing::warn!(%peer, "closing native connection: {e}");
                send_answer(&tx, &budget, 0, invalid(e.to_string())).await;
                break;
            }
        };
        let envelope = match frame::decode_request(&envelope) {
            Ok(env) => env,
            Err(e) => {
                // Frame boundaries are intact, so the connection can go on.
                tracing::warn!(%peer, "bad request envelope: {e}");
                send_answer(&tx, &budget, 0, invalid(e.to_string())).await;
                continue;
            }
        };
        crate::metrics::local::native_request(envelope.request.api_index());
        match admit(&engine, &mut session, &envelope.request).await {
            Admit::Serve => {}
            Admit::Answer(reply) => {
                send_answer(&tx, &budget, envelope.id, reply).await;
                continue;
            }
            Admit::Close(reply, why) => {
                tracing::warn!(%peer, "closing native connection: {why}");
                if let Some(reply) = reply {
                    send_answer(&tx, &budget, envelope.id, reply).await;
                }
                break;
            }
        }
        if let Request::Subscribe {
            queue,
            prefetch,
            auto_ack,
        } = envelope.request
        {
            if subscriptions.get() >= SUBSCRIPTIONS_MAX {
                let refused = invalid(format!(
                    "this connection holds {SUBSCRIPTIONS_MAX} subscriptions, the most it may"
                ));
                send_answer(&tx, &budget, envelope.id, refused).await;
                continue;
            }
            subscriptions.set(subscriptions.get() + 1);
            let push = Push {
                subscription: engine.subscribe(&queue, prefetch, auto_ack),
                answers: Rc::downgrade(&tx),
                budget: budget.clone(),
                id: envelope.id,
                closing: closing.clone(),
                live: subscriptions.clone(),
            };
            spawn_local(push.run()).detach();
            continue;
        }
        // Waiting here stops reading: the client feels TCP backpressure.
        let Ok(permit) = in_flight.acquire_static_permit(1).await else {
            break;
        };
        let size = (payload.len() as u64).clamp(1, bytes_max);
        let Ok(bytes_permit) = in_flight_bytes.acquire_static_permit(size).await else {
            break;
        };
        let (engine, tx, budget) = (engine.clone(), tx.clone(), budget.clone());
        let tls_shard_ports = tls_shard_ports.clone();
        let requester = session.requester().clone();
        let serving = serving.clone();
        spawn_local(async move {
            serving.set(serving.get() + 1);
            let reply = handler::handle(&engine, envelope.request, payload).await;
            serving.set(serving.get() - 1);
            if let Some(mut reply) = reply {
                if let Some(ports) = &tls_shard_ports {
                    to_tls_ports(&mut reply.0, ports);
                }
                if super::authz::enforced(&engine) {
                    requester.filter(&engine, &mut reply.0);
                }
                send_answer(&tx, &budget, envelope.id, reply).await;
            }
            drop((permit, bytes_permit));
        })
        .detach();
    }
    // A subscription's leases return at once when its connection goes.
    closing.close();
    // Let every request already read finish and be answered before closing.
    let _ = in_flight.acquire(requests_max).await;
    drop(tx);
    writer.await;
}

/// What the read loop does with a request before serving it.
enum Admit {
    Serve,
    /// Answer this in its place and go on.
    Answer(Reply),
    /// Answer this (if anything) and close the connection, for the reason given.
    Close(Option<Reply>, String),
}

/// The handshake steps and the authentication gate (`auth`), then the ACLs (`authz`):
/// a refused request never reaches the engine.
async fn admit(engine: &Engine, session: &mut Session, request: &Request) -> Admit {
    let gate = match request {
        Request::ScramFirst {
            mechanism,
            client_first,
        } => session.scram_first(engine, *mechanism, client_first).await,
        Request::ScramFinal { client_final } => session.scram_final(engine, client_final).await,
        other => session.gate(other),
    };
    match gate {
        Gate::Pass => {}
        Gate::Answer(reply) => return Admit::Answer(reply),
        Gate::Close(reply) => {
            let why = "too many refused requests before authentication".to_string();
            return Admit::Close(Some(reply), why);
        }
    }
    if !super::authz::enforced(engine) {
        return Admit::Serve;
    }
    let Err(message) = session.requester().check(engine, request) else {
        return Admit::Serve;
    };
    tracing::debug!(principal = %session.requester().principal, "denied: {message}");
    // Counted as the other protocols count theirs: errors_total{code="AccessRefused"}.
    let kind = EngineError::AccessRefused(String::new()).metrics_index();
    crate::metrics::local::error(crate::metrics::Protocol::Native, kind);
    if let Request::Produce {
        acks: Acks::None, ..
    } = request
    {
        // Nothing reads the answer to a produce with acks=none: the connection closes,
        // as Kafka's does, so that the client notices.
        return Admit::Close(None, message);
    }
    let refused = Response::error(ErrorCode::AuthorizationFailed, message);
    Admit::Answer((refused, Vec::new()))
}

/// The shards' own TLS ports, for a connection that came in over TLS: its Metadata
/// names them in place of the plaintext ones, so the client stays on TLS.
fn tls_shard_ports(engine: &Engine, stream: &Stream) -> Option<Rc<Vec<u16>>> {
    let tls = engine.config().tls.as_ref().filter(|_| stream.is_tls())?;
    Some(Rc::new(tls.native_shard_ports.clone()))
}

fn to_tls_ports(response: &mut super::messages::Response, ports: &[u16]) {
    if let super::messages::Response::Metadata { shards, .. } = response {
        for s in shards.iter_mut() {
            s.port = ports.get(s.shard as usize).copied().unwrap_or(0);
        }
    }
}

/// Set once when a connection ends; what runs on its behalf stops then.
#[derive(Default)]
struct Closing {
    closed: Cell<bool>,
    event: event_listener::Event,
}

impl Closing {
    fn close(&self) {
        self.closed.set(true);
        self.event.notify(usize::MAX);
    }

    async fn wait(&self) {
        while !self.closed.get() {
            let listener = self.event.listen();
            if self.closed.get() {
                break;
            }
            listener.await;
        }
    }
}

/// One push subscription on a connection: answers the Subscribe request again with
/// every batch the engine's `Subscription` hands out, until the connection closes; then
/// the subscription is dropped and its leases return.
struct Push {
    subscription: Subscription,
    /// Weak, so a closing connection need not wait for a pull in progress.
    answers: std::rc::Weak<LocalSender<Outgoing>>,
    budget: Rc<AnswerBudget>,
    id: u64,
    closing: Rc<Closing>,
    /// Subscriptions of the connection still running.
    live: Rc<Cell<usize>>,
}

impl Push {
    async fn run(self) {
        self.serve().await;
        self.live.set(self.live.get() - 1);
        tracing::debug!(queue = self.subscription.queue(), "subscription ended");
    }

    async fn serve(&self) {
        loop {
            let next = future::or(async { Some(self.subscription.next().await) }, async {
                self.closing.wait().await;
                None
            });
            let (reply, more) = match next.await {
                // The connection went: nobody to tell.
                None | Some(Err(EngineError::SubscriptionClosed)) => break,
                Some(Ok(got)) => (handler::received(got), true),
                Some(Err(e)) => ((Response::from(e), Vec::new()), false),
            };
            let Some(answers) = self.answers.upgrade() else {
                break;
            };
            if !send_answer(&answers, &self.budget, self.id, reply).await || !more {
                break;
            }
        }
    }
}

fn invalid(message: String) -> Reply {
    (
        Response::error(ErrorCode::InvalidRequest, message),
        Vec::new(),
    )
}

async fn write_loop(
    stream: Stream,
    rx: LocalReceiver<Outgoing>,
    budget: Rc<AnswerBudget>,
    idle: Rc<Idle>,
) {
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    if let Err(e) = write_answers(&stream, &rx, &budget, &idle, &mut out).await {
        tracing::debug!("native connection write failed: {e}");
    }
    // Nothing will be written any more: the reader must not wait for room.
    budget.close();
    // Answers still coming are dropped, not left to fill the channel: glommio's `send`
    // on a full channel never returns once its receiver is gone, so the request tasks
    // (and the reader waiting for their permits) would hang.
    while rx.recv().await.is_some() {}
}

async fn write_answers(
    stream: &Stream,
    rx: &LocalReceiver<Outgoing>,
    budget: &AnswerBudget,
    idle: &Idle,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    while let Some(first) = rx.recv().await {
        let mut pending = Some(first);
        let mut written = 0;
        // One write per wake-up: gather every answer that is ready now.
        while let Some(answer) = pending.take() {
            written += answer.len();
            append(stream, out, answer).await?;
            pending = future::poll_once(rx.recv()).await.flatten();
        }
        write_all(stream, out).await?;
        idle.touch();
        out.clear();
        budget.release(written);
        // Answers ready and a socket with room never wait.
        runtime::yield_if_needed().await;
    }
    Ok(())
}

/// Appends one answer to `out`; a large payload is written in place after flushing.
async fn append(stream: &Stream, out: &mut Vec<u8>, answer: Outgoing) -> std::io::Result<()> {
    let payload_len: usize = answer.payload.iter().map(|b| b.len()).sum();
    out.extend_from_slice(&answer.head);
    if payload_len <= COPY_PAYLOAD_MAX {
        for b in &answer.payload {
            out.extend_from_slice(b);
        }
        return Ok(());
    }
    write_all(stream, out).await?;
    out.clear();
    for b in &answer.payload {
        write_all(stream, b).await?;
    }
    Ok(())
}
