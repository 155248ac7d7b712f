//! ACLs: who may do what to which resource, in Kafka's model, over every protocol's
//! resources (topics, groups, transactional ids, the cluster, and our queues and
//! exchanges; SNS topics are exchanges).
//!
//! A binding is (resource type, resource name, pattern literal|prefixed, principal
//! `User:x` or `User:*`, host IP or `*`, operation, allow|deny). Kafka's semantics
//! (`AclAuthorizer`): a request is allowed when some binding allows it and none denies
//! it; Deny wins; Read, Write, Delete and Alter imply Describe; AlterConfigs implies
//! DescribeConfigs; `All` is every operation; the literal name `*` matches every name.
//! Whether ACLs are enforced at all, and super-users, are the engine's
//! (`--acls`, `--super-user`).
//!
//! Lives in the catalog (`Catalog::acls`): durable, changed on the controller only, and
//! read by every shard from its snapshot. Bindings are indexed by (type, pattern, name)
//! so that `authorize`, called on every request, looks up a few keys instead of scanning.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Bindings the store holds at most (each is in every shard's snapshot and in the
/// catalog file, rewritten on every change).
pub const ACLS_MAX: usize = 50_000;
/// Longest resource name or prefix in a binding, in bytes.
pub const RESOURCE_NAME_MAX: usize = 1024;
/// Longest principal, `User:` and a user name.
pub const PRINCIPAL_MAX: usize = 5 + super::users::USER_NAME_MAX;
/// The literal name that matches every resource of its type.
pub const WILDCARD: &str = "*";
/// The principal that matches every principal.
pub const ANY_PRINCIPAL: &str = "User:*";
/// The principal of a client that has not authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";
/// The one cluster resource's name (Kafka's).
pub const CLUSTER_NAME: &str = "kafka-cluster";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    TransactionalId,
    Cluster,
    /// A message queue (AMQP, SQS, native queues). Not a Kafka type.
    Queue,
    /// An exchange, SNS topics included. Not a Kafka type.
    Exchange,
}

impl ResourceType {
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::TransactionalId,
        ResourceType::Cluster,
        ResourceType::Queue,
        ResourceType::Exchange,
    ];

    /// Kafka's code (`ResourceType`); `None` for ours that Kafka has not.
    pub fn kafka_code(self) -> Option<i8> {
        match self {
            ResourceType::Topic => Some(2),
            ResourceType::Group => Some(3),
            ResourceType::Cluster => Some(4),
            ResourceType::TransactionalId => Some(5),
            ResourceType::Queue | ResourceType::Exchange => None,
        }
    }

    pub fn from_kafka_code(code: i8) -> Option<ResourceType> {
        ResourceType::ALL
            .into_iter()
            .find(|t| t.kafka_code() == Some(code))
    }

    /// Lower-case name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::TransactionalId => "transactional-id",
            ResourceType::Cluster => "cluster",
            ResourceType::Queue => "queue",
            ResourceType::Exchange => "exchange",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    /// The name as it is (`*`: every name).
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

impl PatternType {
    /// Kafka's code (`PatternType`: LITERAL 3, PREFIXED 4).
    pub fn kafka_code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn from_kafka_code(code: i8) -> Option<PatternType> {
        [PatternType::Literal, PatternType::Prefixed]
            .into_iter()
            .find(|p| p.kafka_code() == code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    pub const ALL: [Operation; 11] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
    ];

    /// Kafka's code (`AclOperation`: ALL 2 ... IDEMPOTENT_WRITE 12).
    pub fn kafka_code(self) -> i8 {
        match self {
            Operation::All => 2,
            Operation::Read => 3,
            Operation::Write => 4,
            Operation::Create => 5,
            Operation::Delete => 6,
            Operation::Alter => 7,
            Operation::Describe => 8,
            Operation::ClusterAction => 9,
            Operation::DescribeConfigs => 10,
            Operation::AlterConfigs => 11,
            Operation::IdempotentWrite => 12,
        }
    }

    pub fn from_kafka_code(code: i8) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.kafka_code() == code)
    }

    /// Whether a binding for `self` grants `asked` (Kafka's implied operations).
    pub fn grants(self, asked: Operation) -> bool {
        self == asked
            || self == Operation::All
            || (asked == Operation::Describe
                && matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ))
            || (asked == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    /// Kafka's code (`AclPermissionType`: DENY 2, ALLOW 3).
    pub fn kafka_code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    pub fn from_kafka_code(code: i8) -> Option<Permission> {
        [Permission::Deny, Permission::Allow]
            .into_iter()
            .find(|p| p.kafka_code() == code)
    }
}

