//! The SQS API (version 2012-11-05) on both of its wires: JSON 1.0 (`json`) and the
//! query protocol (`query`). `decode` turns a request into a checked `Request`,
//! `encode` and `encode_error` turn an answer into status, headers and body. What
//! needs the engine (queues, receipts' leases, queue attributes) is the front end's.

pub mod attributes;
pub mod errors;
pub mod fifo;
pub mod json;
pub mod md5;
pub mod model;
pub mod query;
pub mod receipt;
mod rules;
#[cfg(test)]
mod tests;

pub use errors::{ErrorCode, Fault, WireError};
pub use model::*;

use crate::form::Params;

/// The header every answer carries its request id in.
pub const REQUEST_ID_HEADER: &str = "x-amzn-RequestId";
/// The header that tells a JSON client the query protocol's error code.
pub const QUERY_ERROR_HEADER: &str = "x-amzn-query-error";

/// Which wire a request came on (and its answer goes back on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `X-Amz-Target: AmazonSQS.<Action>`, `application/x-amz-json-1.0`.
    Json,
    /// A form with `Action=<Action>`, answered in XML.
    Query,
}

impl Protocol {
    /// The content type of its answers.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/x-amz-json-1.0",
            Protocol::Query => "text/xml",
        }
    }
}

/// An encoded answer, ready for HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Reads one request. JSON: `target` is the `X-Amz-Target` header, `body` the JSON
/// (`query` is not used). Query: `query` is the URL's query string (without `?`) and
/// `body` the form; `Action` may be in either (`target` is not used).
pub fn decode(
    protocol: Protocol,
    target: Option<&str>,
    query: &str,
    body: &[u8],
) -> Result<Request, WireError> {
    match protocol {
        Protocol::Json => json::decode(target, body),
        Protocol::Query => query::decode(&Params::parse(body, query)?, None),
    }
}

/// A query request posted to a queue's URL: `path_queue_url` (what the front end makes
/// of the request path) is the QueueUrl when the form has none.
pub fn decode_query_at(
    path_queue_url: Option<&str>,
    query: &str,
    body: &[u8],
) -> Result<Request, WireError> {
    query::decode(&Params::parse(body, query)?, path_queue_url)
}

/// Writes an answer (status 200).
pub fn encode(protocol: Protocol, response: &Response, request_id: &str) -> Encoded {
    let body = match protocol {
        Protocol::Json => json::encode(response),
        Protocol::Query => query::encode(response, request_id),
    };
    Encoded {
        status: 200,
        content_type: protocol.content_type(),
        headers: vec![(REQUEST_ID_HEADER, request_id.to_owned())],
        body,
    }
}

/// Writes an error answer: its status, and on JSON the `x-amzn-query-error` header
/// botocore reads the code from.
pub fn encode_error(protocol: Protocol, error: &WireError, request_id: &str) -> Encoded {
    let mut headers = vec![(REQUEST_ID_HEADER, request_id.to_owned())];
    let body = match protocol {
        Protocol::Json => {
            headers.push((QUERY_ERROR_HEADER, error.code.query_error_header()));
            json::encode_error(error)
        }
        Protocol::Query => query::encode_error(error, request_id),
    };
    Encoded {
        status: error.code.status(),
        content_type: protocol.content_type(),
        headers,
        body,
    }
}
