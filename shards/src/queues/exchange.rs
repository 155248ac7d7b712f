//! Exchanges: where a publish goes. Pure routing over the bindings of one exchange
//! (AMQP semantics): direct (exact routing key), fanout (every binding), topic
//! (dot-separated words; `*` one word, `#` zero or more) and headers (`all` or `any` of
//! the bound `key=value` pairs). A binding's target is a queue, a stream topic or
//! another exchange (exchange-to-exchange bindings, followed by `route_through`). An
//! exchange's declaration (`ExchangeMeta`) carries RabbitMQ's flags: durable,
//! auto-delete, internal, its alternate exchange, and whether it delays by `x-delay`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most exchange-to-exchange hops (bindings or alternates) one publish follows from the
/// exchange it was sent to. Cycles are cut by the set of exchanges visited; this bounds
/// the work of a long chain.
pub const ROUTE_HOPS_MAX: usize = 16;
/// The message header a delayed exchange reads its delay from (integer milliseconds).
pub const DELAY_HEADER: &str = "x-delay";

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

/// An exchange's declaration. Owned by the catalog; a redeclare with other values is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "MetaOnDisk")]
pub struct ExchangeMeta {
    /// How it routes; for a delayed exchange, RabbitMQ's `x-delayed-type`.
    pub kind: ExchangeKind,
    pub durable: bool,
    /// Deleted when its last binding as a source goes (not at declare time).
    pub auto_delete: bool,
    /// Reached only through other exchanges: a client may not publish to it.
    pub internal: bool,
    /// Where a publish that matches none of its bindings goes.
    pub alternate: Option<String>,
    /// RabbitMQ's `x-delayed-message`: queue targets get the delay of the message's
    /// `x-delay` header.
    pub delayed: bool,
}

impl ExchangeMeta {
    /// Durable, every other flag off.
    pub fn new(kind: ExchangeKind) -> ExchangeMeta {
        ExchangeMeta {
            kind,
            durable: true,
            auto_delete: false,
            internal: false,
            alternate: None,
            delayed: false,
        }
    }
}

/// An exchange as catalogs store it: a full declaration, or (catalogs written before
/// exchanges had flags) a bare kind.
#[derive(Deserialize)]
#[serde(untagged)]
enum MetaOnDisk {
    Full {
        kind: ExchangeKind,
        #[serde(default = "durable_default")]
        durable: bool,
        #[serde(default)]
        auto_delete: bool,
        #[serde(default)]
        internal: bool,
        #[serde(default)]
        alternate: Option<String>,
        #[serde(default)]
        delayed: bool,
    },
    Kind(ExchangeKind),
}

fn durable_default() -> bool {
    true
}

