//! The broker process: listeners, one pinned executor per shard with its engine, the
//! accept loops that hand connections to the front ends, clean shutdown.
//!
//! The server knows no protocol: `run` is given one connection handler per listener kind
//! (`FrontEnds`), so a new protocol is a new front-end module and its listener here.
//! `stream` is the connection plumbing front ends share. `listeners` owns the sockets
//! and the per-listener connection bound (`--max-connections`). `tls` owns the TLS
//! configuration (and its reload) of the TLS listeners that run beside the plaintext ones.
//! `idle` is the idle-connection bound (`--connections-max-idle-ms`) front ends apply.

pub mod answer_budget;
pub mod idle;
pub mod listeners;
pub mod stream;
pub mod tls;

use crate::config::ServerConfig;
use crate::engine::mesh::{self as engine_mesh, Mesh};
use crate::engine::start::EngineStart;
use crate::engine::Engine;
use crate::runtime;
use crate::shutdown::{ProcessShutdown, ShardShutdown};
use crate::sns::signing::SigningKey;
use peregrine_shards::catalog::Catalog;
use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// A front end's connection handler: serves one accepted connection (plaintext, or TLS
/// with its handshake done) until it closes.
pub type ServeConnection = fn(Engine, stream::Stream) -> Pin<Box<dyn Future<Output = ()>>>;

/// One listener kind's front end: how it serves a connection, and what it tells a
/// connection refused past `--max-connections` before closing it (nothing, where its
/// protocol has no way to say it unasked).
#[derive(Clone, Copy)]
pub struct FrontEnd {
    pub serve: ServeConnection,
    pub refusal: fn() -> Vec<u8>,
}

/// The front end that serves each kind of listener.
#[derive(Clone, Copy)]
pub struct FrontEnds {
    pub native: FrontEnd,
    pub kafka: FrontEnd,
    pub http: FrontEnd,
    pub amqp: FrontEnd,
}

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
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("SNS signing key: {0}")]
    SnsSigning(String),
}

/// The protocol a listener speaks.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    Native,
    Kafka,
    Http,
    Amqp,
}

/// The sockets one shard serves.
struct ShardSockets {
    native: StdListener,
    own: StdListener,
    kafka: StdListener,
    kafka_own: StdListener,
    http: StdListener,
    amqp: StdListener,
    /// This shard's TLS listeners (shared ports and its own), if any.
    tls: TlsSockets,
}

/// One shard's TLS listeners and the protocol each speaks.
type TlsSockets = Vec<(Protocol, StdListener)>;

