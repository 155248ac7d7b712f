//! Every request kind a client can encode on the native wire, forged: made-up envelope
//! ids (repeated, zero, the largest), lease handles and holder-like ids that were never
//! handed out, unknown names, the largest and smallest numbers, from several
//! connections on every port at once, while a producer keeps producing and fetching on
//! every shard and a subscriber on its queue's own shard keeps receiving. Afterwards
//! the broker is the same process and everything still works.
//!
//! The wire once carried the broker's own subscription calls: a forged `Unsubscribe`
//! for a live subscription on its queue's own shard made that shard spin forever. Such a
//! hang shows here as the producer's or the subscriber's calls timing out.

mod common;
use common::Broker;
use peregrine::client::queues::Subscription;
use peregrine::client::records::{encode_batch, OutRecord};
use peregrine::client::{Client, Connection};
use peregrine::native::frame;
use peregrine::native::messages::{
    Acks, AclBinding, AclFilter, AclOperation, AclPatternFilter, AclPatternType, AclPermission,
    AclResourceType, BindingSpec, CommitEntry, ExchangeType, OffsetSpec, PublishSpec,
    QueueOverflow, QueueSpec, Request, RequestEnvelope, Response, ScramMechanism, TopicSpec,
    UserChange,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPIC: &str = "forged-t";
/// One partition per shard.
const PARTITIONS: i32 = 2;
/// The subscriber's queue.
const QUEUE: &str = "forged-q";
/// A real queue the forgers may do anything to.
const PLAYGROUND: &str = "forged-play";
/// Rounds of every request kind per forging connection.
const ROUNDS: u64 = 16;
/// How long one call of the background load may take before the broker counts as hung.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the forgers may take in all.
const FORGING_DEADLINE: Duration = Duration::from_secs(60);
/// Native request kinds: `Request::api_index` is an exhaustive match (no catch-all), so
/// a new kind does not compile until it is listed there, and this test then fails until
/// `forged` sends it too.
const KINDS: usize = peregrine::metrics::NATIVE_APIS.len();

/// Lease handles and holder-like ids nobody was given: zero, the largest, the top bit,
/// and ids laid out as the broker numbers its subscriptions (shard above a counter).
fn forged_handles(round: u64) -> Vec<u64> {
    let mut handles = vec![0, u64::MAX, u64::MAX - round, 1 << 63];
    for shard in 0..2u64 {
        handles.extend((1..=4).map(|n| (shard << 40) | n));
    }
    handles
}

fn wild_publish(round: u64) -> PublishSpec {
    PublishSpec {
        priority: u8::MAX,
        delay_ms: Some(u64::MAX - round),
        ttl_ms: Some(u64::MAX),
        headers: vec![("x-death-queue".into(), QUEUE.into())],
        group_id: Some(String::new()),
        dedup_id: Some(format!("forged-{round}")),
        durable: round.is_multiple_of(2),
        origin: Some(format!("{QUEUE}/{round}")),
    }
}

/// Every request kind, forged for `round`, with its payload and whether the broker owes
/// an answer at once (a subscription answers when it has messages; acks=none never).
fn forged(round: u64) -> Vec<(Request, Vec<u8>, bool)> {
    let unknown = format!("no-such-{round}");
    let group = format!("forged-g-{round}");
    let handles = forged_handles(round);
    let junk = vec![0xA5u8; 61];
    let binding = BindingSpec {
        exchange: unknown.clone(),
        queue: Some(PLAYGROUND.into()),
        topic: Some(TOPIC.into()),
        routing_key: "#".into(),
        headers: vec![(String::new(), String::new())],
        match_all: true,
    };
    // Matches nothing the forgers could have made (they make no valid binding).
    let acl_filter = AclFilter {
        resource_type: Some(AclResourceType::Exchange),
        resource_name: Some(unknown.clone()),
        pattern: AclPatternFilter::Match,
        principal: Some(format!("User:{unknown}")),
        host: None,
        operation: None,
        permission: None,
    };
    let answered = |r: Request| (r, Vec::new(), true);
    vec![
        answered(Request::Metadata {
            topics: Some(vec![unknown.clone(), TOPIC.into()]),
        }),
        answered(Request::CreateTopic(TopicSpec {
            name: unknown.clone(),
            partitions: i32::MAX,
            retention_ms: Some(i64::MIN),
            retention_bytes: Some(u64::MAX),
            segment_bytes: Some(u64::MAX),
        })),
        answered(Request::DeleteTopic {
            name: unknown.clone(),
        }),
        answered(Request::DescribeTopic {
            name: unknown.clone(),
        }),
        (
            Request::Produce {
                topic: TOPIC.into(),
                partition: (round % 2) as i32,
                acks: Acks::Durable,
            },
            junk.clone(),
            true,
        ),
        answered(Request::Fetch {
            topic: TOPIC.into(),
            partition: i32::MAX,
            offset: i64::MAX,
            max_bytes: u32::MAX,
            max_wait_ms: u32::MAX,
            min_bytes: u32::MAX,
            isolation: Default::default(),
        }),
        answered(Request::ListOffsets {
            topic: TOPIC.into(),
            partition: (round % 2) as i32,
            spec: OffsetSpec::Timestamp(i64::MIN + round as i64),
        }),
        answered(Request::DeleteRecords {
            topic: unknown.clone(),
            partition: i32::MIN,
            offset: i64::MAX,
        }),
        answered(Request::PartitionStats {
            topic: TOPIC.into(),
            partition: -1,
        }),
        answered(Request::JoinGroup {
            group: group.clone(),
            member_id: format!("forged-member-{round}"),
            client_id: String::new(),
            topics: vec![unknown.clone()],
            session_timeout_ms: u32::MAX,
            rebalance_timeout_ms: u32::MAX,
        }),
        answered(Request::Heartbeat {
            group: group.clone(),
            member_id: "forged".into(),
            generation: i32::MAX,
        }),
        answered(Request::LeaveGroup {
            group: group.clone(),
            member_id: "forged".into(),
        }),
        answered(Request::CommitOffsets {
            group: group.clone(),
            member_id: "forged".into(),
            generation: i32::MIN,
            offsets: vec![CommitEntry {
                topic: TOPIC.into(),
                partition: i32::MAX,
                offset: i64::MAX,
            }],
        }),
        answered(Request::FetchOffsets {
            group: group.clone(),
            topic: String::new(),
        }),
        answered(Request::DescribeGroup {
            group: group.clone(),
        }),
        answered(Request::CreatePartitions {
            topic: unknown.clone(),
            count: i32::MAX,
        }),
        answered(Request::DeleteGroup { group }),
        answered(Request::ListGroups),
        answered(Request::InitProducerId {
            producer_id: i64::MAX,
            epoch: i16::MAX,
        }),
        answered(Request::DeclareQueue(QueueSpec {
            name: QUEUE.into(),
            max_priority: u8::MAX,
            ttl_ms: Some(u64::MAX),
            visibility_timeout_ms: Some(u64::MAX),
            max_deliveries: Some(0),
            dead_letter: Some(unknown.clone()),
            fifo: true,
            max_length: Some(u64::MAX),
            max_bytes: Some(0),
            overflow: QueueOverflow::RejectPublish,
        })),
        answered(Request::DeleteQueue {
            name: unknown.clone(),
        }),
        answered(Request::ListQueues),
        answered(Request::QueueStats {
            name: unknown.clone(),
        }),
        answered(Request::PurgeQueue {
            name: unknown.clone(),
        }),
        (
            Request::Publish {
                queue: PLAYGROUND.into(),
                spec: wild_publish(round),
            },
            junk.clone(),
            true,
        ),
        answered(Request::DeclareExchange {
            name: String::new(),
            kind: ExchangeType::Headers,
        }),
        answered(Request::DeleteExchange {
            name: unknown.clone(),
        }),
        answered(Request::ListExchanges),
        answered(Request::Bind(binding.clone())),
        answered(Request::Unbind(binding)),
        (
            Request::PublishToExchange {
                exchange: String::new(),
                routing_key: PLAYGROUND.into(),
                spec: wild_publish(round),
            },
            junk.clone(),
            true,
        ),
        (
            Request::PublishBatch {
                queue: PLAYGROUND.into(),
                spec: PublishSpec::default(),
                lens: vec![u32::MAX, u32::MAX, 5],
            },
            junk,
            true,
        ),
        answered(Request::Receive {
            queue: PLAYGROUND.into(),
            max: u32::MAX,
            wait_ms: 0,
            auto_ack: round.is_multiple_of(2),
        }),
        answered(Request::Ack {
            queue: QUEUE.into(),
            handles: handles.clone(),
        }),
        (
            Request::Subscribe {
                queue: PLAYGROUND.into(),
                prefetch: u32::MAX,
                auto_ack: false,
            },
            Vec::new(),
            false,
        ),
        answered(Request::Nack {
            queue: QUEUE.into(),
            handles,
            requeue: round % 2 == 1,
        }),
        answered(Request::ShardStats { shard: u32::MAX }),
        // Logins that cannot succeed: a made-up user, junk, a final step out of order.
        answered(Request::ScramFirst {
            mechanism: ScramMechanism::ScramSha512,
            client_first: format!("n,,n=forged-{round},r=abc").into_bytes(),
        }),
        answered(Request::ScramFinal {
            client_final: vec![0xff; 300],
        }),
        answered(Request::AlterUser(UserChange::Upsert {
            name: String::new(),
            mechanism: ScramMechanism::ScramSha256,
            iterations: u32::MAX,
            salt: Vec::new(),
            salted_password: vec![0; 7],
        })),
        answered(Request::ListUsers),
        answered(Request::CreateAcls {
            bindings: vec![AclBinding {
                resource_type: AclResourceType::Cluster,
                resource_name: unknown.clone(),
                pattern: AclPatternType::Prefixed,
                principal: "nobody".into(),
                host: "not-an-address".into(),
                operation: AclOperation::All,
                permission: AclPermission::Deny,
            }],
        }),
        answered(Request::DeleteAcls {
            filters: vec![acl_filter.clone()],
        }),
        answered(Request::DescribeAcls { filter: acl_filter }),
    ]
}

/// A frame with a made-up envelope id: repeated, zero or the largest.
fn frame_with_id(id: u64, request: Request, payload: &[u8]) -> Vec<u8> {
    let env = RequestEnvelope { id, request };
    let mut bytes = frame::encode_request(&env, payload.len()).expect("encode");
    bytes.extend_from_slice(payload);
    bytes
}

/// One forging connection: sends every kind, every round, then a marker, and reads
/// answers until the marker's comes back. An error if the broker stops answering.
fn forge(addr: &str, seed: u64) -> Result<u64, String> {
    let mut conn = Connection::connect(addr).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + FORGING_DEADLINE;
    let mut sent = 0u64;
    let marker = u64::MAX - 7 - seed;
    for round in 0..ROUNDS {
        let requests = forged(round + seed * ROUNDS);
        let mut covered = [false; KINDS];
        for (i, (request, payload, _)) in requests.into_iter().enumerate() {
            covered[request.api_index()] = true;
            let id = [0, u64::MAX, 7, i as u64][i % 4];
            conn.send_raw(&frame_with_id(id, request, &payload))
                .map_err(|e| e.to_string())?;
            sent += 1;
        }
        let missing: Vec<usize> = (0..KINDS).filter(|k| !covered[*k]).collect();
        assert!(missing.is_empty(), "kinds never forged: {missing:?}");
    }
    conn.send_raw(&frame_with_id(marker, Request::ListQueues, &[]))
        .map_err(|e| e.to_string())?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !conn.wait_readable(left).map_err(|e| e.to_string())? {
            return Err(format!("no answer to the marker from {addr}"));
        }
        let (id, response, _) = conn.recv().map_err(|e| e.to_string())?;
        if id == marker && matches!(response, Response::Queues { .. }) {
            return Ok(sent);
        }
    }
}

