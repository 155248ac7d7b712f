//! SNS over the query protocol (the only one SNS has): form requests as botocore
//! writes them (`Attributes.entry.N.key/value`, `MessageAttributes.entry.N.Name` +
//! `.Value.DataType/StringValue/BinaryValue`, `PublishBatchRequestEntries.member.N.…`,
//! `Tags.member.N.Key/Value`, `TagKeys.member.N`), answers as
//! `<XResponse xmlns="…/doc/2010-03-31/"><XResult>…</XResult><ResponseMetadata>…`,
//! maps as `<entry><key/><value/></entry>` and lists as `<member>`.
//!
//! Keys this decoder does not know are ignored (`Version`, old SDKs' signature keys).

use std::collections::{BTreeMap, BTreeSet};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use super::errors::{ErrorCode, WireError};
use super::filter::STRING_ARRAY;
use super::model::*;
use crate::form::{Params, PAIRS_MAX};
use crate::sqs::{attributes, valid_batch_id};
use crate::xml::Xml;

/// The namespace of every SNS answer.
pub const NAMESPACE: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// The highest list index read: lists are bounded by their own limits after reading,
/// so that an 11th entry is TooManyEntriesInBatchRequest, not a form error; the form's
/// pair limit bounds how many there can be.
const INDEX_MAX: u32 = PAIRS_MAX as u32;

/// Binary attribute values: the standard alphabet, padded or not (SDKs differ).
const BINARY: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A request's parameters (body and query string together).
pub fn decode(params: &Params) -> Result<Request, WireError> {
    let name = params
        .get("Action")
        .ok_or_else(|| WireError::new(ErrorCode::InvalidAction, "The request has no Action."))?;
    let p = params;
    Ok(match action(name)? {
        Action::CreateTopic => Request::CreateTopic(create_topic(p)?),
        Action::DeleteTopic => Request::DeleteTopic(topic_ref(p)?),
        Action::ListTopics => Request::ListTopics(page(p)),
        Action::GetTopicAttributes => Request::GetTopicAttributes(topic_ref(p)?),
        Action::SetTopicAttributes => Request::SetTopicAttributes(set_attribute(p, "TopicArn")?),
        Action::Subscribe => Request::Subscribe(Subscribe {
            topic_arn: required(p, "TopicArn")?,
            protocol: required(p, "Protocol")?,
            endpoint: string(p, "Endpoint"),
            attributes: entries(p, "Attributes")?,
            return_subscription_arn: p.bool("ReturnSubscriptionArn")?.unwrap_or(false),
        }),
        Action::ConfirmSubscription => Request::ConfirmSubscription(ConfirmSubscription {
            topic_arn: required(p, "TopicArn")?,
            token: required(p, "Token")?,
            authenticate_on_unsubscribe: p.bool("AuthenticateOnUnsubscribe")?.unwrap_or(false),
        }),
        Action::Unsubscribe => Request::Unsubscribe(subscription_ref(p)?),
        Action::ListSubscriptions => Request::ListSubscriptions(page(p)),
        Action::ListSubscriptionsByTopic => {
            Request::ListSubscriptionsByTopic(ListSubscriptionsByTopic {
                topic_arn: required(p, "TopicArn")?,
                next_token: string(p, "NextToken"),
            })
        }
        Action::GetSubscriptionAttributes => {
            Request::GetSubscriptionAttributes(subscription_ref(p)?)
        }
        Action::SetSubscriptionAttributes => {
            Request::SetSubscriptionAttributes(set_attribute(p, "SubscriptionArn")?)
        }
        Action::Publish => Request::Publish(publish(p)?),
        Action::PublishBatch => Request::PublishBatch(publish_batch(p)?),
        Action::TagResource => Request::TagResource(TagResource {
            resource_arn: required(p, "ResourceArn")?,
            tags: tags(p, true)?,
        }),
        Action::UntagResource => Request::UntagResource(untag(p)?),
        Action::ListTagsForResource => Request::ListTagsForResource(ResourceRef {
            resource_arn: required(p, "ResourceArn")?,
        }),
    })
}

/// The action an action name names: one served, one SNS has that this broker does
/// not serve, or none.
fn action(name: &str) -> Result<Action, WireError> {
    if let Some(action) = Action::from_name(name) {
        return Ok(action);
    }
    let message = if UNSUPPORTED_ACTIONS.contains(&name) {
        format!("{name} is not supported by this broker (it serves topics, subscriptions and publishing; not mobile push, SMS or data protection)")
    } else {
        format!("The action or operation {name:?} is not valid for this endpoint.")
    };
    Err(WireError::new(ErrorCode::InvalidAction, message))
}

