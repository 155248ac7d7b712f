//! The engine without sockets: one shard's engine in an executor of its own, called
//! as a front end calls it.

use super::start::{start, EngineStart};
use super::*;
use crate::config::{KafkaNodes, ServerConfig, CROSS_CORE_IN_FLIGHT_MAX_DEFAULT};
use crate::shutdown::{ProcessShutdown, ShardShutdown};
use peregrine_shards::catalog::Catalog;
use peregrine_shards::log::FsyncPolicy;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn config(data_dir: &std::path::Path) -> ServerConfig {
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
        kafka_shard_ports: vec![0],
        shard_port_base: 0,
        shards: 1,
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
        http_auth: false,
        http_access_keys: Default::default(),
        metrics_token: None,
        connection_limits: Default::default(),
        object_limits: Default::default(),
        transaction_limits: Default::default(),
    }
}

/// Runs `body` against a fresh one-shard engine, then shuts it down cleanly.
fn with_engine<F, Fut>(body: F)
where
    F: FnOnce(Engine) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    with_engine_at(dir.path(), body);
}

/// Runs `body` against a one-shard engine on `data_dir`, started from the catalog there
/// (as the broker starts), then shuts it down cleanly.
fn with_engine_at<F, Fut>(data_dir: &std::path::Path, body: F)
where
    F: FnOnce(Engine) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    with_engine_configured(config(data_dir), body);
}

/// Runs `body` against a one-shard engine with `config`, started from the catalog in
/// its data directory, then shuts it down cleanly.
pub(super) fn with_engine_configured<F, Fut>(config: ServerConfig, body: F)
where
    F: FnOnce(Engine) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let _ = peregrine_shards::sys::raise_memlock_limit();
    let data_dir = config.data_dir.clone();
    let config = Arc::new(config);
    let catalog = Catalog::load(&data_dir.join("meta").join("topics.json")).expect("catalog");
    let process = Arc::new(ProcessShutdown::default());
    let logins =
        crate::auth::logins::SharedLoginLimiter::new(config.security.login_failures_per_minute);
    let run = move || async move {
        let engine = start(EngineStart {
            config,
            mesh: mesh::mesh(1),
            catalog: Arc::new(catalog),
            shard_ports: vec![0],
            shutdown: ShardShutdown::new(process.clone()),
            metrics: crate::metrics::Metrics::new(1),
            logins,
        })
        .await
        .expect("engine starts");
        body(engine.clone()).await;
        process.request();
        engine.shutdown().watch().await;
        engine.stop().await;
    };
    crate::runtime::start_shard(0, None, Duration::ZERO, None, run)
        .expect("executor")
        .join()
        .expect("engine test ran");
}

/// Runs `body` on shard 0 of a two-shard engine (shard 1 serves what it owns), then
/// shuts both down cleanly.
pub(super) fn with_two_shards<F, Fut>(body: F)
where
    F: FnOnce(Engine) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let _ = peregrine_shards::sys::raise_memlock_limit();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Arc::new(ServerConfig {
        shards: 2,
        ..config(dir.path())
    });
    let mesh = mesh::mesh(2);
    let process = Arc::new(ProcessShutdown::default());
    let metrics = crate::metrics::Metrics::new(2);
    let logins =
        crate::auth::logins::SharedLoginLimiter::new(config.security.login_failures_per_minute);
    let starting = || EngineStart {
        config: config.clone(),
        mesh: mesh.clone(),
        catalog: Arc::new(Catalog::default()),
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

fn queue_config(visibility_timeout_ms: u64) -> QueueConfig {
    QueueConfig {
        max_priority: 0,
        ttl_ms: None,
        visibility_timeout_ms,
        max_deliveries: None,
        dead_letter: None,
        fifo: false,
        ..QueueConfig::default()
    }
}

#[test]
fn settling_acks_requeues_and_refuses_what_it_does_not_offer_yet() {
    with_engine(|engine| async move {
        engine
            .declare_queue("q", queue_config(60_000))
            .await
            .expect("declare");
        for body in ["a", "b"] {
            let id = engine
                .publish("q", PublishSpec::default(), bytes::Bytes::from(body))
                .await
                .expect("publish");
            assert!(id.is_some());
        }
        let got = engine.receive("q", 10, 0, false).await.expect("receive");
        assert_eq!(got.messages.len(), 2);
        assert_eq!(&got.bodies[..], b"ab");
        let (a, b) = (got.messages.handles[0], got.messages.handles[1]);
        let later = Settle::ChangeVisibility {
            handle: a,
            timeout_ms: 60_000,
        };
        engine.settle("q", later).await.expect("change visibility");
        let unknown = Settle::ChangeVisibility {
            handle: u64::MAX,
            timeout_ms: 5,
        };
        assert!(matches!(
            engine.settle("q", unknown).await,
            Err(EngineError::UnknownHandle(_))
        ));
        engine
            .settle("q", Settle::Ack { handles: vec![a] })
            .await
            .expect("ack");
        engine
            .settle("q", Settle::Requeue { handles: vec![b] })
            .await
            .expect("requeue");
        let again = engine.settle("q", Settle::Ack { handles: vec![a] }).await;
        assert!(matches!(again, Err(EngineError::UnknownHandle(_))));
        let stats = engine.queue_stats("q").await.expect("stats");
        assert_eq!((stats.ready, stats.in_flight), (1, 0));
        let unknown = engine.receive("nope", 1, 0, false).await;
        assert!(matches!(unknown, Err(EngineError::UnknownQueue(_))));
    });
}

#[test]
fn a_dropped_subscription_returns_its_leases() {
    with_engine(|engine| async move {
        engine
            .declare_queue("q", queue_config(600_000))
            .await
            .expect("declare");
        for i in 0..5 {
            let body = bytes::Bytes::from(format!("m{i}"));
            engine
                .publish("q", PublishSpec::default(), body)
                .await
                .expect("publish");
        }
        let sub = engine.subscribe("q", 3, false);
        let got = sub.next().await.expect("messages");
        assert_eq!(got.messages.len(), 3, "up to the prefetch");
        let stats = engine.queue_stats("q").await.expect("stats");
        assert_eq!((stats.in_flight, stats.consumers), (3, 1));
        drop(sub);
        // The leases return from a task the drop spawned.
        for _ in 0..100 {
            let stats = engine.queue_stats("q").await.expect("stats");
            if (stats.in_flight, stats.consumers) == (0, 0) {
                assert_eq!(stats.ready, 5);
                return;
            }
            crate::runtime::sleep(Duration::from_millis(10)).await;
        }
        panic!("leases not returned");
    });
}

#[test]
fn fetch_results_carry_the_stable_offset_and_no_aborted_ranges_yet() {
    with_engine(|engine| async move {
        let topic = TopicConfig {
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: peregrine_shards::catalog::SEGMENT_BYTES_DEFAULT,
            max_message_bytes: None,
        };
        engine.create_topic("t", topic).await.expect("create");
        let mut builder = peregrine_shards::records::BatchBuilder::new(1, 64);
        builder.push(None, Some(b"v"), 1, &[]);
        let batch = builder.finish().expect("batch");
        let produced = engine
            .produce("t", 0, Acks::Durable, bytes::BytesMut::from(&batch[..]))
            .await
            .expect("produce");
        assert_eq!(produced.base_offset, 0);
        let args = FetchArgs {
            offset: 0,
            max_bytes: 1 << 20,
            max_wait_ms: 0,
            min_bytes: 1,
            isolation: Default::default(),
            pending: false,
        };
        let fetched = engine.fetch("t", 0, args).await.expect("fetch");
        assert_eq!(fetched.high_watermark, 1);
        assert_eq!(fetched.last_stable_offset, fetched.high_watermark);
        assert!(fetched.aborted.is_empty());
        assert!(!fetched.batches.is_empty());
        let missing = engine.fetch("t", 1, args).await;
        assert!(matches!(missing, Err(EngineError::UnknownPartition(_))));
    });
}

// ---- exchanges and queue lifecycle (what AMQP needs) ----

/// Longest a test waits for something the engine does in the background.
const BACKGROUND_WAIT: Duration = Duration::from_secs(5);

fn exchange(kind: ExchangeKind) -> ExchangeMeta {
    ExchangeMeta::new(kind)
}

async fn declare_exchange(engine: &Engine, name: &str, meta: ExchangeMeta) {
    let change = ExchangeChange::Declare {
        name: name.into(),
        meta,
    };
    engine
        .change_exchanges(change)
        .await
        .expect("declare exchange");
}

fn binding(from: &str, target: BindTarget, key: &str) -> Binding {
    Binding {
        exchange: from.into(),
        target,
        routing_key: key.into(),
        headers: Vec::new(),
        match_all: false,
    }
}

async fn bind(engine: &Engine, from: &str, target: BindTarget, key: &str) {
    let change = ExchangeChange::Bind(binding(from, target, key));
    engine.change_exchanges(change).await.expect("bind");
}

fn to_queue(name: &str) -> BindTarget {
    BindTarget::Queue(name.into())
}

fn to_exchange(name: &str) -> BindTarget {
    BindTarget::Exchange(name.into())
}

async fn declare(engine: &Engine, name: &str, config: QueueConfig) {
    engine
        .declare_queue(name, config)
        .await
        .expect("declare queue");
}

async fn send(engine: &Engine, exchange: &str, key: &str, spec: PublishSpec) -> Routed {
    engine
        .publish_to_exchange(exchange, key, spec, bytes::Bytes::from_static(b"m"))
        .await
        .expect("publish")
}

/// Messages ready in `queue` now (taken and acked).
async fn take_all(engine: &Engine, queue: &str) -> usize {
    let got = engine.receive(queue, 100, 0, true).await.expect("receive");
    got.messages.len()
}

/// `fut`'s output, or `None` when it takes longer than `BACKGROUND_WAIT`.
async fn within<T>(fut: impl Future<Output = T>) -> Option<T> {
    let late = async {
        crate::runtime::sleep(BACKGROUND_WAIT).await;
        None
    };
    futures_lite::future::or(async { Some(fut.await) }, late).await
}

/// The next batch of a subscription within `BACKGROUND_WAIT`: how many messages.
async fn next_of(sub: &Subscription) -> Result<usize, EngineError> {
    let got = within(sub.next())
        .await
        .expect("the subscription answers in time");
    got.map(|r| r.messages.len())
}

/// Waits (up to `BACKGROUND_WAIT`) until `done` holds; whether it did.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + BACKGROUND_WAIT;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        crate::runtime::sleep(Duration::from_millis(10)).await;
    }
    done()
}

