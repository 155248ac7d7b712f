//! AMQP reply codes, and engine errors as those codes: the one place the AMQP front end
//! maps them. A channel error closes one channel; a connection error the connection.

use crate::engine::EngineError;

pub const REPLY_SUCCESS: u16 = 200;
pub const CONTENT_TOO_LARGE: u16 = 311;
pub const NO_ROUTE: u16 = 312;
pub const CONNECTION_FORCED: u16 = 320;
pub const INVALID_PATH: u16 = 402;
pub const ACCESS_REFUSED: u16 = 403;
pub const NOT_FOUND: u16 = 404;
pub const RESOURCE_LOCKED: u16 = 405;
pub const PRECONDITION_FAILED: u16 = 406;
pub const FRAME_ERROR: u16 = 501;
pub const SYNTAX_ERROR: u16 = 502;
pub const COMMAND_INVALID: u16 = 503;
pub const CHANNEL_ERROR: u16 = 504;
pub const UNEXPECTED_FRAME: u16 = 505;
pub const RESOURCE_ERROR: u16 = 506;
pub const NOT_ALLOWED: u16 = 530;
pub const NOT_IMPLEMENTED: u16 = 540;
pub const INTERNAL_ERROR: u16 = 541;

/// The text RabbitMQ prefixes a reply with (clients show and some match on it).
pub fn code_name(code: u16) -> &'static str {
    match code {
        CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
        NO_ROUTE => "NO_ROUTE",
        CONNECTION_FORCED => "CONNECTION_FORCED",
        INVALID_PATH => "INVALID_PATH",
        ACCESS_REFUSED => "ACCESS_REFUSED",
        NOT_FOUND => "NOT_FOUND",
        RESOURCE_LOCKED => "RESOURCE_LOCKED",
        PRECONDITION_FAILED => "PRECONDITION_FAILED",
        FRAME_ERROR => "FRAME_ERROR",
        SYNTAX_ERROR => "SYNTAX_ERROR",
        COMMAND_INVALID => "COMMAND_INVALID",
        CHANNEL_ERROR => "CHANNEL_ERROR",
        UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
        RESOURCE_ERROR => "RESOURCE_ERROR",
        NOT_ALLOWED => "NOT_ALLOWED",
        NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        INTERNAL_ERROR => "INTERNAL_ERROR",
        _ => "OK",
    }
}

/// An error to report: its code, text, and the method that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpError {
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    pub fn new(code: u16, text: impl Into<String>) -> AmqpError {
        AmqpError {
            code,
            text: text.into(),
            class_id: 0,
            method_id: 0,
        }
    }

    pub fn at(mut self, (class_id, method_id): (u16, u16)) -> AmqpError {
        if self.class_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    /// Whether it closes the connection rather than one channel.
    pub fn is_hard(&self) -> bool {
        matches!(
            self.code,
            CONNECTION_FORCED
                | INVALID_PATH
                | FRAME_ERROR
                | SYNTAX_ERROR
                | COMMAND_INVALID
                | CHANNEL_ERROR
                | UNEXPECTED_FRAME
                | RESOURCE_ERROR
                | NOT_ALLOWED
                | NOT_IMPLEMENTED
                | INTERNAL_ERROR
        )
    }

    /// `CODE_NAME - text`, at most 255 bytes (a short string).
    pub fn reply_text(&self) -> String {
        let mut text = format!("{} - {}", code_name(self.code), self.text);
        if text.len() > 255 {
            let mut end = 255;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}

impl From<EngineError> for AmqpError {
    fn from(e: EngineError) -> AmqpError {
        crate::metrics::local::error(crate::metrics::Protocol::Amqp, e.metrics_index());
        let code = code(&e);
        AmqpError::new(code, e.to_string())
    }
}

pub fn code(e: &EngineError) -> u16 {
    match e {
        EngineError::UnknownTopic(_)
        | EngineError::UnknownPartition(_)
        | EngineError::UnknownQueue(_)
        | EngineError::UnknownExchange(_) => NOT_FOUND,
        EngineError::QueueMismatch(_)
        | EngineError::TopicExists(_)
        | EngineError::QueueFull(_)
        | EngineError::UnknownHandle(_)
        | EngineError::OffsetOutOfRange(_)
        | EngineError::InvalidRequest(_)
        | EngineError::InvalidTopic(_)
        | EngineError::InvalidPartitions(_)
        | EngineError::InvalidGroup(_)
        | EngineError::GroupNotEmpty(_) => PRECONDITION_FAILED,
        EngineError::PreconditionFailed(_) => PRECONDITION_FAILED,
        EngineError::AccessRefused(_) => ACCESS_REFUSED,
        EngineError::MessageTooLarge(_) => CONTENT_TOO_LARGE,
        EngineError::CorruptBatch(_)
        | EngineError::UnknownMember(_)
        | EngineError::IllegalGeneration(_)
        | EngineError::RebalanceInProgress(_)
        | EngineError::InvalidSessionTimeout(_)
        | EngineError::OutOfOrderSequence(_)
        | EngineError::ProducerFenced(_)
        | EngineError::InvalidTxnState(_)
        | EngineError::ConcurrentTransactions(_)
        | EngineError::UnknownTransactionalId(_)
        | EngineError::InvalidTransactionTimeout(_) => PRECONDITION_FAILED,
        EngineError::NotSupported(_) => NOT_IMPLEMENTED,
        EngineError::SubscriptionClosed | EngineError::ShuttingDown(_) => CONNECTION_FORCED,
        EngineError::Internal(_) => INTERNAL_ERROR,
        // "The server could not complete the method because it lacked sufficient
        // resources" (a connection error): reconnect and retry once space is freed.
        EngineError::StorageFull(_) => RESOURCE_ERROR,
        EngineError::StorageFailed(_) => INTERNAL_ERROR,
    }
}
