//! A queue's message move tasks (SQS's StartMessageMoveTask) as state: which ran, which
//! runs, how far each got. The engine drives them (`src/engine/moves.rs`); this holds
//! them and is what the journal keeps (`Event::MoveTasks`, the whole list at each
//! change, so replay takes the last one).
//!
//! Owned by the source queue's shard, beside its `Queue`. Bounded: the last
//! `MOVE_TASKS_KEPT`, at most one of them running.

use rkyv::{Archive, Deserialize, Serialize};
use std::collections::VecDeque;

/// Tasks one queue keeps for listing (SQS lists the most recent ones).
pub const MOVE_TASKS_KEPT: usize = 10;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MoveTask {
    /// Unique among the queue's tasks (ids outlive restarts: `MoveTasks::next_id`).
    pub id: u64,
    pub status: MoveStatus,
    /// `None`: each message back to the queue it was dead-lettered from.
    pub destination: Option<String>,
    pub max_per_second: Option<u32>,
    /// As journaled after each batch: after a kill -9 it may lag the last batch.
    pub moved: u64,
    pub to_move: u64,
    pub failure: Option<String>,
    pub started_ms: i64,
}

/// A start refused: this task is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadyRunning {
    pub started_ms: i64,
}

/// A queue's tasks, oldest first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MoveTasks {
    tasks: VecDeque<MoveTask>,
    next_id: u64,
}

impl MoveTasks {
    /// The tasks a journal held (`Event::MoveTasks`). A task that was cancelling has
    /// stopped with the broker that ran it: cancelled. Running ones are to be resumed.
    pub fn restore(next_id: u64, tasks: Vec<MoveTask>) -> MoveTasks {
        let skip = tasks.len().saturating_sub(MOVE_TASKS_KEPT);
        let tasks = tasks
            .into_iter()
            .skip(skip)
            .map(|mut t| {
                if t.status == MoveStatus::Cancelling {
                    t.status = MoveStatus::Cancelled;
                }
                t
            })
            .collect::<VecDeque<_>>();
        let highest = tasks.iter().map(|t| t.id).max().unwrap_or(0);
        MoveTasks {
            tasks,
            next_id: next_id.max(highest),
        }
    }

    /// The journal's form of these tasks (`Event::MoveTasks`): the next id and the
    /// tasks, oldest first.
    pub fn to_record(&self) -> (u64, Vec<MoveTask>) {
        (self.next_id, self.tasks.iter().cloned().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The task that runs (or is cancelling), if one does.
    pub fn running(&self) -> Option<&MoveTask> {
        self.tasks
            .iter()
            .find(|t| matches!(t.status, MoveStatus::Running | MoveStatus::Cancelling))
    }

    pub fn get(&self, id: u64) -> Option<&MoveTask> {
        self.tasks.iter().find(|t| t.id == id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut MoveTask> {
        self.tasks.iter_mut().find(|t| t.id == id)
    }

    /// Registers `task` as a new running one with the next id (the oldest kept one goes
    /// past `MOVE_TASKS_KEPT`), unless one runs already.
    pub fn start(&mut self, mut task: MoveTask) -> Result<MoveTask, AlreadyRunning> {
        if let Some(t) = self.running() {
            return Err(AlreadyRunning {
                started_ms: t.started_ms,
            });
        }
        self.next_id += 1;
        task.id = self.next_id;
        task.status = MoveStatus::Running;
        while self.tasks.len() >= MOVE_TASKS_KEPT {
            self.tasks.pop_front();
        }
        self.tasks.push_back(task.clone());
        Ok(task)
    }

    /// Ids of the tasks that run (a restart resumes them).
    pub fn running_ids(&self) -> Vec<u64> {
        self.tasks
            .iter()
            .filter(|t| t.status == MoveStatus::Running)
            .map(|t| t.id)
            .collect()
    }

    /// Newest first.
    pub fn list(&self) -> Vec<MoveTask> {
        self.tasks.iter().rev().cloned().collect()
    }
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
        assert_eq!(moves.start(task()), Err(AlreadyRunning { started_ms: 0 }));
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

    #[test]
    fn restored_tasks_keep_their_ids_and_a_cancelling_one_is_cancelled() {
        let mut moves = MoveTasks::default();
        let a = moves.start(task()).expect("a");
        moves.get_mut(a.id).expect("a").status = MoveStatus::Cancelling;
        let (next_id, tasks) = moves.to_record();
        let mut back = MoveTasks::restore(next_id, tasks);
        assert_eq!(
            back.get(a.id).map(|t| t.status),
            Some(MoveStatus::Cancelled)
        );
        assert!(back.running_ids().is_empty());
        let b = back.start(task()).expect("b");
        assert!(b.id > a.id, "no id is handed out twice");
        assert_eq!(back.running_ids(), [b.id]);
        // A record longer than the bound keeps its newest.
        let many: Vec<MoveTask> = (1..=MOVE_TASKS_KEPT as u64 + 2)
            .map(|id| MoveTask { id, ..task() })
            .collect();
        let back = MoveTasks::restore(0, many);
        assert_eq!(back.list().len(), MOVE_TASKS_KEPT);
        assert_eq!(back.list()[0].id, MOVE_TASKS_KEPT as u64 + 2);
        assert_eq!(back.next_id, MOVE_TASKS_KEPT as u64 + 2);
    }
}