#[test]
fn exchange_bindings_route_through_two_hops_and_a_cycle_ends() {
    with_engine(|engine| async move {
        for x in ["front", "middle", "back"] {
            declare_exchange(&engine, x, exchange(ExchangeKind::Fanout)).await;
        }
        declare(&engine, "end", QueueConfig::default()).await;
        declare(&engine, "side", QueueConfig::default()).await;
        bind(&engine, "front", to_exchange("middle"), "").await;
        bind(&engine, "middle", to_exchange("back"), "").await;
        bind(&engine, "back", to_queue("end"), "").await;
        // back -> front closes a cycle; front also reaches "end" directly.
        bind(&engine, "back", to_exchange("front"), "").await;
        bind(&engine, "front", to_queue("end"), "").await;
        bind(&engine, "middle", to_queue("side"), "").await;
        let routed = send(&engine, "front", "k", PublishSpec::default()).await;
        assert_eq!((routed.queues, routed.topics), (2, 0));
        assert_eq!(take_all(&engine, "end").await, 1, "reached once");
        assert_eq!(take_all(&engine, "side").await, 1);
        // Unbinding the first hop leaves front with its direct binding only.
        let hop = ExchangeChange::Unbind(binding("front", to_exchange("middle"), ""));
        engine.change_exchanges(hop).await.expect("unbind");
        let routed = send(&engine, "front", "k", PublishSpec::default()).await;
        assert_eq!(routed.queues, 1);
        let missing = ExchangeChange::Bind(binding("front", to_exchange("nope"), ""));
        let refused = engine.change_exchanges(missing).await;
        assert!(
            matches!(refused, Err(EngineError::UnknownExchange(_))),
            "{refused:?}"
        );
    });
}

#[test]
fn an_alternate_exchange_catches_what_matches_no_binding() {
    with_engine(|engine| async move {
        declare_exchange(&engine, "ae", exchange(ExchangeKind::Fanout)).await;
        let mut main = exchange(ExchangeKind::Direct);
        main.alternate = Some("ae".into());
        declare_exchange(&engine, "main", main).await;
        declare(&engine, "keyed", QueueConfig::default()).await;
        declare(&engine, "unroutable", QueueConfig::default()).await;
        bind(&engine, "main", to_queue("keyed"), "k").await;
        bind(&engine, "ae", to_queue("unroutable"), "").await;
        assert_eq!(
            send(&engine, "main", "k", PublishSpec::default())
                .await
                .queues,
            1
        );
        assert_eq!(
            send(&engine, "main", "x", PublishSpec::default())
                .await
                .queues,
            1
        );
        assert_eq!(take_all(&engine, "keyed").await, 1);
        assert_eq!(take_all(&engine, "unroutable").await, 1);
        // Without an alternate, nothing is reached: the front end's mandatory return.
        declare_exchange(&engine, "plain", exchange(ExchangeKind::Direct)).await;
        let routed = send(&engine, "plain", "x", PublishSpec::default()).await;
        assert_eq!((routed.queues, routed.topics), (0, 0));
    });
}

#[test]
fn an_internal_exchange_refuses_direct_publishes_but_routes_from_others() {
    with_engine(|engine| async move {
        let mut internal = exchange(ExchangeKind::Fanout);
        internal.internal = true;
        declare_exchange(&engine, "inner", internal).await;
        declare_exchange(&engine, "outer", exchange(ExchangeKind::Fanout)).await;
        declare(&engine, "q", QueueConfig::default()).await;
        bind(&engine, "inner", to_queue("q"), "").await;
        bind(&engine, "outer", to_exchange("inner"), "").await;
        let direct = engine
            .publish_to_exchange("inner", "", PublishSpec::default(), bytes::Bytes::new())
            .await;
        assert!(
            matches!(direct, Err(EngineError::AccessRefused(_))),
            "{direct:?}"
        );
        assert_eq!(
            send(&engine, "outer", "", PublishSpec::default())
                .await
                .queues,
            1
        );
        assert_eq!(take_all(&engine, "q").await, 1);
    });
}

#[test]
fn reserved_names_are_refused_the_standard_exchanges_exist_and_redeclares_must_match() {
    with_engine(|engine| async move {
        for (name, kind) in peregrine_shards::catalog::STANDARD_EXCHANGES {
            let meta = engine.exchange(name).expect("a standard exchange");
            assert_eq!((meta.kind, meta.durable), (kind, true));
        }
        assert_eq!(engine.exchange(""), None);
        for name in ["", "amq.direct", "amq.mine"] {
            let change = ExchangeChange::Declare {
                name: name.into(),
                meta: exchange(ExchangeKind::Direct),
            };
            let refused = engine.change_exchanges(change).await;
            assert!(
                matches!(refused, Err(EngineError::AccessRefused(_))),
                "{refused:?}"
            );
            let change = ExchangeChange::Delete {
                name: name.into(),
                if_unused: false,
            };
            let refused = engine.change_exchanges(change).await;
            assert!(
                matches!(refused, Err(EngineError::AccessRefused(_))),
                "{refused:?}"
            );
        }
        // The standard ones route like any other.
        declare(&engine, "q", QueueConfig::default()).await;
        bind(&engine, "amq.topic", to_queue("q"), "a.#").await;
        assert_eq!(
            send(&engine, "amq.topic", "a.b", PublishSpec::default())
                .await
                .queues,
            1
        );
        declare_exchange(&engine, "x", exchange(ExchangeKind::Direct)).await;
        declare_exchange(&engine, "x", exchange(ExchangeKind::Direct)).await;
        let mut auto = exchange(ExchangeKind::Direct);
        auto.auto_delete = true;
        let change = ExchangeChange::Declare {
            name: "x".into(),
            meta: auto,
        };
        let refused = engine.change_exchanges(change).await;
        assert!(
            matches!(refused, Err(EngineError::PreconditionFailed(_))),
            "{refused:?}"
        );
        bind(&engine, "x", to_queue("q"), "k").await;
        let change = ExchangeChange::Delete {
            name: "x".into(),
            if_unused: true,
        };
        let refused = engine.change_exchanges(change).await;
        assert!(
            matches!(refused, Err(EngineError::PreconditionFailed(_))),
            "{refused:?}"
        );
        let change = ExchangeChange::Delete {
            name: "x".into(),
            if_unused: false,
        };
        engine.change_exchanges(change).await.expect("delete");
        assert_eq!(engine.exchange("x"), None);
    });
}

#[test]
fn an_auto_delete_exchange_goes_with_its_last_binding() {
    with_engine(|engine| async move {
        let mut auto = exchange(ExchangeKind::Direct);
        auto.auto_delete = true;
        declare_exchange(&engine, "auto", auto).await;
        declare(&engine, "a", QueueConfig::default()).await;
        declare(&engine, "b", QueueConfig::default()).await;
        bind(&engine, "auto", to_queue("a"), "k").await;
        bind(&engine, "auto", to_queue("b"), "k").await;
        let unbind = ExchangeChange::Unbind(binding("auto", to_queue("a"), "k"));
        engine.change_exchanges(unbind).await.expect("unbind");
        assert!(engine.exchange("auto").is_some(), "one binding left");
        // The last binding goes with its queue, and the exchange with it.
        engine.delete_queue("b").await.expect("delete");
        assert_eq!(engine.exchange("auto"), None);
        let gone = engine
            .publish_to_exchange("auto", "k", PublishSpec::default(), bytes::Bytes::new())
            .await;
        assert!(
            matches!(gone, Err(EngineError::UnknownExchange(_))),
            "{gone:?}"
        );
    });
}

