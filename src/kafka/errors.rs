//! Native error codes as the Kafka error codes clients act on.

use crate::native::messages::{ErrorCode, Response};
use kafka_protocol::ResponseError as K;

pub const NONE: i16 = 0;

pub fn code(code: ErrorCode) -> i16 {
    match code {
        ErrorCode::InvalidRequest => K::InvalidRequest,
        ErrorCode::UnknownTopic | ErrorCode::UnknownPartition => K::UnknownTopicOrPartition,
        ErrorCode::TopicExists => K::TopicAlreadyExists,
        ErrorCode::InvalidTopic => K::InvalidTopicException,
        ErrorCode::InvalidPartitions => K::InvalidPartitions,
        // Queues are not reachable through the Kafka protocol.
        ErrorCode::UnknownQueue
        | ErrorCode::UnknownExchange
        | ErrorCode::QueueMismatch
        | ErrorCode::UnknownHandle => K::InvalidRequest,
        ErrorCode::OffsetOutOfRange => K::OffsetOutOfRange,
        ErrorCode::CorruptBatch => K::CorruptMessage,
        ErrorCode::MessageTooLarge => K::MessageTooLarge,
        ErrorCode::UnknownMember => K::UnknownMemberId,
        ErrorCode::IllegalGeneration => K::IllegalGeneration,
        ErrorCode::RebalanceInProgress => K::RebalanceInProgress,
        ErrorCode::InvalidSessionTimeout => K::InvalidSessionTimeout,
        ErrorCode::InvalidGroup => K::InvalidGroupId,
        ErrorCode::GroupNotEmpty => K::NonEmptyGroup,
        ErrorCode::OutOfOrderSequence => K::OutOfOrderSequenceNumber,
        ErrorCode::ProducerFenced => K::InvalidProducerEpoch,
        // Retriable: the client refreshes metadata and tries again.
        ErrorCode::ShuttingDown => K::NotLeaderOrFollower,
        ErrorCode::Internal => K::UnknownServerError,
    }
    .code()
}

/// The Kafka error code and message of a native answer that is an error.
pub fn of(response: &Response) -> Option<(i16, String)> {
    match response {
        Response::Error { code: c, message } => Some((code(*c), message.clone())),
        _ => None,
    }
}

/// The answer of a dispatch that did not answer (only acks=none produces do that).
pub fn no_answer() -> (i16, String) {
    (
        K::UnknownServerError.code(),
        "no answer from the owning shard".into(),
    )
}
