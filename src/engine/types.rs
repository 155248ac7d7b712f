//! The engine's own argument and result types. No wire format's: each front end maps
//! its protocol's messages to and from these. Plain data, `Send`, so that a call can
//! carry them to the owning shard and back.

use bytes::Bytes;

pub use peregrine_shards::catalog::{QueueMeta, TopicConfig, TopicSettings, TopicSettingsChange};
pub use peregrine_shards::queues::exchange::{BindTarget, Binding, ExchangeKind, ExchangeMeta};
pub use peregrine_shards::queues::{
    Overflow, QueueChange, QueueConfig, DELAY_MS_MAX, RECEIVE_WAIT_MAX_MS,
    VISIBILITY_TIMEOUT_MS_MAX,
};
pub use peregrine_shards::sns::{SnsSubscription, SnsTopicChange, SnsTopicMeta};

/// Durability a producer waits for before the engine answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget: the front end owes no answer.
    None,
    /// Appended to the partition (in memory) on the owning shard.
    Leader,
    /// Written and covered by an fdatasync (group commit).
    Durable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// First offset whose batch has a timestamp at or after this Unix time in ms.
    Timestamp(i64),
    /// The last stable offset: `Latest` for a `read_committed` reader.
    LastStable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchArgs {
    pub offset: i64,
    pub max_bytes: u32,
    pub max_wait_ms: u32,
    pub min_bytes: u32,
    /// `Committed` reads stop at the last stable offset and name the aborted
    /// transactions in the range (Kafka's `read_committed`).
    pub isolation: Isolation,
    /// Whether batches still pending in memory are read too: the engine's own scans of
    /// logs it appends to. Consumers (false) read up to the high watermark, what is
    /// written to the segment files and so survives a kill -9 (`PartitionLog::read_written`).
    pub pending: bool,
}

/// What a read may see of transactions (Kafka's `isolation_level`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Everything appended, open and aborted transactions included.
    #[default]
    Uncommitted,
    /// Only up to the last stable offset: below the first record of any open
    /// transaction. Aborted records still arrive; `Fetched::aborted` names them.
    Committed,
}

/// Offsets of an aborted transaction in a fetched range (Kafka's `AbortedTransaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedRange {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// Whole record batches from the one that holds the offset asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    pub high_watermark: i64,
    /// Below the first record of the oldest open transaction (the high watermark
    /// when none is open).
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// With `Isolation::Committed`: the aborted transactions whose records the
    /// batches may hold (the reader drops that producer's records from
    /// `first_offset` up to its abort marker).
    pub aborted: Vec<AbortedRange>,
    pub batches: Vec<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    pub partition: i32,
    pub shard: u32,
    pub start_offset: i64,
    pub end_offset: i64,
    pub size_bytes: u64,
    pub segments: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// Owning shard of each partition, indexed by partition.
    pub owners: Vec<u32>,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: u64,
    /// Kafka's `max.message.bytes`; `None`: the broker's default.
    pub max_message_bytes: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard: u32,
    /// The shard's own native port.
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub shards: Vec<ShardInfo>,
    pub topics: Vec<TopicInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub topic: TopicInfo,
    pub partitions: Vec<PartitionStats>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardCounters {
    pub shard: u32,
    /// Partition calls (produce, fetch, list offsets) served on this shard.
    pub partition_requests: u64,
    /// Partition calls that arrived here and were run on their owner.
    pub forwarded: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinArgs {
    pub group: String,
    /// Empty on a first join.
    pub member_id: String,
    pub client_id: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub topic: String,
    pub partitions: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub member_id: String,
    pub generation: i32,
    pub leader: String,
    pub members: Vec<String>,
    pub assignment: Vec<Assignment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub member_id: String,
    pub client_id: String,
    pub assignment: Vec<Assignment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    pub state: String,
    pub generation: i32,
    pub members: Vec<MemberInfo>,
}

/// The header holding the routing key a message was published with through an
/// exchange, where its front end records one (AMQP does): dead letters routed through
/// an exchange without a dead-letter routing key keep that key, as in RabbitMQ.
pub const ROUTING_KEY_HEADER: &str = "amqp-routing-key";
/// The exchange it was published to (beside `ROUTING_KEY_HEADER`).
pub const EXCHANGE_HEADER: &str = "amqp-exchange";

/// How one message is published to a queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishSpec {
    pub priority: u8,
    pub delay_ms: Option<u64>,
    pub ttl_ms: Option<u64>,
    pub headers: Vec<(String, String)>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    /// Answer once the message is on disk (fdatasync, group-committed).
    pub durable: bool,
    /// A dead letter's origin: `source-queue/id` (a target keeps one copy of it).
    pub origin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub name: String,
    pub ready: u64,
    pub delayed: u64,
    pub in_flight: u64,
    /// Messages this queue sent to its dead-letter target since the broker started.
    pub dead_lettered: u64,
    /// Receives waiting and subscriptions attached now.
    pub consumers: u64,
    /// The shard that owns the queue.
    pub owner: u32,
}

