//! AMQP message properties in the engine's message headers, and back.
//!
//! Each set property is a header named `amqp-<property>` with its value as text
//! (`amqp-content-type: application/json`, `amqp-delivery-mode: 2`), so that a record
//! on a Kafka topic or a native consumer sees them as plain headers. Entries of the
//! `headers` table are headers of their own name: strings as they are, other scalars as
//! text (so `x-delay: 1500` reads as a number to the engine's delayed exchanges), and
//! every non-string entry also in `amqp-typed-headers` (the field table in AMQP's own
//! encoding, hex), from which an AMQP consumer gets the exact types back. Headers
//! published by other protocols arrive as long strings.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::generation::gen_field_table;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};

const PREFIX: &str = "amqp-";
const TYPED: &str = "amqp-typed-headers";

const CONTENT_TYPE: &str = "amqp-content-type";
const CONTENT_ENCODING: &str = "amqp-content-encoding";
const DELIVERY_MODE: &str = "amqp-delivery-mode";
const CORRELATION_ID: &str = "amqp-correlation-id";
const REPLY_TO: &str = "amqp-reply-to";
const EXPIRATION: &str = "amqp-expiration";
const MESSAGE_ID: &str = "amqp-message-id";
const TIMESTAMP: &str = "amqp-timestamp";
const TYPE: &str = "amqp-type";
const USER_ID: &str = "amqp-user-id";
const APP_ID: &str = "amqp-app-id";
const CLUSTER_ID: &str = "amqp-cluster-id";
/// The priority property as published (a queue without priorities stores 0).
const PRIORITY: &str = "amqp-priority";
/// The exchange and routing key a message was published with (set by `publish`).
pub const EXCHANGE: &str = crate::engine::EXCHANGE_HEADER;
pub const ROUTING_KEY: &str = crate::engine::ROUTING_KEY_HEADER;

/// The headers that carry `props` (priority travels as the engine's own priority).
pub fn to_headers(props: &AMQPProperties) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut put = |name: &str, v: &Option<ShortString>| {
        if let Some(v) = v {
            out.push((name.to_string(), v.as_str().to_string()));
        }
    };
    put(CONTENT_TYPE, props.content_type());
    put(CONTENT_ENCODING, props.content_encoding());
    put(CORRELATION_ID, props.correlation_id());
    put(REPLY_TO, props.reply_to());
    put(EXPIRATION, props.expiration());
    put(MESSAGE_ID, props.message_id());
    put(TYPE, props.kind());
    put(USER_ID, props.user_id());
    put(APP_ID, props.app_id());
    put(CLUSTER_ID, props.cluster_id());
    if let Some(priority) = props.priority() {
        out.push((PRIORITY.to_string(), priority.to_string()));
    }
    if let Some(mode) = props.delivery_mode() {
        out.push((DELIVERY_MODE.to_string(), mode.to_string()));
    }
    if let Some(ts) = props.timestamp() {
        out.push((TIMESTAMP.to_string(), ts.to_string()));
    }
    if let Some(table) = props.headers() {
        let mut typed = FieldTable::default();
        for (name, value) in table {
            let text = match value {
                AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
                    Ok(s) => {
                        out.push((name.as_str().to_string(), s.to_string()));
                        continue;
                    }
                    Err(_) => None,
                },
                AMQPValue::ShortString(s) => {
                    out.push((name.as_str().to_string(), s.as_str().to_string()));
                    continue;
                }
                AMQPValue::Boolean(v) => Some(v.to_string()),
                AMQPValue::ShortShortInt(v) => Some(v.to_string()),
                AMQPValue::ShortShortUInt(v) => Some(v.to_string()),
                AMQPValue::ShortInt(v) => Some(v.to_string()),
                AMQPValue::ShortUInt(v) => Some(v.to_string()),
                AMQPValue::LongInt(v) => Some(v.to_string()),
                AMQPValue::LongUInt(v) => Some(v.to_string()),
                AMQPValue::LongLongInt(v) => Some(v.to_string()),
                AMQPValue::Float(v) => Some(v.to_string()),
                AMQPValue::Double(v) => Some(v.to_string()),
                AMQPValue::Timestamp(v) => Some(v.to_string()),
                _ => None,
            };
            if let Some(text) = text {
                out.push((name.as_str().to_string(), text));
            }
            typed.insert(name.clone(), value.clone());
        }
        if !typed.inner().is_empty() {
            if let Ok(ctx) = gen_field_table(&typed)(WriteContext::from(Vec::new())) {
                out.push((TYPED.to_string(), hex(&ctx.write)));
            }
        }
    }
    out
}

