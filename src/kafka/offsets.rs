//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after a timestamp.
//! The log's time index finds the batch; the records of that batch are then read to
//! answer with the exact record, as Kafka does (offset -1 when no record is that new).
//!
//! Batches stay compressed in the log as producers sent them (Produce does not
//! decompress: the hot path copies bytes, and the broker reads records only here), so
//! the lookup decompresses the batches it must look inside, each with a hard output
//! limit (`peregrine_shards::compression`): a compression bomb in the log answers
//! MESSAGE_TOO_LARGE for that lookup and costs the shard at most the limit in memory.
//!
//! With `isolation_level` 1 (read_committed, v2+) latest is the last stable offset and a
//! timestamp lookup answers only records below it (none otherwise), as Kafka does.
//!
//! With `--acls` a topic needs Describe (TOPIC_AUTHORIZATION_FAILED otherwise).

use super::acls::{self, Op};
use super::{errors, Ctx};
use crate::engine::{FetchArgs, Isolation, OffsetSpec};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;
use peregrine_shards::batch::{BatchError, BatchHeader, BATCH_HEADER_LEN};
use peregrine_shards::compression::{self, DecompressError, DECOMPRESSED_BYTES_MAX_DEFAULT};
use peregrine_shards::records;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// Fetches made to find the record after the index's batch; see `first_at_or_after`.
const LOOKUP_FETCHES_MAX: usize = 8;
/// Bytes read per fetch while looking for the record.
const LOOKUP_FETCH_BYTES: u32 = 1 << 20;

/// Most bytes one batch's records may expand to here: the default limit, or more when
/// `--kafka-message-max-bytes` lets an uncompressed batch be larger than that.
fn decompressed_bytes_max(ctx: &Ctx) -> usize {
    let message_max = usize::try_from(ctx.engine.config().kafka_message_max_bytes).unwrap_or(0);
    DECOMPRESSED_BYTES_MAX_DEFAULT.max(message_max)
}

/// A batch the lookup cannot read, as a Kafka error code (and a message for the log).
fn unreadable(e: DecompressError) -> (i16, String) {
    let code = match e {
        DecompressError::TooLarge { .. } => ResponseError::MessageTooLarge,
        DecompressError::UnknownCodec(_) => ResponseError::UnsupportedCompressionType,
        DecompressError::Corrupt { .. } | DecompressError::Batch(_) => {
            ResponseError::CorruptMessage
        }
    };
    (code.code(), e.to_string())
}

/// The first record of `batch` (one whole batch) at or after both offset `from` and
/// timestamp `ts`: (offset, timestamp).
fn first_in_batch(
    batch: &[u8],
    from: i64,
    ts: i64,
    limit: usize,
) -> Result<Option<(i64, i64)>, DecompressError> {
    let plain = compression::uncompressed_batch(batch, limit)?;
    for r in records::records(&plain)? {
        let r = r?;
        if r.offset >= from && r.timestamp_ms >= ts {
            return Ok(Some((r.offset, r.timestamp_ms)));
        }
    }
    Ok(None)
}

/// Where the search stands after one fetched payload.
enum Scan {
    Found(i64, i64),
    /// No record there; the next offset to fetch from.
    Next(i64),
}

/// Walks the batches of one fetch payload, opening only those that may hold the
/// answer: a batch whose max timestamp is older than `ts` holds no such record.
fn scan_payload(payload: &[u8], from: i64, ts: i64, limit: usize) -> Result<Scan, DecompressError> {
    let invalid = |what| DecompressError::Batch(BatchError::Invalid(what));
    let mut next = from;
    let mut rest = payload;
    // Each step consumes at least a batch header, so this ends.
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest)?;
        let len = header.total_len();
        if len < BATCH_HEADER_LEN {
            return Err(invalid("batch length is shorter than the v2 header"));
        }
        let batch = rest
            .get(..len)
            .ok_or_else(|| invalid("fetched batch is cut short"))?;
        rest = &rest[len..];
        let after = header
            .next_offset()
            .ok_or_else(|| invalid("batch offsets run past i64::MAX"))?;
        if after <= from || header.is_control() || header.max_timestamp < ts {
            next = next.max(after);
            continue;
        }
        if let Some((offset, timestamp)) = first_in_batch(batch, from, ts, limit)? {
            return Ok(Scan::Found(offset, timestamp));
        }
        next = next.max(after);
    }
    Ok(Scan::Next(next))
}

