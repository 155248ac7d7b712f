//! One AMQP connection on a shard: the handshake (protocol header, start, SASL, tune,
//! open), the frame loop that hands each channel its methods and content, heartbeats
//! both ways, connection-level errors and close, and what a connection owns (channels,
//! exclusive queues) released when it ends.
//!
//! Bounds: frames up to the negotiated `frame_max` (`FRAME_MAX` offered), `channel_max`
//! channels (`CHANNEL_MAX` offered), the handshake within `HANDSHAKE_TIMEOUT`,
//! publishes in flight (`--max-in-flight-requests`, `--max-in-flight-bytes`: past them
//! the connection is not read and the client is told `connection.blocked`), output
//! buffered up to `OUTPUT_BYTES_MAX` before consumers wait and `OUTPUT_READ_STOP_BYTES`
//! before the connection is not read. A silent peer is closed after two missed
//! heartbeats, or, with heartbeats off, after `--connections-max-idle-ms` unless it has
//! a consumer waiting for deliveries. A peer that reads none of its answers for
//! `--connections-max-idle-ms` while the connection is not read for it is closed too,
//! heartbeats or not, and an ending connection gives the peer `DRAIN_MAX` to read
//! what it is still owed before the socket is shut down.

use super::auth;
use super::channel::Channel;
use super::errors::{self, AmqpError};
use super::frames::{self, FrameError, FrameReader, Output, RawFrame};
use crate::config::Listener;
use crate::engine::Engine;
use crate::runtime;
use crate::server::stream::Stream;
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use event_listener::Event;
use futures_lite::future;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Largest frame the broker accepts (and offers in `tune`), RabbitMQ's default.
pub const FRAME_MAX: u32 = 128 << 10;
/// Most channels per connection (offered in `tune`), RabbitMQ's default.
pub const CHANNEL_MAX: u16 = 2047;
/// Heartbeat interval offered in `tune`, in seconds (the client may lower it or turn
/// it off with 0).
pub const HEARTBEAT_S: u16 = 60;
/// From the first byte to `connection.open`, as RabbitMQ's `handshake_timeout`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing side waits for the peer's `close-ok`.
const CLOSE_OK_WAIT: Duration = Duration::from_secs(1);
/// How long an ending connection waits for the client to read what it is still owed
/// (`close-ok`, a `connection.close`, answers before them); past it the socket is shut
/// down, so that a client that reads nothing cannot hold the connection.
const DRAIN_MAX: Duration = Duration::from_secs(10);
/// Output bytes buffered for a client that does not read before its consumers wait.
pub const OUTPUT_BYTES_MAX: usize = 4 << 20;
/// Output bytes buffered past which the connection is not read (its answers pile up).
pub const OUTPUT_READ_STOP_BYTES: usize = 4 * OUTPUT_BYTES_MAX;

/// A connection's shared state: its reader, its consumers' tasks and its publishes'
/// tasks all hold it.
pub struct Conn {
    pub engine: Engine,
    pub out: Output,
    /// `shard:n`, unique in the process: the owner tag of its exclusive queues.
    pub id: String,
    pub peer: String,
    /// The peer's address, which ACLs match hosts against.
    pub peer_ip: Option<IpAddr>,
    /// Came in on the AMQP TLS listener.
    tls: bool,
    /// The subject of the client's verified TLS certificate (mTLS): EXTERNAL logs in
    /// as it.
    certificate: Option<String>,
    /// Who logged in (the user name), and as whom ACLs see it (`User:` and the name).
    pub user: RefCell<String>,
    pub principal: RefCell<String>,
    pub frame_max: Cell<u32>,
    pub channel_max: Cell<u16>,
    pub channels: RefCell<HashMap<u16, Rc<Channel>>>,
    /// Queues declared exclusive by this connection: deleted when it ends.
    pub exclusive: RefCell<Vec<String>>,
    /// The client takes `basic.cancel` from the broker.
    pub cancel_notify: Cell<bool>,
    /// The client takes `connection.blocked`/`unblocked`.
    pub blocked_notify: Cell<bool>,
    blocked: Cell<bool>,
    /// Publishes handed to the engine and not finished, and their body bytes.
    publishes: Cell<usize>,
    publish_bytes: Cell<u64>,
    publish_done: Event,
    /// Set once the connection is ending: tasks stop, nothing more is sent.
    pub ending: Cell<bool>,
    /// Channels holding a publish batch not yet sent (`publish::flush_all`).
    pub batching: RefCell<Vec<Rc<Channel>>>,
}

