//! Crash torture: kill -9 the broker at random moments under mixed load, restart it on
//! the same data directory, and check after every restart that nothing it acknowledged
//! was lost, doubled, reordered or brought back.
//!
//! The load runs all the time, in five threads whose clients live across the kills
//! (the Kafka and AMQP ports stay the same, so librdkafka and the AMQP publisher
//! reconnect and retry by themselves):
//! - an idempotent producer (librdkafka, `acks=all`, `enable.idempotence`);
//! - a transactional producer (librdkafka; each transaction spans both partitions);
//! - a consumer committing its group's offsets (librdkafka, synchronous commits);
//! - an AMQP publisher with publisher confirms (lapin, persistent messages);
//! - a native queue consumer that receives and acks.
//!
//! One round: load for a random time, kill -9, stay down a random moment (one round in
//! four also kills it while it recovers, one in four again soon after it is ready, while
//! the clients reconnect and retry), restart, let the clients reconnect, pause them (each settles: flush, no transaction open, every
//! confirm in), then check (`checks`): both topics read back whole, the queue drained
//! and acked, the group's offsets read back. A round with a finding ends the run with
//! the findings, the seed and the broker's log.
//!
//! What the checks hold the broker to is what it acknowledged: records with acks=all,
//! committed transactions, confirmed publishes, answered acks, answered commits. One
//! more thing is counted and printed, not failed, because the broker does it by design
//! today: a fetch is served up to the end of the log in memory, before those records are
//! on disk, so a kill can leave a consumer past the end of the restarted log (the
//! driver compares each partition's end right after a restart with what the consumer
//! had been served; librdkafka then gets OFFSET_OUT_OF_RANGE and starts over from
//! `auto.offset.reset`, and the committer's next commits go below its earlier ones).
//!
//! `PEREGRINE_TORTURE_ROUNDS` sets the rounds (default: 5 in the test `.ci/run` runs,
//! 100 in the ignored long one), `PEREGRINE_TORTURE_SEED` the seed of the kill times
//! (default: the clock; the seed is printed). The clients' own timing is not seeded, so
//! a seed replays the schedule, not every interleaving.

mod common;

#[path = "crash_torture/checks.rs"]
mod checks;
#[path = "crash_torture/control.rs"]
mod control;
#[path = "crash_torture/kafka_load.rs"]
mod kafka_load;
#[path = "crash_torture/queue_load.rs"]
mod queue_load;

use common::Broker;
use control::{lock, Control, StopOnDrop};
use kafka_load::{CommitLedger, IdemLedger, TxnLedger, GROUP, IDEM_TOPIC, PARTITIONS, TXN_TOPIC};
use peregrine::client::consumer::{Consumer, StartFrom};
use peregrine::client::Client;
use peregrine::native::messages::{Isolation, OffsetSpec, QueueSpec};
use queue_load::{QueueLedger, QUEUE};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rounds of the test `.ci/run` runs, and of the ignored long run.
const SHORT_ROUNDS: u32 = 5;
const LONG_ROUNDS: u32 = 100;
/// How long the load runs before the kill, and how long the broker stays down (ms).
const LOAD_MS: std::ops::RangeInclusive<u64> = 200..=2500;
const DOWN_MS: std::ops::RangeInclusive<u64> = 0..=500;
/// One round in this many adds a kill while the broker recovers (how far into its
/// start, ms), and one in this many a kill soon after it is ready again, while the
/// clients reconnect and retry (ms after ready).
const EXTRA_KILL_ONE_IN: u32 = 4;
const RECOVERY_KILL_MS: std::ops::RangeInclusive<u64> = 0..=400;
const RECONNECT_KILL_MS: std::ops::RangeInclusive<u64> = 0..=500;
/// Load threads (each pauses once per round).
const WORKERS: usize = 5;
/// How long the workers may take to reconnect and settle after a restart.
const SETTLE_WITHIN: Duration = Duration::from_secs(90);
/// The longest any one read-back of the checks may take.
const READ_WITHIN: Duration = Duration::from_secs(60);
/// The queue's visibility timeout: a lease a dead connection left returns this soon.
const VISIBILITY_MS: u64 = 3000;
/// Log lines of the broker a failed round shows.
const LOG_TAIL_LINES: usize = 60;

