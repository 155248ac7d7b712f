//! The one error type of the engine. Each kind is a class a client can act on; the text
//! says the rest and is what the client sees. Each front end maps the kinds to its
//! protocol's codes in one function (`native::errors`, `kafka::errors`).

use peregrine_shards::catalog::CatalogError;
use peregrine_shards::groups::GroupError;
use peregrine_shards::log::{LogError, StorageFault};
use peregrine_shards::queues::QueueError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A request the engine cannot act on as asked (bad arguments, bad combination).
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnknownTopic(String),
    #[error("{0}")]
    UnknownPartition(String),
    #[error("{0}")]
    TopicExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    /// A partition count that is not more than the topic's current one.
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    UnknownQueue(String),
    #[error("{0}")]
    UnknownExchange(String),
    /// A queue redeclared with other settings.
    #[error("{0}")]
    QueueMismatch(String),
    /// A publish refused by a queue at its length or byte bound (`reject-publish`).
    #[error("{0}")]
    QueueFull(String),
    /// A receipt handle whose lease ended (settled, timed out, or never handed out).
    #[error("{0}")]
    UnknownHandle(String),
    #[error("{0}")]
    OffsetOutOfRange(String),
    /// A record batch failed validation (length, magic or CRC32C).
    #[error("{0}")]
    CorruptBatch(String),
    #[error("{0}")]
    MessageTooLarge(String),
    #[error("{0}")]
    UnknownMember(String),
    #[error("{0}")]
    IllegalGeneration(String),
    #[error("{0}")]
    RebalanceInProgress(String),
    #[error("{0}")]
    InvalidSessionTimeout(String),
    #[error("{0}")]
    InvalidGroup(String),
    #[error("{0}")]
    GroupNotEmpty(String),
    /// An idempotent producer's batch skipped or repeated sequence numbers.
    #[error("{0}")]
    OutOfOrderSequence(String),
    /// An idempotent producer's epoch is older than the partition has seen.
    #[error("{0}")]
    ProducerFenced(String),
    /// An operation the engine names but does not offer yet.
    #[error("{0}")]
    NotSupported(String),
    /// A push subscription that was closed (its leases returned) was asked for more.
    #[error("the subscription is closed")]
    SubscriptionClosed,
    /// The broker is shutting down (or the owning shard is gone).
    #[error("{0}")]
    ShuttingDown(String),
    /// A storage or internal failure on the broker.
    #[error("{0}")]
    Internal(String),
    /// The object is not in the state the request needs (an exchange redeclared with
    /// other settings, a delete with if-unused or if-empty refused); AMQP's 406.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The request touches what a client may not (a reserved exchange name, a publish
    /// straight to an internal exchange); AMQP's 403.
    #[error("{0}")]
    AccessRefused(String),
    /// A transactional request that does not fit the transaction's state (EndTxn with
    /// nothing begun, TxnOffsetCommit for a group not added, ...).
    #[error("{0}")]
    InvalidTxnState(String),
    /// The transaction is still completing (markers being written): retry shortly.
    #[error("{0}")]
    ConcurrentTransactions(String),
    /// A transactional id the coordinator does not know, or one whose producer id is
    /// not the one given.
    #[error("{0}")]
    UnknownTransactionalId(String),
    /// A transaction timeout above the broker's maximum (or not positive).
    #[error("{0}")]
    InvalidTransactionTimeout(String),
    /// The disk has no space (or quota) left for the request: nothing it carried was
    /// acknowledged; writes resume by themselves once space is freed, so retry later.
    #[error("{0}")]
    StorageFull(String),
    /// A write or fdatasync failed: the partition or queue is read-only (reads of what
    /// is durable still work) until the broker restarts and recovers it from disk.
    #[error("{0}")]
    StorageFailed(String),
}

impl EngineError {
    /// The storage kind of a log failure (`Internal` for one that is not a storage fault).
    pub fn of_storage(e: &LogError, text: String) -> EngineError {
        match e.storage_fault() {
            Some(StorageFault::Full) => EngineError::StorageFull(text),
            Some(StorageFault::Failed) => EngineError::StorageFailed(text),
            None => EngineError::Internal(text),
        }
    }

    /// Whether this is a storage fault (full or failed): the front ends' storage codes.
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            EngineError::StorageFull(_) | EngineError::StorageFailed(_)
        )
    }

    pub fn internal(e: impl std::fmt::Display) -> EngineError {
        EngineError::Internal(e.to_string())
    }

    /// This kind's index in `metrics::ERROR_CODES` (errors are counted by kind).
    pub fn metrics_index(&self) -> usize {
        match self {
            EngineError::InvalidRequest(_) => 0,
            EngineError::UnknownTopic(_) => 1,
            EngineError::UnknownPartition(_) => 2,
            EngineError::TopicExists(_) => 3,
            EngineError::InvalidTopic(_) => 4,
            EngineError::InvalidPartitions(_) => 5,
            EngineError::UnknownQueue(_) => 6,
            EngineError::UnknownExchange(_) => 7,
            EngineError::QueueMismatch(_) => 8,
            EngineError::QueueFull(_) => 9,
            EngineError::UnknownHandle(_) => 10,
            EngineError::OffsetOutOfRange(_) => 11,
            EngineError::CorruptBatch(_) => 12,
            EngineError::MessageTooLarge(_) => 13,
            EngineError::UnknownMember(_) => 14,
            EngineError::IllegalGeneration(_) => 15,
            EngineError::RebalanceInProgress(_) => 16,
            EngineError::InvalidSessionTimeout(_) => 17,
            EngineError::InvalidGroup(_) => 18,
            EngineError::GroupNotEmpty(_) => 19,
            EngineError::OutOfOrderSequence(_) => 20,
            EngineError::ProducerFenced(_) => 21,
            EngineError::NotSupported(_) => 22,
            EngineError::SubscriptionClosed => 23,
            EngineError::ShuttingDown(_) => 24,
            EngineError::Internal(_) => 25,
            EngineError::PreconditionFailed(_) => 26,
            EngineError::AccessRefused(_) => 27,
            EngineError::InvalidTxnState(_) => 28,
            EngineError::ConcurrentTransactions(_) => 29,
            EngineError::UnknownTransactionalId(_) => 30,
            EngineError::InvalidTransactionTimeout(_) => 31,
            EngineError::StorageFull(_) => 32,
            EngineError::StorageFailed(_) => 33,
        }
    }
}

