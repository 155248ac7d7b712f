//! The native wire types to and from the engine's own: plain field moves, no copy of a
//! payload and nothing per message beyond moving a receive's columns.

use super::messages as wire;
use crate::engine as e;
use peregrine_shards::catalog::SEGMENT_BYTES_DEFAULT;

impl From<wire::Acks> for e::Acks {
    fn from(a: wire::Acks) -> e::Acks {
        match a {
            wire::Acks::None => e::Acks::None,
            wire::Acks::Leader => e::Acks::Leader,
            wire::Acks::Durable => e::Acks::Durable,
        }
    }
}

impl From<wire::OffsetSpec> for e::OffsetSpec {
    fn from(s: wire::OffsetSpec) -> e::OffsetSpec {
        match s {
            wire::OffsetSpec::Earliest => e::OffsetSpec::Earliest,
            wire::OffsetSpec::Latest => e::OffsetSpec::Latest,
            wire::OffsetSpec::Timestamp(ts) => e::OffsetSpec::Timestamp(ts),
            wire::OffsetSpec::LastStable => e::OffsetSpec::LastStable,
        }
    }
}

impl From<wire::Isolation> for e::Isolation {
    fn from(i: wire::Isolation) -> e::Isolation {
        match i {
            wire::Isolation::Uncommitted => e::Isolation::Uncommitted,
            wire::Isolation::Committed => e::Isolation::Committed,
        }
    }
}

impl From<e::AbortedRange> for wire::AbortedTxn {
    fn from(a: e::AbortedRange) -> wire::AbortedTxn {
        wire::AbortedTxn {
            producer_id: a.producer_id,
            first_offset: a.first_offset,
        }
    }
}

pub fn topic_config(spec: &wire::TopicSpec) -> e::TopicConfig {
    e::TopicConfig {
        partitions: spec.partitions,
        retention_ms: spec.retention_ms,
        retention_bytes: spec.retention_bytes,
        segment_bytes: spec.segment_bytes.unwrap_or(SEGMENT_BYTES_DEFAULT),
    }
}

pub fn queue_config(spec: &wire::QueueSpec) -> e::QueueConfig {
    e::QueueConfig {
        max_priority: spec.max_priority,
        ttl_ms: spec.ttl_ms,
        visibility_timeout_ms: spec
            .visibility_timeout_ms
            .unwrap_or(peregrine_shards::queues::VISIBILITY_TIMEOUT_MS_DEFAULT),
        max_deliveries: spec.max_deliveries,
        dead_letter: spec.dead_letter.clone(),
        fifo: spec.fifo,
        max_length: spec.max_length,
        max_bytes: spec.max_bytes,
        overflow: match spec.overflow {
            wire::QueueOverflow::RejectPublish => e::Overflow::RejectPublish,
            wire::QueueOverflow::DropHead => e::Overflow::DropHead,
        },
        // Native queues are durable, shared and kept until deleted.
        ..e::QueueConfig::default()
    }
}

pub fn queue_spec(name: String, c: e::QueueConfig) -> wire::QueueSpec {
    wire::QueueSpec {
        name,
        max_priority: c.max_priority,
        ttl_ms: c.ttl_ms,
        visibility_timeout_ms: Some(c.visibility_timeout_ms),
        max_deliveries: c.max_deliveries,
        dead_letter: c.dead_letter,
        fifo: c.fifo,
        max_length: c.max_length,
        max_bytes: c.max_bytes,
        overflow: match c.overflow {
            e::Overflow::RejectPublish => wire::QueueOverflow::RejectPublish,
            e::Overflow::DropHead => wire::QueueOverflow::DropHead,
        },
    }
}

impl From<wire::PublishSpec> for e::PublishSpec {
    fn from(s: wire::PublishSpec) -> e::PublishSpec {
        e::PublishSpec {
            priority: s.priority,
            delay_ms: s.delay_ms,
            ttl_ms: s.ttl_ms,
            headers: s.headers,
            group_id: s.group_id,
            dedup_id: s.dedup_id,
            durable: s.durable,
            origin: s.origin,
        }
    }
}

impl From<wire::ExchangeType> for e::ExchangeKind {
    fn from(t: wire::ExchangeType) -> e::ExchangeKind {
        match t {
            wire::ExchangeType::Direct => e::ExchangeKind::Direct,
            wire::ExchangeType::Fanout => e::ExchangeKind::Fanout,
            wire::ExchangeType::Topic => e::ExchangeKind::Topic,
            wire::ExchangeType::Headers => e::ExchangeKind::Headers,
        }
    }
}

