//! The queue actions: CreateQueue, GetQueueUrl, ListQueues, DeleteQueue, PurgeQueue,
//! GetQueueAttributes and SetQueueAttributes.

use super::{access, attributes, Ctx};
use crate::engine::QueueChange;
use peregrine_aws_wire::sqs::{
    receipt, CreateQueue, ErrorCode, GetQueueAttributes, GetQueueUrl, ListDeadLetterSourceQueues,
    ListQueues, QueueRef, Response, SetQueueAttributes, TagQueue, UntagQueue, WireError,
    LIST_QUEUES_MAX,
};
use peregrine_shards::security::Operation;

/// CreateQueue: idempotent when the attributes it names match the existing queue's;
/// QueueNameExists when they do not.
pub async fn create(ctx: &Ctx<'_>, req: CreateQueue) -> Result<Response, WireError> {
    let name = req.queue_name;
    let requested = attributes::parse(&req.attributes, ctx.settings())?;
    let url = ctx.url(&name);
    if let Some(existing) = ctx.engine.queue_meta(&name) {
        return match attributes::matches(&requested, &existing) {
            true => Ok(Response::CreateQueue { queue_url: url }),
            false => Err(exists(&name)),
        };
    }
    let fifo = requested.fifo.unwrap_or(false);
    attributes::check_fifo(&name, fifo, &requested.kept)?;
    check_target(ctx, &name, fifo, &requested)?;
    let config = attributes::config(&requested);
    let mut annotations = attributes::change(&requested);
    // Only the kept attributes and the tags go beside the config in the declaration.
    annotations = QueueChange {
        attributes: std::mem::take(&mut annotations.attributes),
        tags: req.tags.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        ..QueueChange::default()
    };
    match ctx
        .engine
        .declare_queue_with(&name, config, annotations)
        .await
    {
        Ok(()) => Ok(Response::CreateQueue { queue_url: url }),
        // Another client created it meanwhile, with other settings.
        Err(crate::engine::EngineError::QueueMismatch(_)) => Err(exists(&name)),
        Err(e) => Err(ctx.engine_error(e)),
    }
}

fn exists(name: &str) -> WireError {
    WireError::new(
        ErrorCode::QueueNameExists,
        format!("A queue already exists with the name {name} and other attributes."),
    )
}

/// A RedrivePolicy's target must be a queue that exists now, FIFO when its source is
/// (SQS: a FIFO queue's dead letters keep their group order only in a FIFO queue),
/// whose RedriveAllowPolicy lets `source` use it.
fn check_target(
    ctx: &Ctx<'_>,
    source: &str,
    fifo: bool,
    requested: &attributes::Requested,
) -> Result<(), WireError> {
    if let Some(Some(policy)) = &requested.redrive {
        let Some(target) = ctx.engine.queue_meta(&policy.target) else {
            return Err(WireError::invalid(format!(
                "Value for parameter RedrivePolicy is invalid. Reason: the dead-letter target queue {} does not exist.",
                policy.target
            )));
        };
        if !attributes::allows_source(&target, source, ctx.settings()) {
            return Err(WireError::invalid(format!(
                "Value for parameter RedrivePolicy is invalid. Reason: the RedriveAllowPolicy of the dead-letter target queue {} does not allow queue {source} to use it.",
                policy.target
            )));
        }
        if target.config.fifo != fifo {
            return Err(WireError::invalid(format!(
                "Value for parameter RedrivePolicy is invalid. Reason: the dead-letter target queue {} must be of the same type (FIFO or standard) as the queue.",
                policy.target
            )));
        }
    }
    Ok(())
}

pub fn get_url(ctx: &Ctx<'_>, req: GetQueueUrl) -> Result<Response, WireError> {
    let owner_ok = req
        .queue_owner_account_id
        .as_deref()
        .is_none_or(|a| a == ctx.settings().account_id);
    if !owner_ok || ctx.engine.queue_config(&req.queue_name).is_none() {
        return Err(WireError::new(
            ErrorCode::QueueDoesNotExist,
            "The specified queue does not exist.",
        ));
    }
    Ok(Response::GetQueueUrl {
        queue_url: ctx.url(&req.queue_name),
    })
}

/// ListQueues: the catalog's queues (sorted by name) under the prefix; with MaxResults,
/// a page and a NextToken naming the last queue of it.
pub fn list(ctx: &Ctx<'_>, req: ListQueues) -> Result<Response, WireError> {
    let prefix = req.queue_name_prefix.unwrap_or_default();
    let queues = ctx.engine.list_queues().into_iter().map(|(name, _)| name);
    // Only the queues the caller may see (with --acls), as Kafka's Metadata lists topics.
    let names = queues.filter(|name| {
        name.starts_with(&prefix) && access::allowed(ctx, Operation::Describe, name)
    });
    let (queue_urls, next_token) = page(ctx, names, req.max_results, req.next_token)?;
    Ok(Response::ListQueues {
        queue_urls,
        next_token,
    })
}

