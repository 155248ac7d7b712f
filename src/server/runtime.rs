//! Our thin layer over glommio: executor start and socket adoption.
//!
//! glommio is barely maintained, so the rest of the broker reaches it through here
//! (and `peregrine_shards::log::file` for DMA files): a fix, a fork or a move to raw
//! io-uring then stays local.

use glommio::{LocalExecutorBuilder, Placement};
use std::future::Future;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

pub use glommio::net::{TcpListener, TcpStream};
pub use glommio::timer::sleep;
pub use glommio::{spawn_local, yield_if_needed};

/// io_uring registered buffer memory per shard.
const IO_MEMORY_BYTES: usize = 16 << 20;

pub type ShardHandle = glommio::ExecutorJoinHandle<()>;
pub use glommio::TaskQueueHandle;

/// How soon request work must get the core back when background work runs (glommio
/// preempts between task queues at this deadline).
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

/// Spawns `future` into `queue` on the current shard.
pub fn spawn_into<T: 'static>(
    future: impl Future<Output = T> + 'static,
    queue: TaskQueueHandle,
) -> std::io::Result<glommio::Task<T>> {
    glommio::spawn_local_into(future, queue).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Starts one executor thread, pinned to `core` when given.
pub fn start_shard<G, F>(
    shard: usize,
    core: Option<usize>,
    spin: Duration,
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
    let mut builder = LocalExecutorBuilder::new(placement)
        .name(&format!("shard-{shard}"))
        .io_memory(IO_MEMORY_BYTES);
    if !spin.is_zero() {
        builder = builder.spin_before_park(spin);
    }
    builder
        .spawn(body)
        .map_err(|e| std::io::Error::other(format!("starting shard {shard}: {e}")))
}

/// Adopts a bound, listening std socket into the current shard's reactor.
pub fn adopt_listener(listener: std::net::TcpListener) -> TcpListener {
    // SAFETY: the fd comes from a live listener we own and give up here.
    unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) }
}
