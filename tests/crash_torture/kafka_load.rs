//! The Kafka side of the torture load, through librdkafka (the `rdkafka` crate): an
//! idempotent producer (acks=all), a transactional producer and a consumer that commits
//! its group's offsets. Each keeps its client across kills (librdkafka reconnects to
//! the same ports and retries) and writes what the broker acknowledged into a ledger
//! the driver's checks read.

use super::control::{lock, Control};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const IDEM_TOPIC: &str = "torture-idem";
pub const TXN_TOPIC: &str = "torture-txn";
pub const PARTITIONS: i32 = 2;
pub const GROUP: &str = "torture-commits";
const TXN_ID: &str = "torture-txn";
/// Records each transaction writes to each partition.
pub const TXN_RECORDS_PER_PARTITION: usize = 3;
/// One transaction in this many is aborted on purpose.
const ABORT_ONE_IN: u64 = 5;
/// Messages the idempotent producer hands librdkafka per step, and the pause between
/// steps: about 1,000 messages a second, enough to have batches in flight at every
/// kill without flooding two shared cores.
const IDEM_BURST: u64 = 10;
const IDEM_PACE: Duration = Duration::from_millis(10);
/// The longest one client call may take (a broker restart takes about a second).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a producer may take to deliver what it holds when the driver pauses it.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// Between two attempts to create a client the broker refused.
const RETRY: Duration = Duration::from_millis(100);
/// Consumed messages between two commits, and the longest wait for a commit.
const COMMIT_EVERY: u64 = 50;
const COMMIT_IDLE: Duration = Duration::from_millis(300);
/// Failed commits in a row after which the committer starts a new consumer.
const COMMIT_FAILURES_MAX: u32 = 5;
/// Error texts each ledger keeps (the first ones: later ones are usually the same).
const ERRORS_KEPT: usize = 20;

/// Keeps the first `ERRORS_KEPT` error texts, counts the rest.
#[derive(Debug, Default, Clone)]
pub struct Errors {
    pub first: Vec<String>,
    pub count: u64,
}

impl Errors {
    pub fn note(&mut self, e: String) {
        self.count += 1;
        if self.first.len() < ERRORS_KEPT {
            self.first.push(e);
        }
    }
}

/// What the idempotent producer sent and what the broker acknowledged. Message `seq`
/// goes to partition `seq % PARTITIONS` with the value `seq`, so each partition's
/// values must rise.
#[derive(Debug, Default, Clone)]
pub struct IdemLedger {
    pub acked: BTreeMap<i32, BTreeSet<u64>>,
    pub sent: u64,
    /// Messages librdkafka gave up on (not acknowledged; may or may not be stored).
    pub failed: u64,
    /// Producers that hit a fatal error and were replaced.
    pub fatal: u64,
    pub errors: Errors,
}

/// Records each delivery report in the ledger.
struct Deliveries(Arc<Mutex<IdemLedger>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let mut ledger = lock(&self.0);
        match result {
            Ok(m) => {
                ledger
                    .acked
                    .entry(m.partition())
                    .or_default()
                    .insert(seq as u64);
            }
            Err((e, _)) => {
                ledger.failed += 1;
                ledger.errors.note(format!("delivery of {seq}: {e}"));
            }
        }
    }
}

/// Settings every client of the load shares: reconnect fast to the restarted broker.
fn client_config(ctl: &Control) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &ctl.kafka_addr)
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .set("socket.timeout.ms", "10000")
        .set("log_level", "3");
    c
}

/// Sends numbered messages with acks=all and idempotence until the run stops.
pub fn idempotent_producer(ctl: &Control, ledger: &Arc<Mutex<IdemLedger>>) {
    let mut seq: u64 = 0;
    let mut producer: Option<BaseProducer<Deliveries>> = None;
    while !ctl.stopping() {
        if ctl.pause_requested() {
            if let Some(p) = &producer {
                if let Err(e) = p.flush(FLUSH_TIMEOUT) {
                    lock(ledger).errors.note(format!("flush before pause: {e}"));
                }
            }
            ctl.wait_paused();
            continue;
        }
        let p = match producer.take() {
            Some(p) => p,
            None => match client_config(ctl)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "5")
                .set("message.timeout.ms", "60000")
                .set("queue.buffering.max.messages", "5000")
                .create_with_context(Deliveries(ledger.clone()))
            {
                Ok(p) => p,
                Err(e) => {
                    lock(ledger).errors.note(format!("create producer: {e}"));
                    std::thread::sleep(RETRY);
                    continue;
                }
            },
        };
        if let Some((code, reason)) = p.client().fatal_error() {
            let mut l = lock(ledger);
            l.fatal += 1;
            l.errors.note(format!("fatal {code:?}: {reason}"));
            continue; // dropped: a new producer (new producer id) next time round
        }
        for _ in 0..IDEM_BURST {
            seq += 1;
            let value = seq.to_string();
            let record = BaseRecord::<(), String, usize>::with_opaque_to(IDEM_TOPIC, seq as usize)
                .partition((seq % PARTITIONS as u64) as i32)
                .payload(&value);
            if let Err((e, _)) = p.send(record) {
                // Queue full while the broker is down: this number is never sent.
                lock(ledger).errors.note(format!("send {seq}: {e}"));
                break;
            }
            lock(ledger).sent += 1;
        }
        p.poll(IDEM_PACE);
        producer = Some(p);
    }
    if let Some(p) = producer {
        let _ = p.flush(CALL_TIMEOUT);
    }
}

