//! Kafka transactions read through the native client and `peregrine consume`: data
//! written by a transactional librdkafka producer (the `rdkafka` crate) is read with
//! `Isolation::Committed` (`--isolation committed`) as committed records only, up to
//! the last stable offset, and never a transaction marker; `Uncommitted` (the default)
//! reads aborted records too, still without markers.
//!
//! An AMQP stream is a topic too: one fed by a transactional Kafka producer delivers
//! its data records (uncommitted, as every stream reader reads) and never a marker.
//!
//! Every transaction is ended (the broker answers EndTxn once its markers are durable)
//! before a read starts, so a reader that is caught up has seen all it ever will.

mod common;
use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};
use common::amqp_raw::RawAmqp;
use common::{run_cli, Broker};
use peregrine::client::consumer::{Consumer, StartFrom};
use peregrine::native::messages::Isolation;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The longest any one client call or wait of these tests takes.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one native poll waits.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// Partitions of the multi-partition topic: with two shards, both own some.
const PARTITIONS: i32 = 4;

/// A librdkafka producer (acks=all); transactional and initialised with `txn_id`.
fn kafka_producer(b: &Broker, txn_id: Option<&str>) -> BaseProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &b.kafka_addr)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000");
    if let Some(id) = txn_id {
        c.set("transactional.id", id);
    }
    let p: BaseProducer = c.create().expect("create producer");
    if txn_id.is_some() {
        p.init_transactions(TIMEOUT).expect("init_transactions");
    }
    p
}

/// Queues one record (the value is also the key), serving the queue while it is full.
fn send(p: &BaseProducer, topic: &str, partition: i32, value: &str) {
    let deadline = Instant::now() + TIMEOUT;
    let mut record = BaseRecord::to(topic)
        .partition(partition)
        .key(value)
        .payload(value);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((e, back)) => {
                assert!(Instant::now() < deadline, "send to {topic}: {e}");
                p.poll(Duration::from_millis(10));
                record = back;
            }
        }
    }
}

/// `prefix-P-I` for I in 0..n on every partition of `partitions`; the values sent.
fn send_all(p: &BaseProducer, topic: &str, partitions: i32, prefix: &str, n: usize) -> Vec<String> {
    let mut sent = Vec::new();
    for i in 0..n {
        for partition in 0..partitions {
            let value = format!("{prefix}-{partition}-{i}");
            send(p, topic, partition, &value);
            sent.push(value);
        }
    }
    sent
}

/// Every record of `topic` a native consumer from the earliest offset reads at
/// `isolation`, until it is caught up: (partition, value), in read order.
fn read_native(b: &Broker, topic: &str, isolation: Isolation) -> Vec<(i32, String)> {
    let client = b.client();
    let mut c =
        Consumer::assign_with(client, topic, None, StartFrom::Earliest, isolation).expect("assign");
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    loop {
        let records = c.poll(POLL_WAIT).expect("poll");
        let empty = records.is_empty();
        for r in records {
            let value = r.value.as_deref().map(String::from_utf8_lossy);
            out.push((r.partition, value.unwrap_or_default().into_owned()));
        }
        if empty && c.caught_up().expect("caught up") {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{isolation:?} reader of {topic} not caught up after {TIMEOUT:?}; read {out:?}"
        );
    }
}

/// What `peregrine consume` prints at `isolation` (without --follow it stops at the end).
fn read_cli(b: &Broker, topic: &str, isolation: &str) -> Vec<String> {
    let args = [
        "consume",
        topic,
        "--isolation",
        isolation,
        "--format",
        "%v",
        "--bootstrap",
        &b.addr,
    ];
    run_cli(&args, "").lines().map(str::to_string).collect()
}

/// Values grouped by partition, each in the order read (or sent).
fn by_partition<'a>(
    read: impl IntoIterator<Item = (i32, &'a String)>,
) -> BTreeMap<i32, Vec<String>> {
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (partition, value) in read {
        out.entry(partition).or_default().push(value.clone());
    }
    out
}

