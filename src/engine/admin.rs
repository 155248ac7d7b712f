//! Administration and metadata: topics, queues, exchanges and bindings, producer ids.
//! Catalog changes run on the controller shard, which writes the catalog file and then
//! hands the new snapshot to every shard. The controller also enforces the caps on how
//! many topics, partitions (all topics together), queues and exchanges exist
//! (`ObjectLimits`, from `serve --max-*`): a change that would grow a count past its cap
//! is refused with an error naming the flag; a redeclare or a delete never is. Bindings
//! are capped in number and size too, and `Catalog::save` refuses a catalog too large
//! to load again, so no change can keep the broker from starting.

use super::error::EngineError;
use super::mesh::CallClass;
use super::placement::Object;
use super::placement::CONTROLLER_SHARD;
use super::shard::Shard;
use super::types::{
    Binding, ExchangeMeta, Metadata, QueueChange, QueueConfig, ShardInfo, TopicConfig,
    TopicDescription, TopicInfo,
};
use crate::config::ObjectLimits;
use peregrine_shards::catalog::{
    is_reserved_exchange, Catalog, TopicMeta, TopicSettings, TopicSettingsChange,
};
use std::rc::Rc;
use std::sync::Arc;

pub fn topic_info(meta: &TopicMeta, nshards: u32) -> TopicInfo {
    TopicInfo {
        name: meta.name.clone(),
        owners: (0..meta.config.partitions)
            .map(|p| meta.owner(p, nshards).unwrap_or(0))
            .collect(),
        retention_ms: meta.config.retention_ms,
        retention_bytes: meta.config.retention_bytes,
        segment_bytes: meta.config.segment_bytes,
        max_message_bytes: meta.config.max_message_bytes,
    }
}

/// Kafka InitProducerId on the controller: a new id, or the next epoch of a known one.
pub async fn init_producer_id(
    shard: &Rc<Shard>,
    producer_id: i64,
    epoch: i16,
) -> Result<(i64, i16), EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    if producer_id >= 0 && (0..i16::MAX - 1).contains(&epoch) {
        return Ok((producer_id, epoch + 1));
    }
    match shard.producer_ids.allocate().await {
        Ok(producer_id) => Ok((producer_id, 0)),
        Err(e) => {
            tracing::error!("allocating a producer id: {e}");
            Err(EngineError::Internal(format!(
                "allocating a producer id: {e}"
            )))
        }
    }
}

/// Topics (all when `None`) and every shard's own port.
pub fn metadata(shard: &Rc<Shard>, topics: Option<Vec<String>>) -> Result<Metadata, EngineError> {
    let catalog = shard.catalog();
    let mut infos = Vec::new();
    match topics {
        None => infos.extend(
            catalog
                .topics
                .values()
                .map(|m| topic_info(m, shard.nshards)),
        ),
        Some(names) => {
            for name in names {
                infos.push(topic_info(catalog.topic(&name)?, shard.nshards));
            }
        }
    }
    let shards = shard
        .shard_ports
        .iter()
        .enumerate()
        .map(|(i, port)| ShardInfo {
            shard: i as u32,
            port: *port,
        })
        .collect();
    Ok(Metadata {
        shards,
        topics: infos,
    })
}

pub async fn create_topic(
    shard: &Rc<Shard>,
    name: &str,
    config: TopicConfig,
) -> Result<(), EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let partitions = config.partitions;
    let now = crate::time::now_ms();
    let previous = shard.catalog();
    let next = previous.with_topic(name, config, shard.nshards, now)?;
    within_limits(&previous, &next, &shard.config.object_limits)?;
    publish(shard, next).await?;
    tracing::info!(topic = %name, partitions, "topic created");
    Ok(())
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    name: &str,
    count: i32,
) -> Result<(), EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let previous = shard.catalog();
    let next = previous.with_partitions(name, count, shard.nshards)?;
    within_limits(&previous, &next, &shard.config.object_limits)?;
    publish(shard, next).await?;
    tracing::info!(topic = %name, partitions = count, "partitions added");
    Ok(())
}

