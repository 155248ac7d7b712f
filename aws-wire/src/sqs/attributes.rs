//! What an SQS message may carry, and how its attributes live in the engine.
//!
//! The engine stores message headers as `(String, String)` pairs (`PublishSpec.headers`),
//! shared with AMQP and the native protocol. An SQS attribute is stored as one header
//! named after it, its value the string (Binary: base64); the types that are not plain
//! `String` go in one more header, `TYPES_HEADER`, as `name=Type;name=Type`. That header's
//! name holds a `:`, which no SQS attribute name can, so it never collides with one. A
//! header without a type (an AMQP or native one) reads back as a `String` attribute.
//!
//! Bodies: SQS allows only XML 1.0 characters (`#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
//! #x10000-#x10FFFF`). A body published by AMQP or the native protocol is bytes;
//! `body_text` is what SQS hands out for it, and its MD5 is taken over that text.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::errors::{ErrorCode, WireError};
use super::model::{AttributeValue, MessageAttribute, ATTRIBUTE_NAME_MAX, MESSAGE_ATTRIBUTES_MAX};
use crate::xml::{xml_char, xml_text};

/// The header holding attribute types other than `String`.
pub const TYPES_HEADER: &str = "sqs:attribute-types";
/// The header a message keeps its AWSTraceHeader system attribute in (`:` as above).
pub const TRACE_HEADER: &str = "sqs:aws-trace-header";

/// Longest DataType, custom label included.
const DATA_TYPE_MAX: usize = 256;

/// Which message attributes a ReceiveMessage asked for (MessageAttributeNames): `All`
/// or `.*` for all, `prefix.*` for names starting with `prefix.`, else exact names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeFilter {
    all: bool,
    exact: BTreeSet<String>,
    prefixes: Vec<String>,
}

impl AttributeFilter {
    pub fn new(names: &[String]) -> AttributeFilter {
        let mut filter = AttributeFilter::none();
        for name in names {
            if name == "All" || name == ".*" {
                filter.all = true;
            } else if let Some(prefix) = name.strip_suffix('*').filter(|p| p.ends_with('.')) {
                filter.prefixes.push(prefix.to_owned());
            } else {
                filter.exact.insert(name.clone());
            }
        }
        filter
    }

    /// Returns no attribute (MessageAttributeNames absent).
    pub fn none() -> AttributeFilter {
        AttributeFilter::default()
    }

    pub fn all() -> AttributeFilter {
        AttributeFilter {
            all: true,
            ..AttributeFilter::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.exact.is_empty() && self.prefixes.is_empty()
    }

    pub fn matches(&self, name: &str) -> bool {
        self.all || self.exact.contains(name) || self.prefixes.iter().any(|p| name.starts_with(p))
    }
}

/// Checks a message's attributes as SQS does: at most `MESSAGE_ATTRIBUTES_MAX`, names
/// valid and distinct, types `String|Number|Binary` with an optional `.label`, values
/// non-empty, Numbers numeric, Strings of the allowed characters.
pub fn validate(attrs: &[MessageAttribute]) -> Result<(), WireError> {
    if attrs.len() > MESSAGE_ATTRIBUTES_MAX {
        return Err(WireError::invalid(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MESSAGE_ATTRIBUTES_MAX}].",
            attrs.len()
        )));
    }
    let mut seen = BTreeSet::new();
    for attr in attrs {
        check_name(&attr.name)?;
        if !seen.insert(attr.name.as_str()) {
            return Err(WireError::invalid(format!(
                "Message (user) attribute name '{}' is given more than once.",
                attr.name
            )));
        }
        check_value(attr)?;
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), WireError> {
    let lower = name.to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= ATTRIBUTE_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.");
    if valid {
        Ok(())
    } else {
        Err(WireError::invalid(format!(
            "Message (user) attribute name '{name}' is invalid: 1 to {ATTRIBUTE_NAME_MAX} of A-Z a-z 0-9 _ - ., no leading, trailing or double period, not starting with AWS. or Amazon."
        )))
    }
}

