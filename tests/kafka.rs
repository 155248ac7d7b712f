//! Existing Kafka clients against the real broker: librdkafka through the `rdkafka`
//! crate (built from source), on the broker's Kafka port.

mod common;
use common::Broker;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Counts delivery reports, keeping the errors.
#[derive(Clone, Default)]
struct Deliveries {
    ok: Arc<AtomicUsize>,
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

fn config(b: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &b.kafka_addr)
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "20000");
    c
}

fn producer(b: &Broker, extra: &[(&str, &str)]) -> (BaseProducer<Deliveries>, Deliveries) {
    let mut c = config(b);
    c.set("acks", "all").set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let deliveries = Deliveries::default();
    let p = c
        .create_with_context(deliveries.clone())
        .expect("create producer");
    (p, deliveries)
}

/// Sends (key, value) pairs to `topic` and waits until every one is acknowledged.
fn produce_all(
    p: &BaseProducer<Deliveries>,
    d: &Deliveries,
    topic: &str,
    msgs: &[(String, String)],
) {
    let before = d.ok.load(Ordering::SeqCst);
    let deadline = Instant::now() + TIMEOUT;
    for (k, v) in msgs {
        let mut record = BaseRecord::to(topic).key(k.as_str()).payload(v.as_str());
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    // Queue full: serve delivery reports, then retry.
                    assert!(e.to_string().contains("Queue full"), "send: {e}");
                    assert!(
                        Instant::now() < deadline,
                        "queue still full after {TIMEOUT:?}"
                    );
                    p.poll(Duration::from_millis(10));
                    record = back;
                }
            }
        }
    }
    p.flush(TIMEOUT).expect("flush");
    let errors = d.errors.lock().expect("lock").clone();
    assert!(errors.is_empty(), "delivery errors: {errors:?}");
    assert_eq!(d.ok.load(Ordering::SeqCst) - before, msgs.len());
}

fn consumer(b: &Broker, group: &str) -> BaseConsumer {
    config(b)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .create()
        .expect("create consumer")
}

/// One received message: (partition, offset, key, value).
type Got = (i32, i64, String, String);

fn got_of(m: &rdkafka::message::BorrowedMessage<'_>) -> Got {
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).to_string();
    (m.partition(), m.offset(), text(m.key()), text(m.payload()))
}

/// Polls until `want` messages arrived (or the timeout), committing each synchronously
/// when `commit` is set.
fn consume(c: &BaseConsumer, want: usize, commit: bool) -> Vec<Got> {
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < want && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            got.push(got_of(&m));
            if commit {
                c.commit_message(&m, CommitMode::Sync).expect("commit");
            }
        }
    }
    got
}

fn keyed(n: usize, keys: usize, tag: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("key-{}", i % keys), format!("{tag}-{i}")))
        .collect()
}

fn seq_of(value: &str) -> usize {
    value
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("value ends in its index")
}

#[test]
fn keyed_messages_with_acks_all_reach_every_group_in_per_key_order() {
    let b = Broker::start();
    b.create_topic("orders", 4);
    let (p, d) = producer(&b, &[]);
    let msgs = keyed(400, 8, "order");
    produce_all(&p, &d, "orders", &msgs);
    for group in ["billing", "audit"] {
        let c = consumer(&b, group);
        c.subscribe(&["orders"]).expect("subscribe");
        let got = consume(&c, msgs.len(), false);
        assert_eq!(got.len(), msgs.len(), "group {group}");
        let mut per_key: HashMap<&str, (i32, usize)> = HashMap::new();
        for (partition, _, key, value) in &got {
            let seq = seq_of(value);
            if let Some((p, last)) = per_key.insert(key, (*partition, seq)) {
                assert_eq!(p, *partition, "key {key} moved partitions");
                assert!(last < seq, "key {key}: {last} before {seq} out of order");
            }
        }
        let distinct: HashSet<&String> = got.iter().map(|g| &g.3).collect();
        assert_eq!(distinct.len(), msgs.len(), "group {group} got duplicates");
    }
}

