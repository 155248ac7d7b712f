//! Message queues (RabbitMQ/SQS semantics) on the shard that owns each queue.
//!
//! | file | owns |
//! |---|---|
//! | `queue.rs` | one queue's delivery state machine: ready (by priority, FIFO within one), delayed, leased, expiry, dead-lettering, FIFO groups and deduplication, length bounds and overflow, which bodies are in memory (the read-ahead); pure, takes `now_ms` |
//! | `attempts.rs` | recent receives' answers by attempt id (SQS FIFO's ReceiveRequestAttemptId), bounded |
//! | `moves.rs` | message move tasks as state (SQS's StartMessageMoveTask): the last `MOVE_TASKS_KEPT`, one running; the engine drives them |
//! | `exchange.rs` | routing of a publish over an exchange's bindings (direct, fanout, topic, headers) |
//! | `slots.rs` | values keyed by ids handed out in order (message ids, lease handles): a ring over the live window, a map for stragglers |
//! | `store.rs` | the queue's durable journal (publish records, delivered, settled, dead-lettering and move-task events in a partition log of its own), replay, reading bodies back (the loader) and reclamation |
//!
//! A backlog lives on disk: a queue holds every waiting message's metadata (about 100
//! bytes, headers and group ids out of line) but bodies only within `READ_AHEAD_BYTES`
//! near its head; the rest are read back from the journal before they are handed out.
//!
//! Times are Unix milliseconds, not `Instant`s: a delay or a TTL must mean the same
//! after a restart.

mod attempts;
pub mod exchange;
mod moves;
mod queue;
mod slots;
mod store;

pub use attempts::{Attempts, ATTEMPTS_MAX, ATTEMPT_BYTES_MAX, ATTEMPT_WINDOW_MS};
pub use moves::{AlreadyRunning, MoveStatus, MoveTask, MoveTasks, MOVE_TASKS_KEPT};
pub use queue::{Queue, Stats};
pub use store::{Event, Publish, PublishedMeta, QueueStore, Recovered, Replay};

use bytes::Bytes;
use std::collections::BTreeMap;

/// How long a FIFO queue remembers a deduplication id (SQS: 5 minutes).
pub const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;
/// How long a queue remembers the origin key (`source-queue/id`) of a dead letter it
/// stored, so that a move resumed within it is not stored twice. A move is resumed at
/// the source's next timer tick, or at its restart: a source down for longer than this
/// with a move half done may store a second copy.
pub const ORIGIN_WINDOW_MS: i64 = 60 * 60 * 1000;
/// Body bytes a queue keeps in memory ahead of its consumers (its read-ahead); bodies
/// beyond it stay only in the journal and are read back as the head nears them. A
/// queue whose consumers keep up never reaches it, so its bodies are never read back.
pub const READ_AHEAD_BYTES: u64 = 64 << 20;
/// Default visibility timeout of a lease (SQS default).
pub const VISIBILITY_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Longest a lease's visibility may be set to (SQS: 12 hours).
pub const VISIBILITY_TIMEOUT_MS_MAX: u64 = 12 * 60 * 60 * 1000;
/// Longest default delay a queue may give its messages (SQS: 15 minutes).
pub const DELAY_MS_MAX: u64 = 15 * 60 * 1000;
/// Longest a receive waits for a message (SQS's limit); also bounds a queue's default
/// wait (`receive_wait_ms`).
pub const RECEIVE_WAIT_MAX_MS: u32 = 20_000;

/// Most tags one queue may carry (SQS's limit).
pub const QUEUE_TAGS_MAX: usize = 50;
/// Most front-end attributes one queue may carry (`QueueMeta::attributes`); SQS uses
/// four.
pub const QUEUE_ATTRIBUTES_MAX: usize = 16;

