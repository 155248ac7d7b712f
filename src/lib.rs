//! Peregrine: a thread-per-core message broker for bare-metal Linux.
//!
//! `server` runs the broker (one pinned glommio executor per shard), `native` is the
//! native protocol, `client` the native client library used by the CLI, the bench and
//! the tests, `cli` the command-line front end. The data plane lives in the
//! `peregrine-shards` crate.

pub mod bench;
pub mod cli;
pub mod client;
pub mod embedded;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod native;
pub mod server;
pub mod time;
pub mod tune;
