//! Engine errors as native error codes: the one place the native front end maps them.

use super::messages::{ErrorCode, Response};
use crate::engine::EngineError;

pub fn code(e: &EngineError) -> ErrorCode {
    match e {
        EngineError::InvalidRequest(_) => ErrorCode::InvalidRequest,
        EngineError::UnknownTopic(_) => ErrorCode::UnknownTopic,
        EngineError::UnknownPartition(_) => ErrorCode::UnknownPartition,
        EngineError::TopicExists(_) => ErrorCode::TopicExists,
        EngineError::InvalidTopic(_) => ErrorCode::InvalidTopic,
        EngineError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        EngineError::UnknownQueue(_) => ErrorCode::UnknownQueue,
        EngineError::UnknownExchange(_) => ErrorCode::UnknownExchange,
        EngineError::QueueMismatch(_) => ErrorCode::QueueMismatch,
        // The text names the bound; the native wire has no code of its own for it.
        EngineError::QueueFull(_) => ErrorCode::InvalidRequest,
        EngineError::UnknownHandle(_) => ErrorCode::UnknownHandle,
        EngineError::OffsetOutOfRange(_) => ErrorCode::OffsetOutOfRange,
        EngineError::CorruptBatch(_) => ErrorCode::CorruptBatch,
        EngineError::MessageTooLarge(_) => ErrorCode::MessageTooLarge,
        EngineError::UnknownMember(_) => ErrorCode::UnknownMember,
        EngineError::IllegalGeneration(_) => ErrorCode::IllegalGeneration,
        EngineError::RebalanceInProgress(_) => ErrorCode::RebalanceInProgress,
        EngineError::InvalidSessionTimeout(_) => ErrorCode::InvalidSessionTimeout,
        EngineError::InvalidGroup(_) => ErrorCode::InvalidGroup,
        EngineError::GroupNotEmpty(_) => ErrorCode::GroupNotEmpty,
        EngineError::OutOfOrderSequence(_) => ErrorCode::OutOfOrderSequence,
        EngineError::ProducerFenced(_) => ErrorCode::ProducerFenced,
        // Nothing the native protocol offers is unsupported; the text says what.
        EngineError::NotSupported(_) => ErrorCode::InvalidRequest,
        EngineError::SubscriptionClosed | EngineError::ShuttingDown(_) => ErrorCode::ShuttingDown,
        EngineError::Internal(_) => ErrorCode::Internal,
        // The native wire has no codes of their own for these (an exchange redeclared
        // with other settings was InvalidRequest before they existed); the text says
        // what.
        EngineError::PreconditionFailed(_)
        | EngineError::AccessRefused(_)
        | EngineError::InvalidTxnState(_)
        | EngineError::ConcurrentTransactions(_)
        | EngineError::UnknownTransactionalId(_)
        | EngineError::InvalidTransactionTimeout(_) => ErrorCode::InvalidRequest,
        EngineError::StorageFull(_) => ErrorCode::StorageFull,
        EngineError::StorageFailed(_) => ErrorCode::StorageFailed,
    }
}

impl From<EngineError> for Response {
    fn from(e: EngineError) -> Response {
        crate::metrics::local::error(crate::metrics::Protocol::Native, e.metrics_index());
        Response::error(code(&e), e.to_string())
    }
}
