//! Committed offsets of every group one shard owns, kept in a partition log of the
//! shard's own (as Kafka keeps them in `__consumer_offsets`): one storage machinery
//! for topics, queue journals and offsets, so that a transactional offset commit
//! (issue 18) can later be a batch in a transaction like any other.
//!
//! Owned by the shard; `!Send`; state in a `RefCell` never borrowed across an await.
//!
//! Layout: `<groups dir>/__consumer_offsets/<shard>/`, a [`PartitionLog`] of record
//! batches whose records are `offset_records`: key group/topic/partition, value the
//! offset, metadata and commit time; a null value is a tombstone. A directory of an
//! older release named `__consumer_offsets` holds only `offsets.log`, which the
//! upgrade removes; the log lives in the numbered directories below it.
//!
//! - Commit: one batch appended (offsets assigned in call order, no await between the
//!   append and applying it to the map), answered after `wait_durable`: written and
//!   covered by an fdatasync, shared with every commit in the same flush (group
//!   commit). The map holds what was appended; a fetch first waits until everything
//!   appended is durable, so it never answers a value a crash could take back.
//! - Open: replay the log from its start; the log's own recovery has already cut a torn
//!   tail. A malformed record fails the open rather than guess at offsets.
//! - Compaction (checkpoint): once the log passes `max(compact_bytes, 2 × last
//!   checkpoint)`, the live map is appended as batches, and once they are durable the
//!   log start moves to the first of them (DeleteRecords), which drops every whole
//!   segment before it. A crash in between leaves old records and the checkpoint, and
//!   replaying both gives the same map.
//! - After a failed write or fdatasync the log refuses appends and durable waits, so
//!   commits and fetches fail until a restart recovers what is durable.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use super::offset_records::{decode_batch, encode_batch, OffsetRecord, OffsetValue};
use super::{CommittedOffset, GroupError};
use crate::batch::BatchHeader;
use crate::log::{BatchCache, LogConfig, LogError, PartitionLog, StorageFault};

/// Distinct (topic, partition) offsets one group may hold.
pub(crate) const OFFSETS_PER_GROUP_MAX: usize = 100_000;
/// Commits of one shard that may wait for the disk at once; more are refused.
const COMMITS_IN_FLIGHT_MAX: usize = 4096;
/// Bytes read per step while replaying the log at open.
const REPLAY_READ_BYTES: usize = 1 << 20;
/// Records per checkpoint batch: keeps each batch far below the log's batch limit.
const CHECKPOINT_RECORDS_PER_BATCH: usize = 2048;
/// The offsets log's own batch cache: it is read only at open, so a small one.
const CACHE_BYTES: usize = 1 << 20;
/// Name of the directory (under the groups dir) holding one log per shard.
pub(crate) const LOG_DIR: &str = "__consumer_offsets";

type PartitionOffsets = BTreeMap<(String, i32), OffsetValue>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A failure of the offsets log, with its storage fault kept for the client.
fn log_err(e: LogError) -> GroupError {
    match e.storage_fault() {
        Some(StorageFault::Full) => GroupError::StorageFull(format!("offsets log: {e}")),
        Some(StorageFault::Failed) => GroupError::StorageFailed(format!("offsets log: {e}")),
        None => GroupError::Io(format!("offsets log: {e}")),
    }
}

struct State {
    /// group → partition → latest appended value (see the module docs on visibility).
    groups: BTreeMap<String, PartitionOffsets>,
    /// Bytes of the last checkpoint (0: none since open).
    checkpoint_bytes: u64,
    compacting: bool,
}

/// The committed offsets of one shard's groups. See the module docs.
pub(crate) struct OffsetLog {
    log: Rc<PartitionLog>,
    compact_bytes: u64,
    state: RefCell<State>,
    in_flight: Cell<usize>,
}

/// Counts a commit waiting for the disk until it is answered or dropped.
struct InFlight<'a>(&'a Cell<usize>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl OffsetLog {
    /// Opens (creating) the log in `dir` and replays it.
    pub(crate) async fn open(
        dir: PathBuf,
        segment_bytes: u64,
        compact_bytes: u64,
    ) -> Result<Rc<OffsetLog>, GroupError> {
        let config = LogConfig {
            segment_bytes,
            // Every append is waited on durably: lingering would only delay it.
            write_linger: Duration::ZERO,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir, config, BatchCache::new(CACHE_BYTES))
            .await
            .map_err(log_err)?;
        let groups = replay(&log).await?;
        tracing::debug!(
            groups = groups.len(),
            start = log.start_offset(),
            end = log.end_offset(),
            bytes = log.size_bytes(),
            "offsets log replayed"
        );
        Ok(Rc::new(OffsetLog {
            log,
            compact_bytes,
            state: RefCell::new(State {
                groups,
                checkpoint_bytes: 0,
                compacting: false,
            }),
            in_flight: Cell::new(0),
        }))
    }