fn next_conn_id(shard: u32) -> String {
    thread_local! {
        static NEXT: Cell<u64> = const { Cell::new(1) };
    }
    let n = NEXT.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    format!("{shard}-{n}")
}

/// What a connection past `--max-connections` is told: nothing (AMQP has no frame
/// before the handshake); it is closed.
pub fn refusal() -> Vec<u8> {
    Vec::new()
}

pub async fn serve(engine: Engine, stream: Stream) {
    let peer_ip = stream.peer_addr().map(|a| a.ip());
    let peer = stream.peer();
    let conn = Rc::new(Conn {
        id: next_conn_id(engine.shard_id()),
        engine,
        out: Output::new(OUTPUT_BYTES_MAX),
        peer,
        peer_ip,
        tls: stream.is_tls(),
        certificate: stream.principal().map(str::to_string),
        user: RefCell::new(String::new()),
        principal: RefCell::new(String::new()),
        frame_max: Cell::new(frames::FRAME_MIN_SIZE),
        channel_max: Cell::new(CHANNEL_MAX),
        channels: RefCell::new(HashMap::new()),
        exclusive: RefCell::new(Vec::new()),
        cancel_notify: Cell::new(false),
        blocked_notify: Cell::new(false),
        blocked: Cell::new(false),
        publishes: Cell::new(0),
        publish_bytes: Cell::new(0),
        publish_done: Event::new(),
        ending: Cell::new(false),
        batching: RefCell::new(Vec::new()),
    });
    let writer = {
        let conn = conn.clone();
        let stream = stream.clone();
        runtime::spawn_local(async move { conn.out.write_loop(stream).await })
    };
    let socket = stream.clone();
    let mut reader = FrameReader::new(stream);
    let handshake = future::or(async { Some(handshake(&conn, &mut reader).await) }, async {
        runtime::sleep(HANDSHAKE_TIMEOUT).await;
        None
    })
    .await;
    match handshake {
        Some(Ok(Some(heartbeat))) => {
            let beats = (heartbeat > 0).then(|| {
                let conn = conn.clone();
                runtime::spawn_local(send_heartbeats(conn, heartbeat))
            });
            run(&conn, &mut reader, heartbeat).await;
            drop(beats);
        }
        Some(Ok(None)) => {}
        Some(Err(e)) => {
            tracing::debug!(peer = %conn.peer, "AMQP handshake failed: {}", e.text);
            close_with(&conn, &mut reader, e).await;
        }
        None => tracing::debug!(peer = %conn.peer, "AMQP handshake timed out"),
    }
    conn.ending.set(true);
    release(&conn).await;
    conn.out.close();
    finish_writing(writer, &socket).await;
}

/// Lets the writer write what is buffered, for at most `DRAIN_MAX`; then shuts the
/// socket down, which fails the write it is blocked in.
async fn finish_writing(mut writer: runtime::Task<()>, socket: &Stream) {
    let written = future::or(
        async {
            (&mut writer).await;
            true
        },
        async {
            runtime::sleep(DRAIN_MAX).await;
            false
        },
    )
    .await;
    if !written {
        tracing::info!(peer = %socket.peer(), "AMQP client read nothing of what it was sent for {DRAIN_MAX:?}; closing");
        socket.shut_down();
        writer.await;
    }
}

/// Waits until everything buffered was written, at most `DRAIN_MAX` (the connection is
/// ending: `finish_writing` then cuts a client that reads nothing).
async fn flushed_or_late(conn: &Conn) {
    future::or(conn.out.flushed(), runtime::sleep(DRAIN_MAX)).await;
}

/// Everything the connection held goes: channels (their unacked messages return to
/// their queues, their consumers end) and exclusive queues.
async fn release(conn: &Rc<Conn>) {
    let channels: Vec<Rc<Channel>> = conn.channels.borrow_mut().drain().map(|(_, c)| c).collect();
    for ch in channels {
        ch.release(conn).await;
    }
    let exclusive = std::mem::take(&mut *conn.exclusive.borrow_mut());
    for q in exclusive {
        if let Err(e) = conn.engine.delete_queue(&q).await {
            tracing::debug!(queue = %q, "deleting an exclusive queue: {e}");
        }
    }
}