/// What the transactional producer began, and how each transaction ended for it.
/// Transaction `n` writes `t{n}:{i}` to every partition; one whose commit failed and
/// whose abort could not be asked either is in `begun` only: its outcome is unknown,
/// but it must be all or nothing.
#[derive(Debug, Default, Clone)]
pub struct TxnLedger {
    pub begun: BTreeSet<u64>,
    pub committed: BTreeSet<u64>,
    pub aborted: BTreeSet<u64>,
    /// Producer instances (each one fences the one before).
    pub instances: u64,
    pub errors: Errors,
}

pub fn txn_value(txn: u64, i: usize) -> String {
    format!("t{txn}:{i}")
}

/// Runs small transactions over every partition until the run stops. It pauses only
/// between transactions, with an initialized producer: whatever an earlier instance
/// left open has been aborted by then.
pub fn transactional_producer(ctl: &Control, ledger: &Mutex<TxnLedger>) {
    let mut txn: u64 = 0;
    let mut producer: Option<BaseProducer> = None;
    while !ctl.stopping() {
        let p = match producer.take() {
            Some(p) => p,
            None => match new_transactional(ctl) {
                Ok(p) => {
                    lock(ledger).instances += 1;
                    p
                }
                Err(e) => {
                    lock(ledger).errors.note(e);
                    std::thread::sleep(RETRY);
                    continue;
                }
            },
        };
        if ctl.pause_requested() {
            producer = Some(p);
            ctl.wait_paused();
            continue;
        }
        txn += 1;
        lock(ledger).begun.insert(txn);
        match one_transaction(&p, txn) {
            Ok(Ended::Committed) => {
                lock(ledger).committed.insert(txn);
                producer = Some(p);
            }
            Ok(Ended::Aborted) => {
                lock(ledger).aborted.insert(txn);
                producer = Some(p);
            }
            Err(e) => {
                lock(ledger).errors.note(format!("transaction {txn}: {e}"));
                match p.abort_transaction(CALL_TIMEOUT) {
                    Ok(()) => {
                        lock(ledger).aborted.insert(txn);
                        producer = Some(p);
                    }
                    // Fenced, fatal or a commit still in progress: the next instance
                    // settles it.
                    Err(e) => lock(ledger).errors.note(format!("abort {txn}: {e}")),
                }
            }
        }
    }
}

fn new_transactional(ctl: &Control) -> Result<BaseProducer, String> {
    let p: BaseProducer = client_config(ctl)
        .set("transactional.id", TXN_ID)
        .set("transaction.timeout.ms", "10000")
        .set("linger.ms", "2")
        .create()
        .map_err(|e| format!("create transactional producer: {e}"))?;
    p.init_transactions(CALL_TIMEOUT)
        .map_err(|e| format!("init_transactions: {e}"))?;
    Ok(p)
}

/// How a transaction the producer ran to its end ended.
enum Ended {
    Committed,
    Aborted,
}

/// One transaction: committed, or, one in `ABORT_ONE_IN`, aborted on purpose once its
/// records are written (they must never be read committed).
fn one_transaction(p: &BaseProducer, txn: u64) -> Result<Ended, String> {
    p.begin_transaction().map_err(|e| format!("begin: {e}"))?;
    for i in 0..TXN_RECORDS_PER_PARTITION {
        for partition in 0..PARTITIONS {
            let value = txn_value(txn, i);
            let record = BaseRecord::to(TXN_TOPIC)
                .partition(partition)
                .key("")
                .payload(&value);
            p.send(record).map_err(|(e, _)| format!("send: {e}"))?;
        }
    }
    if txn.is_multiple_of(ABORT_ONE_IN) {
        p.flush(CALL_TIMEOUT)
            .map_err(|e| format!("flush before abort: {e}"))?;
        p.abort_transaction(CALL_TIMEOUT)
            .map_err(|e| format!("abort: {e}"))?;
        return Ok(Ended::Aborted);
    }
    p.commit_transaction(CALL_TIMEOUT)
        .map_err(|e| format!("commit: {e}"))?;
    Ok(Ended::Committed)
}

