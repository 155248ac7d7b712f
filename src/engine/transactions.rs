//! Kafka transactions on the engine (issue 18): the transaction coordinator of each
//! transactional id runs on the shard that owns the id (`Object::Transaction`); its
//! state is kept durably in a log of that shard's own (`peregrine_shards::txn`,
//! `<data>/transactions/<shard>/`), and its markers go to every partition in the
//! transaction, whichever shard owns it.
//!
//! These are the engine's methods for it; every front end that offers transactions
//! calls these and nothing else.
//!
//! How an end completes ("driving" a prepared transaction): the decision
//! (PrepareCommit / PrepareAbort) is logged durably first; then a marker goes to every
//! partition (at most `MARKERS_IN_FLIGHT_MAX` at once, each durable), then, on commit,
//! the pending offsets go to each group's coordinator as a durable commit; then the
//! Complete state is logged. Every step is idempotent, so a crash anywhere is finished
//! at the next start (`recover`), and a step that failed is retried by the tick. While
//! an id is preparing, its calls get ConcurrentTransactions (the client retries).
//!
//! The broker aborts an open transaction itself, with the producer's epoch bumped so
//! that the old instance is fenced: on a newer InitProducerId, past the transaction's
//! timeout (checked every `TICK`), and at start (a transaction open at a crash).

use super::admin;
use super::error::EngineError;
use super::mesh::CallClass;
use super::partitions;
use super::placement::{Object, CONTROLLER_SHARD};
use super::shard::Shard;
use super::types::{CommitEntry, Marker, ProducerDescription, TxnDescription, TxnState};
use super::Engine;
use crate::runtime;
use crate::time::now_ms;
use peregrine_shards::groups::{CommittedOffset, GROUP_ID_MAX_CHARS};
use peregrine_shards::txn::{
    self, state, EndStep, InitArgs, InitStep, PendingOffset, TxnError, TxnLog, TxnMeta, TxnStatus,
};
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

/// What a transactional producer identifies itself with on every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnProducer {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
}

/// A transactional id in a listing (Kafka's ListTransactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

/// How often each shard's coordinator aborts timed-out transactions, retries prepared
/// ones whose completion failed, and drops expired ids.
pub const TICK: Duration = Duration::from_secs(1);
/// Markers of one transaction being written at once.
const MARKERS_IN_FLIGHT_MAX: usize = 256;
/// Steps one InitProducerId may take (allocate an id, abort an open transaction,
/// answer); more means other calls keep changing the id: the client retries.
const INIT_STEPS_MAX: usize = 4;
/// Our coordinator has no leader epoch (one broker): every marker carries this.
const COORDINATOR_EPOCH: i32 = 0;

/// One shard's transaction coordinator: the durable states of the ids it owns, and
/// which of them this process is completing now. Owned by its shard.
pub struct Coordinator {
    log: Rc<TxnLog>,
    /// Ids whose prepared end is being driven now (markers, offsets).
    driving: RefCell<HashSet<String>>,
}

impl Coordinator {
    /// Writes what is pending, fdatasyncs and closes the log; the last step of shutdown.
    pub async fn close(&self) -> Result<(), TxnError> {
        self.log.close().await
    }
}

/// A claim on one id's drive: takes the id off `driving` when dropped, however the
/// drive ends.
struct Driving<'a>(&'a Coordinator, String);

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        self.0.driving.borrow_mut().remove(&self.1);
    }
}

/// Where a drive stops in a test, as a crash there would (engine tests restart the
/// engine and check recovery).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// After the decision is durable, before any marker.
    Markers,
    /// After the markers and offsets, before the Complete record.
    Complete,
}

