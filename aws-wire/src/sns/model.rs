//! The SNS API (2010-03-31) as data: the actions served, each request and answer, and
//! the limits SNS documents. `query` decodes into and encodes from these types.
//!
//! Message attributes are SQS's type (`sqs::MessageAttribute`): SNS has the same names,
//! the same base types and the same value rules, plus `String.Array` (a JSON array in a
//! string value), which `query` checks.

use std::collections::BTreeMap;

use super::errors::{ErrorCode, WireError};
pub use crate::sqs::{AttributeValue, MessageAttribute};

/// Most entries in one PublishBatch.
pub const BATCH_ENTRIES_MAX: usize = 10;
/// Longest batch entry id (SNS's rule is SQS's: `sqs::valid_batch_id`).
pub const BATCH_ID_MAX: usize = crate::sqs::BATCH_ID_MAX;
/// Largest message, attributes (names, types, values) included; also the largest
/// PublishBatch, all entries together.
pub const MESSAGE_BYTES_MAX: usize = 262_144;
/// Longest Subject, in characters.
pub const SUBJECT_MAX: usize = 100;
/// Longest topic name, `.fifo` included.
pub const TOPIC_NAME_MAX: usize = 256;
/// Most message attributes on one message (what SQS, the main target, can carry; a
/// publish with more is refused rather than losing some on the way).
pub const MESSAGE_ATTRIBUTES_MAX: usize = crate::sqs::MESSAGE_ATTRIBUTES_MAX;
/// Most topic or subscription attributes in one CreateTopic or Subscribe (SNS has
/// about 20 names).
pub const ATTRIBUTES_MAX: u32 = 64;
/// Most tags on one resource, and in one TagResource/UntagResource/CreateTopic.
pub const TAGS_MAX: usize = 50;
/// Longest tag key (at least 1 byte).
pub const TAG_KEY_MAX: usize = 128;
/// Longest tag value (may be empty).
pub const TAG_VALUE_MAX: usize = 256;
/// The suffix of a FIFO topic's name.
pub const FIFO_SUFFIX: &str = ".fifo";

/// The actions served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CreateTopic,
    DeleteTopic,
    ListTopics,
    GetTopicAttributes,
    SetTopicAttributes,
    Subscribe,
    ConfirmSubscription,
    Unsubscribe,
    ListSubscriptions,
    ListSubscriptionsByTopic,
    GetSubscriptionAttributes,
    SetSubscriptionAttributes,
    Publish,
    PublishBatch,
    TagResource,
    UntagResource,
    ListTagsForResource,
}

impl Action {
    pub const ALL: [Action; 17] = [
        Action::CreateTopic,
        Action::DeleteTopic,
        Action::ListTopics,
        Action::GetTopicAttributes,
        Action::SetTopicAttributes,
        Action::Subscribe,
        Action::ConfirmSubscription,
        Action::Unsubscribe,
        Action::ListSubscriptions,
        Action::ListSubscriptionsByTopic,
        Action::GetSubscriptionAttributes,
        Action::SetSubscriptionAttributes,
        Action::Publish,
        Action::PublishBatch,
        Action::TagResource,
        Action::UntagResource,
        Action::ListTagsForResource,
    ];

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::CreateTopic => "CreateTopic",
            Action::DeleteTopic => "DeleteTopic",
            Action::ListTopics => "ListTopics",
            Action::GetTopicAttributes => "GetTopicAttributes",
            Action::SetTopicAttributes => "SetTopicAttributes",
            Action::Subscribe => "Subscribe",
            Action::ConfirmSubscription => "ConfirmSubscription",
            Action::Unsubscribe => "Unsubscribe",
            Action::ListSubscriptions => "ListSubscriptions",
            Action::ListSubscriptionsByTopic => "ListSubscriptionsByTopic",
            Action::GetSubscriptionAttributes => "GetSubscriptionAttributes",
            Action::SetSubscriptionAttributes => "SetSubscriptionAttributes",
            Action::Publish => "Publish",
            Action::PublishBatch => "PublishBatch",
            Action::TagResource => "TagResource",
            Action::UntagResource => "UntagResource",
            Action::ListTagsForResource => "ListTagsForResource",
        }
    }
}

