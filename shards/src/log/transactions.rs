//! Transactions in one partition (Kafka's exactly-once, KIP-98): which producers have a
//! transaction open here and from which offset, and where aborted transactions lie.
//!
//! * A transactional data batch (attributes 0x10) opens its producer's transaction here
//!   if none is open: `ongoing[producer] = its base offset`.
//! * A marker (control batch, `records::EndTxnMarker`) closes it: a commit forgets it,
//!   an abort records `AbortedTxn { first_offset, last_offset: marker offset }`. A marker
//!   with no open transaction records nothing (the coordinator re-sends markers after a
//!   crash).
//! * The last stable offset (LSO) is the first offset of the oldest open transaction,
//!   or the end offset: `read_committed` readers stop there.
//!
//! Bounds: `ongoing` holds at most one entry per producer id that wrote here (each needs
//! its own id from the coordinator). `aborted` grows by one 24-byte entry per abort
//! marker, a batch of about 80 bytes on disk, so it is bounded by the log's retention:
//! entries whose marker is below the log start are dropped when the start moves.
//!
//! Saved in the producer snapshot (`producers.json`) at a clean close and rebuilt from
//! the log otherwise (`PartitionLog::open`). Owned by the partition's log, so by the
//! partition's shard.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// An aborted transaction of one producer in this partition: its records lie in
/// `[first_offset, last_offset]`, `last_offset` being its abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// The transaction state of one partition. Owned by the partition's log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Saved", into = "Saved")]
pub struct PartitionTxns {
    /// Producer id -> first offset of its open transaction here.
    ongoing: BTreeMap<i64, i64>,
    /// `ongoing` ordered by first offset: the LSO is its first entry.
    by_first: BTreeSet<(i64, i64)>,
    /// In marker order, so by `last_offset`.
    aborted: VecDeque<AbortedTxn>,
    /// Longest `last_offset - first_offset` among `aborted`: an entry that starts before
    /// `to` ends before `to + span_max`, which bounds the search in `aborted_in`.
    span_max: i64,
}

/// The saved form: only what cannot be derived.
#[derive(Serialize, Deserialize)]
struct Saved {
    ongoing: Vec<(i64, i64)>,
    aborted: Vec<AbortedTxn>,
}

impl From<Saved> for PartitionTxns {
    fn from(saved: Saved) -> PartitionTxns {
        let mut txns = PartitionTxns::default();
        for (producer_id, first_offset) in saved.ongoing {
            txns.open(producer_id, first_offset);
        }
        let mut aborted: Vec<AbortedTxn> = saved
            .aborted
            .into_iter()
            .filter(|a| a.first_offset <= a.last_offset)
            .collect();
        // A snapshot is a file: keep the order invariant whatever it says.
        aborted.sort_by_key(|a| a.last_offset);
        for a in aborted {
            txns.push_aborted(a);
        }
        txns
    }
}

impl From<PartitionTxns> for Saved {
    fn from(txns: PartitionTxns) -> Saved {
        Saved {
            ongoing: txns.ongoing.into_iter().collect(),
            aborted: txns.aborted.into_iter().collect(),
        }
    }
}

impl PartitionTxns {
    /// A transactional data batch of `producer_id` at `base_offset` was appended.
    pub fn on_data(&mut self, producer_id: i64, base_offset: i64) {
        if !self.ongoing.contains_key(&producer_id) {
            self.open(producer_id, base_offset);
        }
    }

    fn open(&mut self, producer_id: i64, first_offset: i64) {
        if let Some(old) = self.ongoing.insert(producer_id, first_offset) {
            self.by_first.remove(&(old, producer_id));
        }
        self.by_first.insert((first_offset, producer_id));
        debug_assert_eq!(self.ongoing.len(), self.by_first.len());
    }

    /// A marker of `producer_id` was appended at `marker_offset`: its open transaction
    /// here, if any, ends. Returns the aborted range it recorded.
    pub fn on_marker(
        &mut self,
        producer_id: i64,
        commit: bool,
        marker_offset: i64,
    ) -> Option<AbortedTxn> {
        let first_offset = self.ongoing.remove(&producer_id)?;
        self.by_first.remove(&(first_offset, producer_id));
        debug_assert!(first_offset < marker_offset, "a marker follows its data");
        if commit {
            return None;
        }
        let aborted = AbortedTxn {
            producer_id,
            first_offset,
            last_offset: marker_offset,
        };
        self.push_aborted(aborted);
        Some(aborted)
    }

    fn push_aborted(&mut self, aborted: AbortedTxn) {
        debug_assert!(
            self.aborted
                .back()
                .is_none_or(|b| b.last_offset < aborted.last_offset),
            "markers are appended in offset order"
        );
        self.span_max = self
            .span_max
            .max(aborted.last_offset - aborted.first_offset);
        self.aborted.push_back(aborted);
    }

    /// First offset of the oldest open transaction.
    pub fn first_unstable(&self) -> Option<i64> {
        self.by_first.first().map(|(first, _)| *first)
    }

    /// First offset of `producer_id`'s open transaction here.
    pub fn ongoing_first(&self, producer_id: i64) -> Option<i64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// Producers with a transaction open here and its first offset, by producer id.
    pub fn ongoing(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ongoing.iter().map(|(p, f)| (*p, *f))
    }

