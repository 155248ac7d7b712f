//! The idle-connection bound (`--connections-max-idle-ms`, Kafka's
//! `connections.max.idle.ms`, issue 20): a native, Kafka, or heartbeat-less AMQP
//! connection that sends nothing is closed after the bound, and so is a Kafka or AMQP
//! client that pipelines requests and never reads the answers; one that keeps sending,
//! one waiting in a long poll (native pull Receive, Kafka Fetch) or holding a
//! subscription or an AMQP consumer is not, however long it waits.
//!
//! The bounds here are short; every wait for something that must happen has a generous
//! deadline, and the "not closed" cases keep well inside what a loaded machine allows.

mod common;

use amq_protocol::protocol::{basic, AMQPClass};
use bytes::BytesMut;
use common::amqp_raw::{get_and_recover, Login, RawAmqp, RecvError, Tuning};
use common::kafka_raw::{request_frame, RawKafka};
use common::Broker;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use peregrine::native::messages::{PublishSpec, QueueSpec};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The bound where a connection must be closed.
const IDLE_MS: u64 = 500;
/// The bound where a connection must stay open: far above the gaps between a busy
/// client's requests, even on a loaded machine.
const IDLE_BUSY_MS: u64 = 1_500;
/// How long a long poll waits: several times `IDLE_MS`.
const LONG_POLL_MS: u32 = 3_000;
/// How long a test waits for something that must happen.
const WITHIN: Duration = Duration::from_secs(20);

fn broker(idle_ms: u64) -> Broker {
    let idle_ms = idle_ms.to_string();
    Broker::start_with(&["--shards", "1", "--connections-max-idle-ms", &idle_ms])
}

/// Waits for the broker to close `conn` (EOF or reset); how long that took, or None if
/// it was still open after `WITHIN`.
fn closed_after(conn: &mut TcpStream, since: Instant) -> Option<Duration> {
    conn.set_read_timeout(Some(WITHIN)).expect("read timeout");
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            // Whatever the broker said before closing is not what is tested here.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Some(since.elapsed()),
        }
    }
}

fn idle_closes(broker: &Broker) -> usize {
    broker.log().matches("(--connections-max-idle-ms)").count()
}

#[test]
fn a_silent_native_connection_is_closed_after_the_bound() {
    let broker = broker(IDLE_MS);
    let since = Instant::now();
    let mut conn = TcpStream::connect(&broker.addr).expect("connect");
    let took = closed_after(&mut conn, since).expect("an idle native connection stayed open");
    assert!(
        took >= Duration::from_millis(IDLE_MS),
        "closed after {took:?}, before the {IDLE_MS} ms bound"
    );
    assert_eq!(
        idle_closes(&broker),
        1,
        "the close is logged with its reason"
    );
}

