//! Subscription filter policies, as SNS documents them: a JSON object whose keys name
//! message attributes (scope `MessageAttributes`) or properties of a JSON message body
//! (scope `MessageBody`, where keys nest), each key holding an array of conditions.
//!
//! - Keys AND together; the conditions of one key OR together; `"$or": [policy, …]`
//!   at any level ORs whole sub-policies (and ANDs with the keys beside it).
//! - Conditions: an exact string, number (compared as numbers), `true`, `false` or
//!   `null`; `{"prefix": s}`, `{"suffix": s}`, `{"equals-ignore-case": s}`,
//!   `{"anything-but": value | [values] | {"prefix": s} | {"suffix": s}}`,
//!   `{"numeric": ["=", n]}` or one lower (`>`, `>=`) and/or one upper (`<`, `<=`)
//!   bound, `{"exists": true | false}`.
//! - A condition other than `exists: false` needs the key to be there. A `String.Array`
//!   attribute (or a JSON array in the body) matches when any element does. Numbers
//!   match `Number` attributes and JSON numbers; strings match `String` attributes and
//!   JSON strings; a `Binary` attribute matches only `exists`.
//! - A body that is not a JSON object matches no body-scope policy.
//!
//! Limits (SNS's): the policy at most `POLICY_BYTES_MAX`, keys nested at most
//! `DEPTH_MAX` levels, at most `COMBINATIONS_MAX` combinations (the product over keys
//! of their condition counts, `$or` branches added), numbers within ±`NUMBER_MAX`.
//! Anything else is refused with InvalidParameter naming the rule.

use serde_json::{Map, Value};

use super::errors::WireError;
use super::model::{AttributeValue, MessageAttribute};

/// The DataType of an attribute holding a JSON array.
pub const STRING_ARRAY: &str = "String.Array";
/// Largest filter policy, in bytes.
pub const POLICY_BYTES_MAX: usize = 256 * 1024;
/// Deepest nesting of keys (body scope; attribute scope has one level).
pub const DEPTH_MAX: usize = 5;
/// Most combinations of conditions in one policy.
pub const COMBINATIONS_MAX: u64 = 150;
/// Largest magnitude of a number in a numeric condition.
pub const NUMBER_MAX: f64 = 1e9;

/// What a policy is matched against (the subscription's FilterPolicyScope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    MessageAttributes,
    MessageBody,
}

impl Scope {
    /// The FilterPolicyScope attribute's value.
    pub fn from_name(name: &str) -> Option<Scope> {
        match name {
            "MessageAttributes" => Some(Scope::MessageAttributes),
            "MessageBody" => Some(Scope::MessageBody),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scope::MessageAttributes => "MessageAttributes",
            Scope::MessageBody => "MessageBody",
        }
    }
}

/// A parsed, checked filter policy.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPolicy {
    scope: Scope,
    root: Node,
}

/// One object of the policy: every key must match, and one branch of each `$or`.
#[derive(Debug, Clone, PartialEq, Default)]
struct Node {
    keys: Vec<(String, Field)>,
    ors: Vec<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Conditions(Vec<Condition>),
    Nested(Node),
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Exact(Literal),
    Prefix(String),
    Suffix(String),
    IgnoreCase(String),
    AnythingBut(AnythingBut),
    Numeric(Range),
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum AnythingBut {
    Values(Vec<Literal>),
    Prefix(String),
    Suffix(String),
}

/// A numeric range; a bound is (value, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Range {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

/// One value of the message a condition is tested on.
#[derive(Debug, Clone, Copy)]
enum Seen<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Null,
}

fn refuse(why: impl std::fmt::Display) -> WireError {
    WireError::invalid(format!("FilterPolicy: {why}"))
}

