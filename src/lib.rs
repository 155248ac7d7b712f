//! Peregrine: a thread-per-core message broker for bare-metal Linux.
//!
//! `server` runs the broker (one pinned glommio executor per shard, listeners),
//! `engine` is the one typed API per core over the data plane (the `peregrine-shards`
//! crate), `native` and `kafka` are the protocol front ends that call it, `client` the
//! native client library used by the CLI, the bench and the tests, `cli` the
//! command-line front end.

pub mod bench;
pub mod cli;
pub mod client;
pub mod embedded;
pub mod engine;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod native;
pub mod server;
pub mod time;
pub mod tune;
