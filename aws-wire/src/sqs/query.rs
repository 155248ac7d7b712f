//! SQS over the query protocol (form requests, XML answers; botocore ≤ 1.34.89 and
//! most older SDKs). Lists are flattened into indexed keys (`Attribute.1.Name`,
//! `AttributeName.1`, `SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.DataType`);
//! answers are `<XResponse xmlns="…/doc/2012-11-05/"><XResult>…</XResult>
//! <ResponseMetadata><RequestId>…` with their lists flattened too.
//!
//! Keys this decoder does not know are ignored: query requests carry `Version`, and
//! older SDKs signature keys (`AWSAccessKeyId`, `Signature`, …) beside the members.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::errors::{ErrorCode, WireError};
use super::model::*;
use super::rules::{self, RawReceive, RawSend, RawVisibility};
use crate::form::{FormError, Params};
use crate::xml::Xml;

/// The namespace of every SQS answer.
pub const NAMESPACE: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// A query request's parameters (body and query string together). `path_queue_url`
/// stands in for a missing `QueueUrl`: SDKs that post to the queue's URL (the AWS SDK
/// for Java 1.x) move the parameter into the request path.
pub fn decode(params: &Params, path_queue_url: Option<&str>) -> Result<Request, WireError> {
    let name = params
        .get("Action")
        .ok_or_else(|| WireError::new(ErrorCode::UnknownAction, "The request has no Action."))?;
    let form = Form {
        params,
        path_queue_url,
    };
    match rules::action(name)? {
        Action::CreateQueue => create_queue(params).map(Request::CreateQueue),
        Action::GetQueueUrl => Ok(Request::GetQueueUrl(GetQueueUrl {
            queue_name: rules::required("QueueName", string(params, "QueueName"))?,
            queue_owner_account_id: string(params, "QueueOwnerAWSAccountId"),
        })),
        Action::ListQueues => rules::list_queues(
            string(params, "QueueNamePrefix"),
            params.int("MaxResults")?,
            string(params, "NextToken"),
        )
        .map(Request::ListQueues),
        Action::DeleteQueue => form.queue_ref().map(Request::DeleteQueue),
        Action::PurgeQueue => form.queue_ref().map(Request::PurgeQueue),
        Action::GetQueueAttributes => Ok(Request::GetQueueAttributes(GetQueueAttributes {
            queue_url: form.queue_url()?,
            attribute_names: names(params, "AttributeName")?,
        })),
        Action::SetQueueAttributes => set_queue_attributes(&form).map(Request::SetQueueAttributes),
        Action::SendMessage => Ok(Request::SendMessage(SendMessage {
            queue_url: form.queue_url()?,
            message: rules::send_entry(send_raw(params)?)?,
        })),
        Action::SendMessageBatch => send_message_batch(&form).map(Request::SendMessageBatch),
        Action::ReceiveMessage => receive_message(&form).map(Request::ReceiveMessage),
        Action::DeleteMessage => Ok(Request::DeleteMessage(DeleteMessage {
            queue_url: form.queue_url()?,
            receipt_handle: rules::required("ReceiptHandle", string(params, "ReceiptHandle"))?,
        })),
        Action::DeleteMessageBatch => delete_message_batch(&form).map(Request::DeleteMessageBatch),
        Action::ChangeMessageVisibility => {
            let queue_url = form.queue_url()?;
            let entry = rules::visibility_entry(visibility_raw(params))?;
            Ok(Request::ChangeMessageVisibility(ChangeMessageVisibility {
                queue_url,
                receipt_handle: entry.receipt_handle,
                visibility_timeout: entry.visibility_timeout,
            }))
        }
        Action::ChangeMessageVisibilityBatch => {
            change_visibility_batch(&form).map(Request::ChangeMessageVisibilityBatch)
        }
        Action::TagQueue => {
            let tags = tags(params)?;
            rules::tag_queue(Some(form.queue_url()?), Some(tags)).map(Request::TagQueue)
        }
        Action::UntagQueue => {
            let keys = params.list("TagKey", TAGS_MAX as u32)?;
            rules::untag_queue(Some(form.queue_url()?), Some(keys)).map(Request::UntagQueue)
        }
        Action::ListQueueTags => form.queue_ref().map(Request::ListQueueTags),
        Action::ListDeadLetterSourceQueues => rules::list_dead_letter_sources(
            Some(form.queue_url()?),
            params.int("MaxResults")?,
            string(params, "NextToken"),
        )
        .map(Request::ListDeadLetterSourceQueues),
    }
}

