//! One shard: the partitions, groups and cache owned by one pinned core, and the
//! routing of every request to the shard that owns what it touches.

use super::config::ServerConfig;
use super::producer_ids::ProducerIds;
use super::router::{Reply, Router};
use super::shutdown::ShardShutdown;
use crate::native::messages::{ErrorCode, Request, Response};
use bytes::BytesMut;
use peregrine_shards::catalog::{group_owner, queue_owner, Catalog, TopicMeta};
use peregrine_shards::groups::{GroupConfig, GroupCoordinator};
use peregrine_shards::log::{BatchCache, LogConfig, PartitionLog};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// The shard that writes the catalog (topic create/delete go through it).
pub const CONTROLLER_SHARD: u32 = 0;

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
    /// Used on the controller shard only.
    pub producer_ids: ProducerIds,
    catalog: RefCell<Arc<Catalog>>,
    partitions: RefCell<HashMap<(String, i32), OpenPartition>>,
    /// Message queues this shard owns.
    mq: RefCell<HashMap<String, Rc<super::queues::OpenQueue>>>,
    cache: Rc<BatchCache>,
    /// Partition requests served here, and those forwarded to another shard.
    pub partition_requests: Cell<u64>,
    pub forwarded: Cell<u64>,
    pub queues: super::runtime::Queues,
    /// Serialises catalog changes on the controller (a local async lock, no threads).
    pub admin_lock: glommio::sync::Semaphore,
}

/// Where a request runs.
enum Route {
    Local,
    Shard(u32),
}

pub fn reply(response: Response) -> Option<Reply> {
    Some((response, Vec::new()))
}

