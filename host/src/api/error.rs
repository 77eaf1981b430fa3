//! `ApiError`: the one error type of the API, rendered as
//! `{"error": {"code", "message"}}` with a stable machine code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `campaign.not_found`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(what: &'static str) -> Self {
        let code = match what {
            "campaign" => "campaign.not_found",
            "tenant" => "tenant.not_found",
            "bidder" => "bidder.not_found",
            "target" => "target.not_found",
            "bid" => "bid.not_found",
            "policy" => "policy.not_found",
            "version" => "policy.version_not_found",
            "api key" => "api_key.not_found",
            "number" => "number.not_found",
            "pool" => "pool.not_found",
            "call" => "call.not_found",
            "session" => "dni.session_not_found",
            "replay" => "replay.not_found",
            _ => "not_found",
        };
        Self::new(StatusCode::NOT_FOUND, code, format!("no such {what}"))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        // The detail goes to the log, not to the client.
        tracing::error!(%error, "internal error in the API");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl From<crate::access::quota::QuotaExceeded> for ApiError {
    fn from(e: crate::access::quota::QuotaExceeded) -> Self {
        ApiError::conflict("quota.exceeded", e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // Which campaign holds it is another tenant's business.
            StoreError::NumberTaken { number, .. } => {
                ApiError::conflict("number.taken", format!("number {number} is already in use"))
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        // Refusals that pass by themselves (a rate, a busy queue) say when
        // to come back.
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
