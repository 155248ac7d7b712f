//! Bytes of answers a connection has ready but not yet written. A client that pipelines
//! requests and never reads the answers must not make the broker hold them without
//! bound (five such Kafka connections asking Metadata of a 10,000-partition topic held
//! 170 MiB): the connection's reader waits for room before it reads the next request,
//! so that client feels TCP backpressure. Kafka brokers bound this by reading one
//! request at a time per connection; here requests still run concurrently.

use event_listener::Event;
use std::cell::Cell;

/// Answer bytes one connection may hold unwritten before its reader stops. Answers
/// already running when the reader stops still complete, so a connection may hold this
/// plus what its requests in flight produce.
pub const ANSWER_BYTES_MAX: usize = 8 << 20;

/// Owned by one connection; shared by its reader, its request tasks and its writer on
/// the connection's shard.
pub struct AnswerBudget {
    held: Cell<usize>,
    max: Cell<usize>,
    written: Event,
}

impl AnswerBudget {
    pub fn new(max: usize) -> AnswerBudget {
        AnswerBudget {
            held: Cell::new(0),
            max: Cell::new(max),
            written: Event::new(),
        }
    }

    /// An answer of `bytes` is ready to be written.
    pub fn hold(&self, bytes: usize) {
        self.held.set(self.held.get() + bytes);
    }

    /// An answer of `bytes`, held before, has been written (or dropped).
    pub fn release(&self, bytes: usize) {
        debug_assert!(bytes <= self.held.get(), "released more than was held");
        self.held.set(self.held.get().saturating_sub(bytes));
        if self.held.get() < self.max.get() {
            self.written.notify(usize::MAX);
        }
    }

    /// The writer is gone: nothing will be written any more, so nobody waits for room.
    pub fn close(&self) {
        self.max.set(usize::MAX);
        self.written.notify(usize::MAX);
    }

    /// Whether the writer is gone (`close`): an answer sent now would never be written.
    pub fn is_closed(&self) -> bool {
        self.max.get() == usize::MAX
    }

    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// Resolves once the answers held are under the budget.
    pub async fn room(&self) {
        crate::runtime::until(&self.written, || self.held.get() < self.max.get()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_waits_until_answers_are_written_below_the_budget() {
        let budget = std::rc::Rc::new(AnswerBudget::new(100));
        budget.hold(60);
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(budget.room()))
                .is_some()
        );
        budget.hold(60);
        let mut waiting = Box::pin(budget.room());
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(waiting.as_mut()))
                .is_none()
        );
        budget.release(60);
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(waiting.as_mut()))
                .is_some()
        );
        assert_eq!(budget.held(), 60);
        budget.hold(60);
        let mut waiting = Box::pin(budget.room());
        budget.close();
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(waiting.as_mut()))
                .is_some(),
            "a closed budget never makes the reader wait"
        );
    }
}
