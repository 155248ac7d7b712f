//! Partition requests on the owning shard: produce, fetch (long poll), list offsets,
//! stats, retention. Record data stays as the raw batches the client sent.

use super::error::EngineError;
use super::shard::Shard;
use super::types::{
    AbortedRange, Acks, FetchArgs, Fetched, Isolation, Marker, OffsetSpec, PartitionStats,
    Produced, ProducerDescription,
};
use bytes::{Bytes, BytesMut};
use futures_lite::future;
use peregrine_shards::batch::BatchHeader;
use peregrine_shards::log::{LogError, PartitionLog};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Longest a fetch may wait for data, whatever the client asks.
pub const FETCH_MAX_WAIT: Duration = Duration::from_secs(30);
/// Unwritten bytes a partition may queue before acknowledgements wait for the disk.
const PENDING_BYTES_MAX: u64 = 64 << 20;
/// Room left in a response frame for its head and envelope.
const FRAME_HEADROOM_BYTES: u32 = 64 * 1024;

fn served_here(shard: &Shard) {
    shard
        .partition_requests
        .set(shard.partition_requests.get() + 1);
}

pub async fn produce(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    acks: Acks,
    payload: BytesMut,
) -> Result<Produced, EngineError> {
    served_here(shard);
    let timer = crate::metrics::local::ProduceTimer::start(payload.len());
    let log = shard.partition(topic, partition)?;
    if payload.is_empty() {
        return Err(EngineError::CorruptBatch(
            "produce request carries no record batch".into(),
        ));
    }
    // The topic's own bound (Kafka's max.message.bytes) holds for every front end; the
    // broker-wide default is the Kafka front end's (`--kafka-message-max-bytes`).
    if let Some(max) = shard.topic_max_message_bytes(topic) {
        if payload.len() > max as usize {
            return Err(EngineError::MessageTooLarge(format!(
                "{} bytes of records, more than the topic's max.message.bytes ({max})",
                payload.len()
            )));
        }
    }
    let appended = log.append(payload).inspect_err(|e| {
        tracing::debug!(topic, partition, "produce refused: {e}");
    })?;
    // Past the pending limit even acks=leader waits for the disk: the producer's window
    // fills and it slows down to what the disk takes. Appending first keeps the order
    // of pipelined requests.
    let backlogged = log.pending_bytes() > PENDING_BYTES_MAX;
    if acks == Acks::Durable || backlogged {
        log.wait_durable(appended.last_offset)
            .await
            .inspect_err(|e| match e {
                // The log warned once when it found the disk full; each waiter need not.
                LogError::StorageFull { .. } => {
                    tracing::debug!(topic, partition, "produce not made durable: {e}")
                }
                _ => tracing::error!(topic, partition, "produce not made durable: {e}"),
            })?;
    }
    timer.appended(topic, partition, &appended, acks != Acks::None);
    Ok(Produced {
        base_offset: appended.base_offset,
        last_offset: appended.last_offset,
    })
}

/// The longest a fetch waits for acknowledged data still in memory to be written: a
/// write takes well under a millisecond, but a full disk holds it until space is freed.
const PENDING_WRITE_WAIT: Duration = Duration::from_secs(1);

pub async fn fetch(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    args: FetchArgs,
) -> Result<Fetched, EngineError> {
    served_here(shard);
    let log = shard.partition(topic, partition)?;
    let frame_room = shard
        .config
        .max_frame_bytes
        .saturating_sub(FRAME_HEADROOM_BYTES);
    let max_bytes = args.max_bytes.clamp(1, frame_room.max(1)) as usize;
    let wait = Duration::from_millis(u64::from(args.max_wait_ms)).min(FETCH_MAX_WAIT);
    let deadline = Instant::now() + wait;
    loop {
        // Acknowledged (acks=leader) but still in memory: a consumer asking for it waits
        // for the write that makes it readable (its wait ends the write linger), so that
        // what was acknowledged can be read back at once.
        if !args.pending && log.high_watermark() <= args.offset && log.end_offset() > args.offset {
            log.wait_for_written(args.offset, PENDING_WRITE_WAIT).await;
        }
        let (mut read, last_stable_offset) = if args.pending {
            let read = log.read(args.offset, max_bytes).await?;
            (read, log.last_stable_offset())
        } else {
            let read = log.read_written(args.offset, max_bytes).await?;
            (read, log.written_stable_offset())
        };
        let aborted = match args.isolation {
            Isolation::Uncommitted => Vec::new(),
            Isolation::Committed => {
                committed_only(&log, &mut read.batches, args.offset, last_stable_offset)
            }
        };
        let bytes: usize = read.batches.iter().map(|b| b.len()).sum();
        let now = Instant::now();
        let answer_now = bytes >= args.min_bytes.max(1) as usize
            || now >= deadline
            || shard.shutdown.is_triggered();
        // A place among the shard's long polls is taken only to wait (none: answer now).
        let slot = if answer_now {
            None
        } else {
            shard.long_poll_slot()
        };
        if slot.is_none() {
            crate::metrics::local::fetched(topic, partition, args.offset, &read.batches);
            return Ok(Fetched {
                high_watermark: read.high_watermark,
                last_stable_offset,
                log_start_offset: read.log_start_offset,
                aborted,
                batches: read.batches,
            });
        }
        // Long poll: wake when more is readable, at the deadline, or on shutdown.
        let more = async {
            if args.pending {
                log.wait_for_data(read.high_watermark, deadline - now).await
            } else {
                log.wait_for_written(read.high_watermark, deadline - now)
                    .await
            }
        };
        future::or(more, shard.shutdown.wait()).await;
        drop(slot);
    }
}

