//! `PartitionLog`: the append-only log of one partition, its public API.
//!
//! Data flow: `append` validates the request's batches, assigns offsets by writing
//! their base-offset fields, and queues them in memory (the pending queue) before it
//! returns, without awaiting, so appends are ordered and `acks=leader` costs no I/O.
//! One flusher task per log writes everything pending in one aligned O_DIRECT write
//! per cycle and, when someone waits for durability (or the policy says so), one
//! fdatasync. Appends that arrive meanwhile go into the next cycle: group commit.
//!
//! Offsets: `start_offset <= durable_offset <= written_offset <= end_offset`, checked
//! (`State::check_offsets`) wherever one of them moves, in release builds too; the
//! pending queue holds exactly the offsets from `written_offset` to `end_offset`, its
//! bytes counted in `pending_bytes` (checked in debug builds). Offsets below
//! `written_offset` are in segment files (and maybe the cache); the rest are in the
//! pending queue, which reads always consult. DeleteRecords waits until its new start
//! is durable, so the start never passes data a crash could lose.
//!
//! Transactions (Kafka's KIP-98): a transactional data batch opens its producer's
//! transaction here, `append_marker` writes the control batch that ends it, and
//! `transactions::PartitionTxns` keeps what is open (the last stable offset) and what
//! was aborted. The first transactional batch also makes the flusher write the file
//! `transactional` before that batch reaches the segment: after a crash without a
//! producer snapshot, such a partition rebuilds its producer and transaction state
//! from the log start (a transaction may have begun in any older segment), any other
//! from the active segment only.
//!
//! Small metadata files (the DeleteRecords start, the producer snapshot, the
//! `transactional` flag) are written and read through the shard's DMA files, never
//! with blocking calls on its thread.
//!
//! Owned by the partition's shard: `!Send`, used inside that shard's glommio executor.
//! The flusher task shares `Inner` through `Rc`; no `RefCell` borrow is held across an
//! await.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tracing::{error, info, warn};

use super::cache::BatchCache;
use super::config::{FsyncPolicy, LogConfig, BATCH_BYTES_MAX};
use super::error::LogError;
use super::file;
use super::notify::{Notify, WaitList};
use super::producers::{ProducerStates, Verdict};
use super::recovery;
use super::retention::{self, SegmentStats};
use super::segment::{self, DiskRead, Segment, SegmentAppender};
use super::transactions::PartitionTxns;
use crate::batch::{self, BatchError, BatchHeader};
use crate::checked_file;
use crate::records::EndTxnMarker;
use crate::time::now_ms;

/// Largest single write of one flush cycle; more pending data takes more writes.
const WRITE_BYTES_MAX: usize = 8 << 20;
/// Pending bytes that end a write linger at once.
const LINGER_BYTES_MAX: u64 = 64 << 10;
/// Longest a flush cycle goes on writing before it syncs for a durable waiter. A cycle
/// writes until nothing is pending, and under a steady stream of appends something
/// always is: without this bound, a durable waiter would wait for the stream to pause.
/// A bound, not a target: 1 ms halved durable answers under the queue bench but cost
/// 12 % more CPU in fdatasyncs (benches/RESULTS.md); cycles there last about 1.7 ms.
const SYNC_DEFER_MAX: Duration = Duration::from_millis(5);
/// Most bytes read per step while searching by timestamp.
const TIME_SCAN_READ_BYTES: usize = 256 << 10;

/// How long an append waits before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Fire and forget: no answer at all.
    None,
    /// Acknowledge once appended in memory.
    Leader,
    /// Acknowledge after the data is written and covered by an fdatasync.
    Durable,
}

impl Durability {
    /// Kafka's produce `acks`: 0 none, 1 leader, -1 (all) durable, as DESIGN.md says.
    pub fn from_kafka_acks(acks: i16) -> Option<Durability> {
        match acks {
            0 => Some(Durability::None),
            1 => Some(Durability::Leader),
            -1 => Some(Durability::Durable),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Broker wall-clock time of the append (for Kafka's LogAppendTime topics).
    pub log_append_time_ms: i64,
    /// Long-polling reads this append woke.
    pub woke_readers: usize,
    /// An idempotent producer's retry: nothing was appended, the offsets are those the
    /// batches got the first time.
    pub duplicate: bool,
}

/// One producer's state in a partition (Kafka's DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    /// -1 when no batch with a sequence is kept.
    pub last_sequence: i32,
    /// Broker time (Unix ms) of the producer's last batch.
    pub last_timestamp_ms: i64,
    /// First offset of its open transaction here; -1 when none is open.
    pub txn_start_offset: i64,
}

#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches with their base offsets set; the first contains the requested offset.
    pub batches: Vec<Bytes>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// A batch with its offsets assigned, waiting for the flusher to write it.
struct PendingBatch {
    segment_base: i64,
    base_offset: i64,
    last_offset: i64,
    bytes: Bytes,
}

struct State {
    /// Oldest first; never empty; the last one is the active segment.
    segments: Vec<Segment>,
    pending: VecDeque<PendingBatch>,
    start_offset: i64,
    end_offset: i64,
    written_offset: i64,
    durable_offset: i64,
    size_bytes: u64,
    /// Bytes in the pending queue (appended, not yet written).
    pending_bytes: u64,
    /// Set by close (or drop): no more appends; the flusher drains and stops.
    closing: bool,
    flusher_done: bool,
    /// A write or fdatasync failed: what we have on disk is uncertain, so the log
    /// refuses appends and durable waits until it is reopened (and recovered).
    failure: Option<String>,
    /// The last write found no space: appends and durable waits are refused while the
    /// flusher retries what is pending; cleared by the first write that succeeds.
    full: Option<String>,
    /// Idempotent producers' sequence state.
    producers: ProducerStates,
    /// Records below this were deleted by `delete_records_before` (0: none).
    deleted_below: i64,
    /// Open transactions and aborted ranges.
    txns: PartitionTxns,
    /// Whether the `transactional` file is on disk, or must be before the next write.
    txn_flag: TxnFlag,
}

/// The `transactional` file: present once the partition has had a transactional batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnFlag {
    Absent,
    /// A transactional batch is pending: the flusher writes the file before it.
    Wanted,
    Written,
}

struct Inner {
    dir: PathBuf,
    /// Retention and segment size change live (`reconfigure`); the rest is fixed at open.
    config: Cell<LogConfig>,
    cache: Rc<BatchCache>,
    cache_key: u64,
    state: RefCell<State>,
    flusher_wake: Notify,
    data_waiters: WaitList,
    /// Consumers' long polls: woken when written data passes their offset.
    written_waiters: WaitList,
    durable_waiters: WaitList,
    stopped_waiters: WaitList,
    fsync_count: Cell<u64>,
    /// One DeleteRecords at a time moves the start: its file write and the state change
    /// must not interleave with another's.
    start_mover: glommio::sync::Semaphore,
}

/// The log of one partition. Owned by the partition's shard.
pub struct PartitionLog {
    inner: Rc<Inner>,
}

impl PartitionLog {
    /// Opens the partition in `dir` (created if missing), recovers it and starts its
    /// flusher task on the current executor.
    pub async fn open(
        dir: PathBuf,
        config: LogConfig,
        cache: Rc<BatchCache>,
    ) -> Result<Rc<PartitionLog>, LogError> {
        let config = config.normalized();
        file::create_dir_all(&dir).await.map_err(|e| {
            LogError::io(format!("creating partition directory {}", dir.display()), e)
        })?;
        let segments = recover_segments(&dir, &config).await?;
        let appender = match segments.last() {
            Some(Segment {
                file: Some(file),
                base_offset,
                written_size,
                ..
            }) => {
                SegmentAppender::resume(
                    file.clone(),
                    *base_offset,
                    *written_size,
                    config.preallocate_bytes,
                )
                .await?
            }
            _ => {
                return Err(LogError::io(
                    "recovering partition",
                    std::io::Error::other("no active segment"),
                ))
            }
        };
        let mut state = State::new(segments);
        // A start moved by DeleteRecords (never past what recovery kept).
        if let Some(deleted_below) = load_log_start(&dir).await? {
            state.deleted_below = deleted_below.min(state.end_offset);
            state.start_offset = state.start_offset.max(state.deleted_below);
        }
        if has_txn_flag(&dir).await? {
            state.txn_flag = TxnFlag::Written;
        }
        state.check_offsets();
        let cache_key = cache.register();
        let inner = Rc::new(Inner {
            dir,
            config: Cell::new(config),
            cache,
            cache_key,
            state: RefCell::new(state),
            flusher_wake: Notify::default(),
            data_waiters: WaitList::default(),
            written_waiters: WaitList::default(),
            durable_waiters: WaitList::default(),
            stopped_waiters: WaitList::default(),
            fsync_count: Cell::new(0),
            start_mover: glommio::sync::Semaphore::new(1),
        });
        glommio::spawn_local(run_flusher(inner.clone(), appender)).detach();
        let log = Rc::new(PartitionLog { inner });
        log.rebuild_producers().await?;
        Ok(log)
    }

