//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after a timestamp.

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
            partitions.push(match call(ctx, request, BytesMut::new()).await {
                Ok((Response::Offset { offset }, _)) => {
                    let ts = if p.timestamp >= 0 { p.timestamp } else { -1 };
                    answer.with_offset(offset).with_timestamp(ts)
                }
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
