//! An AMQP 0-9-1 connection at the frame level, for what a well-behaved client never
//! sends: frames built and parsed by `amq-protocol` (no hand-written method encoders)
//! over a plain blocking `TcpStream` whose every read has a timeout.

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{
    basic, channel, confirm, connection, exchange, queue, AMQPClass, BasicProperties,
};
use amq_protocol::types::{AMQPValue, ChannelId, FieldTable, LongString};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// How long a test waits for one answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// The protocol header of AMQP 0-9-1, which a server also sends back to refuse another.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// Bytes around a frame's payload: type, channel, size (7) and the frame-end octet.
pub const FRAME_OVERHEAD: usize = 8;
/// The frame-end octet.
pub const FRAME_END: u8 = 0xCE;
/// Most bytes one read takes from the socket.
const READ_CHUNK: usize = 64 * 1024;

/// A SASL mechanism and the credentials it carries.
#[derive(Clone, Copy, Debug)]
pub enum Login<'a> {
    Plain(&'a str, &'a str),
    AmqPlain(&'a str, &'a str),
}

/// The values a client answers `connection.tune` with (0: take the server's).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tuning {
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}

/// How a wait for the peer ended when no frame came.
#[derive(Debug)]
pub enum RecvError {
    /// The peer closed the connection (EOF or reset).
    Closed,
    /// Nothing arrived before the deadline.
    TimedOut,
    /// Bytes that are not an AMQP frame.
    Garbage(String),
}

/// One whole frame's bytes.
pub fn encode(frame: &AMQPFrame) -> Vec<u8> {
    let ctx = WriteContext::from(Vec::new());
    match gen_frame(frame)(ctx) {
        Ok(ctx) => ctx.into_inner().0,
        Err(e) => panic!("encode {frame:?}: {e:?}"),
    }
}

/// A method frame's bytes.
pub fn method_frame(channel: ChannelId, method: AMQPClass) -> Vec<u8> {
    encode(&AMQPFrame::Method(channel, method))
}

/// `connection.close` with `code`, as the frame the server sends.
pub fn connection_close(code: u16, text: &str) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: code,
        reply_text: text.into(),
        class_id: 0,
        method_id: 0,
    }))
}

/// `queue.declare` of `name` with `arguments` (not durable, not exclusive).
pub fn queue_declare(name: &str, passive: bool, arguments: FieldTable) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments,
    }))
}

/// `exchange.declare` of `name` of type `kind`.
pub fn exchange_declare(name: &str, kind: &str, passive: bool) -> AMQPClass {
    AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
        exchange: name.into(),
        kind: kind.into(),
        passive,
        durable: false,
        auto_delete: false,
        internal: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

/// `basic.publish` to `exchange` with `routing_key`.
pub fn publish(exchange: &str, routing_key: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        mandatory: false,
        immediate: false,
    }))
}

/// A `basic.get` of `queue` (acknowledged later) and a `basic.recover` that puts the
/// message back: repeated, it asks for the same message's content again and again
/// from a client that sends 40 bytes per answer.
pub fn get_and_recover(channel: ChannelId, queue: &str) -> Vec<u8> {
    let get = AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
        queue: queue.into(),
        no_ack: false,
    }));
    let recover = AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue: true }));
    let mut round = method_frame(channel, get);
    round.extend(method_frame(channel, recover));
    round
}

/// The content header frame of a basic message of `body_size` bytes.
pub fn content_header(channel: ChannelId, body_size: u64) -> AMQPFrame {
    AMQPFrame::Header(
        channel,
        AMQPContentHeader {
            class_id: 60,
            body_size,
            properties: BasicProperties::default(),
        },
    )
}

/// A field table of one integer argument (e.g. `x-max-length`).
pub fn int_argument(name: &str, value: i64) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert(name.into(), AMQPValue::LongLongInt(value));
    table
}

