//! CreateTopics and DeleteTopics on the native catalog (shard 0 writes it and hands it to
//! every shard). The broker is one node, so a replication factor above 1 is refused.

use super::{call, str_bytes, Ctx};
use crate::native::messages::{Request, TopicSpec};
use bytes::BytesMut;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::ResponseError;

/// Topic configs the broker honours; others are refused rather than ignored.
pub const TOPIC_CONFIGS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "cleanup.policy",
];

type Refusal = (i16, String);

fn invalid_config(message: String) -> Refusal {
    (ResponseError::InvalidConfig.code(), message)
}

/// The native spec of a Kafka topic creation, or why it is refused.
fn spec_of(topic: &CreatableTopic) -> Result<TopicSpec, Refusal> {
    let partitions = match topic.num_partitions {
        -1 => 1,
        n if n >= 1 => n,
        n => {
            return Err((
                ResponseError::InvalidPartitions.code(),
                format!("{n} partitions: need at least 1"),
            ))
        }
    };
    if topic.replication_factor > 1 {
        return Err((
            ResponseError::InvalidReplicationFactor.code(),
            format!(
                "replication factor {} is more than this broker's one node",
                topic.replication_factor
            ),
        ));
    }
    if !topic.assignments.is_empty() {
        return Err((
            ResponseError::InvalidReplicaAssignment.code(),
            "manual replica assignment is not supported (one node)".into(),
        ));
    }
    let mut spec = TopicSpec {
        name: topic.name.0.to_string(),
        partitions,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: None,
    };
    for config in &topic.configs {
        let name = config.name.as_str();
        let value = config.value.as_ref().map(|v| v.as_str()).unwrap_or("");
        let number = || {
            value
                .parse::<i64>()
                .map_err(|_| invalid_config(format!("{name}={value} is not a number")))
        };
        match name {
            // -1 is Kafka's "no limit".
            "retention.ms" => spec.retention_ms = Some(number()?).filter(|v| *v >= 0),
            "retention.bytes" => spec.retention_bytes = u64::try_from(number()?).ok(),
            "segment.bytes" => {
                spec.segment_bytes = Some(
                    u64::try_from(number()?)
                        .map_err(|_| invalid_config(format!("{name}={value}")))?,
                )
            }
            "cleanup.policy" if value == "delete" => {}
            "cleanup.policy" => {
                return Err(invalid_config(format!(
                    "cleanup.policy={value}: only 'delete' is supported (no compaction)"
                )))
            }
            _ => {
                return Err(invalid_config(format!(
                    "unknown or unsupported topic config '{name}' (supported: {})",
                    TOPIC_CONFIGS.join(", ")
                )))
            }
        }
    }
    Ok(spec)
}

pub async fn create_topics(
    ctx: &Ctx,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let mut result = CreatableTopicResult::default().with_name(topic.name.clone());
        let outcome = match spec_of(&topic) {
            Ok(spec) if req.validate_only => Ok(spec),
            Ok(spec) => call(ctx, Request::CreateTopic(spec.clone()), BytesMut::new())
                .await
                .map(|_| spec),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(spec) if version >= 5 => {
                result = result
                    .with_num_partitions(spec.partitions)
                    .with_replication_factor(1);
            }
            Ok(_) => {}
            Err((code, message)) => {
                result = result.with_error_code(code);
                if version >= 1 {
                    result = result.with_error_message(Some(str_bytes(&message)));
                }
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(
    ctx: &Ctx,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // v6 names topics in `topics` (by name or id); earlier versions in `topic_names`.
    let names: Vec<Option<TopicName>> = if version >= 6 {
        req.topics.into_iter().map(|t| t.name).collect()
    } else {
        req.topic_names.into_iter().map(Some).collect()
    };
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let mut result = DeletableTopicResult::default().with_name(name.clone());
        let outcome = match &name {
            Some(n) => call(
                ctx,
                Request::DeleteTopic {
                    name: n.0.to_string(),
                },
                BytesMut::new(),
            )
            .await
            .map(|_| ()),
            None => Err((
                ResponseError::UnknownTopicId.code(),
                "topics are deleted by name (no topic ids)".to_string(),
            )),
        };
        if let Err((code, message)) = outcome {
            result = result.with_error_code(code);
            if version >= 5 {
                result = result.with_error_message(Some(str_bytes(&message)));
            }
        }
        results.push(result);
    }
    DeleteTopicsResponse::default().with_responses(results)
}
