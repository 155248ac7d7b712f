//! [`TxnLog`]: the durable state of every transactional id one shard owns, in a
//! partition log of the shard's own (`<data>/transactions/<shard>/`), as Kafka keeps
//! `__transaction_state`: a [`StateLog`] (group commit, recovery that cuts a torn tail,
//! checkpoints that move the log start), as the committed offsets are.
//!
//! - Record: key = the transactional id (UTF-8), value = the id's whole [`TxnMeta`] as
//!   JSON; a null value removes the id. The last record of an id wins.
//! - [`TxnLog::put`] answers once the change is durable; a caller acts on a state only
//!   after `put` returned.
//! - A malformed record fails the open rather than guess at a transaction's fate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use super::{TxnError, TxnMeta};
use crate::batch::BatchHeader;
use crate::log::StorageFault;
use crate::records::{self, BatchBuilder};
use crate::state_log::{StateLog, StateMachine};

/// Appends of one shard that may wait for the disk at once; more are refused.
const PUTS_IN_FLIGHT_MAX: usize = 4096;

fn corrupt(what: &str) -> TxnError {
    TxnError::Io(format!("transaction log record is malformed: {what}"))
}

/// One change: an id's new state, or its removal.
type Change = (String, Option<TxnMeta>);

/// Every transactional id and its state.
#[derive(Default)]
pub struct Ids(BTreeMap<String, TxnMeta>);

impl StateMachine for Ids {
    type Record = Change;
    type Error = TxnError;
    const NAME: &'static str = "transaction log";
    const IN_FLIGHT_MAX: usize = PUTS_IN_FLIGHT_MAX;
    const RECORDS_PER_BATCH: usize = 256;

    fn busy() -> TxnError {
        TxnError::Io(format!(
            "{PUTS_IN_FLIGHT_MAX} transaction state changes are waiting for the disk; retry"
        ))
    }

    fn failed(fault: Option<StorageFault>, message: String) -> TxnError {
        match fault {
            Some(StorageFault::Full) => TxnError::StorageFull(message),
            Some(StorageFault::Failed) => TxnError::StorageFailed(message),
            None => TxnError::Io(message),
        }
    }

    fn encode(changes: &[Change], now_ms: i64) -> Result<Option<Vec<u8>>, TxnError> {
        encode_batch(changes, now_ms)
    }

    fn decode(batch: &[u8]) -> Result<Vec<(i64, Change)>, TxnError> {
        Ok(decode_batch(batch)?
            .into_iter()
            .map(|(offset, id, meta)| (offset, (id, meta)))
            .collect())
    }

    fn apply(&mut self, changes: Vec<Change>) {
        for (id, meta) in changes {
            match meta {
                Some(m) => {
                    self.0.insert(id, m);
                }
                None => {
                    self.0.remove(&id);
                }
            }
        }
    }

    fn live(&self) -> Vec<Change> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect()
    }
}

/// The durable state of one shard's transactional ids. See the module docs.
pub struct TxnLog {
    log: Rc<StateLog<Ids>>,
}

impl TxnLog {
    /// Opens (creating) the log in `dir` and replays it.
    pub async fn open(
        dir: PathBuf,
        segment_bytes: u64,
        compact_bytes: u64,
    ) -> Result<Rc<TxnLog>, TxnError> {
        let log = StateLog::<Ids>::open(dir, segment_bytes, compact_bytes).await?;
        tracing::debug!(ids = log.map().0.len(), "transaction log opened");
        Ok(Rc::new(TxnLog { log }))
    }

    /// The id's state as last put (durable once that put returned).
    pub fn get(&self, id: &str) -> Option<TxnMeta> {
        self.log.map().0.get(id).cloned()
    }

    /// Transactional ids held.
    pub fn len(&self) -> usize {
        self.log.map().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.log.map().0.is_empty()
    }

    /// Every id and its state, sorted by id.
    pub fn all(&self) -> Vec<(String, TxnMeta)> {
        self.select(|_, _| true)
    }

    /// The ids (and states) for which `keep` holds, sorted by id; only those are
    /// copied (the periodic checks look at every id and keep few).
    pub fn select(&self, keep: impl Fn(&str, &TxnMeta) -> bool) -> Vec<(String, TxnMeta)> {
        self.log
            .map()
            .0
            .iter()
            .filter(|(k, v)| keep(k, v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether `test` holds for some id (nothing copied).
    pub fn any(&self, test: impl Fn(&str, &TxnMeta) -> bool) -> bool {
        self.log.map().0.iter().any(|(k, v)| test(k, v))
    }

    /// Makes `meta` the id's state (`None`: removes the id), durably.
    pub async fn put(&self, id: &str, meta: Option<TxnMeta>) -> Result<(), TxnError> {
        self.put_all(vec![(id.to_string(), meta)]).await
    }

    /// Several ids' changes, durably.
    pub async fn put_all(&self, changes: Vec<Change>) -> Result<(), TxnError> {
        self.log.append(changes).await
    }

    /// Appends the live map and moves the log start to it (see [`StateLog`]).
    pub async fn checkpoint(&self) -> Result<u64, TxnError> {
        self.log.checkpoint().await
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
        self.log.close().await
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
                if !log.log.compacting() {
                    break;
                }
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
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

    /// The storage fault reaches the caller as such (KAFKA_STORAGE_ERROR for the
    /// client, which retries), and puts resume by themselves once space is freed.
    #[test]
    fn a_full_disk_refuses_puts_with_a_storage_error_until_space_is_freed() {
        crate::test_support::run(|| async move {
            let Some(mut fs) = crate::test_support::SmallFs::mount(8) else {
                return;
            };
            // Segments of 64 KiB, each preallocated whole: a full disk shows at a roll.
            let log = TxnLog::open(fs.path().join("txn"), 64 << 10, u64::MAX)
                .await
                .unwrap_or_else(|e| panic!("open: {e}"));
            log.put("before", Some(meta(1, 0, TxnStatus::Ongoing)))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            fs.fill();
            // About 300 bytes a put: 2,000 fill the open segment several times over.
            let mut refused = None;
            for i in 0..2000i16 {
                if let Err(e) = log
                    .put("filling", Some(meta(2, i, TxnStatus::Ongoing)))
                    .await
                {
                    refused = Some(e);
                    break;
                }
            }
            assert!(
                matches!(refused, Some(TxnError::StorageFull(_))),
                "{refused:?}"
            );
            fs.free();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                match log.put("after", Some(meta(3, 0, TxnStatus::Ongoing))).await {
                    Ok(()) => break,
                    Err(TxnError::StorageFull(e)) if std::time::Instant::now() < deadline => {
                        tracing::debug!("still full: {e}");
                        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("a put once space is back: {e}"),
                }
            }
            assert_eq!(log.get("before"), Some(meta(1, 0, TxnStatus::Ongoing)));
            log.close().await.unwrap_or_else(|e| panic!("{e}"));
            let again = TxnLog::open(fs.path().join("txn"), 64 << 10, u64::MAX)
                .await
                .unwrap_or_else(|e| panic!("reopen: {e}"));
            assert!(again.get("before").is_some() && again.get("after").is_some());
            again.close().await.unwrap_or_else(|e| panic!("{e}"));
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
