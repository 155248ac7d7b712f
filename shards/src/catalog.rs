//! Topic metadata: which topics exist, their settings, and which shard owns each
//! partition.
//!
//! Owned by shard 0 (the metadata controller), which is the only writer of the file;
//! every other shard holds an immutable snapshot (`Arc<Catalog>`) broadcast after each
//! change. Placement is computed once at topic creation and recorded here, so it
//! survives restarts and changes of `--shards`/`--cores`.
//!
//! The file (`meta/topics.json`) is JSON in a CRC32C frame (`checked_file`; the bare
//! JSON of older releases still loads): a torn or flipped byte stops the start with an
//! error naming the file, since a changed name or count would silently drop or invent
//! acknowledged declarations.

use crate::checked_file;
use crate::queues::exchange::{BindTarget, Binding, ExchangeKind, ExchangeMeta};
use crate::queues::{QueueChange, QueueConfig, QUEUE_ATTRIBUTES_MAX, QUEUE_TAGS_MAX};
use crate::security::{
    AclBinding, AclError, AclFilter, AclStore, UserChange, UserError, UserStore,
};
pub use crate::sns::{SnsSubscription, SnsTopicChange, SnsTopicMeta};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Longest topic name, as in Kafka.
pub const TOPIC_NAME_MAX: usize = 249;
/// Upper bound on partitions per topic: every partition holds open files.
pub const PARTITIONS_MAX: i32 = 10_000;
/// Largest catalog file read at start-up: far above any real one (a topic is a few
/// hundred bytes plus four per partition), far below what memory could not hold.
pub const CATALOG_BYTES_MAX: u64 = 64 << 20;
/// Permissions of the catalog file: read and written by the broker's user only, since
/// it holds the user store's keys and access key secrets.
pub const CATALOG_FILE_MODE: u32 = 0o600;
/// Default segment size when a topic does not set one.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
/// Smallest segment size accepted: one preallocation chunk must fit meaningfully.
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// Largest segment size accepted: index entries hold positions in a segment as u32.
pub const SEGMENT_BYTES_MAX: u64 = crate::log::SEGMENT_BYTES_MAX;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub partitions: i32,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: u64,
    /// Largest record batch a producer may write (Kafka's `max.message.bytes`); `None`:
    /// the broker's default. Absent from catalogs written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u32>,
}

/// The settings of a live topic that may change (Kafka's AlterConfigs); the partition
/// count grows through `with_partitions`. Every owner applies a change to its open
/// partitions when it takes the new catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    /// `None`: kept forever (Kafka's -1).
    pub retention_ms: Option<i64>,
    /// `None`: no size bound (Kafka's -1).
    pub retention_bytes: Option<u64>,
    pub segment_bytes: u64,
    /// `None`: the broker's default.
    pub max_message_bytes: Option<u32>,
}

impl TopicConfig {
    pub fn settings(&self) -> TopicSettings {
        TopicSettings {
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            segment_bytes: self.segment_bytes,
            max_message_bytes: self.max_message_bytes,
        }
    }
}

/// A change of some of a topic's settings (`None`: kept as it is), applied to the
/// settings the catalog holds when the change runs, so two changes of different keys
/// never undo one another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicSettingsChange {
    pub retention_ms: Option<Option<i64>>,
    pub retention_bytes: Option<Option<u64>>,
    pub segment_bytes: Option<u64>,
    pub max_message_bytes: Option<Option<u32>>,
}

impl TopicSettingsChange {
    /// Every setting at once: the topic ends up with exactly `settings`.
    pub fn all(settings: TopicSettings) -> TopicSettingsChange {
        TopicSettingsChange {
            retention_ms: Some(settings.retention_ms),
            retention_bytes: Some(settings.retention_bytes),
            segment_bytes: Some(settings.segment_bytes),
            max_message_bytes: Some(settings.max_message_bytes),
        }
    }

    pub fn applied_to(&self, current: TopicSettings) -> TopicSettings {
        TopicSettings {
            retention_ms: self.retention_ms.unwrap_or(current.retention_ms),
            retention_bytes: self.retention_bytes.unwrap_or(current.retention_bytes),
            segment_bytes: self.segment_bytes.unwrap_or(current.segment_bytes),
            max_message_bytes: self.max_message_bytes.unwrap_or(current.max_message_bytes),
        }
    }
}

impl TopicSettings {
    /// Refuses what a log cannot run with, as at creation.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if self.segment_bytes < SEGMENT_BYTES_MIN || self.segment_bytes > SEGMENT_BYTES_MAX {
            return Err(CatalogError::InvalidConfig(format!(
                "segment bytes must be between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}, got {}",
                self.segment_bytes
            )));
        }
        if matches!(self.retention_ms, Some(ms) if ms < 1) {
            return Err(CatalogError::InvalidConfig(
                "retention ms must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    /// Unique per creation, so a topic deleted and created again never reuses files.
    pub id: u64,
    pub config: TopicConfig,
    /// Owning shard of each partition, as placed at creation.
    pub placement: Vec<u32>,
    pub created_ms: i64,
}

impl TopicMeta {
    /// The shard that owns `partition` when the broker runs `nshards` shards. A recorded
    /// shard beyond the current count (the broker restarted with fewer) wraps around.
    pub fn owner(&self, partition: i32, nshards: u32) -> Option<u32> {
        let recorded = *self.placement.get(usize::try_from(partition).ok()?)?;
        Some(recorded % nshards.max(1))
    }

    /// Directory of one partition under the data directory.
    pub fn partition_dir(&self, data_dir: &Path, partition: i32) -> PathBuf {
        data_dir
            .join("topics")
            .join(format!("{}-{}", self.name, self.id))
            .join(partition.to_string())
    }

    pub fn topic_dir(&self, data_dir: &Path) -> PathBuf {
        data_dir
            .join("topics")
            .join(format!("{}-{}", self.name, self.id))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist (create it with `peregrine topic create {0}`)")]
    UnknownTopic(String),
    #[error(
        "invalid topic name '{0}': use 1 to 249 characters from [A-Za-z0-9._-], not '.' or '..'"
    )]
    InvalidName(String),
    #[error("invalid topic config: {0}")]
    InvalidConfig(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("queue '{0}' does not exist (declare it with `peregrine queue declare {0}`)")]
    UnknownQueue(String),
    #[error("invalid queue config: {0}")]
    InvalidQueueConfig(String),
    #[error("queue '{0}' exists with other settings (delete it first to change them)")]
    QueueMismatch(String),
    #[error("exchange '{0}' does not exist (declare it with `peregrine exchange declare {0}`)")]
    UnknownExchange(String),
    #[error("exchange '{0}' exists with another type or other settings (delete it first to change them)")]
    ExchangeMismatch(String),
    #[error(
        "exchange '{0}' is the source of bindings (unbind them first, or delete without if-unused)"
    )]
    ExchangeInUse(String),
    #[error("exchange name '{0}' is reserved: the default exchange and the amq.* names are the broker's own")]
    ReservedExchange(String),
    #[error("no such binding: {0}")]
    UnknownBinding(String),
    #[error("metadata file {path}: {reason}")]
    Storage { path: String, reason: String },
    /// The filesystem had no space for the new catalog: the change was not made (the
    /// file still holds the previous catalog); retry once space is freed.
    #[error("metadata file {path}: no space left on the device ({reason}); the change was not made, retry once space is freed")]
    StorageFull { path: String, reason: String },
}