fn string(params: &Params, key: &str) -> Option<String> {
    params.get(key).map(str::to_owned)
}

/// A required parameter; SNS treats an empty one as absent.
fn required(params: &Params, key: &str) -> Result<String, WireError> {
    params
        .get(key)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| WireError::missing(key))
}

fn topic_ref(params: &Params) -> Result<TopicRef, WireError> {
    Ok(TopicRef {
        topic_arn: required(params, "TopicArn")?,
    })
}

fn subscription_ref(params: &Params) -> Result<SubscriptionRef, WireError> {
    Ok(SubscriptionRef {
        subscription_arn: required(params, "SubscriptionArn")?,
    })
}

fn page(params: &Params) -> Page {
    Page {
        next_token: string(params, "NextToken"),
    }
}

fn set_attribute(params: &Params, arn_key: &str) -> Result<SetAttribute, WireError> {
    Ok(SetAttribute {
        arn: required(params, arn_key)?,
        name: required(params, "AttributeName")?,
        value: string(params, "AttributeValue"),
    })
}

fn create_topic(params: &Params) -> Result<CreateTopic, WireError> {
    let name = required(params, "Name")?;
    check_topic_name(&name)?;
    if params.has("DataProtectionPolicy") {
        return Err(WireError::invalid(
            "DataProtectionPolicy is not supported by this broker",
        ));
    }
    let attributes = entries(params, "Attributes")?;
    let fifo_named = name.ends_with(FIFO_SUFFIX);
    let fifo = attributes
        .get("FifoTopic")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if fifo_named != fifo {
        return Err(WireError::invalid(if fifo {
            "Fifo Topic names must end with .fifo and must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long."
        } else {
            "Topic Name: a name ending in .fifo needs the attribute FifoTopic=true"
        }));
    }
    Ok(CreateTopic {
        name,
        fifo,
        attributes,
        tags: tags(params, false)?,
    })
}

/// A map `prefix.entry.N.key` / `prefix.entry.N.value`; a key given twice is refused.
fn entries(params: &Params, prefix: &str) -> Result<BTreeMap<String, String>, WireError> {
    let members = params.indexed(&format!("{prefix}.entry"), ATTRIBUTES_MAX)?;
    let mut map = BTreeMap::new();
    for (n, member) in members {
        let key = member
            .get("key")
            .ok_or_else(|| WireError::missing(&format!("{prefix}.entry.{n}.key")))?;
        let value = member.get("value").unwrap_or_default();
        if map.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(WireError::invalid(format!(
                "{prefix}: {key} is given more than once"
            )));
        }
    }
    Ok(map)
}

/// `Tags.member.N.Key/Value`: at most `TAGS_MAX`, each `check_tag`, keys distinct.
fn tags(params: &Params, required: bool) -> Result<BTreeMap<String, String>, WireError> {
    let members = params.indexed("Tags.member", INDEX_MAX)?;
    if members.len() > TAGS_MAX {
        return Err(WireError::new(
            ErrorCode::TagLimitExceeded,
            format!(
                "Could not complete request: tag quota of per resource exceeded ({} > {TAGS_MAX})",
                members.len()
            ),
        ));
    }
    if required && members.is_empty() {
        return Err(WireError::missing("Tags"));
    }
    let mut tags = BTreeMap::new();
    for (n, member) in members {
        let key = member
            .get("Key")
            .ok_or_else(|| WireError::missing(&format!("Tags.member.{n}.Key")))?;
        let value = member.get("Value").unwrap_or_default();
        check_tag(key, value)?;
        if tags.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(WireError::invalid(format!(
                "Tags: key {key} is given more than once"
            )));
        }
    }
    Ok(tags)
}

fn untag(params: &Params) -> Result<UntagResource, WireError> {
    let resource_arn = required(params, "ResourceArn")?;
    let tag_keys = params.list("TagKeys.member", INDEX_MAX)?;
    if tag_keys.is_empty() {
        return Err(WireError::missing("TagKeys"));
    }
    if tag_keys.len() > TAGS_MAX {
        return Err(WireError::new(
            ErrorCode::TagLimitExceeded,
            format!("Could not complete request: at most {TAGS_MAX} tag keys"),
        ));
    }
    Ok(UntagResource {
        resource_arn,
        tag_keys,
    })
}

