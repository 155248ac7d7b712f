//! Clients that pipeline requests and never read the answers: the broker holds a bounded
//! amount of answers for each (`server::answer_budget`), then stops reading its
//! requests, and keeps serving everyone else. When such a client goes away, its
//! connection is released on every protocol, with answers still queued for it.

mod common;
use bytes::BytesMut;
use common::amqp_raw::{get_and_recover, RawAmqp};
use common::kafka_raw::request_frame;
use common::Broker;
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind};
use peregrine::native::frame;
use peregrine::native::messages::{Request, RequestEnvelope};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Metadata answers of a topic this large are about 260 KB on the Kafka port and 40 KB
/// on the native one.
const PARTITIONS: i32 = 10_000;
/// Flooding connections per protocol.
const FLOODERS: usize = 4;
/// Requests each flooding connection sends without reading an answer.
const REQUESTS: usize = 2_000;
/// What the flooders may add to the broker's peak RSS: per connection the answer
/// budget (8 MiB) and what its requests already running produce. Without the budget the
/// same load added 444 MiB (each connection held every answer its requests in flight
/// produced: 128 Kafka ones of 260 KB, 1,024 native ones of 40 KB).
const GROWTH_MAX_BYTES: u64 = 160 << 20;
/// How long the flooders are given to fill what the broker will hold for them.
const SETTLE: Duration = Duration::from_secs(4);

fn kafka_flood(addr: &str) -> TcpStream {
    let mut body = BytesMut::new();
    RequestKind::Metadata(MetadataRequest::default().with_topics(None))
        .encode(&mut body, 1)
        .expect("encode");
    let mut requests = Vec::new();
    for id in 0..REQUESTS {
        requests.extend(request_frame(ApiKey::Metadata, 1, id as i32, &body));
    }
    send_without_reading(addr, requests)
}

fn native_flood(addr: &str) -> TcpStream {
    let mut requests = Vec::new();
    for id in 0..REQUESTS {
        let env = RequestEnvelope {
            id: id as u64,
            request: Request::Metadata { topics: None },
        };
        requests.extend(frame::encode_request(&env, 0).expect("encode"));
    }
    send_without_reading(addr, requests)
}

/// Writes `requests` from a thread of their own (the broker stops reading, so the write
/// blocks), and hands back the connection, never read.
fn send_without_reading(addr: &str, requests: Vec<u8>) -> TcpStream {
    let conn = TcpStream::connect(addr).expect("connect");
    conn.set_write_timeout(Some(SETTLE * 2)).expect("timeout");
    let mut writer = conn.try_clone().expect("clone");
    std::thread::spawn(move || {
        // Fails with a timeout once the broker stops reading: that is the point.
        let _ = writer.write_all(&requests);
    });
    conn
}

#[test]
fn clients_that_never_read_their_answers_make_the_broker_hold_a_bounded_amount() {
    let mut b = Broker::start();
    b.create_topic("wide", PARTITIONS);
    let before = b.peak_rss_bytes().expect("VmHWM");
    let mut flooders = Vec::new();
    for _ in 0..FLOODERS {
        flooders.push(kafka_flood(&b.kafka_addr));
        flooders.push(native_flood(&b.addr));
    }
    std::thread::sleep(SETTLE);
    let grown = b.peak_rss_bytes().expect("VmHWM").saturating_sub(before);
    println!(
        "{} flooding connections grew the broker's peak RSS by {} MiB (bound {} MiB)",
        flooders.len(),
        grown >> 20,
        GROWTH_MAX_BYTES >> 20
    );
    assert!(b.is_running(), "broker died");
    // Everyone else is still served while the flooders hang on.
    let started = Instant::now();
    let topics = b.client().metadata(None).expect("metadata");
    assert!(topics.iter().any(|t| t.name == "wide"));
    println!("a fresh client's metadata took {:?}", started.elapsed());
    assert!(
        grown < GROWTH_MAX_BYTES,
        "peak RSS grew by {grown} bytes, over {GROWTH_MAX_BYTES}"
    );
    drop(flooders);
}

/// How long a test waits for something that must happen.
const WITHIN: Duration = Duration::from_secs(30);

/// Open connections of `protocol` on every shard (the `connections` gauge), the
/// scraping connection included.
fn open_connections(b: &Broker, protocol: &str) -> u64 {
    let mut conn = TcpStream::connect(&b.http_addr).expect("connect");
    conn.set_read_timeout(Some(WITHIN)).expect("timeout");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .expect("scrape");
    let mut page = String::new();
    conn.read_to_string(&mut page).expect("metrics page");
    let label = format!("protocol=\"{protocol}\"");
    page.lines()
        .filter(|l| l.starts_with("peregrine_connections{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Pipelines `requests` on `conn`, never reading, until a write times out (every buffer
/// between client and broker holds requests), gives the broker `SETTLE` to serve what it
/// read and back its answers up, then closes the connection with all of them unread.
fn stop_reading_then_leave(mut conn: TcpStream, requests: &[u8]) {
    conn.set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let deadline = Instant::now() + WITHIN;
    while conn.write_all(requests).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the requests of a client that never reads were read without end"
        );
    }
    std::thread::sleep(SETTLE);
}

/// The AMQP and HTTP writers are not fed through a bounded channel (glommio's `send`
/// on a full one never returns once its receiver is gone, which the native and Kafka
/// writers guard against): a client that stops reading with answers queued and then
/// disconnects must still be released, its writer failing and its reader unwinding.
#[test]
fn clients_that_stop_reading_and_disconnect_are_released() {
    let b = Broker::start();
    // AMQP: `basic.get` of a 120 kB message and `basic.recover` to get it again, until
    // the broker stops reading (its answers' read-stop bound).
    let mut amqp = RawAmqp::open(&b.amqp_addr);
    amqp.channel_open(1);
    let queue = amqp.declare_queue(1, "", Default::default());
    amqp.confirm_select(1);
    amqp.publish_confirmed(1, &queue, &vec![b'm'; 120_000]);
    let round = get_and_recover(1, &queue);
    assert_eq!(open_connections(&b, "amqp"), 1);
    stop_reading_then_leave(amqp.stream, &round.repeat(1024));
    // HTTP: metrics pages until the broker stops reading.
    let http = TcpStream::connect(&b.http_addr).expect("connect");
    let scrape = b"GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n".repeat(64);
    stop_reading_then_leave(http, &scrape);
    let deadline = Instant::now() + WITHIN;
    loop {
        let (amqp, http) = (open_connections(&b, "amqp"), open_connections(&b, "http"));
        // The scrape itself is the one HTTP connection left.
        if (amqp, http) == (0, 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{amqp} AMQP and {} HTTP connections still open after their clients left",
            http - 1
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both listeners serve new clients as ever.
    RawAmqp::open(&b.amqp_addr).close();
    assert_eq!(open_connections(&b, "http"), 1);
}
