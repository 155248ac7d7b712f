//! The request rules both protocols share: each decoder reads its wire into these
//! raw shapes, and the checks here turn them into `Request` parts, so JSON and query
//! refuse the same things with the same errors.

use std::collections::BTreeSet;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use super::attributes;
use super::errors::{ErrorCode, WireError};
use super::model::*;

/// Binary attribute values: the standard alphabet, padded or not (SDKs differ).
const BINARY: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The action an action name names: one served, one SQS has that we do not serve yet,
/// or none.
pub(crate) fn action(name: &str) -> Result<Action, WireError> {
    if let Some(action) = Action::from_name(name) {
        return Ok(action);
    }
    if UNSUPPORTED_ACTIONS.contains(&name) {
        return Err(WireError::new(
            ErrorCode::UnsupportedOperation,
            format!("{name} is not supported by this broker yet"),
        ));
    }
    Err(WireError::new(
        ErrorCode::UnknownAction,
        format!("The action or operation {name:?} is not valid for this endpoint."),
    ))
}

pub(crate) fn required<T>(name: &str, value: Option<T>) -> Result<T, WireError> {
    value.ok_or_else(|| WireError::missing(name))
}

/// An optional integer parameter, which must be within `min..=max`.
pub(crate) fn ranged(
    name: &str,
    value: Option<i64>,
    min: u32,
    max: u32,
) -> Result<Option<u32>, WireError> {
    match value {
        None => Ok(None),
        Some(v) if (i64::from(min)..=i64::from(max)).contains(&v) => Ok(u32::try_from(v).ok()),
        Some(v) => Err(WireError::invalid(format!(
            "Value {v} for parameter {name} is invalid. Reason: must be between {min} and {max}."
        ))),
    }
}

/// A list of names with at most `ATTRIBUTE_NAMES_MAX` members.
pub(crate) fn names(name: &str, list: Vec<String>) -> Result<Vec<String>, WireError> {
    if list.len() > ATTRIBUTE_NAMES_MAX as usize {
        return Err(WireError::invalid(format!(
            "{name} has more than {ATTRIBUTE_NAMES_MAX} names"
        )));
    }
    Ok(list)
}

/// A message attribute as sent: the value by its DataType (a Binary type takes the
/// base64 BinaryValue, the others the StringValue); `attributes::validate` checks the rest.
pub(crate) fn attribute(
    name: String,
    data_type: Option<String>,
    string_value: Option<String>,
    binary_value: Option<String>,
) -> Result<MessageAttribute, WireError> {
    let Some(data_type) = data_type else {
        return Err(WireError::invalid(format!(
            "The message attribute '{name}' must contain non-empty message attribute type."
        )));
    };
    let value = match (data_type.starts_with("Binary"), binary_value, string_value) {
        (true, Some(b64), _) => {
            AttributeValue::Binary(BINARY.decode(b64.as_bytes()).map_err(|_| {
                WireError::invalid(format!(
                    "The message attribute '{name}' has a BinaryValue that is not base64"
                ))
            })?)
        }
        (true, None, _) => AttributeValue::Binary(Vec::new()),
        (false, _, text) => AttributeValue::String(text.unwrap_or_default()),
    };
    Ok(MessageAttribute {
        name,
        data_type,
        value,
    })
}

/// One message to send, as read from either wire.
#[derive(Debug, Default)]
pub(crate) struct RawSend {
    pub id: Option<String>,
    pub body: Option<String>,
    pub delay_seconds: Option<i64>,
    pub attributes: Vec<MessageAttribute>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    /// MessageSystemAttributes were given.
    pub system_attributes: bool,
    /// Why a member could not be read (a batch entry fails with it alone).
    pub read_error: Option<WireError>,
}

impl RawSend {
    fn size(&self) -> usize {
        self.body.as_ref().map_or(0, String::len) + attributes::size(&self.attributes)
    }
}

/// SendMessage's rules for one message.
pub(crate) fn send_entry(raw: RawSend) -> Result<SendEntry, WireError> {
    if let Some(error) = raw.read_error {
        return Err(error);
    }
    if let Some(id) = &raw.group_id {
        check_fifo_id("MessageGroupId", id)?;
    }
    if let Some(id) = &raw.dedup_id {
        check_fifo_id("MessageDeduplicationId", id)?;
    }
    if raw.system_attributes {
        return Err(WireError::new(
            ErrorCode::UnsupportedOperation,
            "MessageSystemAttributes (AWSTraceHeader) are not supported yet",
        ));
    }
    let body = required("MessageBody", raw.body)?;
    attributes::check_body(&body)?;
    let delay_seconds = ranged("DelaySeconds", raw.delay_seconds, 0, DELAY_SECONDS_MAX)?;
    let mut attrs = raw.attributes;
    attributes::validate(&attrs)?;
    // By name, whatever order the wire had (JSON maps, query indexes).
    attrs.sort_by(|a, b| a.name.cmp(&b.name));
    let size = attributes::message_size(&body, &attrs);
    if size > MESSAGE_BYTES_MAX {
        return Err(WireError::invalid(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {MESSAGE_BYTES_MAX} bytes (it is {size})."
        )));
    }
    Ok(SendEntry {
        id: raw.id.unwrap_or_default(),
        body,
        delay_seconds,
        attributes: attrs,
        group_id: raw.group_id,
        dedup_id: raw.dedup_id,
    })
}

