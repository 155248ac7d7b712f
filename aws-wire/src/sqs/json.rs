//! SQS over JSON 1.0 (`application/x-amz-json-1.0`, botocore ≥ 1.34.90): the action in
//! `X-Amz-Target: AmazonSQS.<Action>`, members PascalCase, blobs base64. Errors are
//! `{"__type": "com.amazonaws.sqs#<Shape>", "message": …}` with the query code in
//! `x-amzn-query-error` (the model is `awsQueryCompatible`).
//!
//! Unknown members are ignored (newer SDKs may send more); a member of the wrong JSON
//! type makes the request malformed, as SQS answers it (SerializationException).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
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
    }
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
    message_system_attributes: Option<BTreeMap<String, Value>>,
    message_group_id: Option<String>,
    message_deduplication_id: Option<String>,
}

impl SendIn {
    /// A message whose attributes cannot be read carries that error (a batch entry
    /// fails with it alone).
    fn into_raw(self) -> RawSend {
        let attributes = self
            .message_attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(name, a)| rules::attribute(name, a.data_type, a.string_value, a.binary_value))
            .collect::<Result<Vec<_>, _>>();
        let (attributes, read_error) = match attributes {
            Ok(attributes) => (attributes, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        RawSend {
            id: self.id,
            body: self.message_body,
            delay_seconds: self.delay_seconds,
            attributes,
            group_id: self.message_group_id,
            dedup_id: self.message_deduplication_id,
            system_attributes: self
                .message_system_attributes
                .is_some_and(|m| !m.is_empty()),
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
        Response::SendMessage(sent) => sent_message(sent, false),
        Response::SendMessageBatch(batch) => batch_result(batch, |sent| sent_message(sent, true)),
        Response::ReceiveMessage { messages } => {
            if messages.is_empty() {
                json!({})
            } else {
                json!({ "Messages": messages.iter().map(received).collect::<Vec<_>>() })
            }
        }
        Response::DeleteMessageBatch(batch) | Response::ChangeMessageVisibilityBatch(batch) => {
            batch_result(batch, |id| json!({ "Id": id }))
        }
    };
    value.to_string().into_bytes()
}

fn sent_message(sent: &SentMessage, with_id: bool) -> Value {
    let mut out = Map::new();
    if with_id {
        out.insert("Id".into(), json!(sent.id));
    }
    out.insert("MessageId".into(), json!(sent.message_id));
    out.insert("MD5OfMessageBody".into(), json!(sent.md5_of_message_body));
    if let Some(md5) = &sent.md5_of_message_attributes {
        out.insert("MD5OfMessageAttributes".into(), json!(md5));
    }
    if let Some(n) = &sent.sequence_number {
        out.insert("SequenceNumber".into(), json!(n));
    }
    Value::Object(out)
}

fn batch_result<T>(batch: &BatchResult<T>, entry: impl Fn(&T) -> Value) -> Value {
    let failed: Vec<Value> = batch
        .failed
        .iter()
        .map(|f| {
            json!({
                "Id": f.id,
                "SenderFault": f.sender_fault,
                "Code": f.code.shape(),
                "Message": f.message,
            })
        })
        .collect();
    json!({
        "Successful": batch.successful.iter().map(entry).collect::<Vec<_>>(),
        "Failed": failed,
    })
}

fn received(m: &ReceivedMessage) -> Value {
    let mut out = Map::new();
    out.insert("MessageId".into(), json!(m.message_id));
    out.insert("ReceiptHandle".into(), json!(m.receipt_handle));
    out.insert("MD5OfBody".into(), json!(m.md5_of_body));
    out.insert("Body".into(), json!(m.body));
    if !m.attributes.is_empty() {
        let attrs: Map<String, Value> = m
            .attributes
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect();
        out.insert("Attributes".into(), Value::Object(attrs));
    }
    if let Some(md5) = &m.md5_of_message_attributes {
        out.insert("MD5OfMessageAttributes".into(), json!(md5));
    }
    if !m.message_attributes.is_empty() {
        let attrs: Map<String, Value> = m
            .message_attributes
            .iter()
            .map(|a| {
                let value = match &a.value {
                    AttributeValue::String(text) => {
                        json!({ "StringValue": text, "DataType": a.data_type })
                    }
                    AttributeValue::Binary(bytes) => {
                        json!({ "BinaryValue": STANDARD.encode(bytes), "DataType": a.data_type })
                    }
                };
                (a.name.clone(), value)
            })
            .collect();
        out.insert("MessageAttributes".into(), Value::Object(attrs));
    }
    Value::Object(out)
}

/// The JSON body of an error.
pub fn encode_error(error: &WireError) -> Vec<u8> {
    json!({ "__type": error.code.json_type(), "message": error.message })
        .to_string()
        .into_bytes()
}
