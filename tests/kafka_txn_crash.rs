//! Exactly-once consume-transform-produce across kill -9: an application (librdkafka,
//! the `rdkafka` crate) copies topic A to topic B in transactions of 100 messages,
//! sending its consumer offsets to each transaction, while the broker is killed with -9
//! several times, at different moments of a commit. After each kill the application
//! starts over as a new instance with the same transactional id (fencing what the old
//! one left open) and resumes from the group's committed offsets. At the end B, read
//! `read_committed`, holds every message of A exactly once in per-partition order, and
//! the group's offsets are A's ends.

mod common;
use common::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;
const PER_PARTITION: i64 = 1000;
/// Messages per transaction of the copying application.
const TXN_MESSAGES: usize = 100;
/// When each kill comes, in ms after the application called commit_transaction: at
/// once (its records still in flight), then later into the commit (EndTxn: decision
/// logged, markers, offsets).
const KILL_DELAYS_MS: [u64; 4] = [0, 1, 3, 8];
/// Committed transactions between two kills.
const COMMITS_PER_KILL: usize = 6;
const INPUT: &str = "copy-in";
const OUTPUT: &str = "copy-out";
const GROUP: &str = "copier";
const TXN_ID: &str = "copier-txn";
/// What one client call of the application may take: short, so that an instance
/// talking to a killed broker gives up soon and the next one starts.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the application waits to fill one transaction before it sends a short one.
const FILL_WITHIN: Duration = Duration::from_secs(1);
/// The longest any wait of the test itself takes.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
const SENTINEL: &str = "end";
/// Instances the application starts at most (each kill ends one or two; an instance
/// also ends on a call that times out while the broker restarts).
const INSTANCES_MAX: usize = 40;

/// What the test and the application share.
#[derive(Default)]
struct Shared {
    /// The broker's Kafka address now (it changes with every restart).
    addr: Mutex<String>,
    committed_txns: AtomicUsize,
    /// commit_transaction calls begun.
    commits_begun: AtomicUsize,
    instances: AtomicUsize,
    done: AtomicBool,
    stop: AtomicBool,
    /// Why each instance ended.
    endings: Mutex<Vec<String>>,
}

fn value_of(m: &impl Message) -> (String, String) {
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    (text(m.key()), text(m.payload()))
}

fn input_list(offset: impl Fn(i32) -> Offset) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(INPUT, p, offset(p))
            .expect("partition");
    }
    tpl
}

/// The application: instances one after the other until the copy is complete.
fn copier(shared: Arc<Shared>) {
    let deadline = Instant::now() + TEST_TIMEOUT;
    while !shared.stop.load(Ordering::SeqCst)
        && Instant::now() < deadline
        && shared.instances.load(Ordering::SeqCst) < INSTANCES_MAX
    {
        shared.instances.fetch_add(1, Ordering::SeqCst);
        let addr = shared.addr.lock().expect("lock").clone();
        match run_instance(&addr, &shared) {
            Ok(()) => {
                shared.done.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                shared.endings.lock().expect("lock").push(e);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// One instance: init (aborting what an earlier one left open), then copy from the
/// group's committed offsets. Any error ends it; `Ok` once A is copied whole.
fn run_instance(addr: &str, shared: &Shared) -> Result<(), String> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("transactional.id", TXN_ID)
        .set("transaction.timeout.ms", "10000")
        .set("linger.ms", "5")
        .create()
        .map_err(|e| format!("producer: {e}"))?;
    producer
        .init_transactions(CALL_TIMEOUT)
        .map_err(|e| format!("init_transactions: {e}"))?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    // Where the group is: the next offset of each partition.
    let committed = consumer
        .committed_offsets(input_list(|_| Offset::Invalid), CALL_TIMEOUT)
        .map_err(|e| format!("committed offsets: {e}"))?;
    let mut next: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| {
            let at = match committed.find_partition(INPUT, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            };
            (p, at)
        })
        .collect();
    consumer
        .assign(&input_list(|p| Offset::Offset(next[&p])))
        .map_err(|e| format!("assign: {e}"))?;
    let metadata = consumer
        .group_metadata()
        .ok_or_else(|| "no group metadata".to_string())?;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return Err("stopped".into());
        }
        if next.values().all(|o| *o >= PER_PARTITION) {
            return Ok(());
        }
        let batch = fill(&consumer)?;
        if batch.is_empty() {
            continue;
        }
        producer
            .begin_transaction()
            .map_err(|e| format!("begin: {e}"))?;
        for (p, offset, key, value) in &batch {
            let record = BaseRecord::to(OUTPUT).partition(*p).key(key).payload(value);
            producer
                .send(record)
                .map_err(|(e, _)| format!("send: {e}"))?;
            next.insert(*p, offset + 1);
        }
        let touched: BTreeSet<i32> = batch.iter().map(|b| b.0).collect();
        let mut offsets = TopicPartitionList::new();
        for p in touched {
            offsets
                .add_partition_offset(INPUT, p, Offset::Offset(next[&p]))
                .map_err(|e| format!("offsets: {e}"))?;
        }
        producer
            .send_offsets_to_transaction(&offsets, &metadata, CALL_TIMEOUT)
            .map_err(|e| format!("send_offsets_to_transaction: {e}"))?;
        shared.commits_begun.fetch_add(1, Ordering::SeqCst);
        producer
            .commit_transaction(CALL_TIMEOUT)
            .map_err(|e| format!("commit: {e}"))?;
        shared.committed_txns.fetch_add(1, Ordering::SeqCst);
    }
}

