//! `application/x-www-form-urlencoded` parameters, as the AWS query protocol sends them:
//! the request body and the URL's query string together, lists flattened into indexed
//! keys (`Attribute.1.Name`, `Attribute.1.Value`, `AttributeName.2`).
//!
//! Strict where a lenient parser would change data silently: a bad `%` escape, bytes
//! that are not UTF-8 after decoding, and a key given twice are refused, since a message
//! body altered here would reach consumers (and its MD5) altered.

use std::collections::BTreeMap;

/// Most pairs one request may carry. A full SendMessageBatch (10 entries, each with
/// 10 attributes of 4 keys) is about 450; a ReceiveMessage naming 256 attributes
/// about 260.
pub const PAIRS_MAX: usize = 2048;

/// Why a form could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("malformed form data: {0}")]
    Malformed(String),
    #[error("parameter {0} is given more than once")]
    Duplicate(String),
    #[error("more than {PAIRS_MAX} parameters")]
    TooManyPairs,
    /// `Prefix.N` with N outside `1..=max`: an 11th batch entry, a 257th name, index 0.
    #[error("{prefix}.{index}: the index must be 1 to {max}")]
    Index {
        prefix: String,
        index: String,
        max: u32,
    },
    #[error("value {value:?} for parameter {key} is invalid: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: &'static str,
    },
}

/// Decoded parameters by key. Keys are exact (case-sensitive), as AWS reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: BTreeMap<String, String>,
}

impl Params {
    /// Reads the body's pairs and the query string's (`Action=` may be in either).
    pub fn parse(body: &[u8], query: &str) -> Result<Params, FormError> {
        let mut params = Params::default();
        for source in [body, query.as_bytes()] {
            for pair in source.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
                let (key, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(at) => (&pair[..at], &pair[at + 1..]),
                    None => (pair, &b""[..]),
                };
                params.insert(decode_component(key)?, decode_component(value)?)?;
            }
        }
        Ok(params)
    }

    fn insert(&mut self, key: String, value: String) -> Result<(), FormError> {
        if self.pairs.len() >= PAIRS_MAX {
            return Err(FormError::TooManyPairs);
        }
        if self.pairs.contains_key(&key) {
            return Err(FormError::Duplicate(key));
        }
        self.pairs.insert(key, value);
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.get(key).map(String::as_str)
    }

    /// Whether any key is `key` or starts with `key.` (a list or structure was sent).
    pub fn has(&self, key: &str) -> bool {
        self.pairs
            .keys()
            .any(|k| k == key || k.strip_prefix(key).is_some_and(|r| r.starts_with('.')))
    }

    /// An integer parameter; absent is `None`, anything but a decimal integer an error.
    pub fn int(&self, key: &str) -> Result<Option<i64>, FormError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        value
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| FormError::Invalid {
                key: key.to_owned(),
                value: value.to_owned(),
                reason: "not an integer",
            })
    }

    /// A boolean parameter (`true`/`false`, as botocore writes them).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, FormError> {
        match self.get(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(FormError::Invalid {
                key: key.to_owned(),
                value: other.to_owned(),
                reason: "not true or false",
            }),
        }
    }

    /// The members of the flattened list `prefix`: for each index N in `prefix.N` and
    /// `prefix.N.Sub`, the parameters under it with `prefix.N.` cut off (a bare
    /// `prefix.N` becomes the key `""`). Sorted by index; N must be `1..=max`.
    pub fn indexed(&self, prefix: &str, max: u32) -> Result<Vec<(u32, Params)>, FormError> {
        let mut members: BTreeMap<u32, Params> = BTreeMap::new();
        let dotted = format!("{prefix}.");
        for (key, value) in self.pairs.range(dotted.clone()..) {
            let Some(rest) = key.strip_prefix(&dotted) else {
                break;
            };
            let (index, sub) = rest.split_once('.').unwrap_or((rest, ""));
            let n = parse_index(index)
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| FormError::Index {
                    prefix: prefix.to_owned(),
                    index: index.to_owned(),
                    max,
                })?;
            members
                .entry(n)
                .or_default()
                .pairs
                .insert(sub.to_owned(), value.clone());
        }
        Ok(members.into_iter().collect())
    }

    /// The values of a flattened list of strings `prefix.N` (`AttributeName.1`, …).
    pub fn list(&self, prefix: &str, max: u32) -> Result<Vec<String>, FormError> {
        Ok(self
            .indexed(prefix, max)?
            .into_iter()
            .filter_map(|(_, member)| member.get("").map(str::to_owned))
            .collect())
    }
}

/// A list index as botocore writes it: decimal, no sign, no leading zero, at most 9
/// digits (so it fits a u32 before the range check).
fn parse_index(text: &str) -> Option<u32> {
    let plain = !text.is_empty()
        && text.len() <= 9
        && text.bytes().all(|b| b.is_ascii_digit())
        && !(text.len() > 1 && text.starts_with('0'));
    plain.then(|| text.parse().ok()).flatten()
}

