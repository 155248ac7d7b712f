//! Errors of the partition log. Each says what happened and where.

use std::path::PathBuf;

use crate::batch::BatchError;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed; `context` names the operation and the file.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The request held a malformed batch; nothing of it was written.
    #[error("rejected record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("offset {requested} is out of range: the log holds offsets from {start} up to {end} (exclusive)")]
    OffsetOutOfRange {
        requested: i64,
        start: i64,
        end: i64,
    },
    /// Data read back from disk failed its length, offset or CRC32C check.
    #[error("corrupt log data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// Found at open: a file holds damage that recovery may not cut away, because
    /// acknowledged data (or the record of it) is in it or after it. The partition is
    /// not opened and the broker does not start; `advice` says what the operator can do.
    #[error("{} is damaged at byte {position}: {reason}; acknowledged data may be lost, so the broker will not start ({advice})", path.display())]
    Damaged {
        path: PathBuf,
        position: u64,
        reason: String,
        advice: String,
    },
    #[error("the partition log is closed")]
    Closed,
    #[error("record batch of {size} bytes is larger than the log's limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    /// The filesystem has no space (or quota) left for what the log must write. Nothing
    /// of the refused request was accepted; what the log had accepted stays queued and is
    /// written as soon as space is freed, and appends resume by themselves then.
    #[error("no space left on the device for partition log {}: {reason} (appends are refused until space is freed; they resume by themselves)", dir.display())]
    StorageFull { dir: PathBuf, reason: String },
    /// A write or fdatasync failed: what is on disk after the durable offset is
    /// unknown, so the log accepts no more appends or durable waits (reads of what is
    /// durable still work) until a restart recovers it from disk.
    #[error("partition log {} is read-only after a failed write or fdatasync ({reason}); nothing it carried was acknowledged as durable; restart the broker to recover it from disk", dir.display())]
    ReadOnly { dir: PathBuf, reason: String },
    /// An idempotent producer's batch does not follow its previous one.
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// A batch from an epoch older than the producer's current one.
    #[error("producer {producer_id}: epoch {epoch} is fenced by epoch {current}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
}

/// What a storage failure means for the client, beyond its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// Out of space or quota: retry once an operator frees space.
    Full,
    /// An I/O error: the data's state is unknown; the log stays read-only.
    Failed,
}

/// Whether an I/O error says the filesystem is out of space (ENOSPC) or quota (EDQUOT).
pub fn is_out_of_space(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl LogError {
    /// The storage fault this error reports, if it is one (`None` for refusals of the
    /// request itself: bad batch, offset out of range, ...).
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self {
            LogError::StorageFull { .. } => Some(StorageFault::Full),
            LogError::Io { source, .. } if is_out_of_space(source) => Some(StorageFault::Full),
            LogError::ReadOnly { .. } | LogError::Io { .. } => Some(StorageFault::Failed),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> LogError {
        LogError::Io {
            context: context.into(),
            source,
        }
    }
}
