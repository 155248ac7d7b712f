//! What the broker counts for its operator, and the `/metrics` text (DESIGN.md
//! "Observability").
//!
//! Two kinds of figures, chosen so that nothing here needs a cross-core message:
//!
//! * Per-shard counters (`ShardMetrics`): requests by protocol and API (for SQS and
//!   SNS on the HTTP listener: by action), errors by code,
//!   connections, cross-core calls, produce-to-ack latency, plus the storage's own
//!   fdatasync and cache counters. Atomics in an `Arc` that the shard writes (a plain
//!   load and store: one writer, no locked instruction) and any thread reads with
//!   Relaxed loads. Each shard's block is cache-line aligned so shards never share a
//!   line. The hot-path calls are in `local`, which finds the block through a
//!   thread-local set when the shard starts.
//! * Per-object gauges (partitions, groups, queues): `objects::snapshot` gathers them
//!   on the owning shard from a background task when a scrape asks
//!   (`Metrics::request_refresh`, an atomic generation each shard polls), into a shared
//!   slot the scrape reads.
//!
//! Label sets are bounded: shards, protocols, API names and error codes are fixed
//! tables; partitions, groups and queues are those that exist (at most
//! `objects::ROWS_MAX` rows of each kind per shard). No label names a connection.
//!
//! `render` turns it all into the Prometheus text format with `prometheus-client`.

pub mod local;
pub mod objects;
pub mod render;

use peregrine_aws_wire::sqs::Action;
use peregrine_shards::log::{CacheCounters, SyncStats};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Front ends whose requests and connections are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Native = 0,
    Kafka = 1,
    Http = 2,
    Amqp = 3,
}

pub const PROTOCOLS: [&str; 4] = ["native", "kafka", "http", "amqp"];

/// The protocols SNS delivers to, as `sns_deliveries_total` labels them.
pub const SNS_DELIVERY_PROTOCOLS: [&str; 4] = ["sqs", "http", "https", "kafka"];
/// What became of one delivery: `delivered`; `retried` (an attempt that failed and is
/// tried again); `failed` (given up: the target is gone, or its retries ran out);
/// `dead_lettered` (a failed one then stored in its subscription's dead-letter queue).
pub const SNS_DELIVERY_OUTCOMES: [&str; 4] = ["delivered", "retried", "failed", "dead_lettered"];

/// AMQP 0-9-1 methods a client sends, by class and method id (the spec's), each counted
/// as its own request; any other id is counted in the last slot, "other".
pub const AMQP_METHODS: [(u16, u16, &str); 38] = [
    (10, 11, "connection.start-ok"),
    (10, 21, "connection.secure-ok"),
    (10, 31, "connection.tune-ok"),
    (10, 40, "connection.open"),
    (10, 50, "connection.close"),
    (10, 51, "connection.close-ok"),
    (10, 60, "connection.blocked"),
    (10, 61, "connection.unblocked"),
    (10, 70, "connection.update-secret"),
    (20, 10, "channel.open"),
    (20, 20, "channel.flow"),
    (20, 21, "channel.flow-ok"),
    (20, 40, "channel.close"),
    (20, 41, "channel.close-ok"),
    (30, 10, "access.request"),
    (40, 10, "exchange.declare"),
    (40, 20, "exchange.delete"),
    (40, 30, "exchange.bind"),
    (40, 40, "exchange.unbind"),
    (50, 10, "queue.declare"),
    (50, 20, "queue.bind"),
    (50, 30, "queue.purge"),
    (50, 40, "queue.delete"),
    (50, 50, "queue.unbind"),
    (60, 10, "basic.qos"),
    (60, 20, "basic.consume"),
    (60, 30, "basic.cancel"),
    (60, 40, "basic.publish"),
    (60, 70, "basic.get"),
    (60, 80, "basic.ack"),
    (60, 90, "basic.reject"),
    (60, 100, "basic.recover-async"),
    (60, 110, "basic.recover"),
    (60, 120, "basic.nack"),
    (85, 10, "confirm.select"),
    (90, 10, "tx.select"),
    (90, 20, "tx.commit"),
    (0, 0, "other"),
];

/// The `AMQP_METHODS` slot of a method.
pub fn amqp_method_slot(class_id: u16, method_id: u16) -> usize {
    AMQP_METHODS
        .iter()
        .position(|(c, m, _)| *c == class_id && *m == method_id)
        .unwrap_or(AMQP_METHODS.len() - 1)
}

