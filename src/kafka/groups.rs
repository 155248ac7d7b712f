//! Consumer groups for Kafka clients on the native coordinator.
//!
//! The coordinator assigns partitions itself (its JoinGroup is JoinGroup and SyncGroup
//! in one, `shards/src/groups`), so the Kafka protocol's client-side assignment is
//! reduced to a formality: JoinGroup waits for the rebalance and gives the leader the
//! member list, the leader's SyncGroup assignment is accepted and not used, and every
//! member's SyncGroup returns what the coordinator assigned it for that generation.
//! Only the "consumer" protocol type is served; its subscription metadata says which
//! topics a member wants.
//!
//! OffsetFetch v7's `require_stable` (KIP-447, sent by read_committed consumers) is
//! answered UNSTABLE_OFFSET_COMMIT while a transaction that commits offsets for the
//! group is open or committing, so a consumer never starts from offsets a committing
//! transaction is about to move.
//!
//! With `--acls`, as Kafka: joining, syncing, heartbeats, leaving and committing need
//! Read on the group (GROUP_AUTHORIZATION_FAILED), a commit also Read on each topic
//! (only those partitions are refused, the others committed); OffsetFetch and
//! DescribeGroups need Describe on the group, and OffsetFetch answers only topics the
//! client may Describe; ListGroups lists the groups the client may Describe (all with
//! Describe on the cluster); DeleteGroups needs Delete, OffsetDelete Delete on the group
//! and Read on each topic. A member joins with the
//! subscribed topics it may Describe, so the coordinator never assigns it others.

use super::acls::{self, Op};
use super::{errors, str_bytes, Ctx};
use crate::engine::{Assignment, CommitEntry, JoinArgs};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

const PROTOCOL_TYPE: &str = "consumer";
/// Version of the consumer protocol assignment we write (topic partitions + user data).
const ASSIGNMENT_VERSION: i16 = 0;

/// The Kafka code of an engine call's outcome.
fn code_of<T>(result: &Result<T, crate::engine::EngineError>) -> i16 {
    result.as_ref().map_or_else(errors::code, |_| errors::NONE)
}

/// The topics of a consumer-protocol subscription (`i16 version | subscription`).
fn subscribed_topics(mut metadata: Bytes) -> Result<Vec<String>, String> {
    if metadata.len() < 2 {
        return Err("subscription metadata too short".into());
    }
    // Later versions only append fields: read them as the newest we know.
    let version = metadata.get_i16().clamp(0, 3);
    let sub = ConsumerProtocolSubscription::decode(&mut metadata, version)
        .map_err(|e| format!("bad subscription metadata: {e}"))?;
    Ok(sub.topics.iter().map(|t| t.to_string()).collect())
}

fn subscription_bytes(topics: &[String]) -> Bytes {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str_bytes(t)).collect());
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    // Encoding a struct we just built at version 0 cannot fail.
    let _ = sub.encode(&mut buf, 0);
    buf.freeze()
}

fn assignment_bytes(assignment: &[Assignment]) -> Bytes {
    let parts = assignment
        .iter()
        .map(|a| {
            TopicPartition::default()
                .with_topic(TopicName(str_bytes(&a.topic)))
                .with_partitions(a.partitions.clone())
        })
        .collect();
    let body = ConsumerProtocolAssignment::default().with_assigned_partitions(parts);
    let mut buf = BytesMut::new();
    buf.put_i16(ASSIGNMENT_VERSION);
    let _ = body.encode(&mut buf, ASSIGNMENT_VERSION);
    buf.freeze()
}

pub async fn join(
    ctx: &Ctx,
    req: JoinGroupRequest,
    client_id: &str,
    version: i16,
) -> JoinGroupResponse {
    let failed = |code: i16| {
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_member_id(req.member_id.clone())
    };
    if let Err((code, _)) = acls::check_group(ctx, Op::Read, req.group_id.0.as_str()) {
        return failed(code);
    }
    if req.protocol_type.as_str() != PROTOCOL_TYPE {
        return failed(ResponseError::InconsistentGroupProtocol.code());
    }
    // The member's first choice names the protocol; the leader's assignor is not used.
    let Some(protocol) = req.protocols.first() else {
        return failed(ResponseError::InconsistentGroupProtocol.code());
    };
    let topics = match subscribed_topics(protocol.metadata.clone()) {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(group = %req.group_id.0, "JoinGroup refused: {e}");
            return failed(ResponseError::InconsistentGroupProtocol.code());
        }
    };
    // A subscription may name topics that do not exist (yet): join with the others.
    let topics: Vec<String> = topics
        .into_iter()
        .filter(|t| ctx.engine.topic_exists(t) && acls::topic(ctx, Op::Describe, t))
        .collect();
    let args = JoinArgs {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        client_id: client_id.to_string(),
        topics: topics.clone(),
        session_timeout_ms: req.session_timeout_ms.max(0) as u32,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms.max(0) as u32
        } else {
            0
        },
    };
    let (member_id, generation, leader, members) = match ctx.engine.join_group(args).await {
        Ok(j) => (j.member_id, j.generation, j.leader, j.members),
        Err(e) => return failed(errors::code(&e)),
    };
    let metadata = subscription_bytes(&topics);
    let listed = if member_id == leader {
        members
            .iter()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(str_bytes(m))
                    .with_metadata(metadata.clone())
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut response = JoinGroupResponse::default()
        .with_generation_id(generation)
        .with_protocol_name(Some(protocol.name.clone()))
        .with_leader(str_bytes(&leader))
        .with_member_id(str_bytes(&member_id))
        .with_members(listed);
    if version >= 7 {
        response = response.with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)));
    }
    response
}

