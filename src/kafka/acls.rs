//! Kafka ACLs: what the connection's principal may do (`--acls`), asked by every
//! handler before it touches anything, so a denied request changes nothing; and the
//! CreateAcls, DescribeAcls and DeleteAcls APIs that manage the bindings.
//!
//! The decision is the engine's (`Engine::principal_allowed`: Kafka's semantics, super
//! users, everything allowed without `--acls`), read from the shard's catalog snapshot,
//! so a check costs no cross-core hop. This module only names what each Kafka request
//! needs, as Kafka's own broker does (`KafkaApis`), and the error code a refusal gets:
//! TOPIC_, GROUP_, TRANSACTIONAL_ID_ or CLUSTER_AUTHORIZATION_FAILED.

use super::{errors, str_bytes, Ctx};
use crate::engine::EngineError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use peregrine_shards::security::acls::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
    ANY_PRINCIPAL, CLUSTER_NAME as CLUSTER, WILDCARD,
};
use std::net::IpAddr;

/// Short for the handlers: `acls::check_topic(ctx, Op::Write, name)`.
pub use peregrine_shards::security::acls::Operation as Op;

/// A refusal as handlers pass errors on: (code, message).
pub type Refusal = (i16, String);

/// Whether the connection's principal may do `op` on the resource.
pub fn allowed(ctx: &Ctx, op: Operation, rtype: ResourceType, name: &str) -> bool {
    let principal = ctx.principal.borrow();
    ctx.engine
        .principal_allowed(&principal, ctx.peer_ip, op, rtype, name)
}

pub fn topic(ctx: &Ctx, op: Operation, name: &str) -> bool {
    allowed(ctx, op, ResourceType::Topic, name)
}

pub fn group(ctx: &Ctx, op: Operation, name: &str) -> bool {
    allowed(ctx, op, ResourceType::Group, name)
}

pub fn transactional_id(ctx: &Ctx, op: Operation, name: &str) -> bool {
    allowed(ctx, op, ResourceType::TransactionalId, name)
}

pub fn cluster(ctx: &Ctx, op: Operation) -> bool {
    allowed(ctx, op, ResourceType::Cluster, CLUSTER)
}

/// Topic creation, as Kafka allows it: Create on the cluster or on the topic.
pub fn may_create_topic(ctx: &Ctx, name: &str) -> bool {
    cluster(ctx, Operation::Create) || topic(ctx, Operation::Create, name)
}

/// The operations Kafka reports as authorized on a topic (`AclEntry.supportedOperations`).
const TOPIC_OPERATIONS: [Operation; 8] = [
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Describe,
    Operation::Delete,
    Operation::Alter,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];

/// ... and on the cluster.
const CLUSTER_OPERATIONS: [Operation; 7] = [
    Operation::Create,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
    Operation::Alter,
    Operation::Describe,
];

/// ... and on a group.
const GROUP_OPERATIONS: [Operation; 3] = [Operation::Read, Operation::Describe, Operation::Delete];

/// What the principal may do on a resource as Kafka reports it (Metadata's and
/// DescribeGroups' `*_authorized_operations`): bit `code` set for each operation allowed, of those the
/// resource type has. Without `--acls` every one is allowed, as Kafka without an
/// authorizer reports them all.
fn operations_bitfield(ctx: &Ctx, rtype: ResourceType, ops: &[Operation], name: &str) -> i32 {
    ops.iter()
        .filter(|op| allowed(ctx, **op, rtype, name))
        .fold(0i32, |bits, op| bits | (1i32 << op.kafka_code()))
}

pub fn topic_operations(ctx: &Ctx, name: &str) -> i32 {
    operations_bitfield(ctx, ResourceType::Topic, &TOPIC_OPERATIONS, name)
}

pub fn group_operations(ctx: &Ctx, name: &str) -> i32 {
    operations_bitfield(ctx, ResourceType::Group, &GROUP_OPERATIONS, name)
}

pub fn cluster_operations(ctx: &Ctx) -> i32 {
    operations_bitfield(ctx, ResourceType::Cluster, &CLUSTER_OPERATIONS, CLUSTER)
}

fn refusal(code: ResponseError, what: String) -> Refusal {
    (code.code(), what)
}