#[test]
fn a_delayed_exchange_delays_queue_targets_by_the_x_delay_header() {
    with_engine(|engine| async move {
        let mut delayed = exchange(ExchangeKind::Direct);
        delayed.delayed = true;
        declare_exchange(&engine, "later", delayed).await;
        declare(&engine, "q", QueueConfig::default()).await;
        bind(&engine, "later", to_queue("q"), "k").await;
        let with_delay = PublishSpec {
            headers: vec![("x-delay".into(), "300".into())],
            ..PublishSpec::default()
        };
        assert_eq!(send(&engine, "later", "k", with_delay).await.queues, 1);
        let bad = PublishSpec {
            headers: vec![("x-delay".into(), "-5".into())],
            ..PublishSpec::default()
        };
        assert_eq!(send(&engine, "later", "k", bad).await.queues, 1);
        send(&engine, "later", "k", PublishSpec::default()).await;
        let stats = engine.queue_stats("q").await.expect("stats");
        assert_eq!(
            (stats.ready, stats.delayed),
            (2, 1),
            "only x-delay=300 waits"
        );
        assert_eq!(take_all(&engine, "q").await, 2);
        let got = engine.receive("q", 10, 5_000, true).await.expect("receive");
        assert_eq!(got.messages.len(), 1, "delivered once its delay passed");
        let waited = got.messages.published_ms[0];
        assert!(
            crate::time::now_ms() - waited >= 300,
            "not before its delay"
        );
    });
}

#[test]
fn dead_letters_through_an_exchange_use_the_dead_letter_routing_key() {
    with_engine(|engine| async move {
        declare_exchange(&engine, "dlx", exchange(ExchangeKind::Direct)).await;
        declare(&engine, "by-key", QueueConfig::default()).await;
        declare(&engine, "by-name", QueueConfig::default()).await;
        bind(&engine, "dlx", to_queue("by-key"), "dead").await;
        bind(&engine, "dlx", to_queue("by-name"), "plain").await;
        let keyed = QueueConfig {
            dead_letter: Some("dlx".into()),
            dead_letter_routing_key: Some("dead".into()),
            ..QueueConfig::default()
        };
        let plain = QueueConfig {
            dead_letter: Some("dlx".into()),
            ..QueueConfig::default()
        };
        declare(&engine, "keyed", keyed).await;
        declare(&engine, "plain", plain).await;
        for source in ["keyed", "plain"] {
            engine
                .publish(
                    source,
                    PublishSpec::default(),
                    bytes::Bytes::from_static(b"x"),
                )
                .await
                .expect("publish");
            let got = engine.receive(source, 1, 0, false).await.expect("receive");
            let reject = Settle::Reject {
                handles: got.messages.handles.clone(),
            };
            engine.settle(source, reject).await.expect("reject");
        }
        // The key when set, else (as before) the source queue's name.
        for target in ["by-key", "by-name"] {
            let got = engine
                .receive(target, 10, 5_000, true)
                .await
                .expect("receive");
            assert_eq!(got.messages.len(), 1, "{target}");
        }
    });
}

#[test]
fn a_catalog_from_before_exchange_flags_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = dir.path().join("meta");
    std::fs::create_dir_all(&meta).expect("meta dir");
    let old = r##"{"version": 2, "next_topic_id": 1, "topics": {},
        "exchanges": {"logs": "Topic"}, "bindings": []}"##;
    std::fs::write(meta.join("topics.json"), old).expect("old catalog");
    with_engine_at(dir.path(), |engine| async move {
        assert_eq!(engine.exchange("logs"), Some(exchange(ExchangeKind::Topic)));
        assert!(engine.exchange("amq.fanout").is_some());
        declare(&engine, "q", QueueConfig::default()).await;
        bind(&engine, "logs", to_queue("q"), "#").await;
        assert_eq!(
            send(&engine, "logs", "a", PublishSpec::default())
                .await
                .queues,
            1
        );
    });
}

#[test]
fn non_durable_and_exclusive_queues_and_transient_exchanges_are_gone_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_engine_at(dir.path(), |engine| async move {
        declare(&engine, "kept", QueueConfig::default()).await;
        let transient = QueueConfig {
            durable: false,
            ..QueueConfig::default()
        };
        let exclusive = QueueConfig {
            exclusive: Some("connection-1".into()),
            ..QueueConfig::default()
        };
        declare(&engine, "transient", transient).await;
        declare(&engine, "mine", exclusive).await;
        declare_exchange(&engine, "x", exchange(ExchangeKind::Fanout)).await;
        for q in ["kept", "transient", "mine"] {
            bind(&engine, "x", to_queue(q), "").await;
        }
        let mut passing = exchange(ExchangeKind::Fanout);
        passing.durable = false;
        declare_exchange(&engine, "passing", passing).await;
        bind(&engine, "passing", to_queue("kept"), "").await;
        assert_eq!(
            send(&engine, "x", "", PublishSpec::default()).await.queues,
            3
        );
        // Another owner tag is no mismatch for the engine: the front end checks it.
        let other_owner = QueueConfig {
            exclusive: Some("connection-2".into()),
            ..QueueConfig::default()
        };
        declare(&engine, "mine", other_owner).await;
    });
    with_engine_at(dir.path(), |engine| async move {
        assert!(engine.queue_config("kept").is_some());
        assert_eq!(engine.queue_config("transient"), None);
        assert_eq!(engine.queue_config("mine"), None);
        assert_eq!(engine.exchange("passing"), None, "a transient exchange");
        let routed = send(&engine, "x", "", PublishSpec::default()).await;
        assert_eq!(routed.queues, 1, "their bindings went with them");
        assert_eq!(take_all(&engine, "kept").await, 2);
    });
    let folders: Vec<String> = std::fs::read_dir(dir.path().join("queues"))
        .expect("queues folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert!(folders[0].starts_with("kept-"), "{folders:?}");
}

#[test]
fn an_auto_delete_queue_goes_after_its_last_subscription() {
    with_engine(|engine| async move {
        let auto = QueueConfig {
            auto_delete: true,
            ..QueueConfig::default()
        };
        declare(&engine, "auto", auto).await;
        for _ in 0..2 {
            engine
                .publish(
                    "auto",
                    PublishSpec::default(),
                    bytes::Bytes::from_static(b"m"),
                )
                .await
                .expect("publish");
        }
        // A pull receive is no subscription.
        assert_eq!(
            engine
                .receive("auto", 1, 0, true)
                .await
                .expect("receive")
                .messages
                .len(),
            1
        );
        crate::runtime::sleep(Duration::from_millis(100)).await;
        assert!(engine.queue_config("auto").is_some());
        let first = engine.subscribe("auto", 10, true);
        let second = engine.subscribe("auto", 10, true);
        assert_eq!(next_of(&first).await, Ok(1));
        let waiting = {
            let (tx, rx) = futures_channel::oneshot::channel();
            crate::runtime::spawn_local(async move {
                let _ = tx.send(second.next().await.map(|r| r.messages.len()));
            })
            .detach();
            rx
        };
        // Its pull attaches it before the first one goes.
        crate::runtime::sleep(Duration::from_millis(50)).await;
        drop(first);
        crate::runtime::sleep(Duration::from_millis(100)).await;
        assert!(
            engine.queue_config("auto").is_some(),
            "one subscription left"
        );
        // Its last subscription is waiting for a message; delete_queue_if says no.
        let refused = engine.delete_queue_if("auto", true, false).await;
        assert!(
            matches!(refused, Err(EngineError::PreconditionFailed(_))),
            "{refused:?}"
        );
        // Deleting the queue ends the subscription's wait with an error.
        assert_eq!(engine.delete_queue_if("auto", false, true).await, Ok(0));
        let ended = within(waiting)
            .await
            .expect("in time")
            .expect("the subscription task answers");
        assert!(
            matches!(ended, Err(EngineError::UnknownQueue(_))),
            "{ended:?}"
        );
        // Declared again, its new subscription's end deletes it.
        let auto = QueueConfig {
            auto_delete: true,
            ..QueueConfig::default()
        };
        declare(&engine, "auto", auto).await;
        engine
            .publish(
                "auto",
                PublishSpec::default(),
                bytes::Bytes::from_static(b"m"),
            )
            .await
            .expect("publish");
        let sub = engine.subscribe("auto", 10, true);
        assert_eq!(next_of(&sub).await, Ok(1));
        drop(sub);
        let e = engine.clone();
        assert!(
            eventually(|| e.queue_config("auto").is_none()).await,
            "auto-deleted"
        );
    });
}