/// The partitions librdkafka's `murmur2_random` partitioner (Kafka's Java default)
/// picked for 200 keys, read back from the broker, are the ones the broker's own
/// partitioner computes: exchanges routing by key agree with Kafka producers.
#[test]
fn librdkafkas_murmur2_partitioner_and_the_brokers_agree_on_every_key() {
    let b = Broker::start();
    b.create_topic("hashed", 7);
    let (p, d) = producer(&b, &[("partitioner", "murmur2_random")]);
    let msgs = keyed(200, 200, "hashed");
    produce_all(&p, &d, "hashed", &msgs);
    let c = consumer(&b, "hash-check");
    c.subscribe(&["hashed"]).expect("subscribe");
    let got = consume(&c, msgs.len(), false);
    assert_eq!(got.len(), msgs.len());
    let used: HashSet<i32> = got.iter().map(|g| g.0).collect();
    assert_eq!(used.len(), 7, "200 keys spread over every partition");
    for (partition, _, key, _) in &got {
        let ours = peregrine_shards::partitioner::partition_for_key(key.as_bytes(), 7);
        assert_eq!(*partition, ours, "key {key}");
    }
}

#[test]
fn a_joining_consumer_rebalances_without_loss_or_rereading_commits() {
    let b = Broker::start();
    b.create_topic("work", 4);
    let (p, d) = producer(&b, &[]);
    let msgs = keyed(300, 30, "job");
    produce_all(&p, &d, "work", &msgs[..150]);
    let first = consumer(&b, "workers");
    first.subscribe(&["work"]).expect("subscribe");
    let mut got = consume(&first, 100, true);
    assert_eq!(got.len(), 100);
    // A second member joins: both poll until the rebalance gave it partitions and the
    // first member has taken its new assignment too (each member learns its share in
    // its own SyncGroup, so one may still hold none while the other has its own).
    let second = consumer(&b, "workers");
    second.subscribe(&["work"]).expect("subscribe");
    let deadline = Instant::now() + TIMEOUT;
    let assigned = |c: &BaseConsumer| c.assignment().map_or(0, |a| a.count());
    let settled = || assigned(&second) > 0 && assigned(&first) + assigned(&second) == 4;
    while !settled() && Instant::now() < deadline {
        got.extend(consume_for(&first, Duration::from_millis(100)));
        got.extend(consume_for(&second, Duration::from_millis(100)));
    }
    assert_eq!(
        assigned(&first) + assigned(&second),
        4,
        "every partition assigned once"
    );
    assert!(
        assigned(&second) > 0,
        "the second consumer never got a partition"
    );
    produce_all(&p, &d, "work", &msgs[150..]);
    let mut second_got = 0;
    while got.len() < msgs.len() && Instant::now() < deadline {
        got.extend(consume_for(&first, Duration::from_millis(100)));
        let batch = consume_for(&second, Duration::from_millis(100));
        second_got += batch.len();
        got.extend(batch);
    }
    let offsets: HashSet<(i32, i64)> = got.iter().map(|g| (g.0, g.1)).collect();
    assert_eq!(
        offsets.len(),
        got.len(),
        "a committed message was read again"
    );
    assert_eq!(got.len(), msgs.len(), "messages lost");
    assert!(
        second_got > 0,
        "the second consumer got nothing after the rebalance"
    );
}

/// Polls (committing each message) for a while.
fn consume_for(c: &BaseConsumer, time: Duration) -> Vec<Got> {
    let mut got = Vec::new();
    let end = Instant::now() + time;
    while Instant::now() < end {
        if let Some(m) = c.poll(Duration::from_millis(50)) {
            let m = m.expect("consume");
            got.push(got_of(&m));
            c.commit_message(&m, CommitMode::Sync).expect("commit");
        }
    }
    got
}

