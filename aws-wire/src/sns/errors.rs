//! SNS errors: one code, and how the query protocol names it.
//!
//! botocore picks the exception class from the XML `<Code>`, looked up among the codes
//! its SNS model gives the error shapes (`NotFound` → `NotFoundException`,
//! `ParameterValueInvalid` → `InvalidParameterValueException`), so the codes here are
//! exactly the model's; `InvalidAction` and `MalformedQueryString` are the generic
//! query-protocol codes (botocore raises a plain `ClientError` for them).

use crate::form::FormError;
use crate::sqs::Fault;

/// Every error the SNS API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A topic or subscription that does not exist.
    NotFound,
    /// TagResource and friends on a resource that does not exist.
    ResourceNotFound,
    InvalidParameter,
    /// A message attribute or value SNS refuses (`ParameterValueInvalid` on the wire).
    InvalidParameterValue,
    AuthorizationError,
    InternalError,
    Throttled,
    SubscriptionLimitExceeded,
    TopicLimitExceeded,
    FilterPolicyLimitExceeded,
    TagLimitExceeded,
    InvalidSecurity,
    EmptyBatchRequest,
    TooManyEntriesInBatchRequest,
    BatchEntryIdsNotDistinct,
    InvalidBatchEntryId,
    BatchRequestTooLong,
    ValidationException,
    /// No such action, or one SNS has that this broker does not serve.
    InvalidAction,
    /// The form could not be read at all.
    MalformedQueryString,
    ServiceUnavailable,
}

impl ErrorCode {
    /// The `<Code>` of the error document, and of a failed PublishBatch entry.
    pub fn query_code(self) -> &'static str {
        use ErrorCode::*;
        match self {
            NotFound => "NotFound",
            ResourceNotFound => "ResourceNotFound",
            InvalidParameter => "InvalidParameter",
            InvalidParameterValue => "ParameterValueInvalid",
            AuthorizationError => "AuthorizationError",
            InternalError => "InternalError",
            Throttled => "Throttled",
            SubscriptionLimitExceeded => "SubscriptionLimitExceeded",
            TopicLimitExceeded => "TopicLimitExceeded",
            FilterPolicyLimitExceeded => "FilterPolicyLimitExceeded",
            TagLimitExceeded => "TagLimitExceeded",
            InvalidSecurity => "InvalidSecurity",
            EmptyBatchRequest => "EmptyBatchRequest",
            TooManyEntriesInBatchRequest => "TooManyEntriesInBatchRequest",
            BatchEntryIdsNotDistinct => "BatchEntryIdsNotDistinct",
            InvalidBatchEntryId => "InvalidBatchEntryId",
            BatchRequestTooLong => "BatchRequestTooLong",
            ValidationException => "ValidationException",
            InvalidAction => "InvalidAction",
            MalformedQueryString => "MalformedQueryString",
            ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status, as SNS's model gives it.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            NotFound | ResourceNotFound => 404,
            AuthorizationError
            | SubscriptionLimitExceeded
            | TopicLimitExceeded
            | FilterPolicyLimitExceeded
            | InvalidSecurity => 403,
            Throttled => 429,
            InternalError => 500,
            ServiceUnavailable => 503,
            InvalidParameter
            | InvalidParameterValue
            | TagLimitExceeded
            | EmptyBatchRequest
            | TooManyEntriesInBatchRequest
            | BatchEntryIdsNotDistinct
            | InvalidBatchEntryId
            | BatchRequestTooLong
            | ValidationException
            | InvalidAction
            | MalformedQueryString => 400,
        }
    }

    pub fn fault(self) -> Fault {
        match self {
            ErrorCode::InternalError | ErrorCode::ServiceUnavailable => Fault::Receiver,
            _ => Fault::Sender,
        }
    }
}

/// An error answer: what went wrong and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.query_code())]
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

    /// InvalidParameter, worded as SNS words it: `Invalid parameter: {what}`.
    pub fn invalid(what: impl std::fmt::Display) -> WireError {
        WireError::new(
            ErrorCode::InvalidParameter,
            format!("Invalid parameter: {what}"),
        )
    }

    /// A required parameter that is absent (SNS answers InvalidParameter for it).
    pub fn missing(parameter: &str) -> WireError {
        WireError::invalid(format!("{parameter} (the request must contain it)"))
    }
}

impl From<FormError> for WireError {
    /// A form that cannot be read is malformed; one that reads but breaks a rule (an
    /// index out of range, a value of the wrong type) is an invalid parameter.
    fn from(e: FormError) -> WireError {
        let code = match e {
            FormError::Malformed(_) | FormError::Duplicate(_) | FormError::TooManyPairs => {
                ErrorCode::MalformedQueryString
            }
            FormError::Index { .. } | FormError::Invalid { .. } => ErrorCode::InvalidParameter,
        };
        WireError::new(code, e.to_string())
    }
}

impl From<crate::sqs::WireError> for WireError {
    /// The SQS message-attribute rules are SNS's too; their errors are SNS's
    /// `ParameterValueInvalid`.
    fn from(e: crate::sqs::WireError) -> WireError {
        WireError::new(ErrorCode::InvalidParameterValue, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[rustfmt::skip]
    fn codes_and_statuses_follow_the_sns_model() {
        use ErrorCode::*;
        // (code, <Code>, status) as botocore 1.43.11's sns/2010-03-31 model lists them.
        let table = [
            (NotFound, "NotFound", 404),
            (ResourceNotFound, "ResourceNotFound", 404),
            (InvalidParameter, "InvalidParameter", 400),
            (InvalidParameterValue, "ParameterValueInvalid", 400),
            (AuthorizationError, "AuthorizationError", 403),
            (InternalError, "InternalError", 500),
            (Throttled, "Throttled", 429),
            (SubscriptionLimitExceeded, "SubscriptionLimitExceeded", 403),
            (TopicLimitExceeded, "TopicLimitExceeded", 403),
            (FilterPolicyLimitExceeded, "FilterPolicyLimitExceeded", 403),
            (TagLimitExceeded, "TagLimitExceeded", 400),
            (InvalidSecurity, "InvalidSecurity", 403),
            (EmptyBatchRequest, "EmptyBatchRequest", 400),
            (TooManyEntriesInBatchRequest, "TooManyEntriesInBatchRequest", 400),
            (BatchEntryIdsNotDistinct, "BatchEntryIdsNotDistinct", 400),
            (InvalidBatchEntryId, "InvalidBatchEntryId", 400),
            (BatchRequestTooLong, "BatchRequestTooLong", 400),
            (ValidationException, "ValidationException", 400),
            (InvalidAction, "InvalidAction", 400),
            (MalformedQueryString, "MalformedQueryString", 400),
            (ServiceUnavailable, "ServiceUnavailable", 503),
        ];
        for (code, wire, status) in table {
            assert_eq!(code.query_code(), wire);
            assert_eq!(code.status(), status, "{code:?}");
        }
        assert_eq!(InternalError.fault(), Fault::Receiver);
        assert_eq!(NotFound.fault(), Fault::Sender);
    }

    #[test]
    fn form_errors_map_to_malformed_or_invalid() {
        let e: WireError = FormError::Duplicate("A".into()).into();
        assert_eq!(e.code, ErrorCode::MalformedQueryString);
        let e: WireError = FormError::Invalid {
            key: "ReturnSubscriptionArn".into(),
            value: "yes".into(),
            reason: "not true or false",
        }
        .into();
        assert_eq!(e.code, ErrorCode::InvalidParameter);
    }
}