/// One ACL: `principal` from `host` is allowed or denied `operation` on the resources
/// `(resource_type, name, pattern)` names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    /// `User:NAME` or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Checks what a client may send in CreateAcls (Kafka's rules).
    pub fn validate(&self) -> Result<(), AclError> {
        let invalid = |what: String| Err(AclError::Invalid(what));
        if self.name.is_empty() || self.name.len() > RESOURCE_NAME_MAX {
            return invalid(format!(
                "a resource name is 1 to {RESOURCE_NAME_MAX} bytes, got {}",
                self.name.len()
            ));
        }
        if self.resource_type == ResourceType::Cluster
            && self.pattern == PatternType::Literal
            && self.name != CLUSTER_NAME
            && self.name != WILDCARD
        {
            return invalid(format!(
                "the cluster resource is named '{CLUSTER_NAME}', not '{}'",
                self.name
            ));
        }
        let user = self.principal.strip_prefix("User:");
        let user_ok = user.is_some_and(|u| {
            !u.is_empty()
                && self.principal.len() <= PRINCIPAL_MAX
                && !u.chars().any(char::is_control)
        });
        if !user_ok {
            return invalid(format!(
                "a principal is User:NAME or User:*, got {:?}",
                self.principal
            ));
        }
        if parse_host(&self.host).is_none() {
            return invalid(format!(
                "a host is an IP address or '*', got {:?}",
                self.host
            ));
        }
        Ok(())
    }
}

/// `Some(None)` for `*`, `Some(Some(ip))` for an address, `None` for anything else.
fn parse_host(host: &str) -> Option<Option<IpAddr>> {
    if host == WILDCARD {
        return Some(None);
    }
    host.parse::<IpAddr>()
        .ok()
        .map(|ip| Some(ip.to_canonical()))
}

/// Which patterns a filter takes (Kafka's `PatternType` in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PatternFilter {
    /// Any pattern type; a name must equal the binding's.
    Any,
    /// Every binding that would apply to a resource of that name: literal ones of that
    /// name or `*`, prefixed ones that are a prefix of it.
    Match,
    Literal,
    Prefixed,
}

/// Kafka's ACL filter (DescribeAcls, DeleteAcls): `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// The filter that matches every binding.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: None,
            name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// The filter that matches exactly `binding`.
    pub fn exact(binding: &AclBinding) -> AclFilter {
        AclFilter {
            resource_type: Some(binding.resource_type),
            name: Some(binding.name.clone()),
            pattern: match binding.pattern {
                PatternType::Literal => PatternFilter::Literal,
                PatternType::Prefixed => PatternFilter::Prefixed,
            },
            principal: Some(binding.principal.clone()),
            host: Some(binding.host.clone()),
            operation: Some(binding.operation),
            permission: Some(binding.permission),
        }
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, b: &AclBinding) -> bool {
        self.resource_matches(b)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }

    /// Kafka's `ResourcePatternFilter.matches`.
    fn resource_matches(&self, b: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != b.resource_type) {
            return false;
        }
        let same_pattern = match self.pattern {
            PatternFilter::Any | PatternFilter::Match => true,
            PatternFilter::Literal => b.pattern == PatternType::Literal,
            PatternFilter::Prefixed => b.pattern == PatternType::Prefixed,
        };
        if !same_pattern {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern != PatternFilter::Match {
            return *name == b.name;
        }
        match b.pattern {
            PatternType::Literal => *name == b.name || b.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&b.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("invalid ACL: {0}")]
    Invalid(String),
    #[error("the broker holds {ACLS_MAX} ACLs already (delete some first)")]
    TooMany,
}

/// One binding as the index keeps it: what is left once the resource is the key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    principal: String,
    /// `None`: every host.
    host: Option<IpAddr>,
    binding: AclBinding,
}