/// Native request kinds, by the index `native::messages::Request::api_index` gives
/// (the native front end's tests check that the two agree).
pub const NATIVE_APIS: [&str; 44] = [
    "Metadata",
    "CreateTopic",
    "DeleteTopic",
    "DescribeTopic",
    "Produce",
    "Fetch",
    "ListOffsets",
    "DeleteRecords",
    "PartitionStats",
    "JoinGroup",
    "Heartbeat",
    "LeaveGroup",
    "CommitOffsets",
    "FetchOffsets",
    "DescribeGroup",
    "CreatePartitions",
    "DeleteGroup",
    "ListGroups",
    "InitProducerId",
    "DeclareQueue",
    "DeleteQueue",
    "ListQueues",
    "QueueStats",
    "PurgeQueue",
    "Publish",
    "DeclareExchange",
    "DeleteExchange",
    "ListExchanges",
    "Bind",
    "Unbind",
    "PublishToExchange",
    "PublishBatch",
    "Receive",
    "Ack",
    "Subscribe",
    "Nack",
    "ShardStats",
    "ScramFirst",
    "ScramFinal",
    "AlterUser",
    "ListUsers",
    "CreateAcls",
    "DeleteAcls",
    "DescribeAcls",
];

/// Kafka API keys counted one by one; a larger key (which the codec refuses anyway) is
/// counted in the last slot as "other".
pub const KAFKA_API_SLOTS: usize = 128;

/// Kafka's name of an API key ("Produce"), or "other".
pub fn kafka_api_name(slot: usize) -> String {
    i16::try_from(slot)
        .ok()
        .filter(|_| slot < KAFKA_API_SLOTS - 1)
        .and_then(|key| kafka_protocol::messages::ApiKey::try_from(key).ok())
        .map_or_else(|| "other".to_string(), |k| format!("{k:?}"))
}

/// SQS actions counted one by one (`requests_total{protocol="http",api=ACTION}`), in the
/// order of `Action::ALL`; a request for any other action (unknown, not served, or none
/// named) is counted in the last slot as "unknown", so clients cannot grow the label set.
pub const SQS_ACTION_SLOTS: usize = Action::ALL.len() + 1;

/// The `SQS_ACTION_SLOTS` slot of a request's action (`None`: not one the broker serves).
pub fn sqs_action_slot(action: Option<Action>) -> usize {
    action
        .and_then(|a| Action::ALL.iter().position(|known| *known == a))
        .unwrap_or(SQS_ACTION_SLOTS - 1)
}

/// The action name of a slot ("SendMessage"), or "unknown".
pub fn sqs_action_name(slot: usize) -> &'static str {
    Action::ALL.get(slot).map_or("unknown", |a| a.name())
}

/// SNS actions counted one by one (`requests_total{protocol="http",api=ACTION}`), in the
/// order of `sns::Action::ALL`. An SNS request naming no served action counts in SQS's
/// "unknown" slot: the HTTP listener has one "unknown" series.
pub const SNS_ACTION_SLOTS: usize = peregrine_aws_wire::sns::Action::ALL.len();

/// The action name of an SNS slot ("Publish").
pub fn sns_action_name(slot: usize) -> &'static str {
    peregrine_aws_wire::sns::Action::ALL
        .get(slot)
        .map_or("unknown", |a| a.name())
}

/// Engine error kinds, by the index `engine::EngineError::metrics_index` gives (the
/// engine's tests check that the two agree). Errors are counted by the engine's kind,
/// the same for every protocol, whatever code each protocol maps it to.
pub const ERROR_CODES: [&str; 34] = [
    "InvalidRequest",
    "UnknownTopic",
    "UnknownPartition",
    "TopicExists",
    "InvalidTopic",
    "InvalidPartitions",
    "UnknownQueue",
    "UnknownExchange",
    "QueueMismatch",
    "QueueFull",
    "UnknownHandle",
    "OffsetOutOfRange",
    "CorruptBatch",
    "MessageTooLarge",
    "UnknownMember",
    "IllegalGeneration",
    "RebalanceInProgress",
    "InvalidSessionTimeout",
    "InvalidGroup",
    "GroupNotEmpty",
    "OutOfOrderSequence",
    "ProducerFenced",
    "NotSupported",
    "SubscriptionClosed",
    "ShuttingDown",
    "Internal",
    "PreconditionFailed",
    "AccessRefused",
    "InvalidTxnState",
    "ConcurrentTransactions",
    "UnknownTransactionalId",
    "InvalidTransactionTimeout",
    "StorageFull",
    "StorageFailed",
];

