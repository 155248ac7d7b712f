//! Message queues on the shard that owns each one: the delivery state machine
//! (`peregrine_shards::queues::Queue`) beside its journal (`QueueStore`), the queue
//! calls as the owner runs them (publish, receive with long polling, settle, stats,
//! purge, and the pulls and close of push subscriptions), the timer that applies
//! visibility timeouts, delays and TTLs, and dead-letter moves. The owner also ends a
//! queue's life when its declaration says so: an auto-delete queue once its last
//! subscription goes, an expiring one (`expires_ms`) after that long unused; either
//! asks the controller to delete it (`admin::delete_queue_if`, if unused, this
//! incarnation only). A deleted queue's waiting receives and subscriptions fail.
//!
//! Durability: a publish is journaled before it is answered (and on disk first when the
//! publisher asks for `durable`); an ack or an auto-ack settle is on disk before it is
//! answered, so an acknowledged delivery never comes back; delivery counts are journaled
//! without waiting. A dead letter is moved with an intent record first (on disk), then
//! a publish to the target carrying `queue/id` as its origin, then the settle: after a
//! crash, or when one of an exchange's targets refused it, the move is done again and
//! each target keeps the copy it already has (a queue knows its origins; a topic
//! partition is searched for its `x-origin` header from the time the move began).

use super::error::EngineError;
use super::mesh::CallClass;
use super::shard::Shard;
use super::types::{
    Deliveries, DeliveryExtras, LeaseRef, PublishEntry, PublishSpec, QueueStats, ReceiveArgs,
    Received, Settle,
};
use bytes::{Bytes, BytesMut};
use event_listener::Event as Notify;
use peregrine_shards::catalog::QueueMeta;
use peregrine_shards::log::LogConfig;
use peregrine_shards::queues::QueueConfig;
use peregrine_shards::queues::{
    Attempts, DeadLetter, Event, Holder, Publish, PublishOptions, Queue, QueueStore,
    RECEIVE_WAIT_MAX_MS, VISIBILITY_TIMEOUT_MS_MAX,
};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Most messages one receive hands out.
const RECEIVE_MAX: u32 = 10_000;
/// Deliveries a receive reserves room for up front (more grow the columns). Small: a
/// large reservation per pull (it was 1,024 deliveries and 256 KiB of bodies) made glibc
/// consolidate its free lists on every pull (issue 17's AMQP profile).
const BATCH_RESERVE: usize = 64;
/// Segment size of queue journals: small, so settled ones are reclaimed early.
const JOURNAL_SEGMENT_BYTES: u64 = 64 << 20;

pub struct OpenQueue {
    /// The catalog id this was opened for.
    pub id: u64,
    name: String,
    queue: RefCell<Queue>,
    store: QueueStore,
    /// Notified when messages may have become ready.
    ready: Notify,
    /// Pull receives waiting for a message now.
    waiting: Cell<u64>,
    /// Earliest time a waiting receive must look again (its deadline, or a lease,
    /// delay or TTL falling due): the shard's queue timer wakes them then, so a wait
    /// costs no timer of its own (timers are io_uring operations, set and cancelled).
    wake_at: Cell<i64>,
    /// Push subscriptions attached, by holder id.
    subscribers: RefCell<HashMap<u64, Attached>>,
    dead_lettered: Cell<u64>,
    /// Dead letters whose move to the target has not finished.
    pending_moves: RefCell<Vec<DeadLetter>>,
    /// Gone from the catalog: receives and subscriptions waiting on it fail.
    deleted: Cell<bool>,
    /// When it was last used (opened, received from, subscribed to, redeclared), for
    /// `expires_ms`.
    last_used_ms: Cell<i64>,
    /// It has had a subscription (an auto-delete queue goes only after one).
    had_subscription: Cell<bool>,
    /// Its deletion was asked of the controller and has not answered yet.
    deleting: Cell<bool>,
    /// Recent receives by attempt id (`receive_attempt`).
    attempts: RefCell<Attempts<Received>>,
    /// Message move tasks from this queue (`moves`), journaled.
    moves: RefCell<super::moves::MoveTasks>,
    /// Running move tasks replayed from the journal wait for the queue timer to resume
    /// them (`moves::resume`: it needs the shard, which `open` does not have).
    moves_to_resume: Cell<bool>,
    /// When messages received with `first_receive` were first received.
    first_received: RefCell<FirstReceived>,
}

/// A side map, message id → first receive time, for the messages received with
/// `ReceiveArgs::first_receive` (SQS's): kept beside the queue rather than in each
/// entry, which stays small for every other protocol. Settled messages are swept out
/// whenever the map has doubled since the last sweep, so it holds at most twice the
/// unsettled messages received so (plus `FIRST_RECEIVED_SLACK`). Journaled at no cost
/// of its own: such a receive journals its hand-out as `Event::DeliveredTimed` (instead
/// of `Delivered`) stamped with the same time, and replay rebuilds the map from the
/// first such record of each unsettled message.
#[derive(Debug, Default)]
struct FirstReceived {
    at_ms: rustc_hash::FxHashMap<u64, i64>,
    /// Its size after the last sweep.
    swept: usize,
}

/// Entries the map may grow by before its first sweep.
const FIRST_RECEIVED_SLACK: usize = 1024;

impl FirstReceived {
    /// The times a journal held (`Recovered::first_received`).
    fn restore(at_ms: impl IntoIterator<Item = (u64, i64)>) -> FirstReceived {
        let at_ms: rustc_hash::FxHashMap<u64, i64> = at_ms.into_iter().collect();
        FirstReceived {
            swept: at_ms.len(),
            at_ms,
        }
    }

    /// When message `id` was first received, `now_ms` if this is the first time.
    fn first(&mut self, id: u64, now_ms: i64) -> i64 {
        *self.at_ms.entry(id).or_insert(now_ms)
    }