#[test]
fn an_unused_queue_with_an_expiry_is_deleted() {
    with_engine(|engine| async move {
        let expiring = QueueConfig {
            expires_ms: Some(200),
            ..QueueConfig::default()
        };
        declare(&engine, "idle", expiring.clone()).await;
        declare(&engine, "kept", QueueConfig::default()).await;
        let e = engine.clone();
        assert!(
            eventually(|| e.queue_config("idle").is_none()).await,
            "expired"
        );
        assert!(engine.queue_config("kept").is_some());
        // A subscription is a use that lasts: its queue stays while it is attached.
        declare(&engine, "used", expiring).await;
        let sub = engine.subscribe("used", 1, true);
        let (tx, rx) = futures_channel::oneshot::channel();
        crate::runtime::spawn_local(async move {
            let _ = tx.send(sub.next().await.map(|r| r.messages.len()));
        })
        .detach();
        crate::runtime::sleep(Duration::from_millis(600)).await;
        assert!(engine.queue_config("used").is_some(), "subscribed: in use");
        engine
            .publish(
                "used",
                PublishSpec::default(),
                bytes::Bytes::from_static(b"m"),
            )
            .await
            .expect("publish");
        assert_eq!(within(rx).await.expect("in time").expect("answered"), Ok(1));
        // The subscription went with its task; unused again, the queue expires.
        let e = engine.clone();
        assert!(
            eventually(|| e.queue_config("used").is_none()).await,
            "expired"
        );
    });
}

#[test]
fn delete_queue_if_refuses_a_queue_in_use_or_not_empty_and_counts_what_it_held() {
    with_engine(|engine| async move {
        declare(&engine, "q", queue_config(600_000)).await;
        for _ in 0..3 {
            engine
                .publish("q", PublishSpec::default(), bytes::Bytes::from_static(b"m"))
                .await
                .expect("publish");
        }
        let sub = engine.subscribe("q", 1, false);
        assert_eq!(next_of(&sub).await, Ok(1));
        let in_use = engine.delete_queue_if("q", true, false).await;
        assert!(
            matches!(in_use, Err(EngineError::PreconditionFailed(_))),
            "{in_use:?}"
        );
        drop(sub);
        // The lease returns from a task the drop spawned.
        let deadline = std::time::Instant::now() + BACKGROUND_WAIT;
        loop {
            let stats = engine.queue_stats("q").await.expect("stats");
            if (stats.ready, stats.in_flight) == (3, 0) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "lease not returned: {stats:?}"
            );
            crate::runtime::sleep(Duration::from_millis(10)).await;
        }
        let full = engine.delete_queue_if("q", true, true).await;
        assert!(
            matches!(full, Err(EngineError::PreconditionFailed(_))),
            "{full:?}"
        );
        assert_eq!(engine.delete_queue_if("q", true, false).await, Ok(3));
        assert_eq!(engine.queue_config("q"), None);
        let gone = engine.delete_queue_if("q", false, false).await;
        assert!(
            matches!(gone, Err(EngineError::UnknownQueue(_))),
            "{gone:?}"
        );
    });
}

#[test]
fn queues_owned_by_another_shard_auto_delete_expire_and_delete_if() {
    with_two_shards(|engine| async move {
        // Names owned by shard 1, so every lifecycle step crosses the mesh.
        let remote: Vec<String> = (0..100)
            .map(|i| format!("remote-{i}"))
            .filter(|n| engine.owner(Object::Queue(n)) == Ok(1))
            .take(3)
            .collect();
        assert_eq!(remote.len(), 3, "shard 1 owns some names");
        let (auto, expiring, plain) = (&remote[0], &remote[1], &remote[2]);
        let auto_config = QueueConfig {
            auto_delete: true,
            ..QueueConfig::default()
        };
        declare(&engine, auto, auto_config).await;
        let expiring_config = QueueConfig {
            expires_ms: Some(200),
            ..QueueConfig::default()
        };
        declare(&engine, expiring, expiring_config).await;
        declare(&engine, plain, queue_config(600_000)).await;
        engine
            .publish(
                auto,
                PublishSpec::default(),
                bytes::Bytes::from_static(b"m"),
            )
            .await
            .expect("publish");
        let sub = engine.subscribe(auto, 1, true);
        assert_eq!(next_of(&sub).await, Ok(1));
        drop(sub);
        let e = engine.clone();
        let (a, x) = (auto.clone(), expiring.clone());
        assert!(
            eventually(|| e.queue_config(&a).is_none()).await,
            "auto-deleted"
        );
        assert!(eventually(|| e.queue_config(&x).is_none()).await, "expired");
        engine
            .publish(
                plain,
                PublishSpec::default(),
                bytes::Bytes::from_static(b"m"),
            )
            .await
            .expect("publish");
        let sub = engine.subscribe(plain, 1, false);
        assert_eq!(next_of(&sub).await, Ok(1));
        let refused = engine.delete_queue_if(plain, true, false).await;
        assert!(
            matches!(refused, Err(EngineError::PreconditionFailed(_))),
            "{refused:?}"
        );
        let refused = engine.delete_queue_if(plain, false, true).await;
        assert!(
            matches!(refused, Err(EngineError::PreconditionFailed(_))),
            "{refused:?}"
        );
        // The leased message is not counted as waiting.
        assert_eq!(engine.delete_queue_if(plain, false, false).await, Ok(0));
        let ended = within(sub.next()).await.expect("in time");
        assert!(
            ended.is_err(),
            "the subscription ends with its queue: {ended:?}"
        );
    });
}

// ---- transactions (issue 18) ----

use super::transactions::{Hold, TxnProducer, HOLD};
use peregrine_shards::batch::BatchHeader;

/// Longest a test waits for a transaction the broker completes by itself.
const TXN_WAIT: Duration = Duration::from_secs(10);

fn one_topic(partitions: i32) -> TopicConfig {
    TopicConfig {
        partitions,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: peregrine_shards::catalog::SEGMENT_BYTES_DEFAULT,
        max_message_bytes: None,
    }
}

/// A transactional batch of `values` from `producer_id`/`epoch`, sequence `seq` on.
fn txn_batch(producer_id: i64, epoch: i16, seq: i32, values: &[&str]) -> bytes::BytesMut {
    let mut builder = peregrine_shards::records::BatchBuilder::new(1, 64);
    for v in values {
        builder.push(None, Some(v.as_bytes()), 1, &[]);
    }
    let mut batch = builder.finish().expect("batch");
    // RecordBatch v2: attributes at 21, producer id at 43, epoch at 51, sequence at
    // 53; the CRC32C at 17 covers attributes to the end.
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x10;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes::BytesMut::from(&batch[..])
}

fn producer(id: &str, (producer_id, epoch): (i64, i16)) -> TxnProducer {
    TxnProducer {
        transactional_id: id.into(),
        producer_id,
        epoch,
    }
}

fn committed_from(offset: i64) -> FetchArgs {
    FetchArgs {
        offset,
        max_bytes: 1 << 20,
        max_wait_ms: 0,
        min_bytes: 1,
        isolation: Isolation::Committed,
        pending: false,
    }
}

/// The headers of every batch a read_committed fetch from 0 returns, and the fetch.
async fn read_committed(
    engine: &Engine,
    topic: &str,
    partition: i32,
) -> (Fetched, Vec<BatchHeader>) {
    let fetched = engine
        .fetch(topic, partition, committed_from(0))
        .await
        .expect("fetch");
    let headers = fetched
        .batches
        .iter()
        .map(|b| BatchHeader::parse(b).expect("header"))
        .collect();
    (fetched, headers)
}

/// A partition of `topic` owned by each of the two shards.
fn one_per_shard(engine: &Engine, topic: &str, partitions: i32) -> (i32, i32) {
    let owner = |p| {
        engine
            .owner(Object::Partition {
                topic,
                partition: p,
            })
            .expect("owner")
    };
    let on = |shard| {
        (0..partitions)
            .find(|p| owner(*p) == shard)
            .expect("a partition on each shard")
    };
    (on(0), on(1))
}