/// Latency buckets of `Histogram`: bucket `i` counts values of at most `2^i` µs, the
/// last one the rest (the same layout as the storage's fdatasync histogram).
pub const LATENCY_BUCKETS: usize = peregrine_shards::log::SYNC_LATENCY_BUCKETS;

/// A latency histogram of atomics with power-of-two µs buckets; one writer.
#[derive(Debug, Default)]
pub struct Histogram {
    count: AtomicU64,
    sum_us: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

impl Histogram {
    pub fn record_us(&self, us: u64) {
        bump(&self.count, 1);
        bump(&self.sum_us, us);
        bump(&self.buckets[bucket_of(us)], 1);
    }

    /// (count, sum in µs, per-bucket counts).
    pub fn read(&self) -> (u64, u64, [u64; LATENCY_BUCKETS]) {
        (
            self.count.load(Ordering::Relaxed),
            self.sum_us.load(Ordering::Relaxed),
            std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
        )
    }
}

/// The bucket of a value in µs: the smallest `i` with `us <= 2^i`.
pub fn bucket_of(us: u64) -> usize {
    let i = (u64::BITS - us.saturating_sub(1).leading_zeros()) as usize;
    i.min(LATENCY_BUCKETS - 1)
}

/// Adds to a counter that only one thread writes: no locked read-modify-write.
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// The per-object rows one shard last gathered (see `objects`).
pub type SnapshotSlot = Mutex<Arc<objects::Snapshot>>;

/// One shard's counters. Written by that shard only; read by any thread.
#[repr(align(64))]
#[derive(Debug)]
pub struct ShardMetrics {
    pub requests_native: [AtomicU64; NATIVE_APIS.len()],
    pub requests_kafka: [AtomicU64; KAFKA_API_SLOTS],
    pub requests_amqp: [AtomicU64; AMQP_METHODS.len()],
    /// SQS requests on the HTTP listener, by `sqs_action_slot`.
    pub requests_sqs: [AtomicU64; SQS_ACTION_SLOTS],
    /// SNS requests on the HTTP listener, by their action's index in `sns::Action::ALL`.
    pub requests_sns: [AtomicU64; SNS_ACTION_SLOTS],
    /// Error answers by protocol and engine code.
    pub errors: [[AtomicU64; ERROR_CODES.len()]; PROTOCOLS.len()],
    /// Open connections by protocol (a gauge).
    pub connections: [AtomicI64; PROTOCOLS.len()],
    /// Calls this shard sent to another shard and waited for.
    pub cross_core_calls: AtomicU64,
    /// SNS deliveries by protocol (`SNS_DELIVERY_PROTOCOLS`) and outcome
    /// (`SNS_DELIVERY_OUTCOMES`), counted by the fan-out workers.
    pub sns_deliveries: [[AtomicU64; SNS_DELIVERY_OUTCOMES.len()]; SNS_DELIVERY_PROTOCOLS.len()],
    /// From a produce reaching its partition's shard to its answer (acks leader or
    /// durable; not counted for acks=none, which has no answer).
    pub produce_ack: Histogram,
    /// The shard's own storage counters, set when the shard starts.
    pub storage: OnceLock<StorageCounters>,
    /// Object snapshots asked for and made (see `Metrics::request_refresh`).
    pub refreshed: AtomicU64,
    pub snapshot: SnapshotSlot,
}

/// Counters the storage crate keeps for one shard.
#[derive(Debug, Clone)]
pub struct StorageCounters {
    pub cache: Arc<CacheCounters>,
    pub sync: Arc<SyncStats>,
}

impl ShardMetrics {
    fn new() -> ShardMetrics {
        ShardMetrics {
            requests_native: std::array::from_fn(|_| AtomicU64::new(0)),
            requests_kafka: std::array::from_fn(|_| AtomicU64::new(0)),
            requests_amqp: std::array::from_fn(|_| AtomicU64::new(0)),
            requests_sqs: std::array::from_fn(|_| AtomicU64::new(0)),
            requests_sns: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            connections: std::array::from_fn(|_| AtomicI64::new(0)),
            cross_core_calls: AtomicU64::new(0),
            sns_deliveries: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            produce_ack: Histogram::default(),
            storage: OnceLock::new(),
            refreshed: AtomicU64::new(0),
            snapshot: Mutex::new(Arc::new(objects::Snapshot::default())),
        }
    }
}

/// The process's metrics: every shard's block, readiness, and the refresh request.
/// Created before the shards start; shared by all of them and the HTTP front end.
#[derive(Debug)]
pub struct Metrics {
    pub shards: Vec<Arc<ShardMetrics>>,
    /// Every shard started (catalog applied, listeners up).
    ready: AtomicBool,
    /// Snapshot generation the last scrape asked for.
    wanted: AtomicU64,
}

impl Metrics {
    pub fn new(shards: usize) -> Arc<Metrics> {
        Arc::new(Metrics {
            shards: (0..shards).map(|_| Arc::new(ShardMetrics::new())).collect(),
            ready: AtomicBool::new(false),
            wanted: AtomicU64::new(0),
        })
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Asks every shard for a fresh object snapshot; returns the generation to wait for.
    pub fn request_refresh(&self) -> u64 {
        self.wanted.fetch_add(1, Ordering::AcqRel) + 1
    }

    pub fn wanted(&self) -> u64 {
        self.wanted.load(Ordering::Acquire)
    }

    /// Whether every shard has made a snapshot at or after generation `generation`.
    pub fn refreshed_to(&self, generation: u64) -> bool {
        self.shards
            .iter()
            .all(|s| s.refreshed.load(Ordering::Acquire) >= generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_the_smallest_power_of_two_bucket_that_holds_them() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(1024), 10);
        assert_eq!(bucket_of(1025), 11);
        assert_eq!(bucket_of(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn kafka_api_names_come_from_the_protocol_crate() {
        assert_eq!(kafka_api_name(0), "Produce");
        assert_eq!(kafka_api_name(18), "ApiVersions");
        assert_eq!(kafka_api_name(KAFKA_API_SLOTS - 1), "other");
    }

    #[test]
    fn every_table_name_is_distinct() {
        let mut names: Vec<_> = NATIVE_APIS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), NATIVE_APIS.len());
        let mut codes: Vec<_> = ERROR_CODES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ERROR_CODES.len());
        let mut amqp: Vec<_> = AMQP_METHODS.iter().map(|(_, _, n)| *n).collect();
        amqp.sort_unstable();
        amqp.dedup();
        assert_eq!(amqp.len(), AMQP_METHODS.len());
        let mut sqs: Vec<_> = (0..SQS_ACTION_SLOTS).map(sqs_action_name).collect();
        sqs.sort_unstable();
        sqs.dedup();
        assert_eq!(sqs.len(), SQS_ACTION_SLOTS);
        // SQS and SNS share the HTTP series: no action name in both.
        let mut http: Vec<_> = sqs
            .into_iter()
            .chain((0..SNS_ACTION_SLOTS).map(sns_action_name))
            .collect();
        http.sort_unstable();
        http.dedup();
        assert_eq!(http.len(), SQS_ACTION_SLOTS + SNS_ACTION_SLOTS);
    }

    #[test]
    fn sqs_actions_have_a_slot_each_and_the_rest_share_unknown() {
        for action in Action::ALL {
            assert_eq!(
                sqs_action_name(sqs_action_slot(Some(action))),
                action.name()
            );
        }
        assert_eq!(sqs_action_slot(None), SQS_ACTION_SLOTS - 1);
        assert_eq!(sqs_action_name(sqs_action_slot(None)), "unknown");
        assert_eq!(sqs_action_name(SQS_ACTION_SLOTS + 5), "unknown");
    }

    #[test]
    fn amqp_methods_are_found_by_the_codecs_ids() {
        use amq_protocol::protocol::{basic, confirm, queue, AMQPClass};
        let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish::default()));
        let declare = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare::default()));
        let select = AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select::default()));
        for (method, name) in [
            (publish, "basic.publish"),
            (declare, "queue.declare"),
            (select, "confirm.select"),
        ] {
            let slot = amqp_method_slot(method.get_amqp_class_id(), method.get_amqp_method_id());
            assert_eq!(AMQP_METHODS[slot].2, name);
        }
        assert_eq!(AMQP_METHODS[amqp_method_slot(60, 60)].2, "other");
    }
}
