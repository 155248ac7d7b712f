//! How one published SNS message is stored in its topic's backing engine topic
//! (`__sns-{id}`), so the front end writes it and the fan-out worker reads it without
//! either knowing the other.
//!
//! The record's value is the Message's UTF-8 bytes (a Kafka consumer of the backing
//! topic sees the message itself). Its headers: one per message attribute, exactly as
//! SQS stores attributes (`sqs::attributes::to_headers`: the value, Binary as base64,
//! and the non-`String` types in `sqs::attributes::TYPES_HEADER`), plus the `sns:`
//! headers below. Their names hold a `:`, which no attribute name can, so they never
//! collide with an attribute.
//!
//! A `MessageStructure=json` publish stores its JSON object as the value, marked by
//! `sns:structure`; each delivery takes the member of its protocol, else `default`.

use sha2::{Digest as _, Sha256};
use std::borrow::Cow;

use super::errors::{ErrorCode, WireError};
use super::model::MessageAttribute;
use crate::sqs::attributes::{self, AttributeFilter};

/// Subject, when the publish had one.
pub const SUBJECT_HEADER: &str = "sns:subject";
/// MessageGroupId (FIFO topics).
pub const GROUP_ID_HEADER: &str = "sns:group-id";
/// MessageDeduplicationId (FIFO topics), explicit or content-based.
pub const DEDUP_ID_HEADER: &str = "sns:dedup-id";
/// When the publish was accepted, ms since the epoch (the envelope's Timestamp).
pub const PUBLISHED_MS_HEADER: &str = "sns:published-ms";
/// `json` when the message is one per protocol (`MessageStructure=json`).
pub const STRUCTURE_HEADER: &str = "sns:structure";

/// Checks a `MessageStructure=json` message as SNS does: a JSON object of strings with a
/// `default` member.
pub fn check_per_protocol(message: &str) -> Result<(), WireError> {
    let invalid = |why: &str| {
        Err(WireError::invalid(format!(
            "Invalid parameter: Message Structure - {why}"
        )))
    };
    let Ok(serde_json::Value::Object(members)) = serde_json::from_str(message) else {
        return invalid("JSON message body failed to parse");
    };
    if !members.contains_key("default") {
        return invalid("No default entry in JSON message body");
    }
    if members.values().any(|v| !v.is_string()) {
        return invalid("every protocol's message must be a JSON string");
    }
    Ok(())
}

/// One published message, as the backing topic holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub message: String,
    pub subject: Option<String>,
    /// Sorted by name (as `query` decodes them).
    pub attributes: Vec<MessageAttribute>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    pub published_ms: i64,
    /// `message` is one message per protocol (`MessageStructure=json`).
    pub structured: bool,
}

impl Stored {
    /// What a subscription of `protocol` receives as the message: the message, or for
    /// a structured one the member named `protocol`, else `default`. A structured value
    /// that does not read as one (a record some Kafka client wrote) is sent as it is.
    pub fn message_for(&self, protocol: &str) -> Cow<'_, str> {
        if !self.structured {
            return Cow::Borrowed(&self.message);
        }
        let Ok(serde_json::Value::Object(mut members)) = serde_json::from_str(&self.message) else {
            return Cow::Borrowed(&self.message);
        };
        let chosen = members
            .remove(protocol)
            .or_else(|| members.remove("default"));
        match chosen {
            Some(serde_json::Value::String(s)) => Cow::Owned(s),
            _ => Cow::Borrowed(&self.message),
        }
    }
}

/// The record headers and value that store `stored`.
pub fn encode(stored: &Stored) -> (Vec<(String, String)>, Vec<u8>) {
    let mut headers = attributes::to_headers(&stored.attributes);
    let optional = [
        (SUBJECT_HEADER, &stored.subject),
        (GROUP_ID_HEADER, &stored.group_id),
        (DEDUP_ID_HEADER, &stored.dedup_id),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            headers.push((name.to_owned(), value.clone()));
        }
    }
    if stored.structured {
        headers.push((STRUCTURE_HEADER.to_owned(), "json".to_owned()));
    }
    headers.push((
        PUBLISHED_MS_HEADER.to_owned(),
        stored.published_ms.to_string(),
    ));
    (headers, stored.message.clone().into_bytes())
}