/// Protocol header to `open-ok`; the negotiated heartbeat in seconds, or None when the
/// peer went away or spoke another protocol (answered with our header).
async fn handshake(conn: &Rc<Conn>, reader: &mut FrameReader) -> Result<Option<u16>, AmqpError> {
    let header = match reader.protocol_header().await {
        Ok(Some(h)) => h,
        Ok(None) | Err(_) => return Ok(None),
    };
    if header != frames::PROTOCOL_HEADER {
        // The spec: answer with the protocol we speak and close.
        conn.out
            .push(|b| b.extend_from_slice(&frames::PROTOCOL_HEADER));
        return Ok(None);
    }
    conn.out.method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Start(start(conn))),
    );
    let start_ok = match expect_method(conn, reader).await? {
        Some(AMQPClass::Connection(connection::AMQPMethod::StartOk(s))) => s,
        Some(other) => return Err(unexpected(&other, "connection.start-ok")),
        None => return Ok(None),
    };
    read_client_capabilities(conn, &start_ok.client_properties);
    let login = auth::Login {
        peer: conn.peer_ip,
        certificate: conn.certificate.as_deref(),
        mechanism: start_ok.mechanism.as_str(),
        response: start_ok.response.as_bytes(),
    };
    let listener = Listener::of(crate::metrics::Protocol::Amqp, conn.tls);
    let required = conn.engine.config().require_auth(listener);
    let engine = &conn.engine;
    // A peer past --login-failures-per-minute is refused without checking.
    if let Some(ip) = conn.peer_ip.filter(|ip| !engine.login_permitted(*ip)) {
        tracing::debug!(peer = %ip, "AMQP login refused unchecked: too many failed logins");
        return Err(AmqpError::new(
            errors::ACCESS_REFUSED,
            "too many failed logins from this address; try again in a minute",
        ));
    }
    let user = match auth::authenticate(engine, required, &login).await {
        Ok(user) => user,
        Err(r) => {
            // The limiter logs the peer and the name tried (never the password).
            if let Some(ip) = conn.peer_ip {
                engine.login_failed(ip, "amqp", r.user.as_deref().unwrap_or(""));
            }
            tracing::info!(peer = %conn.peer, mechanism = login.mechanism, "AMQP login refused: {}", r.text);
            return Err(AmqpError::new(errors::ACCESS_REFUSED, r.text));
        }
    };
    if let Some(ip) = conn.peer_ip {
        engine.login_succeeded(ip);
    }
    tracing::debug!(peer = %conn.peer, id = %conn.id, %user, "AMQP login");
    *conn.principal.borrow_mut() = format!("User:{user}");
    *conn.user.borrow_mut() = user;
    let tune = connection::Tune {
        channel_max: CHANNEL_MAX,
        frame_max: FRAME_MAX,
        heartbeat: HEARTBEAT_S,
    };
    conn.out
        .method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(tune)));
    let tune_ok = match expect_method(conn, reader).await? {
        Some(AMQPClass::Connection(connection::AMQPMethod::TuneOk(t))) => t,
        Some(other) => return Err(unexpected(&other, "connection.tune-ok")),
        None => return Ok(None),
    };
    let frame_max = match tune_ok.frame_max {
        0 => FRAME_MAX,
        n if n < frames::FRAME_MIN_SIZE => {
            return Err(AmqpError::new(
                errors::NOT_ALLOWED,
                format!("frame_max={n} < {} min_size", frames::FRAME_MIN_SIZE),
            ))
        }
        n if n > FRAME_MAX => {
            return Err(AmqpError::new(
                errors::NOT_ALLOWED,
                format!("frame_max={n} > {FRAME_MAX} max_size"),
            ))
        }
        n => n,
    };
    conn.frame_max.set(frame_max);
    conn.channel_max.set(match tune_ok.channel_max {
        0 => CHANNEL_MAX,
        n if n > CHANNEL_MAX => {
            return Err(AmqpError::new(
                errors::NOT_ALLOWED,
                format!("channel_max={n} > {CHANNEL_MAX} max_channels"),
            ))
        }
        n => n,
    });
    let open = match expect_method(conn, reader).await? {
        Some(AMQPClass::Connection(connection::AMQPMethod::Open(o))) => o,
        Some(other) => return Err(unexpected(&other, "connection.open")),
        None => return Ok(None),
    };
    if open.virtual_host.as_str() != "/" {
        return Err(AmqpError::new(
            errors::NOT_ALLOWED,
            format!(
                "vhost {} not found (Peregrine has one virtual host, \"/\")",
                open.virtual_host.as_str()
            ),
        )
        .at((10, 40)));
    }
    let open_ok = connection::OpenOk {};
    conn.out.method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(open_ok)),
    );
    Ok(Some(tune_ok.heartbeat))
}

