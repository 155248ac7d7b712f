//! Kafka transactions through librdkafka (the `rdkafka` crate): a transaction over
//! partitions on both shards commits or aborts whole for `read_committed` consumers,
//! one left open past its timeout is aborted by the broker (and its producer fenced), a
//! second producer with the same transactional id fences the first, and offsets sent to
//! a transaction reach the group only when it commits.
//!
//! Every read goes up to a sentinel: after the transactions under test, a plain producer
//! writes `end` to every partition, and a consumer reads each partition until it sees
//! it. Records are per-partition ordered, so anything a consumer should not see would
//! have come before its sentinel: no test waits for silence.

mod common;
use common::{shared_broker, unique, Broker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest any one client call or wait of these tests takes.
const TIMEOUT: Duration = Duration::from_secs(30);
/// What every partition ends with once a test's transactions are done.
const SENTINEL: &str = "end";
/// The client's transaction timeout in the timeout case; the broker checks open
/// transactions about every second.
const SHORT_TXN_TIMEOUT_MS: &str = "2000";

/// Keeps delivery errors; counts successes.
#[derive(Clone, Default)]
struct Deliveries {
    ok: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::SeqCst);
            }
            Err((e, _)) => self.errors.lock().expect("lock").push(e.to_string()),
        }
    }
}

struct TestProducer {
    p: BaseProducer<Deliveries>,
    d: Deliveries,
}

fn config(b: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &b.kafka_addr);
    c
}

/// A producer; `txn_id` makes it transactional.
fn producer(b: &Broker, txn_id: Option<&str>, extra: &[(&str, &str)]) -> TestProducer {
    let mut c = config(b);
    c.set("acks", "all").set("linger.ms", "5");
    if let Some(id) = txn_id {
        c.set("transactional.id", id);
    }
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let d = Deliveries::default();
    let p = c.create_with_context(d.clone()).expect("create producer");
    TestProducer { p, d }
}

/// An initialised transactional producer.
fn txn_producer(b: &Broker, txn_id: &str, extra: &[(&str, &str)]) -> TestProducer {
    let tp = producer(b, Some(txn_id), extra);
    tp.p.init_transactions(TIMEOUT).expect("init_transactions");
    tp
}

impl TestProducer {
    /// Queues one record for `partition`, serving delivery reports while the queue is full.
    fn send(&self, topic: &str, partition: i32, value: &str) {
        let deadline = Instant::now() + TIMEOUT;
        let mut record = BaseRecord::to(topic)
            .partition(partition)
            .key(value)
            .payload(value);
        loop {
            match self.p.send(record) {
                Ok(()) => return,
                Err((e, back)) => {
                    assert!(e.to_string().contains("Queue full"), "send: {e}");
                    assert!(Instant::now() < deadline, "queue full for {TIMEOUT:?}");
                    self.p.poll(Duration::from_millis(10));
                    record = back;
                }
            }
        }
    }

    /// `count` records `{tag}-{partition}-{i}` to each of `partitions`.
    fn send_each(&self, topic: &str, partitions: i32, tag: &str, count: usize) {
        for i in 0..count {
            for p in 0..partitions {
                self.send(topic, p, &format!("{tag}-{p}-{i}"));
            }
        }
    }

    /// Waits until every queued record is acknowledged; panics on a delivery error.
    fn flush(&self) {
        self.p.flush(TIMEOUT).expect("flush");
        let errors = self.d.errors.lock().expect("lock").clone();
        assert!(errors.is_empty(), "delivery errors: {errors:?}");
    }
}

/// The values one test wrote to a partition, in order: `{tag}-{partition}-{i}`.
fn expected(tag: &str, partition: i32, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{tag}-{partition}-{i}"))
        .collect()
}

/// The node (shard) leading each partition of `topic`, from Metadata.
fn leaders(b: &Broker, topic: &str) -> Vec<i32> {
    let tp = producer(b, None, &[]);
    let md =
        tp.p.client()
            .fetch_metadata(Some(topic), TIMEOUT)
            .expect("metadata");
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.leader())
        .collect()
}

/// Creates `topic` and checks that its partitions are led by more than one shard, so a
/// transaction over all of them spans shards.
fn topic_on_both_shards(b: &Broker, prefix: &str, partitions: i32) -> String {
    let topic = unique(prefix);
    b.create_topic(&topic, partitions);
    let leaders = leaders(b, &topic);
    assert_eq!(leaders.len(), partitions as usize, "{leaders:?}");
    let distinct: BTreeSet<i32> = leaders.iter().copied().collect();
    assert!(distinct.len() >= 2, "partitions on one shard: {leaders:?}");
    topic
}

