//! [`GroupCoordinator`]: every consumer group one shard owns.
//!
//! Owned by one shard, created once at shard start and used only inside that shard's
//! glommio `LocalExecutor` (`!Send`; the server routes a group's requests to the shard
//! that owns the group by stable hash). State lives in `RefCell`s that are never
//! borrowed across an `.await`.
//!
//! Membership transitions are delegated to the pure `group::Group`; this type adds the
//! clock (`Instant::now()` at the API edge, `tick(now)` from the server's timer), the
//! waiting joins (one local oneshot per member waiting in a join) and the durable
//! offsets (`offsets::OffsetStores`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalSender};

use super::group::{Group, JoinStep, Notice};
use super::offsets::{self, OffsetStores, COMPACT_THRESHOLD_BYTES};
use super::{check_group_id, CommittedOffset, GroupConfig, GroupDescription, GroupError};
use super::{JoinRequest, JoinResult};
use super::{OFFSET_METADATA_MAX_BYTES, PARTITIONS_PER_COMMIT_MAX, TOPICS_PER_MEMBER_MAX};
use super::{PARTITIONS_PER_TOPIC_MAX, TOPIC_NAME_MAX_BYTES};

/// Longest client id copied into a member id.
const CLIENT_ID_IN_MEMBER_ID_MAX_BYTES: usize = 128;

type JoinWaiter = LocalSender<Result<JoinResult, GroupError>>;

/// Every consumer group of one shard. See the module docs.
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: RefCell<BTreeMap<String, Group>>,
    /// group → member → the join call waiting for the rebalance to complete.
    waiters: RefCell<HashMap<String, HashMap<String, JoinWaiter>>>,
    offsets: OffsetStores,
    /// Random per coordinator, so member ids never repeat across restarts.
    member_nonce: u64,
    member_seq: Cell<u64>,
}

impl GroupCoordinator {
    /// Creates the coordinator. Lists groups with offsets under `config.data_dir`
    /// (blocking `read_dir`, once at shard start) so `list()` shows them; their
    /// offsets load lazily on first touch.
    pub fn new(config: GroupConfig) -> Rc<GroupCoordinator> {
        let groups = offsets::scan_group_ids(&config.data_dir)
            .into_iter()
            .filter(|g| check_group_id(g).is_ok())
            .map(|g| {
                let group = Group::new(&g);
                (g, group)
            })
            .collect();
        let offsets = OffsetStores::new(config.data_dir.clone(), COMPACT_THRESHOLD_BYTES);
        Rc::new(GroupCoordinator {
            config,
            groups: RefCell::new(groups),
            waiters: RefCell::new(HashMap::new()),
            offsets,
            member_nonce: random_nonce(),
            member_seq: Cell::new(0),
        })
    }

    /// Join or rejoin (JoinGroup and SyncGroup in one). A new member or a changed
    /// subscription starts a rebalance; the call waits until it completes (every known
    /// member rejoined, or the rebalance timeout removed the rest) and resolves with
    /// this member's assignment. A Stable group and an unchanged subscription answer
    /// at once with the current generation.
    pub async fn join(&self, req: JoinRequest) -> Result<JoinResult, GroupError> {
        check_group_id(&req.group)?;
        self.check_join(&req)?;
        let now = Instant::now();
        let delay = Duration::from_millis(u64::from(self.config.initial_rebalance_delay_ms));
        let (member, rx, notices) = {
            let mut groups = self.groups.borrow_mut();
            let is_new = req.member_id.as_deref().is_none_or(str::is_empty);
            if !is_new && !groups.contains_key(&req.group) {
                return Err(GroupError::UnknownMember);
            }
            let group = groups
                .entry(req.group.clone())
                .or_insert_with(|| Group::new(&req.group));
            let member =
                match group.join(&req, || self.next_member_id(&req.client_id), now, delay)? {
                    JoinStep::Ready(result) => return Ok(result),
                    JoinStep::Waiting(member) => member,
                };
            // Register before completing: completion may answer this very join.
            let (tx, rx) = local_channel::new_bounded(1);
            let old = self
                .waiters
                .borrow_mut()
                .entry(req.group.clone())
                .or_default()
                .insert(member.clone(), tx);
            if let Some(old) = old {
                // The same member joined twice; the older call is superseded.
                let _ = old.try_send(Err(GroupError::RebalanceInProgress));
            }
            (member, rx, group.try_complete(now))
        };
        self.dispatch(&req.group, notices);
        tracing::debug!(group = %req.group, %member, "join waiting for rebalance");
        rx.recv().await.unwrap_or(Err(GroupError::UnknownMember))
    }

