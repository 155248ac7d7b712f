//! A queue's durable journal. Every change to its messages goes into a partition log of
//! the queue's own (the same O_DIRECT segments, group commit and recovery as topics):
//!
//! - messages published together with the same options (a batch publish) are one
//!   record whose key is their shared metadata (`PublishedMeta`, rkyv: the first id,
//!   each body's length, the options) and whose value is their bodies one after
//!   another, written straight into the batch (one copy, no per-message encoding);
//! - the other events are records with no key and an rkyv `Event` as value, one record
//!   per request whatever its size: the ids delivered by one hand-out (each one delivery
//!   more), the ids settled by one ack (acked, dropped, dead-letter move done), and the
//!   intent to dead-letter one message, written before it is published to its target,
//!   so a crash in between resumes the move (from the intent's time) and the target's
//!   origin key (`queue/id`) drops the second copy.
//!
//! - a receive that keeps first-receive times (SQS's ApproximateFirstReceiveTimestamp)
//!   journals its hand-out as `DeliveredTimed`: the record's timestamp is the first
//!   receive of each id not so received before;
//! - the queue's message move tasks are journaled whole (`MoveTasks`, at most
//!   `MOVE_TASKS_KEPT`) at each change; the last such record is their state.
//!
//! Replaying the log gives back every unsettled message with its delivery count and
//! first-receive time; those that were leased come back ready, as after a consumer's
//! timeout. Leases themselves are not journaled. The log is reclaimed by whole segments
//! below the oldest publish still unsettled; the last move-task record is carried past
//! that: before the segment holding it goes, it is journaled again at the tail.

use super::moves::{MoveTask, MoveTasks};
use super::slots::IdSlots;
use super::{DeadReason, Extras, Message, Queue};
use crate::log::{BatchCache, LogConfig, LogError, PartitionLog};
use crate::records::{self, BatchBuilder};
use bytes::{Bytes, BytesMut};
use rkyv::rancor;
use rkyv::ser::allocator::Arena;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;

/// A publish record's key: messages with consecutive ids from `first_id`, one per
/// body length, sharing everything else.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PublishedMeta {
    pub first_id: u64,
    pub lens: Vec<u32>,
    pub priority: u8,
    pub published_ms: i64,
    pub visible_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub headers: Vec<(String, String)>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    /// For a dead letter: `source-queue/id`, so a resumed move is not stored twice.
    pub origin: Option<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Each of these messages was handed out once more.
    Delivered {
        ids: Vec<u64>,
    },
    /// These messages are gone: acked, dropped, or moved to their dead-letter target.
    Settled {
        ids: Vec<u64>,
    },
    DeadLettering {
        id: u64,
        reason: u8,
    },
    // Variants are only ever added at the end, no larger than those above: replay finds
    // an event's root by the archived enum's size, and its tag by the variant's place.
    /// As `Delivered`, by a receive that keeps first-receive times: the record's
    /// timestamp is the first receive of each of these not so received before.
    DeliveredTimed {
        ids: Vec<u64>,
    },
    /// The queue's message move tasks, oldest first, and the id after the highest ever
    /// handed out: the last such record is their state.
    MoveTasks {
        next_id: u64,
        tasks: Vec<MoveTask>,
    },
}

fn reason_code(r: DeadReason) -> u8 {
    match r {
        DeadReason::Rejected => 0,
        DeadReason::Expired => 1,
        DeadReason::MaxDeliveries => 2,
        DeadReason::MaxLength => 3,
    }
}

fn reason_of(code: u8) -> DeadReason {
    match code {
        0 => DeadReason::Rejected,
        1 => DeadReason::Expired,
        3 => DeadReason::MaxLength,
        _ => DeadReason::MaxDeliveries,
    }
}

/// Messages to journal as published, with what only the journal keeps: each one's
/// dedup id (`dedup_ids[i]` for `messages[i]`; empty when none has one), and the origin
/// of a single message (a dead letter's).
pub struct Publish<'a> {
    pub messages: &'a [&'a Message],
    pub dedup_ids: &'a [Option<&'a str>],
    pub origin: Option<&'a str>,
}

/// What replaying a queue's journal gives back.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Unsettled messages in publish order, delivery counts included, with their body
    /// lengths: their bodies stay in the journal (empty here) until read back.
    pub messages: Vec<(Message, u32)>,
    /// Messages whose move to the dead-letter target was begun and not finished, with
    /// when it began (the intent's time: whatever the move wrote is no older).
    pub dead_lettering: Vec<(u64, DeadReason, i64)>,
    /// Deduplication ids with their publish times and the ids of their messages.
    pub dedup: Vec<(String, i64, u64)>,
    /// Origin keys of dead letters received, with when they were stored.
    pub origins: Vec<(String, i64)>,
    /// First-receive times (`Event::DeliveredTimed`) of unsettled messages, by id.
    pub first_received: Vec<(u64, i64)>,
    /// The move tasks of the last `Event::MoveTasks`.
    pub move_tasks: MoveTasks,
    pub next_id: u64,
}

/// Reused across appends so that encoding allocates nothing in the steady state.
#[derive(Default)]
struct Encoder {
    scratch: AlignedVec<16>,
    arena: Arena,
}

impl Encoder {
    fn encode<T>(&mut self, value: &T) -> Result<&[u8], LogError>
    where
        T: for<'a> Serialize<
            rkyv::api::low::LowSerializer<
                AlignedVec<16>,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rancor::Error,
            >,
        >,
    {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.scratch = rkyv::api::low::to_bytes_in_with_alloc::<_, _, rancor::Error>(
            value,
            out,
            self.arena.acquire(),
        )
        .map_err(|e| corrupt(e.to_string()))?;
        Ok(&self.scratch)
    }
}