    /// Takes a topic's changed retention and segment size (Kafka's AlterConfigs):
    /// retention applies at the next retention pass, the segment size at the next roll
    /// (the active segment is not cut short). Everything else stays as opened.
    pub fn reconfigure(&self, next: &LogConfig) {
        let mut config = self.inner.config.get();
        let before = config;
        config.retention_ms = next.retention_ms;
        config.retention_bytes = next.retention_bytes;
        config.segment_bytes = next.segment_bytes;
        config.preallocate_bytes = next.preallocate_bytes;
        let config = config.normalized();
        if config != before {
            self.inner.config.set(config);
        }
    }

    /// The settings the log runs with now.
    pub fn config(&self) -> LogConfig {
        self.inner.config.get()
    }

    /// Producer and transaction state at open: the clean-close snapshot, then the
    /// batches after it. Without a usable snapshot: the active segment alone, or the
    /// whole log when it ever had a transactional batch (an open transaction may have
    /// begun in any segment, and aborted ranges in every one are still read).
    async fn rebuild_producers(&self) -> Result<(), LogError> {
        let (start, end, active_base, transactional) = {
            let st = self.inner.state.borrow();
            let active = st
                .segments
                .last()
                .map_or(st.start_offset, |s| s.base_offset);
            let transactional = st.txn_flag == TxnFlag::Written;
            (st.start_offset, st.end_offset, active, transactional)
        };
        let expiration_ms = self.inner.config.get().producer_id_expiration_ms;
        let now = now_ms();
        let (mut states, mut txns, mut next) =
            match ProducerStates::load(&self.inner.dir, expiration_ms, now).await {
                Some((states, mut txns, covered)) if covered <= end && covered >= start => {
                    txns.forget_from(covered);
                    (states, txns, covered)
                }
                _ => {
                    let from = if transactional { start } else { active_base };
                    let fresh = ProducerStates::new(expiration_ms);
                    (fresh, PartitionTxns::default(), from.max(start))
                }
            };
        while next < end {
            let read = self.read(next, 1 << 20).await?;
            if read.batches.is_empty() {
                break;
            }
            for bytes in &read.batches {
                let header = BatchHeader::parse(bytes)?;
                // When they were appended is not recorded: as if now, so a producer
                // seen in the log is kept for one more expiration at most. A batch
                // that straddles a DeleteRecords start still counts: its records after
                // the start are readable, and may be in an open transaction.
                if header.last_offset() >= next {
                    replay_batch(&mut states, &mut txns, bytes, &header, now);
                }
                next = next.max(header.last_offset() + 1);
            }
        }
        txns.truncate_below(start);
        let mut st = self.inner.state.borrow_mut();
        st.producers = states;
        st.txns = txns;
        Ok(())
    }

    /// Validates every batch, assigns consecutive offsets, queues them for writing and
    /// returns. A request with any bad batch is rejected whole; nothing is appended.
    pub fn append(&self, mut batches: BytesMut) -> Result<AppendResult, LogError> {
        self.inner.check_writable()?;
        let parts = batch::split(&batches)?;
        if parts.is_empty() {
            return Err(LogError::InvalidBatch(BatchError::Invalid(
                "no record batch in the request",
            )));
        }
        if let Some((range, _)) = parts.iter().find(|(r, _)| r.len() > BATCH_BYTES_MAX) {
            return Err(LogError::MessageTooLarge {
                size: range.len(),
                max: BATCH_BYTES_MAX,
            });
        }
        if let Some(reason) = parts.iter().find_map(|(_, h)| refused_from_clients(h)) {
            return Err(LogError::InvalidBatch(BatchError::Invalid(reason)));
        }
        let inner = &self.inner;
        let now = now_ms();
        let mut st = inner.state.borrow_mut();
        let headers: Vec<&BatchHeader> = parts.iter().map(|(_, h)| h).collect();
        if let Verdict::Duplicate {
            base_offset,
            last_offset,
        } = st.producers.check(&headers, now)?
        {
            debug_assert!(base_offset <= last_offset && last_offset < st.end_offset);
            // Rare (a client lost an answer and retried) and worth knowing about.
            info!(
                dir = %inner.dir.display(),
                base_offset,
                last_offset,
                "duplicate batch from an idempotent producer: answered with its first offsets"
            );
            return Ok(AppendResult {
                base_offset,
                last_offset,
                log_append_time_ms: now,
                woke_readers: 0,
                duplicate: true,
            });
        }
        let base_offset = st.end_offset;
        let mut next = base_offset;
        for (range, header) in &parts {
            batch::set_base_offset(&mut batches[range.clone()], next);
            next = next
                .checked_add(i64::from(header.last_offset_delta) + 1)
                .ok_or(LogError::InvalidBatch(BatchError::Invalid(
                    "offsets overflow i64",
                )))?;
        }
        let frozen = batches.freeze();
        let mut offset = base_offset;
        for (range, header) in parts {
            debug_assert_eq!(range.len(), header.total_len(), "split batch length");
            let last_offset = offset + i64::from(header.last_offset_delta);
            st.producers.record(&header, offset, now);
            if header.is_transactional() {
                st.txns.on_data(header.producer_id, offset);
                st.want_txn_flag();
            }
            st.push_batch(
                &inner.config.get(),
                frozen.slice(range),
                offset,
                last_offset,
                header.max_timestamp,
            );
            offset = last_offset + 1;
        }
        debug_assert_eq!(offset, next, "batches placed back to back");
        assert!(next > base_offset, "an append must move the end forward");
        st.end_offset = next;
        st.check_offsets();
        drop(st);
        let woke_readers = inner.data_waiters.wake_past(next);
        inner.flusher_wake.notify();
        Ok(AppendResult {
            base_offset,
            last_offset: next - 1,
            log_append_time_ms: now,
            woke_readers,
            duplicate: false,
        })
    }

    /// Whether an append now would be taken: `StorageFull` while the disk is full,
    /// `ReadOnly` after a failed write, `Closed` once closing. Lets a caller refuse a
    /// request before it changes any state of its own.
    pub fn writable(&self) -> Result<(), LogError> {
        self.inner.check_writable()
    }

