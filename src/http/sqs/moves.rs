//! The message move task actions: StartMessageMoveTask, CancelMessageMoveTask and
//! ListMessageMoveTasks, over the engine's move tasks (`engine::moves`).
//!
//! A TaskHandle names the source queue's catalog id, the task and the queue
//! (base64url), so a cancel reaches the source's shard and a handle of a deleted and
//! re-created queue names nothing. Tasks and their ids are journaled, so a handle
//! still names its task after a restart (`engine::moves`). As in SQS, the source must be a dead-letter queue
//! (some queue's RedrivePolicy names it); without DestinationArn each message goes back
//! to the queue it was dead-lettered from.

use super::{urls, Ctx};
use crate::engine::moves::{MoveStatus, MoveTask};
use crate::engine::QueueMeta;
use peregrine_aws_wire::sqs::{
    receipt, CancelMessageMoveTask, ErrorCode, ListMessageMoveTasks, MoveTaskEntry, Response,
    StartMessageMoveTask, WireError,
};
use peregrine_shards::security::Operation;

fn not_found(what: &str) -> WireError {
    WireError::new(ErrorCode::ResourceNotFound, what.to_string())
}

/// The queue an ARN names, which must exist.
fn queue_of(ctx: &Ctx<'_>, arn: &str) -> Result<QueueMeta, WireError> {
    urls::arn_queue(arn, ctx.settings())
        .and_then(|name| ctx.engine.queue_meta(&name))
        .ok_or_else(|| not_found(&format!("The resource {arn} does not exist.")))
}

pub async fn start(ctx: &Ctx<'_>, req: StartMessageMoveTask) -> Result<Response, WireError> {
    let source = queue_of(ctx, &req.source_arn)?;
    let is_dead_letter_queue = ctx.engine.list_queues().iter().any(|(_, c)| {
        c.dead_letter.as_deref() == Some(source.name.as_str()) && c.max_deliveries.is_some()
    });
    if !is_dead_letter_queue {
        return Err(WireError::invalid(format!(
            "Source queue {} must be configured as a dead-letter queue (the RedrivePolicy target of another queue).",
            source.name
        )));
    }
    let destination = match &req.destination_arn {
        Some(arn) => Some(queue_of(ctx, arn)?.name),
        None => None,
    };
    let task = ctx
        .engine
        .start_move(&source.name, destination, req.max_per_second)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    Ok(Response::StartMessageMoveTask {
        task_handle: handle(&source, &task),
    })
}

fn handle(source: &QueueMeta, task: &MoveTask) -> String {
    receipt::next_token(&format!("{}:{}:{}", source.id, task.id, source.name))
}

/// The source queue and task a handle names, if that queue still exists.
fn parse_handle(ctx: &Ctx<'_>, handle: &str) -> Option<(QueueMeta, u64)> {
    let text = receipt::parse_next_token(handle)?;
    let mut parts = text.splitn(3, ':');
    let queue_id = parts.next()?.parse::<u64>().ok()?;
    let task_id = parts.next()?.parse::<u64>().ok()?;
    let meta = ctx.engine.queue_meta(parts.next()?)?;
    (meta.id == queue_id).then_some((meta, task_id))
}

pub async fn cancel(ctx: &Ctx<'_>, req: CancelMessageMoveTask) -> Result<Response, WireError> {
    let gone = || not_found("The task handle names no running message move task.");
    let (source, id) = parse_handle(ctx, &req.task_handle).ok_or_else(gone)?;
    let action = "CancelMessageMoveTask";
    super::access::check(ctx, action, Operation::Read, &source.name)?;
    let task = ctx
        .engine
        .cancel_move(&source.name, id)
        .await
        .map_err(|e| ctx.engine_error(e))?
        .ok_or_else(gone)?;
    Ok(Response::CancelMessageMoveTask { moved: task.moved })
}

pub async fn list(ctx: &Ctx<'_>, req: ListMessageMoveTasks) -> Result<Response, WireError> {
    let source = queue_of(ctx, &req.source_arn)?;
    let tasks = ctx
        .engine
        .move_tasks(&source.name)
        .await
        .map_err(|e| ctx.engine_error(e))?;
    let results = tasks
        .iter()
        .take(req.max_results as usize)
        .map(|t| MoveTaskEntry {
            task_handle: (t.status == MoveStatus::Running).then(|| handle(&source, t)),
            status: t.status.as_str().to_string(),
            source_arn: ctx.settings().queue_arn(&source.name),
            destination_arn: t.destination.as_ref().map(|d| ctx.settings().queue_arn(d)),
            max_per_second: t.max_per_second,
            moved: t.moved,
            to_move: t.to_move,
            failure_reason: t.failure.clone(),
            started_ms: t.started_ms,
        })
        .collect();
    Ok(Response::ListMessageMoveTasks { results })
}
