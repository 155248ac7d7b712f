//! Engine errors as the Kafka error codes clients act on: the one place the Kafka front
//! end maps them.

use crate::engine::EngineError;
use kafka_protocol::ResponseError as K;

pub const NONE: i16 = 0;

pub fn code(e: &EngineError) -> i16 {
    crate::metrics::local::error(crate::metrics::Protocol::Kafka, e.metrics_index());
    match e {
        EngineError::InvalidRequest(_) => K::InvalidRequest,
        EngineError::UnknownTopic(_) | EngineError::UnknownPartition(_) => {
            K::UnknownTopicOrPartition
        }
        EngineError::TopicExists(_) => K::TopicAlreadyExists,
        EngineError::InvalidTopic(_) => K::InvalidTopicException,
        EngineError::InvalidPartitions(_) => K::InvalidPartitions,
        // Queues are not reachable through the Kafka protocol.
        EngineError::UnknownQueue(_)
        | EngineError::UnknownExchange(_)
        | EngineError::QueueMismatch(_)
        | EngineError::QueueFull(_)
        | EngineError::UnknownHandle(_)
        | EngineError::PreconditionFailed(_)
        | EngineError::AccessRefused(_)
        | EngineError::SubscriptionClosed => K::InvalidRequest,
        EngineError::OffsetOutOfRange(_) => K::OffsetOutOfRange,
        EngineError::CorruptBatch(_) => K::CorruptMessage,
        EngineError::MessageTooLarge(_) => K::MessageTooLarge,
        EngineError::UnknownMember(_) => K::UnknownMemberId,
        EngineError::IllegalGeneration(_) => K::IllegalGeneration,
        EngineError::RebalanceInProgress(_) => K::RebalanceInProgress,
        EngineError::InvalidSessionTimeout(_) => K::InvalidSessionTimeout,
        EngineError::InvalidGroup(_) => K::InvalidGroupId,
        EngineError::GroupNotEmpty(_) => K::NonEmptyGroup,
        EngineError::OutOfOrderSequence(_) => K::OutOfOrderSequenceNumber,
        EngineError::ProducerFenced(_) => K::InvalidProducerEpoch,
        EngineError::NotSupported(_) => K::UnsupportedVersion,
        // Retriable: the client refreshes metadata and tries again.
        EngineError::ShuttingDown(_) => K::NotLeaderOrFollower,
        EngineError::Internal(_) => K::UnknownServerError,
        EngineError::InvalidTxnState(_) => K::InvalidTxnState,
        EngineError::ConcurrentTransactions(_) => K::ConcurrentTransactions,
        EngineError::UnknownTransactionalId(_) => K::InvalidProducerIdMapping,
        EngineError::InvalidTransactionTimeout(_) => K::InvalidTransactionTimeout,
    }
    .code()
}

/// The Kafka error code and message of an engine error.
pub fn of(e: EngineError) -> (i16, String) {
    (code(&e), e.to_string())
}
