//! The topic actions: CreateTopic, DeleteTopic, ListTopics, GetTopicAttributes,
//! SetTopicAttributes, and the tag actions (TagResource, UntagResource,
//! ListTagsForResource), which SNS has for topics only.
//!
//! Topic attributes kept: DisplayName, DeliveryPolicy, SignatureVersion ("1" or "2",
//! the hash the topic's messages are signed with: `sns::signing`; "1" when unset, as in
//! SNS, and always answered), and for FIFO topics ContentBasedDeduplication (FifoTopic
//! is fixed at creation). Policy, encryption,
//! tracing, archive and delivery-status feedback attributes are refused by name: the
//! broker does not honour them, and keeping them would pretend it does.

use super::errors::{self, Cap};
use super::{access, arns, policies, Ctx};
use crate::engine::{SnsTopicChange, SnsTopicMeta};
use crate::sns::signing::{self, SIGNATURE_VERSION};
use peregrine_aws_wire::sns::envelope::SignatureVersion;
use peregrine_aws_wire::sns::errors::{ErrorCode, WireError};
use peregrine_aws_wire::sns::model::{
    CreateTopic, Page, ResourceRef, Response, SetAttribute, TagResource, TopicRef, UntagResource,
    TAGS_MAX,
};
use peregrine_aws_wire::sqs::receipt;
use peregrine_shards::security::{Operation, ResourceType};
use std::collections::BTreeMap;

/// Topics per ListTopics page, as SNS answers.
pub const LIST_TOPICS_PAGE: usize = 100;
/// Longest DisplayName, as SNS allows.
const DISPLAY_NAME_MAX: usize = 100;

pub const DISPLAY_NAME: &str = "DisplayName";
pub const DELIVERY_POLICY: &str = "DeliveryPolicy";
pub const CONTENT_BASED_DEDUPLICATION: &str = "ContentBasedDeduplication";
const FIFO_TOPIC: &str = "FifoTopic";

/// SNS topic attributes the broker does not honour: refused rather than kept.
const NOT_HONOURED: &[&str] = &[
    "Policy",
    "KmsMasterKeyId",
    "TracingConfig",
    "ArchivePolicy",
    "FifoThroughputScope",
    "DataProtectionPolicy",
];

/// CreateTopic: idempotent when the attributes and tags it names match the existing
/// topic's; InvalidParameter when they do not.
pub async fn create(ctx: &Ctx<'_>, req: CreateTopic) -> Result<Response, WireError> {
    let mut attributes = BTreeMap::new();
    for (name, value) in req.attributes {
        if name == FIFO_TOPIC {
            // The wire checked it against the name; the topic keeps it as `fifo`.
            continue;
        }
        check_attribute(&name, &value, req.fifo)?;
        attributes.insert(name, value);
    }
    let topic = ctx
        .engine
        .create_sns_topic(&req.name, req.fifo, attributes, req.tags)
        .await
        .map_err(|e| errors::from_engine(e, Cap::Topics))?;
    Ok(Response::CreateTopic {
        topic_arn: ctx.topic_arn(&topic.name),
    })
}

/// Whether SNS (and the broker) takes `value` for topic attribute `name`.
fn check_attribute(name: &str, value: &str, fifo: bool) -> Result<(), WireError> {
    match name {
        DISPLAY_NAME if value.chars().count() > DISPLAY_NAME_MAX => Err(WireError::invalid(
            format!("DisplayName: at most {DISPLAY_NAME_MAX} characters"),
        )),
        DISPLAY_NAME => Ok(()),
        DELIVERY_POLICY => policies::check_topic_delivery_policy(value),
        SIGNATURE_VERSION => match SignatureVersion::from_name(value) {
            Some(_) => Ok(()),
            None => Err(WireError::invalid("SignatureVersion: must be 1 or 2")),
        },
        CONTENT_BASED_DEDUPLICATION if !fifo => Err(WireError::invalid(
            "ContentBasedDeduplication: only FIFO topics have it",
        )),
        CONTENT_BASED_DEDUPLICATION => match value {
            "true" | "false" => Ok(()),
            _ => Err(WireError::invalid(
                "ContentBasedDeduplication: must be true or false",
            )),
        },
        FIFO_TOPIC => Err(WireError::invalid(
            "FifoTopic: a topic's type is set when it is created",
        )),
        other if NOT_HONOURED.contains(&other) => Err(WireError::invalid(format!(
            "Attributes: {other} is not supported by this broker"
        ))),
        other => Err(WireError::invalid(format!(
            "Attributes: unknown attribute {other}"
        ))),
    }
}

pub async fn delete(ctx: &Ctx<'_>, req: TopicRef) -> Result<Response, WireError> {
    let name = topic_name(ctx, &req.topic_arn)?;
    ctx.engine
        .delete_sns_topic(name)
        .await
        .map_err(|e| errors::from_engine(e, Cap::None))?;
    Ok(Response::DeleteTopic)
}

