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
//! offsets (`offsets::OffsetLog`, the shard's offsets log).
//!
//! The offsets log opens in a task started by [`GroupCoordinator::new`] (replay, then
//! the upgrade of an older release's files); every async call waits for it, so no
//! group request is answered from a partial view. If it fails to open, the next call
//! tries again.
//!
//! Bound: at most `GroupConfig::max_groups` groups per shard (with members or with
//! committed offsets). Groups that have neither are dropped by `tick`, as Kafka drops
//! an empty group whose offsets are gone.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalSender};

use super::group::{Group, GroupState, JoinStep, Notice};
use super::legacy;
use super::offsets::{OffsetLog, LOG_DIR};
use super::{check_group_id, CommittedOffset, GroupConfig, GroupDescription, GroupError};
use super::{JoinRequest, JoinResult};
use super::{OFFSET_METADATA_MAX_BYTES, PARTITIONS_PER_COMMIT_MAX, TOPICS_PER_MEMBER_MAX};
use super::{PARTITIONS_PER_TOPIC_MAX, TOPIC_NAME_MAX_BYTES};
use crate::catalog::group_owner;

/// Longest client id copied into a member id.
const CLIENT_ID_IN_MEMBER_ID_MAX_BYTES: usize = 128;

type JoinWaiter = LocalSender<Result<JoinResult, GroupError>>;
type LoadWaiter = LocalSender<Result<Rc<Loaded>, GroupError>>;

/// The shard's open offsets log and what is left of an older release's files.
struct Loaded {
    log: Rc<OffsetLog>,
    /// Old group directories whose shortened names do not say the group id: carried
    /// over on the group's first touch (directory name → path).
    legacy_shortened: RefCell<HashMap<String, std::path::PathBuf>>,
}

enum Load {
    Loading(Vec<LoadWaiter>),
    Ready(Rc<Loaded>),
    /// The last load failed; the next call starts another.
    Failed,
}

/// Every consumer group of one shard. See the module docs.
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: RefCell<BTreeMap<String, Group>>,
    /// group → member → the join call waiting for the rebalance to complete.
    waiters: RefCell<HashMap<String, HashMap<String, JoinWaiter>>>,
    load: Rc<RefCell<Load>>,
    /// The loaded log's groups were added to `groups`.
    merged: Cell<bool>,
    closed: Cell<bool>,
    /// Random per coordinator, so member ids never repeat across restarts.
    member_nonce: u64,
    member_seq: Cell<u64>,
}

impl GroupCoordinator {
    /// Creates the coordinator and starts opening the shard's offsets log. Call it on
    /// the shard's executor (the load is a task there).
    pub fn new(config: GroupConfig) -> Rc<GroupCoordinator> {
        let c = Rc::new(GroupCoordinator {
            config,
            groups: RefCell::new(BTreeMap::new()),
            waiters: RefCell::new(HashMap::new()),
            load: Rc::new(RefCell::new(Load::Failed)),
            merged: Cell::new(false),
            closed: Cell::new(false),
            member_nonce: random_nonce(),
            member_seq: Cell::new(0),
        });
        c.start_load(Vec::new());
        c
    }

    /// Waits until the offsets log is open (and its groups listed). `list()` shows the
    /// groups with committed offsets from then on.
    pub async fn loaded(&self) -> Result<(), GroupError> {
        self.offsets().await.map(|_| ())
    }

    fn start_load(&self, waiters: Vec<LoadWaiter>) {
        *self.load.borrow_mut() = Load::Loading(waiters);
        let slot = self.load.clone();
        let config = self.config.clone();
        glommio::spawn_local(async move {
            let loaded = open_offsets(&config).await.map(Rc::new);
            if let Err(e) = &loaded {
                tracing::error!(shard = config.shard, error = %e, "cannot open the offsets log");
            }
            let next = match &loaded {
                Ok(l) => Load::Ready(l.clone()),
                Err(_) => Load::Failed,
            };
            let waiters = match std::mem::replace(&mut *slot.borrow_mut(), next) {
                Load::Loading(w) => w,
                _ => Vec::new(),
            };
            for w in waiters {
                let _ = w.try_send(loaded.clone()); // A waiter may have gone away; fine.
            }
        })
        .detach();
    }

