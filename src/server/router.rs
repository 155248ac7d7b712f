//! Cross-shard routing: the full mesh of bounded glommio channels between shards.
//!
//! A request for a partition or group owned by another shard travels as one
//! `ShardMsg` to the owner, which executes it on its own core and answers through a
//! oneshot. Nothing is shared: the request and its payload move between cores.

use crate::native::messages::{ErrorCode, Request, Response};
use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use glommio::channels::channel_mesh::{MeshBuilder, Receivers, Senders};
use peregrine_shards::catalog::Catalog;
use std::sync::Arc;

/// Messages in flight from one shard to another before the sender waits.
pub const MESH_CHANNEL_DEPTH: usize = 1024;

/// A response and its raw payload (record batches for Fetch).
pub type Reply = (Response, Vec<Bytes>);

pub enum ShardMsg {
    /// A client request forwarded to its owner.
    Request {
        /// Boxed: requests vary a lot in size, the mesh carries many.
        request: Box<Request>,
        payload: BytesMut,
        reply: oneshot::Sender<Option<Reply>>,
    },
    /// A new topic catalog from the controller; acknowledged once applied.
    Catalog {
        catalog: Arc<Catalog>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

pub type Mesh = MeshBuilder<ShardMsg, glommio::channels::channel_mesh::Full>;

pub fn mesh(shards: usize) -> Mesh {
    MeshBuilder::full(shards, MESH_CHANNEL_DEPTH)
}

/// This shard's sending side of the mesh. Owned by one shard.
pub struct Router {
    senders: Senders<ShardMsg>,
}

impl Router {
    pub async fn join(mesh: Mesh) -> Result<(Router, Receivers<ShardMsg>), String> {
        let (senders, receivers) = mesh
            .join()
            .await
            .map_err(|e| format!("joining the shard mesh failed: {e:?}"))?;
        Ok((Router { senders }, receivers))
    }

    pub fn shard_id(&self) -> u32 {
        self.senders.peer_id() as u32
    }

    /// Executes `request` on `shard` (never this one) and waits for its answer.
    pub async fn call(&self, shard: u32, request: Request, payload: BytesMut) -> Option<Reply> {
        crate::metrics::local::cross_core_call();
        let (tx, rx) = oneshot::channel();
        let msg = ShardMsg::Request {
            request: Box::new(request),
            payload,
            reply: tx,
        };
        if self.senders.send_to(shard as usize, msg).await.is_err() {
            return Some(unavailable(shard));
        }
        rx.await.unwrap_or_else(|_| Some(unavailable(shard)))
    }

    /// Sends a catalog to `shard` and waits until it has been applied there.
    pub async fn send_catalog(&self, shard: u32, catalog: Arc<Catalog>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let msg = ShardMsg::Catalog { catalog, done: tx };
        if self.senders.send_to(shard as usize, msg).await.is_err() {
            return Err(format!("shard {shard} is not reachable"));
        }
        rx.await
            .map_err(|_| format!("shard {shard} dropped the catalog update"))?
    }
}

fn unavailable(shard: u32) -> Reply {
    (
        Response::error(
            ErrorCode::ShuttingDown,
            format!("shard {shard} is not reachable (broker shutting down?)"),
        ),
        Vec::new(),
    )
}
