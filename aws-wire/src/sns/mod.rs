//! The SNS API (version 2010-03-31) on its one wire, the query protocol (`query`):
//! `decode` turns a form request into a checked `Request`, `encode` and
//! `encode_error` turn an answer into status, headers and XML. Beside the codecs, what
//! the fan-out needs and is pure: filter policies (`filter`), the delivered JSON
//! documents (`envelope`), and how a published message is stored (`record`).
//! Topics, subscriptions and deliveries are the engine's and the front end's.
//!
//! Shared with SQS, not copied: the form parser (`form`), the XML writer (`xml`), the
//! message attribute type and rules (`sqs::MessageAttribute`, `sqs::attributes`), the
//! answer type (`sqs::Encoded`) and the request-id header.

pub mod envelope;
pub mod errors;
pub mod filter;
pub mod model;
pub mod query;
pub mod record;
#[cfg(test)]
mod tests;

pub use errors::{ErrorCode, WireError};
pub use model::*;

use crate::form::Params;
pub use crate::sqs::Encoded;
use crate::sqs::REQUEST_ID_HEADER;

/// The content type of every SNS answer.
pub const CONTENT_TYPE: &str = "text/xml";

/// Reads one request: `query` is the URL's query string (without `?`), `body` the
/// form; `Action` may be in either.
pub fn decode(query: &str, body: &[u8]) -> Result<Request, WireError> {
    query::decode(&Params::parse(body, query)?)
}

/// Writes an answer (status 200).
pub fn encode(response: &Response, request_id: &str) -> Encoded {
    Encoded {
        status: 200,
        content_type: CONTENT_TYPE,
        headers: vec![(REQUEST_ID_HEADER, request_id.to_owned())],
        body: query::encode(response, request_id),
    }
}

/// Writes an error answer with its status.
pub fn encode_error(error: &WireError, request_id: &str) -> Encoded {
    Encoded {
        status: error.code.status(),
        content_type: CONTENT_TYPE,
        headers: vec![(REQUEST_ID_HEADER, request_id.to_owned())],
        body: query::encode_error(error, request_id),
    }
}