fn publish(params: &Params) -> Result<Publish, WireError> {
    if params.has("PhoneNumber") {
        return Err(WireError::invalid(
            "PhoneNumber: SMS is not supported by this broker; publish to a TopicArn",
        ));
    }
    let topic_arn = match (string(params, "TopicArn"), string(params, "TargetArn")) {
        (Some(arn), None) | (None, Some(arn)) if !arn.is_empty() => arn,
        (Some(_), Some(_)) => {
            return Err(WireError::invalid(
                "Only one of TopicArn and TargetArn may be given",
            ))
        }
        _ => return Err(WireError::missing("TopicArn or TargetArn")),
    };
    let message = publish_entry(params)?;
    check_size(&message)?;
    Ok(Publish { topic_arn, message })
}

/// One message's members (Publish, or a batch entry with its prefix cut off).
fn publish_entry(params: &Params) -> Result<PublishEntry, WireError> {
    let message = params
        .get("Message")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| WireError::invalid("Empty message"))?
        .to_owned();
    let structured = match params.get("MessageStructure") {
        None => false,
        Some("json") => {
            super::record::check_per_protocol(&message)?;
            true
        }
        Some(_) => {
            return Err(WireError::invalid(
                "MessageStructure: the only value is json",
            ))
        }
    };
    let subject = string(params, "Subject");
    if let Some(subject) = &subject {
        check_subject(subject)?;
    }
    Ok(PublishEntry {
        id: string(params, "Id").unwrap_or_default(),
        message,
        structured,
        subject,
        attributes: message_attributes(params)?,
        group_id: string(params, "MessageGroupId"),
        dedup_id: string(params, "MessageDeduplicationId"),
    })
}

/// Subject, as SNS's Publish reference constrains it: UTF-8 text of 1 to 100
/// characters with no line breaks or control characters.
fn check_subject(subject: &str) -> Result<(), WireError> {
    let valid = !subject.is_empty()
        && subject.chars().count() <= SUBJECT_MAX
        && !subject.chars().any(char::is_control);
    if valid {
        Ok(())
    } else {
        Err(WireError::invalid(format!(
            "Subject: 1 to {SUBJECT_MAX} characters, no line breaks or control characters"
        )))
    }
}

/// `MessageAttributes.entry.N.Name/Value.*`, sorted by name, checked by SQS's rules
/// (`sqs::attributes::validate`) and String.Array's.
fn message_attributes(params: &Params) -> Result<Vec<MessageAttribute>, WireError> {
    let mut attrs = Vec::new();
    for (n, member) in params.indexed("MessageAttributes.entry", INDEX_MAX)? {
        let name = member
            .get("Name")
            .ok_or_else(|| WireError::missing(&format!("MessageAttributes.entry.{n}.Name")))?;
        attrs.push(attribute(name, &member)?);
    }
    attributes::validate(&attrs)?;
    for attr in &attrs {
        if attr.data_type == STRING_ARRAY {
            check_string_array(attr)?;
        }
    }
    attrs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(attrs)
}

fn attribute(name: &str, member: &Params) -> Result<MessageAttribute, WireError> {
    let value_error = |what: &str| {
        WireError::new(
            ErrorCode::InvalidParameterValue,
            format!("The message attribute '{name}' {what}"),
        )
    };
    let data_type = member
        .get("Value.DataType")
        .ok_or_else(|| value_error("must contain non-empty message attribute type."))?;
    let value = if data_type.starts_with("Binary") {
        let b64 = member.get("Value.BinaryValue").unwrap_or_default();
        AttributeValue::Binary(
            BINARY
                .decode(b64.as_bytes())
                .map_err(|_| value_error("with type 'Binary' must be base64 encoded."))?,
        )
    } else {
        AttributeValue::String(
            member
                .get("Value.StringValue")
                .unwrap_or_default()
                .to_owned(),
        )
    };
    Ok(MessageAttribute {
        name: name.to_owned(),
        data_type: data_type.to_owned(),
        value,
    })
}

/// A String.Array value: a JSON array of strings, numbers, true, false and null.
fn check_string_array(attr: &MessageAttribute) -> Result<(), WireError> {
    let AttributeValue::String(text) = &attr.value else {
        return Err(invalid_array(attr));
    };
    match serde_json::from_str::<Vec<serde_json::Value>>(text) {
        Ok(items) if items.iter().all(|v| !v.is_array() && !v.is_object()) => Ok(()),
        _ => Err(invalid_array(attr)),
    }
}

fn invalid_array(attr: &MessageAttribute) -> WireError {
    WireError::new(
        ErrorCode::InvalidParameterValue,
        format!(
            "The message attribute '{}' with type 'String.Array' must be a JSON array of strings, numbers, true, false or null.",
            attr.name
        ),
    )
}

