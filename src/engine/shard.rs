//! One shard's state: the partitions, queues, groups and cache owned by one pinned
//! core, and its catalog snapshot. Only the engine touches it; front ends go through
//! `Engine`.

use super::error::EngineError;
use super::mesh::Router;
use super::placement::{self, Object};
use crate::config::ServerConfig;
use crate::engine::producer_ids::ProducerIds;
use crate::runtime;
use crate::shutdown::ShardShutdown;
use peregrine_shards::catalog::{Catalog, TopicMeta};
use peregrine_shards::groups::{GroupConfig, GroupCoordinator};
use peregrine_shards::log::{BatchCache, LogConfig, PartitionLog};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// An open partition log and the topic incarnation it belongs to.
pub struct OpenPartition {
    pub topic_id: u64,
    pub log: Rc<PartitionLog>,
}

/// Everything one core owns. Lives on its shard for the executor's lifetime; only
/// that shard's tasks touch it.
pub struct Shard {
    pub id: u32,
    pub nshards: u32,
    pub config: Arc<ServerConfig>,
    /// Each shard's own native port, by shard index.
    pub shard_ports: Vec<u16>,
    pub router: Router,
    pub shutdown: ShardShutdown,
    pub groups: Rc<GroupCoordinator>,
    /// The transaction coordinator of the transactional ids this shard owns; set once
    /// at start (`transactions::open`), before the shard serves calls.
    pub txn: OnceCell<Rc<super::transactions::Coordinator>>,
    /// Used on the controller shard only.
    pub producer_ids: ProducerIds,
    catalog: RefCell<Arc<Catalog>>,
    partitions: RefCell<HashMap<(String, i32), OpenPartition>>,
    /// Message queues this shard owns.
    mq: RefCell<HashMap<String, Rc<super::queues::OpenQueue>>>,
    cache: Rc<BatchCache>,
    /// Partition calls served here, and those that arrived here and ran on their owner.
    pub partition_requests: Cell<u64>,
    /// Long polls waiting on this shard now (`long_poll_slot`).
    long_polls: Rc<Cell<usize>>,
    pub forwarded: Cell<u64>,
    pub queues: runtime::Queues,
    /// Serialises catalog changes on the controller (a local async lock, no threads).
    pub admin_lock: glommio::sync::Semaphore,
    /// Failed logins per peer, counted across the broker (`--login-failures-per-minute`).
    pub logins: crate::auth::logins::SharedLoginLimiter,
}

impl Shard {
    pub fn new(
        config: Arc<ServerConfig>,
        router: Router,
        shutdown: ShardShutdown,
        shard_ports: Vec<u16>,
        queues: runtime::Queues,
        logins: crate::auth::logins::SharedLoginLimiter,
    ) -> Shard {
        let id = router.shard_id();
        let groups = GroupCoordinator::new(GroupConfig {
            shard: id,
            shards: config.shards as u32,
            max_groups: config.object_limits.max_groups_per_shard,
            ..GroupConfig::new(config.data_dir.join("groups"))
        });
        let producer_ids = ProducerIds::new(config.data_dir.join("meta"));
        Shard {
            id,
            nshards: config.shards as u32,
            cache: BatchCache::new(config.cache_mb << 20),
            config,
            shard_ports,
            router,
            shutdown,
            groups,
            txn: OnceCell::new(),
            producer_ids,
            catalog: RefCell::new(Arc::new(Catalog::default())),
            partitions: RefCell::new(HashMap::new()),
            mq: RefCell::new(HashMap::new()),
            admin_lock: glommio::sync::Semaphore::new(1),
            logins,
            queues,
            partition_requests: Cell::new(0),
            long_polls: Rc::new(Cell::new(0)),
            forwarded: Cell::new(0),
        }
    }

    /// The batch cache's hit and miss counters (for /metrics).
    pub fn cache_counters(&self) -> Arc<peregrine_shards::log::CacheCounters> {
        self.cache.counters()
    }

