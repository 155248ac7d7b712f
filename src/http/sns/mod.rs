//! The SNS API on the HTTP listener: SNS's one wire protocol (the query protocol: forms
//! in, XML out), decoded and encoded by `peregrine_aws_wire::sns`, turned here into
//! engine calls. One module per family: `topics` (CreateTopic … ListTagsForResource),
//! `subscriptions` (Subscribe … SetSubscriptionAttributes), `publish` (Publish,
//! PublishBatch), `arns` (topic and subscription ARNs), `policies` (delivery
//! policies), `errors` (engine errors → SNS errors).
//!
//! Decisions (see also the README's "SNS API"):
//! - An SNS topic is the engine's (`Engine::create_sns_topic`): a publish is appended
//!   durably to the topic's backing log and answered; the fan-out worker delivers it to
//!   each confirmed subscription. This module only checks and stores.
//! - ARNs carry `--sqs-region` and `--sqs-account-id` (they cover SNS too); an ARN of
//!   another region or account names nothing here (NotFound or InvalidParameter, as SNS
//!   answers for what it cannot see).
//! - Subscribe serves three protocols: `sqs` (a queue of this broker, by ARN), `http`
//!   (with SNS's confirmation handshake) and `kafka` (an engine topic of this broker, by
//!   name); `https` waits for a TLS client, and email, SMS, mobile push, Lambda and
//!   Firehose have nothing to deliver to here: all are refused naming what is served.
//! - Strict where ignoring would fake a feature: topic and subscription attributes SNS
//!   has but the broker does not honour (access policies, encryption, tracing, archive
//!   and replay policies, feedback roles) are refused by name. A subscription confirmed
//!   with AuthenticateOnUnsubscribe=true is removed only by a signed Unsubscribe (its
//!   notifications' UnsubscribeURL, an unsigned GET, is AuthorizationError), as in SNS.
//! - ACLs (`--acls`) are checked by `access` before an action runs: SNS topics are
//!   Exchange resources (AuthorizationError when denied).
//! - Unsubscribe removes the subscription at once (SubscriptionsDeleted is always 0) and
//!   answers NotFound for one that does not exist.
//! - Metrics: every request counts once in `requests_total{protocol="http"}` by its
//!   action (a request that fails to decode by the action it names); engine errors count
//!   in `errors_total{protocol="http"}` by engine kind, as SQS's do.
//! - Shutdown: an action races the broker's shutdown and answers ServiceUnavailable
//!   when the broker stops first.

mod access;
mod arns;
mod errors;
mod policies;
mod publish;
mod subscriptions;
mod topics;

use crate::config::SqsSettings;
use crate::engine::{Engine, SnsTopicMeta};
use crate::http::auth::Caller;
use crate::metrics::local;
use peregrine_aws_wire::form::Params;
use peregrine_aws_wire::sns::{
    self, is_sns_action, Action, Encoded, ErrorCode, Request, Response, WireError,
};
use peregrine_aws_wire::sqs::receipt;
use std::cell::Cell;

thread_local! {
    /// Requests this shard has answered, for request ids.
    static REQUESTS: Cell<u64> = const { Cell::new(0) };
}

/// An SNS request as the HTTP layer hands it over (always the query protocol).
pub struct SnsHttp<'a> {
    pub query: &'a str,
    pub body: &'a [u8],
    /// Who sent it (`http::auth`).
    pub caller: &'a Caller,
}

/// Whether a query-protocol request (a form POST, or `Action=` in the query string) is
/// SNS's: its `Action` is an SNS action (SQS and SNS share no action name). The action
/// is read without decoding the whole form: action names are plain ASCII, which no
/// client percent-encodes; one that did would reach SQS and be refused as unknown there.
pub fn accepts(query: &str, body: &[u8]) -> bool {
    action_in(query.as_bytes())
        .or_else(|| action_in(body))
        .is_some_and(is_sns_action)
}

/// The value of a form's `Action` pair, as sent.
fn action_in(form: &[u8]) -> Option<&str> {
    form.split(|b| *b == b'&')
        .find_map(|pair| pair.strip_prefix(b"Action="))
        .and_then(|name| std::str::from_utf8(name).ok())
}

