//! The JSON documents SNS delivers: a `Notification` (what a non-raw subscription
//! receives as its message), and the `SubscriptionConfirmation` and
//! `UnsubscribeConfirmation` an HTTP endpoint receives on Subscribe and Unsubscribe.
//! Keys come in SNS's order.
//!
//! Both are signed as SNS signs them: `SignatureVersion` ("1": SHA1withRSA, "2":
//! SHA256withRSA, the topic's attribute), `Signature` (base64 RSASSA-PKCS1-v1_5) and
//! `SigningCertURL` (where the PEM certificate of the signing key is served). The key is
//! the broker's own (`src/sns/signing.rs` keeps it), not AWS's: a verifier must be told to
//! trust the broker's certificate host (e.g. the SDKs' validators' host pattern) in place
//! of `sns.<region>.amazonaws.com`. This module writes the string to sign
//! (`notification_string_to_sign`, `confirmation_string_to_sign`: AWS's documented
//! canonical form) and the documents around a signature computed by the caller. A
//! document the broker does not sign (`--sns-signing http` or `off`) has none of the
//! three fields.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::model::{AttributeValue, MessageAttribute};

/// SNS's message signature versions: the topic attribute `SignatureVersion`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SignatureVersion {
    /// "1": SHA1withRSA, SNS's default.
    #[default]
    V1,
    /// "2": SHA256withRSA.
    V2,
}

impl SignatureVersion {
    /// The attribute's and the document's value.
    pub fn name(self) -> &'static str {
        match self {
            SignatureVersion::V1 => "1",
            SignatureVersion::V2 => "2",
        }
    }

    pub fn from_name(name: &str) -> Option<SignatureVersion> {
        match name {
            "1" => Some(SignatureVersion::V1),
            "2" => Some(SignatureVersion::V2),
            _ => None,
        }
    }
}

/// The signature fields of one document.
#[derive(Debug, Clone, Copy)]
pub struct Signature<'a> {
    pub version: SignatureVersion,
    /// Base64 of the RSASSA-PKCS1-v1_5 signature of the document's string to sign.
    pub value: &'a str,
    /// Where the signing key's PEM certificate is served.
    pub cert_url: &'a str,
}

/// One message as delivered to one subscription.
#[derive(Debug, Clone, Copy)]
pub struct Notification<'a> {
    pub message_id: &'a str,
    /// FIFO topics only.
    pub sequence_number: Option<&'a str>,
    pub topic_arn: &'a str,
    pub subject: Option<&'a str>,
    pub message: &'a str,
    /// When the message was published (`record::Stored::published_ms`).
    pub timestamp_ms: i64,
    pub unsubscribe_url: &'a str,
    /// Omitted from the document when empty.
    pub attributes: &'a [MessageAttribute],
}

/// What a Notification's signature covers, in AWS's canonical form: `Key\nValue\n` for
/// Message, MessageId, Subject (only when present), Timestamp, TopicArn and Type, in that
/// order. The UnsubscribeURL and the attributes are not covered (as in SNS), so one
/// signature serves every subscription a message reaches with the same Message.
pub fn notification_string_to_sign(n: &Notification<'_>) -> String {
    let timestamp = timestamp(n.timestamp_ms);
    let mut out = String::with_capacity(n.message.len() + 256);
    canonical(&mut out, "Message", n.message);
    canonical(&mut out, "MessageId", n.message_id);
    if let Some(subject) = n.subject {
        canonical(&mut out, "Subject", subject);
    }
    canonical(&mut out, "Timestamp", &timestamp);
    canonical(&mut out, "TopicArn", n.topic_arn);
    canonical(&mut out, "Type", "Notification");
    out
}

