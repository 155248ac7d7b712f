//! One transactional id's state machine, pure: each function takes the current state
//! and `now` (Unix ms) and returns the next state, or the error the client sees.
//! Nothing here writes; the caller logs the state it gets back before acting on it.
//!
//! ```text
//! (none) --init--> Empty --add--> Ongoing --end--> PrepareCommit --complete--> CompleteCommit
//!                                   |                PrepareAbort  --complete--> CompleteAbort
//!                                   +--init / timeout / recovery: fence_abort (epoch + 1)--> PrepareAbort
//! Empty / Complete* --add--> Ongoing (a new transaction)
//! Empty / Complete* --init--> Empty (epoch + 1; a new producer id once the epoch is spent)
//! ```

use super::{
    PendingOffset, TxnError, TxnMeta, TxnStatus, GROUPS_PER_TXN_MAX, OFFSETS_PER_TXN_MAX,
    OFFSET_METADATA_MAX_BYTES, PARTITIONS_PER_TXN_MAX, TOPIC_NAME_MAX_BYTES,
    TRANSACTIONAL_ID_EXPIRATION_MS,
};
use std::collections::{BTreeMap, BTreeSet};

/// What InitProducerId does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// A producer id must be allocated first; then call [`init`] again with it.
    NeedProducerId,
    /// The open transaction is aborted first: this is its PrepareAbort (epoch bumped,
    /// fencing the old producer). Log it, write its markers, complete it, then call
    /// [`init`] again without the caller's producer id (already checked).
    AbortFirst(TxnMeta),
    /// The id's new state: log it and answer its producer id and epoch.
    Ready(TxnMeta),
}

/// What EndTxn does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStep {
    /// Already done (a client retrying an end that completed): answer OK.
    Done,
    /// The decision: log it, write the markers (and offsets), then [`complete`].
    Prepare(TxnMeta),
}

/// InitProducerId's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitArgs {
    pub timeout_ms: i32,
    /// The broker's largest transaction timeout.
    pub max_timeout_ms: i32,
    /// -1 from a fresh client; the current id from one bumping its epoch (KIP-360).
    pub producer_id: i64,
    pub epoch: i16,
    /// A producer id allocated after [`InitStep::NeedProducerId`].
    pub fresh_producer_id: Option<i64>,
    /// The epoch this InitProducerId replaces when an abort it started has already
    /// bumped the id's epoch (recorded as the new state's `last_epoch`).
    pub replaces_epoch: Option<i16>,
}

/// The producer's next epoch is spent past this: a new producer id is taken instead
/// (Kafka's `isEpochExhausted`: a fencing abort must still be able to add one).
const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

fn concurrent(id: &str) -> TxnError {
    TxnError::ConcurrentTransactions(format!(
        "transactional id '{id}' is completing a transaction; retry"
    ))
}

/// InitProducerId for `id` (`meta`: its state, if known).
pub fn init(
    id: &str,
    meta: Option<&TxnMeta>,
    args: InitArgs,
    now: i64,
) -> Result<InitStep, TxnError> {
    if args.timeout_ms <= 0 || args.timeout_ms > args.max_timeout_ms {
        return Err(TxnError::InvalidTransactionTimeout(format!(
            "transaction timeout {} ms is not within 1..={} ms (the broker's \
             --max-transaction-timeout-ms)",
            args.timeout_ms, args.max_timeout_ms
        )));
    }
    let Some(meta) = meta else {
        return Ok(match args.fresh_producer_id {
            Some(pid) => InitStep::Ready(fresh(pid, args.timeout_ms, now)),
            None => InitStep::NeedProducerId,
        });
    };
    if meta.state.is_preparing() {
        return Err(concurrent(id));
    }
    let retry = args.producer_id == meta.producer_id
        && args.epoch >= 0
        && args.epoch == meta.last_epoch
        && meta.state != TxnStatus::Ongoing;
    if retry {
        // A KIP-360 bump whose answer the client did not get: the same answer.
        return Ok(InitStep::Ready(meta.clone()));
    }
    if args.producer_id >= 0 && (args.producer_id, args.epoch) != (meta.producer_id, meta.epoch) {
        return Err(TxnError::ProducerFenced(format!(
            "producer {}/{} of transactional id '{id}' is not its current one ({}/{})",
            args.producer_id, args.epoch, meta.producer_id, meta.epoch
        )));
    }
    if meta.state == TxnStatus::Ongoing {
        return Ok(match fence_abort(meta, now) {
            Some(abort) => InitStep::AbortFirst(abort),
            None => return Err(concurrent(id)),
        });
    }
    if meta.epoch >= EPOCH_EXHAUSTED {
        return Ok(match args.fresh_producer_id {
            Some(pid) => InitStep::Ready(fresh(pid, args.timeout_ms, now)),
            None => InitStep::NeedProducerId,
        });
    }
    let mut next = cleared(meta, TxnStatus::Empty, now);
    next.epoch = meta.epoch + 1;
    next.last_epoch = args.replaces_epoch.unwrap_or(meta.epoch);
    next.timeout_ms = args.timeout_ms;
    Ok(InitStep::Ready(next))
}