/// SNS actions this broker does not serve (mobile push, SMS, data protection): they
/// are answered InvalidAction saying so, rather than as a typo. `AddPermission` and
/// `RemovePermission` are left out: SQS has them too, and they route to SQS.
pub const UNSUPPORTED_ACTIONS: &[&str] = &[
    "CheckIfPhoneNumberIsOptedOut",
    "CreatePlatformApplication",
    "CreatePlatformEndpoint",
    "CreateSMSSandboxPhoneNumber",
    "DeleteEndpoint",
    "DeletePlatformApplication",
    "DeleteSMSSandboxPhoneNumber",
    "GetDataProtectionPolicy",
    "GetEndpointAttributes",
    "GetPlatformApplicationAttributes",
    "GetSMSAttributes",
    "GetSMSSandboxAccountStatus",
    "ListEndpointsByPlatformApplication",
    "ListOriginationNumbers",
    "ListPhoneNumbersOptedOut",
    "ListPlatformApplications",
    "ListSMSSandboxPhoneNumbers",
    "OptInPhoneNumber",
    "PutDataProtectionPolicy",
    "SetEndpointAttributes",
    "SetPlatformApplicationAttributes",
    "SetSMSAttributes",
    "VerifySMSSandboxPhoneNumber",
];

/// Whether a query request's `Action` is SNS's (served or not), for routing a form
/// request between SQS and SNS: no SQS action has one of these names.
pub fn is_sns_action(name: &str) -> bool {
    Action::from_name(name).is_some() || UNSUPPORTED_ACTIONS.contains(&name)
}

/// A failed batch entry, as the answer lists it.
pub type BatchError = crate::batch::BatchError<ErrorCode>;

impl BatchError {
    pub fn new(id: &str, error: WireError) -> BatchError {
        BatchError {
            id: id.to_owned(),
            sender_fault: error.code.fault() == crate::sqs::Fault::Sender,
            code: error.code,
            message: error.message,
        }
    }
}

/// A batch entry as decoded: valid, or already failed (the call goes on for the rest).
pub type Entry<T> = Result<T, BatchError>;

/// What a batch answers: the entries that succeeded and those that failed.
pub type BatchResult<T> = crate::batch::BatchResult<T, ErrorCode>;

/// A decoded request, checked against what is pure wire (shapes, limits, names);
/// whether a topic exists and what its attributes mean is the front end's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    CreateTopic(CreateTopic),
    DeleteTopic(TopicRef),
    ListTopics(Page),
    GetTopicAttributes(TopicRef),
    SetTopicAttributes(SetAttribute),
    Subscribe(Subscribe),
    ConfirmSubscription(ConfirmSubscription),
    Unsubscribe(SubscriptionRef),
    ListSubscriptions(Page),
    ListSubscriptionsByTopic(ListSubscriptionsByTopic),
    GetSubscriptionAttributes(SubscriptionRef),
    SetSubscriptionAttributes(SetAttribute),
    Publish(Publish),
    PublishBatch(PublishBatch),
    TagResource(TagResource),
    UntagResource(UntagResource),
    ListTagsForResource(ResourceRef),
}

impl Request {
    pub fn action(&self) -> Action {
        match self {
            Request::CreateTopic(_) => Action::CreateTopic,
            Request::DeleteTopic(_) => Action::DeleteTopic,
            Request::ListTopics(_) => Action::ListTopics,
            Request::GetTopicAttributes(_) => Action::GetTopicAttributes,
            Request::SetTopicAttributes(_) => Action::SetTopicAttributes,
            Request::Subscribe(_) => Action::Subscribe,
            Request::ConfirmSubscription(_) => Action::ConfirmSubscription,
            Request::Unsubscribe(_) => Action::Unsubscribe,
            Request::ListSubscriptions(_) => Action::ListSubscriptions,
            Request::ListSubscriptionsByTopic(_) => Action::ListSubscriptionsByTopic,
            Request::GetSubscriptionAttributes(_) => Action::GetSubscriptionAttributes,
            Request::SetSubscriptionAttributes(_) => Action::SetSubscriptionAttributes,
            Request::Publish(_) => Action::Publish,
            Request::PublishBatch(_) => Action::PublishBatch,
            Request::TagResource(_) => Action::TagResource,
            Request::UntagResource(_) => Action::UntagResource,
            Request::ListTagsForResource(_) => Action::ListTagsForResource,
        }
    }
}

