//! [`StateLog`]: a map kept durable in a partition log of its own, as Kafka keeps
//! `__consumer_offsets` and `__transaction_state`. The committed offsets of a shard's
//! groups (`groups::offsets`) and the state of its transactional ids (`txn::store`) are
//! two such maps; what differs between them (the records, how a batch of them changes
//! the map, the errors) is a [`StateMachine`].
//!
//! Owned by the shard; `!Send`; the map sits in a `RefCell` never borrowed across an
//! await.
//!
//! - Append: the records are appended as batches and applied to the map with no await
//!   in between (so the log's order is the order of the map's changes), then the call
//!   waits until they are durable: written and covered by an fdatasync, shared with
//!   every append of the same flush (group commit). A caller acts on a change only
//!   after `append` returned; the map may show it earlier (readers that must not see an
//!   undurable value wait with [`StateLog::wait_all_durable`]).
//! - Open: replay from the log start; the log's own recovery has already cut a torn
//!   tail. A malformed record fails the open rather than guess at the map.
//! - Checkpoint: once the log passes `max(compact_bytes, 2 × last checkpoint)`, the
//!   live map is appended, and once it is durable the log start moves to it
//!   (DeleteRecords), which drops every whole segment before it. A crash in between
//!   leaves old records and the checkpoint, and replaying both gives the same map.
//! - After a failed write or fdatasync the log refuses appends and durable waits, so
//!   every change fails until a restart recovers what is durable.

use std::cell::{Cell, Ref, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;

use crate::batch::BatchHeader;
use crate::log::{BatchCache, LogConfig, LogError, PartitionLog, StorageFault};
use crate::time::now_ms;

/// Bytes read per step while replaying the log at open.
const REPLAY_READ_BYTES: usize = 1 << 20;
/// The log's own batch cache: it is read only at open, so a small one.
const CACHE_BYTES: usize = 1 << 20;

/// One kind of durable map: its records, how they change it, and its errors.
pub trait StateMachine: Default + 'static {
    /// One change: a key's new value, or its removal.
    type Record;
    type Error: std::fmt::Display;
    /// The log's name in messages ("offsets log").
    const NAME: &'static str;
    /// Appends that may wait for the disk at once; more are refused (`busy`).
    const IN_FLIGHT_MAX: usize;
    /// Records per batch: keeps each batch far below the log's batch limit.
    const RECORDS_PER_BATCH: usize;

    /// The answer to an append over `IN_FLIGHT_MAX`.
    fn busy() -> Self::Error;
    /// A failure of the log itself: `fault` is its storage fault (a full disk, a failed
    /// write), which the client must be told as such; `message` names the log.
    fn failed(fault: Option<StorageFault>, message: String) -> Self::Error;
    /// One batch of `records` (None when there are none).
    fn encode(records: &[Self::Record], now_ms: i64) -> Result<Option<Vec<u8>>, Self::Error>;
    /// The records of one batch read back, with their offsets; control batches yield
    /// nothing, anything malformed is an error.
    fn decode(batch: &[u8]) -> Result<Vec<(i64, Self::Record)>, Self::Error>;
    /// Applies `records` in order.
    fn apply(&mut self, records: Vec<Self::Record>);
    /// The records that rebuild the map from nothing (a checkpoint).
    fn live(&self) -> Vec<Self::Record>;
}

struct State<S> {
    map: S,
    /// Bytes of the last checkpoint (0: none since open).
    checkpoint_bytes: u64,
    compacting: bool,
}

/// A map of kind `S`, durable in its own partition log. See the module docs.
pub struct StateLog<S: StateMachine> {
    log: Rc<PartitionLog>,
    compact_bytes: u64,
    state: RefCell<State<S>>,
    /// Appends waiting for the disk.
    in_flight: Cell<usize>,
}

/// Counts an append waiting for the disk until it is answered or dropped.
struct InFlight<'a>(&'a Cell<usize>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl<S: StateMachine> StateLog<S> {
    /// Opens (creating) the log in `dir` and replays it.
    pub async fn open(
        dir: PathBuf,
        segment_bytes: u64,
        compact_bytes: u64,
    ) -> Result<Rc<StateLog<S>>, S::Error> {
        let config = LogConfig {
            segment_bytes,
            // Every append is waited on durably: lingering would only delay it.
            write_linger: Duration::ZERO,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir, config, BatchCache::new(CACHE_BYTES))
            .await
            .map_err(log_error::<S>)?;
        let map = replay::<S>(&log).await?;
        tracing::debug!(
            start = log.start_offset(),
            end = log.end_offset(),
            bytes = log.size_bytes(),
            "{} replayed",
            S::NAME
        );
        Ok(Rc::new(StateLog {
            log,
            compact_bytes,
            state: RefCell::new(State {
                map,
                checkpoint_bytes: 0,
                compacting: false,
            }),
            in_flight: Cell::new(0),
        }))
    }