pub struct QueueStore {
    log: Rc<PartitionLog>,
    live: RefCell<Live>,
    /// The last `Event::MoveTasks` and its offset: reclamation keeps it (`reclaim`).
    carried: RefCell<Option<(i64, Event)>>,
    encoder: RefCell<Encoder>,
    /// The journal's own batch cache, which never holds anything (see `open`).
    #[cfg(test)]
    cache: Rc<BatchCache>,
}

/// Where the unsettled publishes are: one run per publish record (consecutive ids at
/// one log offset), in id order (one writer per queue assigns ids in journal order), so
/// the first run with something unsettled holds the oldest publish the log must keep.
#[derive(Default)]
struct Live {
    runs: VecDeque<Run>,
}

struct Run {
    first_id: u64,
    /// Log offset of the record holding these publishes.
    offset: i64,
    count: u32,
    unsettled: u32,
    /// One bit per id, set once settled (a second settle of an id changes nothing).
    settled: Vec<u64>,
}

impl Live {
    fn insert(&mut self, first_id: u64, count: u32, offset: i64) {
        if count == 0 {
            return;
        }
        self.runs.push_back(Run {
            first_id,
            offset,
            count,
            unsettled: count,
            settled: vec![0; (count as usize).div_ceil(64)],
        });
    }

    fn remove(&mut self, id: u64) {
        // Runs are in id order: the last one starting at or before `id`.
        let at = self.runs.partition_point(|r| r.first_id <= id);
        let Some(run) = at.checked_sub(1).and_then(|i| self.runs.get_mut(i)) else {
            return;
        };
        let Some(i) = id
            .checked_sub(run.first_id)
            .filter(|i| *i < u64::from(run.count))
        else {
            return;
        };
        let (word, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        if run.settled[word] & bit != 0 {
            return;
        }
        run.settled[word] |= bit;
        run.unsettled -= 1;
        while self.runs.front().is_some_and(|r| r.unsettled == 0) {
            self.runs.pop_front();
        }
    }

    /// The publish record holding unsettled message `id`: its offset.
    fn record_of(&self, id: u64) -> Option<i64> {
        let at = self.runs.partition_point(|r| r.first_id <= id);
        let run = self.runs.get(at.checked_sub(1)?)?;
        (id - run.first_id < u64::from(run.count)).then_some(run.offset)
    }

    /// Log offset of the oldest unsettled publish.
    fn oldest(&self) -> Option<i64> {
        // Emptied runs at the front are popped, so the front one holds something.
        self.runs.front().map(|r| r.offset)
    }
}

impl PublishedMeta {
    /// The metadata `m` shares with the messages published with it.
    fn of(m: &Message, dedup_id: Option<&str>, origin: Option<&str>) -> PublishedMeta {
        PublishedMeta {
            first_id: m.id,
            lens: Vec::new(),
            priority: m.priority,
            published_ms: m.published_ms,
            visible_at_ms: m.visible_at_ms,
            expires_at_ms: m.expires_at_ms,
            headers: m.headers().to_vec(),
            group_id: m.group_id().map(str::to_string),
            dedup_id: dedup_id.map(str::to_string),
            origin: origin.map(str::to_string),
        }
    }

    /// Whether `m` can join this record: the next id, with the same options.
    fn takes(&self, m: &Message) -> bool {
        m.id == self.first_id + self.lens.len() as u64
            && m.priority == self.priority
            && m.published_ms == self.published_ms
            && m.visible_at_ms == self.visible_at_ms
            && m.expires_at_ms == self.expires_at_ms
            && m.headers() == self.headers
            && m.group_id() == self.group_id.as_deref()
    }

    /// The messages of a record, given its value (their bodies one after another),
    /// without their bodies (read back by `QueueStore::load_bodies` when needed).
    fn into_messages(self, value: &[u8], offset: i64) -> Result<Vec<(Message, u32)>, LogError> {
        let total: usize = self.lens.iter().map(|l| *l as usize).sum();
        if total != value.len() {
            return Err(corrupt(format!(
                "publish at offset {offset}: bodies of {total} bytes in a value of {}",
                value.len()
            )));
        }
        let extras = Extras::boxed(self.headers, self.group_id);
        let mut out = Vec::with_capacity(self.lens.len());
        for (i, len) in self.lens.iter().enumerate() {
            // The caller checked that first_id + lens.len() fits a u64.
            let message = Message {
                id: self.first_id.saturating_add(i as u64),
                body: Bytes::new(),
                extras: extras.clone(),
                priority: self.priority,
                published_ms: self.published_ms,
                visible_at_ms: self.visible_at_ms,
                expires_at_ms: self.expires_at_ms,
                deliveries: 0,
            };
            out.push((message, *len));
        }
        Ok(out)
    }

    /// The body of message `id` in this record's value.
    fn body_of(&self, id: u64, value: &[u8]) -> Option<Bytes> {
        let i = usize::try_from(id.checked_sub(self.first_id)?).ok()?;
        let len = *self.lens.get(i)? as usize;
        let at: usize = self.lens[..i].iter().map(|l| *l as usize).sum();
        value.get(at..at + len).map(Bytes::copy_from_slice)
    }
}

fn corrupt(reason: String) -> LogError {
    LogError::Io {
        context: "replaying a queue journal".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    }
}

/// rkyv needs its input aligned; records sit anywhere in their batch.
fn decode<T>(
    bytes: &[u8],
    aligned: &mut AlignedVec<16>,
    what: &str,
    offset: i64,
) -> Result<T, LogError>
where
    T: Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    aligned.clear();
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<T, rancor::Error>(aligned)
        .map_err(|e| corrupt(format!("{what} at offset {offset}: {e}")))
}