    /// The open offsets log, waiting for (or retrying) its load.
    async fn offsets(&self) -> Result<Rc<Loaded>, GroupError> {
        if self.closed.get() {
            return Err(GroupError::Io("group coordinator is closed".into()));
        }
        let (tx, rx) = local_channel::new_bounded(1);
        let retry = {
            let mut load = self.load.borrow_mut();
            match &mut *load {
                Load::Ready(l) => {
                    let l = l.clone();
                    drop(load);
                    self.merge_loaded();
                    return Ok(l);
                }
                Load::Loading(w) => {
                    w.push(tx);
                    None
                }
                Load::Failed => Some(tx),
            }
        };
        if let Some(tx) = retry {
            // Outside the borrow: glommio may poll the new task right away.
            self.start_load(vec![tx]);
        }
        let loaded = rx
            .recv()
            .await
            .unwrap_or_else(|| Err(GroupError::Io("offsets log load went away".into())))?;
        self.merge_loaded();
        Ok(loaded)
    }

    /// The log of `group`'s shard, with an older release's shortened-name directory of
    /// this group carried over first.
    async fn offsets_of(&self, group: &str) -> Result<Rc<OffsetLog>, GroupError> {
        let loaded = self.offsets().await?;
        let dir = if loaded.legacy_shortened.borrow().is_empty() {
            None
        } else {
            let name = legacy::escape_group_id(group);
            loaded.legacy_shortened.borrow_mut().remove(&name)
        };
        if let Some(dir) = dir {
            import_legacy(&loaded.log, vec![(group.to_string(), dir)]).await?;
        }
        Ok(loaded.log.clone())
    }

    /// Adds the groups found in the log (those this shard owns) to `groups`, once.
    fn merge_loaded(&self) {
        if self.merged.get() {
            return;
        }
        let Load::Ready(loaded) = &*self.load.borrow() else {
            return;
        };
        self.merged.set(true);
        let mut groups = self.groups.borrow_mut();
        for id in loaded.log.group_ids() {
            if self.owns(&id) {
                groups.entry(id.clone()).or_insert_with(|| Group::new(&id));
            }
        }
    }

    fn owns(&self, group: &str) -> bool {
        group_owner(group, self.config.shards) == self.config.shard
    }