    /// The map as appended so far (durable or not). Never hold it across an await.
    pub fn map(&self) -> Ref<'_, S> {
        Ref::map(self.state.borrow(), |st| &st.map)
    }

    /// Appends `records` (in batches of `RECORDS_PER_BATCH`), applies them, and waits
    /// until they are durable. Then checkpoints in the background if the log has grown
    /// past its bound.
    pub async fn append(self: &Rc<Self>, records: Vec<S::Record>) -> Result<(), S::Error> {
        if self.in_flight.get() >= S::IN_FLIGHT_MAX {
            return Err(S::busy());
        }
        let now = now_ms();
        let mut last = None;
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<S::Record> = records.by_ref().take(S::RECORDS_PER_BATCH).collect();
            let Some(batch) = S::encode(&chunk, now)? else {
                continue;
            };
            let appended = self
                .log
                .append(BytesMut::from(&batch[..]))
                .map_err(log_error::<S>)?;
            self.state.borrow_mut().map.apply(chunk);
            last = Some(appended.last_offset);
        }
        let Some(last) = last else {
            return Ok(());
        };
        self.in_flight.set(self.in_flight.get() + 1);
        let counted = InFlight(&self.in_flight);
        let durable = self.log.wait_durable(last).await;
        drop(counted);
        durable.map_err(log_error::<S>)?;
        self.maybe_compact();
        Ok(())
    }

    /// Waits until everything appended so far is durable (a reader that must answer
    /// only what a crash cannot take back).
    pub async fn wait_all_durable(&self) -> Result<(), S::Error> {
        let end = self.log.end_offset();
        if self.log.durable_offset() < end {
            self.log
                .wait_durable(end - 1)
                .await
                .map_err(log_error::<S>)?;
        }
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
                Ok(bytes) => tracing::debug!(
                    bytes,
                    log_bytes = this.log.size_bytes(),
                    start = this.log.start_offset(),
                    "{} checkpointed",
                    S::NAME
                ),
                Err(e) => tracing::warn!(error = %e, "{} checkpoint failed", S::NAME),
            }
            this.state.borrow_mut().compacting = false;
        })
        .detach();
    }

    /// Appends the live map, waits for it to be durable, then moves the log start to
    /// its first batch. Returns the checkpoint's size in bytes.
    pub async fn checkpoint(&self) -> Result<u64, S::Error> {
        // No await from the snapshot to the append: the checkpoint states the map of
        // exactly the log prefix before `from`.
        let (from, last, bytes) = {
            let st = self.state.borrow();
            let now = now_ms();
            let live = st.map.live();
            let mut buf = BytesMut::new();
            for chunk in live.chunks(S::RECORDS_PER_BATCH) {
                if let Some(batch) = S::encode(chunk, now)? {
                    buf.extend_from_slice(&batch);
                }
            }
            let from = self.log.end_offset();
            let bytes = buf.len() as u64;
            let last = if buf.is_empty() {
                None
            } else {
                Some(self.log.append(buf).map_err(log_error::<S>)?.last_offset)
            };
            (from, last, bytes)
        };
        if let Some(last) = last {
            self.log.wait_durable(last).await.map_err(log_error::<S>)?;
        }
        self.log
            .delete_records_before(from)
            .await
            .map_err(log_error::<S>)?;
        self.state.borrow_mut().checkpoint_bytes = bytes;
        Ok(bytes)
    }

    /// Whether a background checkpoint is under way (for tests).
    pub fn compacting(&self) -> bool {
        self.state.borrow().compacting
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
    pub async fn close(&self) -> Result<(), S::Error> {
        self.log.close().await.map_err(log_error::<S>)
    }
}

/// A failure of the log as `S` tells it, its storage fault kept.
fn log_error<S: StateMachine>(e: LogError) -> S::Error {
    S::failed(e.storage_fault(), format!("{}: {e}", S::NAME))
}

/// Rebuilds the map from the log's start to its end.
async fn replay<S: StateMachine>(log: &PartitionLog) -> Result<S, S::Error> {
    let mut map = S::default();
    let start = log.start_offset();
    let end = log.end_offset();
    let mut next = start;
    while next < end {
        let read = log
            .read(next, REPLAY_READ_BYTES)
            .await
            .map_err(log_error::<S>)?;
        if read.batches.is_empty() {
            break;
        }
        for bytes in &read.batches {
            let header = BatchHeader::parse(bytes).map_err(|e| log_error::<S>(e.into()))?;
            // A batch may straddle a start moved by a checkpoint: skip what is below.
            let records = S::decode(bytes)?
                .into_iter()
                .filter(|(offset, _)| *offset >= start)
                .map(|(_, r)| r)
                .collect();
            map.apply(records);
            next = next.max(header.last_offset() + 1);
        }
        glommio::yield_if_needed().await;
    }
    Ok(map)
}