    /// Waits until everything up to and including `offset` is written and covered by an
    /// fdatasync. All waiters that arrive during one write + fdatasync share the next.
    pub async fn wait_durable(&self, offset: i64) -> Result<(), LogError> {
        let inner = &self.inner;
        {
            let st = inner.state.borrow();
            if offset >= st.end_offset {
                let (start, end) = (st.start_offset, st.end_offset);
                return Err(LogError::OffsetOutOfRange {
                    requested: offset,
                    start,
                    end,
                });
            }
            if st.durable_offset > offset {
                return Ok(());
            }
        }
        inner.check_failure()?;
        inner.check_space()?;
        // Registering happens on the first poll, before the flusher can run.
        inner.flusher_wake.notify();
        let ready = || {
            let st = inner.state.borrow();
            st.durable_offset > offset
                || st.failure.is_some()
                || st.full.is_some()
                || st.flusher_done
        };
        inner.durable_waiters.wait_until(offset, ready).await;
        if inner.state.borrow().durable_offset > offset {
            return Ok(());
        }
        inner.check_failure()?;
        inner.check_space()?;
        Err(LogError::Closed)
    }

    /// Reads whole batches from `offset` on, up to about `max_bytes` (at least one batch
    /// when any exists at `offset`), pending ones included: the log's own readers (queue
    /// journals, the transaction log, recovery scans) need what they appended.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        self.read_until(offset, max_bytes, Bound::Appended).await
    }

    /// `read` as consumers see the log: only batches already written to the segment
    /// file, up to `high_watermark`. A batch still pending in memory dies with the
    /// process on kill -9 and its offsets are then given to other records; a consumer
    /// that had read it would be past the log's end after the restart (librdkafka then
    /// resets to the start, and a group's committed offset would point at other records).
    pub async fn read_written(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, LogError> {
        self.read_until(offset, max_bytes, Bound::Written).await
    }

    async fn read_until(
        &self,
        offset: i64,
        max_bytes: usize,
        bound: Bound,
    ) -> Result<ReadResult, LogError> {
        let end = {
            let st = self.inner.state.borrow();
            if offset < st.start_offset || offset > st.end_offset {
                let (start, end) = (st.start_offset, st.end_offset);
                return Err(LogError::OffsetOutOfRange {
                    requested: offset,
                    start,
                    end,
                });
            }
            st.bound(bound)
        };
        let mut batches: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        let mut next = offset;
        while next < end && (batches.is_empty() || total < max_bytes) {
            if let Some((bytes, last_offset)) = self.inner.memory_batch(next) {
                if !batches.is_empty() && total + bytes.len() > max_bytes {
                    break;
                }
                total += bytes.len();
                batches.push(bytes);
                next = last_offset + 1;
                continue;
            }
            let (file, request) =
                self.inner
                    .disk_plan(next, max_bytes.saturating_sub(total), batches.is_empty())?;
            let read = segment::read_batches(&file, request).await?;
            if read.is_empty() {
                break;
            }
            for bytes in read {
                // Already validated by the disk reader.
                let header = BatchHeader::parse(&bytes)?;
                total += bytes.len();
                next = header.last_offset() + 1;
                batches.push(bytes);
            }
        }
        debug_assert!(read_is_contiguous(&batches, offset), "read from {offset}");
        let st = self.inner.state.borrow();
        Ok(ReadResult {
            batches,
            high_watermark: st.bound(bound),
            log_start_offset: st.start_offset,
        })
    }

    /// Appends a transaction marker (a control batch of one record, Kafka's
    /// `EndTransactionMarker`) for `producer_id`: it closes the producer's open
    /// transaction in this partition, committed or aborted. Queued like any append;
    /// the caller waits for durability.
    ///
    /// A marker from an epoch older than the producer's is refused (`ProducerFenced`);
    /// a newer epoch becomes the producer's. A marker with no transaction open here is
    /// written all the same (the coordinator re-sends markers after a crash) and
    /// changes nothing else.
    pub fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<AppendResult, LogError> {
        let inner = &self.inner;
        inner.check_writable()?;
        if producer_id < 0 {
            return Err(LogError::InvalidBatch(BatchError::Invalid(
                "a transaction marker needs a producer id",
            )));
        }
        let now = now_ms();
        let mut st = inner.state.borrow_mut();
        st.producers.check_marker(producer_id, epoch, now)?;
        let marker = EndTxnMarker {
            commit,
            coordinator_epoch,
        };
        let mut bytes = marker.batch(producer_id, epoch, now);
        let offset = st.end_offset;
        batch::set_base_offset(&mut bytes, offset);
        debug_assert!(batch::validate(&bytes).is_ok_and(|h| h.is_control()));
        st.producers.record_marker(producer_id, epoch, now);
        st.txns.on_marker(producer_id, commit, offset);
        st.want_txn_flag();
        st.push_batch(&inner.config.get(), Bytes::from(bytes), offset, offset, now);
        st.end_offset = offset + 1;
        st.check_offsets();
        drop(st);
        // read_committed long polls wait for this: the stable offset may have moved.
        let woke_readers = inner.data_waiters.wake_past(offset + 1);
        inner.flusher_wake.notify();
        Ok(AppendResult {
            base_offset: offset,
            last_offset: offset,
            log_append_time_ms: now,
            woke_readers,
            duplicate: false,
        })
    }

    /// The first offset of the oldest open transaction, or the end offset when none
    /// is open: `read_committed` readers stop here. Never below the log start (a
    /// transaction whose first records were deleted holds readers at the start).
    pub fn last_stable_offset(&self) -> i64 {
        let st = self.inner.state.borrow();
        st.txns.first_unstable().map_or(st.end_offset, |first| {
            first.clamp(st.start_offset, st.end_offset)
        })
    }

    /// Aborted transactions that may have records in `[from, to)`: (producer id, first
    /// offset), oldest (lowest first offset) first.
    pub fn aborted_in(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let st = self.inner.state.borrow();
        st.txns
            .aborted_in(from, to)
            .into_iter()
            .map(|a| (a.producer_id, a.first_offset))
            .collect()
    }

    /// Every producer with state kept here (Kafka's DescribeProducers), by producer id:
    /// those the idempotence checks keep, and any other with a transaction open here.
    pub fn producer_summaries(&self) -> Vec<ProducerSummary> {
        let st = self.inner.state.borrow();
        let mut out: Vec<ProducerSummary> = st
            .producers
            .views()
            .into_iter()
            .map(|v| ProducerSummary {
                producer_id: v.producer_id,
                epoch: v.epoch,
                last_sequence: v.last_sequence,
                last_timestamp_ms: v.last_ms,
                txn_start_offset: st.txns.ongoing_first(v.producer_id).unwrap_or(-1),
            })
            .collect();
        let kept = out.len();
        for (producer_id, first) in st.txns.ongoing() {
            let known = out[..kept].binary_search_by_key(&producer_id, |p| p.producer_id);
            if known.is_err() {
                // Expired from the idempotence state while its transaction is open.
                out.push(ProducerSummary {
                    producer_id,
                    epoch: -1,
                    last_sequence: -1,
                    last_timestamp_ms: -1,
                    txn_start_offset: first,
                });
            }
        }
        out.sort_by_key(|p| p.producer_id);
        out
    }

    pub fn start_offset(&self) -> i64 {
        self.inner.state.borrow().start_offset
    }

    /// The next offset to assign.
    pub fn end_offset(&self) -> i64 {
        self.inner.state.borrow().end_offset
    }

    /// The end of what consumers are served (`read_written`): everything below it is in
    /// the segment files, so a kill -9 keeps it. Kafka's high watermark.
    pub fn high_watermark(&self) -> i64 {
        self.inner.state.borrow().written_offset
    }

    /// `last_stable_offset` as consumers see it: never past the high watermark.
    pub fn written_stable_offset(&self) -> i64 {
        self.last_stable_offset().min(self.high_watermark())
    }

    /// Bytes of all segments, including batches not yet written.
    pub fn size_bytes(&self) -> u64 {
        self.inner.state.borrow().size_bytes
    }

    /// Where the oldest segment ends, if it is sealed: records below that offset can be
    /// reclaimed with `delete_records_before` by whole segments.
    pub fn first_sealed_end(&self) -> Option<i64> {
        let st = self.inner.state.borrow();
        let last = st.segments.len().saturating_sub(1);
        st.segments[..last]
            .first()
            .filter(|s| s.sealed)
            .map(|s| s.next_offset)
    }

    pub fn segment_count(&self) -> usize {
        self.inner.state.borrow().segments.len()
    }

    /// Bytes appended but not yet written to disk. The server should stop reading
    /// produce requests for this partition while this is high (backpressure): the log
    /// itself never refuses an append for being busy.
    pub fn pending_bytes(&self) -> u64 {
        self.inner.state.borrow().pending_bytes
    }

    /// fdatasync calls made on segment files since open (for tests and metrics).
    pub fn fsync_count(&self) -> u64 {
        self.inner.fsync_count.get()
    }

    /// Offsets below this are written and synced.
    pub fn durable_offset(&self) -> i64 {
        self.inner.state.borrow().durable_offset
    }

    /// Idempotent producers whose state is kept (for tests).
    #[cfg(test)]
    pub(crate) fn inner_producer_count(&self) -> usize {
        self.inner.state.borrow().producers.len()
    }

    /// Resolves when `high_watermark() > offset` or after `timeout` (consumers' long
    /// polls): woken by the flusher once a write carries the data to the file.
    pub async fn wait_for_written(&self, offset: i64, timeout: Duration) {
        let inner = &self.inner;
        let ready = || {
            let st = inner.state.borrow();
            st.written_offset > offset || st.closing
        };
        if ready() {
            return;
        }
        // A lingering flusher (`linger`) stops lingering once it sees this waiter, which
        // registers on its first poll below, before the flusher can run.
        if inner.state.borrow().end_offset > offset {
            inner.flusher_wake.notify();
        }
        let waiting = inner.written_waiters.wait_until(offset, ready);
        futures_lite::future::or(waiting, glommio::timer::sleep(timeout)).await;
    }

    /// Resolves when `end_offset() > offset` or after `timeout` (long polling).
    pub async fn wait_for_data(&self, offset: i64, timeout: Duration) {
        let inner = &self.inner;
        let ready = || {
            let st = inner.state.borrow();
            st.end_offset > offset || st.closing
        };
        if ready() {
            return;
        }
        let waiting = inner.data_waiters.wait_until(offset, ready);
        futures_lite::future::or(waiting, glommio::timer::sleep(timeout)).await;
    }
}

impl PartitionLog {
    /// Base offset of the first batch whose max timestamp is >= `timestamp_ms`.
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<i64>, LogError> {
        let (mut next, end) = {
            let st = self.inner.state.borrow();
            let found = st
                .segments
                .iter()
                .find(|s| s.index.max_timestamp_ms() >= timestamp_ms);
            let Some(seg) = found else { return Ok(None) };
            let from = seg.base_offset + i64::from(seg.index.lookup_time(timestamp_ms));
            (from.max(st.start_offset), st.end_offset)
        };
        // The time index lands within about one index interval of the answer: read that
        // much first, then widen the step for long scans.
        let mut step =
            (self.inner.config.get().index_interval_bytes as usize).min(TIME_SCAN_READ_BYTES);
        while next < end {
            let read = self.read(next, step).await?;
            step = (step * 4).min(TIME_SCAN_READ_BYTES);
            if read.batches.is_empty() {
                break;
            }
            for bytes in &read.batches {
                let header = BatchHeader::parse(bytes)?;
                if header.max_timestamp >= timestamp_ms {
                    return Ok(Some(header.base_offset));
                }
                next = header.last_offset() + 1;
            }
        }
        Ok(None)
    }