    /// Every group with at least one committed offset.
    pub(crate) fn group_ids(&self) -> Vec<String> {
        self.state.borrow().groups.keys().cloned().collect()
    }

    pub(crate) fn has_offsets(&self, group: &str) -> bool {
        self.state.borrow().groups.contains_key(group)
    }

    /// Makes `offsets` durable for `group`, then answers.
    pub(crate) async fn commit(
        self: &Rc<Self>,
        group: &str,
        offsets: Vec<CommittedOffset>,
    ) -> Result<(), GroupError> {
        {
            let st = self.state.borrow();
            let held = st.groups.get(group);
            let new_keys = offsets
                .iter()
                .filter(|c| held.is_none_or(|h| !h.contains_key(&(c.topic.clone(), c.partition))))
                .count();
            if held.map_or(0, BTreeMap::len) + new_keys > OFFSETS_PER_GROUP_MAX {
                return Err(GroupError::InvalidRequest(format!(
                    "group '{group}' would hold more than {OFFSETS_PER_GROUP_MAX} committed offsets"
                )));
            }
        }
        let now = now_ms();
        let records = offsets
            .into_iter()
            .map(|c| committed(group.to_string(), c, now))
            .collect();
        self.append_durably(records).await?;
        self.maybe_compact();
        Ok(())
    }

