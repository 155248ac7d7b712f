//! Recent receives' answers by attempt id (SQS FIFO's ReceiveRequestAttemptId): a
//! receive retried with the same id within `ATTEMPT_WINDOW_MS` gets the first one's
//! answer again while its leases hold, so a client whose answer was lost on the network
//! does not leave those messages leased until their visibility timeout ends.
//!
//! Owned by the queue's shard, beside its `Queue`; not journaled (leases end at a
//! restart, and so does what the answers name). Bounded: at most `ATTEMPTS_MAX` ids per
//! queue, the oldest forgotten first.

use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// How long an attempt id is remembered (SQS: 5 minutes).
pub const ATTEMPT_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Most attempt ids one queue remembers.
pub const ATTEMPTS_MAX: usize = 1024;

/// Answers `T` by attempt id, each until the end of its window.
#[derive(Debug)]
pub struct Attempts<T> {
    by_id: FxHashMap<String, (i64, T)>,
    /// (until, id) in the order they were remembered.
    order: VecDeque<(i64, String)>,
}

impl<T> Default for Attempts<T> {
    fn default() -> Self {
        Attempts {
            by_id: FxHashMap::default(),
            order: VecDeque::new(),
        }
    }
}

impl<T> Attempts<T> {
    /// The answer remembered for `id`, if its window is still open.
    pub fn get(&mut self, id: &str, now_ms: i64) -> Option<&T> {
        self.forget(now_ms);
        self.by_id.get(id).map(|(_, answer)| answer)
    }

    /// Remembers `answer` for `id` (replacing an earlier one) for `ATTEMPT_WINDOW_MS`.
    pub fn insert(&mut self, id: String, answer: T, now_ms: i64) {
        self.forget(now_ms);
        while self.by_id.len() >= ATTEMPTS_MAX && !self.by_id.contains_key(&id) {
            let Some((_, oldest)) = self.order.pop_front() else {
                break;
            };
            self.by_id.remove(&oldest);
        }
        let until = now_ms.saturating_add(ATTEMPT_WINDOW_MS);
        self.by_id.insert(id.clone(), (until, answer));
        self.order.push_back((until, id));
    }

    fn forget(&mut self, now_ms: i64) {
        while let Some((until, _)) = self.order.front() {
            if *until > now_ms {
                break;
            }
            if let Some((until, id)) = self.order.pop_front() {
                // Unless it was remembered again since (a later entry holds it).
                if self.by_id.get(&id).is_some_and(|(u, _)| *u == until) {
                    self.by_id.remove(&id);
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
        a.insert("x".to_string(), 1, 0);
        assert_eq!(a.get("x", ATTEMPT_WINDOW_MS - 1), Some(&1));
        assert_eq!(a.get("y", 0), None);
        assert_eq!(a.get("x", ATTEMPT_WINDOW_MS), None, "its window ended");
        assert!(a.is_empty());
        // Remembered again: the new window counts, not the old one.
        a.insert("x".to_string(), 2, 10);
        a.insert("x".to_string(), 3, 20);
        assert_eq!(a.get("x", ATTEMPT_WINDOW_MS + 15), Some(&3));
    }

    #[test]
    fn at_most_attempts_max_ids_are_kept_the_oldest_going_first() {
        let mut a = Attempts::default();
        for i in 0..ATTEMPTS_MAX + 10 {
            a.insert(format!("id{i}"), i, 0);
            assert!(a.len() <= ATTEMPTS_MAX);
        }
        assert_eq!(a.get("id0", 1), None, "the oldest went");
        let last = format!("id{}", ATTEMPTS_MAX + 9);
        assert_eq!(a.get(&last, 1), Some(&(ATTEMPTS_MAX + 9)));
    }
}
