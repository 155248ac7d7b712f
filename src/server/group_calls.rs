//! Consumer-group requests on the shard that owns the group.

use super::router::Reply;
use super::shard::{reply, Shard};
use crate::native::messages::{Assignment, CommitEntry, ErrorCode, MemberInfo, Request, Response};
use bytes::BytesMut;
use peregrine_shards::groups::{CommittedOffset, GroupError, JoinRequest};
use std::rc::Rc;

fn group_error(e: GroupError) -> Option<Reply> {
    let code = match e {
        GroupError::UnknownMember => ErrorCode::UnknownMember,
        GroupError::IllegalGeneration => ErrorCode::IllegalGeneration,
        GroupError::RebalanceInProgress => ErrorCode::RebalanceInProgress,
        GroupError::InvalidSessionTimeout => ErrorCode::InvalidSessionTimeout,
        GroupError::InvalidGroupId => ErrorCode::InvalidGroup,
        GroupError::NotEmpty => ErrorCode::GroupNotEmpty,
        GroupError::TooManyGroups { .. } => ErrorCode::InvalidGroup,
        _ => ErrorCode::Internal,
    };
    reply(Response::error(code, e.to_string()))
}

fn assignments(list: Vec<(String, Vec<i32>)>) -> Vec<Assignment> {
    list.into_iter()
        .map(|(topic, partitions)| Assignment { topic, partitions })
        .collect()
}

fn ok_or(result: Result<(), GroupError>) -> Option<Reply> {
    match result {
        Ok(()) => reply(Response::Ok),
        Err(e) => group_error(e),
    }
}

pub async fn execute(shard: &Rc<Shard>, request: Request) -> Option<Reply> {
    let groups = shard.groups.clone();
    match request {
        Request::JoinGroup {
            group,
            member_id,
            client_id,
            topics,
            session_timeout_ms,
            rebalance_timeout_ms,
        } => {
            let catalog = shard.catalog();
            let mut subscribed = Vec::with_capacity(topics.len());
            for topic in topics {
                match catalog.topic(&topic) {
                    Ok(meta) => subscribed.push((topic, meta.config.partitions)),
                    Err(e) => {
                        return reply(Response::error(ErrorCode::UnknownTopic, e.to_string()))
                    }
                }
            }
            let join = JoinRequest {
                group,
                member_id: (!member_id.is_empty()).then_some(member_id),
                client_id,
                topics: subscribed,
                session_timeout_ms,
                rebalance_timeout_ms,
            };
            match groups.join(join).await {
                Ok(j) => reply(Response::Joined {
                    member_id: j.member_id,
                    generation: j.generation,
                    leader: j.leader,
                    members: j.members,
                    assignment: assignments(j.assignment),
                }),
                Err(e) => group_error(e),
            }
        }
        Request::Heartbeat {
            group,
            member_id,
            generation,
        } => ok_or(groups.heartbeat(&group, &member_id, generation)),
        Request::LeaveGroup { group, member_id } => ok_or(groups.leave(&group, &member_id)),
        Request::CommitOffsets {
            group,
            member_id,
            generation,
            offsets,
        } => {
            let offsets = offsets
                .into_iter()
                .map(|c| CommittedOffset {
                    topic: c.topic,
                    partition: c.partition,
                    offset: c.offset,
                    metadata: String::new(),
                })
                .collect();
            ok_or(groups.commit(&group, &member_id, generation, offsets).await)
        }
        Request::FetchOffsets { group, topic } => match groups.fetch_offsets(&group, None).await {
            Ok(all) => reply(Response::Offsets {
                offsets: all
                    .into_iter()
                    .filter(|c| topic.is_empty() || c.topic == topic)
                    .map(|c| CommitEntry {
                        topic: c.topic,
                        partition: c.partition,
                        offset: c.offset,
                    })
                    .collect(),
            }),
            Err(e) => group_error(e),
        },
        Request::DescribeGroup { group } => {
            let d = groups.describe(&group);
            reply(Response::GroupDescribed {
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
            })
        }
        Request::DeleteGroup { group } => ok_or(groups.delete(&group).await),
        Request::ListShardGroups { .. } => match groups.loaded().await {
            Ok(()) => reply(Response::Groups {
                groups: groups.list(),
            }),
            Err(e) => group_error(e),
        },
        Request::ListGroups => {
            let mut all = Vec::new();
            for s in 0..shard.nshards {
                let ask = Request::ListShardGroups { shard: s };
                match Box::pin(shard.dispatch(ask, BytesMut::new())).await {
                    Some((Response::Groups { groups }, _)) => all.extend(groups),
                    Some((other, _)) => return reply(other),
                    None => {}
                }
            }
            all.sort();
            reply(Response::Groups { groups: all })
        }
        other => reply(Response::error(
            ErrorCode::InvalidRequest,
            format!(
                "request {:?} is not a group request",
                std::mem::discriminant(&other)
            ),
        )),
    }
}