    /// Kafka Heartbeat. `Err(RebalanceInProgress)`: stop fetching, commit, rejoin.
    pub fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        check_group_id(group)?;
        let mut groups = self.groups.borrow_mut();
        let g = groups.get_mut(group).ok_or(GroupError::UnknownMember)?;
        g.heartbeat(member_id, generation, Instant::now())
    }

    /// Kafka LeaveGroup: the remaining members rebalance.
    pub fn leave(&self, group: &str, member_id: &str) -> Result<(), GroupError> {
        check_group_id(group)?;
        let notices = {
            let mut groups = self.groups.borrow_mut();
            let g = groups.get_mut(group).ok_or(GroupError::UnknownMember)?;
            g.leave(member_id, Instant::now())?
        };
        tracing::info!(%group, member = %member_id, "member left");
        self.dispatch(group, notices);
        Ok(())
    }

    /// Kafka OffsetCommit, durable (fdatasync) before it returns. `generation < 0` with
    /// an empty member id is a simple commit, allowed only while the group has no
    /// members; otherwise member and generation must match (also during a rebalance, so
    /// members can commit before they rejoin).
    pub async fn commit(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: Vec<CommittedOffset>,
    ) -> Result<(), GroupError> {
        check_group_id(group)?;
        check_offsets(&offsets)?;
        {
            let now = Instant::now();
            let mut groups = self.groups.borrow_mut();
            match groups.get_mut(group) {
                Some(g) => g.check_commit(member_id, generation, now)?,
                None if member_id.is_empty() && generation < 0 => {}
                None => return Err(GroupError::UnknownMember),
            }
        }
        if offsets.is_empty() {
            return Ok(());
        }
        let store = self.offsets.get(group).await?;
        store.commit(offsets).await?;
        // A simple commit can create a group: make it visible to list/describe.
        self.groups
            .borrow_mut()
            .entry(group.to_string())
            .or_insert_with(|| Group::new(group));
        Ok(())
    }

    /// Kafka OffsetFetch: all committed offsets (`None`), or one per requested
    /// partition, offset -1 where nothing was committed. Loads the group's offsets from
    /// disk on first touch.
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<CommittedOffset>, GroupError> {
        check_group_id(group)?;
        if partitions
            .as_ref()
            .is_some_and(|p| p.len() > PARTITIONS_PER_COMMIT_MAX)
        {
            return Err(GroupError::InvalidRequest(format!(
                "offset fetch of more than {PARTITIONS_PER_COMMIT_MAX} partitions"
            )));
        }
        let store = self.offsets.get(group).await?;
        Ok(store.fetch(partitions.as_deref()))
    }

    /// Kafka DescribeGroups; an unknown group is "Dead" with generation 0.
    pub fn describe(&self, group: &str) -> GroupDescription {
        match self.groups.borrow().get(group) {
            Some(g) => g.describe(),
            None => GroupDescription {
                group: group.to_string(),
                state: "Dead".to_string(),
                generation: 0,
                members: Vec::new(),
            },
        }
    }

    /// Kafka ListGroups: (group id, state), sorted by group id. Includes groups with
    /// offsets on disk from before the start (except those whose id is over ~60 bytes
    /// of escaped characters, until touched).
    pub fn list(&self) -> Vec<(String, String)> {
        self.groups
            .borrow()
            .iter()
            .map(|(id, g)| (id.clone(), g.state().as_str().to_string()))
            .collect()
    }

    /// Kafka DeleteGroups: only a group without members; removes its offsets.
    pub async fn delete(&self, group: &str) -> Result<(), GroupError> {
        check_group_id(group)?;
        {
            let mut groups = self.groups.borrow_mut();
            if groups.get(group).is_some_and(Group::has_members) {
                return Err(GroupError::NotEmpty);
            }
            // Gone from now on: a join during the file removal starts a fresh group.
            groups.remove(group);
        }
        self.offsets.remove(group).await?;
        tracing::info!(%group, "group deleted");
        Ok(())
    }

    /// Called periodically by the server (e.g. every 100 ms): expires sessions and
    /// completes rebalances that are due. `now` is a parameter so tests are exact.
    pub fn tick(&self, now: Instant) {
        let mut all = Vec::new();
        {
            let mut groups = self.groups.borrow_mut();
            for (id, g) in groups.iter_mut() {
                let notices = g.tick(now);
                if !notices.is_empty() {
                    all.push((id.clone(), notices));
                }
            }
        }
        for (group, notices) in all {
            self.dispatch(&group, notices);
        }
    }

    /// Waits for queued commits, closes every offsets file, and fails waiting joins.
    /// Later commits and fetches fail.
    pub async fn close(&self) -> Result<(), GroupError> {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters.into_values().flat_map(HashMap::into_values) {
            let _ = w.try_send(Err(GroupError::Io(
                "group coordinator is shutting down".into(),
            )));
        }
        self.offsets.close_all().await
    }

    /// Sends each waiting join its outcome.
    fn dispatch(&self, group: &str, notices: Vec<Notice>) {
        let mut waiters = self.waiters.borrow_mut();
        let Some(members) = waiters.get_mut(group) else {
            return;
        };
        for notice in notices {
            let (member, outcome) = match notice {
                Notice::Completed(m, result) => (m, Ok(result)),
                Notice::Removed(m) => (m, Err(GroupError::UnknownMember)),
            };
            if let Some(w) = members.remove(&member) {
                let _ = w.try_send(outcome); // The joiner may have gone away; fine.
            }
        }
        if members.is_empty() {
            waiters.remove(group);
        }
    }

    fn check_join(&self, req: &JoinRequest) -> Result<(), GroupError> {
        let timeout = req.session_timeout_ms;
        if timeout < self.config.min_session_timeout_ms
            || timeout > self.config.max_session_timeout_ms
        {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if req.topics.len() > TOPICS_PER_MEMBER_MAX {
            return Err(GroupError::InvalidRequest(format!(
                "subscription of more than {TOPICS_PER_MEMBER_MAX} topics"
            )));
        }
        for (topic, count) in &req.topics {
            if topic.is_empty() || topic.len() > TOPIC_NAME_MAX_BYTES {
                return Err(GroupError::InvalidRequest(format!(
                    "invalid topic name '{topic}'"
                )));
            }
            if !(0..=PARTITIONS_PER_TOPIC_MAX).contains(count) {
                return Err(GroupError::InvalidRequest(format!(
                    "topic '{topic}' has {count} partitions (0..={PARTITIONS_PER_TOPIC_MAX})"
                )));
            }
        }
        Ok(())
    }

    /// `<client_id>-<32 hex digits>`: nonce and counter, unique per coordinator life.
    fn next_member_id(&self, client_id: &str) -> String {
        let seq = self.member_seq.get().wrapping_add(1);
        self.member_seq.set(seq);
        let mut end = client_id.len().min(CLIENT_ID_IN_MEMBER_ID_MAX_BYTES);
        while !client_id.is_char_boundary(end) {
            end -= 1;
        }
        format!(
            "{}-{:016x}{:016x}",
            &client_id[..end],
            self.member_nonce,
            seq
        )
    }
}