/// CreateTopic: the name is checked (`check_topic_name`), and `.fifo` goes with
/// `FifoTopic=true` both ways; `fifo` says which it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopic {
    pub name: String,
    pub fifo: bool,
    /// Topic attribute name → value, as sent (FifoTopic included; names not checked).
    pub attributes: BTreeMap<String, String>,
    /// Checked: at most `TAGS_MAX`, keys 1..=128 and values ..=256 bytes, distinct keys.
    pub tags: BTreeMap<String, String>,
}

/// DeleteTopic, GetTopicAttributes: the topic's ARN as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRef {
    pub topic_arn: String,
}

/// Unsubscribe, GetSubscriptionAttributes: the subscription's ARN as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRef {
    pub subscription_arn: String,
}

/// ListTagsForResource: the ARN as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    pub resource_arn: String,
}

/// ListTopics, ListSubscriptions: the page token as sent (the front end makes and
/// reads its tokens, e.g. with `sqs::receipt::next_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSubscriptionsByTopic {
    pub topic_arn: String,
    pub next_token: Option<String>,
}

/// SetTopicAttributes (`arn` = TopicArn) and SetSubscriptionAttributes (`arn` =
/// SubscriptionArn). `value` is None when AttributeValue is not sent (SNS then
/// resets the attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAttribute {
    pub arn: String,
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub topic_arn: String,
    /// As sent (`sqs`, `http`, …): the front end says which it serves.
    pub protocol: String,
    pub endpoint: Option<String>,
    /// Subscription attribute name → value, as sent.
    pub attributes: BTreeMap<String, String>,
    pub return_subscription_arn: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmSubscription {
    pub topic_arn: String,
    pub token: String,
    /// AuthenticateOnUnsubscribe=true (kept as ConfirmationWasAuthenticated).
    pub authenticate_on_unsubscribe: bool,
}

/// Publish: `topic_arn` is TopicArn or TargetArn (the one given; both is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic_arn: String,
    /// `id` is "".
    pub message: PublishEntry,
}

/// One message to publish, checked: Message non-empty, Subject 1..=100 characters
/// without line breaks or control characters, attributes valid (SQS's rules, ≤ `MESSAGE_ATTRIBUTES_MAX`,
/// String.Array a JSON array), message + attributes ≤ `MESSAGE_BYTES_MAX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishEntry {
    pub id: String,
    pub message: String,
    /// `MessageStructure=json`: `message` is a JSON object of one message per protocol
    /// (`default` for the others), checked (`record::per_protocol`).
    pub structured: bool,
    pub subject: Option<String>,
    /// Sorted by name.
    pub attributes: Vec<MessageAttribute>,
    /// MessageGroupId as sent (FIFO rules are the front end's: it knows the topic).
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishBatch {
    pub topic_arn: String,
    pub entries: Vec<Entry<PublishEntry>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagResource {
    pub resource_arn: String,
    /// Checked as CreateTopic's tags; at least one.
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntagResource {
    pub resource_arn: String,
    /// At least one, at most `TAGS_MAX`.
    pub tag_keys: Vec<String>,
}

/// An answer: one variant per action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    CreateTopic {
        topic_arn: String,
    },
    DeleteTopic,
    ListTopics {
        topic_arns: Vec<String>,
        next_token: Option<String>,
    },
    /// Answered in this order.
    GetTopicAttributes {
        attributes: Vec<(String, String)>,
    },
    SetTopicAttributes,
    /// `subscription_arn` is "pending confirmation" for an unconfirmed http one unless
    /// ReturnSubscriptionArn was set (the front end's choice).
    Subscribe {
        subscription_arn: String,
    },
    ConfirmSubscription {
        subscription_arn: String,
    },
    Unsubscribe,
    ListSubscriptions {
        subscriptions: Vec<SubscriptionSummary>,
        next_token: Option<String>,
    },
    ListSubscriptionsByTopic {
        subscriptions: Vec<SubscriptionSummary>,
        next_token: Option<String>,
    },
    GetSubscriptionAttributes {
        attributes: Vec<(String, String)>,
    },
    SetSubscriptionAttributes,
    Publish(Published),
    PublishBatch(BatchResult<Published>),
    TagResource,
    UntagResource,
    ListTagsForResource {
        tags: Vec<(String, String)>,
    },
}

