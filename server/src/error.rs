//! HTTP errors as Loki sends them: a plain-text message and a status. Client mistakes go
//! back verbatim (400); internal faults are logged and answered with 500. Loki writes
//! query errors bare (`WriteError`) and push and auth errors with Go's `http.Error`, which
//! adds a newline; [`ApiError::http_error`] marks the latter.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use silt_query::QueryError;
use silt_storage::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Written like Go's `http.Error`: the message and a newline.
    pub newline: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), newline: false }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// An error Loki writes with Go's `http.Error` (push, auth).
    pub fn http_error(mut self) -> Self {
        self.newline = true;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        }
        let body = if self.newline { format!("{}\n", self.message) } else { self.message };
        (self.status, [("content-type", "text/plain; charset=utf-8"), ("x-content-type-options", "nosniff")], body).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        if e.is_client_error() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::internal(e.to_string())
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_client_error() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::internal(e.to_string())
        }
    }
}

impl From<silt_query::ParseError> for ApiError {
    fn from(e: silt_query::ParseError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}
