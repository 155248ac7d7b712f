//! One stored SNS message on its way to one subscription: the body it gets (the raw
//! message, or the JSON Notification), and delivery to an SQS queue or a Kafka topic.
//! HTTP endpoints are `http_delivery`'s, driven by the worker.
//!
//! A redelivery after a crash (the worker resumes from its committed cursor) carries
//! the same origin key `sns:{log id}/{offset}/{subscription}` (the log's own id, new if
//! the log is ever made again, so its offsets never collide): a queue keeps the copy
//! it has (it remembers origins for an hour, `ORIGIN_WINDOW_MS`); a Kafka record carries
//! it in its `x-origin` header, and a record the worker may have delivered before a
//! restart is first looked for in the target partition from its publish time (as
//! `exchanges::publish_once` does for dead letters). HTTP endpoints may get a message
//! twice (SNS is at-least-once there too).

use super::signing::{self, Signer};
use crate::config::SqsSettings;
use crate::engine::{
    sns_message_id, sns_sequence_number, Acks, Engine, EngineError, PublishSpec, SnsSubscription,
    SnsTopicMeta,
};
use bytes::{Bytes, BytesMut};
use peregrine_aws_wire::sns::envelope::{self, Notification, Signature};
use peregrine_aws_wire::sns::record::{self, Stored};
use peregrine_aws_wire::sqs::attributes::to_headers;
use peregrine_aws_wire::sqs::fifo;
use peregrine_shards::records::BatchBuilder;

/// The header that names a Kafka record's origin (as dead letters moved to a topic).
pub const ORIGIN_HEADER: &str = "x-origin";

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It may work later (a full queue, a shard shutting down): try the record again.
    Retry(String),
    /// It never will (the queue or topic is gone, the message does not fit): skip it.
    Skip(String),
}

/// One record for one subscription.
pub struct Delivery<'a> {
    pub topic: &'a SnsTopicMeta,
    pub topic_arn: &'a str,
    pub sub: &'a SnsSubscription,
    /// The id of the backing log (its incarnation) the record was read from.
    pub log_id: u64,
    /// An earlier run of the worker may have delivered it (it was in the log when this
    /// run started).
    pub replayed: bool,
    pub offset: i64,
    pub stored: &'a Stored,
    /// `http://host:port` of this broker's HTTP listener, for the envelope's URLs.
    pub base_url: &'a str,
    /// Signs the envelope.
    pub signer: &'a Signer,
}

impl Delivery<'_> {
    pub fn raw(&self) -> bool {
        self.sub
            .attributes
            .get("RawMessageDelivery")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn message_id(&self) -> String {
        sns_message_id(self.topic.id, self.offset)
    }

    pub fn subscription_arn(&self) -> String {
        format!("{}:{}", self.topic_arn, self.sub.id)
    }

    /// The key a target keeps one copy of this delivery by.
    pub fn origin(&self) -> String {
        format!("sns:{}/{}/{}", self.log_id, self.offset, self.sub.id)
    }

    /// What the subscription receives: the message itself when raw, else the
    /// Notification document (with the attributes in it), signed with the topic's
    /// SignatureVersion. A structured message (`MessageStructure=json`) gives the
    /// subscription its protocol's member.
    pub async fn body(&self) -> String {
        let message = self.stored.message_for(&self.sub.protocol);
        if self.raw() {
            return message.into_owned();
        }
        let message_id = self.message_id();
        let sequence = self.topic.fifo.then(|| sns_sequence_number(self.offset));
        let unsubscribe = format!(
            "{}/?Action=Unsubscribe&SubscriptionArn={}",
            self.base_url,
            query_escape(&self.subscription_arn())
        );
        let note = Notification {
            message_id: &message_id,
            sequence_number: sequence.as_deref(),
            topic_arn: self.topic_arn,
            subject: self.stored.subject.as_deref(),
            message: &message,
            timestamp_ms: self.stored.published_ms,
            unsubscribe_url: &unsubscribe,
            attributes: &self.stored.attributes,
        };
        let version = signing::version_of(self.topic);
        let value = self
            .signer
            .sign_for(&self.sub.protocol, version, || {
                envelope::notification_string_to_sign(&note)
            })
            .await;
        let signature = value.as_deref().map(|value| Signature {
            version,
            value,
            cert_url: self.signer.cert_url(),
        });
        envelope::notification(&note, signature.as_ref())
    }

    /// Raw deliveries carry the attributes as the target's own (SQS message
    /// attributes, Kafka headers); enveloped ones carry them in the document.
    fn attribute_headers(&self) -> Vec<(String, String)> {
        if self.raw() {
            to_headers(&record::to_sqs_attributes(&self.stored.attributes))
        } else {
            Vec::new()
        }
    }
}