/// One key or value: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode_component(raw: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16).ok()
                });
                let Some(byte) = hex else {
                    return Err(FormError::Malformed(
                        "a % is not followed by two hex digits".into(),
                    ));
                };
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| FormError::Malformed("a parameter is not valid UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_and_query_string_are_read_together() {
        let p =
            Params::parse(b"QueueName=a+b%2Fc&Empty=&Bare", "Action=CreateQueue").expect("parses");
        assert_eq!(p.get("Action"), Some("CreateQueue"));
        assert_eq!(p.get("QueueName"), Some("a b/c"));
        assert_eq!(p.get("Empty"), Some(""));
        assert_eq!(p.get("Bare"), Some(""));
        assert_eq!(p.get("Missing"), None);
    }

    #[test]
    fn a_key_given_twice_is_refused_even_across_body_and_query() {
        assert_eq!(
            Params::parse(b"A=1&A=2", ""),
            Err(FormError::Duplicate("A".into()))
        );
        assert_eq!(
            Params::parse(b"A=1", "A=1"),
            Err(FormError::Duplicate("A".into()))
        );
    }

    #[test]
    fn bad_escapes_and_non_utf8_are_refused() {
        assert!(matches!(
            Params::parse(b"A=%zz", ""),
            Err(FormError::Malformed(_))
        ));
        assert!(matches!(
            Params::parse(b"A=%4", ""),
            Err(FormError::Malformed(_))
        ));
        assert!(matches!(
            Params::parse(b"A=%ff%fe", ""),
            Err(FormError::Malformed(_))
        ));
        assert!(matches!(
            Params::parse(b"A=\xff", ""),
            Err(FormError::Malformed(_))
        ));
        let p = Params::parse(b"A=%F0%9F%98%80%0D%0A", "").expect("parses");
        assert_eq!(p.get("A"), Some("😀\r\n"));
    }

    #[test]
    fn pairs_are_bounded() {
        let body: Vec<String> = (0..=PAIRS_MAX).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            Params::parse(body.join("&").as_bytes(), ""),
            Err(FormError::TooManyPairs)
        );
        let body: Vec<String> = (0..PAIRS_MAX).map(|i| format!("k{i}=v")).collect();
        assert!(Params::parse(body.join("&").as_bytes(), "").is_ok());
    }

    #[test]
    fn indexed_members_are_grouped_and_sorted_by_index() {
        let p = Params::parse(
            b"Attribute.2.Name=B&Attribute.1.Name=A&Attribute.1.Value=1&Attribute.10.Name=J&AttributeName.1=x&Attributes=no",
            "",
        )
        .expect("parses");
        let members = p.indexed("Attribute", 10).expect("parses");
        let indexes: Vec<u32> = members.iter().map(|(n, _)| *n).collect();
        assert_eq!(indexes, [1, 2, 10]);
        assert_eq!(members[0].1.get("Name"), Some("A"));
        assert_eq!(members[0].1.get("Value"), Some("1"));
        assert_eq!(members[1].1.get("Value"), None);
        assert_eq!(p.list("AttributeName", 10).expect("valid"), ["x"]);
        assert!(p.has("Attribute") && p.has("Attributes") && !p.has("Attr"));
    }

    #[test]
    fn an_index_outside_one_to_max_is_refused() {
        for bad in ["0", "11", "01", "-1", "x", "", "99999999999"] {
            let body = format!("Entry.{bad}.Id=a");
            let p = Params::parse(body.as_bytes(), "").expect("parses");
            assert!(
                matches!(
                    p.indexed("Entry", 10),
                    Err(FormError::Index { max: 10, .. })
                ),
                "{bad}"
            );
        }
        let p = Params::parse(b"Entry.10.Id=a", "").expect("parses");
        assert_eq!(p.indexed("Entry", 10).expect("valid").len(), 1);
        let p = Params::parse(b"Name.257=a", "").expect("parses");
        assert!(p.list("Name", 256).is_err());
        let p = Params::parse(b"Name.256=a", "").expect("parses");
        assert_eq!(p.list("Name", 256).expect("valid"), ["a"]);
    }

    #[test]
    fn integers_and_booleans_are_checked() {
        let p = Params::parse(b"N=42&M=-3&X=4.5&B=true&C=yes", "").expect("parses");
        assert_eq!(p.int("N"), Ok(Some(42)));
        assert_eq!(p.int("M"), Ok(Some(-3)));
        assert_eq!(p.int("Z"), Ok(None));
        assert!(p.int("X").is_err());
        assert_eq!(p.bool("B"), Ok(Some(true)));
        assert!(p.bool("C").is_err());
    }
}
