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
        // KAFKA_STORAGE_ERROR (56): retriable, the client tries again (a full disk
        // accepts writes again once space is freed; a failed log after a restart).
        EngineError::StorageFull(_) | EngineError::StorageFailed(_) => K::KafkaStorageError,
    }
    .code()
}

/// The code of an engine error on a transactional API: PRODUCER_FENCED (90) where the
/// request's version can carry it (KIP-588: InitProducerId v4+, AddPartitionsToTxn,
/// AddOffsetsToTxn and EndTxn v2+), INVALID_PRODUCER_EPOCH (47) before. Clients treat
/// both as fatal fencing; the older code is what older clients understand.
pub fn txn_code(e: &EngineError, producer_fenced_known: bool) -> i16 {
    let code = code(e);
    if producer_fenced_known && matches!(e, EngineError::ProducerFenced(_)) {
        return K::ProducerFenced.code();
    }
    code
}

/// The Kafka error code and message of an engine error.
pub fn of(e: EngineError) -> (i16, String) {
    (code(&e), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fenced_producer_gets_producer_fenced_only_where_the_version_knows_it() {
        let fenced = EngineError::ProducerFenced("epoch 3 is older than 4".into());
        assert_eq!(txn_code(&fenced, true), K::ProducerFenced.code());
        assert_eq!(txn_code(&fenced, false), K::InvalidProducerEpoch.code());
        assert_eq!(
            code(&fenced),
            K::InvalidProducerEpoch.code(),
            "Produce keeps 47"
        );
        let other = EngineError::ConcurrentTransactions(String::new());
        assert_eq!(txn_code(&other, true), K::ConcurrentTransactions.code());
        assert_eq!(
            code(&EngineError::UnknownTransactionalId(String::new())),
            K::InvalidProducerIdMapping.code()
        );
    }
}
