//! Hostile bytes never take the broker down: for a bounded time, several connections
//! send random bytes, length-prefixed random frames and mutated valid frames to every
//! listener (the shared native and Kafka ports and each shard's own ones). Afterwards
//! the broker is the same process, its peak memory stayed bounded, every listener still
//! answers, and a real Kafka client and the native client produce and consume.
//!
//! The frames come from a seeded PRNG; the seed is printed, and
//! `PEREGRINE_HAMMER_SEED=<n>` replays it (the threads' interleaving still varies).

mod common;
use bytes::{Bytes, BytesMut};
use common::kafka_raw::{self, request_frame};
use common::Broker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{encode_request_header_into_buffer, StrBytes};
use peregrine::client::records::{decode_batches, encode_batch, OutRecord};
use peregrine::client::Connection;
use peregrine::native::frame;
use peregrine::native::messages::{
    Acks, BindingSpec, CommitEntry, ExchangeType, OffsetSpec, PublishSpec, QueueSpec, Request,
    RequestEnvelope, Response, TopicSpec,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the hammer runs.
const HAMMER_TIME: Duration = Duration::from_secs(16);
/// Connections open at once (one per thread, opened and closed over and over).
const HAMMER_THREADS: usize = 5;
/// Frames sent on one connection before it is closed, at most.
const FRAMES_PER_CONNECTION_MAX: u64 = 8;
/// The broker's frame limit: small, so that what one connection can make it hold is small.
const MAX_FRAME_BYTES: u32 = 1 << 20;
/// Random byte strings are up to this long (one in 16 up to `RANDOM_LONG_MAX`).
const RANDOM_LEN_MAX: usize = 4096;
const RANDOM_LONG_MAX: usize = 256 * 1024;
/// Every hammer socket operation gives up after this.
const IO_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a hammer connection waits for answers before it closes, at most.
const LINGER_MAX_MS: u64 = 20;
/// Bound on the broker's peak resident set over the whole test (VmHWM), besides what the
/// partitions the hammer creates cost (below). Measured (debug build, 2 shards,
/// `--cache-mb 64`): about 51 MiB after start-up, 77 to 166 MiB after the hammer when it
/// created no wide topic. What the hammer may make the broker hold on top of start-up:
/// per open connection a read buffer, at most `FRAMES_PER_CONNECTION_MAX` + 3 frames of
/// at most `MAX_FRAME_BYTES` (1 MiB) and the answer budget (8 MiB), `HAMMER_THREADS`
/// connections at a time, and the few small batches produced. So 256 MiB; it catches a
/// count from the wire trusted for an allocation, or hostile frames kept by the hundred.
const PEAK_RSS_MAX_BYTES: u64 = 256 << 20;
/// What each partition the hammer creates may add. A mutated CreateTopics or
/// CreatePartitions is a legitimate request for up to 10,000 partitions, and what the
/// other hostile requests then do with a wide topic grows with it: with a topic of
/// 4,097 partitions made before the hammer, peaks of 271-347 MiB, and 439-553 MiB with
/// native frames only (not yet explained: metadata, produce, consume, create and
/// delete of such a topic each cost 3-12 MiB in all). The number of partitions a client
/// may create is bounded by `--max-partitions` (100,000 by default), which is too many
/// for a fixed RSS bound here, so the bound grows with the most that existed during the
/// hammer.
const PEAK_RSS_PER_PARTITION_BYTES: u64 = 128 << 10;
/// The partitions `start_broker` makes (two topics of two).
const PARTITIONS_AT_START: u64 = 4;
/// Post-hammer checks (each listener, each client) finish within this or the broker hung.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Topic and queue the hammer's valid frames name; the checks afterwards use others,
/// which no hammer frame names, so that a mutated delete cannot remove them.
const TOPIC: &str = "hammer";
const QUEUE: &str = "hammer-q";
const GROUP: &str = "hammer-g";
const SURVIVOR_TOPIC: &str = "survivor";
const SURVIVOR_QUEUE: &str = "survivor-q";
/// Messages produced and consumed by each client after the hammer.
const CHECK_MESSAGES: usize = 200;

/// xorshift64*: small, seedable, good enough to pick bytes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn seed() -> u64 {
    if let Ok(s) = std::env::var("PEREGRINE_HAMMER_SEED") {
        let parsed = match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        return parsed.unwrap_or_else(|e| panic!("PEREGRINE_HAMMER_SEED={s}: {e}"));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| d.as_nanos() as u64) ^ u64::from(std::process::id())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Native,
    Kafka,
}

#[derive(Clone, Debug)]
struct Listener {
    name: String,
    addr: SocketAddr,
    protocol: Protocol,
}

/// What the hammer sent, by kind.
#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    connect_failures: AtomicU64,
    random: AtomicU64,
    length_prefixed: AtomicU64,
    mutated_native: AtomicU64,
    mutated_kafka: AtomicU64,
    /// Unmutated corpus frames sent ahead of hostile ones, so that the hostile ones also
    /// meet connections that are some way into a conversation (a joined group, a
    /// subscription).
    valid: AtomicU64,
    bytes_sent: AtomicU64,
    closed_by_broker: AtomicU64,
}

