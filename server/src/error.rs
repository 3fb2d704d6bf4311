//! HTTP errors as Loki sends them: a plain-text message and a status. Client mistakes go
//! back verbatim (400); internal faults are logged and answered with 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use silt_query::QueryError;
use silt_storage::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        }
        // Like Go's http.Error, which Loki uses: the message and a newline.
        (self.status, [("content-type", "text/plain; charset=utf-8")], format!("{}\n", self.message)).into_response()
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
