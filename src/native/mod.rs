//! Native protocol: rkyv-framed envelopes with raw record-batch payloads.

pub mod connection;
pub mod frame;
pub mod messages;