#[test]
fn a_restarted_consumer_resumes_from_its_commit_and_seek_replays() {
    let b = Broker::start();
    b.create_topic("events", 1);
    let (p, d) = producer(&b, &[]);
    let msgs = keyed(100, 1, "event");
    produce_all(&p, &d, "events", &msgs);
    {
        let c = consumer(&b, "resumer");
        c.subscribe(&["events"]).expect("subscribe");
        let got = consume(&c, 40, true);
        assert_eq!(got.len(), 40);
    }
    let c = consumer(&b, "resumer");
    c.subscribe(&["events"]).expect("subscribe");
    let rest = consume(&c, 60, false);
    assert_eq!(rest.len(), 60);
    assert_eq!(rest[0].1, 40, "resumes at the committed offset");
    // Committed offsets are what OffsetFetch reports.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("events", 0);
    let committed = c.committed_offsets(tpl, TIMEOUT).expect("committed");
    let offset = committed
        .find_partition("events", 0)
        .expect("partition")
        .offset();
    assert_eq!(offset, Offset::Offset(40));
    // Replay from the beginning with an explicit assignment and a seek.
    let r = consumer(&b, "replayer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("events", 0, Offset::Offset(90))
        .expect("add");
    r.assign(&tpl).expect("assign");
    assert_eq!(consume(&r, 10, false).len(), 10);
    r.seek("events", 0, Offset::Beginning, TIMEOUT)
        .expect("seek");
    let replay = consume(&r, 100, false);
    assert_eq!(replay.len(), 100);
    assert_eq!(replay[0].1, 0);
    let values: Vec<&String> = replay.iter().map(|g| &g.3).collect();
    let sent: Vec<&String> = msgs.iter().map(|m| &m.1).collect();
    assert_eq!(values, sent);
}

#[test]
fn every_compression_codec_round_trips_and_is_stored_as_sent() {
    let b = Broker::start();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("packed-{codec}");
        b.create_topic(&topic, 1);
        // A long linger puts many records in a batch, so compression pays.
        let (p, d) = producer(&b, &[("compression.codec", codec), ("linger.ms", "50")]);
        let msgs = keyed(200, 5, codec);
        produce_all(&p, &d, &topic, &msgs);
        let c = consumer(&b, &format!("reader-{codec}"));
        c.subscribe(&[topic.as_str()]).expect("subscribe");
        let got = consume(&c, msgs.len(), false);
        let values: Vec<&String> = got.iter().map(|g| &g.3).collect();
        let sent: Vec<&String> = msgs.iter().map(|m| &m.1).collect();
        assert_eq!(values, sent, "{codec}");
        // The broker kept the producer's compressed batches. librdkafka sends a batch
        // uncompressed when compressing would not shrink it (a lone small record), so
        // only some of the batches it sent need be compressed.
        let fetched = b
            .client()
            .fetch(&topic, 0, 0, 1 << 20, 0)
            .expect("native fetch");
        let batches = peregrine_shards::batch::split(&fetched.batches).expect("batches");
        assert!(
            batches.iter().any(|(_, h)| h.compression() != 0),
            "{codec}: all {} batches stored uncompressed",
            batches.len()
        );
    }
}