/// Up to `TXN_MESSAGES` input messages: (partition, offset, key, value).
fn fill(consumer: &BaseConsumer) -> Result<Vec<(i32, i64, String, String)>, String> {
    let mut batch = Vec::with_capacity(TXN_MESSAGES);
    let until = Instant::now() + FILL_WITHIN;
    while batch.len() < TXN_MESSAGES && Instant::now() < until {
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(e)) => return Err(format!("poll: {e}")),
            Some(Ok(m)) => {
                let (key, value) = value_of(&m);
                batch.push((m.partition(), m.offset(), key, value));
            }
        }
    }
    Ok(batch)
}

fn input_value(p: i32, i: i64) -> String {
    format!("p{p}-{i}")
}

fn fill_input(b: &Broker) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &b.kafka_addr)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let deadline = Instant::now() + TEST_TIMEOUT;
    for i in 0..PER_PARTITION {
        for part in 0..PARTITIONS {
            let v = input_value(part, i);
            let mut record = BaseRecord::to(INPUT).partition(part).key(&v).payload(&v);
            loop {
                match p.send(record) {
                    Ok(()) => break,
                    Err((e, back)) => {
                        assert!(e.to_string().contains("Queue full"), "send: {e}");
                        assert!(Instant::now() < deadline, "queue full");
                        p.poll(Duration::from_millis(10));
                        record = back;
                    }
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush input");
    for part in 0..PARTITIONS {
        let (_, end) = p
            .client()
            .fetch_watermarks(INPUT, part, Duration::from_secs(30))
            .expect("watermarks");
        assert_eq!(end, PER_PARTITION, "input partition {part}");
    }
}

/// Waits (at most until `deadline`) until `cond` holds.
fn wait_for(what: &str, deadline: Instant, cond: impl Fn() -> bool) {
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {TEST_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// B, read `read_committed` up to a sentinel written after the copy: each partition's
/// values in order.
fn read_output(b: &Broker) -> BTreeMap<i32, Vec<String>> {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &b.kafka_addr)
        .set("acks", "all")
        .create()
        .expect("producer");
    for part in 0..PARTITIONS {
        p.send(
            BaseRecord::to(OUTPUT)
                .partition(part)
                .key("")
                .payload(SENTINEL),
        )
        .map_err(|(e, _)| e)
        .expect("sentinel");
    }
    p.flush(Duration::from_secs(30)).expect("flush sentinels");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b.kafka_addr)
        .set("group.id", "copy-check")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for part in 0..PARTITIONS {
        tpl.add_partition_offset(OUTPUT, part, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut got: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut ended = BTreeSet::new();
    let deadline = Instant::now() + TEST_TIMEOUT;
    while ended.len() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "sentinels of {ended:?} only");
        let Some(m) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.expect("consume output");
        let (_, value) = value_of(&m);
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

fn group_offsets(b: &Broker) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b.kafka_addr)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let got = c
        .committed_offsets(input_list(|_| Offset::Invalid), Duration::from_secs(30))
        .expect("committed offsets");
    (0..PARTITIONS)
        .map(|p| match got.find_partition(INPUT, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

#[test]
fn a_transactional_copy_survives_kill_9_exactly_once() {
    let mut b = Broker::start();
    b.create_topic(INPUT, PARTITIONS);
    b.create_topic(OUTPUT, PARTITIONS);
    fill_input(&b);

    let shared = Arc::new(Shared::default());
    *shared.addr.lock().expect("lock") = b.kafka_addr.clone();
    let app = {
        let shared = shared.clone();
        std::thread::spawn(move || copier(shared))
    };
    let deadline = Instant::now() + TEST_TIMEOUT;
    for (kill, delay_ms) in (1..).zip(KILL_DELAYS_MS) {
        let target = kill * COMMITS_PER_KILL;
        wait_for(&format!("{target} commits"), deadline, || {
            shared.committed_txns.load(Ordering::SeqCst) >= target || app.is_finished()
        });
        assert!(
            !app.is_finished() || shared.done.load(Ordering::SeqCst),
            "the application gave up after {} instances: {:#?}",
            shared.instances.load(Ordering::SeqCst),
            shared.endings.lock().expect("lock")
        );
        assert!(
            !shared.done.load(Ordering::SeqCst),
            "the copy finished before kill {kill}: make the input larger"
        );
        let begun = shared.commits_begun.load(Ordering::SeqCst);
        wait_for("the next commit", deadline, || {
            shared.commits_begun.load(Ordering::SeqCst) > begun || app.is_finished()
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        b.kill9();
        b.restart();
        *shared.addr.lock().expect("lock") = b.kafka_addr.clone();
    }
    wait_for("the copy", deadline, || {
        shared.done.load(Ordering::SeqCst) || app.is_finished()
    });
    shared.stop.store(true, Ordering::SeqCst);
    app.join().expect("application thread");
    let endings = shared.endings.lock().expect("lock").clone();
    assert!(
        shared.done.load(Ordering::SeqCst),
        "the application gave up; its instances ended with: {endings:#?}"
    );
    eprintln!(
        "{} instances, {} committed transactions; earlier instances ended with: {endings:#?}",
        shared.instances.load(Ordering::SeqCst),
        shared.committed_txns.load(Ordering::SeqCst)
    );

    let out = read_output(&b);
    for p in 0..PARTITIONS {
        let got = out.get(&p).cloned().unwrap_or_default();
        let want: Vec<String> = (0..PER_PARTITION).map(|i| input_value(p, i)).collect();
        let distinct: BTreeSet<&String> = got.iter().collect();
        assert_eq!(
            (got.len(), distinct.len()),
            (want.len(), want.len()),
            "partition {p}: (records, distinct) in B"
        );
        assert!(got == want, "partition {p}: B is not A in order");
    }
    assert_eq!(group_offsets(&b), vec![PER_PARTITION; PARTITIONS as usize]);
}