pub async fn sync(ctx: &Ctx, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default();
    if version >= 5 {
        response = response
            .with_protocol_type(req.protocol_type.clone())
            .with_protocol_name(req.protocol_name.clone());
    }
    if let Err((code, _)) = acls::check_group(ctx, Op::Read, req.group_id.0.as_str()) {
        return response.with_error_code(code);
    }
    let described = ctx.engine.describe_group(req.group_id.0.as_str()).await;
    let code = match described {
        Ok(d) => {
            let (state, generation, members) = (d.state, d.generation, d.members);
            match members
                .iter()
                .find(|m| m.member_id == req.member_id.as_str())
            {
                None => ResponseError::UnknownMemberId.code(),
                Some(_) if generation != req.generation_id => {
                    ResponseError::IllegalGeneration.code()
                }
                Some(_) if state != "Stable" => ResponseError::RebalanceInProgress.code(),
                Some(m) => return response.with_assignment(assignment_bytes(&m.assignment)),
            }
        }
        Err(e) => errors::code(&e),
    };
    response.with_error_code(code)
}

pub async fn heartbeat(ctx: &Ctx, req: HeartbeatRequest) -> HeartbeatResponse {
    if let Err((code, _)) = acls::check_group(ctx, Op::Read, req.group_id.0.as_str()) {
        return HeartbeatResponse::default().with_error_code(code);
    }
    let beat = ctx
        .engine
        .heartbeat(
            req.group_id.0.as_str(),
            req.member_id.as_str(),
            req.generation_id,
        )
        .await;
    let code = code_of(&beat);
    HeartbeatResponse::default().with_error_code(code)
}

