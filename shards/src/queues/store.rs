//! A queue's durable journal. Every change to its messages is an event appended to a
//! partition log of the queue's own (the same O_DIRECT segments, group commit and
//! recovery as topics): a publish with the whole message, a delivery with the new count,
//! a settle (ack, drop, dead-letter done), and the intent to dead-letter, written before
//! the message is published to its target, so a crash in between resumes the move and
//! the target's origin key (`queue/id`) drops the second copy.
//!
//! Replaying the log gives back every unsettled message with its delivery count; those
//! that were leased come back ready, as after a consumer's timeout. Leases themselves
//! are not journaled. The log is reclaimed by whole segments below the oldest publish
//! still unsettled.

use super::{DeadReason, Message};
use crate::log::{BatchCache, LogConfig, LogError, PartitionLog};
use crate::records::{self, BatchBuilder};
use bytes::{Bytes, BytesMut};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: u64,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub priority: u8,
    pub group_id: Option<String>,
    pub published_ms: i64,
    pub visible_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub dedup_id: Option<String>,
    /// For a dead letter: `source-queue/id`, so a resumed move is not stored twice.
    pub origin: Option<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Published(StoredMessage),
    Delivered { id: u64, deliveries: u32 },
    Settled { id: u64 },
    DeadLettering { id: u64, reason: u8 },
}

fn reason_code(r: DeadReason) -> u8 {
    match r {
        DeadReason::Rejected => 0,
        DeadReason::Expired => 1,
        DeadReason::MaxDeliveries => 2,
    }
}

fn reason_of(code: u8) -> DeadReason {
    match code {
        0 => DeadReason::Rejected,
        1 => DeadReason::Expired,
        _ => DeadReason::MaxDeliveries,
    }
}

/// What replaying a queue's journal gives back.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Unsettled messages in publish order, delivery counts included.
    pub messages: Vec<Message>,
    /// Messages whose move to the dead-letter target was begun and not finished.
    pub dead_lettering: Vec<(u64, DeadReason)>,
    /// Deduplication ids with their publish times.
    pub dedup: Vec<(String, i64)>,
    /// Origin keys of dead letters received.
    pub origins: HashSet<String>,
    pub next_id: u64,
}

pub struct QueueStore {
    log: Rc<PartitionLog>,
    live: RefCell<Live>,
    /// Reused for encoding journal records.
    scratch: std::cell::Cell<AlignedVec<16>>,
}

/// Log offset of the publish of every unsettled message, by id. Ids are assigned in
/// journal order (one writer per queue), so the first entry is the oldest publish.
#[derive(Default)]
struct Live {
    offsets: BTreeMap<u64, i64>,
}

impl Live {
    fn insert(&mut self, id: u64, offset: i64) {
        self.offsets.insert(id, offset);
    }

    fn remove(&mut self, id: u64) {
        self.offsets.remove(&id);
    }

    fn oldest(&self) -> Option<i64> {
        self.offsets.first_key_value().map(|(_, offset)| *offset)
    }
}

impl StoredMessage {
    pub fn of(m: &Message, dedup_id: Option<String>, origin: Option<String>) -> StoredMessage {
        StoredMessage {
            id: m.id,
            body: m.body.to_vec(),
            headers: m.headers.clone(),
            priority: m.priority,
            group_id: m.group_id.clone(),
            published_ms: m.published_ms,
            visible_at_ms: m.visible_at_ms,
            expires_at_ms: m.expires_at_ms,
            dedup_id,
            origin,
        }
    }

    fn into_message(self) -> Message {
        Message {
            id: self.id,
            body: Bytes::from(self.body),
            headers: self.headers,
            priority: self.priority,
            group_id: self.group_id,
            published_ms: self.published_ms,
            visible_at_ms: self.visible_at_ms,
            expires_at_ms: self.expires_at_ms,
            deliveries: 0,
        }
    }
}

fn corrupt(reason: String) -> LogError {
    LogError::Io {
        context: "replaying a queue journal".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    }
}