/// Changes a live topic's retention and segment size (Kafka's AlterConfigs): durable in
/// the catalog, then taken by every owner's open partitions (`Shard::apply_catalog`).
/// Serialized with every other catalog change, so a change applies to the settings the
/// topic has then. Answers the topic's settings afterwards.
pub async fn alter_topic(
    shard: &Rc<Shard>,
    name: &str,
    change: TopicSettingsChange,
) -> Result<TopicSettings, EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let (next, settings) = shard.catalog().with_topic_settings(name, &change)?;
    if let Some(next) = next {
        publish(shard, next).await?;
        tracing::info!(topic = %name, ?settings, "topic settings changed");
    }
    Ok(settings)
}

/// Declares a queue (idempotent with the same settings). A dead-letter target must be an
/// existing queue or exchange.
pub async fn declare_queue(
    shard: &Rc<Shard>,
    name: &str,
    config: QueueConfig,
) -> Result<(), EngineError> {
    declare_queue_with(shard, name, config, QueueChange::default()).await
}

/// `declare_queue` with a new queue's attributes and tags in the same catalog change.
pub async fn declare_queue_with(
    shard: &Rc<Shard>,
    name: &str,
    config: QueueConfig,
    annotations: QueueChange,
) -> Result<(), EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let only_annotations = QueueChange {
        attributes: annotations.attributes.clone(),
        tags: annotations.tags.clone(),
        ..QueueChange::default()
    };
    if annotations != only_annotations {
        return Err(EngineError::InvalidRequest(
            "a declaration sets only attributes and tags beside its config".into(),
        ));
    }
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let catalog = shard.catalog();
    check_dead_letter_target(&catalog, name, config.dead_letter.as_deref())?;
    let expires = config.expires_ms.is_some();
    let now = crate::time::now_ms();
    let Some(next) = catalog.with_queue(name, config, now)? else {
        if expires {
            // A redeclare counts as a use: its expiry starts again.
            touch_queue(shard, name).await?;
        }
        return Ok(());
    };
    let next = match next.with_queue_change(name, &annotations, now)? {
        Some(annotated) => annotated,
        None => next,
    };
    within_limits(&catalog, &next, &shard.config.object_limits)?;
    publish(shard, next).await?;
    tracing::info!(queue = %name, "queue declared");
    Ok(())
}

/// A dead-letter target must exist (a queue or an exchange), or be the queue itself.
fn check_dead_letter_target(
    catalog: &Catalog,
    name: &str,
    target: Option<&str>,
) -> Result<(), EngineError> {
    let Some(target) = target else {
        return Ok(());
    };
    let known =
        target == name || catalog.queue(target).is_ok() || catalog.exchanges.contains_key(target);
    if !known {
        return Err(EngineError::UnknownQueue(format!(
            "dead-letter target '{target}' is neither a queue nor an exchange (declare it first)"
        )));
    }
    Ok(())
}

/// Changes a live queue's settings (`QueueChange`); answers its config after the
/// change. Serialized with every other catalog change, so two changes never lose one
/// another's settings.
pub async fn alter_queue(
    shard: &Rc<Shard>,
    name: &str,
    change: QueueChange,
) -> Result<QueueConfig, EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let catalog = shard.catalog();
    if let Some(Some((target, _))) = &change.dead_letter {
        check_dead_letter_target(&catalog, name, Some(target))?;
    }
    let now = crate::time::now_ms();
    let Some(next) = catalog.with_queue_change(name, &change, now)? else {
        return Ok(catalog.queue(name)?.config.clone());
    };
    let config = next.queue(name)?.config.clone();
    publish(shard, next).await?;
    tracing::info!(queue = %name, "queue settings changed");
    Ok(config)
}

/// One change to the exchanges and their bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeChange {
    /// Idempotent with equal settings; other settings are `PreconditionFailed`.
    Declare {
        name: String,
        meta: ExchangeMeta,
    },
    /// With `if_unused`, refused (`PreconditionFailed`) while the exchange is the
    /// source of a binding. Bindings from and to it go with it.
    Delete {
        name: String,
        if_unused: bool,
    },
    Bind(Binding),
    Unbind(Binding),
}

/// Most bytes of routing key plus header names and values one binding may carry (AMQP
/// routing keys are short strings of at most 255 bytes; headers a few short pairs). With
/// `--max-bindings` it bounds what bindings add to the catalog.
pub const BINDING_ARGUMENTS_MAX_BYTES: usize = 4096;