pub async fn leave(ctx: &Ctx, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group = req.group_id.0.to_string();
    if let Err((code, _)) = acls::check_group(ctx, Op::Read, &group) {
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let ids: Vec<StrBytes> = if version >= 3 {
        req.members.iter().map(|m| m.member_id.clone()).collect()
    } else {
        vec![req.member_id.clone()]
    };
    let mut members = Vec::with_capacity(ids.len());
    let mut first_error = errors::NONE;
    for id in ids {
        let code = code_of(&ctx.engine.leave_group(&group, id.as_str()).await);
        if first_error == errors::NONE {
            first_error = code;
        }
        members.push(
            MemberResponse::default()
                .with_member_id(id)
                .with_error_code(code),
        );
    }
    if version >= 3 {
        // Per-member errors; the top level only fails for the whole request.
        return LeaveGroupResponse::default().with_members(members);
    }
    LeaveGroupResponse::default().with_error_code(first_error)
}

pub async fn commit(ctx: &Ctx, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group_refused = acls::check_group(ctx, Op::Read, req.group_id.0.as_str()).err();
    // A topic the client may not read is refused alone; the others are committed.
    let readable: Vec<bool> = req
        .topics
        .iter()
        .map(|t| acls::topic(ctx, Op::Read, t.name.0.as_str()))
        .collect();
    let offsets: Vec<CommitEntry> = req
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, readable)| **readable)
        .flat_map(|(t, _)| {
            t.partitions.iter().map(|p| CommitEntry {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
            })
        })
        .collect();
    let code = match &group_refused {
        Some((code, _)) => *code,
        None if offsets.is_empty() && readable.contains(&false) => errors::NONE,
        None => code_of(
            &ctx.engine
                .commit_offsets(
                    req.group_id.0.as_str(),
                    req.member_id.as_str(),
                    req.generation_id_or_member_epoch,
                    offsets,
                )
                .await,
        ),
    };
    // The coordinator commits all or nothing: one code for every readable partition.
    let topic_refused = ResponseError::TopicAuthorizationFailed.code();
    let topics = req
        .topics
        .into_iter()
        .zip(readable)
        .map(|(t, readable)| {
            let code = if readable || group_refused.is_some() {
                code
            } else {
                topic_refused
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

pub async fn fetch_offsets(
    ctx: &Ctx,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if let Err((code, _)) = acls::check_group(ctx, Op::Describe, req.group_id.0.as_str()) {
        return fetch_failed(code, version);
    }
    // v7+: a read_committed consumer asks for stable offsets only; while a transaction
    // holds offsets for the group it is told UNSTABLE_OFFSET_COMMIT and asks again.
    if version >= 7 && req.require_stable {
        match ctx
            .engine
            .txn_offsets_pending(req.group_id.0.as_str())
            .await
        {
            Ok(false) => {}
            Ok(true) => return unstable(req.topics),
            Err(e) => return fetch_failed(errors::code(&e), version),
        }
    }
    let mut committed = match ctx
        .engine
        .fetch_offsets(req.group_id.0.as_str(), None)
        .await
    {
        Ok(offsets) => offsets,
        Err(e) => return fetch_failed(errors::code(&e), version),
    };
    committed.retain(|c| acls::topic(ctx, Op::Describe, &c.topic));
    let entry = |partition: i32, offset: i64| {
        OffsetFetchResponsePartition::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_metadata(Some(StrBytes::from_static_str("")))
    };
    let topics = match req.topics {
        // Every partition asked for; -1 where nothing was committed.
        Some(wanted) => wanted
            .into_iter()
            .map(|t| {
                let describable = acls::topic(ctx, Op::Describe, t.name.as_str());
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|p| {
                        if !describable {
                            return entry(*p, -1)
                                .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                        }
                        let found = committed
                            .iter()
                            .find(|c| c.topic == t.name.as_str() && c.partition == *p);
                        entry(*p, found.map_or(-1, |c| c.offset))
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect(),
        // Null (v2+): everything the group committed.
        None => {
            let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
            for c in committed {
                match topics.iter_mut().find(|t| t.name.as_str() == c.topic) {
                    Some(t) => t.partitions.push(entry(c.partition, c.offset)),
                    None => topics.push(
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(str_bytes(&c.topic)))
                            .with_partitions(vec![entry(c.partition, c.offset)]),
                    ),
                }
            }
            topics
        }
    };
    OffsetFetchResponse::default().with_topics(topics)
}

/// The answer while the group's offsets are unstable: every partition asked for says so
/// (librdkafka retries those partitions); a request for all of them says so at the top.
fn unstable(topics: Option<Vec<OffsetFetchRequestTopic>>) -> OffsetFetchResponse {
    let code = ResponseError::UnstableOffsetCommit.code();
    let Some(topics) = topics else {
        return OffsetFetchResponse::default().with_error_code(code);
    };
    let topics = topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(-1)
                        .with_error_code(code)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

fn fetch_failed(code: i16, version: i16) -> OffsetFetchResponse {
    // v0-1 have no top-level error; the client sees no offsets and uses its reset policy.
    if version >= 2 {
        return OffsetFetchResponse::default().with_error_code(code);
    }
    OffsetFetchResponse::default()
}

/// DescribeGroups; asked for (v3+), each group described carries the operations the
/// client may do on it (KIP-430).
pub async fn describe(
    ctx: &Ctx,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let with_operations = version >= 3 && req.include_authorized_operations;
    let mut groups = Vec::with_capacity(req.groups.len());
    for group in req.groups {
        let described = DescribedGroup::default().with_group_id(group.clone());
        if let Err((code, _)) = acls::check_group(ctx, Op::Describe, group.0.as_str()) {
            groups.push(described.with_error_code(code));
            continue;
        }
        let described = if with_operations {
            described.with_authorized_operations(acls::group_operations(ctx, group.0.as_str()))
        } else {
            described
        };
        groups.push(match ctx.engine.describe_group(group.0.as_str()).await {
            Ok(d) => {
                let (state, members) = (d.state, d.members);
                let live = state != "Dead";
                let members = members
                    .iter()
                    .map(|m| {
                        let topics: Vec<String> =
                            m.assignment.iter().map(|a| a.topic.clone()).collect();
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_client_id(str_bytes(&m.client_id))
                            .with_member_metadata(subscription_bytes(&topics))
                            .with_member_assignment(assignment_bytes(&m.assignment))
                    })
                    .collect();
                described
                    .with_group_state(str_bytes(&state))
                    .with_protocol_type(if live {
                        StrBytes::from_static_str(PROTOCOL_TYPE)
                    } else {
                        StrBytes::default()
                    })
                    .with_members(members)
            }
            Err(e) => described.with_error_code(errors::code(&e)),
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn list(ctx: &Ctx, version: i16) -> ListGroupsResponse {
    match ctx.engine.list_groups().await {
        Ok(groups) => {
            let all = acls::cluster(ctx, Op::Describe);
            let listed = groups
                .into_iter()
                .filter(|(id, _)| all || acls::group(ctx, Op::Describe, id))
                .map(|(id, state)| {
                    let g = ListedGroup::default()
                        .with_group_id(GroupId(str_bytes(&id)))
                        .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE));
                    if version >= 4 {
                        return g.with_group_state(str_bytes(&state));
                    }
                    g
                })
                .collect();
            ListGroupsResponse::default().with_groups(listed)
        }
        Err(e) => ListGroupsResponse::default().with_error_code(errors::code(&e)),
    }
}

pub async fn delete(ctx: &Ctx, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group in req.groups_names {
        let code = match acls::check_group(ctx, Op::Delete, group.0.as_str()) {
            Ok(()) => code_of(&ctx.engine.delete_group(group.0.as_str()).await),
            Err((code, _)) => code,
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// Where one partition of an OffsetDelete stands before the group is asked.
enum Deletion {
    /// Refused here (no Read on the topic, no such partition): its code.
    Refused(i16),
    /// Asked of the group coordinator, as its `i`th partition.
    Asked(usize),
}

/// OffsetDelete: a group's committed offsets of some partitions, deleted unless a
/// member is subscribed to their topic (GROUP_SUBSCRIBED_TO_TOPIC, as in Kafka); a
/// group that does not exist is GROUP_ID_NOT_FOUND. Needs Delete on the group (else the
/// whole request is GROUP_AUTHORIZATION_FAILED) and Read on each topic (else its
/// partitions are TOPIC_AUTHORIZATION_FAILED and kept).
pub async fn delete_offsets(ctx: &Ctx, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    use kafka_protocol::messages::offset_delete_response::{
        OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
    };
    let group = req.group_id.0.as_str();
    let failed = |code: i16| OffsetDeleteResponse::default().with_error_code(code);
    if let Err((code, _)) = acls::check_group(ctx, Op::Delete, group) {
        return failed(code);
    }
    let topics = super::metadata::all_topics(ctx).await.unwrap_or_default();
    let partition_count = |name: &str| {
        topics
            .iter()
            .find(|t| t.name == name)
            .map_or(0, |t| t.owners.len())
    };
    let mut asked: Vec<(String, i32)> = Vec::new();
    let mut plan: Vec<Vec<(i32, Deletion)>> = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let name = topic.name.0.as_str();
        let readable = acls::topic(ctx, Op::Read, name);
        let count = partition_count(name);
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let index = p.partition_index;
                let known = usize::try_from(index).is_ok_and(|i| i < count);
                let step = if !readable {
                    Deletion::Refused(ResponseError::TopicAuthorizationFailed.code())
                } else if !known {
                    Deletion::Refused(ResponseError::UnknownTopicOrPartition.code())
                } else {
                    asked.push((name.to_string(), index));
                    Deletion::Asked(asked.len() - 1)
                };
                (index, step)
            })
            .collect();
        plan.push(partitions);
    }
    let deleted = match ctx.engine.delete_offsets(group, asked).await {
        Ok(Some(deleted)) => deleted,
        Ok(None) => return failed(ResponseError::GroupIdNotFound.code()),
        Err(e) => return failed(errors::code(&e)),
    };
    let topics = req
        .topics
        .into_iter()
        .zip(plan)
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, step)| {
                    let code = match step {
                        Deletion::Refused(code) => code,
                        Deletion::Asked(i) if deleted.get(i) == Some(&true) => errors::NONE,
                        Deletion::Asked(_) => ResponseError::GroupSubscribedToTopic.code(),
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Decodable, Encodable};

    #[test]
    fn unstable_offsets_are_named_per_partition_or_at_the_top() {
        let code = ResponseError::UnstableOffsetCommit.code();
        let asked = OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("in")))
            .with_partition_indexes(vec![0, 3]);
        let mut buf = BytesMut::new();
        unstable(Some(vec![asked]))
            .encode(&mut buf, 7)
            .expect("encodes");
        let back = OffsetFetchResponse::decode(&mut buf.freeze(), 7).expect("decodes");
        let got: Vec<(i32, i64, i16)> = back.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset, p.error_code))
            .collect();
        assert_eq!(got, vec![(0, -1, code), (3, -1, code)]);
        assert_eq!(back.error_code, 0);
        assert_eq!(unstable(None).error_code, code);
    }
}
