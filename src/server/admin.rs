//! Topic administration and metadata. Catalog changes run on the controller shard,
//! which writes the catalog file and then hands the new snapshot to every shard.

use super::router::Reply;
use super::shard::{reply, Shard, CONTROLLER_SHARD};
use crate::native::messages::{ErrorCode, Request, Response, ShardInfo, TopicInfo, TopicSpec};
use bytes::BytesMut;
use peregrine_shards::catalog::{
    Catalog, CatalogError, TopicConfig, TopicMeta, SEGMENT_BYTES_DEFAULT,
};
use std::rc::Rc;
use std::sync::Arc;

fn catalog_error(e: CatalogError) -> Option<Reply> {
    let code = match e {
        CatalogError::TopicExists(_) => ErrorCode::TopicExists,
        CatalogError::UnknownTopic(_) => ErrorCode::UnknownTopic,
        CatalogError::InvalidName(_) | CatalogError::InvalidConfig(_) => ErrorCode::InvalidTopic,
        CatalogError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        CatalogError::UnknownQueue(_) => ErrorCode::UnknownQueue,
        CatalogError::QueueMismatch(_) => ErrorCode::QueueMismatch,
        CatalogError::InvalidQueueConfig(_) => ErrorCode::InvalidRequest,
        CatalogError::UnknownExchange(_) => ErrorCode::UnknownExchange,
        CatalogError::ExchangeMismatch(_) | CatalogError::UnknownBinding(_) => {
            ErrorCode::InvalidRequest
        }
        CatalogError::Storage { .. } => ErrorCode::Internal,
    };
    reply(Response::error(code, e.to_string()))
}

pub fn topic_info(meta: &TopicMeta, nshards: u32) -> TopicInfo {
    TopicInfo {
        name: meta.name.clone(),
        owners: (0..meta.config.partitions)
            .map(|p| meta.owner(p, nshards).unwrap_or(0))
            .collect(),
        retention_ms: meta.config.retention_ms,
        retention_bytes: meta.config.retention_bytes,
        segment_bytes: meta.config.segment_bytes,
    }
}

/// Kafka InitProducerId on the controller: a new id, or the next epoch of a known one.
pub async fn init_producer_id(shard: &Rc<Shard>, producer_id: i64, epoch: i16) -> Option<Reply> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    if producer_id >= 0 && (0..i16::MAX - 1).contains(&epoch) {
        return reply(Response::ProducerId {
            producer_id,
            epoch: epoch + 1,
        });
    }
    match shard.producer_ids.allocate().await {
        Ok(producer_id) => reply(Response::ProducerId {
            producer_id,
            epoch: 0,
        }),
        Err(e) => {
            tracing::error!("allocating a producer id: {e}");
            reply(Response::error(
                ErrorCode::Internal,
                format!("allocating a producer id: {e}"),
            ))
        }
    }
}

pub fn metadata(shard: &Rc<Shard>, topics: Option<Vec<String>>) -> Option<Reply> {
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
                match catalog.topic(&name) {
                    Ok(meta) => infos.push(topic_info(meta, shard.nshards)),
                    Err(e) => return catalog_error(e),
                }
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
    reply(Response::Metadata {
        shards,
        topics: infos,
    })
}

pub async fn create_topic(shard: &Rc<Shard>, spec: TopicSpec) -> Option<Reply> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let config = TopicConfig {
        partitions: spec.partitions,
        retention_ms: spec.retention_ms,
        retention_bytes: spec.retention_bytes,
        segment_bytes: spec.segment_bytes.unwrap_or(SEGMENT_BYTES_DEFAULT),
    };
    let now = crate::time::now_ms();
    let next = match shard
        .catalog()
        .with_topic(&spec.name, config, shard.nshards, now)
    {
        Ok(next) => next,
        Err(e) => return catalog_error(e),
    };
    if let Err(e) = publish(shard, next).await {
        return reply(Response::error(ErrorCode::Internal, e));
    }
    tracing::info!(topic = %spec.name, partitions = spec.partitions, "topic created");
    reply(Response::Ok)
}

pub async fn create_partitions(shard: &Rc<Shard>, name: &str, count: i32) -> Option<Reply> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let next = match shard.catalog().with_partitions(name, count, shard.nshards) {
        Ok(next) => next,
        Err(e) => return catalog_error(e),
    };
    if let Err(e) = publish(shard, next).await {
        return reply(Response::error(ErrorCode::Internal, e));
    }
    tracing::info!(topic = %name, partitions = count, "partitions added");
    reply(Response::Ok)
}