impl Counts {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Valid encodings the mutations start from, and the Kafka APIs the broker serves.
struct Corpus {
    native: Vec<Vec<u8>>,
    kafka: Vec<Vec<u8>>,
    /// (api key, version) of every served version.
    kafka_versions: Vec<(i16, i16)>,
}

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn topic_name() -> TopicName {
    TopicName(s(TOPIC))
}

fn group_id() -> GroupId {
    GroupId(s(GROUP))
}

/// Data-path requests with their fields filled in, so that mutations reach deep.
fn kafka_data_request(key: ApiKey) -> Option<RequestKind> {
    Some(match key {
        ApiKey::Produce => {
            let mut p = produce_request::PartitionProduceData::default();
            p.records = Some(Bytes::from(record_batch()));
            let mut t = produce_request::TopicProduceData::default();
            t.name = topic_name();
            t.partition_data = vec![p];
            let mut r = ProduceRequest::default();
            r.acks = -1;
            r.timeout_ms = 1000;
            r.topic_data = vec![t];
            r.into()
        }
        ApiKey::Fetch => {
            let mut p = fetch_request::FetchPartition::default();
            p.partition_max_bytes = 1 << 16;
            let mut t = fetch_request::FetchTopic::default();
            t.topic = topic_name();
            t.partitions = vec![p];
            let mut r = FetchRequest::default();
            r.max_wait_ms = 10;
            r.min_bytes = 1;
            r.max_bytes = 1 << 16;
            r.topics = vec![t];
            r.into()
        }
        ApiKey::ListOffsets => {
            let mut p = list_offsets_request::ListOffsetsPartition::default();
            p.timestamp = -1;
            let mut t = list_offsets_request::ListOffsetsTopic::default();
            t.name = topic_name();
            t.partitions = vec![p];
            let mut r = ListOffsetsRequest::default();
            r.topics = vec![t];
            r.into()
        }
        ApiKey::Metadata => {
            let mut t = metadata_request::MetadataRequestTopic::default();
            t.name = Some(topic_name());
            let mut r = MetadataRequest::default();
            r.topics = Some(vec![t]);
            r.into()
        }
        _ => return None,
    })
}

/// Group requests with their fields filled in.
fn kafka_group_request(key: ApiKey, version: i16) -> Option<RequestKind> {
    Some(match key {
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorRequest::default();
            if version < 4 {
                r.key = s(GROUP);
            } else {
                r.coordinator_keys = vec![s(GROUP)];
            }
            r.into()
        }
        ApiKey::OffsetCommit => {
            let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
            p.committed_offset = 1;
            let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
            t.name = topic_name();
            t.partitions = vec![p];
            let mut r = OffsetCommitRequest::default();
            r.group_id = group_id();
            r.topics = vec![t];
            r.into()
        }
        ApiKey::OffsetFetch => {
            let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
            t.name = topic_name();
            t.partition_indexes = vec![0, 1];
            let mut r = OffsetFetchRequest::default();
            r.group_id = group_id();
            r.topics = Some(vec![t]);
            r.into()
        }
        ApiKey::JoinGroup => {
            let mut p = join_group_request::JoinGroupRequestProtocol::default();
            p.name = s("range");
            p.metadata = Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 6, b'h', b'a', b'm']);
            let mut r = JoinGroupRequest::default();
            r.group_id = group_id();
            r.session_timeout_ms = 6000;
            r.rebalance_timeout_ms = 100;
            r.protocol_type = s("consumer");
            r.protocols = vec![p];
            r.into()
        }
        ApiKey::Heartbeat => {
            let mut r = HeartbeatRequest::default();
            r.group_id = group_id();
            r.member_id = s("member-1");
            r.into()
        }
        ApiKey::LeaveGroup => {
            let mut r = LeaveGroupRequest::default();
            r.group_id = group_id();
            if version < 3 {
                r.member_id = s("member-1");
            } else {
                let mut m = leave_group_request::MemberIdentity::default();
                m.member_id = s("member-1");
                r.members = vec![m];
            }
            r.into()
        }
        ApiKey::SyncGroup => {
            let mut a = sync_group_request::SyncGroupRequestAssignment::default();
            a.member_id = s("member-1");
            a.assignment = Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 6]);
            let mut r = SyncGroupRequest::default();
            r.group_id = group_id();
            r.member_id = s("member-1");
            r.assignments = vec![a];
            r.into()
        }
        ApiKey::DescribeGroups => {
            let mut r = DescribeGroupsRequest::default();
            r.groups = vec![group_id()];
            r.into()
        }
        ApiKey::DeleteGroups => {
            let mut r = DeleteGroupsRequest::default();
            r.groups_names = vec![group_id()];
            r.into()
        }
        _ => return None,
    })
}

/// Admin requests with their fields filled in. They name only the hammer's own topic
/// (and `hammer-new`), never the ones the checks afterwards use.
fn kafka_admin_request(key: ApiKey, version: i16) -> Option<RequestKind> {
    Some(match key {
        ApiKey::CreateTopics => {
            let mut t = create_topics_request::CreatableTopic::default();
            t.name = TopicName(s("hammer-new"));
            t.num_partitions = 1;
            t.replication_factor = 1;
            let mut r = CreateTopicsRequest::default();
            r.topics = vec![t];
            r.timeout_ms = 1000;
            r.into()
        }
        ApiKey::DescribeConfigs => {
            let mut res = describe_configs_request::DescribeConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s(TOPIC);
            let mut r = DescribeConfigsRequest::default();
            r.resources = vec![res];
            r.into()
        }
        ApiKey::InitProducerId => {
            let mut r = InitProducerIdRequest::default();
            r.transaction_timeout_ms = 1000;
            r.into()
        }
        ApiKey::CreatePartitions => {
            let mut t = create_partitions_request::CreatePartitionsTopic::default();
            t.name = TopicName(s("hammer-new"));
            t.count = 2;
            let mut r = CreatePartitionsRequest::default();
            r.topics = vec![t];
            r.into()
        }
        ApiKey::DeleteRecords => {
            let mut p = delete_records_request::DeleteRecordsPartition::default();
            p.offset = 1;
            let mut t = delete_records_request::DeleteRecordsTopic::default();
            t.name = topic_name();
            t.partitions = vec![p];
            let mut r = DeleteRecordsRequest::default();
            r.topics = vec![t];
            r.into()
        }
        ApiKey::DeleteTopics => {
            let mut r = DeleteTopicsRequest::default();
            if version < 6 {
                r.topic_names = vec![TopicName(s("hammer-new"))];
            } else {
                let mut t = delete_topics_request::DeleteTopicState::default();
                t.name = Some(TopicName(s("hammer-new")));
                r.topics = vec![t];
            }
            r.into()
        }
        _ => return None,
    })
}

