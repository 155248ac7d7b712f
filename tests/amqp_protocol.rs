//! AMQP 0-9-1 at the protocol level, frame by frame (tests/common/amqp_raw.rs): the
//! handshake and SASL, vhosts, guest only on loopback, tuning (frame_max, channel_max),
//! heartbeats both ways, channel errors that close only their channel, connection errors
//! that close only their connection, hostile bytes (truncated frames, a 2 GiB frame,
//! handshakes that never finish) while another client keeps working, and flow control
//! (confirms with `multiple`, `channel.flow`, `connection.blocked`).
//!
//! Every expectation was first checked against RabbitMQ 3.10.8 (Debian's
//! `rabbitmq-server`, started with `RABBITMQ_NODE_PORT=5673 RABBITMQ_NODENAME=ref@localhost
//! rabbitmq-server -detached`): this file and amqp_raw.rs, built in a scratch crate
//! (dependencies `amq-protocol` 10 without default features, `tempfile`) beside a stub
//! `common` module whose `Broker` has `amqp_addr` 127.0.0.1:5673 for every start, adds
//! the `--amqp-users` file's users with `rabbitmqctl add_user` and `set_permissions -p /
//! USER ".*" ".*" ".*"`, and reads RSS from the `beam.smp` process. RabbitMQ listens on
//! every interface, so `--amqp-addr 0.0.0.0:0` needs nothing there. Where RabbitMQ and
//! the specification differ, the case says which codes it takes.

mod common;
use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{
    basic, channel, connection, exchange, queue, AMQPClass, AMQPHardError, AMQPSoftError,
    BasicProperties,
};
use amq_protocol::types::{AMQPValue, FieldTable};
use common::amqp_raw::{
    self, content_header, encode, exchange_declare, get_and_recover, int_argument, method_frame,
    queue_declare, Login, RawAmqp, RecvError, Tuning, ANSWER_WITHIN, FRAME_END, FRAME_OVERHEAD,
    PROTOCOL_HEADER,
};
use common::{shared_broker, unique, Broker};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a client that never finishes its handshake may stay connected (RabbitMQ's
/// `handshake_timeout` is 10 s), with room for a loaded machine.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(30);
/// How long a client that sends nothing after negotiating a 1 s heartbeat may stay
/// connected: two missed intervals and some slack.
const SILENT_PEER_DEADLINE: Duration = Duration::from_secs(5);
/// The longest a test's witness connection keeps running round trips.
const WITNESS_MAX: Duration = Duration::from_secs(120);
/// How much a broker's peak resident set may grow while a client claims a 2 GiB frame
/// or a 2^62-byte body.
const RSS_GROWTH_MAX_BYTES: u64 = 256 * 1024 * 1024;

fn soft(e: AMQPSoftError) -> u16 {
    e.get_id()
}

fn hard(e: AMQPHardError) -> u16 {
    e.get_id()
}

/// A second client that publishes and fetches one message at a time, with confirms,
/// on its own connection until stopped: the bystander other clients' errors must not
/// disturb.
struct Witness {
    stop: Arc<AtomicBool>,
    round_trips: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Witness {
    /// Connected, with its queue declared, and one round trip done.
    fn start(addr: &str) -> Witness {
        let stop = Arc::new(AtomicBool::new(false));
        let round_trips = Arc::new(AtomicU64::new(0));
        let addr = addr.to_string();
        let (stop2, count) = (stop.clone(), round_trips.clone());
        let thread = std::thread::spawn(move || witness_loop(&addr, &stop2, &count));
        let witness = Witness {
            stop,
            round_trips,
            thread: Some(thread),
        };
        witness.wait_past(0);
        witness
    }

    fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::SeqCst)
    }

    /// Waits until the witness has done more than `count` round trips.
    fn wait_past(&self, count: u64) {
        let deadline = Instant::now() + ANSWER_WITHIN;
        while self.round_trips() <= count {
            let finished = self.thread.as_ref().is_none_or(JoinHandle::is_finished);
            assert!(!finished, "the witness connection stopped working");
            assert!(
                Instant::now() < deadline,
                "the witness connection made no round trip in {ANSWER_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Checks it keeps working after what happened so far, then stops it.
    fn finish(mut self) {
        self.wait_past(self.round_trips());
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if let Err(e) = thread.join() {
                std::panic::resume_unwind(e);
            }
        }
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn witness_loop(addr: &str, stop: &AtomicBool, round_trips: &AtomicU64) {
    let mut conn = RawAmqp::open(addr);
    conn.channel_open(1);
    let queue = declare_exclusive(&mut conn, 1, "", FieldTable::default());
    conn.confirm_select(1);
    let deadline = Instant::now() + WITNESS_MAX;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let body = format!("witness {n}").into_bytes();
        conn.publish_confirmed(1, &queue, &body);
        let got = conn.get(1, &queue).map(|frames| frames.concat());
        assert_eq!(got, Some(body), "the witness got back another message");
        n += 1;
        round_trips.store(n, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(5));
    }
    conn.close();
}

/// Declares an exclusive queue (server-named when `name` is empty); answers its name.
fn declare_exclusive(
    conn: &mut RawAmqp,
    channel: u16,
    name: &str,
    arguments: FieldTable,
) -> String {
    let declare = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive: false,
        durable: false,
        exclusive: true,
        auto_delete: false,
        nowait: false,
        arguments,
    }));
    match conn.call(channel, declare) {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => ok.queue.to_string(),
        other => panic!("expected queue.declare-ok for '{name}', got {other:?}"),
    }
}

/// Whether `channel` answers a request that needs no exchange or queue: basic.qos.
fn channel_works(conn: &mut RawAmqp, channel: u16) {
    let qos = AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
        prefetch_count: 10,
        global: false,
    }));
    match conn.call(channel, qos) {
        AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => {}
        other => panic!("channel {channel} does not answer: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// 1. Handshake
// ---------------------------------------------------------------------------------

#[test]
fn start_advertises_mechanisms_locale_and_capabilities() {
    let broker = shared_broker();
    let mut conn = RawAmqp::connect(&broker.amqp_addr);
    let start = conn.start();
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).to_string();
    let mechanisms: Vec<&str> = mechanisms.split(' ').collect();
    for wanted in ["PLAIN", "AMQPLAIN"] {
        assert!(mechanisms.contains(&wanted), "mechanisms {mechanisms:?}");
    }
    let locales = String::from_utf8_lossy(start.locales.as_bytes()).to_string();
    assert!(
        locales.split(' ').any(|l| l == "en_US"),
        "locales {locales:?}"
    );
    let capabilities = match start.server_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(table)) => table.clone(),
        other => panic!("server properties without a capabilities table: {other:?}"),
    };
    for name in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "exchange_exchange_bindings",
        "connection.blocked",
        "per_consumer_qos",
        "direct_reply_to",
        "authentication_failure_close",
    ] {
        assert_eq!(
            capabilities.inner().get(name),
            Some(&AMQPValue::Boolean(true)),
            "capability {name} in {capabilities:?}"
        );
    }
}