#[cfg(test)]
thread_local! {
    /// Test hook: where drives on this shard's thread stop (`None`: they do not).
    pub(crate) static HOLD: std::cell::Cell<Option<Hold>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
fn held(at: Hold) -> Result<(), EngineError> {
    if HOLD.with(std::cell::Cell::get) == Some(at) {
        return Err(EngineError::ShuttingDown(format!("held at {at:?}")));
    }
    Ok(())
}

fn engine_error(e: TxnError) -> EngineError {
    match e {
        TxnError::InvalidTxnState(t) => EngineError::InvalidTxnState(t),
        TxnError::ConcurrentTransactions(t) => EngineError::ConcurrentTransactions(t),
        TxnError::UnknownTransactionalId(t) => EngineError::UnknownTransactionalId(t),
        TxnError::InvalidTransactionTimeout(t) => EngineError::InvalidTransactionTimeout(t),
        TxnError::ProducerFenced(t) => EngineError::ProducerFenced(t),
        e @ TxnError::InvalidRequest(_) => EngineError::InvalidRequest(e.to_string()),
        e @ TxnError::Io(_) => EngineError::Internal(e.to_string()),
        e @ TxnError::StorageFull(_) => EngineError::StorageFull(e.to_string()),
        e @ TxnError::StorageFailed(_) => EngineError::StorageFailed(e.to_string()),
    }
}

fn txn_state(s: TxnStatus) -> TxnState {
    match s {
        TxnStatus::Empty => TxnState::Empty,
        TxnStatus::Ongoing => TxnState::Ongoing,
        TxnStatus::PrepareCommit => TxnState::PrepareCommit,
        TxnStatus::PrepareAbort => TxnState::PrepareAbort,
        TxnStatus::CompleteCommit => TxnState::CompleteCommit,
        TxnStatus::CompleteAbort => TxnState::CompleteAbort,
    }
}

fn check_id(id: &str) -> Result<(), EngineError> {
    if id.is_empty() || id.len() > txn::TRANSACTIONAL_ID_MAX_BYTES {
        return Err(EngineError::InvalidRequest(format!(
            "transactional id of {} bytes (1..={})",
            id.len(),
            txn::TRANSACTIONAL_ID_MAX_BYTES
        )));
    }
    Ok(())
}

fn check_group(group: &str) -> Result<(), EngineError> {
    let chars = group.chars().count();
    if chars == 0 || chars > GROUP_ID_MAX_CHARS {
        return Err(EngineError::InvalidGroup(format!(
            "invalid group id (must be 1..={GROUP_ID_MAX_CHARS} characters)"
        )));
    }
    Ok(())
}

/// This shard's coordinator (opened at start).
fn coordinator(shard: &Shard) -> Result<&Coordinator, EngineError> {
    shard
        .txn
        .get()
        .map(Rc::as_ref)
        .ok_or_else(|| EngineError::ShuttingDown("the transaction coordinator is not open".into()))
}

/// Opens this shard's transaction log and turns every transaction a crash left open
/// into a durable PrepareAbort (epoch bumped); [`recover`] then completes the prepared
/// ones. Call before the shard serves calls.
pub(crate) async fn open(shard: &Rc<Shard>) -> Result<(), String> {
    let dir = shard
        .config
        .data_dir
        .join(txn::LOG_DIR)
        .join(shard.id.to_string());
    let open = TxnLog::open(
        dir,
        txn::TXN_LOG_SEGMENT_BYTES_DEFAULT,
        txn::TXN_LOG_COMPACT_BYTES_DEFAULT,
    );
    // Opened from the background queue, as partitions are, so its flusher runs there.
    let log = runtime::spawn_into(open, shard.queues.background)
        .map_err(|e| format!("shard {}: opening the transaction log: {e}", shard.id))?
        .await
        .map_err(|e| format!("shard {}: opening the transaction log: {e}", shard.id))?;
    let now = now_ms();
    let aborts: Vec<(String, Option<TxnMeta>)> = log
        .select(|_, m| m.state == TxnStatus::Ongoing)
        .into_iter()
        .filter_map(|(id, m)| state::fence_abort(&m, now).map(|a| (id, Some(a))))
        .collect();
    if !aborts.is_empty() {
        tracing::info!(
            shard = shard.id,
            open = aborts.len(),
            "aborting transactions left open"
        );
        log.put_all(aborts)
            .await
            .map_err(|e| format!("shard {}: transaction log: {e}", shard.id))?;
    }
    let coordinator = Rc::new(Coordinator {
        log,
        driving: RefCell::new(HashSet::new()),
    });
    if shard.txn.set(coordinator).is_err() {
        return Err(format!("shard {}: transaction log opened twice", shard.id));
    }
    Ok(())
}

/// Completes every prepared transaction of this shard that no call is completing
/// now (at start, and on every tick for those whose completion failed).
pub(crate) async fn recover(shard: &Rc<Shard>) {
    let Ok(c) = coordinator(shard) else {
        return;
    };
    let prepared = c
        .log
        .select(|id, m| m.state.is_preparing() && !c.driving.borrow().contains(id));
    for (id, _) in prepared {
        // A call may have claimed it meanwhile: then that call completes it.
        let Some(claimed) = claim(c, &id) else {
            continue;
        };
        if let Err(e) = drive(shard, c, claimed).await {
            tracing::warn!(transactional_id = %id, "completing a transaction: {e}");
        }
    }
}

/// One tick: aborts timed-out transactions (epoch bumped), retries prepared ones,
/// drops expired ids.
pub(crate) async fn tick(shard: &Rc<Shard>) {
    let Ok(c) = coordinator(shard) else {
        return;
    };
    let now = now_ms();
    let aborts: Vec<(String, Option<TxnMeta>)> = c
        .log
        .select(|_, m| state::timed_out(m, now))
        .into_iter()
        .filter_map(|(id, m)| state::fence_abort(&m, now).map(|a| (id, Some(a))))
        .collect();
    let expired = c.log.select(|_, m| state::expired(m, now));
    for (id, _) in &aborts {
        tracing::info!(transactional_id = %id, "transaction timed out: aborting it");
    }
    let changes: Vec<_> = aborts
        .into_iter()
        .chain(expired.into_iter().map(|(id, _)| (id, None)))
        .collect();
    if !changes.is_empty() {
        // Durable before `recover` writes their markers.
        if let Err(e) = c.log.put_all(changes).await {
            tracing::warn!("transaction log: {e}");
            return;
        }
    }
    recover(shard).await;
}

/// Claims `id` for one drive; `None` while another is under way.
fn claim<'a>(c: &'a Coordinator, id: &str) -> Option<Driving<'a>> {
    if !c.driving.borrow_mut().insert(id.to_string()) {
        return None;
    }
    Some(Driving(c, id.to_string()))
}