/// Every topic of the broker. Immutable once shared: a change builds a new value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Grows by one on every change; shards apply snapshots in version order.
    pub version: u64,
    pub next_topic_id: u64,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Message queues, each owned by the shard its name hashes to.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueMeta>,
    /// Declared exchanges (the default exchange "" is not one of them; the standard
    /// `amq.*` ones are, see `with_standard_exchanges`).
    #[serde(default)]
    pub exchanges: BTreeMap<String, ExchangeMeta>,
    #[serde(default)]
    pub bindings: Vec<Binding>,
    /// SNS topics with their subscriptions, each backed by an engine topic (`sns`).
    #[serde(default)]
    pub sns: BTreeMap<String, SnsTopicMeta>,
    /// Users and their credentials (`security::users`); checked as it is read.
    #[serde(default)]
    pub users: UserStore,
    /// ACL bindings (`security::acls`); checked as they are read.
    #[serde(default)]
    pub acls: AclStore,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMeta {
    pub name: String,
    /// Unique per declaration (shared with topic ids), so files are never reused.
    pub id: u64,
    pub config: QueueConfig,
    pub created_ms: i64,
    /// When its settings last changed (`with_queue_change`); 0 in catalogs written
    /// before it existed, read as `created_ms` (`last_modified_ms`).
    #[serde(default)]
    pub modified_ms: i64,
    /// Attributes a front end keeps with the queue and interprets itself (SQS's
    /// ContentBasedDeduplication, DeduplicationScope, FifoThroughputLimit,
    /// RedriveAllowPolicy), at most `QUEUE_ATTRIBUTES_MAX`; the engine only stores them.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Key → value tags (SQS's queue tags), at most `QUEUE_TAGS_MAX`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl QueueMeta {
    /// When its settings last changed: at its declaration unless changed since.
    pub fn last_modified_ms(&self) -> i64 {
        if self.modified_ms == 0 {
            self.created_ms
        } else {
            self.modified_ms
        }
    }

    pub fn owner(&self, nshards: u32) -> u32 {
        queue_owner(&self.name, nshards)
    }

    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        data_dir
            .join("queues")
            .join(format!("{}-{}", self.name, self.id))
    }
}

