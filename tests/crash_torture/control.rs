//! What the torture driver and its load workers share: where the broker is, and the
//! stop and pause switches. Workers keep running across kills (their clients reconnect
//! to the same Kafka and AMQP ports); the driver pauses them after each restart so that
//! its checks see a quiet broker with nothing of theirs in flight.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a paused worker looks at the switches again.
pub const PAUSE_POLL: Duration = Duration::from_millis(20);

pub struct Control {
    stop: AtomicBool,
    pause: AtomicBool,
    /// Workers now paused (settled, waiting for the driver).
    paused: AtomicUsize,
    /// The shared native address: it changes with every restart (the harness always
    /// binds an ephemeral native port), so workers read it at each reconnect.
    native_addr: Mutex<String>,
    /// Fixed across restarts, so Kafka and AMQP clients reconnect by themselves.
    pub kafka_addr: String,
    pub amqp_addr: String,
    /// Failures a worker saw as they happened (a settled delivery handed out again).
    failures: Mutex<Vec<String>>,
}

impl Control {
    pub fn new(native_addr: String, kafka_addr: String, amqp_addr: String) -> Control {
        Control {
            stop: AtomicBool::new(false),
            pause: AtomicBool::new(false),
            paused: AtomicUsize::new(0),
            native_addr: Mutex::new(native_addr),
            kafka_addr,
            amqp_addr,
            failures: Mutex::new(Vec::new()),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn pause_requested(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }

    pub fn native_addr(&self) -> String {
        lock(&self.native_addr).clone()
    }

    pub fn set_native_addr(&self, addr: String) {
        *lock(&self.native_addr) = addr;
    }

    pub fn fail(&self, what: String) {
        lock(&self.failures).push(what);
    }

    pub fn take_failures(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.failures))
    }

    /// A worker that has settled calls this; it returns when the pause is over or the
    /// run stops.
    pub fn wait_paused(&self) {
        self.paused.fetch_add(1, Ordering::SeqCst);
        while self.pause_requested() && !self.stopping() {
            std::thread::sleep(PAUSE_POLL);
        }
        self.paused.fetch_sub(1, Ordering::SeqCst);
    }

    /// `wait_paused` for a worker on an async runtime (it must keep its runtime free).
    pub async fn wait_paused_async(&self) {
        self.paused.fetch_add(1, Ordering::SeqCst);
        while self.pause_requested() && !self.stopping() {
            tokio::time::sleep(PAUSE_POLL).await;
        }
        self.paused.fetch_sub(1, Ordering::SeqCst);
    }

    /// Asks every worker to settle and pause; true once `workers` of them are paused,
    /// false if they are not within `within`.
    pub fn pause(&self, workers: usize, within: Duration) -> bool {
        self.pause.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + within;
        while self.paused.load(Ordering::SeqCst) < workers {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(PAUSE_POLL);
        }
        true
    }

    pub fn resume(&self) {
        self.pause.store(false, Ordering::SeqCst);
    }
}

/// A poisoned lock only means another worker panicked; its data is still the record.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets stop when dropped, so that workers end even when the driver panics.
pub struct StopOnDrop<'a>(pub &'a Control);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}
