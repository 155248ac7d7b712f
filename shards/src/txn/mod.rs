//! Transaction coordinator state (Kafka transactions, issue 18): what one shard knows
//! of every transactional id it owns, and the log that keeps it durable.
//!
//! Owned by the shard that owns the transactional id (the same stable name hash as
//! groups); `!Send`, lives inside that shard's glommio executor; state in `RefCell`s
//! never borrowed across an `.await`.
//!
//! - `state`: one id's state machine ([`TxnMeta`]), pure: every transition takes `now`
//!   and returns the next state or the error a client sees, so it is unit-tested
//!   without a clock, an executor or a disk.
//! - `store`: [`TxnLog`], the shard's durable map id → state in a partition log of its
//!   own (`<data>/transactions/<shard>/`), as Kafka keeps `__transaction_state`: one
//!   record per state change, replayed at open, checkpointed by moving the log start.
//!
//! What is not here: writing markers to partitions and committing offsets to groups,
//! which cross shards; the engine (`src/engine/transactions.rs`) drives those between
//! the transitions (PrepareCommit → markers → offsets → CompleteCommit).

pub mod state;
mod store;

pub use state::{EndStep, InitArgs, InitStep};
pub use store::TxnLog;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most partitions one transaction may span.
pub const PARTITIONS_PER_TXN_MAX: usize = 10_000;
/// Most groups whose offsets one transaction may commit.
pub const GROUPS_PER_TXN_MAX: usize = 100;
/// Most pending offsets one transaction may hold, all groups together.
pub const OFFSETS_PER_TXN_MAX: usize = 10_000;
/// Longest offset metadata kept for a transactional commit (Kafka's
/// `offset.metadata.max.bytes` default, as plain commits).
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// Longest transactional id accepted (Kafka has none; ours bounds every record).
pub const TRANSACTIONAL_ID_MAX_BYTES: usize = 1024;
/// Longest topic name in a transaction (as the catalog's).
pub const TOPIC_NAME_MAX_BYTES: usize = 255;
/// An id whose last transaction completed and that has been idle this long may be
/// dropped (Kafka's `transactional.id.expiration.ms` default, 7 days).
pub const TRANSACTIONAL_ID_EXPIRATION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Default of the broker's largest transaction timeout (Kafka's
/// `transaction.max.timeout.ms`, `--max-transaction-timeout-ms`).
pub const MAX_TRANSACTION_TIMEOUT_MS_DEFAULT: i32 = 900_000;
/// Default cap on the transactional ids one shard owns
/// (`--max-transactional-ids-per-shard`).
pub const TRANSACTIONAL_IDS_PER_SHARD_DEFAULT: usize = 100_000;
/// Default segment size of a shard's transaction log.
pub const TXN_LOG_SEGMENT_BYTES_DEFAULT: u64 = 8 << 20;
/// Default size past which a shard's transaction log is checkpointed.
pub const TXN_LOG_COMPACT_BYTES_DEFAULT: u64 = 32 << 20;
/// Name of the directory (under the data dir) holding one log per shard.
pub const LOG_DIR: &str = "transactions";

/// Where a transaction stands (Kafka's transaction states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    /// Nothing begun since InitProducerId.
    Empty,
    /// Partitions or a group added; not ended.
    Ongoing,
    /// Commit decided and durable; markers and offsets being written.
    PrepareCommit,
    /// Abort decided and durable; markers being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnStatus {
    /// A completion is under way: markers may still be missing somewhere.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }
}

/// One offset a transaction commits for a group when it commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
}

/// One transactional id's state, as its coordinator holds it and logs it whole on
/// every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnStatus,
    /// Partitions of the current (or completing) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups added to the current transaction.
    pub groups: BTreeSet<String>,
    /// group → offsets committed by the current transaction, one per partition.
    pub pending: BTreeMap<String, Vec<PendingOffset>>,
    /// When the current transaction began (Unix ms); -1 when none is open.
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// The epoch the last InitProducerId replaced (-1: none), so that a client
    /// retrying a KIP-360 bump it never got the answer to is answered the current
    /// epoch instead of being fenced (Kafka's `lastProducerEpoch`).
    #[serde(default = "no_epoch")]
    pub last_epoch: i16,
}

fn no_epoch() -> i16 {
    -1
}

/// Why a transactional call was refused; each maps onto one engine error.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TxnError {
    /// Kafka INVALID_TXN_STATE.
    #[error("{0}")]
    InvalidTxnState(String),
    /// Kafka CONCURRENT_TRANSACTIONS: a completion is under way; retry.
    #[error("{0}")]
    ConcurrentTransactions(String),
    /// Kafka INVALID_PRODUCER_ID_MAPPING.
    #[error("{0}")]
    UnknownTransactionalId(String),
    /// Kafka INVALID_TRANSACTION_TIMEOUT.
    #[error("{0}")]
    InvalidTransactionTimeout(String),
    /// Kafka PRODUCER_FENCED / INVALID_PRODUCER_EPOCH.
    #[error("{0}")]
    ProducerFenced(String),
    /// Over one of this module's bounds; the text says which.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("transaction log I/O failed: {0}")]
    Io(String),
    /// The transaction log has no space left: retry once space is freed.
    #[error("transaction state cannot be stored: {0}")]
    StorageFull(String),
    /// A write or fdatasync of the transaction log failed: it is read-only until
    /// restart.
    #[error("transaction state cannot be stored: {0}")]
    StorageFailed(String),
}

/// Runs `fut` on a fresh glommio executor (tests only).
#[cfg(test)]
pub(crate) fn run_local<T>(fut: impl std::future::Future<Output = T>) -> T {
    let _ = crate::sys::raise_memlock_limit();
    let ex = glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap_or_else(|e| panic!("cannot start a glommio executor: {e}"));
    ex.run(fut)
}