/// The properties of a delivered message from its engine headers and priority.
pub fn from_headers(headers: &[(String, String)], priority: u8) -> AMQPProperties {
    let mut props = AMQPProperties::default();
    if priority > 0 {
        props = props.with_priority(priority);
    }
    let mut table = FieldTable::default();
    let mut typed = None;
    for (name, value) in headers {
        let short = || ShortString::try_new(value.clone()).ok();
        match name.as_str() {
            CONTENT_TYPE => props = with(props, short(), AMQPProperties::with_content_type),
            CONTENT_ENCODING => props = with(props, short(), AMQPProperties::with_content_encoding),
            CORRELATION_ID => props = with(props, short(), AMQPProperties::with_correlation_id),
            REPLY_TO => props = with(props, short(), AMQPProperties::with_reply_to),
            EXPIRATION => props = with(props, short(), AMQPProperties::with_expiration),
            MESSAGE_ID => props = with(props, short(), AMQPProperties::with_message_id),
            TYPE => props = with(props, short(), AMQPProperties::with_type),
            USER_ID => props = with(props, short(), AMQPProperties::with_user_id),
            APP_ID => props = with(props, short(), AMQPProperties::with_app_id),
            CLUSTER_ID => props = with(props, short(), AMQPProperties::with_cluster_id),
            DELIVERY_MODE => {
                props = with(
                    props,
                    value.parse().ok(),
                    AMQPProperties::with_delivery_mode,
                )
            }
            TIMESTAMP => props = with(props, value.parse().ok(), AMQPProperties::with_timestamp),
            PRIORITY => props = with(props, value.parse().ok(), AMQPProperties::with_priority),
            TYPED => typed = unhex(value),
            other if other.starts_with(PREFIX) => {}
            other => {
                if let Ok(key) = ShortString::try_new(other.to_string()) {
                    table.insert(key, AMQPValue::LongString(LongString::from(value.as_str())));
                }
            }
        }
    }
    if let Some(bytes) = typed {
        if let Ok((_, exact)) = parse_field_table(&bytes[..]) {
            for (name, value) in &exact {
                table.insert(name.clone(), value.clone());
            }
        }
    }
    if let Some(death) = x_death(headers) {
        table.insert("x-death".into(), death);
    }
    if !table.inner().is_empty() {
        props = props.with_headers(table);
    }
    props
}

/// RabbitMQ's `x-death` (an array of one table per dead-lettering) from the engine's
/// flat `x-death-*` headers, so that retry code reading `x-death[0]['count']` works.
fn x_death(headers: &[(String, String)]) -> Option<AMQPValue> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let reason = get("x-death-reason")?;
    let mut death = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    death.insert("reason".into(), text(reason));
    if let Some(q) = get("x-death-queue") {
        death.insert("queue".into(), text(q));
    }
    let count = get("x-death-count").and_then(|c| c.parse::<i64>().ok());
    death.insert("count".into(), AMQPValue::LongLongInt(count.unwrap_or(1)));
    if let Some(ms) = get("x-death-time").and_then(|t| t.parse::<u64>().ok()) {
        death.insert("time".into(), AMQPValue::Timestamp(ms / 1000));
    }
    death.insert("exchange".into(), text(get(EXCHANGE).unwrap_or("")));
    if let Some(key) = get(ROUTING_KEY) {
        let keys = amq_protocol::types::FieldArray::from(vec![text(key)]);
        death.insert("routing-keys".into(), AMQPValue::FieldArray(keys));
    }
    Some(AMQPValue::FieldArray(
        vec![AMQPValue::FieldTable(death)].into(),
    ))
}

fn with<T>(
    props: AMQPProperties,
    value: Option<T>,
    set: fn(AMQPProperties, T) -> AMQPProperties,
) -> AMQPProperties {
    match value {
        Some(v) => set(props, v),
        None => props,
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_and_header_type_round_trips() {
        let mut nested = FieldTable::default();
        nested.insert("inner".into(), AMQPValue::LongInt(-7));
        let mut headers = FieldTable::default();
        headers.insert("s".into(), AMQPValue::LongString("text".into()));
        headers.insert("i".into(), AMQPValue::LongLongInt(1500));
        headers.insert("b".into(), AMQPValue::Boolean(true));
        headers.insert("t".into(), AMQPValue::FieldTable(nested));
        let props = AMQPProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("gzip".into())
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_priority(5)
            .with_correlation_id("c-1".into())
            .with_reply_to("replies".into())
            .with_expiration("60000".into())
            .with_message_id("m-1".into())
            .with_timestamp(1_700_000_000)
            .with_type("order".into())
            .with_user_id("guest".into())
            .with_app_id("shop".into());
        let stored = to_headers(&props);
        assert!(stored.contains(&("i".to_string(), "1500".to_string())));
        assert!(stored.contains(&(
            "amqp-content-type".to_string(),
            "application/json".to_string()
        )));
        assert_eq!(from_headers(&stored, 5), props);
    }

    #[test]
    fn engine_dead_letter_headers_become_x_death() {
        let headers = [
            ("x-death-reason".to_string(), "expired".to_string()),
            ("x-death-queue".to_string(), "work".to_string()),
            ("x-death-count".to_string(), "2".to_string()),
            ("x-death-time".to_string(), "1700000000000".to_string()),
            (ROUTING_KEY.to_string(), "jobs".to_string()),
        ];
        let table = from_headers(&headers, 0)
            .headers()
            .clone()
            .expect("headers");
        let Some(AMQPValue::FieldArray(deaths)) = table.inner().get("x-death") else {
            panic!("no x-death in {table:?}");
        };
        let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
            panic!("x-death holds no table");
        };
        assert_eq!(death.inner().get("count"), Some(&AMQPValue::LongLongInt(2)));
        assert_eq!(
            death.inner().get("reason"),
            Some(&AMQPValue::LongString("expired".into()))
        );
        assert_eq!(
            death.inner().get("time"),
            Some(&AMQPValue::Timestamp(1_700_000_000))
        );
    }

    #[test]
    fn plain_headers_become_long_strings() {
        let props = from_headers(&[("k".into(), "v".into())], 0);
        let table = props.headers().clone().expect("headers");
        assert_eq!(
            table.inner().get("k"),
            Some(&AMQPValue::LongString("v".into()))
        );
    }
}