    /// A place for one more long poll on this shard, held while it waits; `None` at
    /// `--max-long-polls`: the caller answers at once with what it has.
    pub fn long_poll_slot(&self) -> Option<LongPollSlot> {
        let max = self.config.connection_limits.max_long_polls;
        if self.long_polls.get() >= max {
            return None;
        }
        self.long_polls.set(self.long_polls.get() + 1);
        Some(LongPollSlot(self.long_polls.clone()))
    }

    /// Long polls waiting on this shard now.
    pub fn long_polls_waiting(&self) -> usize {
        self.long_polls.get()
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// The topic's own `max.message.bytes` in this shard's catalog snapshot (`None`:
    /// unknown topic, or the broker's default applies).
    pub fn topic_max_message_bytes(&self, topic: &str) -> Option<u32> {
        let catalog = self.catalog.borrow();
        catalog
            .topic(topic)
            .ok()
            .and_then(|t| t.config.max_message_bytes)
    }

    pub fn message_queue(&self, name: &str) -> Option<Rc<super::queues::OpenQueue>> {
        self.mq.borrow().get(name).cloned()
    }

    pub fn message_queues(&self) -> Vec<Rc<super::queues::OpenQueue>> {
        self.mq.borrow().values().cloned().collect()
    }

    pub fn catalog_path(&self) -> std::path::PathBuf {
        self.config.data_dir.join("meta").join("topics.json")
    }

    /// The shard that owns `object`, from this shard's catalog (borrowed, not cloned:
    /// every call asks this).
    pub fn owner_of(&self, object: Object<'_>) -> Result<u32, EngineError> {
        placement::owner(&self.catalog.borrow(), self.nshards, object)
    }

    /// The open log of a partition this shard owns.
    pub fn partition(&self, topic: &str, partition: i32) -> Result<Rc<PartitionLog>, EngineError> {
        let owner = self.owner_of(Object::Partition { topic, partition })?;
        // Placement is a pure function of the topic's name and partition, so the shard
        // that routed here computed the same owner from its own catalog.
        debug_assert_eq!(owner, self.id, "{topic}/{partition} runs on its owner");
        self.partitions
            .borrow()
            .get(&(topic.to_string(), partition))
            .map(|p| p.log.clone())
            .ok_or_else(|| {
                EngineError::UnknownPartition(format!(
                    "partition {topic}/{partition} is not open on shard {}",
                    self.id
                ))
            })
    }

    /// A message queue this shard owns, or the error a client should see.
    pub fn queue(&self, name: &str) -> Result<Rc<super::queues::OpenQueue>, EngineError> {
        debug_assert_eq!(
            self.owner_of(Object::Queue(name)),
            Ok(self.id),
            "queue '{name}' runs on its owner"
        );
        self.message_queue(name).ok_or_else(|| {
            EngineError::UnknownQueue(format!(
                "queue '{name}' does not exist (declare it with `peregrine queue declare {name}`)"
            ))
        })
    }

    pub fn open_logs(&self) -> Vec<Rc<PartitionLog>> {
        self.partitions
            .borrow()
            .values()
            .map(|p| p.log.clone())
            .collect()
    }

    /// Makes `next` this shard's catalog: opens the partitions it now owns first (so no
    /// request is routed here before its log is open), then drops deleted topics.
    pub async fn apply_catalog(&self, next: Arc<Catalog>) -> Result<(), String> {
        if next.version < self.catalog.borrow().version {
            return Ok(());
        }
        for meta in next.topics.values() {
            self.open_owned(meta).await?;
            glommio::yield_if_needed().await;
        }
        for meta in next.queues.values() {
            if meta.owner(self.nshards) != self.id {
                continue;
            }
            let open = self.mq.borrow().get(&meta.name).cloned();
            if let Some(q) = open.filter(|q| q.id == meta.id) {
                // The same queue, its settings perhaps changed (`alter_queue`).
                if q.config_differs(&meta.config) {
                    q.reconfigure(&meta.config);
                }
                continue;
            }
            let (owned, data_dir, fsync) = (
                meta.clone(),
                self.config.data_dir.clone(),
                self.config.fsync,
            );
            // Opened from the background queue, so the journal's flusher runs there.
            let open = async move { super::queues::open(&owned, &data_dir, fsync).await };
            let q = runtime::spawn_into(open, self.queues.background)
                .map_err(|e| format!("opening queue {}: {e}", meta.name))?
                .await?;
            self.mq.borrow_mut().insert(meta.name.clone(), q);
        }
        let gone: Vec<String> = self
            .mq
            .borrow()
            .iter()
            .filter(|(name, q)| next.queues.get(*name).map(|m| m.id) != Some(q.id))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            let removed = self.mq.borrow_mut().remove(&name);
            if let Some(q) = removed {
                q.delete().await;
            }
        }
        *self.catalog.borrow_mut() = next.clone();
        let stale: Vec<(String, i32)> = self
            .partitions
            .borrow()
            .iter()
            .filter(|((topic, _), open)| {
                next.topics.get(topic).map(|m| m.id) != Some(open.topic_id)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            let removed = self.partitions.borrow_mut().remove(&key);
            if let Some(open) = removed {
                if let Err(e) = open.log.delete().await {
                    tracing::warn!(topic = %key.0, partition = key.1, "deleting partition: {e}");
                }
            }
        }
        Ok(())
    }

    async fn open_owned(&self, meta: &TopicMeta) -> Result<(), String> {
        for partition in 0..meta.config.partitions {
            if meta.owner(partition, self.nshards) != Some(self.id) {
                continue;
            }
            let key = (meta.name.clone(), partition);
            let log_config = self.log_config(meta);
            let open = self
                .partitions
                .borrow()
                .get(&key)
                .filter(|p| p.topic_id == meta.id)
                .map(|p| p.log.clone());
            if let Some(log) = open {
                // The same topic, its settings perhaps changed (AlterConfigs).
                log.reconfigure(&log_config);
                continue;
            }
            let dir = meta.partition_dir(&self.config.data_dir, partition);
            // Opened from the background queue, so its flusher task runs there.
            let open = PartitionLog::open(dir, log_config, self.cache.clone());
            let log = runtime::spawn_into(open, self.queues.background)
                .map_err(|e| format!("opening {}/{partition}: {e}", meta.name))?
                .await
                .map_err(|e| format!("opening {}/{partition}: {e}", meta.name))?;
            let open = OpenPartition {
                topic_id: meta.id,
                log,
            };
            let replaced = self.partitions.borrow_mut().insert(key, open);
            if let Some(old) = replaced {
                // The topic was deleted and created again while this shard missed it.
                if let Err(e) = old.log.delete().await {
                    tracing::warn!("deleting a replaced partition: {e}");
                }
            }
        }
        Ok(())
    }

    /// The log settings of a partition of `meta` on this broker.
    fn log_config(&self, meta: &TopicMeta) -> LogConfig {
        LogConfig {
            segment_bytes: meta.config.segment_bytes,
            retention_ms: meta.config.retention_ms,
            retention_bytes: meta.config.retention_bytes,
            fsync: self.config.fsync,
            write_linger: self.config.write_linger,
            producer_id_expiration_ms: self.config.producer_id_expiration_ms,
            ..LogConfig::default()
        }
    }

    /// Flushes and closes every partition and group file; the last step of shutdown.
    pub async fn close(&self) {
        let logs: Vec<_> = self.partitions.borrow_mut().drain().collect();
        for ((topic, partition), open) in logs {
            if let Err(e) = open.log.close().await {
                tracing::error!(%topic, partition, "closing partition: {e}");
            }
        }
        let queues: Vec<_> = self.mq.borrow_mut().drain().collect();
        for (_, q) in queues {
            q.close().await;
        }
        if let Err(e) = self.groups.close().await {
            tracing::error!("closing groups: {e}");
        }
        if let Some(txn) = self.txn.get() {
            if let Err(e) = txn.close().await {
                tracing::error!("closing the transaction log: {e}");
            }
        }
    }
}

/// One waiting long poll's place in its shard's count; given back when dropped, so a
/// long poll that is cancelled (its task dropped) gives it back too.
pub struct LongPollSlot(Rc<Cell<usize>>);

impl Drop for LongPollSlot {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
