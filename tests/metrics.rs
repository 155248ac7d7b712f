//! The operator's HTTP endpoint on a real broker: `/metrics` is valid Prometheus text
//! (checked by `promtool check metrics`) whose counters moved by what flowed through the
//! native client, `/healthz` and `/readyz` answer, and bad HTTP is refused while the
//! broker keeps serving.

mod common;
use common::http_raw::exchange;
use common::{promtool_check, BIN};
use peregrine::client::records::{encode_batch, OutRecord};
use peregrine::client::Client;
use peregrine::embedded::BrokerProcess;
use peregrine::native::messages::{Acks, CommitEntry, PublishSpec, QueueSpec, TopicSpec};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long any one wait in these tests may last.
const DEADLINE: Duration = Duration::from_secs(20);

struct Http {
    broker: BrokerProcess,
    _dir: tempfile::TempDir,
}

fn start() -> Http {
    let dir = tempfile::tempdir().expect("temp dir");
    let extra: Vec<String> = ["--shards", "2", "--cache-mb", "64"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let broker = BrokerProcess::spawn(Path::new(BIN), dir.path(), &extra).expect("broker starts");
    assert!(
        broker.http_addr.contains(':') && !broker.http_addr.ends_with(":0"),
        "the ready line names the HTTP port: {:?}",
        broker.http_addr
    );
    Http { broker, _dir: dir }
}

/// (status, body) of a GET on a connection of its own.
fn get(addr: &str, path: &str) -> (u16, String) {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n\r\n");
    let answer = String::from_utf8(exchange(addr, raw.as_bytes())).expect("utf-8 answer");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Samples by name, then label set (`k=v,...` in the page's order), to value.
type Samples = BTreeMap<String, BTreeMap<String, f64>>;

fn samples(page: &str) -> Samples {
    let mut out = Samples::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}').replace('"', "")),
            None => (series, String::new()),
        };
        let value: f64 = value.parse().expect("numeric sample");
        out.entry(name.to_string())
            .or_default()
            .insert(labels, value);
    }
    out
}

/// The sum of `name` over the series whose labels contain every one of `having`.
fn sum(s: &Samples, name: &str, having: &[&str]) -> f64 {
    s.get(name)
        .map(|series| {
            series
                .iter()
                .filter(|(labels, _)| having.iter().all(|h| labels.split(',').any(|l| l == *h)))
                .map(|(_, v)| v)
                .sum()
        })
        .unwrap_or(0.0)
}

fn records(n: usize) -> bytes::BytesMut {
    let records: Vec<OutRecord> = (0..n)
        .map(|i| OutRecord {
            key: None,
            value: bytes::Bytes::from(format!("message {i}")),
            timestamp_ms: 1,
        })
        .collect();
    encode_batch(&records).expect("encode")
}

/// Consumes `topic`/0 from offset 0 up to `end`; returns the messages read.
fn consume(c: &mut Client, topic: &str, end: i64) -> i64 {
    let started = Instant::now();
    let mut next = 0;
    while next < end {
        assert!(started.elapsed() < DEADLINE, "consumed {next} of {end}");
        let fetched = c.fetch(topic, 0, next, 1 << 20, 100).expect("fetch");
        // Batches back to back: base offset (8 bytes), length (4), ..., last offset
        // delta at byte 23.
        let (b, mut at) = (&fetched.batches, 0usize);
        while at + 27 <= b.len() {
            let base = i64::from_be_bytes(b[at..at + 8].try_into().expect("base offset"));
            let len = i32::from_be_bytes(b[at + 8..at + 12].try_into().expect("length"));
            let delta = i32::from_be_bytes(b[at + 23..at + 27].try_into().expect("delta"));
            next = next.max(base + i64::from(delta) + 1);
            at += 12 + usize::try_from(len).expect("batch length");
        }
    }
    next
}