#[test]
fn plain_login_reaches_open_ok() {
    let broker = shared_broker();
    let mut conn = RawAmqp::open_with(
        &broker.amqp_addr,
        Login::Plain("guest", "guest"),
        Tuning::default(),
    );
    let tune = conn.server_tune.clone().expect("tune");
    assert!(tune.frame_max >= 4096, "frame_max {}", tune.frame_max);
    conn.channel_open(1);
    channel_works(&mut conn, 1);
    conn.close();
}

#[test]
fn amqplain_login_reaches_open_ok() {
    let broker = shared_broker();
    let mut conn = RawAmqp::open_with(
        &broker.amqp_addr,
        Login::AmqPlain("guest", "guest"),
        Tuning::default(),
    );
    conn.channel_open(1);
    channel_works(&mut conn, 1);
    conn.close();
}

/// The server advertises authentication_failure_close and this client asks for it, so
/// a failed login is a connection.close 403 before the socket closes.
#[test]
fn wrong_password_is_access_refused() {
    let broker = shared_broker();
    for login in [
        Login::Plain("guest", "wrong"),
        Login::AmqPlain("guest", "wrong"),
        Login::Plain("nobody", "guest"),
    ] {
        let mut conn = RawAmqp::connect(&broker.amqp_addr);
        conn.start();
        conn.send_method(0, amqp_raw::start_ok(login));
        let (code, text) = conn.expect_connection_close();
        assert_eq!(
            code,
            soft(AMQPSoftError::ACCESSREFUSED),
            "{login:?}: {text}"
        );
        assert!(
            conn.closed_within(ANSWER_WITHIN),
            "{login:?}: socket open after the refusal"
        );
    }
}

/// A header of another protocol or version gets AMQP 0-9-1's header back, then close.
#[test]
fn wrong_protocol_header_gets_the_servers_header_back() {
    let broker = shared_broker();
    for header in [
        &b"AMQP\x01\x01\x00\x0a"[..],
        b"HTTP/1.1",
        b"AMQP\x00\x00\x08\x00",
    ] {
        let mut conn = RawAmqp::connect(&broker.amqp_addr);
        conn.send_bytes(header);
        let answer = conn.read_to_close(ANSWER_WITHIN);
        assert_eq!(
            answer.as_deref(),
            Some(&PROTOCOL_HEADER[..]),
            "answer to {header:?} (None: the socket stayed open)"
        );
    }
}

#[test]
fn unknown_vhost_is_not_allowed() {
    let broker = shared_broker();
    let mut conn = RawAmqp::connect(&broker.amqp_addr);
    conn.start();
    conn.send_method(0, amqp_raw::start_ok(Login::Plain("guest", "guest")));
    conn.tune(Tuning::default());
    let open = AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
        virtual_host: "/other".into(),
    }));
    conn.send_method(0, open);
    let (code, text) = conn.expect_connection_close();
    assert_eq!(code, hard(AMQPHardError::NOTALLOWED), "{text}");
    assert!(conn.closed_within(ANSWER_WITHIN), "socket open after 530");
}

// ---------------------------------------------------------------------------------
// 2. guest only on loopback
// ---------------------------------------------------------------------------------

/// This machine's address on its first non-loopback interface (the route a UDP socket
/// would take; nothing is sent).
fn non_loopback_ip() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    socket.connect("10.255.255.255:1").expect("udp route");
    let ip = socket.local_addr().expect("udp local addr").ip();
    assert!(!ip.is_loopback(), "no non-loopback address: {ip}");
    ip
}

#[test]
fn guest_is_refused_off_loopback_and_a_listed_user_is_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = dir.path().join("amqp-users");
    let user = unique("h4-user");
    std::fs::write(&users, format!("# test users\n{user}:s3cret\n")).expect("users file");
    let users_path = users.to_str().expect("utf-8 path");
    let broker = Broker::start_with(&["--amqp-addr", "0.0.0.0:0", "--amqp-users", users_path]);
    let port = broker.amqp_addr.rsplit(':').next().expect("port");
    let remote = format!("{}:{port}", non_loopback_ip());

    let mut conn = RawAmqp::connect(&remote);
    conn.start();
    conn.send_method(0, amqp_raw::start_ok(Login::Plain("guest", "guest")));
    let (code, text) = conn.expect_connection_close();
    assert_eq!(code, soft(AMQPSoftError::ACCESSREFUSED), "{text}");
    assert!(conn.closed_within(ANSWER_WITHIN), "socket open after 403");

    let mut conn = RawAmqp::open_with(&remote, Login::Plain(&user, "s3cret"), Tuning::default());
    conn.channel_open(1);
    channel_works(&mut conn, 1);
    conn.close();

    // guest still works on loopback.
    let local = format!("127.0.0.1:{port}");
    RawAmqp::open(&local).close();
}

// ---------------------------------------------------------------------------------
// 3. Tune
// ---------------------------------------------------------------------------------

#[test]
fn frame_max_4096_splits_deliveries_into_small_body_frames() {
    const FRAME_MAX: usize = 4096;
    let broker = shared_broker();
    let tuning = Tuning {
        frame_max: FRAME_MAX as u32,
        ..Tuning::default()
    };
    let mut conn = RawAmqp::open_with(&broker.amqp_addr, Login::Plain("guest", "guest"), tuning);
    conn.channel_open(1);
    let queue = declare_exclusive(&mut conn, 1, "", FieldTable::default());
    conn.confirm_select(1);
    let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    conn.publish_chunked(1, "", &queue, &body, FRAME_MAX - FRAME_OVERHEAD);
    match conn.recv_method(1) {
        AMQPClass::Basic(basic::AMQPMethod::Ack(_)) => {}
        other => panic!("expected a confirm, got {other:?}"),
    }
    let frames = conn.get(1, &queue).expect("the message");
    for frame in &frames {
        assert!(
            frame.len() + FRAME_OVERHEAD <= FRAME_MAX,
            "a body frame of {} bytes with frame_max {FRAME_MAX}",
            frame.len() + FRAME_OVERHEAD
        );
    }
    assert!(frames.len() >= 3, "{} body frames", frames.len());
    assert!(frames.concat() == body, "the body came back changed");
    conn.close();
}

/// RabbitMQ counts open channels against channel_max: with 2 negotiated, a third
/// channel (here numbered 3) is a connection error.
#[test]
fn channel_past_channel_max_is_a_connection_error() {
    let broker = shared_broker();
    let tuning = Tuning {
        channel_max: 2,
        ..Tuning::default()
    };
    let mut conn = RawAmqp::open_with(&broker.amqp_addr, Login::Plain("guest", "guest"), tuning);
    conn.channel_open(1);
    conn.channel_open(2);
    let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
    conn.send_method(3, open);
    let (code, text) = conn.expect_connection_close();
    assert_eq!(code, hard(AMQPHardError::NOTALLOWED), "{text}");
    assert!(
        conn.closed_within(ANSWER_WITHIN),
        "socket open after {code}"
    );
}

/// A content header frame of `size` bytes in all (its headers padded to fit).
fn content_header_of_size(channel: u16, body_size: u64, size: usize) -> Vec<u8> {
    let frame = |pad: usize| {
        let mut headers = FieldTable::default();
        headers.insert("pad".into(), AMQPValue::LongString(vec![b'p'; pad].into()));
        encode(&AMQPFrame::Header(
            channel,
            AMQPContentHeader {
                class_id: 60,
                body_size,
                properties: BasicProperties::default().with_headers(headers),
            },
        ))
    };
    let overhead = frame(0).len();
    assert!(
        size >= overhead,
        "a header frame cannot be under {overhead} bytes"
    );
    let bytes = frame(size - overhead);
    assert_eq!(bytes.len(), size);
    bytes
}