/// A queue's declaration; redeclaring with other values is an error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueConfig {
    /// 0: no priorities (every message is priority 0).
    pub max_priority: u8,
    /// Messages older than this are never delivered.
    pub ttl_ms: Option<u64>,
    pub visibility_timeout_ms: u64,
    /// Deliveries after which a message that is not acked goes to the dead-letter target.
    pub max_deliveries: Option<u32>,
    /// Queue or exchange that dead letters go to; `None`: they are dropped.
    pub dead_letter: Option<String>,
    /// Strict order per group id, a group waits while it has messages in flight, deduplication.
    pub fifo: bool,
    /// Most messages waiting (ready or delayed; leased ones do not count, as in
    /// RabbitMQ's `x-max-length`); `None`: unbounded.
    #[serde(default)]
    pub max_length: Option<u64>,
    /// Most body bytes waiting (ready or delayed), as `x-max-length-bytes`.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// What a publish that would pass `max_length` or `max_bytes` does.
    #[serde(default)]
    pub overflow: Overflow,
    /// Kept across broker restarts; a queue that is not is deleted when the broker
    /// starts.
    #[serde(default = "durable_default")]
    pub durable: bool,
    /// The owner tag of an exclusive queue (the front end's, e.g. its connection's id);
    /// deleted by the front end when its owner goes, and when the broker starts. Not
    /// compared on redeclare: the front end checks the owner itself.
    #[serde(default)]
    pub exclusive: Option<String>,
    /// Deleted once it has had a subscription and the last one goes (pull receives do
    /// not count).
    #[serde(default)]
    pub auto_delete: bool,
    /// RabbitMQ's `x-expires`: deleted after this long without a subscription, a
    /// receive or a redeclare (checked by the queue timer).
    #[serde(default)]
    pub expires_ms: Option<u64>,
    /// When the dead-letter target is an exchange, dead letters are routed with this
    /// key; `None`: the source queue's name.
    #[serde(default)]
    pub dead_letter_routing_key: Option<String>,
    /// How long a publish that names no delay of its own stays invisible (SQS's
    /// `DelaySeconds`); applies to publishes made after it is set.
    #[serde(default)]
    pub delay_ms: u64,
    /// Largest body a client may publish here (SQS's `MaximumMessageSize`), checked by
    /// the engine; dead-letter moves are never refused by it. `None`: no bound beyond
    /// the broker's own.
    #[serde(default)]
    pub max_message_bytes: Option<u32>,
    /// Default long-poll wait for front ends that let the queue decide (SQS's
    /// `ReceiveMessageWaitTimeSeconds`); the engine itself never applies it.
    #[serde(default)]
    pub receive_wait_ms: u32,
    /// Expired messages go to the dead-letter target (RabbitMQ); `false`: they are
    /// dropped, and only refused or over-delivered ones go there (SQS).
    #[serde(default = "dead_letter_on_expiry_default")]
    pub dead_letter_on_expiry: bool,
}

fn durable_default() -> bool {
    true
}

fn dead_letter_on_expiry_default() -> bool {
    true
}

/// A full queue's answer to one more publish (RabbitMQ's `x-overflow`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// The publish is refused (`QueueError::QueueFull`); the queue keeps what it has.
    RejectPublish,
    /// The oldest waiting messages are dead-lettered (dropped without a target) until
    /// the new one fits. RabbitMQ's default, so it is ours.
    #[default]
    DropHead,
}

impl Overflow {
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::RejectPublish => "reject-publish",
            Overflow::DropHead => "drop-head",
        }
    }
}

impl std::str::FromStr for Overflow {
    type Err = String;

    fn from_str(s: &str) -> Result<Overflow, String> {
        match s {
            "reject-publish" => Ok(Overflow::RejectPublish),
            "drop-head" => Ok(Overflow::DropHead),
            other => Err(format!(
                "unknown overflow policy '{other}' (use reject-publish or drop-head)"
            )),
        }
    }
}

impl QueueConfig {
    /// Why this declaration cannot be served, if it cannot. A priority is an octet
    /// (AMQP's range, 0..=255), so `max_priority` needs no check of its own.
    pub fn validate(&self) -> Result<(), String> {
        if self.visibility_timeout_ms > VISIBILITY_TIMEOUT_MS_MAX {
            return Err(format!(
                "visibility timeout of {} ms is over the maximum of {VISIBILITY_TIMEOUT_MS_MAX} ms",
                self.visibility_timeout_ms
            ));
        }
        if self.expires_ms == Some(0) {
            return Err("expires must be at least 1 ms".to_string());
        }
        if self.delay_ms > DELAY_MS_MAX {
            return Err(format!(
                "delay of {} ms is over the maximum of {DELAY_MS_MAX} ms",
                self.delay_ms
            ));
        }
        if self.receive_wait_ms > RECEIVE_WAIT_MAX_MS {
            return Err(format!(
                "receive wait of {} ms is over the maximum of {RECEIVE_WAIT_MAX_MS} ms",
                self.receive_wait_ms
            ));
        }
        Ok(())
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_priority: 0,
            ttl_ms: None,
            visibility_timeout_ms: VISIBILITY_TIMEOUT_MS_DEFAULT,
            max_deliveries: None,
            dead_letter: None,
            fifo: false,
            max_length: None,
            max_bytes: None,
            overflow: Overflow::default(),
            durable: true,
            exclusive: None,
            auto_delete: false,
            expires_ms: None,
            dead_letter_routing_key: None,
            delay_ms: 0,
            max_message_bytes: None,
            receive_wait_ms: 0,
            dead_letter_on_expiry: true,
        }
    }
}

/// What may change on a live queue (SQS SetQueueAttributes); each `Some` replaces that
/// setting. Ordering, priorities, durability and ownership stay as declared: the open
/// queue's structures depend on them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueChange {
    pub visibility_timeout_ms: Option<u64>,
    /// `Some(None)`: no TTL. Applies to messages published after the change.
    pub ttl_ms: Option<Option<u64>>,
    /// Applies to messages published after the change.
    pub delay_ms: Option<u64>,
    pub max_message_bytes: Option<Option<u32>>,
    pub receive_wait_ms: Option<u32>,
    /// `Some(Some((target, max_deliveries)))`: dead letters go to `target` after
    /// `max_deliveries`; `Some(None)`: no target and no bound on deliveries.
    pub dead_letter: Option<Option<(String, u32)>>,
    /// Front-end attributes (`QueueMeta::attributes`) to set (`Some`) or remove
    /// (`None`), by name.
    pub attributes: BTreeMap<String, Option<String>>,
    /// Tags (`QueueMeta::tags`) to set (`Some`) or remove (`None`), by key.
    pub tags: BTreeMap<String, Option<String>>,
}

