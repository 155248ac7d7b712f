//! The SQS API as data: the actions served, each request and answer, and the limits
//! SQS documents. Both protocols decode into and encode from these types, so a front
//! end handles one `Request` whatever wire it came on.

use std::collections::BTreeMap;

use super::errors::{ErrorCode, WireError};

/// Most entries in one batch request.
pub const BATCH_ENTRIES_MAX: usize = 10;
/// Most message attributes on one message.
pub const MESSAGE_ATTRIBUTES_MAX: usize = 10;
/// Longest queue name.
pub const QUEUE_NAME_MAX: usize = 80;
/// Longest batch entry id.
pub const BATCH_ID_MAX: usize = 80;
/// Longest message attribute name.
pub const ATTRIBUTE_NAME_MAX: usize = 256;
/// Most names in one list of attribute names (AttributeNames, MessageAttributeNames).
pub const ATTRIBUTE_NAMES_MAX: u32 = 256;
/// Most queue attributes in one CreateQueue or SetQueueAttributes (SQS has about 20).
pub const QUEUE_ATTRIBUTES_MAX: u32 = 64;
/// Largest message (body and attributes), and largest batch (all entries together).
pub const MESSAGE_BYTES_MAX: usize = 262_144;
/// DelaySeconds range: 0 to 15 minutes.
pub const DELAY_SECONDS_MAX: u32 = 900;
/// VisibilityTimeout range: 0 to 12 hours.
pub const VISIBILITY_TIMEOUT_MAX: u32 = 43_200;
/// WaitTimeSeconds range: 0 to 20 seconds.
pub const WAIT_TIME_SECONDS_MAX: u32 = 20;
/// MaxNumberOfMessages range: 1 to 10.
pub const RECEIVE_MESSAGES_MAX: u32 = 10;
/// ListQueues MaxResults range: 1 to 1000 (also the most listed without MaxResults).
pub const LIST_QUEUES_MAX: u32 = 1000;
/// The message system attributes SQS takes: AWSTraceHeader, a String.
pub const TRACE_HEADER_ATTRIBUTE: &str = "AWSTraceHeader";
/// Most message system attributes on one message (only AWSTraceHeader exists).
pub const SYSTEM_ATTRIBUTES_MAX: usize = 1;
/// Longest AWSTraceHeader value (X-Ray headers are about 100 bytes; SQS does not count
/// it in the message size, so it has a bound of its own).
pub const TRACE_HEADER_MAX: usize = 8192;
/// Longest MessageGroupId, MessageDeduplicationId and ReceiveRequestAttemptId.
pub const FIFO_ID_MAX: usize = 128;
/// The suffix of a FIFO queue's name.
pub const FIFO_SUFFIX: &str = ".fifo";
/// Most tags on one queue, and in one request.
pub const TAGS_MAX: usize = 50;
/// Longest tag key and value.
pub const TAG_KEY_MAX: usize = 128;
pub const TAG_VALUE_MAX: usize = 256;
/// StartMessageMoveTask's MaxNumberOfMessagesPerSecond range: 1 to 500.
pub const MOVE_RATE_MAX: u32 = 500;
/// ListMessageMoveTasks' MaxResults range: 1 to 10 (default 1).
pub const MOVE_TASKS_LISTED_MAX: u32 = 10;

/// The actions this slice serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CreateQueue,
    GetQueueUrl,
    ListQueues,
    DeleteQueue,
    PurgeQueue,
    GetQueueAttributes,
    SetQueueAttributes,
    SendMessage,
    SendMessageBatch,
    ReceiveMessage,
    DeleteMessage,
    DeleteMessageBatch,
    ChangeMessageVisibility,
    ChangeMessageVisibilityBatch,
    TagQueue,
    UntagQueue,
    ListQueueTags,
    ListDeadLetterSourceQueues,
    StartMessageMoveTask,
    CancelMessageMoveTask,
    ListMessageMoveTasks,
}

