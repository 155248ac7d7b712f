//! Engine tests of SNS over two shards: topics and subscriptions in the catalog, durable
//! publish, FIFO deduplication, and the fan-out worker delivering to queues.

use super::start::{start, EngineStart};
use super::*;
use crate::config::{KafkaNodes, ServerConfig, CROSS_CORE_IN_FLIGHT_MAX_DEFAULT};
use crate::shutdown::{ProcessShutdown, ShardShutdown};
use peregrine_aws_wire::sns::record::Stored;
use peregrine_shards::catalog::Catalog;
use peregrine_shards::log::FsyncPolicy;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

fn config(data_dir: &std::path::Path) -> ServerConfig {
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    ServerConfig {
        data_dir: data_dir.to_path_buf(),
        native_addr: any,
        kafka_addr: any,
        advertised_kafka_addr: None,
        auto_create_topics: false,
        kafka_message_max_bytes: 1 << 20,
        sasl_session_lifetime_ms: 0,
        kafka_nodes: KafkaNodes::Single,
        tls: None,
        security: Default::default(),
        kafka_shard_ports: vec![0, 0],
        shard_port_base: 0,
        shards: 2,
        cores: Vec::new(),
        max_frame_bytes: 8 << 20,
        fsync: FsyncPolicy::OnDurable,
        write_linger: Duration::ZERO,
        cache_mb: 8,
        retention_check: Duration::from_secs(60),
        poll_us: 0,
        cross_core_in_flight_max: CROSS_CORE_IN_FLIGHT_MAX_DEFAULT,
        producer_id_expiration_ms:
            peregrine_shards::log::LogConfig::PRODUCER_ID_EXPIRATION_MS_DEFAULT,
        stall_warn: None,
        http_addr: any,
        sqs: Default::default(),
        http_auth: Default::default(),
        http_access_keys: Default::default(),
        metrics_token: None,
        amqp_addr: any,
        amqp_users: Vec::new(),
        connection_limits: Default::default(),
        object_limits: Default::default(),
        transaction_limits: Default::default(),
    }
}

/// Runs `body` on shard 0 of a two-shard engine on `data_dir`, started from the catalog
/// there (as the broker starts), then shuts both down cleanly.
fn with_two_shards_at<F, Fut>(data_dir: &std::path::Path, body: F)
where
    F: FnOnce(Engine) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    with_two_shards_configured(config(data_dir), body);
}

/// `with_two_shards_at` with `config` (its data directory included).
fn with_two_shards_configured<F, Fut>(config: ServerConfig, body: F)
where
    F: FnOnce(Engine) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let _ = peregrine_shards::sys::raise_memlock_limit();
    let data_dir = config.data_dir.clone();
    let config = Arc::new(config);
    let catalog = Catalog::load(&data_dir.join("meta").join("topics.json")).expect("catalog");
    let catalog = Arc::new(catalog);
    let mesh = mesh::mesh(2);
    let process = Arc::new(ProcessShutdown::default());
    let metrics = crate::metrics::Metrics::new(2);
    let logins =
        crate::auth::logins::SharedLoginLimiter::new(config.security.login_failures_per_minute);
    let starting = || EngineStart {
        config: config.clone(),
        mesh: mesh.clone(),
        catalog: catalog.clone(),
        shard_ports: vec![0, 0],
        shutdown: ShardShutdown::new(process.clone()),
        metrics: metrics.clone(),
        logins: logins.clone(),
    };
    let (first, second) = (starting(), starting());
    let ask = process.clone();
    let run0 = move || async move {
        let engine = start(first).await.expect("shard 0 starts");
        body(engine.clone()).await;
        ask.request();
        engine.shutdown().watch().await;
        engine.stop().await;
    };
    let run1 = move || async move {
        let engine = start(second).await.expect("shard 1 starts");
        engine.shutdown().watch().await;
        engine.stop().await;
    };
    let one = crate::runtime::start_shard(1, None, Duration::ZERO, None, run1).expect("shard 1");
    let zero = crate::runtime::start_shard(0, None, Duration::ZERO, None, run0).expect("shard 0");
    zero.join().expect("shard 0 ran");
    one.join().expect("shard 1 ran");
}

fn with_two_shards<F, Fut>(body: F)
where
    F: FnOnce(Engine) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    with_two_shards_at(dir.path(), body);
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn message(text: &str) -> Stored {
    Stored {
        message: text.into(),
        published_ms: crate::time::now_ms(),
        ..Stored::default()
    }
}

fn fifo_message(text: &str, group: &str, dedup: &str) -> Stored {
    Stored {
        group_id: Some(group.into()),
        dedup_id: Some(dedup.into()),
        ..message(text)
    }
}