/// Bounds on one commit's contents.
fn check_offsets(offsets: &[CommittedOffset]) -> Result<(), GroupError> {
    if offsets.len() > PARTITIONS_PER_COMMIT_MAX {
        return Err(GroupError::InvalidRequest(format!(
            "commit of more than {PARTITIONS_PER_COMMIT_MAX} partitions"
        )));
    }
    for c in offsets {
        if c.topic.is_empty() || c.topic.len() > TOPIC_NAME_MAX_BYTES {
            return Err(GroupError::InvalidRequest(format!(
                "invalid topic name '{}'",
                c.topic
            )));
        }
        if c.metadata.len() > OFFSET_METADATA_MAX_BYTES {
            return Err(GroupError::InvalidRequest(format!(
                "offset metadata over {OFFSET_METADATA_MAX_BYTES} bytes"
            )));
        }
    }
    Ok(())
}

/// Not cryptographic: only has to differ between coordinator lifetimes.
fn random_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::run_local;
    use std::path::{Path, PathBuf};

    const TOPIC_PARTITIONS: i32 = 4;

    fn ok<T>(r: Result<T, GroupError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    fn coordinator(dir: &Path) -> Rc<GroupCoordinator> {
        GroupCoordinator::new(GroupConfig::new(dir.to_path_buf()))
    }

    fn req(group: &str, member: Option<&str>, session_timeout_ms: u32) -> JoinRequest {
        JoinRequest {
            group: group.into(),
            member_id: member.map(str::to_string),
            client_id: "client".into(),
            topics: vec![("t".into(), TOPIC_PARTITIONS)],
            session_timeout_ms,
            rebalance_timeout_ms: 5_000,
        }
    }

    fn off(partition: i32, offset: i64) -> CommittedOffset {
        CommittedOffset {
            topic: "t".into(),
            partition,
            offset,
            metadata: String::new(),
        }
    }

    fn partitions(r: &JoinResult) -> Vec<i32> {
        r.assignment
            .iter()
            .flat_map(|(_, ps)| ps.iter().copied())
            .collect()
    }

    /// Lets spawned tasks run up to their next wait.
    async fn settle() {
        for _ in 0..10 {
            futures_lite::future::yield_now().await;
        }
    }

    /// Two members in a Stable group at generation 2: a (session `a_ms`), b (`b_ms`).
    async fn two_members(
        c: &Rc<GroupCoordinator>,
        a_ms: u32,
        b_ms: u32,
    ) -> (JoinResult, JoinResult) {
        let a = ok(c.join(req("g", None, a_ms)).await);
        let c2 = c.clone();
        let b = glommio::spawn_local(async move { c2.join(req("g", None, b_ms)).await });
        settle().await;
        assert_eq!(
            c.heartbeat("g", &a.member_id, a.generation),
            Err(GroupError::RebalanceInProgress)
        );
        let a = ok(c.join(req("g", Some(&a.member_id), a_ms)).await);
        (a, ok(b.await))
    }

    #[test]
    fn single_member_join_gets_all_partitions_in_generation_one() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            let a = ok(c.join(req("g", None, 10_000)).await);
            assert_eq!(a.generation, 1);
            assert_eq!(a.leader, a.member_id);
            assert!(a.member_id.starts_with("client-"));
            assert_eq!(partitions(&a), vec![0, 1, 2, 3]);
            assert_eq!(c.heartbeat("g", &a.member_id, 1), Ok(()));
            assert_eq!(c.describe("g").state, "Stable");
        });
    }

    #[test]
    fn second_member_makes_the_first_rejoin_and_both_get_disjoint_halves_in_generation_two() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            let (a, b) = two_members(&c, 10_000, 10_000).await;
            assert_eq!((a.generation, b.generation), (2, 2));
            assert_eq!(a.members, b.members);
            let (pa, pb) = (partitions(&a), partitions(&b));
            assert_eq!((pa.len(), pb.len()), (2, 2));
            assert!(
                pa.iter().all(|p| !pb.contains(p)),
                "disjoint: {pa:?} {pb:?}"
            );
            assert_eq!(c.heartbeat("g", &b.member_id, 2), Ok(()));
            assert_eq!(c.describe("g").members.len(), 2);
        });
    }

    #[test]
    fn member_is_removed_by_tick_after_its_session_timeout_and_the_rest_rebalance() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            let (a, b) = two_members(&c, 10_000, 100).await;
            c.tick(Instant::now() + Duration::from_secs(1));
            assert_eq!(
                c.heartbeat("g", &b.member_id, 2),
                Err(GroupError::UnknownMember)
            );
            assert_eq!(
                c.heartbeat("g", &a.member_id, 2),
                Err(GroupError::RebalanceInProgress)
            );
            let a = ok(c.join(req("g", Some(&a.member_id), 10_000)).await);
            assert_eq!(a.generation, 3);
            assert_eq!(partitions(&a), vec![0, 1, 2, 3]);
        });
    }

    #[test]
    fn leave_triggers_a_rebalance_for_the_rest() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            let (a, b) = two_members(&c, 10_000, 10_000).await;
            ok(c.leave("g", &b.member_id));
            assert_eq!(c.leave("g", &b.member_id), Err(GroupError::UnknownMember));
            assert_eq!(
                c.heartbeat("g", &a.member_id, 2),
                Err(GroupError::RebalanceInProgress)
            );
            let a = ok(c.join(req("g", Some(&a.member_id), 10_000)).await);
            assert_eq!((a.generation, a.members.len()), (3, 1));
            assert_eq!(partitions(&a), vec![0, 1, 2, 3]);
        });
    }

    #[test]
    fn waiting_join_is_completed_by_tick_when_the_rebalance_times_out() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            let a = ok(c.join(req("g", None, 10_000)).await);
            let c2 = c.clone();
            let b = glommio::spawn_local(async move { c2.join(req("g", None, 10_000)).await });
            settle().await;
            // a never rejoins; the rebalance timeout (5 s) removes it.
            c.tick(Instant::now() + Duration::from_secs(6));
            let b = ok(b.await);
            assert_eq!((b.generation, b.members.len()), (2, 1));
            assert_eq!(
                c.heartbeat("g", &a.member_id, 1),
                Err(GroupError::UnknownMember)
            );
        });
    }

    #[test]
    fn stale_generation_commit_is_rejected_with_illegal_generation() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            let (a, _b) = two_members(&c, 10_000, 10_000).await;
            let stale = c.commit("g", &a.member_id, 1, vec![off(0, 5)]).await;
            assert_eq!(stale, Err(GroupError::IllegalGeneration));
            ok(c.commit("g", &a.member_id, 2, vec![off(0, 5)]).await);
            assert_eq!(ok(c.fetch_offsets("g", None).await), vec![off(0, 5)]);
        });
    }

    #[test]
    fn unknown_member_is_rejected_everywhere() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            let ghost = Some("client-ghost");
            assert_eq!(
                c.join(req("g", ghost, 10_000)).await,
                Err(GroupError::UnknownMember)
            );
            assert_eq!(
                c.heartbeat("g", "client-ghost", 0),
                Err(GroupError::UnknownMember)
            );
            ok(c.join(req("g", None, 10_000)).await);
            assert_eq!(
                c.join(req("g", ghost, 10_000)).await,
                Err(GroupError::UnknownMember)
            );
            assert_eq!(
                c.heartbeat("g", "client-ghost", 1),
                Err(GroupError::UnknownMember)
            );
            assert_eq!(c.leave("g", "client-ghost"), Err(GroupError::UnknownMember));
            let commit = c.commit("g", "client-ghost", 1, vec![off(0, 1)]).await;
            assert_eq!(commit, Err(GroupError::UnknownMember));
            // A simple commit is refused while the group has members.
            assert_eq!(
                c.commit("g", "", -1, vec![off(0, 1)]).await,
                Err(GroupError::UnknownMember)
            );
        });
    }

    #[test]
    fn bad_group_ids_and_session_timeouts_are_rejected() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            assert_eq!(
                c.join(req("", None, 10_000)).await,
                Err(GroupError::InvalidGroupId)
            );
            let long = "x".repeat(256);
            assert_eq!(
                c.join(req(&long, None, 10_000)).await,
                Err(GroupError::InvalidGroupId)
            );
            assert_eq!(
                c.join(req("g", None, 99)).await,
                Err(GroupError::InvalidSessionTimeout)
            );
            assert_eq!(
                c.join(req("g", None, 300_001)).await,
                Err(GroupError::InvalidSessionTimeout)
            );
            assert!(c.list().is_empty(), "refused joins create no group");
        });
    }

    #[test]
    fn commits_are_durable_across_a_new_coordinator_on_the_same_dir() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            ok(c.commit("orders/eu", "", -1, vec![off(0, 10), off(1, 20)])
                .await);
            ok(c.commit("orders/eu", "", -1, vec![off(0, 11)]).await);
            ok(c.close().await);
            let c = coordinator(&root);
            assert_eq!(
                c.list(),
                vec![("orders/eu".to_string(), "Empty".to_string())]
            );
            let got = ok(c.fetch_offsets("orders/eu", None).await);
            assert_eq!(got, vec![off(0, 11), off(1, 20)]);
            ok(c.close().await);
        });
    }

    #[test]
    fn torn_last_record_in_the_offsets_file_is_ignored_and_truncated() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            ok(c.commit("g", "", -1, vec![off(0, 1)]).await);
            ok(c.commit("g", "", -1, vec![off(0, 2)]).await);
            ok(c.close().await);
            let path: PathBuf = root.join("g").join("offsets.log");
            let good_len = file_len(&path);
            // A torn append: a header promising 100 bytes followed by only 10.
            let mut torn = 100u32.to_le_bytes().to_vec();
            torn.extend_from_slice(&[7u8; 14]);
            append(&path, &torn);
            let c = coordinator(&root);
            assert_eq!(ok(c.fetch_offsets("g", None).await), vec![off(0, 2)]);
            assert_eq!(file_len(&path), good_len, "torn tail truncated");
            // Appends continue after the valid prefix.
            ok(c.commit("g", "", -1, vec![off(0, 3)]).await);
            ok(c.close().await);
            let c = coordinator(&root);
            assert_eq!(ok(c.fetch_offsets("g", None).await), vec![off(0, 3)]);
            ok(c.close().await);
        });
    }

    #[test]
    fn two_groups_are_independent() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            let a = ok(c.join(req("g1", None, 10_000)).await);
            let b = ok(c.join(req("g2", None, 10_000)).await);
            assert_eq!((a.generation, b.generation), (1, 1));
            assert_eq!((partitions(&a).len(), partitions(&b).len()), (4, 4));
            ok(c.commit("g1", &a.member_id, 1, vec![off(0, 100)]).await);
            ok(c.commit("g2", &b.member_id, 1, vec![off(0, 200)]).await);
            ok(c.leave("g1", &a.member_id));
            assert_eq!(c.describe("g1").state, "Empty");
            assert_eq!(c.describe("g2").state, "Stable");
            assert_eq!(c.heartbeat("g2", &b.member_id, 1), Ok(()));
            assert_eq!(ok(c.fetch_offsets("g1", None).await), vec![off(0, 100)]);
            assert_eq!(ok(c.fetch_offsets("g2", None).await), vec![off(0, 200)]);
            assert_eq!(
                c.heartbeat("g2", &a.member_id, 1),
                Err(GroupError::UnknownMember)
            );
        });
    }

    #[test]
    fn delete_refuses_a_group_with_members_and_removes_the_offsets_of_an_empty_one() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            let a = ok(c.join(req("g", None, 10_000)).await);
            ok(c.commit("g", &a.member_id, 1, vec![off(0, 7)]).await);
            assert_eq!(c.delete("g").await, Err(GroupError::NotEmpty));
            ok(c.leave("g", &a.member_id));
            ok(c.delete("g").await);
            assert_eq!(c.describe("g").state, "Dead");
            assert!(c.list().is_empty());
            assert!(!root.join("g").exists(), "offsets directory removed");
            assert_eq!(ok(c.fetch_offsets("g", None).await), vec![]);
        });
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path)
            .map(|m| m.len())
            .unwrap_or_else(|e| panic!("stat: {e}"))
    }

    fn append(path: &Path, bytes: &[u8]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open: {e}"));
        f.write_all(bytes).unwrap_or_else(|e| panic!("append: {e}"));
    }
}
