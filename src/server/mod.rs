//! The broker process: listeners, one pinned executor per shard, clean shutdown.

pub mod admin;
pub mod answer_budget;
pub mod config;
pub mod exchanges;
pub mod group_calls;
pub mod listeners;
pub mod partitions;
pub mod producer_ids;
pub mod queues;
pub mod router;
pub mod runtime;
pub mod shard;
pub mod shutdown;

use config::ServerConfig;
use peregrine_shards::catalog::Catalog;
use router::{Mesh, Router, ShardMsg};
use shard::Shard;
use shutdown::{ProcessShutdown, ShardShutdown};
use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How often each shard's group coordinator expires sessions and rebalance timeouts.
const GROUP_TICK: Duration = Duration::from_millis(100);
/// How often queue timers (visibility timeouts, delays, TTLs) are applied; journals are
/// reclaimed every 50 ticks.
const QUEUE_TICK: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error("{0}")]
    Catalog(#[from] peregrine_shards::catalog::CatalogError),
    #[error("shard failed: {0}")]
    Shard(String),
}

/// The sockets one shard serves.
struct ShardSockets {
    native: StdListener,
    own: StdListener,
    kafka: StdListener,
    kafka_own: StdListener,
    http: StdListener,
}

/// Runs the broker until SIGINT/SIGTERM; returns after every shard closed its files.
pub fn run(mut config: ServerConfig) -> Result<(), ServeError> {
    if let Err(e) = peregrine_shards::sys::raise_memlock_limit() {
        tracing::warn!("cannot raise the locked-memory limit ({e}); io_uring may fail to start");
    }
    let dir_err = |dir: &std::path::Path| {
        let dir = dir.display().to_string();
        move |source| ServeError::DataDir { dir, source }
    };
    std::fs::create_dir_all(&config.data_dir).map_err(dir_err(&config.data_dir))?;
    // Absolute from here on: glommio's directory operations fail on relative paths
    // (the default `./peregrine-data` included).
    config.data_dir = std::fs::canonicalize(&config.data_dir).map_err(dir_err(&config.data_dir))?;
    let data_dir = config.data_dir.clone();
    let catalog = Arc::new(Catalog::load(&data_dir.join("meta").join("topics.json"))?);
    let listen_err = |addr: String| move |source| ServeError::Listen { addr, source };
    let native = listeners::bind_shared(config.native_addr, config.shards)
        .map_err(listen_err(config.native_addr.to_string()))?;
    let kafka = listeners::bind_shared(config.kafka_addr, config.shards)
        .map_err(listen_err(config.kafka_addr.to_string()))?;
    let own =
        listeners::bind_own(config.native_addr, config.shard_port_base, config.shards).map_err(
            listen_err(format!("shard ports from {}", config.shard_port_base)),
        )?;
    let shard_ports: Vec<u16> = own
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
        .collect();
    let native_addr = native[0]
        .local_addr()
        .map_err(listen_err("native".into()))?;
    let kafka_addr = kafka[0].local_addr().map_err(listen_err("kafka".into()))?;
    let kafka_base = match kafka_addr.port() {
        _ if config.kafka_addr.port() == 0 => 0,
        p => p.saturating_add(1),
    };
    let kafka_own = listeners::bind_own(kafka_addr, kafka_base, config.shards)
        .map_err(listen_err(format!("Kafka shard ports from {kafka_base}")))?;
    let http = listeners::bind_shared(config.http_addr, config.shards)
        .map_err(listen_err(config.http_addr.to_string()))?;
    let http_addr = http[0].local_addr().map_err(listen_err("http".into()))?;
    config.kafka_shard_ports = kafka_own
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
        .collect();
    if config.advertised_kafka_addr.is_none() {
        let mut advertised = kafka_addr;
        if advertised.ip().is_unspecified() {
            tracing::warn!("Kafka port listens on every address; advertising 127.0.0.1 (set --advertised-kafka-addr)");
            advertised.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        config.advertised_kafka_addr = Some(advertised.to_string());
    }

    let process = Arc::new(ProcessShutdown::default());
    install_signal_handler(process.clone());
    let config = Arc::new(config);
    let mesh = router::mesh(config.shards);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<u32, String>>();
    let mut handles = Vec::new();
    let metrics = crate::metrics::Metrics::new(config.shards);
    let sockets = native.into_iter().zip(own).zip(kafka).zip(kafka_own);
    for (i, ((((native, own), kafka), kafka_own), http)) in sockets.zip(http).enumerate() {
        let start = ShardStart {
            metrics: metrics.clone(),
            config: config.clone(),
            mesh: mesh.clone(),
            catalog: catalog.clone(),
            shard_ports: shard_ports.clone(),
            process: process.clone(),
            sockets: ShardSockets {
                native,
                own,
                kafka,
                kafka_own,
                http,
            },
            ready: ready_tx.clone(),
        };
        let core = config.cores.get(i).copied();
        let spin = Duration::from_micros(config.poll_us);
        let handle =
            runtime::start_shard(i, core, spin, config.stall_warn, move || shard_main(start))
                .map_err(|e| ServeError::Shard(e.to_string()))?;
        handles.push(handle);
    }
    drop(ready_tx);
    let mut failure = None;
    for _ in 0..config.shards {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a shard exited during start-up".to_string()),
        }
    }
    if let Some(e) = failure {
        process.request();
        for h in handles {
            let _ = h.join();
        }
        return Err(ServeError::Shard(e));
    }
    metrics.set_ready();
    let ports: Vec<String> = shard_ports.iter().map(u16::to_string).collect();
    let kafka_ports: Vec<String> = config
        .kafka_shard_ports
        .iter()
        .map(u16::to_string)
        .collect();
    // Tests and scripts read this line to find the ports.
    println!(
        "peregrine ready native={native_addr} kafka={kafka_addr} shards={} shard_ports={} kafka_shard_ports={} http={http_addr}",
        config.shards,
        ports.join(","),
        kafka_ports.join(",")
    );
    tracing::info!(%native_addr, %kafka_addr, shards = config.shards, "broker ready");
    let mut result = Ok(());
    for h in handles {
        if let Err(e) = h.join() {
            process.request();
            result = Err(ServeError::Shard(e.to_string()));
        }
    }
    tracing::info!("broker stopped");
    result
}