/// Keeps the batches below the last stable offset (a batch lies wholly on one side:
/// an open transaction's first batch starts at it) and names the aborted
/// transactions that may have records among them.
fn committed_only(
    log: &PartitionLog,
    batches: &mut Vec<Bytes>,
    from: i64,
    last_stable_offset: i64,
) -> Vec<AbortedRange> {
    batches.retain(|b| batch_base_offset(b).is_some_and(|base| base < last_stable_offset));
    let upto = batches
        .last()
        .and_then(|b| BatchHeader::parse(b).ok())
        .map_or(from, |h| h.last_offset() + 1);
    if upto <= from {
        return Vec::new();
    }
    log.aborted_in(from, upto)
        .into_iter()
        .map(|(producer_id, first_offset)| AbortedRange {
            producer_id,
            first_offset,
        })
        .collect()
}

/// The base offset of a batch read back from the log (validated when read).
fn batch_base_offset(batch: &[u8]) -> Option<i64> {
    BatchHeader::parse(batch).ok().map(|h| h.base_offset)
}

/// Appends a transaction marker for `producer_id` and waits until it is durable.
pub async fn write_marker(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    marker: Marker,
) -> Result<(), EngineError> {
    served_here(shard);
    let log = shard.partition(topic, partition)?;
    let appended = log.append_marker(
        marker.producer_id,
        marker.epoch,
        marker.commit,
        marker.coordinator_epoch,
    )?;
    log.wait_durable(appended.last_offset).await?;
    Ok(())
}

/// Every producer a partition keeps state for.
pub fn describe_producers(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
) -> Result<Vec<ProducerDescription>, EngineError> {
    let log = shard.partition(topic, partition)?;
    Ok(log
        .producer_summaries()
        .into_iter()
        .map(|p| ProducerDescription {
            producer_id: p.producer_id,
            epoch: p.epoch,
            last_sequence: p.last_sequence,
            last_timestamp_ms: p.last_timestamp_ms,
            txn_start_offset: p.txn_start_offset,
        })
        .collect())
}

pub async fn list_offsets(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    spec: OffsetSpec,
) -> Result<i64, EngineError> {
    served_here(shard);
    let log = shard.partition(topic, partition)?;
    if matches!(spec, OffsetSpec::Latest | OffsetSpec::LastStable) {
        // What was acknowledged before this request is counted once it is written (as a
        // fetch waits for it): a producer's acks=leader ack is then followed by a `latest`
        // that includes it.
        let end = log.end_offset();
        if log.high_watermark() < end {
            log.wait_for_written(end - 1, PENDING_WRITE_WAIT).await;
        }
    }
    Ok(match spec {
        OffsetSpec::Earliest => log.start_offset(),
        // Consumers' view: what a kill -9 cannot take back (`PartitionLog::high_watermark`).
        OffsetSpec::Latest => log.high_watermark(),
        OffsetSpec::LastStable => log.written_stable_offset(),
        // Nothing that recent yet: the next message will be the first at or after.
        OffsetSpec::Timestamp(ts) => log
            .offset_for_timestamp(ts)
            .await?
            .unwrap_or_else(|| log.end_offset()),
    })
}

pub async fn delete_records(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<i64, EngineError> {
    let log = shard.partition(topic, partition)?;
    let start = log.delete_records_before(offset).await?;
    tracing::info!(topic, partition, start, "records deleted");
    Ok(start)
}

pub fn stats(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
) -> Result<PartitionStats, EngineError> {
    let log = shard.partition(topic, partition)?;
    Ok(PartitionStats {
        partition,
        shard: shard.id,
        start_offset: log.start_offset(),
        end_offset: log.end_offset(),
        size_bytes: log.size_bytes(),
        segments: log.segment_count() as u32,
    })
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
