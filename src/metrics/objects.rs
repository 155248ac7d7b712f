//! Per-object gauges: each shard gathers the rows of what it owns (partitions, group
//! offsets, queues) on its own core and publishes them in its `ShardMetrics::snapshot`
//! slot, so a scrape on any core reads them without a cross-core call.
//!
//! The rows are gathered by the engine (`engine::observe`), which knows where its
//! objects live; this module only defines them.

use std::time::Duration;

/// How often a shard looks whether a scrape asked for fresh rows. Rows are gathered only
/// when asked: a broker nobody scrapes spends nothing on them.
pub const REFRESH_POLL: Duration = Duration::from_millis(20);
/// Most rows of each kind (partitions, group offsets, queues) one shard reports; more
/// are left out and counted in `Snapshot::rows_left_out`.
pub const ROWS_MAX: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRow {
    pub topic: String,
    pub partition: i32,
    pub start_offset: i64,
    pub end_offset: i64,
    pub size_bytes: u64,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsetRow {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    pub queue: String,
    pub ready: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub published: u64,
    pub acked: u64,
    pub redelivered: u64,
    pub dead_lettered: u64,
}

/// One shard's rows at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub partitions: Vec<PartitionRow>,
    pub group_offsets: Vec<GroupOffsetRow>,
    pub queues: Vec<QueueRow>,
    pub rows_left_out: u64,
}