    /// Makes room for `group` in `groups` (creating it) unless the shard is at its cap.
    fn admit<'a>(
        &self,
        groups: &'a mut BTreeMap<String, Group>,
        group: &str,
    ) -> Result<&'a mut Group, GroupError> {
        if !groups.contains_key(group) && groups.len() >= self.config.max_groups {
            tracing::warn!(%group, max = self.config.max_groups, "group refused: the shard holds its maximum of groups");
            return Err(GroupError::TooManyGroups {
                max: self.config.max_groups,
            });
        }
        Ok(groups
            .entry(group.to_string())
            .or_insert_with(|| Group::new(group)))
    }

    /// Join or rejoin (JoinGroup and SyncGroup in one). A new member or a changed
    /// subscription starts a rebalance; the call waits until it completes (every known
    /// member rejoined, or the rebalance timeout removed the rest) and resolves with
    /// this member's assignment. A Stable group and an unchanged subscription answer
    /// at once with the current generation.
    pub async fn join(&self, req: JoinRequest) -> Result<JoinResult, GroupError> {
        check_group_id(&req.group)?;
        self.check_join(&req)?;
        self.offsets().await?;
        let now = Instant::now();
        let delay = Duration::from_millis(u64::from(self.config.initial_rebalance_delay_ms));
        let (member, rx, notices) = {
            let mut groups = self.groups.borrow_mut();
            let is_new = req.member_id.as_deref().is_none_or(str::is_empty);
            if !is_new && !groups.contains_key(&req.group) {
                return Err(GroupError::UnknownMember);
            }
            let group = self.admit(&mut groups, &req.group)?;
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
        let log = self.offsets_of(group).await?;
        {
            let now = Instant::now();
            let mut groups = self.groups.borrow_mut();
            match groups.get_mut(group) {
                Some(g) => g.check_commit(member_id, generation, now)?,
                None if member_id.is_empty() && generation < 0 => {
                    if offsets.is_empty() {
                        return Ok(());
                    }
                    // A simple commit creates the group (visible to list/describe),
                    // counted before the write so concurrent ones respect the cap.
                    self.admit(&mut groups, group)?;
                }
                None => return Err(GroupError::UnknownMember),
            }
        }
        if offsets.is_empty() {
            return Ok(());
        }
        log.commit(group, offsets).await
    }

    /// Kafka TxnOffsetCommit v3's member and generation, checked when the offsets join
    /// the transaction (KIP-447): see `Group::check_txn_commit`. A group that does not
    /// exist has no members and no generation.
    pub fn check_txn_commit(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        check_group_id(group)?;
        match self.groups.borrow().get(group) {
            Some(g) => g.check_txn_commit(member_id, generation),
            None if !member_id.is_empty() => Err(GroupError::UnknownMember),
            None if generation >= 0 => Err(GroupError::IllegalGeneration),
            None => Ok(()),
        }
    }

    /// A committed transaction's offsets for `group` (Kafka's TxnOffsetCommit, applied
    /// when its transaction commits): durable as any commit, without member or
    /// generation checks (the transactional producer is no member), and not refused at
    /// the shard's group cap: the transaction's records are already committed, so
    /// refusing its offsets would break exactly-once; the transaction bounds (groups per
    /// transaction, transactional ids per shard) bound what this can add.
    pub async fn commit_transactional(
        &self,
        group: &str,
        offsets: Vec<CommittedOffset>,
    ) -> Result<(), GroupError> {
        check_group_id(group)?;
        check_offsets(&offsets)?;
        if offsets.is_empty() {
            return Ok(());
        }
        let log = self.offsets_of(group).await?;
        self.groups
            .borrow_mut()
            .entry(group.to_string())
            .or_insert_with(|| Group::new(group));
        log.commit(group, offsets).await
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
        let log = self.offsets_of(group).await?;
        log.fetch(group, partitions.as_deref()).await
    }

    /// Kafka DescribeGroups; an unknown group is "Dead" with generation 0.
    pub fn describe(&self, group: &str) -> GroupDescription {
        self.merge_loaded();
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

    /// Kafka ListGroups: (group id, state), sorted by group id. Includes the groups
    /// with committed offsets once the offsets log is open (see [`Self::loaded`]).
    pub fn list(&self) -> Vec<(String, String)> {
        self.merge_loaded();
        self.groups
            .borrow()
            .iter()
            .map(|(id, g)| (id.clone(), g.state().as_str().to_string()))
            .collect()
    }

    /// Kafka DeleteGroups: only a group without members; removes its offsets.
    pub async fn delete(&self, group: &str) -> Result<(), GroupError> {
        check_group_id(group)?;
        let log = self.offsets_of(group).await?;
        {
            let mut groups = self.groups.borrow_mut();
            if groups.get(group).is_some_and(Group::has_members) {
                return Err(GroupError::NotEmpty);
            }
            // Gone from now on: a join during the tombstones' write starts a fresh group.
            groups.remove(group);
        }
        log.delete_group(group).await?;
        tracing::info!(%group, "group deleted");
        Ok(())
    }

    /// Kafka OffsetDelete: deletes `group`'s committed offsets of `partitions`, durably,
    /// except those of topics a member is subscribed to. One answer per partition: true
    /// when deleted (or there was none), false when a member's subscription keeps it
    /// (Kafka's GROUP_SUBSCRIBED_TO_TOPIC). `None`: the group does not exist.
    pub async fn delete_offsets(
        &self,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Option<Vec<bool>>, GroupError> {
        check_group_id(group)?;
        if partitions.len() > PARTITIONS_PER_COMMIT_MAX {
            return Err(GroupError::InvalidRequest(format!(
                "offset delete of more than {PARTITIONS_PER_COMMIT_MAX} partitions"
            )));
        }
        let log = self.offsets_of(group).await?;
        let deletable: Vec<bool> = {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(group) else {
                return Ok(None);
            };
            partitions
                .iter()
                .map(|(topic, _)| !g.subscribed_to(topic))
                .collect()
        };
        let deleted: Vec<(String, i32)> = partitions
            .into_iter()
            .zip(&deletable)
            .filter(|(_, ok)| **ok)
            .map(|(p, _)| p)
            .collect();
        log.delete_offsets(group, &deleted).await?;
        if !deleted.is_empty() {
            tracing::info!(%group, partitions = deleted.len(), "committed offsets deleted");
        }
        Ok(Some(deletable))
    }

    /// Called periodically by the server (e.g. every 100 ms): expires sessions and
    /// completes rebalances that are due. `now` is a parameter so tests are exact.
    pub fn tick(&self, now: Instant) {
        let mut all = Vec::new();
        {
            let mut groups = self.groups.borrow_mut();
            self.drop_forgotten(&mut groups);
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

    /// Waits for queued commits, closes the offsets log, and fails waiting joins.
    /// Later calls fail.
    pub async fn close(&self) -> Result<(), GroupError> {
        self.closed.set(true);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters.into_values().flat_map(HashMap::into_values) {
            let _ = w.try_send(Err(GroupError::Io(
                "group coordinator is shutting down".into(),
            )));
        }
        let loaded = match &*self.load.borrow() {
            Load::Ready(l) => Some(l.clone()),
            _ => None,
        };
        match loaded {
            Some(l) => l.log.close().await,
            None => Ok(()),
        }
    }

    /// Drops groups with no members and no committed offsets (they hold nothing a
    /// client could ask for, and would count against the cap forever).
    fn drop_forgotten(&self, groups: &mut BTreeMap<String, Group>) {
        let Load::Ready(loaded) = &*self.load.borrow() else {
            return;
        };
        groups.retain(|id, g| {
            g.has_members() || g.state() != GroupState::Empty || loaded.log.has_offsets(id)
        });
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

/// Opens the shard's offsets log, replays it, and carries over the files of an older
/// release for the groups this shard owns.
async fn open_offsets(config: &GroupConfig) -> Result<Loaded, GroupError> {
    let dir = config.data_dir.join(LOG_DIR).join(config.shard.to_string());
    let log = OffsetLog::open(
        dir,
        config.offsets_segment_bytes,
        config.offsets_compact_bytes,
    )
    .await?;
    let foreign = log
        .group_ids()
        .iter()
        .filter(|g| group_owner(g, config.shards) != config.shard)
        .count();
    if foreign > 0 {
        // The shard count changed since they were committed: another shard serves
        // these groups now, without these offsets (see the groups README).
        tracing::warn!(
            shard = config.shard,
            groups = foreign,
            "offsets log holds groups this shard no longer owns; their offsets are kept but not served"
        );
    }
    let mut mine = Vec::new();
    let mut shortened = HashMap::new();
    for old in legacy::scan(&config.data_dir).await {
        match old.group {
            Some(group) if group_owner(&group, config.shards) == config.shard => {
                mine.push((group, old.path));
            }
            Some(_) => {} // Another shard's group: that shard carries it over.
            None => {
                shortened.insert(old.name, old.path);
            }
        }
    }
    import_legacy(&log, mine).await?;
    Ok(Loaded {
        log,
        legacy_shortened: RefCell::new(shortened),
    })
}

/// Carries old-format group directories into the log, then removes them. A group
/// that already has offsets in the log is not imported again (the log is the truth
/// once it holds the group: its directory is left over from an interrupted upgrade).
async fn import_legacy(
    log: &Rc<OffsetLog>,
    dirs: Vec<(String, std::path::PathBuf)>,
) -> Result<(), GroupError> {
    let mut imports = Vec::new();
    for (group, dir) in &dirs {
        if check_group_id(group).is_err() || log.has_offsets(group) {
            continue;
        }
        let offsets = legacy::read(dir).await?;
        if !offsets.is_empty() {
            imports.push((group.clone(), offsets));
        }
    }
    let groups = imports.len();
    log.import(imports).await?;
    for (_, dir) in &dirs {
        legacy::remove(dir).await?;
    }
    if !dirs.is_empty() {
        tracing::info!(
            groups,
            dirs = dirs.len(),
            "carried committed offsets of an older release into the offsets log"
        );
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
    fn a_transactional_commit_needs_no_member_and_lands_in_a_group_with_members() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = GroupCoordinator::new(GroupConfig {
                max_groups: 1,
                ..GroupConfig::new(root.clone())
            });
            let a = ok(c.join(req("g", None, 10_000)).await);
            // A plain commit without the member is refused; a transaction's is not.
            assert_eq!(
                c.commit("g", "", -1, vec![off(0, 5)]).await,
                Err(GroupError::UnknownMember)
            );
            ok(c.commit_transactional("g", vec![off(0, 5), off(1, 7)])
                .await);
            // Past the group cap too: the transaction has already committed.
            ok(c.commit_transactional("other", vec![off(2, 9)]).await);
            assert_eq!(
                ok(c.fetch_offsets("g", None).await),
                vec![off(0, 5), off(1, 7)]
            );
            assert_eq!(ok(c.fetch_offsets("other", None).await), vec![off(2, 9)]);
            assert_eq!(c.heartbeat("g", &a.member_id, a.generation), Ok(()));
        });
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
            ok(c.loaded().await);
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
    fn torn_tail_of_the_offsets_log_is_cut_and_commits_continue_after_it() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = coordinator(&root);
            ok(c.commit("g", "", -1, vec![off(0, 1)]).await);
            ok(c.commit("g", "", -1, vec![off(0, 2)]).await);
            ok(c.close().await);
            // A torn append after the last whole batch: a batch header promising
            // 100 bytes, then garbage, where the next batch would have gone.
            let segment = log_dir(&root).join(format!("{:020}.log", 0));
            let data_end = data_len(&segment);
            let mut torn = 0i64.to_be_bytes().to_vec();
            torn.extend_from_slice(&100i32.to_be_bytes());
            torn.extend_from_slice(&[7u8; 14]);
            write_at(&segment, data_end, &torn);
            let c = coordinator(&root);
            assert_eq!(ok(c.fetch_offsets("g", None).await), vec![off(0, 2)]);
            ok(c.commit("g", "", -1, vec![off(0, 3)]).await);
            ok(c.close().await);
            let c = coordinator(&root);
            assert_eq!(ok(c.fetch_offsets("g", None).await), vec![off(0, 3)]);
            ok(c.close().await);
        });
    }

    #[test]
    fn many_commits_keep_the_offsets_log_bounded_by_checkpoints() {
        const COMPACT_BYTES: u64 = 64 << 10;
        const SEGMENT_BYTES: u64 = 16 << 10;
        // Without checkpoints the log would reach ~110 B × 5000 = 550 KB.
        const BOUND_BYTES: u64 = 2 * COMPACT_BYTES + 2 * SEGMENT_BYTES;
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let config = GroupConfig {
                offsets_segment_bytes: SEGMENT_BYTES,
                offsets_compact_bytes: COMPACT_BYTES,
                ..GroupConfig::new(root.clone())
            };
            let c = GroupCoordinator::new(config.clone());
            let mut peak = 0;
            for round in 0..250i64 {
                let commits: Vec<_> = (0..20)
                    .map(|task| {
                        let c = c.clone();
                        let group = format!("g{}", task % 4);
                        glommio::spawn_local(async move {
                            c.commit(&group, "", -1, vec![off(task % 3, round)]).await
                        })
                    })
                    .collect();
                for t in commits {
                    ok(t.await);
                }
                peak = peak.max(dir_bytes(&log_dir(&root)));
            }
            assert!(
                peak <= BOUND_BYTES,
                "offsets log peaked at {peak} bytes on disk (bound {BOUND_BYTES})"
            );
            ok(c.close().await);
            let c = GroupCoordinator::new(config);
            for g in 0..4 {
                let got = ok(c.fetch_offsets(&format!("g{g}"), None).await);
                assert_eq!(got, vec![off(0, 249), off(1, 249), off(2, 249)], "g{g}");
            }
            ok(c.close().await);
        });
    }

    #[test]
    fn offsets_of_an_older_release_are_carried_into_the_log_and_their_files_removed() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        let long_id = "/".repeat(100); // Its escaped name is shortened: found on touch.
        let old = [
            ("orders/eu", vec![off(0, 10), off(1, 20)]),
            (long_id.as_str(), vec![off(2, 7)]),
        ];
        for (group, offsets) in &old {
            let group_dir = root.join(legacy::escape_group_id(group));
            std::fs::create_dir_all(&group_dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
            // Two records: the later value of partition 0 wins.
            let first = ok(legacy::encode_record(&[off(0, 1)]));
            let second = ok(legacy::encode_record(offsets));
            std::fs::write(group_dir.join("offsets.log"), [first, second].concat())
                .unwrap_or_else(|e| panic!("write: {e}"));
        }
        run_local(async move {
            let c = coordinator(&root);
            ok(c.loaded().await);
            assert_eq!(
                c.list(),
                vec![("orders/eu".to_string(), "Empty".to_string())]
            );
            assert!(!root.join("orders%2Feu").exists(), "old directory removed");
            assert_eq!(
                ok(c.fetch_offsets(&long_id, None).await),
                vec![off(0, 1), off(2, 7)]
            );
            ok(c.close().await);
            let leftovers: Vec<_> = std::fs::read_dir(&root)
                .unwrap_or_else(|e| panic!("read_dir: {e}"))
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect();
            assert_eq!(
                leftovers,
                vec![std::ffi::OsString::from("__consumer_offsets")]
            );
            // From the log alone now.
            let c = coordinator(&root);
            assert_eq!(
                ok(c.fetch_offsets("orders/eu", None).await),
                vec![off(0, 10), off(1, 20)]
            );
            assert_eq!(
                ok(c.fetch_offsets(&long_id, None).await),
                vec![off(0, 1), off(2, 7)]
            );
            ok(c.close().await);
        });
    }

    #[test]
    fn a_new_group_past_the_cap_is_refused_and_room_comes_back_when_one_goes() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = GroupCoordinator::new(GroupConfig {
                max_groups: 2,
                ..GroupConfig::new(root.clone())
            });
            let a = ok(c.join(req("g1", None, 10_000)).await);
            ok(c.commit("g2", "", -1, vec![off(0, 1)]).await);
            let full = Err(GroupError::TooManyGroups { max: 2 });
            assert_eq!(c.join(req("g3", None, 10_000)).await.map(|_| ()), full);
            assert_eq!(c.commit("g3", "", -1, vec![off(0, 1)]).await, full);
            assert_eq!(c.list().len(), 2, "refused groups are not created");
            // Groups already there keep working.
            ok(c.commit("g1", &a.member_id, 1, vec![off(0, 5)]).await);
            ok(c.commit("g2", "", -1, vec![off(0, 2)]).await);
            // Deleting one makes room.
            ok(c.delete("g2").await);
            ok(c.commit("g3", "", -1, vec![off(0, 1)]).await);
            assert_eq!(c.join(req("g4", None, 10_000)).await.map(|_| ()), full);
            ok(c.close().await);
        });
    }

    #[test]
    fn an_empty_group_without_offsets_is_dropped_and_frees_its_place() {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        run_local(async move {
            let c = GroupCoordinator::new(GroupConfig {
                max_groups: 1,
                ..GroupConfig::new(root.clone())
            });
            let a = ok(c.join(req("g1", None, 10_000)).await);
            ok(c.leave("g1", &a.member_id));
            assert_eq!(c.describe("g1").state, "Empty");
            c.tick(Instant::now());
            assert_eq!(c.describe("g1").state, "Dead");
            ok(c.join(req("g2", None, 10_000)).await);
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
            assert_eq!(ok(c.fetch_offsets("g", None).await), vec![]);
            ok(c.close().await);
            let c = coordinator(&root);
            assert!(c.list().is_empty() && ok(c.fetch_offsets("g", None).await).is_empty());
            ok(c.close().await);
        });
    }

    fn log_dir(root: &Path) -> PathBuf {
        root.join(LOG_DIR).join("0")
    }

    /// Bytes of every file in `dir` (preallocated space included).
    fn dir_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Where the batches of a segment file end (the rest is preallocated zeros).
    fn data_len(segment: &Path) -> u64 {
        let bytes = std::fs::read(segment).unwrap_or_else(|e| panic!("read: {e}"));
        let mut pos = 0usize;
        while let Ok(h) = crate::batch::BatchHeader::parse(&bytes[pos..]) {
            if h.batch_length <= 0 {
                break;
            }
            pos += h.total_len();
        }
        pos as u64
    }

    fn write_at(path: &Path, pos: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open: {e}"));
        f.write_all_at(bytes, pos)
            .unwrap_or_else(|e| panic!("write: {e}"));
    }
}