/// Transaction requests with their fields filled in, for the hammer's topic and group
/// under a transactional id of its own.
fn kafka_txn_request(key: ApiKey) -> Option<RequestKind> {
    let txn_id = || TransactionalId(s("hammer-txn"));
    Some(match key {
        ApiKey::AddPartitionsToTxn => {
            let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
            t.name = topic_name();
            t.partitions = vec![0];
            let mut r = AddPartitionsToTxnRequest::default();
            r.v3_and_below_transactional_id = txn_id();
            r.v3_and_below_topics = vec![t];
            r.into()
        }
        ApiKey::AddOffsetsToTxn => {
            let mut r = AddOffsetsToTxnRequest::default();
            r.transactional_id = txn_id();
            r.group_id = group_id();
            r.into()
        }
        ApiKey::TxnOffsetCommit => {
            let mut p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
            p.committed_offset = 1;
            let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
            t.name = topic_name();
            t.partitions = vec![p];
            let mut r = TxnOffsetCommitRequest::default();
            r.transactional_id = txn_id();
            r.group_id = group_id();
            r.topics = vec![t];
            r.into()
        }
        ApiKey::EndTxn => {
            let mut r = EndTxnRequest::default();
            r.transactional_id = txn_id();
            r.committed = true;
            r.into()
        }
        ApiKey::DescribeTransactions => {
            let mut r = DescribeTransactionsRequest::default();
            r.transactional_ids = vec![txn_id()];
            r.into()
        }
        ApiKey::ListTransactions => {
            let mut r = ListTransactionsRequest::default();
            r.state_filters = vec![s("Ongoing")];
            r.into()
        }
        ApiKey::DescribeProducers => {
            let mut t = describe_producers_request::TopicRequest::default();
            t.name = topic_name();
            t.partition_indexes = vec![0];
            let mut r = DescribeProducersRequest::default();
            r.topics = vec![t];
            r.into()
        }
        _ => return None,
    })
}

/// `i32 length | header | body` of one request; `None` if this version cannot carry it.
fn kafka_frame(
    key: ApiKey,
    version: i16,
    body: &RequestKind,
    correlation_id: i32,
) -> Option<Vec<u8>> {
    let mut encoded = BytesMut::new();
    body.encode(&mut encoded, version).ok()?;
    Some(request_frame(key, version, correlation_id, &encoded))
}

/// Requests whose defaults are already meaningful.
fn kafka_plain_request(key: ApiKey) -> Option<RequestKind> {
    Some(match key {
        ApiKey::ApiVersions => ApiVersionsRequest::default().into(),
        ApiKey::ListGroups => ListGroupsRequest::default().into(),
        _ => return None,
    })
}

/// One encoding per served API version (the filled-in request); the versions that
/// cannot carry it are listed in the second value.
fn kafka_corpus(versions: &[(i16, i16)]) -> (Vec<Vec<u8>>, Vec<(i16, i16)>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (i, &(key, version)) in versions.iter().enumerate() {
        let frame = ApiKey::try_from(key).ok().and_then(|api| {
            let body = kafka_data_request(api)
                .or_else(|| kafka_group_request(api, version))
                .or_else(|| kafka_admin_request(api, version))
                .or_else(|| kafka_txn_request(api))
                .or_else(|| kafka_plain_request(api))?;
            kafka_frame(api, version, &body, i as i32 + 1)
        });
        match frame {
            Some(f) => out.push(f),
            None => skipped.push((key, version)),
        }
    }
    (out, skipped)
}

/// Three keyed records in one v2 batch: the native and the Kafka protocols carry the same
/// batches.
fn record_batch() -> Vec<u8> {
    let records: Vec<OutRecord> = (0..3)
        .map(|i| OutRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Bytes::from(format!("hammer value {i}")),
            timestamp_ms: 1_700_000_000_000 + i,
        })
        .collect();
    encode_batch(&records).expect("encode batch").to_vec()
}

fn publish_spec() -> PublishSpec {
    PublishSpec {
        priority: 1,
        delay_ms: Some(5),
        ttl_ms: Some(60_000),
        headers: vec![("h".into(), "v".into())],
        group_id: Some("g".into()),
        dedup_id: Some("d".into()),
        durable: false,
        origin: None,
    }
}

