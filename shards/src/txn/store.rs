//! [`TxnLog`]: the durable state of every transactional id one shard owns, in a
//! partition log of the shard's own (`<data>/transactions/<shard>/`), as Kafka keeps
//! `__transaction_state`. The same machinery as the committed-offsets log
//! (`groups::offsets`): group commit, recovery that cuts a torn tail, checkpoints that
//! move the log start.
//!
//! Owned by the shard; `!Send`; the map sits in a `RefCell` never borrowed across an
//! await.
//!
//! - Record: key = the transactional id (UTF-8), value = the id's whole [`TxnMeta`] as
//!   JSON; a null value removes the id. The last record of an id wins.
//! - [`TxnLog::put`] appends one record and applies it to the map with no await in
//!   between (so the log's order is the order of the map's changes), then waits until
//!   it is durable (written and fdatasynced, shared with every append of the same
//!   flush). A caller acts on a state only after `put` returned.
//! - Open: replay from the log start; a malformed record fails the open rather than
//!   guess at a transaction's fate.
//! - Checkpoint: once the log passes `max(compact_bytes, 2 × last checkpoint)`, the
//!   live map is appended and, once durable, the log start moves to it. A crash in
//!   between leaves old records and the checkpoint; replaying both gives the same map.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use super::{TxnError, TxnMeta};
use crate::batch::BatchHeader;
use crate::log::{BatchCache, LogConfig, LogError, PartitionLog};
use crate::records::{self, BatchBuilder};

/// Appends of one shard that may wait for the disk at once; more are refused.
const PUTS_IN_FLIGHT_MAX: usize = 4096;
/// Bytes read per step while replaying the log at open.
const REPLAY_READ_BYTES: usize = 1 << 20;
/// Records per checkpoint batch.
const CHECKPOINT_RECORDS_PER_BATCH: usize = 256;
/// The log's own batch cache: it is read only at open.
const CACHE_BYTES: usize = 1 << 20;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn log_err(e: LogError) -> TxnError {
    TxnError::Io(format!("transaction log: {e}"))
}

fn corrupt(what: &str) -> TxnError {
    TxnError::Io(format!("transaction log record is malformed: {what}"))
}

struct State {
    ids: BTreeMap<String, TxnMeta>,
    /// Bytes of the last checkpoint (0: none since open).
    checkpoint_bytes: u64,
    compacting: bool,
}

/// The durable state of one shard's transactional ids. See the module docs.
pub struct TxnLog {
    log: Rc<PartitionLog>,
    compact_bytes: u64,
    state: RefCell<State>,
    in_flight: Cell<usize>,
}

/// Counts an append waiting for the disk until it is answered or dropped.
struct InFlight<'a>(&'a Cell<usize>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl TxnLog {
    /// Opens (creating) the log in `dir` and replays it.
    pub async fn open(
        dir: PathBuf,
        segment_bytes: u64,
        compact_bytes: u64,
    ) -> Result<Rc<TxnLog>, TxnError> {
        let config = LogConfig {
            segment_bytes,
            // Every append is waited on durably: lingering would only delay it.
            write_linger: Duration::ZERO,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir, config, BatchCache::new(CACHE_BYTES))
            .await
            .map_err(log_err)?;
        let ids = replay(&log).await?;
        tracing::debug!(
            ids = ids.len(),
            start = log.start_offset(),
            end = log.end_offset(),
            "transaction log replayed"
        );
        Ok(Rc::new(TxnLog {
            log,
            compact_bytes,
            state: RefCell::new(State {
                ids,
                checkpoint_bytes: 0,
                compacting: false,
            }),
            in_flight: Cell::new(0),
        }))
    }

    /// The id's state as last put (durable once that put returned).
    pub fn get(&self, id: &str) -> Option<TxnMeta> {
        self.state.borrow().ids.get(id).cloned()
    }

    /// Transactional ids held.
    pub fn len(&self) -> usize {
        self.state.borrow().ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.borrow().ids.is_empty()
    }

    /// Every id and its state, sorted by id.
    pub fn all(&self) -> Vec<(String, TxnMeta)> {
        self.select(|_, _| true)
    }

