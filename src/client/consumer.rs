//! A consumer: reads assigned partitions with pipelined long-poll fetches, optionally
//! as a member of a consumer group (join, heartbeat, rebalance, commit).
//!
//! Isolation (Kafka's `isolation.level`): `Uncommitted`, the default, reads every data
//! record; `Committed` reads up to the last stable offset only and drops the records of
//! aborted transactions (`records::TxnFilter`), and `Latest` and "caught up" mean the
//! last stable offset. Control batches (transaction markers) are never handed out; the
//! position moves past them.

use super::records::{visit_fetched, InRecord, RecordRef, TxnFilter};
use super::{check, Client, ClientError};
use crate::native::messages::{
    Assignment, CommitEntry, ErrorCode, Isolation, OffsetSpec, Request, Response,
};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Bytes asked per partition per fetch.
pub const FETCH_MAX_BYTES: u32 = 1 << 20;

/// Where a partition without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    Earliest,
    Latest,
    Offset(i64),
    /// Unix time in ms: the first message at or after it.
    Timestamp(i64),
}

impl std::str::FromStr for StartFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" => Ok(StartFrom::Earliest),
            "latest" => Ok(StartFrom::Latest),
            _ => {
                if let Some(ms) = s.strip_prefix('@') {
                    return ms
                        .parse()
                        .map(StartFrom::Timestamp)
                        .map_err(|_| format!("bad timestamp '{s}'"));
                }
                s.parse()
                    .map(StartFrom::Offset)
                    .map_err(|_| format!("'{s}' is not earliest, latest, an offset or @UNIX_MS"))
            }
        }
    }
}

pub struct GroupConfig {
    pub group: String,
    pub client_id: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
}

struct Membership {
    config: GroupConfig,
    member_id: String,
    generation: i32,
    last_heartbeat: Instant,
}

pub struct Consumer {
    client: Client,
    topic: String,
    from: StartFrom,
    /// Next offset to read, per assigned partition.
    positions: BTreeMap<i32, i64>,
    /// Skip records older than this (a timestamp start lands on a whole batch).
    skip_before_ms: BTreeMap<i32, i64>,
    group: Option<Membership>,
    isolation: Isolation,
}

impl Consumer {
    fn new(
        client: Client,
        topic: &str,
        from: StartFrom,
        group: Option<Membership>,
        isolation: Isolation,
    ) -> Consumer {
        Consumer {
            client,
            topic: topic.to_string(),
            from,
            positions: BTreeMap::new(),
            skip_before_ms: BTreeMap::new(),
            group,
            isolation,
        }
    }

    /// A consumer of the given partitions (all when `None`), outside any group,
    /// reading uncommitted.
    pub fn assign(
        client: Client,
        topic: &str,
        partitions: Option<Vec<i32>>,
        from: StartFrom,
    ) -> Result<Consumer, ClientError> {
        Consumer::assign_with(client, topic, partitions, from, Isolation::Uncommitted)
    }

    /// `assign` with the isolation to read at.
    pub fn assign_with(
        mut client: Client,
        topic: &str,
        partitions: Option<Vec<i32>>,
        from: StartFrom,
        isolation: Isolation,
    ) -> Result<Consumer, ClientError> {
        let info = client.topic(topic)?;
        let all: Vec<i32> = (0..info.owners.len() as i32).collect();
        let mut consumer = Consumer::new(client, topic, from, None, isolation);
        for p in partitions.unwrap_or(all) {
            let offset = consumer.start_offset(p, None)?;
            consumer.positions.insert(p, offset);
        }
        Ok(consumer)
    }

    /// A consumer that joins `config.group` and reads what the group assigns it,
    /// uncommitted.
    pub fn join(
        client: Client,
        topic: &str,
        from: StartFrom,
        config: GroupConfig,
    ) -> Result<Consumer, ClientError> {
        Consumer::join_with(client, topic, from, config, Isolation::Uncommitted)
    }

    /// `join` with the isolation to read at.
    pub fn join_with(
        client: Client,
        topic: &str,
        from: StartFrom,
        config: GroupConfig,
        isolation: Isolation,
    ) -> Result<Consumer, ClientError> {
        let membership = Membership {
            config,
            member_id: String::new(),
            generation: -1,
            last_heartbeat: Instant::now(),
        };
        let mut consumer = Consumer::new(client, topic, from, Some(membership), isolation);
        consumer.rejoin()?;
        Ok(consumer)
    }

    pub fn assignment(&self) -> Vec<i32> {
        self.positions.keys().copied().collect()
    }

    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Where this consumer's partitions end: the last stable offset when it reads
    /// committed.
    fn end_spec(&self) -> OffsetSpec {
        match self.isolation {
            Isolation::Uncommitted => OffsetSpec::Latest,
            Isolation::Committed => OffsetSpec::LastStable,
        }
    }

