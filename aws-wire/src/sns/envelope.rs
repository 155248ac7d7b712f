//! The JSON documents SNS delivers: a `Notification` (what a non-raw subscription
//! receives as its message) and a `SubscriptionConfirmation` (what an HTTP endpoint
//! receives on Subscribe). Keys come in SNS's order.
//!
//! Neither carries `Signature` or `SigningCertURL`: they would be signed with AWS's
//! certificate, which this broker cannot do, and a fake signature would make a
//! verifying client fail anyway. `SignatureVersion` is "1" as SNS writes it; a client
//! that verifies signatures must be told not to (e.g. the SDKs' message validators).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::model::{AttributeValue, MessageAttribute};

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

/// The Notification document.
pub fn notification(n: &Notification<'_>) -> String {
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
    doc.field("SignatureVersion", "1");
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

/// The SubscriptionConfirmation document an HTTP endpoint gets on Subscribe.
pub fn subscription_confirmation(
    topic_arn: &str,
    token: &str,
    subscribe_url: &str,
    message_id: &str,
    timestamp_ms: i64,
) -> String {
    let mut doc = Doc::default();
    doc.field("Type", "SubscriptionConfirmation");
    doc.field("MessageId", message_id);
    doc.field("Token", token);
    doc.field("TopicArn", topic_arn);
    doc.field(
        "Message",
        &format!("You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
    );
    doc.field("SubscribeURL", subscribe_url);
    doc.field("Timestamp", &timestamp(timestamp_ms));
    doc.field("SignatureVersion", "1");
    doc.finish()
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
        let doc = notification(&Notification {
            message_id: "m",
            sequence_number: Some("00000000000000000007"),
            topic_arn: "arn:aws:sns:us-east-1:000000000000:t",
            subject: Some("S"),
            message: "line\n\"quoted\" é",
            timestamp_ms: 0,
            unsubscribe_url: "http://h/?Action=Unsubscribe",
            attributes: &attrs,
        });
        assert_eq!(
            doc,
            r#"{"Type":"Notification","MessageId":"m","SequenceNumber":"00000000000000000007","TopicArn":"arn:aws:sns:us-east-1:000000000000:t","Subject":"S","Message":"line\n\"quoted\" é","Timestamp":"1970-01-01T00:00:00.000Z","SignatureVersion":"1","UnsubscribeURL":"http://h/?Action=Unsubscribe","MessageAttributes":{"b":{"Type":"Binary","Value":"AP8="},"s":{"Type":"String","Value":"v\""}}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&doc).expect("JSON");
        assert_eq!(parsed["Message"], "line\n\"quoted\" é");
    }

    #[test]
    fn optional_keys_are_left_out() {
        let doc = notification(&Notification {
            message_id: "m",
            sequence_number: None,
            topic_arn: "t",
            subject: None,
            message: "x",
            timestamp_ms: 0,
            unsubscribe_url: "u",
            attributes: &[],
        });
        let parsed: serde_json::Value = serde_json::from_str(&doc).expect("JSON");
        let keys: Vec<&str> = parsed
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        for absent in [
            "SequenceNumber",
            "Subject",
            "MessageAttributes",
            "Signature",
        ] {
            assert!(!keys.contains(&absent), "{absent}");
        }
    }

    #[test]
    fn a_confirmation_carries_token_and_url() {
        let doc = subscription_confirmation(
            "arn:t",
            "tok",
            "http://h/?Action=ConfirmSubscription&Token=tok",
            "m",
            0,
        );
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
    }
}
