//! ACLs on SNS actions (`--acls`): SNS topics run on the engine's exchanges, so they are
//! Exchange resources; AuthorizationError (403, SNS's own) when the caller may not.
//! Checked before the action runs, so a denied request changes nothing; ListTopics and
//! ListSubscriptions list only what the caller may Describe.
//!
//! | action | operation |
//! |---|---|
//! | Publish, PublishBatch | Write on the topic |
//! | Subscribe | Read on the topic, and Write on the target: the queue (`sqs`) or the topic (`kafka`) |
//! | ConfirmSubscription | Read on the topic, for a signed caller (see below) |
//! | Unsubscribe | Read on the topic |
//! | CreateTopic / DeleteTopic | Create / Delete on the topic |
//! | GetTopicAttributes, ListSubscriptionsByTopic, GetSubscriptionAttributes, ListTagsForResource | Describe on the topic |
//! | SetTopicAttributes, SetSubscriptionAttributes, TagResource, UntagResource | Alter on the topic |
//!
//! ConfirmSubscription follows SNS: the token is the proof, so an unsigned confirmation
//! (an endpoint visiting its SubscribeURL, caller `User:ANONYMOUS`) is served on it
//! alone, unless it asks AuthenticateOnUnsubscribe, which SNS serves signed only. A
//! caller who signed (or showed a client certificate) is checked like any other: it
//! completes a Subscribe, so it needs what Subscribe needs on the topic.

use super::{arns, Ctx};
use crate::http::auth::ANONYMOUS;
use peregrine_aws_wire::sns::{ErrorCode, Request, WireError};
use peregrine_shards::security::{Operation, ResourceType};

/// Whether the caller may do `op` to `rtype` `name`.
pub fn allowed(ctx: &Ctx<'_>, op: Operation, rtype: ResourceType, name: &str) -> bool {
    let host = ctx
        .caller
        .host
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    ctx.engine
        .principal_allowed(&ctx.caller.principal, host, op, rtype, name)
}

/// AuthorizationError unless the caller may do `op` to `rtype` `name`.
fn check(
    ctx: &Ctx<'_>,
    action: &str,
    op: Operation,
    rtype: ResourceType,
    name: &str,
) -> Result<(), WireError> {
    if allowed(ctx, op, rtype, name) {
        return Ok(());
    }
    Err(WireError::new(
        ErrorCode::AuthorizationError,
        format!(
            "User: {} is not authorized to perform: SNS:{action} on resource: {name} ({op:?} on the {})",
            ctx.caller.principal,
            rtype.name()
        ),
    ))
}

/// The checks a request needs before it runs (see the module's table). An ARN that
/// names nothing here is left to the action, which refuses it.
pub fn check_request(ctx: &Ctx<'_>, request: &Request) -> Result<(), WireError> {
    use Operation::*;
    // Without --acls everything is allowed: no name to resolve.
    if !ctx.engine.config().security.acls {
        return Ok(());
    }
    let action = request.action().name();
    let on_topic = |arn: &str, op: Operation| match arns::parse(arn, ctx.settings()) {
        Some(arns::Named::Topic(topic) | arns::Named::Subscription { topic, .. }) => {
            check(ctx, action, op, ResourceType::Exchange, topic)
        }
        None => Ok(()),
    };
    match request {
        Request::CreateTopic(r) => check(ctx, action, Create, ResourceType::Exchange, &r.name),
        Request::DeleteTopic(r) => on_topic(&r.topic_arn, Delete),
        // Filtered by `allowed` instead.
        Request::ListTopics(_) | Request::ListSubscriptions(_) => Ok(()),
        Request::GetTopicAttributes(r) => on_topic(&r.topic_arn, Describe),
        Request::SetTopicAttributes(r) => on_topic(&r.arn, Alter),
        Request::Subscribe(r) => {
            on_topic(&r.topic_arn, Read)?;
            let endpoint = r.endpoint.as_deref().unwrap_or("");
            match r.protocol.as_str() {
                "sqs" => match ctx.settings().queue_of_arn(endpoint) {
                    Some(queue) => check(ctx, action, Write, ResourceType::Queue, queue),
                    None => Ok(()),
                },
                "kafka" => check(ctx, action, Write, ResourceType::Topic, endpoint),
                _ => Ok(()),
            }
        }
        Request::ConfirmSubscription(r) => {
            if ctx.caller.principal != ANONYMOUS {
                on_topic(&r.topic_arn, Read)
            } else if r.authenticate_on_unsubscribe {
                Err(WireError::new(
                    ErrorCode::AuthorizationError,
                    "ConfirmSubscription with AuthenticateOnUnsubscribe=true must be signed",
                ))
            } else {
                Ok(())
            }
        }
        Request::Unsubscribe(r) => on_topic(&r.subscription_arn, Read),
        Request::ListSubscriptionsByTopic(r) => on_topic(&r.topic_arn, Describe),
        Request::GetSubscriptionAttributes(r) => on_topic(&r.subscription_arn, Describe),
        Request::SetSubscriptionAttributes(r) => on_topic(&r.arn, Alter),
        Request::Publish(r) => on_topic(&r.topic_arn, Write),
        Request::PublishBatch(r) => on_topic(&r.topic_arn, Write),
        Request::TagResource(r) => on_topic(&r.resource_arn, Alter),
        Request::UntagResource(r) => on_topic(&r.resource_arn, Alter),
        Request::ListTagsForResource(r) => on_topic(&r.resource_arn, Describe),
    }
}