impl FilterPolicy {
    /// Reads and checks a policy (the FilterPolicy attribute) for `scope`.
    pub fn parse(json: &str, scope: Scope) -> Result<FilterPolicy, WireError> {
        if json.len() > POLICY_BYTES_MAX {
            return Err(refuse(format!(
                "Filter policy is too long: {} bytes, at most {POLICY_BYTES_MAX}",
                json.len()
            )));
        }
        let value: Value =
            serde_json::from_str(json).map_err(|e| refuse(format!("failed to parse JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(refuse("Filter policy must be a JSON object"));
        };
        let root = node(&object, scope, 1)?;
        let combinations = root.combinations();
        if combinations > COMBINATIONS_MAX {
            return Err(refuse(format!(
                "Filter policy is too complex: {combinations} combinations of values, at most {COMBINATIONS_MAX}"
            )));
        }
        Ok(FilterPolicy { scope, root })
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Whether a message passes: its attributes (attribute scope) or its body (body
    /// scope).
    pub fn matches(&self, attrs: &[MessageAttribute], body: &str) -> bool {
        match self.scope {
            Scope::MessageAttributes => self.root.matches_attributes(attrs),
            Scope::MessageBody => match serde_json::from_str::<Value>(body) {
                Ok(Value::Object(object)) => self.root.matches_object(Some(&object)),
                _ => false,
            },
        }
    }
}

fn node(object: &Map<String, Value>, scope: Scope, depth: usize) -> Result<Node, WireError> {
    if depth > DEPTH_MAX {
        return Err(refuse(format!(
            "Filter policy can not be nested more than {DEPTH_MAX} levels"
        )));
    }
    let mut node = Node::default();
    for (key, value) in object {
        if key == "$or" {
            node.ors.push(or_branches(value, scope, depth)?);
            continue;
        }
        let field =
            match value {
                Value::Array(items) => Field::Conditions(conditions(key, items)?),
                Value::Object(inner) if scope == Scope::MessageBody => {
                    Field::Nested(node_of(inner, scope, depth + 1)?)
                }
                Value::Object(_) => return Err(refuse(
                    "Filter policy scope MessageAttributes does not support nested filter policy",
                )),
                _ => {
                    return Err(refuse(format!(
                        "the value of {key:?} must be an array of conditions"
                    )))
                }
            };
        node.keys.push((key.clone(), field));
    }
    Ok(node)
}

fn node_of(object: &Map<String, Value>, scope: Scope, depth: usize) -> Result<Node, WireError> {
    if object.is_empty() {
        return Err(refuse("an empty object is not a filter"));
    }
    node(object, scope, depth)
}

fn or_branches(value: &Value, scope: Scope, depth: usize) -> Result<Vec<Node>, WireError> {
    let branches = match value {
        Value::Array(items) if items.len() >= 2 => items,
        _ => {
            return Err(refuse(
                "$or must be an array of at least two filter policies",
            ))
        }
    };
    branches
        .iter()
        .map(|b| match b {
            Value::Object(object) => node_of(object, scope, depth),
            _ => Err(refuse("each $or branch must be a filter policy object")),
        })
        .collect()
}

fn conditions(key: &str, items: &[Value]) -> Result<Vec<Condition>, WireError> {
    if items.is_empty() {
        return Err(refuse(format!(
            "the conditions of {key:?} must not be empty"
        )));
    }
    items.iter().map(|item| condition(key, item)).collect()
}

fn condition(key: &str, item: &Value) -> Result<Condition, WireError> {
    if let Some(literal) = literal(item)? {
        return Ok(Condition::Exact(literal));
    }
    let Value::Object(object) = item else {
        return Err(refuse(format!(
            "{key:?}: a condition must be a string, number, true, false, null or an operator object"
        )));
    };
    let mut operators = object.iter();
    let (Some((operator, operand)), None) = (operators.next(), operators.next()) else {
        return Err(refuse(format!(
            "{key:?}: an operator object has exactly one operator"
        )));
    };
    match operator.as_str() {
        "prefix" => Ok(Condition::Prefix(text(operator, operand)?)),
        "suffix" => Ok(Condition::Suffix(text(operator, operand)?)),
        "equals-ignore-case" => Ok(Condition::IgnoreCase(text(operator, operand)?)),
        "anything-but" => anything_but(operand).map(Condition::AnythingBut),
        "numeric" => numeric(operand).map(Condition::Numeric),
        "exists" => match operand {
            Value::Bool(b) => Ok(Condition::Exists(*b)),
            _ => Err(refuse("exists match pattern must be either true or false.")),
        },
        other => Err(refuse(format!(
            "Unrecognized match type {other} (served: prefix, suffix, equals-ignore-case, anything-but, numeric, exists)"
        ))),
    }
}

/// A JSON scalar as an exact value; `None` for objects and arrays.
fn literal(value: &Value) -> Result<Option<Literal>, WireError> {
    Ok(match value {
        Value::String(s) => Some(Literal::Str(s.clone())),
        Value::Number(n) => Some(Literal::Num(number(n)?)),
        Value::Bool(b) => Some(Literal::Bool(*b)),
        Value::Null => Some(Literal::Null),
        Value::Array(_) | Value::Object(_) => None,
    })
}

fn number(n: &serde_json::Number) -> Result<f64, WireError> {
    match n.as_f64() {
        Some(f) if f.abs() <= NUMBER_MAX => Ok(f),
        _ => Err(refuse(format!(
            "numbers must be within -{NUMBER_MAX:e} to {NUMBER_MAX:e}, got {n}"
        ))),
    }
}

fn text(operator: &str, operand: &Value) -> Result<String, WireError> {
    match operand {
        Value::String(s) => Ok(s.clone()),
        _ => Err(refuse(format!("{operator} match pattern must be a string"))),
    }
}

fn anything_but(operand: &Value) -> Result<AnythingBut, WireError> {
    match operand {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| match literal(v)? {
                Some(l @ (Literal::Str(_) | Literal::Num(_))) => Ok(l),
                _ => Err(refuse("anything-but values must be strings or numbers")),
            })
            .collect::<Result<_, _>>()
            .map(AnythingBut::Values),
        Value::Object(object) if object.len() == 1 => {
            let (operator, inner) = object
                .iter()
                .next()
                .map_or(("", &Value::Null), |(k, v)| (k.as_str(), v));
            match operator {
                "prefix" => Ok(AnythingBut::Prefix(text(operator, inner)?)),
                "suffix" => Ok(AnythingBut::Suffix(text(operator, inner)?)),
                _ => Err(refuse(
                    "anything-but takes values, {\"prefix\": …} or {\"suffix\": …}",
                )),
            }
        }
        Value::String(_) | Value::Number(_) => match literal(operand)? {
            Some(l) => Ok(AnythingBut::Values(vec![l])),
            None => Err(refuse("anything-but needs a value")),
        },
        _ => Err(refuse(
            "anything-but takes values, {\"prefix\": …} or {\"suffix\": …}",
        )),
    }
}

fn numeric(operand: &Value) -> Result<Range, WireError> {
    let bad =
        || refuse("numeric takes [\"=\", n] or a lower (>, >=) and/or an upper (<, <=) bound");
    let Value::Array(items) = operand else {
        return Err(bad());
    };
    if items.is_empty() || items.len() > 4 || items.len() % 2 != 0 {
        return Err(bad());
    }
    let mut range = Range::default();
    for pair in items.chunks(2) {
        let (Value::String(op), Value::Number(n)) = (&pair[0], &pair[1]) else {
            return Err(bad());
        };
        let n = number(n)?;
        let slot = match op.as_str() {
            "=" if items.len() == 2 => {
                range.lower = Some((n, true));
                &mut range.upper
            }
            ">" | ">=" => &mut range.lower,
            "<" | "<=" => &mut range.upper,
            _ => return Err(bad()),
        };
        // "=", ">=" and "<=" include their bound.
        if slot.replace((n, op.ends_with('='))).is_some() {
            return Err(bad());
        }
    }
    if let (Some((low, _)), Some((high, _))) = (range.lower, range.upper) {
        if low > high {
            return Err(refuse("numeric: the lower bound is above the upper bound"));
        }
    }
    Ok(range)
}

impl Node {
    fn combinations(&self) -> u64 {
        let keys = self.keys.iter().fold(1u64, |acc, (_, field)| {
            let n = match field {
                Field::Conditions(c) => c.len() as u64,
                Field::Nested(node) => node.combinations(),
            };
            acc.saturating_mul(n)
        });
        self.ors.iter().fold(keys, |acc, branches| {
            let sum = branches
                .iter()
                .fold(0u64, |s, b| s.saturating_add(b.combinations()));
            acc.saturating_mul(sum)
        })
    }

    fn matches_attributes(&self, attrs: &[MessageAttribute]) -> bool {
        let keys = self.keys.iter().all(|(key, field)| {
            let Field::Conditions(conditions) = field else {
                return false; // parse refuses nesting in this scope
            };
            let attr = attrs.iter().find(|a| &a.name == key);
            let parsed;
            let values: Vec<Seen> = match attr {
                None => Vec::new(),
                Some(a) => {
                    parsed = attribute_values(a);
                    parsed.as_ref().map(to_seen).unwrap_or_default()
                }
            };
            leaf_matches(conditions, attr.is_some(), &values)
        });
        keys && self
            .ors
            .iter()
            .all(|branches| branches.iter().any(|b| b.matches_attributes(attrs)))
    }

    /// `object` is None where the body has no object at this path.
    fn matches_object(&self, object: Option<&Map<String, Value>>) -> bool {
        let keys = self.keys.iter().all(|(key, field)| {
            let value = object.and_then(|o| o.get(key));
            match field {
                Field::Conditions(conditions) => {
                    let mut values = Vec::new();
                    if let Some(v) = value {
                        scalars(v, &mut values);
                    }
                    leaf_matches(conditions, value.is_some_and(|v| !v.is_object()), &values)
                }
                Field::Nested(node) => match value {
                    Some(Value::Object(inner)) => node.matches_object(Some(inner)),
                    Some(Value::Array(items)) => items.iter().any(|item| match item {
                        Value::Object(inner) => node.matches_object(Some(inner)),
                        _ => false,
                    }),
                    _ => node.matches_object(None),
                },
            }
        });
        keys && self
            .ors
            .iter()
            .all(|branches| branches.iter().any(|b| b.matches_object(object)))
    }
}

/// What an attribute's value is to a filter: a String's text, a Number's number, a
/// String.Array's elements, nothing for Binary (it only exists).
enum AttributeValues {
    One(String, bool),
    Array(Vec<Value>),
}

fn attribute_values(attr: &MessageAttribute) -> Option<AttributeValues> {
    let AttributeValue::String(text) = &attr.value else {
        return None;
    };
    if attr.data_type == STRING_ARRAY {
        return serde_json::from_str::<Vec<Value>>(text)
            .ok()
            .map(AttributeValues::Array);
    }
    let is_number = attr.data_type == "Number" || attr.data_type.starts_with("Number.");
    Some(AttributeValues::One(text.clone(), is_number))
}

fn to_seen(values: &AttributeValues) -> Vec<Seen<'_>> {
    match values {
        AttributeValues::One(text, true) => text
            .trim()
            .parse::<f64>()
            .map(Seen::Num)
            .into_iter()
            .collect(),
        AttributeValues::One(text, false) => vec![Seen::Str(text)],
        AttributeValues::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                scalars(item, &mut out);
            }
            out
        }
    }
}

