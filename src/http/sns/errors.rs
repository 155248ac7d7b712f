//! Engine errors as SNS errors: one mapping for every action, so a kind of failure reads
//! the same whichever action met it.

use crate::engine::EngineError;
use crate::metrics::{local, Protocol};
use peregrine_aws_wire::sns::errors::{ErrorCode, WireError};

/// Which cap a `PreconditionFailed` from the engine is (the engine says it in words;
/// the call that met it knows which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Topics,
    Subscriptions,
    /// No cap applies to the call: a precondition failing is the broker's fault.
    None,
}

/// The SNS error for an engine error, counted in the HTTP front end's error metrics.
pub fn from_engine(e: EngineError, cap: Cap) -> WireError {
    local::error(Protocol::Http, e.metrics_index());
    let code = match &e {
        // The engine's SNS calls answer a missing topic or subscription as UnknownTopic.
        EngineError::UnknownTopic(_) => ErrorCode::NotFound,
        EngineError::InvalidRequest(_)
        | EngineError::InvalidTopic(_)
        | EngineError::MessageTooLarge(_)
        | EngineError::UnknownQueue(_) => ErrorCode::InvalidParameter,
        EngineError::PreconditionFailed(_) => match cap {
            Cap::Topics => ErrorCode::TopicLimitExceeded,
            Cap::Subscriptions => ErrorCode::SubscriptionLimitExceeded,
            Cap::None => ErrorCode::InternalError,
        },
        // 503: retry later; writes resume by themselves once space is freed.
        EngineError::ShuttingDown(_) | EngineError::StorageFull(_) => ErrorCode::ServiceUnavailable,
        EngineError::QueueFull(_) => ErrorCode::Throttled,
        // Kinds SNS calls cannot produce; a broken invariant or a disk failure is the
        // broker's fault either way.
        EngineError::UnknownPartition(_)
        | EngineError::QueueMismatch(_)
        | EngineError::UnknownHandle(_)
        | EngineError::NotSupported(_)
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
        | EngineError::AccessRefused(_)
        | EngineError::InvalidTxnState(_)
        | EngineError::ConcurrentTransactions(_)
        | EngineError::UnknownTransactionalId(_)
        | EngineError::InvalidTransactionTimeout(_) => ErrorCode::InternalError,
    };
    if code == ErrorCode::InternalError {
        tracing::warn!("SNS request failed inside the broker: {e}");
    }
    let message = match code {
        ErrorCode::InvalidParameter => format!("Invalid parameter: {e}"),
        _ => e.to_string(),
    };
    WireError::new(code, message)
}

/// NotFound for a topic that does not exist, counted as the engine's UnknownTopic (as
/// when an engine call finds it missing).
pub fn topic_not_found(name: &str) -> WireError {
    count_missing(name);
    WireError::new(ErrorCode::NotFound, "Topic does not exist")
}

/// ResourceNotFound: what the tag actions answer for a topic that does not exist.
pub fn resource_not_found(name: &str) -> WireError {
    count_missing(name);
    WireError::new(ErrorCode::ResourceNotFound, "Resource does not exist")
}

fn count_missing(what: &str) {
    let missing = EngineError::UnknownTopic(what.to_string());
    local::error(Protocol::Http, missing.metrics_index());
}

/// NotFound for a subscription that does not exist, counted as above.
pub fn subscription_not_found(arn: &str) -> WireError {
    count_missing(arn);
    WireError::new(ErrorCode::NotFound, "Subscription does not exist")
}
