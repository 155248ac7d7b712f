//! Cross-shard round trip through the broker's own `engine::mesh`: shard 0 calls
//! `Router::invoke` (a boxed closure in a `ShardMsg` over glommio's full channel mesh,
//! answered through a `futures_channel` oneshot, inside the in-flight budget) and shard
//! 1 runs it in a task of its own, as the engine's `serve_mesh` does.
//! Executors are pinned to cores 0 and 1 when both exist.
//!
//! * `cross_shard/round_trip/{park,spin}`: one call at a time, i.e. latency. `park`
//!   is the broker's default (`--poll-us 0`): an idle shard sleeps in io_uring and is
//!   woken by the sender; `spin` busy-polls 50 µs before parking (`--poll-us 50`).
//! * `cross_shard/pipelined/{park,spin}`: 32 calls in flight, i.e. throughput.
//!
//! The payload is empty: a produce payload moves between cores as a pointer, so its
//! size does not change the hop.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::{ExecutorJoinHandle, LocalExecutor, LocalExecutorBuilder, Placement};
use peregrine::config::CROSS_CORE_IN_FLIGHT_MAX_DEFAULT;
use peregrine::engine::mesh::{self, CallClass, ShardMsg};
use peregrine::engine::Produced;

/// What a shard is to the calls in this bench: nothing (the call's work is the hop).
type Router = mesh::Router<()>;

const CALLER_CORE: usize = 0;
const ANSWERER_CORE: usize = 1;
const IN_FLIGHT: u64 = 32;
/// io_uring registered memory per executor; no file I/O here.
const IO_MEMORY_BYTES: usize = 1 << 20;

fn placement(core: usize) -> Placement {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores > ANSWERER_CORE {
        Placement::Fixed(core)
    } else {
        Placement::Unbound
    }
}

fn builder(core: usize, spin: Duration) -> LocalExecutorBuilder {
    let builder = LocalExecutorBuilder::new(placement(core)).io_memory(IO_MEMORY_BYTES);
    if spin.is_zero() {
        builder
    } else {
        builder.spin_before_park(spin)
    }
}

/// Shard 1: runs every call sent here (each spawns its own task), as `serve_mesh` does.
async fn answer(mesh: mesh::Mesh<()>) {
    let (_router, mut receivers) = Router::join(mesh, CROSS_CORE_IN_FLIGHT_MAX_DEFAULT)
        .await
        .expect("joining the mesh");
    let here = Rc::new(());
    let streams = receivers.streams();
    for (_, rx) in streams {
        while let Some(msg) = rx.recv().await {
            if let ShardMsg::Invoke(job) = msg {
                job(here.clone());
            }
        }
    }
}

/// Shard 0 on the bench thread, shard 1 on its own thread.
struct Pair {
    ex: LocalExecutor,
    router: Rc<Router>,
    receivers: glommio::channels::channel_mesh::Receivers<ShardMsg<()>>,
    answerer: ExecutorJoinHandle<()>,
}

impl Pair {
    fn start(spin: Duration) -> Pair {
        peregrine_shards::sys::raise_memlock_limit().expect("raising RLIMIT_MEMLOCK");
        let mesh = mesh::mesh(2);
        let theirs = mesh.clone();
        let answerer = builder(ANSWERER_CORE, spin)
            .name("bench-shard-1")
            .spawn(move || answer(theirs))
            .expect("starting shard 1");
        let ex = builder(CALLER_CORE, spin).make().expect("building shard 0");
        let (router, receivers) = ex
            .run(Router::join(mesh, CROSS_CORE_IN_FLIGHT_MAX_DEFAULT))
            .expect("joining the mesh");
        Pair {
            ex,
            router: Rc::new(router),
            receivers,
            answerer,
        }
    }

    /// Closing shard 0's senders ends shard 1's receive loop.
    fn stop(self) {
        let Pair {
            ex,
            router,
            receivers,
            answerer,
        } = self;
        ex.run(async move {
            drop(router);
            drop(receivers);
        });
        answerer.join().expect("shard 1 stopped cleanly");
    }
}

/// One call carrying what a produce carries (a topic name and a payload) and answering
/// what it answers; a failed hop answers at once with an error, which would make the
/// timing meaningless, so anything but `Produced` stops the bench.
async fn call(router: &Router) {
    // Mesh peer ids follow glommio's join order, not the core: ask for the other one.
    let answerer = 1 - router.shard_id();
    let (topic, payload) = ("orders".to_string(), BytesMut::new());
    let job = move |_: Rc<()>| async move {
        let _ = (topic, payload);
        Produced {
            base_offset: 0,
            last_offset: 99,
        }
    };
    let answer = router.invoke(answerer, CallClass::Client, job).await;
    match answer {
        Ok(Produced { .. }) => {}
        Err(e) => panic!("shard {answerer} did not answer the call: {e}"),
    }
}

async fn round_trips(router: &Router, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        call(router).await;
    }
    start.elapsed()
}

/// `IN_FLIGHT` caller tasks on shard 0 share one `Router`, as connection tasks do;
/// returns the time for all calls.
async fn pipelined(router: &Rc<Router>, iters: u64) -> Duration {
    let start = Instant::now();
    let callers: Vec<_> = (0..IN_FLIGHT)
        .map(|c| {
            let calls = iters / IN_FLIGHT + u64::from(c < iters % IN_FLIGHT);
            let router = router.clone();
            glommio::spawn_local(async move {
                for _ in 0..calls {
                    call(&router).await;
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await;
    }
    start.elapsed()
}

fn bench_cross_shard(c: &mut Criterion) {
    for (mode, spin) in [
        ("park", Duration::ZERO),
        ("spin", Duration::from_micros(50)),
    ] {
        let pair = Pair::start(spin);
        let mut group = c.benchmark_group("cross_shard");
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("round_trip", mode), |b| {
            b.iter_custom(|iters| pair.ex.run(round_trips(&pair.router, iters)))
        });
        group.bench_function(BenchmarkId::new("pipelined", mode), |b| {
            b.iter_custom(|iters| pair.ex.run(pipelined(&pair.router, iters)))
        });
        group.finish();
        pair.stop();
    }
}

criterion_group!(benches, bench_cross_shard);
criterion_main!(benches);
