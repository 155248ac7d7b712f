//! Listening sockets, created on the main thread before the shards start so that an
//! ephemeral port (`:0`) is resolved once and shared by every shard; and the bound on
//! each listener kind's open connections (`--max-connections`), counted across shards.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Refused connections are logged at most once per this, per shard and listener, with
/// how many were refused since: a client that reconnects in a loop cannot fill the log.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);
/// How long a refused connection's farewell may take to write; it is a few bytes into
/// a fresh socket's empty send buffer, so this is only hit by something odd.
const REFUSAL_WRITE_MAX: Duration = Duration::from_millis(100);

/// The open-connection counts of every listener kind, shared by all shards' accept
/// loops. Touched only at accept and close, never per request.
#[derive(Clone)]
pub struct OpenConnections {
    pub native: ListenerCount,
    pub kafka: ListenerCount,
    pub http: ListenerCount,
    pub amqp: ListenerCount,
}

impl OpenConnections {
    pub fn new(max: usize) -> OpenConnections {
        let count = |kind| ListenerCount {
            kind,
            max,
            open: Arc::new(AtomicUsize::new(0)),
        };
        OpenConnections {
            native: count("native"),
            kafka: count("Kafka"),
            http: count("HTTP"),
            amqp: count("AMQP"),
        }
    }
}

/// One listener kind's open connections; shared by every shard (`Send`).
#[derive(Clone)]
pub struct ListenerCount {
    kind: &'static str,
    max: usize,
    open: Arc<AtomicUsize>,
}

impl ListenerCount {
    /// A place for one more connection, or None when `max` are open.
    pub fn take(&self) -> Option<Slot> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        taken.ok().map(|_| Slot(self.open.clone()))
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// One open connection's place in its listener's count, given back on drop.
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Aggregates refusals into one WARN line per `REFUSAL_LOG_EVERY`. Owned by one accept
/// loop on one shard.
#[derive(Default)]
pub struct RefusalLog {
    unlogged: u64,
    last: Option<Instant>,
}

impl RefusalLog {
    pub fn refused(&mut self, kind: &str, max: usize) {
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_EVERY)
        {
            return;
        }
        tracing::warn!(
            refused = self.unlogged,
            "refused {} {kind} connection(s): {max} are open, the most --max-connections allows",
            self.unlogged
        );
        self.unlogged = 0;
        self.last = Some(now);
    }
}

/// Writes `farewell` (if any) to a connection over the bound, then closes it.
pub async fn refuse(stream: crate::runtime::TcpStream, farewell: &[u8]) {
    use futures_lite::AsyncWriteExt;
    let mut stream = stream;
    if !farewell.is_empty() {
        let write = async {
            let _ = stream.write_all(farewell).await;
        };
        futures_lite::future::or(write, crate::runtime::sleep(REFUSAL_WRITE_MAX)).await;
    }
    let _ = stream.shutdown(std::net::Shutdown::Both).await;
}

const BACKLOG: i32 = 1024;
/// How long a fixed port that is still in use is retried at start. A broker killed with
/// -9 leaves its listening sockets open until the kernel has torn down its io_uring
/// instances (pending accepts hold them), which takes a moment after the process is gone.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds `addr`; with SO_REUSEPORT several shards listen on one port and the kernel
/// spreads connections between them.
fn bind_with(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// One listener per shard on the same address; the first resolves a `:0` port.
pub fn bind_shared(addr: SocketAddr, shards: usize) -> std::io::Result<Vec<TcpListener>> {
    if addr.port() != 0 {
        // SO_REUSEPORT would let a second broker silently share the port with a first
        // one; a plain bind fails if anyone holds it.
        let deadline = std::time::Instant::now() + BIND_RETRY;
        loop {
            match bind_with(addr, false) {
                Ok(probe) => break drop(probe),
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && std::time::Instant::now() < deadline =>
                {
                    tracing::warn!(%addr, "address in use; retrying (a killed broker's sockets may still be closing)");
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }
    let first = bind_with(addr, true)?;
    let resolved = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..shards {
        all.push(bind_with(resolved, true)?);
    }
    Ok(all)
}

/// Each shard's own port: `base + shard`, or a free port each when `base` is 0.
pub fn bind_own(host: SocketAddr, base: u16, shards: usize) -> std::io::Result<Vec<TcpListener>> {
    (0..shards)
        .map(|i| {
            let port = if base == 0 {
                0
            } else {
                base.saturating_add(i as u16)
            };
            let mut addr = host;
            addr.set_port(port);
            bind_with(addr, false)
        })
        .collect()
}