/// frame_max counts the whole frame, 8 bytes of framing included: a frame of exactly
/// frame_max bytes is taken, a larger one is 501 FRAME_ERROR. RabbitMQ lets a payload
/// of up to frame_max through (a "fudge" of 8 bytes for clients that count only the
/// payload), so the refused frame here is past that too; the spec refuses the 8 bytes
/// between, and that range is not asserted either way.
#[test]
fn frame_of_exactly_frame_max_is_taken_and_a_larger_one_is_a_frame_error() {
    const FRAME_MAX: usize = 4096;
    let broker = shared_broker();
    let tuning = Tuning {
        frame_max: FRAME_MAX as u32,
        ..Tuning::default()
    };
    let mut conn = RawAmqp::open_with(&broker.amqp_addr, Login::Plain("guest", "guest"), tuning);
    conn.channel_open(1);
    let queue = declare_exclusive(&mut conn, 1, "", FieldTable::default());
    conn.confirm_select(1);
    let mut bytes = method_frame(1, amqp_raw::publish("", &queue));
    bytes.extend(content_header_of_size(1, 4, FRAME_MAX));
    bytes.extend(encode(&AMQPFrame::Body(1, b"full".to_vec())));
    conn.send_bytes(&bytes);
    match conn.recv_method(1) {
        AMQPClass::Basic(basic::AMQPMethod::Ack(_)) => {}
        other => panic!("expected a confirm for a {FRAME_MAX}-byte header frame, got {other:?}"),
    }
    let mut bytes = method_frame(1, amqp_raw::publish("", &queue));
    bytes.extend(content_header_of_size(1, 4, FRAME_MAX + FRAME_OVERHEAD + 1));
    bytes.extend(encode(&AMQPFrame::Body(1, b"over".to_vec())));
    conn.send_bytes(&bytes);
    let (code, text) = conn.expect_connection_close();
    assert_eq!(code, hard(AMQPHardError::FRAMEERROR), "{text}");
    assert!(conn.closed_within(ANSWER_WITHIN), "socket open after 501");
}

/// A tune-ok below the protocol's least frame_max (4096) or above what the server
/// proposed: RabbitMQ closes the socket without a connection.close; a close frame first
/// is taken too.
#[test]
fn tune_ok_outside_the_servers_bounds_closes_the_connection() {
    let broker = shared_broker();
    let server = {
        let mut conn = RawAmqp::connect(&broker.amqp_addr);
        conn.start();
        conn.send_method(0, amqp_raw::start_ok(Login::Plain("guest", "guest")));
        conn.tune(Tuning::default())
    };
    assert!(server.channel_max > 0 && server.channel_max < u16::MAX);
    let cases = [
        (
            "frame_max 1024",
            Tuning {
                frame_max: 1024,
                ..Tuning::default()
            },
        ),
        (
            "frame_max above the server's",
            Tuning {
                frame_max: server.frame_max.saturating_mul(2),
                ..Tuning::default()
            },
        ),
        (
            "channel_max above the server's",
            Tuning {
                channel_max: server.channel_max + 1,
                ..Tuning::default()
            },
        ),
    ];
    for (what, tuning) in cases {
        let mut conn = RawAmqp::connect(&broker.amqp_addr);
        conn.start();
        conn.send_method(0, amqp_raw::start_ok(Login::Plain("guest", "guest")));
        conn.tune(tuning);
        let open = AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        }));
        let _ = conn.try_send_bytes(&method_frame(0, open));
        assert!(
            conn.closed_within(ANSWER_WITHIN),
            "{what}: the connection stayed open"
        );
    }
}

#[test]
fn method_frame_larger_than_frame_max_is_a_frame_error() {
    let broker = shared_broker();
    let witness = Witness::start(&broker.amqp_addr);
    let tuning = Tuning {
        frame_max: 4096,
        ..Tuning::default()
    };
    let mut conn = RawAmqp::open_with(&broker.amqp_addr, Login::Plain("guest", "guest"), tuning);
    conn.channel_open(1);
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-padding".into(),
        AMQPValue::LongString(vec![b'p'; 5000].into()),
    );
    let frame = method_frame(1, queue_declare(&unique("h4-big"), false, arguments));
    assert!(frame.len() > 4096);
    conn.send_bytes(&frame);
    let (code, text) = conn.expect_connection_close();
    assert_eq!(code, hard(AMQPHardError::FRAMEERROR), "{text}");
    assert!(conn.closed_within(ANSWER_WITHIN), "socket open after 501");
    witness.finish();
}

// ---------------------------------------------------------------------------------
// 4. Heartbeats
// ---------------------------------------------------------------------------------

#[test]
fn server_sends_heartbeats_to_a_client_it_hears() {
    let broker = shared_broker();
    let tuning = Tuning {
        heartbeat: 1,
        ..Tuning::default()
    };
    let mut conn = RawAmqp::open_with(&broker.amqp_addr, Login::Plain("guest", "guest"), tuning);
    let heartbeat = encode(&AMQPFrame::Heartbeat);
    let until = Instant::now() + Duration::from_secs(4);
    let mut heard = 0;
    while Instant::now() < until {
        conn.send_bytes(&heartbeat);
        match conn.recv_within(Duration::from_millis(400)) {
            Ok(AMQPFrame::Heartbeat) => heard += 1,
            Ok(other) => panic!("unexpected frame {other:?}"),
            Err(RecvError::TimedOut) => {}
            Err(e) => panic!("connection lost while sending heartbeats: {e:?}"),
        }
    }
    assert!(heard >= 2, "{heard} heartbeats from the server in 4 s");
    conn.channel_open(1);
    channel_works(&mut conn, 1);
    conn.close();
}

#[test]
fn silent_client_is_dropped_after_two_heartbeat_intervals() {
    let broker = shared_broker();
    let tuning = Tuning {
        heartbeat: 1,
        ..Tuning::default()
    };
    let mut conn = RawAmqp::open_with(&broker.amqp_addr, Login::Plain("guest", "guest"), tuning);
    let opened = Instant::now();
    // Less than one interval of silence is no reason to drop anyone.
    assert!(
        !conn.closed_within(Duration::from_millis(900)),
        "dropped within 0.9 s of a 1 s heartbeat"
    );
    assert!(
        conn.closed_within(SILENT_PEER_DEADLINE),
        "a client silent for {:?} with a 1 s heartbeat is still connected",
        opened.elapsed()
    );
}

// ---------------------------------------------------------------------------------
// 5. Channel errors close only their channel
// ---------------------------------------------------------------------------------

/// Opens channels 1 and 2 on a new connection, lets `provoke` misbehave on channel 1,
/// and expects channel.close with `code` there; then channel 2 still works, channel 1
/// reopens and works, and another connection kept working throughout.
fn channel_error_case(code: u16, provoke: impl FnOnce(&Broker, &mut RawAmqp)) -> String {
    let broker = shared_broker();
    let witness = Witness::start(&broker.amqp_addr);
    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    conn.channel_open(2);
    provoke(&broker, &mut conn);
    let (got, text) = conn.expect_channel_close(1);
    assert_eq!(got, code, "channel.close {got} {text}");
    channel_works(&mut conn, 2);
    conn.channel_open(1);
    channel_works(&mut conn, 1);
    conn.close();
    witness.finish();
    text
}