fn start(conn: &Conn) -> connection::Start {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    props.insert("product".into(), text("Peregrine"));
    props.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    props.insert("platform".into(), text("Rust"));
    props.insert("cluster_name".into(), text("peregrine"));
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: LongString::from(auth::mechanisms(conn.certificate.as_deref())),
        locales: LongString::from("en_US"),
    }
}

fn read_client_capabilities(conn: &Conn, props: &FieldTable) {
    let Some(AMQPValue::FieldTable(caps)) = props.inner().get("capabilities") else {
        return;
    };
    let on = |name: &str| matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)));
    conn.cancel_notify.set(on("consumer_cancel_notify"));
    conn.blocked_notify.set(on("connection.blocked"));
}

/// The next frame during the handshake, which must be a method on channel 0
/// (heartbeats are skipped); None when the peer closed.
async fn expect_method(
    conn: &Conn,
    reader: &mut FrameReader,
) -> Result<Option<AMQPClass>, AmqpError> {
    loop {
        // Heartbeats sent without end would otherwise keep the shard (and the handshake
        // timer would never be looked at).
        runtime::yield_if_needed().await;
        let frame = match reader.next(conn.frame_max.get()).await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(e) => return Err(frame_error(e)),
        };
        match (frame.kind, frame.channel) {
            (frames::FRAME_HEARTBEAT, _) => continue,
            (frames::FRAME_METHOD, 0) => {
                let method = frames::decode_method(&frame.payload)
                    .map_err(|e| AmqpError::new(errors::FRAME_ERROR, e))?;
                count(&method);
                return Ok(Some(method));
            }
            (frames::FRAME_METHOD, _) => {
                return Err(AmqpError::new(
                    errors::CHANNEL_ERROR,
                    "a channel method before the connection was open",
                ))
            }
            _ => {
                return Err(AmqpError::new(
                    errors::UNEXPECTED_FRAME,
                    format!("frame type {} during the handshake", frame.kind),
                ))
            }
        }
    }
}

/// A method from the client, counted for `/metrics`.
fn count(method: &AMQPClass) {
    crate::metrics::local::amqp_request(method.get_amqp_class_id(), method.get_amqp_method_id());
}

fn unexpected(got: &AMQPClass, want: &str) -> AmqpError {
    AmqpError::new(
        errors::COMMAND_INVALID,
        format!(
            "expected '{want}', got class {} method {}",
            got.get_amqp_class_id(),
            got.get_amqp_method_id()
        ),
    )
    .at((got.get_amqp_class_id(), got.get_amqp_method_id()))
}

pub fn frame_error(e: FrameError) -> AmqpError {
    match e {
        FrameError::TooLarge { .. } | FrameError::BadEnd(_) => {
            AmqpError::new(errors::FRAME_ERROR, e.to_string())
        }
        FrameError::Truncated | FrameError::Io(_) => {
            AmqpError::new(errors::CONNECTION_FORCED, e.to_string())
        }
    }
}

async fn send_heartbeats(conn: Rc<Conn>, heartbeat_s: u16) {
    // Half the interval, as RabbitMQ does, so one late beat does not look like death.
    let every = Duration::from_millis(u64::from(heartbeat_s) * 500);
    loop {
        runtime::sleep(every).await;
        if conn.out.is_closed() {
            return;
        }
        conn.out.push(frames::encode_heartbeat);
    }
}

enum Next {
    Frame(Result<Option<RawFrame>, FrameError>),
    Tick,
    Shutdown,
}

/// What a tick of the frame loop decides.
enum Verdict {
    Go,
    /// Dead: end without a word.
    End,
    /// Close with this error.
    Close(AmqpError),
}

