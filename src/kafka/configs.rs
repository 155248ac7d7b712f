//! Topic configs as Kafka admin clients read and change them: DescribeConfigs,
//! AlterConfigs (v0-2: the request's configs replace the topic's, a key left out goes
//! back to its default, as in Kafka) and IncrementalAlterConfigs (v0-1: SET, DELETE,
//! APPEND and SUBTRACT per key). A change is durable in the catalog before it is
//! answered and live on every partition at once (retention at the next retention pass,
//! the segment size at the next roll); `validate_only` checks everything and changes
//! nothing.
//!
//! The keys are the topic settings the engine has (`TOPIC_CONFIGS`); any other key is
//! refused with INVALID_CONFIG rather than ignored, and so is a value the log cannot run
//! with. A malformed request (an unknown operation, a null value to set, a key twice)
//! is INVALID_REQUEST. Broker configs are `peregrine serve` flags: describing a broker
//! answers none, changing one is refused with INVALID_REQUEST.
//!
//! With `--acls`, as Kafka: DescribeConfigs needs DescribeConfigs and the two alter APIs
//! AlterConfigs, on the topic (TOPIC_AUTHORIZATION_FAILED) or, for a broker, on the
//! cluster (CLUSTER_AUTHORIZATION_FAILED); the check comes first, so a refused client
//! learns nothing about whether the topic exists.

use super::acls::{self, Op, Refusal};
use super::{errors, str_bytes, Ctx};
use crate::engine::{EngineError, TopicInfo, TopicSettings, TopicSettingsChange};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use peregrine_shards::catalog::SEGMENT_BYTES_DEFAULT;
use std::collections::{HashMap, HashSet};

/// Topic configs the broker honours; others are refused rather than ignored.
pub const TOPIC_CONFIGS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "cleanup.policy",
    "max.message.bytes",
];

/// Resource types of the config APIs.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Config sources: set on the topic, or the broker's default.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
/// Config types (DescribeConfigs v3+).
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;
/// The one cleanup policy the log has (no compaction).
const CLEANUP_DELETE: &str = "delete";

fn invalid_config(message: String) -> Refusal {
    (ResponseError::InvalidConfig.code(), message)
}

fn invalid_request(message: String) -> Refusal {
    (ResponseError::InvalidRequest.code(), message)
}

/// A topic's settings before any is set: the broker's defaults.
pub fn default_settings() -> TopicSettings {
    TopicSettings {
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: SEGMENT_BYTES_DEFAULT,
        max_message_bytes: None,
    }
}

/// A Kafka "-1 means no limit" number: `None` for -1, refused below it.
fn limit(name: &str, value: &str) -> Result<Option<i64>, Refusal> {
    match value.trim().parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(invalid_config(format!(
            "{name}={value}: expected -1 (no limit) or a number of at least 0"
        ))),
    }
}