#[test]
fn metrics_count_what_flowed_and_promtool_accepts_the_page() {
    let h = start();
    let mut c = Client::connect(&h.broker.addr).expect("connect");
    c.create_topic(TopicSpec {
        name: "orders".into(),
        partitions: 1,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: None,
    })
    .expect("create topic");
    let batch = records(10);
    for _ in 0..3 {
        c.produce("orders", 0, Acks::Durable, &batch)
            .expect("produce");
    }
    assert_eq!(consume(&mut c, "orders", 30), 30);
    let simple_commit = vec![CommitEntry {
        topic: "orders".into(),
        partition: 0,
        offset: 20,
    }];
    c.commit("audit", "", -1, simple_commit).expect("commit");

    c.declare_queue(QueueSpec {
        name: "jobs".into(),
        ..QueueSpec::default()
    })
    .expect("declare");
    let durable = PublishSpec {
        durable: true,
        ..PublishSpec::default()
    };
    for i in 0..5 {
        c.publish("jobs", durable.clone(), format!("job {i}").as_bytes())
            .expect("publish");
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    while handles.len() < 5 {
        assert!(started.elapsed() < DEADLINE, "received {}", handles.len());
        let got = c.receive("jobs", 5, 100, false).expect("receive");
        handles.extend(got.iter().map(|r| r.delivery.handle));
    }
    c.ack("jobs", &handles).expect("ack");

    let (status, page) = get(&h.broker.http_addr, "/metrics");
    assert_eq!(status, 200, "{page}");
    promtool_check(&page);
    let s = samples(&page);
    let orders = ["topic=orders", "partition=0"];
    assert_eq!(
        sum(&s, "peregrine_partition_messages_in_total", &orders),
        30.0
    );
    let batch_bytes = 3.0 * batch.len() as f64;
    assert_eq!(
        sum(&s, "peregrine_partition_bytes_in_total", &orders),
        batch_bytes
    );
    assert_eq!(
        sum(&s, "peregrine_partition_messages_out_total", &orders),
        30.0
    );
    assert_eq!(sum(&s, "peregrine_partition_end_offset", &orders), 30.0);
    assert!(sum(&s, "peregrine_partition_size_bytes", &orders) >= batch_bytes);
    let audit = ["group=audit", "topic=orders", "partition=0"];
    assert_eq!(sum(&s, "peregrine_group_committed_offset", &audit), 20.0);
    assert_eq!(sum(&s, "peregrine_group_lag", &audit), 10.0);

    let jobs = ["queue=jobs"];
    assert_eq!(sum(&s, "peregrine_queue_published_total", &jobs), 5.0);
    assert_eq!(sum(&s, "peregrine_queue_acked_total", &jobs), 5.0);
    assert_eq!(sum(&s, "peregrine_queue_ready", &jobs), 0.0);
    assert_eq!(sum(&s, "peregrine_queue_in_flight", &jobs), 0.0);

    let native = |api: &str| {
        let api = format!("api={api}");
        sum(&s, "peregrine_requests_total", &["protocol=native", &api])
    };
    assert_eq!(native("Produce"), 3.0);
    assert_eq!(native("Publish"), 5.0);
    assert_eq!(native("Ack"), 1.0);
    assert!(native("Fetch") >= 1.0);
    assert_eq!(sum(&s, "peregrine_produce_ack_seconds_count", &[]), 3.0);
    assert!(sum(&s, "peregrine_fdatasyncs_total", &[]) > 0.0);
    assert!(sum(&s, "peregrine_fdatasync_seconds_count", &[]) > 0.0);
    assert!(
        sum(&s, "peregrine_cache_hits_total", &[]) > 0.0,
        "tail reads hit the cache"
    );
    assert!(sum(&s, "peregrine_connections", &["protocol=native"]) >= 1.0);
    assert!(sum(&s, "peregrine_process_resident_memory_bytes", &[]) > 0.0);
    assert!(sum(&s, "peregrine_process_open_fds", &[]) > 0.0);

    // An error answer is counted by its code.
    assert!(c.publish("nope", durable, b"x").is_err());
    let (_, page) = get(&h.broker.http_addr, "/metrics");
    let s = samples(&page);
    let unknown = ["protocol=native", "code=UnknownQueue"];
    assert_eq!(sum(&s, "peregrine_errors_total", &unknown), 1.0);
}

#[test]
fn health_and_readiness_answer_200() {
    let h = start();
    assert_eq!(get(&h.broker.http_addr, "/healthz").0, 200);
    assert_eq!(get(&h.broker.http_addr, "/readyz").0, 200);
    assert_eq!(get(&h.broker.http_addr, "/nothing").0, 404);
    let post = b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let answer = String::from_utf8_lossy(&exchange(&h.broker.http_addr, post)).to_string();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
}

#[test]
fn keep_alive_serves_pipelined_requests_on_one_connection() {
    let h = start();
    let two = b"GET /healthz HTTP/1.1\r\nHost: b\r\n\r\nGET /readyz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    let answer = String::from_utf8_lossy(&exchange(&h.broker.http_addr, two)).to_string();
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
}

#[test]
fn malformed_and_huge_requests_are_refused_and_the_broker_keeps_serving() {
    let h = start();
    let addr = &h.broker.http_addr;
    let refused = |raw: &[u8], status: &str| {
        let answer = String::from_utf8_lossy(&exchange(addr, raw)).to_string();
        assert!(
            answer.is_empty() || answer.starts_with(&format!("HTTP/1.1 {status}")),
            "expected {status} or a closed connection, got {answer:?}"
        );
    };
    refused(b"\x00\x01\x02 garbage\r\n\r\n", "400");
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    refused(huge.as_bytes(), "431");
    let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
    refused(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(), "431");
    let body = b"POST /metrics HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n";
    refused(body, "413");
    assert_eq!(get(addr, "/healthz").0, 200, "still serving HTTP");
    let mut c = Client::connect(&h.broker.addr).expect("native client still connects");
    c.declare_queue(QueueSpec {
        name: "after".into(),
        ..QueueSpec::default()
    })
    .expect("and is served");
}

#[test]
fn scrapes_during_load_are_valid_and_counters_only_grow() {
    let h = start();
    let mut c = Client::connect(&h.broker.addr).expect("connect");
    c.create_topic(TopicSpec {
        name: "load".into(),
        partitions: 1,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: None,
    })
    .expect("create topic");
    const BATCHES: usize = 400;
    let addr = h.broker.addr.clone();
    let producer = std::thread::spawn(move || {
        let mut c = Client::connect(&addr).expect("connect");
        let batch = records(50);
        for _ in 0..BATCHES {
            c.produce("load", 0, Acks::Leader, &batch).expect("produce");
        }
    });
    let load = ["topic=load", "partition=0"];
    let in_total = "peregrine_partition_messages_in_total";
    let mut seen = Vec::new();
    while !producer.is_finished() && seen.len() < 20 {
        let (status, page) = get(&h.broker.http_addr, "/metrics");
        assert_eq!(status, 200);
        promtool_check(&page);
        seen.push(sum(&samples(&page), in_total, &load));
    }
    producer.join().expect("producer");
    let (_, page) = get(&h.broker.http_addr, "/metrics");
    seen.push(sum(&samples(&page), in_total, &load));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(
        seen.last().copied(),
        Some((BATCHES * 50) as f64),
        "{seen:?}"
    );
}

#[test]
fn kafka_requests_are_counted_by_api() {
    let h = start();
    let versions = common::kafka_raw::advertised(&h.broker.kafka_addr).expect("ApiVersions");
    assert!(!versions.is_empty());
    let (_, page) = get(&h.broker.http_addr, "/metrics");
    let s = samples(&page);
    let api_versions = ["protocol=kafka", "api=ApiVersions"];
    assert_eq!(sum(&s, "peregrine_requests_total", &api_versions), 1.0);
}

#[test]
fn amqp_methods_are_counted_by_name() {
    let h = start();
    let mut conn = common::amqp_raw::RawAmqp::open(&h.broker.amqp_addr);
    conn.channel_open(1);
    let declare = common::amqp_raw::queue_declare("counted", false, Default::default());
    conn.send_method(1, declare);
    conn.recv_method(1);
    let (_, page) = get(&h.broker.http_addr, "/metrics");
    promtool_check(&page);
    let s = samples(&page);
    for (api, n) in [
        ("api=connection.open", 1.0),
        ("api=channel.open", 1.0),
        ("api=queue.declare", 1.0),
    ] {
        assert_eq!(
            sum(&s, "peregrine_requests_total", &["protocol=amqp", api]),
            n,
            "{api}"
        );
    }
    let open = sum(&s, "peregrine_connections", &["protocol=amqp"]);
    assert_eq!(open, 1.0, "open AMQP connections");
}