fn concurrent(id: &str) -> EngineError {
    EngineError::ConcurrentTransactions(format!(
        "transactional id '{id}' is completing a transaction; retry"
    ))
}

/// Logs `prepared` (the id's PrepareCommit or PrepareAbort) durably, then drives it.
/// The id is claimed before the decision is logged, so no one else writes markers
/// for a decision that is not durable yet. A drive that fails once the decision is
/// durable is finished by the tick: the caller is told to retry
/// (ConcurrentTransactions), and is answered once it is complete.
async fn decide(shard: &Rc<Shard>, id: &str, prepared: TxnMeta) -> Result<(), EngineError> {
    debug_assert!(prepared.state.is_preparing());
    let c = coordinator(shard)?;
    let claimed = claim(c, id).ok_or_else(|| concurrent(id))?;
    c.log.put(id, Some(prepared)).await.map_err(engine_error)?;
    drive(shard, c, claimed).await.map_err(|e| {
        tracing::warn!(transactional_id = %id, "completing the transaction: {e}");
        EngineError::ConcurrentTransactions(format!(
            "the transaction of '{id}' is decided and still completing ({e}); retry"
        ))
    })
}

/// Writes the markers (and, on commit, the offsets) of the claimed id's prepared
/// end, then logs it complete.
async fn drive(
    shard: &Rc<Shard>,
    c: &Coordinator,
    claimed: Driving<'_>,
) -> Result<(), EngineError> {
    let id = claimed.1.as_str();
    let Some(meta) = c.log.get(id) else {
        return Ok(());
    };
    let commit = match meta.state {
        TxnStatus::PrepareCommit => true,
        TxnStatus::PrepareAbort => false,
        _ => return Ok(()),
    };
    #[cfg(test)]
    held(Hold::Markers)?;
    let engine = Engine::new(shard.clone());
    write_markers(&engine, &meta, commit).await?;
    if commit {
        for (group, offsets) in &meta.pending {
            engine.commit_txn_offsets(group, offsets.clone()).await?;
        }
    }
    #[cfg(test)]
    held(Hold::Complete)?;
    // Nothing else changes a preparing id, so this is still `meta`'s state.
    debug_assert_eq!(c.log.get(id).as_ref(), Some(&meta));
    if let Some(done) = state::complete(&meta, now_ms()) {
        c.log.put(id, Some(done)).await.map_err(engine_error)?;
    }
    tracing::debug!(transactional_id = %id, commit, partitions = meta.partitions.len(), "transaction completed");
    Ok(())
}