/// The liveness rules, checked on each tick; `heard` is when the last frame was read,
/// `stopped` whether the reader is waiting for the client to read its answers. While it
/// waits, the client's frames (heartbeats among them) are not read, so the heartbeat
/// rule is paused, as RabbitMQ pauses it for a blocked connection; the idle bound
/// applies instead, heartbeats or not: a client that has read nothing of what it was
/// sent for that long is as idle as a silent one (as native and Kafka connections are).
fn on_tick(conn: &Conn, heard: Instant, stopped: bool, heartbeat_s: u16) -> Verdict {
    // Silent for two intervals: dead (the spec's rule).
    let silence_max = Duration::from_secs(2 * u64::from(heartbeat_s));
    if heartbeat_s > 0 && !stopped && heard.elapsed() > silence_max {
        tracing::info!(peer = %conn.peer, "AMQP client missed heartbeats for {silence_max:?}; closing");
        return Verdict::End;
    }
    // A client that turned heartbeats off is bounded by --connections-max-idle-ms
    // instead, unless it consumes (deliveries it waits for may be far apart).
    let Some(max) = idle_max(conn).filter(|max| heard.elapsed() > *max) else {
        return Verdict::Go;
    };
    let why = if stopped {
        format!("the client read none of its answers for {max:?} (--connections-max-idle-ms)")
    } else if heartbeat_s == 0 && !consuming(conn) {
        format!("connection idle for {max:?} with heartbeats off (--connections-max-idle-ms)")
    } else {
        return Verdict::Go;
    };
    Verdict::Close(AmqpError::new(errors::CONNECTION_FORCED, why))
}

/// `--connections-max-idle-ms`; None when 0 (no bound).
fn idle_max(conn: &Conn) -> Option<Duration> {
    let limits = conn.engine.config().connection_limits;
    let idle_ms = limits.connections_max_idle_ms;
    (idle_ms > 0).then(|| Duration::from_millis(idle_ms))
}

/// The frame loop after `open-ok`, until the peer closes, a connection error, a missed
/// heartbeat, idleness or the broker's shutdown.
async fn run(conn: &Rc<Conn>, reader: &mut FrameReader, heartbeat_s: u16) {
    let heartbeat_tick =
        (heartbeat_s > 0).then(|| Duration::from_millis(u64::from(heartbeat_s) * 250));
    let tick = [heartbeat_tick, idle_max(conn).map(|max| max / 4)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_secs(3600));
    let mut heard = Instant::now();
    let stopped = Cell::new(false);
    loop {
        if conn.out.is_closed() {
            return;
        }
        // Frames already buffered and methods answered on this shard never wait: the
        // shard's other connections get their turn here.
        runtime::yield_if_needed().await;
        conn.publish_room().await;
        let next = future::or(
            async {
                // A client that sends and never reads its answers is not read either.
                // Far above the consumers' bound, so that a client blocked writing acks
                // while deliveries wait for it to read is never stopped by this
                // (deliveries stop at the lower one).
                stopped.set(true);
                conn.out.under(OUTPUT_READ_STOP_BYTES).await;
                stopped.set(false);
                Next::Frame(reader.next(conn.frame_max.get()).await)
            },
            future::or(
                async {
                    runtime::sleep(tick).await;
                    Next::Tick
                },
                async {
                    conn.engine.shutdown().wait().await;
                    Next::Shutdown
                },
            ),
        )
        .await;
        let frame = match next {
            Next::Tick => match on_tick(conn, heard, stopped.get(), heartbeat_s) {
                Verdict::Go => continue,
                Verdict::End => return,
                Verdict::Close(e) => {
                    close_with(conn, reader, e).await;
                    return;
                }
            },
            Next::Shutdown => {
                let e = AmqpError::new(errors::CONNECTION_FORCED, "broker shutdown");
                close_with(conn, reader, e).await;
                return;
            }
            Next::Frame(Ok(None)) => return,
            Next::Frame(Ok(Some(frame))) => frame,
            Next::Frame(Err(e)) => {
                let e = frame_error(e);
                if e.code != errors::CONNECTION_FORCED {
                    close_with(conn, reader, e).await;
                }
                return;
            }
        };
        heard = Instant::now();
        let handled = handle_frame(conn, frame).await;
        if !reader.has_frame() {
            // Nothing more to read now: batched publishes go.
            super::publish::flush_all(conn);
        }
        match handled {
            Ok(Flow::Go) => {}
            Ok(Flow::Closed | Flow::CloseRequested) => {
                // The client closes the socket once it has close-ok (a client that
                // reads to the end would otherwise see the end of stream with it and
                // call the close unclean); bounded, for one that never does.
                flushed_or_late(conn).await;
                let eof = async {
                    while let Ok(Some(_)) = reader.next(FRAME_MAX).await {
                        // A client that keeps sending would otherwise keep the shard,
                        // and the timer beside this loop would never be looked at.
                        runtime::yield_if_needed().await;
                    }
                };
                future::or(eof, runtime::sleep(CLOSE_OK_WAIT)).await;
                return;
            }
            Err(e) => {
                close_with(conn, reader, e).await;
                return;
            }
        }
    }
}

