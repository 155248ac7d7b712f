//! Engine errors as SQS errors (plan table 5b): one mapping for every action, so a
//! kind of failure reads the same whichever action met it.

use crate::engine::EngineError;
use crate::metrics::{local, Protocol};
use peregrine_aws_wire::sqs::{ErrorCode, WireError};

/// The SQS error for an engine error, counted in the HTTP front end's error metrics.
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
        EngineError::NotSupported(_) => ErrorCode::UnsupportedOperation,
        EngineError::ShuttingDown(_) => ErrorCode::ServiceUnavailable,
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
        | EngineError::PreconditionFailed(_)
        | EngineError::AccessRefused(_)
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