impl Entry {
    fn applies_to(&self, principal: &str, host: IpAddr) -> bool {
        (self.principal == principal || self.principal == ANY_PRINCIPAL)
            && self.host.is_none_or(|h| h == host)
    }
}

type Patterns = BTreeMap<String, Vec<Entry>>;

/// Every ACL binding, indexed for `authorize`. Immutable once shared in a catalog
/// snapshot; the controller changes a copy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<AclBinding>", into = "Vec<AclBinding>")]
pub struct AclStore {
    /// (type, pattern) → name → entries.
    index: BTreeMap<(ResourceType, PatternType), Patterns>,
    /// Per type, the lengths of its prefixed names, each with how many names have it:
    /// a resource is checked against the prefixes of its own name of those lengths
    /// only, a few map lookups however many prefixed ACLs there are.
    prefix_lengths: BTreeMap<ResourceType, BTreeMap<usize, usize>>,
    len: usize,
}

impl TryFrom<Vec<AclBinding>> for AclStore {
    type Error = AclError;

    /// Checks what was read from the catalog file as CreateAcls would have.
    fn try_from(bindings: Vec<AclBinding>) -> Result<AclStore, AclError> {
        let mut store = AclStore::default();
        for binding in bindings {
            store.add(binding)?;
        }
        Ok(store)
    }
}

impl From<AclStore> for Vec<AclBinding> {
    fn from(store: AclStore) -> Vec<AclBinding> {
        store.bindings().cloned().collect()
    }
}

impl AclStore {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every binding, in a stable order (type, pattern, name, insertion).
    pub fn bindings(&self) -> impl Iterator<Item = &AclBinding> {
        self.index
            .values()
            .flat_map(|names| names.values())
            .flatten()
            .map(|e| &e.binding)
    }

    /// Adds a binding; `Ok(false)` when it is there already (adding is idempotent, as
    /// in Kafka).
    pub fn add(&mut self, binding: AclBinding) -> Result<bool, AclError> {
        binding.validate()?;
        let host = parse_host(&binding.host)
            .ok_or_else(|| AclError::Invalid(format!("host {:?}", binding.host)))?;
        let key = (binding.resource_type, binding.pattern);
        let existing = self.index.get(&key).and_then(|n| n.get(&binding.name));
        if existing.is_some_and(|entries| entries.iter().any(|e| e.binding == binding)) {
            return Ok(false);
        }
        if self.len >= ACLS_MAX {
            return Err(AclError::TooMany);
        }
        if existing.is_none() && binding.pattern == PatternType::Prefixed {
            *self
                .prefix_lengths
                .entry(binding.resource_type)
                .or_default()
                .entry(binding.name.len())
                .or_default() += 1;
        }
        let entries = self
            .index
            .entry(key)
            .or_default()
            .entry(binding.name.clone())
            .or_default();
        entries.push(Entry {
            principal: binding.principal.clone(),
            host,
            binding,
        });
        self.len += 1;
        Ok(true)
    }

    /// Removes the bindings `filter` matches and returns them.
    pub fn remove_matching(&mut self, filter: &AclFilter) -> Vec<AclBinding> {
        let mut removed = Vec::new();
        let lengths = &mut self.prefix_lengths;
        for ((resource_type, pattern), names) in self.index.iter_mut() {
            for entries in names.values_mut() {
                entries.retain(|e| {
                    let hit = filter.matches(&e.binding);
                    if hit {
                        removed.push(e.binding.clone());
                    }
                    !hit
                });
            }
            names.retain(|name, entries| {
                let gone = entries.is_empty();
                if gone && *pattern == PatternType::Prefixed {
                    forget_length(lengths, *resource_type, name.len());
                }
                !gone
            });
        }
        self.index.retain(|_, names| !names.is_empty());
        self.len -= removed.len();
        removed
    }