/// Replays a journal one batch at a time, in log order. Pure: `QueueStore::open` feeds
/// it what the log reads back, the fuzz target and the corpus replay feed it bytes.
#[derive(Default)]
pub struct Replay {
    /// Ids come in publish order: a ring, not a map (a backlog of millions).
    messages: IdSlots<(Message, u32)>,
    dead: HashMap<u64, (DeadReason, i64)>,
    /// First-receive times of the messages not settled yet.
    first_received: HashMap<u64, i64>,
    /// The last `Event::MoveTasks` and its offset.
    carried: Option<(i64, Event)>,
    out: Recovered,
    live: Live,
    aligned: AlignedVec<16>,
}

impl Replay {
    /// Applies every record of one uncompressed batch; returns the offset after it.
    /// Ids and offsets come from disk: sums that would overflow are corruption.
    pub fn batch(&mut self, batch: &[u8]) -> Result<i64, LogError> {
        let records = records::records(batch)?;
        // At least past the batch's last offset, so a caller reading on always advances.
        let mut next = records.header().next_offset().unwrap_or(i64::MAX);
        for r in records {
            let r = r?;
            next = next.max(r.offset.saturating_add(1));
            let Some(value) = r.value else { continue };
            match r.key {
                Some(key) => self.publish(key, value, r.offset)?,
                None => self.event(value, r.offset, r.timestamp_ms)?,
            }
        }
        Ok(next)
    }

    fn publish(&mut self, key: &[u8], value: &[u8], offset: i64) -> Result<(), LogError> {
        let meta: PublishedMeta = decode(key, &mut self.aligned, "publish", offset)?;
        let count = u32::try_from(meta.lens.len())
            .map_err(|_| corrupt(format!("publish at offset {offset}: too many bodies")))?;
        let end_id = meta
            .first_id
            .checked_add(u64::from(count))
            .ok_or_else(|| corrupt(format!("publish at offset {offset}: ids run past u64")))?;
        self.out.next_id = self.out.next_id.max(end_id);
        if let Some(d) = &meta.dedup_id {
            self.out
                .dedup
                .push((d.clone(), meta.published_ms, meta.first_id));
        }
        if let Some(o) = &meta.origin {
            self.out.origins.push((o.clone(), meta.published_ms));
        }
        self.live.insert(meta.first_id, count, offset);
        for m in meta.into_messages(value, offset)? {
            self.messages.insert(m.0.id, m);
        }
        Ok(())
    }

    fn event(&mut self, value: &[u8], offset: i64, timestamp_ms: i64) -> Result<(), LogError> {
        match decode::<Event>(value, &mut self.aligned, "event", offset)? {
            Event::Delivered { ids } => self.delivered(&ids),
            Event::DeliveredTimed { ids } => {
                self.delivered(&ids);
                for id in ids {
                    if self.messages.get_mut(id).is_some() {
                        self.first_received.entry(id).or_insert(timestamp_ms);
                    }
                }
            }
            Event::Settled { ids } => {
                for id in ids {
                    self.messages.remove(id);
                    self.dead.remove(&id);
                    self.first_received.remove(&id);
                    self.live.remove(id);
                }
            }
            Event::DeadLettering { id, reason } => {
                self.dead.insert(id, (reason_of(reason), timestamp_ms));
            }
            tasks @ Event::MoveTasks { .. } => self.carried = Some((offset, tasks)),
        }
        Ok(())
    }

    fn delivered(&mut self, ids: &[u64]) {
        for id in ids {
            if let Some((m, _)) = self.messages.get_mut(*id) {
                m.deliveries = m.deliveries.saturating_add(1);
            }
        }
    }

    /// What the journal held, where its unsettled publishes are, and its last
    /// move-task record.
    fn finish(self) -> (Recovered, Live, Option<(i64, Event)>) {
        let mut out = self.out;
        let mut live: Vec<(Message, u32)> = self.messages.into_values().collect();
        live.sort_by_key(|(m, _)| m.id);
        out.messages = live;
        // Settled ones were taken out as they came; those left are unsettled.
        let mut first: Vec<(u64, i64)> = self.first_received.into_iter().collect();
        first.sort_unstable();
        out.first_received = first;
        if let Some((_, Event::MoveTasks { next_id, tasks })) = &self.carried {
            out.move_tasks = MoveTasks::restore(*next_id, tasks.clone());
        }
        let mut dead: Vec<(u64, DeadReason, i64)> = self
            .dead
            .into_iter()
            .map(|(id, (reason, at))| (id, reason, at))
            .collect();
        dead.sort_by_key(|(id, _, _)| *id);
        out.dead_lettering = dead;
        (out, self.live, self.carried)
    }

    /// What the journal held (the fuzz target's and corpus replay's end).
    pub fn recovered(self) -> Recovered {
        self.finish().0
    }
}

impl QueueStore {
    /// Opens (or creates) the journal in `dir` and replays it.
    pub async fn open(
        dir: PathBuf,
        config: LogConfig,
    ) -> Result<(QueueStore, Recovered), LogError> {
        // A journal is read back only here, at open: in the shard's batch cache its
        // batches would only push out topic data that consumers read.
        let cache = BatchCache::new(0);
        let log = PartitionLog::open(dir, config, cache.clone()).await?;
        let store = QueueStore {
            #[cfg(test)]
            cache,
            log,
            live: RefCell::new(Live::default()),
            carried: RefCell::new(None),
            encoder: RefCell::new(Encoder::default()),
        };
        let recovered = store.replay().await?;
        Ok((store, recovered))
    }

    async fn replay(&self) -> Result<Recovered, LogError> {
        let mut replay = Replay::default();
        let mut next = self.log.start_offset();
        let end = self.log.end_offset();
        while next < end {
            let read = self.log.read(next, 1 << 20).await?;
            if read.batches.is_empty() {
                break;
            }
            for batch in &read.batches {
                next = next.max(replay.batch(batch)?);
            }
        }
        let (recovered, live, carried) = replay.finish();
        *self.live.borrow_mut() = live;
        *self.carried.borrow_mut() = carried;
        Ok(recovered)
    }

