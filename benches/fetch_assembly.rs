//! What the broker does per native Fetch once the partition is found: read N whole
//! batches from the shard cache (`PartitionLog::read`), encode the `Fetched` response
//! frame (`frame::encode_response`) and append head + payload to the connection's
//! output buffer. Payloads over 64 KiB are written in place by the connection loop
//! (`COPY_PAYLOAD_MAX` in src/native/connection.rs, private, mirrored here), so only
//! smaller ones are copied. Batches: 100 records of 100 bytes (about 12 KB).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::LocalExecutor;
use peregrine::native::frame;
use peregrine::native::messages::{Response, ResponseEnvelope};
use peregrine_shards::log::{LogConfig, PartitionLog};

const RECORDS_PER_BATCH: usize = 100;
const BATCHES: usize = 2_000;
/// Everything fits: the bench measures tail reads served from memory.
const CACHE_BYTES: usize = 256 << 20;
/// Mirrors src/native/connection.rs: larger payloads are not copied into the buffer.
const COPY_PAYLOAD_MAX: usize = 64 * 1024;
const BATCHES_PER_FETCH: [usize; 4] = [1, 4, 16, 64];

/// One fetch: read, frame, buffer. Returns the bytes that would go to the socket.
async fn assemble(log: &PartitionLog, offset: i64, max_bytes: usize, out: &mut Vec<u8>) -> usize {
    let read = log.read(offset, max_bytes).await.expect("read");
    let payload: Vec<Bytes> = read.batches;
    let payload_len: usize = payload.iter().map(|b| b.len()).sum();
    let env = ResponseEnvelope {
        id: 7,
        response: Response::Fetched {
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
            last_stable_offset: read.high_watermark,
            aborted: Vec::new(),
        },
    };
    let head = frame::encode_response(&env, payload_len).expect("encode");
    out.clear();
    out.extend_from_slice(&head);
    if payload_len <= COPY_PAYLOAD_MAX {
        for b in &payload {
            out.extend_from_slice(b);
        }
    }
    head.len() + payload_len
}

async fn fetches(log: &PartitionLog, batches: usize, batch_bytes: usize, iters: u64) -> Duration {
    let mut rng = common::XorShift(0x9E37_79B9_7F4A_7C15);
    // Start far enough from the end that every fetch gets `batches` batches.
    let last_start = log.end_offset() as u64 - (batches * RECORDS_PER_BATCH) as u64;
    let mut out = Vec::with_capacity(COPY_PAYLOAD_MAX + 4096);
    let start = Instant::now();
    for _ in 0..iters {
        let offset = rng.next_below(last_start) as i64;
        black_box(assemble(log, offset, batches * batch_bytes, &mut out).await);
    }
    start.elapsed()
}

fn bench_fetch(c: &mut Criterion) {
    let ex: LocalExecutor = common::executor(None);
    let dir = tempfile::tempdir().expect("temporary directory");
    let batch_bytes = common::batch(RECORDS_PER_BATCH, 0).len();
    let log = ex.run(async {
        let config = LogConfig::default();
        let log = common::open_log(dir.path().join("fetch"), config, CACHE_BYTES).await;
        common::fill(&log, RECORDS_PER_BATCH, BATCHES).await;
        log
    });

    let mut group = c.benchmark_group("fetch/cache");
    for batches in BATCHES_PER_FETCH {
        group.throughput(Throughput::Bytes((batches * batch_bytes) as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(batches),
            &batches,
            |b, &batches| b.iter_custom(|iters| ex.run(fetches(&log, batches, batch_bytes, iters))),
        );
    }
    group.finish();
    ex.run(log.close()).expect("closing the log");
}

criterion_group!(benches, bench_fetch);
criterion_main!(benches);