/// Messages handed out by one receive, column by column (a front end that encodes
/// columns moves them as they are); bodies follow one another in `Received::bodies`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Receipt handles for settling (0 with auto-ack: already settled).
    pub handles: Vec<u64>,
    pub ids: Vec<u64>,
    pub published_ms: Vec<i64>,
    pub deliveries: Vec<u32>,
    pub lens: Vec<u32>,
    pub priorities: Vec<u8>,
    /// Headers and group ids, only for the messages that have any.
    pub extras: Vec<DeliveryExtras>,
    /// When each message was first received (`ReceiveArgs::first_receive`); empty
    /// unless asked for.
    pub first_received_ms: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryExtras {
    /// Position of the message in its `Deliveries`.
    pub index: u32,
    pub headers: Vec<(String, String)>,
    pub group_id: Option<String>,
}

impl Deliveries {
    pub fn with_capacity(n: usize) -> Deliveries {
        Deliveries {
            handles: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            published_ms: Vec::with_capacity(n),
            deliveries: Vec::with_capacity(n),
            lens: Vec::with_capacity(n),
            priorities: Vec::with_capacity(n),
            extras: Vec::new(),
            first_received_ms: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// What one receive handed out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    pub messages: Deliveries,
    /// The bodies, one after another, `messages.lens` long each.
    pub bodies: Bytes,
}

/// One message of a `publish_each`: its own settings and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishEntry {
    pub spec: PublishSpec,
    pub body: Bytes,
}

/// What a pull receive asks for (`Engine::receive_leasing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveArgs {
    /// Most messages (at least 1 is asked for; capped by the engine).
    pub max: u32,
    /// How long to wait for the first message (capped at `RECEIVE_WAIT_MAX_MS`).
    pub wait_ms: u32,
    /// Settled on delivery (at-most-once) instead of leased.
    pub auto_ack: bool,
    /// How long these leases last; `None`: the queue's visibility timeout. At most
    /// `VISIBILITY_TIMEOUT_MS_MAX`.
    pub visibility_ms: Option<u64>,
    /// Answer when each message was first received (`Deliveries::first_received_ms`,
    /// SQS's ApproximateFirstReceiveTimestamp): the queue remembers it for messages
    /// received so until they are settled, not across a restart.
    pub first_receive: bool,
}

/// A lease as a client names it: its handle and the message it was given for. Handles
/// start from 1 again when the broker restarts, so the message id tells an old
/// receipt from a new lease that happens to have its handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRef {
    pub handle: u64,
    pub message_id: u64,
}

/// How leases end (or change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Done: the messages leave the queue.
    Ack { handles: Vec<u64> },
    /// Ready again for another consumer.
    Requeue { handles: Vec<u64> },
    /// Dead-lettered as rejected.
    Reject { handles: Vec<u64> },
    /// The lease lasts `timeout_ms` from now (SQS ChangeMessageVisibility).
    ChangeVisibility { handle: u64, timeout_ms: u64 },
}

/// How many queues and topics a publish through an exchange reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    pub queues: u32,
    pub topics: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchanges {
    pub exchanges: Vec<(String, ExchangeKind)>,
    pub bindings: Vec<Binding>,
}

/// Where a transaction stands (Kafka's transaction states, by their Kafka names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction begun since the last one ended (or since InitProducerId).
    Empty,
    /// Partitions or a group added; not ended.
    Ongoing,
    /// Commit decided and logged; markers being written.
    PrepareCommit,
    /// Abort decided and logged; markers being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// The name Kafka's DescribeTransactions and ListTransactions use.
    pub fn kafka_name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }
}

/// One transactional id as its coordinator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub state: TxnState,
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    /// When the current transaction began (Unix ms); -1 when none is open.
    pub start_ms: i64,
    /// Partitions in the current transaction, sorted.
    pub partitions: Vec<(String, i32)>,
    /// Groups whose offsets the current transaction commits, sorted.
    pub groups: Vec<String>,
}

/// One producer's state in one partition (Kafka's DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerDescription {
    pub producer_id: i64,
    pub epoch: i16,
    /// -1 when no batch with a sequence is kept.
    pub last_sequence: i32,
    /// Broker time (Unix ms) of the producer's last batch; -1 when unknown.
    pub last_timestamp_ms: i64,
    /// First offset of the producer's open transaction here; -1 when none is open.
    pub txn_start_offset: i64,
}

/// A transaction marker for one partition: the end of `producer_id`'s transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}