#[test]
fn admin_creates_and_deletes_topics_and_refuses_what_it_cannot_do() {
    let b = Broker::start();
    let admin: AdminClient<DefaultClientContext> = config(&b).create().expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let topics = [
        NewTopic::new("made-by-admin", 3, TopicReplication::Fixed(1)).set("retention.ms", "60000"),
        NewTopic::new("too-replicated", 1, TopicReplication::Fixed(3)),
        NewTopic::new("compacted", 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact"),
    ];
    let results =
        futures_lite::future::block_on(admin.create_topics(&topics, &opts)).expect("create");
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(results[1].is_err(), "replication factor 3 on one node");
    assert!(results[2].is_err(), "compaction is not offered");
    let again =
        futures_lite::future::block_on(admin.create_topics(&topics[..1], &opts)).expect("create");
    assert!(
        format!("{:?}", again[0]).contains("TopicAlreadyExists"),
        "{again:?}"
    );
    let described = b.client().topic("made-by-admin").expect("exists natively");
    assert_eq!(described.owners.len(), 3);
    assert_eq!(described.retention_ms, Some(60_000));
    let configs = futures_lite::future::block_on(
        admin.describe_configs(&[ResourceSpecifier::Topic("made-by-admin")], &opts),
    )
    .expect("describe configs");
    let resource = configs[0].as_ref().expect("topic configs");
    let value = |name: &str| {
        resource
            .get(name)
            .and_then(|e| e.value.clone())
            .unwrap_or_else(|| panic!("{name} missing: {resource:?}"))
    };
    assert_eq!(value("retention.ms"), "60000");
    assert_eq!(value("retention.bytes"), "-1");
    assert_eq!(value("segment.bytes"), (1u64 << 30).to_string());
    assert_eq!(value("cleanup.policy"), "delete");
    let unknown = futures_lite::future::block_on(
        admin.describe_configs(&[ResourceSpecifier::Topic("never-was")], &opts),
    )
    .expect("describe configs");
    // The broker answers UNKNOWN_TOPIC_OR_PARTITION; rdkafka 0.38 drops per-resource
    // errors, so all that shows here is that no configs came back.
    assert!(
        unknown[0].as_ref().map_or(true, |r| r.entries.is_empty()),
        "{unknown:?}"
    );
    let deleted =
        futures_lite::future::block_on(admin.delete_topics(&["made-by-admin", "never-was"], &opts))
            .expect("delete");
    assert!(deleted[0].is_ok(), "{deleted:?}");
    assert!(
        format!("{:?}", deleted[1]).contains("UnknownTopicOrPartition"),
        "{deleted:?}"
    );
    let md = admin
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata");
    assert!(md.topics().iter().all(|t| t.name() != "made-by-admin"));
}

#[test]
fn metadata_lists_the_broker_and_unknown_topics_are_refused() {
    let b = Broker::start();
    b.create_topic("listed", 4);
    let c = consumer(&b, "meta");
    // Every shard is a node on its own port and leads the partitions it owns.
    let md = c.fetch_metadata(None, TIMEOUT).expect("metadata");
    assert_eq!(md.brokers().len(), 2);
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == "listed")
        .expect("topic");
    assert_eq!(t.partitions().len(), 4);
    let owners = b.client().topic("listed").expect("native metadata").owners;
    for p in t.partitions() {
        assert_eq!(
            p.leader(),
            owners[p.id() as usize] as i32,
            "partition {}",
            p.id()
        );
    }
    for broker in md.brokers() {
        assert_eq!(broker.host(), "127.0.0.1");
        assert_ne!(format!("127.0.0.1:{}", broker.port()), b.kafka_addr);
    }
    // One node on the shared port when asked.
    let single = Broker::start_with(&["--kafka-nodes", "single"]);
    single.create_topic("listed", 2);
    let md = consumer(&single, "meta")
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata");
    assert_eq!(md.brokers().len(), 1);
    assert_eq!(
        format!("{}:{}", md.brokers()[0].host(), md.brokers()[0].port()),
        single.kafka_addr
    );
    let md = c.fetch_metadata(Some("nope"), TIMEOUT).expect("metadata");
    assert!(
        md.topics()[0].error().is_some(),
        "unknown topic has an error"
    );
    // Producing to it fails with the unknown-topic error, not a hang.
    let (p, d) = producer(&b, &[("message.timeout.ms", "3000")]);
    p.send(BaseRecord::to("nope").key("k").payload("v"))
        .expect("queued");
    let _ = p.flush(Duration::from_secs(10));
    let errors = d.errors.lock().expect("lock").clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn auto_created_topics_when_asked_for() {
    let b = Broker::start_with(&["--auto-create-topics"]);
    let (p, d) = producer(&b, &[]);
    produce_all(&p, &d, "appears", &keyed(10, 2, "auto"));
    let info = b.client().topic("appears").expect("created");
    assert_eq!(info.owners.len(), 1);
}

#[test]
fn a_malformed_kafka_request_closes_only_that_connection() {
    use std::io::{Read, Write};
    let b = Broker::start();
    b.create_topic("steady", 1);
    let (p, d) = producer(&b, &[]);
    produce_all(&p, &d, "steady", &keyed(10, 1, "before"));
    let bad_frames: [&[u8]; 3] = [
        // Length prefix far over the frame limit.
        &[0x7f, 0xff, 0xff, 0xff],
        // An API key that does not exist.
        &[0, 0, 0, 8, 0x7f, 0x00, 0, 0, 0, 0, 0, 1],
        // A Metadata v1 request cut off inside its topic array.
        &[0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 9],
    ];
    for frame in bad_frames {
        let mut s = std::net::TcpStream::connect(&b.kafka_addr).expect("connect");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        s.write_all(frame).expect("write");
        let mut buf = [0u8; 64];
        // The broker closes the connection (read returns 0) rather than hang or crash.
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "frame {frame:?}");
    }
    produce_all(&p, &d, "steady", &keyed(10, 1, "after"));
    let fetched = b.client().fetch("steady", 0, 0, 1 << 20, 0).expect("fetch");
    assert_eq!(fetched.high_watermark, 20);
}

