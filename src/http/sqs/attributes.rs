//! Queue attributes ↔ the engine's `QueueConfig`/`QueueChange`: which names exist,
//! their ranges, SQS's defaults, and how a queue reads back.
//!
//! Settable: VisibilityTimeout 0..=43200 s (`visibility_timeout_ms`), DelaySeconds
//! 0..=900 (`delay_ms`), MessageRetentionPeriod 60..=1209600 (`ttl_ms`),
//! MaximumMessageSize 1024..=262144 (`max_message_bytes`),
//! ReceiveMessageWaitTimeSeconds 0..=20 (`receive_wait_ms`) and RedrivePolicy
//! (`dead_letter` + `max_deliveries`; an empty value removes it). FifoQueue is the
//! engine's `fifo`, set only at creation, with a `.fifo` name (both or neither). The
//! FIFO queues' ContentBasedDeduplication, DeduplicationScope and FifoThroughputLimit
//! are kept as given in the queue's catalog attributes (`QueueMeta::attributes`) and
//! read by the front end: content-based ids and per-group keys (`messages`). They are
//! refused on standard queues, as SQS refuses them. Read-only: QueueArn,
//! CreatedTimestamp, LastModifiedTimestamp and the three approximate counts. The
//! RedriveAllowPolicy (allowAll, denyAll, or byQueue with up to 10 source ARNs) is
//! kept the same way, as canonical JSON, and checked whenever a RedrivePolicy names the
//! queue as its target (`allows_source`); an empty value removes it. The
//! policy and encryption names are refused on create and set
//! (InvalidAttributeName saying they are not supported yet) rather than ignored, and
//! left out of GetQueueAttributes (SQS too leaves out what a queue does not have).
//!
//! FifoThroughputLimit changes nothing here (every queue is served by one core
//! whatever its setting); it is kept and answered so that code written for
//! high-throughput FIFO runs unchanged.

use super::urls;
use crate::config::SqsSettings;
use crate::engine::{QueueChange, QueueConfig, QueueMeta, QueueStats};
use peregrine_aws_wire::sqs::{ErrorCode, WireError, FIFO_SUFFIX};
use std::collections::BTreeMap;

/// SQS's defaults: 30 s visibility, 4 days retention, 256 KiB messages.
const RETENTION_S_DEFAULT: u64 = 4 * 24 * 3600;
const MESSAGE_BYTES_DEFAULT: u32 = 262_144;
const MESSAGE_BYTES_MIN: u64 = 1024;
const RETENTION_S_MIN: u64 = 60;
const RETENTION_S_MAX: u64 = 14 * 24 * 3600;
const VISIBILITY_S_MAX: u64 = 43_200;
const DELAY_S_MAX: u64 = 900;
const WAIT_S_MAX: u64 = 20;
/// SQS's range for a RedrivePolicy's maxReceiveCount.
const MAX_RECEIVE_COUNT_MAX: u64 = 1000;

/// FIFO queues' own attributes, kept in the catalog as given, and their defaults.
pub const CONTENT_BASED_DEDUPLICATION: &str = "ContentBasedDeduplication";
pub const DEDUPLICATION_SCOPE: &str = "DeduplicationScope";
pub const FIFO_THROUGHPUT_LIMIT: &str = "FifoThroughputLimit";
const FIFO_ATTRIBUTES: [(&str, &str); 3] = [
    (CONTENT_BASED_DEDUPLICATION, "false"),
    (DEDUPLICATION_SCOPE, "queue"),
    (FIFO_THROUGHPUT_LIMIT, "perQueue"),
];

/// Who may name a queue as their dead-letter target (kept in the catalog).
pub const REDRIVE_ALLOW_POLICY: &str = "RedriveAllowPolicy";
/// Most source queues a byQueue RedriveAllowPolicy names (SQS's limit).
const SOURCE_QUEUE_ARNS_MAX: usize = 10;

/// Every name GetQueueAttributes answers, in the order it answers them.
const READABLE: [&str; 17] = [
    "QueueArn",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    REDRIVE_ALLOW_POLICY,
    "FifoQueue",
    CONTENT_BASED_DEDUPLICATION,
    DEDUPLICATION_SCOPE,
    FIFO_THROUGHPUT_LIMIT,
];