/// Topic, group and offset requests of the native protocol, with their payloads.
fn native_stream_requests() -> Vec<(Request, Vec<u8>)> {
    let topic = || TOPIC.to_string();
    let group = || GROUP.to_string();
    vec![
        (
            Request::Metadata {
                topics: Some(vec![topic()]),
            },
            vec![],
        ),
        (Request::Metadata { topics: None }, vec![]),
        (
            Request::CreateTopic(TopicSpec {
                name: "hammer-new".into(),
                partitions: 1,
                retention_ms: Some(60_000),
                retention_bytes: Some(1 << 20),
                segment_bytes: Some(1 << 20),
            }),
            vec![],
        ),
        (
            Request::DeleteTopic {
                name: "hammer-new".into(),
            },
            vec![],
        ),
        (Request::DescribeTopic { name: topic() }, vec![]),
        (
            Request::Produce {
                topic: topic(),
                partition: 0,
                acks: Acks::Leader,
            },
            record_batch(),
        ),
        (
            Request::Fetch {
                topic: topic(),
                partition: 1,
                offset: 0,
                max_bytes: 1 << 16,
                max_wait_ms: 10,
                min_bytes: 1,
                isolation: Default::default(),
            },
            vec![],
        ),
        (
            Request::ListOffsets {
                topic: topic(),
                partition: 0,
                spec: OffsetSpec::Timestamp(1),
            },
            vec![],
        ),
        (
            Request::DeleteRecords {
                topic: topic(),
                partition: 1,
                offset: 1,
            },
            vec![],
        ),
        (
            Request::PartitionStats {
                topic: topic(),
                partition: 0,
            },
            vec![],
        ),
        (
            Request::JoinGroup {
                group: group(),
                member_id: String::new(),
                client_id: "hammer".into(),
                topics: vec![topic()],
                session_timeout_ms: 6000,
                rebalance_timeout_ms: 100,
            },
            vec![],
        ),
        (
            Request::Heartbeat {
                group: group(),
                member_id: "m".into(),
                generation: 1,
            },
            vec![],
        ),
        (
            Request::LeaveGroup {
                group: group(),
                member_id: "m".into(),
            },
            vec![],
        ),
        (
            Request::CommitOffsets {
                group: group(),
                member_id: String::new(),
                generation: -1,
                offsets: vec![CommitEntry {
                    topic: topic(),
                    partition: 0,
                    offset: 1,
                }],
            },
            vec![],
        ),
        (
            Request::FetchOffsets {
                group: group(),
                topic: topic(),
            },
            vec![],
        ),
        (Request::DescribeGroup { group: group() }, vec![]),
        (
            Request::CreatePartitions {
                topic: "hammer-new".into(),
                count: 2,
            },
            vec![],
        ),
        (Request::DeleteGroup { group: group() }, vec![]),
        (Request::ListGroups, vec![]),
        (
            Request::InitProducerId {
                producer_id: -1,
                epoch: -1,
            },
            vec![],
        ),
        (Request::ShardStats { shard: 0 }, vec![]),
    ]
}

/// Queue and exchange requests of the native protocol, with their payloads.
fn native_queue_requests() -> Vec<(Request, Vec<u8>)> {
    let queue = || QUEUE.to_string();
    let binding = BindingSpec {
        exchange: "hammer-x".into(),
        queue: Some(queue()),
        topic: None,
        routing_key: "r.*".into(),
        headers: vec![("a".into(), "b".into())],
        match_all: true,
    };
    vec![
        (
            Request::DeclareQueue(QueueSpec {
                name: queue(),
                max_priority: 5,
                ttl_ms: Some(60_000),
                visibility_timeout_ms: Some(1000),
                max_deliveries: Some(3),
                dead_letter: Some("hammer-dlq".into()),
                fifo: false,
                max_length: Some(10_000),
                max_bytes: None,
                overflow: Default::default(),
            }),
            vec![],
        ),
        (
            Request::DeleteQueue {
                name: "hammer-gone".into(),
            },
            vec![],
        ),
        (Request::ListQueues, vec![]),
        (Request::QueueStats { name: queue() }, vec![]),
        (Request::PurgeQueue { name: queue() }, vec![]),
        (
            Request::Publish {
                queue: queue(),
                spec: publish_spec(),
            },
            b"body".to_vec(),
        ),
        (
            Request::DeclareExchange {
                name: "hammer-x".into(),
                kind: ExchangeType::Topic,
            },
            vec![],
        ),
        (
            Request::DeleteExchange {
                name: "hammer-gone".into(),
            },
            vec![],
        ),
        (Request::ListExchanges, vec![]),
        (Request::Bind(binding.clone()), vec![]),
        (Request::Unbind(binding), vec![]),
        (
            Request::PublishToExchange {
                exchange: "hammer-x".into(),
                routing_key: "r.k".into(),
                spec: publish_spec(),
            },
            b"body".to_vec(),
        ),
        (
            Request::PublishBatch {
                queue: queue(),
                spec: PublishSpec::default(),
                lens: vec![2, 3],
            },
            b"ab123".to_vec(),
        ),
        (
            Request::Receive {
                queue: queue(),
                max: 4,
                wait_ms: 10,
                auto_ack: false,
            },
            vec![],
        ),
        (
            Request::Ack {
                queue: queue(),
                handles: vec![1, 2],
            },
            vec![],
        ),
        (
            Request::Subscribe {
                queue: queue(),
                prefetch: 2,
                auto_ack: false,
            },
            vec![],
        ),
        (
            Request::Nack {
                queue: queue(),
                handles: vec![3],
                requeue: true,
            },
            vec![],
        ),
    ]
}

/// Whole native frames (head, envelope, payload), one per request kind.
fn native_corpus() -> Vec<Vec<u8>> {
    native_stream_requests()
        .into_iter()
        .chain(native_queue_requests())
        .enumerate()
        .map(|(i, (request, payload))| {
            let env = RequestEnvelope {
                id: i as u64 + 1,
                request,
            };
            let mut bytes = frame::encode_request(&env, payload.len()).expect("encode request");
            bytes.extend_from_slice(&payload);
            bytes
        })
        .collect()
}