/// The cleanup policies a `cleanup.policy` value lists.
fn policies(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Refuses any cleanup policy list other than `delete` alone.
fn check_cleanup(list: &[&str]) -> Result<(), Refusal> {
    if list.is_empty() || list.iter().any(|p| *p != CLEANUP_DELETE) {
        return Err(invalid_config(format!(
            "cleanup.policy={}: only 'delete' is supported (no compaction)",
            list.join(",")
        )));
    }
    Ok(())
}

fn unknown_key(name: &str) -> Refusal {
    invalid_config(format!(
        "unknown or unsupported topic config '{name}' (supported: {})",
        TOPIC_CONFIGS.join(", ")
    ))
}

/// Sets `name` to `value` in `change`, as CreateTopics and both alter APIs read it.
pub fn set(change: &mut TopicSettingsChange, name: &str, value: &str) -> Result<(), Refusal> {
    match name {
        "retention.ms" => change.retention_ms = Some(limit(name, value)?),
        "retention.bytes" => {
            change.retention_bytes = Some(limit(name, value)?.map(|b| b.unsigned_abs()))
        }
        "segment.bytes" => {
            let bytes = value
                .trim()
                .parse::<u64>()
                .map_err(|_| invalid_config(format!("{name}={value} is not a number of bytes")))?;
            change.segment_bytes = Some(bytes);
        }
        "cleanup.policy" => check_cleanup(&policies(value))?,
        "max.message.bytes" => {
            // Kafka's range: an int of at least 0.
            let bytes = value
                .trim()
                .parse::<i32>()
                .ok()
                .and_then(|n| u32::try_from(n).ok());
            let bytes = bytes.ok_or_else(|| {
                invalid_config(format!(
                    "{name}={value}: expected a number of bytes from 0 to {}",
                    i32::MAX
                ))
            })?;
            change.max_message_bytes = Some(Some(bytes));
        }
        _ => return Err(unknown_key(name)),
    }
    Ok(())
}

/// Puts `name` back to its default in `change`.
fn reset(change: &mut TopicSettingsChange, name: &str) -> Result<(), Refusal> {
    let defaults = default_settings();
    match name {
        "retention.ms" => change.retention_ms = Some(defaults.retention_ms),
        "retention.bytes" => change.retention_bytes = Some(defaults.retention_bytes),
        "segment.bytes" => change.segment_bytes = Some(defaults.segment_bytes),
        "max.message.bytes" => change.max_message_bytes = Some(defaults.max_message_bytes),
        "cleanup.policy" => {}
        _ => return Err(unknown_key(name)),
    }
    Ok(())
}

/// One IncrementalAlterConfigs operation on `change`. Only `cleanup.policy` is a list;
/// appending `delete` to it or subtracting another policy leaves it as it is.
fn apply_op(
    change: &mut TopicSettingsChange,
    name: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(), Refusal> {
    let needs_value =
        || value.ok_or_else(|| invalid_request(format!("a null value cannot be set for {name}")));
    match op {
        OP_SET => set(change, name, needs_value()?),
        OP_DELETE => reset(change, name),
        OP_APPEND | OP_SUBTRACT if !TOPIC_CONFIGS.contains(&name) => Err(unknown_key(name)),
        OP_APPEND | OP_SUBTRACT if name != "cleanup.policy" => Err(invalid_config(format!(
            "{name} is not a list: it can be set or deleted, not appended to or subtracted from"
        ))),
        OP_APPEND => {
            let mut list = vec![CLEANUP_DELETE];
            for p in policies(needs_value()?) {
                if !list.contains(&p) {
                    list.push(p);
                }
            }
            check_cleanup(&list)
        }
        OP_SUBTRACT => {
            let removed = policies(needs_value()?);
            let left: Vec<&str> = [CLEANUP_DELETE]
                .into_iter()
                .filter(|p| !removed.contains(p))
                .collect();
            check_cleanup(&left)
        }
        other => Err(invalid_request(format!(
            "config operation {other} for {name} is not one of SET (0), DELETE (1), \
             APPEND (2), SUBTRACT (3)"
        ))),
    }
}

/// Refuses a key named twice in one resource (Kafka's INVALID_REQUEST). A set, not a
/// scan: a request may name many keys.
fn check_unique<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), Refusal> {
    let mut seen: HashSet<&str> = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(invalid_request(format!("config '{name}' is named twice")));
        }
    }
    Ok(())
}

/// A topic's configs as Kafka names them: (name, value, set on the topic, type).
/// `broker_max`: the broker's `message.max.bytes`, a topic's default.
fn topic_configs(t: &TopicInfo, broker_max: u32) -> Vec<(&'static str, String, bool, i8)> {
    vec![
        (
            "retention.ms",
            t.retention_ms.unwrap_or(-1).to_string(),
            t.retention_ms.is_some(),
            TYPE_LONG,
        ),
        (
            "retention.bytes",
            t.retention_bytes.map_or(-1, |b| b as i64).to_string(),
            t.retention_bytes.is_some(),
            TYPE_LONG,
        ),
        (
            "segment.bytes",
            t.segment_bytes.to_string(),
            t.segment_bytes != SEGMENT_BYTES_DEFAULT,
            TYPE_LONG,
        ),
        (
            "cleanup.policy",
            CLEANUP_DELETE.to_string(),
            false,
            TYPE_STRING,
        ),
        (
            "max.message.bytes",
            t.max_message_bytes.unwrap_or(broker_max).to_string(),
            t.max_message_bytes.is_some(),
            TYPE_INT,
        ),
    ]
}

