//! Exchanges: where a publish goes. Pure routing over the bindings of one exchange
//! (AMQP semantics): direct (exact routing key), fanout (every binding), topic
//! (dot-separated words; `*` one word, `#` zero or more) and headers (`all` or `any` of
//! the bound `key=value` pairs). A binding's target is a queue or a stream topic.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BindTarget {
    Queue(String),
    Topic(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub exchange: String,
    pub target: BindTarget,
    /// Direct: the key; topic: the pattern; fanout and headers: unused.
    pub routing_key: String,
    /// Headers exchanges: the pairs to match.
    pub headers: Vec<(String, String)>,
    /// Headers exchanges: every pair (true) or any one.
    pub match_all: bool,
}

/// AMQP topic matching: `*` is exactly one word, `#` zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    matches_from(&pattern, &key)
}

fn matches_from(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches_from(rest, &key[skip..])),
        Some((word, rest)) => match key.split_first() {
            Some((k, key_rest)) => (*word == "*" || word == k) && matches_from(rest, key_rest),
            None => false,
        },
    }
}

fn headers_match(binding: &Binding, headers: &[(String, String)]) -> bool {
    let has = |(k, v): &(String, String)| headers.iter().any(|(hk, hv)| hk == k && hv == v);
    if binding.headers.is_empty() {
        return binding.match_all;
    }
    if binding.match_all {
        binding.headers.iter().all(has)
    } else {
        binding.headers.iter().any(has)
    }
}

/// The targets a publish reaches through `bindings` (those of one exchange), each once,
/// in binding order.
pub fn route(
    kind: ExchangeKind,
    bindings: &[&Binding],
    routing_key: &str,
    headers: &[(String, String)],
) -> Vec<BindTarget> {
    let mut out: Vec<BindTarget> = Vec::new();
    for b in bindings {
        let hit = match kind {
            ExchangeKind::Direct => b.routing_key == routing_key,
            ExchangeKind::Fanout => true,
            ExchangeKind::Topic => topic_matches(&b.routing_key, routing_key),
            ExchangeKind::Headers => headers_match(b, headers),
        };
        if hit && !out.contains(&b.target) {
            out.push(b.target.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(target: &str, key: &str) -> Binding {
        Binding {
            exchange: "x".into(),
            target: BindTarget::Queue(target.into()),
            routing_key: key.into(),
            headers: Vec::new(),
            match_all: true,
        }
    }

    fn names(t: Vec<BindTarget>) -> Vec<String> {
        t.into_iter()
            .map(|t| match t {
                BindTarget::Queue(n) | BindTarget::Topic(n) => n,
            })
            .collect()
    }

    #[test]
    fn topic_patterns_follow_amqp() {
        assert!(topic_matches("stock.*.nyse", "stock.ibm.nyse"));
        assert!(!topic_matches("stock.*.nyse", "stock.nyse"));
        assert!(!topic_matches("stock.*", "stock.ibm.nyse"));
        assert!(topic_matches("stock.#", "stock"));
        assert!(topic_matches("stock.#", "stock.ibm.nyse"));
        assert!(topic_matches("#.nyse", "stock.ibm.nyse"));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("#", "a.b.c"));
        assert!(topic_matches("a.#.c", "a.c"));
        assert!(topic_matches("a.#.c", "a.x.y.c"));
        assert!(!topic_matches("a.#.c", "a.x.y"));
        assert!(!topic_matches("*", ""));
        assert!(topic_matches("*.*", "a.b"));
    }

    #[test]
    fn each_kind_routes_to_exactly_the_matching_bindings() {
        let (a, b, c) = (bind("qa", "red"), bind("qb", "blue"), bind("qc", "red"));
        let all = [&a, &b, &c];
        assert_eq!(
            names(route(ExchangeKind::Direct, &all, "red", &[])),
            ["qa", "qc"]
        );
        assert_eq!(
            names(route(ExchangeKind::Fanout, &all, "any", &[])),
            ["qa", "qb", "qc"]
        );
        let (t1, t2) = (bind("logs-all", "log.#"), bind("errors", "log.*.error"));
        let topic = [&t1, &t2];
        assert_eq!(
            names(route(ExchangeKind::Topic, &topic, "log.db.error", &[])),
            ["logs-all", "errors"]
        );
        assert_eq!(
            names(route(ExchangeKind::Topic, &topic, "log.db.info", &[])),
            ["logs-all"]
        );
        assert!(route(ExchangeKind::Topic, &topic, "metrics", &[]).is_empty());
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let all_of = Binding {
            headers: vec![pair("format", "pdf"), pair("type", "report")],
            ..bind("both", "")
        };
        let any_of = Binding {
            match_all: false,
            ..all_of.clone()
        };
        let any_of = Binding {
            target: BindTarget::Topic("either".into()),
            ..any_of
        };
        let hs = [&all_of, &any_of];
        let msg = [pair("format", "pdf"), pair("type", "report")];
        assert_eq!(
            names(route(ExchangeKind::Headers, &hs, "", &msg)),
            ["both", "either"]
        );
        let half = [pair("format", "pdf")];
        assert_eq!(
            names(route(ExchangeKind::Headers, &hs, "", &half)),
            ["either"]
        );
        assert!(route(ExchangeKind::Headers, &hs, "", &[pair("format", "zip")]).is_empty());
        // A target bound twice is reached once.
        let twice = [&a, &a];
        assert_eq!(names(route(ExchangeKind::Fanout, &twice, "", &[])), ["qa"]);
    }
}