impl Response {
    pub fn action(&self) -> Action {
        match self {
            Response::CreateTopic { .. } => Action::CreateTopic,
            Response::DeleteTopic => Action::DeleteTopic,
            Response::ListTopics { .. } => Action::ListTopics,
            Response::GetTopicAttributes { .. } => Action::GetTopicAttributes,
            Response::SetTopicAttributes => Action::SetTopicAttributes,
            Response::Subscribe { .. } => Action::Subscribe,
            Response::ConfirmSubscription { .. } => Action::ConfirmSubscription,
            Response::Unsubscribe => Action::Unsubscribe,
            Response::ListSubscriptions { .. } => Action::ListSubscriptions,
            Response::ListSubscriptionsByTopic { .. } => Action::ListSubscriptionsByTopic,
            Response::GetSubscriptionAttributes { .. } => Action::GetSubscriptionAttributes,
            Response::SetSubscriptionAttributes => Action::SetSubscriptionAttributes,
            Response::Publish(_) => Action::Publish,
            Response::PublishBatch(_) => Action::PublishBatch,
            Response::TagResource => Action::TagResource,
            Response::UntagResource => Action::UntagResource,
            Response::ListTagsForResource { .. } => Action::ListTagsForResource,
        }
    }
}

/// One row of ListSubscriptions(ByTopic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSummary {
    /// The ARN, or "PendingConfirmation" for an unconfirmed one (as SNS lists them).
    pub subscription_arn: String,
    pub owner: String,
    pub protocol: String,
    pub endpoint: String,
    pub topic_arn: String,
}

/// A published message: `id` is the batch entry's ("" for Publish); `sequence_number`
/// only on FIFO topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    pub message_id: String,
    pub sequence_number: Option<String>,
}

/// A topic name SNS accepts: 1..=256 of `[A-Za-z0-9_-]`, the last 5 of them may be
/// `.fifo` (a FIFO topic's).
pub fn check_topic_name(name: &str) -> Result<(), WireError> {
    let stem = name.strip_suffix(FIFO_SUFFIX).unwrap_or(name);
    let valid = !stem.is_empty()
        && name.len() <= TOPIC_NAME_MAX
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(WireError::invalid(format!(
            "Topic Name: {name:?} must be 1 to {TOPIC_NAME_MAX} of A-Z a-z 0-9 _ -, ending in .fifo for a FIFO topic"
        )))
    }
}

/// A tag SNS accepts: key 1..=128 bytes, value at most 256.
pub fn check_tag(key: &str, value: &str) -> Result<(), WireError> {
    if key.is_empty() || key.len() > TAG_KEY_MAX {
        return Err(WireError::invalid(format!(
            "Tag key {key:?} must be 1 to {TAG_KEY_MAX} bytes"
        )));
    }
    if value.len() > TAG_VALUE_MAX {
        return Err(WireError::invalid(format!(
            "Tag value for {key:?} must be at most {TAG_VALUE_MAX} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip_and_route() {
        for action in Action::ALL {
            assert_eq!(Action::from_name(action.name()), Some(action));
            assert!(is_sns_action(action.name()));
        }
        assert!(is_sns_action("CreatePlatformEndpoint"));
        for sqs in crate::sqs::Action::ALL {
            assert!(!is_sns_action(sqs.name()), "{}", sqs.name());
        }
        for sqs in crate::sqs::UNSUPPORTED_ACTIONS {
            assert!(!is_sns_action(sqs), "{sqs}");
        }
        assert!(!is_sns_action("createtopic"));
    }

    #[test]
    fn topic_names() {
        for good in ["a", "orders", "A-b_9", "x.fifo"] {
            assert!(check_topic_name(good).is_ok(), "{good}");
        }
        assert!(check_topic_name(&"n".repeat(256)).is_ok());
        assert!(check_topic_name(&format!("{}.fifo", "n".repeat(251))).is_ok());
        for bad in ["", ".fifo", "a.b", "a b", "é", "x.fifo.fifo"] {
            assert!(check_topic_name(bad).is_err(), "{bad}");
        }
        assert!(check_topic_name(&"n".repeat(257)).is_err());
        assert!(check_topic_name(&format!("{}.fifo", "n".repeat(252))).is_err());
    }

    #[test]
    fn tags() {
        assert!(check_tag("k", "").is_ok());
        assert!(check_tag(&"k".repeat(128), &"v".repeat(256)).is_ok());
        assert!(check_tag("", "v").is_err());
        assert!(check_tag(&"k".repeat(129), "v").is_err());
        assert!(check_tag("k", &"v".repeat(257)).is_err());
    }
}