struct Settings {
    rounds: u32,
    seed: u64,
}

fn settings(default_rounds: u32) -> Settings {
    let env = |name: &str| std::env::var(name).ok();
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    Settings {
        rounds: env("PEREGRINE_TORTURE_ROUNDS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_rounds),
        seed: env("PEREGRINE_TORTURE_SEED")
            .and_then(|v| v.parse().ok())
            .unwrap_or(clock),
    }
}

/// Where fixed ports are looked for: below the kernel's ephemeral range, so that no
/// outgoing connection of another process takes one while the broker is down.
const FIXED_PORTS: std::ops::Range<u16> = 20000..32000;

/// A free loopback port `p` with `p + 1 ..= p + extra` free too, found by binding and
/// letting go.
fn free_ports(extra: u16) -> u16 {
    for _ in 0..200 {
        let port = fastrand::u16(FIXED_PORTS);
        let all: Vec<_> = (0..=extra)
            .map(|i| TcpListener::bind(("127.0.0.1", port + i)))
            .collect();
        if all.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!(
        "no {} free consecutive loopback ports in {FIXED_PORTS:?}",
        extra + 1
    );
}

/// Every ledger of the load.
#[derive(Default)]
struct Ledgers {
    idem: Arc<Mutex<IdemLedger>>,
    txn: Mutex<TxnLedger>,
    commits: Mutex<CommitLedger>,
    queue: Mutex<QueueLedger>,
}

/// What the checks carry from round to round.
#[derive(Default)]
struct Carried {
    /// Queue messages the checks drained (and acked).
    drained: u64,
    /// Restarts after which a partition ended below what the consumer had been served.
    unsurvived: kafka_load::Errors,
}

/// Compares where each partition of `IDEM_TOPIC` ends right after a restart (before
/// the producers' retries land, mostly) with what the consumer had been served before
/// the kill: records served and then gone were handed out before they were on disk.
fn note_unsurvived_reads(addr: &str, served: &BTreeMap<i32, i64>, notes: &mut kafka_load::Errors) {
    let Ok(mut client) = Client::connect(addr) else {
        return;
    };
    for (p, served) in served {
        if let Ok(end) = client.list_offset(IDEM_TOPIC, *p, OffsetSpec::Latest) {
            if end < *served {
                notes.note(format!(
                    "{IDEM_TOPIC}/{p}: the consumer had been served up to offset {}, the log came back ending at {end}",
                    served - 1
                ));
            }
        }
    }
}

/// A broker on fixed Kafka and AMQP ports (its clients reconnect to them after each
/// restart), with the load's topics and queue; returns it and those two addresses.
fn start_broker() -> (Broker, String, String) {
    let shards = 2u16; // the harness starts two unless told otherwise
                       // The Kafka port, the per-shard Kafka ports above it, then the AMQP port.
    let kafka_port = free_ports(shards + 1);
    let amqp_port = kafka_port + shards + 1;
    let kafka_addr = format!("127.0.0.1:{kafka_port}");
    let amqp_addr = format!("127.0.0.1:{amqp_port}");
    let b = Broker::start_with(&["--kafka-addr", &kafka_addr, "--amqp-addr", &amqp_addr]);
    b.create_topic(IDEM_TOPIC, PARTITIONS);
    b.create_topic(TXN_TOPIC, PARTITIONS);
    b.client()
        .declare_queue(QueueSpec {
            name: QUEUE.into(),
            max_priority: 0,
            ttl_ms: None,
            visibility_timeout_ms: Some(VISIBILITY_MS),
            max_deliveries: None,
            dead_letter: None,
            fifo: false,
            max_length: None,
            max_bytes: None,
            overflow: Default::default(),
        })
        .expect("declare the queue");

    (b, kafka_addr, amqp_addr)
}

/// Brings the killed broker back after a random moment, with a kill during its
/// recovery in some rounds and one just after it is ready in others; says how.
fn restart(b: &mut Broker, rng: &mut fastrand::Rng) -> String {
    let down_ms = rng.u64(DOWN_MS);
    std::thread::sleep(Duration::from_millis(down_ms));
    let mut how = format!("down {down_ms} ms");
    if rng.u32(..EXTRA_KILL_ONE_IN) == 0 {
        let ms = rng.u64(RECOVERY_KILL_MS);
        b.crash_while_starting(Duration::from_millis(ms));
        how += &format!(", killed again {ms} ms into its start");
    }
    b.restart();
    if rng.u32(..EXTRA_KILL_ONE_IN) == 0 {
        let ms = rng.u64(RECONNECT_KILL_MS);
        std::thread::sleep(Duration::from_millis(ms));
        b.kill9();
        b.restart();
        how += &format!(", killed again {ms} ms after it was ready");
    }
    how
}

fn torture(default_rounds: u32) {
    let s = settings(default_rounds);
    eprintln!(
        "crash torture: {} rounds, seed {} (PEREGRINE_TORTURE_SEED={} replays the kill times)",
        s.rounds, s.seed, s.seed
    );
    let (mut b, kafka_addr, amqp_addr) = start_broker();
    let ctl = Control::new(b.addr.clone(), kafka_addr, amqp_addr);
    let ledgers = Ledgers::default();
    let mut rng = fastrand::Rng::with_seed(s.seed);
    let mut carried = Carried::default();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&ctl);
        let (ctl, l) = (&ctl, &ledgers);
        scope.spawn(move || kafka_load::idempotent_producer(ctl, &l.idem));
        scope.spawn(move || kafka_load::transactional_producer(ctl, &l.txn));
        scope.spawn(move || kafka_load::group_committer(ctl, &l.commits));
        scope.spawn(move || queue_load::amqp_publisher(ctl, &l.queue));
        scope.spawn(move || queue_load::queue_consumer(ctl, &l.queue));
        for round in 1..=s.rounds {
            ctl.resume();
            let load_ms = rng.u64(LOAD_MS);
            std::thread::sleep(Duration::from_millis(load_ms));
            b.kill9();
            let served = lock(&ledgers.commits).served.clone();
            let how = format!("killed after {load_ms} ms, {}", restart(&mut b, &mut rng));
            ctl.set_native_addr(b.addr.clone());
            note_unsurvived_reads(&b.addr, &served, &mut carried.unsurvived);
            if !ctl.pause(WORKERS, SETTLE_WITHIN) {
                fail_round(
                    &b,
                    &s,
                    round,
                    vec![format!(
                        "the load did not settle within {SETTLE_WITHIN:?} of the restart: {}",
                        errors_of(&ledgers)
                    )],
                );
            }
            let mut findings = ctl.take_failures();
            findings.extend(check_round(&b, &ledgers, &mut carried));
            if !findings.is_empty() {
                fail_round(&b, &s, round, findings);
            }
            eprintln!("round {round}: {how}; {}", totals(&ledgers, &carried));
        }
        ctl.stop();
    });
    let log = b.log();
    let count = |line: &str| log.lines().filter(|l| l.contains(line)).count();
    eprintln!(
        "crash torture: {} rounds in {:.0} s, seed {}, no findings; {}\nthe broker's log: {} starts, {} retried idempotent batches answered as duplicates, {} recoveries that aborted open transactions\nrestarts with a partition ending below what the consumer had been served: {} {:#?}\nclient errors (expected around kills): {}",
        s.rounds,
        started.elapsed().as_secs_f64(),
        s.seed,
        totals(&ledgers, &carried),
        count("broker ready"),
        count("duplicate batch from an idempotent producer"),
        count("aborting transactions left open"),
        carried.unsurvived.count,
        carried.unsurvived.first,
        errors_of(&ledgers)
    );
    let idem = lock(&ledgers.idem).clone();
    let txn = lock(&ledgers.txn).clone();
    let queue = lock(&ledgers.queue).clone();
    let commits = lock(&ledgers.commits).commits;
    assert!(
        idem.acked.values().map(|s| s.len()).sum::<usize>() > 0
            && !txn.committed.is_empty()
            && !queue.confirmed.is_empty()
            && !queue.settled.is_empty()
            && commits > 0,
        "every kind of load got something acknowledged: {}",
        totals(&ledgers, &carried)
    );
}

