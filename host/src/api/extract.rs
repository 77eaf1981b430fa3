//! Extractors whose rejections are `ApiError`s: JSON bodies (unknown fields,
//! wrong types and broken JSON each say so) and the caller's identity.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::ApiState;
use super::error::ApiError;
use crate::access::Actor;
use crate::model::Role;

/// A JSON body; a failure to read it is a 400/413/415/422 in our error format.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::unprocessable("request.invalid_field", detail),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("request.malformed_json", detail)
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request.content_type",
            "expected `Content-Type: application/json`",
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
            "the request body is too large",
        ),
        _ => ApiError::bad_request("request.unreadable", detail),
    }
}

/// A query string; a bad one is a 400 in our error format.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::bad_request(
                "request.invalid_query",
                rejection.body_text(),
            )),
        }
    }
}

/// The authenticated tenant making the request, put in the request by the
/// gate ([`super::gate`]) once its role passed the route's.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    pub role: Role,
    pub key_id: String,
}

impl Caller {
    /// The caller as the ownership rule sees it.
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            tenant_id: &self.tenant_id,
            role: self.role,
        }
    }

    /// Whether the caller may see or change an object owned by `tenant_id`.
    pub fn owns(&self, tenant_id: &str) -> bool {
        self.actor().owns(tenant_id)
    }
}

/// Hex SHA-256 of an API key: what the store keeps.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The tenant whose key the request carries (`401` without a valid one).
pub(super) fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let unauthorized = |message: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "auth.unauthorized",
            message.to_owned(),
        )
    };
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <api key>`"))?;
    let key = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <api key>`"))?;
    let record = state
        .store
        .api_key_by_hash(&key_hash(key))?
        .ok_or_else(|| unauthorized("unknown API key"))?;
    let tenant = state
        .store
        .tenant(&record.tenant_id)?
        .ok_or_else(|| unauthorized("the key's tenant no longer exists"))?;
    Ok(Caller {
        tenant_id: tenant.id,
        role: tenant.role,
        key_id: record.id,
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Only the gate puts a caller here: a handler reached without it is
        // a route the gate does not know, refused rather than left open.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a route that needs a caller is not behind the gate"))
    }
}