impl Action {
    pub const ALL: [Action; 21] = [
        Action::CreateQueue,
        Action::GetQueueUrl,
        Action::ListQueues,
        Action::DeleteQueue,
        Action::PurgeQueue,
        Action::GetQueueAttributes,
        Action::SetQueueAttributes,
        Action::SendMessage,
        Action::SendMessageBatch,
        Action::ReceiveMessage,
        Action::DeleteMessage,
        Action::DeleteMessageBatch,
        Action::ChangeMessageVisibility,
        Action::ChangeMessageVisibilityBatch,
        Action::TagQueue,
        Action::UntagQueue,
        Action::ListQueueTags,
        Action::ListDeadLetterSourceQueues,
        Action::StartMessageMoveTask,
        Action::CancelMessageMoveTask,
        Action::ListMessageMoveTasks,
    ];

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::CreateQueue => "CreateQueue",
            Action::GetQueueUrl => "GetQueueUrl",
            Action::ListQueues => "ListQueues",
            Action::DeleteQueue => "DeleteQueue",
            Action::PurgeQueue => "PurgeQueue",
            Action::GetQueueAttributes => "GetQueueAttributes",
            Action::SetQueueAttributes => "SetQueueAttributes",
            Action::SendMessage => "SendMessage",
            Action::SendMessageBatch => "SendMessageBatch",
            Action::ReceiveMessage => "ReceiveMessage",
            Action::DeleteMessage => "DeleteMessage",
            Action::DeleteMessageBatch => "DeleteMessageBatch",
            Action::ChangeMessageVisibility => "ChangeMessageVisibility",
            Action::ChangeMessageVisibilityBatch => "ChangeMessageVisibilityBatch",
            Action::TagQueue => "TagQueue",
            Action::UntagQueue => "UntagQueue",
            Action::ListQueueTags => "ListQueueTags",
            Action::ListDeadLetterSourceQueues => "ListDeadLetterSourceQueues",
            Action::StartMessageMoveTask => "StartMessageMoveTask",
            Action::CancelMessageMoveTask => "CancelMessageMoveTask",
            Action::ListMessageMoveTasks => "ListMessageMoveTasks",
        }
    }
}

/// SQS actions that exist but this slice does not serve: answered UnsupportedOperation
/// rather than UnknownAction, so the user learns it is a gap, not a typo.
pub const UNSUPPORTED_ACTIONS: &[&str] = &["AddPermission", "RemovePermission"];

/// A message attribute's value, by transport type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// `String*` and `Number*` types.
    String(String),
    /// `Binary*` types: the raw bytes (base64 only on the wire).
    Binary(Vec<u8>),
}

/// A message attribute: name, full DataType (custom label included, `Number.float`),
/// value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    pub name: String,
    pub data_type: String,
    pub value: AttributeValue,
}

/// A failed batch entry, as the answer lists it.
pub type BatchError = crate::batch::BatchError<ErrorCode>;

impl BatchError {
    pub fn new(id: &str, error: WireError) -> BatchError {
        BatchError {
            id: id.to_owned(),
            sender_fault: error.code.fault() == super::errors::Fault::Sender,
            code: error.code,
            message: error.message,
        }
    }
}

/// A batch entry as decoded: valid, or already failed (the call goes on for the rest).
pub type Entry<T> = Result<T, BatchError>;

/// What a batch answers: the entries that succeeded and those that failed.
pub type BatchResult<T> = crate::batch::BatchResult<T, ErrorCode>;

/// A decoded request: one variant per action, each checked against the limits above.
/// Queue attribute names and values are left to the front end (they map onto the
/// queue's configuration); everything that is pure wire is checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    CreateQueue(CreateQueue),
    GetQueueUrl(GetQueueUrl),
    ListQueues(ListQueues),
    DeleteQueue(QueueRef),
    PurgeQueue(QueueRef),
    GetQueueAttributes(GetQueueAttributes),
    SetQueueAttributes(SetQueueAttributes),
    SendMessage(SendMessage),
    SendMessageBatch(SendMessageBatch),
    ReceiveMessage(ReceiveMessage),
    DeleteMessage(DeleteMessage),
    DeleteMessageBatch(DeleteMessageBatch),
    ChangeMessageVisibility(ChangeMessageVisibility),
    ChangeMessageVisibilityBatch(ChangeMessageVisibilityBatch),
    TagQueue(TagQueue),
    UntagQueue(UntagQueue),
    ListQueueTags(QueueRef),
    ListDeadLetterSourceQueues(ListDeadLetterSourceQueues),
    StartMessageMoveTask(StartMessageMoveTask),
    CancelMessageMoveTask(CancelMessageMoveTask),
    ListMessageMoveTasks(ListMessageMoveTasks),
}