#[test]
fn passive_declare_of_a_missing_queue_is_not_found() {
    channel_error_case(soft(AMQPSoftError::NOTFOUND), |_, conn| {
        conn.send_method(
            1,
            queue_declare(&unique("h4-missing"), true, FieldTable::default()),
        );
    });
}

#[test]
fn passive_declare_of_a_missing_exchange_is_not_found() {
    channel_error_case(soft(AMQPSoftError::NOTFOUND), |_, conn| {
        conn.send_method(1, exchange_declare(&unique("h4-missing"), "direct", true));
    });
}

#[test]
fn publish_to_a_missing_exchange_is_not_found() {
    channel_error_case(soft(AMQPSoftError::NOTFOUND), |_, conn| {
        conn.publish(1, &unique("h4-missing"), "key", b"lost");
    });
}

#[test]
fn queue_redeclare_with_other_arguments_is_precondition_failed() {
    channel_error_case(soft(AMQPSoftError::PRECONDITIONFAILED), |_, conn| {
        // Named by us: RabbitMQ refuses any declare of an `amq.gen-` name (403).
        let name = unique("h4-redeclared");
        declare_exclusive(conn, 1, &name, int_argument("x-max-length", 10));
        let redeclare = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name.as_str().into(),
            exclusive: true,
            arguments: int_argument("x-max-length", 20),
            ..queue::Declare::default()
        }));
        conn.send_method(1, redeclare);
    });
}

#[test]
fn ack_of_an_unknown_delivery_tag_is_precondition_failed() {
    channel_error_case(soft(AMQPSoftError::PRECONDITIONFAILED), |_, conn| {
        let ack = AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 99,
            multiple: false,
        }));
        conn.send_method(1, ack);
    });
}

#[test]
fn declaring_another_connections_exclusive_queue_is_resource_locked() {
    // Held here so that the shared broker outlives the owner's last check.
    let _broker = shared_broker();
    let mut owner = None;
    channel_error_case(soft(AMQPSoftError::RESOURCELOCKED), |broker, conn| {
        let mut other = RawAmqp::open(&broker.amqp_addr);
        other.channel_open(1);
        let name = declare_exclusive(&mut other, 1, &unique("h4-locked"), FieldTable::default());
        conn.send_method(1, queue_declare(&name, false, FieldTable::default()));
        owner = Some(other);
    });
    // The owner is not disturbed either.
    let mut owner = owner.expect("owner connection");
    channel_works(&mut owner, 1);
    owner.close();
}

#[test]
fn declaring_an_amq_prefixed_exchange_is_access_refused() {
    channel_error_case(soft(AMQPSoftError::ACCESSREFUSED), |_, conn| {
        conn.send_method(
            1,
            exchange_declare(&format!("amq.{}", unique("h4-x")), "direct", false),
        );
    });
}

#[test]
fn delete_if_empty_of_a_non_empty_queue_is_precondition_failed() {
    channel_error_case(soft(AMQPSoftError::PRECONDITIONFAILED), |_, conn| {
        let name = declare_exclusive(conn, 1, "", FieldTable::default());
        conn.confirm_select(1);
        conn.publish_confirmed(1, &name, b"still here");
        let delete = AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: name.as_str().into(),
            if_unused: false,
            if_empty: true,
            nowait: false,
        }));
        conn.send_method(1, delete);
    });
}

/// RabbitMQ reserves `amq.` for queue names too (a client may not declare an
/// `amq.gen-` name of its own).
#[test]
fn declaring_an_amq_prefixed_queue_is_access_refused() {
    channel_error_case(soft(AMQPSoftError::ACCESSREFUSED), |_, conn| {
        let name = format!("amq.{}", unique("h4-q"));
        conn.send_method(1, queue_declare(&name, false, FieldTable::default()));
    });
}

#[test]
fn redeclaring_an_exchange_with_another_type_is_precondition_failed() {
    channel_error_case(soft(AMQPSoftError::PRECONDITIONFAILED), |_, conn| {
        let name = unique("h4-retyped");
        match conn.call(1, exchange_declare(&name, "direct", false)) {
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_)) => {}
            other => panic!("expected exchange.declare-ok, got {other:?}"),
        }
        conn.send_method(1, exchange_declare(&name, "fanout", false));
    });
}

#[test]
fn publish_to_an_internal_exchange_is_access_refused() {
    channel_error_case(soft(AMQPSoftError::ACCESSREFUSED), |_, conn| {
        let name = unique("h4-internal");
        let declare = AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: name.as_str().into(),
            kind: "fanout".into(),
            auto_delete: true,
            internal: true,
            ..exchange::Declare::default()
        }));
        match conn.call(1, declare) {
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_)) => {}
            other => panic!("expected exchange.declare-ok, got {other:?}"),
        }
        conn.publish(1, &name, "", b"not for clients");
    });
}

#[test]
fn delete_if_unused_of_a_bound_exchange_is_precondition_failed() {
    channel_error_case(soft(AMQPSoftError::PRECONDITIONFAILED), |_, conn| {
        let name = unique("h4-bound");
        let declare = AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: name.as_str().into(),
            kind: "fanout".into(),
            auto_delete: true,
            ..exchange::Declare::default()
        }));
        match conn.call(1, declare) {
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_)) => {}
            other => panic!("expected exchange.declare-ok, got {other:?}"),
        }
        let queue = declare_exclusive(conn, 1, "", FieldTable::default());
        let bind = AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: queue.as_str().into(),
            exchange: name.as_str().into(),
            routing_key: "".into(),
            nowait: false,
            arguments: FieldTable::default(),
        }));
        match conn.call(1, bind) {
            AMQPClass::Queue(queue::AMQPMethod::BindOk(_)) => {}
            other => panic!("expected queue.bind-ok, got {other:?}"),
        }
        let delete = AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
            exchange: name.as_str().into(),
            if_unused: true,
            nowait: false,
        }));
        conn.send_method(1, delete);
    });
}

#[test]
fn delete_if_unused_of_a_consumed_queue_is_precondition_failed() {
    channel_error_case(soft(AMQPSoftError::PRECONDITIONFAILED), |_, conn| {
        let queue = declare_exclusive(conn, 2, "", FieldTable::default());
        let consume = AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: queue.as_str().into(),
            consumer_tag: "c1".into(),
            ..basic::Consume::default()
        }));
        match conn.call(2, consume) {
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => {}
            other => panic!("expected basic.consume-ok, got {other:?}"),
        }
        let delete = AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: queue.as_str().into(),
            if_unused: true,
            if_empty: false,
            nowait: false,
        }));
        conn.send_method(1, delete);
    });
}

#[test]
fn consume_from_a_missing_queue_is_not_found() {
    channel_error_case(soft(AMQPSoftError::NOTFOUND), |_, conn| {
        let consume = AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: unique("h4-missing").as_str().into(),
            consumer_tag: "c1".into(),
            ..basic::Consume::default()
        }));
        conn.send_method(1, consume);
    });
}

