//! Engine tests of SNS over two shards: topics and subscriptions in the catalog, durable
//! publish, FIFO deduplication, and the fan-out worker delivering to queues.

use super::start::{start, EngineStart};
use super::*;
use crate::config::{KafkaNodes, ServerConfig, CROSS_CORE_IN_FLIGHT_MAX_DEFAULT};
use crate::shutdown::{ProcessShutdown, ShardShutdown};
use peregrine_aws_wire::sns::record::Stored;
use peregrine_shards::catalog::Catalog;
use peregrine_shards::log::FsyncPolicy;
use std::collections::BTreeMap;
use std::future::Future;
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
        kafka_nodes: KafkaNodes::Single,
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
    let starting = || EngineStart {
        config: config.clone(),
        mesh: mesh.clone(),
        catalog: catalog.clone(),
        shard_ports: vec![0, 0],
        shutdown: ShardShutdown::new(process.clone()),
        metrics: metrics.clone(),
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
            ("https", "https://h/"),
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
        let wrong = engine.confirm_subscription("t", "nope").await;
        assert!(matches!(wrong, Err(EngineError::InvalidRequest(_))));
        let confirmed = engine.confirm_subscription("t", &token).await.expect("ok");
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
    }
}
