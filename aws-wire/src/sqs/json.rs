//! SQS over JSON 1.0 (`application/x-amz-json-1.0`, botocore ≥ 1.34.90): the action in
//! `X-Amz-Target: AmazonSQS.<Action>`, members PascalCase, blobs base64. Errors are
//! `{"__type": "com.amazonaws.sqs#<Shape>", "message": …}` with the query code in
//! `x-amzn-query-error` (the model is `awsQueryCompatible`).
//!
//! Unknown members are ignored (newer SDKs may send more); a member of the wrong JSON
//! type makes the request malformed, as SQS answers it (SerializationException).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::errors::{ErrorCode, WireError};
use super::model::*;
use super::rules::{self, RawReceive, RawSend, RawVisibility};

/// The `X-Amz-Target` prefix of SQS actions.
pub const TARGET_PREFIX: &str = "AmazonSQS.";

/// A JSON 1.0 request: `target` is the `X-Amz-Target` header's value.
pub fn decode(target: Option<&str>, body: &[u8]) -> Result<Request, WireError> {
    let Some(target) = target else {
        return Err(WireError::new(
            ErrorCode::UnknownAction,
            "The X-Amz-Target header is missing.",
        ));
    };
    let Some(name) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(WireError::new(
            ErrorCode::UnknownAction,
            format!("The operation {target:?} is not valid for this endpoint."),
        ));
    };
    let action = rules::action(name)?;
    // An empty body reads as `{}` (some clients send nothing for a call without members).
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    match action {
        Action::CreateQueue => parse::<CreateQueueIn>(body)?
            .checked()
            .map(Request::CreateQueue),
        Action::GetQueueUrl => {
            let r: GetQueueUrlIn = parse(body)?;
            Ok(Request::GetQueueUrl(GetQueueUrl {
                queue_name: rules::required("QueueName", r.queue_name)?,
                queue_owner_account_id: r.queue_owner_aws_account_id,
            }))
        }
        Action::ListQueues => {
            let r: ListQueuesIn = parse(body)?;
            rules::list_queues(r.queue_name_prefix, r.max_results, r.next_token)
                .map(Request::ListQueues)
        }
        Action::DeleteQueue => queue_ref(body).map(Request::DeleteQueue),
        Action::PurgeQueue => queue_ref(body).map(Request::PurgeQueue),
        Action::GetQueueAttributes => parse::<GetQueueAttributesIn>(body)?
            .checked()
            .map(Request::GetQueueAttributes),
        Action::SetQueueAttributes => parse::<SetQueueAttributesIn>(body)?
            .checked()
            .map(Request::SetQueueAttributes),
        Action::SendMessage => {
            let r: SendMessageIn = parse(body)?;
            Ok(Request::SendMessage(SendMessage {
                queue_url: rules::required("QueueUrl", r.queue_url)?,
                message: rules::send_entry(r.message.into_raw())?,
            }))
        }
        Action::SendMessageBatch => send_message_batch(parse(body)?).map(Request::SendMessageBatch),
        Action::ReceiveMessage => parse::<ReceiveMessageIn>(body)?
            .checked()
            .map(Request::ReceiveMessage),
        Action::DeleteMessage => {
            let r: ReceiptIn = parse(body)?;
            Ok(Request::DeleteMessage(DeleteMessage {
                queue_url: rules::required("QueueUrl", r.queue_url)?,
                receipt_handle: rules::required("ReceiptHandle", r.receipt_handle)?,
            }))
        }
        Action::DeleteMessageBatch => {
            delete_message_batch(parse(body)?).map(Request::DeleteMessageBatch)
        }
        Action::ChangeMessageVisibility => {
            let r: ReceiptIn = parse(body)?;
            let queue_url = rules::required("QueueUrl", r.queue_url.clone())?;
            let entry = rules::visibility_entry(r.into_raw())?;
            Ok(Request::ChangeMessageVisibility(ChangeMessageVisibility {
                queue_url,
                receipt_handle: entry.receipt_handle,
                visibility_timeout: entry.visibility_timeout,
            }))
        }
        Action::ChangeMessageVisibilityBatch => {
            change_visibility_batch(parse(body)?).map(Request::ChangeMessageVisibilityBatch)
        }
        Action::TagQueue => {
            let r: TagQueueIn = parse(body)?;
            rules::tag_queue(r.queue_url, r.tags).map(Request::TagQueue)
        }
        Action::UntagQueue => {
            let r: TagQueueIn = parse(body)?;
            rules::untag_queue(r.queue_url, r.tag_keys).map(Request::UntagQueue)
        }
        Action::ListQueueTags => queue_ref(body).map(Request::ListQueueTags),
        Action::ListDeadLetterSourceQueues => {
            let r: ListSourcesIn = parse(body)?;
            rules::list_dead_letter_sources(r.queue_url, r.max_results, r.next_token)
                .map(Request::ListDeadLetterSourceQueues)
        }
        Action::StartMessageMoveTask => {
            let r: MoveIn = parse(body)?;
            rules::start_move(
                r.source_arn,
                r.destination_arn,
                r.max_number_of_messages_per_second,
            )
            .map(Request::StartMessageMoveTask)
        }
        Action::CancelMessageMoveTask => {
            let r: MoveIn = parse(body)?;
            Ok(Request::CancelMessageMoveTask(CancelMessageMoveTask {
                task_handle: rules::required("TaskHandle", r.task_handle)?,
            }))
        }
        Action::ListMessageMoveTasks => {
            let r: MoveIn = parse(body)?;
            rules::list_moves(r.source_arn, r.max_results).map(Request::ListMessageMoveTasks)
        }
    }
}

