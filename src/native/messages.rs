//! Native protocol messages: the rkyv-archived envelopes of requests and responses.
//! `Request` holds what a client may ask and nothing else: calls between shards are the
//! engine's own (`engine::mesh`), never a wire message.
//!
//! A frame carries one envelope and an optional raw payload. Record data never goes
//! through rkyv: a Produce payload is one or more Kafka v2 record batches, a Fetch
//! response payload the batches read from the log, referenced in place on both ends.

use rkyv::{Archive, Deserialize, Serialize};

/// Durability the producer waits for before the broker answers.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget: the broker sends no response.
    None,
    /// Appended to the partition (in memory) on the owning shard.
    Leader,
    /// Written and covered by an fdatasync (group commit).
    Durable,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// First offset whose batch has a timestamp at or after this Unix time in ms.
    Timestamp(i64),
    /// The last stable offset: where a `Committed` reader's partition ends (below the
    /// first record of any open transaction).
    LastStable,
}

/// What a fetch may see of Kafka transactions (Kafka's `isolation_level`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Everything appended, open and aborted transactions included.
    #[default]
    Uncommitted,
    /// Only below the last stable offset; the answer names the aborted transactions
    /// in the range, whose records the client drops.
    Committed,
}

/// An aborted transaction that may have records in a fetched range: the client drops
/// `producer_id`'s transactional records from `first_offset` up to its abort marker.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: Option<u64>,
}

/// A queue declaration (see `peregrine_shards::queues::QueueConfig`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueSpec {
    pub name: String,
    pub max_priority: u8,
    pub ttl_ms: Option<u64>,
    /// None: the default (30 s).
    pub visibility_timeout_ms: Option<u64>,
    pub max_deliveries: Option<u32>,
    pub dead_letter: Option<String>,
    pub fifo: bool,
    /// Most messages waiting (ready or delayed), RabbitMQ's `x-max-length`.
    pub max_length: Option<u64>,
    /// Most body bytes waiting, `x-max-length-bytes`.
    pub max_bytes: Option<u64>,
    /// What a publish past a bound does (`x-overflow`).
    pub overflow: QueueOverflow,
}

/// A full queue's answer to one more publish (see `peregrine_shards::queues::Overflow`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueOverflow {
    /// The oldest waiting messages are dead-lettered until the new one fits.
    #[default]
    DropHead,
    /// The publish is refused with an error.
    RejectPublish,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeType {
    Direct,
    Fanout,
    Topic,
    Headers,
}

/// A binding of an exchange to a queue or a topic.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct BindingSpec {
    pub exchange: String,
    /// Exactly one of `queue` and `topic`.
    pub queue: Option<String>,
    pub topic: Option<String>,
    pub routing_key: String,
    pub headers: Vec<(String, String)>,
    /// Headers exchanges: match all bound headers (else any).
    pub match_all: bool,
}

/// How one message is published to a queue.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishSpec {
    pub priority: u8,
    pub delay_ms: Option<u64>,
    pub ttl_ms: Option<u64>,
    pub headers: Vec<(String, String)>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    /// Answer once the message is on disk (fdatasync, group-committed).
    pub durable: bool,
    /// Set by the broker when it moves a dead letter: `source-queue/id`.
    pub origin: Option<String>,
}