    /// The ids (and states) for which `keep` holds, sorted by id; only those are
    /// copied (the periodic checks look at every id and keep few).
    pub fn select(&self, keep: impl Fn(&str, &TxnMeta) -> bool) -> Vec<(String, TxnMeta)> {
        let st = self.state.borrow();
        st.ids
            .iter()
            .filter(|(k, v)| keep(k, v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether `test` holds for some id (nothing copied).
    pub fn any(&self, test: impl Fn(&str, &TxnMeta) -> bool) -> bool {
        self.state.borrow().ids.iter().any(|(k, v)| test(k, v))
    }

    /// Makes `meta` the id's state (`None`: removes the id), durably.
    pub async fn put(self: &Rc<Self>, id: &str, meta: Option<TxnMeta>) -> Result<(), TxnError> {
        self.put_all(vec![(id.to_string(), meta)]).await
    }

    /// Several ids' changes in one batch, durably.
    pub async fn put_all(
        self: &Rc<Self>,
        changes: Vec<(String, Option<TxnMeta>)>,
    ) -> Result<(), TxnError> {
        if self.in_flight.get() >= PUTS_IN_FLIGHT_MAX {
            return Err(TxnError::Io(format!(
                "{PUTS_IN_FLIGHT_MAX} transaction state changes are waiting for the disk; retry"
            )));
        }
        let Some(batch) = encode_batch(&changes, now_ms())? else {
            return Ok(());
        };
        let appended = self
            .log
            .append(BytesMut::from(&batch[..]))
            .map_err(log_err)?;
        apply_all(&mut self.state.borrow_mut().ids, changes);
        self.in_flight.set(self.in_flight.get() + 1);
        let counted = InFlight(&self.in_flight);
        let durable = self.log.wait_durable(appended.last_offset).await;
        drop(counted);
        durable.map_err(log_err)?;
        self.maybe_compact();
        Ok(())
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
                Ok(bytes) => tracing::debug!(bytes, "transaction log checkpointed"),
                Err(e) => tracing::warn!(error = %e, "transaction log checkpoint failed"),
            }
            this.state.borrow_mut().compacting = false;
        })
        .detach();
    }

