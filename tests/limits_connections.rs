//! Connection bounds (issue 16): `--max-connections` per listener, and requests and
//! bytes in flight per connection (`--max-in-flight-requests`, `--max-in-flight-bytes`).
//! A client over a bound sees an error or a closed connection, or is simply not read;
//! every other client keeps working.

mod common;

use common::kafka_raw::{read_frame, request_frame, RawKafka};
use common::Broker;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Encodable;
use peregrine::client::connection::Connection;
use peregrine::client::Client;
use peregrine::native::messages::{PublishSpec, QueueSpec, Request, Response};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test waits for something that must happen.
const WITHIN: Duration = Duration::from_secs(20);
/// How long a test watches for an answer that must not come while a bound holds.
const QUIET_FOR: Duration = Duration::from_secs(1);

fn works(client: &mut Client) -> bool {
    client.metadata(None).is_ok()
}

/// Everything the broker sends on a fresh connection before closing it; panics if it
/// keeps the connection open past `WITHIN`.
fn read_until_closed(addr: &str) -> Vec<u8> {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(WITHIN)).expect("timeout");
    let mut got = Vec::new();
    match conn.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the refused connection stayed open: {e} (got {got:?})"),
    }
    got
}

/// Retries `attempt` until it succeeds or `WITHIN` passes: a closed connection's place
/// is given back when the broker notices the close, a moment after the client's.
fn eventually(mut attempt: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WITHIN;
    while Instant::now() < deadline {
        if attempt() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn native_connection_past_the_bound_gets_an_error_and_is_closed() {
    let broker = Broker::start_with(&["--max-connections", "3"]);
    let mut open: Vec<Client> = (0..3).map(|_| broker.client()).collect();
    for c in &mut open {
        assert!(works(c), "a connection within the bound must work");
    }
    let said = String::from_utf8_lossy(&read_until_closed(&broker.addr)).into_owned();
    assert!(
        said.contains("--max-connections"),
        "the 4th connection must be told why it is closed, got {said:?}"
    );
    // A shard's own port counts with the native listener.
    let own = format!("127.0.0.1:{}", broker.shard_ports[0]);
    let said = String::from_utf8_lossy(&read_until_closed(&own)).into_owned();
    assert!(said.contains("--max-connections"), "own port: {said:?}");
    for c in &mut open {
        assert!(works(c), "connections within the bound keep working");
    }
    open.pop();
    assert!(
        eventually(|| Client::connect(&broker.addr).is_ok_and(|mut c| works(&mut c))),
        "a connection closed makes room for a new one"
    );
    assert!(broker.log().contains("the most --max-connections allows"));
}

fn api_versions(conn: &mut RawKafka) -> i16 {
    let resp: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    resp.error_code
}

/// True when the broker answers ApiVersions on a fresh connection to `addr`.
fn kafka_answers(addr: &str) -> bool {
    let Ok(mut conn) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(WITHIN));
    let mut body = bytes::BytesMut::new();
    ApiVersionsRequest::default()
        .encode(&mut body, 0)
        .expect("encode");
    let frame = request_frame(ApiKey::ApiVersions, 0, 1, &body);
    if conn.write_all(&frame).is_err() {
        return false;
    }
    match read_frame(&mut conn) {
        Ok(_) => true,
        Err(e) => {
            assert!(
                !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "a refused Kafka connection must be closed, not left unanswered"
            );
            false
        }
    }
}

#[test]
fn kafka_connection_past_the_bound_is_closed_unanswered() {
    let broker = Broker::start_with(&["--max-connections", "3"]);
    let mut open: Vec<RawKafka> = (0..3)
        .map(|_| RawKafka::connect(&broker.kafka_addr))
        .collect();
    for c in &mut open {
        assert_eq!(api_versions(c), 0);
    }
    assert!(
        !kafka_answers(&broker.kafka_addr),
        "the 4th Kafka connection must be closed without an answer"
    );
    // The native listener has a count of its own.
    assert!(works(&mut broker.client()));
    for c in &mut open {
        assert_eq!(
            api_versions(c),
            0,
            "connections within the bound keep working"
        );
    }
    open.pop();
    assert!(
        eventually(|| kafka_answers(&broker.kafka_addr)),
        "a connection closed makes room for a new one"
    );
}

/// A raw native connection whose answers arrive on a channel, so a test can tell an
/// answer that has not come from one that will not.
struct Pipelined {
    conn: peregrine::client::connection::FrameWriter,
    answers: mpsc::Receiver<(u64, Response)>,
}

impl Pipelined {
    fn open(addr: &str) -> Pipelined {
        let (conn, mut reader) = Connection::connect(addr).expect("connect").into_split();
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok((id, response, _)) = reader.recv() {
                if tx.send((id, response)).is_err() {
                    break;
                }
            }
        });
        Pipelined { conn, answers }
    }

    fn send(&mut self, request: Request, payload: &[u8]) -> u64 {
        self.conn.send(request, &[payload]).expect("send")
    }

    /// Ids answered within `wait`.
    fn answered_within(&self, wait: Duration) -> Vec<u64> {
        let deadline = Instant::now() + wait;
        let mut ids = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.answers.recv_timeout(left) {
                Ok((id, _)) => ids.push(id),
                Err(_) => break,
            }
        }
        ids
    }
}