#[test]
fn a_native_client_left_idle_is_disconnected_and_its_next_request_fails() {
    let broker = broker(IDLE_MS);
    let mut client = broker.client();
    client.list_queues().expect("a first request is served");
    let deadline = Instant::now() + WITHIN;
    while idle_closes(&broker) == 0 {
        assert!(
            Instant::now() < deadline,
            "the idle client was never closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        client.list_queues().is_err(),
        "a request on the closed connection was answered"
    );
    // A new connection is served as ever.
    broker.client().list_queues().expect("a fresh connection");
}

#[test]
fn a_busy_native_connection_is_not_closed() {
    let broker = broker(IDLE_BUSY_MS);
    let mut client = broker.client();
    let until = Instant::now() + Duration::from_millis(3 * IDLE_BUSY_MS);
    while Instant::now() < until {
        client.list_queues().expect("a busy connection stays open");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(idle_closes(&broker), 0, "{}", broker.log());
}

#[test]
fn a_native_long_poll_and_a_subscription_outlast_the_bound() {
    let broker = broker(IDLE_MS);
    let mut admin = broker.client();
    for name in ["lp", "sub"] {
        admin
            .declare_queue(QueueSpec {
                name: name.into(),
                ..QueueSpec::default()
            })
            .expect("declare");
    }
    drop(admin);
    // A pull receive waits six bounds on an empty queue, then the same connection is
    // used again.
    let mut poller = broker.client();
    let started = Instant::now();
    let got = poller
        .receive("lp", 1, LONG_POLL_MS, true)
        .expect("the long poll is answered, not cut off");
    assert!(got.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(u64::from(LONG_POLL_MS) / 2),
        "the receive did not wait ({:?})",
        started.elapsed()
    );
    poller
        .list_queues()
        .expect("the long poll's connection is still open");
    // A subscription waits as long with nothing coming, then gets what is published.
    let mut sub = peregrine::client::queues::Subscription::open_at(&broker.addr, "sub", 10, true)
        .expect("subscribe");
    assert!(sub
        .next(Duration::from_millis(u64::from(LONG_POLL_MS)))
        .expect("the subscription is open")
        .is_none());
    broker
        .client()
        .publish("sub", PublishSpec::default(), b"late")
        .expect("publish");
    let late = sub
        .next(WITHIN)
        .expect("the subscription outlasted the bound")
        .expect("the message came");
    assert_eq!(&late.body[..], b"late");
}

#[test]
fn a_silent_kafka_connection_is_closed_after_the_bound() {
    let broker = broker(IDLE_MS);
    let mut kafka = RawKafka::connect(&broker.kafka_addr);
    let since = Instant::now();
    let versions: ApiVersionsResponse =
        kafka.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    let took =
        closed_after(&mut kafka.stream, since).expect("an idle Kafka connection stayed open");
    assert!(
        took >= Duration::from_millis(IDLE_MS),
        "closed after {took:?}"
    );
    assert_eq!(idle_closes(&broker), 1);
}

#[test]
fn a_busy_kafka_connection_and_a_long_fetch_are_not_closed() {
    let broker = broker(IDLE_BUSY_MS);
    broker.create_topic("waits", 1);
    let mut kafka = RawKafka::connect(&broker.kafka_addr);
    let until = Instant::now() + Duration::from_millis(3 * IDLE_BUSY_MS);
    while Instant::now() < until {
        let v: ApiVersionsResponse =
            kafka.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert_eq!(v.error_code, 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    // A Fetch at the end of an empty partition waits twice the bound for data.
    let fetch = FetchRequest::default()
        .with_max_wait_ms(2 * IDLE_BUSY_MS as i32)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("waits")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let started = Instant::now();
    let fetched: FetchResponse = kafka.call(ApiKey::Fetch, 4, &fetch);
    assert!(
        started.elapsed() >= Duration::from_millis(IDLE_BUSY_MS),
        "the fetch did not wait ({:?})",
        started.elapsed()
    );
    assert_eq!(fetched.responses.len(), 1);
    let v: ApiVersionsResponse = kafka.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(v.error_code, 0, "the fetch's connection is still open");
    assert_eq!(idle_closes(&broker), 0, "{}", broker.log());
}

#[test]
fn a_kafka_client_that_never_reads_its_answers_is_closed_after_the_bound() {
    let broker = broker(IDLE_MS);
    let conn = TcpStream::connect(&broker.kafka_addr).expect("connect");
    let mut body = BytesMut::new();
    ApiVersionsRequest::default()
        .encode(&mut body, 0)
        .expect("encode");
    let frame = request_frame(ApiKey::ApiVersions, 0, 1, &body);
    let burst: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 1000)
        .collect();
    // Requests pipelined without reading a single answer: the broker stops reading once
    // its answers back up, and the connection goes quiet with answers still unsent.
    writes_until_closed(conn, burst, "the connection that does not read");
    assert_eq!(idle_closes(&broker), 1, "{}", broker.log());
}

fn amqp_without_heartbeats(broker: &Broker) -> RawAmqp {
    let tuning = Tuning {
        heartbeat: 0,
        ..Tuning::default()
    };
    RawAmqp::open_with(&broker.amqp_addr, Login::Plain("guest", "guest"), tuning)
}

#[test]
fn an_amqp_connection_without_heartbeats_is_closed_when_idle_unless_it_consumes() {
    let broker = broker(IDLE_MS);
    let mut consumer = amqp_without_heartbeats(&broker);
    consumer.channel_open(1);
    let queue = consumer.declare_queue(1, "", Default::default());
    let consume = AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: queue.as_str().into(),
        consumer_tag: "c1".into(),
        no_ack: true,
        ..basic::Consume::default()
    }));
    match consumer.call(1, consume) {
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => {}
        other => panic!("expected basic.consume-ok, got {other:?}"),
    }
    let mut silent = amqp_without_heartbeats(&broker);
    let (code, text) = silent.expect_connection_close();
    assert_eq!(code, 320, "CONNECTION_FORCED: {text}");
    assert!(text.contains("idle"), "{text}");
    // The consumer, as silent and as old, is still open.
    match consumer.recv_within(Duration::from_millis(4 * IDLE_MS)) {
        Err(RecvError::TimedOut) => {}
        other => panic!("the consuming connection got {other:?}"),
    }
    assert_eq!(idle_closes(&broker), 1, "{}", broker.log());
}

/// With heartbeats on, too: the connection is not read while its answers wait, so its
/// heartbeats cannot be heard, and the idle bound applies instead.
#[test]
fn an_amqp_client_that_never_reads_its_answers_is_closed_after_the_bound() {
    let broker = broker(IDLE_MS);
    let mut conn = RawAmqp::open(&broker.amqp_addr);
    conn.channel_open(1);
    let queue = conn.declare_queue(1, "", Default::default());
    conn.confirm_select(1);
    conn.publish_confirmed(1, &queue, &vec![b'm'; 120_000]);
    // `basic.get` and `basic.recover` of that message, over and over, never reading a
    // `get-ok`: the broker stops reading once its answers back up.
    let round = get_and_recover(1, &queue);
    let burst = round.repeat(1024);
    let stream = conn.stream;
    writes_until_closed(stream, burst, "the AMQP connection that does not read");
    assert_eq!(idle_closes(&broker), 1, "{}", broker.log());
}

/// Writes `burst` to `stream` over and over, never reading, until the broker closes the
/// connection (a broken pipe or a reset), which must happen within `WITHIN`.
fn writes_until_closed(mut stream: TcpStream, burst: Vec<u8>, what: &str) {
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ended = loop {
            if let Err(e) = stream.write_all(&burst) {
                break e;
            }
        };
        let _ = done_tx.send(ended);
    });
    let ended = done
        .recv_timeout(WITHIN)
        .unwrap_or_else(|_| panic!("the broker never closed {what}"));
    assert!(
        matches!(
            ended.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "{ended}"
    );
}