impl QueueStore {
    /// Opens (or creates) the journal in `dir` and replays it.
    pub async fn open(
        dir: PathBuf,
        config: LogConfig,
        cache: Rc<BatchCache>,
    ) -> Result<(QueueStore, Recovered), LogError> {
        let log = PartitionLog::open(dir, config, cache).await?;
        let store = QueueStore {
            log,
            live: RefCell::new(Live::default()),
            scratch: std::cell::Cell::new(AlignedVec::new()),
        };
        let recovered = store.replay().await?;
        Ok((store, recovered))
    }

    async fn replay(&self) -> Result<Recovered, LogError> {
        let mut messages: HashMap<u64, (StoredMessage, u32)> = HashMap::new();
        let mut dead: HashMap<u64, DeadReason> = HashMap::new();
        let mut out = Recovered::default();
        let mut next = self.log.start_offset();
        let end = self.log.end_offset();
        while next < end {
            let read = self.log.read(next, 1 << 20).await?;
            if read.batches.is_empty() {
                break;
            }
            for batch in &read.batches {
                for r in records::records(batch)? {
                    let r = r?;
                    next = next.max(r.offset + 1);
                    let Some(value) = r.value else { continue };
                    let mut aligned = AlignedVec::<16>::with_capacity(value.len());
                    aligned.extend_from_slice(value);
                    let event = rkyv::from_bytes::<Event, rancor::Error>(&aligned)
                        .map_err(|e| corrupt(format!("event at offset {}: {e}", r.offset)))?;
                    match event {
                        Event::Published(m) => {
                            out.next_id = out.next_id.max(m.id + 1);
                            if let Some(d) = &m.dedup_id {
                                out.dedup.push((d.clone(), m.published_ms));
                            }
                            if let Some(o) = &m.origin {
                                out.origins.insert(o.clone());
                            }
                            self.live.borrow_mut().insert(m.id, r.offset);
                            messages.insert(m.id, (m, 0));
                        }
                        Event::Delivered { id, deliveries } => {
                            if let Some(entry) = messages.get_mut(&id) {
                                entry.1 = deliveries;
                            }
                        }
                        Event::Settled { id } => {
                            messages.remove(&id);
                            dead.remove(&id);
                            self.live.borrow_mut().remove(id);
                        }
                        Event::DeadLettering { id, reason } => {
                            dead.insert(id, reason_of(reason));
                        }
                    }
                }
            }
        }
        let mut live: Vec<(StoredMessage, u32)> = messages.into_values().collect();
        live.sort_by_key(|(m, _)| m.id);
        out.messages = live
            .into_iter()
            .map(|(m, deliveries)| Message {
                deliveries,
                ..m.into_message()
            })
            .collect();
        let mut dead: Vec<(u64, DeadReason)> = dead.into_iter().collect();
        dead.sort_by_key(|(id, _)| *id);
        out.dead_lettering = dead;
        Ok(out)
    }

    /// Appends events as one batch; with `durable` returns once they are on disk.
    pub async fn append(
        &self,
        events: &[Event],
        durable: bool,
        now_ms: i64,
    ) -> Result<(), LogError> {
        if events.is_empty() {
            return Ok(());
        }
        // One scratch buffer for every record (its capacity stays), copied into the
        // batch as it is built.
        let mut scratch = self.scratch.take();
        let mut builder = BatchBuilder::new(now_ms, events.len() * 64);
        for e in events {
            scratch.clear();
            scratch = rkyv::api::high::to_bytes_in::<_, rancor::Error>(e, scratch)
                .map_err(|e| corrupt(e.to_string()))?;
            builder.push(None, Some(&scratch), now_ms, &[]);
        }
        self.scratch.set(scratch);
        let Some(batch) = builder.finish() else {
            return Ok(());
        };
        let appended = self.log.append(BytesMut::from(Bytes::from(batch)))?;
        {
            let mut live = self.live.borrow_mut();
            for (i, e) in events.iter().enumerate() {
                match e {
                    Event::Published(m) => live.insert(m.id, appended.base_offset + i as i64),
                    Event::Settled { id } => live.remove(*id),
                    _ => {}
                }
            }
        }
        if durable {
            self.log.wait_durable(appended.last_offset).await?;
        }
        Ok(())
    }