/// The message move task actions' members.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MoveIn {
    source_arn: Option<String>,
    destination_arn: Option<String>,
    max_number_of_messages_per_second: Option<i64>,
    max_results: Option<i64>,
    task_handle: Option<String>,
}

/// TagQueue and UntagQueue.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagQueueIn {
    queue_url: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListSourcesIn {
    queue_url: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

fn send_message_batch(r: BatchIn<SendIn>) -> Result<SendMessageBatch, WireError> {
    let queue_url = rules::required("QueueUrl", r.queue_url)?;
    let raw = r
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(SendIn::into_raw)
        .collect();
    Ok(SendMessageBatch {
        queue_url,
        entries: rules::send_batch(raw)?,
    })
}

fn delete_message_batch(r: BatchIn<ReceiptIn>) -> Result<DeleteMessageBatch, WireError> {
    let queue_url = rules::required("QueueUrl", r.queue_url)?;
    let raw = r
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.id, e.receipt_handle))
        .collect();
    Ok(DeleteMessageBatch {
        queue_url,
        entries: rules::delete_batch(raw)?,
    })
}

fn change_visibility_batch(
    r: BatchIn<ReceiptIn>,
) -> Result<ChangeMessageVisibilityBatch, WireError> {
    let queue_url = rules::required("QueueUrl", r.queue_url)?;
    let raw = r
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(ReceiptIn::into_raw)
        .collect();
    Ok(ChangeMessageVisibilityBatch {
        queue_url,
        entries: rules::visibility_batch(raw)?,
    })
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(|e| WireError::new(ErrorCode::Malformed, e.to_string()))
}