fn install_signal_handler(process: Arc<ProcessShutdown>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    tracing::info!(signal = sig, "shutting down");
                    process.request();
                }
            });
        }
        Err(e) => tracing::error!("cannot install signal handlers: {e}"),
    }
}

struct ShardStart {
    metrics: Arc<crate::metrics::Metrics>,
    config: Arc<ServerConfig>,
    mesh: Mesh,
    catalog: Arc<Catalog>,
    shard_ports: Vec<u16>,
    process: Arc<ProcessShutdown>,
    sockets: ShardSockets,
    ready: mpsc::Sender<Result<u32, String>>,
}

async fn shard_main(start: ShardStart) {
    let nshards = start.config.shards;
    let (router, receivers) = match Router::join(start.mesh).await {
        Ok(r) => r,
        Err(e) => {
            let _ = start.ready.send(Err(e));
            return;
        }
    };
    let shutdown = ShardShutdown::new(start.process.clone());
    let shard = Rc::new(Shard::new(
        start.config.clone(),
        router,
        shutdown,
        start.shard_ports,
        runtime::create_queues(),
    ));
    if let Err(e) = shard.apply_catalog(start.catalog).await {
        let _ = start.ready.send(Err(format!("shard {}: {e}", shard.id)));
        return;
    }
    let metrics = start.metrics.shards[shard.id as usize].clone();
    crate::metrics::local::install(metrics.clone(), shard.cache_counters());
    serve_mesh(&shard, receivers);
    spawn_background(&shard);
    let refresh =
        crate::metrics::objects::refresh_loop(shard.clone(), start.metrics.clone(), metrics);
    let gate = Rc::new(glommio::sync::Gate::new());
    let ShardSockets {
        native,
        own,
        kafka,
        kafka_own,
        http,
    } = start.sockets;
    let accepts = [
        accept_loop(
            shard.clone(),
            gate.clone(),
            runtime::adopt_listener(native),
            Protocol::Native,
        ),
        accept_loop(
            shard.clone(),
            gate.clone(),
            runtime::adopt_listener(own),
            Protocol::Native,
        ),
        accept_loop(
            shard.clone(),
            gate.clone(),
            runtime::adopt_listener(kafka),
            Protocol::Kafka,
        ),
        accept_loop(
            shard.clone(),
            gate.clone(),
            runtime::adopt_listener(kafka_own),
            Protocol::Kafka,
        ),
    ];
    // Connections and the request tasks they spawn run in the latency-class queue.
    let mut accepts: Vec<_> = accepts
        .into_iter()
        .filter_map(|a| match runtime::spawn_into(a, shard.queues.requests) {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::error!("starting an accept loop: {e}");
                None
            }
        })
        .collect();
    let http = runtime::adopt_listener(http);
    let http = crate::http::accept_loop(shard.clone(), gate.clone(), http, start.metrics.clone());
    match runtime::spawn_into(http, shard.queues.requests) {
        Ok(task) => accepts.push(task),
        Err(e) => tracing::error!("starting the HTTP accept loop: {e}"),
    }
    match runtime::spawn_into(refresh, shard.queues.background) {
        Ok(task) => {
            task.detach();
        }
        Err(e) => tracing::error!("starting the metrics refresh: {e}"),
    }
    let _ = start.ready.send(Ok(shard.id));
    shard.shutdown.watch().await;
    for a in accepts {
        a.await;
    }
    if let Err(e) = gate.close().await {
        tracing::warn!("draining connections: {e}");
    }
    shard.shutdown.drained_and_wait_all(nshards).await;
    shard.close().await;
    tracing::debug!(shard = shard.id, "shard stopped");
}