fn entry_size(entry: &PublishEntry) -> usize {
    entry.message.len() + attributes::size(&entry.attributes)
}

fn check_size(entry: &PublishEntry) -> Result<(), WireError> {
    let size = entry_size(entry);
    if size > MESSAGE_BYTES_MAX {
        return Err(WireError::invalid(format!(
            "Message too long: {size} bytes with its attributes, at most {MESSAGE_BYTES_MAX}"
        )));
    }
    Ok(())
}

fn publish_batch(params: &Params) -> Result<PublishBatch, WireError> {
    let topic_arn = required(params, "TopicArn")?;
    let members = params.indexed("PublishBatchRequestEntries.member", INDEX_MAX)?;
    check_batch(
        members.iter().map(|(_, m)| m.get("Id").unwrap_or_default()),
        members.len(),
    )?;
    let entries: Vec<Entry<PublishEntry>> = members
        .iter()
        .map(|(_, member)| {
            let id = member.get("Id").unwrap_or_default();
            publish_entry(member)
                .and_then(|e| check_size(&e).map(|()| e))
                .map_err(|error| BatchError::new(id, error))
        })
        .collect();
    let total: usize = entries.iter().flatten().map(entry_size).sum();
    if total > MESSAGE_BYTES_MAX {
        return Err(WireError::new(
            ErrorCode::BatchRequestTooLong,
            format!("The length of all the messages put together is more than the limit: {total} bytes > {MESSAGE_BYTES_MAX}"),
        ));
    }
    Ok(PublishBatch { topic_arn, entries })
}

/// A batch's call-level rules: 1 to `BATCH_ENTRIES_MAX` entries, each id valid, ids
/// distinct.
fn check_batch<'a>(ids: impl Iterator<Item = &'a str>, count: usize) -> Result<(), WireError> {
    if count == 0 {
        return Err(WireError::new(
            ErrorCode::EmptyBatchRequest,
            "The batch request doesn't contain any entries",
        ));
    }
    if count > BATCH_ENTRIES_MAX {
        return Err(WireError::new(
            ErrorCode::TooManyEntriesInBatchRequest,
            format!("The batch request contains more entries than permissible: {count} > {BATCH_ENTRIES_MAX}"),
        ));
    }
    let mut seen = BTreeSet::new();
    for id in ids {
        if !valid_batch_id(id) {
            return Err(WireError::new(
                ErrorCode::InvalidBatchEntryId,
                format!("A batch entry id can only contain alphanumeric characters, hyphens and underscores, 1 to {BATCH_ID_MAX} of them (got {id:?})."),
            ));
        }
        if !seen.insert(id) {
            return Err(WireError::new(
                ErrorCode::BatchEntryIdsNotDistinct,
                format!("Two or more batch entries in the request have the same Id: {id}"),
            ));
        }
    }
    Ok(())
}

/// The XML document of an answer.
pub fn encode(response: &Response, request_id: &str) -> Vec<u8> {
    let action = response.action();
    let mut x = Xml::new();
    x.open_ns(response_tag(action), NAMESPACE);
    result(&mut x, response);
    x.open("ResponseMetadata")
        .leaf("RequestId", request_id)
        .close()
        .close();
    x.finish()
}

fn response_tag(action: Action) -> &'static str {
    match action {
        Action::CreateTopic => "CreateTopicResponse",
        Action::DeleteTopic => "DeleteTopicResponse",
        Action::ListTopics => "ListTopicsResponse",
        Action::GetTopicAttributes => "GetTopicAttributesResponse",
        Action::SetTopicAttributes => "SetTopicAttributesResponse",
        Action::Subscribe => "SubscribeResponse",
        Action::ConfirmSubscription => "ConfirmSubscriptionResponse",
        Action::Unsubscribe => "UnsubscribeResponse",
        Action::ListSubscriptions => "ListSubscriptionsResponse",
        Action::ListSubscriptionsByTopic => "ListSubscriptionsByTopicResponse",
        Action::GetSubscriptionAttributes => "GetSubscriptionAttributesResponse",
        Action::SetSubscriptionAttributes => "SetSubscriptionAttributesResponse",
        Action::Publish => "PublishResponse",
        Action::PublishBatch => "PublishBatchResponse",
        Action::TagResource => "TagResourceResponse",
        Action::UntagResource => "UntagResourceResponse",
        Action::ListTagsForResource => "ListTagsForResourceResponse",
    }
}