/// Runs the broker until SIGINT/SIGTERM; returns after every shard closed its files.
pub fn run(mut config: ServerConfig, front_ends: FrontEnds) -> Result<(), ServeError> {
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
    // `--sns-signing off`: no key is read or made.
    if config.sqs.sns_signing_scope != crate::sns::signing::Scope::Off {
        let signing = SigningKey::load(&data_dir, config.sqs.sns_signing_files.as_ref())
            .map_err(ServeError::SnsSigning)?;
        config.sqs.sns_signing = Some(Arc::new(signing));
    }
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
    let http = listeners::bind_shared(config.http_addr, config.shards)
        .map_err(listen_err(config.http_addr.to_string()))?;
    let http_addr = http[0].local_addr().map_err(listen_err("http".into()))?;
    // What the broker hands out (SNS SubscribeURL/UnsubscribeURL, SQS queue URLs without
    // a Host header) must name the port it listens on, also when it was asked for port 0.
    config.http_addr = http_addr;
    let amqp = listeners::bind_shared(config.amqp_addr, config.shards)
        .map_err(listen_err(config.amqp_addr.to_string()))?;
    let amqp_addr = amqp[0].local_addr().map_err(listen_err("amqp".into()))?;
    let kafka_own = listeners::bind_own(kafka_addr, kafka_base, config.shards)
        .map_err(listen_err(format!("Kafka shard ports from {kafka_base}")))?;
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
    let (acceptor, mut tls_sockets, tls_ready) = match config.tls.as_mut() {
        None => (None, Vec::new(), String::new()),
        Some(tls) => {
            let acceptor = tls::TlsAcceptor::new(tls.files.clone())?;
            let (sockets, ready) = bind_tls(tls, config.shards)?;
            (Some(acceptor), sockets, ready)
        }
    };

    let process = Arc::new(ProcessShutdown::default());
    install_signal_handler(process.clone());
    if let Some(acceptor) = &acceptor {
        acceptor.watch();
    }
    let config = Arc::new(config);
    let mesh = engine_mesh::mesh(config.shards);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<u32, String>>();
    let mut handles = Vec::new();
    let metrics = crate::metrics::Metrics::new(config.shards);
    let logins =
        crate::auth::logins::SharedLoginLimiter::new(config.security.login_failures_per_minute);
    let open = listeners::OpenConnections::new(config.connection_limits.max_connections);
    let sockets = native
        .into_iter()
        .zip(own)
        .zip(kafka)
        .zip(kafka_own)
        .zip(http);
    for (i, (((((native, own), kafka), kafka_own), http), amqp)) in sockets.zip(amqp).enumerate() {
        let start = ShardStart {
            metrics: metrics.clone(),
            logins: logins.clone(),
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
                amqp,
                tls: tls_sockets
                    .get_mut(i)
                    .map(std::mem::take)
                    .unwrap_or_default(),
            },
            tls: acceptor.clone(),
            ready: ready_tx.clone(),
            front_ends,
            open: open.clone(),
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
        if failure.is_some() {
            break;
        }
    }
    if let Some(e) = failure {
        // The other shards are not waited for: one may wait forever on the shard that
        // failed (a cross-core call in its own start). The process exits with the
        // error; what they had open is closed as after a crash, which recovery handles.
        process.request();
        drop(handles);
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
        "peregrine ready native={native_addr} kafka={kafka_addr} shards={} shard_ports={} kafka_shard_ports={} http={http_addr} amqp={amqp_addr}{tls_ready}",
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
    logins: crate::auth::logins::SharedLoginLimiter,
    config: Arc<ServerConfig>,
    mesh: Mesh,
    catalog: Arc<Catalog>,
    shard_ports: Vec<u16>,
    process: Arc<ProcessShutdown>,
    sockets: ShardSockets,
    ready: mpsc::Sender<Result<u32, String>>,
    front_ends: FrontEnds,
    open: listeners::OpenConnections,
    tls: Option<Arc<tls::TlsAcceptor>>,
}

async fn shard_main(start: ShardStart) {
    let engine = crate::engine::start::start(EngineStart {
        config: start.config.clone(),
        mesh: start.mesh,
        catalog: start.catalog,
        shard_ports: start.shard_ports,
        shutdown: ShardShutdown::new(start.process.clone()),
        metrics: start.metrics.clone(),
        logins: start.logins.clone(),
    })
    .await;
    let engine = match engine {
        Ok(engine) => engine,
        Err(e) => {
            let _ = start.ready.send(Err(e));
            return;
        }
    };
    let gate = Rc::new(glommio::sync::Gate::new());
    let ShardSockets {
        native,
        own,
        kafka,
        kafka_own,
        http,
        amqp,
        tls,
    } = start.sockets;
    let serve = start.front_ends;
    let open = start.open;
    let of = |protocol| match protocol {
        Protocol::Native => (serve.native, open.native.clone()),
        Protocol::Kafka => (serve.kafka, open.kafka.clone()),
        Protocol::Http => (serve.http, open.http.clone()),
        Protocol::Amqp => (serve.amqp, open.amqp.clone()),
    };
    // A shard's own port, and a TLS port, count with its protocol's shared port.
    let plain = [
        (Protocol::Native, native),
        (Protocol::Native, own),
        (Protocol::Kafka, kafka),
        (Protocol::Kafka, kafka_own),
        (Protocol::Http, http),
        (Protocol::Amqp, amqp),
    ]
    .map(|(protocol, listener)| (protocol, listener, None));
    let secure = tls
        .into_iter()
        .map(|(protocol, listener)| (protocol, listener, start.tls.clone()));
    let accepts = plain
        .into_iter()
        .chain(secure)
        .map(|(protocol, listener, tls)| {
            let listener = runtime::adopt_listener(listener);
            let (front_end, open) = of(protocol);
            let accept = Accept {
                front_end,
                open,
                tls,
            };
            accept_loop(engine.clone(), gate.clone(), listener, accept)
        });
    // Connections and the request tasks they spawn run in the latency-class queue.
    let accepts: Vec<_> = accepts
        .into_iter()
        .filter_map(|a| match runtime::spawn_into(a, engine.request_queue()) {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::error!("starting an accept loop: {e}");
                None
            }
        })
        .collect();
    let _ = start.ready.send(Ok(engine.shard_id()));
    engine.shutdown().watch().await;
    for a in accepts {
        a.await;
    }
    if let Err(e) = gate.close().await {
        tracing::warn!("draining connections: {e}");
    }
    engine.stop().await;
    tracing::debug!(shard = engine.shard_id(), "shard stopped");
}

/// What one listener's accept loop hands its connections to.
struct Accept {
    front_end: FrontEnd,
    open: listeners::ListenerCount,
    /// Set on a TLS listener: every connection starts with a handshake.
    tls: Option<Arc<tls::TlsAcceptor>>,
}