/// A message on its way to its subscription's dead-letter queue (`RedrivePolicy`'s
/// `deadLetterTargetArn`), after its delivery failed for good: the body the subscription
/// would have got, with the message attributes as SQS attributes.
pub struct DeadLetter {
    pub queue: String,
    spec: PublishSpec,
    body: Bytes,
}

impl Delivery<'_> {
    /// Where this delivery goes when it fails for good; `None` when its subscription
    /// has no dead-letter queue (of this broker) in its RedrivePolicy.
    pub async fn dead_letter(&self, settings: &SqsSettings) -> Option<DeadLetter> {
        let policy = self.sub.attributes.get("RedrivePolicy")?;
        let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
        let arn = policy.get("deadLetterTargetArn")?.as_str()?;
        let queue = settings.queue_of_arn(arn)?;
        let spec = PublishSpec {
            headers: to_headers(&record::to_sqs_attributes(&self.stored.attributes)),
            group_id: self.stored.group_id.clone(),
            dedup_id: self.stored.dedup_id.clone(),
            durable: true,
            origin: Some(format!(
                "sns-dlq:{}/{}/{}",
                self.log_id, self.offset, self.sub.id
            )),
            ..PublishSpec::default()
        };
        Some(DeadLetter {
            queue: queue.to_string(),
            spec,
            body: Bytes::from(self.body().await),
        })
    }
}

/// Publishes a dead letter to its queue (group and dedup ids only to a FIFO one).
pub async fn to_dead_letter(engine: &Engine, mut letter: DeadLetter) -> Result<(), Failure> {
    if !engine.queue_config(&letter.queue).is_some_and(|c| c.fifo) {
        letter.spec.group_id = None;
        letter.spec.dedup_id = None;
    }
    engine
        .publish(&letter.queue, letter.spec, letter.body)
        .await
        .map(|_| ())
        .map_err(classify)
}

/// `text` escaped for a URL's query string (unreserved characters kept).
pub fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether an engine error may go away by itself.
fn classify(e: EngineError) -> Failure {
    match e {
        EngineError::QueueFull(m) | EngineError::ShuttingDown(m) | EngineError::Internal(m) => {
            Failure::Retry(m)
        }
        other => Failure::Skip(other.to_string()),
    }
}

/// Publishes the delivery to the queue its subscription's ARN names.
pub async fn to_queue(engine: &Engine, d: &Delivery<'_>) -> Result<(), Failure> {
    let settings = &engine.config().sqs;
    let queue = settings
        .queue_of_arn(&d.sub.endpoint)
        .ok_or_else(|| Failure::Skip(format!("'{}' is not a queue ARN", d.sub.endpoint)))?;
    let meta = engine.queue_meta(queue);
    let fifo = meta.as_ref().is_some_and(|m| m.config.fifo);
    let mut headers = d.attribute_headers();
    // A FIFO queue dedups by the key its DeduplicationScope makes (as an SQS send
    // does) and keeps the id itself for ReceiveMessage's MessageDeduplicationId.
    let (group_id, dedup_id) = match (&meta, &d.stored.group_id, &d.stored.dedup_id) {
        (Some(meta), Some(group), Some(dedup)) if fifo => {
            let per_group = meta
                .attributes
                .get("DeduplicationScope")
                .map(String::as_str)
                == Some("messageGroup");
            headers.push((fifo::DEDUP_ID_HEADER.to_string(), dedup.clone()));
            (
                Some(group.clone()),
                Some(fifo::dedup_key(dedup, group, per_group)),
            )
        }
        _ if fifo => (d.stored.group_id.clone(), d.stored.dedup_id.clone()),
        _ => (None, None),
    };
    let spec = PublishSpec {
        headers,
        group_id,
        dedup_id,
        durable: true,
        origin: Some(d.origin()),
        ..PublishSpec::default()
    };
    let body = Bytes::from(d.body().await);
    engine
        .publish(queue, spec, body)
        .await
        .map(|_| ())
        .map_err(classify)
}