#[test]
fn bind_to_a_missing_exchange_is_not_found() {
    channel_error_case(soft(AMQPSoftError::NOTFOUND), |_, conn| {
        let queue = declare_exclusive(conn, 1, "", FieldTable::default());
        let bind = AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: queue.as_str().into(),
            exchange: unique("h4-missing").as_str().into(),
            routing_key: "key".into(),
            nowait: false,
            arguments: FieldTable::default(),
        }));
        conn.send_method(1, bind);
    });
}

/// The second ack of one delivery tag acks a tag the channel no longer holds.
#[test]
fn second_ack_of_one_delivery_is_precondition_failed() {
    channel_error_case(soft(AMQPSoftError::PRECONDITIONFAILED), |_, conn| {
        let queue = declare_exclusive(conn, 1, "", FieldTable::default());
        conn.publish(1, "", &queue, b"ack me twice");
        let deadline = Instant::now() + ANSWER_WITHIN;
        let tag = loop {
            let get = AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: queue.as_str().into(),
                no_ack: false,
            }));
            match conn.call(1, get) {
                AMQPClass::Basic(basic::AMQPMethod::GetOk(ok)) => {
                    conn.recv_content(1);
                    break ok.delivery_tag;
                }
                AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_)) => {
                    assert!(Instant::now() < deadline, "the message never arrived");
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => panic!("expected basic.get-ok or get-empty, got {other:?}"),
            }
        };
        let ack = AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: tag,
            multiple: false,
        }));
        conn.send_method(1, ack.clone());
        conn.send_method(1, ack);
    });
}

/// RabbitMQ: a consumer tag already in use on the channel is a connection error, 530
/// NOT_ALLOWED ("attempt to reuse consumer tag").
#[test]
fn reusing_a_consumer_tag_on_a_channel_is_not_allowed() {
    connection_error_case(hard(AMQPHardError::NOTALLOWED), |conn| {
        let queue = declare_exclusive(conn, 1, "", FieldTable::default());
        let consume = AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: queue.as_str().into(),
            consumer_tag: "twice".into(),
            ..basic::Consume::default()
        }));
        match conn.call(1, consume.clone()) {
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => {}
            other => panic!("expected basic.consume-ok, got {other:?}"),
        }
        conn.send_method(1, consume);
    });
}

// ---------------------------------------------------------------------------------
// 6. Connection errors close their connection
// ---------------------------------------------------------------------------------

/// Lets `provoke` misbehave on a new connection with channel 1 open and expects
/// connection.close with `code`, then the socket closed; another connection, opened
/// before, kept working throughout.
fn connection_error_case(code: u16, provoke: impl FnOnce(&mut RawAmqp)) {
    connection_error_case_of(&[code], provoke);
}

/// As `connection_error_case`, where RabbitMQ and the AMQP 0-9-1 specification name
/// different codes and either is taken (the first is RabbitMQ's).
fn connection_error_case_of(codes: &[u16], provoke: impl FnOnce(&mut RawAmqp)) {
    let broker = shared_broker();
    let witness = Witness::start(&broker.amqp_addr);
    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    provoke(&mut conn);
    let (got, text) = conn.expect_connection_close();
    assert!(
        codes.contains(&got),
        "connection.close {got} {text}, expected one of {codes:?}"
    );
    assert!(conn.closed_within(ANSWER_WITHIN), "socket open after {got}");
    witness.finish();
}

#[test]
fn body_frame_without_a_publish_is_unexpected_frame() {
    connection_error_case(hard(AMQPHardError::UNEXPECTEDFRAME), |conn| {
        conn.send(&AMQPFrame::Body(1, b"orphan".to_vec()));
    });
}

#[test]
fn content_header_on_channel_zero_is_unexpected_frame() {
    connection_error_case(hard(AMQPHardError::UNEXPECTEDFRAME), |conn| {
        conn.send(&content_header(0, 5));
    });
}

#[test]
fn content_header_without_a_publish_is_unexpected_frame() {
    connection_error_case(hard(AMQPHardError::UNEXPECTEDFRAME), |conn| {
        conn.send(&content_header(1, 5));
    });
}

/// RabbitMQ answers a method on a channel that was never opened with 504 CHANNEL_ERROR
/// ("expected 'channel.open'").
#[test]
fn method_on_a_channel_that_is_not_open_is_a_channel_error() {
    connection_error_case(hard(AMQPHardError::CHANNELERROR), |conn| {
        conn.send_method(
            7,
            queue_declare(&unique("h4-nochannel"), false, FieldTable::default()),
        );
    });
}

/// RabbitMQ answers a second channel.open on an open channel with 504 CHANNEL_ERROR.
#[test]
fn reopening_an_open_channel_is_a_channel_error() {
    connection_error_case(hard(AMQPHardError::CHANNELERROR), |conn| {
        conn.send_method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
    });
}

/// RabbitMQ answers a channel-class method on channel 0 with 504 CHANNEL_ERROR
/// ("unexpected method in connection state running"); 503 COMMAND_INVALID, which the
/// specification uses for a method on the wrong channel, is taken too.
#[test]
fn channel_method_on_channel_zero_is_a_connection_error() {
    let codes = [
        hard(AMQPHardError::CHANNELERROR),
        hard(AMQPHardError::COMMANDINVALID),
    ];
    connection_error_case_of(&codes, |conn| {
        conn.send_method(
            0,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
    });
}

/// RabbitMQ answers a connection-class method on another channel than 0 with 503
/// COMMAND_INVALID.
#[test]
fn connection_method_on_a_channel_is_command_invalid() {
    connection_error_case(hard(AMQPHardError::COMMANDINVALID), |conn| {
        let open = AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        }));
        conn.send_method(1, open);
    });
}

#[test]
fn method_between_publish_and_its_content_header_is_unexpected_frame() {
    connection_error_case(hard(AMQPHardError::UNEXPECTEDFRAME), |conn| {
        let mut bytes = method_frame(1, amqp_raw::publish("", "nowhere"));
        bytes.extend(method_frame(
            1,
            exchange_declare("amq.direct", "direct", true),
        ));
        conn.send_bytes(&bytes);
    });
}

/// RabbitMQ answers 505 UNEXPECTED_FRAME; the specification says an invalid heartbeat
/// frame is 501 FRAME_ERROR, which is taken too.
#[test]
fn heartbeat_on_a_channel_is_a_connection_error() {
    let codes = [
        hard(AMQPHardError::UNEXPECTEDFRAME),
        hard(AMQPHardError::FRAMEERROR),
    ];
    connection_error_case_of(&codes, |conn| {
        conn.send(&AMQPFrame::InvalidHeartbeat(1));
    });
}

/// A method id no class has: RabbitMQ closes the socket without a connection.close;
/// either way the connection must end.
#[test]
fn unknown_method_closes_the_connection() {
    let broker = shared_broker();
    let witness = Witness::start(&broker.amqp_addr);
    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    // queue class (50), method 99, no arguments.
    conn.send_bytes(&[1, 0, 1, 0, 0, 0, 4, 0, 50, 0, 99, FRAME_END]);
    assert!(
        conn.closed_within(ANSWER_WITHIN),
        "the connection survived an unknown method"
    );
    witness.finish();
}

