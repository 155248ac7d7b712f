//! CreateTopics and DeleteTopics on the native catalog (shard 0 writes it and hands it to
//! every shard). The broker is one node, so a replication factor above 1 is refused.
//! Validate-only requests are checked against the broker's caps (`--max-topics`,
//! `--max-partitions`) as a real one would be.
//!
//! With `--acls`, as Kafka: CreateTopics needs Create (cluster or topic), DeleteTopics and
//! DeleteRecords Delete on the topic, CreatePartitions Alter, InitProducerId without a
//! transactional id IdempotentWrite on the cluster or Write on some topic. Topic configs
//! (read and changed) are `configs`'.

use super::acls::{self, Op};
use super::configs;
use super::{errors, str_bytes, Ctx};
use crate::engine::admin::{check_growth, ObjectCounts};
use crate::engine::{TopicConfig, TopicInfo, TopicSettingsChange};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::ResponseError;

type Refusal = (i16, String);

/// The engine's config of a Kafka topic creation, or why it is refused.
fn spec_of(topic: &CreatableTopic) -> Result<TopicConfig, Refusal> {
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
    let mut change = TopicSettingsChange::all(configs::default_settings());
    for config in &topic.configs {
        let value = config.value.as_ref().map_or("", |v| v.as_str());
        configs::set(&mut change, config.name.as_str(), value)?;
    }
    let settings = change.applied_to(configs::default_settings());
    let spec = TopicConfig {
        partitions,
        retention_ms: settings.retention_ms,
        retention_bytes: settings.retention_bytes,
        segment_bytes: settings.segment_bytes,
        max_message_bytes: settings.max_message_bytes,
    };
    Ok(spec)
}

/// Why the engine refused a topic creation, in Kafka's terms. A creation the request
/// itself is fine for is refused as `InvalidRequest` only by a broker policy (the
/// `--max-topics` cap), which Kafka calls POLICY_VIOLATION; the rest map as everywhere.
fn creation_refused(e: crate::engine::EngineError) -> Refusal {
    match e {
        crate::engine::EngineError::InvalidRequest(text) => {
            (ResponseError::PolicyViolation.code(), text)
        }
        other => errors::of(other),
    }
}

pub async fn create_topics(
    ctx: &Ctx,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let mut result = CreatableTopicResult::default().with_name(topic.name.clone());
        let spec =
            acls::check_create_topic(ctx, topic.name.0.as_str()).and_then(|()| spec_of(&topic));
        let outcome = match spec {
            Ok(spec) if req.validate_only => {
                validate_creation(ctx, topic.name.0.as_str(), spec.partitions)
                    .await
                    .map(|()| spec)
            }
            Ok(spec) => ctx
                .engine
                .create_topic(topic.name.0.as_str(), spec.clone())
                .await
                .map(|()| spec)
                .map_err(creation_refused),
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
            Some(n) => match acls::check_topic(ctx, Op::Delete, n.0.as_str()) {
                Ok(()) => ctx
                    .engine
                    .delete_topic(n.0.as_str())
                    .await
                    .map_err(errors::of),
                Err(refused) => Err(refused),
            },
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

/// Kafka InitProducerId: a producer id (and epoch) for an idempotent producer. Each
/// partition then checks the producer's sequence numbers (`shards/src/log/producers.rs`).
/// With a transactional id it is the transaction coordinator's (`txn`).
pub async fn init_producer_id(
    ctx: &Ctx,
    req: kafka_protocol::messages::InitProducerIdRequest,
    version: i16,
) -> kafka_protocol::messages::InitProducerIdResponse {
    use kafka_protocol::messages::{InitProducerIdResponse, ProducerId};
    // Null: idempotent only. An empty string is refused there, as Kafka does.
    if req.transactional_id.is_some() {
        return super::txn::init_producer_id(ctx, req, version).await;
    }
    let failed = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Err((code, _)) = acls::check_idempotent_write(ctx) {
        return failed(code);
    }
    let (producer_id, epoch) = if version >= 3 {
        (req.producer_id.0, req.producer_epoch)
    } else {
        (-1, -1)
    };
    match ctx.engine.init_producer_id(producer_id, epoch).await {
        Ok((producer_id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(e) => failed(errors::code(&e)),
    }
}

pub async fn create_partitions(
    ctx: &Ctx,
    req: kafka_protocol::messages::CreatePartitionsRequest,
) -> kafka_protocol::messages::CreatePartitionsResponse {
    use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let outcome = if let Err(refused) = acls::check_topic(ctx, Op::Alter, &name) {
            Err(refused)
        } else if topic.assignments.is_some() {
            Err((
                ResponseError::InvalidReplicaAssignment.code(),
                "manual replica assignment is not supported (one node per shard)".to_string(),
            ))
        } else if req.validate_only {
            validate_partition_count(ctx, &name, topic.count).await
        } else {
            ctx.engine
                .create_partitions(&name, topic.count)
                .await
                .map_err(errors::of)
        };
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name);
        if let Err((code, message)) = outcome {
            result = result
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&message)));
        }
        results.push(result);
    }
    kafka_protocol::messages::CreatePartitionsResponse::default().with_results(results)
}

