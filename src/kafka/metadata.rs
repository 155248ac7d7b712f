//! Where things are: Metadata (topics, partitions, the broker that leads them),
//! DescribeCluster (the nodes alone, KIP-700) and FindCoordinator. With `--kafka-nodes per-shard` (the default) every shard is a node
//! (id = shard index) on its own Kafka port and leads the partitions it owns, so clients
//! send each partition's requests to the core that owns it; with `single` the broker is
//! one node (`NODE_ID`) at the advertised address. Either way a request that lands on a
//! shard that does not own its partition or group is forwarded inside.
//!
//! With `--acls` Metadata shows only the topics the client may Describe (a topic it
//! names but may not describe is answered TOPIC_AUTHORIZATION_FAILED, whether it exists
//! or not) and auto-creates only with Create; FindCoordinator needs Describe on the
//! group or transactional id. Asked for (v8+), each topic and (v8-10) the cluster carry
//! the operations the client may do on them, as Kafka computes the bitfield from the ACLs;
//! DescribeCluster carries the cluster's the same way (Metadata v11+ has no such field).

use super::acls::{self, Op};
use super::{errors, str_bytes, Ctx, NODE_ID};
use crate::config::KafkaNodes;
use crate::engine::{EngineError, Object, TopicConfig, TopicInfo};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
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
        max_message_bytes: None,
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
            .shard_ports
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
    failed_topic(name, ResponseError::UnknownTopicOrPartition)
}

fn failed_topic(name: &str, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
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
    let topic_ops = version >= 8 && req.include_topic_authorized_operations;
    let cluster_ops = (8..=10).contains(&version) && req.include_cluster_authorized_operations;
    let mut topics = all_topics(ctx).await.unwrap_or_default();
    let entries = match wanted {
        None => topics
            .iter()
            .filter(|t| acls::topic(ctx, Op::Describe, &t.name))
            .map(|t| topic_entry(ctx, t))
            .collect(),
        Some(names) => {
            let mut entries = Vec::with_capacity(names.len());
            for name in names {
                if !acls::topic(ctx, Op::Describe, &name) {
                    entries.push(failed_topic(&name, ResponseError::TopicAuthorizationFailed));
                    continue;
                }
                let mut found = topics
                    .iter()
                    .find(|t| t.name == name)
                    .map(|t| topic_entry(ctx, t));
                if found.is_none() && auto_create && !acls::may_create_topic(ctx, &name) {
                    entries.push(failed_topic(&name, ResponseError::TopicAuthorizationFailed));
                    continue;
                }
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
    let entries = if topic_ops {
        entries
            .into_iter()
            .map(|t| with_operations(ctx, t))
            .collect()
    } else {
        entries
    };
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_controller_id(BrokerId(if version >= 1 { NODE_ID } else { -1 }))
        .with_topics(entries);
    if cluster_ops {
        response = response.with_cluster_authorized_operations(acls::cluster_operations(ctx));
    }
    if version >= 2 {
        response = response.with_cluster_id(Some(str_bytes(CLUSTER_ID)));
    }
    response
}

/// A served topic's entry with what the client may do on it (KIP-430); a topic it was
/// refused or that does not exist keeps Kafka's "not given" value.
fn with_operations(ctx: &Ctx, entry: MetadataResponseTopic) -> MetadataResponseTopic {
    if entry.error_code != errors::NONE {
        return entry;
    }
    let ops = entry
        .name
        .as_ref()
        .map(|n| acls::topic_operations(ctx, n.0.as_str()));
    match ops {
        Some(ops) => entry.with_topic_authorized_operations(ops),
        None => entry,
    }
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

/// FindCoordinator `key_type`s: a consumer group, a transactional id.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// The object that coordinates a key of `key_type`, or why there is none.
fn coordinated(key_type: i8, key: &str) -> Result<Object<'_>, (i16, String)> {
    match key_type {
        KEY_GROUP => Ok(Object::Group(key)),
        KEY_TRANSACTION => Ok(Object::Transaction(key)),
        other => Err((
            ResponseError::InvalidRequest.code(),
            format!("coordinator key type {other} is not served (0 group, 1 transaction)"),
        )),
    }
}

/// Describe on the group or transactional id (`--acls`).
fn describable(ctx: &Ctx, object: Object<'_>) -> Result<(), (i16, String)> {
    match object {
        Object::Group(id) => acls::check_group(ctx, Op::Describe, id),
        Object::Transaction(id) => acls::check_transactional_id(ctx, Op::Describe, id),
        Object::Partition { .. } | Object::Queue(_) | Object::Controller => Ok(()),
    }
}

/// Groups live on the shard their id hashes to, each transactional id's coordinator on
/// the shard its id hashes to (`Object::Transaction`); the node is that shard's.
/// DescribeCluster's endpoint type for brokers (v1+); the other, controllers (2), is
/// for KRaft controllers, which a client reaches on their own listener.
const ENDPOINT_BROKERS: i8 = 1;

/// DescribeCluster (v0-2): the nodes Metadata lists, the controller, and asked for, the
/// operations the client may do on the cluster. Every node is up: none is fenced.
pub fn describe_cluster(
    ctx: &Ctx,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default().with_endpoint_type(ENDPOINT_BROKERS);
    if version >= 1 && req.endpoint_type != ENDPOINT_BROKERS {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(&format!(
                "endpoint type {} is not served: this broker answers for brokers (1)",
                req.endpoint_type
            ))));
    }
    let brokers = nodes(ctx)
        .into_iter()
        .map(|(id, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(ctx.host.clone())
                .with_port(port)
        })
        .collect();
    response = response
        .with_cluster_id(str_bytes(CLUSTER_ID))
        .with_controller_id(BrokerId(NODE_ID))
        .with_brokers(brokers);
    if req.include_cluster_authorized_operations {
        response = response.with_cluster_authorized_operations(acls::cluster_operations(ctx));
    }
    response
}

pub fn find_coordinator(
    ctx: &Ctx,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    // v0 has no key type: a group.
    let key_type = if version >= 1 {
        req.key_type
    } else {
        KEY_GROUP
    };
    let coordinator = |key: &str| {
        let object = coordinated(key_type, key)?;
        describable(ctx, object)?;
        let owner = ctx.engine.owner(object).map_err(errors::of)?;
        Ok::<_, (i16, String)>(node_of(ctx, owner))
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let answer = Coordinator::default();
                let answer = match coordinator(key.as_str()) {
                    Ok((node, port)) => answer
                        .with_node_id(BrokerId(node))
                        .with_host(ctx.host.clone())
                        .with_port(port),
                    Err((code, message)) => answer
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(&message))),
                };
                answer.with_key(key)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match coordinator(req.key.as_str()) {
        Ok((node, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(ctx.host.clone())
            .with_port(port),
        Err((code, message)) => {
            let answer = FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            // v0 has no error message.
            if version >= 1 {
                return answer.with_error_message(Some(str_bytes(&message)));
            }
            answer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_name_groups_and_transactions() {
        assert_eq!(coordinated(KEY_GROUP, "g").ok(), Some(Object::Group("g")));
        assert_eq!(
            coordinated(KEY_TRANSACTION, "tx").ok(),
            Some(Object::Transaction("tx"))
        );
        let (code, _) = coordinated(2, "share").err().unwrap_or_default();
        assert_eq!(code, ResponseError::InvalidRequest.code());
    }
}