    /// Removes whole segments that hold no unsettled publish; returns how many went.
    pub async fn reclaim(&self) -> Result<usize, LogError> {
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
    use crate::queues::{Holder, PublishOptions, Queue, QueueConfig};
    use std::future::Future;

    fn run<F, Fut>(test: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        crate::sys::raise_memlock_limit().expect("raise RLIMIT_MEMLOCK");
        glommio::LocalExecutorBuilder::default()
            .spawn(test)
            .expect("start executor")
            .join()
            .expect("test executor");
    }

    fn config(segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            ..LogConfig::default()
        }
    }

    async fn open(dir: &std::path::Path, segment_bytes: u64) -> (QueueStore, Recovered) {
        QueueStore::open(
            dir.to_owned(),
            config(segment_bytes),
            BatchCache::new(16 << 20),
        )
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
        let stored = StoredMessage::of(q.message(id).expect("message"), dedup, None);
        s.append(&[Event::Published(stored)], true, now)
            .await
            .expect("journal");
        id
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
            let delivered: Vec<Event> = d
                .iter()
                .map(|d| Event::Delivered {
                    id: d.message.id,
                    deliveries: d.message.deliveries,
                })
                .collect();
            s.append(&delivered, true, 0).await.expect("journal");
            // a acked, b being dead-lettered, c still leased, d never delivered.
            q.ack(d[0].handle).expect("ack");
            s.append(
                &[Event::Settled {
                    id: d[0].message.id,
                }],
                true,
                1,
            )
            .await
            .expect("journal");
            s.append(
                &[QueueStore::dead_lettering(
                    d[1].message.id,
                    DeadReason::Rejected,
                )],
                true,
                1,
            )
            .await
            .expect("journal");
            s.close().await.expect("close");
            let (s, rec) = open(&dir, 1 << 20).await;
            let bodies: Vec<(&[u8], u32)> = rec
                .messages
                .iter()
                .map(|m| (&m.body[..], m.deliveries))
                .collect();
            assert_eq!(bodies, vec![(&b"b"[..], 1), (&b"c"[..], 1), (&b"d"[..], 0)]);
            assert_eq!(
                rec.dead_lettering,
                vec![(d[1].message.id, DeadReason::Rejected)]
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
            let (again, _) = q.receive(3, Holder::Pull, 5);
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
            let moved = StoredMessage {
                origin: Some("src/7".into()),
                ..StoredMessage::of(q.message(0).expect("m"), None, None)
            };
            s.append(
                &[Event::Published(StoredMessage { id: 1, ..moved })],
                true,
                1000,
            )
            .await
            .expect("journal");
            s.close().await.expect("close");
            let (s, rec) = open(&dir, 1 << 20).await;
            assert!(rec.origins.contains("src/7"));
            let mut q = Queue::restore("q", fifo, rec.messages, rec.dedup, rec.next_id, 2000);
            let dup = q
                .publish(Bytes::from_static(b"again"), opts, 2000)
                .expect("publish");
            assert_eq!(dup, None, "dedup window survives a restart");
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
            let settled: Vec<Event> = d
                .iter()
                .map(|d| Event::Settled { id: d.message.id })
                .collect();
            s.append(&settled, true, 0).await.expect("journal");
            let removed = s.reclaim().await.expect("reclaim");
            assert!(removed > 0 && s.log().segment_count() < segments);
            s.close().await.expect("close");
            let (s, rec) = open(&dir, 4096).await;
            assert_eq!(rec.messages.len(), 5, "live messages kept");
            assert_eq!(rec.messages[0].id, 15);
            s.close().await.expect("close");
        });
    }
}
