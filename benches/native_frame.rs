//! Native framing per operation: rkyv encode and checked decode of the Produce and
//! Fetch envelopes (request and response), plus the fixed head check. The payload
//! (record batches) never goes through rkyv, so only its length matters here.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use peregrine::native::frame::{self, HEAD_LEN};
use peregrine::native::messages::{Acks, Request, RequestEnvelope, Response, ResponseEnvelope};

/// Payload length announced in the head: about one batch of 100 × 100-byte records.
const PAYLOAD_BYTES: usize = 10_600;
const MAX_FRAME_BYTES: u32 = 8 << 20;

fn produce_request() -> RequestEnvelope {
    RequestEnvelope {
        id: 42,
        request: Request::Produce {
            topic: "orders".into(),
            partition: 3,
            acks: Acks::Leader,
        },
    }
}

fn fetch_request() -> RequestEnvelope {
    RequestEnvelope {
        id: 43,
        request: Request::Fetch {
            topic: "orders".into(),
            partition: 3,
            offset: 1_234_567,
            max_bytes: 1 << 20,
            max_wait_ms: 500,
            min_bytes: 1,
            isolation: Default::default(),
        },
    }
}

fn produced_response() -> ResponseEnvelope {
    ResponseEnvelope {
        id: 42,
        response: Response::Produced {
            base_offset: 1_234_567,
            last_offset: 1_234_666,
        },
    }
}

fn fetched_response() -> ResponseEnvelope {
    ResponseEnvelope {
        id: 43,
        response: Response::Fetched {
            high_watermark: 2_000_000,
            log_start_offset: 0,
            last_stable_offset: 2_000_000,
            aborted: Vec::new(),
        },
    }
}

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame/request");
    group.throughput(Throughput::Elements(1));
    for (name, env) in [("produce", produce_request()), ("fetch", fetch_request())] {
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| frame::encode_request(black_box(&env), PAYLOAD_BYTES).expect("encodes"))
        });
        let framed = frame::encode_request(&env, PAYLOAD_BYTES).expect("encodes");
        // The envelope as the connection loop hands it over: after the 8-byte head.
        let envelope = &framed[HEAD_LEN..];
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| frame::decode_request(black_box(envelope)).expect("decodes"))
        });
    }
    group.finish();
}

fn responses(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame/response");
    group.throughput(Throughput::Elements(1));
    for (name, env) in [
        ("produced", produced_response()),
        ("fetched", fetched_response()),
    ] {
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| frame::encode_response(black_box(&env), PAYLOAD_BYTES).expect("encodes"))
        });
        let framed = frame::encode_response(&env, PAYLOAD_BYTES).expect("encodes");
        let envelope = &framed[HEAD_LEN..];
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| frame::decode_response(black_box(envelope)).expect("decodes"))
        });
    }
    group.finish();
}

fn head(c: &mut Criterion) {
    let framed = frame::encode_request(&produce_request(), PAYLOAD_BYTES).expect("encodes");
    let mut head = [0u8; HEAD_LEN];
    head.copy_from_slice(&framed[..HEAD_LEN]);
    c.bench_function("frame/parse_head", |b| {
        b.iter(|| frame::parse_head(black_box(head), MAX_FRAME_BYTES).expect("valid head"))
    });
}

criterion_group!(benches, requests, responses, head);
criterion_main!(benches);