/// The id's state once `done` holds for it, within `TXN_WAIT`.
async fn txn_state_when(
    engine: &Engine,
    id: &str,
    done: impl Fn(&TxnDescription) -> bool,
) -> TxnDescription {
    let deadline = std::time::Instant::now() + TXN_WAIT;
    loop {
        let (_, described) = engine
            .describe_transactions(vec![id.to_string()])
            .await
            .pop()
            .expect("one answer");
        let described = described.expect("described");
        if done(&described) || std::time::Instant::now() >= deadline {
            return described;
        }
        crate::runtime::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_transaction_over_two_shards_commits_with_a_marker_in_each_partition() {
    with_two_shards(|engine| async move {
        engine
            .create_topic("t", one_topic(8))
            .await
            .expect("create");
        let (a, b) = one_per_shard(&engine, "t", 8);
        let ids = engine
            .init_transactions("tx", 60_000, -1, -1)
            .await
            .expect("init");
        assert_eq!(ids.1, 0);
        let p = producer("tx", ids);
        let parts = vec![("t".to_string(), a), ("t".to_string(), b)];
        engine
            .add_partitions_to_txn(p.clone(), parts.clone())
            .await
            .expect("add partitions");
        for partition in [a, b] {
            engine
                .produce(
                    "t",
                    partition,
                    Acks::Durable,
                    txn_batch(ids.0, ids.1, 0, &["x", "y"]),
                )
                .await
                .expect("produce");
            // Open: a read_committed reader sees nothing yet.
            let (fetched, headers) = read_committed(&engine, "t", partition).await;
            assert_eq!(fetched.last_stable_offset, 0);
            assert!(headers.is_empty());
        }
        // Offsets of a group on the shard that does not own the transactional id.
        let txn_shard = engine.owner(Object::Transaction("tx")).expect("owner");
        let group = (0..100)
            .map(|i| format!("g{i}"))
            .find(|g| engine.owner(Object::Group(g)).expect("owner") != txn_shard)
            .expect("a group on the other shard");
        engine
            .add_offsets_to_txn(p.clone(), &group)
            .await
            .expect("add offsets");
        let at = vec![CommitEntry {
            topic: "t".into(),
            partition: a,
            offset: 2,
        }];
        engine
            .txn_offset_commit(p.clone(), &group, at.clone())
            .await
            .expect("txn offset commit");
        assert!(engine
            .fetch_offsets(&group, None)
            .await
            .expect("fetch")
            .is_empty());
        let open = txn_state_when(&engine, "tx", |_| true).await;
        assert_eq!(open.state, TxnState::Ongoing);
        assert_eq!(open.groups, vec![group.clone()]);
        let mut sorted = parts.clone();
        sorted.sort();
        assert_eq!(open.partitions, sorted);
        engine.end_txn(p.clone(), true).await.expect("commit");
        for partition in [a, b] {
            let (fetched, headers) = read_committed(&engine, "t", partition).await;
            assert_eq!(fetched.high_watermark, 3, "two records and the marker");
            assert_eq!(fetched.last_stable_offset, fetched.high_watermark);
            assert!(fetched.aborted.is_empty());
            let last = headers.last().expect("batches");
            assert!(last.is_control(), "the commit marker ends the partition");
            assert_eq!(last.producer_id, ids.0);
        }
        let done = txn_state_when(&engine, "tx", |_| true).await;
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert_eq!(engine.fetch_offsets(&group, None).await.expect("fetch"), at);
        // A client retrying its commit is answered OK; an abort now is not.
        engine
            .end_txn(p.clone(), true)
            .await
            .expect("commit retried");
        assert!(matches!(
            engine.end_txn(p, false).await,
            Err(EngineError::InvalidTxnState(_))
        ));
        let listed = engine
            .list_transactions(vec![TxnState::CompleteCommit], Vec::new())
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].producer_id, ids.0);
    });
}

#[test]
fn an_aborted_transaction_leaves_aborted_ranges_for_read_committed_readers() {
    with_two_shards(|engine| async move {
        engine
            .create_topic("t", one_topic(8))
            .await
            .expect("create");
        let (a, b) = one_per_shard(&engine, "t", 8);
        let ids = engine
            .init_transactions("tx", 60_000, -1, -1)
            .await
            .expect("init");
        let p = producer("tx", ids);
        let parts = vec![("t".to_string(), a), ("t".to_string(), b)];
        engine
            .add_partitions_to_txn(p.clone(), parts)
            .await
            .expect("add partitions");
        for partition in [a, b] {
            engine
                .produce(
                    "t",
                    partition,
                    Acks::Durable,
                    txn_batch(ids.0, ids.1, 0, &["x"]),
                )
                .await
                .expect("produce");
        }
        engine.end_txn(p, false).await.expect("abort");
        for partition in [a, b] {
            let (fetched, headers) = read_committed(&engine, "t", partition).await;
            assert_eq!(fetched.last_stable_offset, 2);
            assert_eq!(
                fetched.aborted,
                vec![AbortedRange {
                    producer_id: ids.0,
                    first_offset: 0
                }]
            );
            assert!(headers.last().expect("batches").is_control());
        }
        let done = txn_state_when(&engine, "tx", |_| true).await;
        assert_eq!(done.state, TxnState::CompleteAbort);
        assert!(done.partitions.is_empty());
    });
}

#[test]
fn transactional_offsets_show_only_after_a_commit_and_never_after_an_abort() {
    with_engine(|engine| async move {
        engine
            .create_topic("t", one_topic(1))
            .await
            .expect("create");
        let ids = engine
            .init_transactions("tx", 60_000, -1, -1)
            .await
            .expect("init");
        let p = producer("tx", ids);
        let at = |offset| {
            vec![CommitEntry {
                topic: "t".into(),
                partition: 0,
                offset,
            }]
        };
        // The group must be added first.
        assert!(matches!(
            engine.txn_offset_commit(p.clone(), "g", at(5)).await,
            Err(EngineError::InvalidTxnState(_))
        ));
        engine
            .add_partitions_to_txn(p.clone(), vec![("t".into(), 0)])
            .await
            .expect("add partition");
        engine
            .add_offsets_to_txn(p.clone(), "g")
            .await
            .expect("add offsets");
        engine
            .txn_offset_commit(p.clone(), "g", at(5))
            .await
            .expect("txn offset commit");
        assert!(engine
            .fetch_offsets("g", None)
            .await
            .expect("fetch")
            .is_empty());
        engine.end_txn(p.clone(), true).await.expect("commit");
        assert_eq!(engine.fetch_offsets("g", None).await.expect("fetch"), at(5));

        // The next transaction aborts: its offsets never show.
        engine
            .add_offsets_to_txn(p.clone(), "g")
            .await
            .expect("add offsets");
        engine
            .txn_offset_commit(p.clone(), "g", at(9))
            .await
            .expect("txn offset commit");
        engine.end_txn(p, false).await.expect("abort");
        assert_eq!(engine.fetch_offsets("g", None).await.expect("fetch"), at(5));
    });
}

#[test]
fn init_with_an_open_transaction_aborts_it_and_fences_the_old_epoch() {
    with_engine(|engine| async move {
        engine
            .create_topic("t", one_topic(1))
            .await
            .expect("create");
        let first = engine
            .init_transactions("tx", 60_000, -1, -1)
            .await
            .expect("init");
        let old = producer("tx", first);
        engine
            .add_partitions_to_txn(old.clone(), vec![("t".into(), 0)])
            .await
            .expect("add partition");
        engine
            .produce(
                "t",
                0,
                Acks::Durable,
                txn_batch(first.0, first.1, 0, &["zombie"]),
            )
            .await
            .expect("produce");
        let second = engine
            .init_transactions("tx", 60_000, -1, -1)
            .await
            .expect("second init");
        assert_eq!(second.0, first.0, "same producer id");
        assert!(
            second.1 > first.1 + 1,
            "epoch bumped past the fencing abort"
        );
        let (fetched, _) = read_committed(&engine, "t", 0).await;
        assert_eq!(fetched.last_stable_offset, fetched.high_watermark);
        assert_eq!(fetched.aborted.len(), 1, "the open transaction was aborted");
        assert!(matches!(
            engine
                .add_partitions_to_txn(old.clone(), vec![("t".into(), 0)])
                .await,
            Err(EngineError::ProducerFenced(_))
        ));
        assert!(matches!(
            engine.end_txn(old.clone(), true).await,
            Err(EngineError::ProducerFenced(_))
        ));
        assert!(matches!(
            engine.end_txn(producer("nobody", first), true).await,
            Err(EngineError::UnknownTransactionalId(_))
        ));
        assert!(matches!(
            engine
                .end_txn(producer("tx", (first.0 + 1, second.1)), true)
                .await,
            Err(EngineError::UnknownTransactionalId(_))
        ));
        assert!(matches!(
            engine
                .add_partitions_to_txn(producer("tx", second), vec![("nope".into(), 0)])
                .await,
            Err(EngineError::UnknownPartition(_))
        ));
        assert!(matches!(
            engine.init_transactions("tx", 900_001, -1, -1).await,
            Err(EngineError::InvalidTransactionTimeout(_))
        ));
    });
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    with_engine(|engine| async move {
        engine
            .create_topic("t", one_topic(1))
            .await
            .expect("create");
        let ids = engine
            .init_transactions("tx", 100, -1, -1)
            .await
            .expect("init");
        let p = producer("tx", ids);
        engine
            .add_partitions_to_txn(p.clone(), vec![("t".into(), 0)])
            .await
            .expect("add partition");
        engine
            .produce("t", 0, Acks::Durable, txn_batch(ids.0, ids.1, 0, &["late"]))
            .await
            .expect("produce");
        let done = txn_state_when(&engine, "tx", |d| d.state == TxnState::CompleteAbort).await;
        assert_eq!(done.state, TxnState::CompleteAbort);
        assert_eq!(done.epoch, ids.1 + 1);
        let (fetched, _) = read_committed(&engine, "t", 0).await;
        assert_eq!(fetched.aborted.len(), 1);
        assert!(matches!(
            engine.end_txn(p, true).await,
            Err(EngineError::ProducerFenced(_))
        ));
    });
}