    /// Journals publishes as one batch: one record per run of consecutive ids with the
    /// same options, bodies copied once, straight into it. Returns the last offset
    /// written (for `wait_durable`), `None` when there was nothing.
    pub fn append_published(
        &self,
        publish: Publish<'_>,
        now_ms: i64,
    ) -> Result<Option<i64>, LogError> {
        let mut builder = BatchBuilder::new(now_ms, 0);
        let mut runs: Vec<(u64, u32)> = Vec::new();
        {
            let mut encoder = self.encoder.borrow_mut();
            let mut rest = publish.messages;
            let mut done = 0usize;
            let dedup_of = |i: usize| publish.dedup_ids.get(i).copied().flatten();
            while let Some(first) = rest.first() {
                let dedup = dedup_of(done);
                let mut meta = PublishedMeta::of(first, dedup, publish.origin);
                let n = rest
                    .iter()
                    .enumerate()
                    .take_while(|(i, m)| {
                        // A message with a dedup id is a record of its own: replay gives
                        // the id to the record's first message.
                        let joins = meta.takes(m)
                            && (*i == 0 || (dedup.is_none() && dedup_of(done + i).is_none()));
                        if joins {
                            meta.lens.push(m.body.len() as u32);
                        }
                        joins
                    })
                    .count();
                done += n.max(1);
                let (run, after) = rest.split_at(n.max(1));
                let key = encoder.encode(&meta)?;
                let bodies = run.iter().map(|m| &m.body[..]);
                builder.push_parts(Some(key), bodies, now_ms);
                runs.push((first.id, run.len() as u32));
                rest = after;
            }
        }
        let Some(base) = self.append_batch(builder)? else {
            return Ok(None);
        };
        let mut live = self.live.borrow_mut();
        for (i, (first_id, count)) in runs.iter().enumerate() {
            live.insert(*first_id, *count, base + i as i64);
        }
        Ok(Some(base + runs.len() as i64 - 1))
    }

    /// Journals one event as one record; returns its offset.
    pub fn append_event(&self, event: &Event, now_ms: i64) -> Result<i64, LogError> {
        let mut builder = BatchBuilder::new(now_ms, 0);
        {
            let mut encoder = self.encoder.borrow_mut();
            let value = encoder.encode(event)?;
            builder.push(None, Some(value), now_ms, &[]);
        }
        let offset = self.append_batch(builder)?.unwrap_or(-1);
        match event {
            Event::Settled { ids } => {
                let mut live = self.live.borrow_mut();
                for id in ids {
                    live.remove(*id);
                }
            }
            Event::MoveTasks { .. } => *self.carried.borrow_mut() = Some((offset, event.clone())),
            _ => {}
        }
        Ok(offset)
    }

    /// `append_event`, then (with `durable`) waiting until it is on disk.
    pub async fn record(&self, event: &Event, durable: bool, now_ms: i64) -> Result<(), LogError> {
        let offset = self.append_event(event, now_ms)?;
        if durable {
            self.wait_durable(offset).await?;
        }
        Ok(())
    }

    /// Whether the journal takes appends now (see `PartitionLog::writable`).
    pub fn writable(&self) -> Result<(), LogError> {
        self.log.writable()
    }

    /// Returns once everything up to `offset` is on disk.
    pub async fn wait_durable(&self, offset: i64) -> Result<(), LogError> {
        self.log.wait_durable(offset).await
    }

    /// Hands a built batch to the log; its base offset, `None` when it was empty.
    fn append_batch(&self, builder: BatchBuilder) -> Result<Option<i64>, LogError> {
        let Some(batch) = builder.finish() else {
            return Ok(None);
        };
        let appended = self.log.append(BytesMut::from(Bytes::from(batch)))?;
        Ok(Some(appended.base_offset))
    }

    /// Reads the bodies of unsettled messages `ids` (ascending) back from the journal,
    /// one read per publish record they sit in. Ids not found (settled meanwhile) are
    /// left out.
    pub async fn load_bodies(&self, ids: &[u64]) -> Result<Vec<(u64, Bytes)>, LogError> {
        let mut out = Vec::with_capacity(ids.len());
        let mut aligned = AlignedVec::<16>::new();
        let mut rest = ids;
        while let Some(&first) = rest.first() {
            let Some(offset) = self.live.borrow().record_of(first) else {
                rest = &rest[1..];
                continue;
            };
            // The record's batch: from memory if not yet written, else one disk read.
            let read = self.log.read(offset, 1).await?;
            let mut taken = 0;
            for batch in read.batches.iter().take(1) {
                for r in records::records(batch)? {
                    let r = r?;
                    let (Some(key), Some(value)) = (r.key, r.value) else {
                        continue;
                    };
                    if r.offset != offset {
                        continue;
                    }
                    let meta: PublishedMeta = decode(key, &mut aligned, "publish", offset)?;
                    let end = meta.first_id.saturating_add(meta.lens.len() as u64);
                    for &id in rest.iter().take_while(|id| **id < end) {
                        if let Some(body) = meta.body_of(id, value) {
                            out.push((id, body));
                        }
                        taken += 1;
                    }
                }
            }
            if taken == 0 {
                return Err(corrupt(format!(
                    "message {first}: no publish record at offset {offset}"
                )));
            }
            rest = &rest[taken..];
        }
        Ok(out)
    }

    /// Fills `queue`'s read-ahead from the journal until it is full or nothing is
    /// left to read (run it once `Queue::start_loading` said yes); `loaded` is called
    /// after each read, to wake receives waiting for a body. Returns the bodies read.
    pub async fn load_ahead(
        &self,
        queue: &RefCell<Queue>,
        mut loaded: impl FnMut(),
    ) -> Result<usize, LogError> {
        let result = self.load_rounds(queue, &mut loaded).await;
        queue.borrow_mut().stop_loading();
        result
    }