    /// Forgets the messages `live` says are settled, if the map has grown enough.
    fn sweep(&mut self, live: impl Fn(u64) -> bool) {
        if self.at_ms.len() <= 2 * self.swept + FIRST_RECEIVED_SLACK {
            return;
        }
        self.at_ms.retain(|id, _| live(*id));
        self.swept = self.at_ms.len();
    }
}

impl OpenQueue {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn moves(&self) -> &RefCell<super::moves::MoveTasks> {
        &self.moves
    }

    /// Journals this queue's move tasks as they stand now, on disk before it returns
    /// when `durable`.
    pub(super) async fn journal_moves(&self, durable: bool) -> Result<(), EngineError> {
        let (next_id, tasks) = self.moves.borrow().to_record();
        let event = Event::MoveTasks { next_id, tasks };
        self.store
            .record(&event, durable, crate::time::now_ms())
            .await
            .map_err(EngineError::from)
    }
}

/// How a queue is used now, as a delete with if-unused or if-empty needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub subscriptions: u64,
    /// Ready or delayed.
    pub waiting: u64,
    pub in_flight: u64,
}

/// A push subscription as its queue sees it.
#[derive(Debug, Default, Clone, Copy)]
struct Attached {
    /// One of its pulls is running (a subscription has at most one at a time).
    pulling: bool,
    /// The number of its last pull that arrived here.
    pulled: u64,
    /// The subscription ended while a pull of it was running or on its way: that pull
    /// leases nothing (it would only go back, one delivery later) and forgets it.
    closed: bool,
}

fn io_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

/// Opens a queue's journal and rebuilds its state.
pub async fn open(
    meta: &QueueMeta,
    data_dir: &std::path::Path,
    fsync: peregrine_shards::log::FsyncPolicy,
) -> Result<Rc<OpenQueue>, String> {
    let config = LogConfig {
        segment_bytes: JOURNAL_SEGMENT_BYTES,
        fsync,
        ..LogConfig::default()
    };
    let (store, rec) = QueueStore::open(meta.dir(data_dir), config)
        .await
        .map_err(|e| format!("opening queue {}: {e}", meta.name))?;
    let now = crate::time::now_ms();
    let mut queue = Queue::restore(
        &meta.name,
        meta.config.clone(),
        rec.messages,
        rec.dedup,
        rec.next_id,
        now,
    );
    for (origin, at_ms) in rec.origins {
        queue.remember_origin(origin, at_ms, now);
    }
    // Moves begun before a crash are finished by the timer.
    let pending = rec
        .dead_lettering
        .into_iter()
        .filter_map(|(id, reason, began_ms)| queue.take_dead(id, reason, began_ms))
        .collect();
    let moves_to_resume = !rec.move_tasks.running_ids().is_empty();
    Ok(Rc::new(OpenQueue {
        id: meta.id,
        name: meta.name.clone(),
        queue: RefCell::new(queue),
        store,
        ready: Notify::new(),
        waiting: Cell::new(0),
        wake_at: Cell::new(i64::MAX),
        subscribers: RefCell::new(HashMap::new()),
        dead_lettered: Cell::new(0),
        pending_moves: RefCell::new(pending),
        deleted: Cell::new(false),
        last_used_ms: Cell::new(now),
        had_subscription: Cell::new(false),
        deleting: Cell::new(false),
        attempts: RefCell::new(Attempts::default()),
        moves: RefCell::new(rec.move_tasks),
        moves_to_resume: Cell::new(moves_to_resume),
        first_received: RefCell::new(FirstReceived::restore(rec.first_received)),
    }))
}

impl OpenQueue {
    /// Depths now and dead letters moved, for /metrics.
    pub fn gauges(&self) -> (peregrine_shards::queues::Stats, u64) {
        (self.queue.borrow().stats(), self.dead_lettered.get())
    }

    fn is_closed(&self, holder: u64) -> bool {
        self.subscribers
            .borrow()
            .get(&holder)
            .is_some_and(|a| a.closed)
    }

    pub async fn close(&self) {
        if let Err(e) = self.store.close().await {
            tracing::error!(queue = %self.name, "closing queue journal: {e}");
        }
    }

    /// Subscriptions attached and not closed.
    fn live_subscriptions(&self) -> usize {
        self.subscribers
            .borrow()
            .values()
            .filter(|a| !a.closed)
            .count()
    }

    /// Whether the catalog's `config` differs from what this queue runs with.
    pub fn config_differs(&self, config: &QueueConfig) -> bool {
        self.queue.borrow().config() != config
    }

    /// Takes a changed declaration from the catalog (same queue id). Waiting receives
    /// look again: a shorter delay or lease may have made messages ready sooner.
    pub fn reconfigure(&self, config: &QueueConfig) {
        self.queue.borrow_mut().reconfigure(config.clone());
        self.ready.notify(usize::MAX);
    }

    /// Removes the journal of a queue gone from the catalog; what waits on it fails.
    pub async fn delete(&self) {
        self.deleted.set(true);
        self.ready.notify(usize::MAX);
        if let Err(e) = self.store.log().delete().await {
            tracing::warn!(queue = %self.name, "deleting queue journal: {e}");
        }
    }
}

