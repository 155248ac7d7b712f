//! Peregrine: a thread-per-core message broker for bare-metal Linux.
//!
//! Dependencies point one way: `cli` -> front ends (`native`, `kafka`, `http`) and
//! `server` -> `engine` -> the data plane (the `peregrine-shards` crate). `engine` is
//! the one typed API per core; each front end turns its protocol into engine calls;
//! `server` binds listeners and hands connections to the front ends it is given.
//! `runtime` (glommio behind a thin module), `shutdown`, `config`, `metrics` and
//! `time` are leaves everyone may use; `auth` (SASL messages, login limits) serves
//! every front end. `client` is the native client library (CLI,
//! bench, tests); `bench` and `tune` are tools the CLI runs; `args` holds the argument
//! types the CLI and the bench share.

pub mod amqp;
pub mod args;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod embedded;
pub mod engine;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod native;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod sns;
pub mod time;
pub mod tune;
