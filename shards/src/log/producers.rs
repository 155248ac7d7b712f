//! Idempotent producers (Kafka's KIP-98) for one partition: per producer id, its epoch
//! and the sequence ranges of its last batches. A retried batch (same epoch, same
//! sequence range as one kept) is answered with the offsets it got the first time
//! instead of being appended twice; a gap or a step back in sequence numbers is refused
//! (OUT_OF_ORDER_SEQUENCE_NUMBER); a batch from an older epoch is fenced.
//!
//! The state is rebuilt from the log at open: from the snapshot written at the last
//! clean close (`producers.json`, covering offsets below its `offset`), then the batches
//! after it. Without a usable snapshot only the active segment is read (the whole log
//! in a partition that ever had a transactional batch, see `partition_log`): a
//! producer silent for longer is forgotten, and its next batch starts a fresh entry
//! (Kafka's producer-state expiry; the client's sequence carries on).
//!
//! A producer idle for longer than the expiration (Kafka's `producer.id.expiration.ms`,
//! `--producer-id-expiration-ms`, default one day) is forgotten: its next batch is
//! checked as a new producer's, whatever its sequence (as Kafka since KIP-360 accepts
//! an unknown producer), so the state cannot grow without bound with the producers
//! that ever wrote. Expired entries are dropped lazily when looked up, on every
//! retention pass (`PartitionLog::enforce_retention`) and from the snapshot.
//!
//! Transactional producers (KIP-98) are checked the same way. A transaction marker
//! (`check_marker`, `record_marker`) from an epoch older than the producer's is fenced;
//! a newer epoch becomes the producer's and starts its sequence over.
//!
//! The snapshot is written and read through the shard's DMA files (`file`), never with
//! blocking calls on the shard's thread. It also carries the partition's transaction
//! state (`transactions::PartitionTxns`), which is rebuilt with the producers.

use super::error::LogError;
use super::file;
use super::transactions::PartitionTxns;
use crate::batch::BatchHeader;
use crate::checked_file;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use tracing::warn;

/// Batches kept per producer: Kafka's limit on in-flight requests of an idempotent
/// producer, so any retry it can make is recognised.
pub const BATCHES_KEPT: usize = 5;
pub const SNAPSHOT_FILE: &str = "producers.json";
/// Kafka's `producer.id.expiration.ms` default: one day.
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Producer {
    epoch: i16,
    batches: VecDeque<Kept>,
    /// Broker time (Unix ms) of the producer's last appended batch. Absent from
    /// snapshots written before expiry existed: then the time they are loaded.
    #[serde(default)]
    last_ms: i64,
}

/// Owned by the partition's log (so by the partition's shard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
    /// Idle time after which a producer is forgotten; a setting, not state.
    #[serde(skip, default = "expiration_default")]
    expiration_ms: i64,
}

fn expiration_default() -> i64 {
    PRODUCER_ID_EXPIRATION_MS_DEFAULT as i64
}

impl Default for ProducerStates {
    fn default() -> ProducerStates {
        ProducerStates::new(PRODUCER_ID_EXPIRATION_MS_DEFAULT)
    }
}

/// What to do with one request's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Append,
    /// Every batch was appended before: these are the offsets they got.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
    },
}

/// Sequence numbers wrap from i32::MAX to 0, as Kafka's do.
fn add_seq(seq: i32, n: i32) -> i32 {
    ((i64::from(seq) + i64::from(n)) % (i64::from(i32::MAX) + 1)) as i32
}

fn last_seq(h: &BatchHeader) -> i32 {
    add_seq(h.base_sequence, h.last_offset_delta)
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// The state covers every batch below this offset.
    offset: i64,
    states: ProducerStates,
    /// Absent from snapshots written before transactions existed: none then.
    #[serde(default)]
    txns: PartitionTxns,
}

/// What DescribeProducers shows of one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub epoch: i16,
    /// -1 when no batch with a sequence is kept.
    pub last_sequence: i32,
    pub last_ms: i64,
}