#[test]
fn frame_end_other_than_0xce_is_a_frame_error() {
    connection_error_case(hard(AMQPHardError::FRAMEERROR), |conn| {
        let mut frame = method_frame(1, exchange_declare("amq.direct", "direct", true));
        let last = frame.len() - 1;
        assert_eq!(frame[last], FRAME_END);
        frame[last] = 0x00;
        conn.send_bytes(&frame);
    });
}

#[test]
fn unknown_frame_type_is_a_frame_error() {
    connection_error_case(hard(AMQPHardError::FRAMEERROR), |conn| {
        conn.send_bytes(&[9, 0, 1, 0, 0, 0, 0, FRAME_END]);
    });
}

// ---------------------------------------------------------------------------------
// 7. Hostile bytes
// ---------------------------------------------------------------------------------

/// Byte streams cut short, each followed by the client closing its side: the broker
/// closes the connection and keeps serving everyone else.
#[test]
fn truncated_frames_then_close_leave_the_broker_serving() {
    let broker = shared_broker();
    let witness = Witness::start(&broker.amqp_addr);
    let declare = method_frame(
        1,
        queue_declare(&unique("h4-cut"), false, FieldTable::default()),
    );
    let cuts: Vec<(&str, bool, Vec<u8>)> = vec![
        (
            "half a protocol header",
            false,
            PROTOCOL_HEADER[..5].to_vec(),
        ),
        ("half a frame header", true, declare[..4].to_vec()),
        (
            "half a method payload",
            true,
            declare[..declare.len() / 2].to_vec(),
        ),
        (
            "a frame without its end octet",
            true,
            declare[..declare.len() - 1].to_vec(),
        ),
        ("a publish whose body frame is cut", true, {
            let mut bytes = method_frame(1, amqp_raw::publish("", "nowhere"));
            bytes.extend(encode(&content_header(1, 100)));
            let body = encode(&AMQPFrame::Body(1, vec![b'b'; 100]));
            bytes.extend(&body[..50]);
            bytes
        }),
    ];
    for (what, after_open, bytes) in cuts {
        let mut conn = if after_open {
            let mut conn = RawAmqp::open(&broker.amqp_addr);
            conn.channel_open(1);
            conn
        } else {
            RawAmqp::connect(&broker.amqp_addr)
        };
        conn.send_bytes(&bytes);
        conn.shutdown_write();
        assert!(
            conn.closed_within(ANSWER_WITHIN),
            "{what}: the connection stayed open"
        );
        let mut fresh = RawAmqp::open(&broker.amqp_addr);
        fresh.channel_open(1);
        channel_works(&mut fresh, 1);
        fresh.close();
    }
    witness.finish();
}

/// A frame header that claims 2 GiB of payload is refused at once (501), and the bytes
/// that follow it are never collected into a buffer that size.
#[test]
fn frame_claiming_2_gib_is_refused_without_allocating_it() {
    let mut broker = Broker::start();
    let witness = Witness::start(&broker.amqp_addr);
    let rss_before = broker.peak_rss_bytes().expect("broker rss");
    let huge = |channel: u16| {
        let mut header = vec![1u8];
        header.extend(channel.to_be_bytes());
        header.extend(0x8000_0000u32.to_be_bytes());
        header
    };

    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    conn.send_bytes(&huge(1));
    conn.send_bytes(&[0u8; 64]);
    let (code, text) = conn.expect_connection_close();
    assert_eq!(code, hard(AMQPHardError::FRAMEERROR), "{text}");
    assert!(conn.closed_within(ANSWER_WITHIN), "socket open after 501");

    // Before the handshake and after it, followed by 64 MiB that a broker reading the
    // claimed payload would have to keep.
    for after_open in [false, true] {
        let mut conn = if after_open {
            RawAmqp::open(&broker.amqp_addr)
        } else {
            let mut conn = RawAmqp::connect(&broker.amqp_addr);
            conn.start();
            conn
        };
        let mut bytes = huge(0);
        bytes.resize(1024 * 1024, b'z');
        let _ = conn.try_send_bytes(&bytes);
        for _ in 0..63 {
            if conn.try_send_bytes(&bytes[..1024 * 1024]).is_err() {
                break;
            }
        }
        assert!(
            conn.closed_within(ANSWER_WITHIN),
            "socket open after a 2 GiB frame"
        );
    }
    assert!(broker.is_running(), "the broker died");
    let rss_after = broker.peak_rss_bytes().expect("broker rss");
    eprintln!("peak RSS {rss_before} -> {rss_after} bytes");
    assert!(
        rss_after < rss_before + RSS_GROWTH_MAX_BYTES,
        "peak RSS grew from {rss_before} to {rss_after} bytes"
    );
    witness.finish();
}

/// Lengths inside a method's arguments that run past the frame: RabbitMQ answers 501
/// FRAME_ERROR ("cannot decode").
#[test]
fn method_fields_that_run_past_the_frame_are_a_frame_error() {
    // A field table that claims 4 GiB, and a short string that claims 250 bytes of
    // the 3 that follow.
    let declare = method_frame(1, queue_declare("abc", false, FieldTable::default()));
    let mut huge_table = declare.clone();
    let end = huge_table.len() - 1;
    huge_table[end - 4..end].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    let mut long_name = declare;
    // Frame header (7), class and method ids (4), reserved short (2): the name's length.
    assert_eq!(long_name[13], 3);
    long_name[13] = 250;
    for bytes in [huge_table, long_name] {
        connection_error_case(hard(AMQPHardError::FRAMEERROR), |conn| {
            conn.send_bytes(&bytes);
        });
    }
}

/// A content header that announces 2^62 bytes of body: RabbitMQ waits for the body
/// (nothing is refused before it has come); whatever the connection does, nothing is
/// reserved for that size and everyone else keeps being served.
#[test]
fn content_header_announcing_2_pow_62_bytes_reserves_nothing() {
    let mut broker = Broker::start();
    let witness = Witness::start(&broker.amqp_addr);
    let rss_before = broker.peak_rss_bytes().expect("broker rss");
    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    let mut bytes = method_frame(1, amqp_raw::publish("", "nowhere"));
    bytes.extend(encode(&content_header(1, 1 << 62)));
    bytes.extend(encode(&AMQPFrame::Body(1, vec![b'b'; 100_000])));
    let _ = conn.try_send_bytes(&bytes);
    witness.wait_past(witness.round_trips() + 5);
    drop(conn);
    let mut fresh = RawAmqp::open(&broker.amqp_addr);
    fresh.channel_open(1);
    channel_works(&mut fresh, 1);
    fresh.close();
    assert!(broker.is_running(), "the broker died");
    let rss_after = broker.peak_rss_bytes().expect("broker rss");
    eprintln!("peak RSS {rss_before} -> {rss_after} bytes");
    assert!(
        rss_after < rss_before + RSS_GROWTH_MAX_BYTES,
        "peak RSS grew from {rss_before} to {rss_after} bytes"
    );
    witness.finish();
}