pub async fn describe_configs(
    ctx: &Ctx,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    use kafka_protocol::messages::describe_configs_response::{
        DescribeConfigsResourceResult, DescribeConfigsResult,
    };
    let topics = super::metadata::all_topics(ctx).await;
    let mut results = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let wanted = |name: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        let refused = authorized(
            ctx,
            Op::DescribeConfigs,
            resource.resource_type,
            &resource.resource_name,
        );
        let outcome = match (resource.resource_type, &topics, refused) {
            (_, _, Err(refusal)) => Err(refusal),
            (RESOURCE_TOPIC, Ok(all), Ok(())) => {
                let broker_max = ctx.engine.config().kafka_message_max_bytes;
                find_topic(all, &resource.resource_name).map(|t| topic_configs(t, broker_max))
            }
            (RESOURCE_TOPIC, Err(refusal), Ok(())) => Err(refusal.clone()),
            // No broker-level settings are exposed as Kafka configs yet.
            (RESOURCE_BROKER, _, Ok(())) => Ok(Vec::new()),
            (other, _, Ok(())) => Err(invalid_request(format!(
                "resource type {other} is not described by this broker"
            ))),
        };
        match outcome {
            Ok(configs) => {
                let configs = configs
                    .into_iter()
                    .filter(|(name, ..)| wanted(name))
                    .map(|(name, value, set, kind)| {
                        let mut c = DescribeConfigsResourceResult::default()
                            .with_name(StrBytes::from_static_str(name))
                            .with_value(Some(str_bytes(&value)))
                            .with_config_source(if set { SOURCE_TOPIC } else { SOURCE_DEFAULT });
                        if version >= 3 {
                            c = c.with_config_type(kind);
                        }
                        c
                    })
                    .collect();
                result = result.with_configs(configs);
            }
            Err((code, message)) => {
                result = result
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message)))
            }
        }
        results.push(result);
    }
    DescribeConfigsResponse::default().with_results(results)
}

fn find_topic<'a>(all: &'a [TopicInfo], name: &str) -> Result<&'a TopicInfo, Refusal> {
    all.iter().find(|t| t.name == name).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition.code(),
            format!("unknown topic '{name}'"),
        )
    })
}

/// `op` on a topic, or on the cluster for a broker (`--acls`). Other types pass here
/// and are refused for what they are.
fn authorized(ctx: &Ctx, op: Op, resource_type: i8, name: &str) -> Result<(), Refusal> {
    match resource_type {
        RESOURCE_TOPIC => acls::check_topic(ctx, op, name),
        RESOURCE_BROKER => acls::check_cluster(ctx, op),
        _ => Ok(()),
    }
}

/// One resource of either alter API: what its configs make of the topic's settings.
struct Alteration<'a> {
    resource_type: i8,
    name: &'a str,
    change: Result<TopicSettingsChange, Refusal>,
}

/// Checks and (unless `validate_only`) applies one alteration: the outcome a resource's
/// answer carries.
async fn alter(ctx: &Ctx, a: Alteration<'_>, validate_only: bool) -> Result<(), Refusal> {
    authorized(ctx, Op::AlterConfigs, a.resource_type, a.name)?;
    match a.resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err(invalid_request(format!(
                "broker {} configs cannot be changed over the Kafka protocol: they are \
                 `peregrine serve` flags (restart with new ones)",
                a.name
            )))
        }
        other => {
            return Err(invalid_request(format!(
                "resource type {other} has no configs to change here (topics only)"
            )))
        }
    }
    let topics = super::metadata::all_topics(ctx).await?;
    let current = find_topic(&topics, a.name)?;
    let change = a.change?;
    if validate_only {
        let settings = change.applied_to(TopicSettings {
            retention_ms: current.retention_ms,
            retention_bytes: current.retention_bytes,
            segment_bytes: current.segment_bytes,
            max_message_bytes: current.max_message_bytes,
        });
        return settings
            .validate()
            .map_err(|e| invalid_config(e.to_string()));
    }
    match ctx.engine.alter_topic(a.name, change).await {
        Ok(_) => Ok(()),
        // The catalog's validation: a value the log cannot run with.
        Err(EngineError::InvalidTopic(text)) => Err(invalid_config(text)),
        Err(e) => Err(errors::of(e)),
    }
}

/// Which resources of a request are named more than once: each is refused (as Kafka
/// does).
fn duplicated(resources: &[(i8, &str)]) -> Vec<bool> {
    let mut counts: HashMap<(i8, &str), usize> = HashMap::new();
    for r in resources {
        *counts.entry(*r).or_default() += 1;
    }
    resources.iter().map(|r| counts[r] > 1).collect()
}

fn duplicate_refusal(name: &str) -> Refusal {
    invalid_request(format!("resource '{name}' is named more than once"))
}