/// Values that make a decoder believe in something huge or negative: i32/i16/i64
/// extremes big endian, and unsigned varints of 0xffffffff and 0x7fffffff.
const HUGE: &[&[u8]] = &[
    &[0x7f, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff],
    &[0x80, 0x00, 0x00, 0x00],
    &[0x7f, 0xff],
    &[0xff, 0xff],
    &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0xff, 0x07],
    &[0x00, 0x0f, 0xff, 0xff],
];

/// Largest slice a mutation duplicates.
const DUPLICATE_MAX: usize = 64;

/// One mutation of `buf` past its 4-byte length prefix.
fn mutate_once(rng: &mut Rng, buf: &mut Vec<u8>) {
    if buf.len() <= 4 {
        let len = 1 + rng.index(8);
        buf.extend(rng.bytes(len));
        return;
    }
    let at = 4 + rng.index(buf.len() - 4);
    match rng.below(8) {
        0 | 1 => buf[at] ^= 1 << rng.below(8),
        2 => buf[at] = rng.next() as u8,
        3 => {
            let huge = HUGE[rng.index(HUGE.len())];
            let end = (at + huge.len()).min(buf.len());
            buf[at..end].copy_from_slice(&huge[..end - at]);
        }
        4 => {
            let huge = HUGE[rng.index(HUGE.len())];
            buf.splice(at..at, huge.iter().copied());
        }
        5 => buf.truncate(at),
        6 => {
            let end = (at + 1 + rng.index(DUPLICATE_MAX)).min(buf.len());
            buf.drain(at..end);
        }
        _ => {
            let end = (at + 1 + rng.index(DUPLICATE_MAX)).min(buf.len());
            let copy = buf[at..end].to_vec();
            buf.splice(at..at, copy);
        }
    }
}

/// The 4-byte length prefix after mutating: mostly the true length (so that the
/// mutated body reaches the decoder whole), sometimes left as it was, or any value up
/// to the frame limit, or just past it.
fn fix_length(rng: &mut Rng, buf: &mut [u8]) {
    if buf.len() < 4 {
        return;
    }
    let len = match rng.below(8) {
        0 => return,
        1 => rng.below(u64::from(MAX_FRAME_BYTES) + 1) as u32,
        2 => MAX_FRAME_BYTES + 1 + rng.below(16) as u32,
        _ => (buf.len() - 4) as u32,
    };
    buf[..4].copy_from_slice(&len.to_be_bytes());
}

fn mutated(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut buf = corpus[rng.index(corpus.len())].clone();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut buf);
    }
    fix_length(rng, &mut buf);
    buf
}

fn random_len(rng: &mut Rng) -> usize {
    if rng.below(16) == 0 {
        rng.index(RANDOM_LONG_MAX)
    } else {
        rng.index(RANDOM_LEN_MAX)
    }
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = random_len(rng);
    rng.bytes(len)
}

/// A length prefix that matches a random body; for the native protocol with an
/// envelope length inside it, for Kafka sometimes behind a valid request header.
fn length_prefixed(rng: &mut Rng, protocol: Protocol, corpus: &Corpus) -> Vec<u8> {
    let mut body = random_bytes(rng);
    match protocol {
        Protocol::Native if !body.is_empty() => {
            let envelope_len = 1 + rng.index(body.len().min(4096));
            let mut head = (envelope_len as u32).to_be_bytes().to_vec();
            head.append(&mut body);
            body = head;
        }
        Protocol::Kafka if rng.below(2) == 0 => {
            let (key, version) = corpus.kafka_versions[rng.index(corpus.kafka_versions.len())];
            let mut head = BytesMut::new();
            let header = RequestHeader::default()
                .with_request_api_key(key)
                .with_request_api_version(version)
                .with_correlation_id(rng.next() as i32);
            if encode_request_header_into_buffer(&mut head, &header).is_ok() {
                let mut head = head.to_vec();
                head.append(&mut body);
                body = head;
            }
        }
        _ => {}
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.append(&mut body);
    out
}

/// Picks the next frame for `protocol` and counts it.
fn next_frame(rng: &mut Rng, protocol: Protocol, corpus: &Corpus, counts: &Counts) -> Vec<u8> {
    match (rng.below(4), protocol) {
        (0, _) => {
            Counts::add(&counts.random, 1);
            random_bytes(rng)
        }
        (1, _) => {
            Counts::add(&counts.length_prefixed, 1);
            length_prefixed(rng, protocol, corpus)
        }
        (_, Protocol::Native) => {
            Counts::add(&counts.mutated_native, 1);
            mutated(rng, &corpus.native)
        }
        (_, Protocol::Kafka) => {
            Counts::add(&counts.mutated_kafka, 1);
            mutated(rng, &corpus.kafka)
        }
    }
}

/// Reads whatever answers are there (without waiting) and throws them away; false
/// once the broker closed the connection.
fn drain(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64 * 1024];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .is_err()
        {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) if Instant::now() < deadline => continue,
            Ok(_) => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return true
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// One connection: a few frames, answers drained, then closed (sometimes with a
/// reset instead of a FIN).
fn one_connection(rng: &mut Rng, target: &Listener, corpus: &Corpus, counts: &Counts) {
    let Ok(mut stream) = TcpStream::connect_timeout(&target.addr, IO_TIMEOUT) else {
        Counts::add(&counts.connect_failures, 1);
        return;
    };
    Counts::add(&counts.connections, 1);
    if stream.set_write_timeout(Some(IO_TIMEOUT)).is_err() {
        return;
    }
    let valid_first = if rng.below(4) == 0 {
        1 + rng.below(3)
    } else {
        0
    };
    for i in 0..valid_first + 1 + rng.below(FRAMES_PER_CONNECTION_MAX) {
        let frame = if i < valid_first {
            Counts::add(&counts.valid, 1);
            let frames = match target.protocol {
                Protocol::Native => &corpus.native,
                Protocol::Kafka => &corpus.kafka,
            };
            frames[rng.index(frames.len())].clone()
        } else {
            next_frame(rng, target.protocol, corpus, counts)
        };
        if stream.write_all(&frame).is_err() {
            Counts::add(&counts.closed_by_broker, 1);
            return;
        }
        Counts::add(&counts.bytes_sent, frame.len() as u64);
        if !drain(&mut stream, Duration::ZERO) {
            Counts::add(&counts.closed_by_broker, 1);
            return;
        }
    }
    if !drain(
        &mut stream,
        Duration::from_millis(rng.below(LINGER_MAX_MS + 1)),
    ) {
        Counts::add(&counts.closed_by_broker, 1);
    }
    if rng.below(4) == 0 {
        reset_on_close(&stream);
    }
}

/// SO_LINGER with a zero timeout: closing sends RST, not FIN.
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a linger struct of the right size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn hammer(seed: u64, listeners: &[Listener], corpus: &Corpus, counts: &Counts) {
    let deadline = Instant::now() + HAMMER_TIME;
    std::thread::scope(|scope| {
        for t in 0..HAMMER_THREADS as u64 {
            scope.spawn(move || {
                let mut rng = Rng::new(seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                while Instant::now() < deadline {
                    let target = &listeners[rng.index(listeners.len())];
                    one_connection(&mut rng, target, corpus, counts);
                }
            });
        }
    });
}

/// The last lines of the broker's log, for failure messages.
fn log_tail(b: &Broker) -> String {
    let log = b.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs `f` on a thread of its own and panics if it takes longer than `CHECK_TIMEOUT`
/// (the native client blocks without a timeout; a hung broker must fail the test, not
/// hang it).
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(CHECK_TIMEOUT) {
        Ok(v) => v,
        Err(e) => panic!("{what}: no answer within {CHECK_TIMEOUT:?} ({e}): the broker hung"),
    }
}

fn kafka_config(b: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &b.kafka_addr)
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "20000");
    c
}