/// Every record of an SNS topic's log, decoded.
async fn log_of(engine: &Engine, topic: &str) -> Vec<(i64, Option<Stored>)> {
    let meta = engine.sns_topic(topic).expect("topic");
    let args = FetchArgs {
        offset: 0,
        max_bytes: 1 << 20,
        max_wait_ms: 0,
        min_bytes: 0,
        isolation: Default::default(),
        pending: false,
    };
    let fetched = engine
        .fetch(&meta.backing_topic(), 0, args)
        .await
        .expect("fetch");
    let mut all = Vec::new();
    for chunk in &fetched.batches {
        sns::for_each_record(chunk, 0, |offset, stored| all.push((offset, stored)));
    }
    all
}

#[test]
fn a_topic_is_created_once_with_its_log_and_deleted_with_it() {
    with_two_shards(|engine| async move {
        let attrs = map(&[("DisplayName", "Orders")]);
        let first = engine
            .create_sns_topic("orders", false, attrs.clone(), map(&[]))
            .await
            .expect("created");
        let again = engine
            .create_sns_topic("orders", false, map(&[]), map(&[]))
            .await
            .expect("the same topic");
        assert_eq!(first.id, again.id);
        let other = engine
            .create_sns_topic("orders", false, map(&[("DisplayName", "x")]), map(&[]))
            .await;
        assert!(
            matches!(other, Err(EngineError::InvalidRequest(_))),
            "{other:?}"
        );
        assert!(engine.topic_exists(&first.backing_topic()));
        let bad = engine
            .create_sns_topic("orders", true, map(&[]), map(&[]))
            .await;
        assert!(
            matches!(bad, Err(EngineError::InvalidRequest(_))),
            "{bad:?}"
        );
        engine.delete_sns_topic("orders").await.expect("deleted");
        engine.delete_sns_topic("orders").await.expect("idempotent");
        assert!(engine.sns_topic("orders").is_none());
        assert!(!engine.topic_exists(&first.backing_topic()));
        let published = engine.sns_publish("orders", vec![message("m")]).await;
        assert!(matches!(published, Err(EngineError::UnknownTopic(_))));
    });
}

#[test]
fn subscriptions_check_their_endpoints_and_http_ones_wait_for_their_token() {
    with_two_shards(|engine| async move {
        engine
            .create_sns_topic("t", false, map(&[]), map(&[]))
            .await
            .expect("topic");
        engine
            .declare_queue("q", QueueConfig::default())
            .await
            .expect("queue");
        let arn = "arn:aws:sqs:us-east-1:000000000000:q";
        let sqs = engine
            .subscribe_sns("t", "sqs", arn, map(&[]))
            .await
            .expect("sqs");
        assert!(sqs.confirmed);
        let same = engine
            .subscribe_sns("t", "sqs", arn, map(&[]))
            .await
            .expect("again");
        assert_eq!(same.id, sqs.id);
        for (protocol, endpoint) in [
            ("sqs", "arn:aws:sqs:us-east-1:000000000000:missing"),
            ("sqs", "arn:aws:sqs:eu-west-1:000000000000:q"),
            ("https", "http://h/"),
            ("http", "https://h/"),
            ("email", "a@b"),
            ("kafka", "no-such-topic"),
            ("http", "http://"),
        ] {
            let refused = engine
                .subscribe_sns("t", protocol, endpoint, map(&[]))
                .await;
            assert!(
                matches!(refused, Err(EngineError::InvalidRequest(_))),
                "{protocol} {endpoint}: {refused:?}"
            );
        }
        let http = engine
            .subscribe_sns("t", "http", "http://127.0.0.1:9/", map(&[]))
            .await
            .expect("http");
        assert!(!http.confirmed);
        let token = http.token.clone().expect("a token");
        let wrong = engine.confirm_subscription("t", "nope", false).await;
        assert!(matches!(wrong, Err(EngineError::InvalidRequest(_))));
        let confirmed = engine
            .confirm_subscription("t", &token, false)
            .await
            .expect("ok");
        assert!(confirmed.confirmed && confirmed.id == http.id);
        let raw = engine
            .alter_subscription("t", &sqs.id, "RawMessageDelivery", "true".into())
            .await
            .expect("altered");
        assert_eq!(
            raw.attributes.get("RawMessageDelivery").map(String::as_str),
            Some("true")
        );
        engine.unsubscribe("t", &sqs.id).await.expect("gone");
        engine.unsubscribe("t", &sqs.id).await.expect("idempotent");
        let subs = engine.sns_topic("t").expect("t").subscriptions;
        assert_eq!(subs.keys().collect::<Vec<_>>(), [&http.id]);
        let missing = engine
            .alter_subscription("t", &sqs.id, "k", "v".into())
            .await;
        assert!(matches!(missing, Err(EngineError::UnknownTopic(_))));
    });
}

