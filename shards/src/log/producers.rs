//! Idempotent producers (Kafka's KIP-98) for one partition: per producer id, its epoch
//! and the sequence ranges of its last batches. A retried batch (same epoch, same
//! sequence range as one kept) is answered with the offsets it got the first time
//! instead of being appended twice; a gap or a step back in sequence numbers is refused
//! (OUT_OF_ORDER_SEQUENCE_NUMBER); a batch from an older epoch is fenced.
//!
//! The state is rebuilt from the log at open: from the snapshot written at the last
//! clean close (`producers.json`, covering offsets below its `offset`), then the batches
//! after it. Without a usable snapshot only the active segment is read: a producer
//! silent for longer is forgotten, and its next batch starts a fresh entry (Kafka's
//! producer-state expiry; the client's sequence carries on).

use super::error::LogError;
use crate::batch::BatchHeader;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::Path;

/// Batches kept per producer: Kafka's limit on in-flight requests of an idempotent
/// producer, so any retry it can make is recognised.
pub const BATCHES_KEPT: usize = 5;
pub const SNAPSHOT_FILE: &str = "producers.json";

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
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
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
}

impl ProducerStates {
    /// Checks the batches of one request, in order, without changing anything.
    pub fn check(&self, headers: &[&BatchHeader]) -> Result<Verdict, LogError> {
        let mut staged: HashMap<i64, Producer> = HashMap::new();
        let mut duplicate: Option<(i64, i64)> = None;
        let mut fresh = false;
        for h in headers.iter().filter(|h| h.producer_id >= 0) {
            let p = staged.entry(h.producer_id).or_insert_with(|| {
                self.producers
                    .get(&h.producer_id)
                    .cloned()
                    .unwrap_or_default()
            });
            let known = self.producers.contains_key(&h.producer_id) || !p.batches.is_empty();
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

    /// Records an appended batch (its base offset assigned).
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64) {
        if h.producer_id < 0 {
            return;
        }
        let p = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != p.epoch {
            p.batches.clear();
        }
        p.epoch = h.producer_epoch;
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

    /// Writes the state covering offsets below `offset` (write, fsync, rename). Small and
    /// only at close, so plain blocking file calls.
    pub fn save(&self, dir: &Path, offset: i64) -> std::io::Result<()> {
        use std::io::Write;
        let snapshot = Snapshot {
            offset,
            states: self.clone(),
        };
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// The saved state and the offset it covers up to, if a readable snapshot exists.
    /// A damaged snapshot is ignored (the log is read instead).
    pub fn load(dir: &Path) -> Option<(ProducerStates, i64)> {
        let bytes = std::fs::read(dir.join(SNAPSHOT_FILE)).ok()?;
        let snapshot: Snapshot = serde_json::from_slice(&bytes).ok()?;
        Some((snapshot.states, snapshot.offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.check(&[&a]).ok(), Some(Verdict::Append));
        s.record(&a, 100);
        assert_eq!(s.check(&[&b]).ok(), Some(Verdict::Append));
        s.record(&b, 103);
        assert_eq!(
            s.check(&[&a]).ok(),
            Some(Verdict::Duplicate {
                base_offset: 100,
                last_offset: 102
            })
        );
        assert_eq!(
            s.check(&[&b]).ok(),
            Some(Verdict::Duplicate {
                base_offset: 103,
                last_offset: 104
            })
        );
    }

    #[test]
    fn gaps_old_epochs_and_restarts_without_zero_are_refused() {
        let mut s = ProducerStates::default();
        s.record(&header(7, 1, 0, 5), 0);
        assert!(matches!(
            s.check(&[&header(7, 1, 9, 1)]),
            Err(LogError::OutOfOrderSequence {
                expected: 5,
                got: 9,
                ..
            })
        ));
        assert!(matches!(
            s.check(&[&header(7, 0, 5, 1)]),
            Err(LogError::ProducerFenced {
                epoch: 0,
                current: 1,
                ..
            })
        ));
        assert!(matches!(
            s.check(&[&header(7, 2, 3, 1)]),
            Err(LogError::OutOfOrderSequence { expected: 0, .. })
        ));
        // A new epoch from 0 is fine, and forgets the old batches.
        assert_eq!(s.check(&[&header(7, 2, 0, 1)]).ok(), Some(Verdict::Append));
        // Non-idempotent batches are never checked; an unknown producer starts anywhere.
        assert_eq!(
            s.check(&[&header(-1, -1, -1, 4)]).ok(),
            Some(Verdict::Append)
        );
        assert_eq!(s.check(&[&header(8, 0, 42, 1)]).ok(), Some(Verdict::Append));
    }

    #[test]
    fn several_batches_of_one_request_are_checked_in_sequence() {
        let s = ProducerStates::default();
        let (a, b, c) = (header(1, 0, 0, 2), header(1, 0, 2, 2), header(1, 0, 7, 1));
        assert_eq!(s.check(&[&a, &b]).ok(), Some(Verdict::Append));
        assert!(s.check(&[&a, &c]).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_kept_and_sequences_wrap() {
        let mut s = ProducerStates::default();
        for i in 0..8 {
            s.record(&header(3, 0, i, 1), i64::from(i));
        }
        assert_eq!(s.producers[&3].batches.len(), BATCHES_KEPT);
        assert!(
            s.check(&[&header(3, 0, 0, 1)]).is_err(),
            "too old to recognise"
        );
        let mut w = ProducerStates::default();
        w.record(&header(4, 0, i32::MAX - 1, 2), 0);
        assert_eq!(s.check(&[&header(3, 0, 8, 1)]).ok(), Some(Verdict::Append));
        assert_eq!(w.check(&[&header(4, 0, 0, 1)]).ok(), Some(Verdict::Append));
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = ProducerStates::default();
        s.record(&header(9, 2, 0, 4), 40);
        s.save(dir.path(), 44).expect("save");
        assert_eq!(ProducerStates::load(dir.path()), Some((s, 44)));
        std::fs::write(dir.path().join(SNAPSHOT_FILE), b"{broken").expect("write");
        assert_eq!(ProducerStates::load(dir.path()), None);
    }
}
