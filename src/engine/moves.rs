//! Message move tasks (SQS's StartMessageMoveTask): messages of a queue, usually a
//! dead-letter queue, moved to a destination queue, or each back to the queue it was
//! dead-lettered from (its `x-death-queue` header), at a bounded rate.
//!
//! A task runs on the source queue's shard and is kept there, beside the open queue
//! (`MoveTasks`, the last `MOVE_TASKS_KEPT`), and in the source's journal: the whole
//! list at each change (`Event::MoveTasks`), on disk before a start or a cancel is
//! answered, after each batch without waiting. After a restart the tasks are listed
//! again and one that was running resumes (from the queue timer's first tick); one
//! that was cancelling is cancelled. Its count of messages moved may lag by the last
//! batch after a kill -9.
//!
//! Each message is leased from the source, published to its destination with the
//! origin key `move:{source id}/{message id}`, then acked: a crash between the two
//! leaves the message in the source (leases end with the broker run) while the
//! destination remembers the origin for `ORIGIN_WINDOW_MS`, so the resumed task moves
//! the message without a second copy. The destination's memory of origins outlives the
//! restart too: it is rebuilt from the origin each publish record carries (the record
//! is the journal's newest, so not yet reclaimed). The task moves at most the messages
//! ready when it started (ApproximateNumberOfMessagesToMove) and ends when the source
//! has none ready.

use super::error::EngineError;
use super::queues::{self, OpenQueue};
use super::shard::Shard;
use super::types::{LeaseRef, PublishSpec, ReceiveArgs};
use super::Engine;
pub use peregrine_shards::queues::{MoveStatus, MoveTask, MoveTasks, MOVE_TASKS_KEPT};
use std::rc::Rc;

/// How long a message being moved is leased: far longer than one publish and ack.
const MOVE_LEASE_MS: u64 = 30_000;
/// Most messages leased at once by a task.
const MOVE_BATCH: u32 = 10;
/// The header dead-lettering gives a message: the queue it left.
const DEATH_QUEUE_HEADER: &str = "x-death-queue";
/// Headers dead-lettering adds; a message moved back leaves them behind.
const DEATH_HEADER_PREFIX: &str = "x-death-";

/// `Engine::start_move` on the source's shard: registers the task, journals it (on
/// disk before it is answered) and spawns it.
pub async fn start(
    shard: &Rc<Shard>,
    source: &str,
    destination: Option<String>,
    max_per_second: Option<u32>,
) -> Result<MoveTask, EngineError> {
    let q = shard.queue(source)?;
    let to_move = queues::stats(shard, source)?.ready;
    let task = MoveTask {
        id: 0,
        status: MoveStatus::Running,
        destination,
        max_per_second: max_per_second.filter(|r| *r > 0),
        moved: 0,
        to_move,
        failure: None,
        started_ms: crate::time::now_ms(),
    };
    let before = q.moves().borrow().clone();
    let task = q.moves().borrow_mut().start(task).map_err(|running| {
        EngineError::InvalidRequest(format!(
            "a message move task (started at {} ms) is already running on this queue: cancel it or wait for it to end",
            running.started_ms
        ))
    })?;
    // While this waits, the task is listed and a second start is refused.
    if let Err(e) = q.journal_moves(true).await {
        *q.moves().borrow_mut() = before;
        return Err(e);
    }
    spawn(shard, source, task.id);
    Ok(task)
}

fn spawn(shard: &Rc<Shard>, source: &str, id: u64) {
    let (shard, name) = (shard.clone(), source.to_string());
    crate::runtime::spawn_local(async move { run(shard, name, id).await }).detach();
}

/// Runs again the tasks that were running when the broker stopped (the queue timer
/// calls it once for a queue opened from its journal).
pub fn resume(shard: &Rc<Shard>, q: &OpenQueue) {
    for id in q.moves().borrow().running_ids() {
        tracing::info!(queue = %q.name(), task = id, "resuming a message move task");
        spawn(shard, q.name(), id);
    }
}

/// `Engine::cancel_move`: the task, now cancelling (it stops before its next message;
/// on disk before it is answered); `None` when no running task has this id.
pub async fn cancel(
    shard: &Rc<Shard>,
    source: &str,
    id: u64,
) -> Result<Option<MoveTask>, EngineError> {
    let q = shard.queue(source)?;
    let task = {
        let mut moves = q.moves().borrow_mut();
        let Some(task) = moves
            .get_mut(id)
            .filter(|t| t.status == MoveStatus::Running)
        else {
            return Ok(None);
        };
        task.status = MoveStatus::Cancelling;
        task.clone()
    };
    if let Err(e) = q.journal_moves(true).await {
        let mut moves = q.moves().borrow_mut();
        if let Some(t) = moves
            .get_mut(id)
            .filter(|t| t.status == MoveStatus::Cancelling)
        {
            t.status = MoveStatus::Running;
        }
        return Err(e);
    }
    Ok(Some(task))
}

pub fn list(shard: &Rc<Shard>, source: &str) -> Result<Vec<MoveTask>, EngineError> {
    Ok(shard.queue(source)?.moves().borrow().list())
}

