//! The native wire types to and from the engine's own: plain field moves, no copy of a
//! payload and nothing per message beyond moving a receive's columns.

use super::messages as wire;
use crate::engine as e;
use peregrine_shards::catalog::SEGMENT_BYTES_DEFAULT;
use peregrine_shards::security as sec;

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
        max_message_bytes: None,
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

// Users and ACLs: the wire's own copies of the store's types (the store's derive serde
// for the catalog file, the wire's rkyv), moved field by field.

impl From<wire::ScramMechanism> for sec::ScramMechanism {
    fn from(m: wire::ScramMechanism) -> sec::ScramMechanism {
        match m {
            wire::ScramMechanism::ScramSha256 => sec::ScramMechanism::Sha256,
            wire::ScramMechanism::ScramSha512 => sec::ScramMechanism::Sha512,
        }
    }
}

impl From<sec::ScramMechanism> for wire::ScramMechanism {
    fn from(m: sec::ScramMechanism) -> wire::ScramMechanism {
        match m {
            sec::ScramMechanism::Sha256 => wire::ScramMechanism::ScramSha256,
            sec::ScramMechanism::Sha512 => wire::ScramMechanism::ScramSha512,
        }
    }
}

impl From<wire::UserChange> for sec::UserChange {
    fn from(c: wire::UserChange) -> sec::UserChange {
        match c {
            wire::UserChange::Upsert {
                name,
                mechanism,
                iterations,
                salt,
                salted_password,
            } => sec::UserChange::Upsert {
                name,
                mechanism: mechanism.into(),
                iterations,
                salt,
                salted_password,
            },
            wire::UserChange::Delete { name, mechanism } => sec::UserChange::Delete {
                name,
                mechanism: mechanism.map(Into::into),
            },
            wire::UserChange::AddAccessKey {
                name,
                key_id,
                secret,
            } => sec::UserChange::AddAccessKey {
                name,
                id: key_id,
                secret,
            },
            wire::UserChange::RemoveAccessKey { key_id } => {
                sec::UserChange::RemoveAccessKey { id: key_id }
            }
        }
    }
}

impl From<sec::UserInfo> for wire::UserInfo {
    fn from(u: sec::UserInfo) -> wire::UserInfo {
        wire::UserInfo {
            name: u.name,
            mechanisms: u
                .mechanisms
                .into_iter()
                .map(|(m, iterations)| (m.into(), iterations))
                .collect(),
            access_keys: u.access_keys,
        }
    }
}

impl From<wire::AclResourceType> for sec::ResourceType {
    fn from(r: wire::AclResourceType) -> sec::ResourceType {
        match r {
            wire::AclResourceType::Topic => sec::ResourceType::Topic,
            wire::AclResourceType::Group => sec::ResourceType::Group,
            wire::AclResourceType::TransactionalId => sec::ResourceType::TransactionalId,
            wire::AclResourceType::Cluster => sec::ResourceType::Cluster,
            wire::AclResourceType::Queue => sec::ResourceType::Queue,
            wire::AclResourceType::Exchange => sec::ResourceType::Exchange,
        }
    }
}

impl From<sec::ResourceType> for wire::AclResourceType {
    fn from(r: sec::ResourceType) -> wire::AclResourceType {
        match r {
            sec::ResourceType::Topic => wire::AclResourceType::Topic,
            sec::ResourceType::Group => wire::AclResourceType::Group,
            sec::ResourceType::TransactionalId => wire::AclResourceType::TransactionalId,
            sec::ResourceType::Cluster => wire::AclResourceType::Cluster,
            sec::ResourceType::Queue => wire::AclResourceType::Queue,
            sec::ResourceType::Exchange => wire::AclResourceType::Exchange,
        }
    }
}

impl From<wire::AclPatternType> for sec::PatternType {
    fn from(p: wire::AclPatternType) -> sec::PatternType {
        match p {
            wire::AclPatternType::Literal => sec::PatternType::Literal,
            wire::AclPatternType::Prefixed => sec::PatternType::Prefixed,
        }
    }
}