/// Names SQS has that this broker does not offer yet.
const NOT_YET: [&str; 4] = [
    "Policy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
];

/// The settable attributes a request named, parsed and range-checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    pub visibility_ms: Option<u64>,
    pub delay_ms: Option<u64>,
    pub retention_ms: Option<u64>,
    pub max_message_bytes: Option<u32>,
    pub receive_wait_ms: Option<u32>,
    /// `Some(None)`: remove the policy.
    pub redrive: Option<Option<Redrive>>,
    /// FifoQueue, as given.
    pub fifo: Option<bool>,
    /// Attributes kept in the catalog (`QueueMeta::attributes`), canonical values; an
    /// empty one is removed.
    pub kept: BTreeMap<String, String>,
}

/// A RedrivePolicy: the target queue (in this account and region) and maxReceiveCount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub target: String,
    pub max_receives: u32,
}

/// A new SQS queue's declaration before its attributes apply.
pub fn sqs_defaults() -> QueueConfig {
    QueueConfig {
        ttl_ms: Some(RETENTION_S_DEFAULT * 1000),
        max_message_bytes: Some(MESSAGE_BYTES_DEFAULT),
        // SQS drops expired messages; only over-received ones go to the target.
        dead_letter_on_expiry: false,
        durable: true,
        ..QueueConfig::default()
    }
}

/// Parses the attributes of a CreateQueue or SetQueueAttributes.
pub fn parse(
    attrs: &BTreeMap<String, String>,
    settings: &SqsSettings,
) -> Result<Requested, WireError> {
    let mut r = Requested::default();
    for (name, value) in attrs {
        match name.as_str() {
            "VisibilityTimeout" => {
                r.visibility_ms = Some(seconds(name, value, 0, VISIBILITY_S_MAX)? * 1000)
            }
            "DelaySeconds" => r.delay_ms = Some(seconds(name, value, 0, DELAY_S_MAX)? * 1000),
            "MessageRetentionPeriod" => {
                r.retention_ms =
                    Some(seconds(name, value, RETENTION_S_MIN, RETENTION_S_MAX)? * 1000)
            }
            "MaximumMessageSize" => {
                let max = u64::from(MESSAGE_BYTES_DEFAULT);
                r.max_message_bytes = Some(seconds(name, value, MESSAGE_BYTES_MIN, max)? as u32)
            }
            "ReceiveMessageWaitTimeSeconds" => {
                r.receive_wait_ms = Some((seconds(name, value, 0, WAIT_S_MAX)? * 1000) as u32)
            }
            "RedrivePolicy" => r.redrive = Some(redrive(value, settings)?),
            "FifoQueue" => r.fifo = Some(boolean(name, value)?),
            REDRIVE_ALLOW_POLICY => {
                r.kept.insert(name.clone(), redrive_allow(value, settings)?);
            }
            CONTENT_BASED_DEDUPLICATION => {
                r.kept
                    .insert(name.clone(), boolean(name, value)?.to_string());
            }
            DEDUPLICATION_SCOPE => {
                r.kept.insert(
                    name.clone(),
                    one_of(name, value, &["queue", "messageGroup"])?,
                );
            }
            FIFO_THROUGHPUT_LIMIT => {
                let limits = ["perQueue", "perMessageGroupId"];
                r.kept.insert(name.clone(), one_of(name, value, &limits)?);
            }
            other if NOT_YET.contains(&other) => {
                return Err(WireError::new(
                    ErrorCode::InvalidAttributeName,
                    format!("The attribute {other} is not supported by this broker yet."),
                ))
            }
            other => {
                return Err(WireError::new(
                    ErrorCode::InvalidAttributeName,
                    format!("Unknown or read-only attribute {other}."),
                ))
            }
        }
    }
    Ok(r)
}

/// `true` or `false` (SQS takes either case).
fn boolean(name: &str, value: &str) -> Result<bool, WireError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(WireError::new(
            ErrorCode::InvalidAttributeValue,
            format!("Invalid value for the parameter {name}: {value:?} is not true or false."),
        )),
    }
}

fn one_of(name: &str, value: &str, allowed: &[&str]) -> Result<String, WireError> {
    match allowed.iter().find(|a| **a == value) {
        Some(a) => Ok(a.to_string()),
        None => Err(WireError::new(
            ErrorCode::InvalidAttributeValue,
            format!(
                "Invalid value for the parameter {name}: {value:?} is not one of {}.",
                allowed.join(", ")
            ),
        )),
    }
}