/// Answers one SNS request.
pub async fn serve(engine: &Engine, req: SnsHttp<'_>) -> Encoded {
    let request_id = request_id(engine);
    let ctx = Ctx {
        engine,
        caller: req.caller,
    };
    let decoded = sns::decode(req.query, req.body);
    local::sns_request(match &decoded {
        Ok(request) => Some(request.action()),
        Err(_) => action_named(&req),
    });
    let outcome = match decoded {
        Ok(request) => {
            let action = futures_lite::future::or(dispatch(&ctx, request), async {
                engine.shutdown().wait().await;
                Err(WireError::new(
                    ErrorCode::ServiceUnavailable,
                    "The broker is shutting down.",
                ))
            });
            action.await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(response) => sns::encode(&response, &request_id),
        Err(e) => sns::encode_error(&e, &request_id),
    }
}

/// The action a request that could not be decoded names, for the request counters: a
/// bad Publish still counts as a Publish. `None` when its form cannot be read or it
/// names an SNS action the broker does not serve.
fn action_named(req: &SnsHttp<'_>) -> Option<Action> {
    // Only on the error path: a decoded request names its action itself.
    let params = Params::parse(req.body, req.query).ok()?;
    params.get("Action").and_then(Action::from_name)
}

/// Marks SNS request ids, so they never equal an SQS request's id (bit 127 marks
/// `--http-auth` refusals: `auth`).
const SNS_REQUEST_ID_BIT: u128 = 1 << 126;

/// A request id unique to this broker run: the shard and its count of SNS requests.
fn request_id(engine: &Engine) -> String {
    let seq = REQUESTS.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    receipt::uuid(SNS_REQUEST_ID_BIT | (u128::from(engine.shard_id()) << 64) | u128::from(seq))
}

async fn dispatch(ctx: &Ctx<'_>, request: Request) -> Result<Response, WireError> {
    access::check_request(ctx, &request)?;
    match request {
        Request::CreateTopic(r) => topics::create(ctx, r).await,
        Request::DeleteTopic(r) => topics::delete(ctx, r).await,
        Request::ListTopics(r) => topics::list(ctx, r),
        Request::GetTopicAttributes(r) => topics::get_attributes(ctx, r),
        Request::SetTopicAttributes(r) => topics::set_attribute(ctx, r).await,
        Request::TagResource(r) => topics::tag(ctx, r).await,
        Request::UntagResource(r) => topics::untag(ctx, r).await,
        Request::ListTagsForResource(r) => topics::list_tags(ctx, r),
        Request::Subscribe(r) => subscriptions::subscribe(ctx, r).await,
        Request::ConfirmSubscription(r) => subscriptions::confirm(ctx, r).await,
        Request::Unsubscribe(r) => subscriptions::unsubscribe(ctx, r).await,
        Request::ListSubscriptions(r) => subscriptions::list(ctx, r),
        Request::ListSubscriptionsByTopic(r) => subscriptions::list_by_topic(ctx, r),
        Request::GetSubscriptionAttributes(r) => subscriptions::get_attributes(ctx, r),
        Request::SetSubscriptionAttributes(r) => subscriptions::set_attribute(ctx, r).await,
        Request::Publish(r) => publish::publish(ctx, r).await,
        Request::PublishBatch(r) => publish::publish_batch(ctx, r).await,
    }
}

/// What every action needs.
struct Ctx<'a> {
    engine: &'a Engine,
    /// Who sent the request: ACLs are checked for it.
    caller: &'a Caller,
}

impl Ctx<'_> {
    fn settings(&self) -> &SqsSettings {
        &self.engine.config().sqs
    }

    /// The topic a TopicArn names (InvalidParameter when it names none here), and its
    /// catalog entry (NotFound when it does not exist).
    fn topic(&self, arn: &str) -> Result<SnsTopicMeta, WireError> {
        let name = arns::topic_name(arn, self.settings())
            .ok_or_else(|| WireError::invalid(format!("TopicArn: {arn:?} is no topic ARN here")))?;
        self.engine
            .sns_topic(name)
            .ok_or_else(|| errors::topic_not_found(name))
    }

    fn topic_arn(&self, name: &str) -> String {
        self.settings().topic_arn(name)
    }

    fn subscription_arn(&self, topic: &str, id: &str) -> String {
        arns::subscription_arn(self.settings(), topic, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sns_actions_are_told_from_sqs_ones() {
        assert!(accepts("", b"Action=CreateTopic&Name=t&Version=2010-03-31"));
        assert!(accepts(
            "Action=ConfirmSubscription&TopicArn=a&Token=t",
            b""
        ));
        assert!(accepts("", b"Version=2010-03-31&Action=Publish"));
        // Served or not, an SNS action is SNS's to answer.
        assert!(accepts("", b"Action=CreatePlatformEndpoint"));
        for sqs in ["Action=CreateQueue", "Action=ListQueues&Version=2012-11-05"] {
            assert!(!accepts("", sqs.as_bytes()), "{sqs}");
            assert!(!accepts(sqs, b""), "{sqs}");
        }
        assert!(!accepts("", b""));
        assert!(!accepts("", b"Action=Bogus"));
        assert!(!accepts("", b"XAction=CreateTopic"));
        assert!(!accepts("", b"Action=\xff"));
    }
}