    /// Aborted transactions that may have records in `[from, to)`: those whose marker
    /// is at or after `from` and whose first record is before `to`, by first offset.
    pub fn aborted_in(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        if to <= from {
            return Vec::new();
        }
        let lo = self.aborted.partition_point(|a| a.last_offset < from);
        let hi = self
            .aborted
            .partition_point(|a| a.last_offset < to.saturating_add(self.span_max));
        let mut out: Vec<AbortedTxn> = self
            .aborted
            .range(lo..hi.max(lo))
            .filter(|a| a.first_offset < to)
            .copied()
            .collect();
        out.sort_by_key(|a| (a.first_offset, a.producer_id));
        out
    }

    /// The log start moved to `start`: aborted transactions wholly below it go.
    pub fn truncate_below(&mut self, start: i64) {
        let before = self.aborted.len();
        while self.aborted.front().is_some_and(|a| a.last_offset < start) {
            self.aborted.pop_front();
        }
        if self.aborted.len() != before {
            self.recompute_span();
        }
    }

    /// Drops whatever claims an offset at or after `end`: a snapshot covering offsets
    /// below `end` cannot know of it (only a damaged one would hold it).
    pub fn forget_from(&mut self, end: i64) {
        let stale: Vec<i64> = self
            .ongoing
            .iter()
            .filter(|(_, first)| **first >= end)
            .map(|(p, _)| *p)
            .collect();
        for producer_id in stale {
            if let Some(first) = self.ongoing.remove(&producer_id) {
                self.by_first.remove(&(first, producer_id));
            }
        }
        let before = self.aborted.len();
        while self.aborted.back().is_some_and(|a| a.last_offset >= end) {
            self.aborted.pop_back();
        }
        if self.aborted.len() != before {
            self.recompute_span();
        }
    }

    fn recompute_span(&mut self) {
        self.span_max = self
            .aborted
            .iter()
            .map(|a| a.last_offset - a.first_offset)
            .max()
            .unwrap_or(0);
    }

    pub fn is_empty(&self) -> bool {
        self.ongoing.is_empty() && self.aborted.is_empty()
    }

    /// Every aborted transaction kept, in marker order (for tests).
    #[cfg(test)]
    pub fn aborted(&self) -> Vec<AbortedTxn> {
        self.aborted.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aborted(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
        }
    }

    #[test]
    fn the_oldest_open_transaction_holds_the_stable_offset_back() {
        let mut t = PartitionTxns::default();
        assert_eq!(t.first_unstable(), None);
        t.on_data(1, 10);
        t.on_data(2, 12);
        t.on_data(1, 14); // still the transaction from 10
        assert_eq!(t.first_unstable(), Some(10));
        assert_eq!(t.on_marker(1, true, 20), None);
        assert_eq!(t.first_unstable(), Some(12));
        assert_eq!(t.on_marker(2, false, 21), Some(aborted(2, 12, 21)));
        assert_eq!(t.first_unstable(), None);
        // A marker with nothing open records nothing.
        assert_eq!(t.on_marker(2, false, 22), None);
        assert_eq!(t.aborted(), vec![aborted(2, 12, 21)]);
    }

    #[test]
    fn aborted_in_finds_every_overlapping_range_and_nothing_else() {
        let mut t = PartitionTxns::default();
        // Producer 1: a long transaction [0, 100]; 2: [10, 20]; 3: [50, 60].
        t.on_data(1, 0);
        t.on_data(2, 10);
        t.on_marker(2, false, 20);
        t.on_data(3, 50);
        t.on_marker(3, false, 60);
        t.on_marker(1, false, 100);
        let ids = |from, to| -> Vec<i64> {
            t.aborted_in(from, to)
                .iter()
                .map(|a| a.producer_id)
                .collect()
        };
        assert_eq!(ids(0, 10), vec![1]);
        assert_eq!(ids(0, 11), vec![1, 2]);
        assert_eq!(ids(20, 21), vec![1, 2]);
        assert_eq!(ids(21, 50), vec![1]);
        assert_eq!(ids(21, 51), vec![1, 3]);
        assert_eq!(ids(100, 101), vec![1]);
        assert_eq!(ids(101, 200), Vec::<i64>::new());
        assert_eq!(ids(5, 5), Vec::<i64>::new());
        // Against brute force over every small range.
        let all = t.aborted();
        for from in 0..110 {
            for to in from + 1..110 {
                let want: Vec<i64> = all
                    .iter()
                    .filter(|a| a.last_offset >= from && a.first_offset < to)
                    .map(|a| a.producer_id)
                    .collect();
                let mut got = ids(from, to);
                got.sort_unstable();
                let mut want = want;
                want.sort_unstable();
                assert_eq!(got, want, "[{from}, {to})");
            }
        }
    }

    #[test]
    fn truncation_drops_ranges_below_the_start_and_saving_round_trips() {
        let mut t = PartitionTxns::default();
        t.on_data(1, 0);
        t.on_marker(1, false, 90);
        t.on_data(2, 91);
        t.on_marker(2, false, 93);
        t.on_data(3, 94);
        let json = serde_json::to_string(&t).expect("serialize");
        let back: PartitionTxns = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, t);
        t.truncate_below(91);
        assert_eq!(t.aborted(), vec![aborted(2, 91, 93)]);
        assert_eq!(t.span_max, 2, "recomputed without the long one");
        assert_eq!(t.first_unstable(), Some(94));
        t.truncate_below(94);
        assert!(t.aborted().is_empty());
        assert!(!t.is_empty(), "producer 3 is still open");
    }
}