fn check_binding_size(binding: &Binding) -> Result<(), EngineError> {
    let headers: usize = binding.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    let bytes = binding.routing_key.len() + headers;
    if bytes > BINDING_ARGUMENTS_MAX_BYTES {
        return Err(EngineError::InvalidRequest(format!(
            "binding of exchange '{}': its routing key and headers are {bytes} bytes, more \
             than the {BINDING_ARGUMENTS_MAX_BYTES} a binding may carry",
            binding.exchange
        )));
    }
    Ok(())
}

/// Runs one exchange or binding change on the controller.
pub async fn change_exchanges(
    shard: &Rc<Shard>,
    change: ExchangeChange,
) -> Result<(), EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let catalog = shard.catalog();
    let changed = match change {
        ExchangeChange::Declare { name, meta } => catalog.with_exchange(&name, meta),
        ExchangeChange::Delete { name, if_unused } => {
            catalog.without_exchange(&name, if_unused).map(Some)
        }
        ExchangeChange::Bind(binding) => {
            check_binding_size(&binding)?;
            catalog.with_binding(binding)
        }
        ExchangeChange::Unbind(binding) => catalog.without_binding(&binding).map(Some),
    };
    let Some(next) = changed? else {
        return Ok(());
    };
    within_limits(&catalog, &next, &shard.config.object_limits)?;
    publish(shard, next).await
}

pub async fn delete_queue(shard: &Rc<Shard>, name: &str) -> Result<(), EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    remove_queue(shard, name).await
}

/// What a queue must satisfy to be deleted (`delete_queue_if`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteCheck {
    /// Refused while it has subscriptions.
    pub if_unused: bool,
    /// Refused while it holds messages (ready, delayed or leased).
    pub if_empty: bool,
    /// Only this incarnation (the engine deleting an auto-delete or expired queue must
    /// not delete one declared again under its name meanwhile): `Ok(0)` otherwise.
    pub id: Option<u64>,
}

/// Deletes a queue once its owner says it passes `check`; answers the messages that
/// were waiting in it (ready or delayed).
pub async fn delete_queue_if(
    shard: &Rc<Shard>,
    name: &str,
    check: DeleteCheck,
) -> Result<u64, EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let id = shard.catalog().queue(name)?.id;
    if check.id.is_some_and(|wanted| wanted != id) {
        return Ok(0);
    }
    let usage = queue_usage(shard, name).await?;
    if check.if_unused && usage.subscriptions > 0 {
        return Err(EngineError::PreconditionFailed(format!(
            "queue '{name}' has {} subscriptions (cancel them, or delete without if-unused)",
            usage.subscriptions
        )));
    }
    let held = usage.waiting + usage.in_flight;
    if check.if_empty && held > 0 {
        return Err(EngineError::PreconditionFailed(format!(
            "queue '{name}' holds {held} messages (purge it, or delete without if-empty)"
        )));
    }
    remove_queue(shard, name).await?;
    Ok(usage.waiting)
}

/// Asks a queue's owner how it is used now.
async fn queue_usage(shard: &Rc<Shard>, name: &str) -> Result<super::queues::Usage, EngineError> {
    let engine = super::Engine::new(shard.clone());
    let owner = engine.owner(Object::Queue(name))?;
    let name = name.to_string();
    let job = move |s: Rc<Shard>| async move { super::queues::usage(&s, &name) };
    engine.on_owner(owner, CallClass::Internal, job).await
}

/// Tells a queue's owner it was used (its expiry starts again).
async fn touch_queue(shard: &Rc<Shard>, name: &str) -> Result<(), EngineError> {
    let engine = super::Engine::new(shard.clone());
    let owner = engine.owner(Object::Queue(name))?;
    let name = name.to_string();
    let job = move |s: Rc<Shard>| async move {
        super::queues::touch(&s, &name);
        Ok(())
    };
    engine.on_owner(owner, CallClass::Internal, job).await
}