impl Shard {
    pub fn new(
        config: Arc<ServerConfig>,
        router: Router,
        shutdown: ShardShutdown,
        shard_ports: Vec<u16>,
        queues: super::runtime::Queues,
    ) -> Shard {
        let id = router.shard_id();
        let groups = GroupCoordinator::new(GroupConfig {
            shard: id,
            shards: config.shards as u32,
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
            producer_ids,
            catalog: RefCell::new(Arc::new(Catalog::default())),
            partitions: RefCell::new(HashMap::new()),
            mq: RefCell::new(HashMap::new()),
            admin_lock: glommio::sync::Semaphore::new(1),
            queues,
            partition_requests: Cell::new(0),
            forwarded: Cell::new(0),
        }
    }

    /// The batch cache's hit and miss counters (for /metrics).
    pub fn cache_counters(&self) -> Arc<peregrine_shards::log::CacheCounters> {
        self.cache.counters()
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
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

    /// Runs `request` where it belongs and returns its answer (`None`: no answer is
    /// owed, as for a produce with acks=none).
    pub async fn dispatch(self: &Rc<Self>, request: Request, payload: BytesMut) -> Option<Reply> {
        let counted = matches!(
            request,
            Request::Produce { .. } | Request::Fetch { .. } | Request::ListOffsets { .. }
        );
        match self.route(&request) {
            Ok(Route::Local) => {
                if counted {
                    self.partition_requests
                        .set(self.partition_requests.get() + 1);
                }
                self.execute(request, payload).await
            }
            Ok(Route::Shard(shard)) => {
                if counted {
                    self.forwarded.set(self.forwarded.get() + 1);
                }
                self.router.call(shard, request, payload).await
            }
            Err(response) => match request {
                Request::Produce {
                    acks: crate::native::messages::Acks::None,
                    ..
                } => None,
                _ => reply(response),
            },
        }
    }

    fn route(&self, request: &Request) -> Result<Route, Response> {
        let owner = match request {
            Request::Produce {
                topic, partition, ..
            }
            | Request::Fetch {
                topic, partition, ..
            }
            | Request::ListOffsets {
                topic, partition, ..
            }
            | Request::DeleteRecords {
                topic, partition, ..
            }
            | Request::PartitionStats { topic, partition } => {
                self.partition_owner(topic, *partition)?
            }
            Request::CreateTopic(_)
            | Request::DeleteTopic { .. }
            | Request::CreatePartitions { .. }
            | Request::DeclareQueue(_)
            | Request::DeleteQueue { .. }
            | Request::DeclareExchange { .. }
            | Request::DeleteExchange { .. }
            | Request::Bind(_)
            | Request::Unbind(_)
            | Request::InitProducerId { .. } => CONTROLLER_SHARD,
            Request::JoinGroup { group, .. }
            | Request::Heartbeat { group, .. }
            | Request::LeaveGroup { group, .. }
            | Request::CommitOffsets { group, .. }
            | Request::FetchOffsets { group, .. }
            | Request::DescribeGroup { group }
            | Request::DeleteGroup { group } => group_owner(group, self.nshards),
            Request::QueueStats { name } | Request::PurgeQueue { name } => {
                queue_owner(name, self.nshards)
            }
            Request::Publish { queue, .. }
            | Request::Receive { queue, .. }
            | Request::Ack { queue, .. }
            | Request::Nack { queue, .. }
            | Request::PublishBatch { queue, .. }
            | Request::SubscriptionPull { queue, .. }
            | Request::Unsubscribe { queue, .. } => queue_owner(queue, self.nshards),
            Request::Metadata { .. }
            | Request::DescribeTopic { .. }
            | Request::ListGroups
            | Request::ListQueues
            | Request::ListExchanges
            | Request::PublishToExchange { .. }
            | Request::Subscribe { .. } => self.id,
            Request::ListShardGroups { shard } | Request::ShardStats { shard } => {
                *shard % self.nshards
            }
        };
        Ok(if owner == self.id {
            Route::Local
        } else {
            Route::Shard(owner)
        })
    }

    /// The shard owning a partition, or the error a client should see.
    pub fn partition_owner(&self, topic: &str, partition: i32) -> Result<u32, Response> {
        let catalog = self.catalog.borrow();
        let meta = catalog
            .topic(topic)
            .map_err(|e| Response::error(ErrorCode::UnknownTopic, e.to_string()))?;
        meta.owner(partition, self.nshards).ok_or_else(|| {
            Response::error(
                ErrorCode::UnknownPartition,
                format!(
                    "topic '{topic}' has no partition {partition} (it has {})",
                    meta.config.partitions
                ),
            )
        })
    }

    /// The open log of a partition this shard owns.
    pub fn partition(&self, topic: &str, partition: i32) -> Result<Rc<PartitionLog>, Response> {
        self.partition_owner(topic, partition)?;
        self.partitions
            .borrow()
            .get(&(topic.to_string(), partition))
            .map(|p| p.log.clone())
            .ok_or_else(|| {
                Response::error(
                    ErrorCode::UnknownPartition,
                    format!(
                        "partition {topic}/{partition} is not open on shard {}",
                        self.id
                    ),
                )
            })
    }

    pub fn open_logs(&self) -> Vec<Rc<PartitionLog>> {
        self.partitions
            .borrow()
            .values()
            .map(|p| p.log.clone())
            .collect()
    }

    async fn execute(self: &Rc<Self>, request: Request, payload: BytesMut) -> Option<Reply> {
        match request {
            Request::Produce {
                topic,
                partition,
                acks,
            } => super::partitions::produce(self, &topic, partition, acks, payload).await,
            Request::Fetch {
                topic,
                partition,
                offset,
                max_bytes,
                max_wait_ms,
                min_bytes,
            } => {
                let fetch = super::partitions::FetchArgs {
                    offset,
                    max_bytes,
                    max_wait_ms,
                    min_bytes,
                };
                super::partitions::fetch(self, &topic, partition, fetch).await
            }
            Request::ListOffsets {
                topic,
                partition,
                spec,
            } => super::partitions::list_offsets(self, &topic, partition, spec).await,
            Request::PartitionStats { topic, partition } => {
                super::partitions::stats(self, &topic, partition)
            }
            Request::DeleteRecords {
                topic,
                partition,
                offset,
            } => super::partitions::delete_records(self, &topic, partition, offset).await,
            Request::Metadata { topics } => super::admin::metadata(self, topics),
            Request::ShardStats { .. } => reply(Response::ShardStats {
                shard: self.id,
                partition_requests: self.partition_requests.get(),
                forwarded: self.forwarded.get(),
            }),
            Request::CreateTopic(spec) => super::admin::create_topic(self, spec).await,
            Request::DeclareQueue(spec) => super::admin::declare_queue(self, spec).await,
            Request::DeleteQueue { name } => super::admin::delete_queue(self, &name).await,
            request @ (Request::DeclareExchange { .. }
            | Request::DeleteExchange { .. }
            | Request::Bind(_)
            | Request::Unbind(_)) => super::admin::change_exchanges(self, request).await,
            Request::ListExchanges => super::exchanges::list(self),
            Request::PublishToExchange {
                exchange,
                routing_key,
                spec,
            } => super::exchanges::publish(self, &exchange, &routing_key, spec, payload).await,
            Request::ListQueues => reply(Response::Queues {
                queues: self
                    .catalog()
                    .queues
                    .values()
                    .map(|m| super::queues::spec_of(&m.name, &m.config))
                    .collect(),
            }),
            request @ (Request::QueueStats { .. }
            | Request::PurgeQueue { .. }
            | Request::Publish { .. }
            | Request::Receive { .. }
            | Request::Ack { .. }
            | Request::Nack { .. }
            | Request::PublishBatch { .. }
            | Request::SubscriptionPull { .. }
            | Request::Unsubscribe { .. }) => {
                let counted = crate::metrics::local::QueueCall::of(&request);
                let answer = super::queues::execute(self, request, payload).await;
                counted.settled(&answer);
                answer
            }
            Request::Subscribe { .. } => reply(Response::error(
                ErrorCode::InvalidRequest,
                "a subscription runs on a client connection",
            )),
            Request::InitProducerId { producer_id, epoch } => {
                super::admin::init_producer_id(self, producer_id, epoch).await
            }
            Request::DeleteTopic { name } => super::admin::delete_topic(self, &name).await,
            Request::CreatePartitions { topic, count } => {
                super::admin::create_partitions(self, &topic, count).await
            }
            Request::DescribeTopic { name } => super::admin::describe_topic(self, &name).await,
            other => super::group_calls::execute(self, other).await,
        }
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
            if meta.owner(self.nshards) != self.id
                || self.mq.borrow().get(&meta.name).map(|q| q.id) == Some(meta.id)
            {
                continue;
            }
            let (owned, data_dir, fsync) = (
                meta.clone(),
                self.config.data_dir.clone(),
                self.config.fsync,
            );
            // Opened from the background queue, so the journal's flusher runs there.
            let open = async move { super::queues::open(&owned, &data_dir, fsync).await };
            let q = super::runtime::spawn_into(open, self.queues.background)
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
            let current = self.partitions.borrow().get(&key).map(|p| p.topic_id);
            if current == Some(meta.id) {
                continue;
            }
            let log_config = LogConfig {
                segment_bytes: meta.config.segment_bytes,
                retention_ms: meta.config.retention_ms,
                retention_bytes: meta.config.retention_bytes,
                fsync: self.config.fsync,
                write_linger: self.config.write_linger,
                producer_id_expiration_ms: self.config.producer_id_expiration_ms,
                ..LogConfig::default()
            };
            let dir = meta.partition_dir(&self.config.data_dir, partition);
            // Opened from the background queue, so its flusher task runs there.
            let open = PartitionLog::open(dir, log_config, self.cache.clone());
            let log = super::runtime::spawn_into(open, self.queues.background)
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
    }
}
