//! Native protocol front end: rkyv-framed envelopes with raw record-batch payloads.
//!
//! `frame` and `messages` are the wire format (shared with the client library),
//! `connection` one client connection (framing, pipelining, push subscriptions),
//! `handler` the requests as engine calls, `convert` wire types to and from the
//! engine's, `errors` engine errors as native codes, `auth` a connection's SCRAM
//! handshake and the gate before it, `authz` what each request needs under `--acls`.

pub mod auth;
pub mod authz;
pub mod connection;
pub mod convert;
pub mod errors;
pub mod frame;
pub mod handler;
pub mod messages;