    /// Committed offsets of `group`: all (`None`), or one per requested partition
    /// (offset -1 and empty metadata where nothing was committed). Only durable values.
    pub(crate) async fn fetch(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<CommittedOffset>, GroupError> {
        let end = self.log.end_offset();
        if self.log.durable_offset() < end {
            self.log.wait_durable(end - 1).await.map_err(log_err)?;
        }
        let st = self.state.borrow();
        let held = st.groups.get(group);
        let entry = |t: &str, p: i32, v: Option<&OffsetValue>| CommittedOffset {
            topic: t.to_string(),
            partition: p,
            offset: v.map_or(-1, |v| v.offset),
            metadata: v.map(|v| v.metadata.clone()).unwrap_or_default(),
        };
        Ok(match partitions {
            None => held
                .into_iter()
                .flatten()
                .map(|((t, p), v)| entry(t, *p, Some(v)))
                .collect(),
            Some(list) => list
                .iter()
                .map(|(t, p)| entry(t, *p, held.and_then(|h| h.get(&(t.clone(), *p)))))
                .collect(),
        })
    }

    /// Deletes every offset of `group` (one tombstone each), durably.
    pub(crate) async fn delete_group(self: &Rc<Self>, group: &str) -> Result<(), GroupError> {
        self.tombstone(group, None).await
    }

    /// Deletes `group`'s committed offsets of `partitions` (one tombstone for each it
    /// holds), durably.
    pub(crate) async fn delete_offsets(
        self: &Rc<Self>,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), GroupError> {
        self.tombstone(group, Some(partitions)).await
    }

    /// Writes a tombstone for each offset `group` holds (of `only`, when given), durably.
    async fn tombstone(
        self: &Rc<Self>,
        group: &str,
        only: Option<&[(String, i32)]>,
    ) -> Result<(), GroupError> {
        let tombstones: Vec<OffsetRecord> = {
            let st = self.state.borrow();
            let Some(held) = st.groups.get(group) else {
                return Ok(());
            };
            let keys: Vec<&(String, i32)> = match only {
                None => held.keys().collect(),
                Some(list) => list.iter().filter(|key| held.contains_key(*key)).collect(),
            };
            keys.into_iter()
                .map(|(topic, partition)| OffsetRecord {
                    group: group.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                })
                .collect()
        };
        for chunk in tombstones.chunks(CHECKPOINT_RECORDS_PER_BATCH) {
            self.append_durably(chunk.to_vec()).await?;
        }
        self.maybe_compact();
        Ok(())
    }

    /// Appends `records` as one batch, applies them, and waits until they are durable.
    async fn append_durably(&self, records: Vec<OffsetRecord>) -> Result<(), GroupError> {
        if self.in_flight.get() >= COMMITS_IN_FLIGHT_MAX {
            return Err(GroupError::Io(format!(
                "{COMMITS_IN_FLIGHT_MAX} offset commits are waiting for the disk; retry"
            )));
        }
        let Some(batch) = encode_batch(&records, now_ms())? else {
            return Ok(());
        };
        let appended = self
            .log
            .append(BytesMut::from(&batch[..]))
            .map_err(log_err)?;
        apply_all(&mut self.state.borrow_mut().groups, records);
        self.in_flight.set(self.in_flight.get() + 1);
        let _counted = InFlight(&self.in_flight);
        self.log
            .wait_durable(appended.last_offset)
            .await
            .map_err(log_err)
    }

    /// Starts a checkpoint in the background when the log has grown past its bound.
    fn maybe_compact(self: &Rc<Self>) {
        {
            let mut st = self.state.borrow_mut();
            let limit = self
                .compact_bytes
                .max(st.checkpoint_bytes.saturating_mul(2));
            if st.compacting || self.log.size_bytes() <= limit {
                return;
            }
            st.compacting = true;
        }
        let this = self.clone();
        glommio::spawn_local(async move {
            match this.checkpoint().await {
                Ok(bytes) => tracing::debug!(
                    bytes,
                    log_bytes = this.log.size_bytes(),
                    start = this.log.start_offset(),
                    "offsets log checkpointed"
                ),
                Err(e) => tracing::warn!(error = %e, "offsets log checkpoint failed"),
            }
            this.state.borrow_mut().compacting = false;
        })
        .detach();
    }

    /// Appends the live map, waits for it to be durable, then moves the log start to
    /// its first batch. Returns the checkpoint's size in bytes.
    async fn checkpoint(&self) -> Result<u64, GroupError> {
        // No await from the snapshot to the append: the checkpoint states the map of
        // exactly the log prefix before `from`.
        let (from, last, bytes) = {
            let st = self.state.borrow();
            let mut buf = BytesMut::new();
            let now = now_ms();
            let records: Vec<OffsetRecord> = st
                .groups
                .iter()
                .flat_map(|(group, held)| {
                    held.iter()
                        .map(move |((topic, partition), value)| OffsetRecord {
                            group: group.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                            value: Some(value.clone()),
                        })
                })
                .collect();
            for chunk in records.chunks(CHECKPOINT_RECORDS_PER_BATCH) {
                if let Some(batch) = encode_batch(chunk, now)? {
                    buf.extend_from_slice(&batch);
                }
            }
            let from = self.log.end_offset();
            let bytes = buf.len() as u64;
            let last = if buf.is_empty() {
                None
            } else {
                Some(self.log.append(buf).map_err(log_err)?.last_offset)
            };
            (from, last, bytes)
        };
        if let Some(last) = last {
            self.log.wait_durable(last).await.map_err(log_err)?;
        }
        self.log
            .delete_records_before(from)
            .await
            .map_err(log_err)?;
        self.state.borrow_mut().checkpoint_bytes = bytes;
        Ok(bytes)
    }

    /// Carries offsets read from an older release's files into the log (durably).
    pub(crate) async fn import(
        &self,
        imports: Vec<(String, Vec<CommittedOffset>)>,
    ) -> Result<(), GroupError> {
        let now = now_ms();
        let records: Vec<OffsetRecord> = imports
            .into_iter()
            .flat_map(|(group, offsets)| {
                offsets
                    .into_iter()
                    .map(move |c| committed(group.clone(), c, now))
            })
            .collect();
        for chunk in records.chunks(CHECKPOINT_RECORDS_PER_BATCH) {
            self.append_durably(chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// Writes what is pending, fdatasyncs and closes the log.
    pub(crate) async fn close(&self) -> Result<(), GroupError> {
        self.log.close().await.map_err(log_err)
    }
}

fn apply_all(groups: &mut BTreeMap<String, PartitionOffsets>, records: Vec<OffsetRecord>) {
    for r in records {
        match r.value {
            Some(value) => {
                groups
                    .entry(r.group)
                    .or_default()
                    .insert((r.topic, r.partition), value);
            }
            None => {
                if let Some(held) = groups.get_mut(&r.group) {
                    held.remove(&(r.topic, r.partition));
                    if held.is_empty() {
                        groups.remove(&r.group);
                    }
                }
            }
        }
    }
}

/// Rebuilds the map from the log's start to its end.
async fn replay(log: &PartitionLog) -> Result<BTreeMap<String, PartitionOffsets>, GroupError> {
    let mut groups = BTreeMap::new();
    let start = log.start_offset();
    let end = log.end_offset();
    let mut next = start;
    while next < end {
        let read = log.read(next, REPLAY_READ_BYTES).await.map_err(log_err)?;
        if read.batches.is_empty() {
            break;
        }
        for bytes in &read.batches {
            let header = BatchHeader::parse(bytes).map_err(|e| log_err(e.into()))?;
            // A batch may straddle a start moved by DeleteRecords: skip what is below.
            let records = decode_batch(bytes)?
                .into_iter()
                .filter(|(offset, _)| *offset >= start)
                .map(|(_, r)| r)
                .collect();
            apply_all(&mut groups, records);
            next = next.max(header.last_offset() + 1);
        }
        glommio::yield_if_needed().await;
    }
    Ok(groups)
}
/// The log record of one committed offset, stamped with its commit time.
fn committed(group: String, c: CommittedOffset, commit_time_ms: i64) -> OffsetRecord {
    OffsetRecord {
        group,
        topic: c.topic,
        partition: c.partition,
        value: Some(OffsetValue {
            offset: c.offset,
            metadata: c.metadata,
            commit_time_ms,
        }),
    }
}
