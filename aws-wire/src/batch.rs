//! What a batch call answers, per entry: SQS's SendMessageBatch, DeleteMessageBatch and
//! ChangeMessageVisibilityBatch, and SNS's PublishBatch. Each protocol's module names
//! these with its own error codes (`sqs::BatchError`, `sns::BatchError`).

/// A failed batch entry, as the answer lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError<C> {
    pub id: String,
    pub sender_fault: bool,
    pub code: C,
    pub message: String,
}

/// What a batch answers: the entries that succeeded and those that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResult<T, C> {
    pub successful: Vec<T>,
    pub failed: Vec<BatchError<C>>,
}

impl<T, C> Default for BatchResult<T, C> {
    fn default() -> Self {
        BatchResult {
            successful: Vec::new(),
            failed: Vec::new(),
        }
    }
}