#[test]
fn a_publish_is_stored_in_order_with_stable_message_ids() {
    with_two_shards(|engine| async move {
        let meta = engine
            .create_sns_topic("t", false, map(&[]), map(&[]))
            .await
            .expect("topic");
        let published = engine
            .sns_publish("t", vec![message("a"), message("b")])
            .await
            .expect("published");
        let offsets: Vec<i64> = published.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, [0, 1]);
        assert_eq!(published[1].message_id, sns_message_id(meta.id, 1));
        assert!(published
            .iter()
            .all(|p| !p.duplicate && p.sequence_number.is_none()));
        let log = log_of(&engine, "t").await;
        let texts: Vec<_> = log
            .iter()
            .map(|(_, s)| s.as_ref().expect("an sns record").message.clone())
            .collect();
        assert_eq!(texts, ["a", "b"]);
    });
}

#[test]
fn a_fifo_topic_drops_a_repeated_dedup_id_even_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_two_shards_at(dir.path(), |engine| async move {
        engine
            .create_sns_topic("t.fifo", true, map(&[]), map(&[]))
            .await
            .expect("topic");
        let unkeyed = engine.sns_publish("t.fifo", vec![message("x")]).await;
        assert!(matches!(unkeyed, Err(EngineError::InvalidRequest(_))));
        let entries = vec![
            fifo_message("a", "g", "1"),
            fifo_message("b", "g", "2"),
            fifo_message("a again", "g", "1"),
        ];
        let published = engine
            .sns_publish("t.fifo", entries)
            .await
            .expect("published");
        let seen: Vec<_> = published.iter().map(|p| (p.offset, p.duplicate)).collect();
        assert_eq!(seen, [(0, false), (1, false), (0, true)]);
        assert_eq!(
            published[1].sequence_number.as_deref(),
            Some("00000000000000000001")
        );
        let again = engine
            .sns_publish("t.fifo", vec![fifo_message("b", "g", "2")])
            .await
            .expect("published");
        assert_eq!((again[0].offset, again[0].duplicate), (1, true));
        assert_eq!(again[0].message_id, published[1].message_id);
    });
    // The window is rebuilt from the log after a restart.
    with_two_shards_at(dir.path(), |engine| async move {
        let entries = vec![fifo_message("b", "g", "2"), fifo_message("c", "g", "3")];
        let published = engine
            .sns_publish("t.fifo", entries)
            .await
            .expect("published");
        let seen: Vec<_> = published.iter().map(|p| (p.offset, p.duplicate)).collect();
        assert_eq!(seen, [(1, true), (2, false)]);
        assert_eq!(log_of(&engine, "t.fifo").await.len(), 3);
    });
}

#[test]
fn sns_topics_and_subscriptions_stop_at_their_caps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut limited = config(dir.path());
    limited.object_limits.max_sns_topics = 1;
    limited.object_limits.max_sns_subscriptions_per_topic = 1;
    with_two_shards_configured(limited, |engine| async move {
        engine
            .create_sns_topic("a", false, map(&[]), map(&[]))
            .await
            .expect("first");
        let over = engine
            .create_sns_topic("b", false, map(&[]), map(&[]))
            .await;
        assert!(
            matches!(&over, Err(EngineError::PreconditionFailed(m)) if m.contains("--max-sns-topics")),
            "{over:?}"
        );
        engine
            .create_sns_topic("a", false, map(&[]), map(&[]))
            .await
            .expect("an existing one is not refused");
        engine
            .create_topic("k1", one_partition())
            .await
            .expect("k1");
        engine
            .create_topic("k2", one_partition())
            .await
            .expect("k2");
        engine
            .subscribe_sns("a", "kafka", "k1", map(&[]))
            .await
            .expect("first subscription");
        let over = engine.subscribe_sns("a", "kafka", "k2", map(&[])).await;
        assert!(
            matches!(&over, Err(EngineError::PreconditionFailed(m)) if m.contains("--max-sns-subscriptions-per-topic")),
            "{over:?}"
        );
        engine.delete_sns_topic("a").await.expect("deleted");
        engine
            .create_sns_topic("b", false, map(&[]), map(&[]))
            .await
            .expect("room again");
    });
}

fn one_partition() -> TopicConfig {
    TopicConfig {
        partitions: 1,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: peregrine_shards::catalog::SEGMENT_BYTES_DEFAULT,
        max_message_bytes: None,
    }
}

/// Longest any background step (a delivery) may take in these tests.
const BACKGROUND_WAIT: Duration = Duration::from_secs(10);

/// Waits (up to `BACKGROUND_WAIT`) until `done` answers true; whether it did.
async fn eventually<F, Fut>(mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + BACKGROUND_WAIT;
    while std::time::Instant::now() < deadline {
        if done().await {
            return true;
        }
        crate::runtime::sleep(Duration::from_millis(20)).await;
    }
    done().await
}