/// A subscription's pull: up to `prefetch` minus what `holder` holds, waiting up to
/// `wait_ms`. Runs to its end even when its caller goes (the engine spawns it), so
/// that the bookkeeping below always completes.
pub async fn subscription_pull(
    shard: &Rc<Shard>,
    name: &str,
    pull: SubscriptionPull,
) -> Result<Received, EngineError> {
    let q = shard.queue(name)?;
    let holder = pull.holder;
    {
        let mut subscribers = q.subscribers.borrow_mut();
        let attached = subscribers.entry(holder).or_default();
        if attached.closed {
            subscribers.remove(&holder);
            return Err(EngineError::SubscriptionClosed);
        }
        debug_assert!(!attached.pulling, "one pull at a time per subscription");
        debug_assert!(pull.seq > attached.pulled, "pulls arrive in order");
        attached.pulling = true;
        attached.pulled = pull.seq;
    }
    q.had_subscription.set(true);
    let holder_of = Holder::Subscription(holder);
    let args = ReceiveArgs {
        max: pull.prefetch,
        wait_ms: pull.wait_ms,
        auto_ack: pull.auto_ack,
        visibility_ms: None,
        first_receive: false,
    };
    let got = receive_on(shard, &q, holder_of, args).await;
    let closed = {
        let mut subscribers = q.subscribers.borrow_mut();
        match subscribers.get_mut(&holder) {
            Some(a) if a.closed => {
                subscribers.remove(&holder);
                true
            }
            Some(a) => {
                a.pulling = false;
                false
            }
            None => true,
        }
    };
    if closed {
        release(shard, &q, holder);
        return Err(EngineError::SubscriptionClosed);
    }
    got
}

/// What a subscription's pull asks for.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionPull {
    pub holder: u64,
    /// Numbers the subscription's pulls from 1, so that its close knows whether one is
    /// still on its way here.
    pub seq: u64,
    pub prefetch: u32,
    pub wait_ms: u32,
    pub auto_ack: bool,
}

/// A subscription ended: its leases return to the queue now. `last_pull`: the number
/// of the last pull it sent (0: none); one that has not arrived yet, or still runs,
/// finds it closed and forgets it, so that no entry outlives both.
pub fn subscription_close(shard: &Rc<Shard>, name: &str, holder: u64, last_pull: u64) {
    let Ok(q) = shard.queue(name) else {
        return;
    };
    {
        let mut subscribers = q.subscribers.borrow_mut();
        let pending = match subscribers.get(&holder) {
            Some(a) => a.pulling || a.pulled < last_pull,
            None => last_pull > 0,
        };
        if pending {
            subscribers.entry(holder).or_default().closed = true;
        } else {
            subscribers.remove(&holder);
        }
    }
    release(shard, &q, holder);
    q.last_used_ms.set(crate::time::now_ms());
    let auto_delete = q.queue.borrow().config().auto_delete;
    if auto_delete && q.had_subscription.get() && q.live_subscriptions() == 0 {
        spawn_delete(shard, &q, "its last subscription ended (auto-delete)");
    }
}

/// Asks the controller to delete this incarnation of `q` if it is still unused; a
/// refusal (a subscription came meanwhile) leaves it, used now.
fn spawn_delete(shard: &Rc<Shard>, q: &Rc<OpenQueue>, why: &'static str) {
    if q.deleting.replace(true) || q.deleted.get() {
        return;
    }
    let engine = super::Engine::new(shard.clone());
    let (q, name) = (q.clone(), q.name.clone());
    let check = super::admin::DeleteCheck {
        if_unused: true,
        if_empty: false,
        id: Some(q.id),
    };
    let delete = async move {
        let job = {
            let name = name.clone();
            move |s: Rc<Shard>| async move { super::admin::delete_queue_if(&s, &name, check).await }
        };
        let controller = super::placement::CONTROLLER_SHARD;
        match engine.on_owner(controller, CallClass::Internal, job).await {
            Ok(_) => tracing::info!(queue = %name, "queue deleted: {why}"),
            Err(e) => {
                tracing::debug!(queue = %name, "queue kept ({why}): {e}");
                q.last_used_ms.set(crate::time::now_ms());
                q.deleting.set(false);
            }
        }
    };
    crate::runtime::spawn_local(delete).detach();
}

/// How `name` is used now (its owner answers).
pub fn usage(shard: &Rc<Shard>, name: &str) -> Result<Usage, EngineError> {
    let q = shard.queue(name)?;
    let s = q.queue.borrow().stats();
    Ok(Usage {
        subscriptions: q.live_subscriptions() as u64,
        waiting: (s.ready + s.delayed) as u64,
        in_flight: s.in_flight as u64,
    })
}

/// `name` was used (redeclared): its expiry starts again.
pub fn touch(shard: &Rc<Shard>, name: &str) {
    if let Ok(q) = shard.queue(name) {
        q.last_used_ms.set(crate::time::now_ms());
    }
}

fn release(shard: &Rc<Shard>, q: &Rc<OpenQueue>, holder: u64) {
    let now = crate::time::now_ms();
    let dead = q
        .queue
        .borrow_mut()
        .release(Holder::Subscription(holder), now);
    q.ready.notify(usize::MAX);
    spawn_dead_letters(shard, q, dead);
}

pub async fn receive(
    shard: &Rc<Shard>,
    name: &str,
    args: ReceiveArgs,
) -> Result<Received, EngineError> {
    let q = shard.queue(name)?;
    if let Some(ms) = args
        .visibility_ms
        .filter(|ms| *ms > VISIBILITY_TIMEOUT_MS_MAX)
    {
        return Err(EngineError::InvalidRequest(format!(
            "visibility timeout of {ms} ms is over the maximum of {VISIBILITY_TIMEOUT_MS_MAX} ms"
        )));
    }
    receive_on(shard, &q, Holder::Pull, args).await
}