fn check_value(attr: &MessageAttribute) -> Result<(), WireError> {
    let name = &attr.name;
    let base = base_type(&attr.data_type).ok_or_else(|| {
        WireError::invalid(format!(
            "Message (user) attribute '{name}' has an invalid data type {:?}: String, Number or Binary, optionally followed by .label",
            attr.data_type
        ))
    })?;
    match (base, &attr.value) {
        (BaseType::Binary, AttributeValue::Binary(bytes)) if !bytes.is_empty() => Ok(()),
        (BaseType::String | BaseType::Number, AttributeValue::String(text)) if !text.is_empty() => {
            if !text.chars().all(xml_char) {
                return Err(WireError::invalid(format!(
                    "Message (user) attribute '{name}' has a value with characters SQS does not allow"
                )));
            }
            if base == BaseType::Number && !is_number(text) {
                return Err(WireError::invalid(format!(
                    "Message (user) attribute '{name}' of type Number has a value that is not a number"
                )));
            }
            Ok(())
        }
        (BaseType::Binary, _) => Err(WireError::invalid(format!(
            "Message (user) attribute '{name}' must contain a non-empty value of type 'Binary'"
        ))),
        _ => Err(WireError::invalid(format!(
            "Message (user) attribute '{name}' must contain a non-empty value of type 'String'"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BaseType {
    String,
    Number,
    Binary,
}

/// The base of a DataType (`Number.float` → Number); `None` when it is not a valid one.
fn base_type(data_type: &str) -> Option<BaseType> {
    let (base, label) = match data_type.split_once('.') {
        Some((base, label)) => (base, Some(label)),
        None => (data_type, None),
    };
    let label_ok = label.is_none_or(|l| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    });
    if !label_ok || data_type.len() > DATA_TYPE_MAX {
        return None;
    }
    match base {
        "String" => Some(BaseType::String),
        "Number" => Some(BaseType::Number),
        "Binary" => Some(BaseType::Binary),
        _ => None,
    }
}

/// A decimal number: `[+-]digits[.digits][e[+-]digits]`, digits on at least one side
/// of the point.
fn is_number(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// The headers that store `attrs` in the engine (see the module doc).
pub fn to_headers(attrs: &[MessageAttribute]) -> Vec<(String, String)> {
    if attrs.is_empty() {
        // No allocation for the usual message without attributes.
        return Vec::new();
    }
    let mut headers = Vec::with_capacity(attrs.len() + 1);
    let mut types = Vec::new();
    for attr in attrs {
        let value = match &attr.value {
            AttributeValue::String(text) => text.clone(),
            AttributeValue::Binary(bytes) => STANDARD.encode(bytes),
        };
        headers.push((attr.name.clone(), value));
        if attr.data_type != "String" {
            types.push(format!("{}={}", attr.name, attr.data_type));
        }
    }
    if !types.is_empty() {
        headers.push((TYPES_HEADER.to_owned(), types.join(";")));
    }
    headers
}

/// The attributes a message's headers hold, those `filter` selects, sorted by name.
/// Headers whose names SQS cannot carry are skipped, as is a repeated name (after its
/// first); a Binary value that is not base64 reads as a String.
pub fn from_headers(
    headers: &[(String, String)],
    filter: &AttributeFilter,
) -> Vec<MessageAttribute> {
    if filter.is_empty() {
        return Vec::new();
    }
    let types: BTreeMap<&str, &str> = headers
        .iter()
        .find(|(name, _)| name == TYPES_HEADER)
        .map(|(_, value)| {
            value
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .filter(|(_, data_type)| base_type(data_type).is_some())
                .collect()
        })
        .unwrap_or_default();
    let mut found: BTreeMap<&str, MessageAttribute> = BTreeMap::new();
    for (name, value) in headers {
        if found.contains_key(name.as_str()) || !filter.matches(name) || check_name(name).is_err() {
            continue;
        }
        let data_type = types.get(name.as_str()).copied().unwrap_or("String");
        let binary = match base_type(data_type) {
            Some(BaseType::Binary) => STANDARD.decode(value).ok(),
            _ => None,
        };
        let attr = match binary {
            Some(bytes) => MessageAttribute {
                name: name.clone(),
                data_type: data_type.to_owned(),
                value: AttributeValue::Binary(bytes),
            },
            None => MessageAttribute {
                name: name.clone(),
                data_type: if base_type(data_type) == Some(BaseType::Binary) {
                    "String".to_owned()
                } else {
                    data_type.to_owned()
                },
                value: AttributeValue::String(text_of(value)),
            },
        };
        found.insert(name, attr);
    }
    found.into_values().collect()
}

/// Bytes the attributes count toward the message size: names, types and values (raw
/// bytes for Binary).
pub fn size(attrs: &[MessageAttribute]) -> usize {
    attrs
        .iter()
        .map(|a| {
            let value = match &a.value {
                AttributeValue::String(text) => text.len(),
                AttributeValue::Binary(bytes) => bytes.len(),
            };
            a.name.len() + a.data_type.len() + value
        })
        .sum()
}

/// A message's size as SQS counts it against MaximumMessageSize.
pub fn message_size(body: &str, attrs: &[MessageAttribute]) -> usize {
    body.len() + size(attrs)
}

/// A body SQS accepts: non-empty, of the allowed characters.
pub fn check_body(body: &str) -> Result<(), WireError> {
    if body.is_empty() {
        return Err(WireError::missing("MessageBody"));
    }
    if xml_text(body) {
        return Ok(());
    }
    match body.chars().position(|c| !xml_char(c)) {
        None => Ok(()),
        Some(at) => Err(WireError::new(
            ErrorCode::InvalidMessageContents,
            format!(
                "Invalid binary character at position {at} of the message body: SQS allows #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
            ),
        )),
    }
}

/// What SQS sends for a stored body: the UTF-8 text, anything not UTF-8 or not an
/// allowed character as U+FFFD.
pub fn body_text(bytes: &[u8]) -> String {
    text_of(&String::from_utf8_lossy(bytes))
}

fn text_of(text: &str) -> String {
    if xml_text(text) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if xml_char(c) {
                c
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(name: &str, data_type: &str, value: &str) -> MessageAttribute {
        MessageAttribute {
            name: name.into(),
            data_type: data_type.into(),
            value: AttributeValue::String(value.into()),
        }
    }

    fn binary(name: &str, value: &[u8]) -> MessageAttribute {
        MessageAttribute {
            name: name.into(),
            data_type: "Binary".into(),
            value: AttributeValue::Binary(value.to_vec()),
        }
    }

    #[test]
    fn valid_attributes_pass() {
        let attrs = vec![
            string("attrS", "String", "line\r\nmore <&>\"' é 😀"),
            string(
                "attrN",
                "Number.float",
                "4563442423554324324264524243.32543234",
            ),
            string("n2", "Number", "-1.5e-3"),
            string("c", "String.custom-label_1", "x"),
            binary("attrB", &[0, 255]),
            string(&"n".repeat(ATTRIBUTE_NAME_MAX), "String", "v"),
        ];
        assert_eq!(validate(&attrs), Ok(()));
    }

    #[test]
    fn more_than_ten_attributes_are_refused() {
        let attrs: Vec<_> = (0..=MESSAGE_ATTRIBUTES_MAX)
            .map(|i| string(&format!("a{i}"), "String", "v"))
            .collect();
        let e = validate(&attrs).expect_err("11 attributes");
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(validate(&attrs[..MESSAGE_ATTRIBUTES_MAX]).is_ok());
    }

    #[test]
    fn bad_names_types_and_values_are_refused() {
        let long = "n".repeat(ATTRIBUTE_NAME_MAX + 1);
        let bad = [
            string("", "String", "v"),
            string(&long, "String", "v"),
            string("a b", "String", "v"),
            string("a..b", "String", "v"),
            string(".a", "String", "v"),
            string("a.", "String", "v"),
            string("AWS.x", "String", "v"),
            string("amazon.x", "String", "v"),
            string("a", "Strin", "v"),
            string("a", "String.", "v"),
            string("a", "String.a;b", "v"),
            string("a", "string", "v"),
            string("a", "String", ""),
            string("a", "String", "nul\u{0}"),
            string("a", "Number", "12a"),
            string("a", "Number", "."),
            string("a", "Number", "1e"),
            string("a", "Binary", "text"),
            binary("a", &[]),
            MessageAttribute {
                name: "a".into(),
                data_type: "String".into(),
                value: AttributeValue::Binary(vec![1]),
            },
        ];
        for attr in bad {
            assert!(validate(std::slice::from_ref(&attr)).is_err(), "{attr:?}");
        }
        let twice = [string("a", "String", "1"), string("a", "String", "2")];
        assert!(validate(&twice).is_err());
    }

    #[test]
    fn numbers_are_decimal() {
        for good in ["0", "-1", "+2.5", ".5", "5.", "1e10", "1.5E-3", "007"] {
            assert!(is_number(good), "{good}");
        }
        for bad in ["", "-", ".", "1e", "e5", "1.2.3", "0x10", "NaN", "1 "] {
            assert!(!is_number(bad), "{bad}");
        }
    }

    #[test]
    fn attributes_survive_the_trip_through_headers() {
        let attrs = vec![
            string("z", "String", "last"),
            string("n", "Number.float", "1.5"),
            binary("b", &(0..=255).collect::<Vec<u8>>()),
            string("s", "String", "plain"),
        ];
        let headers = to_headers(&attrs);
        assert_eq!(headers.len(), 5);
        assert_eq!(
            headers.last().expect("types header"),
            &(
                TYPES_HEADER.to_owned(),
                "n=Number.float;b=Binary".to_owned()
            )
        );
        let back = from_headers(&headers, &AttributeFilter::all());
        let mut sorted = attrs.clone();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back, sorted);
        assert!(to_headers(&[string("s", "String", "v")])
            .iter()
            .all(|(name, _)| name != TYPES_HEADER));
    }

    #[test]
    fn foreign_headers_read_as_strings_and_invalid_names_are_skipped() {
        let headers = vec![
            ("source".to_owned(), "native".to_owned()),
            ("x-death-count".to_owned(), "1".to_owned()),
            ("has space".to_owned(), "skip".to_owned()),
            ("AWS.x".to_owned(), "skip".to_owned()),
            ("ctl".to_owned(), "a\u{1}b".to_owned()),
            ("source".to_owned(), "second".to_owned()),
            ("bin".to_owned(), "not base64!".to_owned()),
            (
                TYPES_HEADER.to_owned(),
                "bin=Binary;x-death-count=Bogus".to_owned(),
            ),
        ];
        let back = from_headers(&headers, &AttributeFilter::all());
        assert_eq!(
            back,
            vec![
                string("bin", "String", "not base64!"),
                string("ctl", "String", "a\u{FFFD}b"),
                string("source", "String", "native"),
                string("x-death-count", "String", "1"),
            ]
        );
    }

    #[test]
    fn the_filter_selects_all_exact_and_prefixed_names() {
        let headers: Vec<(String, String)> =
            ["attrS", "attrN", "pre.a", "pre.b", "prefix", "other"]
                .iter()
                .map(|n| (n.to_string(), "v".to_string()))
                .collect();
        let names = |f: &AttributeFilter| -> Vec<String> {
            from_headers(&headers, f)
                .into_iter()
                .map(|a| a.name)
                .collect()
        };
        let filter = AttributeFilter::new(&["attrS".into(), "pre.*".into()]);
        assert_eq!(names(&filter), ["attrS", "pre.a", "pre.b"]);
        assert_eq!(names(&AttributeFilter::new(&["All".into()])).len(), 6);
        assert_eq!(names(&AttributeFilter::new(&[".*".into()])).len(), 6);
        assert!(names(&AttributeFilter::none()).is_empty());
        assert!(AttributeFilter::new(&[]).is_empty());
        assert_eq!(
            names(&AttributeFilter::new(&["nope".into()])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn sizes_count_names_types_and_raw_values() {
        let attrs = [string("ab", "String", "xyz"), binary("b", &[1, 2, 3, 4])];
        assert_eq!(size(&attrs), 2 + 6 + 3 + 1 + 6 + 4);
        assert_eq!(message_size("héllo", &attrs), 6 + 22);
    }

    #[test]
    fn bodies_must_be_non_empty_allowed_characters() {
        assert!(check_body("body\r\n\t<&>\"' é 😀 \u{E000} \u{10FFFF}").is_ok());
        assert_eq!(
            check_body("").expect_err("empty").code,
            ErrorCode::MissingParameter
        );
        for bad in ["two\u{0}", "\u{1}", "a\u{FFFE}", "\u{B}"] {
            assert_eq!(
                check_body(bad).expect_err(bad).code,
                ErrorCode::InvalidMessageContents
            );
        }
    }

    #[test]
    fn stored_bytes_read_as_allowed_text() {
        assert_eq!(body_text(b"plain\r\n"), "plain\r\n");
        assert_eq!(body_text(&[0xff]), "\u{FFFD}");
        assert_eq!(body_text(b"a\x00b"), "a\u{FFFD}b");
        assert!(check_body(&body_text(&[0xff, 0x00, b'x'])).is_ok());
    }
}