fn fresh(producer_id: i64, timeout_ms: i32, now: i64) -> TxnMeta {
    TxnMeta {
        producer_id,
        epoch: 0,
        timeout_ms,
        state: TxnStatus::Empty,
        partitions: BTreeSet::new(),
        groups: BTreeSet::new(),
        pending: BTreeMap::new(),
        start_ms: -1,
        last_update_ms: now,
        last_epoch: -1,
    }
}

/// `meta` in `state` with no transaction's contents.
fn cleared(meta: &TxnMeta, state: TxnStatus, now: i64) -> TxnMeta {
    TxnMeta {
        state,
        partitions: BTreeSet::new(),
        groups: BTreeSet::new(),
        pending: BTreeMap::new(),
        start_ms: -1,
        last_update_ms: now,
        ..meta.clone()
    }
}

/// The id's state if `producer_id`/`epoch` may act on it now.
pub fn check_caller<'a>(
    id: &str,
    meta: Option<&'a TxnMeta>,
    producer_id: i64,
    epoch: i16,
) -> Result<&'a TxnMeta, TxnError> {
    let unknown = || {
        TxnError::UnknownTransactionalId(format!(
            "transactional id '{id}' is not known with producer id {producer_id} \
             (call InitProducerId first)"
        ))
    };
    let meta = meta.ok_or_else(unknown)?;
    if meta.producer_id != producer_id {
        return Err(unknown());
    }
    if meta.epoch != epoch {
        return Err(TxnError::ProducerFenced(format!(
            "producer epoch {epoch} of transactional id '{id}' is fenced by epoch {}",
            meta.epoch
        )));
    }
    if meta.state.is_preparing() {
        return Err(concurrent(id));
    }
    Ok(meta)
}

/// `meta` with a transaction open: itself when Ongoing, a new one otherwise.
fn begun(meta: &TxnMeta, now: i64) -> TxnMeta {
    if meta.state == TxnStatus::Ongoing {
        let mut next = meta.clone();
        next.last_update_ms = now;
        return next;
    }
    let mut next = cleared(meta, TxnStatus::Ongoing, now);
    next.start_ms = now;
    next
}

/// AddPartitionsToTxn (begins a transaction when none is open). `None`: nothing
/// changes (every partition is already in the open transaction).
pub fn add_partitions(
    meta: &TxnMeta,
    partitions: &[(String, i32)],
    now: i64,
) -> Result<Option<TxnMeta>, TxnError> {
    if let Some((topic, _)) = partitions
        .iter()
        .find(|(t, _)| t.is_empty() || t.len() > TOPIC_NAME_MAX_BYTES)
    {
        return Err(TxnError::InvalidRequest(format!(
            "topic name of {} bytes (1..={TOPIC_NAME_MAX_BYTES})",
            topic.len()
        )));
    }
    if meta.state == TxnStatus::Ongoing && partitions.iter().all(|p| meta.partitions.contains(p)) {
        return Ok(None);
    }
    let mut next = begun(meta, now);
    next.partitions.extend(partitions.iter().cloned());
    if next.partitions.len() > PARTITIONS_PER_TXN_MAX {
        return Err(TxnError::InvalidRequest(format!(
            "a transaction spans at most {PARTITIONS_PER_TXN_MAX} partitions"
        )));
    }
    Ok(Some(next))
}