    async fn load_rounds(
        &self,
        queue: &RefCell<Queue>,
        loaded: &mut impl FnMut(),
    ) -> Result<usize, LogError> {
        let mut total = 0;
        loop {
            let mut ids = queue.borrow().to_load();
            if ids.is_empty() {
                return Ok(total);
            }
            ids.sort_unstable();
            let bodies = self.load_bodies(&ids).await?;
            let mut q = queue.borrow_mut();
            total += bodies.len();
            for (id, body) in bodies {
                q.fill(id, body);
            }
            let (resident, unloaded) = q.resident();
            drop(q);
            loaded();
            if unloaded == 0 || resident >= super::READ_AHEAD_BYTES {
                return Ok(total);
            }
        }
    }

    /// Removes whole segments that hold no unsettled publish; returns how many went.
    /// The last move-task record is not lost with them: when the next segment to go
    /// holds it, it is journaled again (on disk) at the tail first, at `now_ms`.
    pub async fn reclaim(&self, now_ms: i64) -> Result<usize, LogError> {
        let oldest_live = self
            .live
            .borrow()
            .oldest()
            .unwrap_or_else(|| self.log.end_offset());
        let mut removed = 0;
        while let Some(end) = self
            .log
            .first_sealed_end()
            .filter(|end| *end <= oldest_live)
        {
            let held = self
                .carried
                .borrow()
                .as_ref()
                .filter(|(at, _)| *at < end)
                .map(|(_, event)| event.clone());
            if let Some(event) = held {
                // Sealed segments are behind the tail: the copy lands past `end`.
                let offset = self.append_event(&event, now_ms)?;
                self.wait_durable(offset).await?;
                continue;
            }
            self.log.delete_records_before(end).await?;
            removed += 1;
        }
        Ok(removed)
    }

    pub fn log(&self) -> &Rc<PartitionLog> {
        &self.log
    }

    pub async fn close(&self) -> Result<(), LogError> {
        self.log.close().await
    }

    /// Encodes a dead-letter reason for the journal.
    pub fn dead_lettering(id: u64, reason: DeadReason) -> Event {
        Event::DeadLettering {
            id,
            reason: reason_code(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_id: u64, lens: Vec<u32>) -> PublishedMeta {
        PublishedMeta {
            first_id,
            lens,
            priority: 0,
            published_ms: 5,
            visible_at_ms: 5,
            expires_at_ms: None,
            headers: Vec::new(),
            group_id: None,
            dedup_id: None,
            origin: None,
        }
    }

    fn journal_batch(records: &[(Option<Vec<u8>>, Vec<u8>)]) -> Vec<u8> {
        let mut b = BatchBuilder::new(5, 256);
        for (key, value) in records {
            b.push(key.as_deref(), Some(value), 5, &[]);
        }
        b.finish().expect("records pushed")
    }

    fn rkyv_bytes<T>(value: &T) -> Vec<u8>
    where
        T: for<'a> Serialize<
            rkyv::api::low::LowSerializer<
                AlignedVec<16>,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rancor::Error,
            >,
        >,
    {
        Encoder::default().encode(value).expect("encodes").to_vec()
    }

    #[test]
    fn replay_of_bytes_gives_back_what_was_published_and_not_settled() {
        let key = rkyv_bytes(&meta(10, vec![1, 2]));
        let settle = rkyv_bytes(&Event::Settled { ids: vec![10] });
        let batch = journal_batch(&[(Some(key), b"abc".to_vec()), (None, settle)]);
        let mut replay = Replay::default();
        assert_eq!(replay.batch(&batch).expect("replays"), 2);
        let recovered = replay.recovered();
        assert_eq!(recovered.next_id, 12);
        let got: Vec<(u64, u32, bool)> = recovered
            .messages
            .iter()
            .map(|(m, len)| (m.id, *len, m.body.is_empty()))
            .collect();
        assert_eq!(got, vec![(11, 2, true)], "replay reads no body");
    }

    #[test]
    fn publish_ids_past_u64_max_are_corruption_not_an_overflow() {
        let key = rkyv_bytes(&meta(u64::MAX, vec![1, 1]));
        let batch = journal_batch(&[(Some(key), b"ab".to_vec())]);
        assert!(Replay::default().batch(&batch).is_err());
    }
    use crate::queues::{Holder, MoveStatus, PublishOptions, Queue, QueueConfig};
    use crate::test_support::run;

    fn config(segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            ..LogConfig::default()
        }
    }

    async fn open(dir: &std::path::Path, segment_bytes: u64) -> (QueueStore, Recovered) {
        QueueStore::open(dir.to_owned(), config(segment_bytes))
            .await
            .expect("open store")
    }

    /// Publishes through the queue and journals it, as the owner does.
    async fn publish(
        q: &mut Queue,
        s: &QueueStore,
        body: &str,
        opts: PublishOptions,
        now: i64,
    ) -> u64 {
        let dedup = opts.dedup_id.clone();
        let id = q
            .publish(Bytes::from(body.to_string()), opts, now)
            .expect("publish")
            .expect("accepted");
        let publish = Publish {
            messages: &[q.message(id).expect("message")],
            dedup_ids: &[dedup.as_deref()],
            origin: None,
        };
        let last = s.append_published(publish, now).expect("journal");
        s.wait_durable(last.expect("appended"))
            .await
            .expect("durable");
        id
    }

    #[test]
    fn a_journal_keeps_nothing_in_a_batch_cache() {
        run(|| async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let (s, _) = open(&tmp.path().join("q"), 1 << 20).await;
            let mut q = Queue::new("q", QueueConfig::default());
            for body in ["a", "b", "c"] {
                publish(&mut q, &s, body, PublishOptions::default(), 0).await;
            }
            let settled = Event::Settled { ids: vec![0, 1, 2] };
            s.record(&settled, true, 1).await.expect("journal");
            assert_eq!(s.cache.used_bytes(), 0, "journal batches are never cached");
            s.close().await.expect("close");
        });
    }