async fn run(shard: Rc<Shard>, source: String, id: u64) {
    let ended = drive(&shard, &source, id).await;
    let Ok(q) = shard.queue(&source) else {
        return; // The queue went, and its tasks with it.
    };
    {
        let mut moves = q.moves().borrow_mut();
        let Some(task) = moves.get_mut(id) else {
            return;
        };
        match ended {
            Ok(()) if task.status == MoveStatus::Cancelling => task.status = MoveStatus::Cancelled,
            Ok(()) => task.status = MoveStatus::Completed,
            Err(reason) => {
                tracing::warn!(queue = %source, "message move task failed: {reason}");
                task.status = MoveStatus::Failed;
                task.failure = Some(reason);
            }
        }
    }
    // Not waited for: lost in a crash, the task runs again at the restart and ends
    // at once (or, cancelling, is cancelled).
    if let Err(e) = q.journal_moves(false).await {
        tracing::warn!(queue = %source, "journaling the end of a message move task: {e}");
    }
}

/// Moves messages until the task is cancelled, has moved what it set out to, or finds
/// none ready; `Err` says why it failed.
async fn drive(shard: &Rc<Shard>, source: &str, id: u64) -> Result<(), String> {
    let engine = Engine::new(shard.clone());
    // Paced from when this run began (a resumed task does not rush to catch up).
    let mut paced: Option<(i64, u64)> = None;
    loop {
        let q = shard.queue(source).map_err(|e| e.to_string())?;
        let Some(task) = q.moves().borrow().get(id).cloned() else {
            return Ok(());
        };
        if task.status != MoveStatus::Running || task.moved >= task.to_move {
            return Ok(());
        }
        let (from_ms, from_moved) = *paced.get_or_insert((crate::time::now_ms(), task.moved));
        let mut batch =
            MOVE_BATCH.min(u32::try_from(task.to_move - task.moved).unwrap_or(MOVE_BATCH));
        if let Some(rate) = task.max_per_second {
            // Message n of this run goes no earlier than n / rate seconds in.
            let n = task.moved.saturating_sub(from_moved);
            let due = from_ms + i64::try_from(n * 1000 / u64::from(rate)).unwrap_or(i64::MAX);
            let wait = due - crate::time::now_ms();
            if wait > 0 {
                crate::runtime::sleep(std::time::Duration::from_millis(wait as u64)).await;
                continue;
            }
            batch = batch.min(rate);
        }
        let args = ReceiveArgs {
            max: batch,
            wait_ms: 0,
            auto_ack: false,
            visibility_ms: Some(MOVE_LEASE_MS),
            first_receive: false,
        };
        let got = queues::receive(shard, source, args)
            .await
            .map_err(|e| e.to_string())?;
        if got.messages.ids.is_empty() {
            return Ok(());
        }
        let moved = move_each(&engine, shard, source, q.id, &task, &got).await?;
        if let Some(t) = q.moves().borrow_mut().get_mut(id) {
            t.moved += moved;
        }
        // The progress, not waited for (the next ack's write takes it to disk): a
        // journal that refuses it refuses that ack too, which fails the task.
        if let Err(e) = q.journal_moves(false).await {
            tracing::debug!(queue = %source, "journaling a message move task's progress: {e}");
        }
    }
}

/// Publishes then acks each received message; answers how many moved.
async fn move_each(
    engine: &Engine,
    shard: &Rc<Shard>,
    source: &str,
    source_id: u64,
    task: &MoveTask,
    got: &super::types::Received,
) -> Result<u64, String> {
    let d = &got.messages;
    let mut extras = d.extras.iter().peekable();
    let mut at = 0usize;
    let mut moved = 0;
    for (i, (&message_id, &handle)) in d.ids.iter().zip(&d.handles).enumerate() {
        let len = d.lens.get(i).copied().unwrap_or(0) as usize;
        let body = got.bodies.slice(at..at + len);
        at += len;
        let extra = match extras.peek() {
            Some(x) if x.index as usize == i => extras.next(),
            _ => None,
        };
        let headers = extra.map_or(&[][..], |x| x.headers.as_slice());
        let destination = match &task.destination {
            Some(d) => d.clone(),
            None => headers
                .iter()
                .find(|(k, _)| k == DEATH_QUEUE_HEADER)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    format!("message {message_id} names no queue it came from ({DEATH_QUEUE_HEADER}): give a destination")
                })?,
        };
        let spec = PublishSpec {
            headers: headers
                .iter()
                .filter(|(k, _)| task.destination.is_some() || !k.starts_with(DEATH_HEADER_PREFIX))
                .cloned()
                .collect(),
            group_id: extra.and_then(|x| x.group_id.clone()),
            durable: true,
            origin: Some(format!("move:{source_id}/{message_id}")),
            ..PublishSpec::default()
        };
        engine
            .publish(&destination, spec, body)
            .await
            .map_err(|e| format!("moving message {message_id} to {destination}: {e}"))?;
        let lease = LeaseRef { handle, message_id };
        let acked = queues::ack_leases(shard, source, &[lease])
            .await
            .map_err(|e| e.to_string())?;
        // A lease that ended meanwhile leaves the message to be moved again: the
        // destination keeps one copy (its origin key).
        moved += u64::from(acked.first() == Some(&true));
    }
    Ok(moved)
}
