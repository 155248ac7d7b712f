//! Where things are: Metadata (topics, partitions, the broker that leads them) and
//! FindCoordinator. The broker is one Kafka node (`NODE_ID`) at the advertised address;
//! a request that lands on a shard that does not own the partition is forwarded inside.

use super::{call, str_bytes, Ctx, NODE_ID};
use crate::native::messages::{Request, Response, TopicInfo, TopicSpec};
use bytes::BytesMut;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::ResponseError;

pub const CLUSTER_ID: &str = "peregrine";

/// Every topic the catalog holds.
pub async fn all_topics(ctx: &Ctx) -> Result<Vec<TopicInfo>, (i16, String)> {
    match call(ctx, Request::Metadata { topics: None }, BytesMut::new()).await? {
        (Response::Metadata { topics, .. }, _) => Ok(topics),
        (other, _) => Err((
            ResponseError::UnknownServerError.code(),
            format!("unexpected answer to metadata: {other:?}"),
        )),
    }
}

/// Creates a one-partition topic for auto-creation; true when it exists afterwards.
pub async fn auto_create(ctx: &Ctx, name: &str) -> bool {
    let spec = TopicSpec {
        name: name.to_string(),
        partitions: 1,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: None,
    };
    match call(ctx, Request::CreateTopic(spec), BytesMut::new()).await {
        Ok(_) => true,
        Err((code, _)) => code == ResponseError::TopicAlreadyExists.code(),
    }
}

fn topic_entry(info: &TopicInfo) -> MetadataResponseTopic {
    let partitions = (0..info.owners.len() as i32)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(NODE_ID))
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)])
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
        ctx.shard.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let mut topics = all_topics(ctx).await.unwrap_or_default();
    let entries = match wanted {
        None => topics.iter().map(topic_entry).collect(),
        Some(names) => {
            let mut entries = Vec::with_capacity(names.len());
            for name in names {
                let mut found = topics.iter().find(|t| t.name == name).map(topic_entry);
                if found.is_none()
                    && auto_create
                    && auto_create_then_reload(ctx, &name, &mut topics).await
                {
                    found = topics.iter().find(|t| t.name == name).map(topic_entry);
                }
                entries.push(found.unwrap_or_else(|| unknown_topic(&name)));
            }
            entries
        }
    };
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(ctx.host.clone())
        .with_port(ctx.port);
    let mut response = MetadataResponse::default()
        .with_brokers(vec![broker])
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
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(ctx.host.clone())
                    .with_port(ctx.port)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(ctx.host.clone())
        .with_port(ctx.port)
}
