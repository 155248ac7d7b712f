//! The SQS API on the HTTP listener: both of SQS's wire protocols (JSON 1.0, which
//! current SDKs speak, and the query protocol of older ones: forms in, XML out), decoded
//! and encoded by `peregrine_aws_wire::sqs`, turned here into engine calls. One module
//! per family: `queues` (CreateQueue … SetQueueAttributes, tags,
//! ListDeadLetterSourceQueues), `messages` (Send … ChangeMessageVisibilityBatch),
//! `moves` (message move tasks), `attributes` (queue attributes ↔ `QueueConfig` and the
//! queue's catalog attributes), `urls` (queue URLs and ARNs), `errors` (engine errors →
//! SQS errors).
//!
//! Decisions (see also the README's "SQS API"):
//! - An SQS queue is an engine queue: AMQP and native clients see it, and SQS sees
//!   theirs. Message attributes are the message's headers; a header without an SQS
//!   type reads as a String attribute, and bodies that are not valid SQS text are sent
//!   lossily (invalid characters as U+FFFD) with MD5OfBody over what is sent.
//! - Queue URLs are `http://{Host}/{--sqs-account-id}/{name}` (`urls`); any host
//!   reaches the queue. ARNs carry `--sqs-region`.
//! - Receipt handles carry the queue's catalog id (tagged with the broker run, since
//!   leases end at a restart), the message id and the engine's lease handle
//!   (`messages`), so an old or foreign receipt is refused, never applied to another
//!   lease. MessageIds are the catalog id and message id as a UUID: the
//!   same on every receive and across restarts.
//! - FIFO queues are the engine's FIFO queues: order per MessageGroupId, a receive
//!   handing out a free group's ready messages in order and none of that group again
//!   until they are settled (as SQS), and a 5-minute
//!   deduplication window answering a duplicate with the original's MessageId and
//!   SequenceNumber (the engine's message id, 20 digits). The MessageDeduplicationId and
//!   AWSTraceHeader travel as `sqs:`-named headers (`fifo::DEDUP_ID_HEADER`,
//!   `attributes::TRACE_HEADER`), which no SQS attribute name can be. A standard queue's
//!   MessageGroupId (SQS's fair queues) is kept the same way (`fifo::GROUP_ID_HEADER`)
//!   and returned on receive; it orders nothing (fairness between groups is the one
//!   queue's order here).
//! - Lenient where AWS asks clients to be: unknown system attribute names in
//!   ReceiveMessage are ignored, and so is ReceiveRequestAttemptId on a standard queue
//!   (as SQS does). Strict where ignoring would fake a feature: policies and encryption
//!   are refused with an error naming them.
//! - SigV4 signatures are checked by `http::auth` (without `--http-auth` an unsigned
//!   request, or one signed with an unknown key, is `User:ANONYMOUS`); ACLs by `access`
//!   before an action runs (AccessDenied).
//! - PurgeQueue leaves leased messages with their consumers and has no 60 s
//!   PurgeQueueInProgress window; a deleted queue's name may be created again at once.
//! - Metrics: every request counts once in `requests_total{protocol="http"}` by its
//!   action (a request that fails to decode by the action it names; an action the broker
//!   does not serve as "unknown"); every failed request counts once in
//!   `errors_total{protocol="http"}` by engine kind: engine errors by their own, errors
//!   found before the engine (decoding, validation, a queue found missing) by the kind
//!   they stand for (`errors::wire_kind`: InvalidRequest, UnknownQueue, NotSupported, …).
//! - Shutdown: an action races the broker's shutdown and answers ServiceUnavailable
//!   when the broker stops first (a long poll does not hold the shutdown up).

mod access;
mod attributes;
mod errors;
mod messages;
mod moves;
mod queues;
mod urls;

use crate::config::SqsSettings;
use crate::engine::{Engine, EngineError, QueueMeta};
use crate::http::auth::Caller;
use crate::metrics::{self, local};
use peregrine_aws_wire::form::Params;
use peregrine_aws_wire::sqs::{self, receipt, Action, ErrorCode, Request, Response, WireError};
pub use peregrine_aws_wire::sqs::{Encoded, Protocol};
use std::cell::Cell;

/// `X-Amz-Target` prefix of SQS's JSON 1.0 protocol.
const TARGET_PREFIX: &str = "AmazonSQS.";

