//! One Kafka connection on a shard. Requests are read as they come and run
//! concurrently, but answered in the order they arrived, as Kafka clients require.
//!
//! Bounds, as on a native connection: `--max-in-flight-requests` requests read and not
//! yet answered, and `--max-in-flight-bytes` request bytes whose handling has not
//! finished (a frame larger than that is still served, alone); past either the
//! connection is not read (TCP backpressure). A connection idle for
//! `--connections-max-idle-ms` (Kafka's `connections.max.idle.ms`) with no request in
//! flight, a long Fetch included, is closed (`server::idle`).

use super::codec::{self, Incoming};
use super::Ctx;
use crate::engine::Engine;
use crate::runtime::{self, spawn_local};
use crate::server::answer_budget::{AnswerBudget, ANSWER_BYTES_MAX};
use crate::server::idle::{close_when_idle, Idle};
use crate::server::stream::{read_some, write_all, Stream};
use bytes::{Buf, Bytes, BytesMut};
use futures_lite::future;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::Task;
use std::rc::Rc;

/// Smallest read into the receive buffer.
const READ_CHUNK: usize = 64 * 1024;
/// A frame split off the receive buffer keeps the whole buffer alive while the batch
/// cache holds its records; frames under this size are copied out instead, so what is
/// held stays within about 16 times what is counted (as in the native connection).
const FRAME_COPY_BELOW: usize = READ_CHUNK / 16;

/// A request's answer: `None` for requests Kafka does not answer (acks=0 produce).
type Answer = Task<Option<BytesMut>>;

pub async fn serve(engine: Engine, stream: Stream) {
    let peer = stream.peer();
    let ctx = Rc::new(Ctx::new(engine.clone(), stream.is_tls()).for_client(&stream));
    let limits = engine.config().connection_limits;
    let (tx, rx) = local_channel::new_bounded::<Answer>(limits.max_in_flight_requests);
    let budget = Rc::new(AnswerBudget::new(ANSWER_BYTES_MAX));
    let idle = Rc::new(Idle::new(limits.connections_max_idle_ms));
    let writer = spawn_local(write_loop(
        stream.clone(),
        rx,
        budget.clone(),
        peer.clone(),
        idle.clone(),
    ));
    let max_frame = engine.config().max_frame_bytes as usize;
    let bytes_max = limits.max_in_flight_bytes.max(max_frame as u64);
    let in_flight_bytes = Rc::new(glommio::sync::Semaphore::new(bytes_max));
    // Counted apart from the answer channel: a request runs from the moment it is
    // spawned, before it waits for room in the channel.
    let requests_max = limits.max_in_flight_requests as u64;
    let in_flight = Rc::new(glommio::sync::Semaphore::new(requests_max));
    // A request being served (a Fetch waiting for data among them) is not idleness; an
    // answer waiting for a peer that does not read it is (its permit is back).
    let busy = {
        let in_flight = in_flight.clone();
        move || in_flight.available() < requests_max
    };
    // SASL (and the gate of a --require-auth listener) before anything is served.
    let mut session = super::sasl::Session::new(
        engine.clone(),
        stream.peer_addr().map(|a| a.ip()),
        stream.is_tls(),
        stream.principal().is_some(),
    );
    // Dropped (so cancelled) when the connection ends.
    let _idle_watch = spawn_local(close_when_idle(idle.clone(), busy, stream.clone(), "Kafka"));
    let mut reader = FrameReader {
        stream,
        buf: BytesMut::new(),
        idle,
    };
    loop {
        // Buffered frames never wait: the shard's other connections get their turn here.
        runtime::yield_if_needed().await;
        let frame_max = session.frame_max(max_frame);
        let read = async {
            // A client that does not read its answers is not read either.
            budget.room().await;
            Some(reader.next(frame_max).await)
        };
        let next = future::or(read, async {
            engine.shutdown().wait().await;
            None
        });
        let frame = match next.await {
            None | Some(Ok(None)) => break,
            Some(Ok(Some(frame))) => frame,
            Some(Err(e)) => {
                tracing::warn!(%peer, "closing Kafka connection: {e}");
                break;
            }
        };
        // Waiting here stops reading: the client feels TCP backpressure.
        let Ok(permit) = in_flight.acquire_static_permit(1).await else {
            break;
        };
        let size = (frame.len() as u64).clamp(1, bytes_max);
        let Ok(bytes_permit) = in_flight_bytes.acquire_static_permit(size).await else {
            break;
        };
        if session.expects_raw_token() {
            // After a SaslHandshake v0: a bare SASL token, not a request.
            let exchanged = session.raw_token(&ctx, &frame).await;
            drop((permit, bytes_permit));
            if !queue_exchanged(&tx, &budget, exchanged).await {
                break;
            }
            continue;
        }
        let answer = match codec::decode(frame) {
            Ok(Incoming::Answered(bytes)) => {
                // Served already: not in flight while it waits for the writer.
                drop((permit, bytes_permit));
                budget.hold(bytes.len());
                spawn_local(async move { Some(bytes) })
            }
            Ok(Incoming::Request(request)) if super::sasl::is_exchange(request.api_key) => {
                // Run here, in order: later requests see the principal it sets.
                let exchanged = session.exchange(&ctx, request).await;
                drop((permit, bytes_permit));
                if !queue_exchanged(&tx, &budget, exchanged).await {
                    break;
                }
                continue;
            }
            Ok(Incoming::Request(request)) => {
                if let Err(why) = session.admits(request.api_key) {
                    tracing::warn!(%peer, "closing Kafka connection: {why}");
                    break;
                }
                let ctx = ctx.clone();
                let peer = peer.clone();
                let budget = budget.clone();
                spawn_local(async move {
                    let (id, key, version) = (
                        request.header.correlation_id,
                        request.api_key,
                        request.header.request_api_version,
                    );
                    let body = super::handle(&ctx, request).await;
                    drop((permit, bytes_permit));
                    match codec::encode(id, key, version, &body?) {
                        Ok(bytes) => {
                            budget.hold(bytes.len());
                            Some(bytes)
                        }
                        Err(e) => {
                            tracing::error!(%peer, "{e}");
                            None
                        }
                    }
                })
            }
            Err(e) => {
                // Framing is intact but the request is not: Kafka closes, so do we.
                tracing::warn!(%peer, "closing Kafka connection: {e}");
                break;
            }
        };
        if tx.send(answer).await.is_err() {
            break;
        }
    }
    drop(tx);
    writer.await;
}