/// `Tag.N.Key` / `Tag.N.Value` (CreateQueue, TagQueue).
fn tags(params: &Params) -> Result<BTreeMap<String, String>, WireError> {
    let mut tags = BTreeMap::new();
    for (n, member) in params.indexed("Tag", TAGS_MAX as u32)? {
        let key = rules::required(&format!("Tag.{n}.Key"), string(&member, "Key"))?;
        let value = string(&member, "Value").unwrap_or_default();
        if tags.insert(key.clone(), value).is_some() {
            return Err(WireError::invalid(format!(
                "Tag {key} is given more than once."
            )));
        }
    }
    Ok(tags)
}

/// A request's parameters and where its queue may come from.
struct Form<'a> {
    params: &'a Params,
    path_queue_url: Option<&'a str>,
}

impl Form<'_> {
    fn queue_url(&self) -> Result<String, WireError> {
        let url = self.params.get("QueueUrl").or(self.path_queue_url);
        rules::required("QueueUrl", url.map(str::to_owned))
    }

    fn queue_ref(&self) -> Result<QueueRef, WireError> {
        Ok(QueueRef {
            queue_url: self.queue_url()?,
        })
    }
}

fn create_queue(params: &Params) -> Result<CreateQueue, WireError> {
    let attributes = queue_attributes(params)?;
    rules::create_queue(string(params, "QueueName"), attributes, tags(params)?)
}

fn set_queue_attributes(form: &Form) -> Result<SetQueueAttributes, WireError> {
    let queue_url = form.queue_url()?;
    let attributes = queue_attributes(form.params)?;
    if attributes.is_empty() {
        return Err(WireError::missing("Attribute.1.Name"));
    }
    Ok(SetQueueAttributes {
        queue_url,
        attributes,
    })
}

fn send_message_batch(form: &Form) -> Result<SendMessageBatch, WireError> {
    let queue_url = form.queue_url()?;
    let raw = entries(form.params, "SendMessageBatchRequestEntry")?
        .iter()
        .map(|e| {
            send_raw(e).unwrap_or_else(|error| RawSend {
                id: string(e, "Id"),
                read_error: Some(error),
                ..RawSend::default()
            })
        })
        .collect();
    Ok(SendMessageBatch {
        queue_url,
        entries: rules::send_batch(raw)?,
    })
}

fn receive_message(form: &Form) -> Result<ReceiveMessage, WireError> {
    let params = form.params;
    let mut attribute_names = names(params, "AttributeName")?;
    attribute_names.extend(names(params, "MessageSystemAttributeName")?);
    rules::receive(RawReceive {
        queue_url: Some(form.queue_url()?),
        attribute_names,
        message_attribute_names: names(params, "MessageAttributeName")?,
        max_messages: params.int("MaxNumberOfMessages")?,
        visibility_timeout: params.int("VisibilityTimeout")?,
        wait_time_seconds: params.int("WaitTimeSeconds")?,
        receive_request_attempt_id: string(params, "ReceiveRequestAttemptId"),
    })
}

fn delete_message_batch(form: &Form) -> Result<DeleteMessageBatch, WireError> {
    let queue_url = form.queue_url()?;
    let raw = entries(form.params, "DeleteMessageBatchRequestEntry")?
        .iter()
        .map(|e| (string(e, "Id"), string(e, "ReceiptHandle")))
        .collect();
    Ok(DeleteMessageBatch {
        queue_url,
        entries: rules::delete_batch(raw)?,
    })
}