/// The FIFO rules of a queue's attributes once a request applies: a FIFO queue's name
/// ends in `.fifo`, only FIFO queues take the FIFO attributes, and a per-group
/// throughput limit needs per-group deduplication (as SQS's high-throughput mode).
pub fn check_fifo(
    name: &str,
    fifo: bool,
    kept: &BTreeMap<String, String>,
) -> Result<(), WireError> {
    let fifo_name = name.ends_with(FIFO_SUFFIX);
    if fifo != fifo_name {
        return Err(WireError::invalid(format!(
            "The name of a FIFO queue must end with {FIFO_SUFFIX} and it must be created with FifoQueue=true (queue {name}: FifoQueue is {fifo})."
        )));
    }
    if !fifo {
        if let Some((other, _)) = FIFO_ATTRIBUTES.iter().find(|(n, _)| kept.contains_key(*n)) {
            return Err(WireError::new(
                ErrorCode::InvalidAttributeName,
                format!("Unknown Attribute {other}: it is for FIFO queues only."),
            ));
        }
        return Ok(());
    }
    let per_group_limit =
        kept.get(FIFO_THROUGHPUT_LIMIT).map(String::as_str) == Some("perMessageGroupId");
    let per_group_scope = kept.get(DEDUPLICATION_SCOPE).map(String::as_str) == Some("messageGroup");
    if per_group_limit && !per_group_scope {
        return Err(WireError::new(
            ErrorCode::InvalidAttributeValue,
            "FifoThroughputLimit perMessageGroupId needs DeduplicationScope messageGroup.",
        ));
    }
    Ok(())
}

/// A kept attribute of a queue, or its default.
pub fn kept<'a>(meta: &'a QueueMeta, name: &str) -> &'a str {
    meta.attributes.get(name).map_or_else(
        || {
            FIFO_ATTRIBUTES
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, d)| d)
        },
        String::as_str,
    )
}

/// An integer attribute within `min..=max` (seconds or bytes).
fn seconds(name: &str, value: &str, min: u64, max: u64) -> Result<u64, WireError> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(WireError::new(
            ErrorCode::InvalidAttributeValue,
            format!("Invalid value for the parameter {name}: {value:?} is not an integer from {min} to {max}."),
        )),
    }
}

/// `{"deadLetterTargetArn": ARN, "maxReceiveCount": 1..=1000 (number or string)}`;
/// an empty value removes the policy. Whether the target exists is the caller's check.
fn redrive(value: &str, settings: &SqsSettings) -> Result<Option<Redrive>, WireError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| {
        WireError::invalid(format!(
            "Value {value} for parameter RedrivePolicy is invalid. Reason: {why}"
        ))
    };
    let json: serde_json::Value =
        serde_json::from_str(value).map_err(|_| bad("Redrive policy is not a valid JSON map."))?;
    let arn = json
        .get("deadLetterTargetArn")
        .and_then(|a| a.as_str())
        .ok_or_else(|| {
            bad("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
        })?;
    let target = urls::arn_queue(arn, settings)
        .ok_or_else(|| bad("Dead-letter target is not a queue of this region and account."))?;
    let count = match json.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let max_receives = count
        .filter(|n| (1..=MAX_RECEIVE_COUNT_MAX).contains(n))
        .ok_or_else(|| bad("maxReceiveCount must be an integer from 1 to 1000."))?;
    Ok(Some(Redrive {
        target,
        max_receives: max_receives as u32,
    }))
}