/// Background load the forgers must not disturb.
struct Load {
    stop: Arc<AtomicBool>,
    produced: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Result<(), String>>>,
}

fn batch(tag: u64) -> Vec<u8> {
    let record = OutRecord {
        key: None,
        value: format!("load-{tag}").into_bytes().into(),
        timestamp_ms: 1_700_000_000_000,
    };
    encode_batch(&[record]).expect("batch").to_vec()
}

/// Produces to every partition and fetches each record back, until stopped.
fn produce_and_fetch(
    addr: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Result<(), String> {
    let mut conn = Connection::connect(&addr).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let partition = (n % PARTITIONS as u64) as i32;
        let produce = Request::Produce {
            topic: TOPIC.into(),
            partition,
            acks: Acks::Leader,
        };
        let base = match conn.call(produce, &[&batch(n)]) {
            Ok((Response::Produced { base_offset, .. }, _)) => base_offset,
            other => return Err(format!("produce to partition {partition}: {other:?}")),
        };
        let fetch = Request::Fetch {
            topic: TOPIC.into(),
            partition,
            offset: base,
            max_bytes: 1 << 20,
            max_wait_ms: 0,
            min_bytes: 1,
            isolation: Default::default(),
        };
        match conn.call(fetch, &[]) {
            Ok((Response::Fetched { .. }, batches)) if !batches.is_empty() => {}
            other => return Err(format!("fetch from partition {partition}: {other:?}")),
        }
        n += 1;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Publishes to the subscriber's queue until stopped.
fn publish(addr: String, stop: Arc<AtomicBool>) -> Result<(), String> {
    let mut conn = Connection::connect(&addr).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let request = Request::Publish {
            queue: QUEUE.into(),
            spec: PublishSpec::default(),
        };
        match conn.call(request, &[format!("m{n}").as_bytes()]) {
            Ok((Response::Published { .. }, _)) => {}
            other => return Err(format!("publish: {other:?}")),
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Receives and acks on a subscription at `address` until stopped. Lease handles are
/// small sequential numbers, so a forged ack or nack may settle one of this
/// subscriber's leases first; its own ack then answers UNKNOWN_HANDLE, which is what
/// the broker says of a lease that ended, and the subscriber goes on.
fn subscribe(address: String, stop: Arc<AtomicBool>, got: Arc<AtomicU64>) -> Result<(), String> {
    use peregrine::client::ClientError;
    use peregrine::native::messages::ErrorCode;
    let mut sub = Subscription::open_at(&address, QUEUE, 8, false).map_err(|e| e.to_string())?;
    while !stop.load(Ordering::Relaxed) {
        let next = match sub.next(Duration::from_millis(200)) {
            Err(ClientError::Broker {
                code: ErrorCode::UnknownHandle,
                ..
            }) => continue,
            other => other.map_err(|e| e.to_string())?,
        };
        let Some(r) = next else {
            continue;
        };
        sub.ack(&[r.delivery.handle]).map_err(|e| e.to_string())?;
        got.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

impl Load {
    fn start(b: &Broker, subscriber_address: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let (addr, s, p, r) = (
            b.addr.clone(),
            stop.clone(),
            produced.clone(),
            received.clone(),
        );
        let threads = vec![
            std::thread::spawn({
                let (addr, s) = (addr.clone(), s.clone());
                move || produce_and_fetch(addr, s, p)
            }),
            std::thread::spawn({
                let (addr, s) = (addr.clone(), s.clone());
                move || publish(addr, s)
            }),
            std::thread::spawn(move || subscribe(subscriber_address, s, r)),
        ];
        Load {
            stop,
            produced,
            received,
            threads,
        }
    }

    /// (records produced and fetched back, messages received) so far.
    fn progress(&self) -> (u64, u64) {
        (
            self.produced.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }

    /// Waits (up to `CALL_TIMEOUT`) until both counts pass `since`.
    fn moves_past(&self, since: (u64, u64)) -> bool {
        let deadline = Instant::now() + CALL_TIMEOUT;
        while Instant::now() < deadline {
            let now = self.progress();
            if now.0 > since.0 && now.1 > since.1 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load thread").expect("load kept working");
        }
    }
}

fn address(b: &Broker, port: u16) -> String {
    let host = b.addr.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
    format!("{host}:{port}")
}

fn declare(c: &mut Client, name: &str, visibility_timeout_ms: u64) {
    c.declare_queue(QueueSpec {
        name: name.into(),
        visibility_timeout_ms: Some(visibility_timeout_ms),
        ..QueueSpec::default()
    })
    .expect("declare");
}

#[test]
fn every_forged_request_kind_leaves_other_clients_served_and_the_broker_up() {
    let b = Broker::start();
    let pid = b.pid();
    b.create_topic(TOPIC, PARTITIONS);
    let mut c = b.client();
    declare(&mut c, QUEUE, 60_000);
    declare(&mut c, PLAYGROUND, 500);
    c.set_shard_aware(true);
    let (owner, owner_port) = c
        .queue_owner_port(QUEUE)
        .expect("owner")
        .expect("owner's port");
    // Where the old hang was: a subscriber on its queue's own shard.
    let load = Load::start(&b, address(&b, owner_port));
    assert!(load.moves_past((0, 0)), "the load never started");
    let before = load.progress();
    let mut forgers = Vec::new();
    let ports =
        std::iter::once(b.addr.clone()).chain(b.shard_ports.iter().map(|p| address(&b, *p)));
    for (seed, addr) in ports.enumerate() {
        forgers.push(std::thread::spawn(move || forge(&addr, seed as u64)));
    }
    let mut sent = 0;
    for f in forgers {
        sent += f
            .join()
            .expect("forger thread")
            .expect("every forged request answered");
    }
    assert_eq!(sent, 3 * ROUNDS * KINDS as u64);
    assert!(
        load.moves_past(before),
        "producer and subscriber (on shard {owner}) kept going while forged requests came"
    );
    load.stop();
    assert_eq!(b.pid(), pid, "the same broker process");
    // Everything still works, on every shard.
    for partition in 0..PARTITIONS {
        let (base, _) = c
            .produce(TOPIC, partition, Acks::Durable, &batch(u64::MAX))
            .expect("produce")
            .expect("acked");
        let fetched = c.fetch(TOPIC, partition, base, 1 << 20, 0).expect("fetch");
        assert!(!fetched.batches.is_empty());
    }
    c.publish(QUEUE, PublishSpec::default(), b"after")
        .expect("publish");
    let got = c.receive(QUEUE, 1_000, 2_000, true).expect("receive");
    assert!(!got.is_empty(), "the queue still delivers");
    // The forgers' subscriptions and leases are gone with their connections.
    let deadline = Instant::now() + CALL_TIMEOUT;
    loop {
        let stats = c.queue_stats(PLAYGROUND).expect("stats");
        if stats.in_flight == 0 && stats.consumers == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "leases left behind: {stats:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn queue_subscription_leases_return_when_the_subscriber_disconnects_on_either_shard() {
    let b = Broker::start();
    let mut c = b.client();
    // Far longer than the test: only the disconnect can bring the messages back.
    declare(&mut c, QUEUE, 600_000);
    for i in 0..6 {
        c.publish(QUEUE, PublishSpec::default(), format!("m{i}").as_bytes())
            .expect("publish");
    }
    c.set_shard_aware(true);
    let (owner, _) = c.queue_owner_port(QUEUE).expect("owner").expect("port");
    for (shard, port) in b.shard_ports.iter().enumerate() {
        let mut sub =
            Subscription::open_at(&address(&b, *port), QUEUE, 3, false).expect("subscribe");
        for _ in 0..3 {
            sub.next(CALL_TIMEOUT).expect("next").expect("a message");
        }
        let stats = c.queue_stats(QUEUE).expect("stats");
        assert_eq!((stats.in_flight, stats.consumers), (3, 1), "shard {shard}");
        drop(sub);
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let stats = c.queue_stats(QUEUE).expect("stats");
            if (stats.in_flight, stats.consumers) == (0, 0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "subscriber on shard {shard} (queue on shard {owner}) left {stats:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(c.queue_stats(QUEUE).expect("stats").ready, 6);
    }
}

#[test]
fn a_connection_holds_at_most_subscriptions_max_subscriptions() {
    use peregrine::native::connection::SUBSCRIPTIONS_MAX;
    use peregrine::native::messages::ErrorCode;
    let b = Broker::start();
    let mut c = b.client();
    declare(&mut c, QUEUE, 60_000);
    c.set_shard_aware(true);
    let (_, port) = c.queue_owner_port(QUEUE).expect("owner").expect("port");
    let mut conn = Connection::connect(address(&b, port)).expect("connect");
    let subscribe = || Request::Subscribe {
        queue: QUEUE.into(),
        prefetch: 1,
        auto_ack: false,
    };
    for _ in 0..SUBSCRIPTIONS_MAX {
        conn.send(subscribe(), &[]).expect("subscribe");
    }
    let refused = conn.send(subscribe(), &[]).expect("subscribe");
    assert!(conn.wait_readable(CALL_TIMEOUT).expect("poll"), "no answer");
    let (id, answer, _) = conn.recv().expect("answer");
    assert_eq!(id, refused, "only the one past the bound is answered");
    assert!(
        matches!(answer, Response::Error { code: ErrorCode::InvalidRequest, ref message }
            if message.contains(&SUBSCRIPTIONS_MAX.to_string())),
        "{answer:?}"
    );
    let stats = c.queue_stats(QUEUE).expect("stats");
    assert_eq!(stats.consumers, SUBSCRIPTIONS_MAX as u64);
    // Still served: a message goes to one of them.
    c.publish(QUEUE, PublishSpec::default(), b"one")
        .expect("publish");
    assert!(
        conn.wait_readable(CALL_TIMEOUT).expect("poll"),
        "no delivery"
    );
    drop(conn);
    let deadline = Instant::now() + CALL_TIMEOUT;
    loop {
        let stats = c.queue_stats(QUEUE).expect("stats");
        if (stats.consumers, stats.in_flight, stats.ready) == (0, 0, 1) {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {stats:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