/// The group's commits of `IDEM_TOPIC` the broker acknowledged.
#[derive(Debug, Default, Clone)]
pub struct CommitLedger {
    /// The last acknowledged commit of each partition: the broker must keep it (or a
    /// later one) across any crash.
    pub acked: BTreeMap<i32, i64>,
    pub commits: u64,
    /// Acknowledged commits below the one before: the consumer went back after a
    /// position reset (below), and committed where it then was.
    pub went_back: Errors,
    pub consumed: u64,
    /// Consumers started (a new one resumes from the group's committed offsets).
    pub consumers: u64,
    /// A consumer handed a record below its position: after a restart the broker
    /// answered OFFSET_OUT_OF_RANGE for a position it had served records up to (they
    /// were not on disk yet and died with it), and librdkafka started over from the
    /// earliest offset (`auto.offset.reset`).
    pub position_resets: Errors,
    /// The next offset after the highest one the broker served the consumer, per
    /// partition.
    pub served: BTreeMap<i32, i64>,
    pub errors: Errors,
}

/// Reads `IDEM_TOPIC` from the group's committed offsets and commits its position
/// every `COMMIT_EVERY` messages (or `COMMIT_IDLE`), synchronously.
pub fn group_committer(ctl: &Control, ledger: &Mutex<CommitLedger>) {
    let mut consumer: Option<(BaseConsumer, BTreeMap<i32, i64>)> = None;
    let mut since_commit: u64 = 0;
    let mut last_commit = Instant::now();
    let mut failures: u32 = 0;
    while !ctl.stopping() {
        if ctl.pause_requested() {
            ctl.wait_paused();
            continue;
        }
        let (c, positions) = match consumer.take() {
            Some(c) => c,
            None => match new_committer(ctl, ledger) {
                Ok(c) => c,
                Err(e) => {
                    lock(ledger).errors.note(e);
                    std::thread::sleep(RETRY);
                    continue;
                }
            },
        };
        let mut positions = positions;
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let (p, offset) = (m.partition(), m.offset());
                if let Some(position) = positions.get(&p).filter(|at| offset < **at) {
                    lock(ledger).position_resets.note(format!(
                        "{IDEM_TOPIC}/{p}: offset {offset} read at position {position}"
                    ));
                }
                positions.insert(p, offset + 1);
                let mut l = lock(ledger);
                let served = l.served.entry(p).or_insert(0);
                *served = (*served).max(offset + 1);
                drop(l);
                since_commit += 1;
                lock(ledger).consumed += 1;
            }
            Some(Err(e)) => lock(ledger).errors.note(format!("poll: {e}")),
            None => {}
        }
        let due = since_commit >= COMMIT_EVERY
            || (since_commit > 0 && last_commit.elapsed() >= COMMIT_IDLE);
        if due {
            match commit(&c, &positions) {
                Ok(()) => {
                    let mut l = lock(ledger);
                    l.commits += 1;
                    for (p, o) in &positions {
                        if let Some(before) = l.acked.insert(*p, *o).filter(|b| b > o) {
                            l.went_back
                                .note(format!("{IDEM_TOPIC}/{p}: committed {o} after {before}"));
                        }
                    }
                    since_commit = 0;
                    last_commit = Instant::now();
                    failures = 0;
                }
                Err(e) => {
                    lock(ledger).errors.note(e);
                    failures += 1;
                }
            }
        }
        if failures < COMMIT_FAILURES_MAX {
            consumer = Some((c, positions));
        } else {
            failures = 0;
        }
    }
}

fn commit(c: &BaseConsumer, positions: &BTreeMap<i32, i64>) -> Result<(), String> {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in positions {
        tpl.add_partition_offset(IDEM_TOPIC, *p, Offset::Offset(*o))
            .map_err(|e| format!("offsets: {e}"))?;
    }
    c.commit(&tpl, CommitMode::Sync)
        .map_err(|e| format!("commit: {e}"))
}

/// A consumer assigned every partition at the group's committed offsets; a committed
/// offset below one the broker acknowledged is a failure of the run.
fn new_committer(
    ctl: &Control,
    ledger: &Mutex<CommitLedger>,
) -> Result<(BaseConsumer, BTreeMap<i32, i64>), String> {
    let c: BaseConsumer = client_config(ctl)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| format!("create consumer: {e}"))?;
    let mut all = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        all.add_partition_offset(IDEM_TOPIC, p, Offset::Invalid)
            .map_err(|e| format!("partition: {e}"))?;
    }
    let committed = c
        .committed_offsets(all, CALL_TIMEOUT)
        .map_err(|e| format!("committed offsets: {e}"))?;
    let mut positions = BTreeMap::new();
    let mut start = TopicPartitionList::new();
    let mut l = lock(ledger);
    for p in 0..PARTITIONS {
        let at = match committed.find_partition(IDEM_TOPIC, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        };
        if let Some(acked) = l.acked.get(&p).filter(|a| **a > at) {
            ctl.fail(format!(
                "group {GROUP} {IDEM_TOPIC}/{p}: committed offset {at} read back below the acknowledged commit {acked}"
            ));
        }
        positions.insert(p, at);
        start
            .add_partition_offset(IDEM_TOPIC, p, Offset::Offset(at))
            .map_err(|e| format!("partition: {e}"))?;
    }
    c.assign(&start).map_err(|e| format!("assign: {e}"))?;
    l.consumers += 1;
    Ok((c, positions))
}
