//! Per-object gauges: each shard gathers the rows of what it owns (partitions, group
//! offsets, queues) on its own core and publishes them in its `ShardMetrics::snapshot`
//! slot, so a scrape on any core reads them without a cross-core call.
//!
//! `snapshot` is the one place that knows where the objects live (`Shard::open_logs`,
//! `Shard::message_queue`, `Shard::groups`); when the engine API replaces those it is
//! the function to re-point.

use super::local::{PARTITIONS, QUEUES};
use super::{Metrics, ShardMetrics};
use crate::server::shard::Shard;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
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

/// Gathers the rows of what `shard` owns, and forgets the traffic counters of
/// partitions and queues that are gone.
pub async fn snapshot(shard: &Rc<Shard>) -> Snapshot {
    let mut snap = Snapshot::default();
    let catalog = shard.catalog();
    let mut live_partitions = rustc_hash::FxHashMap::<&str, usize>::default();
    for meta in catalog.topics.values() {
        for partition in 0..meta.config.partitions {
            if meta.owner(partition, shard.nshards) != Some(shard.id) {
                continue;
            }
            let Ok(log) = shard.partition(&meta.name, partition) else {
                continue;
            };
            let count = live_partitions.entry(meta.name.as_str()).or_default();
            *count = (*count).max(partition as usize + 1);
            if snap.partitions.len() >= ROWS_MAX {
                snap.rows_left_out += 1;
                continue;
            }
            let traffic = PARTITIONS.with(|p| {
                p.borrow()
                    .get(&meta.name)
                    .and_then(|v| v.get(partition as usize).cloned())
            });
            let traffic = traffic.unwrap_or_default();
            snap.partitions.push(PartitionRow {
                topic: meta.name.clone(),
                partition,
                start_offset: log.start_offset(),
                end_offset: log.end_offset(),
                size_bytes: log.size_bytes(),
                messages_in: traffic.messages_in.get(),
                bytes_in: traffic.bytes_in.get(),
                messages_out: traffic.messages_out.get(),
                bytes_out: traffic.bytes_out.get(),
            });
        }
        glommio::yield_if_needed().await;
    }
    PARTITIONS.with(|p| {
        p.borrow_mut().retain(|topic, rows| {
            let keep = live_partitions.get(topic.as_str()).copied().unwrap_or(0);
            rows.truncate(keep);
            keep > 0
        })
    });
    queues(shard, &catalog, &mut snap);
    group_offsets(shard, &mut snap).await;
    snap
}

fn queues(shard: &Rc<Shard>, catalog: &peregrine_shards::catalog::Catalog, snap: &mut Snapshot) {
    let mut live = rustc_hash::FxHashSet::<&str>::default();
    for meta in catalog.queues.values() {
        let Some(q) = shard.message_queue(&meta.name) else {
            continue;
        };
        live.insert(meta.name.as_str());
        if snap.queues.len() >= ROWS_MAX {
            snap.rows_left_out += 1;
            continue;
        }
        let (stats, dead_lettered) = q.gauges();
        let totals = QUEUES.with(|t| t.borrow().get(&meta.name).cloned());
        let totals = totals.unwrap_or_default();
        snap.queues.push(QueueRow {
            queue: meta.name.clone(),
            ready: stats.ready as u64,
            in_flight: stats.in_flight as u64,
            delayed: stats.delayed as u64,
            published: totals.published.get(),
            acked: totals.acked.get(),
            redelivered: totals.redelivered.get(),
            dead_lettered,
        });
    }
    QUEUES.with(|t| {
        t.borrow_mut()
            .retain(|name, _| live.contains(name.as_str()))
    });
}

async fn group_offsets(shard: &Rc<Shard>, snap: &mut Snapshot) {
    for (group, _state) in shard.groups.list() {
        let Ok(offsets) = shard.groups.fetch_offsets(&group, None).await else {
            continue;
        };
        for o in offsets {
            if snap.group_offsets.len() >= ROWS_MAX {
                snap.rows_left_out += 1;
                continue;
            }
            snap.group_offsets.push(GroupOffsetRow {
                group: group.clone(),
                topic: o.topic,
                partition: o.partition,
                committed: o.offset,
            });
        }
        glommio::yield_if_needed().await;
    }
}

/// Refreshes this shard's rows within `REFRESH_POLL` of a scrape asking, until the
/// shard shuts down. Runs in the shard's background queue.
pub async fn refresh_loop(shard: Rc<Shard>, metrics: Arc<Metrics>, mine: Arc<ShardMetrics>) {
    while !shard.shutdown.is_triggered() {
        let wanted = metrics.wanted();
        if wanted > mine.refreshed.load(Ordering::Acquire) {
            let snap = Arc::new(snapshot(&shard).await);
            match mine.snapshot.lock() {
                Ok(mut slot) => *slot = snap,
                Err(poisoned) => *poisoned.into_inner() = snap,
            }
            mine.refreshed.fetch_max(wanted, Ordering::AcqRel);
        }
        // A plain sleep, as the shard's other background loops do: waiting on the
        // shutdown event beside the timer here (`future::or`) made the shard answer 1000
        // fresh native connections 7x slower and hold 160 MiB more (tests/hammer.rs).
        glommio::timer::sleep(REFRESH_POLL).await;
    }
}
