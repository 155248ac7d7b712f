//! One consumer group's membership state machine (Kafka eager rebalance protocol).
//!
//! Owned by the group's shard, inside [`super::GroupCoordinator`]. Pure: every
//! transition takes `now` and returns what happened ([`Notice`]s for members waiting in
//! a join); it holds no channels, timers or files, so tests drive it deterministically.
//!
//! States:
//! - Empty: no members (new group, or everyone left/expired).
//! - PreparingRebalance: a member joined, left, expired or changed its subscription.
//!   Members find out through a heartbeat answered `RebalanceInProgress` and rejoin.
//!   Completes when every member has rejoined (and the initial delay of a group that was
//!   Empty has passed), or when the rebalance deadline passes: then members that did
//!   not rejoin are removed. Completion bumps the generation and assigns partitions.
//! - Stable: everyone has its assignment; heartbeats keep sessions alive.
//!
//! Invariants: a member awaiting a join exists only in PreparingRebalance; in Stable
//! every member holds the assignment of the current generation; the generation only
//! grows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::assignor::{self, Assignment};
use super::{GroupDescription, GroupError, JoinRequest, JoinResult};
use super::{MEMBERS_PER_GROUP_MAX, REBALANCE_TIMEOUT_MS_MAX};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    Stable,
}

impl GroupState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    client_id: String,
    /// Sorted by topic, deduplicated: compared to detect a changed subscription.
    topics: Vec<(String, i32)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    session_deadline: Instant,
    /// Rejoined in the current rebalance and waiting for it to complete.
    awaiting_join: bool,
    assignment: Assignment,
}

/// What a join call does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinStep {
    /// Stable group, unchanged subscription: the current assignment, at once.
    Ready(JoinResult),
    /// The member (with this id) waits for the rebalance to complete.
    Waiting(String),
}

/// Something a member waiting in a join must be told.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    Completed(String, JoinResult),
    Removed(String),
}

#[derive(Debug)]
pub(crate) struct Group {
    id: String,
    state: GroupState,
    generation: i32,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// When a rebalance gives up on members that have not rejoined.
    rebalance_deadline: Option<Instant>,
    /// A rebalance of a group that was Empty does not complete before this.
    not_before: Option<Instant>,
}