/// `Engine::receive_attempt`: the answer of an earlier receive with this attempt id
/// while every lease it handed out still holds; else a receive, remembered under it.
pub async fn receive_attempt(
    shard: &Rc<Shard>,
    name: &str,
    args: ReceiveArgs,
    attempt: String,
) -> Result<Received, EngineError> {
    let q = shard.queue(name)?;
    let now = crate::time::now_ms();
    let again = {
        let mut attempts = q.attempts.borrow_mut();
        let queue = q.queue.borrow();
        attempts
            .get(&attempt, now)
            .filter(|prev| {
                let m = &prev.messages;
                m.handles
                    .iter()
                    .zip(&m.ids)
                    .all(|(handle, id)| queue.leased_id(*handle) == Some(*id))
            })
            .cloned()
    };
    if let Some(prev) = again {
        return Ok(prev);
    }
    let got = receive(shard, name, args).await?;
    // An empty answer leases nothing: a retry may as well receive afresh.
    if !got.messages.ids.is_empty() {
        let bytes = got.bodies.len() + 64 * got.messages.ids.len();
        q.attempts
            .borrow_mut()
            .insert(attempt, got.clone(), bytes, crate::time::now_ms());
    }
    Ok(got)
}

pub async fn settle(shard: &Rc<Shard>, name: &str, settle: Settle) -> Result<(), EngineError> {
    let q = shard.queue(name)?;
    match settle {
        Settle::Ack { handles } => ack(&q, &handles).await,
        Settle::Requeue { handles } => nack(shard, &q, &handles, true).await,
        Settle::Reject { handles } => nack(shard, &q, &handles, false).await,
        Settle::ChangeVisibility { handle, timeout_ms } => {
            let now = crate::time::now_ms();
            q.queue
                .borrow_mut()
                .change_visibility(handle, timeout_ms, now)?;
            wake_for_lease(&q, now, timeout_ms);
            Ok(())
        }
    }
}

/// Leases are not journaled (a restart returns them all), so neither is a new
/// deadline. The queue timer returns the lease when it falls due; wake a receive
/// waiting for it then.
fn wake_for_lease(q: &OpenQueue, now: i64, timeout_ms: u64) {
    let due = now.saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX));
    q.wake_at.set(q.wake_at.get().min(due));
}

/// Acks each lease whose handle still leases the message it names (`Engine::ack_leases`).
pub async fn ack_leases(
    shard: &Rc<Shard>,
    name: &str,
    leases: &[LeaseRef],
) -> Result<Vec<bool>, EngineError> {
    let q = shard.queue(name)?;
    // As in `ack`: refused before anything is settled.
    q.store.writable()?;
    let mut settled = Vec::with_capacity(leases.len());
    let answers: Vec<bool> = {
        let mut queue = q.queue.borrow_mut();
        leases
            .iter()
            .map(|l| {
                if queue.leased_id(l.handle) != Some(l.message_id) {
                    return false;
                }
                let acked = queue.ack(l.handle).ok();
                settled.extend(acked);
                acked.is_some()
            })
            .collect()
    };
    if settled.is_empty() {
        return Ok(answers);
    }
    // A subscription at its prefetch may take more now.
    q.ready.notify(usize::MAX);
    let acked = settled.len() as u64;
    // Answered only once on disk: acked messages never come back.
    let event = Event::Settled { ids: settled };
    q.store
        .record(&event, true, crate::time::now_ms())
        .await
        .map_err(EngineError::from)?;
    crate::metrics::local::queue_totals(&q.name, 0, acked, 0);
    Ok(answers)
}

/// Changes each lease whose handle still leases the message it names
/// (`Engine::change_visibility`).
pub fn change_visibility(
    shard: &Rc<Shard>,
    name: &str,
    changes: &[(LeaseRef, u64)],
) -> Result<Vec<bool>, EngineError> {
    let q = shard.queue(name)?;
    if let Some((_, ms)) = changes
        .iter()
        .find(|(_, ms)| *ms > VISIBILITY_TIMEOUT_MS_MAX)
    {
        return Err(EngineError::InvalidRequest(format!(
            "visibility timeout of {ms} ms is over the maximum of {VISIBILITY_TIMEOUT_MS_MAX} ms"
        )));
    }
    let now = crate::time::now_ms();
    let mut queue = q.queue.borrow_mut();
    let answers = changes
        .iter()
        .map(|(l, timeout_ms)| {
            if queue.leased_id(l.handle) != Some(l.message_id) {
                return false;
            }
            let changed = queue.change_visibility(l.handle, *timeout_ms, now).is_ok();
            if changed {
                wake_for_lease(&q, now, *timeout_ms);
            }
            changed
        })
        .collect();
    Ok(answers)
}

pub fn stats(shard: &Rc<Shard>, name: &str) -> Result<QueueStats, EngineError> {
    let q = shard.queue(name)?;
    let s = q.queue.borrow().stats();
    let attached = q.live_subscriptions();
    Ok(QueueStats {
        name: name.to_string(),
        ready: s.ready as u64,
        delayed: s.delayed as u64,
        in_flight: s.in_flight as u64,
        dead_lettered: q.dead_lettered.get(),
        consumers: q.waiting.get() + attached as u64,
        owner: shard.id,
    })
}

pub async fn purge(shard: &Rc<Shard>, name: &str) -> Result<u64, EngineError> {
    let q = shard.queue(name)?;
    let ids = q.queue.borrow_mut().purge();
    let count = ids.len() as u64;
    let settled = Event::Settled { ids };
    q.store
        .record(&settled, true, crate::time::now_ms())
        .await
        .map_err(EngineError::from)?;
    Ok(count)
}

/// The state machine's options for a publish made at `now`.
fn publish_options(spec: &PublishSpec, now: i64) -> PublishOptions {
    PublishOptions {
        priority: spec.priority,
        deliver_at_ms: spec
            .delay_ms
            .map(|d| now.saturating_add(i64::try_from(d).unwrap_or(i64::MAX))),
        ttl_ms: spec.ttl_ms,
        headers: spec.headers.clone(),
        group_id: spec.group_id.clone(),
        dedup_id: spec.dedup_id.clone(),
    }
}