impl ProducerStates {
    /// State kept for producers idle at most `expiration_ms` (clamped to fit an i64).
    pub fn new(expiration_ms: u64) -> ProducerStates {
        ProducerStates {
            producers: HashMap::new(),
            expiration_ms: i64::try_from(expiration_ms).unwrap_or(i64::MAX),
        }
    }

    /// The state of `producer_id` unless it expired by `now_ms`.
    fn live(&self, producer_id: i64, now_ms: i64) -> Option<&Producer> {
        self.producers
            .get(&producer_id)
            .filter(|p| !self.expired(p, now_ms))
    }

    fn expired(&self, p: &Producer, now_ms: i64) -> bool {
        now_ms.saturating_sub(p.last_ms) > self.expiration_ms
    }

    /// Forgets every producer idle for longer than the expiration; returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let before = self.producers.len();
        let expiration_ms = self.expiration_ms;
        self.producers
            .retain(|_, p| now_ms.saturating_sub(p.last_ms) <= expiration_ms);
        before - self.producers.len()
    }

    /// Producers with state kept (expired ones included until `expire` runs).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Checks the batches of one request, in order, without changing anything.
    pub fn check(&self, headers: &[&BatchHeader], now_ms: i64) -> Result<Verdict, LogError> {
        let mut staged: HashMap<i64, Producer> = HashMap::new();
        let mut duplicate: Option<(i64, i64)> = None;
        let mut fresh = false;
        for h in headers.iter().filter(|h| h.producer_id >= 0) {
            let live = self.live(h.producer_id, now_ms);
            let p = staged
                .entry(h.producer_id)
                .or_insert_with(|| live.cloned().unwrap_or_default());
            let known = live.is_some() || !p.batches.is_empty();
            let last = last_seq(h);
            if known && h.producer_epoch < p.epoch {
                return Err(LogError::ProducerFenced {
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                    current: p.epoch,
                });
            }
            if known && h.producer_epoch == p.epoch {
                if let Some(k) = p
                    .batches
                    .iter()
                    .find(|k| k.first_seq == h.base_sequence && k.last_seq == last)
                {
                    let (base, end) = duplicate.unwrap_or((k.base_offset, k.last_offset));
                    duplicate = Some((base.min(k.base_offset), end.max(k.last_offset)));
                    continue;
                }
                if let Some(prev) = p.batches.back() {
                    let expected = add_seq(prev.last_seq, 1);
                    if h.base_sequence != expected {
                        return Err(LogError::OutOfOrderSequence {
                            producer_id: h.producer_id,
                            expected,
                            got: h.base_sequence,
                        });
                    }
                }
            } else if known && h.base_sequence != 0 {
                // A new epoch starts its sequence over.
                return Err(LogError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                });
            }
            fresh = true;
            p.epoch = h.producer_epoch;
            p.batches.push_back(Kept {
                first_seq: h.base_sequence,
                last_seq: last,
                base_offset: 0,
                last_offset: 0,
            });
        }
        match (duplicate, fresh) {
            (Some((base_offset, last_offset)), false) => Ok(Verdict::Duplicate {
                base_offset,
                last_offset,
            }),
            (Some(_), true) => Err(LogError::InvalidBatch(crate::batch::BatchError::Invalid(
                "a request mixes retried and new batches of one producer",
            ))),
            (None, _) => Ok(Verdict::Append),
        }
    }

    /// Checks a transaction marker of `producer_id` at `epoch`: one from an older epoch
    /// than the producer's current one is fenced.
    pub fn check_marker(&self, producer_id: i64, epoch: i16, now_ms: i64) -> Result<(), LogError> {
        match self.live(producer_id, now_ms) {
            Some(p) if epoch < p.epoch => Err(LogError::ProducerFenced {
                producer_id,
                epoch,
                current: p.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records an appended marker: a newer epoch becomes the producer's, and its
    /// sequence starts over (its next batch at that epoch may start at 0); the same
    /// epoch keeps the sequence going, as Kafka's producer carries on across
    /// transactions.
    pub fn record_marker(&mut self, producer_id: i64, epoch: i16, now_ms: i64) {
        let expiration_ms = self.expiration_ms;
        let p = self.producers.entry(producer_id).or_default();
        if epoch != p.epoch || now_ms.saturating_sub(p.last_ms) > expiration_ms {
            p.batches.clear();
        }
        p.epoch = epoch;
        p.last_ms = p.last_ms.max(now_ms);
    }

    /// Every producer kept, by producer id.
    pub fn views(&self) -> Vec<ProducerView> {
        let mut out: Vec<ProducerView> = self
            .producers
            .iter()
            .map(|(id, p)| ProducerView {
                producer_id: *id,
                epoch: p.epoch,
                last_sequence: p.batches.back().map_or(-1, |k| k.last_seq),
                last_ms: p.last_ms,
            })
            .collect();
        out.sort_by_key(|v| v.producer_id);
        out
    }

    /// Records an appended batch (its base offset assigned) at broker time `now_ms`.
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64, now_ms: i64) {
        if h.producer_id < 0 {
            return;
        }
        let expiration_ms = self.expiration_ms;
        let p = self.producers.entry(h.producer_id).or_default();
        // An expired producer starts over, as `check` judged it.
        if h.producer_epoch != p.epoch || now_ms.saturating_sub(p.last_ms) > expiration_ms {
            p.batches.clear();
        }
        p.epoch = h.producer_epoch;
        p.last_ms = p.last_ms.max(now_ms);
        p.batches.push_back(Kept {
            first_seq: h.base_sequence,
            last_seq: last_seq(h),
            base_offset,
            last_offset: base_offset + i64::from(h.last_offset_delta),
        });
        while p.batches.len() > BATCHES_KEPT {
            p.batches.pop_front();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Writes the state covering offsets below `offset`, without the producers expired
    /// by `now_ms`, and the partition's transactions, atomically (temporary file,
    /// fdatasync, rename, directory fsync) through the shard's DMA files.
    pub async fn save(
        &self,
        txns: &PartitionTxns,
        dir: &Path,
        offset: i64,
        now_ms: i64,
    ) -> std::io::Result<()> {
        let mut states = self.clone();
        states.expire(now_ms);
        let snapshot = Snapshot {
            offset,
            states,
            txns: txns.clone(),
        };
        let json = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
        let bytes = checked_file::frame(&json);
        file::write_file_atomic(&dir.join(SNAPSHOT_FILE), &bytes).await?;
        file::sync_dir(dir).await
    }

    /// The saved state, the partition's transactions and the offset they cover up to,
    /// if a readable snapshot exists, its expiration set to `expiration_ms`. A damaged
    /// snapshot (its CRC32C frame or its JSON) is ignored with a warning: it is a cache
    /// of the log, which is read instead.
    pub async fn load(
        dir: &Path,
        expiration_ms: u64,
        now_ms: i64,
    ) -> Option<(ProducerStates, PartitionTxns, i64)> {
        let path = dir.join(SNAPSHOT_FILE);
        let bytes = match file::read_small_file(&path).await {
            Ok(found) => found?,
            Err(err) => {
                warn!(file = %path.display(), %err, "cannot read the producer snapshot; rebuilding it from the log");
                return None;
            }
        };
        let decoded = checked_file::open(&bytes)
            .and_then(|o| serde_json::from_slice::<Snapshot>(o.body()).map_err(|e| e.to_string()));
        let snapshot = match decoded {
            Ok(snapshot) => snapshot,
            Err(reason) => {
                warn!(file = %path.display(), reason, "damaged producer snapshot; rebuilding it from the log");
                return None;
            }
        };
        let mut states = snapshot.states;
        states.expiration_ms = ProducerStates::new(expiration_ms).expiration_ms;
        for p in states.producers.values_mut().filter(|p| p.last_ms == 0) {
            p.last_ms = now_ms;
        }
        Some((states, snapshot.txns, snapshot.offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broker time of the appends in these tests.
    const NOW: i64 = 1_700_000_000_000;

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            records_count: records,
        }
    }

    #[test]
    fn in_order_batches_append_and_a_retry_gets_its_first_offsets() {
        let mut s = ProducerStates::default();
        let (a, b) = (header(7, 0, 0, 3), header(7, 0, 3, 2));
        assert_eq!(s.check(&[&a], NOW).ok(), Some(Verdict::Append));
        s.record(&a, 100, NOW);
        assert_eq!(s.check(&[&b], NOW).ok(), Some(Verdict::Append));
        s.record(&b, 103, NOW);
        assert_eq!(
            s.check(&[&a], NOW).ok(),
            Some(Verdict::Duplicate {
                base_offset: 100,
                last_offset: 102
            })
        );
        assert_eq!(
            s.check(&[&b], NOW).ok(),
            Some(Verdict::Duplicate {
                base_offset: 103,
                last_offset: 104
            })
        );
    }

    #[test]
    fn gaps_old_epochs_and_restarts_without_zero_are_refused() {
        let mut s = ProducerStates::default();
        s.record(&header(7, 1, 0, 5), 0, NOW);
        assert!(matches!(
            s.check(&[&header(7, 1, 9, 1)], NOW),
            Err(LogError::OutOfOrderSequence {
                expected: 5,
                got: 9,
                ..
            })
        ));
        assert!(matches!(
            s.check(&[&header(7, 0, 5, 1)], NOW),
            Err(LogError::ProducerFenced {
                epoch: 0,
                current: 1,
                ..
            })
        ));
        assert!(matches!(
            s.check(&[&header(7, 2, 3, 1)], NOW),
            Err(LogError::OutOfOrderSequence { expected: 0, .. })
        ));
        // A new epoch from 0 is fine, and forgets the old batches.
        assert_eq!(
            s.check(&[&header(7, 2, 0, 1)], NOW).ok(),
            Some(Verdict::Append)
        );
        // Non-idempotent batches are never checked; an unknown producer starts anywhere.
        assert_eq!(
            s.check(&[&header(-1, -1, -1, 4)], NOW).ok(),
            Some(Verdict::Append)
        );
        assert_eq!(
            s.check(&[&header(8, 0, 42, 1)], NOW).ok(),
            Some(Verdict::Append)
        );
    }

    #[test]
    fn markers_fence_older_epochs_and_a_newer_epoch_starts_the_sequence_over() {
        let mut s = ProducerStates::default();
        s.record(&header(7, 2, 0, 4), 0, NOW);
        assert!(matches!(
            s.check_marker(7, 1, NOW),
            Err(LogError::ProducerFenced {
                epoch: 1,
                current: 2,
                ..
            })
        ));
        // Same epoch: the sequence carries on after the marker.
        assert!(s.check_marker(7, 2, NOW).is_ok());
        s.record_marker(7, 2, NOW);
        assert!(
            s.check(&[&header(7, 2, 0, 1)], NOW).is_err(),
            "a retry of 0..3 only"
        );
        assert_eq!(
            s.check(&[&header(7, 2, 4, 1)], NOW).ok(),
            Some(Verdict::Append)
        );
        // A newer epoch: older batches are fenced, the new epoch may start at 0.
        s.record_marker(7, 3, NOW);
        assert!(matches!(
            s.check(&[&header(7, 2, 4, 1)], NOW),
            Err(LogError::ProducerFenced { current: 3, .. })
        ));
        assert_eq!(
            s.check(&[&header(7, 3, 0, 1)], NOW).ok(),
            Some(Verdict::Append)
        );
        // A marker for a producer never seen here creates its entry at that epoch.
        assert!(s.check_marker(9, 0, NOW).is_ok());
        s.record_marker(9, 4, NOW);
        assert!(s.check(&[&header(9, 3, 0, 1)], NOW).is_err());
        let views = s.views();
        assert_eq!(
            views
                .iter()
                .map(|v| (v.producer_id, v.epoch, v.last_sequence))
                .collect::<Vec<_>>(),
            vec![(7, 3, -1), (9, 4, -1)]
        );
    }

    #[test]
    fn several_batches_of_one_request_are_checked_in_sequence() {
        let s = ProducerStates::default();
        let (a, b, c) = (header(1, 0, 0, 2), header(1, 0, 2, 2), header(1, 0, 7, 1));
        assert_eq!(s.check(&[&a, &b], NOW).ok(), Some(Verdict::Append));
        assert!(s.check(&[&a, &c], NOW).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_kept_and_sequences_wrap() {
        let mut s = ProducerStates::default();
        for i in 0..8 {
            s.record(&header(3, 0, i, 1), i64::from(i), NOW);
        }
        assert_eq!(s.producers[&3].batches.len(), BATCHES_KEPT);
        assert!(
            s.check(&[&header(3, 0, 0, 1)], NOW).is_err(),
            "too old to recognise"
        );
        let mut w = ProducerStates::default();
        w.record(&header(4, 0, i32::MAX - 1, 2), 0, NOW);
        assert_eq!(
            s.check(&[&header(3, 0, 8, 1)], NOW).ok(),
            Some(Verdict::Append)
        );
        assert_eq!(
            w.check(&[&header(4, 0, 0, 1)], NOW).ok(),
            Some(Verdict::Append)
        );
    }

    #[test]
    fn an_idle_producer_expires_and_comes_back_as_a_new_one() {
        let mut s = ProducerStates::new(1_000);
        s.record(&header(7, 0, 0, 5), 0, NOW);
        s.record(&header(8, 0, 0, 1), 5, NOW + 900);
        // Within the expiration: a gap is refused and a retry is recognised.
        assert!(s.check(&[&header(7, 0, 9, 1)], NOW + 1_000).is_err());
        assert!(matches!(
            s.check(&[&header(7, 0, 0, 5)], NOW + 1_000),
            Ok(Verdict::Duplicate { .. })
        ));
        // Past it: producer 7 is unknown, so any sequence starts it afresh (Kafka since
        // KIP-360), and a batch it retries now would be appended again.
        let later = NOW + 1_001;
        assert_eq!(
            s.check(&[&header(7, 0, 9, 1)], later).ok(),
            Some(Verdict::Append)
        );
        assert_eq!(
            s.check(&[&header(7, 0, 0, 5)], later).ok(),
            Some(Verdict::Append)
        );
        s.record(&header(7, 0, 9, 1), 6, later);
        assert_eq!(s.producers[&7].batches.len(), 1, "the old batches are gone");
        assert_eq!(
            s.check(&[&header(7, 0, 10, 1)], later).ok(),
            Some(Verdict::Append)
        );
        // Expiry removes what no request touched: producer 8 at NOW + 900 goes later.
        assert_eq!(s.expire(NOW + 1_900), 0);
        assert_eq!(s.expire(NOW + 1_901), 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.expire(later + 1_001), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn the_state_is_bounded_by_the_producers_active_within_the_expiration() {
        let mut s = ProducerStates::new(60_000);
        // 200,000 producers over 200 seconds, one batch each: at most a minute's worth
        // (plus what arrived since the last pass) is kept with a pass every 10 seconds.
        let mut most = 0;
        for i in 0..200_000i64 {
            let now = NOW + i;
            s.record(&header(i, 0, 0, 1), i, now);
            if i % 10_000 == 0 {
                s.expire(now);
                most = most.max(s.len());
            }
        }
        assert!(most <= 70_001, "{most} producers kept");
    }
}
