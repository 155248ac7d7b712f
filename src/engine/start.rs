//! A shard's engine coming up: joining the mesh, taking the catalog (opening what the
//! shard owns), serving the calls other shards send here, and the background work
//! (group ticks, queue timers, retention, the transaction coordinators' recovery and
//! timeouts). The catalog a broker starts from gets
//! RabbitMQ's standard exchanges and loses what does not outlive a run (queues not
//! durable or exclusive, exchanges not durable); every shard makes the same change to its copy, and the
//! next catalog change writes it to the file.

use super::mesh::{Mesh, Router, ShardMsg};
use super::shard::Shard;
use super::Engine;
use crate::config::ServerConfig;
use crate::runtime;
use crate::shutdown::ShardShutdown;
use peregrine_shards::catalog::Catalog;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How often each shard's group coordinator expires sessions and rebalance timeouts.
const GROUP_TICK: Duration = Duration::from_millis(100);
/// How often queue timers (visibility timeouts, delays, TTLs) are applied; journals are
/// reclaimed every 50 ticks.
const QUEUE_TICK: Duration = Duration::from_millis(20);

/// What a shard's engine starts from.
pub struct EngineStart {
    pub config: Arc<ServerConfig>,
    pub mesh: Mesh,
    pub catalog: Arc<Catalog>,
    pub shard_ports: Vec<u16>,
    pub shutdown: ShardShutdown,
    /// The operator's metrics: this shard's counters and its object rows go there.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Failed logins, counted for every shard together.
    pub logins: crate::auth::logins::SharedLoginLimiter,
}

/// Starts this shard's engine (call once, inside its executor); the error says why it
/// could not.
pub async fn start(start: EngineStart) -> Result<Engine, String> {
    let in_flight_max = start.config.cross_core_in_flight_max;
    let (router, receivers) = Router::join(start.mesh, in_flight_max).await?;
    let shard = Rc::new(Shard::new(
        start.config,
        router,
        start.shutdown,
        start.shard_ports,
        runtime::create_queues(),
        start.logins,
    ));
    let catalog = starting_catalog(&shard, start.catalog).await;
    shard
        .apply_catalog(catalog)
        .await
        .map_err(|e| format!("shard {}: {e}", shard.id))?;
    super::transactions::open(&shard).await?;
    // As with partitions and the transaction log, a shard whose offsets log cannot be
    // opened (damaged acknowledged commits among the reasons) does not start: it would
    // serve its groups without their committed offsets.
    shard.groups.loaded().await.map_err(|e| {
        format!(
            "shard {}: opening the consumer-group offsets log: {e}",
            shard.id
        )
    })?;
    if shard.id == super::placement::CONTROLLER_SHARD {
        shard.producer_ids.check().await?;
    }
    let mine = start.metrics.shards[shard.id as usize].clone();
    crate::metrics::local::install(start.metrics.clone(), mine.clone(), shard.cache_counters());
    serve_mesh(&shard, receivers);
    spawn_background(&shard);
    let refresh = super::observe::refresh_loop(shard.clone(), start.metrics, mine);
    match runtime::spawn_into(refresh, shard.queues.background) {
        Ok(task) => {
            task.detach();
        }
        Err(e) => tracing::error!("starting the metrics refresh: {e}"),
    }
    let engine = Engine::new(shard);
    crate::sns::fanout::start(&engine);
    Ok(engine)
}

/// `catalog` as this run starts from it: with the standard exchanges, without the
/// transient queues (whose folders the owning shard removes) and exchanges.
async fn starting_catalog(shard: &Rc<Shard>, catalog: Arc<Catalog>) -> Arc<Catalog> {
    let mut catalog = match catalog.with_standard_exchanges() {
        Some(with) => Arc::new(with),
        None => catalog,
    };
    if let Some((without, removed)) = catalog.without_transient() {
        for meta in removed {
            if meta.owner(shard.nshards) == shard.id {
                let dir = meta.dir(&shard.config.data_dir);
                super::admin::remove_folder(dir, "queue").await;
                tracing::info!(queue = %meta.name, "transient queue deleted at start");
            }
        }
        catalog = Arc::new(without);
    }
    catalog
}

impl Engine {
    /// Waits for every shard to drain, then flushes and closes what this one owns.
    pub async fn stop(&self) {
        let shard = self.shard();
        shard
            .shutdown
            .drained_and_wait_all(shard.nshards as usize)
            .await;
        shard.close().await;
    }

    /// The task queue for request work (connections and what they spawn).
    pub fn request_queue(&self) -> runtime::TaskQueueHandle {
        self.shard().queues.requests
    }
}

/// Serves the calls that other shards send here, each in its own task.
fn serve_mesh(
    shard: &Rc<Shard>,
    mut receivers: glommio::channels::channel_mesh::Receivers<ShardMsg>,
) {
    for (_, rx) in receivers.streams() {
        let shard = shard.clone();
        let queue = shard.queues.requests;
        let serve = async move {
            while let Some(msg) = rx.recv().await {
                match msg {
                    // Spawns its own task: calls run concurrently, in this task queue.
                    ShardMsg::Invoke(job) => job(shard.clone()),
                    ShardMsg::Catalog { catalog, done } => {
                        let apply = apply_catalog(shard.clone(), catalog, done);
                        runtime::spawn_local(apply).detach();
                    }
                }
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

async fn apply_catalog(
    shard: Rc<Shard>,
    catalog: Arc<Catalog>,
    done: futures_channel::oneshot::Sender<Result<(), String>>,
) {
    let applied = shard.apply_catalog(catalog).await;
    if let Err(e) = &applied {
        tracing::error!(shard = shard.id, "applying catalog: {e}");
    }
    let _ = done.send(applied.map_err(|e| format!("shard {}: {e}", shard.id)));
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
            super::queues::tick(&s, ticks.is_multiple_of(50)).await;
        }
    };
    let s = shard.clone();
    let retention = async move {
        while !s.shutdown.is_triggered() {
            runtime::sleep(s.config.retention_check).await;
            super::partitions::enforce_retention(&s).await;
        }
    };
    let s = shard.clone();
    let transactions = async move {
        // Prepared transactions a crash left are completed first; their markers wait
        // in the mesh until the shards that own the partitions serve it.
        super::transactions::recover(&s).await;
        while !s.shutdown.is_triggered() {
            runtime::sleep(super::transactions::TICK).await;
            super::transactions::tick(&s).await;
        }
    };
    for spawned in [
        runtime::spawn_into(ticks, shard.queues.background),
        runtime::spawn_into(transactions, shard.queues.background),
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