impl Request {
    pub fn action(&self) -> Action {
        match self {
            Request::CreateQueue(_) => Action::CreateQueue,
            Request::GetQueueUrl(_) => Action::GetQueueUrl,
            Request::ListQueues(_) => Action::ListQueues,
            Request::DeleteQueue(_) => Action::DeleteQueue,
            Request::PurgeQueue(_) => Action::PurgeQueue,
            Request::GetQueueAttributes(_) => Action::GetQueueAttributes,
            Request::SetQueueAttributes(_) => Action::SetQueueAttributes,
            Request::SendMessage(_) => Action::SendMessage,
            Request::SendMessageBatch(_) => Action::SendMessageBatch,
            Request::ReceiveMessage(_) => Action::ReceiveMessage,
            Request::DeleteMessage(_) => Action::DeleteMessage,
            Request::DeleteMessageBatch(_) => Action::DeleteMessageBatch,
            Request::ChangeMessageVisibility(_) => Action::ChangeMessageVisibility,
            Request::ChangeMessageVisibilityBatch(_) => Action::ChangeMessageVisibilityBatch,
            Request::TagQueue(_) => Action::TagQueue,
            Request::UntagQueue(_) => Action::UntagQueue,
            Request::ListQueueTags(_) => Action::ListQueueTags,
            Request::ListDeadLetterSourceQueues(_) => Action::ListDeadLetterSourceQueues,
            Request::StartMessageMoveTask(_) => Action::StartMessageMoveTask,
            Request::CancelMessageMoveTask(_) => Action::CancelMessageMoveTask,
            Request::ListMessageMoveTasks(_) => Action::ListMessageMoveTasks,
        }
    }
}

/// CreateQueue: the name is checked (`check_queue_name`), and the tags (`check_tags`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateQueue {
    pub queue_name: String,
    /// Queue attribute name → value, as sent (names not checked here).
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// StartMessageMoveTask: the source (a dead-letter queue's ARN), where to (`None`: each
/// message back to the queue it came from), how fast (in `1..=MOVE_RATE_MAX`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartMessageMoveTask {
    pub source_arn: String,
    pub destination_arn: Option<String>,
    pub max_per_second: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelMessageMoveTask {
    pub task_handle: String,
}

/// ListMessageMoveTasks; `max_results` in `1..=MOVE_TASKS_LISTED_MAX` (default 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMessageMoveTasks {
    pub source_arn: String,
    pub max_results: u32,
}

/// One message move task as ListMessageMoveTasks answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveTaskEntry {
    /// Only while it runs (SQS's rule).
    pub task_handle: Option<String>,
    /// RUNNING, COMPLETED, CANCELLING, CANCELLED or FAILED.
    pub status: String,
    pub source_arn: String,
    pub destination_arn: Option<String>,
    pub max_per_second: Option<u32>,
    pub moved: u64,
    pub to_move: u64,
    pub failure_reason: Option<String>,
    pub started_ms: i64,
}

/// TagQueue: 1 to `TAGS_MAX` tags, each checked (`check_tags`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagQueue {
    pub queue_url: String,
    pub tags: BTreeMap<String, String>,
}

/// UntagQueue: 1 to `TAGS_MAX` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntagQueue {
    pub queue_url: String,
    pub tag_keys: Vec<String>,
}

/// ListDeadLetterSourceQueues; `max_results` is in `1..=LIST_QUEUES_MAX` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDeadLetterSourceQueues {
    pub queue_url: String,
    pub max_results: Option<u32>,
    /// As sent; `receipt::parse_next_token` reads it.
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetQueueUrl {
    /// As sent: an invalid name simply names no queue.
    pub queue_name: String,
    pub queue_owner_account_id: Option<String>,
}