/// Serves requests that other shards forward here, each in its own task.
fn serve_mesh(
    shard: &Rc<Shard>,
    mut receivers: glommio::channels::channel_mesh::Receivers<ShardMsg>,
) {
    for (_, rx) in receivers.streams() {
        let shard = shard.clone();
        let queue = shard.queues.requests;
        let serve = async move {
            while let Some(msg) = rx.recv().await {
                let shard = shard.clone();
                runtime::spawn_local(handle_shard_msg(shard, msg)).detach();
            }
        };
        match runtime::spawn_into(serve, queue) {
            Ok(task) => {
                task.detach();
            }
            Err(e) => tracing::error!("starting a mesh receiver: {e}"),
        };
    }
}

async fn handle_shard_msg(shard: Rc<Shard>, msg: ShardMsg) {
    match msg {
        ShardMsg::Request {
            request,
            payload,
            reply,
        } => {
            let answer = shard.dispatch(*request, payload).await;
            let _ = reply.send(answer);
        }
        ShardMsg::Catalog { catalog, done } => {
            let applied = shard.apply_catalog(catalog).await;
            if let Err(e) = &applied {
                tracing::error!(shard = shard.id, "applying catalog: {e}");
            }
            let _ = done.send(applied.map_err(|e| format!("shard {}: {e}", shard.id)));
        }
    }
}

fn spawn_background(shard: &Rc<Shard>) {
    let s = shard.clone();
    let ticks = async move {
        while !s.shutdown.is_triggered() {
            runtime::sleep(GROUP_TICK).await;
            s.groups.tick(std::time::Instant::now());
        }
    };
    let s = shard.clone();
    let queue_timers = async move {
        let mut ticks = 0u64;
        while !s.shutdown.is_triggered() {
            runtime::sleep(QUEUE_TICK).await;
            ticks += 1;
            queues::tick(&s, ticks.is_multiple_of(50)).await;
        }
    };
    let s = shard.clone();
    let retention = async move {
        while !s.shutdown.is_triggered() {
            runtime::sleep(s.config.retention_check).await;
            partitions::enforce_retention(&s).await;
        }
    };
    for spawned in [
        runtime::spawn_into(ticks, shard.queues.background),
        runtime::spawn_into(queue_timers, shard.queues.background),
        runtime::spawn_into(retention, shard.queues.background),
    ] {
        match spawned {
            Ok(task) => {
                task.detach();
            }
            Err(e) => tracing::error!("starting background work: {e}"),
        };
    }
}

#[derive(Clone, Copy)]
enum Protocol {
    Native,
    /// The Kafka port is bound and reserved; the Kafka front end serves it later.
    Kafka,
}

use crate::metrics::Protocol as MP;

async fn accept_loop(
    shard: Rc<Shard>,
    gate: Rc<glommio::sync::Gate>,
    listener: runtime::TcpListener,
    protocol: Protocol,
) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shard.shutdown.wait().await;
            None
        })
        .await;
        let stream = match accepted {
            None => return,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::warn!("accept failed: {e}");
                runtime::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match protocol {
            Protocol::Native => {
                let serve = crate::native::connection::serve(shard.clone(), stream);
                let spawned = gate.spawn(crate::metrics::local::connection(MP::Native, serve));
                if let Ok(task) = spawned {
                    task.detach();
                }
            }
            Protocol::Kafka => {
                let serve = crate::kafka::serve(shard.clone(), stream);
                let spawned = gate.spawn(crate::metrics::local::connection(MP::Kafka, serve));
                if let Ok(task) = spawned {
                    task.detach();
                }
            }
        }
    }
}
