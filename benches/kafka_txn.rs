//! Kafka transactions against plain idempotent produce, through librdkafka (the `rdkafka`
//! crate) on the release broker binary (2 shards, started on a temporary directory as
//! `kafka_clients.rs` does): one producer, 100-byte messages, acks=all, linger.ms=0.
//!
//! Each round runs every mode once, alternated so that drift in the machine hits them
//! alike: `idempotent` (enable.idempotence, no transaction), then `txn-10`, `txn-100`
//! and `txn-1000` (that many messages per transaction). A transaction is begin, send,
//! flush, commit; its commit latency is the `commit_transaction` call alone (EndTxn:
//! the broker logs the decision, writes and syncs the markers, logs the completion),
//! timed after the flush so it does not include sending the messages. Then the
//! `txn-1000` topic is read from the start with `read_committed` and `read_uncommitted`
//! librdkafka consumers and the native client at `Isolation::Committed`.
//!
//! Prints one JSON line per measurement and a table at the end: median throughput per
//! mode, its ratio to `idempotent`, and commit latency p50/p99 over every round (HDR
//! histogram). Targets (issue 18): at 1,000 messages per transaction at least 80 % of
//! the idempotent throughput, commit p99 under 5 ms.
//!
//! `cargo bench --bench kafka_txn [-- MESSAGES ROUNDS PARTITIONS]` (defaults 100000 3 1).
//! MESSAGES is per mode and round; `txn-10` sends at most `TXNS_MAX` transactions.

use hdrhistogram::Histogram;
use peregrine::client::consumer::{Consumer as NativeConsumer, StartFrom};
use peregrine::embedded::BrokerProcess;
use peregrine::native::messages::{Isolation, TopicSpec};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SIZE: usize = 100;
/// Most transactions one mode runs per round (bounds the run time of `txn-10`).
const TXNS_MAX: usize = 2_000;
/// Longest any one client call or read waits.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Messages per transaction of each transactional mode.
const TXN_SIZES: [usize; 3] = [10, 100, 1_000];

fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    c
}

fn send(p: &BaseProducer, topic: &str, partition: i32, value: &[u8]) {
    let mut record = BaseRecord::<(), [u8]>::to(topic)
        .payload(value)
        .partition(partition);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((e, back)) => {
                assert!(Instant::now() < deadline, "send: {e}");
                p.poll(Duration::from_millis(1));
                record = back;
            }
        }
    }
}

/// Waits until every message sent has its delivery report. Not `flush`: the rdkafka
/// crate's `BaseProducer::poll` runs to its deadline, so `flush` costs up to 100 ms
/// whenever a report is not in at once, charged to every transaction. Without a real
/// flush a lingering batch would wait out `linger.ms`, so every mode runs with
/// `linger.ms=0` (the idempotent rate is the same as with 5 ms here: librdkafka
/// batches what queues up behind the requests in flight).
fn drain(p: &BaseProducer) {
    let deadline = Instant::now() + TIMEOUT;
    while p.in_flight_count() > 0 {
        assert!(Instant::now() < deadline, "delivery reports not in");
        p.poll(Duration::from_micros(100));
    }
}

/// Idempotent produce of `messages`: messages per second.
fn produce_idempotent(bootstrap: &str, topic: &str, partitions: i32, messages: usize) -> f64 {
    let p: BaseProducer = producer_config(bootstrap).create().expect("producer");
    let value = [b'x'; SIZE];
    let start = Instant::now();
    for i in 0..messages {
        send(&p, topic, (i % partitions as usize) as i32, &value);
    }
    drain(&p);
    messages as f64 / start.elapsed().as_secs_f64()
}

/// Transactional produce of `txns` transactions of `size` messages: messages per
/// second; each commit's latency (µs) goes into `commits`.
fn produce_txn(
    bootstrap: &str,
    (topic, partitions): (&str, i32),
    (txns, size): (usize, usize),
    txn_id: &str,
    commits: &mut Histogram<u64>,
) -> f64 {
    let p: BaseProducer = producer_config(bootstrap)
        .set("transactional.id", txn_id)
        .create()
        .expect("transactional producer");
    p.init_transactions(TIMEOUT).expect("init_transactions");
    let value = [b'x'; SIZE];
    let start = Instant::now();
    let mut i = 0usize;
    for _ in 0..txns {
        p.begin_transaction().expect("begin_transaction");
        for _ in 0..size {
            send(&p, topic, (i % partitions as usize) as i32, &value);
            i += 1;
        }
        drain(&p);
        let commit = Instant::now();
        p.commit_transaction(TIMEOUT).expect("commit_transaction");
        let us = commit.elapsed().as_micros().max(1);
        commits.record(u64::try_from(us).unwrap_or(u64::MAX)).ok();
    }
    i as f64 / start.elapsed().as_secs_f64()
}

