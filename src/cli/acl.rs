//! `peregrine acl add|remove|list`: ACL bindings with Kafka's `kafka-acls` flags
//! (`--allow-principal`, `--deny-principal`, `--operation`, `--topic`, `--group`, ...),
//! plus `--queue` and `--exchange` for the broker's own resources. `add` makes one
//! binding per resource, operation, principal and host given; `remove` and `list`
//! use the same flags as a filter (a flag left out matches anything). With `--data-dir`
//! they change a stopped broker's data directory (`store`).

use super::CliResult;
use crate::native::authz::CLUSTER;
use crate::native::messages::{
    AclBinding, AclFilter, AclOperation, AclPatternFilter, AclPatternType, AclPermission,
    AclResourceType,
};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Subcommand, Debug)]
pub enum AclCommand {
    /// Add bindings.
    Add(AclArgs),
    /// Remove the bindings these flags match (at least one resource flag).
    Remove(AclArgs),
    /// List the bindings these flags match (all without flags).
    List(AclArgs),
}

/// Kafka's operation names (`Read`, `ClusterAction`); case does not matter.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[value(rename_all = "PascalCase")]
pub enum OperationArg {
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

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternArg {
    Literal,
    Prefixed,
    /// list/remove: any pattern type.
    Any,
    /// list/remove: every binding that applies to the given (literal) name.
    Match,
}

#[derive(Args, Debug)]
pub struct AclArgs {
    /// Principal (`User:NAME`, `User:*`) the bindings allow (repeatable).
    #[arg(long)]
    pub allow_principal: Vec<String>,
    /// Principal the bindings deny (repeatable); a deny wins over any allow.
    #[arg(long)]
    pub deny_principal: Vec<String>,
    /// list/remove: bindings of this principal, allowing or denying.
    #[arg(long)]
    pub principal: Option<String>,
    /// Host (IP address) the allows apply to (default: every host, `*`).
    #[arg(long)]
    pub allow_host: Vec<String>,
    /// Host the denies apply to (default: every host, `*`).
    #[arg(long)]
    pub deny_host: Vec<String>,
    /// Operation (repeatable; add: default All).
    #[arg(long, value_enum, ignore_case = true)]
    pub operation: Vec<OperationArg>,
    #[arg(long)]
    pub topic: Vec<String>,
    #[arg(long)]
    pub group: Vec<String>,
    #[arg(long)]
    pub queue: Vec<String>,
    #[arg(long)]
    pub exchange: Vec<String>,
    #[arg(long)]
    pub transactional_id: Vec<String>,
    /// The cluster itself (user and ACL management, idempotent writes).
    #[arg(long)]
    pub cluster: bool,
    /// How resource names match (add: literal or prefixed; default literal, or any
    /// for list).
    #[arg(long, value_enum, ignore_case = true)]
    pub resource_pattern_type: Option<PatternArg>,
    #[command(flatten)]
    pub store: super::store::StoreArgs,
}

impl From<OperationArg> for AclOperation {
    fn from(o: OperationArg) -> AclOperation {
        match o {
            OperationArg::All => AclOperation::All,
            OperationArg::Read => AclOperation::Read,
            OperationArg::Write => AclOperation::Write,
            OperationArg::Create => AclOperation::Create,
            OperationArg::Delete => AclOperation::Delete,
            OperationArg::Alter => AclOperation::Alter,
            OperationArg::Describe => AclOperation::Describe,
            OperationArg::ClusterAction => AclOperation::ClusterAction,
            OperationArg::DescribeConfigs => AclOperation::DescribeConfigs,
            OperationArg::AlterConfigs => AclOperation::AlterConfigs,
            OperationArg::IdempotentWrite => AclOperation::IdempotentWrite,
        }
    }
}

impl AclArgs {
    /// Every resource named by the flags.
    fn resources(&self) -> Vec<(AclResourceType, String)> {
        let mut all = Vec::new();
        let lists = [
            (AclResourceType::Topic, &self.topic),
            (AclResourceType::Group, &self.group),
            (AclResourceType::Queue, &self.queue),
            (AclResourceType::Exchange, &self.exchange),
            (AclResourceType::TransactionalId, &self.transactional_id),
        ];
        for (rtype, names) in lists {
            all.extend(names.iter().map(|n| (rtype, n.clone())));
        }
        if self.cluster {
            all.push((AclResourceType::Cluster, CLUSTER.to_string()));
        }
        all
    }

    /// (principal, host, permission) of each binding to add.
    fn grants(&self) -> Vec<(String, String, AclPermission)> {
        let hosts = |h: &Vec<String>| {
            if h.is_empty() {
                vec!["*".to_string()]
            } else {
                h.clone()
            }
        };
        let mut grants = Vec::new();
        for (principals, host_flags, permission) in [
            (
                &self.allow_principal,
                &self.allow_host,
                AclPermission::Allow,
            ),
            (&self.deny_principal, &self.deny_host, AclPermission::Deny),
        ] {
            for p in principals {
                for h in hosts(host_flags) {
                    grants.push((p.clone(), h, permission));
                }
            }
        }
        grants
    }