    /// Deletes whole closed segments that retention no longer keeps (never the active
    /// one) and moves the start offset. Returns how many were removed.
    /// Also forgets idempotent producers idle past their expiration.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let inner = &self.inner;
        let removed: Vec<Segment> = {
            let mut st = inner.state.borrow_mut();
            st.producers.expire(now_ms);
            let last = st.segments.len().saturating_sub(1);
            let closed: Vec<SegmentStats> = st.segments[..last]
                .iter()
                .take_while(|s| s.sealed)
                .map(|s| SegmentStats {
                    size_bytes: s.size,
                    max_timestamp_ms: s.index.max_timestamp_ms(),
                })
                .collect();
            let cfg = inner.config.get();
            let count = retention::segments_to_delete(
                &closed,
                st.size_bytes,
                now_ms,
                cfg.retention_ms,
                cfg.retention_bytes,
            );
            let removed: Vec<Segment> = st.segments.drain(..count).collect();
            st.size_bytes -= removed.iter().map(|s| s.size).sum::<u64>();
            let first = st.segments.first().map_or(st.end_offset, |s| s.base_offset);
            st.start_offset = first.max(st.deleted_below);
            st.check_offsets();
            let start = st.start_offset;
            st.txns.truncate_below(start);
            removed
        };
        if removed.is_empty() {
            return Ok(0);
        }
        inner
            .cache
            .remove_below(inner.cache_key, inner.state.borrow().start_offset);
        let count = removed.len();
        self.remove_segment_files(removed).await?;
        Ok(count)
    }