thread_local! {
    /// Requests this shard has answered, for request ids.
    static REQUESTS: Cell<u64> = const { Cell::new(0) };
}

/// An SQS request as the HTTP layer hands it over.
pub struct SqsHttp<'a> {
    pub protocol: Protocol,
    /// The path, without the query string: a query client may post to the queue's URL
    /// and leave QueueUrl out of the form (the AWS SDK for Java 1.x does).
    pub path: &'a str,
    pub query: &'a str,
    pub host: Option<&'a str>,
    /// The request came over TLS (queue URLs then say `https`).
    pub tls: bool,
    pub target: Option<&'a str>,
    pub body: &'a [u8],
    /// Who sent it (`http::auth`).
    pub caller: &'a Caller,
}

/// Whether a request is one an SQS client sends, and in which protocol: a POST with
/// `X-Amz-Target: AmazonSQS.*` is JSON 1.0; a form POST, or any request with `Action=`
/// in its query string, is the query protocol (on any path: query clients post to the
/// queue's URL).
pub fn accepts(
    method: &str,
    target: Option<&str>,
    content_type: Option<&str>,
    query: &str,
) -> Option<Protocol> {
    if method == "POST" && target.is_some_and(|t| t.starts_with(TARGET_PREFIX)) {
        return Some(Protocol::Json);
    }
    let form = content_type.is_some_and(|c| {
        c.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    let action_in_query = query.split('&').any(|pair| pair.starts_with("Action="));
    ((method == "POST" && form) || action_in_query).then_some(Protocol::Query)
}

/// An SQS request's answer, and the shard that owns the queue it named (if it named one
/// that exists): the HTTP connection may move there (`http::handoff`).
pub struct Served {
    pub encoded: Encoded,
    pub queue_owner: Option<u32>,
}

/// Answers one SQS request.
pub async fn serve(engine: &Engine, req: SqsHttp<'_>) -> Served {
    let request_id = request_id(engine);
    let protocol = req.protocol;
    let ctx = Ctx {
        engine,
        caller: req.caller,
        host: req.host,
        tls: req.tls,
        counted: Cell::new(false),
        queue_owner: Cell::new(None),
    };
    let decoded = match protocol {
        Protocol::Json => sqs::decode(protocol, req.target, req.query, req.body),
        Protocol::Query => {
            let path_queue_url = Some(req.path).filter(|p| !p.is_empty() && *p != "/");
            sqs::decode_query_at(path_queue_url, req.query, req.body)
        }
    };
    local::sqs_request(match &decoded {
        Ok(request) => Some(request.action()),
        Err(_) => action_named(protocol, &req),
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
    let encoded = match outcome {
        Ok(response) => sqs::encode(protocol, &response, &request_id),
        Err(e) => {
            // Errors the engine raised were counted by their engine kind already.
            if !ctx.counted.get() {
                local::error(metrics::Protocol::Http, errors::wire_kind(e.code));
            }
            sqs::encode_error(protocol, &e, &request_id)
        }
    };
    Served {
        encoded,
        queue_owner: ctx.queue_owner.get(),
    }
}

/// The action a request that could not be decoded names, for the request counters:
/// a bad SendMessage still counts as a SendMessage. `None` when it names none the broker
/// serves (or its form cannot be read).
fn action_named(protocol: Protocol, req: &SqsHttp<'_>) -> Option<Action> {
    let name = match protocol {
        Protocol::Json => req.target.and_then(|t| t.strip_prefix(TARGET_PREFIX))?,
        Protocol::Query => {
            // Only on the error path: a decoded request names its action itself.
            let params = Params::parse(req.body, req.query).ok()?;
            return params.get("Action").and_then(Action::from_name);
        }
    };
    Action::from_name(name)
}

/// A request id unique to this broker run: the shard and its count of requests.
fn request_id(engine: &Engine) -> String {
    let seq = REQUESTS.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    receipt::uuid((u128::from(engine.shard_id()) << 64) | u128::from(seq))
}

async fn dispatch(ctx: &Ctx<'_>, request: Request) -> Result<Response, WireError> {
    access::check_request(ctx, &request)?;
    match request {
        Request::CreateQueue(r) => queues::create(ctx, r).await,
        Request::GetQueueUrl(r) => queues::get_url(ctx, r),
        Request::ListQueues(r) => queues::list(ctx, r),
        Request::DeleteQueue(r) => queues::delete(ctx, r).await,
        Request::PurgeQueue(r) => queues::purge(ctx, r).await,
        Request::GetQueueAttributes(r) => queues::get_attributes(ctx, r).await,
        Request::SetQueueAttributes(r) => queues::set_attributes(ctx, r).await,
        Request::SendMessage(r) => messages::send(ctx, r).await,
        Request::SendMessageBatch(r) => messages::send_batch(ctx, r).await,
        Request::ReceiveMessage(r) => messages::receive(ctx, r).await,
        Request::DeleteMessage(r) => messages::delete(ctx, r).await,
        Request::DeleteMessageBatch(r) => messages::delete_batch(ctx, r).await,
        Request::ChangeMessageVisibility(r) => messages::change_visibility(ctx, r).await,
        Request::ChangeMessageVisibilityBatch(r) => messages::change_visibility_batch(ctx, r).await,
        Request::TagQueue(r) => queues::tag(ctx, r).await,
        Request::UntagQueue(r) => queues::untag(ctx, r).await,
        Request::ListQueueTags(r) => queues::list_tags(ctx, r),
        Request::ListDeadLetterSourceQueues(r) => queues::list_dead_letter_sources(ctx, r),
        Request::StartMessageMoveTask(r) => moves::start(ctx, r).await,
        Request::CancelMessageMoveTask(r) => moves::cancel(ctx, r).await,
        Request::ListMessageMoveTasks(r) => moves::list(ctx, r).await,
    }
}

/// What every action needs: the engine and how the client reached us.
struct Ctx<'a> {
    engine: &'a Engine,
    /// Who sent the request: ACLs are checked for it.
    caller: &'a Caller,
    host: Option<&'a str>,
    tls: bool,
    /// This request's error is in `errors_total` already (an engine error).
    counted: Cell<bool>,
    /// The shard that owns the queue the request named (`meta` found it).
    queue_owner: Cell<Option<u32>>,
}

impl Ctx<'_> {
    fn settings(&self) -> &SqsSettings {
        &self.engine.config().sqs
    }

    /// The URL a client uses for a queue.
    fn url(&self, name: &str) -> String {
        let host = match self.host {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => self.engine.config().http_addr.to_string(),
        };
        let scheme = if self.tls { "https" } else { "http" };
        urls::queue_url(scheme, &host, self.settings(), name)
    }

    /// The queue a QueueUrl names (not yet checked to exist).
    fn queue(&self, url: &str) -> Result<String, WireError> {
        urls::queue_name(url, self.settings())
    }

    /// A queue's catalog entry, or QueueDoesNotExist (counted by `serve` as the engine's
    /// UnknownQueue, as when an engine call finds it missing).
    fn meta(&self, name: &str) -> Result<QueueMeta, WireError> {
        let meta = self.engine.queue_meta(name).ok_or_else(|| {
            WireError::new(
                ErrorCode::QueueDoesNotExist,
                format!("The specified queue {name} does not exist."),
            )
        })?;
        self.queue_owner
            .set(Some(meta.owner(self.engine.shard_count())));
        Ok(meta)
    }

    /// An engine error as SQS's, counted once by its engine kind.
    fn engine_error(&self, e: EngineError) -> WireError {
        self.counted.set(true);
        errors::from_engine(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_requests_are_told_from_operator_ones() {
        let json = accepts("POST", Some("AmazonSQS.ListQueues"), None, "");
        assert_eq!(json, Some(Protocol::Json));
        let form = Some("application/x-www-form-urlencoded; charset=utf-8");
        assert_eq!(accepts("POST", None, form, ""), Some(Protocol::Query));
        assert_eq!(
            accepts("GET", None, None, "Action=ListQueues&Version=2012-11-05"),
            Some(Protocol::Query)
        );
        // What the operator routes get stays theirs.
        assert_eq!(accepts("GET", None, None, ""), None);
        assert_eq!(accepts("POST", None, Some("text/plain"), ""), None);
        assert_eq!(
            accepts("POST", Some("Kinesis_20131202.ListStreams"), None, ""),
            None
        );
        assert_eq!(accepts("GET", Some("AmazonSQS.ListQueues"), None, ""), None);
    }
}