/// Sent values (`prefix-P-I`) grouped by their partition P, in the order sent.
fn sent_by_partition<'a>(sent: impl IntoIterator<Item = &'a String>) -> BTreeMap<i32, Vec<String>> {
    by_partition(sent.into_iter().map(|v| {
        let partition = v.split('-').nth(1).and_then(|p| p.parse().ok());
        (partition.expect("a value names its partition"), v)
    }))
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

#[test]
fn committed_readers_see_committed_transactions_only_and_never_a_marker() {
    let b = Broker::start();
    let topic = "native-txn";
    b.create_topic(topic, PARTITIONS);
    let txn = kafka_producer(&b, Some("native-txn-writer"));
    let plain = kafka_producer(&b, None);

    txn.begin_transaction().expect("begin 1");
    let first = send_all(&txn, topic, PARTITIONS, "first", 5);
    txn.commit_transaction(TIMEOUT).expect("commit 1");
    txn.begin_transaction().expect("begin 2");
    let aborted = send_all(&txn, topic, PARTITIONS, "aborted", 5);
    txn.flush(TIMEOUT).expect("aborted records on the broker");
    txn.abort_transaction(TIMEOUT).expect("abort 2");
    let between = send_all(&plain, topic, PARTITIONS, "plain", 2);
    plain.flush(TIMEOUT).expect("plain records acknowledged");
    txn.begin_transaction().expect("begin 3");
    let last = send_all(&txn, topic, PARTITIONS, "last", 5);
    txn.commit_transaction(TIMEOUT).expect("commit 3");

    // Per partition, in the order written: a marker would show as a value of its own.
    let committed = sent_by_partition(first.iter().chain(&between).chain(&last));
    let everything = sent_by_partition(first.iter().chain(&aborted).chain(&between).chain(&last));
    let read = read_native(&b, topic, Isolation::Committed);
    assert_eq!(by_partition(read.iter().map(|(p, v)| (*p, v))), committed);
    let read = read_native(&b, topic, Isolation::Uncommitted);
    assert_eq!(by_partition(read.iter().map(|(p, v)| (*p, v))), everything);

    let flat = |m: BTreeMap<i32, Vec<String>>| sorted(m.into_values().flatten().collect());
    assert_eq!(sorted(read_cli(&b, topic, "committed")), flat(committed));
    assert_eq!(sorted(read_cli(&b, topic, "uncommitted")), flat(everything));
}

#[test]
fn committed_reader_stops_at_an_open_transaction_and_reads_it_once_committed() {
    let b = Broker::start();
    let topic = "native-txn-open";
    b.create_topic(topic, 1);
    let txn = kafka_producer(&b, Some("native-txn-open-writer"));
    txn.begin_transaction().expect("begin 1");
    let done = send_all(&txn, topic, 1, "done", 3);
    txn.commit_transaction(TIMEOUT).expect("commit 1");
    txn.begin_transaction().expect("begin 2");
    let open = send_all(&txn, topic, 1, "open", 3);
    txn.flush(TIMEOUT).expect("open records on the broker");

    // Without --follow the CLI stops at the last stable offset: it ends, committed
    // records only.
    assert_eq!(read_cli(&b, topic, "committed"), done);
    let everything: Vec<String> = done.iter().chain(&open).cloned().collect();
    assert_eq!(read_cli(&b, topic, "uncommitted"), everything);

    // "Latest" for a committed reader is the last stable offset: the open
    // transaction's records come to it once committed.
    let client = b.client();
    let mut latest =
        Consumer::assign_with(client, topic, None, StartFrom::Latest, Isolation::Committed)
            .expect("assign");
    assert!(latest.caught_up().expect("caught up"));
    assert!(latest.poll(POLL_WAIT).expect("poll").is_empty());
    txn.commit_transaction(TIMEOUT).expect("commit 2");
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    while got.len() < open.len() {
        assert!(Instant::now() < deadline, "read {got:?} of {open:?}");
        for r in latest.poll(POLL_WAIT).expect("poll") {
            got.push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(got, open);
    assert!(
        latest.poll(POLL_WAIT).expect("poll").is_empty(),
        "nothing after"
    );
    assert_eq!(read_cli(&b, topic, "committed"), everything);
}

#[test]
fn an_amqp_stream_fed_by_a_transactional_producer_never_delivers_a_marker() {
    let b = Broker::start();
    let stream = "txn-stream";
    let mut amqp = RawAmqp::open(&b.amqp_addr);
    amqp.channel_open(1);
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    amqp.declare_queue(1, stream, args);

    let txn = kafka_producer(&b, Some("txn-stream-writer"));
    txn.begin_transaction().expect("begin 1");
    let mut written = send_all(&txn, stream, 1, "committed", 3);
    txn.commit_transaction(TIMEOUT).expect("commit 1");
    txn.begin_transaction().expect("begin 2");
    written.extend(send_all(&txn, stream, 1, "aborted", 3));
    txn.flush(TIMEOUT).expect("aborted records on the broker");
    txn.abort_transaction(TIMEOUT).expect("abort 2");
    // Deliveries come in offset order: a marker would come before this.
    let plain = kafka_producer(&b, None);
    send(&plain, stream, 0, "end");
    plain.flush(TIMEOUT).expect("end acknowledged");
    written.push("end".into());

    let mut from_first = FieldTable::default();
    from_first.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString("first".into()),
    );
    let consume = AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: stream.into(),
        consumer_tag: "reader".into(),
        no_ack: true,
        arguments: from_first,
        ..basic::Consume::default()
    }));
    match amqp.call(1, consume) {
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => {}
        other => panic!("expected basic.consume-ok, got {other:?}"),
    }
    let deadline = Instant::now() + TIMEOUT;
    let mut delivered: Vec<String> = Vec::new();
    while delivered.last().map(String::as_str) != Some("end") {
        assert!(
            Instant::now() < deadline,
            "delivered {delivered:?} of {written:?}"
        );
        match amqp.recv() {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) => {
                let body = amqp.recv_content(1).concat();
                delivered.push(String::from_utf8_lossy(&body).into_owned());
            }
            other => panic!("expected a delivery, got {other:?}"),
        }
    }
    assert_eq!(delivered, written);
}