/// RabbitMQ's standard exchanges, present in every broker: (name, kind).
pub const STANDARD_EXCHANGES: [(&str, ExchangeKind); 5] = [
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

/// Whether clients may not declare or delete exchange `name`: the default exchange ""
/// and every `amq.*` name belong to the broker (as in RabbitMQ).
pub fn is_reserved_exchange(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.")
}

/// The shard that owns a queue: a stable hash of its name.
pub fn queue_owner(queue: &str, nshards: u32) -> u32 {
    crc32c::crc32c(queue.as_bytes()).rotate_left(7) % nshards.max(1)
}

pub fn validate_topic_name(name: &str) -> Result<(), CatalogError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if name.is_empty() || name.len() > TOPIC_NAME_MAX || !ok_chars || name == "." || name == ".." {
        return Err(CatalogError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// Stable placement: partitions of one topic go round-robin over the shards, starting at
/// a shard chosen by the topic's name hash so that many small topics spread too.
pub fn place_partition(topic: &str, partition: i32, nshards: u32) -> u32 {
    let start = crc32c::crc32c(topic.as_bytes());
    let p = u32::try_from(partition).unwrap_or(0);
    start.wrapping_add(p) % nshards.max(1)
}

/// The shard that owns a consumer group.
pub fn group_owner(group: &str, nshards: u32) -> u32 {
    crc32c::crc32c(group.as_bytes()) % nshards.max(1)
}

impl Catalog {
    /// A new catalog with `topic` added.
    pub fn with_topic(
        &self,
        name: &str,
        config: TopicConfig,
        nshards: u32,
        now_ms: i64,
    ) -> Result<Catalog, CatalogError> {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(CatalogError::TopicExists(name.to_string()));
        }
        if config.partitions < 1 || config.partitions > PARTITIONS_MAX {
            return Err(CatalogError::InvalidConfig(format!(
                "partitions must be between 1 and {PARTITIONS_MAX}, got {}",
                config.partitions
            )));
        }
        config.settings().validate()?;
        let placement = (0..config.partitions)
            .map(|p| place_partition(name, p, nshards))
            .collect();
        let mut next = self.clone();
        next.version += 1;
        next.next_topic_id += 1;
        let meta = TopicMeta {
            name: name.to_string(),
            id: self.next_topic_id,
            config,
            placement,
            created_ms: now_ms,
        };
        next.topics.insert(name.to_string(), meta);
        Ok(next)
    }

    /// A new catalog where topic `name` runs with its settings changed by `change`
    /// (and those settings); no catalog when they are what it has (nothing to write).
    pub fn with_topic_settings(
        &self,
        name: &str,
        change: &TopicSettingsChange,
    ) -> Result<(Option<Catalog>, TopicSettings), CatalogError> {
        let current = self.topic(name)?.config.settings();
        let settings = change.applied_to(current);
        if settings == current {
            return Ok((None, settings));
        }
        settings.validate()?;
        let mut next = self.clone();
        next.version += 1;
        if let Some(meta) = next.topics.get_mut(name) {
            meta.config.retention_ms = settings.retention_ms;
            meta.config.retention_bytes = settings.retention_bytes;
            meta.config.segment_bytes = settings.segment_bytes;
            meta.config.max_message_bytes = settings.max_message_bytes;
        }
        Ok((Some(next), settings))
    }

    /// A new catalog where topic `name` has `count` partitions, more than it has now.
    /// Existing partitions keep their shards; new ones are placed as at creation (keys
    /// map to partitions by count, so producers' keyed partitions move, as in Kafka).
    pub fn with_partitions(
        &self,
        name: &str,
        count: i32,
        nshards: u32,
    ) -> Result<Catalog, CatalogError> {
        let current = self.topic(name)?.config.partitions;
        if count <= current || count > PARTITIONS_MAX {
            return Err(CatalogError::InvalidPartitions(format!(
                "topic '{name}' has {current} partitions; the new count must be more, \
                 and at most {PARTITIONS_MAX}, got {count}"
            )));
        }
        let mut next = self.clone();
        next.version += 1;
        if let Some(meta) = next.topics.get_mut(name) {
            meta.placement
                .extend((current..count).map(|p| place_partition(name, p, nshards)));
            meta.config.partitions = count;
        }
        Ok(next)
    }

    /// A new catalog with queue `name` declared; `None` when it already exists with
    /// exactly these settings (a redeclare changes nothing).
    pub fn with_queue(
        &self,
        name: &str,
        config: QueueConfig,
        now_ms: i64,
    ) -> Result<Option<Catalog>, CatalogError> {
        validate_topic_name(name)?;
        config
            .validate()
            .map_err(|e| CatalogError::InvalidQueueConfig(format!("queue '{name}': {e}")))?;
        if let Some(existing) = self.queues.get(name) {
            // The owner tag is the front end's to check (AMQP answers another
            // connection's exclusive queue with its own error).
            let ours = QueueConfig {
                exclusive: existing.config.exclusive.clone(),
                ..config
            };
            if existing.config == ours {
                return Ok(None);
            }
            return Err(CatalogError::QueueMismatch(name.to_string()));
        }
        let mut next = self.clone();
        next.version += 1;
        next.next_topic_id += 1;
        next.queues.insert(
            name.to_string(),
            QueueMeta {
                name: name.to_string(),
                id: self.next_topic_id,
                config,
                created_ms: now_ms,
                modified_ms: now_ms,
                attributes: BTreeMap::new(),
                tags: BTreeMap::new(),
            },
        );
        Ok(Some(next))
    }

    /// A new catalog with queue `name`'s settings changed (same id: the open queue
    /// takes them, `Queue::reconfigure`); `None` when the change changes nothing.
    pub fn with_queue_change(
        &self,
        name: &str,
        change: &QueueChange,
        now_ms: i64,
    ) -> Result<Option<Catalog>, CatalogError> {
        let meta = self.queue(name)?;
        let config = change.apply(&meta.config);
        config
            .validate()
            .map_err(|e| CatalogError::InvalidQueueConfig(format!("queue '{name}': {e}")))?;
        let attributes = QueueChange::apply_map(&meta.attributes, &change.attributes);
        let tags = QueueChange::apply_map(&meta.tags, &change.tags);
        if attributes.len() > QUEUE_ATTRIBUTES_MAX || tags.len() > QUEUE_TAGS_MAX {
            return Err(CatalogError::InvalidQueueConfig(format!(
                "queue '{name}': at most {QUEUE_ATTRIBUTES_MAX} attributes and {QUEUE_TAGS_MAX} tags (it would have {} and {})",
                attributes.len(),
                tags.len()
            )));
        }
        if config == meta.config && attributes == meta.attributes && tags == meta.tags {
            return Ok(None);
        }
        let mut next = self.clone();
        next.version += 1;
        if let Some(meta) = next.queues.get_mut(name) {
            meta.config = config;
            meta.attributes = attributes;
            meta.tags = tags;
            // Never before its creation, whatever the clock did meanwhile.
            meta.modified_ms = now_ms.max(meta.created_ms);
        }
        Ok(Some(next))
    }

    /// A new catalog without queue `name`; returns the removed queue too.
    pub fn without_queue(&self, name: &str) -> Result<(Catalog, QueueMeta), CatalogError> {
        let mut next = self.clone();
        let removed = next
            .queues
            .remove(name)
            .ok_or_else(|| CatalogError::UnknownQueue(name.to_string()))?;
        // Bindings to it go with it.
        let gone = BindTarget::Queue(name.to_string());
        next.remove_bindings(|b| b.target == gone);
        next.version += 1;
        Ok((next, removed))
    }

    /// Removes the bindings `remove` picks; an auto-delete exchange that loses its last
    /// binding as a source goes too, with the bindings to it (which may empty another).
    fn remove_bindings(&mut self, remove: impl Fn(&Binding) -> bool) {
        let mut emptied: Vec<String> = Vec::new();
        let sources_before: Vec<String> =
            self.bindings.iter().map(|b| b.exchange.clone()).collect();
        self.bindings.retain(|b| !remove(b));
        let mut candidates = sources_before;
        // Each round removes at least one exchange, so this ends within their count.
        while !candidates.is_empty() {
            candidates.sort();
            candidates.dedup();
            let lost: Vec<String> = candidates
                .drain(..)
                .filter(|x| {
                    self.exchanges.get(x).is_some_and(|m| m.auto_delete)
                        && !self.bindings.iter().any(|b| &b.exchange == x)
                        && !emptied.contains(x)
                })
                .collect();
            for x in lost {
                self.exchanges.remove(&x);
                let to_it = BindTarget::Exchange(x.clone());
                candidates.extend(
                    self.bindings
                        .iter()
                        .filter(|b| b.target == to_it)
                        .map(|b| b.exchange.clone()),
                );
                self.bindings.retain(|b| b.target != to_it);
                emptied.push(x);
            }
        }
    }

    /// A new catalog with RabbitMQ's standard exchanges declared where missing; `None`
    /// when every one is there already.
    pub fn with_standard_exchanges(&self) -> Option<Catalog> {
        let missing: Vec<_> = STANDARD_EXCHANGES
            .iter()
            .filter(|(name, _)| !self.exchanges.contains_key(*name))
            .collect();
        if missing.is_empty() {
            return None;
        }
        let mut next = self.clone();
        next.version += 1;
        for (name, kind) in missing {
            next.exchanges
                .insert(name.to_string(), ExchangeMeta::new(*kind));
        }
        Some(next)
    }

    /// A new catalog without what does not outlive a broker run: queues that are not
    /// durable or are exclusive to a connection, and exchanges that are not durable
    /// (as in RabbitMQ), each with its bindings; and the removed queues. `None` when
    /// there is nothing to remove. Called when the broker starts.
    pub fn without_transient(&self) -> Option<(Catalog, Vec<QueueMeta>)> {
        let queues: Vec<String> = self
            .queues
            .values()
            .filter(|q| !q.config.durable || q.config.exclusive.is_some())
            .map(|q| q.name.clone())
            .collect();
        let exchanges: Vec<String> = self
            .exchanges
            .iter()
            .filter(|(_, meta)| !meta.durable)
            .map(|(name, _)| name.clone())
            .collect();
        if queues.is_empty() && exchanges.is_empty() {
            return None;
        }
        let mut next = self.clone();
        let mut removed = Vec::with_capacity(queues.len());
        for name in queues {
            if let Some(meta) = next.queues.remove(&name) {
                removed.push(meta);
            }
            let gone = BindTarget::Queue(name);
            next.remove_bindings(|b| b.target == gone);
        }
        for name in exchanges {
            next.exchanges.remove(&name);
            let gone = BindTarget::Exchange(name.clone());
            next.remove_bindings(|b| b.exchange == name || b.target == gone);
        }
        next.version += 1;
        Some((next, removed))
    }

    /// A new catalog with exchange `name`; `None` when it exists with these settings.
    pub fn with_exchange(
        &self,
        name: &str,
        meta: ExchangeMeta,
    ) -> Result<Option<Catalog>, CatalogError> {
        if is_reserved_exchange(name) {
            return Err(CatalogError::ReservedExchange(name.to_string()));
        }
        validate_topic_name(name)?;
        match self.exchanges.get(name) {
            Some(m) if *m == meta => return Ok(None),
            Some(_) => return Err(CatalogError::ExchangeMismatch(name.to_string())),
            None => {}
        }
        let mut next = self.clone();
        next.version += 1;
        next.exchanges.insert(name.to_string(), meta);
        Ok(Some(next))
    }

    /// A new catalog without exchange `name` and the bindings where it is the source
    /// or the target; with `if_unused`, refused while it is the source of a binding.
    pub fn without_exchange(&self, name: &str, if_unused: bool) -> Result<Catalog, CatalogError> {
        if is_reserved_exchange(name) {
            return Err(CatalogError::ReservedExchange(name.to_string()));
        }
        if !self.exchanges.contains_key(name) {
            return Err(CatalogError::UnknownExchange(name.to_string()));
        }
        if if_unused && self.bindings.iter().any(|b| b.exchange == name) {
            return Err(CatalogError::ExchangeInUse(name.to_string()));
        }
        let mut next = self.clone();
        next.exchanges.remove(name);
        let to_it = BindTarget::Exchange(name.to_string());
        next.remove_bindings(|b| b.exchange == name || b.target == to_it);
        next.version += 1;
        Ok(next)
    }

    /// A new catalog with `binding` (its exchange and target must exist); `None` when
    /// the same binding is there already.
    pub fn with_binding(&self, binding: Binding) -> Result<Option<Catalog>, CatalogError> {
        if !self.exchanges.contains_key(&binding.exchange) {
            return Err(CatalogError::UnknownExchange(binding.exchange));
        }
        match &binding.target {
            BindTarget::Queue(q) => {
                self.queue(q)?;
            }
            BindTarget::Topic(t) => {
                self.topic(t)?;
            }
            BindTarget::Exchange(x) => {
                if !self.exchanges.contains_key(x) {
                    return Err(CatalogError::UnknownExchange(x.clone()));
                }
            }
        }
        if self.bindings.contains(&binding) {
            return Ok(None);
        }
        let mut next = self.clone();
        next.version += 1;
        next.bindings.push(binding);
        Ok(Some(next))
    }

    pub fn without_binding(&self, binding: &Binding) -> Result<Catalog, CatalogError> {
        if !self.bindings.contains(binding) {
            return Err(CatalogError::UnknownBinding(format!(
                "{} -> {:?} ({})",
                binding.exchange, binding.target, binding.routing_key
            )));
        }
        let mut next = self.clone();
        next.remove_bindings(|b| b == binding);
        next.version += 1;
        Ok(next)
    }

    /// A new catalog with `changes` applied, each on its own: the result of each, and
    /// the new catalog when at least one changed something (`None`: all refused).
    pub fn with_user_changes(
        &self,
        changes: Vec<UserChange>,
    ) -> (Option<Catalog>, Vec<Result<(), UserError>>) {
        let mut users = self.users.clone();
        let results: Vec<_> = changes.into_iter().map(|c| users.apply(c)).collect();
        if !results.iter().any(Result::is_ok) {
            return (None, results);
        }
        let mut next = self.clone();
        next.users = users;
        next.version += 1;
        (Some(next), results)
    }

    /// A new catalog with `bindings` added, each on its own (adding one that exists
    /// succeeds and changes nothing): the result of each, and the new catalog when one
    /// was added.
    pub fn with_acls(
        &self,
        bindings: Vec<AclBinding>,
    ) -> (Option<Catalog>, Vec<Result<(), AclError>>) {
        let mut acls = self.acls.clone();
        let mut added = false;
        let results = bindings
            .into_iter()
            .map(|b| acls.add(b).map(|new| added |= new))
            .collect();
        if !added {
            return (None, results);
        }
        let mut next = self.clone();
        next.acls = acls;
        next.version += 1;
        (Some(next), results)
    }

    /// A new catalog without the bindings each filter matches, and those bindings per
    /// filter (one matched by two filters is listed under both, as Kafka answers);
    /// `None` when no filter matched anything.
    pub fn without_acls(&self, filters: &[AclFilter]) -> (Option<Catalog>, Vec<Vec<AclBinding>>) {
        let mut acls = self.acls.clone();
        let matched: Vec<Vec<AclBinding>> = filters.iter().map(|f| self.acls.matching(f)).collect();
        let mut removed = 0;
        for f in filters {
            removed += acls.remove_matching(f).len();
        }
        if removed == 0 {
            return (None, matched);
        }
        let mut next = self.clone();
        next.acls = acls;
        next.version += 1;
        (Some(next), matched)
    }

    /// The bindings of one exchange.
    pub fn bindings_of(&self, exchange: &str) -> Vec<&Binding> {
        self.bindings
            .iter()
            .filter(|b| b.exchange == exchange)
            .collect()
    }

    pub fn queue(&self, name: &str) -> Result<&QueueMeta, CatalogError> {
        self.queues
            .get(name)
            .ok_or_else(|| CatalogError::UnknownQueue(name.to_string()))
    }

    /// A new catalog without `name`; returns the removed topic too.
    pub fn without_topic(&self, name: &str) -> Result<(Catalog, TopicMeta), CatalogError> {
        let mut next = self.clone();
        let removed = next
            .topics
            .remove(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        let gone = BindTarget::Topic(name.to_string());
        next.remove_bindings(|b| b.target == gone);
        next.version += 1;
        Ok((next, removed))
    }

    pub fn topic(&self, name: &str) -> Result<&TopicMeta, CatalogError> {
        self.topics
            .get(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))
    }

    /// Loads the catalog, or an empty one when the file does not exist yet.
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let err = |reason: String| CatalogError::Storage {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::metadata(path) {
            Ok(m) if m.len() > CATALOG_BYTES_MAX => {
                return Err(err(format!(
                    "{} bytes is more than a catalog may be ({CATALOG_BYTES_MAX})",
                    m.len()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Catalog::default()),
            _ => {}
        }
        match std::fs::read(path) {
            // The catalog says which topics, queues and exchanges exist: the broker
            // does not start on a damaged one (it would drop or invent acknowledged
            // declarations).
            Ok(bytes) => Catalog::decode(&bytes).map_err(|reason| {
                err(format!(
                    "{reason}; the broker will not start on a damaged catalog (restore the                      file from a backup)"
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Parses a catalog file (checksummed, `checked_file`, or the bare JSON of older
    /// releases) and checks what the broker trusts it for: names that are safe in
    /// paths, partition counts within `PARTITIONS_MAX` with one placement each (handlers
    /// size vectors and open directories by them), settings create accepts.
    pub fn decode(bytes: &[u8]) -> Result<Catalog, String> {
        if bytes.len() as u64 > CATALOG_BYTES_MAX {
            return Err(format!("catalog of {} bytes is too large", bytes.len()));
        }
        let body = checked_file::open(bytes)?.body();
        let catalog: Catalog = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        catalog.check().map_err(|e| e.to_string())?;
        Ok(catalog)
    }

    fn check(&self) -> Result<(), CatalogError> {
        let invalid = |what: String| CatalogError::InvalidConfig(what);
        for (key, t) in &self.topics {
            validate_topic_name(&t.name)?;
            if *key != t.name {
                return Err(invalid(format!("topic '{}' is filed as '{key}'", t.name)));
            }
            if t.config.partitions < 1 || t.config.partitions > PARTITIONS_MAX {
                return Err(invalid(format!(
                    "topic '{key}' has {} partitions",
                    t.config.partitions
                )));
            }
            if t.placement.len() != t.config.partitions as usize {
                return Err(invalid(format!(
                    "topic '{key}' places {} of its {} partitions",
                    t.placement.len(),
                    t.config.partitions
                )));
            }
            if t.config.segment_bytes < SEGMENT_BYTES_MIN {
                return Err(invalid(format!(
                    "topic '{key}' has a segment size below the minimum"
                )));
            }
        }
        for (key, q) in &self.queues {
            validate_topic_name(&q.name)?;
            if *key != q.name {
                return Err(invalid(format!("queue '{}' is filed as '{key}'", q.name)));
            }
        }
        for name in self.exchanges.keys() {
            validate_topic_name(name)?;
        }
        Ok(())
    }

    /// Writes the catalog atomically (temp file, fsync, rename, fsync of the directory)
    /// on the shard's blocking thread, so the shard keeps serving meanwhile. Call it
    /// inside a shard's executor; elsewhere use `save_blocking`.
    pub async fn save(&self, path: &Path) -> Result<(), CatalogError> {
        let catalog = self.clone();
        let path = path.to_owned();
        glommio::executor()
            .spawn_blocking(move || catalog.save_blocking(&path))
            .await
    }

    /// `save` with blocking file calls, for threads that are not shards (tests, tools).
    pub fn save_blocking(&self, path: &Path) -> Result<(), CatalogError> {
        let err = |reason: String| CatalogError::Storage {
            path: path.display().to_string(),
            reason,
        };
        let dir = path
            .parent()
            .ok_or_else(|| err("no parent directory".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.to_string()))?;
        let bytes = checked_file::frame(&json);
        // A catalog `load` would refuse must never be written: the broker could not
        // start again. The change that made it this large is refused instead.
        if bytes.len() as u64 > CATALOG_BYTES_MAX {
            return Err(err(format!(
                "{} bytes is more than a catalog may be ({CATALOG_BYTES_MAX}); the change is \
                 refused (delete unused topics, queues or bindings)",
                bytes.len()
            )));
        }
        // Owner-only: the file holds SCRAM keys and SigV4 secrets (`security::users`).
        // On an error the catalog in place is still the previous one.
        crate::replace_file::replace(path, &bytes, CATALOG_FILE_MODE).map_err(|e| {
            if crate::log::is_out_of_space(&e) {
                CatalogError::StorageFull {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            } else {
                err(e.to_string())
            }
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn config(partitions: i32) -> TopicConfig {
        TopicConfig {
            partitions,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            max_message_bytes: None,
        }
    }

    #[test]
    fn a_topics_max_message_bytes_persists_and_an_older_catalog_loads_without_it() {
        let mut bounded = config(1);
        bounded.max_message_bytes = Some(4096);
        let cat = Catalog::default()
            .with_topic("t", bounded, 1, 0)
            .expect("valid");
        assert_eq!(reencoded(&cat), Ok(cat.clone()));
        let mut json: serde_json::Value = serde_json::to_value(&cat).expect("encodes");
        let fields = json["topics"]["t"]["config"]
            .as_object_mut()
            .expect("an object");
        assert!(
            fields.remove("max_message_bytes").is_some(),
            "written when set"
        );
        let old = Catalog::decode(&serde_json::to_vec(&json).expect("encodes")).expect("loads");
        assert_eq!(
            old.topics["t"].config,
            config(1),
            "the broker's default applies"
        );
    }

    #[test]
    fn topic_settings_change_in_a_new_version_and_are_validated() {
        let cat = Catalog::default()
            .with_topic("t", config(2), 1, 0)
            .expect("valid topic");
        let same = TopicSettingsChange::all(cat.topics["t"].config.settings());
        assert!(cat
            .with_topic_settings("t", &same)
            .expect("valid")
            .0
            .is_none());
        let shorter = TopicSettings {
            retention_ms: Some(60_000),
            retention_bytes: Some(1 << 20),
            segment_bytes: SEGMENT_BYTES_MIN,
            max_message_bytes: Some(2048),
        };
        let (next, settings) = cat
            .with_topic_settings("t", &TopicSettingsChange::all(shorter))
            .expect("valid");
        let next = next.expect("changed");
        assert_eq!(settings, shorter);
        assert_eq!(next.version, cat.version + 1);
        assert_eq!(next.topics["t"].config.settings(), shorter);
        assert_eq!(next.topics["t"].config.partitions, 2, "partitions kept");
        assert_eq!(
            next.topics["t"].id, cat.topics["t"].id,
            "same topic, same files"
        );
        // A change of one key keeps the others as they are then.
        let one = TopicSettingsChange {
            retention_bytes: Some(None),
            ..TopicSettingsChange::default()
        };
        let (_, settings) = next.with_topic_settings("t", &one).expect("valid");
        assert_eq!(
            settings,
            TopicSettings {
                retention_bytes: None,
                ..shorter
            }
        );
        for bad in [
            TopicSettings {
                retention_ms: Some(0),
                ..shorter
            },
            TopicSettings {
                segment_bytes: SEGMENT_BYTES_MIN - 1,
                ..shorter
            },
            TopicSettings {
                segment_bytes: SEGMENT_BYTES_MAX + 1,
                ..shorter
            },
        ] {
            assert!(matches!(
                cat.with_topic_settings("t", &TopicSettingsChange::all(bad)),
                Err(CatalogError::InvalidConfig(_))
            ));
        }
        assert!(matches!(
            cat.with_topic_settings("u", &same),
            Err(CatalogError::UnknownTopic(_))
        ));
    }

    #[test]
    fn a_catalog_too_large_to_load_is_never_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("topics.json");
        let mut cat = Catalog::default()
            .with_topic("t", config(1), 1, 0)
            .expect("valid topic")
            .with_exchange("x", ExchangeMeta::new(ExchangeKind::Direct))
            .expect("valid exchange")
            .expect("new");
        cat.save_blocking(&path)
            .expect("a small catalog is written");
        let key = "k".repeat(1 << 20);
        for i in 0..=(CATALOG_BYTES_MAX >> 20) {
            cat.bindings.push(Binding {
                exchange: "x".into(),
                target: BindTarget::Topic("t".into()),
                routing_key: format!("{i}{key}"),
                headers: Vec::new(),
                match_all: false,
            });
        }
        let refused = cat.save_blocking(&path);
        assert!(
            matches!(&refused, Err(CatalogError::Storage { reason, .. }) if reason.contains("refused")),
            "{refused:?}"
        );
        let kept = Catalog::load(&path).expect("the last good catalog still loads");
        assert!(kept.bindings.is_empty());
    }

    #[test]
    fn placement_spreads_partitions_over_every_shard() {
        let cat = Catalog::default()
            .with_topic("orders", config(8), 4, 0)
            .expect("valid topic");
        let meta = cat.topic("orders").expect("exists");
        let mut per_shard = [0; 4];
        for p in 0..8 {
            per_shard[meta.owner(p, 4).expect("partition") as usize] += 1;
        }
        assert_eq!(per_shard, [2, 2, 2, 2]);
    }

    #[test]
    fn owner_wraps_when_restarted_with_fewer_shards() {
        let cat = Catalog::default()
            .with_topic("t", config(4), 8, 0)
            .expect("valid topic");
        let meta = cat.topic("t").expect("exists");
        for p in 0..4 {
            assert!(meta.owner(p, 2).expect("partition") < 2);
        }
        assert_eq!(meta.owner(4, 2), None);
        assert_eq!(meta.owner(-1, 2), None);
    }

    #[test]
    fn added_partitions_keep_the_old_placement_and_only_grow() {
        let c = Catalog::default()
            .with_topic("grow", config(3), 4, 0)
            .expect("create");
        let before = c.topic("grow").expect("topic").placement.clone();
        let next = c.with_partitions("grow", 7, 4).expect("grow");
        let meta = next.topic("grow").expect("topic");
        assert_eq!(meta.config.partitions, 7);
        assert_eq!(meta.placement[..3], before[..]);
        assert_eq!(meta.placement[6], place_partition("grow", 6, 4));
        assert!(next.version > c.version);
        assert!(matches!(
            next.with_partitions("grow", 7, 4),
            Err(CatalogError::InvalidPartitions(_))
        ));
        assert!(matches!(
            next.with_partitions("nope", 9, 4),
            Err(CatalogError::UnknownTopic(_))
        ));
    }

    #[test]
    fn bad_names_and_duplicates_are_refused() {
        let cat = Catalog::default();
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(250)] {
            assert!(matches!(
                cat.with_topic(bad, config(1), 1, 0),
                Err(CatalogError::InvalidName(_))
            ));
        }
        let cat = cat.with_topic("a", config(1), 1, 0).expect("valid");
        assert_eq!(
            cat.with_topic("a", config(1), 1, 0),
            Err(CatalogError::TopicExists("a".into()))
        );
        assert!(cat.with_topic("b", config(0), 1, 0).is_err());
    }

    fn one_topic() -> Catalog {
        Catalog::default()
            .with_topic("orders", config(3), 2, 1)
            .expect("valid topic")
    }

    fn reencoded(catalog: &Catalog) -> Result<Catalog, String> {
        Catalog::decode(&serde_json::to_vec(catalog).expect("encodes"))
    }

    #[test]
    fn users_and_acls_change_in_new_catalogs_and_read_back_from_the_file() {
        use crate::security::{
            AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType,
            ScramMechanism, UserChange, UserError,
        };
        let cat = one_topic();
        let set = UserChange::SetPassword {
            name: "alice".into(),
            password: "pw".into(),
            iterations: 4096,
        };
        let unknown = UserChange::Delete {
            name: "bob".into(),
            mechanism: None,
        };
        let (next, results) = cat.with_user_changes(vec![set, unknown]);
        let next = next.expect("one change succeeded");
        assert_eq!(results[0], Ok(()));
        assert_eq!(results[1], Err(UserError::UnknownUser("bob".into())));
        assert_eq!(next.version, cat.version + 1);
        assert!(cat.users.is_empty(), "the old snapshot is unchanged");
        let (none, _) =
            next.with_user_changes(vec![UserChange::RemoveAccessKey { id: "x".into() }]);
        assert_eq!(none, None, "nothing changed");
        let read = AclBinding {
            resource_type: ResourceType::Topic,
            name: "a".into(),
            pattern: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        };
        let (with, results) = next.with_acls(vec![read.clone(), read.clone()]);
        let with = with.expect("added");
        assert_eq!(results, [Ok(()), Ok(())]);
        assert_eq!(with.with_acls(vec![read.clone()]).0, None, "already there");
        // Through the file's encoding and its checks.
        let back = reencoded(&with).expect("loads");
        assert_eq!(back, with);
        assert!(back.users.verify_password("alice", "pw"));
        assert!(back
            .users
            .scram_credential("alice", ScramMechanism::Sha512)
            .is_some());
        assert!(back.acls.authorize(
            "User:alice",
            "127.0.0.1".parse().expect("ip"),
            Operation::Describe,
            ResourceType::Topic,
            "a"
        ));
        let (without, removed) = back.without_acls(&[AclFilter::any(), AclFilter::exact(&read)]);
        assert_eq!(removed, [vec![read.clone()], vec![read]]);
        assert!(without.expect("removed").acls.is_empty());
        // A damaged credential in the file stops the load, as any damaged entry does.
        let mut json: serde_json::Value = serde_json::to_value(&with).expect("encodes");
        json["users"]["alice"]["scram"]["Sha256"]["iterations"] = 1.into();
        assert!(Catalog::decode(&serde_json::to_vec(&json).expect("encodes")).is_err());
        // A catalog written before users and ACLs loads with none.
        let mut json: serde_json::Value = serde_json::to_value(&with).expect("encodes");
        let fields = json.as_object_mut().expect("an object");
        assert!(fields.remove("users").is_some() && fields.remove("acls").is_some());
        let old = Catalog::decode(&serde_json::to_vec(&json).expect("encodes")).expect("loads");
        assert!(old.users.is_empty() && old.acls.is_empty());
    }

    #[test]
    fn a_catalog_file_with_counts_or_names_create_refuses_does_not_load() {
        assert_eq!(reencoded(&one_topic()), Ok(one_topic()));
        let mut bad = one_topic();
        bad.topics
            .get_mut("orders")
            .expect("topic")
            .config
            .partitions = -1;
        assert!(reencoded(&bad).is_err(), "negative partition count");
        let mut bad = one_topic();
        bad.topics
            .get_mut("orders")
            .expect("topic")
            .config
            .partitions = 4;
        assert!(reencoded(&bad).is_err(), "a partition without placement");
        let mut bad = one_topic();
        bad.topics.get_mut("orders").expect("topic").name = "../../etc".into();
        assert!(
            reencoded(&bad).is_err(),
            "a name that climbs out of the data dir"
        );
        let mut bad = one_topic();
        let meta = bad.topics.remove("orders").expect("topic");
        bad.topics.insert("other".into(), meta);
        assert!(reencoded(&bad).is_err(), "filed under another name");
    }

    #[test]
    fn catalog_survives_save_and_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("meta").join("topics.json");
        assert_eq!(Catalog::load(&path).expect("empty"), Catalog::default());
        let cat = Catalog::default()
            .with_topic("a", config(3), 2, 7)
            .expect("valid");
        cat.save_blocking(&path).expect("saved");
        assert_eq!(Catalog::load(&path).expect("loaded"), cat);
        let (without, removed) = cat.without_topic("a").expect("exists");
        assert_eq!(removed.name, "a");
        assert!(without.topics.is_empty());
        assert!(without.version > cat.version);
    }

    #[test]
    fn queue_bounds_persist_and_a_catalog_without_them_loads() {
        use crate::queues::Overflow;
        let bounded = QueueConfig {
            max_length: Some(10),
            max_bytes: Some(1 << 20),
            overflow: Overflow::RejectPublish,
            ..QueueConfig::default()
        };
        let cat = Catalog::default()
            .with_queue("jobs", bounded.clone(), 1)
            .expect("valid")
            .expect("new");
        assert_eq!(reencoded(&cat), Ok(cat.clone()));
        // A catalog written before the bounds existed: none of their fields.
        let mut json: serde_json::Value = serde_json::to_value(&cat).expect("encodes");
        let config = &mut json["queues"]["jobs"]["config"];
        let fields = config.as_object_mut().expect("an object");
        for field in ["max_length", "max_bytes", "overflow"] {
            assert!(fields.remove(field).is_some(), "{field} was written");
        }
        let old = Catalog::decode(&serde_json::to_vec(&json).expect("encodes")).expect("loads");
        let config = &old.queue("jobs").expect("queue").config;
        assert_eq!(
            (config.max_length, config.max_bytes, config.overflow),
            (None, None, Overflow::DropHead)
        );
    }

    #[test]
    fn a_queue_declared_with_settings_it_cannot_serve_is_refused() {
        let over = [
            QueueConfig {
                visibility_timeout_ms: crate::queues::VISIBILITY_TIMEOUT_MS_MAX + 1,
                ..QueueConfig::default()
            },
            QueueConfig {
                delay_ms: crate::queues::DELAY_MS_MAX + 1,
                ..QueueConfig::default()
            },
            QueueConfig {
                receive_wait_ms: crate::queues::RECEIVE_WAIT_MAX_MS + 1,
                ..QueueConfig::default()
            },
        ];
        for config in over {
            let refused = Catalog::default().with_queue("q", config, 1);
            assert!(
                matches!(refused, Err(CatalogError::InvalidQueueConfig(_))),
                "{refused:?}"
            );
        }
        let at_the_limits = QueueConfig {
            delay_ms: crate::queues::DELAY_MS_MAX,
            receive_wait_ms: crate::queues::RECEIVE_WAIT_MAX_MS,
            ..QueueConfig::default()
        };
        assert!(Catalog::default().with_queue("q", at_the_limits, 1).is_ok());
    }

    #[test]
    fn a_queue_change_keeps_its_id_bumps_the_version_and_is_validated() {
        let cat = Catalog::default()
            .with_queue("q", QueueConfig::default(), 10)
            .expect("valid")
            .expect("new");
        let meta = cat.queue("q").expect("queue").clone();
        assert_eq!(meta.last_modified_ms(), 10);
        let change = QueueChange {
            visibility_timeout_ms: Some(5_000),
            dead_letter: Some(Some(("dlq".to_string(), 3))),
            ..QueueChange::default()
        };
        let next = cat.with_queue_change("q", &change, 20).expect("valid");
        let next = next.expect("a change");
        let changed = next.queue("q").expect("queue");
        assert_eq!((changed.id, changed.created_ms), (meta.id, 10));
        assert_eq!(
            (next.version, changed.last_modified_ms()),
            (cat.version + 1, 20)
        );
        let c = &changed.config;
        assert_eq!(c.visibility_timeout_ms, 5_000);
        assert_eq!(
            (c.dead_letter.as_deref(), c.max_deliveries),
            (Some("dlq"), Some(3))
        );
        assert_eq!(reencoded(&next), Ok(next.clone()));
        let same = next.with_queue_change("q", &change, 30).expect("valid");
        assert_eq!(same, None, "nothing to change");
        let off = QueueChange {
            dead_letter: Some(None),
            ..QueueChange::default()
        };
        let off = next.with_queue_change("q", &off, 30).expect("valid");
        let off = off.expect("a change");
        let c = &off.queue("q").expect("queue").config;
        assert_eq!((c.dead_letter.as_deref(), c.max_deliveries), (None, None));
        let over = QueueChange {
            delay_ms: Some(crate::queues::DELAY_MS_MAX + 1),
            ..QueueChange::default()
        };
        let over = next.with_queue_change("q", &over, 30);
        assert!(
            matches!(over, Err(CatalogError::InvalidQueueConfig(_))),
            "{over:?}"
        );
        let missing = next.with_queue_change("nope", &change, 30);
        assert!(
            matches!(missing, Err(CatalogError::UnknownQueue(_))),
            "{missing:?}"
        );
        // A catalog written before `modified_ms`: the creation time stands in.
        let mut json: serde_json::Value = serde_json::to_value(&cat).expect("encodes");
        let fields = json["queues"]["q"].as_object_mut().expect("an object");
        assert!(fields.remove("modified_ms").is_some());
        let old = Catalog::decode(&serde_json::to_vec(&json).expect("encodes")).expect("loads");
        assert_eq!(old.queue("q").expect("queue").last_modified_ms(), 10);
    }

    #[test]
    fn queue_attributes_and_tags_change_durably_within_their_bounds() {
        let cat = Catalog::default()
            .with_queue("q", QueueConfig::default(), 10)
            .expect("valid")
            .expect("new");
        let set = |pairs: &[(&str, Option<&str>)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect::<BTreeMap<_, _>>()
        };
        let change = QueueChange {
            attributes: set(&[("ContentBasedDeduplication", Some("true"))]),
            tags: set(&[("team", Some("orders")), ("env", Some("dev"))]),
            ..QueueChange::default()
        };
        let next = cat.with_queue_change("q", &change, 20).expect("valid");
        let next = next.expect("a change");
        let meta = next.queue("q").expect("queue");
        assert_eq!(meta.tags.len(), 2);
        assert_eq!(
            meta.attributes
                .get("ContentBasedDeduplication")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(reencoded(&next), Ok(next.clone()));
        let same = next.with_queue_change("q", &change, 30).expect("valid");
        assert_eq!(same, None, "nothing to change");
        let untag = QueueChange {
            tags: set(&[("env", None), ("absent", None)]),
            ..QueueChange::default()
        };
        let untagged = next.with_queue_change("q", &untag, 30).expect("valid");
        let untagged = untagged.expect("a change");
        let tags = &untagged.queue("q").expect("queue").tags;
        assert_eq!(tags.keys().collect::<Vec<_>>(), ["team"]);
        let too_many = QueueChange {
            tags: (0..=QUEUE_TAGS_MAX)
                .map(|i| (format!("k{i}"), Some("v".to_string())))
                .collect(),
            ..QueueChange::default()
        };
        let over = cat.with_queue_change("q", &too_many, 30);
        assert!(
            matches!(over, Err(CatalogError::InvalidQueueConfig(_))),
            "{over:?}"
        );
        // A catalog written before tags and attributes reads as having none.
        let mut json: serde_json::Value = serde_json::to_value(&cat).expect("encodes");
        let fields = json["queues"]["q"].as_object_mut().expect("an object");
        assert!(fields.remove("tags").is_some() && fields.remove("attributes").is_some());
        let old = Catalog::decode(&serde_json::to_vec(&json).expect("encodes")).expect("loads");
        assert!(old.queue("q").expect("queue").tags.is_empty());
    }

    #[test]
    fn sqs_queue_settings_persist_and_an_older_catalog_loads_with_todays_behaviour() {
        let sqs = QueueConfig {
            delay_ms: 2000,
            max_message_bytes: Some(2048),
            receive_wait_ms: 3000,
            dead_letter_on_expiry: false,
            ..QueueConfig::default()
        };
        let cat = Catalog::default()
            .with_queue("sqs", sqs, 1)
            .expect("valid")
            .expect("new");
        assert_eq!(reencoded(&cat), Ok(cat.clone()));
        let mut json: serde_json::Value = serde_json::to_value(&cat).expect("encodes");
        let config = &mut json["queues"]["sqs"]["config"];
        let fields = config.as_object_mut().expect("an object");
        let new = [
            "delay_ms",
            "max_message_bytes",
            "receive_wait_ms",
            "dead_letter_on_expiry",
        ];
        for field in new {
            assert!(fields.remove(field).is_some(), "{field} was written");
        }
        let old = Catalog::decode(&serde_json::to_vec(&json).expect("encodes")).expect("loads");
        let config = &old.queue("sqs").expect("queue").config;
        assert_eq!(*config, QueueConfig::default(), "what a queue did before");
        assert!(config.dead_letter_on_expiry);
    }

    #[test]
    fn a_catalog_saved_from_a_shard_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("meta").join("topics.json");
        let cat = Catalog::default()
            .with_topic("a", config(3), 2, 7)
            .expect("valid");
        let saved = cat.clone();
        let at = path.clone();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move { saved.save(&at).await.expect("saved") })
            .expect("start executor")
            .join()
            .expect("executor ran");
        assert_eq!(Catalog::load(&path).expect("loaded"), cat);
        assert!(
            !crate::replace_file::tmp_path(&path).exists(),
            "the temporary file is renamed"
        );
        let mode = std::fs::metadata(&path)
            .expect("saved")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            CATALOG_FILE_MODE,
            "owner-only: it holds credentials"
        );
    }

    fn exchange_binding(from: &str, target: BindTarget) -> Binding {
        Binding {
            exchange: from.into(),
            target,
            routing_key: String::new(),
            headers: Vec::new(),
            match_all: false,
        }
    }

    fn with_x(c: Catalog, name: &str, meta: ExchangeMeta) -> Catalog {
        c.with_exchange(name, meta).expect("valid").expect("new")
    }

    fn bound(c: Catalog, b: Binding) -> Catalog {
        c.with_binding(b).expect("valid").expect("new")
    }

    #[test]
    fn a_catalog_written_before_exchange_flags_loads() {
        let json = r##"{"version": 3, "next_topic_id": 1, "topics": {},
            "exchanges": {"logs": "Topic", "all": "Fanout"},
            "bindings": [{"exchange": "logs", "target": {"Topic": "t"},
                          "routing_key": "#", "headers": [], "match_all": false}]}"##;
        let old = Catalog::decode(json.as_bytes()).expect("an old catalog loads");
        assert_eq!(
            old.exchanges["logs"],
            ExchangeMeta::new(ExchangeKind::Topic)
        );
        assert_eq!(
            old.exchanges["all"],
            ExchangeMeta::new(ExchangeKind::Fanout)
        );
        assert_eq!(old.bindings.len(), 1);
        // Written back, it keeps every flag.
        let mut meta = ExchangeMeta::new(ExchangeKind::Direct);
        meta.internal = true;
        meta.alternate = Some("all".into());
        let newer = with_x(old, "flags", meta.clone());
        assert_eq!(reencoded(&newer).expect("loads").exchanges["flags"], meta);
    }

    #[test]
    fn exchanges_redeclare_only_with_equal_settings_and_reserved_names_are_refused() {
        let c = with_x(
            Catalog::default(),
            "x",
            ExchangeMeta::new(ExchangeKind::Direct),
        );
        assert_eq!(
            c.with_exchange("x", ExchangeMeta::new(ExchangeKind::Direct)),
            Ok(None)
        );
        let mut durable_not = ExchangeMeta::new(ExchangeKind::Direct);
        durable_not.durable = false;
        assert!(matches!(
            c.with_exchange("x", durable_not),
            Err(CatalogError::ExchangeMismatch(_))
        ));
        for reserved in ["", "amq.direct", "amq.custom"] {
            let meta = ExchangeMeta::new(ExchangeKind::Fanout);
            assert!(matches!(
                c.with_exchange(reserved, meta),
                Err(CatalogError::ReservedExchange(_))
            ));
            assert!(matches!(
                c.without_exchange(reserved, false),
                Err(CatalogError::ReservedExchange(_))
            ));
        }
        let std = c.with_standard_exchanges().expect("added");
        assert_eq!(std.exchanges["amq.match"].kind, ExchangeKind::Headers);
        assert!(std.exchanges["amq.topic"].durable);
        assert_eq!(std.with_standard_exchanges(), None);
    }

    #[test]
    fn deleting_an_exchange_takes_its_bindings_both_ways_and_if_unused_refuses() {
        let fanout = || ExchangeMeta::new(ExchangeKind::Fanout);
        let c = Catalog::default()
            .with_queue("q", QueueConfig::default(), 0)
            .expect("valid")
            .expect("new");
        let c = with_x(
            with_x(with_x(c, "a", fanout()), "b", fanout()),
            "c",
            fanout(),
        );
        let c = bound(c, exchange_binding("a", BindTarget::Exchange("b".into())));
        let c = bound(c, exchange_binding("b", BindTarget::Queue("q".into())));
        let c = bound(c, exchange_binding("c", BindTarget::Queue("q".into())));
        assert!(matches!(
            c.without_exchange("b", true),
            Err(CatalogError::ExchangeInUse(_))
        ));
        let missing = exchange_binding("a", BindTarget::Exchange("nope".into()));
        assert!(matches!(
            c.with_binding(missing),
            Err(CatalogError::UnknownExchange(_))
        ));
        let without = c.without_exchange("b", false).expect("deleted");
        assert_eq!(
            without.bindings,
            [exchange_binding("c", BindTarget::Queue("q".into()))]
        );
        // Unused (a source of nothing), if-unused deletes it.
        without.without_exchange("a", true).expect("unused");
    }

    #[test]
    fn an_auto_delete_exchange_goes_with_its_last_source_binding() {
        let mut auto = ExchangeMeta::new(ExchangeKind::Fanout);
        auto.auto_delete = true;
        let c = Catalog::default()
            .with_queue("q1", QueueConfig::default(), 0)
            .and_then(|c| c.expect("new").with_queue("q2", QueueConfig::default(), 0))
            .expect("valid")
            .expect("new");
        // Declared without bindings, it stays.
        let c = with_x(c, "auto", auto.clone());
        let c = with_x(c, "upstream", auto);
        let c = bound(c, exchange_binding("auto", BindTarget::Queue("q1".into())));
        let c = bound(c, exchange_binding("auto", BindTarget::Queue("q2".into())));
        let c = bound(
            c,
            exchange_binding("upstream", BindTarget::Exchange("auto".into())),
        );
        let one_left = c
            .without_binding(&exchange_binding("auto", BindTarget::Queue("q1".into())))
            .expect("unbound");
        assert!(one_left.exchanges.contains_key("auto"));
        // Its last binding goes with its target's deletion; then upstream loses its
        // only binding (to auto) and goes too.
        let (gone, _) = one_left.without_queue("q2").expect("deleted");
        assert!(!gone.exchanges.contains_key("auto"), "{:?}", gone.exchanges);
        assert!(!gone.exchanges.contains_key("upstream"));
        assert!(gone.bindings.is_empty());
    }

    #[test]
    fn queue_lifecycle_settings_persist_and_transient_queues_and_exchanges_go_at_start() {
        let transient = QueueConfig {
            durable: false,
            ..QueueConfig::default()
        };
        let exclusive = QueueConfig {
            exclusive: Some("conn-1".into()),
            auto_delete: true,
            expires_ms: Some(1000),
            dead_letter_routing_key: Some("dead".into()),
            ..QueueConfig::default()
        };
        let c = Catalog::default()
            .with_queue("t", transient, 0)
            .and_then(|c| c.expect("new").with_queue("e", exclusive.clone(), 0))
            .and_then(|c| {
                c.expect("new")
                    .with_queue("kept", QueueConfig::default(), 0)
            })
            .expect("valid")
            .expect("new");
        assert_eq!(reencoded(&c), Ok(c.clone()));
        // Another owner tag is no mismatch (the front end checks owners); another
        // expiry is.
        let other_owner = QueueConfig {
            exclusive: Some("conn-2".into()),
            ..exclusive.clone()
        };
        assert_eq!(c.with_queue("e", other_owner, 0), Ok(None));
        let other_expiry = QueueConfig {
            expires_ms: Some(2000),
            ..exclusive
        };
        assert!(matches!(
            c.with_queue("e", other_expiry, 0),
            Err(CatalogError::QueueMismatch(_))
        ));
        let c = with_x(c, "x", ExchangeMeta::new(ExchangeKind::Fanout));
        let c = bound(c, exchange_binding("x", BindTarget::Queue("t".into())));
        let mut transient = ExchangeMeta::new(ExchangeKind::Fanout);
        transient.durable = false;
        let c = with_x(c, "passing", transient);
        let c = bound(
            c,
            exchange_binding("passing", BindTarget::Queue("kept".into())),
        );
        let c = bound(
            c,
            exchange_binding("x", BindTarget::Exchange("passing".into())),
        );
        let (start, removed) = c.without_transient().expect("some");
        let mut names: Vec<_> = removed.iter().map(|q| q.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["e", "t"]);
        assert_eq!(start.queues.keys().collect::<Vec<_>>(), ["kept"]);
        assert_eq!(start.exchanges.keys().collect::<Vec<_>>(), ["x"]);
        assert!(start.bindings.is_empty(), "{:?}", start.bindings);
        assert_eq!(start.without_transient(), None);
        // A catalog written before these settings: durable, shared, kept.
        let mut json: serde_json::Value = serde_json::to_value(&start).expect("encodes");
        let fields = json["queues"]["kept"]["config"]
            .as_object_mut()
            .expect("an object");
        for field in [
            "durable",
            "exclusive",
            "auto_delete",
            "expires_ms",
            "dead_letter_routing_key",
        ] {
            assert!(fields.remove(field).is_some(), "{field} was written");
        }
        let old = Catalog::decode(&serde_json::to_vec(&json).expect("encodes")).expect("loads");
        assert_eq!(
            old.queue("kept").expect("queue").config,
            QueueConfig::default()
        );
    }
}