pub async fn publish(
    shard: &Rc<Shard>,
    name: &str,
    spec: PublishSpec,
    body: Bytes,
) -> Result<Option<u64>, EngineError> {
    let q = shard.queue(name)?;
    if let Some(origin) = &spec.origin {
        if q.queue.borrow().knows_origin(origin) {
            return Ok(None);
        }
    }
    check_size(&q, &spec, body.len())?;
    let now = crate::time::now_ms();
    let opts = publish_options(&spec, now);
    let published = q.queue.borrow_mut().publish(body, opts, now);
    // A drop-head publish pushed the oldest out: they move on as dead letters.
    spawn_dead_letters(shard, &q, q.queue.borrow_mut().drain_overflow());
    let Some(id) = published? else {
        return Ok(None);
    };
    let appended = {
        let queue = q.queue.borrow();
        let Some(message) = queue.message(id) else {
            return Err(io_error("published message vanished"));
        };
        let publish = Publish {
            messages: &[message],
            dedup_ids: &[spec.dedup_id.as_deref()],
            origin: spec.origin.as_deref(),
        };
        q.store.append_published(publish, now)
    };
    if appended.is_ok() {
        q.queue.borrow_mut().journaled(&[id]);
    }
    durable(
        &q,
        (&[id], spec.dedup_id.as_deref()),
        appended,
        spec.durable,
    )
    .await
    .map_err(EngineError::from)?;
    if let Some(origin) = spec.origin {
        q.queue.borrow_mut().remember_origin(origin, now, now);
    }
    q.ready.notify(usize::MAX);
    crate::metrics::local::queue_totals(&q.name, 1, 0, 0);
    Ok(Some(id))
}

/// Refuses a client's body over the queue's `max_message_bytes`. Dead-letter moves
/// (`origin` set) pass: a target's bound must never make a move fail for ever.
fn check_size(q: &OpenQueue, spec: &PublishSpec, len: usize) -> Result<(), EngineError> {
    if spec.origin.is_some() {
        return Ok(());
    }
    let Some(max) = q.queue.borrow().config().max_message_bytes else {
        return Ok(());
    };
    if len > max as usize {
        return Err(EngineError::MessageTooLarge(format!(
            "a message of {len} bytes is over the maximum of {max} bytes of queue '{}'",
            q.name
        )));
    }
    Ok(())
}

/// Waits for journaled publishes to be on disk when the publisher asked for that; when
/// the journal refused them, they leave the queue again (never delivered unjournaled).
async fn durable(
    q: &OpenQueue,
    (ids, dedup_id): (&[u64], Option<&str>),
    appended: Result<Option<i64>, peregrine_shards::log::LogError>,
    durable: bool,
) -> Result<(), peregrine_shards::log::LogError> {
    let appended = match appended {
        Ok(appended) => appended,
        Err(e) => {
            let mut queue = q.queue.borrow_mut();
            for id in ids {
                queue.unpublish(*id, dedup_id);
            }
            return Err(e);
        }
    };
    match appended {
        Some(last) if durable => q.store.wait_durable(last).await,
        _ => Ok(()),
    }
}

pub async fn publish_batch(
    shard: &Rc<Shard>,
    name: &str,
    spec: PublishSpec,
    lens: &[u32],
    bodies: Bytes,
) -> Result<u32, EngineError> {
    let q = shard.queue(name)?;
    let total: usize = lens.iter().map(|l| *l as usize).sum();
    if total != bodies.len() || spec.origin.is_some() || spec.dedup_id.is_some() {
        return Err(EngineError::InvalidRequest(
            "a batch publish needs bodies matching its lengths, and no dedup or origin ids".into(),
        ));
    }
    if let Some(longest) = lens.iter().max() {
        check_size(&q, &spec, *longest as usize)?;
    }
    let now = crate::time::now_ms();
    let mut ids = Vec::with_capacity(lens.len());
    let appended = {
        let mut queue = q.queue.borrow_mut();
        let mut at = 0usize;
        for len in lens {
            let body = bodies.slice(at..at + *len as usize);
            at += *len as usize;
            match queue.publish(body, publish_options(&spec, now), now) {
                Ok(Some(id)) => ids.push(id),
                Ok(None) => {}
                Err(e) => {
                    // Those already taken must not stay unjournaled in the queue.
                    for id in ids {
                        queue.unpublish(id, None);
                    }
                    return Err(e.into());
                }
            }
        }
        let messages: Vec<_> = ids.iter().filter_map(|id| queue.message(*id)).collect();
        let publish = Publish {
            messages: &messages,
            dedup_ids: &[],
            origin: None,
        };
        q.store.append_published(publish, now)
    };
    spawn_dead_letters(shard, &q, q.queue.borrow_mut().drain_overflow());
    if appended.is_ok() {
        q.queue.borrow_mut().journaled(&ids);
    }
    durable(&q, (&ids, None), appended, spec.durable)
        .await
        .map_err(EngineError::from)?;
    q.ready.notify(usize::MAX);
    crate::metrics::local::queue_totals(&q.name, ids.len() as u64, 0, 0);
    Ok(ids.len() as u32)
}