/// Each shard's own Kafka address, as Kafka Metadata describes the shards as brokers.
fn kafka_shard_addrs(b: &Broker) -> Vec<SocketAddr> {
    let c: BaseConsumer = kafka_config(b).create().expect("create consumer");
    let md = c.fetch_metadata(None, CHECK_TIMEOUT).expect("metadata");
    md.brokers()
        .iter()
        .map(|n| {
            format!("{}:{}", n.host(), n.port())
                .parse()
                .expect("broker address")
        })
        .collect()
}

/// Every listener: shared native and Kafka ports, then each shard's own ones.
fn listeners(b: &Broker) -> Vec<Listener> {
    let listener = |name: String, addr: SocketAddr, protocol| Listener {
        name,
        addr,
        protocol,
    };
    let mut out = vec![
        listener(
            "native".into(),
            b.addr.parse().expect("native addr"),
            Protocol::Native,
        ),
        listener(
            "kafka".into(),
            b.kafka_addr.parse().expect("kafka addr"),
            Protocol::Kafka,
        ),
    ];
    for (i, port) in b.shard_ports.iter().enumerate() {
        let addr = SocketAddr::from(([127, 0, 0, 1], *port));
        out.push(listener(
            format!("native shard {i}"),
            addr,
            Protocol::Native,
        ));
    }
    for (i, addr) in kafka_shard_addrs(b).into_iter().enumerate() {
        out.push(listener(format!("kafka shard {i}"), addr, Protocol::Kafka));
    }
    out
}

/// ApiVersions v0 on one Kafka listener: every (api key, version) it serves.
fn kafka_served_versions(addr: SocketAddr) -> Result<Vec<(i16, i16)>, String> {
    Ok(kafka_raw::advertised(&addr.to_string())?
        .into_iter()
        .flat_map(|(key, min, max)| (min..=max).map(move |v| (key, v)))
        .collect())
}