#[test]
fn calls_for_a_transaction_being_completed_get_concurrent_transactions() {
    with_engine(|engine| async move {
        engine
            .create_topic("t", one_topic(1))
            .await
            .expect("create");
        let ids = engine
            .init_transactions("tx", 60_000, -1, -1)
            .await
            .expect("init");
        let p = producer("tx", ids);
        engine
            .add_partitions_to_txn(p.clone(), vec![("t".into(), 0)])
            .await
            .expect("add partition");
        HOLD.with(|h| h.set(Some(Hold::Markers)));
        assert!(matches!(
            engine.end_txn(p.clone(), true).await,
            Err(EngineError::ConcurrentTransactions(_))
        ));
        assert!(matches!(
            engine
                .add_partitions_to_txn(p.clone(), vec![("t".into(), 0)])
                .await,
            Err(EngineError::ConcurrentTransactions(_))
        ));
        assert!(matches!(
            engine.init_transactions("tx", 60_000, -1, -1).await,
            Err(EngineError::ConcurrentTransactions(_))
        ));
        HOLD.with(|h| h.set(None));
        // The tick completes it; the client's retry is then answered OK.
        let done = txn_state_when(&engine, "tx", |d| d.state == TxnState::CompleteCommit).await;
        assert_eq!(done.state, TxnState::CompleteCommit);
        engine.end_txn(p, true).await.expect("commit retried");
    });
}

#[test]
fn after_a_restart_an_open_transaction_is_aborted_and_a_decided_commit_finished() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ids = Arc::new(std::sync::Mutex::new((0i64, 0i16, 0i64, 0i16)));
    let seen = ids.clone();
    with_engine_at(dir.path(), move |engine| async move {
        engine
            .create_topic("t", one_topic(2))
            .await
            .expect("create");
        let open = engine
            .init_transactions("open", 60_000, -1, -1)
            .await
            .expect("init");
        engine
            .add_partitions_to_txn(producer("open", open), vec![("t".into(), 0)])
            .await
            .expect("add");
        engine
            .produce("t", 0, Acks::Durable, txn_batch(open.0, open.1, 0, &["o"]))
            .await
            .expect("produce");
        let decided = engine
            .init_transactions("decided", 60_000, -1, -1)
            .await
            .expect("init");
        let d = producer("decided", decided);
        engine
            .add_partitions_to_txn(d.clone(), vec![("t".into(), 1)])
            .await
            .expect("add");
        engine
            .add_offsets_to_txn(d.clone(), "g")
            .await
            .expect("add group");
        let at = vec![CommitEntry {
            topic: "t".into(),
            partition: 1,
            offset: 1,
        }];
        engine
            .txn_offset_commit(d.clone(), "g", at)
            .await
            .expect("offsets");
        engine
            .produce(
                "t",
                1,
                Acks::Durable,
                txn_batch(decided.0, decided.1, 0, &["d"]),
            )
            .await
            .expect("produce");
        // The commit is decided and durable, and the broker stops before any marker.
        HOLD.with(|h| h.set(Some(Hold::Markers)));
        assert!(engine.end_txn(d, true).await.is_err());
        let prepared = txn_state_when(&engine, "decided", |_| true).await;
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        *seen.lock().expect("lock") = (open.0, open.1, decided.0, decided.1);
    });
    let (open_pid, open_epoch, decided_pid, _) = *ids.lock().expect("lock");
    with_engine_at(dir.path(), move |engine| async move {
        let open = txn_state_when(&engine, "open", |d| d.state == TxnState::CompleteAbort).await;
        assert_eq!(open.state, TxnState::CompleteAbort);
        assert_eq!((open.producer_id, open.epoch), (open_pid, open_epoch + 1));
        let (fetched, _) = read_committed(&engine, "t", 0).await;
        assert_eq!(fetched.last_stable_offset, fetched.high_watermark);
        assert_eq!(fetched.aborted.len(), 1);

        let decided =
            txn_state_when(&engine, "decided", |d| d.state == TxnState::CompleteCommit).await;
        assert_eq!(decided.state, TxnState::CompleteCommit);
        let (fetched, headers) = read_committed(&engine, "t", 1).await;
        assert_eq!(fetched.last_stable_offset, fetched.high_watermark);
        assert!(fetched.aborted.is_empty());
        let last = headers.last().expect("batches");
        assert!(last.is_control() && last.producer_id == decided_pid);
        let offsets = engine.fetch_offsets("g", None).await.expect("offsets");
        assert_eq!(offsets.len(), 1);
        assert_eq!(offsets[0].offset, 1);
    });
}

#[test]
fn transactional_ids_past_the_shard_cap_are_refused_and_known_ones_still_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limited = ServerConfig {
        transaction_limits: crate::config::TransactionLimits {
            max_transactional_ids_per_shard: 2,
            max_transaction_timeout_ms: 1_000,
        },
        ..config(dir.path())
    };
    with_engine_configured(limited, |engine| async move {
        for id in ["a", "b"] {
            engine
                .init_transactions(id, 1_000, -1, -1)
                .await
                .expect("init");
        }
        assert!(matches!(
            engine.init_transactions("c", 1_000, -1, -1).await,
            Err(EngineError::InvalidRequest(_))
        ));
        let again = engine
            .init_transactions("a", 1_000, -1, -1)
            .await
            .expect("a known id");
        assert_eq!(again.1, 1);
        assert!(matches!(
            engine.init_transactions("a", 1_001, -1, -1).await,
            Err(EngineError::InvalidTransactionTimeout(_))
        ));
        let described = engine
            .describe_transactions(vec!["a".into(), "c".into()])
            .await;
        assert!(described[0].1.is_ok());
        assert!(matches!(
            described[1].1,
            Err(EngineError::UnknownTransactionalId(_))
        ));
    });
}

#[test]
fn a_commit_cut_after_its_markers_is_completed_again_after_a_restart_without_harm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ids = Arc::new(std::sync::Mutex::new((0i64, 0i16)));
    let seen = ids.clone();
    with_engine_at(dir.path(), move |engine| async move {
        engine
            .create_topic("t", one_topic(1))
            .await
            .expect("create");
        let got = engine
            .init_transactions("tx", 60_000, -1, -1)
            .await
            .expect("init");
        let p = producer("tx", got);
        engine
            .add_partitions_to_txn(p.clone(), vec![("t".into(), 0)])
            .await
            .expect("add");
        engine
            .produce(
                "t",
                0,
                Acks::Durable,
                txn_batch(got.0, got.1, 0, &["a", "b"]),
            )
            .await
            .expect("produce");
        // Markers written, the Complete record not: as a crash right before it.
        HOLD.with(|h| h.set(Some(Hold::Complete)));
        assert!(matches!(
            engine.end_txn(p, true).await,
            Err(EngineError::ConcurrentTransactions(_))
        ));
        let (fetched, _) = read_committed(&engine, "t", 0).await;
        assert_eq!(fetched.last_stable_offset, 3, "the marker is there");
        *seen.lock().expect("lock") = got;
    });
    let got = *ids.lock().expect("lock");
    with_engine_at(dir.path(), move |engine| async move {
        let done = txn_state_when(&engine, "tx", |d| d.state == TxnState::CompleteCommit).await;
        assert_eq!(done.state, TxnState::CompleteCommit);
        // The commit is answered to the client's retry; the data stays committed.
        engine
            .end_txn(producer("tx", got), true)
            .await
            .expect("commit retried");
        let (fetched, headers) = read_committed(&engine, "t", 0).await;
        assert_eq!(fetched.last_stable_offset, fetched.high_watermark);
        assert!(fetched.aborted.is_empty());
        let records: i32 = headers
            .iter()
            .filter(|h| !h.is_control())
            .map(|h| h.records_count)
            .sum();
        assert_eq!(records, 2);
        // The next transaction of the same producer works as usual.
        let next = engine
            .init_transactions("tx", 60_000, -1, -1)
            .await
            .expect("init");
        assert_eq!((next.0, next.1), (got.0, got.1 + 1));
    });
}

/// Polls `stats` of `queue` until `done` holds, for at most 2 s.
async fn wait_for_stats(engine: &Engine, queue: &str, done: impl Fn(&QueueStats) -> bool) {
    for _ in 0..200 {
        let stats = engine.queue_stats(queue).await.expect("stats");
        if done(&stats) {
            return;
        }
        crate::runtime::sleep(Duration::from_millis(10)).await;
    }
    let stats = engine.queue_stats(queue).await.expect("stats");
    panic!("queue '{queue}' did not get there: {stats:?}");
}