/// `Engine::publish_each`: every entry into the queue, then one journal append and at
/// most one wait for the disk. An entry whose dedup id a FIFO queue saw within its
/// window (earlier, or in this call) is not stored: its answer is the id of the message
/// stored under that id.
pub async fn publish_each(
    shard: &Rc<Shard>,
    name: &str,
    entries: Vec<PublishEntry>,
) -> Result<Vec<u64>, EngineError> {
    let q = shard.queue(name)?;
    for e in &entries {
        if e.spec.origin.is_some() {
            return Err(EngineError::InvalidRequest(
                "a batch publish carries no origin ids".into(),
            ));
        }
        check_size(&q, &e.spec, e.body.len())?;
    }
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let durable_wait = entries.iter().any(|e| e.spec.durable);
    let now = crate::time::now_ms();
    // Per entry: its message id; `stored` the new ones with their dedup ids.
    let mut ids = Vec::with_capacity(entries.len());
    let mut stored: Vec<(u64, Option<String>)> = Vec::with_capacity(entries.len());
    let appended = {
        let mut queue = q.queue.borrow_mut();
        for e in entries {
            let dedup = e.spec.dedup_id.clone();
            if let Some(original) = dedup.as_deref().and_then(|d| queue.duplicate_of(d, now)) {
                ids.push(original);
                continue;
            }
            let taken = match queue.publish(e.body, publish_options(&e.spec, now), now) {
                Ok(Some(id)) => Ok(id),
                // `duplicate_of` answered the only case that drops a publish.
                Ok(None) => Err(EngineError::Internal("a batch entry was dropped".into())),
                Err(e) => Err(e.into()),
            };
            match taken {
                Ok(id) => {
                    ids.push(id);
                    stored.push((id, dedup));
                }
                Err(e) => {
                    // Those already taken must not stay unjournaled in the queue.
                    for (id, dedup) in &stored {
                        queue.unpublish(*id, dedup.as_deref());
                    }
                    return Err(e);
                }
            }
        }
        // (A drop-head bound may have pushed an earlier entry out already.)
        let (messages, dedup_ids): (Vec<_>, Vec<_>) = stored
            .iter()
            .filter_map(|(id, d)| Some((queue.message(*id)?, d.as_deref())))
            .unzip();
        let publish = Publish {
            messages: &messages,
            dedup_ids: &dedup_ids,
            origin: None,
        };
        q.store.append_published(publish, now)
    };
    spawn_dead_letters(shard, &q, q.queue.borrow_mut().drain_overflow());
    let new_ids: Vec<u64> = stored.iter().map(|(id, _)| *id).collect();
    if appended.is_ok() {
        q.queue.borrow_mut().journaled(&new_ids);
    }
    let appended = match appended {
        Ok(appended) => appended,
        Err(e) => {
            // Unpublish with each entry's own dedup id (`durable` knows only one).
            let mut queue = q.queue.borrow_mut();
            for (id, dedup) in &stored {
                queue.unpublish(*id, dedup.as_deref());
            }
            return Err(e.into());
        }
    };
    // A duplicate's original may still be on its way to the disk: an answer naming it
    // waits for everything journaled so far, as the original's own answer does.
    let duplicates = ids.len() > new_ids.len();
    let appended = match appended {
        None if duplicates => Ok(Some(q.store.log().end_offset() - 1).filter(|o| *o >= 0)),
        other => Ok(other),
    };
    durable(&q, (&[], None), appended, durable_wait)
        .await
        .map_err(EngineError::from)?;
    q.ready.notify(usize::MAX);
    crate::metrics::local::queue_totals(&q.name, new_ids.len() as u64, 0, 0);
    Ok(ids)
}

/// A pull receive (`Holder::Pull`, up to `args.max`), or a subscription's pull (up to
/// `args.max` minus the leases it holds: its prefetch).
async fn receive_on(
    shard: &Rc<Shard>,
    q: &Rc<OpenQueue>,
    holder: Holder,
    args: ReceiveArgs,
) -> Result<Received, EngineError> {
    let ReceiveArgs {
        max,
        wait_ms,
        auto_ack,
        visibility_ms,
        first_receive,
    } = args;
    let max = max.clamp(1, RECEIVE_MAX) as usize;
    let deadline = crate::time::now_ms() + i64::from(wait_ms.min(RECEIVE_WAIT_MAX_MS));
    let mut out = Deliveries::with_capacity(max.min(BATCH_RESERVE));
    // The bodies are gathered first (reference counts) and copied once into a buffer of
    // their exact size.
    let mut taken: Vec<Bytes> = Vec::new();
    q.last_used_ms.set(crate::time::now_ms());
    loop {
        if q.deleted.get() {
            return Err(EngineError::UnknownQueue(format!(
                "queue '{}' was deleted",
                q.name
            )));
        }
        let listener = q.ready.listen();
        let now = crate::time::now_ms();
        let room = match holder {
            Holder::Pull => max,
            Holder::Subscription(h) if q.is_closed(h) => break,
            Holder::Subscription(_) => max.saturating_sub(q.queue.borrow().held_by(holder)),
        };
        let dead = if room > 0 {
            // Each message's metadata into its columns and its body straight into the
            // answer: no clone of the message, one copy of the body.
            q.queue
                .borrow_mut()
                .receive_leasing(room, holder, visibility_ms, now, |handle, m| {
                    if !m.headers().is_empty() || m.group_id().is_some() {
                        out.extras.push(DeliveryExtras {
                            index: out.ids.len() as u32,
                            headers: m.headers().to_vec(),
                            group_id: m.group_id().map(str::to_string),
                        });
                    }
                    out.handles.push(handle);
                    out.ids.push(m.id);
                    out.published_ms.push(m.published_ms);
                    out.deliveries.push(m.deliveries);
                    out.lens.push(m.body.len() as u32);
                    out.priorities.push(m.priority);
                    taken.push(m.body.clone());
                })
        } else {
            q.queue.borrow_mut().tick(now)
        };
        spawn_dead_letters(shard, q, dead);
        spawn_loader(q);
        let loading = q.queue.borrow().waits_for_load();
        if !out.is_empty() || (now >= deadline && !loading) {
            break;
        }
        // Wake for a publish, or when a delay, lease or TTL falls due, or at the deadline
        // (the queue timer's next tick after it).
        let due = q
            .queue
            .borrow()
            .next_deadline_ms()
            .map_or(deadline, |d| d.min(deadline));
        q.wake_at.set(q.wake_at.get().min(due));
        let pulling = holder == Holder::Pull;
        // Subscriptions are bounded per connection; pull waits by the shard's cap.
        let slot = if pulling {
            match shard.long_poll_slot() {
                Some(slot) => Some(slot),
                None => break,
            }
        } else {
            None
        };
        if pulling {
            q.waiting.set(q.waiting.get() + 1);
        }
        listener.await;
        drop(slot);
        if pulling {
            q.waiting.set(q.waiting.get() - 1);
        }
    }
    // One time for the answer and the journal, so a replay gives back the same.
    let now = crate::time::now_ms();
    if first_receive && !out.is_empty() {
        let mut first = q.first_received.borrow_mut();
        out.first_received_ms = out.ids.iter().map(|id| first.first(*id, now)).collect();
        let queue = q.queue.borrow();
        first.sweep(|id| queue.message(id).is_some());
    }
    if !out.is_empty() {
        let event = if auto_ack {
            // At-most-once: settled on disk before anything is sent.
            let mut ids = Vec::with_capacity(out.handles.len());
            q.queue
                .borrow_mut()
                .ack_all(&out.handles, |id| ids.push(id), |_| {});
            out.handles.iter_mut().for_each(|h| *h = 0);
            Event::Settled { ids }
        } else if first_receive {
            Event::DeliveredTimed {
                ids: out.ids.clone(),
            }
        } else {
            Event::Delivered {
                ids: out.ids.clone(),
            }
        };
        q.store
            .record(&event, auto_ack, now)
            .await
            .map_err(EngineError::from)?;
        let n = out.ids.len() as u64;
        let again = out.deliveries.iter().filter(|d| **d > 1).count() as u64;
        crate::metrics::local::queue_totals(&q.name, 0, if auto_ack { n } else { 0 }, again);
    }
    let bodies = match taken.len() {
        // One message: its body as it is, no copy.
        1 => taken.pop().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(taken.iter().map(Bytes::len).sum());
            for body in &taken {
                all.extend_from_slice(body);
            }
            all.freeze()
        }
    };
    Ok(Received {
        messages: out,
        bodies,
    })
}