fn fail_round(b: &Broker, s: &Settings, round: u32, findings: Vec<String>) -> ! {
    let log = b.log();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    panic!(
        "round {round} of {} (PEREGRINE_TORTURE_SEED={}): {} findings:\n  {}\nbroker log (last {LOG_TAIL_LINES} lines):\n{tail}",
        s.rounds,
        s.seed,
        findings.len(),
        findings.join("\n  ")
    );
}

/// Every check, on a paused load; the queue is drained and acked on the way.
fn check_round(b: &Broker, ledgers: &Ledgers, carried: &mut Carried) -> Vec<String> {
    let idem = lock(&ledgers.idem).clone();
    let txn = lock(&ledgers.txn).clone();
    let acked_commits = lock(&ledgers.commits).acked.clone();
    let mut findings = Vec::new();
    match read_topic(&b.addr, IDEM_TOPIC, Isolation::Uncommitted) {
        Ok(log) => findings.extend(checks::idempotent(IDEM_TOPIC, &log, &idem)),
        Err(e) => findings.push(e),
    }
    match read_topic(&b.addr, TXN_TOPIC, Isolation::Committed) {
        Ok(log) => findings.extend(checks::transactions(TXN_TOPIC, &log, &txn)),
        Err(e) => findings.push(e),
    }
    match read_commits(&b.addr) {
        Ok(read) => {
            let what = format!("group {GROUP} {IDEM_TOPIC}");
            findings.extend(checks::commits(&what, &read, &acked_commits));
        }
        Err(e) => findings.push(e),
    }
    findings.extend(drain_queue(&b.addr, &ledgers.queue, carried));
    findings
}