/// The scalars a JSON value offers a leaf: itself, or an array's scalar elements.
fn scalars<'a>(value: &'a Value, out: &mut Vec<Seen<'a>>) {
    match value {
        Value::String(s) => out.push(Seen::Str(s)),
        Value::Number(n) => out.extend(n.as_f64().map(Seen::Num)),
        Value::Bool(b) => out.push(Seen::Bool(*b)),
        Value::Null => out.push(Seen::Null),
        Value::Array(items) => {
            for item in items.iter().filter(|i| !i.is_array()) {
                scalars(item, out);
            }
        }
        Value::Object(_) => {}
    }
}

/// One key's conditions (ORed) against the values found for it.
fn leaf_matches(conditions: &[Condition], present: bool, values: &[Seen]) -> bool {
    conditions.iter().any(|c| match c {
        Condition::Exists(wanted) => *wanted == present,
        _ => values.iter().any(|v| condition_matches(c, *v)),
    })
}

fn condition_matches(condition: &Condition, value: Seen) -> bool {
    match (condition, value) {
        (Condition::Exact(literal), v) => literal_equals(literal, v),
        (Condition::Prefix(p), Seen::Str(s)) => s.starts_with(p.as_str()),
        (Condition::Suffix(p), Seen::Str(s)) => s.ends_with(p.as_str()),
        (Condition::IgnoreCase(p), Seen::Str(s)) => s.to_lowercase() == p.to_lowercase(),
        (Condition::AnythingBut(AnythingBut::Values(values)), v) => {
            !values.iter().any(|l| literal_equals(l, v))
        }
        (Condition::AnythingBut(AnythingBut::Prefix(p)), Seen::Str(s)) => {
            !s.starts_with(p.as_str())
        }
        (Condition::AnythingBut(AnythingBut::Suffix(p)), Seen::Str(s)) => !s.ends_with(p.as_str()),
        (Condition::Numeric(range), Seen::Num(n)) => range.contains(n),
        _ => false,
    }
}