/// A port with the next `span` ports free too (the shards' own Kafka ports follow it),
/// below the ephemeral range so no client connection takes one meanwhile.
fn free_ports(span: u16) -> u16 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = u64::from(std::process::id()) ^ now.map_or(0, |d| u64::from(d.subsec_nanos()));
    (0..1000u64)
        .map(|i| {
            20_000
                + ((seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(i * 7919))
                    % 12_000) as u16
        })
        .find(|p| (0..=span).all(|k| std::net::TcpListener::bind(("127.0.0.1", p + k)).is_ok()))
        .expect("free ports")
}

/// The broker's log line for a retried batch it recognised (`PartitionLog::append`).
const DUPLICATE_LOGGED: &str = "duplicate batch from an idempotent producer";

/// A TCP proxy in front of the broker's Kafka port that can swallow the broker's
/// answers: requests are served, their acknowledgements never arrive.
struct AnswerEater {
    addr: String,
    swallow: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl AnswerEater {
    fn start(upstream: String) -> AnswerEater {
        use std::sync::atomic::AtomicBool;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let swallow = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (sw, cs) = (swallow.clone(), conns.clone());
        // Serves until the test process ends; each connection until either side closes.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let clones = (client.try_clone(), server.try_clone());
                let (Ok(client2), Ok(server2)) = clones else {
                    continue;
                };
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    cs.lock().expect("lock").extend([c, s]);
                }
                let never = Arc::new(AtomicBool::new(false));
                std::thread::spawn(move || pump(client, server, never));
                let sw = sw.clone();
                std::thread::spawn(move || pump(server2, client2, sw));
            }
        });
        AnswerEater {
            addr,
            swallow,
            conns,
        }
    }

    /// Closes every proxied connection (clients reconnect through the proxy).
    fn cut(&self) {
        for c in self.conns.lock().expect("lock").drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` until either closes, dropping what arrives while `swallow`.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    swallow: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        if swallow.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Sum of the high watermarks of `topic`'s `partitions` partitions.
fn end_offsets(b: &Broker, topic: &str, partitions: i32) -> i64 {
    let mut c = b.client();
    (0..partitions)
        .map(|p| c.fetch(topic, p, 0, 1, 0).expect("fetch").high_watermark)
        .sum()
}

#[test]
fn an_idempotent_producer_across_a_broker_restart_writes_no_duplicates() {
    // Kafka clients reach the broker only through the proxy (one node, advertised at
    // the proxy), and the broker keeps its Kafka address across the restart.
    let addr = format!("127.0.0.1:{}", free_ports(2));
    let proxy = AnswerEater::start(addr.clone());
    let mut b = Broker::start_with(&[
        "--kafka-addr",
        &addr,
        "--kafka-nodes",
        "single",
        "--advertised-kafka-addr",
        &proxy.addr,
    ]);
    b.create_topic("ledger", 2);
    let mut c = config(&b);
    c.set("bootstrap.servers", &proxy.addr)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .set("retry.backoff.ms", "50")
        .set("message.timeout.ms", "120000");
    let d = Deliveries::default();
    let p: BaseProducer<Deliveries> = c.create_with_context(d.clone()).expect("producer");
    let msgs = keyed(3000, 8, "entry");
    produce_all(&p, &d, "ledger", &msgs[..1000]);
    // The next 500 are written (and synced: acks=all) but their answers are swallowed;
    // then the broker is killed. After the restart the producer must retry them, and
    // the broker must recognise them from its log instead of appending them again.
    proxy.swallow.store(true, Ordering::SeqCst);
    for (k, v) in &msgs[1000..1500] {
        let record = BaseRecord::to("ledger").key(k.as_str()).payload(v.as_str());
        p.send(record).map_err(|(e, _)| e).expect("send");
    }
    let deadline = Instant::now() + TIMEOUT;
    while end_offsets(&b, "ledger", 2) < 1500 && Instant::now() < deadline {
        p.poll(Duration::from_millis(20));
    }
    assert_eq!(
        end_offsets(&b, "ledger", 2),
        1500,
        "the unanswered batches arrived"
    );
    assert_eq!(d.ok.load(Ordering::SeqCst), 1000, "no answer got through");
    // acks=all answers follow the fdatasync: give the flusher its moment, then crash.
    std::thread::sleep(Duration::from_millis(300));
    b.restart();
    assert_eq!(b.kafka_addr, addr);
    proxy.swallow.store(false, Ordering::SeqCst);
    proxy.cut();
    p.flush(Duration::from_secs(60))
        .expect("flush after restart");
    let log = b.log();
    assert!(
        log.contains(DUPLICATE_LOGGED),
        "the producer's retries never reached the broker as duplicates"
    );
    produce_all(&p, &d, "ledger", &msgs[1500..]);
    let errors = d.errors.lock().expect("lock").clone();
    assert!(errors.is_empty(), "delivery errors: {errors:?}");
    assert_eq!(d.ok.load(Ordering::SeqCst), msgs.len());
    assert_eq!(
        end_offsets(&b, "ledger", 2),
        msgs.len() as i64,
        "duplicates written"
    );
    let c = consumer(&b, "auditor");
    c.subscribe(&["ledger"]).expect("subscribe");
    let got = consume(&c, msgs.len(), false);
    // Anything more would be a duplicate; give one a moment to show up.
    let mut extra = Vec::new();
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            extra.push(m.expect("consume").offset());
        }
    }
    let distinct: HashSet<&String> = got.iter().map(|g| &g.3).collect();
    assert_eq!(got.len(), msgs.len(), "messages missing");
    assert_eq!(distinct.len(), msgs.len(), "duplicates written");
    assert!(extra.is_empty(), "duplicate after the end: {extra:?}");
}

#[test]
fn admin_adds_partitions_deletes_records_and_groups() {
    let b = Broker::start();
    b.create_topic("growing", 2);
    let admin: AdminClient<DefaultClientContext> = config(&b).create().expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    // CreatePartitions: 2 → 5; shrinking is refused.
    let grown = futures_lite::future::block_on(
        admin.create_partitions(&[NewPartitions::new("growing", 5)], &opts),
    )
    .expect("create partitions");
    assert!(grown[0].is_ok(), "{grown:?}");
    let shrink = futures_lite::future::block_on(
        admin.create_partitions(&[NewPartitions::new("growing", 3)], &opts),
    )
    .expect("create partitions");
    assert!(
        format!("{shrink:?}").contains("InvalidPartitions"),
        "{shrink:?}"
    );
    assert_eq!(b.client().topic("growing").expect("topic").owners.len(), 5);
    let (p, d) = producer(&b, &[]);
    let msgs: Vec<(String, String)> = keyed(50, 5, "row");
    for (i, (k, v)) in msgs.iter().enumerate() {
        let record = BaseRecord::to("growing")
            .key(k.as_str())
            .payload(v.as_str())
            .partition((i % 5) as i32);
        p.send(record).map_err(|(e, _)| e).expect("send");
    }
    p.flush(TIMEOUT).expect("flush");
    assert_eq!(
        d.ok.load(Ordering::SeqCst),
        50,
        "the new partitions take writes"
    );
    // DeleteRecords: partition 4 keeps offsets 6.. (10 written), partition 0 loses all.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("growing", 4, Offset::Offset(6))
        .expect("add");
    tpl.add_partition_offset("growing", 0, Offset::End)
        .expect("add");
    let deleted =
        futures_lite::future::block_on(admin.delete_records(&tpl, &opts)).expect("delete records");
    let low = |p: i32| deleted.find_partition("growing", p).map(|e| e.offset());
    assert_eq!(low(4), Some(Offset::Offset(6)));
    assert_eq!(low(0), Some(Offset::Offset(10)));
    let c = consumer(&b, "after-delete");
    let (start, _) = c
        .fetch_watermarks("growing", 4, TIMEOUT)
        .expect("watermarks");
    assert_eq!(start, 6);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("growing", 4, Offset::Beginning)
        .expect("add");
    c.assign(&tpl).expect("assign");
    let rest = consume(&c, 4, false);
    assert_eq!(
        rest.iter().map(|g| g.1).collect::<Vec<_>>(),
        vec![6, 7, 8, 9]
    );
    // DeleteGroups: a group with committed offsets and no members goes away.
    let g = consumer(&b, "short-lived");
    g.subscribe(&["growing"]).expect("subscribe");
    assert_eq!(consume(&g, 1, true).len(), 1);
    drop(g);
    let gone = futures_lite::future::block_on(admin.delete_groups(&["short-lived"], &opts))
        .expect("delete groups");
    assert!(gone[0].is_ok(), "{gone:?}");
    let committed = b
        .client()
        .committed("short-lived", "growing")
        .expect("committed");
    assert!(committed.is_empty(), "{committed:?}");
}

#[test]
fn offsets_for_times_finds_the_exact_record() {
    let b = Broker::start();
    b.create_topic("timed", 1);
    let (p, d) = producer(&b, &[]);
    let base = 1_700_000_000_000i64;
    // Sent together, so several records share a batch.
    for i in 0..20i64 {
        let v = format!("t{i}");
        let record = BaseRecord::<(), str>::to("timed")
            .payload(v.as_str())
            .timestamp(base + i * 1000);
        p.send(record).map_err(|(e, _)| e).expect("send");
    }
    p.flush(TIMEOUT).expect("flush");
    assert_eq!(d.ok.load(Ordering::SeqCst), 20);
    let c = consumer(&b, "timekeeper");
    for (ts, want) in [
        (base + 7000, Offset::Offset(7)),
        (base + 6500, Offset::Offset(7)),
        (base - 1, Offset::Offset(0)),
        (base + 60_000, Offset::End),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("timed", 0, Offset::Offset(ts))
            .expect("add");
        let found = c
            .offsets_for_times(tpl, TIMEOUT)
            .expect("offsets for times");
        let got = found
            .find_partition("timed", 0)
            .expect("partition")
            .offset();
        assert_eq!(got, want, "timestamp {ts}");
    }
}

/// One record from idempotent producer `producer_id` (epoch 0) with sequence `seq`: the
/// Kafka v2 batch a Kafka producer sends, here through the native Produce request so the
/// test picks the sequence numbers.
fn idempotent_batch(producer_id: i64, seq: i32) -> Vec<u8> {
    let mut builder = peregrine_shards::records::BatchBuilder::new(1_700_000_000_000, 64);
    builder.push(
        None,
        Some(format!("seq-{seq}").as_bytes()),
        1_700_000_000_000,
        &[],
    );
    let mut batch = builder.finish().expect("one record");
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&0i16.to_be_bytes());
    batch[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = peregrine_shards::batch::crc_of(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn an_idempotent_producer_idle_past_its_expiration_starts_afresh() {
    use peregrine::native::messages::{Acks, ErrorCode};
    let b = Broker::start_with(&["--producer-id-expiration-ms", "1000"]);
    b.create_topic("expiring", 1);
    let mut c = b.client();
    let mut produce = |seq| c.produce("expiring", 0, Acks::Durable, &idempotent_batch(77, seq));
    assert_eq!(produce(0).expect("first"), Some((0, 0)));
    assert_eq!(produce(1).expect("next"), Some((1, 1)));
    // Remembered: a retry gets its first offsets, a gap is refused.
    assert_eq!(produce(1).expect("retry"), Some((1, 1)));
    let gap = produce(5).expect_err("a gap");
    assert_eq!(gap.code(), Some(ErrorCode::OutOfOrderSequence), "{gap}");
    std::thread::sleep(Duration::from_millis(1500));
    // Forgotten: the producer is new to the partition, so its sequence is taken as it
    // comes (Kafka since KIP-360), and a retry of what it sent before expiry would be
    // appended again.
    assert_eq!(produce(5).expect("after expiry"), Some((2, 2)));
    assert_eq!(produce(6).expect("in order"), Some((3, 3)));
    assert_eq!(produce(6).expect("retry"), Some((3, 3)), "remembered again");
    let fetched = b
        .client()
        .fetch("expiring", 0, 0, 1 << 20, 0)
        .expect("fetch");
    assert_eq!(fetched.high_watermark, 4);
}