    /// The bindings `add` makes.
    pub fn bindings(&self) -> Result<Vec<AclBinding>, String> {
        let pattern = match self.resource_pattern_type.unwrap_or(PatternArg::Literal) {
            PatternArg::Literal => AclPatternType::Literal,
            PatternArg::Prefixed => AclPatternType::Prefixed,
            other => {
                return Err(format!(
                    "acl add takes a literal or prefixed pattern, not {other:?}"
                ))
            }
        };
        let resources = self.resources();
        let grants = self.grants();
        if resources.is_empty() || grants.is_empty() {
            return Err("acl add needs a resource (--topic, --group, --queue, --exchange, --transactional-id or --cluster) and a principal (--allow-principal or --deny-principal)".into());
        }
        let operations = if self.operation.is_empty() {
            vec![OperationArg::All]
        } else {
            self.operation.clone()
        };
        let mut bindings = Vec::new();
        for (rtype, name) in &resources {
            for op in &operations {
                for (principal, host, permission) in &grants {
                    bindings.push(AclBinding {
                        resource_type: *rtype,
                        resource_name: name.clone(),
                        pattern,
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: (*op).into(),
                        permission: *permission,
                    });
                }
            }
        }
        Ok(bindings)
    }

    /// The filters `remove` and `list` use: one per resource, operation and principal
    /// given (`None` fields match anything).
    pub fn filters(&self, default_pattern: PatternArg) -> Vec<AclFilter> {
        let pattern = match self.resource_pattern_type.unwrap_or(default_pattern) {
            PatternArg::Literal => AclPatternFilter::Literal,
            PatternArg::Prefixed => AclPatternFilter::Prefixed,
            PatternArg::Any => AclPatternFilter::Any,
            PatternArg::Match => AclPatternFilter::Match,
        };
        let resources: Vec<(Option<AclResourceType>, Option<String>)> = {
            let named = self.resources();
            if named.is_empty() {
                vec![(None, None)]
            } else {
                named.into_iter().map(|(t, n)| (Some(t), Some(n))).collect()
            }
        };
        let operations: Vec<Option<AclOperation>> = if self.operation.is_empty() {
            vec![None]
        } else {
            self.operation.iter().map(|o| Some((*o).into())).collect()
        };
        let mut principals: Vec<(Option<String>, Option<AclPermission>)> = Vec::new();
        principals.extend(
            self.allow_principal
                .iter()
                .map(|p| (Some(p.clone()), Some(AclPermission::Allow))),
        );
        principals.extend(
            self.deny_principal
                .iter()
                .map(|p| (Some(p.clone()), Some(AclPermission::Deny))),
        );
        if let Some(p) = &self.principal {
            principals.push((Some(p.clone()), None));
        }
        if principals.is_empty() {
            principals.push((None, None));
        }
        let mut filters = Vec::new();
        for (rtype, name) in &resources {
            for op in &operations {
                for (principal, permission) in &principals {
                    filters.push(AclFilter {
                        resource_type: *rtype,
                        resource_name: name.clone(),
                        pattern,
                        principal: principal.clone(),
                        host: None,
                        operation: *op,
                        permission: *permission,
                    });
                }
            }
        }
        filters
    }
}

pub fn run(cmd: AclCommand) -> CliResult {
    match cmd {
        AclCommand::Add(args) => {
            let bindings = args.bindings()?;
            args.store.open()?.create_acls(bindings.clone())?;
            for b in &bindings {
                println!("added {}", describe(b));
            }
        }
        AclCommand::Remove(args) => {
            if args.resources().is_empty() {
                return Err("acl remove needs a resource flag (--topic, --group, --queue, --exchange, --transactional-id or --cluster)".into());
            }
            let filters = args.filters(PatternArg::Literal);
            let removed = args.store.open()?.delete_acls(filters)?;
            for b in &removed {
                println!("removed {}", describe(b));
            }
            if removed.is_empty() {
                println!("no binding matched");
            }
        }
        AclCommand::List(args) => {
            let mut client = args.store.open()?;
            let mut seen = Vec::new();
            for filter in args.filters(PatternArg::Any) {
                for b in client.describe_acls(filter)? {
                    if !seen.contains(&b) {
                        println!("{}", describe(&b));
                        seen.push(b);
                    }
                }
            }
        }
    }
    Ok(())
}

/// One binding on one line, in Kafka's words.
pub fn describe(b: &AclBinding) -> String {
    format!(
        "{:?}:{}:{:?} principal={} host={} operation={:?} permission={:?}",
        b.resource_type, b.resource_name, b.pattern, b.principal, b.host, b.operation, b.permission
    )
}