    /// Kafka DeleteRecords: records below `offset` (-1: below the high watermark) are
    /// gone from now on, whatever retention says; whole segments below it are removed.
    /// The new start is recorded durably (`log-start-offset`) before it takes effect.
    /// Returns the log start offset afterwards.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let inner = &self.inner;
        inner.check_writable()?;
        let _moving = inner
            .start_mover
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        let (start, end) = {
            let st = inner.state.borrow();
            (st.start_offset, st.end_offset)
        };
        let offset = if offset == -1 { end } else { offset };
        if offset < 0 || offset > end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        if offset <= start {
            return Ok(start);
        }
        // The start must not pass data a crash could still lose.
        self.wait_durable(offset - 1).await?;
        save_log_start(&inner.dir, offset).await.map_err(|e| {
            LogError::io(
                format!("recording the log start in {}", inner.dir.display()),
                e,
            )
        })?;
        let removed: Vec<Segment> = {
            let mut st = inner.state.borrow_mut();
            st.deleted_below = offset;
            st.start_offset = offset;
            st.check_offsets();
            st.txns.truncate_below(offset);
            let last = st.segments.len().saturating_sub(1);
            let count = st.segments[..last]
                .iter()
                .take_while(|s| s.sealed && s.next_offset <= offset)
                .count();
            let removed: Vec<Segment> = st.segments.drain(..count).collect();
            st.size_bytes -= removed.iter().map(|s| s.size).sum::<u64>();
            removed
        };
        inner.cache.remove_below(inner.cache_key, offset);
        self.remove_segment_files(removed).await?;
        Ok(offset)
    }

    async fn remove_segment_files(&self, removed: Vec<Segment>) -> Result<(), LogError> {
        let inner = &self.inner;
        for seg in removed {
            // A reader may still hold the file; then it closes when that read ends.
            if let Some(file) = seg.file.and_then(|f| Rc::try_unwrap(f).ok()) {
                let path = file.path().to_owned();
                file.close()
                    .await
                    .map_err(|e| LogError::io(format!("closing {}", path.display()), e))?;
            }
            for ext in ["log", "index", "timeindex"] {
                let path = segment::segment_path(&inner.dir, seg.base_offset, ext);
                file::remove_file(&path).await.map_err(|e| {
                    LogError::io(
                        format!("removing expired segment file {}", path.display()),
                        e,
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Writes everything pending, fdatasyncs, persists the active segment's indexes and
    /// stops the flusher. Later appends fail with `Closed`. Idempotent.
    pub async fn close(&self) -> Result<(), LogError> {
        let inner = &self.inner;
        inner.state.borrow_mut().closing = true;
        inner.flusher_wake.notify();
        inner.data_waiters.wake_all();
        inner.written_waiters.wake_all();
        inner
            .stopped_waiters
            .wait_until(0, || inner.state.borrow().flusher_done)
            .await;
        inner.cache.remove_partition(inner.cache_key);
        inner.check_failure()?;
        // Cloned so no borrow is held across the write.
        let (producers, txns, end) = {
            let st = inner.state.borrow();
            (st.producers.clone(), st.txns.clone(), st.end_offset)
        };
        if !producers.is_empty() || !txns.is_empty() {
            producers
                .save(&txns, &inner.dir, end, now_ms())
                .await
                .map_err(|e| {
                    LogError::io(
                        format!("saving producer state in {}", inner.dir.display()),
                        e,
                    )
                })?;
        }
        Ok(())
    }

    /// Closes the log and removes its directory with every file in it.
    pub async fn delete(&self) -> Result<(), LogError> {
        let closed = self.close().await;
        let dir = &self.inner.dir;
        let names = file::list_dir(dir)
            .await
            .map_err(|e| LogError::io(format!("listing {} to delete it", dir.display()), e))?;
        for name in names {
            let path = dir.join(&name);
            file::remove_file(&path)
                .await
                .map_err(|e| LogError::io(format!("deleting {}", path.display()), e))?;
        }
        file::remove_dir(dir)
            .await
            .map_err(|e| LogError::io(format!("removing directory {}", dir.display()), e))?;
        // A failed final flush does not matter once the data is deleted.
        match closed {
            Ok(()) | Err(LogError::Io { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

impl Drop for PartitionLog {
    /// A log dropped without `close` still gets its pending data written: the flusher
    /// drains and exits.
    fn drop(&mut self) {
        self.inner.state.borrow_mut().closing = true;
        self.inner.flusher_wake.notify();
        self.inner.data_waiters.wake_all();
        self.inner.written_waiters.wake_all();
    }
}

/// File recording the start offset set by DeleteRecords.
const LOG_START_FILE: &str = "log-start-offset";
/// File present once the partition has had a transactional batch (its content is not
/// read): then a crash without a producer snapshot rebuilds from the log start.
const TXN_FLAG_FILE: &str = "transactional";

/// Whether the `transactional` file exists.
async fn has_txn_flag(dir: &std::path::Path) -> Result<bool, LogError> {
    let path = dir.join(TXN_FLAG_FILE);
    file::read_small_file(&path)
        .await
        .map(|found| found.is_some())
        .map_err(|e| LogError::io(format!("reading {}", path.display()), e))
}

/// Records the DeleteRecords start atomically (temporary file, fdatasync, rename,
/// directory fsync) through the shard's DMA files.
async fn save_log_start(dir: &std::path::Path, offset: i64) -> std::io::Result<()> {
    let bytes = checked_file::frame(format!("{offset}\n").as_bytes());
    file::write_file_atomic(&dir.join(LOG_START_FILE), &bytes).await?;
    file::sync_dir(dir).await
}

/// The recorded DeleteRecords start; none when missing. A damaged file (CRC32C frame,
/// or not a number) stops the open: a wrong start would hide acknowledged records or
/// serve deleted ones.
async fn load_log_start(dir: &std::path::Path) -> Result<Option<i64>, LogError> {
    let path = dir.join(LOG_START_FILE);
    let Some(bytes) = file::read_small_file(&path)
        .await
        .map_err(|e| LogError::io(format!("reading {}", path.display()), e))?
    else {
        return Ok(None);
    };
    let decoded = checked_file::open(&bytes).and_then(|o| {
        let text = std::str::from_utf8(o.body()).map_err(|_| "not text".to_string())?;
        text.trim()
            .parse::<i64>()
            .map_err(|e| format!("'{}' is not an offset: {e}", text.trim()))
    });
    match decoded {
        Ok(offset) if offset >= 0 => Ok(Some(offset)),
        Ok(offset) => Err(damaged_log_start(path, format!("negative start {offset}"))),
        Err(reason) => Err(damaged_log_start(path, reason)),
    }
}

fn damaged_log_start(path: std::path::PathBuf, reason: String) -> LogError {
    LogError::Damaged {
        path,
        position: 0,
        reason,
        advice: "it records the start set by DeleteRecords: restore it from a backup, or \
                 remove it to serve the partition from its first segment again"
            .into(),
    }
}

/// Why a batch may not come through `append`, if it may not: markers are written by
/// `append_marker` alone (so the transaction state sees every one), and a transaction
/// needs a producer id.
fn refused_from_clients(header: &BatchHeader) -> Option<&'static str> {
    if header.is_control() {
        return Some("control batches are written by the broker only");
    }
    if header.is_transactional() && header.producer_id < 0 {
        return Some("a transactional batch needs a producer id");
    }
    None
}

/// Applies one batch read back from the log to the producer and transaction state, as
/// `append` and `append_marker` did when it was written (checks were made then).
fn replay_batch(
    states: &mut ProducerStates,
    txns: &mut PartitionTxns,
    bytes: &[u8],
    header: &BatchHeader,
    now: i64,
) {
    if header.is_control() {
        // Markers come only from `append_marker`; anything else that is a control
        // batch (written by a client before they were refused) ends nothing.
        match EndTxnMarker::decode(bytes) {
            Ok(Some(marker)) => {
                states.record_marker(header.producer_id, header.producer_epoch, now);
                txns.on_marker(header.producer_id, marker.commit, header.base_offset);
            }
            Ok(None) => {}
            Err(err) => {
                warn!(offset = header.base_offset, %err, "unreadable control batch ignored")
            }
        }
        return;
    }
    states.record(header, header.base_offset, now);
    if header.is_transactional() {
        txns.on_data(header.producer_id, header.base_offset);
    }
}

/// Whether `batches` start with the one holding `offset` and follow one another
/// without gaps or overlaps (what every reader of a `ReadResult` relies on).
fn read_is_contiguous(batches: &[Bytes], offset: i64) -> bool {
    let mut next: Option<i64> = None;
    for bytes in batches {
        let Ok(h) = BatchHeader::parse(bytes) else {
            return false;
        };
        let fits = match next {
            None => h.base_offset <= offset && offset <= h.last_offset(),
            Some(n) => h.base_offset == n,
        };
        if !fits || bytes.len() != h.total_len() {
            return false;
        }
        next = Some(h.last_offset() + 1);
    }
    true
}

/// Opens every segment in `dir`, creating the first one for a new partition.
async fn recover_segments(
    dir: &std::path::Path,
    config: &LogConfig,
) -> Result<Vec<Segment>, LogError> {
    let mut bases = recovery::list_segments(dir).await?;
    if bases.is_empty() {
        bases.push(0);
    }
    let interval = config.index_interval_bytes;
    let mut segments = Vec::with_capacity(bases.len());
    for pair in bases.windows(2) {
        segments.push(recovery::recover_closed(dir, pair[0], pair[1], interval).await?);
    }
    let active_base = bases[bases.len() - 1];
    segments.push(recovery::recover_active(dir, active_base, interval).await?);
    file::sync_dir(dir)
        .await
        .map_err(|e| LogError::io(format!("syncing directory {}", dir.display()), e))?;
    Ok(segments)
}

/// Where a read stops (`PartitionLog::read`, `read_written`).
#[derive(Clone, Copy)]
enum Bound {
    /// Everything appended, pending batches included.
    Appended,
    /// Only what is written to the segment files: the high watermark.
    Written,
}

impl State {
    fn bound(&self, bound: Bound) -> i64 {
        match bound {
            Bound::Appended => self.end_offset,
            Bound::Written => self.written_offset,
        }
    }

    fn new(segments: Vec<Segment>) -> State {
        let start_offset = segments.first().map_or(0, |s| s.base_offset);
        let end_offset = segments.last().map_or(0, |s| s.next_offset);
        let size_bytes = segments.iter().map(|s| s.size).sum();
        State {
            segments,
            pending: VecDeque::new(),
            start_offset,
            end_offset,
            written_offset: end_offset,
            durable_offset: end_offset,
            size_bytes,
            pending_bytes: 0,
            closing: false,
            flusher_done: false,
            failure: None,
            full: None,
            producers: ProducerStates::default(),
            deleted_below: 0,
            txns: PartitionTxns::default(),
            txn_flag: TxnFlag::Absent,
        }
    }

    /// A transactional batch was queued: the flusher writes `transactional` before it.
    fn want_txn_flag(&mut self) {
        if self.txn_flag == TxnFlag::Absent {
            self.txn_flag = TxnFlag::Wanted;
        }
    }

    /// Places one offset-assigned batch in the active segment, rolling first when it
    /// would overflow (a batch larger than a segment gets a fresh segment of its own).
    fn push_batch(
        &mut self,
        config: &LogConfig,
        bytes: Bytes,
        base_offset: i64,
        last_offset: i64,
        max_ts: i64,
    ) {
        let len = bytes.len() as u64;
        let needs_roll = self.segments.last().is_none_or(|active| {
            active.size > 0
                && (active.size + len > config.segment_bytes
                    || active.relative(last_offset).is_none())
        });
        if needs_roll {
            self.segments
                .push(Segment::rolled(base_offset, config.index_interval_bytes));
        }
        let Some(seg) = self.segments.last_mut() else {
            return;
        };
        debug_assert!(
            seg.size == 0 || seg.next_offset == base_offset,
            "batch at {base_offset} after a segment ending at {}",
            seg.next_offset
        );
        // Both fit u32: the segment was rolled otherwise, and sizes are capped.
        let rel = seg.relative(base_offset).unwrap_or(u32::MAX);
        seg.index.on_batch(rel, seg.size as u32, len as u32, max_ts);
        seg.size += len;
        seg.next_offset = last_offset + 1;
        self.size_bytes += len;
        self.pending_bytes += len;
        let segment_base = seg.base_offset;
        self.pending.push_back(PendingBatch {
            segment_base,
            base_offset,
            last_offset,
            bytes,
        });
    }

    /// The offsets' documented order; four comparisons, so checked in release too: a
    /// violation means acknowledged data may be misreported, and must stop the shard.
    fn check_offsets(&self) {
        assert!(
            self.start_offset <= self.durable_offset
                && self.durable_offset <= self.written_offset
                && self.written_offset <= self.end_offset,
            "partition log offsets out of order: start {} durable {} written {} end {}",
            self.start_offset,
            self.durable_offset,
            self.written_offset,
            self.end_offset
        );
        debug_assert!(
            !self.segments.is_empty(),
            "a log always has an active segment"
        );
        debug_assert_eq!(
            self.pending
                .front()
                .map_or(self.end_offset, |p| p.base_offset),
            self.written_offset,
            "pending starts where the written data ends"
        );
        debug_assert_eq!(
            self.pending
                .back()
                .map_or(self.written_offset, |p| p.last_offset + 1),
            self.end_offset,
            "pending ends at the end offset"
        );
        debug_assert_eq!(
            self.pending
                .iter()
                .map(|p| p.bytes.len() as u64)
                .sum::<u64>(),
            self.pending_bytes,
            "pending bytes counted"
        );
    }

    fn segment_index(&self, offset: i64) -> Option<usize> {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .checked_sub(1)
    }
}

/// The batches of one segment that the flusher writes in one go.
struct PendingRun {
    segment_base: i64,
    chunks: Vec<Bytes>,
}

impl Inner {
    fn check_failure(&self) -> Result<(), LogError> {
        match &self.state.borrow().failure {
            Some(reason) => Err(LogError::ReadOnly {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses what would need the disk while it is full (see `run_flusher`).
    fn check_space(&self) -> Result<(), LogError> {
        match &self.state.borrow().full {
            Some(reason) => Err(LogError::StorageFull {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_writable(&self) -> Result<(), LogError> {
        if self.state.borrow().closing {
            return Err(LogError::Closed);
        }
        self.check_failure()?;
        self.check_space()
    }

    /// A write found no space: refuse appends, and answer every durable waiter whose
    /// data is not yet durable with the storage error rather than keep it waiting.
    fn set_full(&self, err: &LogError) {
        let first = {
            let mut st = self.state.borrow_mut();
            st.full.replace(err.to_string()).is_none()
        };
        if first {
            warn!(dir = %self.dir.display(), %err, "partition log out of space: appends refused, pending data kept and retried until space is freed");
        }
        self.durable_waiters.wake_all();
    }

    /// A write succeeded after `set_full`: appends are accepted again.
    fn clear_full(&self) {
        if self.state.borrow_mut().full.take().is_some() {
            info!(dir = %self.dir.display(), "partition log has space again: appends accepted");
        }
    }

    /// The batch holding `offset` if it is in memory: pending, or cached.
    fn memory_batch(&self, offset: i64) -> Option<(Bytes, i64)> {
        let st = self.state.borrow();
        if offset >= st.written_offset {
            let i = st
                .pending
                .partition_point(|p| p.base_offset <= offset)
                .checked_sub(1)?;
            let p = &st.pending[i];
            return (p.last_offset >= offset).then(|| (p.bytes.clone(), p.last_offset));
        }
        drop(st);
        self.cache.get(self.cache_key, offset)
    }

    /// Where on disk to read `offset` from: the segment's file and the index position.
    fn disk_plan(
        &self,
        offset: i64,
        max_bytes: usize,
        allow_oversized_first: bool,
    ) -> Result<(Rc<file::DirectFile>, DiskRead), LogError> {
        let st = self.state.borrow();
        let found = st.segment_index(offset).map(|i| &st.segments[i]);
        let (Some(seg), Some(rel)) = (found, found.and_then(|s| s.relative(offset))) else {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start: st.start_offset,
                end: st.end_offset,
            });
        };
        let Some(file) = seg
            .file
            .clone()
            .filter(|_| offset < seg.written_next_offset)
        else {
            let path = segment::segment_path(&self.dir, seg.base_offset, "log");
            let reason = format!("offset {offset} is neither in memory nor written");
            return Err(LogError::Corrupt {
                path,
                position: seg.written_size,
                reason,
            });
        };
        let entry = seg.index.lookup(rel);
        let request = DiskRead {
            position: u64::from(entry.position),
            position_offset: seg.base_offset + i64::from(entry.rel_offset),
            end_position: seg.written_size,
            end_offset: seg.written_next_offset,
            offset,
            max_bytes,
            allow_oversized_first,
        };
        Ok((file, request))
    }

    /// Clones the oldest pending batches of one segment, up to `WRITE_BYTES_MAX`.
    fn pending_run(&self) -> Option<PendingRun> {
        let st = self.state.borrow();
        let segment_base = st.pending.front()?.segment_base;
        let mut chunks = Vec::new();
        let mut bytes = 0usize;
        for p in st
            .pending
            .iter()
            .take_while(|p| p.segment_base == segment_base)
        {
            if !chunks.is_empty() && bytes + p.bytes.len() > WRITE_BYTES_MAX {
                break;
            }
            bytes += p.bytes.len();
            chunks.push(p.bytes.clone());
        }
        Some(PendingRun {
            segment_base,
            chunks,
        })
    }

    /// The run's batches are on disk: move them from the pending queue to the cache.
    fn mark_written(&self, run: &PendingRun) {
        let mut st = self.state.borrow_mut();
        let mut written_bytes = 0u64;
        let mut next = st.written_offset;
        for _ in 0..run.chunks.len() {
            let Some(p) = st.pending.pop_front() else {
                break;
            };
            debug_assert_eq!(p.segment_base, run.segment_base);
            debug_assert_eq!(p.base_offset, next);
            written_bytes += p.bytes.len() as u64;
            next = p.last_offset + 1;
            self.cache
                .insert(self.cache_key, p.base_offset, p.last_offset, p.bytes);
        }
        assert!(next >= st.written_offset, "written offset went back");
        st.written_offset = next;
        st.pending_bytes -= written_bytes;
        if let Some(i) = st.segment_index(run.segment_base) {
            let seg = &mut st.segments[i];
            seg.written_size += written_bytes;
            seg.written_next_offset = next;
        }
        st.check_offsets();
    }

    fn set_segment_file(&self, base_offset: i64, file: Rc<file::DirectFile>) {
        let mut st = self.state.borrow_mut();
        if let Some(i) = st.segment_index(base_offset) {
            st.segments[i].file = Some(file);
        }
    }

    fn advance_durable(&self, offset: i64) {
        let mut st = self.state.borrow_mut();
        if offset > st.durable_offset {
            st.durable_offset = offset;
            st.check_offsets();
            drop(st);
            self.durable_waiters.wake_past(offset);
        }
    }

    fn written_size_of(&self, base_offset: i64) -> Option<u64> {
        let st = self.state.borrow();
        st.segment_index(base_offset)
            .map(|i| st.segments[i].written_size)
    }

    fn count_fsync(&self) {
        self.fsync_count.set(self.fsync_count.get() + 1);
    }
}

/// The log's writer task: drains the pending queue, one aligned write per segment run,
/// and fdatasyncs when durability is wanted. Exits after close (or a failure).
///
/// Out of space (ENOSPC, EDQUOT) on a write: the data stays pending (offsets were
/// assigned, and `acks=leader` appends were answered), appends and durable waits are
/// refused with `StorageFull`, and the same writes are tried again after a growing
/// pause (`FULL_RETRY_MIN`..`FULL_RETRY_MAX`) until one succeeds: writes resume by
/// themselves once space is freed. Retrying is safe because a failed write moved no
/// state: the appender's position and tail block change only after a write succeeds,
/// and it rewrites the same bytes at the same place. Any other failure, and every
/// failed fdatasync (after which the kernel may have dropped the dirty state it could
/// not write, so a second fdatasync proves nothing), makes the log read-only.
async fn run_flusher(inner: Rc<Inner>, mut appender: SegmentAppender) {
    let mut last_sync = std::time::Instant::now();
    // Failed attempts in a row for want of space (0: not full).
    let mut full_attempts = 0u32;
    let result = loop {
        if !inner.state.borrow().closing {
            if full_attempts > 0 {
                wait_for_space(&inner, full_attempts).await;
            } else {
                wait_for_work(&inner, last_sync).await;
                linger(&inner).await;
            }
        }
        let closing = inner.state.borrow().closing;
        let interval_due = match inner.config.get().fsync {
            FsyncPolicy::IntervalMs(ms) => last_sync.elapsed() >= Duration::from_millis(ms),
            _ => false,
        };
        match flush_cycle(&inner, &mut appender, interval_due).await {
            Ok(synced) => {
                if synced {
                    last_sync = std::time::Instant::now();
                }
                if full_attempts > 0 {
                    full_attempts = 0;
                    inner.clear_full();
                }
            }
            // Closing does not wait for space: what is pending is lost like any
            // unsynced data at a crash (none of it was acknowledged as durable).
            Err(FlushError::Full(err)) if closing => {
                let pending_bytes = inner.state.borrow().pending_bytes;
                warn!(dir = %inner.dir.display(), pending_bytes, %err, "closed while the disk is full: data not yet written is dropped (none of it was acknowledged as durable)");
                break Err(err);
            }
            Err(FlushError::Full(err)) => {
                inner.set_full(&err);
                full_attempts = full_attempts.saturating_add(1);
                continue;
            }
            Err(FlushError::Fatal(err)) => break Err(err),
        }
        // Appends are refused once closing is set, so this cycle drained everything.
        if closing {
            break finish(&inner, &mut appender).await;
        }
    };
    if let Err(err) = result {
        error!(dir = %inner.dir.display(), %err, "partition log write failed; it is read-only until the broker restarts");
        inner.state.borrow_mut().failure = Some(err.to_string());
    }
    inner.state.borrow_mut().flusher_done = true;
    inner.stopped_waiters.wake_all();
    inner.durable_waiters.wake_all();
    inner.data_waiters.wake_all();
    inner.written_waiters.wake_all();
}

/// First pause before writing again after a write found no space.
const FULL_RETRY_MIN: Duration = Duration::from_millis(10);
/// Longest pause between two attempts while the disk stays full: how late, at most,
/// writes resume after space is freed.
const FULL_RETRY_MAX: Duration = Duration::from_millis(500);

/// Waits before the next attempt after `attempts` writes in a row found no space
/// (doubling from `FULL_RETRY_MIN` up to `FULL_RETRY_MAX`); close ends the wait.
async fn wait_for_space(inner: &Inner, attempts: u32) {
    let doubled = FULL_RETRY_MIN.saturating_mul(1 << attempts.min(16));
    let pause = doubled.min(FULL_RETRY_MAX);
    futures_lite::future::or(inner.flusher_wake.wait(), glommio::timer::sleep(pause)).await;
}

/// Why a flush step failed, which decides what the flusher does next.
enum FlushError {
    /// A write found no space; it changed nothing the next attempt relies on.
    Full(LogError),
    /// Anything else: what is on disk is unknown; the log goes read-only.
    Fatal(LogError),
}

impl FlushError {
    /// A write (or file creation) that failed: retried later when for want of space.
    fn of_write(err: LogError) -> FlushError {
        if matches!(&err, LogError::Io { source, .. } if super::error::is_out_of_space(source)) {
            FlushError::Full(err)
        } else {
            FlushError::Fatal(err)
        }
    }
}

/// Sleeps until notified, or, under an interval policy with unsynced data, until the
/// next sync is due.
async fn wait_for_work(inner: &Inner, last_sync: std::time::Instant) {
    let unsynced = {
        let st = inner.state.borrow();
        st.durable_offset < st.end_offset
    };
    match inner.config.get().fsync {
        FsyncPolicy::IntervalMs(ms) if unsynced => {
            let due = Duration::from_millis(ms).saturating_sub(last_sync.elapsed());
            futures_lite::future::or(inner.flusher_wake.wait(), glommio::timer::sleep(due)).await;
        }
        _ => inner.flusher_wake.wait().await,
    }
}

/// Lets small appends that nobody waits on durably gather for up to `write_linger`
/// before they are written together. Written one by one, 10 k single-message batches a
/// second rewrite the same 4 KiB tail block 10 k times a second: 40 MB/s of O_DIRECT
/// writes, each completed by a kernel worker that competes with the shard's core. A
/// durable waiter, a consumer's long poll (consumers are served written data only),
/// closing, an `always` policy or `LINGER_BYTES_MAX` pending end the wait at once.
async fn linger(inner: &Inner) {
    let linger = inner.config.get().write_linger;
    if linger.is_zero() || inner.config.get().fsync == FsyncPolicy::Always {
        return;
    }
    // One timer for the whole linger; appends wake the loop to re-check the size.
    let timer = glommio::timer::sleep(linger);
    futures_lite::pin!(timer);
    loop {
        {
            let st = inner.state.borrow();
            if st.closing
                || st.pending_bytes >= LINGER_BYTES_MAX
                || !inner.durable_waiters.is_empty()
                || !inner.written_waiters.is_empty()
            {
                return;
            }
        }
        let woken = async {
            inner.flusher_wake.wait().await;
            false
        };
        let expired = async {
            timer.as_mut().await;
            true
        };
        if futures_lite::future::or(woken, expired).await {
            return;
        }
    }
}

/// Writes everything pending, then fdatasyncs if anyone waits for durability, the
/// policy says always, or `force_sync`. Returns whether it synced.
///
/// A write that finds no space ends the writing; what was written before it is still
/// synced for its waiters, and then the cycle reports `Full`.
async fn flush_cycle(
    inner: &Inner,
    appender: &mut SegmentAppender,
    force_sync: bool,
) -> Result<bool, FlushError> {
    let started = std::time::Instant::now();
    let mut out_of_space = None;
    while let Some(run) = inner.pending_run() {
        if let Err(err) = write_run(inner, appender, &run).await {
            match err {
                FlushError::Full(full) => {
                    out_of_space = Some(full);
                    break;
                }
                fatal => return Err(fatal),
            }
        }
        // The cycle that closes the log must drain it, whoever waits.
        let closing = inner.state.borrow().closing;
        if !closing && !inner.durable_waiters.is_empty() && started.elapsed() >= SYNC_DEFER_MAX {
            // What is still pending goes in the next cycle, which must not wait.
            inner.flusher_wake.notify();
            break;
        }
    }
    let synced = sync_if_wanted(inner, appender, force_sync).await?;
    match out_of_space {
        Some(err) => Err(FlushError::Full(err)),
        None => Ok(synced),
    }
}

/// Writes one run of pending batches (first the `transactional` flag or the roll to
/// the run's segment, when due) and moves it from the pending queue to the cache.
async fn write_run(
    inner: &Inner,
    appender: &mut SegmentAppender,
    run: &PendingRun,
) -> Result<(), FlushError> {
    write_txn_flag_if_wanted(inner)
        .await
        .map_err(FlushError::of_write)?;
    if run.segment_base != appender.base_offset {
        seal_and_roll(inner, appender, run.segment_base).await?;
    }
    appender
        .append(&run.chunks)
        .await
        .map_err(FlushError::of_write)?;
    inner.mark_written(run);
    let written = inner.state.borrow().written_offset;
    inner.written_waiters.wake_past(written);
    debug_assert_eq!(
        inner.written_size_of(appender.base_offset),
        Some(appender.written())
    );
    Ok(())
}

/// fdatasyncs what is written when durability is wanted; a failure is always fatal.
async fn sync_if_wanted(
    inner: &Inner,
    appender: &SegmentAppender,
    force_sync: bool,
) -> Result<bool, FlushError> {
    let wanted = force_sync
        || inner.config.get().fsync == FsyncPolicy::Always
        || !inner.durable_waiters.is_empty();
    let written = inner.state.borrow().written_offset;
    if !wanted || inner.state.borrow().durable_offset >= written {
        return Ok(false);
    }
    appender.sync().await.map_err(FlushError::Fatal)?;
    inner.count_fsync();
    inner.advance_durable(written);
    Ok(true)
}

/// Writes the `transactional` file if a pending batch is the partition's first
/// transactional one, so that the file is durable before any such batch is written.
async fn write_txn_flag_if_wanted(inner: &Inner) -> Result<(), LogError> {
    if inner.state.borrow().txn_flag != TxnFlag::Wanted {
        return Ok(());
    }
    let path = inner.dir.join(TXN_FLAG_FILE);
    let written = async {
        file::write_file_atomic(&path, b"1\n").await?;
        file::sync_dir(&inner.dir).await
    };
    written
        .await
        .map_err(|e| LogError::io(format!("writing {}", path.display()), e))?;
    inner.state.borrow_mut().txn_flag = TxnFlag::Written;
    Ok(())
}

/// Closes the current segment (trimmed, synced, indexes persisted) and starts the file
/// of the next one. Run again from the start after a `Full` failure: each step may be
/// repeated (trimming to the same size, sealing a sealed index, rewriting the index
/// files and the new segment's empty file).
async fn seal_and_roll(
    inner: &Inner,
    appender: &mut SegmentAppender,
    next_base: i64,
) -> Result<(), FlushError> {
    appender.trim_and_sync().await.map_err(FlushError::Fatal)?;
    inner.count_fsync();
    let base = appender.base_offset;
    let (index, end) = {
        let mut st = inner.state.borrow_mut();
        let i = st
            .segment_index(base)
            .filter(|i| st.segments[*i].base_offset == base);
        let Some(seg) = i.map(|i| &mut st.segments[i]) else {
            return Err(FlushError::Fatal(LogError::io(
                "sealing segment",
                std::io::Error::other("segment vanished"),
            )));
        };
        seg.index.seal();
        (seg.index.clone(), seg.next_offset)
    };
    inner.advance_durable(end);
    recovery::persist_index(&inner.dir, base, &index)
        .await
        .map_err(FlushError::of_write)?;
    {
        let mut st = inner.state.borrow_mut();
        if let Some(i) = st.segment_index(base) {
            st.segments[i].sealed = true;
        }
    }
    *appender =
        SegmentAppender::create(&inner.dir, next_base, inner.config.get().preallocate_bytes)
            .await
            .map_err(FlushError::of_write)?;
    inner.set_segment_file(next_base, appender.file().clone());
    Ok(())
}

/// Last step of close: trim and sync the active segment and persist its indexes.
async fn finish(inner: &Inner, appender: &mut SegmentAppender) -> Result<(), LogError> {
    appender.trim_and_sync().await?;
    inner.count_fsync();
    let written = inner.state.borrow().written_offset;
    inner.advance_durable(written);
    let index = {
        let mut st = inner.state.borrow_mut();
        let Some(seg) = st.segments.last_mut() else {
            return Ok(());
        };
        seg.index.seal();
        seg.index.clone()
    };
    recovery::persist_index(&inner.dir, appender.base_offset, &index).await
}