async fn accept_loop(
    engine: Engine,
    gate: Rc<glommio::sync::Gate>,
    listener: runtime::TcpListener,
    accept: Accept,
) {
    let Accept {
        front_end,
        open,
        tls,
    } = accept;
    let mut refusals = listeners::RefusalLog::default();
    let failures = Rc::new(tls::HandshakeFailures::default());
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            engine.shutdown().wait().await;
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
        let Some(slot) = open.take() else {
            refusals.refused(open.kind(), open.max());
            // A TLS client could not read a plaintext farewell: it is just closed.
            let farewell = match tls {
                None => (front_end.refusal)(),
                Some(_) => Vec::new(),
            };
            listeners::refuse(stream, &farewell).await;
            continue;
        };
        let config = tls.as_ref().map(|t| t.config());
        let (engine, failures) = (engine.clone(), failures.clone());
        let served = async move {
            let stream = match config {
                None => stream::Stream::plain(stream),
                Some(config) => match handshake(&engine, stream, config).await {
                    Ok(stream) => stream,
                    Err(e) => return failures.failed(&e),
                },
            };
            (front_end.serve)(engine, stream).await;
            drop(slot);
        };
        if let Ok(task) = gate.spawn(served) {
            task.detach();
        }
    }
}

/// A TLS connection's handshake, within `tls::HANDSHAKE_TIMEOUT` and until shutdown.
async fn handshake(
    engine: &Engine,
    tcp: runtime::TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> Result<stream::Stream, String> {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let done = async {
        stream::Stream::tls(tcp, config)
            .await
            .map_err(|e| format!("{peer}: {e}"))
    };
    let late = async {
        futures_lite::future::or(
            runtime::sleep(tls::HANDSHAKE_TIMEOUT),
            engine.shutdown().wait(),
        )
        .await;
        Err(format!(
            "{peer}: no TLS handshake within {:?}",
            tls::HANDSHAKE_TIMEOUT
        ))
    };
    let stream = futures_lite::future::or(done, late).await?;
    if let Some(principal) = stream.principal() {
        tracing::debug!(%peer, principal, "TLS client certificate accepted");
    }
    Ok(stream)
}

/// Binds the TLS listeners `tls` names, fills in their shards' own ports, and returns
/// each shard's sockets and the ready line's words for them.
fn bind_tls(
    tls: &mut crate::config::TlsListeners,
    shards: usize,
) -> Result<(Vec<TlsSockets>, String), ServeError> {
    let listen_err = |addr: String| move |source| ServeError::Listen { addr, source };
    let mut per_shard: Vec<TlsSockets> = (0..shards).map(|_| Vec::new()).collect();
    let mut ready = String::new();
    let mut add = |protocol, listeners: Vec<StdListener>| {
        for (shard, l) in listeners.into_iter().enumerate() {
            per_shard[shard].push((protocol, l));
        }
    };
    let ports = |ls: &[StdListener]| -> Vec<u16> {
        ls.iter()
            .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
            .collect()
    };
    let join = |ports: &[u16]| -> String {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    // Shards' own ports follow the shared one: port + 1 + shard, or free ports for :0.
    let own = |addr: SocketAddr| -> Result<Vec<StdListener>, ServeError> {
        let base = match addr.port() {
            0 => 0,
            p => p.saturating_add(1),
        };
        listeners::bind_own(addr, base, shards)
            .map_err(listen_err(format!("TLS shard ports from {base}")))
    };
    let shared = |addr: SocketAddr| -> Result<(SocketAddr, Vec<StdListener>), ServeError> {
        let ls = listeners::bind_shared(addr, shards).map_err(listen_err(addr.to_string()))?;
        let bound = ls[0].local_addr().map_err(listen_err(addr.to_string()))?;
        Ok((bound, ls))
    };
    if let Some(addr) = tls.native_addr {
        let (bound, ls) = shared(addr)?;
        let mine = own(addr)?;
        tls.native_shard_ports = ports(&mine);
        ready += &format!(
            " native_tls={bound} native_tls_shard_ports={}",
            join(&tls.native_shard_ports)
        );
        add(Protocol::Native, ls);
        add(Protocol::Native, mine);
    }
    if let Some(addr) = tls.kafka_addr {
        let (bound, ls) = shared(addr)?;
        let mine = own(addr)?;
        tls.kafka_shard_ports = ports(&mine);
        if tls.advertised_kafka_addr.is_none() {
            let mut advertised = bound;
            if advertised.ip().is_unspecified() {
                advertised.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            tls.advertised_kafka_addr = Some(advertised.to_string());
        }
        ready += &format!(
            " kafka_tls={bound} kafka_tls_shard_ports={}",
            join(&tls.kafka_shard_ports)
        );
        add(Protocol::Kafka, ls);
        add(Protocol::Kafka, mine);
    }
    if let Some(addr) = tls.http_addr {
        let (bound, ls) = shared(addr)?;
        // SNS's SigningCertURL names the port it listens on, also when asked for port 0.
        tls.http_addr = Some(bound);
        ready += &format!(" http_tls={bound}");
        add(Protocol::Http, ls);
    }
    if let Some(addr) = tls.amqp_addr {
        let (bound, ls) = shared(addr)?;
        ready += &format!(" amqp_tls={bound}");
        add(Protocol::Amqp, ls);
    }
    Ok((per_shard, ready))
}
