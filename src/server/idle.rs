//! The idle-connection bound (`--connections-max-idle-ms`, Kafka's broker setting
//! `connections.max.idle.ms`): a connection that has read and written nothing for that
//! long, with nothing in progress on its behalf, is closed, so that a client that went
//! quiet (or vanished without a FIN) stops holding its buffers and its place under
//! `--max-connections`.
//!
//! "In progress" is what the front end says is busy: a request being served (a long
//! Fetch or pull Receive waits as one), a push subscription waiting for messages. Those
//! are never cut off, however long they wait; the clock starts again when they end.
//!
//! The watch runs as a task of its own beside the connection's reader and writer, so it
//! also ends a connection whose reader is stuck behind answers the peer never reads: it
//! shuts the socket down, and reader and writer unwind from there.
//!
//! One `Idle` per connection, on its shard: its reader and writer tasks touch it (same
//! thread, `Cell`), its watch task reads it.

use super::stream::Stream;
use crate::runtime;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Shuts `stream` down once `idle` has expired while `busy` said nothing was in
/// progress; `protocol` names the connection in the log. Runs until then or until its
/// task is dropped with the connection.
pub async fn close_when_idle(
    idle: Rc<Idle>,
    busy: impl Fn() -> bool,
    stream: Stream,
    protocol: &'static str,
) {
    let max = idle.expired(busy).await;
    tracing::info!(peer = %stream.peer(), "closing {protocol} connection idle for {max:?} (--connections-max-idle-ms)");
    stream.shut_down();
}

/// A connection's last activity and how long it may stay idle.
pub struct Idle {
    last: Cell<Instant>,
    /// None: never closed for being idle (`--connections-max-idle-ms 0`).
    max: Option<Duration>,
}

impl Idle {
    /// `max_ms` of 0 turns the bound off.
    pub fn new(max_ms: u64) -> Idle {
        Idle {
            last: Cell::new(Instant::now()),
            max: (max_ms > 0).then(|| Duration::from_millis(max_ms)),
        }
    }

    /// Something moved on the connection (bytes read, an answer written).
    pub fn touch(&self) {
        self.last.set(Instant::now());
    }

    /// Returns once the connection has been idle for the bound while `busy` says nothing
    /// is in progress; never, without a bound. Checked once per deadline, not per
    /// request: the hot path only stores an `Instant`.
    pub async fn expired(&self, busy: impl Fn() -> bool) -> Duration {
        let Some(max) = self.max else {
            return std::future::pending().await;
        };
        loop {
            let due = self.last.get() + max;
            let now = Instant::now();
            if now < due {
                runtime::sleep(due - now).await;
                continue;
            }
            if busy() {
                // Work in progress counts as activity: the full bound runs again.
                self.touch();
                continue;
            }
            return max;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Idle;

    #[test]
    fn zero_means_no_bound() {
        assert!(Idle::new(0).max.is_none());
        assert_eq!(
            Idle::new(1500).max,
            Some(std::time::Duration::from_millis(1500))
        );
    }
}