impl Group {
    pub(crate) fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline: None,
            not_before: None,
        }
    }

    pub(crate) fn state(&self) -> GroupState {
        self.state
    }

    pub(crate) fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// Whether a member is subscribed to `topic` (its committed offsets are in use).
    pub(crate) fn subscribed_to(&self, topic: &str) -> bool {
        self.members
            .values()
            .any(|m| m.topics.iter().any(|(t, _)| t == topic))
    }

    /// Joins (`req.member_id` empty: a new member with id `new_id()`) or rejoins.
    /// Call [`Group::try_complete`] after registering a waiter for `Waiting`.
    pub(crate) fn join(
        &mut self,
        req: &JoinRequest,
        new_id: impl FnOnce() -> String,
        now: Instant,
        initial_delay: Duration,
    ) -> Result<JoinStep, GroupError> {
        let topics = normalize_topics(&req.topics);
        let session_timeout = Duration::from_millis(u64::from(req.session_timeout_ms));
        let rebalance_ms = match req.rebalance_timeout_ms {
            0 => req.session_timeout_ms,
            ms => ms,
        };
        let rebalance_timeout =
            Duration::from_millis(u64::from(rebalance_ms.min(REBALANCE_TIMEOUT_MS_MAX)));
        let is_new = req.member_id.as_deref().is_none_or(str::is_empty);
        let id = match req.member_id.as_deref() {
            None | Some("") => {
                if self.members.len() >= MEMBERS_PER_GROUP_MAX {
                    return Err(GroupError::GroupFull);
                }
                let id = new_id();
                debug_assert!(!self.members.contains_key(&id), "member ids are unique");
                let member = Member {
                    client_id: req.client_id.clone(),
                    topics: Vec::new(),
                    session_timeout,
                    rebalance_timeout,
                    session_deadline: now + session_timeout,
                    awaiting_join: false,
                    assignment: Vec::new(),
                };
                self.members.insert(id.clone(), member);
                id
            }
            Some(id) => id.to_string(),
        };
        let state = self.state;
        let member = self.members.get_mut(&id).ok_or(GroupError::UnknownMember)?;
        member.session_timeout = session_timeout;
        member.rebalance_timeout = rebalance_timeout;
        member.session_deadline = now + session_timeout;
        if !is_new && state == GroupState::Stable && member.topics == topics {
            return Ok(JoinStep::Ready(self.result_for(&id)));
        }
        member.topics = topics;
        self.begin_rebalance(now, initial_delay);
        if let Some(m) = self.members.get_mut(&id) {
            m.awaiting_join = true;
        }
        Ok(JoinStep::Waiting(id))
    }

    /// Kafka Heartbeat: refreshes the session, then says whether to rejoin.
    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        let member = self
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMember)?;
        member.session_deadline = now + member.session_timeout;
        if self.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// Kafka LeaveGroup: removes the member; the rest rebalance.
    pub(crate) fn leave(
        &mut self,
        member_id: &str,
        now: Instant,
    ) -> Result<Vec<Notice>, GroupError> {
        let member = self
            .members
            .remove(member_id)
            .ok_or(GroupError::UnknownMember)?;
        let mut notices = Vec::new();
        if member.awaiting_join {
            notices.push(Notice::Removed(member_id.to_string()));
        }
        self.begin_rebalance(now, Duration::ZERO);
        notices.extend(self.try_complete(now));
        Ok(notices)
    }

    /// Checks an offset commit (Kafka rules) and refreshes the member's session.
    /// `generation < 0` with an empty member id is a simple commit: only while the
    /// group has no members.
    pub(crate) fn check_commit(
        &mut self,
        member_id: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if member_id.is_empty() && generation < 0 {
            return match self.members.is_empty() {
                true => Ok(()),
                false => Err(GroupError::UnknownMember),
            };
        }
        let member = self
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMember)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        member.session_deadline = now + member.session_timeout;
        Ok(())
    }

    /// KIP-447's check of a TxnOffsetCommit from a group member's transactional
    /// producer: a member id that is not in the group, or a generation that is not the
    /// group's, fences a zombie whose partitions moved. An empty member id or a negative
    /// generation is not checked (a producer outside the group sends both).
    pub(crate) fn check_txn_commit(
        &self,
        member_id: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        if !member_id.is_empty() && !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMember);
        }
        if generation >= 0 && generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// Expires members whose session passed (except those waiting in a join, which
    /// cannot heartbeat) and completes a rebalance that is due.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<Notice> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| !m.awaiting_join && now >= m.session_deadline)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.members.remove(id);
        }
        if !expired.is_empty() {
            self.begin_rebalance(now, Duration::ZERO);
        }
        self.try_complete(now)
    }

    /// Completes the rebalance if every member rejoined (and the initial delay passed),
    /// or if its deadline passed (removing members that did not rejoin).
    pub(crate) fn try_complete(&mut self, now: Instant) -> Vec<Notice> {
        if self.state != GroupState::PreparingRebalance {
            return Vec::new();
        }
        let timed_out = self.rebalance_deadline.is_some_and(|d| now >= d);
        let all_joined = self.members.values().all(|m| m.awaiting_join);
        let delayed = self.not_before.is_some_and(|t| now < t);
        if !timed_out && (!all_joined || delayed) {
            return Vec::new();
        }
        if timed_out {
            let group = &self.id;
            self.members.retain(|id, m| {
                if !m.awaiting_join {
                    tracing::info!(%group, member = %id, "member did not rejoin in time");
                }
                m.awaiting_join
            });
        }
        self.complete(now)
    }

    fn complete(&mut self, now: Instant) -> Vec<Notice> {
        self.generation = self.generation.wrapping_add(1).max(1);
        self.rebalance_deadline = None;
        self.not_before = None;
        let input: Vec<(String, Vec<(String, i32)>)> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        let mut assignments = assignor::assign(&input);
        for (id, member) in &mut self.members {
            member.assignment = assignments.remove(id).unwrap_or_default();
            member.awaiting_join = false;
            member.session_deadline = now + member.session_timeout;
        }
        // Keep the leader across generations while it stays; else the smallest id.
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = match self.members.is_empty() {
            true => GroupState::Empty,
            false => GroupState::Stable,
        };
        tracing::info!(group = %self.id, generation = self.generation,
            members = self.members.len(), "rebalance completed");
        let ids: Vec<String> = self.members.keys().cloned().collect();
        ids.into_iter()
            .map(|id| Notice::Completed(id.clone(), self.result_for(&id)))
            .collect()
    }

    /// Moves to PreparingRebalance (no-op if already there): every member must rejoin.
    fn begin_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.not_before = match self.state {
            GroupState::Empty if !initial_delay.is_zero() => Some(now + initial_delay.min(timeout)),
            _ => None,
        };
        self.rebalance_deadline = Some(now + timeout);
        self.state = GroupState::PreparingRebalance;
        for member in self.members.values_mut() {
            member.awaiting_join = false;
        }
    }

    fn result_for(&self, id: &str) -> JoinResult {
        JoinResult {
            member_id: id.to_string(),
            generation: self.generation,
            leader: self.leader.clone().unwrap_or_default(),
            members: self.members.keys().cloned().collect(),
            assignment: self
                .members
                .get(id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn describe(&self) -> GroupDescription {
        GroupDescription {
            group: self.id.clone(),
            state: self.state.as_str().to_string(),
            generation: self.generation,
            members: self
                .members
                .iter()
                .map(|(id, m)| (id.clone(), m.client_id.clone(), m.assignment.clone()))
                .collect(),
        }
    }
}

/// Sorts and deduplicates a subscription (largest count wins) so equal subscriptions
/// compare equal.
fn normalize_topics(topics: &[(String, i32)]) -> Vec<(String, i32)> {
    let mut by_topic: BTreeMap<&str, i32> = BTreeMap::new();
    for (topic, count) in topics {
        let c = by_topic.entry(topic.as_str()).or_insert(*count);
        *c = (*c).max(*count);
    }
    by_topic
        .into_iter()
        .map(|(t, c)| (t.to_string(), c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION_MS: u32 = 1_000;

    fn req(member: Option<&str>, topics: &[(&str, i32)]) -> JoinRequest {
        JoinRequest {
            group: "g".into(),
            member_id: member.map(str::to_string),
            client_id: "c".into(),
            topics: topics.iter().map(|(t, c)| (t.to_string(), *c)).collect(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: 5_000,
        }
    }

    fn join_new(g: &mut Group, id: &str, now: Instant) -> JoinStep {
        let r = req(None, &[("t", 4)]);
        match g.join(&r, || id.to_string(), now, Duration::ZERO) {
            Ok(step) => step,
            Err(e) => panic!("join failed: {e}"),
        }
    }

    fn completed(notices: &[Notice], id: &str) -> JoinResult {
        for n in notices {
            if let Notice::Completed(m, r) = n {
                if m == id {
                    return r.clone();
                }
            }
        }
        panic!("no completion for {id} in {notices:?}");
    }

    #[test]
    fn first_member_completes_generation_one_with_all_partitions() {
        let now = Instant::now();
        let mut g = Group::new("g");
        assert_eq!(join_new(&mut g, "a", now), JoinStep::Waiting("a".into()));
        let notices = g.try_complete(now);
        let r = completed(&notices, "a");
        assert_eq!(r.generation, 1);
        assert_eq!(r.leader, "a");
        assert_eq!(r.assignment, vec![("t".to_string(), vec![0, 1, 2, 3])]);
        assert_eq!(g.state(), GroupState::Stable);
    }

    #[test]
    fn stable_rejoin_with_same_subscription_returns_current_assignment_at_once() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "a", now);
        g.try_complete(now);
        let step = g.join(
            &req(Some("a"), &[("t", 4)]),
            || unreachable!(),
            now,
            Duration::ZERO,
        );
        match step {
            Ok(JoinStep::Ready(r)) => assert_eq!(r.generation, 1),
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    #[test]
    fn a_txn_commit_names_a_current_member_and_generation_or_neither() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "a", now);
        g.try_complete(now);
        assert_eq!(g.check_txn_commit("a", 1), Ok(()));
        assert_eq!(g.check_txn_commit("", -1), Ok(()));
        assert_eq!(g.check_txn_commit("a", -1), Ok(()));
        assert_eq!(g.check_txn_commit("", 1), Ok(()));
        assert_eq!(g.check_txn_commit("b", 1), Err(GroupError::UnknownMember));
        assert_eq!(
            g.check_txn_commit("a", 0),
            Err(GroupError::IllegalGeneration)
        );
        // A rebalance fences the old generation.
        g.join(
            &req(Some("a"), &[("t", 8)]),
            || unreachable!(),
            now,
            Duration::ZERO,
        )
        .expect("rejoin");
        g.try_complete(now);
        assert_eq!(
            g.check_txn_commit("a", 1),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(g.check_txn_commit("a", 2), Ok(()));
    }

    #[test]
    fn changed_subscription_starts_a_rebalance() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "a", now);
        g.try_complete(now);
        let step = g.join(
            &req(Some("a"), &[("t", 8)]),
            || unreachable!(),
            now,
            Duration::ZERO,
        );
        assert_eq!(step, Ok(JoinStep::Waiting("a".into())));
        let r = completed(&g.try_complete(now), "a");
        assert_eq!(r.generation, 2);
        assert_eq!(r.assignment[0].1.len(), 8);
    }

    #[test]
    fn rebalance_waits_for_every_member_then_splits_partitions() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "a", now);
        g.try_complete(now);
        join_new(&mut g, "b", now);
        assert!(g.try_complete(now).is_empty(), "a has not rejoined");
        assert_eq!(
            g.heartbeat("a", 1, now),
            Err(GroupError::RebalanceInProgress)
        );
        let step = g.join(
            &req(Some("a"), &[("t", 4)]),
            || unreachable!(),
            now,
            Duration::ZERO,
        );
        assert_eq!(step, Ok(JoinStep::Waiting("a".into())));
        let notices = g.try_complete(now);
        let (ra, rb) = (completed(&notices, "a"), completed(&notices, "b"));
        assert_eq!((ra.generation, rb.generation), (2, 2));
        assert_eq!(ra.assignment, vec![("t".to_string(), vec![0, 2])]);
        assert_eq!(rb.assignment, vec![("t".to_string(), vec![1, 3])]);
        assert_eq!(g.heartbeat("a", 2, now), Ok(()));
        assert_eq!(g.heartbeat("a", 1, now), Err(GroupError::IllegalGeneration));
    }

    #[test]
    fn rebalance_timeout_removes_members_that_did_not_rejoin() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "a", now);
        g.try_complete(now);
        join_new(&mut g, "b", now);
        // a keeps heartbeating but never rejoins.
        let later = now + Duration::from_millis(900);
        assert_eq!(
            g.heartbeat("a", 1, later),
            Err(GroupError::RebalanceInProgress)
        );
        assert!(g.tick(later).is_empty());
        let notices = g.tick(now + Duration::from_millis(5_000));
        let rb = completed(&notices, "b");
        assert_eq!(rb.members, vec!["b".to_string()]);
        assert_eq!(rb.assignment[0].1.len(), 4);
        assert_eq!(g.heartbeat("a", 2, later), Err(GroupError::UnknownMember));
    }

    #[test]
    fn expired_session_removes_member_and_rebalances_the_rest() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "a", now);
        g.try_complete(now);
        join_new(&mut g, "b", now);
        g.join(
            &req(Some("a"), &[("t", 4)]),
            || unreachable!(),
            now,
            Duration::ZERO,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        g.try_complete(now);
        let t = now + Duration::from_millis(u64::from(SESSION_MS) + 1);
        assert_eq!(
            g.heartbeat("a", 2, now + Duration::from_millis(500)),
            Ok(())
        );
        assert!(g.tick(t).is_empty());
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert_eq!(g.heartbeat("b", 2, t), Err(GroupError::UnknownMember));
        g.join(
            &req(Some("a"), &[("t", 4)]),
            || unreachable!(),
            t,
            Duration::ZERO,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ra = completed(&g.try_complete(t), "a");
        assert_eq!(ra.generation, 3);
        assert_eq!(ra.assignment[0].1, vec![0, 1, 2, 3]);
    }

    #[test]
    fn waiting_member_that_leaves_is_told_it_was_removed() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "a", now);
        g.try_complete(now);
        join_new(&mut g, "b", now);
        let notices = g.leave("b", now).unwrap_or_else(|e| panic!("{e}"));
        assert!(notices.contains(&Notice::Removed("b".into())));
        // Only a remains, and a has not rejoined yet: still preparing.
        assert_eq!(g.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn last_member_leaving_makes_the_group_empty() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "a", now);
        g.try_complete(now);
        g.leave("a", now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.state(), GroupState::Empty);
        assert_eq!(g.check_commit("", -1, now), Ok(()));
    }

    #[test]
    fn initial_delay_holds_the_first_rebalance_until_it_passes() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let r = req(None, &[("t", 4)]);
        let delay = Duration::from_millis(300);
        g.join(&r, || "a".into(), now, delay)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(g.try_complete(now).is_empty());
        g.join(&r, || "b".into(), now, delay)
            .unwrap_or_else(|e| panic!("{e}"));
        let notices = g.tick(now + delay);
        assert_eq!(completed(&notices, "a").generation, 1);
        assert_eq!(completed(&notices, "b").members.len(), 2);
    }

    #[test]
    fn member_may_commit_with_the_old_generation_while_rebalancing() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "a", now);
        g.try_complete(now);
        join_new(&mut g, "b", now);
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert_eq!(g.check_commit("a", 1, now), Ok(()));
    }

    #[test]
    fn commit_checks_member_and_generation() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "a", now);
        g.try_complete(now);
        assert_eq!(g.check_commit("a", 1, now), Ok(()));
        assert_eq!(
            g.check_commit("a", 0, now),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(g.check_commit("zz", 1, now), Err(GroupError::UnknownMember));
        assert_eq!(g.check_commit("", -1, now), Err(GroupError::UnknownMember));
    }
}