/// `op` on topic `name`, or TOPIC_AUTHORIZATION_FAILED.
pub fn check_topic(ctx: &Ctx, op: Operation, name: &str) -> Result<(), Refusal> {
    if topic(ctx, op, name) {
        return Ok(());
    }
    Err(topic_refusal(ctx, op, name))
}

/// TOPIC_AUTHORIZATION_FAILED for `op` on topic `name`.
pub fn topic_refusal(ctx: &Ctx, op: Operation, name: &str) -> Refusal {
    refusal(
        ResponseError::TopicAuthorizationFailed,
        denied(ctx, op, "topic", name),
    )
}

/// `op` on group `name`, or GROUP_AUTHORIZATION_FAILED.
pub fn check_group(ctx: &Ctx, op: Operation, name: &str) -> Result<(), Refusal> {
    if group(ctx, op, name) {
        return Ok(());
    }
    Err(refusal(
        ResponseError::GroupAuthorizationFailed,
        denied(ctx, op, "group", name),
    ))
}

/// `op` on transactional id `name`, or TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
pub fn check_transactional_id(ctx: &Ctx, op: Operation, name: &str) -> Result<(), Refusal> {
    if transactional_id(ctx, op, name) {
        return Ok(());
    }
    Err(refusal(
        ResponseError::TransactionalIdAuthorizationFailed,
        denied(ctx, op, "transactional id", name),
    ))
}

/// `op` on the cluster, or CLUSTER_AUTHORIZATION_FAILED.
pub fn check_cluster(ctx: &Ctx, op: Operation) -> Result<(), Refusal> {
    if cluster(ctx, op) {
        return Ok(());
    }
    Err(refusal(
        ResponseError::ClusterAuthorizationFailed,
        denied(ctx, op, "cluster", CLUSTER),
    ))
}

/// Topic creation (`may_create_topic`), or TOPIC_AUTHORIZATION_FAILED.
pub fn check_create_topic(ctx: &Ctx, name: &str) -> Result<(), Refusal> {
    if may_create_topic(ctx, name) {
        return Ok(());
    }
    Err(refusal(
        ResponseError::TopicAuthorizationFailed,
        denied(ctx, Operation::Create, "topic", name),
    ))
}

/// An idempotent producer's InitProducerId, as Kafka (KIP-679) allows it: IdempotentWrite
/// on the cluster, or Write on some topic; CLUSTER_AUTHORIZATION_FAILED otherwise.
pub fn check_idempotent_write(ctx: &Ctx) -> Result<(), Refusal> {
    if cluster(ctx, Operation::IdempotentWrite) || may_write_some_topic(ctx) {
        return Ok(());
    }
    check_cluster(ctx, Operation::IdempotentWrite)
}

/// Kafka's `authorizeByResourceType(Write, Topic)`: a binding allows the principal to
/// write some topic that no deny of the same reach takes back. Only an idempotent
/// InitProducerId without IdempotentWrite asks; it reads the topic bindings of this
/// principal and of `User:*` (at most `ACLS_MAX`, from the snapshot).
fn may_write_some_topic(ctx: &Ctx) -> bool {
    let principal = ctx.principal();
    let peer = ctx.peer_ip.to_canonical();
    let from_here = |b: &AclBinding| {
        b.host == WILDCARD
            || b.host
                .parse::<IpAddr>()
                .is_ok_and(|h| h.to_canonical() == peer)
    };
    let bindings: Vec<AclBinding> = [principal.as_str(), ANY_PRINCIPAL]
        .into_iter()
        .flat_map(|p| {
            ctx.engine.describe_acls(&AclFilter {
                resource_type: Some(ResourceType::Topic),
                principal: Some(p.to_string()),
                ..AclFilter::any()
            })
        })
        .filter(|b| from_here(b) && matches!(b.operation, Operation::Write | Operation::All))
        .collect();
    let denies = |allow: &AclBinding| {
        bindings.iter().any(|d| {
            d.permission == Permission::Deny
                && match d.pattern {
                    PatternType::Literal => {
                        d.name == WILDCARD
                            || (allow.pattern == PatternType::Literal && d.name == allow.name)
                    }
                    PatternType::Prefixed => allow.name.starts_with(&d.name),
                }
        })
    };
    bindings
        .iter()
        .any(|b| b.permission == Permission::Allow && !denies(b))
}

/// What a client is told (the engine logged the refusal).
fn denied(ctx: &Ctx, op: Operation, kind: &str, name: &str) -> String {
    format!("{} may not {op:?} {kind} '{name}'", ctx.principal())
}