/// ListQueues; `max_results` is in `1..=LIST_QUEUES_MAX` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQueues {
    pub queue_name_prefix: Option<String>,
    pub max_results: Option<u32>,
    /// As sent; `receipt::parse_next_token` reads it.
    pub next_token: Option<String>,
}

/// DeleteQueue and PurgeQueue: only the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    pub queue_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetQueueAttributes {
    pub queue_url: String,
    /// As sent (`All`, `VisibilityTimeout`, …); at most `ATTRIBUTE_NAMES_MAX`.
    pub attribute_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetQueueAttributes {
    pub queue_url: String,
    pub attributes: BTreeMap<String, String>,
}

/// SendMessage, fully checked: body characters (`attributes::check_body`), attributes
/// (`attributes::validate`), DelaySeconds range, size within `MESSAGE_BYTES_MAX`. The
/// queue's own MaximumMessageSize is the front end's to check (`attributes::message_size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    pub queue_url: String,
    pub message: SendEntry,
}

/// One message to send (SendMessage, or one SendMessageBatch entry; `id` is `""` for
/// SendMessage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendEntry {
    pub id: String,
    pub body: String,
    /// `None`: the queue's DelaySeconds applies. In `0..=DELAY_SECONDS_MAX`.
    pub delay_seconds: Option<u32>,
    /// Valid (`attributes::validate`), sorted by name.
    pub attributes: Vec<MessageAttribute>,
    /// MessageGroupId (`check_fifo_id`); whether the queue takes one is the front end's.
    pub group_id: Option<String>,
    /// MessageDeduplicationId (`check_fifo_id`).
    pub dedup_id: Option<String>,
    /// MessageSystemAttributes: at most AWSTraceHeader, a String of at most
    /// `TRACE_HEADER_MAX` bytes.
    pub system_attributes: Vec<MessageAttribute>,
}

/// SendMessageBatch: the call-level rules (1..=10 entries, distinct valid ids, total
/// size) held; each entry is checked alone, a failed one answered in `Failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessageBatch {
    pub queue_url: String,
    pub entries: Vec<Entry<SendEntry>>,
}

/// ReceiveMessage with its ranges checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveMessage {
    pub queue_url: String,
    /// AttributeNames and MessageSystemAttributeNames together, as sent (`All`,
    /// `SentTimestamp`, …; names not known are the front end's to ignore).
    pub attribute_names: Vec<String>,
    /// Which message attributes to return (MessageAttributeNames).
    pub message_attributes: super::attributes::AttributeFilter,
    /// MaxNumberOfMessages, default 1, in `1..=RECEIVE_MESSAGES_MAX`.
    pub max_messages: u32,
    /// In `0..=VISIBILITY_TIMEOUT_MAX`; `None`: the queue's.
    pub visibility_timeout: Option<u32>,
    /// In `0..=WAIT_TIME_SECONDS_MAX`; `None`: the queue's ReceiveMessageWaitTimeSeconds.
    pub wait_time_seconds: Option<u32>,
    /// ReceiveRequestAttemptId (`check_fifo_id`): a retried receive of a FIFO queue.
    pub receive_request_attempt_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteMessage {
    pub queue_url: String,
    /// As sent; `receipt::Receipt::decode` reads it.
    pub receipt_handle: String,
}