/// Whether any channel of the connection has a consumer (deliveries may come at any time).
fn consuming(conn: &Conn) -> bool {
    conn.channels
        .borrow()
        .values()
        .any(|ch| !ch.consumers.borrow().is_empty())
}

pub enum Flow {
    Go,
    /// The client asked to close: release, then close-ok.
    CloseRequested,
    /// The client closed the connection (close-ok sent).
    Closed,
}

async fn handle_frame(conn: &Rc<Conn>, frame: RawFrame) -> Result<Flow, AmqpError> {
    match frame.kind {
        frames::FRAME_HEARTBEAT => {
            if frame.channel != 0 {
                return Err(AmqpError::new(
                    errors::FRAME_ERROR,
                    format!("heartbeat frame on channel {}", frame.channel),
                ));
            }
            Ok(Flow::Go)
        }
        frames::FRAME_METHOD => {
            let method = frames::decode_method(&frame.payload)
                .map_err(|e| AmqpError::new(errors::FRAME_ERROR, e))?;
            count(&method);
            if frame.channel == 0 {
                return match connection_method(conn, method)? {
                    Flow::CloseRequested => {
                        // What the connection held is gone before close-ok (its
                        // exclusive queues included), as RabbitMQ does.
                        release(conn).await;
                        let ok = connection::CloseOk {};
                        conn.out.method(
                            0,
                            AMQPClass::Connection(connection::AMQPMethod::CloseOk(ok)),
                        );
                        Ok(Flow::Closed)
                    }
                    flow => Ok(flow),
                };
            }
            channel_frame(conn, frame.channel, Incoming::Method(method)).await?;
            Ok(Flow::Go)
        }
        frames::FRAME_HEADER | frames::FRAME_BODY => {
            if frame.channel == 0 {
                return Err(AmqpError::new(
                    errors::UNEXPECTED_FRAME,
                    format!("content frame (type {}) on channel 0", frame.kind),
                ));
            }
            let content = if frame.kind == frames::FRAME_HEADER {
                Incoming::Header(frame.payload)
            } else {
                Incoming::Body(frame.payload)
            };
            channel_frame(conn, frame.channel, content).await?;
            Ok(Flow::Go)
        }
        other => Err(AmqpError::new(
            errors::FRAME_ERROR,
            format!("unknown frame type {other}"),
        )),
    }
}

/// What a channel is handed.
pub enum Incoming {
    Method(AMQPClass),
    Header(bytes::Bytes),
    Body(bytes::Bytes),
}

fn connection_method(conn: &Rc<Conn>, method: AMQPClass) -> Result<Flow, AmqpError> {
    let at = (method.get_amqp_class_id(), method.get_amqp_method_id());
    match method {
        AMQPClass::Connection(connection::AMQPMethod::Close(close)) => {
            tracing::debug!(peer = %conn.peer, code = close.reply_code, "AMQP client closed the connection");
            Ok(Flow::CloseRequested)
        }
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(Flow::Closed),
        AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
            let ok = connection::UpdateSecretOk {};
            conn.out.method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(ok)),
            );
            Ok(Flow::Go)
        }
        // A client's blocked/unblocked notices (RabbitMQ ignores them too).
        AMQPClass::Connection(connection::AMQPMethod::Blocked(_))
        | AMQPClass::Connection(connection::AMQPMethod::Unblocked(_)) => Ok(Flow::Go),
        other => Err(AmqpError::new(
            errors::COMMAND_INVALID,
            format!(
                "class {} method {} is not valid on channel 0",
                other.get_amqp_class_id(),
                other.get_amqp_method_id()
            ),
        )
        .at(at)),
    }
}