/// Queues the answer of a SASL exchange step behind the answers before it; whether the
/// connection goes on (a failed exchange closes it once the answer is written).
async fn queue_exchanged(
    tx: &LocalSender<Answer>,
    budget: &AnswerBudget,
    exchanged: super::sasl::Exchanged,
) -> bool {
    let bytes = exchanged.answer;
    if let Some(b) = &bytes {
        budget.hold(b.len());
    }
    let sent = tx.send(spawn_local(async move { bytes })).await;
    !exchanged.close && sent.is_ok()
}

async fn write_loop(
    stream: Stream,
    rx: LocalReceiver<Answer>,
    budget: Rc<AnswerBudget>,
    peer: String,
    idle: Rc<Idle>,
) {
    while let Some(answer) = rx.recv().await {
        let Some(bytes) = answer.await else {
            continue;
        };
        let written = write_all(&stream, &bytes).await;
        idle.touch();
        budget.release(bytes.len());
        if let Err(e) = written {
            tracing::debug!(%peer, "Kafka connection write failed: {e}");
            break;
        }
        // Answers ready and a socket with room never wait.
        runtime::yield_if_needed().await;
    }
    budget.close();
    // Answers still coming are dropped, not left to fill the channel: glommio's `send`
    // on a full channel never returns once its receiver is gone, so the reader would
    // hang there (found with a client that pipelines and never reads).
    while rx.recv().await.is_some() {}
}

/// Splits `i32 length | request` frames off the stream.
struct FrameReader {
    stream: Stream,
    buf: BytesMut,
    /// Every read counts as activity, so a large frame arriving slowly is not idle.
    idle: Rc<Idle>,
}

impl FrameReader {
    /// The next frame, `None` at a clean end of stream.
    async fn next(&mut self, max: usize) -> Result<Option<Bytes>, String> {
        loop {
            let mut want = 4;
            if self.buf.len() >= 4 {
                let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                let len = usize::try_from(len)
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| format!("frame length {len} outside 0..={max}"))?;
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    if len < FRAME_COPY_BELOW {
                        let frame = Bytes::copy_from_slice(&self.buf[..len]);
                        self.buf.advance(len);
                        return Ok(Some(frame));
                    }
                    return Ok(Some(self.buf.split_to(len).freeze()));
                }
                want = 4 + len;
            }
            let have = self.buf.len();
            // Grow with what arrives, not with what the length prefix claims: a client
            // that declares a large frame and sends it slowly (or never) makes the
            // broker hold about twice what it sent, not the whole frame, zeroed.
            let room = (want - have).min(have.max(READ_CHUNK));
            self.buf.resize(have + room, 0);
            let read = read_some(&self.stream, &mut self.buf[have..]).await;
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(have);
                    return Err(format!("read failed: {e}"));
                }
            };
            self.buf.truncate(have + n);
            self.idle.touch();
            if n == 0 {
                return match have {
                    0 => Ok(None),
                    _ => Err(format!(
                        "connection closed inside a frame ({have} bytes read)"
                    )),
                };
            }
        }
    }
}
