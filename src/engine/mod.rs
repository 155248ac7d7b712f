//! The engine: one typed API, per core, over everything the shards own. Every front
//! end (`native`, `kafka`, and the ones to come) calls an `Engine` and nothing else;
//! the engine finds the shard that owns what a call touches (`placement`), runs the
//! call there (`mesh`: a closure sent to the owner, in a bounded budget of calls in
//! flight) and answers with its own types (`types`) or its one error (`error`).
//!
//! What lives here: `shard` (one core's state: partitions, queues, groups, catalog),
//! `partitions` (produce, fetch, offsets), `queues` (publish, receive, settle,
//! subscriptions' pulls, dead letters, timers), `groups`, `admin` (topics, queues,
//! exchanges on the controller; metadata), `exchanges` (routing a publish),
//! `subscription` (a push subscription as an object), `security` (users, ACLs, the
//! authorization check every front end makes), `start` (a shard's engine coming
//! up: mesh, catalog, background work).
//!
//! A new protocol is a new front-end module that maps its requests to these methods and
//! `EngineError` to its codes; nothing here changes. A new operation is a method here
//! and a line in each front end that offers it.

pub mod admin;
pub mod error;
pub mod exchanges;
pub mod groups;
pub mod mesh;
pub mod moves;
mod observe;
pub mod partitions;
pub mod placement;
pub mod producer_ids;
pub mod queues;
pub mod security;
pub mod shard;
mod sns;
pub mod start;
pub mod subscription;
pub mod transactions;
pub mod types;

pub use admin::ExchangeChange;
pub use error::EngineError;
pub use mesh::CallClass;
pub use placement::{Object, CONTROLLER_SHARD};
pub(crate) use sns::{
    for_each_record as sns_records, forget_window as forget_dedup_window, restore_backing_logs,
};
pub use sns::{
    sns_message_id, sns_sequence_number, SnsPublished, SNS_DEDUP_IDS_MAX, SNS_DEDUP_WINDOW_MS,
    SNS_PROTOCOLS,
};
pub use subscription::Subscription;
pub use types::*;

use crate::config::ServerConfig;
use crate::shutdown::ShardShutdown;
use bytes::{Bytes, BytesMut};
use shard::Shard;
use std::future::Future;
use std::rc::Rc;

/// The engine as one shard's front ends see it. Cheap to clone; lives on its shard.
#[derive(Clone)]
pub struct Engine {
    shard: Rc<Shard>,
}

impl Engine {
    pub fn new(shard: Rc<Shard>) -> Engine {
        Engine { shard }
    }

    pub(crate) fn shard(&self) -> &Rc<Shard> {
        &self.shard
    }

    pub fn shard_id(&self) -> u32 {
        self.shard.id
    }

    pub fn shard_count(&self) -> u32 {
        self.shard.nshards
    }

    pub fn config(&self) -> &ServerConfig {
        &self.shard.config
    }

    pub fn shutdown(&self) -> &ShardShutdown {
        &self.shard.shutdown
    }

    /// The shard that owns `object`.
    pub fn owner(&self, object: Object<'_>) -> Result<u32, EngineError> {
        self.shard.owner_of(object)
    }

    pub fn topic_exists(&self, name: &str) -> bool {
        self.shard.catalog().topic(name).is_ok()
    }

    /// The topic's own `max.message.bytes`, from this shard's catalog snapshot (`None`:
    /// unknown topic, or the broker's default applies).
    pub fn topic_max_message_bytes(&self, name: &str) -> Option<u32> {
        self.shard.topic_max_message_bytes(name)
    }

    /// Runs `job` on `owner` (inline when that is this shard) and returns its answer.
    pub(crate) async fn on_owner<T, F, Fut>(
        &self,
        owner: u32,
        class: CallClass,
        job: F,
    ) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, EngineError>> + 'static,
    {
        if owner == self.shard.id {
            return job(self.shard.clone()).await;
        }
        self.shard.router.invoke(owner, class, job).await?
    }

    /// Runs `work` on shard `owner` with that shard's engine (inline when that is this
    /// shard) and returns its answer. Outside the cross-core call budgets: for a front
    /// end that moves a connection to the shard that owns what it uses, where the
    /// connection then lives (bounded by `--max-connections`, not by calls in flight).
    pub async fn run_on<T, F, Fut>(&self, owner: u32, work: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(Engine) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        if owner == self.shard.id {
            return Ok(work(self.clone()).await);
        }
        let job = move |shard: Rc<Shard>| work(Engine::new(shard));
        self.shard.router.run_unbudgeted(owner, job).await
    }

