//! A push subscription as an engine object: it pulls from its queue's owner, never more
//! than its prefetch leased at once, and when it is dropped every lease it holds returns
//! to the queue. The native protocol's `Subscribe` uses it; AMQP `basic.consume` and
//! SQS long polls will too.
//!
//! Lives on the shard of the connection that made it; its pulls run on the queue's
//! owner, each to its end even if the subscription goes meanwhile (the owner's
//! bookkeeping then forgets it, see `queues::subscription_pull`).

use super::error::EngineError;
use super::mesh::CallClass;
use super::placement::Object;
use super::queues::{self, SubscriptionPull};
use super::shard::Shard;
use super::types::Received;
use super::Engine;
use crate::runtime;
use futures_channel::oneshot;
use std::cell::Cell;
use std::rc::Rc;

/// How long one pull of a subscription waits before it asks again.
pub const SUBSCRIPTION_PULL_WAIT_MS: u32 = 20_000;

/// Owned by one connection (or whatever holds it) on one shard.
pub struct Subscription {
    engine: Engine,
    queue: String,
    holder: u64,
    prefetch: u32,
    auto_ack: bool,
    /// Pulls sent so far (each is numbered; see `queues::subscription_close`).
    pulls: Cell<u64>,
}

/// A unique subscription id: the shard's index above a per-shard counter.
fn next_holder(shard: u32) -> u64 {
    thread_local! {
        static NEXT: Cell<u64> = const { Cell::new(1) };
    }
    let n = NEXT.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    (u64::from(shard) << 40) | n
}

impl Subscription {
    pub(super) fn new(engine: Engine, queue: &str, prefetch: u32, auto_ack: bool) -> Subscription {
        Subscription {
            holder: next_holder(engine.shard_id()),
            engine,
            queue: queue.to_string(),
            prefetch: prefetch.max(1),
            auto_ack,
            pulls: Cell::new(0),
        }
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The next non-empty batch of messages; an error ends the subscription (the queue
    /// was deleted, the broker is shutting down).
    pub async fn next(&self) -> Result<Received, EngineError> {
        loop {
            let got = self.pull().await?;
            if !got.messages.is_empty() {
                return Ok(got);
            }
        }
    }

    async fn pull(&self) -> Result<Received, EngineError> {
        let owner = self.engine.owner(Object::Queue(&self.queue))?;
        self.pulls.set(self.pulls.get() + 1);
        let pull = SubscriptionPull {
            holder: self.holder,
            seq: self.pulls.get(),
            prefetch: self.prefetch,
            wait_ms: SUBSCRIPTION_PULL_WAIT_MS,
            auto_ack: self.auto_ack,
        };
        let queue = self.queue.clone();
        let job =
            move |s: Rc<Shard>| async move { queues::subscription_pull(&s, &queue, pull).await };
        let shard = self.engine.shard();
        let got = if owner == shard.id {
            // Spawned, as a call from another shard is, so that it runs to its end.
            let (tx, rx) = oneshot::channel();
            let shard = shard.clone();
            runtime::spawn_local(async move {
                let _ = tx.send(job(shard).await);
            })
            .detach();
            rx.await.map_err(|_| {
                EngineError::ShuttingDown("the subscription's pull was dropped".into())
            })?
        } else {
            shard.router.invoke(owner, CallClass::LongPoll, job).await?
        };
        got
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Ok(owner) = self.engine.owner(Object::Queue(&self.queue)) else {
            return;
        };
        let (queue, holder) = (std::mem::take(&mut self.queue), self.holder);
        let last_pull = self.pulls.get();
        let engine = self.engine.clone();
        let close = async move {
            let job = move |s: Rc<Shard>| async move {
                queues::subscription_close(&s, &queue, holder, last_pull);
                Ok(())
            };
            if let Err(e) = engine.on_owner(owner, CallClass::Internal, job).await {
                tracing::debug!(holder, "returning a subscription's leases: {e}");
            }
        };
        runtime::spawn_local(close).detach();
    }
}