/// The topic name a TopicArn names (InvalidParameter when it is no topic ARN here).
fn topic_name<'a>(ctx: &Ctx<'_>, arn: &'a str) -> Result<&'a str, WireError> {
    arns::topic_name(arn, ctx.settings())
        .ok_or_else(|| WireError::invalid(format!("TopicArn: {arn:?} is no topic ARN here")))
}

/// ListTopics: pages of 100 in name order; the token is the last name of the page, so a
/// topic created or deleted between pages neither repeats nor hides another.
pub fn list(ctx: &Ctx<'_>, req: Page) -> Result<Response, WireError> {
    let after = after_token(req.next_token.as_deref())?;
    let mut names: Vec<String> = ctx
        .engine
        .sns_topics()
        .into_iter()
        .map(|t| t.name)
        .filter(|name| after.as_ref().is_none_or(|a| name > a))
        // Only the topics the caller may see (with --acls).
        .filter(|name| access::allowed(ctx, Operation::Describe, ResourceType::Exchange, name))
        .collect();
    names.sort_unstable();
    let more = names.len() > LIST_TOPICS_PAGE;
    names.truncate(LIST_TOPICS_PAGE);
    let next_token = match (more, names.last()) {
        (true, Some(last)) => Some(receipt::next_token(last)),
        _ => None,
    };
    Ok(Response::ListTopics {
        topic_arns: names.iter().map(|n| ctx.topic_arn(n)).collect(),
        next_token,
    })
}

/// What a NextToken this broker handed out says: the last entry of the previous page.
pub fn after_token(token: Option<&str>) -> Result<Option<String>, WireError> {
    match token {
        None | Some("") => Ok(None),
        Some(token) => receipt::parse_next_token(token)
            .map(Some)
            .ok_or_else(|| WireError::invalid("NextToken: it is not one this broker handed out")),
    }
}

pub fn get_attributes(ctx: &Ctx<'_>, req: TopicRef) -> Result<Response, WireError> {
    let topic = ctx.topic(&req.topic_arn)?;
    Ok(Response::GetTopicAttributes {
        attributes: attributes(ctx, &topic),
    })
}

/// GetTopicAttributes' answer, in the order SNS answers it.
fn attributes(ctx: &Ctx<'_>, topic: &SnsTopicMeta) -> Vec<(String, String)> {
    let arn = ctx.topic_arn(&topic.name);
    let account = &ctx.settings().account_id;
    let confirmed = topic.subscriptions.values().filter(|s| s.confirmed).count();
    let pending = topic.subscriptions.len() - confirmed;
    let delivery = topic.attributes.get(DELIVERY_POLICY);
    let mut out = vec![
        ("Policy".to_string(), default_policy(&arn, account)),
        ("Owner".to_string(), account.clone()),
        ("SubscriptionsPending".to_string(), pending.to_string()),
        ("TopicArn".to_string(), arn.clone()),
        (
            "EffectiveDeliveryPolicy".to_string(),
            policies::effective_topic_delivery_policy(delivery.map(String::as_str)),
        ),
        ("SubscriptionsConfirmed".to_string(), confirmed.to_string()),
        (
            DISPLAY_NAME.to_string(),
            topic
                .attributes
                .get(DISPLAY_NAME)
                .cloned()
                .unwrap_or_default(),
        ),
        // Unsubscribed subscriptions are gone at once here: none is ever pending deletion.
        ("SubscriptionsDeleted".to_string(), "0".to_string()),
        (
            SIGNATURE_VERSION.to_string(),
            signing::version_of(topic).name().to_string(),
        ),
    ];
    if let Some(policy) = delivery {
        out.push((DELIVERY_POLICY.to_string(), policy.clone()));
    }
    if topic.fifo {
        out.push((FIFO_TOPIC.to_string(), "true".to_string()));
        let content_based = topic
            .attributes
            .get(CONTENT_BASED_DEDUPLICATION)
            .cloned()
            .unwrap_or_else(|| "false".to_string());
        out.push((CONTENT_BASED_DEDUPLICATION.to_string(), content_based));
    }
    out
}

/// The access policy every topic has here: its owner may do everything (the broker
/// checks no policy; with `--http-auth` it checks who signs).
fn default_policy(arn: &str, account: &str) -> String {
    serde_json::json!({
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [{
            "Sid": "__default_statement_ID",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": [
                "SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission",
                "SNS:RemovePermission", "SNS:DeleteTopic", "SNS:Subscribe",
                "SNS:ListSubscriptionsByTopic", "SNS:Publish"
            ],
            "Resource": arn,
            "Condition": {"StringEquals": {"AWS:SourceOwner": account}}
        }]
    })
    .to_string()
}

