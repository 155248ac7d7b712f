//! Peregrine's data plane: everything one core owns.
//!
//! Each type here lives on exactly one shard (one pinned glommio executor) and is
//! `!Send` where it holds I/O state. Nothing in this crate opens a socket or parses a
//! wire protocol; `src/` turns bytes on sockets into calls on these types.

pub mod batch;
pub mod catalog;
pub mod checked_file;
pub mod compression;
pub mod data_dir_lock;
pub mod groups;
pub mod log;
pub mod partitioner;
pub mod queues;
pub mod records;
pub mod replace_file;
pub mod security;
pub mod sns;
pub mod state_log;
pub mod sys;
#[cfg(test)]
pub(crate) mod test_support;
pub mod time;
pub mod txn;
