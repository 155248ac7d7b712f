//! Moving an HTTP connection to the shard that owns the queue it uses, so that its SQS
//! requests stop crossing cores: every shard accepts HTTP connections (SO_REUSEPORT), but
//! each queue has one owner, and a request that lands elsewhere hops there and back
//! (`engine::mesh`): two wake-ups and a second task per request, about a third of the
//! broker's CPU per SQS message on two shards (benches/RESULTS.md, "SQS API").
//!
//! When: after a request that named a queue another shard owns, with its answer written
//! (nothing is pending), on a plaintext connection (a TLS session stays where its
//! handshake ran), once per connection: a connection that uses queues on several shards
//! moves to the first remote one and stays, never ping-pongs. Bytes the client sent
//! beyond that request (pipelined requests, or the start of one) move with it.
//!
//! How: the connection's socket is duplicated, this shard's descriptor closed
//! (`Stream::detach`), and the descriptor travels to the owner as a cross-core call
//! outside the call budgets (`Engine::run_on`), where the owner serves the connection
//! for the rest of its life (`Stream::adopt`). Its accepting shard keeps what it
//! accounted the connection under: its place under `--max-connections` and in the
//! accept loop's gate (so shutdown still waits for it) are held by the accepting task,
//! which waits for the owner to end the connection. The per-shard counts follow the
//! connection: `CONNECTIONS_MAX` and the `connections` gauge count it on the owner
//! while it is there. An owner already at `CONNECTIONS_MAX` hands it back, and the
//! accepting shard serves it on (with the hop per request).

use super::{has_room, Connection};
use crate::engine::Engine;
use crate::metrics::{local, Protocol};
use crate::server::stream::{Detached, Stream};
use std::future::Future;
use std::pin::Pin;

/// Where a connection offered to another shard ended up.
pub(super) enum Moved {
    /// The other shard served it, and it has ended (or it was lost: the broker stops).
    Away,
    /// It stays here: the owner had no room, or the socket could not be detached.
    Back(Stream, Vec<u8>),
}

/// Offers `stream` (with `buf`, the bytes read from it that no answer used yet) to shard
/// `owner`, and waits while it serves it.
pub(super) async fn move_to(engine: &Engine, owner: u32, stream: Stream, buf: Vec<u8>) -> Moved {
    let peer = stream.peer();
    let detached = match stream.detach() {
        Ok(detached) => detached,
        Err((stream, e)) => {
            tracing::debug!(%peer, "HTTP connection stays on its shard: {e}");
            return Moved::Back(stream, buf);
        }
    };
    let _counted_there = local::connection_moved_out(Protocol::Http);
    let served = engine
        .run_on(owner, move |engine| serve_moved(engine, detached, buf))
        .await;
    match served {
        Ok(None) => Moved::Away,
        Ok(Some((detached, buf))) => Moved::Back(Stream::adopt(detached), buf),
        Err(e) => {
            // The owner is gone (the broker stops): the connection closed with the call.
            tracing::debug!(%peer, "moving an HTTP connection to shard {owner}: {e}");
            Moved::Away
        }
    }
}

/// What a connection's owner runs: serves it until it ends, or hands it back at once
/// when this shard has `CONNECTIONS_MAX` HTTP connections open.
async fn serve_moved(
    engine: Engine,
    detached: Detached,
    buf: Vec<u8>,
) -> Option<(Detached, Vec<u8>)> {
    if !has_room() {
        return Some((detached, buf));
    }
    let stream = Stream::adopt(detached);
    let conn = Connection::new(engine, &stream, true)?;
    // Boxed: `Connection::serve` itself may call `move_to`, whose future holds this one.
    let serve: Pin<Box<dyn Future<Output = ()>>> = Box::pin(conn.serve(stream, buf));
    local::connection(Protocol::Http, serve).await;
    None
}
