//! SNS topics and their subscriptions as the catalog keeps them.
//!
//! An SNS topic is backed by an engine topic of one partition, `__sns-{id}`, its
//! outbox: a publish is appended there durably and a fan-out worker on that partition's
//! owner delivers each record to the subscriptions. Both are created and removed in the
//! same catalog change (`with_sns_topic`, `without_sns_topic`), so no catalog ever holds
//! an SNS topic without its log. The id is the catalog's next object id, so a topic
//! created again under an old name never reuses the old log.
//!
//! Owned by the controller (shard 0) like the rest of the catalog; every shard holds the
//! snapshot.

use crate::catalog::{Catalog, CatalogError, TopicConfig, TopicMeta};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest SNS topic name (`.fifo` included), as in AWS.
pub const SNS_TOPIC_NAME_MAX: usize = 256;
/// The subscription attribute that marks one confirmed with AuthenticateOnUnsubscribe:
/// only a signed Unsubscribe removes it. Its `:` keeps it out of the names
/// SetSubscriptionAttributes takes.
pub const AUTHENTICATE_ON_UNSUBSCRIBE: &str = "sns:authenticate-on-unsubscribe";
/// Prefix of the engine topics that back SNS topics.
pub const BACKING_TOPIC_PREFIX: &str = "__sns-";
/// Most attributes a topic or a subscription keeps (AWS defines about a dozen each).
pub const SNS_ATTRIBUTES_MAX: usize = 32;
/// Largest attribute value: a filter policy may be 256 KiB in AWS, the largest one.
pub const SNS_ATTRIBUTE_BYTES_MAX: usize = 256 * 1024;
/// Most tags on one topic, as in AWS.
pub const SNS_TAGS_MAX: usize = 50;
/// Longest tag key and value, as in AWS.
pub const SNS_TAG_KEY_MAX: usize = 128;
pub const SNS_TAG_VALUE_MAX: usize = 256;
/// Most removed http(s) subscriptions a topic keeps for restoring (the oldest goes first).
pub const SNS_UNSUBSCRIBED_MAX: usize = 100;
/// Longest subscription endpoint (a URL, an ARN or a topic name).
pub const SNS_ENDPOINT_MAX: usize = 2048;
/// How long a backing log keeps records: far beyond the longest retry schedule of a
/// delivery (AWS's HTTP retries end within an hour) and the 5-minute FIFO window.
pub const BACKING_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// Backing segments are small so that retention frees space in small steps.
pub const BACKING_SEGMENT_BYTES: u64 = 64 << 20;

/// One SNS topic. Its log is the engine topic `backing_topic()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnsTopicMeta {
    pub name: String,
    /// Unique per creation (shared with topic and queue ids).
    pub id: u64,
    pub fifo: bool,
    /// DisplayName, Policy, DeliveryPolicy, ContentBasedDeduplication, ... as the front
    /// end stores them.
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created_ms: i64,
    /// By subscription id (a UUID).
    pub subscriptions: BTreeMap<String, SnsSubscription>,
    /// Confirmed http(s) subscriptions that Unsubscribe removed, oldest first, at most
    /// `SNS_UNSUBSCRIBED_MAX`, each holding the token of its UnsubscribeConfirmation: as
    /// in SNS, ConfirmSubscription with that token restores it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsubscribed: Vec<SnsSubscription>,
}

impl SnsTopicMeta {
    /// The engine topic that holds this topic's published messages.
    pub fn backing_topic(&self) -> String {
        backing_topic(self.id)
    }

    /// The subscription of `protocol` to `endpoint`, if there is one.
    pub fn subscription_to(&self, protocol: &str, endpoint: &str) -> Option<&SnsSubscription> {
        self.subscriptions
            .values()
            .find(|s| s.protocol == protocol && s.endpoint == endpoint)
    }
}

/// The engine topic that backs the SNS topic with this id.
pub fn backing_topic(id: u64) -> String {
    format!("{BACKING_TOPIC_PREFIX}{id}")
}

/// The settings of every backing log: one partition (one worker reads it in order).
pub fn backing_config() -> TopicConfig {
    TopicConfig {
        partitions: 1,
        retention_ms: Some(BACKING_RETENTION_MS),
        retention_bytes: None,
        segment_bytes: BACKING_SEGMENT_BYTES,
        max_message_bytes: None,
    }
}

