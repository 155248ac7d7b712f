//! Message move tasks (SQS's StartMessageMoveTask): messages of a queue, usually a
//! dead-letter queue, moved to a destination queue, or each back to the queue it was
//! dead-lettered from (its `x-death-queue` header), at a bounded rate.
//!
//! A task runs on the source queue's shard and is kept there, beside the open queue
//! (`MoveTasks`, the last `MOVE_TASKS_KEPT`). Each message is leased from the source,
//! published to its destination with the origin key `move:{source id}/{message id}`,
//! then acked: a crash between the two leaves the message in the source (its lease
//! ends with the broker run) while the destination remembers the origin for
//! `ORIGIN_WINDOW_MS`, so a task started again within it moves the message without a
//! second copy. Tasks are not journaled: after a restart none runs and none is listed.
//! The task moves at most the messages ready when it started
//! (ApproximateNumberOfMessagesToMove) and ends when the source has none ready.

use super::error::EngineError;
use super::queues;
use super::shard::Shard;
use super::types::{LeaseRef, PublishSpec, ReceiveArgs};
use super::Engine;
use std::collections::VecDeque;
use std::rc::Rc;

/// Tasks one queue keeps for listing (SQS lists the most recent ones).
pub const MOVE_TASKS_KEPT: usize = 10;
/// How long a message being moved is leased: far longer than one publish and ack.
const MOVE_LEASE_MS: u64 = 30_000;
/// Most messages leased at once by a task.
const MOVE_BATCH: u32 = 10;
/// The header dead-lettering gives a message: the queue it left.
const DEATH_QUEUE_HEADER: &str = "x-death-queue";
/// Headers dead-lettering adds; a message moved back leaves them behind.
const DEATH_HEADER_PREFIX: &str = "x-death-";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStatus {
    Running,
    Completed,
    Cancelling,
    Cancelled,
    Failed,
}

impl MoveStatus {
    /// SQS's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveStatus::Running => "RUNNING",
            MoveStatus::Completed => "COMPLETED",
            MoveStatus::Cancelling => "CANCELLING",
            MoveStatus::Cancelled => "CANCELLED",
            MoveStatus::Failed => "FAILED",
        }
    }
}

/// One task as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveTask {
    /// Unique among the queue's tasks in this broker run.
    pub id: u64,
    pub status: MoveStatus,
    /// `None`: each message back to the queue it was dead-lettered from.
    pub destination: Option<String>,
    pub max_per_second: Option<u32>,
    pub moved: u64,
    pub to_move: u64,
    pub failure: Option<String>,
    pub started_ms: i64,
}

/// A queue's tasks, oldest first. Owned by the queue's shard (`OpenQueue`).
#[derive(Debug, Default)]
pub struct MoveTasks {
    tasks: VecDeque<MoveTask>,
    next_id: u64,
}

impl MoveTasks {
    fn running(&self) -> Option<&MoveTask> {
        self.tasks
            .iter()
            .find(|t| matches!(t.status, MoveStatus::Running | MoveStatus::Cancelling))
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut MoveTask> {
        self.tasks.iter_mut().find(|t| t.id == id)
    }

    /// A new running task, unless one runs already.
    fn start(&mut self, mut task: MoveTask) -> Result<MoveTask, EngineError> {
        if let Some(t) = self.running() {
            return Err(EngineError::InvalidRequest(format!(
                "a message move task (started at {} ms) is already running on this queue: cancel it or wait for it to end",
                t.started_ms
            )));
        }
        self.next_id += 1;
        task.id = self.next_id;
        while self.tasks.len() >= MOVE_TASKS_KEPT {
            self.tasks.pop_front();
        }
        self.tasks.push_back(task.clone());
        Ok(task)
    }

    /// Newest first.
    pub fn list(&self) -> Vec<MoveTask> {
        self.tasks.iter().rev().cloned().collect()
    }
}

/// `Engine::start_move` on the source's shard: registers the task and spawns it.
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
    let task = q.moves().borrow_mut().start(task)?;
    let (shard, name, id) = (shard.clone(), source.to_string(), task.id);
    crate::runtime::spawn_local(async move { run(shard, name, id).await }).detach();
    Ok(task)
}

/// `Engine::cancel_move`: the task, now cancelling (it stops before its next message);
/// `None` when no running task has this id.
pub fn cancel(shard: &Rc<Shard>, source: &str, id: u64) -> Result<Option<MoveTask>, EngineError> {
    let q = shard.queue(source)?;
    let mut moves = q.moves().borrow_mut();
    let Some(task) = moves
        .get_mut(id)
        .filter(|t| t.status == MoveStatus::Running)
    else {
        return Ok(None);
    };
    task.status = MoveStatus::Cancelling;
    Ok(Some(task.clone()))
}

pub fn list(shard: &Rc<Shard>, source: &str) -> Result<Vec<MoveTask>, EngineError> {
    Ok(shard.queue(source)?.moves().borrow().list())
}

async fn run(shard: Rc<Shard>, source: String, id: u64) {
    let ended = drive(&shard, &source, id).await;
    let Ok(q) = shard.queue(&source) else {
        return; // The queue went, and its tasks with it.
    };
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

/// Moves messages until the task is cancelled, has moved what it set out to, or finds
/// none ready; `Err` says why it failed.
async fn drive(shard: &Rc<Shard>, source: &str, id: u64) -> Result<(), String> {
    let engine = Engine::new(shard.clone());
    loop {
        let q = shard.queue(source).map_err(|e| e.to_string())?;
        let Some(task) = q
            .moves()
            .borrow()
            .tasks
            .iter()
            .find(|t| t.id == id)
            .cloned()
        else {
            return Ok(());
        };
        if task.status != MoveStatus::Running || task.moved >= task.to_move {
            return Ok(());
        }
        let mut batch =
            MOVE_BATCH.min(u32::try_from(task.to_move - task.moved).unwrap_or(MOVE_BATCH));
        if let Some(rate) = task.max_per_second {
            // Paced from the start: message n goes no earlier than n / rate seconds in.
            let due = task.started_ms
                + i64::try_from(task.moved * 1000 / u64::from(rate)).unwrap_or(i64::MAX);
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
        let mut moves = q.moves().borrow_mut();
        if let Some(t) = moves.get_mut(id) {
            t.moved += moved;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> MoveTask {
        MoveTask {
            id: 0,
            status: MoveStatus::Running,
            destination: None,
            max_per_second: None,
            moved: 0,
            to_move: 1,
            failure: None,
            started_ms: 0,
        }
    }

    #[test]
    fn one_task_runs_at_a_time_and_the_last_ten_are_kept() {
        let mut moves = MoveTasks::default();
        let first = moves.start(task()).expect("first");
        assert!(matches!(
            moves.start(task()),
            Err(EngineError::InvalidRequest(_))
        ));
        for n in 0..MOVE_TASKS_KEPT + 3 {
            if let Some(t) = moves.get_mut(first.id + n as u64) {
                t.status = MoveStatus::Completed;
            }
            moves.start(task()).expect("after the last ended");
            assert!(moves.tasks.len() <= MOVE_TASKS_KEPT);
        }
        let listed = moves.list();
        assert_eq!(listed.len(), MOVE_TASKS_KEPT);
        assert!(listed[0].id > listed[1].id, "newest first");
    }
}