fn queue_ref(body: &[u8]) -> Result<QueueRef, WireError> {
    let r: QueueUrlIn = parse(body)?;
    Ok(QueueRef {
        queue_url: rules::required("QueueUrl", r.queue_url)?,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateQueueIn {
    queue_name: Option<String>,
    attributes: Option<BTreeMap<String, String>>,
    /// CreateQueue's tags member is the one SQS spells in lower case.
    #[serde(rename = "tags")]
    tags: Option<BTreeMap<String, String>>,
}

impl CreateQueueIn {
    fn checked(self) -> Result<CreateQueue, WireError> {
        let attributes = self.attributes.unwrap_or_default();
        rules::queue_attributes(attributes.len())?;
        rules::create_queue(self.queue_name, attributes, self.tags.unwrap_or_default())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetQueueUrlIn {
    queue_name: Option<String>,
    #[serde(rename = "QueueOwnerAWSAccountId")]
    queue_owner_aws_account_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListQueuesIn {
    queue_name_prefix: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueUrlIn {
    queue_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetQueueAttributesIn {
    queue_url: Option<String>,
    attribute_names: Option<Vec<String>>,
}

impl GetQueueAttributesIn {
    fn checked(self) -> Result<GetQueueAttributes, WireError> {
        Ok(GetQueueAttributes {
            queue_url: rules::required("QueueUrl", self.queue_url)?,
            attribute_names: rules::names(
                "AttributeNames",
                self.attribute_names.unwrap_or_default(),
            )?,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetQueueAttributesIn {
    queue_url: Option<String>,
    attributes: Option<BTreeMap<String, String>>,
}

impl SetQueueAttributesIn {
    fn checked(self) -> Result<SetQueueAttributes, WireError> {
        let attributes = rules::required("Attributes", self.attributes)?;
        rules::queue_attributes(attributes.len())?;
        Ok(SetQueueAttributes {
            queue_url: rules::required("QueueUrl", self.queue_url)?,
            attributes,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendMessageIn {
    queue_url: Option<String>,
    #[serde(flatten)]
    message: SendIn,
}

/// One message: SendMessage's members, or a SendMessageBatch entry's.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendIn {
    id: Option<String>,
    message_body: Option<String>,
    delay_seconds: Option<i64>,
    message_attributes: Option<BTreeMap<String, AttributeIn>>,
    message_system_attributes: Option<BTreeMap<String, AttributeIn>>,
    message_group_id: Option<String>,
    message_deduplication_id: Option<String>,
}

impl SendIn {
    /// A message whose attributes cannot be read carries that error (a batch entry
    /// fails with it alone).
    fn into_raw(self) -> RawSend {
        let read = |map: Option<BTreeMap<String, AttributeIn>>| {
            map.unwrap_or_default()
                .into_iter()
                .map(|(name, a)| {
                    rules::attribute(name, a.data_type, a.string_value, a.binary_value)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let both = read(self.message_attributes)
            .and_then(|a| read(self.message_system_attributes).map(|s| (a, s)));
        let ((attributes, system_attributes), read_error) = match both {
            Ok(both) => (both, None),
            Err(e) => ((Vec::new(), Vec::new()), Some(e)),
        };
        RawSend {
            id: self.id,
            body: self.message_body,
            delay_seconds: self.delay_seconds,
            attributes,
            group_id: self.message_group_id,
            dedup_id: self.message_deduplication_id,
            system_attributes,
            read_error,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeIn {
    data_type: Option<String>,
    string_value: Option<String>,
    binary_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchIn<T> {
    queue_url: Option<String>,
    entries: Option<Vec<T>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveMessageIn {
    queue_url: Option<String>,
    attribute_names: Option<Vec<String>>,
    message_system_attribute_names: Option<Vec<String>>,
    message_attribute_names: Option<Vec<String>>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
    receive_request_attempt_id: Option<String>,
}

impl ReceiveMessageIn {
    fn checked(self) -> Result<ReceiveMessage, WireError> {
        let mut attribute_names = self.attribute_names.unwrap_or_default();
        attribute_names.extend(self.message_system_attribute_names.unwrap_or_default());
        rules::receive(RawReceive {
            queue_url: self.queue_url,
            attribute_names,
            message_attribute_names: self.message_attribute_names.unwrap_or_default(),
            max_messages: self.max_number_of_messages,
            visibility_timeout: self.visibility_timeout,
            wait_time_seconds: self.wait_time_seconds,
            receive_request_attempt_id: self.receive_request_attempt_id,
        })
    }
}

/// DeleteMessage, ChangeMessageVisibility and their batch entries.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiptIn {
    queue_url: Option<String>,
    id: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

impl ReceiptIn {
    fn into_raw(self) -> RawVisibility {
        RawVisibility {
            id: self.id,
            receipt_handle: self.receipt_handle,
            visibility_timeout: self.visibility_timeout,
            read_error: None,
        }
    }
}

/// The JSON body of an answer.
pub fn encode(response: &Response) -> Vec<u8> {
    let value = match response {
        Response::CreateQueue { queue_url } | Response::GetQueueUrl { queue_url } => {
            json!({ "QueueUrl": queue_url })
        }
        Response::ListQueues {
            queue_urls,
            next_token,
        } => {
            let mut out = Map::new();
            if !queue_urls.is_empty() {
                out.insert("QueueUrls".into(), json!(queue_urls));
            }
            if let Some(token) = next_token {
                out.insert("NextToken".into(), json!(token));
            }
            Value::Object(out)
        }
        Response::DeleteQueue
        | Response::PurgeQueue
        | Response::SetQueueAttributes
        | Response::DeleteMessage
        | Response::ChangeMessageVisibility
        | Response::TagQueue
        | Response::UntagQueue => json!({}),
        Response::ListQueueTags { tags } => {
            let map: Map<String, Value> = tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            if map.is_empty() {
                json!({})
            } else {
                json!({ "Tags": map })
            }
        }
        Response::StartMessageMoveTask { task_handle } => json!({ "TaskHandle": task_handle }),
        Response::CancelMessageMoveTask { moved } => {
            json!({ "ApproximateNumberOfMessagesMoved": moved })
        }
        Response::ListMessageMoveTasks { results } => {
            json!({ "Results": results.iter().map(move_task).collect::<Vec<_>>() })
        }
        Response::ListDeadLetterSourceQueues {
            queue_urls,
            next_token,
        } => {
            // The one member SQS's JSON model spells in lower camel case.
            let mut out = Map::new();
            out.insert("queueUrls".into(), json!(queue_urls));
            if let Some(token) = next_token {
                out.insert("NextToken".into(), json!(token));
            }
            Value::Object(out)
        }
        Response::GetQueueAttributes { attributes } => {
            let map: Map<String, Value> = attributes
                .iter()
                .map(|(name, value)| (name.clone(), json!(value)))
                .collect();
            json!({ "Attributes": map })
        }
        // The message actions, the hot path, are written from borrowing structs
        // (`out`) without a `Value` tree in between.
        Response::SendMessage(sent) => return write(&out::Sent::new(sent, false)),
        Response::SendMessageBatch(batch) => {
            return write(&out::Batch::new(batch, |sent| out::Sent::new(sent, true)))
        }
        Response::ReceiveMessage { messages } => return write(&out::Received::list(messages)),
        Response::DeleteMessageBatch(batch) | Response::ChangeMessageVisibilityBatch(batch) => {
            return write(&out::Batch::new(batch, |id| out::Id { id }))
        }
    };
    write(&value)
}

/// `value` as JSON, in a buffer sized for a typical answer (a batch of ten) so that it
/// is not grown a doubling at a time.
fn write(value: &impl serde::Serialize) -> Vec<u8> {
    let mut body = Vec::with_capacity(ANSWER_BYTES_TYPICAL);
    // Writing into a Vec cannot fail, and our values have only string keys.
    if serde_json::to_writer(&mut body, value).is_err() {
        body.clear();
        body.extend_from_slice(b"{}");
    }
    body
}

/// Room for a batch answer of ten entries (about 2 KiB) without growing.
const ANSWER_BYTES_TYPICAL: usize = 4096;

fn move_task(t: &MoveTaskEntry) -> Value {
    let mut out = Map::new();
    if let Some(handle) = &t.task_handle {
        out.insert("TaskHandle".into(), json!(handle));
    }
    out.insert("Status".into(), json!(t.status));
    out.insert("SourceArn".into(), json!(t.source_arn));
    if let Some(arn) = &t.destination_arn {
        out.insert("DestinationArn".into(), json!(arn));
    }
    if let Some(rate) = t.max_per_second {
        out.insert("MaxNumberOfMessagesPerSecond".into(), json!(rate));
    }
    out.insert("ApproximateNumberOfMessagesMoved".into(), json!(t.moved));
    out.insert("ApproximateNumberOfMessagesToMove".into(), json!(t.to_move));
    if let Some(reason) = &t.failure_reason {
        out.insert("FailureReason".into(), json!(reason));
    }
    out.insert("StartedTimestamp".into(), json!(t.started_ms));
    Value::Object(out)
}

/// The message actions' answers as borrowing structs, serialized in place.
mod out {
    use super::super::model::{BatchResult, MessageAttribute, ReceivedMessage, SentMessage};
    use super::AttributeValue;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::ser::{SerializeMap, Serializer};
    use serde::Serialize;

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct Sent<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        message_id: &'a str,
        #[serde(rename = "MD5OfMessageBody")]
        md5_of_message_body: &'a str,
        #[serde(
            rename = "MD5OfMessageAttributes",
            skip_serializing_if = "Option::is_none"
        )]
        md5_of_message_attributes: Option<&'a str>,
        #[serde(
            rename = "MD5OfMessageSystemAttributes",
            skip_serializing_if = "Option::is_none"
        )]
        md5_of_message_system_attributes: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sequence_number: Option<&'a str>,
    }

    impl<'a> Sent<'a> {
        /// SendMessage's answer, or (`with_id`) a SendMessageBatch entry's.
        pub fn new(sent: &'a SentMessage, with_id: bool) -> Sent<'a> {
            Sent {
                id: with_id.then_some(sent.id.as_str()),
                message_id: &sent.message_id,
                md5_of_message_body: &sent.md5_of_message_body,
                md5_of_message_attributes: sent.md5_of_message_attributes.as_deref(),
                md5_of_message_system_attributes: sent.md5_of_message_system_attributes.as_deref(),
                sequence_number: sent.sequence_number.as_deref(),
            }
        }
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct Id<'a> {
        pub id: &'a str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct Batch<'a, T> {
        successful: Vec<T>,
        failed: Vec<Failed<'a>>,
    }

    impl<'a, T: Serialize> Batch<'a, T> {
        pub fn new<E>(batch: &'a BatchResult<E>, entry: impl Fn(&'a E) -> T) -> Batch<'a, T> {
            Batch {
                successful: batch.successful.iter().map(entry).collect(),
                failed: batch
                    .failed
                    .iter()
                    .map(|f| Failed {
                        id: &f.id,
                        sender_fault: f.sender_fault,
                        code: f.code.shape(),
                        message: &f.message,
                    })
                    .collect(),
            }
        }
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Failed<'a> {
        id: &'a str,
        sender_fault: bool,
        code: &'a str,
        message: &'a str,
    }

    /// ReceiveMessage's answer: `{}` when no message came.
    pub struct Received<'a>(&'a [ReceivedMessage]);

    impl<'a> Received<'a> {
        pub fn list(messages: &'a [ReceivedMessage]) -> Received<'a> {
            Received(messages)
        }
    }

    impl Serialize for Received<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(None)?;
            if !self.0.is_empty() {
                let messages: Vec<Message<'_>> = self.0.iter().map(Message).collect();
                map.serialize_entry("Messages", &messages)?;
            }
            map.end()
        }
    }

    struct Message<'a>(&'a ReceivedMessage);

    impl Serialize for Message<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let m = self.0;
            let mut map = s.serialize_map(None)?;
            map.serialize_entry("MessageId", &m.message_id)?;
            map.serialize_entry("ReceiptHandle", &m.receipt_handle)?;
            map.serialize_entry("MD5OfBody", &m.md5_of_body)?;
            map.serialize_entry("Body", &m.body)?;
            if !m.attributes.is_empty() {
                map.serialize_entry("Attributes", &Pairs(&m.attributes))?;
            }
            if let Some(md5) = &m.md5_of_message_attributes {
                map.serialize_entry("MD5OfMessageAttributes", md5)?;
            }
            if !m.message_attributes.is_empty() {
                map.serialize_entry("MessageAttributes", &Attributes(&m.message_attributes))?;
            }
            map.end()
        }
    }

    /// Name → value pairs as a JSON object.
    struct Pairs<'a>(&'a [(String, String)]);

    impl Serialize for Pairs<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }

    /// Message attributes as SQS's JSON writes them: name → {StringValue|BinaryValue, DataType}.
    struct Attributes<'a>(&'a [MessageAttribute]);

    impl Serialize for Attributes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for a in self.0 {
                map.serialize_entry(&a.name, &Attribute(a))?;
            }
            map.end()
        }
    }

    struct Attribute<'a>(&'a MessageAttribute);

    impl Serialize for Attribute<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let a = self.0;
            let mut map = s.serialize_map(Some(2))?;
            match &a.value {
                AttributeValue::String(text) => map.serialize_entry("StringValue", text)?,
                AttributeValue::Binary(bytes) => {
                    map.serialize_entry("BinaryValue", &STANDARD.encode(bytes))?
                }
            }
            map.serialize_entry("DataType", &a.data_type)?;
            map.end()
        }
    }
}

/// The JSON body of an error.
pub fn encode_error(error: &WireError) -> Vec<u8> {
    write(&json!({ "__type": error.code.json_type(), "message": error.message }))
}