#[test]
fn oversized_publish_is_refused() {
    with_engine(|engine| async move {
        let small = QueueConfig {
            max_message_bytes: Some(4),
            ..QueueConfig::default()
        };
        engine.declare_queue("small", small).await.expect("declare");
        let source = QueueConfig {
            max_deliveries: Some(1),
            dead_letter: Some("small".into()),
            ..QueueConfig::default()
        };
        engine
            .declare_queue("source", source)
            .await
            .expect("declare");
        let spec = PublishSpec::default;
        let over = engine.publish("small", spec(), Bytes::from("12345")).await;
        assert!(
            matches!(over, Err(EngineError::MessageTooLarge(_))),
            "{over:?}"
        );
        let batch = engine
            .publish_batch("small", spec(), vec![1, 5], Bytes::from("a12345"))
            .await;
        assert!(
            matches!(batch, Err(EngineError::MessageTooLarge(_))),
            "{batch:?}"
        );
        let at = engine.publish("small", spec(), Bytes::from("1234")).await;
        assert!(matches!(at, Ok(Some(_))), "{at:?}");
        // A dead-letter move is the broker's own: the target's bound does not apply.
        engine
            .publish("source", spec(), Bytes::from("a long body"))
            .await
            .expect("publish");
        let got = engine
            .receive("source", 1, 0, false)
            .await
            .expect("receive");
        let handles = got.messages.handles.clone();
        engine
            .settle("source", Settle::Reject { handles })
            .await
            .expect("reject");
        wait_for_stats(&engine, "small", |s| s.ready == 2).await;
    });
}

#[test]
fn receive_leasing_with_a_1ms_visibility_hands_the_message_out_again() {
    with_engine(|engine| async move {
        engine
            .declare_queue("q", queue_config(60_000))
            .await
            .expect("declare");
        engine
            .publish("q", PublishSpec::default(), Bytes::from("job"))
            .await
            .expect("publish");
        let args = |visibility_ms, wait_ms| ReceiveArgs {
            max: 10,
            wait_ms,
            auto_ack: false,
            visibility_ms,
            first_receive: false,
        };
        let first = engine.receive_leasing("q", args(Some(1), 0)).await;
        let first = first.expect("receive").messages;
        assert_eq!(first.deliveries, [1]);
        // The queue timer returns the lease and wakes this wait, long before its end.
        let started = std::time::Instant::now();
        let again = engine.receive_leasing("q", args(None, 5_000)).await;
        let again = again.expect("receive").messages;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            (again.ids.clone(), again.deliveries.clone()),
            (first.ids, vec![2])
        );
        assert_ne!(again.handles, first.handles);
        // That lease is the queue's (60 s): nothing comes back meanwhile.
        let none = engine.receive_leasing("q", args(None, 100)).await;
        assert!(none.expect("receive").messages.is_empty());
        let stale = Settle::Ack {
            handles: first.handles,
        };
        let stale = engine.settle("q", stale).await;
        assert!(
            matches!(stale, Err(EngineError::UnknownHandle(_))),
            "{stale:?}"
        );
        let over = args(Some(VISIBILITY_TIMEOUT_MS_MAX + 1), 0);
        let over = engine.receive_leasing("q", over).await;
        assert!(
            matches!(over, Err(EngineError::InvalidRequest(_))),
            "{over:?}"
        );
    });
}

#[test]
fn ack_leases_refuses_a_handle_that_leases_another_message() {
    with_engine(|engine| async move {
        engine
            .declare_queue("q", queue_config(60_000))
            .await
            .expect("declare");
        for body in ["a", "b", "c"] {
            engine
                .publish("q", PublishSpec::default(), Bytes::from(body))
                .await
                .expect("publish");
        }
        let got = engine.receive("q", 3, 0, false).await.expect("receive");
        let m = got.messages;
        let lease = |i: usize| LeaseRef {
            handle: m.handles[i],
            message_id: m.ids[i],
        };
        // A receipt whose handle now leases another message (as after a restart).
        let crossed = LeaseRef {
            handle: m.handles[0],
            message_id: m.ids[1],
        };
        let unknown = LeaseRef {
            handle: u64::MAX,
            message_id: m.ids[2],
        };
        let moved = vec![(crossed, 0), (lease(2), 0), (unknown, 0)];
        let moved = engine.change_visibility("q", moved).await.expect("change");
        assert_eq!(moved, [false, true, false]);
        let over = vec![(lease(1), VISIBILITY_TIMEOUT_MS_MAX + 1)];
        let over = engine.change_visibility("q", over).await;
        assert!(
            matches!(over, Err(EngineError::InvalidRequest(_))),
            "{over:?}"
        );
        // c is visible again at once: the next receive leases it anew.
        let back = engine.receive("q", 3, 0, false).await.expect("receive");
        assert_eq!(back.messages.ids, [m.ids[2]]);
        assert_eq!(back.messages.deliveries, [2]);
        let acked = engine
            .ack_leases("q", vec![crossed, lease(1), lease(2), unknown])
            .await
            .expect("ack");
        assert_eq!(acked, [false, true, false, false], "c's first lease ended");
        let stats = engine.queue_stats("q").await.expect("stats");
        assert_eq!((stats.ready, stats.in_flight), (0, 2), "a and c leased");
        let acked = engine.ack_leases("q", vec![lease(0), lease(0)]).await;
        assert_eq!(acked.expect("ack"), [true, false], "once");
        let missing = engine.ack_leases("nope", vec![lease(0)]).await;
        assert!(
            matches!(missing, Err(EngineError::UnknownQueue(_))),
            "{missing:?}"
        );
    });
}

#[test]
fn queue_meta_names_the_declaration() {
    with_engine(|engine| async move {
        assert!(engine.queue_meta("q").is_none());
        let before = crate::time::now_ms();
        engine
            .declare_queue("q", queue_config(5_000))
            .await
            .expect("declare");
        let meta = engine.queue_meta("q").expect("declared");
        assert_eq!(
            (meta.name.as_str(), meta.config.visibility_timeout_ms),
            ("q", 5_000)
        );
        assert!(meta.created_ms >= before);
        engine.delete_queue("q").await.expect("delete");
        engine
            .declare_queue("q", queue_config(5_000))
            .await
            .expect("declare");
        let again = engine.queue_meta("q").expect("declared");
        assert_ne!(again.id, meta.id, "a new declaration, a new id");
    });
}

#[test]
fn publish_each_answers_ids_in_order() {
    with_engine(|engine| async move {
        let small = QueueConfig {
            max_message_bytes: Some(8),
            ..QueueConfig::default()
        };
        engine.declare_queue("q", small).await.expect("declare");
        let entry = |body: &'static str, delay_ms: Option<u64>, header: &str| PublishEntry {
            spec: PublishSpec {
                delay_ms,
                headers: vec![("h".to_string(), header.to_string())],
                durable: true,
                ..PublishSpec::default()
            },
            body: Bytes::from(body),
        };
        let first = engine
            .publish("q", PublishSpec::default(), Bytes::from("0"))
            .await;
        assert_eq!(first.expect("publish"), Some(0));
        let entries = vec![
            entry("one", None, "1"),
            entry("later", Some(60_000), "2"),
            entry("three", None, "3"),
        ];
        let ids = engine.publish_each("q", entries).await.expect("publish");
        assert_eq!(ids, [1, 2, 3]);
        let stats = engine.queue_stats("q").await.expect("stats");
        assert_eq!(
            (stats.ready, stats.delayed),
            (3, 1),
            "each entry's own delay"
        );
        let got = engine.receive("q", 10, 0, false).await.expect("receive");
        assert_eq!(got.messages.ids, [0, 1, 3]);
        assert_eq!(&got.bodies[..], b"0onethree");
        let headers: Vec<_> = got
            .messages
            .extras
            .iter()
            .map(|x| x.headers.clone())
            .collect();
        let h = |v: &str| vec![("h".to_string(), v.to_string())];
        assert_eq!(headers, [h("1"), h("3")], "each entry's own headers");
        // One entry over the bound: none is stored.
        let refused = vec![entry("fits", None, "4"), entry("too long!", None, "5")];
        let refused = engine.publish_each("q", refused).await;
        assert!(
            matches!(refused, Err(EngineError::MessageTooLarge(_))),
            "{refused:?}"
        );
        let stats = engine.queue_stats("q").await.expect("stats");
        assert_eq!((stats.ready, stats.delayed), (0, 1), "nothing new");
        assert_eq!(engine.publish_each("q", Vec::new()).await, Ok(Vec::new()));
    });
}