impl From<sec::PatternType> for wire::AclPatternType {
    fn from(p: sec::PatternType) -> wire::AclPatternType {
        match p {
            sec::PatternType::Literal => wire::AclPatternType::Literal,
            sec::PatternType::Prefixed => wire::AclPatternType::Prefixed,
        }
    }
}

impl From<wire::AclOperation> for sec::Operation {
    fn from(o: wire::AclOperation) -> sec::Operation {
        use wire::AclOperation as W;
        match o {
            W::All => sec::Operation::All,
            W::Read => sec::Operation::Read,
            W::Write => sec::Operation::Write,
            W::Create => sec::Operation::Create,
            W::Delete => sec::Operation::Delete,
            W::Alter => sec::Operation::Alter,
            W::Describe => sec::Operation::Describe,
            W::ClusterAction => sec::Operation::ClusterAction,
            W::DescribeConfigs => sec::Operation::DescribeConfigs,
            W::AlterConfigs => sec::Operation::AlterConfigs,
            W::IdempotentWrite => sec::Operation::IdempotentWrite,
        }
    }
}

impl From<sec::Operation> for wire::AclOperation {
    fn from(o: sec::Operation) -> wire::AclOperation {
        use sec::Operation as S;
        match o {
            S::All => wire::AclOperation::All,
            S::Read => wire::AclOperation::Read,
            S::Write => wire::AclOperation::Write,
            S::Create => wire::AclOperation::Create,
            S::Delete => wire::AclOperation::Delete,
            S::Alter => wire::AclOperation::Alter,
            S::Describe => wire::AclOperation::Describe,
            S::ClusterAction => wire::AclOperation::ClusterAction,
            S::DescribeConfigs => wire::AclOperation::DescribeConfigs,
            S::AlterConfigs => wire::AclOperation::AlterConfigs,
            S::IdempotentWrite => wire::AclOperation::IdempotentWrite,
        }
    }
}

impl From<wire::AclPermission> for sec::Permission {
    fn from(p: wire::AclPermission) -> sec::Permission {
        match p {
            wire::AclPermission::Allow => sec::Permission::Allow,
            wire::AclPermission::Deny => sec::Permission::Deny,
        }
    }
}

impl From<sec::Permission> for wire::AclPermission {
    fn from(p: sec::Permission) -> wire::AclPermission {
        match p {
            sec::Permission::Allow => wire::AclPermission::Allow,
            sec::Permission::Deny => wire::AclPermission::Deny,
        }
    }
}

impl From<wire::AclBinding> for sec::AclBinding {
    fn from(b: wire::AclBinding) -> sec::AclBinding {
        sec::AclBinding {
            resource_type: b.resource_type.into(),
            name: b.resource_name,
            pattern: b.pattern.into(),
            principal: b.principal,
            host: b.host,
            operation: b.operation.into(),
            permission: b.permission.into(),
        }
    }
}

impl From<sec::AclBinding> for wire::AclBinding {
    fn from(b: sec::AclBinding) -> wire::AclBinding {
        wire::AclBinding {
            resource_type: b.resource_type.into(),
            resource_name: b.name,
            pattern: b.pattern.into(),
            principal: b.principal,
            host: b.host,
            operation: b.operation.into(),
            permission: b.permission.into(),
        }
    }
}

impl From<wire::AclFilter> for sec::AclFilter {
    fn from(f: wire::AclFilter) -> sec::AclFilter {
        sec::AclFilter {
            resource_type: f.resource_type.map(Into::into),
            name: f.resource_name,
            pattern: match f.pattern {
                wire::AclPatternFilter::Any => sec::PatternFilter::Any,
                wire::AclPatternFilter::Match => sec::PatternFilter::Match,
                wire::AclPatternFilter::Literal => sec::PatternFilter::Literal,
                wire::AclPatternFilter::Prefixed => sec::PatternFilter::Prefixed,
            },
            principal: f.principal,
            host: f.host,
            operation: f.operation.map(Into::into),
            permission: f.permission.map(Into::into),
        }
    }
}