/// The Notification document, signed with `signature` (None: unsigned).
pub fn notification(n: &Notification<'_>, signature: Option<&Signature<'_>>) -> String {
    let mut doc = Doc::default();
    doc.field("Type", "Notification");
    doc.field("MessageId", n.message_id);
    if let Some(sequence) = n.sequence_number {
        doc.field("SequenceNumber", sequence);
    }
    doc.field("TopicArn", n.topic_arn);
    if let Some(subject) = n.subject {
        doc.field("Subject", subject);
    }
    doc.field("Message", n.message);
    doc.field("Timestamp", &timestamp(n.timestamp_ms));
    if let Some(signature) = signature {
        doc.signature(signature);
    }
    doc.field("UnsubscribeURL", n.unsubscribe_url);
    if !n.attributes.is_empty() {
        let mut attrs = Doc::default();
        for a in n.attributes {
            let value = match &a.value {
                AttributeValue::String(text) => text.clone(),
                AttributeValue::Binary(bytes) => STANDARD.encode(bytes),
            };
            let mut one = Doc::default();
            one.field("Type", &a.data_type);
            one.field("Value", &value);
            attrs.raw(&a.name, &one.finish());
        }
        doc.raw("MessageAttributes", &attrs.finish());
    }
    doc.finish()
}

/// Which confirmation: the one an HTTP endpoint gets on Subscribe, or the one it gets
/// on Unsubscribe (its SubscribeURL restores the subscription).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmationKind<'a> {
    Subscription,
    /// Of the subscription with this ARN.
    Unsubscribe {
        subscription_arn: &'a str,
    },
}

impl ConfirmationKind<'_> {
    /// Its `Type` (and `x-amz-sns-message-type`).
    pub fn type_name(&self) -> &'static str {
        match self {
            ConfirmationKind::Subscription => "SubscriptionConfirmation",
            ConfirmationKind::Unsubscribe { .. } => "UnsubscribeConfirmation",
        }
    }
}

/// A SubscriptionConfirmation or UnsubscribeConfirmation to an HTTP endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Confirmation<'a> {
    pub kind: ConfirmationKind<'a>,
    pub topic_arn: &'a str,
    pub token: &'a str,
    pub subscribe_url: &'a str,
    pub message_id: &'a str,
    pub timestamp_ms: i64,
}

impl Confirmation<'_> {
    /// SNS's own wording.
    fn message(&self) -> String {
        match self.kind {
            ConfirmationKind::Subscription => format!(
                "You have chosen to subscribe to the topic {}.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
                self.topic_arn
            ),
            ConfirmationKind::Unsubscribe { subscription_arn } => format!(
                "You have chosen to deactivate subscription {subscription_arn}.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message."
            ),
        }
    }
}

/// What a confirmation's signature covers, in AWS's canonical form: Message, MessageId,
/// SubscribeURL, Timestamp, Token, TopicArn and Type (the same keys for both kinds).
pub fn confirmation_string_to_sign(c: &Confirmation<'_>) -> String {
    let mut out = String::with_capacity(512);
    canonical(&mut out, "Message", &c.message());
    canonical(&mut out, "MessageId", c.message_id);
    canonical(&mut out, "SubscribeURL", c.subscribe_url);
    canonical(&mut out, "Timestamp", &timestamp(c.timestamp_ms));
    canonical(&mut out, "Token", c.token);
    canonical(&mut out, "TopicArn", c.topic_arn);
    canonical(&mut out, "Type", c.kind.type_name());
    out
}

/// The confirmation document, signed with `signature` (None: unsigned).
pub fn confirmation(c: &Confirmation<'_>, signature: Option<&Signature<'_>>) -> String {
    let mut doc = Doc::default();
    doc.field("Type", c.kind.type_name());
    doc.field("MessageId", c.message_id);
    doc.field("Token", c.token);
    doc.field("TopicArn", c.topic_arn);
    doc.field("Message", &c.message());
    doc.field("SubscribeURL", c.subscribe_url);
    doc.field("Timestamp", &timestamp(c.timestamp_ms));
    if let Some(signature) = signature {
        doc.signature(signature);
    }
    doc.finish()
}