/// Reads a record back. Anything not written by `encode` (a record a Kafka client
/// produced to the backing topic) is an error or reads leniently, never a panic:
/// non-UTF-8 value or header, a header without value, a repeated `sns:` header or no
/// `sns:published-ms` are errors; headers that are not valid attribute names are
/// skipped, as SQS skips them.
pub fn decode(headers: &[(&[u8], Option<&[u8]>)], value: &[u8]) -> Result<Stored, WireError> {
    let message =
        String::from_utf8(value.to_vec()).map_err(|_| corrupt("the value is not UTF-8"))?;
    let mut stored = Stored {
        message,
        ..Stored::default()
    };
    let mut published_ms = None;
    let mut structure = None;
    let mut rest = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = std::str::from_utf8(name).map_err(|_| corrupt("a header name is not UTF-8"))?;
        let value = value.ok_or_else(|| corrupt(&format!("header {name} has no value")))?;
        let value = std::str::from_utf8(value)
            .map_err(|_| corrupt(&format!("header {name} is not UTF-8")))?
            .to_owned();
        let slot = match name {
            SUBJECT_HEADER => &mut stored.subject,
            GROUP_ID_HEADER => &mut stored.group_id,
            DEDUP_ID_HEADER => &mut stored.dedup_id,
            PUBLISHED_MS_HEADER => &mut published_ms,
            STRUCTURE_HEADER => &mut structure,
            _ => {
                rest.push((name.to_owned(), value));
                continue;
            }
        };
        if slot.replace(value).is_some() {
            return Err(corrupt(&format!("header {name} is repeated")));
        }
    }
    stored.structured = structure.as_deref() == Some("json");
    stored.published_ms = published_ms
        .ok_or_else(|| corrupt("no sns:published-ms header"))?
        .parse()
        .map_err(|_| corrupt("sns:published-ms is not an integer"))?;
    stored.attributes = attributes::from_headers(&rest, &AttributeFilter::all());
    Ok(stored)
}

fn corrupt(why: &str) -> WireError {
    WireError::new(
        ErrorCode::InternalError,
        format!("not an SNS message record: {why}"),
    )
}

/// The attributes as an SQS queue receives them on raw delivery: `String.Array`
/// becomes `String` (its JSON text unchanged), as SNS does; the rest as they are.
pub fn to_sqs_attributes(attrs: &[MessageAttribute]) -> Vec<MessageAttribute> {
    attrs
        .iter()
        .map(|a| MessageAttribute {
            data_type: if a.data_type == super::filter::STRING_ARRAY {
                "String".to_owned()
            } else {
                a.data_type.clone()
            },
            ..a.clone()
        })
        .collect()
}

/// The deduplication id of a message on a topic (or queue) with content-based
/// deduplication: the SHA-256 of the message, in lowercase hex.
pub fn content_dedup_id(message: &str) -> String {
    let digest = Sha256::digest(message.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqs::AttributeValue;

    fn attr(name: &str, data_type: &str, value: AttributeValue) -> MessageAttribute {
        MessageAttribute {
            name: name.into(),
            data_type: data_type.into(),
            value,
        }
    }

    fn full() -> Stored {
        Stored {
            message: "body\r\n<&> é 😀".into(),
            subject: Some("Hi".into()),
            attributes: vec![
                attr(
                    "a",
                    "String.Array",
                    AttributeValue::String("[\"x\",1]".into()),
                ),
                attr("b", "Binary", AttributeValue::Binary(vec![0, 255])),
                attr("n", "Number", AttributeValue::String("-1.5".into())),
                attr("s", "String", AttributeValue::String("v".into())),
            ],
            group_id: Some("g".into()),
            dedup_id: Some("d".into()),
            published_ms: 1_796_000_000_123,
            structured: false,
        }
    }

    fn round_trip(stored: &Stored) -> Result<Stored, WireError> {
        let (headers, value) = encode(stored);
        let borrowed: Vec<(&[u8], Option<&[u8]>)> = headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), Some(v.as_bytes())))
            .collect();
        decode(&borrowed, &value)
    }

    #[test]
    fn a_stored_message_reads_back_unchanged() {
        assert_eq!(round_trip(&full()), Ok(full()));
        let plain = Stored {
            message: "x".into(),
            published_ms: 0,
            ..Stored::default()
        };
        assert_eq!(round_trip(&plain), Ok(plain));
    }

    #[test]
    fn foreign_records_are_errors_not_panics() {
        let ms: (&[u8], Option<&[u8]>) = (b"sns:published-ms", Some(b"5"));
        assert!(decode(&[ms], b"ok").is_ok());
        assert!(decode(&[], b"ok").is_err());
        assert!(decode(&[ms], b"\xff").is_err());
        assert!(decode(&[ms, ms], b"ok").is_err());
        assert!(decode(&[(b"sns:published-ms", Some(b"x"))], b"ok").is_err());
        assert!(decode(&[ms, (b"k", None)], b"ok").is_err());
        assert!(decode(&[ms, (b"\xff", Some(b"v"))], b"ok").is_err());
        // A header that is not an attribute name is skipped, as SQS skips it.
        let read = decode(
            &[ms, (b"bad name", Some(b"v")), (b"good", Some(b"v"))],
            b"ok",
        )
        .expect("reads");
        assert_eq!(read.attributes.len(), 1);
    }

    #[test]
    fn string_arrays_reach_sqs_as_strings() {
        let sqs = to_sqs_attributes(&full().attributes);
        let types: Vec<&str> = sqs.iter().map(|a| a.data_type.as_str()).collect();
        assert_eq!(types, ["String", "Binary", "Number", "String"]);
        assert_eq!(sqs[0].value, AttributeValue::String("[\"x\",1]".into()));
    }

    #[test]
    fn content_dedup_id_is_sha256_hex() {
        assert_eq!(
            content_dedup_id("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
