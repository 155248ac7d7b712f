//! Publish and PublishBatch: the topic's rules (FIFO: MessageGroupId required, a
//! deduplication id given or made from the content when the topic has
//! ContentBasedDeduplication; standard topics take neither), then one durable append of
//! the whole batch to the topic's log (`Engine::sns_publish`), answered once it is on
//! disk. The fan-out worker delivers it from there.

use super::errors::{self, Cap};
use super::topics::CONTENT_BASED_DEDUPLICATION;
use super::Ctx;
use crate::engine::SnsTopicMeta;
use peregrine_aws_wire::sns::errors::{ErrorCode, WireError};
use peregrine_aws_wire::sns::model::{
    BatchError, BatchResult, Publish, PublishBatch, PublishEntry, Published, Response,
};
use peregrine_aws_wire::sns::record::{self, Stored};

pub async fn publish(ctx: &Ctx<'_>, req: Publish) -> Result<Response, WireError> {
    let topic = ctx.topic(&req.topic_arn)?;
    let stored = stored(&topic, req.message)?;
    let published = append(ctx, &topic, vec![stored]).await?;
    let first = published.into_iter().next();
    first
        .map(Response::Publish)
        .ok_or_else(|| WireError::new(ErrorCode::InternalError, "no message id answered"))
}

/// PublishBatch: entries the wire or the topic's rules refuse fail one by one; the rest
/// are appended together and answered in the order they came.
pub async fn publish_batch(ctx: &Ctx<'_>, req: PublishBatch) -> Result<Response, WireError> {
    let topic = ctx.topic(&req.topic_arn)?;
    let mut result = BatchResult::default();
    let mut ids = Vec::with_capacity(req.entries.len());
    let mut valid = Vec::with_capacity(req.entries.len());
    for entry in req.entries {
        let checked = entry.and_then(|e| {
            let id = e.id.clone();
            stored(&topic, e)
                .map(|s| (id.clone(), s))
                .map_err(|error| BatchError::new(&id, error))
        });
        match checked {
            Ok((id, s)) => {
                ids.push(id);
                valid.push(s);
            }
            Err(failed) => result.failed.push(failed),
        }
    }
    if !valid.is_empty() {
        let published = append(ctx, &topic, valid).await?;
        for (id, p) in ids.into_iter().zip(published) {
            result.successful.push(Published { id, ..p });
        }
    }
    Ok(Response::PublishBatch(result))
}

/// One entry as the topic's log keeps it, checked against the topic's type.
fn stored(topic: &SnsTopicMeta, entry: PublishEntry) -> Result<Stored, WireError> {
    let dedup_id = match (topic.fifo, entry.group_id.is_some(), entry.dedup_id) {
        (false, true, _) => {
            return Err(WireError::invalid(
                "MessageGroupId: only FIFO topics take one",
            ))
        }
        (false, false, Some(_)) => {
            return Err(WireError::invalid(
                "MessageDeduplicationId: only FIFO topics take one",
            ))
        }
        (false, false, None) => None,
        (true, false, _) => {
            return Err(WireError::invalid(
                "MessageGroupId: FIFO topics require one",
            ))
        }
        (true, true, Some(id)) => Some(id),
        (true, true, None) if content_based(topic) => {
            Some(record::content_dedup_id(&entry.message))
        }
        (true, true, None) => {
            return Err(WireError::invalid(
                "MessageDeduplicationId: the topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
            ))
        }
    };
    Ok(Stored {
        message: entry.message,
        structured: entry.structured,
        subject: entry.subject,
        attributes: entry.attributes,
        group_id: entry.group_id,
        dedup_id,
        published_ms: crate::time::now_ms(),
    })
}

fn content_based(topic: &SnsTopicMeta) -> bool {
    topic
        .attributes
        .get(CONTENT_BASED_DEDUPLICATION)
        .is_some_and(|v| v == "true")
}

/// Appends `entries` durably to the topic's log; their ids, in order.
async fn append(
    ctx: &Ctx<'_>,
    topic: &SnsTopicMeta,
    entries: Vec<Stored>,
) -> Result<Vec<Published>, WireError> {
    let count = entries.len();
    let published = ctx
        .engine
        .sns_publish(&topic.name, entries)
        .await
        .map_err(|e| errors::from_engine(e, Cap::None))?;
    if published.len() != count {
        return Err(WireError::new(
            ErrorCode::InternalError,
            format!(
                "the broker answered {} of {count} messages",
                published.len()
            ),
        ));
    }
    Ok(published
        .into_iter()
        .map(|p| Published {
            id: String::new(),
            message_id: p.message_id,
            sequence_number: p.sequence_number,
        })
        .collect())
}