/// `{"redrivePermission": "allowAll" | "denyAll" | "byQueue", "sourceQueueArns": [..]}`
/// (the ARNs with byQueue only, 1 to 10 of this region and account), as canonical JSON;
/// an empty value removes the policy (anyone may then name the queue).
fn redrive_allow(value: &str, settings: &SqsSettings) -> Result<String, WireError> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    let bad = |why: &str| {
        WireError::invalid(format!(
            "Value {value} for parameter RedriveAllowPolicy is invalid. Reason: {why}"
        ))
    };
    let json: serde_json::Value =
        serde_json::from_str(value).map_err(|_| bad("it is not a valid JSON map."))?;
    let permission = json
        .get("redrivePermission")
        .and_then(|p| p.as_str())
        .filter(|p| ["allowAll", "denyAll", "byQueue"].contains(p))
        .ok_or_else(|| bad("redrivePermission must be allowAll, denyAll or byQueue."))?;
    let arns = match json.get("sourceQueueArns") {
        None => Vec::new(),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("sourceQueueArns must be a list of queue ARNs."))?,
        Some(_) => return Err(bad("sourceQueueArns must be a list of queue ARNs.")),
    };
    let by_queue = permission == "byQueue";
    if by_queue == arns.is_empty() || arns.len() > SOURCE_QUEUE_ARNS_MAX {
        return Err(bad(&format!(
            "sourceQueueArns (1 to {SOURCE_QUEUE_ARNS_MAX}) go with byQueue, and only with it."
        )));
    }
    if let Some(foreign) = arns.iter().find(|a| urls::arn_queue(a, settings).is_none()) {
        return Err(bad(&format!(
            "{foreign} is not a queue ARN of this region and account."
        )));
    }
    let mut policy = serde_json::json!({ "redrivePermission": permission });
    if by_queue {
        policy["sourceQueueArns"] = serde_json::json!(arns);
    }
    Ok(policy.to_string())
}

/// Whether queue `target`'s RedriveAllowPolicy lets queue `source` send it dead letters
/// (no policy: anyone may).
pub fn allows_source(target: &QueueMeta, source: &str, settings: &SqsSettings) -> bool {
    let Some(policy) = target.attributes.get(REDRIVE_ALLOW_POLICY) else {
        return true;
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(policy) else {
        return true;
    };
    match json.get("redrivePermission").and_then(|p| p.as_str()) {
        Some("denyAll") => false,
        Some("byQueue") => {
            let arn = settings.queue_arn(source);
            json.get("sourceQueueArns")
                .and_then(|a| a.as_array())
                .is_some_and(|list| list.iter().any(|a| a.as_str() == Some(arn.as_str())))
        }
        _ => true,
    }
}

/// A new queue's declaration: SQS's defaults with the requested attributes.
pub fn config(r: &Requested) -> QueueConfig {
    let defaults = QueueConfig {
        fifo: r.fifo.unwrap_or(false),
        ..sqs_defaults()
    };
    change(r).apply(&defaults)
}

/// The change SetQueueAttributes asks for.
pub fn change(r: &Requested) -> QueueChange {
    QueueChange {
        visibility_timeout_ms: r.visibility_ms,
        ttl_ms: r.retention_ms.map(Some),
        delay_ms: r.delay_ms,
        max_message_bytes: r.max_message_bytes.map(Some),
        receive_wait_ms: r.receive_wait_ms,
        dead_letter: r
            .redrive
            .clone()
            .map(|p| p.map(|p| (p.target, p.max_receives))),
        attributes: r
            .kept
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone()).filter(|v| !v.is_empty())))
            .collect(),
        tags: BTreeMap::new(),
    }
}

/// Whether an existing queue already has every attribute a CreateQueue names (SQS
/// answers its URL then, and QueueNameExists otherwise).
pub fn matches(r: &Requested, meta: &QueueMeta) -> bool {
    let c = &meta.config;
    let redrive_now = match (&c.dead_letter, c.max_deliveries) {
        (Some(target), Some(n)) => Some(Redrive {
            target: target.clone(),
            max_receives: n,
        }),
        _ => None,
    };
    r.visibility_ms.is_none_or(|v| v == c.visibility_timeout_ms)
        && r.delay_ms.is_none_or(|v| v == c.delay_ms)
        && r.retention_ms.is_none_or(|v| Some(v) == c.ttl_ms)
        && r.max_message_bytes
            .is_none_or(|v| v == c.max_message_bytes.unwrap_or(MESSAGE_BYTES_DEFAULT))
        && r.receive_wait_ms.is_none_or(|v| v == c.receive_wait_ms)
        && r.redrive.as_ref().is_none_or(|p| *p == redrive_now)
        && r.fifo.is_none_or(|f| f == c.fifo)
        && r.kept.iter().all(|(k, v)| kept(meta, k) == v)
}