fn change_visibility_batch(form: &Form) -> Result<ChangeMessageVisibilityBatch, WireError> {
    let queue_url = form.queue_url()?;
    let raw = entries(form.params, "ChangeMessageVisibilityBatchRequestEntry")?
        .iter()
        .map(visibility_raw)
        .collect();
    Ok(ChangeMessageVisibilityBatch {
        queue_url,
        entries: rules::visibility_batch(raw)?,
    })
}

fn string(params: &Params, key: &str) -> Option<String> {
    params.get(key).map(str::to_owned)
}

/// A list of names: `prefix.N`, and a bare `prefix=Name` as SQS's own examples write
/// it (`AttributeName=All`); an empty bare value is botocore's empty list.
fn names(params: &Params, prefix: &str) -> Result<Vec<String>, WireError> {
    let mut names = params.list(prefix, ATTRIBUTE_NAMES_MAX)?;
    if let Some(bare) = params.get(prefix).filter(|v| !v.is_empty()) {
        names.insert(0, bare.to_owned());
    }
    rules::names(prefix, names)
}

/// `Attribute.N.Name` / `Attribute.N.Value` (CreateQueue, SetQueueAttributes).
fn queue_attributes(params: &Params) -> Result<BTreeMap<String, String>, WireError> {
    let mut attributes = BTreeMap::new();
    for (n, member) in params.indexed("Attribute", QUEUE_ATTRIBUTES_MAX)? {
        let name = rules::required(&format!("Attribute.{n}.Name"), string(&member, "Name"))?;
        let value = string(&member, "Value").unwrap_or_default();
        if attributes.insert(name.clone(), value).is_some() {
            return Err(WireError::invalid(format!(
                "Attribute {name} is given more than once."
            )));
        }
    }
    rules::queue_attributes(attributes.len())?;
    Ok(attributes)
}

/// A batch's entries; an index past the limit is the batch-size error.
fn entries(params: &Params, prefix: &str) -> Result<Vec<Params>, WireError> {
    match params.indexed(prefix, BATCH_ENTRIES_MAX as u32) {
        Ok(members) => Ok(members.into_iter().map(|(_, p)| p).collect()),
        Err(FormError::Index { index, .. })
            if index
                .parse::<u64>()
                .is_ok_and(|n| n > BATCH_ENTRIES_MAX as u64) =>
        {
            Err(rules::too_many_entries(index.parse().unwrap_or(usize::MAX)))
        }
        Err(e) => Err(e.into()),
    }
}

/// One message's members (SendMessage, or a batch entry with its prefix cut off).
fn send_raw(params: &Params) -> Result<RawSend, WireError> {
    let mut attributes = Vec::new();
    for (n, member) in params.indexed("MessageAttribute", MESSAGE_ATTRIBUTES_MAX as u32)? {
        let name = rules::required(
            &format!("MessageAttribute.{n}.Name"),
            string(&member, "Name"),
        )?;
        attributes.push(rules::attribute(
            name,
            string(&member, "Value.DataType"),
            string(&member, "Value.StringValue"),
            string(&member, "Value.BinaryValue"),
        )?);
    }
    Ok(RawSend {
        id: string(params, "Id"),
        body: string(params, "MessageBody"),
        delay_seconds: params.int("DelaySeconds")?,
        attributes,
        group_id: string(params, "MessageGroupId"),
        dedup_id: string(params, "MessageDeduplicationId"),
        system_attributes: params.has("MessageSystemAttribute"),
        read_error: None,
    })
}

/// A receipt and timeout (ChangeMessageVisibility, or a batch entry); a timeout that
/// is not an integer fails that entry alone.
fn visibility_raw(params: &Params) -> RawVisibility {
    let (visibility_timeout, read_error) = match params.int("VisibilityTimeout") {
        Ok(timeout) => (timeout, None),
        Err(e) => (None, Some(e.into())),
    };
    RawVisibility {
        id: string(params, "Id"),
        receipt_handle: string(params, "ReceiptHandle"),
        visibility_timeout,
        read_error,
    }
}

