//! An SQS connection moves to the shard that owns the queue it uses (src/http/handoff.rs)
//! and keeps working there: a real broker with two shards, raw HTTP/1.1 keep-alive
//! connections speaking SQS's JSON 1.0, one queue owned by each shard. Every connection
//! is accepted by whichever shard the kernel picks, so each test uses both queues or
//! several connections: some of them start on the shard that does not own their queue.

mod common;
use common::{unique, Broker};
use peregrine_shards::catalog::queue_owner;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long any one read may wait, and how long a metric may take to settle.
const DEADLINE: Duration = Duration::from_secs(20);
const SHARDS: u32 = 2;
/// Connections opened per queue where the test needs some to start on the other shard.
const CONNECTIONS_PER_QUEUE: usize = 8;

/// One keep-alive HTTP connection to the broker.
struct Conn {
    stream: TcpStream,
    /// Bytes read past the last answer.
    buf: Vec<u8>,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect HTTP");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("write request");
    }

    /// Reads one answer (framed by its Content-Length).
    fn answer(&mut self) -> Answer {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.read_more();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("answer has a Content-Length");
        while self.buf.len() < head_end + length {
            self.read_more();
        }
        let body = serde_json::from_slice(&self.buf[head_end..head_end + length])
            .unwrap_or_else(|e| panic!("answer body is not JSON ({e}): {head}"));
        self.buf.drain(..head_end + length);
        Answer { status, body }
    }

    fn read_more(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).expect("read answer");
        assert!(n > 0, "the broker closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// One request and its answer, which must be a success.
    fn call(&mut self, action: &str, body: Value) -> Value {
        self.send(&request(action, &body));
        let a = self.answer();
        assert_eq!(a.status, 200, "{action}: {}", a.body);
        a.body
    }
}

/// A keep-alive SQS JSON 1.0 request.
fn request(action: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST / HTTP/1.1\r\nHost: sqs.test\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AmazonSQS.{action}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A new queue name owned by `shard`, and the queue created.
fn queue_on(broker: &Broker, shard: u32) -> String {
    let name = (0..)
        .map(|i| unique(&format!("handoff{i}")))
        .find(|n| queue_owner(n, SHARDS) == shard)
        .expect("some name lands on every shard");
    let created = Conn::open(&broker.http_addr).call("CreateQueue", json!({"QueueName": name}));
    created["QueueUrl"]
        .as_str()
        .expect("CreateQueue answers a QueueUrl")
        .to_string()
}

fn send(conn: &mut Conn, url: &str, body: &str) {
    let sent = conn.call("SendMessage", json!({"QueueUrl": url, "MessageBody": body}));
    assert!(sent["MessageId"].is_string(), "SendMessage: {sent}");
}

/// Receives and deletes everything in the queue (on `conn`); returns the bodies.
fn drain(conn: &mut Conn, url: &str, expected: usize) -> BTreeSet<String> {
    let mut bodies = BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    while bodies.len() < expected && Instant::now() < deadline {
        let got = conn.call(
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}),
        );
        let messages = got["Messages"].as_array().cloned().unwrap_or_default();
        let entries: Vec<Value> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let body = m["Body"].as_str().expect("a message has a Body");
                assert!(bodies.insert(body.to_string()), "{body} received twice");
                json!({"Id": i.to_string(), "ReceiptHandle": m["ReceiptHandle"]})
            })
            .collect();
        if !entries.is_empty() {
            let deleted = conn.call(
                "DeleteMessageBatch",
                json!({"QueueUrl": url, "Entries": entries}),
            );
            let ok = deleted["Successful"].as_array().map_or(0, Vec::len);
            assert_eq!(ok, entries.len(), "DeleteMessageBatch: {deleted}");
        }
    }
    bodies
}