async fn channel_frame(conn: &Rc<Conn>, id: u16, incoming: Incoming) -> Result<(), AmqpError> {
    let existing = conn.channels.borrow().get(&id).cloned();
    let Some(ch) = existing else {
        return match incoming {
            Incoming::Method(AMQPClass::Channel(
                amq_protocol::protocol::channel::AMQPMethod::Open(_),
            )) => open_channel(conn, id),
            Incoming::Method(m) => Err(AmqpError::new(
                errors::CHANNEL_ERROR,
                format!("expected 'channel.open' on channel {id}"),
            )
            .at((m.get_amqp_class_id(), m.get_amqp_method_id()))),
            _ => Err(AmqpError::new(
                errors::UNEXPECTED_FRAME,
                format!("content frame on channel {id}, which is not open"),
            )),
        };
    };
    ch.handle(conn, incoming).await
}

fn open_channel(conn: &Rc<Conn>, id: u16) -> Result<(), AmqpError> {
    if id > conn.channel_max.get() {
        return Err(AmqpError::new(
            errors::NOT_ALLOWED,
            format!(
                "channel {id} is above the negotiated channel_max ({})",
                conn.channel_max.get()
            ),
        )
        .at((20, 10)));
    }
    let ch = Rc::new(Channel::new(id));
    conn.channels.borrow_mut().insert(id, ch);
    let ok = amq_protocol::protocol::channel::OpenOk {};
    conn.out.method(
        id,
        AMQPClass::Channel(amq_protocol::protocol::channel::AMQPMethod::OpenOk(ok)),
    );
    Ok(())
}

/// Sends `connection.close` with `e`, waits briefly for `close-ok` (dropping whatever
/// else arrives, as the spec asks), then the connection ends.
async fn close_with(conn: &Rc<Conn>, reader: &mut FrameReader, e: AmqpError) {
    tracing::info!(peer = %conn.peer, code = e.code, "closing AMQP connection: {}", e.text);
    let close = connection::Close {
        reply_code: e.code,
        reply_text: e.reply_text().into(),
        class_id: e.class_id,
        method_id: e.method_id,
    };
    conn.out.method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(close)),
    );
    let wait = async {
        loop {
            // A client that keeps sending would otherwise keep the shard, and the timer
            // beside this loop would never be looked at.
            runtime::yield_if_needed().await;
            match reader.next(FRAME_MAX).await {
                Ok(Some(f)) if f.kind == frames::FRAME_METHOD && f.channel == 0 => {
                    if let Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) =
                        frames::decode_method(&f.payload)
                    {
                        return;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    };
    // The close goes out before the socket closes: the connection's end lets the writer
    // write what is buffered (`finish_writing`).
    future::or(wait, runtime::sleep(CLOSE_OK_WAIT)).await;
}

impl Conn {
    /// A publish was handed to the engine with `bytes` of body.
    pub fn publish_started(&self, bytes: u64) {
        self.publishes.set(self.publishes.get() + 1);
        self.publish_bytes.set(self.publish_bytes.get() + bytes);
    }

    pub fn publish_finished(&self, n: usize, bytes: u64) {
        self.publishes.set(self.publishes.get().saturating_sub(n));
        self.publish_bytes
            .set(self.publish_bytes.get().saturating_sub(bytes));
        self.publish_done.notify(usize::MAX);
    }

    fn publish_full(&self) -> bool {
        let limits = self.engine.config().connection_limits;
        self.publishes.get() >= limits.max_in_flight_requests
            || self.publish_bytes.get() >= limits.max_in_flight_bytes
    }

    /// Waits while the connection has as many publishes in flight as it may; the
    /// client is told it is blocked while it waits (if it takes the notice).
    async fn publish_room(self: &Rc<Self>) {
        if !self.publish_full() {
            return;
        }
        // What waits in batches must go, or nothing would ever drain.
        super::publish::flush_all(self);
        if self.blocked_notify.get() && !self.blocked.get() {
            self.blocked.set(true);
            let blocked = connection::Blocked {
                reason: "publishes in flight at the connection's bound".into(),
            };
            self.out.method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Blocked(blocked)),
            );
        }
        let room = || !self.publish_full() || self.out.is_closed();
        runtime::until(&self.publish_done, room).await;
        if self.blocked.get() {
            self.blocked.set(false);
            let unblocked = connection::Unblocked {};
            self.out.method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Unblocked(unblocked)),
            );
        }
    }

    /// Closes channel `ch` with `e` (the channel ignores what arrives until close-ok).
    pub fn channel_error(self: &Rc<Self>, ch: &Rc<Channel>, e: AmqpError) {
        ch.fail(self, e);
    }
}