    /// Appends the live map, waits for it to be durable, then moves the log start to
    /// its first batch. Returns the checkpoint's size in bytes.
    pub async fn checkpoint(&self) -> Result<u64, TxnError> {
        // No await from the snapshot to the append: the checkpoint states the map of
        // exactly the log prefix before `from`.
        let (from, last, bytes) = {
            let st = self.state.borrow();
            let now = now_ms();
            let live: Vec<(String, Option<TxnMeta>)> = st
                .ids
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            let mut buf = BytesMut::new();
            for chunk in live.chunks(CHECKPOINT_RECORDS_PER_BATCH) {
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

    /// The log's size on disk (for tests and metrics).
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    /// The log's first offset (moves at each checkpoint).
    pub fn start_offset(&self) -> i64 {
        self.log.start_offset()
    }

    /// Writes what is pending, fdatasyncs and closes the log.
    pub async fn close(&self) -> Result<(), TxnError> {
        self.log.close().await.map_err(log_err)
    }
}

fn apply_all(ids: &mut BTreeMap<String, TxnMeta>, changes: Vec<(String, Option<TxnMeta>)>) {
    for (id, meta) in changes {
        match meta {
            Some(m) => {
                ids.insert(id, m);
            }
            None => {
                ids.remove(&id);
            }
        }
    }
}

/// One batch of `changes` (None when empty).
fn encode_batch(
    changes: &[(String, Option<TxnMeta>)],
    now_ms: i64,
) -> Result<Option<Vec<u8>>, TxnError> {
    let mut builder = BatchBuilder::new(now_ms, changes.len() * 256);
    for (id, meta) in changes {
        let value = meta
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| TxnError::Io(format!("encoding the state of '{id}': {e}")))?;
        builder.push(Some(id.as_bytes()), value.as_deref(), now_ms, &[]);
    }
    Ok(builder.finish())
}

/// The changes in one batch read back from the log, with their offsets. Control
/// batches yield nothing; anything malformed is an error.
fn decode_batch(batch: &[u8]) -> Result<Vec<(i64, String, Option<TxnMeta>)>, TxnError> {
    let header = BatchHeader::parse(batch).map_err(|e| corrupt(&e.to_string()))?;
    if header.is_control() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for record in records::records(batch).map_err(|e| corrupt(&e.to_string()))? {
        let record = record.map_err(|e| corrupt(&e.to_string()))?;
        let key = record.key.ok_or_else(|| corrupt("record without a key"))?;
        let id = std::str::from_utf8(key)
            .map_err(|_| corrupt("transactional id is not UTF-8"))?
            .to_string();
        let meta = record
            .value
            .map(serde_json::from_slice::<TxnMeta>)
            .transpose()
            .map_err(|e| corrupt(&format!("state of '{id}': {e}")))?;
        out.push((record.offset, id, meta));
    }
    Ok(out)
}

/// Rebuilds the map from the log's start to its end.
async fn replay(log: &PartitionLog) -> Result<BTreeMap<String, TxnMeta>, TxnError> {
    let mut ids = BTreeMap::new();
    let start = log.start_offset();
    let end = log.end_offset();
    let mut next = start;
    while next < end {
        let read = log.read(next, REPLAY_READ_BYTES).await.map_err(log_err)?;
        if read.batches.is_empty() {
            break;
        }
        for bytes in &read.batches {
            let header = BatchHeader::parse(bytes).map_err(|e| corrupt(&e.to_string()))?;
            // A batch may straddle a start moved by a checkpoint: skip what is below.
            let changes = decode_batch(bytes)?
                .into_iter()
                .filter(|(offset, _, _)| *offset >= start)
                .map(|(_, id, meta)| (id, meta))
                .collect();
            apply_all(&mut ids, changes);
            next = next.max(header.last_offset() + 1);
        }
        glommio::yield_if_needed().await;
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::super::{run_local, TxnStatus};
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn meta(producer_id: i64, epoch: i16, state: TxnStatus) -> TxnMeta {
        TxnMeta {
            producer_id,
            epoch,
            timeout_ms: 60_000,
            state,
            partitions: BTreeSet::from([("orders".to_string(), 3)]),
            groups: BTreeSet::new(),
            pending: BTreeMap::new(),
            start_ms: 5,
            last_update_ms: 6,
            last_epoch: -1,
        }
    }

    async fn open(dir: &std::path::Path, compact_bytes: u64) -> Rc<TxnLog> {
        TxnLog::open(dir.to_path_buf(), 64 << 10, compact_bytes)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"))
    }

    #[test]
    fn replay_after_reopen_keeps_the_last_record_of_each_id_and_honours_removals() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().to_path_buf();
        run_local(async move {
            let log = open(&path, u64::MAX).await;
            let put = |id: &'static str, m: Option<TxnMeta>| {
                let log = log.clone();
                async move { log.put(id, m).await.unwrap_or_else(|e| panic!("{e}")) }
            };
            put("a", Some(meta(1, 0, TxnStatus::Empty))).await;
            put("a", Some(meta(1, 1, TxnStatus::Ongoing))).await;
            put("b", Some(meta(2, 0, TxnStatus::PrepareCommit))).await;
            put("gone", Some(meta(3, 0, TxnStatus::CompleteAbort))).await;
            put("gone", None).await;
            put("é", Some(meta(4, 7, TxnStatus::CompleteCommit))).await;
            let before = log.all();
            log.close().await.unwrap_or_else(|e| panic!("{e}"));

            let again = open(&path, u64::MAX).await;
            assert_eq!(again.all(), before);
            assert_eq!(again.len(), 3);
            assert_eq!(again.get("a"), Some(meta(1, 1, TxnStatus::Ongoing)));
            assert_eq!(again.get("gone"), None);
        });
    }

    #[test]
    fn a_checkpoint_moves_the_log_start_and_keeps_the_live_map() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().to_path_buf();
        run_local(async move {
            // A small compaction bound: the log checkpoints by itself as it grows.
            let log = open(&path, 32 << 10).await;
            for round in 0..200i16 {
                for id in ["x", "y", "z"] {
                    let m = meta(9, round, TxnStatus::Ongoing);
                    log.put(id, Some(m)).await.unwrap_or_else(|e| panic!("{e}"));
                }
                log.put("drop-me", Some(meta(8, round, TxnStatus::Empty)))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                log.put("drop-me", None)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            // Let a background checkpoint started by the last puts finish, then one
            // more of our own.
            for _ in 0..100 {
                if !log.state.borrow().compacting {
                    break;
                }
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            log.checkpoint().await.unwrap_or_else(|e| panic!("{e}"));
            assert!(log.start_offset() > 0, "the log start moved");
            let live = log.all();
            assert_eq!(live.len(), 3);
            log.close().await.unwrap_or_else(|e| panic!("{e}"));

            let again = open(&path, 32 << 10).await;
            assert_eq!(again.all(), live);
            assert_eq!(again.get("y"), Some(meta(9, 199, TxnStatus::Ongoing)));
        });
    }

    #[test]
    fn malformed_values_fail_decoding_instead_of_guessing() {
        let mut builder = BatchBuilder::new(1, 64);
        builder.push(Some(b"id"), Some(b"{not json"), 1, &[]);
        let batch = builder.finish().unwrap_or_else(|| panic!("a batch"));
        assert!(decode_batch(&batch).is_err());
        let mut builder = BatchBuilder::new(1, 64);
        builder.push(None, Some(b"{}"), 1, &[]);
        let batch = builder.finish().unwrap_or_else(|| panic!("a batch"));
        assert!(decode_batch(&batch).is_err());
    }
}