impl From<e::ExchangeKind> for wire::ExchangeType {
    fn from(k: e::ExchangeKind) -> wire::ExchangeType {
        match k {
            e::ExchangeKind::Direct => wire::ExchangeType::Direct,
            e::ExchangeKind::Fanout => wire::ExchangeType::Fanout,
            e::ExchangeKind::Topic => wire::ExchangeType::Topic,
            e::ExchangeKind::Headers => wire::ExchangeType::Headers,
        }
    }
}

/// A binding as the engine keeps it; an error when it names not exactly one target.
pub fn binding(spec: wire::BindingSpec) -> Result<e::Binding, e::EngineError> {
    let target = match (spec.queue, spec.topic) {
        (Some(q), None) => e::BindTarget::Queue(q),
        (None, Some(t)) => e::BindTarget::Topic(t),
        _ => {
            return Err(e::EngineError::InvalidRequest(
                "a binding names exactly one of a queue and a topic".into(),
            ))
        }
    };
    Ok(e::Binding {
        exchange: spec.exchange,
        target,
        routing_key: spec.routing_key,
        headers: spec.headers,
        match_all: spec.match_all,
    })
}

/// A binding as the native wire shows it; `None` for an exchange-to-exchange binding
/// (made over AMQP), which the native wire cannot name.
pub fn binding_spec(b: e::Binding) -> Option<wire::BindingSpec> {
    let (queue, topic) = match b.target {
        e::BindTarget::Queue(q) => (Some(q), None),
        e::BindTarget::Topic(t) => (None, Some(t)),
        e::BindTarget::Exchange(_) => return None,
    };
    Some(wire::BindingSpec {
        exchange: b.exchange,
        queue,
        topic,
        routing_key: b.routing_key,
        headers: b.headers,
        match_all: b.match_all,
    })
}

impl From<e::TopicInfo> for wire::TopicInfo {
    fn from(t: e::TopicInfo) -> wire::TopicInfo {
        wire::TopicInfo {
            name: t.name,
            owners: t.owners,
            retention_ms: t.retention_ms,
            retention_bytes: t.retention_bytes,
            segment_bytes: t.segment_bytes,
        }
    }
}

impl From<e::PartitionStats> for wire::PartitionStats {
    fn from(p: e::PartitionStats) -> wire::PartitionStats {
        wire::PartitionStats {
            partition: p.partition,
            shard: p.shard,
            start_offset: p.start_offset,
            end_offset: p.end_offset,
            size_bytes: p.size_bytes,
            segments: p.segments,
        }
    }
}

impl From<e::ShardInfo> for wire::ShardInfo {
    fn from(s: e::ShardInfo) -> wire::ShardInfo {
        wire::ShardInfo {
            shard: s.shard,
            port: s.port,
        }
    }
}

impl From<e::Assignment> for wire::Assignment {
    fn from(a: e::Assignment) -> wire::Assignment {
        wire::Assignment {
            topic: a.topic,
            partitions: a.partitions,
        }
    }
}

pub fn assignments(list: Vec<e::Assignment>) -> Vec<wire::Assignment> {
    list.into_iter().map(Into::into).collect()
}

impl From<e::MemberInfo> for wire::MemberInfo {
    fn from(m: e::MemberInfo) -> wire::MemberInfo {
        wire::MemberInfo {
            member_id: m.member_id,
            client_id: m.client_id,
            assignment: assignments(m.assignment),
        }
    }
}

impl From<e::CommitEntry> for wire::CommitEntry {
    fn from(c: e::CommitEntry) -> wire::CommitEntry {
        wire::CommitEntry {
            topic: c.topic,
            partition: c.partition,
            offset: c.offset,
        }
    }
}

impl From<wire::CommitEntry> for e::CommitEntry {
    fn from(c: wire::CommitEntry) -> e::CommitEntry {
        e::CommitEntry {
            topic: c.topic,
            partition: c.partition,
            offset: c.offset,
        }
    }
}

impl From<e::QueueStats> for wire::QueueStatsInfo {
    fn from(s: e::QueueStats) -> wire::QueueStatsInfo {
        wire::QueueStatsInfo {
            name: s.name,
            ready: s.ready,
            delayed: s.delayed,
            in_flight: s.in_flight,
            dead_lettered: s.dead_lettered,
            consumers: s.consumers,
            owner: s.owner,
        }
    }
}

/// The engine's columns are the wire's: moved, not copied.
impl From<e::Deliveries> for wire::Deliveries {
    fn from(d: e::Deliveries) -> wire::Deliveries {
        wire::Deliveries {
            handles: d.handles,
            ids: d.ids,
            published_ms: d.published_ms,
            deliveries: d.deliveries,
            lens: d.lens,
            priorities: d.priorities,
            extras: d
                .extras
                .into_iter()
                .map(|x| wire::DeliveryExtras {
                    index: x.index,
                    headers: x.headers,
                    group_id: x.group_id,
                })
                .collect(),
        }
    }
}
