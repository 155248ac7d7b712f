//! Recent receives' answers by attempt id (SQS FIFO's ReceiveRequestAttemptId): a
//! receive retried with the same id within `ATTEMPT_WINDOW_MS` gets the first one's
//! answer again while its leases hold, so a client whose answer was lost on the network
//! does not leave those messages leased until their visibility timeout ends.
//!
//! Owned by the queue's shard, beside its `Queue`; deliberately not journaled. Leases
//! are not journaled (a restart returns every leased message, ready again), and an
//! answer is only given again while each of its leases holds, so after a restart no
//! remembered answer could be given: a retry receives afresh, as one does in SQS once
//! the visibility timeout has ended. Journaled answers would even be wrong: their
//! receipts name the broker run before, and a restarted queue hands out lease handles
//! from 1 again, so an old handle and id pair could match a new lease. Bounded: at
//! most `ATTEMPTS_MAX` ids and `ATTEMPT_BYTES_MAX` bytes of answers per queue, the
//! oldest forgotten first.

use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// How long an attempt id is remembered (SQS: 5 minutes).
pub const ATTEMPT_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Most attempt ids one queue remembers.
pub const ATTEMPTS_MAX: usize = 1024;
/// Most bytes of answers one queue remembers (an answer holds its bodies: up to 10
/// messages of 256 KiB in SQS).
pub const ATTEMPT_BYTES_MAX: usize = 16 << 20;

/// Answers `T` by attempt id, each until the end of its window, with its size.
#[derive(Debug)]
pub struct Attempts<T> {
    by_id: FxHashMap<String, (i64, T, usize)>,
    /// (until, id) in the order they were remembered.
    order: VecDeque<(i64, String)>,
    /// Sizes of the answers in `by_id`.
    bytes: usize,
}

impl<T> Default for Attempts<T> {
    fn default() -> Self {
        Attempts {
            by_id: FxHashMap::default(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T> Attempts<T> {
    /// The answer remembered for `id`, if its window is still open.
    pub fn get(&mut self, id: &str, now_ms: i64) -> Option<&T> {
        self.forget(now_ms);
        self.by_id.get(id).map(|(_, answer, _)| answer)
    }

    /// Remembers `answer` of `bytes` for `id` (replacing an earlier one) for
    /// `ATTEMPT_WINDOW_MS`; one larger than `ATTEMPT_BYTES_MAX` is not remembered.
    pub fn insert(&mut self, id: String, answer: T, bytes: usize, now_ms: i64) {
        self.forget(now_ms);
        self.remove(&id);
        if bytes > ATTEMPT_BYTES_MAX {
            return;
        }
        while self.by_id.len() >= ATTEMPTS_MAX || self.bytes + bytes > ATTEMPT_BYTES_MAX {
            let Some((_, oldest)) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        let until = now_ms.saturating_add(ATTEMPT_WINDOW_MS);
        self.by_id.insert(id.clone(), (until, answer, bytes));
        self.bytes += bytes;
        self.order.push_back((until, id));
    }

    fn remove(&mut self, id: &str) {
        if let Some((_, _, bytes)) = self.by_id.remove(id) {
            self.bytes -= bytes;
        }
    }

    fn forget(&mut self, now_ms: i64) {
        while let Some((until, _)) = self.order.front() {
            if *until > now_ms {
                break;
            }
            if let Some((until, id)) = self.order.pop_front() {
                // Unless it was remembered again since (a later entry holds it).
                if self.by_id.get(&id).is_some_and(|(u, _, _)| *u == until) {
                    self.remove(&id);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_answered_within_its_window_only() {
        let mut a = Attempts::default();
        a.insert("x".to_string(), 1, 1, 0);
        assert_eq!(a.get("x", ATTEMPT_WINDOW_MS - 1), Some(&1));
        assert_eq!(a.get("y", 0), None);
        assert_eq!(a.get("x", ATTEMPT_WINDOW_MS), None, "its window ended");
        assert!(a.is_empty());
        // Remembered again: the new window counts, not the old one.
        a.insert("x".to_string(), 2, 1, 10);
        a.insert("x".to_string(), 3, 1, 20);
        assert_eq!(a.get("x", ATTEMPT_WINDOW_MS + 15), Some(&3));
    }

    #[test]
    fn at_most_attempts_max_ids_are_kept_the_oldest_going_first() {
        let mut a = Attempts::default();
        for i in 0..ATTEMPTS_MAX + 10 {
            a.insert(format!("id{i}"), i, 1, 0);
            assert!(a.len() <= ATTEMPTS_MAX);
        }
        assert_eq!(a.get("id0", 1), None, "the oldest went");
        let last = format!("id{}", ATTEMPTS_MAX + 9);
        assert_eq!(a.get(&last, 1), Some(&(ATTEMPTS_MAX + 9)));
    }

    #[test]
    fn at_most_attempt_bytes_max_bytes_are_kept() {
        let mut a = Attempts::default();
        let quarter = ATTEMPT_BYTES_MAX / 4;
        for i in 0..10 {
            a.insert(format!("id{i}"), i, quarter, 0);
            assert!(a.bytes <= ATTEMPT_BYTES_MAX);
        }
        assert_eq!(a.len(), 4, "the four newest fit");
        assert_eq!(a.get("id5", 1), None);
        assert_eq!(a.get("id9", 1), Some(&9));
        a.insert("huge".to_string(), 99, ATTEMPT_BYTES_MAX + 1, 0);
        assert_eq!(a.get("huge", 1), None, "too large to keep");
        a.insert("id9".to_string(), 10, 1, 0);
        assert_eq!(
            a.bytes,
            3 * quarter + 1,
            "a replaced answer's bytes are released"
        );
    }
}