#[test]
fn fifo_publish_each_answers_a_duplicate_with_the_original_across_a_restart() {
    fn entry(body: &'static str, group: &str, dedup: &str) -> PublishEntry {
        PublishEntry {
            spec: PublishSpec {
                group_id: Some(group.to_string()),
                dedup_id: Some(dedup.to_string()),
                durable: true,
                ..PublishSpec::default()
            },
            body: Bytes::from(body),
        }
    }
    fn tags(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }
    let dir = tempfile::tempdir().expect("temp dir");
    with_engine_at(dir.path(), |engine| async move {
        let fifo = QueueConfig {
            fifo: true,
            ..QueueConfig::default()
        };
        let annotations = QueueChange {
            attributes: tags(&[("ContentBasedDeduplication", "true")]),
            tags: tags(&[("team", "orders")]),
            ..QueueChange::default()
        };
        engine
            .declare_queue_with("f", fifo, annotations)
            .await
            .expect("declare");
        let meta = engine.queue_meta("f").expect("queue");
        assert_eq!(meta.tags.get("team").map(String::as_str), Some("orders"));
        assert_eq!(meta.attributes.len(), 1);
        let batch = vec![
            entry("a1", "a", "1"),
            entry("b1", "b", "2"),
            entry("a1 again", "a", "1"),
        ];
        let ids = engine.publish_each("f", batch).await.expect("publish");
        assert_eq!(ids, [0, 1, 0], "a duplicate in the call is the original");
        let again = engine
            .publish_each("f", vec![entry("b1 again", "b", "2")])
            .await;
        assert_eq!(again, Ok(vec![1]), "and so is one in a later call");
        let stats = engine.queue_stats("f").await.expect("stats");
        assert_eq!(stats.ready, 2, "no second copy");
    });
    with_engine_at(dir.path(), |engine| async move {
        let meta = engine.queue_meta("f").expect("queue");
        assert_eq!(meta.tags.len(), 1, "tags are durable");
        let again = engine
            .publish_each(
                "f",
                vec![entry("a1 later", "a", "1"), entry("a2", "a", "3")],
            )
            .await;
        assert_eq!(again, Ok(vec![0, 2]), "the window outlives a restart");
        let got = engine.receive("f", 10, 0, false).await.expect("receive");
        assert_eq!(&got.bodies[..], b"a1b1a2", "each group in order");
    });
}

#[test]
fn alter_queue_survives_a_restart_and_applies_to_the_open_queue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let changed = QueueChange {
        visibility_timeout_ms: Some(1),
        delay_ms: Some(60_000),
        dead_letter: Some(Some(("dlq".to_string(), 5))),
        ..QueueChange::default()
    };
    let expected = changed.clone();
    with_engine_at(dir.path(), |engine| async move {
        engine
            .declare_queue("q", queue_config(60_000))
            .await
            .expect("declare");
        let no_target = engine.alter_queue("q", expected.clone()).await;
        assert!(
            matches!(no_target, Err(EngineError::UnknownQueue(_))),
            "{no_target:?}"
        );
        engine
            .declare_queue("dlq", QueueConfig::default())
            .await
            .expect("declare");
        engine
            .publish("q", PublishSpec::default(), Bytes::from("before"))
            .await
            .expect("publish");
        let created = engine.queue_meta("q").expect("queue");
        let config = engine.alter_queue("q", expected).await.expect("alter");
        assert_eq!(config, engine.queue_config("q").expect("queue"));
        assert_eq!((config.visibility_timeout_ms, config.delay_ms), (1, 60_000));
        let meta = engine.queue_meta("q").expect("queue");
        assert_eq!(meta.id, created.id, "the same queue");
        assert!(meta.last_modified_ms() >= created.created_ms);
        // The open queue took it: 1 ms leases, and a delay for new publishes.
        let got = engine.receive("q", 10, 0, false).await.expect("receive");
        assert_eq!(got.messages.deliveries, [1]);
        let again = engine
            .receive("q", 10, 2_000, false)
            .await
            .expect("receive");
        assert_eq!(again.messages.deliveries, [2], "its 1 ms lease ended");
        engine
            .publish("q", PublishSpec::default(), Bytes::from("after"))
            .await
            .expect("publish");
        let stats = engine.queue_stats("q").await.expect("stats");
        assert_eq!(stats.delayed, 1, "the queue's new delay");
        let bad = QueueChange {
            receive_wait_ms: Some(RECEIVE_WAIT_MAX_MS + 1),
            ..QueueChange::default()
        };
        let bad = engine.alter_queue("q", bad).await;
        assert!(
            matches!(bad, Err(EngineError::InvalidRequest(_))),
            "{bad:?}"
        );
        let nowhere = QueueChange {
            dead_letter: Some(Some(("nowhere".to_string(), 1))),
            ..QueueChange::default()
        };
        let nowhere = engine.alter_queue("q", nowhere).await;
        assert!(
            matches!(nowhere, Err(EngineError::UnknownQueue(_))),
            "{nowhere:?}"
        );
    });
    with_engine_at(dir.path(), move |engine| async move {
        let config = engine.queue_config("q").expect("queue");
        assert_eq!(config, changed.apply(&queue_config(60_000)), "kept on disk");
        let stats = engine.queue_stats("q").await.expect("stats");
        assert_eq!((stats.ready, stats.delayed), (1, 1), "its messages too");
    });
}

#[test]
fn sqs_calls_reach_a_queue_another_shard_owns() {
    with_two_shards(|engine| async move {
        let name = (0..100)
            .map(|i| format!("remote-{i}"))
            .find(|n| engine.owner(Object::Queue(n)) == Ok(1))
            .expect("shard 1 owns some name");
        engine
            .declare_queue(&name, queue_config(60_000))
            .await
            .expect("declare");
        let short = QueueChange {
            visibility_timeout_ms: Some(1),
            ..QueueChange::default()
        };
        engine.alter_queue(&name, short).await.expect("alter");
        let entries = ["a", "b"].map(|b| PublishEntry {
            spec: PublishSpec::default(),
            body: Bytes::from(b),
        });
        let ids = engine.publish_each(&name, entries.to_vec()).await;
        assert_eq!(ids.expect("publish"), [0, 1]);
        let args = ReceiveArgs {
            max: 2,
            wait_ms: 2_000,
            auto_ack: false,
            visibility_ms: None,
            first_receive: false,
        };
        // Its owner took the 1 ms visibility: the leases come back by themselves.
        let first = engine.receive_leasing(&name, args).await.expect("receive");
        assert_eq!(first.messages.ids, [0, 1]);
        crate::runtime::sleep(Duration::from_millis(5)).await;
        // Leased for long this time, so that no timer tick ends them under the test.
        let long = ReceiveArgs {
            visibility_ms: Some(60_000),
            ..args
        };
        let again = engine.receive_leasing(&name, long).await.expect("receive");
        assert_eq!(again.messages.ids, first.messages.ids);
        assert_eq!(again.messages.deliveries, [2, 2]);
        let lease = LeaseRef {
            handle: again.messages.handles[0],
            message_id: again.messages.ids[0],
        };
        let longer = vec![(lease, 120_000)];
        let changed = engine
            .change_visibility(&name, longer)
            .await
            .expect("change");
        assert_eq!(changed, [true]);
        let acked = engine.ack_leases(&name, vec![lease]).await.expect("ack");
        assert_eq!(acked, [true]);
        let stats = engine.queue_stats(&name).await.expect("stats");
        assert_eq!((stats.owner, stats.in_flight), (1, 1), "b is left");
    });
}

/// Waits (bounded) until queue `source`'s newest move task has ended; answers it.
async fn move_ended(engine: &Engine, source: &str) -> moves::MoveTask {
    let deadline = crate::time::now_ms() + 5_000;
    loop {
        let tasks = engine.move_tasks(source).await.expect("tasks");
        if let Some(t) = tasks
            .first()
            .filter(|t| t.status != moves::MoveStatus::Running)
        {
            return t.clone();
        }
        assert!(crate::time::now_ms() < deadline, "still running: {tasks:?}");
        crate::runtime::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_move_resumed_after_a_crash_leaves_one_copy_in_the_destination() {
    with_engine(|engine| async move {
        for q in ["src", "dlq"] {
            engine
                .declare_queue(q, QueueConfig::default())
                .await
                .expect("declare");
        }
        let dead = |body: &'static str| {
            let spec = PublishSpec {
                headers: vec![
                    ("k".to_string(), "v".to_string()),
                    ("x-death-queue".to_string(), "src".to_string()),
                ],
                durable: true,
                ..PublishSpec::default()
            };
            (spec, Bytes::from(body))
        };
        for body in ["m0", "m1"] {
            let (spec, body) = dead(body);
            engine.publish("dlq", spec, body).await.expect("publish");
        }
        // As if a move had published m0 and the broker died before its ack.
        let dlq_id = engine.queue_meta("dlq").expect("dlq").id;
        let (mut spec, body) = dead("m0");
        spec.headers.truncate(1);
        spec.origin = Some(format!("move:{dlq_id}/0"));
        engine.publish("src", spec, body).await.expect("publish");
        let task = engine.start_move("dlq", None, None).await.expect("start");
        assert_eq!((task.to_move, task.moved), (2, 0));
        let again = engine.start_move("dlq", None, None).await;
        assert!(
            matches!(again, Err(EngineError::InvalidRequest(_))) || again.is_ok(),
            "a second start while one runs is refused (or the first already ended): {again:?}"
        );
        let done = move_ended(&engine, "dlq").await;
        assert_eq!((done.status, done.moved), (moves::MoveStatus::Completed, 2));
        let got = engine.receive("src", 10, 0, false).await.expect("receive");
        assert_eq!(&got.bodies[..], b"m0m1", "m0 once, m1 once");
        for x in &got.messages.extras {
            let kept = [("k".to_string(), "v".to_string())];
            assert_eq!(x.headers, kept, "attributes kept, no x-death-*");
        }
        assert_eq!(got.messages.extras.len(), 2);
        assert_eq!(engine.queue_stats("dlq").await.expect("stats").ready, 0);
    });
}