impl From<MetaOnDisk> for ExchangeMeta {
    fn from(m: MetaOnDisk) -> ExchangeMeta {
        match m {
            MetaOnDisk::Kind(kind) => ExchangeMeta::new(kind),
            MetaOnDisk::Full {
                kind,
                durable,
                auto_delete,
                internal,
                alternate,
                delayed,
            } => ExchangeMeta {
                kind,
                durable,
                auto_delete,
                internal,
                alternate,
                delayed,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BindTarget {
    Queue(String),
    Topic(String),
    /// Exchange-to-exchange: a publish matching the binding is routed on by it.
    Exchange(String),
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

/// A queue or topic a publish reaches, and whether it came through a delayed exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub target: BindTarget,
    pub delayed: bool,
}

/// Where a publish to `exchange` goes: the queues and topics reached through its
/// bindings, exchange-to-exchange bindings and alternates (when an exchange matches no
/// binding), each once, in binding order, depth first. Each exchange is visited at most
/// once (a cycle ends there) and at most `ROUTE_HOPS_MAX` hops from `exchange`. An
/// exchange that does not exist (a dangling alternate) routes nowhere.
pub fn route_through(
    exchanges: &BTreeMap<String, ExchangeMeta>,
    bindings: &[Binding],
    exchange: &str,
    routing_key: &str,
    headers: &[(String, String)],
) -> Vec<Reached> {
    let walk = Walk {
        exchanges,
        bindings,
        routing_key,
        headers,
    };
    let mut visited = Vec::new();
    let mut out = Vec::new();
    walk.visit(exchange, 0, false, &mut visited, &mut out);
    out
}

struct Walk<'a> {
    exchanges: &'a BTreeMap<String, ExchangeMeta>,
    bindings: &'a [Binding],
    routing_key: &'a str,
    headers: &'a [(String, String)],
}

impl<'a> Walk<'a> {
    fn visit(
        &self,
        name: &str,
        hops: usize,
        delayed: bool,
        visited: &mut Vec<&'a str>,
        out: &mut Vec<Reached>,
    ) {
        if hops > ROUTE_HOPS_MAX {
            return;
        }
        // Names borrowed from the catalog: a publish allocates nothing to remember them.
        let Some((name, meta)) = self.exchanges.get_key_value(name) else {
            return;
        };
        if visited.contains(&name.as_str()) {
            return;
        }
        visited.push(name);
        let delayed = delayed || meta.delayed;
        let own: Vec<&Binding> = self
            .bindings
            .iter()
            .filter(|b| b.exchange == *name)
            .collect();
        let matched = route(meta.kind, &own, self.routing_key, self.headers);
        if matched.is_empty() {
            if let Some(alternate) = &meta.alternate {
                self.visit(alternate, hops + 1, delayed, visited, out);
            }
            return;
        }
        for target in matched {
            match target {
                BindTarget::Exchange(next) => self.visit(&next, hops + 1, delayed, visited, out),
                target => {
                    if !out.iter().any(|r| r.target == target) {
                        out.push(Reached { target, delayed });
                    }
                }
            }
        }
    }
}

/// The delay a delayed exchange gives a message: its `x-delay` header, in ms; none when
/// the header is missing, negative or not an integer.
pub fn delay_of(headers: &[(String, String)]) -> Option<u64> {
    let (_, value) = headers.iter().find(|(k, _)| k == DELAY_HEADER)?;
    value.trim().parse::<u64>().ok().filter(|ms| *ms > 0)
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
                BindTarget::Queue(n) | BindTarget::Topic(n) | BindTarget::Exchange(n) => n,
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

    fn exchanges(list: &[(&str, ExchangeMeta)]) -> BTreeMap<String, ExchangeMeta> {
        list.iter()
            .map(|(n, m)| (n.to_string(), m.clone()))
            .collect()
    }

    fn edge(from: &str, target: BindTarget, key: &str) -> Binding {
        Binding {
            exchange: from.into(),
            target,
            routing_key: key.into(),
            headers: Vec::new(),
            match_all: true,
        }
    }

    fn reached(r: Vec<Reached>) -> Vec<(String, bool)> {
        r.into_iter()
            .map(|r| (names(vec![r.target]).remove(0), r.delayed))
            .collect()
    }

    #[test]
    fn exchange_bindings_are_followed_each_target_once_and_cycles_end() {
        let fanout = ExchangeMeta::new(ExchangeKind::Fanout);
        let direct = ExchangeMeta::new(ExchangeKind::Direct);
        let xs = exchanges(&[("a", fanout.clone()), ("b", direct), ("c", fanout)]);
        let ex = |n: &str| BindTarget::Exchange(n.into());
        let q = |n: &str| BindTarget::Queue(n.into());
        let bindings = [
            edge("a", ex("b"), ""),
            edge("a", q("qa"), ""),
            edge("b", q("qb"), "k"),
            edge("b", ex("c"), "k"),
            edge("c", ex("a"), ""),
            edge("c", q("qa"), ""),
            edge("c", q("qc"), ""),
        ];
        let got = reached(route_through(&xs, &bindings, "a", "k", &[]));
        let want = [("qb", false), ("qa", false), ("qc", false)];
        let want: Vec<(String, bool)> = want.iter().map(|(n, d)| (n.to_string(), *d)).collect();
        assert_eq!(got, want);
        // The key b does not route: b and what lies behind it are not reached.
        let got = reached(route_through(&xs, &bindings, "a", "other", &[]));
        assert_eq!(got, [("qa".to_string(), false)]);
        assert!(route_through(&xs, &bindings, "missing", "k", &[]).is_empty());
    }

    #[test]
    fn a_chain_longer_than_the_hop_bound_stops_there() {
        let fanout = ExchangeMeta::new(ExchangeKind::Fanout);
        let n = ROUTE_HOPS_MAX + 2;
        let names: Vec<String> = (0..=n).map(|i| format!("x{i}")).collect();
        let xs: BTreeMap<String, ExchangeMeta> =
            names.iter().map(|x| (x.clone(), fanout.clone())).collect();
        let mut bindings: Vec<Binding> = names
            .windows(2)
            .map(|w| edge(&w[0], BindTarget::Exchange(w[1].clone()), ""))
            .collect();
        bindings.push(edge(
            &names[ROUTE_HOPS_MAX],
            BindTarget::Queue("near".into()),
            "",
        ));
        bindings.push(edge(&names[n], BindTarget::Queue("far".into()), ""));
        let got = reached(route_through(&xs, &bindings, "x0", "", &[]));
        assert_eq!(got, [("near".to_string(), false)]);
    }

    #[test]
    fn an_alternate_takes_what_matches_nothing_and_delays_carry_through() {
        let mut main = ExchangeMeta::new(ExchangeKind::Direct);
        main.alternate = Some("alt".into());
        main.delayed = true;
        let mut alt = ExchangeMeta::new(ExchangeKind::Fanout);
        // An alternate of the alternate that points back is visited once.
        alt.alternate = Some("main".into());
        let xs = exchanges(&[("main", main), ("alt", alt)]);
        let bindings = [
            edge("main", BindTarget::Queue("keyed".into()), "k"),
            edge("alt", BindTarget::Topic("unrouted".into()), ""),
        ];
        let got = reached(route_through(&xs, &bindings, "main", "k", &[]));
        assert_eq!(got, [("keyed".to_string(), true)]);
        let got = reached(route_through(&xs, &bindings, "main", "other", &[]));
        assert_eq!(got, [("unrouted".to_string(), true)]);
        let none = reached(route_through(&xs, &[], "main", "k", &[]));
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn the_delay_header_is_whole_positive_milliseconds() {
        let h = |v: &str| vec![(DELAY_HEADER.to_string(), v.to_string())];
        assert_eq!(delay_of(&h("1500")), Some(1500));
        assert_eq!(delay_of(&h("-5")), None);
        assert_eq!(delay_of(&h("soon")), None);
        assert_eq!(delay_of(&h("0")), None);
        assert_eq!(delay_of(&[]), None);
    }

    #[test]
    fn a_bare_kind_loads_as_a_durable_exchange_without_flags() {
        let old: BTreeMap<String, ExchangeMeta> =
            serde_json::from_str(r#"{"logs": "Topic"}"#).expect("old form loads");
        assert_eq!(old["logs"], ExchangeMeta::new(ExchangeKind::Topic));
        let mut meta = ExchangeMeta::new(ExchangeKind::Headers);
        meta.alternate = Some("ae".into());
        meta.auto_delete = true;
        let text = serde_json::to_string(&meta).expect("encodes");
        let back: ExchangeMeta = serde_json::from_str(&text).expect("decodes");
        assert_eq!(back, meta);
    }
}