    /// The bindings `filter` matches (DescribeAcls).
    pub fn matching(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.bindings()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Whether `principal` connecting from `host` may do `operation` on the resource
    /// `(resource_type, name)`: some binding allows it and none denies it. (Whether ACLs
    /// are on, and super-users, are the caller's.)
    pub fn authorize(
        &self,
        principal: &str,
        host: IpAddr,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let host = host.to_canonical();
        let mut allowed = false;
        for entry in self.entries_for(resource_type, name) {
            if !entry.applies_to(principal, host) {
                continue;
            }
            let granted = entry.binding.operation;
            match entry.binding.permission {
                // A deny is for its own operation (or All): denying Read does not deny
                // the Describe that Read implies, as in Kafka.
                Permission::Deny => {
                    if granted == operation || granted == Operation::All {
                        return false;
                    }
                }
                Permission::Allow => allowed |= granted.grants(operation),
            }
        }
        allowed
    }

    /// The entries that apply to resource `name`: literal ones of that name and of `*`,
    /// prefixed ones whose prefix starts it.
    fn entries_for<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let literal = self.index.get(&(resource_type, PatternType::Literal));
        let exact = literal.and_then(|l| l.get(name)).into_iter().flatten();
        let wildcard = literal
            .filter(|_| name != WILDCARD)
            .and_then(|l| l.get(WILDCARD))
            .into_iter()
            .flatten();
        // The prefixes of `name` of the lengths prefixed ACLs of this type have.
        let prefixes = self.index.get(&(resource_type, PatternType::Prefixed));
        let prefixed = self
            .prefix_lengths
            .get(&resource_type)
            .into_iter()
            .flat_map(|lengths| lengths.keys())
            .take_while(move |len| **len <= name.len())
            .filter_map(move |len| prefixes?.get(name.get(..*len)?))
            .flatten();
        exact.chain(wildcard).chain(prefixed)
    }
}