/// The message of a refusal for fields that carry one.
pub fn message(refusal: &Refusal) -> Option<kafka_protocol::protocol::StrBytes> {
    Some(str_bytes(&refusal.1))
}

/// Kafka's codes of "any" in filters, and of MATCH (a pattern filter only).
const ANY: i8 = 1;
const MATCH: i8 = 2;

/// The ACL types the Kafka protocol names: a filter for "any" type means these (queues
/// and exchanges are managed through their own front ends and the CLI).
const KAFKA_TYPES: [ResourceType; 4] = [
    ResourceType::Topic,
    ResourceType::Group,
    ResourceType::TransactionalId,
    ResourceType::Cluster,
];

fn invalid(what: String) -> Refusal {
    refusal(ResponseError::InvalidRequest, what)
}

/// A CreateAcls creation as a binding, or why it is not one.
pub fn binding_of(c: &AclCreation) -> Result<AclBinding, Refusal> {
    let resource_type = ResourceType::from_kafka_code(c.resource_type).ok_or_else(|| {
        invalid(format!(
            "resource type {} cannot hold ACLs",
            c.resource_type
        ))
    })?;
    let pattern = PatternType::from_kafka_code(c.resource_pattern_type).ok_or_else(|| {
        invalid(format!(
            "pattern type {} is not literal (3) or prefixed (4)",
            c.resource_pattern_type
        ))
    })?;
    let operation = Operation::from_kafka_code(c.operation).ok_or_else(|| {
        invalid(format!(
            "operation {} is not one an ACL can name",
            c.operation
        ))
    })?;
    let permission = Permission::from_kafka_code(c.permission_type).ok_or_else(|| {
        invalid(format!(
            "permission {} is not deny (2) or allow (3)",
            c.permission_type
        ))
    })?;
    Ok(AclBinding {
        resource_type,
        name: c.resource_name.to_string(),
        pattern,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation,
        permission,
    })
}

/// The fields of a DescribeAcls or DeleteAcls filter, as Kafka sends them.
struct KafkaFilter<'a> {
    resource_type: i8,
    name: Option<&'a StrBytes>,
    pattern: i8,
    principal: Option<&'a StrBytes>,
    host: Option<&'a StrBytes>,
    operation: i8,
    permission: i8,
}

/// A Kafka filter as the store's filters, one per resource type it covers.
fn filters_of(f: &KafkaFilter<'_>) -> Result<Vec<AclFilter>, Refusal> {
    let types: Vec<ResourceType> = match f.resource_type {
        ANY => KAFKA_TYPES.to_vec(),
        code => vec![ResourceType::from_kafka_code(code)
            .ok_or_else(|| invalid(format!("resource type {code} in an ACL filter")))?],
    };
    let pattern = match f.pattern {
        ANY => PatternFilter::Any,
        MATCH => PatternFilter::Match,
        code => match PatternType::from_kafka_code(code) {
            Some(PatternType::Literal) => PatternFilter::Literal,
            Some(PatternType::Prefixed) => PatternFilter::Prefixed,
            None => return Err(invalid(format!("pattern type {code} in an ACL filter"))),
        },
    };
    let operation = match f.operation {
        ANY => None,
        code => Some(
            Operation::from_kafka_code(code)
                .ok_or_else(|| invalid(format!("operation {code} in an ACL filter")))?,
        ),
    };
    let permission = match f.permission {
        ANY => None,
        code => Some(
            Permission::from_kafka_code(code)
                .ok_or_else(|| invalid(format!("permission {code} in an ACL filter")))?,
        ),
    };
    let text = |s: Option<&StrBytes>| s.map(|s| s.to_string());
    Ok(types
        .into_iter()
        .map(|t| AclFilter {
            resource_type: Some(t),
            name: text(f.name),
            pattern,
            principal: text(f.principal),
            host: text(f.host),
            operation,
            permission,
        })
        .collect())
}

/// A DescribeAcls request's filter as the store's filters.
pub fn describe_filters(req: &DescribeAclsRequest) -> Result<Vec<AclFilter>, Refusal> {
    filters_of(&KafkaFilter {
        resource_type: req.resource_type_filter,
        name: req.resource_name_filter.as_ref(),
        pattern: req.pattern_type_filter,
        principal: req.principal_filter.as_ref(),
        host: req.host_filter.as_ref(),
        operation: req.operation,
        permission: req.permission_type,
    })
}

