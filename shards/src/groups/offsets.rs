//! Committed offsets of every group one shard owns, kept in a partition log of the
//! shard's own (as Kafka keeps them in `__consumer_offsets`): one storage machinery
//! for topics, queue journals and offsets, so that a transactional offset commit
//! (issue 18) can later be a batch in a transaction like any other.
//!
//! Owned by the shard; `!Send`; state in a `RefCell` never borrowed across an await.
//!
//! Layout: `<groups dir>/__consumer_offsets/<shard>/`, a [`crate::log::PartitionLog`] of record
//! batches whose records are `offset_records`: key group/topic/partition, value the
//! offset, metadata and commit time; a null value is a tombstone. A directory of an
//! older release named `__consumer_offsets` holds only `offsets.log`, which the
//! upgrade removes; the log lives in the numbered directories below it.
//!
//! The log is a [`StateLog`] (group commit, replay at open, checkpoints that move the
//! log start, read-only after a failed write), as the transaction state's is. A commit
//! is answered once durable; the map holds what was appended, and a fetch first waits
//! until everything appended is durable, so it never answers a value a crash could take
//! back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use super::offset_records::{decode_batch, encode_batch, OffsetRecord, OffsetValue};
use super::{CommittedOffset, GroupError};
use crate::log::StorageFault;
use crate::state_log::{StateLog, StateMachine};
use crate::time::now_ms;

/// Distinct (topic, partition) offsets one group may hold.
pub(crate) const OFFSETS_PER_GROUP_MAX: usize = 100_000;
/// Commits of one shard that may wait for the disk at once; more are refused.
const COMMITS_IN_FLIGHT_MAX: usize = 4096;
/// Name of the directory (under the groups dir) holding one log per shard.
pub(crate) const LOG_DIR: &str = "__consumer_offsets";

type PartitionOffsets = BTreeMap<(String, i32), OffsetValue>;

/// group → partition → latest appended value (see the module docs on visibility).
#[derive(Default)]
pub(crate) struct Groups(BTreeMap<String, PartitionOffsets>);

impl StateMachine for Groups {
    type Record = OffsetRecord;
    type Error = GroupError;
    const NAME: &'static str = "offsets log";
    const IN_FLIGHT_MAX: usize = COMMITS_IN_FLIGHT_MAX;
    const RECORDS_PER_BATCH: usize = 2048;

    fn busy() -> GroupError {
        GroupError::Io(format!(
            "{COMMITS_IN_FLIGHT_MAX} offset commits are waiting for the disk; retry"
        ))
    }

    fn failed(fault: Option<StorageFault>, message: String) -> GroupError {
        match fault {
            Some(StorageFault::Full) => GroupError::StorageFull(message),
            Some(StorageFault::Failed) => GroupError::StorageFailed(message),
            None => GroupError::Io(message),
        }
    }

    fn encode(records: &[OffsetRecord], now_ms: i64) -> Result<Option<Vec<u8>>, GroupError> {
        encode_batch(records, now_ms)
    }

    fn decode(batch: &[u8]) -> Result<Vec<(i64, OffsetRecord)>, GroupError> {
        decode_batch(batch)
    }

    fn apply(&mut self, records: Vec<OffsetRecord>) {
        let groups = &mut self.0;
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

    fn live(&self) -> Vec<OffsetRecord> {
        self.0
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
            .collect()
    }
}

/// The committed offsets of one shard's groups. See the module docs.
pub(crate) struct OffsetLog {
    log: Rc<StateLog<Groups>>,
}

impl OffsetLog {
    /// Opens (creating) the log in `dir` and replays it.
    pub(crate) async fn open(
        dir: PathBuf,
        segment_bytes: u64,
        compact_bytes: u64,
    ) -> Result<Rc<OffsetLog>, GroupError> {
        let log = StateLog::<Groups>::open(dir, segment_bytes, compact_bytes).await?;
        tracing::debug!(groups = log.map().0.len(), "offsets log opened");
        Ok(Rc::new(OffsetLog { log }))
    }

    /// Every group with at least one committed offset.
    pub(crate) fn group_ids(&self) -> Vec<String> {
        self.log.map().0.keys().cloned().collect()
    }

    pub(crate) fn has_offsets(&self, group: &str) -> bool {
        self.log.map().0.contains_key(group)
    }

    /// Makes `offsets` durable for `group`, then answers.
    pub(crate) async fn commit(
        &self,
        group: &str,
        offsets: Vec<CommittedOffset>,
    ) -> Result<(), GroupError> {
        {
            let map = self.log.map();
            let held = map.0.get(group);
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
        self.log.append(records).await
    }

    /// Committed offsets of `group`: all (`None`), or one per requested partition
    /// (offset -1 and empty metadata where nothing was committed). Only durable values.
    pub(crate) async fn fetch(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<CommittedOffset>, GroupError> {
        self.log.wait_all_durable().await?;
        let map = self.log.map();
        let held = map.0.get(group);
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
    pub(crate) async fn delete_group(&self, group: &str) -> Result<(), GroupError> {
        self.tombstone(group, None).await
    }

    /// Deletes `group`'s committed offsets of `partitions` (one tombstone for each it
    /// holds), durably.
    pub(crate) async fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), GroupError> {
        self.tombstone(group, Some(partitions)).await
    }

    /// Writes a tombstone for each offset `group` holds (of `only`, when given), durably.
    async fn tombstone(
        &self,
        group: &str,
        only: Option<&[(String, i32)]>,
    ) -> Result<(), GroupError> {
        let tombstones: Vec<OffsetRecord> = {
            let map = self.log.map();
            let Some(held) = map.0.get(group) else {
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
        self.log.append(tombstones).await
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
        self.log.append(records).await
    }

    /// Writes what is pending, fdatasyncs and closes the log.
    pub(crate) async fn close(&self) -> Result<(), GroupError> {
        self.log.close().await
    }
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