/// The client properties every connection sends: the capability that makes a server
/// answer a failed login with `connection.close` 403 before it closes the socket, and
/// `extra` capabilities (e.g. `connection.blocked`).
fn client_properties(extra: &[&str]) -> FieldTable {
    let mut capabilities = FieldTable::default();
    capabilities.insert(
        "authentication_failure_close".into(),
        AMQPValue::Boolean(true),
    );
    for capability in extra {
        capabilities.insert((*capability).into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert("product".into(), AMQPValue::LongString("amqp_raw".into()));
    props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    props
}

/// The `connection.start-ok` that logs in with `login`.
pub fn start_ok(login: Login<'_>) -> AMQPClass {
    start_ok_with(login, &[])
}

/// The `connection.start-ok` that logs in with `login` and advertises `capabilities`
/// besides `authentication_failure_close`.
pub fn start_ok_with(login: Login<'_>, capabilities: &[&str]) -> AMQPClass {
    let (mechanism, response): (&str, LongString) = match login {
        Login::Plain(user, password) => ("PLAIN", format!("\0{user}\0{password}").into()),
        Login::AmqPlain(user, password) => ("AMQPLAIN", amqplain_response(user, password)),
    };
    AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: client_properties(capabilities),
        mechanism: mechanism.into(),
        response,
        locale: "en_US".into(),
    }))
}

/// AMQPLAIN's response: a field table without its length prefix, as amq-protocol's
/// `Credentials` builds it.
fn amqplain_response(user: &str, password: &str) -> LongString {
    amq_protocol::auth::Credentials::new(user.into(), password.into())
        .sasl_auth_string(amq_protocol::auth::SASLMechanism::AMQPlain)
}

/// A connection at the frame level.
pub struct RawAmqp {
    pub stream: TcpStream,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
    /// What `connection.tune` proposed, once it came.
    pub server_tune: Option<connection::Tune>,
}