impl QueueChange {
    /// `c` with this change applied (not validated: see `QueueConfig::validate`).
    pub fn apply(&self, c: &QueueConfig) -> QueueConfig {
        let mut next = c.clone();
        if let Some(v) = self.visibility_timeout_ms {
            next.visibility_timeout_ms = v;
        }
        if let Some(v) = self.ttl_ms {
            next.ttl_ms = v;
        }
        if let Some(v) = self.delay_ms {
            next.delay_ms = v;
        }
        if let Some(v) = self.max_message_bytes {
            next.max_message_bytes = v;
        }
        if let Some(v) = self.receive_wait_ms {
            next.receive_wait_ms = v;
        }
        match &self.dead_letter {
            None => {}
            Some(None) => {
                next.dead_letter = None;
                next.max_deliveries = None;
            }
            Some(Some((target, max))) => {
                next.dead_letter = Some(target.clone());
                next.max_deliveries = Some(*max);
            }
        }
        next
    }

    /// `map` with `changes` applied (`None` removes a key).
    pub fn apply_map(
        map: &BTreeMap<String, String>,
        changes: &BTreeMap<String, Option<String>>,
    ) -> BTreeMap<String, String> {
        let mut next = map.clone();
        for (key, value) in changes {
            match value {
                Some(v) => next.insert(key.clone(), v.clone()),
                None => next.remove(key),
            };
        }
        next
    }
}

/// How a message is published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    pub priority: u8,
    /// Not visible before this time (Unix ms).
    pub deliver_at_ms: Option<i64>,
    /// Per-message TTL; the shorter of it and the queue's applies.
    pub ttl_ms: Option<u64>,
    pub headers: Vec<(String, String)>,
    /// FIFO queues: the message group (required there).
    pub group_id: Option<String>,
    /// FIFO queues: a publish with an id seen in the last 5 minutes is dropped.
    pub dedup_id: Option<String>,
}

/// One message and what the queue knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Unique within the queue, in publish order.
    pub id: u64,
    pub body: Bytes,
    /// Headers and FIFO group id, out of line: most messages have neither, and every
    /// hand-out and ack walks the queue's entries (96 bytes each so, 136 inline).
    pub extras: Option<Box<Extras>>,
    pub priority: u8,
    pub published_ms: i64,
    pub visible_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// Times it was handed to a consumer.
    pub deliveries: u32,
}

/// What only some messages carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    pub headers: Vec<(String, String)>,
    pub group_id: Option<String>,
}

impl Extras {
    /// Boxed, or nothing when there are neither headers nor a group id.
    pub fn boxed(headers: Vec<(String, String)>, group_id: Option<String>) -> Option<Box<Extras>> {
        (!headers.is_empty() || group_id.is_some()).then(|| Box::new(Extras { headers, group_id }))
    }
}

impl Message {
    pub fn headers(&self) -> &[(String, String)] {
        self.extras.as_ref().map_or(&[], |e| &e.headers)
    }

    pub fn group_id(&self) -> Option<&str> {
        self.extras.as_ref()?.group_id.as_deref()
    }
}

/// A message handed to a consumer under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Names this lease in ack/nack; a new one on every delivery.
    pub handle: u64,
    pub message: Message,
}

/// Why a message left its queue for the dead-letter target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    Rejected,
    Expired,
    MaxDeliveries,
    /// Dropped from the head of a full queue (`Overflow::DropHead`).
    MaxLength,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Rejected => "rejected",
            DeadReason::Expired => "expired",
            DeadReason::MaxDeliveries => "max-deliveries",
            DeadReason::MaxLength => "max-length",
        }
    }
}

/// A message leaving its queue: to the dead-letter target if the queue has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message: Message,
    pub reason: DeadReason,
    pub queue: String,
    pub at_ms: i64,
    /// Where it goes; `None`: dropped.
    pub target: Option<String>,
    /// `message.body` is empty: the body is only in the queue's journal
    /// (`QueueStore::load_bodies`).
    pub body_on_disk: bool,
}

/// Who holds a lease: a subscription's leases return when it goes away; pull receives
/// hold theirs until ack, nack or the visibility timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holder {
    Subscription(u64),
    Pull,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    #[error("priority {got} is over the queue's maximum of {max}")]
    PriorityTooHigh { got: u8, max: u8 },
    #[error("a FIFO queue needs a message group id")]
    GroupIdRequired,
    #[error("unknown or expired receipt handle {0} (the lease ended; the message may have been redelivered)")]
    UnknownHandle(u64),
    #[error("queue '{queue}' is full ({limit}; its overflow policy is reject-publish): consume or purge it, or publish later")]
    QueueFull { queue: String, limit: String },
    #[error("visibility timeout of {got} ms is over the maximum of {max} ms")]
    VisibilityTimeoutTooLong { got: u64, max: u64 },
}
