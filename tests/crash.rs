//! kill -9 under acks=durable load: every acknowledged message survives, in order,
//! without duplicates, offsets without gaps.

mod common;
use common::Broker;
use peregrine::client::consumer::{Consumer, StartFrom};
use peregrine::client::producer::{Producer, ProducerConfig};
use peregrine::client::records::OutRecord;
use peregrine::client::Client;
use peregrine::native::messages::Acks;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PARTITIONS: i32 = 4;

/// Produces numbered messages with acks=durable until the broker dies; records the
/// highest acknowledged sequence number per partition.
fn produce_until_killed(
    addr: String,
    acked: Arc<Mutex<BTreeMap<i32, u64>>>,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut client) = Client::connect(&addr) else {
        return;
    };
    let config = ProducerConfig {
        acks: Acks::Durable,
        batch_records: 50,
        ..ProducerConfig::default()
    };
    let Ok(mut producer) = Producer::new(&mut client, "crash", config) else {
        return;
    };
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        for p in 0..PARTITIONS {
            for _ in 0..50 {
                let value = format!("{p}:{seq}");
                seq += 1;
                let record = OutRecord {
                    key: None,
                    value: value.into(),
                    timestamp_ms: 0,
                };
                if producer.send(Some(p), record).is_err() {
                    return;
                }
            }
        }
        let flushed = producer.flush();
        let mut map = acked.lock().expect("lock");
        for a in producer.take_acked() {
            let e = map.entry(a.partition).or_insert(0);
            *e = (*e).max((a.last_offset + 1) as u64);
        }
        if flushed.is_err() {
            return;
        }
    }
}

#[test]
fn acknowledged_durable_messages_survive_kill_9() {
    let mut b = Broker::start();
    b.create_topic("crash", PARTITIONS);
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (addr, acked, stop) = (b.addr.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || produce_until_killed(addr, acked, stop))
    };
    std::thread::sleep(Duration::from_millis(1500));
    b.kill9();
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer thread");
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.values().sum::<u64>() > 0,
        "some messages were acknowledged before the kill"
    );

    b.restart();
    let client = b.client();
    let mut consumer =
        Consumer::assign(client, "crash", None, StartFrom::Earliest).expect("consumer");
    let mut seen: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    loop {
        let records = consumer.poll(Duration::from_millis(100)).expect("poll");
        if records.is_empty() && consumer.caught_up().expect("caught up") {
            break;
        }
        for r in records {
            let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            seen.entry(r.partition).or_default().push((r.offset, v));
        }
    }
    for (p, count) in &acked {
        let got = seen.get(p).cloned().unwrap_or_default();
        assert!(
            got.len() as u64 >= *count,
            "partition {p}: {} readable, {count} acknowledged",
            got.len()
        );
        let mut last_seq = -1i64;
        for (i, (offset, value)) in got.iter().enumerate() {
            assert_eq!(*offset, i as i64, "partition {p}: offsets without gaps");
            let (vp, seq) = value.split_once(':').expect("p:seq");
            assert_eq!(vp, p.to_string());
            let seq: i64 = seq.parse().expect("seq");
            assert!(seq > last_seq, "partition {p}: in order, no duplicates");
            last_seq = seq;
        }
    }
}

/// Produces numbered acks=leader messages to partition 0 of `topic`, 10 a batch, until
/// the broker dies or `stop` is set.
fn produce_leader_acked(addr: String, topic: &'static str, stop: Arc<AtomicBool>) {
    let Ok(mut client) = Client::connect(&addr) else {
        return;
    };
    let config = ProducerConfig {
        acks: Acks::Leader,
        batch_records: 10,
        ..ProducerConfig::default()
    };
    let Ok(mut producer) = Producer::new(&mut client, topic, config) else {
        return;
    };
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..10 {
            let record = OutRecord {
                key: None,
                value: format!("m{seq}").into(),
                timestamp_ms: 0,
            };
            seq += 1;
            if producer.send(Some(0), record).is_err() {
                return;
            }
        }
        if producer.flush().is_err() {
            return;
        }
        producer.take_acked();
    }
}

/// Batches still pending in memory die with the process, and their offsets go to other
/// records after the restart: a consumer that had been served them would be past the
/// log's end (librdkafka then resets to the start; a group would commit offsets of other
/// records). Consumers are served written data only. The long write linger holds
/// acks=leader data in memory for 50 ms, so a consumer served pending data would all but
/// surely be caught here.
#[test]
fn consumers_are_never_served_records_a_kill_9_takes_back() {
    let topic = "served";
    let mut b = Broker::start_with(&["--write-linger-us", "50000"]);
    b.create_topic(topic, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (addr, stop) = (b.addr.clone(), stop.clone());
        std::thread::spawn(move || produce_leader_acked(addr, topic, stop))
    };
    let mut consumer =
        Consumer::assign(b.client(), topic, None, StartFrom::Earliest).expect("consumer");
    let mut served: Vec<(i64, String)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while served.len() < 3_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} records served",
            served.len()
        );
        for r in consumer.poll(Duration::from_millis(100)).expect("poll") {
            let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            served.push((r.offset, v));
        }
    }
    // Killed right after the consumer was served, with the producer still going.
    b.kill9();
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer thread");

    b.restart();
    let mut consumer =
        Consumer::assign(b.client(), topic, None, StartFrom::Earliest).expect("consumer");
    let mut kept: Vec<(i64, String)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while kept.len() < served.len() {
        assert!(std::time::Instant::now() < deadline, "reading back");
        let records = consumer.poll(Duration::from_millis(100)).expect("poll");
        if records.is_empty() && consumer.caught_up().expect("caught up") {
            break;
        }
        for r in records {
            let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            kept.push((r.offset, v));
        }
    }
    let last = served.last().map(|(o, _)| *o).unwrap_or(-1);
    assert!(
        kept.len() >= served.len(),
        "served up to offset {last} before the kill; the log ends at {} after it",
        kept.len()
    );
    assert!(
        kept[..served.len()] == served[..],
        "what was served differs from what the log kept"
    );
}