    #[test]
    fn replay_brings_back_unsettled_messages_with_their_delivery_counts() {
        run(|| async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("q");
            let (s, rec) = open(&dir, 1 << 20).await;
            assert!(rec.messages.is_empty());
            let mut q = Queue::new("q", QueueConfig::default());
            for body in ["a", "b", "c", "d"] {
                publish(&mut q, &s, body, PublishOptions::default(), 0).await;
            }
            let (d, _) = q.receive(3, Holder::Pull, 0);
            let ids = d.iter().map(|d| d.message.id).collect();
            s.record(&Event::Delivered { ids }, true, 0)
                .await
                .expect("journal");
            // a acked, b being dead-lettered, c still leased, d never delivered.
            q.ack(d[0].handle).expect("ack");
            let settled = Event::Settled {
                ids: vec![d[0].message.id],
            };
            s.record(&settled, true, 1).await.expect("journal");
            let dead = QueueStore::dead_lettering(d[1].message.id, DeadReason::Rejected);
            s.record(&dead, true, 7).await.expect("journal");
            s.close().await.expect("close");
            let (s, rec) = open(&dir, 1 << 20).await;
            let ids: Vec<u64> = rec.messages.iter().map(|(m, _)| m.id).collect();
            let bodies = s.load_bodies(&ids).await.expect("bodies");
            let got: Vec<(&[u8], u32)> = bodies
                .iter()
                .zip(&rec.messages)
                .map(|((_, b), (m, _))| (&b[..], m.deliveries))
                .collect();
            assert_eq!(got, vec![(&b"b"[..], 1), (&b"c"[..], 1), (&b"d"[..], 0)]);
            assert_eq!(
                rec.dead_lettering,
                vec![(d[1].message.id, DeadReason::Rejected, 7)],
                "with the time the move began"
            );
            assert_eq!(rec.next_id, 4);
            // The acked message never comes back; the leased one is ready again.
            let mut q = Queue::restore(
                "q",
                QueueConfig::default(),
                rec.messages,
                rec.dedup,
                rec.next_id,
                5,
            );
            assert_eq!(q.stats().ready, 3);
            assert!(
                q.receive(3, Holder::Pull, 5).0.is_empty(),
                "bodies not read yet"
            );
            let q = RefCell::new(q);
            assert!(q.borrow_mut().start_loading());
            assert_eq!(s.load_ahead(&q, || {}).await.expect("load"), 3);
            let (again, _) = q.borrow_mut().receive(3, Holder::Pull, 5);
            assert_eq!(
                again
                    .iter()
                    .map(|d| d.message.deliveries)
                    .collect::<Vec<_>>(),
                vec![2, 2, 1]
            );
            s.close().await.expect("close");
        });
    }

    #[test]
    fn fifo_dedup_ids_and_dead_letter_origins_survive_replay() {
        run(|| async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("q");
            let (s, _) = open(&dir, 1 << 20).await;
            let fifo = QueueConfig {
                fifo: true,
                ..QueueConfig::default()
            };
            let mut q = Queue::new("q", fifo.clone());
            let opts = PublishOptions {
                group_id: Some("g".into()),
                dedup_id: Some("once".into()),
                ..PublishOptions::default()
            };
            publish(&mut q, &s, "first", opts.clone(), 1000).await;
            let moved = Message {
                id: 1,
                ..q.message(0).expect("m").clone()
            };
            let publish = Publish {
                messages: &[&moved],
                dedup_ids: &[],
                origin: Some("src/7"),
            };
            let last = s.append_published(publish, 1000).expect("journal");
            s.wait_durable(last.expect("appended"))
                .await
                .expect("durable");
            s.close().await.expect("close");
            let (s, rec) = open(&dir, 1 << 20).await;
            assert_eq!(rec.origins, [("src/7".to_string(), 1000)]);
            let mut q = Queue::restore("q", fifo, rec.messages, rec.dedup, rec.next_id, 2000);
            let dup = q
                .publish(Bytes::from_static(b"again"), opts, 2000)
                .expect("publish");
            assert_eq!(dup, None, "dedup window survives a restart");
            assert_eq!(
                q.duplicate_of("once", 2000),
                Some(0),
                "and names its message"
            );
            s.close().await.expect("close");
        });
    }

    #[test]
    fn each_message_of_one_append_keeps_its_own_dedup_id() {
        run(|| async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("q");
            let (s, _) = open(&dir, 1 << 20).await;
            let fifo = QueueConfig {
                fifo: true,
                ..QueueConfig::default()
            };
            let mut q = Queue::new("q", fifo.clone());
            let keys = [Some("a"), None, Some("b"), Some("c"), None];
            let mut ids = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let opts = PublishOptions {
                    group_id: Some("g".into()),
                    dedup_id: key.map(str::to_string),
                    ..PublishOptions::default()
                };
                let body = Bytes::from(format!("m{i}"));
                ids.push(q.publish(body, opts, 1000).expect("publish").expect("id"));
            }
            let messages: Vec<&Message> = ids.iter().filter_map(|id| q.message(*id)).collect();
            let publish = Publish {
                messages: &messages,
                dedup_ids: &keys,
                origin: None,
            };
            let last = s.append_published(publish, 1000).expect("journal");
            s.wait_durable(last.expect("appended"))
                .await
                .expect("durable");
            s.close().await.expect("close");
            let (s, rec) = open(&dir, 1 << 20).await;
            let mut dedup = rec.dedup.clone();
            dedup.sort();
            let want = [("a", 0), ("b", 2), ("c", 3)].map(|(k, id)| (k.to_string(), 1000, id));
            assert_eq!(dedup, want);
            assert_eq!(rec.messages.len(), keys.len(), "every message replayed");
            let mut q = Queue::restore("q", fifo, rec.messages, rec.dedup, rec.next_id, 2000);
            assert_eq!(q.duplicate_of("b", 2000), Some(2));
            assert_eq!(q.duplicate_of("z", 2000), None);
            s.close().await.expect("close");
        });
    }

    /// The journal's events before `DeliveredTimed` and `MoveTasks` were added.
    #[derive(Archive, Serialize)]
    enum EventBefore {
        Delivered { ids: Vec<u64> },
        Settled { ids: Vec<u64> },
        DeadLettering { id: u64, reason: u8 },
    }

    #[test]
    fn journals_written_before_the_newer_events_replay_unchanged() {
        assert_eq!(
            std::mem::size_of::<ArchivedEvent>(),
            std::mem::size_of::<ArchivedEventBefore>(),
            "replay finds an event's root by the archived size"
        );
        let cases = [
            (
                EventBefore::Delivered { ids: vec![1, 2] },
                Event::Delivered { ids: vec![1, 2] },
            ),
            (
                EventBefore::Settled { ids: vec![3] },
                Event::Settled { ids: vec![3] },
            ),
            (
                EventBefore::DeadLettering { id: 9, reason: 2 },
                Event::DeadLettering { id: 9, reason: 2 },
            ),
        ];
        let mut aligned = AlignedVec::new();
        for (before, now) in cases {
            let bytes = rkyv_bytes(&before);
            let read: Event = decode(&bytes, &mut aligned, "event", 0).expect("decodes");
            assert_eq!(read, now);
        }
    }

    fn move_task(id: u64, status: MoveStatus, moved: u64) -> MoveTask {
        MoveTask {
            id,
            status,
            destination: Some("back".into()),
            max_per_second: Some(3),
            moved,
            to_move: 5,
            failure: None,
            started_ms: 77,
        }
    }

    #[test]
    fn move_tasks_and_first_receive_times_survive_replay() {
        run(|| async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("q");
            let (s, _) = open(&dir, 1 << 20).await;
            let mut q = Queue::new("q", QueueConfig::default());
            for body in ["a", "b", "c"] {
                publish(&mut q, &s, body, PublishOptions::default(), 0).await;
            }
            let timed = |ids: Vec<u64>| Event::DeliveredTimed { ids };
            s.record(&timed(vec![0, 1]), false, 100)
                .await
                .expect("journal");
            s.record(&Event::Delivered { ids: vec![2] }, false, 150)
                .await
                .expect("journal");
            s.record(&timed(vec![0, 1, 2]), false, 200)
                .await
                .expect("journal");
            s.record(&Event::Settled { ids: vec![1] }, false, 250)
                .await
                .expect("journal");
            let first = Event::MoveTasks {
                next_id: 1,
                tasks: vec![move_task(1, MoveStatus::Running, 0)],
            };
            s.record(&first, false, 300).await.expect("journal");
            let last = Event::MoveTasks {
                next_id: 2,
                tasks: vec![
                    move_task(1, MoveStatus::Completed, 5),
                    move_task(2, MoveStatus::Running, 2),
                ],
            };
            s.record(&last, true, 400).await.expect("journal");
            s.close().await.expect("close");
            let (s, rec) = open(&dir, 1 << 20).await;
            assert_eq!(
                rec.first_received,
                [(0, 100), (2, 200)],
                "the first timed receive of each unsettled message"
            );
            let deliveries: Vec<u32> = rec.messages.iter().map(|(m, _)| m.deliveries).collect();
            assert_eq!(deliveries, [2, 2], "a timed hand-out is a delivery too");
            let want = MoveTasks::restore(
                2,
                vec![
                    move_task(1, MoveStatus::Completed, 5),
                    move_task(2, MoveStatus::Running, 2),
                ],
            );
            assert_eq!(rec.move_tasks, want, "the last record is the state");
            assert_eq!(rec.move_tasks.running_ids(), [2]);
            s.close().await.expect("close");
        });
    }

    #[test]
    fn the_last_move_task_record_outlives_reclamation() {
        run(|| async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("q");
            // Small segments: each publish of ~1 KiB rolls often.
            let (s, _) = open(&dir, 4096).await;
            let tasks = Event::MoveTasks {
                next_id: 4,
                tasks: vec![move_task(4, MoveStatus::Cancelled, 1)],
            };
            s.record(&tasks, true, 0).await.expect("journal");
            let mut q = Queue::new("q", QueueConfig::default());
            let body = "x".repeat(1000);
            for _ in 0..20 {
                publish(&mut q, &s, &body, PublishOptions::default(), 0).await;
            }
            let (d, _) = q.receive(20, Holder::Pull, 0);
            let ids = d.iter().map(|d| d.message.id).collect();
            s.record(&Event::Settled { ids }, true, 0)
                .await
                .expect("journal");
            let segments = s.log().segment_count();
            assert!(s.reclaim(0).await.expect("reclaim") > 0);
            assert!(s.log().segment_count() < segments, "settled segments went");
            // Again: the copy journaled at the tail is not taken either.
            s.reclaim(0).await.expect("reclaim");
            s.close().await.expect("close");
            let (s, rec) = open(&dir, 4096).await;
            assert!(rec.messages.is_empty());
            let want = MoveTasks::restore(4, vec![move_task(4, MoveStatus::Cancelled, 1)]);
            assert_eq!(rec.move_tasks, want);
            s.close().await.expect("close");
        });
    }

    #[test]
    fn live_runs_track_the_oldest_unsettled_publish() {
        let mut live = Live::default();
        assert_eq!(live.oldest(), None);
        // Ids 0..100 in the record at offset 10, then 100..103 at 12.
        live.insert(0, 100, 10);
        live.insert(100, 3, 12);
        live.remove(1);
        live.remove(1);
        live.remove(500);
        assert_eq!(live.oldest(), Some(10), "settled twice counts once");
        for id in (0..100).rev() {
            live.remove(id);
        }
        assert_eq!(live.runs.len(), 1, "an emptied front run goes");
        assert_eq!(live.oldest(), Some(12));
        live.remove(102);
        live.remove(100);
        assert_eq!(live.oldest(), Some(12));
        live.remove(101);
        assert_eq!(live.oldest(), None);
    }

    #[test]
    fn a_batch_is_one_record_and_replays_message_by_message() {
        run(|| async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("q");
            let (s, _) = open(&dir, 1 << 20).await;
            let mut q = Queue::new("q", QueueConfig::default());
            let ids: Vec<u64> = ["a", "bb", "", "dddd"]
                .iter()
                .map(|b| {
                    q.publish(Bytes::from(b.to_string()), PublishOptions::default(), 5)
                        .expect("publish")
                        .expect("accepted")
                })
                .collect();
            // A delayed one after them starts a record of its own.
            let delayed = PublishOptions {
                deliver_at_ms: Some(50),
                ..PublishOptions::default()
            };
            let late = q
                .publish(Bytes::from_static(b"late"), delayed, 5)
                .expect("publish")
                .expect("accepted");
            let messages: Vec<&Message> = ids
                .iter()
                .chain([&late])
                .filter_map(|id| q.message(*id))
                .collect();
            let publish = Publish {
                messages: &messages,
                dedup_ids: &[],
                origin: None,
            };
            let before = s.log().end_offset();
            let last = s.append_published(publish, 5).expect("journal");
            assert_eq!(last, Some(before + 1), "two records: four, then one");
            s.wait_durable(before + 1).await.expect("durable");
            s.close().await.expect("close");
            let (s, rec) = open(&dir, 1 << 20).await;
            let ids: Vec<u64> = rec.messages.iter().map(|(m, _)| m.id).collect();
            let bodies = s.load_bodies(&ids).await.expect("bodies");
            let got: Vec<(u64, &[u8], i64)> = rec
                .messages
                .iter()
                .zip(&bodies)
                .map(|((m, _), (id, b))| {
                    assert_eq!(m.id, *id);
                    (m.id, &b[..], m.visible_at_ms)
                })
                .collect();
            let want: Vec<(u64, &[u8], i64)> = vec![
                (0, b"a", 5),
                (1, b"bb", 5),
                (2, b"", 5),
                (3, b"dddd", 5),
                (4, b"late", 50),
            ];
            assert_eq!(got, want);
            assert_eq!(rec.next_id, 5);
            s.close().await.expect("close");
        });
    }

    #[test]
    fn a_backlog_past_the_read_ahead_is_read_back_after_reclaiming_settled_segments() {
        run(|| async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("q");
            let mib = 1usize << 20;
            let (s, _) = open(&dir, 2 * mib as u64).await;
            let mut q = Queue::new("q", QueueConfig::default());
            let n = crate::queues::READ_AHEAD_BYTES as usize / mib + 4;
            for i in 0..n {
                let mut body = format!("m{i}").into_bytes();
                body.resize(mib, b'.');
                let id = q
                    .publish(Bytes::from(body), PublishOptions::default(), 0)
                    .expect("publish")
                    .expect("id");
                let publish = Publish {
                    messages: &[q.message(id).expect("message")],
                    dedup_ids: &[],
                    origin: None,
                };
                s.append_published(publish, 0).expect("journal");
                q.journaled(&[id]);
            }
            assert_eq!(q.resident().1, 4);
            let (first, _) = q.receive(n, Holder::Pull, 0);
            assert_eq!(first.len(), n - 4);
            let ids = first.iter().map(|d| d.message.id).collect();
            s.record(&Event::Settled { ids }, true, 0)
                .await
                .expect("journal");
            assert!(
                s.reclaim(0).await.expect("reclaim") > 0,
                "settled segments go"
            );
            let q = RefCell::new(q);
            assert!(q.borrow_mut().start_loading());
            let mut wakes = 0;
            let loaded = s.load_ahead(&q, || wakes += 1).await.expect("load");
            assert_eq!((loaded, wakes), (4, 1));
            let (rest, _) = q.borrow_mut().receive(n, Holder::Pull, 0);
            let tags: Vec<String> = rest
                .iter()
                .map(|d| {
                    String::from_utf8_lossy(&d.message.body[..8])
                        .trim_end_matches('.')
                        .to_string()
                })
                .collect();
            let want: Vec<String> = (n - 4..n).map(|i| format!("m{i}")).collect();
            assert_eq!(tags, want);
            assert!(rest.iter().all(|d| d.message.body.len() == mib));
            s.close().await.expect("close");
        });
    }

    #[test]
    fn settled_segments_are_reclaimed_and_live_ones_kept() {
        run(|| async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("q");
            // Small segments: each publish of ~1 KiB rolls often.
            let (s, _) = open(&dir, 4096).await;
            let mut q = Queue::new("q", QueueConfig::default());
            let body = "x".repeat(1000);
            for _ in 0..20 {
                publish(&mut q, &s, &body, PublishOptions::default(), 0).await;
            }
            let segments = s.log().segment_count();
            assert!(segments > 4, "{segments} segments");
            // Settle all but the last five.
            let (d, _) = q.receive(15, Holder::Pull, 0);
            let ids = d.iter().map(|d| d.message.id).collect();
            s.record(&Event::Settled { ids }, true, 0)
                .await
                .expect("journal");
            let removed = s.reclaim(0).await.expect("reclaim");
            assert!(removed > 0 && s.log().segment_count() < segments);
            s.close().await.expect("close");
            let (s, rec) = open(&dir, 4096).await;
            assert_eq!(rec.messages.len(), 5, "live messages kept");
            assert_eq!(rec.messages[0].0.id, 15);
            s.close().await.expect("close");
        });
    }
}