/// One DeleteMessageBatch entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteEntry {
    pub id: String,
    pub receipt_handle: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteMessageBatch {
    pub queue_url: String,
    pub entries: Vec<Entry<DeleteEntry>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMessageVisibility {
    pub queue_url: String,
    pub receipt_handle: String,
    /// In `0..=VISIBILITY_TIMEOUT_MAX`.
    pub visibility_timeout: u32,
}

/// One ChangeMessageVisibilityBatch entry (`id` is `""` for the single call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibilityEntry {
    pub id: String,
    pub receipt_handle: String,
    /// In `0..=VISIBILITY_TIMEOUT_MAX`.
    pub visibility_timeout: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMessageVisibilityBatch {
    pub queue_url: String,
    pub entries: Vec<Entry<VisibilityEntry>>,
}

/// An answer: one variant per action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    CreateQueue {
        queue_url: String,
    },
    GetQueueUrl {
        queue_url: String,
    },
    ListQueues {
        queue_urls: Vec<String>,
        next_token: Option<String>,
    },
    DeleteQueue,
    PurgeQueue,
    GetQueueAttributes {
        /// Name → value, in the order to answer them.
        attributes: Vec<(String, String)>,
    },
    SetQueueAttributes,
    SendMessage(SentMessage),
    SendMessageBatch(BatchResult<SentMessage>),
    ReceiveMessage {
        messages: Vec<ReceivedMessage>,
    },
    DeleteMessage,
    /// The ids of the entries that succeeded.
    DeleteMessageBatch(BatchResult<String>),
    ChangeMessageVisibility,
    ChangeMessageVisibilityBatch(BatchResult<String>),
    TagQueue,
    UntagQueue,
    ListQueueTags {
        tags: Vec<(String, String)>,
    },
    ListDeadLetterSourceQueues {
        queue_urls: Vec<String>,
        next_token: Option<String>,
    },
    StartMessageMoveTask {
        task_handle: String,
    },
    CancelMessageMoveTask {
        moved: u64,
    },
    ListMessageMoveTasks {
        results: Vec<MoveTaskEntry>,
    },
}

impl Response {
    pub fn action(&self) -> Action {
        match self {
            Response::CreateQueue { .. } => Action::CreateQueue,
            Response::GetQueueUrl { .. } => Action::GetQueueUrl,
            Response::ListQueues { .. } => Action::ListQueues,
            Response::DeleteQueue => Action::DeleteQueue,
            Response::PurgeQueue => Action::PurgeQueue,
            Response::GetQueueAttributes { .. } => Action::GetQueueAttributes,
            Response::SetQueueAttributes => Action::SetQueueAttributes,
            Response::SendMessage(_) => Action::SendMessage,
            Response::SendMessageBatch(_) => Action::SendMessageBatch,
            Response::ReceiveMessage { .. } => Action::ReceiveMessage,
            Response::DeleteMessage => Action::DeleteMessage,
            Response::DeleteMessageBatch(_) => Action::DeleteMessageBatch,
            Response::ChangeMessageVisibility => Action::ChangeMessageVisibility,
            Response::ChangeMessageVisibilityBatch(_) => Action::ChangeMessageVisibilityBatch,
            Response::TagQueue => Action::TagQueue,
            Response::UntagQueue => Action::UntagQueue,
            Response::ListQueueTags { .. } => Action::ListQueueTags,
            Response::ListDeadLetterSourceQueues { .. } => Action::ListDeadLetterSourceQueues,
            Response::StartMessageMoveTask { .. } => Action::StartMessageMoveTask,
            Response::CancelMessageMoveTask { .. } => Action::CancelMessageMoveTask,
            Response::ListMessageMoveTasks { .. } => Action::ListMessageMoveTasks,
        }
    }
}

/// A sent message (SendMessage; one SendMessageBatch entry, whose `id` it echoes;
/// `""` for SendMessage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub id: String,
    pub message_id: String,
    pub md5_of_message_body: String,
    /// `None` when the message has no attributes.
    pub md5_of_message_attributes: Option<String>,
    /// `None` when the message has no system attributes.
    pub md5_of_message_system_attributes: Option<String>,
    /// FIFO queues: the message's SequenceNumber.
    pub sequence_number: Option<String>,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub md5_of_body: String,
    pub body: String,
    /// System attributes (SentTimestamp, …), name → value.
    pub attributes: Vec<(String, String)>,
    /// Over `message_attributes` (those returned); `None` when there are none.
    pub md5_of_message_attributes: Option<String>,
    pub message_attributes: Vec<MessageAttribute>,
}

/// A queue name SQS accepts: 1 to 80 of `[A-Za-z0-9_-]`, where a FIFO queue's ends in
/// `.fifo` (counted in the 80).
pub fn check_queue_name(name: &str) -> Result<(), WireError> {
    let base = name.strip_suffix(FIFO_SUFFIX).unwrap_or(name);
    let valid = !base.is_empty()
        && name.len() <= QUEUE_NAME_MAX
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(WireError::invalid(format!(
            "Can only include alphanumeric characters, hyphens, or underscores (and a final {FIFO_SUFFIX} for a FIFO queue). 1 to {QUEUE_NAME_MAX} in length (queue name {name:?})"
        )))
    }
}