/// A whole topic, from the start to its end (its last stable offset when read
/// committed, which must then have caught up with the end: no transaction is open
/// while the load is paused).
fn read_topic(addr: &str, topic: &str, isolation: Isolation) -> Result<checks::Log, String> {
    let fail = |e: &dyn std::fmt::Display| format!("reading {topic}: {e}");
    let deadline = Instant::now() + READ_WITHIN;
    let mut client = Client::connect(addr).map_err(|e| fail(&e))?;
    if isolation == Isolation::Committed {
        for p in 0..PARTITIONS {
            loop {
                let stable = client.list_offset(topic, p, OffsetSpec::LastStable);
                let end = client.list_offset(topic, p, OffsetSpec::Latest);
                match (stable, end) {
                    (Ok(s), Ok(e)) if s == e => break,
                    (Ok(s), Ok(e)) if Instant::now() >= deadline => {
                        return Err(fail(&format!(
                        "partition {p}: last stable offset {s}, end {e}: a transaction stays open"
                    )))
                    }
                    (Err(e), _) | (_, Err(e)) => return Err(fail(&e)),
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
    let mut consumer = Consumer::assign_with(client, topic, None, StartFrom::Earliest, isolation)
        .map_err(|e| fail(&e))?;
    let mut log = checks::Log::new();
    loop {
        if Instant::now() >= deadline {
            return Err(fail(&format!("not at its end within {READ_WITHIN:?}")));
        }
        let records = consumer
            .poll(Duration::from_millis(100))
            .map_err(|e| fail(&e))?;
        if records.is_empty() && consumer.caught_up().map_err(|e| fail(&e))? {
            return Ok(log);
        }
        for r in records {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
            log.entry(r.partition)
                .or_default()
                .push((r.offset, value.into_owned()));
        }
    }
}

fn read_commits(addr: &str) -> Result<BTreeMap<i32, i64>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("reading group {GROUP}'s offsets: {e}");
    let mut client = Client::connect(addr).map_err(|e| fail(&e))?;
    let entries = client.committed(GROUP, IDEM_TOPIC).map_err(|e| fail(&e))?;
    Ok(entries
        .into_iter()
        .map(|e| (e.partition, e.offset))
        .collect())
}

/// Receives every message left in the queue, checks them, and acks them.
fn drain_queue(addr: &str, ledger: &Mutex<QueueLedger>, carried: &mut Carried) -> Vec<String> {
    let fail = |e: &dyn std::fmt::Display| vec![format!("draining {QUEUE}: {e}")];
    let deadline = Instant::now() + READ_WITHIN;
    let mut client = match Client::connect(addr) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut drained = Vec::new();
    let mut handles = Vec::new();
    loop {
        if Instant::now() >= deadline {
            return fail(&format!("not empty within {READ_WITHIN:?}"));
        }
        let got = match client.receive(QUEUE, 256, 100, false) {
            Ok(g) => g,
            Err(e) => return fail(&e),
        };
        if got.is_empty() {
            match client.queue_stats(QUEUE) {
                Ok(s) if s.ready + s.delayed + s.in_flight == handles.len() as u64 => break,
                Ok(_) => continue,
                Err(e) => return fail(&e),
            }
        }
        for r in got {
            drained.push(queue_load::number_of(&r.body).unwrap_or(0));
            handles.push(r.delivery.handle);
        }
    }
    let mut l = lock(ledger);
    let findings = checks::queue(QUEUE, &drained, &l);
    if let Err(e) = client.ack(QUEUE, &handles) {
        return fail(&format!("ack: {e}"));
    }
    carried.drained += drained.len() as u64;
    for n in drained {
        l.ack_unknown.remove(&n);
        l.settled.insert(n);
    }
    findings
}

fn totals(ledgers: &Ledgers, carried: &Carried) -> String {
    let idem = lock(&ledgers.idem);
    let txn = lock(&ledgers.txn);
    let commits = lock(&ledgers.commits);
    let queue = lock(&ledgers.queue);
    format!(
        "idempotent: {} sent, {} acked, {} failed, {} fatal; transactions: {} committed, {} aborted, {} unknown, {} producers; commits: {} acked, {} consumed, {} consumers, {} position resets, {} acknowledged commits below the one before, {} restarts below what it had been served; queue: {} published, {} confirmed, {} nacked, {} settled ({} by the checks), {} acks unanswered",
        idem.sent,
        idem.acked.values().map(|s| s.len()).sum::<usize>(),
        idem.failed,
        idem.fatal,
        txn.committed.len(),
        txn.aborted.len(),
        txn.begun.len() - txn.committed.len() - txn.aborted.len(),
        txn.instances,
        commits.commits,
        commits.consumed,
        commits.consumers,
        commits.position_resets.count,
        commits.went_back.count,
        carried.unsurvived.count,
        queue.published,
        queue.confirmed.len(),
        queue.nacked.len(),
        queue.settled.len(),
        carried.drained,
        queue.ack_unknown.len()
    )
}

fn errors_of(ledgers: &Ledgers) -> String {
    let (committer, resets, went_back) = {
        let c = lock(&ledgers.commits);
        (
            c.errors.clone(),
            c.position_resets.clone(),
            c.went_back.clone(),
        )
    };
    let all = [
        ("idempotent", lock(&ledgers.idem).errors.clone()),
        ("transactional", lock(&ledgers.txn).errors.clone()),
        ("committer", committer),
        ("committer position resets", resets),
        ("committer commits below the one before", went_back),
        ("queue", lock(&ledgers.queue).errors.clone()),
    ];
    all.iter()
        .map(|(who, e)| format!("\n  {who}: {} errors, first: {:#?}", e.count, e.first))
        .collect()
}

#[test]
fn acknowledged_data_survives_repeated_kill_9_under_mixed_load() {
    torture(SHORT_ROUNDS);
}

#[test]
#[ignore = "the long run (100 rounds, about 14 minutes on dev-2c): cargo test --test crash_torture -- --ignored"]
fn acknowledged_data_survives_100_kill_9_rounds_under_mixed_load() {
    torture(LONG_ROUNDS);
}
