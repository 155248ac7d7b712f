//! Our thin layer over glommio: executor start, stall detection, blocking work off
//! the shard, socket adoption.
//!
//! glommio is barely maintained, so the rest of the broker reaches it through here
//! (and `peregrine_shards::log::file` for DMA files): a fix, a fork or a move to raw
//! io-uring then stays local.
//!
//! Stall detection is on for every shard: a task queue that keeps the core for more
//! than `--stall-warn-ms` (default `STALL_WARN_MS_DEFAULT`) past its preemption period
//! (a task that does not yield, or a blocking call) is logged at WARN with the task
//! queue's name and a backtrace of the stalling task, and counted (`stalls_detected`). glommio arms a timer when a task
//! queue starts running; when it fires, SIGUSR1 makes the shard's thread record its
//! own stack, reported once the queue gives the core back. The broker uses SIGUSR1 for
//! nothing else.

use glommio::{LocalExecutorBuilder, Placement, StallDetection, StallDetectionHandler};
use std::future::Future;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use glommio::net::{TcpListener, TcpStream};
pub use glommio::timer::sleep;
pub use glommio::{spawn_local, Task};

/// io_uring registered buffer memory per shard.
const IO_MEMORY_BYTES: usize = 16 << 20;

pub type ShardHandle = glommio::ExecutorJoinHandle<()>;
pub use glommio::TaskQueueHandle;

/// How soon request work must get the core back when background work runs (glommio
/// preempts between task queues at this deadline, and only between tasks: a task that
/// never waits must call `yield_if_needed`).
const REQUEST_LATENCY: Duration = Duration::from_micros(500);

/// A shard's task queues: requests (connections, forwarded calls) are latency-class and
/// get most of the core; background work (log flushers, retention, group ticks) gets
/// the rest, so a flush never holds a fetch back longer than `REQUEST_LATENCY`.
#[derive(Clone, Copy, Debug)]
pub struct Queues {
    pub requests: TaskQueueHandle,
    pub background: TaskQueueHandle,
}

/// Creates the queues on the current shard (call once, inside its executor).
pub fn create_queues() -> Queues {
    use glommio::{Latency, Shares};
    let ex = glommio::executor();
    Queues {
        requests: ex.create_task_queue(
            Shares::Static(1000),
            Latency::Matters(REQUEST_LATENCY),
            "requests",
        ),
        background: ex.create_task_queue(Shares::Static(250), Latency::NotImportant, "background"),
    }
}

/// Gives the core to the shard's other tasks once this task queue has had its turn
/// (`REQUEST_LATENCY` while requests are queued); otherwise a look at one counter.
///
/// glommio switches tasks only when one returns `Pending`, and a connection's loop often
/// never does: a socket read finds bytes already in the kernel, an engine call on a queue
/// or partition of its own shard completes at once, a write finds room. A client that
/// pipelines cheap requests keeps its loop in that state, and every other connection on
/// the shard waits until it stops (300,000 pipelined AMQP `basic.qos` held a debug
/// build's shard for 2.7 s: `tests/fairness.rs`). So every loop that serves a peer calls
/// this once per request or answer: frame loops, answer writers, consumers.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await
}

/// Spawns `future` into `queue` on the current shard.
pub fn spawn_into<T: 'static>(
    future: impl Future<Output = T> + 'static,
    queue: TaskQueueHandle,
) -> std::io::Result<glommio::Task<T>> {
    glommio::spawn_local_into(future, queue).map_err(|e| std::io::Error::other(e.to_string()))
}

/// How long past its preemption period (`REQUEST_LATENCY` while requests are queued) a
/// task queue may keep the core before it is logged as a stall (`--stall-warn-ms`).
/// Glommio's default; on a shared or virtual machine shorter stalls are mostly the
/// hypervisor's or another process's, not ours.
pub const STALL_WARN_MS_DEFAULT: u64 = 10;

/// Stalls logged by every shard since the process started.
static STALLS: AtomicU64 = AtomicU64::new(0);

/// Stalls detected on every shard since the process started (for tests and metrics).
pub fn stalls_detected() -> u64 {
    STALLS.load(Ordering::Relaxed)
}

/// Logs and counts stalls; glommio calls it on the stalled shard's own thread once the
/// task queue gives the core back.
#[derive(Debug)]
struct StallLogger {
    shard: usize,
    threshold: Duration,
}

impl StallDetectionHandler for StallLogger {
    fn threshold(&self, _queue: TaskQueueHandle, _preempt_after: Duration) -> Option<Duration> {
        Some(self.threshold)
    }

    fn stall(&self, detection: StallDetection<'_>) {
        STALLS.fetch_add(1, Ordering::Relaxed);
        // The detection names the task queue, the overage and the stalling stack.
        tracing::warn!(
            shard = self.shard,
            "a task held the shard too long: {detection}"
        );
    }
}

