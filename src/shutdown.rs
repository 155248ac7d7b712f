//! Clean shutdown: the signal thread raises one process-wide flag; each shard turns it
//! into a local event that accept loops, connections and long polls wait on.

use event_listener::Event;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a shard looks at the process-wide flag.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Shared by the signal thread and every shard.
#[derive(Default)]
pub struct ProcessShutdown {
    requested: AtomicBool,
    /// Shards that have drained their connections; storage closes once all have.
    drained: AtomicUsize,
}

impl ProcessShutdown {
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// One shard's view of shutdown. Owned by its shard.
pub struct ShardShutdown {
    process: Arc<ProcessShutdown>,
    triggered: Cell<bool>,
    event: Event,
}

impl ShardShutdown {
    pub fn new(process: Arc<ProcessShutdown>) -> ShardShutdown {
        ShardShutdown {
            process,
            triggered: Cell::new(false),
            event: Event::new(),
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.triggered.get()
    }

    /// Resolves once shutdown has begun on this shard.
    pub async fn wait(&self) {
        crate::runtime::until(&self.event, || self.triggered.get()).await;
    }

    /// Watches the process-wide flag; returns once shutdown was triggered here.
    pub async fn watch(&self) {
        while !self.process.is_requested() {
            glommio::timer::sleep(POLL_INTERVAL).await;
        }
        self.triggered.set(true);
        self.event.notify(usize::MAX);
    }

    /// Marks this shard drained and waits until every shard is, so that no shard closes
    /// its partitions while another may still forward a request to it.
    pub async fn drained_and_wait_all(&self, shards: usize) {
        self.process.drained.fetch_add(1, Ordering::SeqCst);
        while self.process.drained.load(Ordering::SeqCst) < shards {
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    }
}