#[test]
fn client_silent_after_the_protocol_header_is_dropped() {
    let broker = shared_broker();
    let mut conn = RawAmqp::connect(&broker.amqp_addr);
    conn.start();
    assert!(
        conn.closed_within(HANDSHAKE_DEADLINE),
        "a client silent after connection.start is still connected after {HANDSHAKE_DEADLINE:?}"
    );
}

#[test]
fn client_that_never_sends_the_protocol_header_is_dropped() {
    let broker = shared_broker();
    let mut conn = RawAmqp::connect(&broker.amqp_addr);
    assert!(
        conn.closed_within(HANDSHAKE_DEADLINE),
        "a client that sent nothing is still connected after {HANDSHAKE_DEADLINE:?}"
    );
}

/// 200 connections that stop at several points of the handshake do not keep another
/// client from working, and are all dropped.
#[test]
fn stalled_handshakes_do_not_stop_a_working_client() {
    const STALLED: usize = 200;
    let broker = shared_broker();
    let witness = Witness::start(&broker.amqp_addr);
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        let mut conn = RawAmqp::connect(&broker.amqp_addr);
        match i % 4 {
            0 => {}
            1 => conn.send_bytes(&PROTOCOL_HEADER[..4]),
            2 => conn.send_bytes(PROTOCOL_HEADER),
            _ => {
                conn.start();
                // Half a start-ok.
                let start_ok = method_frame(0, amqp_raw::start_ok(Login::Plain("guest", "guest")));
                conn.send_bytes(&start_ok[..start_ok.len() / 2]);
            }
        }
        stalled.push(conn);
    }
    let mark = witness.round_trips();
    witness.wait_past(mark + 10);
    let mut fresh = RawAmqp::open(&broker.amqp_addr);
    fresh.channel_open(1);
    channel_works(&mut fresh, 1);
    fresh.close();
    let deadline = Instant::now() + HANDSHAKE_DEADLINE;
    for (i, conn) in stalled.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            conn.closed_within(left),
            "stalled connection {i} still open after {HANDSHAKE_DEADLINE:?}"
        );
    }
    witness.finish();
}

// ---------------------------------------------------------------------------------
// 9. Publisher confirms, channel.flow, connection.blocked
// ---------------------------------------------------------------------------------

/// Publishes of a persistent 100-byte message to the default exchange that a confirms
/// case sends in one write.
const CONFIRMED_PUBLISHES: u64 = 200;
/// The same for the connection.blocked case.
const BLOCKED_PUBLISHES: u64 = 100;

/// Declares a durable queue (server-named when `name` is empty); answers its name.
fn declare_durable(conn: &mut RawAmqp, channel: u16, name: &str) -> String {
    let declare = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: FieldTable::default(),
    }));
    match conn.call(channel, declare) {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => ok.queue.to_string(),
        other => panic!("expected queue.declare-ok for '{name}', got {other:?}"),
    }
}

/// `count` persistent publishes to `queue` through the default exchange, as one buffer.
fn persistent_publishes(channel: u16, queue: &str, count: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    for n in 0..count {
        bytes.extend(method_frame(channel, amqp_raw::publish("", queue)));
        let body = format!("{n:0100}").into_bytes();
        bytes.extend(encode(&AMQPFrame::Header(
            channel,
            AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties: BasicProperties::default().with_delivery_mode(2),
            },
        )));
        bytes.extend(encode(&AMQPFrame::Body(channel, body)));
    }
    bytes
}

/// What a publisher hears while it waits for its confirms.
#[derive(Debug, PartialEq)]
enum Heard {
    Ack { tag: u64, multiple: bool },
    Nack { tag: u64, multiple: bool },
    Blocked,
    Unblocked,
}

/// Reads until confirms (acks or nacks) on `channel` reach delivery tag `last`.
fn confirms_until(conn: &mut RawAmqp, channel: u16, last: u64) -> Vec<Heard> {
    let deadline = Instant::now() + ANSWER_WITHIN;
    let mut heard = Vec::new();
    let mut reached = 0;
    while reached < last {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = match conn.recv_within(left) {
            Ok(AMQPFrame::Heartbeat) => continue,
            Ok(AMQPFrame::Method(ch, AMQPClass::Basic(basic::AMQPMethod::Ack(a))))
                if ch == channel =>
            {
                reached = reached.max(a.delivery_tag);
                Heard::Ack {
                    tag: a.delivery_tag,
                    multiple: a.multiple,
                }
            }
            Ok(AMQPFrame::Method(ch, AMQPClass::Basic(basic::AMQPMethod::Nack(n))))
                if ch == channel =>
            {
                reached = reached.max(n.delivery_tag);
                Heard::Nack {
                    tag: n.delivery_tag,
                    multiple: n.multiple,
                }
            }
            Ok(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Blocked(_)))) => {
                Heard::Blocked
            }
            Ok(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Unblocked(_)),
            )) => Heard::Unblocked,
            Ok(other) => panic!("expected confirms, got {other:?} after {heard:?}"),
            Err(e) => panic!("confirms up to {reached} of {last}: {e:?}; heard {heard:?}"),
        };
        heard.push(next);
    }
    heard
}

/// Checks that the acks in `heard` cover tags 1..=last exactly once, in increasing
/// order, and that nothing was nacked.
fn assert_acked_once_in_order(heard: &[Heard], last: u64) {
    let mut covered = 0u64;
    for h in heard {
        match *h {
            Heard::Ack {
                tag,
                multiple: true,
            } => {
                assert!(
                    tag > covered,
                    "multiple ack of {tag} after {covered}: {heard:?}"
                );
                covered = tag;
            }
            Heard::Ack {
                tag,
                multiple: false,
            } => {
                assert_eq!(tag, covered + 1, "single ack out of order: {heard:?}");
                covered = tag;
            }
            Heard::Nack { .. } => panic!("a persistent publish was nacked: {heard:?}"),
            Heard::Blocked | Heard::Unblocked => {}
        }
    }
    assert_eq!(covered, last, "acks cover 1..={covered}: {heard:?}");
}

#[test]
fn confirms_of_a_burst_of_persistent_publishes_use_multiple_and_cover_each_tag_once() {
    let broker = shared_broker();
    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    let queue = declare_durable(&mut conn, 1, &unique("h4-confirm-burst"));
    conn.confirm_select(1);
    conn.send_bytes(&persistent_publishes(1, &queue, CONFIRMED_PUBLISHES));
    let heard = confirms_until(&mut conn, 1, CONFIRMED_PUBLISHES);
    assert!(
        heard
            .iter()
            .any(|h| matches!(h, Heard::Ack { multiple: true, .. })),
        "no multiple ack among {} confirms: {heard:?}",
        heard.len()
    );
    assert_acked_once_in_order(&heard, CONFIRMED_PUBLISHES);
    conn.close();
}

/// RabbitMQ answers `channel.flow(active=true)` with flow-ok and refuses
/// `active=false` from a client as a connection error, 540 NOT_IMPLEMENTED
/// ("active=false"): consumers are paused with basic.qos or basic.cancel instead.
#[test]
fn channel_flow_true_is_answered_and_flow_false_is_not_implemented() {
    let broker = shared_broker();
    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    let flow = |active| AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active }));
    match conn.call(1, flow(true)) {
        AMQPClass::Channel(channel::AMQPMethod::FlowOk(ok)) => assert!(ok.active),
        other => panic!("expected channel.flow-ok, got {other:?}"),
    }
    conn.send_method(1, flow(false));
    let (code, text) = conn.expect_connection_close();
    assert_eq!(code, hard(AMQPHardError::NOTIMPLEMENTED), "{text}");
}