/// Starts one executor thread, pinned to `core` when given, logging stalls longer than
/// `stall_warn` (none: no stall detection, and no timer armed per task queue run).
pub fn start_shard<G, F>(
    shard: usize,
    core: Option<usize>,
    spin: Duration,
    stall_warn: Option<Duration>,
    body: G,
) -> std::io::Result<ShardHandle>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let placement = match core {
        Some(c) => Placement::Fixed(c),
        None => Placement::Unbound,
    };
    let stall_logger = stall_warn.map(|threshold| {
        Box::new(StallLogger { shard, threshold }) as Box<dyn StallDetectionHandler>
    });
    let mut builder = LocalExecutorBuilder::new(placement)
        .name(&format!("shard-{shard}"))
        .io_memory(IO_MEMORY_BYTES)
        .detect_stalls(stall_logger);
    if !spin.is_zero() {
        builder = builder.spin_before_park(spin);
    }
    builder
        .spawn(body)
        .map_err(|e| std::io::Error::other(format!("starting shard {shard}: {e}")))
}

/// Runs `work` on the shard's blocking thread (glommio's pool, one thread placed like
/// the shard) and waits for it without holding the core: for file calls io_uring and
/// the DMA files do not offer.
pub async fn blocking<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    glommio::executor().spawn_blocking(work).await
}

/// Waits until `ready()` holds, checking again each time `event` is notified. The
/// listener is taken before the second check, so a notify between the check and the
/// wait is never missed.
pub async fn until(event: &event_listener::Event, ready: impl Fn() -> bool) {
    while !ready() {
        let listener = event.listen();
        if ready() {
            return;
        }
        listener.await;
    }
}

/// Shuts a connected socket down both ways at once, without closing its descriptor
/// (the stream's owner still does that on drop): reads pending on it end, and a write
/// blocked on a peer that does not read fails instead of waiting forever.
pub fn shut_down(tcp: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor belongs to `tcp`, alive for this call; shutdown(2) neither
    // closes nor reuses it.
    let rc = unsafe { libc::shutdown(tcp.as_raw_fd(), libc::SHUT_RDWR) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A second descriptor of `tcp`'s socket (close-on-exec), which another shard can adopt
/// with `adopt_stream` once this shard has dropped `tcp` and reads and writes it no more.
/// glommio keeps no received bytes of a stream (`TcpStream` is unbuffered) and its
/// pending readiness polls take nothing from the socket, so nothing is lost in the move.
pub fn duplicate(tcp: &TcpStream) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the descriptor belongs to `tcp`, open for this call.
    let fd = unsafe { BorrowedFd::borrow_raw(tcp.as_raw_fd()) };
    fd.try_clone_to_owned()
}

/// Adopts a connected socket (from `duplicate` on another shard) into the current
/// shard's reactor.
pub fn adopt_stream(fd: std::os::fd::OwnedFd) -> TcpStream {
    // SAFETY: the fd is a connected TCP socket we own and give up here.
    unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }
}

/// Adopts a bound, listening std socket into the current shard's reactor.
pub fn adopt_listener(listener: std::net::TcpListener) -> TcpListener {
    // SAFETY: the fd comes from a live listener we own and give up here.
    unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` on a shard started the way the broker starts them.
    fn on_shard<F: Future<Output = ()> + 'static>(body: impl FnOnce() -> F + Send + 'static) {
        peregrine_shards::sys::raise_memlock_limit().expect("raise RLIMIT_MEMLOCK");
        let stall_warn = Duration::from_millis(STALL_WARN_MS_DEFAULT);
        start_shard(0, None, Duration::ZERO, Some(stall_warn), body)
            .expect("start shard")
            .join()
            .expect("shard ran");
    }

    /// This process's resident memory, in bytes (`VmRSS` in /proc/self/status).
    fn rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with("VmRSS:"));
        let kib = line.and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
        kib.unwrap_or(0) * 1024
    }

    /// Most a stall report may grow the process: resolving the stalling stack's symbols
    /// would load the binary's debug info (100+ MiB for a test binary).
    const STALL_REPORT_GROWTH_MAX_BYTES: u64 = 32 << 20;

    #[test]
    fn a_task_that_blocks_the_shard_is_logged_as_a_stall() {
        let before = stalls_detected();
        let rss_before = rss_bytes();
        on_shard(|| async {
            let queues = create_queues();
            let blocker = spawn_into(
                async { std::thread::sleep(Duration::from_millis(5 * STALL_WARN_MS_DEFAULT)) },
                queues.requests,
            )
            .expect("spawn");
            blocker.await;
            // The stall is reported when the queue gives the core back.
            glommio::executor().yield_task_queue_now().await;
        });
        assert!(stalls_detected() > before, "no stall was detected");
        let grown = rss_bytes().saturating_sub(rss_before);
        assert!(
            grown < STALL_REPORT_GROWTH_MAX_BYTES,
            "reporting a stall grew the process by {grown} bytes"
        );
    }

    #[test]
    fn blocking_work_runs_off_the_shard() {
        on_shard(|| async {
            let shard_thread = std::thread::current().id();
            let (ran_on, answer) = blocking(|| (std::thread::current().id(), 42)).await;
            assert_eq!(answer, 42);
            assert_ne!(ran_on, shard_thread);
        });
    }
}