/// The XML document of an answer.
pub fn encode(response: &Response, request_id: &str) -> Vec<u8> {
    let action = response.action();
    let mut x = Xml::new();
    x.open_ns(response_tag(action), NAMESPACE);
    if let Some(result) = result_tag(response) {
        x.open(result);
        result_body(&mut x, response);
        x.close();
    }
    x.open("ResponseMetadata")
        .leaf("RequestId", request_id)
        .close()
        .close();
    x.finish()
}

fn response_tag(action: Action) -> &'static str {
    match action {
        Action::CreateQueue => "CreateQueueResponse",
        Action::GetQueueUrl => "GetQueueUrlResponse",
        Action::ListQueues => "ListQueuesResponse",
        Action::DeleteQueue => "DeleteQueueResponse",
        Action::PurgeQueue => "PurgeQueueResponse",
        Action::GetQueueAttributes => "GetQueueAttributesResponse",
        Action::SetQueueAttributes => "SetQueueAttributesResponse",
        Action::SendMessage => "SendMessageResponse",
        Action::SendMessageBatch => "SendMessageBatchResponse",
        Action::ReceiveMessage => "ReceiveMessageResponse",
        Action::DeleteMessage => "DeleteMessageResponse",
        Action::DeleteMessageBatch => "DeleteMessageBatchResponse",
        Action::ChangeMessageVisibility => "ChangeMessageVisibilityResponse",
        Action::ChangeMessageVisibilityBatch => "ChangeMessageVisibilityBatchResponse",
        Action::TagQueue => "TagQueueResponse",
        Action::UntagQueue => "UntagQueueResponse",
        Action::ListQueueTags => "ListQueueTagsResponse",
        Action::ListDeadLetterSourceQueues => "ListDeadLetterSourceQueuesResponse",
    }
}

/// The `<XResult>` element; actions without output have none.
fn result_tag(response: &Response) -> Option<&'static str> {
    match response {
        Response::CreateQueue { .. } => Some("CreateQueueResult"),
        Response::GetQueueUrl { .. } => Some("GetQueueUrlResult"),
        Response::ListQueues { .. } => Some("ListQueuesResult"),
        Response::GetQueueAttributes { .. } => Some("GetQueueAttributesResult"),
        Response::SendMessage(_) => Some("SendMessageResult"),
        Response::SendMessageBatch(_) => Some("SendMessageBatchResult"),
        Response::ReceiveMessage { .. } => Some("ReceiveMessageResult"),
        Response::DeleteMessageBatch(_) => Some("DeleteMessageBatchResult"),
        Response::ChangeMessageVisibilityBatch(_) => Some("ChangeMessageVisibilityBatchResult"),
        Response::ListQueueTags { .. } => Some("ListQueueTagsResult"),
        Response::ListDeadLetterSourceQueues { .. } => Some("ListDeadLetterSourceQueuesResult"),
        Response::DeleteQueue
        | Response::PurgeQueue
        | Response::SetQueueAttributes
        | Response::DeleteMessage
        | Response::ChangeMessageVisibility
        | Response::TagQueue
        | Response::UntagQueue => None,
    }
}

