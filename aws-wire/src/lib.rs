//! Sans-IO codecs for the AWS wire protocols Peregrine serves (no sockets, no engine),
//! so each can be tested and fuzzed alone and shared by later AWS front ends (SNS uses
//! the same query form, XML writer and error envelope).
//!
//! - `form`: `application/x-www-form-urlencoded` parameters with indexed list keys;
//!   at most `form::PAIRS_MAX` pairs, strict decoding.
//! - `xml`: an escaping XML writer for query-protocol answers.
//! - `sqs`: the SQS API (2012-11-05) over JSON 1.0 and the query protocol: requests
//!   decoded and checked against SQS's limits (`sqs::model`), answers and errors
//!   encoded, MD5 digests, receipt handles and message ids, message attributes as
//!   engine headers.
//! - `sigv4`: verification of the SDKs' AWS Signature V4 (`serve --http-auth`).
//! - `sns`: the SNS API (2010-03-31) over the query protocol, its filter policies,
//!   the JSON envelopes it delivers, and how a published message is stored.
//!
//! Bounds: the caller caps the body (the HTTP front end does); within it every list a
//! client can grow has a named limit (`sqs::model::*_MAX`, `form::PAIRS_MAX`), and
//! serde_json's recursion limit bounds JSON nesting.

pub mod batch;
pub mod form;
pub mod sigv4;
pub mod sns;
pub mod sqs;
pub mod xml;