/// The counts Metadata shows now, and with `more_topics` topics and `more_partitions`
/// partitions added.
fn counts_with(
    topics: &[TopicInfo],
    more_topics: usize,
    more_partitions: u64,
) -> [ObjectCounts; 2] {
    let now = ObjectCounts {
        topics: topics.len(),
        partitions: topics.iter().map(|t| t.owners.len() as u64).sum(),
        ..ObjectCounts::default()
    };
    let then = ObjectCounts {
        topics: now.topics + more_topics,
        partitions: now.partitions + more_partitions,
        ..now
    };
    [now, then]
}

/// A validate-only CreateTopics: what the creation would answer for an existing name
/// or a broker cap (the rest is `spec_of`). Concurrent creations may still change it.
async fn validate_creation(ctx: &Ctx, name: &str, partitions: i32) -> Result<(), Refusal> {
    let topics = super::metadata::all_topics(ctx).await?;
    if topics.iter().any(|t| t.name == name) {
        return Err((
            ResponseError::TopicAlreadyExists.code(),
            format!("topic '{name}' already exists"),
        ));
    }
    let [now, then] = counts_with(&topics, 1, u64::try_from(partitions).unwrap_or(0));
    check_growth(now, then, &ctx.engine.config().object_limits).map_err(creation_refused)
}

async fn validate_partition_count(ctx: &Ctx, name: &str, count: i32) -> Result<(), Refusal> {
    let topics = super::metadata::all_topics(ctx).await?;
    let Some(t) = topics.iter().find(|t| t.name == name) else {
        return Err((
            ResponseError::UnknownTopicOrPartition.code(),
            format!("unknown topic '{name}'"),
        ));
    };
    if count <= t.owners.len() as i32 {
        return Err((
            ResponseError::InvalidPartitions.code(),
            format!(
                "topic '{name}' has {} partitions; the new count must be more",
                t.owners.len()
            ),
        ));
    }
    let more = u64::try_from(count)
        .unwrap_or(0)
        .saturating_sub(t.owners.len() as u64);
    let [now, then] = counts_with(&topics, 0, more);
    check_growth(now, then, &ctx.engine.config().object_limits).map_err(errors::of)
}

pub async fn delete_records(
    ctx: &Ctx,
    req: kafka_protocol::messages::DeleteRecordsRequest,
) -> kafka_protocol::messages::DeleteRecordsResponse {
    use kafka_protocol::messages::delete_records_response::{
        DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
    };
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let deletable = acls::check_topic(ctx, Op::Delete, topic.name.0.as_str());
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let result =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            if let Err((code, _)) = &deletable {
                partitions.push(result.with_low_watermark(-1).with_error_code(*code));
                continue;
            }
            let deleted = ctx
                .engine
                .delete_records(topic.name.0.as_str(), p.partition_index, p.offset)
                .await;
            partitions.push(match deleted {
                Ok(offset) => result.with_low_watermark(offset),
                Err(e) => result
                    .with_low_watermark(-1)
                    .with_error_code(errors::code(&e)),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    kafka_protocol::messages::DeleteRecordsResponse::default().with_topics(topics)
}