fn long_poll(queue: &str) -> Request {
    Request::Receive {
        queue: queue.into(),
        max: 1,
        wait_ms: 30_000,
        auto_ack: true,
    }
}

/// Starts a broker with `flags`, declares queue `q`, and pipelines on one connection
/// two long polls on it, each carrying `poll_payload`, then a Metadata request with
/// `metadata_payload`. Returns whether Metadata was answered while the polls waited,
/// after checking that another client kept working and that every request was answered
/// once the polls ended.
fn metadata_answered_behind_long_polls(
    flags: &[&str],
    poll_payload: &[u8],
    metadata_payload: &[u8],
) -> bool {
    let broker = Broker::start_with(flags);
    let mut other = broker.client();
    other
        .declare_queue(QueueSpec {
            name: "q".into(),
            ..QueueSpec::default()
        })
        .expect("declare");
    let mut conn = Pipelined::open(&broker.addr);
    let polls = [
        conn.send(long_poll("q"), poll_payload),
        conn.send(long_poll("q"), poll_payload),
    ];
    let metadata = conn.send(Request::Metadata { topics: None }, metadata_payload);
    let early = conn.answered_within(QUIET_FOR);
    assert!(
        !early.iter().any(|id| polls.contains(id)),
        "the long polls must still wait"
    );
    assert!(works(&mut other), "another client keeps working meanwhile");
    for _ in polls {
        other
            .publish("q", PublishSpec::default(), b"wake")
            .expect("publish");
    }
    let mut answered = early.clone();
    let deadline = Instant::now() + WITHIN;
    while answered.len() < 3 && Instant::now() < deadline {
        answered.extend(conn.answered_within(Duration::from_millis(200)));
    }
    answered.sort_unstable();
    let mut expected = vec![polls[0], polls[1], metadata];
    expected.sort_unstable();
    assert_eq!(answered, expected, "every request is answered in the end");
    early.contains(&metadata)
}

#[test]
fn native_connection_is_not_read_past_its_requests_in_flight() {
    assert!(
        !metadata_answered_behind_long_polls(&["--max-in-flight-requests", "2"], b"", b""),
        "a third request must not be read while two wait"
    );
    // The same requests within the bound: Metadata is answered at once.
    assert!(metadata_answered_behind_long_polls(
        &["--max-in-flight-requests", "3"],
        b"",
        b""
    ));
}

#[test]
fn native_connection_is_not_read_past_its_bytes_in_flight() {
    // 48 KiB per request under a 128 KiB bound (the smallest bound the frame size
    // allows): two long polls hold 96 KiB, so Metadata's 48 KiB waits.
    let flags = [
        "--max-frame-bytes",
        "131072",
        "--max-in-flight-bytes",
        "131072",
    ];
    let big = vec![7u8; 48 << 10];
    assert!(
        !metadata_answered_behind_long_polls(&flags, &big, &big),
        "a request must not be read while the bytes in flight are at the bound"
    );
    // A small request still fits beside them.
    assert!(metadata_answered_behind_long_polls(&flags, &big, b""));
}

/// A Kafka request frame whose header carries a client id of `client_id_len` bytes, so
/// that a small request can weigh what a test needs against the byte bound.
fn kafka_frame<Req: Encodable>(
    key: ApiKey,
    version: i16,
    id: i32,
    req: &Req,
    pad: usize,
) -> Vec<u8> {
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{encode_request_header_into_buffer, StrBytes};
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(id)
        .with_client_id(Some(StrBytes::from_string("c".repeat(pad.max(1)))));
    let mut buf = bytes::BytesMut::new();
    encode_request_header_into_buffer(&mut buf, &header).expect("header");
    req.encode(&mut buf, version).expect("body");
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

/// A Fetch of partition 0 of `topic` from offset 0 that waits up to 30 s for data.
fn kafka_long_poll(topic: &str) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    FetchRequest::default()
        .with_max_wait_ms(30_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![
                FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])])
}

fn kafka_produce(topic: &str, value: &[u8]) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let record = peregrine::client::records::OutRecord {
        key: None,
        value: bytes::Bytes::copy_from_slice(value),
        timestamp_ms: 1,
    };
    let batch = peregrine::client::records::encode_batch(&[record]).expect("batch");
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.freeze()))])])
}