/// One `Key\nValue\n` of a string to sign.
fn canonical(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push('\n');
    out.push_str(value);
    out.push('\n');
}

/// A JSON object written in insertion order (serde_json's map sorts its keys).
#[derive(Default)]
struct Doc {
    out: String,
}

impl Doc {
    fn field(&mut self, key: &str, value: &str) {
        self.raw(key, &json_string(value));
    }

    fn raw(&mut self, key: &str, json: &str) {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        self.out.push_str(&json_string(key));
        self.out.push(':');
        self.out.push_str(json);
    }

    fn signature(&mut self, signature: &Signature<'_>) {
        self.field("SignatureVersion", signature.version.name());
        self.field("Signature", signature.value);
        self.field("SigningCertURL", signature.cert_url);
    }

    fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        self.out
    }
}

fn json_string(text: &str) -> String {
    // Serializing a str cannot fail.
    serde_json::to_string(text).unwrap_or_default()
}

/// `ms` since the epoch as SNS writes times: `2026-12-03T21:00:00.000Z` (UTC).
pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: Signature<'static> = Signature {
        version: SignatureVersion::V2,
        value: "c2ln",
        cert_url: "https://h/SimpleNotificationService-ab.pem",
    };

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_796_331_600_007), "2026-12-03T21:00:00.007Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(timestamp(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_notification_has_sns_keys_in_order() {
        let attrs = [
            MessageAttribute {
                name: "b".into(),
                data_type: "Binary".into(),
                value: AttributeValue::Binary(vec![0, 255]),
            },
            MessageAttribute {
                name: "s".into(),
                data_type: "String".into(),
                value: AttributeValue::String("v\"".into()),
            },
        ];
        let note = Notification {
            message_id: "m",
            sequence_number: Some("00000000000000000007"),
            topic_arn: "arn:aws:sns:us-east-1:000000000000:t",
            subject: Some("S"),
            message: "line\n\"quoted\" é",
            timestamp_ms: 0,
            unsubscribe_url: "http://h/?Action=Unsubscribe",
            attributes: &attrs,
        };
        let unsigned: serde_json::Value =
            serde_json::from_str(&notification(&note, None)).expect("JSON");
        for field in ["SignatureVersion", "Signature", "SigningCertURL"] {
            assert!(
                unsigned.get(field).is_none(),
                "{field} in an unsigned document"
            );
        }
        assert_eq!(unsigned["UnsubscribeURL"], "http://h/?Action=Unsubscribe");
        let doc = notification(&note, Some(&SIGNED));
        assert_eq!(
            doc,
            r#"{"Type":"Notification","MessageId":"m","SequenceNumber":"00000000000000000007","TopicArn":"arn:aws:sns:us-east-1:000000000000:t","Subject":"S","Message":"line\n\"quoted\" é","Timestamp":"1970-01-01T00:00:00.000Z","SignatureVersion":"2","Signature":"c2ln","SigningCertURL":"https://h/SimpleNotificationService-ab.pem","UnsubscribeURL":"http://h/?Action=Unsubscribe","MessageAttributes":{"b":{"Type":"Binary","Value":"AP8="},"s":{"Type":"String","Value":"v\""}}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&doc).expect("JSON");
        assert_eq!(parsed["Message"], "line\n\"quoted\" é");
        // The string to sign holds the values as they are, not as JSON escapes them.
        assert_eq!(
            notification_string_to_sign(&note),
            "Message\nline\n\"quoted\" é\nMessageId\nm\nSubject\nS\nTimestamp\n1970-01-01T00:00:00.000Z\nTopicArn\narn:aws:sns:us-east-1:000000000000:t\nType\nNotification\n"
        );
    }

    #[test]
    fn optional_keys_are_left_out() {
        let note = Notification {
            message_id: "m",
            sequence_number: None,
            topic_arn: "t",
            subject: None,
            message: "x",
            timestamp_ms: 0,
            unsubscribe_url: "u",
            attributes: &[],
        };
        let doc = notification(&note, Some(&SIGNED));
        assert_eq!(
            notification_string_to_sign(&note),
            "Message\nx\nMessageId\nm\nTimestamp\n1970-01-01T00:00:00.000Z\nTopicArn\nt\nType\nNotification\n",
            "no Subject key without a subject"
        );
        let parsed: serde_json::Value = serde_json::from_str(&doc).expect("JSON");
        let keys: Vec<&str> = parsed
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        for absent in ["SequenceNumber", "Subject", "MessageAttributes"] {
            assert!(!keys.contains(&absent), "{absent}");
        }
    }

    #[test]
    fn a_confirmation_carries_token_and_url() {
        let confirmation = Confirmation {
            kind: ConfirmationKind::Subscription,
            topic_arn: "arn:t",
            token: "tok",
            subscribe_url: "http://h/?Action=ConfirmSubscription&Token=tok",
            message_id: "m",
            timestamp_ms: 0,
        };
        let doc = super::confirmation(&confirmation, Some(&SIGNED));
        let parsed: serde_json::Value = serde_json::from_str(&doc).expect("JSON");
        assert_eq!(parsed["Type"], "SubscriptionConfirmation");
        assert_eq!(parsed["Token"], "tok");
        assert_eq!(parsed["TopicArn"], "arn:t");
        assert_eq!(
            parsed["SubscribeURL"],
            "http://h/?Action=ConfirmSubscription&Token=tok"
        );
        assert!(
            doc.starts_with(r#"{"Type":"SubscriptionConfirmation","MessageId":"m","Token":"tok""#)
        );
        assert!(doc.ends_with(
            r#""SignatureVersion":"2","Signature":"c2ln","SigningCertURL":"https://h/SimpleNotificationService-ab.pem"}"#
        ));
        let message = parsed["Message"].as_str().expect("message");
        assert_eq!(
            confirmation_string_to_sign(&confirmation),
            format!(
                "Message\n{message}\nMessageId\nm\nSubscribeURL\nhttp://h/?Action=ConfirmSubscription&Token=tok\nTimestamp\n1970-01-01T00:00:00.000Z\nToken\ntok\nTopicArn\narn:t\nType\nSubscriptionConfirmation\n"
            )
        );
    }

    #[test]
    fn an_unsubscribe_confirmation_names_the_subscription_and_signs_its_type() {
        let c = Confirmation {
            kind: ConfirmationKind::Unsubscribe {
                subscription_arn: "arn:t:sub",
            },
            topic_arn: "arn:t",
            token: "tok",
            subscribe_url: "http://h/?Action=ConfirmSubscription&Token=tok",
            message_id: "m",
            timestamp_ms: 0,
        };
        let doc = confirmation(&c, None);
        let parsed: serde_json::Value = serde_json::from_str(&doc).expect("JSON");
        assert_eq!(parsed["Type"], "UnsubscribeConfirmation");
        let message = parsed["Message"].as_str().expect("message");
        assert!(
            message.contains("deactivate subscription arn:t:sub."),
            "{message}"
        );
        assert!(!doc.contains("Signature"), "{doc}");
        let signed = confirmation_string_to_sign(&c);
        assert!(
            signed.starts_with(&format!("Message\n{message}\n")),
            "{signed}"
        );
        assert!(
            signed.ends_with("Type\nUnsubscribeConfirmation\n"),
            "{signed}"
        );
    }

    #[test]
    fn signature_versions_are_named_as_sns_names_them() {
        assert_eq!(SignatureVersion::default(), SignatureVersion::V1);
        for v in [SignatureVersion::V1, SignatureVersion::V2] {
            assert_eq!(SignatureVersion::from_name(v.name()), Some(v));
        }
        assert_eq!(SignatureVersion::from_name("3"), None);
        assert_eq!(SignatureVersion::from_name(""), None);
    }
}
