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
        amqp_addr: any,
        amqp_users: Vec::new(),
        connection_limits: Default::default(),
        object_limits: Default::default(),
    }
}

/// Runs `body` against a fresh one-shard engine, then shuts it down cleanly.
fn with_engine<F, Fut>(body: F)
where
    F: FnOnce(Engine) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let _ = peregrine_shards::sys::raise_memlock_limit();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Arc::new(config(dir.path()));
    let process = Arc::new(ProcessShutdown::default());
    let run = move || async move {
        let engine = start(EngineStart {
            config,
            mesh: mesh::mesh(1),
            catalog: Arc::new(Catalog::default()),
            shard_ports: vec![0],
            shutdown: ShardShutdown::new(process.clone()),
            metrics: crate::metrics::Metrics::new(1),
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
