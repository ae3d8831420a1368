//! Turns any AWS SDK error into the core's `PortError`: transient when a later try
//! can succeed (throttling, a 5xx answer, a timeout, a request that never reached
//! AWS), permanent otherwise. The message keeps the AWS error code and the request
//! id, which is what AWS support asks for first.
//!
//! Every SDK crate re-exports the same smithy runtime types, so the helper is written
//! once against the ELBv2 crate's re-exports and works for all the clients Ripcord
//! uses.

use aws_sdk_elasticloadbalancingv2::config::http::HttpResponse;
use aws_sdk_elasticloadbalancingv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_elasticloadbalancingv2::operation::RequestId;
use ripcord_core::ports::PortError;

/// Error codes that AWS services use for throttling. They come back with a 400 status,
/// so the status alone would call them permanent.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether an HTTP status means the service, not the request, was at fault.
fn retryable_status(status: u16) -> bool {
    status >= 500 || status == 429
}

/// Maps a failed SDK call to a `PortError`. `operation` names the call and what it
/// was about, e.g. `DescribeListeners for listener arn:...`.
pub(crate) fn port_error<E>(operation: &str, error: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = error.raw_response().map(|raw| raw.status().as_u16());
    let transient = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ConstructionFailure(_) => false,
        SdkError::ResponseError(_) => status.is_some_and(retryable_status),
        SdkError::ServiceError(_) => {
            status.is_some_and(retryable_status)
                || error
                    .code()
                    .is_some_and(|code| THROTTLING_CODES.contains(&code))
        }
        // The enum is non-exhaustive: an unknown kind of failure is not retried blindly.
        _ => false,
    };

    let mut message = format!("{operation} failed: ");
    match (error.code(), error.message()) {
        (Some(code), Some(text)) => message.push_str(&format!("{code}: {text}")),
        (Some(code), None) => message.push_str(code),
        _ => match &error {
            SdkError::TimeoutError(_) => message.push_str("the call timed out"),
            _ => message.push_str(&DisplayErrorContext(&error).to_string()),
        },
    }
    if let Some(status) = status {
        message.push_str(&format!(" (HTTP {status}"));
        match error.request_id() {
            Some(id) => message.push_str(&format!(", AWS request id {id})")),
            None => message.push(')'),
        }
    }

    if transient {
        PortError::transient(message)
    } else {
        PortError::permanent(message)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_elasticloadbalancingv2::error::ErrorMetadata;
    use aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersError;
    use ripcord_core::ports::ErrorKind;

    use super::*;

    fn response(status: u16, request_id: &str) -> HttpResponse {
        let mut raw = HttpResponse::new(status.try_into().unwrap(), "".into());
        raw.headers_mut()
            .insert("x-amzn-requestid", request_id.to_string());
        raw
    }

    fn service_error(
        status: u16,
        code: &str,
        text: &str,
    ) -> SdkError<DescribeListenersError, HttpResponse> {
        let err = DescribeListenersError::generic(
            ErrorMetadata::builder().code(code).message(text).build(),
        );
        SdkError::service_error(err, response(status, "req-123"))
    }

    #[test]
    fn errors_are_classified_by_whether_a_retry_can_help() {
        let table: Vec<(
            &str,
            SdkError<DescribeListenersError, HttpResponse>,
            ErrorKind,
        )> = vec![
            (
                "throttling comes with a 400",
                service_error(400, "Throttling", "Rate exceeded"),
                ErrorKind::Transient,
            ),
            (
                "a 503",
                service_error(503, "ServiceUnavailable", "try later"),
                ErrorKind::Transient,
            ),
            (
                "a missing listener",
                service_error(400, "ListenerNotFound", "One or more listeners not found"),
                ErrorKind::Permanent,
            ),
            (
                "access denied",
                service_error(403, "AccessDenied", "not allowed"),
                ErrorKind::Permanent,
            ),
            (
                "a timeout",
                SdkError::timeout_error("too slow"),
                ErrorKind::Transient,
            ),
            (
                "an unparsable 502 answer",
                SdkError::response_error("not XML", response(502, "req-9")),
                ErrorKind::Transient,
            ),
            (
                "an unparsable 200 answer",
                SdkError::response_error("not XML", response(200, "req-9")),
                ErrorKind::Permanent,
            ),
            (
                "a request that could not be built",
                SdkError::construction_failure("missing field"),
                ErrorKind::Permanent,
            ),
        ];
        for (case, error, kind) in table {
            assert_eq!(port_error("DescribeListeners", error).kind, kind, "{case}");
        }
    }

    #[test]
    fn the_message_keeps_the_code_and_the_request_id() {
        let error = port_error(
            "DescribeListeners for listener x",
            service_error(400, "ListenerNotFound", "One or more listeners not found"),
        );
        assert_eq!(
            error.message,
            "DescribeListeners for listener x failed: ListenerNotFound: One or more listeners not found (HTTP 400, AWS request id req-123)"
        );
    }
}