    pub fn member_id(&self) -> Option<&str> {
        self.group.as_ref().map(|g| g.member_id.as_str())
    }

    fn start_offset(&mut self, partition: i32, committed: Option<i64>) -> Result<i64, ClientError> {
        if let Some(c) = committed {
            return Ok(c);
        }
        let spec = match self.from {
            StartFrom::Earliest => OffsetSpec::Earliest,
            StartFrom::Latest => self.end_spec(),
            StartFrom::Offset(o) => return Ok(o),
            StartFrom::Timestamp(ts) => {
                self.skip_before_ms.insert(partition, ts);
                OffsetSpec::Timestamp(ts)
            }
        };
        self.client.list_offset(&self.topic, partition, spec)
    }

    /// (Re)joins the group, then starts each assigned partition at its committed offset.
    fn rejoin(&mut self) -> Result<(), ClientError> {
        let Some(m) = self.group.as_mut() else {
            return Ok(());
        };
        let request = Request::JoinGroup {
            group: m.config.group.clone(),
            member_id: m.member_id.clone(),
            client_id: m.config.client_id.clone(),
            topics: vec![self.topic.clone()],
            session_timeout_ms: m.config.session_timeout_ms,
            rebalance_timeout_ms: m.config.rebalance_timeout_ms,
        };
        let (member_id, generation, assignment) = match self.client.call(request, &[])?.0 {
            Response::Joined {
                member_id,
                generation,
                assignment,
                ..
            } => (member_id, generation, assignment),
            other => {
                return Err(ClientError::Protocol(format!(
                    "unexpected answer to join: {other:?}"
                )))
            }
        };
        m.member_id = member_id;
        m.generation = generation;
        m.last_heartbeat = Instant::now();
        let group = m.config.group.clone();
        let mine = partitions_of(&assignment, &self.topic);
        let committed: BTreeMap<i32, i64> = self
            .client
            .committed(&group, &self.topic)?
            .into_iter()
            .map(|c| (c.partition, c.offset))
            .collect();
        self.positions.clear();
        self.skip_before_ms.clear();
        for p in mine {
            let offset = self.start_offset(p, committed.get(&p).copied())?;
            self.positions.insert(p, offset);
        }
        Ok(())
    }

    /// Keeps the membership alive; on a rebalance commits, rejoins and reassigns.
    fn heartbeat(&mut self) -> Result<(), ClientError> {
        let Some(m) = self.group.as_mut() else {
            return Ok(());
        };
        let interval = Duration::from_millis(u64::from(m.config.session_timeout_ms / 3).max(10));
        if m.last_heartbeat.elapsed() < interval {
            return Ok(());
        }
        let request = Request::Heartbeat {
            group: m.config.group.clone(),
            member_id: m.member_id.clone(),
            generation: m.generation,
        };
        m.last_heartbeat = Instant::now();
        match self.client.call(request, &[]) {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(ErrorCode::RebalanceInProgress) => {
                // A failed commit only means re-reading from the last one (at least once).
                if let Err(e) = self.commit() {
                    tracing::warn!("commit before rebalance failed: {e}");
                }
                self.rejoin()
            }
            Err(e)
                if matches!(
                    e.code(),
                    Some(ErrorCode::UnknownMember | ErrorCode::IllegalGeneration)
                ) =>
            {
                if let Some(m) = self.group.as_mut() {
                    m.member_id.clear();
                }
                self.rejoin()
            }
            Err(e) => Err(e),
        }
    }

    /// Fetches from every assigned partition at once (pipelined) and returns the
    /// records in partition order, waiting up to `max_wait` when there are none.
    pub fn poll(&mut self, max_wait: Duration) -> Result<Vec<InRecord>, ClientError> {
        let mut out = Vec::new();
        self.poll_with(max_wait, &mut |r, payload| out.push(r.to_owned_in(payload)))?;
        out.sort_by_key(|r| (r.partition, r.offset));
        Ok(out)
    }