/// One page of queue names (sorted) as URLs: after the queue a NextToken names, at most
/// MaxResults, with a token naming the last one when more follow. Without MaxResults
/// SQS never pages: at most 1000, no token.
fn page(
    ctx: &Ctx<'_>,
    names: impl Iterator<Item = String>,
    max_results: Option<u32>,
    next_token: Option<String>,
) -> Result<(Vec<String>, Option<String>), WireError> {
    let after = match &next_token {
        Some(token) => Some(receipt::parse_next_token(token).ok_or_else(|| {
            WireError::invalid("Invalid NextToken: it is not one this broker handed out.")
        })?),
        None => None,
    };
    let limit = max_results.unwrap_or(LIST_QUEUES_MAX) as usize;
    let mut names: Vec<String> = names
        .filter(|name| after.as_ref().is_none_or(|a| name > a))
        .take(limit + 1)
        .collect();
    let more = names.len() > limit;
    names.truncate(limit);
    let next_token = match (more && max_results.is_some(), names.last()) {
        (true, Some(last)) => Some(receipt::next_token(last)),
        _ => None,
    };
    Ok((names.iter().map(|n| ctx.url(n)).collect(), next_token))
}

/// ListDeadLetterSourceQueues: the queues whose RedrivePolicy names this one, paged as
/// ListQueues.
pub fn list_dead_letter_sources(
    ctx: &Ctx<'_>,
    req: ListDeadLetterSourceQueues,
) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    ctx.meta(&name)?;
    let sources = ctx
        .engine
        .list_queues()
        .into_iter()
        .filter(|(_, c)| {
            c.dead_letter.as_deref() == Some(name.as_str()) && c.max_deliveries.is_some()
        })
        .map(|(source, _)| source);
    let (queue_urls, next_token) = page(ctx, sources, req.max_results, req.next_token)?;
    Ok(Response::ListDeadLetterSourceQueues {
        queue_urls,
        next_token,
    })
}

/// TagQueue: adds or replaces tags (at most 50 on the queue after it).
pub async fn tag(ctx: &Ctx<'_>, req: TagQueue) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    ctx.meta(&name)?;
    let change = QueueChange {
        tags: req.tags.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        ..QueueChange::default()
    };
    ctx.engine
        .alter_queue(&name, change)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    Ok(Response::TagQueue)
}

/// UntagQueue: removes tags; a key the queue does not have is no error.
pub async fn untag(ctx: &Ctx<'_>, req: UntagQueue) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    ctx.meta(&name)?;
    let change = QueueChange {
        tags: req.tag_keys.into_iter().map(|k| (k, None)).collect(),
        ..QueueChange::default()
    };
    ctx.engine
        .alter_queue(&name, change)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    Ok(Response::UntagQueue)
}

pub fn list_tags(ctx: &Ctx<'_>, req: QueueRef) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    let meta = ctx.meta(&name)?;
    Ok(Response::ListQueueTags {
        tags: meta.tags.into_iter().collect(),
    })
}

pub async fn delete(ctx: &Ctx<'_>, req: QueueRef) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    ctx.engine
        .delete_queue(&name)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    Ok(Response::DeleteQueue)
}

/// PurgeQueue: ready and delayed messages go; leased ones stay with their consumers
/// (and no 60 s PurgeQueueInProgress window follows).
pub async fn purge(ctx: &Ctx<'_>, req: QueueRef) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    ctx.engine
        .purge_queue(&name)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    Ok(Response::PurgeQueue)
}

pub async fn get_attributes(ctx: &Ctx<'_>, req: GetQueueAttributes) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    attributes::check_names(&req.attribute_names)?;
    let meta = ctx.meta(&name)?;
    let stats = match attributes::wants_counts(&req.attribute_names) {
        true => Some(
            ctx.engine
                .queue_stats(&name)
                .await
                .map_err(|e| ctx.engine_error(e))?,
        ),
        false => None,
    };
    let attributes =
        attributes::render(&meta, stats.as_ref(), &req.attribute_names, ctx.settings());
    Ok(Response::GetQueueAttributes { attributes })
}

pub async fn set_attributes(ctx: &Ctx<'_>, req: SetQueueAttributes) -> Result<Response, WireError> {
    let name = ctx.queue(&req.queue_url)?;
    let requested = attributes::parse(&req.attributes, ctx.settings())?;
    let meta = ctx.meta(&name)?;
    if requested.fifo.is_some() {
        return Err(WireError::new(
            ErrorCode::InvalidAttributeName,
            "FifoQueue is set when a queue is created and cannot change.",
        ));
    }
    let kept_after =
        QueueChange::apply_map(&meta.attributes, &attributes::change(&requested).attributes);
    attributes::check_fifo(&name, meta.config.fifo, &kept_after)?;
    check_target(ctx, &name, meta.config.fifo, &requested)?;
    ctx.engine
        .alter_queue(&name, attributes::change(&requested))
        .await
        .map_err(|e| ctx.engine_error(e))?;
    Ok(Response::SetQueueAttributes)
}