/// librdkafka consumer from the beginning at `isolation` ("read_committed" or
/// "read_uncommitted"): messages per second until `messages` arrived.
fn consume_kafka(
    bootstrap: &str,
    (topic, partitions): (&str, i32),
    messages: usize,
    isolation: &str,
) -> f64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-{topic}-{isolation}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.min.messages", "1000000")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let start = Instant::now();
    let mut got = 0;
    while got < messages && start.elapsed() < TIMEOUT {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            m.expect("message");
            got += 1;
        }
    }
    assert_eq!(got, messages, "{isolation} consumed everything");
    got as f64 / start.elapsed().as_secs_f64()
}

/// The native client at `Isolation::Committed` from the beginning: messages per
/// second until `messages` arrived.
fn consume_native(native: &str, topic: &str, messages: usize) -> f64 {
    let client = peregrine::client::Client::connect(native).expect("native client");
    let mut c = NativeConsumer::assign_with(
        client,
        topic,
        None,
        StartFrom::Earliest,
        Isolation::Committed,
    )
    .expect("native consumer");
    let start = Instant::now();
    let mut got = 0;
    while got < messages && start.elapsed() < TIMEOUT {
        got += c
            .poll_with(Duration::from_millis(100), &mut |_, _| {})
            .expect("poll");
    }
    assert_eq!(got, messages, "native committed consumed everything");
    got as f64 / start.elapsed().as_secs_f64()
}

fn create_topic(native: &str, topic: &str, partitions: i32) {
    let mut client = peregrine::client::Client::connect(native).expect("native client");
    client
        .create_topic(TopicSpec {
            name: topic.into(),
            partitions,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: None,
        })
        .expect("create topic");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let messages: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let partitions: i32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_peregrine"));
    let flags = ["--shards", "2"].map(String::from);
    let broker = BrokerProcess::spawn(bin, dir.path(), &flags).expect("start broker");
    let (native, kafka) = (broker.addr.clone(), broker.kafka_addr.clone());

    let mut produced: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut consumed: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut commits: BTreeMap<usize, Histogram<u64>> = TXN_SIZES
        .iter()
        .map(|s| (*s, Histogram::new(3).expect("histogram")))
        .collect();
    for round in 0..rounds {
        let topic = format!("txn-bench-idempotent-{round}");
        create_topic(&native, &topic, partitions);
        let rate = produce_idempotent(&kafka, &topic, partitions, messages);
        println!(
            "{{\"mode\":\"idempotent\",\"round\":{round},\"partitions\":{partitions},\"messages\":{messages},\"produce_msgs_per_s\":{rate:.0}}}"
        );
        produced.entry("idempotent".into()).or_default().push(rate);
        for size in TXN_SIZES {
            let txns = (messages / size).clamp(1, TXNS_MAX);
            let topic = format!("txn-bench-{size}-{round}");
            create_topic(&native, &topic, partitions);
            let mut h = Histogram::new(3).expect("histogram");
            let txn_id = format!("bench-{size}-{round}");
            let rate = produce_txn(&kafka, (&topic, partitions), (txns, size), &txn_id, &mut h);
            println!(
                "{{\"mode\":\"txn-{size}\",\"round\":{round},\"partitions\":{partitions},\"messages\":{},\"transactions\":{txns},\"produce_msgs_per_s\":{rate:.0},\"commit_us_p50\":{},\"commit_us_p99\":{},\"commit_us_max\":{}}}",
                txns * size,
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max()
            );
            produced
                .entry(format!("txn-{size}"))
                .or_default()
                .push(rate);
            if let Some(all) = commits.get_mut(&size) {
                all.add(&h).expect("same histogram bounds");
            }
        }
        let topic = format!("txn-bench-1000-{round}");
        let written = (messages / 1_000).clamp(1, TXNS_MAX) * 1_000;
        for (name, rate) in [
            (
                "kafka-read_committed",
                consume_kafka(&kafka, (&topic, partitions), written, "read_committed"),
            ),
            (
                "kafka-read_uncommitted",
                consume_kafka(&kafka, (&topic, partitions), written, "read_uncommitted"),
            ),
            ("native-committed", consume_native(&native, &topic, written)),
        ] {
            println!(
                "{{\"consume\":\"{name}\",\"round\":{round},\"topic\":\"{topic}\",\"messages\":{written},\"consume_msgs_per_s\":{rate:.0}}}"
            );
            consumed.entry(name).or_default().push(rate);
        }
    }

    let base = median(produced.get("idempotent").cloned().unwrap_or_default());
    println!("\n| produce mode | msgs/s (median of {rounds}) | vs idempotent | commit p50 µs | commit p99 µs |");
    println!("|---|---:|---:|---:|---:|");
    println!("| idempotent | {base:.0} | 100 % | | |");
    for size in TXN_SIZES {
        let rate = median(
            produced
                .get(&format!("txn-{size}"))
                .cloned()
                .unwrap_or_default(),
        );
        let (p50, p99) = commits.get(&size).map_or((0, 0), |h| {
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
        });
        println!(
            "| txn-{size} | {rate:.0} | {:.0} % | {p50} | {p99} |",
            100.0 * rate / base.max(1.0)
        );
    }
    println!("\n| consume (txn-1000 topic) | msgs/s (median of {rounds}) |");
    println!("|---|---:|");
    for (name, rates) in consumed {
        println!("| {name} | {:.0} |", median(rates));
    }
}