    /// Like `poll`, but hands each record to `visit` borrowed from the fetched bytes
    /// (the payload it came from is passed along), in order per partition: no
    /// allocation per record. Returns how many records were visited.
    pub fn poll_with(
        &mut self,
        max_wait: Duration,
        visit: &mut dyn FnMut(RecordRef<'_>, &Bytes),
    ) -> Result<usize, ClientError> {
        self.heartbeat()?;
        let wait_ms = max_wait.as_millis().min(u128::from(u32::MAX)) as u32;
        let mut sent = Vec::with_capacity(self.positions.len());
        let partitions: Vec<(i32, i64)> = self.positions.iter().map(|(p, o)| (*p, *o)).collect();
        for (partition, offset) in partitions {
            let request = Request::Fetch {
                topic: self.topic.clone(),
                partition,
                offset,
                max_bytes: FETCH_MAX_BYTES,
                max_wait_ms: wait_ms,
                min_bytes: 1,
                isolation: self.isolation,
            };
            let (shard, conn) = self.client.connection_for(&self.topic, partition)?;
            let id = conn.send(request, &[])?;
            sent.push((shard, id, partition, offset));
        }
        if sent.is_empty() {
            std::thread::sleep(max_wait);
            return Ok(0);
        }
        // Answers on one connection come back in completion order, matched by id.
        let mut answers = Vec::with_capacity(sent.len());
        let mut by_shard: BTreeMap<Option<u32>, usize> = BTreeMap::new();
        for (shard, ..) in &sent {
            *by_shard.entry(*shard).or_default() += 1;
        }
        for (shard, count) in by_shard {
            let conn = self.client.connection(shard)?;
            for _ in 0..count {
                answers.push((shard, conn.recv()?));
            }
        }
        let mut visited = 0;
        for (shard, (id, response, payload)) in answers {
            // Ids are per connection: match on the connection too.
            let Some(&(_, _, partition, offset)) = sent.iter().find(|s| s.0 == shard && s.1 == id)
            else {
                check(response)?;
                return Err(ClientError::Protocol(format!(
                    "answer for unknown request {id}"
                )));
            };
            visited += self.absorb(partition, offset, response, &payload, visit)?;
        }
        Ok(visited)
    }

    /// Applies one fetch answer: records out, position forward, or an offset reset.
    fn absorb(
        &mut self,
        partition: i32,
        offset: i64,
        response: Response,
        payload: &Bytes,
        visit: &mut dyn FnMut(RecordRef<'_>, &Bytes),
    ) -> Result<usize, ClientError> {
        match check(response) {
            Ok(Response::Fetched {
                last_stable_offset,
                aborted,
                ..
            }) => {
                let mut filter = match self.isolation {
                    Isolation::Uncommitted => TxnFilter::uncommitted(),
                    Isolation::Committed => TxnFilter::committed(last_stable_offset, &aborted),
                };
                // A timestamp start lands on a whole batch: skip what is older.
                let skip_before = self.skip_before_ms.get(&partition).copied();
                let mut kept = 0usize;
                let next = visit_fetched(partition, payload, offset, &mut filter, &mut |r| {
                    if skip_before.is_none_or(|ts| r.timestamp_ms >= ts) {
                        kept += 1;
                        visit(r, payload);
                    }
                })?;
                if kept > 0 {
                    self.skip_before_ms.remove(&partition);
                }
                // Past control batches and withheld records too: a partition whose
                // tail is a transaction marker is read to its end.
                if let Some(next) = next.filter(|n| *n > offset) {
                    self.positions.insert(partition, next);
                }
                Ok(kept)
            }
            Ok(other) => Err(ClientError::Protocol(format!(
                "unexpected answer to fetch: {other:?}"
            ))),
            Err(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                // Like auto.offset.reset: start over where the policy says.
                let reset = self.start_offset(partition, None)?;
                self.positions.insert(partition, reset);
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Moves a partition's position back to `offset` (never forward).
    pub fn rewind(&mut self, partition: i32, offset: i64) {
        if let Some(position) = self.positions.get_mut(&partition) {
            *position = (*position).min(offset);
        }
    }

    /// Whether every assigned partition has been read up to its current end (the last
    /// stable offset when reading committed).
    pub fn caught_up(&mut self) -> Result<bool, ClientError> {
        let partitions: Vec<(i32, i64)> = self.positions.iter().map(|(p, o)| (*p, *o)).collect();
        let spec = self.end_spec();
        for (p, position) in partitions {
            if self.client.list_offset(&self.topic, p, spec)? > position {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Commits the current positions for the group (no-op outside a group).
    pub fn commit(&mut self) -> Result<(), ClientError> {
        let Some(m) = self.group.as_ref() else {
            return Ok(());
        };
        let offsets: Vec<CommitEntry> = self
            .positions
            .iter()
            .map(|(p, o)| CommitEntry {
                topic: self.topic.clone(),
                partition: *p,
                offset: *o,
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let (group, member, generation) =
            (m.config.group.clone(), m.member_id.clone(), m.generation);
        self.client.commit(&group, &member, generation, offsets)
    }

    /// Commits and leaves the group so the others take over at once.
    pub fn close(mut self) -> Result<(), ClientError> {
        if self.group.is_none() {
            return Ok(());
        }
        self.commit()?;
        if let Some(m) = self.group.take() {
            let request = Request::LeaveGroup {
                group: m.config.group,
                member_id: m.member_id,
            };
            self.client.call(request, &[])?;
        }
        Ok(())
    }
}

fn partitions_of(assignment: &[Assignment], topic: &str) -> Vec<i32> {
    assignment
        .iter()
        .filter(|a| a.topic == topic)
        .flat_map(|a| a.partitions.iter().copied())
        .collect()
}
