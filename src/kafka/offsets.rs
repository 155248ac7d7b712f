//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after a timestamp.
//! The log's time index finds the batch; the records of that batch are then read to
//! answer with the exact record, as Kafka does (offset -1 when no record is that new).

use super::{call, Ctx};
use crate::native::messages::{OffsetSpec, Request, Response};
use bytes::BytesMut;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// The first record at or after `ts` from the batch at `from` on: (offset, timestamp).
async fn first_at_or_after(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    from: i64,
    ts: i64,
) -> Result<Option<(i64, i64)>, (i16, String)> {
    let mut next = from;
    // The batch found by the index holds a record at or after `ts` (its max timestamp
    // is); a few reads cover batches whose first records are older.
    for _ in 0..8 {
        let request = Request::Fetch {
            topic: topic.to_string(),
            partition,
            offset: next,
            max_bytes: 1 << 20,
            max_wait_ms: 0,
            min_bytes: 1,
        };
        let (_, batches) = match call(ctx, request, BytesMut::new()).await {
            Ok(answer) => answer,
            // At the end of the log: nothing that new.
            Err((code, _)) if code == ResponseError::OffsetOutOfRange.code() => return Ok(None),
            Err(e) => return Err(e),
        };
        if batches.is_empty() {
            return Ok(None);
        }
        let (mut found, mut last) = (None, None);
        for payload in &batches {
            crate::client::records::visit_batches(partition, payload, next, &mut |r| {
                last = Some(r.offset);
                if found.is_none() && r.timestamp_ms >= ts {
                    found = Some((r.offset, r.timestamp_ms));
                }
            })
            .map_err(|e| (ResponseError::CorruptMessage.code(), e.to_string()))?;
        }
        match (found, last) {
            (Some(hit), _) => return Ok(Some(hit)),
            (None, Some(last)) => next = last + 1,
            (None, None) => return Ok(None),
        }
    }
    Ok(None)
}

pub async fn list_offsets(ctx: &Ctx, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let answer = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let spec = match p.timestamp {
                EARLIEST => OffsetSpec::Earliest,
                LATEST => OffsetSpec::Latest,
                ts if ts >= 0 => OffsetSpec::Timestamp(ts),
                other => {
                    // -3 (max timestamp) and the like: not offered by this broker.
                    partitions
                        .push(answer.with_error_code(ResponseError::UnsupportedVersion.code()));
                    tracing::debug!(timestamp = other, "ListOffsets spec not supported");
                    continue;
                }
            };
            let request = Request::ListOffsets {
                topic: topic.name.0.to_string(),
                partition: p.partition_index,
                spec,
            };
            let topic_name = topic.name.0.to_string();
            partitions.push(match call(ctx, request, BytesMut::new()).await {
                Ok((Response::Offset { offset }, _)) if p.timestamp >= 0 => {
                    match first_at_or_after(
                        ctx,
                        &topic_name,
                        p.partition_index,
                        offset,
                        p.timestamp,
                    )
                    .await
                    {
                        Ok(Some((offset, ts))) => answer.with_offset(offset).with_timestamp(ts),
                        Ok(None) => answer,
                        Err((code, _)) => answer.with_error_code(code),
                    }
                }
                Ok((Response::Offset { offset }, _)) => answer.with_offset(offset),
                Ok(_) => answer.with_error_code(ResponseError::UnknownServerError.code()),
                Err((code, _)) => answer.with_error_code(code),
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