/// Checks GetQueueAttributes names: the known ones, `All`, and the not-yet ones
/// (answered with nothing); anything else is InvalidAttributeName.
pub fn check_names(names: &[String]) -> Result<(), WireError> {
    match names
        .iter()
        .find(|n| *n != "All" && !READABLE.contains(&n.as_str()) && !NOT_YET.contains(&n.as_str()))
    {
        Some(bad) => Err(WireError::new(
            ErrorCode::InvalidAttributeName,
            format!("Unknown Attribute {bad}."),
        )),
        None => Ok(()),
    }
}

/// Whether any of the names needs the queue's counts (a call to its owner).
pub fn wants_counts(names: &[String]) -> bool {
    names
        .iter()
        .any(|n| n == "All" || n.starts_with("ApproximateNumberOfMessages"))
}

/// The attributes asked for, as GetQueueAttributes answers them (seconds, strings).
pub fn render(
    meta: &QueueMeta,
    stats: Option<&QueueStats>,
    names: &[String],
    settings: &SqsSettings,
) -> Vec<(String, String)> {
    let all = names.iter().any(|n| n == "All");
    let c = &meta.config;
    let mut out = Vec::new();
    for name in READABLE {
        if !all && !names.iter().any(|n| n == name) {
            continue;
        }
        let value = match name {
            "QueueArn" => Some(settings.queue_arn(&meta.name)),
            "ApproximateNumberOfMessages" => stats.map(|s| s.ready.to_string()),
            "ApproximateNumberOfMessagesNotVisible" => stats.map(|s| s.in_flight.to_string()),
            "ApproximateNumberOfMessagesDelayed" => stats.map(|s| s.delayed.to_string()),
            "CreatedTimestamp" => Some((meta.created_ms / 1000).to_string()),
            "LastModifiedTimestamp" => Some((meta.last_modified_ms() / 1000).to_string()),
            "VisibilityTimeout" => Some((c.visibility_timeout_ms / 1000).to_string()),
            "MaximumMessageSize" => Some(
                c.max_message_bytes
                    .unwrap_or(MESSAGE_BYTES_DEFAULT)
                    .to_string(),
            ),
            // A queue declared by another protocol may keep messages for ever: no
            // period to show.
            "MessageRetentionPeriod" => c.ttl_ms.map(|t| (t / 1000).to_string()),
            "DelaySeconds" => Some((c.delay_ms / 1000).to_string()),
            "ReceiveMessageWaitTimeSeconds" => Some((c.receive_wait_ms / 1000).to_string()),
            "RedrivePolicy" => redrive_json(c, settings),
            "FifoQueue" => c.fifo.then(|| "true".to_string()),
            REDRIVE_ALLOW_POLICY => meta.attributes.get(name).cloned(),
            CONTENT_BASED_DEDUPLICATION | DEDUPLICATION_SCOPE | FIFO_THROUGHPUT_LIMIT => {
                c.fifo.then(|| kept(meta, name).to_string())
            }
            _ => None,
        };
        if let Some(value) = value {
            out.push((name.to_string(), value));
        }
    }
    out
}