/// Removes a queue from the catalog and its folder from the disk (the admin lock held).
async fn remove_queue(shard: &Rc<Shard>, name: &str) -> Result<(), EngineError> {
    let (next, removed) = shard.catalog().without_queue(name)?;
    publish(shard, next).await?;
    let dir = removed.dir(&shard.config.data_dir);
    remove_folder(dir, "queue").await;
    tracing::info!(queue = %name, "queue deleted");
    Ok(())
}

pub async fn delete_topic(shard: &Rc<Shard>, name: &str) -> Result<(), EngineError> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let (next, removed) = shard.catalog().without_topic(name)?;
    publish(shard, next).await?;
    // Every owner has deleted its partitions; the topic's own folder goes last.
    let dir = removed.topic_dir(&shard.config.data_dir);
    remove_folder(dir, "topic").await;
    tracing::info!(topic = %name, "topic deleted");
    Ok(())
}

/// How many of each capped object a catalog holds (`ObjectLimits`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectCounts {
    pub topics: usize,
    /// Partitions of every topic together.
    pub partitions: u64,
    pub queues: usize,
    pub exchanges: usize,
    pub bindings: usize,
}

impl ObjectCounts {
    pub fn of(catalog: &Catalog) -> ObjectCounts {
        ObjectCounts {
            topics: catalog.topics.len(),
            partitions: catalog
                .topics
                .values()
                .map(|t| u64::try_from(t.config.partitions).unwrap_or(0))
                .sum(),
            queues: catalog.queues.len(),
            // The standard amq.* exchanges are the broker's, not the clients'.
            exchanges: catalog
                .exchanges
                .keys()
                .filter(|name| !is_reserved_exchange(name))
                .count(),
            bindings: catalog.bindings.len(),
        }
    }
}

/// Refuses a catalog change that grows a count past its cap, and tells the operator
/// (a Kafka auto-creation past the cap shows its client only an unknown topic).
fn within_limits(
    previous: &Catalog,
    next: &Catalog,
    limits: &ObjectLimits,
) -> Result<(), EngineError> {
    let checked = check_growth(ObjectCounts::of(previous), ObjectCounts::of(next), limits);
    if let Err(e) = &checked {
        log_refusal(e);
    }
    checked
}

/// Refusals at a cap are logged at most once per this interval (a client retrying in a
/// loop must not flood the log); the line counts those not logged.
const REFUSAL_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

thread_local! {
    /// When this shard last logged a refusal, and the refusals since.
    static REFUSALS: std::cell::Cell<(Option<std::time::Instant>, u64)> =
        const { std::cell::Cell::new((None, 0)) };
}

fn log_refusal(e: &EngineError) {
    let now = std::time::Instant::now();
    let (last, unlogged) = REFUSALS.get();
    if last.is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_INTERVAL) {
        REFUSALS.set((last, unlogged + 1));
        return;
    }
    REFUSALS.set((Some(now), 0));
    tracing::warn!(not_logged_since = unlogged, "catalog change refused: {e}");
}

/// Refuses growing from `before` to `after` past a cap. Only growth is refused: a
/// broker restarted with lower caps still serves, changes and deletes what it holds.
/// Kafka's CreateTopics answers the topic cap's `InvalidRequest` as POLICY_VIOLATION;
/// its validate-only requests ask this too, with the counts Metadata shows.
pub fn check_growth(
    before: ObjectCounts,
    after: ObjectCounts,
    limits: &ObjectLimits,
) -> Result<(), EngineError> {
    let over = |before: usize, after: usize, max: usize| after > before && after > max;
    if over(before.topics, after.topics, limits.max_topics) {
        return Err(EngineError::InvalidRequest(format!(
            "topic limit reached: the broker holds {} topics and its cap is {} \
             (`peregrine serve --max-topics`); delete unused topics, or raise the cap",
            before.topics, limits.max_topics
        )));
    }
    if after.partitions > before.partitions && after.partitions > limits.max_partitions {
        return Err(EngineError::InvalidPartitions(format!(
            "partition limit reached: {} more partitions would make {} across all \
             topics, over the broker's cap of {} (`peregrine serve --max-partitions`); \
             delete unused topics, or raise the cap",
            after.partitions - before.partitions,
            after.partitions,
            limits.max_partitions
        )));
    }
    if over(before.queues, after.queues, limits.max_queues) {
        return Err(EngineError::InvalidRequest(format!(
            "queue limit reached: the broker holds {} queues and its cap is {} \
             (`peregrine serve --max-queues`); delete unused queues, or raise the cap",
            before.queues, limits.max_queues
        )));
    }
    if over(before.exchanges, after.exchanges, limits.max_exchanges) {
        return Err(EngineError::InvalidRequest(format!(
            "exchange limit reached: the broker holds {} exchanges and its cap is {} \
             (`peregrine serve --max-exchanges`); delete unused exchanges, or raise the cap",
            before.exchanges, limits.max_exchanges
        )));
    }
    if over(before.bindings, after.bindings, limits.max_bindings) {
        return Err(EngineError::InvalidRequest(format!(
            "binding limit reached: the broker holds {} bindings and its cap is {} \
             (`peregrine serve --max-bindings`); remove unused bindings, or raise the cap",
            before.bindings, limits.max_bindings
        )));
    }
    Ok(())
}

