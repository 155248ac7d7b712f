//! What `runtime::yield_if_needed` costs a request loop (issue 20, fairness): every
//! frame, request and answer loop calls it once per turn, so its price is paid per
//! request on every protocol.
//!
//! The loop runs on a shard started as `serve` starts one (`runtime::start_shard` with
//! stall detection at its default, task queues from `runtime::create_queues`), in the
//! requests queue:
//!
//! * `yield_cost/none`: the loop with an already-ready future where the call would be,
//!   the baseline;
//! * `yield_cost/alone`: `yield_if_needed` with no other task on the shard.
//!
//! That is the price of the check when no other task waits. With nothing else to run,
//! glommio never asks the loop to yield (two such loops in one queue ran one after the
//! other), so what a yield itself costs, an executor round when I/O completions are
//! pending, shows only in the whole broker: RESULTS.md has both.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use peregrine::runtime;

/// What a turn of the measured loop awaits.
#[derive(Clone, Copy)]
enum Call {
    Ready,
    Yield,
}

impl Call {
    fn future(self) -> Pin<Box<dyn Future<Output = ()>>> {
        match self {
            Call::Ready => Box::pin(std::future::ready(())),
            Call::Yield => Box::pin(runtime::yield_if_needed()),
        }
    }
}

/// Runs `iters` turns of `call` in the requests queue of a fresh shard and answers the
/// time they took.
fn turns(call: Call, iters: u64) -> Duration {
    let (tx, rx) = mpsc::channel();
    let stall_warn = Some(Duration::from_millis(runtime::STALL_WARN_MS_DEFAULT));
    let shard = runtime::start_shard(0, None, Duration::ZERO, stall_warn, move || async move {
        let queues = runtime::create_queues();
        let turns = async move {
            let start = Instant::now();
            for _ in 0..iters {
                // Boxed in both cases, so the loops differ only in the call.
                std::hint::black_box(call).future().await;
            }
            start.elapsed()
        };
        let took = runtime::spawn_into(turns, queues.requests)
            .expect("spawning the loop")
            .await;
        tx.send(took).expect("the bench thread waits for the time");
    })
    .expect("starting the shard");
    shard.join().expect("the shard stopped cleanly");
    rx.recv().expect("the shard sent its time")
}

fn bench_yield(c: &mut Criterion) {
    peregrine_shards::sys::raise_memlock_limit().expect("raising RLIMIT_MEMLOCK");
    let mut group = c.benchmark_group("yield_cost");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("none", |b| b.iter_custom(|n| turns(Call::Ready, n)));
    group.bench_function("alone", |b| b.iter_custom(|n| turns(Call::Yield, n)));
    group.finish();
}

criterion_group!(benches, bench_yield);
criterion_main!(benches);