/// One subscription of an SNS topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnsSubscription {
    /// A UUID; the subscription ARN is `{topic_arn}:{id}`.
    pub id: String,
    /// `sqs`, `http` or `kafka`.
    pub protocol: String,
    /// A queue ARN, a URL, or an engine topic name.
    pub endpoint: String,
    /// RawMessageDelivery, FilterPolicy, FilterPolicyScope, DeliveryPolicy, RedrivePolicy.
    pub attributes: BTreeMap<String, String>,
    /// Deliveries go only to confirmed subscriptions (http ones confirm through their
    /// token; the others are confirmed at once).
    pub confirmed: bool,
    /// The confirmation token of an http subscription (kept after the confirmation, so
    /// a second confirmation answers the same subscription).
    pub token: Option<String>,
    pub created_ms: i64,
}

/// A change to a topic's attributes and tags (SetTopicAttributes, TagResource,
/// UntagResource). Removals apply after the sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnsTopicChange {
    pub set_attributes: BTreeMap<String, String>,
    pub remove_attributes: Vec<String>,
    pub set_tags: BTreeMap<String, String>,
    pub remove_tags: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnsError {
    #[error("sns topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("subscription '{0}' does not exist")]
    UnknownSubscription(String),
    /// Created again with other settings.
    #[error("{0}")]
    Mismatch(String),
    #[error("{0}")]
    Invalid(String),
    /// A cap reached (subscriptions per topic).
    #[error("{0}")]
    Limit(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// SNS topic names: 1 to 256 of `[A-Za-z0-9_-]`, a FIFO topic's ending in `.fifo`
/// (and only a FIFO topic's).
pub fn validate_sns_topic_name(name: &str, fifo: bool) -> Result<(), SnsError> {
    let stem = if fifo {
        name.strip_suffix(".fifo").ok_or_else(|| {
            SnsError::Invalid(format!("FIFO topic name '{name}' must end in '.fifo'"))
        })?
    } else {
        if name.ends_with(".fifo") {
            return Err(SnsError::Invalid(format!(
                "topic name '{name}' ends in '.fifo': only FIFO topics may"
            )));
        }
        name
    };
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if stem.is_empty() || name.len() > SNS_TOPIC_NAME_MAX || !stem.bytes().all(ok) {
        return Err(SnsError::Invalid(format!(
            "invalid topic name '{name}': use 1 to {SNS_TOPIC_NAME_MAX} characters from \
             [A-Za-z0-9_-] (and '.fifo' at the end of a FIFO topic's)"
        )));
    }
    Ok(())
}

fn check_attributes(what: &str, attributes: &BTreeMap<String, String>) -> Result<(), SnsError> {
    if attributes.len() > SNS_ATTRIBUTES_MAX {
        return Err(SnsError::Invalid(format!(
            "{what} would have {} attributes, more than {SNS_ATTRIBUTES_MAX}",
            attributes.len()
        )));
    }
    if let Some((k, v)) = attributes
        .iter()
        .find(|(k, v)| k.len() + v.len() > SNS_ATTRIBUTE_BYTES_MAX)
    {
        return Err(SnsError::Invalid(format!(
            "{what}: attribute '{k}' of {} bytes is over {SNS_ATTRIBUTE_BYTES_MAX} bytes",
            k.len() + v.len()
        )));
    }
    Ok(())
}

fn check_tags(what: &str, tags: &BTreeMap<String, String>) -> Result<(), SnsError> {
    if tags.len() > SNS_TAGS_MAX {
        return Err(SnsError::Invalid(format!(
            "{what} would have {} tags, more than {SNS_TAGS_MAX}",
            tags.len()
        )));
    }
    let bad = tags
        .iter()
        .find(|(k, v)| k.is_empty() || k.len() > SNS_TAG_KEY_MAX || v.len() > SNS_TAG_VALUE_MAX);
    if let Some((k, _)) = bad {
        return Err(SnsError::Invalid(format!(
            "{what}: tag '{k}': keys are 1 to {SNS_TAG_KEY_MAX} characters, values at most \
             {SNS_TAG_VALUE_MAX}"
        )));
    }
    Ok(())
}

/// Whether every entry of `given` is in `held` with the same value.
fn agrees(given: &BTreeMap<String, String>, held: &BTreeMap<String, String>) -> bool {
    given.iter().all(|(k, v)| held.get(k) == Some(v))
}

impl Catalog {
    pub fn sns_topic(&self, name: &str) -> Result<&SnsTopicMeta, SnsError> {
        self.sns
            .get(name)
            .ok_or_else(|| SnsError::UnknownTopic(name.to_string()))
    }

    /// A new catalog with SNS topic `name` and its backing engine topic; `None` when it
    /// exists already and every attribute and tag given has the value it holds (SNS's
    /// CreateTopic answers the existing topic then); `Mismatch` when one differs.
    pub fn with_sns_topic(
        &self,
        name: &str,
        fifo: bool,
        attributes: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
        (nshards, now_ms): (u32, i64),
    ) -> Result<Option<Catalog>, SnsError> {
        validate_sns_topic_name(name, fifo)?;
        check_attributes(&format!("topic '{name}'"), &attributes)?;
        check_tags(&format!("topic '{name}'"), &tags)?;
        if let Some(existing) = self.sns.get(name) {
            if !agrees(&attributes, &existing.attributes) {
                return Err(SnsError::Mismatch(format!(
                    "topic '{name}' already exists with different attributes"
                )));
            }
            if !agrees(&tags, &existing.tags) {
                return Err(SnsError::Mismatch(format!(
                    "topic '{name}' already exists with different tags"
                )));
            }
            return Ok(None);
        }
        let id = self.next_topic_id;
        let config = backing_config();
        // `with_topic` takes the next id for the engine topic itself; ours is the one
        // before, so the backing topic's name is unique even across deletions.
        let mut next = Catalog {
            next_topic_id: id + 1,
            ..self.clone()
        };
        next = next.with_topic(&backing_topic(id), config, nshards, now_ms)?;
        next.sns.insert(
            name.to_string(),
            SnsTopicMeta {
                name: name.to_string(),
                id,
                fifo,
                attributes,
                tags,
                created_ms: now_ms,
                subscriptions: BTreeMap::new(),
                unsubscribed: Vec::new(),
            },
        );
        Ok(Some(next))
    }

    /// A new catalog without SNS topic `name` and its backing topic; `None` when there
    /// is no such topic. Returns the removed topic and its backing topic (when the
    /// catalog still had it).
    pub fn without_sns_topic(
        &self,
        name: &str,
    ) -> Option<(Catalog, SnsTopicMeta, Option<TopicMeta>)> {
        let mut next = self.clone();
        let removed = next.sns.remove(name)?;
        let backing = match next.without_topic(&removed.backing_topic()) {
            Ok((without, meta)) => {
                next = without;
                Some(meta)
            }
            Err(_) => None,
        };
        next.version = self.version + 1;
        Some((next, removed, backing))
    }

    /// A new catalog where every SNS topic has its backing log again (one was deleted
    /// as a plain topic, e.g. by a Kafka client), and the SNS topics that had lost
    /// theirs; `None` when none had. What the lost log held is gone.
    pub fn with_backing_logs(
        &self,
        nshards: u32,
        now_ms: i64,
    ) -> Result<Option<(Catalog, Vec<String>)>, SnsError> {
        let lost: Vec<&SnsTopicMeta> = self
            .sns
            .values()
            .filter(|m| !self.topics.contains_key(&m.backing_topic()))
            .collect();
        if lost.is_empty() {
            return Ok(None);
        }
        let mut next = self.clone();
        for meta in &lost {
            next = next.with_topic(&meta.backing_topic(), backing_config(), nshards, now_ms)?;
        }
        Ok(Some((next, lost.iter().map(|m| m.name.clone()).collect())))
    }

    /// A new catalog with topic `name`'s attributes and tags changed; `None` when the
    /// change changes nothing.
    pub fn with_sns_topic_change(
        &self,
        name: &str,
        change: &SnsTopicChange,
    ) -> Result<Option<Catalog>, SnsError> {
        let mut meta = self.sns_topic(name)?.clone();
        meta.attributes.extend(change.set_attributes.clone());
        meta.tags.extend(change.set_tags.clone());
        for k in &change.remove_attributes {
            meta.attributes.remove(k);
        }
        for k in &change.remove_tags {
            meta.tags.remove(k);
        }
        check_attributes(&format!("topic '{name}'"), &meta.attributes)?;
        check_tags(&format!("topic '{name}'"), &meta.tags)?;
        self.with_sns_meta(meta)
    }

    /// `meta` in place of the topic of its name; `None` when it is the same.
    fn with_sns_meta(&self, meta: SnsTopicMeta) -> Result<Option<Catalog>, SnsError> {
        if self.sns.get(&meta.name) == Some(&meta) {
            return Ok(None);
        }
        let mut next = self.clone();
        next.version += 1;
        next.sns.insert(meta.name.clone(), meta);
        Ok(Some(next))
    }

    /// A new catalog with `sub` added to topic `topic`, and the subscription as it is
    /// then. A subscription of the same protocol to the same endpoint is answered as it
    /// is (catalog `None`) when every attribute given has its value, else `Mismatch`.
    /// `max` bounds the subscriptions of one topic (`Invalid` past it).
    pub fn with_sns_subscription(
        &self,
        topic: &str,
        sub: SnsSubscription,
        max: usize,
    ) -> Result<(Option<Catalog>, SnsSubscription), SnsError> {
        let mut meta = self.sns_topic(topic)?.clone();
        if let Some(existing) = meta.subscription_to(&sub.protocol, &sub.endpoint) {
            if !agrees(&sub.attributes, &existing.attributes) {
                return Err(SnsError::Mismatch(format!(
                    "a subscription of topic '{topic}' to {} endpoint '{}' already exists \
                     with different attributes",
                    sub.protocol, sub.endpoint
                )));
            }
            return Ok((None, existing.clone()));
        }
        if meta.subscriptions.len() >= max {
            return Err(SnsError::Limit(format!(
                "subscription limit reached: topic '{topic}' has {} subscriptions and the cap \
                 is {max} (`peregrine serve --max-sns-subscriptions-per-topic`)",
                meta.subscriptions.len()
            )));
        }
        if sub.endpoint.is_empty() || sub.endpoint.len() > SNS_ENDPOINT_MAX {
            return Err(SnsError::Invalid(format!(
                "an endpoint is 1 to {SNS_ENDPOINT_MAX} bytes, got {}",
                sub.endpoint.len()
            )));
        }
        check_attributes("the subscription", &sub.attributes)?;
        meta.subscriptions.insert(sub.id.clone(), sub.clone());
        Ok((self.with_sns_meta(meta)?, sub))
    }

    /// A new catalog where the subscription of `topic` holding `token` is confirmed
    /// (`None`: it was already), and that subscription.
    /// `authenticated_unsubscribe` (ConfirmSubscription's AuthenticateOnUnsubscribe)
    /// marks the subscription `AUTHENTICATE_ON_UNSUBSCRIBE`; a later confirmation never
    /// takes the mark away. The token of an UnsubscribeConfirmation restores the
    /// subscription it names, unless one to the same endpoint exists again (that one is
    /// answered); `max` bounds the subscriptions as for a Subscribe.
    pub fn with_sns_confirmed(
        &self,
        topic: &str,
        token: &str,
        authenticated_unsubscribe: bool,
        max: usize,
    ) -> Result<(Option<Catalog>, SnsSubscription), SnsError> {
        let mut meta = self.sns_topic(topic)?.clone();
        let held = |s: &SnsSubscription| s.token.as_deref() == Some(token);
        let id = match meta.subscriptions.values().find(|s| held(s)) {
            Some(sub) => sub.id.clone(),
            None => {
                let Some(at) = meta.unsubscribed.iter().position(held) else {
                    return Err(SnsError::Invalid(format!(
                        "no subscription of topic '{topic}' waits for this token"
                    )));
                };
                let removed = meta.unsubscribed.remove(at);
                if let Some(again) = meta.subscription_to(&removed.protocol, &removed.endpoint) {
                    let again = again.clone();
                    return Ok((self.with_sns_meta(meta)?, again));
                }
                if meta.subscriptions.len() >= max {
                    return Err(SnsError::Limit(format!(
                        "subscription limit reached: topic '{topic}' has {} subscriptions and \
                         the cap is {max} (`peregrine serve --max-sns-subscriptions-per-topic`)",
                        meta.subscriptions.len()
                    )));
                }
                let id = removed.id.clone();
                meta.subscriptions.insert(id.clone(), removed);
                id
            }
        };
        let Some(sub) = meta.subscriptions.get_mut(&id) else {
            return Err(SnsError::UnknownSubscription(id));
        };
        sub.confirmed = true;
        if authenticated_unsubscribe {
            sub.attributes
                .insert(AUTHENTICATE_ON_UNSUBSCRIBE.to_string(), "true".to_string());
        }
        let sub = sub.clone();
        Ok((self.with_sns_meta(meta)?, sub))
    }

    /// A new catalog without subscription `id` of `topic`; `None` when there is no
    /// such topic or subscription. A confirmed http(s) subscription is kept aside with
    /// `restore_token` (see `SnsTopicMeta::unsubscribed`).
    pub fn without_sns_subscription(
        &self,
        topic: &str,
        id: &str,
        restore_token: &str,
    ) -> Option<Catalog> {
        let mut meta = self.sns.get(topic)?.clone();
        let mut sub = meta.subscriptions.remove(id)?;
        if sub.confirmed && matches!(sub.protocol.as_str(), "http" | "https") {
            sub.confirmed = false;
            sub.token = Some(restore_token.to_string());
            meta.unsubscribed.push(sub);
            if meta.unsubscribed.len() > SNS_UNSUBSCRIBED_MAX {
                meta.unsubscribed.remove(0);
            }
        }
        self.with_sns_meta(meta).ok().flatten()
    }

    /// A new catalog with attribute `key` of subscription `id` set to `value` (an empty
    /// value removes it), and the subscription then; `None`: nothing changed.
    pub fn with_sns_subscription_attribute(
        &self,
        topic: &str,
        id: &str,
        (key, value): (&str, String),
    ) -> Result<(Option<Catalog>, SnsSubscription), SnsError> {
        let mut meta = self.sns_topic(topic)?.clone();
        let sub = meta
            .subscriptions
            .get_mut(id)
            .ok_or_else(|| SnsError::UnknownSubscription(id.to_string()))?;
        if value.is_empty() {
            sub.attributes.remove(key);
        } else {
            sub.attributes.insert(key.to_string(), value);
        }
        check_attributes("the subscription", &sub.attributes)?;
        let sub = sub.clone();
        Ok((self.with_sns_meta(meta)?, sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn created(c: &Catalog, name: &str, a: &[(&str, &str)]) -> Catalog {
        c.with_sns_topic(name, false, attrs(a), attrs(&[]), (2, 0))
            .expect("valid")
            .expect("new")
    }

    fn sub(id: &str, protocol: &str, endpoint: &str) -> SnsSubscription {
        SnsSubscription {
            id: id.into(),
            protocol: protocol.into(),
            endpoint: endpoint.into(),
            attributes: BTreeMap::new(),
            confirmed: protocol != "http",
            token: (protocol == "http").then(|| "tok".to_string()),
            created_ms: 0,
        }
    }

    #[test]
    fn a_topic_comes_and_goes_with_its_backing_log() {
        let c = created(&Catalog::default(), "orders", &[("DisplayName", "o")]);
        let meta = c.sns_topic("orders").expect("exists").clone();
        assert_eq!(meta.backing_topic(), format!("__sns-{}", meta.id));
        let log = c.topic(&meta.backing_topic()).expect("backing topic");
        assert_eq!(log.config.partitions, 1);
        assert_ne!(log.id, meta.id, "ids are never shared");
        // Same attributes (or fewer): the same topic; another value: refused.
        let same = c.with_sns_topic("orders", false, attrs(&[]), attrs(&[]), (2, 0));
        assert_eq!(same, Ok(None));
        let other = c.with_sns_topic(
            "orders",
            false,
            attrs(&[("DisplayName", "x")]),
            attrs(&[]),
            (2, 0),
        );
        assert!(matches!(other, Err(SnsError::Mismatch(_))));
        let (gone, removed, backing) = c.without_sns_topic("orders").expect("removed");
        assert_eq!(removed.id, meta.id);
        assert!(backing.is_some());
        assert!(gone.sns.is_empty() && gone.topics.is_empty());
        assert!(gone.without_sns_topic("orders").is_none());
        // Created again: a new id, so a new log.
        let again = created(&gone, "orders", &[]);
        assert_ne!(again.sns_topic("orders").expect("exists").id, meta.id);
    }

    #[test]
    fn a_lost_backing_log_is_made_again() {
        let c = created(&Catalog::default(), "t", &[]);
        assert_eq!(c.with_backing_logs(2, 0), Ok(None));
        let log = c.sns_topic("t").expect("t").backing_topic();
        let (lost, _) = c.without_topic(&log).expect("deleted as a plain topic");
        let (again, names) = lost
            .with_backing_logs(2, 0)
            .expect("valid")
            .expect("repaired");
        assert_eq!(names, ["t"]);
        assert!(again.topic(&log).is_ok());
        assert!(again.version > lost.version);
    }

    #[test]
    fn names_follow_sns_rules_and_fifo_goes_with_the_suffix() {
        for (name, fifo) in [("a", false), ("A_b-9", false), ("x.fifo", true)] {
            validate_sns_topic_name(name, fifo).expect(name);
        }
        let long = "n".repeat(SNS_TOPIC_NAME_MAX + 1);
        for (name, fifo) in [
            ("", false),
            ("a.b", false),
            ("x.fifo", false),
            ("x", true),
            (".fifo", true),
            (long.as_str(), false),
        ] {
            assert!(validate_sns_topic_name(name, fifo).is_err(), "{name}");
        }
    }

    #[test]
    fn subscriptions_are_idempotent_bounded_and_confirmed_by_token() {
        let c = created(&Catalog::default(), "t", &[]);
        let (next, s) = c
            .with_sns_subscription("t", sub("1", "http", "http://h/"), 2)
            .expect("first");
        let c = next.expect("changed");
        assert!(!s.confirmed);
        let (same, again) = c
            .with_sns_subscription("t", sub("2", "http", "http://h/"), 2)
            .expect("same endpoint");
        assert!(same.is_none());
        assert_eq!(again.id, "1");
        let c = c
            .with_sns_subscription("t", sub("3", "sqs", "arn:q"), 2)
            .expect("second")
            .0
            .expect("changed");
        let over = c.with_sns_subscription("t", sub("4", "sqs", "arn:r"), 2);
        assert!(
            matches!(over, Err(SnsError::Limit(m)) if m.contains("--max-sns-subscriptions-per-topic"))
        );
        assert!(c.with_sns_confirmed("t", "nope", false, 2).is_err());
        let (next, s) = c
            .with_sns_confirmed("t", "tok", false, 2)
            .expect("known token");
        assert!(s.confirmed && next.is_some());
        let c = next.expect("changed");
        assert!(c
            .with_sns_confirmed("t", "tok", false, 2)
            .expect("again")
            .0
            .is_none());
        let (marked, s) = c.with_sns_confirmed("t", "tok", true, 2).expect("marked");
        assert_eq!(
            s.attributes
                .get(AUTHENTICATE_ON_UNSUBSCRIBE)
                .map(String::as_str),
            Some("true")
        );
        let c = marked.expect("changed");
        let (same, s) = c.with_sns_confirmed("t", "tok", false, 2).expect("again");
        assert!(same.is_none() && s.attributes.contains_key(AUTHENTICATE_ON_UNSUBSCRIBE));
        let (next, s) = c
            .with_sns_subscription_attribute("t", "3", ("RawMessageDelivery", "true".into()))
            .expect("set");
        assert_eq!(
            s.attributes.get("RawMessageDelivery").map(String::as_str),
            Some("true")
        );
        let c = next.expect("changed");
        let c = c.without_sns_subscription("t", "3", "r3").expect("removed");
        assert!(c.without_sns_subscription("t", "3", "r3").is_none());
        assert_eq!(c.sns_topic("t").expect("topic").subscriptions.len(), 1);
    }

    #[test]
    fn an_unsubscribed_http_subscription_is_restored_by_its_token_and_bounded() {
        let c = created(&Catalog::default(), "t", &[]);
        let c = c
            .with_sns_subscription("t", sub("1", "http", "http://h/"), 2)
            .expect("new")
            .0
            .expect("changed");
        let c = c
            .with_sns_confirmed("t", "tok", true, 2)
            .expect("ok")
            .0
            .expect("changed");
        let c = c
            .without_sns_subscription("t", "1", "back")
            .expect("removed");
        let meta = c.sns_topic("t").expect("topic");
        assert!(meta.subscriptions.is_empty());
        assert_eq!(meta.unsubscribed.len(), 1);
        assert!(
            c.with_sns_confirmed("t", "tok", false, 2).is_err(),
            "the old token"
        );
        // Restored under its id, confirmed, with its attributes; the token is spent.
        let (next, s) = c
            .with_sns_confirmed("t", "back", false, 2)
            .expect("restored");
        let c = next.expect("changed");
        assert_eq!(s.id, "1");
        assert!(s.confirmed && s.attributes.contains_key(AUTHENTICATE_ON_UNSUBSCRIBE));
        assert!(c.sns_topic("t").expect("topic").unsubscribed.is_empty());
        let (same, _) = c.with_sns_confirmed("t", "back", false, 2).expect("again");
        assert!(same.is_none());
        // Subscribed again meanwhile: the restore answers that subscription.
        let c = c
            .without_sns_subscription("t", "1", "back2")
            .expect("removed");
        let mut fresh = sub("9", "http", "http://h/");
        fresh.token = Some("tok9".into());
        let c = c
            .with_sns_subscription("t", fresh, 2)
            .expect("new")
            .0
            .expect("changed");
        let (_, s) = c
            .with_sns_confirmed("t", "back2", false, 2)
            .expect("answered");
        assert_eq!(s.id, "9");
        // Queues are not kept aside; the list is bounded.
        let mut c = c
            .with_sns_subscription("t", sub("q", "sqs", "arn:q"), 2)
            .expect("queue")
            .0
            .expect("changed");
        c = c.without_sns_subscription("t", "q", "x").expect("removed");
        assert!(c
            .sns_topic("t")
            .expect("topic")
            .unsubscribed
            .iter()
            .all(|s| s.id != "q"));
        for i in 0..=SNS_UNSUBSCRIBED_MAX {
            let mut s = sub(&format!("h{i}"), "http", &format!("http://h/{i}"));
            s.confirmed = true;
            c = c
                .with_sns_subscription("t", s, 2)
                .expect("new")
                .0
                .expect("changed");
            c = c
                .without_sns_subscription("t", &format!("h{i}"), &format!("r{i}"))
                .expect("removed");
        }
        let kept = &c.sns_topic("t").expect("topic").unsubscribed;
        assert_eq!(kept.len(), SNS_UNSUBSCRIBED_MAX);
        assert_eq!(kept.last().map(|s| s.id.as_str()), Some("h100"));
        assert!(kept.iter().all(|s| s.id != "h0"), "the oldest went first");
    }

    #[test]
    fn attributes_and_tags_are_bounded() {
        let c = created(&Catalog::default(), "t", &[]);
        let mut change = SnsTopicChange::default();
        for i in 0..=SNS_TAGS_MAX {
            change.set_tags.insert(format!("k{i}"), "v".into());
        }
        assert!(c.with_sns_topic_change("t", &change).is_err());
        change.set_tags.clear();
        change
            .set_attributes
            .insert("Policy".into(), "p".repeat(SNS_ATTRIBUTE_BYTES_MAX));
        assert!(c.with_sns_topic_change("t", &change).is_err());
        change.set_attributes.insert("Policy".into(), "p".into());
        change.remove_tags.push("none".into());
        let next = c
            .with_sns_topic_change("t", &change)
            .expect("valid")
            .expect("changed");
        assert_eq!(
            next.sns_topic("t")
                .expect("t")
                .attributes
                .get("Policy")
                .map(String::as_str),
            Some("p")
        );
        assert_eq!(next.with_sns_topic_change("t", &change), Ok(None));
    }
}