/// Starts a broker with `flags` and pipelines on one raw Kafka connection `polls` long
/// polls on an empty topic, each weighing about `poll_bytes`, then a produce of
/// `value_bytes` to another topic. Returns whether the produce was appended while the
/// polls waited (seen by another client), after checking that the other client kept
/// working and that the connection got all its answers once the polls ended.
fn kafka_produce_read_behind_long_polls(
    flags: &[&str],
    polls: i32,
    poll_bytes: usize,
    value_bytes: usize,
) -> bool {
    use peregrine::native::messages::OffsetSpec;
    let broker = Broker::start_with(flags);
    broker.create_topic("polled", 1);
    broker.create_topic("written", 1);
    let mut conn = TcpStream::connect(&broker.kafka_addr).expect("connect");
    conn.set_read_timeout(Some(WITHIN)).expect("timeout");
    for id in 0..polls {
        let fetch = kafka_long_poll("polled");
        conn.write_all(&kafka_frame(ApiKey::Fetch, 4, id, &fetch, poll_bytes))
            .expect("send fetch");
    }
    let produce = kafka_produce("written", &vec![1u8; value_bytes]);
    conn.write_all(&kafka_frame(ApiKey::Produce, 7, polls, &produce, 1))
        .expect("send produce");
    std::thread::sleep(QUIET_FOR);
    let mut other = broker.client();
    let end = other.list_offset("written", 0, OffsetSpec::Latest);
    let appended_early = end.expect("list offsets") > 0;
    // Data for the polls: they end, and the connection is read again.
    let record = peregrine::client::records::OutRecord {
        key: None,
        value: bytes::Bytes::from_static(b"wake"),
        timestamp_ms: 1,
    };
    let batch = peregrine::client::records::encode_batch(&[record]).expect("batch");
    other
        .produce(
            "polled",
            0,
            peregrine::native::messages::Acks::Leader,
            &batch,
        )
        .expect("another client keeps producing");
    for _ in 0..=polls {
        read_frame(&mut conn).expect("every request is answered in the end");
    }
    assert!(
        eventually(|| other
            .list_offset("written", 0, OffsetSpec::Latest)
            .is_ok_and(|end| end == 1)),
        "the produce is appended once the polls end"
    );
    appended_early
}

#[test]
fn kafka_connection_is_not_read_past_its_requests_in_flight() {
    assert!(
        !kafka_produce_read_behind_long_polls(&["--max-in-flight-requests", "2"], 2, 1, 100),
        "a third request must not be read while two wait"
    );
    assert!(kafka_produce_read_behind_long_polls(
        &["--max-in-flight-requests", "3"],
        2,
        1,
        100
    ));
}

#[test]
fn kafka_connection_is_not_read_past_its_bytes_in_flight() {
    // Four polls of ~30 KiB hold ~120 KiB of a 128 KiB bound, so a 20 KiB produce
    // waits; a 1 KiB one fits beside them.
    let flags = [
        "--max-frame-bytes",
        "131072",
        "--max-in-flight-bytes",
        "131072",
    ];
    assert!(
        !kafka_produce_read_behind_long_polls(&flags, 4, 30 << 10, 20 << 10),
        "a request must not be read while the bytes in flight are at the bound"
    );
    assert!(kafka_produce_read_behind_long_polls(
        &flags,
        4,
        30 << 10,
        1 << 10
    ));
}

/// Sends a keep-alive `GET /healthz` and returns the start of the answer.
fn healthz(conn: &mut TcpStream) -> String {
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: broker\r\n\r\n")
        .expect("send");
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).expect("answer");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn http_connection_past_the_bound_gets_503_and_is_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let extra: Vec<String> = [
        "--shards",
        "2",
        "--cache-mb",
        "64",
        "--max-connections",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bin = std::path::Path::new(common::BIN);
    let broker =
        peregrine::embedded::BrokerProcess::spawn(bin, dir.path(), &extra).expect("broker starts");
    let mut open: Vec<TcpStream> = (0..2)
        .map(|_| {
            let conn = TcpStream::connect(&broker.http_addr).expect("connect");
            conn.set_read_timeout(Some(WITHIN)).expect("timeout");
            conn
        })
        .collect();
    for conn in &mut open {
        assert!(healthz(conn).starts_with("HTTP/1.1 200"));
    }
    let said = String::from_utf8_lossy(&read_until_closed(&broker.http_addr)).into_owned();
    assert!(
        said.starts_with("HTTP/1.1 503") && said.contains("--max-connections"),
        "the 3rd HTTP connection gets 503, got {said:?}"
    );
    for conn in &mut open {
        assert!(
            healthz(conn).starts_with("HTTP/1.1 200"),
            "connections within the bound keep working"
        );
    }
}
