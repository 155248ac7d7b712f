//! ACLs on SQS actions (`--acls`): the operation on the queue each action needs, as
//! Kafka's operations read for a queue, and AccessDenied (403, botocore's `AccessDenied`
//! code) when the caller may not. Checked before the action runs, so a denied request
//! changes nothing; ListQueues lists only the queues the caller may Describe.
//!
//! | action | operation on the queue |
//! |---|---|
//! | SendMessage(Batch) | Write |
//! | ReceiveMessage, DeleteMessage(Batch), ChangeMessageVisibility(Batch) | Read |
//! | CreateQueue | Create |
//! | DeleteQueue, PurgeQueue | Delete |
//! | GetQueueUrl, GetQueueAttributes, ListQueueTags, ListDeadLetterSourceQueues | Describe |
//! | SetQueueAttributes, TagQueue, UntagQueue | Alter |
//! | StartMessageMoveTask | Read on the source, Write on the destination |
//! | CancelMessageMoveTask | Read on the source (checked once its handle is read) |
//! | ListMessageMoveTasks | Describe on the source |

use super::{urls, Ctx};
use peregrine_aws_wire::sqs::{ErrorCode, Request, WireError};
use peregrine_shards::security::{Operation, ResourceType};

/// Whether the caller may do `op` to queue `name`.
pub fn allowed(ctx: &Ctx<'_>, op: Operation, name: &str) -> bool {
    let host = ctx
        .caller
        .host
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    ctx.engine
        .principal_allowed(&ctx.caller.principal, host, op, ResourceType::Queue, name)
}

/// AccessDenied unless the caller may do `op` to queue `name`.
pub fn check(ctx: &Ctx<'_>, action: &str, op: Operation, name: &str) -> Result<(), WireError> {
    if allowed(ctx, op, name) {
        return Ok(());
    }
    Err(WireError::new(
        ErrorCode::AccessDenied,
        format!(
            "User: {} is not authorized to perform: sqs:{action} on resource: {name} ({op:?} on the queue)",
            ctx.caller.principal
        ),
    ))
}

/// The checks a request needs before it runs (see the module's table). A queue URL or
/// ARN that names no queue of this broker is left to the action, which refuses it.
pub fn check_request(ctx: &Ctx<'_>, request: &Request) -> Result<(), WireError> {
    use Operation::*;
    // Without --acls everything is allowed: no name to resolve.
    if !ctx.engine.config().security.acls {
        return Ok(());
    }
    let action = request.action().name();
    let by_url = |url: &str, op: Operation| match ctx.queue(url) {
        Ok(name) => check(ctx, action, op, &name),
        Err(_) => Ok(()),
    };
    let by_arn = |arn: &str, op: Operation| match urls::arn_queue(arn, ctx.settings()) {
        Some(name) => check(ctx, action, op, &name),
        None => Ok(()),
    };
    match request {
        Request::CreateQueue(r) => check(ctx, action, Create, &r.queue_name),
        Request::GetQueueUrl(r) => check(ctx, action, Describe, &r.queue_name),
        // Filtered by `allowed` instead.
        Request::ListQueues(_) => Ok(()),
        Request::DeleteQueue(r) | Request::PurgeQueue(r) => by_url(&r.queue_url, Delete),
        Request::ListQueueTags(r) => by_url(&r.queue_url, Describe),
        Request::GetQueueAttributes(r) => by_url(&r.queue_url, Describe),
        Request::ListDeadLetterSourceQueues(r) => by_url(&r.queue_url, Describe),
        Request::SetQueueAttributes(r) => by_url(&r.queue_url, Alter),
        Request::TagQueue(r) => by_url(&r.queue_url, Alter),
        Request::UntagQueue(r) => by_url(&r.queue_url, Alter),
        Request::SendMessage(r) => by_url(&r.queue_url, Write),
        Request::SendMessageBatch(r) => by_url(&r.queue_url, Write),
        Request::ReceiveMessage(r) => by_url(&r.queue_url, Read),
        Request::DeleteMessage(r) => by_url(&r.queue_url, Read),
        Request::DeleteMessageBatch(r) => by_url(&r.queue_url, Read),
        Request::ChangeMessageVisibility(r) => by_url(&r.queue_url, Read),
        Request::ChangeMessageVisibilityBatch(r) => by_url(&r.queue_url, Read),
        Request::StartMessageMoveTask(r) => {
            by_arn(&r.source_arn, Read)?;
            match &r.destination_arn {
                Some(arn) => by_arn(arn, Write),
                None => Ok(()),
            }
        }
        // The handle names the source: `moves::cancel` checks once it has read it.
        Request::CancelMessageMoveTask(_) => Ok(()),
        Request::ListMessageMoveTasks(r) => by_arn(&r.source_arn, Describe),
    }
}