/// SendMessageBatch: the call's rules, then each entry's.
pub(crate) fn send_batch(raw: Vec<RawSend>) -> Result<Vec<Entry<SendEntry>>, WireError> {
    check_batch(raw.iter().map(|r| r.id.as_deref()))?;
    let total: usize = raw.iter().map(RawSend::size).sum();
    if total > MESSAGE_BYTES_MAX {
        return Err(WireError::new(
            ErrorCode::BatchRequestTooLong,
            format!("Batch requests cannot be longer than {MESSAGE_BYTES_MAX} bytes (this one is {total})."),
        ));
    }
    Ok(raw
        .into_iter()
        .map(|r| {
            let id = r.id.clone().unwrap_or_default();
            send_entry(r).map_err(|e| BatchError::new(&id, e))
        })
        .collect())
}

/// A receipt and a visibility timeout, as read from either wire.
#[derive(Debug, Default)]
pub(crate) struct RawVisibility {
    pub id: Option<String>,
    pub receipt_handle: Option<String>,
    pub visibility_timeout: Option<i64>,
    /// Why a member could not be read (a batch entry fails with it alone).
    pub read_error: Option<WireError>,
}

pub(crate) fn visibility_entry(raw: RawVisibility) -> Result<VisibilityEntry, WireError> {
    if let Some(error) = raw.read_error {
        return Err(error);
    }
    let receipt_handle = required("ReceiptHandle", raw.receipt_handle)?;
    let timeout = required("VisibilityTimeout", raw.visibility_timeout)?;
    let visibility_timeout = ranged(
        "VisibilityTimeout",
        Some(timeout),
        0,
        VISIBILITY_TIMEOUT_MAX,
    )?
    .unwrap_or_default();
    Ok(VisibilityEntry {
        id: raw.id.unwrap_or_default(),
        receipt_handle,
        visibility_timeout,
    })
}

pub(crate) fn visibility_batch(
    raw: Vec<RawVisibility>,
) -> Result<Vec<Entry<VisibilityEntry>>, WireError> {
    check_batch(raw.iter().map(|r| r.id.as_deref()))?;
    Ok(raw
        .into_iter()
        .map(|r| {
            let id = r.id.clone().unwrap_or_default();
            visibility_entry(r).map_err(|e| BatchError::new(&id, e))
        })
        .collect())
}

/// One DeleteMessageBatch entry as read: id and receipt.
pub(crate) type RawDelete = (Option<String>, Option<String>);

pub(crate) fn delete_batch(raw: Vec<RawDelete>) -> Result<Vec<Entry<DeleteEntry>>, WireError> {
    check_batch(raw.iter().map(|(id, _)| id.as_deref()))?;
    Ok(raw
        .into_iter()
        .map(|(id, receipt)| {
            let id = id.unwrap_or_default();
            match receipt {
                Some(receipt_handle) => Ok(DeleteEntry { id, receipt_handle }),
                None => Err(BatchError::new(&id, WireError::missing("ReceiptHandle"))),
            }
        })
        .collect())
}