async fn ready(engine: &Engine, queue: &str) -> u64 {
    engine.queue_stats(queue).await.expect("stats").ready
}

/// Every message ready in `queue` now, taken and acked: (body, headers).
async fn take(engine: &Engine, queue: &str) -> Vec<(String, Vec<(String, String)>)> {
    let got = engine.receive(queue, 100, 0, true).await.expect("receive");
    let mut at = 0usize;
    let mut out = Vec::new();
    for (i, len) in got.messages.lens.iter().enumerate() {
        let body = &got.bodies[at..at + *len as usize];
        at += *len as usize;
        let headers = got
            .messages
            .extras
            .iter()
            .find(|x| x.index as usize == i)
            .map(|x| x.headers.clone())
            .unwrap_or_default();
        out.push((String::from_utf8_lossy(body).into_owned(), headers));
    }
    out
}

/// SNS deliveries to `protocol` with `outcome`, over every shard of this engine.
fn sns_deliveries(protocol: &str, outcome: &str) -> u64 {
    let registry = crate::metrics::local::registry().expect("metrics installed");
    let p = crate::metrics::SNS_DELIVERY_PROTOCOLS
        .iter()
        .position(|n| *n == protocol);
    let o = crate::metrics::SNS_DELIVERY_OUTCOMES
        .iter()
        .position(|n| *n == outcome);
    let (p, o) = (p.expect("protocol"), o.expect("outcome"));
    registry
        .shards
        .iter()
        .map(|m| m.sns_deliveries[p][o].load(std::sync::atomic::Ordering::Relaxed))
        .sum()
}

fn arn(queue: &str) -> String {
    format!("arn:aws:sqs:us-east-1:000000000000:{queue}")
}

/// A topic with one queue subscription per `(queue, attributes)`.
async fn fan_out(engine: &Engine, topic: &str, queues: &[(&str, &[(&str, &str)])]) -> SnsTopicMeta {
    let meta = engine
        .create_sns_topic(topic, false, map(&[]), map(&[]))
        .await
        .expect("topic");
    for (queue, attributes) in queues {
        engine
            .declare_queue(queue, QueueConfig::default())
            .await
            .expect("queue");
        engine
            .subscribe_sns(topic, "sqs", &arn(queue), map(attributes))
            .await
            .expect("subscribed");
    }
    meta
}

fn with_attribute(text: &str, name: &str, value: &str) -> Stored {
    use peregrine_aws_wire::sns::{AttributeValue, MessageAttribute};
    Stored {
        attributes: vec![MessageAttribute {
            name: name.into(),
            data_type: "String".into(),
            value: AttributeValue::String(value.into()),
        }],
        ..message(text)
    }
}

#[test]
fn a_publish_reaches_each_queue_once_raw_or_in_its_envelope() {
    with_two_shards(|engine| async move {
        let raw: &[(&str, &str)] = &[("RawMessageDelivery", "true")];
        let queues = [("q1", raw), ("q2", &[][..]), ("q3", &[][..])];
        let meta = fan_out(&engine, "orders", &queues).await;
        let published = engine
            .sns_publish("orders", vec![with_attribute("hello", "kind", "new")])
            .await
            .expect("published");
        for (q, _) in queues {
            assert!(
                eventually(|| async { ready(&engine, q).await == 1 }).await,
                "{q}"
            );
        }
        let (body, headers) = take(&engine, "q1").await.remove(0);
        assert_eq!(body, "hello");
        assert!(
            headers.contains(&("kind".to_string(), "new".to_string())),
            "{headers:?}"
        );
        for q in ["q2", "q3"] {
            let (body, _) = take(&engine, q).await.remove(0);
            let doc: serde_json::Value = serde_json::from_str(&body).expect("an envelope");
            assert_eq!(doc["Type"], "Notification");
            assert_eq!(doc["Message"], "hello");
            assert_eq!(doc["MessageId"], published[0].message_id.as_str());
            assert_eq!(doc["MessageAttributes"]["kind"]["Value"], "new");
            assert_eq!(
                doc["TopicArn"],
                format!("arn:aws:sns:us-east-1:000000000000:{}", meta.name)
            );
        }
        // Nothing more comes.
        crate::runtime::sleep(Duration::from_millis(300)).await;
        for (q, _) in queues {
            assert_eq!(ready(&engine, q).await, 0, "{q}");
        }
        assert_eq!(sns_deliveries("sqs", "delivered"), 3);
    });
}