/// A native Metadata call on one native listener.
fn native_answers(addr: SocketAddr) -> Result<(), String> {
    let mut conn = Connection::connect(addr).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(CHECK_TIMEOUT))
        .map_err(|e| e.to_string())?;
    match conn.call(Request::Metadata { topics: None }, &[]) {
        Ok((Response::Metadata { .. }, _)) => Ok(()),
        Ok((other, _)) => Err(format!("answered {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Every listener answers a well-formed request.
fn assert_every_listener_answers(b: &Broker, listeners: &[Listener]) {
    for l in listeners {
        let answered = match l.protocol {
            Protocol::Native => native_answers(l.addr),
            Protocol::Kafka => kafka_served_versions(l.addr).map(|_| ()),
        };
        if let Err(e) = answered {
            panic!(
                "{} listener {} after the hammer: {e}\nbroker log:\n{}",
                l.name,
                l.addr,
                log_tail(b)
            );
        }
    }
}

/// rdkafka produces keyed messages to `SURVIVOR_TOPIC` and a consumer group reads every
/// one of them back.
fn assert_kafka_client_works(b: &Broker) {
    let producer: BaseProducer = kafka_config(b)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("create producer");
    let sent: Vec<String> = (0..CHECK_MESSAGES).map(|i| format!("kafka-{i}")).collect();
    for (i, value) in sent.iter().enumerate() {
        let key = format!("key-{}", i % 8);
        let record = BaseRecord::to(SURVIVOR_TOPIC).key(&key).payload(value);
        producer
            .send(record)
            .map_err(|(e, _)| e)
            .expect("queue a message");
    }
    producer
        .flush(CHECK_TIMEOUT)
        .expect("every message acknowledged");
    let consumer: BaseConsumer = kafka_config(b)
        .set("group.id", "survivors")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("create consumer");
    consumer.subscribe(&[SURVIVOR_TOPIC]).expect("subscribe");
    let mut got = HashSet::new();
    let deadline = Instant::now() + CHECK_TIMEOUT;
    while got.len() < sent.len() && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            if value.starts_with("kafka-") {
                got.insert(value);
            }
        }
    }
    assert_eq!(
        got.len(),
        sent.len(),
        "rdkafka read back every message it produced"
    );
}

/// The native client produces a batch and fetches it back, and publishes to a queue
/// and receives from it.
fn assert_native_client_works(b: &Broker) {
    let addr = b.addr.clone();
    within("native produce and fetch", move || {
        let mut c = peregrine::client::Client::connect(&addr).expect("connect");
        let sent: Vec<String> = (0..CHECK_MESSAGES).map(|i| format!("native-{i}")).collect();
        let records: Vec<OutRecord> = sent
            .iter()
            .map(|v| OutRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Bytes::from(v.clone()),
                timestamp_ms: 1,
            })
            .collect();
        let batch = encode_batch(&records).expect("encode");
        let (base, _) = c
            .produce(SURVIVOR_TOPIC, 1, Acks::Durable, &batch)
            .expect("produce")
            .expect("acknowledged");
        let fetched = c.fetch(SURVIVOR_TOPIC, 1, base, 1 << 20, 0).expect("fetch");
        let back: Vec<String> = decode_batches(1, fetched.batches, base)
            .expect("decode")
            .into_iter()
            .filter_map(|r| r.value)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .collect();
        assert_eq!(back[..sent.len().min(back.len())], sent[..], "native fetch");
    });
    let addr = b.addr.clone();
    within("native queue publish and receive", move || {
        let mut c = peregrine::client::Client::connect(&addr).expect("connect");
        for i in 0..10 {
            c.publish(
                SURVIVOR_QUEUE,
                PublishSpec::default(),
                format!("q-{i}").as_bytes(),
            )
            .expect("publish");
        }
        let mut got = Vec::new();
        for _ in 0..10 {
            if got.len() >= 10 {
                break;
            }
            let batch = c.receive(SURVIVOR_QUEUE, 10, 1000, true).expect("receive");
            got.extend(batch.into_iter().map(|r| r.body));
        }
        assert_eq!(got.len(), 10, "every queued message received");
    });
}

fn print_counts(counts: &Counts, elapsed: Duration) {
    let get = Counts::get;
    println!(
        "hammer: {:?}, {} connections ({} refused, {} closed by the broker), {} bytes; \
         frames: {} random, {} length-prefixed random, {} mutated native, {} mutated kafka \
         ({} valid frames ahead of them)",
        elapsed,
        get(&counts.connections),
        get(&counts.connect_failures),
        get(&counts.closed_by_broker),
        get(&counts.bytes_sent),
        get(&counts.random),
        get(&counts.length_prefixed),
        get(&counts.mutated_native),
        get(&counts.mutated_kafka),
        get(&counts.valid),
    );
}