/// AddOffsetsToTxn. `None`: the group is already in the open transaction.
pub fn add_group(meta: &TxnMeta, group: &str, now: i64) -> Result<Option<TxnMeta>, TxnError> {
    if meta.state == TxnStatus::Ongoing && meta.groups.contains(group) {
        return Ok(None);
    }
    let mut next = begun(meta, now);
    next.groups.insert(group.to_string());
    if next.groups.len() > GROUPS_PER_TXN_MAX {
        return Err(TxnError::InvalidRequest(format!(
            "a transaction commits offsets of at most {GROUPS_PER_TXN_MAX} groups"
        )));
    }
    Ok(Some(next))
}

/// TxnOffsetCommit: `offsets` replace earlier pending ones of the same partitions.
pub fn add_offsets(
    id: &str,
    meta: &TxnMeta,
    group: &str,
    offsets: Vec<PendingOffset>,
    now: i64,
) -> Result<TxnMeta, TxnError> {
    if meta.state != TxnStatus::Ongoing || !meta.groups.contains(group) {
        return Err(TxnError::InvalidTxnState(format!(
            "group '{group}' is not in the open transaction of '{id}' (AddOffsetsToTxn first)"
        )));
    }
    if let Some(o) = offsets
        .iter()
        .find(|o| o.metadata.len() > OFFSET_METADATA_MAX_BYTES)
    {
        return Err(TxnError::InvalidRequest(format!(
            "offset metadata of {} bytes (at most {OFFSET_METADATA_MAX_BYTES})",
            o.metadata.len()
        )));
    }
    let mut next = meta.clone();
    next.last_update_ms = now;
    let held = next.pending.entry(group.to_string()).or_default();
    let mut by_partition: BTreeMap<(String, i32), PendingOffset> = held
        .drain(..)
        .map(|o| ((o.topic.clone(), o.partition), o))
        .collect();
    for o in offsets {
        by_partition.insert((o.topic.clone(), o.partition), o);
    }
    held.extend(by_partition.into_values());
    let total: usize = next.pending.values().map(Vec::len).sum();
    if total > OFFSETS_PER_TXN_MAX {
        return Err(TxnError::InvalidRequest(format!(
            "a transaction commits at most {OFFSETS_PER_TXN_MAX} offsets"
        )));
    }
    Ok(next)
}