/// Declares a queue (idempotent with the same settings). A dead-letter target must be an
/// existing queue.
pub async fn declare_queue(
    shard: &Rc<Shard>,
    spec: crate::native::messages::QueueSpec,
) -> Option<Reply> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let catalog = shard.catalog();
    if let Some(target) = &spec.dead_letter {
        let known = target == &spec.name
            || catalog.queue(target).is_ok()
            || catalog.exchanges.contains_key(target);
        if !known {
            return reply(Response::error(
                ErrorCode::UnknownQueue,
                format!(
                    "dead-letter target '{target}' is neither a queue nor an exchange (declare it first)"
                ),
            ));
        }
    }
    let config = super::queues::config_of(&spec);
    let next = match catalog.with_queue(&spec.name, config, crate::time::now_ms()) {
        Ok(Some(next)) => next,
        Ok(None) => return reply(Response::Ok),
        Err(e) => return catalog_error(e),
    };
    if let Err(e) = publish(shard, next).await {
        return reply(Response::error(ErrorCode::Internal, e));
    }
    tracing::info!(queue = %spec.name, "queue declared");
    reply(Response::Ok)
}

/// Runs one exchange or binding change on the controller.
pub async fn change_exchanges(shard: &Rc<Shard>, request: Request) -> Option<Reply> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let catalog = shard.catalog();
    let changed = match &request {
        Request::DeclareExchange { name, kind } => {
            catalog.with_exchange(name, super::exchanges::kind_of(*kind))
        }
        Request::DeleteExchange { name } => catalog.without_exchange(name).map(Some),
        Request::Bind(spec) | Request::Unbind(spec) => {
            let binding = match super::exchanges::binding_of(spec) {
                Ok(b) => b,
                Err(e) => return reply(Response::error(ErrorCode::InvalidRequest, e)),
            };
            if matches!(request, Request::Bind(_)) {
                catalog.with_binding(binding)
            } else {
                catalog.without_binding(&binding).map(Some)
            }
        }
        _ => {
            return reply(Response::error(
                ErrorCode::InvalidRequest,
                "not an exchange change",
            ))
        }
    };
    let next = match changed {
        Ok(Some(next)) => next,
        Ok(None) => return reply(Response::Ok),
        Err(e) => return catalog_error(e),
    };
    if let Err(e) = publish(shard, next).await {
        return reply(Response::error(ErrorCode::Internal, e));
    }
    reply(Response::Ok)
}

pub async fn delete_queue(shard: &Rc<Shard>, name: &str) -> Option<Reply> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let (next, removed) = match shard.catalog().without_queue(name) {
        Ok(r) => r,
        Err(e) => return catalog_error(e),
    };
    if let Err(e) = publish(shard, next).await {
        return reply(Response::error(ErrorCode::Internal, e));
    }
    let dir = removed.dir(&shard.config.data_dir);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), "removing queue folder: {e}");
        }
    }
    tracing::info!(queue = %name, "queue deleted");
    reply(Response::Ok)
}

pub async fn delete_topic(shard: &Rc<Shard>, name: &str) -> Option<Reply> {
    debug_assert_eq!(shard.id, CONTROLLER_SHARD);
    let _serial = shard.admin_lock.acquire_permit(1).await;
    let (next, removed) = match shard.catalog().without_topic(name) {
        Ok(r) => r,
        Err(e) => return catalog_error(e),
    };
    if let Err(e) = publish(shard, next).await {
        return reply(Response::error(ErrorCode::Internal, e));
    }
    // Every owner has deleted its partitions; the topic's own folder goes last.
    let dir = removed.topic_dir(&shard.config.data_dir);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), "removing topic folder: {e}");
        }
    }
    tracing::info!(topic = %name, "topic deleted");
    reply(Response::Ok)
}

/// Persists `next`, then applies it on every shard; the change is visible to clients
/// once this returns. If a shard cannot apply it (a partition that will not open), the
/// previous catalog is restored on disk and on every shard, so the file never lists a
/// topic the shards do not serve.
async fn publish(shard: &Rc<Shard>, next: Catalog) -> Result<(), String> {
    let previous = shard.catalog();
    next.save(&shard.catalog_path())
        .await
        .map_err(|e| e.to_string())?;
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
    Err(e)
}

async fn apply_everywhere(shard: &Rc<Shard>, catalog: Arc<Catalog>) -> Result<(), String> {
    shard.apply_catalog(catalog.clone()).await?;
    for other in (0..shard.nshards).filter(|s| *s != shard.id) {
        shard.router.send_catalog(other, catalog.clone()).await?;
    }
    Ok(())
}

pub async fn describe_topic(shard: &Rc<Shard>, name: &str) -> Option<Reply> {
    let catalog = shard.catalog();
    let meta = match catalog.topic(name) {
        Ok(m) => m,
        Err(e) => return catalog_error(e),
    };
    let mut partitions = Vec::with_capacity(meta.config.partitions as usize);
    for partition in 0..meta.config.partitions {
        let request = Request::PartitionStats {
            topic: name.to_string(),
            partition,
        };
        match Box::pin(shard.dispatch(request, BytesMut::new())).await {
            Some((Response::PartitionStats(stats), _)) => partitions.push(stats),
            Some((other, _)) => return reply(other),
            None => return reply(Response::error(ErrorCode::Internal, "no answer from owner")),
        }
    }
    reply(Response::TopicDescribed {
        topic: topic_info(meta, shard.nshards),
        partitions,
    })
}