/// Counts the partitions that exist while the hammer runs (a wide topic it creates may be
/// deleted again before the end), keeping the most seen, until the returned guard drops.
fn watch_partitions(addr: String, most: Arc<AtomicU64>) -> impl Drop {
    struct Stop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let deadline = Instant::now() + HAMMER_TIME + CHECK_TIMEOUT;
    std::thread::spawn(move || {
        while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok(mut c) = peregrine::client::Client::connect(&addr) {
                if let Ok(topics) = c.metadata(None) {
                    let n: usize = topics.iter().map(|t| t.owners.len()).sum();
                    most.fetch_max(n as u64, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    Stop(stop)
}

fn start_broker() -> Broker {
    let max_frame = MAX_FRAME_BYTES.to_string();
    let b = Broker::start_with(&["--max-frame-bytes", &max_frame]);
    b.create_topic(TOPIC, 2);
    b.create_topic(SURVIVOR_TOPIC, 2);
    let mut c = b.client();
    for name in [QUEUE, SURVIVOR_QUEUE] {
        let spec = QueueSpec {
            name: name.into(),
            ..QueueSpec::default()
        };
        c.declare_queue(spec).expect("declare queue");
    }
    b
}

#[test]
fn hostile_bytes_on_every_listener_leave_the_broker_serving() {
    let seed = seed();
    println!("hammer seed {seed} (replay with PEREGRINE_HAMMER_SEED={seed})");
    let mut b = start_broker();
    let pid = b.pid().expect("broker pid");
    let listeners = listeners(&b);
    assert_eq!(
        listeners.len(),
        6,
        "two shared and four per-shard listeners: {listeners:?}"
    );
    let served = kafka_served_versions(listeners[1].addr).expect("ApiVersions");
    let (kafka, skipped) = kafka_corpus(&served);
    let corpus = Corpus {
        native: native_corpus(),
        kafka,
        kafka_versions: served,
    };
    println!(
        "corpus: {} native frames, {} kafka frames (versions that cannot carry the filled-in \
         request: {skipped:?})",
        corpus.native.len(),
        corpus.kafka.len()
    );
    let peak_before = b.peak_rss_bytes().expect("VmHWM");
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let most_partitions = Arc::new(AtomicU64::new(PARTITIONS_AT_START));
    let watcher = watch_partitions(b.addr.clone(), most_partitions.clone());
    hammer(seed, &listeners, &corpus, &counts);
    drop(watcher);
    print_counts(&counts, started.elapsed());
    assert!(
        b.is_running(),
        "the broker died; its log:\n{}",
        log_tail(&b)
    );
    assert_eq!(b.pid(), Some(pid), "the broker is the same process");
    let peak_after_hammer = b.peak_rss_bytes().expect("VmHWM");
    assert_every_listener_answers(&b, &listeners);
    let addr = b.addr.clone();
    let (topics, partitions, queues) = within("native metadata", move || {
        let mut c = peregrine::client::Client::connect(&addr).expect("connect");
        let topics = c.metadata(None).expect("metadata");
        for t in &topics {
            println!("topic {}: {} partitions", t.name, t.owners.len());
        }
        let partitions: usize = topics.iter().map(|t| t.owners.len()).sum();
        let topics = topics.len();
        let queues = c.list_queues().expect("queues");
        for q in &queues {
            let stats = c.queue_stats(&q.name).expect("queue stats");
            println!(
                "queue {}: {} ready, {} delayed, {} in flight",
                q.name, stats.ready, stats.delayed, stats.in_flight
            );
        }
        (topics, partitions as u64, queues.len())
    });
    println!(
        "after the hammer: {topics} topics ({partitions} partitions), {queues} queues; \
         RSS now {} MiB",
        b.rss_bytes().unwrap_or(0) >> 20
    );
    assert_kafka_client_works(&b);
    assert_native_client_works(&b);
    assert!(
        b.is_running(),
        "the broker died; its log:\n{}",
        log_tail(&b)
    );
    assert_eq!(b.pid(), Some(pid), "the broker is the same process");
    let peak = b.peak_rss_bytes().expect("VmHWM");
    let most = most_partitions.load(Ordering::Relaxed).max(partitions);
    let created = most.saturating_sub(PARTITIONS_AT_START);
    let bound = PEAK_RSS_MAX_BYTES + PEAK_RSS_PER_PARTITION_BYTES * created;
    let log = b.log();
    println!(
        "broker peak RSS: {} MiB before the hammer, {} MiB after it, {} MiB at the end (bound {} MiB); \
         log {} bytes, {} lines; hammer and checks took {:?}",
        peak_before >> 20,
        peak_after_hammer >> 20,
        peak >> 20,
        bound >> 20,
        log.len(),
        log.lines().count(),
        started.elapsed()
    );
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    println!("broker log: {} ERROR lines", errors.len());
    for line in errors.iter().take(10) {
        println!("  {line}");
    }
    assert!(
        peak < bound,
        "peak RSS {peak} bytes over {bound} ({created} partitions created)"
    );
    assert!(
        !log.contains("panicked"),
        "the broker panicked:\n{}",
        log_tail(&b)
    );
}

/// Small produces, each on a fresh native connection (the pattern of the hammer's valid
/// frames, and of any short-lived client).
const PIN_PRODUCES: usize = 1000;
/// What those produces may add to the broker's resident set: their batches are about
/// 75 bytes each (75 KB in all), and a closed connection's buffers are freed.
const PIN_GROWTH_MAX_BYTES: u64 = 32 << 20;

/// Found by the hammer: a native frame's payload was a slice of its connection's 1 MiB
/// read buffer, and the batch cache (and a queue, for PublishBatch bodies) kept that
/// slice, so each small batch produced on a fresh connection kept the whole buffer alive
/// while the cache counted only the batch's bytes against `--cache-mb`. Measured before
/// the fix: about 200 KiB resident per 75-byte batch, 1000 produces 49 -> 250 MiB.
#[test]
fn small_batches_on_fresh_native_connections_do_not_pin_read_buffers() {
    let b = Broker::start_with(&["--max-frame-bytes", &MAX_FRAME_BYTES.to_string()]);
    b.create_topic("pinned", 1);
    let batch = encode_batch(&[OutRecord {
        key: None,
        value: Bytes::from_static(b"v"),
        timestamp_ms: 1,
    }])
    .expect("encode");
    let batch_len = batch.len();
    let before = b.rss_bytes().expect("VmRSS");
    let addr = b.addr.clone();
    within("small produces on fresh connections", move || {
        for _ in 0..PIN_PRODUCES {
            let mut conn = Connection::connect(&addr).expect("connect");
            conn.set_read_timeout(Some(CHECK_TIMEOUT)).expect("timeout");
            let request = Request::Produce {
                topic: "pinned".into(),
                partition: 0,
                acks: Acks::Leader,
            };
            let (response, _) = conn.call(request, &[&batch]).expect("produce");
            assert!(
                matches!(response, Response::Produced { .. }),
                "{response:?}"
            );
        }
    });
    let after = b.rss_bytes().expect("VmRSS");
    println!(
        "{PIN_PRODUCES} produces on fresh connections: RSS {} -> {} MiB",
        before >> 20,
        after >> 20
    );
    assert!(
        after.saturating_sub(before) < PIN_GROWTH_MAX_BYTES,
        "{PIN_PRODUCES} batches of {batch_len} bytes grew the broker from {before} to {after} bytes"
    );
}