/// AlterConfigs: each resource's configs become its whole set (keys left out return to
/// their defaults).
pub async fn alter_configs(ctx: &Ctx, req: AlterConfigsRequest) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let resources = req.resources.iter().map(|r| {
        let change = check_unique(r.configs.iter().map(|c| c.name.as_str())).and_then(|()| {
            let mut change = TopicSettingsChange::all(default_settings());
            for c in &r.configs {
                let value = c.value.as_ref().map_or("", |v| v.as_str());
                set(&mut change, c.name.as_str(), value)?;
            }
            Ok(change)
        });
        (r.resource_type, r.resource_name.as_str(), change)
    });
    let outcomes = alter_each(ctx, resources.collect(), req.validate_only).await;
    let responses = req
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let answer = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(()) => answer,
                Err((code, message)) => answer
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: each config's operation, applied to the settings the topic
/// has when the change runs.
pub async fn incremental_alter_configs(
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let resources = req.resources.iter().map(|r| {
        let change = check_unique(r.configs.iter().map(|c| c.name.as_str())).and_then(|()| {
            let mut change = TopicSettingsChange::default();
            for c in &r.configs {
                let value = c.value.as_ref().map(|v| v.as_str());
                apply_op(&mut change, c.name.as_str(), c.config_operation, value)?;
            }
            Ok(change)
        });
        (r.resource_type, r.resource_name.as_str(), change)
    });
    let outcomes = alter_each(ctx, resources.collect(), req.validate_only).await;
    let responses = req
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let answer = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(()) => answer,
                Err((code, message)) => answer
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Applies each resource's change in order (both AlterConfigs flavours): a resource
/// named more than once is refused, every other one altered on its own.
async fn alter_each(
    ctx: &Ctx,
    resources: Vec<(i8, &str, Result<TopicSettingsChange, Refusal>)>,
    validate_only: bool,
) -> Vec<Result<(), Refusal>> {
    let named: Vec<(i8, &str)> = resources.iter().map(|(t, n, _)| (*t, *n)).collect();
    let duplicates = duplicated(&named);
    let mut outcomes = Vec::with_capacity(resources.len());
    for ((resource_type, name, change), duplicate) in resources.into_iter().zip(duplicates) {
        let outcome = if duplicate {
            Err(duplicate_refusal(name))
        } else {
            let alteration = Alteration {
                resource_type,
                name,
                change,
            };
            alter(ctx, alteration, validate_only).await
        };
        outcomes.push(outcome);
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incremental(ops: &[(&str, i8, Option<&str>)]) -> Result<TopicSettingsChange, i16> {
        let mut change = TopicSettingsChange::default();
        for (name, op, value) in ops {
            apply_op(&mut change, name, *op, *value).map_err(|(code, _)| code)?;
        }
        Ok(change)
    }

    #[test]
    fn incremental_operations_set_and_reset_single_keys() {
        let change = incremental(&[
            ("retention.ms", OP_SET, Some("60000")),
            ("retention.bytes", OP_DELETE, None),
            ("cleanup.policy", OP_APPEND, Some("delete")),
            ("cleanup.policy", OP_SUBTRACT, Some("compact")),
        ])
        .expect("valid");
        assert_eq!(change.retention_ms, Some(Some(60_000)));
        assert_eq!(change.retention_bytes, Some(None));
        assert_eq!(change.segment_bytes, None, "untouched keys are kept");
        assert_eq!(
            incremental(&[("retention.ms", OP_SET, Some("-1"))])
                .expect("no limit")
                .retention_ms,
            Some(None)
        );
    }

    #[test]
    fn bad_keys_and_values_are_invalid_config_and_bad_requests_invalid_request() {
        let config = ResponseError::InvalidConfig.code();
        let request = ResponseError::InvalidRequest.code();
        let cases: [(&str, i8, Option<&str>, i16); 11] = [
            ("compression.type", OP_SET, Some("lz4"), config),
            ("max.message.bytes", OP_SET, Some("-1"), config),
            ("max.message.bytes", OP_APPEND, Some("1"), config),
            ("min.insync.replicas", OP_DELETE, None, config),
            ("retention.ms", OP_SET, Some("soon"), config),
            ("retention.ms", OP_SET, Some("-2"), config),
            ("retention.ms", OP_APPEND, Some("1"), config),
            ("cleanup.policy", OP_SET, Some("compact"), config),
            ("cleanup.policy", OP_SUBTRACT, Some("delete"), config),
            ("retention.ms", OP_SET, None, request),
            ("retention.ms", 4, Some("1"), request),
        ];
        for (name, op, value, code) in cases {
            assert_eq!(
                incremental(&[(name, op, value)]),
                Err(code),
                "{name} op {op} {value:?}"
            );
        }
        assert_eq!(
            check_unique(["retention.ms", "retention.ms"].into_iter()).map_err(|r| r.0),
            Err(request)
        );
        assert_eq!(
            duplicated(&[(2, "a"), (4, "a"), (2, "b"), (2, "a")]),
            vec![true, false, false, true]
        );
    }
}