fn redrive_json(c: &QueueConfig, settings: &SqsSettings) -> Option<String> {
    let (target, count) = (c.dead_letter.as_ref()?, c.max_deliveries?);
    let policy = serde_json::json!({
        "deadLetterTargetArn": settings.queue_arn(target),
        "maxReceiveCount": count,
    });
    Some(policy.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SqsSettings {
        SqsSettings {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            ..SqsSettings::default()
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn meta(config: QueueConfig) -> QueueMeta {
        QueueMeta {
            name: "q".into(),
            id: 1,
            config,
            created_ms: 0,
            modified_ms: 0,
            attributes: BTreeMap::new(),
            tags: BTreeMap::new(),
        }
    }

    fn code(pairs: &[(&str, &str)]) -> Option<ErrorCode> {
        parse(&attrs(pairs), &settings()).err().map(|e| e.code)
    }

    #[test]
    fn attributes_become_the_queue_declaration() {
        let r = parse(
            &attrs(&[
                ("VisibilityTimeout", "45"),
                ("DelaySeconds", "2"),
                ("MessageRetentionPeriod", "3600"),
                ("MaximumMessageSize", "2048"),
                ("ReceiveMessageWaitTimeSeconds", "3"),
                (
                    "RedrivePolicy",
                    r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"5"}"#,
                ),
            ]),
            &settings(),
        )
        .ok();
        let c = r.as_ref().map(config);
        let c = c.as_ref();
        assert_eq!(c.map(|c| c.visibility_timeout_ms), Some(45_000));
        assert_eq!(c.map(|c| c.delay_ms), Some(2_000));
        assert_eq!(c.and_then(|c| c.ttl_ms), Some(3_600_000));
        assert_eq!(c.and_then(|c| c.max_message_bytes), Some(2048));
        assert_eq!(c.map(|c| c.receive_wait_ms), Some(3_000));
        assert_eq!(c.and_then(|c| c.dead_letter.clone()), Some("dlq".into()));
        assert_eq!(c.and_then(|c| c.max_deliveries), Some(5));
        assert_eq!(c.map(|c| c.dead_letter_on_expiry), Some(false));
        assert!(r.is_some_and(|r| c.is_some_and(|c| matches(&r, &meta(c.clone())))));
    }

    #[test]
    fn out_of_range_values_and_unknown_names_are_refused() {
        use ErrorCode::*;
        for (pair, want) in [
            (("VisibilityTimeout", "43201"), InvalidAttributeValue),
            (("VisibilityTimeout", "-1"), InvalidAttributeValue),
            (("DelaySeconds", "901"), InvalidAttributeValue),
            (("MaximumMessageSize", "1023"), InvalidAttributeValue),
            (("MaximumMessageSize", "262145"), InvalidAttributeValue),
            (("MessageRetentionPeriod", "59"), InvalidAttributeValue),
            (
                ("ReceiveMessageWaitTimeSeconds", "21"),
                InvalidAttributeValue,
            ),
            (("Bogus", "1"), InvalidAttributeName),
            (("QueueArn", "x"), InvalidAttributeName),
            (("FifoQueue", "yes"), InvalidAttributeValue),
            (("ContentBasedDeduplication", "1"), InvalidAttributeValue),
            (("DeduplicationScope", "group"), InvalidAttributeValue),
            (("FifoThroughputLimit", "perGroup"), InvalidAttributeValue),
            (("RedriveAllowPolicy", "{}"), InvalidParameterValue),
            (
                ("RedriveAllowPolicy", r#"{"redrivePermission":"byQueue"}"#),
                InvalidParameterValue,
            ),
            (
                (
                    "RedriveAllowPolicy",
                    r#"{"redrivePermission":"allowAll","sourceQueueArns":["arn:aws:sqs:us-east-1:000000000000:a"]}"#,
                ),
                InvalidParameterValue,
            ),
            (("RedrivePolicy", "{"), InvalidParameterValue),
            (
                (
                    "RedrivePolicy",
                    r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:000000000000:d","maxReceiveCount":2}"#,
                ),
                InvalidParameterValue,
            ),
            (
                (
                    "RedrivePolicy",
                    r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d","maxReceiveCount":1001}"#,
                ),
                InvalidParameterValue,
            ),
        ] {
            assert_eq!(code(&[pair]), Some(want), "{pair:?}");
        }
        assert_eq!(code(&[("RedrivePolicy", "")]), None);
    }

    #[test]
    fn create_again_matches_only_what_it_names() {
        let c = meta(sqs_defaults());
        let same = parse(&attrs(&[("VisibilityTimeout", "30")]), &settings()).ok();
        let other = parse(&attrs(&[("VisibilityTimeout", "31")]), &settings()).ok();
        assert!(same.is_some_and(|r| matches(&r, &c)));
        assert!(other.is_some_and(|r| !matches(&r, &c)));
        assert!(matches(&Requested::default(), &c));
    }

    #[test]
    fn a_redrive_allow_policy_names_who_may_send_dead_letters() {
        let policy = |value: &str| {
            let r = parse(&attrs(&[("RedriveAllowPolicy", value)]), &settings()).ok();
            let mut m = meta(sqs_defaults());
            m.attributes = r.map(|r| r.kept).unwrap_or_default();
            m.attributes.retain(|_, v| !v.is_empty());
            m
        };
        let s = settings();
        let arn = |q: &str| format!("arn:aws:sqs:us-east-1:000000000000:{q}");
        let by_queue = format!(
            r#"{{"redrivePermission":"byQueue","sourceQueueArns":["{}","{}"]}}"#,
            arn("a"),
            arn("b")
        );
        let m = policy(&by_queue);
        assert!(allows_source(&m, "a", &s) && allows_source(&m, "b", &s));
        assert!(!allows_source(&m, "c", &s));
        assert!(!allows_source(
            &policy(r#"{"redrivePermission":"denyAll"}"#),
            "a",
            &s
        ));
        assert!(allows_source(
            &policy(r#"{"redrivePermission":"allowAll"}"#),
            "a",
            &s
        ));
        assert!(allows_source(&policy(""), "a", &s), "no policy: anyone");
        let eleven: Vec<String> = (0..11)
            .map(|i| format!("\"{}\"", arn(&format!("q{i}"))))
            .collect();
        let eleven = format!(
            r#"{{"redrivePermission":"byQueue","sourceQueueArns":[{}]}}"#,
            eleven.join(",")
        );
        assert_eq!(
            code(&[("RedriveAllowPolicy", &eleven)]),
            Some(ErrorCode::InvalidParameterValue)
        );
    }

    #[test]
    fn fifo_queues_take_fifo_names_and_attributes_and_standard_ones_neither() {
        let kept = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            parse(&attrs(pairs), &settings())
                .map(|r| r.kept)
                .unwrap_or_default()
        };
        let none = BTreeMap::new();
        assert!(check_fifo("q.fifo", true, &none).is_ok());
        assert!(check_fifo("q", false, &none).is_ok());
        let code = |r: Result<(), WireError>| r.err().map(|e| e.code);
        let invalid = Some(ErrorCode::InvalidParameterValue);
        assert_eq!(code(check_fifo("q.fifo", false, &none)), invalid);
        assert_eq!(code(check_fifo("q", true, &none)), invalid);
        let content = kept(&[("ContentBasedDeduplication", "TRUE")]);
        assert_eq!(
            content.get(CONTENT_BASED_DEDUPLICATION).map(String::as_str),
            Some("true")
        );
        assert!(check_fifo("q.fifo", true, &content).is_ok());
        assert_eq!(
            code(check_fifo("q", false, &content)),
            Some(ErrorCode::InvalidAttributeName)
        );
        let per_group_limit = kept(&[("FifoThroughputLimit", "perMessageGroupId")]);
        assert_eq!(
            code(check_fifo("q.fifo", true, &per_group_limit)),
            Some(ErrorCode::InvalidAttributeValue)
        );
        let high = kept(&[
            ("FifoThroughputLimit", "perMessageGroupId"),
            ("DeduplicationScope", "messageGroup"),
        ]);
        assert!(check_fifo("q.fifo", true, &high).is_ok());
        // Defaults read back, and a create naming the defaults matches.
        let fifo = meta(QueueConfig {
            fifo: true,
            ..sqs_defaults()
        });
        assert_eq!(super::kept(&fifo, DEDUPLICATION_SCOPE), "queue");
        let names = vec!["All".to_string()];
        let shown = render(&fifo, None, &names, &settings());
        let get = |n: &str| shown.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("FifoQueue"), Some("true"));
        assert_eq!(get("ContentBasedDeduplication"), Some("false"));
        assert_eq!(get("FifoThroughputLimit"), Some("perQueue"));
        let standard = render(&meta(sqs_defaults()), None, &names, &settings());
        assert!(!standard.iter().any(|(k, _)| k.starts_with("Fifo")));
        let again = parse(
            &attrs(&[("FifoQueue", "true"), ("DeduplicationScope", "queue")]),
            &settings(),
        );
        assert!(again.is_ok_and(|r| matches(&r, &fifo)));
    }

    #[test]
    fn unknown_names_to_read_are_refused_and_not_yet_ones_skipped() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_names(&names(&["All", "QueueArn", "Policy"])).is_ok());
        let bad = check_names(&names(&["Bogus"])).err().map(|e| e.code);
        assert_eq!(bad, Some(ErrorCode::InvalidAttributeName));
        assert!(!wants_counts(&names(&["QueueArn"])));
        assert!(wants_counts(&names(&[
            "ApproximateNumberOfMessagesDelayed"
        ])));
    }
}