impl RawAmqp {
    /// A TCP connection; nothing sent yet.
    pub fn connect(addr: &str) -> RawAmqp {
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => panic!("connect to {addr}: {e}"),
        };
        stream.set_nodelay(true).expect("nodelay");
        RawAmqp {
            stream,
            buf: Vec::new(),
            server_tune: None,
        }
    }

    /// Logged in with guest/guest and the server's tuning, vhost `/` open.
    pub fn open(addr: &str) -> RawAmqp {
        RawAmqp::open_with(addr, Login::Plain("guest", "guest"), Tuning::default())
    }

    /// Logged in with `login`, tuned with `tuning`, vhost `/` open; panics on a refusal.
    pub fn open_with(addr: &str, login: Login<'_>, tuning: Tuning) -> RawAmqp {
        RawAmqp::open_advertising(addr, login, tuning, &[])
    }

    /// As `open_with`, advertising `capabilities` too (e.g. `connection.blocked`).
    pub fn open_advertising(
        addr: &str,
        login: Login<'_>,
        tuning: Tuning,
        capabilities: &[&str],
    ) -> RawAmqp {
        let mut conn = RawAmqp::connect(addr);
        conn.start();
        conn.send_method(0, start_ok_with(login, capabilities));
        conn.tune(tuning);
        conn.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        );
        match conn.recv_method(0) {
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => conn,
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
    }

    /// Sends the protocol header; answers the server's `connection.start`.
    pub fn start(&mut self) -> connection::Start {
        self.send_bytes(PROTOCOL_HEADER);
        match self.recv_method(0) {
            AMQPClass::Connection(connection::AMQPMethod::Start(start)) => start,
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    /// Waits for `connection.tune` (after start-ok) and answers it with `tuning`, each
    /// zero field replaced by the server's proposal.
    pub fn tune(&mut self, tuning: Tuning) -> connection::Tune {
        let tune = match self.recv_method(0) {
            AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) => tune,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        let pick = |ours: u32, theirs: u32| if ours == 0 { theirs } else { ours };
        let ok = connection::TuneOk {
            channel_max: pick(tuning.channel_max.into(), tune.channel_max.into()) as u16,
            frame_max: pick(tuning.frame_max, tune.frame_max),
            heartbeat: tuning.heartbeat,
        };
        self.send_method(0, AMQPClass::Connection(connection::AMQPMethod::TuneOk(ok)));
        self.server_tune = Some(tune.clone());
        tune
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!("send {} bytes: {e}", bytes.len());
        }
    }

    /// Sends bytes, tolerating a peer that has already closed (hostile-input cases).
    pub fn try_send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send(&mut self, frame: &AMQPFrame) {
        self.send_bytes(&encode(frame));
    }

    pub fn send_method(&mut self, channel: ChannelId, method: AMQPClass) {
        self.send(&AMQPFrame::Method(channel, method));
    }

    /// The next frame (heartbeats included), waiting at most `within`.
    pub fn recv_within(&mut self, within: Duration) -> Result<AMQPFrame, RecvError> {
        let deadline = Instant::now() + within;
        loop {
            if !self.buf.is_empty() {
                match parse_frame(&self.buf[..]) {
                    Ok((rest, frame)) => {
                        let used = self.buf.len() - rest.len();
                        self.buf.drain(..used);
                        return Ok(frame);
                    }
                    Err(e) if e.is_incomplete() => {}
                    Err(e) => return Err(RecvError::Garbage(format!("{e:?}: {:?}", self.buf))),
                }
            }
            self.read_more(deadline)?;
        }
    }

    /// Reads what is there into `buf`, waiting until `deadline`.
    fn read_more(&mut self, deadline: Instant) -> Result<usize, RecvError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RecvError::TimedOut);
        }
        self.stream
            .set_read_timeout(Some(left))
            .expect("read timeout");
        let mut chunk = vec![0u8; READ_CHUNK];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(RecvError::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(RecvError::TimedOut)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(0),
            Err(_) => Err(RecvError::Closed),
        }
    }

    /// The next frame that is not a heartbeat; panics on anything but a frame.
    pub fn recv(&mut self) -> AMQPFrame {
        let deadline = Instant::now() + ANSWER_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left) {
                Ok(AMQPFrame::Heartbeat) => continue,
                Ok(frame) => return frame,
                Err(e) => panic!("waiting for a frame: {e:?}"),
            }
        }
    }

    /// The next method, which must come on `channel`.
    pub fn recv_method(&mut self, channel: ChannelId) -> AMQPClass {
        match self.recv() {
            AMQPFrame::Method(ch, method) if ch == channel => method,
            other => panic!("expected a method on channel {channel}, got {other:?}"),
        }
    }

    /// Sends `method` on `channel` and answers the method that comes back there.
    pub fn call(&mut self, channel: ChannelId, method: AMQPClass) -> AMQPClass {
        self.send_method(channel, method);
        self.recv_method(channel)
    }

    pub fn channel_open(&mut self, channel: ChannelId) {
        let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
        match self.call(channel, open) {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => {}
            other => panic!("expected channel.open-ok on {channel}, got {other:?}"),
        }
    }

    /// Declares a queue named `name` (server-named when empty); answers its name.
    pub fn declare_queue(
        &mut self,
        channel: ChannelId,
        name: &str,
        arguments: FieldTable,
    ) -> String {
        match self.call(channel, queue_declare(name, false, arguments)) {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => ok.queue.to_string(),
            other => panic!("expected queue.declare-ok for '{name}', got {other:?}"),
        }
    }

    /// Puts the channel in confirm mode.
    pub fn confirm_select(&mut self, channel: ChannelId) {
        let select = AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        }));
        match self.call(channel, select) {
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => {}
            other => panic!("expected confirm.select-ok, got {other:?}"),
        }
    }

    /// Publishes `body` in body frames of at most `chunk` bytes of payload each.
    pub fn publish_chunked(
        &mut self,
        channel: ChannelId,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        chunk: usize,
    ) {
        let mut bytes = method_frame(channel, publish(exchange, routing_key));
        bytes.extend(encode(&content_header(channel, body.len() as u64)));
        for part in body.chunks(chunk.max(1)) {
            bytes.extend(encode(&AMQPFrame::Body(channel, part.to_vec())));
        }
        self.send_bytes(&bytes);
    }

    /// Publishes `body` in one body frame.
    pub fn publish(&mut self, channel: ChannelId, exchange: &str, routing_key: &str, body: &[u8]) {
        self.publish_chunked(channel, exchange, routing_key, body, body.len());
    }

    /// Publishes on a channel in confirm mode and waits for the broker's ack.
    pub fn publish_confirmed(&mut self, channel: ChannelId, queue: &str, body: &[u8]) {
        self.publish(channel, "", queue, body);
        match self.recv_method(channel) {
            AMQPClass::Basic(basic::AMQPMethod::Ack(_)) => {}
            other => panic!("expected basic.ack (confirm), got {other:?}"),
        }
    }

    /// `basic.get` (no-ack) of one message, its body frames as they came; None on
    /// get-empty.
    pub fn get(&mut self, channel: ChannelId, queue: &str) -> Option<Vec<Vec<u8>>> {
        let get = AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: queue.into(),
            no_ack: true,
        }));
        match self.call(channel, get) {
            AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_)) => None,
            AMQPClass::Basic(basic::AMQPMethod::GetOk(_)) => Some(self.recv_content(channel)),
            other => panic!("expected basic.get-ok or get-empty, got {other:?}"),
        }
    }

    /// The content header and body frames that follow a delivery on `channel`.
    pub fn recv_content(&mut self, channel: ChannelId) -> Vec<Vec<u8>> {
        let size = match self.recv() {
            AMQPFrame::Header(ch, header) if ch == channel => header.body_size,
            other => panic!("expected a content header on {channel}, got {other:?}"),
        };
        let mut frames = Vec::new();
        let mut got = 0u64;
        while got < size {
            match self.recv() {
                AMQPFrame::Body(ch, part) if ch == channel => {
                    got += part.len() as u64;
                    frames.push(part);
                }
                other => panic!("expected a body frame on {channel}, got {other:?}"),
            }
        }
        assert_eq!(
            got, size,
            "body frames carry more than the header announced"
        );
        frames
    }

    /// Waits for `channel.close` on `channel` (skipping deliveries and confirms that
    /// were already on the way), answers close-ok; returns the reply code and text.
    pub fn expect_channel_close(&mut self, channel: ChannelId) -> (u16, String) {
        let deadline = Instant::now() + ANSWER_WITHIN;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left) {
                Ok(AMQPFrame::Method(ch, AMQPClass::Channel(channel::AMQPMethod::Close(c))))
                    if ch == channel =>
                {
                    let ok = AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                    self.send_method(channel, ok);
                    return (c.reply_code, c.reply_text.to_string());
                }
                Ok(AMQPFrame::Method(
                    _,
                    AMQPClass::Connection(connection::AMQPMethod::Close(c)),
                )) => panic!(
                    "expected channel.close on {channel}, the connection was closed: {} {}",
                    c.reply_code, c.reply_text
                ),
                Ok(AMQPFrame::Heartbeat) => continue,
                Ok(frame) => skipped.push(frame),
                Err(e) => panic!(
                    "waiting for channel.close on {channel}: {e:?}; frames that came instead: \
                     {skipped:?}"
                ),
            }
        }
    }

    /// Waits for `connection.close` (skipping other frames), answers close-ok; returns
    /// the reply code and text.
    pub fn expect_connection_close(&mut self) -> (u16, String) {
        let deadline = Instant::now() + ANSWER_WITHIN;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left) {
                Ok(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(c)),
                )) => {
                    let ok = AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                        connection::CloseOk {},
                    ));
                    // The server may already have closed its side.
                    let _ = self.try_send_bytes(&method_frame(0, ok));
                    return (c.reply_code, c.reply_text.to_string());
                }
                Ok(AMQPFrame::Heartbeat) => continue,
                Ok(frame) => skipped.push(frame),
                Err(e) => panic!(
                    "waiting for connection.close: {e:?}; frames that came instead: {skipped:?}"
                ),
            }
        }
    }

    /// Whether the server closes the socket within `within` (frames before it are
    /// discarded).
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            self.buf.clear();
            match self.read_more(deadline) {
                Err(RecvError::Closed) => return true,
                Err(_) => return false,
                Ok(_) => continue,
            }
        }
    }

    /// Everything the server sends until it closes the socket, at most until `within`;
    /// None if it did not close by then.
    pub fn read_to_close(&mut self, within: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + within;
        loop {
            match self.read_more(deadline) {
                Err(RecvError::Closed) => return Some(std::mem::take(&mut self.buf)),
                Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Closes our side for writing (a truncated frame stays truncated).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// A clean `connection.close` and its close-ok.
    pub fn close(mut self) {
        let close = connection_close(200, "bye");
        match self.call(0, close) {
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {}
            other => panic!("expected connection.close-ok, got {other:?}"),
        }
    }
}