/// RabbitMQ blocks publishers on a memory or disk alarm, not per connection: this case
/// passed against it with `rabbitmqctl set_vm_memory_high_watermark 0` before the
/// publishes and `0.4` three seconds later, in place of `--max-in-flight-requests 1`.
#[test]
fn a_publisher_past_max_in_flight_is_blocked_then_unblocked_and_every_publish_confirmed() {
    let broker = Broker::start_with(&["--max-in-flight-requests", "1"]);
    let mut conn = RawAmqp::open_advertising(
        &broker.amqp_addr,
        Login::Plain("guest", "guest"),
        Tuning::default(),
        &["connection.blocked"],
    );
    conn.channel_open(1);
    let queue = declare_durable(&mut conn, 1, &unique("h4-blocked"));
    conn.confirm_select(1);
    conn.send_bytes(&persistent_publishes(1, &queue, BLOCKED_PUBLISHES));
    let mut heard = confirms_until(&mut conn, 1, BLOCKED_PUBLISHES);
    assert!(heard.contains(&Heard::Blocked), "never blocked: {heard:?}");
    // Notices alternate, blocked first; the last unblock may follow the last confirm.
    let notices = |heard: &[Heard]| -> Vec<bool> {
        heard
            .iter()
            .filter_map(|h| match h {
                Heard::Blocked => Some(true),
                Heard::Unblocked => Some(false),
                _ => None,
            })
            .collect()
    };
    if notices(&heard).last() == Some(&true) {
        match conn.recv_within(ANSWER_WITHIN) {
            Ok(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Unblocked(_)),
            )) => heard.push(Heard::Unblocked),
            other => panic!("expected connection.unblocked, got {other:?} after {heard:?}"),
        }
    }
    let notices = notices(&heard);
    assert!(
        notices.iter().enumerate().all(|(i, b)| *b == (i % 2 == 0)),
        "blocked and unblocked do not alternate: {heard:?}"
    );
    assert_acked_once_in_order(&heard, BLOCKED_PUBLISHES);
    conn.close();
}

/// A client that keeps asking for a 120 KB message (`basic.get`, then `basic.recover` to
/// put it back) and never reads the answers: without a bound the broker would buffer
/// 120 KB per 40 bytes it reads. It stops reading that connection once its answers pile
/// up (`OUTPUT_READ_STOP_BYTES`), so its RSS stays bounded and others are served.
#[test]
fn a_client_that_never_reads_its_answers_is_not_read_either() {
    let mut broker = Broker::start();
    let witness = Witness::start(&broker.amqp_addr);
    let rss_before = broker.peak_rss_bytes().expect("broker rss");
    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    let queue = declare_durable(&mut conn, 1, &unique("h4-never-reads"));
    conn.confirm_select(1);
    // One body frame under the default frame_max.
    const BODY: usize = 120_000;
    conn.publish_confirmed(1, &queue, &vec![b'm'; BODY]);
    let round = get_and_recover(1, &queue);
    let rounds: Vec<u8> = round.repeat(256);
    conn.stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .expect("write timeout");
    // 1 GiB of answers asked for, unless the broker stops reading first (a write that
    // times out: its socket buffers are full).
    let rounds_max = (1usize << 30) / BODY;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut asked = 0usize;
    while asked < rounds_max && Instant::now() < deadline {
        if conn.try_send_bytes(&rounds).is_err() {
            break;
        }
        asked += 256;
    }
    // Time for the broker to serve all it read (kernel buffers hold the rest).
    std::thread::sleep(Duration::from_secs(3));
    assert!(broker.is_running(), "the broker died");
    let rss_after = broker.peak_rss_bytes().expect("broker rss");
    eprintln!("{asked} rounds sent; peak RSS {rss_before} -> {rss_after} bytes");
    assert!(
        rss_after < rss_before + RSS_GROWTH_MAX_BYTES,
        "peak RSS grew from {rss_before} to {rss_after} bytes"
    );
    witness.finish();
}

/// `CONSUMERS_MAX` consumers over all of a connection's channels: one more is refused
/// with 406 on its channel, and the connection and its other channel keep working.
#[test]
fn consumers_past_the_connections_bound_are_refused() {
    let broker = shared_broker();
    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    conn.channel_open(2);
    let queue = declare_durable(&mut conn, 1, &unique("h4-consumers-bound"));
    let consume = |tag: String, nowait: bool| {
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: queue.as_str().into(),
            consumer_tag: tag.into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait,
            arguments: FieldTable::default(),
        }))
    };
    // Half on each channel: the bound is the connection's, not a channel's.
    let mut bytes = Vec::new();
    for n in 0..peregrine::amqp::CONSUMERS_MAX {
        let channel = 1 + (n % 2) as u16;
        bytes.extend(method_frame(channel, consume(format!("c{n}"), true)));
    }
    conn.send_bytes(&bytes);
    channel_works(&mut conn, 1);
    channel_works(&mut conn, 2);
    conn.send_method(2, consume("one-too-many".into(), false));
    let (code, text) = conn.expect_channel_close(2);
    assert_eq!(code, soft(AMQPSoftError::PRECONDITIONFAILED), "{text}");
    channel_works(&mut conn, 1);
    conn.close();
}

/// `UNACKED_MAX` unacked `basic.get` deliveries per channel: the next get is refused
/// with 406, and the deliveries it holds are still there to ack.
#[test]
fn basic_get_past_the_channels_unacked_bound_is_refused() {
    // Its own broker: 65,537 gets keep a debug broker busy for half a minute, which
    // the shared broker's other cases must not wait behind.
    let broker = Broker::start();
    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    let queue = declare_durable(&mut conn, 1, &unique("h4-unacked-bound"));
    let count = peregrine::amqp::UNACKED_MAX as u64 + 1;
    conn.send_bytes(&persistent_publishes(1, &queue, count));
    // A passive declare answers once the publishes before it are in the queue.
    match conn.call(1, queue_declare(&queue, true, FieldTable::default())) {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => {
            assert_eq!(u64::from(ok.message_count), count)
        }
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
    let get = method_frame(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: queue.as_str().into(),
            no_ack: false,
        })),
    );
    conn.send_bytes(&get.repeat(count as usize));
    let mut got = 0u64;
    // All 65,537 answers within two minutes (half a minute alone on a debug build; more
    // beside the other cases).
    let deadline = Instant::now() + Duration::from_secs(120);
    let code = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = match conn.recv_within(left) {
            Ok(frame) => frame,
            Err(e) => panic!("after {got} gets: {e:?}"),
        };
        match frame {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))) => got += 1,
            AMQPFrame::Header(..) | AMQPFrame::Body(..) | AMQPFrame::Heartbeat => {}
            AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::Close(close))) => {
                break close.reply_code;
            }
            other => panic!("after {got} gets: {other:?}"),
        }
    };
    assert_eq!(got, count - 1, "deliveries before the refusal");
    assert_eq!(code, soft(AMQPSoftError::PRECONDITIONFAILED));
    conn.close();
}
