//! Produce: each partition's record batches go to the owning shard as received (the
//! broker writes only their base offsets). acks 0 → none (no answer at all), 1 →
//! leader, -1 → durable (group-committed fdatasync), as DESIGN.md maps them.
//!
//! With `--acls` a topic needs Write (and Create to be auto-created), a transactional
//! produce Write on its transactional id; a refused topic is neither created nor written.

use super::acls::{self, Op};
use super::{errors, metadata, Ctx};
use crate::engine::{Acks, Produced};
use crate::runtime::spawn_local;
use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use std::rc::Rc;

/// `None` for acks=0, which Kafka never answers.
pub async fn produce(ctx: &Rc<Ctx>, req: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = match req.acks {
        0 => Ok(Acks::None),
        1 => Ok(Acks::Leader),
        -1 => Ok(Acks::Durable),
        other => Err(other),
    };
    let broker_max = ctx.engine.config().kafka_message_max_bytes;
    let txn_refused = match &req.transactional_id {
        Some(id) => acls::check_transactional_id(ctx, Op::Write, id.0.as_str()).err(),
        None => None,
    };
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let refused = txn_refused
            .clone()
            .or_else(|| acls::check_topic(ctx, Op::Write, &name).err());
        if let Some(refused) = refused {
            let partitions = topic
                .partition_data
                .iter()
                .map(|p| partition_response(p.index, Err(refused.clone()), version))
                .collect();
            topics.push(
                TopicProduceResponse::default()
                    .with_name(topic.name)
                    .with_partition_responses(partitions),
            );
            continue;
        }
        if ctx.engine.config().auto_create_topics && acls::may_create_topic(ctx, &name) {
            ensure_topic(ctx, &name).await;
        }
        // The topic's max.message.bytes replaces the broker's message.max.bytes, as in
        // Kafka (it may be larger); checked here before the batch is copied.
        let max_batch = ctx
            .engine
            .topic_max_message_bytes(&name)
            .unwrap_or(broker_max) as usize;
        // Partitions run concurrently, on their own shards.
        let tasks: Vec<_> = topic
            .partition_data
            .into_iter()
            .map(|p| {
                let (ctx, name) = (ctx.clone(), name.clone());
                spawn_local(async move {
                    let index = p.index;
                    let result = match (acks, p.records) {
                        (Err(a), _) => Err((
                            ResponseError::InvalidRequiredAcks.code(),
                            format!("acks must be 0, 1 or -1, not {a}"),
                        )),
                        (_, None) => Err((
                            ResponseError::CorruptMessage.code(),
                            "produce without records".to_string(),
                        )),
                        (_, Some(records)) if records.len() > max_batch => Err((
                            ResponseError::MessageTooLarge.code(),
                            format!(
                                "{} bytes of records, more than max.message.bytes ({max_batch})",
                                records.len()
                            ),
                        )),
                        (Ok(acks), Some(records)) => {
                            // The broker sets base offsets in place: one copy out of the
                            // request frame, which the other partitions still share.
                            let payload = BytesMut::from(&records[..]);
                            ctx.engine
                                .produce(&name, index, acks, payload)
                                .await
                                .map_err(errors::of)
                        }
                    };
                    partition_response(index, result, version)
                })
            })
            .collect();
        let mut partitions = Vec::with_capacity(tasks.len());
        for task in tasks {
            partitions.push(task.await);
        }
        topics.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    if req.acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(topics))
}

/// Every produce checks this, so it reads the shard's own catalog snapshot rather than
/// building the whole topic list.
async fn ensure_topic(ctx: &Ctx, name: &str) {
    if !ctx.engine.topic_exists(name) {
        metadata::auto_create(ctx, name).await;
    }
}

fn partition_response(
    index: i32,
    result: Result<Produced, (i16, String)>,
    version: i16,
) -> PartitionProduceResponse {
    // Error messages exist from v8 on; setting one earlier would not encode.
    let message = |m: String| (version >= 8).then(|| super::str_bytes(&m));
    let base = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(p) => base.with_base_offset(p.base_offset),
        Err((code, message_text)) => base
            .with_error_code(code)
            .with_base_offset(-1)
            .with_error_message(message(message_text)),
    }
}
