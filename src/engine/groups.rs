//! Consumer-group calls on the shard that owns the group. The number of groups a shard
//! owns is capped by `--max-groups-per-shard` (`GroupConfig::max_groups`); a join or
//! commit that would create one more is refused with an error that names the flag.

use super::error::EngineError;
use super::placement::Object;
use super::shard::Shard;
use super::types::{Assignment, CommitEntry, GroupDescription, JoinArgs, Joined, MemberInfo};
use peregrine_shards::groups::{CommittedOffset, GroupError, JoinRequest};
use std::rc::Rc;

/// A group call's error as the engine's; a refusal at the per-shard cap says which flag
/// sets it, which the coordinator (a library without flags) cannot.
fn refused(e: GroupError) -> EngineError {
    match e {
        GroupError::TooManyGroups { max } => EngineError::InvalidGroup(format!(
            "too many consumer groups: this broker core already owns {max}, its cap \
             (`peregrine serve --max-groups-per-shard`); delete unused groups, or raise the cap"
        )),
        other => other.into(),
    }
}

fn assignments(list: Vec<(String, Vec<i32>)>) -> Vec<Assignment> {
    list.into_iter()
        .map(|(topic, partitions)| Assignment { topic, partitions })
        .collect()
}

/// Placement is a hash of the group id: the shard that routed here computed the same.
fn assert_owned(shard: &Shard, group: &str) {
    debug_assert_eq!(
        shard.owner_of(Object::Group(group)),
        Ok(shard.id),
        "group '{group}' runs on its owner"
    );
}

pub async fn join(shard: &Rc<Shard>, args: JoinArgs) -> Result<Joined, EngineError> {
    assert_owned(shard, &args.group);
    let catalog = shard.catalog();
    let mut subscribed = Vec::with_capacity(args.topics.len());
    for topic in args.topics {
        let meta = catalog
            .topic(&topic)
            .map_err(|e| EngineError::UnknownTopic(e.to_string()))?;
        subscribed.push((topic, meta.config.partitions));
    }
    let join = JoinRequest {
        group: args.group,
        member_id: (!args.member_id.is_empty()).then_some(args.member_id),
        client_id: args.client_id,
        topics: subscribed,
        session_timeout_ms: args.session_timeout_ms,
        rebalance_timeout_ms: args.rebalance_timeout_ms,
    };
    let j = shard.groups.join(join).await.map_err(refused)?;
    Ok(Joined {
        member_id: j.member_id,
        generation: j.generation,
        leader: j.leader,
        members: j.members,
        assignment: assignments(j.assignment),
    })
}

pub fn heartbeat(
    shard: &Rc<Shard>,
    group: &str,
    member_id: &str,
    generation: i32,
) -> Result<(), EngineError> {
    assert_owned(shard, group);
    Ok(shard.groups.heartbeat(group, member_id, generation)?)
}

pub fn leave(shard: &Rc<Shard>, group: &str, member_id: &str) -> Result<(), EngineError> {
    assert_owned(shard, group);
    Ok(shard.groups.leave(group, member_id)?)
}

pub async fn commit(
    shard: &Rc<Shard>,
    group: &str,
    member_id: &str,
    generation: i32,
    offsets: Vec<CommitEntry>,
) -> Result<(), EngineError> {
    assert_owned(shard, group);
    let offsets = offsets
        .into_iter()
        .map(|c| CommittedOffset {
            topic: c.topic,
            partition: c.partition,
            offset: c.offset,
            metadata: String::new(),
        })
        .collect();
    shard
        .groups
        .commit(group, member_id, generation, offsets)
        .await
        .map_err(refused)
}

/// A committed transaction's offsets: no member or generation to check.
pub async fn commit_transactional(
    shard: &Rc<Shard>,
    group: &str,
    offsets: Vec<CommittedOffset>,
) -> Result<(), EngineError> {
    assert_owned(shard, group);
    Ok(shard.groups.commit_transactional(group, offsets).await?)
}

/// TxnOffsetCommit's member and generation (KIP-447), checked on the group's shard.
pub fn check_txn_member(
    shard: &Rc<Shard>,
    group: &str,
    member_id: &str,
    generation: i32,
) -> Result<(), EngineError> {
    assert_owned(shard, group);
    Ok(shard
        .groups
        .check_txn_commit(group, member_id, generation)?)
}

/// Committed offsets of a group, of one topic or (`None`) of every topic.
pub async fn fetch_offsets(
    shard: &Rc<Shard>,
    group: &str,
    topic: Option<&str>,
) -> Result<Vec<CommitEntry>, EngineError> {
    assert_owned(shard, group);
    let all = shard.groups.fetch_offsets(group, None).await?;
    Ok(all
        .into_iter()
        .filter(|c| topic.is_none_or(|t| c.topic == t))
        .map(|c| CommitEntry {
            topic: c.topic,
            partition: c.partition,
            offset: c.offset,
        })
        .collect())
}

pub fn describe(shard: &Rc<Shard>, group: &str) -> GroupDescription {
    assert_owned(shard, group);
    let d = shard.groups.describe(group);
    GroupDescription {
        group: d.group,
        state: d.state,
        generation: d.generation,
        members: d
            .members
            .into_iter()
            .map(|(member_id, client_id, a)| MemberInfo {
                member_id,
                client_id,
                assignment: assignments(a),
            })
            .collect(),
    }
}

pub async fn delete(shard: &Rc<Shard>, group: &str) -> Result<(), EngineError> {
    assert_owned(shard, group);
    Ok(shard.groups.delete(group).await?)
}

/// Kafka OffsetDelete on the group's shard (`GroupCoordinator::delete_offsets`).
pub async fn delete_offsets(
    shard: &Rc<Shard>,
    group: &str,
    partitions: Vec<(String, i32)>,
) -> Result<Option<Vec<bool>>, EngineError> {
    assert_owned(shard, group);
    Ok(shard.groups.delete_offsets(group, partitions).await?)
}

/// The groups this shard owns: (id, state), once its offsets log is open (before, a
/// group known only by its committed offsets would be missing).
pub async fn list_here(shard: &Rc<Shard>) -> Result<Vec<(String, String)>, EngineError> {
    shard.groups.loaded().await?;
    Ok(shard.groups.list())
}
