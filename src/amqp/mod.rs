//! The AMQP 0-9-1 front end (`serve --amqp-addr`): RabbitMQ clients (pika, lapin,
//! amqplib, the Java and .NET clients) on the engine's queues and exchanges.
//!
//! Frames and methods are decoded and encoded by `amq-protocol` (sans-IO, no default
//! features); this module owns the connection's state machine and maps each method to
//! engine calls. `connection`: handshake, frame loop, heartbeats, connection errors;
//! `channel`: one channel's state and method dispatch; `declare`: exchanges, queues and
//! bindings; `publish`: publishes and confirms; `consume`: consumers, deliveries, acks;
//! `props`: message properties in engine headers; `auth`: SASL against the user store;
//! `access`: ACLs on methods;
//! `frames`: framing and the output buffer; `errors`: reply codes.

mod access;
pub mod auth;
mod channel;
mod connection;
mod consume;
mod declare;
pub mod errors;
pub mod frames;
pub mod props;
mod publish;
mod stream;

pub use connection::{refusal, serve, CHANNEL_MAX, FRAME_MAX, HANDSHAKE_TIMEOUT, HEARTBEAT_S};
pub use consume::{CONSUMERS_MAX, UNACKED_MAX};

/// `serve --amqp-addr`'s default: RabbitMQ's port, on loopback.
pub const AMQP_ADDR_DEFAULT: &str = "127.0.0.1:5672";
