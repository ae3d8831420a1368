//! How an AWS SDK failure becomes the core's `PortError`, for every adapter.
//!
//! Each SDK crate generates its own operation error types, but they all share the
//! smithy runtime's `SdkError`, `HttpResponse`, `ProvideErrorMetadata` and the AWS
//! `RequestId` accessor. The DynamoDB crate re-exports those shared types, so this one
//! function serves the ELBv2, CloudWatch, SSM and Scheduler adapters as well, without
//! another dependency.
//!
//! Every message names the operation, the AWS error code and the request id, because
//! those three are what AWS support and CloudTrail need to find a call. A message never
//! holds request parameters or credentials: only what AWS or the connector said.

use std::error::Error;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::RequestId;
use ripcord_core::ports::{ErrorKind, PortError};

/// Error codes that mean AWS is throttling the caller or is briefly unable to answer:
/// the same request can succeed later. These are the codes the SDK's own standard
/// retry strategy treats as throttling or transient; they reach us only once its
/// retries are used up, and they stay worth retrying on a later pass.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "TransactionInProgressException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
];

/// Whether an AWS error code means that retrying later can help.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// Turns a failed SDK call into a `PortError`.
///
/// Timeouts, dispatch failures (the request never got an answer), throttling and 5xx
/// answers are transient; everything else (validation, access denied, a missing
/// resource, a request that could not be built) is permanent. `operation` names the
/// call for a person, e.g. `DynamoDB GetItem on table ripcord`.
pub fn port_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let status = error.raw_response().map(|raw| raw.status().as_u16());
    let code = error.code();
    let kind = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorKind::Transient,
        SdkError::ConstructionFailure(_) => ErrorKind::Permanent,
        _ if code.is_some_and(is_transient_code) => ErrorKind::Transient,
        _ if status.is_some_and(|s| s >= 500 || s == 429) => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    };
    let what = match (code, error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        // Without a code there is no service answer to quote: the cause chain (a
        // timeout, a refused connection, an unreadable response) says what happened.
        (None, _) => format!("no error code ({})", DisplayErrorContext(error)),
    };
    let request = match error.request_id() {
        Some(id) => format!("request id {id}"),
        None => "no request id: no answer came from AWS".to_string(),
    };
    let status = status.map_or(String::new(), |s| format!(", HTTP {s}"));
    let advice = match kind {
        ErrorKind::Transient => "it is retried on the next pass",
        ErrorKind::Permanent => "retrying will not help until the cause is fixed",
    };
    PortError {
        kind,
        message: format!("{operation} failed: {what} ({request}{status}); {advice}"),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    use super::*;

    /// A service error as the SDK hands it over: an HTTP answer with a request id
    /// header and the error metadata parsed from its body.
    fn service_error(status: u16, code: &str, message: &str) -> SdkError<GetItemError> {
        let status = status.try_into().expect("a valid status code");
        let mut raw = HttpResponse::new(status, "".into());
        raw.headers_mut().insert("x-amzn-requestid", "REQ-123");
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        SdkError::service_error(GetItemError::generic(meta), raw)
    }

    #[test]
    fn each_failure_is_classified_and_keeps_its_code_and_request_id() {
        let table: &[(u16, &str, ErrorKind)] = &[
            (400, "ThrottlingException", ErrorKind::Transient),
            (
                400,
                "ProvisionedThroughputExceededException",
                ErrorKind::Transient,
            ),
            (500, "InternalServerError", ErrorKind::Transient),
            (503, "SomethingNew", ErrorKind::Transient),
            (400, "ResourceNotFoundException", ErrorKind::Permanent),
            (400, "ValidationException", ErrorKind::Permanent),
            (400, "AccessDeniedException", ErrorKind::Permanent),
        ];
        for (status, code, kind) in table {
            let error = port_error("DynamoDB GetItem", &service_error(*status, code, "why"));
            assert_eq!(error.kind, *kind, "{code}");
            assert!(error.message.contains(code), "{}", error.message);
            assert!(error.message.contains("REQ-123"), "{}", error.message);
            assert!(error.message.starts_with("DynamoDB GetItem failed"));
        }
    }

    #[test]
    fn a_timeout_is_transient_and_says_no_answer_came() {
        let error: SdkError<GetItemError> = SdkError::timeout_error("attempt timed out");
        let mapped = port_error("DynamoDB Query", &error);
        assert_eq!(mapped.kind, ErrorKind::Transient);
        assert!(
            mapped.message.contains("no request id"),
            "{}",
            mapped.message
        );
        assert!(mapped.message.contains("timed out"), "{}", mapped.message);
    }

    #[test]
    fn a_request_that_could_not_be_built_is_permanent() {
        let error: SdkError<GetItemError> = SdkError::construction_failure("missing table name");
        assert_eq!(
            port_error("DynamoDB GetItem", &error).kind,
            ErrorKind::Permanent
        );
    }
}
