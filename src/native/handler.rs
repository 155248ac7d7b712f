//! Native requests as engine calls, and their answers as native responses. One
//! exhaustive match: a new request kind does not compile until it is handled here.

use super::convert;
use super::messages::{Acks, ErrorCode, Request, Response};
use crate::engine::{Engine, EngineError, ExchangeChange, FetchArgs, JoinArgs, Settle};
use bytes::{Bytes, BytesMut};

/// A response and its raw payload (record batches for Fetch, bodies for Received).
pub type Reply = (Response, Vec<Bytes>);

fn reply(response: Response) -> Option<Reply> {
    Some((response, Vec::new()))
}

/// `Ok` or the error.
fn done(result: Result<(), EngineError>) -> Option<Reply> {
    reply(result.map_or_else(Response::from, |()| Response::Ok))
}

fn answer<T>(result: Result<T, EngineError>, ok: impl FnOnce(T) -> Response) -> Option<Reply> {
    reply(result.map_or_else(Response::from, ok))
}

/// Runs one request; `None` when no answer is owed (a produce with acks=none).
pub async fn handle(engine: &Engine, request: Request, payload: BytesMut) -> Option<Reply> {
    match request {
        Request::Produce {
            topic,
            partition,
            acks,
        } => {
            let produced = engine
                .produce(&topic, partition, acks.into(), payload)
                .await;
            if acks == Acks::None {
                return None;
            }
            answer(produced, |p| Response::Produced {
                base_offset: p.base_offset,
                last_offset: p.last_offset,
            })
        }
        Request::Fetch {
            topic,
            partition,
            offset,
            max_bytes,
            max_wait_ms,
            min_bytes,
            isolation,
        } => {
            let args = FetchArgs {
                offset,
                max_bytes,
                max_wait_ms,
                min_bytes,
                isolation: isolation.into(),
                pending: false,
            };
            match engine.fetch(&topic, partition, args).await {
                Ok(f) => {
                    let response = Response::Fetched {
                        high_watermark: f.high_watermark,
                        log_start_offset: f.log_start_offset,
                        last_stable_offset: f.last_stable_offset,
                        aborted: f.aborted.into_iter().map(Into::into).collect(),
                    };
                    Some((response, f.batches))
                }
                Err(e) => reply(e.into()),
            }
        }
        Request::ListOffsets {
            topic,
            partition,
            spec,
        } => answer(
            engine.list_offsets(&topic, partition, spec.into()).await,
            |offset| Response::Offset { offset },
        ),
        Request::DeleteRecords {
            topic,
            partition,
            offset,
        } => answer(
            engine.delete_records(&topic, partition, offset).await,
            |offset| Response::Offset { offset },
        ),
        Request::PartitionStats { topic, partition } => {
            answer(engine.partition_stats(&topic, partition).await, |s| {
                Response::PartitionStats(s.into())
            })
        }
        Request::Metadata { topics } => answer(engine.metadata(topics), |m| Response::Metadata {
            shards: m.shards.into_iter().map(Into::into).collect(),
            topics: m.topics.into_iter().map(Into::into).collect(),
        }),
        Request::DescribeTopic { name } => answer(engine.describe_topic(&name).await, |d| {
            Response::TopicDescribed {
                topic: d.topic.into(),
                partitions: d.partitions.into_iter().map(Into::into).collect(),
            }
        }),
        Request::CreateTopic(spec) => done(
            engine
                .create_topic(&spec.name, convert::topic_config(&spec))
                .await,
        ),
        Request::DeleteTopic { name } => done(engine.delete_topic(&name).await),
        Request::CreatePartitions { topic, count } => {
            done(engine.create_partitions(&topic, count).await)
        }
        Request::InitProducerId { producer_id, epoch } => answer(
            engine.init_producer_id(producer_id, epoch).await,
            |(producer_id, epoch)| Response::ProducerId { producer_id, epoch },
        ),
        Request::ShardStats { shard } => answer(engine.shard_counters(shard).await, |c| {
            Response::ShardStats {
                shard: c.shard,
                partition_requests: c.partition_requests,
                forwarded: c.forwarded,
            }
        }),
        Request::JoinGroup {
            group,
            member_id,
            client_id,
            topics,
            session_timeout_ms,
            rebalance_timeout_ms,
        } => {
            let args = JoinArgs {
                group,
                member_id,
                client_id,
                topics,
                session_timeout_ms,
                rebalance_timeout_ms,
            };
            answer(engine.join_group(args).await, |j| Response::Joined {
                member_id: j.member_id,
                generation: j.generation,
                leader: j.leader,
                members: j.members,
                assignment: convert::assignments(j.assignment),
            })
        }
        Request::Heartbeat {
            group,
            member_id,
            generation,
        } => done(engine.heartbeat(&group, &member_id, generation).await),
        Request::LeaveGroup { group, member_id } => {
            done(engine.leave_group(&group, &member_id).await)
        }
        Request::CommitOffsets {
            group,
            member_id,
            generation,
            offsets,
        } => {
            let offsets = offsets.into_iter().map(Into::into).collect();
            done(
                engine
                    .commit_offsets(&group, &member_id, generation, offsets)
                    .await,
            )
        }
        Request::FetchOffsets { group, topic } => {
            // An empty topic name (never a valid one) asks for every topic.
            let topic = (!topic.is_empty()).then_some(topic.as_str());
            answer(engine.fetch_offsets(&group, topic).await, |offsets| {
                Response::Offsets {
                    offsets: offsets.into_iter().map(Into::into).collect(),
                }
            })
        }
        Request::DescribeGroup { group } => answer(engine.describe_group(&group).await, |d| {
            Response::GroupDescribed {
                group: d.group,
                state: d.state,
                generation: d.generation,
                members: d.members.into_iter().map(Into::into).collect(),
            }
        }),
        Request::DeleteGroup { group } => done(engine.delete_group(&group).await),
        Request::ListGroups => answer(engine.list_groups().await, |groups| Response::Groups {
            groups,
        }),
        Request::DeclareQueue(spec) => done(
            engine
                .declare_queue(&spec.name, convert::queue_config(&spec))
                .await,
        ),
        Request::DeleteQueue { name } => done(engine.delete_queue(&name).await),
        Request::ListQueues => reply(Response::Queues {
            queues: engine
                .list_queues()
                .into_iter()
                .map(|(name, config)| convert::queue_spec(name, config))
                .collect(),
        }),
        Request::QueueStats { name } => answer(engine.queue_stats(&name).await, |s| {
            Response::QueueStats(s.into())
        }),
        Request::PurgeQueue { name } => answer(engine.purge_queue(&name).await, |count| {
            Response::Count { count }
        }),
        Request::Publish { queue, spec } => answer(
            engine.publish(&queue, spec.into(), payload.freeze()).await,
            |id| Response::Published { id },
        ),
        Request::PublishBatch { queue, spec, lens } => answer(
            engine
                .publish_batch(&queue, spec.into(), lens, payload.freeze())
                .await,
            |stored| Response::PublishedBatch { stored },
        ),
        Request::Receive {
            queue,
            max,
            wait_ms,
            auto_ack,
        } => match engine.receive(&queue, max, wait_ms, auto_ack).await {
            Ok(got) => Some(received(got)),
            Err(e) => reply(e.into()),
        },
        Request::Ack { queue, handles } => {
            done(engine.settle(&queue, Settle::Ack { handles }).await)
        }
        Request::Nack {
            queue,
            handles,
            requeue,
        } => {
            let settle = if requeue {
                Settle::Requeue { handles }
            } else {
                Settle::Reject { handles }
            };
            done(engine.settle(&queue, settle).await)
        }
        Request::Subscribe { .. } => reply(Response::error(
            ErrorCode::InvalidRequest,
            "a subscription runs on a client connection",
        )),
        Request::ScramFirst { .. } | Request::ScramFinal { .. } => reply(Response::error(
            ErrorCode::InvalidRequest,
            "the SCRAM handshake runs on a client connection",
        )),
        Request::AlterUser(change) => {
            let altered = engine.alter_users(vec![change.into()]).await;
            done(altered.and_then(|mut results| match results.pop() {
                Some(result) => result.map_err(EngineError::from),
                None => Err(EngineError::Internal(
                    "a user change went unanswered".into(),
                )),
            }))
        }
        Request::ListUsers => reply(Response::Users {
            users: engine.list_users().into_iter().map(Into::into).collect(),
        }),
        Request::CreateAcls { bindings } => {
            let bindings = bindings.into_iter().map(Into::into).collect();
            // Each binding is added or refused on its own; the first refusal answers.
            let created = engine.create_acls(bindings).await;
            done(
                created
                    .into_iter()
                    .collect::<Result<Vec<()>, _>>()
                    .map(drop),
            )
        }
        Request::DeleteAcls { filters } => {
            let filters = filters.into_iter().map(Into::into).collect();
            let deleted = engine.delete_acls(filters).await;
            answer(
                deleted.into_iter().collect::<Result<Vec<_>, _>>(),
                |per_filter| Response::Acls {
                    bindings: per_filter.into_iter().flatten().map(Into::into).collect(),
                },
            )
        }
        Request::DescribeAcls { filter } => reply(Response::Acls {
            bindings: engine
                .describe_acls(&filter.into())
                .into_iter()
                .map(Into::into)
                .collect(),
        }),
        Request::DeclareExchange { name, kind } => {
            let change = ExchangeChange::Declare {
                name,
                meta: crate::engine::ExchangeMeta::new(kind.into()),
            };
            done(engine.change_exchanges(change).await)
        }
        Request::DeleteExchange { name } => done(
            engine
                .change_exchanges(ExchangeChange::Delete {
                    name,
                    if_unused: false,
                })
                .await,
        ),
        Request::Bind(spec) => match convert::binding(spec) {
            Ok(b) => done(engine.change_exchanges(ExchangeChange::Bind(b)).await),
            Err(e) => reply(e.into()),
        },
        Request::Unbind(spec) => match convert::binding(spec) {
            Ok(b) => done(engine.change_exchanges(ExchangeChange::Unbind(b)).await),
            Err(e) => reply(e.into()),
        },
        Request::ListExchanges => {
            let all = engine.list_exchanges();
            reply(Response::Exchanges {
                exchanges: all
                    .exchanges
                    .into_iter()
                    .map(|(name, kind)| (name, kind.into()))
                    .collect(),
                bindings: all
                    .bindings
                    .into_iter()
                    .filter_map(convert::binding_spec)
                    .collect(),
            })
        }
        Request::PublishToExchange {
            exchange,
            routing_key,
            spec,
        } => answer(
            engine
                .publish_to_exchange(&exchange, &routing_key, spec.into(), payload.freeze())
                .await,
            |r| Response::Routed {
                queues: r.queues,
                topics: r.topics,
            },
        ),
    }
}

/// A receive's answer: its columns, and its bodies as the payload.
pub fn received(got: crate::engine::Received) -> Reply {
    let messages = Box::new(got.messages.into());
    (Response::Received { messages }, vec![got.bodies])
}