/// A marker to every partition of `meta`, durably; a partition that no longer exists
/// needs none.
async fn write_markers(engine: &Engine, meta: &TxnMeta, commit: bool) -> Result<(), EngineError> {
    let marker = Marker {
        producer_id: meta.producer_id,
        epoch: meta.epoch,
        commit,
        coordinator_epoch: COORDINATOR_EPOCH,
    };
    let all: Vec<(String, i32)> = meta.partitions.iter().cloned().collect();
    for chunk in all.chunks(MARKERS_IN_FLIGHT_MAX) {
        let tasks: Vec<_> = chunk
            .iter()
            .cloned()
            .map(|(topic, partition)| {
                let engine = engine.clone();
                runtime::spawn_local(async move {
                    let written = engine.write_marker(&topic, partition, marker).await;
                    (topic, partition, written)
                })
            })
            .collect();
        let mut failed = None;
        for task in tasks {
            match task.await {
                (_, _, Ok(())) => {}
                (topic, partition, Err(EngineError::UnknownTopic(_)))
                | (topic, partition, Err(EngineError::UnknownPartition(_))) => {
                    tracing::debug!(%topic, partition, "no marker: the partition is gone");
                }
                (topic, partition, Err(EngineError::ProducerFenced(e))) => {
                    // The partition has seen a newer epoch of this producer: nothing
                    // of this transaction can be completed there any more.
                    tracing::warn!(%topic, partition, "marker refused: {e}");
                }
                (_, _, Err(e)) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

/// InitProducerId on the id's own shard.
async fn init_here(
    shard: &Rc<Shard>,
    id: &str,
    timeout_ms: i32,
    producer_id: i64,
    epoch: i16,
) -> Result<(i64, i16), EngineError> {
    let c = coordinator(shard)?;
    let limits = shard.config.transaction_limits;
    let mut args = InitArgs {
        timeout_ms,
        max_timeout_ms: limits.max_transaction_timeout_ms,
        producer_id,
        epoch,
        fresh_producer_id: None,
        replaces_epoch: None,
    };
    for _ in 0..INIT_STEPS_MAX {
        if c.log.get(id).is_none() {
            make_room(c, limits.max_transactional_ids_per_shard).await?;
        }
        // No await from here to the put: the step is decided on the state it changes.
        let meta = c.log.get(id);
        match state::init(id, meta.as_ref(), args, now_ms()).map_err(engine_error)? {
            InitStep::NeedProducerId => {
                // Internal: a call this one makes for itself must not wait on the
                // client budget that calls like this one may have used up.
                let job = |s: Rc<Shard>| async move { admin::init_producer_id(&s, -1, -1).await };
                let engine = Engine::new(shard.clone());
                let (fresh, _) = engine
                    .on_owner(CONTROLLER_SHARD, CallClass::Internal, job)
                    .await?;
                args.fresh_producer_id = Some(fresh);
            }
            InitStep::AbortFirst(abort) => {
                tracing::info!(transactional_id = %id, "InitProducerId aborts the open transaction");
                let replaced = meta.as_ref().map_or(-1, |m| m.epoch);
                decide(shard, id, abort).await?;
                // Checked once; the abort bumped the epoch the caller gave.
                args.producer_id = -1;
                args.epoch = -1;
                args.replaces_epoch = Some(replaced);
            }
            InitStep::Ready(next) => {
                let answer = (next.producer_id, next.epoch);
                c.log.put(id, Some(next)).await.map_err(engine_error)?;
                return Ok(answer);
            }
        }
    }
    Err(EngineError::ConcurrentTransactions(format!(
        "transactional id '{id}' kept changing during InitProducerId; retry"
    )))
}

/// Room for one more id: drops expired ids when the shard holds its maximum.
async fn make_room(c: &Coordinator, max: usize) -> Result<(), EngineError> {
    if c.log.len() < max {
        return Ok(());
    }
    let now = now_ms();
    let expired: Vec<(String, Option<TxnMeta>)> = c
        .log
        .select(|_, m| state::expired(m, now))
        .into_iter()
        .map(|(id, _)| (id, None))
        .collect();
    if !expired.is_empty() {
        c.log.put_all(expired).await.map_err(engine_error)?;
    }
    if c.log.len() >= max {
        return Err(EngineError::InvalidRequest(format!(
            "too many transactional ids: this broker core already holds {max}, its cap \
             (`peregrine serve --max-transactional-ids-per-shard`)"
        )));
    }
    Ok(())
}

/// The caller's state, checked, and a change of it logged durably (`None`: no change).
async fn change(
    shard: &Rc<Shard>,
    producer: &TxnProducer,
    step: impl FnOnce(&TxnMeta, i64) -> Result<Option<TxnMeta>, TxnError>,
) -> Result<(), EngineError> {
    let c = coordinator(shard)?;
    let id = &producer.transactional_id;
    let meta = c.log.get(id);
    let meta = state::check_caller(id, meta.as_ref(), producer.producer_id, producer.epoch)
        .map_err(engine_error)?;
    if let Some(next) = step(meta, now_ms()).map_err(engine_error)? {
        c.log.put(id, Some(next)).await.map_err(engine_error)?;
    }
    Ok(())
}

/// Partitions that are not in the catalog.
fn check_partitions(shard: &Shard, partitions: &[(String, i32)]) -> Result<(), EngineError> {
    let catalog = shard.catalog();
    for (topic, partition) in partitions {
        let meta = catalog
            .topic(topic)
            .map_err(|e| EngineError::UnknownPartition(e.to_string()))?;
        if *partition < 0 || *partition >= meta.config.partitions {
            return Err(EngineError::UnknownPartition(format!(
                "partition {topic}/{partition} does not exist (the topic has {})",
                meta.config.partitions
            )));
        }
    }
    Ok(())
}

async fn end_here(
    shard: &Rc<Shard>,
    producer: &TxnProducer,
    commit: bool,
) -> Result<(), EngineError> {
    let c = coordinator(shard)?;
    let id = &producer.transactional_id;
    let meta = c.log.get(id);
    let meta = state::check_caller(id, meta.as_ref(), producer.producer_id, producer.epoch)
        .map_err(engine_error)?;
    match state::end(id, meta, commit, now_ms()).map_err(engine_error)? {
        EndStep::Done => Ok(()),
        EndStep::Prepare(next) => decide(shard, id, next).await,
    }
}

fn describe(id: &str, m: &TxnMeta) -> TxnDescription {
    TxnDescription {
        transactional_id: id.to_string(),
        state: txn_state(m.state),
        producer_id: m.producer_id,
        epoch: m.epoch,
        timeout_ms: m.timeout_ms,
        start_ms: m.start_ms,
        partitions: m.partitions.iter().cloned().collect(),
        groups: m.groups.iter().cloned().collect(),
    }
}

impl Engine {
    /// Kafka's InitProducerId with a transactional id: the id's producer id and its next
    /// epoch (fencing every older instance), after ending whatever transaction an older
    /// instance left open (aborted). `producer_id`/`epoch` are -1 from a fresh client,
    /// or the current ones from a client bumping its own epoch (KIP-360).
    pub async fn init_transactions(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(i64, i16), EngineError> {
        check_id(transactional_id)?;
        let owner = self.owner(Object::Transaction(transactional_id))?;
        let id = transactional_id.to_string();
        let job = move |s: Rc<Shard>| async move {
            init_here(&s, &id, timeout_ms, producer_id, epoch).await
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Adds partitions to the producer's transaction (begins one when none is open).
    pub async fn add_partitions_to_txn(
        &self,
        producer: TxnProducer,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), EngineError> {
        check_id(&producer.transactional_id)?;
        if partitions.len() > txn::PARTITIONS_PER_TXN_MAX {
            return Err(EngineError::InvalidRequest(format!(
                "a transaction spans at most {} partitions",
                txn::PARTITIONS_PER_TXN_MAX
            )));
        }
        let owner = self.owner(Object::Transaction(&producer.transactional_id))?;
        let job = move |s: Rc<Shard>| async move {
            check_partitions(&s, &partitions)?;
            change(&s, &producer, |m, now| {
                state::add_partitions(m, &partitions, now)
            })
            .await
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Adds a group's offsets to the producer's transaction (AddOffsetsToTxn).
    pub async fn add_offsets_to_txn(
        &self,
        producer: TxnProducer,
        group: &str,
    ) -> Result<(), EngineError> {
        check_id(&producer.transactional_id)?;
        check_group(group)?;
        let owner = self.owner(Object::Transaction(&producer.transactional_id))?;
        let group = group.to_string();
        let job = move |s: Rc<Shard>| async move {
            change(&s, &producer, |m, now| state::add_group(m, &group, now)).await
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Offsets a transaction commits for `group`: visible to the group only once the
    /// transaction commits, dropped if it aborts (TxnOffsetCommit).
    pub async fn txn_offset_commit(
        &self,
        producer: TxnProducer,
        group: &str,
        offsets: Vec<CommitEntry>,
    ) -> Result<(), EngineError> {
        check_id(&producer.transactional_id)?;
        check_group(group)?;
        if offsets.len() > txn::OFFSETS_PER_TXN_MAX {
            return Err(EngineError::InvalidRequest(format!(
                "a transaction commits at most {} offsets",
                txn::OFFSETS_PER_TXN_MAX
            )));
        }
        let owner = self.owner(Object::Transaction(&producer.transactional_id))?;
        let group = group.to_string();
        let pending: Vec<PendingOffset> = offsets
            .into_iter()
            .map(|c| PendingOffset {
                topic: c.topic,
                partition: c.partition,
                offset: c.offset,
                metadata: String::new(),
            })
            .collect();
        let job = move |s: Rc<Shard>| async move {
            let id = producer.transactional_id.clone();
            change(&s, &producer, |m, now| {
                state::add_offsets(&id, m, &group, pending, now).map(Some)
            })
            .await
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Ends the producer's transaction: commit or abort. Returns once the decision is
    /// durable, every partition has its marker on disk and the offsets are applied.
    pub async fn end_txn(&self, producer: TxnProducer, commit: bool) -> Result<(), EngineError> {
        check_id(&producer.transactional_id)?;
        let owner = self.owner(Object::Transaction(&producer.transactional_id))?;
        let job = move |s: Rc<Shard>| async move { end_here(&s, &producer, commit).await };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Each id's coordinator state (an unknown id: `UnknownTransactionalId`).
    pub async fn describe_transactions(
        &self,
        ids: Vec<String>,
    ) -> Vec<(String, Result<TxnDescription, EngineError>)> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let described = self.describe_one(&id).await;
            out.push((id, described));
        }
        out
    }

    async fn describe_one(&self, id: &str) -> Result<TxnDescription, EngineError> {
        check_id(id)?;
        let owner = self.owner(Object::Transaction(id))?;
        let id = id.to_string();
        let job = move |s: Rc<Shard>| async move {
            let c = coordinator(&s)?;
            let meta = c.log.get(&id).ok_or_else(|| {
                EngineError::UnknownTransactionalId(format!("transactional id '{id}' is not known"))
            })?;
            Ok(describe(&id, &meta))
        };
        self.on_owner(owner, CallClass::Client, job).await
    }

    /// Every transactional id of every shard, filtered by state and producer id when
    /// the filters are not empty.
    pub async fn list_transactions(
        &self,
        states: Vec<TxnState>,
        producer_ids: Vec<i64>,
    ) -> Result<Vec<TxnListing>, EngineError> {
        let mut all = Vec::new();
        for shard in 0..self.shard_count() {
            let (states, producer_ids) = (states.clone(), producer_ids.clone());
            let job = move |s: Rc<Shard>| async move {
                let c = coordinator(&s)?;
                Ok(c.log
                    .all()
                    .into_iter()
                    .map(|(id, m)| TxnListing {
                        transactional_id: id,
                        producer_id: m.producer_id,
                        state: txn_state(m.state),
                    })
                    .filter(|l| states.is_empty() || states.contains(&l.state))
                    .filter(|l| producer_ids.is_empty() || producer_ids.contains(&l.producer_id))
                    .collect::<Vec<_>>())
            };
            all.extend(self.on_owner(shard, CallClass::Client, job).await?);
        }
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(all)
    }

    /// Whether an open or committing transaction holds offsets for `group` (added by
    /// AddOffsetsToTxn, not yet applied): KIP-447's unstable offsets, for OffsetFetch
    /// with `require_stable`. One call per shard, whatever the number of transactions.
    pub async fn txn_offsets_pending(&self, group: &str) -> Result<bool, EngineError> {
        for shard in 0..self.shard_count() {
            let group = group.to_string();
            let job = move |s: Rc<Shard>| async move {
                let c = coordinator(&s)?;
                let pending = |_: &str, m: &TxnMeta| {
                    matches!(m.state, TxnStatus::Ongoing | TxnStatus::PrepareCommit)
                        && m.groups.contains(&group)
                };
                Ok(c.log.any(pending))
            };
            if self.on_owner(shard, CallClass::Client, job).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A committed transaction's offsets, on the group's shard, durably.
    pub(crate) async fn commit_txn_offsets(
        &self,
        group: &str,
        offsets: Vec<PendingOffset>,
    ) -> Result<(), EngineError> {
        let owner = self.owner(Object::Group(group))?;
        let group = group.to_string();
        let offsets: Vec<CommittedOffset> = offsets
            .into_iter()
            .map(|o| CommittedOffset {
                topic: o.topic,
                partition: o.partition,
                offset: o.offset,
                metadata: o.metadata,
            })
            .collect();
        let job = move |s: Rc<Shard>| async move {
            super::groups::commit_transactional(&s, &group, offsets).await
        };
        self.on_owner(owner, CallClass::Internal, job).await
    }

    /// Appends a transaction marker to one partition, on its shard, durably.
    pub async fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: Marker,
    ) -> Result<(), EngineError> {
        let owner = self.owner(Object::Partition { topic, partition })?;
        let topic = topic.to_string();
        let job = move |s: Rc<Shard>| async move {
            partitions::write_marker(&s, &topic, partition, marker).await
        };
        self.on_owner(owner, CallClass::Internal, job).await
    }

    /// The producers one partition keeps state for (Kafka's DescribeProducers).
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerDescription>, EngineError> {
        let owner = self.owner(Object::Partition { topic, partition })?;
        let topic = topic.to_string();
        let job = move |s: Rc<Shard>| async move {
            partitions::describe_producers(&s, &topic, partition)
        };
        self.on_owner(owner, CallClass::Client, job).await
    }
}
