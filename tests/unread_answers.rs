//! Clients that pipeline requests and never read the answers: the broker holds a bounded
//! amount of answers for each (`server::answer_budget`), then stops reading its
//! requests, and keeps serving everyone else.

mod common;
use bytes::BytesMut;
use common::kafka_raw::request_frame;
use common::Broker;
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind};
use peregrine::native::frame;
use peregrine::native::messages::{Request, RequestEnvelope};
use std::io::Write;
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