impl From<LogError> for EngineError {
    fn from(e: LogError) -> EngineError {
        let text = e.to_string();
        match e {
            LogError::InvalidBatch(_) | LogError::Corrupt { .. } => EngineError::CorruptBatch(text),
            LogError::OffsetOutOfRange { .. } => EngineError::OffsetOutOfRange(text),
            LogError::MessageTooLarge { .. } => EngineError::MessageTooLarge(text),
            LogError::Closed => EngineError::ShuttingDown(text),
            LogError::OutOfOrderSequence { .. } => EngineError::OutOfOrderSequence(text),
            LogError::ProducerFenced { .. } => EngineError::ProducerFenced(text),
            LogError::StorageFull { .. } | LogError::ReadOnly { .. } | LogError::Io { .. } => {
                EngineError::of_storage(&e, text)
            }
            // Found at open (the broker does not start on it): the disk holds damage.
            LogError::Damaged { .. } => EngineError::StorageFailed(text),
        }
    }
}

impl From<CatalogError> for EngineError {
    fn from(e: CatalogError) -> EngineError {
        let text = e.to_string();
        match e {
            CatalogError::TopicExists(_) => EngineError::TopicExists(text),
            CatalogError::UnknownTopic(_) => EngineError::UnknownTopic(text),
            CatalogError::InvalidName(_) | CatalogError::InvalidConfig(_) => {
                EngineError::InvalidTopic(text)
            }
            CatalogError::InvalidPartitions(_) => EngineError::InvalidPartitions(text),
            CatalogError::UnknownQueue(_) => EngineError::UnknownQueue(text),
            CatalogError::QueueMismatch(_) => EngineError::QueueMismatch(text),
            CatalogError::InvalidQueueConfig(_) => EngineError::InvalidRequest(text),
            CatalogError::UnknownExchange(_) => EngineError::UnknownExchange(text),
            CatalogError::ExchangeMismatch(_) | CatalogError::ExchangeInUse(_) => {
                EngineError::PreconditionFailed(text)
            }
            CatalogError::ReservedExchange(_) => EngineError::AccessRefused(text),
            CatalogError::UnknownBinding(_) => EngineError::InvalidRequest(text),
            CatalogError::Storage { .. } => EngineError::StorageFailed(text),
            CatalogError::StorageFull { .. } => EngineError::StorageFull(text),
        }
    }
}

impl From<GroupError> for EngineError {
    fn from(e: GroupError) -> EngineError {
        let text = e.to_string();
        match e {
            GroupError::UnknownMember => EngineError::UnknownMember(text),
            GroupError::IllegalGeneration => EngineError::IllegalGeneration(text),
            GroupError::RebalanceInProgress => EngineError::RebalanceInProgress(text),
            GroupError::InvalidSessionTimeout => EngineError::InvalidSessionTimeout(text),
            GroupError::InvalidGroupId => EngineError::InvalidGroup(text),
            GroupError::NotEmpty => EngineError::GroupNotEmpty(text),
            GroupError::TooManyGroups { .. } => EngineError::InvalidGroup(text),
            GroupError::StorageFull(_) => EngineError::StorageFull(text),
            GroupError::StorageFailed(_) => EngineError::StorageFailed(text),
            _ => EngineError::Internal(text),
        }
    }
}

impl From<QueueError> for EngineError {
    fn from(e: QueueError) -> EngineError {
        let text = e.to_string();
        match e {
            QueueError::UnknownHandle(_) => EngineError::UnknownHandle(text),
            QueueError::PriorityTooHigh { .. }
            | QueueError::GroupIdRequired
            | QueueError::VisibilityTimeoutTooLong { .. } => EngineError::InvalidRequest(text),
            QueueError::QueueFull { .. } => EngineError::QueueFull(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EngineError;

    #[test]
    fn each_kind_is_counted_under_its_own_name() {
        let samples = [
            EngineError::InvalidRequest(String::new()),
            EngineError::QueueFull(String::new()),
            EngineError::SubscriptionClosed,
            EngineError::Internal(String::new()),
            EngineError::ProducerFenced(String::new()),
            EngineError::PreconditionFailed(String::new()),
            EngineError::AccessRefused(String::new()),
            EngineError::InvalidTxnState(String::new()),
            EngineError::ConcurrentTransactions(String::new()),
            EngineError::UnknownTransactionalId(String::new()),
            EngineError::InvalidTransactionTimeout(String::new()),
            EngineError::StorageFull(String::new()),
            EngineError::StorageFailed(String::new()),
        ];
        for e in samples {
            let name = format!("{e:?}");
            let kind = crate::metrics::ERROR_CODES[e.metrics_index()];
            assert!(name.starts_with(kind), "{name} counted as {kind}");
        }
    }
}