/// `peregrine_connections{protocol="http"}` of each shard.
fn http_connections(broker: &Broker) -> Vec<u64> {
    let mut conn = Conn::open(&broker.http_addr);
    conn.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut page = Vec::new();
    let _ = conn.stream.read_to_end(&mut page);
    let page = String::from_utf8_lossy(&page);
    (0..SHARDS)
        .map(|shard| {
            let labels = [format!("shard=\"{shard}\""), "protocol=\"http\"".into()];
            page.lines()
                .filter(|l| l.starts_with("peregrine_connections{"))
                .find(|l| labels.iter().all(|label| l.contains(label.as_str())))
                .and_then(|l| l.rsplit(' ').next()?.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

#[test]
fn connections_move_to_the_shard_that_owns_their_queue_and_keep_working() {
    let broker = Broker::start();
    for shard in 0..SHARDS {
        let url = queue_on(&broker, shard);
        let mut conns: Vec<Conn> = (0..CONNECTIONS_PER_QUEUE)
            .map(|_| Conn::open(&broker.http_addr))
            .collect();
        let mut sent = BTreeSet::new();
        for round in 0..3 {
            for (i, conn) in conns.iter_mut().enumerate() {
                let body = format!("c{i}-r{round}");
                send(conn, &url, &body);
                sent.insert(body);
            }
        }
        // Every connection is open and idle, each served by the queue's owner: the other
        // shard counts none of them (at most the scrape's own connection).
        let other = (shard + 1) % SHARDS;
        let deadline = Instant::now() + DEADLINE;
        let mut counts = http_connections(&broker);
        while counts[other as usize] > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            counts = http_connections(&broker);
        }
        assert!(
            counts[other as usize] <= 1 && counts[shard as usize] >= CONNECTIONS_PER_QUEUE as u64,
            "HTTP connections by shard {counts:?}: the {CONNECTIONS_PER_QUEUE} connections using a queue of shard {shard} are not all there"
        );
        // Each connection still works: batches, receives and deletes.
        for (i, conn) in conns.iter_mut().enumerate() {
            let entries: Vec<Value> = (0..5)
                .map(|j| {
                    let body = format!("c{i}-batch{j}");
                    sent.insert(body.clone());
                    json!({"Id": j.to_string(), "MessageBody": body})
                })
                .collect();
            let batch = conn.call(
                "SendMessageBatch",
                json!({"QueueUrl": url, "Entries": entries}),
            );
            assert_eq!(batch["Successful"].as_array().map_or(0, Vec::len), 5);
        }
        let got = drain(&mut conns[CONNECTIONS_PER_QUEUE - 1], &url, sent.len());
        assert_eq!(got, sent, "queue of shard {shard}");
    }
}

#[test]
fn pipelined_requests_move_with_their_connection() {
    let broker = Broker::start();
    for shard in 0..SHARDS {
        let url = queue_on(&broker, shard);
        let mut expected = BTreeSet::new();
        for c in 0..CONNECTIONS_PER_QUEUE / 2 {
            let mut conn = Conn::open(&broker.http_addr);
            // Three sends and a count in one write: the first request's answer may move
            // the connection with the other three still unread in its buffer.
            let mut raw = Vec::new();
            for i in 0..3 {
                let body = format!("c{c}-p{i}");
                raw.extend(request(
                    "SendMessage",
                    &json!({"QueueUrl": url, "MessageBody": body}),
                ));
                expected.insert(body);
            }
            raw.extend(request(
                "GetQueueAttributes",
                &json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"]}),
            ));
            conn.send(&raw);
            for i in 0..3 {
                let a = conn.answer();
                assert_eq!(a.status, 200, "pipelined SendMessage {i}: {}", a.body);
                assert!(a.body["MessageId"].is_string(), "{}", a.body);
            }
            let counted = conn.answer();
            assert_eq!(counted.status, 200, "{}", counted.body);
            let n = counted.body["Attributes"]["ApproximateNumberOfMessages"]
                .as_str()
                .and_then(|n| n.parse::<usize>().ok());
            assert_eq!(n, Some(expected.len()), "{}", counted.body);
            // A request cut in two around the first one's answer.
            let first = format!("c{c}-split0");
            let second = format!("c{c}-split1");
            let mut raw = request(
                "SendMessage",
                &json!({"QueueUrl": url, "MessageBody": first}),
            );
            let rest = request(
                "SendMessage",
                &json!({"QueueUrl": url, "MessageBody": second}),
            );
            raw.extend_from_slice(&rest[..20]);
            conn.send(&raw);
            assert_eq!(conn.answer().status, 200);
            conn.send(&rest[20..]);
            assert_eq!(conn.answer().status, 200);
            expected.extend([first, second]);
        }
        let mut conn = Conn::open(&broker.http_addr);
        assert_eq!(drain(&mut conn, &url, expected.len()), expected);
    }
}

#[test]
fn a_connection_that_alternates_between_queues_on_both_shards_keeps_working() {
    let broker = Broker::start();
    let urls: Vec<String> = (0..SHARDS).map(|s| queue_on(&broker, s)).collect();
    let mut sent: Vec<BTreeSet<String>> = vec![BTreeSet::new(); urls.len()];
    let mut conns: Vec<Conn> = (0..2).map(|_| Conn::open(&broker.http_addr)).collect();
    for round in 0..10 {
        for (c, conn) in conns.iter_mut().enumerate() {
            for (q, url) in urls.iter().enumerate() {
                let body = format!("c{c}-q{q}-r{round}");
                send(conn, url, &body);
                sent[q].insert(body);
            }
        }
    }
    for (q, url) in urls.iter().enumerate() {
        // Received on the connection that moved (or not) while alternating.
        let got = drain(&mut conns[q % 2], url, sent[q].len());
        assert_eq!(got, sent[q], "queue {q}");
    }
}
