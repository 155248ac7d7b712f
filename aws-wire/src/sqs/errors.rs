//! SQS errors: one code, and how each protocol names it.
//!
//! botocore 1.43 (JSON) takes `Error.Code` from the `x-amzn-query-error` header (the
//! query protocol's code, `AWS.SimpleQueueService.NonExistentQueue`) and picks the
//! exception class from the body's `__type` (`QueueDoesNotExist`): both must be right
//! for `except client.exceptions.QueueDoesNotExist` to work. The query codes are those
//! of botocore 1.34.89's query model.

use crate::form::FormError;

/// Who is to blame, as SQS says it (`Type` in query errors, `SenderFault` in batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Sender,
    Receiver,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Sender => "Sender",
            Fault::Receiver => "Receiver",
        }
    }
}

/// Every error the SQS API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    MessageNotInflight,
    EmptyBatchRequest,
    TooManyEntriesInBatchRequest,
    BatchEntryIdsNotDistinct,
    InvalidBatchEntryId,
    BatchRequestTooLong,
    InvalidAttributeName,
    InvalidAttributeValue,
    InvalidMessageContents,
    OverLimit,
    UnsupportedOperation,
    InvalidParameterValue,
    MissingParameter,
    /// A message move task (or its source or destination queue) that does not exist.
    ResourceNotFound,
    /// No such action (or `X-Amz-Target`).
    UnknownAction,
    /// The request could not be read at all (bad JSON, bad form encoding).
    Malformed,
    /// The caller may not do this to this queue (an ACL denies it).
    AccessDenied,
    InternalFailure,
    ServiceUnavailable,
}

const SQS_NAMESPACE: &str = "com.amazonaws.sqs#";
const CORAL_NAMESPACE: &str = "com.amazon.coral.service#";

impl ErrorCode {
    /// The shape name: JSON `__type` after its namespace, and the `Code` of a failed
    /// batch entry.
    pub fn shape(self) -> &'static str {
        use ErrorCode::*;
        match self {
            QueueDoesNotExist => "QueueDoesNotExist",
            QueueNameExists => "QueueNameExists",
            ReceiptHandleIsInvalid => "ReceiptHandleIsInvalid",
            MessageNotInflight => "MessageNotInflight",
            EmptyBatchRequest => "EmptyBatchRequest",
            TooManyEntriesInBatchRequest => "TooManyEntriesInBatchRequest",
            BatchEntryIdsNotDistinct => "BatchEntryIdsNotDistinct",
            InvalidBatchEntryId => "InvalidBatchEntryId",
            BatchRequestTooLong => "BatchRequestTooLong",
            InvalidAttributeName => "InvalidAttributeName",
            InvalidAttributeValue => "InvalidAttributeValue",
            InvalidMessageContents => "InvalidMessageContents",
            OverLimit => "OverLimit",
            UnsupportedOperation => "UnsupportedOperation",
            InvalidParameterValue => "InvalidParameterValue",
            MissingParameter => "MissingParameter",
            ResourceNotFound => "ResourceNotFoundException",
            UnknownAction => "UnknownOperationException",
            Malformed => "SerializationException",
            AccessDenied => "AccessDeniedException",
            InternalFailure => "InternalFailure",
            ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The JSON body's `__type`.
    pub fn json_type(self) -> String {
        let namespace = match self {
            ErrorCode::UnknownAction | ErrorCode::Malformed | ErrorCode::AccessDenied => {
                CORAL_NAMESPACE
            }
            _ => SQS_NAMESPACE,
        };
        format!("{namespace}{}", self.shape())
    }

    /// The query protocol's `Code` (and the first half of `x-amzn-query-error`).
    pub fn query_code(self) -> &'static str {
        use ErrorCode::*;
        match self {
            QueueDoesNotExist => "AWS.SimpleQueueService.NonExistentQueue",
            QueueNameExists => "QueueAlreadyExists",
            MessageNotInflight => "AWS.SimpleQueueService.MessageNotInflight",
            EmptyBatchRequest => "AWS.SimpleQueueService.EmptyBatchRequest",
            TooManyEntriesInBatchRequest => "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            BatchEntryIdsNotDistinct => "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            InvalidBatchEntryId => "AWS.SimpleQueueService.InvalidBatchEntryId",
            BatchRequestTooLong => "AWS.SimpleQueueService.BatchRequestTooLong",
            UnsupportedOperation => "AWS.SimpleQueueService.UnsupportedOperation",
            UnknownAction => "InvalidAction",
            Malformed => "MalformedQueryString",
            AccessDenied => "AccessDenied",
            ReceiptHandleIsInvalid
            | InvalidAttributeName
            | InvalidAttributeValue
            | InvalidMessageContents
            | OverLimit
            | InvalidParameterValue
            | MissingParameter
            | ResourceNotFound
            | InternalFailure
            | ServiceUnavailable => self.shape(),
        }
    }