/// The first record at or after `ts` from the batch at `from` on: (offset, timestamp).
async fn first_at_or_after(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    from: i64,
    ts: i64,
) -> Result<Option<(i64, i64)>, (i16, String)> {
    let limit = decompressed_bytes_max(ctx);
    let mut next = from;
    // The batch found by the index holds a record at or after `ts` (its max timestamp
    // is); a few reads cover batches whose first records are older.
    for _ in 0..LOOKUP_FETCHES_MAX {
        let args = FetchArgs {
            offset: next,
            max_bytes: LOOKUP_FETCH_BYTES,
            max_wait_ms: 0,
            min_bytes: 1,
            isolation: Default::default(),
            pending: false,
        };
        let batches = match ctx.engine.fetch(topic, partition, args).await {
            Ok(fetched) => fetched.batches,
            // At the end of the log: nothing that new.
            Err(crate::engine::EngineError::OffsetOutOfRange(_)) => return Ok(None),
            Err(e) => return Err(errors::of(e)),
        };
        if batches.is_empty() {
            return Ok(None);
        }
        let start = next;
        for payload in &batches {
            match scan_payload(payload, next, ts, limit).map_err(unreadable)? {
                Scan::Found(offset, timestamp) => return Ok(Some((offset, timestamp))),
                Scan::Next(after) => next = after,
            }
        }
        if next == start {
            // No batch past `start`: a log that does not advance has nothing newer.
            return Ok(None);
        }
    }
    Ok(None)
}

/// The engine's offset spec of a ListOffsets timestamp, or `None` for one not offered.
fn spec_of(timestamp: i64, isolation: Isolation) -> Option<OffsetSpec> {
    match timestamp {
        EARLIEST => Some(OffsetSpec::Earliest),
        LATEST if isolation == Isolation::Committed => Some(OffsetSpec::LastStable),
        LATEST => Some(OffsetSpec::Latest),
        ts if ts >= 0 => Some(OffsetSpec::Timestamp(ts)),
        // -3 (max timestamp) and the like.
        _ => None,
    }
}

/// A timestamp lookup's answer as a read_committed reader may see it: only a record
/// below the last stable offset.
async fn visible(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    found: Option<(i64, i64)>,
    isolation: Isolation,
) -> Result<Option<(i64, i64)>, (i16, String)> {
    let Some((offset, ts)) = found else {
        return Ok(None);
    };
    if isolation == Isolation::Uncommitted {
        return Ok(Some((offset, ts)));
    }
    let stable = ctx
        .engine
        .list_offsets(topic, partition, OffsetSpec::LastStable)
        .await
        .map_err(errors::of)?;
    Ok((offset < stable).then_some((offset, ts)))
}

/// The record at or after `timestamp` from `from` on, as `isolation` may see it.
async fn by_timestamp(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    from: i64,
    timestamp: i64,
    isolation: Isolation,
) -> Result<Option<(i64, i64)>, (i16, String)> {
    let found = first_at_or_after(ctx, topic, partition, from, timestamp).await?;
    visible(ctx, topic, partition, found, isolation).await
}

pub async fn list_offsets(ctx: &Ctx, req: ListOffsetsRequest) -> ListOffsetsResponse {
    // v0-1 have no isolation level (decoded as 0: read_uncommitted).
    let isolation = super::fetch::isolation_of(req.isolation_level);
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let described = acls::check_topic(ctx, Op::Describe, topic.name.0.as_str());
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let answer = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            if let Err((code, _)) = &described {
                partitions.push(answer.with_error_code(*code));
                continue;
            }
            let Some(spec) = spec_of(p.timestamp, isolation) else {
                partitions.push(answer.with_error_code(ResponseError::UnsupportedVersion.code()));
                tracing::debug!(timestamp = p.timestamp, "ListOffsets spec not supported");
                continue;
            };
            let topic_name = topic.name.0.to_string();
            let listed = ctx
                .engine
                .list_offsets(&topic_name, p.partition_index, spec)
                .await;
            partitions.push(match listed {
                Ok(offset) if p.timestamp >= 0 => {
                    let (part, ts) = (p.partition_index, p.timestamp);
                    match by_timestamp(ctx, &topic_name, part, offset, ts, isolation).await {
                        Ok(Some((offset, ts))) => answer.with_offset(offset).with_timestamp(ts),
                        Ok(None) => answer,
                        Err((code, message)) => {
                            // Debug, not warn: a client could repeat this at will.
                            tracing::debug!(topic = %topic_name, partition = part,
                                timestamp = ts, "ListOffsets: {message}");
                            answer.with_error_code(code)
                        }
                    }
                }
                Ok(offset) => answer.with_offset(offset),
                Err(e) => answer.with_error_code(errors::code(&e)),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_is_the_last_stable_offset_for_read_committed_only() {
        let committed = Isolation::Committed;
        let all = Isolation::Uncommitted;
        assert_eq!(spec_of(LATEST, committed), Some(OffsetSpec::LastStable));
        assert_eq!(spec_of(LATEST, all), Some(OffsetSpec::Latest));
        assert_eq!(spec_of(EARLIEST, committed), Some(OffsetSpec::Earliest));
        assert_eq!(spec_of(7, committed), Some(OffsetSpec::Timestamp(7)));
        assert_eq!(spec_of(-3, all), None, "max timestamp is not offered");
    }
}