/// Messages handed out by one receive, column by column: rkyv writes a column of
/// numbers in one copy, where a list of structs costs a zeroed temporary and a resolve
/// per element. Bodies follow one another in the answer's payload, in this order.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Deliveries {
    pub handles: Vec<u64>,
    pub ids: Vec<u64>,
    pub published_ms: Vec<i64>,
    pub deliveries: Vec<u32>,
    pub lens: Vec<u32>,
    pub priorities: Vec<u8>,
    /// Headers and group ids, only for the messages that have any.
    pub extras: Vec<DeliveryExtras>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
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
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn push(&mut self, d: QueueDelivery) {
        if !d.headers.is_empty() || d.group_id.is_some() {
            self.extras.push(DeliveryExtras {
                index: self.ids.len() as u32,
                headers: d.headers,
                group_id: d.group_id,
            });
        }
        self.handles.push(d.handle);
        self.ids.push(d.id);
        self.published_ms.push(d.published_ms);
        self.deliveries.push(d.deliveries);
        self.lens.push(d.len);
        self.priorities.push(d.priority);
    }

    /// One `QueueDelivery` per message again; an error when the columns disagree.
    pub fn into_vec(self) -> Result<Vec<QueueDelivery>, String> {
        let n = self.ids.len();
        let lengths = [
            self.handles.len(),
            self.published_ms.len(),
            self.deliveries.len(),
            self.lens.len(),
            self.priorities.len(),
        ];
        if lengths.iter().any(|l| *l != n) || self.extras.iter().any(|e| e.index as usize >= n) {
            return Err("deliveries whose columns disagree".into());
        }
        let mut out: Vec<QueueDelivery> = (0..n)
            .map(|i| QueueDelivery {
                handle: self.handles[i],
                id: self.ids[i],
                deliveries: self.deliveries[i],
                priority: self.priorities[i],
                headers: Vec::new(),
                group_id: None,
                published_ms: self.published_ms[i],
                len: self.lens[i],
            })
            .collect();
        for e in self.extras {
            let d = &mut out[e.index as usize];
            d.headers = e.headers;
            d.group_id = e.group_id;
        }
        Ok(out)
    }
}

/// A message received from a queue; its body is the `len` bytes at its place in the
/// answer's payload.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct QueueDelivery {
    /// Receipt handle for ack/nack (0 with auto-ack: already settled).
    pub handle: u64,
    pub id: u64,
    pub deliveries: u32,
    pub priority: u8,
    pub headers: Vec<(String, String)>,
    pub group_id: Option<String>,
    pub published_ms: i64,
    pub len: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct QueueStatsInfo {
    pub name: String,
    pub ready: u64,
    pub delayed: u64,
    pub in_flight: u64,
    /// Messages this queue sent to its dead-letter target since the broker started.
    pub dead_lettered: u64,
    /// Receives waiting on this queue now.
    pub consumers: u64,
    /// The shard that owns the queue: a shard-aware client sends its calls there.
    pub owner: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A SCRAM mechanism (RFC 5802 with RFC 7677's SHA-256, or SHA-512 as Kafka offers).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramMechanism {
    ScramSha256,
    ScramSha512,
}

/// A change to the user store (`peregrine user ...`); needs Alter on the cluster.
/// Passwords never travel: the client salts and iterates them (as Kafka's
/// AlterUserScramCredentials does) and the broker keeps only the SCRAM keys.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub enum UserChange {
    /// Creates the user or replaces its credential for one mechanism.
    Upsert {
        name: String,
        mechanism: ScramMechanism,
        iterations: u32,
        salt: Vec<u8>,
        /// PBKDF2 of the password with `salt` and `iterations` (RFC 5802 SaltedPassword).
        salted_password: Vec<u8>,
    },
    /// Removes one mechanism's credential, or the whole user when `mechanism` is None.
    Delete {
        name: String,
        mechanism: Option<ScramMechanism>,
    },
    /// Binds a SigV4 access key to the user (the client made the secret).
    AddAccessKey {
        name: String,
        key_id: String,
        secret: String,
    },
    RemoveAccessKey {
        key_id: String,
    },
}

/// Never prints a salted password or a secret.
impl std::fmt::Debug for UserChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserChange::Upsert {
                name,
                mechanism,
                iterations,
                ..
            } => write!(f, "Upsert({name}, {mechanism:?}, {iterations})"),
            UserChange::Delete { name, mechanism } => write!(f, "Delete({name}, {mechanism:?})"),
            UserChange::AddAccessKey { name, key_id, .. } => {
                write!(f, "AddAccessKey({name}, {key_id})")
            }
            UserChange::RemoveAccessKey { key_id } => write!(f, "RemoveAccessKey({key_id})"),
        }
    }
}