/// One prefixed name of `length` bytes less for `resource_type`.
fn forget_length(
    lengths: &mut BTreeMap<ResourceType, BTreeMap<usize, usize>>,
    resource_type: ResourceType,
    length: usize,
) {
    let Some(of_type) = lengths.get_mut(&resource_type) else {
        return;
    };
    if let Some(count) = of_type.get_mut(&length) {
        *count -= 1;
        if *count == 0 {
            of_type.remove(&length);
        }
    }
    if of_type.is_empty() {
        lengths.remove(&resource_type);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        rt: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.into(),
            pattern,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation: op,
            permission: perm,
        }
    }

    fn store(bindings: Vec<AclBinding>) -> AclStore {
        AclStore::try_from(bindings).expect("valid")
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    /// (bindings, operation asked, resource type, resource name, allowed?) for `User:alice`.
    type Row = (Vec<AclBinding>, Operation, ResourceType, &'static str, bool);

    /// Kafka's semantics, one row per rule.
    #[test]
    fn authorization_follows_kafkas_semantics() {
        const A: &str = "User:alice";
        let lit = |rt, name, op, perm| acl(rt, name, Literal, A, op, perm);
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            // Nothing allows: denied (allow.everyone.if.no.acl.found=false).
            (vec![], Read, Topic, "t", false),
            (vec![lit(Topic, "t", Read, Allow)], Read, Topic, "t", true),
            // Another principal, name, resource type, operation.
            (vec![acl(Topic, "t", Literal, "User:bob", Read, Allow)], Read, Topic, "t", false),
            (vec![lit(Topic, "t", Read, Allow)], Read, Topic, "t2", false),
            (vec![lit(Topic, "t", Read, Allow)], Read, Group, "t", false),
            (vec![lit(Topic, "t", Read, Allow)], Write, Topic, "t", false),
            // Deny wins over allow, and over a wildcard allow.
            (vec![lit(Topic, "t", Write, Allow), lit(Topic, "t", Write, Deny)], Write, Topic, "t", false),
            (
                vec![
                    acl(Topic, "*", Literal, "User:*", All, Allow),
                    acl(Topic, "secret", Prefixed, A, Read, Deny),
                ],
                Read, Topic, "secret-plans", false,
            ),
            // Implied Describe; a deny of Read does not deny Describe.
            (vec![lit(Topic, "t", Read, Allow)], Describe, Topic, "t", true),
            (vec![lit(Topic, "t", Write, Allow)], Describe, Topic, "t", true),
            (vec![lit(Topic, "t", Delete, Allow)], Describe, Topic, "t", true),
            (vec![lit(Topic, "t", Alter, Allow)], Describe, Topic, "t", true),
            (vec![lit(Topic, "t", Create, Allow)], Describe, Topic, "t", false),
            (vec![lit(Topic, "t", Describe, Allow)], Read, Topic, "t", false),
            (vec![lit(Topic, "t", All, Allow), lit(Topic, "t", Read, Deny)], Describe, Topic, "t", true),
            (vec![lit(Topic, "t", AlterConfigs, Allow)], DescribeConfigs, Topic, "t", true),
            (vec![lit(Topic, "t", DescribeConfigs, Allow)], AlterConfigs, Topic, "t", false),
            // All allows everything; All denied denies everything.
            (vec![lit(Queue, "q", All, Allow)], Delete, Queue, "q", true),
            (
                vec![lit(Queue, "q", Read, Allow), acl(Queue, "q", Literal, "User:*", All, Deny)],
                Read, Queue, "q", false,
            ),
            // Prefixed: names that start with it, not the other way round.
            (vec![acl(Topic, "orders-", Prefixed, A, Write, Allow)], Write, Topic, "orders-eu", true),
            (vec![acl(Topic, "orders-", Prefixed, A, Write, Allow)], Write, Topic, "orders", false),
            (vec![acl(Topic, "orders-", Prefixed, A, Write, Allow)], Write, Topic, "order-x", false),
            (vec![acl(Topic, "o", Prefixed, A, Write, Allow)], Write, Topic, "orders", true),
            // A prefixed "*" is a prefix, not a wildcard; a literal "*" is a wildcard.
            (vec![acl(Topic, "*", Prefixed, A, Read, Allow)], Read, Topic, "t", false),
            (vec![lit(Group, "*", Read, Allow)], Read, Group, "g", true),
            // The wildcard principal; the cluster.
            (vec![acl(Exchange, "x", Literal, "User:*", Write, Allow)], Write, Exchange, "x", true),
            (vec![lit(Cluster, CLUSTER_NAME, Alter, Allow)], Alter, Cluster, CLUSTER_NAME, true),
        ];
        for (i, (bindings, op, rt, name, expected)) in table.into_iter().enumerate() {
            let got = store(bindings.clone()).authorize(A, HOME, op, rt, name);
            assert_eq!(
                got, expected,
                "row {i}: {op:?} {rt:?} '{name}' with {bindings:?}"
            );
        }
    }

    #[test]
    fn host_bindings_match_their_address_only() {
        let mut b = acl(Topic, "t", Literal, "User:a", Read, Allow);
        b.host = "10.0.0.1".into();
        let acls = store(vec![b]);
        let from = |ip: &str| acls.authorize("User:a", ip.parse().expect("ip"), Read, Topic, "t");
        assert!(from("10.0.0.1"));
        // An IPv4 client on a dual-stack socket is the same host.
        assert!(from("::ffff:10.0.0.1"));
        assert!(!from("10.0.0.2"));
        assert!(!from("127.0.0.1"));
    }

    #[test]
    fn invalid_bindings_are_refused() {
        let good = acl(Topic, "t", Literal, "User:a", Read, Allow);
        let mut bad = Vec::new();
        for (field, value) in [
            ("name", ""),
            ("principal", "alice"),
            ("principal", "User:"),
            ("principal", "Group:x"),
            ("host", "localhost"),
            ("host", ""),
        ] {
            let mut b = good.clone();
            match field {
                "name" => b.name = value.into(),
                "principal" => b.principal = value.into(),
                _ => b.host = value.into(),
            }
            bad.push(b);
        }
        bad.push(acl(Cluster, "other", Literal, "User:a", Alter, Allow));
        let mut acls = AclStore::default();
        for b in bad {
            assert!(
                matches!(acls.add(b.clone()), Err(AclError::Invalid(_))),
                "{b:?}"
            );
        }
        assert!(acls.is_empty());
        assert_eq!(acls.add(good.clone()), Ok(true));
        assert_eq!(acls.add(good), Ok(false), "adding again changes nothing");
        assert_eq!(acls.len(), 1);
    }

    #[test]
    fn filters_match_as_kafkas_and_remove_what_they_match() {
        let a = acl(Topic, "orders", Literal, "User:a", Read, Allow);
        let b = acl(Topic, "ord", Prefixed, "User:b", Write, Allow);
        let c = acl(Topic, "*", Literal, "User:c", Describe, Deny);
        let d = acl(Group, "orders", Literal, "User:a", Read, Allow);
        let mut acls = store(vec![a.clone(), b.clone(), c.clone(), d.clone()]);
        let named = |pattern, name: &str| AclFilter {
            resource_type: Some(Topic),
            name: Some(name.into()),
            pattern,
            ..AclFilter::any()
        };
        assert_eq!(acls.matching(&AclFilter::any()).len(), 4);
        // Any: exact name, any pattern type.
        assert_eq!(
            acls.matching(&named(PatternFilter::Any, "orders")),
            std::slice::from_ref(&a)
        );
        assert_eq!(
            acls.matching(&named(PatternFilter::Any, "ord")),
            std::slice::from_ref(&b)
        );
        // Match: everything that applies to a topic named "orders".
        let mut applies = acls.matching(&named(PatternFilter::Match, "orders"));
        applies.sort();
        let mut expected = vec![a.clone(), b.clone(), c.clone()];
        expected.sort();
        assert_eq!(applies, expected);
        assert_eq!(acls.matching(&named(PatternFilter::Prefixed, "orders")), []);
        let by_principal = AclFilter {
            principal: Some("User:a".into()),
            ..AclFilter::any()
        };
        let mut of_a = acls.matching(&by_principal);
        of_a.sort();
        let mut expected = vec![a.clone(), d.clone()];
        expected.sort();
        assert_eq!(of_a, expected);
        assert_eq!(
            acls.matching(&AclFilter::exact(&b)),
            std::slice::from_ref(&b)
        );
        // Delete with a filter: what it matched goes, the rest stays.
        let mut removed = acls.remove_matching(&by_principal);
        removed.sort();
        assert_eq!(removed, expected);
        assert_eq!(acls.len(), 2);
        assert!(!acls.authorize("User:a", HOME, Read, Topic, "orders"));
        assert!(acls.authorize("User:b", HOME, Write, Topic, "orders"));
        // And the store reads back from its JSON form.
        let json = serde_json::to_string(&acls).expect("encodes");
        assert_eq!(
            serde_json::from_str::<AclStore>(&json).expect("decodes"),
            acls
        );
    }

    #[test]
    fn prefixes_of_several_lengths_apply_and_go_with_their_last_binding() {
        let short = acl(Topic, "ab", Prefixed, "User:a", Read, Allow);
        let long = acl(Topic, "abc", Prefixed, "User:a", Read, Allow);
        let other = acl(Group, "ab", Prefixed, "User:a", Read, Allow);
        let mut acls = store(vec![short.clone(), long.clone(), other]);
        let may_read =
            |acls: &AclStore, name: &str| acls.authorize("User:a", HOME, Read, Topic, name);
        assert!(may_read(&acls, "abx") && may_read(&acls, "abcx") && may_read(&acls, "ab"));
        assert!(!may_read(&acls, "a") && !may_read(&acls, "xab"));
        // A multi-byte character where a prefix length would cut it is no prefix.
        assert!(!may_read(&acls, "aé"));
        acls.remove_matching(&AclFilter::exact(&short));
        assert!(!may_read(&acls, "abx"));
        assert!(may_read(&acls, "abcx"));
        acls.remove_matching(&AclFilter::any());
        assert_eq!(acls, AclStore::default(), "no index entry is left behind");
    }

    #[test]
    fn the_store_is_bounded() {
        let mut acls = AclStore::default();
        for i in 0..ACLS_MAX {
            let b = acl(Topic, &format!("t{i}"), Literal, "User:a", Read, Allow);
            acls.add(b).expect("under the bound");
        }
        let one_more = acl(Topic, "last", Prefixed, "User:a", Read, Allow);
        assert_eq!(acls.add(one_more), Err(AclError::TooMany));
        assert_eq!(acls.bindings().count(), ACLS_MAX);
        assert!(
            acls.prefix_lengths.is_empty(),
            "a refused binding leaves nothing"
        );
        assert!(acls.authorize("User:a", HOME, Read, Topic, "t49999"));
    }
}