/// EndTxn: the decision to log, or `Done` for a retry of one that completed.
pub fn end(id: &str, meta: &TxnMeta, commit: bool, now: i64) -> Result<EndStep, TxnError> {
    match (meta.state, commit) {
        (TxnStatus::Ongoing, _) => {
            let mut next = meta.clone();
            next.last_update_ms = now;
            if commit {
                next.state = TxnStatus::PrepareCommit;
            } else {
                next.state = TxnStatus::PrepareAbort;
                next.pending.clear();
            }
            Ok(EndStep::Prepare(next))
        }
        (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => Ok(EndStep::Done),
        (state, _) => Err(TxnError::InvalidTxnState(format!(
            "transactional id '{id}' has no open transaction to {} (it is {state:?})",
            if commit { "commit" } else { "abort" }
        ))),
    }
}

/// The completed state after a prepared end's markers (and offsets) are written;
/// `None` when `meta` is not preparing.
pub fn complete(meta: &TxnMeta, now: i64) -> Option<TxnMeta> {
    let state = match meta.state {
        TxnStatus::PrepareCommit => TxnStatus::CompleteCommit,
        TxnStatus::PrepareAbort => TxnStatus::CompleteAbort,
        _ => return None,
    };
    Some(cleared(meta, state, now))
}

/// The abort of an open transaction by the broker (InitProducerId of a newer
/// instance, timeout, recovery): PrepareAbort with the epoch bumped, so the old
/// instance is fenced. `None` when no transaction is open.
pub fn fence_abort(meta: &TxnMeta, now: i64) -> Option<TxnMeta> {
    if meta.state != TxnStatus::Ongoing {
        return None;
    }
    let mut next = meta.clone();
    next.state = TxnStatus::PrepareAbort;
    next.epoch = meta.epoch.saturating_add(1);
    next.pending.clear();
    next.last_update_ms = now;
    Some(next)
}

/// An open transaction older than its timeout.
pub fn timed_out(meta: &TxnMeta, now: i64) -> bool {
    meta.state == TxnStatus::Ongoing && now - meta.start_ms > i64::from(meta.timeout_ms)
}

/// An id with no transaction under way, idle past Kafka's expiration.
pub fn expired(meta: &TxnMeta, now: i64) -> bool {
    matches!(
        meta.state,
        TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
    ) && now - meta.last_update_ms > TRANSACTIONAL_ID_EXPIRATION_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: i32 = 900_000;

    fn args(producer_id: i64, epoch: i16, fresh: Option<i64>) -> InitArgs {
        InitArgs {
            timeout_ms: 60_000,
            max_timeout_ms: MAX,
            producer_id,
            epoch,
            fresh_producer_id: fresh,
            replaces_epoch: None,
        }
    }

    fn ready(step: Result<InitStep, TxnError>) -> TxnMeta {
        match step {
            Ok(InitStep::Ready(m)) => m,
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    fn initialised() -> TxnMeta {
        assert_eq!(
            init("t", None, args(-1, -1, None), 1),
            Ok(InitStep::NeedProducerId)
        );
        ready(init("t", None, args(-1, -1, Some(7)), 1))
    }

    fn ongoing() -> TxnMeta {
        let m = initialised();
        add_partitions(&m, &[("a".into(), 0), ("b".into(), 1)], 10)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("added"))
    }

    fn offset(partition: i32, offset: i64) -> PendingOffset {
        PendingOffset {
            topic: "in".into(),
            partition,
            offset,
            metadata: String::new(),
        }
    }

    #[test]
    fn init_allocates_then_bumps_the_epoch() {
        let m = initialised();
        assert_eq!((m.producer_id, m.epoch, m.state), (7, 0, TxnStatus::Empty));
        let again = ready(init("t", Some(&m), args(-1, -1, None), 2));
        assert_eq!((again.producer_id, again.epoch), (7, 1));
        // KIP-360: the current producer bumps its own epoch; an older one (before
        // the epoch the bump replaced) is fenced, and so is another producer id.
        let bumped = ready(init("t", Some(&again), args(7, 1, None), 3));
        assert_eq!(bumped.epoch, 2);
        assert!(matches!(
            init("t", Some(&bumped), args(7, 0, None), 4),
            Err(TxnError::ProducerFenced(_))
        ));
        assert!(matches!(
            init("t", Some(&bumped), args(8, 2, None), 4),
            Err(TxnError::ProducerFenced(_))
        ));
    }

    #[test]
    fn a_retried_kip360_bump_gets_the_same_answer_and_older_epochs_stay_fenced() {
        let m = initialised();
        let bumped = ready(init("t", Some(&m), args(7, 0, None), 2));
        assert_eq!((bumped.epoch, bumped.last_epoch), (1, 0));
        // The client never got the answer and asks again with the epoch it had.
        let retried = ready(init("t", Some(&bumped), args(7, 0, None), 3));
        assert_eq!(retried, bumped);
        let again = ready(init("t", Some(&bumped), args(7, 1, None), 4));
        assert_eq!((again.epoch, again.last_epoch), (2, 1));
        assert!(matches!(
            init("t", Some(&again), args(7, 0, None), 5),
            Err(TxnError::ProducerFenced(_))
        ));
        // After an abort that already bumped the epoch, the epoch before it is kept.
        let open = add_partitions(&again, &[("a".into(), 0)], 6)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("added"));
        let abort = match init("t", Some(&open), args(7, 2, None), 7) {
            Ok(InitStep::AbortFirst(a)) => a,
            other => panic!("{other:?}"),
        };
        let aborted = complete(&abort, 8).unwrap_or_else(|| panic!("completes"));
        let after = InitArgs {
            replaces_epoch: Some(2),
            ..args(-1, -1, None)
        };
        let next = ready(init("t", Some(&aborted), after, 9));
        assert_eq!((next.epoch, next.last_epoch), (4, 2));
        assert_eq!(ready(init("t", Some(&next), args(7, 2, None), 10)), next);
    }

    #[test]
    fn a_spent_epoch_takes_a_new_producer_id() {
        let mut m = initialised();
        m.epoch = i16::MAX - 1;
        assert_eq!(
            init("t", Some(&m), args(-1, -1, None), 2),
            Ok(InitStep::NeedProducerId)
        );
        let next = ready(init("t", Some(&m), args(-1, -1, Some(9)), 2));
        assert_eq!((next.producer_id, next.epoch), (9, 0));
    }

    #[test]
    fn timeouts_outside_the_broker_maximum_are_refused() {
        for timeout_ms in [0, -5, MAX + 1] {
            let a = InitArgs {
                timeout_ms,
                ..args(-1, -1, None)
            };
            assert!(matches!(
                init("t", None, a, 1),
                Err(TxnError::InvalidTransactionTimeout(_))
            ));
        }
    }

    #[test]
    fn init_with_an_open_transaction_aborts_it_with_the_epoch_bumped() {
        let m = ongoing();
        let abort = match init("t", Some(&m), args(-1, -1, None), 20) {
            Ok(InitStep::AbortFirst(a)) => a,
            other => panic!("expected AbortFirst, got {other:?}"),
        };
        assert_eq!(abort.state, TxnStatus::PrepareAbort);
        assert_eq!(abort.epoch, m.epoch + 1);
        assert_eq!(
            abort.partitions, m.partitions,
            "markers go to every partition"
        );
        // While it completes, init and every other call wait.
        assert!(matches!(
            init("t", Some(&abort), args(-1, -1, None), 21),
            Err(TxnError::ConcurrentTransactions(_))
        ));
        assert!(matches!(
            check_caller("t", Some(&abort), 7, abort.epoch),
            Err(TxnError::ConcurrentTransactions(_))
        ));
        let done = complete(&abort, 22).unwrap_or_else(|| panic!("completes"));
        assert_eq!(done.state, TxnStatus::CompleteAbort);
        let next = ready(init("t", Some(&done), args(-1, -1, None), 23));
        assert_eq!(next.epoch, m.epoch + 2);
        // The instance that left the transaction open is fenced.
        assert!(matches!(
            check_caller("t", Some(&next), 7, m.epoch),
            Err(TxnError::ProducerFenced(_))
        ));
    }

    #[test]
    fn callers_are_checked_by_id_producer_and_epoch() {
        let m = initialised();
        assert!(matches!(
            check_caller("t", None, 7, 0),
            Err(TxnError::UnknownTransactionalId(_))
        ));
        assert!(matches!(
            check_caller("t", Some(&m), 8, 0),
            Err(TxnError::UnknownTransactionalId(_))
        ));
        assert!(matches!(
            check_caller("t", Some(&m), 7, 3),
            Err(TxnError::ProducerFenced(_))
        ));
        assert_eq!(check_caller("t", Some(&m), 7, 0), Ok(&m));
    }

    #[test]
    fn adding_partitions_begins_a_transaction_and_repeats_change_nothing() {
        let m = ongoing();
        assert_eq!(m.state, TxnStatus::Ongoing);
        assert_eq!(m.start_ms, 10);
        assert_eq!(add_partitions(&m, &[("a".into(), 0)], 11), Ok(None));
        let more = add_partitions(&m, &[("c".into(), 2)], 12)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("added"));
        assert_eq!(more.partitions.len(), 3);
        assert_eq!(more.start_ms, 10, "the transaction's start stays");
        let too_many: Vec<(String, i32)> = (0..=PARTITIONS_PER_TXN_MAX as i32)
            .map(|p| ("x".to_string(), p))
            .collect();
        assert!(matches!(
            add_partitions(&m, &too_many, 13),
            Err(TxnError::InvalidRequest(_))
        ));
    }

    #[test]
    fn offsets_need_their_group_added_and_replace_per_partition() {
        let m = ongoing();
        assert!(matches!(
            add_offsets("t", &m, "g", vec![offset(0, 5)], 11),
            Err(TxnError::InvalidTxnState(_))
        ));
        let with_group = add_group(&m, "g", 11)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("group added"));
        assert_eq!(add_group(&with_group, "g", 12), Ok(None));
        let once = add_offsets("t", &with_group, "g", vec![offset(0, 5), offset(1, 9)], 12)
            .unwrap_or_else(|e| panic!("{e}"));
        let twice =
            add_offsets("t", &once, "g", vec![offset(0, 6)], 13).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(twice.pending["g"], vec![offset(0, 6), offset(1, 9)]);
        let mut big = offset(2, 1);
        big.metadata = "x".repeat(OFFSET_METADATA_MAX_BYTES + 1);
        assert!(matches!(
            add_offsets("t", &twice, "g", vec![big], 14),
            Err(TxnError::InvalidRequest(_))
        ));
        // An abort drops them; a commit keeps them until it completes.
        let abort = match end("t", &twice, false, 15) {
            Ok(EndStep::Prepare(a)) => a,
            other => panic!("{other:?}"),
        };
        assert!(abort.pending.is_empty());
        let commit = match end("t", &twice, true, 15) {
            Ok(EndStep::Prepare(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(commit.pending["g"].len(), 2);
        let done = complete(&commit, 16).unwrap_or_else(|| panic!("completes"));
        assert!(done.pending.is_empty() && done.partitions.is_empty());
    }

    #[test]
    fn end_commits_or_aborts_and_a_retry_of_a_completed_end_is_ok() {
        let m = ongoing();
        let prepared = match end("t", &m, true, 20) {
            Ok(EndStep::Prepare(p)) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(prepared.state, TxnStatus::PrepareCommit);
        assert_eq!(
            prepared.epoch, m.epoch,
            "a client's own end keeps its epoch"
        );
        let done = complete(&prepared, 21).unwrap_or_else(|| panic!("completes"));
        assert_eq!(done.state, TxnStatus::CompleteCommit);
        assert_eq!(done.start_ms, -1);
        assert_eq!(end("t", &done, true, 22), Ok(EndStep::Done));
        assert!(matches!(
            end("t", &done, false, 22),
            Err(TxnError::InvalidTxnState(_))
        ));
        let empty = initialised();
        assert!(matches!(
            end("t", &empty, true, 22),
            Err(TxnError::InvalidTxnState(_))
        ));
        assert_eq!(complete(&empty, 22), None);
        // A next transaction starts afresh from a completed one.
        let next = add_partitions(&done, &[("z".into(), 0)], 30)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("added"));
        assert_eq!(next.partitions.len(), 1);
        assert_eq!(next.start_ms, 30);
    }

    #[test]
    fn a_transaction_past_its_timeout_is_aborted_with_the_epoch_bumped() {
        let m = ongoing();
        assert!(!timed_out(&m, 10 + 60_000));
        assert!(timed_out(&m, 10 + 60_001));
        let abort = fence_abort(&m, 10 + 60_001).unwrap_or_else(|| panic!("aborts"));
        assert_eq!(abort.state, TxnStatus::PrepareAbort);
        assert_eq!(abort.epoch, m.epoch + 1);
        assert!(!timed_out(&abort, i64::MAX / 2));
        assert!(matches!(
            check_caller("t", Some(&abort), 7, m.epoch),
            Err(TxnError::ProducerFenced(_))
        ));
        assert_eq!(fence_abort(&initialised(), 5), None);
    }

    #[test]
    fn only_idle_ids_without_a_transaction_expire() {
        let m = initialised();
        assert!(!expired(&m, 1 + TRANSACTIONAL_ID_EXPIRATION_MS));
        assert!(expired(&m, 2 + TRANSACTIONAL_ID_EXPIRATION_MS));
        assert!(!expired(&ongoing(), i64::MAX / 2));
    }
}