async fn ack(q: &OpenQueue, handles: &[u64]) -> Result<(), EngineError> {
    // A journal that refuses appends (disk full, failed write) refuses the ack before
    // it settles anything: the leases stay, and the same ack works once it can be
    // journaled. No await until the event is appended, so the answer cannot change.
    q.store.writable()?;
    let (mut settled, mut unknown) = (Vec::with_capacity(handles.len()), Vec::new());
    q.queue
        .borrow_mut()
        .ack_all(handles, |id| settled.push(id), |h| unknown.push(h));
    // A subscription at its prefetch may take more now.
    q.ready.notify(usize::MAX);
    // An ack is answered only once it is on disk: acked messages never come back.
    if !settled.is_empty() {
        let acked = settled.len() as u64;
        let event = Event::Settled { ids: settled };
        q.store
            .record(&event, true, crate::time::now_ms())
            .await
            .map_err(EngineError::from)?;
        crate::metrics::local::queue_totals(&q.name, 0, acked, 0);
    }
    handles_answer(&unknown)
}

/// Ok, or which receipt handles were not leases any more.
fn handles_answer(unknown: &[u64]) -> Result<(), EngineError> {
    if unknown.is_empty() {
        return Ok(());
    }
    Err(EngineError::UnknownHandle(format!(
        "unknown or expired receipt handles {unknown:?} (their leases ended)"
    )))
}

async fn nack(
    shard: &Rc<Shard>,
    q: &Rc<OpenQueue>,
    handles: &[u64],
    requeue: bool,
) -> Result<(), EngineError> {
    // As in `ack`: a journal that refuses appends refuses the nack before anything is
    // returned or dead-lettered (a reject's move writes an intent record first).
    q.store.writable()?;
    let now = crate::time::now_ms();
    let (mut dead, mut unknown) = (Vec::new(), Vec::new());
    {
        let mut queue = q.queue.borrow_mut();
        for h in handles {
            match queue.nack(*h, requeue, now) {
                Ok(d) => dead.extend(d),
                Err(_) => unknown.push(*h),
            }
        }
    }
    q.ready.notify(usize::MAX);
    for d in dead {
        dead_letter(shard, q, d).await.map_err(io_error)?;
    }
    handles_answer(&unknown)
}

/// Reads bodies near the queue's head back from its journal when a receive waits for
/// one or the read-ahead has room (one loader per queue at a time).
fn spawn_loader(q: &Rc<OpenQueue>) {
    if !q.queue.borrow_mut().start_loading() {
        return;
    }
    let q = q.clone();
    crate::runtime::spawn_local(async move {
        let woken = || {
            q.ready.notify(usize::MAX);
        };
        if let Err(e) = q.store.load_ahead(&q.queue, woken).await {
            tracing::error!(queue = %q.name, "reading bodies back from the journal: {e}");
        }
    })
    .detach();
}

fn spawn_dead_letters(shard: &Rc<Shard>, q: &Rc<OpenQueue>, dead: Vec<DeadLetter>) {
    if dead.is_empty() {
        return;
    }
    let (shard, q) = (shard.clone(), q.clone());
    crate::runtime::spawn_local(async move {
        for d in dead {
            if let Err(e) = dead_letter(&shard, &q, d).await {
                tracing::error!(queue = %q.name, "dead-lettering: {e}");
            }
        }
    })
    .detach();
}