/// Persists `next`, then applies it on every shard; the change is visible to clients
/// once this returns. If a shard cannot apply it (a partition that will not open), the
/// previous catalog is restored on disk and on every shard, so the file never lists a
/// topic the shards do not serve. A catalog that cannot be saved (a full or failing
/// disk) is a storage error, and nothing changed.
pub(super) async fn publish(shard: &Rc<Shard>, next: Catalog) -> Result<(), EngineError> {
    let previous = shard.catalog();
    next.save(&shard.catalog_path()).await?;
    let next = Arc::new(next);
    let Err(e) = apply_everywhere(shard, next.clone()).await else {
        return Ok(());
    };
    tracing::error!("catalog change failed, restoring the previous one: {e}");
    let mut undo = (*previous).clone();
    undo.version = next.version + 1;
    let restored = match undo.save(&shard.catalog_path()).await {
        Ok(()) => apply_everywhere(shard, Arc::new(undo)).await,
        Err(save) => Err(save.to_string()),
    };
    if let Err(undo_error) = restored {
        tracing::error!("restoring the previous catalog failed too: {undo_error}");
    }
    Err(EngineError::Internal(e))
}

async fn apply_everywhere(shard: &Rc<Shard>, catalog: Arc<Catalog>) -> Result<(), String> {
    shard.apply_catalog(catalog.clone()).await?;
    for other in (0..shard.nshards).filter(|s| *s != shard.id) {
        shard.router.send_catalog(other, catalog.clone()).await?;
    }
    Ok(())
}

/// A topic and the stats of each partition, asked of each partition's owner.
pub async fn describe_topic(
    engine: &super::Engine,
    name: &str,
) -> Result<TopicDescription, EngineError> {
    let shard = engine.shard();
    let catalog = shard.catalog();
    let meta = catalog.topic(name)?;
    let mut partitions = Vec::with_capacity(meta.config.partitions as usize);
    for partition in 0..meta.config.partitions {
        partitions.push(engine.partition_stats(name, partition).await?);
    }
    Ok(TopicDescription {
        topic: topic_info(meta, shard.nshards),
        partitions,
    })
}