    /// The owner of a partition, counting a call that will run elsewhere.
    fn partition_owner(&self, topic: &str, partition: i32) -> Result<u32, EngineError> {
        let owner = self.owner(Object::Partition { topic, partition })?;
        if owner != self.shard.id {
            self.shard.forwarded.set(self.shard.forwarded.get() + 1);
        }
        Ok(owner)
    }

    // ---- partitions ----

    /// Appends record batches to a partition. With `Acks::None` the caller owes its
    /// client no answer, whatever this returns.
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        acks: Acks,
        batches: BytesMut,
    ) -> Result<Produced, EngineError> {
        self.produce_as(CallClass::Client, topic, partition, acks, batches)
            .await
    }

    pub(crate) async fn produce_as(
        &self,
        class: CallClass,
        topic: &str,
        partition: i32,
        acks: Acks,
        batches: BytesMut,
    ) -> Result<Produced, EngineError> {
        let owner = self.partition_owner(topic, partition)?;
        if owner == self.shard.id {
            return partitions::produce(&self.shard, topic, partition, acks, batches).await;
        }
        let topic = topic.to_string();
        let job = move |s: Rc<Shard>| async move {
            partitions::produce(&s, &topic, partition, acks, batches).await
        };
        self.shard.router.invoke(owner, class, job).await?
    }

    /// Record batches from `args.offset` on, waiting up to `args.max_wait_ms` for
    /// `args.min_bytes`.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        args: FetchArgs,
    ) -> Result<Fetched, EngineError> {
        let class = if args.max_wait_ms > 0 {
            CallClass::LongPoll
        } else {
            CallClass::Client
        };
        self.fetch_as(class, topic, partition, args).await
    }

    pub(crate) async fn fetch_as(
        &self,
        class: CallClass,
        topic: &str,
        partition: i32,
        args: FetchArgs,
    ) -> Result<Fetched, EngineError> {
        let owner = self.partition_owner(topic, partition)?;
        if owner == self.shard.id {
            return partitions::fetch(&self.shard, topic, partition, args).await;
        }
        let topic = topic.to_string();
        let job =
            move |s: Rc<Shard>| async move { partitions::fetch(&s, &topic, partition, args).await };
        self.shard.router.invoke(owner, class, job).await?
    }

    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<i64, EngineError> {
        self.list_offsets_as(CallClass::Client, topic, partition, spec)
            .await
    }

    pub(crate) async fn list_offsets_as(
        &self,
        class: CallClass,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<i64, EngineError> {
        let owner = self.partition_owner(topic, partition)?;
        let topic = topic.to_string();
        let job = move |s: Rc<Shard>| async move {
            partitions::list_offsets(&s, &topic, partition, spec).await
        };
        self.on_owner(owner, class, job).await
    }

    /// Deletes the records below `offset` (-1: all); answers the new start offset.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, EngineError> {
        let owner = self.owner(Object::Partition { topic, partition })?;
        let topic = topic.to_string();
        let job = move |s: Rc<Shard>| async move {
            partitions::delete_records(&s, &topic, partition, offset).await
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    pub async fn partition_stats(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionStats, EngineError> {
        let owner = self.owner(Object::Partition { topic, partition })?;
        let topic = topic.to_string();
        let job = move |s: Rc<Shard>| async move { partitions::stats(&s, &topic, partition) };
        self.on_owner(owner, CallClass::Client, job).await
    }

    // ---- topics and metadata ----

    /// Topics (all when `None`; an unknown name is an error) and every shard's port.
    pub fn metadata(&self, topics: Option<Vec<String>>) -> Result<Metadata, EngineError> {
        admin::metadata(&self.shard, topics)
    }

    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, EngineError> {
        admin::describe_topic(self, name).await
    }

    pub async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<(), EngineError> {
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move { admin::create_topic(&s, &name, config).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), EngineError> {
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move { admin::delete_topic(&s, &name).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// Changes a topic's retention and segment size (`admin::alter_topic`); answers
    /// its settings afterwards.
    pub async fn alter_topic(
        &self,
        name: &str,
        change: TopicSettingsChange,
    ) -> Result<TopicSettings, EngineError> {
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move { admin::alter_topic(&s, &name, change).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<(), EngineError> {
        let topic = topic.to_string();
        let job =
            move |s: Rc<Shard>| async move { admin::create_partitions(&s, &topic, count).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// A new producer id, or (KIP-360) the next epoch of a known one: (id, epoch).
    pub async fn init_producer_id(
        &self,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(i64, i16), EngineError> {
        let job = move |s: Rc<Shard>| async move {
            admin::init_producer_id(&s, producer_id, epoch).await
        };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// Counters of one shard (`shard` modulo the shard count).
    pub async fn shard_counters(&self, shard: u32) -> Result<ShardCounters, EngineError> {
        let job = |s: Rc<Shard>| async move {
            Ok(ShardCounters {
                shard: s.id,
                partition_requests: s.partition_requests.get(),
                forwarded: s.forwarded.get(),
            })
        };
        self.on_owner(shard % self.shard.nshards.max(1), CallClass::Client, job)
            .await
    }

    // ---- consumer groups ----

    pub async fn join_group(&self, args: JoinArgs) -> Result<Joined, EngineError> {
        let owner = self.owner(Object::Group(&args.group))?;
        let job = move |s: Rc<Shard>| async move { groups::join(&s, args).await };
        // A join waits for the rebalance: a long poll.
        self.on_owner(owner, CallClass::LongPoll, job).await
    }

    pub async fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), EngineError> {
        let owner = self.owner(Object::Group(group))?;
        let (group, member_id) = (group.to_string(), member_id.to_string());
        let job = move |s: Rc<Shard>| async move {
            groups::heartbeat(&s, &group, &member_id, generation)
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<(), EngineError> {
        let owner = self.owner(Object::Group(group))?;
        let (group, member_id) = (group.to_string(), member_id.to_string());
        let job = move |s: Rc<Shard>| async move { groups::leave(&s, &group, &member_id) };
        self.on_owner(owner, CallClass::Client, job).await
    }

    pub async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: Vec<CommitEntry>,
    ) -> Result<(), EngineError> {
        let owner = self.owner(Object::Group(group))?;
        let (group, member_id) = (group.to_string(), member_id.to_string());
        let job = move |s: Rc<Shard>| async move {
            groups::commit(&s, &group, &member_id, generation, offsets).await
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Whether a transactional producer that names a group member (TxnOffsetCommit v3,
    /// KIP-447) may commit for it: UnknownMember if `member_id` is not in the group,
    /// IllegalGeneration if `generation` is not its current one. An empty member id and
    /// a negative generation pass (a producer outside the group).
    pub async fn check_txn_member(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), EngineError> {
        let owner = self.owner(Object::Group(group))?;
        let (group, member_id) = (group.to_string(), member_id.to_string());
        let job = move |s: Rc<Shard>| async move {
            groups::check_txn_member(&s, &group, &member_id, generation)
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Committed offsets of a group: of `topic`, or of every topic (`None`).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<CommitEntry>, EngineError> {
        let owner = self.owner(Object::Group(group))?;
        let group = group.to_string();
        let topic = topic.map(str::to_string);
        let job = move |s: Rc<Shard>| async move {
            groups::fetch_offsets(&s, &group, topic.as_deref()).await
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, EngineError> {
        let owner = self.owner(Object::Group(group))?;
        let group = group.to_string();
        let job = move |s: Rc<Shard>| async move { Ok(groups::describe(&s, &group)) };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Every group of every shard: (id, state), sorted.
    pub async fn list_groups(&self) -> Result<Vec<(String, String)>, EngineError> {
        let mut all = Vec::new();
        for shard in 0..self.shard.nshards {
            let job = |s: Rc<Shard>| async move { groups::list_here(&s).await };
            all.extend(self.on_owner(shard, CallClass::Client, job).await?);
        }
        all.sort();
        Ok(all)
    }

    /// Deletes a group without members, and its committed offsets.
    /// Deletes a group's committed offsets of `partitions`, but not of topics a member
    /// is subscribed to: per partition, whether it was deleted; `None` for no such group.
    pub async fn delete_offsets(
        &self,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Option<Vec<bool>>, EngineError> {
        let owner = self.owner(Object::Group(group))?;
        let group = group.to_string();
        let job =
            move |s: Rc<Shard>| async move { groups::delete_offsets(&s, &group, partitions).await };
        self.on_owner(owner, CallClass::Client, job).await
    }

    pub async fn delete_group(&self, group: &str) -> Result<(), EngineError> {
        let owner = self.owner(Object::Group(group))?;
        let group = group.to_string();
        let job = move |s: Rc<Shard>| async move { groups::delete(&s, &group).await };
        self.on_owner(owner, CallClass::Client, job).await
    }

    // ---- queues ----

    /// Declares a queue (idempotent with the same settings).
    pub async fn declare_queue(&self, name: &str, config: QueueConfig) -> Result<(), EngineError> {
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move { admin::declare_queue(&s, &name, config).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// `declare_queue`, with the queue's front-end attributes and tags
    /// (`QueueChange::attributes`, `tags`; its other fields must be unset) set in the
    /// same catalog change when the queue is new, so a crash never leaves it without
    /// them. An existing queue with this config is left as it is.
    pub async fn declare_queue_with(
        &self,
        name: &str,
        config: QueueConfig,
        annotations: QueueChange,
    ) -> Result<(), EngineError> {
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move {
            admin::declare_queue_with(&s, &name, config, annotations).await
        };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    pub async fn delete_queue(&self, name: &str) -> Result<(), EngineError> {
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move { admin::delete_queue(&s, &name).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// Deletes a queue as AMQP's `queue.delete` does: refused (`PreconditionFailed`)
    /// with `if_unused` while it has subscriptions, with `if_empty` while it holds
    /// messages (ready, delayed or leased). Answers how many messages were waiting in
    /// it (ready or delayed; leased ones are not counted, as in RabbitMQ's delete-ok).
    /// Its bindings go with it and its subscriptions' `next()` fail.
    pub async fn delete_queue_if(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u64, EngineError> {
        let name = name.to_string();
        let check = admin::DeleteCheck {
            if_unused,
            if_empty,
            id: None,
        };
        let job = move |s: Rc<Shard>| async move { admin::delete_queue_if(&s, &name, check).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// Changes a live queue's settings (SQS SetQueueAttributes): only what
    /// `QueueChange` offers; kept in the catalog (so across restarts), taken by the open
    /// queue at once. Answers the config after the change. A dead-letter target must
    /// exist (`UnknownQueue`); settings out of range are `InvalidRequest`.
    pub async fn alter_queue(
        &self,
        name: &str,
        change: QueueChange,
    ) -> Result<QueueConfig, EngineError> {
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move { admin::alter_queue(&s, &name, change).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    /// A queue's declaration, from this shard's catalog; `None` when it does not exist.
    pub fn queue_config(&self, name: &str) -> Option<QueueConfig> {
        self.shard
            .catalog()
            .queues
            .get(name)
            .map(|m| m.config.clone())
    }

    /// A queue's catalog entry (its id, config and times), from this shard's catalog;
    /// `None` when it does not exist. The id is new with every declaration.
    pub fn queue_meta(&self, name: &str) -> Option<QueueMeta> {
        self.shard.catalog().queues.get(name).cloned()
    }

    pub fn list_queues(&self) -> Vec<(String, QueueConfig)> {
        self.shard
            .catalog()
            .queues
            .values()
            .map(|m| (m.name.clone(), m.config.clone()))
            .collect()
    }

    pub async fn queue_stats(&self, name: &str) -> Result<QueueStats, EngineError> {
        let owner = self.owner(Object::Queue(name))?;
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move { queues::stats(&s, &name) };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Drops every ready message; answers how many.
    pub async fn purge_queue(&self, name: &str) -> Result<u64, EngineError> {
        let owner = self.owner(Object::Queue(name))?;
        let name = name.to_string();
        let job = move |s: Rc<Shard>| async move { queues::purge(&s, &name).await };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Publishes one message; `None`: a FIFO queue dropped it as a duplicate.
    pub async fn publish(
        &self,
        queue: &str,
        spec: PublishSpec,
        body: Bytes,
    ) -> Result<Option<u64>, EngineError> {
        self.publish_as(CallClass::Client, queue, spec, body).await
    }

    pub(crate) async fn publish_as(
        &self,
        class: CallClass,
        queue: &str,
        spec: PublishSpec,
        body: Bytes,
    ) -> Result<Option<u64>, EngineError> {
        let owner = self.owner(Object::Queue(queue))?;
        if owner == self.shard.id {
            return queues::publish(&self.shard, queue, spec, body).await;
        }
        let queue = queue.to_string();
        let job = move |s: Rc<Shard>| async move { queues::publish(&s, &queue, spec, body).await };
        self.shard.router.invoke(owner, class, job).await?
    }

    /// Publishes `bodies` (one after another, `lens` long each), journaled as one batch;
    /// answers how many were stored.
    pub async fn publish_batch(
        &self,
        queue: &str,
        spec: PublishSpec,
        lens: Vec<u32>,
        bodies: Bytes,
    ) -> Result<u32, EngineError> {
        let owner = self.owner(Object::Queue(queue))?;
        if owner == self.shard.id {
            return queues::publish_batch(&self.shard, queue, spec, &lens, bodies).await;
        }
        let queue = queue.to_string();
        let job = move |s: Rc<Shard>| async move {
            queues::publish_batch(&s, &queue, spec, &lens, bodies).await
        };
        self.shard
            .router
            .invoke(owner, CallClass::Client, job)
            .await?
    }

    /// Publishes each entry with its own settings (SQS SendMessageBatch): all or none
    /// are stored, in one journal append, and the answer (their ids, in order) comes
    /// after one wait for the disk when any entry asks for `durable`. On a FIFO queue an
    /// entry whose `dedup_id` was seen within `DEDUP_WINDOW_MS` (before, or earlier in
    /// the call) is not stored again: its id is the original's. Entries may not carry
    /// origin ids (`InvalidRequest`); a body over the queue's `max_message_bytes` fails
    /// the call (`MessageTooLarge`).
    pub async fn publish_each(
        &self,
        queue: &str,
        entries: Vec<PublishEntry>,
    ) -> Result<Vec<u64>, EngineError> {
        let owner = self.owner(Object::Queue(queue))?;
        if owner == self.shard.id {
            return queues::publish_each(&self.shard, queue, entries).await;
        }
        let queue = queue.to_string();
        let job =
            move |s: Rc<Shard>| async move { queues::publish_each(&s, &queue, entries).await };
        self.shard
            .router
            .invoke(owner, CallClass::Client, job)
            .await?
    }

    /// Pull receive: up to `max` messages, waiting up to `wait_ms` for the first;
    /// `auto_ack` settles them on delivery (at-most-once) instead of leasing.
    pub async fn receive(
        &self,
        queue: &str,
        max: u32,
        wait_ms: u32,
        auto_ack: bool,
    ) -> Result<Received, EngineError> {
        let args = ReceiveArgs {
            max,
            wait_ms,
            auto_ack,
            visibility_ms: None,
            first_receive: false,
        };
        self.receive_leasing(queue, args).await
    }

    /// `receive`, with leases of `args.visibility_ms` when given (SQS's per-receive
    /// `VisibilityTimeout`; over `VISIBILITY_TIMEOUT_MS_MAX` is `InvalidRequest`).
    pub async fn receive_leasing(
        &self,
        queue: &str,
        args: ReceiveArgs,
    ) -> Result<Received, EngineError> {
        let owner = self.owner(Object::Queue(queue))?;
        if owner == self.shard.id {
            return queues::receive(&self.shard, queue, args).await;
        }
        let class = if args.wait_ms > 0 {
            CallClass::LongPoll
        } else {
            CallClass::Client
        };
        let queue = queue.to_string();
        let job = move |s: Rc<Shard>| async move { queues::receive(&s, &queue, args).await };
        self.shard.router.invoke(owner, class, job).await?
    }

    /// `receive_leasing` retried safely (SQS FIFO's ReceiveRequestAttemptId): within
    /// `ATTEMPT_WINDOW_MS` of a receive with the same `attempt`, while every lease that
    /// receive handed out still holds (not deleted, not timed out, not changed to 0), the
    /// same answer again (same messages, same lease handles); otherwise a receive whose
    /// answer is remembered under `attempt`. At most `ATTEMPTS_MAX` ids and
    /// `ATTEMPT_BYTES_MAX` bytes of answers per queue.
    pub async fn receive_attempt(
        &self,
        queue: &str,
        args: ReceiveArgs,
        attempt: String,
    ) -> Result<Received, EngineError> {
        let owner = self.owner(Object::Queue(queue))?;
        if owner == self.shard.id {
            return queues::receive_attempt(&self.shard, queue, args, attempt).await;
        }
        let class = if args.wait_ms > 0 {
            CallClass::LongPoll
        } else {
            CallClass::Client
        };
        let queue = queue.to_string();
        let job = move |s: Rc<Shard>| async move {
            queues::receive_attempt(&s, &queue, args, attempt).await
        };
        self.shard.router.invoke(owner, class, job).await?
    }

    /// Starts a message move task from queue `source` (`moves`): to `destination`, or
    /// each message back to the queue it was dead-lettered from; at most
    /// `max_per_second` (`None`: as fast as it goes). One task runs per source
    /// (`InvalidRequest` while one does).
    pub async fn start_move(
        &self,
        source: &str,
        destination: Option<String>,
        max_per_second: Option<u32>,
    ) -> Result<moves::MoveTask, EngineError> {
        let owner = self.owner(Object::Queue(source))?;
        let source = source.to_string();
        let job = move |s: Rc<Shard>| async move {
            moves::start(&s, &source, destination, max_per_second).await
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Cancels queue `source`'s running move task `id`; `None` when none such runs.
    pub async fn cancel_move(
        &self,
        source: &str,
        id: u64,
    ) -> Result<Option<moves::MoveTask>, EngineError> {
        let owner = self.owner(Object::Queue(source))?;
        let source = source.to_string();
        let job = move |s: Rc<Shard>| async move { moves::cancel(&s, &source, id).await };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Queue `source`'s move tasks, newest first (the last `MOVE_TASKS_KEPT`; they
    /// outlive restarts).
    pub async fn move_tasks(&self, source: &str) -> Result<Vec<moves::MoveTask>, EngineError> {
        let owner = self.owner(Object::Queue(source))?;
        let source = source.to_string();
        let job = move |s: Rc<Shard>| async move { moves::list(&s, &source) };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Ends or changes leases; an error names the handles that were not leases.
    pub async fn settle(&self, queue: &str, settle: Settle) -> Result<(), EngineError> {
        let owner = self.owner(Object::Queue(queue))?;
        let queue = queue.to_string();
        let job = move |s: Rc<Shard>| async move { queues::settle(&s, &queue, settle).await };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Acks leases, each only if its handle still leases the message it names. Answers
    /// per entry, in order: `true` settled, `false` not a live lease of that message
    /// (ended, timed out, or another message's). The settled ones are on disk first.
    pub async fn ack_leases(
        &self,
        queue: &str,
        leases: Vec<LeaseRef>,
    ) -> Result<Vec<bool>, EngineError> {
        let owner = self.owner(Object::Queue(queue))?;
        let queue = queue.to_string();
        let job = move |s: Rc<Shard>| async move { queues::ack_leases(&s, &queue, &leases).await };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Sets each lease to end `timeout_ms` from now (0: visible again at once), each
    /// only if its handle still leases the message it names; answers per entry as
    /// `ack_leases`. A timeout over `VISIBILITY_TIMEOUT_MS_MAX` fails the whole call
    /// (`InvalidRequest`).
    pub async fn change_visibility(
        &self,
        queue: &str,
        changes: Vec<(LeaseRef, u64)>,
    ) -> Result<Vec<bool>, EngineError> {
        let owner = self.owner(Object::Queue(queue))?;
        let queue = queue.to_string();
        let job =
            move |s: Rc<Shard>| async move { queues::change_visibility(&s, &queue, &changes) };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// A push subscription: up to `prefetch` leases at once until it is dropped; then
    /// every lease it holds returns to the queue.
    pub fn subscribe(&self, queue: &str, prefetch: u32, auto_ack: bool) -> Subscription {
        Subscription::new(self.clone(), queue, prefetch, auto_ack)
    }

    // ---- exchanges ----

    pub async fn change_exchanges(&self, change: ExchangeChange) -> Result<(), EngineError> {
        let job = move |s: Rc<Shard>| async move { admin::change_exchanges(&s, change).await };
        self.on_owner(CONTROLLER_SHARD, CallClass::Client, job)
            .await
    }

    pub fn list_exchanges(&self) -> Exchanges {
        exchanges::list(&self.shard)
    }

    /// Routes one message through an exchange (the default exchange "" routes to the
    /// queue named by the routing key) to every matching queue and topic.
    pub async fn publish_to_exchange(
        &self,
        exchange: &str,
        routing_key: &str,
        spec: PublishSpec,
        body: Bytes,
    ) -> Result<Routed, EngineError> {
        exchanges::publish_from_client(&self.shard, (exchange, routing_key), spec, body).await
    }

    /// An exchange's declaration, from this shard's catalog; `None` for the default
    /// exchange "" (never declared) and for names not declared.
    pub fn exchange(&self, name: &str) -> Option<ExchangeMeta> {
        self.shard.catalog().exchanges.get(name).cloned()
    }
}

#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod sns_tests;
#[cfg(test)]
mod tests;
