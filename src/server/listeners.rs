//! Listening sockets, created on the main thread before the shards start so that an
//! ephemeral port (`:0`) is resolved once and shared by every shard.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, TcpListener};

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