/// SetTopicAttributes: an absent or empty value removes the attribute.
pub async fn set_attribute(ctx: &Ctx<'_>, req: SetAttribute) -> Result<Response, WireError> {
    let topic = ctx.topic(&req.arn)?;
    let mut change = SnsTopicChange::default();
    match req.value.filter(|v| !v.is_empty()) {
        Some(value) => {
            check_attribute(&req.name, &value, topic.fifo)?;
            change.set_attributes.insert(req.name, value);
        }
        None => {
            // Checked as a set to the default would be: the name must be one we keep.
            let default = match req.name.as_str() {
                CONTENT_BASED_DEDUPLICATION => "false",
                DELIVERY_POLICY => "{}",
                SIGNATURE_VERSION => "1",
                _ => "",
            };
            check_attribute(&req.name, default, topic.fifo)?;
            change.remove_attributes.push(req.name);
        }
    }
    alter(ctx, &topic.name, change).await?;
    Ok(Response::SetTopicAttributes)
}

async fn alter(ctx: &Ctx<'_>, name: &str, change: SnsTopicChange) -> Result<(), WireError> {
    ctx.engine
        .alter_sns_topic(name, change)
        .await
        .map_err(|e| errors::from_engine(e, Cap::None))?;
    Ok(())
}

/// The topic a tag action's ResourceArn names: SNS answers ResourceNotFound (not
/// NotFound) for the tag actions.
fn tagged(ctx: &Ctx<'_>, arn: &str) -> Result<SnsTopicMeta, WireError> {
    let name = topic_name(ctx, arn)?;
    ctx.engine
        .sns_topic(name)
        .ok_or_else(|| errors::resource_not_found(name))
}

pub async fn tag(ctx: &Ctx<'_>, req: TagResource) -> Result<Response, WireError> {
    let topic = tagged(ctx, &req.resource_arn)?;
    let mut after = topic.tags.clone();
    after.extend(req.tags.clone());
    if after.len() > TAGS_MAX {
        return Err(WireError::new(
            ErrorCode::TagLimitExceeded,
            format!("Could not complete request: a topic has at most {TAGS_MAX} tags"),
        ));
    }
    let change = SnsTopicChange {
        set_tags: req.tags,
        ..SnsTopicChange::default()
    };
    alter(ctx, &topic.name, change).await?;
    Ok(Response::TagResource)
}

pub async fn untag(ctx: &Ctx<'_>, req: UntagResource) -> Result<Response, WireError> {
    let topic = tagged(ctx, &req.resource_arn)?;
    let change = SnsTopicChange {
        remove_tags: req.tag_keys,
        ..SnsTopicChange::default()
    };
    alter(ctx, &topic.name, change).await?;
    Ok(Response::UntagResource)
}

pub fn list_tags(ctx: &Ctx<'_>, req: ResourceRef) -> Result<Response, WireError> {
    let topic = tagged(ctx, &req.resource_arn)?;
    Ok(Response::ListTagsForResource {
        tags: topic.tags.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(name: &str, value: &str, fifo: bool) -> Option<ErrorCode> {
        check_attribute(name, value, fifo).err().map(|e| e.code)
    }

    #[test]
    fn kept_attributes_are_checked_and_the_rest_refused_by_name() {
        assert_eq!(code(DISPLAY_NAME, "Orders", false), None);
        assert_eq!(code(DISPLAY_NAME, &"x".repeat(100), false), None);
        assert!(code(DISPLAY_NAME, &"x".repeat(101), false).is_some());
        assert_eq!(code(CONTENT_BASED_DEDUPLICATION, "true", true), None);
        assert!(code(CONTENT_BASED_DEDUPLICATION, "yes", true).is_some());
        assert!(code(CONTENT_BASED_DEDUPLICATION, "true", false).is_some());
        assert!(code(FIFO_TOPIC, "true", true).is_some());
        assert_eq!(code(SIGNATURE_VERSION, "1", false), None);
        assert_eq!(code(SIGNATURE_VERSION, "2", true), None);
        for bad in ["3", "", "v2", "01"] {
            assert!(code(SIGNATURE_VERSION, bad, false).is_some(), "{bad}");
        }
        for refused in NOT_HONOURED.iter().chain(&["Bogus"]) {
            let e = check_attribute(refused, "x", false).err();
            let e = e.map(|e| (e.code, e.message.contains(refused)));
            assert_eq!(e, Some((ErrorCode::InvalidParameter, true)), "{refused}");
        }
    }

    #[test]
    fn tokens_are_ours_or_refused() {
        let token = receipt::next_token("orders");
        assert_eq!(after_token(Some(&token)), Ok(Some("orders".to_string())));
        assert_eq!(after_token(None), Ok(None));
        assert!(after_token(Some("%%%")).is_err());
    }
}