/// A MessageGroupId, MessageDeduplicationId or ReceiveRequestAttemptId: 1 to 128 of the
/// printable ASCII characters other than space (SQS's rule).
pub fn check_fifo_id(parameter: &str, id: &str) -> Result<(), WireError> {
    let valid = (1..=FIFO_ID_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(WireError::invalid(format!(
            "Value {id:?} for parameter {parameter} is invalid. Reason: it must be 1 to {FIFO_ID_MAX} printable ASCII characters without spaces."
        )))
    }
}

/// Tags as SQS takes them: at most `TAGS_MAX`, keys 1 to `TAG_KEY_MAX` bytes and not
/// starting with the reserved `aws:`, values at most `TAG_VALUE_MAX` bytes.
pub fn check_tags<'a>(
    count: usize,
    tags: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<(), WireError> {
    if count > TAGS_MAX {
        return Err(WireError::invalid(format!(
            "Too many tags: {count}; a queue carries at most {TAGS_MAX}."
        )));
    }
    for (key, value) in tags {
        if key.is_empty() || key.len() > TAG_KEY_MAX || key.to_ascii_lowercase().starts_with("aws:")
        {
            return Err(WireError::invalid(format!(
                "Tag key {key:?} is invalid: 1 to {TAG_KEY_MAX} bytes, not starting with aws:."
            )));
        }
        if value.is_some_and(|v| v.len() > TAG_VALUE_MAX) {
            return Err(WireError::invalid(format!(
                "The value of tag {key:?} is longer than {TAG_VALUE_MAX} bytes."
            )));
        }
    }
    Ok(())
}

/// A batch entry id SQS accepts: 1 to 80 of `[A-Za-z0-9_-]`.
pub fn valid_batch_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= BATCH_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_by_name() {
        for action in Action::ALL {
            assert_eq!(Action::from_name(action.name()), Some(action));
        }
        assert_eq!(Action::from_name("createqueue"), None);
        assert_eq!(Action::from_name("AddPermission"), None);
    }

    #[test]
    fn queue_names_are_1_to_80_of_the_allowed_characters() {
        assert!(check_queue_name("a").is_ok());
        assert!(check_queue_name("Orders_2-x").is_ok());
        assert!(check_queue_name(&"q".repeat(80)).is_ok());
        for bad in ["", "bad name!", "a.b", "é", "a/b"] {
            let e = check_queue_name(bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        }
        assert!(check_queue_name(&"q".repeat(81)).is_err());
        assert!(check_queue_name("orders.fifo").is_ok());
        assert!(check_queue_name(&format!("{}.fifo", "q".repeat(75))).is_ok());
        for bad in [
            ".fifo",
            "a.b.fifo",
            "fifo.",
            &format!("{}.fifo", "q".repeat(76)),
        ] {
            assert!(check_queue_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fifo_ids_are_1_to_128_printable_characters() {
        assert!(check_fifo_id("MessageGroupId", "a-B_9!~{}").is_ok());
        assert!(check_fifo_id("MessageGroupId", &"g".repeat(128)).is_ok());
        for bad in ["", "a b", "é", "tab\t", &"g".repeat(129)] {
            let e = check_fifo_id("MessageGroupId", bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        }
    }

    #[test]
    fn batch_ids_are_1_to_80_of_the_allowed_characters() {
        assert!(valid_batch_id("a-1_B"));
        assert!(valid_batch_id(&"i".repeat(80)));
        assert!(!valid_batch_id(&"i".repeat(81)));
        assert!(!valid_batch_id(""));
        assert!(!valid_batch_id("a b"));
        assert!(!valid_batch_id("a.b"));
    }

    #[test]
    fn batch_errors_carry_the_fault_of_their_code() {
        let e = BatchError::new("x", WireError::invalid("no"));
        assert!(e.sender_fault);
        let e = BatchError::new("y", WireError::new(ErrorCode::InternalFailure, "oops"));
        assert!(!e.sender_fault);
    }
}
