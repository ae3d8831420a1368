//! The one error shape of every HTTP entry point: a status and a JSON body
//! `{"error": "<code>", "message": "<for a person>"}`, plus `"field"` when one input
//! field is to blame.

use http::{Response, StatusCode, header};
use ripcord_core::ports::{ErrorKind, StoreError};
use serde_json::{Value, json};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code.
    pub code: &'static str,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// The input field to blame, if one is.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with no particular field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 naming the bad field.
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: message.into(),
            field: Some(field.to_string()),
        }
    }

    /// The store failed: 503 when retrying may help, 500 otherwise.
    pub fn store(error: StoreError) -> Self {
        let retryable =
            matches!(&error, StoreError::Unavailable(e) if e.kind == ErrorKind::Transient);
        if retryable {
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "the store is unavailable ({error}); nothing was written; retry the delivery"
                ),
            )
        } else {
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_error",
                format!("the store refused the request: {error}"),
            )
        }
    }

    /// The error as a JSON response.
    pub fn into_response(self) -> Response<String> {
        let mut body = json!({"error": self.code, "message": self.message});
        if let Some(field) = self.field {
            body["field"] = Value::String(field);
        }
        json_response(self.status, &body)
    }
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &Value) -> Response<String> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .expect("a status and a content type always make a valid response")
}