/// The `<XResult>` element (actions without output in SNS's model have none).
fn result(x: &mut Xml, response: &Response) {
    match response {
        Response::CreateTopic { topic_arn } => {
            x.open("CreateTopicResult")
                .leaf("TopicArn", topic_arn)
                .close();
        }
        Response::ListTopics {
            topic_arns,
            next_token,
        } => {
            x.open("ListTopicsResult").open("Topics");
            for arn in topic_arns {
                x.open("member").leaf("TopicArn", arn).close();
            }
            x.close();
            token(x, next_token);
            x.close();
        }
        Response::GetTopicAttributes { attributes } => {
            x.open("GetTopicAttributesResult");
            map(x, attributes);
            x.close();
        }
        Response::Subscribe { subscription_arn } => {
            x.open("SubscribeResult")
                .leaf("SubscriptionArn", subscription_arn)
                .close();
        }
        Response::ConfirmSubscription { subscription_arn } => {
            x.open("ConfirmSubscriptionResult")
                .leaf("SubscriptionArn", subscription_arn)
                .close();
        }
        Response::ListSubscriptions {
            subscriptions,
            next_token,
        } => subscription_list(x, "ListSubscriptionsResult", subscriptions, next_token),
        Response::ListSubscriptionsByTopic {
            subscriptions,
            next_token,
        } => subscription_list(
            x,
            "ListSubscriptionsByTopicResult",
            subscriptions,
            next_token,
        ),
        Response::GetSubscriptionAttributes { attributes } => {
            x.open("GetSubscriptionAttributesResult");
            map(x, attributes);
            x.close();
        }
        Response::Publish(published) => {
            x.open("PublishResult");
            published_members(x, published);
            x.close();
        }
        Response::PublishBatch(batch) => publish_batch_result(x, batch),
        Response::TagResource => {
            x.empty("TagResourceResult");
        }
        Response::UntagResource => {
            x.empty("UntagResourceResult");
        }
        Response::ListTagsForResource { tags } => {
            x.open("ListTagsForResourceResult").open("Tags");
            for (key, value) in tags {
                x.open("member")
                    .leaf("Key", key)
                    .leaf("Value", value)
                    .close();
            }
            x.close().close();
        }
        Response::DeleteTopic
        | Response::SetTopicAttributes
        | Response::Unsubscribe
        | Response::SetSubscriptionAttributes => {}
    }
}

fn token(x: &mut Xml, next_token: &Option<String>) {
    if let Some(token) = next_token {
        x.leaf("NextToken", token);
    }
}

fn map(x: &mut Xml, pairs: &[(String, String)]) {
    x.open("Attributes");
    for (key, value) in pairs {
        x.open("entry")
            .leaf("key", key)
            .leaf("value", value)
            .close();
    }
    x.close();
}

fn subscription_list(
    x: &mut Xml,
    tag: &'static str,
    subscriptions: &[SubscriptionSummary],
    next_token: &Option<String>,
) {
    x.open(tag).open("Subscriptions");
    for s in subscriptions {
        x.open("member")
            .leaf("SubscriptionArn", &s.subscription_arn)
            .leaf("Owner", &s.owner)
            .leaf("Protocol", &s.protocol)
            .leaf("Endpoint", &s.endpoint)
            .leaf("TopicArn", &s.topic_arn)
            .close();
    }
    x.close();
    token(x, next_token);
    x.close();
}

fn published_members(x: &mut Xml, published: &Published) {
    x.leaf("MessageId", &published.message_id);
    if let Some(sequence) = &published.sequence_number {
        x.leaf("SequenceNumber", sequence);
    }
}

fn publish_batch_result(x: &mut Xml, batch: &BatchResult<Published>) {
    x.open("PublishBatchResult").open("Successful");
    for published in &batch.successful {
        x.open("member").leaf("Id", &published.id);
        published_members(x, published);
        x.close();
    }
    x.close().open("Failed");
    for f in &batch.failed {
        x.open("member")
            .leaf("Id", &f.id)
            .leaf("Code", f.code.query_code())
            .leaf("Message", &f.message)
            .leaf("SenderFault", if f.sender_fault { "true" } else { "false" })
            .close();
    }
    x.close().close();
}

/// The XML document of an error.
pub fn encode_error(error: &WireError, request_id: &str) -> Vec<u8> {
    let mut x = Xml::new();
    x.open_ns("ErrorResponse", NAMESPACE)
        .open("Error")
        .leaf("Type", error.code.fault().name())
        .leaf("Code", error.code.query_code())
        .leaf("Message", &error.message)
        .close()
        .leaf("RequestId", request_id)
        .close();
    x.finish()
}
