//! Partition requests on the owning shard: produce, fetch (long poll), list offsets,
//! stats. Record data stays as the raw batches the client sent.

use super::router::Reply;
use super::shard::{reply, Shard};
use crate::native::messages::{Acks, ErrorCode, OffsetSpec, PartitionStats, Response};
use bytes::BytesMut;
use futures_lite::future;
use peregrine_shards::log::LogError;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Longest a fetch may wait for data, whatever the client asks.
pub const FETCH_MAX_WAIT: Duration = Duration::from_secs(30);
/// Unwritten bytes a partition may queue before acknowledgements wait for the disk.
const PENDING_BYTES_MAX: u64 = 64 << 20;
/// Room left in a response frame for its head and envelope.
const FRAME_HEADROOM_BYTES: u32 = 64 * 1024;

pub fn log_error_response(e: &LogError) -> Response {
    let code = match e {
        LogError::InvalidBatch(_) | LogError::Corrupt { .. } => ErrorCode::CorruptBatch,
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
        LogError::Closed => ErrorCode::ShuttingDown,
        LogError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequence,
        LogError::ProducerFenced { .. } => ErrorCode::ProducerFenced,
        _ => ErrorCode::Internal,
    };
    Response::error(code, e.to_string())
}

pub async fn produce(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    acks: Acks,
    payload: BytesMut,
) -> Option<Reply> {
    let answer = |r: Response| if acks == Acks::None { None } else { reply(r) };
    let timer = crate::metrics::local::ProduceTimer::start(payload.len());
    let log = match shard.partition(topic, partition) {
        Ok(log) => log,
        Err(e) => return answer(e),
    };
    if payload.is_empty() {
        return answer(Response::error(
            ErrorCode::CorruptBatch,
            "produce request carries no record batch",
        ));
    }
    let appended = match log.append(payload) {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(topic, partition, "produce refused: {e}");
            return answer(log_error_response(&e));
        }
    };
    // Past the pending limit even acks=leader waits for the disk: the producer's window
    // fills and it slows down to what the disk takes. Appending first keeps the order
    // of pipelined requests.
    let backlogged = log.pending_bytes() > PENDING_BYTES_MAX;
    if acks == Acks::Durable || backlogged {
        if let Err(e) = log.wait_durable(appended.last_offset).await {
            tracing::error!(topic, partition, "fdatasync failed: {e}");
            return answer(log_error_response(&e));
        }
    }
    // Consumers first: each answer costs the shard a send (on loopback the kernel
    // delivers it inline, ~5 µs), so letting the woken fetches answer before the
    // producer's acknowledgement takes that off the end-to-end path (bench latency --spin:
    // p50 28 → 25 µs; the ack waits that much longer).
    if acks == Acks::Leader && appended.woke_readers > 0 {
        future::yield_now().await;
    }
    timer.appended(topic, partition, &appended, acks != Acks::None);
    answer(Response::Produced {
        base_offset: appended.base_offset,
        last_offset: appended.last_offset,
    })
}

pub struct FetchArgs {
    pub offset: i64,
    pub max_bytes: u32,
    pub max_wait_ms: u32,
    pub min_bytes: u32,
}

pub async fn fetch(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    args: FetchArgs,
) -> Option<Reply> {
    let log = match shard.partition(topic, partition) {
        Ok(log) => log,
        Err(e) => return reply(e),
    };
    let frame_room = shard
        .config
        .max_frame_bytes
        .saturating_sub(FRAME_HEADROOM_BYTES);
    let max_bytes = args.max_bytes.clamp(1, frame_room.max(1)) as usize;
    let wait = Duration::from_millis(u64::from(args.max_wait_ms)).min(FETCH_MAX_WAIT);
    let deadline = Instant::now() + wait;
    loop {
        let read = match log.read(args.offset, max_bytes).await {
            Ok(r) => r,
            Err(e) => return reply(log_error_response(&e)),
        };
        let bytes: usize = read.batches.iter().map(|b| b.len()).sum();
        let now = Instant::now();
        if bytes >= args.min_bytes.max(1) as usize
            || now >= deadline
            || shard.shutdown.is_triggered()
        {
            let response = Response::Fetched {
                high_watermark: read.high_watermark,
                log_start_offset: read.log_start_offset,
            };
            crate::metrics::local::fetched(topic, partition, args.offset, &read.batches);
            return Some((response, read.batches));
        }
        // Long poll: wake on the next append, the deadline, or shutdown.
        future::or(
            log.wait_for_data(read.high_watermark, deadline - now),
            shard.shutdown.wait(),
        )
        .await;
    }
}

pub async fn list_offsets(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    spec: OffsetSpec,
) -> Option<Reply> {
    let log = match shard.partition(topic, partition) {
        Ok(log) => log,
        Err(e) => return reply(e),
    };
    let offset = match spec {
        OffsetSpec::Earliest => log.start_offset(),
        OffsetSpec::Latest => log.end_offset(),
        OffsetSpec::Timestamp(ts) => match log.offset_for_timestamp(ts).await {
            // Nothing that recent yet: the next message will be the first at or after.
            Ok(found) => found.unwrap_or_else(|| log.end_offset()),
            Err(e) => return reply(log_error_response(&e)),
        },
    };
    reply(Response::Offset { offset })
}

pub async fn delete_records(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Option<Reply> {
    let log = match shard.partition(topic, partition) {
        Ok(log) => log,
        Err(e) => return reply(e),
    };
    match log.delete_records_before(offset).await {
        Ok(start) => {
            tracing::info!(topic, partition, start, "records deleted");
            reply(Response::Offset { offset: start })
        }
        Err(e) => reply(log_error_response(&e)),
    }
}

pub fn stats(shard: &Rc<Shard>, topic: &str, partition: i32) -> Option<Reply> {
    let log = match shard.partition(topic, partition) {
        Ok(log) => log,
        Err(e) => return reply(e),
    };
    reply(Response::PartitionStats(PartitionStats {
        partition,
        shard: shard.id,
        start_offset: log.start_offset(),
        end_offset: log.end_offset(),
        size_bytes: log.size_bytes(),
        segments: log.segment_count() as u32,
    }))
}

/// Applies retention to every partition of this shard, one at a time.
pub async fn enforce_retention(shard: &Rc<Shard>) {
    let now_ms = crate::time::now_ms();
    for log in shard.open_logs() {
        if let Err(e) = log.enforce_retention(now_ms).await {
            tracing::warn!("retention: {e}");
        }
        // Thousands of partitions: let requests in between.
        glommio::yield_if_needed().await;
    }
}
