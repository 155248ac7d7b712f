//! Record-batch checks on the produce path: `batch::validate` (header + CRC32C),
//! `batch::split` (the request-level walk `PartitionLog::append` does) and
//! `batch::set_base_offset` (offset assignment), over batches of 100-byte records
//! built by the native client's encoder.

mod common;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use peregrine_shards::batch;

const RECORD_COUNTS: [usize; 3] = [1, 100, 1000];
/// Batches per produce request in the multi-batch `split` case.
const BATCHES_PER_REQUEST: usize = 10;

fn throughput_groups(c: &mut Criterion) {
    let mut validate = c.benchmark_group("batch/validate");
    for records in RECORD_COUNTS {
        let buf = common::batch(records, 1_000);
        validate.throughput(Throughput::Bytes(buf.len() as u64));
        validate.bench_with_input(BenchmarkId::from_parameter(records), &buf, |b, buf| {
            b.iter(|| batch::validate(black_box(buf)).expect("valid batch"))
        });
    }
    validate.finish();

    let mut split = c.benchmark_group("batch/split");
    for records in RECORD_COUNTS {
        let buf = common::batch(records, 1_000);
        split.throughput(Throughput::Bytes(buf.len() as u64));
        split.bench_with_input(BenchmarkId::new("1_batch", records), &buf, |b, buf| {
            b.iter(|| batch::split(black_box(buf)).expect("valid request"))
        });
    }
    // A request of several batches: what a batching producer sends per partition.
    let mut request = bytes::BytesMut::new();
    for i in 0..BATCHES_PER_REQUEST {
        request.extend_from_slice(&common::batch(100, 1_000 + i as i64));
    }
    split.throughput(Throughput::Bytes(request.len() as u64));
    split.bench_with_input(
        BenchmarkId::new("10_batches", 100),
        &request,
        |b, request| b.iter(|| batch::split(black_box(request)).expect("valid request")),
    );
    split.finish();
}

/// Records per second: the figure producers quote.
fn element_groups(c: &mut Criterion) {
    let mut validate = c.benchmark_group("batch/validate_records");
    for records in RECORD_COUNTS {
        let buf = common::batch(records, 1_000);
        validate.throughput(Throughput::Elements(records as u64));
        validate.bench_with_input(BenchmarkId::from_parameter(records), &buf, |b, buf| {
            b.iter(|| batch::validate(black_box(buf)).expect("valid batch"))
        });
    }
    validate.finish();

    let mut assign = c.benchmark_group("batch/set_base_offset");
    let mut buf = common::batch(100, 1_000);
    let mut offset = 0i64;
    assign.throughput(Throughput::Elements(1));
    assign.bench_function("100", |b| {
        b.iter(|| {
            offset += 100;
            batch::set_base_offset(black_box(&mut buf), offset);
        })
    });
    assign.finish();
}

criterion_group!(benches, throughput_groups, element_groups);
criterion_main!(benches);