    pub fn status(self) -> u16 {
        match self {
            ErrorCode::ReceiptHandleIsInvalid | ErrorCode::ResourceNotFound => 404,
            ErrorCode::OverLimit | ErrorCode::AccessDenied => 403,
            ErrorCode::InternalFailure => 500,
            ErrorCode::ServiceUnavailable => 503,
            _ => 400,
        }
    }

    pub fn fault(self) -> Fault {
        match self {
            ErrorCode::InternalFailure | ErrorCode::ServiceUnavailable => Fault::Receiver,
            _ => Fault::Sender,
        }
    }

    /// The `x-amzn-query-error` header's value: `<query code>;<Sender|Receiver>`.
    pub fn query_error_header(self) -> String {
        format!("{};{}", self.query_code(), self.fault().name())
    }
}

/// An error answer: what went wrong and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.shape())]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> WireError {
        WireError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> WireError {
        WireError::new(ErrorCode::InvalidParameterValue, message)
    }

    pub fn missing(parameter: &str) -> WireError {
        WireError::new(
            ErrorCode::MissingParameter,
            format!("The request must contain the parameter {parameter}."),
        )
    }
}

impl From<FormError> for WireError {
    /// A form that cannot be read is malformed; one that reads but breaks a rule (index
    /// range, a value's type) is an invalid parameter. The query decoder maps an entry
    /// index past the batch limit to TooManyEntriesInBatchRequest itself.
    fn from(e: FormError) -> WireError {
        let code = match e {
            FormError::Malformed(_) | FormError::Duplicate(_) | FormError::TooManyPairs => {
                ErrorCode::Malformed
            }
            FormError::Index { .. } | FormError::Invalid { .. } => ErrorCode::InvalidParameterValue,
        };
        WireError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[rustfmt::skip]
    fn codes_follow_the_table_of_both_models() {
        use ErrorCode::*;
        let table = [
            (QueueDoesNotExist, "com.amazonaws.sqs#QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue;Sender", 400),
            (QueueNameExists, "com.amazonaws.sqs#QueueNameExists", "QueueAlreadyExists;Sender", 400),
            (ReceiptHandleIsInvalid, "com.amazonaws.sqs#ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid;Sender", 404),
            (MessageNotInflight, "com.amazonaws.sqs#MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight;Sender", 400),
            (EmptyBatchRequest, "com.amazonaws.sqs#EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest;Sender", 400),
            (TooManyEntriesInBatchRequest, "com.amazonaws.sqs#TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest;Sender", 400),
            (BatchEntryIdsNotDistinct, "com.amazonaws.sqs#BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct;Sender", 400),
            (InvalidBatchEntryId, "com.amazonaws.sqs#InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId;Sender", 400),
            (BatchRequestTooLong, "com.amazonaws.sqs#BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong;Sender", 400),
            (InvalidAttributeName, "com.amazonaws.sqs#InvalidAttributeName", "InvalidAttributeName;Sender", 400),
            (InvalidAttributeValue, "com.amazonaws.sqs#InvalidAttributeValue", "InvalidAttributeValue;Sender", 400),
            (InvalidMessageContents, "com.amazonaws.sqs#InvalidMessageContents", "InvalidMessageContents;Sender", 400),
            (OverLimit, "com.amazonaws.sqs#OverLimit", "OverLimit;Sender", 403),
            (UnsupportedOperation, "com.amazonaws.sqs#UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation;Sender", 400),
            (InvalidParameterValue, "com.amazonaws.sqs#InvalidParameterValue", "InvalidParameterValue;Sender", 400),
            (MissingParameter, "com.amazonaws.sqs#MissingParameter", "MissingParameter;Sender", 400),
            (ResourceNotFound, "com.amazonaws.sqs#ResourceNotFoundException", "ResourceNotFoundException;Sender", 404),
            (UnknownAction, "com.amazon.coral.service#UnknownOperationException", "InvalidAction;Sender", 400),
            (Malformed, "com.amazon.coral.service#SerializationException", "MalformedQueryString;Sender", 400),
            (AccessDenied, "com.amazon.coral.service#AccessDeniedException", "AccessDenied;Sender", 403),
            (InternalFailure, "com.amazonaws.sqs#InternalFailure", "InternalFailure;Receiver", 500),
            (ServiceUnavailable, "com.amazonaws.sqs#ServiceUnavailable", "ServiceUnavailable;Receiver", 503),
        ];
        for (code, json, header, status) in table {
            assert_eq!(code.json_type(), json);
            assert_eq!(code.query_error_header(), header);
            assert_eq!(code.status(), status, "{code:?}");
        }
    }

    #[test]
    fn form_errors_map_to_malformed_or_invalid() {
        let e: WireError = FormError::Duplicate("A".into()).into();
        assert_eq!(e.code, ErrorCode::Malformed);
        let e: WireError = FormError::Index {
            prefix: "AttributeName".into(),
            index: "0".into(),
            max: 256,
        }
        .into();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(e.message.contains("AttributeName.0"));
    }
}
