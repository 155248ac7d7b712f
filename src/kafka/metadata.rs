//! Where things are: Metadata (topics, partitions, the broker that leads them) and
//! FindCoordinator. With `--kafka-nodes per-shard` (the default) every shard is a node
//! (id = shard index) on its own Kafka port and leads the partitions it owns, so clients
//! send each partition's requests to the core that owns it; with `single` the broker is
//! one node (`NODE_ID`) at the advertised address. Either way a request that lands on a
//! shard that does not own its partition or group is forwarded inside.

use super::{errors, str_bytes, Ctx, NODE_ID};
use crate::config::KafkaNodes;
use crate::engine::{EngineError, Object, TopicConfig, TopicInfo};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::ResponseError;
use peregrine_shards::catalog::SEGMENT_BYTES_DEFAULT;

pub const CLUSTER_ID: &str = "peregrine";

/// Every topic the catalog holds.
pub async fn all_topics(ctx: &Ctx) -> Result<Vec<TopicInfo>, (i16, String)> {
    match ctx.engine.metadata(None) {
        Ok(m) => Ok(m.topics),
        Err(e) => Err(errors::of(e)),
    }
}

/// Creates a one-partition topic for auto-creation; true when it exists afterwards.
pub async fn auto_create(ctx: &Ctx, name: &str) -> bool {
    let config = TopicConfig {
        partitions: 1,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: SEGMENT_BYTES_DEFAULT,
    };
    match ctx.engine.create_topic(name, config).await {
        Ok(()) => true,
        // Created by another request meanwhile: not an error this client sees.
        Err(e) => matches!(e, EngineError::TopicExists(_)),
    }
}

/// The nodes Kafka clients see: (node id, port).
fn nodes(ctx: &Ctx) -> Vec<(i32, i32)> {
    match ctx.engine.config().kafka_nodes {
        KafkaNodes::Single => vec![(NODE_ID, ctx.port)],
        KafkaNodes::PerShard => ctx
            .engine
            .config()
            .kafka_shard_ports
            .iter()
            .enumerate()
            .map(|(i, port)| (i as i32, i32::from(*port)))
            .collect(),
    }
}

/// The node that leads a partition owned by `shard`, or coordinates a group owned by it.
fn node_of(ctx: &Ctx, shard: u32) -> (i32, i32) {
    let all = nodes(ctx);
    match ctx.engine.config().kafka_nodes {
        KafkaNodes::Single => all[0],
        KafkaNodes::PerShard => all
            .get(shard as usize)
            .copied()
            .unwrap_or((NODE_ID, ctx.port)),
    }
}

fn topic_entry(ctx: &Ctx, info: &TopicInfo) -> MetadataResponseTopic {
    let partitions = info
        .owners
        .iter()
        .enumerate()
        .map(|(p, owner)| {
            let (leader, _) = node_of(ctx, *owner);
            MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(vec![BrokerId(leader)])
                .with_isr_nodes(vec![BrokerId(leader)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&info.name))))
        .with_partitions(partitions)
}

fn unknown_topic(name: &str) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
        .with_name(Some(TopicName(str_bytes(name))))
}

pub async fn metadata(ctx: &Ctx, req: MetadataRequest, version: i16) -> MetadataResponse {
    // v0: an empty list means every topic; later versions say that with null.
    let wanted: Option<Vec<String>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    let auto_create =
        ctx.engine.config().auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let mut topics = all_topics(ctx).await.unwrap_or_default();
    let entries = match wanted {
        None => topics.iter().map(|t| topic_entry(ctx, t)).collect(),
        Some(names) => {
            let mut entries = Vec::with_capacity(names.len());
            for name in names {
                let mut found = topics
                    .iter()
                    .find(|t| t.name == name)
                    .map(|t| topic_entry(ctx, t));
                if found.is_none()
                    && auto_create
                    && auto_create_then_reload(ctx, &name, &mut topics).await
                {
                    found = topics
                        .iter()
                        .find(|t| t.name == name)
                        .map(|t| topic_entry(ctx, t));
                }
                entries.push(found.unwrap_or_else(|| unknown_topic(&name)));
            }
            entries
        }
    };
    let brokers = nodes(ctx)
        .into_iter()
        .map(|(id, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(ctx.host.clone())
                .with_port(port)
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_controller_id(BrokerId(if version >= 1 { NODE_ID } else { -1 }))
        .with_topics(entries);
    if version >= 2 {
        response = response.with_cluster_id(Some(str_bytes(CLUSTER_ID)));
    }
    response
}

async fn auto_create_then_reload(ctx: &Ctx, name: &str, topics: &mut Vec<TopicInfo>) -> bool {
    if !auto_create(ctx, name).await {
        return false;
    }
    match all_topics(ctx).await {
        Ok(t) => {
            *topics = t;
            true
        }
        Err(_) => false,
    }
}

/// Groups and transactions are coordinated by this one node.
pub fn find_coordinator(
    ctx: &Ctx,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    // Groups live on the shard their id hashes to; transactions are not offered, so a
    // transaction coordinator lookup gets the same answer for its key.
    let coordinator = |key: &str| {
        let owner = ctx.engine.owner(Object::Group(key)).unwrap_or(0);
        node_of(ctx, owner)
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let (node, port) = coordinator(key.as_str());
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(ctx.host.clone())
                    .with_port(port)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (node, port) = coordinator(req.key.as_str());
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(node))
        .with_host(ctx.host.clone())
        .with_port(port)
}