/// One DeleteAcls filter as the store's filters.
pub fn delete_filters(f: &DeleteAclsFilter) -> Result<Vec<AclFilter>, Refusal> {
    filters_of(&KafkaFilter {
        resource_type: f.resource_type_filter,
        name: f.resource_name_filter.as_ref(),
        pattern: f.pattern_type_filter,
        principal: f.principal_filter.as_ref(),
        host: f.host_filter.as_ref(),
        operation: f.operation,
        permission: f.permission_type,
    })
}

/// CreateAcls: needs Alter on the cluster. Each creation succeeds or fails alone.
pub async fn create(ctx: &Ctx, req: CreateAclsRequest) -> CreateAclsResponse {
    let allowed = check_cluster(ctx, Operation::Alter);
    let mut outcomes: Vec<Result<(), Refusal>> = Vec::with_capacity(req.creations.len());
    let mut bindings = Vec::new();
    for creation in &req.creations {
        let outcome = allowed.clone().and_then(|()| binding_of(creation));
        outcomes.push(outcome.map(|b| bindings.push(b)));
    }
    let mut created = ctx.engine.create_acls(bindings).await.into_iter();
    let results = outcomes
        .into_iter()
        .map(|outcome| {
            let outcome = outcome.and_then(|()| match created.next() {
                Some(r) => r.map_err(errors::of),
                None => Err(errors::of(EngineError::Internal(
                    "an ACL creation went unanswered".into(),
                ))),
            });
            match outcome {
                Ok(()) => AclCreationResult::default(),
                Err(refused) => AclCreationResult::default()
                    .with_error_code(refused.0)
                    .with_error_message(message(&refused)),
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// Bindings as DescribeAcls answers them: grouped by resource, in the store's order.
fn described(bindings: Vec<AclBinding>) -> Vec<DescribeAclsResource> {
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for b in bindings {
        let Some(resource_type) = b.resource_type.kafka_code() else {
            continue;
        };
        let acl = AclDescription::default()
            .with_principal(str_bytes(&b.principal))
            .with_host(str_bytes(&b.host))
            .with_operation(b.operation.kafka_code())
            .with_permission_type(b.permission.kafka_code());
        let pattern = b.pattern.kafka_code();
        match resources.iter_mut().find(|r| {
            r.resource_type == resource_type
                && r.pattern_type == pattern
                && r.resource_name.as_str() == b.name
        }) {
            Some(r) => r.acls.push(acl),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(str_bytes(&b.name))
                    .with_pattern_type(pattern)
                    .with_acls(vec![acl]),
            ),
        }
    }
    resources
}

/// DescribeAcls: needs Describe on the cluster.
pub fn describe(ctx: &Ctx, req: DescribeAclsRequest) -> DescribeAclsResponse {
    let filters = check_cluster(ctx, Operation::Describe).and_then(|()| describe_filters(&req));
    match filters {
        Ok(filters) => {
            let bindings = filters
                .iter()
                .flat_map(|f| ctx.engine.describe_acls(f))
                .collect();
            DescribeAclsResponse::default().with_resources(described(bindings))
        }
        Err(refused) => DescribeAclsResponse::default()
            .with_error_code(refused.0)
            .with_error_message(message(&refused)),
    }
}

fn matching_acl(b: &AclBinding) -> Option<DeleteAclsMatchingAcl> {
    Some(
        DeleteAclsMatchingAcl::default()
            .with_resource_type(b.resource_type.kafka_code()?)
            .with_resource_name(str_bytes(&b.name))
            .with_pattern_type(b.pattern.kafka_code())
            .with_principal(str_bytes(&b.principal))
            .with_host(str_bytes(&b.host))
            .with_operation(b.operation.kafka_code())
            .with_permission_type(b.permission.kafka_code()),
    )
}

/// DeleteAcls: needs Alter on the cluster; each filter answers the bindings it removed.
pub async fn delete(ctx: &Ctx, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let allowed = check_cluster(ctx, Operation::Alter);
    // Each Kafka filter is one or more store filters (one per resource type).
    let mut planned: Vec<Result<usize, Refusal>> = Vec::with_capacity(req.filters.len());
    let mut filters = Vec::new();
    for f in &req.filters {
        let parts = allowed.clone().and_then(|()| delete_filters(f));
        planned.push(parts.map(|parts| {
            let n = parts.len();
            filters.extend(parts);
            n
        }));
    }
    let mut deleted = ctx.engine.delete_acls(filters).await.into_iter();
    let results = planned
        .into_iter()
        .map(|plan| {
            let outcome = plan.and_then(|n| {
                let mut removed = Vec::new();
                for _ in 0..n {
                    match deleted.next() {
                        Some(Ok(bindings)) => removed.extend(bindings),
                        Some(Err(e)) => return Err(errors::of(e)),
                        None => return Err(invalid("an ACL deletion went unanswered".into())),
                    }
                }
                Ok(removed)
            });
            match outcome {
                Ok(removed) => DeleteAclsFilterResult::default()
                    .with_matching_acls(removed.iter().filter_map(matching_acl).collect()),
                Err(refused) => DeleteAclsFilterResult::default()
                    .with_error_code(refused.0)
                    .with_error_message(message(&refused)),
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creation(rtype: i8, pattern: i8, op: i8, perm: i8) -> AclCreation {
        AclCreation::default()
            .with_resource_type(rtype)
            .with_resource_name(StrBytes::from_static_str("orders"))
            .with_resource_pattern_type(pattern)
            .with_principal(StrBytes::from_static_str("User:alice"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(op)
            .with_permission_type(perm)
    }

    #[test]
    fn a_creation_must_name_one_type_pattern_operation_and_permission() {
        let b = binding_of(&creation(2, 4, 4, 3)).expect("a binding");
        assert_eq!(
            (b.resource_type, b.pattern, b.operation, b.permission),
            (
                ResourceType::Topic,
                PatternType::Prefixed,
                Operation::Write,
                Permission::Allow
            )
        );
        let invalid = ResponseError::InvalidRequest.code();
        // ANY or MATCH, UNKNOWN (0) and codes past Kafka's are filters' words only.
        for bad in [
            creation(ANY, 3, 4, 3),
            creation(2, MATCH, 4, 3),
            creation(2, 3, ANY, 3),
            creation(2, 3, 4, ANY),
            creation(0, 3, 4, 3),
            creation(2, 3, 13, 3),
        ] {
            let refused = binding_of(&bad).expect_err("refused");
            assert_eq!(refused.0, invalid, "{bad:?}");
        }
    }

    fn filter(rtype: i8, pattern: i8) -> KafkaFilter<'static> {
        KafkaFilter {
            resource_type: rtype,
            name: None,
            pattern,
            principal: None,
            host: None,
            operation: ANY,
            permission: ANY,
        }
    }

    #[test]
    fn a_filter_for_any_type_covers_the_kafka_types_and_not_queues() {
        let types: Vec<_> = filters_of(&filter(ANY, ANY))
            .expect("filters")
            .iter()
            .map(|f| f.resource_type)
            .collect();
        assert_eq!(types, KAFKA_TYPES.map(Some).to_vec());
        let one = filters_of(&filter(3, MATCH)).expect("filters");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].resource_type, Some(ResourceType::Group));
        assert_eq!(one[0].pattern, PatternFilter::Match);
        assert!(filters_of(&filter(0, ANY)).is_err(), "UNKNOWN type");
        assert!(filters_of(&filter(2, 0)).is_err(), "UNKNOWN pattern");
    }

    #[test]
    fn described_bindings_are_grouped_by_resource_and_ours_left_out() {
        let binding = |rtype, name: &str, op| AclBinding {
            resource_type: rtype,
            name: name.into(),
            pattern: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: op,
            permission: Permission::Allow,
        };
        let resources = described(vec![
            binding(ResourceType::Topic, "a", Operation::Read),
            binding(ResourceType::Queue, "a", Operation::Read),
            binding(ResourceType::Topic, "a", Operation::Write),
            binding(ResourceType::Group, "a", Operation::Read),
        ]);
        let got: Vec<(i8, &str, Vec<i8>)> = resources
            .iter()
            .map(|r| {
                let ops = r.acls.iter().map(|a| a.operation).collect();
                (r.resource_type, r.resource_name.as_str(), ops)
            })
            .collect();
        assert_eq!(got, vec![(2, "a", vec![3, 4]), (3, "a", vec![3])]);
    }
}
