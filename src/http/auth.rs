//! `--http-auth`: the AWS Signature V4 check of every SQS and SNS request, before it is
//! decoded or served. Off by default (any access key is accepted, as local AWS
//! stand-ins do); on, a request must be signed with one of the `--http-access-key`
//! keys, and a refusal is answered in the request's own protocol (SQS JSON, or the
//! query protocol's XML with SQS's or SNS's namespace) so the SDK raises its usual
//! `InvalidClientTokenId` / `SignatureDoesNotMatch` error.
//!
//! The signature itself is verified by `peregrine_aws_wire::sigv4` (AWS's `aws-sigv4`
//! crate). The operator routes (`/metrics`, `/healthz`, `/readyz`) are not AWS
//! requests and are never checked.

use crate::config::HttpAccessKeys;
use crate::engine::Engine;
use crate::http::{sqs, HEADERS_MAX};
use peregrine_aws_wire::form::Params;
use peregrine_aws_wire::sigv4::{self, AuthError, SignedRequest};
use peregrine_aws_wire::sns;
use peregrine_aws_wire::sqs::{receipt, Encoded, Protocol, QUERY_ERROR_HEADER, REQUEST_ID_HEADER};
use std::cell::Cell;
use std::time::SystemTime;

/// Marks the request ids of refusals, so they never equal the id of a served request.
const REFUSAL_ID_BIT: u128 = 1 << 127;

thread_local! {
    /// Requests this shard has refused, for request ids.
    static REFUSED: Cell<u64> = const { Cell::new(0) };
}

/// The answer refusing an SQS or SNS request that `--http-auth` does not let through;
/// `None` lets it through (auth off, not an AWS API request, or signed by a known key).
/// `raw_head` is the request's head as received (request line and headers).
pub fn refuse(engine: &Engine, method: &str, raw_head: &[u8], body: &[u8]) -> Option<Encoded> {
    let keys = engine.config().http_auth.as_ref()?;
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    // The connection parsed this head already; one that does not parse again is refused.
    let complete = matches!(req.parse(raw_head), Ok(httparse::Status::Complete(_)));
    let target = req.path.unwrap_or("");
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let protocol = sqs::accepts(
        method,
        header("x-amz-target"),
        header("content-type"),
        query,
    )?;
    // Visiting a SubscribeURL confirms an SNS subscription with a plain unsigned GET: the
    // token in it is the proof, as in SNS.
    if method == "GET" && header("authorization").is_none() && confirms_by_token(query) {
        return None;
    }
    let result = if complete {
        let pairs: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
        let signed = SignedRequest {
            method,
            target,
            headers: &pairs,
            body,
        };
        sigv4::verify(&signed, &|key| lookup(keys, key), SystemTime::now())
    } else {
        Err(AuthError::Incomplete(
            "The request head could not be read.".into(),
        ))
    };
    let error = result.err()?;
    tracing::debug!("HTTP request refused by --http-auth: {error}");
    // Counted as the engine counts a refused access, so refusals show in errors_total.
    let refused = crate::engine::EngineError::AccessRefused(String::new());
    crate::metrics::local::error(crate::metrics::Protocol::Http, refused.metrics_index());
    Some(answer(engine, protocol, query, body, &error))
}

/// Whether a query string is an SNS ConfirmSubscription carrying a token.
fn confirms_by_token(query: &str) -> bool {
    peregrine_aws_wire::form::Params::parse(b"", query).is_ok_and(|p| {
        p.get("Action") == Some("ConfirmSubscription")
            && p.get("Token").is_some_and(|t| !t.is_empty())
    })
}

fn lookup(keys: &HttpAccessKeys, key: &str) -> Option<String> {
    keys.secret(key).map(str::to_owned)
}

/// The refusal in the request's protocol.
fn answer(
    engine: &Engine,
    protocol: Protocol,
    query: &str,
    body: &[u8],
    error: &AuthError,
) -> Encoded {
    let seq = REFUSED.with(|n| {
        n.set(n.get().wrapping_add(1));
        n.get()
    });
    let request_id =
        receipt::uuid(REFUSAL_ID_BIT | (u128::from(engine.shard_id()) << 64) | u128::from(seq));
    let mut headers = vec![(REQUEST_ID_HEADER, request_id.clone())];
    let body = match protocol {
        Protocol::Json => {
            headers.push((QUERY_ERROR_HEADER, error.query_error_header()));
            error.json_body()
        }
        Protocol::Query => {
            let sns_action = Params::parse(body, query)
                .ok()
                .and_then(|p| p.get("Action").map(sns::is_sns_action))
                .unwrap_or(false);
            let namespace = if sns_action {
                sns::query::NAMESPACE
            } else {
                peregrine_aws_wire::sqs::query::NAMESPACE
            };
            error.query_body(namespace, &request_id)
        }
    };
    Encoded {
        status: error.status(),
        content_type: protocol.content_type(),
        headers,
        body,
    }
}