fn literal_equals(literal: &Literal, value: Seen) -> bool {
    match (literal, value) {
        (Literal::Str(a), Seen::Str(b)) => a == b,
        (Literal::Num(a), Seen::Num(b)) => a == &b,
        (Literal::Bool(a), Seen::Bool(b)) => *a == b,
        (Literal::Null, Seen::Null) => true,
        _ => false,
    }
}

impl Range {
    fn contains(&self, n: f64) -> bool {
        let above = self
            .lower
            .is_none_or(|(low, inclusive)| if inclusive { n >= low } else { n > low });
        let below = self
            .upper
            .is_none_or(|(high, inclusive)| if inclusive { n <= high } else { n < high });
        above && below
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message attributes of SNS's filter policy documentation.
    fn attrs() -> Vec<MessageAttribute> {
        let s = |name: &str, data_type: &str, value: &str| MessageAttribute {
            name: name.into(),
            data_type: data_type.into(),
            value: AttributeValue::String(value.into()),
        };
        vec![
            s(
                "customer_interests",
                STRING_ARRAY,
                r#"["soccer", "rugby", "hockey"]"#,
            ),
            s("store", "String", "example_corp"),
            s("event", "String", "order_placed"),
            s("price_usd", "Number", "210.75"),
            s("quantity", "Number.int", "3"),
            MessageAttribute {
                name: "blob".into(),
                data_type: "Binary".into(),
                value: AttributeValue::Binary(vec![1]),
            },
        ]
    }

    const BODY: &str = r#"{"store": "example_corp", "event": "order_placed",
        "customer_interests": ["soccer", "rugby"], "price_usd": 210.75, "gift": true, "note": null,
        "order": {"id": 7, "items": [{"sku": "a-1"}, {"sku": "b-2"}], "address": {"city": {"name": "Lyon"}}}}"#;