/// Appends the delivery as one record to the Kafka topic the subscription names: in
/// the partition of its group id (FIFO topics) or of its offset, durably.
pub async fn to_kafka(engine: &Engine, d: &Delivery<'_>) -> Result<(), Failure> {
    let topic = &d.sub.endpoint;
    let info = engine
        .metadata(Some(vec![topic.clone()]))
        .map_err(classify)?;
    let partitions = info
        .topics
        .first()
        .map_or(1, |t| t.owners.len().max(1) as i32);
    let partition = match &d.stored.group_id {
        Some(group) => {
            peregrine_shards::partitioner::partition_for_key(group.as_bytes(), partitions)
        }
        None => (d.offset.rem_euclid(i64::from(partitions))) as i32,
    };
    let origin = d.origin();
    if d.replayed {
        // Delivered before a crash? Then the record is there, appended after the
        // publish: found from that time on through the time index.
        let place = (topic.as_str(), partition);
        let since = d.stored.published_ms;
        let class = crate::engine::CallClass::Internal;
        let found =
            crate::engine::exchanges::topic_has_origin(engine, class, place, &origin, since)
                .await
                .map_err(classify)?;
        if found {
            return Ok(());
        }
    }
    let mut headers = d.attribute_headers();
    headers.push((ORIGIN_HEADER.to_string(), origin));
    let headers: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    let body = d.body().await;
    let now = crate::time::now_ms();
    let mut builder = BatchBuilder::new(now, body.len() + 256);
    let key = d.stored.group_id.as_deref().map(str::as_bytes);
    builder.push(key, Some(body.as_bytes()), now, &headers);
    let batch = builder
        .finish()
        .ok_or_else(|| Failure::Skip("an empty record batch".into()))?;
    engine
        .produce(topic, partition, Acks::Durable, BytesMut::from(&batch[..]))
        .await
        .map(|_| ())
        .map_err(classify)
}

/// The headers SNS sends with each POST to an HTTP endpoint.
pub fn http_headers(d: &Delivery<'_>, message_type: &str) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("x-amz-sns-message-type", message_type.to_string()),
        ("x-amz-sns-message-id", d.message_id()),
        ("x-amz-sns-topic-arn", d.topic_arn.to_string()),
    ];
    if d.sub.confirmed {
        headers.push(("x-amz-sns-subscription-arn", d.subscription_arn()));
    }
    if d.raw() {
        headers.push(("x-amz-sns-rawdelivery", "true".to_string()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn topic() -> SnsTopicMeta {
        SnsTopicMeta {
            name: "t".into(),
            id: 7,
            fifo: false,
            attributes: BTreeMap::new(),
            tags: BTreeMap::new(),
            created_ms: 0,
            subscriptions: BTreeMap::new(),
            unsubscribed: Vec::new(),
        }
    }

    fn sub(raw: bool) -> SnsSubscription {
        let mut attributes = BTreeMap::new();
        if raw {
            attributes.insert("RawMessageDelivery".to_string(), "true".to_string());
        }
        SnsSubscription {
            id: "s1".into(),
            protocol: "sqs".into(),
            endpoint: "arn:aws:sqs:us-east-1:000000000000:q".into(),
            attributes,
            confirmed: true,
            token: None,
            created_ms: 0,
        }
    }

    #[test]
    fn raw_deliveries_get_the_message_and_others_the_envelope() {
        let (topic, stored) = (
            topic(),
            Stored {
                message: "hello".into(),
                subject: Some("s".into()),
                published_ms: 0,
                ..Stored::default()
            },
        );
        let arn = SqsSettings::default().topic_arn("t");
        let (raw, wrapped) = (sub(true), sub(false));
        let signer = Signer::new(None, signing::Scope::All, "http://127.0.0.1:1");
        let delivery = |sub| Delivery {
            topic: &topic,
            topic_arn: &arn,
            sub,
            log_id: 8,
            replayed: false,
            offset: 3,
            stored: &stored,
            base_url: "http://127.0.0.1:1",
            signer: &signer,
        };
        // No key here: nothing runs on a blocking thread, no executor is needed.
        let body = |d: Delivery<'_>| futures_lite::future::block_on(async move { d.body().await });
        assert_eq!(body(delivery(&raw)), "hello");
        let doc: serde_json::Value = serde_json::from_str(&body(delivery(&wrapped))).expect("json");
        assert_eq!(doc["Type"], "Notification");
        assert_eq!(doc["Message"], "hello");
        assert_eq!(doc["MessageId"], sns_message_id(7, 3));
        assert_eq!(doc["SignatureVersion"], "1", "SNS's default");
        assert_eq!(doc["TopicArn"], "arn:aws:sns:us-east-1:000000000000:t");
        let unsubscribe = doc["UnsubscribeURL"].as_str().expect("url");
        assert!(unsubscribe
            .ends_with("SubscriptionArn=arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3At%3As1"));
        assert_eq!(delivery(&raw).origin(), "sns:8/3/s1");
    }
}