/// A plain producer writes the sentinel to every partition.
fn write_sentinels(b: &Broker, topic: &str, partitions: i32) {
    let tp = producer(b, None, &[]);
    for p in 0..partitions {
        tp.send(topic, p, SENTINEL);
    }
    tp.flush();
}

fn consumer(b: &Broker, isolation: &str) -> BaseConsumer {
    config(b)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .create()
        .expect("create consumer")
}

/// Every value of each partition before its sentinel, read with `isolation`
/// (`read_committed` or `read_uncommitted`).
fn read_to_sentinels(
    b: &Broker,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> BTreeMap<i32, Vec<String>> {
    let c = consumer(b, isolation);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut got: BTreeMap<i32, Vec<String>> = (0..partitions).map(|p| (p, vec![])).collect();
    let mut ended = BTreeSet::new();
    let deadline = Instant::now() + TIMEOUT;
    while ended.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "{isolation}: sentinels of {ended:?} only after {TIMEOUT:?}; read {got:?}"
        );
        let Some(m) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.expect("consume");
        let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        if ended.contains(&m.partition()) {
            continue;
        }
        if value == SENTINEL {
            ended.insert(m.partition());
        } else {
            got.entry(m.partition()).or_default().push(value);
        }
    }
    got
}

/// Asks ListOffsets for both isolation levels.
struct Watermarks {
    committed: BaseConsumer,
    uncommitted: BaseConsumer,
}

impl Watermarks {
    fn new(b: &Broker) -> Watermarks {
        Watermarks {
            committed: consumer(b, "read_committed"),
            uncommitted: consumer(b, "read_uncommitted"),
        }
    }

    /// (read_committed high watermark, i.e. the last stable offset; read_uncommitted
    /// high watermark) of one partition.
    fn stable_and_end(&self, topic: &str, partition: i32) -> (i64, i64) {
        let stable = self
            .committed
            .fetch_watermarks(topic, partition, TIMEOUT)
            .expect("read_committed watermarks")
            .1;
        let end = self
            .uncommitted
            .fetch_watermarks(topic, partition, TIMEOUT)
            .expect("read_uncommitted watermarks")
            .1;
        (stable, end)
    }
}

/// Whether `e` (from `tp`) says the producer was fenced: PRODUCER_FENCED or
/// INVALID_PRODUCER_EPOCH from the broker, which librdkafka raises as a fatal `_FENCED`.
fn is_fenced(tp: &TestProducer, e: &KafkaError) -> bool {
    let fencing = |code: RDKafkaErrorCode| {
        matches!(
            code,
            RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
        )
    };
    let code = match e {
        KafkaError::Transaction(t) => Some(t.code()),
        other => other.rdkafka_error_code(),
    };
    code.is_some_and(fencing)
        || tp
            .p
            .client()
            .fatal_error()
            .is_some_and(|(code, _)| fencing(code))
}

#[test]
fn a_committed_transaction_over_partitions_on_both_shards_is_read_whole() {
    let b = shared_broker();
    let topic = topic_on_both_shards(&b, "commit", 4);
    let tp = txn_producer(&b, &unique("commit-txn"), &[]);
    tp.p.begin_transaction().expect("begin");
    tp.send_each(&topic, 4, "c", 10);
    tp.p.commit_transaction(TIMEOUT).expect("commit");
    write_sentinels(&b, &topic, 4);
    for isolation in ["read_committed", "read_uncommitted"] {
        let got = read_to_sentinels(&b, &topic, 4, isolation);
        for p in 0..4 {
            assert_eq!(got[&p], expected("c", p, 10), "{isolation}, partition {p}");
        }
    }
    // Every partition is stable: nothing is open.
    let marks = Watermarks::new(&b);
    for p in 0..4 {
        let (stable, end) = marks.stable_and_end(&topic, p);
        assert_eq!(stable, end, "partition {p}");
    }
}

#[test]
fn an_aborted_transaction_is_seen_only_by_read_uncommitted_consumers() {
    let b = shared_broker();
    let topic = topic_on_both_shards(&b, "abort", 4);
    let tp = txn_producer(&b, &unique("abort-txn"), &[]);
    tp.p.begin_transaction().expect("begin");
    tp.send_each(&topic, 4, "aborted", 5);
    // The records are in the logs before the abort.
    tp.flush();
    tp.p.abort_transaction(TIMEOUT).expect("abort");
    tp.p.begin_transaction().expect("begin again");
    tp.send_each(&topic, 4, "kept", 3);
    tp.p.commit_transaction(TIMEOUT).expect("commit");
    write_sentinels(&b, &topic, 4);

    let committed = read_to_sentinels(&b, &topic, 4, "read_committed");
    let uncommitted = read_to_sentinels(&b, &topic, 4, "read_uncommitted");
    for p in 0..4 {
        assert_eq!(committed[&p], expected("kept", p, 3), "partition {p}");
        let mut both = expected("aborted", p, 5);
        both.extend(expected("kept", p, 3));
        assert_eq!(uncommitted[&p], both, "partition {p}");
    }
}

