//! Cross-core calls: the full mesh of bounded glommio channels between shards.
//!
//! A call for an object another shard owns travels as one boxed closure (`Job`) to the
//! owner, which runs it on its own core and answers through a oneshot (Redpanda's
//! `invoke_on`). Nothing is shared: the closure owns its arguments (a produce payload
//! moves as a pointer) and the answer moves back. The only other message is a new
//! catalog from the controller. Neither is a wire type: no client can send one.
//!
//! Bounds: each channel holds `MESH_CHANNEL_DEPTH` messages; besides, each shard has at
//! most `ServerConfig::cross_core_in_flight_max` calls of each `CallClass` out at once,
//! and a call past that waits for one to finish (backpressure, not an error), as
//! Redpanda's service groups bound `invoke_on`.

use super::error::EngineError;
use super::shard::Shard;
use futures_channel::oneshot;
use glommio::channels::channel_mesh::{MeshBuilder, Receivers, Senders};
use peregrine_shards::catalog::Catalog;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

/// Messages in flight from one shard to another before the sender waits.
pub const MESH_CHANNEL_DEPTH: usize = 1024;

/// Work for the owning shard (`S`: what a shard is to its calls; the broker's `Shard`,
/// something smaller in the micro-benchmark). Called once on the owner, it spawns the
/// call as a task of that shard, which answers through the channel it captured: one
/// allocation for the closure and one for the task, as a forwarded request had.
pub type Job<S = Shard> = Box<dyn FnOnce(Rc<S>) + Send>;

pub enum ShardMsg<S = Shard> {
    /// A call run on the shard that receives it.
    Invoke(Job<S>),
    /// A new catalog from the controller; acknowledged once applied.
    Catalog {
        catalog: Arc<Catalog>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

pub type Mesh<S = Shard> = MeshBuilder<ShardMsg<S>, glommio::channels::channel_mesh::Full>;

pub fn mesh<S: 'static>(shards: usize) -> Mesh<S> {
    MeshBuilder::full(shards, MESH_CHANNEL_DEPTH)
}

/// What a call is, for its in-flight budget: each class has its own, so that calls of
/// one class never wait behind calls of another that may wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallClass {
    /// A front end's call on behalf of a client, answered without waiting for data.
    Client,
    /// A call that may wait for data (a fetch or receive long poll, a subscription's
    /// pull): it would otherwise hold the budget that the produce or publish it waits
    /// for needs.
    LongPoll,
    /// A call the engine makes for itself (a dead letter moved to its target).
    Internal,
}

/// This shard's sending side of the mesh and its in-flight budgets. Owned by one shard.
pub struct Router<S = Shard> {
    senders: Senders<ShardMsg<S>>,
    client_calls: glommio::sync::Semaphore,
    long_polls: glommio::sync::Semaphore,
    internal_calls: glommio::sync::Semaphore,
}

impl<S: 'static> Router<S> {
    /// Joins the mesh; at most `in_flight_max` calls of each class out at once.
    pub async fn join(
        mesh: Mesh<S>,
        in_flight_max: usize,
    ) -> Result<(Router<S>, Receivers<ShardMsg<S>>), String> {
        let (senders, receivers) = mesh
            .join()
            .await
            .map_err(|e| format!("joining the shard mesh failed: {e:?}"))?;
        let max = in_flight_max.max(1) as u64;
        let router = Router {
            senders,
            client_calls: glommio::sync::Semaphore::new(max),
            long_polls: glommio::sync::Semaphore::new(max),
            internal_calls: glommio::sync::Semaphore::new(max),
        };
        Ok((router, receivers))
    }

    pub fn shard_id(&self) -> u32 {
        self.senders.peer_id() as u32
    }

    /// Runs `job` on `shard` (never this one) and waits for its answer; waits first for
    /// room in the budget of `class`.
    pub async fn invoke<T, F, Fut>(
        &self,
        shard: u32,
        class: CallClass,
        job: F,
    ) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(Rc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        debug_assert_ne!(shard, self.shard_id(), "a local call needs no hop");
        crate::metrics::local::cross_core_call();
        let _permit = self
            .budget(class)
            .acquire_permit(1)
            .await
            .map_err(|_| unavailable(shard))?;
        self.send_job(shard, job).await
    }

    /// Runs `job` on `shard` (never this one) outside every call budget and waits for
    /// its answer: only for work bounded by a limit of its own (a connection moved to
    /// the shard that owns what it uses counts under `--max-connections`, and may run
    /// for as long as the connection lives, which a budget's permit must not).
    pub async fn run_unbudgeted<T, F, Fut>(&self, shard: u32, job: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(Rc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        debug_assert_ne!(shard, self.shard_id(), "a local call needs no hop");
        self.send_job(shard, job).await
    }

    /// Sends `job` to `shard`, where it runs as a task of its own, and waits for its
    /// answer.
    async fn send_job<T, F, Fut>(&self, shard: u32, job: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(Rc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job<S> = Box::new(move |owner| {
            let call = async move {
                let _ = tx.send(job(owner).await);
            };
            crate::runtime::spawn_local(call).detach();
        });
        if self
            .senders
            .send_to(shard as usize, ShardMsg::Invoke(job))
            .await
            .is_err()
        {
            return Err(unavailable(shard));
        }
        rx.await.map_err(|_| unavailable(shard))
    }

    fn budget(&self, class: CallClass) -> &glommio::sync::Semaphore {
        match class {
            CallClass::Client => &self.client_calls,
            CallClass::LongPoll => &self.long_polls,
            CallClass::Internal => &self.internal_calls,
        }
    }

    /// Room left in the budget of `class` (for stats).
    pub fn available(&self, class: CallClass) -> u64 {
        self.budget(class).available()
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

fn unavailable(shard: u32) -> EngineError {
    EngineError::ShuttingDown(format!(
        "shard {shard} is not reachable (broker shutting down?)"
    ))
}