    fn check(scope: Scope, table: &[(&str, bool)]) {
        for (policy, expected) in table {
            let parsed =
                FilterPolicy::parse(policy, scope).unwrap_or_else(|e| panic!("{policy}: {e}"));
            assert_eq!(parsed.matches(&attrs(), BODY), *expected, "{policy}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn attribute_policies_from_the_sns_documentation() {
        check(Scope::MessageAttributes, &[
            (r#"{}"#, true),
            (r#"{"store": ["example_corp"], "event": [{"anything-but": "order_cancelled"}], "customer_interests": ["rugby", "football", "baseball"], "price_usd": [{"numeric": [">=", 100]}]}"#, true),
            (r#"{"store": ["other_corp"]}"#, false),
            (r#"{"store": ["other_corp", "example_corp"]}"#, true),
            (r#"{"store": ["example_corp"], "event": ["order_cancelled"]}"#, false),
            (r#"{"customer_interests": ["rugby"]}"#, true),
            (r#"{"customer_interests": ["tennis"]}"#, false),
            (r#"{"customer_interests": [{"prefix": "hock"}]}"#, true),
            (r#"{"customer_interests": [{"prefix": "bas"}]}"#, false),
            (r#"{"store": [{"suffix": "_corp"}]}"#, true),
            (r#"{"store": [{"suffix": "_inc"}]}"#, false),
            (r#"{"store": [{"equals-ignore-case": "EXAMPLE_Corp"}]}"#, true),
            (r#"{"store": [{"equals-ignore-case": "example"}]}"#, false),
            (r#"{"event": [{"anything-but": ["order_cancelled", "order_failed"]}]}"#, true),
            (r#"{"event": [{"anything-but": ["order_placed"]}]}"#, false),
            (r#"{"event": [{"anything-but": {"prefix": "order_"}}]}"#, false),
            (r#"{"event": [{"anything-but": {"prefix": "refund_"}}]}"#, true),
            (r#"{"event": [{"anything-but": {"suffix": "_placed"}}]}"#, false),
            (r#"{"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}"#, true),
            (r#"{"price_usd": [{"anything-but": [210.75]}]}"#, false),
            (r#"{"price_usd": [{"anything-but": [100, 200]}]}"#, true),
            (r#"{"price_usd": [210.75]}"#, true),
            (r#"{"price_usd": [2.1075e2]}"#, true),
            (r#"{"price_usd": ["210.75"]}"#, false),
            (r#"{"price_usd": [{"numeric": ["=", 210.75]}]}"#, true),
            (r#"{"price_usd": [{"numeric": [">", 0, "<=", 150]}]}"#, false),
            (r#"{"price_usd": [{"numeric": [">", 210.75]}]}"#, false),
            (r#"{"price_usd": [{"numeric": [">=", 210.75, "<", 300]}]}"#, true),
            (r#"{"price_usd": [{"numeric": ["<", 210.75]}]}"#, false),
            (r#"{"price_usd": [{"numeric": ["<=", 210.75]}]}"#, true),
            (r#"{"quantity": [{"numeric": ["=", 3]}]}"#, true),
            (r#"{"store": [{"numeric": [">", 0]}]}"#, false),
            (r#"{"store": [{"exists": true}]}"#, true),
            (r#"{"store": [{"exists": false}]}"#, false),
            (r#"{"encrypted": [{"exists": false}]}"#, true),
            (r#"{"encrypted": [{"exists": true}]}"#, false),
            (r#"{"encrypted": [{"anything-but": "x"}]}"#, false),
            (r#"{"blob": [{"exists": true}]}"#, true),
            (r#"{"blob": ["\u0001"]}"#, false),
            (r#"{"store": ["example_corp"], "$or": [{"event": ["order_cancelled"]}, {"price_usd": [{"numeric": [">", 200]}]}]}"#, true),
            (r#"{"store": ["example_corp"], "$or": [{"event": ["order_cancelled"]}, {"price_usd": [{"numeric": ["<", 200]}]}]}"#, false),
            (r#"{"store": ["other"], "$or": [{"event": ["order_placed"]}, {"event": ["x"]}]}"#, false),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn body_policies_nest_and_read_arrays() {
        check(Scope::MessageBody, &[
            (r#"{"store": ["example_corp"], "customer_interests": ["rugby"]}"#, true),
            (r#"{"price_usd": [{"numeric": [">", 200]}]}"#, true),
            (r#"{"order": {"id": [7]}}"#, true),
            (r#"{"order": {"id": [8]}}"#, false),
            (r#"{"order": {"items": {"sku": [{"prefix": "b-"}]}}}"#, true),
            (r#"{"order": {"items": {"sku": ["c-3"]}}}"#, false),
            (r#"{"order": {"address": {"city": {"name": ["Lyon"]}}}}"#, true),
            (r#"{"order": {"coupon": [{"exists": false}]}}"#, true),
            (r#"{"order": {"id": [{"exists": true}]}}"#, true),
            (r#"{"order": [{"exists": true}]}"#, false),
            (r#"{"missing": {"deeper": [{"exists": false}]}}"#, true),
            (r#"{"gift": [true]}"#, true),
            (r#"{"gift": [false]}"#, false),
            (r#"{"note": [null]}"#, true),
            (r#"{"$or": [{"store": ["x"]}, {"order": {"id": [7]}}]}"#, true),
        ]);
        let policy = FilterPolicy::parse(r#"{"a": ["b"]}"#, Scope::MessageBody).expect("parses");
        assert!(policy.matches(&[], r#"{"a": "b"}"#));
        for body in ["not json", "[1]", "\"a\"", ""] {
            assert!(!policy.matches(&[], body), "{body}");
        }
        // Attributes do not count in body scope, and the body not in attribute scope.
        assert!(!policy.matches(&attrs(), "{}"));
        let attr_policy = FilterPolicy::parse(r#"{"a": ["b"]}"#, Scope::MessageAttributes).expect("parses");
        assert!(!attr_policy.matches(&[], r#"{"a": "b"}"#));
    }

    fn refused(policy: &str, scope: Scope) -> String {
        match FilterPolicy::parse(policy, scope) {
            Ok(p) => panic!("{policy} parsed: {p:?}"),
            Err(e) => {
                assert_eq!(
                    e.code,
                    super::super::ErrorCode::InvalidParameter,
                    "{policy}"
                );
                assert!(
                    e.message.starts_with("Invalid parameter: FilterPolicy: "),
                    "{}",
                    e.message
                );
                e.message
            }
        }
    }

    #[test]
    fn malformed_policies_are_refused() {
        for policy in [
            "",
            "[]",
            "\"x\"",
            "{\"a\": \"b\"}",
            "{\"a\": []}",
            "{\"a\": [[1]]}",
            "{\"a\": [{\"cidr\": \"10.0.0.0/8\"}]}",
            "{\"a\": [{\"prefix\": 1}]}",
            "{\"a\": [{\"prefix\": \"x\", \"suffix\": \"y\"}]}",
            "{\"a\": [{}]}",
            "{\"a\": [{\"exists\": \"yes\"}]}",
            "{\"a\": [{\"anything-but\": []}]}",
            "{\"a\": [{\"anything-but\": [true]}]}",
            "{\"a\": [{\"anything-but\": {\"equals\": \"x\"}}]}",
            "{\"a\": [{\"numeric\": [\">\"]}]}",
            "{\"a\": [{\"numeric\": [\"!=\", 1]}]}",
            "{\"a\": [{\"numeric\": [\">\", 1, \">\", 2]}]}",
            "{\"a\": [{\"numeric\": [\"=\", 1, \"<\", 2]}]}",
            "{\"a\": [{\"numeric\": [\">\", 5, \"<\", 2]}]}",
            "{\"a\": [{\"numeric\": [\">\", \"1\"]}]}",
            "{\"a\": [{\"numeric\": [\">\", 1e10]}]}",
            "{\"a\": [1e10]}",
            "{\"$or\": [{\"a\": [\"b\"]}]}",
            "{\"$or\": {\"a\": [\"b\"]}}",
            "{\"$or\": [{\"a\": [\"b\"]}, 1]}",
        ] {
            refused(policy, Scope::MessageAttributes);
        }
        let nested = refused("{\"a\": {\"b\": [\"c\"]}}", Scope::MessageAttributes);
        assert!(nested.contains("nested"), "{nested}");
        assert!(FilterPolicy::parse("{\"a\": {\"b\": [\"c\"]}}", Scope::MessageBody).is_ok());
        refused("{\"a\": {}}", Scope::MessageBody);
    }

    #[test]
    fn policies_are_bounded_as_sns_bounds_them() {
        // Five levels of keys pass, six do not.
        let five = r#"{"a": {"b": {"c": {"d": {"e": ["x"]}}}}}"#;
        assert!(FilterPolicy::parse(five, Scope::MessageBody).is_ok());
        let six = r#"{"a": {"b": {"c": {"d": {"e": {"f": ["x"]}}}}}}"#;
        assert!(refused(six, Scope::MessageBody).contains("5 levels"));
        // 150 combinations pass (10 * 15), 169 (13 * 13) do not; $or branches add up.
        let values = |n: usize| {
            let v: Vec<String> = (0..n).map(|i| format!("\"v{i}\"")).collect();
            format!("[{}]", v.join(","))
        };
        let ok = format!("{{\"a\": {}, \"b\": {}}}", values(10), values(15));
        assert!(FilterPolicy::parse(&ok, Scope::MessageAttributes).is_ok());
        let complex = format!("{{\"a\": {}, \"b\": {}}}", values(13), values(13));
        assert!(refused(&complex, Scope::MessageAttributes).contains("too complex"));
        let ors = format!(
            "{{\"a\": {}, \"$or\": [{{\"b\": {}}}, {{\"c\": {}}}]}}",
            values(5),
            values(15),
            values(16)
        );
        assert!(refused(&ors, Scope::MessageAttributes).contains("155"));
        // At most 256 KiB of policy.
        let long = format!("{{\"a\": [\"{}\"]}}", "x".repeat(POLICY_BYTES_MAX));
        assert!(refused(&long, Scope::MessageAttributes).contains("too long"));
    }

    #[test]
    fn scope_names() {
        assert_eq!(Scope::from_name("MessageBody"), Some(Scope::MessageBody));
        assert_eq!(
            Scope::from_name("MessageAttributes"),
            Some(Scope::MessageAttributes)
        );
        assert_eq!(Scope::from_name("messagebody"), None);
        assert_eq!(Scope::default().name(), "MessageAttributes");
    }
}