/// One user as listed: never a secret.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    /// Each SCRAM credential the user has, with its iteration count.
    pub mechanisms: Vec<(ScramMechanism, u32)>,
    pub access_keys: Vec<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclResourceType {
    Topic,
    Group,
    TransactionalId,
    /// Named `kafka-cluster`, as in Kafka.
    Cluster,
    Queue,
    Exchange,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclPatternType {
    /// The name itself (`*`: every name).
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclPermission {
    Allow,
    Deny,
}

/// One ACL binding (Kafka's model).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AclBinding {
    pub resource_type: AclResourceType,
    pub resource_name: String,
    pub pattern: AclPatternType,
    /// `User:NAME` or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// How a filter matches a binding's pattern (Kafka's `PatternTypeFilter`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclPatternFilter {
    /// Any pattern type, names compared as written.
    Any,
    /// Every binding that would apply to the filter's (literal) name: literal ones with
    /// that name or `*`, prefixed ones whose prefix it starts with.
    Match,
    Literal,
    Prefixed,
}

/// Which bindings a describe or delete touches: a `None` field matches anything.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<AclResourceType>,
    pub resource_name: Option<String>,
    pub pattern: AclPatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<AclPermission>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Topics (all when `None`), their partitions' owning shards and each shard's port.
    Metadata {
        topics: Option<Vec<String>>,
    },
    CreateTopic(TopicSpec),
    DeleteTopic {
        name: String,
    },
    /// Per-partition start/end offsets and bytes, answered by the owning shards.
    DescribeTopic {
        name: String,
    },
    /// Payload: one or more record batches for this partition.
    Produce {
        topic: String,
        partition: i32,
        acks: Acks,
    },
    Fetch {
        topic: String,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        max_wait_ms: u32,
        min_bytes: u32,
        isolation: Isolation,
    },
    ListOffsets {
        topic: String,
        partition: i32,
        spec: OffsetSpec,
    },
    /// Deletes the records below `offset` (-1: all up to the end); answered with the
    /// partition's start offset afterwards.
    DeleteRecords {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// Start/end offsets, bytes and owner of one partition.
    PartitionStats {
        topic: String,
        partition: i32,
    },
    JoinGroup {
        group: String,
        member_id: String,
        client_id: String,
        topics: Vec<String>,
        session_timeout_ms: u32,
        rebalance_timeout_ms: u32,
    },
    Heartbeat {
        group: String,
        member_id: String,
        generation: i32,
    },
    LeaveGroup {
        group: String,
        member_id: String,
    },
    CommitOffsets {
        group: String,
        member_id: String,
        generation: i32,
        offsets: Vec<CommitEntry>,
    },
    /// Committed offsets of a group for one topic (every partition that has one); an
    /// empty topic name (never a valid one) asks for every topic.
    FetchOffsets {
        group: String,
        topic: String,
    },
    DescribeGroup {
        group: String,
    },
    /// Grows a topic to `count` partitions.
    CreatePartitions {
        topic: String,
        count: i32,
    },
    /// Deletes a group without members, and its committed offsets.
    DeleteGroup {
        group: String,
    },
    ListGroups,
    /// A producer id for an idempotent producer; with an existing id and epoch
    /// (Kafka KIP-360) the same id with the next epoch.
    InitProducerId {
        producer_id: i64,
        epoch: i16,
    },
    DeclareQueue(QueueSpec),
    DeleteQueue {
        name: String,
    },
    ListQueues,
    QueueStats {
        name: String,
    },
    PurgeQueue {
        name: String,
    },
    /// Payload: the message body.
    Publish {
        queue: String,
        spec: PublishSpec,
    },
    DeclareExchange {
        name: String,
        kind: ExchangeType,
    },
    DeleteExchange {
        name: String,
    },
    /// Exchanges and their bindings.
    ListExchanges,
    Bind(BindingSpec),
    Unbind(BindingSpec),
    /// Payload: the message body. Routed to every matching queue and topic; the
    /// default exchange ("") routes to the queue named by the routing key.
    PublishToExchange {
        exchange: String,
        routing_key: String,
        spec: PublishSpec,
    },
    /// Payload: the bodies one after another, `lens` long each; all published with
    /// `spec`, journaled as one batch (one fdatasync when durable).
    PublishBatch {
        queue: String,
        spec: PublishSpec,
        lens: Vec<u32>,
    },
    /// Pull receive: up to `max` messages, waiting up to `wait_ms` for the first.
    Receive {
        queue: String,
        max: u32,
        wait_ms: u32,
        /// Settle on delivery (at-most-once) instead of leasing.
        auto_ack: bool,
    },
    Ack {
        queue: String,
        handles: Vec<u64>,
    },
    /// Push mode: the broker keeps answering this request with `Received` batches,
    /// never more than `prefetch` unacked at once, until the connection closes; then
    /// every lease it holds returns to the queue at once.
    Subscribe {
        queue: String,
        prefetch: u32,
        auto_ack: bool,
    },
    /// Gives leases back: ready again with `requeue`, else dead-lettered as rejected.
    Nack {
        queue: String,
        handles: Vec<u64>,
        requeue: bool,
    },
    /// Counters of one shard (`shard` modulo the shard count): diagnostics for tools
    /// and tests that check where calls ran.
    ShardStats {
        shard: u32,
    },
    /// SCRAM step 1 (RFC 5802 client-first-message). The only requests a listener that
    /// requires authentication serves before it succeeds are these two.
    ScramFirst {
        mechanism: ScramMechanism,
        client_first: Vec<u8>,
    },
    /// SCRAM step 2 (client-final-message), on the same connection after `ScramFirst`.
    ScramFinal {
        client_final: Vec<u8>,
    },
    /// One change to the user store (Alter on the cluster).
    AlterUser(UserChange),
    /// Users and their mechanisms, never a secret (Describe on the cluster).
    ListUsers,
    /// Adds bindings (Alter on the cluster), each on its own; answered with the first
    /// refusal if any.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// Removes every binding a filter matches (Alter on the cluster); answered with them.
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
    /// The bindings a filter matches (Describe on the cluster).
    DescribeAcls {
        filter: AclFilter,
    },
}

impl Request {
    /// This kind's index in `metrics::NATIVE_APIS` (requests are counted by kind).
    pub fn api_index(&self) -> usize {
        match self {
            Request::Metadata { .. } => 0,
            Request::CreateTopic { .. } => 1,
            Request::DeleteTopic { .. } => 2,
            Request::DescribeTopic { .. } => 3,
            Request::Produce { .. } => 4,
            Request::Fetch { .. } => 5,
            Request::ListOffsets { .. } => 6,
            Request::DeleteRecords { .. } => 7,
            Request::PartitionStats { .. } => 8,
            Request::JoinGroup { .. } => 9,
            Request::Heartbeat { .. } => 10,
            Request::LeaveGroup { .. } => 11,
            Request::CommitOffsets { .. } => 12,
            Request::FetchOffsets { .. } => 13,
            Request::DescribeGroup { .. } => 14,
            Request::CreatePartitions { .. } => 15,
            Request::DeleteGroup { .. } => 16,
            Request::ListGroups => 17,
            Request::InitProducerId { .. } => 18,
            Request::DeclareQueue { .. } => 19,
            Request::DeleteQueue { .. } => 20,
            Request::ListQueues => 21,
            Request::QueueStats { .. } => 22,
            Request::PurgeQueue { .. } => 23,
            Request::Publish { .. } => 24,
            Request::DeclareExchange { .. } => 25,
            Request::DeleteExchange { .. } => 26,
            Request::ListExchanges => 27,
            Request::Bind { .. } => 28,
            Request::Unbind { .. } => 29,
            Request::PublishToExchange { .. } => 30,
            Request::PublishBatch { .. } => 31,
            Request::Receive { .. } => 32,
            Request::Ack { .. } => 33,
            Request::Subscribe { .. } => 34,
            Request::Nack { .. } => 35,
            Request::ShardStats { .. } => 36,
            Request::ScramFirst { .. } => 37,
            Request::ScramFinal { .. } => 38,
            Request::AlterUser { .. } => 39,
            Request::ListUsers => 40,
            Request::CreateAcls { .. } => 41,
            Request::DeleteAcls { .. } => 42,
            Request::DescribeAcls { .. } => 43,
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RequestEnvelope {
    pub id: u64,
    pub request: Request,
}

/// Error classes a client can act on; the message says the rest.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The frame or envelope could not be decoded.
    InvalidRequest,
    UnknownTopic,
    UnknownPartition,
    TopicExists,
    InvalidTopic,
    /// A partition count that is not more than the topic's current one.
    InvalidPartitions,
    UnknownQueue,
    UnknownExchange,
    /// A queue redeclared with other settings.
    QueueMismatch,
    /// A receipt handle whose lease ended (acked, timed out, or never handed out).
    UnknownHandle,
    OffsetOutOfRange,
    /// A record batch failed validation (length, magic or CRC32C).
    CorruptBatch,
    MessageTooLarge,
    UnknownMember,
    IllegalGeneration,
    RebalanceInProgress,
    InvalidSessionTimeout,
    InvalidGroup,
    GroupNotEmpty,
    /// An idempotent producer's batch skipped or repeated sequence numbers.
    OutOfOrderSequence,
    /// An idempotent producer's epoch is older than the partition has seen.
    ProducerFenced,
    /// The broker is shutting down.
    ShuttingDown,
    /// A storage or internal failure on the broker.
    Internal,
    /// No space left on the broker's disk: nothing of the request was acknowledged;
    /// retry once space is freed (writes resume by themselves).
    StorageFull,
    /// A write or fdatasync failed: the partition or queue is read-only until the
    /// broker restarts.
    StorageFailed,
    /// The SCRAM handshake failed (unknown user, wrong password, or too many failed
    /// logins from this address); the connection stays unauthenticated.
    AuthenticationFailed,
    /// This listener serves nothing before the client authenticated (`ScramFirst`).
    AuthenticationRequired,
    /// The principal may not do this (`--acls`); nothing was changed.
    AuthorizationFailed,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard: u32,
    /// The shard's own port: connections there are served by the owning core directly.
    pub port: u16,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// Owning shard of each partition, indexed by partition.
    pub owners: Vec<u32>,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    pub partition: i32,
    pub shard: u32,
    pub start_offset: i64,
    pub end_offset: i64,
    pub size_bytes: u64,
    pub segments: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub topic: String,
    pub partitions: Vec<i32>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub member_id: String,
    pub client_id: String,
    pub assignment: Vec<Assignment>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Error {
        code: ErrorCode,
        message: String,
    },
    Ok,
    Metadata {
        shards: Vec<ShardInfo>,
        topics: Vec<TopicInfo>,
    },
    TopicDescribed {
        topic: TopicInfo,
        partitions: Vec<PartitionStats>,
    },
    Produced {
        base_offset: i64,
        last_offset: i64,
    },
    /// Payload: whole record batches starting with the one that holds the offset
    /// (with `Isolation::Committed`, only those below the last stable offset).
    Fetched {
        high_watermark: i64,
        log_start_offset: i64,
        /// Below the first record of the oldest open transaction (the high watermark
        /// when none is open).
        last_stable_offset: i64,
        /// With `Isolation::Committed`: the aborted transactions whose records the
        /// payload may hold, oldest first; empty otherwise.
        aborted: Vec<AbortedTxn>,
    },
    Offset {
        offset: i64,
    },
    ProducerId {
        producer_id: i64,
        epoch: i16,
    },
    Queues {
        queues: Vec<QueueSpec>,
    },
    QueueStats(QueueStatsInfo),
    /// `id` None: a FIFO queue dropped the message as a duplicate.
    Published {
        id: Option<u64>,
    },
    /// A batch publish: how many messages were stored (duplicates dropped).
    PublishedBatch {
        stored: u32,
    },
    /// Payload: the bodies, one after another.
    Received {
        messages: Box<Deliveries>,
    },
    Exchanges {
        exchanges: Vec<(String, ExchangeType)>,
        bindings: Vec<BindingSpec>,
    },
    /// How many queues and topics a publish through an exchange reached.
    Routed {
        queues: u32,
        topics: u32,
    },
    /// Purged messages.
    Count {
        count: u64,
    },
    PartitionStats(PartitionStats),
    Joined {
        member_id: String,
        generation: i32,
        leader: String,
        members: Vec<String>,
        assignment: Vec<Assignment>,
    },
    Offsets {
        offsets: Vec<CommitEntry>,
    },
    GroupDescribed {
        group: String,
        state: String,
        generation: i32,
        members: Vec<MemberInfo>,
    },
    Groups {
        groups: Vec<(String, String)>,
    },
    /// SCRAM server-first-message, answering `ScramFirst`.
    ScramChallenge {
        server_first: Vec<u8>,
    },
    /// SCRAM server-final-message: the connection now acts as `principal`. The client
    /// checks the server signature in it (the broker knew the credentials).
    Authenticated {
        principal: String,
        server_final: Vec<u8>,
    },
    Users {
        users: Vec<UserInfo>,
    },
    Acls {
        bindings: Vec<AclBinding>,
    },
    ShardStats {
        shard: u32,
        /// Partition requests (produce, fetch, list offsets) served on this shard.
        partition_requests: u64,
        /// Partition requests that arrived here and were forwarded to their owner.
        forwarded: u64,
    },
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ResponseEnvelope {
    pub id: u64,
    pub response: Response,
}

impl Response {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: u64, group: Option<&str>) -> QueueDelivery {
        QueueDelivery {
            handle: id + 100,
            id,
            deliveries: 1,
            priority: (id % 3) as u8,
            headers: group.map_or_else(Vec::new, |g| vec![("k".into(), g.into())]),
            group_id: group.map(str::to_string),
            published_ms: 1_000 + id as i64,
            len: id as u32,
        }
    }

    #[test]
    fn each_request_kind_is_counted_under_its_own_name() {
        let samples = [
            Request::Metadata { topics: None },
            Request::ListGroups,
            Request::Bind(BindingSpec::default()),
            Request::ShardStats { shard: 0 },
            Request::Nack {
                queue: String::new(),
                handles: Vec::new(),
                requeue: true,
            },
        ];
        for r in samples {
            let name = format!("{r:?}");
            let counted = crate::metrics::NATIVE_APIS[r.api_index()];
            assert!(name.starts_with(counted), "{name} counted as {counted}");
        }
    }

    #[test]
    fn deliveries_round_trip_through_columns_and_refuse_ragged_ones() {
        let all = vec![delivery(0, None), delivery(1, Some("g")), delivery(2, None)];
        let mut columns = Deliveries::with_capacity(3);
        for d in all.clone() {
            columns.push(d);
        }
        assert_eq!(columns.extras.len(), 1, "extras only where there are any");
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&columns).expect("encode");
        let back = rkyv::from_bytes::<Deliveries, rkyv::rancor::Error>(&bytes).expect("decode");
        assert_eq!(back.into_vec(), Ok(all));
        let mut ragged = columns.clone();
        ragged.lens.pop();
        assert!(ragged.into_vec().is_err());
        let mut stray = columns;
        stray.extras[0].index = 7;
        assert!(stray.into_vec().is_err());
    }
}