fn result_body(x: &mut Xml, response: &Response) {
    match response {
        Response::CreateQueue { queue_url } | Response::GetQueueUrl { queue_url } => {
            x.leaf("QueueUrl", queue_url);
        }
        Response::ListQueues {
            queue_urls,
            next_token,
        } => {
            for url in queue_urls {
                x.leaf("QueueUrl", url);
            }
            if let Some(token) = next_token {
                x.leaf("NextToken", token);
            }
        }
        Response::GetQueueAttributes { attributes } => name_values(x, "Attribute", attributes),
        Response::SendMessage(sent) => sent_message(x, sent),
        Response::SendMessageBatch(batch) => {
            for sent in &batch.successful {
                x.open("SendMessageBatchResultEntry").leaf("Id", &sent.id);
                sent_message(x, sent);
                x.close();
            }
            batch_errors(x, &batch.failed);
        }
        Response::ReceiveMessage { messages } => {
            for m in messages {
                received(x, m);
            }
        }
        Response::DeleteMessageBatch(batch) => batch_ids(x, "DeleteMessageBatchResultEntry", batch),
        Response::ChangeMessageVisibilityBatch(batch) => {
            batch_ids(x, "ChangeMessageVisibilityBatchResultEntry", batch)
        }
        Response::ListQueueTags { tags } => {
            for (key, value) in tags {
                x.open("Tag").leaf("Key", key).leaf("Value", value).close();
            }
        }
        Response::ListDeadLetterSourceQueues {
            queue_urls,
            next_token,
        } => {
            for url in queue_urls {
                x.leaf("QueueUrl", url);
            }
            if let Some(token) = next_token {
                x.leaf("NextToken", token);
            }
        }
        Response::DeleteQueue
        | Response::PurgeQueue
        | Response::SetQueueAttributes
        | Response::DeleteMessage
        | Response::ChangeMessageVisibility
        | Response::TagQueue
        | Response::UntagQueue => {}
    }
}

fn name_values(x: &mut Xml, tag: &'static str, pairs: &[(String, String)]) {
    for (name, value) in pairs {
        x.open(tag).leaf("Name", name).leaf("Value", value).close();
    }
}

fn sent_message(x: &mut Xml, sent: &SentMessage) {
    x.leaf("MessageId", &sent.message_id)
        .leaf("MD5OfMessageBody", &sent.md5_of_message_body);
    if let Some(md5) = &sent.md5_of_message_attributes {
        x.leaf("MD5OfMessageAttributes", md5);
    }
    if let Some(n) = &sent.sequence_number {
        x.leaf("SequenceNumber", n);
    }
}

fn batch_ids(x: &mut Xml, tag: &'static str, batch: &BatchResult<String>) {
    for id in &batch.successful {
        x.open(tag).leaf("Id", id).close();
    }
    batch_errors(x, &batch.failed);
}

fn batch_errors(x: &mut Xml, failed: &[BatchError]) {
    for f in failed {
        x.open("BatchResultErrorEntry")
            .leaf("Id", &f.id)
            .leaf("SenderFault", if f.sender_fault { "true" } else { "false" })
            .leaf("Code", f.code.shape())
            .leaf("Message", &f.message)
            .close();
    }
}

fn received(x: &mut Xml, m: &ReceivedMessage) {
    x.open("Message")
        .leaf("MessageId", &m.message_id)
        .leaf("ReceiptHandle", &m.receipt_handle)
        .leaf("MD5OfBody", &m.md5_of_body)
        .leaf("Body", &m.body);
    name_values(x, "Attribute", &m.attributes);
    if let Some(md5) = &m.md5_of_message_attributes {
        x.leaf("MD5OfMessageAttributes", md5);
    }
    for a in &m.message_attributes {
        x.open("MessageAttribute")
            .leaf("Name", &a.name)
            .open("Value");
        match &a.value {
            AttributeValue::String(text) => x.leaf("StringValue", text),
            AttributeValue::Binary(bytes) => x.leaf("BinaryValue", &STANDARD.encode(bytes)),
        };
        x.leaf("DataType", &a.data_type).close().close();
    }
    x.close();
}

/// The XML document of an error.
pub fn encode_error(error: &WireError, request_id: &str) -> Vec<u8> {
    let mut x = Xml::new();
    x.open_ns("ErrorResponse", NAMESPACE)
        .open("Error")
        .leaf("Type", error.code.fault().name())
        .leaf("Code", error.code.query_code())
        .leaf("Message", &error.message)
        .empty("Detail")
        .close()
        .leaf("RequestId", request_id)
        .close();
    x.finish()
}