/// Removes a deleted object's folder on the shard's blocking thread (a recursive
/// delete is many file calls io_uring does not batch for us).
pub(super) async fn remove_folder(dir: std::path::PathBuf, what: &'static str) {
    let shown = dir.display().to_string();
    let removed = crate::runtime::blocking(move || std::fs::remove_dir_all(dir)).await;
    if let Err(e) = removed {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %shown, "removing {what} folder: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        check_binding_size, within_limits, EngineError, ObjectLimits, BINDING_ARGUMENTS_MAX_BYTES,
    };
    use crate::engine::types::{
        BindTarget, Binding, ExchangeKind, ExchangeMeta, QueueConfig, TopicConfig,
    };
    use peregrine_shards::catalog::{Catalog, SEGMENT_BYTES_DEFAULT};

    fn topic(partitions: i32) -> TopicConfig {
        TopicConfig {
            partitions,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            max_message_bytes: None,
        }
    }

    fn limits() -> ObjectLimits {
        ObjectLimits {
            max_topics: 2,
            max_partitions: 4,
            max_queues: 1,
            max_exchanges: 1,
            max_bindings: 1,
            max_groups_per_shard: 1,
            ..ObjectLimits::default()
        }
    }

    fn grow(
        previous: &Catalog,
        change: impl Fn(&Catalog) -> Catalog,
    ) -> Result<Catalog, EngineError> {
        let next = change(previous);
        within_limits(previous, &next, &limits()).map(|()| next)
    }

    #[test]
    fn topics_and_partitions_stop_at_their_caps() {
        let add = |name: &'static str, n: i32| {
            move |c: &Catalog| c.with_topic(name, topic(n), 2, 0).expect("valid topic")
        };
        let one = grow(&Catalog::default(), add("a", 3)).expect("3 of 4 partitions");
        let err = grow(&one, add("b", 2)).expect_err("5 partitions");
        assert!(
            matches!(&err, EngineError::InvalidPartitions(m) if m.contains("--max-partitions"))
        );
        let more = |c: &Catalog| c.with_partitions("a", 5, 2).expect("more");
        assert!(matches!(
            grow(&one, more),
            Err(EngineError::InvalidPartitions(_))
        ));
        let two = grow(&one, add("b", 1)).expect("4 of 4 partitions");
        let err = grow(&two, add("c", 1)).expect_err("a third topic");
        assert!(matches!(&err, EngineError::InvalidRequest(m) if m.contains("--max-topics")));
        // Deleting makes room again.
        let fewer = two.without_topic("b").expect("delete").0;
        grow(&fewer, add("c", 1)).expect("room again");
    }

    #[test]
    fn a_catalog_over_lowered_caps_may_still_shrink_and_change() {
        let mut big = Catalog::default();
        for name in ["a", "b", "c"] {
            big = big.with_topic(name, topic(2), 1, 0).expect("topic");
        }
        let smaller = big.without_topic("c").expect("delete").0;
        within_limits(&big, &smaller, &limits()).expect("a delete is never refused");
        let exchange = big
            .with_exchange("x", ExchangeMeta::new(ExchangeKind::Fanout))
            .expect("valid")
            .expect("new");
        within_limits(&big, &exchange, &limits()).expect("other counts do not grow");
    }

    #[test]
    fn queues_and_exchanges_stop_at_their_caps() {
        let q = |name: &'static str| {
            move |c: &Catalog| {
                c.with_queue(name, QueueConfig::default(), 0)
                    .expect("valid")
                    .expect("new")
            }
        };
        let one = grow(&Catalog::default(), q("q1")).expect("first queue");
        let err = grow(&one, q("q2")).expect_err("second queue");
        assert!(matches!(&err, EngineError::InvalidRequest(m) if m.contains("--max-queues")));
        let x = |name: &'static str| {
            move |c: &Catalog| {
                c.with_exchange(name, ExchangeMeta::new(ExchangeKind::Direct))
                    .expect("valid")
                    .expect("new")
            }
        };
        let one = grow(&one, x("x1")).expect("first exchange");
        let err = grow(&one, x("x2")).expect_err("second exchange");
        assert!(matches!(&err, EngineError::InvalidRequest(m) if m.contains("--max-exchanges")));
        let bind = |key: &'static str| {
            move |c: &Catalog| c.with_binding(binding(key)).expect("valid").expect("new")
        };
        let one = grow(&one, bind("k1")).expect("first binding");
        let err = grow(&one, bind("k2")).expect_err("second binding");
        assert!(matches!(&err, EngineError::InvalidRequest(m) if m.contains("--max-bindings")));
    }

    fn binding(key: &str) -> Binding {
        Binding {
            exchange: "x1".into(),
            target: BindTarget::Queue("q1".into()),
            routing_key: key.into(),
            headers: Vec::new(),
            match_all: false,
        }
    }

    #[test]
    fn a_binding_carries_a_bounded_key_and_headers() {
        let mut b = binding(&"k".repeat(BINDING_ARGUMENTS_MAX_BYTES / 2));
        b.headers = vec![("h".into(), "v".repeat(BINDING_ARGUMENTS_MAX_BYTES / 2 - 1))];
        check_binding_size(&b).expect("at the bound");
        b.headers[0].1.push('v');
        assert!(matches!(
            check_binding_size(&b),
            Err(EngineError::InvalidRequest(_))
        ));
    }
}
