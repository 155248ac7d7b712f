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

impl LogError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> LogError {
        LogError::Io {
            context: context.into(),
            source,
        }
    }
}