/// A batch's call-level rules, in SQS's order: 1 to `BATCH_ENTRIES_MAX` entries, each
/// id valid, ids distinct.
fn check_batch<'a>(ids: impl ExactSizeIterator<Item = Option<&'a str>>) -> Result<(), WireError> {
    let count = ids.len();
    if count == 0 {
        return Err(WireError::new(
            ErrorCode::EmptyBatchRequest,
            "There should be at least one entry in the request.",
        ));
    }
    if count > BATCH_ENTRIES_MAX {
        return Err(too_many_entries(count));
    }
    let mut seen = BTreeSet::new();
    for id in ids {
        let id = id.unwrap_or_default();
        if !valid_batch_id(id) {
            return Err(WireError::new(
                ErrorCode::InvalidBatchEntryId,
                format!("A batch entry id can only contain alphanumeric characters, hyphens and underscores, 1 to {BATCH_ID_MAX} of them (got {id:?})."),
            ));
        }
        if !seen.insert(id) {
            return Err(WireError::new(
                ErrorCode::BatchEntryIdsNotDistinct,
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(())
}

pub(crate) fn too_many_entries(count: usize) -> WireError {
    WireError::new(
        ErrorCode::TooManyEntriesInBatchRequest,
        format!(
            "Maximum number of entries per request are {BATCH_ENTRIES_MAX}. You have sent {count}."
        ),
    )
}

/// ReceiveMessage's ranges.
pub(crate) struct RawReceive {
    pub queue_url: Option<String>,
    pub attribute_names: Vec<String>,
    pub message_attribute_names: Vec<String>,
    pub max_messages: Option<i64>,
    pub visibility_timeout: Option<i64>,
    pub wait_time_seconds: Option<i64>,
    pub receive_request_attempt_id: Option<String>,
}

pub(crate) fn receive(raw: RawReceive) -> Result<ReceiveMessage, WireError> {
    if let Some(id) = &raw.receive_request_attempt_id {
        check_fifo_id("ReceiveRequestAttemptId", id)?;
    }
    Ok(ReceiveMessage {
        queue_url: required("QueueUrl", raw.queue_url)?,
        attribute_names: names("AttributeNames", raw.attribute_names)?,
        message_attributes: attributes::AttributeFilter::new(&names(
            "MessageAttributeNames",
            raw.message_attribute_names,
        )?),
        max_messages: ranged(
            "MaxNumberOfMessages",
            raw.max_messages,
            1,
            RECEIVE_MESSAGES_MAX,
        )?
        .unwrap_or(1),
        visibility_timeout: ranged(
            "VisibilityTimeout",
            raw.visibility_timeout,
            0,
            VISIBILITY_TIMEOUT_MAX,
        )?,
        wait_time_seconds: ranged(
            "WaitTimeSeconds",
            raw.wait_time_seconds,
            0,
            WAIT_TIME_SECONDS_MAX,
        )?,
        receive_request_attempt_id: raw.receive_request_attempt_id,
    })
}

pub(crate) fn list_queues(
    prefix: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
) -> Result<ListQueues, WireError> {
    Ok(ListQueues {
        queue_name_prefix: prefix,
        max_results: ranged("MaxResults", max_results, 1, LIST_QUEUES_MAX)?,
        next_token,
    })
}

pub(crate) fn create_queue(
    name: Option<String>,
    attributes: std::collections::BTreeMap<String, String>,
    tags: std::collections::BTreeMap<String, String>,
) -> Result<CreateQueue, WireError> {
    let queue_name = required("QueueName", name)?;
    check_queue_name(&queue_name)?;
    check_tags(
        tags.len(),
        tags.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))),
    )?;
    Ok(CreateQueue {
        queue_name,
        attributes,
        tags,
    })
}

pub(crate) fn tag_queue(
    queue_url: Option<String>,
    tags: Option<std::collections::BTreeMap<String, String>>,
) -> Result<TagQueue, WireError> {
    let queue_url = required("QueueUrl", queue_url)?;
    let tags = required("Tags", tags.filter(|t| !t.is_empty()))?;
    check_tags(
        tags.len(),
        tags.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))),
    )?;
    Ok(TagQueue { queue_url, tags })
}

pub(crate) fn untag_queue(
    queue_url: Option<String>,
    tag_keys: Option<Vec<String>>,
) -> Result<UntagQueue, WireError> {
    let queue_url = required("QueueUrl", queue_url)?;
    let tag_keys = required("TagKeys", tag_keys.filter(|t| !t.is_empty()))?;
    check_tags(tag_keys.len(), tag_keys.iter().map(|k| (k.as_str(), None)))?;
    Ok(UntagQueue {
        queue_url,
        tag_keys,
    })
}

pub(crate) fn list_dead_letter_sources(
    queue_url: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
) -> Result<ListDeadLetterSourceQueues, WireError> {
    Ok(ListDeadLetterSourceQueues {
        queue_url: required("QueueUrl", queue_url)?,
        max_results: ranged("MaxResults", max_results, 1, LIST_QUEUES_MAX)?,
        next_token,
    })
}

/// Queue attributes (CreateQueue, SetQueueAttributes): at most `QUEUE_ATTRIBUTES_MAX`.
pub(crate) fn queue_attributes(count: usize) -> Result<(), WireError> {
    if count > QUEUE_ATTRIBUTES_MAX as usize {
        return Err(WireError::invalid(format!(
            "More than {QUEUE_ATTRIBUTES_MAX} queue attributes"
        )));
    }
    Ok(())
}