#[test]
fn a_filter_policy_lets_only_matching_messages_through() {
    with_two_shards(|engine| async move {
        let filtered: &[(&str, &str)] = &[("FilterPolicy", r#"{"kind":["new"]}"#)];
        let body_scope: &[(&str, &str)] = &[
            ("FilterPolicy", r#"{"total":[{"numeric":[">",100]}]}"#),
            ("FilterPolicyScope", "MessageBody"),
        ];
        let queues = [("all", &[][..]), ("new", filtered), ("big", body_scope)];
        fan_out(&engine, "t", &queues).await;
        let entries = vec![
            with_attribute(r#"{"total":5}"#, "kind", "old"),
            with_attribute(r#"{"total":500}"#, "kind", "new"),
        ];
        engine.sns_publish("t", entries).await.expect("published");
        assert!(eventually(|| async { ready(&engine, "all").await == 2 }).await);
        assert!(eventually(|| async { ready(&engine, "new").await == 1 }).await);
        assert!(eventually(|| async { ready(&engine, "big").await == 1 }).await);
        let got = take(&engine, "big").await;
        let doc: serde_json::Value = serde_json::from_str(&got[0].0).expect("envelope");
        assert_eq!(doc["Message"], r#"{"total":500}"#);
    });
}

#[test]
fn a_worker_restarted_behind_its_deliveries_delivers_once_per_queue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let queues = [("q1", &[][..]), ("q2", &[][..]), ("q3", &[][..])];
    with_two_shards_at(dir.path(), move |engine| async move {
        let meta = fan_out(&engine, "t", &queues).await;
        engine
            .sns_publish("t", vec![message("a"), message("b")])
            .await
            .expect("published");
        for (q, _) in queues {
            assert!(
                eventually(|| async { ready(&engine, q).await == 2 }).await,
                "{q}"
            );
        }
        // As after a crash between the deliveries and the commit: the cursor is back
        // at the start (the running worker never commits below what it committed).
        let back = CommitEntry {
            topic: meta.backing_topic(),
            partition: 0,
            offset: 0,
        };
        let group = crate::sns::fanout::cursor_group(meta.id);
        engine
            .commit_offsets(&group, "", -1, vec![back])
            .await
            .expect("cursor set back");
    });
    with_two_shards_at(dir.path(), move |engine| async move {
        let meta = engine.sns_topic("t").expect("topic");
        let group = crate::sns::fanout::cursor_group(meta.id);
        let caught_up = eventually(|| async {
            let offsets = engine.fetch_offsets(&group, None).await.expect("offsets");
            offsets.first().is_some_and(|c| c.offset == 2)
        })
        .await;
        assert!(caught_up, "the worker went over both records again");
        for (q, _) in queues {
            assert_eq!(ready(&engine, q).await, 2, "{q} kept one copy of each");
        }
    });
}

/// One request an endpoint received: its `x-amz-sns-message-type` and its body.
type Received = Rc<RefCell<Vec<(String, String)>>>;

/// An HTTP endpoint on this shard answering the statuses of `script` in turn (then
/// 200), recording what it gets; answers its port.
fn endpoint(script: Vec<u16>) -> (u16, Received) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let listener = crate::runtime::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got: Received = Rc::default();
    let seen = got.clone();
    let serve = async move {
        let mut script = script.into_iter();
        while let Ok(mut stream) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (kind, body) = loop {
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                let Ok(httparse::Status::Complete(head)) = req.parse(&buf) else {
                    continue;
                };
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                        .unwrap_or_default()
                };
                let len: usize = header("content-length").parse().unwrap_or(0);
                if buf.len() >= head + len {
                    let body = String::from_utf8_lossy(&buf[head..head + len]).into_owned();
                    break (header("x-amz-sns-message-type"), body);
                }
            };
            seen.borrow_mut().push((kind, body));
            let status = script.next().unwrap_or(200);
            let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    };
    crate::runtime::spawn_local(serve).detach();
    (port, got)
}

#[test]
fn an_http_endpoint_confirms_then_gets_a_notification_retried_until_it_succeeds() {
    with_two_shards(|engine| async move {
        let policy =
            r#"{"healthyRetryPolicy":{"numRetries":3,"minDelayTarget":0,"maxDelayTarget":0}}"#;
        let meta = engine
            .create_sns_topic("t", false, map(&[]), map(&[]))
            .await
            .expect("topic");
        // The confirmation, then two failures of the notification.
        let (port, got) = endpoint(vec![200, 500, 503]);
        let url = format!("http://127.0.0.1:{port}/hook");
        let sub = engine
            .subscribe_sns("t", "http", &url, map(&[("DeliveryPolicy", policy)]))
            .await
            .expect("subscribed");
        assert!(
            eventually(|| async { got.borrow().len() == 1 }).await,
            "a confirmation"
        );
        let (kind, body) = got.borrow()[0].clone();
        assert_eq!(kind, "SubscriptionConfirmation");
        let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
        let token = doc["Token"].as_str().expect("token").to_string();
        assert_eq!(Some(token.clone()), sub.token);
        let subscribe_url = doc["SubscribeURL"].as_str().expect("url");
        assert!(
            subscribe_url.contains("Action=ConfirmSubscription"),
            "{subscribe_url}"
        );
        // Not confirmed yet: nothing is delivered.
        engine
            .sns_publish("t", vec![message("early")])
            .await
            .expect("published");
        engine
            .confirm_subscription("t", &token, false)
            .await
            .expect("confirmed");
        engine
            .sns_publish("t", vec![message("hello")])
            .await
            .expect("published");
        assert!(
            eventually(|| async { got.borrow().len() == 4 }).await,
            "{:?}",
            got.borrow()
        );
        crate::runtime::sleep(Duration::from_millis(300)).await;
        let got = got.borrow();
        assert_eq!(got.len(), 4, "no more after a success: {got:?}");
        assert_eq!(sns_deliveries("http", "retried"), 2);
        assert_eq!(
            sns_deliveries("http", "delivered"),
            2,
            "the confirmation and the notification"
        );
        for (kind, body) in &got[1..] {
            assert_eq!(kind, "Notification");
            let doc: serde_json::Value = serde_json::from_str(body).expect("json");
            assert_eq!(doc["Message"], "hello");
            assert_eq!(doc["MessageId"], sns_message_id(meta.id, 1));
        }
    });
}

#[test]
fn a_kafka_topic_subscription_gets_a_record_with_its_origin() {
    with_two_shards(|engine| async move {
        engine
            .create_topic("events", one_partition())
            .await
            .expect("topic");
        let meta = engine
            .create_sns_topic("t", false, map(&[]), map(&[]))
            .await
            .expect("sns topic");
        let raw = map(&[("RawMessageDelivery", "true")]);
        let sub = engine
            .subscribe_sns("t", "kafka", "events", raw)
            .await
            .expect("subscribed");
        engine
            .sns_publish("t", vec![with_attribute("hello", "kind", "new")])
            .await
            .expect("published");
        let end = || async {
            engine
                .list_offsets("events", 0, OffsetSpec::Latest)
                .await
                .expect("offsets")
                == 1
        };
        assert!(eventually(end).await);
        let args = FetchArgs {
            offset: 0,
            max_bytes: 1 << 20,
            max_wait_ms: 0,
            min_bytes: 0,
            isolation: Default::default(),
            pending: false,
        };
        let fetched = engine.fetch("events", 0, args).await.expect("fetch");
        let batch = &fetched.batches[0];
        let record = peregrine_shards::records::records(batch)
            .expect("records")
            .next()
            .expect("one")
            .expect("valid");
        assert_eq!(record.value, Some(&b"hello"[..]));
        let headers = record.headers().expect("headers");
        let catalog = engine.shard().catalog();
        let log_id = catalog.topic(&meta.backing_topic()).expect("log").id;
        let origin = format!("sns:{log_id}/0/{}", sub.id);
        assert!(headers.contains(&(&b"x-origin"[..], Some(origin.as_bytes()))));
        assert!(headers.contains(&(&b"kind"[..], Some(&b"new"[..]))));
    });
}

#[test]
fn a_fifo_topic_delivers_to_a_fifo_queue_with_its_group_in_order() {
    with_two_shards(|engine| async move {
        engine
            .create_sns_topic("t.fifo", true, map(&[]), map(&[]))
            .await
            .expect("topic");
        let fifo = QueueConfig {
            fifo: true,
            ..QueueConfig::default()
        };
        engine.declare_queue("q.fifo", fifo).await.expect("queue");
        let raw = map(&[("RawMessageDelivery", "true")]);
        engine
            .subscribe_sns("t.fifo", "sqs", &arn("q.fifo"), raw)
            .await
            .expect("subscribed");
        let entries = vec![
            fifo_message("1", "g", "a"),
            fifo_message("2", "g", "b"),
            fifo_message("1 again", "g", "a"),
        ];
        engine
            .sns_publish("t.fifo", entries)
            .await
            .expect("published");
        assert!(eventually(|| async { ready(&engine, "q.fifo").await == 2 }).await);
        // One in flight per group: two receives, in order.
        let first = take(&engine, "q.fifo").await;
        let second = take(&engine, "q.fifo").await;
        let bodies: Vec<_> = first
            .iter()
            .chain(&second)
            .map(|(b, _)| b.as_str())
            .collect();
        assert_eq!(bodies, ["1", "2"]);
        // Each keeps its MessageDeduplicationId for SQS receives.
        let dedup = |m: &(String, Vec<(String, String)>)| {
            m.1.iter()
                .find(|(k, _)| k == peregrine_aws_wire::sqs::fifo::DEDUP_ID_HEADER)
                .map(|(_, v)| v.clone())
        };
        let ids: Vec<_> = first.iter().chain(&second).map(dedup).collect();
        assert_eq!(ids, [Some("a".to_string()), Some("b".to_string())]);
    });
}

#[test]
fn deleting_a_topic_stops_its_worker_and_deletes_its_cursor() {
    with_two_shards(|engine| async move {
        let meta = fan_out(&engine, "t", &[("q", &[][..])]).await;
        engine
            .sns_publish("t", vec![message("a")])
            .await
            .expect("published");
        assert!(eventually(|| async { ready(&engine, "q").await == 1 }).await);
        let group = crate::sns::fanout::cursor_group(meta.id);
        let listed = || async {
            let groups = engine.list_groups().await.expect("groups");
            groups.iter().any(|(g, _)| *g == group)
        };
        assert!(eventually(listed).await, "the cursor is a group");
        engine.delete_sns_topic("t").await.expect("deleted");
        assert!(
            eventually(|| async { !listed().await }).await,
            "the cursor went with it"
        );
        // A topic of the same name is new: its log starts empty, nothing is redelivered.
        fan_out(&engine, "t", &[("q", &[][..])]).await;
        crate::runtime::sleep(Duration::from_millis(300)).await;
        assert_eq!(ready(&engine, "q").await, 1);
    });
}

#[test]
fn a_full_queue_holds_its_deliveries_back_until_there_is_room() {
    with_two_shards(|engine| async move {
        engine
            .create_sns_topic("t", false, map(&[]), map(&[]))
            .await
            .expect("topic");
        let bounded = QueueConfig {
            max_length: Some(1),
            overflow: Overflow::RejectPublish,
            ..QueueConfig::default()
        };
        engine.declare_queue("small", bounded).await.expect("queue");
        let raw = map(&[("RawMessageDelivery", "true")]);
        engine
            .subscribe_sns("t", "sqs", &arn("small"), raw)
            .await
            .expect("subscribed");
        engine
            .sns_publish("t", vec![message("1")])
            .await
            .expect("one");
        assert!(eventually(|| async { ready(&engine, "small").await == 1 }).await);
        engine
            .sns_publish("t", vec![message("2")])
            .await
            .expect("two");
        crate::runtime::sleep(Duration::from_millis(300)).await;
        let first = take(&engine, "small").await;
        assert_eq!(
            first.iter().map(|(b, _)| b.as_str()).collect::<Vec<_>>(),
            ["1"]
        );
        // Room again: the held delivery is retried and arrives, once.
        assert!(eventually(|| async { ready(&engine, "small").await == 1 }).await);
        let second = take(&engine, "small").await;
        assert_eq!(
            second.iter().map(|(b, _)| b.as_str()).collect::<Vec<_>>(),
            ["2"]
        );
    });
}

#[test]
fn a_backing_log_deleted_as_a_plain_topic_is_made_again() {
    with_two_shards(|engine| async move {
        let meta = fan_out(&engine, "t", &[("q", &[][..])]).await;
        let two = vec![message("1"), message("2")];
        engine.sns_publish("t", two).await.expect("published");
        assert!(eventually(|| async { ready(&engine, "q").await == 2 }).await);
        take(&engine, "q").await;
        engine
            .delete_topic(&meta.backing_topic())
            .await
            .expect("deleted as a Kafka client would");
        let back = || async { engine.topic_exists(&meta.backing_topic()) };
        assert!(eventually(back).await, "made again");
        // The cursor (2) is past the new log's end: it is read from its start.
        engine
            .sns_publish("t", vec![message("a")])
            .await
            .expect("published");
        assert!(eventually(|| async { ready(&engine, "q").await == 1 }).await);
        let got = take(&engine, "q").await;
        assert!(got[0].0.contains("\"Message\":\"a\""), "{got:?}");
    });
}

#[test]
fn failed_deliveries_go_to_the_subscriptions_dead_letter_queue() {
    with_two_shards(|engine| async move {
        engine
            .create_sns_topic("t", false, map(&[]), map(&[]))
            .await
            .expect("topic");
        for q in ["gone", "dlq"] {
            engine
                .declare_queue(q, QueueConfig::default())
                .await
                .expect("queue");
        }
        let redrive = format!(r#"{{"deadLetterTargetArn":"{}"}}"#, arn("dlq"));
        let to_queue = map(&[("RedrivePolicy", &redrive)]);
        engine
            .subscribe_sns("t", "sqs", &arn("gone"), to_queue)
            .await
            .expect("sqs");
        let (port, got) = endpoint(vec![500; 10]);
        let policy =
            r#"{"healthyRetryPolicy":{"numRetries":1,"minDelayTarget":0,"maxDelayTarget":0}}"#;
        let to_http = map(&[("RedrivePolicy", &redrive), ("DeliveryPolicy", policy)]);
        let url = format!("http://127.0.0.1:{port}/");
        let sub = engine
            .subscribe_sns("t", "http", &url, to_http)
            .await
            .expect("http");
        let token = sub.token.clone().expect("token");
        engine
            .confirm_subscription("t", &token, false)
            .await
            .expect("confirmed");
        engine.delete_queue("gone").await.expect("deleted");
        engine
            .sns_publish("t", vec![with_attribute("lost", "kind", "x")])
            .await
            .expect("published");
        // One from the deleted queue, one from the endpoint after its retry.
        assert!(eventually(|| async { ready(&engine, "dlq").await == 2 }).await);
        let letters = take(&engine, "dlq").await;
        for (body, headers) in &letters {
            let doc: serde_json::Value = serde_json::from_str(body).expect("the envelope");
            assert_eq!(doc["Message"], "lost");
            assert!(
                headers.contains(&("kind".to_string(), "x".to_string())),
                "{headers:?}"
            );
        }
        assert!(got.borrow().len() >= 2, "the endpoint was tried twice");
        assert_eq!(sns_deliveries("sqs", "dead_lettered"), 1);
        assert_eq!(sns_deliveries("http", "dead_lettered"), 1);
    });
}

#[test]
fn a_kafka_target_keeps_one_copy_when_a_restarted_worker_delivers_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_two_shards_at(dir.path(), |engine| async move {
        engine
            .create_topic("events", one_partition())
            .await
            .expect("topic");
        let meta = engine
            .create_sns_topic("t", false, map(&[]), map(&[]))
            .await
            .expect("sns topic");
        engine
            .subscribe_sns("t", "kafka", "events", map(&[]))
            .await
            .expect("subscribed");
        engine
            .sns_publish("t", vec![message("once")])
            .await
            .expect("published");
        let end = || async {
            let latest = engine.list_offsets("events", 0, OffsetSpec::Latest).await;
            latest.expect("offsets") == 1
        };
        assert!(eventually(end).await);
        let back = CommitEntry {
            topic: meta.backing_topic(),
            partition: 0,
            offset: 0,
        };
        let group = crate::sns::fanout::cursor_group(meta.id);
        engine
            .commit_offsets(&group, "", -1, vec![back])
            .await
            .expect("cursor set back");
    });
    with_two_shards_at(dir.path(), |engine| async move {
        let meta = engine.sns_topic("t").expect("topic");
        let group = crate::sns::fanout::cursor_group(meta.id);
        let caught_up = eventually(|| async {
            let offsets = engine.fetch_offsets(&group, None).await.expect("offsets");
            offsets.first().is_some_and(|c| c.offset == 1)
        })
        .await;
        assert!(caught_up, "the worker went over the record again");
        let latest = engine.list_offsets("events", 0, OffsetSpec::Latest).await;
        assert_eq!(latest.expect("offsets"), 1, "found, not appended again");
        // A new message after the restart is appended as usual.
        engine
            .sns_publish("t", vec![message("next")])
            .await
            .expect("published");
        let two = || async {
            let latest = engine.list_offsets("events", 0, OffsetSpec::Latest).await;
            latest.expect("offsets") == 2
        };
        assert!(eventually(two).await);
    });
}

#[test]
fn topic_attributes_tags_and_subscriptions_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_two_shards_at(dir.path(), |engine| async move {
        engine
            .create_sns_topic("t", false, map(&[("DisplayName", "a")]), map(&[("k", "v")]))
            .await
            .expect("topic");
        let change = SnsTopicChange {
            set_attributes: map(&[("DisplayName", "b")]),
            set_tags: map(&[("team", "x")]),
            remove_tags: vec!["k".into()],
            ..SnsTopicChange::default()
        };
        let changed = engine.alter_sns_topic("t", change).await.expect("altered");
        assert_eq!(changed.attributes, map(&[("DisplayName", "b")]));
        assert_eq!(changed.tags, map(&[("team", "x")]));
        let missing = engine
            .alter_sns_topic("nope", SnsTopicChange::default())
            .await;
        assert!(matches!(missing, Err(EngineError::UnknownTopic(_))));
        engine
            .declare_queue("q", QueueConfig::default())
            .await
            .expect("queue");
        engine
            .subscribe_sns(
                "t",
                "sqs",
                &arn("q"),
                map(&[("RawMessageDelivery", "true")]),
            )
            .await
            .expect("subscribed");
    });
    with_two_shards_at(dir.path(), |engine| async move {
        let meta = engine.sns_topic("t").expect("kept");
        assert_eq!(meta.attributes, map(&[("DisplayName", "b")]));
        assert_eq!(meta.tags, map(&[("team", "x")]));
        let sub = meta.subscriptions.values().next().expect("kept");
        assert_eq!(sub.endpoint, arn("q"));
        assert!(sub.confirmed);
        assert_eq!(engine.sns_topics().len(), 1);
        // And it still delivers.
        engine
            .sns_publish("t", vec![message("after")])
            .await
            .expect("published");
        assert!(eventually(|| async { ready(&engine, "q").await == 1 }).await);
    });
}