#[test]
fn a_transaction_left_open_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let b = shared_broker();
    let topic = topic_on_both_shards(&b, "timeout", 2);
    let tp = txn_producer(
        &b,
        &unique("timeout-txn"),
        &[("transaction.timeout.ms", SHORT_TXN_TIMEOUT_MS)],
    );
    tp.p.begin_transaction().expect("begin");
    tp.send_each(&topic, 2, "open", 4);
    tp.flush();
    // The broker aborts it: a marker follows the records and the last stable offset moves
    // up to the end of each partition.
    let deadline = Instant::now() + TIMEOUT;
    let marks = Watermarks::new(&b);
    for p in 0..2 {
        loop {
            let (stable, end) = marks.stable_and_end(&topic, p);
            assert!(end >= 4, "partition {p}: the records are there ({end})");
            if stable == end && end > 4 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partition {p}: last stable offset {stable}, end {end} after {TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Its producer's epoch was bumped: the commit it tries now is refused as fenced.
    let err =
        tp.p.commit_transaction(TIMEOUT)
            .expect_err("commit after the broker aborted on timeout");
    assert!(is_fenced(&tp, &err), "not a fencing error: {err}");
    // Later data reaches read_committed consumers; the timed-out records never do.
    let later = producer(&b, None, &[]);
    later.send_each(&topic, 2, "later", 2);
    later.flush();
    write_sentinels(&b, &topic, 2);
    let committed = read_to_sentinels(&b, &topic, 2, "read_committed");
    let uncommitted = read_to_sentinels(&b, &topic, 2, "read_uncommitted");
    for p in 0..2 {
        assert_eq!(committed[&p], expected("later", p, 2), "partition {p}");
        let mut both = expected("open", p, 4);
        both.extend(expected("later", p, 2));
        assert_eq!(uncommitted[&p], both, "partition {p}");
    }
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let b = shared_broker();
    let topic = topic_on_both_shards(&b, "fence", 2);
    let id = unique("fence-txn");
    let first = txn_producer(&b, &id, &[]);
    first.p.begin_transaction().expect("begin");
    first.send_each(&topic, 2, "zombie", 3);
    first.flush();
    // The second instance's init aborts what the first left open and bumps the epoch.
    let second = txn_producer(&b, &id, &[]);
    let err = first
        .p
        .commit_transaction(TIMEOUT)
        .expect_err("the fenced producer's commit");
    assert!(is_fenced(&first, &err), "not a fencing error: {err}");
    second.p.begin_transaction().expect("begin");
    second.send_each(&topic, 2, "live", 3);
    second.p.commit_transaction(TIMEOUT).expect("commit");
    write_sentinels(&b, &topic, 2);
    let committed = read_to_sentinels(&b, &topic, 2, "read_committed");
    for p in 0..2 {
        assert_eq!(committed[&p], expected("live", p, 3), "partition {p}");
    }
}

/// The group's committed offsets of `topic`'s partitions (-1: none).
fn committed_offsets(b: &Broker, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = config(b)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("create consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, TIMEOUT)
        .expect("committed offsets");
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

#[test]
fn offsets_sent_to_a_transaction_reach_the_group_only_when_it_commits() {
    let b = shared_broker();
    let input = topic_on_both_shards(&b, "offsets-in", 2);
    let output = topic_on_both_shards(&b, "offsets-out", 2);
    let group = unique("offsets-group");
    let plain = producer(&b, None, &[]);
    plain.send_each(&input, 2, "in", 4);
    plain.flush();

    let c: BaseConsumer = config(&b)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("create consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(&input, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut read = 0;
    let deadline = Instant::now() + TIMEOUT;
    while read < 8 {
        assert!(Instant::now() < deadline, "read {read} of 8 input records");
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            m.expect("consume");
            read += 1;
        }
    }
    let positions = c.position().expect("position");
    let metadata = c.group_metadata().expect("group metadata");

    let tp = txn_producer(&b, &unique("offsets-txn"), &[]);
    tp.p.begin_transaction().expect("begin");
    tp.send_each(&output, 2, "out", 1);
    tp.p.send_offsets_to_transaction(&positions, &metadata, TIMEOUT)
        .expect("send offsets");
    // A BaseProducer serves delivery reports only when polled: flush before the abort.
    tp.flush();
    tp.p.abort_transaction(TIMEOUT).expect("abort");
    assert_eq!(
        committed_offsets(&b, &group, &input, 2),
        vec![-1, -1],
        "an aborted transaction's offsets are dropped"
    );

    tp.p.begin_transaction().expect("begin again");
    tp.send_each(&output, 2, "out", 1);
    tp.p.send_offsets_to_transaction(&positions, &metadata, TIMEOUT)
        .expect("send offsets");
    tp.p.commit_transaction(TIMEOUT).expect("commit");
    assert_eq!(committed_offsets(&b, &group, &input, 2), vec![4, 4]);
}

#[test]
fn offsets_from_a_subscribed_group_member_commit_with_its_transaction() {
    let b = shared_broker();
    let input = topic_on_both_shards(&b, "member-in", 2);
    let output = topic_on_both_shards(&b, "member-out", 2);
    let group = unique("member-group");
    let plain = producer(&b, None, &[]);
    plain.send_each(&input, 2, "in", 3);
    plain.flush();
    // A consumer that joined the group: its metadata carries a member id and generation.
    let c: BaseConsumer = config(&b)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .create()
        .expect("create consumer");
    c.subscribe(&[input.as_str()]).expect("subscribe");
    let tp = txn_producer(&b, &unique("member-txn"), &[]);
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    tp.p.begin_transaction().expect("begin");
    while next.values().map(|o| *o as usize).sum::<usize>() < 6 {
        assert!(
            Instant::now() < deadline,
            "read {next:?} of 3 per partition"
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            tp.send(&output, m.partition(), &value.replace("in", "out"));
            next.insert(m.partition(), m.offset() + 1);
        }
    }
    let mut offsets = TopicPartitionList::new();
    for (p, o) in &next {
        offsets
            .add_partition_offset(&input, *p, Offset::Offset(*o))
            .expect("partition");
    }
    let metadata = c.group_metadata().expect("group metadata");
    tp.p.send_offsets_to_transaction(&offsets, &metadata, TIMEOUT)
        .expect("send offsets");
    tp.p.commit_transaction(TIMEOUT).expect("commit");
    assert_eq!(committed_offsets(&b, &group, &input, 2), vec![3, 3]);
    write_sentinels(&b, &output, 2);
    let got = read_to_sentinels(&b, &output, 2, "read_committed");
    for p in 0..2 {
        assert_eq!(got[&p], expected("out", p, 3), "partition {p}");
    }
}

/// Transactions of one producer for `concurrent_producers_commit_and_abort_apart`.
const CONCURRENT_TXNS: usize = 10;

#[test]
fn concurrent_producers_commit_and_abort_apart() {
    let b = shared_broker();
    let topic = topic_on_both_shards(&b, "concurrent", 4);
    // Ids spread over both shards' coordinators.
    let ids: Vec<String> = (0..4).map(|i| unique(&format!("concurrent-{i}"))).collect();
    let threads: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let (b, id, topic) = (b.clone(), id.clone(), topic.clone());
            std::thread::spawn(move || {
                let tp = txn_producer(&b, &id, &[]);
                for t in 0..CONCURRENT_TXNS {
                    tp.p.begin_transaction().expect("begin");
                    tp.send_each(&topic, 4, &format!("w{n}t{t}"), 5);
                    // Every third transaction of each producer aborts.
                    if t % 3 == 2 {
                        tp.flush();
                        tp.p.abort_transaction(TIMEOUT).expect("abort");
                    } else {
                        tp.p.commit_transaction(TIMEOUT).expect("commit");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("producer thread");
    }
    write_sentinels(&b, &topic, 4);
    let got = read_to_sentinels(&b, &topic, 4, "read_committed");
    for p in 0..4 {
        // Per producer, its committed transactions in order; nothing of an aborted one.
        for n in 0..ids.len() {
            let prefix = format!("w{n}t");
            let mine: Vec<&String> = got[&p].iter().filter(|v| v.starts_with(&prefix)).collect();
            let want: Vec<String> = (0..CONCURRENT_TXNS)
                .filter(|t| t % 3 != 2)
                .flat_map(|t| expected(&format!("w{n}t{t}"), p, 5))
                .collect();
            let want: Vec<&String> = want.iter().collect();
            assert_eq!(mine, want, "partition {p}, producer {n}");
        }
        assert_eq!(got[&p].len(), ids.len() * 7 * 5, "partition {p}");
    }
}
