//! Single-threaded wake-ups for the log: no locks, no channels, bounded by the number
//! of live waiting futures.
//!
//! Owned by the partition's shard; nothing here is `Send`.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Wakes one task (the flusher) when there may be work. Notifications coalesce.
#[derive(Default)]
pub(crate) struct Notify {
    pending: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub(crate) fn notify(&self) {
        self.pending.set(true);
        let waker = self.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Resolves once `notify` has been called since the last wait returned.
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.pending.replace(false) {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

struct Waiter {
    id: u64,
    threshold: i64,
    waker: Waker,
}

/// Tasks waiting for a counter (end offset, durable offset) to pass a threshold.
#[derive(Default)]
pub(crate) struct WaitList {
    next_id: Cell<u64>,
    waiters: RefCell<Vec<Waiter>>,
}

/// Removes a waiter's entry when its future completes or is dropped (timeouts).
struct Registration<'a> {
    list: &'a WaitList,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.list.waiters.borrow_mut().retain(|w| w.id != self.id);
    }
}

impl WaitList {
    /// Waits until `ready()` holds; woken by `wake_past(v)` with `v > threshold`.
    pub(crate) async fn wait_until(&self, threshold: i64, ready: impl Fn() -> bool) {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let _registration = Registration { list: self, id };
        poll_fn(|cx| {
            if ready() {
                return Poll::Ready(());
            }
            let mut waiters = self.waiters.borrow_mut();
            match waiters.iter_mut().find(|w| w.id == id) {
                Some(w) => w.waker.clone_from(cx.waker()),
                None => waiters.push(Waiter {
                    id,
                    threshold,
                    waker: cx.waker().clone(),
                }),
            }
            Poll::Pending
        })
        .await
    }

    /// Wakes (and forgets) every waiter whose threshold is below `value`; returns how
    /// many it woke.
    pub(crate) fn wake_past(&self, value: i64) -> usize {
        if self.waiters.borrow().is_empty() {
            return 0;
        }
        let woken: Vec<Waker> = {
            let mut waiters = self.waiters.borrow_mut();
            let mut woken = Vec::new();
            waiters.retain(|w| {
                let due = w.threshold < value;
                if due {
                    woken.push(w.waker.clone());
                }
                !due
            });
            woken
        };
        let count = woken.len();
        woken.into_iter().for_each(Waker::wake);
        count
    }

    /// Wakes every waiter (close, failure); each re-checks its own condition.
    pub(crate) fn wake_all(&self) {
        self.wake_past(i64::MAX);
        let rest: Vec<Waker> = self
            .waiters
            .borrow_mut()
            .drain(..)
            .map(|w| w.waker)
            .collect();
        rest.into_iter().for_each(Waker::wake);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiters.borrow().is_empty()
    }
}