/// Moves one message out of its queue: dropped (no target) or to the target queue,
/// with an intent record first so that a crash in between resumes the move.
async fn dead_letter(shard: &Rc<Shard>, q: &Rc<OpenQueue>, d: DeadLetter) -> Result<(), String> {
    let now = crate::time::now_ms();
    let id = d.message.id;
    let Some(target) = d.target.clone() else {
        return q
            .store
            .record(&Event::Settled { ids: vec![id] }, false, now)
            .await
            .map_err(|e| e.to_string());
    };
    q.store
        .record(&QueueStore::dead_lettering(id, d.reason), true, now)
        .await
        .map_err(|e| e.to_string())?;
    let mut headers = d.message.headers().to_vec();
    headers.extend([
        ("x-death-reason".to_string(), d.reason.as_str().to_string()),
        ("x-death-queue".to_string(), d.queue.clone()),
        (
            "x-death-count".to_string(),
            d.message.deliveries.to_string(),
        ),
        ("x-death-time".to_string(), d.at_ms.to_string()),
    ]);
    let spec = PublishSpec {
        priority: 0,
        headers,
        group_id: d.message.group_id().map(str::to_string),
        durable: true,
        origin: Some(format!("{}/{id}", d.queue)),
        ..PublishSpec::default()
    };
    // A queue, or an exchange (routed here, with the queue's dead-letter routing key,
    // else the key the message was published with, else the source queue's name); either way a target that has this dead letter already keeps one copy. The
    // move is the engine's own call, in its own in-flight budget (`CallClass`).
    let body = if d.body_on_disk {
        let bodies = q
            .store
            .load_bodies(&[id])
            .await
            .map_err(|e| e.to_string())?;
        let Some((_, body)) = bodies.into_iter().next() else {
            return Err(format!("message {id}: body not in the journal"));
        };
        body
    } else {
        d.message.body.clone()
    };
    let routing_key = q
        .queue
        .borrow()
        .config()
        .dead_letter_routing_key
        .clone()
        .or_else(|| {
            let published = d.message.headers().iter();
            published
                .filter(|(k, _)| k == super::types::ROUTING_KEY_HEADER)
                .map(|(_, v)| v.clone())
                .next()
        })
        .unwrap_or_else(|| d.queue.clone());
    let moved = if shard.catalog().queue(&target).is_ok() {
        let engine = super::Engine::new(shard.clone());
        Box::pin(engine.publish_as(CallClass::Internal, &target, spec, body))
            .await
            .map(|_| ())
    } else {
        // Delivered as routed by the dead-letter exchange, as RabbitMQ shows it.
        let mut spec = spec;
        let routed_by = [
            (super::types::EXCHANGE_HEADER, target.as_str()),
            (super::types::ROUTING_KEY_HEADER, routing_key.as_str()),
        ];
        for (name, value) in routed_by {
            spec.headers.retain(|(k, _)| k != name);
            spec.headers.push((name.to_string(), value.to_string()));
        }
        let since = Some(d.at_ms);
        Box::pin(super::exchanges::publish_once(
            shard,
            CallClass::Internal,
            (&target, &routing_key),
            spec,
            body,
            since,
        ))
        .await
        .map(|_| ())
    };
    if let Err(e) = moved {
        tracing::warn!(queue = %q.name, %target, "dead letter not delivered yet: {e}");
        q.pending_moves.borrow_mut().push(d);
        return Ok(());
    }
    q.store
        .record(
            &Event::Settled { ids: vec![id] },
            true,
            crate::time::now_ms(),
        )
        .await
        .map_err(|e| e.to_string())?;
    q.dead_lettered.set(q.dead_lettered.get() + 1);
    Ok(())
}

/// Deletes `q` when it has an expiry (`expires_ms`) and has not been used for that
/// long; a subscription or a waiting receive is a use that lasts.
fn expire_unused(shard: &Rc<Shard>, q: &Rc<OpenQueue>, now: i64) {
    let Some(expires_ms) = q.queue.borrow().config().expires_ms else {
        return;
    };
    if q.live_subscriptions() > 0 || q.waiting.get() > 0 {
        q.last_used_ms.set(now);
        return;
    }
    let idle_ms = now.saturating_sub(q.last_used_ms.get());
    if idle_ms >= i64::try_from(expires_ms).unwrap_or(i64::MAX) {
        spawn_delete(shard, q, "unused for its expiry (x-expires)");
    }
}

/// Applies time to every queue of a shard: visibility timeouts, delays, expiries,
/// unfinished dead-letter moves, move tasks to resume after a restart, and journal
/// reclamation.
pub async fn tick(shard: &Rc<Shard>, reclaim: bool) {
    let now = crate::time::now_ms();
    for q in shard.message_queues() {
        let due = q
            .queue
            .borrow()
            .next_deadline_ms()
            .is_some_and(|d| d <= now);
        if due {
            let dead = q.queue.borrow_mut().tick(now);
            q.ready.notify(usize::MAX);
            spawn_dead_letters(shard, &q, dead);
        }
        if q.wake_at.get() <= now {
            // Every waiting receive looks again and says when it next must.
            q.wake_at.set(i64::MAX);
            q.ready.notify(usize::MAX);
        }
        let retry: Vec<DeadLetter> = q.pending_moves.borrow_mut().drain(..).collect();
        spawn_dead_letters(shard, &q, retry);
        expire_unused(shard, &q, now);
        if q.moves_to_resume.replace(false) {
            super::moves::resume(shard, &q);
        }
        if reclaim {
            if let Err(e) = q.store.reclaim(now).await {
                tracing::warn!(queue = %q.name, "reclaiming journal segments: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_receive_times_stay_and_settled_ones_are_swept_within_the_bound() {
        let mut first = FirstReceived::default();
        assert_eq!(first.first(7, 100), 100);
        assert_eq!(first.first(7, 200), 100, "the first time stays");
        // Only even ids stay unsettled; the map never holds much more than twice them.
        for id in 0..10_000u64 {
            first.first(id, 1);
            first.sweep(|id| id % 2 == 0);
            let live = (id / 2 + 1) as usize;
            assert!(first.at_ms.len() <= 2 * live + FIRST_RECEIVED_SLACK + 1);
        }
    }
}
