//! Engine errors as SQS errors (plan table 5b): one mapping for every action, so a
//! kind of failure reads the same whichever action met it.

use crate::engine::EngineError;
use crate::metrics::{local, Protocol};
use peregrine_aws_wire::sqs::{ErrorCode, WireError};

/// The SQS error for an engine error, counted in the HTTP front end's error metrics
/// (by `Ctx::engine_error`, which marks the request's error as counted).
/// Lease outcomes are not errors here: DeleteMessage and ChangeMessageVisibility get
/// them per entry from the engine (`ack_leases`, `change_visibility`), so an
/// `UnknownHandle` that still arrives is a receipt the engine refused outright.
pub fn from_engine(e: EngineError) -> WireError {
    local::error(Protocol::Http, e.metrics_index());
    let code = match &e {
        EngineError::UnknownQueue(_) => ErrorCode::QueueDoesNotExist,
        EngineError::QueueMismatch(_) => ErrorCode::QueueNameExists,
        EngineError::UnknownHandle(_) => ErrorCode::ReceiptHandleIsInvalid,
        EngineError::InvalidRequest(_)
        | EngineError::InvalidTopic(_)
        | EngineError::MessageTooLarge(_) => ErrorCode::InvalidParameterValue,
        EngineError::QueueFull(_) => ErrorCode::OverLimit,
        EngineError::AccessRefused(_) => ErrorCode::AccessDenied,
        EngineError::NotSupported(_) => ErrorCode::UnsupportedOperation,
        // 503: retry later; writes resume by themselves once space is freed.
        EngineError::ShuttingDown(_) | EngineError::StorageFull(_) => ErrorCode::ServiceUnavailable,
        // Topic, group and transaction kinds cannot come from queue calls; a broken
        // invariant or a disk failure is the broker's fault either way.
        EngineError::UnknownTopic(_)
        | EngineError::UnknownPartition(_)
        | EngineError::TopicExists(_)
        | EngineError::InvalidPartitions(_)
        | EngineError::UnknownExchange(_)
        | EngineError::OffsetOutOfRange(_)
        | EngineError::CorruptBatch(_)
        | EngineError::UnknownMember(_)
        | EngineError::IllegalGeneration(_)
        | EngineError::RebalanceInProgress(_)
        | EngineError::InvalidSessionTimeout(_)
        | EngineError::InvalidGroup(_)
        | EngineError::GroupNotEmpty(_)
        | EngineError::OutOfOrderSequence(_)
        | EngineError::ProducerFenced(_)
        | EngineError::SubscriptionClosed
        | EngineError::Internal(_)
        | EngineError::StorageFailed(_)
        | EngineError::PreconditionFailed(_)
        | EngineError::InvalidTxnState(_)
        | EngineError::ConcurrentTransactions(_)
        | EngineError::UnknownTransactionalId(_)
        | EngineError::InvalidTransactionTimeout(_) => ErrorCode::InternalFailure,
    };
    if code == ErrorCode::InternalFailure {
        tracing::warn!("SQS request failed inside the broker: {e}");
    }
    WireError::new(code, e.to_string())
}

/// The engine kind an error the front end found itself (a request that does not decode,
/// an attribute out of range, a missing queue) counts as in `errors_total`, so that
/// SQS errors are counted whichever layer found them.
pub fn wire_kind(code: ErrorCode) -> usize {
    let text = String::new();
    let kind = match code {
        ErrorCode::QueueDoesNotExist | ErrorCode::ResourceNotFound => {
            EngineError::UnknownQueue(text)
        }
        ErrorCode::QueueNameExists => EngineError::QueueMismatch(text),
        ErrorCode::ReceiptHandleIsInvalid | ErrorCode::MessageNotInflight => {
            EngineError::UnknownHandle(text)
        }
        ErrorCode::OverLimit => EngineError::QueueFull(text),
        ErrorCode::UnsupportedOperation | ErrorCode::UnknownAction => {
            EngineError::NotSupported(text)
        }
        ErrorCode::InternalFailure => EngineError::Internal(text),
        ErrorCode::AccessDenied => EngineError::AccessRefused(text),
        ErrorCode::ServiceUnavailable => EngineError::ShuttingDown(text),
        ErrorCode::EmptyBatchRequest
        | ErrorCode::TooManyEntriesInBatchRequest
        | ErrorCode::BatchEntryIdsNotDistinct
        | ErrorCode::InvalidBatchEntryId
        | ErrorCode::BatchRequestTooLong
        | ErrorCode::InvalidAttributeName
        | ErrorCode::InvalidAttributeValue
        | ErrorCode::InvalidMessageContents
        | ErrorCode::InvalidParameterValue
        | ErrorCode::MissingParameter
        | ErrorCode::Malformed => EngineError::InvalidRequest(text),
    };
    kind.metrics_index()
}
